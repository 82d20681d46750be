package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/httpapi"
	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/store"
	"github.com/gearhq/gear/worker"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// env is a job server with its HTTP API, both real, on loopback.
type env struct {
	srv     *server.Server
	addr    string // Gearman
	web     string // http://host:port
	metrics *httpapi.Metrics
	logs    *syncbuf.Buffer
}

func start(t *testing.T, maxFunctions int) *env { return startWith(t, maxFunctions, nil) }

func startWith(t *testing.T, maxFunctions int, configure func(*httpapi.Options), serverOpts ...func(*server.Options)) *env {
	t.Helper()
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	m := httpapi.NewMetrics(maxFunctions, log)
	hopts := httpapi.Options{Addr: "127.0.0.1:0", Metrics: m, Log: log}
	if configure != nil {
		configure(&hopts)
	}
	web, err := httpapi.Listen(hopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { web.Close() })
	base := "http://" + web.Addr().String()
	if hopts.Auth == nil {
		if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz before the server is attached: %d, want 503", code)
		}
		if code, _ := get(t, base+"/livez"); code != http.StatusOK {
			t.Fatalf("/livez: %d", code)
		}
	}
	addr, srv := testenv.StartGearWith(t, "127.0.0.1:0", func(opts *server.Options) {
		opts.Observer = m
		opts.Logger = log
		for _, f := range serverOpts {
			f(opts)
		}
	})
	web.Attach(srv)
	if code, _ := get(t, base+"/readyz"); hopts.Auth == nil && code != http.StatusOK {
		t.Fatalf("/readyz once attached: %d", code)
	}
	return &env{srv: srv, addr: addr, web: base, metrics: m, logs: logs}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return testenv.HTTPGet(t, url)
}

// scrape reads /metrics over HTTP into metric families.
func (e *env) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, e.web+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include want (nil: none).
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func gearmanCLI(t *testing.T, e *env, args ...string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	return exec.Command("gearman", append([]string{"-h", host, "-p", port}, args...)...)
}

// After exactly N jobs run by a third-party worker for a third-party client (libgearman's gearman
// tool, both), /metrics counts N of each, and the histograms N observations.
func TestMetrics_CountJobsOfThirdPartyPeers(t *testing.T) {
	e := start(t, 100)
	worker := gearmanCLI(t, e, "-w", "-f", "metered", "--", "rev")
	if err := worker.Start(); err != nil {
		t.Fatalf("gearman -w (apt-get install gearman-tools): %v", err)
	}
	t.Cleanup(func() { worker.Process.Kill(); worker.Wait() })
	testenv.WaitWorkers(t, e.addr, "metered", 1)
	const n = 7
	for i := range n {
		out, err := gearmanCLI(t, e, "-f", "metered", "--", fmt.Sprintf("job%d", i)).Output()
		if err != nil || !strings.HasPrefix(string(out), fmt.Sprintf("%dboj", i)) {
			t.Fatalf("job %d: %q %v", i, out, err)
		}
	}
	fams := e.scrape(t)
	fn := map[string]string{"function": "metered"}
	for name, want := range map[string]float64{
		"gear_jobs_submitted_total": n, "gear_jobs_completed_total": n,
		"gear_job_wait_seconds": n, "gear_job_run_seconds": n,
		"gear_workers": 1, "gear_running_jobs": 0,
	} {
		if got, ok := value(fams, name, fn); !ok || got != want {
			t.Errorf("%s{function=metered} = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if got, _ := value(fams, "gear_jobs_failed_total", fn); got != 0 {
		t.Errorf("failed %v, want 0", got)
	}
	if got, _ := value(fams, "gear_connections_accepted_total", nil); got < n+1 {
		t.Errorf("connections accepted %v, want at least %d", got, n+1)
	}
	// Each job's data crossed the wire both ways at least twice (client->server->worker, back).
	for _, dir := range []string{"in", "out"} {
		if got, _ := value(fams, "gear_network_bytes_total", map[string]string{"direction": dir}); got < float64(2*n*len("job0")) {
			t.Errorf("bytes %s: %v", dir, got)
		}
	}
}

// phpClient runs the interop suite's PHP client (pecl gearman) against e: MODE ARGS..., one JSON
// object out.
func phpClient(e *env, args ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(e.addr)
	return exec.Command("php", append([]string{"../interop/testdata/client.php", host, port}, args...)...)
}

// The same with PHP's GearmanWorker and GearmanClient (pecl gearman, the interop suite's scripts):
// N jobs counted in the metrics; and a job cancelled through the API while its PHP client waits
// fails to that client with GEARMAN_WORK_FAIL.
func TestMetrics_PHPPeersAndCancel(t *testing.T) {
	e := start(t, 100)
	host, port, _ := net.SplitHostPort(e.addr)
	worker := exec.Command("php", "../interop/testdata/worker.php", host, port, "m", "php-worker", filepath.Join(t.TempDir(), "jobs.log"))
	if err := worker.Start(); err != nil {
		t.Fatalf("php worker.php (apt-get install php-cli php-gearman): %v", err)
	}
	t.Cleanup(func() { worker.Process.Kill(); worker.Wait() })
	testenv.WaitWorkers(t, e.addr, "m.rev", 1)
	type result struct{ RC, Result string }
	run := func(cmd *exec.Cmd) result {
		t.Helper()
		out, err := cmd.Output()
		var r result
		if err != nil || json.Unmarshal(out, &r) != nil {
			t.Fatalf("php client.php: %v %q", err, out)
		}
		return r
	}
	const n = 6
	for i := range n {
		if r := run(phpClient(e, "do", "normal", "m.rev", fmt.Sprintf("job%d", i))); r.RC != "GEARMAN_SUCCESS" || r.Result != fmt.Sprintf("%dboj", i) {
			t.Fatalf("job %d: %+v", i, r)
		}
	}
	fams := e.scrape(t)
	fn := map[string]string{"function": "m.rev"}
	for name, want := range map[string]float64{
		"gear_jobs_submitted_total": n, "gear_jobs_completed_total": n,
		"gear_job_wait_seconds": n, "gear_job_run_seconds": n, "gear_workers": 1, "gear_running_jobs": 0,
	} {
		if got, ok := value(fams, name, fn); !ok || got != want {
			t.Errorf("%s{function=m.rev} = %v (present %v), want %v", name, got, ok, want)
		}
	}

	waiting := phpClient(e, "do", "normal", "m.nobody", "payload")
	var out bytes.Buffer
	waiting.Stdout = &out
	if err := waiting.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiting.Process.Kill() })
	var handle string
	testenv.WaitFor(t, "the PHP client's job", 10*time.Second, func() bool {
		var page struct {
			Jobs []protocol.JobInfo `json:"jobs"`
		}
		code, body := get(t, e.web+"/api/v1/jobs?function=m.nobody&state=queued")
		if code != 200 || json.Unmarshal(body, &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].Clients != 1 {
			return false
		}
		handle = page.Jobs[0].Handle
		return true
	})
	if code, body := postJSON(t, e.web+"/api/v1/jobs/"+handle+"/cancel", ""); code != 200 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	waiting.Wait()
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.RC != "GEARMAN_WORK_FAIL" {
		t.Errorf("the PHP client after the cancel: %q (%v), want GEARMAN_WORK_FAIL", out.String(), err)
	}
	if _, ok := e.srv.Core().Job(handle); ok {
		t.Error("the cancelled job is still there")
	}
}

// The durable store's commits, batch operations and time are counted.
func TestMetrics_Store(t *testing.T) {
	st, err := store.OpenPebble(t.TempDir(), store.SyncAlways, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := startWith(t, 100, nil, func(o *server.Options) { o.Store = st })
	const n = 5
	for range n {
		queuedJob(t, e, "stored")
	}
	fams := e.scrape(t)
	commits, _ := value(fams, "gear_store_commits_total", nil)
	ops, _ := value(fams, "gear_store_committed_operations_total", nil)
	secs, _ := value(fams, "gear_store_commit_seconds_total", nil)
	if commits < 1 || ops < n || secs <= 0 {
		t.Errorf("store metrics: commits %v, operations %v, seconds %v; want >= 1, >= %d, > 0", commits, ops, secs, n)
	}
	if e, _ := value(fams, "gear_store_commit_errors_total", nil); e != 0 {
		t.Errorf("commit errors %v", e)
	}
	if f, ok := value(fams, "gear_store_failing_seconds", nil); !ok || f != 0 {
		t.Errorf("gear_store_failing_seconds %v (exported: %v), want 0 with every write succeeding", f, ok)
	}
	// one latency and one batch size per commit
	if lat, _ := value(fams, "gear_store_commit_duration_seconds", nil); lat != commits {
		t.Errorf("commit latency histogram counts %v, want the %v commits", lat, commits)
	}
	if bs, _ := value(fams, "gear_store_batch_operations", nil); bs != commits {
		t.Errorf("batch size histogram counts %v, want the %v commits", bs, commits)
	}
	if h := fams["gear_store_batch_operations"].Metric[0].Histogram; h.GetSampleSum() != ops {
		t.Errorf("batch sizes sum to %v, want the %v operations", h.GetSampleSum(), ops)
	}
}

// Queue, running and worker gauges say what the admin `status` line says at the same moment.
func TestMetrics_GaugesMatchStatus(t *testing.T) {
	e := start(t, 100)
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 10*time.Second)
	for i := range 5 {
		p := []string{"high", "normal", "low"}[i%3]
		if _, err := c.SubmitBackground(ctx, "gauged", []byte(p), clientPriority(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	// A worker takes one job and holds it: one running, one worker.
	gate := testenv.NewGate()
	testenv.StartWorker(t, []string{e.addr}, 1, map[string]worker.Func{"gauged": gate.Fn})
	gate.WaitStarted(t)
	t.Cleanup(gate.Open)
	fams := e.scrape(t)
	status := e.srv.Core().Status()
	if len(status) != 1 {
		t.Fatalf("status %+v", status)
	}
	st := status[0]
	fn := map[string]string{"function": "gauged"}
	var queued float64
	for _, p := range []string{"high", "normal", "low"} {
		v, _ := value(fams, "gear_queued_jobs", map[string]string{"function": "gauged", "priority": p})
		queued += v
	}
	running, _ := value(fams, "gear_running_jobs", fn)
	workers, _ := value(fams, "gear_workers", fn)
	if int(queued+running) != st.Total || int(running) != st.Running || int(workers) != st.Workers {
		t.Errorf("metrics queued %v running %v workers %v; status %+v", queued, running, workers, st)
	}
	if age, ok := value(fams, "gear_oldest_queued_job_age_seconds", fn); !ok || age < 0 {
		t.Errorf("oldest age %v %v", age, ok)
	}
}

// The metrics pass Prometheus' own lint (names, units, _total only on counters).
func TestMetrics_Lint(t *testing.T) {
	e := start(t, 100)
	testenv.NewClient(t, e.addr).SubmitBackground(testenv.CtxTimeout(t, 5*time.Second), "linted", []byte("x"), clientPriority(t, "normal"))
	problems, err := testutil.GatherAndLint(e.metrics.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A client inventing function names cannot grow the metrics: past the cap they count as _other,
// and the log says so once.
func TestMetrics_FunctionCap(t *testing.T) {
	e := start(t, 2)
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 10*time.Second)
	for i := range 6 {
		if _, err := c.SubmitBackground(ctx, fmt.Sprintf("invented%d", i), []byte("x"), clientPriority(t, "normal")); err != nil {
			t.Fatal(err)
		}
	}
	fams := e.scrape(t)
	labels := map[string]bool{}
	for _, m := range fams["gear_jobs_submitted_total"].Metric {
		for _, l := range m.Label {
			labels[l.GetValue()] = true
		}
	}
	if len(labels) != 3 || !labels["_other"] {
		t.Errorf("function labels %v, want 2 names and _other", labels)
	}
	if v, _ := value(fams, "gear_jobs_submitted_total", map[string]string{"function": "_other"}); v != 4 {
		t.Errorf("_other counted %v submits, want 4", v)
	}
	if v, _ := value(fams, "gear_queued_jobs", map[string]string{"function": "_other", "priority": "normal"}); v != 4 {
		t.Errorf("_other queued %v, want 4", v)
	}
	if strings.Count(e.logs.String(), "counted as function") != 1 {
		t.Errorf("want one log line about the cap:\n%s", e.logs.String())
	}
}

// The JSON API: views, a filtered page of jobs, one job, and cancelling a job whose client (the
// gearman tool) is waiting: the client gets WORK_FAIL, the job is gone.
func TestAPI_ViewsAndCancel(t *testing.T) {
	e := start(t, 100)
	client := gearmanCLI(t, e, "-f", "stuck", "--", "payload")
	var stderr bytes.Buffer
	client.Stderr = &stderr
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Process.Kill() })
	var handle string
	testenv.WaitFor(t, "the client's job", 10*time.Second, func() bool {
		code, body := get(t, e.web+"/api/v1/jobs?function=stuck&state=queued")
		var page struct {
			Total int                `json:"total"`
			Jobs  []protocol.JobInfo `json:"jobs"`
		}
		if code != 200 || json.Unmarshal(body, &page) != nil || page.Total != 1 {
			return false
		}
		handle = page.Jobs[0].Handle
		return page.Jobs[0].Size == len("payload") && page.Jobs[0].Clients == 1
	})
	if code, body := get(t, e.web+"/api/v1/jobs/"+handle); code != 200 || !strings.Contains(string(body), `"function": "stuck"`) {
		t.Fatalf("job %s: %d %s", handle, code, body)
	}
	for _, path := range []string{"/api/v1/server", "/api/v1/functions", "/api/v1/workers", "/api/v1/clients", "/api/v1/store"} {
		if code, body := get(t, e.web+path); code != 200 || !json.Valid(body) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	for path, want := range map[string]int{
		"/api/v1/jobs?limit=0": 400, "/api/v1/jobs?state=odd": 400, "/api/v1/jobs/H:none:1": 404, "/api/v1/nothing": 404,
	} {
		if code, body := get(t, e.web+path); code != want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s, want %d with a JSON error", path, code, body, want)
		}
	}
	resp, err := http.Post(e.web+"/api/v1/jobs/"+handle+"/cancel", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(strings.ToLower(stderr.String()), "fail") {
			t.Errorf("the client after cancel: %v, %q; want a failure", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client still waits after its job was cancelled")
	}
	if code, _ := get(t, e.web+"/api/v1/jobs/"+handle); code != 404 {
		t.Errorf("the cancelled job is still there: %d", code)
	}
	if !strings.Contains(e.logs.String(), "action=cancel") {
		t.Errorf("no log line for the action:\n%s", e.logs.String())
	}
}

func clientPriority(t *testing.T, p string) client.Submission {
	t.Helper()
	prio, err := client.ParsePriority(p)
	if err != nil {
		t.Fatal(err)
	}
	return client.Submission{Priority: prio}
}

// do sends a request with the given headers and returns the status.
func do(t *testing.T, method, url string, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// queuedJob submits a background job and returns its handle.
func queuedJob(t *testing.T, e *env, fn string) string {
	t.Helper()
	h, err := testenv.NewClient(t, e.addr).SubmitBackground(testenv.CtxTimeout(t, 5*time.Second), fn, []byte("x"), client.Submission{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// With a bearer token every path needs it (/livez only if left open); the secret is never logged.
func TestAuth_Token(t *testing.T) {
	const secret = "s3cret-token-value"
	e := startWith(t, 100, func(o *httpapi.Options) {
		a, err := httpapi.ParseAuth("token", []byte(secret+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		o.Auth, o.OpenLivez = a, true
	})
	h := queuedJob(t, e, "guarded")
	good := map[string]string{"Authorization": "Bearer " + secret}
	for _, path := range []string{"/metrics", "/readyz", "/api/v1/server", "/api/v1/jobs", "/api/v1/jobs/" + h} {
		if code := do(t, "GET", e.web+path, nil); code != 401 {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
		if code := do(t, "GET", e.web+path, map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
		if code := do(t, "GET", e.web+path, good); code != 200 {
			t.Errorf("GET %s with the token: %d", path, code)
		}
	}
	if code := do(t, "POST", e.web+"/api/v1/jobs/"+h+"/cancel", nil); code != 401 {
		t.Errorf("cancel without a token: %d", code)
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Fatal("a refused request cancelled the job")
	}
	if code := do(t, "GET", e.web+"/livez", nil); code != 200 {
		t.Errorf("/livez left open for probes: %d", code)
	}
	if code := do(t, "POST", e.web+"/api/v1/jobs/"+h+"/cancel", good); code != 200 {
		t.Errorf("cancel with the token: %d", code)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the secret is in the log")
	}
	if !strings.Contains(e.logs.String(), "by=\"http token") {
		t.Errorf("the action's log line does not name who:\n%s", e.logs.String())
	}
}

// Basic auth; a cross-site POST from a browser holding the credentials is refused and changes
// nothing.
func TestAuth_BasicAndCrossSite(t *testing.T) {
	e := startWith(t, 100, func(o *httpapi.Options) {
		a, err := httpapi.ParseAuth("user:ops", []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		o.Auth = a
	})
	h := queuedJob(t, e, "guarded")
	url := strings.Replace(e.web, "http://", "http://ops:pw@", 1)
	if code := do(t, "GET", e.web+"/livez", nil); code != 401 {
		t.Errorf("/livez, not left open: %d, want 401", code)
	}
	if code := do(t, "GET", strings.Replace(e.web, "http://", "http://ops:nope@", 1)+"/api/v1/server", nil); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	cross := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	if code := do(t, "POST", url+"/api/v1/jobs/"+h+"/cancel", cross); code != 403 {
		t.Errorf("cross-site cancel: %d, want 403", code)
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Fatal("a cross-site request cancelled the job")
	}
	if code := do(t, "GET", url+"/api/v1/jobs/"+h, cross); code != 200 {
		t.Errorf("a cross-site read: %d (reads are safe)", code)
	}
	if code := do(t, "POST", url+"/api/v1/jobs/"+h+"/cancel", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Errorf("same-origin cancel: %d", code)
	}
}

// Read-only mode refuses every action and changes nothing.
func TestReadOnly(t *testing.T) {
	e := startWith(t, 100, func(o *httpapi.Options) { o.ReadOnly = true })
	h := queuedJob(t, e, "kept")
	if code := do(t, "POST", e.web+"/api/v1/jobs/"+h+"/cancel", nil); code != 403 {
		t.Errorf("cancel in read-only mode: %d, want 403", code)
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Fatal("read-only mode cancelled the job")
	}
	if code := do(t, "GET", e.web+"/api/v1/jobs/"+h, nil); code != 200 {
		t.Errorf("a read in read-only mode: %d", code)
	}
}

func TestParseAuth(t *testing.T) {
	for _, tc := range []struct {
		kind, secret string
		ok           bool
	}{
		{"token", "t", true}, {"user:ops", "p", true}, {"user:", "p", false}, {"basic", "p", false}, {"token", "\n", false},
	} {
		if _, err := httpapi.ParseAuth(tc.kind, []byte(tc.secret)); (err == nil) != tc.ok {
			t.Errorf("ParseAuth(%q, %q): %v", tc.kind, tc.secret, err)
		}
	}
}

func postJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The function actions: cancel the queued jobs of one priority, set maxqueue (a submit past it is
// refused), drop (refused while jobs remain, then done).
func TestAPI_FunctionActions(t *testing.T) {
	e := start(t, 100)
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 10*time.Second)
	for _, p := range []string{"low", "low", "high"} {
		if _, err := c.SubmitBackground(ctx, "batch", []byte(p), clientPriority(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/cancel-queued?priority=low", ""); code != 200 || !strings.Contains(body, `"cancelled": 2`) {
		t.Fatalf("cancel-queued low: %d %s", code, body)
	}
	if fs := e.srv.Core().Functions(); len(fs) != 1 || fs[0].Queued != (protocol.PriorityInts{High: 1}) {
		t.Fatalf("after cancelling the low jobs: %+v", fs)
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/cancel-queued?priority=urgent", ""); code != 400 {
		t.Errorf("a bad priority: %d %s", code, body)
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/drop", ""); code != 409 {
		t.Errorf("drop with a job queued: %d %s, want 409", code, body)
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/maxqueue", `{"high": 1, "normal": 1, "low": 1}`); code != 200 {
		t.Fatalf("maxqueue: %d %s", code, body)
	}
	if _, err := c.SubmitBackground(ctx, "batch", []byte("over"), clientPriority(t, "high")); err == nil || !strings.Contains(err.Error(), "QUEUE_ERROR") {
		t.Errorf("a submit past maxqueue: %v", err)
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/maxqueue", `{"high": "x"}`); code != 400 {
		t.Errorf("a bad maxqueue body: %d %s", code, body)
	}
	if code, _ := postJSON(t, e.web+"/api/v1/functions/batch/cancel-queued", ""); code != 200 {
		t.Fatalf("cancel-queued all: %d", code)
	}
	postJSON(t, e.web+"/api/v1/functions/batch/maxqueue", `{}`)
	if code, body := postJSON(t, e.web+"/api/v1/functions/batch/drop", ""); code != 200 {
		t.Errorf("drop: %d %s", code, body)
	}
	if code, _ := postJSON(t, e.web+"/api/v1/functions/batch/drop", ""); code != 404 {
		t.Errorf("drop again: %d, want 404", code)
	}
}

// The lists are paged on the server: functions searched and sorted, workers searched, jobs
// filtered; the history fills while jobs run; the session says whether actions exist.
func TestAPI_ListsHistoryAndSession(t *testing.T) {
	e := startWith(t, 100, func(o *httpapi.Options) { o.HistoryInterval = 10 * time.Millisecond })
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 20*time.Second)
	// fn-00 .. fn-11, fn-k with k+1 queued jobs
	for k := range 12 {
		for range k + 1 {
			if _, err := c.SubmitBackground(ctx, fmt.Sprintf("fn-%02d", k), []byte("x"), clientPriority(t, "normal")); err != nil {
				t.Fatal(err)
			}
		}
	}
	type fpage struct {
		Total     int                     `json:"total"`
		Offset    int                     `json:"offset"`
		Functions []protocol.FunctionInfo `json:"functions"`
	}
	names := func(query string) (int, []string) {
		t.Helper()
		code, body := get(t, e.web+"/api/v1/functions?"+query)
		var p fpage
		if code != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("functions?%s: %d %s", query, code, body)
		}
		var out []string
		for _, f := range p.Functions {
			out = append(out, f.Name)
		}
		return p.Total, out
	}
	for query, want := range map[string][]string{
		"limit=3":                           {"fn-00", "fn-01", "fn-02"},
		"limit=2&offset=10":                 {"fn-10", "fn-11"},
		"offset=12":                         nil,
		"sort=queued&limit=3":               {"fn-11", "fn-10", "fn-09"},
		"sort=queued&order=asc&limit=2":     {"fn-00", "fn-01"},
		"sort=name&order=desc&limit=2":      {"fn-11", "fn-10"},
		"search=fn-1&sort=queued&order=asc": {"fn-10", "fn-11"},
	} {
		total, got := names(query)
		wantTotal := 12
		if strings.Contains(query, "search") {
			wantTotal = 2
		}
		if total != wantTotal || !slices.Equal(got, want) {
			t.Errorf("functions?%s: total %d %q, want %d %q", query, total, got, wantTotal, want)
		}
	}
	for _, query := range []string{"sort=size", "order=up", "limit=1001", "offset=-1"} {
		if code, body := get(t, e.web+"/api/v1/functions?"+query); code != 400 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("functions?%s: %d %s, want a 400", query, code, body)
		}
	}
	// jobs of one function, paged
	code, body := get(t, e.web+"/api/v1/jobs?function=fn-11&limit=5&offset=10")
	var jp struct {
		Total int                `json:"total"`
		Jobs  []protocol.JobInfo `json:"jobs"`
	}
	if code != 200 || json.Unmarshal(body, &jp) != nil || jp.Total != 12 || len(jp.Jobs) != 2 || jp.Jobs[0].Preview != "x" {
		t.Fatalf("jobs of fn-11 from 10: %d %s", code, body)
	}
	// a worker serving fn-03 runs its 4 jobs: the workers list finds it by function, the
	// history sees them completed
	testenv.StartWorker(t, []string{e.addr}, 1, map[string]worker.Func{
		"fn-03": func(context.Context, *worker.Job) ([]byte, error) { return nil, nil }})
	testenv.WaitFor(t, "the worker's jobs", 10*time.Second, func() bool {
		_, body := get(t, e.web+"/api/v1/history")
		var h struct {
			Interval float64 `json:"interval_seconds"`
			Samples  []struct {
				Completed uint64 `json:"completed"`
				Submitted uint64 `json:"submitted"`
				Queued    int    `json:"queued"`
			} `json:"samples"`
		}
		if json.Unmarshal(body, &h) != nil || len(h.Samples) < 2 {
			return false
		}
		last := h.Samples[len(h.Samples)-1]
		return last.Completed == 4 && last.Submitted == 78 && last.Queued == 78-4
	})
	for query, want := range map[string]int{"search=fn-03": 1, "search=fn-04": 0, "": 1, "search=127.0.0.1": 1} {
		code, body := get(t, e.web+"/api/v1/workers?"+query)
		var p struct {
			Total   int                   `json:"total"`
			Workers []protocol.WorkerInfo `json:"workers"`
		}
		if code != 200 || json.Unmarshal(body, &p) != nil || p.Total != want || len(p.Workers) != want {
			t.Errorf("workers?%s: %d %s, want %d", query, code, body, want)
		}
	}
	if _, body := get(t, e.web+"/api/v1/session"); !strings.Contains(string(body), `"read_only": false`) {
		t.Errorf("session: %s", body)
	}
	ro := startWith(t, 100, func(o *httpapi.Options) { o.ReadOnly = true })
	if _, body := get(t, ro.web+"/api/v1/session"); !strings.Contains(string(body), `"read_only": true`) {
		t.Errorf("read-only session: %s", body)
	}
}

// With a bearer token, a browser signs in once at /login and holds a session cookie derived from
// the token (never the token itself); the cookie is refused cross-site, and sign-out ends it.
func TestAuth_TokenSignIn(t *testing.T) {
	const secret = "browser-token-value"
	e := startWith(t, 100, func(o *httpapi.Options) {
		a, err := httpapi.ParseAuth("token", []byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		o.Auth = a
	})
	h := queuedJob(t, e, "guarded")
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path string, body url.Values, cookie *http.Cookie, headers map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, e.web+path, strings.NewReader(body.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := send("GET", "/", nil, nil, nil); resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" {
		t.Fatalf("GET / signed out: %d %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := send("GET", "/login", nil, nil, nil); resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /login: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := send("POST", "/login", url.Values{"token": {"guess"}}, nil, nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("sign-in with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := send("POST", "/login", url.Values{"token": {secret}}, nil, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	session := resp.Cookies()[0]
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || strings.Contains(session.Value, secret) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not the token", session)
	}
	if resp := send("GET", "/api/v1/session", nil, session, nil); resp.StatusCode != 200 {
		t.Fatalf("the API with the session: %d", resp.StatusCode)
	}
	if resp := send("POST", "/api/v1/jobs/"+h+"/cancel", nil, session, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 403 {
		t.Fatalf("a cross-site cancel with the session: %d, want 403", resp.StatusCode)
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Fatal("the cross-site request cancelled the job")
	}
	if resp := send("POST", "/api/v1/jobs/"+h+"/cancel", nil, session, map[string]string{"Sec-Fetch-Site": "same-origin"}); resp.StatusCode != 200 {
		t.Fatalf("cancel from the dashboard: %d", resp.StatusCode)
	}
	out := send("POST", "/logout", nil, session, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if len(out.Cookies()) != 1 || out.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("sign-out does not clear the cookie: %v", out.Cookies())
	}
	forged := &http.Cookie{Name: session.Name, Value: strings.Repeat("0", len(session.Value))}
	if resp := send("GET", "/api/v1/session", nil, forged, nil); resp.StatusCode != 401 {
		t.Fatalf("a forged session: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the secret is in the log")
	}
}

// Refused connections are counted by the limit that refused them.
func TestMetrics_ConnectionsRefused(t *testing.T) {
	e := startWith(t, 100, nil, func(o *server.Options) { o.MaxConnectionsPerIP = 1 })
	first, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testenv.WaitFor(t, "the first connection", 5*time.Second, func() bool { return e.srv.Core().Info().Connections == 1 })
	second, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if reply, _ := io.ReadAll(second); !strings.Contains(string(reply), protocol.CodeConnectionLimit) {
		t.Fatalf("the second connection got %q, want ERROR %s", reply, protocol.CodeConnectionLimit)
	}
	fams := e.scrape(t)
	if v, _ := value(fams, "gear_connections_refused_total", map[string]string{"limit": "per_address"}); v != 1 {
		t.Errorf("refused per address: %v, want 1", v)
	}
	if v, ok := value(fams, "gear_connections_refused_total", map[string]string{"limit": "total"}); !ok || v != 0 {
		t.Errorf("refused for the total: %v %v, want 0", v, ok)
	}
}

// The access rules over HTTP: an identity with read access sees the views and is refused the
// actions (403, logged, counted); the session tells the dashboard to hide them.
func TestAccess_HTTP(t *testing.T) {
	rules, err := access.Parse([]byte("[[rule]]\nwho = [\"net:127.0.0.0/8\"]\nsubmit = [\"*\"]\nadmin = \"read\"\n[[rule]]\nwho = [\"user:ops\"]\nadmin = \"write\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, 100, nil, func(o *server.Options) { o.Access = rules })
	h := queuedJob(t, e, "guarded")
	for _, path := range []string{"/api/v1/server", "/api/v1/jobs", "/metrics"} {
		if code, _ := get(t, e.web+path); code != 200 {
			t.Errorf("GET %s with read access: %d", path, code)
		}
	}
	if _, body := get(t, e.web+"/api/v1/session"); !strings.Contains(string(body), `"read_only": true`) {
		t.Errorf("session with read access: %s", body)
	}
	if code, body := postJSON(t, e.web+"/api/v1/jobs/"+h+"/cancel", ""); code != 403 || !strings.Contains(body, "access") {
		t.Errorf("cancel with read access: %d %s", code, body)
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Fatal("a refused cancel cancelled the job")
	}
	if v, _ := value(e.scrape(t), "gear_access_denied_total", map[string]string{"action": "http_write"}); v != 1 {
		t.Errorf("denied http_write: %v, want 1", v)
	}
	// rules that grant nothing to this network
	e.srv.SetAccess(mustRules(t, "[[rule]]\nwho = [\"user:ops\"]\nadmin = \"write\"\n"))
	if code, _ := get(t, e.web+"/api/v1/server"); code != 403 {
		t.Errorf("GET with no access: %d, want 403", code)
	}
	if !strings.Contains(e.logs.String(), "access denied") {
		t.Errorf("no log line for the refusals:\n%s", e.logs.String())
	}
}

// Under a rules file the identity a write needs gets it: ops, signed in with basic auth, cancels a
// job that the same network alone (read access) may only look at.
func TestAccess_HTTPWriteGranted(t *testing.T) {
	rules := mustRules(t, "[[rule]]\nwho = [\"net:127.0.0.0/8\"]\nsubmit = [\"*\"]\nadmin = \"read\"\n[[rule]]\nwho = [\"user:ops\"]\nadmin = \"write\"\n")
	e := startWith(t, 100, func(o *httpapi.Options) {
		a, err := httpapi.ParseAuth("user:ops", []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		o.Auth = a
	}, func(o *server.Options) { o.Access = rules })
	h := queuedJob(t, e, "guarded")
	ops := strings.Replace(e.web, "http://", "http://ops:pw@", 1)
	if _, body := get(t, ops+"/api/v1/session"); !strings.Contains(string(body), `"read_only": false`) {
		t.Errorf("session of ops (write): %s", body)
	}
	if code, body := postJSON(t, ops+"/api/v1/jobs/"+h+"/cancel", ""); code != 200 {
		t.Fatalf("cancel by ops (write): %d %s", code, body)
	}
	if _, ok := e.srv.Core().Job(h); ok {
		t.Error("the job is still there after ops cancelled it")
	}
	if !strings.Contains(e.logs.String(), "action=cancel") {
		t.Errorf("no log line for the cancel:\n%s", e.logs.String())
	}
}

func mustRules(t *testing.T, text string) *access.Rules {
	t.Helper()
	r, err := access.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Pause, resume and run limits through the API; visible in the functions view and the metrics.
func TestAPI_PauseAndLimits(t *testing.T) {
	e := start(t, 100)
	queuedJob(t, e, "gated")
	if code, body := postJSON(t, e.web+"/api/v1/functions/gated/pause", ""); code != 200 || !strings.Contains(body, `"paused": true`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	if fs := e.srv.Core().Functions(); len(fs) != 1 || !fs[0].Paused {
		t.Fatalf("functions after pause: %+v", fs)
	}
	if v, _ := value(e.scrape(t), "gear_function_paused", map[string]string{"function": "gated"}); v != 1 {
		t.Errorf("gear_function_paused %v, want 1", v)
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/gated/limits", `{"max_running": 3, "rate_per_sec": 2.5}`); code != 200 || !strings.Contains(body, `"max_running": 3`) {
		t.Fatalf("limits: %d %s", code, body)
	}
	for body, want := range map[string]int{`{"max_running": -1}`: 400, `{"rate": 1}`: 400, `{"rate_per_sec": "x"}`: 400} {
		if code, got := postJSON(t, e.web+"/api/v1/functions/gated/limits", body); code != want {
			t.Errorf("limits %s: %d %s, want %d", body, code, got, want)
		}
	}
	if code, body := postJSON(t, e.web+"/api/v1/functions/gated/resume", ""); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	_, body := get(t, e.web+"/api/v1/functions?search=gated")
	if !strings.Contains(string(body), `"paused": false`) || !strings.Contains(string(body), `"rate_per_sec": 2.5`) {
		t.Fatalf("functions view: %s", body)
	}
	ro := startWith(t, 100, func(o *httpapi.Options) { o.ReadOnly = true })
	if code, _ := postJSON(t, ro.web+"/api/v1/functions/gated/pause", ""); code != 403 {
		t.Errorf("pause in read-only mode: %d", code)
	}
}

// The retry policy and the dead set over the API: a job failing its only attempt under a policy is
// listed (a preview, never the payload), retried, and deleted.
func TestAPI_DeadSet(t *testing.T) {
	e := start(t, 100)
	if code, body := postJSON(t, e.web+"/api/v1/functions/doomed/retry-policy", `{"attempts": 1, "base_seconds": 1}`); code != 200 {
		t.Fatalf("retry policy: %d %s", code, body)
	}
	if code, _ := postJSON(t, e.web+"/api/v1/functions/doomed/retry-policy", `{"attempts": -1}`); code != 400 {
		t.Errorf("a bad policy: %d", code)
	}
	testenv.StartWorker(t, []string{e.addr}, 1, map[string]worker.Func{
		"doomed": func(context.Context, *worker.Job) ([]byte, error) { return nil, worker.ErrFail }})
	queuedJob(t, e, "doomed")
	var page struct {
		Total int `json:"total"`
		Dead  []struct {
			Handle   string `json:"handle"`
			Preview  string `json:"preview"`
			Size     int    `json:"size"`
			Attempts []struct {
				Error string `json:"error"`
			} `json:"attempts"`
		} `json:"dead"`
	}
	testenv.WaitFor(t, "the dead job", 10*time.Second, func() bool {
		_, body := get(t, e.web+"/api/v1/dead?function=doomed")
		return json.Unmarshal(body, &page) == nil && page.Total == 1
	})
	d := page.Dead[0]
	if d.Preview != "x" || d.Size != 1 || len(d.Attempts) != 1 || d.Attempts[0].Error != "WORK_FAIL" {
		t.Fatalf("dead job %+v", d)
	}
	if code, _ := get(t, e.web+"/api/v1/dead/"+d.Handle); code != 200 {
		t.Errorf("one dead job: %d", code)
	}
	if code, body := postJSON(t, e.web+"/api/v1/dead/"+d.Handle+"/retry", ""); code != 200 || !strings.Contains(body, `"retried": 1`) {
		t.Fatalf("retry: %d %s", code, body)
	}
	testenv.WaitFor(t, "the retried job to die again", 10*time.Second, func() bool {
		_, body := get(t, e.web+"/api/v1/dead?function=doomed")
		return json.Unmarshal(body, &page) == nil && page.Total == 1 && page.Dead[0].Handle != d.Handle
	})
	if code, body := postJSON(t, e.web+"/api/v1/functions/doomed/dead/delete", ""); code != 200 || !strings.Contains(body, `"deleted": 1`) {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := postJSON(t, e.web+"/api/v1/dead/"+d.Handle+"/delete", ""); code != 404 {
		t.Errorf("deleting a gone dead job: %d, want 404", code)
	}
}

// A fenced server refuses every background submit: /readyz says so, with the reason, so that a
// load balancer sends clients elsewhere, and is ready again once the fence is lifted.
func TestReadyz_FencedIsNotReady(t *testing.T) {
	e := start(t, 0)
	e.srv.Core().SetFenced(true, "lease lapsed")
	code, body := get(t, e.web+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "fenced from the fleet: lease lapsed") {
		t.Fatalf("/readyz while fenced: %d %q, want 503 naming the fence", code, body)
	}
	e.srv.Core().SetFenced(false, "")
	if code, body := get(t, e.web+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz once the fence is lifted: %d %q", code, body)
	}
}
