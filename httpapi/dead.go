package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/server"
)

// deadView is a dead job as the API shows it: a preview of its payload and its size, never the
// payload itself (as for live jobs).
type deadView struct {
	Handle   string         `json:"handle"`
	Function string         `json:"function"`
	Unique   string         `json:"unique,omitempty"`
	Priority string         `json:"priority"`
	Preview  string         `json:"preview"`
	Size     int            `json:"size"`
	Attempts []core.Attempt `json:"attempts"`
	Died     time.Time      `json:"died"`
}

func viewOf(d core.DeadJob) deadView {
	return deadView{Handle: d.Handle, Function: d.Function, Unique: d.Unique, Priority: d.Priority,
		Preview: core.Preview(d.Data, 64), Size: len(d.Data), Attempts: d.Attempts, Died: d.Died}
}

type deadPage struct {
	Total  int        `json:"total"`
	Offset int        `json:"offset"`
	Dead   []deadView `json:"dead"`
}

// registerDead serves the dead set and retry policies:
//
//	GET  /api/v1/dead?function=F&offset=&limit=      newest first
//	GET  /api/v1/dead/{handle}
//	POST /api/v1/dead/{handle}/retry | /delete
//	POST /api/v1/functions/{function}/dead/retry | /delete
//	POST /api/v1/functions/{function}/retry-policy  {"attempts", "base_seconds", "cap_seconds", "jitter"}
func (h *HTTP) registerDead(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/dead", h.api(func(s *server.Server, r *http.Request) (any, error) {
		offset, limit, err := window(r)
		if err != nil {
			return nil, err
		}
		total, page := s.Core().Dead(core.DeadFilter{Function: r.URL.Query().Get("function")}, offset, limit)
		out := deadPage{Total: total, Offset: offset, Dead: []deadView{}}
		for _, d := range page {
			out.Dead = append(out.Dead, viewOf(d))
		}
		return out, nil
	}))
	mux.HandleFunc("GET /api/v1/dead/{handle}", h.api(func(s *server.Server, r *http.Request) (any, error) {
		d, ok := s.Core().DeadJobOf(r.PathValue("handle"))
		if !ok {
			return nil, errNotFound("no dead job " + r.PathValue("handle"))
		}
		return viewOf(d), nil
	}))
	act := func(retry bool, byFunction bool) func(*server.Server, *http.Request, string) (any, error) {
		return func(s *server.Server, r *http.Request, by string) (any, error) {
			handle, f := "", core.DeadFilter{}
			if byFunction {
				f.Function = r.PathValue("function")
			} else {
				handle = r.PathValue("handle")
			}
			var n int
			var handles []string
			var err error
			if retry {
				handles, err = s.Core().RetryDead(handle, f, by)
				n = len(handles)
			} else {
				n, err = s.Core().DeleteDead(handle, f, by)
			}
			if errors.Is(err, core.ErrNoSuchJob) {
				return nil, errNotFound("no dead job " + handle)
			} else if err != nil {
				return nil, err
			}
			h.log.Info("http action", "action", map[bool]string{true: "dead-retry", false: "dead-delete"}[retry],
				"handle", handle, "function", f.Function, "jobs", n, "by", by)
			if retry {
				return map[string]any{"retried": n, "handles": handles}, nil
			}
			return map[string]any{"deleted": n}, nil
		}
	}
	mux.HandleFunc("POST /api/v1/dead/{handle}/retry", h.action(act(true, false)))
	mux.HandleFunc("POST /api/v1/dead/{handle}/delete", h.action(act(false, false)))
	mux.HandleFunc("POST /api/v1/functions/{function}/dead/retry", h.action(act(true, true)))
	mux.HandleFunc("POST /api/v1/functions/{function}/dead/delete", h.action(act(false, true)))
	mux.HandleFunc("POST /api/v1/functions/{function}/retry-policy", h.settingsAction("retry-policy", func(r *http.Request) (func(*core.FunctionSettings), error) {
		var body struct {
			Attempts    int     `json:"attempts"`
			BaseSeconds float64 `json:"base_seconds"`
			CapSeconds  float64 `json:"cap_seconds"`
			Jitter      float64 `json:"jitter"`
		}
		if err := decodeStrict(r, &body); err != nil {
			return nil, errBadRequest(`body must be {"attempts": N, "base_seconds": S, "cap_seconds": S, "jitter": J}: ` + err.Error())
		}
		return func(fs *core.FunctionSettings) {
			fs.RetryAttempts, fs.RetryBaseSeconds, fs.RetryCapSeconds, fs.RetryJitter = body.Attempts, body.BaseSeconds, body.CapSeconds, body.Jitter
		}, nil
	}))
}
