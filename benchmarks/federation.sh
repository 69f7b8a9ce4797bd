#!/usr/bin/env bash
# A real federation on this machine for benchmarks: one nats-server with
# JetStream (or a JetStream cluster), N `keyfed shard` processes on their own PostgreSQL databases and
# M `keyfed gateway` processes, all from release builds, plain HTTP on
# loopback. Prints the gateways' URLs and `export OS_...` lines, then waits;
# Ctrl-C (or SIGTERM) stops everything and drops the databases.
#
#   benchmarks/federation.sh [--nats-cluster NODES] [shards=3] [gateways=2]
#
# --nats-cluster 3 runs NATS as a 3-node JetStream cluster (routes on
# loopback, a store per node, the same authorization on each) and gives
# every process all the nodes' URLs and `replicas = 3`, as production does.
#
# Environment: KEYFED_BIN (default target/release/keyfed), KEYFED_NATS_SERVER
# (default target/pyvenv/bin/nats-server, as scripts/test installs it),
# KEYFED_TEST_PG (libpq string of an admin database, as for scripts/test),
# BASE_PORT (default 5400: gateways at BASE_PORT+i, shards at BASE_PORT+100+i,
# NATS at BASE_PORT+200+i, its cluster routes at +210+i and monitoring at
# +220+i).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATS_NODES=1
positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --nats-cluster) NATS_NODES="${2:?--nats-cluster needs a node count}"; shift 2 ;;
        --nats-cluster=*) NATS_NODES="${1#*=}"; shift ;;
        *) positional+=("$1"); shift ;;
    esac
done
set -- "${positional[@]+"${positional[@]}"}"
case "$NATS_NODES" in [1-5]) ;; *) echo "--nats-cluster: 1 to 5 nodes" >&2; exit 1 ;; esac
SHARDS="${1:-3}"
GATEWAYS="${2:-2}"
BIN="${KEYFED_BIN:-$ROOT/target/release/keyfed}"
NATS="${KEYFED_NATS_SERVER:-$ROOT/target/pyvenv/bin/nats-server}"
PG="${KEYFED_TEST_PG:-host=127.0.0.1 port=5432 user=postgres dbname=postgres}"
BASE="${BASE_PORT:-5400}"
[ -x "$BIN" ] || { echo "no keyfed binary at $BIN (cargo build --release --bin keyfed)" >&2; exit 1; }
[ -x "$NATS" ] || { echo "no nats-server at $NATS (run scripts/test once)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/keyfed-bench.XXXXXX)"
PIDS=()
DBS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for db in "${DBS[@]}"; do psql -q -X "$PG" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
    echo "stopped; logs kept in $WORK" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM

nats_port=$((BASE + 200))
# NATS with authorization, as in production: one nkey per process, each
# with its least-privilege permissions (keyfed nats creds).
creds=()
for i in $(seq 0 $((SHARDS - 1))); do creds+=(--issuer "shard-$i"); done
for i in $(seq 0 $((GATEWAYS - 1))); do creds+=(--gateway "gateway-$i"); done
"$BIN" nats creds --dir "$WORK/nats" --namespace bench "${creds[@]}" >/dev/null
nats_urls=()
routes=()
for n in $(seq 0 $((NATS_NODES - 1))); do
    nats_urls+=("nats://127.0.0.1:$((nats_port + n))")
    routes+=("\"nats-route://127.0.0.1:$((nats_port + 10 + n))\"")
done
for n in $(seq 0 $((NATS_NODES - 1))); do
    conf="$WORK/nats-server-$n.conf"
    cat >"$conf" <<EOF
listen: "127.0.0.1:$((nats_port + n))"
jetstream { store_dir: "$WORK/jetstream-$n" }
include "nats/nats-authorization.conf"
EOF
    if [ "$NATS_NODES" -gt 1 ]; then
        cat >>"$conf" <<EOF
server_name: "n$n"
http: "127.0.0.1:$((nats_port + 20 + n))"
cluster {
  name: "keyfed-bench"
  listen: "127.0.0.1:$((nats_port + 10 + n))"
  routes: [$(IFS=,; echo "${routes[*]}")]
}
EOF
    fi
    "$NATS" -c "$conf" >"$WORK/nats-$n.log" 2>&1 &
    PIDS+=($!)
done
"$BIN" ca init --dir "$WORK/ca" >/dev/null
admin_password="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
gateway0="http://127.0.0.1:$BASE"

nats_section() { # $1: the identity's seed file
    printf 'url = "%s"\nnamespace = "bench"\nreplicas = %s\nnkey_seed_file = "%s"\n' \
        "$(IFS=,; echo "${nats_urls[*]}")" "$NATS_NODES" "$1"
}

for i in $(seq 0 $((SHARDS - 1))); do
    db="keyfed_bench_$$_$i"
    psql -q -X "$PG" -c "CREATE DATABASE $db" >/dev/null
    DBS+=("$db")
    port=$((BASE + 100 + i))
    conninfo="$(printf '%s' "$PG" | sed "s/dbname=[^ ]*/dbname=$db/")"
    cat >"$WORK/shard-$i.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
insecure_plain_http = true

[shard]
id = "shard-$i"

[storage]
kind = "postgres"
url = "$conninfo"
pool_size = 16

[tokens]
signing_key_file = "$WORK/shard-$i-signing-key.pem"

[log]
level = "warn"

[trust]
ca_cert = "$WORK/ca/ca.pem"
ca_key = "$WORK/ca/ca-key.pem"

[federation]
advertise_url = "http://127.0.0.1:$port"
weight = 1

[federation.nats]
$(nats_section "$WORK/nats/issuer-shard-$i.nk")
EOF
    if [ "$i" -eq 0 ]; then
        cat >>"$WORK/shard-0.toml" <<EOF

[bootstrap]
admin_password = "$admin_password"
public_url = "$gateway0/v3/"
internal_url = "$gateway0/v3/"
admin_url = "$gateway0/v3/"
EOF
    fi
done

# Wait until NATS answers (a cluster: every node healthy, a JetStream meta
# leader elected), then bootstrap once and start the shards.
for n in $(seq 0 $((NATS_NODES - 1))); do
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$((nats_port + n))) 2>/dev/null && break; sleep 0.1; done
    if [ "$NATS_NODES" -gt 1 ]; then
        for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$((nats_port + 20 + n))/healthz" 2>/dev/null && break; sleep 0.1; done
    fi
done
"$BIN" bootstrap --config "$WORK/shard-0.toml" >"$WORK/bootstrap.log" 2>&1
for i in $(seq 0 $((SHARDS - 1))); do
    "$BIN" shard --config "$WORK/shard-$i.toml" >"$WORK/shard-$i.log" 2>&1 &
    PIDS+=($!)
done

ready() { curl -fsS -o /dev/null "$1/readyz" 2>/dev/null; }
for i in $(seq 0 $((SHARDS - 1))); do
    for _ in $(seq 1 300); do ready "http://127.0.0.1:$((BASE + 100 + i))" && break; sleep 0.1; done
done

for i in $(seq 0 $((GATEWAYS - 1))); do
    port=$((BASE + i))
    cat >"$WORK/gateway-$i.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
insecure_plain_http = true

[directory.nats]
$(nats_section "$WORK/nats/gateway-gateway-$i.nk")

[upstream]
insecure_plain_http = true

[trust]
ca_cert = "$WORK/ca/ca.pem"
EOF
    "$BIN" gateway --config "$WORK/gateway-$i.toml" >"$WORK/gateway-$i.log" 2>&1 &
    PIDS+=($!)
done
for i in $(seq 0 $((GATEWAYS - 1))); do
    for _ in $(seq 1 300); do ready "http://127.0.0.1:$((BASE + i))" && break; sleep 0.1; done
    ready "http://127.0.0.1:$((BASE + i))" || { echo "gateway-$i did not become ready; see $WORK/gateway-$i.log" >&2; exit 1; }
done

echo "# keyfed federation: $SHARDS shards (PostgreSQL), $GATEWAYS gateways, NATS $(IFS=,; echo "${nats_urls[*]}") (replicas $NATS_NODES); logs in $WORK"
for i in $(seq 0 $((GATEWAYS - 1))); do echo "# gateway-$i: http://127.0.0.1:$((BASE + i))"; done
for i in $(seq 0 $((SHARDS - 1))); do echo "# shard-$i:   http://127.0.0.1:$((BASE + 100 + i))"; done
cat <<EOF
export OS_AUTH_URL=$gateway0/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$admin_password
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
EOF
wait
