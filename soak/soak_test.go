// Package soak runs a Gear server through a bounded storm of well- and ill-behaved peers on
// loopback, then checks that nothing acknowledged was lost, that the memory came back, and that
// the server still answers.
package soak

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
)

// The storm, sized so the test takes well under a minute with the race detector on 2 cores.
const (
	idlePeers      = 1500 // connections that say one thing and then wait
	silentPeers    = 300  // connections that never say anything
	tricklePeers   = 100  // a few bytes of a packet, then nothing (one byte a minute)
	slowReaders    = 20   // ask for replies and never read them
	fastClients    = 8    // submit background jobs as fast as they are acknowledged
	jobsPerClient  = 600
	vanishWorkers  = 4 // take a job, then drop the connection, again and again
	steadyWorkers  = 4
	packetTimeout  = 2 * time.Second
	silentTimeout  = 3 * time.Second
	maxOutbound    = 1 << 20
	stormPayloadKB = 64
)

// raiseFileLimit lets the test hold thousands of connections (both ends are in this process).
func raiseFileLimit(t *testing.T, need uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
	if rl.Cur < need {
		t.Fatalf("the file limit is %d, the soak needs %d descriptors: raise the hard limit (ulimit -Hn)", rl.Cur, need)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	var nc net.Conn
	var err error
	for range 50 { // a burst of thousands may overflow the listen backlog for a moment
		if nc, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			return nc
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("dial %s: %v", addr, err)
	return nil
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak test takes a while; run without -short")
	}
	raiseFileLimit(t, 2*(idlePeers+silentPeers+tricklePeers+slowReaders+fastClients+vanishWorkers+steadyWorkers)+512)
	baseline := heapInUse()
	addr, srv := testenv.StartGearWith(t, "127.0.0.1:0", func(o *server.Options) {
		o.PacketTimeout, o.SilentTimeout, o.MaxOutbound = packetTimeout, silentTimeout, maxOutbound
		o.MaxPacketSize = maxOutbound / 2
	})
	ctx := testenv.CtxTimeout(t, 3*time.Minute)

	// Every job that ran, counted by its ID (at least once: a vanished worker's job runs again).
	var ran sync.Map
	var runs atomic.Int64
	count := func(_ context.Context, j *worker.Job) ([]byte, error) {
		ran.Store(string(j.Data), true)
		runs.Add(1)
		return nil, nil
	}
	for range steadyWorkers {
		testenv.StartWorker(t, []string{addr}, 2, map[string]worker.Func{"soak": count})
	}

	var peers []net.Conn
	defer func() {
		for _, nc := range peers {
			nc.Close()
		}
	}()
	// Idle peers that spoke once: they stay.
	echo := protocol.AppendRequest(nil, protocol.EchoReq, []byte("hi"))
	for range idlePeers {
		nc := dial(t, addr)
		if _, err := nc.Write(echo); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, nc)
	}
	// Silent peers: closed by the server after silentTimeout.
	var silent []net.Conn
	for range silentPeers {
		silent = append(silent, dial(t, addr))
	}
	// Tricklers: half a header, then nothing; closed after packetTimeout.
	var tricklers []net.Conn
	for range tricklePeers {
		nc := dial(t, addr)
		nc.Write(echo[:5])
		tricklers = append(tricklers, nc)
	}
	// Slow readers: echo requests worth more than maxOutbound, replies never read.
	var slow []net.Conn
	big := protocol.AppendRequest(nil, protocol.EchoReq, make([]byte, stormPayloadKB<<10))
	for range slowReaders {
		nc := dial(t, addr)
		nc.(*net.TCPConn).SetReadBuffer(4 << 10) // so the kernel does not read on its behalf
		slow = append(slow, nc)
		go func() {
			for range 16 * maxOutbound / len(big) {
				if _, err := nc.Write(big); err != nil {
					return // closed by the server: what is expected
				}
			}
		}()
	}
	// Workers that vanish mid-job, and come back.
	var vanished atomic.Int64
	var wg sync.WaitGroup
	stopVanish := make(chan struct{})
	for range vanishWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopVanish:
					return
				default:
				}
				nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					continue
				}
				nc.Write(protocol.AppendRequest(nil, protocol.CanDo, []byte("soak")))
				nc.Write(protocol.AppendRequest(nil, protocol.GrabJob))
				nc.SetReadDeadline(time.Now().Add(time.Second))
				dec := protocol.NewDecoder(bufio.NewReader(nc), 0)
				for {
					f, err := dec.Next()
					if err != nil {
						break
					}
					if f.Packet.Type == protocol.JobAssign {
						vanished.Add(1)
						break // drop it, mid-job
					}
					if f.Packet.Type == protocol.NoJob {
						time.Sleep(10 * time.Millisecond)
						nc.Write(protocol.AppendRequest(nil, protocol.GrabJob))
					}
				}
				nc.Close()
			}
		}()
	}
	// Fast clients: every acknowledged job is remembered.
	var acked sync.Map
	var ackedN atomic.Int64
	for c := range fastClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := client.New(client.Options{Servers: []string{addr}, MaxBackoff: 100 * time.Millisecond})
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for i := range jobsPerClient {
				id := fmt.Sprintf("c%d-j%d", c, i)
				if _, err := cl.SubmitBackground(ctx, "soak", []byte(id), client.Submission{}); err == nil {
					acked.Store(id, true)
					ackedN.Add(1)
				}
			}
		}()
	}

	// The storm runs; the ill-behaved are cut off by the server.
	closedBy := func(conns []net.Conn, within time.Duration) int {
		n := 0
		deadline := time.Now().Add(within) // one for all: the server closes them together
		for _, nc := range conns {
			nc.SetReadDeadline(deadline)
			buf := make([]byte, 64<<10)
			for {
				_, err := nc.Read(buf)
				if err == nil {
					continue // a slow reader's backlog, or an ERROR
				}
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					n++ // EOF or reset: the server closed it
				}
				break
			}
			nc.Close()
		}
		return n
	}
	if n := closedBy(tricklers, 4*packetTimeout); n != tricklePeers {
		t.Errorf("%d of %d one-byte-a-minute writers closed by the server", n, tricklePeers)
	}
	if n := closedBy(silent, 4*silentTimeout); n != silentPeers {
		t.Errorf("%d of %d silent connections closed by the server", n, silentPeers)
	}
	if n := closedBy(slow, 10*time.Second); n != slowReaders {
		t.Errorf("%d of %d slow readers closed by the server", n, slowReaders)
	}
	testenv.WaitFor(t, "the clients' submits", 2*time.Minute, func() bool { return ackedN.Load() >= fastClients*jobsPerClient })
	close(stopVanish)
	wg.Wait()

	// Every acknowledged job ran at least once.
	testenv.WaitFor(t, "every acknowledged job to run", 2*time.Minute, func() bool {
		missing := 0
		acked.Range(func(k, _ any) bool {
			if _, ok := ran.Load(k); !ok {
				missing++
			}
			return true
		})
		return missing == 0
	})
	st := srv.Stats()
	t.Logf("%d jobs acknowledged, %d runs, %d taken by vanishing workers; server: %d connections accepted, %d closed slow, %d silent",
		ackedN.Load(), runs.Load(), vanished.Load(), st.ConnectionsAccepted, st.ConnectionsTimedOut, st.ConnectionsSilent)
	if vanished.Load() == 0 {
		t.Error("no worker vanished mid-job: the soak did not exercise requeues")
	}
	// The idle peers are still served; then everyone leaves.
	for _, nc := range peers[:10] {
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write(echo)
		dec := protocol.NewDecoder(nc, 0)
		for {
			f, err := dec.Next()
			if err != nil {
				t.Fatalf("an idle peer lost its connection: %v", err)
			}
			if f.Packet.Type == protocol.EchoRes {
				break
			}
		}
	}
	for _, nc := range peers {
		nc.Close()
	}
	peers = nil
	testenv.WaitFor(t, "the idle peers to be gone", time.Minute, func() bool {
		return srv.Core().Info().Connections <= steadyWorkers+1
	})
	// The server still answers `status` (within a deadline: alive, not a speed target), and its
	// memory is back near where it began.
	admin := dial(t, addr)
	defer admin.Close()
	admin.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(admin, "status\n")
	line, err := bufio.NewReader(admin).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "soak\t0\t") {
		t.Fatalf("status after the soak: %q %v", line, err)
	}
	after := heapInUse()
	t.Logf("heap in use: %d KiB before, %d KiB after", baseline>>10, after>>10)
	if after > 2*baseline+32<<20 {
		t.Errorf("heap in use %d KiB after the soak, %d KiB before: memory not given back", after>>10, baseline>>10)
	}
}
