"""Routing table lookups: local table first, longest prefix, metric."""

from __future__ import annotations

from simnet.models.linux.fib import RTN_BROADCAST, RTN_LOCAL, Fib, Route
from simnet.models.linux.skb import ip_to_int


class Dev:
    def __init__(self, name: str, mtu: int = 1500) -> None:
        self.ifname, self.mtu = name, mtu


def net(text: str) -> tuple[int, int]:
    a, p = text.split("/")
    return ip_to_int(a), int(p)


def test_longest_prefix_then_metric_then_local():
    eth0, eth1, lo = Dev("eth0"), Dev("eth1", 9000), Dev("lo", 65536)
    f = Fib()
    f.add(Route(*net("0.0.0.0/0"), eth0, gateway=ip_to_int("10.0.0.1")))
    f.add(Route(*net("10.0.0.0/8"), eth0))
    f.add(Route(*net("10.1.0.0/16"), eth1, metric=100))
    f.add(Route(*net("10.1.0.0/16"), eth0, metric=10))
    f.add_local(ip_to_int("10.1.2.3"), lo)
    f.add_local(ip_to_int("10.1.255.255"), eth0, RTN_BROADCAST)
    assert f.lookup(ip_to_int("8.8.8.8")).gateway == ip_to_int("10.0.0.1")
    assert f.lookup(ip_to_int("10.9.9.9")).plen == 8
    r = f.lookup(ip_to_int("10.1.9.9"))
    assert r.plen == 16 and r.metric == 10 and r.dev is eth0
    assert f.lookup(ip_to_int("10.1.2.3")).rtype == RTN_LOCAL
    assert f.lookup(ip_to_int("10.1.255.255")).rtype == RTN_BROADCAST


def test_cache_is_invalidated_when_routes_change():
    eth0, eth1 = Dev("eth0"), Dev("eth1")
    f = Fib()
    f.add(Route(*net("0.0.0.0/0"), eth0))
    assert f.lookup(ip_to_int("192.0.2.1")).dev is eth0
    f.add(Route(*net("192.0.2.0/24"), eth1))
    assert f.lookup(ip_to_int("192.0.2.1")).dev is eth1
    assert Fib().lookup(ip_to_int("192.0.2.1")) is None
