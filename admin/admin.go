// Package admin is a client for the Gearman text admin protocol: the line-based commands (`status`,
// `workers`, `show jobs`, `cancel job`, …) that every Gearman job server answers on its job port.
//
// It works against any server, not only Gear: Gear, gearmand 1.1 and the Perl Gearman::Server. Their
// replies differ in small ways, and the parsers accept all of them:
//
//   - lines end in "\n" or "\r\n", mixed within one reply (gearmand ends lists and "OK value" with
//     "\n", bare OK and ERR with "\r\n");
//   - a list ends with a line "."; an error is one line "ERR CODE text+with+pluses";
//   - gearmand's `drop function` errors are free text ("ERR function not found"), not CODE+text;
//   - the Perl server answers `version` without "OK " and ends `workers` lines with a space.
//
// One Conn carries one command at a time; Show dials, queries and prints one view, as `gear admin`
// does.
package admin

import (
	"encoding/json"
	"fmt"
)

// FunctionStatus is one line of `status`: a function's unfinished jobs (queued and running), its
// running jobs, and the workers that can run it.
type FunctionStatus struct {
	Name    string `json:"function"`
	Total   int    `json:"total"`
	Running int    `json:"running"`
	Workers int    `json:"available_workers"`
}

// PriorityStatus is one line of `prioritystatus`: a function's queued (not running) jobs per
// priority and the workers that can run it.
type PriorityStatus struct {
	Name    string `json:"function"`
	High    int    `json:"high"`
	Normal  int    `json:"normal"`
	Low     int    `json:"low"`
	Workers int    `json:"available_workers"`
}

// WorkerInfo is one line of `workers`: a connection's descriptor (gearmand: the file descriptor;
// Gear: a connection number), peer IP, client ID ("-" when the peer never sent SET_CLIENT_ID) and
// the functions it registered. gearmand lists clients and admin connections too, with no functions.
type WorkerInfo struct {
	FD        string   `json:"fd"`
	IP        string   `json:"ip"`
	ID        string   `json:"client_id"`
	Functions []string `json:"functions"`
}

// MarshalJSON writes Functions as [] rather than null when there are none.
func (w WorkerInfo) MarshalJSON() ([]byte, error) {
	type plain WorkerInfo // no methods: no recursion
	if w.Functions == nil {
		w.Functions = []string{}
	}
	return json.Marshal(plain(w))
}

// JobInfo is one line of `show jobs`: an unfinished job's handle, how often its worker was lost,
// whether it was cancelled (gearmand keeps a cancelled job listed until it is dequeued) and the
// JOB_QUEUED flag. Gear sets Queued for a job waiting in a queue, not for a running one; gearmand
// 1.1 sets it for running jobs too and clears it only on cancel.
type JobInfo struct {
	Handle  string `json:"handle"`
	Retries int    `json:"retries"`
	Ignored bool   `json:"ignored"`
	Queued  bool   `json:"queued"`
}

// ServerError is an "ERR CODE text" reply. Code is the server's error word (UNKNOWN_JOB,
// INVALID_ARGUMENTS, UNKNOWN_COMMAND…) and Text its message with '+' turned back into spaces.
// gearmand's free-text errors ("ERR function not found") have an empty Code.
type ServerError struct {
	Code string
	Text string
}

func (e *ServerError) Error() string {
	switch {
	case e.Code != "" && e.Text != "":
		return fmt.Sprintf("server error %s: %s", e.Code, e.Text)
	case e.Code != "":
		return "server error " + e.Code
	case e.Text != "":
		return "server error: " + e.Text
	default:
		return "server error"
	}
}
