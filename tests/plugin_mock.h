/* SPDX-License-Identifier: MIT */
/* What tests/plugin_mock.c keeps for the unit tests and fuzz targets. */
#ifndef TCPCONNLAT_PLUGIN_MOCK_H
#define TCPCONNLAT_PLUGIN_MOCK_H

#include <stdbool.h>
#include <stddef.h>

extern char mock_last_log[1024];
extern int mock_log_count;
extern bool mock_quiet; /* keep log lines, print none */

/* The last notification dispatched (meta NULL) and its meta data as text. */
#define MOCK_MAX_META 32
typedef struct {
  char name[64];
  char value[256];
} mock_meta_t;
extern notification_t mock_last_notification;
extern int mock_notification_count;
extern mock_meta_t mock_meta[MOCK_MAX_META];
extern size_t mock_meta_num;

/* The value of meta data NAME of the last notification, or NULL. */
const char *mock_meta_value(const char *name);

#endif /* TCPCONNLAT_PLUGIN_MOCK_H */
