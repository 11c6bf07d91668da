"""Agents: small programs the netns engine starts inside namespaces (``ip netns exec``).

Each agent is this package run by the engine's own interpreter (``python -m
simnet.engines.netns.agents ROLE``) and talks to the engine in JSON lines on stdin/stdout:

1. engine → agent: the configuration;
2. agent → engine: ``{"ready": ...}`` once its sockets exist;
3. engine → agent: ``{"go": t0}``, a CLOCK_MONOTONIC instant shared by every agent (the
   scenario's time zero);
4. agent → engine: ``{"done": ...}`` when a client has finished its work;
5. engine → agent: ``{"stop": true}`` (receivers keep reading until then);
6. agent → engine: ``{"result": ...}``, and it exits.

Roles (:data:`ROLES`): ``ns`` (the namespace agent: ARP frame counts and the kernel's
counters) and, per workload ``app``, a ``client`` and a ``server``: ``udp`` (paced sender /
sink), ``udp_rr`` (request/response client / server), ``tcp_bulk``, ``tcp_stream`` (writer /
sink) and ``tcp_rr`` (agents/tcp.py); ``docker_proxy.udp`` and ``docker_proxy.tcp``
(agents/proxy.py, agents/tcp_proxy.py), Docker's userland proxy for a published UDP or TCP port. A new workload kind adds its two classes to
:data:`ROLES`. Every agent is bounded: a hard deadline in its configuration ends
it whatever happens, and it dies with the engine (PR_SET_PDEATHSIG).

Standard library only (agents start in a fraction of a second).
"""

from __future__ import annotations

__all__ = ["ROLES"]

# role name -> "module:Class" (imported on demand)
ROLES = {
    "ns": "nsagent:NsAgent",
    "udp.client": "udp:UdpSender",
    "udp.server": "udp:UdpSink",
    "udp_rr.client": "udp:UdpRrClient",
    "udp_rr.server": "udp:UdpRrServer",
    "docker_proxy.udp": "proxy:UdpProxyAgent",
    "docker_proxy.tcp": "tcp_proxy:TcpProxyAgent",
    "tcp_bulk.client": "tcp:TcpBulkClient",
    "tcp_bulk.server": "tcp:TcpSink",
    "tcp_stream.client": "tcp:TcpStreamClient",
    "tcp_stream.server": "tcp:TcpSink",
    "tcp_rr.client": "tcp:TcpRrClient",
    "tcp_rr.server": "tcp:TcpRrServer",
}
