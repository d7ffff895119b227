/* SPDX-License-Identifier: MIT */
/*
 * Passive mode on an interface: attaching the TC programs politely, reading
 * their maps, dispatching one series per interface and direction.
 *
 * Politeness: the clsact qdisc is shared. The plugin creates it only where
 * there is none, attaches its own filters with a fixed handle and priority
 * (TCL_IFACE_TC_HANDLE, TCL_IFACE_TC_PRIORITY), and at shutdown detaches
 * exactly those (and only while they still run its program). It deletes the
 * qdisc only if it created it and no other filter is left on it.
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

typedef struct {
  char name[IFNAMSIZ];
  char instance[2][DATA_MAX_NAME_LEN]; /* by TCL_IFACE_DIR_* */
  int ifindex;
  bool ethernet;      /* else a raw IP device */
  bool qdisc_created; /* the clsact qdisc is ours */
  bool attached[2];   /* [0] ingress, [1] egress */
  __u32 prog_id[2];
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

static const enum bpf_tc_attach_point tcl_iface_hooks[2] = {
    BPF_TC_INGRESS, /* runs tcl_iface_in: a SYN there came in */
    BPF_TC_EGRESS,
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

/*
 * How many TC filters sit on one side (parent) of an interface's clsact
 * qdisc: a netlink dump, as `tc filter show dev X ingress` makes.
 */
static int tcl_iface_count_filters(int ifindex, __u32 parent, int *count)
{
  struct {
    struct nlmsghdr nh;
    struct tcmsg tc;
  } req;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  char buf[16384];
  int fd, err = 0;
  bool done = false;

  *count = 0;
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
             sizeof(sa)) < 0) {
    err = errno;
    close(fd);
    return err;
  }
  while (!done && err == 0) {
    ssize_t got = recv(fd, buf, sizeof(buf), 0);
    struct nlmsghdr *nh;
    int len;

    if (got < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      break;
    }
    if (got == 0)
      break;
    len = (int)got;
    for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len);
         nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(nh);
        err = e->error ? -e->error : 0;
        done = true;
        break;
      }
      if (nh->nlmsg_type == RTM_NEWTFILTER)
        (*count)++;
    }
  }
  close(fd);
  return err;
}

/* Our filter on one side, if it still runs our program. */
static void tcl_iface_detach_one(tcl_iface_t *ifc, int side)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = tcl_iface_hooks[side]);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TCL_IFACE_TC_HANDLE,
                      .priority = TCL_IFACE_TC_PRIORITY);
  int err;

  if (!ifc->attached[side])
    return;
  ifc->attached[side] = false;
  err = bpf_tc_query(&hook, &opts);
  if (err != 0) {
    if (err != -ENOENT && err != -ENODEV && err != -EINVAL)
      WARNING("tcpconnlat plugin: Interface \"%s\": could not look up the "
              "%s filter before removing it: %s",
              ifc->name, side ? "egress" : "ingress", STRERROR(-err));
    return; /* gone already, with the interface or by hand */
  }
  if (opts.prog_id != ifc->prog_id[side]) {
    WARNING("tcpconnlat plugin: Interface \"%s\": the %s filter with "
            "priority %d and handle 0x%x now runs another program (id %u); "
            "left in place",
            ifc->name, side ? "egress" : "ingress", TCL_IFACE_TC_PRIORITY,
            TCL_IFACE_TC_HANDLE, opts.prog_id);
    return;
  }
  opts.prog_id = 0;
  opts.prog_fd = 0;
  opts.flags = 0;
  err = bpf_tc_detach(&hook, &opts);
  if (err != 0 && err != -ENOENT && err != -ENODEV)
    WARNING("tcpconnlat plugin: Interface \"%s\": could not remove the %s "
            "filter (priority %d, handle 0x%x): %s",
            ifc->name, side ? "egress" : "ingress", TCL_IFACE_TC_PRIORITY,
            TCL_IFACE_TC_HANDLE, STRERROR(-err));
}

/* The clsact qdisc, if we created it and nobody else uses it now. */
static void tcl_iface_remove_qdisc(tcl_iface_t *ifc)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
  int in = 0, out = 0, err;

  if (!ifc->qdisc_created)
    return;
  ifc->qdisc_created = false;
  err = tcl_iface_count_filters(ifc->ifindex,
                                TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), &in);
  if (err == 0)
    err = tcl_iface_count_filters(ifc->ifindex,
                                  TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS), &out);
  if (err == ENODEV || err == EINVAL || err == ENOENT)
    return; /* the interface or the qdisc is gone */
  if (err != 0) {
    WARNING("tcpconnlat plugin: Interface \"%s\": the clsact qdisc the "
            "plugin created is left in place, its filters could not be "
            "listed: %s",
            ifc->name, STRERROR(err));
    return;
  }
  if (in + out > 0) {
    INFO("tcpconnlat plugin: Interface \"%s\": the clsact qdisc the plugin "
         "created is left in place: %d other filter(s) use it now.",
         ifc->name, in + out);
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

static void tcl_iface_explain_attach(const tcl_iface_t *ifc, int side, int err,
                                     char *errbuf, size_t errlen)
{
  const char *where = side ? "egress" : "ingress";

  if (err == EEXIST)
    snprintf(errbuf, errlen,
             "Interface \"%s\": a TC filter with priority %d and handle 0x%x "
             "is already attached to its %s (another collectd running "
             "tcpconnlat, or one that was killed): the plugin does not "
             "replace filters it did not create; remove it with \"tc filter "
             "del dev %s %s protocol all pref %d handle 0x%x bpf\" if it is "
             "stale",
             ifc->name, TCL_IFACE_TC_PRIORITY, TCL_IFACE_TC_HANDLE, where,
             ifc->name, where, TCL_IFACE_TC_PRIORITY, TCL_IFACE_TC_HANDLE);
  else if (err == EPERM || err == EACCES)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel did not permit attaching a TC "
             "filter (%s): collectd needs CAP_NET_ADMIN and CAP_BPF (or "
             "root)",
             ifc->name, STRERROR(err));
  else if (err == EINVAL)
    snprintf(errbuf, errlen,
             "Interface \"%s\": the kernel refused the TC filter on its %s "
             "(%s): another kind of filter may already use priority %d "
             "there (see \"tc filter show dev %s %s\")",
             ifc->name, where, STRERROR(err), TCL_IFACE_TC_PRIORITY,
             ifc->name, where);
  else
    snprintf(errbuf, errlen,
             "Interface \"%s\": the TC filter could not be attached to its "
             "%s: %s",
             ifc->name, where, STRERROR(err));
}

static int tcl_iface_attach(tcl_iface_t *ifc, char *errbuf, size_t errlen)
{
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex,
                      .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
  struct bpf_program *progs[2];
  int err;

  if (ifc->ethernet) {
    progs[0] = tcl_iface.skel->progs.tcl_iface_in;
    progs[1] = tcl_iface.skel->progs.tcl_iface_out;
  } else {
    progs[0] = tcl_iface.skel->progs.tcl_iface_l3_in;
    progs[1] = tcl_iface.skel->progs.tcl_iface_l3_out;
  }

  err = bpf_tc_hook_create(&hook);
  if (err == 0) {
    ifc->qdisc_created = true;
  } else if (err != -EEXIST) {
    snprintf(errbuf, errlen,
             "Interface \"%s\": the clsact qdisc could not be created: %s%s",
             ifc->name, STRERROR(-err),
             err == -EPERM ? " (collectd needs CAP_NET_ADMIN)" : "");
    return -err;
  }

  for (int side = 0; side < 2; side++) {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, one, .ifindex = ifc->ifindex,
                        .attach_point = tcl_iface_hooks[side]);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TCL_IFACE_TC_HANDLE,
                        .priority = TCL_IFACE_TC_PRIORITY,
                        .prog_fd = bpf_program__fd(progs[side]));

    err = bpf_tc_attach(&one, &opts);
    if (err != 0) {
      tcl_iface_explain_attach(ifc, side, -err, errbuf, errlen);
      return -err;
    }
    ifc->attached[side] = true;
    ifc->prog_id[side] = opts.prog_id;
  }
  return 0;
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

int tcl_iface_start(const char *const *names, size_t n, char *errbuf,
                    size_t errlen)
{
  int err;

  tcl_iface_stop();
  if (n == 0)
    return 0;
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
    INFO("tcpconnlat plugin: Interface \"%s\" (ifindex %d, %s): TC filters "
         "attached to ingress and egress with priority %d and handle 0x%x%s.",
         tcl_iface.ifaces[i].name, tcl_iface.ifaces[i].ifindex,
         tcl_iface.ifaces[i].ethernet ? "Ethernet" : "raw IP",
         TCL_IFACE_TC_PRIORITY, TCL_IFACE_TC_HANDLE,
         tcl_iface.ifaces[i].qdisc_created ? ", clsact qdisc created"
                                           : ", clsact qdisc shared");
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

/* Pending handshakes per series; expiry of the unanswered ones. */
static int tcl_iface_scan_flows(__u64 timeout_ns)
{
  int fd = bpf_map__fd(tcl_iface.skel->maps.tcl_iface_flows);
  __u64 in_token = 0, out_token = 0, now_ns = tcl_monotonic_ns();
  bool first = true;

  for (size_t s = 0; s < TCL_IFACE_NSERIES; s++)
    tcl_iface.user[s].pending = 0;

  while (!tcl_iface.flows_no_batch) {
    __u32 count = TCL_IFACE_BATCH;
    int err = bpf_map_lookup_batch(fd, first ? NULL : &in_token, &out_token,
                                   tcl_iface.flow_keys, tcl_iface.flow_values,
                                   &count, NULL);
    int saved = errno;

    if (err != 0 && saved != ENOENT) {
      if (first && (saved == EINVAL || saved == ENOTSUP || saved == 524)) {
        tcl_iface.flows_no_batch = true;
        break;
      }
      return saved;
    }
    for (__u32 i = 0; i < count; i++)
      tcl_iface_flow_seen(&tcl_iface.flow_keys[i], &tcl_iface.flow_values[i],
                          now_ns, timeout_ns);
    if (err != 0)
      return 0; /* ENOENT: that was the last batch */
    in_token = out_token;
    first = false;
  }
  return tcl_iface_scan_iterate(now_ns, timeout_ns);
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

static void tcl_iface_submit(const char *instance, const char *type,
                             const char *type_instance, value_t value)
{
  value_list_t vl = VALUE_LIST_INIT;

  vl.values = &value;
  vl.values_len = 1;
  sstrncpy(vl.plugin, "tcpconnlat", sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

static void tcl_iface_dispatch_counters(const char *instance,
                                        const struct tcl_iface_counters *c,
                                        const tcl_iface_user_t *u)
{
  tcl_iface_submit(instance, "total_connections", "syn",
                   (value_t){.derive = (derive_t)c->syn});
  tcl_iface_submit(instance, "total_connections", "syn_retransmit",
                   (value_t){.derive = (derive_t)c->syn_retransmit});
  tcl_iface_submit(instance, "total_connections", "unanswered",
                   (value_t){.derive = (derive_t)(c->replaced + u->expired)});
  tcl_iface_submit(instance, "total_connections", "ambiguous",
                   (value_t){.derive = (derive_t)c->ambiguous});
  tcl_iface_submit(instance, "derive", "evictions",
                   (value_t){.derive = (derive_t)u->evictions});
  tcl_iface_submit(instance, "derive", "synack_unmatched",
                   (value_t){.derive = (derive_t)c->synack_unmatched});
  tcl_iface_submit(instance, "derive", "stats_dropped",
                   (value_t){.derive = (derive_t)c->stats_full});
  tcl_iface_submit(instance, "gauge", "pending",
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

  for (size_t i = 0; i < tcl_iface.n; i++) {
    for (__u32 dir = 0; dir < 2; dir++) {
      __u32 s = TCL_IFACE_SERIES((__u32)i, dir);
      const char *instance = tcl_iface.ifaces[i].instance[dir];
      const tcl_entry_t *d, *c;
      size_t nd, nc;

      d = tcl_iface_series_entries(&tcl_iface.delta, s, &nd);
      c = tcl_iface_series_entries(&tcl_iface.cur, s, &nc);
      /* No failure reasons here: the handshakes' own counters follow. */
      tcl_dispatch_series(conf, instance, d, nd, c, nc, interval_s, 0);
      tcl_iface_evictions(s, &before[s], &after[s]);
      tcl_iface_dispatch_counters(instance, &after[s], &tcl_iface.user[s]);
    }
  }

  swap = tcl_iface.prev;
  tcl_iface.prev = tcl_iface.cur;
  tcl_iface.cur = swap;
  return 0;
}
