/* SPDX-License-Identifier: MIT */
/*
 * Notifications for slow (SlowThreshold) and failed (NotifyFailures)
 * connects: a thread reads the kernel's ring buffer, which carries only those
 * events, and dispatches each at once as a collectd notification, at most
 * MaxNotificationsPerSecond.
 */
#ifndef TCPCONNLAT_NOTIFY_H
#define TCPCONNLAT_NOTIFY_H

#include <stdint.h>

#include "conf.h"

int tcl_notify_start(const tcl_conf_t *conf, int ringbuf_fd);
void tcl_notify_stop(void);

/* Totals since start, for the self metrics. */
void tcl_notify_totals(uint64_t *sent, uint64_t *dropped);

#endif /* TCPCONNLAT_NOTIFY_H */
