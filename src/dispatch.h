/* SPDX-License-Identifier: MIT */
/* Turning one interval's figures into collectd value lists. */
#ifndef TCPCONNLAT_DISPATCH_H
#define TCPCONNLAT_DISPATCH_H

#include "conf.h"
#include "histogram.h"

/* Formats the value names of the configured percentiles and buckets; once,
 * before the first read. */
void tcl_dispatch_prepare(const tcl_conf_t *conf);

/* Start of a read: the time stamp of every value it dispatches. */
void tcl_dispatch_begin(cdtime_t now);

/* One value of plugin "tcpconnlat", stamped with the read's time (value_t:
 * collectd's plugin.h, included first). */
void tcl_submit(const char *instance, const char *type,
                const char *type_instance, value_t value);

/*
 * One series: delta[] holds this interval's growth and cum[] the cumulative
 * totals of the same series, both sorted by slot. span_s: the seconds between
 * the two reads the delta comes from (tcl_snapshot_span_s), which the bucket
 * rates are divided by.
 */
void tcl_dispatch_series(const tcl_conf_t *conf, const char *instance,
                         const tcl_entry_t *delta, size_t ndelta,
                         const tcl_entry_t *cum, size_t ncum,
                         double span_s, uint32_t reasons, uint32_t totals);

/* Which failure totals a series reports (bit per enum tcl_reason). Inbound
 * handshakes that never complete have no outcome the kernel reports: the
 * requests total less the established one says how many. */
#define TCL_REASONS_OUTBOUND ((1u << TCL_NREASONS) - 1)
#define TCL_REASONS_INBOUND 0u

/* Which other totals a series reports. */
#define TCL_TOTAL_SYN_RETRANSMITTED (1u << 0)    /* outbound series */
#define TCL_TOTAL_SYNACK_RETRANSMITTED (1u << 1) /* inbound series */
#define TCL_TOTAL_REQUESTS (1u << 2) /* inbound, with request counting */

/* The plugin's own health: plugin instance "self". */
typedef struct {
  uint32_t series;          /* live label sets */
  uint64_t series_expired;
  uint64_t recursion_misses;
  bool has_run_stats;       /* CollectBpfStats */
  uint64_t run_cnt;
  uint64_t run_time_ns;
  bool requests;            /* the sock_ops program is attached */
  bool keeps_start;         /* start records are kept (Pid, Process, ...) */
  uint64_t sockops_run_cnt; /* with has_run_stats */
  uint64_t sockops_run_time_ns;
  double read_seconds;      /* this read callback so far */
  bool notifying;           /* SlowThreshold or NotifyFailures */
  uint64_t notifications_sent;
  uint64_t notifications_dropped; /* rate limit and full ring buffer */
} tcl_self_t;

void tcl_dispatch_self(const struct tcl_counters *counters,
                       const tcl_self_t *self);

#endif /* TCPCONNLAT_DISPATCH_H */
