#!/usr/bin/env bash
# syn_flood.sh — a legitimate client against lrp's http-server (NI-LRP) and Linux nginx,
# in turn, on the same address and port, while lrp-gen floods the port with spoofed SYNs
# (sources in 10.77.9.128/25: nobody answers their SYN-ACKs).
#
#   sudo [SERVERS="lrp nginx"] benches/scripts/syn_flood.sh [RATES...]   (default: 0 20000 80000)
#
# Needs target/release/{http-server,lrp-gen}
# (cargo build --release -p lrp-examples --bin http-server --bin lrp-gen), nginx, curl, wrk.
# For each server and rate: start the flood (12 s), wait 1 s, run 20 curls one after
# another (connect timeout 3 s) and report successes, connect time median/max
# (curl's time_connect; a failed connect counts as 3 s in the max), then wrk -t1 -c4 -d5s.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/target/release
RATES=${*:-0 20000 80000}
C=sfc$$ S=sfs$$
CIP=10.77.9.1 SIP=10.77.9.2
WORK=$(mktemp -d)
cleanup() {
    [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    ip netns del $C 2>/dev/null; ip netns del $S 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add $C && ip netns add $S
ip link add veth-c netns $C type veth peer name veth-s netns $S
ip -n $C link set veth-c up && ip -n $S link set veth-s up
ip -n $C addr add $CIP/24 dev veth-c
# veth TX checksum offload leaves partial checksums that lrp (rightly) refuses.
ip netns exec $C ethtool -K veth-c tx off >/dev/null
ip netns exec $S ethtool -K veth-s tx off >/dev/null
ip -n $C link set lo up && ip -n $S link set lo up
SMAC=$(ip -n $S -br link show veth-s | awk '{print $3}')
cat > "$WORK/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen $SIP:80 backlog=128; location / { return 200 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"; } }
}
NGX

start_server() {  # $1: lrp | nginx
    if [ "$1" = lrp ]; then
        ip -n $S addr flush dev veth-s
        ip netns exec $S "$BIN/http-server" --iface veth-s --ip $SIP/24 --mode ni --stats-every 2 \
            > "$WORK/lrp.out" 2> "$WORK/lrp.err" &
        SRV=$!
    else
        ip -n $S addr add $SIP/24 dev veth-s
        ip netns exec $S sysctl -qw net.ipv4.tcp_syncookies=1
        ip netns exec $S nginx -c "$WORK/nginx.conf" -g 'daemon on;'
    fi
    for _ in $(seq 50); do
        ip netns exec $C curl -s -o /dev/null --max-time 1 http://$SIP/obj/64 && return 0
        sleep 0.2
    done
    echo "server $1 did not come up" >&2; cat "$WORK/lrp.err" >&2; return 1
}
stop_server() {
    if [ "$1" = lrp ]; then kill -INT "$SRV"; wait "$SRV" 2>/dev/null; SRV=
    else kill "$(cat "$WORK/nginx.pid")"; sleep 0.5; ip -n $S addr flush dev veth-s; fi
    ip -n $C neigh flush dev veth-c
}

printf "%-6s %8s %12s %6s %14s %14s %10s\n" server rate achieved ok connect_med connect_max req/s
for server in ${SERVERS:-lrp nginx}; do
    start_server $server || exit 1
    for rate in $RATES; do
        GEN=
        if [ "$rate" -gt 0 ]; then
            ip netns exec $C "$BIN/lrp-gen" --iface veth-c --dst $SIP:80 --dst-mac "$SMAC" \
                --src-net 10.77.9.128/25 --rate "$rate" --seconds 12 syn > "$WORK/gen.out" 2>&1 &
            GEN=$!
            sleep 1
        fi
        : > "$WORK/times"; ok=0
        for _ in $(seq 20); do
            t=$(ip netns exec $C curl -s -o /dev/null --connect-timeout 3 --max-time 5 \
                -w '%{time_connect} %{http_code}' http://$SIP/obj/64)
            if [ "${t#* }" = 200 ]; then ok=$((ok+1)); echo "${t% *}" >> "$WORK/times"; else echo 3 >> "$WORK/times"; fi
        done
        med=$(sort -g "$WORK/times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        max=$(sort -g "$WORK/times" | tail -1)
        rps=$(ip netns exec $C wrk -t1 -c4 -d5s http://$SIP/obj/64 2>/dev/null | awk '/Requests\/sec/ {print $2}')
        achieved=0
        if [ -n "$GEN" ]; then
            wait "$GEN"
            achieved=$(sed -n 's/^sent .*(\([0-9]*\)\/s).*/\1/p' "$WORK/gen.out")
        fi
        printf "%-6s %8s %12s %4s/20 %13ss %13ss %10s\n" $server "$rate" "$achieved" $ok "$med" "$max" "${rps:-?}"
        [ -n "$GEN" ] && cp "$WORK/gen.out" "/tmp/syn_flood_gen_${server}_$rate.txt"
        sleep 2
    done
    [ "$server" = lrp ] && cp "$WORK/lrp.err" /tmp/syn_flood_lrp.err
    stop_server $server
done
