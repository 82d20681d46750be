package protocol

import (
	"strings"
	"testing"
)

func TestParseScheduleAdd(t *testing.T) {
	for _, tc := range []struct {
		line string
		want ScheduleInfo
		bad  bool
	}{
		{line: "schedule add n f 0 3 * * 1-5", want: ScheduleInfo{Name: "n", Function: "f", Spec: "0 3 * * 1-5"}},
		{line: "SCHEDULE ADD n f @daily tz=Europe/Berlin", want: ScheduleInfo{Name: "n", Function: "f", Spec: "@daily", TimeZone: "Europe/Berlin"}},
		{line: "n\tf  */5 *  * * *  priority=low unique=u data= a  b=c ", want: ScheduleInfo{Name: "n", Function: "f", Spec: "*/5 * * * *",
			Priority: "low", Unique: "u", Data: " a  b=c "}},
		{line: "schedule add n f 0 3 * *", bad: true},
		{line: "schedule add n f 0 3 * * * extra", bad: true},
		{line: "schedule add n f @daily tz=A tz=B", bad: true},
		{line: "schedule add n f @daily color=red", bad: true},
		{line: "schedule add n", bad: true},
		{line: "schedule add tz=x f @daily", bad: true},
	} {
		got, err := ParseScheduleAdd(tc.line)
		if tc.bad != (err != nil) || !tc.bad && got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v (bad %v)", tc.line, got, err, tc.want, tc.bad)
		}
	}
}

func TestSchedCronSpec(t *testing.T) {
	f := func(v ...string) [5][]byte {
		var out [5][]byte
		for i, s := range v {
			out[i] = []byte(s)
		}
		return out
	}
	for in, want := range map[[5]string]string{
		{"", "", "", "", ""}:          "* * * * *",
		{"0", "9", "*", "", "0"}:      "0 9 * * 1",     // Gearman's Monday is cron's 1
		{"59", "23", "31", "12", "6"}: "59 23 31 12 0", // Sunday
	} {
		got, err := SchedCronSpec(f(in[:]...))
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range [][5]string{{"60"}, {"", "24"}, {"", "", "0"}, {"", "", "", "13"}, {"", "", "", "", "7"}, {"-1"}, {"+1"}, {"1,2"}} {
		if got, err := SchedCronSpec(f(in[:]...)); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

// FuzzParseScheduleAdd: any line parses or fails without a panic, and what parses formats into a
// line that parses back the same.
func FuzzParseScheduleAdd(f *testing.F) {
	for _, s := range []string{"schedule add n f 0 3 * * *", "n f @daily tz=UTC data=x y", "n f * * * * * unique=u priority=high data=",
		"schedule add", "a b c d e f g h=i", "n f @x data=\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		sc, err := ParseScheduleAdd(line)
		if err != nil {
			return
		}
		out, err := FormatScheduleAdd(sc)
		if err != nil {
			if strings.ContainsAny(sc.Data+sc.Spec+sc.Name+sc.Function+sc.TimeZone+sc.Unique+sc.Priority, "\r\n") {
				return
			}
			t.Fatalf("%q parsed to %+v, which does not format: %v", line, sc, err)
		}
		back, err := ParseScheduleAdd(out)
		if err != nil || back != sc {
			t.Fatalf("%q → %+v → %q → %+v, %v", line, sc, out, back, err)
		}
	})
}
