package protocol

import (
	"bytes"
	"testing"
)

// Perl's Gearman::Worker sends an empty result as WORK_COMPLETE "HANDLE" with no separator.
func TestDecoder_BareHandleMeansEmptyData(t *testing.T) {
	for _, typ := range []Type{WorkComplete, WorkData, WorkWarning, WorkException} {
		t.Run(typ.String(), func(t *testing.T) {
			in := AppendPacket(nil, MagicReq, typ, []byte("H:x:1"))
			f, err := NewDecoder(bytes.NewReader(in), 0).Next()
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Packet.Args) != 2 || string(f.Packet.Args[0]) != "H:x:1" || len(f.Packet.Args[1]) != 0 {
				t.Fatalf("args %q", f.Packet.Args)
			}
		})
	}
	// Other two-argument packets still need their separator.
	in := AppendPacket(nil, MagicReq, CanDoTimeout, []byte("fn"))
	if _, err := NewDecoder(bytes.NewReader(in), 0).Next(); err == nil {
		t.Fatal("CAN_DO_TIMEOUT without its timeout accepted")
	}
}
