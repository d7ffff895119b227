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

/* Buffers for batch lookups of one map: room for `batch` entries. */
typedef struct {
  void *keys;
  void *values;
  size_t key_size;
  size_t value_size; /* per-CPU maps: the whole row of every CPU's value */
  size_t batch;
} tcl_batch_t;

/* One entry of a batch: its key and its value (per-CPU: every CPU's). */
typedef int (*tcl_drain_entry_fn)(void *ctx, const void *key,
                                  const void *value);

/*
 * The whole map by batch lookups, a syscall per b->batch entries, each entry
 * handed to fn (a non-zero return stops and is returned). 0; -1 when the
 * kernel has no batch lookups for this map (then nothing was handed over);
 * else an errno.
 */
int tcl_drain_batches(int fd, const tcl_batch_t *b, tcl_drain_entry_fn fn,
                      void *ctx);

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
