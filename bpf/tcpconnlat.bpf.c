// SPDX-License-Identifier: GPL-2.0
/*
 * tcpconnlat: in-kernel aggregation of TCP connect latency.
 *
 * The kernel already times every handshake; these programs read its clock
 * at the outcome instead of keeping a start time of their own:
 *  - outbound, at sock:inet_sock_set_state SYN_SENT -> ESTABLISHED:
 *    tcp_clock_cache (refreshed when the SYN-ACK's processing began) minus
 *    tcp_wstamp_ns (when the SYN left), in ns; SYN_SENT -> CLOSE counts a
 *    failure by reason;
 *  - inbound, at SYN_RECV -> ESTABLISHED: the child's first RTT sample
 *    (first SYN-ACK sent -> final ACK), in us;
 *  - a handshake whose SYN (SYN-ACK) was retransmitted has no such sample:
 *    tcp:tcp_retransmit_skb (tcp_retransmit_synack) remembers the first
 *    one's time in a small LRU map that only such handshakes use.
 * So nothing is kept per connect on the default path, a socket address
 * reused at once cannot match a stale start, and no BPF atomics are needed.
 * The process of a connect exists only inside connect(): a start record is
 * kept only when Pid, Process, By process or notifications need it.
 * Nothing is sent to user space per connection: the plugin reads the
 * cumulative per-CPU maps once per interval.
 *
 * Two entry points share each handler: a BTF raw tracepoint (cheapest, no
 * tracefs needed) and the classic tracepoint. The loader enables one kind.
 */
#ifdef TCL_USE_VMLINUX_H
#include "vmlinux.h"
#else
#include "kernel_types.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "tcpconnlat.h"
#include "stats.bpf.h"

#define TCL_TCP_ESTABLISHED 1
#define TCL_TCP_SYN_SENT 2
#define TCL_TCP_SYN_RECV 3
#define TCL_TCP_CLOSE 7
#define TCL_IPPROTO_TCP 6
#define TCL_AF_INET 2
#define TCL_AF_INET6 10
#define TCL_NS_PER_US 1000ULL
#define TCL_NS_PER_MS 1000000ULL
/* A stale first-SYN entry is one whose ISN does not precede snd_una by the
 * SYN (and at most a Fast Open payload). */
#define TCL_MAX_SYN_DATA 0xffffu

/* A field of a socket: a plain load from tp_btf's trusted pointer, a probe
 * read from the classic tracepoint's address. btf is a constant in each
 * inlined copy, so each program keeps one of the two. */
#define TCL_READ(btf, p, field) ((btf) ? (p)->field : BPF_CORE_READ(p, field))

/* Compiler barriers and single loads and stores (no BPF atomics). */
#define barrier() asm volatile("" ::: "memory")
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* errno values of the generic Linux ABI (all architectures but alpha, mips,
 * parisc and sparc, which the build refuses). */
#define TCL_ENETUNREACH 101
#define TCL_ETIMEDOUT 110
#define TCL_ECONNREFUSED 111
#define TCL_EHOSTUNREACH 113

/* sock_extended_err.ee_origin (uapi linux/errqueue.h) */
#define TCL_SO_EE_ORIGIN_ICMP 2
#define TCL_SO_EE_ORIGIN_ICMP6 3

/*
 * Settings, written by the plugin before load. They are read-only to the
 * programs, so the verifier prunes whatever a setting switches off.
 */
const volatile __u32 tcl_by = 0;           /* TCL_BY_* */
const volatile bool tcl_report_total = true;
const volatile __u64 tcl_netns_only = 0;   /* OwnNetnsOnly: its id, 0: all */
const volatile bool tcl_netns_cookie = false; /* netns ids are cookies */
const volatile bool tcl_filter_pid = false;
const volatile bool tcl_filter_uid = false;
const volatile bool tcl_filter_comm = false;
const volatile bool tcl_filter_rport = false;    /* RemotePort given */
const volatile bool tcl_ignore_rport = false;    /* IgnoreRemotePort given */
const volatile bool tcl_filter_network = false;  /* IncludeRemoteNetwork */
const volatile bool tcl_ignore_network = false;  /* IgnoreRemoteNetwork */
const volatile bool tcl_use_networks = false;    /* any RemoteNetwork */
const volatile __u64 tcl_slow_ns = 0;         /* SlowThreshold, 0: off */
const volatile bool tcl_notify_failures = false;
const volatile bool tcl_inbound = false;       /* Inbound */
const volatile bool tcl_inbound_by_port = false; /* By local_port */
const volatile bool tcl_filter_lport = false;  /* LocalPort given */
const volatile bool tcl_ignore_lport = false;  /* IgnoreLocalPort given */
const volatile __u32 tcl_ncgroups = 0;
const volatile __u64 tcl_cgroup_ids[TCL_MAX_CGROUP_FILTERS] = {};
const volatile __u32 tcl_cgroup_levels[TCL_MAX_CGROUP_FILTERS] = {};

/* Start records (struct tcl_start_set): MaxInflight ways rounded up to a
 * power of two, in sets of TCL_START_WAYS, sized by the plugin; one set
 * when unused. */
const volatile __u32 tcl_start_mask = 0; /* sets - 1 */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tcl_start_set);
} tcl_starts SEC(".maps");

/* First SYNs and SYN-ACKs of retransmitted handshakes (sized by the plugin). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1);
  __type(key, struct tcl_tuple);
  __type(value, struct tcl_first_syn);
} tcl_first_syn SEC(".maps");

/* Histograms of the fixed series: no hash lookup on the hot path. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TCL_NFIXED * TCL_NSLOTS);
  __type(key, __u32);
  __type(value, struct tcl_stats_value);
} tcl_fixed SEC(".maps");

/* Grows with the buckets actually used: entries are allocated on first use. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, TCL_NSLOTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tcl_stats_key);
  __type(value, struct tcl_stats_value);
} tcl_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tcl_counters);
} tcl_counters SEC(".maps");

/* Label set -> series id. The plugin deletes idle ones. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1);
  __type(key, struct tcl_labels);
  __type(value, __u32);
} tcl_series SEC(".maps");

/* Series ids not in use; the plugin fills it and returns expired ids. */
struct {
  __uint(type, BPF_MAP_TYPE_QUEUE);
  __uint(max_entries, 1);
  __type(value, __u32);
} tcl_free_ids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TCL_MAX_PORTS);
  __type(key, __u16);
  __type(value, __u8);
} tcl_lports SEC(".maps");

/* Slow and failed connects for notifications: nothing else crosses. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} tcl_events SEC(".maps");

/* Filter sets: key -> TCL_MATCH_* */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TCL_MAX_SET);
  __type(key, __u32);
  __type(value, __u8);
} tcl_pids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TCL_MAX_SET);
  __type(key, __u32);
  __type(value, __u8);
} tcl_uids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TCL_MAX_SET);
  __type(key, char[16]);
  __type(value, __u8);
} tcl_comms SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, TCL_MAX_PORTS);
  __type(key, __u16);
  __type(value, __u8);
} tcl_rports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, TCL_MAX_CIDRS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tcl_net_key);
  __type(value, struct tcl_net_value);
} tcl_networks SEC(".maps");

/* ------------------------------------------------------------------------
 * Counting */

static __always_inline struct tcl_counters *tcl_counters_get(void)
{
  __u32 zero = 0;

  return bpf_map_lookup_elem(&tcl_counters, &zero);
}

static __always_inline void tcl_fixed_add(__u32 fixed, __u32 slot, __u64 ns)
{
  __u32 idx = fixed * TCL_NSLOTS + slot;
  struct tcl_stats_value *val = bpf_map_lookup_elem(&tcl_fixed, &idx);

  if (val) {
    val->count++;
    val->sum_ns += ns;
  }
}

static __always_inline void tcl_stats_add(__u32 series, __u32 slot, __u64 ns)
{
  struct tcl_counters *c;

  if (tcl_hist_add(&tcl_stats, series, slot, ns) == 0)
    return;
  c = tcl_counters_get();
  if (c)
    c->stats_full++;
}

/* One outcome in the host-wide (fixed) series or a series of the stats map,
 * and in the retransmitted total when its SYN (SYN-ACK) was retransmitted. */
static __always_inline void tcl_count(bool fixed, __u32 where, __u32 slot,
                                      __u64 ns, bool retransmitted)
{
  if (fixed) {
    tcl_fixed_add(where, slot, ns);
    if (retransmitted)
      tcl_fixed_add(where, TCL_SLOT_RETRANSMITTED, 0);
  } else {
    tcl_stats_add(where, slot, ns);
    if (retransmitted)
      tcl_stats_add(where, TCL_SLOT_RETRANSMITTED, 0);
  }
}

static __always_inline void tcl_count_filtered(void)
{
  struct tcl_counters *c = tcl_counters_get();

  if (c)
    c->filtered++;
}

static __always_inline __u32 tcl_reason(int err)
{
  switch (err) {
  case TCL_ECONNREFUSED:
    return TCL_REASON_REFUSED;
  case TCL_ETIMEDOUT:
    return TCL_REASON_TIMEOUT;
  case TCL_EHOSTUNREACH:
  case TCL_ENETUNREACH:
    return TCL_REASON_UNREACHABLE;
  case 0: /* closed by the application before it completed */
    return TCL_REASON_ABORTED;
  default:
    return TCL_REASON_OTHER;
  }
}

/*
 * The error an application already collected with SO_ERROR, for a connect
 * closed without sk_err. An ICMP error that finds the socket locked (the
 * application inside connect() or poll()) is kept only as the soft error
 * (tcp_v4_err()), and for IPv4 queued on the error queue whatever
 * IP_RECVERR says (ip_icmp_error()): the queued entry wakes poll() with
 * POLLERR, SO_ERROR returns the soft error and clears it, and the
 * application closes a SYN_SENT socket with neither error left. The newest
 * queued ICMP error is what it was told. Not inlined, like every read of a
 * type some kernels may lack.
 */
static __noinline int tcl_collected_icmp_error(const struct sock *sk)
{
  struct sock_exterr_skb *serr;
  struct sk_buff *skb;
  __u8 origin;

  if (!bpf_core_type_exists(struct sock_exterr_skb))
    return 0;
  if (BPF_CORE_READ(sk, sk_err_soft) || !BPF_CORE_READ(sk, sk_error_queue.qlen))
    return 0;
  skb = BPF_CORE_READ(sk, sk_error_queue.prev); /* the newest, as SO_ERROR's */
  if (!skb)
    return 0;
  serr = (struct sock_exterr_skb *)skb->cb;
  origin = BPF_CORE_READ(serr, ee.ee_origin);
  if (origin != TCL_SO_EE_ORIGIN_ICMP && origin != TCL_SO_EE_ORIGIN_ICMP6)
    return 0;
  return (int)BPF_CORE_READ(serr, ee.ee_errno);
}

/*
 * Why a connect ended at SYN_SENT -> CLOSE, as the application was told:
 * the socket's error; else, while connect() has not returned (the socket is
 * still SS_UNCONNECTED: __inet_stream_connect() sets SS_CONNECTING only once
 * the protocol's connect succeeded), a failure on this host after the state
 * was set, such as no free local port (EADDRNOTAVAIL from
 * inet_hash_connect()); else an ICMP error SO_ERROR handed over; else the
 * application gave up (aborted).
 */
static __always_inline __u32 tcl_failure_reason(const struct sock *sk)
{
  int err = BPF_CORE_READ(sk, sk_err);

  if (err)
    return tcl_reason(err);
  if (BPF_CORE_READ(sk, sk_socket, state) == SS_UNCONNECTED)
    return TCL_REASON_LOCAL;
  return tcl_reason(tcl_collected_icmp_error(sk));
}

/* ------------------------------------------------------------------------
 * What the socket says about itself */

/* The kernel's handshake fields of a socket (struct tcp_sock). */
struct tcl_tcp {
  __u64 clock_ns;  /* tcp_clock_cache */
  __u64 wstamp_ns; /* tcp_wstamp_ns */
  __u32 srtt_us;   /* << 3 */
  __u32 total_retrans;
  __u32 snd_una;
};

static __always_inline bool tcl_read_tcp(const struct sock *sk, bool btf,
                                         struct tcl_tcp *t)
{
  if (btf) {
    /* a typed pointer: plain loads, no probe reads */
    struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);

    if (!tp)
      return false;
    t->clock_ns = tp->tcp_clock_cache;
    t->wstamp_ns = tp->tcp_wstamp_ns;
    t->srtt_us = tp->srtt_us;
    t->total_retrans = tp->total_retrans;
    t->snd_una = tp->snd_una;
  } else {
    const struct tcp_sock *tp = (const void *)sk;

    t->clock_ns = BPF_CORE_READ(tp, tcp_clock_cache);
    t->wstamp_ns = BPF_CORE_READ(tp, tcp_wstamp_ns);
    t->srtt_us = BPF_CORE_READ(tp, srtt_us);
    t->total_retrans = BPF_CORE_READ(tp, total_retrans);
    t->snd_una = BPF_CORE_READ(tp, snd_una);
  }
  return true;
}

/*
 * A field that only some kernels have is read in a function of its own, not
 * inlined, and called only where it exists: clang computes the field
 * offsets of both branches of an if before the branch, and the missing
 * field's offset is an instruction libbpf poisons, which the verifier then
 * rejects even though that branch never runs.
 */

/* net->net_cookie, a u64 from Linux 5.12 (the plugin uses it only where
 * SO_NETNS_COOKIE, 5.14, says the kernel has cookies). */
static __noinline __u64 tcl_net_cookie(struct net *net)
{
  return BPF_CORE_READ(net, net_cookie);
}

/* The socket's network namespace: its cookie where the plugin found the
 * kernel to have one (inode numbers are reused at once), else its inode. */
static __always_inline __u64 tcl_netns_of(const struct sock *sk, bool btf)
{
  struct net *net = TCL_READ(btf, sk, __sk_common.skc_net.net);

  if (tcl_netns_cookie)
    return tcl_net_cookie(net);
  return TCL_READ(btf, net, ns.inum);
}

/* OwnNetnsOnly: sockets of other network namespaces are not ours to see. */
static __always_inline bool tcl_foreign_netns(const struct sock *sk, bool btf)
{
  return tcl_netns_only && tcl_netns_of(sk, btf) != tcl_netns_only;
}

/* Before 5.15 (and its backports): a cgroup pointer, unless net_cls or
 * net_prio data is stored there instead (bit 0 set). */
static __noinline struct cgroup *tcl_sock_cgroup_val(const struct sock *sk)
{
  __u64 val = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);

  return (val & 1) ? NULL : (struct cgroup *)val;
}

/* The socket's cgroup v2, where it was created (NULL: none known). */
static __always_inline struct cgroup *tcl_sock_cgroup(const struct sock *sk)
{
  if (bpf_core_field_exists(((struct sock_cgroup_data *)0)->cgroup))
    return BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
  return tcl_sock_cgroup_val(sk);
}

/*
 * The id of a cgroup's ancestor at a level (itself at its own level). One
 * function per kernel layout, not inlined: clang would otherwise compute
 * both layouts' field offsets before the branch, and the one the running
 * kernel lacks is a relocation libbpf poisons.
 */
static __noinline __u64 tcl_cgroup_ancestor_ptrs(struct cgroup *cgrp,
                                                 __u32 level)
{
  struct cgroup *anc = NULL;

  bpf_probe_read_kernel(&anc, sizeof(anc),
                        (char *)cgrp + bpf_core_field_offset(cgrp->ancestors) +
                            level * sizeof(anc));
  return BPF_CORE_READ(anc, kn, id);
}

static __noinline __u64 tcl_cgroup_ancestor_ids(struct cgroup *cgrp,
                                                __u32 level)
{
  struct cgroup___ids *old = (void *)cgrp;
  __u64 id = 0;

  bpf_probe_read_kernel(&id, sizeof(id),
                        (char *)cgrp + bpf_core_field_offset(old->ancestor_ids) +
                            level * sizeof(id));
  return id;
}

static __always_inline __u64 tcl_cgroup_ancestor(struct cgroup *cgrp,
                                                 __u32 level)
{
  if (!cgrp || level > (__u32)BPF_CORE_READ(cgrp, level))
    return 0;
  if (bpf_core_field_exists(cgrp->ancestors))
    return tcl_cgroup_ancestor_ptrs(cgrp, level);
  return tcl_cgroup_ancestor_ids(cgrp, level);
}

static __always_inline bool tcl_cgroup_matches(const struct sock *sk)
{
  struct cgroup *cgrp = tcl_sock_cgroup(sk);

  for (__u32 i = 0; i < TCL_MAX_CGROUP_FILTERS; i++) {
    if (i >= tcl_ncgroups)
      break;
    if (tcl_cgroup_ancestor(cgrp, tcl_cgroup_levels[i]) == tcl_cgroup_ids[i])
      return true;
  }
  return false;
}

/* ::ffff:a.b.c.d: an IPv4 peer of an IPv6 socket */
static __always_inline bool tcl_v4_mapped(const __u8 a[16])
{
  const __u32 *w = (const __u32 *)a;

  return w[0] == 0 && w[1] == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff &&
         a[11] == 0xff;
}

/* Both addresses of a socket (or request), IPv4 as ::ffff:a.b.c.d; the
 * family as 4 or 6. */
static __always_inline __u8 tcl_read_addrs(const struct sock_common *skc,
                                           __u8 laddr[16], __u8 raddr[16],
                                           bool btf)
{
  if (TCL_READ(btf, skc, skc_family) == TCL_AF_INET) {
    __be32 l = TCL_READ(btf, skc, skc_rcv_saddr);
    __be32 r = TCL_READ(btf, skc, skc_daddr);

    laddr[10] = laddr[11] = raddr[10] = raddr[11] = 0xff;
    __builtin_memcpy(&laddr[12], &l, 4);
    __builtin_memcpy(&raddr[12], &r, 4);
    return 4;
  }
  if (btf) {
    __builtin_memcpy(laddr, skc->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
    __builtin_memcpy(raddr, skc->skc_v6_daddr.in6_u.u6_addr8, 16);
  } else {
    /* not BPF_CORE_READ_INTO: the arrays are pointers here, and it reads
     * sizeof(*dst) bytes */
    bpf_core_read(laddr, 16, &skc->skc_v6_rcv_saddr);
    bpf_core_read(raddr, 16, &skc->skc_v6_daddr);
  }
  return tcl_v4_mapped(raddr) ? 4 : 6;
}

/* The 4-tuple of a socket. Not skc_num: a failed connect releases its port
 * before SYN_SENT -> CLOSE; inet_sport keeps it. */
static __always_inline void tcl_sock_tuple(const struct sock *sk,
                                           struct tcl_tuple *t, bool btf)
{
  tcl_read_addrs(&sk->__sk_common, t->laddr, t->raddr, btf);
  /* a probe read: tp_btf's pointer is a struct sock, and the verifier
   * allows no load past it */
  t->lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
  t->rport = bpf_ntohs(TCL_READ(btf, sk, __sk_common.skc_dport));
}

/* ------------------------------------------------------------------------
 * Retransmitted handshakes: the first SYN's (SYN-ACK's) time */

/* LocalPort / IgnoreLocalPort */
static __always_inline bool tcl_lport_wanted(__u16 lport)
{
  if (tcl_filter_lport || tcl_ignore_lport) {
    __u8 *flags = bpf_map_lookup_elem(&tcl_lports, &lport);
    __u8 f = flags ? *flags : 0;
    if (tcl_filter_lport && !(f & TCL_MATCH_INCLUDE))
      return false;
    if (tcl_ignore_lport && (f & TCL_MATCH_IGNORE))
      return false;
  }
  return true;
}

/* tcp_usec_ts (Linux 6.7): TCP timestamps, and so retrans_stamp, in us. */
static __noinline bool tcl_usec_ts(const struct tcp_sock *tp)
{
  return BPF_CORE_READ_BITFIELD_PROBED(tp, tcp_usec_ts);
}

/* tcp:tcp_retransmit_skb of a connecting socket: its retrans_stamp is the
 * first SYN's time (tcp_connect()) until the SYN is acked. */
static __always_inline void tcl_syn_retransmitted(const struct sock *sk)
{
  const struct tcp_sock *tp = (const void *)sk;
  struct tcl_first_syn v = {};
  struct tcl_tuple key = {};
  __u64 now = bpf_ktime_get_ns(), unit = TCL_NS_PER_MS;
  __u32 stamp;

  if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCL_TCP_SYN_SENT)
    return;
  /* Its outcome is not ours to take either: the entry would stay until
   * evicted, in the place of one of ours. */
  if (tcl_foreign_netns(sk, false))
    return;
  stamp = BPF_CORE_READ(tp, retrans_stamp);
  if (bpf_core_field_exists(tp->tcp_usec_ts) && tcl_usec_ts(tp))
    unit = TCL_NS_PER_US;
  /* stamp is floor(first SYN / unit) in 32 bits (it wraps): the latest
   * time in that unit, so that a latency is never longer than it was. */
  v.first_ns = now - now % unit -
               (__u64)(__u32)((__u32)(now / unit) - stamp) * unit + unit - 1;
  if (v.first_ns > now)
    v.first_ns = now;
  v.isn = BPF_CORE_READ(tp, snd_una);
  tcl_sock_tuple(sk, &key, false);
  bpf_map_update_elem(&tcl_first_syn, &key, &v, BPF_ANY);
}

/* tcp:tcp_retransmit_synack: the request's snt_synack is its first
 * SYN-ACK's time (us); the child socket will not have it. Only for the
 * handshakes tcl_accept_end() takes it back from: the others' entries would
 * stay until evicted, in the place of ours. */
static __always_inline void tcl_synack_retransmitted(const struct sock *listener,
                                                     const void *req)
{
  const struct tcp_request_sock *treq = req;
  struct tcl_first_syn v = {};
  struct tcl_tuple key = {};

  if (tcl_foreign_netns(listener, false) ||
      !tcl_lport_wanted(BPF_CORE_READ(treq, req.req.__req_common.skc_num)))
    return;
  v.first_ns = BPF_CORE_READ(treq, snt_synack) * TCL_NS_PER_US +
               (TCL_NS_PER_US - 1);
  v.isn = BPF_CORE_READ(treq, snt_isn);
  tcl_read_addrs(&treq->req.req.__req_common, key.laddr, key.raddr, false);
  key.lport = BPF_CORE_READ(treq, req.req.__req_common.skc_num);
  key.rport = bpf_ntohs(BPF_CORE_READ(treq, req.req.__req_common.skc_dport));
  bpf_map_update_elem(&tcl_first_syn, &key, &v, BPF_ANY);
}

/* The first SYN's (SYN-ACK's) time of a retransmitted handshake that just
 * completed, the entry taken out; 0 when unknown. An entry of an earlier
 * connection of the same 4-tuple has another ISN. */
static __always_inline __u64 tcl_first_syn_take(const struct sock *sk,
                                                __u32 snd_una, bool btf)
{
  struct tcl_first_syn *v;
  struct tcl_tuple key = {};
  __u64 first = 0;

  tcl_sock_tuple(sk, &key, btf);
  v = bpf_map_lookup_elem(&tcl_first_syn, &key);
  if (!v)
    return 0;
  if (snd_una - v->isn - 1 <= TCL_MAX_SYN_DATA)
    first = v->first_ns;
  bpf_map_delete_elem(&tcl_first_syn, &key);
  return first;
}

/* ------------------------------------------------------------------------
 * Start records (only when Pid, Process, By process or notifications) */

static __always_inline bool tcl_notifies(void)
{
  return tcl_slow_ns || tcl_notify_failures;
}

static __always_inline bool tcl_keeps_start(void)
{
  return (tcl_by & TCL_BY_PROCESS) || tcl_filter_pid || tcl_filter_comm ||
         tcl_notifies();
}

/*
 * A socket's key in the start array: a scalar that identifies the socket
 * while it lives. tp_btf hands us a trusted pointer, on which the verifier
 * allows no arithmetic but the difference to another pointer; the classic
 * tracepoint hands us the address as a plain number. Never 0.
 */
#define TCL_SOCK_KEY_BTF(sk) ((__u64)(sk) - (__u64)(void *)&tcl_starts)

/* A socket's hash: Fibonacci hashing of its key. The set is taken from its
 * top bits, the way to give up when the set is full from its low ones. */
static __always_inline __u64 tcl_start_hash(__u64 key)
{
  return key * 0x9E3779B97F4A7C15ULL;
}

static __always_inline struct tcl_start_set *tcl_start_set_of(__u64 hash)
{
  __u32 idx = (__u32)(hash >> 32) & tcl_start_mask;

  return bpf_map_lookup_elem(&tcl_starts, &idx);
}

/* A way of the set: this socket's own (a connect() again on it), a free
 * one, else the one the hash picks. The way is marked free while it is
 * written, and named last, so that an outcome that reads it meanwhile finds
 * no record rather than a mix. */
static __always_inline void tcl_connect_start(__u64 key)
{
  __u64 hash = tcl_start_hash(key);
  struct tcl_start_set *set = tcl_start_set_of(hash);
  struct tcl_start *w;
  __u32 way = (__u32)hash & (TCL_START_WAYS - 1), i;

  if (!set)
    return;
#pragma unroll
  for (i = 0; i < TCL_START_WAYS; i++) {
    __u64 o = READ_ONCE(set->way[i].owner);
    if (o == key || o == 0) {
      way = i;
      break;
    }
  }
  w = &set->way[way & (TCL_START_WAYS - 1)];
  WRITE_ONCE(w->owner, 0);
  barrier();
  w->tgid = bpf_get_current_pid_tgid() >> 32;
  bpf_get_current_comm(w->comm, sizeof(w->comm));
  barrier();
  WRITE_ONCE(w->owner, key);
}

/* The record of a socket's connect, if a way still names it before and
 * after the copy; the way is freed, so that a socket reusing the address
 * cannot find it. */
static __always_inline bool tcl_start_take(__u64 key, struct tcl_start *st)
{
  struct tcl_start_set *set = tcl_start_set_of(tcl_start_hash(key));

  if (!set)
    return false;
#pragma unroll
  for (__u32 i = 0; i < TCL_START_WAYS; i++) {
    struct tcl_start *w = &set->way[i];

    if (READ_ONCE(w->owner) != key)
      continue;
    barrier();
    st->tgid = w->tgid;
    __builtin_memcpy(st->comm, w->comm, sizeof(st->comm));
    barrier();
    if (READ_ONCE(w->owner) != key)
      return false;
    WRITE_ONCE(w->owner, 0);
    return true;
  }
  return false;
}

/* ------------------------------------------------------------------------
 * Labels and filters */

static __always_inline bool tcl_needs_raddr(void)
{
  return (tcl_by & (TCL_BY_FAMILY | TCL_BY_REMOTE_ADDRESS |
                    TCL_BY_REMOTE_NETWORK)) ||
         tcl_use_networks;
}

static __always_inline bool tcl_needs_rport(void)
{
  return (tcl_by & TCL_BY_REMOTE_PORT) || tcl_filter_rport || tcl_ignore_rport;
}

/* Each field only when something uses it. */
static __always_inline void tcl_read_labels(const struct sock *sk,
                                            const struct tcl_start *st,
                                            struct tcl_labels *who, bool btf)
{
  if ((tcl_by & TCL_BY_UID) || tcl_filter_uid || tcl_notifies())
    who->uid = TCL_READ(btf, sk, sk_uid.val);
  if (tcl_by & TCL_BY_CGROUP) {
    struct cgroup *cgrp = tcl_sock_cgroup(sk);
    who->cgroup_id = cgrp ? BPF_CORE_READ(cgrp, kn, id) : 0;
  }
  if ((tcl_by & TCL_BY_PROCESS) || tcl_filter_comm || tcl_notifies())
    __builtin_memcpy(who->comm, st->comm, sizeof(who->comm));
  if (tcl_by & TCL_BY_NETNS)
    who->netns = tcl_netns_of(sk, btf);
  if (tcl_needs_raddr()) {
    __u8 laddr[16];

    who->family = tcl_read_addrs(&sk->__sk_common, laddr, who->raddr, btf);
  }
  if (tcl_needs_rport())
    who->rport = bpf_ntohs(TCL_READ(btf, sk, __sk_common.skc_dport));
}

/* Pid, Uid, Process: the set must name it when given. */
static __always_inline bool tcl_in_set(void *map, const void *key)
{
  __u8 *flags = bpf_map_lookup_elem(map, key);

  return flags && (*flags & TCL_MATCH_INCLUDE);
}

/* Every filter at once (AND); false: leave this connect out. */
static __always_inline bool tcl_wanted(const struct sock *sk,
                                       struct tcl_labels *who, __u32 tgid)
{
  if (tcl_filter_pid && !tcl_in_set(&tcl_pids, &tgid))
    return false;
  if (tcl_filter_uid && !tcl_in_set(&tcl_uids, &who->uid))
    return false;
  if (tcl_filter_comm && !tcl_in_set(&tcl_comms, who->comm))
    return false;
  if (tcl_ncgroups && !tcl_cgroup_matches(sk))
    return false;
  if (tcl_filter_rport || tcl_ignore_rport) {
    __u8 *flags = bpf_map_lookup_elem(&tcl_rports, &who->rport);
    __u8 f = flags ? *flags : 0;
    if (tcl_filter_rport && !(f & TCL_MATCH_INCLUDE))
      return false;
    if (tcl_ignore_rport && (f & TCL_MATCH_IGNORE))
      return false;
  }
  if (tcl_use_networks) {
    struct tcl_net_key key = {.prefixlen = 128};
    struct tcl_net_value *net;

    __builtin_memcpy(key.addr, who->raddr, 16);
    net = bpf_map_lookup_elem(&tcl_networks, &key);
    who->network = net ? net->index : 0;
    if (tcl_filter_network && !(net && net->include))
      return false;
    if (tcl_ignore_network && net && net->ignore)
      return false;
  }
  return true;
}

/* The series of a label set, created on first use; "other" past MaxSeries. */
static __always_inline __u32 tcl_series_of(const struct tcl_labels *who)
{
  struct tcl_labels key = {};
  struct tcl_counters *c;
  __u32 *found, id;

  if (tcl_by & TCL_BY_PROCESS)
    __builtin_memcpy(key.comm, who->comm, sizeof(key.comm));
  if (tcl_by & TCL_BY_UID)
    key.uid = who->uid;
  if (tcl_by & TCL_BY_REMOTE_PORT)
    key.rport = who->rport;
  if (tcl_by & TCL_BY_FAMILY)
    key.family = who->family;
  if (tcl_by & TCL_BY_CGROUP)
    key.cgroup_id = who->cgroup_id;
  if (tcl_by & TCL_BY_NETNS)
    key.netns = who->netns;
  if (tcl_by & TCL_BY_REMOTE_ADDRESS)
    __builtin_memcpy(key.raddr, who->raddr, sizeof(key.raddr));
  if (tcl_by & TCL_BY_REMOTE_NETWORK)
    key.network = who->network;

  found = bpf_map_lookup_elem(&tcl_series, &key);
  if (found)
    return *found;
  if (bpf_map_pop_elem(&tcl_free_ids, &id) == 0) {
    if (bpf_map_update_elem(&tcl_series, &key, &id, BPF_NOEXIST) == 0)
      return id;
    /* Another CPU created it meanwhile, or the map is full. */
    bpf_map_push_elem(&tcl_free_ids, &id, 0);
    found = bpf_map_lookup_elem(&tcl_series, &key);
    if (found)
      return *found;
  }
  c = tcl_counters_get();
  if (c)
    c->overflow++;
  return TCL_SERIES_OTHER;
}

/* ------------------------------------------------------------------------
 * Notifications */

/* The source and destination as the socket has them now. */
static __always_inline void tcl_read_endpoints(const struct sock *sk,
                                               struct tcl_event *e, bool btf)
{
  struct tcl_tuple t = {};

  tcl_sock_tuple(sk, &t, btf);
  e->family = tcl_read_addrs(&sk->__sk_common, e->saddr, e->daddr, btf);
  e->sport = t.lport;
  e->dport = t.rport;
}

static __always_inline void tcl_emit(const struct sock *sk,
                                     const struct tcl_start *st,
                                     const struct tcl_labels *who,
                                     __u64 latency_ns, __u8 reason, bool btf)
{
  struct tcl_event *e = bpf_ringbuf_reserve(&tcl_events, sizeof(*e), 0);
  struct tcl_counters *c;

  if (!e) {
    c = tcl_counters_get();
    if (c)
      c->events_lost++;
    return;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->ktime_ns = bpf_ktime_get_ns();
  e->latency_ns = latency_ns;
  e->tgid = st->tgid;
  e->uid = who->uid;
  __builtin_memcpy(e->comm, st->comm, sizeof(e->comm));
  e->reason = reason;
  tcl_read_endpoints(sk, e, btf);
  /* No wake-up per event (an irq_work, a self-IPI: microseconds in a VM);
   * the reader polls every TCL_NOTIFY_POLL_MS and is woken only when the
   * buffer fills up. */
  bpf_ringbuf_submit(e, bpf_ringbuf_query(&tcl_events, BPF_RB_AVAIL_DATA) >=
                                TCL_EVENTS_WAKEUP_BYTES
                            ? BPF_RB_FORCE_WAKEUP
                            : BPF_RB_NO_WAKEUP);
}

/* ------------------------------------------------------------------------
 * Outcomes */

/* SYN sent -> SYN-ACK processed, in ns; 0: not known. */
static __always_inline __u64 tcl_connect_latency(const struct sock *sk,
                                                 const struct tcl_tcp *t,
                                                 bool btf)
{
  __u64 first = t->wstamp_ns;

  if (t->total_retrans)
    first = tcl_first_syn_take(sk, t->snd_una, btf);
  if (first == 0 || t->clock_ns <= first)
    return 0;
  return t->clock_ns - first;
}

static __always_inline void tcl_connect_end(const struct sock *sk, __u64 key,
                                            int newstate, bool btf)
{
  struct tcl_start st = {};
  struct tcl_labels who = {};
  struct tcl_tcp t = {};
  __u64 ns = 0;
  __u32 slot;

  if (newstate != TCL_TCP_ESTABLISHED && newstate != TCL_TCP_CLOSE)
    return; /* SYN_SENT -> SYN_RECV (simultaneous open): neither */
  if (tcl_foreign_netns(sk, btf))
    return;
  if (tcl_keeps_start() && !tcl_start_take(key, &st)) {
    /* connect() ran before the programs were loaded, or its record was
     * evicted: no process to label or filter with */
    struct tcl_counters *c = tcl_counters_get();
    if (c)
      c->no_start++;
  }
  if (!tcl_read_tcp(sk, btf, &t))
    return;

  tcl_read_labels(sk, &st, &who, btf);
  if (!tcl_wanted(sk, &who, st.tgid)) {
    if (t.total_retrans) /* a completed one's too: nothing else takes it */
      tcl_first_syn_take(sk, t.snd_una, btf);
    tcl_count_filtered();
    return;
  }

  if (newstate == TCL_TCP_ESTABLISHED) {
    ns = tcl_connect_latency(sk, &t, btf);
    slot = ns ? tcl_bucket_index(ns) : TCL_SLOT_UNTIMED;
  } else {
    if (t.total_retrans)
      tcl_first_syn_take(sk, t.snd_una, btf);
    slot = TCL_SLOT_FAILURE_BASE + tcl_failure_reason(sk);
  }

  /* A failure's retransmissions are not news (every timeout has them). */
  bool retransmitted = newstate == TCL_TCP_ESTABLISHED && t.total_retrans;
  if (tcl_report_total)
    tcl_count(true, TCL_FIXED_ALL, slot, ns, retransmitted);
  if (tcl_by)
    tcl_count(false, tcl_series_of(&who), slot, ns, retransmitted);

  if (newstate == TCL_TCP_ESTABLISHED) {
    if (tcl_slow_ns && ns >= tcl_slow_ns)
      tcl_emit(sk, &st, &who, ns, TCL_EVENT_SLOW, btf);
  } else if (tcl_notify_failures) {
    tcl_emit(sk, &st, &who, 0, (__u8)(slot - TCL_SLOT_FAILURE_BASE), btf);
  }
}

/* An inbound series: one host-wide, or one per listening port. */
static __always_inline void tcl_inbound_count(__u16 lport, __u32 slot,
                                              __u64 ns, bool retransmitted)
{
  if (tcl_inbound_by_port)
    tcl_count(false, TCL_SERIES_INBOUND_PORT | lport, slot, ns, retransmitted);
  else
    tcl_count(true, TCL_FIXED_INBOUND, slot, ns, retransmitted);
}

/*
 * SYN_RECV -> ESTABLISHED of a listener's child: tcp_check_req() took the
 * first SYN-ACK's round trip (first SYN-ACK sent -> final ACK) as the
 * child's first RTT sample, unless the SYN-ACK was retransmitted (Karn) or
 * the request was a syncookie.
 */
static __always_inline void tcl_accept_end(const struct sock *sk, bool btf)
{
  struct tcl_tcp t = {};
  __u16 lport;
  __u64 ns = 0;

  if (tcl_foreign_netns(sk, btf))
    return;
  lport = btf ? sk->__sk_common.skc_num : BPF_CORE_READ(sk, __sk_common.skc_num);
  if (!tcl_lport_wanted(lport)) {
    tcl_count_filtered();
    return;
  }
  if (!tcl_read_tcp(sk, btf, &t))
    return;
  if (t.total_retrans) {
    __u64 first = tcl_first_syn_take(sk, t.snd_una, btf), now = bpf_ktime_get_ns();
    if (first && now > first)
      ns = now - first;
  } else {
    ns = ((__u64)t.srtt_us * TCL_NS_PER_US) >> 3;
  }
  tcl_inbound_count(lport, ns ? tcl_bucket_index(ns) : TCL_SLOT_UNTIMED, ns,
                    t.total_retrans != 0);
}

static __always_inline void tcl_state_change(const struct sock *sk, __u64 key,
                                             int oldstate, int newstate,
                                             bool btf)
{
  if (oldstate == TCL_TCP_SYN_SENT)
    tcl_connect_end(sk, key, newstate, btf);
  else if (oldstate == TCL_TCP_CLOSE && newstate == TCL_TCP_SYN_SENT) {
    if (tcl_keeps_start() && !tcl_foreign_netns(sk, btf))
      tcl_connect_start(key);
  } else if (tcl_inbound && oldstate == TCL_TCP_SYN_RECV &&
             newstate == TCL_TCP_ESTABLISHED)
    tcl_accept_end(sk, btf);
}

/* ------------------------------------------------------------------------
 * Entry points */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcl_tp_btf, const struct sock *sk, const int oldstate, const int newstate)
{
  if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != TCL_IPPROTO_TCP)
    return 0;
  tcl_state_change(sk, TCL_SOCK_KEY_BTF(sk), oldstate, newstate, true);
  return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcl_tracepoint(struct trace_event_raw_inet_sock_set_state *ctx)
{
  int oldstate = ctx->oldstate, newstate = ctx->newstate;
  const struct sock *sk = (const struct sock *)ctx->skaddr;

  if (ctx->protocol != TCL_IPPROTO_TCP)
    return 0;
  tcl_state_change(sk, (__u64)ctx->skaddr, oldstate, newstate, false);
  return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcl_retransmit_btf, const struct sock *sk)
{
  tcl_syn_retransmitted(sk);
  return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcl_retransmit_tp(struct tcl_tp_retransmit_skb *ctx)
{
  tcl_syn_retransmitted((const struct sock *)ctx->skaddr);
  return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcl_retransmit_synack_btf, const struct sock *sk,
             const struct request_sock *req)
{
  tcl_synack_retransmitted(sk, req);
  return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int tcl_retransmit_synack_tp(struct tcl_tp_retransmit_synack *ctx)
{
  tcl_synack_retransmitted((const struct sock *)ctx->skaddr, ctx->req);
  return 0;
}

/*
 * Connection requests a listener queued, from the cgroup sock_ops hook of
 * every listener: TIMEOUT_INIT runs for the request socket while the SYN is
 * processed (not for syncookies). With the handshakes completed, the
 * difference says how many never completed, at no cost per request but a
 * per-CPU counter.
 */
SEC("sockops")
int tcl_sockops(struct bpf_sock_ops *skops)
{
  __u16 lport;

  /* Never touch skops->reply: another program may set the RTO. */
  if (!tcl_inbound || skops->op != BPF_SOCK_OPS_TIMEOUT_INIT)
    return 1;
  /* TIMEOUT_INIT also runs for the connecting socket itself (in connect(),
   * a full socket); only the listener's request socket is a request. */
  if (skops->is_fullsock)
    return 1;
  if (skops->family != TCL_AF_INET && skops->family != TCL_AF_INET6)
    return 1;
  if (tcl_netns_only && bpf_get_netns_cookie(skops) != tcl_netns_only)
    return 1;
  lport = (__u16)skops->local_port;
  if (!tcl_lport_wanted(lport))
    return 1;
  tcl_inbound_count(lport, TCL_SLOT_REQUESTS, 0, false);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
