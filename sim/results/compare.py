"""Two result directories side by side, counter by counter (``simnet compare A B``).

Every counter of counters.json (devices, ``/proc/net/snmp`` groups, ARP frames, qdiscs) and
every flow's headline numbers become one row: A's value, B's value and their difference.
Rows whose field *must* match between a simulation and a replay of the same scenario are
marked exact (:func:`is_exact`): per-device packet, byte and drop counters; the IP, ICMP and
UDP MIB counters (what the stack did with each packet: fragments, reassemblies, deliveries,
forwards, datagrams in and out, errors); ARP frames sent and received; the NIC queues'
packets, bytes and drops; each flow's packets and bytes sent and delivered, send errors and
timeouts. Timing (latency, goodput, start and end) is shown with its relative difference,
never exact: the model's clock is not the machine's.

A value that one side could not measure (``null``: the kernel keeps ``res_failed`` only for
the whole machine) is shown and not compared; the machine-wide ARP statistics of a replay
are compared with the sum over the simulation's namespaces (``machine/arp/...``, not exact:
other namespaces of the machine count there too). What a replay could not reproduce
(netns.json ``notes``) is printed under the table.

The other drivers' counters: a namespace with Docker's nat rules compares its conntrack
statistics (``entries``, ``found``, ``insert``, ``invalid``), each nat rule's hits and each
conntrack entry's packets per direction (keyed ``proto src > dst:dport``, without the client's
ephemeral source port, which differs between runs) exactly; docker-proxy's socket counters
exactly; a NIC's unicast list (``uc_addresses``) and ``mac_filter_drops`` exactly, its
promiscuity approximately (the replay's NIC is a veth, which has no unicast filter: any
macvlan child makes it promiscuous, where a NIC with a filter is not).

Timing: a UDP receiver that reads slower than its sender sends overflows its socket's
receive buffer, and whether it does depends on the two sides' speeds (the replay's agents are
Python programs on this machine, the model's applications cost what the cost profile says).
In a namespace where ``Udp RcvbufErrors`` is above zero on either side, the counters the
overflow feeds (``Udp InDatagrams``, ``InErrors``, ``RcvbufErrors``) and the delivered
packets and bytes of the flows received there (``flow_netns`` in the replay's netns.json:
the sink's namespace, both ends of a request/response) are compared as approximate, with
that reason.

TCP (the replay's netns.json ``tcp``, written by netns/tcpflows.py ``tcp_exactness``): on the
path of a TCP flow the number of ACKs depends on timing, so there the device, qdisc and IP
packet counters and ``Tcp InSegs``/``OutSegs`` are shown side by side, not held exact; the
connection counters (``ActiveOpens``, ``PassiveOpens``, ``OutRsts``, ...) stay exact.
``RetransSegs`` is approximate there: the model's lossy links are not reproduced, and on the
real kernel a flow's segments may leave from two CPUs (the writer's and the one handling its
ACKs), whose backlogs can reorder them into spurious fast retransmissions (seen on veth
here: DSACKs, ``TCPOFOQueue``). Each TCP flow's TCP_INFO (tcp.json) is shown field by field:
``tcpi_snd_mss``, the bytes acknowledged and received (SYN and FIN included as the kernel
counts them) and the congestion control exactly; the original data segments
(``data_segs_orig`` = ``tcpi_data_segs_out`` − ``tcpi_total_retrans``, and ``TcpExt
TCPOrigDataSent`` of the namespaces that only send such flows) exactly for the flows whose
segmentation is fixed by the rules (TSO off on the path, no loss, ``TCP_CORK`` or one
segment per write): ceil(size / MSS) for a corked bulk transfer.
The path includes the underlay of the VXLAN tunnels TCP flows cross (``encap``, netns/encap.py):
those NICs and switch ports, the routing namespaces' ``Ip`` counters, the tunnel ends' ``Udp``
datagram counts and the outer flows' conntrack entries are approximate with that reason
(``TCP_ENCAP``); the hosts' other counters stay exact. A TCP connection's conntrack entry counts
its ACKs: approximate everywhere. A TCP docker-proxy's ``connections`` (both sockets' TCP_INFO)
are lined up per session with the flows' exact fields; its read and write calls are
approximate (``TCP_PROXY_READS``), its bytes and sessions exact. An MSS above 16 KiB (loopback)
is bounded by half the peer's window and shown approximate (``LOOPBACK_MSS``).

Kernel randomness: since Linux 6.10 every ICMP error that passes the global rate limit takes
0, 1 or 2 credits from the bucket at random (``icmp_global_consume``), so when the limiter
engages (``OutRateLimitGlobal`` > 0 on either side) the number of errors sent is random. In
such a namespace the counters the errors feed — ``Icmp``, ``IcmpMsg``, the ``Ip`` totals
(``InReceives``, ``InDelivers``, ``OutRequests``, ``OutTransmits``) and ``lo`` (the errors a
namespace sends itself) — are compared as approximate, with that reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "compare_dirs", "compare_results", "is_exact", "CompareError", "rows_csv"]

_EXACT_FLOW = {"packets_sent", "packets_delivered", "lost", "bytes_sent", "bytes_delivered", "send_errors",
               "timeouts"}
_TIMING_FLOW = ("start_s", "end_s", "completion_s", "goodput_bps", "latency_mean_s", "latency_p50_s",
                "latency_p99_s", "latency_max_s")
_NOT_EXACT_ARP = {"res_failed", "unresolved_discards"}
_ICMP_FED_IP = {"InReceives", "InDelivers", "OutRequests", "OutTransmits"}
ICMP_RANDOM = "random in the kernel: ICMP global rate limit engaged (icmp_global_consume takes 0-2 credits)"
RCVBUF_TIMING = ("timing: a receiver that reads slower than its sender sends overflows its receive buffer "
                 "(Udp RcvbufErrors); the replay's agents run at the machine's speed, the model's at the cost profile's")
_RCVBUF_FED_UDP = {"InDatagrams", "InErrors", "RcvbufErrors"}
_RCVBUF_FED_FLOW = {"packets_delivered", "lost", "bytes_delivered"}
NO_UC_FILTER = "the replay's NIC is a veth without a unicast filter: macvlan children make it promiscuous"
_NOTES = {("nic", "promiscuity"): NO_UC_FILTER}
_EXACT_NIC = {"uc_addresses", "mac_filter_drops"}
_EXACT_CT = {"entries", "found", "insert", "invalid"}


_IP_CONFIG = {"Forwarding", "DefaultTTL"}
_TCP_ACK_FED = {"InSegs", "OutSegs"}
TCP_ACKS = ("TCP: how many ACKs a receiver sends depends on timing (quick-ACK, delayed ACK, one ACK per batch "
            "of segments the kernel hands the socket), so packet counts on a TCP flow's path are not fixed")
TCP_ENCAP = ("TCP inside VXLAN: these outer packets carry a TCP flow's segments and ACKs, whose number depends on "
             "timing (and the veth standing in for a NIC merges and splits them with GRO/GSO)")
_ENCAP_UDP = {"InDatagrams", "OutDatagrams"}
HALF_WINDOW_MSS_BYTES = 16384
LOOPBACK_MSS = ("TCP over loopback: the MSS is bounded by half the largest window the peer advertised "
                "(tcp_bound_to_half_wnd), which follows its receive-window growth; the model's windows on "
                "loopback do not track the kernel's exactly")
STREAM_TIMED = "tcp_stream writes for a duration: how many writes fit in it depends on the path's speed"
TCP_LOSS = "the model's link loses frames (loss/drop) and the replay's cannot (no netem): retransmissions differ"
TCP_REORDER = ("TCP: on the real kernel a flow's segments can leave from two CPUs (the writer's, and the one "
               "processing its ACKs), so reordering can trigger spurious fast retransmissions")
TCP_PROXY_READS = ("TCP is a byte stream: how many bytes one read() of docker-proxy returns, so how many reads and "
                   "writes it makes, depends on timing (the bytes relayed do not)")
_TCP_INFO_SHOWN = ("tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_data_segs_out", "tcpi_data_segs_in", "tcpi_segs_out",
                   "tcpi_segs_in", "tcpi_total_retrans", "tcpi_bytes_acked", "tcpi_bytes_received", "tcpi_snd_cwnd",
                   "tcpi_snd_ssthresh", "tcpi_rtt", "tcpi_min_rtt", "tcpi_snd_wscale", "tcpi_rcv_wscale", "sk_sndbuf",
                   "sk_rcvbuf", "tcpi_ca_name")
_TCP_INFO_EXACT = {"tcpi_snd_mss", "tcpi_bytes_acked", "tcpi_bytes_received", "tcpi_ca_name"}


class CompareError(Exception):
    """A directory is not a simnet result directory (the message names the file)."""


@dataclass
class Row:
    """One compared value."""

    key: str            # e.g. "client/dev/eth0/tx_packets", "flow/rr/packets_sent"
    a: Any
    b: Any
    exact: bool
    note: str = ""      # why an otherwise exact field is compared as approximate

    @property
    def comparable(self) -> bool:
        return isinstance(self.a, (int, float)) and isinstance(self.b, (int, float)) \
            and not isinstance(self.a, bool) and not isinstance(self.b, bool)

    @property
    def diff(self) -> float | None:
        return self.b - self.a if self.comparable else None

    @property
    def rel(self) -> float | None:
        if not self.comparable or self.a == 0:
            return None
        return (self.b - self.a) / abs(self.a)

    @property
    def differs(self) -> bool:
        """An exact field whose two values differ."""
        return self.exact and self.comparable and self.a != self.b

    @property
    def zero(self) -> bool:
        return (self.a in (0, None)) and (self.b in (0, None))


def is_exact(key: str) -> bool:
    """Whether the field at ``key`` must be equal in a simulation and a replay of one scenario."""
    parts = key.split("/")
    if parts[0] == "flow":
        return parts[-1] in _EXACT_FLOW
    group = parts[1]
    if parts[0] == "machine":
        return False
    if group == "dev":
        return True
    if group == "snmp":
        return parts[2] in ("Ip", "Icmp", "IcmpMsg", "Udp", "Tcp", "IpExt")
    if group == "arp":
        return parts[-1] not in _NOT_EXACT_ARP
    if group == "qdisc":
        return parts[-1] in ("sent_pkts", "sent_bytes", "drops")
    if group == "netfilter":
        return parts[2] in ("nat_hits", "entries") or (parts[2] == "conntrack" and parts[-1] in _EXACT_CT)
    if group == "docker_proxy":
        if len(parts) > 3 and parts[3] == "connections":
            return parts[-1] in _TCP_INFO_EXACT
        if parts[2].endswith("-tcp") and parts[-1] in ("rx_msgs", "tx_msgs"):
            return False
        return parts[-1] != "host_port"
    if group == "nic":
        return parts[-1] in _EXACT_NIC
    return False


def _walk(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(f"{prefix}/{k}", v, out)
    else:
        out[prefix] = obj


def _flatten_counters(counters: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ns, c in counters.items():
        for group in ("dev", "snmp", "arp", "qdisc", "nic"):
            if group in c:
                _walk(f"{ns}/{group}", c[group], out)
        nf = c.get("netfilter")
        if nf:
            _walk(f"{ns}/netfilter/conntrack", nf.get("conntrack", {}), out)
            _walk(f"{ns}/netfilter/nat_hits", nf.get("nat_hits", {}), out)
            for key, (po, pr) in _ct_entries(nf.get("entries", [])).items():
                out[f"{ns}/netfilter/entries/{key}/packets_orig"] = po
                out[f"{ns}/netfilter/entries/{key}/packets_reply"] = pr
        for p in c.get("docker_proxy", []):
            key = f"{ns}/docker_proxy/{p['host_port']}-{p['proto']}"
            _walk(key, {k: v for k, v in p.items() if k not in ("proto", "backend", "host_port", "connections")}, out)
            for i, conn in enumerate(p.get("connections", [])):
                for side in ("frontend", "backend"):
                    info = ((conn or {}).get(side) or {}).get("tcp_info") or {}
                    for k in _TCP_INFO_SHOWN:
                        if k in info:
                            out[f"{key}/connections/{i}/{side}/{k}"] = info[k]
    return out


def _ct_entries(entries: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Conntrack entries keyed ``proto src > dst:dport`` (the source port is ephemeral), packets summed."""
    out: dict[str, tuple[int, int]] = {}
    for e in entries:
        proto, rest = e["orig"].split(" ", 1)
        src, _gt, dst = rest.split(" ")
        key = f"{proto} {src.rsplit(':', 1)[0]} > {dst}"
        po, pr = out.get(key, (0, 0))
        out[key] = (po + e["packets"][0], pr + e["packets"][1])
    return out


def _num(text: str) -> Any:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _load(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("summary.json", "counters.json"):
        p = d / name
        try:
            out[name] = json.loads(p.read_text())
        except FileNotFoundError:
            raise CompareError(f"{p}: not found (is {d} a simnet result directory?)") from None
        except json.JSONDecodeError as e:
            raise CompareError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    flows = d / "flows.csv"
    out["flows"] = list(csv.DictReader(flows.open())) if flows.exists() else []
    extra = d / "netns.json"
    info = json.loads(extra.read_text()) if extra.exists() else {}
    out["notes"] = info.get("notes", [])
    out["machine_arp"] = info.get("arp_cache_machine_wide")
    out["flow_netns"] = info.get("flow_netns", {})
    out["tcp_exact"] = info.get("tcp", {})
    tcp = d / "tcp.json"
    out["tcp"] = json.loads(tcp.read_text()) if tcp.exists() else {}
    return out


def _machine_arp(r: dict[str, Any]) -> dict[str, Any]:
    """The machine-wide ARP statistics of a replay, or the sum over a simulation's namespaces."""
    if r.get("machine_arp") is not None:
        return {k: r["machine_arp"].get(k) for k in sorted(_NOT_EXACT_ARP)}
    out: dict[str, Any] = {}
    for k in sorted(_NOT_EXACT_ARP):
        vals = [c.get("arp", {}).get(k) for c in r["counters.json"].values()]
        out[k] = None if any(v is None for v in vals) else sum(vals)
    return out


def _icmp_random(ns: str, key: str) -> bool:
    parts = key.split("/")
    if parts[0] != ns or len(parts) < 4:
        return False
    if parts[1] == "dev":
        return parts[2] == "lo"
    if parts[1] == "snmp":
        return parts[2] in ("Icmp", "IcmpMsg") or (parts[2] == "Ip" and parts[3] in _ICMP_FED_IP)
    return False


def compare_results(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """Rows for two loaded result sets (``_load`` shape)."""
    fa, fb = _flatten_counters(a["counters.json"]), _flatten_counters(b["counters.json"])
    rows = [Row(k, fa.get(k), fb.get(k), is_exact(k)) for k in list(dict.fromkeys([*fa, *fb]))]
    for r in rows:
        parts = r.key.split("/")
        note = _NOTES.get((parts[1], parts[-1])) if len(parts) > 2 else None
        if note and r.a != r.b:
            r.note = note
        if parts[1:2] == ["docker_proxy"] and parts[2].endswith("-tcp") and parts[-1] in ("rx_msgs", "tx_msgs"):
            r.note = TCP_PROXY_READS
        _half_window_mss(r)
    limited = {k.split("/")[0] for k, v in [*fa.items(), *fb.items()]
               if k.endswith("/snmp/Icmp/OutRateLimitGlobal") and isinstance(v, int) and v > 0}
    for r in rows:
        if r.exact and any(_icmp_random(ns, r.key) for ns in limited):
            r.exact, r.note = False, ICMP_RANDOM
    overflow = {k.split("/")[0] for k, v in [*fa.items(), *fb.items()]
                if k.endswith("/snmp/Udp/RcvbufErrors") and isinstance(v, int) and v > 0}
    for r in rows:
        parts = r.key.split("/")
        if r.exact and parts[0] in overflow and parts[1:3] == ["snmp", "Udp"] and parts[-1] in _RCVBUF_FED_UDP:
            r.exact, r.note = False, RCVBUF_TIMING
    _tcp_rules(rows, {**a.get("tcp_exact", {}), **b.get("tcp_exact", {})})
    flow_ns = {**a.get("flow_netns", {}), **b.get("flow_netns", {})}
    ma, mb = _machine_arp(a), _machine_arp(b)
    if ma != mb or a.get("machine_arp") is not None or b.get("machine_arp") is not None:
        for k in sorted(_NOT_EXACT_ARP):
            rows.append(Row(f"machine/arp/{k}", ma.get(k), mb.get(k), False))
    flows_a = {r["flow"]: r for r in a["flows"]}
    flows_b = {r["flow"]: r for r in b["flows"]}
    for name in dict.fromkeys([*flows_a, *flows_b]):
        ra, rb = flows_a.get(name, {}), flows_b.get(name, {})
        for col in ("packets_sent", "packets_delivered", "lost", "bytes_sent", "bytes_delivered", "send_errors",
                    "timeouts", *_TIMING_FLOW):
            key = f"flow/{name}/{col}"
            row = Row(key, _num(ra.get(col, "")), _num(rb.get(col, "")), is_exact(key))
            if row.exact and col in _RCVBUF_FED_FLOW and overflow.intersection(flow_ns.get(name, [])):
                row.exact, row.note = False, RCVBUF_TIMING
            if row.exact and "tcp_stream" in (ra.get("app"), rb.get("app")):
                row.exact, row.note = False, STREAM_TIMED
            rows.append(row)
    timed = {r["flow"] for r in [*a["flows"], *b["flows"]] if r.get("app") == "tcp_stream"}
    rows += _tcp_info_rows(a.get("tcp", {}), b.get("tcp", {}), {**a.get("tcp_exact", {}), **b.get("tcp_exact", {})},
                           timed)
    return rows


def _tcp_rules(rows: list[Row], tcp: dict[str, Any]) -> None:
    """TCP's exceptions (the replay's netns.json ``tcp``, see netns/tcpflows.py ``tcp_exactness``)."""
    if not tcp:
        return
    on_path, exact_ns = set(tcp.get("netns", [])), set(tcp.get("exact_netns", []))
    impaired = bool(tcp.get("impaired_flows"))
    enc = tcp.get("encap") or {}
    enc_dev = {ns: set(v) for ns, v in (enc.get("devices") or {}).items()}
    enc_ns, enc_udp, enc_ct = set(enc.get("netns", [])), set(enc.get("udp_netns", [])), set(enc.get("conntrack", []))
    for r in rows:
        parts = r.key.split("/")
        if len(parts) < 4 or not r.exact:
            continue
        if parts[1:3] == ["netfilter", "entries"] and parts[3].startswith("tcp "):
            r.exact, r.note = False, TCP_ACKS                   # a connection's entry counts its ACKs too
        elif parts[1] in ("dev", "qdisc") and parts[2] in enc_dev.get(parts[0], ()):
            r.exact, r.note = False, TCP_ENCAP
        elif parts[0] in enc_ns and parts[1:3] == ["snmp", "Ip"] and parts[3] not in _IP_CONFIG:
            r.exact, r.note = False, TCP_ENCAP
        elif parts[0] in enc_udp and parts[1:3] == ["snmp", "Udp"] and parts[3] in _ENCAP_UDP:
            r.exact, r.note = False, TCP_ENCAP
        elif parts[0] in enc_ns and parts[1:3] == ["netfilter", "entries"] and parts[3] in enc_ct:
            r.exact, r.note = False, TCP_ENCAP
    for r in rows:
        parts = r.key.split("/")
        if parts[0] not in on_path or len(parts) < 3:
            continue
        if r.exact and (parts[1] in ("dev", "qdisc") or (parts[1] == "snmp" and (
                (parts[2] == "Ip" and parts[-1] not in _IP_CONFIG) or (parts[2] == "Tcp" and parts[-1] in _TCP_ACK_FED)))):
            r.exact, r.note = False, TCP_ACKS
        elif r.exact and parts[1:3] == ["snmp", "Tcp"] and parts[-1] == "RetransSegs":
            r.exact, r.note = False, TCP_LOSS if impaired else TCP_REORDER
        elif parts[1:3] == ["snmp", "TcpExt"] and parts[-1] == "TCPOrigDataSent" and parts[0] in exact_ns:
            r.exact = True


def _half_window_mss(r: Row) -> None:
    """``tcpi_snd_mss`` above what any NIC's MTU gives (loopback's 65536) is bounded by half the largest
    window the peer has advertised (``tcp_bound_to_half_wnd``), which grows with the peer's receive-buffer
    autotuning: timing."""
    if r.exact and r.key.endswith("/tcpi_snd_mss") and r.comparable and max(r.a, r.b) > HALF_WINDOW_MSS_BYTES:
        r.exact, r.note = False, LOOPBACK_MSS


def _tcp_info_rows(ta: dict[str, Any], tb: dict[str, Any], tcp: dict[str, Any], timed: set[str]) -> list[Row]:
    """Per TCP flow, both sockets' TCP_INFO side by side (tcp.json); segment counts exact for the flows
    the replay lists as deterministic, the MSS and congestion control always, byte counts but for
    ``timed`` flows (tcp_stream: how much is written depends on speed)."""
    rows = []
    exact_flows = set(tcp.get("exact_flows", []))
    for name in dict.fromkeys([*ta, *tb]):
        for side in ("client", "server"):
            ia, ib = (ta.get(name) or {}).get(side) or {}, (tb.get(name) or {}).get(side) or {}
            for k in _TCP_INFO_SHOWN:
                if k not in ia and k not in ib:
                    continue
                ex = k in _TCP_INFO_EXACT and not (name in timed and k.startswith("tcpi_bytes"))
                row = Row(f"flow/{name}/tcp_info/{side}/{k}", ia.get(k), ib.get(k), ex,
                          STREAM_TIMED if name in timed and k.startswith("tcpi_bytes") else "")
                _half_window_mss(row)
                rows.append(row)
            orig = [x["tcpi_data_segs_out"] - x["tcpi_total_retrans"] if "tcpi_data_segs_out" in x else None
                    for x in (ia, ib)]
            if any(orig):
                rows.append(Row(f"flow/{name}/tcp_info/{side}/data_segs_orig", *orig, name in exact_flows))
    return rows


def compare_dirs(a: Path, b: Path) -> tuple[list[Row], dict[str, Any]]:
    """Rows for result directories ``a`` and ``b``, and what to print about them."""
    la, lb = _load(Path(a)), _load(Path(b))
    meta = {"a": {"dir": str(a), "engine": la["summary.json"].get("engine", "?"),
                  "scenario": la["summary.json"].get("scenario", "?"), "notes": la["notes"]},
            "b": {"dir": str(b), "engine": lb["summary.json"].get("engine", "?"),
                  "scenario": lb["summary.json"].get("scenario", "?"), "notes": lb["notes"]}}
    return compare_results(la, lb), meta


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.6g}"
    return str(v)


def rows_csv(rows: list[Row]) -> str:
    """Every row as CSV: key, a, b, diff, relative difference, exact, differs, and why an otherwise exact
    field is approximate (``note``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["counter", "a", "b", "diff", "rel_diff", "exact", "differs", "note"])
    for r in rows:
        w.writerow([r.key, "" if r.a is None else r.a, "" if r.b is None else r.b,
                    "" if r.diff is None else r.diff, "" if r.rel is None else f"{r.rel:.6g}", int(r.exact),
                    int(r.differs), r.note])
    return buf.getvalue()
