/* SPDX-License-Identifier: MIT */
#include "histogram.h"

#include <math.h>

uint64_t tcl_bucket_lower_ns(uint32_t idx)
{
  uint32_t shift, mantissa;

  if (idx < 2 * TCL_SUB_BUCKETS)
    return idx;
  /* idx = shift * 32 + mantissa with mantissa in [32, 64) */
  shift = idx / TCL_SUB_BUCKETS - 1;
  mantissa = idx - shift * TCL_SUB_BUCKETS;
  return (uint64_t)mantissa << shift;
}

uint64_t tcl_bucket_upper_ns(uint32_t idx)
{
  uint32_t shift, mantissa;

  /* tcl_bucket_index() puts every latency from the top bucket's lower edge
   * up into it, also those above 2^TCL_MAX_POWER ns: it has no upper edge. */
  if (idx >= TCL_NBUCKETS - 1)
    return UINT64_MAX;
  if (idx < 2 * TCL_SUB_BUCKETS)
    return (uint64_t)idx + 1;
  shift = idx / TCL_SUB_BUCKETS - 1;
  mantissa = idx - shift * TCL_SUB_BUCKETS;
  return ((uint64_t)mantissa + 1) << shift;
}

/*
 * The latency sum of an entry, within what its count allows: every connect
 * in it lies in [lower, upper). The kernel's per-CPU values are read without
 * a lock, so a count and its sum_ns may come from different instants (the
 * sum of two connects with the count of one, or the reverse); clamping keeps
 * every estimate made from them inside the bucket.
 */
static double tcl_entry_sum(const tcl_entry_t *e)
{
  double count = (double)e->count;
  double lo = (double)tcl_bucket_lower_ns(e->slot) * count;
  uint64_t upper = tcl_bucket_upper_ns(e->slot);
  double sum = (double)e->sum_ns;

  if (sum < lo)
    return lo;
  if (upper != UINT64_MAX && sum > (double)upper * count)
    return (double)upper * count;
  return sum;
}

/* Where in its bucket an entry's values are best represented. */
static double tcl_entry_estimate(const tcl_entry_t *e)
{
  uint64_t upper = tcl_bucket_upper_ns(e->slot);

  /* one connect, or the open top bucket (no midpoint): the mean */
  if (e->count == 1 || upper == UINT64_MAX)
    return tcl_entry_sum(e) / (double)e->count;
  return ((double)tcl_bucket_lower_ns(e->slot) + (double)upper) / 2.0;
}

double tcl_hist_percentile(const tcl_entry_t *e, size_t n, double p)
{
  uint64_t total = 0, seen = 0, rank;

  for (size_t i = 0; i < n; i++)
    total += e[i].count;
  if (total == 0)
    return NAN;

  rank = (uint64_t)ceil(p / 100.0 * (double)total);
  if (rank < 1)
    rank = 1;
  if (rank > total)
    rank = total;

  for (size_t i = 0; i < n; i++) {
    seen += e[i].count;
    if (seen >= rank)
      return tcl_entry_estimate(&e[i]);
  }
  return NAN; /* not reached */
}

double tcl_hist_max(const tcl_entry_t *e, size_t n)
{
  for (size_t i = n; i > 0; i--) {
    const tcl_entry_t *top = &e[i - 1];
    double sum, mean, bound, lower;

    if (top->count == 0)
      continue;
    sum = tcl_entry_sum(top);
    if (top->count == 1)
      return sum;
    /* The largest value lies between the bucket's mean and the smaller of
     * its upper edge and what the others leave when each is at the lower
     * edge (the only bound the open top bucket has). */
    mean = sum / (double)top->count;
    lower = (double)tcl_bucket_lower_ns(top->slot);
    bound = sum - (double)(top->count - 1) * lower;
    if (tcl_bucket_upper_ns(top->slot) != UINT64_MAX &&
        bound > (double)tcl_bucket_upper_ns(top->slot))
      bound = (double)tcl_bucket_upper_ns(top->slot);
    return (mean + bound) / 2.0;
  }
  return NAN;
}

double tcl_hist_mean(const tcl_entry_t *e, size_t n)
{
  double sum = 0;
  uint64_t count = 0;

  for (size_t i = 0; i < n; i++) {
    if (e[i].count == 0)
      continue;
    sum += tcl_entry_sum(&e[i]);
    count += e[i].count;
  }
  return count ? sum / (double)count : NAN;
}

void tcl_hist_ranges(const tcl_entry_t *e, size_t n, const tcl_range_t *ranges,
                     size_t nranges, uint64_t *counts)
{
  for (size_t r = 0; r < nranges; r++)
    counts[r] = 0;

  for (size_t i = 0; i < n; i++) {
    double mean;

    if (e[i].count == 0)
      continue;
    mean = tcl_entry_sum(&e[i]) / (double)e[i].count;
    for (size_t r = 0; r < nranges; r++) {
      if (mean >= (double)ranges[r].lo_ns &&
          (ranges[r].hi_ns == UINT64_MAX || mean < (double)ranges[r].hi_ns))
        counts[r] += e[i].count;
    }
  }
}

/*
 * Where a kernel bucket sits for the cumulative counts: its midpoint, so a
 * bucket that straddles an edge goes to the side holding most of its width
 * (at most half a bucket, 1/64, off). It depends on the slot alone, never
 * on the connects in it, so a cumulative count cannot shrink when a bucket's
 * mean moves. The open top bucket counts only towards infinity.
 */
static uint64_t tcl_bucket_position_ns(uint32_t slot)
{
  uint64_t lower = tcl_bucket_lower_ns(slot), upper = tcl_bucket_upper_ns(slot);

  if (upper == UINT64_MAX)
    return UINT64_MAX;
  return lower + (upper - lower) / 2;
}

void tcl_hist_cumulative(const tcl_entry_t *e, size_t n, const uint64_t *edges,
                         size_t nedges, uint64_t *counts)
{
  for (size_t k = 0; k < nedges; k++)
    counts[k] = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t pos = tcl_bucket_position_ns(e[i].slot);

    for (size_t k = 0; k < nedges; k++)
      if (pos <= edges[k])
        counts[k] += e[i].count;
  }
}
