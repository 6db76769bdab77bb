#!/usr/bin/env bash
# noop.sh measures Lethe's authenticated no-op request, GET /v1/whoami, over
# HTTPS from a separate process: it builds lethe and bench/loadgen into a
# temporary directory, starts `lethe serve` on a temporary data directory
# and a free loopback port, runs loadgen several times and prints each run
# and the median req/s, p50 and p99 across the runs. The server is stopped
# with SIGTERM and the temporary files are removed however the script ends.
#
# Usage, from the repository root:
#   bash bench/noop.sh [-n RUNS] [-d DURATION] [-c CONCURRENCY[,C2,…]] [-w WARMUP]
#                      [-l LOG_LEVEL] [--plain-http]
# or set RUNS, DURATION, CONCURRENCY (space- or comma-separated), WARMUP,
# LOG_LEVEL. Defaults: 5 runs of 10s at -c 32, each after a 2s unrecorded
# warm-up, against one server.
#
# The server runs with --log-level warn: at the default (info) it writes one
# JSON access log line per request to stderr (here a file), a write(2) per
# request, and that costs time we do not want to count in the headline
# numbers; -l info measures it. The per-key rate limit is raised to 1e6
# req/s so loadgen measures the server, not the limiter; a run that gets any
# non-2xx answer or transport error fails the script.
#
# --plain-http serves plain HTTP (lethe serve --insecure-http, loopback
# only) instead of TLS, to see what TLS costs; it is not how Lethe runs.
#
# Load goes to 127.0.0.1 only, and every run stops by itself after
# WARMUP + DURATION (plus at most loadgen's 10s per-request timeout).
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
WARMUP=${WARMUP:-2s}
LOG_LEVEL=${LOG_LEVEL:-warn}
PLAIN=0
while [ $# -gt 0 ]; do
	case $1 in
	-n) RUNS=$2; shift 2 ;;
	-d) DURATION=$2; shift 2 ;;
	-c) CONCURRENCY=$2; shift 2 ;;
	-w) WARMUP=$2; shift 2 ;;
	-l) LOG_LEVEL=$2; shift 2 ;;
	--plain-http) PLAIN=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "noop.sh: unknown argument $1 (try -h)" >&2; exit 2 ;;
	esac
done
CONCURRENCY=${CONCURRENCY//,/ }
case $RUNS in '' | *[!0-9]* | 0) echo "noop.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac

if ! grep -q '^module github.com/lethe-privacy/lethe$' go.mod 2>/dev/null; then
	echo "noop.sh: run it from the repository root: bash bench/noop.sh" >&2
	exit 2
fi

for tool in go curl awk getconf; do
	command -v "$tool" >/dev/null || { echo "noop.sh: needs $tool" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lethe-bench.XXXXXX")
server_pid=
cleanup() {
	local rc=$?
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "noop.sh: server did not stop within 10s of SIGTERM; killing it" >&2
			kill -KILL "$server_pid" 2>/dev/null || true
		fi
		local status=0
		wait "$server_pid" 2>/dev/null || status=$?
		if [ "$status" -ne 0 ]; then
			echo "noop.sh: lethe serve exited with status $status on SIGTERM" >&2
			[ "$rc" -ne 0 ] || rc=1
		fi
	fi
	if [ "$rc" -ne 0 ] && [ -s "$tmp/server.log" ]; then
		echo "noop.sh: failed (exit $rc); last server log lines:" >&2
		tail -n 20 "$tmp/server.log" >&2
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== machine"
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
echo "cpus:     $(nproc) ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "go:       $(go version)"
echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== build"
go build -o "$tmp/lethe" ./cmd/lethe
go build -o "$tmp/loadgen" ./bench/loadgen

echo "== start server"
serve_args=(serve --data-dir "$tmp/data" --addr 127.0.0.1:0 --log-level "$LOG_LEVEL" --rate-limit 1000000 --rate-burst 1000000)
if [ "$PLAIN" = 1 ]; then
	serve_args+=(--insecure-http)
fi
# Create the output files first: the child opens them only once it runs,
# and on a busy machine the loop below can look before it has.
: >"$tmp/server.out"
: >"$tmp/server.log"
"$tmp/lethe" "${serve_args[@]}" >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
url=
for _ in $(seq 1 300); do
	url=$(sed -n 's/.* listening on \(https\{0,1\}:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$tmp/server.out")
	[ -n "$url" ] && break
	kill -0 "$server_pid" 2>/dev/null || { echo "noop.sh: lethe serve exited before listening" >&2; exit 1; }
	sleep 0.1
done
[ -n "$url" ] || { echo "noop.sh: lethe serve did not listen within 30s" >&2; exit 1; }
ca_args=()
curl_ca=()
if [ "$PLAIN" = 0 ]; then
	ca_args=(-ca "$tmp/data/ca.crt")
	curl_ca=(--cacert "$tmp/data/ca.crt")
fi
for i in $(seq 1 100); do
	curl -fsS "${curl_ca[@]}" "$url/healthz" >/dev/null 2>&1 && break
	[ "$i" = 100 ] && { echo "noop.sh: $url/healthz did not answer within 10s" >&2; exit 1; }
	sleep 0.1
done
echo "server:   $url (pid $server_pid, --log-level $LOG_LEVEL, --rate-limit 1000000)"
echo "load:     $RUNS runs x $DURATION after a $WARMUP warm-up, at concurrency $CONCURRENCY"

# median, field, hz, cpu_stat and proc_ticks.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
contended=0
total_runs=0
summary=()
for c in $CONCURRENCY; do
	echo "== concurrency $c"
	: >"$tmp/rps" ; : >"$tmp/p50" ; : >"$tmp/p99"
	for run in $(seq 1 "$RUNS"); do
		t0=$(date +%s.%N); read -r busy0 steal0 < <(cpu_stat); srv0=$(proc_ticks "$server_pid")
		if ! line=$("$tmp/loadgen" -url "$url" -path /v1/whoami "${ca_args[@]}" -key-file "$tmp/data/admin.key" \
			-c "$c" -d "$DURATION" -warmup "$WARMUP"); then
			echo "run $run: $line"
			echo "noop.sh: run $run had failed requests or could not run; its numbers are not a result" >&2
			exit 1
		fi
		t1=$(date +%s.%N); read -r busy1 steal1 < <(cpu_stat); srv1=$(proc_ticks "$server_pid")
		cores=$(awk -v hz="$hz" -v t0="$t0" -v t1="$t1" -v b0="$busy0" -v b1="$busy1" -v s0="$steal0" -v s1="$steal1" \
			-v v0="$srv0" -v v1="$srv1" -v lg="$(field cpu "$line")" 'BEGIN {
				w = t1 - t0; srv = (v1 - v0) / hz / w; gen = lg / w; other = (b1 - b0) / hz / w - srv - gen
				if (other < 0) other = 0
				printf "server=%.2f loadgen=%.2f other=%.2f steal=%.2f", srv, gen, other, (s1 - s0) / hz / w
			}')
		flag=
		if awk -v s="$cores" 'BEGIN { split(s, f, /[ =]/); exit !(f[6] + f[8] > 0.2) }'; then
			flag=" (CONTENDED)"
			contended=$((contended + 1))
		fi
		total_runs=$((total_runs + 1))
		echo "run $run: $line | cores: $cores$flag"
		field rps "$line" >>"$tmp/rps"
		field p50 "$line" >>"$tmp/p50"
		field p99 "$line" >>"$tmp/p99"
	done
	m="c=$c runs=$RUNS median: rps=$(median <"$tmp/rps") p50=$(median <"$tmp/p50")ms p99=$(median <"$tmp/p99")ms"
	echo "$m"
	summary+=("$m")
done

echo "== medians"
printf '%s\n' "${summary[@]}"
if [ "$contended" -gt 0 ]; then
	echo "WARNING: in $contended of $total_runs runs other processes or the hypervisor took more than 0.2 cores;"
	echo "         those runs understate the server: run again on a quiet machine."
fi
if [ -s "$tmp/server.log" ]; then
	echo "== server log: $(wc -l <"$tmp/server.log") lines at --log-level $LOG_LEVEL; the last 5:"
	tail -n 5 "$tmp/server.log"
fi
