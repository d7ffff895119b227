/* SPDX-License-Identifier: MIT */
/*
 * The clocks the plugin reads. The BPF programs stamp events with
 * bpf_ktime_get_ns(), which is CLOCK_MONOTONIC: user space compares with
 * that clock, and turns a stamp into wall-clock time only for people.
 */
#ifndef TCPCONNLAT_CLOCK_H
#define TCPCONNLAT_CLOCK_H

#include <stdint.h>
#include <time.h>

#define TCL_NS_PER_SEC 1000000000ULL

static inline uint64_t tcl_clock_ns(clockid_t clock)
{
  struct timespec ts;

  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * TCL_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Now, on bpf_ktime_get_ns()'s clock. */
static inline uint64_t tcl_monotonic_ns(void)
{
  return tcl_clock_ns(CLOCK_MONOTONIC);
}

/* A bpf_ktime_get_ns() stamp on the wall clock (as far as the wall clock
 * has not been stepped since). */
static inline uint64_t tcl_monotonic_to_wall_ns(uint64_t mono_ns)
{
  return tcl_clock_ns(CLOCK_REALTIME) - (tcl_monotonic_ns() - mono_ns);
}

#endif /* TCPCONNLAT_CLOCK_H */
