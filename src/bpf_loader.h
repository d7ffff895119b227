/* SPDX-License-Identifier: MIT */
/* Loading the BPF programs into the kernel, attaching them, and undoing it. */
#ifndef TCPCONNLAT_BPF_LOADER_H
#define TCPCONNLAT_BPF_LOADER_H

#include "conf.h"

struct tcpconnlat_bpf; /* the generated skeleton */

typedef struct {
  struct tcpconnlat_bpf *skel;
  tcl_attach_mode_t mode; /* what is attached: tp_btf or tracepoint */
  int stats_fd;    /* histograms of label series (hash) */
  int fixed_fd;    /* histograms of "all" and "inbound" (array) */
  int counters_fd;
  int series_fd;   /* labels -> series id */
  int free_ids_fd; /* queue of unused series ids */
  int prog_fd;     /* the attached program */
  int events_fd;   /* ring buffer of slow and failed connects */
  bool keeps_start; /* start records are kept (Pid, Process, ...) */
  uint32_t start_slots; /* ... in an array of this many slots */
  bool requests;   /* Inbound: the sock_ops program counting connection
                    * requests is attached */
  char requests_error[512]; /* why not, when Inbound is on */
  int stats_enable_fd; /* CollectBpfStats: keeps run-time stats on */
} tcl_bpf_t;

typedef struct {
  uint64_t run_cnt;          /* 0 unless run-time stats are on */
  uint64_t run_time_ns;
  uint64_t recursion_misses; /* runs the kernel skipped (nested on a CPU) */
  uint64_t sockops_run_cnt;  /* the sock_ops program (requests), likewise */
  uint64_t sockops_run_time_ns;
} tcl_prog_stats_t;

/* The kernel's accounting of the attached programs. */
int tcl_bpf_prog_stats(const tcl_bpf_t *bpf, tcl_prog_stats_t *out);

/*
 * Opens, sizes, loads and attaches the programs as conf says. On failure
 * nothing stays loaded, and errbuf holds one sentence saying what is missing
 * and what to do.
 */
int tcl_bpf_start(const tcl_conf_t *conf, tcl_bpf_t *bpf, char *errbuf,
                  size_t errlen);

/* Start record slots for MaxInflight (rounded up to a power of two). */
uint32_t tcl_bpf_start_slots(uint32_t max_inflight);

/* Detaches and frees everything tcl_bpf_start created. Idempotent. */
void tcl_bpf_stop(tcl_bpf_t *bpf);

/* Routes libbpf's messages to collectd's log, or restores the previous sink. */
void tcl_bpf_log_to_collectd(bool verbose);
void tcl_bpf_log_restore(void);

#endif /* TCPCONNLAT_BPF_LOADER_H */
