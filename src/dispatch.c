/* SPDX-License-Identifier: MIT */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "dispatch.h"
#include "labels.h"

#include <math.h>

/* Names that stay the same while the plugin runs, formatted once: every
 * series dispatches them, and %g costs about a microsecond each. */
static char tcl_percentile_names[TCL_MAX_PERCENTILES][DATA_MAX_NAME_LEN];
static char tcl_bucket_names[TCL_MAX_BUCKETS][DATA_MAX_NAME_LEN];
/* BucketStyle cumulative: the distinct upper edges, ascending, the last one
 * infinity (UINT64_MAX), and their names. */
static uint64_t tcl_le_edges[TCL_MAX_BUCKETS + 1];
static char tcl_le_names[TCL_MAX_BUCKETS + 1][DATA_MAX_NAME_LEN];
static size_t tcl_le_num;
/* One timestamp for every value of a read: consistent across series, and
 * collectd need not read the clock for each value. */
static cdtime_t tcl_read_time;

void tcl_submit(const char *instance, const char *type,
                const char *type_instance, value_t value)
{
  value_list_t vl = VALUE_LIST_INIT;

  vl.values = &value;
  vl.values_len = 1;
  vl.time = tcl_read_time;
  sstrncpy(vl.plugin, "tcpconnlat", sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

static void tcl_submit_seconds(const char *instance, const char *type_instance,
                               double ns)
{
  tcl_submit(instance, "latency", type_instance,
             (value_t){.gauge = isnan(ns) ? NAN : ns / 1e9});
}

/* Number of leading entries that are histogram buckets. */
static size_t tcl_histogram_len(const tcl_entry_t *e, size_t n)
{
  size_t i = 0;

  while (i < n && e[i].slot < TCL_NBUCKETS)
    i++;
  return i;
}

/* Edges print in seconds with %g, as collectd's tail plugin does. */
static void tcl_bucket_name(const tcl_range_t *r, char *buf, size_t len)
{
  if (r->hi_ns == UINT64_MAX)
    snprintf(buf, len, "latency-%g_inf", (double)r->lo_ns / 1e9);
  else
    snprintf(buf, len, "latency-%g_%g", (double)r->lo_ns / 1e9,
             (double)r->hi_ns / 1e9);
}

/*
 * The name of a cumulative bucket: "latency-le_" and the edge in seconds as
 * an integer count of microseconds with "e-6" (nanoseconds with "e-9" when
 * the edge is not a whole microsecond), "+Inf" for infinity. Every reader
 * parses it as a number in seconds (Prometheus' le, Python's float(), awk),
 * it has no dot for write_graphite to escape, so it reads back the same in
 * every back end, and the integers sort in edge order by Graphite's natural
 * sort.
 */
static void tcl_le_name(uint64_t edge_ns, char *buf, size_t len)
{
  if (edge_ns == UINT64_MAX)
    snprintf(buf, len, "latency-le_+Inf");
  else if (edge_ns % 1000 == 0)
    snprintf(buf, len, "latency-le_%" PRIu64 "e-6", edge_ns / 1000);
  else
    snprintf(buf, len, "latency-le_%" PRIu64 "e-9", edge_ns);
}

static int tcl_u64_cmp(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

/* The configured buckets' upper edges, each once, and infinity. */
static void tcl_le_prepare(const tcl_conf_t *conf)
{
  size_t n = 0;

  for (size_t i = 0; i < conf->buckets_num; i++)
    tcl_le_edges[n++] = conf->buckets[i].hi_ns;
  tcl_le_edges[n++] = UINT64_MAX;
  qsort(tcl_le_edges, n, sizeof(tcl_le_edges[0]), tcl_u64_cmp);
  tcl_le_num = 0;
  for (size_t i = 0; i < n; i++)
    if (tcl_le_num == 0 || tcl_le_edges[tcl_le_num - 1] != tcl_le_edges[i])
      tcl_le_edges[tcl_le_num++] = tcl_le_edges[i];
  for (size_t i = 0; i < tcl_le_num; i++)
    tcl_le_name(tcl_le_edges[i], tcl_le_names[i], sizeof(tcl_le_names[i]));
}

void tcl_dispatch_prepare(const tcl_conf_t *conf)
{
  for (size_t i = 0; i < conf->percentiles_num; i++)
    snprintf(tcl_percentile_names[i], sizeof(tcl_percentile_names[i]),
             "percentile-%g", conf->percentiles[i]);
  for (size_t i = 0; i < conf->buckets_num; i++)
    tcl_bucket_name(&conf->buckets[i], tcl_bucket_names[i],
                    sizeof(tcl_bucket_names[i]));
  tcl_le_prepare(conf);
}

void tcl_dispatch_begin(cdtime_t now)
{
  tcl_read_time = now;
}

/* Percentiles, average and max of one interval's growth. */
static void tcl_dispatch_latencies(const tcl_conf_t *conf, const char *instance,
                                   const tcl_entry_t *delta, size_t nhist)
{
  for (size_t i = 0; i < conf->percentiles_num; i++)
    tcl_submit_seconds(instance, tcl_percentile_names[i],
                       tcl_hist_percentile(delta, nhist, conf->percentiles[i]));
  tcl_submit_seconds(instance, "average", tcl_hist_mean(delta, nhist));
  tcl_submit_seconds(instance, "max", tcl_hist_max(delta, nhist));
}

/* BucketStyle rate: connects per second of each configured range, over the
 * time the interval really spanned. */
static void tcl_dispatch_rates(const tcl_conf_t *conf, const char *instance,
                               const tcl_entry_t *delta, size_t nhist,
                               double span_s)
{
  uint64_t counts[TCL_MAX_BUCKETS];

  tcl_hist_ranges(delta, nhist, conf->buckets, conf->buckets_num, counts);
  for (size_t i = 0; i < conf->buckets_num; i++)
    tcl_submit(instance, "bucket", tcl_bucket_names[i],
               (value_t){.gauge = (double)counts[i] / span_s});
}

/*
 * BucketStyle cumulative: counters since the series started, read straight
 * from the kernel's cumulative histogram, so a missed read, write or scrape
 * loses nothing. One per upper edge ("le"), then the count and the latency
 * sum (ns), as a Prometheus histogram has them.
 */
static void tcl_dispatch_cumulative(const char *instance, const tcl_entry_t *cum,
                                    size_t ncumhist)
{
  uint64_t counts[TCL_MAX_BUCKETS + 1], count = 0, sum_ns = 0;

  tcl_hist_cumulative(cum, ncumhist, tcl_le_edges, tcl_le_num, counts);
  for (size_t i = 0; i < tcl_le_num; i++)
    tcl_submit(instance, "derive", tcl_le_names[i],
               (value_t){.derive = (derive_t)counts[i]});
  for (size_t i = 0; i < ncumhist; i++) {
    count += cum[i].count;
    sum_ns += cum[i].sum_ns;
  }
  tcl_submit(instance, "derive", "latency-count",
             (value_t){.derive = (derive_t)count});
  tcl_submit(instance, "derive", "latency-sum_ns",
             (value_t){.derive = (derive_t)sum_ns});
}

void tcl_dispatch_series(const tcl_conf_t *conf, const char *instance,
                         const tcl_entry_t *delta, size_t ndelta,
                         const tcl_entry_t *cum, size_t ncum,
                         double span_s, uint32_t reasons,
                         uint32_t totals)
{
  size_t nhist = tcl_histogram_len(delta, ndelta);
  size_t ncumhist = tcl_histogram_len(cum, ncum);
  uint64_t established = 0, interval_count = 0;

  for (size_t i = 0; i < nhist; i++)
    interval_count += delta[i].count;
  /* ReportIdle false: no connect completed in this interval, so the
   * percentiles, average and max would be NaN and every bucket rate 0;
   * leave them out and send only the totals. */
  bool skip_idle = interval_count == 0 && !conf->report_idle;

  if (conf->report_percentiles && !skip_idle)
    tcl_dispatch_latencies(conf, instance, delta, nhist);

  if (conf->report_buckets && conf->bucket_style == TCL_BUCKETS_RATE &&
      !skip_idle)
    tcl_dispatch_rates(conf, instance, delta, nhist, span_s);
  /* counters, like the totals: sent for idle intervals too */
  if (conf->report_buckets && conf->bucket_style == TCL_BUCKETS_CUMULATIVE)
    tcl_dispatch_cumulative(instance, cum, ncumhist);

  uint64_t failures[TCL_NREASONS] = {0};
  uint64_t retransmitted = 0, requests = 0;

  for (size_t i = 0; i < ncumhist; i++)
    established += cum[i].count;
  for (size_t i = ncumhist; i < ncum; i++) {
    uint32_t slot = cum[i].slot;

    if (slot == TCL_SLOT_UNTIMED)
      established += cum[i].count; /* established, latency unknown */
    else if (slot == TCL_SLOT_RETRANSMITTED)
      retransmitted += cum[i].count;
    else if (slot == TCL_SLOT_REQUESTS)
      requests += cum[i].count;
    else if (slot - TCL_SLOT_FAILURE_BASE < TCL_NREASONS)
      failures[slot - TCL_SLOT_FAILURE_BASE] += cum[i].count;
  }
  tcl_submit(instance, "total_connections", "established",
             (value_t){.derive = (derive_t)established});
  if (totals & TCL_TOTAL_SYN_RETRANSMITTED)
    tcl_submit(instance, "total_connections", "syn_retransmitted",
               (value_t){.derive = (derive_t)retransmitted});
  if (totals & TCL_TOTAL_SYNACK_RETRANSMITTED)
    tcl_submit(instance, "total_connections", "synack_retransmitted",
               (value_t){.derive = (derive_t)retransmitted});
  if (totals & TCL_TOTAL_REQUESTS)
    tcl_submit(instance, "total_connections", "requests",
               (value_t){.derive = (derive_t)requests});

  if (conf->report_failures)
    for (size_t r = 0; r < TCL_NREASONS; r++)
      if (reasons & (1u << r))
        tcl_submit(instance, "total_connections", tcl_reason_name(r),
                   (value_t){.derive = (derive_t)failures[r]});
}

void tcl_dispatch_self(const struct tcl_counters *c, const tcl_self_t *self)
{
  if (self->keeps_start)
    tcl_submit("self", "derive", "no_start",
               (value_t){.derive = (derive_t)c->no_start});
  tcl_submit("self", "derive", "stats_dropped",
             (value_t){.derive = (derive_t)c->stats_full});
  tcl_submit("self", "derive", "filtered",
             (value_t){.derive = (derive_t)c->filtered});
  tcl_submit("self", "derive", "series_overflow",
             (value_t){.derive = (derive_t)c->overflow});
  tcl_submit("self", "derive", "series_expired",
             (value_t){.derive = (derive_t)self->series_expired});
  tcl_submit("self", "gauge", "series",
             (value_t){.gauge = (double)self->series});
  tcl_submit("self", "derive", "recursion_misses",
             (value_t){.derive = (derive_t)self->recursion_misses});
  tcl_submit("self", "duration", "read",
             (value_t){.gauge = self->read_seconds});
  if (self->notifying) {
    tcl_submit("self", "derive", "notifications_sent",
               (value_t){.derive = (derive_t)self->notifications_sent});
    tcl_submit("self", "derive", "notifications_dropped",
               (value_t){.derive = (derive_t)(self->notifications_dropped +
                                              c->events_lost)});
  }
  if (self->has_run_stats) {
    tcl_submit("self", "derive", "bpf_run_count",
               (value_t){.derive = (derive_t)self->run_cnt});
    tcl_submit("self", "derive", "bpf_run_time_ns",
               (value_t){.derive = (derive_t)self->run_time_ns});
  }
  if (self->requests) {
    if (self->has_run_stats) {
      tcl_submit("self", "derive", "sockops_run_count",
                 (value_t){.derive = (derive_t)self->sockops_run_cnt});
      tcl_submit("self", "derive", "sockops_run_time_ns",
                 (value_t){.derive = (derive_t)self->sockops_run_time_ns});
    }
  }
}
