package supervise

import (
	"bytes"
	"log/slog"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// maxLine bounds one logged line of a child's output; a longer one is logged in pieces, so a child
// printing without newlines cannot grow the supervisor.
const maxLine = 16 << 10

// lineLog logs a child's stdout or stderr line by line with the program's name, slot and PID.
// It is an io.Writer (not a bufio.Scanner over a pipe) so that os/exec owns the copying and Wait
// bounds it with WaitDelay; a Scanner would also stop at its first over-long line.
// os/exec's copier calls Write; the supervisor calls flush once the child is gone.
type lineLog struct {
	log     *slog.Logger
	program string
	slot    int
	stream  string
	pid     atomic.Int64 // set once the child has started

	mu   sync.Mutex
	buf  []byte
	last string // the last line, for a crash report
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				return n, nil
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.emit()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.emit()
	}
	return n, nil
}

// emit logs the buffered line. Lock must be held.
func (l *lineLog) emit() {
	line := string(bytes.TrimSuffix(l.buf, []byte{'\r'}))
	if !utf8.ValidString(line) {
		line = string(bytes.ToValidUTF8([]byte(line), []byte("\uFFFD")))
	}
	l.buf = l.buf[:0]
	if cap(l.buf) > 4096 {
		l.buf = nil // a burst of long lines does not keep its buffer
	}
	if line != "" {
		l.last = line
		if len(l.last) > 300 {
			l.last = l.last[:300]
		}
	}
	l.log.Info(line, "program", l.program, "slot", l.slot, "pid", l.pid.Load(), "stream", l.stream)
}

// flush logs a last line that had no newline.
func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *lineLog) lastLine() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}
