package supervise

import (
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/syncbuf"
)

// treeRSS counts a process and everything under it: here a shell and its two sleeps.
func TestProcTable_TreeRSS(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	var tab procTable
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab.read()
		// Both forked, and past their exec (a process in the middle of one shows no memory).
		if kids := tab.children[pid]; len(kids) == 2 && tab.rss[kids[0]] > 0 && tab.rss[kids[1]] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell's two children never appeared: %v", tab.children[pid])
		}
		time.Sleep(10 * time.Millisecond)
	}
	sum := tab.rss[pid]
	for _, c := range tab.children[pid] {
		sum += tab.rss[c]
	}
	if got := tab.treeRSS(pid); got != sum || got <= tab.rss[pid] {
		t.Errorf("treeRSS = %d; want the shell's %d plus its children's, %d", got, tab.rss[pid], sum)
	}
	if self := tab.treeRSS(os.Getpid()); self < sum {
		t.Errorf("the test's own tree (%d) is smaller than the shell's under it (%d)", self, sum)
	}
	if tab.treeRSS(-1) != 0 {
		t.Error("a process that does not exist has a size")
	}
}

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
