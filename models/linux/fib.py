"""IPv4 routing: the ``local`` and ``main`` tables of one namespace (net/ipv4/fib_trie.c).

``lookup(daddr)`` returns the route a packet to ``daddr`` takes: the ``local`` table first
(addresses of this namespace, delivered through ``lo``; the subnet broadcast addresses), then
the ``main`` table by longest prefix, lower metric first among equal prefixes. Connected
routes (``proto kernel scope link``) are added with each address, as the kernel does.

Scope and limitations: no policy rules beyond local → main, no multipath, no route metrics
other than the MTU; results are cached per destination (the kernel caches in the nexthop).
Validation: tests/models/linux/test_fib.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Route", "Fib", "RTN_UNICAST", "RTN_LOCAL", "RTN_BROADCAST"]

RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3


@dataclass(slots=True)
class Route:
    """One route. ``dev`` is the output device; ``gateway`` is None for on-link destinations."""

    prefix: int
    plen: int
    dev: Any
    gateway: int | None = None
    src: int | None = None
    metric: int = 0
    rtype: int = RTN_UNICAST
    proto: str = "kernel"      # kernel (connected), static (scenario), boot
    mtu: int | None = None     # route metric mtu, else the device MTU

    @property
    def mask(self) -> int:
        return (0xFFFFFFFF << (32 - self.plen)) & 0xFFFFFFFF if self.plen else 0

    def matches(self, daddr: int) -> bool:
        return (daddr & self.mask) == self.prefix

    def path_mtu(self) -> int:
        return self.mtu if self.mtu is not None else self.dev.mtu


class Fib:
    """The routing tables of one namespace."""

    def __init__(self) -> None:
        self.local: dict[int, Route] = {}       # exact addresses (local and broadcast)
        self.main: list[Route] = []             # sorted: longest prefix, then metric
        self._cache: dict[int, Route | None] = {}

    def add_local(self, addr: int, dev: Any, rtype: int = RTN_LOCAL) -> None:
        self.local[addr] = Route(addr, 32, dev, rtype=rtype, src=addr if rtype == RTN_LOCAL else None)
        self._cache.clear()

    def add(self, route: Route) -> None:
        for r in self.main:
            if r.prefix == route.prefix and r.plen == route.plen and r.metric == route.metric:
                raise ValueError(f"route {route.prefix:#x}/{route.plen} metric {route.metric} exists")
        self.main.append(route)
        self.main.sort(key=lambda r: (-r.plen, r.metric))
        self._cache.clear()

    def lookup(self, daddr: int) -> Route | None:
        """The route to ``daddr``, or None (ENETUNREACH)."""
        try:
            return self._cache[daddr]
        except KeyError:
            pass
        r = self.local.get(daddr)
        if r is None:
            for cand in self.main:
                if (daddr & cand.mask) == cand.prefix:
                    r = cand
                    break
        self._cache[daddr] = r
        return r

    def routes(self) -> list[Route]:
        return list(self.main)
