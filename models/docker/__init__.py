"""Docker's network drivers as pure functions from a network plan to a graph fragment.

The registry is keyed by Docker's own driver names (``docker network create -d NAME``); the
``none`` network uses the ``null`` driver, as in moby.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import networkx as nx

from .bridge import BRIDGE_OPTIONS, bridge
from .host import host, null
from .macvlan import IPVLAN_OPTIONS, MACVLAN_OPTIONS, ipvlan, macvlan
from .overlay import OVERLAY_OPTIONS, overlay
from .types import Endpoint, NetworkPlan, Peer

__all__ = ["DRIVERS", "DRIVER_OPTIONS", "DriverFn", "Endpoint", "NetworkPlan", "Peer", "driver_for"]

DriverFn = Callable[[NetworkPlan, Sequence[Endpoint]], nx.MultiDiGraph]

DRIVERS: Mapping[str, DriverFn] = {"bridge": bridge, "host": host, "null": null, "overlay": overlay,
                                  "macvlan": macvlan, "ipvlan": ipvlan}

# driver options each driver understands (anything else is refused at load time)
DRIVER_OPTIONS: Mapping[str, Mapping[str, str]] = {"bridge": BRIDGE_OPTIONS, "host": {}, "null": {},
                                                   "overlay": OVERLAY_OPTIONS, "macvlan": MACVLAN_OPTIONS,
                                                   "ipvlan": IPVLAN_OPTIONS}


def driver_for(name: str) -> str:
    """Registry key for a ``driver:`` value (``none`` is the null driver)."""
    return "null" if name == "none" else name
