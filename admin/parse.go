package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxLineSize bounds one reply line. Gearman function names, client IDs, handles and unique keys are
// at most a few hundred bytes; a longer line means the peer is not an admin server (or is hostile),
// and the reader refuses it before buffering more.
const maxLineSize = 64 << 10

// errLineTooLong reports a reply line over maxLineSize.
var errLineTooLong = fmt.Errorf("admin: reply line longer than %d bytes", maxLineSize)

// replyKind says how a command's reply is framed.
type replyKind int

const (
	// oneLine: a single line ("OK", "OK value", "ERR …", or the Perl server's bare version).
	oneLine replyKind = iota
	// list: lines up to a line ".", or a single ERR line instead.
	list
	// tabular: a list whose lines hold tab-separated columns. A line "ERR …" containing a tab is a row
	// (a function named "ERR x"), not an error.
	tabular
)

// readLine reads one line and strips its "\n" or "\r\n". It accepts any split of the input, as it
// reads through a bufio.Reader, and checks the length before it grows its buffer.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > maxLineSize {
			return "", errLineTooLong
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	line := buf[:len(buf)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// readReply reads one reply of the given kind. An ERR reply becomes a *ServerError; the lines of a
// list come without the closing ".".
func readReply(r *bufio.Reader, kind replyKind) ([]string, error) {
	first, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if isErrorLine(first, kind) {
		return nil, parseError(first)
	}
	if kind == oneLine {
		return []string{first}, nil
	}
	var lines []string
	for line := first; line != "."; {
		lines = append(lines, line)
		if line, err = readLine(r); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the list never ended
			}
			return nil, err
		}
	}
	return lines, nil
}

func isErrorLine(line string, kind replyKind) bool {
	if line != "ERR" && !strings.HasPrefix(line, "ERR ") {
		return false
	}
	return kind != tabular || !strings.Contains(line, "\t")
}

// parseError turns "ERR CODE text+with+pluses" into a *ServerError. gearmand also sends free text
// ("ERR there are still connected workers or executing clients"): when the first word does not look
// like a code, the whole rest is the text.
func parseError(line string) *ServerError {
	rest := strings.TrimLeft(strings.TrimPrefix(line, "ERR"), " ")
	code, text, _ := strings.Cut(rest, " ")
	if !isCode(code) {
		return &ServerError{Text: unplus(rest)}
	}
	return &ServerError{Code: code, Text: unplus(text)}
}

// isCode reports whether word is an error code: gearmand's are upper case (UNKNOWN_JOB, QUEUE_ERROR),
// the Perl server's lower case with underscores (unknown_command). A plain lower-case word starts
// free text.
func isCode(word string) bool {
	if word == "" {
		return false
	}
	upper := true
	for i := 0; i < len(word); i++ {
		switch c := word[i]; {
		case c >= 'a' && c <= 'z':
			upper = false
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		default:
			return false
		}
	}
	return upper || strings.Contains(word, "_")
}

func unplus(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "+", " ")) }

// parseOK checks a bare "OK" reply.
func parseOK(line string) error {
	if strings.TrimRight(line, " ") != "OK" {
		return fmt.Errorf("admin: unexpected reply %q, want OK", line)
	}
	return nil
}

// parseValue returns the value of an "OK value" reply. A line without "OK " is returned whole: the
// Perl server answers `version` with the bare version.
func parseValue(line string) string {
	if v, ok := strings.CutPrefix(line, "OK "); ok {
		return strings.TrimSpace(v)
	}
	if line == "OK" {
		return ""
	}
	return strings.TrimSpace(line)
}

// parsePID parses the reply to `getpid`.
func parsePID(line string) (int, error) {
	v := parseValue(line)
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("admin: malformed getpid reply %q", line)
	}
	return pid, nil
}

// splitRow splits a tab-separated row whose last n columns are integers. Whatever precedes them is
// the name, tabs included: the Perl client's function prefixes put a tab inside the name
// ("prefix\tfunc\t1\t0\t0").
func splitRow(line string, n int) (string, []int, bool) {
	nums := make([]int, n)
	rest := line
	for i := n - 1; i >= 0; i-- {
		tab := strings.LastIndexByte(rest, '\t')
		if tab < 0 {
			return "", nil, false
		}
		v, err := strconv.Atoi(strings.TrimSpace(rest[tab+1:]))
		if err != nil {
			return "", nil, false
		}
		nums[i] = v
		rest = rest[:tab]
	}
	return rest, nums, true
}

// parseStatus parses `status` rows "FUNCTION\tTOTAL\tRUNNING\tAVAILABLE_WORKERS".
func parseStatus(lines []string) ([]FunctionStatus, error) {
	out := make([]FunctionStatus, 0, len(lines))
	for _, line := range lines {
		name, v, ok := splitRow(line, 3)
		if !ok {
			return nil, fmt.Errorf("admin: malformed status line %q", line)
		}
		out = append(out, FunctionStatus{Name: name, Total: v[0], Running: v[1], Workers: v[2]})
	}
	return out, nil
}

// parsePriorityStatus parses `prioritystatus` rows "FUNCTION\tHIGH\tNORMAL\tLOW\tAVAILABLE_WORKERS".
func parsePriorityStatus(lines []string) ([]PriorityStatus, error) {
	out := make([]PriorityStatus, 0, len(lines))
	for _, line := range lines {
		name, v, ok := splitRow(line, 4)
		if !ok {
			return nil, fmt.Errorf("admin: malformed prioritystatus line %q", line)
		}
		out = append(out, PriorityStatus{Name: name, High: v[0], Normal: v[1], Low: v[2], Workers: v[3]})
	}
	return out, nil
}

// parseWorkers parses `workers` rows "FD IP CLIENT-ID : FUNCTION ...". A connection without
// functions ends in ":" (gearmand) or ": " (Perl server).
func parseWorkers(lines []string) ([]WorkerInfo, error) {
	out := make([]WorkerInfo, 0, len(lines))
	for _, line := range lines {
		w, ok := parseWorker(line)
		if !ok {
			return nil, fmt.Errorf("admin: malformed workers line %q", line)
		}
		out = append(out, w)
	}
	return out, nil
}

func parseWorker(line string) (WorkerInfo, bool) {
	fd, rest, ok := strings.Cut(line, " ")
	if !ok || fd == "" {
		return WorkerInfo{}, false
	}
	ip, rest, ok := strings.Cut(rest, " ")
	if !ok || ip == "" {
		return WorkerInfo{}, false
	}
	// The client ID is a single word for gearmand and Gear (both replace spaces), so the first " :"
	// that ends a word is the separator.
	var id, fns string
	switch i := strings.Index(rest, " : "); {
	case i >= 0:
		id, fns = rest[:i], rest[i+3:]
	case strings.HasSuffix(rest, " :"):
		id = rest[:len(rest)-2]
	default:
		return WorkerInfo{}, false
	}
	if id == "" {
		return WorkerInfo{}, false
	}
	functions := strings.Fields(fns)
	if functions == nil {
		functions = []string{}
	}
	return WorkerInfo{FD: fd, IP: ip, ID: id, Functions: functions}, true
}

// parseJobs parses `show jobs` rows "HANDLE\tRETRIES\tIGNORE_JOB\tJOB_QUEUED".
func parseJobs(lines []string) ([]JobInfo, error) {
	out := make([]JobInfo, 0, len(lines))
	for _, line := range lines {
		handle, v, ok := splitRow(line, 3)
		if !ok || handle == "" || !isFlag(v[1]) || !isFlag(v[2]) {
			return nil, fmt.Errorf("admin: malformed show jobs line %q", line)
		}
		out = append(out, JobInfo{Handle: handle, Retries: v[0], Ignored: v[1] == 1, Queued: v[2] == 1})
	}
	return out, nil
}

func isFlag(v int) bool { return v == 0 || v == 1 }

// parseUnique parses `show unique jobs`: one unique key per line. gearmand prints an empty line for a
// job submitted without a unique key; those are left out, as they name nothing.
func parseUnique(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}
