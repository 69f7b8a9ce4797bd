#!/usr/bin/env bash
# Validation vs the gateway's own /healthz, two builds side by side.
#
#   benchmarks/healthz_ratio.sh OLD_KEYFED NEW_KEYFED [rounds=3]
#
# Starts `keyfed dev --shards 3` from each binary (ports 5311 and 5312, data
# in /tmp/lg-old and /tmp/lg-new, wiped), then runs target/release/loadgen
# for `healthz` and `validate`, interleaving the builds, and prints one line
# per run: round, scenario, build, successes/s, p50 ms, p99 ms, errors.
# /healthz is served on the public listener (`[admin] public_health`, the
# default), through the same serve loop and edge middleware as validation,
# so the ratio still compares the two on one path; /metrics moved to the
# admin listener (keyfed dev serves it publicly).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LG="$ROOT/target/release/loadgen"
ROUNDS="${3:-3}"
declare -A BIN=([old]="$1" [new]="$2")
declare -A PORT=([old]=5311 [new]=5312)
declare -A PW
for b in old new; do
    rm -rf "/tmp/lg-$b"
    "${BIN[$b]}" dev --listen "127.0.0.1:${PORT[$b]}" --data "/tmp/lg-$b" --shards 3 >"/tmp/dev-$b.log" 2>&1 &
    echo $! >"/tmp/dev-$b.pid"
done
trap 'for b in old new; do kill "$(cat /tmp/dev-$b.pid)" 2>/dev/null; done' EXIT
sleep 8
for b in old new; do
    PW[$b]=$(grep -o "OS_PASSWORD=[^ ]*" "/tmp/dev-$b.log" | head -1 | cut -d= -f2)
done
for round in $(seq 1 "$ROUNDS"); do
    for s in healthz validate; do
        for b in old new; do
            "$LG" --url "http://127.0.0.1:${PORT[$b]}" --password "${PW[$b]}" --scenario "$s" \
                --concurrency 32 --duration 8 --warmup 2 --json 2>/dev/null |
                python3 -c 'import json,sys; d=json.load(sys.stdin); l=d["latency_ms"]; print(sys.argv[1], round(d["throughput_per_s"]), l["p50"], l["p99"], d["unexpected_status"]+d["transport_errors"])' "$round $s $b"
        done
    done
done
uptime
