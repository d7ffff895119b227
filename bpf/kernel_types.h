/* SPDX-License-Identifier: MIT */
/*
 * The few kernel types the programs read, declared by hand for CO-RE.
 *
 * Field offsets are not taken from here: every struct is marked
 * preserve_access_index, so libbpf relocates each access against the running
 * kernel's BTF at load time. Only the names and types of the fields used must
 * match. This keeps the build independent of the build host's kernel (see
 * --with-vmlinux-h in configure for the alternative).
 */
#ifndef TCPCONNLAT_KERNEL_TYPES_H
#define TCPCONNLAT_KERNEL_TYPES_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* uapi constants (stable ABI) used by the map definitions */
enum {
  BPF_MAP_TYPE_HASH = 1,
  BPF_MAP_TYPE_ARRAY = 2,
  BPF_MAP_TYPE_PERCPU_HASH = 5,
  BPF_MAP_TYPE_PERCPU_ARRAY = 6,
  BPF_MAP_TYPE_LPM_TRIE = 11,
  BPF_MAP_TYPE_QUEUE = 22,
  BPF_MAP_TYPE_SK_STORAGE = 24,
  BPF_MAP_TYPE_RINGBUF = 27,
  BPF_MAP_TYPE_LRU_HASH = 9,
};
enum {
  BPF_ANY = 0,
  BPF_NOEXIST = 1,
  BPF_EXIST = 2,
};
enum {
  BPF_SK_STORAGE_GET_F_CREATE = 1,
};
enum {
  BPF_F_NO_PREALLOC = 1,
  BPF_F_MMAPABLE = 1024,
};

/* uapi (stable ABI, rewritten by the verifier): not relocated */
struct bpf_sock_ops {
  __u32 op;
  union {
    __u32 args[4];
    __u32 reply;
    __u32 replylong[4];
  };
  __u32 family;
  __u32 remote_ip4;
  __u32 local_ip4;
  __u32 remote_ip6[4];
  __u32 local_ip6[4];
  __u32 remote_port; /* network byte order */
  __u32 local_port;  /* host byte order */
  __u32 is_fullsock;
};
enum {
  BPF_SOCK_OPS_TIMEOUT_INIT = 1,
  BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 5,
};
/* bpf_ringbuf_submit() flags and bpf_ringbuf_query() flags */
enum {
  BPF_RB_NO_WAKEUP = 1,
  BPF_RB_FORCE_WAKEUP = 2,
};
enum {
  BPF_RB_AVAIL_DATA = 0,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
  unsigned int inum;
};

struct net {
  struct ns_common ns;
  __u64 net_cookie; /* Linux 5.12 and newer (an atomic64_t before) */
};

typedef struct {
  struct net *net;
} possible_net_t;

struct in6_addr {
  union {
    __u8 u6_addr8[16];
    __be16 u6_addr16[8];
    __be32 u6_addr32[4];
  } in6_u;
};

/* The anonymous unions and structs mirror the kernel's, so that CO-RE finds
 * the fields through them. */
struct sock_common {
  union {
    __u64 skc_addrpair;
    struct {
      __be32 skc_daddr;
      __be32 skc_rcv_saddr;
    };
  };
  union {
    unsigned int skc_hash;
    __u16 skc_u16hashes[2];
  };
  union {
    __u32 skc_portpair;
    struct {
      __be16 skc_dport;
      __u16 skc_num;
    };
  };
  unsigned short skc_family;
  volatile unsigned char skc_state;
  possible_net_t skc_net;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
};

/* include/linux/net.h (uapi): an anonymous enum in the kernel, so any enum
 * here matches it for CO-RE. */
typedef enum {
  SS_FREE = 0,
  SS_UNCONNECTED,
  SS_CONNECTING,
  SS_CONNECTED,
  SS_DISCONNECTING,
} socket_state;

struct socket {
  socket_state state;
};

/* skb->cb of an error-queue entry holds a struct sock_exterr_skb, whose
 * extended error follows a union of the IPv4/IPv6 control blocks: CO-RE
 * finds its offset. In 6.1 and later next and prev sit in an anonymous
 * struct of sk_buff_head (struct_group_tagged), in 5.10 directly; CO-RE
 * finds them either way. */
struct sk_buff {
  char cb[48];
};

struct sk_buff_head {
  struct sk_buff *next;
  struct sk_buff *prev;
  __u32 qlen;
};

struct sock_extended_err {
  __u32 ee_errno;
  __u8 ee_origin;
};

struct sock_exterr_skb {
  struct sock_extended_err ee;
};

struct kernfs_node {
  __u64 id;
};

struct cgroup {
  int level;
  struct kernfs_node *kn;
  struct cgroup *ancestors[]; /* Linux 6.2 and newer, and Debian's 6.1 */
};

/* Before: the ids of the ancestors themselves. */
struct cgroup___ids {
  int level;
  __u64 ancestor_ids[];
};

/* Linux 5.15 and newer: the socket's cgroup v2. */
struct sock_cgroup_data {
  struct cgroup *cgroup;
};

/* Before: a cgroup pointer, or net_cls/net_prio data when bit 0 is set. */
struct sock_cgroup_data___val {
  __u64 val;
};

typedef struct {
  __u32 val;
} kuid_t;

struct sock {
  struct sock_common __sk_common;
  int sk_err;
  int sk_err_soft;
  struct sk_buff_head sk_error_queue;
  struct socket *sk_socket;
  __u16 sk_protocol;
  kuid_t sk_uid;
  struct sock_cgroup_data sk_cgrp_data;
};

struct sock___old {
  struct sock_cgroup_data___val sk_cgrp_data;
};

/* The port the kernel keeps after releasing the bound one (inet_num). */
struct inet_sock {
  struct sock sk;
  __be16 inet_sport;
};

/* The kernel's own handshake clock (see KERNEL-TIMING in the README). */
struct tcp_sock {
  __u64 tcp_clock_cache; /* tcp_clock_ns() at the last refresh (4.20+) */
  __u64 tcp_wstamp_ns;   /* departure of the last packet sent (4.20+) */
  __u32 srtt_us;         /* smoothed RTT << 3; the first sample alone */
  __u32 total_retrans;
  __u32 snd_una;
  __u32 retrans_stamp;   /* first SYN: ms, or us with tcp_usec_ts */
  __u8 tcp_usec_ts : 1;  /* Linux 6.7 and newer */
};

struct request_sock {
  struct sock_common __req_common;
};

struct inet_request_sock {
  struct request_sock req;
};

struct tcp_request_sock {
  struct inet_request_sock req;
  __u32 snt_isn;
  __u64 snt_synack; /* first SYN-ACK, us (tcp_clock_us) */
};

struct trace_entry {
  unsigned short type;
};

/* The classic tracepoint's record: /sys/kernel/tracing/events/sock/inet_sock_set_state/format */
struct trace_event_raw_inet_sock_set_state {
  struct trace_entry ent;
  const void *skaddr;
  int oldstate;
  int newstate;
  __u16 sport;
  __u16 dport;
  __u16 family;
  __u16 protocol;
};

#pragma clang attribute pop

/*
 * The classic tracepoints' records of tcp:tcp_retransmit_skb and
 * tcp:tcp_retransmit_synack, as their format files give them. Not relocated:
 * the kernel renamed the first one's struct (tcp_event_sk_skb, later
 * tcp_retransmit_skb) while the leading fields stayed where they were.
 */
struct tcl_tp_retransmit_skb {
  __u64 common;        /* struct trace_entry, padded */
  const void *skbaddr;
  const void *skaddr;
};

struct tcl_tp_retransmit_synack {
  __u64 common;
  const void *skaddr;
  const void *req;
};

#endif /* TCPCONNLAT_KERNEL_TYPES_H */
