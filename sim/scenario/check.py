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

def _known_drivers_text() -> str:
    return ", ".join(sorted({"none" if d == "null" else d for d in DRIVERS}))


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


def parse_port(text: str) -> tuple[str | None, int, int, str]:
    """Docker's ``-p`` syntax ``[hostip:]hostport:containerport[/proto]`` → (hostip, hostport, port, proto)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ValueError(f"protocol {proto!r} (expected tcp or udp)")
    parts = spec.rsplit(":", 2)
    if len(parts) < 2:
        raise ValueError("expected hostport:containerport (a random host port is not modelled)")
    host_ip = parts[0] if len(parts) == 3 else None
    if host_ip is not None:
        ipaddress.IPv4Address(host_ip)
    hp, cp = parts[-2], parts[-1]
    if not (hp.isdigit() and cp.isdigit() and 1 <= int(hp) <= 65535 and 1 <= int(cp) <= 65535):
        raise ValueError("ports are integers from 1 to 65535 (port ranges are not modelled)")
    return host_ip, int(hp), int(cp), proto


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
    for sw, sspec in sc.switches.items():
        if sw in hosts or sw in sc.containers:
            raise ScenarioError(f"{sw!r} names both a switch and a host or container", ("switches", sw))
        if sspec.subnet is not None:
            subnets.append((sspec.subnet, ("switches", sw, "subnet")))
    for i, link in enumerate(sc.links):
        ends = []
        sw_ends = [ep for ep in link.endpoints if ep in sc.switches]
        if len(sw_ends) == 2:
            raise ScenarioError("a link joins a host to another host or to a switch, not two switches",
                                ("links", i, "endpoints"))
        if sw_ends and link.subnet is not None:
            raise ScenarioError(f"the addresses on a switch come from switches.{sw_ends[0]}.subnet",
                                ("links", i, "subnet"))
        for j, ep in enumerate(link.endpoints):
            if ep in sc.switches:
                ends.append(ep)
                continue
            hname, sep, ifname = ep.partition(":")
            if hname not in hosts:
                raise ScenarioError(f"unknown host {hname!r} (hosts: {', '.join(hosts)}"
                                    + (f"; switches: {', '.join(sc.switches)}" if sc.switches else "") + ")",
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
            raise ScenarioError(f"unknown driver {spec.driver!r} (known: {_known_drivers_text()})", path + ("driver",))
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
            if opt in ("com.docker.network.bridge.enable_icc", "com.docker.network.bridge.enable_ip_masquerade"):
                if val.strip().lower() not in ("true", "false"):
                    raise ScenarioError(f"expected \"true\" or \"false\", got {val!r}", path + ("options", opt))
                if opt.endswith("enable_icc") and val.strip().lower() == "false":
                    raise ScenarioError("enable_icc \"false\" (Docker's DROP of traffic between the network's "
                                        "containers) is not modelled; only \"true\" is", path + ("options", opt))
            if opt == "com.docker.network.driver.overlay.vxlanid_list" and (
                    not val.isdigit() or not 1 <= int(val) < 2 ** 24):
                raise ScenarioError(f"a VNI is an integer from 1 to 16777215 (simnet takes one), got {val!r}",
                                    path + ("options", opt))
            if opt == "parent" and "." in val:
                raise ScenarioError("802.1Q sub-interfaces (parent.vlan) are not modelled; give the NIC itself",
                                    path + ("options", opt))
            allowed = {"macvlan_mode": ("bridge", "vepa", "private", "passthru"), "ipvlan_mode": ("l2", "l3"),
                       "ipvlan_flag": ("bridge",)}.get(opt)
            if allowed is not None and val not in allowed:
                raise ScenarioError(f"{val!r} is not modelled (choose from {', '.join(allowed)})",
                                    path + ("options", opt))
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
    lan_nets = {("networks", n, "subnet") for n, sp in sc.networks.items() if sp.driver in ("macvlan", "ipvlan")}
    wires = {p for _s, p in subnets if p[0] in ("links", "switches")}
    for a in range(len(subnets)):
        for b in range(a):
            # a macvlan/ipvlan network is usually the very subnet of its parent's segment
            pair = {subnets[a][1], subnets[b][1]}
            if pair & lan_nets and pair & wires:
                continue
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
        for j, ptext in enumerate(c.ports):
            try:
                parse_port(ptext)
            except ValueError as e:
                raise ScenarioError(f"bad published port {ptext!r}: {e}", path + ("ports", j)) from None
            first = names[0] if names else "bridge"
            if first not in ("bridge",) and (sc.networks.get(first) is None or sc.networks[first].driver != "bridge"):
                raise ScenarioError("published ports are modelled for containers whose first network is a bridge "
                                    "network (Docker ignores -p with --network host)", path + ("ports", j))
        for j, ltext in enumerate(c.links):
            target = ltext.partition(":")[0]
            if target not in sc.containers:
                raise ScenarioError(f"--link to unknown container {target!r}", path + ("links", j))
            shared = set(names) & {n for n, _a in sc.containers[target].attachments()}
            if not shared or sc.containers[target].host != c.host:
                raise ScenarioError(f"cannot link to {target}: it shares no network with {cname}",
                                    path + ("links", j))
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
        key = ((w.from_, w.to) if w.to.startswith("127.") else w.to, proto, w.port)
        if key in servers and w.listen:
            raise ScenarioError(f"port {w.port}/{proto} on {w.to} is already served by workloads[{servers[key]}]",
                                path + ("port",))
        if w.app == "tcp_rr" and w.writes > w.request:
            raise ScenarioError(f"{w.writes} writes cannot carry a {w.request}-byte request", path + ("writes",))
        if w.listen:
            servers[key] = i
    if sc.run.until is not None and sc.run.until <= 0:
        raise ScenarioError("must be positive", ("run", "until"))
