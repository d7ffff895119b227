// SPDX-License-Identifier: GPL-2.0
/*
 * tcpconnlat: in-kernel aggregation of TCP connect latency.
 *
 * Follows sock:inet_sock_set_state. CLOSE -> SYN_SENT (inside connect(), in
 * the connecting task) remembers the start; SYN_SENT -> ESTABLISHED adds the
 * latency to a per-CPU log-linear histogram; SYN_SENT -> CLOSE counts a
 * failure by reason. Nothing is sent to user space per connection: the plugin
 * reads the cumulative per-CPU maps once per interval.
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

/* errno values of the generic Linux ABI (all architectures but alpha, mips,
 * parisc and sparc, which the build refuses). */
#define TCL_ENETUNREACH 101
#define TCL_ETIMEDOUT 110
#define TCL_ECONNREFUSED 111
#define TCL_EHOSTUNREACH 113

/* Set by the plugin before load (read-only to the programs, so the verifier
 * prunes what a setting switches off). */
const volatile __u32 tcl_netns_only = 0; /* netns inode, 0: every namespace */

/* Sized by the plugin before load (MaxInflight, series bound). */
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

static __always_inline void tcl_connect_start(const struct sock *sk)
{
  struct tcl_inflight start = {};
  struct tcl_counters *c;
  __u64 skaddr = (__u64)sk, pid_tgid;

  if (tcl_foreign_netns(sk))
    return;

  pid_tgid = bpf_get_current_pid_tgid();
  start.start_ns = bpf_ktime_get_ns();
  start.tgid = pid_tgid >> 32;
  start.uid = (__u32)bpf_get_current_uid_gid();
  start.cgroup_id = bpf_get_current_cgroup_id();
  bpf_get_current_comm(start.comm, sizeof(start.comm));

  c = tcl_counters_get();
  if (bpf_map_update_elem(&tcl_inflight, &skaddr, &start, BPF_ANY)) {
    if (c)
      c->dropped++;
    return;
  }
  if (c)
    c->started++;
}

static __always_inline void tcl_connect_end(const struct sock *sk, int newstate,
                                            int sk_err)
{
  struct tcl_inflight *start;
  struct tcl_counters *c;
  __u64 skaddr = (__u64)sk, now, start_ns;

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
  if (bpf_map_delete_elem(&tcl_inflight, &skaddr)) {
    if (c)
      c->unmatched++;
    return;
  }
  if (c)
    c->completed++;

  if (newstate == TCL_TCP_ESTABLISHED) {
    now = bpf_ktime_get_ns();
    __u64 ns = now > start_ns ? now - start_ns : 0;
    tcl_stats_add(TCL_SERIES_ALL, tcl_bucket_index(ns), ns);
  } else if (newstate == TCL_TCP_CLOSE) {
    tcl_stats_add(TCL_SERIES_ALL, TCL_SLOT_FAILURE_BASE + tcl_reason(sk_err), 0);
  }
  /* SYN_SENT -> SYN_RECV (simultaneous open) is neither: forgotten. */
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

char LICENSE[] SEC("license") = "GPL";
