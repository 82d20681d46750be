#!/usr/bin/env bash
# test.sh — the whole test suite: formatting, vet, every Go test with -race (unit, in-process server,
# cross-language interop against real third-party clients), a short run of each fuzz target and each
# benchmark so none of them rots. Installs its own test dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator can fail a run with
# "context deadline exceeded" as the time runs out (go.dev/issue/75804, fixed in Go 1.27), which
# happened to FuzzParseStore in a CI run. 60,000 executions take 2-20 s per target here.
FUZZTIME=${FUZZTIME:-60000x}

./scripts/install-test-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...
# The server's tests once more with a goroutine per connection instead of event loops (the path
# every non-Linux system takes, and --io-loops 0), and with two loops (peers served by different
# loops push to each other).
GEAR_TEST_IO_LOOPS=0 go test -race -count=1 -timeout 10m ./server
GEAR_TEST_IO_LOOPS=2 go test -race -count=1 -timeout 10m ./server
# The fleet's kill test at its full size (20,000 jobs, issue 17): under -race it runs 3,000.
go test -count=1 -timeout 10m -run '^TestFleet_KillAServer$' ./crashtest

echo "== fuzz ($FUZZTIME each)"
# Minimizing each new interesting input may take up to a minute by default, with no executions in
# between: FuzzParseStore spent 27 of 30 s that way and ended in "context deadline exceeded".
# -fuzzminimizetime 5x keeps the time for fuzzing (8,623 -> 109,279 executions in 20-30 s).
fuzzlog=$(mktemp)
trap 'rm -f "$fuzzlog"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $target"
    if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5x "$pkg" >"$fuzzlog" 2>&1; then
      tail -40 "$fuzzlog"
      # A crasher is saved under testdata/fuzz and fails the seed run again; a run that failed
      # without one (the fuzzing engine itself) gets one more chance, and says so.
      echo "!! $target failed; running it once more"
      if ! go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5x "$pkg" >"$fuzzlog" 2>&1; then
        tail -40 "$fuzzlog"
        exit 1
      fi
    fi
    tail -1 "$fuzzlog"
  done
done

echo "== benchmarks (brief)"
go test -run '^$' -bench . -benchtime 200x -count=1 ./... | grep -E '^(Benchmark|ok|FAIL|---)' 
echo "all tests passed"
