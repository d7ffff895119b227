/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "drain.h"

#define TCL_DRAIN_BATCH 1024

/* Per-CPU values are laid out at 8-byte strides. */
#define TCL_PERCPU_STRIDE(size) (((size) + 7) & ~(size_t)7)

int tcl_drain_init(tcl_drain_t *d)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));

  memset(d, 0, sizeof(*d));
  d->ncpus = libbpf_num_possible_cpus();
  if (d->ncpus <= 0)
    return d->ncpus < 0 ? -d->ncpus : EINVAL;
  d->batch = TCL_DRAIN_BATCH;
  d->keys = calloc(d->batch, sizeof(struct tcl_stats_key));
  d->values = calloc(d->batch, vstride * (size_t)d->ncpus);
  d->counters = calloc((size_t)d->ncpus,
                       TCL_PERCPU_STRIDE(sizeof(struct tcl_counters)));
  d->syn_keys = calloc(d->batch, sizeof(struct tcl_syn_key));
  d->syn_values = calloc(d->batch, sizeof(__u64));
  if (d->keys == NULL || d->values == NULL || d->counters == NULL ||
      d->syn_keys == NULL || d->syn_values == NULL) {
    tcl_drain_free(d);
    return ENOMEM;
  }
  return 0;
}

void tcl_drain_free(tcl_drain_t *d)
{
  free(d->keys);
  free(d->values);
  free(d->counters);
  free(d->syn_keys);
  free(d->syn_values);
  d->keys = d->values = d->counters = NULL;
  d->syn_keys = d->syn_values = NULL;
}

static int tcl_drain_add(tcl_drain_t *d, const struct tcl_stats_key *key,
                         const void *percpu, tcl_snapshot_t *out)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  tcl_entry_t e = {.series = key->series, .slot = key->slot};

  for (int cpu = 0; cpu < d->ncpus; cpu++) {
    const struct tcl_stats_value *v =
        (const void *)((const char *)percpu + (size_t)cpu * vstride);
    e.count += v->count;
    e.sum_ns += v->sum_ns;
  }
  return tcl_snapshot_append(out, &e);
}

/* Fallback for kernels without BPF_MAP_LOOKUP_BATCH on this map type. */
static int tcl_drain_stats_iterate(tcl_drain_t *d, int fd, tcl_snapshot_t *out)
{
  struct tcl_stats_key key, next;
  struct tcl_stats_key *prev = NULL;
  int status;

  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, d->values) != 0) {
      if (errno == ENOENT)
        continue; /* freed between the two calls */
      return errno;
    }
    status = tcl_drain_add(d, &key, d->values, out);
    if (status != 0)
      return status;
  }
  return errno == ENOENT ? 0 : errno;
}

int tcl_drain_stats(tcl_drain_t *d, int fd, tcl_snapshot_t *out)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  __u64 in_token = 0, out_token = 0;
  bool first = true;
  int status = 0;

  tcl_snapshot_clear(out);
  while (!d->no_batch) {
    __u32 count = (__u32)d->batch;
    int err = bpf_map_lookup_batch(fd, first ? NULL : &in_token, &out_token,
                                   d->keys, d->values, &count, NULL);
    int saved = errno;

    if (err != 0 && saved != ENOENT) {
      if (first && (saved == EINVAL || saved == ENOTSUP || saved == 524)) {
        d->no_batch = true; /* 524: ENOTSUPP, the kernel's own */
        break;
      }
      return saved;
    }
    for (__u32 i = 0; i < count; i++) {
      const struct tcl_stats_key *key =
          (const struct tcl_stats_key *)d->keys + i;
      status = tcl_drain_add(
          d, key, (const char *)d->values + (size_t)i * vstride * d->ncpus,
          out);
      if (status != 0)
        return status;
    }
    if (err != 0) /* ENOENT: that was the last batch */
      break;
    in_token = out_token;
    first = false;
  }
  if (d->no_batch) {
    tcl_snapshot_clear(out);
    status = tcl_drain_stats_iterate(d, fd, out);
    if (status != 0)
      return status;
  }
  tcl_snapshot_sort(out);
  return 0;
}

/* Adds n to one slot of the stats map from user space (CPU 0's value). */
static int tcl_drain_bump(tcl_drain_t *d, int stats_fd, __u32 series,
                          __u32 slot, uint64_t n)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  struct tcl_stats_key key = {.series = series, .slot = slot};
  struct tcl_stats_value *v0;

  memset(d->values, 0, vstride * (size_t)d->ncpus);
  if (bpf_map_lookup_elem(stats_fd, &key, d->values) != 0 && errno != ENOENT)
    return errno;
  v0 = d->values;
  v0->count += n;
  return bpf_map_update_elem(stats_fd, &key, d->values, BPF_ANY) ? errno : 0;
}

/* One handshake older than the timeout: deleted by us (the kernel deletes
 * completed ones), it did not complete. */
static bool tcl_drain_expire_one(tcl_drain_t *d, int synrecv_fd, int stats_fd,
                                 const struct tcl_syn_key *key, bool by_port)
{
  if (bpf_map_delete_elem(synrecv_fd, key) != 0)
    return false;
  tcl_drain_bump(d, stats_fd,
                 by_port ? (TCL_SERIES_INBOUND_PORT | key->lport)
                         : TCL_SERIES_INBOUND,
                 TCL_SLOT_FAILURE_BASE + TCL_REASON_TIMEOUT, 1);
  return true;
}

/* Batch lookups: a syscall per 1024 handshakes, not two per handshake (a
 * SYN flood can fill the map). 0, or -1 when the kernel has none. */
static int tcl_drain_expire_batch(tcl_drain_t *d, int synrecv_fd, int stats_fd,
                                  uint64_t now, uint64_t timeout_ns,
                                  bool by_port, uint64_t *expired)
{
  __u64 in_token = 0, out_token = 0;
  bool first = true;

  for (;;) {
    __u32 count = (__u32)d->batch;
    int err = bpf_map_lookup_batch(synrecv_fd, first ? NULL : &in_token,
                                   &out_token, d->syn_keys, d->syn_values,
                                   &count, NULL);
    int saved = errno;

    if (err != 0 && saved != ENOENT)
      return first && (saved == EINVAL || saved == ENOTSUP || saved == 524)
                 ? -1
                 : 0;
    for (__u32 i = 0; i < count; i++) {
      const struct tcl_syn_key *key = (const struct tcl_syn_key *)d->syn_keys + i;
      __u64 start = ((const __u64 *)d->syn_values)[i];

      if (now >= start && now - start >= timeout_ns &&
          tcl_drain_expire_one(d, synrecv_fd, stats_fd, key, by_port))
        (*expired)++;
    }
    if (err != 0)
      return 0; /* ENOENT: that was the last batch */
    in_token = out_token;
    first = false;
  }
}

uint64_t tcl_drain_expire_handshakes(tcl_drain_t *d, int synrecv_fd,
                                     int stats_fd, uint64_t timeout_ns,
                                     bool by_port)
{
  struct tcl_syn_key key, next, *prev = NULL;
  struct timespec ts;
  uint64_t now, expired = 0;
  __u64 start;

  if (synrecv_fd < 0)
    return 0;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
  now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
  if (!d->syn_no_batch) {
    if (tcl_drain_expire_batch(d, synrecv_fd, stats_fd, now, timeout_ns,
                               by_port, &expired) == 0)
      return expired;
    d->syn_no_batch = true;
  }
  while (bpf_map_get_next_key(synrecv_fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(synrecv_fd, &key, &start) != 0 ||
        now < start || now - start < timeout_ns)
      continue;
    if (tcl_drain_expire_one(d, synrecv_fd, stats_fd, &key, by_port))
      expired++;
  }
  return expired;
}

int tcl_drain_counters(tcl_drain_t *d, int fd, struct tcl_counters *out)
{
  size_t stride = TCL_PERCPU_STRIDE(sizeof(struct tcl_counters));
  const char *buf = d->counters;
  __u32 zero = 0;

  memset(out, 0, sizeof(*out));
  if (bpf_map_lookup_elem(fd, &zero, d->counters) != 0)
    return errno;
  for (int cpu = 0; cpu < d->ncpus; cpu++) {
    const struct tcl_counters *c =
        (const void *)(buf + (size_t)cpu * stride);
    out->started += c->started;
    out->completed += c->completed;
    out->dropped += c->dropped;
    out->unmatched += c->unmatched;
    out->stats_full += c->stats_full;
    out->filtered += c->filtered;
    out->overflow += c->overflow;
    out->events_lost += c->events_lost;
    out->inbound_started += c->inbound_started;
    out->inbound_dropped += c->inbound_dropped;
  }
  return 0;
}
