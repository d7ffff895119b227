/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the notification of a slow or failed connect
 * (src/notify.c, the daemon mocked by tests/plugin_mock.c).
 *
 * Input: a struct tcl_event as the kernel would hand it over, every field
 * arbitrary (zero-padded when short). Checked: the message and every meta
 * value hold printable ASCII only, so no process name or other field can
 * forge a line in a log or a header of the exec plugin; the "comm" meta
 * value holds only [A-Za-z0-9_-] and reads back, with the README's rules
 * for label values, to exactly the process name the kernel reported (up to
 * its first NUL byte, at most 16 bytes).
 */
#include "notify.c" /* the static functions under test */

#include "plugin_mock.h"

static bool printable(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      return false;
  return true;
}

static int hex_digit(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The README's reading of one label value; -1 if malformed. */
static long unescape(const char *in, char *out, size_t outcap)
{
  size_t o = 0;

  for (size_t i = 0; in[i]; i++) {
    unsigned char c = (unsigned char)in[i];

    if (o == outcap)
      return -1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-') {
      out[o++] = (char)c;
    } else if (c == '_' && in[i + 1] == '_') {
      out[o++] = '_';
      i++;
    } else if (c == '_' && hex_digit(in[i + 1]) >= 0 &&
               hex_digit(in[i + 2]) >= 0) {
      out[o++] = (char)(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2]));
      i += 2;
    } else {
      return -1;
    }
  }
  return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct tcl_event e;
  char raw[sizeof(e.comm)];
  const char *comm;
  long n;

  mock_quiet = true;
  memset(&e, 0, sizeof(e));
  memcpy(&e, data, size < sizeof(e) ? size : sizeof(e));
  mock_notification_count = 0;
  tcl_notify_event(&e);
  if (mock_notification_count != 1)
    abort();
  if (!printable(mock_last_notification.message))
    abort();
  for (size_t i = 0; i < mock_meta_num; i++)
    if (!printable(mock_meta[i].value))
      abort();
  comm = mock_meta_value("comm");
  if (comm == NULL)
    abort();
  n = unescape(comm, raw, sizeof(raw));
  if (n < 0 || (size_t)n != strnlen(e.comm, sizeof(e.comm)) ||
      memcmp(raw, e.comm, (size_t)n) != 0)
    abort();
  if (strstr(mock_last_notification.message, comm) == NULL)
    abort();
  return 0;
}
