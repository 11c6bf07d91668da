"""pcap captures (simnet.results.pcap) read by tshark with checksum validation and IP reassembly on:
no expert warnings or malformed frames, fragments reassemble, ICMP errors quote the packet."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from pcapcheck import (_SEV_WARN, TSHARK_SCENARIOS, check_file, needs_tshark, runs_factory, tshark_rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    return runs_factory(tmp_path_factory.mktemp("pcap"))


@needs_tshark
@pytest.mark.parametrize("scenario", TSHARK_SCENARIOS)
def test_tshark_finds_nothing_wrong(runs, scenario):
    run = runs(scenario)
    frames = 0
    for node in sorted(run.devices):
        n_recs = len(run.pcap(node).recs)
        if n_recs == 0:
            continue
        rows = tshark_rows(run.path(node))   # IP reassembly on (tshark's default)
        assert len(rows) == n_recs, f"{node}: tshark read {len(rows)} of {n_recs} frames"
        for r in rows:
            where = f"{scenario}/{run.path(node).name} frame {r['frame.number'][0]}"
            assert not r["_ws.malformed"], f"{where}: malformed {r['_ws.expert.message']}"
            assert "malformed" not in r["frame.protocols"][0], where
            sev = [int(s, 0) for s in r["_ws.expert.severity"]]
            assert all(s < _SEV_WARN for s in sev), f"{where}: {r['_ws.expert.message']}"
            # 1 = good; every IP header (also those quoted in ICMP errors) is checked
            assert all(s == "1" for s in r["ip.checksum.status"]), f"{where}: IP checksum {r['ip.checksum.status']}"
            assert all(s == "1" for s in r["icmp.checksum.status"]), f"{where}: ICMP checksum"
            udp = r["udp.checksum.status"]
            if r["icmp.type"]:
                # a UDP header quoted in an ICMP error: tshark can only verify a complete datagram
                assert all(s in ("1", "2") for s in udp), where
            else:
                assert all(s == "1" for s in udp), f"{where}: UDP checksum {udp}"
        frames += len(rows)
    assert frames > 0


@needs_tshark
def test_tshark_reassembles_the_fragmented_datagrams(runs):
    run = runs("fragmentation")
    veths = sorted(n for n, d in run.devices.items() if d["kind"] == "veth")
    assert len(veths) == 4
    for node in veths:
        path = run.path(node)
        whole = tshark_rows(path, "-o", "ip.defragment:TRUE", display="udp")
        assert Counter(int(r["udp.length"][0]) for r in whole) == Counter({1480: 100, 1481: 100, 4008: 100})
        assert all(r["udp.checksum.status"] == ["1"] for r in whole), "reassembled UDP checksum"
        # without reassembly only the unfragmented datagrams decode as UDP
        plain = tshark_rows(path, "-o", "ip.defragment:FALSE", display="udp && ip.flags.mf == 0")
        assert len(plain) == 100
        frags = tshark_rows(path, "-o", "ip.defragment:FALSE", display="ip.flags.mf == 1 || ip.frag_offset > 0")
        assert len(frags) == 100 * 2 + 100 * 3


@needs_tshark
def test_tshark_decodes_icmp_errors_with_the_quoted_packet(runs):
    run = runs("icmp-errors")
    web = run.devices["web:eth0"]
    web_ip = str(ipaddress.IPv4Interface(web["addrs"][0]).ip)
    db_ip = str(ipaddress.IPv4Interface(run.devices["db:eth0"]["addrs"][0]).ip)
    gw_ip = str(ipaddress.IPv4Interface(run.devices["host:br-front"]["addrs"][0]).ip)
    rows = tshark_rows(run.path("web:eth0"), display="icmp")
    by = Counter()
    for r in rows:
        where = f"web-eth0.pcap frame {r['frame.number'][0]}"
        assert not r["_ws.malformed"], where
        assert r["frame.protocols"][0].endswith("ip:icmp:ip:udp:data") or \
            r["frame.protocols"][0].endswith("ip:icmp:ip:udp"), f"{where}: {r['frame.protocols']}"
        # outer header, then the quoted one
        assert len(r["ip.src"]) == 2 and r["ip.dst"][0] == web_ip, where
        assert (r["ip.src"][1], r["ip.dst"][1]) == (web_ip, db_ip), f"{where}: quoted {r['ip.src']} {r['ip.dst']}"
        assert r["ip.checksum.status"] == ["1", "1"], where
        outer_len, inner_len = int(r["ip.len"][0]), int(r["ip.len"][1])
        assert outer_len == 28 + min(inner_len, 548), where
        t, c = int(r["icmp.type"][0]), int(r["icmp.code"][0])
        dport = int(r["udp.dstport"][0])
        if (t, c) == (3, 3):
            assert r["ip.src"][0] == db_ip, where
            assert dport in (9999, 9998), where
            assert inner_len == {9999: 20 + 8 + 101, 9998: 20 + 8 + 3000}[dport], where
            assert int(r["udp.length"][0]) == inner_len - 20, where
        else:
            assert (t, c) == (3, 4), where
            assert r["ip.src"][0] == gw_ip, f"{where}: frag-needed from {r['ip.src'][0]}"
            assert r["icmp.mtu"] == ["1000"], where
            assert dport == 9000 and inner_len == 20 + 8 + 1400, where
        by[(t, c, dport)] += 1
    # every datagram to a closed port earns an error (within the rate limit's burst of 6); one
    # "fragmentation needed" for the first DF datagram, after which web fragments for MTU 1000
    assert by == Counter({(3, 3, 9999): 3, (3, 3, 9998): 2, (3, 4, 9000): 1}), by
    ic = run.counters
    assert sum(by.values()) == ic["web"]["snmp"]["Icmp"]["InDestUnreachs"]
    assert ic["db"]["snmp"]["Icmp"]["OutDestUnreachs"] == 5 and ic["host"]["snmp"]["Icmp"]["OutDestUnreachs"] == 1
    # and the same errors decode on db's side and through the bridge
    assert len(tshark_rows(run.path("db:eth0"), display="icmp.type == 3 && icmp.code == 3")) == 5
    st = check_file(run, "web:eth0")
    assert st.icmp == Counter({(3, 3): 5, (3, 4): 1})
    # after the error, web fragments for the path MTU: 1428 = 996 + 452 bytes of IP
    assert st.reassembled[1408] == 3
