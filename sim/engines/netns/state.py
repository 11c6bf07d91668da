"""What the engine reads from the kernel after a replay, besides the namespace agents' counters.

* NICs (the veth ends standing in for them): ``promiscuity`` (``ip -d -json link``) and the
  unicast address list the macvlan children put there (``bridge -json fdb show dev NIC``:
  the ``self permanent`` unicast entries, which is how iproute2 shows ``dev->uc``);
* external switches: the bridge's learnt FDB entries (MAC → port);
* iptables: each rule's packet counter by the comment the plan gave it (``iptables-save -c``):
  the nat table sees only the first packet of a connection, so a nat rule's counter is the
  number of connections it translated — the model's ``nat_hits``.

Validation: tests/engines/netns/test_plan_drivers.py (the parsers), test_replay_drivers.py (as
root).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .apply import ip_json, run
from .ops import Plan

__all__ = ["read_l2_state", "read_rule_counters", "parse_rule_counters", "uc_addresses"]

_COUNTED = re.compile(r"^\[(\d+):(\d+)\] -A ")


def uc_addresses(fdb: list[dict[str, Any]]) -> list[str]:
    """The device's secondary unicast addresses from ``bridge -json fdb show dev DEV``."""
    out = []
    for e in fdb:
        mac = e.get("mac", "")
        if "self" in e.get("flags", []) and e.get("state") == "permanent" and mac and not int(mac[:2], 16) & 1:
            out.append(mac.lower())
    return sorted(out)


def read_l2_state(plan: Plan) -> dict[str, Any]:
    """``{"nic": {ns: {ifname: {...}}}, "switch_fdb": {switch: {mac: port}}}`` from the kernel."""
    nic: dict[str, dict[str, dict[str, Any]]] = {}
    for ns, devs in plan.devices.items():
        kns = plan.netns[ns]
        for ifname, d in devs.items():
            if d["kind"] != "nic":
                continue
            link = ip_json("-n", kns, "-d", "link", "show", "dev", ifname)
            fdb = ip_json_bridge(kns, "fdb", "show", "dev", ifname)
            nic.setdefault(ns, {})[ifname] = {"promiscuity": int(link[0].get("promiscuity", 0)) if link else 0,
                                              "uc": uc_addresses(fdb)}
    switch_fdb: dict[str, dict[str, str]] = {}
    for sw, info in plan.switches.items():
        entries = ip_json_bridge(plan.netns[sw], "fdb", "show", "br", info["bridge"])
        switch_fdb[sw] = {e["mac"].replace(":", ""): e["ifname"] for e in entries
                          if e.get("ifname") in info["ports"] and "permanent" not in (e.get("state") or "")
                          and "self" not in e.get("flags", [])}
    return {"nic": nic, "switch_fdb": dict(sorted((k, dict(sorted(v.items()))) for k, v in switch_fdb.items()))}


def ip_json_bridge(kns: str, *args: str) -> list[dict[str, Any]]:
    """``bridge -n NS -json ARGS``, parsed."""
    import json

    out = run(["bridge", "-n", kns, "-json", *args]).stdout.strip()
    return json.loads(out) if out else []


def parse_rule_counters(text: str) -> dict[str, int]:
    """``iptables-save -c`` → {comment: packets} for the rules that carry a comment."""
    out: dict[str, int] = {}
    for ln in text.splitlines():
        m = _COUNTED.match(ln)
        if not m or "--comment" not in ln:
            continue
        tok = shlex.split(ln)
        name = tok[tok.index("--comment") + 1]
        out[name] = out.get(name, 0) + int(m.group(1))
    return out


def read_rule_counters(plan: Plan) -> dict[str, dict[str, int]]:
    """Per graph namespace with Docker rules: each named rule's packet count."""
    out = {}
    for ns, named in plan.rules.items():
        if not named:
            continue
        cp = run(["ip", "netns", "exec", plan.netns[ns], "iptables-save", "-c"])
        got = parse_rule_counters(cp.stdout)
        out[ns] = {name: got.get(name, 0) for name in named}
    return out
