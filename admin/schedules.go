package admin

import (
	"context"
	"io"
	"net/url"
	"time"

	"github.com/gearhq/gear/protocol"
)

// ScheduleInfo is a named schedule (`schedule list`, a Gear extension).
type ScheduleInfo = protocol.ScheduleInfo

// Schedules runs `schedule list` (Gear only). The text reply carries no payload; HTTPConn's has it.
func (c *Conn) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	lines, err := c.gearOnly(ctx, "schedule list", "")
	if err != nil {
		return nil, err
	}
	v, err := adminErr(protocol.ParseSchedules(lines))
	return v, c.checkParse(err)
}

// AddSchedule runs `schedule add` (Gear only): defines or replaces sc. A payload with a line
// break cannot go over the admin line (use HTTPConn).
func (c *Conn) AddSchedule(ctx context.Context, sc ScheduleInfo) error {
	line, err := protocol.FormatScheduleAdd(sc)
	if err != nil {
		return err
	}
	return c.ok(ctx, line)
}

// RemoveSchedule runs `schedule remove NAME` (Gear only).
func (c *Conn) RemoveSchedule(ctx context.Context, name string) error {
	if err := checkArg("schedule name", name); err != nil {
		return err
	}
	return c.ok(ctx, "schedule remove "+name)
}

// Schedules lists the named schedules.
func (c *HTTPConn) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	var ss []ScheduleInfo
	return ss, c.call(ctx, "GET", "/api/v1/schedules", nil, &ss)
}

// AddSchedule defines or replaces a named schedule.
func (c *HTTPConn) AddSchedule(ctx context.Context, sc ScheduleInfo) error {
	body := map[string]string{"name": sc.Name, "function": sc.Function, "spec": sc.Spec, "time_zone": sc.TimeZone,
		"priority": sc.Priority, "unique": sc.Unique, "data": sc.Data}
	return c.call(ctx, "POST", "/api/v1/schedules", body, &map[string]any{})
}

// RemoveSchedule removes a named schedule.
func (c *HTTPConn) RemoveSchedule(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/api/v1/schedules/"+url.PathEscape(name)+"/delete", nil, &map[string]any{})
}

// WriteSchedules prints the schedules: name, function, spec, zone, priority, unique, next and last
// tick (UTC).
func WriteSchedules(w io.Writer, ss []ScheduleInfo) error {
	stamp := func(unix int64) string {
		if unix == 0 {
			return "-"
		}
		return time.Unix(unix, 0).UTC().Format(time.DateTime)
	}
	orDash := func(v string) string {
		if v == "" {
			return "-"
		}
		return cell(v)
	}
	tw := newTable(w, "NAME\tFUNCTION\tSPEC\tZONE\tPRIORITY\tUNIQUE\tNEXT (UTC)\tLAST (UTC)")
	for _, s := range ss {
		tw.row(cell(s.Name), cell(s.Function), cell(s.Spec), orDash(s.TimeZone), orDash(s.Priority), orDash(s.Unique),
			stamp(s.Next), stamp(s.Last))
	}
	return tw.flush()
}
