package protocol

import (
	"bytes"
	"strings"
)

// AdminCommand is one parsed line of the text admin protocol.
type AdminCommand struct {
	// Name is the canonical command: one of the Admin* constants, or "" when the line is not a known
	// command (Word then holds what the peer sent, for the error reply).
	Name string
	Word string
	Args []string
}

// Admin command names. Multi-word commands ("show jobs", "cancel job") are joined by one space.
const (
	AdminStatus         = "status"
	AdminPriorityStatus = "prioritystatus"
	AdminWorkers        = "workers"
	AdminVersion        = "version"
	AdminVerbose        = "verbose"
	AdminGetPID         = "getpid"
	AdminMaxQueue       = "maxqueue"
	AdminShowJobs       = "show jobs"
	AdminShowUniqueJobs = "show unique jobs"
	AdminCancelJob      = "cancel job"
	AdminCreateFunction = "create function"
	AdminDropFunction   = "drop function"
	AdminShutdown       = "shutdown"
	// AdminStore is a Gear extension: the durable store's state.
	AdminStore = "store"
	// AdminLimits is a Gear extension: the server's limits and how much of each is in use.
	AdminLimits = "limits"
	// Gear extensions: pause and resume a function, limit how many of its jobs run at once and
	// start per second, and list functions with those settings.
	AdminPause     = "pause"
	AdminResume    = "resume"
	AdminLimit     = "limit"
	AdminFunctions = "functions"
	// Gear extensions: a function's retry policy, and the dead set.
	AdminRetry      = "retry"
	AdminDeadList   = "dead list"
	AdminDeadRetry  = "dead retry"
	AdminDeadDelete = "dead delete"
)

// multiWord lists the commands whose name spans several words, longest first so "show unique jobs"
// wins over "show".
var multiWord = [][]string{
	{"schedule", "add"}, {"schedule", "list"}, {"schedule", "remove"}, // schedules.go
	{"show", "unique", "jobs"},
	{"show", "jobs"},
	{"cancel", "job"},
	{"create", "function"},
	{"drop", "function"},
	{"dead", "list"},
	{"dead", "retry"},
	{"dead", "delete"},
}

var singleWord = map[string]bool{
	AdminStatus: true, AdminPriorityStatus: true, AdminWorkers: true, AdminVersion: true,
	AdminVerbose: true, AdminGetPID: true, AdminMaxQueue: true, AdminShutdown: true, AdminStore: true,
	AdminLimits: true, AdminPause: true, AdminResume: true, AdminLimit: true, AdminFunctions: true, AdminRetry: true,
}

// ParseAdmin parses one admin line (without its line ending). Words are separated by runs of spaces or
// tabs; command words are case-insensitive as in gearmand, arguments keep their case.
func ParseAdmin(line []byte) AdminCommand {
	words := strings.Fields(string(bytes.TrimSpace(line)))
	if len(words) == 0 {
		return AdminCommand{}
	}
	for _, mw := range multiWord {
		if len(words) < len(mw) {
			continue
		}
		match := true
		for i, w := range mw {
			if !strings.EqualFold(words[i], w) {
				match = false
				break
			}
		}
		if match {
			return AdminCommand{Name: strings.Join(mw, " "), Word: words[0], Args: words[len(mw):]}
		}
	}
	name := strings.ToLower(words[0])
	if singleWord[name] {
		return AdminCommand{Name: name, Word: words[0], Args: words[1:]}
	}
	return AdminCommand{Word: words[0], Args: words[1:]}
}
