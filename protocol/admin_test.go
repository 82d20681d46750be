package protocol

import (
	"reflect"
	"testing"
)

func TestParseAdmin(t *testing.T) {
	cases := []struct {
		line string
		want AdminCommand
	}{
		{"status", AdminCommand{Name: AdminStatus, Word: "status", Args: []string{}}},
		{"STATUS", AdminCommand{Name: AdminStatus, Word: "STATUS", Args: []string{}}},
		{"  status  ", AdminCommand{Name: AdminStatus, Word: "status", Args: []string{}}},
		{"\tStatus\t", AdminCommand{Name: AdminStatus, Word: "Status", Args: []string{}}},
		{"status\r", AdminCommand{Name: AdminStatus, Word: "status", Args: []string{}}},
		{"show jobs", AdminCommand{Name: AdminShowJobs, Word: "show", Args: []string{}}},
		{"show \t jobs", AdminCommand{Name: AdminShowJobs, Word: "show", Args: []string{}}},
		{"SHOW UNIQUE JOBS", AdminCommand{Name: AdminShowUniqueJobs, Word: "SHOW", Args: []string{}}},
		{"show unique", AdminCommand{Word: "show", Args: []string{"unique"}}},
		{"show", AdminCommand{Word: "show", Args: []string{}}},
		{"show workers", AdminCommand{Word: "show", Args: []string{"workers"}}},
		{"cancel job H:x:1", AdminCommand{Name: AdminCancelJob, Word: "cancel", Args: []string{"H:x:1"}}},
		{"Cancel JOB H:Host:1", AdminCommand{Name: AdminCancelJob, Word: "Cancel", Args: []string{"H:Host:1"}}},
		{"cancel", AdminCommand{Word: "cancel", Args: []string{}}},
		{"maxqueue fn 1 2 3", AdminCommand{Name: AdminMaxQueue, Word: "maxqueue", Args: []string{"fn", "1", "2", "3"}}},
		{"maxqueue", AdminCommand{Name: AdminMaxQueue, Word: "maxqueue", Args: []string{}}},
		{"create function foo", AdminCommand{Name: AdminCreateFunction, Word: "create", Args: []string{"foo"}}},
		{"drop function foo", AdminCommand{Name: AdminDropFunction, Word: "drop", Args: []string{"foo"}}},
		{"drop function FooBar", AdminCommand{Name: AdminDropFunction, Word: "drop", Args: []string{"FooBar"}}},
		{"drop", AdminCommand{Word: "drop", Args: []string{}}},
		{"shutdown", AdminCommand{Name: AdminShutdown, Word: "shutdown", Args: []string{}}},
		{"shutdown graceful", AdminCommand{Name: AdminShutdown, Word: "shutdown", Args: []string{"graceful"}}},
		{"prioritystatus", AdminCommand{Name: AdminPriorityStatus, Word: "prioritystatus", Args: []string{}}},
		{"getpid", AdminCommand{Name: AdminGetPID, Word: "getpid", Args: []string{}}},
		{"verbose", AdminCommand{Name: AdminVerbose, Word: "verbose", Args: []string{}}},
		{"version", AdminCommand{Name: AdminVersion, Word: "version", Args: []string{}}},
		{"workers", AdminCommand{Name: AdminWorkers, Word: "workers", Args: []string{}}},
		{"bogus arg", AdminCommand{Word: "bogus", Args: []string{"arg"}}},
		{"statusx", AdminCommand{Word: "statusx", Args: []string{}}},
		{"", AdminCommand{}},
		{"   \t ", AdminCommand{}},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			got := ParseAdmin([]byte(tc.line))
			if got.Name != tc.want.Name || got.Word != tc.want.Word || len(got.Args) != len(tc.want.Args) ||
				(len(got.Args) > 0 && !reflect.DeepEqual(got.Args, tc.want.Args)) {
				t.Errorf("ParseAdmin(%q) = %#v, want %#v", tc.line, got, tc.want)
			}
		})
	}
}

// TestParseAdminDoesNotAlias checks that the result does not share memory with the decoder's buffer,
// which is overwritten by the next frame.
func TestParseAdminDoesNotAlias(t *testing.T) {
	buf := []byte("cancel job H:x:1")
	c := ParseAdmin(buf)
	copy(buf, "XXXXXXXXXXXXXXXX")
	if c.Word != "cancel" || len(c.Args) != 1 || c.Args[0] != "H:x:1" {
		t.Errorf("result changed with its input: %#v", c)
	}
}
