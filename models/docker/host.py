"""Docker's host and null drivers: moby ``libnetwork/drivers/host`` and ``drivers/null``.

``--network host``: the container gets no sandbox of its own; its processes use the host's
network namespace (its devices, addresses, routes and sockets), so traffic between two
host-networked containers goes over the host's loopback. Its UTS namespace stays private,
with the host's hostname unless ``hostname:`` says otherwise. ``--network none``: a private
namespace with only ``lo``. Neither driver creates devices; the compiler creates the
sandboxes (none) or maps the container onto its host's namespace (host).

Validation: tests/models/docker/test_drivers.py; scenarios none.yaml and host-vs-bridge.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from .graph import new_graph
from .types import Endpoint, NetworkPlan

__all__ = ["host", "null"]


def host(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """No devices: the endpoints' sandboxes *are* the host namespace."""
    g = new_graph(driver="host", network=plan.name)
    g.graph["shared"] = [(ep.container, plan.host) for ep in endpoints]
    return g


def null(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """No devices: the sandbox keeps only its loopback."""
    return new_graph(driver="null", network=plan.name)
