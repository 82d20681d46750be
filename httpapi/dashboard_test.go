package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/httpapi"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/worker"
)

// The page and its assets carry the headers that keep them from being framed, sniffed, cached
// stale or made to run anything but their own script; unknown assets are 404; the page has no
// inline script, style or handler for the policy to refuse.
func TestDashboard_Headers(t *testing.T) {
	e := start(t, 100)
	for path, ctype := range map[string]string{"/": "text/html", "/assets/app.js": "text/javascript", "/assets/app.css": "text/css"} {
		resp, err := http.Get(e.web + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, resp.StatusCode, h.Get("Content-Type"), ctype)
		}
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"} {
			if h.Get(k) != v {
				t.Errorf("GET %s: %s %q, want %q", path, k, h.Get(k), v)
			}
		}
		// Revalidation answers 304 while the file is unchanged.
		req, _ := http.NewRequest("GET", e.web+path, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag %q: %v %v, want 304", path, h.Get("ETag"), resp, err)
		} else {
			resp.Body.Close()
		}
	}
	for _, path := range []string{"/assets/", "/assets/nothing.js", "/assets/index.html", "/index.html", "/nothing"} {
		if code, _ := get(t, e.web+path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	_, page := get(t, e.web+"/")
	for _, bad := range []string{`<script>`, `style=`, ` on[a-z]+=`, `<style`, `https?://`} {
		if regexp.MustCompile(bad).Match(page) {
			t.Errorf("the page has %s: the policy refuses inline code and the page fetches nothing from elsewhere", bad)
		}
	}
}

// A job cancelled in the browser: the functions page shows the queue, its link opens the jobs of
// the function, the cancel button asks in a dialog, and once confirmed the server has lost that
// job and kept the others. A function named like markup shows as text.
func TestDashboard_CancelJob(t *testing.T) {
	e := start(t, 100)
	const fn = "dash-unserved"
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 10*time.Second)
	var handles []string
	for i := range 5 {
		h, err := c.SubmitBackground(ctx, fn, []byte(fmt.Sprintf("payload %d", i)), clientPriority(t, "normal"))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	const markup = `<img/src=x/id=injected>`
	if _, err := c.SubmitBackground(ctx, markup, []byte("x"), clientPriority(t, "low")); err != nil {
		t.Fatal(err)
	}

	p := openDashboard(t, e, "#/functions")
	row := fmt.Sprintf(`#functions-table tr[data-function=%q]`, fn)
	p.waitJS("the function's row", fmt.Sprintf(`document.querySelector(%q)`, row+` td[data-col="queued"]`))
	if got := p.text(row + ` td[data-col="queued"]`); got != "5" {
		t.Errorf("queued shown for %s: %q, want 5", fn, got)
	}
	p.waitJS("the markup-named function as text", fmt.Sprintf(`[...document.querySelectorAll('#functions-table a')].some(a => a.textContent === %q)`, markup))
	if n := p.count(`#injected, img`); n != 0 {
		t.Errorf("a function name became %d element(s) in the page", n)
	}

	p.clickSettled("open the function's jobs", row+` a[data-link="jobs"]`)
	p.waitJS("the 5 jobs", `document.querySelectorAll('#jobs-table tbody tr[data-handle]').length === 5`)
	p.cancelJob(e, handles[2], handles)
	p.waitJS("the list without the job", `document.querySelectorAll('#jobs-table tbody tr[data-handle]').length === 4`)
	p.noErrors()
}

// The functions page pages, sorts and searches on the server, and its actions (maxqueue, cancel
// the queued jobs of one priority, drop) change the server; a refused action shows its error.
func TestDashboard_FunctionsPagingAndActions(t *testing.T) {
	e := start(t, 200)
	c := testenv.NewClient(t, e.addr)
	ctx := testenv.CtxTimeout(t, 20*time.Second)
	for i := range 120 {
		if _, err := c.SubmitBackground(ctx, fmt.Sprintf("dash-fn-%03d", i), []byte("x"), clientPriority(t, "normal")); err != nil {
			t.Fatal(err)
		}
	}
	const deep = "dash-fn-007" // 1 normal, 2 high, 1 low: the deepest queue
	for _, p := range []string{"high", "high", "low"} {
		if _, err := c.SubmitBackground(ctx, deep, []byte(p), clientPriority(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	p := openDashboard(t, e, "#/functions")
	summaryIs := func(want string) string {
		return fmt.Sprintf(`document.querySelector('#list-summary').textContent === %q`, want)
	}
	firstRowIs := func(fn string) string {
		return fmt.Sprintf(`document.querySelector('#functions-table tbody tr').dataset.function === %q`, fn)
	}
	p.waitJS("the first page", summaryIs("1–50 of 120")+" && "+firstRowIs("dash-fn-000"))
	p.clickSettled("next page", `[data-pager="next"]`)
	p.waitJS("the second page", summaryIs("51–100 of 120")+" && "+firstRowIs("dash-fn-050"))
	p.clickSettled("sort by queue", `[data-sort="queued"]`)
	p.waitJS("the deepest queue first, back on page 1", summaryIs("1–50 of 120")+" && "+firstRowIs(deep))
	p.do("search", chromedp.SendKeys(chromedp.CSS(`#filter-search`), "fn-11"))
	p.waitJS("the matches", summaryIs("1–10 of 10"))

	p.goTo("#/functions?search=" + deep)
	row := fmt.Sprintf(`tr[data-function=%q]`, deep)
	p.waitJS("the one row", summaryIs("1–1 of 1"))
	fn := func() protocol.FunctionInfo {
		for _, f := range e.srv.Core().Functions() {
			if f.Name == deep {
				return f
			}
		}
		t.Fatalf("no %s in the server", deep)
		return protocol.FunctionInfo{}
	}
	p.clickSettled("maxqueue", row+` [data-action="maxqueue"]`)
	p.waitJS("the limits form", `document.querySelector('#confirm').open && document.querySelector('#maxqueue-high')`)
	p.do("limits", chromedp.SetValue(chromedp.CSS(`#maxqueue-high`), "5"), chromedp.SetValue(chromedp.CSS(`#maxqueue-low`), "9"),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the result", `document.querySelector('#flash[data-kind="ok"]')`)
	if got := fn().MaxQueue; got != (protocol.PriorityInts{High: 5, Low: 9}) {
		t.Errorf("max queue after the form: %+v", got)
	}
	p.clickSettled("cancel queued", row+` [data-action="cancel-queued"]`)
	p.waitJS("the priority choice", `document.querySelector('#confirm').open && document.querySelector('#confirm-priority')`)
	p.do("high only", chromedp.SetValue(chromedp.CSS(`#confirm-priority`), "high"), chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the result", `document.querySelector('#flash[data-kind="ok"]') && /Cancelled 2 /.test(document.querySelector('#flash').textContent)`)
	if got := fn().Queued; got != (protocol.PriorityInts{Normal: 1, Low: 1}) {
		t.Errorf("queued after cancelling the high jobs: %+v", got)
	}
	p.clickSettled("drop", row+` [data-action="drop"]`)
	p.waitJS("the confirmation", `document.querySelector('#confirm').open`)
	p.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the server's refusal", `document.querySelector('#flash[data-kind="error"]') && /^409: /.test(document.querySelector('#flash').textContent)`)
	if fn().Queued != (protocol.PriorityInts{Normal: 1, Low: 1}) {
		t.Error("a refused drop changed the queue")
	}
	p.noErrors()
}

// With --http-auth token the browser signs in at /login (main's page), and the dashboard then
// works on the session cookie, actions included; signing out ends it.
func TestDashboard_TokenSignIn(t *testing.T) {
	const secret = "dash-token"
	e := startWith(t, 100, func(o *httpapi.Options) {
		a, err := httpapi.ParseAuth("token", []byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		o.Auth = a
	})
	const fn = "dash-guarded"
	handles := []string{queuedJob(t, e, fn), queuedJob(t, e, fn)}
	p := openDashboard(t, e, "")
	p.waitJS("the sign-in page", `location.pathname === '/login' && document.querySelector('#token')`)
	p.do("sign in", chromedp.SendKeys(chromedp.CSS(`#token`), secret), chromedp.Click(chromedp.CSS(`#sign-in`)))
	p.waitJS("the dashboard, signed in", `location.pathname === '/' && document.querySelector('#sign-out') && document.querySelector('#summary dd')`)
	p.goTo("#/jobs?function=" + fn)
	p.waitJS("the jobs", `document.querySelectorAll('#jobs-table tbody tr[data-handle]').length === 2`)
	p.cancelJob(e, handles[0], handles)
	p.do("sign out", chromedp.Click(chromedp.CSS(`#sign-out`)))
	p.waitJS("the sign-in page again", `location.pathname === '/login' && document.querySelector('#token')`)
	if code := do(t, "GET", e.web+"/api/v1/server", nil); code != 401 {
		t.Errorf("the API without credentials: %d, want 401", code)
	}
	p.noErrors()
}

// In read-only mode no page has an action button (nor the dialog): the session says so.
func TestDashboard_ReadOnlyHasNoActions(t *testing.T) {
	e := startWith(t, 100, func(o *httpapi.Options) { o.ReadOnly = true })
	const fn = "dash-kept"
	h := queuedJob(t, e, fn)
	testenv.StartWorker(t, []string{e.addr}, 1, map[string]worker.Func{"dash-served": testenv.Reverse})
	testenv.WaitWorkers(t, e.addr, "dash-served", 1)

	p := openDashboard(t, e, "#/")
	p.waitJS("the read-only badge", `document.querySelector('#read-only')`)
	for _, page := range []struct{ hash, loaded string }{
		{"#/", `#top-functions tr[data-function]`},
		{"#/functions", `#functions-table tr[data-function]`},
		{"#/workers", `#workers-table tr[data-fd]`},
		{"#/jobs?function=" + fn, `#jobs-table tr[data-handle]`},
		{"#/jobs/" + h, `#job dd[data-field="state"]`},
	} {
		p.goTo(page.hash)
		p.waitJS(page.hash+" loaded", fmt.Sprintf(`document.querySelector(%q)`, page.loaded))
		if n := p.count(`[data-action], button.action, #confirm, #confirm-ok`); n != 0 {
			t.Errorf("%s: %d action elements in read-only mode", page.hash, n)
		}
	}
	if _, ok := e.srv.Core().Job(h); !ok {
		t.Error("the job went")
	}
	p.noErrors()
}

// The overview with some life in it, written to $GEAR_SCREENSHOT (docs/dashboard.png, from the
// module's root) for the README: a worker completing jobs at a rate that swells and ebbs, another
// failing one job in ten, and queues of functions no worker serves.
//
//	GEAR_SCREENSHOT=docs/dashboard.png go test -run TestDashboard_Screenshot ./httpapi/
func TestDashboard_Screenshot(t *testing.T) {
	out := screenshotPath()
	if out == "" {
		t.Skip("set GEAR_SCREENSHOT=docs/dashboard.png to write the overview's screenshot")
	}
	e := start(t, 100)
	busy := func(d time.Duration, fail func() bool) worker.Func {
		return func(ctx context.Context, j *worker.Job) ([]byte, error) {
			select { // the job's work
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if fail() {
				return nil, worker.ErrFail
			}
			return j.Data, nil
		}
	}
	var emails atomic.Int64
	testenv.StartWorker(t, []string{e.addr}, 4, map[string]worker.Func{"resize-image": busy(20*time.Millisecond, func() bool { return false })})
	testenv.StartWorker(t, []string{e.addr}, 2, map[string]worker.Func{"send-email": busy(10*time.Millisecond, func() bool { return emails.Add(1)%10 == 0 })})
	c := testenv.NewClient(t, e.addr)
	normal, high := clientPriority(t, "normal"), clientPriority(t, "high")
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
	for fn, n := range map[string]int{"render-report": 40, "export-csv": 12, "webhook-retry": 7} {
		for i := range n {
			if _, err := c.SubmitBackground(ctx, fn, []byte(fmt.Sprint(i)), normal); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Submits at 100 to 300 jobs/s over a 60 s wave: above the resize worker's 200/s the queue grows,
	// below it drains.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		begin := time.Now()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rate := 200 + 100*math.Sin(2*math.Pi*time.Since(begin).Seconds()/60)
			for range int(rate / 50) {
				c.SubmitBackground(ctx, "resize-image", []byte("img"), normal)
			}
			if n%2 == 0 {
				c.SubmitBackground(ctx, "send-email", []byte("mail"), high)
			}
		}
	}()
	testenv.WaitFor(t, "90 s of history", 3*time.Minute, func() bool {
		var h struct {
			Samples []struct {
				Time float64 `json:"time"`
			} `json:"samples"`
		}
		code, body := get(t, e.web+"/api/v1/history")
		return code == 200 && json.Unmarshal(body, &h) == nil && len(h.Samples) > 1 && h.Samples[len(h.Samples)-1].Time-h.Samples[0].Time >= 90
	})
	p := openDashboard(t, e, "#/")
	p.waitJS("the charts and the table", `document.querySelectorAll('#top-functions tr[data-function]').length >= 4 && `+
		`![...document.querySelectorAll('.legend strong')].some(s => s.textContent === '—')`)
	png := run(p, "the screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
	p.noErrors()
}

// cancelJob cancels handle from the jobs page through the confirmation dialog, and checks in the
// server's core that the job is gone and the rest of all are not.
func (p *browserPage) cancelJob(e *env, handle string, all []string) {
	p.t.Helper()
	p.clickSettled("cancel "+handle, fmt.Sprintf(`button[data-action="cancel"][data-handle=%q]`, handle))
	p.waitJS("the confirmation dialog", `document.querySelector('#confirm') && document.querySelector('#confirm').open`)
	if _, ok := e.srv.Core().Job(handle); !ok {
		p.t.Fatal("the job went before the dialog was confirmed")
	}
	p.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the result", `document.querySelector('#flash[data-kind="ok"]')`)
	testenv.WaitFor(p.t, "the server to lose the cancelled job", 10*time.Second, func() bool {
		_, ok := e.srv.Core().Job(handle)
		return !ok
	})
	for _, h := range all {
		if _, ok := e.srv.Core().Job(h); !ok && h != handle {
			p.t.Errorf("job %s went too", h)
		}
	}
}

// browserPage is the dashboard open in a headless Chromium; each step is bounded.
type browserPage struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // exceptions and error messages of the page (failed requests aside)
}

// stepTimeout bounds each step of a browser test.
const stepTimeout = 20 * time.Second

func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("chromium is not installed: the dashboard tests drive a real browser (apt-get install chromium; scripts/install-test-deps.sh installs it)")
	return ""
}

// openDashboard starts a headless Chromium, stopped when the test ends, and opens the dashboard of
// e at hash.
func openDashboard(t *testing.T, e *env, hash string) *browserPage {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs the tests as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser and binds it to ctx, which must not have a deadline: the
	// wait for it is bounded here instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("chromium did not start within a minute")
	}
	p := &browserPage{t: t, ctx: ctx}
	lctx, stop := context.WithCancel(ctx)
	messages := chromedp.Console(lctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			// A failed request is logged by the network (a 404 of a gone job is expected).
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				p.mu.Lock()
				p.errors = append(p.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	p.do("open "+hash, chromedp.Navigate(e.web+"/"+hash))
	return p
}

func (p *browserPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// clickSettled clicks an element of the page once the page has finished loading: a view
// re-renders its table after an action (and on navigation), and a click between the query of a
// node and the click on it would find the node gone.
func (p *browserPage) clickSettled(what, css string) {
	p.t.Helper()
	p.waitJS(what+" (the page settled)", fmt.Sprintf(`document.querySelector('#main').dataset.ready === '1' && document.querySelector(%q)`, css))
	p.do(what, chromedp.Click(chromedp.CSS(css)))
}

// run runs one action of the page, bounded, and returns its value.
func run[T any](p *browserPage, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	return run(p, expr, chromedp.Evaluate[T](expr))
}

// waitJS polls the expression in the page until it is truthy. A navigation (a form posted, a
// redirect) ends the page's JavaScript context under the poll: it starts again in the new page.
func (p *browserPage) waitJS(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond): // the next page's context
		}
	}
}

// goTo changes the hash: the page routes without reloading.
func (p *browserPage) goTo(hash string) {
	p.t.Helper()
	p.do("go to "+hash, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)))
}

func (p *browserPage) count(sel string) int {
	p.t.Helper()
	return eval[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

func (p *browserPage) text(sel string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

// noErrors fails the test if the page threw or logged an error (a refused policy among them).
func (p *browserPage) noErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.errors {
		p.t.Errorf("browser console: %s", m)
	}
}

// screenshotPath is where TestDashboard_Screenshot writes, from the module's root (the test runs
// in httpapi/); empty: the test skips, so CI never rewrites docs/.
func screenshotPath() string {
	p := os.Getenv("GEAR_SCREENSHOT")
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join("..", p)
}

// The dead set page lists a job that failed its last attempt, and retries it through the
// confirmation dialog: it runs again (and, its worker still failing, dies again under a new handle).
func TestDashboard_DeadRetry(t *testing.T) {
	e := start(t, 100)
	const fn = "dash-doomed"
	if _, err := e.srv.Core().SetFunction(fn, func(fs *core.FunctionSettings) { fs.RetryAttempts = 1 }, "test"); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	testenv.StartWorker(t, []string{e.addr}, 1, map[string]worker.Func{fn: func(context.Context, *worker.Job) ([]byte, error) {
		runs.Add(1)
		return nil, worker.ErrFail
	}})
	queuedJob(t, e, fn)
	var first core.DeadJob
	testenv.WaitFor(t, "the dead job", 10*time.Second, func() bool {
		n, dead := e.srv.Core().Dead(core.DeadFilter{}, 0, 1)
		if n == 1 {
			first = dead[0]
		}
		return n == 1
	})
	p := openDashboard(t, e, "#/dead")
	p.waitJS("the dead job's row", fmt.Sprintf(`document.querySelector('#dead-table tr[data-handle=%q]')`, first.Handle))
	p.clickSettled("retry it", fmt.Sprintf(`button[data-action="dead-retry"][data-handle=%q]`, first.Handle))
	p.waitJS("the confirmation dialog", `document.querySelector('#confirm') && document.querySelector('#confirm').open`)
	p.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the result", `document.querySelector('#flash[data-kind="ok"]')`)
	testenv.WaitFor(t, "the retried job to run and die again", 10*time.Second, func() bool {
		n, dead := e.srv.Core().Dead(core.DeadFilter{}, 0, 1)
		return runs.Load() == 2 && n == 1 && dead[0].Handle != first.Handle
	})
	p.noErrors()
}

// The schedules page lists the server's schedules and removes one through the confirmation.
func TestDashboard_Schedules(t *testing.T) {
	e := start(t, 100)
	for name, spec := range map[string]string{"nightly": "0 3 * * *", "hourly": "@hourly"} {
		if _, err := e.srv.Core().AddSchedule(core.Schedule{Name: name, Function: "report", Spec: spec}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	p := openDashboard(t, e, "#/schedules")
	p.waitJS("the two schedules", `document.querySelectorAll('#schedules-table tr[data-schedule]').length === 2`)
	p.clickSettled("remove one", `button[data-action="schedule-remove"][data-schedule="nightly"]`)
	p.waitJS("the confirmation dialog", `document.querySelector('#confirm') && document.querySelector('#confirm').open`)
	p.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	p.waitJS("the result", `document.querySelector('#flash[data-kind="ok"]')`)
	testenv.WaitFor(t, "the schedule removed on the server", 10*time.Second, func() bool {
		scs := e.srv.Core().Schedules()
		return len(scs) == 1 && scs[0].Name == "hourly"
	})
	p.noErrors()
}
