package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ScheduleInfo is a named schedule (a Gear extension): a background job of Function submitted at
// every tick of Spec, a standard five-field cron line or a descriptor such as "@hourly", read in
// the IANA time zone TimeZone. It is what `schedule add` defines, `schedule list` and the HTTP API
// show, and the store keeps (as JSON).
type ScheduleInfo struct {
	Name     string `json:"name"`
	Function string `json:"function"`
	Spec     string `json:"spec"`
	TimeZone string `json:"time_zone"`           // "" is UTC
	Priority string `json:"priority"`            // high, normal (""), low
	Unique   string `json:"unique,omitempty"`    // set: a tick while its last job is unfinished coalesces
	Data     string `json:"data"`                // the job's payload
	Updated  int64  `json:"updated_unix"`        // when last defined
	Origin   string `json:"origin,omitempty"`    // who defined it
	Last     int64  `json:"last_fired_unix"`     // the last tick fired (Unix seconds; 0: none)
	Next     int64  `json:"next_unix"`           // the next tick (Unix seconds; 0: none within 5 years)
	Source   string `json:"source,omitempty"`    // "flag" for a schedule given at start
	Fired    int64  `json:"fired,omitempty"`     // ticks fired since the server started
	Skipped  int64  `json:"coalesced,omitempty"` // ticks that joined an unfinished job instead
}

// Admin commands for named schedules (Gear extensions).
const (
	AdminScheduleAdd    = "schedule add"
	AdminScheduleList   = "schedule list"
	AdminScheduleRemove = "schedule remove"
)

// ScheduleAddSyntax is the syntax of `schedule add`, for usage messages.
const ScheduleAddSyntax = "schedule add NAME FUNCTION MIN HOUR DOM MON DOW|@DESCRIPTOR [tz=ZONE] [priority=high|normal|low] [unique=U] [data=REST OF LINE]"

// ErrScheduleSyntax reports a `schedule add` line that does not parse.
var ErrScheduleSyntax = errors.New("bad schedule syntax")

// ParseScheduleAdd parses a `schedule add` line (with or without its two command words):
//
//	schedule add NAME FUNCTION MIN HOUR DOM MON DOW [tz=ZONE] [priority=P] [unique=U] [data=REST]
//	schedule add NAME FUNCTION @DESCRIPTOR          [tz=ZONE] [priority=P] [unique=U] [data=REST]
//
// Words are separated by spaces or tabs. The spec is one word starting with '@' or exactly five
// words (cron fields never hold '='); options follow in any order, each at most once; data=, if
// given, comes last and takes the rest of the line verbatim (spaces included), so a payload needs
// no quoting. Only the syntax is checked here: the server validates the spec, zone and names.
func ParseScheduleAdd(line string) (ScheduleInfo, error) {
	var sc ScheduleInfo
	rest := strings.TrimLeft(line, " \t")
	word := func() string {
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			i = len(rest)
		}
		w := rest[:i]
		rest = strings.TrimLeft(rest[i:], " \t")
		return w
	}
	bad := func(format string, args ...any) (ScheduleInfo, error) {
		return ScheduleInfo{}, fmt.Errorf("%w: %s (%s)", ErrScheduleSyntax, fmt.Sprintf(format, args...), ScheduleAddSyntax)
	}
	if strings.HasPrefix(strings.ToLower(rest), "schedule") {
		save := rest
		if w1, w2 := word(), word(); !strings.EqualFold(w1, "schedule") || !strings.EqualFold(w2, "add") {
			rest = save
		}
	}
	sc.Name, sc.Function = word(), word()
	if sc.Name == "" || sc.Function == "" {
		return bad("a name and a function are required")
	}
	if strings.Contains(sc.Name, "=") || strings.Contains(sc.Function, "=") {
		return bad("the name and the function come first, then the spec")
	}
	if strings.HasPrefix(rest, "@") {
		if sc.Spec = word(); strings.Contains(sc.Spec, "=") {
			return bad("a descriptor holds no '='")
		}
	} else {
		fields := make([]string, 0, 5)
		for len(fields) < 5 {
			w := word()
			if w == "" || strings.Contains(w, "=") {
				return bad("a cron spec has five fields (minute hour day-of-month month day-of-week) or is an @descriptor")
			}
			fields = append(fields, w)
		}
		sc.Spec = strings.Join(fields, " ")
	}
	seen := map[string]bool{}
	for rest != "" {
		if strings.HasPrefix(rest, "data=") {
			sc.Data = strings.TrimSuffix(rest[len("data="):], "\r")
			break
		}
		w := word()
		key, value, ok := strings.Cut(w, "=")
		if !ok {
			return bad("unexpected %q after the spec: options are KEY=VALUE", w)
		}
		if strings.Contains(value, "=") {
			return bad("%s= takes a value without '='", key)
		}
		if seen[key] {
			return bad("%s= given twice", key)
		}
		seen[key] = true
		switch key {
		case "tz":
			sc.TimeZone = value
		case "priority":
			sc.Priority = value
		case "unique":
			sc.Unique = value
		default:
			return bad("unknown option %q", key)
		}
	}
	return sc, nil
}

// FormatScheduleAdd is the `schedule add` line that defines sc; ParseScheduleAdd reads it back.
// It fails for a schedule the line cannot carry: words holding whitespace or '=', a payload with a
// line break, a spec that is neither five fields nor one @descriptor.
func FormatScheduleAdd(sc ScheduleInfo) (string, error) {
	for _, w := range []struct{ what, v string }{{"name", sc.Name}, {"function", sc.Function},
		{"time zone", sc.TimeZone}, {"priority", sc.Priority}, {"unique", sc.Unique}} {
		if strings.ContainsAny(w.v, " \t\r\n=") || w.v == "" && (w.what == "name" || w.what == "function") {
			return "", fmt.Errorf("%w: %s %q is empty or holds whitespace or '='", ErrScheduleSyntax, w.what, w.v)
		}
	}
	spec := strings.Split(sc.Spec, " ")
	if !(len(spec) == 5 || len(spec) == 1 && strings.HasPrefix(spec[0], "@")) || slices.Contains(spec, "") ||
		strings.ContainsAny(sc.Spec, "=\t\r\n") {
		return "", fmt.Errorf("%w: spec %q is neither five cron fields nor an @descriptor", ErrScheduleSyntax, sc.Spec)
	}
	if strings.ContainsAny(sc.Data, "\r\n") {
		return "", fmt.Errorf("%w: the admin line cannot carry a payload with a line break (use the HTTP API)", ErrScheduleSyntax)
	}
	b := []byte("schedule add " + sc.Name + " " + sc.Function + " " + strings.Join(spec, " "))
	for _, o := range []struct{ key, v string }{{"tz", sc.TimeZone}, {"priority", sc.Priority}, {"unique", sc.Unique}} {
		if o.v != "" {
			b = append(b, " "+o.key+"="+o.v...)
		}
	}
	if sc.Data != "" {
		b = append(b, " data="+sc.Data...)
	}
	return string(b), nil
}

// AppendSchedules renders `schedule list`: one line per schedule,
// "NAME\tFUNCTION\tSPEC\tZONE\tPRIORITY\tUNIQUE\tNEXT\tLAST", then ".". The spec keeps its
// single spaces; NEXT and LAST are RFC 3339 UTC or "-"; UNIQUE is "-" when none (a schedule's
// unique cannot be "-"). The payload is not listed (the HTTP API shows it).
func AppendSchedules(b []byte, ss []ScheduleInfo) []byte {
	stamp := func(b []byte, unix int64) []byte {
		if unix == 0 {
			return append(b, '-')
		}
		return time.Unix(unix, 0).UTC().AppendFormat(b, time.RFC3339)
	}
	orDash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	for _, s := range ss {
		b = append(b, s.Name+"\t"+s.Function+"\t"+s.Spec+"\t"+orDash(s.TimeZone)+"\t"+orDash(s.Priority)+"\t"+orDash(s.Unique)+"\t"...)
		b = stamp(b, s.Next)
		b = append(b, '\t')
		b = stamp(b, s.Last)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

// ParseSchedules parses the lines of a `schedule list` reply (without the "." line).
func ParseSchedules(lines []string) ([]ScheduleInfo, error) {
	out := make([]ScheduleInfo, 0, len(lines))
	unstamp := func(v string) (int64, error) {
		if v == "-" {
			return 0, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		return t.Unix(), err
	}
	undash := func(v string) string {
		if v == "-" {
			return ""
		}
		return v
	}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			return nil, fmt.Errorf("malformed schedule line %q", line)
		}
		next, e1 := unstamp(f[6])
		last, e2 := unstamp(f[7])
		if err := errors.Join(e1, e2); err != nil {
			return nil, fmt.Errorf("malformed schedule line %q: %v", line, err)
		}
		out = append(out, ScheduleInfo{Name: f[0], Function: f[1], Spec: f[2], TimeZone: undash(f[3]),
			Priority: undash(f[4]), Unique: undash(f[5]), Next: next, Last: last})
	}
	return out, nil
}

// schedFieldLimits are SUBMIT_JOB_SCHED's fields in order: minute, hour, day of month, month, day
// of week (0 = Monday … 6 = Sunday, as libgearman numbers them).
var schedFieldLimits = [5]struct {
	name     string
	min, max int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 6}}

// SchedCronSpec turns SUBMIT_JOB_SCHED's five fields (minute, hour, day of month, month, day of
// week) into a standard cron spec. Each field is empty or "*" (any) or one decimal number in its
// range. Gearman numbers the days of the week from 0 = Monday; cron from 0 = Sunday: the day is
// converted ((d+1) mod 7), so 6 (Sunday) becomes cron's 0.
func SchedCronSpec(fields [5][]byte) (string, error) {
	out := make([]string, 5)
	for i, f := range fields {
		v := strings.TrimSpace(string(f))
		if v == "" || v == "*" {
			out[i] = "*"
			continue
		}
		lim := schedFieldLimits[i]
		n, err := strconv.Atoi(v)
		if err != nil || n < lim.min || n > lim.max || v[0] == '+' || v[0] == '-' {
			return "", fmt.Errorf("%s %q is not empty, * or a number from %d to %d", lim.name, v, lim.min, lim.max)
		}
		if i == 4 {
			n = (n + 1) % 7
		}
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, " "), nil
}
