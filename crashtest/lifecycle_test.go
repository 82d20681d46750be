package crashtest

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// adminLines sends one admin command and returns its reply: the lines up to "." for a list, else
// the one line.
func adminLines(t *testing.T, addr, cmd string, list bool) string {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	fmt.Fprintf(nc, "%s\n", cmd)
	r := bufio.NewReader(nc)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("admin %q: %v after %q", cmd, err, b.String())
		}
		b.WriteString(line)
		if !list || line == ".\n" {
			return b.String()
		}
	}
}

// raw sends packets on one connection and reads n replies.
func raw(t *testing.T, addr string, n int, pkts ...[]byte) []*protocol.Packet {
	t.Helper()
	nc := dial(t, addr)
	defer nc.Close()
	for _, p := range pkts {
		if _, err := nc.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	dec := protocol.NewDecoder(nc, 0)
	var out []*protocol.Packet
	for range n {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("reading reply %d of %d: %v", len(out)+1, n, err)
		}
		p := f.Packet
		out = append(out, &protocol.Packet{Type: p.Type, Args: append([][]byte(nil), p.Args...)})
	}
	return out
}

// kill -9 with a paused function, run limits, a retry policy, a job waiting out its backoff, a
// dead job and a schedule: after the restart all of it is back, and the waiting job runs once
// when due.
func TestCrash_LifecycleSurvivesKill(t *testing.T) {
	store := pebbleStore(t)
	s := startServer(t, store, "--sync", "always")
	for _, cmd := range []string{"pause paused", "limit limited 2 5", "retry flaky 3 2 2", "retry doomed 1 0 0", "retry steady 3 0.05 0.05",
		"schedule add nightly report 0 3 * * * tz=Europe/Berlin data=the report"} {
		if got := adminLines(t, s.addr, cmd, false); got != "OK\r\n" {
			t.Fatalf("%s: %q", cmd, got)
		}
	}
	req := func(tp protocol.Type, args ...string) []byte {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		return protocol.AppendRequest(nil, tp, b...)
	}
	// Three jobs under a retry policy complete, two of them after failed attempts: once their
	// removal is committed, the kill must not bring any of them back.
	steady := completeUnderRetries(t, s.addr, req)

	// Submit one job each to flaky and doomed, then fail both once: flaky waits 2 s for its second
	// attempt, doomed dies at once.
	created := raw(t, s.addr, 2, req(protocol.SubmitJobBg, "flaky", "", "f"), req(protocol.SubmitJobBg, "doomed", "", "d"))
	for _, p := range created {
		if p.Type != protocol.JobCreated {
			t.Fatalf("submit: %v", p.Type)
		}
	}
	// One worker connection takes both jobs and fails each once.
	nc := dial(t, s.addr)
	dec := protocol.NewDecoder(nc, 0)
	nc.Write(append(req(protocol.CanDo, "flaky"), req(protocol.CanDo, "doomed")...))
	for range 2 {
		nc.Write(req(protocol.GrabJob))
		f, err := dec.Next()
		if err != nil || f.Packet.Type != protocol.JobAssign {
			t.Fatalf("grab: %v %v", err, f)
		}
		nc.Write(req(protocol.WorkFail, string(f.Packet.Args[0])))
	}
	nc.Write(req(protocol.EchoReq, "sync"))
	if f, err := dec.Next(); err != nil || f.Packet.Type != protocol.EchoRes {
		t.Fatalf("echo: %v", err)
	}
	nc.Close()
	if got := adminLines(t, s.addr, "dead list", true); !strings.Contains(got, "\tdoomed\t") {
		t.Fatalf("dead list before the kill: %q", got)
	}
	s.kill()

	s = startServer(t, store, "--sync", "always")
	defer s.stop()
	fns := adminLines(t, s.addr, "functions", true)
	for _, want := range []string{"paused\t0\t0\t0\tpaused\t0\t0\n", "limited\t0\t0\t0\tactive\t2\t5\n", "flaky\t1\t0\t0\tactive\t0\t0\n"} {
		if !strings.Contains(fns, want) {
			t.Errorf("after the restart, functions lacks %q:\n%s", want, fns)
		}
	}
	if got := adminLines(t, s.addr, "dead list", true); !strings.Contains(got, "\tdoomed\t1\t") {
		t.Errorf("dead list after the restart: %q", got)
	}
	if got := adminLines(t, s.addr, "schedule list", true); !strings.Contains(got, "nightly") || !strings.Contains(got, "Europe/Berlin") {
		t.Errorf("schedule list after the restart: %q", got)
	}
	if got := raw(t, s.addr, 1, req(protocol.CanDo, "steady"), req(protocol.GrabJob)); got[0].Type != protocol.NoJob {
		t.Errorf("a completed job of %v came back after the kill: %v %q", steady, got[0].Type, got[0].Args)
	}
	// The waiting job runs once it is due (its 2 s backoff), not before, and once.
	deadline := time.Now().Add(20 * time.Second)
	var got []*protocol.Packet
	for time.Now().Before(deadline) {
		got = raw(t, s.addr, 1, req(protocol.CanDo, "flaky"), req(protocol.GrabJob))
		if got[0].Type == protocol.JobAssign {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got[0].Type != protocol.JobAssign || string(got[0].Args[2]) != "f" {
		t.Fatalf("the waiting job after the restart: %v", got[0].Type)
	}
}

// completeUnderRetries submits three background jobs to steady (retry policy: 3 attempts) and has
// one worker complete them: the first at once, the second after one failure, the third after two.
// It returns once the store has committed their removal, with their handles.
func completeUnderRetries(t *testing.T, addr string, req func(protocol.Type, ...string) []byte) []string {
	t.Helper()
	var handles []string
	for _, p := range raw(t, addr, 3, req(protocol.SubmitJobBg, "steady", "", "0"), req(protocol.SubmitJobBg, "steady", "", "1"),
		req(protocol.SubmitJobBg, "steady", "", "2")) {
		if p.Type != protocol.JobCreated {
			t.Fatalf("submit: %v", p.Type)
		}
		handles = append(handles, string(p.Args[0]))
	}
	nc := dial(t, addr)
	defer nc.Close()
	dec := protocol.NewDecoder(nc, 0)
	nc.Write(req(protocol.CanDo, "steady"))
	failures := map[string]int{"0": 0, "1": 1, "2": 2} // by payload: the failures still to give it
	deadline := time.Now().Add(20 * time.Second)
	for completed := 0; completed < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("steady: %d of 3 jobs completed", completed)
		}
		nc.Write(req(protocol.GrabJob))
		f, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Packet.Type {
		case protocol.NoJob: // a failed one waits out its backoff
			time.Sleep(10 * time.Millisecond)
		case protocol.JobAssign:
			h, d := string(f.Packet.Args[0]), string(f.Packet.Args[2])
			if failures[d] > 0 {
				failures[d]--
				nc.Write(req(protocol.WorkFail, h))
			} else {
				nc.Write(req(protocol.WorkComplete, h, "done"))
				completed++
			}
		default:
			t.Fatalf("grab: %v", f.Packet.Type)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(adminLines(t, addr, "store", true), "\njobs\t0\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the store still holds jobs: %q", adminLines(t, addr, "store", true))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return handles
}
