package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/server"
)

// registerSchedules serves the named schedules: GET /api/v1/schedules lists them, POST
// /api/v1/schedules defines (or replaces) one from a JSON body (protocol.ScheduleInfo's fields:
// name, function, spec, time_zone, priority, unique, data), and DELETE /api/v1/schedules/{name}
// or POST /api/v1/schedules/{name}/delete removes one.
func (h *HTTP) registerSchedules(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/schedules", h.api(func(s *server.Server, _ *http.Request) (any, error) {
		return s.Core().Schedules(), nil
	}))
	mux.HandleFunc("POST /api/v1/schedules", h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		var def core.Schedule
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&def); err != nil {
			return nil, errBadRequest(`body must be {"name": N, "function": F, "spec": "MIN HOUR DOM MON DOW", "time_zone": Z, "priority": P, "unique": U, "data": D}: ` + err.Error())
		}
		v, err := s.Core().AddSchedule(def, by)
		if errors.Is(err, core.ErrBadSchedule) {
			return nil, errBadRequest(err.Error())
		} else if err != nil {
			return nil, err
		}
		h.log.Info("http action", "action", "schedule-add", "schedule", v.Name, "by", by)
		return v, nil
	}))
	remove := h.action(func(s *server.Server, r *http.Request, by string) (any, error) {
		name := r.PathValue("name")
		switch err := s.Core().RemoveSchedule(name, by); {
		case errors.Is(err, core.ErrNoSuchSchedule):
			return nil, errNotFound("no schedule " + name)
		case err != nil:
			return nil, err
		}
		h.log.Info("http action", "action", "schedule-remove", "schedule", name, "by", by)
		return map[string]any{"removed": name}, nil
	})
	mux.HandleFunc("DELETE /api/v1/schedules/{name}", remove)
	mux.HandleFunc("POST /api/v1/schedules/{name}/delete", remove)
}
