// Command gear is the Gear Gearman stack in one binary: the job server (a drop-in for gearmand), the
// client, the worker, the admin console and the benchmark.
//
// Invoked under the name "gearmand" it acts as "gear server", so it can replace gearmand in existing
// init scripts and harnesses.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gearhq/gear/server"
)

const usage = `usage: gear COMMAND [OPTIONS]

Commands:
  server     run the job server (gearmand-compatible options; gear server --help)
  admin      query or control a job server (gear admin --help)
  worker     serve functions: the built-in reverse and invoke, or a command (gear worker --help)
  supervise  keep worker programs (PHP, Perl, Python, any command) running, memory-capped and alerted
  client     submit a job and print its result (gear client --help)
  bench      load-test a job server (gear bench --help)
  version    print the version

First steps:
  gear server &                             # job server on 127.0.0.1:4730
  gear worker &                             # built-in functions reverse and invoke
  gear client reverse "reverse my text"     # prints: txet ym esrever
  gear client invoke status                 # the server's status table, via the worker
`

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	if base := filepath.Base(args[0]); base == "gearmand" {
		return runServer(base, args[1:])
	}
	if len(args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[1] {
	case "server":
		return runServer("gear server", args[2:])
	case "admin":
		return runAdmin(args[2:])
	case "client":
		return runClient(args[2:])
	case "worker":
		return runWorker(args[2:])
	case "supervise":
		return runSupervise(args[2:])
	case "bench":
		return runBench(args[2:])
	case "version", "--version":
		fmt.Println("gear", server.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "gear: unknown command %q\n\n%s", args[1], usage)
		return 2
	}
}
