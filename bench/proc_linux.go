package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: fixed at 100 by the Linux ABI
// on every architecture Go supports.
const clockTicks = 100

// sampler watches a server process: VmRSS every 50 ms (the peak), CPU time on demand.
type sampler struct {
	pid      int
	start    int64         // VmRSS when sampling began, KiB
	startCPU time.Duration // CPU time when sampling began
	maxRSS   atomic.Int64
	stopc    chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func startSampler(pid int) (*sampler, error) {
	s := &sampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	rss, _, err := s.mem()
	if err != nil {
		return nil, fmt.Errorf("server pid %d: %w", pid, err)
	}
	if s.startCPU, err = s.cpu(); err != nil {
		return nil, fmt.Errorf("server pid %d: %w", pid, err)
	}
	s.start = rss
	s.maxRSS.Store(rss)
	go s.loop()
	return s, nil
}

func (s *sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-t.C:
			if rss, _, err := s.mem(); err == nil && rss > s.maxRSS.Load() {
				s.maxRSS.Store(rss)
			}
		}
	}
}

func (s *sampler) stop() {
	s.stopOnce.Do(func() { close(s.stopc) })
	<-s.done
}

// peak is the largest VmRSS seen, including one last sample now.
func (s *sampler) peak() int64 {
	if rss, _, err := s.mem(); err == nil && rss > s.maxRSS.Load() {
		s.maxRSS.Store(rss)
	}
	return s.maxRSS.Load()
}

// cpu is the process's utime + stime (fields 14 and 15 of /proc/PID/stat).
func (s *sampler) cpu() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", s.pid)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", s.pid)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", s.pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// switches is the number of context switches (voluntary and involuntary) of all the process's
// threads so far, from /proc/PID/task/*/status.
func (s *sampler) switches() (int64, error) {
	dir := "/proc/" + strconv.Itoa(s.pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread ended meanwhile
		}
		for line := range bytes.Lines(b) {
			if !bytes.HasPrefix(line, []byte("voluntary_ctxt_switches:")) && !bytes.HasPrefix(line, []byte("nonvoluntary_ctxt_switches:")) {
				continue
			}
			if f := bytes.Fields(line); len(f) == 2 {
				v, _ := strconv.ParseInt(string(f[1]), 10, 64)
				n += v
			}
		}
	}
	return n, nil
}

// mem returns VmRSS and VmHWM in KiB from /proc/PID/status.
func (s *sampler) mem() (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwm
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		if *dst, err = strconv.ParseInt(string(f[1]), 10, 64); err != nil {
			return 0, 0, err
		}
		found++
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status (a zombie or kernel thread?)", s.pid)
	}
	return rss, hwm, nil
}

// selfCPU is the generator's own user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
