#!/usr/bin/env bash
# pgfleet.sh: Gear on PostgreSQL measured by `gear bench` (issue 17): against Gear on Pebble, as a
# fleet of three servers, against River's own benchmark on the same database server, and the
# figures to size a fleet by (database commits and WAL per job, adoption time against jobs owned).
#
# Builds gear into a temporary directory and starts a throwaway PostgreSQL cluster there (the newest
# of Debian's /usr/lib/postgresql/*/bin; as user nobody when run as root; its unix socket in that
# directory and a free port on 127.0.0.1; initdb's defaults, as Debian ships them: fsync,
# synchronous_commit and full_page_writes on, shared_buffers 128MB). Every Gear server runs with
# --sync always and a fresh database (or Pebble directory). Then, for ROUNDS rounds:
#
#   speed   one server on PostgreSQL, then one on Pebble, alternating: background submits by 32
#           clients with one submit in flight each and by 8 clients with 32 in flight each (timed:
#           submit -> JOB_CREATED; then 4 workers drain them, so "end to end" is the jobs over
#           submit time + drain time), a drain of DRAIN_JOBS pre-filled jobs by 4 workers, and
#           flow: 8 clients x 32 in flight submit while 4 workers run the jobs (timed from the first
#           submit to the last job run: the shape of River's --duration run);
#   fleet   three servers on one database (handle prefixes H:f1..H:f3), three gear bench processes
#           at once, one per server, each with the arguments of the single-server row: the fleet's
#           jobs/s is all their jobs over the slowest one's time (not the sum of their rates);
#   river   `river migrate-up` and `river bench` on a database of its own on the same cluster:
#           `--num-total-jobs RIVER_JOBS` (insert them, then time working them down: the shape of
#           the drain row) and `--duration RIVER_DURATION` (insert and work at once: the flow row);
#   sizing  one server on PostgreSQL, its function paused (submits go on, no worker gets a job):
#           32 clients x 1 in flight, then 8 x 32, submit SIZING_JOBS jobs at full speed; the
#           database's commits (transaction ids assigned: pg_snapshot_xmax(pg_current_snapshot()))
#           and WAL (pg_current_wal_lsn) are read before and after the submits, and again once the
#           function is resumed and 4 workers drained the jobs (per second: over the submit phase,
#           and from the resume to an empty queue; the resume wakes a sleeping worker per queued
#           job); xact_commit over the server's life is shown as a cross-check;
#   adopt   for each N of ADOPT_SIZES: server A with N queued background jobs (paused, no worker)
#           and server B, both --lease-ttl LEASE_TTL; kill -9 A; B's log line of the adoption gives
#           when it happened and how long its transaction took (tx=) and the hand-over to memory
#           (took=): lease wait = the adoption's start - the kill. B's `status` must show the N jobs.
#
# Prints one line per run on stderr, then the medians: a table of scenario, Gear on PostgreSQL, what
# it is compared with, its figure and the ratio; then the sizing figures. Every gear bench run
# verifies every job; a failed run is reported and makes the script exit 1.
#
# Environment:
#   ROUNDS=3             rounds (medians over them)
#   ONLY=speed,fleet,... run only these parts: speed, fleet, river, sizing, adopt (default all)
#   JOBS=50000           jobs per background submit run (per bench process in the fleet)
#   DRAIN_JOBS=100000    jobs of the drain row
#   SIZING_JOBS=100000   jobs of the sizing run
#   ADOPT_SIZES="1000 10000 100000"  jobs the killed server owns, one adoption each per round
#   LEASE_TTL=5          --lease-ttl of the adoption runs, seconds (an adoption must finish within
#                        the TTL: with 2 s, 100,000 jobs took about 2 s here and 200,000 never made it)
#   PG_BIN=dir           PostgreSQL's programs (default: the newest /usr/lib/postgresql/*/bin)
#   PG_SETTINGS="-c fsync=off ..."  extra postgres settings (default none: Debian's defaults)
#   RIVER=path           the river CLI to run; unset: `go install RIVER_MODULE@RIVER_VERSION` into
#                        the temporary directory, and if that fails River is skipped (the error is
#                        printed); RIVER=skip skips it
#   RIVER_MODULE=github.com/riverqueue/river/cmd/river  RIVER_VERSION=v0.51.2
#   RIVER_JOBS=100000    river bench --num-total-jobs
#   RIVER_DURATION=20s   river bench --duration
#   BENCH_ARGS=...       extra arguments for every gear bench run
#   KEEP=1               keep the temporary directory (binaries, logs, raw results)
#
# The servers, PostgreSQL and the load generators share the machine: on a small machine the
# figures are bounded by it and move between rounds and runs; the ratios are what to read.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-speed,fleet,river,sizing,adopt}
JOBS=${JOBS:-50000}
DRAIN_JOBS=${DRAIN_JOBS:-100000}
SIZING_JOBS=${SIZING_JOBS:-100000}
ADOPT_SIZES=${ADOPT_SIZES:-1000 10000 100000}
LEASE_TTL=${LEASE_TTL:-5}
PG_SETTINGS=${PG_SETTINGS:-}
RIVER_MODULE=${RIVER_MODULE:-github.com/riverqueue/river/cmd/river}
RIVER_VERSION=${RIVER_VERSION:-v0.51.2}
RIVER_JOBS=${RIVER_JOBS:-100000}
RIVER_DURATION=${RIVER_DURATION:-20s}
BENCH_ARGS=${BENCH_ARGS:-}

want() { [[ ",$ONLY," == *",$1,"* ]]; }
say() { echo "pgfleet.sh: $*" >&2; }

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gear-pgfleet.XXXXXX")
chmod 755 "$tmp"
pgdir=$tmp/pg
pg_pid=""
servers=() # PIDs of the gear servers running
bg_pids=() # other background processes of ours (gear bench)

stop_servers() {
	local p
	for p in "${bg_pids[@]}" "${servers[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${bg_pids[@]}" "${servers[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	servers=() bg_pids=()
}
cleanup() {
	stop_servers
	if [[ -n $pg_pid ]]; then
		as_pg "$PG_BIN/pg_ctl" stop -D "$pgdir/data" -m fast -w >/dev/null 2>&1 || kill "$pg_pid" 2>/dev/null || true
		wait "$pg_pid" 2>/dev/null || true
	fi
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# as_pg CMD...: runs CMD as the cluster's user (nobody when we are root: PostgreSQL refuses root).
as_pg() {
	if [[ $(id -u) == 0 ]]; then
		setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- "$@"
	else
		"$@"
	fi
}

if [[ -z ${PG_BIN:-} ]]; then
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n | tail -1 || true)
fi
[[ -x ${PG_BIN:-}/initdb ]] || { say "no PostgreSQL in /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)"; exit 2; }
command -v psql >/dev/null || { say "psql not found (apt-get install postgresql-client)"; exit 2; }

say "building gear..."
(cd "$root" && go build -o "$tmp/gear" ./cmd/gear)
gear=$tmp/gear
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]]; then
	rev+="+changes"
fi

# free_port: a port nobody listens on, below the ephemeral range (where the kernel picks the local
# ports of outgoing connections, which a listener cannot bind either).
eph_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % (eph_low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# --- PostgreSQL ---------------------------------------------------------------------------------
mkdir -p "$pgdir"
[[ $(id -u) == 0 ]] && chown nobody "$pgdir"
say "starting PostgreSQL ($PG_BIN)..."
as_pg "$PG_BIN/initdb" -D "$pgdir/data" -U gear -A trust -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log" >&2; exit 1; }
pg_port=$(free_port)
# shellcheck disable=SC2086 # PG_SETTINGS is a word list on purpose
as_pg "$PG_BIN/postgres" -D "$pgdir/data" -p "$pg_port" -k "$pgdir" -c listen_addresses=127.0.0.1 \
	-c logging_collector=off $PG_SETTINGS >"$pgdir/postgres.log" 2>&1 &
pg_pid=$!
for ((i = 0; ; i++)); do
	if psql -h "$pgdir" -p "$pg_port" -U gear -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$pg_pid" 2>/dev/null || ((i > 600)); then
		say "PostgreSQL did not start:"
		sed 's/^/  /' "$pgdir/postgres.log" >&2
		pg_pid=""
		exit 1
	fi
	sleep 0.1
done
pg_version=$(psql -h "$pgdir" -p "$pg_port" -U gear -d postgres -Atqc 'SHOW server_version' | awk '{print $1}')
pg_conf=$(psql -h "$pgdir" -p "$pg_port" -U gear -d postgres -Atqc \
	"SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
	 WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size', 'wal_level')")

# sql DB QUERY: one query's rows, unaligned.
sql() { psql -h "$pgdir" -p "$pg_port" -U gear -d "$1" -Atqc "$2"; }
ndb=0
# new_db: creates a fresh database and prints its name.
new_db() {
	ndb=$((ndb + 1))
	sql postgres "CREATE DATABASE bench$ndb" >/dev/null
	echo "bench$ndb"
}
drop_db() { sql postgres "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; }
db_url() { echo "postgres://gear@/$1?host=$pgdir&port=$pg_port&sslmode=disable"; }

# --- gear servers -------------------------------------------------------------------------------
nsrv=0
# start_gear NAME ARGS...: starts a gear server with ARGS; sets srv_pid, srv_port, srv_log. A port
# taken between its choice and the bind is tried again with another.
start_gear() {
	local name=$1 try
	shift
	for ((try = 0; try < 5; try++)); do
		start_gear1 "$name" "$@" && return 0
		grep -q 'address already in use' "$srv_log.out" 2>/dev/null || return 1
	done
	return 1
}
start_gear1() {
	local name=$1
	shift
	nsrv=$((nsrv + 1))
	srv_port=$(free_port)
	srv_log=$tmp/$name.$nsrv.log
	"$gear" server --listen "127.0.0.1:$srv_port" --log-file "$srv_log" --sync always "$@" >"$srv_log.out" 2>&1 &
	srv_pid=$!
	servers+=("$srv_pid")
	local i
	for ((i = 0; i < 600; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$srv_port") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$srv_pid" 2>/dev/null; then
			wait "$srv_pid" 2>/dev/null || true
			unset 'servers[-1]'
			grep -q 'address already in use' "$srv_log.out" 2>/dev/null && return 1
			say "gear server $name exited at start:"
			cat "$srv_log" "$srv_log.out" 2>/dev/null | sed 's/^/  /' >&2
			return 1
		fi
		sleep 0.05
	done
	say "gear server $name is not listening after 30s:"
	sed 's/^/  /' "$srv_log" >&2
	return 1
}
start_pg_gear() { # NAME DB PREFIX [ARGS...]
	local name=$1 db=$2 prefix=$3
	shift 3
	start_gear "$name" --store postgres --postgres-url "$(db_url "$db")" --job-handle-prefix "$prefix" "$@"
}

# admin PORT LINE: one admin line to a server; prints its answer up to "." (or the one-line answer).
admin() {
	local line
	exec 4<>"/dev/tcp/127.0.0.1/$1"
	printf '%s\n' "$2" >&4
	while IFS= read -r -t 10 line <&4; do
		line=${line%$'\r'}
		[[ $line == . ]] && break
		echo "$line"
		[[ $line == OK* || $line == ERR* ]] && break
	done
	exec 4>&-
}
# queued PORT FUNCTION: the jobs queued for FUNCTION on the server (0 when it has none).
queued() { admin "$1" status | awk -F'\t' -v f="$2" '$1 == f { n = $2 } END { print n + 0 }'; }
# wait_queued PORT FUNCTION N SECONDS: waits until the server has N jobs of FUNCTION queued.
wait_queued() {
	local deadline=$((SECONDS + $4))
	while (($(queued "$1" "$2") < $3)); do
		((SECONDS < deadline)) || { say "$3 jobs of $2 not queued on port $1 after $4 s"; return 1; }
		sleep 0.2 # a poll costs a connection and an awk: keep it off the measured machine
	done
}

results=$tmp/results.txt
: >"$results"
failures=0
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# bench OUT PORT PID ARGS...: runs gear bench; its RESULT line goes to OUT (empty if it failed).
bench() {
	local out=$1 port=$2 pid=$3
	shift 3
	# shellcheck disable=SC2086 # BENCH_ARGS is a word list on purpose
	if "$gear" bench --server "127.0.0.1:$port" --server-pid "$pid" "$@" $BENCH_ARGS >"$out.raw" 2>"$out.err"; then
		grep '^RESULT ' "$out.raw" >"$out" || true
	else
		: >"$out"
		return 1
	fi
}
bench_failed() { # LABEL OUT
	failures=$((failures + 1))
	say "FAILED: $1:"
	sed 's/^/  /' "$2.err" >&2
}
# e2e LINE: jobs over submit time + drain time of a background RESULT line.
e2e() {
	awk -v j="$(field "$1" jobs_per_sec)" -v d="$(field "$1" drain_jobs_per_sec)" \
		'BEGIN { if (j > 0 && d > 0) printf "%.0f\n", 1 / (1 / j + 1 / d); else print "na" }'
}
record() { echo "$*" >>"$results"; }

# Speed scenarios: key | label | gear bench arguments.
speed=(
	"bg32|background 32c x1|--scenario background --clients 32 --workers 4 --jobs $JOBS --pipeline 1"
	"bg8p32|background 8c x32|--scenario background --clients 8 --workers 4 --jobs $JOBS --pipeline 32"
	"drain|drain ${DRAIN_JOBS} by 4w|--scenario drain --clients 8 --workers 4 --jobs $DRAIN_JOBS --timeout 60s"
	"flow|flow 8c x32 (submit and work at once)|--scenario flow --clients 8 --workers 4 --jobs $JOBS --pipeline 32"
)

# run_speed ROUND: each scenario on PostgreSQL then on Pebble, each on a fresh server.
run_speed() {
	local entry key label args store db out line
	for entry in "${speed[@]}"; do
		IFS='|' read -r key label args <<<"$entry"
		for store in pg pebble; do
			if [[ $store == pg ]]; then
				db=$(new_db)
				start_pg_gear "$key-pg" "$db" H:s1
			else
				db=""
				start_gear "$key-pebble" --store pebble --data-dir "$tmp/pebble"
			fi
			out=$tmp/out.$key.$store.$1
			# shellcheck disable=SC2086 # args is a word list on purpose
			bench "$out" "$srv_port" "$srv_pid" $args || bench_failed "$label on $store (round $1)" "$out"
			stop_servers
			[[ -n $db ]] && drop_db "$db"
			rm -rf "$tmp/pebble"
			line=$(cat "$out")
			[[ -n $line ]] || continue
			record "$key $store jobs_per_sec=$(field "$line" jobs_per_sec) e2e=$(e2e "$line") p50_us=$(field "$line" p50_us)"
			printf '%-24s round %d %-7s jobs/s %8s  end to end %8s  p50 %8s µs\n' "$label" "$1" "$store" \
				"$(field "$line" jobs_per_sec)" "$(e2e "$line")" "$(field "$line" p50_us)" >&2
		done
	done
}

# run_fleet ROUND: three servers on one database, one gear bench per server at once.
run_fleet() {
	local entry key label args db i out lines ports=() pids=() bpids=() ok
	for entry in "${speed[@]}"; do
		IFS='|' read -r key label args <<<"$entry"
		[[ $key == drain ]] && continue # three prefills end apart: their drains would not overlap
		db=$(new_db)
		ports=() pids=()
		for i in 1 2 3; do
			start_pg_gear "fleet$i" "$db" "H:f$i"
			ports+=("$srv_port") pids+=("$srv_pid")
		done
		bpids=()
		for i in 0 1 2; do
			# shellcheck disable=SC2086 # args is a word list on purpose
			bench "$tmp/out.fleet.$key.$1.$i" "${ports[i]}" "${pids[i]}" $args &
			bpids+=($!)
		done
		ok=1
		for i in 0 1 2; do
			if ! wait "${bpids[i]}"; then
				ok=0
				bench_failed "fleet $label, server $((i + 1)) (round $1)" "$tmp/out.fleet.$key.$1.$i"
			fi
		done
		stop_servers
		drop_db "$db"
		((ok)) || continue
		lines=$(cat "$tmp/out.fleet.$key.$1".[012])
		# all jobs over the slowest submit phase; end to end: over the slowest submit + drain
		read -r fj fe < <(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			n += v["jobs"]; s = v["jobs"] / v["jobs_per_sec"]; if (s > ms) ms = s
			t = s; if (v["drain_jobs_per_sec"] > 0) t += v["jobs"] / v["drain_jobs_per_sec"]; if (t > mt) mt = t }
			END { printf "%.0f %.0f\n", n / ms, n / mt }' <<<"$lines")
		record "$key fleet jobs_per_sec=$fj e2e=$fe"
		printf '%-24s round %d %-7s jobs/s %8s  end to end %8s  (3 servers, 3 gear bench)\n' "$label" "$1" fleet "$fj" "$fe" >&2
	done
}

# --- River --------------------------------------------------------------------------------------
river=""
river_why=""
river_setup() {
	if [[ ${RIVER:-} == skip ]]; then
		river_why="RIVER=skip"
		return
	fi
	if [[ -n ${RIVER:-} ]]; then
		[[ -x $RIVER ]] || { river_why="RIVER=$RIVER is not an executable"; return; }
		river=$RIVER
		return
	fi
	say "installing River's CLI: go install $RIVER_MODULE@$RIVER_VERSION ..."
	if GOBIN=$tmp/bin go install "$RIVER_MODULE@$RIVER_VERSION" >"$tmp/river-install.log" 2>&1; then
		river=$tmp/bin/river
	else
		river_why="go install $RIVER_MODULE@$RIVER_VERSION failed: $(tail -1 "$tmp/river-install.log")"
	fi
}
# run_river ROUND: river bench, burn-down of RIVER_JOBS and continuous for RIVER_DURATION.
run_river() {
	[[ -n $river ]] || return 0
	local db url out mode jps
	for mode in n dur; do
		db=$(new_db)
		url=$(db_url "$db")
		out=$tmp/river.$mode.$1
		if ! "$river" migrate-up --database-url "$url" >"$out.migrate" 2>&1; then
			failures=$((failures + 1))
			say "FAILED: river migrate-up (round $1):"
			sed 's/^/  /' "$out.migrate" >&2
			drop_db "$db"
			continue
		fi
		local args=(--num-total-jobs "$RIVER_JOBS")
		[[ $mode == dur ]] && args=(--duration "$RIVER_DURATION")
		"$river" bench --database-url "$url" "${args[@]}" >"$out" 2>&1 || true
		drop_db "$db"
		# bench: total jobs worked [ N ], total jobs inserted [ N ], overall job/sec [ X ], running D
		jps=$(sed -n 's/.*overall job\/sec \[ *\([0-9.]*\) *\].*/\1/p' "$out" | tail -1)
		if [[ -z $jps ]]; then
			failures=$((failures + 1))
			say "FAILED: river bench ${args[*]} (round $1) printed no overall job/sec:"
			tail -5 "$out" | sed 's/^/  /' >&2
			continue
		fi
		record "river-$mode river jobs_per_sec=$jps"
		printf '%-24s round %d %-7s jobs/s %8.0f  (%s)\n' "river bench" "$1" river "$jps" "${args[*]}" >&2
	done
}

# --- sizing -------------------------------------------------------------------------------------
# pg_counters DB: "transactions wal_bytes": the transaction ids assigned so far (one per
# transaction that wrote: each of a server's batches, each lease renewal) and the WAL position,
# both of the whole cluster and current at once. pg_stat_database.xact_commit is no good for a
# phase of a few seconds: a backend reports its counts at most once a second, and when it goes idle
# within that second, ten seconds later; it is read only over a server's whole life (its backends
# report when they exit), as a cross-check.
pg_counters() {
	sql "$1" "SELECT pg_snapshot_xmax(pg_current_snapshot()), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint" | tr '|' ' '
}
pg_xact_commit() { sql "$1" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
# sizing_shapes: key | label | clients | in flight per client.
sizing_shapes=(
	"z32|32c x1|32|1"
	"z8p32|8c x32|8|32"
)
# run_sizing ROUND: per shape, a fresh server submits SIZING_JOBS jobs of a paused function (the
# database's counters read before and after), then the function is resumed and 4 workers drain
# them (the counters read again once the server's queue is empty).
run_sizing() {
	local entry key label clients pipeline db fn out c0 w0 c1 w1 c2 w2 cs ce ks ke line bpid tr te
	for entry in "${sizing_shapes[@]}"; do
		IFS='|' read -r key label clients pipeline <<<"$entry"
		db=$(new_db)
		fn=gear_sizing_${key}_$1
		ks=$(pg_xact_commit "$db")
		read -r cs _ < <(pg_counters "$db")
		start_pg_gear sizing "$db" H:z1
		[[ $(admin "$srv_port" "pause $fn") == OK* ]] || { say "pause $fn failed"; return 1; }
		read -r c0 w0 < <(pg_counters "$db")
		out=$tmp/out.sizing.$key.$1
		bench "$out" "$srv_port" "$srv_pid" --scenario background --clients "$clients" --workers 4 \
			--pipeline "$pipeline" --jobs "$SIZING_JOBS" --function "$fn" --timeout 120s &
		bpid=$!
		bg_pids+=("$bpid")
		wait_queued "$srv_port" "$fn" "$SIZING_JOBS" 300 || true
		read -r c1 w1 < <(pg_counters "$db")
		tr=$(date +%s.%N)
		admin "$srv_port" "resume $fn" >/dev/null
		while (($(queued "$srv_port" "$fn") > 0)) && kill -0 "$bpid" 2>/dev/null; do
			sleep 0.1
		done
		te=$(date +%s.%N)
		sleep 0.2 # the last removals' batch
		read -r c2 w2 < <(pg_counters "$db")
		if ! wait "$bpid"; then
			bench_failed "sizing $label (round $1)" "$out"
			stop_servers
			drop_db "$db"
			continue
		fi
		bg_pids=()
		stop_servers
		sleep 0.5 # the server's backends report their counts as they exit
		read -r ce _ < <(pg_counters "$db")
		ke=$(pg_xact_commit "$db")
		drop_db "$db"
		line=$(cat "$out")
		record "$(awk -v k="$key" -v n="$SIZING_JOBS" -v s="$(field "$line" elapsed_sec)" -v ds="$(awk -v a="$tr" -v b="$te" 'BEGIN { print b - a }')" \
			-v c0="$c0" -v c1="$c1" -v c2="$c2" -v w0="$w0" -v w1="$w1" -v w2="$w2" -v j="$(field "$line" jobs_per_sec)" \
			-v cs="$cs" -v ce="$ce" -v ks="$ks" -v ke="$ke" 'BEGIN {
			printf "%s pg jobs_per_sec=%s commits_per_sec=%.0f commits_per_1000=%.1f wal_per_1000=%.0f", k, j, (c1 - c0) / s, (c1 - c0) * 1000 / n, (w1 - w0) * 1000 / n
			printf " drain_jobs_per_sec=%.0f drain_commits_per_sec=%.0f drain_commits_per_1000=%.1f drain_wal_per_1000=%.0f", n / ds, (c2 - c1) / ds, (c2 - c1) * 1000 / n, (w2 - w1) * 1000 / n
			printf " life_tx_per_1000=%.1f life_xact_commit_per_1000=%.1f\n", (ce - cs) * 1000 / n, (ke - ks) * 1000 / n }')"
		printf '%-24s round %d %-7s %s\n' "sizing $label" "$1" pg "$(tail -1 "$results" | cut -d' ' -f3-)" >&2
	done
}

# --- adoption -----------------------------------------------------------------------------------
# secs DURATION: a Go duration (1.5s, 35ms, 1m2.5s) in seconds.
secs() {
	awk -v d="$1" 'BEGIN { t = 0
		while (match(d, /^[0-9.]+(h|ms|µs|us|ns|m|s)/)) {
			tok = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
			match(tok, /[a-zµ]+$/); u = substr(tok, RSTART); v = substr(tok, 1, RSTART - 1) + 0
			t += v * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : u == "ms" ? 1e-3 : u == "ns" ? 1e-9 : 1e-6)
		}
		printf "%.3f\n", t }'
}
run_adopt() {
	local n db fn pa pb apid bpid logb out killed line t took tx got deadline
	for n in $ADOPT_SIZES; do
		db=$(new_db)
		fn=gear_adopt_$n
		start_pg_gear adoptB "$db" H:b --lease-ttl "$LEASE_TTL"
		pb=$srv_port logb=$srv_log
		start_pg_gear adoptA "$db" H:a --lease-ttl "$LEASE_TTL"
		pa=$srv_port apid=$srv_pid
		admin "$pa" "pause $fn" >/dev/null
		out=$tmp/out.adopt.$n.$1
		"$gear" bench --server "127.0.0.1:$pa" --scenario background --clients 8 --workers 1 --pipeline 32 \
			--jobs "$n" --function "$fn" --timeout 600s >/dev/null 2>"$out.err" &
		bpid=$!
		bg_pids+=("$bpid")
		if ! wait_queued "$pa" "$fn" "$n" 300; then
			failures=$((failures + 1))
			stop_servers
			drop_db "$db"
			continue
		fi
		kill "$bpid" 2>/dev/null || true
		wait "$bpid" 2>/dev/null || true
		bg_pids=()
		killed=$(date +%s.%N)
		kill -9 "$apid"
		wait "$apid" 2>/dev/null || true
		line="" deadline=$((SECONDS + 120))
		while ((SECONDS < deadline)); do
			line=$(grep -a 'msg="adopted the jobs of a server whose lease lapsed" from=H:a ' "$logb" | tail -1 || true)
			[[ -n $line ]] && break
			sleep 0.1 # the log line's own time is what counts
		done
		got=$(queued "$pb" "$fn")
		stop_servers
		drop_db "$db"
		if [[ -z $line || $got != "$n" ]]; then
			failures=$((failures + 1))
			say "FAILED: adoption of $n jobs (round $1): adopted line: ${line:-none}; queued on B: $got"
			grep -a 'adoption failed' "$logb" | tail -3 | sed 's/^/  /' >&2 || true
			continue
		fi
		t=$(date -d "$(field "$line" time)" +%s.%N)
		took=$(secs "$(field "$line" took)")
		tx=$(secs "$(field "$line" tx)")
		record "$(awk -v n="$n" -v k="$killed" -v t="$t" -v took="$took" -v tx="$tx" 'BEGIN {
			printf "adopt%d b total=%.3f lease_wait=%.3f took=%.3f tx=%.3f\n", n, t - k, t - took - k, took, tx }')"
		printf '%-24s round %d %-7s %s\n' "adoption of $n" "$1" B "$(tail -1 "$results" | cut -d' ' -f3-)" >&2
	done
}

# --- the rounds ---------------------------------------------------------------------------------
want river && river_setup
if want river && [[ -z $river ]]; then
	say "River skipped: $river_why"
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
started=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
	want speed && run_speed "$round"
	want fleet && run_fleet "$round"
	want river && run_river "$round"
	want sizing && run_sizing "$round"
	want adopt && run_adopt "$round"
done

# median KEY SIDE FIELD: median of FIELD over the rounds ("na" when absent).
median() {
	awk -v k="$1" -v s="$2" -v f="$3" '
		$1 == k && $2 == s { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f && kv[2] != "na") print kv[2] } }' "$results" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "na"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b == 0) print "na"; else printf "%.2f\n", a / b }'; }
num() { awk -v v="$1" 'BEGIN { if (v == "na") print "na"; else printf "%.0f\n", v }'; }

echo
echo "pgfleet.sh: Gear $rev on PostgreSQL $pg_version ($pg_conf${PG_SETTINGS:+; $PG_SETTINGS}), unix socket, --sync always"
echo "medians of $ROUNDS rounds, fresh servers and databases per run; $(nproc) CPUs shared by PostgreSQL, the servers" \
	"and the load generators; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null); $((SECONDS - started)) s"
if want river; then
	if [[ -n $river ]]; then
		echo "River: $river ($("$river" version 2>/dev/null | head -1 || true)), river bench on a database of the same cluster"
	else
		echo "River: skipped ($river_why)"
	fi
fi
echo
printf '%-46s %10s  %-30s %10s %6s\n' "scenario (jobs/s)" "Gear/PG" "compared with" "its jobs/s" "ratio"
row() { printf '%-46s %10s  %-30s %10s %6s\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")"; }
if want speed; then
	for entry in "${speed[@]}"; do
		IFS='|' read -r key label _ <<<"$entry"
		row "$label" "$(num "$(median "$key" pg jobs_per_sec)")" "Gear on Pebble" "$(num "$(median "$key" pebble jobs_per_sec)")"
		[[ $key == drain || $key == flow ]] && continue # timed to the last job run already
		row "$label, end to end" "$(num "$(median "$key" pg e2e)")" "Gear on Pebble" "$(num "$(median "$key" pebble e2e)")"
	done
fi
if want fleet; then
	for entry in "${speed[@]}"; do
		IFS='|' read -r key label _ <<<"$entry"
		[[ $key == drain ]] && continue
		row "fleet of 3: 3 x $label" "$(num "$(median "$key" fleet jobs_per_sec)")" "one server on PG" "$(num "$(median "$key" pg jobs_per_sec)")"
		[[ $key == flow ]] && continue
		row "fleet of 3: 3 x $label, end to end" "$(num "$(median "$key" fleet e2e)")" "one server on PG" "$(num "$(median "$key" pg e2e)")"
	done
fi
if want river && [[ -n $river ]]; then
	row "drain ${DRAIN_JOBS} by 4w" "$(num "$(median drain pg jobs_per_sec)")" "river bench -n $RIVER_JOBS" "$(num "$(median river-n river jobs_per_sec)")"
	row "flow 8c x32 (submit and work at once)" "$(num "$(median flow pg jobs_per_sec)")" "river bench --duration $RIVER_DURATION" "$(num "$(median river-dur river jobs_per_sec)")"
	row "background 8c x32, end to end" "$(num "$(median bg8p32 pg e2e)")" "river bench --duration $RIVER_DURATION" "$(num "$(median river-dur river jobs_per_sec)")"
	row "background 32c x1, end to end" "$(num "$(median bg32 pg e2e)")" "river bench --duration $RIVER_DURATION" "$(num "$(median river-dur river jobs_per_sec)")"
fi
if want sizing; then
	echo
	echo "sizing: one server on PostgreSQL, $SIZING_JOBS background jobs submitted at full speed (function paused), then drained by 4 workers"
	printf '  %-44s' ""
	for entry in "${sizing_shapes[@]}"; do IFS='|' read -r _ label _ <<<"$entry"; printf ' %12s' "$label"; done
	echo
	for f in "jobs_per_sec|submit jobs/s" "commits_per_sec|database commits/s while submitting" \
		"commits_per_1000|commits per 1,000 jobs submitted" "wal_per_1000|WAL bytes per 1,000 jobs submitted" \
		"drain_jobs_per_sec|drain jobs/s (resume to empty queue)" "drain_commits_per_sec|database commits/s while draining" \
		"drain_commits_per_1000|commits per 1,000 jobs drained" "drain_wal_per_1000|WAL bytes per 1,000 jobs drained" \
		"life_tx_per_1000|server's life: transactions per 1,000 jobs" \
		"life_xact_commit_per_1000|the same by pg_stat_database.xact_commit"; do
		printf '  %-44s' "${f#*|}"
		for entry in "${sizing_shapes[@]}"; do
			IFS='|' read -r key _ <<<"$entry"
			printf ' %12s' "$(median "$key" pg "${f%%|*}")"
		done
		echo
	done
fi
if want adopt; then
	echo
	echo "adoption: kill -9 of a server owning N queued jobs, --lease-ttl $LEASE_TTL; seconds from the kill"
	printf '  %-10s %10s %12s %14s %12s\n' "jobs" "adopted" "lease wait" "transaction" "+ memory"
	for n in $ADOPT_SIZES; do
		printf '  %-10s %10s %12s %14s %12s\n' "$n" "$(median "adopt$n" b total)" "$(median "adopt$n" b lease_wait)" \
			"$(median "adopt$n" b tx)" "$(median "adopt$n" b took)"
	done
fi
if ((failures > 0)); then
	echo
	echo "pgfleet.sh: $failures runs FAILED verification or could not run (see above)"
	exit 1
fi
