#!/usr/bin/env bash
# Demo: the lrp HTTP server on a real AF_XDP socket, fetched by curl and loaded by wrk
# from a Linux peer. Builds two private network namespaces joined by a veth pair, runs
# `http-server` in one (its address is owned by lrp, not by the kernel), curl and wrk in
# the other, prints the server's per-listener statistics, and removes everything on exit.
#
# Usage (root): bash lrp-examples/demo/http-demo.sh [ni|soft|eager] [wrk seconds]
set -euo pipefail
mode="${1:-ni}"
secs="${2:-5}"
[ "$(id -u)" = 0 ] || { echo "run as root (AF_XDP and network namespaces need it)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
bash scripts/setup-debian.sh
cargo build --release -q -p lrp-examples --bin http-server
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/http-server"

id="$$"; a="lrpdemo-a-$id"; b="lrpdemo-b-$id"; va="lrpda$id"; vb="lrpdb$id"
va="${va:0:15}"; vb="${vb:0:15}"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$a"; ip netns add "$b"
ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
ip -n "$a" link set "$va" up; ip -n "$a" link set lo up
ip -n "$b" link set "$vb" up; ip -n "$b" link set lo up
ip -n "$b" addr add 10.99.0.1/24 dev "$vb"
# veth leaves TX checksums partial: the Linux peer must send complete ones.
ip netns exec "$b" ethtool -K "$vb" tx off >/dev/null

echo "== http-server on $va in $a (mode $mode), lrp owns 10.99.0.2"
ip netns exec "$a" "$bin" --iface "$va" --ip 10.99.0.2/24 --mode "$mode" --port 80 \
  --stats-every 1 &
server_pid=$!
for _ in $(seq 50); do
  ip netns exec "$b" curl -s -o /dev/null --max-time 1 http://10.99.0.2/obj/0 && break
  sleep 0.2
done
echo "== curl: 64 KiB object"
ip netns exec "$b" curl -s --max-time 5 -o /dev/null -w 'HTTP %{http_code}, %{size_download} bytes in %{time_total}s\n' \
  http://10.99.0.2/obj/64k
echo "== wrk: ${secs}s, 2 threads, 16 connections, Connection: close"
ip netns exec "$b" wrk -t2 -c16 -d"${secs}s" -H 'Connection: close' http://10.99.0.2/obj/1k
