#!/usr/bin/env bash
# The fault table: each fault under a write load, then a check that nothing
# acknowledged was lost and no name was duplicated.
#
#   benchmarks/faults.sh [fault ...]
#
# Faults (default: all five, in this order), each on a fresh federation of
# benchmarks/federation.sh (3 shards on PostgreSQL, 2 gateways, NATS):
#   shard-kill    kill -9 shard-1, restart it FAULT_SECS later
#   nats-kill     kill -9 nats-server, restart it FAULT_SECS later
#   nats-node-kill  (not in the default set) on a 3-node NATS cluster with
#                 R3 buckets, kill -9 one node, restart it FAULT_SECS later
#   gateway-kill  kill -9 gateway-1, restart it FAULT_SECS later
#   pg-restart    restart the PostgreSQL server all shards use (needs
#                 pg_ctlcluster and the right to run it)
#   shard-stop    SIGSTOP shard-1, SIGCONT it FAULT_SECS later
# Under each, `faultload` creates projects and grants a role on each through
# both gateways at RATE operations/s for LOAD_SECS (the fault starts 5 s in),
# then checks every acknowledged write through both gateways. One row per
# fault: acknowledged writes, failed requests, lost writes, duplicate names,
# ghosts (creates answered 503 but carried out), names created again.
#
# `benchmarks/faults.sh hung-reads` measures something else: loadgen's
# project-get (16 projects over the three shards) for 10 s as a baseline,
# then again while shard-1 is stopped (after the gateways marked it down):
# its tenants' requests fail fast (503), the others keep their latency.
#
# Environment: as for federation.sh (KEYFED_BIN, default the release build;
# KEYFED_NATS_SERVER; KEYFED_TEST_PG; BASE_PORT), plus FAULTLOAD (default
# target/release/faultload), RATE (default 200), LOAD_SECS (default 25),
# FAULT_SECS (default 8). Build first:
#   cargo build --release --bin keyfed --bin faultload
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${KEYFED_BIN:-$ROOT/target/release/keyfed}"
LOAD="${FAULTLOAD:-$ROOT/target/release/faultload}"
RATE="${RATE:-200}"
LOAD_SECS="${LOAD_SECS:-25}"
FAULT_SECS="${FAULT_SECS:-8}"
BASE="${BASE_PORT:-5400}"
FAULTS=("$@")
[ ${#FAULTS[@]} -gt 0 ] || FAULTS=(shard-kill nats-kill gateway-kill pg-restart shard-stop)
[ -x "$LOAD" ] || { echo "no faultload at $LOAD (cargo build --release --bin faultload)" >&2; exit 1; }
export KEYFED_BIN="$BIN"

FED_PID=""
RESTARTED=()
stop_federation() {
    for pid in "${RESTARTED[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    RESTARTED=()
    if [ -n "$FED_PID" ]; then
        kill -TERM "$FED_PID" 2>/dev/null || true
        wait "$FED_PID" 2>/dev/null || true
        FED_PID=""
    fi
}
trap stop_federation EXIT

# Starts federation.sh (its options: "$@"); sets WORK and OS_PASSWORD.
start_federation() {
    local out
    out="$(mktemp /tmp/keyfed-faults.XXXXXX)"
    "$ROOT/benchmarks/federation.sh" "$@" 3 2 >"$out" 2>&1 &
    FED_PID=$!
    for _ in $(seq 1 600); do
        grep -q '^export OS_PROJECT_DOMAIN_NAME' "$out" && break
        kill -0 "$FED_PID" 2>/dev/null || { cat "$out" >&2; exit 1; }
        sleep 0.1
    done
    WORK="$(sed -n 's/.*logs in \(\/[^ ]*\)$/\1/p' "$out" | head -n 1)"
    OS_PASSWORD="$(sed -n 's/^export OS_PASSWORD=//p' "$out")"
    [ -n "$WORK" ] && [ -n "$OS_PASSWORD" ] || { cat "$out" >&2; exit 1; }
}

pid_of() { # $1: a pattern of the process's command line
    pgrep -f -- "$1" | head -n 1
}

# Runs "$@" in the background as a restarted process (stopped at the end).
restart() { # $1: log file, rest: command
    local log="$1"
    shift
    "$@" >>"$log" 2>&1 &
    RESTARTED+=($!)
}

inject() { # $1: the fault
    case "$1" in
    shard-kill)
        kill -9 "$(pid_of "shard --config $WORK/shard-1.toml")"
        sleep "$FAULT_SECS"
        restart "$WORK/shard-1.log" "$BIN" shard --config "$WORK/shard-1.toml"
        ;;
    nats-kill | nats-node-kill)
        # The single server, or node 0 of the 3-node cluster.
        kill -9 "$(pid_of "-c $WORK/nats-server-0.conf")"
        sleep "$FAULT_SECS"
        restart "$WORK/nats-0.log" "${KEYFED_NATS_SERVER:-$ROOT/target/pyvenv/bin/nats-server}" \
            -c "$WORK/nats-server-0.conf"
        ;;
    gateway-kill)
        kill -9 "$(pid_of "gateway --config $WORK/gateway-1.toml")"
        sleep "$FAULT_SECS"
        restart "$WORK/gateway-1.log" "$BIN" gateway --config "$WORK/gateway-1.toml"
        ;;
    pg-restart)
        local cluster
        cluster="$(pg_lsclusters --no-header | awk '$4 == "online" {print $1 " " $2; exit}')"
        [ -n "$cluster" ] || { echo "pg-restart: no PostgreSQL cluster found by pg_lsclusters" >&2; return 1; }
        # shellcheck disable=SC2086
        pg_ctlcluster $cluster restart -m fast
        ;;
    shard-stop)
        local pid
        pid="$(pid_of "shard --config $WORK/shard-1.toml")"
        kill -STOP "$pid"
        sleep "$FAULT_SECS"
        kill -CONT "$pid"
        ;;
    *)
        echo "unknown fault: $1" >&2
        return 1
        ;;
    esac
}

# The hung-reads measurement (see the top).
hung_reads() {
    local loadgen="${LOADGEN:-$ROOT/target/release/loadgen}" pid
    start_federation
    local run=("$loadgen" --url "http://127.0.0.1:$BASE" --scenario project-get
        --projects 16 --concurrency 16 --duration 10)
    echo "== baseline: every shard serving"
    OS_PASSWORD="$OS_PASSWORD" "${run[@]}" --warmup 2
    pid="$(pid_of "shard --config $WORK/shard-1.toml")"
    echo "== shard-1 stopped (SIGSTOP) 1 s into a 7 s warm-up (set-up done, down detected)"
    OS_PASSWORD="$OS_PASSWORD" "${run[@]}" --warmup 7 &
    local load=$!
    sleep 1
    kill -STOP "$pid"
    wait "$load" || true
    kill -CONT "$pid"
    stop_federation
}
if [ "${FAULTS[0]}" = hung-reads ]; then
    hung_reads
    exit 0
fi

printf '%-13s %10s %10s %-34s %6s %6s %6s %9s\n' \
    fault creates grants "failed requests" lost dupes ghosts recreated
status=0
for fault in "${FAULTS[@]}"; do
    if [ "$fault" = nats-node-kill ]; then
        start_federation --nats-cluster 3
    else
        start_federation
    fi
    report="$WORK/faultload-$fault.json"
    OS_PASSWORD="$OS_PASSWORD" "$LOAD" \
        --gateway "http://127.0.0.1:$BASE" --gateway "http://127.0.0.1:$((BASE + 1))" \
        --rate "$RATE" --seconds "$LOAD_SECS" --settle 5 --prefix "fp-$fault" \
        >"$report" 2>"$WORK/faultload-$fault.log" &
    load_pid=$!
    sleep 5
    inject "$fault" || status=1
    wait "$load_pid" || status=1
    python3 - "$fault" "$report" <<'EOF'
import json, sys
fault, path = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{fault:<13} no report ({e})")
    sys.exit(0)
failed = ", ".join(f"{k}: {v}" for k, v in r["failed"].items()) or "none"
lost = r["lost_projects"] + r["lost_grants"]
print(f"{fault:<13} {r['acknowledged_creates']:>10} {r['acknowledged_grants']:>10} "
      f"{failed:<34} {lost:>6} {r['duplicate_names']:>6} {r['ghosts']:>6} {r['recreated']:>9}"
      + (f"  ({r['unclear_checks']} unclear checks)" if r["unclear_checks"] else ""))
EOF
    stop_federation
done
exit "$status"
