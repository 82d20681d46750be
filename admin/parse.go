package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gearhq/gear/protocol"
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

// The parsers are the protocol package's; errors here say they come from the admin client.

func parseStatus(lines []string) ([]FunctionStatus, error) {
	return adminErr(protocol.ParseStatus(lines))
}

func parsePriorityStatus(lines []string) ([]PriorityStatus, error) {
	return adminErr(protocol.ParsePriorityStatus(lines))
}

func parseWorkers(lines []string) ([]WorkerInfo, error) {
	return adminErr(protocol.ParseWorkers(lines))
}

func parseJobs(lines []string) ([]JobInfo, error) {
	return adminErr(protocol.ParseJobs(lines))
}

func parseUnique(lines []string) []string { return protocol.ParseUniqueJobs(lines) }

func parseStore(lines []string) (StoreInfo, error) { return adminErr(protocol.ParseStore(lines)) }

func adminErr[T any](v T, err error) (T, error) {
	if err != nil {
		return v, fmt.Errorf("admin: %w", err)
	}
	return v, nil
}
