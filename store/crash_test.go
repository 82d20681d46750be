package store

// Kill tests: the store runs in a child process (this test binary, re-executed with
// -test.run=^TestHelperStoreProcess$), which the test kills with SIGKILL — no deferred Close, no
// flush — and then replays the directory.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

// startHelper runs the helper process on a store of e at where with the given settings and returns
// its stdout lines.
func startHelper(t *testing.T, e engine, where string, mode SyncMode, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStoreProcess$")
	cmd.Env = append(os.Environ(), "GEAR_STORE_HELPER_ENGINE="+e.name, "GEAR_STORE_HELPER_DIR="+where,
		"GEAR_STORE_HELPER_SYNC="+mode.String())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

// A job whose callback reported it durable survives a kill of the process at once, in every sync
// mode: SyncInterval and SyncNone promise that a crash of the process loses nothing. Large jobs fill
// several of Pebble's 4 MiB memtables, so the WAL rotates and memtables flush while the helper runs.
func TestStore_AcknowledgedSurvivesKill(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) { acknowledgedSurvivesKill(t, e) })
}

func acknowledgedSurvivesKill(t *testing.T, e engine) {
	const acks = 300
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		for _, size := range []int{16, 32 << 10} {
			t.Run(fmt.Sprintf("%s/%dB", mode, size), func(t *testing.T) {
				where := e.fresh(t)
				cmd, sc := startHelper(t, e, where, mode, "GEAR_STORE_HELPER_SIZE="+strconv.Itoa(size))
				var last uint64
				for last < acks && sc.Scan() {
					var err error
					if last, err = strconv.ParseUint(strings.TrimPrefix(sc.Text(), "acked "), 10, 64); err != nil {
						t.Fatalf("helper said %q", sc.Text())
					}
				}
				if last < acks {
					t.Fatalf("helper stopped after %d acknowledgements", last)
				}
				cmd.Process.Kill()
				cmd.Wait()

				p := e.openAt(t, where, mode)
				got := replay(t, p)
				if uint64(len(got)) < last {
					t.Fatalf("%d jobs survived, but %d were acknowledged", len(got), last)
				}
				for i, j := range got[:last] {
					if j.Seq != uint64(i+1) || len(j.Data) != size {
						t.Fatalf("job %d missing or damaged: replay has %d (%d bytes) at position %d",
							i+1, j.Seq, len(j.Data), i)
					}
				}
				if p.NextSeq() <= last {
					t.Fatalf("NextSeq %d after %d acknowledged jobs", p.NextSeq(), last)
				}
			})
		}
	}
}

// A finished job's removal reaches the operating system as soon as it is committed, in every mode:
// after a crash of the process, jobs that ended before it do not run again.
func TestStore_RemovalSurvivesKill(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) { removalSurvivesKill(t, e) })
}

func removalSurvivesKill(t *testing.T, e engine) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			where := e.fresh(t)
			cmd, sc := startHelper(t, e, where, mode, "GEAR_STORE_HELPER_REMOVE=1")
			for sc.Scan() && sc.Text() != "removed" {
			}
			if sc.Text() != "removed" {
				t.Fatal("helper did not remove its jobs")
			}
			cmd.Process.Kill()
			cmd.Wait()
			if got := replay(t, e.openAt(t, where, mode)); len(got) != 0 {
				t.Fatalf("%d removed jobs came back after the kill", len(got))
			}
		})
	}
}

// TestHelperStoreProcess is the child of the kill tests. It adds jobs of GEAR_STORE_HELPER_SIZE
// bytes one at a time and prints "acked SEQ" after each callback, until killed; or, with
// GEAR_STORE_HELPER_REMOVE, adds 100 jobs, removes them, prints "removed" once the removals are
// committed and waits to be killed.
func TestHelperStoreProcess(t *testing.T) {
	dir := os.Getenv("GEAR_STORE_HELPER_DIR")
	if dir == "" {
		t.Skip("the helper process of the kill tests")
	}
	mode, err := ParseSyncMode(os.Getenv("GEAR_STORE_HELPER_SYNC"))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(engines, func(e engine) bool { return e.name == os.Getenv("GEAR_STORE_HELPER_ENGINE") })
	if i < 0 {
		t.Fatalf("GEAR_STORE_HELPER_ENGINE=%q", os.Getenv("GEAR_STORE_HELPER_ENGINE"))
	}
	p, err := engines[i].open(dir, mode)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	if os.Getenv("GEAR_STORE_HELPER_REMOVE") != "" {
		for seq := uint64(1); seq <= 100; seq++ {
			if err := add(p, job(seq, 1)); err != nil {
				t.Fatal(err)
			}
		}
		for seq := uint64(1); seq <= 100; seq++ {
			p.Remove(seq)
		}
		for p.Stats().Jobs != 0 {
			time.Sleep(time.Millisecond)
		}
		fmt.Fprintln(w, "removed")
		w.Flush()
		time.Sleep(time.Minute)
		return
	}
	size, _ := strconv.Atoi(os.Getenv("GEAR_STORE_HELPER_SIZE"))
	deadline := time.Now().Add(30 * time.Second)
	for seq := uint64(1); time.Now().Before(deadline); seq++ {
		j := job(seq, 1)
		j.Data = bytes.Repeat([]byte{byte(seq)}, size)
		if err := add(p, j); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "acked %d\n", seq)
		w.Flush()
	}
}

// A crash of the machine loses what was not fsynced: Pebble's strict in-memory file system keeps
// only synced data through ResetToSyncedState. Every job acknowledged under SyncAlways must
// survive it, whatever batches and fsyncs the committer made of the concurrent Adds.
func TestPebble_AcknowledgedSurvivesMachineCrash(t *testing.T) {
	fs := vfs.NewStrictMem()
	p, err := openPebble("/data", SyncAlways, nil, fs)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var (
		mu    sync.Mutex
		acked []uint64
		next  atomic.Uint64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for range writers {
		wg.Go(func() {
			for !stop.Load() {
				seq := next.Add(1)
				j := job(seq, uint8(seq%3))
				if seq%50 == 0 {
					j.Data = bytes.Repeat([]byte{'x'}, 40<<10) // rotate the log now and then
				}
				if err := add(p, j); err != nil {
					t.Errorf("Add %d: %v", seq, err)
					return
				}
				mu.Lock()
				acked = append(acked, seq)
				mu.Unlock()
			}
		})
	}
	for {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 || t.Failed() {
			break
		}
	}
	// The crash: from here on nothing reaches the "disk". An Add acknowledged before it was fsynced.
	mu.Lock()
	durable := slices.Clone(acked)
	fs.SetIgnoreSyncs(true)
	mu.Unlock()
	stop.Store(true)
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)

	p, err = openPebble("/data", SyncAlways, nil, fs)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer p.Close()
	have := make(map[uint64]bool)
	for _, j := range replay(t, p) {
		have[j.Seq] = true
	}
	lost := 0
	for _, seq := range durable {
		if !have[seq] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged jobs lost in the crash", lost, len(durable))
	}
	t.Logf("%d acknowledged jobs survived (%d stored)", len(durable), len(have))
}
