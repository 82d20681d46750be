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

	client.send(protocol.SubmitJob, "other", "", "x")
	client.expectError(protocol.CodePermissionDenied)
	stranger.send(protocol.SubmitJobBg, "jobs.resize", "", "x")
	stranger.expectError(protocol.CodePermissionDenied)
	expectLevels(t, client, worker, client, ops, stranger)
	if got := worker.admin("fleet"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("fleet without admin access: %q", got)
	}
	if got := client.admin("fleet"); !strings.HasPrefix(got, "ERR NOT_A_FLEET") {
		t.Errorf("fleet with read access, no fleet: %q", got)
	}
	// the connections refused a request are still served
	client.send(protocol.EchoReq, "still here")
	client.expect(protocol.EchoRes, "still here")

	// reloaded rules: nobody may submit any more
	s.SetAccess(&access.Rules{})
	client.send(protocol.SubmitJobBg, "jobs.resize", "", "img")
	client.expectError(protocol.CodePermissionDenied)
}

// expectLevels checks what the access rules give each peer: submitter may submit to jobs.*,
// worker register jobs.* and nothing else, reader the read-only admin views, writer the admin
// commands that change state; other may register nothing. The server is fresh: jobs.resize has
// no jobs yet.
func expectLevels(t *testing.T, submitter, worker, reader, writer, other *testPeer) {
	t.Helper()
	h := submitter.submit(protocol.SubmitJobBg, "jobs.resize", "", "img")
	worker.send(protocol.CanDo, "other")
	worker.expectError(protocol.CodePermissionDenied)
	other.send(protocol.CanDo, "jobs.resize")
	other.expectError(protocol.CodePermissionDenied)
	worker.send(protocol.CanDo, "jobs.resize")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "jobs.resize", "img")
	if got := reader.adminList("status"); got != "jobs.resize\t1\t1\t1\n.\n" {
		t.Errorf("status with read access: %q", got)
	}
	if got := reader.admin("maxqueue jobs.resize 1"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("maxqueue with read access: %q", got)
	}
	if got := worker.admin("workers"); !strings.HasPrefix(got, "ERR PERMISSION_DENIED") {
		t.Errorf("workers without admin access: %q", got)
	}
	if got := writer.admin("maxqueue jobs.resize 1"); got != "OK\r\n" {
		t.Errorf("maxqueue with write access: %q", got)
	}
}
