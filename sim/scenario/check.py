"""Checks that need more than one key: names, references, addresses, sysctls.

Each problem raises a :class:`ScenarioError` with the key path it is about; the loader turns
that into ``file:line``. Reachability of workload targets needs the compiled routing tables
and is checked by the compiler.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network
from typing import Any

from simnet.models.docker import DRIVER_OPTIONS, DRIVERS, driver_for
from simnet.models.docker.ipam import DEFAULT_BRIDGE_SUBNET, is_usable
from simnet.models.linux.params import SYSCTLS, canonical_sysctl

from .loader import ScenarioError
from .spec import PREDEFINED_NETWORKS, Scenario

__all__ = ["check"]

_KNOWN_DRIVERS_TEXT = "bridge, host, none"


def _check_sysctls(sysctls: dict[str, Any], path: tuple) -> None:
    for name, value in sysctls.items():
        canon = canonical_sysctl(name)
        s = SYSCTLS.get(canon)
        if s is None:
            import difflib

            close = difflib.get_close_matches(canon, list(SYSCTLS), n=1, cutoff=0.75)
            hint = f" (did you mean '{close[0]}'?)" if close else " (run `simnet params` for the ones simnet models)"
            raise ScenarioError(f"sysctl not modelled by simnet{hint}", path + (name,))
        try:
            s.convert(value)
        except ValueError as e:
            raise ScenarioError(f"bad value: {e}", path + (name,)) from None


def check(sc: Scenario) -> None:
    hosts = sc.hosts
    if not hosts:
        raise ScenarioError("at least one host is needed", ("hosts",))
    for c in sc.containers:
        if c in hosts:
            raise ScenarioError(f"{c!r} names both a host and a container", ("containers", c))
    _check_sysctls(sc.sysctls, ("sysctls",))
    for hname, h in hosts.items():
        _check_sysctls(h.sysctls, ("hosts", hname, "sysctls"))
        for ifname in h.nics:
            if ifname == "lo":
                raise ScenarioError("'lo' is the loopback interface; give the NIC another name",
                                    ("hosts", hname, "nics", ifname))
        for j, r in enumerate(h.routes):
            if r.via is None and r.dev is None:
                raise ScenarioError("a route needs 'via' or 'dev'", ("hosts", hname, "routes", j))

    # links
    subnets: list[tuple[IPv4Network, tuple]] = []
    for i, link in enumerate(sc.links):
        ends = []
        for j, ep in enumerate(link.endpoints):
            hname, sep, ifname = ep.partition(":")
            if hname not in hosts:
                raise ScenarioError(f"unknown host {hname!r} (hosts: {', '.join(hosts)})",
                                    ("links", i, "endpoints", j))
            if sep and (not ifname or len(ifname) > 15):
                raise ScenarioError(f"bad interface name {ifname!r} (expected host:ifname, ifname 1 to 15 "
                                    "characters)", ("links", i, "endpoints", j))
            if ifname == "lo":
                raise ScenarioError("'lo' is the loopback interface, not a NIC", ("links", i, "endpoints", j))
            ends.append(hname)
        if ends[0] == ends[1]:
            raise ScenarioError(f"both ends are on host {ends[0]!r}: a link joins two different hosts",
                                ("links", i, "endpoints"))
        if link.subnet is not None:
            if link.subnet.num_addresses < 4 and link.subnet.prefixlen != 31:
                raise ScenarioError("a link subnet needs room for two addresses", ("links", i, "subnet"))
            subnets.append((link.subnet, ("links", i, "subnet")))

    # networks
    for net, spec in sc.networks.items():
        path = ("networks", net)
        if net in PREDEFINED_NETWORKS:
            raise ScenarioError(f"{net!r} is a predefined network; give yours another name", path)
        reg = driver_for(spec.driver)
        if reg not in DRIVERS or spec.driver == "null":
            raise ScenarioError(f"unknown driver {spec.driver!r} (known: {_KNOWN_DRIVERS_TEXT})", path + ("driver",))
        if reg in ("host", "null"):
            raise ScenarioError(f"only one {spec.driver} network exists; use the predefined network "
                                f"'{spec.driver}' instead", path + ("driver",))
        known = DRIVER_OPTIONS.get(reg, {})
        for opt, val in spec.options.items():
            if opt not in known:
                raise ScenarioError(f"option not modelled for the {spec.driver} driver (known: "
                                    f"{', '.join(sorted(known)) or 'none'})", path + ("options", opt))
            if opt == "com.docker.network.driver.mtu":
                if not val.isdigit() or not 68 <= int(val) <= 65535:
                    raise ScenarioError(f"MTU must be an integer from 68 to 65535 (IPv4 needs at least 68), "
                                        f"got {val!r}", path + ("options", opt))
            if opt == "com.docker.network.bridge.name" and (len(val) > 15 or not val):
                raise ScenarioError("interface names are 1 to 15 characters", path + ("options", opt))
        if spec.gateway is not None and spec.subnet is None:
            raise ScenarioError("a gateway needs a subnet", path + ("gateway",))
        if spec.subnet is not None:
            if spec.subnet.prefixlen > 30:
                raise ScenarioError("subnet too small for a gateway and a container", path + ("subnet",))
            if spec.gateway is not None and not is_usable(spec.subnet, spec.gateway):
                raise ScenarioError(f"gateway {spec.gateway} is not a host address of {spec.subnet}",
                                    path + ("gateway",))
            if spec.subnet.overlaps(DEFAULT_BRIDGE_SUBNET):
                raise ScenarioError(f"{spec.subnet} overlaps the default bridge's {DEFAULT_BRIDGE_SUBNET}",
                                    path + ("subnet",))
            subnets.append((spec.subnet, path + ("subnet",)))
    for a in range(len(subnets)):
        for b in range(a):
            if subnets[a][0].overlaps(subnets[b][0]):
                from .loader import fmt_path

                raise ScenarioError(f"{subnets[a][0]} overlaps {subnets[b][0]} ({fmt_path(subnets[b][1])})",
                                    subnets[a][1])

    # containers
    used: dict[tuple[str, ipaddress.IPv4Address], str] = {}
    for cname, c in sc.containers.items():
        path = ("containers", cname)
        if c.host is not None and c.host not in hosts:
            raise ScenarioError(f"unknown host {c.host!r} (hosts: {', '.join(hosts)})", path + ("host",))
        if c.host is None and len(hosts) > 1:
            raise ScenarioError(f"required when there are several hosts (hosts: {', '.join(hosts)})",
                                path + ("host",))
        _check_sysctls(c.sysctls, path + ("sysctls",))
        atts = c.attachments()
        if c.networks is not None and not atts:
            raise ScenarioError("a container needs at least one network (use [none] for none)", path + ("networks",))
        names = [n for n, _a in atts]
        for k, (n, a) in enumerate(atts):
            npath = path + ("networks", n) if isinstance(c.networks, dict) else (
                path + ("networks", k) if isinstance(c.networks, list) else path)
            if n not in sc.networks and n not in PREDEFINED_NETWORKS:
                raise ScenarioError(f"unknown network {n!r} (networks: "
                                    f"{', '.join(list(sc.networks) + list(PREDEFINED_NETWORKS))})", npath)
            if n in ("host", "none") and len(names) > 1:
                raise ScenarioError(f"a container on the {n} network cannot join other networks", npath)
            if a.ipv4_address is not None:
                spec = sc.networks.get(n)
                apath = npath + ("ipv4_address",)
                if spec is None or spec.subnet is None:
                    raise ScenarioError("user specified IP address is supported only when connecting to networks "
                                        "with user configured subnets (Docker's rule)", apath)
                if not is_usable(spec.subnet, a.ipv4_address):
                    raise ScenarioError(f"{a.ipv4_address} is not a host address of {spec.subnet}", apath)
                gw = spec.gateway or next(spec.subnet.hosts())
                if a.ipv4_address == gw:
                    raise ScenarioError(f"{a.ipv4_address} is the network's gateway", apath)
                key = (n, a.ipv4_address)
                if key in used:
                    raise ScenarioError(f"address {a.ipv4_address} is already used by {used[key]}", apath)
                used[key] = cname
        if len(set(names)) != len(names):
            k = next(k for k, n in enumerate(names) if n in names[:k])
            raise ScenarioError(f"network {names[k]!r} is listed twice", path + ("networks", k))

    # workloads
    names_seen: dict[str, int] = {}
    servers: dict[tuple[str, str, int], int] = {}
    for i, w in enumerate(sc.workloads):
        path = ("workloads", i)
        for key, who in (("from", w.from_),):
            if who not in sc.containers and who not in hosts:
                raise ScenarioError(f"unknown container or host {who!r}", path + (key,))
        name = w.name or f"{w.app}{i}"
        if name in names_seen:
            raise ScenarioError(f"workload name {name!r} is used by workloads[{names_seen[name]}]", path + ("name",))
        names_seen[name] = i
        if w.app == "udp" and w.interval is not None and w.rate is not None:
            raise ScenarioError("give either interval or rate, not both", path + ("rate",))
        if w.app == "udp" and w.rate is not None and w.payload == 0:
            raise ScenarioError("a rate needs a payload above 0 bytes", path + ("rate",))
        proto = "tcp" if w.app.startswith("tcp") else "udp"
        key = (w.to, proto, w.port)
        if key in servers and w.listen:
            raise ScenarioError(f"port {w.port}/{proto} on {w.to} is already served by workloads[{servers[key]}]",
                                path + ("port",))
        if w.app == "tcp_rr" and w.writes > w.request:
            raise ScenarioError(f"{w.writes} writes cannot carry a {w.request}-byte request", path + ("writes",))
        if w.listen:
            servers[key] = i
    if sc.run.until is not None and sc.run.until <= 0:
        raise ScenarioError("must be positive", ("run", "until"))
