/* SPDX-License-Identifier: MIT */
/*
 * MaxNotificationsPerSecond: at most `limit` notifications in any window of
 * one second that starts at the first notification after the previous
 * window ended, so a burst gets exactly the limit. Pure: time is an input.
 */
#ifndef TCPCONNLAT_RATELIMIT_H
#define TCPCONNLAT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  uint64_t limit;
  bool open;              /* a window is running */
  uint64_t window_start;  /* ns, any monotonic clock */
  uint64_t sent;          /* in this window */
  uint64_t dropped;       /* in this window */
} tcl_ratelimit_t;

#define TCL_RATELIMIT_WINDOW_NS 1000000000ULL

void tcl_ratelimit_init(tcl_ratelimit_t *rl, uint64_t limit);

/* May one more be sent now? Counts it as sent or dropped. */
bool tcl_ratelimit_allow(tcl_ratelimit_t *rl, uint64_t now);

/* Once the window is over: how many it dropped (then forgets them), so that
 * one summary can say so. 0 while it runs or when nothing was dropped. */
uint64_t tcl_ratelimit_summary(tcl_ratelimit_t *rl, uint64_t now);

#endif /* TCPCONNLAT_RATELIMIT_H */
