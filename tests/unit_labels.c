/* SPDX-License-Identifier: MIT */
/* Label encoding: safe characters only, one reading only, hostile input. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "unit.h"

static bool only_safe(const char *s)
{
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

/* The reverse of tcl_escape_value, as a reader of the documented format
 * would write it; returns -1 on a malformed escape. */
static int unescape(const char *in, char *out, size_t *outlen)
{
  size_t o = 0;

  for (size_t i = 0; in[i]; i++) {
    if (in[i] != '_') {
      out[o++] = in[i];
      continue;
    }
    if (in[i + 1] == '_') {
      out[o++] = '_';
      i++;
      continue;
    }
    if (!in[i + 1] || !in[i + 2])
      return -1;
    char hex[3] = {in[i + 1], in[i + 2], 0};
    char *end;
    long v = strtol(hex, &end, 16);
    if (*end || !((hex[0] >= '0' && hex[0] <= '9') ||
                  (hex[0] >= 'A' && hex[0] <= 'F')))
      return -1;
    out[o++] = (char)v;
    i += 2;
  }
  *outlen = o;
  return 0;
}

static void check_roundtrip(const char *in, size_t len)
{
  char esc[1024], back[512];
  size_t n = 0;

  tcl_escape_value(in, len, esc, sizeof(esc));
  CHECK(only_safe(esc));
  CHECK(unescape(esc, back, &n) == 0);
  CHECK_EQ_U64(n, len);
  CHECK(memcmp(back, in, len) == 0);
}

static void test_escape_hostile(void)
{
  static const char *const inputs[] = {
      "curl", "systemd-resolve", "kworker/u8:2", "a b", "a.b", "a_b", "a__b",
      "_", "__", "\"quoted\"", "'single'", "semi;colon", "com,ma", "eq=ual",
      "tab\there", "new\nline", "\x01\x02\x7f", "caf\xc3\xa9", "\xff\xfe",
      "/system.slice/nginx.service", "..", "-", "_2F", "_ab", "UPPER_CASE",
  };
  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
    check_roundtrip(inputs[i], strlen(inputs[i]));

  /* every byte value */
  char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (char)i;
  check_roundtrip(all, sizeof(all));

  /* distinct inputs stay distinct */
  char a[64], b[64];
  tcl_escape_value("a b", 3, a, sizeof(a));
  tcl_escape_value("a_20b", 5, b, sizeof(b));
  CHECK(strcmp(a, b) != 0);
  tcl_escape_value("a_b", 3, a, sizeof(a));
  tcl_escape_value("a b", 3, b, sizeof(b));
  CHECK(strcmp(a, b) != 0);
}

static void test_escape_truncates_whole(void)
{
  char out[6];
  /* "a/b/c" -> "a_2Fb_2Fc"; 5 bytes of room hold "a_2Fb" */
  size_t n = tcl_escape_value("a/b/c", 5, out, sizeof(out));
  CHECK_EQ_U64(n, 5);
  CHECK(strcmp(out, "a_2Fb") == 0);
  n = tcl_escape_value("//", 2, out, 5);
  CHECK_EQ_U64(n, 3);
  CHECK(strcmp(out, "_2F") == 0);
}

static void test_instance_format(void)
{
  struct tcl_labels l = {0};
  const char *nets[] = {"dc1", "the internet"};
  tcl_label_names_t names = {.network_names = nets, .networks_num = 2,
                             .cgroup_path = "/system.slice/nginx.service"};
  char out[128];

  strcpy(l.comm, "curl");
  l.uid = 1000;
  l.rport = 443;
  l.family = 4;
  l.raddr[10] = l.raddr[11] = 0xff;
  l.raddr[12] = 10;
  l.raddr[15] = 7;
  l.netns = 4026531840u;
  l.network = 2;

  tcl_labels_instance(&l, TCL_BY_PROCESS, &names, out, sizeof(out));
  CHECK(strcmp(out, "process-curl") == 0);

  tcl_labels_instance(&l, TCL_BY_REMOTE_PORT | TCL_BY_PROCESS | TCL_BY_UID,
                      &names, out, sizeof(out));
  CHECK(strcmp(out, "process-curl_uid-1000_remoteport-443") == 0);

  tcl_labels_instance(&l, TCL_BY_CGROUP | TCL_BY_FAMILY | TCL_BY_NETNS, &names,
                      out, sizeof(out));
  CHECK(strcmp(out, "cgroup-system_2Eslice_2Fnginx_2Eservice_netns-4026531840_"
                    "family-ipv4") == 0);

  tcl_labels_instance(&l, TCL_BY_REMOTE_ADDRESS | TCL_BY_REMOTE_NETWORK,
                      &names, out, sizeof(out));
  CHECK(strcmp(out, "remotenetwork-the_20internet_remoteaddress-10-0-0-7") ==
        0);

  /* IPv6 */
  memset(l.raddr, 0, sizeof(l.raddr));
  l.raddr[0] = 0xfd;
  l.raddr[15] = 1;
  l.family = 6;
  l.network = 0;
  tcl_labels_instance(&l, TCL_BY_REMOTE_ADDRESS | TCL_BY_REMOTE_NETWORK |
                              TCL_BY_FAMILY,
                      &names, out, sizeof(out));
  CHECK(strcmp(out, "family-ipv6_remotenetwork-other_remoteaddress-fd00--1") ==
        0);

  /* unknown cgroup: its id */
  names.cgroup_path = NULL;
  l.cgroup_id = 1234;
  tcl_labels_instance(&l, TCL_BY_CGROUP, &names, out, sizeof(out));
  CHECK(strcmp(out, "cgroup-_231234") == 0);

  /* hostile comm: 15 bytes of anything, no NUL inside */
  memcpy(l.comm, "a.b c/d\"e'f\x01\xff_~", 15);
  l.comm[15] = '\0';
  tcl_labels_instance(&l, TCL_BY_PROCESS, &names, out, sizeof(out));
  CHECK(only_safe(out));
  CHECK(strncmp(out, "process-", 8) == 0);
  {
    char back[64];
    size_t n;
    CHECK(unescape(out + 8, back, &n) == 0);
    CHECK_EQ_U64(n, 15);
    CHECK(memcmp(back, l.comm, 15) == 0);
  }
  /* a comm that fills all 16 bytes without NUL is bounded */
  memset(l.comm, 'x', 16);
  tcl_labels_instance(&l, TCL_BY_PROCESS, &names, out, sizeof(out));
  CHECK_EQ_U64(strlen(out), 8 + 16);
}

static void test_instance_too_long(void)
{
  struct tcl_labels l = {0};
  char longpath[1024], out[128], out2[128];
  tcl_label_names_t names = {.cgroup_path = longpath};

  for (size_t i = 0; i < sizeof(longpath) - 1; i++)
    longpath[i] = (i % 10 == 0) ? '/' : 'a' + (char)(i % 7);
  longpath[sizeof(longpath) - 1] = '\0';
  size_t n = tcl_labels_instance(&l, TCL_BY_CGROUP | TCL_BY_UID, &names, out,
                                 sizeof(out));
  CHECK(n < sizeof(out));
  CHECK_EQ_U64(strlen(out), n);
  CHECK(only_safe(out));
  CHECK(strstr(out, "_hash-") != NULL);
  CHECK_EQ_U64(strlen(strstr(out, "_hash-")), 14);
  /* the cgroup label does not fit whole: only the uid before the hash */
  CHECK(strncmp(out, "uid-0_hash-", 11) == 0);
  /* a different long path gives a different instance */
  longpath[900] = 'Z';
  tcl_labels_instance(&l, TCL_BY_CGROUP | TCL_BY_UID, &names, out2,
                      sizeof(out2));
  CHECK(strcmp(out, out2) != 0);
}

/* Reads an instance by the documented rules; false if it does not parse. */
static bool parses(const char *s)
{
  size_t i = 0;

  while (s[i]) {
    size_t k = i;
    while (s[i] >= 'a' && s[i] <= 'z')
      i++;
    if (i == k || s[i] != '-')
      return false; /* a key of lowercase letters, then "-" */
    i++;
    while (s[i]) {
      if (s[i] != '_') {
        i++;
      } else if (s[i + 1] == '_') {
        i += 2;
      } else if ((s[i + 1] >= '0' && s[i + 1] <= '9') ||
                 (s[i + 1] >= 'A' && s[i + 1] <= 'F')) {
        if (!s[i + 2])
          return false;
        i += 3;
      } else {
        i++; /* the next key */
        break;
      }
    }
  }
  return true;
}

static void test_truncation_keeps_labels_whole(void)
{
  /* every cgroup path length around the limit, with keys after the cgroup
   * so that a cut can fall inside a key or just after a separator */
  for (size_t len = 80; len < 140; len++) {
    struct tcl_labels l = {0};
    char path[256], out[128];
    tcl_label_names_t names = {.cgroup_path = path};
    const char *h;

    for (size_t i = 0; i < len; i++)
      path[i] = (i % 9 == 4) ? '.' : 'a' + (char)(i % 5);
    path[len] = '\0';
    l.uid = 1000;
    l.netns = 4026531840u;
    tcl_labels_instance(&l, TCL_BY_UID | TCL_BY_CGROUP | TCL_BY_NETNS, &names,
                        out, sizeof(out));
    CHECK(parses(out));
    h = strstr(out, "_hash-");
    if (strlen(out) >= 127 - 14)
      CHECK(h != NULL && strlen(h) == 14 && h[-1] != '_');
    if (!parses(out))
      fprintf(stderr, "  len %zu: %s\n", len, out);
  }
}

/* README: an instance too long for collectd keeps its start "cut after a
 * whole label value": never part of a value, which would read back as
 * another value (a shorter cgroup path). */
static void test_truncation_cuts_after_whole_label(void)
{
  struct tcl_labels l = {.uid = 1000, .netns = 4026531840u};
  char path[256], out[128], full[2048];
  tcl_label_names_t names = {.cgroup_path = path};
  uint32_t by = TCL_BY_PROCESS | TCL_BY_UID | TCL_BY_CGROUP | TCL_BY_NETNS;
  const char *h;

  memcpy(l.comm, "curl", 4);
  /* the cgroup does not fit: the labels before it stay, then the hash */
  memset(path, 'a', 150);
  path[150] = '\0';
  tcl_labels_instance(&l, by, &names, out, sizeof(out));
  h = strstr(out, "_hash-");
  CHECK(h != NULL && strlen(h) == 14);
  CHECK(h != NULL && (size_t)(h - out) == strlen("process-curl_uid-1000") &&
        strncmp(out, "process-curl_uid-1000_hash-", 27) == 0);

  /* it fits, the netns after it does not: the whole cgroup stays (29 bytes
   * before the path, 17 of netns, 14 of hash, 127 at most) */
  memset(path, 'a', 82);
  path[82] = '\0';
  tcl_labels_instance(&l, by, &names, out, sizeof(out));
  tcl_labels_instance(&l, by, &names, full, sizeof(full));
  h = strstr(out, "_hash-");
  CHECK(h != NULL && strlen(h) == 14);
  CHECK(h != NULL && strncmp(full, out, (size_t)(h - out)) == 0 &&
        strncmp(full + (h - out), "_netns-", 7) == 0);

  /* every length around the limit: what stays before the hash is the
   * complete encoding up to the end of a label */
  for (size_t len = 60; len < 140; len++) {
    for (size_t i = 0; i < len; i++)
      path[i] = (i % 9 == 4) ? '.' : 'a' + (char)(i % 5);
    path[len] = '\0';
    tcl_labels_instance(&l, by, &names, out, sizeof(out));
    tcl_labels_instance(&l, by, &names, full, sizeof(full));
    h = strstr(out, "_hash-");
    if (h == NULL) {
      CHECK(strcmp(out, full) == 0);
      continue;
    }
    CHECK(strncmp(full, out, (size_t)(h - out)) == 0);
    CHECK(full[h - out] == '_' && full[h - out + 1] >= 'a' &&
          full[h - out + 1] <= 'z');
  }
}

int main(void)
{
  RUN_TEST(test_truncation_cuts_after_whole_label);
  RUN_TEST(test_truncation_keeps_labels_whole);
  RUN_TEST(test_escape_hostile);
  RUN_TEST(test_escape_truncates_whole);
  RUN_TEST(test_instance_format);
  RUN_TEST(test_instance_too_long);
  UNIT_END();
}
