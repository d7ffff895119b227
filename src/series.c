/* SPDX-License-Identifier: MIT */
#include "series.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "cgroup.h"
#include "labels.h"

int tcl_series_init(tcl_series_t *s, uint32_t max_series)
{
  memset(s, 0, sizeof(*s));
  s->nslots = max_series + TCL_SERIES_FIRST;
  s->slots = calloc(s->nslots, sizeof(*s->slots));
  s->freed = calloc(s->nslots, sizeof(*s->freed));
  if (s->slots == NULL || s->freed == NULL) {
    tcl_series_free(s);
    return ENOMEM;
  }
  return 0;
}

void tcl_series_free(tcl_series_t *s)
{
  free(s->slots);
  free(s->freed);
  memset(s, 0, sizeof(*s));
}

static void tcl_series_name(tcl_series_slot_t *slot, const tcl_conf_t *conf)
{
  const char *net_names[TCL_MAX_NETWORKS];
  tcl_label_names_t names = {
      .network_names = net_names,
      .networks_num = conf->networks_num,
      .cgroup_path = NULL,
  };

  for (size_t i = 0; i < conf->networks_num; i++)
    net_names[i] = conf->networks[i].name;
  if (conf->by & TCL_BY_CGROUP)
    names.cgroup_path = tcl_cgroup_path(slot->labels.cgroup_id);
  tcl_labels_instance(&slot->labels, conf->by, &names, slot->name,
                      sizeof(slot->name));
}

/* Reads the kernel's label set -> id map and adopts ids we do not know. */
static int tcl_series_scan(tcl_series_t *s, const tcl_conf_t *conf, int fd)
{
  struct tcl_labels key, next, *prev = NULL;
  __u32 id;

  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, &id) != 0)
      continue; /* deleted meanwhile */
    if (id < TCL_SERIES_FIRST || id >= s->nslots)
      continue;
    if (s->slots[id].state == TCL_SERIES_UNUSED) {
      tcl_series_slot_t *slot = &s->slots[id];
      slot->state = TCL_SERIES_LIVE;
      slot->labels = key;
      slot->last_active = s->round;
      tcl_series_name(slot, conf);
      s->live++;
    }
  }
  return errno == ENOENT ? 0 : errno;
}

int tcl_series_begin(tcl_series_t *s, const tcl_conf_t *conf, int series_fd,
                     const tcl_snapshot_t *cur, const tcl_snapshot_t *delta)
{
  bool unknown = false;

  s->round++;
  s->freed_num = 0;
  tcl_cgroup_new_round();
  for (size_t i = 0; i < cur->num && !unknown; i++) {
    uint32_t id = cur->entries[i].series;
    if (id >= TCL_SERIES_FIRST && id < s->nslots &&
        s->slots[id].state == TCL_SERIES_UNUSED)
      unknown = true;
  }
  if (unknown) {
    int err = tcl_series_scan(s, conf, series_fd);
    if (err != 0)
      return err;
  }
  for (size_t i = 0; i < delta->num; i++) {
    uint32_t id = delta->entries[i].series;
    if (id < s->nslots)
      s->slots[id].last_active = s->round;
  }
  return 0;
}

const char *tcl_series_instance(const tcl_series_t *s, const tcl_conf_t *conf,
                                uint32_t id, bool has_delta)
{
  static char port_name[32];

  if (id & TCL_SERIES_INBOUND_PORT) {
    snprintf(port_name, sizeof(port_name), "inbound-localport-%u",
             (unsigned)(id & 0xffff));
    return port_name;
  }
  if (id == TCL_SERIES_INBOUND)
    return "inbound";
  if (id == TCL_SERIES_ALL)
    return conf->report_total ? "all" : NULL;
  if (id == TCL_SERIES_OTHER)
    return "other";
  if (id >= s->nslots)
    return NULL;
  switch (s->slots[id].state) {
  case TCL_SERIES_LIVE:
    return s->slots[id].name;
  case TCL_SERIES_RETIRING:
    /* only increments that raced the retirement */
    return has_delta ? s->slots[id].name : NULL;
  case TCL_SERIES_UNUSED:
  default:
    return NULL; /* the kernel's map did not name it: not ours to report */
  }
}

static bool tcl_series_was_freed(const tcl_series_t *s, uint32_t id)
{
  for (uint32_t i = 0; i < s->freed_num; i++)
    if (s->freed[i] == id)
      return true;
  return false;
}

void tcl_series_end(tcl_series_t *s, const tcl_conf_t *conf, int series_fd,
                    int stats_fd, int free_ids_fd, tcl_snapshot_t *cur)
{
  size_t kept = 0;

  /* Retired last round: free the kernel state, return the id. */
  for (size_t i = 0; i < cur->num; i++) {
    tcl_entry_t *e = &cur->entries[i];
    if (e->series < s->nslots &&
        s->slots[e->series].state == TCL_SERIES_RETIRING) {
      struct tcl_stats_key key = {.series = e->series, .slot = e->slot};
      bpf_map_delete_elem(stats_fd, &key);
    }
  }
  for (uint32_t id = TCL_SERIES_FIRST; id < s->nslots; id++) {
    tcl_series_slot_t *slot = &s->slots[id];
    if (slot->state != TCL_SERIES_RETIRING)
      continue;
    if (bpf_map_update_elem(free_ids_fd, NULL, &id, BPF_ANY) != 0)
      continue; /* keep it retiring; try again next round */
    memset(slot, 0, sizeof(*slot));
    s->freed[s->freed_num++] = id;
  }

  /* Idle too long: retire. */
  for (uint32_t id = TCL_SERIES_FIRST; id < s->nslots; id++) {
    tcl_series_slot_t *slot = &s->slots[id];
    if (slot->state != TCL_SERIES_LIVE ||
        s->round - slot->last_active < conf->series_timeout)
      continue;
    if (bpf_map_delete_elem(series_fd, &slot->labels) != 0 && errno != ENOENT)
      continue;
    slot->state = TCL_SERIES_RETIRING;
    s->live--;
    s->expired++;
  }

  /* The next delta must not subtract counts of a freed id's old life. */
  if (s->freed_num == 0)
    return;
  for (size_t i = 0; i < cur->num; i++)
    if (!tcl_series_was_freed(s, cur->entries[i].series))
      cur->entries[kept++] = cur->entries[i];
  cur->num = kept;
}
