package supervise

import (
	"context"
	"errors"

	"github.com/gearhq/gear/admin"
)

// idleAnswer is what the job server said: which worker IDs are connected and running nothing.
type idleAnswer struct {
	idle map[string]bool
	err  error
}

// queryIdle asks the job server which of the worker IDs ids are idle. A child is found by the
// client ID it gave the server: GEAR_WORKER_ID, which gear worker takes by itself and a script
// passes to setId (PHP) or equivalent. An ID the server does not list is not known to be idle.
//
// The HTTP API's workers view counts each connection's running jobs. The admin protocol's
// `workers` line does not, so there a child is idle when none of the functions it registered
// has a job running anywhere: never wrong about idle, sometimes too careful.
func queryIdle(ctx context.Context, addr, httpURL, token string, ids []string) (map[string]bool, error) {
	var (
		workers []admin.WorkerInfo
		status  []admin.FunctionStatus
		err     error
	)
	switch {
	case httpURL != "":
		var c *admin.HTTPConn
		if c, err = admin.NewHTTP(httpURL, token); err != nil {
			return nil, err
		}
		workers, err = c.Workers(ctx)
	case addr != "":
		var c *admin.Conn
		if c, err = admin.Dial(ctx, addr); err != nil {
			return nil, err
		}
		defer c.Close()
		if workers, err = c.Workers(ctx); err == nil {
			status, err = c.Status(ctx)
		}
	default:
		return nil, errors.New("no job server to ask")
	}
	if err != nil {
		return nil, err
	}
	running := map[string]int{}
	for _, f := range status {
		running[f.Name] = f.Running
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	idle := map[string]bool{}
	busy := map[string]bool{}
	for _, w := range workers {
		if !want[w.ID] {
			continue
		}
		b := w.Running > 0
		if httpURL == "" {
			for _, fn := range w.Functions {
				b = b || running[fn] > 0
			}
		}
		if b {
			busy[w.ID] = true
		} else {
			idle[w.ID] = true
		}
	}
	for id := range busy { // a worker with several connections is idle only if all are
		delete(idle, id)
	}
	return idle, nil
}
