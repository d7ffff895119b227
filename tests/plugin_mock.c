/* SPDX-License-Identifier: MIT */
/*
 * The daemon functions the plugin's parts call (config.c, notify.c), so that
 * they run in the unit tests and the fuzz targets without collectd. One mock
 * for both: log lines are kept for inspection and printed unless mock_quiet
 * (a fuzzer runs millions of inputs); they are formatted either way, so that
 * every format string and its arguments run under the sanitizers. The last
 * notification is kept, its meta data as text.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "plugin_mock.h"

char mock_last_log[1024];
int mock_log_count;
bool mock_quiet;

notification_t mock_last_notification;
int mock_notification_count;
mock_meta_t mock_meta[MOCK_MAX_META];
size_t mock_meta_num;

char *hostname_g = "mockhost";

void plugin_log(int level, const char *format, ...)
{
  va_list ap;

  va_start(ap, format);
  vsnprintf(mock_last_log, sizeof(mock_last_log), format, ap);
  va_end(ap);
  mock_log_count++;
  if (!mock_quiet)
    fprintf(stderr, "log[%d]: %s\n", level, mock_last_log);
}

char *sstrncpy(char *dest, const char *src, size_t n)
{
  size_t len;

  if (n == 0)
    return dest;
  len = strnlen(src, n - 1);
  memcpy(dest, src, len);
  dest[len] = '\0';
  return dest;
}

char *sstrerror(int errnum, char *buf, size_t buflen)
{
  snprintf(buf, buflen, "error %d", errnum);
  return buf;
}

cdtime_t cdtime(void)
{
  return 0;
}

int plugin_thread_create(pthread_t *thread, void *(*start_routine)(void *),
                         void *arg, char const *name)
{
  (void)name;
  return pthread_create(thread, NULL, start_routine, arg);
}

static notification_meta_t *mock_meta_append(notification_t *n,
                                             const char *name,
                                             enum notification_meta_type_e t)
{
  notification_meta_t *m = calloc(1, sizeof(*m)), **tail = &n->meta;

  if (m == NULL)
    abort();
  sstrncpy(m->name, name, sizeof(m->name));
  m->type = t;
  while (*tail != NULL)
    tail = &(*tail)->next;
  *tail = m;
  return m;
}

int plugin_notification_meta_add_string(notification_t *n, const char *name,
                                        const char *value)
{
  notification_meta_t *m = mock_meta_append(n, name, NM_TYPE_STRING);

  m->nm_value.nm_string = strdup(value);
  if (m->nm_value.nm_string == NULL)
    abort();
  return 0;
}

int plugin_notification_meta_add_signed_int(notification_t *n, const char *name,
                                            int64_t value)
{
  mock_meta_append(n, name, NM_TYPE_SIGNED_INT)->nm_value.nm_signed_int =
      value;
  return 0;
}

int plugin_notification_meta_add_unsigned_int(notification_t *n,
                                              const char *name, uint64_t value)
{
  mock_meta_append(n, name, NM_TYPE_UNSIGNED_INT)->nm_value.nm_unsigned_int =
      value;
  return 0;
}

int plugin_notification_meta_add_double(notification_t *n, const char *name,
                                        double value)
{
  mock_meta_append(n, name, NM_TYPE_DOUBLE)->nm_value.nm_double = value;
  return 0;
}

int plugin_notification_meta_free(notification_meta_t *n)
{
  while (n != NULL) {
    notification_meta_t *next = n->next;
    if (n->type == NM_TYPE_STRING)
      free((char *)n->nm_value.nm_string);
    free(n);
    n = next;
  }
  return 0;
}

int plugin_dispatch_notification(const notification_t *n)
{
  mock_last_notification = *n;
  mock_last_notification.meta = NULL;
  mock_notification_count++;
  mock_meta_num = 0;
  for (const notification_meta_t *m = n->meta;
       m != NULL && mock_meta_num < MOCK_MAX_META; m = m->next) {
    mock_meta_t *t = &mock_meta[mock_meta_num++];

    sstrncpy(t->name, m->name, sizeof(t->name));
    switch (m->type) {
    case NM_TYPE_STRING:
      snprintf(t->value, sizeof(t->value), "%s", m->nm_value.nm_string);
      break;
    case NM_TYPE_SIGNED_INT:
      snprintf(t->value, sizeof(t->value), "%" PRIi64,
               m->nm_value.nm_signed_int);
      break;
    case NM_TYPE_UNSIGNED_INT:
      snprintf(t->value, sizeof(t->value), "%" PRIu64,
               m->nm_value.nm_unsigned_int);
      break;
    case NM_TYPE_DOUBLE:
      snprintf(t->value, sizeof(t->value), "%g", m->nm_value.nm_double);
      break;
    case NM_TYPE_BOOLEAN:
      snprintf(t->value, sizeof(t->value), "%s",
               m->nm_value.nm_boolean ? "true" : "false");
      break;
    }
  }
  return 0;
}

const char *mock_meta_value(const char *name)
{
  for (size_t i = 0; i < mock_meta_num; i++)
    if (strcmp(mock_meta[i].name, name) == 0)
      return mock_meta[i].value;
  return NULL;
}
