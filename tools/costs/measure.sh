#!/usr/bin/env bash
# The measurements behind simnet's default CPU cost profile (models/linux/cpu.py), by hand.
#
# A C send() loop (snd.c) pinned to CPU 0 sends UDP datagrams as fast as it can for SECONDS,
# a receiver (rcv.c) pinned to CPU 1 reads them; each prints its thread's CPU time per
# datagram. veth and loopback deliver in the sender's softirq, so the sender's time is the
# whole path up to the receiving socket. Paths: loopback; a veth pair between two
# namespaces; veth + bridge + veth (docker0), with br_netfilter off and on; veth + router
# namespace + veth; Docker's overlay between two "hosts" joined by a veth pair (container veth,
# br0, vxlan0 with Docker's flags and static FDB/neighbour entries, the hosts' stacks, and back);
# two bridge-mode macvlan children of one parent; a published port reached from a container on
# the same bridge without the userland proxy (DNAT and conntrack on every packet, hairpin out of
# the bridge). Payloads 64, 1472 and 4000 bytes (4000: three IP fragments; the overlay takes
# 64, 1422 and 1472, its MTU being 1450).
#
# Every veth and vxlan device runs with TSO, GSO and GRO off, as the netns engine's replays and
# `simnet calibrate` run them (the model segments nothing).
#
# Usage (root; iproute2, ethtool, iptables, a C compiler, taskset): tools/costs/measure.sh [SECONDS]   (default 3)
#   SIZES="64 1472" restricts the payloads, ONLY=REGEX the paths (by label), e.g. ONLY='vxlan|macvlan'.
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
       net.ipv6.conf.default.disable_ipv6=1; ip -n "$P-$1" link set lo up
       # a new namespace's bridges call iptables when br_netfilter is built in; the model's default is off
       ip netns exec "$P-$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true; }
off() {   # off NS IF: no TSO/GSO/GRO, as the netns engine sets them (the model segments nothing)
  ip netns exec "$P-$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
}
veth() {  # veth NS_A IF_A NS_B IF_B
  ip -n "$P-$1" link add "$2" type veth peer name "$4" netns "$P-$3"
  off "$1" "$2"; off "$3" "$4"
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
# overlay: hosts x1, x2 joined by a veth; per host an overlay namespace o1/o2 with br0 and vxlan0
# (created from the host, whose namespace keeps its UDP socket), a container c1/c2 on br0
ns x1; ns x2; veth x1 eth0 x2 eth0
ip -n "$P-x1" addr add 10.84.0.1/24 dev eth0; ip -n "$P-x2" addr add 10.84.0.2/24 dev eth0
for i in 1 2; do
  ns "o$i"; ns "c$i"
  ip -n "$P-o$i" link add br0 mtu 1450 type bridge mcast_snooping 0
  ip -n "$P-o$i" addr add 10.85.0.1/24 dev br0; ip -n "$P-o$i" link set br0 up
  ip -n "$P-x$i" link add vxlan0 mtu 1450 netns "$P-o$i" type vxlan id 4096 dstport 4789 local "10.84.0.$i" \
     learning proxy l2miss l3miss
  off "o$i" vxlan0; ip -n "$P-o$i" link set vxlan0 master br0; ip -n "$P-o$i" link set vxlan0 up
  veth "c$i" eth0 "o$i" veth0
  ip -n "$P-c$i" link set eth0 mtu 1450; ip -n "$P-o$i" link set veth0 mtu 1450
  ip -n "$P-o$i" link set veth0 master br0; ip -n "$P-c$i" addr add "10.85.0.1$i/24" dev eth0
done
for i in 1 2; do   # Docker's peer entries: the other host's container, at the other host's VTEP
  j=$((3 - i)); mac=$(ip netns exec "$P-c$j" cat /sys/class/net/eth0/address)
  ip netns exec "$P-o$i" bridge fdb add "$mac" dev vxlan0 dst "10.84.0.$j" self permanent
  ip -n "$P-o$i" neigh add "10.85.0.1$j" lladdr "$mac" dev vxlan0 nud permanent
done
# macvlan: two bridge-mode children of mh's eth0 (a veth whose peer is up: the parent has carrier)
ns mh; ns mp; ns ma; ns mb; veth mh eth0 mp eth0
for c in ma mb; do ip -n "$P-mh" link add link eth0 name eth0 netns "$P-$c" type macvlan mode bridge; done
ip -n "$P-ma" addr add 10.86.0.2/24 dev eth0; ip -n "$P-mb" addr add 10.86.0.3/24 dev eth0
ip -n "$P-ma" link set eth0 up; ip -n "$P-mb" link set eth0 up
# nat: na and nb on br0 of nh; nb publishes 9000/udp on 10.87.0.1 (DNAT, no userland proxy)
ns nh; ns na; ns nb
ip -n "$P-nh" link add br0 type bridge mcast_snooping 0; ip -n "$P-nh" link set br0 up
ip netns exec "$P-nh" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
   net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.br0.send_redirects=0
ip netns exec "$P-nh" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
veth na eth0 nh vetha; veth nb eth0 nh vethb
ip -n "$P-nh" link set vetha master br0; ip -n "$P-nh" link set vethb master br0
ip -n "$P-nh" addr add 10.87.0.1/24 dev br0
ip -n "$P-na" addr add 10.87.0.2/24 dev eth0; ip -n "$P-nb" addr add 10.87.0.3/24 dev eth0
ip -n "$P-na" route add default via 10.87.0.1
ip netns exec "$P-nh" iptables -w -t nat -N DOCKER
ip netns exec "$P-nh" iptables -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
ip netns exec "$P-nh" iptables -w -t nat -A DOCKER -p udp --dport 9000 -j DNAT --to-destination 10.87.0.3:9000
sleep 1   # linkwatch: let every link come up before the first datagram

point() {  # point LABEL SENDER_NS RECEIVER_NS DST SIZE   (ONLY=REGEX: just the paths whose label matches)
  [[ -n "${ONLY:-}" && ! "$1" =~ $ONLY ]] && return 0
  ip netns exec "$P-$3" taskset -c 1 "$BIN/rcv" "$(awk "BEGIN{print $SECS + 2}")" > "$BIN/r.out" &
  local rpid=$!
  sleep 0.2
  local s; s=$(ip netns exec "$P-$2" taskset -c 0 "$BIN/snd" "$4" "$5" "$SECS")
  wait "$rpid"
  printf '%-22s %5s  sender %s µs/pkt  receiver %s µs/pkt\n' "$1" "$5" \
    "$(sed -n 's/.*us_per_pkt_cpu=\([0-9.]*\).*/\1/p' <<<"$s")" "$(sed -n 's/.*us_per_pkt=\([0-9.]*\).*/\1/p' "$BIN/r.out")"
}

for size in ${SIZES:-64 1472 4000}; do
  point "loopback"              lo lo 127.0.0.1 "$size"
  point "veth pair"             va vb 10.81.0.2 "$size"
  point "veth+bridge+veth"      ba bb 10.82.0.3 "$size"
  if ip netns exec "$P-bh" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null; then
    point "  same, br_netfilter"  ba bb 10.82.0.3 "$size"
    ip netns exec "$P-bh" sysctl -qw net.bridge.bridge-nf-call-iptables=0
  fi
  point "veth+router+veth"      ra rb 10.83.2.2 "$size"
  point "overlay (vxlan)"       c1 c2 10.85.0.12 "$([ "$size" = 1472 ] && echo 1422 || echo "$size")"
  [ "$size" = 1472 ] && point "overlay (vxlan)" c1 c2 10.85.0.12 1472
  point "macvlan bridge mode"   ma mb 10.86.0.3 "$size"
  point "published port (nat)"  na nb 10.87.0.1 "$size"
done
