"""The Linux bridge: FDB learning, flooding of unknown unicast, ageing."""

from __future__ import annotations

from conftest import run_yaml

THREE = """
name: fdb
networks:
  lan: {{driver: bridge, subnet: 10.1.0.0/24}}
containers:
  a: {{networks: [lan]}}
  b: {{networks: [lan]}}
  c: {{networks: [lan]}}
workloads:
  - {{name: early, app: udp, from: a, to: b, port: 9000, count: 5, payload: 64, interval: 1ms}}
{later}
run: {{until: {until}}}
"""


def test_learned_unicast_is_not_flooded():
    res = run_yaml(THREE.format(later="", until="1s"))
    c = res.counters["c"]["dev"]["eth0"]
    # c sees only the broadcast ARP request: the reply and the data go by the learnt FDB
    assert c["rx_packets"] == 1 and c["rx_bytes"] == 42
    assert res.counters["c"]["snmp"]["Ip"]["InReceives"] == 0


def test_aged_out_entry_floods_again():
    """After 300 s without a frame from b, the bridge forgets b's MAC (BR_DEFAULT_AGEING_TIME):
    a's next datagrams (a still has b's MAC, STALE) are flooded, so c receives them and drops
    them (OTHERHOST, before InReceives). a's neighbour entry goes DELAY, then PROBE 5 s later;
    the unicast probe is flooded too (b has still said nothing), and b's reply teaches the
    bridge again."""
    later = "  - {name: late, app: udp, from: a, to: b, port: 9001, count: 2, payload: 64, interval: 1ms, start: 400s}"
    res = run_yaml(THREE.format(later=later, until="420s"))
    c = res.counters["c"]
    # the early ARP broadcast, both late datagrams, the unicast probe
    assert c["dev"]["eth0"]["rx_packets"] == 1 + 2 + 1
    assert c["dev"]["eth0"]["rx_bytes"] == 42 + 2 * (14 + 92) + 42
    assert c["snmp"]["Ip"]["InReceives"] == 0
    assert res.drops["OTHERHOST"] == 2
    assert res.flow("late").packets_delivered == 2
    assert res.counters["a"]["arp"]["requests_sent"] == 2      # the first resolution, the unicast probe
