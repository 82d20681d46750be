package server

import (
	"net"
	"sync"
	"testing"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// benchPeer is a minimal raw Gearman peer for benchmarks: one reused encode buffer, one decoder.
type benchPeer struct {
	nc  net.Conn
	dec *protocol.Decoder
	buf []byte
}

func benchDial(tb testing.TB, addr string) *benchPeer {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &benchPeer{nc: nc, dec: protocol.NewDecoder(nc, 0)}
}

func (p *benchPeer) send(tb testing.TB, t protocol.Type, args ...[]byte) {
	p.buf = protocol.AppendRequest(p.buf[:0], t, args...)
	if _, err := p.nc.Write(p.buf); err != nil {
		tb.Error(err)
	}
}

func (p *benchPeer) recv(tb testing.TB) *protocol.Packet {
	f, err := p.dec.Next()
	if err != nil {
		tb.Error(err)
		return &protocol.Packet{}
	}
	return &f.Packet
}

// benchServer starts a server on loopback for benchmarks.
func benchServer(tb testing.TB) (*Server, string) {
	tb.Helper()
	opts := DefaultOptions()
	opts.Listen = nil
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

// benchWorker echoes every job's data back as its result until its connection closes.
func benchWorker(tb testing.TB, addr, fn string, wg *sync.WaitGroup) *benchPeer {
	w := benchDial(tb, addr)
	w.send(tb, protocol.CanDo, []byte(fn))
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Errors end the loop quietly: the benchmark closes the connection to stop the worker.
		send := func(t protocol.Type, args ...[]byte) {
			w.buf = protocol.AppendRequest(w.buf[:0], t, args...)
			w.nc.Write(w.buf)
		}
		for {
			send(protocol.GrabJobUniq)
		again:
			f, err := w.dec.Next()
			if err != nil {
				return
			}
			switch f.Packet.Type {
			case protocol.NoJob:
				send(protocol.PreSleep)
				goto again
			case protocol.Noop:
				continue
			case protocol.JobAssignUniq:
				send(protocol.WorkComplete, f.Packet.Args[0], f.Packet.Args[3])
			}
		}
	}()
	return w
}

// BenchmarkEndToEnd_Foreground: one client submits a 64-byte job and waits for its result, served by
// one worker through a real server over loopback TCP (latency-bound).
func BenchmarkEndToEnd_Foreground(b *testing.B) {
	_, addr := benchServer(b)
	var wg sync.WaitGroup
	w := benchWorker(b, addr, "echo", &wg)
	c := benchDial(b, addr)
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.send(b, protocol.SubmitJob, []byte("echo"), nil, payload)
		if p := c.recv(b); p.Type != protocol.JobCreated {
			b.Fatalf("got %s, want JOB_CREATED", p.Type)
		}
		if p := c.recv(b); p.Type != protocol.WorkComplete {
			b.Fatalf("got %s, want WORK_COMPLETE", p.Type)
		}
	}
	b.StopTimer()
	w.nc.Close()
	wg.Wait()
}

// BenchmarkEndToEnd_ForegroundParallel: GOMAXPROCS×4 clients against 4 workers.
func BenchmarkEndToEnd_ForegroundParallel(b *testing.B) {
	_, addr := benchServer(b)
	var wg sync.WaitGroup
	var workers []*benchPeer
	for i := 0; i < 4; i++ {
		workers = append(workers, benchWorker(b, addr, "echo", &wg))
	}
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := benchDial(b, addr)
		for pb.Next() {
			c.send(b, protocol.SubmitJob, []byte("echo"), nil, payload)
			c.recv(b)
			if p := c.recv(b); p.Type != protocol.WorkComplete {
				b.Errorf("got %s, want WORK_COMPLETE", p.Type)
				return
			}
		}
	})
	b.StopTimer()
	for _, w := range workers {
		w.nc.Close()
	}
	wg.Wait()
}

// BenchmarkBackgroundSubmit_Pipelined: one client keeps 32 background submits in flight.
func BenchmarkBackgroundSubmit_Pipelined(b *testing.B) {
	_, addr := benchServer(b)
	c := benchDial(b, addr)
	payload := make([]byte, 64)
	const depth = 32
	var batch []byte
	for i := 0; i < depth; i++ {
		batch = protocol.AppendRequest(batch, protocol.SubmitJobBg, []byte("bg"), nil, payload)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		if _, err := c.nc.Write(batch); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < depth; k++ {
			if p := c.recv(b); p.Type != protocol.JobCreated {
				b.Fatalf("got %s, want JOB_CREATED", p.Type)
			}
		}
	}
}

// BenchmarkBackgroundSubmit_Store compares 8 unpipelined clients submitting background jobs to a
// server keeping them in memory and to one writing them to the Pebble store with each sync mode.
func BenchmarkBackgroundSubmit_Store(b *testing.B) {
	for _, mode := range []string{"memory", "always", "interval"} {
		b.Run(mode, func(b *testing.B) {
			opts := DefaultOptions()
			opts.Listen = nil
			if mode != "memory" {
				sm, err := store.ParseSyncMode(mode)
				if err != nil {
					b.Fatal(err)
				}
				st, err := store.OpenPebble(b.TempDir(), sm, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				opts.Store = st
			}
			s, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s.Serve(ln)
			defer s.Close()
			payload := make([]byte, 64)
			b.ReportAllocs()
			b.SetParallelism(4) // 8 clients on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := benchDial(b, ln.Addr().String())
				for pb.Next() {
					c.send(b, protocol.SubmitJobBg, []byte("bg"), nil, payload)
					if p := c.recv(b); p.Type != protocol.JobCreated {
						b.Errorf("got %s, want JOB_CREATED", p.Type)
						return
					}
				}
			})
		})
	}
}
