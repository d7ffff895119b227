/* SPDX-License-Identifier: MIT */
/* Bucket edges, percentiles, max and configured ranges against exact math. */
#include <stdlib.h>

#include "histogram.h"
#include "unit.h"

/* Deterministic generator, so a failure reproduces. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng_next(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}
static double rng_unit(void)
{
  return (double)(rng_next() >> 11) / (double)(1ULL << 53);
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Histogram of samples as the kernel would build it: sorted by slot. */
static size_t build_hist(const uint64_t *v, size_t n, tcl_entry_t *e)
{
  static tcl_entry_t dense[TCL_NBUCKETS];
  size_t m = 0;

  for (size_t i = 0; i < TCL_NBUCKETS; i++)
    dense[i] = (tcl_entry_t){.slot = (uint32_t)i};
  for (size_t i = 0; i < n; i++) {
    uint32_t b = tcl_bucket_index(v[i]);
    dense[b].count++;
    dense[b].sum_ns += v[i];
  }
  for (size_t i = 0; i < TCL_NBUCKETS; i++)
    if (dense[i].count)
      e[m++] = dense[i];
  return m;
}

static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double p)
{
  size_t rank = (size_t)ceil(p / 100.0 * (double)n);
  if (rank < 1)
    rank = 1;
  return sorted[rank - 1];
}

static void test_bucket_edges_are_contiguous(void)
{
  CHECK_EQ_U64(tcl_bucket_lower_ns(0), 0);
  for (uint32_t i = 0; i + 1 < TCL_NBUCKETS; i++) {
    if (tcl_bucket_upper_ns(i) != tcl_bucket_lower_ns(i + 1)) {
      CHECK_EQ_U64(tcl_bucket_upper_ns(i), tcl_bucket_lower_ns(i + 1));
      return;
    }
  }
  /* the top bucket is open: it also holds everything from 2^TCL_MAX_POWER */
  CHECK_EQ_U64(tcl_bucket_lower_ns(TCL_NBUCKETS - 1),
               (1ULL << TCL_MAX_POWER) -
                   (1ULL << (TCL_MAX_POWER - 1 - TCL_GROUPING_POWER)));
  CHECK_EQ_U64(tcl_bucket_upper_ns(TCL_NBUCKETS - 1), UINT64_MAX);
  CHECK_EQ_U64(TCL_NBUCKETS, 1056);
}

static void test_bucket_index_at_power_of_two_boundaries(void)
{
  for (int h = 0; h < 64; h++) {
    uint64_t p = 1ULL << h;
    uint64_t vals[3] = {p - 1, p, p + 1};

    for (int k = 0; k < 3; k++) {
      uint64_t v = vals[k];
      uint32_t idx = tcl_bucket_index(v);

      CHECK(idx < TCL_NBUCKETS);
      if (v >= (1ULL << TCL_MAX_POWER)) {
        CHECK_EQ_U64(idx, TCL_NBUCKETS - 1);
        continue;
      }
      CHECK(tcl_bucket_lower_ns(idx) <= v);
      CHECK(v < tcl_bucket_upper_ns(idx));
    }
    /* 2^h starts a bucket of its own */
    if (h < TCL_MAX_POWER)
      CHECK_EQ_U64(tcl_bucket_lower_ns(tcl_bucket_index(p)), p);
  }
}

static void test_bucket_width_precision(void)
{
  /* No bucket but the open top one is wider than 1/32 of its lower edge
   * (or 1 ns). */
  for (uint32_t i = 0; i + 1 < TCL_NBUCKETS; i++) {
    uint64_t lo = tcl_bucket_lower_ns(i), hi = tcl_bucket_upper_ns(i);
    CHECK(hi > lo);
    CHECK(hi - lo == 1 || (hi - lo) * 32 <= lo);
  }
  /* 1 us and 100 s are covered by ordinary buckets */
  CHECK(tcl_bucket_index(1000) < TCL_NBUCKETS - 1);
  CHECK(tcl_bucket_index(100000000000ULL) < TCL_NBUCKETS - 1);
}

static void test_bucket_index_every_value_small(void)
{
  /* exhaustive up to 2^20: each value inside its bucket, index monotonic */
  uint32_t last = 0;
  for (uint64_t v = 0; v < (1u << 20); v++) {
    uint32_t idx = tcl_bucket_index(v);
    if (idx < last || tcl_bucket_lower_ns(idx) > v ||
        v >= tcl_bucket_upper_ns(idx)) {
      CHECK(!"value outside its bucket or index not monotonic");
      return;
    }
    last = idx;
  }
}

static void check_percentiles(const char *what, uint64_t *v, size_t n)
{
  static tcl_entry_t e[TCL_NBUCKETS];
  static const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99};
  size_t m = build_hist(v, n, e);

  qsort(v, n, sizeof(*v), cmp_u64);
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
    double exact = (double)exact_quantile(v, n, ps[i]);
    double est = tcl_hist_percentile(e, m, ps[i]);
    /* midpoint of the true value's bucket: half a width, <= 1/64 */
    CHECK_NEAR(est, exact, exact / 64.0 + 1.0);
    if (!(fabs(est - exact) <= exact / 64.0 + 1.0))
      fprintf(stderr, "  (%s, p%g)\n", what, ps[i]);
  }
  CHECK_NEAR(tcl_hist_max(e, m), (double)v[n - 1],
             (double)v[n - 1] / 32.0 + 1.0);
}

static void test_percentiles_log_uniform(void)
{
  size_t n = 200000;
  uint64_t *v = malloc(n * sizeof(*v));

  /* 1 us .. 10 s, log-uniform */
  for (size_t i = 0; i < n; i++)
    v[i] = (uint64_t)exp(log(1e3) + rng_unit() * (log(1e10) - log(1e3)));
  check_percentiles("log-uniform", v, n);
  free(v);
}

static void test_percentiles_cluster(void)
{
  size_t n = 5000;
  uint64_t *v = malloc(n * sizeof(*v));

  /* a tight cluster around 20.5 ms, as a delayed SYN-ACK gives */
  for (size_t i = 0; i < n; i++)
    v[i] = 20500000 + (uint64_t)(rng_unit() * 300000);
  check_percentiles("cluster", v, n);
  /* two clusters: 1 ms and 100 ms */
  for (size_t i = 0; i < n; i++)
    v[i] = (i % 10 == 0 ? 100000000 : 1000000) + (rng_next() % 50000);
  check_percentiles("bimodal", v, n);
  free(v);
}

static void test_percentile_small_counts(void)
{
  tcl_entry_t e[TCL_NBUCKETS];
  uint64_t one[] = {123456789};
  size_t m = build_hist(one, 1, e);

  /* one connect: its exact value, whatever the percentile */
  CHECK_NEAR(tcl_hist_percentile(e, m, 50), 123456789, 0);
  CHECK_NEAR(tcl_hist_percentile(e, m, 99.9), 123456789, 0);
  CHECK_NEAR(tcl_hist_max(e, m), 123456789, 0);

  /* nothing: NaN */
  CHECK(isnan(tcl_hist_percentile(e, 0, 50)));
  CHECK(isnan(tcl_hist_max(e, 0)));

  /* beyond the top bucket: still counted, reported within range */
  uint64_t huge[] = {500ULL * 1000000000ULL, 500ULL * 1000000000ULL};
  m = build_hist(huge, 2, e);
  CHECK_EQ_U64(m, 1);
  CHECK_EQ_U64(e[0].slot, TCL_NBUCKETS - 1);
}

static void test_ranges(void)
{
  tcl_entry_t e[TCL_NBUCKETS];
  tcl_range_t r[] = {
      {0, 1000000},           /* [0, 1 ms) */
      {1000000, 5000000},     /* [1 ms, 5 ms) */
      {5000000, UINT64_MAX},  /* [5 ms, inf) */
  };
  uint64_t counts[3];
  uint64_t v[] = {10000, 999000, 1001000, 2000000, 4900000, 5200000,
                  60000000000ULL};
  size_t m = build_hist(v, sizeof(v) / sizeof(v[0]), e);

  tcl_hist_ranges(e, m, r, 3, counts);
  CHECK_EQ_U64(counts[0], 2);
  CHECK_EQ_U64(counts[1], 3);
  CHECK_EQ_U64(counts[2], 2);

  /* overlapping ranges each count what they contain */
  tcl_range_t all[] = {{0, UINT64_MAX}, {0, 2000001}};
  uint64_t c2[2];
  tcl_hist_ranges(e, m, all, 2, c2);
  CHECK_EQ_U64(c2[0], 7);
  CHECK_EQ_U64(c2[1], 4);
}

/*
 * A per-CPU value is read without a lock: its count and its sum_ns may come
 * from different instants, so an entry can carry the sum of two connects
 * with the count of one, or a count whose sum has not arrived yet. Every
 * estimate stays within the bucket's edges all the same.
 */
static void test_torn_read_stays_in_bucket(void)
{
  uint32_t slot = tcl_bucket_index(1000000); /* about 1 ms */
  double lo = (double)tcl_bucket_lower_ns(slot);
  double hi = (double)tcl_bucket_upper_ns(slot);
  tcl_entry_t sum_ahead = {.slot = slot, .count = 1, .sum_ns = 2000000};
  tcl_entry_t sum_behind = {.slot = slot, .count = 2, .sum_ns = 0};
  tcl_entry_t sum_half = {.slot = slot, .count = 3, .sum_ns = 1000000};
  const tcl_entry_t *torn[] = {&sum_ahead, &sum_behind, &sum_half};

  for (size_t i = 0; i < sizeof(torn) / sizeof(torn[0]); i++) {
    double p50 = tcl_hist_percentile(torn[i], 1, 50);
    double max = tcl_hist_max(torn[i], 1);

    CHECK(p50 >= lo && p50 <= hi);
    CHECK(max >= lo && max <= hi);
    if (!(p50 >= lo && p50 <= hi && max >= lo && max <= hi))
      fprintf(stderr, "  (torn entry %zu: p50 %.0f max %.0f, bucket [%.0f, %.0f])\n",
              i, p50, max, lo, hi);
  }
}

/*
 * The top bucket holds every latency from its lower edge up, including those
 * above 2^TCL_MAX_POWER ns (about 137 s): its upper edge is infinity, and
 * no estimate may fall below what the connects in it averaged.
 */
static void test_top_bucket_is_open(void)
{
  tcl_entry_t e[TCL_NBUCKETS];
  uint64_t v[] = {200ULL * 1000000000ULL, 500ULL * 1000000000ULL};
  size_t m = build_hist(v, 2, e);
  double mean = (double)(v[0] + v[1]) / 2.0;
  double max = tcl_hist_max(e, m);
  double p50 = tcl_hist_percentile(e, m, 50);

  CHECK_EQ_U64(m, 1);
  CHECK_EQ_U64(tcl_bucket_upper_ns(TCL_NBUCKETS - 1), UINT64_MAX);
  /* the max lies between the mean and the largest value the others allow */
  CHECK(max >= mean);
  CHECK(max <= (double)(v[0] + v[1]) - (double)tcl_bucket_lower_ns(TCL_NBUCKETS - 1));
  /* a percentile in the open bucket: the connects' mean, not a midpoint */
  CHECK_NEAR(p50, mean, 1.0);
  /* one connect: its exact value */
  m = build_hist(v + 1, 1, e);
  CHECK_NEAR(tcl_hist_max(e, m), (double)v[1], 0);
  CHECK_NEAR(tcl_hist_percentile(e, m, 99), (double)v[1], 0);
}

/*
 * Cumulative "le" counts: every connect at or below each edge, a kernel
 * bucket that straddles an edge counted by its midpoint, whatever the
 * connects in it average (so a count never shrinks as more arrive), the
 * open top bucket only at infinity.
 */
static void test_cumulative_counts(void)
{
  uint64_t edges[] = {1000000, 5000000, 200000000000ULL, UINT64_MAX};
  uint32_t straddle = tcl_bucket_index(1000000); /* holds 1 ms, not at its start */
  uint64_t mid = tcl_bucket_lower_ns(straddle) +
                 (tcl_bucket_upper_ns(straddle) - tcl_bucket_lower_ns(straddle)) / 2;
  tcl_entry_t e[] = {
      {.slot = tcl_bucket_index(500000), .count = 3, .sum_ns = 1500000},
      {.slot = straddle, .count = 2, .sum_ns = 2 * 1000000},
      {.slot = tcl_bucket_index(3000000), .count = 4, .sum_ns = 12000000},
      {.slot = TCL_NBUCKETS - 1, .count = 1, .sum_ns = 150000000000ULL},
  };
  uint64_t c[4];

  CHECK(tcl_bucket_lower_ns(straddle) < 1000000);
  CHECK(tcl_bucket_upper_ns(straddle) > 1000000);
  tcl_hist_cumulative(e, 4, edges, 4, c);
  CHECK_EQ_U64(c[0], mid <= 1000000 ? 5 : 3);
  CHECK_EQ_U64(c[1], 9);
  CHECK_EQ_U64(c[2], 9); /* 150 s is in the open top bucket: only at +Inf */
  CHECK_EQ_U64(c[3], 10);
  /* the same slot with another mean: the same counts */
  e[1].sum_ns = 2 * (tcl_bucket_upper_ns(straddle) - 1);
  uint64_t c2[4];
  tcl_hist_cumulative(e, 4, edges, 4, c2);
  CHECK_EQ_U64(c2[0], c[0]);
  /* the mean of the interval, torn sums clamped */
  tcl_entry_t torn = {.slot = tcl_bucket_index(1000000), .count = 1, .sum_ns = 0};
  CHECK_NEAR(tcl_hist_mean(&torn, 1), (double)tcl_bucket_lower_ns(torn.slot), 0);
  CHECK(isnan(tcl_hist_mean(e, 0)));
}

int main(void)
{
  RUN_TEST(test_bucket_edges_are_contiguous);
  RUN_TEST(test_bucket_index_at_power_of_two_boundaries);
  RUN_TEST(test_bucket_width_precision);
  RUN_TEST(test_bucket_index_every_value_small);
  RUN_TEST(test_percentiles_log_uniform);
  RUN_TEST(test_percentiles_cluster);
  RUN_TEST(test_percentile_small_counts);
  RUN_TEST(test_ranges);
  RUN_TEST(test_torn_read_stays_in_bucket);
  RUN_TEST(test_top_bucket_is_open);
  RUN_TEST(test_cumulative_counts);
  UNIT_END();
}
