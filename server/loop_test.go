package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/syncbuf"
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
	// 12 MiB of ECHO replies: more than the kernel buffers of both sockets hold, the peer's being
	// kept small (receive buffers autotune up to 32 MiB here; sending 32 MiB instead took 8 s
	// with the race detector and timed out on a busy machine).
	p.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	chunk := strings.Repeat("e", 1<<20)
	for range 12 {
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

// opaqueListener hands out connections that hide their file descriptor, as a wrapping listener
// (TLS, a proxy protocol) would.
type opaqueListener struct{ net.Listener }

func (l opaqueListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{nc}, nil
}

// noControlListener hands out connections whose descriptor cannot be taken over (Control fails)
// but can be read and written raw: an event loop cannot adopt them, as when dup(2) fails.
type noControlListener struct{ net.Listener }

func (l noControlListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return noControlConn{nc, noControlRawConn{rc}}, nil
}

type noControlConn struct {
	net.Conn
	rc syscall.RawConn
}

func (c noControlConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

type noControlRawConn struct{ syscall.RawConn }

func (noControlRawConn) Control(func(uintptr)) error { return errors.New("no control in this test") }

// Serve takes any listener: a connection without a descriptor cannot go to an event loop and is
// served by its own goroutines, next to loop-served ones, with jobs passing between them.
func TestLoop_ConnectionWithoutDescriptor(t *testing.T) {
	testMixedServing(t, func(ln net.Listener) net.Listener { return opaqueListener{ln} })
}

// A connection no loop could adopt is served by goroutines that read and write it raw; jobs pass
// between it and loop-served ones, and each side writes only the sockets it may.
func TestLoop_ConnectionNotAdopted(t *testing.T) {
	testMixedServing(t, func(ln net.Listener) net.Listener { return noControlListener{ln} })
}

// testMixedServing serves one peer through an event loop and one through goroutines, from the
// listener wrap makes, and passes jobs between them both ways.
func testMixedServing(t *testing.T, wrap func(net.Listener) net.Listener) {
	before := runtime.NumGoroutine()
	s := mustStartServer(t, func(o *Options) { o.IOLoops = 1 })
	plainAddr := addrOf(t, s)
	wrapped, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(wrap(wrapped)); err != nil {
		t.Fatal(err)
	}
	wrappedAddr := wrapped.Addr().String()

	a, b := mustConnect(t, plainAddr), mustConnect(t, wrappedAddr)
	for _, p := range []*testPeer{a, b} {
		p.send(protocol.EchoReq, "hi")
		p.expect(protocol.EchoRes, "hi")
	}
	s.mu.Lock()
	var looped, own int
	for c := range s.conns {
		if _, ownGoroutines := c.drv.(goroutines); !ownGoroutines {
			looped++
		} else {
			own++
		}
	}
	s.mu.Unlock()
	if eventLoops && (looped != 1 || own != 1) {
		t.Fatalf("%d connections on the loop and %d with goroutines, want 1 and 1", looped, own)
	}
	roundTripVia(t, plainAddr, wrappedAddr)
	roundTripVia(t, wrappedAddr, plainAddr)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a.expectClosed()
	b.expectClosed()
	checkGoroutines(t, before)
}

// fileBackedListener hands out connections whose descriptor is a regular file's: a loop can take
// it over, but epoll refuses to watch it (EPERM), as it would any descriptor it cannot poll.
type fileBackedListener struct {
	net.Listener
	path string
}

func (l fileBackedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(l.path)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return fileBackedConn{nc, f}, nil
}

type fileBackedConn struct {
	net.Conn
	f *os.File
}

func (c fileBackedConn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }
func (c fileBackedConn) Close() error                          { return errors.Join(c.Conn.Close(), c.f.Close()) }

// A connection the loop cannot watch is logged and dropped: its peer sees the connection close,
// the loop and the other connections go on, and Close leaves nothing behind.
func TestLoop_ConnectionEpollCannotWatch(t *testing.T) {
	if !eventLoops {
		t.Skip("no event loops on " + runtime.GOOS)
	}
	before := runtime.NumGoroutine()
	var logs syncbuf.Buffer
	s := mustStartServer(t, func(o *Options) {
		o.IOLoops = 1
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(fileBackedListener{ln, path}); err != nil {
		t.Fatal(err)
	}

	refused := mustConnect(t, ln.Addr().String())
	refused.expectClosed()
	checkFor(t, readTimeout, func() error {
		if !strings.Contains(logs.String(), "cannot watch the connection") {
			return fmt.Errorf("no log line for the refused connection; log:\n%s", logs.String())
		}
		return nil
	})
	roundTrip(t, addrOf(t, s))
	checkFor(t, readTimeout, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if n := len(s.conns); n != 0 {
			return fmt.Errorf("%d connections still known after their peers left", n)
		}
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, before)
}
