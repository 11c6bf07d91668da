"""The namespace agent: counts ARP frames per layer-3 device and reads the namespace's counters.

One runs in every namespace of a replay, started before the workloads. It opens an
``AF_PACKET`` socket on each device it is given, with a classic BPF filter that accepts only
ARP frames (so the data path is not slowed by copies to the tap), counts what it sees by
direction and ARP operation, and on the veth ends that stand in for physical NICs also the
received frames shorter than 60 bytes (a NIC receives them padded to ETH_ZLEN and counts the
padding; a veth does not), answers ``status`` (fragments in reassembly) while the engine
waits for the network to go quiet, and on ``stop`` reports its counts and the kernel's
counters (see counters.py) — at ready (the baseline) and at the end — with the
connection-tracking table when the namespace has one.

A NIC that is the parent of macvlan children (``nic_filter``) needs two more corrections to
count what a physical NIC counts:

* a physical NIC's unicast filter refuses a frame for a MAC that is neither its own nor a
  child's (unless it is promiscuous) before the driver counts it; the veth stand-in has no
  filter and counts it, and the stack drops it (``OTHERHOST``). The agent counts such frames
  (the tap sees them with ``PACKET_OTHERHOST``) as ``filtered``: the model's
  ``mac_filter_drops``, taken off the device's received counters by translate.py;
* a bridge-mode child's unicast to a bridge-mode sibling enters the parent's receive path
  (``dev_forward_skb``: taps see it) without being counted by the parent, so it is neither
  padded nor filtered; the children's own ARP frames leaving through the parent are not the
  parent namespace's ARP, nor are a private child's broadcasts that come back from the wire
  (macvlan hands them to that child and consumes them; the tap saw them first).
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
from pathlib import Path
from typing import Any

from ..counters import frag_inuse, parse_ct_table, read_namespace
from .base import Agent, now

__all__ = ["NsAgent", "ARP_FILTER"]

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
PACKET_OTHERHOST = 3
ETH_ZLEN = 60
# ldh [12]; jeq #0x806 jt 0 jf 1; ret #0x40000; ret #0
ARP_FILTER = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x0806), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]
# ARP, any frame shorter than ETH_ZLEN, or one for another host: ldh [12]; jeq #0x806 → accept; ld len;
# jlt #60 → accept; ldb [pkttype] (SKF_AD_OFF + SKF_AD_PKTTYPE); jeq #PACKET_OTHERHOST → accept; drop
ARP_OR_SHORT_FILTER = [(0x28, 0, 0, 12), (0x15, 4, 0, 0x0806), (0x80, 0, 0, 0), (0x35, 0, 2, ETH_ZLEN),
                       (0x30, 0, 0, 0xFFFFF004), (0x15, 0, 1, PACKET_OTHERHOST), (0x06, 0, 0, 0x40000),
                       (0x06, 0, 0, 0)]


def _attach_filter(s: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(buf))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class NsAgent(Agent):
    """Config: ``devices`` (layer-3 devices: ARP frames counted) and ``nics`` (devices standing in
    for physical NICs: received frames shorter than ETH_ZLEN counted, since a NIC would have
    received them padded)."""

    def setup(self) -> dict[str, Any]:
        self.socks: dict[int, tuple[str, socket.socket]] = {}
        arp_devs = list(self.cfg.get("devices", []))
        nics = list(self.cfg.get("nics", []))
        for dev in dict.fromkeys(arp_devs + nics):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: nothing queued yet
            _attach_filter(s, ARP_OR_SHORT_FILTER if dev in nics else ARP_FILTER)
            s.bind((dev, ETH_P_ALL))
            s.setblocking(False)
            self.socks[s.fileno()] = (dev, s)
        self.count_arp = set(arp_devs)
        self.arp = {dev: {"requests_sent": 0, "replies_sent": 0, "requests_received": 0, "replies_received": 0}
                    for dev in arp_devs}
        self.short_rx = {dev: {"frames": 0, "pad_bytes": 0} for dev in nics}
        filt = self.cfg.get("nic_filter", {})
        self.uc = {dev: {bytes.fromhex(m.replace(":", "")) for m in f["uc"]} for dev, f in filt.items()}
        self.internal = {dev: {bytes.fromhex(m.replace(":", "")) for m in f["internal"]} for dev, f in filt.items()}
        self.consumed = {dev: {bytes.fromhex(m.replace(":", "")) for m in f.get("consumed", [])}
                         for dev, f in filt.items()}
        self.filters = {dev for dev, f in filt.items() if f["filter"]}
        self.filtered = {dev: {"frames": 0, "bytes": 0} for dev in filt}
        self.buf = bytearray(128)
        self.baseline = read_namespace()
        return {}

    def _drain(self, fds: list[int]) -> None:
        buf = self.buf
        for fd in fds:
            dev, s = self.socks[fd]
            uc = self.uc.get(dev, ())
            while True:
                try:
                    n, addr = s.recvfrom_into(buf, len(buf), socket.MSG_TRUNC)   # n: the frame's real length
                except (BlockingIOError, InterruptedError):
                    break
                data = bytes(buf[:min(n, len(buf))])
                pkttype = addr[2]
                if uc and pkttype != PACKET_OUTGOING:
                    if data[:6] in self.internal[dev] and data[6:12] in self.internal[dev]:
                        continue             # bridge mode, sibling to sibling: not received by the parent
                    if pkttype == PACKET_OTHERHOST and dev in self.filters and data[:6] not in uc:
                        self.filtered[dev]["frames"] += 1
                        self.filtered[dev]["bytes"] += n
                        continue
                if dev in self.short_rx and pkttype != PACKET_OUTGOING and n < ETH_ZLEN:
                    self.short_rx[dev]["frames"] += 1
                    self.short_rx[dev]["pad_bytes"] += ETH_ZLEN - n
                if dev not in self.count_arp or len(data) < 22 or data[12:14] != b"\x08\x06":
                    continue
                if pkttype == PACKET_OUTGOING and data[6:12] in uc:
                    continue                 # a macvlan child's ARP, sent through its parent
                if uc and data[0] & 1 and data[6:12] in self.consumed[dev]:
                    continue                 # a private child's broadcast back from the wire: to it alone
                op = int.from_bytes(data[20:22], "big")
                c = self.arp[dev]
                if pkttype == PACKET_OUTGOING:
                    key = "requests_sent" if op == 1 else "replies_sent" if op == 2 else None
                elif pkttype == PACKET_OTHERHOST:
                    key = None
                else:
                    key = "requests_received" if op == 1 else "replies_received" if op == 2 else None
                if key is not None:
                    c[key] += 1

    def _wait(self, timeout_s: float) -> None:
        fds = list(self.socks)
        r, _w, _x = select.select(fds + [0], [], [], timeout_s)
        self._drain([fd for fd in r if fd != 0])
        if 0 in r:
            self._wait_msg(0.0)

    def run(self, t0: float) -> None:
        return None

    def idle(self) -> None:
        self._wait(max(0.0, min(0.5, self.deadline - now())))

    def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("status"):
            self._drain(list(self.socks))
            self.send(status={"frag_inuse": frag_inuse(Path("/proc/net/sockstat").read_text()), "arp": self.arp})

    def finish(self) -> dict[str, Any]:
        self._drain(list(self.socks))
        out = {"arp": self.arp, "short_rx": self.short_rx, "filtered": self.filtered, "baseline": self.baseline,
               "final": read_namespace()}
        table = Path("/proc/net/nf_conntrack")
        if "conntrack" in out["final"] and table.exists():
            out["conntrack_table"] = parse_ct_table(table.read_text())
        return out
