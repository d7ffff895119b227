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

/* One entry of a batch: its key and its per-CPU values. */
typedef int (*tcl_drain_entry_fn)(tcl_drain_t *d, const void *key,
                                  const void *percpu, tcl_snapshot_t *out);

/*
 * The whole map by batch lookups, a syscall per d->batch entries, each entry
 * handed to fn. 0; -1 when the kernel has no batch lookups for this map
 * (then nothing was handed over); else an errno.
 */
static int tcl_drain_batches(tcl_drain_t *d, int fd, size_t key_size,
                             tcl_drain_entry_fn fn, tcl_snapshot_t *out)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  __u64 in_token = 0, out_token = 0; /* a bucket or an index: 4 bytes used */
  bool first = true;
  int status;

  for (;;) {
    __u32 count = (__u32)d->batch;
    int err = bpf_map_lookup_batch(fd, first ? NULL : &in_token, &out_token,
                                   d->keys, d->values, &count, NULL);
    int saved = errno;

    if (err != 0 && saved != ENOENT) {
      if (first &&
          (saved == EINVAL || saved == ENOTSUP || saved == TCL_ENOTSUPP))
        return -1;
      return saved;
    }
    for (__u32 i = 0; i < count; i++) {
      status = fn(d, (const char *)d->keys + (size_t)i * key_size,
                  (const char *)d->values + (size_t)i * vstride * d->ncpus,
                  out);
      if (status != 0)
        return status;
    }
    if (err != 0) /* ENOENT: that was the last batch */
      return 0;
    in_token = out_token;
    first = false;
  }
}

static int tcl_drain_fixed_entry(tcl_drain_t *d, const void *key,
                                 const void *percpu, tcl_snapshot_t *out)
{
  return tcl_drain_fixed_add(d, *(const __u32 *)key, percpu, out);
}

static int tcl_drain_stats_entry(tcl_drain_t *d, const void *key,
                                 const void *percpu, tcl_snapshot_t *out)
{
  return tcl_drain_add(d, key, percpu, out);
}

static int tcl_drain_fixed(tcl_drain_t *d, int fd, tcl_snapshot_t *out)
{
  int status;

  if (!d->fixed_no_batch) {
    status = tcl_drain_batches(d, fd, sizeof(__u32), tcl_drain_fixed_entry, out);
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

int tcl_drain_stats(tcl_drain_t *d, int fd, int fixed_fd, tcl_snapshot_t *out)
{
  int status = 0;

  tcl_snapshot_clear(out);
  if (!d->no_batch) {
    status = tcl_drain_batches(d, fd, sizeof(struct tcl_stats_key),
                               tcl_drain_stats_entry, out);
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

/* Adds n to one slot from user space (CPU 0's value): "inbound" lives in
 * the fixed array, inbound per port in the stats hash. Only user space
 * writes these slots (handshake timeouts). */
static int tcl_drain_bump(tcl_drain_t *d, int stats_fd, int fixed_fd,
                          __u32 series, __u32 slot, uint64_t n)
{
  size_t vstride = TCL_PERCPU_STRIDE(sizeof(struct tcl_stats_value));
  struct tcl_stats_key key = {.series = series, .slot = slot};
  __u32 idx = TCL_FIXED_INBOUND * TCL_NSLOTS + slot;
  const void *k = &key;
  struct tcl_stats_value *v0;
  int fd = stats_fd;

  if (series == TCL_SERIES_INBOUND) {
    fd = fixed_fd;
    k = &idx;
  }
  memset(d->values, 0, vstride * (size_t)d->ncpus);
  if (bpf_map_lookup_elem(fd, k, d->values) != 0 && errno != ENOENT)
    return errno;
  v0 = d->values;
  v0->count += n;
  return bpf_map_update_elem(fd, k, d->values, BPF_ANY) ? errno : 0;
}

uint64_t tcl_drain_expire_handshakes(tcl_drain_t *d, struct tcl_syn_set *sets,
                                     uint32_t nsets, int stats_fd,
                                     int fixed_fd, uint64_t timeout_ns,
                                     bool by_port)
{
  uint64_t now, expired = 0;

  if (sets == NULL)
    return 0;
  now = tcl_monotonic_ns();
  for (uint32_t i = 0; i < nsets; i++) {
    for (int j = 0; j < TCL_SYN_WAYS; j++) {
      struct tcl_syn_way *w = &sets[i].way[j];
      uint64_t o = __atomic_load_n(&w->owner, __ATOMIC_ACQUIRE), start;
      uint32_t lport;

      if (o == 0 || o == TCL_INFLIGHT_BUSY)
        continue;
      start = __atomic_load_n(&w->start_ns, __ATOMIC_RELAXED);
      lport = __atomic_load_n(&w->lport, __ATOMIC_RELAXED);
      if (now < start || now - start < timeout_ns)
        continue;
      /* Release the way as the kernel does; if the handshake completed or
       * a newer one took the way meanwhile, it is not ours to count. */
      if (!__atomic_compare_exchange_n(&w->owner, &o, 0, false,
                                       __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        continue;
      expired++;
      if (by_port)
        tcl_drain_bump(d, stats_fd, fixed_fd,
                       TCL_SERIES_INBOUND_PORT | (lport & 0xffff),
                       TCL_SLOT_FAILURE_BASE + TCL_REASON_TIMEOUT, 1);
    }
  }
  if (!by_port && expired > 0)
    tcl_drain_bump(d, stats_fd, fixed_fd, TCL_SERIES_INBOUND,
                   TCL_SLOT_FAILURE_BASE + TCL_REASON_TIMEOUT, expired);
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
    out->evicted += c->evicted;
    out->inbound_evicted += c->inbound_evicted;
  }
  return 0;
}
