package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gearhq/gear/protocol"
)

// Store runs `store` (Gear only). gearmand and the Perl server do not know the command: the error
// then says so and wraps their *ServerError (Code UNKNOWN_COMMAND).
func (c *Conn) Store(ctx context.Context) (StoreInfo, error) {
	lines, err := c.gearOnly(ctx, "store", " (gearmand and the Perl server keep no store of their own)")
	if err != nil {
		return StoreInfo{}, err
	}
	v, err := parseStore(lines)
	return v, c.checkParse(err)
}

// gearOnly runs one of Gear's own tabular commands; other servers' UNKNOWN_COMMAND is explained.
func (c *Conn) gearOnly(ctx context.Context, cmd, why string) ([]string, error) {
	lines, err := c.roundTrip(ctx, cmd, tabular)
	var se *ServerError
	if errors.As(err, &se) && strings.EqualFold(se.Code, "UNKNOWN_COMMAND") {
		err = fmt.Errorf("admin: the server does not know `%s`, a Gear extension%s: %w", cmd, why, err)
	}
	return lines, err
}

// WriteStore prints `store` as one "name value" line per field; a memory-only server gets just its
// engine line. An unset value prints as "-".
func WriteStore(w io.Writer, s StoreInfo) error {
	val := func(v string) string {
		if v == "" {
			return "-"
		}
		return cell(v)
	}
	tw := newTable(w, "engine\t"+val(s.Engine))
	if s.Engine != "memory" {
		tw.row("path", val(s.Path))
		tw.row("sync", val(s.Sync))
		tw.row("jobs", strconv.FormatInt(s.Jobs, 10))
		tw.row("last sync", val(s.LastSync))
		tw.row("last error", val(s.LastError))
	}
	return tw.flush()
}

// Limits runs `limits` (Gear only): the server's limits and what is in use of each.
func (c *Conn) Limits(ctx context.Context) (LimitsInfo, error) {
	lines, err := c.gearOnly(ctx, "limits", "")
	if err != nil {
		return LimitsInfo{}, err
	}
	v, err := adminErr(protocol.ParseLimits(lines))
	return v, c.checkParse(err)
}

// WriteLimits prints `limits` as "limit in-use maximum" rows; a maximum of 0 prints as "none".
func WriteLimits(w io.Writer, l LimitsInfo) error {
	max := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return strconv.FormatInt(n, 10)
	}
	tw := newTable(w, "LIMIT\tIN USE\tMAXIMUM")
	tw.row("connections", strconv.Itoa(l.Connections), max(int64(l.MaxConnections)))
	tw.row("connections per address", "-", max(int64(l.MaxConnectionsPerIP)))
	tw.row("packet size", "-", max(int64(l.MaxPacketSize)))
	tw.row("jobs", strconv.Itoa(l.Jobs), max(int64(l.MaxJobs)))
	tw.row("queued payload bytes", strconv.FormatInt(l.QueuedBytes, 10), max(l.MaxQueuedBytes))
	tw.row("seconds for one packet", "-", max(l.PacketTimeout))
	tw.row("seconds of silence", "-", max(l.SilentTimeout))
	return tw.flush()
}

// FunctionsView runs `functions` (Gear only): every function with its state (paused or not) and
// limits.
func (c *Conn) FunctionsView(ctx context.Context) ([]FunctionInfo, error) {
	lines, err := c.gearOnly(ctx, "functions", "")
	if err != nil {
		return nil, err
	}
	v, err := adminErr(protocol.ParseFunctions(lines))
	return v, c.checkParse(err)
}

// Pause runs `pause FUNCTION` (Gear only): no worker is given its jobs until Resume.
func (c *Conn) Pause(ctx context.Context, function string) error {
	if err := checkArg("function name", function); err != nil {
		return err
	}
	return c.ok(ctx, "pause "+function)
}

// Resume runs `resume FUNCTION` (Gear only).
func (c *Conn) Resume(ctx context.Context, function string) error {
	if err := checkArg("function name", function); err != nil {
		return err
	}
	return c.ok(ctx, "resume "+function)
}

// Limit runs `limit FUNCTION MAX_RUNNING RATE [BURST]` (Gear only): at most maxRunning of its jobs
// run at once, at most rate start a second (0: no limit).
func (c *Conn) Limit(ctx context.Context, function string, maxRunning int, rate float64, burst int) error {
	if err := checkArg("function name", function); err != nil {
		return err
	}
	return c.ok(ctx, fmt.Sprintf("limit %s %d %s %d", function, maxRunning, strconv.FormatFloat(rate, 'g', -1, 64), burst))
}

// WriteFunctions prints the functions view: name, jobs queued, running, workers, state, limits.
func WriteFunctions(w io.Writer, fs []FunctionInfo) error {
	lim := func(n float64) string {
		if n == 0 {
			return "-"
		}
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	tw := newTable(w, "FUNCTION\tQUEUED\tRUNNING\tWORKERS\tSTATE\tMAX RUNNING\tRATE/S")
	for _, f := range fs {
		state := "active"
		if f.Paused {
			state = "paused"
		}
		tw.row(cell(f.Name), strconv.Itoa(f.Queued.High+f.Queued.Normal+f.Queued.Low+f.Scheduled), strconv.Itoa(f.Running),
			strconv.Itoa(f.Workers), state, lim(float64(f.MaxRunning)), lim(f.RatePerSec))
	}
	return tw.flush()
}

// DeadLine is one line of `dead list`.
type DeadLine struct {
	Handle    string `json:"handle"`
	Function  string `json:"function"`
	Attempts  int    `json:"attempts"`
	Died      string `json:"died"`
	LastError string `json:"last_error"`
}

// RetryPolicy runs `retry FUNCTION ATTEMPTS BASE CAP JITTER` (Gear only).
func (c *Conn) RetryPolicy(ctx context.Context, function string, attempts int, base, limit, jitter float64) error {
	if err := checkArg("function name", function); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return c.ok(ctx, fmt.Sprintf("retry %s %d %s %s %s", function, attempts, f(base), f(limit), f(jitter)))
}

// DeadList runs `dead list [FUNCTION]` (Gear only): the dead set, newest first.
func (c *Conn) DeadList(ctx context.Context, function string) ([]DeadLine, error) {
	cmd := "dead list"
	if function != "" {
		cmd += " " + function
	}
	lines, err := c.gearOnly(ctx, cmd, "")
	if err != nil {
		return nil, err
	}
	out := []DeadLine{}
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 5)
		n, err := strconv.Atoi(f[min(2, len(f)-1)])
		if len(f) != 5 || err != nil {
			return nil, c.checkParse(fmt.Errorf("malformed dead list line %q", l))
		}
		out = append(out, DeadLine{Handle: f[0], Function: f[1], Attempts: n, Died: f[3], LastError: f[4]})
	}
	return out, nil
}

// DeadAct runs `dead retry|delete HANDLE` or, with a function, `dead retry|delete function F`,
// and returns how many dead jobs it concerned.
func (c *Conn) DeadAct(ctx context.Context, verb, handle, function string) (int, error) {
	arg := handle
	if function != "" {
		arg = "function " + function
	}
	if err := checkArg("argument", strings.ReplaceAll(arg, " ", "_")); err != nil {
		return 0, err
	}
	line, err := c.one(ctx, "dead "+verb+" "+arg)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(parseValue(line))
}

// WriteDead prints the dead set.
func WriteDead(w io.Writer, ds []DeadLine) error {
	tw := newTable(w, "HANDLE\tFUNCTION\tATTEMPTS\tDIED\tLAST ERROR")
	for _, d := range ds {
		tw.row(cell(d.Handle), cell(d.Function), strconv.Itoa(d.Attempts), cell(d.Died), cell(d.LastError))
	}
	return tw.flush()
}
