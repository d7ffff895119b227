/* SPDX-License-Identifier: MIT */
/*
 * Pure math on the kernel's log-linear histogram and on map snapshots:
 * no syscalls, no collectd, testable without root.
 */
#ifndef TCPCONNLAT_HISTOGRAM_H
#define TCPCONNLAT_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "tcpconnlat.h" /* bpf/: histogram constants shared with the kernel */

/* One slot of one series: cumulative totals, or an interval's delta. */
typedef struct {
  uint32_t series;
  uint32_t slot;
  uint64_t count;
  uint64_t sum_ns;
} tcl_entry_t;

typedef struct {
  tcl_entry_t *entries;
  size_t num;
  size_t cap;
  uint64_t taken_ns; /* CLOCK_MONOTONIC when it was read; 0: unknown */
} tcl_snapshot_t;

/* A configured range [lo_ns, hi_ns); hi_ns == UINT64_MAX is infinity. */
typedef struct {
  uint64_t lo_ns;
  uint64_t hi_ns;
} tcl_range_t;

/* Edges of histogram bucket idx in ns: [lower, upper). The top bucket
 * (TCL_NBUCKETS - 1) also holds every latency above 2^TCL_MAX_POWER ns: its
 * upper edge is UINT64_MAX (infinity). */
uint64_t tcl_bucket_lower_ns(uint32_t idx);
uint64_t tcl_bucket_upper_ns(uint32_t idx);

/*
 * Percentile p (0 < p < 100) of the histogram entries e[0..n) (histogram
 * slots only, sorted by slot). Returns ns, or NaN when the entries hold no
 * count. The estimate lies in the bucket holding rank ceil(p/100 * total):
 * the exact value when that bucket holds one connect, else its midpoint (the
 * mean of its connects in the open top bucket). Every estimate here stays
 * within its bucket's edges, whatever sum_ns says.
 */
double tcl_hist_percentile(const tcl_entry_t *e, size_t n, double p);

/* Largest value within bucket precision, ns; NaN when empty. */
double tcl_hist_max(const tcl_entry_t *e, size_t n);

/* Mean latency, ns, each bucket's sum taken within its edges; NaN when
 * empty. */
double tcl_hist_mean(const tcl_entry_t *e, size_t n);

/*
 * Count of connects per configured range. A bucket is assigned whole, by the
 * mean latency of its connects, so counts stay integers and every connect
 * lands in the range that contains it up to the bucket precision.
 */
void tcl_hist_ranges(const tcl_entry_t *e, size_t n, const tcl_range_t *ranges,
                     size_t nranges, uint64_t *counts);

/*
 * Cumulative counts for Prometheus-style "le" buckets: counts[k] = connects
 * of the (cumulative) histogram entries e[0..n) at or below edges[k] ns
 * (UINT64_MAX: all of them). A kernel bucket counts by its slot alone, so
 * the counts grow with the kernel's and never shrink.
 */
void tcl_hist_cumulative(const tcl_entry_t *e, size_t n, const uint64_t *edges,
                         size_t nedges, uint64_t *counts);

/* Snapshots: append, sort by (series, slot), delta. */
int tcl_snapshot_append(tcl_snapshot_t *s, const tcl_entry_t *e);
void tcl_snapshot_sort(tcl_snapshot_t *s);
void tcl_snapshot_clear(tcl_snapshot_t *s);
void tcl_snapshot_free(tcl_snapshot_t *s);

/*
 * out = cur - prev, slot by slot, keeping only slots whose count grew. Both
 * inputs sorted. A slot missing from prev, or smaller than in prev (its kernel
 * entry was freed and created again), counts from zero.
 */
int tcl_snapshot_delta(const tcl_snapshot_t *prev, const tcl_snapshot_t *cur,
                       tcl_snapshot_t *out);

/*
 * Seconds between the reads of two snapshots (their taken_ns), which is what
 * an interval's counts are spread over: after a failed or late read it is
 * longer than the configured interval. NaN when either time is unknown or
 * they are not in order.
 */
double tcl_snapshot_span_s(const tcl_snapshot_t *prev,
                           const tcl_snapshot_t *cur);

#endif /* TCPCONNLAT_HISTOGRAM_H */
