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

  if (idx < 2 * TCL_SUB_BUCKETS)
    return (uint64_t)idx + 1;
  shift = idx / TCL_SUB_BUCKETS - 1;
  mantissa = idx - shift * TCL_SUB_BUCKETS;
  return ((uint64_t)mantissa + 1) << shift;
}

/* Where in its bucket an entry's values are best represented. */
static double tcl_entry_estimate(const tcl_entry_t *e)
{
  if (e->count == 1)
    return (double)e->sum_ns;
  return ((double)tcl_bucket_lower_ns(e->slot) +
          (double)tcl_bucket_upper_ns(e->slot)) / 2.0;
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
    double mean, upper;

    if (top->count == 0)
      continue;
    if (top->count == 1)
      return (double)top->sum_ns;
    /* The largest value lies between the bucket's mean and its upper edge. */
    mean = (double)top->sum_ns / (double)top->count;
    upper = (double)tcl_bucket_upper_ns(top->slot);
    return (mean + upper) / 2.0;
  }
  return NAN;
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
    mean = (double)e[i].sum_ns / (double)e[i].count;
    for (size_t r = 0; r < nranges; r++) {
      if (mean >= (double)ranges[r].lo_ns &&
          (ranges[r].hi_ns == UINT64_MAX || mean < (double)ranges[r].hi_ns))
        counts[r] += e[i].count;
    }
  }
}
