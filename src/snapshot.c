/* SPDX-License-Identifier: MIT */
#include "histogram.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int tcl_snapshot_append(tcl_snapshot_t *s, const tcl_entry_t *e)
{
  if (s->num == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    tcl_entry_t *grown = realloc(s->entries, cap * sizeof(*grown));

    if (grown == NULL)
      return ENOMEM;
    s->entries = grown;
    s->cap = cap;
  }
  s->entries[s->num++] = *e;
  return 0;
}

static int tcl_entry_cmp(const void *a, const void *b)
{
  const tcl_entry_t *x = a, *y = b;

  if (x->series != y->series)
    return x->series < y->series ? -1 : 1;
  if (x->slot != y->slot)
    return x->slot < y->slot ? -1 : 1;
  return 0;
}

void tcl_snapshot_sort(tcl_snapshot_t *s)
{
  if (s->num > 1)
    qsort(s->entries, s->num, sizeof(*s->entries), tcl_entry_cmp);
}

void tcl_snapshot_clear(tcl_snapshot_t *s)
{
  s->num = 0;
}

void tcl_snapshot_free(tcl_snapshot_t *s)
{
  free(s->entries);
  s->entries = NULL;
  s->num = s->cap = 0;
  s->taken_ns = 0;
}

int tcl_snapshot_delta(const tcl_snapshot_t *prev, const tcl_snapshot_t *cur,
                       tcl_snapshot_t *out)
{
  size_t i = 0, j = 0;

  tcl_snapshot_clear(out);
  for (j = 0; j < cur->num; j++) {
    const tcl_entry_t *c = &cur->entries[j];
    tcl_entry_t d = *c;
    int status;

    while (i < prev->num && tcl_entry_cmp(&prev->entries[i], c) < 0)
      i++;
    if (i < prev->num && tcl_entry_cmp(&prev->entries[i], c) == 0 &&
        prev->entries[i].count <= c->count) {
      d.count = c->count - prev->entries[i].count;
      d.sum_ns = c->sum_ns - prev->entries[i].sum_ns;
    }
    if (d.count == 0)
      continue;
    status = tcl_snapshot_append(out, &d);
    if (status != 0)
      return status;
  }
  return 0;
}

double tcl_snapshot_span_s(const tcl_snapshot_t *prev,
                           const tcl_snapshot_t *cur)
{
  if (prev->taken_ns == 0 || cur->taken_ns <= prev->taken_ns)
    return NAN;
  return (double)(cur->taken_ns - prev->taken_ns) / 1e9;
}
