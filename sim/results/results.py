"""Results: one schema for every engine, as a Python object and as a directory of files.

=================  ================================================================================
file               content
=================  ================================================================================
summary.json       scenario, engine, seed, simulated and wall seconds, events, partial, per-flow
                   headline numbers, drops by reason, the conservation ledger
counters.json      per namespace (a host's under its name, a container's under its name): ``dev``
                   (``/sys/class/net/*/statistics``), ``snmp`` (``/proc/net/snmp``: Ip, Icmp,
                   IcmpMsg, Udp; IpExt), ``arp`` (frames sent and received), ``qdisc``, ``hostname``
flows.csv          per flow: packets, bytes, start/end, goodput, loss, retransmits, latency mean/p50/p99
breakdown.csv      per flow and layer: seconds in total, per packet, share of the latency
latency.csv        per flow, every packet's send time and latency (one-way for udp, round trip for udp_rr;
                   for TCP: per write() of tcp_bulk/tcp_stream, per transaction of tcp_rr)
timeseries.csv     per TCP flow, sampled every ``run.sample``: cwnd, ssthresh, srtt, RTO, bytes in flight,
                   send buffer size and fill, peer window, throughput (bytes ACKed), retransmissions
tcp.json           per TCP flow: TCP_INFO of the client's and the server's socket (the kernel's field
                   names), connect and establish times, per-interval throughput (tcp_stream)
pcap/              ``<netns>-<dev>.pcap`` per device, when asked for
plots/             latency CDF, per-layer breakdown, topology
=================  ================================================================================

Every file but ``summary.json``'s ``wall_s`` is a function of the scenario and seed: two runs
write identical bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simnet import __version__

if TYPE_CHECKING:
    import networkx as nx

    from simnet.compile import Compiled
    from simnet.models.linux.cpu import CostProfile

__all__ = ["Results", "FlowResult", "collect", "LAYER_ORDER"]

# The order in which layers are listed: the send path, the wire, the receive path.
LAYER_ORDER = ["sndbuf", "cpu_wait", "cpu:syscall", "cpu:udp_sendmsg", "cpu:ip_output", "cpu:ip_fragment",
               "cpu:neigh_output", "arp", "cpu:dev_queue_xmit", "cpu:driver_xmit", "cpu:loopback_xmit",
               "cpu:veth_xmit", "cpu:bridge", "cpu:br_netfilter", "cpu:macvlan_xmit", "cpu:ipvlan_xmit",
               "cpu:nf_conntrack", "cpu:nf_nat", "cpu:vxlan_xmit", "cpu:esp_output", "qdisc", "serialisation", "propagation",
               "cpu:napi_rx", "cpu:netif_receive", "cpu:ip_rcv", "cpu:ip_forward", "cpu:ip_defrag", "cpu:esp_input", "cpu:vxlan_rcv", "cpu:macvlan_rcv",
               "cpu:macvlan_bc", "cpu:ipvlan_rcv", "cpu:udp_rcv",
               "cpu:siblings", "socket_rx", "cpu:udp_recvmsg"]


def _layer_key(name: str) -> tuple[int, str]:
    try:
        return (LAYER_ORDER.index(name), name)
    except ValueError:
        return (len(LAYER_ORDER), name)


@dataclass
class FlowResult:
    """One workload's flow: counts, timing and every latency sample."""

    name: str
    app: str
    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    packets_sent: int
    packets_delivered: int
    bytes_sent: int
    bytes_delivered: int
    send_errors: int
    timeouts: int
    start_s: float | None
    end_s: float | None
    latencies_s: np.ndarray = field(repr=False)
    sent_s: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    layers_s: dict[str, float] = field(default_factory=dict, repr=False)   # summed over packets
    layer_packets: int = 0
    retransmits: int = 0
    tcp: dict[str, Any] = field(default_factory=dict, repr=False)          # tcp_info, intervals

    @property
    def lost(self) -> int:
        return self.packets_sent - self.packets_delivered

    @property
    def duration_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return self.end_s - self.start_s

    @property
    def goodput_bps(self) -> float:
        d = self.duration_s
        return self.bytes_delivered * 8 / d if d > 0 else 0.0

    def latency(self, q: float) -> float:
        if len(self.latencies_s) == 0:
            return math.nan
        return float(np.quantile(self.latencies_s, q))

    def row(self) -> dict[str, Any]:
        lat = self.latencies_s
        return {
            "flow": self.name, "app": self.app, "src": self.src, "dst": self.dst, "proto": self.proto,
            "sport": self.sport, "dport": self.dport,
            "packets_sent": self.packets_sent, "packets_delivered": self.packets_delivered, "lost": self.lost,
            "bytes_sent": self.bytes_sent, "bytes_delivered": self.bytes_delivered,
            "send_errors": self.send_errors, "timeouts": self.timeouts, "retransmits": self.retransmits,
            "start_s": self.start_s, "end_s": self.end_s, "completion_s": self.duration_s,
            "goodput_bps": self.goodput_bps,
            "latency_mean_s": float(lat.mean()) if len(lat) else None,
            "latency_p50_s": self.latency(0.5) if len(lat) else None,
            "latency_p99_s": self.latency(0.99) if len(lat) else None,
            "latency_max_s": float(lat.max()) if len(lat) else None,
        }

    def breakdown(self) -> list[dict[str, Any]]:
        n = self.layer_packets
        total = sum(self.layers_s.values())
        rows = []
        for layer in sorted(self.layers_s, key=_layer_key):
            v = self.layers_s[layer]
            rows.append({"flow": self.name, "layer": layer, "seconds_total": v,
                         "seconds_per_packet": v / n if n else 0.0, "share": v / total if total else 0.0})
        return rows


@dataclass
class Results:
    """Everything one run produced."""

    scenario: str
    engine: str
    seed: int
    sim_time_s: float
    wall_s: float
    events: int
    partial: bool
    flows: list[FlowResult]
    counters: dict[str, Any]
    drops: dict[str, int]
    ledger: dict[str, Any]
    cost_profile: str = ""
    graph: "nx.MultiDiGraph | None" = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    timeseries: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def flow(self, name: str) -> FlowResult:
        for f in self.flows:
            if f.name == name:
                return f
        raise KeyError(f"no flow {name!r} (flows: {', '.join(f.name for f in self.flows)})")

    @property
    def packets(self) -> int:
        """Application packets sent by all flows (datagrams or requests)."""
        return sum(f.packets_sent for f in self.flows)

    def summary(self) -> dict[str, Any]:
        return {
            "simnet": __version__,
            "scenario": self.scenario, "engine": self.engine, "seed": self.seed,
            "simulated_s": self.sim_time_s, "wall_s": self.wall_s, "events": self.events,
            "partial": self.partial, "cost_profile": self.cost_profile,
            "flows": [_clean(f.row()) for f in self.flows],
            "drops": self.drops,
            "ledger": self.ledger,
            "sandboxes": self.sandboxes(),
        }

    def sandboxes(self) -> dict[str, Any]:
        """Per container: its network namespace, host, UTS hostname and /etc/hosts entries."""
        g = self.graph
        out: dict[str, Any] = {}
        if g is None:
            return out
        for n, d in sorted(g.nodes(data=True)):
            if d.get("kind") != "netns":
                continue
            for c in d.get("containers") or []:
                host_ns = d["role"] == "host"
                out[c] = {"netns": n, "host": d["host"],
                          "hostname": (d.get("uts") or {}).get(c, d["hostname"]) if host_ns else d["hostname"],
                          "etc_hosts": dict(sorted((d.get("etc_hosts") or {}).items()))}
        return dict(sorted(out.items()))

    # -- files ---------------------------------------------------------------------------
    def write(self, out: Path, *, plots: bool = True) -> None:
        """Write the result files into directory ``out`` (which must exist)."""
        out = Path(out)
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n")
        (out / "counters.json").write_text(json.dumps(self.counters, indent=2) + "\n")
        (out / "flows.csv").write_text(_csv([_clean(f.row()) for f in self.flows], list(FLOW_COLUMNS)))
        rows = [r for f in self.flows for r in f.breakdown()]
        (out / "breakdown.csv").write_text(_csv(rows, ["flow", "layer", "seconds_total", "seconds_per_packet",
                                                       "share"]))
        lat_rows = [{"flow": f.name, "seq": i, "sent_s": float(t), "latency_s": float(v)} for f in self.flows
                    for i, (t, v) in enumerate(zip(f.sent_s, f.latencies_s))]
        (out / "latency.csv").write_text(_csv(lat_rows, ["flow", "seq", "sent_s", "latency_s"]))
        for fname, obj in self.extra.get("files", {}).items():     # engine-specific files (netns.json)
            (out / fname).write_text(json.dumps(obj, indent=2) + "\n")
        (out / "timeseries.csv").write_text(_csv(self.timeseries, list(TIMESERIES_COLUMNS)))
        tcp = {f.name: f.tcp for f in self.flows if f.proto == "tcp"}
        if tcp:
            (out / "tcp.json").write_text(json.dumps(tcp, indent=2) + "\n")
        if plots:
            from .plots import write_plots

            write_plots(self, out / "plots")

    # -- notebook views ------------------------------------------------------------------
    def to_pandas(self) -> dict[str, Any]:
        """``{"flows", "breakdown", "latency", "counters"}`` as pandas DataFrames (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Results.to_pandas() needs pandas: pip install 'simnet[notebook]'") from e
        flows = pd.DataFrame([f.row() for f in self.flows])
        breakdown = pd.DataFrame([r for f in self.flows for r in f.breakdown()],
                                 columns=["flow", "layer", "seconds_total", "seconds_per_packet", "share"])
        latency = pd.DataFrame([{"flow": f.name, "seq": i, "sent_s": float(t), "latency_s": float(v)}
                                for f in self.flows for i, (t, v) in enumerate(zip(f.sent_s, f.latencies_s))],
                               columns=["flow", "seq", "sent_s", "latency_s"])
        rows = []
        for ns, c in self.counters.items():
            for dev, st in c["dev"].items():
                for k, v in st.items():
                    rows.append({"netns": ns, "group": "dev", "name": dev, "counter": k, "value": v})
            for grp, st in c["snmp"].items():
                for k, v in st.items():
                    rows.append({"netns": ns, "group": "snmp", "name": grp, "counter": k, "value": v})
            for k, v in c["arp"].items():
                rows.append({"netns": ns, "group": "arp", "name": "arp", "counter": k, "value": v})
        return {"flows": flows, "breakdown": breakdown, "latency": latency,
                "counters": pd.DataFrame(rows, columns=["netns", "group", "name", "counter", "value"])}


TIMESERIES_COLUMNS = ("t_s", "flow", "cwnd", "ssthresh", "srtt_s", "rto_s", "packets_in_flight", "bytes_in_flight",
                      "sndbuf", "wmem_queued", "snd_wnd", "bytes_acked", "throughput_bps", "retrans", "ca_state")

FLOW_COLUMNS = ("flow", "app", "src", "dst", "proto", "sport", "dport", "packets_sent", "packets_delivered", "lost",
                "bytes_sent", "bytes_delivered", "send_errors", "timeouts", "retransmits", "start_s", "end_s",
                "completion_s", "goodput_bps", "latency_mean_s", "latency_p50_s", "latency_p99_s", "latency_max_s")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in columns])
    return buf.getvalue()


def collect(comp: "Compiled", net: Any, *, sim_time_s: float, wall_s: float, events: int, partial: bool,
            engine: str, costs: "CostProfile") -> Results:
    """Gather a finished (or interrupted) DES run into :class:`Results`."""
    tracer = net.ctx.tracer
    flows = []
    for st in net.flows:
        layers = dict(tracer.flow_layers.get(st.flow, {}))
        tcp: dict[str, Any] = {}
        if st.proto == "tcp":
            from simnet.models.linux.tcp.info import tcp_info

            tcp = {"connect_s": st.connect_s, "established_s": st.established_s,
                   "client": tcp_info(st.client) if st.client is not None else None,
                   "server": tcp_info(st.server) if st.server is not None else None,
                   "intervals": [{"start_s": a, "end_s": b, "bytes": n, "bps": n * 8 / (b - a) if b > a else 0.0}
                                 for a, b, n in st.intervals]}
        flows.append(FlowResult(
            name=st.name, app=st.app, src=st.src, dst=st.dst, proto=st.proto, sport=st.sport, dport=st.dport,
            packets_sent=st.sent, packets_delivered=st.delivered, bytes_sent=st.bytes_sent,
            bytes_delivered=st.bytes_delivered, send_errors=st.send_errors, timeouts=st.timeouts,
            start_s=st.connect_s if st.proto == "tcp" else st.first_send_s, end_s=st.last_recv_s, latencies_s=np.asarray(st.latencies_s, dtype=float),
            sent_s=np.asarray(st.sent_s, dtype=float),
            layers_s=layers, layer_packets=tracer.flow_layer_pkts.get(st.flow, 0),
            retransmits=getattr(st, "retransmits", 0), tcp=tcp))
    counters: dict[str, Any] = {}
    for name in sorted(net.netns):
        ns = net.netns[name]
        counters[name] = {
            "hostname": ns.hostname,
            "host": ns.host.name,
            "containers": sorted(comp.graph.nodes[name]["containers"]),
            "dev": {ifname: ns.devices[ifname].stats() for ifname in sorted(ns.devices)},
            "snmp": ns.snmp(),
            "arp": ns.arp_counters(),
            "qdisc": {ifname: d.qdisc.stats() for ifname, d in sorted(ns.devices.items()) if hasattr(d, "qdisc")},
        }
        if ns.nf is not None:
            counters[name]["netfilter"] = ns.nf.counters()
        if ns.proxies:
            counters[name]["docker_proxy"] = [p.counters() for p in ns.proxies]
        if comp.graph.nodes[name].get("etc_hosts"):
            counters[name]["etc_hosts"] = dict(sorted(comp.graph.nodes[name]["etc_hosts"].items()))
        nic = {ifname: d.filter_stats() for ifname, d in sorted(ns.devices.items()) if hasattr(d, "filter_stats")}
        if nic:
            counters[name]["nic"] = nic
    for name in sorted(getattr(net, "switches", {})):
        sw = net.switches[name]
        counters[name] = {"hostname": name, "host": None, "containers": [], "switch": True,
                          "dev": {p.ifname: p.stats() for p in sw.ports}, "snmp": {}, "arp": {},
                          "qdisc": {}, "filtered": sw.filtered,
                          "fdb": {f"{m:012x}": e[0].ifname for m, e in sorted(sw.fdb.items())}}
    originated = dict(sorted(tracer.originated.items()))
    delivered = dict(sorted(tracer.delivered.items()))
    dropped = {k: {r.value: n for r, n in sorted(c.items(), key=lambda x: x[0].value)}
               for k, c in sorted(tracer.dropped.items())}
    ledger = {"originated": originated, "delivered": delivered, "dropped": dropped,
              "in_flight": tracer.in_flight()}
    cpu = {c.name: {"busy_s": c.busy_s, "segments": c.segments} for h in net.hosts.values() for c in h.cpus}
    res = Results(scenario=comp.scenario.name, engine=engine, seed=comp.scenario.seed, sim_time_s=sim_time_s,
                  wall_s=wall_s, events=events, partial=partial, flows=flows, counters=counters,
                  drops=tracer.drop_counts(), ledger=ledger, cost_profile=costs.name, graph=comp.graph,
                  extra={"cpu": cpu}, timeseries=list(getattr(net, "timeseries", [])))
    return res
