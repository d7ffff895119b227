/* SPDX-License-Identifier: MIT */
/* The plugin's configuration: defaults, parsing of <Plugin tcpconnlat>. */
#ifndef TCPCONNLAT_CONF_H
#define TCPCONNLAT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include <net/if.h>

#include "histogram.h"
#include "iface_shared.h" /* bpf/ */

/* BucketStyle: how the configured buckets are reported. */
typedef enum {
  TCL_BUCKETS_RATE = 0,   /* gauges: connects per second in the interval */
  TCL_BUCKETS_CUMULATIVE, /* counters since the series started, per "le" */
} tcl_bucket_style_t;

typedef enum {
  TCL_ATTACH_AUTO = 0,
  TCL_ATTACH_TP_BTF,
  TCL_ATTACH_TRACEPOINT,
} tcl_attach_mode_t;

/* How passive mode attaches to an interface (InterfaceAttach). */
typedef enum {
  TCL_IFACE_ATTACH_AUTO = 0, /* tcx where the kernel has it, else tc */
  TCL_IFACE_ATTACH_TCX,      /* tcx links (Linux 6.6 and later) */
  TCL_IFACE_ATTACH_TC,       /* TC filters on a clsact qdisc */
} tcl_iface_attach_t;

#define TCL_DEFAULT_MAX_INFLIGHT 16384
#define TCL_MAX_MAX_INFLIGHT (1 << 24)
#define TCL_MAX_PERCENTILES 32
#define TCL_MAX_BUCKETS 64
#define TCL_DEFAULT_MAX_SERIES 256
#define TCL_DEFAULT_SERIES_TIMEOUT 10
/* The limits of the filters, ports, networks, series and interfaces are
 * the sizes of their kernel tables: bpf/tcpconnlat.h, bpf/iface_shared.h. */
#define TCL_NETWORK_NAME_LEN 64
/* Bounds of options that take one number. */
#define TCL_MAX_SERIES_TIMEOUT 1000000    /* intervals */
#define TCL_MAX_MAX_NOTIFICATIONS 1000000 /* per second */
#define TCL_MAX_INBOUND_TIMEOUT 86400     /* seconds */
#define TCL_MAX_INTERFACE_TIMEOUT 3600    /* seconds */
#define TCL_PID_MAX 4194304               /* PID_MAX_LIMIT, 64-bit kernels */
#define TCL_UID_MAX 4294967294.0          /* (uid_t)-1 is nobody's */
#define TCL_PORT_MAX 65535
#define TCL_DEFAULT_INTERFACE_TIMEOUT 60 /* seconds */
#define TCL_DEFAULT_MAX_NOTIFICATIONS 100
#define TCL_DEFAULT_INBOUND_TIMEOUT 75 /* s: past the SYN-ACK retries */

typedef struct {
  uint8_t addr[16]; /* IPv6, IPv4 as ::ffff:a.b.c.d */
  uint32_t prefixlen; /* over the 128-bit form */
  uint32_t network; /* index into networks[] */
} tcl_cidr_t;

typedef struct {
  char name[TCL_NETWORK_NAME_LEN];
  bool include;
  bool ignore;
} tcl_network_t;

typedef struct {
  double percentiles[TCL_MAX_PERCENTILES];
  size_t percentiles_num;
  tcl_range_t buckets[TCL_MAX_BUCKETS];
  size_t buckets_num;
  bool report_percentiles;
  bool report_buckets;
  tcl_bucket_style_t bucket_style;
  bool report_idle;     /* NaN gauges and zero rates of idle intervals */
  bool report_failures;
  tcl_attach_mode_t attach_mode;
  uint32_t max_inflight;
  bool verbose;
  bool collect_bpf_stats;

  /* Notifications */
  uint64_t slow_threshold_ns; /* 0: off */
  bool notify_failures;
  uint32_t max_notifications; /* per second */

  /* Inbound handshakes */
  bool inbound;
  bool inbound_requests; /* count requests (a sock_ops program): opt-in */
  uint16_t lports[TCL_MAX_PORTS];
  size_t lports_num;
  uint16_t ignore_lports[TCL_MAX_PORTS];
  size_t ignore_lports_num;

  /* Breakdowns */
  uint32_t by; /* TCL_BY_* */
  bool report_total;
  uint32_t max_series;
  uint32_t series_timeout; /* intervals */

  /* Filters, applied in the kernel; several combine with AND */
  bool own_netns_only;
  uint32_t pids[TCL_MAX_SET];
  size_t pids_num;
  uint32_t uids[TCL_MAX_SET];
  size_t uids_num;
  char comms[TCL_MAX_SET][TCL_COMM_LEN];
  size_t comms_num;
  char cgroups[TCL_MAX_CGROUP_FILTERS][1024];
  size_t cgroups_num;
  uint16_t rports[TCL_MAX_PORTS];
  size_t rports_num;
  uint16_t ignore_rports[TCL_MAX_PORTS];
  size_t ignore_rports_num;

  /* RemoteNetwork NAME CIDR..., IncludeRemoteNetwork, IgnoreRemoteNetwork */
  tcl_network_t networks[TCL_MAX_NETWORKS];
  size_t networks_num;
  tcl_cidr_t cidrs[TCL_MAX_CIDRS];
  size_t cidrs_num;
  /* Include/IgnoreRemoteNetwork names, resolved by tcl_conf_finish so that
   * they may come before the RemoteNetwork that defines them. */
  char net_filter_names[2][TCL_MAX_NETWORKS][TCL_NETWORK_NAME_LEN];
  size_t net_filter_num[2];
  char btf_path[4096]; /* empty: the kernel's own */

  /* Passive mode on an interface: Interface NAME (repeatable),
   * InterfaceTimeout SECONDS, InterfaceAttach auto|tcx|tc */
  char interfaces[TCL_IFACE_MAX][IFNAMSIZ];
  size_t interfaces_num;
  uint32_t interface_timeout; /* seconds */
  tcl_iface_attach_t interface_attach;

  /* The first configuration error; init refuses to start when set. */
  char error[1024];
} tcl_conf_t;

/* Defaults, and the default percentiles/buckets when none were configured. */
void tcl_conf_init(tcl_conf_t *conf);
void tcl_conf_finish(tcl_conf_t *conf);

struct oconfig_item_s;

/* Parses one <Plugin tcpconnlat> block into conf. Errors are logged and the
 * first one is kept in conf->error; the return value is always 0 so that
 * collectd 5.12 does not abort the whole daemon over this plugin. */
int tcl_conf_parse(tcl_conf_t *conf, struct oconfig_item_s *ci);

const char *tcl_attach_mode_name(tcl_attach_mode_t mode);

/* Pure helpers, exposed for the unit tests. */
int tcl_parse_cidr(const char *text, uint8_t addr[16], uint32_t *prefixlen);

#endif /* TCPCONNLAT_CONF_H */
