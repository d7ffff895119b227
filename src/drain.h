/* SPDX-License-Identifier: MIT */
/* Reading the kernel's cumulative per-CPU maps into user-space snapshots. */
#ifndef TCPCONNLAT_DRAIN_H
#define TCPCONNLAT_DRAIN_H

#include <stdbool.h>

#include "histogram.h"

typedef struct {
  int ncpus;      /* possible CPUs: the width of every per-CPU value */
  void *keys;     /* batch buffers, reused across reads */
  void *values;
  void *counters; /* one per-CPU counters value */
  size_t batch;   /* entries per batch call */
  bool no_batch;  /* the kernel has no batch lookups for this map */
  bool fixed_no_batch; /* ... nor for the fixed series' array */
} tcl_drain_t;

int tcl_drain_init(tcl_drain_t *d);
void tcl_drain_free(tcl_drain_t *d);

/* Every entry of the stats map and every used slot of the fixed series'
 * array (fixed_fd, or -1), CPUs summed, sorted by (series, slot). */
int tcl_drain_stats(tcl_drain_t *d, int stats_fd, int fixed_fd,
                    tcl_snapshot_t *out);

/* The event counters, CPUs summed. */
int tcl_drain_counters(tcl_drain_t *d, int counters_fd,
                       struct tcl_counters *out);

#endif /* TCPCONNLAT_DRAIN_H */
