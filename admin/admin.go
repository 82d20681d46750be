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
	"fmt"

	"github.com/gearhq/gear/protocol"
)

// The views are the protocol package's: a Gear server renders the same structs these parse into.
type (
	// FunctionStatus is one line of `status`.
	FunctionStatus = protocol.FunctionStatus
	// PriorityStatus is one line of `prioritystatus`.
	PriorityStatus = protocol.PriorityStatus
	// WorkerInfo is one line of `workers`.
	WorkerInfo = protocol.WorkerInfo
	// JobInfo is one line of `show jobs`.
	JobInfo = protocol.JobInfo
	// StoreInfo is the reply to `store`, a Gear extension.
	StoreInfo = protocol.StoreInfo
	// LimitsInfo is the reply to `limits`, a Gear extension.
	LimitsInfo = protocol.LimitsInfo
	// FunctionInfo is a function with its state and limits (`functions`, a Gear extension).
	FunctionInfo = protocol.FunctionInfo
)

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
