/* SPDX-License-Identifier: MIT */
/*
 * The daemon functions config.c calls, for the fuzz targets: like
 * tests/plugin_mock.c, but quiet (a fuzzer runs millions of inputs). The
 * message is still formatted, so that every format string and its
 * arguments are exercised under the sanitizers.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

char fuzz_last_log[1024];

void plugin_log(int level, const char *format, ...)
{
  va_list ap;

  (void)level;
  va_start(ap, format);
  vsnprintf(fuzz_last_log, sizeof(fuzz_last_log), format, ap);
  va_end(ap);
}

char *sstrncpy(char *dest, const char *src, size_t n)
{
  strncpy(dest, src, n);
  if (n > 0)
    dest[n - 1] = '\0';
  return dest;
}
