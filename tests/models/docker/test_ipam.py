"""Docker's default IPAM (moby libnetwork/ipamutils and the default allocator)."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv4Network

import pytest

from simnet.models.docker.ipam import IpamError, allocate, default_pools, pick_subnet


def test_pool_order_follows_moby():
    pools = list(itertools.islice(default_pools(), 0, 16))
    assert pools[:3] == [IPv4Network("172.18.0.0/16"), IPv4Network("172.19.0.0/16"), IPv4Network("172.20.0.0/16")]
    assert pools[3:14] == [IPv4Network(f"172.{i}.0.0/16") for i in range(21, 32)]
    assert pools[14] == IPv4Network("192.168.0.0/20") and pools[15] == IPv4Network("192.168.16.0/20")
    assert len(list(default_pools())) == 2 + 12 + 16


def test_pick_skips_pools_in_use():
    used = [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.5.0/24")]
    assert pick_subnet(used) == IPv4Network("172.19.0.0/16")
    everything = [IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16")]
    with pytest.raises(IpamError):
        pick_subnet(everything)


def test_allocate_gateway_then_in_order_skipping_fixed():
    gw, addrs = allocate(IPv4Network("10.0.0.0/29"), None,
                         [None, IPv4Address("10.0.0.3"), None, None])
    assert gw == IPv4Address("10.0.0.1")
    assert addrs == [IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3"), IPv4Address("10.0.0.4"),
                     IPv4Address("10.0.0.5")]
    with pytest.raises(IpamError):
        allocate(IPv4Network("10.0.0.0/30"), None, [None, None])
