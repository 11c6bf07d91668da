"""The netns engine's parts for Docker's other drivers, without root: vxlan, macvlan, ipvlan and switch
operations, Docker's iptables rules, the docker-proxy agent's CPU, the preflight's refusals, the
conntrack/iptables/fdb parsers, the translation into counters.json and the comparison's rules."""

from __future__ import annotations


import pytest

import simnet
from simnet.engines.des.build import build_network, install_workloads
from simnet.engines.netns import preflight
from simnet.engines.netns import workloads as wl
from simnet.engines.netns.counters import parse_ct_table, read_ct_stat
from simnet.engines.netns.engine import nic_filters
from simnet.engines.netns.plan import (FdbAdd, Iptables, KernelFeatures, LinkAdd, LinkSet, NeighAdd, SetMaster,
                                       Sysctl, TcQdisc, build_plan)
from simnet.engines.netns.preflight import Unavailable, check_host, check_plan
from simnet.engines.netns.state import parse_rule_counters, uc_addresses
from simnet.engines.netns.translate import kernel_counters
from simnet.kernel import SimContext
from simnet.models.linux.cpu import DEFAULT_COSTS
from simnet.results.compare import NO_UC_FILTER, RCVBUF_TIMING, compare_results, is_exact

from conftest import SCENARIOS, scenario

PREFIX = "sn0a1b2"


def plan_of(name, features=None):
    comp = simnet.compile_scenario(SCENARIOS / f"{name}.yaml")
    return comp, build_plan(comp.graph, PREFIX, features)


def ns(name):
    return f"{PREFIX}-{name}"


def test_vxlan_is_made_from_the_host_into_the_overlay_namespace_with_dockers_entries():
    comp, plan = plan_of("overlay-two-hosts")
    vx = next(o for o in plan.ops if isinstance(o, LinkAdd) and o.kind == "vxlan" and o.home == ns("1-appnet@host1"))
    d = comp.graph.nodes["1-appnet@host1:vxlan0"]
    assert vx.argv() == ["ip", "-n", ns("host1"), "link", "add", "vxlan0", "address", d["mac"], "mtu", "1450",
                         "netns", ns("1-appnet@host1"), "type", "vxlan", "id", "4096", "dstport", "4789",
                         "local", d["local"], "learning", "proxy", "l2miss", "l3miss"]
    (mac, vtep), = d["fdb"].items()
    (addr, nmac), = d["neigh"].items()
    fdb = [o for o in plan.ops if isinstance(o, FdbAdd) and o.ns == ns("1-appnet@host1")]
    neigh = [o for o in plan.ops if isinstance(o, NeighAdd) and o.ns == ns("1-appnet@host1")]
    assert [o.argv() for o in fdb] == [["bridge", "-n", ns("1-appnet@host1"), "fdb", "add", mac, "dev", "vxlan0",
                                        "dst", vtep, "self", "permanent"]]
    assert [o.argv() for o in neigh] == [["ip", "-n", ns("1-appnet@host1"), "neigh", "add", addr, "lladdr", nmac,
                                          "dev", "vxlan0", "nud", "permanent"]]
    assert {"vxlan", "bridge", "veth"} <= plan.needs_link_kinds and "bridge" in plan.needs_tools


def test_macvlan_children_hang_off_the_host_nic_and_land_in_the_container():
    comp, plan = plan_of("macvlan-bridge")
    a = next(o for o in plan.ops if isinstance(o, LinkAdd) and o.kind == "macvlan" and o.home == ns("a"))
    mac = comp.graph.nodes["a:eth0"]["mac"]
    assert a.argv() == ["ip", "-n", ns("host1"), "link", "add", "link", "eth0", "name", "eth0", "address", mac,
                        "mtu", "1500", "netns", ns("a"), "type", "macvlan", "mode", "bridge"]
    assert plan.devices["a"]["eth0"]["lower"] == "eth0" and plan.devices["a"]["eth0"]["mode"] == "bridge"
    # what the namespace agent needs to count as a NIC with a unicast filter would
    f = nic_filters(comp, "host1")["eth0"]
    assert f["uc"] == sorted([comp.graph.nodes["a:eth0"]["mac"], comp.graph.nodes["b:eth0"]["mac"]])
    assert f["internal"] == f["uc"] and f["consumed"] == [] and f["filter"] is True
    assert nic_filters(comp, "host2")["eth0"]["internal"] == [comp.graph.nodes["c:eth0"]["mac"]]


def test_ipvlan_plans_but_a_kernel_without_it_is_unavailable():
    _comp, plan = plan_of("ipvlan-l3")
    iv = [o for o in plan.ops if isinstance(o, LinkAdd) and o.kind == "ipvlan"]
    assert len(iv) == 3 and all(o.mac is None and o.type_args == ("mode", "l3") for o in iv)   # the parent's MAC
    with pytest.raises(Unavailable, match=r"cannot create ipvlan devices \(CONFIG_IPVLAN is not set\), which the "
                                          r"scenario needs \(a:eth0, b:eth0, c:eth0\)"):
        check_plan(plan, KernelFeatures(link_kinds=frozenset({"veth", "bridge", "macvlan", "vxlan"})))
    check_plan(plan, KernelFeatures(link_kinds=frozenset({"veth", "bridge", "ipvlan"})))


def test_a_switch_is_a_bridge_in_its_own_namespace_with_hairpin_ports():
    comp, plan = plan_of("macvlan-modes")
    lan = comp.graph.nodes["lan"]
    br = next(o for o in plan.ops if isinstance(o, LinkAdd) and o.ns == ns("lan") and o.kind == "bridge")
    assert br.type_args == ("mcast_snooping", "0", "stp_state", "0", "ageing_time", str(int(lan["ageing_s"] * 100)))
    ports = plan.switches["lan"]["ports"]
    assert ports == {"p1": ("hb", "eth0"), "p2": ("hv", "eth0"), "p3": ("hp", "eth0")}      # the model's order
    for p, (h, nic) in ports.items():
        veth = next(o for o in plan.ops if isinstance(o, LinkAdd) and o.ns == ns(h) and o.ifname == nic)
        assert (veth.peer_ns, veth.peer_ifname) == (ns("lan"), p)
        assert any(isinstance(o, SetMaster) and (o.ns, o.ifname, o.master) == (ns("lan"), p, "sw") for o in plan.ops)
        assert any(isinstance(o, LinkSet) and o.args == ("type", "bridge_slave", "hairpin", "on") and o.ifname == p
                   for o in plan.ops)
        q = [o.args for o in plan.ops if isinstance(o, TcQdisc) and o.ns == ns("lan") and o.ifname == p]
        assert any("pfifo" in a and str(lan["queue_pkts"]) in a for a in q)
    no_hairpin = comp.graph.copy()
    no_hairpin.nodes["lan"]["hairpin"] = False
    assert not any(isinstance(o, LinkSet) for o in build_plan(no_hairpin, PREFIX).ops)


def test_published_ports_become_dockers_nat_rules():
    _comp, plan = plan_of("publish-port")
    rules = {n: [o.args for o in plan.ops if isinstance(o, Iptables) and o.ns == ns(n)] for n in ("host1", "host3")}
    h1, h3 = rules["host1"], rules["host3"]
    assert ("-t", "nat", "-A", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j",
            "DOCKER") in h1
    assert ("-t", "nat", "-A", "DOCKER", "!", "-i", "docker0", "-p", "udp", "-m", "udp", "--dport", "8080", "-m",
            "comment", "--comment", "DNAT udp dpt:8080 to:172.17.0.2:80", "-j", "DNAT", "--to-destination",
            "172.17.0.2:80") in h1
    assert ("-t", "nat", "-A", "DOCKER", "-i", "docker0", "-j", "RETURN") in h1
    # without the userland proxy: 127.0.0.0/8 is DNATed too (hairpin), the loopback source masqueraded
    assert ("-t", "nat", "-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER") in h3
    assert ("-t", "nat", "-A", "POSTROUTING", "-o", "docker0", "-m", "addrtype", "--src-type", "LOCAL", "-m",
            "comment", "--comment", "MASQUERADE src-type LOCAL docker0", "-j", "MASQUERADE") in h3
    assert not any("!" in a and "-i" in a for a in h3 if "DNAT" in a)
    sysctls = {k: v for o in plan.ops if isinstance(o, Sysctl) and o.ns == ns("host3") for k, v in o.values}
    assert sysctls["net.ipv4.conf.docker0.route_localnet"] == "1" and sysctls["net.netfilter.nf_conntrack_acct"] == "1"
    assert not rules.get("host2") and "iptables" in plan.needs_tools
    # a published TCP port as moby renders it (iptablesdoc usernet-portmap: "DNAT tcp -- !docker0 * ... tcp
    # dpt:8080 to:172.17.0.2:80"; iptables-save: -p tcp -m tcp --dport)
    assert ("-t", "nat", "-A", "DOCKER", "!", "-i", "docker0", "-p", "tcp", "-m", "tcp", "--dport", "8090", "-m",
            "comment", "--comment", "DNAT tcp dpt:8090 to:172.17.0.2:90", "-j", "DNAT", "--to-destination",
            "172.17.0.2:90") in h1
    assert set(plan.rules["host1"]) == {"DNAT udp dpt:8080 to:172.17.0.2:80", "DNAT udp dpt:8081 to:172.17.0.2:81",
                                        "DNAT tcp dpt:8090 to:172.17.0.2:90", "DNAT tcp dpt:8091 to:172.17.0.2:91",
                                        "MASQUERADE 172.17.0.0/16 !docker0"}


def test_isolation_rules_only_between_two_bridges_or_more():
    comp = simnet.compile_scenario(scenario("""
        name: iso
        networks: {front: {driver: bridge}, back: {driver: bridge}}
        containers: {a: {networks: [front]}, b: {networks: [back]}}
    """))
    plan = build_plan(comp.graph, PREFIX)
    args = [o.args for o in plan.ops if isinstance(o, Iptables)]
    assert ("-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1") in args
    drops = {a[3] for a in args if a[:2] == ("-A", "DOCKER-ISOLATION-STAGE-2") and a[-1] == "DROP"}
    assert drops == set(comp.graph.nodes["host"]["isolation"]) and len(drops) == 3      # docker0 is always there
    _c, plan = plan_of("quickstart")
    assert not any(isinstance(o, Iptables) for o in plan.ops) and "iptables" not in plan.needs_tools


def test_docker_proxy_agents_take_the_cpus_the_model_gives_them():
    comp = simnet.compile_scenario(SCENARIOS / "publish-port.yaml")
    net = build_network(comp, SimContext(comp.scenario.seed), DEFAULT_COSTS)
    install_workloads(comp, net, lambda _a: None)
    first = {h: i for i, h in enumerate(comp.hosts)}                  # 2 CPUs per host, laid in turn

    def machine_cpu(cpu):
        host, _, k = cpu.name.partition("/cpu")
        return 2 * first[host] + int(k)

    proxies = wl.proxy_configs(comp, 0.0)
    assert [(n, c["host_port"], c["cpu"]) for n, _r, c in proxies] == [
        ("host1", p.host_port, machine_cpu(p.cpu)) for p in net.netns["host1"].proxies]
    pairs = wl.agent_configs(comp, 0.0)
    model = [machine_cpu(a.cpu) for a in net.apps]                   # server then client, per workload
    replay = [c for p in pairs for c in ([p.server["cpu"]] if p.server else []) + [p.client["cpu"]]]
    assert replay == model
    # the model takes a TCP client's CPU before its server's: host1's proxies take 4, then the CPUs go round
    tcp_local = next(p for p in pairs if p.name == "local_tcp_proxy")          # both ends on host1
    assert (tcp_local.client["cpu"], tcp_local.server["cpu"]) == (0, 1)


def test_preflight_names_iptables_and_a_kernel_that_cannot_nat(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight.shutil, "which", lambda t: None if t == "iptables" else "/bin/true")
    monkeypatch.setattr(preflight, "run", lambda *a, **k: None)
    with pytest.raises(Unavailable, match=r"needs `iptables` \(Debian/Ubuntu package iptables\)"):
        check_host({"ip", "tc", "iptables"})
    _c, plan = plan_of("publish-port")
    with pytest.raises(Unavailable, match="iptables cannot program a nat table"):
        check_plan(plan, KernelFeatures(iptables_error="can't initialize iptables table `nat'"))
    check_plan(plan, KernelFeatures(iptables_error=""))


# -- what the kernel shows ---------------------------------------------------------------------------

def test_conntrack_statistics_sum_cpus_but_not_entries(tmp_path):
    p = tmp_path / "nf_conntrack"
    p.write_text("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop\n"
                 "00000003  00000000 00000001 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000\n"
                 "00000003  00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n")
    st = read_ct_stat(p)
    assert st["entries"] == 3 and st["found"] == 2 and st["invalid"] == 2 and st["insert"] == 0
    assert read_ct_stat(tmp_path / "missing") == {}


def test_conntrack_table_and_rule_counters_parse():
    t = parse_ct_table("ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=41000 dport=8080 packets=5 bytes=460 "
                       "src=172.17.0.2 dst=10.0.0.1 sport=80 dport=41000 packets=4 bytes=368 [ASSURED] mark=0 use=1\n"
                       "ipv4     2 udp      17 20 src=127.0.0.1 dst=127.0.0.1 sport=5 dport=6 packets=1 bytes=92 "
                       "[UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=6 dport=5 packets=0 bytes=0 mark=0 use=1\n")
    assert t[0]["orig"] == {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": "41000", "dport": "8080", "packets": "5",
                            "bytes": "460"}
    assert t[0]["reply"]["src"] == "172.17.0.2" and t[0]["flags"] == ["ASSURED"] and t[1]["flags"] == ["UNREPLIED"]
    saved = ('*nat\n:PREROUTING ACCEPT [0:0]\n[7:644] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n'
             '[1:92] -A DOCKER ! -i docker0 -p udp -m udp --dport 8080 -m comment --comment '
             '"DNAT udp dpt:8080 to:172.17.0.2:80" -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n')
    assert parse_rule_counters(saved) == {"DNAT udp dpt:8080 to:172.17.0.2:80": 1}
    fdb = [{"mac": "02:aa:00:00:00:01", "flags": ["self"], "state": "permanent"},
           {"mac": "01:00:5e:00:00:01", "flags": ["self"], "state": "permanent"},
           {"mac": "02:aa:00:00:00:02", "flags": ["self"], "state": "permanent"}]
    assert uc_addresses(fdb) == ["02:aa:00:00:00:01", "02:aa:00:00:00:02"]


def _ns_result(devs, **extra):
    zero = {"dev": {d: {k: 0 for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped",
                                        "tx_dropped")} for d in devs}, "snmp": {}, "netstat": {}}
    final = {"dev": {d: dict(v) for d, v in zero["dev"].items()}, "snmp": {}, "netstat": {}}
    return {"baseline": zero, "final": final, "arp": {}, **extra}


def test_translation_of_nic_filter_netfilter_proxy_and_switch():
    comp, plan = plan_of("macvlan-modes")
    res = {n: _ns_result([comp.graph.nodes[x]["ifname"] for x in comp.devices(n)])
           for n, d in comp.graph.nodes(data=True) if d["kind"] == "netns"}
    res["hb"]["final"]["dev"]["eth0"].update(rx_packets=10, rx_bytes=1000)
    res["hb"]["filtered"] = {"eth0": {"frames": 2, "bytes": 120}}
    res["lan"] = _ns_result(["sw", "p1", "p2", "p3"])
    res["lan"]["final"]["dev"]["p2"]["rx_packets"] = 7
    extra = {"nic": {"hb": {"eth0": {"promiscuity": 1, "uc": ["02:00:00:00:00:01", "02:00:00:00:00:02"]}}},
             "switch_fdb": {"lan": {"02aa": "p2"}}}
    counters, _raw, _pre = kernel_counters(comp, res, {}, extra, plan)
    assert counters["hb"]["dev"]["eth0"]["rx_packets"] == 8 and counters["hb"]["dev"]["eth0"]["rx_bytes"] == 880
    assert counters["hb"]["nic"]["eth0"] == {"promisc": True, "promiscuity": 1, "uc_promisc": True,
                                             "uc_addresses": 2, "uc_filter_slots": 0, "mac_filter_drops": 2}
    assert counters["lan"]["switch"] is True and counters["lan"]["dev"]["p2"]["rx_packets"] == 7
    assert set(counters["lan"]["dev"]) == {"p1", "p2", "p3"} and counters["lan"]["fdb"] == {"02aa": "p2"}

    comp, plan = plan_of("publish-port")
    res = {n: _ns_result([comp.graph.nodes[x]["ifname"] for x in comp.devices(n)])
           for n, d in comp.graph.nodes(data=True) if d["kind"] == "netns"}
    res["host1"]["baseline"]["conntrack"] = {"entries": 0, "found": 0, "insert": 0, "invalid": 0}
    res["host1"]["final"]["conntrack"] = {"entries": 1, "found": 0, "insert": 0, "invalid": 1}
    res["host1"]["conntrack_table"] = parse_ct_table(
        "ipv4 2 udp 17 29 src=10.0.0.1 dst=10.0.0.2 sport=41000 dport=8080 packets=5 bytes=460 "
        "src=172.17.0.2 dst=10.0.0.1 sport=80 dport=41000 packets=4 bytes=368 [ASSURED] mark=0 use=1")
    proxy = {"proto": "udp", "host_port": 8081, "backend": "172.17.0.2:81/udp", "sessions": 1,
             "frontend": {"rx_msgs": 1, "rx_bytes": 64, "tx_msgs": 1, "tx_bytes": 512},
             "backend_socket": {"rx_msgs": 1, "rx_bytes": 512, "tx_msgs": 1, "tx_bytes": 64}}
    extra = {"rules": {"host1": {"DNAT udp dpt:8080 to:172.17.0.2:80": 1}}, "proxies": {"host1": [proxy]}}
    counters, _raw, _pre = kernel_counters(comp, res, {}, extra, plan)
    nf = counters["host1"]["netfilter"]
    assert nf["conntrack"] == {"entries": 1, "found": 0, "insert": 0, "invalid": 1}
    assert nf["nat_hits"] == {"DNAT udp dpt:8080 to:172.17.0.2:80": 1}
    assert nf["entries"] == [{"orig": "udp 10.0.0.1:41000 > 10.0.0.2:8080", "reply": "udp 172.17.0.2:80 > "
                              "10.0.0.1:41000", "packets": [5, 4]}]
    assert counters["host1"]["docker_proxy"] == [proxy] and "netfilter" not in counters["host2"]


def _loaded(counters, flows=(), flow_netns=None):
    return {"counters.json": counters, "flows": list(flows), "notes": [], "machine_arp": None,
            "flow_netns": flow_netns or {}}


def test_compare_rows_for_the_other_drivers():
    nf = {"conntrack": {"entries": 2, "found": 0, "insert": 0, "invalid": 0},
          "nat_hits": {"DNAT udp dpt:8080 to:172.17.0.2:80": 1},
          "entries": [{"orig": "udp 10.0.0.1:40000 > 10.0.0.2:8080", "reply": "x", "packets": [3, 3]},
                      {"orig": "udp 10.0.0.1:40001 > 10.0.0.2:8080", "reply": "x", "packets": [1, 0]}]}
    proxy = [{"proto": "udp", "host_port": 8081, "backend": "b", "sessions": 1,
              "frontend": {"rx_msgs": 4}, "backend_socket": {"tx_msgs": 4}}]
    a = {"h": {"dev": {}, "netfilter": nf, "docker_proxy": proxy,
               "nic": {"eth0": {"promiscuity": 0, "uc_addresses": 2, "mac_filter_drops": 0, "uc_filter_slots": 64}}}}
    b_nf = {**nf, "entries": [{"orig": "udp 10.0.0.1:51515 > 10.0.0.2:8080", "reply": "y", "packets": [4, 3]}]}
    b = {"h": {"dev": {}, "netfilter": b_nf, "docker_proxy": proxy,
               "nic": {"eth0": {"promiscuity": 1, "uc_addresses": 2, "mac_filter_drops": 0, "uc_filter_slots": 0}}}}
    rows = {r.key: r for r in compare_results(_loaded(a), _loaded(b))}
    # entries keyed without the ephemeral source port, packets summed
    e = rows["h/netfilter/entries/udp 10.0.0.1 > 10.0.0.2:8080/packets_orig"]
    assert (e.a, e.b, e.exact, e.differs) == (4, 4, True, False)
    assert rows["h/netfilter/entries/udp 10.0.0.1 > 10.0.0.2:8080/packets_reply"].a == 3
    assert rows["h/netfilter/nat_hits/DNAT udp dpt:8080 to:172.17.0.2:80"].exact
    assert rows["h/docker_proxy/8081-udp/frontend/rx_msgs"].exact and "h/docker_proxy/8081-udp/host_port" not in rows
    p = rows["h/nic/eth0/promiscuity"]
    assert not p.exact and not p.differs and p.note == NO_UC_FILTER
    assert rows["h/nic/eth0/uc_addresses"].exact and not rows["h/nic/eth0/uc_filter_slots"].exact
    assert is_exact("h/netfilter/conntrack/entries") and not is_exact("h/netfilter/conntrack/new")


def test_a_receive_buffer_overflow_makes_what_it_feeds_approximate():
    def side(indgrams, rcvbuf, delivered):
        c = {"db": {"dev": {"eth0": {"rx_packets": 100}}, "snmp": {"Udp": {"InDatagrams": indgrams, "InErrors": rcvbuf,
                                                                         "RcvbufErrors": rcvbuf, "NoPorts": 0}}},
             "web": {"dev": {"eth0": {"rx_packets": 3}}, "snmp": {"Udp": {"RcvbufErrors": 0}}}}
        flows = [{"flow": "bulk", "packets_sent": "100", "packets_delivered": str(delivered)},
                 {"flow": "other", "packets_sent": "5", "packets_delivered": "5"}]
        return c, flows
    ca, fa = side(100, 0, 100)
    cb, fb = side(60, 40, 60)
    rows = {r.key: r for r in compare_results(_loaded(ca, fa), _loaded(cb, fb, {"bulk": ["db"], "other": ["web"]}))}
    for k in ("db/snmp/Udp/InDatagrams", "db/snmp/Udp/RcvbufErrors", "flow/bulk/packets_delivered"):
        assert not rows[k].exact and not rows[k].differs and rows[k].note == RCVBUF_TIMING
    assert rows["db/snmp/Udp/NoPorts"].exact and rows["db/dev/eth0/rx_packets"].exact
    assert rows["flow/other/packets_delivered"].exact and rows["flow/bulk/packets_sent"].exact
