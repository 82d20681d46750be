package httpapi

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
)

// The API's lists are paged on the server: a dashboard over 10,000 functions or a million jobs
// asks for one page at a time and gets the total beside it.

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// window reads the offset and limit query parameters.
func window(r *http.Request) (offset, limit int, err error) {
	q := r.URL.Query()
	offset, limit = 0, defaultLimit
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, errBadRequest("offset must be a number, 0 or more")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxLimit {
			return 0, 0, errBadRequest("limit must be a number from 1 to " + strconv.Itoa(maxLimit))
		}
	}
	return offset, limit, nil
}

// pageOf cuts the window out of a whole list.
func pageOf[T any](all []T, offset, limit int) []T {
	if offset >= len(all) {
		return []T{}
	}
	return all[offset:min(offset+limit, len(all))]
}

type functionPage struct {
	Total     int                     `json:"total"` // functions matching the search
	Offset    int                     `json:"offset"`
	Functions []protocol.FunctionInfo `json:"functions"`
}

// functionSorts are the orders of the functions list; all but name are largest first by default.
var functionSorts = map[string]func(a, b protocol.FunctionInfo) int{
	"name":    func(a, b protocol.FunctionInfo) int { return strings.Compare(a.Name, b.Name) },
	"queued":  func(a, b protocol.FunctionInfo) int { return cmp.Compare(queuedOf(a), queuedOf(b)) },
	"running": func(a, b protocol.FunctionInfo) int { return cmp.Compare(a.Running, b.Running) },
	"workers": func(a, b protocol.FunctionInfo) int { return cmp.Compare(a.Workers, b.Workers) },
	"oldest":  func(a, b protocol.FunctionInfo) int { return cmp.Compare(a.OldestAge, b.OldestAge) },
}

func queuedOf(f protocol.FunctionInfo) int { return f.Queued.High + f.Queued.Normal + f.Queued.Low }

// functions lists functions whose name contains search, sorted by name (default), queued,
// running, workers or oldest, in order asc or desc (default: asc for name, desc for the rest);
// ties go by name, A to Z.
func functions(s *server.Server, r *http.Request) (any, error) {
	offset, limit, err := window(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	sortBy := cmp.Or(q.Get("sort"), "name")
	by, ok := functionSorts[sortBy]
	if !ok {
		return nil, errBadRequest("sort must be name, queued, running, workers or oldest")
	}
	desc := sortBy != "name"
	switch q.Get("order") {
	case "":
	case "asc":
		desc = false
	case "desc":
		desc = true
	default:
		return nil, errBadRequest("order must be asc or desc")
	}
	all := s.Core().Functions() // by name
	if search := q.Get("search"); search != "" {
		all = slices.DeleteFunc(all, func(f protocol.FunctionInfo) bool { return !strings.Contains(f.Name, search) })
	}
	if sortBy != "name" || desc {
		slices.SortStableFunc(all, func(a, b protocol.FunctionInfo) int {
			c := by(a, b)
			if desc {
				c = -c
			}
			return cmp.Or(c, strings.Compare(a.Name, b.Name))
		})
	}
	return functionPage{Total: len(all), Offset: offset, Functions: pageOf(all, offset, limit)}, nil
}

type workerPage struct {
	Total   int                   `json:"total"`
	Offset  int                   `json:"offset"`
	Workers []protocol.WorkerInfo `json:"workers"`
}

// workers lists worker connections by ID; search matches the address, the client ID or a function.
func workers(s *server.Server, r *http.Request) (any, error) {
	offset, limit, err := window(r)
	if err != nil {
		return nil, err
	}
	all := s.Core().Workers()
	if search := r.URL.Query().Get("search"); search != "" {
		all = slices.DeleteFunc(all, func(w protocol.WorkerInfo) bool {
			return !strings.Contains(w.IP, search) && !strings.Contains(w.ID, search) &&
				!slices.ContainsFunc(w.Functions, func(f string) bool { return strings.Contains(f, search) })
		})
	}
	return workerPage{Total: len(all), Offset: offset, Workers: pageOf(all, offset, limit)}, nil
}

type clientPage struct {
	Total   int                   `json:"total"`
	Offset  int                   `json:"offset"`
	Clients []protocol.ClientInfo `json:"clients"`
}

// clients lists the connections that are not workers, by ID.
func clients(s *server.Server, r *http.Request) (any, error) {
	offset, limit, err := window(r)
	if err != nil {
		return nil, err
	}
	all := s.Core().Clients()
	return clientPage{Total: len(all), Offset: offset, Clients: pageOf(all, offset, limit)}, nil
}

type jobPage struct {
	Total  int                `json:"total"` // jobs matching the filter
	Offset int                `json:"offset"`
	Jobs   []protocol.JobInfo `json:"jobs"`
}

// jobs lists unfinished jobs filtered by function, state and priority, paged by the core (see
// core.JobPage for the order). No payload is ever sent: a short escaped preview and its size are.
func jobs(s *server.Server, r *http.Request) (any, error) {
	offset, limit, err := window(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	page, err := s.Core().JobPage(core.JobFilter{Function: q.Get("function"), State: q.Get("state"), Priority: q.Get("priority")}, offset, limit)
	if err != nil {
		return nil, errBadRequest(strings.TrimPrefix(err.Error(), core.ErrBadFilter.Error()+"\n"))
	}
	return jobPage{Total: page.Total, Offset: offset, Jobs: page.Jobs}, nil
}
