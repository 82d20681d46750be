package supervise

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
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
