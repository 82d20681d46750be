package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// Small limits so the fuzzer reaches ErrTooLarge and ErrLineTooLong with short inputs.
const (
	fuzzMaxPacket = 1 << 12
	fuzzMaxLine   = 64
)

// fuzzTrace decodes in through r, checks every frame against the bytes it was decoded from, and
// returns a description of the frames for comparison between ways of splitting the input.
func fuzzTrace(t *testing.T, in []byte, r io.Reader) []string {
	cr := &countingReader{r: r}
	d := NewDecoder(cr, fuzzMaxPacket)
	d.MaxLine = fuzzMaxLine
	_, stutters := r.(*stutterReader)
	if stutters {
		d.ReleaseWhenIdle()
	}
	var trace []string
	prev := 0 // offset of the frame being decoded
	for i := 0; ; i++ {
		if i > len(in)+1 {
			t.Fatalf("more frames than input bytes")
		}
		f, err := d.Next()
		if stutters && err == errStutter {
			// An event loop's socket ran dry: the partial frame stays, the rest comes later.
			d.Release()
			i--
			continue
		}
		cur := cr.n - d.Buffered() // offset after the frame
		if err == nil || errors.As(err, new(*ArgCountError)) {
			if cur <= prev || cur > len(in) {
				t.Fatalf("frame %d: consumed [%d:%d] of %d bytes", i, prev, cur, len(in))
			}
		}
		frame := in[prev:cur]
		var ace *ArgCountError
		switch {
		case err == nil && f.IsText:
			checkLine(t, frame, f)
			trace = append(trace, fmt.Sprintf("%d line %q", cur, f.Line))
		case err == nil:
			checkPacket(t, frame, f)
			trace = append(trace, fmt.Sprintf("%d pkt %q %s %q", cur, f.Packet.Magic, f.Packet.Type, f.Packet.Args))
		case errors.As(err, &ace):
			checkArgCount(t, frame, f, ace)
			trace = append(trace, fmt.Sprintf("%d argc %v", cur, err))
		default:
			checkTerminal(t, in[prev:], err)
			return append(trace, fmt.Sprintf("%d end %v", prev, err))
		}
		prev = cur
	}
}

func checkLine(t *testing.T, frame []byte, f *Frame) {
	t.Helper()
	if frame[0] == 0 {
		t.Fatalf("line frame from a NUL-led frame %q", frame)
	}
	if !bytes.HasSuffix(frame, []byte("\n")) || bytes.Count(frame, []byte("\n")) != 1 {
		t.Fatalf("line %q decoded from %q", f.Line, frame)
	}
	body := frame[:len(frame)-1]
	if len(body) > fuzzMaxLine {
		t.Fatalf("line of %d bytes accepted with MaxLine %d", len(body), fuzzMaxLine)
	}
	if want := bytes.TrimSuffix(body, []byte("\r")); !bytes.Equal(f.Line, want) {
		t.Fatalf("line %q decoded from %q", f.Line, frame)
	}
	ParseAdmin(f.Line)
}

func checkPacket(t *testing.T, frame []byte, f *Frame) {
	t.Helper()
	p := &f.Packet
	if f.IsText || f.Line != nil {
		t.Fatalf("packet frame has text fields: %+v", f)
	}
	if p.Magic != MagicReq && p.Magic != MagicRes {
		t.Fatalf("accepted magic %q", p.Magic)
	}
	if !p.Type.Valid() || p.Type == 5 {
		t.Fatalf("accepted type %d", p.Type)
	}
	if len(p.Args) != p.Type.Argc() {
		t.Fatalf("%s has %d args, want %d", p.Type, len(p.Args), p.Type.Argc())
	}
	if len(frame) < HeaderSize {
		t.Fatalf("packet decoded from %d bytes", len(frame))
	}
	size := binary.BigEndian.Uint32(frame[8:12])
	if size > fuzzMaxPacket || len(frame) != HeaderSize+int(size) {
		t.Fatalf("consumed %d bytes for a %d-byte packet", len(frame), size)
	}
	for i, a := range p.Args {
		if cap(a) != len(a) {
			t.Fatalf("arg %d has spare capacity %d", i, cap(a)-len(a))
		}
		if i < len(p.Args)-1 && bytes.IndexByte(a, 0) >= 0 {
			t.Fatalf("arg %d %q contains NUL", i, a)
		}
	}
	enc := AppendPacket(nil, p.Magic, p.Type, p.Args...)
	bareHandle := p.Type.emptyDataOptional() && bytes.IndexByte(frame[HeaderSize:], 0) < 0
	switch {
	case bareHandle:
		// "HANDLE" without its separator decodes as HANDLE plus empty data; the canonical encoding
		// adds the separator.
		want := AppendPacket(nil, p.Magic, p.Type, frame[HeaderSize:], nil)
		if len(p.Args[1]) != 0 || !bytes.Equal(enc, want) {
			t.Fatalf("bare-handle %s decoded as %q", p.Type, p.Args)
		}
	case p.Type.Argc() > 0:
		if !bytes.Equal(enc, frame) {
			t.Fatalf("re-encoded %q, decoded from %q", enc, frame)
		}
	default:
		if !bytes.Equal(enc[:8], frame[:8]) || len(enc) != HeaderSize {
			t.Fatalf("re-encoded %q, decoded from %q", enc, frame)
		}
	}
	d2 := NewDecoder(bytes.NewReader(enc), 0)
	f2, err := d2.Next()
	if err != nil {
		t.Fatalf("re-decoding %q: %v", enc, err)
	}
	if f2.IsText || f2.Packet.Magic != p.Magic || f2.Packet.Type != p.Type || !slices.EqualFunc(f2.Packet.Args, p.Args, bytes.Equal) {
		t.Fatalf("re-decoded %+v, want %+v", f2.Packet, *p)
	}
	if _, err := d2.Next(); err != io.EOF {
		t.Fatalf("after re-decoded packet: %v, want io.EOF", err)
	}
}

func checkArgCount(t *testing.T, frame []byte, f *Frame, ace *ArgCountError) {
	t.Helper()
	if f == nil || f.Packet.Type != ace.Type || f.Packet.Args != nil {
		t.Fatalf("ArgCountError %v with frame %+v", ace, f)
	}
	if len(frame) < HeaderSize {
		t.Fatalf("ArgCountError %v from %d bytes", ace, len(frame))
	}
	if ace.Want != ace.Type.Argc() || ace.Got < 1 || ace.Got >= ace.Want {
		t.Fatalf("bad ArgCountError %+v", ace)
	}
	size := binary.BigEndian.Uint32(frame[8:12])
	if len(frame) != HeaderSize+int(size) || Type(binary.BigEndian.Uint32(frame[4:8])) != ace.Type {
		t.Fatalf("ArgCountError %v consumed %q", ace, frame)
	}
	if n := bytes.Count(frame[HeaderSize:], []byte{0}); n != ace.Got-1 {
		t.Fatalf("ArgCountError %v for data with %d NULs", ace, n)
	}
}

// checkTerminal checks that an error that ends the stream is justified by the remaining input.
func checkTerminal(t *testing.T, rest []byte, err error) {
	t.Helper()
	if err == io.EOF {
		if len(rest) != 0 {
			t.Fatalf("io.EOF with %d bytes left", len(rest))
		}
		return
	}
	if len(rest) == 0 {
		t.Fatalf("%v at end of input, want io.EOF", err)
	}
	if rest[0] != 0 {
		nl := bytes.IndexByte(rest, '\n')
		switch err {
		case ErrLineTooLong:
			if nl >= 0 && nl <= fuzzMaxLine || nl < 0 && len(rest) <= fuzzMaxLine {
				t.Fatalf("ErrLineTooLong for %q", rest)
			}
		case io.ErrUnexpectedEOF:
			if nl >= 0 || len(rest) > fuzzMaxLine {
				t.Fatalf("io.ErrUnexpectedEOF for %q", rest)
			}
		default:
			t.Fatalf("unexpected error %v for line %q", err, rest)
		}
		return
	}
	if len(rest) < HeaderSize {
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("%v for short header %q", err, rest)
		}
		return
	}
	magic := [4]byte(rest[:4])
	typ := Type(binary.BigEndian.Uint32(rest[4:8]))
	size := binary.BigEndian.Uint32(rest[8:12])
	switch {
	case magic != MagicReq && magic != MagicRes:
		if err != ErrBadMagic {
			t.Fatalf("%v for bad magic %q", err, rest[:4])
		}
	case !typ.Valid() || typ == 5:
		if err != ErrUnknownType {
			t.Fatalf("%v for type %d", err, typ)
		}
	case size > fuzzMaxPacket:
		if err != ErrTooLarge {
			t.Fatalf("%v for size %d", err, size)
		}
	default:
		if err != io.ErrUnexpectedEOF || len(rest) >= HeaderSize+int(size) {
			t.Fatalf("%v for a %d-byte packet with %d bytes", err, size, len(rest))
		}
	}
}

func decoderSeeds() [][]byte {
	seeds := [][]byte{
		nil,
		{0},
		[]byte("\x00REQ\x00\x00\x00\x07\x00\x00\x00\x0dreverse\x00\x00test"),
		[]byte("status\n"),
		[]byte("status\r\nshow jobs\nworkers"),
		cat([]byte("status\n"), encReq(EchoReq, "a\x00b"), []byte("version\r\n"), encRes(Noop)),
		encReq(SubmitReduceJob, "fn", "u", "r", "", "d"),
		encReq(SubmitReduceJob, "fn", "u", "r", "d"),
		encReq(SubmitJob, "fn-only"),
		cat(encReq(SubmitJob, "fn"), encReq(EchoReq, "x")),
		header("\x00REX", 6, 0),
		header("\x00REQ", 0, 0),
		header("\x00REQ", 5, 0),
		header("\x00REQ", 43, 0),
		header("\x00RES", 0xffffffff, 0xffffffff),
		header("\x00REQ", uint32(EchoReq), fuzzMaxPacket+1),
		encReq(EchoReq, "hello")[:15],
		[]byte(strings.Repeat("a", fuzzMaxLine) + "\n"),
		[]byte(strings.Repeat("a", fuzzMaxLine+1) + "\n"),
		[]byte(strings.Repeat("a", fuzzMaxLine-1) + "\r\n"),
	}
	for _, typ := range allTypes() {
		seeds = append(seeds, encReq(typ, testArgs(typ.Argc(), true)...))
	}
	return seeds
}

func FuzzDecoder(f *testing.F) {
	for _, s := range decoderSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := fuzzTrace(t, in, bytes.NewReader(in))
		one := fuzzTrace(t, in, iotest.OneByteReader(bytes.NewReader(in)))
		if !reflect.DeepEqual(whole, one) {
			t.Fatalf("split changes the result:\n whole %q\n   one %q", whole, one)
		}
		half := fuzzTrace(t, in, iotest.HalfReader(bytes.NewReader(in)))
		if !reflect.DeepEqual(whole, half) {
			t.Fatalf("split changes the result:\n whole %q\n  half %q", whole, half)
		}
		stutter := fuzzTrace(t, in, &stutterReader{in: in})
		if !reflect.DeepEqual(whole, stutter) {
			t.Fatalf("reads that would block change the result:\n   whole %q\n stutter %q", whole, stutter)
		}
	})
}

var errStutter = errors.New("would block")

// stutterReader is a non-blocking socket as an event loop sees it: it hands out the input in
// chunks of varying size (taken from the input itself) and reports errStutter between them.
type stutterReader struct {
	in   []byte
	off  int
	dry  bool
	step int
}

func (r *stutterReader) Read(p []byte) (int, error) {
	if r.dry = !r.dry; r.dry {
		return 0, errStutter
	}
	if r.off == len(r.in) {
		return 0, io.EOF
	}
	r.step++
	n := 1 + int(r.in[(r.off+r.step)%len(r.in)])*37%4099
	n = min(n, len(p), len(r.in)-r.off)
	copy(p, r.in[r.off:r.off+n])
	r.off += n
	return n, nil
}

var adminNames = map[string]bool{
	AdminStatus: true, AdminPriorityStatus: true, AdminWorkers: true, AdminVersion: true,
	AdminVerbose: true, AdminGetPID: true, AdminMaxQueue: true, AdminShowJobs: true,
	AdminShowUniqueJobs: true, AdminCancelJob: true, AdminCreateFunction: true,
	AdminDropFunction: true, AdminShutdown: true,
}

func FuzzParseAdmin(f *testing.F) {
	for _, s := range []string{
		"", " ", "status", "STATUS", "  status  ", "show jobs", "SHOW UNIQUE JOBS", "show", "show unique",
		"cancel job H:x:1", "maxqueue fn 1 2 3", "create function foo", "drop function foo",
		"shutdown graceful", "prioritystatus", "getpid", "verbose", "version", "workers", "bogus arg",
		"status\r", "show\tjobs", "\xff\xfe", "ſhow jobs",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		c := ParseAdmin(line)
		if !bytes.Equal(line, orig) {
			t.Fatalf("ParseAdmin modified its input")
		}
		words := strings.Fields(string(line))
		if len(words) == 0 {
			if c.Name != "" || c.Word != "" || len(c.Args) != 0 {
				t.Fatalf("blank line parsed as %#v", c)
			}
			return
		}
		if c.Word != words[0] {
			t.Fatalf("Word = %q, want %q", c.Word, words[0])
		}
		n := 1
		if c.Name != "" {
			if !adminNames[c.Name] {
				t.Fatalf("unknown Name %q", c.Name)
			}
			nameWords := strings.Fields(c.Name)
			n = len(nameWords)
			for i, w := range nameWords {
				if !strings.EqualFold(words[i], w) {
					t.Fatalf("word %q parsed as %q in %q", words[i], w, c.Name)
				}
			}
		}
		if !slices.Equal(c.Args, words[n:]) {
			t.Fatalf("Args = %q, want %q", c.Args, words[n:])
		}
		// Parsing the canonical form gives the same command.
		canon := c.Name
		if canon == "" {
			canon = c.Word
		}
		c2 := ParseAdmin([]byte(strings.Join(append([]string{canon}, c.Args...), " ")))
		if c2.Name != c.Name || !slices.Equal(c2.Args, c.Args) {
			t.Fatalf("canonical form parsed as %#v, original as %#v", c2, c)
		}
	})
}
