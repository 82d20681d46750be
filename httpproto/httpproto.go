// Package httpproto serves gearmand's HTTP protocol (gearmand -r http --http-port N): a request to
// /FUNCTION runs a job of FUNCTION with the request body as its data. Headers choose the job's
// unique key (X-Gearman-Unique), priority (X-Gearman-Priority: high or low) and whether it runs in
// the background (X-Gearman-Background: true). The reply is 200 with the job's handle in
// X-Gearman-Job-Handle and its outcome in X-Gearman-Command: WORK_COMPLETE with the result as the
// body, WORK_FAIL, or JOB_CREATED for a background job. Like gearmand it takes any method.
//
// Jobs go through a Gearman client (normally to the server's own port), so they are ordinary jobs
// to the server, its workers and its admin views.
package httpproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/protocol"
)

// Handler serves gearmand's HTTP protocol through Client.
type Handler struct {
	Client *client.Client
	// MaxBody bounds a request's body, the job's data (0: 64 MiB, the server's default packet size).
	MaxBody int64
	// Server is sent as the Server header.
	Server string
	Log    *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Server != "" {
		w.Header().Set("Server", h.Server)
	}
	function := strings.TrimPrefix(r.URL.Path, "/")
	if function == "" {
		http.Error(w, "no function: request /FUNCTION", http.StatusNotFound)
		return
	}
	if len(function) > protocol.MaxFunctionSize || strings.ContainsAny(function, "\x00\r\n") {
		http.Error(w, "invalid function name", http.StatusBadRequest)
		return
	}
	var s client.Submission
	s.Unique = r.Header.Get("X-Gearman-Unique")
	if len(s.Unique) > protocol.MaxUniqueSize || strings.ContainsAny(s.Unique, "\x00\r\n") {
		http.Error(w, "invalid X-Gearman-Unique", http.StatusBadRequest)
		return
	}
	switch p := strings.ToLower(r.Header.Get("X-Gearman-Priority")); p {
	case "", "normal":
	case "high":
		s.Priority = client.High
	case "low":
		s.Priority = client.Low
	default:
		http.Error(w, "X-Gearman-Priority must be high, normal or low", http.StatusBadRequest)
		return
	}
	background := strings.EqualFold(r.Header.Get("X-Gearman-Background"), "true")
	limit := h.MaxBody
	if limit <= 0 {
		limit = 64 << 20
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body larger than the job size limit", http.StatusRequestEntityTooLarge)
			return
		}
		return // the client went away
	}
	ctx := r.Context()
	if background {
		handle, err := h.Client.SubmitBackground(ctx, function, data, s)
		if err != nil {
			h.fail(w, ctx, function, err)
			return
		}
		h.reply(w, handle, "JOB_CREATED", nil)
		return
	}
	job, err := h.Client.Submit(ctx, function, data, s)
	if err != nil {
		h.fail(w, ctx, function, err)
		return
	}
	result, err := job.Wait(ctx)
	var failed *client.JobFailedError
	var exception *client.JobExceptionError
	switch {
	case err == nil:
		h.reply(w, job.Handle(), "WORK_COMPLETE", result)
	case errors.As(err, &failed), errors.As(err, &exception):
		// An HTTP client did not ask for exceptions: a failure either way, as with gearmand.
		h.reply(w, job.Handle(), "WORK_FAIL", nil)
	default:
		h.fail(w, ctx, function, err)
	}
}

func (h *Handler) reply(w http.ResponseWriter, handle, command string, body []byte) {
	w.Header().Set("X-Gearman-Job-Handle", handle)
	w.Header().Set("X-Gearman-Command", command)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, bytes.NewReader(body))
}

// fail answers a job the server could not take or run: 503 for the server's refusal (a full
// queue, a shutdown), 502 when no server could be reached.
func (h *Handler) fail(w http.ResponseWriter, ctx context.Context, function string, err error) {
	if ctx.Err() != nil {
		return // the HTTP client went away; the job, if submitted, runs on
	}
	if h.Log != nil {
		h.Log.Warn("http job failed", "function", function, "err", err)
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		http.Error(w, se.Error(), http.StatusServiceUnavailable)
		return
	}
	http.Error(w, err.Error(), http.StatusBadGateway)
}
