/* SPDX-License-Identifier: MIT */
/*
 * tcpconnlat: a collectd plugin measuring TCP connect latency with eBPF.
 *
 * The plugin's life: config (config.c) -> init loads and attaches the BPF
 * programs (bpf_loader.c) -> every interval read drains the cumulative
 * per-CPU maps (drain.c), subtracts the previous snapshot (snapshot.c) and
 * dispatches percentiles, buckets and totals (histogram.c, dispatch.c) ->
 * shutdown frees everything.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "bpf_loader.h"
#include "cgroup.h"
#include "conf.h"
#include "dispatch.h"
#include "drain.h"
#include "histogram.h"
#include "iface.h"
#include "notify.h"
#include "series.h"

#include <math.h>

static tcl_conf_t conf;
static bool conf_initialized;

static tcl_bpf_t tcl_bpf;
static tcl_drain_t tcl_drain;
static tcl_snapshot_t tcl_prev, tcl_cur, tcl_delta;
static tcl_series_t tcl_series;
static bool tcl_running;

static void tcl_conf_ensure(void)
{
  if (!conf_initialized) {
    tcl_conf_init(&conf);
    conf_initialized = true;
  }
}

static int tcpconnlat_config(oconfig_item_t *ci)
{
  tcl_conf_ensure();
  return tcl_conf_parse(&conf, ci);
}

static void tcpconnlat_cleanup(void)
{
  tcl_notify_stop();
  tcl_iface_stop();
  tcl_bpf_stop(&tcl_bpf);
  tcl_drain_free(&tcl_drain);
  tcl_snapshot_free(&tcl_prev);
  tcl_snapshot_free(&tcl_cur);
  tcl_snapshot_free(&tcl_delta);
  tcl_series_free(&tcl_series);
  tcl_cgroup_free();
  tcl_bpf_log_restore();
  tcl_running = false;
}

static int tcpconnlat_init(void)
{
  char reason[1024];
  int status;

  tcl_conf_ensure();
  if (tcl_running)
    return 0;
  tcl_conf_finish(&conf);
  if (conf.error[0] != '\0') {
    ERROR("tcpconnlat plugin: not starting because of the configuration "
          "error above (%s)",
          conf.error);
    return -1;
  }
  tcl_bpf_log_to_collectd(conf.verbose);
  tcl_dispatch_prepare(&conf);

  status = tcl_drain_init(&tcl_drain);
  if (status == 0)
    status = tcl_series_init(&tcl_series, conf.max_series);
  if (status != 0) {
    ERROR("tcpconnlat plugin: cannot size the map buffers: %s",
          STRERROR(status));
    goto fail;
  }

  status = tcl_bpf_start(&conf, &tcl_bpf, reason, sizeof(reason));
  if (status != 0) {
    ERROR("tcpconnlat plugin: not starting: %s.", reason);
    goto fail;
  }

  if (conf.interfaces_num > 0) {
    const char *names[TCL_IFACE_MAX];

    for (size_t i = 0; i < conf.interfaces_num; i++)
      names[i] = conf.interfaces[i];
    status = tcl_iface_start(names, conf.interfaces_num,
                             conf.interface_attach, reason, sizeof(reason));
    if (status != 0) {
      ERROR("tcpconnlat plugin: not starting: %s.", reason);
      goto fail;
    }
  }

  if (tcl_notify_start(&conf, tcl_bpf.events_fd) != 0)
    goto fail;

  /* The maps are new; this first snapshot is the baseline of interval one. */
  status = tcl_drain_stats(&tcl_drain, tcl_bpf.stats_fd, tcl_bpf.fixed_fd, &tcl_prev);
  if (status != 0) {
    ERROR("tcpconnlat plugin: reading the stats map failed: %s",
          STRERROR(status));
    goto fail;
  }

  tcl_running = true;
  if (conf.inbound && tcl_bpf.requests)
    INFO("tcpconnlat plugin: measuring inbound handshakes; connection "
         "requests are counted by a sock_ops program on the cgroup v2 root.");
  else if (conf.inbound && !conf.inbound_requests)
    INFO("tcpconnlat plugin: measuring inbound handshakes (InboundRequests "
         "false: connection requests are not counted).");
  else if (conf.inbound)
    WARNING("tcpconnlat plugin: inbound handshakes are measured, but "
            "connection requests are not counted: %s.",
            tcl_bpf.requests_error);
  if (tcl_bpf.keeps_start)
    INFO("tcpconnlat plugin: each connect's process is kept from connect() "
         "to its outcome in a table of %u slots (Pid, Process, By process or "
         "notifications).",
         tcl_bpf.start_slots);
  INFO("tcpconnlat plugin: measuring TCP connect latency through %s, with "
       "tcp:tcp_retransmit_skb for retransmitted SYNs.",
       tcl_bpf.mode == TCL_ATTACH_TP_BTF
           ? "the BTF raw tracepoint (tp_btf) sock:inet_sock_set_state"
           : "the classic tracepoint sock:inet_sock_set_state");
  return 0;

fail:
  tcpconnlat_cleanup();
  return -1;
}

static bool tcl_is_inbound(uint32_t id)
{
  return id == TCL_SERIES_INBOUND || (id & TCL_SERIES_INBOUND_PORT);
}

/* The totals a series reports besides established. */
static uint32_t tcl_series_totals(bool inbound)
{
  if (!inbound)
    return TCL_TOTAL_SYN_RETRANSMITTED;
  return TCL_TOTAL_SYNACK_RETRANSMITTED |
         (tcl_bpf.requests ? TCL_TOTAL_REQUESTS : 0);
}

/* Dispatches every series of the snapshot: cur and delta are both sorted by
 * (series, slot), so one merged walk pairs each series with its growth. */
static void tcpconnlat_dispatch_all(double span_s)
{
  size_t c = 0, d = 0;
  bool all_seen = false, inbound_seen = false;

  while (c < tcl_cur.num) {
    uint32_t id = tcl_cur.entries[c].series;
    size_t cb = c, db;
    const char *instance;

    while (c < tcl_cur.num && tcl_cur.entries[c].series == id)
      c++;
    while (d < tcl_delta.num && tcl_delta.entries[d].series < id)
      d++;
    db = d;
    while (d < tcl_delta.num && tcl_delta.entries[d].series == id)
      d++;

    if (id == TCL_SERIES_ALL)
      all_seen = true;
    if (id == TCL_SERIES_INBOUND)
      inbound_seen = true;
    instance = tcl_series_instance(&tcl_series, &conf, id, d > db);
    if (instance != NULL)
      tcl_dispatch_series(&conf, instance, tcl_delta.entries + db, d - db,
                          tcl_cur.entries + cb, c - cb, span_s,
                          tcl_is_inbound(id) ? TCL_REASONS_INBOUND
                                             : TCL_REASONS_OUTBOUND,
                          tcl_series_totals(tcl_is_inbound(id)));
  }
  /* Before the first connect the kernel has no entry yet: "all" (and
   * "inbound") still report their zero totals and NaN latencies. */
  if (!all_seen && conf.report_total)
    tcl_dispatch_series(&conf, "all", NULL, 0, NULL, 0, span_s,
                        TCL_REASONS_OUTBOUND, tcl_series_totals(false));
  if (!inbound_seen && conf.inbound && !(conf.by & TCL_BY_LOCAL_PORT))
    tcl_dispatch_series(&conf, "inbound", NULL, 0, NULL, 0, span_s,
                        TCL_REASONS_INBOUND, tcl_series_totals(true));
}

static int tcpconnlat_read(void)
{
  struct tcl_counters counters;
  tcl_prog_stats_t ps;
  tcl_self_t self = {0};
  cdtime_t begin = cdtime();
  tcl_snapshot_t swap;
  double interval_s = CDTIME_T_TO_DOUBLE(plugin_get_interval());
  double span_s;
  int status;

  if (!tcl_running)
    return -1;

  /* Stamped when the maps are read: the time between two values of a
   * series is then the span their bucket rates are divided by, so that
   * rate x (time since the previous value) is the interval's count. */
  tcl_dispatch_begin(cdtime());
  status = tcl_drain_stats(&tcl_drain, tcl_bpf.stats_fd, tcl_bpf.fixed_fd, &tcl_cur);
  if (status != 0) {
    ERROR("tcpconnlat plugin: reading the stats map failed: %s",
          STRERROR(status));
    return -1;
  }
  /* The rates cover the time since the previous read, not Interval: after
   * a failed or late read that is longer, and the first read comes soon
   * after the baseline taken at init. */
  span_s = tcl_snapshot_span_s(&tcl_prev, &tcl_cur);
  if (isnan(span_s))
    span_s = interval_s;
  status = tcl_snapshot_delta(&tcl_prev, &tcl_cur, &tcl_delta);
  if (status == 0)
    status = tcl_series_begin(&tcl_series, &conf, tcl_bpf.series_fd, &tcl_cur,
                              &tcl_delta);
  if (status != 0) {
    ERROR("tcpconnlat plugin: %s", STRERROR(status));
    return -1;
  }

  tcpconnlat_dispatch_all(span_s);
  if (conf.interfaces_num > 0)
    tcl_iface_read(interval_s, &conf);

  self.series = tcl_series.live;
  self.requests = tcl_bpf.requests;
  self.notifying = conf.slow_threshold_ns > 0 || conf.notify_failures;
  self.keeps_start = tcl_bpf.keeps_start;
  tcl_notify_totals(&self.notifications_sent, &self.notifications_dropped);
  self.series_expired = tcl_series.expired;
  if (tcl_bpf_prog_stats(&tcl_bpf, &ps) == 0) {
    self.recursion_misses = ps.recursion_misses;
    self.has_run_stats = tcl_bpf.stats_enable_fd >= 0;
    self.run_cnt = ps.run_cnt;
    self.run_time_ns = ps.run_time_ns;
    self.sockops_run_cnt = ps.sockops_run_cnt;
    self.sockops_run_time_ns = ps.sockops_run_time_ns;
  }
  if (tcl_drain_counters(&tcl_drain, tcl_bpf.counters_fd, &counters) == 0) {
    self.read_seconds = CDTIME_T_TO_DOUBLE(cdtime() - begin);
    tcl_dispatch_self(&counters, &self);
  }

  tcl_series_end(&tcl_series, &conf, tcl_bpf.series_fd, tcl_bpf.stats_fd,
                 tcl_bpf.free_ids_fd, &tcl_cur);
  swap = tcl_prev;
  tcl_prev = tcl_cur;
  tcl_cur = swap;
  return 0;
}

static int tcpconnlat_shutdown(void)
{
  tcpconnlat_cleanup();
  return 0;
}

void module_register(void)
{
  plugin_register_complex_config("tcpconnlat", tcpconnlat_config);
  plugin_register_init("tcpconnlat", tcpconnlat_init);
  plugin_register_read("tcpconnlat", tcpconnlat_read);
  plugin_register_shutdown("tcpconnlat", tcpconnlat_shutdown);
}
