package client

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gearhq/gear/protocol"
)

// Priority of a job.
type Priority int

const (
	Normal Priority = iota
	High
	Low
)

// ParsePriority reads "high", "normal" or "low".
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "high":
		return High, nil
	case "normal", "":
		return Normal, nil
	case "low":
		return Low, nil
	}
	return Normal, errors.New("priority must be high, normal or low, not " + strconv.Quote(s))
}

// Handlers receive a foreground job's progress. They run on the connection's reader goroutine:
// they must return quickly and must not call the Client.
type Handlers struct {
	OnData    func(data []byte)
	OnWarning func(data []byte)
	OnStatus  func(numerator, denominator uint64)
}

// Submission describes a job beyond its function and data.
type Submission struct {
	Priority Priority
	// Unique is the job's unique key: jobs with the same function and key coalesce on the server
	// ("-" means the data is the key). Empty: none.
	Unique string
	// At schedules a background job (SUBMIT_JOB_EPOCH; gearmand and Gear run it then). Zero: now.
	At time.Time
	Handlers
}

// Job is a foreground job in flight.
type Job struct {
	function   string
	background bool
	handlers   Handlers
	cn         *conn

	mu        sync.Mutex
	handle    string
	createdCh chan struct{}
	doneCh    chan struct{}
	result    []byte
	err       error
	finished  bool
}

// Handle returns the job handle the server assigned ("" before JOB_CREATED).
func (j *Job) Handle() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.handle
}

func (j *Job) created(handle string) {
	j.mu.Lock()
	j.handle = handle
	j.mu.Unlock()
	close(j.createdCh)
	if j.background {
		j.finish(nil, nil)
	}
}

func (j *Job) finish(result []byte, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.finished {
		return
	}
	j.finished = true
	j.result, j.err = result, err
	close(j.doneCh)
}

func (j *Job) event(p *protocol.Packet) {
	h := j.handle
	switch p.Type {
	case protocol.WorkData:
		if j.handlers.OnData != nil {
			j.handlers.OnData(bytes.Clone(p.Args[1]))
		}
	case protocol.WorkWarning:
		if j.handlers.OnWarning != nil {
			j.handlers.OnWarning(bytes.Clone(p.Args[1]))
		}
	case protocol.WorkStatus:
		if j.handlers.OnStatus != nil {
			j.handlers.OnStatus(parseUint(p.Args[1]), parseUint(p.Args[2]))
		}
	case protocol.WorkComplete:
		j.finish(bytes.Clone(p.Args[1]), nil)
	case protocol.WorkFail:
		j.finish(nil, &JobFailedError{Handle: h})
	case protocol.WorkException:
		j.finish(nil, &JobExceptionError{Handle: h, Data: bytes.Clone(p.Args[1])})
	}
}

// Wait blocks until the job ends or ctx is done, and returns the result of WORK_COMPLETE or the
// error: *JobFailedError, *JobExceptionError, *ServerError, *ConnError, or ctx's error. When ctx ends
// first the job keeps running on the server; its result is discarded.
func (j *Job) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-j.doneCh:
		return j.result, j.err
	case <-ctx.Done():
		if j.cn != nil {
			j.cn.forget(j)
		}
		return nil, ctx.Err()
	}
}

func submitType(s Submission, background bool) (protocol.Type, error) {
	if !s.At.IsZero() {
		if !background || s.Priority != Normal {
			return 0, errors.New("a scheduled (--at) job must be a normal-priority background job")
		}
		return protocol.SubmitJobEpoch, nil
	}
	switch {
	case s.Priority == High && background:
		return protocol.SubmitJobHighBg, nil
	case s.Priority == High:
		return protocol.SubmitJobHigh, nil
	case s.Priority == Low && background:
		return protocol.SubmitJobLowBg, nil
	case s.Priority == Low:
		return protocol.SubmitJobLow, nil
	case background:
		return protocol.SubmitJobBg, nil
	}
	return protocol.SubmitJob, nil
}

// submit sends a job to the first server that takes it and waits for JOB_CREATED.
func (c *Client) submit(ctx context.Context, function string, data []byte, s Submission, background bool) (*Job, error) {
	t, err := submitType(s, background)
	if err != nil {
		return nil, err
	}
	if len(s.Unique) > protocol.MaxUniqueSize {
		return nil, errors.New("unique key longer than 64 bytes")
	}
	var job *Job
	err = c.withConn(ctx, s.Unique, func(cn *conn) error {
		j := &Job{function: function, background: background, handlers: s.Handlers, cn: cn,
			createdCh: make(chan struct{}), doneCh: make(chan struct{})}
		args := [][]byte{[]byte(function), []byte(s.Unique)}
		if t == protocol.SubmitJobEpoch {
			args = append(args, []byte(strconv.FormatInt(s.At.Unix(), 10)))
		}
		args = append(args, data)
		if err := cn.send(&request{want: protocol.JobCreated, job: j}, t, args...); err != nil {
			return err
		}
		select {
		case <-j.createdCh:
		case <-j.doneCh:
			select {
			case <-j.createdCh: // created, and already finished
			default:
				return j.err // an ERROR reply or a lost connection
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		job = j
		return nil
	})
	return job, err
}

// Submit sends a foreground job and returns once the server has accepted it; Wait for its result.
func (c *Client) Submit(ctx context.Context, function string, data []byte, s Submission) (*Job, error) {
	return c.submit(ctx, function, data, s, false)
}

// SubmitBackground queues a background job and returns its handle.
func (c *Client) SubmitBackground(ctx context.Context, function string, data []byte, s Submission) (string, error) {
	j, err := c.submit(ctx, function, data, s, true)
	if err != nil {
		return "", err
	}
	return j.Handle(), nil
}

// Do runs a foreground job and returns its result. If the connection to the server is lost before
// the job ends, Do submits it again to the next server (at-least-once), until every server was tried.
func (c *Client) Do(ctx context.Context, function string, data []byte, s Submission) ([]byte, error) {
	var lastErr error
	for range len(c.servers) {
		j, err := c.Submit(ctx, function, data, s)
		if err != nil {
			return nil, err
		}
		out, err := j.Wait(ctx)
		var ce *ConnError
		if errors.As(err, &ce) {
			lastErr = err
			continue
		}
		return out, err
	}
	return nil, lastErr
}
