#!/usr/bin/env bash
# The measurements behind simnet's default CPU cost profile (models/linux/cpu.py), by hand.
#
# A C send() loop (snd.c) pinned to CPU 0 sends UDP datagrams as fast as it can for SECONDS,
# a receiver (rcv.c) pinned to CPU 1 reads them; each prints its thread's CPU time per
# datagram. veth and loopback deliver in the sender's softirq, so the sender's time is the
# whole path up to the receiving socket. Paths: loopback; a veth pair between two
# namespaces; veth + bridge + veth (docker0), with br_netfilter off and on; veth + router
# namespace + veth. Payloads 64, 1472 and 4000 bytes (4000: three IP fragments).
#
# Usage (root; iproute2, a C compiler, taskset): tools/costs/measure.sh [SECONDS]   (default 3)
# `simnet calibrate` does the same through the netns engine and fits a profile from it.
# Everything is created in namespaces named snXXXXX-*, removed on exit (also on Ctrl-C).
set -euo pipefail
SECS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
P="sn$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-5)"
BIN=$(mktemp -d)
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$BIN"
}
trap cleanup EXIT INT TERM
cc -O2 -o "$BIN/snd" "$HERE/snd.c"
cc -O2 -o "$BIN/rcv" "$HERE/rcv.c"

ns() { ip netns add "$P-$1"; ip netns exec "$P-$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
       net.ipv6.conf.default.disable_ipv6=1; ip -n "$P-$1" link set lo up; }
veth() {  # veth NS_A IF_A NS_B IF_B
  ip -n "$P-$1" link add "$2" type veth peer name "$4" netns "$P-$3"
  ip -n "$P-$1" link set "$2" up; ip -n "$P-$3" link set "$4" up
}

# loopback: one namespace
ns lo
# veth pair: a <-> b
ns va; ns vb; veth va eth0 vb eth0
ip -n "$P-va" addr add 10.81.0.1/24 dev eth0; ip -n "$P-vb" addr add 10.81.0.2/24 dev eth0
# bridge: a - veth - br0 - veth - b, in a host namespace
ns bh; ns ba; ns bb
ip -n "$P-bh" link add br0 type bridge mcast_snooping 0; ip -n "$P-bh" link set br0 up
ip netns exec "$P-bh" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
veth ba eth0 bh vetha; veth bb eth0 bh vethb
ip -n "$P-bh" link set vetha master br0; ip -n "$P-bh" link set vethb master br0
ip -n "$P-ba" addr add 10.82.0.2/24 dev eth0; ip -n "$P-bb" addr add 10.82.0.3/24 dev eth0
# router: a - veth - r - veth - b
ns ra; ns rr; ns rb; veth ra eth0 rr eth0; veth rr eth1 rb eth0
ip netns exec "$P-rr" sysctl -qw net.ipv4.ip_forward=1
ip -n "$P-ra" addr add 10.83.1.2/24 dev eth0; ip -n "$P-rr" addr add 10.83.1.1/24 dev eth0
ip -n "$P-rb" addr add 10.83.2.2/24 dev eth0; ip -n "$P-rr" addr add 10.83.2.1/24 dev eth1
ip -n "$P-ra" route add default via 10.83.1.1; ip -n "$P-rb" route add default via 10.83.2.1
sleep 1   # linkwatch: let every link come up before the first datagram

point() {  # point LABEL SENDER_NS RECEIVER_NS DST SIZE
  ip netns exec "$P-$3" taskset -c 1 "$BIN/rcv" "$(awk "BEGIN{print $SECS + 2}")" > "$BIN/r.out" &
  local rpid=$!
  sleep 0.2
  local s; s=$(ip netns exec "$P-$2" taskset -c 0 "$BIN/snd" "$4" "$5" "$SECS")
  wait "$rpid"
  printf '%-22s %5s  sender %s µs/pkt  receiver %s µs/pkt\n' "$1" "$5" \
    "$(sed -n 's/.*us_per_pkt_cpu=\([0-9.]*\).*/\1/p' <<<"$s")" "$(sed -n 's/.*us_per_pkt=\([0-9.]*\).*/\1/p' "$BIN/r.out")"
}

for size in 64 1472 4000; do
  point "loopback"              lo lo 127.0.0.1 "$size"
  point "veth pair"             va vb 10.81.0.2 "$size"
  point "veth+bridge+veth"      ba bb 10.82.0.3 "$size"
  if ip netns exec "$P-bh" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null; then
    point "  same, br_netfilter"  ba bb 10.82.0.3 "$size"
    ip netns exec "$P-bh" sysctl -qw net.bridge.bridge-nf-call-iptables=0
  fi
  point "veth+router+veth"      ra rb 10.83.2.2 "$size"
done
