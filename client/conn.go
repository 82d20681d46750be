package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/protocol"
)

// conn is one connection to a server. Requests are pipelined: the server answers them in order, so
// replies (JOB_CREATED, STATUS_RES, ECHO_RES, OPTION_RES, ERROR) are matched to the oldest pending
// request, and WORK_* packets to jobs by handle.
type conn struct {
	addr string
	nc   net.Conn
	log  *slog.Logger

	wmu sync.Mutex // orders pending-append + write, so the pending FIFO matches the wire

	mu      sync.Mutex
	pending []*request
	jobs    map[string][]*Job // foreground jobs by handle (several when one unique was submitted twice)
	turn    map[string]int    // which of a handle's jobs gets the next copy of a WORK_* packet
	dead    error
	buf     []byte
}

// request is one packet waiting for its reply.
type request struct {
	want  protocol.Type // reply type expected (JOB_CREATED for submits)
	job   *Job          // submits: the job to bind to the handle
	reply chan reply
}

type reply struct {
	p   *protocol.Packet
	err error
}

// dial connects to addr (over TLS when cfg is set or addr is "tls://host:port"), its handshake
// bounded by timeout too.
func dial(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration, log *slog.Logger) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := serveraddr.DialContext(ctx, &d, addr, cfg)
	if err != nil {
		return nil, err
	}
	cn := &conn{addr: addr, nc: nc, log: log, jobs: make(map[string][]*Job), turn: make(map[string]int)}
	go cn.readLoop()
	// Ask for WORK_EXCEPTION packets so a worker's exception message reaches the caller. A server
	// without the option answers ERROR, which the request absorbs (its reply channel is buffered, so
	// nobody waits for it). It is written before dial returns, so it precedes every submit on the
	// wire: sent from a goroutine it could follow the first submit, and a fast worker's exception
	// then reached the caller as a bare WORK_FAIL.
	opt := &request{want: protocol.OptionRes, reply: make(chan reply, 1)}
	if err := cn.send(opt, protocol.OptionReq, []byte("exceptions")); err != nil {
		return nil, err
	}
	return cn, nil
}

func (cn *conn) isDead() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.dead != nil
}

// send writes one request and registers r for its reply.
func (cn *conn) send(r *request, t protocol.Type, args ...[]byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.mu.Lock()
	if cn.dead != nil {
		err := cn.dead
		cn.mu.Unlock()
		return err
	}
	cn.pending = append(cn.pending, r)
	cn.buf = protocol.AppendRequest(cn.buf[:0], t, args...)
	buf := cn.buf
	cn.mu.Unlock()
	cn.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := cn.nc.Write(buf); err != nil {
		cn.fail(&ConnError{Addr: cn.addr, Err: err})
		return &ConnError{Addr: cn.addr, Err: err}
	}
	if cap(cn.buf) > 1<<20 {
		cn.mu.Lock()
		cn.buf = nil
		cn.mu.Unlock()
	}
	return nil
}

// request sends a packet and waits for its reply of type want.
func (cn *conn) request(ctx context.Context, t, want protocol.Type, args ...[]byte) (*protocol.Packet, error) {
	r := &request{want: want, reply: make(chan reply, 1)}
	if err := cn.send(r, t, args...); err != nil {
		return nil, err
	}
	select {
	case rep := <-r.reply:
		return rep.p, rep.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fail closes the connection and fails everything waiting on it.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.dead != nil {
		cn.mu.Unlock()
		return
	}
	cn.dead = err
	pending, jobs := cn.pending, cn.jobs
	cn.pending, cn.jobs = nil, map[string][]*Job{}
	cn.mu.Unlock()
	cn.nc.Close()
	for _, r := range pending {
		if r.job != nil {
			r.job.finish(nil, err)
		} else {
			r.reply <- reply{err: err}
		}
	}
	for _, js := range jobs {
		for _, j := range js {
			j.finish(nil, err)
		}
	}
}

func (cn *conn) readLoop() {
	dec := protocol.NewDecoder(cn.nc, 0)
	for {
		f, err := dec.Next()
		if err != nil {
			cn.fail(&ConnError{Addr: cn.addr, Err: err})
			return
		}
		if f.IsText {
			continue // a server never sends text unasked
		}
		cn.handle(&f.Packet)
	}
}

// clonePacket copies a packet out of the decoder's buffer.
func clonePacket(p *protocol.Packet) *protocol.Packet {
	c := &protocol.Packet{Magic: p.Magic, Type: p.Type, Args: make([][]byte, len(p.Args))}
	for i, a := range p.Args {
		c.Args[i] = bytes.Clone(a)
	}
	return c
}

func (cn *conn) handle(p *protocol.Packet) {
	switch p.Type {
	case protocol.JobCreated, protocol.StatusRes, protocol.StatusResUnique, protocol.EchoRes,
		protocol.OptionRes, protocol.Error:
		cn.mu.Lock()
		if len(cn.pending) == 0 {
			cn.mu.Unlock()
			cn.log.Warn("unexpected reply from job server", "addr", cn.addr, "type", p.Type)
			return
		}
		r := cn.pending[0]
		cn.pending[0] = nil
		cn.pending = cn.pending[1:]
		if p.Type == protocol.JobCreated && r.job != nil && !r.job.background {
			h := string(p.Args[0])
			cn.jobs[h] = append(cn.jobs[h], r.job)
		}
		cn.mu.Unlock()
		var err error
		if p.Type == protocol.Error {
			err = &ServerError{Code: string(p.Args[0]), Text: string(p.Args[1])}
		}
		if r.job != nil {
			if err != nil {
				r.job.finish(nil, err)
			} else {
				r.job.created(string(p.Args[0]))
			}
			return
		}
		r.reply <- reply{p: clonePacket(p), err: err}
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus, protocol.WorkComplete,
		protocol.WorkFail, protocol.WorkException:
		cn.work(p)
	}
}

// work delivers a WORK_* packet to its job. When one handle has several local jobs (the same unique
// submitted twice), the server sends one copy per submit, and copies go to the jobs in turn.
func (cn *conn) work(p *protocol.Packet) {
	h := string(bytes.TrimRight(p.Args[0], "\x00"))
	final := p.Type == protocol.WorkComplete || p.Type == protocol.WorkFail || p.Type == protocol.WorkException
	cn.mu.Lock()
	js := cn.jobs[h]
	if len(js) == 0 {
		cn.mu.Unlock()
		return // a job whose caller gave up
	}
	i := cn.turn[h] % len(js)
	j := js[i]
	if final {
		js = append(js[:i:i], js[i+1:]...)
		if len(js) == 0 {
			delete(cn.jobs, h)
			delete(cn.turn, h)
		} else {
			cn.jobs[h] = js
			cn.turn[h] = i
		}
	} else {
		cn.turn[h] = i + 1
	}
	cn.mu.Unlock()
	j.event(p)
}

// forget drops a job whose caller stopped waiting; later packets for it are ignored.
func (cn *conn) forget(j *Job) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	js := cn.jobs[j.handle]
	for i, x := range js {
		if x == j {
			js = append(js[:i:i], js[i+1:]...)
			break
		}
	}
	if len(js) == 0 {
		delete(cn.jobs, j.handle)
		delete(cn.turn, j.handle)
	} else {
		cn.jobs[j.handle] = js
	}
}
