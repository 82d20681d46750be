#!/usr/bin/env bash
# compare.sh: Gear's job server against Debian's gearmand, measured by `gear bench`.
#
# Builds gear into a temporary directory, then for every scenario runs ROUNDS rounds, each round
# against a fresh gear server (A) and a fresh gearmand (B), in turn A B A B..., with --server-pid so
# the server's CPU time and memory are sampled. Prints a table of medians. Every job of every run is
# verified; a failed verification is reported and makes the script exit 1.
#
# Environment:
#   ROUNDS=3          rounds per scenario (medians over them)
#   FULL=1            also: drain 1,000,000 jobs (+ memory with 1M queued jobs), 10,000 idle connections
#   GEARMAND=path     the gearmand binary (default /usr/sbin/gearmand)
#   GEAR_STORE=kind   gear's store; unset: --store memory (the same as gearmand's builtin queue)
#   BENCH_ARGS=...    extra arguments for every gear bench run (e.g. --timeout 30s)
#   KEEP=1            keep the temporary directory (gear binary, raw RESULT lines, logs)
#   GEAR_HTTP=1       run gear with --http, and a scraper reading its /metrics every second, as
#                     Prometheus would (the cost of observability; gearmand has none to compare)
#   ONLY=fg,fg1       run only these scenarios (the keys of the table below)
#   PERF=0            do not count the servers' system calls (by default counted with `perf stat`
#                     when perf is installed: apt-get install linux-perf)
#   PIN=1             run every server on CPU 0 and the load generator on the other CPUs (taskset):
#                     on a small VM the kernel otherwise sometimes stacks both on one CPU, and the
#                     same binary measures 35k or 55k drained jobs/s from run to run
#
# Both servers share the machine with the load generator; on a small machine the absolute numbers
# are bounded by it, the ratios are what to read.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
FULL=${FULL:-0}
GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
BENCH_ARGS=${BENCH_ARGS:-}
server_cpu=() bench_cpu=()
if [[ ${PIN:-0} == 1 ]]; then
	command -v taskset >/dev/null || { echo "compare.sh: PIN=1 needs taskset (util-linux)" >&2; exit 2; }
	server_cpu=(taskset -c 0)
	bench_cpu=(taskset -c "1-$(($(nproc) - 1))")
fi

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gear-compare.XXXXXX")
server_pid=""

scraper_pid=""
stop_server() {
	if [[ -n $scraper_pid ]]; then
		kill "$scraper_pid" 2>/dev/null || true
		wait "$scraper_pid" 2>/dev/null || true
		scraper_pid=""
	fi
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "${launcher_pid:-$server_pid}" 2>/dev/null || true
		while kill -0 "$server_pid" 2>/dev/null; do sleep 0.05; done
		server_pid="" launcher_pid=""
	fi
}
cleanup() {
	stop_server
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x $GEARMAND ]] || { echo "compare.sh: $GEARMAND not found (apt-get install gearman-job-server)" >&2; exit 2; }
echo "building gear..." >&2
(cd "$root" && go build -o "$tmp/gear" ./cmd/gear)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]]; then
	rev+="+changes" # built from a work tree that differs from the commit
fi
gear=$tmp/gear

# Idle connections need file descriptors in the servers and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

gear_args=()
gear_help=$("$gear" server --help 2>&1 || true) # --help may exit non-zero; grep -q would SIGPIPE it
if [[ -z ${GEAR_STORE:-} && $gear_help == *-store* ]]; then
	gear_args+=(--store memory)
fi

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-): no outgoing connection holds it
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# wait_port PORT LOG: waits for the server just started to listen.
wait_port() {
	local i
	for ((i = 0; i < 600; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "compare.sh: the server exited at start:" >&2
			sed 's/^/  /' "$2" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "compare.sh: the server is not listening on port $1 after 30s:" >&2
	sed 's/^/  /' "$2" >&2
	return 1
}

# The servers' system calls are counted by running each under `perf stat` (its threads inherit
# the counter); the count covers the server's whole life, a drain's prefill included.
use_perf=0
if [[ ${PERF:-1} != 0 ]] && command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, true >/dev/null 2>&1; then
	use_perf=1
fi
launcher_pid=""
# syscalls_of N: " syscalls=COUNT" of server start N once it has stopped ("" without perf).
syscalls_of() {
	[[ $use_perf == 1 ]] || return 0
	awk -F, '/raw_syscalls/ && $1 ~ /^[0-9]+$/ { print " syscalls=" $1 }' "$tmp/perf.$1" 2>/dev/null || true
}

# launched PID: the server started as PID, or under perf as its child.
launched() {
	if [[ $use_perf != 1 ]]; then
		echo "$1"
		return
	fi
	local i child
	for ((i = 0; i < 200; i++)); do
		child=$(pgrep -P "$1" | head -1 || true)
		[[ -n $child ]] && { echo "$child"; return; }
		sleep 0.01
	done
	echo "$1"
}

# start_server gear|gear-always|gearmand: starts a fresh server; sets server_pid and server_addr.
# gear-always is Gear with its durable store on, fsync before every acknowledgement, in a fresh
# data directory.
nstart=0
start_server() {
	local port
	port=$(free_port)
	nstart=$((nstart + 1))
	local log=$tmp/$1.$nstart.log
	local launch=("${server_cpu[@]}")
	if [[ $use_perf == 1 ]]; then
		launch+=(perf stat -x, -e raw_syscalls:sys_enter -o "$tmp/perf.$nstart" --)
	fi
	case $1 in
	gear)
		local extra=()
		if [[ -n ${GEAR_STORE:-} ]]; then
			extra=(--data-dir "$tmp/gear-data.$nstart")
		fi
		local http_port=""
		if [[ ${GEAR_HTTP:-0} == 1 ]]; then
			http_port=$(free_port)
			extra+=(--http "127.0.0.1:$http_port")
		fi
		"${launch[@]}" "$gear" server --listen "127.0.0.1:$port" --log-file none "${gear_args[@]}" "${extra[@]}" >"$log" 2>&1 &
		if [[ -n $http_port ]]; then
			local pid
			launcher_pid=$!
			pid=$(launched "$launcher_pid")
			(while kill -0 "$pid" 2>/dev/null; do
				curl -s -o /dev/null "http://127.0.0.1:$http_port/metrics" || true
				sleep 1
			done) &
			scraper_pid=$!
			server_pid=$pid
			server_addr=127.0.0.1:$port
			wait_port "$port" "$log"
			return
		fi
		;;
	gear-always)
		"${launch[@]}" "$gear" server --listen "127.0.0.1:$port" --log-file none --data-dir "$tmp/gear-data.$nstart" --sync always >"$log" 2>&1 &
		;;
	gearmand)
		"${launch[@]}" "$GEARMAND" -t 0 --listen 127.0.0.1 --port "$port" --log-file none -P "$tmp/gearmand.pid" >"$log" 2>&1 &
		;;
	esac
	launcher_pid=$!
	server_pid=$(launched "$launcher_pid")
	server_addr=127.0.0.1:$port
	wait_port "$port" "$log"
}

# Scenarios: key | label | gear bench arguments [| servers, default "gear gearmand"]. Counts keep the
# default run within about 10 minutes on 2 cores. "net" rows use the second load generator: a
# goroutine per connection on net.Conn, as most Go clients are.
scenarios=(
	"bg|background 8c|--scenario background --clients 8 --workers 4 --jobs 100000"
	"bgp32|background 8c pipe32|--scenario background --clients 8 --workers 4 --jobs 100000 --pipeline 32"
	"fg|foreground 8c/4w 64B|--scenario foreground --clients 8 --workers 4 --jobs 50000"
	"fgnet|foreground 8c/4w net|--scenario foreground --clients 8 --workers 4 --jobs 50000 --io net"
	"fg1|foreground 1c/1w|--scenario foreground --clients 1 --workers 1 --jobs 10000"
	"fg1net|foreground 1c/1w net|--scenario foreground --clients 1 --workers 1 --jobs 10000 --io net"
	"drain|drain 100k by 4w|--scenario drain --clients 8 --workers 4 --jobs 100000"
	"flow|flow 8c/4w|--scenario flow --clients 8 --workers 4 --jobs 100000"
	"flowp32|flow 8c pipe32/4w|--scenario flow --clients 8 --workers 4 --jobs 100000 --pipeline 32"
	"fg64k|foreground 64KiB 8c/4w|--scenario foreground --clients 8 --workers 4 --jobs 5000 --payload 65536"
	"fg2k|foreground 2000c/200w|--scenario foreground --clients 2000 --workers 200 --jobs 60000 --timeout 30s"
	"drain200|drain 100k by 200w|--scenario drain --clients 8 --workers 200 --jobs 100000 --timeout 30s"
	"durable|background 8c, durable|--scenario background --clients 8 --workers 4 --jobs 30000|gear gear-always"
)
if [[ $FULL == 1 ]]; then
	scenarios+=(
		"drain1m|drain 1M by 4w|--scenario drain --clients 8 --workers 4 --jobs 1000000 --timeout 60s"
		"idle|10k idle conns|--scenario idle --clients 10000 --timeout 60s"
	)
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
results=$tmp/results.txt
: >"$results"
failures=0
if [[ -n ${ONLY:-} ]]; then
	kept=()
	for entry in "${scenarios[@]}"; do
		[[ ",$ONLY," == *",${entry%%|*},"* ]] && kept+=("$entry")
	done
	((${#kept[@]} > 0)) || { echo "compare.sh: ONLY=$ONLY names no scenario" >&2; exit 2; }
	scenarios=("${kept[@]}")
fi
for entry in "${scenarios[@]}"; do
	IFS='|' read -r key label args servers <<<"$entry"
	for ((round = 1; round <= ROUNDS; round++)); do
		for srv in ${servers:-gear gearmand}; do
			start_server "$srv"
			# shellcheck disable=SC2086 # args are word lists on purpose
			if out=$("${bench_cpu[@]}" "$gear" bench --server "$server_addr" --server-pid "$server_pid" $args $BENCH_ARGS 2>"$tmp/bench.err"); then
				:
			else
				failures=$((failures + 1))
				echo "FAILED: $label against $srv (round $round):" >&2
				sed 's/^/  /' "$tmp/bench.err" >&2
			fi
			stop_server
			syscalls=$(syscalls_of "$nstart")
			line=$(grep '^RESULT ' <<<"$out" || true)
			[[ -n $line ]] && echo "$key $srv $line$syscalls" >>"$results"
			printf '%-24s round %d %-9s %s\n' "$label" "$round" "$srv" \
				"$(awk '{for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]~/^(jobs_per_sec|p99_us|cpu_sec|peak_rss_kib|server_switches|syscalls|errors)$/) printf "%s ", $i}}' <<<"$line$syscalls")" >&2
		done
	done
done

# median KEY SERVER FIELD: median of FIELD over the rounds ("na" when absent).
median() {
	awk -v k="$1" -v s="$2" -v f="$3" '
		$1 == k && $2 == s { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f && kv[2] != "na") print kv[2] } }' "$results" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# per_job KEY SERVER: median server CPU µs per job.
per_job() {
	awk -v k="$1" -v s="$2" '
		$1 == k && $2 == s { c = ""; j = ""; for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "cpu_sec") c = kv[2]; if (kv[1] == "jobs") j = kv[2] }
			if (c != "" && c != "na" && j > 0) print c * 1e6 / j }' "$results" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else printf "%.1f\n", v[int((NR + 1) / 2)] }'
}
# per_job_of KEY SERVER FIELD: median of FIELD per job ("na" when absent).
per_job_of() {
	awk -v k="$1" -v s="$2" -v f="$3" '
		$1 == k && $2 == s { c = ""; j = ""; for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) c = kv[2]; if (kv[1] == "jobs") j = kv[2] }
			if (c != "" && c != "na" && j > 0) print c / j }' "$results" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else printf "%.2f\n", v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b == 0) print "na"; else printf "%.2f\n", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { if (k == "na") print "na"; else printf "%.1f\n", k / 1024 }'; }

echo
echo "gear bench: Gear ($rev, ${gear_args[*]:-GEAR_STORE=${GEAR_STORE:-}}) vs gearmand $("$GEARMAND" --version 2>/dev/null | awk '/gearmand/ {print $2; exit}') -t 0"
echo "medians of $ROUNDS rounds, fresh servers per run; $(nproc) CPUs $([[ ${PIN:-0} == 1 ]] && echo "(server pinned to CPU 0, load generator to the rest)" || echo "shared by server and load generator");" \
	"load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "jobs/s ratio = gear/gearmand (>1: gear faster); p99 and cpu ratios = gear/gearmand (<1: gear better)"
echo "sc: the server's system calls per job (perf stat, whole run); cs: its context switches per job (timed phase)"
echo
printf '%-26s %10s %10s %6s | %9s %9s %6s | %8s %8s | %8s %8s %6s | %7s %7s | %7s %7s\n' \
	"scenario" "gear j/s" "gmd j/s" "ratio" "gear p99" "gmd p99" "ratio" "gear RSS" "gmd RSS" "gear cpu" "gmd cpu" "ratio" \
	"gear sc" "gmd sc" "gear cs" "gmd cs"
printf '%-26s %10s %10s %6s | %9s %9s %6s | %8s %8s | %8s %8s %6s | %7s %7s | %7s %7s\n' \
	"" "" "" "" "µs" "µs" "" "MiB peak" "MiB peak" "µs/job" "µs/job" "" "/job" "/job" "/job" "/job"
for entry in "${scenarios[@]}"; do
	IFS='|' read -r key label _ servers <<<"$entry"
	[[ $key == idle || -n $servers ]] && continue
	gj=$(median "$key" gear jobs_per_sec)
	mj=$(median "$key" gearmand jobs_per_sec)
	gp=$(median "$key" gear p99_us)
	mp=$(median "$key" gearmand p99_us)
	gr=$(median "$key" gear peak_rss_kib)
	mr=$(median "$key" gearmand peak_rss_kib)
	gc=$(per_job "$key" gear)
	mc=$(per_job "$key" gearmand)
	printf '%-26s %10s %10s %6s | %9s %9s %6s | %8s %8s | %8s %8s %6s | %7s %7s | %7s %7s\n' "$label" "$gj" "$mj" "$(ratio "$gj" "$mj")" \
		"$gp" "$mp" "$(ratio "$gp" "$mp")" "$(mib "$gr")" "$(mib "$mr")" "$gc" "$mc" "$(ratio "$gc" "$mc")" \
		"$(per_job_of "$key" gear syscalls)" "$(per_job_of "$key" gearmand syscalls)" \
		"$(per_job_of "$key" gear server_switches)" "$(per_job_of "$key" gearmand server_switches)"
done
echo
printf '%-40s %12s %12s %6s\n' "durable store (gear bench background 8c)" "sync always" "in memory" "ratio"
da=$(median durable gear-always jobs_per_sec)
dm=$(median durable gear jobs_per_sec)
printf '%-40s %12s %12s %6s\n' "jobs/s, Gear --sync always vs --store memory" "$da" "$dm" "$(ratio "$da" "$dm")"
if [[ $FULL == 1 ]]; then
	echo
	printf '%-40s %12s %12s %6s\n' "memory" "gear" "gearmand" "ratio"
	gl=$(median drain1m gear loaded_rss_kib)
	ml=$(median drain1m gearmand loaded_rss_kib)
	printf '%-40s %12s %12s %6s\n' "RSS with 1M queued 64 B jobs (MiB)" "$(mib "$gl")" "$(mib "$ml")" "$(ratio "$gl" "$ml")"
	ga=$(median drain1m gear after_rss_kib)
	ma=$(median drain1m gearmand after_rss_kib)
	printf '%-40s %12s %12s %6s\n' "RSS after draining them (MiB)" "$(mib "$ga")" "$(mib "$ma")" "$(ratio "$ga" "$ma")"
	gc=$(median idle gear rss_per_conn_b)
	mc=$(median idle gearmand rss_per_conn_b)
	printf '%-40s %12s %12s %6s\n' "RSS per idle connection, 10k (bytes)" "$gc" "$mc" "$(ratio "$gc" "$mc")"
fi
if ((failures > 0)); then
	echo
	echo "compare.sh: $failures runs FAILED verification or could not run (see above)"
	exit 1
fi
