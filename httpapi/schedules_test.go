package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gearhq/gear/httpapi"
)

func TestAPI_Schedules(t *testing.T) {
	e := start(t, 100)
	def := `{"name": "nightly", "function": "backup", "spec": "0 3 * * *", "time_zone": "Europe/Berlin", "priority": "low", "data": "full"}`
	if code, body := postJSON(t, e.web+"/api/v1/schedules", def); code != 200 || !strings.Contains(body, `"next_unix"`) {
		t.Fatalf("add: %d %s", code, body)
	}
	for body, want := range map[string]int{
		`{"name": "x", "function": "f", "spec": "0 3 * *"}`:                         400,
		`{"name": "x", "function": "f", "spec": "@daily", "tz": 1}`:                 400,
		`{"name": "x", "function": "f", "spec": "@daily", "time_zone": "No/Where"}`: 400,
	} {
		if code, got := postJSON(t, e.web+"/api/v1/schedules", body); code != want {
			t.Errorf("add %s: %d %s, want %d", body, code, got, want)
		}
	}
	code, body := get(t, e.web+"/api/v1/schedules")
	if code != 200 || !strings.Contains(string(body), `"spec": "0 3 * * *"`) || !strings.Contains(string(body), `"data": "full"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.web+"/api/v1/schedules/nightly", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _ := postJSON(t, e.web+"/api/v1/schedules/nightly/delete", ""); code != 404 {
		t.Fatalf("second delete: %d, want 404", code)
	}
	if s := e.srv.Core().Schedules(); len(s) != 0 {
		t.Fatalf("schedules left: %+v", s)
	}
	ro := startWith(t, 100, func(o *httpapi.Options) { o.ReadOnly = true })
	if code, _ := postJSON(t, ro.web+"/api/v1/schedules", def); code != 403 {
		t.Errorf("add in read-only mode: %d", code)
	}
}
