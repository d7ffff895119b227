/* SPDX-License-Identifier: MIT */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "conf.h"

#include <math.h>

/* Default bucket edges in seconds; the last range is open-ended. */
static const double tcl_default_edges[] = {
    0,     0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,  0.1,    0.25,    0.5,    1,     2.5,    5,     10,
};
static const double tcl_default_percentiles[] = {50, 90, 99, 99.9};

#define TCL_VALID_KEYS                                                        \
  "Percentile, Bucket, ReportPercentiles, ReportBuckets, ReportFailures, "   \
  "AttachMode, MaxInflight, BtfPath, Verbose, OwnNetnsOnly"

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

static uint64_t tcl_seconds_to_ns(double seconds)
{
  return (uint64_t)llround(seconds * 1e9);
}

void tcl_conf_init(tcl_conf_t *conf)
{
  memset(conf, 0, sizeof(*conf));
  conf->report_percentiles = true;
  conf->report_buckets = true;
  conf->report_failures = true;
  conf->attach_mode = TCL_ATTACH_AUTO;
  conf->max_inflight = TCL_DEFAULT_MAX_INFLIGHT;
}

void tcl_conf_finish(tcl_conf_t *conf)
{
  size_t n;

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

static void tcl_conf_boolean(tcl_conf_t *conf, const oconfig_item_t *ci,
                             bool *ret)
{
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_BOOLEAN) {
    tcl_conf_error(conf, "%s: expected true or false.", ci->key);
    return;
  }
  *ret = ci->values[0].value.boolean != 0;
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

static void tcl_conf_max_inflight(tcl_conf_t *conf, const oconfig_item_t *ci)
{
  char expected[96];
  double n;

  snprintf(expected, sizeof(expected), "a whole number from 1 to %d",
           TCL_MAX_MAX_INFLIGHT);
  if (tcl_conf_number(conf, ci, expected, &n) != 0)
    return;
  if (!(n >= 1 && n <= TCL_MAX_MAX_INFLIGHT) || n != floor(n)) {
    tcl_conf_error(conf, "%s: expected %s, got %g.", ci->key, expected, n);
    return;
  }
  conf->max_inflight = (uint32_t)n;
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

int tcl_conf_parse(tcl_conf_t *conf, oconfig_item_t *ci)
{
  for (int i = 0; i < ci->children_num; i++) {
    oconfig_item_t *child = ci->children + i;

    if (strcasecmp("Percentile", child->key) == 0)
      tcl_conf_percentile(conf, child);
    else if (strcasecmp("Bucket", child->key) == 0)
      tcl_conf_bucket(conf, child);
    else if (strcasecmp("ReportPercentiles", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_percentiles);
    else if (strcasecmp("ReportBuckets", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_buckets);
    else if (strcasecmp("ReportFailures", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->report_failures);
    else if (strcasecmp("AttachMode", child->key) == 0)
      tcl_conf_attach_mode(conf, child);
    else if (strcasecmp("MaxInflight", child->key) == 0)
      tcl_conf_max_inflight(conf, child);
    else if (strcasecmp("BtfPath", child->key) == 0)
      tcl_conf_btf_path(conf, child);
    else if (strcasecmp("Verbose", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->verbose);
    else if (strcasecmp("OwnNetnsOnly", child->key) == 0)
      tcl_conf_boolean(conf, child, &conf->own_netns_only);
    else
      tcl_conf_error(conf,
                     "unknown option \"%s\" in <Plugin tcpconnlat>; "
                     "valid options are " TCL_VALID_KEYS ".",
                     child->key);
  }
  return 0;
}
