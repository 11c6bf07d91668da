"""Every tunable of the Linux model, declared once: default, unit and what it mirrors.

Defaults are those of a stock Linux 6.x kernel (see ``REFERENCE.md`` in the project's shared
notes: sections C, D, E, S). Each field's metadata names the sysctl (in the unit of its
``/proc/sys`` file) or the kernel constant it mirrors; the same declarations feed scenario
validation (``sysctls:``), ``simnet params`` and the notebooks.

Scope and limitations: only knobs that the model actually consults are declared; a sysctl
that is not declared here is refused at load time rather than silently ignored.
Validation: tests/models/linux/test_params.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Callable

__all__ = [
    "knob",
    "NeighParams",
    "IpParams",
    "IcmpParams",
    "CoreParams",
    "NicParams",
    "BridgeParams",
    "StackParams",
    "SYSCTLS",
    "Sysctl",
    "all_knobs",
    "apply_sysctls",
]


def knob(default: Any, *, unit: str = "", sysctl: str | None = None, src: str = "", help: str = "",
         to_si: float = 1.0) -> Any:
    """A dataclass field carrying its provenance.

    ``to_si`` converts the sysctl's unit to the field's SI unit (``0.001`` for ``*_ms``).
    """
    return field(default=default, metadata={"unit": unit, "sysctl": sysctl, "src": src, "help": help,
                                            "to_si": to_si})


@dataclass(frozen=True, slots=True)
class NeighParams:
    """IPv4 neighbour (ARP) parameters: ``arp_tbl`` in net/ipv4/arp.c; states in neighbour.c."""

    base_reachable_time_s: float = knob(30.0, unit="s", sysctl="net.ipv4.neigh.default.base_reachable_time_ms",
                                        to_si=1e-3, src="arp_tbl: BASE_REACHABLE_TIME = 30*HZ",
                                        help="REACHABLE lasts a uniform draw in [0.5, 1.5) times this")
    delay_first_probe_time_s: float = knob(5.0, unit="s", sysctl="net.ipv4.neigh.default.delay_first_probe_time",
                                           src="arp_tbl: DELAY_PROBE_TIME = 5*HZ",
                                           help="time in DELAY before unicast probing")
    retrans_time_s: float = knob(1.0, unit="s", sysctl="net.ipv4.neigh.default.retrans_time_ms", to_si=1e-3,
                                 src="arp_tbl: RETRANS_TIME = 1*HZ", help="interval between ARP probes")
    mcast_solicit: int = knob(3, unit="probes", sysctl="net.ipv4.neigh.default.mcast_solicit",
                              src="arp_tbl: MCAST_PROBES", help="broadcast requests before FAILED")
    ucast_solicit: int = knob(3, unit="probes", sysctl="net.ipv4.neigh.default.ucast_solicit",
                              src="arp_tbl: UCAST_PROBES", help="unicast probes in PROBE before FAILED")
    app_solicit: int = knob(0, unit="probes", sysctl="net.ipv4.neigh.default.app_solicit",
                            src="arp_tbl: APP_PROBES", help="probes via user space (arpd); not modelled beyond 0")
    unres_qlen_bytes: int = knob(212992, unit="bytes", sysctl="net.ipv4.neigh.default.unres_qlen_bytes",
                                 src="arp_tbl: QUEUE_LEN_BYTES = SK_WMEM_DEFAULT",
                                 help="truesize bytes queued per INCOMPLETE entry; the oldest is dropped above it")
    locktime_s: float = knob(1.0, unit="s", sysctl=None, src="arp_tbl: LOCKTIME = 1*HZ",
                             help="an entry is not overridden by another MAC within this time of an update")
    reach_rerandom_s: float = knob(300.0, unit="s", src="neigh_periodic_work: reachable_time redrawn every 300 s",
                                   help="how often reachable_time is redrawn")


@dataclass(frozen=True, slots=True)
class IpParams:
    """IPv4: net/ipv4/ip_output.c, ip_input.c, ip_forward.c, ip_fragment.c."""

    ip_forward: bool = knob(False, unit="bool", sysctl="net.ipv4.ip_forward", src="ip-sysctl.rst (0; Docker sets 1)",
                            help="forward packets not addressed to this namespace")
    default_ttl: int = knob(64, unit="hops", sysctl="net.ipv4.ip_default_ttl", src="ip-sysctl.rst ip_default_ttl",
                            help="TTL of locally generated packets")
    ipfrag_time_s: float = knob(30.0, unit="s", sysctl="net.ipv4.ipfrag_time", src="ip-sysctl.rst ipfrag_time",
                                help="reassembly timeout")
    ipfrag_high_thresh_bytes: int = knob(4194304, unit="bytes", sysctl="net.ipv4.ipfrag_high_thresh",
                                         src="ip-sysctl.rst ipfrag_high_thresh",
                                         help="reassembly memory above which new fragments are dropped")


@dataclass(frozen=True, slots=True)
class IcmpParams:
    """ICMP error generation and rate limiting: net/ipv4/icmp.c."""

    ratelimit_s: float = knob(1.0, unit="s", sysctl="net.ipv4.icmp_ratelimit", to_si=1e-3,
                              src="ip-sysctl.rst icmp_ratelimit (1000 ms)",
                              help="per-destination token interval for rate-limited ICMP types (burst 6, XRLIM_BURST_FACTOR)")
    ratemask: int = knob(6168, unit="bitmask", sysctl="net.ipv4.icmp_ratemask", src="ip-sysctl.rst icmp_ratemask",
                         help="ICMP types subject to icmp_ratelimit (dest unreachable, source quench, time exceeded, param problem)")
    msgs_per_sec: int = knob(1000, unit="msgs/s", sysctl="net.ipv4.icmp_msgs_per_sec",
                             src="ip-sysctl.rst icmp_msgs_per_sec", help="global ICMP error rate")
    msgs_burst: int = knob(50, unit="msgs", sysctl="net.ipv4.icmp_msgs_burst", src="ip-sysctl.rst icmp_msgs_burst",
                           help="global ICMP error burst")


@dataclass(frozen=True, slots=True)
class CoreParams:
    """Per-namespace socket and backlog limits: net/core/sock.c, net/core/dev.c."""

    wmem_default_bytes: int = knob(212992, unit="bytes", sysctl="net.core.wmem_default",
                                   src="SK_WMEM_DEFAULT", help="send buffer of a new UDP socket")
    rmem_default_bytes: int = knob(212992, unit="bytes", sysctl="net.core.rmem_default",
                                   src="SK_RMEM_DEFAULT", help="receive buffer of a new UDP socket")
    wmem_max_bytes: int = knob(4194304, unit="bytes", sysctl="net.core.wmem_max", src="net/core/sock.c (6.18)",
                               help="ceiling for SO_SNDBUF")
    rmem_max_bytes: int = knob(4194304, unit="bytes", sysctl="net.core.rmem_max", src="net/core/sock.c (6.18)",
                               help="ceiling for SO_RCVBUF")
    netdev_max_backlog_pkts: int = knob(1000, unit="packets", sysctl="net.core.netdev_max_backlog",
                                        src="net_hotdata.max_backlog",
                                        help="per-CPU backlog of netif_rx (veth, loopback); global, so a "
                                             "host's value applies to all its namespaces")


@dataclass(frozen=True, slots=True)
class NicParams:
    """A physical NIC and its driver (ether_setup, pfifo_fast, the TX ring)."""

    rate_bps: float = knob(10e9, unit="bit/s", src="scenario hosts.<h>.nic.rate", help="line rate")
    mtu_bytes: int = knob(1500, unit="bytes", src="ETH_DATA_LEN (ether_setup)", help="interface MTU")
    txqueuelen_pkts: int = knob(1000, unit="packets", src="DEFAULT_TX_QUEUE_LEN",
                                help="pfifo_fast limit per band")
    tx_ring_pkts: int = knob(256, unit="descriptors", src="virtio_net / e1000e default TX ring (ethtool -g)",
                             help="frames handed to the driver but not yet on the wire")
    l1_overhead_bytes: int = knob(24, unit="bytes", src="IEEE 802.3: preamble+SFD 8, FCS 4, IFG 12",
                                  help="wire bytes per frame beyond the 14-byte header and payload")
    min_frame_bytes: int = knob(60, unit="bytes", src="ETH_ZLEN", help="frames are padded to this before the FCS")
    uc_filter_slots: int = knob(64, unit="addresses", src="driver-specific perfect unicast filter (virtio_net "
                                "VIRTIO_NET_CTRL_MAC table; ixgbe 128 RAR entries); ESTIMATE",
                                help="secondary MACs (macvlan children) the NIC filters in hardware; beyond "
                                     "them the kernel makes it promiscuous (uc_promisc)")


@dataclass(frozen=True, slots=True)
class BridgeParams:
    """Linux bridges created in the namespace: net/bridge, br_netfilter."""

    nf_call_iptables: bool = knob(False, unit="bool", sysctl="net.bridge.bridge-nf-call-iptables",
                                  src="1 once br_netfilter is loaded; Docker 28 loads it only when ICC or the "
                                      "userland proxy is disabled (moby bridge_linux.go), so off by default",
                                  help="bridged IPv4 traverses iptables (costs CPU per frame)")
    ageing_time_s: float = knob(300.0, unit="s", src="BR_DEFAULT_AGEING_TIME",
                                help="FDB entries not refreshed for this long are forgotten")


@dataclass(frozen=True, slots=True)
class StackParams:
    """All per-namespace parameters together."""

    neigh: NeighParams = NeighParams()
    ip: IpParams = IpParams()
    icmp: IcmpParams = IcmpParams()
    core: CoreParams = CoreParams()
    bridge: BridgeParams = BridgeParams()


@dataclass(frozen=True)
class Sysctl:
    """A sysctl the model honours: where it lands and how its text is converted."""

    name: str
    group: str
    field: str
    unit: str
    default: Any
    src: str
    help: str
    convert: Callable[[Any], Any]


def _converter(ftype: Any, to_si: float) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, str):
            v = v.strip()
            if not v.lstrip("-").isdigit():
                raise ValueError(f"expected an integer, got {v!r}")
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        if v < 0:
            raise ValueError(f"must not be negative, got {v}")
        if ftype in (bool, "bool"):
            if v not in (0, 1):
                raise ValueError(f"expected 0 or 1, got {v}")
            return bool(v)
        if ftype in (float, "float"):
            return v * to_si
        return v

    return conv


_GROUPS = {"neigh": NeighParams, "ip": IpParams, "icmp": IcmpParams, "core": CoreParams, "bridge": BridgeParams}


def _build_sysctls() -> dict[str, Sysctl]:
    out: dict[str, Sysctl] = {}
    for group, cls in _GROUPS.items():
        for f in fields(cls):
            name = f.metadata.get("sysctl")
            if not name:
                continue
            out[name] = Sysctl(name=name, group=group, field=f.name, unit=f.metadata["unit"], default=f.default,
                               src=f.metadata["src"], help=f.metadata["help"],
                               convert=_converter(f.type, f.metadata["to_si"]))
    return out


SYSCTLS: dict[str, Sysctl] = _build_sysctls()


def apply_sysctls(base: StackParams, sysctls: dict[str, Any]) -> StackParams:
    """A copy of ``base`` with ``sysctls`` (already validated names) applied.

    ``net.ipv4.neigh.<dev>.*`` is accepted as the per-device spelling and applies to the whole
    namespace (simnet keeps one neighbour parameter set per namespace).
    """
    groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
    for name, value in sysctls.items():
        s = SYSCTLS[canonical_sysctl(name)]
        groups[s.group][s.field] = s.convert(value)
    return StackParams(**{g: dataclasses.replace(getattr(base, g), **groups[g]) for g in _GROUPS})


def canonical_sysctl(name: str) -> str:
    """``net.ipv4.neigh.eth0.retrans_time_ms`` → ``net.ipv4.neigh.default.retrans_time_ms``."""
    parts = name.split(".")
    if len(parts) == 5 and parts[:3] == ["net", "ipv4", "neigh"]:
        parts[3] = "default"
        return ".".join(parts)
    if name.startswith("net.ipv4.conf.") and name.endswith(".forwarding"):
        return "net.ipv4.ip_forward"
    return name


def all_knobs() -> list[dict[str, Any]]:
    """Every declared tunable, for ``simnet params``."""
    rows = []
    for group, cls in (*_GROUPS.items(), ("nic", NicParams)):
        for f in fields(cls):
            rows.append({"group": group, "name": f.name, "default": f.default, "unit": f.metadata["unit"],
                         "sysctl": f.metadata.get("sysctl") or "", "source": f.metadata["src"],
                         "help": f.metadata["help"]})
    return rows
