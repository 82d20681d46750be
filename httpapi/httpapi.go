// Package httpapi serves a job server's operations over HTTP (gear server --http ADDR): Prometheus
// metrics at /metrics, health at /livez and /readyz, and a JSON API under /api/v1/ built on the
// core's typed views, with actions (cancel a job).
//
// It listens before the job server replays its store, so that /readyz can say "not yet" while a
// large replay runs instead of a probe killing a recovering server; Attach makes it ready.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the HTTP listener.
type Options struct {
	// Addr is HOST:PORT; a bare ":PORT" binds loopback (expose it on purpose with 0.0.0.0:PORT).
	Addr    string
	Metrics *Metrics // required
	Log     *slog.Logger
	// Auth, when set, is required of every request (but /livez with OpenLivez, for probes).
	Auth      *Auth
	OpenLivez bool
	// ReadOnly refuses every action (403): only views, metrics and health.
	ReadOnly bool
	// HistoryInterval is how often /api/v1/history samples the server (default 2s); it keeps
	// historySamples samples.
	HistoryInterval time.Duration
}

// HTTP is the listener and its handlers.
type HTTP struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	web  *http.Server
	srv  atomic.Pointer[server.Server]
	done chan struct{}

	history     history
	stopSamples chan struct{}
	stopOnce    sync.Once
	samplers    sync.WaitGroup
}

// maxBody bounds a request body: the API's actions take none worth more.
const maxBody = 1 << 20

// Listen binds the address and serves in the background; /readyz answers 503 until Attach.
func Listen(opts Options) (*HTTP, error) {
	if opts.Metrics == nil {
		return nil, errors.New("httpapi: no metrics")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HistoryInterval <= 0 {
		opts.HistoryInterval = defaultHistoryInterval
	}
	addr := opts.Addr
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", opts.Addr, err)
	}
	h := &HTTP{opts: opts, log: opts.Log, ln: ln, done: make(chan struct{}), stopSamples: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.HandleFunc("GET /login", h.login)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.logout)
	metrics := promhttp.HandlerFor(opts.Metrics.Registry(), promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn)})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Before the server is attached there are no rules yet, and nothing but gear_ready and
		// the process's own metrics to see.
		if srv := h.srv.Load(); srv != nil && !h.allowed(w, r, srv, access.LevelRead) {
			return
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /api/v1/server", h.api(func(s *server.Server, _ *http.Request) (any, error) { return s.Core().Info(), nil }))
	mux.HandleFunc("GET /api/v1/functions", h.api(functions))
	mux.HandleFunc("GET /api/v1/workers", h.api(workers))
	mux.HandleFunc("GET /api/v1/clients", h.api(clients))
	mux.HandleFunc("GET /api/v1/limits", h.api(func(s *server.Server, _ *http.Request) (any, error) { return s.Core().Limits(), nil }))
	mux.HandleFunc("GET /api/v1/store", h.api(func(s *server.Server, _ *http.Request) (any, error) { return s.Core().Store(), nil }))
	mux.HandleFunc("GET /api/v1/jobs", h.api(jobs))
	mux.HandleFunc("GET /api/v1/fleet", h.api(func(s *server.Server, r *http.Request) (any, error) {
		f := s.Fleet()
		if f == nil {
			return nil, errNotFound("this server is not in a fleet (--store postgres)")
		}
		return f.Fleet(r.Context())
	}))
	mux.HandleFunc("GET /api/v1/history", h.api(func(*server.Server, *http.Request) (any, error) {
		return historyView{IntervalSeconds: h.opts.HistoryInterval.Seconds(), Samples: h.history.list()}, nil
	}))
	mux.HandleFunc("GET /api/v1/session", func(w http.ResponseWriter, r *http.Request) {
		by, _ := r.Context().Value(whoKey{}).(string)
		readOnly := h.opts.ReadOnly
		if srv := h.srv.Load(); srv != nil && !readOnly {
			// the access rules may allow this identity the views only: the dashboard hides the rest
			id, _ := r.Context().Value(identityKey{}).(access.Identity)
			readOnly = srv.Core().Access() != nil && srv.Core().Access().For(id).Admin() < access.LevelWrite
		}
		writeJSON(w, http.StatusOK, map[string]any{"read_only": readOnly, "who": by})
	})
	mux.HandleFunc("GET /api/v1/jobs/{handle}", h.api(func(s *server.Server, r *http.Request) (any, error) {
		j, ok := s.Core().Job(r.PathValue("handle"))
		if !ok {
			return nil, errNotFound("no unfinished job " + r.PathValue("handle"))
		}
		return j, nil
	}))
	mux.HandleFunc("POST /api/v1/jobs/{handle}/cancel", h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		handle := r.PathValue("handle")
		if err := s.CancelJob(handle, by); err != nil {
			if errors.Is(err, core.ErrNoSuchJob) {
				return nil, errNotFound("no unfinished job " + handle)
			}
			return nil, err
		}
		h.log.Info("http action", "action", "cancel", "handle", handle, "by", by)
		return map[string]any{"cancelled": handle}, nil
	}))
	mux.HandleFunc("POST /api/v1/functions/{function}/cancel-queued", h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		fn, prio := r.PathValue("function"), r.URL.Query().Get("priority")
		n, err := s.CancelQueued(fn, prio, by)
		if err != nil {
			return nil, errBadRequest(err.Error())
		}
		h.log.Info("http action", "action", "cancel-queued", "function", fn, "priority", prio, "jobs", n, "by", by)
		return map[string]any{"function": fn, "cancelled": n}, nil
	}))
	mux.HandleFunc("POST /api/v1/functions/{function}/drop", h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		fn := r.PathValue("function")
		switch err := s.Core().DropFunction(fn); {
		case errors.Is(err, core.ErrNoSuchFunction):
			return nil, errNotFound("no function " + fn)
		case errors.Is(err, core.ErrFunctionBusy):
			return nil, &apiError{http.StatusConflict, fn + ": " + err.Error()}
		case err != nil:
			return nil, err
		}
		h.log.Info("http action", "action", "drop", "function", fn, "by", by)
		return map[string]any{"dropped": fn}, nil
	}))
	mux.HandleFunc("POST /api/v1/functions/{function}/maxqueue", h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		fn := r.PathValue("function")
		var limits protocol.PriorityInts
		if err := json.NewDecoder(r.Body).Decode(&limits); err != nil {
			return nil, errBadRequest(`body must be {"high": N, "normal": N, "low": N} (0: no limit): ` + err.Error())
		}
		if err := s.Core().SetMaxQueue(fn, limits); err != nil {
			return nil, err
		}
		h.log.Info("http action", "action", "maxqueue", "function", fn, "high", limits.High, "normal", limits.Normal, "low", limits.Low, "by", by)
		return map[string]any{"function": fn, "max_queue": limits}, nil
	}))
	for _, verb := range []string{"pause", "resume"} {
		mux.HandleFunc("POST /api/v1/functions/{function}/"+verb, h.settingsAction(verb, func(*http.Request) (func(*core.FunctionSettings), error) {
			return func(fs *core.FunctionSettings) { fs.Paused = verb == "pause" }, nil
		}))
	}
	mux.HandleFunc("POST /api/v1/functions/{function}/limits", h.settingsAction("limits", func(r *http.Request) (func(*core.FunctionSettings), error) {
		var body struct {
			MaxRunning int     `json:"max_running"`
			RatePerSec float64 `json:"rate_per_sec"`
			RateBurst  int     `json:"rate_burst"`
		}
		if err := decodeStrict(r, &body); err != nil {
			return nil, errBadRequest(`body must be {"max_running": N, "rate_per_sec": R, "rate_burst": B} (0: no limit): ` + err.Error())
		}
		return func(fs *core.FunctionSettings) {
			fs.MaxRunning, fs.RatePerSec, fs.RateBurst = body.MaxRunning, body.RatePerSec, body.RateBurst
		}, nil
	}))
	h.registerDead(mux)
	h.registerSchedules(mux) // schedules.go
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API path: "+r.Method+" "+r.URL.Path)
	})
	registerDashboard(mux)
	// State-changing requests from another site's page are refused (Sec-Fetch-Site, Origin): a
	// browser holding basic-auth credentials cannot be made to act for another origin.
	var handler http.Handler = http.NewCrossOriginProtection().Handler(mux)
	handler = h.authenticate(handler)
	h.web = &http.Server{
		Handler:           http.MaxBytesHandler(handler, maxBody),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(h.done)
		h.web.Serve(ln)
	}()
	opts.Log.Info("http listening", "addr", ln.Addr().String())
	return h, nil
}

// Addr is the address the listener is bound to.
func (h *HTTP) Addr() net.Addr { return h.ln.Addr() }

// Attach gives the handlers the job server, once it listens with its store replayed: from then
// on /readyz is ready and the API answers.
func (h *HTTP) Attach(srv *server.Server) {
	h.opts.Metrics.Attach(srv)
	if h.srv.Swap(srv) == nil {
		h.sampleNow(time.Now())
		h.samplers.Add(1)
		go func() {
			defer h.samplers.Done()
			h.sampleLoop(h.stopSamples)
		}()
	}
}

// Close stops the listener and its connections and waits for the serving goroutine.
func (h *HTTP) Close() error {
	err := h.web.Close()
	<-h.done
	h.stopOnce.Do(func() { close(h.stopSamples) })
	h.samplers.Wait()
	return err
}

func (h *HTTP) readyz(w http.ResponseWriter, _ *http.Request) {
	srv := h.srv.Load()
	if srv == nil {
		http.Error(w, "not ready: replaying stored jobs", http.StatusServiceUnavailable)
		return
	}
	if srv.Core().Draining() {
		http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		return
	}
	// A fenced server hands out no job and refuses background submits, while the fleet's other
	// servers serve (and adopt its jobs): its clients belong elsewhere until it rejoins. A store
	// that cannot write does not make the server unready: a database outage is every server's at
	// once, and all of them unready would cut off the foreground jobs they still serve
	// (gear_store_failing_seconds tells).
	if fenced, why := srv.Core().Fenced(); fenced {
		http.Error(w, "not ready: fenced from the fleet: "+why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// whoKey carries who sent a request (for the log of its actions) in its context, identityKey
// its access.Identity (for the access rules).
type (
	whoKey      struct{}
	identityKey struct{}
)

// allowed checks the server's access rules for a request that needs level; a refusal is
// answered (403), logged and counted.
func (h *HTTP) allowed(w http.ResponseWriter, r *http.Request, srv *server.Server, need access.Level) bool {
	rules := srv.Core().Access()
	if rules == nil {
		return true
	}
	id, _ := r.Context().Value(identityKey{}).(access.Identity)
	if rules.For(id).Admin() >= need {
		return true
	}
	h.log.Warn("access denied", "identity", id.String(), "action", "http_"+need.String(), "method", r.Method, "path", r.URL.Path)
	h.opts.Metrics.denied("http_" + need.String())
	writeError(w, http.StatusForbidden, "the access rules do not give "+id.String()+" "+need.String()+" access")
	return false
}

// authenticate requires Options.Auth of every request but an open /livez, and notes the sender.
func (h *HTTP) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		by := "anonymous " + r.RemoteAddr
		id := access.Identity{}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			id.Addr = ap.Addr().Unmap()
		}
		if a := h.opts.Auth; a != nil && !(h.opts.OpenLivez && r.URL.Path == "/livez") && r.URL.Path != "/login" {
			who := a.who(r)
			if who == "" {
				if a.User == "" && r.Method == http.MethodGet && r.URL.Path == "/" {
					http.Redirect(w, r, "/login", http.StatusSeeOther) // a browser, to sign in
					return
				}
				a.challenge(w)
				return
			}
			by = who + " " + r.RemoteAddr
			if a.User == "" {
				id.HTTPToken = true
			} else {
				id.HTTPUser = a.User
			}
		}
		ctx := context.WithValue(context.WithValue(r.Context(), whoKey{}, by), identityKey{}, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// action wraps a state-changing API handler: refused in read-only mode, told who asked.
func (h *HTTP) action(f func(*server.Server, *http.Request, string) (any, error)) http.HandlerFunc {
	api := h.api(func(s *server.Server, r *http.Request) (any, error) {
		by, _ := r.Context().Value(whoKey{}).(string)
		return f(s, r, "http "+by)
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if h.opts.ReadOnly {
			writeError(w, http.StatusForbidden, "read-only: actions are turned off (--http-read-only)")
			return
		}
		api(w, r)
	}
}

// settingsAction is an action changing a function's settings (pause, limits, retry policy):
// change reads the request into a change; invalid settings are a 400; the change is logged.
func (h *HTTP) settingsAction(name string, change func(*http.Request) (func(*core.FunctionSettings), error)) http.HandlerFunc {
	return h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		c, err := change(r)
		if err != nil {
			return nil, err
		}
		fn := r.PathValue("function")
		fs, err := s.Core().SetFunction(fn, c, by)
		if errors.Is(err, core.ErrBadSettings) {
			return nil, errBadRequest(err.Error())
		} else if err != nil {
			return nil, err
		}
		h.log.Info("http action", "action", name, "function", fn, "settings", fs, "by", by)
		return map[string]any{"function": fn, "settings": fs}, nil
	})
}

// decodeStrict reads a JSON body into v, refusing fields v does not have.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// apiError is an error with the HTTP status that says what went wrong.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errNotFound(msg string) error   { return &apiError{http.StatusNotFound, msg} }
func errBadRequest(msg string) error { return &apiError{http.StatusBadRequest, msg} }

// api wraps a handler of the JSON API: 503 before the server is attached, errors as JSON.
func (h *HTTP) api(f func(*server.Server, *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		srv := h.srv.Load()
		if srv == nil {
			writeError(w, http.StatusServiceUnavailable, "the server is starting: replaying stored jobs")
			return
		}
		need := access.LevelRead
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			need = access.LevelWrite
		}
		if !h.allowed(w, r, srv, need) {
			return
		}
		v, err := f(srv, r)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				writeError(w, ae.status, ae.msg)
			} else {
				writeError(w, http.StatusInternalServerError, err.Error())
			}
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "status": status})
}
