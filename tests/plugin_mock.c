/* SPDX-License-Identifier: MIT */
/*
 * The few daemon functions config.c calls, so that the configuration parser
 * runs in a unit test without collectd. Log lines are kept for inspection.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

char mock_last_log[1024];
int mock_log_count;

void plugin_log(int level, const char *format, ...)
{
  va_list ap;

  va_start(ap, format);
  vsnprintf(mock_last_log, sizeof(mock_last_log), format, ap);
  va_end(ap);
  mock_log_count++;
  fprintf(stderr, "log[%d]: %s\n", level, mock_last_log);
}

char *sstrncpy(char *dest, const char *src, size_t n)
{
  strncpy(dest, src, n);
  if (n > 0)
    dest[n - 1] = '\0';
  return dest;
}
