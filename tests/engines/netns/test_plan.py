"""The netns engine's pure parts, without root: the plan, the counter parsers, the translation
into counters.json, the comparison, cost-profile files and the CLI's refusals."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

import simnet
from simnet.engines.netns.counters import delta, frag_inuse, parse_proc_table, read_arp_cache
from simnet.engines.netns.plan import (DEVICE_BUILDERS, IFNAMSIZ, AddrAdd, FdbAdd, Iptables, KernelFeatures, LinkAdd,
                                       LinkUp, NeighAdd, NetnsAdd, Offloads, PlanError, RouteAdd, SetMaster, Sysctl,
                                       TcQdisc, build_plan)
from simnet.engines.netns.preflight import Unavailable, check_plan
from simnet.models.linux.cpu import DEFAULT_COSTS, CostProfile
from simnet.models.linux.params import SYSCTLS
from simnet.results.compare import ICMP_RANDOM, compare_results, is_exact, rows_csv

from conftest import SCENARIOS, all_scenarios, scenario

PREFIX = "sn0a1b2"


def plan_of(name_or_text, features=None):
    comp = simnet.compile_scenario(name_or_text if not isinstance(name_or_text, str) or "\n" not in name_or_text
                                   else scenario(name_or_text))
    return comp, build_plan(comp.graph, PREFIX, features)


@pytest.mark.parametrize("path", all_scenarios(), ids=lambda p: p.stem)
def test_plan_builds_every_device_once_in_order(path):
    comp = simnet.compile_scenario(path)
    g = comp.graph
    assert {d["kind"] for _n, d in g.nodes(data=True)} - set(DEVICE_BUILDERS) <= {"netns"}   # every kind builds
    comp, plan = plan_of(path)
    g = comp.graph
    ops = plan.ops
    kinds = [type(o).__name__ for o in ops]
    namespaces = [n for n, d in g.nodes(data=True) if d["kind"] == "netns"]
    switches = [n for n, d in g.nodes(data=True) if d["kind"] == "switch"]
    spaces = namespaces + switches
    # one namespace per graph namespace and external switch, all first, all carrying the prefix
    assert [o.ns for o in ops[:len(spaces)]] == [f"{PREFIX}-{n}" for n in spaces]
    assert all(isinstance(o, NetnsAdd) for o in ops[:len(spaces)])
    assert all(o.netns.startswith(PREFIX + "-") for o in ops)
    # IPv6 is off in every namespace before any link exists
    first_link = kinds.index("LinkAdd") if "LinkAdd" in kinds else len(ops)
    for n in spaces:
        pre = [o for o in ops[:first_link] if isinstance(o, Sysctl) and o.ns == f"{PREFIX}-{n}"]
        assert pre and ("net.ipv6.conf.all.disable_ipv6", "1") in pre[0].values
        assert ("net.ipv6.conf.default.disable_ipv6", "1") in pre[0].values
    # every device of the graph is created exactly once (a veth pair by one LinkAdd) or is lo, in its
    # own namespace (vxlan, macvlan: created from the lower's namespace into it); a switch adds its
    # bridge and one port per cabled NIC
    made = []
    for o in ops:
        if isinstance(o, LinkAdd):
            made.append((o.home, o.ifname))
            if o.peer_ifname and o.peer_ns:
                made.append((o.peer_ns, o.peer_ifname))
    devices = [(f"{PREFIX}-{d['netns']}", d["ifname"]) for _n, d in g.nodes(data=True)
               if d["kind"] not in ("netns", "loopback", "switch")]
    ports = [(f"{PREFIX}-{sw}", p) for sw in switches
             for p in ["sw", *(f"p{i + 1}" for i in range(sum(k == "port" for _u, _v, k in g.out_edges(sw, data="kind"))))]]
    assert sorted(made) == sorted(devices + ports)
    assert all(len(i) <= IFNAMSIZ for _ns, i in made)
    # children are created after the devices they hang off; vxlan keeps its socket in the host's namespace
    for o in ops:
        if isinstance(o, LinkAdd) and o.kind in ("vxlan", "macvlan", "ipvlan"):
            nid = next(n for n, d in g.nodes(data=True) if d.get("ifname") == o.ifname
                       and f"{PREFIX}-{d.get('netns')}" == o.home)
            d = g.nodes[nid]
            lower_ns = d["link_netns"] if o.kind == "vxlan" else g.nodes[d["lower"]]["netns"]
            assert o.ns == f"{PREFIX}-{lower_ns}"
            if o.kind != "vxlan":
                lower = [i for i, x in enumerate(ops) if isinstance(x, LinkAdd) and (o.ns, o.link) in (
                    (x.home, x.ifname), (x.peer_ns, x.peer_ifname))]
                assert lower and lower[0] < ops.index(o)
    # masters before addresses, addresses before links come up, routes, static entries and rules last
    last = {k: max(i for i, x in enumerate(kinds) if x == k) for k in set(kinds)}
    firsts = {k: kinds.index(k) for k in set(kinds)}
    if "SetMaster" in firsts:
        assert last["LinkAdd"] < firsts["SetMaster"]
    if "AddrAdd" in firsts:
        assert last["AddrAdd"] < firsts["LinkUp"]
    if "RouteAdd" in firsts:
        assert last["LinkUp"] < firsts["RouteAdd"]
    for late in ("FdbAdd", "NeighAdd", "Iptables"):
        if late in firsts:
            assert last["LinkUp"] < firsts[late]
    # every address and route of the graph is there
    addrs = sorted((o.ns, o.ifname, o.cidr) for o in ops if isinstance(o, AddrAdd))
    want = sorted((f"{PREFIX}-{d['netns']}", d["ifname"], a) for _n, d in g.nodes(data=True)
                  if d["kind"] not in ("netns", "loopback", "switch") for a in d["addrs"])
    assert addrs == want
    assert sum(isinstance(o, RouteAdd) for o in ops) == sum(len(d["routes"]) for _n, d in g.nodes(data=True)
                                                           if d["kind"] == "netns")
    # masters as the graph says (and each switch port on its bridge)
    masters = {(o.ns, o.ifname): o.master for o in ops if isinstance(o, SetMaster)}
    assert masters == {(f"{PREFIX}-{d['netns']}", d["ifname"]): g.nodes[d["master"]]["ifname"]
                       for _n, d in g.nodes(data=True) if d.get("master")} | {p: "sw" for p in ports if p[1] != "sw"}
    # offloads as the graph has them on every veth end, NIC, bridge and vxlan; macvlan/ipvlan children keep theirs
    offl = {(o.ns, o.ifname): dict(o.features) for o in ops if isinstance(o, Offloads)}
    assert set(offl) == {(ns, i) for ns, i in made if not i.startswith(PREFIX) and i != "sw"} - {
        (f"{PREFIX}-{d['netns']}", d["ifname"]) for _n, d in g.nodes(data=True)
        if d["kind"] in ("macvlan", "ipvlan", "dummy")}
    for _n, d in g.nodes(data=True):
        if (f"{PREFIX}-{d.get('netns')}", d.get("ifname")) in offl:
            assert offl[f"{PREFIX}-{d['netns']}", d["ifname"]] == {"tso": d["tso"], "gso": d["tso"], "gro": d["gro"]}
    # Docker's static FDB and neighbour entries on every vxlan device
    for _n, d in g.nodes(data=True):
        if d["kind"] == "vxlan":
            kns = f"{PREFIX}-{d['netns']}"
            assert {(o.mac, o.dst) for o in ops if isinstance(o, FdbAdd) and o.ns == kns} == set(d["fdb"].items())
            assert {(o.addr, o.mac) for o in ops if isinstance(o, NeighAdd) and o.ns == kns} == set(d["neigh"].items())
    # a namespace with nat rules gets each of them, named as the model names them
    for n in namespaces:
        nat = g.nodes[n].get("nat")
        rules = [o for o in ops if isinstance(o, Iptables) and o.ns == f"{PREFIX}-{n}"]
        if nat:
            comments = {o.args[o.args.index("--comment") + 1] for o in rules if "--comment" in o.args}
            assert comments == set(plan.rules[n]) and len(comments) == len(nat["dnat"]) + len(nat["masquerade"]) * (
                1 if nat["userland_proxy"] else 2)
            assert "iptables" in plan.needs_tools
        elif len(g.nodes[n].get("isolation") or []) < 2:
            assert not rules
    # expected() names every device with its MTU and MAC
    exp = plan.expected()
    for _n, d in g.nodes(data=True):
        if d["kind"] in ("netns", "switch"):
            continue
        fact = exp[f"{PREFIX}-{d['netns']}"]["devices"][d["ifname"]]
        assert fact["mtu"] == d["mtu"] and fact["mac"] == d["mac"]


def test_script_is_bash_and_each_line_is_the_op():
    _comp, plan = plan_of(SCENARIOS / "two-networks.yaml")
    script = plan.to_script()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    lines = [ln for ln in script.splitlines() if ln and not ln.startswith("#") and not ln.startswith("set ")]
    assert [shlex.split(ln) for ln in lines] == [o.argv() for o in plan.ops]
    assert "set -euo pipefail" in script


def test_model_sysctls_are_written_with_the_model_values():
    comp, plan = plan_of("""
        name: s
        sysctls: {net.ipv4.ipfrag_time: 20}
        containers:
          a: {sysctls: {net.ipv4.neigh.default.base_reachable_time_ms: 4000, net.ipv4.ipfrag_time: 10}}
          b: {}
    """)
    by_ns = {}
    for o in plan.ops:
        if isinstance(o, Sysctl):
            by_ns.setdefault(o.ns, {}).update(dict(o.values))
    a = by_ns[f"{PREFIX}-a"]
    assert a["net.ipv4.ipfrag_time"] == "10"
    assert a["net.ipv4.neigh.eth0.base_reachable_time_ms"] == "4000"     # per device: no neigh.default in a netns
    assert a["net.ipv4.neigh.eth0.retrans_time_ms"] == "1000"            # the model's default, in the sysctl's unit
    assert a["net.ipv4.icmp_ratelimit"] == "1000"
    assert a["net.ipv4.ip_forward"] == "0" and by_ns[f"{PREFIX}-host"]["net.ipv4.ip_forward"] == "1"
    assert by_ns[f"{PREFIX}-host"]["net.ipv4.ipfrag_time"] == "20" and by_ns[f"{PREFIX}-b"]["net.ipv4.ipfrag_time"] == "30"
    assert a["net.bridge.bridge-nf-call-iptables"] == "0"
    # global or read-only in a namespace: not written
    assert "net.core.rmem_default" not in a and "net.core.netdev_max_backlog" not in a
    every = {k.replace("neigh.eth0.", "neigh.default.") for k in a}
    assert set(SYSCTLS) - {"net.core.netdev_max_backlog", "net.core.wmem_default", "net.core.rmem_default",
                           "net.core.wmem_max", "net.core.rmem_max", "net.ipv4.tcp_congestion_control"} <= every


def test_tcp_sysctls_are_written_per_namespace_with_the_model_values():
    """The TCP parameters are written per namespace with the model's values (the buffers as three
    numbers); the congestion control is left to the agents' sockets (test_tcp_agents_take_...)."""
    _comp, plan = plan_of("""
        name: s
        containers:
          a: {sysctls: {net.ipv4.tcp_congestion_control: reno, net.ipv4.tcp_wmem: "4096 65536 1048576"}}
          b: {}
    """)
    by_ns = {}
    for o in plan.ops:
        if isinstance(o, Sysctl):
            by_ns.setdefault(o.ns, {}).update(dict(o.values))
    a, b = by_ns[f"{PREFIX}-a"], by_ns[f"{PREFIX}-b"]
    # a namespace may only default to the machine's allowed congestion controls: set per socket instead
    assert "net.ipv4.tcp_congestion_control" not in a and "net.ipv4.tcp_congestion_control" not in b
    assert a["net.ipv4.tcp_wmem"].split() == ["4096", "65536", "1048576"]
    assert b["net.ipv4.tcp_wmem"].split() == ["4096", "16384", "4194304"]          # tcp_init()'s
    assert b["net.ipv4.tcp_rto_min_us"] == "200000" and b["net.ipv4.tcp_timestamps"] == "1"


def test_sysctl_the_kernel_cannot_set_in_a_namespace_is_a_note():
    feats = KernelFeatures(sysctls=frozenset(), values={"net.core.rmem_default": "212992"})
    _c, plan = plan_of("""
        name: s
        sysctls: {net.core.rmem_default: 100000}
        containers: {a: {}}
    """, feats)
    assert any("net.core.rmem_default" in n and "212992" in n and "100000" in n for n in plan.notes)


def test_links_become_shaped_veth_pairs_and_delay_is_reported():
    _c, plan = plan_of(SCENARIOS / "udp-tandem.yaml")
    tcs = [o for o in plan.ops if isinstance(o, TcQdisc)]
    h3 = [o.args for o in tcs if o.ns == f"{PREFIX}-h3" and o.ifname == "eth1"]
    assert any("100000000bit" in a and "overhead" in a for a in h3)
    assert any(a[:2] == ("qdisc", "add") and "pfifo" in a and "1256" in a for a in h3)   # txqueuelen + ring
    assert sum("propagation delay 10 µs" in n for n in plan.notes) == 3
    with_netem = build_plan(simnet.compile_scenario(SCENARIOS / "udp-tandem.yaml").graph, PREFIX,
                            KernelFeatures(qdiscs=frozenset({"htb", "pfifo", "netem"})))
    assert not any("propagation delay" in n for n in with_netem.notes)
    assert any("netem" in o.args for o in with_netem.ops if isinstance(o, TcQdisc))


def test_bridges_run_without_snooping_and_links_come_up_after_addresses():
    _c, plan = plan_of(SCENARIOS / "quickstart.yaml")
    br = [o for o in plan.ops if isinstance(o, LinkAdd) and o.kind == "bridge"]
    assert len(br) == 1 and br[0].type_args == ("mcast_snooping", "0")
    ups = [o for o in plan.ops if isinstance(o, LinkUp)]
    assert {(o.ns, o.ifname) for o in ups} >= {(f"{PREFIX}-client", "lo"), (f"{PREFIX}-host", "docker0")}


def test_unknown_device_kinds_and_bad_prefixes_are_refused():
    comp = simnet.compile_scenario(SCENARIOS / "quickstart.yaml")
    g = comp.graph.copy()
    g.nodes["host:docker0"]["kind"] = "wireguard"
    with pytest.raises(PlanError, match="cannot build wireguard devices yet"):
        build_plan(g, PREFIX)
    with pytest.raises(PlanError, match="bad run prefix"):
        build_plan(comp.graph, "docker")


def test_a_kernel_without_the_device_kind_is_unavailable():
    _c, plan = plan_of(SCENARIOS / "quickstart.yaml")
    plan.needs_link_kinds.add("ipvlan")
    with pytest.raises(Unavailable, match="CONFIG_IPVLAN"):
        check_plan(plan, KernelFeatures(link_kinds=frozenset({"veth", "bridge"})))
    _c, plan = plan_of(SCENARIOS / "udp-tandem.yaml")
    with pytest.raises(Unavailable, match="htb qdisc"):
        check_plan(plan, KernelFeatures(qdiscs=frozenset({"pfifo"})))


# -- counters -------------------------------------------------------------------------------------

SNMP = """Ip: Forwarding DefaultTTL InReceives FragCreates
Ip: 2 64 1000 3
Icmp: InMsgs OutMsgs
Icmp: 5 6
IcmpMsg: InType3 OutType3
IcmpMsg: 5 6
Udp: InDatagrams OutDatagrams
Udp: 999 1000
"""


def test_proc_tables_parse_and_deltas_keep_configuration():
    t = parse_proc_table(SNMP)
    assert t["Ip"] == {"Forwarding": 2, "DefaultTTL": 64, "InReceives": 1000, "FragCreates": 3}
    assert t["IcmpMsg"] == {"InType3": 5, "OutType3": 6}
    with pytest.raises(ValueError):
        parse_proc_table("Ip: A B\nIp: 1\n")
    d = delta({"a": {"x": 5, "y": "s"}, "b": 3}, {"a": {"x": 2}})
    assert d == {"a": {"x": 3, "y": "s"}, "b": 3}
    assert frag_inuse("sockets: used 3\nFRAG: inuse 2 memory 8192\n") == 2


def test_arp_cache_sums_hex_columns_over_cpus(tmp_path):
    p = tmp_path / "arp_cache"
    p.write_text("entries  allocs res_failed unresolved_discards\n"
                 "00000004 0000000a 00000010 00000001\n00000004 00000002 00000001 00000000\n")
    assert read_arp_cache(p) == {"allocs": 12, "res_failed": 17, "unresolved_discards": 1}
    assert read_arp_cache(tmp_path / "missing") == {}


def test_kernel_counters_take_the_des_schema():
    from simnet.engines.netns.translate import kernel_counters

    comp = simnet.compile_scenario(SCENARIOS / "none.yaml")
    res = simnet.run(SCENARIOS / "none.yaml")
    zero = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0, "rx_dropped": 0, "tx_dropped": 0}
    after = dict(zero, rx_packets=2000, tx_packets=2000, rx_bytes=184000, tx_bytes=184000, multicast=0)
    snmp = parse_proc_table(SNMP)
    ns_results = {"sealed": {"arp": {}, "baseline": {"dev": {"lo": zero}, "snmp": snmp, "netstat": {}},
                             "final": {"dev": {"lo": after}, "snmp": snmp, "netstat": {"IpExt": {"InNoRoutes": 0}}}}}
    counters, _raw, pre = kernel_counters(comp, ns_results, {})
    des = res.counters["sealed"]
    got = counters["sealed"]
    assert list(got) == list(des)
    assert list(got["dev"]["lo"]) == list(des["dev"]["lo"])
    for grp in ("Ip", "Icmp", "Udp", "IpExt"):
        assert list(got["snmp"][grp]) == list(des["snmp"][grp])
    assert got["snmp"]["Ip"]["Forwarding"] == 2 and got["snmp"]["Ip"]["InReceives"] == 0     # gauge vs delta
    assert got["arp"]["res_failed"] is None and pre == []


# -- comparison ---------------------------------------------------------------------------------------

def _loaded(counters, flows=(), machine_arp=None):
    return {"counters.json": counters, "flows": list(flows), "notes": [], "machine_arp": machine_arp}


def test_exact_fields():
    assert is_exact("a/dev/eth0/rx_bytes") and is_exact("a/snmp/Ip/FragCreates") and is_exact("a/arp/requests_sent")
    assert is_exact("flow/rr/packets_delivered") and not is_exact("flow/rr/latency_p50_s")
    assert not is_exact("a/arp/res_failed") and not is_exact("machine/arp/res_failed")
    assert is_exact("h/qdisc/eth0/sent_pkts") and not is_exact("h/qdisc/eth0/backlog")


def test_compare_flags_differences_and_icmp_randomness():
    def ns(lo_rx, limited, icmp_out):
        return {"a": {"dev": {"lo": {"rx_packets": lo_rx}, "eth0": {"rx_packets": 5}},
                      "snmp": {"Ip": {"InReceives": lo_rx, "FragCreates": 0},
                               "Icmp": {"OutRateLimitGlobal": limited, "OutDestUnreachs": icmp_out}},
                      "arp": {"requests_sent": 3, "res_failed": 2}}}
    rows = compare_results(_loaded(ns(50, 0, 50)), _loaded(ns(50, 0, 50), machine_arp={"res_failed": 2}))
    assert not [r for r in rows if r.differs]
    assert any(r.key == "machine/arp/res_failed" and (r.a, r.b) == (2, 2) for r in rows)
    rows = compare_results(_loaded(ns(50, 200, 50)), _loaded(ns(52, 198, 52)))
    assert not [r for r in rows if r.differs]
    assert {r.key for r in rows if r.note == ICMP_RANDOM} >= {"a/dev/lo/rx_packets", "a/snmp/Ip/InReceives",
                                                              "a/snmp/Icmp/OutDestUnreachs"}
    rows = compare_results(_loaded(ns(50, 0, 50)), _loaded(ns(52, 0, 52)))
    assert {r.key for r in rows if r.differs} == {"a/dev/lo/rx_packets", "a/snmp/Ip/InReceives",
                                                  "a/snmp/Icmp/OutDestUnreachs"}
    assert "a/dev/lo/rx_packets,50,52,2," in rows_csv(rows)


# -- cost profiles ------------------------------------------------------------------------------------

def test_cost_profile_round_trips_and_refuses_nonsense():
    d = DEFAULT_COSTS.to_dict()
    p = CostProfile.from_dict(json.loads(json.dumps(d)), base=DEFAULT_COSTS)
    assert p.stages == DEFAULT_COSTS.stages
    d["stages"] = {"veth_xmit": {"per_packet_us": 2.0}}
    p = CostProfile.from_dict(d, base=DEFAULT_COSTS)
    assert p.cost_s("veth_xmit") == pytest.approx(2e-6) and p.stages["bridge"] == DEFAULT_COSTS.stages["bridge"]
    for bad, msg in (({"stages": {"vethxmit": {"per_packet_us": 1}}}, "unknown stage"),
                     ({"stages": {"bridge": {"per_packet_us": -1}}}, "non-negative"),
                     ({"stages": {"bridge": {}}}, "needs a number"), ([], "an object")):
        with pytest.raises(ValueError, match=msg):
            CostProfile.from_dict(bad, base=DEFAULT_COSTS)


# -- the command line ----------------------------------------------------------------------------------

def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_dry_run_prints_the_plan_and_creates_nothing():
    r = cli("run", "quickstart", "--engine", "netns", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("#!/usr/bin/env bash") and "ip netns add sn00000-client" in r.stdout
    assert cli("run", "quickstart", "--dry-run").returncode == 2
    r = cli("run", "quickstart", "--engine", "bogus")
    assert r.returncode == 2 and "--engine" in r.stderr


def test_cost_profile_option(tmp_path):
    prof = tmp_path / "p.json"
    d = DEFAULT_COSTS.to_dict()
    d["stages"]["veth_xmit"]["per_packet_us"] = 5.0
    prof.write_text(json.dumps(d))
    r = cli("run", "quickstart", "-o", str(tmp_path / "o"), "--no-plots", "-q", "--cost-profile", str(prof))
    assert r.returncode == 0, r.stderr
    slow = json.loads((tmp_path / "o" / "summary.json").read_text())["flows"][0]["latency_p50_s"]
    r = cli("run", "quickstart", "-o", str(tmp_path / "d"), "--no-plots", "-q")
    base = json.loads((tmp_path / "d" / "summary.json").read_text())["flows"][0]["latency_p50_s"]
    # a round trip crosses four veth_xmit stages: 4 × (5.0 - 0.75) µs more
    assert slow - base == pytest.approx(4 * 4.25e-6, rel=1e-6)
    (tmp_path / "bad.json").write_text('{"stages": {"nope": {"per_packet_us": 1}}}')
    r = cli("run", "quickstart", "-o", str(tmp_path / "x"), "--cost-profile", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "unknown stage 'nope'" in r.stderr


def test_compare_refuses_what_is_not_a_result_directory(tmp_path):
    r = cli("compare", str(tmp_path), str(tmp_path))
    assert r.returncode == 2 and "summary.json: not found" in r.stderr


def test_calibration_fit_recovers_the_path_totals_it_was_given():
    """Measurements made up from a known profile (veth 40 % dearer, copies twice as dear, VXLAN 50 %
    and NAT twice as dear): the fitted profile reproduces every path's per-datagram cost on both CPUs."""
    from simnet.engines.netns.calibrate import PATHS, _fit, path_cost_us, path_scenario, stage_loads
    from simnet.models.linux.cpu import Stage

    st = dict(DEFAULT_COSTS.stages)
    st["veth_xmit"] = Stage(st["veth_xmit"].per_packet_s * 1.4, 0.0, "")
    st["syscall"] = Stage(st["syscall"].per_packet_s, st["syscall"].per_byte_s * 2, "")
    st["vxlan_xmit"] = Stage(st["vxlan_xmit"].per_packet_s * 1.5, 0.0, "")
    st["nf_nat"] = Stage(st["nf_nat"].per_packet_s * 2, 0.0, "")
    truth = CostProfile("truth", st)
    points = []
    for path in PATHS:
        for size in (64, 1472):
            loads = stage_loads(path_scenario(path, size, count=20))
            points.append({"path": path, "payload": size, "loads": loads,
                           "us_per_packet": path_cost_us(loads, truth),
                           "recv_us_per_packet": path_cost_us(loads, truth, "recv")})
    fitted = _fit(points, DEFAULT_COSTS)
    for p in points:
        assert path_cost_us(p["loads"], fitted) == pytest.approx(p["us_per_packet"], rel=0.03), p["path"]
        assert path_cost_us(p["loads"], fitted, "recv") == pytest.approx(p["recv_us_per_packet"], rel=0.03)
    assert fitted.stages["napi_rx"] == DEFAULT_COSTS.stages["napi_rx"]      # no path exercises it
    assert {"vxlan", "macvlan", "nat"} <= set(PATHS)
