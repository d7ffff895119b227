/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One latency into a per-CPU histogram hash (struct tcl_stats_key ->
 * struct tcl_stats_value, bpf/tcpconnlat.h): the one helper for the socket
 * programs' map and the TC programs' map. Include after bpf_helpers.h and
 * tcpconnlat.h.
 */
#ifndef TCPCONNLAT_STATS_BPF_H
#define TCPCONNLAT_STATS_BPF_H

/* 0, or -1 when the entry could not be created (the map is full). */
static __always_inline int tcl_hist_add(void *map, __u32 series, __u32 slot,
                                        __u64 ns)
{
  struct tcl_stats_key key = {.series = series, .slot = slot};
  struct tcl_stats_value *val, zero = {};

  val = bpf_map_lookup_elem(map, &key);
  if (!val) {
    /* EEXIST when another CPU created it first is fine: look it up again. */
    bpf_map_update_elem(map, &key, &zero, BPF_NOEXIST);
    val = bpf_map_lookup_elem(map, &key);
    if (!val)
      return -1;
  }
  /* Per-CPU value and no recursion of the same program on one CPU: a plain
   * add is safe. */
  val->count++;
  val->sum_ns += ns;
  return 0;
}

#endif /* TCPCONNLAT_STATS_BPF_H */
