package admin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// views lists the views Show prints, in the order `gear admin --help` documents them.
var views = []string{"status", "priority", "functions", "workers", "jobs", "unique", "store", "limits", "version", "pid"}

// Show dials addr, queries one view and writes exactly what `gear admin VIEW` prints for one server:
// a table (a plain list for "unique", "name value" lines for "store", one line for "version" and
// "pid"), or indented JSON when asJSON is set. Views: "status", "priority", "workers", "jobs",
// "unique", "store" and "limits" (Gear only), "version", "pid". Rows are sorted, so the same server state always
// prints the same bytes.
func Show(ctx context.Context, w io.Writer, addr, view string, asJSON bool) error {
	if !slices.Contains(views, view) {
		return fmt.Errorf("admin: unknown view %q", view)
	}
	c, err := Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := query(ctx, c, view)
	if err != nil {
		return err
	}
	return render(w, view, v, asJSON)
}

// Viewer is what answers the views: a Conn on the Gearman port, or an HTTPConn on the HTTP API.
type Viewer interface {
	Status(context.Context) ([]FunctionStatus, error)
	PriorityStatus(context.Context) ([]PriorityStatus, error)
	Workers(context.Context) ([]WorkerInfo, error)
	Jobs(context.Context) ([]JobInfo, error)
	UniqueJobs(context.Context) ([]string, error)
	Store(context.Context) (StoreInfo, error)
	Limits(context.Context) (LimitsInfo, error)
	FunctionsView(context.Context) ([]FunctionInfo, error)
	Version(context.Context) (string, error)
	PID(context.Context) (int, error)
}

// ShowFrom is Show on a Viewer already at hand (an HTTPConn, say).
func ShowFrom(ctx context.Context, w io.Writer, c Viewer, view string, asJSON bool) error {
	if !slices.Contains(views, view) {
		return fmt.Errorf("admin: unknown view %q", view)
	}
	v, err := query(ctx, c, view)
	if err != nil {
		return err
	}
	return render(w, view, v, asJSON)
}

// query runs the command behind a view on c and returns its result with rows sorted as Show prints
// them: []FunctionStatus, []PriorityStatus, []WorkerInfo, []JobInfo, []string (unique keys),
// StoreInfo, versionInfo or pidInfo.
func query(ctx context.Context, c Viewer, view string) (any, error) {
	switch view {
	case "status":
		s, err := c.Status(ctx)
		return sortedStatus(s), err
	case "priority":
		s, err := c.PriorityStatus(ctx)
		return sortedPriority(s), err
	case "workers":
		ws, err := c.Workers(ctx)
		return sortedWorkers(ws), err
	case "jobs":
		js, err := c.Jobs(ctx)
		return sortedJobs(js), err
	case "unique":
		keys, err := c.UniqueJobs(ctx)
		keys = slices.Clone(keys)
		slices.Sort(keys)
		return keys, err
	case "store":
		return c.Store(ctx)
	case "limits":
		return c.Limits(ctx)
	case "functions":
		return c.FunctionsView(ctx)
	case "version":
		v, err := c.Version(ctx)
		return versionInfo{Version: v}, err
	case "pid":
		pid, err := c.PID(ctx)
		return pidInfo{PID: pid}, err
	}
	return nil, fmt.Errorf("admin: unknown view %q", view)
}

// versionInfo is the "version" view's result.
type versionInfo struct {
	Version string `json:"version"`
}

// pidInfo is the "pid" view's result.
type pidInfo struct {
	PID int `json:"pid"`
}

// render writes a view's result, as returned by query, for people or as JSON.
func render(w io.Writer, view string, v any, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, v)
	}
	switch v := v.(type) {
	case []FunctionStatus:
		return WriteStatus(w, v)
	case []PriorityStatus:
		return WritePriorityStatus(w, v)
	case []WorkerInfo:
		return WriteWorkers(w, v)
	case []JobInfo:
		return WriteJobs(w, v)
	case []string:
		return writeUnique(w, v)
	case StoreInfo:
		return WriteStore(w, v)
	case LimitsInfo:
		return WriteLimits(w, v)
	case []FunctionInfo:
		return WriteFunctions(w, v)
	case versionInfo:
		_, err := io.WriteString(w, v.Version+"\n")
		return err
	case pidInfo:
		_, err := io.WriteString(w, strconv.Itoa(v.PID)+"\n")
		return err
	}
	return fmt.Errorf("admin: cannot render %T for view %q", v, view)
}
