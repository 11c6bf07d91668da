"""Docker's default IPAM: address pools, subnets, gateways and container addresses.

Models moby ``libnetwork/ipamutils`` (``localScopeDefaultNetworks``) and the default IPAM
driver: the default bridge takes 172.17.0.0/16 with gateway 172.17.0.1; user-defined networks
without a subnet take the next free pool in order — 172.18/16, 172.19/16, then 172.20/14,
172.24/14 and 172.28/14 split into /16s, then 192.168.0.0/16 split into /20s — skipping any
that overlap a subnet already in use (explicit networks, the hosts' underlay). The gateway
is the first host address unless given; containers get addresses in the order they join,
from the next one up, skipping fixed ``ipv4_address`` reservations (made first, as the
daemon does when it creates containers that ask for them).

Overlay networks (swarm scope) take the first free /24 of 10.0.0.0/8
(``globalScopeDefaultNetworks``) and one address space across hosts.

Scope and limitations: IPv4 only; ``ip_range``/``aux_addresses`` are not modelled; "the order
containers join" is their order in the scenario file (compose starts services in dependency
order, then by name).
Validation: tests/models/docker/test_ipam.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network

__all__ = ["DEFAULT_BRIDGE_SUBNET", "default_pools", "pick_subnet", "pick_global_subnet", "allocate", "IpamError",
           "GLOBAL_POOL"]

DEFAULT_BRIDGE_SUBNET = IPv4Network("172.17.0.0/16")
GLOBAL_POOL = IPv4Network("10.0.0.0/8")      # globalScopeDefaultNetworks: swarm-scope (overlay), in /24s


class IpamError(ValueError):
    """No address or pool is available."""


def default_pools() -> Iterable[IPv4Network]:
    """Docker's local-scope default pools, in allocation order, after 172.17.0.0/16."""
    yield IPv4Network("172.18.0.0/16")
    yield IPv4Network("172.19.0.0/16")
    for base in ("172.20.0.0/14", "172.24.0.0/14", "172.28.0.0/14"):
        yield from IPv4Network(base).subnets(new_prefix=16)
    yield from IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def pick_subnet(in_use: Sequence[IPv4Network]) -> IPv4Network:
    """The first default pool that overlaps nothing in ``in_use``."""
    for cand in default_pools():
        if not any(cand.overlaps(u) for u in in_use):
            return cand
    raise IpamError("all of Docker's default address pools are in use")


def pick_global_subnet(in_use: Sequence[IPv4Network]) -> IPv4Network:
    """The first /24 of the swarm pool 10.0.0.0/8 that overlaps nothing in ``in_use``.

    (A real swarm's ``ingress`` network takes 10.0.0.0/24 first; simnet has no ingress.)"""
    for cand in GLOBAL_POOL.subnets(new_prefix=24):
        if not any(cand.overlaps(u) for u in in_use):
            return cand
    raise IpamError("the swarm address pool 10.0.0.0/8 is exhausted")


def allocate(subnet: IPv4Network, gateway: IPv4Address | None, requests: Sequence[IPv4Address | None],
             reserved: Iterable[IPv4Address] = ()) -> tuple[IPv4Address, list[IPv4Address]]:
    """Gateway and one address per request (fixed ones kept), in request order.

    ``reserved`` addresses are skipped (the hosts' own addresses on a macvlan/ipvlan subnet,
    which a real network would keep out of the containers' ``ip_range``)."""
    gw = gateway if gateway is not None else next(subnet.hosts())
    taken = {gw} | {r for r in requests if r is not None} | set(reserved)
    out: list[IPv4Address] = []
    pool = (h for h in subnet.hosts() if h not in taken)
    for r in requests:
        if r is not None:
            out.append(r)
            continue
        try:
            out.append(next(pool))
        except StopIteration:
            raise IpamError(f"no free address left in {subnet}") from None
    return gw, out


def is_usable(subnet: IPv4Network, addr: IPv4Address) -> bool:
    """A host address of ``subnet`` (not its network or broadcast address)."""
    if addr not in subnet:
        return False
    if subnet.prefixlen >= 31:
        return True
    return addr not in (subnet.network_address, subnet.broadcast_address)


def as_network(text: str) -> IPv4Network:
    return ipaddress.IPv4Network(text, strict=True)
