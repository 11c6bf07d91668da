"""TCP constants: header flags, states, congestion-avoidance states, ACK-engine flags.

Values are the kernel's (include/net/tcp.h, include/net/tcp_states.h,
include/net/inet_connection_sock.h); the names keep Linux's spelling so that code reads
like the functions it models.
"""

from __future__ import annotations

__all__ = [
    "FIN", "SYN", "RST", "PSH", "ACK", "flags_str",
    "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2", "TCP_TIME_WAIT",
    "TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN", "TCP_CLOSING", "STATE_NAMES",
    "CA_OPEN", "CA_DISORDER", "CA_CWR", "CA_RECOVERY", "CA_LOSS", "CA_NAMES",
    "ACK_SCHED", "ACK_TIMER", "ACK_PUSHED", "ACK_PUSHED2", "ACK_NOW",
    "SACKED_ACKED", "SACKED_RETRANS", "LOST", "EVER_RETRANS",
    "TCP_INFINITE_SSTHRESH", "TCPOLEN_TSTAMP_ALIGNED", "TCP_MIN_RCVMSS", "TCP_MIN_MSS", "TCP_MSS_DEFAULT",
    "SKB_OVERHEAD", "TCP_TIMEWAIT_LEN", "TCP_TIMEOUT_MIN_J", "SOCK_SNDBUF_LOCK", "SOCK_RCVBUF_LOCK",
]

# sk_userlocks: SO_SNDBUF / SO_RCVBUF set by the application (autotuning off)
SOCK_SNDBUF_LOCK = 1
SOCK_RCVBUF_LOCK = 2

# tcp_flags (struct tcphdr byte 13)
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


def flags_str(f: int) -> str:
    return "".join(c for c, b in (("S", SYN), ("F", FIN), ("R", RST), ("P", PSH), (".", ACK)) if f & b) or "-"


# include/net/tcp_states.h
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
               7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}

# enum tcp_ca_state
CA_OPEN = 0
CA_DISORDER = 1
CA_CWR = 2
CA_RECOVERY = 3
CA_LOSS = 4
CA_NAMES = {0: "Open", 1: "Disorder", 2: "CWR", 3: "Recovery", 4: "Loss"}

# enum inet_csk_ack_state_t
ACK_SCHED = 1
ACK_TIMER = 2
ACK_PUSHED = 4
ACK_PUSHED2 = 8
ACK_NOW = 16

# TCP_SKB_CB(skb)->sacked
SACKED_ACKED = 0x01
SACKED_RETRANS = 0x02
LOST = 0x04
EVER_RETRANS = 0x10

TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
TCPOLEN_TSTAMP_ALIGNED = 12
TCP_MIN_RCVMSS = 536
TCP_MIN_MSS = 88
TCP_MSS_DEFAULT = 536
# SKB_DATA_ALIGN(sizeof(struct sk_buff)) + SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86_64
SKB_OVERHEAD = 256 + 320
TCP_TIMEWAIT_LEN = 60.0
TCP_TIMEOUT_MIN_J = 2          # jiffies added to the RACK reordering timer (TCP_TIMEOUT_MIN)
