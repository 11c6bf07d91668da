"""The netns engine's plan as data: typed operations (one command each, as an argument list) and
the :class:`Plan` that holds them in order with what the kernel should show afterwards.

Every operation runs one iproute2 (``ip``, ``bridge``, ``tc``), ``ethtool``, ``sysctl`` or
``iptables`` command inside one of the run's namespaces (``ip -n NS`` or ``ip netns exec NS``);
``argv()`` is what apply.py runs and ``to_script()`` prints, ``label()`` names the step when it
fails. plan.py and drivers.py decide which operations a graph needs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Op", "NetnsAdd", "Sysctl", "LinkAdd", "SetMaster", "SetMtu", "SetTxqlen", "AddrAdd", "RouteAdd",
           "Offloads", "LinkUp", "TcQdisc", "LinkSet", "FdbAdd", "NeighAdd", "Iptables", "Plan"]


# -- operations --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One step of a plan: a command as an argument list, and a readable label."""

    stderr_fails: ClassVar[bool] = False     # the command can fail with exit code 0 (sysctl -w)

    def argv(self) -> list[str]:  # pragma: no cover - every op overrides it
        raise NotImplementedError

    def label(self) -> str:  # pragma: no cover
        raise NotImplementedError

    @property
    def netns(self) -> str:
        return getattr(self, "ns")


def _ip(ns: str, *args: str) -> list[str]:
    return ["ip", "-n", ns, *args]


def _exec(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


@dataclass(frozen=True)
class NetnsAdd(Op):
    ns: str

    def argv(self) -> list[str]:
        return ["ip", "netns", "add", self.ns]

    def label(self) -> str:
        return f"netns add {self.ns}"


@dataclass(frozen=True)
class Sysctl(Op):
    """``sysctl -w`` inside a namespace (procps exits 0 when a key is refused: stderr says so)."""

    ns: str
    values: tuple[tuple[str, str], ...]
    stderr_fails: ClassVar[bool] = True

    def argv(self) -> list[str]:
        return _exec(self.ns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in self.values))

    def label(self) -> str:
        return f"sysctl {', '.join(k for k, _v in self.values[:3])}{'…' if len(self.values) > 3 else ''} in {self.ns}"


@dataclass(frozen=True)
class LinkAdd(Op):
    """``ip link add``; for a veth, both ends at once (the peer may live in another namespace)."""

    ns: str
    ifname: str
    kind: str
    mac: str | None = None
    mtu: int | None = None
    type_args: tuple[str, ...] = ()
    peer_ns: str | None = None
    peer_ifname: str | None = None
    peer_mac: str | None = None
    peer_mtu: int | None = None
    link: str | None = None          # the lower device (macvlan, ipvlan), in ``ns``
    into_ns: str | None = None       # created directly in this namespace (vxlan: its socket stays in ``ns``)

    def argv(self) -> list[str]:
        cmd = _ip(self.ns, "link", "add")
        if self.link:
            cmd += ["link", self.link, "name"]
        cmd.append(self.ifname)
        if self.mac:
            cmd += ["address", self.mac]
        if self.mtu:
            cmd += ["mtu", str(self.mtu)]
        if self.into_ns:
            cmd += ["netns", self.into_ns]
        cmd += ["type", self.kind, *self.type_args]
        if self.peer_ifname is not None:
            cmd += ["peer", "name", self.peer_ifname]
            if self.peer_mac:
                cmd += ["address", self.peer_mac]
            if self.peer_mtu:
                cmd += ["mtu", str(self.peer_mtu)]
            if self.peer_ns is not None:
                cmd += ["netns", self.peer_ns]
        return cmd

    def label(self) -> str:
        peer = f" (peer {self.peer_ifname} in {self.peer_ns})" if self.peer_ifname else ""
        lower = f" on {self.link}" if self.link else ""
        where = f"{self.into_ns} (from {self.ns})" if self.into_ns else self.ns
        return f"link add {self.kind} {self.ifname}{lower} in {where}{peer}"

    @property
    def home(self) -> str:
        """The namespace the device ends up in."""
        return self.into_ns or self.ns


@dataclass(frozen=True)
class SetMaster(Op):
    ns: str
    ifname: str
    master: str

    def argv(self) -> list[str]:
        return _ip(self.ns, "link", "set", "dev", self.ifname, "master", self.master)

    def label(self) -> str:
        return f"set master of {self.ifname} to {self.master} in {self.ns}"


@dataclass(frozen=True)
class SetMtu(Op):
    ns: str
    ifname: str
    mtu: int

    def argv(self) -> list[str]:
        return _ip(self.ns, "link", "set", "dev", self.ifname, "mtu", str(self.mtu))

    def label(self) -> str:
        return f"set mtu {self.mtu} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class SetTxqlen(Op):
    ns: str
    ifname: str
    txqueuelen: int

    def argv(self) -> list[str]:
        return _ip(self.ns, "link", "set", "dev", self.ifname, "txqueuelen", str(self.txqueuelen))

    def label(self) -> str:
        return f"set txqueuelen {self.txqueuelen} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class AddrAdd(Op):
    ns: str
    ifname: str
    cidr: str

    def argv(self) -> list[str]:
        return _ip(self.ns, "addr", "add", self.cidr, "brd", "+", "dev", self.ifname)

    def label(self) -> str:
        return f"addr add {self.cidr} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class RouteAdd(Op):
    ns: str
    dst: str
    via: str | None
    dev: str | None

    def argv(self) -> list[str]:
        cmd = _ip(self.ns, "route", "add", self.dst)
        if self.via:
            cmd += ["via", self.via]
        if self.dev:
            cmd += ["dev", self.dev]
        return cmd

    def label(self) -> str:
        return f"route add {self.dst}{' via ' + self.via if self.via else ''} in {self.ns}"


@dataclass(frozen=True)
class Offloads(Op):
    ns: str
    ifname: str
    features: tuple[tuple[str, bool], ...]

    def argv(self) -> list[str]:
        args = [a for k, on in self.features for a in (k, "on" if on else "off")]
        return _exec(self.ns, "ethtool", "-K", self.ifname, *args)

    def label(self) -> str:
        return f"offloads {' '.join(f'{k}={int(v)}' for k, v in self.features)} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class LinkUp(Op):
    ns: str
    ifname: str

    def argv(self) -> list[str]:
        return _ip(self.ns, "link", "set", "dev", self.ifname, "up")

    def label(self) -> str:
        return f"link up {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class TcQdisc(Op):
    """A ``tc`` command on one device (qdisc or class), e.g. the NIC's rate limiter."""

    ns: str
    ifname: str
    args: tuple[str, ...]

    def argv(self) -> list[str]:
        obj, verb, *rest = self.args
        return ["tc", "-n", self.ns, obj, verb, "dev", self.ifname, *rest]

    def label(self) -> str:
        return f"tc {' '.join(self.args[:2])} {' '.join(self.args[2:6])} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class LinkSet(Op):
    """``ip link set dev IFNAME ARGS`` (e.g. ``type bridge_slave hairpin on``)."""

    ns: str
    ifname: str
    args: tuple[str, ...]

    def argv(self) -> list[str]:
        return _ip(self.ns, "link", "set", "dev", self.ifname, *self.args)

    def label(self) -> str:
        return f"set {' '.join(self.args)} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class FdbAdd(Op):
    """``bridge fdb add MAC dev IFNAME dst VTEP self permanent``: a VXLAN device's static entry."""

    ns: str
    ifname: str
    mac: str
    dst: str

    def argv(self) -> list[str]:
        return ["bridge", "-n", self.ns, "fdb", "add", self.mac, "dev", self.ifname, "dst", self.dst, "self",
                "permanent"]

    def label(self) -> str:
        return f"fdb add {self.mac} dst {self.dst} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class NeighAdd(Op):
    """``ip neigh add ADDR lladdr MAC dev IFNAME nud permanent``."""

    ns: str
    ifname: str
    addr: str
    mac: str

    def argv(self) -> list[str]:
        return _ip(self.ns, "neigh", "add", self.addr, "lladdr", self.mac, "dev", self.ifname, "nud", "permanent")

    def label(self) -> str:
        return f"neigh add {self.addr} lladdr {self.mac} on {self.ifname} in {self.ns}"


@dataclass(frozen=True)
class Iptables(Op):
    """One ``iptables`` command (``-w``: wait for the xtables lock) inside a namespace."""

    ns: str
    args: tuple[str, ...]

    def argv(self) -> list[str]:
        return _exec(self.ns, "iptables", "-w", *self.args)

    def label(self) -> str:
        return f"iptables {' '.join(self.args)} in {self.ns}"


# -- the plan ---------------------------------------------------------------------------------------------

@dataclass
class Plan:
    """Operations in order, what the kernel should show afterwards, and what is not reproduced."""

    prefix: str
    netns: dict[str, str]                         # graph namespace -> kernel namespace
    ops: list[Op] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    needs_link_kinds: set[str] = field(default_factory=set)
    needs_qdiscs: set[str] = field(default_factory=set)
    needs_tools: set[str] = field(default_factory=lambda: {"ip"})
    devices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)   # graph ns -> ifname -> facts
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    carrier: list[tuple[str, str]] = field(default_factory=list)   # (graph ns, ifname) that must come UP
    # external switches: name -> {"bridge": ifname, "ports": {port ifname: (host ns, NIC ifname)}}
    switches: dict[str, dict[str, Any]] = field(default_factory=dict)
    # iptables rules installed per graph namespace: comment (the DES's rule name) -> (table, chain)
    rules: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def to_script(self) -> str:
        """The plan as a bash script: ``set -e``, one command per line, cleanup at the end as a comment."""
        lines = ["#!/usr/bin/env bash",
                 f"# simnet netns plan, prefix {self.prefix}: run as root; remove with `simnet netns clean`",
                 "# or: " + "; ".join(f"ip netns del {ns}" for ns in self.netns.values()),
                 "set -euo pipefail"]
        for n in self.notes:
            lines.append(f"# not reproduced: {n}")
        last = None
        for op in self.ops:
            kind = type(op).__name__
            if kind != last:
                lines.append(f"# {kind}")
                last = kind
            lines.append(shlex.join(op.argv()))
        return "\n".join(lines) + "\n"

    def expected(self) -> dict[str, Any]:
        """Per kernel namespace: devices (kind, mtu, mac, master, addresses, up) and routes."""
        return {self.netns[ns]: {"devices": devs, "routes": self.routes.get(ns, [])}
                for ns, devs in self.devices.items()}
