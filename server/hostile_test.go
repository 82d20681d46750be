package server

// Hostile and broken peers. After each case the server must still serve a fresh client and worker.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// rawHeader returns a binary packet header with any magic, type and length.
func rawHeader(magic string, typ, size uint32) []byte {
	b := []byte(magic)
	b = binary.BigEndian.AppendUint32(b, typ)
	return binary.BigEndian.AppendUint32(b, size)
}

const hostileMaxPacket = 64 << 10

func startHostileServer(t *testing.T) (*Server, string) {
	s := mustStartServer(t, func(o *Options) {
		o.MaxPacketSize = hostileMaxPacket
		o.MaxOutbound = 2 * hostileMaxPacket
	})
	return s, addrOf(t, s)
}

func TestHostile_FatalFrames(t *testing.T) {
	cases := []struct {
		name  string
		bytes []byte
		echo  string   // ECHO_RES expected first, for a good packet sent before the bad one
		reply []string // ERROR code and text before the close; nil: closed without a word
	}{
		{"bad magic", rawHeader("\x00REX", uint32(protocol.EchoReq), 0), "", nil},
		{"bad magic with lower case", rawHeader("\x00req", uint32(protocol.EchoReq), 1), "", nil},
		{"type 0", rawHeader("\x00REQ", 0, 0), "", []string{errInvalidCommand, "Invalid command expected"}},
		{"type 5", rawHeader("\x00REQ", 5, 0), "", []string{errInvalidCommand, "Invalid command expected"}},
		{"type 43", rawHeader("\x00REQ", 43, 0), "", []string{errInvalidCommand, "Invalid command expected"}},
		{"type 999", rawHeader("\x00REQ", 999, 3), "", []string{errInvalidCommand, "Invalid command expected"}},
		{"length one past the maximum", rawHeader("\x00REQ", uint32(protocol.SubmitJob), hostileMaxPacket+1), "",
			[]string{errArgumentTooLarge, "Packet larger than the server's maximum"}},
		{"length 4 GiB", rawHeader("\x00REQ", uint32(protocol.EchoReq), 0xFFFFFFFF), "",
			[]string{errArgumentTooLarge, "Packet larger than the server's maximum"}},
		{"bad frame after a good one", append(protocol.AppendRequest(nil, protocol.EchoReq, []byte("ok")),
			rawHeader("\x00REQ", 0, 0)...), "ok", []string{errInvalidCommand, "Invalid command expected"}},
	}
	s, addr := startHostileServer(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			p := mustConnect(t, addr)
			p.write(tc.bytes)
			if tc.echo != "" {
				p.expect(protocol.EchoRes, tc.echo)
			}
			if tc.reply != nil {
				p.expect(protocol.Error, tc.reply...)
			}
			p.expectClosed()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			// The declared length was checked before anything was allocated for it.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Fatalf("the process allocated %d bytes answering one header", grew)
			}
			roundTrip(t, addr)
		})
	}
	checkFor(t, readTimeout, func() error {
		if n := connCount(s); n != 0 {
			return fmt.Errorf("%d connections still tracked", n)
		}
		return nil
	})
}

func TestHostile_AtTheLimit(t *testing.T) {
	_, addr := startHostileServer(t)
	p := mustConnect(t, addr)
	data := strings.Repeat("z", hostileMaxPacket)
	p.send(protocol.EchoReq, data)
	p.expect(protocol.EchoRes, data)
	roundTrip(t, addr)
}

func TestHostile_HalfPacket(t *testing.T) {
	s, addr := startHostileServer(t)
	p := mustConnect(t, addr)
	full := protocol.AppendRequest(nil, protocol.SubmitJob, []byte("fn"), []byte(""), []byte(strings.Repeat("d", 100)))
	p.write(full[:20]) // header and 8 of 104 data bytes, then silence

	// Other peers are unaffected while it hangs.
	roundTrip(t, addr)
	roundTrip(t, addr)
	admin := mustConnect(t, addr)
	checkAdmin(t, admin, "status", "roundtrip\t0\t0\t0\n.\n") // the round trips' workers are gone

	p.close()
	checkFor(t, readTimeout, func() error {
		if tracked(s, p) {
			return errors.New("the half-sent peer is still connected")
		}
		return nil
	})
	expectAdminList(t, admin, "status", "roundtrip\t0\t0\t0\n.\n") // nothing was submitted
	roundTrip(t, addr)
}

func TestHostile_HalfPacketAfterRequests(t *testing.T) {
	// A complete request followed by the first bytes of the next one, in one write: the reply to the
	// complete request must not wait for the rest of the next.
	_, addr := startHostileServer(t)
	t.Run("reply", func(t *testing.T) {
		p := mustConnect(t, addr)
		b := protocol.AppendRequest(nil, protocol.EchoReq, []byte("first"))
		next := protocol.AppendRequest(nil, protocol.EchoReq, []byte("second"))
		p.write(append(b, next[:7]...))
		p.expect(protocol.EchoRes, "first")
		p.write(next[7:])
		p.expect(protocol.EchoRes, "second")
	})
	t.Run("push", func(t *testing.T) {
		client, worker := mustConnect(t, addr), mustConnect(t, addr)
		worker.send(protocol.CanDo, "fn")
		half := protocol.AppendRequest(nil, protocol.EchoReq, []byte("later"))
		b := protocol.AppendRequest(nil, protocol.SubmitJob, []byte("fn"), nil, []byte("x"))
		client.write(append(b, half[:5]...))
		h := client.expectType(protocol.JobCreated).args[0]
		worker.send(protocol.GrabJob)
		worker.expectType(protocol.JobAssign)
		worker.send(protocol.WorkComplete, h, "r")
		client.expect(protocol.WorkComplete, h, "r")
		client.write(half[5:])
		client.expect(protocol.EchoRes, "later")
	})
	roundTrip(t, addr)
}

func TestHostile_AdminLineTooLong(t *testing.T) {
	cases := []struct {
		name string
		line string
	}{
		{"terminated", "status " + strings.Repeat("x", 9000) + "\n"},
		{"unterminated", strings.Repeat("y", 20000)},
	}
	_, addr := startHostileServer(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustConnect(t, addr)
			p.write([]byte(tc.line))
			if got := p.readLine(); got != "ERR LINE_TOO_LONG Admin+line+too+long\r\n" {
				t.Fatalf("reply %q", got)
			}
			p.nc.SetReadDeadline(time.Now().Add(readTimeout))
			if b, err := io.ReadAll(p.br); len(b) > 0 || isTimeout(err) {
				t.Fatalf("after the error: %q, %v; want the connection closed", b, err)
			}
			roundTrip(t, addr)
		})
	}
	t.Run("8 KiB is accepted", func(t *testing.T) {
		p := mustConnect(t, addr)
		line := "version" + strings.Repeat(" ", protocol.DefaultMaxLine-len("version"))
		if got := p.admin(line); got != "OK "+Version+"\n" {
			t.Fatalf("reply %q", got)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestHostile_RandomBytes(t *testing.T) {
	// Valid magic, then garbage, from several connections at once. Each connection half-closes after
	// sending and must see the server close it: no hang, no crash, whatever the garbage said.
	const conns, rounds = 8, 4
	s, addr := startHostileServer(t)
	rng := rand.New(rand.NewSource(20261125))
	payloads := make([][]byte, conns*rounds)
	for i := range payloads {
		b := []byte("\x00REQ")
		b = append(b, make([]byte, 1+rng.Intn(4000))...)
		rng.Read(b[4:])
		if i%2 == 0 && len(b) >= protocol.HeaderSize {
			// Half of the time a valid type and a small length, so the garbage is parsed as arguments
			// (and what follows as more packets or admin lines) instead of refused at the header.
			typ := 1 + rng.Intn(int(protocol.StatusResUnique))
			binary.BigEndian.PutUint32(b[4:8], uint32(typ))
			binary.BigEndian.PutUint32(b[8:12], uint32(rng.Intn(64)))
		}
		payloads[i] = b
	}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for i := range conns {
			wg.Add(1)
			go func(payload []byte) {
				defer wg.Done()
				nc, err := net.DialTimeout("tcp", addr, readTimeout)
				if err != nil {
					errs <- err
					return
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(2 * readTimeout))
				nc.Write(payload) // the server may close first; that is fine
				nc.(*net.TCPConn).CloseWrite()
				if _, err := io.Copy(io.Discard, nc); isTimeout(err) {
					errs <- fmt.Errorf("payload of %d bytes: the server neither answered nor closed", len(payload))
				}
			}(payloads[round*conns+i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		roundTrip(t, addr)
	}
	checkFor(t, readTimeout, func() error {
		if n := connCount(s); n != 0 {
			return fmt.Errorf("%d connections still tracked", n)
		}
		return nil
	})
}

func TestHostile_ManyIdleConnections(t *testing.T) {
	const n = 2000
	s, addr := startHostileServer(t)
	idle := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range idle {
			nc.Close()
		}
	}()
	for range n {
		nc, err := net.DialTimeout("tcp", addr, readTimeout)
		if err != nil {
			t.Fatalf("dial #%d: %v", len(idle)+1, err)
		}
		idle = append(idle, nc)
	}
	checkFor(t, 10*time.Second, func() error {
		if got := connCount(s); got != n {
			return fmt.Errorf("%d connections accepted, want %d", got, n)
		}
		return nil
	})
	roundTrip(t, addr)
	for _, nc := range idle {
		nc.Close()
	}
	idle = nil
	checkFor(t, 10*time.Second, func() error {
		if got := connCount(s); got != 0 {
			return fmt.Errorf("%d connections still tracked", got)
		}
		return nil
	})
	roundTrip(t, addr)
}

func TestHostile_ClientNotReading(t *testing.T) {
	// A client stops reading while a worker floods WORK_DATA to it: once more than MaxOutbound is
	// queued for it, the server drops it rather than buffer without bound; everyone else goes on.
	s, addr := startHostileServer(t)
	client, worker, admin := mustConnect(t, addr), mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "flood")
	h := client.submit(protocol.SubmitJob, "flood", "", "x")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "flood", "x")

	chunk := protocol.AppendRequest(nil, protocol.WorkData, []byte(h), make([]byte, 32<<10))
	stop := make(chan struct{})
	floodDone := make(chan error, 1)
	go func() {
		// At most 256 MiB: far beyond the kernel's socket buffers plus MaxOutbound.
		for i := 0; i < 8192; i++ {
			select {
			case <-stop:
				floodDone <- nil
				return
			default:
			}
			worker.nc.SetWriteDeadline(time.Now().Add(readTimeout))
			if _, err := worker.nc.Write(chunk); err != nil {
				floodDone <- err
				return
			}
		}
		floodDone <- errors.New("flooded 256 MiB and the client was not dropped")
	}()
	checkFor(t, 15*time.Second, func() error {
		select {
		case err := <-floodDone:
			floodDone <- err
			return nil
		default:
		}
		if tracked(s, client) {
			return errors.New("the client that does not read is still connected")
		}
		return nil
	})
	close(stop)
	if err := <-floodDone; err != nil {
		t.Fatal(err)
	}
	if tracked(s, client) || !tracked(s, worker) {
		t.Fatal("want the client dropped and the worker connected")
	}

	// The dropped client's job was foreground and running: the worker may finish it, quietly.
	worker.send(protocol.WorkComplete, h, "done")
	worker.expectQuiet()
	expectAdminList(t, admin, "status", "flood\t0\t0\t1\n.\n")
	// The client sees its connection end (after whatever the kernel had buffered).
	client.nc.SetReadDeadline(time.Now().Add(readTimeout))
	if n, err := io.Copy(io.Discard, client.nc); isTimeout(err) {
		t.Fatalf("the dropped client's connection is still open (read %d bytes)", n)
	}
	roundTrip(t, addr)
}

// Function names and unique keys appear verbatim in admin listings: a line break in one would let a
// client forge admin output for everyone, so submits with one are refused and CAN_DO is ignored.
func TestHostile_LineBreakInNames(t *testing.T) {
	s := mustStartServer(t, nil)
	addr := addrOf(t, s)
	c := mustConnect(t, addr)
	for _, args := range [][]string{
		{"evil\n.\nERR", "", "x"},
		{"fine", "u\r\nx", "x"},
	} {
		c.send(protocol.SubmitJobBg, args...)
		c.expectError(errInvalidArgument)
	}
	w := mustConnect(t, addr)
	w.send(protocol.CanDo, "evil\n.\n")
	w.send(protocol.EchoReq, "sync") // the CAN_DO was handled before the echo is answered
	w.expect(protocol.EchoRes, "sync")
	expectAdminList(t, c, "status", ".\n")
	roundTrip(t, addr)
}
