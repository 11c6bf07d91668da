"""What a Docker driver is given: the network's plan on one host and the endpoints to attach."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

__all__ = ["NetworkPlan", "Endpoint", "Peer"]


@dataclass(frozen=True)
class Peer:
    """An endpoint of a multi-host network on another host (what Docker's gossip tells a host)."""

    container: str
    sandbox: str
    ifname: str
    address: IPv4Address
    host: str
    vtep: IPv4Address | None = None   # the other host's VXLAN tunnel endpoint (overlay)


@dataclass(frozen=True)
class NetworkPlan:
    """A Docker network as created on one host, after IPAM."""

    name: str
    driver: str
    host: str                      # the host (and its root namespace) this instance lives on
    subnet: IPv4Network | None
    gateway: IPv4Address | None
    mtu: int = 1500
    options: Mapping[str, str] = field(default_factory=dict)
    internal: bool = False
    default: bool = False          # the predefined "bridge" network (docker0)
    # multi-host drivers
    vni: int | None = None         # overlay: the VXLAN network identifier
    vtep: IPv4Address | None = None   # overlay: this host's tunnel endpoint (its advertise address)
    peers: tuple[Peer, ...] = ()   # overlay: endpoints on other hosts
    parent: str | None = None      # macvlan/ipvlan: the parent interface in the host namespace


@dataclass(frozen=True)
class Endpoint:
    """One container joining the network (CNM endpoint)."""

    container: str
    sandbox: str                   # the namespace the endpoint's interface lives in
    ifname: str                    # eth0, eth1, ... inside the sandbox
    address: IPv4Address | None
    gateway: bool                  # this network provides the sandbox's default route
