"""Before a netns run creates anything: root, the tools, and what the kernel can build.

:func:`check_host` needs no namespace: effective uid 0, ``ip`` (iproute2 with ``-json``),
``sysctl``, and ``tc``/``ethtool``/``bridge``/``iptables`` when the plan uses them.
:func:`probe_kernel` asks the kernel itself, in a throwaway namespace of the run (removed
before it returns, and by the run's cleanup if it is interrupted): which link kinds it can
create (``ip link add type KIND``: veth, bridge, vxlan, macvlan, ipvlan, dummy), which qdiscs
it has (``tc qdisc add``), which sysctls a namespace can write, and whether iptables can
program a nat table there (``iptables -t nat -N``).
Any gap the scenario needs raises :class:`Unavailable` with one clear sentence; the CLI
exits with code 3 and nothing of the run is left.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import TYPE_CHECKING

from .apply import ApplyError, remove_netns, run
from .plan import NOISE_SYSCTLS, KernelFeatures, Plan

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["Unavailable", "check_host", "probe_kernel", "check_plan", "PROBE_LINK_ARGS", "PROBE_QDISC_ARGS"]

# how to create a throwaway device of each kind in the probe namespace: arguments before ``type`` and
# after ``type KIND`` (lower device: "snpb", a veth)
PROBE_LINK_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "veth": ((), ("peer", "name", "snpa1")),
    "bridge": ((), ()),
    "vxlan": ((), ("id", "42", "dstport", "4789", "dev", "snpb")),
    "macvlan": (("link", "snpb"), ("mode", "bridge")),
    "ipvlan": (("link", "snpb"), ("mode", "l2")),
    "dummy": ((), ()),
}
PROBE_QDISC_ARGS: dict[str, tuple[str, ...]] = {
    "htb": ("htb",),
    "pfifo": ("pfifo",),
    "tbf": ("tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms"),
    "netem": ("netem", "delay", "1ms"),
}
KCONFIG = {"veth": "CONFIG_VETH", "bridge": "CONFIG_BRIDGE", "vxlan": "CONFIG_VXLAN", "macvlan": "CONFIG_MACVLAN",
           "ipvlan": "CONFIG_IPVLAN", "dummy": "CONFIG_DUMMY", "htb": "CONFIG_NET_SCH_HTB", "tbf": "CONFIG_NET_SCH_TBF",
           "netem": "CONFIG_NET_SCH_NETEM", "pfifo": "CONFIG_NET_SCH_FIFO"}

_SYSCTL_SCRIPT = r"""
import json, os, sys
out = {}
for name in sys.argv[1:]:
    p = "/proc/sys/" + name.replace(".", "/")
    try:
        v = open(p).read().strip()
    except OSError:
        continue
    out[name] = [os.access(p, os.W_OK), v]
print(json.dumps(out))
"""


class Unavailable(Exception):
    """The netns engine cannot run here (no root, a missing tool, a device kind the kernel lacks)."""


def check_host(tools: set[str]) -> None:
    """Root and the command-line tools; raises Unavailable naming the first thing missing."""
    if os.geteuid() != 0:
        raise Unavailable("the netns engine needs root (it creates network namespaces and devices): "
                          "run simnet as root, e.g. with sudo")
    packages = {"ip": "iproute2", "tc": "iproute2", "bridge": "iproute2", "ethtool": "ethtool", "sysctl": "procps",
                "iptables": "iptables"}
    for tool in ["ip", "sysctl", *sorted(tools - {"ip", "sysctl"})]:
        if shutil.which(tool) is None:
            raise Unavailable(f"the netns engine needs `{tool}` (Debian/Ubuntu package {packages.get(tool, tool)}), "
                              "which is not installed")
    try:
        run(["ip", "-json", "link", "show", "lo"])
    except ApplyError as e:
        raise Unavailable(f"this iproute2 cannot answer in JSON (`ip -json`; iproute2 4.13 or later): {e}") from None


def probe_kernel(lab: "Lab", link_kinds: set[str], qdiscs: set[str], iptables: bool = False) -> KernelFeatures:
    """Ask the kernel, in a throwaway namespace of ``lab``, what it can build (and, with
    ``iptables``, whether iptables can program a nat table in a namespace)."""
    ns = lab.kname("probe")
    with lab.critical():
        lab.netns.append(ns)
        run(["ip", "netns", "add", ns])
    try:
        kinds = set()
        run(["ip", "-n", ns, "link", "add", "snpb", "type", "veth", "peer", "name", "snpb1"], check=False)
        for i, kind in enumerate(sorted(link_kinds | {"veth", "bridge"})):
            pre, post = PROBE_LINK_ARGS.get(kind, ((), ()))
            cp = run(["ip", "-n", ns, "link", "add", *pre, "name", f"snp{i}", "type", kind, *post], check=False)
            if cp.returncode == 0:
                kinds.add(kind)
        have_q = set()
        for q in sorted(qdiscs | {"htb", "pfifo", "tbf", "netem"}):
            args = PROBE_QDISC_ARGS.get(q, (q,))
            cp = run(["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", *args], check=False)
            if cp.returncode == 0:
                have_q.add(q)
                run(["tc", "-n", ns, "qdisc", "del", "dev", "lo", "root"], check=False)
        from simnet.models.linux.params import SYSCTLS

        names = sorted(set(SYSCTLS) | {k for k, _v in NOISE_SYSCTLS})
        cp = run(["ip", "netns", "exec", ns, sys.executable, "-c", _SYSCTL_SCRIPT, *names])
        found = json.loads(cp.stdout)
        writable = frozenset(k for k, (w, _v) in found.items() if w)
        values = {k: v for k, (_w, v) in found.items()}
        # neighbour parameters are per device in a namespace: always writable there
        writable |= {k for k in names if k.startswith("net.ipv4.neigh.default.")}
        nat = None
        if iptables:
            cp = run(["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-N", "SNPROBE"], check=False)
            nat = (cp.stderr or cp.stdout).strip().splitlines()[-1:] if cp.returncode else []
    finally:
        with lab.critical():
            remove_netns([ns])
            if ns in lab.netns:
                lab.netns.remove(ns)
    return KernelFeatures(link_kinds=frozenset(kinds), qdiscs=frozenset(have_q), sysctls=writable, values=values,
                          iptables_error=(nat[0] if nat else "") if nat is not None else None)


def check_plan(plan: Plan, features: KernelFeatures) -> None:
    """Raise Unavailable when the plan needs a device kind or qdisc the kernel lacks."""
    for kind in sorted(plan.needs_link_kinds - features.link_kinds):
        users = [f"{ns}:{i}" for ns, devs in plan.devices.items() for i, d in devs.items() if d["kind"] == kind]
        raise Unavailable(f"this kernel cannot create {kind} devices ({KCONFIG.get(kind, kind)} is not set), "
                          f"which the scenario needs ({', '.join(users[:3]) or kind})")
    if "iptables" in plan.needs_tools and features.iptables_error:
        raise Unavailable("iptables cannot program a nat table in a network namespace here "
                          f"({features.iptables_error}), which the scenario's Docker rules need "
                          "(CONFIG_NF_NAT and CONFIG_NF_TABLES or CONFIG_IP_NF_NAT)")
    for q in sorted(plan.needs_qdiscs - features.qdiscs):
        raise Unavailable(f"this kernel has no {q} qdisc ({KCONFIG.get(q, q)} is not set), which the replay "
                          "needs for the hosts' link rates")
