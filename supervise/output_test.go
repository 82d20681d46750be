package supervise

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/gearhq/gear/internal/syncbuf"
)

// A child's output is logged line by line; a line without an end comes out when flushed, and an
// endless one in bounded pieces.
func TestLineLog(t *testing.T) {
	var buf syncbuf.Buffer
	l := &lineLog{log: slog.New(slog.NewTextHandler(&buf, nil)), program: "php", slot: 2, stream: "stderr"}
	l.pid.Store(42)
	l.Write([]byte("first\nsec"))
	l.Write([]byte("ond\r\nthird"))
	l.flush()
	l.Write([]byte(strings.Repeat("x", 2*maxLine+10)))
	l.flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines logged, want 6:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"msg=first program=php slot=2 pid=42 stream=stderr", "msg=second ", "msg=third "} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want %q", i, lines[i], want)
		}
	}
	if l.lastLine() != strings.Repeat("x", 10) { // the last piece
		t.Errorf("lastLine = %q", l.lastLine())
	}
}
