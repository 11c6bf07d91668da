"""The scenario file format: these pydantic models are its only definition.

``simnet schema`` prints the JSON Schema generated from them. Quantities are strings with
units, parsed once here (rates in tc's spelling, ``kbps``/``mbps`` refused as ambiguous;
times; sizes). Every model forbids unknown keys. The shape follows compose files: ``hosts``
(machines, each a root network namespace), ``links`` (the underlay between hosts' NICs),
``networks`` (``docker network create``), ``containers`` (compose services), ``workloads``,
``sysctls`` and ``run``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema

from simnet.units import UnitError, parse_rate, parse_size, parse_time

__all__ = [
    "Scenario", "HostSpec", "NicSpec", "RouteSpec", "DaemonSpec", "LinkSpec", "SwitchSpec", "NetworkSpec",
    "AttachSpec", "ContainerSpec", "OffloadSpec", "UdpWorkload", "UdpRrWorkload", "TcpBulkWorkload", "TcpRrWorkload",
    "TcpStreamWorkload", "Workload", "RunSpec", "PREDEFINED_NETWORKS",
    "RENAMED_KEYS",
]

PREDEFINED_NETWORKS = ("bridge", "host", "none")   # `docker network ls` on a fresh daemon


def _unit(parser: Any, what: str) -> Any:
    def conv(v: Any) -> Any:
        try:
            out = parser(v)
        except UnitError as e:
            raise ValueError(str(e)) from None
        if out < 0:
            raise ValueError(f"{what} must not be negative: {v!r}")
        return out
    return conv


Rate = Annotated[float, BeforeValidator(_unit(parse_rate, "rate")),
                 WithJsonSchema({"type": "string", "pattern": r"^[0-9.]+\s*(bit|kbit|mbit|gbit|tbit)?$",
                                 "examples": ["10gbit", "100mbit"], "description": "bit rate, tc spelling"})]
Time = Annotated[float, BeforeValidator(_unit(parse_time, "time")),
                 WithJsonSchema({"type": "string", "pattern": r"^[0-9.]+\s*(ns|us|ms|s|min)?$",
                                 "examples": ["50us", "2ms", "1s"], "description": "duration"})]
Size = Annotated[int, BeforeValidator(_unit(parse_size, "size")),
                 WithJsonSchema({"oneOf": [{"type": "integer", "minimum": 0},
                                           {"type": "string", "pattern": r"^[0-9.]+\s*([kKmMgG]i?[bB]?|[bB])?$"}],
                                 "examples": [1472, "64KiB", "10MB"], "description": "bytes"})]


def _net(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return ipaddress.IPv4Network(v, strict=True)
        except ValueError:
            pass
        try:
            net = ipaddress.IPv4Network(v, strict=False)
        except ValueError:
            raise ValueError(f"bad IPv4 subnet {v!r} (expected address/prefix, e.g. 172.18.0.0/16)") from None
        raise ValueError(f"subnet {v!r} has host bits set (did you mean {net}?)")
    return v


def _iface(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return ipaddress.IPv4Interface(v)
        except ValueError:
            raise ValueError(f"bad IPv4 address/prefix {v!r} (expected e.g. 10.0.0.1/24)") from None
    return v


def _addr(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"bad IPv4 address {v!r} (expected e.g. 172.18.0.10)") from None
    return v


Subnet = Annotated[ipaddress.IPv4Network, BeforeValidator(_net),
                   WithJsonSchema({"type": "string", "format": "ipv4-cidr", "examples": ["172.18.0.0/16"]})]
Addr = Annotated[ipaddress.IPv4Address, BeforeValidator(_addr),
                 WithJsonSchema({"type": "string", "format": "ipv4", "examples": ["172.18.0.10"]})]
Mtu = Annotated[int, Field(ge=68, le=65535, description="bytes; IPv4 needs at least 68")]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", max_length=63)]
IfName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]+$", max_length=15)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _fraction(v: Any) -> Any:
    if isinstance(v, str):
        t = v.strip()
        try:
            return float(t[:-1]) / 100 if t.endswith("%") else float(t)
        except ValueError:
            raise ValueError(f"bad probability {v!r} (expected e.g. 0.01 or 1%)") from None
    return v


Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0.0, le=1.0),
                     WithJsonSchema({"oneOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                               {"type": "string", "pattern": r"^[0-9.]+\s*%$"}],
                                     "examples": [0.01, "1%"], "description": "probability"})]


class OffloadSpec(_Strict):
    """ethtool -K: offload features of a host's or container's interfaces (unset: the default)."""

    tso: bool | None = Field(None, description="TCP segmentation offload (default on); off: segmented in "
                                               "software (GSO) before the device")
    gro: bool | None = Field(None, description="generic receive offload on physical NICs (default on)")


class NicSpec(_Strict):
    """A physical NIC. Unset fields fall back to the host's ``nic:`` and then to Linux's defaults."""

    rate: Rate | None = Field(None, description="line rate (default 10gbit)")
    mtu: Mtu | None = Field(None, description="interface MTU (default 1500, ETH_DATA_LEN)")
    txqueuelen: Annotated[int, Field(ge=1)] | None = Field(None, description="pfifo_fast limit (default 1000)")
    tx_ring: Annotated[int, Field(ge=1)] | None = Field(None, description="driver TX ring descriptors (default 256)")
    address: Annotated[ipaddress.IPv4Interface, BeforeValidator(_iface),
                       WithJsonSchema({"type": "string", "examples": ["10.0.0.1/24"]})] | None = Field(
        None, description="address/prefix on this NIC (default: from its link's subnet)")


class RouteSpec(_Strict):
    """A static route (``ip route add DST via VIA [dev DEV]``)."""

    dst: Annotated[str, Field(description="destination prefix or 'default'")]
    via: Addr | None = None
    dev: IfName | None = None


class DaemonSpec(_Strict):
    """dockerd settings of one host that change the data path."""

    iptables: bool = Field(True, description="Docker manages iptables (isolation between bridge networks)")
    ip_forward: bool = Field(True, description="Docker enables net.ipv4.ip_forward")
    userland_proxy: bool = Field(True, description="docker-proxy relays the host's own (127.0.0.1) and hairpin "
                                                   "traffic to published ports (dockerd --userland-proxy)")


class HostSpec(_Strict):
    """A machine: a root network namespace with CPUs and physical NICs."""

    cpus: Annotated[int, Field(ge=1, le=1024)] = 2
    nic: NicSpec = NicSpec()
    nics: dict[IfName, NicSpec] = Field(default_factory=dict)
    hostname: Name | None = None
    sysctls: dict[str, int | str] = Field(default_factory=dict)
    routes: list[RouteSpec] = Field(default_factory=list)
    daemon: DaemonSpec = DaemonSpec()
    offloads: OffloadSpec = Field(OffloadSpec(), description="offloads of every interface of the host's own "
                                                             "namespace and of its bridges and host-side veths")


class SwitchSpec(_Strict):
    """An external Ethernet switch: hosts cabled to it (``links:``) share one broadcast domain."""

    subnet: Subnet | None = Field(None, description="addresses of the hosts' NICs on it (default 10.0.<n>.0/24)")
    hairpin: bool = Field(False, description="reflective relay (802.1Qbg) on every port: frames may leave through "
                                             "the port they came in on, as macvlan/ipvlan vepa mode needs")
    ageing: Time = Field(300.0, description="MAC table ageing time")
    queue: Annotated[int, Field(ge=1)] = Field(1000, description="egress queue per port, frames")


class LinkSpec(_Strict):
    """A cable between two hosts' NICs, or a host's NIC and a switch (``host``, ``host:ifname`` or a
    switch at each end), with the impairments tbf and netem put on a real link."""

    endpoints: Annotated[list[str], Field(min_length=2, max_length=2)]
    delay: Time = Field(0.0, description="one-way propagation delay")
    subnet: Subnet | None = Field(None, description="addresses for the two NICs (default 10.0.<n>.0/24)")
    rate: Rate | None = Field(None, description="link rate in both directions (the NICs send at the lower of it "
                                                "and their own rate)")
    queue: Annotated[int, Field(ge=1)] | None = Field(None, description="frames that may wait at each end "
                                                                        "(a tbf/pfifo limit; the driver ring "
                                                                        "holds one)")
    jitter: Time = Field(0.0, description="each frame's delay is drawn uniformly from delay ± jitter (a seeded "
                                          "stream per link end, floored at 0), frames keep their order (netem "
                                          "delay with jitter and a pfifo child)")
    loss: Fraction = Field(0.0, description="probability that a frame is lost, each direction, from a seeded "
                                            "stream per link end")
    drop: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list,
                                                     description="frames to lose: their numbers, from 1, among "
                                                                 "the frames endpoints[0] sends on this link")
    drop_back: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list,
                                                          description="likewise for frames endpoints[1] sends")


class NetworkSpec(_Strict):
    """``docker network create``: a driver and its settings."""

    driver: str = "bridge"
    subnet: Subnet | None = None
    gateway: Addr | None = None
    mtu: Mtu | None = None
    options: dict[str, str] = Field(default_factory=dict)
    internal: bool = False


class AttachSpec(_Strict):
    """A container's endpoint on one network (compose ``networks: {net: {...}}``)."""

    ipv4_address: Addr | None = None
    aliases: list[str] = Field(default_factory=list)


class ContainerSpec(_Strict):
    """A container (compose service): where it runs and which networks it joins."""

    host: Name | None = None
    networks: list[str] | dict[str, AttachSpec | None] | None = None
    hostname: Name | None = None
    sysctls: dict[str, int | str] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list, description="published ports, Docker's syntax: "
                             "[hostip:]hostport:containerport[/udp|tcp]")
    links: list[str] = Field(default_factory=list, description="legacy --link: name or name:alias (an /etc/hosts "
                                                               "entry in this container)")
    offloads: OffloadSpec = Field(OffloadSpec(), description="offloads of the container's own interfaces")

    def attachments(self) -> list[tuple[str, AttachSpec]]:
        """(network, endpoint settings) in declaration order; the default bridge if none."""
        if self.networks is None:
            return [("bridge", AttachSpec())]
        if isinstance(self.networks, list):
            return [(n, AttachSpec()) for n in self.networks]
        return [(n, a or AttachSpec()) for n, a in self.networks.items()]


class _WorkloadBase(_Strict):
    name: Name | None = Field(None, description="flow name in results (default: <app><index>)")
    from_: str = Field(alias="from", description="container or host that runs the client")
    to: str = Field(description="container, host or IPv4 address of the server")
    port: Port
    start: Time = 0.0
    listen: bool = Field(True, description="start the server (sink) on the target; false: nobody listens and the "
                                           "target answers ICMP port unreachable")


class UdpWorkload(_WorkloadBase):
    """One-way UDP datagrams (iperf3 -u like): ``count`` datagrams of ``payload`` bytes."""

    app: Literal["udp"]
    count: Annotated[int, Field(ge=0, strict=True)]
    payload: Annotated[Size, Field(ge=0, le=65507)] = 1472
    interval: Time | None = Field(None, description="time between datagrams")
    rate: Rate | None = Field(None, description="application payload bit rate (sets the interval)")
    arrival: Literal["constant", "poisson"] = "constant"
    sport: Port | None = None
    sndbuf: Size | None = Field(None, description="SO_SNDBUF (doubled by the kernel)")
    rcvbuf: Size | None = Field(None, description="SO_RCVBUF (doubled by the kernel)")

    def interval_s(self) -> float:
        if self.interval is not None:
            return self.interval
        if self.rate is not None:
            return self.payload * 8 / self.rate
        return 0.0


class UdpRrWorkload(_WorkloadBase):
    """UDP request/response (netperf UDP_RR): ``count`` transactions, one at a time."""

    app: Literal["udp_rr"]
    count: Annotated[int, Field(ge=0, strict=True)]
    request: Annotated[Size, Field(ge=0, le=65507)] = 1
    response: Annotated[Size, Field(ge=0, le=65507)] = 1
    interval: Time = Field(0.0, description="think time between transactions")
    timeout: Time = Field(1.0, description="a transaction without an answer for this long is lost")
    sport: Port | None = None


class _TcpWorkload(_WorkloadBase):
    """Socket options every TCP workload takes."""

    nodelay: bool = Field(False, description="TCP_NODELAY on both ends (Nagle off)")
    cork: bool = Field(False, description="TCP_CORK on the sending side (only full segments until close)")
    sndbuf: Size | None = Field(None, description="SO_SNDBUF of the sending side (doubled by the kernel; turns "
                                                  "send-buffer autotuning off)")
    rcvbuf: Size | None = Field(None, description="SO_RCVBUF of the receiving side (doubled by the kernel; turns "
                                                  "receive-buffer autotuning off)")
    congestion: Literal["cubic", "reno"] | None = Field(
        None, description="TCP_CONGESTION of both ends (default: net.ipv4.tcp_congestion_control)")


class TcpBulkWorkload(_TcpWorkload):
    """A bulk transfer (a file copy): connect, write ``size`` bytes, close."""

    app: Literal["tcp_bulk"]
    size: Annotated[Size, Field(gt=0)]
    write: Annotated[Size, Field(gt=0)] = Field(131072, description="bytes per write() (iperf3's 128 KiB)")
    read: Annotated[Size, Field(gt=0)] = Field(131072, description="bytes per recv() at the server")


class TcpStreamWorkload(_TcpWorkload):
    """iperf3 -t: write for ``duration``; per-interval throughput at the receiver."""

    app: Literal["tcp_stream"]
    duration: Annotated[Time, Field(gt=0)]
    write: Annotated[Size, Field(gt=0)] = Field(131072, description="bytes per write()")
    read: Annotated[Size, Field(gt=0)] = Field(131072, description="bytes per recv() at the server")
    report: Annotated[Time, Field(gt=0)] = Field(1.0, description="throughput reporting interval")


class TcpRrWorkload(_TcpWorkload):
    """TCP request/response on one connection (netperf TCP_RR): ``count`` transactions."""

    app: Literal["tcp_rr"]
    count: Annotated[int, Field(ge=0, strict=True)]
    request: Annotated[Size, Field(ge=1)] = 1
    response: Annotated[Size, Field(ge=1)] = 1
    writes: Annotated[int, Field(ge=1, strict=True)] = Field(1, description="write() calls per request")
    interval: Time = Field(0.0, description="think time between transactions")


Workload = Annotated[Union[UdpWorkload, UdpRrWorkload, TcpBulkWorkload, TcpStreamWorkload, TcpRrWorkload],
                     Field(discriminator="app")]

WORKLOAD_APPS = ("udp", "udp_rr", "tcp_bulk", "tcp_stream", "tcp_rr")


class RunSpec(_Strict):
    """How to run: until when, on which engine."""

    until: Time | None = Field(None, description="simulated time to stop at (default: when every workload is done "
                                                  "and no packet is in flight)")
    engine: Literal["des", "netns", "des,netns"] = Field(
        "des", description="des (simulation), netns (replay on real namespaces, needs root) or des,netns (both, "
                           "compared)")
    sample: Annotated[Time, Field(gt=0)] = Field(0.001, description="interval of the TCP timeseries samples "
                                                                   "(timeseries.csv)")


class Scenario(_Strict):
    """A simnet scenario."""

    name: Name
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 1
    hosts: dict[Name, HostSpec] = Field(default_factory=lambda: {"host": HostSpec()})
    switches: dict[Name, SwitchSpec] = Field(default_factory=dict)
    links: list[LinkSpec] = Field(default_factory=list)
    networks: dict[Name, NetworkSpec] = Field(default_factory=dict)
    containers: dict[Name, ContainerSpec] = Field(default_factory=dict)
    workloads: list[Workload] = Field(default_factory=list)
    sysctls: dict[str, int | str] = Field(default_factory=dict)
    run: RunSpec = RunSpec()
    _source: Any = PrivateAttr(None)      # loader.SourceMap: where each key was written


# Keys people may write from other tools or older simnet drafts: the error names the new key.
RENAMED_KEYS: dict[str, str] = {
    "workload": "workloads",
    "docker": "networks and containers are top-level keys",
    "backend": "engine",
    "network_mode": "networks: [host] (or [none])",
    "services": "containers",
    "defaults": "hosts.<name>.nic for NIC defaults",
    "seed": "the top-level key seed",        # only reached when written under run:
}
