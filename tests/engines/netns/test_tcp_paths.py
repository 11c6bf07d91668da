"""What ``simnet compare`` holds exact around TCP flows, without root: the underlay a TCP flow crosses
inside VXLAN (netns/encap.py), the rules applied to rows (results/compare.py), and the TCP docker-proxy
agent relaying a real connection on this machine's loopback (agents/tcp_proxy.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import simnet
from simnet.engines.netns.encap import encap_paths
from simnet.engines.netns.tcpflows import tcp_exactness
from simnet.results.compare import TCP_ACKS, TCP_ENCAP, Row, _tcp_rules, is_exact

from conftest import SCENARIOS


def test_the_underlay_of_a_tcp_flow_inside_vxlan():
    comp = simnet.compile_scenario(SCENARIOS / "overlay-two-hosts.yaml")
    enc = tcp_exactness(comp)["encap"]
    # host1's eth0 sends the outer packets to host2's address, host2's eth0 receives them; lo is not on it
    assert enc["devices"] == {"host1": ["eth0"], "host2": ["eth0"]}
    assert enc["udp_netns"] == ["host1", "host2"] and enc["netns"] == ["host1", "host2"]
    assert enc["conntrack"] == ["udp 10.0.0.1 > 10.0.0.2:4789", "udp 10.0.0.2 > 10.0.0.1:4789"]
    # no tunnel on a TCP path: nothing
    comp = simnet.compile_scenario(SCENARIOS / "publish-port.yaml")
    assert encap_paths(comp, set(tcp_exactness(comp)["netns"]))["devices"] == {}


def test_compare_marks_only_what_tcp_shares():
    tcp = {"netns": ["web"], "encap": {"devices": {"host1": ["eth0"]}, "netns": ["host1"], "udp_netns": ["host1"],
                                       "conntrack": ["udp 10.0.0.1 > 10.0.0.2:4789"]}}
    keys = ["host1/dev/eth0/tx_packets", "host1/qdisc/eth0/sent_pkts", "host1/dev/lo/tx_packets",
            "host1/snmp/Ip/InReceives", "host1/snmp/Ip/Forwarding", "host1/snmp/Udp/InDatagrams",
            "host1/snmp/Udp/NoPorts", "host1/netfilter/entries/udp 10.0.0.1 > 10.0.0.2:4789/packets_orig",
            "host1/netfilter/entries/udp 10.0.0.9 > 10.0.0.2:9000/packets_orig",
            "host3/netfilter/entries/tcp 127.0.0.1 > 127.0.0.1:8091/packets_reply", "host2/dev/eth0/tx_packets"]
    rows = [Row(k, 1, 2, is_exact(k)) for k in keys]
    _tcp_rules(rows, tcp)
    got = {r.key: (r.exact, r.note) for r in rows}
    for k in keys[:1] + keys[1:2] + keys[3:4] + keys[5:6] + keys[7:8]:
        assert got[k] == (False, TCP_ENCAP), k
    assert got[keys[9]] == (False, TCP_ACKS)
    for k in (keys[2], keys[4], keys[6], keys[8], keys[10]):
        assert got[k] == (True, ""), k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_proxy_agent_relays_and_half_closes():
    """The agent between a client and an echo-and-close server on loopback: every byte both ways, one
    session, both sockets' TCP_INFO after their FINs are acknowledged."""
    back_port, host_port = _free_port(), _free_port()
    srv = socket.create_server(("127.0.0.1", back_port))
    got: list[int] = []

    def server() -> None:
        c, _a = srv.accept()
        n = 0
        while (b := c.recv(65536)):
            n += len(b)
        got.append(n)
        c.sendall(b"x" * 3 * n)           # after the client's FIN (relayed as a half-close)
        c.close()

    t = threading.Thread(target=server, daemon=True)
    t.start()
    agent = subprocess.Popen([sys.executable, "-m", "simnet.engines.netns.agents", "docker_proxy.tcp"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        cfg = {"host_port": host_port, "backend_addr": "127.0.0.1", "backend_port": back_port,
               "deadline": time.monotonic() + 30}
        agent.stdin.write(json.dumps(cfg) + "\n")
        agent.stdin.flush()
        assert json.loads(agent.stdout.readline()).get("ready")
        agent.stdin.write(json.dumps({"go": time.monotonic()}) + "\n")
        agent.stdin.flush()
        cl = socket.create_connection(("127.0.0.1", host_port), timeout=10)
        cl.sendall(b"y" * 100_000)
        cl.shutdown(socket.SHUT_WR)
        n = 0
        while (b := cl.recv(65536)):
            n += len(b)
        cl.close()
        t.join(10)
        time.sleep(0.2)
        agent.stdin.write(json.dumps({"stop": True}) + "\n")
        agent.stdin.flush()
        res = json.loads(agent.stdout.readline())["result"]
    finally:
        agent.kill()
        agent.wait()
        srv.close()
    assert got == [100_000] and n == 300_000
    assert res["sessions"] == 1 and res["connect_errors"] == 0
    assert res["frontend"]["rx_bytes"] == res["backend_socket"]["tx_bytes"] == 100_000
    assert res["backend_socket"]["rx_bytes"] == res["frontend"]["tx_bytes"] == 300_000
    (conn,) = res["connections"]
    # each socket's FIN counts as one byte in the kernel's counts
    assert conn["frontend"]["tcp_info"]["tcpi_bytes_received"] == 100_001
    assert conn["backend"]["tcp_info"]["tcpi_bytes_received"] == 300_001
    assert conn["backend"]["tcp_info"]["tcpi_state"] == "CLOSE"
    assert conn["backend"]["remote"] == f"127.0.0.1:{back_port}"
