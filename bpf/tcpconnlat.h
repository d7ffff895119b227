/* SPDX-License-Identifier: MIT */
/*
 * Shared between the BPF programs (bpf/tcpconnlat.bpf.c) and the plugin
 * (src/). Only fixed-width types, constants and one pure function live here,
 * so that both sides agree on map layouts and on bucket boundaries.
 */
#ifndef TCPCONNLAT_SHARED_H
#define TCPCONNLAT_SHARED_H

/*
 * Log-linear histogram over nanoseconds.
 *
 * Values below 2^TCL_GROUPING_POWER get one bucket each. Above that, every
 * power of two [2^h, 2^(h+1)) is split into 2^TCL_GROUPING_POWER equal
 * sub-buckets, so no bucket is wider than 1/32 of its lower edge. Values at
 * or above 2^TCL_MAX_POWER ns (about 137 s) land in the last bucket.
 */
#define TCL_GROUPING_POWER 5
#define TCL_SUB_BUCKETS (1u << TCL_GROUPING_POWER)
#define TCL_MAX_POWER 37
#define TCL_NBUCKETS ((TCL_MAX_POWER - TCL_GROUPING_POWER + 1) * TCL_SUB_BUCKETS)

/* Why a connect that started did not reach ESTABLISHED. New reasons go at
 * the end: the slots of the others stay where they are. */
enum tcl_reason {
  TCL_REASON_REFUSED = 0,
  TCL_REASON_TIMEOUT,
  TCL_REASON_UNREACHABLE,
  TCL_REASON_ABORTED,
  TCL_REASON_OTHER,
  TCL_REASON_LOCAL, /* connect() failed on this host: no free local port */
  TCL_NREASONS,
};

/*
 * Slots of one series in the stats map: histogram buckets first, then one
 * counter per failure reason, then the totals below.
 */
#define TCL_SLOT_FAILURE_BASE TCL_NBUCKETS
/* Established after the SYN (outbound) or the SYN-ACK (inbound) was
 * retransmitted; also counted in a bucket or in TCL_SLOT_UNTIMED. */
#define TCL_SLOT_RETRANSMITTED (TCL_SLOT_FAILURE_BASE + TCL_NREASONS)
/* Established, but the first SYN's (SYN-ACK's) time is not known: it was
 * retransmitted before the programs were loaded, or its record was evicted,
 * or (inbound) the kernel took no sample (syncookies). Not in a bucket. */
#define TCL_SLOT_UNTIMED (TCL_SLOT_RETRANSMITTED + 1)
/* Inbound only: connection requests a listener queued (sock_ops). */
#define TCL_SLOT_REQUESTS (TCL_SLOT_UNTIMED + 1)
#define TCL_NSLOTS (TCL_SLOT_REQUESTS + 1)

/* The host-wide series, the overflow series, inbound handshakes, then label
 * sets; inbound per local port (By local_port) above TCL_SERIES_INBOUND_PORT. */
#define TCL_SERIES_ALL 0
#define TCL_SERIES_OTHER 1
#define TCL_SERIES_INBOUND 2
#define TCL_SERIES_FIRST 3
#define TCL_SERIES_INBOUND_PORT 0x80000000u

/*
 * The stats map holds at most this many slots per series on average (a
 * shared pool): a hash map allocates its bucket array for max_entries up
 * front, so sizing it for every slot of every series would cost memory for
 * nothing. Latencies spanning 8 powers of two fill 256 slots.
 */
#define TCL_SLOTS_PER_SERIES 256

/* Labels that split the series (By). */
enum tcl_by {
  TCL_BY_PROCESS = 1 << 0,
  TCL_BY_UID = 1 << 1,
  TCL_BY_REMOTE_PORT = 1 << 2,
  TCL_BY_FAMILY = 1 << 3,
  TCL_BY_CGROUP = 1 << 4,
  TCL_BY_NETNS = 1 << 5,
  TCL_BY_REMOTE_ADDRESS = 1 << 6,
  TCL_BY_REMOTE_NETWORK = 1 << 7,
  TCL_BY_LOCAL_PORT = 1 << 8, /* inbound handshakes only */
};
/* The labels of outbound series (the kernel's label sets). */
#define TCL_BY_OUTBOUND_MASK 0xffu

/*
 * Limits of the configuration, each the size of the kernel table (or
 * rodata array) that holds what the option names: the BPF maps take their
 * max_entries from here and src/config.c refuses more, naming the option.
 */
#define TCL_MAX_CGROUP_FILTERS 8 /* Cgroup */
#define TCL_MAX_NETWORKS 64      /* RemoteNetwork names (index in a __u8) */
#define TCL_MAX_CIDRS 256        /* RemoteNetwork ranges, all together */
#define TCL_MAX_SET 64           /* Pid, Uid, Process: each */
/* Distinct ports in RemotePort and IgnoreRemotePort together: one table
 * holds both (a port in both takes one entry); likewise LocalPort and
 * IgnoreLocalPort. */
#define TCL_MAX_PORTS 128
#define TCL_MAX_MAX_SERIES 100000 /* MaxSeries: label series */
#define TCL_COMM_LEN 16 /* a process name with its NUL (TASK_COMM_LEN) */

/*
 * Who connected where, read from the socket at the outcome, except the
 * process name, which exists only in connect() (struct tcl_start). As a
 * series key, fields the By option does not name stay zero.
 */
struct tcl_labels {
  __u64 cgroup_id;
  __u64 netns;    /* netns cookie, or the inode number on older kernels */
  __u32 uid;
  __u32 pad0;
  __u8 raddr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
  char comm[16];
  __u16 rport;   /* host byte order */
  __u8 family;   /* 4 or 6 (IPv4-mapped IPv6 counts as 4) */
  __u8 network;  /* RemoteNetwork index + 1; 0: none matched */
  __u32 pad;
};

/* RemoteNetwork CIDRs: an LPM trie over IPv6 (IPv4 mapped) addresses. */
struct tcl_net_key {
  __u32 prefixlen;
  __u8 addr[16];
};

struct tcl_net_value {
  __u8 index;   /* network index + 1 */
  __u8 include; /* IncludeRemoteNetwork named it */
  __u8 ignore;  /* IgnoreRemoteNetwork named it */
  __u8 pad;
};

/* Filter sets (Pid, Uid, Process, RemotePort): value flags. */
#define TCL_MATCH_INCLUDE 1
#define TCL_MATCH_IGNORE 2

struct tcl_stats_key {
  __u32 series;
  __u32 slot;
};

/* Per-CPU, cumulative since the map was created; never reset. */
struct tcl_stats_value {
  __u64 count;
  __u64 sum_ns; /* latency sum; only for histogram slots */
};

/*
 * What connect() knew and the socket does not: the caller's pid and command.
 * Kept from CLOSE->SYN_SENT to the outcome only when Pid, Process, By
 * process or notifications need it, in a way of a fixed array of 4-way sets
 * chosen by a hash of the socket's address: plain stores, no allocation, no
 * lock, no atomics. A way names its socket; a start takes a free way of its
 * set, else one chosen by the hash (whose connect then has no record at its
 * outcome: counted in no_start, never another connect's record).
 */
#define TCL_START_WAYS 4

struct tcl_start {
  __u64 owner; /* the socket's key; 0: free */
  __u32 tgid;
  __u32 pad;
  char comm[16];
};

struct tcl_start_set {
  struct tcl_start way[TCL_START_WAYS];
};

/*
 * The first SYN (outbound) or SYN-ACK (inbound) of a handshake whose SYN or
 * SYN-ACK was retransmitted: the socket forgets it by the time the handshake
 * completes. Keyed by the 4-tuple; only such handshakes take an entry (LRU).
 */
struct tcl_tuple {
  __u8 laddr[16]; /* IPv6, IPv4 as ::ffff:a.b.c.d */
  __u8 raddr[16];
  __u16 lport;    /* host byte order */
  __u16 rport;
};

struct tcl_first_syn {
  __u64 first_ns; /* bpf_ktime_get_ns() clock */
  __u32 isn;      /* the handshake's initial sequence number: tells a stale
                   * entry of an earlier connection of the same 4-tuple */
  __u32 pad;
};

/* The histograms of the fixed series ("all", "inbound") live in a per-CPU
 * array, TCL_NSLOTS each, in this order; label series in the stats hash. */
#define TCL_FIXED_ALL 0
#define TCL_FIXED_INBOUND 1
#define TCL_NFIXED 2

/* One slow or failed connect, for a notification (ring buffer). */
struct tcl_event {
  __u64 ktime_ns;   /* bpf_ktime_get_ns() at the outcome */
  __u64 latency_ns; /* 0 for failures */
  __u32 tgid;
  __u32 uid;
  char comm[16];
  __u8 saddr[16];   /* IPv6, IPv4 as ::ffff:a.b.c.d */
  __u8 daddr[16];
  __u16 sport;      /* host byte order */
  __u16 dport;
  __u8 family;      /* 4 or 6 */
  __u8 reason;      /* enum tcl_reason, or TCL_EVENT_SLOW */
  __u16 pad;
};
#define TCL_EVENT_SLOW 0xff

/* The kernel wakes the notification reader only once this much is pending;
 * below it, the reader finds the events at its next poll (every 100 ms). */
#define TCL_EVENTS_WAKEUP_BYTES (64 * 1024)

/* Per-CPU event counters, cumulative. */
struct tcl_counters {
  __u64 no_start;   /* outcomes whose start record was missing (only when
                     * Pid, Process, By process or notifications keep one) */
  __u64 stats_full; /* outcomes lost because the stats map was full */
  __u64 filtered;   /* connects the filters left out */
  __u64 overflow;   /* outcomes counted in series "other": MaxSeries reached */
  __u64 events_lost; /* notification events the ring buffer had no room for */
};

/* floor(log2(v)) for v > 0, without loops (the BPF target has no clz). */
static inline __u32 tcl_log2(__u64 v)
{
  __u32 r = 0, shift;

  shift = (v > 0xFFFFFFFFULL) << 5;
  v >>= shift;
  r |= shift;
  shift = (v > 0xFFFF) << 4;
  v >>= shift;
  r |= shift;
  shift = (v > 0xFF) << 3;
  v >>= shift;
  r |= shift;
  shift = (v > 0xF) << 2;
  v >>= shift;
  r |= shift;
  shift = (v > 0x3) << 1;
  v >>= shift;
  r |= shift;
  r |= (__u32)(v >> 1);
  return r;
}

/* Histogram bucket of a latency in nanoseconds. */
static inline __u32 tcl_bucket_index(__u64 ns)
{
  __u32 h;

  if (ns < 2 * TCL_SUB_BUCKETS)
    return (__u32)ns;
  h = tcl_log2(ns);
  if (h >= TCL_MAX_POWER)
    return TCL_NBUCKETS - 1;
  return (h - TCL_GROUPING_POWER) * TCL_SUB_BUCKETS +
         (__u32)(ns >> (h - TCL_GROUPING_POWER));
}

#endif /* TCPCONNLAT_SHARED_H */
