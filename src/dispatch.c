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
/* One timestamp for every value of a read: consistent across series, and
 * collectd need not read the clock for each value. */
static cdtime_t tcl_read_time;

static void tcl_submit(const char *instance, const char *type,
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

void tcl_dispatch_prepare(const tcl_conf_t *conf)
{
  for (size_t i = 0; i < conf->percentiles_num; i++)
    snprintf(tcl_percentile_names[i], sizeof(tcl_percentile_names[i]),
             "percentile-%g", conf->percentiles[i]);
  for (size_t i = 0; i < conf->buckets_num; i++)
    tcl_bucket_name(&conf->buckets[i], tcl_bucket_names[i],
                    sizeof(tcl_bucket_names[i]));
}

void tcl_dispatch_begin(cdtime_t now)
{
  tcl_read_time = now;
}

void tcl_dispatch_series(const tcl_conf_t *conf, const char *instance,
                         const tcl_entry_t *delta, size_t ndelta,
                         const tcl_entry_t *cum, size_t ncum,
                         double interval_s, uint32_t reasons)
{
  size_t nhist = tcl_histogram_len(delta, ndelta);
  size_t ncumhist = tcl_histogram_len(cum, ncum);
  uint64_t established = 0, interval_count = 0, interval_sum = 0;

  for (size_t i = 0; i < nhist; i++) {
    interval_count += delta[i].count;
    interval_sum += delta[i].sum_ns;
  }
  /* ReportIdle false: no connect completed in this interval, so the
   * percentiles, average and max would be NaN and every bucket rate 0;
   * leave them out and send only the totals. */
  bool skip_idle = interval_count == 0 && !conf->report_idle;

  if (conf->report_percentiles && !skip_idle) {
    for (size_t i = 0; i < conf->percentiles_num; i++)
      tcl_submit_seconds(instance, tcl_percentile_names[i],
                         tcl_hist_percentile(delta, nhist,
                                             conf->percentiles[i]));
    tcl_submit_seconds(instance, "average",
                       interval_count ? (double)interval_sum /
                                            (double)interval_count
                                      : NAN);
    tcl_submit_seconds(instance, "max", tcl_hist_max(delta, nhist));
  }

  if (conf->report_buckets && !skip_idle) {
    uint64_t counts[TCL_MAX_BUCKETS];

    tcl_hist_ranges(delta, nhist, conf->buckets, conf->buckets_num, counts);
    for (size_t i = 0; i < conf->buckets_num; i++)
      tcl_submit(instance, "bucket", tcl_bucket_names[i],
                 (value_t){.gauge = (double)counts[i] / interval_s});
  }

  for (size_t i = 0; i < ncumhist; i++)
    established += cum[i].count;
  tcl_submit(instance, "total_connections", "established",
             (value_t){.derive = (derive_t)established});

  if (conf->report_failures) {
    uint64_t failures[TCL_NREASONS] = {0};

    for (size_t i = ncumhist; i < ncum; i++) {
      uint32_t reason = cum[i].slot - TCL_SLOT_FAILURE_BASE;
      if (reason < TCL_NREASONS)
        failures[reason] += cum[i].count;
    }
    for (size_t r = 0; r < TCL_NREASONS; r++)
      if (reasons & (1u << r))
        tcl_submit(instance, "total_connections", tcl_reason_name(r),
                 (value_t){.derive = (derive_t)failures[r]});
  }
}

void tcl_dispatch_self(const struct tcl_counters *c, const tcl_self_t *self)
{
  uint64_t gone = c->completed + c->evicted;
  uint64_t inflight = c->started > gone ? c->started - gone : 0;

  tcl_submit("self", "gauge", "inflight", (value_t){.gauge = (double)inflight});
  tcl_submit("self", "derive", "inflight_dropped",
             (value_t){.derive = (derive_t)c->dropped});
  tcl_submit("self", "derive", "inflight_evicted",
             (value_t){.derive = (derive_t)c->evicted});
  tcl_submit("self", "derive", "unmatched",
             (value_t){.derive = (derive_t)c->unmatched});
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
  if (self->inbound) {
    tcl_submit("self", "derive", "inbound_started",
               (value_t){.derive = (derive_t)c->inbound_started});
    tcl_submit("self", "derive", "inbound_evicted",
               (value_t){.derive = (derive_t)c->inbound_evicted});
    tcl_submit("self", "derive", "inbound_dropped",
               (value_t){.derive = (derive_t)c->inbound_dropped});
    if (self->has_run_stats) {
      tcl_submit("self", "derive", "sockops_run_count",
                 (value_t){.derive = (derive_t)self->sockops_run_cnt});
      tcl_submit("self", "derive", "sockops_run_time_ns",
                 (value_t){.derive = (derive_t)self->sockops_run_time_ns});
    }
  }
}
