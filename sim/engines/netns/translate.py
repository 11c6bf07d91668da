"""The kernel's counters of a replay in the DES's counters.json schema (sim/results/results.py).

Per namespace of the graph, keyed as the DES keys it (a host's root namespace under the
host's name, a sandbox under the container's name): ``dev`` for every device of the graph
(the six fields of ``/sys/class/net/*/statistics`` the model keeps), ``snmp`` with the
model's fields of ``Ip``, ``Icmp``, ``Udp`` (``/proc/net/snmp``), ``IcmpMsg`` (its non-zero
entries, in the model's order) and ``IpExt`` (``/proc/net/netstat``), ``arp`` (frames counted
by the namespace agent; ``res_failed`` and ``unresolved_discards`` are machine-wide in the
kernel, so null here), ``qdisc`` for NICs. Counters are deltas over the run; configuration
values (``Forwarding``, ``DefaultTTL``) are read as they are. A NIC's ``rx_bytes`` gets the
padding to 60 bytes of each shorter frame it received (counted by the namespace agent): a
physical NIC counts received frames padded, the veth that stands in for it does not.
"""

from __future__ import annotations

from typing import Any

from simnet.compile import Compiled
from simnet.models.linux.netns import ICMP_FIELDS, IP_FIELDS, IPEXT_FIELDS, UDP_FIELDS

from .counters import DEV_FIELDS, delta

__all__ = ["kernel_counters", "SNMP_GROUPS", "GAUGES"]

# counters.json snmp group -> (kernel file, the model's field names)
SNMP_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Ip": ("snmp", IP_FIELDS),
    "Icmp": ("snmp", ICMP_FIELDS),
    "Udp": ("snmp", UDP_FIELDS),
    "IpExt": ("netstat", IPEXT_FIELDS),
}
GAUGES = {("Ip", "Forwarding"), ("Ip", "DefaultTTL")}


def _icmp_msg_key(name: str) -> tuple[bool, int]:
    return (name[:2] != "In", int(name.lstrip("InOutType")))


def kernel_counters(comp: Compiled, ns_results: dict[str, dict[str, Any]],
                    qdiscs: dict[str, dict[str, dict[str, int]]]
                    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(counters.json, the kernel's full counters per namespace, frames seen before time zero)."""
    g = comp.graph
    counters: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    pre: list[str] = []
    for ns in sorted(ns_results):
        r = ns_results[ns]
        base, fin = r["baseline"], r["final"]
        d = delta(fin, base)
        devs = sorted(g.nodes[x]["ifname"] for x in comp.devices(ns))
        dev = {}
        for ifname in devs:
            st = d["dev"].get(ifname)
            if st is None:
                raise ValueError(f"device {ifname} of {ns} is missing from the kernel's counters")
            dev[ifname] = {k: st.get(k, 0) for k in DEV_FIELDS}
            short = r.get("short_rx", {}).get(ifname)
            if short:      # a NIC counts received frames padded to ETH_ZLEN; its veth stand-in does not
                dev[ifname]["rx_bytes"] += short["pad_bytes"]
            b = base["dev"].get(ifname, {})
            if b.get("rx_packets", 0) or b.get("tx_packets", 0):
                pre.append(f"{ns}:{ifname} rx {b.get('rx_packets', 0)} tx {b.get('tx_packets', 0)}")
        snmp: dict[str, Any] = {}
        for group, (src, fields) in SNMP_GROUPS.items():
            have = d[src].get(group, {})
            snmp[group] = {k: (fin[src].get(group, {}).get(k, 0) if (group, k) in GAUGES else have.get(k, 0))
                           for k in fields}
            if group == "Icmp":
                msg = {k: v for k, v in d["snmp"].get("IcmpMsg", {}).items() if v}
                snmp["IcmpMsg"] = {k: msg[k] for k in sorted(msg, key=_icmp_msg_key)}
        snmp = {k: snmp[k] for k in ("Ip", "Icmp", "IcmpMsg", "Udp", "IpExt") if k in snmp} | {
            k: v for k, v in snmp.items() if k not in ("Ip", "Icmp", "IcmpMsg", "Udp", "IpExt")}
        arp = {"requests_sent": 0, "replies_sent": 0, "requests_received": 0, "replies_received": 0}
        for per_dev in r["arp"].values():
            for k in arp:
                arp[k] += per_dev[k]
        node = g.nodes[ns]
        counters[ns] = {
            "hostname": node["hostname"], "host": node["host"], "containers": sorted(node["containers"]),
            "dev": dev, "snmp": snmp,
            "arp": {**arp, "res_failed": None, "unresolved_discards": None},
            "qdisc": qdiscs.get(ns, {}),
        }
        raw[ns] = {"dev": d["dev"], "snmp": d["snmp"], "netstat": d["netstat"], "arp_by_device": r["arp"],
                   "short_rx": r.get("short_rx", {})}
    return counters, raw, pre
