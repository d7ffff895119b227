/* SPDX-License-Identifier: MIT */
/*
 * Passive mode on an interface (Interface NAME): TC classifiers pair each
 * SYN with its SYN-ACK on the named interfaces, so that handshakes the host
 * only forwards or bridges are measured too. See bpf/iface.bpf.c.
 *
 * Series: plugin instance "iface-<name>-<in|out>", by the direction of the
 * SYN: "out" (the SYN left through the interface) is the latency of
 * whatever answers beyond it; "in" (the SYN came in) is the response time
 * of this side. Each has the histogram values of every series (percentiles,
 * average, max, buckets, total_connections-established) plus the counters
 * total_connections-{syn,syn_retransmit,unanswered,ambiguous},
 * derive-{evictions,synack_unmatched,stats_dropped} and gauge-pending.
 */
#ifndef TCPCONNLAT_IFACE_H
#define TCPCONNLAT_IFACE_H

#include <stddef.h>

#include "conf.h"

/*
 * Loads the TC programs and attaches them to ingress and egress of each
 * named interface (in collectd's network namespace), ahead of everything
 * else there: tcx links where the kernel has tcx and `how` allows it, else
 * TC filters at the lowest free priority, creating the clsact qdisc where
 * there is none. On failure everything created is removed again and errbuf
 * holds one sentence saying why.
 */
int tcl_iface_start(const char *const *names, size_t n,
                    tcl_iface_attach_t how, char *errbuf, size_t errlen);

/* Drains the maps and dispatches every interface series. */
int tcl_iface_read(double interval_s, const tcl_conf_t *conf);

/*
 * Detaches exactly the links and filters tcl_iface_start attached, removes a clsact
 * qdisc only if the plugin created it and no other filter uses it, and
 * frees everything. Idempotent.
 */
void tcl_iface_stop(void);

#endif /* TCPCONNLAT_IFACE_H */
