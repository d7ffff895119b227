/* SPDX-License-Identifier: MIT */
/* MaxNotificationsPerSecond: exactly the limit per window, one summary. */
#include "ratelimit.h"
#include "unit.h"

#define MS 1000000ULL

static void test_burst_gets_exactly_the_limit(void)
{
  tcl_ratelimit_t rl;
  uint64_t sent = 0, t = 5000 * MS;

  tcl_ratelimit_init(&rl, 5);
  for (int i = 0; i < 30; i++) {
    CHECK_EQ_U64(tcl_ratelimit_summary(&rl, t), 0);
    sent += tcl_ratelimit_allow(&rl, t);
    t += 2 * MS; /* a 60 ms burst */
  }
  CHECK_EQ_U64(sent, 5);
  CHECK_EQ_U64(tcl_ratelimit_summary(&rl, t), 0);         /* window runs */
  CHECK_EQ_U64(tcl_ratelimit_summary(&rl, 6000 * MS), 25); /* over */
  CHECK_EQ_U64(tcl_ratelimit_summary(&rl, 6001 * MS), 0);  /* said once */
}

static void test_window_starts_at_first_event(void)
{
  tcl_ratelimit_t rl;
  uint64_t sent = 0;

  tcl_ratelimit_init(&rl, 3);
  /* a burst straddling a whole second of the clock still gets 3 */
  for (uint64_t t = 999 * MS; t < 1100 * MS; t += 10 * MS)
    sent += tcl_ratelimit_allow(&rl, t);
  CHECK_EQ_U64(sent, 3);
  /* after the window, a new one with a full allowance */
  CHECK_EQ_U64(tcl_ratelimit_summary(&rl, 2000 * MS), 8); /* 11 came */
  sent = 0;
  for (int i = 0; i < 5; i++)
    sent += tcl_ratelimit_allow(&rl, 2500 * MS);
  CHECK_EQ_U64(sent, 3);
}

static void test_no_drops_no_summary(void)
{
  tcl_ratelimit_t rl;

  tcl_ratelimit_init(&rl, 10);
  for (int i = 0; i < 10; i++)
    CHECK(tcl_ratelimit_allow(&rl, (uint64_t)i * 50 * MS));
  CHECK_EQ_U64(tcl_ratelimit_summary(&rl, 5000 * MS), 0);
  /* a steady 10/s stream never drops */
  for (uint64_t t = 10000 * MS; t < 20000 * MS; t += 100 * MS) {
    tcl_ratelimit_summary(&rl, t);
    CHECK(tcl_ratelimit_allow(&rl, t));
  }
}

int main(void)
{
  RUN_TEST(test_burst_gets_exactly_the_limit);
  RUN_TEST(test_window_starts_at_first_event);
  RUN_TEST(test_no_drops_no_summary);
  UNIT_END();
}
