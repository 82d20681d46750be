package client

import (
	"errors"
	"fmt"
	"strings"
)

// ErrClosed is returned for requests on, or jobs cut off by, a closed Client.
var ErrClosed = errors.New("gearman client closed")

// ConnError is a connection to a server that failed or was lost. A foreground job cut off by one
// may or may not have run; Do resubmits it to another server.
type ConnError struct {
	Addr string
	Err  error
}

func (e *ConnError) Error() string { return "gearman server " + e.Addr + ": " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// NoServerError reports that no server could take a request.
type NoServerError struct{ Errs []error }

func (e *NoServerError) Error() string {
	if len(e.Errs) == 0 {
		return "no gearman server configured"
	}
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "no gearman server available: " + strings.Join(msgs, "; ")
}

func (e *NoServerError) Unwrap() []error { return e.Errs }

// ServerError is an ERROR packet from the server (for example QUEUE_ERROR when a queue is full).
type ServerError struct {
	Code string
	Text string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("gearman server error %s: %s", e.Code, e.Text)
}

// JobFailedError is a job that ended with WORK_FAIL.
type JobFailedError struct{ Handle string }

func (e *JobFailedError) Error() string { return "gearman job " + e.Handle + " failed" }

// JobExceptionError is a job that ended with WORK_EXCEPTION; Data is the worker's message.
type JobExceptionError struct {
	Handle string
	Data   []byte
}

func (e *JobExceptionError) Error() string {
	return "gearman job " + e.Handle + " raised an exception: " + string(e.Data)
}
