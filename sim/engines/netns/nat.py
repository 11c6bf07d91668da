"""Docker's iptables rules in the replay: the nat table of a host that publishes ports or
masquerades (the graph's ``nat``), and DOCKER-ISOLATION between its bridges (``isolation``).

What the model's netfilter (models/linux/netfilter.py) does, installed as dockerd 28 installs it
(moby ``iptabler``: ``setupIPChains``, ``setPerPortNAT``, ``setupNonInternalNetworkRules``):

* ``-t nat -N DOCKER``; ``PREROUTING -m addrtype --dst-type LOCAL -j DOCKER``; ``OUTPUT !
  -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER`` (with the userland proxy; without
  it 127.0.0.0/8 is not excluded and the bridge gets ``route_localnet=1`` so that a packet
  from 127.0.0.1 may leave through it);
* per bridge network with containers: ``POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE``
  and, without the proxy, ``POSTROUTING -o BRIDGE -m addrtype --src-type LOCAL -j
  MASQUERADE`` (the host's loopback traffic to its containers);
* per published port: ``DOCKER ! -i BRIDGE [-d HOSTIP] -p PROTO --dport HOSTPORT -j DNAT
  --to-destination ADDR:PORT`` (without the proxy, no ``! -i BRIDGE``: hairpin NAT), after
  ``DOCKER -i BRIDGE -j RETURN`` with the proxy;
* isolation between two or more bridges of a host: ``FORWARD -j DOCKER-ISOLATION-STAGE-1``,
  ``STAGE-1 -i B ! -o B -j DOCKER-ISOLATION-STAGE-2``, ``STAGE-2 -o B -j DROP`` per bridge.

Every rule the model counts carries its name as an iptables comment (``-m comment``): the
engine reads the rules' packet counters back by those names (``iptables-save -c``) as the
model's ``nat_hits``. The nat table's existence switches connection tracking on in that
namespace (``nf_ct_netns_get``), as on a Docker host; its statistics are per namespace
(``/proc/net/stat/nf_conntrack``). The userland proxy itself is an agent (agents/proxy.py).

Scope and limitations: Docker's filter-table rules other than isolation (DOCKER-USER,
DOCKER-FORWARD, the drop of unsolicited inbound traffic) are not installed, as the model
has none; a single bridge needs no isolation rules (none could match) and gets none.
Validation: tests/engines/netns/test_plan_drivers.py (the rules, without root), test_replay_drivers.py
(publish-port replayed and compared with the DES, conntrack and rule counters included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx

from .ops import Iptables, Op, Sysctl

if TYPE_CHECKING:
    from .ops import Plan

__all__ = ["netfilter_ops", "dnat_name", "masq_name", "masq_local_name", "ISOLATION_CHAINS"]

ISOLATION_CHAINS = ("DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2")


def dnat_name(r: dict[str, Any]) -> str:
    """The model's name of a DNAT rule (models/linux/netfilter.py, sim/engines/des/build.py)."""
    return f"DNAT {r['proto']} dpt:{r['host_port']} to:{r['to_addr']}:{r['to_port']}"


def masq_name(m: dict[str, Any]) -> str:
    return f"MASQUERADE {m['subnet']} !{m['bridge']}"


def masq_local_name(m: dict[str, Any]) -> str:
    return f"MASQUERADE src-type LOCAL {m['bridge']}"


def _comment(name: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", name)


def netfilter_ops(g: nx.MultiDiGraph, n: str, plan: "Plan") -> list[Op]:
    """The iptables commands of namespace ``n`` (none when it has neither nat rules nor isolation)."""
    node = g.nodes[n]
    kns = plan.netns[n]
    ops: list[Op] = []
    named: dict[str, tuple[str, str]] = {}
    nat = node.get("nat")
    if nat:
        proxy = bool(nat["userland_proxy"])
        nat_ = ("-t", "nat")
        # per-entry packet counts in /proc/net/nf_conntrack, compared with the model's entries
        ops.append(Sysctl(kns, (("net.netfilter.nf_conntrack_acct", "1"),)))
        ops += [Iptables(kns, (*nat_, "-N", "DOCKER")),
                Iptables(kns, (*nat_, "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")),
                Iptables(kns, (*nat_, "-A", "OUTPUT", *(("!", "-d", "127.0.0.0/8") if proxy else ()), "-m",
                               "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"))]
        for m in nat["masquerade"]:
            name = masq_name(m)
            ops.append(Iptables(kns, (*nat_, "-A", "POSTROUTING", "-s", m["subnet"], "!", "-o", m["bridge"],
                                      *_comment(name), "-j", "MASQUERADE")))
            named[name] = ("nat", "POSTROUTING")
            if not proxy:
                name = masq_local_name(m)
                ops.append(Iptables(kns, (*nat_, "-A", "POSTROUTING", "-o", m["bridge"], "-m", "addrtype",
                                          "--src-type", "LOCAL", *_comment(name), "-j", "MASQUERADE")))
                named[name] = ("nat", "POSTROUTING")
        bridges = list(dict.fromkeys([r["bridge"] for r in nat["dnat"]] + [m["bridge"] for m in nat["masquerade"]]))
        if proxy:
            for b in dict.fromkeys(r["bridge"] for r in nat["dnat"]):
                ops.append(Iptables(kns, (*nat_, "-A", "DOCKER", "-i", b, "-j", "RETURN")))
        else:
            ops.append(Sysctl(kns, tuple((f"net.ipv4.conf.{b}.route_localnet", "1") for b in bridges)))
        for r in nat["dnat"]:
            name = dnat_name(r)
            match = ("!", "-i", r["bridge"]) if proxy else ()
            dst = ("-d", f"{r['host_ip']}/32") if r.get("host_ip") else ()
            ops.append(Iptables(kns, (*nat_, "-A", "DOCKER", *match, *dst, "-p", r["proto"], "-m", r["proto"],
                                      "--dport", str(r["host_port"]), *_comment(name), "-j", "DNAT",
                                      "--to-destination", f"{r['to_addr']}:{r['to_port']}")))
            named[name] = ("nat", "DOCKER")
    iso = list(node.get("isolation") or [])
    if len(iso) > 1:
        s1, s2 = ISOLATION_CHAINS
        ops += [Iptables(kns, ("-N", s1)), Iptables(kns, ("-N", s2)), Iptables(kns, ("-A", "FORWARD", "-j", s1))]
        ops += [Iptables(kns, ("-A", s1, "-i", b, "!", "-o", b, "-j", s2)) for b in iso]
        ops += [Iptables(kns, ("-A", s2, "-o", b, "-j", "DROP")) for b in iso]
    if ops:
        plan.needs_tools.add("iptables")
        plan.rules[n] = named
    return ops
