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

/* The in-flight table (see struct tcl_inflight_set): MaxInflight ways,
 * rounded up to a power of two, sized by the plugin before load. */
const volatile __u32 tcl_inflight_mask = 0; /* sets - 1 */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, struct tcl_inflight_set);
} tcl_inflight SEC(".maps");

/* Labels of the starts, way by way; one entry unless labels are used. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tcl_inflight_who);
} tcl_inflight_who SEC(".maps");

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

/* Inbound handshakes in progress (struct tcl_syn_set), sized like the
 * in-flight table; the plugin maps it to expire the ones that never end. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4096);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct tcl_syn_set);
} tcl_synrecv SEC(".maps");

const volatile __u64 tcl_inbound_timeout_ns = 75000000000ULL;

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

/* Notifications carry the caller's pid, uid and command. */
static __always_inline bool tcl_notifies(void)
{
  return tcl_slow_ns || tcl_notify_failures;
}

/* Labels kept with a start until its outcome: breakdowns, notifications. */
static __always_inline bool tcl_keeps_labels(void)
{
  return tcl_by || tcl_slow_ns || tcl_notify_failures;
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

/*
 * A socket's key in the in-flight table: a scalar that identifies the
 * socket while it lives. tp_btf hands us a trusted pointer, on which the
 * verifier allows no arithmetic but the difference to another pointer; the
 * classic tracepoint hands us the address as a plain number.
 */
/*
 * Publishes a claimed way: its owner word goes from busy to the new owner
 * after the start time (and labels) are written. x86 keeps stores in
 * program order, so a plain store after a compiler barrier is a release;
 * elsewhere an atomic exchange (a full barrier) does it.
 */
static __always_inline void tcl_publish(__u64 *owner, __u64 value)
{
#if defined(__TARGET_ARCH_x86)
  asm volatile("" ::: "memory");
  *(volatile __u64 *)owner = value;
#else
  __sync_lock_test_and_set(owner, value);
#endif
}

/* Scans of a set before a start gives up (counted in dropped). */
#define TCL_CLAIM_TRIES 3

#define TCL_SOCK_KEY_BTF(sk) ((__u64)(sk) - (__u64)(void *)&tcl_inflight)

/* The set of a socket: Fibonacci hashing of its key. */
static __always_inline struct tcl_inflight_set *tcl_set_of(__u64 skaddr,
                                                           __u32 *idx)
{
  *idx = (__u32)((skaddr * 0x9E3779B97F4A7C15ULL) >> 32) & tcl_inflight_mask;
  return bpf_map_lookup_elem(&tcl_inflight, idx);
}

static __always_inline void tcl_connect_start(const struct sock *sk,
                                              __u64 skaddr)
{
  struct tcl_inflight_who start = {};
  struct tcl_inflight_set *set;
  struct tcl_inflight_way *w;
  struct tcl_counters *c;
  __u64 oldest = ~0ULL, old = 0;
  __u32 idx, way = 0;

  if (tcl_foreign_netns(sk))
    return;

  /* Each helper only when something uses what it returns. */
  if (tcl_filter_pid || tcl_notifies())
    start.tgid = bpf_get_current_pid_tgid() >> 32;
  if ((tcl_by & TCL_BY_UID) || tcl_filter_uid || tcl_notifies())
    start.who.uid = (__u32)bpf_get_current_uid_gid();
  if (tcl_by & TCL_BY_CGROUP)
    start.who.cgroup_id = bpf_get_current_cgroup_id();
  if ((tcl_by & TCL_BY_PROCESS) || tcl_filter_comm || tcl_notifies())
    bpf_get_current_comm(start.who.comm, sizeof(start.who.comm));
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

  set = tcl_set_of(skaddr, &idx);
  if (!set)
    return;
  /* A free way, else the oldest start's, never one being written. The
   * claim is a compare-and-exchange from the owner the scan saw, so it
   * fails if another CPU claimed or released that way meanwhile: then scan
   * again. */
  w = NULL;
#pragma nounroll
  for (__u32 attempt = 0; attempt < TCL_CLAIM_TRIES; attempt++) {
    __u64 seen = TCL_INFLIGHT_BUSY;

    oldest = ~0ULL;
#pragma unroll
    for (__u32 i = 0; i < TCL_INFLIGHT_WAYS; i++) {
      __u64 o = set->way[i].owner, t = set->way[i].start_ns;

      if (o == 0) {
        way = i;
        seen = 0;
        break;
      }
      if (o != TCL_INFLIGHT_BUSY && t < oldest) {
        oldest = t;
        way = i;
        seen = o;
      }
    }
    if (seen == TCL_INFLIGHT_BUSY)
      continue; /* every way is being written right now */
    way &= TCL_INFLIGHT_WAYS - 1;
    if (__sync_val_compare_and_swap(&set->way[way].owner, seen,
                                    TCL_INFLIGHT_BUSY) == seen) {
      w = &set->way[way];
      old = seen;
      break;
    }
  }
  if (!w) {
    /* the whole set kept changing under us: leave this start out */
    if (c)
      c->dropped++;
    return;
  }
  w->start_ns = bpf_ktime_get_ns();
  if (tcl_keeps_labels()) {
    __u32 widx = idx * TCL_INFLIGHT_WAYS + way;
    struct tcl_inflight_who *who = bpf_map_lookup_elem(&tcl_inflight_who, &widx);
    if (who)
      *who = start;
  }
  /* Publish (a full barrier: the start is written before it is ours). */
  tcl_publish(&w->owner, skaddr);
  if (c) {
    c->started++;
    if (old)
      c->evicted++;
  }
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

/* When the SYN-ACK began to be processed: tcp_rcv_state_process() refreshes
 * the socket's clock cache (tcp_clock_ns(), bpf_ktime_get_ns()'s clock) before
 * it handles a SYN_SENT socket, which saves a clock read per connect. */
static __always_inline __u64 tcl_established_ns(const struct sock *sk,
                                                __u64 start_ns, bool btf)
{
  if (bpf_core_field_exists(((struct tcp_sock *)0)->tcp_clock_cache)) {
    __u64 t = 0;

    if (btf) {
      /* a typed pointer: a plain load, no probe read */
      struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
      if (tp)
        t = tp->tcp_clock_cache;
    } else {
      t = BPF_CORE_READ((const struct tcp_sock *)sk, tcp_clock_cache);
    }
    if (t >= start_ns)
      return t;
  }
  return bpf_ktime_get_ns();
}

static __always_inline void tcl_connect_end(const struct sock *sk,
                                            __u64 skaddr, int newstate,
                                            int sk_err, bool btf)
{
  struct tcl_inflight_set *set;
  struct tcl_inflight_way *w = NULL;
  struct tcl_labels who = {};
  struct tcl_counters *c;
  __u64 start_ns, ns = 0;
  __u32 idx, slot, tgid = 0, way = 0;

  if (tcl_foreign_netns(sk))
    return;
  c = tcl_counters_get();

  set = tcl_set_of(skaddr, &idx);
  if (set) {
#pragma unroll
    for (__u32 i = 0; i < TCL_INFLIGHT_WAYS; i++) {
      if (set->way[i].owner == skaddr) {
        way = i;
        w = &set->way[i];
        break;
      }
    }
  }
  if (!w) {
    if (c)
      c->unmatched++;
    return;
  }
  start_ns = w->start_ns;
  if (tcl_keeps_labels()) {
    __u32 widx = idx * TCL_INFLIGHT_WAYS + way;
    struct tcl_inflight_who *st = bpf_map_lookup_elem(&tcl_inflight_who, &widx);
    if (st) {
      tgid = st->tgid;
      who = st->who;
    }
  }
  /* Release the way; if a newer start took it meanwhile, what was read may
   * be that start's: count the outcome as unmatched instead. */
  if (__sync_val_compare_and_swap(&w->owner, skaddr, 0) != skaddr) {
    if (c)
      c->unmatched++;
    return;
  }
  if (c)
    c->completed++;

  if (newstate == TCL_TCP_ESTABLISHED) {
    __u64 now = tcl_established_ns(sk, start_ns, btf);
    ns = now > start_ns ? now - start_ns : 0;
    slot = tcl_bucket_index(ns);
  } else if (newstate == TCL_TCP_CLOSE) {
    slot = TCL_SLOT_FAILURE_BASE + tcl_reason(sk_err);
  } else {
    return; /* SYN_SENT -> SYN_RECV (simultaneous open): neither */
  }

  if (tcl_report_total)
    tcl_fixed_add(TCL_FIXED_ALL, slot, ns);
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
    tcl_connect_start(sk, TCL_SOCK_KEY_BTF(sk));
  } else if (oldstate == TCL_TCP_SYN_SENT) {
    if (BPF_CORE_READ_BITFIELD(sk, sk_protocol) != TCL_IPPROTO_TCP)
      return 0;
    tcl_connect_end(sk, TCL_SOCK_KEY_BTF(sk), newstate,
                    newstate == TCL_TCP_CLOSE ? sk->sk_err : 0, true);
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
    tcl_connect_start(sk, (__u64)ctx->skaddr);
  else if (oldstate == TCL_TCP_SYN_SENT)
    tcl_connect_end(sk, (__u64)ctx->skaddr, newstate,
                    newstate == TCL_TCP_CLOSE ? BPF_CORE_READ(sk, sk_err) : 0,
                    false);
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
static __always_inline __u64 tcl_mix(__u64 h, __u64 v)
{
  h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
  return h ^ (h >> 29);
}

/* The owner tag of a handshake: a hash of its 4-tuple (never 0 or busy). */
static __always_inline __u64 tcl_syn_tag(const struct bpf_sock_ops *skops,
                                         __u32 lport)
{
  __u64 h = tcl_mix(0x243F6A8885A308D3ULL,
                    ((__u64)lport << 32) | skops->remote_port);

  if (skops->family == TCL_AF_INET) {
    h = tcl_mix(h, ((__u64)skops->local_ip4 << 32) | skops->remote_ip4);
  } else {
    h = tcl_mix(h, ((__u64)skops->local_ip6[0] << 32) | skops->local_ip6[1]);
    h = tcl_mix(h, ((__u64)skops->local_ip6[2] << 32) | skops->local_ip6[3]);
    h = tcl_mix(h, ((__u64)skops->remote_ip6[0] << 32) | skops->remote_ip6[1]);
    h = tcl_mix(h, ((__u64)skops->remote_ip6[2] << 32) | skops->remote_ip6[3]);
  }
  return h | 2; /* not 0 (free), not 1 (busy) */
}

/* The SYN of a handshake: remember when, in a free way, a way of the same
 * 4-tuple, or the oldest one's. A SYN that follows an unfinished handshake
 * of the same 4-tuple (its request was dropped) keeps the earlier start. */
static __always_inline void tcl_syn_start(struct tcl_syn_set *set, __u64 tag,
                                          __u32 lport, __u64 now)
{
  struct tcl_counters *c = tcl_counters_get();
  struct tcl_syn_way *w = NULL;
  __u64 oldest, old = 0;
  __u32 way = 0;

  /* As for connects (tcl_connect_start), with a way of the same 4-tuple
   * first: still fresh, it is this handshake's earlier SYN. */
#pragma nounroll
  for (__u32 attempt = 0; attempt < TCL_CLAIM_TRIES; attempt++) {
    __u64 seen = TCL_INFLIGHT_BUSY;
    bool same = false;

    oldest = ~0ULL;
#pragma unroll
    for (__u32 i = 0; i < TCL_SYN_WAYS; i++) {
      __u64 o = set->way[i].owner, t = set->way[i].start_ns;

      if (o == tag) {
        if (now - t < tcl_inbound_timeout_ns)
          return;
        way = i;
        seen = o;
        same = true;
        break;
      }
      if (o == 0 && oldest) {
        way = i;
        seen = 0;
        oldest = 0;
      } else if (o != 0 && o != TCL_INFLIGHT_BUSY && t < oldest) {
        oldest = t;
        way = i;
        seen = o;
      }
    }
    if (seen == TCL_INFLIGHT_BUSY)
      continue;
    way &= TCL_SYN_WAYS - 1;
    if (__sync_val_compare_and_swap(&set->way[way].owner, seen,
                                    TCL_INFLIGHT_BUSY) == seen) {
      w = &set->way[way];
      old = same ? 0 : seen;
      break;
    }
  }
  if (!w) {
    if (c)
      c->inbound_dropped++;
    return;
  }
  w->start_ns = now;
  w->lport = lport;
  tcl_publish(&w->owner, tag);
  if (c) {
    c->inbound_started++;
    if (old)
      c->inbound_evicted++;
  }
}

/* The final ACK: the handshake's time since its SYN, or 0 if unknown. */
static __always_inline __u64 tcl_syn_end(struct tcl_syn_set *set, __u64 tag,
                                         __u64 now)
{
#pragma unroll
  for (__u32 i = 0; i < TCL_SYN_WAYS; i++) {
    if (set->way[i].owner == tag) {
      __u64 start = set->way[i].start_ns;

      if (__sync_val_compare_and_swap(&set->way[i].owner, tag, 0) != tag)
        return 0;
      return now > start ? now - start : 1;
    }
  }
  return 0;
}

SEC("sockops")
int tcl_sockops(struct bpf_sock_ops *skops)
{
  struct tcl_syn_set *set;
  __u32 op = skops->op, lport, idx;
  __u64 tag, ns;

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
  lport = skops->local_port;
  if (tcl_filter_lport || tcl_ignore_lport) {
    __u16 key = (__u16)lport;
    __u8 *flags = bpf_map_lookup_elem(&tcl_lports, &key);
    __u8 f = flags ? *flags : 0;
    if (tcl_filter_lport && !(f & TCL_MATCH_INCLUDE))
      return 1;
    if (tcl_ignore_lport && (f & TCL_MATCH_IGNORE))
      return 1;
  }

  tag = tcl_syn_tag(skops, lport);
  idx = (__u32)(tag >> 32) & tcl_inflight_mask;
  set = bpf_map_lookup_elem(&tcl_synrecv, &idx);
  if (!set)
    return 1;
  if (op == BPF_SOCK_OPS_TIMEOUT_INIT) {
    tcl_syn_start(set, tag, lport, bpf_ktime_get_ns());
    return 1;
  }
  ns = tcl_syn_end(set, tag, bpf_ktime_get_ns());
  if (!ns)
    return 1;
  if (tcl_inbound_by_port)
    tcl_stats_add(TCL_SERIES_INBOUND_PORT | (__u16)lport, tcl_bucket_index(ns),
                  ns);
  else
    tcl_fixed_add(TCL_FIXED_INBOUND, tcl_bucket_index(ns), ns);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
