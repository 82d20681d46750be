package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGearmanCLI_Foreground runs foreground jobs from the `gearman` client through a
// `gearman -w -- rev` worker: data as an argument, on stdin, and one job per line (-n).
func TestGearmanCLI_Foreground(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman", "rev")
	g := startGear(t, nil)
	fn := prefix(t) + ".rev"
	start(t, nil, "gearman", g.gearman("-w", "-f", fn, "--", "rev")...)
	g.waitWorkers(t, 1, fn)

	tests := []struct {
		name  string
		stdin []byte
		args  []string
		want  string
	}{
		{"argument", nil, []string{"-f", fn, "hello"}, "olleh"},
		{"stdin", []byte("abc\n"), []string{"-f", fn}, "cba\n"},
		{"one job per line", []byte("ab\ncd\nef\n"), []string{"-n", "-f", fn}, "ba\ndc\nfe\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := run(t, tt.stdin, "gearman", g.gearman(tt.args...)...)
			if err != nil {
				t.Fatalf("gearman %s: %v (stderr %q)", strings.Join(tt.args, " "), err, errOut)
			}
			if out != tt.want {
				t.Errorf("gearman %s printed %q, want %q", strings.Join(tt.args, " "), out, tt.want)
			}
		})
	}
	g.waitStatus(t, fn, funcStatus{0, 0, 1})
}

// TestGearmanCLI_BackgroundRunsLater queues a background job while no worker exists and checks that a
// worker started afterwards runs it.
func TestGearmanCLI_BackgroundRunsLater(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman")
	g := startGear(t, nil)
	fn := prefix(t) + ".bg"
	if _, errOut, err := run(t, nil, "gearman", g.gearman("-b", "-f", fn, "token-42")...); err != nil {
		t.Fatalf("gearman -b: %v (stderr %q)", err, errOut)
	}
	g.waitStatus(t, fn, funcStatus{1, 0, 0})

	got := filepath.Join(t.TempDir(), "got")
	if _, errOut, err := run(t, nil, "gearman", g.gearman("-w", "-c", "1", "-f", fn, "--", "sh", "-c", `cat > "$0"`, got)...); err != nil {
		t.Fatalf("gearman -w -c 1: %v (stderr %q)", err, errOut)
	}
	if data, err := os.ReadFile(got); err != nil || string(data) != "token-42" {
		t.Errorf("the worker got %q (%v), want %q", data, err, "token-42")
	}
	g.waitIdle(t, fn)
}

// TestGearmanCLI_PriorityOrder queues low, normal and high background jobs with no worker, then one
// worker drains them: high before normal before low, first-in first-out within a priority.
func TestGearmanCLI_PriorityOrder(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman")
	g := startGear(t, nil)
	fn := prefix(t) + ".prio"
	submits := []struct{ flag, data string }{
		{"-L", "low1"}, {"", "normal1"}, {"-I", "high1"}, {"-L", "low2"},
		{"-I", "high2"}, {"", "normal2"}, {"-L", "low3"}, {"-I", "high3"},
	}
	for _, s := range submits {
		args := []string{"-b", "-f", fn, s.data}
		if s.flag != "" {
			args = append([]string{s.flag}, args...)
		}
		if _, errOut, err := run(t, nil, "gearman", g.gearman(args...)...); err != nil {
			t.Fatalf("gearman %s: %v (stderr %q)", strings.Join(args, " "), err, errOut)
		}
	}
	g.waitStatus(t, fn, funcStatus{len(submits), 0, 0})

	order := filepath.Join(t.TempDir(), "order")
	_, errOut, err := run(t, nil, "gearman", g.gearman("-w", "-c", "8", "-f", fn, "--",
		"sh", "-c", `{ cat; echo; } >> "$0"`, order)...)
	if err != nil {
		t.Fatalf("gearman -w -c 8: %v (stderr %q)", err, errOut)
	}
	want := []string{"high1", "high2", "high3", "normal1", "normal2", "low1", "low2", "low3"}
	if got := readLines(t, order); !slices.Equal(got, want) {
		t.Errorf("worker ran %q, want %q", got, want)
	}
	g.waitIdle(t, fn)
}

// TestGearmanCLI_UniqueCoalesce runs two foreground clients with the same unique id while the job
// runs: the worker runs it once and both clients get its result.
func TestGearmanCLI_UniqueCoalesce(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman")
	g := startGear(t, nil)
	fn := prefix(t) + ".slow"
	dir := t.TempDir()
	runs, gate := filepath.Join(dir, "runs"), filepath.Join(dir, "gate")
	// The worker notes each job, then holds it until the gate file exists.
	start(t, nil, "gearman", g.gearman("-w", "-f", fn, "--", "sh", "-c",
		`{ cat; echo; } >> "$0"; while [ ! -e "$1" ]; do sleep 0.01; done; printf done`, runs, gate)...)
	g.waitWorkers(t, 1, fn)

	const unique = "coalesce-me"
	first := start(t, nil, "gearman", g.gearman("-u", unique, "-f", fn, "A")...)
	waitFor(t, "the worker to start the job", func() (bool, string) {
		lines := readLines(t, runs)
		return len(lines) > 0, strings.Join(lines, ",")
	})
	second := start(t, nil, "gearman", g.gearman("-u", unique, "-f", fn, "B")...)
	waitFor(t, "both clients to wait on one job", func() (bool, string) {
		known, running, clients := g.uniqueStatus(t, unique)
		return known && running && clients == 2, fmt.Sprintf("known=%v running=%v clients=%d", known, running, clients)
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*proc{"first": first, "second": second} {
		if err := c.wait(t); err != nil {
			t.Errorf("%s client: %v (stderr %q)", name, err, c.stderr.String())
		}
		if got := c.stdout.String(); got != "done" {
			t.Errorf("%s client printed %q, want %q", name, got, "done")
		}
	}
	if got := readLines(t, runs); !slices.Equal(got, []string{"A"}) {
		t.Errorf("worker ran %q, want one run with the first client's data [A]", got)
	}
	g.waitStatus(t, fn, funcStatus{0, 0, 1})
}

// TestGearmanCLI_LargePayload sends 1 MiB of binary data through a worker that echoes it back.
func TestGearmanCLI_LargePayload(t *testing.T) {
	t.Parallel()
	needTools(t, "gearman")
	g := startGear(t, nil)
	fn := prefix(t) + ".echo"
	// The CLI worker writes the whole job to its command's stdin before it reads the command's
	// stdout, so the command must buffer everything before it answers, or both block on full pipes.
	buf := filepath.Join(t.TempDir(), "buf")
	start(t, nil, "gearman", g.gearman("-w", "-f", fn, "--", "sh", "-c", `cat > "$0" && cat "$0"`, buf)...)
	g.waitWorkers(t, 1, fn)

	payload := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{'g', 'e', 'a', 'r'})
	rng.Read(payload)
	p := start(t, payload, "gearman", g.gearman("-f", fn)...)
	if err := p.wait(t); err != nil {
		t.Fatalf("gearman client: %v (stderr %q)", err, p.stderr.String())
	}
	if got := p.stdout.Bytes(); !bytes.Equal(got, payload) {
		t.Errorf("got %d bytes back, want the %d sent unchanged (first difference at %d)",
			len(got), len(payload), firstDiff(got, payload))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
