"""TCP workloads on the netns engine: the agents' configurations, bounds and flows.csv rows.

The model's applications (models/apps/tcp.py, installed by sim/engines/des/build.py) set
``TCP_NODELAY`` and ``TCP_CONGESTION`` on both ends (the agents always set a congestion
control: the workload's, else their namespace's ``net.ipv4.tcp_congestion_control``, which
the plan cannot write — plan.PER_SOCKET_SYSCTLS), ``SO_SNDBUF`` and ``TCP_CORK`` on the
writer of tcp_bulk/tcp_stream and ``SO_RCVBUF`` on its sink, both buffers on both ends of
tcp_rr; the agents (agents/tcp.py) set the same.

A flow's row follows the model's :class:`~simnet.models.apps.tcp.TcpFlowStats`:

* tcp_bulk / tcp_stream: ``packets_sent`` the ``write()`` calls, ``packets_delivered`` the
  writes whose last byte was read, one latency sample per delivered write (its ``write()``
  call to the end of the ``recv()`` that returned its last byte: the sink's read log, by byte
  offset), ``start_s`` the ``connect()`` call, ``end_s`` the last such read;
* tcp_rr: transactions sent and answered, one round trip per transaction;
* ``retransmits``: ``tcpi_total_retrans`` of both sockets; ``tcp`` (tcp.json): both sockets'
  TCP_INFO with the model's keys, connect and establish times, and for tcp_stream the bytes
  read per ``report`` interval from connect() returning, as the model's sink reports them.

Scope and limitations: TCP_INFO is read when the connection is over (the writer after the
server's FIN, the server once its FIN is acknowledged), the model's at the end of the run.
Validation: tests/engines/netns/test_tcp.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simnet.compile import Compiled, WorkloadPlan
from simnet.models.linux.params import StackParams
from simnet.results.results import FlowResult

from .encap import encap_paths

__all__ = ["tcp_client", "tcp_server", "tcp_bound", "tcp_flow_result"]

SLOWEST_BPS = 5e6             # the slowest a replayed transfer may go before it is abandoned


def _cc(comp: Compiled, ns: str | None, wp: WorkloadPlan) -> str:
    """The congestion control a socket in ``ns`` gets: the workload's, else the namespace's
    ``net.ipv4.tcp_congestion_control`` (the model's default: cubic)."""
    if wp.spec.congestion:
        return wp.spec.congestion
    v = comp.graph.nodes[ns]["sysctls"].get("net.ipv4.tcp_congestion_control") if ns else None
    return str(v) if v else StackParams().tcp.congestion_control


def _opts(comp: Compiled, wp: WorkloadPlan, side: str) -> dict[str, Any]:
    w = wp.spec
    ns = wp.src_netns if side == "client" else wp.dst_netns
    out: dict[str, Any] = {"nodelay": w.nodelay, "cc": _cc(comp, ns, wp)}
    if wp.app == "tcp_rr":
        out.update(sndbuf=w.sndbuf, rcvbuf=w.rcvbuf)
    elif side == "client":
        out.update(sndbuf=w.sndbuf, cork=w.cork)
    else:
        out.update(rcvbuf=w.rcvbuf)
    return out


def tcp_client(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    w = wp.spec
    cfg: dict[str, Any] = {"daddr": wp.daddr, "dport": wp.dport, "start_s": w.start, **_opts(comp, wp, "client")}
    if wp.app == "tcp_bulk":
        cfg.update(size=w.size, write=w.write)
    elif wp.app == "tcp_stream":
        cfg.update(duration_s=w.duration, write=w.write)
    else:
        cfg.update(count=w.count, request=w.request, response=w.response, writes=w.writes, interval_s=w.interval)
    return cfg


def tcp_server(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    w = wp.spec
    cfg: dict[str, Any] = {"port": wp.listen_port or wp.dport, **_opts(comp, wp, "server")}
    if wp.app == "tcp_rr":
        cfg.update(request=w.request, response=w.response)
    else:
        cfg.update(read=w.read)
    return cfg


def tcp_bound(wp: WorkloadPlan) -> float:
    w = wp.spec
    if wp.app == "tcp_bulk":
        return w.start + 10.0 + w.size * 8 / SLOWEST_BPS
    if wp.app == "tcp_stream":
        return w.start + w.duration + 10.0
    return w.start + 10.0 + w.count * (w.interval + 0.5)


def _rel(t: float | None, t0: float) -> float | None:
    return None if t is None else t - t0


def tcp_flow_result(pair: Any, client: Any, server: Any, t0: float) -> FlowResult:
    """One flows.csv row (and tcp.json entry) from the TCP agents' reports."""
    wp, w = pair.plan, pair.plan.spec
    c = {**(client.done or {}), **(client.result or {})}
    s = (server.result or {}) if server is not None else {}
    lat: list[float] = []
    sent_at: list[float] = []
    intervals: list[dict[str, Any]] = []
    if wp.app == "tcp_rr":
        delivered, dbytes = c.get("delivered", 0), c.get("bytes_delivered", 0)
        lat, sent_at, last = c.get("latencies_s", []), c.get("sent_at", []), c.get("last_recv")
    else:
        calls = np.asarray(c.get("write_calls", []), dtype=float)
        ends = np.asarray(c.get("write_ends", []), dtype=np.int64)
        rt = np.asarray(s.get("read_times", []), dtype=float)
        rc = np.asarray(s.get("read_cum", []), dtype=np.int64)
        idx = np.searchsorted(rc, ends, side="left")        # the first read that returned each write's last byte
        ok = idx < len(rc)
        delivered = int(ok.sum())
        dbytes = int(ends[ok][-1]) if delivered else 0
        lat = (rt[idx[ok]] - calls[ok]).tolist()
        sent_at = calls[ok].tolist()
        last = float(rt[idx[ok][-1]]) if delivered else None
        if wp.app == "tcp_stream" and c.get("established_s") is not None and len(rt):
            intervals = _intervals(rt, rc, c["established_s"], float(w.report), s.get("eof_s"), t0)
    ci, si = c.get("tcp_info"), s.get("tcp_info")
    retrans = sum(x.get("tcpi_total_retrans", 0) for x in (ci, si) if x)
    tcp = {"connect_s": _rel(c.get("connect_s"), t0), "established_s": _rel(c.get("established_s"), t0),
           "client": ci, "server": si, "intervals": intervals}
    return FlowResult(name=wp.name, app=wp.app, src=w.from_, dst=w.to, proto="tcp", sport=c.get("sport", 0),
                      dport=wp.dport, packets_sent=c.get("sent", 0), packets_delivered=delivered,
                      bytes_sent=c.get("bytes_sent", 0), bytes_delivered=dbytes, send_errors=c.get("send_errors", 0),
                      timeouts=0, start_s=_rel(c.get("connect_s"), t0), end_s=_rel(last, t0),
                      latencies_s=np.asarray(lat, dtype=float), sent_s=np.asarray(sent_at, dtype=float) - t0,
                      retransmits=retrans, tcp=tcp)


def _intervals(rt: np.ndarray, rc: np.ndarray, t_est: float, report_s: float, eof: float | None,
               t0: float) -> list[dict[str, Any]]:
    """Bytes read per ``report_s`` from connect() returning, the last interval ending at end of file
    (the model's TcpSink: ``_account`` and ``_flush_interval``)."""
    t_end = eof if eof is not None else float(rt[-1])
    n = max(1, math.ceil((t_end - t_est) / report_s))
    out = []
    prev = 0
    for i in range(n):
        a = t_est + i * report_s
        b = min(a + report_s, t_end) if i == n - 1 else a + report_s
        k = int(np.searchsorted(rt, b, side="right"))
        got = int(rc[k - 1]) if k else 0
        nbytes, prev = got - prev, got
        out.append({"start_s": a - t0, "end_s": b - t0, "bytes": nbytes, "bps": nbytes * 8 / (b - a) if b > a else 0.0})
    return out


def tcp_exactness(comp: Compiled) -> dict[str, Any]:
    """What ``simnet compare`` may hold exact about the TCP flows (netns.json ``tcp``).

    * ``netns``: the namespaces a TCP flow crosses. There, how many ACKs a receiver sends
      depends on timing (quick-ACK, delayed ACK, one ACK per batch the softirq or the backlog
      hands the socket), so the device, IP and ``Tcp InSegs``/``OutSegs`` counters are shown,
      not held exact;
    * ``exact_flows``: flows whose data-segment count is fixed by the rules alone: every
      device of their path has TSO off (segments are MSS-sized from the socket to the wire),
      no link on it loses frames, and the sender never sends a segment shorter than the MSS
      but the last: ``tcp_bulk`` with ``TCP_CORK`` (Nagle alone lets a short segment out
      whenever no other short one is unacknowledged, which depends on timing), or ``tcp_rr``
      whose every write fits in one segment (one segment per write; the client waits for
      each response). Their ``tcpi_data_segs_out``/``_in`` are exact, and ``TcpExt
      TCPOrigDataSent`` in ``exact_netns`` (namespaces where only such flows send);
    * ``encap``: the underlay of the VXLAN tunnels those namespaces use (netns/encap.py
      ``encap_paths``): the devices, routing namespaces, tunnel ends (their ``Udp`` datagram
      counts) and outer conntrack entries that carry the flows' segments and ACKs inside VXLAN;
    * ``impaired_flows``: flows crossing a link that loses frames in the model (``loss``,
      ``drop``), which the replay cannot reproduce without netem: retransmissions differ.
    """
    g = comp.graph
    tcp_ns: set[str] = set()
    exact: list[str] = []
    impaired: list[str] = []
    sending: dict[str, list[bool]] = {}
    for wp in comp.workloads:
        if not wp.app.startswith("tcp"):
            continue
        path = [n for n in (wp.src_netns, *wp.path, wp.dst_netns) if n is not None]
        # and the namespaces that only bridge it (a veth's host end, docker0): any with a device next to one here
        near = {g.nodes[v].get("netns") for n in path for x in comp.devices(n) for _u, v in g.out_edges(x)}
        path = [*path, *sorted(n for n in near if n is not None and n not in path and n in g
                               and g.nodes[n].get("kind") == "netns")]
        tcp_ns.update(path)
        devs = [d for n in dict.fromkeys(path) for d in comp.devices(n)]
        lossy = any((e.get("loss") or e.get("drop")) for x in devs for _u, _v, e in g.out_edges(x, data=True)
                    if e.get("kind") == "wire")
        tso_off = all(not g.nodes[x].get("tso", True) for x in devs if g.nodes[x]["kind"] != "loopback")
        w = wp.spec
        shape_ok = (wp.app == "tcp_bulk" and w.cork) or (wp.app == "tcp_rr" and w.response <= 1448
                                                         and -(-w.request // w.writes) <= 1448)
        ok = tso_off and not lossy and shape_ok
        if lossy:
            impaired.append(wp.name)
        if ok:
            exact.append(wp.name)
        for n in (wp.src_netns, wp.dst_netns):
            if n is not None:
                sending.setdefault(n, []).append(ok)
    return {"netns": sorted(tcp_ns), "exact_flows": exact, "impaired_flows": impaired,
            "exact_netns": sorted(n for n, oks in sending.items() if all(oks)), "encap": encap_paths(comp, tcp_ns)}
