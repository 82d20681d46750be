package server

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/gearhq/gear/protocol"
)

// A server holds up to millions of queued jobs: the job struct must stay within the 112-byte size
// class (the next one up costs 16 MiB more per million jobs). Rare fields belong in jobExtra.
func TestJobStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(job{}); size > 112 {
		t.Fatalf("job is %d bytes, want at most 112: move rarely used fields to jobExtra", size)
	}
}

// Payloads of large jobs come from a buffer pool and go back when a job ends: a recycled buffer
// must never show through in a job still alive.
func TestLargePayloadsSurviveBufferReuse(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	client, worker := mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "big")
	payload := func(i int) string {
		return strings.Repeat(string(rune('a'+i%26)), 9000+i*37)
	}
	handles := []string{client.submit(protocol.SubmitJobBg, "big", "", payload(0))}
	for i := 0; i < 60; i++ {
		// One more job joins the queue before each one ends, so buffers are reused while others live.
		handles = append(handles, client.submit(protocol.SubmitJobBg, "big", "", payload(i+1)))
		worker.send(protocol.GrabJob)
		worker.expect(protocol.JobAssign, handles[i], "big", payload(i))
		worker.send(protocol.WorkComplete, handles[i], "")
	}
}

// A handle is HandlePrefix:seq, parsed back exactly as written: anything else is not this
// server's handle (and so not a job), never a near miss of one.
func TestParseHandle(t *testing.T) {
	s := &Server{prefix: "H:host:"}
	for _, tc := range []struct {
		handle string
		seq    uint64
		ok     bool
	}{
		{"H:host:1", 1, true},
		{"H:host:18446744073709551615", 18446744073709551615, true},
		{"H:host:18446744073709551616", 0, false}, // overflow
		{"H:host:007", 0, false},
		{"H:host:0", 0, false},
		{"H:host:", 0, false},
		{"H:host:12a", 0, false},
		{"H:host:-1", 0, false},
		{"H:other:1", 0, false},
		{"H:host", 0, false},
		{"", 0, false},
	} {
		seq, ok := s.parseHandle([]byte(tc.handle))
		if seq != tc.seq || ok != tc.ok {
			t.Errorf("parseHandle(%q) = %d, %v; want %d, %v", tc.handle, seq, ok, tc.seq, tc.ok)
		}
	}
}

// Handles are parsed for every WORK_* packet: without an allocation.
func TestParseHandleDoesNotAllocate(t *testing.T) {
	s := &Server{prefix: "H:host:"}
	h := []byte("H:host:1234567")
	if n := testing.AllocsPerRun(100, func() { s.parseHandle(h) }); n != 0 {
		t.Fatalf("%.0f allocations per parse", n)
	}
}
