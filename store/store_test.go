package store

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// sampleJobs covers every field: empty and large data, the largest values each field holds, and
// fields with NUL and non-UTF-8 bytes (the record is binary, not text).
func sampleJobs() map[string]*Job {
	return map[string]*Job{
		"zero": {Seq: 1, Data: []byte{}},
		"typical": {
			Seq: 42, Handle: "H:host:42", Function: "resize_image", Unique: "img-7", Reducer: "",
			Data: []byte("payload"), Priority: 1, When: 0, Retries: 2, Created: 1_764_111_244_000_000_000,
		},
		"reduce epoch low": {
			Seq: 7, Handle: "H:x:7", Function: "count", Unique: "-", Reducer: "sum",
			Data: []byte("a\x00b\xff"), Priority: 2, When: 1_900_000_000, Created: -1,
		},
		"large data": {Seq: 3, Handle: "H:h:3", Function: "f", Data: bytes.Repeat([]byte{0xab}, 1<<20)},
		"max values": {
			Seq: math.MaxUint64, Handle: strings.Repeat("h", 63), Function: strings.Repeat("f", 512),
			Unique: strings.Repeat("\xff", 64), Reducer: strings.Repeat("r", 300), Data: []byte{0},
			Priority: 2, When: math.MaxInt64, Retries: math.MaxUint32, Created: math.MaxInt64,
		},
		"min values": {Seq: 0, When: math.MinInt64, Created: math.MinInt64, Data: []byte{}},
	}
}

func TestCodec_RoundTrip(t *testing.T) {
	for name, j := range sampleJobs() {
		t.Run(name, func(t *testing.T) {
			b := encode(nil, j)
			got, err := decode(j.Seq, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, j) {
				t.Fatalf("round trip changed the job:\n got %+v\nwant %+v", trim(got), trim(j))
			}
			// The decoded data must not alias the record (Pebble reuses its buffers).
			if len(got.Data) > 0 {
				b[len(b)-1] ^= 0xff
				if got.Data[len(got.Data)-1] != j.Data[len(j.Data)-1] {
					t.Fatal("decoded data aliases the record buffer")
				}
			}
		})
	}
}

// A nil Data decodes as empty, never nil: the server treats both alike, and replayed jobs carry []byte{}.
func TestCodec_NilDataDecodesEmpty(t *testing.T) {
	got, err := decode(5, encode(nil, &Job{Seq: 5}))
	if err != nil || got.Data == nil || len(got.Data) != 0 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestCodec_AppendsToBuffer(t *testing.T) {
	j := sampleJobs()["typical"]
	prefix := []byte("prefix")
	b := encode(bytes.Clone(prefix), j)
	if !bytes.HasPrefix(b, prefix) || !bytes.Equal(b[len(prefix):], encode(nil, j)) {
		t.Fatal("encode does not append to the buffer it is given")
	}
}

// Every prefix of a valid record, and every record with one byte changed, decodes to ErrCorrupt or
// (for a change inside a string or the data) to some job: never a panic, never another error.
func TestCodec_DamagedRecords(t *testing.T) {
	for name, j := range sampleJobs() {
		if len(j.Data) > 4096 {
			continue // the prefixes of a 1 MiB record are many and teach nothing new
		}
		t.Run(name, func(t *testing.T) {
			rec := encode(nil, j)
			for n := 0; n < len(rec); n++ {
				if _, err := decode(j.Seq, rec[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(rec), err)
				}
			}
			if _, err := decode(j.Seq, append(bytes.Clone(rec), 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trailing byte: %v, want ErrCorrupt", err)
			}
			for i := range rec {
				for _, x := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(rec)
					bad[i] ^= x
					if _, err := decode(j.Seq, bad); err != nil && !errors.Is(err, ErrCorrupt) {
						t.Fatalf("byte %d ^ %#x: %v, want nil or ErrCorrupt", i, x, err)
					}
				}
			}
		})
	}
}

func TestCodec_Garbled(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"version only", []byte{recordVersion}},
		{"unknown version", []byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"priority out of range", []byte{recordVersion, 3, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"retries over 32 bits", append([]byte{recordVersion, 0}, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 0)},
		{"unterminated varint", append([]byte{recordVersion, 0}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"length past the end", []byte{recordVersion, 0, 0, 0, 0, 5, 'a'}},
		{"huge length", append([]byte{recordVersion, 0, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if j, err := decode(1, tc.rec); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %+v, %v; want ErrCorrupt", j, err)
			}
		})
	}
}

func TestCodec_ErrorNamesTheRecord(t *testing.T) {
	_, err := decode(1234, []byte{9})
	if err == nil || !strings.Contains(err.Error(), "1234") {
		t.Fatalf("error %v does not name record 1234", err)
	}
}

// FuzzDecode feeds the decoder what a damaged disk could hold. It must never panic; what it accepts
// must encode back to the same bytes (the encoding is canonical), so nothing is silently changed.
func FuzzDecode(f *testing.F) {
	for _, j := range sampleJobs() {
		if len(j.Data) < 4096 {
			f.Add(encode(nil, j))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion, 2, 0x80})
	f.Fuzz(func(t *testing.T, rec []byte) {
		j, err := decode(99, rec)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if j.Seq != 99 || j.Priority > 2 || j.Data == nil {
			t.Fatalf("decoded an invalid job %+v", trim(j))
		}
		if again := encode(nil, j); !bytes.Equal(again, rec) && canonical(rec) {
			t.Fatalf("re-encoding changed the record:\n got %x\nwant %x", again, rec)
		}
	})
}

// canonical reports whether rec uses the shortest varints, as encode writes them. A record with a
// padded varint ("0x80 0x00" for 0) decodes fine but cannot come back byte for byte.
func canonical(rec []byte) bool {
	j, err := decode(0, rec)
	return err == nil && len(encode(nil, j)) == len(rec)
}

func TestParseSyncMode(t *testing.T) {
	for _, m := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		got, err := ParseSyncMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseSyncMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for _, bad := range []string{"", "Always", "sometimes", "fsync"} {
		if _, err := ParseSyncMode(bad); err == nil || !strings.Contains(err.Error(), "always, interval or none") {
			t.Errorf("ParseSyncMode(%q): %v, want an error listing the modes", bad, err)
		}
	}
	if got := SyncMode(7).String(); got != "SyncMode(7)" {
		t.Errorf("SyncMode(7).String() = %q", got)
	}
}

// trim shortens a job's large fields for failure messages.
func trim(j *Job) Job {
	c := *j
	if len(c.Data) > 32 {
		c.Data = append(c.Data[:32:32], "…"...)
	}
	return c
}

// encode sizes the record first: one allocation, however many fields (it runs under the server's
// lock, once per background submit).
func TestCodec_EncodeAllocatesOnce(t *testing.T) {
	for name, j := range sampleJobs() {
		if n := testing.AllocsPerRun(10, func() { encode(nil, j) }); n != 1 {
			t.Errorf("%s: encode made %v allocations, want 1", name, n)
		}
		if b := encode(make([]byte, 0, 1<<21), j); cap(b) != 1<<21 {
			t.Errorf("%s: encode grew a buffer that had room", name)
		}
	}
}
