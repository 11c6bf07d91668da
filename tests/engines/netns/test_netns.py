"""The netns engine on the real kernel (needs root and iproute2; skipped with the reason otherwise).

* every bundled scenario the kernel here can build (long ones as reduced copies), replayed and
  compared with the DES through ``simnet run --engine des,netns``: exit 0, every exact counter equal;
* the ``--dry-run`` script, run by bash, builds what ``Plan.expected()`` says (``ip -json``);
* a failing plan step is named and leaves nothing; 50 runs interrupted at random moments by
  SIGINT or SIGTERM leave no namespace and no device with their prefix; ``simnet netns clean``
  removes a dead run's namespaces and nothing of a live one;
* without root or without iproute2: exit 3, one line, nothing created.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import simnet
from simnet.engines.netns.apply import ApplyError, apply_plan, ip_json, netns_list
from simnet.engines.netns.engine import plan_for
from simnet.engines.netns.lab import Lab, clean_stale
from simnet.engines.netns.plan import AddrAdd, build_plan
from simnet.engines.netns.preflight import probe_kernel

from conftest import SCENARIOS
from netnscheck import cli, dry_run_prefix, interrupt_runs, ours, replay_and_compare  # noqa: F401 (dry_run_prefix: a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ethtool") is None,
                                reason="the netns engine needs root, iproute2 and ethtool (CI runs as root)")


@pytest.mark.parametrize("name", ["quickstart", "fragmentation", "none", "two-networks", "host-vs-bridge"])
def test_replay_counts_what_the_model_counts(name, tmp_path):
    before = ours()
    out, rows = replay_and_compare(SCENARIOS / f"{name}.yaml", tmp_path)
    exact = [k for k, x in rows.items() if x["exact"] == "1" and x["a"] not in ("", "0")]
    assert len(exact) >= 15                                  # something was really compared
    assert any("/dev/" in k and k.endswith("tx_bytes") for k in exact)
    assert any(k.endswith("/Udp/InDatagrams") for k in exact)
    summary = json.loads((out / "netns" / "summary.json").read_text())
    assert summary["engine"] == "netns" and not summary["partial"]
    assert ours() == before                                  # nothing left behind
    if name == "fragmentation":
        assert rows["a/snmp/Ip/FragCreates"]["b"] == "500" and rows["b/snmp/Ip/ReasmOKs"]["b"] == "200"


def test_arp_cold_start_reduced(tmp_path):
    """arp-cold-start with shorter timers: 600 datagrams to nobody (3 rounds of a blocked sender), b
    STALE after 2-6 s instead of 15-45 s, the unicast probe 1 s after DELAY instead of 5 s."""
    text = (SCENARIOS / "arp-cold-start.yaml").read_text()
    text = text.replace("count: 4000", "count: 600").replace("interval: 1s, start: 60s", "interval: 200ms, start: 10s")
    text = text.replace("run: {until: 75s}", "run: {until: 14s}")
    text = text.replace("  a: {networks: [lan]}", "  a: {networks: [lan], sysctls: {net.ipv4.neigh.default.base_reachable_"
                        "time_ms: 4000, net.ipv4.neigh.default.delay_first_probe_time: 1}}")
    assert text.count("count: 600") == 1 and "start: 10s" in text and "until: 14s" in text
    p = tmp_path / "arp-cold-start-reduced.yaml"
    p.write_text(text)
    _out, rows = replay_and_compare(p, tmp_path)
    assert rows["a/arp/requests_sent"]["b"] == str(1 + 3 * 3 + 1)    # b; 3 rounds of 3 for .99; b's probe
    assert rows["b/arp/replies_sent"]["b"] == "2"
    assert rows["machine/arp/res_failed"]["a"] == "3"


def test_udp_tandem_reduced(tmp_path):
    text = (SCENARIOS / "udp-tandem.yaml").read_text().replace("count: 200000", "count: 3000")
    p = tmp_path / "udp-tandem-reduced.yaml"
    p.write_text(text)
    out, rows = replay_and_compare(p, tmp_path)
    notes = json.loads((out / "netns" / "netns.json").read_text())["notes"]
    assert sum("propagation delay" in n for n in notes) == 3         # no netem here: reported, not ignored
    assert rows["h4/snmp/Udp/InDatagrams"]["b"] == "3001"
    assert rows["h3/qdisc/eth1/sent_pkts"]["b"] == rows["h3/dev/eth1/tx_packets"]["b"]


@pytest.mark.parametrize("name", ["two-networks", "udp-tandem"])
def test_dry_run_script_builds_the_expected_topology(name, dry_run_prefix):
    r = cli("run", name, "--engine", "netns", "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = plan_for(simnet.compile_scenario(SCENARIOS / f"{name}.yaml"))
    assert all(k.startswith(f"{dry_run_prefix}-") for k in plan.netns.values())
    exp = plan.expected()
    assert set(plan.netns.values()).isdisjoint(netns_list()), "a previous run left the dry-run prefix behind"
    try:
        b = subprocess.run(["bash"], input=r.stdout, capture_output=True, text=True, timeout=120)
        assert b.returncode == 0, b.stderr
        for kns, want in exp.items():
            links = {e["ifname"]: e for e in ip_json("-n", kns, "-details", "link", "show")}
            addrs = {e["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", []))
                     for e in ip_json("-n", kns, "addr", "show")}
            assert set(links) == set(want["devices"])
            for ifname, d in want["devices"].items():
                e = links[ifname]
                kind = e.get("linkinfo", {}).get("info_kind")
                assert kind == {"veth": "veth", "nic": "veth", "bridge": "bridge", "loopback": None}[d["kind"]]
                assert e["mtu"] == d["mtu"] and e["address"] == d["mac"], ifname
                assert e.get("master") == d["master"], ifname
                assert "UP" in e["flags"], ifname
                assert addrs[ifname] == sorted(d["addrs"]), ifname
                if d["kind"] == "nic":
                    qs = json.loads(subprocess.run(["tc", "-n", kns, "-json", "qdisc", "show", "dev", ifname],
                                                   capture_output=True, text=True).stdout)
                    assert {q["kind"] for q in qs} == {"htb", "pfifo"} and e["txqlen"] == d["txqueuelen"]
            routes = ip_json("-n", kns, "route", "show")
            for rt in want["routes"]:
                assert any(x["dst"] == rt["dst"] and x.get("gateway") == rt["via"] for x in routes), rt
            v6 = subprocess.run(["ip", "netns", "exec", kns, "sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"],
                                capture_output=True, text=True).stdout.strip()
            assert v6 == "1"
    finally:
        for kns in plan.netns.values():
            subprocess.run(["ip", "netns", "del", kns], capture_output=True)


def test_a_failing_step_is_named_and_everything_is_removed():
    comp = simnet.compile_scenario(SCENARIOS / "quickstart.yaml")
    with Lab() as lab:
        plan = build_plan(comp.graph, lab.prefix)
        k = next(i for i, o in enumerate(plan.ops) if isinstance(o, AddrAdd))
        plan.ops.insert(k, AddrAdd(plan.netns["client"], "nosuchdev", "10.9.9.9/24"))
        with pytest.raises(ApplyError, match=rf"step {k + 1}/{len(plan.ops)} \(addr add 10.9.9.9/24 on nosuchdev"):
            apply_plan(plan, created=lab.netns, guard=lab.critical)
        assert not [n for n in netns_list() if n.startswith(lab.prefix)]


def test_interrupted_runs_leave_nothing(tmp_path):
    """50 runs of quickstart stopped at random moments (building, running, reading, cleaning)."""
    codes = interrupt_runs(["quickstart"] * 50, tmp_path, seed=5, sleep_s=(0.4, 2.2), timeout_s=30)
    assert codes.count(130) >= 10                    # most were really interrupted mid-way


def test_netns_clean_removes_dead_runs_only():
    stale = "sn0dead-x"                     # a run that died without its lock
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with Lab() as lab:
            live = lab.kname("y")
            lab.netns.append(live)
            subprocess.run(["ip", "netns", "add", live], check=True)
            removed = clean_stale()
            assert stale in removed["netns"] and lab.prefix in removed["live"]
            assert live in netns_list() and stale not in netns_list()
            r = cli("netns", "clean")
            assert r.returncode == 0 and f"left {lab.prefix}-*" in r.stdout
        assert live not in netns_list()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


def test_without_root_or_iproute2_nothing_is_created(tmp_path):
    before = ours()
    empty = tmp_path / "bin"
    empty.mkdir()
    r = cli("run", "quickstart", "--engine", "netns", "-o", str(tmp_path / "o"), env={**os.environ, "PATH": str(empty)})
    assert r.returncode == 3 and "`ip` (Debian/Ubuntu package iproute2)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # as a user without root: nobody, when this checkout is readable to nobody (setpriv), else
    # this interpreter with os.geteuid() answering nobody's uid (a checkout under a private
    # directory, as the newcomer check makes, cannot be imported by nobody)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    args = ["run", "quickstart", "--engine", "netns", "-o", str(tmp_path / "n")]
    if shutil.which("setpriv") and subprocess.run([*nobody, sys.executable, "-c", "import simnet.cli"],
                                                  capture_output=True, timeout=60).returncode == 0:
        argv = [*nobody, sys.executable, "-m", "simnet.cli", *args]
    else:
        argv = [sys.executable, "-c", "import os; os.geteuid = lambda: 65534; from simnet.cli import main; main()",
                *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "needs root" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "n").exists()
    assert ours() == before and not (tmp_path / "o").exists()


def test_probe_agrees_with_the_kernel():
    """What the probe says this kernel has, checked by trying each thing directly."""
    with Lab() as lab:
        feats = probe_kernel(lab, {"macvlan", "ipvlan", "vxlan", "dummy"}, {"tbf", "netem"})
        ns = lab.kname("check")
        lab.netns.append(ns)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"], check=True)
        for kind, pre, args in (("macvlan", ["link", "p0"], []), ("ipvlan", ["link", "p0"], []),
                                ("vxlan", [], ["id", "7", "dev", "p0", "dstport", "4789"]), ("dummy", [], [])):
            ok = subprocess.run(["ip", "-n", ns, "link", "add", *pre, "name", f"t{kind[:4]}", "type", kind, *args],
                                capture_output=True).returncode == 0
            assert (kind in feats.link_kinds) == ok, kind
        for q, args in (("netem", ["delay", "1ms"]), ("tbf", ["rate", "1mbit", "burst", "32kbit", "latency", "1s"])):
            ok = subprocess.run(["tc", "-n", ns, "qdisc", "replace", "dev", "lo", "root", q, *args],
                                capture_output=True).returncode == 0
            assert (q in feats.qdiscs) == ok, q
        assert "net.ipv4.ip_forward" in feats.sysctls and "net.core.rmem_default" not in feats.sysctls
    assert not [n for n in netns_list() if n.startswith(lab.prefix)]
