/* SPDX-License-Identifier: MIT */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "bpf_loader.h"
#include "cgroup.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>

#include "tcpconnlat.skel.h"

#define TCL_KERNEL_BTF "/sys/kernel/btf/vmlinux"
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* Linux 5.14; libc headers may predate it */
#endif
/* libbpf's own error codes (libbpf.h: __LIBBPF_ERRNO__START..END). */
#define TCL_LIBBPF_ERRNO(err)                                                 \
  ((err) >= __LIBBPF_ERRNO__START && (err) < __LIBBPF_ERRNO__END)

static const char *const tcl_tracefs_event_dirs[] = {
    "/sys/kernel/tracing/events/sock/inet_sock_set_state",
    "/sys/kernel/debug/tracing/events/sock/inet_sock_set_state",
};

static bool tcl_libbpf_verbose;
static libbpf_print_fn_t tcl_libbpf_previous;
static bool tcl_libbpf_routed;

/* libbpf hands over a verifier log as one message of many lines: each line
 * goes to collectd's log on its own, so none is cut at the log's line
 * length. */
static int tcl_libbpf_print(enum libbpf_print_level level, const char *format,
                            va_list ap)
{
  int severity = LOG_DEBUG;
  char *msg = NULL, *line, *save = NULL;

  if (tcl_libbpf_verbose) {
    if (level == LIBBPF_WARN)
      severity = LOG_WARNING;
    else if (level == LIBBPF_INFO)
      severity = LOG_INFO;
  }
  va_list again;
  int len;

  va_copy(again, ap);
  len = vsnprintf(NULL, 0, format, ap);
  if (len >= 0 && (msg = malloc((size_t)len + 1)) != NULL)
    vsnprintf(msg, (size_t)len + 1, format, again);
  va_end(again);
  if (msg == NULL)
    return 0;
  for (line = strtok_r(msg, "\r\n", &save); line != NULL;
       line = strtok_r(NULL, "\r\n", &save))
    plugin_log(severity, "tcpconnlat plugin: libbpf: %s", line);
  free(msg);
  return 0;
}

void tcl_bpf_log_to_collectd(bool verbose)
{
  tcl_libbpf_verbose = verbose;
  if (!tcl_libbpf_routed) {
    tcl_libbpf_previous = libbpf_set_print(tcl_libbpf_print);
    tcl_libbpf_routed = true;
  }
}

void tcl_bpf_log_restore(void)
{
  if (tcl_libbpf_routed) {
    libbpf_set_print(tcl_libbpf_previous);
    tcl_libbpf_routed = false;
  }
}

/* 0 when the event is there, EACCES when tracefs is there but not readable
 * by this process, ENOENT when it is not mounted. */
static int tcl_tracefs_event(void)
{
  int err = ENOENT;

  for (size_t i = 0; i < STATIC_ARRAY_SIZE(tcl_tracefs_event_dirs); i++) {
    if (access(tcl_tracefs_event_dirs[i], F_OK) == 0)
      return 0;
    if (errno == EACCES)
      err = EACCES;
  }
  return err;
}

/* strerror for errno values and libbpf's own codes (4000 and up). */
static const char *tcl_strerror(int err, char *buf, size_t len)
{
  if (libbpf_strerror(err, buf, len) != 0)
    sstrerror(err, buf, len);
  return buf;
}

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* Tracing programs need CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before 5.8,
 * and always sufficient). Checked up front: without them the kernel answers
 * EPERM at some later step that would read like a kernel problem. */
/* The effective capabilities; all of them when the kernel will not say. */
static uint64_t tcl_effective_capabilities(void)
{
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2] = {{0}};

  if (syscall(SYS_capget, &hdr, data) != 0)
    return ~0ULL; /* cannot tell: let the kernel decide */
  return (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
}

static bool tcl_has_bpf_capabilities(void)
{
  uint64_t eff = tcl_effective_capabilities();

  if (eff & (1ULL << CAP_SYS_ADMIN))
    return true;
  return (eff & (1ULL << CAP_BPF)) && (eff & (1ULL << CAP_PERFMON));
}

/* sock_ops programs (Inbound) also need CAP_NET_ADMIN. */
static bool tcl_has_net_admin(void)
{
  uint64_t eff = tcl_effective_capabilities();

  return (eff & (1ULL << CAP_SYS_ADMIN)) || (eff & (1ULL << CAP_NET_ADMIN));
}

/* Stats map entries: a shared pool (see TCL_SLOTS_PER_SERIES). */
static __u32 tcl_bpf_stats_entries(const tcl_conf_t *conf)
{
  /* all, other, inbound; label sets only with By. Reads walk the map's
   * whole bucket array, so it is kept no larger than the series need. */
  uint64_t series = TCL_SERIES_FIRST;

  if (conf->by & TCL_BY_OUTBOUND_MASK)
    series += conf->max_series;
  if (conf->by & TCL_BY_LOCAL_PORT)
    series += 64; /* listening ports, typically a few */
  return (__u32)(TCL_NSLOTS + series * TCL_SLOTS_PER_SERIES);
}

/* Pid, Process, By process and notifications need the process, which only
 * connect() knows: the one case where a start record is kept. */
static bool tcl_bpf_keeps_start(const tcl_conf_t *conf)
{
  return (conf->by & TCL_BY_PROCESS) || conf->pids_num > 0 ||
         conf->comms_num > 0 || conf->slow_threshold_ns > 0 ||
         conf->notify_failures;
}

/* Start record ways: MaxInflight rounded up to a power of two (the set is
 * a hash of the socket masked), at least one set. */
uint32_t tcl_bpf_start_slots(uint32_t max_inflight)
{
  uint32_t slots = TCL_START_WAYS;

  while (slots < max_inflight)
    slots <<= 1;
  return slots;
}

/* What one attempt loads besides the state-change programs. */
typedef struct {
  tcl_attach_mode_t mode;
  bool sockops;     /* Inbound: request counting on the cgroup v2 root */
} tcl_bpf_plan_t;

/* The sock_ops program on the cgroup v2 root sees every listener. Without
 * it inbound handshakes are still timed: say why, and go on. */
static bool tcl_bpf_attach_sockops(struct tcpconnlat_bpf *skel, char *why,
                                   size_t len)
{
  const char *root = tcl_cgroup_root();
  struct bpf_link *link;
  int fd;

  if (root == NULL) {
    snprintf(why, len, "no cgroup v2 hierarchy is mounted");
    return false;
  }
  fd = open(root, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    snprintf(why, len, "cannot open the cgroup v2 root %s: %s", root, STRERRNO);
    return false;
  }
  link = bpf_program__attach_cgroup(skel->progs.tcl_sockops, fd);
  close(fd);
  if (link == NULL) {
    snprintf(why, len,
             "the sock_ops program could not be attached to the cgroup v2 "
             "root %s: %s",
             root, STRERRNO);
    return false;
  }
  skel->links.tcl_sockops = link;
  return true;
}

static int tcl_bpf_set_flag(int fd, const void *key, __u8 flag);

/* Settings the programs read as constants. */
static void tcl_bpf_settings(const tcl_conf_t *conf, struct tcpconnlat_bpf *skel)
{
  struct tcpconnlat_bpf__rodata *ro = skel->rodata;

  ro->tcl_by = conf->by & TCL_BY_OUTBOUND_MASK;
  ro->tcl_inbound = conf->inbound;
  ro->tcl_inbound_by_port = (conf->by & TCL_BY_LOCAL_PORT) != 0;
  ro->tcl_filter_lport = conf->lports_num > 0;
  ro->tcl_ignore_lport = conf->ignore_lports_num > 0;
  ro->tcl_slow_ns = conf->slow_threshold_ns;
  ro->tcl_notify_failures = conf->notify_failures;
  ro->tcl_report_total = conf->report_total;
  ro->tcl_filter_pid = conf->pids_num > 0;
  ro->tcl_filter_uid = conf->uids_num > 0;
  ro->tcl_filter_comm = conf->comms_num > 0;
  ro->tcl_filter_rport = conf->rports_num > 0;
  ro->tcl_ignore_rport = conf->ignore_rports_num > 0;
  ro->tcl_use_networks = conf->cidrs_num > 0;
  for (size_t i = 0; i < conf->networks_num; i++) {
    if (conf->networks[i].include)
      ro->tcl_filter_network = true;
    if (conf->networks[i].ignore)
      ro->tcl_ignore_network = true;
  }
}

static int tcl_bpf_set_flag(int fd, const void *key, __u8 flag)
{
  __u8 flags = 0;

  bpf_map_lookup_elem(fd, key, &flags); /* ENOENT: starts from 0 */
  flags |= flag;
  return bpf_map_update_elem(fd, key, &flags, BPF_ANY) ? errno : 0;
}

/* Filter sets, networks and free series ids, before anything is attached. */
static int tcl_bpf_fill_maps(const tcl_conf_t *conf, struct tcpconnlat_bpf *skel)
{
  int err = 0;

  for (size_t i = 0; i < conf->pids_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_pids), &conf->pids[i],
                           TCL_MATCH_INCLUDE);
  for (size_t i = 0; i < conf->uids_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_uids), &conf->uids[i],
                           TCL_MATCH_INCLUDE);
  for (size_t i = 0; i < conf->comms_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_comms), conf->comms[i],
                           TCL_MATCH_INCLUDE);
  for (size_t i = 0; i < conf->rports_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_rports),
                           &conf->rports[i], TCL_MATCH_INCLUDE);
  for (size_t i = 0; i < conf->ignore_rports_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_rports),
                           &conf->ignore_rports[i], TCL_MATCH_IGNORE);
  for (size_t i = 0; i < conf->lports_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_lports),
                           &conf->lports[i], TCL_MATCH_INCLUDE);
  for (size_t i = 0; i < conf->ignore_lports_num && !err; i++)
    err = tcl_bpf_set_flag(bpf_map__fd(skel->maps.tcl_lports),
                           &conf->ignore_lports[i], TCL_MATCH_IGNORE);
  for (size_t i = 0; i < conf->cidrs_num && !err; i++) {
    const tcl_cidr_t *c = &conf->cidrs[i];
    const tcl_network_t *n = &conf->networks[c->network];
    struct tcl_net_key key = {.prefixlen = c->prefixlen};
    struct tcl_net_value val = {
        .index = (__u8)(c->network + 1),
        .include = n->include,
        .ignore = n->ignore,
    };
    memcpy(key.addr, c->addr, sizeof(key.addr));
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcl_networks), &key, &val,
                            BPF_ANY) != 0)
      err = errno;
  }
  for (__u32 id = TCL_SERIES_FIRST;
       id < TCL_SERIES_FIRST + conf->max_series && !err; id++)
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcl_free_ids), NULL, &id,
                            BPF_ANY) != 0)
      err = errno;
  return err;
}

/* Cgroup prefixes: resolved to (id, level) before load. */
static int tcl_bpf_cgroups(const tcl_conf_t *conf, struct tcpconnlat_bpf *skel,
                           char *errbuf, size_t errlen)
{
  for (size_t i = 0; i < conf->cgroups_num; i++) {
    uint64_t id;
    uint32_t level;
    int err = tcl_cgroup_lookup(conf->cgroups[i], &id, &level);

    if (err != 0) {
      const char *root = tcl_cgroup_root();
      snprintf(errbuf, errlen,
               "Cgroup \"%s\" was not found under the cgroup v2 mount %s (%s): "
               "give the path of an existing cgroup, such as /system.slice",
               conf->cgroups[i], root ? root : "(none mounted)",
               STRERROR(err));
      return err;
    }
    skel->rodata->tcl_cgroup_ids[i] = id;
    skel->rodata->tcl_cgroup_levels[i] = level;
  }
  skel->rodata->tcl_ncgroups = (__u32)conf->cgroups_num;
  return 0;
}

/* The network namespace's cookie (0: the kernel has none to give). */
static __u64 tcl_bpf_own_netns_cookie(void)
{
  __u64 cookie = 0;
  socklen_t len = sizeof(cookie);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return 0;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    cookie = 0;
  close(fd);
  return cookie;
}

/* Namespaces are told apart by cookie where the kernel has one (inode
 * numbers are reused at once), else by inode number. */
static int tcl_bpf_netns(const tcl_conf_t *conf, struct tcpconnlat_bpf *skel)
{
  __u64 cookie = tcl_bpf_own_netns_cookie();
  struct stat st;

  skel->rodata->tcl_netns_cookie = cookie != 0;
  if (!conf->own_netns_only)
    return 0;
  if (cookie != 0) {
    skel->rodata->tcl_netns_only = cookie;
    return 0;
  }
  if (stat("/proc/self/ns/net", &st) != 0)
    return errno;
  skel->rodata->tcl_netns_only = (__u64)st.st_ino;
  return 0;
}

/* Map sizes: the bounded maps from MaxInflight, the rest from the series. */
static int tcl_bpf_size(const tcl_conf_t *conf, struct tcpconnlat_bpf *skel)
{
  __u32 slots = tcl_bpf_keeps_start(conf) ? tcl_bpf_start_slots(conf->max_inflight) : 1;
  __u32 sets = slots > TCL_START_WAYS ? slots / TCL_START_WAYS : 1;
  int err;

  skel->rodata->tcl_start_mask = sets - 1;
  err = bpf_map__set_max_entries(skel->maps.tcl_starts, sets);
  if (err == 0)
    err = bpf_map__set_max_entries(skel->maps.tcl_first_syn, conf->max_inflight);
  if (err == 0) /* an upper bound: entries are allocated when first used */
    err = bpf_map__set_max_entries(skel->maps.tcl_stats, tcl_bpf_stats_entries(conf));
  if (err == 0)
    err = bpf_map__set_max_entries(skel->maps.tcl_series, conf->max_series);
  if (err == 0)
    err = bpf_map__set_max_entries(skel->maps.tcl_free_ids, conf->max_series);
  if (err == 0 && conf->slow_threshold_ns == 0 && !conf->notify_failures)
    /* unused: the smallest ring buffer there is (one page) */
    err = bpf_map__set_max_entries(skel->maps.tcl_events,
                                   (__u32)sysconf(_SC_PAGESIZE));
  return err;
}

/* Exactly the programs of the plan's attach mode. */
static int tcl_bpf_autoload(const tcl_conf_t *conf, const tcl_bpf_plan_t *plan,
                            struct tcpconnlat_bpf *skel)
{
  bool btf = plan->mode == TCL_ATTACH_TP_BTF;
  struct {
    struct bpf_program *prog;
    bool load;
  } progs[] = {
      {skel->progs.tcl_tp_btf, btf},
      {skel->progs.tcl_tracepoint, !btf},
      {skel->progs.tcl_retransmit_btf, btf},
      {skel->progs.tcl_retransmit_tp, !btf},
      {skel->progs.tcl_retransmit_synack_btf, btf && conf->inbound},
      {skel->progs.tcl_retransmit_synack_tp, !btf && conf->inbound},
      {skel->progs.tcl_sockops, plan->sockops},
  };

  for (size_t i = 0; i < STATIC_ARRAY_SIZE(progs); i++) {
    int err = bpf_program__set_autoload(progs[i].prog, progs[i].load);
    if (err != 0)
      return err;
  }
  return 0;
}

/* Opens the skeleton and sets everything that must be fixed before load. */
static int tcl_bpf_open(const tcl_conf_t *conf, const tcl_bpf_plan_t *plan,
                        struct tcpconnlat_bpf **out, const char **stage,
                        char *errbuf, size_t errlen)
{
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  struct tcpconnlat_bpf *skel;
  int err;

  if (conf->btf_path[0] != '\0')
    opts.btf_custom_path = conf->btf_path;
  *stage = "open";
  skel = tcpconnlat_bpf__open_opts(&opts);
  if (skel == NULL)
    return errno ? errno : EINVAL;
  *out = skel;

  *stage = "cgroup";
  err = tcl_bpf_cgroups(conf, skel, errbuf, errlen);
  if (err != 0)
    return err;

  *stage = "size";
  tcl_bpf_settings(conf, skel);
  err = tcl_bpf_netns(conf, skel);
  if (err == 0)
    err = tcl_bpf_size(conf, skel);
  if (err == 0)
    err = tcl_bpf_autoload(conf, plan, skel);
  return err;
}

/* Attaches the plan's tracing programs; the skeleton keeps the links so
 * that destroy detaches them. */
static int tcl_bpf_attach(const tcl_conf_t *conf, const tcl_bpf_plan_t *plan,
                          struct tcpconnlat_bpf *skel)
{
  bool btf = plan->mode == TCL_ATTACH_TP_BTF;
  struct {
    struct bpf_program *prog;
    struct bpf_link **link;
    bool wanted;
  } attach[] = {
      {btf ? skel->progs.tcl_tp_btf : skel->progs.tcl_tracepoint,
       btf ? &skel->links.tcl_tp_btf : &skel->links.tcl_tracepoint, true},
      {btf ? skel->progs.tcl_retransmit_btf : skel->progs.tcl_retransmit_tp,
       btf ? &skel->links.tcl_retransmit_btf : &skel->links.tcl_retransmit_tp,
       true},
      {btf ? skel->progs.tcl_retransmit_synack_btf
           : skel->progs.tcl_retransmit_synack_tp,
       btf ? &skel->links.tcl_retransmit_synack_btf
           : &skel->links.tcl_retransmit_synack_tp,
       conf->inbound},
  };

  for (size_t i = 0; i < STATIC_ARRAY_SIZE(attach); i++) {
    if (!attach[i].wanted)
      continue;
    *attach[i].link = bpf_program__attach(attach[i].prog);
    if (*attach[i].link == NULL)
      return errno ? errno : EINVAL;
  }
  return 0;
}

/* The descriptors the plugin reads, from a loaded and attached skeleton. */
static void tcl_bpf_keep(struct tcpconnlat_bpf *skel, const tcl_bpf_plan_t *plan,
                         tcl_bpf_t *bpf)
{
  bpf->skel = skel;
  bpf->mode = plan->mode;
  bpf->start_slots = bpf_map__max_entries(skel->maps.tcl_starts) * TCL_START_WAYS;
  bpf->stats_fd = bpf_map__fd(skel->maps.tcl_stats);
  bpf->fixed_fd = bpf_map__fd(skel->maps.tcl_fixed);
  bpf->series_fd = bpf_map__fd(skel->maps.tcl_series);
  bpf->prog_fd = bpf_program__fd(plan->mode == TCL_ATTACH_TP_BTF
                                     ? skel->progs.tcl_tp_btf
                                     : skel->progs.tcl_tracepoint);
  bpf->events_fd = bpf_map__fd(skel->maps.tcl_events);
  bpf->free_ids_fd = bpf_map__fd(skel->maps.tcl_free_ids);
  bpf->counters_fd = bpf_map__fd(skel->maps.tcl_counters);
}

/* One attempt with one plan. On failure nothing stays loaded and *stage
 * says where it failed. */
static int tcl_bpf_try(const tcl_conf_t *conf, const tcl_bpf_plan_t *plan,
                       tcl_bpf_t *bpf, const char **stage, char *errbuf,
                       size_t errlen)
{
  struct tcpconnlat_bpf *skel = NULL;
  int err;

  err = tcl_bpf_open(conf, plan, &skel, stage, errbuf, errlen);
  if (err == 0) {
    *stage = "load";
    err = tcpconnlat_bpf__load(skel);
  }
  if (err == 0) {
    *stage = "fill";
    err = tcl_bpf_fill_maps(conf, skel);
  }
  if (err == 0) {
    *stage = "attach";
    err = tcl_bpf_attach(conf, plan, skel);
  }
  if (err != 0) {
    tcpconnlat_bpf__destroy(skel);
    return err < 0 ? -err : err;
  }
  if (plan->sockops)
    bpf->requests = tcl_bpf_attach_sockops(skel, bpf->requests_error,
                                           sizeof(bpf->requests_error));
  tcl_bpf_keep(skel, plan, bpf);
  bpf->keeps_start = tcl_bpf_keeps_start(conf);
  return 0;
}

/*
 * Tries a plan, and again without request counting (sock_ops) when the
 * kernel rejects the load: it is the one optional part. What was given up
 * is said in bpf->requests_error.
 */
static int tcl_bpf_try_plan(const tcl_conf_t *conf, tcl_bpf_plan_t *plan,
                            tcl_bpf_t *bpf, const char **stage, char *errbuf,
                            size_t errlen)
{
  char ebuf[128];
  int err, sockops_err = 0;

  for (;;) {
    err = tcl_bpf_try(conf, plan, bpf, stage, errbuf, errlen);
    if (err == 0 || strcmp(*stage, "load") != 0)
      break;
    if (plan->sockops) {
      plan->sockops = false;
      sockops_err = err;
    } else {
      break;
    }
  }
  if (err == 0 && sockops_err != 0)
    snprintf(bpf->requests_error, sizeof(bpf->requests_error),
             "the kernel rejected the sock_ops program that counts them (%s)",
             tcl_strerror(sockops_err, ebuf, sizeof(ebuf)));
  return err;
}

/* Request counting needs a sock_ops program: CAP_NET_ADMIN, and with
 * OwnNetnsOnly a netns cookie to compare with. */
static bool tcl_bpf_sockops_possible(const tcl_conf_t *conf, char *why,
                                     size_t len)
{
  if (!conf->inbound || !conf->inbound_requests)
    return false;
  if (!tcl_has_net_admin()) {
    snprintf(why, len,
             "collectd lacks CAP_NET_ADMIN, which sock_ops programs need");
    return false;
  }
  if (conf->own_netns_only && tcl_bpf_own_netns_cookie() == 0) {
    snprintf(why, len,
             "OwnNetnsOnly needs network namespace cookies (Linux 5.14) to "
             "tell requests of this namespace apart");
    return false;
  }
  return true;
}

/* One sentence for a failed attempt: what is missing and what to do. */
static void tcl_bpf_explain(const tcl_conf_t *conf, tcl_attach_mode_t mode,
                            const char *stage, int err, char *buf, size_t len)
{
  const char *what = mode == TCL_ATTACH_TP_BTF
                         ? "the BTF raw tracepoint (tp_btf)"
                         : "the classic tracepoint sock:inet_sock_set_state";

  char ebuf[128];
  int tracefs = mode == TCL_ATTACH_TRACEPOINT && strcmp(stage, "attach") == 0
                    ? tcl_tracefs_event()
                    : 0;

  if (tracefs == ENOENT) {
    snprintf(buf, len,
             "the classic tracepoint needs tracefs, which is not mounted: run "
             "\"mount -t tracefs nodev /sys/kernel/tracing\" or use "
             "AttachMode \"tp_btf\"");
    return;
  }
  if (tracefs == EACCES) {
    snprintf(buf, len,
             "the classic tracepoint needs tracefs, which collectd may not "
             "read: grant it CAP_DAC_READ_SEARCH, mount tracefs with a group "
             "collectd is in (gid=...,mode=0750), or use AttachMode "
             "\"tp_btf\"");
    return;
  }
  if (strcmp(stage, "load") == 0 && (err == ENOMEM || err == E2BIG)) {
    snprintf(buf, len,
             "the kernel could not create the BPF maps (MaxInflight %u, "
             "MaxSeries %u%s): %s; lower them, or raise collectd's memory "
             "cgroup limit (its locked-memory limit on kernels before 5.11)",
             conf->max_inflight, conf->max_series,
             (conf->by & TCL_BY_OUTBOUND_MASK) ? " with By" : "",
             tcl_strerror(err, ebuf, sizeof(ebuf)));
    return;
  }
  if (err == EPERM) {
    snprintf(buf, len,
             "the kernel did not permit loading %s (%s): check that collectd "
             "runs as root or with CAP_BPF and CAP_PERFMON, and that no "
             "security policy (lockdown, SELinux, seccomp) forbids BPF",
             what, tcl_strerror(err, ebuf, sizeof(ebuf)));
    return;
  }
  if (strcmp(stage, "load") == 0 && (err == EACCES || err == EINVAL)) {
    snprintf(buf, len,
             "the kernel rejected %s (%s); set \"Verbose true\" to log the "
             "verifier's reasons",
             what, tcl_strerror(err, ebuf, sizeof(ebuf)));
    return;
  }
  if (strcmp(stage, "open") == 0 || TCL_LIBBPF_ERRNO(err)) {
    if (conf->btf_path[0])
      snprintf(buf, len,
               "the BPF programs could not be prepared with the kernel BTF "
               "of BtfPath \"%.200s\" (%s): point BtfPath at a BTF file that "
               "describes the running kernel",
               conf->btf_path, tcl_strerror(err, ebuf, sizeof(ebuf)));
    else
      snprintf(buf, len,
               "the BPF programs could not be prepared for this kernel (%s): "
               "set \"Verbose true\" to log libbpf's reasons",
               tcl_strerror(err, ebuf, sizeof(ebuf)));
    return;
  }
  snprintf(buf, len, "%s could not be %s (%s)", what,
           strcmp(stage, "attach") == 0 ? "attached" : "loaded",
           tcl_strerror(err, ebuf, sizeof(ebuf)));
}

int tcl_bpf_start(const tcl_conf_t *conf, tcl_bpf_t *bpf, char *errbuf,
                  size_t errlen)
{
  tcl_attach_mode_t modes[2];
  size_t nmodes = 0;
  const char *btf = conf->btf_path[0] ? conf->btf_path : TCL_KERNEL_BTF;
  char reason[512] = "";
  int err;

  memset(bpf, 0, sizeof(*bpf));
  bpf->stats_fd = bpf->fixed_fd = bpf->counters_fd = bpf->series_fd = bpf->free_ids_fd = -1;
  bpf->prog_fd = bpf->stats_enable_fd = bpf->events_fd = -1;

  if (access(btf, R_OK) != 0) {
    snprintf(errbuf, errlen,
             "kernel BTF is missing (%s: %s): use a kernel built with "
             "CONFIG_DEBUG_INFO_BTF=y, or set BtfPath to a BTF file that "
             "describes this kernel",
             btf, STRERRNO);
    return ENOENT;
  }

  if (!tcl_has_bpf_capabilities()) {
    snprintf(errbuf, errlen,
             "collectd lacks the privilege to load BPF tracing programs: run "
             "it as root, or grant it CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN "
             "on kernels before 5.8)");
    return EPERM;
  }

  if (conf->attach_mode == TCL_ATTACH_AUTO) {
    modes[nmodes++] = TCL_ATTACH_TP_BTF;
    modes[nmodes++] = TCL_ATTACH_TRACEPOINT;
  } else {
    modes[nmodes++] = conf->attach_mode;
  }

  for (size_t i = 0; i < nmodes; i++) {
    const char *stage = "";
    tcl_bpf_plan_t plan = {
        .mode = modes[i],
        .sockops = tcl_bpf_sockops_possible(conf, bpf->requests_error,
                                            sizeof(bpf->requests_error)),
    };

    err = tcl_bpf_try_plan(conf, &plan, bpf, &stage, reason, sizeof(reason));
    if (err == 0) {
      if (conf->collect_bpf_stats) {
        /* Kernel-wide until the fd is closed; costs two clock reads a run. */
        bpf->stats_enable_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
        if (bpf->stats_enable_fd < 0)
          WARNING("tcpconnlat plugin: CollectBpfStats: the kernel's BPF "
                  "run-time statistics could not be enabled: %s",
                  STRERRNO);
      }
      return 0;
    }
    if (strcmp(stage, "cgroup") == 0)
      break; /* a configuration problem, the same in every mode */
    tcl_bpf_explain(conf, modes[i], stage, err, reason, sizeof(reason));
    /* The BTF, map sizes or memory: the other mode would fail alike. */
    if (strcmp(stage, "open") == 0 || err == ENOMEM || err == E2BIG ||
        TCL_LIBBPF_ERRNO(err))
      break;
    if (i + 1 < nmodes)
      INFO("tcpconnlat plugin: %s; trying %s next.", reason,
           tcl_attach_mode_name(modes[i + 1]));
  }
  sstrncpy(errbuf, reason, errlen);
  return err;
}

int tcl_bpf_prog_stats(const tcl_bpf_t *bpf, tcl_prog_stats_t *out)
{
  struct bpf_prog_info info;
  __u32 len = sizeof(info);

  memset(&info, 0, sizeof(info));
  memset(out, 0, sizeof(*out));
  if (bpf_obj_get_info_by_fd(bpf->prog_fd, &info, &len) != 0)
    return errno;
  out->run_cnt = info.run_cnt;
  out->run_time_ns = info.run_time_ns;
  out->recursion_misses = info.recursion_misses;
  if (bpf->requests && bpf->skel != NULL) {
    memset(&info, 0, sizeof(info));
    len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(bpf->skel->progs.tcl_sockops),
                               &info, &len) == 0) {
      out->sockops_run_cnt = info.run_cnt;
      out->sockops_run_time_ns = info.run_time_ns;
    }
  }
  return 0;
}

void tcl_bpf_stop(tcl_bpf_t *bpf)
{
  if (bpf->stats_enable_fd >= 0)
    close(bpf->stats_enable_fd);
  bpf->stats_enable_fd = -1;
  if (bpf->skel != NULL)
    tcpconnlat_bpf__destroy(bpf->skel);
  bpf->skel = NULL;
  bpf->stats_fd = bpf->fixed_fd = bpf->counters_fd = bpf->series_fd = bpf->free_ids_fd = -1;
  bpf->prog_fd = bpf->events_fd = -1;
  bpf->requests = false;
}
