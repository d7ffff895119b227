/* SPDX-License-Identifier: MIT */
/*
 * Passive mode on an interface: shared between the TC programs
 * (bpf/iface.bpf.c) and the plugin (src/iface.c). Fixed-width types and
 * constants only, as in bpf/tcpconnlat.h, whose histogram (tcl_bucket_index,
 * struct tcl_stats_key/value) both sides reuse.
 */
#ifndef TCPCONNLAT_IFACE_SHARED_H
#define TCPCONNLAT_IFACE_SHARED_H

/* Interfaces that can be named (Interface), and the series they make. */
#define TCL_IFACE_MAX 16
#define TCL_IFACE_DIR_IN 0  /* the SYN came in: local response time */
#define TCL_IFACE_DIR_OUT 1 /* the SYN went out: remote latency */
#define TCL_IFACE_NSERIES (2 * TCL_IFACE_MAX)

/* Series number of an interface (its index in the Interface list) and the
 * direction of the SYN. Series of the iface stats map; unrelated to the
 * series numbers of the socket tracepoint's map. */
#define TCL_IFACE_SERIES(idx, dir) (2u * (idx) + (dir))

/* Handshakes waiting for their SYN-ACK, in all interfaces together. */
#define TCL_IFACE_MAX_FLOWS 16384

/*
 * The handle of the TC filters the plugin owns (when the kernel has no tcx),
 * in both directions of every interface: exactly these are detached at
 * shutdown. Their priority is chosen at start (src/iface.c).
 */
#define TCL_IFACE_TC_HANDLE 0x7c1

/*
 * A handshake waiting for its SYN-ACK. The key is the SYN's view: its
 * source (the client) and destination (the server), on one interface and
 * direction; the SYN-ACK looks it up with its own addresses swapped.
 */
struct tcl_iface_flow {
  __u8 client[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
  __u8 server[16];
  __u16 client_port; /* host byte order */
  __u16 server_port;
  __u32 ifindex;
  __u32 dir; /* TCL_IFACE_DIR_* of the SYN */
};

struct tcl_iface_syn {
  __u64 first_ns; /* the first SYN (bpf_ktime_get_ns: CLOCK_MONOTONIC) */
  __u64 last_ns;  /* the latest retransmission */
  __u32 isn;      /* the SYN's sequence number: a retransmission repeats it */
  __u32 first_tsval; /* TCP timestamp of the first / latest SYN; */
  __u32 last_tsval;  /* the SYN-ACK echoes the one it answers */
  __u16 series;      /* TCL_IFACE_SERIES() */
  __u8 sent;         /* transmissions, saturating at 255 */
  __u8 has_ts;       /* the SYNs carried the timestamp option */
  __u16 data_len;    /* data the SYN carried (TCP Fast Open), bytes */
  __u16 pad[3];
};

/* Per-CPU counters, one per series, cumulative. */
struct tcl_iface_counters {
  __u64 syn;            /* first SYN of a handshake */
  __u64 syn_retransmit; /* a SYN again with the same 4-tuple and ISN */
  __u64 inserted;       /* flow entries created */
  __u64 answered;       /* SYN-ACKs that matched a flow entry (entry removed) */
  __u64 ambiguous;      /* answered, not timed: retransmitted, no timestamps */
  __u64 replaced;       /* unanswered: a new SYN (other ISN) took the entry */
  __u64 synack_unmatched; /* SYN-ACKs without a remembered SYN */
  __u64 stats_full;     /* latencies lost: the stats map was full */
};

#endif /* TCPCONNLAT_IFACE_SHARED_H */
