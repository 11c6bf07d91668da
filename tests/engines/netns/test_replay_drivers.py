"""Docker's other drivers on the real kernel (root, iproute2, ethtool, iptables; skipped with the reason
otherwise): overlay (vxlan), macvlan (with an external switch), published ports (nat rules,
conntrack, docker-proxy) replayed with ``simnet run --engine des,netns`` — exit 0, every exact
counter equal — plus what the kernel's own numbers say independently of the model (50 bytes of
VXLAN per datagram on the underlay, each conntrack entry's packets, the switch's hairpin), ipvlan
refused with exit 3 (not built into this kernel), and the dry-run scripts building what the plan
expects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

import simnet
from simnet.engines.netns.apply import ip_json, netns_list
from simnet.engines.netns.engine import plan_for
from simnet.results.compare import NO_UC_FILTER, RCVBUF_TIMING, TCP_ACKS, TCP_ENCAP, TCP_PROXY_READS

from conftest import SCENARIOS
from netnscheck import cli, dry_run_prefix, interrupt_runs, ours, replay_and_compare  # noqa: F401 (dry_run_prefix: a fixture)

NEEDS = ("ip", "ethtool", "iptables", "bridge")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or any(shutil.which(t) is None for t in NEEDS),
                                reason="the netns engine's driver replays need root, iproute2, ethtool and iptables "
                                       "(CI runs as root and installs them)")


def replay(path, tmp_path):
    """``replay_and_compare``, and nothing left behind."""
    before = ours()
    out, rows = replay_and_compare(path, tmp_path)
    assert ours() == before                                   # nothing left behind
    return out, rows


def real(rows, key) -> int:
    return int(rows[key]["b"])


def test_overlay_two_hosts(tmp_path):
    out, rows = replay(SCENARIOS / "overlay-two-hosts.yaml", tmp_path)
    # the kernel's own numbers: web sends 7000 datagrams; each leaves host1 at least 50 bytes longer (outer
    # Ethernet, IP, UDP, VXLAN), and the TCP flows' segments ride the same tunnel; one ARP frame for the
    # underlay (web's is answered by vxlan0's proxy)
    assert real(rows, "web/snmp/Udp/OutDatagrams") == 7000
    assert real(rows, "host1/dev/eth0/tx_bytes") - real(rows, "web/dev/eth0/tx_bytes") >= 50 * 7000
    assert real(rows, "1-appnet@host1/dev/vxlan0/tx_packets") >= 7000
    assert real(rows, "host2/snmp/Udp/InDatagrams") >= 7000          # the encapsulation socket counts them all
    assert real(rows, "host2/arp/requests_received") == 1           # the containers' ARP never crosses
    # the underlay carries TCP inside VXLAN: its NICs, Ip and the tunnel socket's Udp counts are shown with
    # that reason; what the TCP flows do not touch stays exact
    for key in ("host1/dev/eth0/tx_packets", "host2/dev/eth0/rx_bytes", "host2/snmp/Udp/InDatagrams",
                "host1/snmp/Ip/OutRequests"):
        assert rows[key]["exact"] == "0" and rows[key]["note"] == TCP_ENCAP, key
    for key in ("web/snmp/Udp/OutDatagrams", "host2/snmp/Udp/NoPorts", "host2/arp/requests_received",
                "host1/dev/lo/tx_packets"):
        assert rows[key]["exact"] == "1", key
    # a receiver slower than its sender is timing, not a count: approximate, with the reason
    approx = [x for x in rows.values() if x["note"]]
    assert all(x["note"] != RCVBUF_TIMING or x["counter"].startswith(("db/snmp/Udp/", "flow/")) for x in approx)
    assert all(x["counter"].startswith(("host1/", "host2/")) for x in approx if x["note"] == TCP_ENCAP)
    info = json.loads((out / "netns" / "netns.json").read_text())
    assert info["flow_netns"] == {"rr": ["db", "web"], "bulk": ["db"], "tcp_rr": ["db"], "tcp_bulk": ["db"]}
    assert info["tcp"]["encap"]["devices"] == {"host1": ["eth0"], "host2": ["eth0"]}


def test_overlay_mtu(tmp_path):
    _out, rows = replay(SCENARIOS / "overlay-mtu.yaml", tmp_path)
    # 1423 bytes in a 1450 MTU: two inner fragments each; 1472 with DF over big: vxlan0 answers ICMP
    # "fragmentation needed" once, then the sender fragments; 4000 without DF: the outer packets fragment
    assert real(rows, "a/snmp/Ip/FragCreates") > 0 and real(rows, "b/snmp/Ip/ReasmOKs") > 0
    assert real(rows, "a/snmp/IcmpMsg/InType3") >= 1
    assert real(rows, "host1/snmp/Ip/FragCreates") > 0 and real(rows, "host2/snmp/Ip/ReasmOKs") > 0


def test_macvlan_bridge(tmp_path):
    _out, rows = replay(SCENARIOS / "macvlan-bridge.yaml", tmp_path)
    # a and b talk inside host1: their 2000 datagrams never reach the cable (host2's eth0 sees a_c and
    # host2_a traffic only); host1 cannot reach a (ARP fails), host2 can
    assert real(rows, "flow/a_b/packets_delivered") == 1000 and real(rows, "flow/host2_a/packets_delivered") == 100
    assert real(rows, "flow/host1_a/packets_delivered") == 0
    assert real(rows, "host2/dev/eth0/rx_packets") < 2 * 1000 + 2 * 100 + 10
    # the parent's unicast list holds the two children's MACs; the veth is promiscuous for them,
    # where a NIC with a filter is not: approximate, with the reason
    assert real(rows, "host1/nic/eth0/uc_addresses") == 2 and rows["host1/nic/eth0/uc_addresses"]["exact"] == "1"
    assert rows["host1/nic/eth0/promiscuity"]["b"] == "1" and rows["host1/nic/eth0/promiscuity"]["note"] == NO_UC_FILTER
    # the kernel's count of a sibling's broadcast: 14 bytes more (the model now says so too)
    assert real(rows, "b/dev/eth0/rx_bytes") == 1000 * 106 + 2 * 56 + 42


def test_macvlan_modes_through_a_hairpin_switch(tmp_path):
    out, rows = replay(SCENARIOS / "macvlan-modes.yaml", tmp_path)
    # vepa: every frame between v1 and v2 crosses hv's switch port twice (in, and hairpinned back out)
    v = real(rows, "flow/vepa/packets_delivered")
    assert v == 500
    assert real(rows, "lan/dev/p2/rx_packets") >= 2 * 500 and real(rows, "lan/dev/p2/tx_packets") >= 2 * 500
    # bridge mode never touches the wire beyond the broadcast; private mode gets nothing through
    assert real(rows, "lan/dev/p1/rx_packets") == 1
    assert real(rows, "flow/private/packets_delivered") == 0
    assert real(rows, "p1/dev/eth0/rx_bytes") == 2 * 42        # its own returned broadcasts count 0 bytes
    counters = json.loads((out / "netns" / "counters.json").read_text())
    assert counters["lan"]["switch"] is True and set(counters["lan"]["fdb"].values()) <= {"p1", "p2", "p3"}


def test_published_ports_nat_conntrack_and_docker_proxy(tmp_path):
    out, rows = replay(SCENARIOS / "publish-port.yaml", tmp_path)
    # DNAT met once per connection; conntrack: one entry per flow, each direction's packets counted
    assert real(rows, "host1/netfilter/nat_hits/DNAT udp dpt:8080 to:172.17.0.2:80") == 1
    assert real(rows, "host3/netfilter/nat_hits/MASQUERADE src-type LOCAL docker0") == 2      # udp and tcp
    assert real(rows, "host1/netfilter/conntrack/entries") == 6 and real(rows, "host3/netfilter/conntrack/entries") == 4
    assert real(rows, "host1/netfilter/entries/udp 10.0.0.1 > 10.0.0.2:8080/packets_reply") == 1000
    # the host's own datagrams through lo are tracked once, not again in PREROUTING
    assert real(rows, "host1/netfilter/entries/udp 127.0.0.1 > 127.0.0.1:8081/packets_orig") == 1000
    # docker-proxy: two sockets, every message relayed both ways
    assert real(rows, "host1/docker_proxy/8081-udp/sessions") == 1
    assert real(rows, "host1/docker_proxy/8081-udp/backend_socket/tx_bytes") == 64 * 1000
    assert real(rows, "host1/docker_proxy/8081-udp/frontend/tx_bytes") == 512 * 1000
    assert rows["host1/docker_proxy/8081-udp/frontend/rx_msgs"]["exact"] == "1"
    # the web container sees the client's address (DNAT only), host2's NIC never the container's
    assert real(rows, "flow/remote/packets_delivered") == 1000
    # the TCP docker-proxy: two connections (the client's to 127.0.0.1:8091, the proxy's to web:91), so
    # host1 opens two (the client's connect and the proxy's) and accepts one; every byte relayed both ways
    assert real(rows, "host1/snmp/Tcp/ActiveOpens") == 2 and real(rows, "host1/snmp/Tcp/PassiveOpens") == 1
    assert real(rows, "host1/docker_proxy/8091-tcp/sessions") == 1
    assert real(rows, "host1/docker_proxy/8091-tcp/backend_socket/tx_bytes") == 64 * 1000
    assert real(rows, "host1/docker_proxy/8091-tcp/frontend/tx_bytes") == 512 * 1000
    conn = "host1/docker_proxy/8091-tcp/connections/0"
    assert real(rows, f"{conn}/backend/tcpi_bytes_received") == 512 * 1000 + 1        # and the FIN
    assert real(rows, f"{conn}/frontend/tcpi_bytes_received") == 64 * 1000 + 1
    assert rows[f"{conn}/backend/tcpi_bytes_acked"]["exact"] == "1"
    assert rows["host1/docker_proxy/8091-tcp/frontend/rx_msgs"]["note"] == TCP_PROXY_READS
    assert real(rows, "flow/local_tcp_proxy/packets_delivered") == 1000
    # a TCP connection's conntrack entry counts its ACKs too: shown, not held exact
    assert rows["host3/netfilter/entries/tcp 127.0.0.1 > 127.0.0.1:8091/packets_orig"]["note"] == TCP_ACKS


def test_drivers_compared_without_ipvlan(tmp_path):
    d = yaml.safe_load((SCENARIOS / "drivers-compared.yaml").read_text())
    del d["networks"]["iv"], d["containers"]["i1"], d["containers"]["i2"]
    d["workloads"] = [w for w in d["workloads"] if not w["name"].startswith("ipvlan")]
    p = tmp_path / "drivers-compared-no-ipvlan.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    _out, rows = replay(p, tmp_path)
    for drv in ("host", "bridge", "overlay", "macvlan"):
        assert real(rows, f"flow/{drv}_rr/packets_delivered") == 500
    assert real(rows, "host2/netfilter/nat_hits/DNAT udp dpt:9100 to:172.17.0.2:9100") == 1
    assert real(rows, "host1/netfilter/nat_hits/MASQUERADE 172.17.0.0/16 !docker0") == 4     # 2 udp, 2 tcp
    # the overlay's TCP flows cross host1's and host2's NICs inside VXLAN: the outer flows' conntrack
    # entries count their segments and ACKs
    key = "host1/netfilter/entries/udp 10.0.0.1 > 10.0.0.2:4789/packets_orig"
    assert rows[key]["exact"] == "0" and rows[key]["note"] == TCP_ENCAP


@pytest.mark.parametrize("name", ["ipvlan-l2", "ipvlan-l3", "drivers-compared"])
def test_ipvlan_is_refused_with_exit_3(name, tmp_path):
    before = ours()
    r = cli("run", name, "--engine", "netns", "-o", str(tmp_path / "o"), "--no-plots")
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create ipvlan devices (CONFIG_IPVLAN is not set)" in lines[0]
    assert ours() == before and not (tmp_path / "o").exists()


def test_without_iptables_a_published_port_is_refused(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("ip", "tc", "bridge", "ethtool", "sysctl"):
        (bin_ / tool).symlink_to(shutil.which(tool))
    r = cli("run", "publish-port", "--engine", "netns", "-o", str(tmp_path / "o"),
            env={**os.environ, "PATH": str(bin_)})
    assert r.returncode == 3 and "`iptables` (Debian/Ubuntu package iptables)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["overlay-two-hosts", "macvlan-modes", "publish-port"])
def test_dry_run_script_builds_vxlan_macvlan_switch_and_rules(name, dry_run_prefix):
    r = cli("run", name, "--engine", "netns", "--dry-run")
    assert r.returncode == 0, r.stderr
    comp = simnet.compile_scenario(SCENARIOS / f"{name}.yaml")
    plan = plan_for(comp)
    assert all(k.startswith(f"{dry_run_prefix}-") for k in plan.netns.values())
    assert set(plan.netns.values()).isdisjoint(netns_list()), "a previous run left the dry-run prefix behind"
    try:
        b = subprocess.run(["bash"], input=r.stdout, capture_output=True, text=True, timeout=120)
        assert b.returncode == 0, b.stderr
        for ns, devs in plan.devices.items():
            kns = plan.netns[ns]
            links = {e["ifname"]: e for e in ip_json("-n", kns, "-details", "link", "show")}
            assert set(links) >= set(devs)
            for ifname, d in devs.items():
                e = links[ifname]
                info = e.get("linkinfo", {})
                kind = {"nic": "veth", "loopback": None}.get(d["kind"], d["kind"])
                assert info.get("info_kind") == kind, ifname
                assert e["mtu"] == d["mtu"] and e.get("master") == d["master"], ifname
                if d["kind"] == "vxlan":
                    data = info["info_data"]
                    node = comp.graph.nodes[f"{ns}:{ifname}"]
                    assert data["id"] == node["vni"] and data["port"] == 4789 and data["proxy"] is True
                    assert "link_netnsid" in e                            # the socket stays in the host's namespace
                    fdb = {(x["mac"], x.get("dst")) for x in json.loads(subprocess.run(
                        ["bridge", "-n", kns, "-json", "fdb", "show", "dev", ifname], capture_output=True,
                        text=True).stdout) if "self" in x.get("flags", [])}
                    assert set(node["fdb"].items()) <= fdb
                if d["kind"] == "macvlan":
                    assert info["info_data"]["mode"] == d["mode"] and e["address"] == d["mac"]
                if d.get("hairpin"):
                    assert info["info_slave_data"]["hairpin"] is True
        for ns in plan.rules:
            saved = subprocess.run(["ip", "netns", "exec", plan.netns[ns], "iptables-save", "-t", "nat"],
                                   capture_output=True, text=True).stdout
            assert all(f'--comment "{name}"' in saved for name in plan.rules[ns])
    finally:
        for kns in reversed(list(plan.netns.values())):
            subprocess.run(["ip", "netns", "del", kns], capture_output=True)


def test_interrupted_driver_replays_leave_nothing(tmp_path):
    """12 replays of the driver scenarios (vxlan with its socket in another namespace, macvlan children
    of another namespace's NIC, a switch namespace, iptables rules, docker-proxy agents) stopped at
    random moments by SIGINT or SIGTERM: no namespace, no device with the prefix."""
    names = [("overlay-two-hosts", "macvlan-modes", "publish-port")[i % 3] for i in range(12)]
    codes = interrupt_runs(names, tmp_path, seed=11, sleep_s=(0.6, 2.5), timeout_s=60)
    assert codes.count(130) >= 6
