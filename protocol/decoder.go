package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gearhq/gear/internal/bufpool"
)

// Decoder errors. ErrBadMagic, ErrTooLarge and ErrLineTooLong leave the stream unsynchronised: the
// connection cannot continue after them. ErrUnknownType does too, since gearmand closes on it and a
// peer that sends one is not speaking Gearman.
var (
	ErrBadMagic    = errors.New("protocol: bad packet magic")
	ErrUnknownType = errors.New("protocol: unknown packet type")
	ErrTooLarge    = errors.New("protocol: packet larger than the configured maximum")
	ErrLineTooLong = errors.New("protocol: admin line too long")
)

// ArgCountError reports a packet whose data holds fewer NUL separators than its type needs. The packet
// was consumed whole, so the stream stays usable: the server answers it with an ERROR packet.
type ArgCountError struct {
	Type Type
	Want int
	Got  int
}

func (e *ArgCountError) Error() string {
	return fmt.Sprintf("protocol: %s needs %d arguments, got %d", e.Type, e.Want, e.Got)
}

// Frame is one unit read from a connection: a binary packet or, when the first byte is not NUL, one
// line of the text admin protocol (without its line ending).
type Frame struct {
	Packet Packet
	Line   []byte
	IsText bool
}

const (
	defaultBufSize = 4096
	// DefaultMaxLine bounds an admin line; real commands are a few dozen bytes.
	DefaultMaxLine = 8192
	maxArgs        = 8
)

// Decoder reads frames from a byte stream. It owns one buffer, grown only to the size of the largest
// packet actually seen (never beyond MaxPacket) and shrunk again after a large packet, so an idle
// connection costs a few KiB.
type Decoder struct {
	r          io.Reader
	buf        []byte
	start      int // first unread byte
	end        int // end of valid data
	MaxPacket  int // largest accepted data length; 0 means no limit beyond the uint32 field
	MaxLine    int
	args       [maxArgs][]byte
	frameStore Frame
	// sizeHint is the size of the last packet, for the next buffer; kept only after ReleaseWhenIdle.
	sizeHint    int
	idleRelease bool
}

// maxSizeHint bounds the buffer taken for a read on the strength of the last packet's size.
const maxSizeHint = 1 << 20

// ReleaseWhenIdle is for an owner that reads only when the stream has data (an event loop) and
// calls Release whenever it has read everything there is: then an idle stream holds no buffer at
// all, and the next read takes one the size of the last packet, so a stream of large packets is
// read in one call each instead of a first small read and a copy.
func (d *Decoder) ReleaseWhenIdle() { d.idleRelease = true }

// Release gives the buffer back to its pool if it holds no unread bytes. Frames returned before
// must no longer be used.
func (d *Decoder) Release() {
	if d.buf != nil && d.start == d.end {
		putBuf(d.buf)
		d.buf, d.start, d.end = nil, 0, 0
	}
}

// NewDecoder returns a decoder reading from r that refuses packets with more than maxPacket data bytes.
func NewDecoder(r io.Reader, maxPacket int) *Decoder {
	return &Decoder{r: r, MaxPacket: maxPacket, MaxLine: DefaultMaxLine}
}

// Buffered reports how many bytes the decoder has read from its reader that no frame returned by
// Next has covered yet: the beginning of the following frames, possibly an incomplete one. It does
// not read. Zero means the next call to Next reads from the reader, and may block there; a caller
// that batches its writes flushes them first (gear bench's peers do). Non-zero does not promise a
// whole frame.
func (d *Decoder) Buffered() int { return d.end - d.start }

// fill ensures at least n unread bytes are buffered.
func (d *Decoder) fill(n int) error {
	if d.end-d.start >= n {
		return nil
	}
	if d.buf == nil {
		d.buf = getBuf(max(defaultBufSize, n, min(d.sizeHint, maxSizeHint)))
	}
	if d.start+n > len(d.buf) {
		if n > len(d.buf) {
			nb := getBuf(n)
			copy(nb, d.buf[d.start:d.end])
			putBuf(d.buf)
			d.buf = nb
		} else {
			copy(d.buf, d.buf[d.start:d.end])
		}
		d.end -= d.start
		d.start = 0
	}
	for d.end-d.start < n {
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		if err != nil {
			if d.end-d.start >= n {
				return nil
			}
			if err == io.EOF && d.end != d.start {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// release drops a buffer grown for one large packet once it has been consumed, so the memory goes
// back to the runtime instead of staying pinned to an idle connection.
func (d *Decoder) release() {
	if len(d.buf) > defaultBufSize {
		d.Release()
	}
}

// Large buffers come from, and go back to, pools shared by all decoders (internal/bufpool), so a
// stream of large packets reuses memory and an idle connection still holds none.

// getBuf returns a buffer of at least n bytes (4 KiB, else a power of two).
func getBuf(n int) []byte {
	if n <= defaultBufSize {
		if b, ok := smallBufs.Get().(*[defaultBufSize]byte); ok {
			return b[:]
		}
		return make([]byte, defaultBufSize)
	}
	b := bufpool.Get(n)
	return b[:cap(b)]
}

// smallBufs recycles the default buffers, which decoders released when idle take and give back
// once per read.
var smallBufs sync.Pool

// putBuf gives a buffer from getBuf back to its pool.
func putBuf(b []byte) {
	if len(b) == defaultBufSize {
		smallBufs.Put((*[defaultBufSize]byte)(b))
	} else if len(b) > defaultBufSize {
		bufpool.Put(b)
	}
}

// Next decodes the next frame. The returned frame aliases the decoder's buffer until the next call.
// An *ArgCountError comes with the frame's Packet.Type set; other errors end the stream.
func (d *Decoder) Next() (*Frame, error) {
	d.release()
	if err := d.fill(1); err != nil {
		return nil, err
	}
	if d.buf[d.start] != 0 {
		return d.nextLine()
	}
	return d.nextPacket()
}

func (d *Decoder) nextPacket() (*Frame, error) {
	if err := d.fill(HeaderSize); err != nil {
		return nil, err
	}
	h := d.buf[d.start : d.start+HeaderSize]
	var f = &d.frameStore
	*f = Frame{}
	copy(f.Packet.Magic[:], h[:4])
	if f.Packet.Magic != MagicReq && f.Packet.Magic != MagicRes {
		return nil, ErrBadMagic
	}
	t := Type(binary.BigEndian.Uint32(h[4:8]))
	size := binary.BigEndian.Uint32(h[8:12])
	f.Packet.Type = t
	if !t.Valid() || t == 5 {
		return f, ErrUnknownType
	}
	if d.MaxPacket > 0 && uint64(size) > uint64(d.MaxPacket) {
		return f, ErrTooLarge
	}
	total := HeaderSize + int(size)
	if d.idleRelease {
		d.sizeHint = total
	}
	if err := d.fill(total); err != nil {
		return nil, err
	}
	data := d.buf[d.start+HeaderSize : d.start+total]
	d.start += total
	argc := t.Argc()
	args := d.args[:0]
	for i := 0; i < argc-1; i++ {
		j := bytes.IndexByte(data, 0)
		if j < 0 && i == 0 && argc == 2 && t.emptyDataOptional() {
			// "HANDLE" alone: some workers (Perl's Gearman::Worker for an empty result) leave out
			// the separator before empty data.
			args = append(args, data[:len(data):len(data)])
			data = data[len(data):]
			continue
		}
		if j < 0 {
			f.Packet.Args = nil
			return f, &ArgCountError{Type: t, Want: argc, Got: i + 1}
		}
		args = append(args, data[:j:j])
		data = data[j+1:]
	}
	if argc > 0 {
		args = append(args, data[:len(data):len(data)])
	}
	f.Packet.Args = args
	return f, nil
}

func (d *Decoder) nextLine() (*Frame, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(d.buf[d.start+scanned:d.end], '\n'); i >= 0 {
			if scanned+i > d.MaxLine {
				return nil, ErrLineTooLong
			}
			line := d.buf[d.start : d.start+scanned+i]
			d.start += scanned + i + 1
			line = bytes.TrimSuffix(line, []byte{'\r'})
			f := &d.frameStore
			*f = Frame{IsText: true, Line: line}
			return f, nil
		}
		scanned = d.end - d.start
		if scanned > d.MaxLine {
			return nil, ErrLineTooLong
		}
		if scanned == len(d.buf) {
			// The buffer holds nothing but this unterminated line: grow it geometrically (up to
			// MaxLine+1) so that fill does not read and reallocate a long line one byte at a time.
			nb := make([]byte, min(2*len(d.buf), d.MaxLine+1))
			d.end = copy(nb, d.buf[d.start:d.end])
			d.buf, d.start = nb, 0
		}
		if err := d.fill(scanned + 1); err != nil {
			return nil, err
		}
	}
}
