package main

// The memory-warning hooks of gear worker (--alert-command, --alert-url). The worker library only
// calls Guard.OnMemoryWarning; running commands and posting to URLs is this program's business.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// alertCommandHook returns a memory-warning hook that runs argv (no shell) with GEAR_WORKER_MEMORY
// and GEAR_WORKER_PID in its environment and its output on stderr. A failure is logged.
func alertCommandHook(argv []string, log *slog.Logger) func(uint64) {
	return func(used uint64) {
		if len(argv) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "GEAR_WORKER_MEMORY="+strconv.FormatUint(used, 10),
			"GEAR_WORKER_PID="+strconv.Itoa(os.Getpid()))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Error("alert command failed", "command", argv[0], "err", err)
		}
	}
}

// alertURLHook returns a memory-warning hook that POSTs a small JSON document to url. A failure,
// or an answer other than 2xx, is logged.
func alertURLHook(url string, log *slog.Logger) func(uint64) {
	return func(used uint64) {
		host, _ := os.Hostname()
		body := fmt.Sprintf(`{"event":"worker_memory_warning","bytes":%d,"pid":%d,"host":%q}`, used, os.Getpid(), host)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
		if err != nil {
			log.Error("alert URL failed", "url", url, "err", err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Error("alert URL failed", "url", url, "err", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			log.Error("alert URL failed", "url", url, "status", resp.Status)
		}
	}
}
