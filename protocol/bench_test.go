package protocol

import (
	"bytes"
	"testing"
)

// repeatReader returns data over and over, filling every Read completely.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func submitJobPacket() []byte {
	return AppendRequest(nil, SubmitJob, []byte("reverse"), []byte("unique-0123456789"), bytes.Repeat([]byte("d"), 100))
}

// TestDecodeZeroAllocs checks that decoding allocates nothing once the decoder's buffer exists.
func TestDecodeZeroAllocs(t *testing.T) {
	for name, stream := range map[string][]byte{
		"submit job": submitJobPacket(),
		"mixed": cat(submitJobPacket(), encReq(EchoReq, "a\x00b"), []byte("status\r\n"), encReq(Noop),
			encReq(SubmitReduceJob, "fn", "u", "r", "", "data"), []byte("show jobs\n")),
	} {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(&repeatReader{data: stream}, 1<<20)
			for range 1000 {
				d.Next() //nolint:errcheck // warm up, errors checked below
			}
			var errs int
			allocs := testing.AllocsPerRun(1000, func() {
				f, err := d.Next()
				if err != nil || f == nil {
					errs++
				}
			})
			if allocs != 0 || errs != 0 {
				t.Errorf("%v allocs/op, %d errors", allocs, errs)
			}
		})
	}
}

func BenchmarkDecodeSubmitJob(b *testing.B) {
	pkt := submitJobPacket()
	d := NewDecoder(&repeatReader{data: pkt}, 1<<20)
	if _, err := d.Next(); err != nil { // allocate the buffer outside the measurement
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		f, err := d.Next()
		if err != nil || f.Packet.Type != SubmitJob || len(f.Packet.Args) != 3 {
			b.Fatalf("Next = %v, %v", f, err)
		}
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	fn, uniq, data := []byte("reverse"), []byte("unique-0123456789"), bytes.Repeat([]byte("d"), 100)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(submitJobPacket())))
	for b.Loop() {
		buf = AppendRequest(buf[:0], SubmitJob, fn, uniq, data)
	}
	if len(buf) != len(submitJobPacket()) {
		b.Fatal("wrong length")
	}
}
