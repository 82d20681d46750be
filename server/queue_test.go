package server

import (
	"strings"
	"testing"

	"github.com/gearhq/gear/protocol"
)

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
