package server

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// Under an event loop a connection is served without goroutines of its own: 200 peers, each
// answered, add none (a goroutine per connection would add 400).
func TestLoop_ConnectionsCostNoGoroutines(t *testing.T) {
	if !eventLoops {
		t.Skip("no event loops on " + runtime.GOOS)
	}
	s := mustStartServer(t, func(o *Options) { o.IOLoops = 2 })
	addr := addrOf(t, s)
	roundTrip(t, addr)
	before := runtime.NumGoroutine()
	peers := make([]*testPeer, 200)
	for i := range peers {
		peers[i] = mustConnect(t, addr)
	}
	for i, p := range peers {
		msg := strings.Repeat("x", i)
		p.send(protocol.EchoReq, msg)
		p.expect(protocol.EchoRes, msg)
	}
	if n := runtime.NumGoroutine(); n > before+10 {
		t.Fatalf("%d goroutines with 200 connections open, %d before", n, before)
	}
	if n := connCount(s); n != 200 {
		t.Fatalf("%d connections tracked, want 200", n)
	}
	for _, p := range peers {
		p.close()
	}
	checkFor(t, readTimeout, func() error {
		if n := connCount(s); n != 0 {
			return fmt.Errorf("%d connections still tracked", n)
		}
		return nil
	})
}

// A graceful shutdown flushes every peer's replies, but a peer that does not read cannot hold it up
// beyond closeFlushTimeout.
func TestShutdown_PeerThatDoesNotReadIsCutOff(t *testing.T) {
	old := closeFlushTimeout
	closeFlushTimeout = 300 * time.Millisecond
	t.Cleanup(func() { closeFlushTimeout = old })
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	p := mustConnect(t, addr)
	// 32 MiB of ECHO replies: more than the kernel buffers of both sockets hold.
	chunk := strings.Repeat("e", 1<<20)
	for range 32 {
		p.send(protocol.EchoReq, chunk)
	}
	reader := mustConnect(t, addr)
	reader.send(protocol.EchoReq, "still served")
	reader.expect(protocol.EchoRes, "still served")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; a peer that does not read held it up", err)
	}
	reader.expectClosed()
}
