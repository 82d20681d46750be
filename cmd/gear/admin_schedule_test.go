package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/gearhq/gear/admin"
)

func TestAdmin_Schedule(t *testing.T) {
	addr := admStartServer(t, "H:sched")
	if out := admMustRun(t, addr, "schedule", "add", "nightly", "backup", "0 3 * * *", "tz=Europe/Berlin", "data=full run"); !strings.Contains(out, `schedule nightly: backup at "0 3 * * *"`) {
		t.Fatalf("schedule add: %q", out)
	}
	admMustRun(t, addr, "schedule", "add", "hourly", "report", "@hourly", "priority=low", "unique=r")
	out := admMustRun(t, addr, "schedule", "list")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "0 3 * * *") || !strings.Contains(out, "Europe/Berlin") || !strings.Contains(out, "@hourly") {
		t.Fatalf("schedule list:\n%s", out)
	}
	var ss []admin.ScheduleInfo
	if err := json.Unmarshal([]byte(admMustRun(t, addr, "--json", "schedule", "list")), &ss); err != nil || len(ss) != 2 || ss[0].Name != "hourly" || ss[0].Priority != "low" {
		t.Fatalf("schedule list --json: %v %+v", err, ss)
	}
	admMustRun(t, addr, "schedule", "remove", "hourly")
	if _, errOut, code := admRun(t, nil, "--server", addr, "schedule", "remove", "hourly"); code != 1 || !strings.Contains(errOut, "UNKNOWN_SCHEDULE") {
		t.Fatalf("second remove: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{{"schedule"}, {"schedule", "add", "n", "f", "0 3 * *"}, {"schedule", "frob"}, {"schedule", "add", "n", "f", "@daily", "color=red"}} {
		if _, _, code := admRun(t, nil, append([]string{"--server", addr}, args...)...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", args, code)
		}
	}
	if _, errOut, code := admRun(t, nil, "--server", addr, "schedule", "add", "n", "f", "@daily", "tz=No/Where"); code != 1 || !strings.Contains(errOut, "INVALID_ARGUMENTS") {
		t.Errorf("a bad zone: exit %d %s", code, errOut)
	}
}

// gear server --schedule defines schedules at start; a bad one stops the start.
func TestServer_ScheduleFlag(t *testing.T) {
	p := startGear(t, nil, gearBin, "server", "--port", "0", "--store", "memory",
		"--schedule", "nightly backup 0 3 * * * tz=Europe/Berlin data=x y", "--schedule", "often report */5 * * * *")
	out := admMustRun(t, listenAddr(t, p), "schedule", "list")
	if !strings.Contains(out, "nightly") || !strings.Contains(out, "*/5 * * * *") {
		t.Fatalf("schedule list:\n%s", out)
	}
	cmd := exec.Command(gearBin, "server", "--check-config", "--store", "memory", "--schedule", "bad f 0 3 * * * tz=No/Where")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "No/Where") {
		t.Fatalf("a bad --schedule: %v %s", err, out)
	}
}
