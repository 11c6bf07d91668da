"""Every Docker driver in the registry builds a well-formed graph fragment."""

from __future__ import annotations

import ipaddress
import re

import networkx as nx
import pytest

import simnet
from simnet.models.docker import DRIVERS, Endpoint, NetworkPlan, Peer
from simnet.models.docker.graph import add_device, add_netns, new_graph


def sample(driver: str):
    extra = {}
    if driver == "overlay":
        extra = dict(vni=4096, vtep=ipaddress.IPv4Address("192.168.0.1"), mtu=1450,
                     peers=(Peer("far", "far", "eth0", ipaddress.IPv4Address("172.18.0.9"), "h2",
                                 ipaddress.IPv4Address("192.168.0.2")),))
    if driver in ("macvlan", "ipvlan"):
        extra = dict(parent="eth0")
    plan = NetworkPlan(name="appnet", driver=driver, host="h", subnet=ipaddress.IPv4Network("172.18.0.0/16"),
                       gateway=ipaddress.IPv4Address("172.18.0.1"), **({"mtu": 1500} | extra))
    eps = [Endpoint(container=c, sandbox=c if driver != "host" else "h", ifname="eth0",
                    address=ipaddress.IPv4Address(f"172.18.0.{i + 2}"), gateway=True)
           for i, c in enumerate(["web", "db", "cache"])]
    return plan, eps


MASTER_KINDS = ("bridge",)


def check_invariants(g: nx.MultiDiGraph) -> None:
    devs = [n for n, d in g.nodes(data=True) if d.get("kind") not in (None, "netns", "switch")]
    for sw in (n for n, d in g.nodes(data=True) if d.get("kind") == "switch"):
        # a switch is cabled to NICs of hosts only, each cable both ways
        for _u, v, k in g.out_edges(sw, data="kind"):
            assert k == "port" and g.nodes[v]["kind"] == "nic" and g.has_edge(v, sw)
    for d in devs:
        nd = g.nodes[d]
        owners = [u for u, _v, k in g.in_edges(d, data="kind") if k == "member"]
        assert owners == [nd["netns"]], f"{d} must be in exactly one namespace"
        assert len(nd["ifname"]) <= 15 and re.fullmatch(r"[A-Za-z0-9_.-]+", nd["ifname"])
        assert d == f"{nd['netns']}:{nd['ifname']}"
        mac = int(nd["mac"].replace(":", ""), 16)
        if nd["kind"] != "loopback":
            assert mac & (1 << 41) and not mac & (1 << 40), f"{d}: locally administered unicast MAC"
        if nd["kind"] == "veth":
            peer = nd["peer"]
            assert peer in g and g.nodes[peer]["peer"] == d, f"{d}'s peer must name it back"
            assert g.has_edge(d, peer) and g.has_edge(peer, d)
        if "master" in nd:
            m = nd["master"]
            assert m in g and g.nodes[m]["kind"] in MASTER_KINDS and g.nodes[m]["netns"] == nd["netns"]
        if nd["kind"] == "vxlan":
            # its socket lives in a host's root namespace; its FDB points at other hosts' VTEPs
            sock = nd["link_netns"]
            assert g.nodes[sock]["kind"] == "netns" and g.nodes[sock]["role"] == "host"
            assert 4096 <= nd["vni"] < 2 ** 24 and nd["dstport"] == 4789 and "master" in nd
            assert set(nd["neigh"].values()) == set(nd["fdb"])
            assert nd["local"] not in nd["fdb"].values()
        if nd["kind"] in ("macvlan", "ipvlan"):
            # a child of a parent device in its host's root namespace
            parent = nd["lower"]
            assert parent in g and g.nodes[parent]["kind"] in ("nic", "dummy")
            assert g.nodes[g.nodes[parent]["netns"]]["role"] == "host"
            assert g.has_edge(d, parent) and g.has_edge(parent, d)
            host = g.nodes[g.nodes[parent]["netns"]]["host"]
            assert g.nodes[nd["netns"]]["host"] == host
    macs = [g.nodes[d]["mac"] for d in devs if g.nodes[d]["kind"] not in ("loopback", "ipvlan")
            and not (g.nodes[d]["kind"] == "macvlan" and g.nodes[d].get("mode") == "passthru")]
    assert len(macs) == len(set(macs))
    for d in devs:   # ipvlan children (and a passthru macvlan) take their parent's MAC
        nd = g.nodes[d]
        if nd["kind"] == "ipvlan" or (nd["kind"] == "macvlan" and nd.get("mode") == "passthru"):
            assert nd["mac"] == g.nodes[nd["lower"]]["mac"]
    by_net: dict[tuple, list] = {}
    for d in devs:
        nd = g.nodes[d]
        for a in nd["addrs"]:
            if nd["kind"] != "loopback":
                # a bridge network (and an overlay's gateway on br0) exists per host; the addresses
                # of a multi-host network's endpoints are unique across hosts
                scope = "" if nd.get("scope") == "global" else g.nodes[nd["netns"]].get("host")
                by_net.setdefault((nd.get("network") or "", scope), []).append(ipaddress.IPv4Interface(a).ip)
    for net, addrs in by_net.items():
        assert len(addrs) == len(set(addrs)), f"duplicate address on {net}"


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_fragment_is_well_formed(name):
    plan, eps = sample(name)
    g = new_graph()
    add_netns(g, "h", host="h", role="host", hostname="h")
    add_device(g, "h", "eth0", "nic", addrs=["192.168.0.1/24"])
    for ep in eps:
        if ep.sandbox != "h":
            add_netns(g, ep.sandbox, host="h", role="container", hostname=ep.container)
    frag = DRIVERS[name](plan, eps)
    g = nx.compose(g, frag)
    check_invariants(g)
    if name == "bridge":
        assert g.nodes["h:br-appnet"]["kind"] == "bridge"
        assert g.nodes["h:br-appnet"]["addrs"] == ["172.18.0.1/16"]
        ports = [u for u, v, k in g.edges(data="kind") if k == "master"]
        assert len(ports) == 3 and all(g.nodes[p]["ifname"].startswith("veth") and len(g.nodes[p]["ifname"]) == 11
                                       for p in ports)
        assert sorted(r for _ns, r in [(ns, r["via"]) for ns, r in frag.graph["routes"]]) == ["172.18.0.1"] * 3
    elif name == "overlay":
        ns = "1-appnet@h"
        assert g.nodes[ns]["role"] == "overlay"
        assert g.nodes[f"{ns}:br0"]["addrs"] == ["172.18.0.1/16"]
        vx = g.nodes[f"{ns}:vxlan0"]
        assert vx["master"] == f"{ns}:br0" and vx["vni"] == 4096 and vx["mtu"] == 1450
        assert list(vx["fdb"].values()) == ["192.168.0.2"] and list(vx["neigh"]) == ["172.18.0.9"]
        assert all(g.nodes[f"{c}:eth0"]["mtu"] == 1450 for c in ("web", "db", "cache"))
        assert sorted(g.nodes[n]["ifname"] for n in g if g.nodes[n].get("master") == f"{ns}:vxlan0") == []
        assert sorted(g.nodes[n]["ifname"] for n in g if g.nodes[n].get("netns") == ns) == \
            ["br0", "lo", "veth0", "veth1", "veth2", "vxlan0"]
    elif name in ("macvlan", "ipvlan"):
        kids = [n for n, d in g.nodes(data=True) if d.get("kind") == name]
        assert sorted(kids) == ["cache:eth0", "db:eth0", "web:eth0"]
        assert all(g.nodes[k]["lower"] == "h:eth0" and g.nodes[k]["mode"] == ("bridge" if name == "macvlan" else "l2")
                   for k in kids)
        assert sorted(r["via"] for _ns, r in frag.graph["routes"]) == ["172.18.0.1"] * 3
    else:
        assert not [n for n, d in frag.nodes(data=True) if d.get("kind") not in (None, "netns")]


@pytest.mark.parametrize("path", sorted((__import__("conftest").SCENARIOS).glob("*.yaml")), ids=lambda p: p.stem)
def test_compiled_scenarios_are_well_formed(path):
    comp = simnet.compile_scenario(simnet.load(path))
    check_invariants(comp.graph)


def test_bridge_names_and_default_network():
    comp = simnet.compile_scenario(simnet.loads("""
name: x
networks:
  averyveryverylongname: {driver: bridge}
  named: {driver: bridge, options: {com.docker.network.bridge.name: mybr0}}
containers:
  c1: {}
  c2: {networks: [averyveryverylongname, named]}
"""))
    g = comp.graph
    ifnames = {d["ifname"] for _n, d in g.nodes(data=True) if d["kind"] == "bridge"}
    assert "docker0" in ifnames and "mybr0" in ifnames
    long = [n for n in ifnames if n not in ("docker0", "mybr0")]
    assert len(long) == 1 and re.fullmatch(r"br-[0-9a-f]{12}", long[0])
    # the default bridge and the first two user-defined pools, in order
    assert g.nodes["c1:eth0"]["addrs"] == ["172.17.0.2/16"]
    assert g.nodes["c2:eth0"]["addrs"] == ["172.18.0.2/16"]
    assert g.nodes["c2:eth1"]["addrs"] == ["172.19.0.2/16"]
    # the first network gives the default route
    assert g.nodes["c2"]["routes"] == [{"dst": "default", "via": "172.18.0.1", "dev": "eth0"}]
    assert g.nodes["host"]["sysctls"]["net.ipv4.ip_forward"] == 1
