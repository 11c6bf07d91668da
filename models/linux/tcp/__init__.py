"""TCP, Linux 6.x: sockets and buffers (sock.py), ownership and the backlog (own.py), output
(output.py), input and ACK processing (input.py), receiving data, the ACK policy and the
receive window (rcv.py), loss recovery and timers (recovery.py, timer.py), the queues' skbs
(queue.py), congestion control as pure policy (cong.py),
the per-namespace tables and MIB (table.py), segmentation offloads (offload.py) and the
TCP_INFO view (info.py). Each module's docstring names the kernel functions it models, its
scope and limitations, and the tests that check it.
"""

from .sock import Mark, TcpSock

__all__ = ["TcpSock", "Mark"]
