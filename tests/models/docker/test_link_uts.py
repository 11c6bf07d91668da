"""--link (an /etc/hosts entry, no new data path) and UTS hostnames in results."""

from __future__ import annotations

import pytest

import simnet
from simnet.rng import hex_id

from conftest import run_yaml

TEXT = """
name: lk
containers:
  db: {}
  web: {links: ["db:database"], hostname: frontend}
  h: {networks: [host]}
workloads:
  - {name: by_alias, app: udp_rr, from: web, to: database, port: 5432, count: 10}
  - {name: by_name, app: udp_rr, from: web, to: db, port: 5433, count: 10, start: 10ms}
"""


def test_link_alias_resolves_and_takes_the_same_path():
    res = run_yaml(TEXT)
    sb = res.summary()["sandboxes"]
    db_ip = res.graph.nodes["db:eth0"]["addrs"][0].split("/")[0]
    assert sb["web"]["etc_hosts"] == {"database": db_ip, "db": db_ip, sb["db"]["hostname"]: db_ip}
    a, b = res.flow("by_alias"), res.flow("by_name")
    assert a.packets_delivered == b.packets_delivered == 10
    assert a.latencies_s[1:] == pytest.approx(b.latencies_s[1:], abs=1e-12)   # no new data path


def test_uts_hostnames():
    res = run_yaml(TEXT)
    sb = res.summary()["sandboxes"]
    assert sb["web"]["hostname"] == "frontend"
    assert sb["db"]["hostname"] == hex_id("container:db", 12) and len(sb["db"]["hostname"]) == 12
    assert sb["h"] == {"netns": "host", "host": "host", "hostname": "host", "etc_hosts": {}}
    assert res.counters["db"]["hostname"] == sb["db"]["hostname"]


def test_link_to_a_container_on_another_network_is_refused():
    with pytest.raises(simnet.ScenarioError, match="shares no network"):
        run_yaml("""
            name: x
            networks: {other: {}}
            containers:
              db: {networks: [other]}
              web: {links: [db]}
            """)
