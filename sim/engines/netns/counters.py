"""The kernel's counters of one namespace, and their translation into the DES's counters.json.

Read inside the namespace (by the namespace agent, so that ``/sys`` and ``/proc/net`` are the
namespace's own):

* ``/sys/class/net/<dev>/statistics/*`` — per-device packet, byte and drop counters;
* ``/proc/net/snmp`` — the ``Ip``, ``Icmp``, ``IcmpMsg``, ``Tcp``, ``Udp`` MIBs;
* ``/proc/net/netstat`` — ``TcpExt``, ``IpExt``, ``MPTcpExt``;
* ``/proc/net/sockstat`` — fragments held for reassembly (``FRAG: inuse``), used to wait
  until nothing is in flight;
* ``/proc/net/stat/nf_conntrack`` — connection tracking's statistics (per namespace, one hex
  row per CPU; ``entries`` is the table's size, repeated on every row), present once a
  namespace tracks connections; ``/proc/net/nf_conntrack`` — the table itself (with
  ``nf_conntrack_acct`` on, packets and bytes per direction).

ARP frame counts have no per-namespace kernel counter: ``/proc/net/stat/arp_cache`` exists
only in the machine's own namespace and sums every namespace (the ARP table is global). The
namespace agent therefore counts ARP frames itself, with one ``AF_PACKET`` socket per layer-3
device (every device but ``lo`` and bridge ports) carrying a classic BPF filter that accepts
only ARP: frames the device transmits (``PACKET_OUTGOING``) are the namespace's requests and
replies sent; frames it receives for this host or broadcast are those received — what the
model's ``arp_rcv`` counts (frames for another host are not). ``res_failed`` and
``unresolved_discards`` exist only machine-wide: the engine reports the machine's delta in
netns.json and leaves the per-namespace values empty (``null``).

This module is imported by the agents: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["parse_proc_table", "read_dev_stats", "read_namespace", "frag_inuse", "read_arp_cache", "delta",
           "DEV_FIELDS", "read_ct_stat", "parse_ct_table"]

DEV_FIELDS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "tx_dropped")


def parse_proc_table(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` or ``/proc/net/netstat``: pairs of header and value lines per group."""
    out: dict[str, dict[str, int]] = {}
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    for head, vals in zip(lines[0::2], lines[1::2]):
        group = head[0].rstrip(":")
        if vals[0].rstrip(":") != group or len(head) != len(vals):
            raise ValueError(f"malformed table for {group}")
        out[group] = {k: int(v) for k, v in zip(head[1:], vals[1:])}
    return out


def read_dev_stats(sys_class_net: Path = Path("/sys/class/net")) -> dict[str, dict[str, int]]:
    """Every device's ``statistics/`` directory."""
    out: dict[str, dict[str, int]] = {}
    for dev in sorted(os.listdir(sys_class_net)):
        st = sys_class_net / dev / "statistics"
        if not st.is_dir():
            continue
        out[dev] = {f: int((st / f).read_text()) for f in sorted(os.listdir(st))}
    return out


def frag_inuse(text: str) -> int:
    """Fragment queues in use, from ``/proc/net/sockstat`` (``FRAG: inuse N memory M``)."""
    for ln in text.splitlines():
        if ln.startswith("FRAG:"):
            parts = ln.split()
            return int(parts[parts.index("inuse") + 1])
    return 0


def read_namespace(proc_net: Path = Path("/proc/net"), sys_class_net: Path = Path("/sys/class/net")
                   ) -> dict[str, Any]:
    """All counters of the namespace this process is in."""
    out = {"dev": read_dev_stats(sys_class_net),
           "snmp": parse_proc_table((proc_net / "snmp").read_text()),
           "netstat": parse_proc_table((proc_net / "netstat").read_text())}
    ct = read_ct_stat(proc_net / "stat" / "nf_conntrack")
    if ct:
        out["conntrack"] = ct
    return out


def read_ct_stat(path: Path = Path("/proc/net/stat/nf_conntrack")) -> dict[str, int]:
    """Connection tracking's statistics summed over CPUs (``entries``: the table's size, not summed)."""
    try:
        lines = path.read_text().split("\n")
    except OSError:
        return {}
    head = lines[0].split()
    tot = dict.fromkeys(head, 0)
    rows = [ln.split() for ln in lines[1:] if len(ln.split()) == len(head)]
    for vals in rows:
        for k, v in zip(head, vals):
            tot[k] += int(v, 16)
    if rows:
        tot["entries"] = int(rows[0][0], 16)
    return tot


def parse_ct_table(text: str) -> list[dict[str, Any]]:
    """``/proc/net/nf_conntrack``: per entry the protocol, both tuples and (with accounting) packets/bytes.

    A line reads ``ipv4 2 udp 17 29 src=A dst=B sport=P dport=Q packets=N bytes=M [UNREPLIED]
    src=… dst=… sport=… dport=… packets=… bytes=… [ASSURED] mark=0 use=1``: the first
    ``src=`` group is the original direction, the second the reply."""
    out = []
    for ln in text.splitlines():
        tok = ln.split()
        if len(tok) < 5:
            continue
        dirs: list[dict[str, str]] = []
        flags = []
        for t in tok[5:]:
            k, eq, v = t.partition("=")
            if not eq:
                flags.append(t.strip("[]"))
                continue
            if k == "src":
                dirs.append({})
            if dirs and k in ("src", "dst", "sport", "dport", "packets", "bytes") and k not in dirs[-1]:
                dirs[-1][k] = v
        if len(dirs) < 2:
            continue
        out.append({"proto": tok[2], "orig": dirs[0], "reply": dirs[1], "flags": flags})
    return out


def read_arp_cache(path: Path = Path("/proc/net/stat/arp_cache")) -> dict[str, int]:
    """The ARP table's statistics summed over CPUs (the machine's own namespace only; hex per CPU)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    lines = text.split("\n")
    head = lines[0].split()
    tot = dict.fromkeys(head, 0)
    for ln in lines[1:]:
        vals = ln.split()
        if len(vals) != len(head):
            continue
        for k, v in zip(head, vals):
            tot[k] += int(v, 16)
    tot.pop("entries", None)      # a gauge, not a counter
    return tot


def delta(after: Any, before: Any) -> Any:
    """``after - before`` for nested dicts of counters (keys only in ``after`` are kept as they are)."""
    if isinstance(after, dict):
        b = before if isinstance(before, dict) else {}
        return {k: delta(v, b.get(k)) for k, v in after.items()}
    if isinstance(after, int) and isinstance(before, int):
        return after - before
    return after
