/* SPDX-License-Identifier: MIT */
/*
 * drainbench - the cost of draining the stats map against the number of
 * possible CPUs (bench/run.sh, section "cpus").
 *
 *   drainbench [-e ENTRIES] [-r REPS] [-c "C1 C2 ..."] [-m "POOL1 ..."]
 *
 * Per-CPU maps hold one value per *possible* CPU, a number fixed at boot. To
 * see how the plugin's drain scales with it, this program times the drain's
 * two steps, exactly as src/drain.c performs them (batch lookups of 1024
 * entries, then a loop summing the CPUs of each entry into a snapshot entry):
 *
 *   - on a real BPF_MAP_TYPE_PERCPU_HASH of ENTRIES entries (16-byte values,
 *     BPF_F_NO_PREALLOC, like tcl_stats): this machine's possible CPUs;
 *   - on plain BPF_MAP_TYPE_HASH maps whose value is C x 16 bytes, for each C
 *     of the list: the bytes a per-CPU map with C possible CPUs copies per
 *     entry, summed over C strides.
 *
 *   - with -m: the same ENTRIES in per-CPU hash maps of max_entries POOL
 *     (tcl_stats is sized for MaxSeries x 256 slots, mostly unused): the
 *     batch lookup walks every bucket of the map, used or not.
 *
 * Output lines (ns per entry, medians of REPS):
 *   row percpu_hash NCPUS LOOKUP_NS SUM_NS
 *   pool MAX_ENTRIES ENTRIES LOOKUP_NS SUM_NS
 *   row hash_emulated C LOOKUP_NS SUM_NS
 *   fit A B        (total ns per entry = A + B x C over the emulated rows)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define BATCH 1024

struct key {
  uint32_t series;
  uint32_t slot;
};
struct val {
  uint64_t count;
  uint64_t sum_ns;
};
typedef struct {
  uint32_t series, slot;
  uint64_t count, sum_ns;
} entry_t;

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * One drain: batch lookups into vals (all entries), then the sums.
 * width: values per entry (CPUs); the kernel lays per-CPU values out at
 * 8-byte strides, 16 bytes each here.
 */
static int drain_once(int fd, long entries, int width, struct key *keys,
                      char *vals, entry_t *out, double *lookup_ns,
                      double *sum_ns)
{
  size_t stride = sizeof(struct val) * (size_t)width;
  uint64_t in = 0, outtok = 0, t0, t1, t2;
  long got = 0;
  int first = 1;

  t0 = now_ns();
  for (;;) {
    __u32 count = BATCH;
    int err;

    if (got + BATCH > entries + BATCH)
      break;
    err = bpf_map_lookup_batch(fd, first ? NULL : &in, &outtok, keys + got,
                               vals + (size_t)got * stride, &count, NULL);
    if (err != 0 && errno != ENOENT)
      return -errno;
    got += count;
    if (err != 0)
      break;
    in = outtok;
    first = 0;
  }
  t1 = now_ns();
  for (long i = 0; i < got; i++) {
    entry_t e = {.series = keys[i].series, .slot = keys[i].slot};
    const char *p = vals + (size_t)i * stride;

    for (int cpu = 0; cpu < width; cpu++) {
      const struct val *v = (const void *)(p + (size_t)cpu * sizeof(struct val));
      e.count += v->count;
      e.sum_ns += v->sum_ns;
    }
    out[i] = e;
  }
  t2 = now_ns();
  if (got != entries) {
    fprintf(stderr, "drainbench: read %ld entries of %ld\n", got, entries);
    return -EIO;
  }
  *lookup_ns = (double)(t1 - t0) / (double)entries;
  *sum_ns = (double)(t2 - t1) / (double)entries;
  return 0;
}

static int run(enum bpf_map_type type, int width, long entries, long max_entries,
               int reps, double *lookup, double *sum)
{
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  size_t vsize = type == BPF_MAP_TYPE_PERCPU_HASH
                     ? sizeof(struct val)
                     : sizeof(struct val) * (size_t)width;
  size_t stride = sizeof(struct val) * (size_t)width;
  struct key *keys = calloc((size_t)entries + BATCH, sizeof(*keys));
  char *vals = calloc((size_t)entries + BATCH, stride);
  char *one = calloc(1, stride);
  entry_t *out = calloc((size_t)entries + BATCH, sizeof(*out));
  double *l = calloc((size_t)reps, sizeof(double));
  double *s = calloc((size_t)reps, sizeof(double));
  int fd, status = 0;

  if (!keys || !vals || !one || !out || !l || !s)
    return -ENOMEM;
  fd = bpf_map_create(type, "drainbench", sizeof(struct key), (__u32)vsize,
                      (__u32)(max_entries > entries ? max_entries : entries), &opts);
  if (fd < 0) {
    fprintf(stderr, "drainbench: map create (width %d): %s\n", width,
            strerror(errno));
    return -errno;
  }
  for (long i = 0; i < entries; i++) {
    struct key k = {.series = (uint32_t)(i / 10), .slot = (uint32_t)(i % 10)};
    for (int c = 0; c < width; c++)
      ((struct val *)one)[c] = (struct val){.count = (uint64_t)i + c, .sum_ns = 1000};
    if (bpf_map_update_elem(fd, &k, one, BPF_ANY) != 0) {
      fprintf(stderr, "drainbench: update: %s\n", strerror(errno));
      status = -errno;
      goto out;
    }
  }
  /* one warm-up, then the measured rounds */
  status = drain_once(fd, entries, width, keys, vals, out, &l[0], &s[0]);
  for (int r = 0; r < reps && status == 0; r++)
    status = drain_once(fd, entries, width, keys, vals, out, &l[r], &s[r]);
  if (status == 0) {
    *lookup = median(l, reps);
    *sum = median(s, reps);
  }
out:
  close(fd);
  free(keys);
  free(vals);
  free(one);
  free(out);
  free(l);
  free(s);
  return status;
}

int main(int argc, char **argv)
{
  const char *widths = "2 4 8 16 32 64 128 256";
  const char *pools = NULL;
  long entries = 10000;
  int reps = 9, ncpus, opt, n = 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  char *list, *tok, *save;

  while ((opt = getopt(argc, argv, "e:r:c:m:")) != -1) {
    switch (opt) {
    case 'e':
      entries = strtol(optarg, NULL, 10);
      break;
    case 'r':
      reps = (int)strtol(optarg, NULL, 10);
      break;
    case 'c':
      widths = optarg;
      break;
    case 'm':
      pools = optarg;
      break;
    default:
      fprintf(stderr, "usage: drainbench [-e ENTRIES] [-r REPS] [-c \"C...\"] "
                      "[-m \"POOL...\"]\n");
      return 2;
    }
  }
  if (entries < 1 || reps < 1)
    return 2;
  ncpus = libbpf_num_possible_cpus();
  if (ncpus < 1) {
    fprintf(stderr, "drainbench: cannot read the possible CPUs\n");
    return 1;
  }
  {
    double l, s;
    if (run(BPF_MAP_TYPE_PERCPU_HASH, ncpus, entries, 0, reps, &l, &s) != 0)
      return 1;
    printf("row percpu_hash %d %.1f %.1f\n", ncpus, l, s);
    fflush(stdout);
  }
  /* the same entries in ever larger pools: the batch lookup walks every
   * hash bucket, used or not */
  for (char *p = pools ? strdup(pools) : NULL, *q = p, *t;
       p && (t = strtok_r(q, " ,", &save)) != NULL; q = NULL) {
    long m = strtol(t, NULL, 10);
    double l, s;

    if (m < entries)
      continue;
    if (run(BPF_MAP_TYPE_PERCPU_HASH, ncpus, entries, m, reps, &l, &s) != 0)
      return 1;
    printf("pool %ld %ld %.1f %.1f\n", m, entries, l, s);
    fflush(stdout);
  }
  list = strdup(widths);
  for (tok = strtok_r(list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
    int c = atoi(tok);
    double l, s;

    if (c < 1)
      continue;
    if (run(BPF_MAP_TYPE_HASH, c, entries, 0, reps, &l, &s) != 0)
      return 1;
    printf("row hash_emulated %d %.1f %.1f\n", c, l, s);
    fflush(stdout);
    n++;
    sx += c;
    sy += l + s;
    sxx += (double)c * c;
    sxy += (double)c * (l + s);
  }
  free(list);
  if (n >= 2) {
    double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    printf("fit %.1f %.2f\n", (sy - b * sx) / n, b);
  }
  return 0;
}
