package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// connOf finds the server's connection whose peer has the given local address.
func connOf(s *Server, p *testPeer) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.nc.RemoteAddr().String() == p.nc.LocalAddr().String() {
			return c
		}
	}
	return nil
}

// A packet that stops half way is closed after PacketTimeout, a connection that never says
// anything after SilentTimeout; peers that talk, idle workers included, stay. The sweep is called
// with a chosen time, so the test waits for nothing but the server's reading.
func TestWatch_SlowPacketAndSilence(t *testing.T) {
	s := mustStartServer(t, func(o *Options) { o.PacketTimeout, o.SilentTimeout = time.Minute, 5*time.Minute })
	addr := addrOf(t, s)
	slow, silent, worker := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "fn")
	worker.send(protocol.PreSleep)
	echo := protocol.AppendRequest(nil, protocol.EchoReq, []byte("hello"))
	slow.write(echo[:7]) // a header cut short
	checkFor(t, readTimeout, func() error {
		c, w := connOf(s, slow), connOf(s, worker)
		if c == nil || c.in.partialSince.Load() == 0 || w == nil || !w.in.spoke.Load() {
			return fmt.Errorf("the server has not seen the partial packet and the worker yet")
		}
		return nil
	})
	s.sweep(time.Now().Add(30 * time.Second))
	slow.write(echo[7:9]) // still within the minute: more bytes of the same packet do not reset it
	s.sweep(time.Now().Add(2 * time.Minute))
	slow.expectClosed()
	if c := connOf(s, silent); c == nil {
		t.Fatal("the silent connection was closed before its timeout")
	}
	s.sweep(time.Now().Add(6 * time.Minute))
	silent.expectClosed()
	worker.send(protocol.EchoReq, "still here")
	worker.expect(protocol.EchoRes, "still here")
	if st := s.Stats(); st.ConnectionsTimedOut != 1 || st.ConnectionsSilent != 1 {
		t.Errorf("stats %+v: want one closed for a slow packet, one for silence", st)
	}
}

// A peer that streams packets back to back, always with one in flight, is not slow: each new
// packet restarts the clock.
func TestInputWatch_NewPacketRestartsTheClock(t *testing.T) {
	var w inputWatch
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	w.waiting(3, clock)
	first := w.partialSince.Load()
	now = now.Add(time.Second)
	w.waiting(5, clock) // more of the same packet
	if w.partialSince.Load() != first {
		t.Fatal("more bytes of one packet moved its start")
	}
	w.sawFrame()
	now = now.Add(time.Second)
	w.waiting(2, clock) // the next packet began
	if got := w.partialSince.Load(); got != now.UnixNano() {
		t.Fatalf("a new packet kept the old start: %d", got)
	}
	w.waiting(0, clock)
	if w.partialSince.Load() != 0 || !w.spoke.Load() {
		t.Fatal("nothing pending should clear the start; a frame means the peer spoke")
	}
}
