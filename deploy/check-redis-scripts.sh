#!/usr/bin/env bash
# Runs the start scripts of deploy/kubernetes/base/redis.yaml as 3 Redis
# data nodes and 3 Sentinels on this machine and checks that they find each
# other by pod DNS name, fail over, and rejoin. Each "pod" gets a loopback
# address (127.0.2.x) and its Kubernetes DNS name in a private /etc/hosts
# (a mount namespace, so the machine's own file is untouched): run as root.
# Needs redis-server, redis-cli, unshare. Ports 16380 (Redis) and 26380
# (Sentinel). Takes about a minute.
set -euo pipefail

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" = 0 ] || { echo "run as root (it bind-mounts a private /etc/hosts)" >&2; exit 2; }
    for tool in redis-server redis-cli unshare; do
        command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 2; }
    done
    exec unshare --mount "$0" --inside
fi

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# The scripts, cut out of the ConfigMap (4-space indented block scalars).
extract() {
    awk -v key="$1" '
        $0 == "  " key ": |" { on = 1; next }
        on && /^  [^ ]/ { on = 0 }
        on && /^---/ { on = 0 }
        on { sub(/^    /, ""); print }
    ' "$here/kubernetes/base/redis.yaml"
}
extract start-redis.sh > "$work/start-redis.sh"
extract start-sentinel.sh > "$work/start-sentinel.sh"
grep -q 'exec redis-server' "$work/start-redis.sh"
grep -q 'exec redis-server' "$work/start-sentinel.sh"

domain=crowdgate.svc.cluster.local
redis_name() { echo "crowdgate-redis-$1.crowdgate-redis.$domain"; }
{
    cat /etc/hosts
    for i in 0 1 2; do echo "127.0.2.$((i + 1)) $(redis_name "$i")"; done
    for i in 0 1 2; do echo "127.0.2.1$i crowdgate-sentinel-$i.crowdgate-sentinel.$domain"; done
} > "$work/hosts"
mount --bind "$work/hosts" /etc/hosts

# Each "pod" listens on its own address: a redis-server first on PATH adds
# --bind (arguments after the config file override it).
mkdir -p "$work/bin"
cat > "$work/bin/redis-server" << EOF
#!/bin/sh
exec $(command -v redis-server) "\$@" --bind "\$BIND_IP"
EOF
chmod +x "$work/bin/redis-server"
export PATH="$work/bin:$PATH" NAMESPACE=crowdgate REDIS_PORT=16380 SENTINEL_PORT=26380
export REDIS_PASSWORD=0123456789abcdef0123456789abcdef DOWN_AFTER_MS=2000

declare -A pid
data_node() {
    mkdir -p "$work/data-$1"
    POD_NAME=crowdgate-redis-$1 BIND_IP=127.0.2.$(($1 + 1)) DATA_DIR="$work/data-$1" \
        CONF_DIR="$work/conf-$1" sh "$work/start-redis.sh" > "$work/redis-$1.log" 2>&1 &
    pid[r$1]=$!
    pids+=("$!")
}
sentinel() {
    POD_NAME=crowdgate-sentinel-$1 BIND_IP=127.0.2.1$1 CONF_DIR="$work/sentinel-$1" \
        sh "$work/start-sentinel.sh" > "$work/sentinel-$1.log" 2>&1 &
    pid[s$1]=$!
    pids+=("$!")
}
stop() { kill -9 "$1"; wait "$1" 2> /dev/null || true; }
r() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h "127.0.2.$(($1 + 1))" -p 16380 --no-auth-warning "${@:2}" 2>&1; }
s() { redis-cli -h "127.0.2.1$1" -p 26380 "${@:2}" 2>&1; }
primary_says() { s "$1" SENTINEL get-master-addr-by-name crowdgate | head -n 1; }
fail() {
    echo "FAILED: $*" >&2
    tail -n 5 "$work"/*.log >&2
    exit 1
}
expect() { # expect WHAT EXPECTED COMMAND...
    local what=$1 want=$2 got
    shift 2
    for _ in $(seq 1 60); do
        got=$("$@" || true)
        [ "$got" = "$want" ] && { echo "ok: $what"; return; }
        sleep 0.5
    done
    fail "$what: wanted '$want', got '$got'"
}
role() { r "$1" ROLE | head -n 1; }
link() { r "$1" INFO replication | tr -d '\r' | grep '^master_link_status:' | cut -d: -f2; }
write() { r "$1" SET "$2" "$3" | head -n 1; }
# What Sentinel 0 knows of each replica's link (it reads INFO every 10 s;
# it promotes only a replica it has seen healthy).
sentinel_sees_replicas() {
    s 0 SENTINEL replicas crowdgate | tr -d '\r' | grep -A1 '^master-link-status$' | grep -v -- '^master-link-status$\|^--$'
}

for i in 0 1 2; do data_node "$i"; done
for i in 0 1 2; do sentinel "$i"; done

expect "pod 0 starts as the primary" master role 0
expect "pod 1 replicates it" up link 1
expect "pod 2 replicates it" up link 2
for i in 0 1 2; do expect "sentinel $i names pod 0" "$(redis_name 0)" primary_says "$i"; done
expect "appendfsync always" $'appendfsync\nalways' r 0 CONFIG GET appendfsync
expect "min-replicas-to-write 1" $'min-replicas-to-write\n1' r 0 CONFIG GET min-replicas-to-write
expect "a write with two replicas" OK write 0 k1 v1
expect "WAIT 2 sees both replicas" 2 r 0 WAIT 2 1000

stop "${pid[r1]}"
expect "one replica lost: writes go on" OK write 0 k2 v2
expect "WAIT 1 sees the other replica" 1 r 0 WAIT 1 1000
stop "${pid[r2]}"
expect "both replicas lost: no write" \
    "NOREPLICAS Not enough good replicas to write." write 0 k3 v3
data_node 1
data_node 2
expect "pod 1 rejoins" up link 1
expect "pod 2 rejoins" up link 2
expect "writes resume" OK write 0 k3 v3
expect "sentinel sees the replicas in sync" $'ok\nok' sentinel_sees_replicas

stop "${pid[r0]}"
# Sentinel promotes pod 1 or pod 2 (the one with the most data).
promoted=""
for _ in $(seq 1 60); do
    named=$(primary_says 0)
    [ "$named" = "$(redis_name 1)" ] && promoted=1
    [ "$named" = "$(redis_name 2)" ] && promoted=2
    [ -n "$promoted" ] && break
    sleep 0.5
done
[ -n "$promoted" ] || fail "no replica promoted"
other=$((3 - promoted))
for i in 0 1 2; do expect "sentinel $i promotes pod $promoted" "$(redis_name "$promoted")" primary_says "$i"; done
expect "pod $promoted is the primary" master role "$promoted"
expect "pod $other follows it" up link "$other"
expect "writes resume on pod $promoted before pod 0 is back" OK write "$promoted" k4 v4
expect "it has every acknowledged write" v3 r "$promoted" GET k3
data_node 0
expect "the old primary rejoins as a replica" slave role 0
expect "and follows pod $promoted" up link 0
expect "the old primary has every acknowledged write" v4 r 0 GET k4

stop "${pid[s2]}"
sentinel 2
expect "a restarted sentinel finds the primary" "$(redis_name "$promoted")" primary_says 2
expect "and is not a new peer to the others" 2 \
    sh -c "redis-cli -h 127.0.2.10 -p 26380 SENTINEL sentinels crowdgate | grep -c '^name\$'"

for i in 0 1 2; do stop "${pid[s$i]}"; done
for i in 0 1 2; do sentinel "$i"; done
for i in 0 1 2; do expect "sentinel $i, all restarted, finds pod $promoted" "$(redis_name "$promoted")" primary_says "$i"; done

echo "all checks passed"
