"""Plots of a run: latency CDF, per-layer breakdown, topology, TCP windows and throughput.

Each ``plot_*`` function draws on the axes it is given, or on new pyplot axes (so that they
show inline in a notebook); :func:`write_plots` draws on pyplot-free figures, which needs no
display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .results import Results

__all__ = ["write_plots", "plot_latency_cdf", "plot_breakdown", "plot_topology", "plot_flows", "plot_tcp"]

_META = {"metadata": {"Software": None}}   # keep PNG bytes free of version stamps


def _axes(ax, figsize):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize).gca()


def plot_latency_cdf(res: "Results", ax=None):
    ax = _axes(ax, (7, 4.2))
    for f in res.flows:
        lat = np.sort(f.latencies_s)
        if len(lat) == 0:
            continue
        y = np.arange(1, len(lat) + 1) / len(lat)
        ax.step(lat * 1e6, y, where="post", label=f"{f.name} ({f.app})")
    ax.set_xlabel("latency (µs)" + (" — round trip" if any(f.app.endswith("_rr") for f in res.flows) else ""))
    ax.set_ylabel("fraction of packets")
    ax.set_title(f"{res.scenario}: latency CDF")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax


def plot_breakdown(res: "Results", ax=None):
    """Stacked horizontal bars: mean time per packet in each layer, per flow."""
    flows = [f for f in res.flows if f.layer_packets]
    ax = _axes(ax, (8, 1.2 + 0.6 * max(1, len(flows))))
    layers: list[str] = []
    for f in flows:
        for r in f.breakdown():
            if r["layer"] not in layers:
                layers.append(r["layer"])
    cmap = matplotlib.colormaps["tab20"]
    for i, f in enumerate(flows):
        left = 0.0
        per = {r["layer"]: r["seconds_per_packet"] for r in f.breakdown()}
        for j, layer in enumerate(layers):
            w = per.get(layer, 0.0) * 1e6
            if w <= 0:
                continue
            ax.barh(i, w, left=left, color=cmap(j % 20), label=layer if i == 0 or layer not in
                    [h.get_label() for h in ax.patches] else None)
            left += w
    ax.set_yticks(range(len(flows)), [f.name for f in flows])
    ax.set_xlabel("mean time per packet (µs)")
    ax.set_title(f"{res.scenario}: where the time goes")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def plot_topology(graph, ax=None, title: str = ""):
    """Namespaces as boxes of their devices; veth pairs, bridge ports and wires as lines."""
    ax = _axes(ax, (9, 6))
    netns = [n for n, d in graph.nodes(data=True) if d["kind"] == "netns"]
    hosts = sorted({graph.nodes[n]["host"] for n in netns})
    pos = {}
    # one column per host; the host namespace at the bottom, containers above it
    for hi, h in enumerate(hosts):
        members = [n for n in netns if graph.nodes[n]["host"] == h]
        members.sort(key=lambda n: (graph.nodes[n]["role"] != "host", n))
        for ri, n in enumerate(members):
            x0, y0 = hi * 6.0, ri * 2.2
            devs = [v for _u, v, k in graph.out_edges(n, data="kind") if k == "member"]
            devs.sort()
            w = max(3.0, 1.1 * len(devs))
            role = graph.nodes[n]["role"]
            ax.add_patch(matplotlib.patches.FancyBboxPatch((x0 - 0.3, y0 - 0.5), w, 1.4, boxstyle="round,pad=0.05",
                                                           fc="#e8f0fe" if role == "host" else "#fef7e0", ec="#555"))
            host_c = graph.nodes[n].get("containers") or []
            uts = graph.nodes[n].get("uts") or {}
            label = f"{n} ({role})" + (f" + {', '.join(f'{c} (uts:{uts.get(c, c)})' for c in host_c)}"
                                       if role == "host" and host_c else "")
            ax.text(x0 - 0.2, y0 + 0.65, f"{label}  uts:{graph.nodes[n]['hostname']}", fontsize=7, va="bottom")
            for di, d in enumerate(devs):
                pos[d] = (x0 + 0.5 + di * 1.05, y0)
    colors = {"veth": "#1a73e8", "master": "#188038", "wire": "#d93025"}
    drawn = set()
    for u, v, k in graph.edges(data="kind"):
        if k in colors and u in pos and v in pos and (v, u, k) not in drawn:
            drawn.add((u, v, k))
            (x1, y1), (x2, y2) = pos[u], pos[v]
            ax.plot([x1, x2], [y1, y2], color=colors[k], lw=1.5 if k != "wire" else 2.5, zorder=1)
    for d, (x, y) in pos.items():
        nd = graph.nodes[d]
        ax.scatter([x], [y], s=120, zorder=2, color={"bridge": "#188038", "nic": "#d93025", "veth": "#1a73e8",
                                                       "loopback": "#999"}.get(nd["kind"], "#555"))
        addr = nd["addrs"][0] if nd["addrs"] and nd["kind"] != "loopback" else ""
        ax.text(x, y - 0.28, f"{nd['ifname']}\n{addr}", fontsize=6, ha="center", va="top")
    ax.set_aspect("auto")
    ax.autoscale()
    ax.margins(0.12)
    ax.axis("off")
    ax.set_title(title or "topology: namespaces and devices (blue veth, green bridge port, red wire)")
    return ax


def plot_flows(res: "Results", axes=None):
    """Median latency and goodput per flow, side by side (e.g. one flow per Docker driver)."""
    if axes is None:
        import matplotlib.pyplot as plt

        axes = plt.figure(figsize=(10, 0.8 + 0.35 * max(1, len(res.flows)))).subplots(1, 2)
    names = [f.name for f in res.flows]
    y = np.arange(len(names))
    lat = [f.latency(0.5) * 1e6 if len(f.latencies_s) else 0.0 for f in res.flows]
    gp = [f.goodput_bps / 1e6 for f in res.flows]
    axes[0].barh(y, lat, color="#1a73e8")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("median latency (µs)")
    axes[1].barh(y, gp, color="#188038")
    axes[1].set_yticks(y, [])
    axes[1].invert_yaxis()
    axes[1].set_xlabel("goodput (Mbit/s)")
    axes[0].set_title(f"{res.scenario}: latency and throughput per flow", loc="left")
    for ax in axes:
        ax.grid(alpha=0.3, axis="x")


def _tcp_series(res: "Results") -> dict[str, dict[str, np.ndarray]]:
    by: dict[str, dict[str, list]] = {}
    for r in res.timeseries:
        d = by.setdefault(r["flow"], {"t": [], "cwnd": [], "ssthresh": [], "acked": []})
        d["t"].append(r["t_s"])
        d["cwnd"].append(r["cwnd"])
        d["ssthresh"].append(r["ssthresh"])
        d["acked"].append(r["bytes_acked"])
    return {k: {c: np.asarray(v, dtype=float) for c, v in d.items()} for k, d in by.items()}


def plot_tcp(res: "Results", axes=None):
    """Per TCP flow over time: cwnd and ssthresh (segments) on top, throughput below.

    Throughput is bytes ACKed per second over windows of 1/100 of the run (at least one
    sample), so that a 1 ms sampling does not show every ACK burst. ssthresh is drawn once it
    is set (Linux starts it at "infinity")."""
    if axes is None:
        import matplotlib.pyplot as plt

        axes = plt.figure(figsize=(8, 6)).subplots(2, 1, sharex=True)
    ax_w, ax_t = axes
    series = _tcp_series(res)
    for i, (name, d) in enumerate(series.items()):
        t = d["t"]
        if len(t) < 2:
            continue
        color = f"C{i % 10}"
        ax_w.plot(t, d["cwnd"], color=color, lw=1.2, label=f"{name} cwnd")
        ss = d["ssthresh"].copy()
        ss[ss > 10 * max(d["cwnd"].max(), 10)] = np.nan
        if np.isfinite(ss).any():
            ax_w.plot(t, ss, color=color, lw=0.9, ls="--", label=f"{name} ssthresh")
        step = max(1, len(t) // 100)
        tt, aa = t[::step], d["acked"][::step]
        if len(tt) >= 2:
            rate = np.diff(aa) * 8 / np.diff(tt) / 1e6
            ax_t.step(tt[1:], rate, where="pre", color=color, lw=1.2, label=name)
    ax_w.set_ylabel("segments")
    ax_w.set_title(f"{res.scenario}: congestion window")
    ax_t.set_ylabel("throughput (Mbit/s)")
    ax_t.set_xlabel("time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return axes


def write_plots(res: "Results", out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    nflows = max(1, sum(1 for f in res.flows if f.layer_packets))
    jobs = [("latency_cdf.png", (7, 4.2), lambda ax: plot_latency_cdf(res, ax)),
            ("breakdown.png", (8, 1.2 + 0.6 * nflows), lambda ax: plot_breakdown(res, ax))]
    if res.graph is not None:
        jobs.append(("topology.png", (9, 6), lambda ax: plot_topology(res.graph, ax, f"{res.scenario}: topology")))
    for name, size, draw in jobs:
        fig = Figure(figsize=size)
        draw(fig.subplots())
        fig.savefig(out / name, dpi=110, bbox_inches="tight", **_META)
    fig = Figure(figsize=(10, 0.8 + 0.35 * max(1, len(res.flows))))
    plot_flows(res, fig.subplots(1, 2))
    fig.savefig(out / "flows.png", dpi=110, bbox_inches="tight", **_META)
    if res.timeseries:
        fig = Figure(figsize=(8, 6))
        plot_tcp(res, fig.subplots(2, 1, sharex=True))
        fig.savefig(out / "tcp.png", dpi=110, bbox_inches="tight", **_META)
