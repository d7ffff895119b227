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

/* errno values of the generic Linux ABI (all architectures but alpha, mips,
 * parisc and sparc, which the build refuses). */
#define TCL_ENETUNREACH 101
#define TCL_ETIMEDOUT 110
#define TCL_ECONNREFUSED 111
#define TCL_EHOSTUNREACH 113

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
const volatile bool tcl_start_in_sk = false;   /* start records: sk storage */
const volatile __u32 tcl_ncgroups = 0;
const volatile __u64 tcl_cgroup_ids[TCL_MAX_CGROUP_FILTERS] = {};
const volatile __u32 tcl_cgroup_levels[TCL_MAX_CGROUP_FILTERS] = {};

/* Start records keyed by the socket's address (the plugin sizes it; one
 * entry when unused). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1);
  __type(key, __u64);
  __type(value, struct tcl_start);
} tcl_start_lru SEC(".maps");

/* Start records in socket-local storage (tp_btf on Linux 5.11 and newer). */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct tcl_start);
} tcl_start_sk SEC(".maps");

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
  __uint(max_entries, 128);
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
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u8);
} tcl_pids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u8);
} tcl_uids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, char[16]);
  __type(value, __u8);
} tcl_comms SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 128);
  __type(key, __u16);
  __type(value, __u8);
} tcl_rports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 256);
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
  struct tcl_stats_key key = {.series = series, .slot = slot};
  struct tcl_stats_value *val, zero = {};
  struct tcl_counters *c;

  val = bpf_map_lookup_elem(&tcl_stats, &key);
  if (!val) {
    /* EEXIST when another CPU created it first is fine: look it up again. */
    bpf_map_update_elem(&tcl_stats, &key, &zero, BPF_NOEXIST);
    val = bpf_map_lookup_elem(&tcl_stats, &key);
    if (!val) {
      c = tcl_counters_get();
      if (c)
        c->stats_full++;
      return;
    }
  }
  /* Per-CPU value and no recursion of the same program on one CPU: a plain
   * add is safe. */
  val->count++;
  val->sum_ns += ns;
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

/* The socket's network namespace: its cookie where the plugin found the
 * kernel to have one (inode numbers are reused at once), else its inode. */
static __always_inline __u64 tcl_netns_of(const struct sock *sk)
{
  struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);

  if (tcl_netns_cookie)
    return BPF_CORE_READ(net, net_cookie);
  return BPF_CORE_READ(net, ns.inum);
}

/* OwnNetnsOnly: sockets of other network namespaces are not ours to see. */
static __always_inline bool tcl_foreign_netns(const struct sock *sk)
{
  return tcl_netns_only && tcl_netns_of(sk) != tcl_netns_only;
}

/* The socket's cgroup v2, where it was created (NULL: none known). */
static __always_inline struct cgroup *tcl_sock_cgroup(const struct sock *sk)
{
  __u64 val;

  if (bpf_core_field_exists(((struct sock_cgroup_data *)0)->cgroup))
    return BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
  /* before 5.15: a pointer unless net_cls/net_prio data is stored instead */
  val = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);
  return (val & 1) ? NULL : (struct cgroup *)val;
}

/* The id of a cgroup's ancestor at a level (itself at its own level). */
static __always_inline __u64 tcl_cgroup_ancestor(struct cgroup *cgrp,
                                                 __u32 level)
{
  __u64 id = 0;

  if (!cgrp || level > (__u32)BPF_CORE_READ(cgrp, level))
    return 0;
  if (bpf_core_field_exists(cgrp->ancestors)) {
    struct cgroup *anc = NULL;

    bpf_probe_read_kernel(&anc, sizeof(anc),
                          (char *)cgrp + bpf_core_field_offset(cgrp->ancestors) +
                              level * sizeof(anc));
    return BPF_CORE_READ(anc, kn, id);
  }
  bpf_probe_read_kernel(
      &id, sizeof(id),
      (char *)cgrp +
          bpf_core_field_offset(((struct cgroup___ids *)cgrp)->ancestor_ids) +
          level * sizeof(id));
  return id;
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
                                           __u8 laddr[16], __u8 raddr[16])
{
  if (BPF_CORE_READ(skc, skc_family) == TCL_AF_INET) {
    __be32 l = BPF_CORE_READ(skc, skc_rcv_saddr);
    __be32 r = BPF_CORE_READ(skc, skc_daddr);

    laddr[10] = laddr[11] = raddr[10] = raddr[11] = 0xff;
    __builtin_memcpy(&laddr[12], &l, 4);
    __builtin_memcpy(&raddr[12], &r, 4);
    return 4;
  }
  BPF_CORE_READ_INTO(laddr, skc, skc_v6_rcv_saddr.in6_u.u6_addr8);
  BPF_CORE_READ_INTO(raddr, skc, skc_v6_daddr.in6_u.u6_addr8);
  return tcl_v4_mapped(raddr) ? 4 : 6;
}

/* The 4-tuple of a socket. Not skc_num: a failed connect releases its port
 * before SYN_SENT -> CLOSE; inet_sport keeps it. */
static __always_inline void tcl_sock_tuple(const struct sock *sk,
                                           struct tcl_tuple *t)
{
  tcl_read_addrs(&sk->__sk_common, t->laddr, t->raddr);
  t->lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
  t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* ------------------------------------------------------------------------
 * Retransmitted handshakes: the first SYN's (SYN-ACK's) time */

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
  if (tcl_foreign_netns(sk))
    return;
  stamp = BPF_CORE_READ(tp, retrans_stamp);
  if (bpf_core_field_exists(tp->tcp_usec_ts) &&
      BPF_CORE_READ_BITFIELD_PROBED(tp, tcp_usec_ts))
    unit = TCL_NS_PER_US;
  /* stamp is floor(first SYN / unit) in 32 bits (it wraps): the latest
   * time in that unit, so that a latency is never longer than it was. */
  v.first_ns = now - now % unit -
               (__u64)(__u32)((__u32)(now / unit) - stamp) * unit + unit - 1;
  if (v.first_ns > now)
    v.first_ns = now;
  v.isn = BPF_CORE_READ(tp, snd_una);
  tcl_sock_tuple(sk, &key);
  bpf_map_update_elem(&tcl_first_syn, &key, &v, BPF_ANY);
}

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

  if (tcl_foreign_netns(listener) ||
      !tcl_lport_wanted(BPF_CORE_READ(treq, req.req.__req_common.skc_num)))
    return;
  v.first_ns = BPF_CORE_READ(treq, snt_synack) * TCL_NS_PER_US +
               (TCL_NS_PER_US - 1);
  v.isn = BPF_CORE_READ(treq, snt_isn);
  tcl_read_addrs(&treq->req.req.__req_common, key.laddr, key.raddr);
  key.lport = BPF_CORE_READ(treq, req.req.__req_common.skc_num);
  key.rport = bpf_ntohs(BPF_CORE_READ(treq, req.req.__req_common.skc_dport));
  bpf_map_update_elem(&tcl_first_syn, &key, &v, BPF_ANY);
}

/* The first SYN's (SYN-ACK's) time of a retransmitted handshake that just
 * completed, the entry taken out; 0 when unknown. An entry of an earlier
 * connection of the same 4-tuple has another ISN. */
static __always_inline __u64 tcl_first_syn_take(const struct sock *sk,
                                                __u32 snd_una)
{
  struct tcl_first_syn *v;
  struct tcl_tuple key = {};
  __u64 first = 0;

  tcl_sock_tuple(sk, &key);
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
 * A socket's key in the start map: a scalar that identifies the socket
 * while it lives. tp_btf hands us a trusted pointer, on which the verifier
 * allows no arithmetic but the difference to another pointer; the classic
 * tracepoint hands us the address as a plain number.
 */
#define TCL_SOCK_KEY_BTF(sk) ((__u64)(sk) - (__u64)(void *)&tcl_start_lru)

static __always_inline void tcl_connect_start(const struct sock *sk, __u64 key,
                                              bool btf)
{
  struct tcl_start st = {};

  st.tgid = bpf_get_current_pid_tgid() >> 32;
  bpf_get_current_comm(st.comm, sizeof(st.comm));
  if (btf && tcl_start_in_sk) {
    struct tcl_start *p = bpf_sk_storage_get(&tcl_start_sk, (void *)sk, 0,
                                             BPF_SK_STORAGE_GET_F_CREATE);
    if (p)
      *p = st;
    return;
  }
  /* Overwrites a record left by an earlier socket at this address. */
  bpf_map_update_elem(&tcl_start_lru, &key, &st, BPF_ANY);
}

static __always_inline bool tcl_start_take(const struct sock *sk, __u64 key,
                                           bool btf, struct tcl_start *st)
{
  struct tcl_start *p;

  if (btf && tcl_start_in_sk) {
    p = bpf_sk_storage_get(&tcl_start_sk, (void *)sk, 0, 0);
    if (!p)
      return false;
    *st = *p;
    return true;
  }
  p = bpf_map_lookup_elem(&tcl_start_lru, &key);
  if (!p)
    return false;
  *st = *p;
  bpf_map_delete_elem(&tcl_start_lru, &key);
  return true;
}

/* ------------------------------------------------------------------------
 * Labels and filters */

static __always_inline bool tcl_needs_destination(void)
{
  return (tcl_by & (TCL_BY_REMOTE_PORT | TCL_BY_FAMILY |
                    TCL_BY_REMOTE_ADDRESS | TCL_BY_REMOTE_NETWORK)) ||
         tcl_filter_rport || tcl_ignore_rport || tcl_use_networks;
}

/* Each field only when something uses it. */
static __always_inline void tcl_read_labels(const struct sock *sk,
                                            const struct tcl_start *st,
                                            struct tcl_labels *who)
{
  if ((tcl_by & TCL_BY_UID) || tcl_filter_uid || tcl_notifies())
    who->uid = BPF_CORE_READ(sk, sk_uid.val);
  if (tcl_by & TCL_BY_CGROUP) {
    struct cgroup *cgrp = tcl_sock_cgroup(sk);
    who->cgroup_id = cgrp ? BPF_CORE_READ(cgrp, kn, id) : 0;
  }
  if ((tcl_by & TCL_BY_PROCESS) || tcl_filter_comm || tcl_notifies())
    __builtin_memcpy(who->comm, st->comm, sizeof(who->comm));
  if (tcl_by & TCL_BY_NETNS)
    who->netns = tcl_netns_of(sk);
  if (tcl_needs_destination()) {
    __u8 laddr[16];

    who->family = tcl_read_addrs(&sk->__sk_common, laddr, who->raddr);
    who->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  }
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
                                               struct tcl_event *e)
{
  struct tcl_tuple t = {};

  tcl_sock_tuple(sk, &t);
  e->family = tcl_read_addrs(&sk->__sk_common, e->saddr, e->daddr);
  e->sport = t.lport;
  e->dport = t.rport;
}

static __always_inline void tcl_emit(const struct sock *sk,
                                     const struct tcl_start *st,
                                     const struct tcl_labels *who,
                                     __u64 latency_ns, __u8 reason)
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
  tcl_read_endpoints(sk, e);
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
                                                 const struct tcl_tcp *t)
{
  __u64 first = t->wstamp_ns;

  if (t->total_retrans)
    first = tcl_first_syn_take(sk, t->snd_una);
  if (first == 0 || t->clock_ns <= first)
    return 0;
  return t->clock_ns - first;
}

static __always_inline void tcl_connect_end(const struct sock *sk, __u64 key,
                                            int newstate, int sk_err, bool btf)
{
  struct tcl_start st = {};
  struct tcl_labels who = {};
  struct tcl_tcp t = {};
  __u64 ns = 0;
  __u32 slot;

  if (newstate != TCL_TCP_ESTABLISHED && newstate != TCL_TCP_CLOSE)
    return; /* SYN_SENT -> SYN_RECV (simultaneous open): neither */
  if (tcl_foreign_netns(sk))
    return;
  if (tcl_keeps_start() && !tcl_start_take(sk, key, btf, &st)) {
    /* connect() ran before the programs were loaded, or its record was
     * evicted: no process to label or filter with */
    struct tcl_counters *c = tcl_counters_get();
    if (c)
      c->no_start++;
  }
  if (!tcl_read_tcp(sk, btf, &t))
    return;

  tcl_read_labels(sk, &st, &who);
  if (!tcl_wanted(sk, &who, st.tgid)) {
    if (t.total_retrans)
      tcl_first_syn_take(sk, t.snd_una);
    tcl_count_filtered();
    return;
  }

  if (newstate == TCL_TCP_ESTABLISHED) {
    ns = tcl_connect_latency(sk, &t);
    slot = ns ? tcl_bucket_index(ns) : TCL_SLOT_UNTIMED;
  } else {
    if (t.total_retrans)
      tcl_first_syn_take(sk, t.snd_una);
    slot = TCL_SLOT_FAILURE_BASE + tcl_reason(sk_err);
  }

  /* A failure's retransmissions are not news (every timeout has them). */
  bool retransmitted = newstate == TCL_TCP_ESTABLISHED && t.total_retrans;
  if (tcl_report_total)
    tcl_count(true, TCL_FIXED_ALL, slot, ns, retransmitted);
  if (tcl_by)
    tcl_count(false, tcl_series_of(&who), slot, ns, retransmitted);

  if (newstate == TCL_TCP_ESTABLISHED) {
    if (tcl_slow_ns && ns >= tcl_slow_ns)
      tcl_emit(sk, &st, &who, ns, TCL_EVENT_SLOW);
  } else if (tcl_notify_failures) {
    tcl_emit(sk, &st, &who, 0, (__u8)(slot - TCL_SLOT_FAILURE_BASE));
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

  if (tcl_foreign_netns(sk))
    return;
  lport = BPF_CORE_READ(sk, __sk_common.skc_num);
  if (!tcl_lport_wanted(lport)) {
    tcl_count_filtered();
    return;
  }
  if (!tcl_read_tcp(sk, btf, &t))
    return;
  if (t.total_retrans) {
    __u64 first = tcl_first_syn_take(sk, t.snd_una), now = bpf_ktime_get_ns();
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
                                             int sk_err, bool btf)
{
  if (oldstate == TCL_TCP_SYN_SENT)
    tcl_connect_end(sk, key, newstate, sk_err, btf);
  else if (oldstate == TCL_TCP_CLOSE && newstate == TCL_TCP_SYN_SENT) {
    if (tcl_keeps_start() && !tcl_foreign_netns(sk))
      tcl_connect_start(sk, key, btf);
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
  tcl_state_change(sk, TCL_SOCK_KEY_BTF(sk), oldstate, newstate,
                   oldstate == TCL_TCP_SYN_SENT && newstate == TCL_TCP_CLOSE
                       ? sk->sk_err
                       : 0,
                   true);
  return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcl_tracepoint(struct trace_event_raw_inet_sock_set_state *ctx)
{
  int oldstate = ctx->oldstate, newstate = ctx->newstate;
  const struct sock *sk = (const struct sock *)ctx->skaddr;

  if (ctx->protocol != TCL_IPPROTO_TCP)
    return 0;
  tcl_state_change(sk, (__u64)ctx->skaddr, oldstate, newstate,
                   oldstate == TCL_TCP_SYN_SENT && newstate == TCL_TCP_CLOSE
                       ? BPF_CORE_READ(sk, sk_err)
                       : 0,
                   false);
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
