// SPDX-License-Identifier: GPL-2.0
/*
 * tcpconnlat, passive mode: TCP handshake latency seen on an interface.
 *
 * TC classifiers on the ingress and egress of each configured interface pair
 * every SYN with the SYN-ACK of the reverse 4-tuple, so that traffic the host
 * only forwards or bridges is measured too. The latency (SYN-ACK time - SYN
 * time) goes into the same per-CPU log-linear histogram as the socket
 * tracepoint's (bpf/tcpconnlat.h), one series per interface and direction of
 * the SYN; the plugin reads the cumulative maps once per interval.
 *
 * The packet path: every packet pays for a bounds-checked look at the
 * Ethernet (and up to two VLAN tags), IPv4/IPv6 and TCP headers, read in
 * place. Only SYN and SYN-ACK segments go on to map work. IPv6 extension
 * headers are skipped when they are hop-by-hop, routing or destination
 * options (at most three); a fragment header or anything else ends the look.
 * IPv4 fragments other than the first carry no TCP header and are ignored.
 *
 * The programs never drop, change or redirect a packet. They return
 * TC_ACT_UNSPEC, which lets the filters after them in the chain run as if
 * they were not there (TC_ACT_OK would end classification and hide the
 * packet from every later filter).
 */
#ifdef TCL_USE_VMLINUX_H
#include "vmlinux.h"
#else
#include "kernel_types.h"

/* The BPF context of a TC program (uapi, stable ABI): a prefix is enough,
 * the verifier rewrites the accesses by offset. */
struct __sk_buff {
  __u32 len;
  __u32 pkt_type;
  __u32 mark;
  __u32 queue_mapping;
  __u32 protocol;
  __u32 vlan_present;
  __u32 vlan_tci;
  __u32 vlan_proto;
  __u32 priority;
  __u32 ingress_ifindex;
  __u32 ifindex;
  __u32 tc_index;
  __u32 cb[5];
  __u32 hash;
  __u32 tc_classid;
  __u32 data;
  __u32 data_end;
};
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tcpconnlat.h"
#include "iface_shared.h"
#include "stats.bpf.h"

#define TCL_TC_ACT_UNSPEC (-1)
#define TCL_MAP_LRU_HASH 9 /* BPF_MAP_TYPE_LRU_HASH */

#define TCL_ETH_HLEN 14
#define TCL_ETH_P_IP 0x0800
#define TCL_ETH_P_IPV6 0x86DD
#define TCL_ETH_P_8021Q 0x8100
#define TCL_ETH_P_8021AD 0x88A8
#define TCL_IPPROTO_TCP 6
#define TCL_IPV6_HOPOPTS 0
#define TCL_IPV6_ROUTING 43
#define TCL_IPV6_DSTOPTS 60

#define TCL_TCP_FIN 0x01
#define TCL_TCP_SYN 0x02
#define TCL_TCP_RST 0x04
#define TCL_TCP_ACK 0x10
#define TCL_TCPOPT_EOL 0
#define TCL_TCPOPT_NOP 1
#define TCL_TCPOPT_TIMESTAMP 8
#define TCL_TCPOLEN_TIMESTAMP 10
#define TCL_TCP_MAX_OPTLEN 40 /* options after the 20-byte header */

/* Headers further in than this are not looked at. */
#define TCL_MAX_HDR_OFF 256

/* The configured interfaces, set by the plugin before load. */
const volatile __u32 tcl_iface_count = 0;
const volatile __u32 tcl_iface_ifindex[TCL_IFACE_MAX] = {};

struct {
  __uint(type, TCL_MAP_LRU_HASH);
  __uint(max_entries, TCL_IFACE_MAX_FLOWS);
  __type(key, struct tcl_iface_flow);
  __type(value, struct tcl_iface_syn);
} tcl_iface_flows SEC(".maps");

/* The same layout as the socket tracepoint's histogram; sized by the plugin
 * (interfaces x 2 x TCL_NBUCKETS), entries allocated on first use. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, TCL_IFACE_NSERIES * TCL_NBUCKETS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct tcl_stats_key);
  __type(value, struct tcl_stats_value);
} tcl_iface_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, TCL_IFACE_NSERIES);
  __type(key, __u32);
  __type(value, struct tcl_iface_counters);
} tcl_iface_counters SEC(".maps");

/* What one SYN or SYN-ACK says. */
struct tcl_segment {
  __u8 saddr[16];
  __u8 daddr[16];
  __u16 sport; /* host byte order */
  __u16 dport;
  __u32 seq;
  __u32 ack;
  __u32 tsval;
  __u32 tsecr;
  __u32 ifindex;
  __u32 dir;      /* TCL_IFACE_DIR_* of this segment */
  __u32 opt_off;  /* TCP options: offset in the packet, length */
  __u32 opt_len;
  __u32 data_len; /* payload: data on a SYN (TCP Fast Open) */
  __u8 synack;
  __u8 has_ts;
  __u8 pad[2];
};

/* Big-endian fields at any alignment: headers copied to the stack may sit
 * at odd offsets, where the verifier allows only byte loads. */
static __always_inline __u16 tcl_be16(const __u8 *p)
{
  __u16 v;

  __builtin_memcpy(&v, p, sizeof(v));
  return bpf_ntohs(v);
}

static __always_inline __u32 tcl_be32(const __u8 *p)
{
  __u32 v;

  __builtin_memcpy(&v, p, sizeof(v));
  return bpf_ntohl(v);
}

/*
 * len bytes of header at off: in place when the linear part of the packet
 * holds them (always, in practice, for headers), else copied into buf.
 */
static __always_inline const __u8 *tcl_hdr(struct __sk_buff *skb, __u32 off,
                                           const __u32 len, __u8 *buf)
{
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  __u8 *p;

  if (off > TCL_MAX_HDR_OFF)
    return NULL;
  p = (__u8 *)data + off;
  if ((void *)(p + len) <= end)
    return p;
  if (bpf_skb_load_bytes(skb, off, buf, len) != 0)
    return NULL;
  return buf;
}

static __always_inline struct tcl_iface_counters *tcl_iface_counters_get(__u32 series)
{
  return bpf_map_lookup_elem(&tcl_iface_counters, &series);
}

static __always_inline int tcl_iface_index(__u32 ifindex)
{
  for (__u32 i = 0; i < TCL_IFACE_MAX; i++) {
    if (i >= tcl_iface_count)
      break;
    if (tcl_iface_ifindex[i] == ifindex)
      return (int)i;
  }
  return -1;
}

/*
 * The timestamp option (RFC 7323) among the segment's options. Each step
 * reads one option's kind and length (two bytes) from the packet, so that
 * no variable offset into the stack is needed (Linux 5.10 rejects those)
 * and every read has a constant, non-zero size. A static subprogram: verified in the
 * caller's context (5.10 cannot verify a global function taking a pointer,
 * and a global one is checked without the caller's bounds). The offset is
 * only a helper argument, never a bound, so the verifier's states for
 * different offsets prune each other and the walk stays cheap.
 */
static __noinline int tcl_tcp_timestamps(struct __sk_buff *skb,
                                         struct tcl_segment *seg)
{
  __u32 off = seg->opt_off, end = seg->opt_off + seg->opt_len;
  __u8 kind_len[2];
  __u32 ts[2];

  for (int n = 0; n < TCL_TCP_MAX_OPTLEN; n++) {
    /* One byte left can only be a NOP or the end: no timestamp there. */
    if (off + 2 > end || bpf_skb_load_bytes(skb, off, kind_len, 2) != 0)
      return 0;
    if (kind_len[0] == TCL_TCPOPT_EOL)
      return 0;
    if (kind_len[0] == TCL_TCPOPT_NOP) {
      off++;
      continue;
    }
    if (kind_len[0] == TCL_TCPOPT_TIMESTAMP &&
        kind_len[1] == TCL_TCPOLEN_TIMESTAMP)
      break;
    if (kind_len[1] < 2) /* malformed: no progress */
      return 0;
    off += kind_len[1];
  }
  if (off + TCL_TCPOLEN_TIMESTAMP > end ||
      bpf_skb_load_bytes(skb, off + 2, ts, sizeof(ts)) != 0)
    return 0;
  seg->tsval = bpf_ntohl(ts[0]);
  seg->tsecr = bpf_ntohl(ts[1]);
  seg->has_ts = 1;
  return 1;
}

/* A SYN: remember it, or note the retransmission. */
static __always_inline void tcl_iface_syn(const struct tcl_segment *seg,
                                          __u32 idx)
{
  __u32 dir = seg->dir;
  struct tcl_iface_flow key = {.ifindex = seg->ifindex, .dir = dir};
  struct tcl_iface_syn *known, syn = {};
  struct tcl_iface_counters *c;
  __u32 series = TCL_IFACE_SERIES(idx, dir);
  __u64 now = bpf_ktime_get_ns();

  c = tcl_iface_counters_get(series);
  if (!c)
    return;
  __builtin_memcpy(key.client, seg->saddr, 16);
  __builtin_memcpy(key.server, seg->daddr, 16);
  key.client_port = seg->sport;
  key.server_port = seg->dport;

  known = bpf_map_lookup_elem(&tcl_iface_flows, &key);
  if (known && known->isn == seg->seq) {
    /* The same handshake again: the first SYN (or its SYN-ACK) was lost. */
    known->last_ns = now;
    known->last_tsval = seg->tsval;
    if (seg->data_len)
      known->data_len = (__u16)seg->data_len;
    if (known->sent < 255)
      known->sent++;
    c->syn_retransmit++;
    return;
  }
  if (known)
    c->replaced++; /* a new handshake on the 4-tuple: the old one went unanswered */

  syn.first_ns = syn.last_ns = now;
  syn.isn = seg->seq;
  syn.first_tsval = syn.last_tsval = seg->tsval;
  syn.series = (__u16)series;
  syn.sent = 1;
  syn.has_ts = seg->has_ts;
  syn.data_len = (__u16)seg->data_len;
  c->syn++;
  if (bpf_map_update_elem(&tcl_iface_flows, &key, &syn, BPF_ANY) == 0)
    c->inserted++;
}

/*
 * Does a SYN-ACK acknowledge this SYN? Its ack is the SYN's ISN + 1, or with
 * TCP Fast Open, when the server took the data the SYN carried, ISN + 1 +
 * the data's length (the SYN-ACK then acknowledges the data too).
 */
static __always_inline bool tcl_iface_acks(const struct tcl_iface_syn *syn,
                                           __u32 ack)
{
  __u32 next = syn->isn + 1;

  return ack == next || (syn->data_len != 0 && ack == next + syn->data_len);
}

/*
 * A SYN-ACK: the SYN it answers went the other way on this interface. A
 * handshake whose SYN was sent more than once is timed from the SYN the
 * SYN-ACK echoes in its timestamp option; without timestamps it cannot be
 * told which SYN was answered (Karn), and the handshake is counted but not
 * timed.
 */
static __always_inline void tcl_iface_synack(const struct tcl_segment *seg,
                                             __u32 idx)
{
  __u32 syn_dir = seg->dir == TCL_IFACE_DIR_IN ? TCL_IFACE_DIR_OUT
                                               : TCL_IFACE_DIR_IN;
  struct tcl_iface_flow key = {.ifindex = seg->ifindex, .dir = syn_dir};
  __u32 series = TCL_IFACE_SERIES(idx, syn_dir);
  struct tcl_iface_counters *c;
  struct tcl_iface_syn *syn;
  __u64 now = bpf_ktime_get_ns(), start = 0, ns;
  bool timed = true;

  c = tcl_iface_counters_get(series);
  if (!c)
    return;
  __builtin_memcpy(key.client, seg->daddr, 16);
  __builtin_memcpy(key.server, seg->saddr, 16);
  key.client_port = seg->dport;
  key.server_port = seg->sport;

  syn = bpf_map_lookup_elem(&tcl_iface_flows, &key);
  if (!syn || !tcl_iface_acks(syn, seg->ack)) {
    c->synack_unmatched++;
    return;
  }
  if (syn->sent == 1)
    start = syn->first_ns;
  else if (seg->has_ts && syn->has_ts && seg->tsecr == syn->last_tsval)
    start = syn->last_ns;
  else if (seg->has_ts && syn->has_ts && seg->tsecr == syn->first_tsval)
    start = syn->first_ns;
  else
    timed = false;

  /* Whoever deletes the entry counts the handshake: a duplicated SYN-ACK on
   * another CPU must not count it twice. */
  if (bpf_map_delete_elem(&tcl_iface_flows, &key) != 0)
    return;
  c->answered++;
  if (!timed) {
    c->ambiguous++;
    return;
  }
  ns = now > start ? now - start : 0;
  if (tcl_hist_add(&tcl_iface_stats, series, tcl_bucket_index(ns), ns) != 0)
    c->stats_full++;
}

/*
 * Everything a SYN or SYN-ACK needs beyond the header check. A static
 * subprogram rather than inlined twice (IPv4, IPv6) into each program; not
 * a global function, which Linux 5.10 cannot verify with a pointer argument.
 */
static __noinline int tcl_iface_handshake(struct __sk_buff *skb,
                                          struct tcl_segment *seg)
{
  int idx;

  idx = tcl_iface_index(seg->ifindex);
  if (idx < 0)
    return 0;
  tcl_tcp_timestamps(skb, seg);
  if (seg->synack)
    tcl_iface_synack(seg, (__u32)idx);
  else
    tcl_iface_syn(seg, (__u32)idx);
  return 0;
}

/* The TCP header at l4 if the segment is a SYN or a SYN-ACK, else NULL:
 * the cheap path ends here for everything else. */
static __always_inline const __u8 *tcl_handshake_header(struct __sk_buff *skb,
                                                        __u32 l4, __u8 *buf)
{
  const __u8 *th = tcl_hdr(skb, l4, 20, buf);

  if (!th)
    return NULL;
  if ((th[13] & (TCL_TCP_SYN | TCL_TCP_RST | TCL_TCP_FIN)) != TCL_TCP_SYN)
    return NULL;
  return th;
}

/* ip_end: where the IP payload ends (offset in the packet). */
static __always_inline void tcl_iface_segment(struct __sk_buff *skb,
                                              struct tcl_segment *seg,
                                              const __u8 *th, __u32 l4,
                                              __u32 ip_end, __u32 dir)
{
  __u32 optlen = (__u32)(th[12] >> 4) * 4;

  seg->sport = tcl_be16(th);
  seg->dport = tcl_be16(th + 2);
  seg->seq = tcl_be32(th + 4);
  seg->ack = tcl_be32(th + 8);
  seg->synack = (th[13] & TCL_TCP_ACK) != 0;
  seg->ifindex = skb->ifindex;
  seg->dir = dir;
  if (optlen > 20) {
    seg->opt_off = l4 + 20;
    seg->opt_len = optlen - 20;
  }
  if (ip_end > l4 + optlen)
    seg->data_len = ip_end - (l4 + optlen);
  tcl_iface_handshake(skb, seg);
}

static __always_inline void tcl_iface_packet(struct __sk_buff *skb, __u32 dir,
                                             const bool ethernet)
{
  __u8 buf_l2[4], buf_l3[40], buf_l4[20];
  struct tcl_segment seg = {};
  const __u8 *h, *ip, *th;
  __u32 l3 = 0, l4;
  __u16 proto;

  if (ethernet) {
    h = tcl_hdr(skb, TCL_ETH_HLEN - 2, 2, buf_l2);
    if (!h)
      return;
    proto = tcl_be16(h);
    l3 = TCL_ETH_HLEN;
    for (int i = 0; i < 2; i++) {
      if (proto != TCL_ETH_P_8021Q && proto != TCL_ETH_P_8021AD)
        break;
      h = tcl_hdr(skb, l3, 4, buf_l2);
      if (!h)
        return;
      proto = tcl_be16(h + 2);
      l3 += 4;
    }
  } else {
    /* A raw IP device (tun, WireGuard, ipip): the packet starts with IP. */
    proto = bpf_ntohs((__u16)skb->protocol);
  }

  if (proto == TCL_ETH_P_IP) {
    ip = tcl_hdr(skb, l3, 20, buf_l3);
    if (!ip || (ip[0] >> 4) != 4 || ip[9] != TCL_IPPROTO_TCP)
      return;
    if ((tcl_be16(ip + 6) & 0x1fff) != 0) /* not the first fragment */
      return;
    if ((ip[0] & 0xf) < 5)
      return;
    l4 = l3 + (__u32)(ip[0] & 0xf) * 4;
    th = tcl_handshake_header(skb, l4, buf_l4);
    if (!th)
      return;
    seg.saddr[10] = seg.saddr[11] = 0xff;
    seg.daddr[10] = seg.daddr[11] = 0xff;
    __builtin_memcpy(&seg.saddr[12], ip + 12, 4);
    __builtin_memcpy(&seg.daddr[12], ip + 16, 4);
    tcl_iface_segment(skb, &seg, th, l4, l3 + tcl_be16(ip + 2), dir);
  } else if (proto == TCL_ETH_P_IPV6) {
    __u8 nexthdr;

    ip = tcl_hdr(skb, l3, 40, buf_l3);
    if (!ip || (ip[0] >> 4) != 6)
      return;
    nexthdr = ip[6];
    l4 = l3 + 40;
    for (int i = 0; i < 3; i++) {
      if (nexthdr != TCL_IPV6_HOPOPTS && nexthdr != TCL_IPV6_ROUTING &&
          nexthdr != TCL_IPV6_DSTOPTS)
        break;
      h = tcl_hdr(skb, l4, 2, buf_l2);
      if (!h)
        return;
      nexthdr = h[0];
      l4 += ((__u32)h[1] + 1) * 8;
    }
    if (nexthdr != TCL_IPPROTO_TCP)
      return;
    th = tcl_handshake_header(skb, l4, buf_l4);
    if (!th)
      return;
    __builtin_memcpy(seg.saddr, ip + 8, 16);
    __builtin_memcpy(seg.daddr, ip + 24, 16);
    tcl_iface_segment(skb, &seg, th, l4, l3 + 40 + tcl_be16(ip + 4), dir);
  }
}

SEC("tc")
int tcl_iface_in(struct __sk_buff *skb)
{
  tcl_iface_packet(skb, TCL_IFACE_DIR_IN, true);
  return TCL_TC_ACT_UNSPEC;
}

SEC("tc")
int tcl_iface_out(struct __sk_buff *skb)
{
  tcl_iface_packet(skb, TCL_IFACE_DIR_OUT, true);
  return TCL_TC_ACT_UNSPEC;
}

SEC("tc")
int tcl_iface_l3_in(struct __sk_buff *skb)
{
  tcl_iface_packet(skb, TCL_IFACE_DIR_IN, false);
  return TCL_TC_ACT_UNSPEC;
}

SEC("tc")
int tcl_iface_l3_out(struct __sk_buff *skb)
{
  tcl_iface_packet(skb, TCL_IFACE_DIR_OUT, false);
  return TCL_TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
