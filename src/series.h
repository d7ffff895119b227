/* SPDX-License-Identifier: MIT */
/*
 * The series the kernel created (one per label set, By): their names, their
 * activity, and retiring idle ones without losing an increment:
 *   round r:   idle for SeriesTimeout intervals -> its label set is deleted
 *              from the kernel's series map (new connects of those labels
 *              get a fresh id); the series stops being dispatched.
 *   round r+1: increments that raced the deletion are dispatched; then its
 *              stats entries are deleted and its id returns to the free
 *              queue.
 */
#ifndef TCPCONNLAT_SERIES_H
#define TCPCONNLAT_SERIES_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "histogram.h"

#define TCL_INSTANCE_LEN 128 /* collectd's DATA_MAX_NAME_LEN */

typedef enum {
  TCL_SERIES_UNUSED = 0,
  TCL_SERIES_LIVE,
  TCL_SERIES_RETIRING,
} tcl_series_state_t;

typedef struct {
  tcl_series_state_t state;
  uint64_t last_active; /* round of the last growth */
  struct tcl_labels labels;
  char name[TCL_INSTANCE_LEN];
} tcl_series_slot_t;

typedef struct {
  tcl_series_slot_t *slots; /* by series id */
  uint32_t nslots;
  uint64_t round;
  uint64_t expired; /* series retired since start */
  uint32_t live;    /* label sets with a live series */
  uint32_t *freed;  /* ids freed in this round */
  uint32_t freed_num;
} tcl_series_t;

int tcl_series_init(tcl_series_t *s, uint32_t max_series);
void tcl_series_free(tcl_series_t *s);

/* Start of a read: learns the names of series the kernel created since. */
int tcl_series_begin(tcl_series_t *s, const tcl_conf_t *conf, int series_fd,
                     const tcl_snapshot_t *cur, const tcl_snapshot_t *delta);

/* The plugin instance to dispatch series `id` under in this round, or NULL
 * when it must not be dispatched. has_delta: it grew in this interval. */
const char *tcl_series_instance(const tcl_series_t *s, const tcl_conf_t *conf,
                                uint32_t id, bool has_delta);

/* End of a read: retires idle series and frees the retired ones. Entries of
 * freed ids are removed from `cur` (the next round's previous snapshot). */
void tcl_series_end(tcl_series_t *s, const tcl_conf_t *conf, int series_fd,
                    int stats_fd, int free_ids_fd, tcl_snapshot_t *cur);

#endif /* TCPCONNLAT_SERIES_H */
