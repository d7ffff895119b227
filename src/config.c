/* SPDX-License-Identifier: MIT */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "clock.h"
#include "conf.h"

#include <arpa/inet.h>
#include <math.h>
#include <pwd.h>

/* Default bucket edges in seconds; the last range is open-ended. */
static const double tcl_default_edges[] = {
    0,     0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,  0.1,    0.25,    0.5,    1,     2.5,    5,     10,
};
static const double tcl_default_percentiles[] = {50, 90, 99, 99.9};

#define TCL_VALID_KEYS                                                        \
  "Percentile, Bucket, BucketStyle, ReportPercentiles, ReportBuckets, "     \
  "ReportFailures, "                                                          \
  "ReportIdle, ReportTotal, By, MaxSeries, SeriesTimeout, RemoteNetwork, Pid, Uid, "     \
  "Process, Cgroup, RemotePort, IgnoreRemotePort, IncludeRemoteNetwork, "    \
  "IgnoreRemoteNetwork, OwnNetnsOnly, AttachMode, MaxInflight, BtfPath, "    \
  "CollectBpfStats, SlowThreshold, NotifyFailures, "                       \
  "MaxNotificationsPerSecond, Inbound, InboundRequests, InboundTimeout, "   \
  "LocalPort, IgnoreLocalPort, Interface, InterfaceTimeout, "               \
  "InterfaceAttach, Verbose"

static const struct {
  const char *name;
  uint32_t bit;
} tcl_by_names[] = {
    {"process", TCL_BY_PROCESS},
    {"uid", TCL_BY_UID},
    {"remote_port", TCL_BY_REMOTE_PORT},
    {"family", TCL_BY_FAMILY},
    {"cgroup", TCL_BY_CGROUP},
    {"netns", TCL_BY_NETNS},
    {"remote_address", TCL_BY_REMOTE_ADDRESS},
    {"remote_network", TCL_BY_REMOTE_NETWORK},
    {"local_port", TCL_BY_LOCAL_PORT},
};

__attribute__((format(printf, 2, 3))) static void
tcl_conf_error(tcl_conf_t *conf, const char *format, ...)
{
  char msg[sizeof(conf->error)];
  va_list ap;

  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);

  ERROR("tcpconnlat plugin: %s", msg);
  if (conf->error[0] == '\0')
    sstrncpy(conf->error, msg, sizeof(conf->error));
}

static int tcl_conf_network_index(tcl_conf_t *conf, const char *name);

static uint64_t tcl_seconds_to_ns(double seconds)
{
  return (uint64_t)llround(seconds * (double)TCL_NS_PER_SEC);
}

void tcl_conf_init(tcl_conf_t *conf)
{
  memset(conf, 0, sizeof(*conf));
  conf->report_percentiles = true;
  conf->report_buckets = true;
  conf->report_idle = true;
  conf->report_failures = true;
  conf->attach_mode = TCL_ATTACH_AUTO;
  conf->max_inflight = TCL_DEFAULT_MAX_INFLIGHT;
  conf->report_total = true;
  conf->max_series = TCL_DEFAULT_MAX_SERIES;
  conf->series_timeout = TCL_DEFAULT_SERIES_TIMEOUT;
  conf->max_notifications = TCL_DEFAULT_MAX_NOTIFICATIONS;
  conf->inbound = true;
  conf->interface_timeout = TCL_DEFAULT_INTERFACE_TIMEOUT;
}

void tcl_conf_finish(tcl_conf_t *conf)
{
  size_t n;

  for (int ignore = 0; ignore < 2; ignore++) {
    for (size_t i = 0; i < conf->net_filter_num[ignore]; i++) {
      const char *name = conf->net_filter_names[ignore][i];
      int idx = tcl_conf_network_index(conf, name);
      if (idx < 0) {
        tcl_conf_error(conf,
                       "%s: expected the name of a RemoteNetwork, got \"%s\", "
                       "which no RemoteNetwork defines.",
                       ignore ? "IgnoreRemoteNetwork" : "IncludeRemoteNetwork",
                       name);
        continue;
      }
      if (ignore)
        conf->networks[idx].ignore = true;
      else
        conf->networks[idx].include = true;
    }
    conf->net_filter_num[ignore] = 0;
  }
  if ((conf->by & TCL_BY_REMOTE_NETWORK) && conf->networks_num == 0)
    tcl_conf_error(conf, "By: remote_network expected at least one "
                         "RemoteNetwork NAME CIDR to be configured.");
  if (!conf->report_total && (conf->by & TCL_BY_OUTBOUND_MASK) == 0)
    tcl_conf_error(conf, "ReportTotal: false expected a By option, or "
                         "nothing would be reported.");

  if (conf->percentiles_num == 0) {
    n = STATIC_ARRAY_SIZE(tcl_default_percentiles);
    memcpy(conf->percentiles, tcl_default_percentiles,
           sizeof(tcl_default_percentiles));
    conf->percentiles_num = n;
  }
  if (conf->buckets_num == 0) {
    n = STATIC_ARRAY_SIZE(tcl_default_edges);
    for (size_t i = 0; i < n; i++) {
      conf->buckets[i].lo_ns = tcl_seconds_to_ns(tcl_default_edges[i]);
      conf->buckets[i].hi_ns = (i + 1 < n)
                                   ? tcl_seconds_to_ns(tcl_default_edges[i + 1])
                                   : UINT64_MAX;
    }
    conf->buckets_num = n;
  }
}

const char *tcl_attach_mode_name(tcl_attach_mode_t mode)
{
  switch (mode) {
  case TCL_ATTACH_TP_BTF:
    return "tp_btf";
  case TCL_ATTACH_TRACEPOINT:
    return "tracepoint";
  case TCL_ATTACH_AUTO:
  default:
    return "auto";
  }
}

/* The single number an option takes, with its own error message. */
static int tcl_conf_number(tcl_conf_t *conf, const oconfig_item_t *ci,
                           const char *expected, double *ret)
{
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return -1;
  }
  *ret = ci->values[0].value.number;
  return 0;
}

static void tcl_conf_percentile(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "one number greater than 0 and less than 100";
  double p;

  if (tcl_conf_number(conf, ci, expected, &p) != 0)
    return;
  if (!(p > 0 && p < 100)) {
    tcl_conf_error(conf, "%s: expected %s, got %g.", ci->key, expected, p);
    return;
  }
  if (conf->percentiles_num >= TCL_MAX_PERCENTILES) {
    tcl_conf_error(conf, "%s: at most %d percentiles can be configured.",
                   ci->key, TCL_MAX_PERCENTILES);
    return;
  }
  for (size_t i = 0; i < conf->percentiles_num; i++)
    if (conf->percentiles[i] == p)
      return; /* listed twice: once is enough */
  conf->percentiles[conf->percentiles_num++] = p;
}

static void tcl_conf_bucket(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "two numbers LO HI in seconds with 0 <= LO < HI, or HI 0 for infinity";
  double lo, hi;

  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_NUMBER ||
      ci->values[1].type != OCONFIG_TYPE_NUMBER) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  lo = ci->values[0].value.number;
  hi = ci->values[1].value.number;
  if (!(lo >= 0) || !isfinite(lo) || !(hi == 0 || (isfinite(hi) && hi > lo))) {
    tcl_conf_error(conf, "%s: expected %s, got %g %g.", ci->key, expected, lo,
                   hi);
    return;
  }
  if (conf->buckets_num >= TCL_MAX_BUCKETS) {
    tcl_conf_error(conf, "%s: at most %d buckets can be configured.", ci->key,
                   TCL_MAX_BUCKETS);
    return;
  }
  conf->buckets[conf->buckets_num].lo_ns = tcl_seconds_to_ns(lo);
  conf->buckets[conf->buckets_num].hi_ns =
      hi == 0 ? UINT64_MAX : tcl_seconds_to_ns(hi);
  conf->buckets_num++;
}

static void tcl_conf_slow_threshold(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "a latency in seconds greater than 0 and at most 100, e.g. 0.2";
  double t;

  if (tcl_conf_number(conf, ci, expected, &t) != 0)
    return;
  if (!(t > 0 && t <= 100)) {
    tcl_conf_error(conf, "%s: expected %s, got %g.", ci->key, expected, t);
    return;
  }
  conf->slow_threshold_ns = tcl_seconds_to_ns(t);
  if (conf->slow_threshold_ns == 0)
    conf->slow_threshold_ns = 1;
}

static void tcl_conf_boolean(tcl_conf_t *conf, const oconfig_item_t *ci,
                             bool *ret)
{
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_BOOLEAN) {
    tcl_conf_error(conf, "%s: expected true or false.", ci->key);
    return;
  }
  *ret = ci->values[0].value.boolean != 0;
}

static void tcl_conf_bucket_style(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] = "\"rate\" or \"cumulative\"";
  const char *style;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  style = ci->values[0].value.string;
  if (strcasecmp(style, "rate") == 0)
    conf->bucket_style = TCL_BUCKETS_RATE;
  else if (strcasecmp(style, "cumulative") == 0)
    conf->bucket_style = TCL_BUCKETS_CUMULATIVE;
  else
    tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key, expected,
                   style);
}

static void tcl_conf_attach_mode(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] = "\"auto\", \"tp_btf\" or \"tracepoint\"";
  const char *mode;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  mode = ci->values[0].value.string;
  if (strcasecmp(mode, "auto") == 0)
    conf->attach_mode = TCL_ATTACH_AUTO;
  else if (strcasecmp(mode, "tp_btf") == 0)
    conf->attach_mode = TCL_ATTACH_TP_BTF;
  else if (strcasecmp(mode, "tracepoint") == 0)
    conf->attach_mode = TCL_ATTACH_TRACEPOINT;
  else
    tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key, expected,
                   mode);
}

static void tcl_conf_interface_attach(tcl_conf_t *conf,
                                      const oconfig_item_t *ci)
{
  static const char expected[] = "\"auto\", \"tcx\" or \"tc\"";
  const char *how;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  how = ci->values[0].value.string;
  if (strcasecmp(how, "auto") == 0)
    conf->interface_attach = TCL_IFACE_ATTACH_AUTO;
  else if (strcasecmp(how, "tcx") == 0)
    conf->interface_attach = TCL_IFACE_ATTACH_TCX;
  else if (strcasecmp(how, "tc") == 0)
    conf->interface_attach = TCL_IFACE_ATTACH_TC;
  else
    tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key, expected,
                   how);
}

/* A whole number in [min, max] from value `index` of the option. */
static int tcl_conf_whole(tcl_conf_t *conf, const oconfig_item_t *ci, int index,
                          double min, double max, uint32_t *ret)
{
  char expected[96];
  double n;

  snprintf(expected, sizeof(expected), "a whole number from %.0f to %.0f", min,
           max);
  if (ci->values_num < 1 || index >= ci->values_num ||
      ci->values[index].type != OCONFIG_TYPE_NUMBER) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return -1;
  }
  n = ci->values[index].value.number;
  if (!(n >= min && n <= max) || n != floor(n)) {
    tcl_conf_error(conf, "%s: expected %s, got %g.", ci->key, expected, n);
    return -1;
  }
  *ret = (uint32_t)n;
  return 0;
}

static void tcl_conf_single_whole(tcl_conf_t *conf, const oconfig_item_t *ci,
                                  double min, double max, uint32_t *ret)
{
  if (ci->values_num != 1) {
    tcl_conf_error(conf, "%s: expected a whole number from %.0f to %.0f.",
                   ci->key, min, max);
    return;
  }
  tcl_conf_whole(conf, ci, 0, min, max, ret);
}

/* By process uid ... : one or more label names, repeatable. */
static void tcl_conf_by(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "one or more of process, uid, remote_port, family, cgroup, netns, "
      "remote_address, remote_network, local_port";

  if (ci->values_num < 1) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  for (int i = 0; i < ci->values_num; i++) {
    size_t j;

    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
      return;
    }
    for (j = 0; j < STATIC_ARRAY_SIZE(tcl_by_names); j++)
      if (strcasecmp(ci->values[i].value.string, tcl_by_names[j].name) == 0)
        break;
    if (j == STATIC_ARRAY_SIZE(tcl_by_names)) {
      tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key, expected,
                     ci->values[i].value.string);
      return;
    }
    conf->by |= tcl_by_names[j].bit;
  }
}

int tcl_parse_cidr(const char *text, uint8_t addr[16], uint32_t *prefixlen)
{
  char buf[INET6_ADDRSTRLEN + 8];
  char *slash, *end;
  long len;
  struct in_addr v4;

  if (strlen(text) >= sizeof(buf))
    return -1;
  sstrncpy(buf, text, sizeof(buf));
  slash = strchr(buf, '/');
  if (slash != NULL)
    *slash++ = '\0';
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    len = 32;
    if (slash != NULL) {
      len = strtol(slash, &end, 10);
      if (*slash == '\0' || *end != '\0' || len < 0 || len > 32)
        return -1;
    }
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &v4, 4);
    *prefixlen = 96 + (uint32_t)len;
  } else if (inet_pton(AF_INET6, buf, addr) == 1) {
    len = 128;
    if (slash != NULL) {
      len = strtol(slash, &end, 10);
      if (*slash == '\0' || *end != '\0' || len < 0 || len > 128)
        return -1;
    }
    *prefixlen = (uint32_t)len;
  } else {
    return -1;
  }
  /* host bits must be zero: 10.1.2.3/8 is a typo for 10.0.0.0/8 */
  for (uint32_t bit = *prefixlen; bit < 128; bit++)
    if (addr[bit / 8] & (0x80 >> (bit % 8)))
      return -1;
  return 0;
}

static int tcl_conf_network_index(tcl_conf_t *conf, const char *name)
{
  for (size_t i = 0; i < conf->networks_num; i++)
    if (strcmp(conf->networks[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* RemoteNetwork NAME CIDR [CIDR...] */
static void tcl_conf_remote_network(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "a name and one or more CIDR ranges, e.g. RemoteNetwork \"dc1\" "
      "\"10.0.0.0/8\" \"fd00::/8\"";
  const char *name;
  int idx;

  if (ci->values_num < 2 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  name = ci->values[0].value.string;
  if (name[0] == '\0' || strlen(name) >= TCL_NETWORK_NAME_LEN ||
      strcmp(name, "other") == 0) {
    tcl_conf_error(conf,
                   "%s: expected a network name of 1 to %d characters other "
                   "than \"other\", got \"%s\".",
                   ci->key, TCL_NETWORK_NAME_LEN - 1, name);
    return;
  }
  idx = tcl_conf_network_index(conf, name);
  if (idx < 0) {
    if (conf->networks_num >= TCL_MAX_NETWORKS) {
      tcl_conf_error(conf, "%s: at most %d networks can be named.", ci->key,
                     TCL_MAX_NETWORKS);
      return;
    }
    idx = (int)conf->networks_num++;
    sstrncpy(conf->networks[idx].name, name, TCL_NETWORK_NAME_LEN);
  }
  for (int i = 1; i < ci->values_num; i++) {
    tcl_cidr_t *c;

    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
      return;
    }
    if (conf->cidrs_num >= TCL_MAX_CIDRS) {
      tcl_conf_error(conf, "%s: at most %d CIDR ranges can be configured.",
                     ci->key, TCL_MAX_CIDRS);
      return;
    }
    c = &conf->cidrs[conf->cidrs_num];
    if (tcl_parse_cidr(ci->values[i].value.string, c->addr, &c->prefixlen) !=
        0) {
      tcl_conf_error(conf,
                     "%s: expected an IPv4 or IPv6 CIDR range with zero host "
                     "bits (such as 10.0.0.0/8 or fd00::/8), got \"%s\".",
                     ci->key, ci->values[i].value.string);
      return;
    }
    c->network = (uint32_t)idx;
    conf->cidrs_num++;
  }
}

/* IncludeRemoteNetwork / IgnoreRemoteNetwork NAME... */
static void tcl_conf_network_filter(tcl_conf_t *conf, const oconfig_item_t *ci,
                                    int ignore)
{
  if (ci->values_num < 1) {
    tcl_conf_error(conf, "%s: expected one or more names of RemoteNetwork.",
                   ci->key);
    return;
  }
  for (int i = 0; i < ci->values_num; i++) {
    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      tcl_conf_error(conf, "%s: expected one or more names of RemoteNetwork.",
                     ci->key);
      return;
    }
    if (conf->net_filter_num[ignore] >= TCL_MAX_NETWORKS) {
      tcl_conf_error(conf, "%s: too many names.", ci->key);
      return;
    }
    sstrncpy(conf->net_filter_names[ignore][conf->net_filter_num[ignore]++],
             ci->values[i].value.string, TCL_NETWORK_NAME_LEN);
  }
}

static void tcl_conf_pid(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  for (int i = 0; i < ci->values_num || i == 0; i++) {
    uint32_t pid;
    if (tcl_conf_whole(conf, ci, i, 1, TCL_PID_MAX, &pid) != 0)
      return;
    if (conf->pids_num >= TCL_MAX_SET) {
      tcl_conf_error(conf, "%s: at most %d can be given.", ci->key, TCL_MAX_SET);
      return;
    }
    conf->pids[conf->pids_num++] = pid;
  }
}

/* Uid: numbers, or user names looked up now. */
static void tcl_conf_uid(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  for (int i = 0; i < ci->values_num || i == 0; i++) {
    uint32_t uid;

    if (i < ci->values_num && ci->values[i].type == OCONFIG_TYPE_STRING) {
      struct passwd *pw = getpwnam(ci->values[i].value.string);
      if (pw == NULL) {
        tcl_conf_error(conf, "%s: expected a user id or the name of a user, "
                             "got \"%s\", which is no user here.",
                       ci->key, ci->values[i].value.string);
        return;
      }
      uid = (uint32_t)pw->pw_uid;
    } else if (tcl_conf_whole(conf, ci, i, 0, TCL_UID_MAX, &uid) != 0) {
      return;
    }
    if (conf->uids_num >= TCL_MAX_SET) {
      tcl_conf_error(conf, "%s: at most %d can be given.", ci->key, TCL_MAX_SET);
      return;
    }
    conf->uids[conf->uids_num++] = uid;
  }
}

static void tcl_conf_process(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "one or more process names (comm) of 1 to 15 bytes";

  if (ci->values_num < 1) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const char *comm;

    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
      return;
    }
    comm = ci->values[i].value.string;
    if (comm[0] == '\0' || strlen(comm) > TCL_COMM_LEN - 1) {
      tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key, expected,
                     comm);
      return;
    }
    if (conf->comms_num >= TCL_MAX_SET) {
      tcl_conf_error(conf, "%s: at most %d can be given.", ci->key, TCL_MAX_SET);
      return;
    }
    memset(conf->comms[conf->comms_num], 0, TCL_COMM_LEN);
    memcpy(conf->comms[conf->comms_num++], comm, strlen(comm));
  }
}

static void tcl_conf_cgroup(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "a cgroup v2 path such as \"/system.slice\"";
  const char *path;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] != '/') {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  path = ci->values[0].value.string;
  if (strlen(path) >= sizeof(conf->cgroups[0])) {
    tcl_conf_error(conf, "%s: the path is too long.", ci->key);
    return;
  }
  if (conf->cgroups_num >= TCL_MAX_CGROUP_FILTERS) {
    tcl_conf_error(conf, "%s: at most %d can be given.", ci->key,
                   TCL_MAX_CGROUP_FILTERS);
    return;
  }
  sstrncpy(conf->cgroups[conf->cgroups_num++], path, sizeof(conf->cgroups[0]));
}

static bool tcl_port_listed(const uint16_t *ports, size_t num, uint16_t port)
{
  for (size_t i = 0; i < num; i++)
    if (ports[i] == port)
      return true;
  return false;
}

/* A port list (RemotePort...) and its counterpart (IgnoreRemotePort...),
 * which fills the same kernel table: a port in both takes one entry. */
typedef struct {
  const char *key;
  uint16_t *ports;
  size_t *num;
} tcl_port_list_t;

static void tcl_conf_ports(tcl_conf_t *conf, const oconfig_item_t *ci,
                           tcl_port_list_t own, tcl_port_list_t other)
{
  for (int i = 0; i < ci->values_num || i == 0; i++) {
    uint32_t port;
    size_t distinct = *own.num;

    if (tcl_conf_whole(conf, ci, i, 1, TCL_PORT_MAX, &port) != 0)
      return;
    if (tcl_port_listed(own.ports, *own.num, (uint16_t)port))
      continue; /* listed twice: once is enough */
    for (size_t j = 0; j < *other.num; j++)
      if (!tcl_port_listed(own.ports, *own.num, other.ports[j]))
        distinct++;
    if (!tcl_port_listed(other.ports, *other.num, (uint16_t)port) &&
        distinct >= TCL_MAX_PORTS) {
      tcl_conf_error(conf,
                     "%s: at most %d distinct ports can be given in %s and "
                     "%s together (one kernel table holds both); port %u "
                     "would be one more.",
                     ci->key, TCL_MAX_PORTS, own.key, other.key, port);
      return;
    }
    own.ports[(*own.num)++] = (uint16_t)port;
  }
}

static void tcl_conf_port_key(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  tcl_port_list_t rports = {"RemotePort", conf->rports, &conf->rports_num};
  tcl_port_list_t ignore_rports = {"IgnoreRemotePort", conf->ignore_rports,
                                   &conf->ignore_rports_num};
  tcl_port_list_t lports = {"LocalPort", conf->lports, &conf->lports_num};
  tcl_port_list_t ignore_lports = {"IgnoreLocalPort", conf->ignore_lports,
                                   &conf->ignore_lports_num};

  if (strcasecmp("RemotePort", ci->key) == 0)
    tcl_conf_ports(conf, ci, rports, ignore_rports);
  else if (strcasecmp("IgnoreRemotePort", ci->key) == 0)
    tcl_conf_ports(conf, ci, ignore_rports, rports);
  else if (strcasecmp("LocalPort", ci->key) == 0)
    tcl_conf_ports(conf, ci, lports, ignore_lports);
  else
    tcl_conf_ports(conf, ci, ignore_lports, lports);
}

static void tcl_conf_btf_path(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == '\0') {
    tcl_conf_error(conf, "%s: expected the path of a BTF file.", ci->key);
    return;
  }
  sstrncpy(conf->btf_path, ci->values[0].value.string, sizeof(conf->btf_path));
}

/* Interface NAME...: the kernel's rules for a device name (dev_valid_name). */
static void tcl_conf_interface(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  static const char expected[] =
      "one or more network interface names of 1 to 15 bytes, without "
      "\"/\", \":\" or white space";

  if (ci->values_num < 1) {
    tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
    return;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const char *name;

    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      tcl_conf_error(conf, "%s: expected %s.", ci->key, expected);
      return;
    }
    name = ci->values[i].value.string;
    if (name[0] == '\0' || strlen(name) >= IFNAMSIZ ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strpbrk(name, "/: \t\n\r\v\f") != NULL) {
      tcl_conf_error(conf, "%s: expected %s, got \"%s\".", ci->key,
                     expected, name);
      return;
    }
    for (size_t j = 0; j < conf->interfaces_num; j++)
      if (strcmp(conf->interfaces[j], name) == 0) {
        tcl_conf_error(conf, "%s: \"%s\" is named twice.", ci->key, name);
        return;
      }
    if (conf->interfaces_num >= TCL_IFACE_MAX) {
      tcl_conf_error(conf, "%s: at most %d interfaces can be named.", ci->key,
                     TCL_IFACE_MAX);
      return;
    }
    sstrncpy(conf->interfaces[conf->interfaces_num++], name, IFNAMSIZ);
  }
}

int tcl_conf_parse(tcl_conf_t *conf, oconfig_item_t *ci)
{
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *child = ci->children + i;

    if (strcasecmp("Percentile", child->key) == 0)
      tcl_conf_percentile(conf, child);
    else if (strcasecmp("Bucket", child->key) == 0)
      tcl_conf_bucket(conf, child);
    else if (strcasecmp("BucketStyle", child->key) == 0)
      tcl_conf_bucket_style(conf, child);
    else if (strcasecmp("ReportPercentiles", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_percentiles);
    else if (strcasecmp("ReportBuckets", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_buckets);
    else if (strcasecmp("ReportIdle", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_idle);
    else if (strcasecmp("ReportFailures", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_failures);
    else if (strcasecmp("AttachMode", child->key) == 0)
      tcl_conf_attach_mode(conf, child);
    else if (strcasecmp("MaxInflight", child->key) == 0)
      tcl_conf_single_whole(conf, child, 1, TCL_MAX_MAX_INFLIGHT,
                            &conf->max_inflight);
    else if (strcasecmp("ReportTotal", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_total);
    else if (strcasecmp("By", child->key) == 0)
      tcl_conf_by(conf, child);
    else if (strcasecmp("MaxSeries", child->key) == 0)
      tcl_conf_single_whole(conf, child, 1, TCL_MAX_MAX_SERIES,
                            &conf->max_series);
    else if (strcasecmp("SeriesTimeout", child->key) == 0)
      tcl_conf_single_whole(conf, child, 1, TCL_MAX_SERIES_TIMEOUT,
                            &conf->series_timeout);
    else if (strcasecmp("RemoteNetwork", child->key) == 0)
      tcl_conf_remote_network(conf, child);
    else if (strcasecmp("IncludeRemoteNetwork", child->key) == 0)
      tcl_conf_network_filter(conf, child, 0);
    else if (strcasecmp("IgnoreRemoteNetwork", child->key) == 0)
      tcl_conf_network_filter(conf, child, 1);
    else if (strcasecmp("Pid", child->key) == 0)
      tcl_conf_pid(conf, child);
    else if (strcasecmp("Uid", child->key) == 0)
      tcl_conf_uid(conf, child);
    else if (strcasecmp("Process", child->key) == 0)
      tcl_conf_process(conf, child);
    else if (strcasecmp("Cgroup", child->key) == 0)
      tcl_conf_cgroup(conf, child);
    else if (strcasecmp("RemotePort", child->key) == 0 ||
             strcasecmp("IgnoreRemotePort", child->key) == 0 ||
             strcasecmp("LocalPort", child->key) == 0 ||
             strcasecmp("IgnoreLocalPort", child->key) == 0)
      tcl_conf_port_key(conf, child);
    else if (strcasecmp("BtfPath", child->key) == 0)
      tcl_conf_btf_path(conf, child);
    else if (strcasecmp("Verbose", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->verbose);
    else if (strcasecmp("SlowThreshold", child->key) == 0)
      tcl_conf_slow_threshold(conf, child);
    else if (strcasecmp("NotifyFailures", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->notify_failures);
    else if (strcasecmp("MaxNotificationsPerSecond", child->key) == 0)
      tcl_conf_single_whole(conf, child, 1, TCL_MAX_MAX_NOTIFICATIONS,
                            &conf->max_notifications);
    else if (strcasecmp("Inbound", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->inbound);
    else if (strcasecmp("InboundRequests", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->inbound_requests);
    else if (strcasecmp("InboundTimeout", child->key) == 0) {
      /* Handshakes are timed from the kernel's own fields now: nothing
       * waits for them to expire. Still accepted so that old
       * configurations keep loading. */
      uint32_t t = TCL_DEFAULT_INBOUND_TIMEOUT;
      tcl_conf_single_whole(conf, child, 1, 86400, &t);
      WARNING("tcpconnlat plugin: InboundTimeout has no effect any more "
              "(handshakes that never complete are the requests total less "
              "the established one); remove it.");
    } else if (strcasecmp("CollectBpfStats", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->collect_bpf_stats);
    else if (strcasecmp("OwnNetnsOnly", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->own_netns_only);
    else if (strcasecmp("Interface", child->key) == 0)
      tcl_conf_interface(conf, child);
    else if (strcasecmp("InterfaceTimeout", child->key) == 0)
      tcl_conf_single_whole(conf, child, 1, 3600, &conf->interface_timeout);
    else if (strcasecmp("InterfaceAttach", child->key) == 0)
      tcl_conf_interface_attach(conf, child);
    else
      tcl_conf_error(conf,
                     "unknown option \"%s\" in <Plugin tcpconnlat>; "
                     "valid options are " TCL_VALID_KEYS ".",
                     child->key);
  }
  return 0;
}
