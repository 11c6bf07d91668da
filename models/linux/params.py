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
    "TcpParams",
    "StackParams",
    "SYSCTLS",
    "Sysctl",
    "all_knobs",
    "apply_sysctls",
]


def knob(default: Any, *, unit: str = "", sysctl: str | None = None, src: str = "", help: str = "",
         to_si: float = 1.0, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field carrying its provenance.

    ``to_si`` converts the sysctl's unit to the field's SI unit (``0.001`` for ``*_ms``).
    ``choices``: the field is a name (``tcp_congestion_control``), one of these.
    A tuple default makes a multi-value sysctl (``tcp_wmem``: "min default max").
    """
    return field(default=default, metadata={"unit": unit, "sysctl": sysctl, "src": src, "help": help,
                                            "to_si": to_si, "choices": choices})


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
    tso: bool = knob(True, unit="bool", src="ethtool -k: tcp-segmentation-offload (on for common NICs)",
                     help="the NIC cuts TCP super-segments into frames on the wire")
    gro: bool = knob(True, unit="bool", src="ethtool -k: generic-receive-offload (on by default)",
                     help="the NAPI poll merges in-order TCP segments of a flow before the stack")
    loss: float = knob(0.0, unit="probability", src="scenario links[].loss (netem loss)",
                       help="probability that a frame sent on this NIC's link is lost")
    queue_pkts: int = knob(0, unit="packets", src="scenario links[].queue (tbf/netem limit)",
                           help="frames that may wait to be sent on the link (0: txqueuelen + TX ring)")


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
class TcpParams:
    """TCP: net/ipv4/tcp*.c, defaults of ``tcp_sk_init``/``tcp_init`` on Linux 6.18 (REFERENCE A, B, H, S)."""

    wmem_bytes: tuple = knob((4096, 16384, 4194304), unit="bytes[3]", sysctl="net.ipv4.tcp_wmem",
                             src="tcp_init(): PAGE_SIZE, 16 KiB, 4 MiB",
                             help="send buffer: floor, initial sk_sndbuf, autotuning ceiling")
    rmem_bytes: tuple = knob((4096, 131072, 33554432), unit="bytes[3]", sysctl="net.ipv4.tcp_rmem",
                             src="tcp_init() (6.16+: max 32 MiB)",
                             help="receive buffer: floor, initial sk_rcvbuf, autotuning ceiling")
    congestion_control: str = knob("cubic", unit="name", sysctl="net.ipv4.tcp_congestion_control",
                                   choices=("cubic", "reno"),
                                   src="Kconfig DEFAULT_TCP_CONG (cubic; the reference VM builds bbr, not modelled)",
                                   help="congestion control of new sockets")
    timestamps: bool = knob(True, unit="bool", sysctl="net.ipv4.tcp_timestamps", src="tcp_sk_init: 1",
                            help="RFC 7323 timestamps (12 option bytes per segment: MSS 1448 at MTU 1500)")
    window_scaling: bool = knob(True, unit="bool", sysctl="net.ipv4.tcp_window_scaling", src="tcp_sk_init: 1",
                                help="RFC 7323 window scaling")
    autocorking: bool = knob(True, unit="bool", sysctl="net.ipv4.tcp_autocorking", src="tcp_sk_init: 1",
                             help="hold a small tail skb while earlier skbs of the socket are below TCP")
    moderate_rcvbuf: bool = knob(True, unit="bool", sysctl="net.ipv4.tcp_moderate_rcvbuf", src="tcp_sk_init: 1",
                                 help="receive buffer autotuning (DRS, tcp_rcv_space_adjust)")
    slow_start_after_idle: bool = knob(True, unit="bool", sysctl="net.ipv4.tcp_slow_start_after_idle",
                                       src="tcp_sk_init: 1", help="restart cwnd after an idle RTO (RFC 2861)")
    notsent_lowat_bytes: int = knob(4294967295, unit="bytes", sysctl="net.ipv4.tcp_notsent_lowat",
                                    src="tcp_sk_init: UINT_MAX", help="unsent bytes above which a writer blocks")
    limit_output_bytes: int = knob(4194304, unit="bytes", sysctl="net.ipv4.tcp_limit_output_bytes",
                                   src="tcp_sk_init: 4 MiB (6.16+)", help="TCP Small Queues cap below TCP")
    min_tso_segs: int = knob(2, unit="segments", sysctl="net.ipv4.tcp_min_tso_segs", src="tcp_sk_init: 2",
                             help="floor of tcp_tso_autosize")
    tso_rtt_log: int = knob(9, unit="log2(us)", sysctl="net.ipv4.tcp_tso_rtt_log", src="tcp_sk_init: 9",
                            help="TSO bonus halves every 2^this microseconds of min RTT")
    pacing_ss_ratio: int = knob(200, unit="%", sysctl="net.ipv4.tcp_pacing_ss_ratio", src="tcp_sk_init: 200",
                                help="pacing rate (sizes TSO bursts) in slow start, percent of cwnd/srtt")
    pacing_ca_ratio: int = knob(120, unit="%", sysctl="net.ipv4.tcp_pacing_ca_ratio", src="tcp_sk_init: 120",
                                help="pacing rate in congestion avoidance, percent of cwnd/srtt")
    reordering: int = knob(3, unit="segments", sysctl="net.ipv4.tcp_reordering",
                           src="TCP_FASTRETRANS_THRESH", help="duplicate ACK threshold")
    rto_min_s: float = knob(0.2, unit="s", sysctl="net.ipv4.tcp_rto_min_us", to_si=1e-6,
                            src="TCP_RTO_MIN = HZ/5", help="minimum retransmission timeout")
    rto_max_s: float = knob(120.0, unit="s", sysctl="net.ipv4.tcp_rto_max_ms", to_si=1e-3,
                            src="TCP_RTO_MAX = 120*HZ", help="maximum retransmission timeout")
    syn_retries: int = knob(6, unit="retries", sysctl="net.ipv4.tcp_syn_retries", src="TCP_SYN_RETRIES",
                            help="SYN retransmissions before connect() fails (plus the linear ones)")
    syn_linear_timeouts: int = knob(4, unit="retries", sysctl="net.ipv4.tcp_syn_linear_timeouts",
                                    src="tcp_sk_init: 4 (6.5+)", help="SYN retransmissions at a constant 1 s")
    synack_retries: int = knob(5, unit="retries", sysctl="net.ipv4.tcp_synack_retries", src="TCP_SYNACK_RETRIES",
                               help="SYN-ACK retransmissions")
    retries2: int = knob(15, unit="retries", sysctl="net.ipv4.tcp_retries2", src="TCP_RETR2",
                         help="data retransmissions (RTO backoffs) before the connection is dropped")
    pingpong_thresh: int = knob(1, unit="exchanges", sysctl="net.ipv4.tcp_pingpong_thresh", src="tcp_sk_init: 1",
                                help="replies within ato before delayed ACKs turn interactive")
    comp_sack_delay_s: float = knob(0.001, unit="s", sysctl="net.ipv4.tcp_comp_sack_delay_ns", to_si=1e-9,
                                    src="tcp_sk_init: NSEC_PER_MSEC", help="longest delay of a compressed SACK")
    comp_sack_nr: int = knob(44, unit="acks", sysctl="net.ipv4.tcp_comp_sack_nr", src="tcp_sk_init: 44",
                             help="SACKs compressed into one at most")
    app_win: int = knob(31, unit="log2", sysctl="net.ipv4.tcp_app_win", src="tcp_sk_init: 31",
                        help="part of the receive buffer kept for the application (window_clamp)")
    init_cwnd_segs: int = knob(10, unit="segments", src="TCP_INIT_CWND (RFC 6928)", help="initial congestion window")
    rto_initial_s: float = knob(1.0, unit="s", src="TCP_TIMEOUT_INIT (RFC 6298)", help="RTO before an RTT sample")
    delack_min_s: float = knob(0.04, unit="s", src="TCP_DELACK_MIN = TCP_ATO_MIN = HZ/25",
                               help="shortest delayed-ACK timer")
    delack_max_s: float = knob(0.2, unit="s", src="TCP_DELACK_MAX = HZ/5", help="longest delayed-ACK timer")
    max_quickacks: int = knob(16, unit="acks", src="TCP_MAX_QUICKACKS", help="ACKs sent at once in quick-ACK mode")
    max_tcp_header_bytes: int = knob(256, unit="bytes", src="MAX_TCP_HEADER on x86_64 6.18 (per_mss 2304 observed)",
                                     help="headroom of a TCP skb; sizes tcp_sndbuf_expand and skb truesize")
    gso_max_size_bytes: int = knob(65536, unit="bytes", src="GSO_LEGACY_MAX_SIZE (ip -d link: gso_max_size)",
                                   help="largest GSO/TSO skb a device takes")


@dataclass(frozen=True, slots=True)
class StackParams:
    """All per-namespace parameters together."""

    neigh: NeighParams = NeighParams()
    ip: IpParams = IpParams()
    icmp: IcmpParams = IcmpParams()
    core: CoreParams = CoreParams()
    bridge: BridgeParams = BridgeParams()
    tcp: TcpParams = TcpParams()


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


def _converter(ftype: Any, to_si: float, default: Any = None, choices: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    if choices:
        def conv_name(v: Any) -> Any:
            if not isinstance(v, str) or v.strip() not in choices:
                extra = " (bbr is not modelled)" if str(v).strip() == "bbr" else ""
                raise ValueError(f"expected one of {', '.join(choices)}, got {v!r}{extra}")
            return v.strip()
        return conv_name
    if isinstance(default, tuple):
        n = len(default)

        def conv_vec(v: Any) -> Any:
            parts = v.split() if isinstance(v, str) else None
            if not parts or len(parts) != n or not all(p.isdigit() for p in parts):
                raise ValueError(f"expected {n} non-negative integers separated by spaces (as in /proc/sys), "
                                 f"got {v!r}")
            vals = tuple(int(p) for p in parts)
            if list(vals) != sorted(vals):
                raise ValueError(f"values must not decrease (min default max), got {v!r}")
            return vals
        return conv_vec

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


_GROUPS = {"neigh": NeighParams, "ip": IpParams, "icmp": IcmpParams, "core": CoreParams, "bridge": BridgeParams,
           "tcp": TcpParams}


def _build_sysctls() -> dict[str, Sysctl]:
    out: dict[str, Sysctl] = {}
    for group, cls in _GROUPS.items():
        for f in fields(cls):
            name = f.metadata.get("sysctl")
            if not name:
                continue
            out[name] = Sysctl(name=name, group=group, field=f.name, unit=f.metadata["unit"], default=f.default,
                               src=f.metadata["src"], help=f.metadata["help"],
                               convert=_converter(f.type, f.metadata["to_si"], f.default,
                                                  f.metadata.get("choices", ())))
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
