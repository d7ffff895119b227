/* SPDX-License-Identifier: MIT */
/* A minimal unit-test harness: checks count failures, main() reports. */
#ifndef TCPCONNLAT_UNIT_H
#define TCPCONNLAT_UNIT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int unit_checks, unit_failures;

#define CHECK(cond)                                                           \
  do {                                                                        \
    unit_checks++;                                                            \
    if (!(cond)) {                                                            \
      unit_failures++;                                                        \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,        \
              #cond);                                                         \
    }                                                                         \
  } while (0)

#define CHECK_EQ_U64(got, want)                                               \
  do {                                                                        \
    uint64_t got_ = (uint64_t)(got), want_ = (uint64_t)(want);                \
    unit_checks++;                                                            \
    if (got_ != want_) {                                                      \
      unit_failures++;                                                        \
      fprintf(stderr, "%s:%d: %s = %llu, want %llu\n", __FILE__, __LINE__,    \
              #got, (unsigned long long)got_, (unsigned long long)want_);     \
    }                                                                         \
  } while (0)

#define CHECK_NEAR(got, want, tol)                                            \
  do {                                                                        \
    double got_ = (got), want_ = (want), tol_ = (tol);                        \
    unit_checks++;                                                            \
    if (!(fabs(got_ - want_) <= tol_)) {                                      \
      unit_failures++;                                                        \
      fprintf(stderr, "%s:%d: %s = %.9g, want %.9g +- %.3g\n", __FILE__,      \
              __LINE__, #got, got_, want_, tol_);                             \
    }                                                                         \
  } while (0)

#define RUN_TEST(fn)                                                          \
  do {                                                                        \
    int before_ = unit_failures;                                              \
    fn();                                                                     \
    printf("%s: %s\n", unit_failures == before_ ? "ok" : "FAILED", #fn);      \
  } while (0)

#define UNIT_END()                                                            \
  do {                                                                        \
    printf("%d checks, %d failed\n", unit_checks, unit_failures);             \
    return unit_failures == 0 ? 0 : 1;                                        \
  } while (0)

#endif /* TCPCONNLAT_UNIT_H */
