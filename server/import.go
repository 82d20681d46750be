package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Import submits background jobs taken over from elsewhere (gearmand's persistent queue) as a
// client would, through the core's own handlers, and waits until each is acknowledged: stored,
// when the server has a store. A job whose function and unique key match one already queued joins
// it (coalescing), so importing the same jobs again adds none. It returns how many were accepted;
// the error names the first refusal.
func (s *Server) Import(ctx context.Context, jobs []store.Job) (int, error) {
	link := &importLink{done: make(chan struct{}, len(jobs))}
	p := core.NewPeer(0, "import", s.log.With("conn", "import"), link)
	s.core.Connect(p)
	defer s.core.Disconnect(directTx{}, p)
	for i := range jobs {
		j := &jobs[i]
		pkt := &protocol.Packet{Magic: protocol.MagicReq}
		fn, unique := []byte(j.Function), []byte(j.Unique)
		switch {
		case j.When > 0:
			pkt.Type = protocol.SubmitJobEpoch
			pkt.Args = [][]byte{fn, unique, []byte(strconv.FormatInt(j.When, 10)), j.Data}
		case j.Priority == 0:
			pkt.Type = protocol.SubmitJobHighBg
		case j.Priority == 2:
			pkt.Type = protocol.SubmitJobLowBg
		default:
			pkt.Type = protocol.SubmitJobBg
		}
		if pkt.Args == nil {
			pkt.Args = [][]byte{fn, unique, j.Data}
		}
		s.core.Handle(directTx{}, p, pkt)
	}
	for range jobs {
		select {
		case <-link.done:
		case <-ctx.Done():
			return link.created(), fmt.Errorf("importing jobs: %w", ctx.Err())
		}
	}
	return link.created(), link.firstError()
}

// importLink is Import's peer: it lives in-process, so the core's replies come to Receive (and
// to Release, for JOB_CREATED held until the job is stored).
type importLink struct {
	mu      sync.Mutex
	ok      int
	errText string
	done    chan struct{} // one per reply
}

func (l *importLink) Hold() core.Held { return importHeld{l} }

type importHeld struct{ l *importLink }

func (h importHeld) Release(pkt *protocol.Packet) { h.l.Receive(pkt) }

func (l *importLink) Receive(pkt *protocol.Packet) {
	l.mu.Lock()
	switch pkt.Type {
	case protocol.JobCreated:
		l.ok++
	case protocol.Error:
		if l.errText == "" && len(pkt.Args) == 2 {
			l.errText = string(pkt.Args[0]) + ": " + string(pkt.Args[1])
		}
	default:
		l.mu.Unlock()
		return // not a reply to a submit (a background job sends none)
	}
	l.mu.Unlock()
	l.done <- struct{}{}
}

func (l *importLink) created() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

func (l *importLink) firstError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errText != "" {
		return fmt.Errorf("a job was refused: %s", l.errText)
	}
	return nil
}
