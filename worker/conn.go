package worker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/protocol"
)

// Job is one job handed to a Func.
type Job struct {
	Handle   string
	Function string
	Unique   string
	Reducer  string
	Data     []byte

	cn *workerConn
}

// ErrConnectionLost is returned by Job.Send* when the job's server went away; the server gives the
// job to another worker.
var ErrConnectionLost = errors.New("connection to the job server lost")

// SendData sends WORK_DATA: a partial result the client receives as it comes.
func (j *Job) SendData(data []byte) error {
	return j.cn.send(protocol.AppendRequest(nil, protocol.WorkData, []byte(j.Handle), data))
}

// SendWarning sends WORK_WARNING.
func (j *Job) SendWarning(data []byte) error {
	return j.cn.send(protocol.AppendRequest(nil, protocol.WorkWarning, []byte(j.Handle), data))
}

// SendStatus sends WORK_STATUS: numerator of denominator done.
func (j *Job) SendStatus(numerator, denominator uint64) error {
	return j.cn.send(protocol.AppendRequest(nil, protocol.WorkStatus, []byte(j.Handle),
		[]byte(strconv.FormatUint(numerator, 10)), []byte(strconv.FormatUint(denominator, 10))))
}

func workComplete(h string, out []byte) []byte {
	return protocol.AppendRequest(nil, protocol.WorkComplete, []byte(h), out)
}
func workFail(h string) []byte { return protocol.AppendRequest(nil, protocol.WorkFail, []byte(h)) }
func workException(h, msg string) []byte {
	return protocol.AppendRequest(nil, protocol.WorkException, []byte(h), []byte(msg))
}

// serverConn keeps the worker connected to one server, reconnecting with backoff.
type serverConn struct {
	w    *Worker
	addr string
}

// run connects, serves, and reconnects until the worker stops.
func (sc *serverConn) run() {
	w := sc.w
	backoff := 100 * time.Millisecond
	for !w.stopping() {
		d := net.Dialer{Timeout: w.opts.DialTimeout}
		nc, err := serveraddr.DialContext(context.Background(), &d, sc.addr, w.opts.TLS)
		if err != nil {
			w.log.Warn("cannot connect to job server", "addr", sc.addr, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-w.stopCh:
				return
			}
			backoff = min(2*backoff, w.opts.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		w.log.Info("connected to job server", "addr", sc.addr)
		cn := newWorkerConn(sc, nc)
		cn.serve()
		if !w.stopping() {
			w.log.Warn("lost job server; reconnecting", "addr", sc.addr, "err", cn.err())
		}
	}
}

// workerConn is one live connection to a server.
type workerConn struct {
	sc      *serverConn
	nc      net.Conn
	ctx     context.Context // cancelled when the connection dies
	cancel  context.CancelFunc
	packets chan *protocol.Packet

	wmu     sync.Mutex
	mu      sync.Mutex
	readErr error
	// cancels are the running jobs' context cancels, by handle, for WORK_CANCEL. Guarded by mu.
	cancels map[string]context.CancelCauseFunc
}

// errCancelledByServer is the context cause of a job the server cancelled (WORK_CANCEL).
var errCancelledByServer = errors.New("gearman: the job was cancelled on the job server")

// track registers a running job's cancel under its handle; the returned func forgets it.
func (cn *workerConn) track(handle string, cancel context.CancelCauseFunc) (forget func()) {
	cn.mu.Lock()
	if cn.cancels == nil {
		cn.cancels = make(map[string]context.CancelCauseFunc)
	}
	cn.cancels[handle] = cancel
	cn.mu.Unlock()
	return func() {
		cn.mu.Lock()
		delete(cn.cancels, handle)
		cn.mu.Unlock()
	}
}

// cancelJob ends the context of the running job the server cancelled.
func (cn *workerConn) cancelJob(handle string) {
	cn.mu.Lock()
	cancel := cn.cancels[handle]
	cn.mu.Unlock()
	if cancel != nil {
		cancel(errCancelledByServer)
	}
}

func newWorkerConn(sc *serverConn, nc net.Conn) *workerConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &workerConn{sc: sc, nc: nc, ctx: ctx, cancel: cancel, packets: make(chan *protocol.Packet, 16)}
}

func (cn *workerConn) err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.readErr
}

// send writes one encoded packet.
func (cn *workerConn) send(pkt []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	if cn.ctx.Err() != nil {
		return ErrConnectionLost
	}
	cn.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := cn.nc.Write(pkt); err != nil {
		cn.nc.Close()
		return ErrConnectionLost
	}
	return nil
}

func (cn *workerConn) readLoop() {
	defer close(cn.packets)
	dec := protocol.NewDecoder(cn.nc, 0)
	for {
		f, err := dec.Next()
		if err != nil {
			cn.mu.Lock()
			cn.readErr = err
			cn.mu.Unlock()
			cn.cancel()
			return
		}
		if f.IsText {
			continue
		}
		// Answers to OPTION_REQ "cancellation" and WORK_CANCEL itself are handled here, whatever
		// the serving loop waits for.
		switch pk := &f.Packet; {
		case pk.Type == protocol.WorkCancel:
			cn.cancelJob(string(pk.Args[0]))
			continue
		case pk.Type == protocol.OptionRes:
			continue
		case pk.Type == protocol.Error && string(pk.Args[0]) == protocol.CodeUnknownOption:
			cn.sc.w.log.Debug("the job server cannot tell this worker of cancelled jobs", "addr", cn.sc.addr)
			continue
		}
		p := &protocol.Packet{Type: f.Packet.Type, Args: make([][]byte, len(f.Packet.Args))}
		for i, a := range f.Packet.Args {
			p.Args[i] = bytes.Clone(a)
		}
		select {
		case cn.packets <- p:
		case <-cn.ctx.Done():
			return
		}
	}
}

// serve registers the worker's functions and takes jobs until the connection dies or the worker
// stops. It returns once this connection's jobs have finished.
func (cn *workerConn) serve() {
	w := cn.sc.w
	go cn.readLoop()
	var connJobs sync.WaitGroup
	defer func() {
		connJobs.Wait()
		cn.cancel()
		cn.nc.Close()
		for range cn.packets { // let the reader finish
		}
	}()

	// Ask to be told of cancelled jobs (a Gear extension: other servers answer UNKNOWN_OPTION,
	// which readLoop drops).
	hello := protocol.AppendRequest(nil, protocol.OptionReq, []byte("cancellation"))
	if w.opts.ID != "" {
		hello = protocol.AppendRequest(hello, protocol.SetClientID, []byte(w.opts.ID))
	}
	for name, reg := range w.funcs {
		if reg.timeout > 0 {
			ms := max(reg.timeout.Milliseconds(), 1)
			hello = protocol.AppendRequest(hello, protocol.CanDoTimeout, []byte(name), []byte(strconv.FormatInt(ms, 10)))
		} else {
			hello = protocol.AppendRequest(hello, protocol.CanDo, []byte(name))
		}
	}
	if cn.send(hello) != nil {
		return
	}

	grab := protocol.AppendRequest(nil, protocol.GrabJobAll)
	preSleep := protocol.AppendRequest(nil, protocol.PreSleep)
	for {
		// Take a slot before asking for a job, so a busy worker never holds a job it cannot start.
		select {
		case w.slots <- struct{}{}:
		case <-w.stopCh:
			return
		case <-cn.ctx.Done():
			return
		}
		if w.stopping() || cn.send(grab) != nil {
			<-w.slots
			return
		}
		job, alive := cn.awaitAssignment()
		if !alive {
			<-w.slots
			return
		}
		if job != nil {
			w.running.Add(1)
			w.jobs.Add(1)
			connJobs.Add(1)
			go func() { defer connJobs.Done(); w.runJob(cn, job) }()
			continue
		}
		<-w.slots
		// NO_JOB: sleep until the server has work for us.
		if cn.send(preSleep) != nil {
			return
		}
		if !cn.awaitNoop() {
			return
		}
	}
}

// awaitAssignment reads the reply to GRAB_JOB_ALL: a job, or nil for NO_JOB. alive is false when the
// connection died or the worker is stopping (a job assigned meanwhile is still returned, so it runs).
func (cn *workerConn) awaitAssignment() (job *Job, alive bool) {
	for {
		p, ok := <-cn.packets
		if !ok {
			return nil, false
		}
		switch p.Type {
		case protocol.JobAssign:
			return &Job{Handle: string(p.Args[0]), Function: string(p.Args[1]), Data: p.Args[2], cn: cn}, true
		case protocol.JobAssignUniq:
			return &Job{Handle: string(p.Args[0]), Function: string(p.Args[1]), Unique: string(p.Args[2]),
				Data: p.Args[3], cn: cn}, true
		case protocol.JobAssignAll:
			return &Job{Handle: string(p.Args[0]), Function: string(p.Args[1]), Unique: string(p.Args[2]),
				Reducer: string(p.Args[3]), Data: p.Args[4], cn: cn}, true
		case protocol.NoJob:
			return nil, true
		case protocol.Error:
			cn.sc.w.log.Warn("job server error", "addr", cn.sc.addr, "code", string(p.Args[0]), "text", string(p.Args[1]))
		}
		// NOOP from an earlier sleep, or an ERROR for a late result: keep waiting.
	}
}

// awaitNoop sleeps until NOOP; false when the connection died or the worker is stopping.
func (cn *workerConn) awaitNoop() bool {
	for {
		select {
		case p, ok := <-cn.packets:
			if !ok {
				return false
			}
			if p.Type == protocol.Noop {
				return true
			}
			if p.Type == protocol.Error {
				cn.sc.w.log.Warn("job server error", "addr", cn.sc.addr, "code", string(p.Args[0]), "text", string(p.Args[1]))
			}
		case <-cn.sc.w.stopCh:
			return false
		}
	}
}
