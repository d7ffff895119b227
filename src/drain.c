/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "clock.h"
#include "drain.h"

#define TCL_DRAIN_BATCH 1024
/* The kernel's own ENOTSUPP (include/linux/errno.h), which reaches user
 * space from BPF map operations a kernel lacks; libc has no name for it. */
#define TCL_ENOTSUPP 524

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
  if (d->keys == NULL || d->values == NULL || d->counters == NULL) {
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
  d->keys = d->values = d->counters = NULL;
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

/* The fixed series' array: index -> (series, slot); empty slots left out. */
static int tcl_drain_fixed_add(tcl_drain_t *d, __u32 idx, const void *percpu,
                               tcl_snapshot_t *out)
{
  static const __u32 series[TCL_NFIXED] = {
      [TCL_FIXED_ALL] = TCL_SERIES_ALL,
      [TCL_FIXED_INBOUND] = TCL_SERIES_INBOUND,
  };
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  tcl_entry_t e = {0};

  if (idx >= TCL_NFIXED * TCL_NSLOTS)
    return 0;
  for (int cpu = 0; cpu < d->ncpus; cpu++) {
    const struct tcl_stats_value *v =
        (const void *)((const char *)percpu + (size_t)cpu * vstride);
    e.count += v->count;
    e.sum_ns += v->sum_ns;
  }
  if (e.count == 0)
    return 0;
  e.series = series[idx / TCL_NSLOTS];
  e.slot = idx % TCL_NSLOTS;
  return tcl_snapshot_append(out, &e);
}

int tcl_drain_batches(int fd, const tcl_batch_t *b, tcl_drain_entry_fn fn,
                      void *ctx)
{
  __u64 in_token = 0, out_token = 0; /* a bucket or an index: 4 bytes used */
  bool first = true;
  int status;

  for (;;) {
    __u32 count = (__u32)b->batch;
    int err = bpf_map_lookup_batch(fd, first ? NULL : &in_token, &out_token,
                                   b->keys, b->values, &count, NULL);
    int saved = errno;

    if (err != 0 && saved != ENOENT) {
      if (first &&
          (saved == EINVAL || saved == ENOTSUP || saved == TCL_ENOTSUPP))
        return -1;
      return saved;
    }
    for (__u32 i = 0; i < count; i++) {
      status = fn(ctx, (const char *)b->keys + (size_t)i * b->key_size,
                  (const char *)b->values + (size_t)i * b->value_size);
      if (status != 0)
        return status;
    }
    if (err != 0) /* ENOENT: that was the last batch */
      return 0;
    in_token = out_token;
    first = false;
  }
}

/* What the entry functions of the stats maps need. */
typedef struct {
  tcl_drain_t *d;
  tcl_snapshot_t *out;
} tcl_drain_ctx_t;

static int tcl_drain_fixed_entry(void *ctx, const void *key, const void *percpu)
{
  tcl_drain_ctx_t *c = ctx;

  return tcl_drain_fixed_add(c->d, *(const __u32 *)key, percpu, c->out);
}

static int tcl_drain_stats_entry(void *ctx, const void *key, const void *percpu)
{
  tcl_drain_ctx_t *c = ctx;

  return tcl_drain_add(c->d, key, percpu, c->out);
}

/* The drain's batch buffers, for keys of key_size and per-CPU stats values. */
static tcl_batch_t tcl_drain_batch_of(const tcl_drain_t *d, size_t key_size)
{
  return (tcl_batch_t){
      .keys = d->keys,
      .values = d->values,
      .key_size = key_size,
      .value_size = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value)) *
                    (size_t)d->ncpus,
      .batch = d->batch,
  };
}

static int tcl_drain_fixed(tcl_drain_t *d, int fd, tcl_snapshot_t *out)
{
  int status;

  if (!d->fixed_no_batch) {
    tcl_batch_t b = tcl_drain_batch_of(d, sizeof(__u32));
    tcl_drain_ctx_t ctx = {.d = d, .out = out};

    status = tcl_drain_batches(fd, &b, tcl_drain_fixed_entry, &ctx);
    if (status != -1)
      return status;
    d->fixed_no_batch = true;
  }
  for (__u32 idx = 0; idx < TCL_NFIXED * TCL_NSLOTS; idx++) {
    if (bpf_map_lookup_elem(fd, &idx, d->values) != 0)
      return errno;
    status = tcl_drain_fixed_add(d, idx, d->values, out);
    if (status != 0)
      return status;
  }
  return 0;
}

static uint64_t tcl_drain_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int tcl_drain_stats(tcl_drain_t *d, int fd, int fixed_fd, tcl_snapshot_t *out)
{
  int status = 0;

  tcl_snapshot_clear(out);
  out->taken_ns = tcl_drain_now_ns(); /* the span of an interval's rates */
  if (!d->no_batch) {
    tcl_batch_t b = tcl_drain_batch_of(d, sizeof(struct tcl_stats_key));
    tcl_drain_ctx_t ctx = {.d = d, .out = out};

    status = tcl_drain_batches(fd, &b, tcl_drain_stats_entry, &ctx);
    if (status == -1)
      d->no_batch = true;
    else if (status != 0)
      return status;
  }
  if (d->no_batch) {
    tcl_snapshot_clear(out);
    status = tcl_drain_stats_iterate(d, fd, out);
    if (status != 0)
      return status;
  }
  if (fixed_fd >= 0) {
    status = tcl_drain_fixed(d, fixed_fd, out);
    if (status != 0)
      return status;
  }
  tcl_snapshot_sort(out);
  return 0;
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
    out->no_start += c->no_start;
    out->stats_full += c->stats_full;
    out->filtered += c->filtered;
    out->overflow += c->overflow;
    out->events_lost += c->events_lost;
  }
  return 0;
}
