/* SPDX-License-Identifier: MIT */
/* Loading the BPF programs into the kernel, attaching them, and undoing it. */
#ifndef TCPCONNLAT_BPF_LOADER_H
#define TCPCONNLAT_BPF_LOADER_H

#include "conf.h"

struct tcpconnlat_bpf; /* the generated skeleton */

typedef struct {
  struct tcpconnlat_bpf *skel;
  tcl_attach_mode_t mode; /* what is attached: tp_btf or tracepoint */
  int stats_fd;
  int counters_fd;
  int series_fd;   /* labels -> series id */
  int free_ids_fd; /* queue of unused series ids */
} tcl_bpf_t;

/*
 * Opens, sizes, loads and attaches the programs as conf says. On failure
 * nothing stays loaded, and errbuf holds one sentence saying what is missing
 * and what to do.
 */
int tcl_bpf_start(const tcl_conf_t *conf, tcl_bpf_t *bpf, char *errbuf,
                  size_t errlen);

/* Detaches and frees everything tcl_bpf_start created. Idempotent. */
void tcl_bpf_stop(tcl_bpf_t *bpf);

/* Routes libbpf's messages to collectd's log, or restores the previous sink. */
void tcl_bpf_log_to_collectd(bool verbose);
void tcl_bpf_log_restore(void);

#endif /* TCPCONNLAT_BPF_LOADER_H */
