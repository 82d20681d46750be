package server

// Stopping the server: Close at once, Shutdown gracefully, and nothing left behind.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// checkGoroutines waits until no more goroutines run than before the test started its server.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	checkFor(t, readTimeout, func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 64<<10)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

// busyServer starts a server with every kind of peer attached: a client waiting on a running job, a
// worker running it, a sleeping worker, an admin console, a peer stuck in the middle of a packet, an
// epoch job in the scheduler heap and a running job with a CAN_DO_TIMEOUT in the timeout heap.
func busyServer(t *testing.T) (s *Server, addr string, client, worker *testPeer, h string) {
	s = mustStartServer(t, nil)
	addr = addrOf(t, s)
	client, worker = mustConnect(t, addr), mustConnect(t, addr)
	sleeper, admin, stuck := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDoTimeout, "fn", "60000")
	h = client.submit(protocol.SubmitJob, "fn", "", "x")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "fn", "x")
	client.submit(protocol.SubmitJobEpoch, "later", "", fmt.Sprint(time.Now().Add(time.Hour).Unix())+"\x00x")
	sleeper.send(protocol.CanDo, "idle")
	sleeper.send(protocol.PreSleep)
	sleeper.expectQuiet()
	expectAdminList(t, admin, "status", "fn\t1\t1\t1\nidle\t0\t0\t1\nlater\t1\t0\t0\n.\n")
	stuck.write(protocol.AppendRequest(nil, protocol.EchoReq, []byte("never finished"))[:15])
	return s, addr, client, worker, h
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	s, addr, client, worker, _ := busyServer(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	client.expectClosed()
	worker.expectClosed()
	if nc, err := dialOnce(addr); err == nil {
		nc.Close()
		t.Fatal("dial succeeded after Close")
	}
	checkGoroutines(t, before)

	// Closing again, shutting down after closing and serving after closing are harmless.
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); err == nil {
		t.Fatal("Serve after Close succeeded")
	}
	checkGoroutines(t, before)
}

func TestShutdown_Graceful(t *testing.T) {
	before := runtime.NumGoroutine()
	s, addr, client, worker, h := busyServer(t)
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()

	// The listener closes at once; the running job keeps its worker and client.
	checkFor(t, readTimeout, func() error {
		if nc, err := dialOnce(addr); err == nil {
			nc.Close()
			return errors.New("still accepting connections")
		}
		return nil
	})
	client.send(protocol.SubmitJobBg, "fn", "", "y")
	client.expect(protocol.Error, errQueueError, "Server is shutting down")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.NoJob)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a job runs", err)
	default:
	}

	worker.send(protocol.WorkData, h, "partial")
	worker.send(protocol.WorkComplete, h, "result")
	client.expect(protocol.WorkData, h, "partial")
	client.expect(protocol.WorkComplete, h, "result")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(readTimeout):
		t.Fatal("Shutdown did not return after the last job finished")
	}
	client.expectClosed()
	worker.expectClosed()
	checkGoroutines(t, before)
}

func TestShutdown_ContextExpires(t *testing.T) {
	before := runtime.NumGoroutine()
	s, _, client, worker, _ := busyServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Shutdown gave up")
	}
	client.expectClosed()
	worker.expectClosed()
	checkGoroutines(t, before)
}

func TestShutdown_Idle(t *testing.T) {
	before := runtime.NumGoroutine()
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	admin := mustConnect(t, addr)
	expectAdminList(t, admin, "status", ".\n")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	admin.expectClosed()
	if nc, err := dialOnce(addr); err == nil {
		nc.Close()
		t.Fatal("dial succeeded after Shutdown")
	}
	checkGoroutines(t, before)
}

func TestShutdown_ConcurrentWithClose(t *testing.T) {
	before := runtime.NumGoroutine()
	s, _, _, _, _ := busyServer(t)
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(readTimeout):
		t.Fatal("Shutdown did not return after Close")
	}
	checkGoroutines(t, before)
}
