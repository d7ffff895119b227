/* SPDX-License-Identifier: MIT */
/*
 * Passive mode on an interface: attaching the TC programs politely, reading
 * their maps, dispatching one series per interface and direction.
 *
 * Ahead of everything else: a filter that ends classification (a u32 match
 * with a classid, a Cilium or Calico program returning OK) hides the packet
 * from every filter behind it, and a passive observer must see all traffic.
 * Where the kernel has tcx (Linux 6.6), the programs are tcx links inserted
 * at the head of each side's chain, which runs before the clsact qdisc's
 * filters; else TC filters at the lowest priority number no other filter
 * uses, looked up at each start. The programs return TC_ACT_UNSPEC
 * (TCX_NEXT): whatever runs after them goes on as if they were not there.
 *
 * Politeness: nothing that is not ours is replaced or removed. tcx links
 * are the plugin's own and go when it closes them (or dies). The clsact
 * qdisc is shared: the plugin creates it only where there is none, attaches
 * its filters with its own handle (TCL_IFACE_TC_HANDLE), and at shutdown
 * detaches exactly those (and only while they still run its program). It
 * deletes the qdisc only if it created it and no other filter is left on it.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "clock.h"
#include "dispatch.h"
#include "drain.h"
#include "histogram.h"
#include "iface.h"
#include "labels.h"

#include "iface_shared.h" /* bpf/ */

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_arp.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "iface.skel.h"

#define TCL_IFACE_BATCH 1024

/*
 * tcx (Linux 6.6): neither Debian 12's uapi headers nor libbpf 1.1 know it,
 * but libbpf 1.1's bpf_link_create passes the attach type, the interface
 * (target_fd) and the flags through to BPF_LINK_CREATE. BPF_F_BEFORE with
 * no relative program inserts at the head of the interface's tcx chain
 * (kernel/bpf/mprog.c: bpf_mprog_attach), and the tcx chain runs before the
 * clsact qdisc's filters (net/core/dev.c: sch_handle_ingress/egress).
 */
#define TCL_BPF_TCX_INGRESS 46 /* enum bpf_attach_type */
#define TCL_BPF_TCX_EGRESS 47
#define TCL_BPF_F_BEFORE (1U << 3)

/* TC priorities: 16 bits, 0 lets the kernel choose (not ahead of others). */
#define TCL_TC_PRIO_MAX 0xffff
/* Attempts at a free priority, when another program takes the one chosen
 * between listing the filters and attaching. */
#define TCL_TC_ATTACH_TRIES 3

typedef struct {
  char name[IFNAMSIZ];
  char instance[2][DATA_MAX_NAME_LEN]; /* by TCL_IFACE_DIR_* */
  int ifindex;
  bool ethernet;      /* else a raw IP device */
  bool tcx;           /* attached through tcx links, else TC filters */
  bool qdisc_created; /* the clsact qdisc is ours */
  bool attached[2];   /* [0] ingress, [1] egress */
  int link_fd[2];     /* tcx: the links; closing them detaches */
  __u32 prio[2];      /* TC: the filters' priorities */
  __u32 prog_id[2];   /* TC: what the filters run */
  __u32 behind[2];    /* TC: priorities in use ahead of ours */
} tcl_iface_t;

/* What the plugin counts itself, per series. */
typedef struct {
  uint64_t expired;   /* flow entries older than InterfaceTimeout, deleted */
  uint64_t evictions; /* reported so far; never decreases */
  uint64_t pending;   /* flow entries now */
} tcl_iface_user_t;

static struct {
  struct tcpconnlat_iface_bpf *skel;
  tcl_iface_t ifaces[TCL_IFACE_MAX];
  size_t n;
  tcl_iface_attach_t how;
  bool no_tcx; /* the kernel has no tcx: TC filters from now on */
  tcl_drain_t drain;
  bool drain_ready;
  tcl_snapshot_t prev, cur, delta;
  struct tcl_iface_counters *percpu; /* one per-CPU counters value */
  struct tcl_iface_flow *flow_keys;  /* flow table batch buffers */
  struct tcl_iface_syn *flow_values;
  bool flows_no_batch;
  tcl_iface_user_t user[TCL_IFACE_NSERIES];
  bool running;
} tcl_iface;

static const char *const tcl_iface_dir_names[2] = {
    [TCL_IFACE_DIR_IN] = "in",
    [TCL_IFACE_DIR_OUT] = "out",
};

static const char *const tcl_iface_side_names[2] = {"ingress", "egress"};

static const enum bpf_tc_attach_point tcl_iface_hooks[2] = {
    BPF_TC_INGRESS, /* runs tcl_iface_in: a SYN there came in */
    BPF_TC_EGRESS,
};

static const __u32 tcl_iface_tcx_types[2] = {TCL_BPF_TCX_INGRESS,
                                             TCL_BPF_TCX_EGRESS};

static const __u32 tcl_iface_parents[2] = {
    TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS),
    TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS),
};

/* ------------------------------------------------------------------------ */
/* Attaching and detaching */

/* ARPHRD_* of an interface, in collectd's network namespace. */
static int tcl_iface_link_type(const char *name, int *type)
{
  struct ifreq ifr;
  int fd, err = 0;

  fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  memset(&ifr, 0, sizeof(ifr));
  sstrncpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
    err = errno;
  else
    *type = ifr.ifr_hwaddr.sa_family;
  close(fd);
  return err;
}

/* Ethernet-like frames (Ethernet, veth, bridges, VLANs, bonds, loopback),
 * or IP with no link header (tun, WireGuard, ipip, sit). */
static int tcl_iface_framing(int type, bool *ethernet)
{
  switch (type) {
  case ARPHRD_ETHER:
  case ARPHRD_LOOPBACK:
    *ethernet = true;
    return 0;
  case ARPHRD_NONE:
  case ARPHRD_TUNNEL:
  case ARPHRD_TUNNEL6:
  case ARPHRD_SIT:
    *ethernet = false;
    return 0;
  default:
    return EPROTONOSUPPORT;
  }
}

/* The TC filters on one side of a clsact qdisc, as far as placing ours goes. */
typedef struct {
  int entries;       /* netlink entries (a u32 filter makes several) */
  __u32 lowest_free; /* lowest priority number no filter uses; 0: none */
  __u32 stale_prio;  /* a bpf filter with our handle (0: none) */
  uint64_t used[(TCL_TC_PRIO_MAX + 1) / 64]; /* priorities in use */
} tcl_tc_side_t;

/* One filter of a dump: its priority, and whether it looks like ours. */
static void tcl_iface_filter_seen(const struct nlmsghdr *nh, tcl_tc_side_t *v)
{
  const struct tcmsg *tc = NLMSG_DATA(nh);
  __u32 prio = TC_H_MAJ(tc->tcm_info) >> 16;
  int len = (int)nh->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*tc));
  const struct rtattr *rta =
      (const void *)((const char *)tc + NLMSG_ALIGN(sizeof(*tc)));
  bool bpf = false;

  v->entries++;
  v->used[prio / 64] |= 1ULL << (prio % 64);
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
    if (rta->rta_type == TCA_KIND &&
        strncmp(RTA_DATA(rta), "bpf", RTA_PAYLOAD(rta)) == 0)
      bpf = true;
  if (bpf && tc->tcm_handle == TCL_IFACE_TC_HANDLE && v->stale_prio == 0)
    v->stale_prio = prio;
}

/* Receives a netlink dump until its end. */
static int tcl_iface_dump_recv(int fd, tcl_tc_side_t *v)
{
  char buf[16384];

  for (;;) {
    ssize_t got = recv(fd, buf, sizeof(buf), 0);
    struct nlmsghdr *nh;
    int len;

    if (got < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (got == 0)
      return 0;
    len = (int)got;
    for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
         nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_DONE)
        return 0;
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(nh);
        return e->error ? -e->error : 0;
      }
      if (nh->nlmsg_type == RTM_NEWTFILTER)
        tcl_iface_filter_seen(nh, v);
    }
  }
}

/*
 * The TC filters on one side (parent) of an interface's clsact qdisc: a
 * netlink dump, as `tc filter show dev X ingress` makes.
 */
static int tcl_iface_tc_side(int ifindex, __u32 parent, tcl_tc_side_t *v)
{
  struct {
    struct nlmsghdr nh;
    struct tcmsg tc;
  } req;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  int fd, err;

  memset(v, 0, sizeof(*v));
  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return errno;
  memset(&req, 0, sizeof(req));
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.tc.tcm_family = AF_UNSPEC;
  req.tc.tcm_ifindex = ifindex;
  req.tc.tcm_parent = parent;
  if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa,
             sizeof(sa)) < 0)
    err = errno;
  else
    err = tcl_iface_dump_recv(fd, v);
  close(fd);
  for (__u32 p = 1; err == 0 && p <= TCL_TC_PRIO_MAX; p++)
    if (!(v->used[p / 64] & (1ULL << (p % 64)))) {
      v->lowest_free = p;
      break;
    }
  return err;
}

/* Our TC filter on one side, if it still runs our program. */
static void tcl_iface_detach_tc(tcl_iface_t *ifc, int side)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = tcl_iface_hooks[side]);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TCL_IFACE_TC_HANDLE,
                      .priority = ifc->prio[side]);
  const char *where = tcl_iface_side_names[side];
  int err;

  err = bpf_tc_query(&hook, &opts);
  if (err != 0) {
    if (err != -ENOENT && err != -ENODEV && err != -EINVAL)
      WARNING("tcpconnlat plugin: Interface \"%s\": could not look up the "
              "%s filter before removing it: %s",
              ifc->name, where, STRERROR(-err));
    return; /* gone already, with the interface or by hand */
  }
  if (opts.prog_id != ifc->prog_id[side]) {
    WARNING("tcpconnlat plugin: Interface \"%s\": the %s filter with "
            "priority %u and handle 0x%x now runs another program (id %u); "
            "left in place",
            ifc->name, where, ifc->prio[side], TCL_IFACE_TC_HANDLE,
            opts.prog_id);
    return;
  }
  opts.prog_id = 0;
  opts.prog_fd = 0;
  opts.flags = 0;
  err = bpf_tc_detach(&hook, &opts);
  if (err != 0 && err != -ENOENT && err != -ENODEV)
    WARNING("tcpconnlat plugin: Interface \"%s\": could not remove the %s "
            "filter (priority %u, handle 0x%x): %s",
            ifc->name, where, ifc->prio[side], TCL_IFACE_TC_HANDLE,
            STRERROR(-err));
}

/* What we attached on one side: a tcx link goes with its last fd. */
static void tcl_iface_detach_one(tcl_iface_t *ifc, int side)
{
  if (!ifc->attached[side])
    return;
  ifc->attached[side] = false;
  if (ifc->tcx)
    close(ifc->link_fd[side]);
  else
    tcl_iface_detach_tc(ifc, side);
}

/* The clsact qdisc, if we created it and nobody else uses it now. */
static void tcl_iface_remove_qdisc(tcl_iface_t *ifc)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
  tcl_tc_side_t in, out;
  int err;

  if (!ifc->qdisc_created)
    return;
  ifc->qdisc_created = false;
  err = tcl_iface_tc_side(ifc->ifindex, tcl_iface_parents[0], &in);
  if (err == 0)
    err = tcl_iface_tc_side(ifc->ifindex, tcl_iface_parents[1], &out);
  if (err == ENODEV || err == EINVAL || err == ENOENT)
    return; /* the interface or the qdisc is gone */
  if (err != 0) {
    WARNING("tcpconnlat plugin: Interface \"%s\": the clsact qdisc the "
            "plugin created is left in place, its filters could not be "
            "listed: %s",
            ifc->name, STRERROR(err));
    return;
  }
  if (in.entries + out.entries > 0) {
    INFO("tcpconnlat plugin: Interface \"%s\": the clsact qdisc the plugin "
         "created is left in place: other filters use it now.",
         ifc->name);
    return;
  }
  /* Both sides together: that deletes the qdisc. (One side alone would
   * flush all of that side's filters, other people's included.) */
  err = bpf_tc_hook_destroy(&hook);
  if (err != 0 && err != -ENOENT && err != -ENODEV && err != -EINVAL)
    WARNING("tcpconnlat plugin: Interface \"%s\": could not remove the "
            "clsact qdisc the plugin created: %s",
            ifc->name, STRERROR(-err));
}

static void tcl_iface_detach_all(void)
{
  for (size_t i = 0; i < tcl_iface.n; i++) {
    tcl_iface_t *ifc = &tcl_iface.ifaces[i];

    tcl_iface_detach_one(ifc, 0);
    tcl_iface_detach_one(ifc, 1);
    tcl_iface_remove_qdisc(ifc);
  }
}

static void tcl_iface_explain_tc(const tcl_iface_t *ifc, int side, __u32 prio,
                                 int err, char *errbuf, size_t errlen)
{
  const char *where = tcl_iface_side_names[side];

  if (err == EPERM || err == EACCES)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel did not permit attaching a TC "
             "filter (%s): collectd needs CAP_NET_ADMIN and CAP_BPF (or "
             "root)",
             ifc->name, STRERROR(err));
  else if (err == EOPNOTSUPP)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel refused a TC filter on its %s "
             "(%s): its clsact qdisc uses a shared filter block, which takes "
             "filters only by block number (see \"tc qdisc show dev %s\"); "
             "with Linux 6.6 or later use InterfaceAttach \"tcx\"",
             ifc->name, where, STRERROR(err), ifc->name);
  else
    snprintf(errbuf, errlen,
             "Interface \"%s\": the TC filter could not be attached to its "
             "%s at priority %u: %s (see \"tc filter show dev %s %s\")",
             ifc->name, where, prio, STRERROR(err), ifc->name, where);
}

/* Notes what the listing found that the operator should know. */
static void tcl_iface_tc_notes(const tcl_iface_t *ifc, int side,
                               const tcl_tc_side_t *v)
{
  const char *where = tcl_iface_side_names[side];

  if (v->stale_prio != 0)
    WARNING("tcpconnlat plugin: Interface \"%s\": a bpf filter with the "
            "plugin's handle 0x%x is already at priority %u on its %s "
            "(another collectd running tcpconnlat, or one that was killed); "
            "it is left alone. If it is stale, remove it with \"tc filter "
            "del dev %s %s pref %u handle 0x%x bpf\".",
            ifc->name, TCL_IFACE_TC_HANDLE, v->stale_prio, where, ifc->name,
            where, v->stale_prio, TCL_IFACE_TC_HANDLE);
  if (v->lowest_free > 1)
    WARNING("tcpconnlat plugin: Interface \"%s\": filters at priorities 1 "
            "to %u on its %s run ahead of the plugin's (priority %u): "
            "packets they end classification for are not measured. tcx "
            "(Linux 6.6 or later) runs ahead of all TC filters.",
            ifc->name, v->lowest_free - 1, where, v->lowest_free);
}

/*
 * A TC filter on one side, ahead of every other filter there: at the lowest
 * priority number nobody uses, looked up now. If another program takes that
 * priority meanwhile, the kernel refuses ours (EEXIST, or EINVAL for a
 * filter of another kind): look again.
 */
static int tcl_iface_attach_tc(tcl_iface_t *ifc, int side, int prog_fd,
                               char *errbuf, size_t errlen)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = tcl_iface_hooks[side]);
  tcl_tc_side_t view;
  int err = 0;

  for (int attempt = 0; attempt < TCL_TC_ATTACH_TRIES; attempt++) {
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TCL_IFACE_TC_HANDLE,
                        .prog_fd = prog_fd);

    err = tcl_iface_tc_side(ifc->ifindex, tcl_iface_parents[side], &view);
    if (err != 0) {
      snprintf(errbuf, errlen,
               "Interface \"%s\": the TC filters on its %s could not be "
               "listed: %s",
               ifc->name, tcl_iface_side_names[side], STRERROR(err));
      return err;
    }
    if (view.lowest_free == 0) {
      snprintf(errbuf, errlen,
               "Interface \"%s\": every TC priority on its %s is taken",
               ifc->name, tcl_iface_side_names[side]);
      return ENOSPC;
    }
    opts.priority = view.lowest_free;
    err = -bpf_tc_attach(&hook, &opts);
    if (err == 0) {
      ifc->attached[side] = true;
      ifc->prio[side] = view.lowest_free;
      ifc->prog_id[side] = opts.prog_id;
      ifc->behind[side] = view.lowest_free - 1;
      tcl_iface_tc_notes(ifc, side, &view);
      return 0;
    }
    if (err != EEXIST && err != EINVAL)
      break;
  }
  tcl_iface_explain_tc(ifc, side, view.lowest_free, err, errbuf, errlen);
  return err;
}

/* A tcx link at the head of one side's chain: 0, or an errno. */
static int tcl_iface_attach_tcx(tcl_iface_t *ifc, int side, int prog_fd)
{
  DECLARE_LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = TCL_BPF_F_BEFORE);
  int fd;

  fd = bpf_link_create(prog_fd, ifc->ifindex,
                       (enum bpf_attach_type)tcl_iface_tcx_types[side], &opts);
  if (fd < 0)
    return -fd;
  ifc->link_fd[side] = fd;
  ifc->attached[side] = true;
  return 0;
}

/*
 * tcx on the first side tells whether the kernel has it (Linux 6.6): it
 * refuses an attach type it does not know with EINVAL. 0 when attached,
 * -1 when the kernel has no tcx (and "auto" may fall back), else an errno.
 */
static int tcl_iface_try_tcx(tcl_iface_t *ifc, const int prog_fds[2],
                             char *errbuf, size_t errlen)
{
  int err = 0;

  for (int side = 0; side < 2 && err == 0; side++) {
    err = tcl_iface_attach_tcx(ifc, side, prog_fds[side]);
    if (err == EINVAL && side == 0 && tcl_iface.how == TCL_IFACE_ATTACH_AUTO)
      return -1;
  }
  ifc->tcx = true; /* what is attached goes as tcx links */
  if (err == EINVAL)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel refused a tcx link (%s): tcx "
             "needs Linux 6.6 or later; use InterfaceAttach \"auto\" or "
             "\"tc\" on older kernels",
             ifc->name, STRERROR(err));
  else if (err == EPERM || err == EACCES)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel did not permit a tcx link (%s): "
             "collectd needs CAP_NET_ADMIN and CAP_BPF (or root)",
             ifc->name, STRERROR(err));
  else if (err != 0)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the tcx link could not be made: %s",
             ifc->name, STRERROR(err));
  return err;
}

/* The clsact qdisc the TC filters need: created where there is none. */
static int tcl_iface_clsact(tcl_iface_t *ifc, char *errbuf, size_t errlen)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
  int err = bpf_tc_hook_create(&hook);

  if (err == 0) {
    ifc->qdisc_created = true;
  } else if (err != -EEXIST) {
    snprintf(errbuf, errlen,
             "Interface \"%s\": the clsact qdisc could not be created: %s%s",
             ifc->name, STRERROR(-err),
             err == -EPERM ? " (collectd needs CAP_NET_ADMIN)" : "");
    return -err;
  }
  return 0;
}

/* Where the programs run, for the log: one sentence. */
static void tcl_iface_log_attached(const tcl_iface_t *ifc)
{
  if (ifc->tcx) {
    INFO("tcpconnlat plugin: Interface \"%s\" (ifindex %d, %s): attached "
         "through tcx links at the head of ingress and egress, ahead of "
         "every other tcx program and TC filter there.",
         ifc->name, ifc->ifindex, ifc->ethernet ? "Ethernet" : "raw IP");
    return;
  }
  INFO("tcpconnlat plugin: Interface \"%s\" (ifindex %d, %s): TC filters "
       "(handle 0x%x) attached at priority %u on ingress (%u in use ahead) "
       "and %u on egress (%u ahead), ahead of every filter with a higher "
       "priority number; clsact qdisc %s.",
       ifc->name, ifc->ifindex, ifc->ethernet ? "Ethernet" : "raw IP",
       TCL_IFACE_TC_HANDLE, ifc->prio[0], ifc->behind[0], ifc->prio[1],
       ifc->behind[1], ifc->qdisc_created ? "created" : "shared");
}

static int tcl_iface_attach(tcl_iface_t *ifc, char *errbuf, size_t errlen)
{
  int prog_fds[2], err;

  if (ifc->ethernet) {
    prog_fds[0] = bpf_program__fd(tcl_iface.skel->progs.tcl_iface_in);
    prog_fds[1] = bpf_program__fd(tcl_iface.skel->progs.tcl_iface_out);
  } else {
    prog_fds[0] = bpf_program__fd(tcl_iface.skel->progs.tcl_iface_l3_in);
    prog_fds[1] = bpf_program__fd(tcl_iface.skel->progs.tcl_iface_l3_out);
  }

  if (tcl_iface.how != TCL_IFACE_ATTACH_TC && !tcl_iface.no_tcx) {
    err = tcl_iface_try_tcx(ifc, prog_fds, errbuf, errlen);
    if (err >= 0)
      return err;
    tcl_iface.no_tcx = true;
    INFO("tcpconnlat plugin: this kernel has no tcx (Linux 6.6 or later): "
         "the interface programs are attached as TC filters.");
  }

  err = tcl_iface_clsact(ifc, errbuf, errlen);
  for (int side = 0; side < 2 && err == 0; side++)
    err = tcl_iface_attach_tc(ifc, side, prog_fds[side], errbuf, errlen);
  return err;
}

/* ------------------------------------------------------------------------ */
/* Start and stop */

static int tcl_iface_resolve(const char *const *names, size_t n, char *errbuf,
                             size_t errlen)
{
  if (n > TCL_IFACE_MAX) {
    snprintf(errbuf, errlen, "at most %d interfaces can be named (Interface)",
             TCL_IFACE_MAX);
    return EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    tcl_iface_t *ifc = &tcl_iface.ifaces[i];
    char escaped[3 * IFNAMSIZ + 1];
    int type = -1, err;

    if (names[i] == NULL || names[i][0] == '\0' ||
        strlen(names[i]) >= IFNAMSIZ) {
      snprintf(errbuf, errlen,
               "Interface: expected an interface name of 1 to %d bytes",
               IFNAMSIZ - 1);
      return EINVAL;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(tcl_iface.ifaces[j].name, names[i]) == 0) {
        snprintf(errbuf, errlen, "Interface \"%s\" is named twice", names[i]);
        return EINVAL;
      }
    sstrncpy(ifc->name, names[i], sizeof(ifc->name));
    ifc->ifindex = (int)if_nametoindex(ifc->name);
    if (ifc->ifindex == 0) {
      err = errno;
      snprintf(errbuf, errlen,
               "Interface \"%s\": no such network interface in collectd's "
               "network namespace (%s)",
               ifc->name, STRERROR(err));
      return err ? err : ENODEV;
    }
    err = tcl_iface_link_type(ifc->name, &type);
    if (err != 0) {
      snprintf(errbuf, errlen,
               "Interface \"%s\": its link type could not be read: %s",
               ifc->name, STRERROR(err));
      return err;
    }
    err = tcl_iface_framing(type, &ifc->ethernet);
    if (err != 0) {
      snprintf(errbuf, errlen,
               "Interface \"%s\": link type %d (ARPHRD) is neither "
               "Ethernet-like nor raw IP, so its packets cannot be parsed",
               ifc->name, type);
      return err;
    }
    tcl_escape_value(ifc->name, strlen(ifc->name), escaped, sizeof(escaped));
    for (int dir = 0; dir < 2; dir++)
      snprintf(ifc->instance[dir], sizeof(ifc->instance[dir]), "iface-%s-%s",
               escaped, tcl_iface_dir_names[dir]);
    tcl_iface.n = i + 1;
  }
  return 0;
}

static int tcl_iface_load(char *errbuf, size_t errlen)
{
  struct tcpconnlat_iface_bpf *skel;
  int err;

  skel = tcpconnlat_iface_bpf__open();
  if (skel == NULL) {
    err = errno ? errno : EINVAL;
    snprintf(errbuf, errlen,
             "the interface programs could not be prepared for this kernel: "
             "%s",
             STRERROR(err));
    return err;
  }
  tcl_iface.skel = skel;
  skel->rodata->tcl_iface_count = (__u32)tcl_iface.n;
  for (size_t i = 0; i < tcl_iface.n; i++)
    skel->rodata->tcl_iface_ifindex[i] = (__u32)tcl_iface.ifaces[i].ifindex;
  /* An upper bound: histogram entries are allocated when first used. */
  err = bpf_map__set_max_entries(skel->maps.tcl_iface_stats,
                                 (__u32)(2 * tcl_iface.n * TCL_NBUCKETS));
  if (err == 0)
    err = tcpconnlat_iface_bpf__load(skel);
  if (err != 0) {
    err = err < 0 ? -err : err;
    if (err == EPERM)
      snprintf(errbuf, errlen,
               "the kernel did not permit loading the interface (TC) "
               "programs (%s): collectd needs CAP_BPF and CAP_NET_ADMIN (or "
               "root)",
               STRERROR(err));
    else
      snprintf(errbuf, errlen,
               "the kernel rejected the interface (TC) programs (%s); set "
               "\"Verbose true\" to log the verifier's reasons",
               STRERROR(err));
    return err;
  }
  return 0;
}

static int tcl_iface_buffers(void)
{
  int ncpus = libbpf_num_possible_cpus();
  int err;

  if (ncpus <= 0)
    return ncpus < 0 ? -ncpus : EINVAL;
  tcl_iface.percpu = calloc((size_t)ncpus, sizeof(struct tcl_iface_counters));
  tcl_iface.flow_keys = calloc(TCL_IFACE_BATCH, sizeof(struct tcl_iface_flow));
  tcl_iface.flow_values =
      calloc(TCL_IFACE_BATCH, sizeof(struct tcl_iface_syn));
  if (tcl_iface.percpu == NULL || tcl_iface.flow_keys == NULL ||
      tcl_iface.flow_values == NULL)
    return ENOMEM;
  err = tcl_drain_init(&tcl_iface.drain);
  if (err == 0)
    tcl_iface.drain_ready = true;
  return err;
}

void tcl_iface_stop(void)
{
  if (tcl_iface.skel != NULL)
    tcl_iface_detach_all();
  tcpconnlat_iface_bpf__destroy(tcl_iface.skel);
  if (tcl_iface.drain_ready)
    tcl_drain_free(&tcl_iface.drain);
  tcl_snapshot_free(&tcl_iface.prev);
  tcl_snapshot_free(&tcl_iface.cur);
  tcl_snapshot_free(&tcl_iface.delta);
  free(tcl_iface.percpu);
  free(tcl_iface.flow_keys);
  free(tcl_iface.flow_values);
  memset(&tcl_iface, 0, sizeof(tcl_iface));
}

int tcl_iface_start(const char *const *names, size_t n,
                    tcl_iface_attach_t how, char *errbuf, size_t errlen)
{
  int err;

  tcl_iface_stop();
  if (n == 0)
    return 0;
  tcl_iface.how = how;
  err = tcl_iface_resolve(names, n, errbuf, errlen);
  if (err == 0)
    err = tcl_iface_buffers();
  if (err == ENOMEM)
    snprintf(errbuf, errlen, "no memory for the interface buffers");
  if (err == 0)
    err = tcl_iface_load(errbuf, errlen);
  for (size_t i = 0; i < tcl_iface.n && err == 0; i++)
    err = tcl_iface_attach(&tcl_iface.ifaces[i], errbuf, errlen);
  if (err == 0) {
    /* The maps are new: this is the baseline of the first interval. */
    err = tcl_drain_stats(&tcl_iface.drain,
                          bpf_map__fd(tcl_iface.skel->maps.tcl_iface_stats),
                          -1, &tcl_iface.prev);
    if (err != 0)
      snprintf(errbuf, errlen, "reading the interface stats map failed: %s",
               STRERROR(err));
  }
  if (err != 0) {
    tcl_iface_stop();
    return err;
  }
  tcl_iface.running = true;
  for (size_t i = 0; i < tcl_iface.n; i++)
    tcl_iface_log_attached(&tcl_iface.ifaces[i]);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading */

static int tcl_iface_read_counters(struct tcl_iface_counters *out)
{
  int fd = bpf_map__fd(tcl_iface.skel->maps.tcl_iface_counters);
  int ncpus = libbpf_num_possible_cpus();

  memset(out, 0, TCL_IFACE_NSERIES * sizeof(*out));
  for (__u32 s = 0; s < 2 * tcl_iface.n; s++) {
    struct tcl_iface_counters *o = &out[s];

    if (bpf_map_lookup_elem(fd, &s, tcl_iface.percpu) != 0)
      return errno;
    for (int cpu = 0; cpu < ncpus; cpu++) {
      const struct tcl_iface_counters *c = &tcl_iface.percpu[cpu];
      o->syn += c->syn;
      o->syn_retransmit += c->syn_retransmit;
      o->inserted += c->inserted;
      o->answered += c->answered;
      o->ambiguous += c->ambiguous;
      o->replaced += c->replaced;
      o->synack_unmatched += c->synack_unmatched;
      o->stats_full += c->stats_full;
    }
  }
  return 0;
}

static void tcl_iface_flow_seen(const struct tcl_iface_flow *key,
                                const struct tcl_iface_syn *syn, __u64 now_ns,
                                __u64 timeout_ns)
{
  int fd = bpf_map__fd(tcl_iface.skel->maps.tcl_iface_flows);

  if (syn->series >= TCL_IFACE_NSERIES)
    return;
  if (now_ns > syn->last_ns && now_ns - syn->last_ns > timeout_ns) {
    /* No SYN-ACK within InterfaceTimeout of the last SYN: unanswered. */
    if (bpf_map_delete_elem(fd, key) == 0)
      tcl_iface.user[syn->series].expired++;
    return;
  }
  tcl_iface.user[syn->series].pending++;
}

/* Fallback for kernels without batch lookups. */
static int tcl_iface_scan_iterate(__u64 now_ns, __u64 timeout_ns)
{
  int fd = bpf_map__fd(tcl_iface.skel->maps.tcl_iface_flows);
  struct tcl_iface_flow key, next;
  struct tcl_iface_syn syn;
  bool first = true;

  while (bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
    first = false;
    key = next;
    if (bpf_map_lookup_elem(fd, &key, &syn) != 0)
      continue; /* answered meanwhile */
    tcl_iface_flow_seen(&key, &syn, now_ns, timeout_ns);
  }
  return errno == ENOENT ? 0 : errno;
}

/* The clock of a flow table scan. */
typedef struct {
  __u64 now_ns;
  __u64 timeout_ns;
} tcl_iface_scan_t;

static int tcl_iface_flow_entry(void *ctx, const void *key, const void *value)
{
  const tcl_iface_scan_t *scan = ctx;

  tcl_iface_flow_seen(key, value, scan->now_ns, scan->timeout_ns);
  return 0;
}

/* Pending handshakes per series; expiry of the unanswered ones. */
static int tcl_iface_scan_flows(__u64 timeout_ns)
{
  int fd = bpf_map__fd(tcl_iface.skel->maps.tcl_iface_flows);
  tcl_batch_t b = {
      .keys = tcl_iface.flow_keys,
      .values = tcl_iface.flow_values,
      .key_size = sizeof(struct tcl_iface_flow),
      .value_size = sizeof(struct tcl_iface_syn),
      .batch = TCL_IFACE_BATCH,
  };
  tcl_iface_scan_t scan = {.timeout_ns = timeout_ns};
  struct timespec ts;

  for (size_t s = 0; s < TCL_IFACE_NSERIES; s++)
    tcl_iface.user[s].pending = 0;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
  scan.now_ns = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;

  if (!tcl_iface.flows_no_batch) {
    int err = tcl_drain_batches(fd, &b, tcl_iface_flow_entry, &scan);

    if (err != -1)
      return err;
    tcl_iface.flows_no_batch = true;
  }
  return tcl_iface_scan_iterate(scan.now_ns, timeout_ns);
}

/*
 * Evictions are not visible to BPF programs; they are what is missing:
 * entries created - answered - replaced - expired - still there. Counters
 * before the scan give the created, after it the removed: the estimate can
 * lag behind, never run ahead, and the reported value never decreases.
 */
static void tcl_iface_evictions(__u32 s, const struct tcl_iface_counters *before,
                                const struct tcl_iface_counters *after)
{
  tcl_iface_user_t *u = &tcl_iface.user[s];
  uint64_t gone = after->answered + after->replaced + u->expired + u->pending;

  if (before->inserted > gone && before->inserted - gone > u->evictions)
    u->evictions = before->inserted - gone;
}

static void tcl_iface_dispatch_counters(const char *instance,
                                        const struct tcl_iface_counters *c,
                                        const tcl_iface_user_t *u)
{
  tcl_submit(instance, "total_connections", "syn",
             (value_t){.derive = (derive_t)c->syn});
  tcl_submit(instance, "total_connections", "syn_retransmit",
             (value_t){.derive = (derive_t)c->syn_retransmit});
  tcl_submit(instance, "total_connections", "unanswered",
             (value_t){.derive = (derive_t)(c->replaced + u->expired)});
  tcl_submit(instance, "total_connections", "ambiguous",
             (value_t){.derive = (derive_t)c->ambiguous});
  tcl_submit(instance, "derive", "evictions",
             (value_t){.derive = (derive_t)u->evictions});
  tcl_submit(instance, "derive", "synack_unmatched",
             (value_t){.derive = (derive_t)c->synack_unmatched});
  tcl_submit(instance, "derive", "stats_dropped",
             (value_t){.derive = (derive_t)c->stats_full});
  tcl_submit(instance, "gauge", "pending",
             (value_t){.gauge = (gauge_t)u->pending});
}

/* The entries of one series in a snapshot sorted by (series, slot). */
static const tcl_entry_t *tcl_iface_series_entries(const tcl_snapshot_t *s,
                                                   __u32 series, size_t *n)
{
  size_t i = 0, j;

  while (i < s->num && s->entries[i].series < series)
    i++;
  j = i;
  while (j < s->num && s->entries[j].series == series)
    j++;
  *n = j - i;
  return *n ? s->entries + i : NULL;
}

int tcl_iface_read(double interval_s, const tcl_conf_t *conf)
{
  struct tcl_iface_counters before[TCL_IFACE_NSERIES];
  struct tcl_iface_counters after[TCL_IFACE_NSERIES];
  tcl_snapshot_t swap;
  int err;

  if (!tcl_iface.running)
    return 0;

  err = tcl_drain_stats(&tcl_iface.drain,
                        bpf_map__fd(tcl_iface.skel->maps.tcl_iface_stats),
                        -1, &tcl_iface.cur);
  if (err == 0)
    err = tcl_snapshot_delta(&tcl_iface.prev, &tcl_iface.cur,
                             &tcl_iface.delta);
  if (err == 0)
    err = tcl_iface_read_counters(before);
  if (err == 0)
    err = tcl_iface_scan_flows((__u64)conf->interface_timeout * TCL_NS_PER_SEC);
  if (err == 0)
    err = tcl_iface_read_counters(after);
  if (err != 0) {
    ERROR("tcpconnlat plugin: reading the interface maps failed: %s",
          STRERROR(err));
    return -1;
  }

  /* rates over the time since the previous read (see tcpconnlat_read) */
  double span_s = tcl_snapshot_span_s(&tcl_iface.prev, &tcl_iface.cur);
  if (isnan(span_s))
    span_s = interval_s;
  for (size_t i = 0; i < tcl_iface.n; i++) {
    for (__u32 dir = 0; dir < 2; dir++) {
      __u32 s = TCL_IFACE_SERIES((__u32)i, dir);
      const char *instance = tcl_iface.ifaces[i].instance[dir];
      const tcl_entry_t *d, *c;
      size_t nd, nc;

      d = tcl_iface_series_entries(&tcl_iface.delta, s, &nd);
      c = tcl_iface_series_entries(&tcl_iface.cur, s, &nc);
      /* No failure reasons here: the handshakes' own counters follow. */
      tcl_dispatch_series(conf, instance, d, nd, c, nc, span_s, 0, 0);
      tcl_iface_evictions(s, &before[s], &after[s]);
      tcl_iface_dispatch_counters(instance, &after[s], &tcl_iface.user[s]);
    }
  }

  swap = tcl_iface.prev;
  tcl_iface.prev = tcl_iface.cur;
  tcl_iface.cur = swap;
  return 0;
}
