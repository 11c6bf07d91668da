"""The kernel's counters of a replay in the DES's counters.json schema (sim/results/results.py).

Per namespace of the graph, keyed as the DES keys it (a host's root namespace under the
host's name, a sandbox under the container's name): ``dev`` for every device of the graph
(the six fields of ``/sys/class/net/*/statistics`` the model keeps), ``snmp`` with the
model's fields of ``Ip``, ``Icmp``, ``Tcp``, ``Udp`` (``/proc/net/snmp``), ``IcmpMsg`` (its
non-zero entries, in the model's order), ``IpExt`` and ``TcpExt`` (``/proc/net/netstat``; the
fields the model keeps, models/linux/tcp/table.py), ``arp`` (frames counted
by the namespace agent; ``res_failed`` and ``unresolved_discards`` are machine-wide in the
kernel, so null here), ``qdisc`` for NICs. Counters are deltas over the run; configuration
values and gauges (``Forwarding``, ``DefaultTTL``, ``RtoMin``, ``CurrEstab``, ...) are read as
they are. A NIC's ``rx_bytes`` gets the
padding to 60 bytes of each shorter frame it received (counted by the namespace agent): a
physical NIC counts received frames padded, the veth that stands in for it does not.

The other drivers' parts, in the model's schema:

* ``nic`` (every NIC): ``promiscuity`` and the unicast list (``uc_addresses``) as the kernel
  shows them on the veth stand-in, ``mac_filter_drops`` the frames a physical NIC's filter
  would have refused (counted by the namespace agent, and taken off ``rx_packets`` and
  ``rx_bytes``: the veth has no filter and counted them);
* ``netfilter`` (a namespace with Docker's nat rules): ``conntrack`` from
  ``/proc/net/stat/nf_conntrack`` (deltas; ``entries`` is the table's size at the end),
  ``nat_hits`` from the rules' packet counters, ``entries`` from ``/proc/net/nf_conntrack``
  (packets per direction, with ``nf_conntrack_acct`` on);
* ``docker_proxy``: the proxy agents' socket counters;
* an external switch: its ports' device counters, its learnt FDB (no ``snmp``: it is not a
  host); ``filtered`` (frames it would have sent back out of their port) has no counter
  in the Linux bridge and is null.
"""

from __future__ import annotations

from typing import Any

from simnet.compile import Compiled
from simnet.models.linux.netns import ICMP_FIELDS, IP_FIELDS, IPEXT_FIELDS, UDP_FIELDS
from simnet.models.linux.tcp.table import TCP_FIELDS, TCPEXT_FIELDS

from .counters import DEV_FIELDS, delta

__all__ = ["kernel_counters", "SNMP_GROUPS", "GAUGES"]

# counters.json snmp group -> (kernel file, the model's field names)
SNMP_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Ip": ("snmp", IP_FIELDS),
    "Icmp": ("snmp", ICMP_FIELDS),
    "Udp": ("snmp", UDP_FIELDS),
    "IpExt": ("netstat", IPEXT_FIELDS),
    "Tcp": ("snmp", TCP_FIELDS),
    "TcpExt": ("netstat", TCPEXT_FIELDS),
}
GAUGES = {("Ip", "Forwarding"), ("Ip", "DefaultTTL"), ("Tcp", "RtoAlgorithm"), ("Tcp", "RtoMin"), ("Tcp", "RtoMax"),
          ("Tcp", "MaxConn"), ("Tcp", "CurrEstab")}


def _icmp_msg_key(name: str) -> tuple[bool, int]:
    return (name[:2] != "In", int(name.lstrip("InOutType")))


def kernel_counters(comp: Compiled, ns_results: dict[str, dict[str, Any]],
                    qdiscs: dict[str, dict[str, dict[str, int]]], extra: dict[str, Any] | None = None,
                    plan: Any = None) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(counters.json, the kernel's full counters per namespace, frames seen before time zero).

    ``extra``: what the engine read besides the agents (state.py; ``proxies``: the docker-proxy
    agents' results per namespace); ``plan``: the replay's plan (its switches)."""
    g = comp.graph
    extra = extra or {}
    switches = plan.switches if plan is not None else {}
    counters: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    pre: list[str] = []
    for ns in sorted(ns_results):
        r = ns_results[ns]
        base, fin = r["baseline"], r["final"]
        d = delta(fin, base)
        if ns in switches:
            counters[ns] = _switch(ns, d, switches[ns], extra.get("switch_fdb", {}).get(ns, {}))
            raw[ns] = {"dev": d["dev"]}
            continue
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
            filtered = r.get("filtered", {}).get(ifname)
            if filtered:   # a NIC's unicast filter refuses them before counting; the veth has none
                dev[ifname]["rx_packets"] -= filtered["frames"]
                dev[ifname]["rx_bytes"] -= filtered["bytes"]
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
        order = ("Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "IpExt", "TcpExt")      # the model's (Netns.snmp)
        snmp = {k: snmp[k] for k in order if k in snmp} | {k: v for k, v in snmp.items() if k not in order}
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
        if node.get("nat"):
            counters[ns]["netfilter"] = _netfilter(node["nat"], d.get("conntrack", {}), fin.get("conntrack", {}),
                                                   extra.get("rules", {}).get(ns, {}), r.get("conntrack_table", []))
        if extra.get("proxies", {}).get(ns):
            counters[ns]["docker_proxy"] = extra["proxies"][ns]
        if node.get("etc_hosts"):
            counters[ns]["etc_hosts"] = dict(sorted(node["etc_hosts"].items()))
        nics = extra.get("nic", {}).get(ns, {})
        if nics:
            counters[ns]["nic"] = {i: _nic(st, r.get("filtered", {}).get(i)) for i, st in sorted(nics.items())}
        raw[ns] = {"dev": d["dev"], "snmp": d["snmp"], "netstat": d["netstat"], "arp_by_device": r["arp"],
                   "short_rx": r.get("short_rx", {}), "filtered": r.get("filtered", {})}
        if "conntrack" in d:
            raw[ns]["conntrack"] = d["conntrack"] | {"entries": fin["conntrack"].get("entries", 0)}
    return counters, raw, pre


def _switch(name: str, d: dict[str, Any], info: dict[str, Any], fdb: dict[str, str]) -> dict[str, Any]:
    dev = {}
    for port in info["ports"]:
        st = d["dev"].get(port)
        if st is None:
            raise ValueError(f"port {port} of switch {name} is missing from the kernel's counters")
        dev[port] = {k: st.get(k, 0) for k in DEV_FIELDS}
    return {"hostname": name, "host": None, "containers": [], "switch": True, "dev": dev, "snmp": {}, "arp": {},
            "qdisc": {}, "filtered": None, "fdb": fdb}


def _nic(st: dict[str, Any], filtered: dict[str, int] | None) -> dict[str, Any]:
    """The model's ``filter_stats()`` of a NIC, from its veth stand-in (no unicast filter: IFF_UNICAST_FLT
    unset, so any secondary address makes it promiscuous, ``uc_promisc``)."""
    uc = len(st["uc"])
    return {"promisc": st["promiscuity"] > 0, "promiscuity": st["promiscuity"], "uc_promisc": uc > 0,
            "uc_addresses": uc, "uc_filter_slots": 0, "mac_filter_drops": (filtered or {}).get("frames", 0)}


CT_FIELDS = ("entries", "found", "insert", "invalid")


def _netfilter(nat: dict[str, Any], ct: dict[str, int], ct_final: dict[str, int], hits: dict[str, int],
               table: list[dict[str, Any]]) -> dict[str, Any]:
    stats = {k: ct.get(k, 0) for k in CT_FIELDS}
    stats["entries"] = ct_final.get("entries", 0)
    entries = []
    for e in sorted(table, key=lambda e: (e["proto"], tuple(int(x) for x in e["orig"]["src"].split(".")),
                                          int(e["orig"].get("sport", 0)),
                                          tuple(int(x) for x in e["orig"]["dst"].split(".")),
                                          int(e["orig"].get("dport", 0)))):
        o, rp = e["orig"], e["reply"]
        entries.append({"orig": f"{e['proto']} {o['src']}:{o.get('sport', '')} > {o['dst']}:{o.get('dport', '')}",
                        "reply": f"{e['proto']} {rp['src']}:{rp.get('sport', '')} > {rp['dst']}:{rp.get('dport', '')}",
                        "packets": [int(o.get("packets", 0)), int(rp.get("packets", 0))]})
    return {"conntrack": stats, "nat_hits": dict(sorted(hits.items())), "entries": entries}
