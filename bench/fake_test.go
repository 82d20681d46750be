package bench

// Fake job servers for tests: a small but correct-enough Gearman server that can be told to lose,
// repeat or corrupt one job, and a null server that answers as fast as it can, to measure the
// generator against itself.

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearhq/gear/protocol"
)

type fault int

const (
	faultNone fault = iota
	faultDrop       // job number faultAt is acknowledged with JOB_CREATED but never queued
	faultDup        // job number faultAt is handed to workers twice
	faultFlip       // job number faultAt has its last payload byte flipped when handed out
)

const faultAt = 3

// fakeServer keeps one FIFO for all functions and priorities and ignores unique keys: it is a
// correct server for the background, foreground and drain scenarios and a wrong one (on purpose) for
// priorities and unique.
type fakeServer struct {
	ln    net.Listener
	fault fault

	mu    sync.Mutex
	seq   int
	queue []*fakeJob
	jobs  map[string]*fakeJob
	conns map[*fakeConn]bool
	wg    sync.WaitGroup
}

type fakeJob struct {
	seq            int
	handle         string
	fn, unique     []byte
	data           []byte
	client         *fakeConn // nil for background jobs
	handedOutTwice bool
}

type fakeConn struct {
	nc       net.Conn
	wmu      sync.Mutex
	sleeping bool // guarded by fakeServer.mu
}

func (c *fakeConn) write(t protocol.Type, args ...[]byte) {
	c.wmu.Lock()
	c.nc.Write(protocol.AppendResponse(nil, t, args...))
	c.wmu.Unlock()
}

func startFake(tb testing.TB, f fault) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &fakeServer{ln: ln, fault: f, jobs: make(map[string]*fakeJob), conns: make(map[*fakeConn]bool)}
	s.wg.Add(1)
	go s.accept()
	tb.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &fakeConn{nc: nc}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *fakeServer) serve(c *fakeConn) {
	defer s.wg.Done()
	defer c.nc.Close()
	dec := protocol.NewDecoder(c.nc, 0)
	for {
		f, err := dec.Next()
		if err != nil {
			return
		}
		if f.IsText {
			continue
		}
		p := &f.Packet
		switch p.Type {
		case protocol.EchoReq:
			c.write(protocol.EchoRes, p.Arg(0))
		case protocol.CanDo:
		case protocol.PreSleep:
			s.mu.Lock()
			if len(s.queue) > 0 {
				c.write(protocol.Noop)
			} else {
				c.sleeping = true
			}
			s.mu.Unlock()
		case protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh, protocol.SubmitJobHighBg,
			protocol.SubmitJobLow, protocol.SubmitJobLowBg:
			s.submit(c, p)
		case protocol.GrabJob, protocol.GrabJobUniq:
			s.grab(c, p.Type == protocol.GrabJobUniq)
		case protocol.WorkComplete:
			s.mu.Lock()
			j := s.jobs[string(p.Arg(0))]
			s.mu.Unlock()
			if j != nil && j.client != nil {
				j.client.write(protocol.WorkComplete, p.Arg(0), p.Arg(1))
			}
		default:
			c.write(protocol.Error, []byte("INVALID_COMMAND"), []byte("fake server"))
		}
	}
}

func (s *fakeServer) submit(c *fakeConn, p *protocol.Packet) {
	s.mu.Lock()
	s.seq++
	j := &fakeJob{seq: s.seq, handle: "H:fake:" + strconv.Itoa(s.seq), fn: clone(p.Arg(0)),
		unique: clone(p.Arg(1)), data: clone(p.Arg(2))}
	switch p.Type {
	case protocol.SubmitJob, protocol.SubmitJobHigh, protocol.SubmitJobLow:
		j.client = c
	}
	s.jobs[j.handle] = j
	// JOB_CREATED goes out before any NOOP or WORK_COMPLETE can, as on a real server.
	c.write(protocol.JobCreated, []byte(j.handle))
	if s.fault != faultDrop || j.seq != faultAt {
		s.queue = append(s.queue, j)
		for w := range s.conns {
			if w.sleeping {
				w.sleeping = false
				w.write(protocol.Noop)
			}
		}
	}
	s.mu.Unlock()
}

func (s *fakeServer) grab(c *fakeConn, uniq bool) {
	s.mu.Lock()
	if len(s.queue) == 0 {
		s.mu.Unlock()
		c.write(protocol.NoJob)
		return
	}
	j := s.queue[0]
	s.queue = s.queue[1:]
	data := j.data
	if j.seq == faultAt {
		switch s.fault {
		case faultDup:
			if !j.handedOutTwice {
				j.handedOutTwice = true
				s.queue = append([]*fakeJob{j}, s.queue...)
			}
		case faultFlip:
			data = clone(data)
			data[len(data)-1] ^= 0x20
		}
	}
	s.mu.Unlock()
	if uniq {
		c.write(protocol.JobAssignUniq, []byte(j.handle), j.fn, j.unique, data)
	} else {
		c.write(protocol.JobAssign, []byte(j.handle), j.fn, data)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// startNullServer starts a server that does the least a server can, replies batched like a real
// server's: it acknowledges every submit; it completes every foreground job itself at once by echoing
// its data (no worker involved); it queues background jobs in one FIFO and hands them to GRAB (or
// answers NO_JOB), and answers PRE_SLEEP with NOOP only when the queue is not empty (it never wakes
// a sleeper later: the bench's workers start once the queue is full). Against it the generator is the
// only real cost.
func startNullServer(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	var queue [][]byte // background payloads; guarded by mu
	var seq atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				dec := protocol.NewDecoder(nc, 0)
				var out, hbuf, fn []byte
				for {
					if dec.Buffered() == 0 && len(out) > 0 {
						if _, err := nc.Write(out); err != nil {
							return
						}
						out = out[:0]
					}
					f, err := dec.Next()
					if err != nil {
						return
					}
					p := &f.Packet
					switch p.Type {
					case protocol.EchoReq:
						out = protocol.AppendResponse(out, protocol.EchoRes, p.Arg(0))
					case protocol.CanDo:
						fn = clone(p.Arg(0))
					case protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHighBg, protocol.SubmitJobLowBg:
						hbuf = strconv.AppendInt(append(hbuf[:0], "H:null:"...), seq.Add(1), 10)
						out = protocol.AppendResponse(out, protocol.JobCreated, hbuf)
						if p.Type == protocol.SubmitJob {
							out = protocol.AppendResponse(out, protocol.WorkComplete, hbuf, p.Arg(2))
						} else {
							mu.Lock()
							queue = append(queue, clone(p.Arg(2)))
							mu.Unlock()
						}
					case protocol.GrabJob, protocol.GrabJobUniq:
						mu.Lock()
						var data []byte
						if len(queue) > 0 {
							data, queue = queue[0], queue[1:]
						}
						mu.Unlock()
						if data == nil {
							out = protocol.AppendResponse(out, protocol.NoJob)
							break
						}
						hbuf = strconv.AppendInt(append(hbuf[:0], "H:null:"...), seq.Add(1), 10)
						if p.Type == protocol.GrabJobUniq {
							out = protocol.AppendResponse(out, protocol.JobAssignUniq, hbuf, fn, nil, data)
						} else {
							out = protocol.AppendResponse(out, protocol.JobAssign, hbuf, fn, data)
						}
					case protocol.PreSleep:
						mu.Lock()
						if len(queue) > 0 {
							out = protocol.AppendResponse(out, protocol.Noop)
						}
						mu.Unlock()
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
