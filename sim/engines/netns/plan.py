"""The netns engine's plan: a compiled graph becomes a list of typed operations (pure).

Each operation is one iproute2/ethtool/sysctl/tc command, as an argument list. The plan is
data: ``apply.py`` runs it, ``to_script()`` prints it as a bash script a person can read and
run (``simnet run FILE --engine netns --dry-run``), and ``expected()`` says what the kernel
should show once it has run (the dry-run test compares that with ``ip -json``).

Mapping (Mininet's split of a topology description from its realisation):

* every namespace of the graph (a host's root namespace, a container's sandbox) becomes a
  network namespace ``<prefix>-<name>``; devices are created *inside* those namespaces with
  the names Linux shows there in the model (``eth0``, ``docker0``, ``veth1a2b3c4``), so
  nothing is ever created in the machine's own namespace and removing a run's namespaces
  removes all its devices;
* device kinds map to operations through :data:`DEVICE_BUILDERS` (``loopback``, ``veth``,
  ``bridge``, ``nic`` here; ``vxlan``, ``macvlan``, ``ipvlan``, ``dummy`` and the external
  ``switch`` in drivers.py); a kind without a builder is refused (:class:`PlanError`), and a
  kind the kernel lacks (ipvlan, dummy on this project's kernel) by the preflight (exit 3);
* a host's NIC is one end of a veth pair whose other end is the NIC at the far end of its
  link; the line rate becomes an HTB class (rate = ceil = the NIC rate, with the 24 bytes of
  Ethernet L1 overhead and the 84-byte minimum slot, as the model serialises) over a pfifo of
  ``txqueuelen + tx_ring`` packets; the propagation delay needs netem and is reported as not
  reproduced when the kernel has none;
* sysctls: every parameter the model honours is written with the model's value for that
  namespace (the scenario's, else the model's default), so the machine's own tuning does not
  leak into the replay. Every ``net.ipv4.tcp_*`` parameter the model has is per namespace on
  Linux 6.x (``tcp_wmem``, ``tcp_rmem``, ``tcp_timestamps``, ``tcp_window_scaling``,
  ``tcp_autocorking``, ``tcp_slow_start_after_idle``, the RTO and SYN retry limits, ...; the
  preflight checks each); most ``net.core.*`` are not (:data:`GLOBAL_SYSCTLS`).
  ``tcp_congestion_control`` is the exception (:data:`PER_SOCKET_SYSCTLS`): a new namespace
  inherits the machine's (bbr on some machines, where the model's default is cubic) and may
  only be given one of the machine's ``tcp_allowed_congestion_control``, so the agents set the
  namespace's value (the scenario's, else cubic) on every socket with ``TCP_CONGESTION``; neighbour parameters are per device in a namespace (a new namespace
  has no ``neigh.default``), so they are written for each device after it is created;
* kernel noise the model does not simulate is switched off before any link comes up: IPv6
  (router solicitations, MLD and DAD frames; Docker disables IPv6 in containers without it),
  ICMP redirects (``send_redirects``), and bridge netfilter (``bridge-nf-call-*``, on by
  default in a new namespace once br_netfilter is built in; the model's default is off, as
  Docker 28 leaves it). ``rp_filter`` and ``ip_forward`` are set explicitly because a new
  namespace inherits them from the machine's (``devconf_inherit_init_net`` = 0);
* offloads: TSO/GSO/GRO of every veth, NIC stand-in, bridge and vxlan device are set to the
  device's ``tso``/``gro`` in the graph (Linux's defaults unless the scenario's ``offloads:``
  say otherwise: TSO on everywhere, GRO on NICs) with ``ethtool -K`` (:func:`offload_features`).
  Checked on Linux 6.18: veth, bridge and vxlan accept ``tso``/``gso``/``gro`` on and off;
  macvlan refuses to turn TSO/GSO off (``MACVLAN_ALWAYS_ON_OFFLOADS``: its lower device
  segments instead), so a macvlan child is left as it is and, when the model's has TSO off,
  the difference is a note.

* Docker's iptables rules (nat.py): the nat table of a host that publishes ports or
  masquerades (DOCKER chain, DNAT, MASQUERADE), and DOCKER-ISOLATION between bridges, after
  the routes.

Scope and limitations: sysctls that are global rather than per namespace (``net.core.netdev_max_backlog``) are not
written and are listed in :attr:`Plan.notes` when the scenario sets them.
Validation: tests/engines/netns/test_plan.py (without root), test_netns.py (the script run
as root builds the topology ``expected()`` describes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from simnet.models.linux.params import SYSCTLS

from .ops import (AddrAdd, FdbAdd, Iptables, LinkAdd, LinkSet, LinkUp, NeighAdd, NetnsAdd, Offloads, Op, Plan,
                  RouteAdd, SetMaster, SetMtu, SetTxqlen, Sysctl, TcQdisc)

__all__ = ["Op", "NetnsAdd", "Sysctl", "LinkAdd", "SetMaster", "SetMtu", "SetTxqlen", "AddrAdd", "RouteAdd",
           "Offloads", "LinkUp", "TcQdisc", "LinkSet", "FdbAdd", "NeighAdd", "Iptables", "Plan", "PlanError",
           "build_plan", "DEVICE_BUILDERS", "PREFIX_RE", "IFNAMSIZ", "GLOBAL_SYSCTLS", "PER_SOCKET_SYSCTLS",
           "KernelFeatures",
           "offload_features"]

IFNAMSIZ = 15                                   # Linux interface names: 15 characters + NUL
PREFIX_RE = re.compile(r"^sn[0-9a-f]{5}$")      # a run's prefix: "sn" + 5 hex digits
# not writable in a namespace on Linux 6.18: global, or read-only mirrors of the machine's value
# set by the agents on each socket instead: a namespace's default congestion control may only be one of
# the machine's tcp_allowed_congestion_control (tcp_set_default_congestion_control: EPERM otherwise, and
# that list is global), while a socket with CAP_NET_ADMIN may take any the kernel has (TCP_CONGESTION)
PER_SOCKET_SYSCTLS = frozenset({"net.ipv4.tcp_congestion_control"})
GLOBAL_SYSCTLS = frozenset({"net.core.netdev_max_backlog", "net.core.wmem_default", "net.core.rmem_default",
                            "net.core.wmem_max", "net.core.rmem_max"})

# Written in every namespace before any link exists: kernel behaviour the model does not have.
NOISE_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),        # RS, MLD, DAD: no IPv6 in the model
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.conf.all.send_redirects", "0"),      # the model sends no ICMP redirects
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),           # inherited from the machine otherwise
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.arp_notify", "0"),          # no gratuitous ARP on link up
    ("net.ipv4.conf.default.arp_notify", "0"),
    ("net.bridge.bridge-nf-call-arptables", "0"),
    ("net.bridge.bridge-nf-call-ip6tables", "0"),
)


class PlanError(Exception):
    """The graph holds something the netns engine cannot build (names the node)."""


@dataclass(frozen=True)
class KernelFeatures:
    """What the kernel offers, from the preflight probe (``None``: not probed, assume the minimum)."""

    link_kinds: frozenset[str] = frozenset({"veth", "bridge"})
    qdiscs: frozenset[str] = frozenset({"htb", "pfifo"})
    sysctls: frozenset[str] | None = None          # sysctls writable in a namespace; None: all but GLOBAL
    values: dict[str, str] = field(default_factory=dict)   # what a new namespace reads for each sysctl
    iptables_error: str | None = None              # why iptables failed in a namespace ("": it works; None: untried)


@dataclass
class _Ctx:
    """What device builders need while planning."""

    g: nx.MultiDiGraph
    plan: Plan
    features: KernelFeatures
    done: set[str] = field(default_factory=set)
    links: list[Op] = field(default_factory=list)
    masters: list[Op] = field(default_factory=list)
    shaping: list[Op] = field(default_factory=list)
    ups: list[Op] = field(default_factory=list)
    children: list[Op] = field(default_factory=list)     # devices on a lower device (after every link)
    ports: list[Op] = field(default_factory=list)        # bridge port options (after the masters)
    child_ups: list[Op] = field(default_factory=list)    # after their lower devices are up
    late: list[Op] = field(default_factory=list)         # static FDB and neighbour entries (after the routes)
    neigh: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # graph ns -> neighbour params
    unwired: int = 0

    def ns(self, graph_ns: str) -> str:
        return self.plan.netns[graph_ns]

    def fact(self, nid: str, **extra: Any) -> None:
        d = self.g.nodes[nid]
        self.plan.devices.setdefault(d["netns"], {})[d["ifname"]] = {
            "kind": extra.pop("kind", d["kind"]), "mtu": d["mtu"], "mac": d["mac"].lower(),
            "master": self.g.nodes[d["master"]]["ifname"] if d.get("master") else None,
            "addrs": list(d["addrs"]), "up": True, **extra}


DeviceBuilder = Callable[[_Ctx, str, dict[str, Any]], None]


def _loopback(c: _Ctx, nid: str, d: dict[str, Any]) -> None:
    c.fact(nid)
    c.ups.insert(0, LinkUp(c.ns(d["netns"]), d["ifname"]))


def offload_features(d: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """``ethtool -K`` features of a device from the graph's ``tso``/``gro`` (compile.py ``_offloads``).

    GSO follows TSO: TCP builds GSO packets whatever the device's ``gso`` (``sk_setup_caps`` sets
    NETIF_F_GSO for every TCP socket), so either way a device without TSO has them cut into
    MSS-sized segments in software before it counts them (``validate_xmit_skb``), as the model
    does. GRO as the model has it: on the NICs (on a veth, GRO turns on its NAPI receive path,
    which aggregates as a NIC's GRO does), off elsewhere."""
    tso = bool(d.get("tso", True))
    return (("tso", tso), ("gso", tso), ("gro", bool(d.get("gro", False))))


def _offloads(c: _Ctx, ns: str, ifname: str, d: dict[str, Any]) -> None:
    c.plan.needs_tools.add("ethtool")
    c.shaping.append(Offloads(ns, ifname, offload_features(d)))


def _veth(c: _Ctx, nid: str, d: dict[str, Any]) -> None:
    pid = d["peer"]
    pd = c.g.nodes[pid]
    c.links.append(LinkAdd(c.ns(d["netns"]), d["ifname"], "veth", mac=d["mac"], mtu=d["mtu"],
                           peer_ns=c.ns(pd["netns"]), peer_ifname=pd["ifname"], peer_mac=pd["mac"],
                           peer_mtu=pd["mtu"]))
    c.plan.needs_link_kinds.add("veth")
    for x, xd in ((nid, d), (pid, pd)):
        c.done.add(x)
        c.fact(x)
        _offloads(c, c.ns(xd["netns"]), xd["ifname"], xd)
        c.ups.append(LinkUp(c.ns(xd["netns"]), xd["ifname"]))
        c.plan.carrier.append((xd["netns"], xd["ifname"]))


def _bridge(c: _Ctx, nid: str, d: dict[str, Any]) -> None:
    ns = c.ns(d["netns"])
    # mcast_snooping 0: with snooping on, a bridge joins 224.0.0.106 (all-snoopers, RFC 4286) when it comes
    # up and sends two IGMPv3 reports, flooded to its ports. Docker's bridges do too, but come up before any
    # container is attached; the replay brings the bridge up with its ports, and the model has no multicast.
    c.links.insert(0, LinkAdd(ns, d["ifname"], "bridge", mac=d["mac"], mtu=d["mtu"],
                              type_args=("mcast_snooping", "0")))
    c.plan.needs_link_kinds.add("bridge")
    c.fact(nid)
    _offloads(c, ns, d["ifname"], d)
    c.ups.insert(0, LinkUp(ns, d["ifname"]))
    if any(k == "master" for _u, _v, k in c.g.in_edges(nid, data="kind")):
        c.plan.carrier.append((d["netns"], d["ifname"]))


def _nic(c: _Ctx, nid: str, d: dict[str, Any]) -> None:
    """A host's NIC: a veth end facing the NIC at the other end of its link, rate-limited.

    A NIC cabled to an external switch is built with the switch (drivers.py)."""
    if any(k == "port" for _u, _v, k in c.g.out_edges(nid, data="kind")):
        return
    wires = [v for _u, v, k in c.g.out_edges(nid, data="kind") if k == "wire"]
    ns = c.ns(d["netns"])
    wire: dict[str, Any] = {}
    if wires:
        pid = wires[0]
        pd = c.g.nodes[pid]
        delay_s = next(dd["delay_s"] for _u, v, dd in c.g.out_edges(nid, data=True) if v == pid)
        wire = {x: next(dd for _u, v, dd in c.g.out_edges(x, data=True) if v == y and dd.get("kind") == "wire")
                for x, y in ((nid, pid), (pid, nid))}
        c.links.append(LinkAdd(ns, d["ifname"], "veth", mac=d["mac"], mtu=d["mtu"], peer_ns=c.ns(pd["netns"]),
                               peer_ifname=pd["ifname"], peer_mac=pd["mac"], peer_mtu=pd["mtu"]))
        ends = [(nid, d), (pid, pd)]
    else:
        # no cable: a veth whose peer stays down in the same namespace (no carrier, as an unplugged NIC)
        c.unwired += 1
        peer = f"{c.plan.prefix}u{c.unwired}"
        c.links.append(LinkAdd(ns, d["ifname"], "veth", mac=d["mac"], mtu=d["mtu"], peer_ifname=peer))
        ends = [(nid, d)]
        delay_s = 0.0
    c.plan.needs_link_kinds.add("veth")
    if delay_s > 0:
        far = c.g.nodes[ends[-1][0]]
        delay_note(c, delay_s, f"the link {d['netns']}:{d['ifname']} — {far['netns']}:{far['ifname']}")
    for x, xd in ends:
        xns = c.ns(xd["netns"])
        c.done.add(x)
        c.fact(x, kind="nic", txqueuelen=xd["txqueuelen"])
        _offloads(c, xns, xd["ifname"], xd)
        c.shaping.append(SetTxqlen(xns, xd["ifname"], xd["txqueuelen"]))
        e = wire.get(x, {})
        # the link's impairments (nic.py): its rate caps the NIC's, its queue replaces the qdisc and ring
        rate = min(xd["rate_bps"], e.get("rate_bps") or xd["rate_bps"])
        limit = e["queue"] + 1 if e.get("queue") else xd["txqueuelen"] + xd["tx_ring"]
        impairment_notes(c, f"{xd['netns']}:{xd['ifname']}", e)
        shape(c, xns, xd["ifname"], rate, limit, delay_s)
        c.ups.append(LinkUp(xns, xd["ifname"]))
        if wires:
            c.plan.carrier.append((xd["netns"], xd["ifname"]))


def impairment_notes(c: _Ctx, where: str, e: dict[str, Any]) -> None:
    """Report the link losses and jitter the replay does not reproduce (netem, absent here, is not used)."""
    lost = [f"frames {', '.join(map(str, e['drop']))} (drop list)" if e.get("drop") else "",
            f"{e['loss'] * 100:g} % of frames at random" if e.get("loss") else "",
            f"±{e['jitter_s'] * 1e6:g} µs of jitter" if e.get("jitter_s") else ""]
    lost = [x for x in lost if x]
    if lost:
        c.plan.notes.append(f"the model's link from {where} has {' and '.join(lost)}: the replay's does not (the "
                            "kernel has no netem qdisc, and simnet applies none): its retransmissions and timing "
                            "differ")


def delay_note(c: _Ctx, delay_s: float, what: str) -> None:
    """Report a propagation delay the kernel cannot reproduce (no netem)."""
    if "netem" not in c.features.qdiscs:
        c.plan.notes.append(f"propagation delay {delay_s * 1e6:g} µs of {what} (the kernel has no netem qdisc): "
                            "the replay's link has no delay")


def shape(c: _Ctx, ns: str, ifname: str, rate_bps: float, limit_pkts: int, delay_s: float) -> None:
    """A line rate on a veth standing in for a cable end: HTB (rate = ceil, L1 overhead) over a FIFO."""
    c.plan.needs_qdiscs.update({"htb", "pfifo"})
    c.plan.needs_tools.add("tc")
    if not any("serialisation" in n for n in c.plan.notes):
        c.plan.notes.append("NIC line rates are enforced by HTB (the average rate, and queueing above it), but a "
                            "frame is not held for its serialisation time: the replay's latencies lack it (123 µs "
                            "for a 1538-byte slot at 100mbit)")
    rate = f"{int(round(rate_bps))}bit"
    limit = str(limit_pkts)
    c.shaping += [
        TcQdisc(ns, ifname, ("qdisc", "replace", "root", "handle", "1:", "htb", "default", "1")),
        # 24 bytes of preamble/SFD/FCS/IFG per frame and a 60 + 24-byte minimum slot, as the model
        TcQdisc(ns, ifname, ("class", "add", "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate,
                             "overhead", "24", "mpu", "84")),
    ]
    if delay_s > 0 and "netem" in c.features.qdiscs:
        c.plan.needs_qdiscs.add("netem")
        c.shaping.append(TcQdisc(ns, ifname, ("qdisc", "add", "parent", "1:1", "handle", "10:", "netem", "delay",
                                              f"{delay_s * 1e6:g}us", "limit", limit)))
    else:
        c.shaping.append(TcQdisc(ns, ifname, ("qdisc", "add", "parent", "1:1", "handle", "10:", "pfifo", "limit",
                                              limit)))


DEVICE_BUILDERS: dict[str, DeviceBuilder] = {
    "loopback": _loopback,
    "veth": _veth,
    "bridge": _bridge,
    "nic": _nic,
}


def _register_drivers() -> None:
    from . import drivers

    DEVICE_BUILDERS.update(drivers.BUILDERS)


_register_drivers()


def _sysctl_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value).strip()


def _default_text(name: str) -> str:
    s = SYSCTLS[name]
    if isinstance(s.default, bool):
        return str(int(s.default))
    if isinstance(s.default, float):
        return str(round(s.default / s.convert(1)))
    if isinstance(s.default, (tuple, list)):
        return " ".join(str(v) for v in s.default)
    return str(s.default)


def build_plan(g: nx.MultiDiGraph, prefix: str, features: KernelFeatures | None = None) -> Plan:
    """The operations that build graph ``g`` with kernel names under ``prefix``.

    Raises :class:`PlanError` for anything the engine cannot build (an unknown device kind,
    a name longer than Linux's 15 characters).
    """
    if not PREFIX_RE.match(prefix):
        raise PlanError(f"bad run prefix {prefix!r} (expected 'sn' and 5 hex digits)")
    features = features or KernelFeatures()
    namespaces = [n for n, d in g.nodes(data=True) if d["kind"] == "netns"]
    switches = [n for n, d in g.nodes(data=True) if d["kind"] == "switch"]
    plan = Plan(prefix=prefix, netns={n: f"{prefix}-{n}" for n in [*namespaces, *switches]})
    c = _Ctx(g=g, plan=plan, features=features)
    for n in [*namespaces, *switches]:
        plan.ops.append(NetnsAdd(plan.netns[n]))
    # namespace-wide sysctls, before any device exists
    for n in namespaces:
        node = g.nodes[n]
        values = list(NOISE_SYSCTLS)
        per_dev_neigh = []
        for name in SYSCTLS:
            if name in PER_SOCKET_SYSCTLS:
                continue
            v = node["sysctls"].get(name)
            text = _sysctl_text(name, v) if v is not None else _default_text(name)
            if name.startswith("net.ipv4.neigh.default."):
                per_dev_neigh.append((name.rsplit(".", 1)[1], text))
                continue
            exists = name not in GLOBAL_SYSCTLS if features.sysctls is None else name in features.sysctls
            if not exists:
                have = features.values.get(name)
                if (v is not None and have is None) or (have is not None and have.split() != text.split()):
                    plan.notes.append(f"sysctl {name} cannot be set in a namespace on this kernel: the replay "
                                      f"runs with the machine's value ({have or 'unknown'}), the model with {text}"
                                      + ("" if v is None else f" (in {n})"))
                continue
            values.append((name, text))
        plan.ops.append(Sysctl(plan.netns[n], _writable(values, features)))
        c.neigh[n] = per_dev_neigh
        plan.routes[n] = []
        plan.devices.setdefault(n, {})
    for n in switches:            # a switch's namespace holds a bridge and nothing that speaks IP
        plan.ops.append(Sysctl(plan.netns[n], _writable(list(NOISE_SYSCTLS), features)))
        plan.devices.setdefault(n, {})
    # devices
    for nid, d in g.nodes(data=True):
        if d["kind"] == "netns" or nid in c.done:
            continue
        builder = DEVICE_BUILDERS.get(d["kind"])
        if builder is None:
            raise PlanError(f"the netns engine cannot build {d['kind']} devices yet ({nid}); "
                            f"it builds: {', '.join(sorted(DEVICE_BUILDERS))}")
        if len(d.get("ifname", "")) > IFNAMSIZ:
            raise PlanError(f"interface name {d['ifname']!r} of {nid} is longer than {IFNAMSIZ} characters")
        builder(c, nid, d)
        c.done.add(nid)
    plan.ops += c.links + c.children
    # per-device neighbour parameters (a new namespace has no neigh.default), before links come up
    for n in namespaces:
        neigh = c.neigh[n]
        devs = [d["ifname"] for nid, d in g.nodes(data=True)
                if d["kind"] not in ("netns", "loopback", "switch") and d["netns"] == n]
        vals = tuple((_neigh_key(ifname, k), v) for ifname in devs for k, v in neigh)
        if vals:
            plan.ops.append(Sysctl(plan.netns[n], vals))
    for nid, d in g.nodes(data=True):
        if d["kind"] not in ("netns", "switch") and d.get("master"):
            plan.ops.append(SetMaster(c.ns(d["netns"]), d["ifname"], g.nodes[d["master"]]["ifname"]))
    plan.ops += c.masters + c.ports + c.shaping
    for nid, d in g.nodes(data=True):
        if d["kind"] in ("netns", "loopback", "switch"):
            continue
        for a in d["addrs"]:
            plan.ops.append(AddrAdd(c.ns(d["netns"]), d["ifname"], a))
    plan.ops += c.ups + c.child_ups
    for n in namespaces:
        for r in g.nodes[n]["routes"]:
            dst = "default" if r["dst"] in ("default", "0.0.0.0/0") else str(ipaddress.IPv4Network(r["dst"]))
            plan.ops.append(RouteAdd(plan.netns[n], dst, r.get("via"), r.get("dev")))
            plan.routes[n].append({"dst": dst, "via": r.get("via"), "dev": r.get("dev")})
    plan.ops += c.late
    from .nat import netfilter_ops

    for n in namespaces:
        plan.ops += netfilter_ops(g, n, plan)
    return plan


def _writable(values: list[tuple[str, str]], features: KernelFeatures) -> tuple[tuple[str, str], ...]:
    """The sysctls a namespace of this kernel has (bridge netfilter ones only with br_netfilter)."""
    if features.sysctls is not None:
        values = [(k, v) for k, v in values if k in features.sysctls or k not in _OPTIONAL_NOISE]
    return tuple(values)


_OPTIONAL_NOISE = frozenset(k for k, _v in NOISE_SYSCTLS if k.startswith("net.bridge."))


def _neigh_key(ifname: str, param: str) -> str:
    """A per-device neighbour sysctl; sysctl's slash spelling when the name holds a dot (eth0.50)."""
    if "." in ifname:
        return f"net/ipv4/neigh/{ifname}/{param}"
    return f"net.ipv4.neigh.{ifname}.{param}"
