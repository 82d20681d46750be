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

// result is a decoded frame copied out of the decoder's buffer, so a whole stream can be compared.
type result struct {
	Text  bool
	Line  string
	Magic [4]byte
	Type  Type
	Args  []string
	Err   error
}

func (r result) String() string {
	if len(r.Line) > 40 {
		r.Line = fmt.Sprintf("%s...(%d bytes)", r.Line[:20], len(r.Line))
	}
	r.Args = slices.Clone(r.Args)
	for i, a := range r.Args {
		if len(a) > 40 {
			r.Args[i] = fmt.Sprintf("%s...(%d bytes)", a[:20], len(a))
		}
	}
	switch {
	case r.Err != nil && r.Type != 0:
		return fmt.Sprintf("err(%s, %v)", r.Type, r.Err)
	case r.Err != nil:
		return fmt.Sprintf("err(%v)", r.Err)
	case r.Text:
		return fmt.Sprintf("line(%q)", r.Line)
	default:
		return fmt.Sprintf("pkt(%q, %s, %q)", r.Magic[1:], r.Type, r.Args)
	}
}

func req(t Type, args ...string) result { return result{Magic: MagicReq, Type: t, Args: args} }
func res(t Type, args ...string) result { return result{Magic: MagicRes, Type: t, Args: args} }
func line(s string) result              { return result{Text: true, Line: s} }
func fail(err error) result             { return result{Err: err} }

// argErr is the result of a packet with too few NUL separators: the frame carries the type only.
func argErr(t Type, want, got int) result {
	return result{Type: t, Err: &ArgCountError{Type: t, Want: want, Got: got}}
}

func toBytes(args []string) [][]byte {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return bs
}

func encReq(t Type, args ...string) []byte { return AppendRequest(nil, t, toBytes(args)...) }
func encRes(t Type, args ...string) []byte { return AppendResponse(nil, t, toBytes(args)...) }

// header builds a raw packet header, for packets AppendPacket cannot produce.
func header(magic string, t uint32, size uint32) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint32(b, t)
	return binary.BigEndian.AppendUint32(b, size)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// decodeAll decodes r until an error other than *ArgCountError, which it records as the last result.
func decodeAll(t *testing.T, r io.Reader, maxPacket, maxLine int) []result {
	t.Helper()
	d := NewDecoder(r, maxPacket)
	if maxLine > 0 {
		d.MaxLine = maxLine
	}
	var out []result
	for range 100000 {
		f, err := d.Next()
		if err != nil {
			var ace *ArgCountError
			if errors.As(err, &ace) {
				if f == nil || f.Packet.Type != ace.Type || f.Packet.Args != nil || f.IsText {
					t.Errorf("ArgCountError frame = %+v, want type %s and no args", f, ace.Type)
				}
				out = append(out, result{Type: ace.Type, Err: err})
				continue
			}
			r := fail(err)
			if f != nil { // ErrUnknownType and ErrTooLarge report the type
				r.Type = f.Packet.Type
			}
			return append(out, r)
		}
		if f.IsText {
			out = append(out, line(string(f.Line)))
			continue
		}
		r := result{Magic: f.Packet.Magic, Type: f.Packet.Type}
		for _, a := range f.Packet.Args {
			r.Args = append(r.Args, string(a))
		}
		out = append(out, r)
	}
	t.Fatal("decoder made no progress")
	return nil
}

// readers returns the ways a test stream is split: whole, one byte per Read, and halves.
func readers(b []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(b) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
}

func checkStream(t *testing.T, in []byte, maxPacket, maxLine int, want []result) {
	t.Helper()
	for name, mk := range readers(in) {
		got := decodeAll(t, mk(), maxPacket, maxLine)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s reader:\n got %v\nwant %v", name, got, want)
		}
	}
}

// testArgs returns argc arguments for a packet; the last one contains NUL bytes when nul is set.
func testArgs(argc int, nul bool) []string {
	args := make([]string, argc)
	for i := range args {
		args[i] = fmt.Sprintf("arg%d", i)
	}
	if argc > 0 && nul {
		args[argc-1] = "last\x00with\x00\x00nuls\x00"
	}
	return args
}

func allTypes() []Type {
	var ts []Type
	for t := CanDo; t <= StatusResUnique; t++ {
		if t != 5 {
			ts = append(ts, t)
		}
	}
	return ts
}

func TestDecoderRoundTripAllTypes(t *testing.T) {
	for _, typ := range allTypes() {
		for _, magic := range []string{"REQ", "RES"} {
			for _, variant := range []string{"plain", "nul", "empty"} {
				t.Run(fmt.Sprintf("%s/%s/%s", typ, magic, variant), func(t *testing.T) {
					var args []string
					switch variant {
					case "plain":
						args = testArgs(typ.Argc(), false)
					case "nul":
						args = testArgs(typ.Argc(), true)
					case "empty":
						args = make([]string, typ.Argc())
					}
					var enc []byte
					want := result{Type: typ, Args: args}
					if len(args) == 0 {
						want.Args = nil
					}
					if magic == "REQ" {
						enc = encReq(typ, args...)
						want.Magic = MagicReq
					} else {
						enc = encRes(typ, args...)
						want.Magic = MagicRes
					}
					size := len(strings.Join(args, "\x00"))
					if h := header("\x00"+magic, uint32(typ), uint32(size)); !bytes.Equal(enc[:HeaderSize], h) {
						t.Fatalf("header = %q, want %q", enc[:HeaderSize], h)
					}
					if len(enc) != HeaderSize+size {
						t.Fatalf("encoded %d bytes, want %d", len(enc), HeaderSize+size)
					}
					checkStream(t, enc, 1<<20, 0, []result{want, fail(io.EOF)})
				})
			}
		}
	}
}

func TestDecoderNext(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100)
	cases := []struct {
		name      string
		in        []byte
		maxPacket int
		maxLine   int
		want      []result
	}{
		{
			name: "protocol document example",
			in: []byte("\x00REQ\x00\x00\x00\x07\x00\x00\x00\x0dreverse\x00\x00test" +
				"\x00RES\x00\x00\x00\x08\x00\x00\x00\x07H:lap:1"),
			want: []result{req(SubmitJob, "reverse", "", "test"), res(JobCreated, "H:lap:1"), fail(io.EOF)},
		},
		{
			name: "echo data with NUL",
			in:   encReq(EchoReq, "a\x00b"),
			want: []result{req(EchoReq, "a\x00b"), fail(io.EOF)},
		},
		{
			name: "echo data only NULs",
			in:   encRes(EchoRes, "\x00\x00"),
			want: []result{res(EchoRes, "\x00\x00"), fail(io.EOF)},
		},
		{
			name: "submit reduce job with aggregator",
			in:   encReq(SubmitReduceJob, "fn", "uniq", "reducer", "", "da\x00ta"),
			want: []result{req(SubmitReduceJob, "fn", "uniq", "reducer", "", "da\x00ta"), fail(io.EOF)},
		},
		{
			name: "submit reduce job background",
			in:   encReq(SubmitReduceJobBackground, "fn", "u", "r", "agg", "data"),
			want: []result{req(SubmitReduceJobBackground, "fn", "u", "r", "agg", "data"), fail(io.EOF)},
		},
		{
			name: "submit job sched",
			in:   encReq(SubmitJobSched, "fn", "u", "1", "2", "3", "4", "5", "payload"),
			want: []result{req(SubmitJobSched, "fn", "u", "1", "2", "3", "4", "5", "payload"), fail(io.EOF)},
		},
		{
			name: "zero-length packet",
			in:   encReq(Noop),
			want: []result{req(Noop), fail(io.EOF)},
		},
		{
			name: "zero-length echo has one empty arg",
			in:   header("\x00REQ", uint32(EchoReq), 0),
			want: []result{req(EchoReq, ""), fail(io.EOF)},
		},
		{
			name: "data on an argument-less packet is skipped",
			in:   cat(header("\x00REQ", uint32(GrabJob), 3), []byte("abc"), encReq(PreSleep)),
			want: []result{req(GrabJob), req(PreSleep), fail(io.EOF)},
		},
		{
			name: "sequence of packets",
			in: cat(
				encReq(CanDo, "reverse"),
				encReq(PreSleep),
				encRes(Noop),
				encReq(GrabJobUniq),
				encRes(JobAssignUniq, "H:x:1", "reverse", "u1", "da\x00ta"),
				encReq(WorkComplete, "H:x:1", "atad"),
				encRes(StatusResUnique, "u1", "1", "0", "0", "0", "2"),
			),
			want: []result{
				req(CanDo, "reverse"),
				req(PreSleep),
				res(Noop),
				req(GrabJobUniq),
				res(JobAssignUniq, "H:x:1", "reverse", "u1", "da\x00ta"),
				req(WorkComplete, "H:x:1", "atad"),
				res(StatusResUnique, "u1", "1", "0", "0", "0", "2"),
				fail(io.EOF),
			},
		},
		{
			name: "text lines",
			in:   []byte("status\nstatus\r\nshow  jobs\n\n\r\nworkers\n"),
			want: []result{line("status"), line("status"), line("show  jobs"), line(""), line(""), line("workers"), fail(io.EOF)},
		},
		{
			name: "only the last CR is stripped",
			in:   []byte("version\r\r\nx\ry\n"),
			want: []result{line("version\r"), line("x\ry"), fail(io.EOF)},
		},
		{
			name: "text and binary mixed",
			in: cat(
				[]byte("status\n"),
				encReq(EchoReq, "a\x00b"),
				[]byte("status\r\n"),
				encReq(SubmitJob, "fn", "", string(big)),
				encReq(Noop),
				[]byte("show unique jobs\n"),
			),
			want: []result{
				line("status"),
				req(EchoReq, "a\x00b"),
				line("status"),
				req(SubmitJob, "fn", "", string(big)),
				req(Noop),
				line("show unique jobs"),
				fail(io.EOF),
			},
		},
		{
			name: "line may contain NUL after its first byte",
			in:   []byte("ab\x00c\n"),
			want: []result{line("ab\x00c"), fail(io.EOF)},
		},
		{
			name: "empty stream",
			in:   nil,
			want: []result{fail(io.EOF)},
		},
		{
			name: "bad magic",
			in:   cat(encReq(Noop), []byte("\x00REX\x00\x00\x00\x06\x00\x00\x00\x00")),
			want: []result{req(Noop), fail(ErrBadMagic)},
		},
		{
			name: "bad magic lower case",
			in:   []byte("\x00req\x00\x00\x00\x06\x00\x00\x00\x00"),
			want: []result{fail(ErrBadMagic)},
		},
		{
			name: "type 0",
			in:   header("\x00REQ", 0, 0),
			want: []result{{Type: 0, Err: ErrUnknownType}},
		},
		{
			name: "type 5",
			in:   header("\x00REQ", 5, 0),
			want: []result{{Type: 5, Err: ErrUnknownType}},
		},
		{
			name: "type 43",
			in:   cat(header("\x00RES", 43, 2), []byte("ab")),
			want: []result{{Type: 43, Err: ErrUnknownType}},
		},
		{
			name: "type 0xffffffff",
			in:   header("\x00REQ", 0xffffffff, 0xffffffff),
			want: []result{{Type: 0xffffffff, Err: ErrUnknownType}},
		},
		{
			name:      "size at MaxPacket",
			in:        encReq(EchoReq, string(big)),
			maxPacket: len(big),
			want:      []result{req(EchoReq, string(big)), fail(io.EOF)},
		},
		{
			name:      "size above MaxPacket",
			in:        cat(encReq(Noop), encReq(EchoReq, string(big))),
			maxPacket: len(big) - 1,
			want:      []result{req(Noop), {Type: EchoReq, Err: ErrTooLarge}},
		},
		{
			name: "too few separators then stream continues",
			in: cat(
				encReq(SubmitJob, "fn-only"),
				encReq(SubmitJob, "fn", "unique-but-no-data"),
				encReq(EchoReq, "still here"),
				encReq(SubmitReduceJob, "fn", "u", "reducer", "data"), // PROTOCOL's 3-argument form
				encReq(StatusRes),
				encReq(SubmitJob, "fn", "", "ok"),
			),
			want: []result{
				argErr(SubmitJob, 3, 1),
				argErr(SubmitJob, 3, 2),
				req(EchoReq, "still here"),
				argErr(SubmitReduceJob, 5, 4),
				argErr(StatusRes, 5, 1),
				req(SubmitJob, "fn", "", "ok"),
				fail(io.EOF),
			},
		},
		{
			name: "truncated header",
			in:   cat(encReq(Noop), []byte("\x00REQ\x00\x00")),
			want: []result{req(Noop), fail(io.ErrUnexpectedEOF)},
		},
		{
			name: "truncated body",
			in:   encReq(EchoReq, "hello")[:HeaderSize+3],
			want: []result{fail(io.ErrUnexpectedEOF)},
		},
		{
			name: "single NUL byte",
			in:   []byte{0},
			want: []result{fail(io.ErrUnexpectedEOF)},
		},
		{
			name: "unterminated line",
			in:   []byte("status\nstatus"),
			want: []result{line("status"), fail(io.ErrUnexpectedEOF)},
		},
		{
			name:    "line at MaxLine",
			in:      []byte(strings.Repeat("a", 16) + "\n" + strings.Repeat("b", 15) + "\r\nc\n"),
			maxLine: 16,
			want:    []result{line(strings.Repeat("a", 16)), line(strings.Repeat("b", 15)), line("c"), fail(io.EOF)},
		},
		{
			name:    "line above MaxLine",
			in:      []byte("ok\n" + strings.Repeat("a", 17) + "\n"),
			maxLine: 16,
			want:    []result{line("ok"), fail(ErrLineTooLong)},
		},
		{
			name:    "line above MaxLine without newline",
			in:      []byte(strings.Repeat("a", 100)),
			maxLine: 16,
			want:    []result{fail(ErrLineTooLong)},
		},
		{
			name:    "unterminated line at MaxLine",
			in:      []byte(strings.Repeat("a", 16)),
			maxLine: 16,
			want:    []result{fail(io.ErrUnexpectedEOF)},
		},
		{
			name: "default MaxLine",
			in:   []byte(strings.Repeat("a", DefaultMaxLine) + "\n" + strings.Repeat("b", DefaultMaxLine+1) + "\n"),
			want: []result{line(strings.Repeat("a", DefaultMaxLine)), fail(ErrLineTooLong)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			maxPacket := tc.maxPacket
			if maxPacket == 0 {
				maxPacket = 1 << 20
			}
			checkStream(t, tc.in, maxPacket, tc.maxLine, tc.want)
		})
	}
}

// TestDecoderOneByteIdentical decodes one long mixed stream whole and one byte at a time.
func TestDecoderOneByteIdentical(t *testing.T) {
	var in []byte
	for i, typ := range allTypes() {
		in = append(in, fmt.Sprintf("status %d\r\n", i)...)
		in = AppendRequest(in, typ, toBytes(testArgs(typ.Argc(), i%2 == 0))...)
		in = AppendResponse(in, typ, toBytes(testArgs(typ.Argc(), i%2 == 1))...)
	}
	in = AppendRequest(in, SubmitJob, []byte("short"))
	in = AppendRequest(in, EchoReq, bytes.Repeat([]byte("e"), 70000))
	in = append(in, "version\n"...)
	whole := decodeAll(t, bytes.NewReader(in), 1<<20, 0)
	one := decodeAll(t, iotest.OneByteReader(bytes.NewReader(in)), 1<<20, 0)
	if len(whole) != 3*len(allTypes())+4 {
		t.Fatalf("decoded %d frames, want %d: %v", len(whole), 3*len(allTypes())+4, whole)
	}
	if !reflect.DeepEqual(whole, one) {
		t.Fatalf("one byte at a time differs:\n whole %v\n   one %v", whole, one)
	}
}

// headerOnlyReader delivers a header and then fails the test if the decoder asks for more.
type headerOnlyReader struct {
	t    *testing.T
	data []byte
}

func (r *headerOnlyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.t.Error("decoder read past the header of an oversized packet")
		return 0, errors.New("read past header")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecoderTooLargeDoesNotAllocate(t *testing.T) {
	for _, size := range []uint32{1<<20 + 1, 1 << 30, 0xffffffff} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			d := NewDecoder(&headerOnlyReader{t: t, data: header("\x00REQ", uint32(SubmitJob), size)}, 1<<20)
			f, err := d.Next()
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if f == nil || f.Packet.Type != SubmitJob {
				t.Errorf("frame = %+v, want type SUBMIT_JOB", f)
			}
			if len(d.buf) > defaultBufSize {
				t.Errorf("buffer grew to %d bytes", len(d.buf))
			}
		})
	}
	h := header("\x00REQ", uint32(EchoReq), 0xffffffff)
	allocs := testing.AllocsPerRun(10, func() {
		d := NewDecoder(bytes.NewReader(h), 1<<20)
		if _, err := d.Next(); !errors.Is(err, ErrTooLarge) {
			panic(err)
		}
	})
	if allocs > 3 { // the decoder, its 4 KiB buffer, and the bytes.Reader
		t.Errorf("%v allocations rejecting an oversized packet", allocs)
	}
}

func TestDecoderReaderError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		in   []byte
		want []result
	}{
		{"between packets", encReq(Noop), []result{req(Noop), fail(boom)}},
		{"mid packet", encReq(EchoReq, "hello")[:14], []result{fail(boom)}},
		{"mid line", []byte("stat"), []result{fail(boom)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := io.MultiReader(bytes.NewReader(tc.in), iotest.ErrReader(boom))
			if got := decodeAll(t, r, 1<<20, 0); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecoderLargePacketReleasesBuffer(t *testing.T) {
	large := bytes.Repeat([]byte("L\x00"), 1<<19) // 1 MiB
	in := cat(
		encReq(EchoReq, "before"),
		AppendRequest(nil, SubmitJob, []byte("fn"), []byte("u"), large),
		encReq(EchoReq, "after1"),
		[]byte("status\n"),
		encReq(EchoReq, "after2"),
	)
	for name, mk := range readers(in) {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(mk(), 2<<20)
			f, err := d.Next()
			if err != nil || string(f.Packet.Arg(0)) != "before" {
				t.Fatalf("first frame: %v %v", f, err)
			}
			f, err = d.Next()
			if err != nil || f.Packet.Type != SubmitJob || !bytes.Equal(f.Packet.Arg(2), large) {
				t.Fatalf("large frame: err %v", err)
			}
			if string(f.Packet.Arg(0)) != "fn" || string(f.Packet.Arg(1)) != "u" {
				t.Fatalf("large frame args %q %q", f.Packet.Arg(0), f.Packet.Arg(1))
			}
			if len(d.buf) < len(large) {
				t.Fatalf("buffer is %d bytes while holding a %d-byte packet", len(d.buf), len(large))
			}
			f, err = d.Next()
			if err != nil || string(f.Packet.Arg(0)) != "after1" {
				t.Fatalf("frame after large: %v %v", f, err)
			}
			if f, err = d.Next(); err != nil || !f.IsText || string(f.Line) != "status" {
				t.Fatalf("line after large: %v %v", f, err)
			}
			if f, err = d.Next(); err != nil || string(f.Packet.Arg(0)) != "after2" {
				t.Fatalf("last frame: %v %v", f, err)
			}
			if _, err = d.Next(); err != io.EOF {
				t.Fatalf("end: %v, want io.EOF", err)
			}
			// Once everything buffered is consumed, the large buffer goes back to the pool: an
			// idle connection holds none.
			if d.buf != nil && len(d.buf) > defaultBufSize {
				t.Errorf("buffer still %d bytes after the large packet was consumed", len(d.buf))
			}
		})
	}
}

// countingReader counts Read calls and bytes.
type countingReader struct {
	r     io.Reader
	reads int
	n     int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestDecoderLongLineReads checks that a line longer than the initial buffer does not make the
// decoder read (and reallocate) one byte at a time.
func TestDecoderLongLineReads(t *testing.T) {
	in := []byte(strings.Repeat("w", DefaultMaxLine-1) + "\n")
	cr := &countingReader{r: bytes.NewReader(in)}
	d := NewDecoder(cr, 0)
	f, err := d.Next()
	if err != nil || !f.IsText || len(f.Line) != DefaultMaxLine-1 {
		t.Fatalf("Next = %v, %v", f, err)
	}
	if cr.reads > 4 {
		t.Errorf("%d reads for a %d-byte line", cr.reads, len(in))
	}
	if len(d.buf) > DefaultMaxLine+1 {
		t.Errorf("buffer grew to %d for a line bounded by %d", len(d.buf), DefaultMaxLine)
	}
	allocs := testing.AllocsPerRun(10, func() {
		d := NewDecoder(bytes.NewReader(in), 0)
		if _, err := d.Next(); err != nil {
			panic(err)
		}
	})
	if allocs > 5 {
		t.Errorf("%v allocations decoding one long line", allocs)
	}
}

func TestDecoderBuffered(t *testing.T) {
	echo, status := encReq(EchoReq, "x"), []byte("status\n")
	d := NewDecoder(bytes.NewReader(cat(encReq(Noop), echo, status)), 0)
	for i, want := range []int{len(echo) + len(status), len(status), 0} {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if got := d.Buffered(); got != want {
			t.Errorf("after frame %d Buffered = %d, want %d", i, got, want)
		}
	}
}

func TestDecoderArgsDoNotOverlap(t *testing.T) {
	d := NewDecoder(bytes.NewReader(cat(encReq(SubmitJob, "fn", "uniq", "data"), encReq(Noop))), 0)
	f, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range f.Packet.Args {
		if cap(a) != len(a) {
			t.Errorf("arg %d: cap %d > len %d: appending to it would overwrite the next argument", i, cap(a), len(a))
		}
	}
	_ = append(f.Packet.Args[0], "XXXX"...)
	if string(f.Packet.Arg(1)) != "uniq" || string(f.Packet.Arg(2)) != "data" {
		t.Errorf("args after append to arg 0: %q", f.Packet.Args)
	}
}

func TestArgCountErrorMessage(t *testing.T) {
	err := error(&ArgCountError{Type: SubmitJob, Want: 3, Got: 1})
	if got, want := err.Error(), "protocol: SUBMIT_JOB needs 3 arguments, got 1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTypes(t *testing.T) {
	// Numbers, names and argument counts from gearmand's PROTOCOL and libgearman/command.cc.
	want := []struct {
		typ  Type
		num  uint32
		name string
		argc int
	}{
		{CanDo, 1, "CAN_DO", 1},
		{CantDo, 2, "CANT_DO", 1},
		{ResetAbilities, 3, "RESET_ABILITIES", 0},
		{PreSleep, 4, "PRE_SLEEP", 0},
		{Noop, 6, "NOOP", 0},
		{SubmitJob, 7, "SUBMIT_JOB", 3},
		{JobCreated, 8, "JOB_CREATED", 1},
		{GrabJob, 9, "GRAB_JOB", 0},
		{NoJob, 10, "NO_JOB", 0},
		{JobAssign, 11, "JOB_ASSIGN", 3},
		{WorkStatus, 12, "WORK_STATUS", 3},
		{WorkComplete, 13, "WORK_COMPLETE", 2},
		{WorkFail, 14, "WORK_FAIL", 1},
		{GetStatus, 15, "GET_STATUS", 1},
		{EchoReq, 16, "ECHO_REQ", 1},
		{EchoRes, 17, "ECHO_RES", 1},
		{SubmitJobBg, 18, "SUBMIT_JOB_BG", 3},
		{Error, 19, "ERROR", 2},
		{StatusRes, 20, "STATUS_RES", 5},
		{SubmitJobHigh, 21, "SUBMIT_JOB_HIGH", 3},
		{SetClientID, 22, "SET_CLIENT_ID", 1},
		{CanDoTimeout, 23, "CAN_DO_TIMEOUT", 2},
		{AllYours, 24, "ALL_YOURS", 0},
		{WorkException, 25, "WORK_EXCEPTION", 2},
		{OptionReq, 26, "OPTION_REQ", 1},
		{OptionRes, 27, "OPTION_RES", 1},
		{WorkData, 28, "WORK_DATA", 2},
		{WorkWarning, 29, "WORK_WARNING", 2},
		{GrabJobUniq, 30, "GRAB_JOB_UNIQ", 0},
		{JobAssignUniq, 31, "JOB_ASSIGN_UNIQ", 4},
		{SubmitJobHighBg, 32, "SUBMIT_JOB_HIGH_BG", 3},
		{SubmitJobLow, 33, "SUBMIT_JOB_LOW", 3},
		{SubmitJobLowBg, 34, "SUBMIT_JOB_LOW_BG", 3},
		{SubmitJobSched, 35, "SUBMIT_JOB_SCHED", 8},
		{SubmitJobEpoch, 36, "SUBMIT_JOB_EPOCH", 4},
		{SubmitReduceJob, 37, "SUBMIT_REDUCE_JOB", 5},
		{SubmitReduceJobBackground, 38, "SUBMIT_REDUCE_JOB_BACKGROUND", 5},
		{GrabJobAll, 39, "GRAB_JOB_ALL", 0},
		{JobAssignAll, 40, "JOB_ASSIGN_ALL", 5},
		{GetStatusUnique, 41, "GET_STATUS_UNIQUE", 1},
		{StatusResUnique, 42, "STATUS_RES_UNIQUE", 6},
	}
	for _, w := range want {
		t.Run(w.name, func(t *testing.T) {
			if uint32(w.typ) != w.num {
				t.Errorf("value = %d, want %d", w.typ, w.num)
			}
			if !w.typ.Valid() {
				t.Error("Valid() = false")
			}
			if got := w.typ.String(); got != w.name {
				t.Errorf("String() = %q", got)
			}
			if got := w.typ.Argc(); got != w.argc {
				t.Errorf("Argc() = %d, want %d", got, w.argc)
			}
			if w.typ.Argc() > maxArgs {
				t.Errorf("Argc() %d exceeds the decoder's %d argument slots", w.typ.Argc(), maxArgs)
			}
		})
	}
	for _, tc := range []struct {
		typ  Type
		name string
	}{
		{0, "UNKNOWN_0"},
		{5, "UNKNOWN_5"},
		{43, "UNKNOWN_43"},
		{1000, "UNKNOWN_1000"},
		{0xffffffff, "UNKNOWN_4294967295"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.typ.Valid() {
				t.Error("Valid() = true")
			}
			if got := tc.typ.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.typ.Argc(); got != 0 {
				t.Errorf("Argc() = %d, want 0", got)
			}
		})
	}
}

func TestPacketArg(t *testing.T) {
	p := &Packet{Magic: MagicReq, Type: SubmitJob, Args: [][]byte{[]byte("fn"), {}, []byte("data")}}
	for i, want := range []string{"fn", "", "data"} {
		if got := p.Arg(i); string(got) != want || got == nil {
			t.Errorf("Arg(%d) = %q, want %q", i, got, want)
		}
	}
	for _, i := range []int{3, 4, 100} {
		if got := p.Arg(i); got != nil {
			t.Errorf("Arg(%d) = %q, want nil", i, got)
		}
	}
	if got := (&Packet{Type: Noop}).Arg(0); got != nil {
		t.Errorf("Arg(0) of NOOP = %q, want nil", got)
	}
}

func TestAppendPacket(t *testing.T) {
	t.Run("example", func(t *testing.T) {
		got := AppendRequest(nil, SubmitJob, []byte("reverse"), nil, []byte("test"))
		want := []byte("\x00REQ\x00\x00\x00\x07\x00\x00\x00\x0dreverse\x00\x00test")
		if !bytes.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("appends", func(t *testing.T) {
		got := AppendResponse([]byte("prefix"), Noop)
		if want := "prefix\x00RES\x00\x00\x00\x06\x00\x00\x00\x00"; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("no allocation with room", func(t *testing.T) {
		buf := make([]byte, 0, 128)
		fn, data := []byte("fn"), []byte("data")
		allocs := testing.AllocsPerRun(100, func() {
			buf = AppendRequest(buf[:0], SubmitJob, fn, nil, data)
		})
		if allocs != 0 {
			t.Errorf("%v allocations", allocs)
		}
	})
}

// TestDecoderReleaseWhenIdle checks the event-loop mode: Release leaves an idle decoder without a
// buffer, and the next read takes one sized for the last packet, so a second large packet is read
// in one call instead of a 4 KiB read, a copy and the rest.
func TestDecoderReleaseWhenIdle(t *testing.T) {
	payload := bytes.Repeat([]byte("p"), 64<<10)
	pkt := AppendRequest(nil, EchoReq, payload)
	// One packet per read at most, as if each arrived on its own.
	cr := &countingReader{r: io.MultiReader(bytes.NewReader(pkt), bytes.NewReader(pkt))}
	d := NewDecoder(cr, 0)
	d.ReleaseWhenIdle()
	for i := range 2 {
		before := cr.reads
		f, err := d.Next()
		if err != nil || !bytes.Equal(f.Packet.Arg(0), payload) {
			t.Fatalf("packet %d: %v", i, err)
		}
		if i == 1 && cr.reads-before != 1 {
			t.Errorf("second 64 KiB packet took %d reads, want 1", cr.reads-before)
		}
		if d.Buffered() == 0 {
			d.Release()
		}
		if d.buf != nil {
			t.Fatalf("packet %d: an idle decoder still holds %d bytes after Release", i, len(d.buf))
		}
	}
	// Release keeps a partial frame.
	d = NewDecoder(bytes.NewReader(pkt[:100]), 0)
	d.ReleaseWhenIdle()
	if _, err := d.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Next = %v, want %v", err, io.ErrUnexpectedEOF)
	}
	d.Release()
	if d.Buffered() != 100 {
		t.Fatalf("Release dropped a partial frame: %d bytes buffered", d.Buffered())
	}
}
