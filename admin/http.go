package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gearhq/gear/protocol"
)

// HTTPConn reads a Gear server's views, and takes its actions, through its HTTP API (gear server
// --http), for where the Gearman port is not reachable. It answers the same types as Conn.
type HTTPConn struct {
	base   *url.URL
	token  string
	client *http.Client
}

// NewHTTP returns a client of the API at base ("http://host:8080"; user and password in the URL
// for basic auth); token, when set, is sent as a bearer token.
func NewHTTP(base, token string) (*HTTPConn, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin: %q is not an http(s) URL", base)
	}
	return &HTTPConn{base: u, token: token, client: &http.Client{}}, nil
}

// Addr names the server, for messages (without credentials).
func (c *HTTPConn) Addr() string { return c.base.Redacted() }

// call sends a request to the API and decodes its JSON answer into out; an API error comes back
// as a *ServerError with the HTTP status as its code.
func (c *HTTPConn) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.Path += p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &ServerError{Code: strconv.Itoa(resp.StatusCode), Text: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin: the API's answer to %s %s does not parse: %w", method, path, err)
	}
	return nil
}

// Functions is the server's functions view, read page by page.
func (c *HTTPConn) Functions(ctx context.Context) ([]protocol.FunctionInfo, error) {
	return readPages[protocol.FunctionInfo](ctx, c, "/api/v1/functions", "functions")
}

// readPages reads every item of a paged API list ({"total": N, KEY: [...]}).
func readPages[T any](ctx context.Context, c *HTTPConn, path, key string) ([]T, error) {
	all := []T{}
	for {
		var page map[string]json.RawMessage
		if err := c.call(ctx, "GET", path+"?limit=1000&offset="+strconv.Itoa(len(all)), nil, &page); err != nil {
			return nil, err
		}
		var total int
		var items []T
		if err := json.Unmarshal(page["total"], &total); err != nil {
			return nil, fmt.Errorf("admin: %s: no total in the answer: %w", path, err)
		}
		if err := json.Unmarshal(page[key], &items); err != nil {
			return nil, fmt.Errorf("admin: %s: no %s in the answer: %w", path, key, err)
		}
		all = append(all, items...)
		if len(items) == 0 || len(all) >= total {
			return all, nil
		}
	}
}

// Status is `status` from the functions view.
func (c *HTTPConn) Status(ctx context.Context) ([]FunctionStatus, error) {
	fs, err := c.Functions(ctx)
	out := make([]FunctionStatus, len(fs))
	for i, f := range fs {
		out[i] = FunctionStatus{Name: f.Name, Total: f.Queued.High + f.Queued.Normal + f.Queued.Low + f.Scheduled + f.Running,
			Running: f.Running, Workers: f.Workers}
	}
	return out, err
}

// PriorityStatus is `prioritystatus` from the functions view (scheduled jobs count as normal).
func (c *HTTPConn) PriorityStatus(ctx context.Context) ([]PriorityStatus, error) {
	fs, err := c.Functions(ctx)
	out := make([]PriorityStatus, len(fs))
	for i, f := range fs {
		out[i] = PriorityStatus{Name: f.Name, High: f.Queued.High, Normal: f.Queued.Normal + f.Scheduled,
			Low: f.Queued.Low, Workers: f.Workers}
	}
	return out, err
}

// Workers is the workers view.
func (c *HTTPConn) Workers(ctx context.Context) ([]WorkerInfo, error) {
	return readPages[WorkerInfo](ctx, c, "/api/v1/workers", "workers")
}

// Jobs is every unfinished job, read page by page.
func (c *HTTPConn) Jobs(ctx context.Context) ([]JobInfo, error) {
	return readPages[JobInfo](ctx, c, "/api/v1/jobs", "jobs")
}

// UniqueJobs is the unique keys of the unfinished jobs.
func (c *HTTPConn) UniqueJobs(ctx context.Context) ([]string, error) {
	js, err := c.Jobs(ctx)
	var keys []string
	for _, j := range js {
		if j.Unique != "" {
			keys = append(keys, j.Unique)
		}
	}
	return keys, err
}

// Store is the store view.
func (c *HTTPConn) Store(ctx context.Context) (StoreInfo, error) {
	var s StoreInfo
	return s, c.call(ctx, "GET", "/api/v1/store", nil, &s)
}

// FunctionsView is the functions view with states and limits.
func (c *HTTPConn) FunctionsView(ctx context.Context) ([]FunctionInfo, error) {
	return c.Functions(ctx)
}

// Pause pauses a function.
func (c *HTTPConn) Pause(ctx context.Context, function string) error {
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(function)+"/pause", nil, &map[string]any{})
}

// Resume resumes a function.
func (c *HTTPConn) Resume(ctx context.Context, function string) error {
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(function)+"/resume", nil, &map[string]any{})
}

// Limit sets how many of a function's jobs run at once and start per second (0: no limit).
func (c *HTTPConn) Limit(ctx context.Context, function string, maxRunning int, rate float64, burst int) error {
	body := map[string]any{"max_running": maxRunning, "rate_per_sec": rate, "rate_burst": burst}
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(function)+"/limits", body, &map[string]any{})
}

// RetryPolicy sets a function's retry policy.
func (c *HTTPConn) RetryPolicy(ctx context.Context, function string, attempts int, base, limit, jitter float64) error {
	body := map[string]any{"attempts": attempts, "base_seconds": base, "cap_seconds": limit, "jitter": jitter}
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(function)+"/retry-policy", body, &map[string]any{})
}

// DeadList is the dead set, newest first.
func (c *HTTPConn) DeadList(ctx context.Context, function string) ([]DeadLine, error) {
	path := "/api/v1/dead"
	if function != "" {
		path += "?function=" + url.QueryEscape(function)
	}
	type attempt struct {
		Error string `json:"error"`
	}
	type dead struct {
		Handle   string    `json:"handle"`
		Function string    `json:"function"`
		Attempts []attempt `json:"attempts"`
		Died     time.Time `json:"died"`
	}
	var all []dead
	for {
		var page struct {
			Total int    `json:"total"`
			Dead  []dead `json:"dead"`
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if err := c.call(ctx, "GET", path+sep+"limit=1000&offset="+strconv.Itoa(len(all)), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Dead...)
		if len(page.Dead) == 0 || len(all) >= page.Total {
			break
		}
	}
	out := make([]DeadLine, len(all))
	for i, d := range all {
		last := ""
		if n := len(d.Attempts); n > 0 {
			last = strings.Join(strings.Fields(d.Attempts[n-1].Error), " ")
		}
		out[i] = DeadLine{Handle: d.Handle, Function: d.Function, Attempts: len(d.Attempts), Died: d.Died.Format(time.RFC3339), LastError: last}
	}
	return out, nil
}

// DeadAct retries or deletes a dead job, or every one of a function; it returns how many.
func (c *HTTPConn) DeadAct(ctx context.Context, verb, handle, function string) (int, error) {
	path := "/api/v1/dead/" + url.PathEscape(handle) + "/" + verb
	if function != "" {
		path = "/api/v1/functions/" + url.PathEscape(function) + "/dead/" + verb
	}
	var out map[string]any
	if err := c.call(ctx, "POST", path, nil, &out); err != nil {
		return 0, err
	}
	n, _ := out[map[string]string{"retry": "retried", "delete": "deleted"}[verb]].(float64)
	return int(n), nil
}

// Limits is the limits view.
func (c *HTTPConn) Limits(ctx context.Context) (LimitsInfo, error) {
	var l LimitsInfo
	return l, c.call(ctx, "GET", "/api/v1/limits", nil, &l)
}

func (c *HTTPConn) info(ctx context.Context) (protocol.ServerInfo, error) {
	var i protocol.ServerInfo
	return i, c.call(ctx, "GET", "/api/v1/server", nil, &i)
}

// Version is the server's version.
func (c *HTTPConn) Version(ctx context.Context) (string, error) {
	i, err := c.info(ctx)
	return i.Version, err
}

// PID is the server's process ID.
func (c *HTTPConn) PID(ctx context.Context) (int, error) {
	i, err := c.info(ctx)
	return i.PID, err
}

// Verbose is the server's log level.
func (c *HTTPConn) Verbose(ctx context.Context) (string, error) {
	i, err := c.info(ctx)
	return i.Verbose, err
}

// Cancel cancels an unfinished job.
func (c *HTTPConn) Cancel(ctx context.Context, handle string) error {
	return c.call(ctx, "POST", "/api/v1/jobs/"+url.PathEscape(handle)+"/cancel", nil, &map[string]any{})
}

// DropFunction forgets a function with no workers and no jobs.
func (c *HTTPConn) DropFunction(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(name)+"/drop", nil, &map[string]any{})
}

// MaxQueue sets a function's queue limits: none (unlimited), one for all priorities, or high,
// normal and low.
func (c *HTTPConn) MaxQueue(ctx context.Context, function string, limits ...int) error {
	var l protocol.PriorityInts
	switch len(limits) {
	case 0:
	case 1:
		l = protocol.PriorityInts{High: limits[0], Normal: limits[0], Low: limits[0]}
	case 3:
		l = protocol.PriorityInts{High: limits[0], Normal: limits[1], Low: limits[2]}
	default:
		return errors.New("admin: maxqueue takes one limit or three")
	}
	return c.call(ctx, "POST", "/api/v1/functions/"+url.PathEscape(function)+"/maxqueue", l, &map[string]any{})
}

// ErrNotOverHTTP is the answer for the admin commands the HTTP API does not offer.
var ErrNotOverHTTP = errors.New("admin: not available through the HTTP API (use the Gearman port)")

// CreateFunction is not offered over HTTP.
func (c *HTTPConn) CreateFunction(context.Context, string) error { return ErrNotOverHTTP }

// Shutdown is not offered over HTTP.
func (c *HTTPConn) Shutdown(context.Context, bool) error { return ErrNotOverHTTP }
