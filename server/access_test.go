package server

import (
	"strings"
	"testing"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/protocol"
)

// Access rules by network on the Gearman port: each loopback source address is a network.
func TestAccess_ByNetwork(t *testing.T) {
	rules, err := access.Parse([]byte(`
[[rule]]
who = ["net:127.0.0.2"]
submit = ["jobs.*"]
admin = "read"
[[rule]]
who = ["net:127.0.0.3/32"]
register = ["jobs.*"]
[[rule]]
who = ["net:127.0.0.4"]
admin = "write"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := mustStartServer(t, func(o *Options) { o.Access = rules })
	addr := addrOf(t, s)
	client, worker := connectFrom(t, addr, "127.0.0.2"), connectFrom(t, addr, "127.0.0.3")
	ops, stranger := connectFrom(t, addr, "127.0.0.4"), connectFrom(t, addr, "127.0.0.5")

	h := client.submit(protocol.SubmitJobBg, "jobs.resize", "", "img")
	client.send(protocol.SubmitJob, "other", "", "x")
	client.expectError(protocol.CodePermissionDenied)
	stranger.send(protocol.SubmitJobBg, "jobs.resize", "", "x")
	stranger.expectError(protocol.CodePermissionDenied)

	worker.send(protocol.CanDo, "other")
	worker.expectError(protocol.CodePermissionDenied)
	worker.send(protocol.CanDo, "jobs.resize")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "jobs.resize", "img")
	stranger.send(protocol.CanDo, "jobs.resize")
	stranger.expectError(protocol.CodePermissionDenied)

	if got := client.adminList("status"); got != "jobs.resize\t1\t1\t1\n.\n" {
		t.Errorf("status with read access: %q", got)
	}
	if got := client.admin("maxqueue jobs.resize 1"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("maxqueue with read access: %q", got)
	}
	if got := worker.admin("workers"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("workers without admin access: %q", got)
	}
	if got := worker.admin("fleet"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("fleet without admin access: %q", got)
	}
	if got := client.admin("fleet"); !strings.HasPrefix(got, "ERR NOT_A_FLEET") {
		t.Errorf("fleet with read access, no fleet: %q", got)
	}
	if got := ops.admin("maxqueue jobs.resize 1"); got != "OK\r\n" {
		t.Errorf("maxqueue with write access: %q", got)
	}
	// the connections refused a request are still served
	client.send(protocol.EchoReq, "still here")
	client.expect(protocol.EchoRes, "still here")

	// reloaded rules: nobody may submit any more
	s.SetAccess(&access.Rules{})
	client.send(protocol.SubmitJobBg, "jobs.resize", "", "img")
	client.expectError(protocol.CodePermissionDenied)
}
