package core

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/protocol"
)

func connectAs(t testing.TB, c *Core, id access.Identity) *fakePeer {
	link := &fakeLink{}
	p := NewPeer(nextPeerID.Add(1), id.Addr.String(), nil, link)
	p.Identity = id
	c.Connect(p)
	return &fakePeer{t: t, c: c, p: p, link: link}
}

func mustRules(t testing.TB, text string) *access.Rules {
	t.Helper()
	r, err := access.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Denied requests change nothing and are answered; allowed ones work; new rules take effect on
// connected peers (a worker loses what it may no longer serve).
func TestCore_Access(t *testing.T) {
	var denied []string
	c, _ := newTestCore(t, func(o *Options) {
		o.Access = mustRules(t, `
[[rule]]
who = ["net:10.0.0.0/8"]
submit = ["billing.*"]
register = ["billing.*"]
admin = "read"
[[rule]]
who = ["cn:ops"]
admin = "write"
`)
		o.Observer = ObserverFunc(func(e Event) {
			if e.Kind == EventDenied {
				denied = append(denied, e.Detail+" "+e.Function)
			}
		})
	})
	inside := access.Identity{Addr: netip.MustParseAddr("10.0.0.5")}
	client, worker := connectAs(t, c, inside), connectAs(t, c, inside)
	outsider := connectAs(t, c, access.Identity{Addr: netip.MustParseAddr("192.0.2.1")})
	ops := connectAs(t, c, access.Identity{Addr: netip.MustParseAddr("192.0.2.2"), CommonName: "ops"})

	client.send(protocol.SubmitJobBg, "billing.charge", "", "a")
	client.expect("JOB_CREATED " + handle(1))
	client.send(protocol.SubmitJobBg, "payroll", "", "b")
	client.expect("ERROR PERMISSION_DENIED not allowed to submit to payroll")
	outsider.send(protocol.SubmitJob, "billing.charge", "", "c")
	outsider.expect("ERROR PERMISSION_DENIED not allowed to submit to billing.charge")
	worker.send(protocol.CanDo, "billing.charge")
	worker.send(protocol.CanDo, "payroll")
	worker.expect("ERROR PERMISSION_DENIED not allowed to register payroll")
	if fs := c.Functions(); len(fs) != 1 || fs[0].Name != "billing.charge" || fs[0].Workers != 1 {
		t.Fatalf("functions after the denied requests: %+v", fs)
	}

	admin := func(p *fakePeer, line string) string {
		reply, _ := c.Admin(recorder{}, p.p, []byte(line))
		return string(reply)
	}
	if r := admin(client, "status"); !strings.HasPrefix(r, "billing.charge\t1\t0\t1") {
		t.Errorf("status with read access: %q", r)
	}
	if r := admin(client, "cancel job "+handle(1)); !strings.HasPrefix(r, "ERR PERMISSION_DENIED") {
		t.Errorf("cancel with read access: %q", r)
	}
	if r := admin(outsider, "status"); !strings.HasPrefix(r, "ERR PERMISSION_DENIED") {
		t.Errorf("status without access: %q", r)
	}
	if _, ok := c.Job(handle(1)); !ok {
		t.Fatal("a denied cancel cancelled the job")
	}
	if r := admin(ops, "cancel job "+handle(1)); r != "OK\r\n" {
		t.Errorf("cancel with write access: %q", r)
	}

	// New rules: the inside network may submit but no longer serve billing
	c.SetAccess(mustRules(t, `
[[rule]]
who = ["net:10.0.0.0/8"]
submit = ["billing.*"]
`))
	if fs := c.Functions(); len(fs) != 1 || fs[0].Workers != 0 {
		t.Fatalf("the worker still serves billing after the rules changed: %+v", fs)
	}
	client.send(protocol.SubmitJobBg, "billing.charge", "", "d")
	client.expect("JOB_CREATED " + handle(2))
	if r := admin(client, "status"); !strings.HasPrefix(r, "ERR PERMISSION_DENIED") {
		t.Errorf("status after read access was taken away: %q", r)
	}
	// no rules: everything again
	c.SetAccess(nil)
	outsider.send(protocol.SubmitJobBg, "payroll", "", "e")
	outsider.expect("JOB_CREATED " + handle(3))

	want := []string{"submit payroll", "submit billing.charge", "register payroll", "admin_write ", "admin_read ", "admin_read "}
	if !slices.Equal(denied, want) {
		t.Errorf("denied events %q, want %q", denied, want)
	}
}

// The submit memo is bounded.
func TestCore_AccessMemoBounded(t *testing.T) {
	c, _ := newTestCore(t, func(o *Options) { o.Access = mustRules(t, "[[rule]]\nwho=[\"any\"]\nsubmit=[\"ok-*\"]") })
	client := connectAs(t, c, access.Identity{Addr: netip.MustParseAddr("10.0.0.5")})
	for i := range 3 * maxCachedDecisions {
		client.send(protocol.SubmitJobBg, "denied-"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26%26)), "", "")
	}
	if n := len(client.p.maySubmit); n > maxCachedDecisions {
		t.Fatalf("%d memoized decisions, want at most %d", n, maxCachedDecisions)
	}
}
