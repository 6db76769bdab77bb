#!/usr/bin/env bash
# vault.sh measures Lethe's vault over HTTPS from a separate process: it
# builds lethe and bench/loadgen into a temporary directory, starts `lethe
# serve` on a temporary data directory (SQLite stores, audit log on: every
# audit event is made durable in DATA_DIR/audit/ before the request goes
# on, and the end verifies the whole log) and a free loopback
# port, makes a service API key with `lethe keys create`, and then runs:
#
#   seed    POST /v1/subjects, SEED times with -warmup 0: subjects
#           user0@example.com … user{SEED-1}@example.com. This is a create
#           benchmark too, on an empty vault, and is reported as one.
#   lookup  POST /v1/subjects/lookup {"kind":"email","value":"user{n}@…"},
#           n cycling over the seeded subjects: find by the email's blind
#           index and read the profile, one request, one audit event.
#   create  POST /v1/subjects with identifiers no run has used before
#           (c{C}r{run}u{n}@example.com): a key-store write, a data-store
#           write and an audit event per request.
#   check   GET /v1/consent/check?subject=…&purpose=newsletter for one seeded
#           subject who consented (not in the default set): the consent
#           check over HTTP, answered from the server's memory.
#   detokenize  POST /v1/detokenize {"purpose":"billing","tokens":[…]}, the
#           same batch of DETOK_BATCH random tokens (the emails of the first
#           seeded subjects, made with curl and jq) every request: one store
#           read of the rows, one open per value, one audit event per subject.
#
# Each of lookup and create runs RUNS times for DURATION after a WARMUP at
# each concurrency, against the one server. Every run prints loadgen's
# summary and where the two cores went; each set ends with its medians,
# and the end compares the medians with the issue's targets. The server is
# stopped with SIGTERM and the temporary files are removed however the
# script ends.
#
# Usage, from the repository root:
#   bash bench/vault.sh [-n RUNS] [-d DURATION] [-c CONCURRENCY[,C2,…]] [-w WARMUP]
#                       [-s SEED] [-b BENCHES] [-i IDLE] [-l LOG_LEVEL] [-p DIR] [-k]
# or set RUNS, DURATION, CONCURRENCY (space- or comma-separated), WARMUP,
# SEED, BENCHES (space- or comma-separated: lookup, create, detokenize,
# check), IDLE,
# LOG_LEVEL, PERF_DIR. Defaults: 5 runs of 10s at -c 64, each after a 2s
# unrecorded warm-up; SEED=10000; BENCHES="lookup create detokenize";
# DETOK_BATCH=100 (tokens per detokenize request); IDLE=10.
#
# Other processes on the machine skew every number (see docs/benchmarks.md),
# so before the seed and before each set the script waits until the whole
# machine has used under 0.1 cores for IDLE consecutive seconds (at most 10
# minutes, then it goes on and says so); -i 0 turns that off. Runs in which
# other processes or the hypervisor took over 0.2 cores are marked
# CONTENDED.
#
# -p DIR records a CPU profile of the server with `perf record -g` during
# the first run of each set, DIR/BENCH-cC.perf.data (perf must be
# installed); `perf report -i FILE --no-children` reads it. -k keeps the
# temporary directory (data directory, server log, audit log) and prints
# its path, for a look afterwards; it holds the API keys and the master
# key, so remove it when done.
#
# As in noop.sh the server runs with --log-level warn (the access log's
# write(2) per request is priced there, not here), the per-key rate limit
# is raised to 1e6 req/s so loadgen measures the server, not the limiter,
# and any non-2xx answer or transport error fails the script.
#
# Load goes to 127.0.0.1 only, and every run stops by itself after
# WARMUP + DURATION (plus at most loadgen's 10s per-request timeout); the
# seed stops after SEED requests.
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
WARMUP=${WARMUP:-2s}
SEED=${SEED:-10000}
BENCHES=${BENCHES:-lookup create detokenize}
DETOK_BATCH=${DETOK_BATCH:-100}
LOG_LEVEL=${LOG_LEVEL:-warn}
IDLE=${IDLE:-10}
PERF_DIR=${PERF_DIR:-}
KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	-n) RUNS=$2; shift 2 ;;
	-d) DURATION=$2; shift 2 ;;
	-c) CONCURRENCY=$2; shift 2 ;;
	-w) WARMUP=$2; shift 2 ;;
	-s) SEED=$2; shift 2 ;;
	-b) BENCHES=$2; shift 2 ;;
	-i) IDLE=$2; shift 2 ;;
	-l) LOG_LEVEL=$2; shift 2 ;;
	-p) PERF_DIR=$2; shift 2 ;;
	-k) KEEP=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "vault.sh: unknown argument $1 (try -h)" >&2; exit 2 ;;
	esac
done
CONCURRENCY=${CONCURRENCY//,/ }
BENCHES=${BENCHES//,/ }
case $RUNS in '' | *[!0-9]* | 0) echo "vault.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
case $SEED in '' | *[!0-9]* | 0) echo "vault.sh: SEED must be a positive integer" >&2; exit 2 ;; esac
case $IDLE in '' | *[!0-9]*) echo "vault.sh: IDLE must be a whole number of seconds" >&2; exit 2 ;; esac
for b in $BENCHES; do
	case $b in
	lookup | create | detokenize | check) ;;
	*) echo "vault.sh: unknown benchmark $b (lookup, create, detokenize, check)" >&2; exit 2 ;;
	esac
done

if ! grep -q '^module github.com/lethe-privacy/lethe$' go.mod 2>/dev/null; then
	echo "vault.sh: run it from the repository root: bash bench/vault.sh" >&2
	exit 2
fi

for tool in go curl awk getconf; do
	command -v "$tool" >/dev/null || { echo "vault.sh: needs $tool" >&2; exit 2; }
done
if [ -n "$PERF_DIR" ]; then
	command -v perf >/dev/null || { echo "vault.sh: -p needs perf" >&2; exit 2; }
	for d in "$DURATION" "$WARMUP"; do
		case $d in *[0-9]s) ;; *) echo "vault.sh: with -p, give -d and -w in seconds (10s), not $d" >&2; exit 2 ;; esac
	done
	mkdir -p "$PERF_DIR"
	PERF_DIR=$(cd "$PERF_DIR" && pwd)
fi

umask 077 # the data directory and the key files hold secrets
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lethe-bench.XXXXXX")
server_pid=
perf_pid=
cleanup() {
	local rc=$?
	if [ -n "$perf_pid" ] && kill -0 "$perf_pid" 2>/dev/null; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
	fi
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "vault.sh: server did not stop within 10s of SIGTERM; killing it" >&2
			kill -KILL "$server_pid" 2>/dev/null || true
		fi
		local status=0
		wait "$server_pid" 2>/dev/null || status=$?
		if [ "$status" -ne 0 ]; then
			echo "vault.sh: lethe serve exited with status $status on SIGTERM" >&2
			[ "$rc" -ne 0 ] || rc=1
		fi
	fi
	if [ "$rc" -ne 0 ] && [ -s "$tmp/server.log" ]; then
		echo "vault.sh: failed (exit $rc); last server log lines:" >&2
		tail -n 20 "$tmp/server.log" >&2
	fi
	if [ "$KEEP" = 1 ]; then
		echo "vault.sh: kept $tmp (it holds API keys and the master key: remove it when done)" >&2
	else
		rm -rf "$tmp"
	fi
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
echo "disk:     $(df -T "$tmp" | awk 'NR == 2 { print $1, $2 }') under $tmp"
echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== build"
go build -o "$tmp/lethe" ./cmd/lethe
go build -o "$tmp/loadgen" ./bench/loadgen

# Purposes are declared, so every read and detokenisation for a purpose
# passes the consent check, as in a deployment that uses it.
mkdir -p "$tmp/data"
printf 'Bench privacy notice.\n' >"$tmp/data/privacy.txt"
cat >"$tmp/data/purposes.yaml" <<'YAML'
purposes:
  - {key: billing, description: Billing, legal_basis: contract, policy: {version: "1", text_file: privacy.txt}}
  - {key: newsletter, description: Newsletter, legal_basis: consent, direct_marketing: true, policy: {version: "1", text_file: privacy.txt}}
YAML

echo "== start server"
# Create the output files first: the child opens them only once it runs,
# and on a busy machine the loop below can look before it has.
: >"$tmp/server.out"
: >"$tmp/server.log"
"$tmp/lethe" serve --data-dir "$tmp/data" --addr 127.0.0.1:0 --log-level "$LOG_LEVEL" \
	--rate-limit 1000000 --rate-burst 1000000 >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
url=
for _ in $(seq 1 300); do
	url=$(sed -n 's/.* listening on \(https:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$tmp/server.out")
	[ -n "$url" ] && break
	kill -0 "$server_pid" 2>/dev/null || { echo "vault.sh: lethe serve exited before listening" >&2; exit 1; }
	sleep 0.1
done
[ -n "$url" ] || { echo "vault.sh: lethe serve did not listen within 30s" >&2; exit 1; }
for i in $(seq 1 100); do
	curl -fsS --cacert "$tmp/data/ca.crt" "$url/healthz" >/dev/null 2>&1 && break
	[ "$i" = 100 ] && { echo "vault.sh: $url/healthz did not answer within 10s" >&2; exit 1; }
	sleep 0.1
done
echo "server:   $url (pid $server_pid, --log-level $LOG_LEVEL, --rate-limit 1000000, audit log $tmp/data/audit)"

# The service role is what an app uses: subjects.write and subjects.read.
# The CLI reads the admin key and the CA from the data directory; the new
# key's secret comes on stdout and goes straight into a 0600 file.
"$tmp/lethe" keys create --name bench --role service --url "$url" --data-dir "$tmp/data" \
	>"$tmp/service.key" 2>"$tmp/keys.err" || {
	cat "$tmp/keys.err" >&2
	echo "vault.sh: lethe keys create failed" >&2
	exit 1
}
echo "api key:  $(sed -n 's/^Created key \([^ ]*\) (role \([^)]*\)).*/\1, role \2/p' "$tmp/keys.err")"

# median, field, hz, cpu_stat and proc_ticks.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# wait_idle waits until the machine has used under 0.1 cores in each of
# IDLE consecutive seconds, for at most 10 minutes, and prints how long it
# waited and the cores used in the last second.
wait_idle() {
	local b0 s0 b1 s1 busy quiet=0 waited=0
	if [ "$IDLE" = 0 ]; then
		printf 'not waiting for an idle machine (-i 0)'
		return
	fi
	read -r b0 s0 < <(cpu_stat)
	while [ "$quiet" -lt "$IDLE" ]; do
		if [ "$waited" -ge 600 ]; then
			printf 'NOT idle after %ss (%s cores in the last second): going on' "$waited" "$busy"
			return
		fi
		sleep 1
		waited=$((waited + 1))
		read -r b1 s1 < <(cpu_stat)
		busy=$(awk -v b0="$b0" -v b1="$b1" -v hz="$hz" 'BEGIN { printf "%.2f", (b1 - b0) / hz }')
		b0=$b1
		if awk -v b="$busy" 'BEGIN { exit !(b < 0.1) }'; then quiet=$((quiet + 1)); else quiet=0; fi
	done
	printf 'idle for %ss after %ss' "$IDLE" "$waited"
}

contended=0
total_runs=0
summary=()
# measure NAME C LOADGEN_ARGS… runs loadgen once with the common flags
# plus the given ones, and prints its summary line with the CPU split and
# the server's CPU time per request. It sets $line.
measure() {
	local name=$1 c=$2
	shift 2
	local t0 t1 busy0 steal0 busy1 steal1 srv0 srv1 cores flag
	t0=$(date +%s.%N); read -r busy0 steal0 < <(cpu_stat); srv0=$(proc_ticks "$server_pid")
	if ! line=$("$tmp/loadgen" -url "$url" -ca "$tmp/data/ca.crt" -key-file "$tmp/service.key" -c "$c" "$@"); then
		echo "$name: $line"
		echo "vault.sh: $name had failed requests or could not run; its numbers are not a result" >&2
		exit 1
	fi
	t1=$(date +%s.%N); read -r busy1 steal1 < <(cpu_stat); srv1=$(proc_ticks "$server_pid")
	cores=$(awk -v hz="$hz" -v t0="$t0" -v t1="$t1" -v b0="$busy0" -v b1="$busy1" -v s0="$steal0" -v s1="$steal1" \
		-v v0="$srv0" -v v1="$srv1" -v lg="$(field cpu "$line")" -v rps="$(field rps "$line")" 'BEGIN {
			w = t1 - t0; srv = (v1 - v0) / hz / w; gen = lg / w; other = (b1 - b0) / hz / w - srv - gen
			if (other < 0) other = 0
			printf "server=%.2f loadgen=%.2f other=%.2f steal=%.2f srv_us_per_req=%.0f", srv, gen, other, (s1 - s0) / hz / w, (rps > 0 ? srv / rps * 1e6 : 0)
		}')
	flag=
	if awk -v s="$cores" 'BEGIN { split(s, f, /[ =]/); exit !(f[6] + f[8] > 0.2) }'; then
		flag=" (CONTENDED)"
		contended=$((contended + 1))
	fi
	total_runs=$((total_runs + 1))
	line="$line | cores: $cores$flag"
	echo "$name: $line"
}

# bench NAME C BODY_FOR_RUN LOADGEN_ARGS… runs RUNS measured runs at
# concurrency C and prints their medians. BODY_FOR_RUN is a function that
# prints the body template of the run at concurrency $1 numbered $2.
bench() {
	local name=$1 c=$2 body=$3
	shift 3
	local f
	for f in rps p50 p99 server loadgen srv_us_per_req; do : >"$tmp/median.$f"; done
	echo "== $name, c=$c ($(wait_idle))"
	for run in $(seq 1 "$RUNS"); do
		if [ "$run" = 1 ] && [ -n "$PERF_DIR" ]; then
			# Start after the warm-up, stop before the end of the run.
			(sleep "${WARMUP%s}" && exec perf record -q -F 999 -g -p "$server_pid" \
				-o "$PERF_DIR/$name-c$c.perf.data" -- sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print (d > 2 ? d - 1 : d / 2) }')") \
				>"$tmp/perf.log" 2>&1 &
			perf_pid=$!
		fi
		measure "run $run" "$c" -d "$DURATION" -warmup "$WARMUP" -body-template "$($body "$c" "$run")" "$@"
		for f in rps p50 p99 server loadgen srv_us_per_req; do field "$f" "$line" >>"$tmp/median.$f"; done
		if [ -n "$perf_pid" ]; then
			wait "$perf_pid" || { cat "$tmp/perf.log" >&2; echo "vault.sh: perf record failed" >&2; exit 1; }
			perf_pid=
			echo "profile: $PERF_DIR/$name-c$c.perf.data"
		fi
	done
	local m
	m="$name c=$c runs=$RUNS median: rps=$(median <"$tmp/median.rps") p50=$(median <"$tmp/median.p50")ms p99=$(median <"$tmp/median.p99")ms"
	m="$m server=$(median <"$tmp/median.server") loadgen=$(median <"$tmp/median.loadgen") srv_us_per_req=$(median <"$tmp/median.srv_us_per_req")"
	echo "$m"
	summary+=("$m")
}

lookup_body() { printf '{"kind":"email","value":"user{{n}}@example.com"}'; }
# Each run, warm-up included, creates subjects no other run (at this or
# another concurrency) has made.
create_body() { printf '{"identifiers":{"email":"c%sr%su{{n}}@example.com"},"profile":{"name":"N{{n}}"}}' "$1" "$2"; }

# detokenize_body is one batch of DETOK_BATCH tokens, one per seeded
# subject (their emails, as random tokens), made once below.
detokenize_body() { cat "$tmp/detokenize.json"; }
make_tokens() {
	local i id tok tokens=
	printf 'Authorization: Bearer %s\n' "$(cat "$tmp/service.key")" >"$tmp/auth.header"
	for i in $(seq 0 $((DETOK_BATCH - 1))); do
		id=$(curl -fsS --cacert "$tmp/data/ca.crt" -H @"$tmp/auth.header" -H 'Content-Type: application/json' \
			-d "{\"kind\":\"email\",\"value\":\"user$i@example.com\"}" "$url/v1/subjects/lookup" | jq -r .id)
		tok=$(curl -fsS --cacert "$tmp/data/ca.crt" -H @"$tmp/auth.header" -H 'Content-Type: application/json' \
			-d "{\"subject_id\":\"$id\",\"tokens\":[{\"field\":\"email\",\"value\":\"user$i@example.com\"}]}" "$url/v1/tokens" | jq -r '.tokens[0].token')
		tokens="$tokens${tokens:+,}\"$tok\""
	done
	printf '{"purpose":"billing","tokens":[%s]}' "$tokens" >"$tmp/detokenize.json"
}

first_c=${CONCURRENCY%% *}
echo "== seed: $SEED subjects at c=$first_c ($(wait_idle))"
measure "seed" "$first_c" -method POST -path /v1/subjects -requests "$SEED" -warmup 0 -d 1h \
	-body-template '{"identifiers":{"email":"user{{n}}@example.com"},"profile":{"name":"N{{n}}"}}'
if [ "$(tr ' ' '\n' <<<"$line" | sed -n 's/^requests=//p')" != "$SEED" ]; then
	echo "vault.sh: the seed made $(tr ' ' '\n' <<<"$line" | sed -n 's/^requests=//p') requests, not $SEED" >&2
	exit 1
fi
summary+=("seed c=$first_c (one run of $SEED creates on an empty vault): rps=$(field rps "$line") p50=$(field p50 "$line")ms p99=$(field p99 "$line")ms")

case " $BENCHES " in
*" check "*)
	printf 'Authorization: Bearer %s\n' "$(cat "$tmp/service.key")" >"$tmp/auth.header"
	check_id=$(curl -fsS --cacert "$tmp/data/ca.crt" -H @"$tmp/auth.header" -H 'Content-Type: application/json' \
		-d '{"kind":"email","value":"user0@example.com"}' "$url/v1/subjects/lookup" | jq -r .id)
	curl -fsS --cacert "$tmp/data/ca.crt" -H @"$tmp/auth.header" -H 'Content-Type: application/json' \
		-d "{\"records\":[{\"subject_id\":\"$check_id\",\"purpose\":\"newsletter\",\"kind\":\"grant\"}]}" "$url/v1/consent" >/dev/null
	echo "== check: subject $check_id consented to the newsletter" ;;
esac
empty_body() { :; }

case " $BENCHES " in
*" detokenize "*)
	[ "$SEED" -ge "$DETOK_BATCH" ] || { echo "vault.sh: detokenize needs -s of at least $DETOK_BATCH" >&2; exit 2; }
	echo "== tokens: $DETOK_BATCH random tokens of seeded subjects' emails, one detokenize batch"
	make_tokens ;;
esac

for b in $BENCHES; do
	for c in $CONCURRENCY; do
		case $b in
		lookup) bench lookup "$c" lookup_body -method POST -path /v1/subjects/lookup -n-mod "$SEED" ;;
		create) bench create "$c" create_body -method POST -path /v1/subjects ;;
		detokenize) bench detokenize "$c" detokenize_body -method POST -path /v1/detokenize ;;
		check) bench check "$c" empty_body -path "/v1/consent/check?subject=$check_id&purpose=newsletter" ;;
		esac
	done
done

echo "== medians"
printf '%s\n' "${summary[@]}"
# The issue's targets, at c=64 on 2 cores, with zero errors (a run with
# any error has already failed the script).
echo "== targets (ratio = measured / target; >= 1 meets it, for p99 <= 1)"
for s in "${summary[@]}"; do
	case $s in
	"lookup c=64 "*)
		awk -v r="$(field rps "$s")" -v p="$(field p99 "$s")" 'BEGIN {
			printf "lookup: rps %.0f vs >= 10000: ratio %.2f; p99 %.3f ms vs < 20 ms: ratio %.2f\n", r, r / 10000, p, p / 20 }' ;;
	"create c=64 "*)
		awk -v r="$(field rps "$s")" 'BEGIN { printf "create: rps %.0f vs >= 3000: ratio %.2f\n", r, r / 3000 }' ;;
	"check c=64 "*)
		awk -v r="$(field rps "$s")" 'BEGIN { printf "check: rps %.0f vs >= 15000: ratio %.2f\n", r, r / 15000 }' ;;
	"detokenize c=64 "*)
		awk -v r="$(field rps "$s")" -v n="$DETOK_BATCH" 'BEGIN {
			printf "detokenize: %.0f values/s (%.0f req/s of %d tokens) vs >= 200000: ratio %.2f\n", r * n, r, n, r * n / 200000 }' ;;
	esac
done
if [ "$contended" -gt 0 ]; then
	echo "WARNING: in $contended of $total_runs runs other processes or the hypervisor took more than 0.2 cores;"
	echo "         those runs understate the server: run again on a quiet machine."
fi
echo "== audit log: $(du -sh "$tmp/data/audit" | cut -f1); lethe audit verify (beside the running server):"
"$tmp/lethe" audit verify --data-dir "$tmp/data" 2>/dev/null || echo "vault.sh: the audit log does not verify" >&2
echo "== data: $(du -sh "$tmp/data" | cut -f1) in $tmp/data ($(ls "$tmp/data" | tr '\n' ' '))"
if [ -s "$tmp/server.log" ]; then
	echo "== server log: $(wc -l <"$tmp/server.log") lines at --log-level $LOG_LEVEL; the last 5:"
	tail -n 5 "$tmp/server.log"
fi
