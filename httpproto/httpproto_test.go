package httpproto_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/httpproto"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/worker"
)

func post(t *testing.T, url string, body string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	addr, _ := testenv.StartGear(t)
	ran := make(chan string, 4)
	testenv.StartWorker(t, []string{addr}, 2, map[string]worker.Func{
		"reverse": testenv.Reverse,
		"fail":    func(context.Context, *worker.Job) ([]byte, error) { return nil, errors.New("no") },
		"bg": func(_ context.Context, j *worker.Job) ([]byte, error) {
			ran <- string(j.Data)
			return nil, nil
		},
	})
	h := &httpproto.Handler{Client: testenv.NewClient(t, addr), Server: "Gear/test", MaxBody: 1 << 10}
	web := httptest.NewServer(h)
	t.Cleanup(web.Close)

	resp, body := post(t, web.URL+"/reverse", "hello", nil)
	if resp.StatusCode != 200 || body != "olleh" || resp.Header.Get("X-Gearman-Command") != "WORK_COMPLETE" ||
		!strings.HasPrefix(resp.Header.Get("X-Gearman-Job-Handle"), "H:") || resp.Header.Get("Server") != "Gear/test" {
		t.Fatalf("reverse: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = post(t, web.URL+"/reverse", "abc", map[string]string{"X-Gearman-Priority": "high", "X-Gearman-Unique": "u1"})
	if resp.StatusCode != 200 || body != "cba" {
		t.Fatalf("high priority with a unique: %d %q", resp.StatusCode, body)
	}
	resp, body = post(t, web.URL+"/fail", "x", nil)
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("X-Gearman-Command") != "WORK_FAIL" {
		t.Fatalf("failing job: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = post(t, web.URL+"/bg", "later", map[string]string{"X-Gearman-Background": "true", "X-Gearman-Priority": "low"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Gearman-Command") != "JOB_CREATED" || resp.Header.Get("X-Gearman-Job-Handle") == "" {
		t.Fatalf("background: %d %v", resp.StatusCode, resp.Header)
	}
	select {
	case d := <-ran:
		if d != "later" {
			t.Fatalf("background job ran with %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the background job never ran")
	}
	for _, tc := range []struct {
		path    string
		headers map[string]string
		body    string
		status  int
	}{
		{"/", nil, "x", http.StatusNotFound},
		{"/reverse", map[string]string{"X-Gearman-Priority": "urgent"}, "x", http.StatusBadRequest},
		{"/reverse", map[string]string{"X-Gearman-Unique": strings.Repeat("u", 65)}, "x", http.StatusBadRequest},
		{"/reverse", nil, strings.Repeat("x", 2<<10), http.StatusRequestEntityTooLarge},
	} {
		if resp, body := post(t, web.URL+tc.path, tc.body, tc.headers); resp.StatusCode != tc.status {
			t.Errorf("%s %v: %d %q, want %d", tc.path, tc.headers, resp.StatusCode, body, tc.status)
		}
	}
}

// A server that refuses the job (its queue is full) is a 503 with its reason, not a hang.
func TestHandler_ServerRefuses(t *testing.T) {
	addr, srv := testenv.StartGear(t)
	c := testenv.NewClient(t, addr)
	if reply, _ := srv.Core().Admin(nil, nil, []byte("maxqueue full 1")); string(reply) != "OK\r\n" {
		t.Fatalf("maxqueue: %q", reply)
	}
	ctx := testenv.CtxTimeout(t, 10*time.Second)
	if _, err := c.SubmitBackground(ctx, "full", []byte("1"), client.Submission{}); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(&httpproto.Handler{Client: c})
	t.Cleanup(web.Close)
	resp, body := post(t, web.URL+"/full", "2", map[string]string{"X-Gearman-Background": "true"})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "QUEUE_ERROR") {
		t.Fatalf("full queue: %d %q", resp.StatusCode, body)
	}
}
