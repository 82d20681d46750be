package main

// gear admin schedule list|add|remove: named schedules (a Gear extension).

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/protocol"
)

// adminScheduler manages named schedules: a Conn on the Gearman port or an HTTPConn.
type adminScheduler interface {
	Schedules(context.Context) ([]admin.ScheduleInfo, error)
	AddSchedule(context.Context, admin.ScheduleInfo) error
	RemoveSchedule(context.Context, string) error
}

const adminScheduleSyntax = `schedule list | schedule remove NAME | schedule add NAME FUNCTION "MIN HOUR DOM MON DOW" [tz=ZONE] [priority=P] [unique=U] [data=...]`

// checkSchedule validates `schedule ...`: `add` is read by the admin protocol's own parser, so the
// spec may be one quoted argument or five.
func (r *adminRequest) checkSchedule() error {
	if len(r.args) == 0 {
		return fmt.Errorf("schedule: %s", adminScheduleSyntax)
	}
	switch sub := r.args[0]; {
	case sub == "list" && len(r.args) == 1:
	case sub == "remove" && len(r.args) == 2:
		if v := r.args[1]; v == "" || strings.ContainsAny(v, " \t\r\n\x00") {
			return fmt.Errorf("schedule remove: %q is not a schedule name", v)
		}
	case sub == "add" && len(r.args) >= 4:
		sc, err := protocol.ParseScheduleAdd(strings.Join(r.args[1:], " "))
		if err != nil {
			return fmt.Errorf("schedule add: %v", err)
		}
		r.schedule = &sc
	default:
		return fmt.Errorf("wrong arguments for schedule: %s", adminScheduleSyntax)
	}
	return nil
}

// adminScheduleList prints `schedule list`.
func adminScheduleList(ctx context.Context, w io.Writer, req *adminRequest, c adminScheduler) error {
	ss, err := c.Schedules(ctx)
	if err != nil {
		return err
	}
	if req.json {
		return admin.WriteJSON(w, ss)
	}
	return admin.WriteSchedules(w, ss)
}

// adminScheduleChange runs `schedule add` or `schedule remove` and says what it did.
func adminScheduleChange(ctx context.Context, req *adminRequest, c adminScheduler) (string, error) {
	if req.args[0] == "remove" {
		return "removed schedule " + req.args[1], c.RemoveSchedule(ctx, req.args[1])
	}
	sc := *req.schedule
	return fmt.Sprintf("schedule %s: %s at %q", sc.Name, sc.Function, sc.Spec), c.AddSchedule(ctx, sc)
}
