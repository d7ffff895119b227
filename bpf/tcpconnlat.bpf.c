// SPDX-License-Identifier: GPL-2.0
/*
 * tcpconnlat: in-kernel aggregation of TCP connect latency.
 *
 * Follows sock:inet_sock_set_state. CLOSE -> SYN_SENT (inside connect(), in
 * the connecting task) applies the filters and remembers the start with the
 * caller's labels; SYN_SENT -> ESTABLISHED adds the latency to per-CPU
 * log-linear histograms; SYN_SENT -> CLOSE counts a failure by reason.
 * Nothing is sent to user space per connection: the plugin reads the
 * cumulative per-CPU maps once per interval.
 *
 * Two entry points share one handler: a BTF raw tracepoint (cheapest, no
 * tracefs needed) and the classic tracepoint. The loader enables exactly one.
 */
#ifdef TCL_USE_VMLINUX_H
#include "vmlinux.h"
#else
#include "kernel_types.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "tcpconnlat.h"

#define TCL_TCP_ESTABLISHED 1
#define TCL_TCP_SYN_SENT 2
#define TCL_TCP_CLOSE 7
#define TCL_IPPROTO_TCP 6
#define TCL_AF_INET 2
#define TCL_AF_INET6 10

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
const volatile __u32 tcl_netns_only = 0;   /* netns inode, 0: every namespace */
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
const volatile __u64 tcl_netns_cookie = 0;     /* OwnNetnsOnly, for sockops */
const volatile bool tcl_filter_lport = false;  /* LocalPort given */
const volatile bool tcl_ignore_lport = false;  /* IgnoreLocalPort given */
const volatile __u32 tcl_ncgroups = 0;
const volatile __u64 tcl_cgroup_ids[TCL_MAX_CGROUP_FILTERS] = {};
const volatile __u32 tcl_cgroup_levels[TCL_MAX_CGROUP_FILTERS] = {};

/* Sized by the plugin before load (MaxInflight, MaxSeries). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64); /* struct sock address */
  __type(value, struct tcl_inflight);
} tcl_inflight SEC(".maps");

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

/* Inbound handshakes in progress: SYN seen -> its time. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct tcl_syn_key);
  __type(value, __u64);
} tcl_synrecv SEC(".maps");

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

static __always_inline struct tcl_counters *tcl_counters_get(void)
{
  __u32 zero = 0;

  return bpf_map_lookup_elem(&tcl_counters, &zero);
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

/* OwnNetnsOnly: sockets of other network namespaces are not ours to see. */
static __always_inline bool tcl_foreign_netns(const struct sock *sk)
{
  return tcl_netns_only &&
         BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) != tcl_netns_only;
}

static __always_inline bool tcl_needs_destination(void)
{
  return (tcl_by & (TCL_BY_REMOTE_PORT | TCL_BY_FAMILY |
                    TCL_BY_REMOTE_ADDRESS | TCL_BY_REMOTE_NETWORK)) ||
         tcl_filter_rport || tcl_ignore_rport || tcl_use_networks;
}

/* ::ffff:a.b.c.d: an IPv4 peer of an IPv6 socket */
static __always_inline bool tcl_v4_mapped(const __u8 a[16])
{
  const __u32 *w = (const __u32 *)a;

  return w[0] == 0 && w[1] == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff &&
         a[11] == 0xff;
}

/* The caller's labels (tgid, uid, cgroup, comm): for breakdowns, filters and
 * notifications only. Four helper calls the bare configuration does without. */
static __always_inline bool tcl_needs_labels(void)
{
  return tcl_by || tcl_slow_ns || tcl_notify_failures || tcl_filter_pid ||
         tcl_filter_uid || tcl_filter_comm || tcl_ncgroups;
}

/* The destination, with IPv4 (and IPv4-mapped IPv6) as ::ffff:a.b.c.d. */
static __always_inline void tcl_read_destination(const struct sock *sk,
                                                 struct tcl_labels *who)
{
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

  who->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == TCL_AF_INET) {
    __be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    who->family = 4;
    who->raddr[10] = 0xff;
    who->raddr[11] = 0xff;
    __builtin_memcpy(&who->raddr[12], &daddr, 4);
  } else {
    BPF_CORE_READ_INTO(&who->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    who->family = tcl_v4_mapped(who->raddr) ? 4 : 6;
  }
}

/* Pid, Uid, Process: the set must name it when given. */
static __always_inline bool tcl_in_set(void *map, const void *key)
{
  __u8 *flags = bpf_map_lookup_elem(map, key);

  return flags && (*flags & TCL_MATCH_INCLUDE);
}

static __always_inline bool tcl_cgroup_matches(void)
{
  for (__u32 i = 0; i < TCL_MAX_CGROUP_FILTERS; i++) {
    if (i >= tcl_ncgroups)
      break;
    if (bpf_get_current_ancestor_cgroup_id(tcl_cgroup_levels[i]) ==
        tcl_cgroup_ids[i])
      return true;
  }
  return false;
}

/* Every filter at once (AND); false: leave this connect out. */
static __always_inline bool tcl_wanted(struct tcl_labels *who, __u32 tgid)
{
  if (tcl_filter_pid && !tcl_in_set(&tcl_pids, &tgid))
    return false;
  if (tcl_filter_uid && !tcl_in_set(&tcl_uids, &who->uid))
    return false;
  if (tcl_filter_comm && !tcl_in_set(&tcl_comms, who->comm))
    return false;
  if (tcl_ncgroups && !tcl_cgroup_matches())
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

static __always_inline void tcl_connect_start(const struct sock *sk)
{
  struct tcl_inflight start = {};
  struct tcl_counters *c;
  __u64 skaddr = (__u64)sk;

  if (tcl_foreign_netns(sk))
    return;

  if (tcl_needs_labels()) {
    start.tgid = bpf_get_current_pid_tgid() >> 32;
    start.who.uid = (__u32)bpf_get_current_uid_gid();
    start.who.cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(start.who.comm, sizeof(start.who.comm));
  }
  if (tcl_by & TCL_BY_NETNS)
    start.who.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  if (tcl_needs_destination())
    tcl_read_destination(sk, &start.who);

  c = tcl_counters_get();
  if (!tcl_wanted(&start.who, start.tgid)) {
    if (c)
      c->filtered++;
    return;
  }

  start.start_ns = bpf_ktime_get_ns();
  if (bpf_map_update_elem(&tcl_inflight, &skaddr, &start, BPF_ANY)) {
    if (c)
      c->dropped++;
    return;
  }
  if (c)
    c->started++;
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

/* The source and destination as the socket has them now. */
static __always_inline void tcl_read_endpoints(const struct sock *sk,
                                               struct tcl_event *e)
{
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

  /* not skc_num: a failed connect releases its port before this point */
  e->sport = __builtin_bswap16(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
  e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == TCL_AF_INET) {
    __be32 saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    __be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    e->family = 4;
    e->saddr[10] = e->saddr[11] = e->daddr[10] = e->daddr[11] = 0xff;
    __builtin_memcpy(&e->saddr[12], &saddr, 4);
    __builtin_memcpy(&e->daddr[12], &daddr, 4);
  } else {
    BPF_CORE_READ_INTO(&e->saddr, sk,
                       __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    e->family = tcl_v4_mapped(e->daddr) ? 4 : 6;
  }
}

static __always_inline void tcl_emit(const struct sock *sk, __u32 tgid,
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
  e->tgid = tgid;
  e->uid = who->uid;
  __builtin_memcpy(e->comm, who->comm, sizeof(e->comm));
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

static __always_inline void tcl_connect_end(const struct sock *sk, int newstate,
                                            int sk_err)
{
  struct tcl_inflight *start;
  struct tcl_labels who = {};
  struct tcl_counters *c;
  __u64 skaddr = (__u64)sk, start_ns, ns = 0;
  __u32 slot, tgid;

  if (tcl_foreign_netns(sk))
    return;
  c = tcl_counters_get();

  start = bpf_map_lookup_elem(&tcl_inflight, &skaddr);
  if (!start) {
    if (c)
      c->unmatched++;
    return;
  }
  start_ns = start->start_ns;
  tgid = start->tgid;
  if (tcl_by || tcl_slow_ns || tcl_notify_failures)
    who = start->who;
  if (bpf_map_delete_elem(&tcl_inflight, &skaddr)) {
    if (c)
      c->unmatched++;
    return;
  }
  if (c)
    c->completed++;

  if (newstate == TCL_TCP_ESTABLISHED) {
    __u64 now = bpf_ktime_get_ns();
    ns = now > start_ns ? now - start_ns : 0;
    slot = tcl_bucket_index(ns);
  } else if (newstate == TCL_TCP_CLOSE) {
    slot = TCL_SLOT_FAILURE_BASE + tcl_reason(sk_err);
  } else {
    return; /* SYN_SENT -> SYN_RECV (simultaneous open): neither */
  }

  if (tcl_report_total)
    tcl_stats_add(TCL_SERIES_ALL, slot, ns);
  if (tcl_by)
    tcl_stats_add(tcl_series_of(&who), slot, ns);

  if (newstate == TCL_TCP_ESTABLISHED) {
    if (tcl_slow_ns && ns >= tcl_slow_ns)
      tcl_emit(sk, tgid, &who, ns, TCL_EVENT_SLOW);
  } else if (tcl_notify_failures) {
    tcl_emit(sk, tgid, &who, 0, (__u8)(slot - TCL_SLOT_FAILURE_BASE));
  }
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcl_tp_btf, const struct sock *sk, const int oldstate, const int newstate)
{
  if (oldstate == TCL_TCP_CLOSE && newstate == TCL_TCP_SYN_SENT) {
    if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != TCL_IPPROTO_TCP)
      return 0;
    tcl_connect_start(sk);
  } else if (oldstate == TCL_TCP_SYN_SENT) {
    if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != TCL_IPPROTO_TCP)
      return 0;
    tcl_connect_end(sk, newstate,
                    newstate == TCL_TCP_CLOSE ? sk->sk_err : 0);
  }
  return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcl_tracepoint(struct trace_event_raw_inet_sock_set_state *ctx)
{
  int oldstate = ctx->oldstate, newstate = ctx->newstate;
  const struct sock *sk;

  if (ctx->protocol != TCL_IPPROTO_TCP)
    return 0;
  sk = (const struct sock *)ctx->skaddr;
  if (oldstate == TCL_TCP_CLOSE && newstate == TCL_TCP_SYN_SENT)
    tcl_connect_start(sk);
  else if (oldstate == TCL_TCP_SYN_SENT)
    tcl_connect_end(sk, newstate,
                    newstate == TCL_TCP_CLOSE ? BPF_CORE_READ(sk, sk_err) : 0);
  return 0;
}

/*
 * Inbound handshakes, from the cgroup sock_ops hooks of every listener:
 * TIMEOUT_INIT runs for the request socket while the SYN is processed, just
 * before the SYN-ACK is sent; PASSIVE_ESTABLISHED runs for the new socket
 * when the final ACK is accepted. The difference is the SYN-ACK to ACK round
 * trip (plus the microseconds of building the SYN-ACK), measured in
 * nanoseconds, where the socket's own first RTT sample has the millisecond
 * resolution of the timestamp option.
 */
static __always_inline void tcl_syn_key_of(const struct bpf_sock_ops *skops,
                                           struct tcl_syn_key *key)
{
  if (skops->family == TCL_AF_INET) {
    __u32 l = skops->local_ip4, r = skops->remote_ip4;
    key->laddr[10] = key->laddr[11] = key->raddr[10] = key->raddr[11] = 0xff;
    __builtin_memcpy(&key->laddr[12], &l, 4);
    __builtin_memcpy(&key->raddr[12], &r, 4);
  } else {
    __u32 l[4] = {skops->local_ip6[0], skops->local_ip6[1],
                  skops->local_ip6[2], skops->local_ip6[3]};
    __u32 r[4] = {skops->remote_ip6[0], skops->remote_ip6[1],
                  skops->remote_ip6[2], skops->remote_ip6[3]};
    __builtin_memcpy(key->laddr, l, 16);
    __builtin_memcpy(key->raddr, r, 16);
  }
  key->lport = (__u16)skops->local_port;
  key->rport = (__u16)__builtin_bswap32(skops->remote_port);
}

SEC("sockops")
int tcl_sockops(struct bpf_sock_ops *skops)
{
  struct tcl_syn_key key = {};
  struct tcl_counters *c;
  __u32 op = skops->op;
  __u64 *start, now, ns;

  /* Never touch skops->reply: another program may set the RTO. */
  if (!tcl_inbound || (op != BPF_SOCK_OPS_TIMEOUT_INIT &&
                       op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB))
    return 1;
  /* TIMEOUT_INIT also runs for the connecting socket itself (in connect(),
   * a full socket); only the listener's request socket starts a handshake.
   * Without this test every outgoing connect left an entry behind until
   * InboundTimeout, and under load the map stayed full. */
  if (op == BPF_SOCK_OPS_TIMEOUT_INIT && skops->is_fullsock)
    return 1;
  if (skops->family != TCL_AF_INET && skops->family != TCL_AF_INET6)
    return 1;
  if (tcl_netns_cookie && bpf_get_netns_cookie(skops) != tcl_netns_cookie)
    return 1;
  tcl_syn_key_of(skops, &key);
  if (tcl_filter_lport || tcl_ignore_lport) {
    __u8 *flags = bpf_map_lookup_elem(&tcl_lports, &key.lport);
    __u8 f = flags ? *flags : 0;
    if (tcl_filter_lport && !(f & TCL_MATCH_INCLUDE))
      return 1;
    if (tcl_ignore_lport && (f & TCL_MATCH_IGNORE))
      return 1;
  }

  now = bpf_ktime_get_ns();
  c = tcl_counters_get();
  if (op == BPF_SOCK_OPS_TIMEOUT_INIT) {
    /* EEXIST: a retransmitted SYN of the same handshake keeps its start */
    long err = bpf_map_update_elem(&tcl_synrecv, &key, &now, BPF_NOEXIST);
    if (c && err == 0)
      c->inbound_started++;
    else if (c && err != -17 /* EEXIST */)
      c->inbound_dropped++;
    return 1;
  }

  start = bpf_map_lookup_elem(&tcl_synrecv, &key);
  if (!start)
    return 1;
  ns = now > *start ? now - *start : 0;
  if (bpf_map_delete_elem(&tcl_synrecv, &key))
    return 1;
  tcl_stats_add(tcl_inbound_by_port ? (TCL_SERIES_INBOUND_PORT | key.lport)
                                    : TCL_SERIES_INBOUND,
                tcl_bucket_index(ns), ns);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
