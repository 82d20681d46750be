package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/gearhq/gear/admin"
)

// The lifecycle calls below are Gear extensions (docs/PROTOCOL.md §7): cancel a job, the dead set,
// named schedules. They go over each server's admin protocol, on a short-lived connection of their
// own, so they never wait behind the jobs pipelined on the client's connections. Against a server
// that does not have them (gearmand), they fail with the server's error.

// ErrUnknownJob reports a handle that none of the servers knows (as a queued, running or dead job).
var ErrUnknownJob = errors.New("client: no server knows this job")

// ErrUnknownSchedule reports a schedule name that none of the servers has.
var ErrUnknownSchedule = errors.New("client: no server has this schedule")

// DeadJob is a job in a server's dead set: its attempts are exhausted.
type DeadJob struct {
	Server string // the server whose dead set holds it
	admin.DeadLine
}

// Schedule is a named schedule as one server holds it.
type Schedule struct {
	Server string
	admin.ScheduleInfo
}

// Cancel cancels a job by handle, queued or running, on whichever server has it: its waiting
// clients get WORK_FAIL and a running job's late result is ignored. ErrUnknownJob when no server
// knows the handle; when a server could not be asked, the error says so (it may hold the job).
// A handle names a job on one server only if the servers' handle prefixes differ: two servers on
// one host both default to H:host, as gearmand's do, so give each its own (--job-handle-prefix).
func (c *Client) Cancel(ctx context.Context, handle string) error {
	return c.onOwner(ctx, ErrUnknownJob, func(a *admin.Conn) error { return a.Cancel(ctx, handle) })
}

// RetryDead puts a dead job back in its queue, attempts counted afresh.
func (c *Client) RetryDead(ctx context.Context, handle string) error {
	return c.onOwner(ctx, ErrUnknownJob, func(a *admin.Conn) error {
		_, err := a.DeadAct(ctx, "retry", handle, "")
		return err
	})
}

// DeleteDead forgets a dead job.
func (c *Client) DeleteDead(ctx context.Context, handle string) error {
	return c.onOwner(ctx, ErrUnknownJob, func(a *admin.Conn) error {
		_, err := a.DeadAct(ctx, "delete", handle, "")
		return err
	})
}

// RetryDeadFunction puts every dead job of function back in its queue, on every server, and
// returns how many. A server that could not be asked makes an error beside the count.
func (c *Client) RetryDeadFunction(ctx context.Context, function string) (int, error) {
	if function == "" {
		return 0, errors.New("client: RetryDeadFunction needs a function name")
	}
	total := 0
	err := c.onEach(ctx, func(_ string, a *admin.Conn) error {
		n, err := a.DeadAct(ctx, "retry", "", function)
		total += n
		return err
	})
	return total, err
}

// DeadJobs lists the dead jobs of every server (of one function when function is not empty). A
// server that could not be asked makes an error beside what the others returned.
func (c *Client) DeadJobs(ctx context.Context, function string) ([]DeadJob, error) {
	var out []DeadJob
	err := c.onEach(ctx, func(addr string, a *admin.Conn) error {
		ds, err := a.DeadList(ctx, function)
		for _, d := range ds {
			out = append(out, DeadJob{Server: addr, DeadLine: d})
		}
		return err
	})
	return out, err
}

// Schedules lists the named schedules of every server. Servers sharing one PostgreSQL store (a
// fleet) share their schedules: each lists the same ones, and each tick fires once for the fleet.
func (c *Client) Schedules(ctx context.Context) ([]Schedule, error) {
	var out []Schedule
	err := c.onEach(ctx, func(addr string, a *admin.Conn) error {
		ss, err := a.Schedules(ctx)
		for _, s := range ss {
			out = append(out, Schedule{Server: addr, ScheduleInfo: s})
		}
		return err
	})
	return out, err
}

// AddSchedule defines (or replaces) a named schedule on the server its name hashes to, as a job
// with that unique key would go, failing over to the next one that is up.
func (c *Client) AddSchedule(ctx context.Context, sc admin.ScheduleInfo) error {
	if sc.Name == "" {
		return errors.New("client: a schedule needs a name")
	}
	var errs []error
	for _, s := range c.order(sc.Name) {
		err := c.ask(ctx, s.addr, func(a *admin.Conn) error { return a.AddSchedule(ctx, sc) })
		if err == nil || isServerAnswer(err) {
			return wrapAdmin(s.addr, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.addr, err))
	}
	return fmt.Errorf("client: adding schedule %s: %w", sc.Name, errors.Join(errs...))
}

// RemoveSchedule removes a named schedule from every server that has it; ErrUnknownSchedule when
// none has.
func (c *Client) RemoveSchedule(ctx context.Context, name string) error {
	removed := false
	err := c.onEach(ctx, func(_ string, a *admin.Conn) error {
		err := a.RemoveSchedule(ctx, name)
		if errorCode(err) == "UNKNOWN_SCHEDULE" {
			return nil
		}
		removed = removed || err == nil
		return err
	})
	if err == nil && !removed {
		return ErrUnknownSchedule
	}
	return err
}

// onOwner runs f against each server in turn until one does not answer that it does not know the
// object (unknown, whose error code is looked for); unknown when none knows it.
func (c *Client) onOwner(ctx context.Context, unknown error, f func(*admin.Conn) error) error {
	var errs []error
	for _, s := range c.servers {
		err := c.ask(ctx, s.addr, f)
		switch {
		case err == nil:
			return nil
		case errorCode(err) == "UNKNOWN_JOB":
			continue
		case isServerAnswer(err):
			return wrapAdmin(s.addr, err)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", s.addr, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("client: %w on the servers asked, and some could not be: %w", unknown, errors.Join(errs...))
	}
	return unknown
}

// onEach runs f against every server; the errors of those that failed are joined.
func (c *Client) onEach(ctx context.Context, f func(addr string, a *admin.Conn) error) error {
	var errs []error
	for _, s := range c.servers {
		if err := c.ask(ctx, s.addr, func(a *admin.Conn) error { return f(s.addr, a) }); err != nil {
			errs = append(errs, wrapAdmin(s.addr, err))
		}
	}
	return errors.Join(errs...)
}

// ask runs f on an admin connection of its own to addr.
func (c *Client) ask(ctx context.Context, addr string, f func(*admin.Conn) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	a, err := admin.DialTLS(dctx, addr, c.opts.TLS)
	cancel()
	if err != nil {
		return err
	}
	defer a.Close()
	return f(a)
}

// errorCode is the code of a server's ERR reply ("" for any other error).
func errorCode(err error) string {
	var se *admin.ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// isServerAnswer tells a server's refusal (an ERR reply) from a failure to ask it.
func isServerAnswer(err error) bool {
	var se *admin.ServerError
	return errors.As(err, &se)
}

func wrapAdmin(addr string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("client: %s: %w", addr, err)
}
