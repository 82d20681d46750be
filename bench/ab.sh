#!/usr/bin/env bash
# ab.sh: two gear servers, A and B, measured by `gear bench` in alternation (A B A B ...), one
# fresh server per run — for "did this change cost anything?" on a machine too noisy for the
# medians of compare.sh. Prints one line per run and the medians of each side.
#
#   bench/ab.sh A_GEAR B_GEAR ROUNDS [gear bench arguments...]
#
# Environment:
#   A_ARGS, B_ARGS   extra `gear server` arguments for each side (e.g. B_ARGS="--http 127.0.0.1:0")
#   SCRAPE=B         scrape side B's /metrics every second, as Prometheus would (needs B_HTTP_PORT)
#   B_HTTP_PORT      the port of B's --http (then B_ARGS gets --http 127.0.0.1:PORT added)
#
# Example (this change against its base, pipelined background submits):
#   bench/ab.sh /tmp/gear-base /tmp/gear-head 5 --scenario background --clients 8 --workers 4 \
#       --jobs 100000 --pipeline 32
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n '2,16p' "$0" >&2; exit 2; }
a=$1 b=$2 rounds=$3
shift 3
bench=$b # the load generator: the newer binary
results=$(mktemp)
trap 'rm -f "$results"' EXIT
free_port() {
	while :; do
		local p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
for ((r = 1; r <= rounds; r++)); do
	for side in A B; do
		bin=$a extra=${A_ARGS:-}
		if [[ $side == B ]]; then
			bin=$b extra=${B_ARGS:-}
			[[ -n ${B_HTTP_PORT:-} ]] && extra="$extra --http 127.0.0.1:$B_HTTP_PORT"
		fi
		port=$(free_port)
		# shellcheck disable=SC2086 # extra is a word list on purpose
		"$bin" server --store memory --port "$port" --log-file none $extra >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
		scraper=""
		if [[ ${SCRAPE:-} == "$side" && -n ${B_HTTP_PORT:-} ]]; then
			(while kill -0 "$pid" 2>/dev/null; do curl -s -o /dev/null "http://127.0.0.1:$B_HTTP_PORT/metrics" || true; sleep 1; done) &
			scraper=$!
		fi
		line=$("$bench" bench --server "127.0.0.1:$port" --server-pid "$pid" "$@" 2>/dev/null | grep '^RESULT ' || true)
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		if [[ -n $scraper ]]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
		field() { tr ' ' '\n' <<<"$line" | awk -F= -v k="$1" '$1 == k {print $2}'; }
		jps=$(field jobs_per_sec)
		cpu=$(field cpu_sec)
		echo "round $r $side jobs_per_sec=${jps:-?} cpu_sec=${cpu:-?}"
		echo "$side ${jps:-0} ${cpu:-0}" >>"$results"
	done
done
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for side in A B; do
	jobs=$(awk -v s="$side" '$1 == s {print $2}' "$results")
	cpus=$(awk -v s="$side" '$1 == s {print $3}' "$results")
	printf '%s: median %s jobs/s (%s..%s), median server CPU %s s\n' "$side" "$(median <<<"$jobs")" \
		"$(sort -n <<<"$jobs" | head -1)" "$(sort -n <<<"$jobs" | tail -1)" "$(median <<<"$cpus")"
done
