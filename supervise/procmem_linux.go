package supervise

import (
	"bytes"
	"os"
	"strconv"
)

// procTable is one reading of /proc: each process's parent and resident size. It is reused from
// one check to the next, so the supervisor's own memory does not grow with the number of samples.
//
// Hand-written rather than github.com/prometheus/procfs (already a dependency): procfs builds a
// full ProcStat, with every field parsed, for every process on the machine at every sample; this
// needs two fields and reads them into one reused buffer, which keeps a supervisor that samples
// every second for months flat.
type procTable struct {
	parent   map[int]int
	rss      map[int]uint64
	children map[int][]int
	buf      []byte
	pageSize uint64
}

// read scans /proc/PID/stat of every process.
func (t *procTable) read() {
	if t.parent == nil {
		t.parent, t.rss, t.children = map[int]int{}, map[int]uint64{}, map[int][]int{}
		t.pageSize = uint64(os.Getpagesize())
	}
	clear(t.parent)
	clear(t.rss)
	for k, v := range t.children {
		t.children[k] = v[:0]
	}
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		ppid, pages, ok := t.stat(pid)
		if !ok {
			continue
		}
		t.parent[pid] = ppid
		t.rss[pid] = pages * t.pageSize
		t.children[ppid] = append(t.children[ppid], pid)
	}
	for k, v := range t.children { // forget parents gone since the last reading
		if len(v) == 0 {
			delete(t.children, k)
		}
	}
}

// stat reads the parent PID and the resident pages from /proc/PID/stat. The command name (field
// 2) is in parentheses and may hold spaces or parentheses itself: the fields are counted from the
// last ')'.
func (t *procTable) stat(pid int) (ppid int, pages uint64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	if cap(t.buf) < 1024 {
		t.buf = make([]byte, 1024)
	}
	n, _ := f.Read(t.buf[:cap(t.buf)])
	b := t.buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After ")": state(3) ppid(4) ... rss(24), counted from 1 over the whole line.
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 22 {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(string(fields[1]))
	r, err2 := strconv.ParseUint(string(fields[21]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return p, r, true
}

// treeRSS is the resident size of pid and all its descendants. The walk takes at most one step
// per process read: a PID reused while /proc was being read cannot make it loop.
func (t *procTable) treeRSS(pid int) uint64 {
	if _, ok := t.parent[pid]; !ok {
		return 0
	}
	var total uint64
	stack := []int{pid}
	for steps := 0; len(stack) > 0 && steps <= len(t.parent); steps++ {
		p := stack[len(stack)-1]
		stack = append(stack[:len(stack)-1], t.children[p]...)
		total += t.rss[p]
	}
	return total
}
