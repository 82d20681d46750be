package server

// Test helpers: a real server on 127.0.0.1:0, a raw Gearman peer speaking bytes over TCP, polling with
// a deadline, and an injectable clock. Every helper takes testing.TB and fails fast; none may be called
// from a goroutine other than the test's own (they call Fatal).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

const (
	// testPrefix is the job handle prefix of every test server, so handles are "H:test:1", "H:test:2"…
	testPrefix = "H:test"
	// readTimeout bounds every wait for a reply. Replies on loopback take microseconds; this only
	// turns a missing reply into a failure instead of a hung test.
	readTimeout = 3 * time.Second
)

// handle returns the n-th job handle a test server hands out.
func handle(n int) string { return testPrefix + ":" + strconv.Itoa(n) }

// testIOLoops is Options.IOLoops for test servers: the default, or GEAR_TEST_IO_LOOPS (the suite
// runs once more with 0, so the goroutine-per-connection path stays tested too).
func testIOLoops(tb testing.TB) int {
	v := os.Getenv("GEAR_TEST_IO_LOOPS")
	if v == "" {
		return DefaultOptions().IOLoops
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("GEAR_TEST_IO_LOOPS: %v", err)
	}
	return n
}

// mustStartServer starts a server on 127.0.0.1:0 with the default options changed by configure (may be
// nil) and closes it when the test ends.
func mustStartServer(tb testing.TB, configure func(*Options)) *Server {
	tb.Helper()
	opts := DefaultOptions()
	opts.Listen = nil
	opts.HandlePrefix = testPrefix
	opts.IOLoops = testIOLoops(tb)
	if configure != nil {
		configure(&opts)
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		tb.Fatalf("listen: %v", err)
	}
	if err := s.Serve(ln); err != nil {
		ln.Close()
		s.Close()
		tb.Fatalf("Serve: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// addrOf returns the address of the server's (first) listener.
func addrOf(tb testing.TB, s *Server) string {
	tb.Helper()
	addrs := s.Addrs()
	if len(addrs) == 0 {
		tb.Fatal("server has no listener")
	}
	return addrs[0].String()
}

// connCount reports how many connections the server currently tracks.
func connCount(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// dialOnce makes one connection attempt, for checking whether the server still listens.
func dialOnce(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}

// tracked reports whether the server still tracks the connection of peer p.
func tracked(s *Server, p *testPeer) bool {
	local := p.nc.LocalAddr().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.nc.RemoteAddr().String() == local {
			return true
		}
	}
	return false
}

// checkDisconnected waits until the server has processed the departure of peer p, which must have
// had a reply before (so it was accepted). The caller closes p, or the server drops it.
func checkDisconnected(tb testing.TB, s *Server, p *testPeer) {
	tb.Helper()
	checkFor(tb, readTimeout, func() error {
		if tracked(s, p) {
			return fmt.Errorf("the server still tracks %s", p.nc.LocalAddr())
		}
		return nil
	})
}

// packet is a decoded server packet with its arguments copied out of the decoder's buffer.
type packet struct {
	typ  protocol.Type
	args []string
}

func (p packet) String() string { return fmt.Sprintf("%s%q", p.typ, p.args) }

// testPeer is a raw Gearman peer: it writes request packets and admin lines byte by byte as a client,
// worker or admin tool would, and reads what the server sends back.
type testPeer struct {
	tb    testing.TB
	nc    net.Conn
	br    *bufio.Reader
	dec   *protocol.Decoder
	syncN int
}

// mustConnect dials the server and closes the connection when the test ends.
func mustConnect(tb testing.TB, addr string) *testPeer {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	return newTestPeer(tb, nc)
}

// newTestPeer is a peer on a connection made by the test (TLS, say), closed when the test ends.
func newTestPeer(tb testing.TB, nc net.Conn) *testPeer {
	tb.Cleanup(func() { nc.Close() })
	p := &testPeer{tb: tb, nc: nc, br: bufio.NewReader(nc)}
	p.dec = protocol.NewDecoder(p.br, 0)
	return p
}

// write sends raw bytes.
func (p *testPeer) write(b []byte) {
	p.tb.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := p.nc.Write(b); err != nil {
		p.tb.Fatalf("write: %v", err)
	}
}

// send writes one request packet (\0REQ magic).
func (p *testPeer) send(t protocol.Type, args ...string) {
	p.tb.Helper()
	p.write(protocol.AppendRequest(nil, t, byteArgs(args)...))
}

func byteArgs(args []string) [][]byte {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	return b
}

// next reads the next binary packet, failing the test if none arrives within readTimeout.
func (p *testPeer) next() packet {
	p.tb.Helper()
	return p.nextWithin(readTimeout, "")
}

// nextWithin is next with its own wait, and what the test had seen so far to say if none comes.
func (p *testPeer) nextWithin(wait time.Duration, progress string) packet {
	p.tb.Helper()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	f, err := p.dec.Next()
	if err != nil {
		p.tb.Fatalf("waiting for a packet%s: %v", progress, err)
	}
	if f.IsText {
		p.tb.Fatalf("got text line %q, want a packet", f.Line)
	}
	if f.Packet.Magic != protocol.MagicRes {
		p.tb.Fatalf("packet %s has magic %q, want \\0RES", f.Packet.Type, f.Packet.Magic[:])
	}
	pk := packet{typ: f.Packet.Type, args: make([]string, len(f.Packet.Args))}
	for i, a := range f.Packet.Args {
		pk.args[i] = string(a)
	}
	return pk
}

// expect reads the next packet and checks its type and every argument.
func (p *testPeer) expect(t protocol.Type, args ...string) packet {
	p.tb.Helper()
	got := p.next()
	if want := (packet{typ: t, args: args}); got.typ != t || !slices.Equal(got.args, args) {
		p.tb.Fatalf("got %v, want %v", got, want)
	}
	return got
}

// expectType reads the next packet and checks only its type.
func (p *testPeer) expectType(t protocol.Type) packet {
	p.tb.Helper()
	got := p.next()
	if got.typ != t {
		p.tb.Fatalf("got %v, want a %s", got, t)
	}
	return got
}

// expectError reads the next packet and checks it is ERROR with the given code.
func (p *testPeer) expectError(code string) packet {
	p.tb.Helper()
	got := p.next()
	if got.typ != protocol.Error || len(got.args) != 2 || got.args[0] != code {
		p.tb.Fatalf("got %v, want ERROR %s", got, code)
	}
	return got
}

// submit sends a SUBMIT_* packet with function, unique and data and returns the JOB_CREATED handle.
func (p *testPeer) submit(t protocol.Type, fn, unique, data string) string {
	p.tb.Helper()
	p.send(t, fn, unique, data)
	return p.expectType(protocol.JobCreated).args[0]
}

// pending returns the packets the server had queued to this peer before now. It sends GET_STATUS for
// a handle that cannot exist: the handler takes the server lock, so every packet queued to this peer
// by a handler that ran before it (on any connection) arrives before its STATUS_RES.
func (p *testPeer) pending() []packet {
	p.tb.Helper()
	p.syncN++
	token := "sync-" + strconv.Itoa(p.syncN)
	p.send(protocol.GetStatus, token)
	var got []packet
	for {
		pk := p.next()
		if pk.typ == protocol.StatusRes && len(pk.args) > 0 && pk.args[0] == token {
			if want := []string{token, "0", "0", "0", "0"}; !slices.Equal(pk.args, want) {
				p.tb.Fatalf("barrier reply %v, want %q", pk, want)
			}
			return got
		}
		got = append(got, pk)
	}
}

// expectQuiet checks the server queued nothing to this peer (no NOOP, no ERROR, no WORK_*).
func (p *testPeer) expectQuiet() {
	p.tb.Helper()
	if got := p.pending(); len(got) > 0 {
		p.tb.Fatalf("unexpected packets: %v", got)
	}
}

// readLine reads one raw text line, line ending included.
func (p *testPeer) readLine() string {
	p.tb.Helper()
	if n := p.dec.Buffered(); n > 0 {
		p.tb.Fatalf("reading a text line with %d undecoded bytes in the packet decoder", n)
	}
	p.nc.SetReadDeadline(time.Now().Add(readTimeout))
	line, err := p.br.ReadString('\n')
	if err != nil {
		p.tb.Fatalf("reading a text line (got %q so far): %v", line, err)
	}
	return line
}

// admin sends one admin line and returns the raw one-line reply ("OK …\n", "OK\r\n", "ERR …\r\n").
func (p *testPeer) admin(line string) string {
	p.tb.Helper()
	p.write([]byte(line + "\n"))
	return p.readLine()
}

// adminList sends one admin line and returns the raw multi-line reply, up to and including ".\n".
func (p *testPeer) adminList(line string) string {
	p.tb.Helper()
	p.write([]byte(line + "\n"))
	var b strings.Builder
	for {
		l := p.readLine()
		b.WriteString(l)
		if l == ".\n" {
			return b.String()
		}
	}
}

// expectClosed checks the server closes the connection: reads end in EOF or a reset, with no data.
func (p *testPeer) expectClosed() {
	p.tb.Helper()
	if n := p.dec.Buffered(); n > 0 {
		p.tb.Fatalf("%d undecoded bytes before the expected close", n)
	}
	p.nc.SetReadDeadline(time.Now().Add(readTimeout))
	b, err := io.ReadAll(p.br)
	var ne net.Error
	switch {
	case len(b) > 0:
		p.tb.Fatalf("got %q before the close, want nothing", b)
	case errors.As(err, &ne) && ne.Timeout():
		p.tb.Fatal("the server did not close the connection")
	}
}

// close closes the peer's connection.
func (p *testPeer) close() { p.nc.Close() }

// checkFor calls f until it returns nil, failing the test with f's last error after timeout. Use it to
// wait for a state the server reaches asynchronously (a disconnect processed, a timer fired).
func checkFor(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkAdmin polls an admin list command on p until its reply is want.
func checkAdmin(tb testing.TB, p *testPeer, cmd, want string) {
	tb.Helper()
	checkFor(tb, readTimeout, func() error {
		if got := p.adminList(cmd); got != want {
			return fmt.Errorf("%s = %q, want %q", cmd, got, want)
		}
		return nil
	})
}

// expectAdminList checks an admin list command's reply right now.
func expectAdminList(tb testing.TB, p *testPeer, cmd, want string) {
	tb.Helper()
	if got := p.adminList(cmd); got != want {
		tb.Fatalf("%s = %q, want %q", cmd, got, want)
	}
}

// roundTrip proves the server serves fresh peers: a new client submits a job, a new worker runs it,
// the client gets the result.
func roundTrip(tb testing.TB, addr string) { roundTripVia(tb, addr, addr) }

// roundTripVia is roundTrip with the client and the worker connecting to addresses of their own.
func roundTripVia(tb testing.TB, clientAddr, workerAddr string) {
	tb.Helper()
	client := mustConnect(tb, clientAddr)
	worker := mustConnect(tb, workerAddr)
	defer client.close()
	defer worker.close()
	runJob(client, worker, "roundtrip", "ping\x00", "pong\x00")
}

// runJob has worker (registering fn now, if it has not yet) run one job of fn that client submits,
// and checks that its result reaches the client.
func runJob(client, worker *testPeer, fn, data, result string) {
	client.tb.Helper()
	worker.send(protocol.CanDo, fn)
	h := client.submit(protocol.SubmitJob, fn, "", data)
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, fn, data)
	worker.send(protocol.WorkComplete, h, result)
	client.expect(protocol.WorkComplete, h, result)
}

// fakeClock is an injectable Options.Now that moves only when told. With FunctionIdleTTL at most
// 400ms the schedule loop re-reads the clock every 100ms, so an Advance takes effect within that.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func newFakeClock() *fakeClock { return &fakeClock{base: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// withFakeClock configures a server to use clock and a short idle TTL, so the schedule loop polls.
func withFakeClock(clock *fakeClock) func(*Options) {
	return func(o *Options) {
		o.Now = clock.Now
		o.FunctionIdleTTL = 0
	}
}

// ERROR codes under the short names the tests use.
const (
	errInvalidMagic      = protocol.CodeInvalidMagic
	errInvalidCommand    = protocol.CodeInvalidCommand
	errInvalidArgument   = protocol.CodeInvalidArgument
	errArgumentTooLarge  = protocol.CodeArgumentTooLarge
	errQueueError        = protocol.CodeQueueError
	errJobNotFound       = protocol.CodeJobNotFound
	errUnknownOption     = protocol.CodeUnknownOption
	errServerError       = protocol.CodeServerError
	textCommandNotExpect = "Command not expected"
)
