/* SPDX-License-Identifier: MIT */
/* Interval deltas of cumulative snapshots. */
#include "histogram.h"
#include "unit.h"

static void put(tcl_snapshot_t *s, uint32_t series, uint32_t slot,
                uint64_t count, uint64_t sum)
{
  tcl_entry_t e = {.series = series, .slot = slot, .count = count,
                   .sum_ns = sum};
  CHECK(tcl_snapshot_append(s, &e) == 0);
}

static void test_delta_basic(void)
{
  tcl_snapshot_t prev = {0}, cur = {0}, out = {0};

  put(&prev, 0, 5, 10, 100);
  put(&prev, 0, 7, 3, 30);
  /* unsorted on purpose: the delta needs sorted input */
  put(&cur, 0, 9, 2, 20);  /* new slot: counts from zero */
  put(&cur, 0, 7, 3, 30);  /* unchanged: left out */
  put(&cur, 0, 5, 15, 160); /* grew by 5 */
  tcl_snapshot_sort(&prev);
  tcl_snapshot_sort(&cur);
  CHECK(tcl_snapshot_delta(&prev, &cur, &out) == 0);
  CHECK_EQ_U64(out.num, 2);
  CHECK_EQ_U64(out.entries[0].slot, 5);
  CHECK_EQ_U64(out.entries[0].count, 5);
  CHECK_EQ_U64(out.entries[0].sum_ns, 60);
  CHECK_EQ_U64(out.entries[1].slot, 9);
  CHECK_EQ_U64(out.entries[1].count, 2);
  tcl_snapshot_free(&prev);
  tcl_snapshot_free(&cur);
  tcl_snapshot_free(&out);
}

static void test_delta_reset_and_series(void)
{
  tcl_snapshot_t prev = {0}, cur = {0}, out = {0};

  put(&prev, 0, 1, 100, 1000);
  put(&prev, 1, 1, 50, 500);
  put(&prev, 2, 3, 7, 70); /* series 2 vanished: nothing to report */
  put(&cur, 0, 1, 4, 40);  /* smaller: the entry was freed and recreated */
  put(&cur, 1, 1, 52, 520);
  put(&cur, 1, 2, 1, 11);
  tcl_snapshot_sort(&prev);
  tcl_snapshot_sort(&cur);
  CHECK(tcl_snapshot_delta(&prev, &cur, &out) == 0);
  CHECK_EQ_U64(out.num, 3);
  CHECK_EQ_U64(out.entries[0].series, 0);
  CHECK_EQ_U64(out.entries[0].count, 4);
  CHECK_EQ_U64(out.entries[1].series, 1);
  CHECK_EQ_U64(out.entries[1].slot, 1);
  CHECK_EQ_U64(out.entries[1].count, 2);
  CHECK_EQ_U64(out.entries[1].sum_ns, 20);
  CHECK_EQ_U64(out.entries[2].slot, 2);
  tcl_snapshot_free(&prev);
  tcl_snapshot_free(&cur);
  tcl_snapshot_free(&out);
}

static void test_delta_intervals_add_up(void)
{
  /* Counts read at arbitrary moments: the deltas sum to the final total,
   * each increment counted once. */
  tcl_snapshot_t snaps[2] = {{0}, {0}}, out = {0};
  uint64_t counts[4] = {0}, total = 0, delivered = 0;
  int p = 0;

  tcl_snapshot_sort(&snaps[p]);
  for (int round = 0; round < 1000; round++) {
    int c = 1 - p;
    counts[round % 4] += (uint64_t)(round % 7);
    total += (uint64_t)(round % 7);
    tcl_snapshot_clear(&snaps[c]);
    for (uint32_t s = 0; s < 4; s++)
      if (counts[s])
        put(&snaps[c], 0, s, counts[s], counts[s] * 10);
    tcl_snapshot_sort(&snaps[c]);
    CHECK(tcl_snapshot_delta(&snaps[p], &snaps[c], &out) == 0);
    for (size_t i = 0; i < out.num; i++)
      delivered += out.entries[i].count;
    p = c;
  }
  CHECK_EQ_U64(delivered, total);
  tcl_snapshot_free(&snaps[0]);
  tcl_snapshot_free(&snaps[1]);
  tcl_snapshot_free(&out);
}

/*
 * An interval's counts are spread over the time between the two reads, not
 * over the configured interval: after a failed read (collectd then waits
 * twice as long) the span is two intervals, and the first read after init
 * comes only moments after the baseline.
 */
static void test_span_is_measured(void)
{
  tcl_snapshot_t prev = {0}, cur = {0};

  prev.taken_ns = 5000000000ULL;
  cur.taken_ns = 25000000000ULL; /* read 20 s later, e.g. after a failed read */
  CHECK_NEAR(tcl_snapshot_span_s(&prev, &cur), 20.0, 1e-9);
  cur.taken_ns = prev.taken_ns + 3000000; /* 3 ms after the baseline */
  CHECK_NEAR(tcl_snapshot_span_s(&prev, &cur), 0.003, 1e-12);
  /* unknown or out of order: NaN, the caller decides */
  CHECK(isnan(tcl_snapshot_span_s(&cur, &prev)));
  prev.taken_ns = 0;
  CHECK(isnan(tcl_snapshot_span_s(&prev, &cur)));
  /* a freed snapshot forgets when it was read */
  put(&cur, 0, 1, 1, 1);
  tcl_snapshot_free(&cur);
  CHECK_EQ_U64(cur.taken_ns, 0);
}

int main(void)
{
  RUN_TEST(test_delta_basic);
  RUN_TEST(test_delta_reset_and_series);
  RUN_TEST(test_delta_intervals_add_up);
  RUN_TEST(test_span_is_measured);
  UNIT_END();
}
