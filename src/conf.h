/* SPDX-License-Identifier: MIT */
/* The plugin's configuration: defaults, parsing of <Plugin tcpconnlat>. */
#ifndef TCPCONNLAT_CONF_H
#define TCPCONNLAT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

typedef enum {
  TCL_ATTACH_AUTO = 0,
  TCL_ATTACH_TP_BTF,
  TCL_ATTACH_TRACEPOINT,
} tcl_attach_mode_t;

#define TCL_DEFAULT_MAX_INFLIGHT 16384
#define TCL_MAX_MAX_INFLIGHT (1 << 24)
#define TCL_MAX_PERCENTILES 32
#define TCL_MAX_BUCKETS 64

typedef struct {
  double percentiles[TCL_MAX_PERCENTILES];
  size_t percentiles_num;
  tcl_range_t buckets[TCL_MAX_BUCKETS];
  size_t buckets_num;
  bool report_percentiles;
  bool report_buckets;
  bool report_failures;
  tcl_attach_mode_t attach_mode;
  uint32_t max_inflight;
  bool verbose;
  bool own_netns_only;
  char btf_path[4096]; /* empty: the kernel's own */

  /* The first configuration error; init refuses to start when set. */
  char error[512];
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

#endif /* TCPCONNLAT_CONF_H */
