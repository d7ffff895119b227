/* SPDX-License-Identifier: MIT */
#include "labels.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const tcl_reason_names[TCL_NREASONS] = {
    [TCL_REASON_REFUSED] = "refused",
    [TCL_REASON_TIMEOUT] = "timeout",
    [TCL_REASON_UNREACHABLE] = "unreachable",
    [TCL_REASON_ABORTED] = "aborted",
    [TCL_REASON_OTHER] = "other",
    [TCL_REASON_LOCAL] = "local",
};

const char *tcl_reason_name(uint32_t reason)
{
  return reason < TCL_NREASONS ? tcl_reason_names[reason]
                               : tcl_reason_names[TCL_REASON_OTHER];
}

static bool tcl_safe_byte(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-';
}

size_t tcl_escape_value(const char *in, size_t len, char *out, size_t outlen)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;

  if (outlen == 0)
    return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    char piece[3];
    size_t n;

    if (tcl_safe_byte(c)) {
      piece[0] = (char)c;
      n = 1;
    } else if (c == '_') {
      piece[0] = piece[1] = '_';
      n = 2;
    } else {
      piece[0] = '_';
      piece[1] = hex[c >> 4];
      piece[2] = hex[c & 0xf];
      n = 3;
    }
    if (o + n >= outlen)
      break; /* whole escapes only */
    memcpy(out + o, piece, n);
    o += n;
  }
  out[o] = '\0';
  return o;
}

#define TCL_FNV_OFFSET_BASIS 2166136261u
#define TCL_FNV_PRIME 16777619u

/* 32-bit FNV-1a, continued from h */
static uint32_t tcl_hash(uint32_t h, const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= TCL_FNV_PRIME;
  }
  return h;
}

typedef struct {
  char *buf;
  size_t len;
  size_t cap;
  uint32_t hash; /* of every key and raw value, so never of a cut string */
} tcl_strbuf_t;

static void tcl_append(tcl_strbuf_t *b, const char *s, size_t n)
{
  if (b->len + n >= b->cap)
    n = b->cap - 1 - b->len;
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

static void tcl_pair(tcl_strbuf_t *b, const char *key, const char *value,
                     size_t vlen, bool escape)
{
  char esc[1024];

  b->hash = tcl_hash(b->hash, key, strlen(key) + 1);
  b->hash = tcl_hash(b->hash, value, vlen);
  b->hash = tcl_hash(b->hash, "", 1);
  if (b->len > 0)
    tcl_append(b, "_", 1);
  tcl_append(b, key, strlen(key));
  tcl_append(b, "-", 1);
  if (escape) {
    size_t n = tcl_escape_value(value, vlen, esc, sizeof(esc));
    tcl_append(b, esc, n);
  } else {
    tcl_append(b, value, vlen);
  }
}

/* The IPv4 address inside an IPv4-mapped IPv6 one (::ffff:a.b.c.d). */
#define TCL_V4_MAPPED_OFFSET 12

void tcl_address_format(const uint8_t addr[16], uint8_t family, char *out,
                        size_t outlen)
{
  if (family == 4)
    inet_ntop(AF_INET, addr + TCL_V4_MAPPED_OFFSET, out, (socklen_t)outlen);
  else
    inet_ntop(AF_INET6, addr, out, (socklen_t)outlen);
}

/* An address as text, with "-" for "." and ":" (never escaped). */
static void tcl_address_text(const uint8_t raddr[16], uint8_t family,
                             char *out, size_t outlen)
{
  char text[INET6_ADDRSTRLEN];

  tcl_address_format(raddr, family, text, sizeof(text));
  for (char *p = text; *p; p++)
    if (*p == '.' || *p == ':')
      *p = '-';
  snprintf(out, outlen, "%s", text);
}

/*
 * Where an encoding may be cut before "_hash-...": after the last whole
 * label (KEY-VALUE) that ends at or before max, found by reading it as a
 * reader would (a key up to "-", then value tokens: a character, "__" or
 * "_XX", until a "_" that starts the next key). Never inside a value: a cut
 * cgroup path would read back as another, shorter path. 0 when not even
 * the first label fits.
 */
static size_t tcl_label_boundary(const char *s, size_t max)
{
  size_t i = 0, last = 0;
  bool in_key = true;

  while (s[i] != '\0') {
    if (in_key) {
      if (s[i] == '-')
        in_key = false;
      i++;
    } else if (s[i] != '_') {
      i++;
    } else if (s[i + 1] == '_') {
      i += 2;
    } else if ((s[i + 1] >= '0' && s[i + 1] <= '9') ||
               (s[i + 1] >= 'A' && s[i + 1] <= 'F')) {
      i += 3;
    } else {
      if (i <= max)
        last = i; /* a label ends before the separator */
      in_key = true;
      i++;
    }
  }
  if (i <= max)
    last = i;
  return last;
}

size_t tcl_labels_instance(const struct tcl_labels *l, uint32_t by,
                           const tcl_label_names_t *names, char *out,
                           size_t outlen)
{
  char full[2048], value[256];
  tcl_strbuf_t b = {
      .buf = full, .len = 0, .cap = sizeof(full), .hash = TCL_FNV_OFFSET_BASIS};
  size_t comm_len;

  full[0] = '\0';
  if (by & TCL_BY_PROCESS) {
    comm_len = strnlen(l->comm, sizeof(l->comm));
    tcl_pair(&b, "process", l->comm, comm_len, true);
  }
  if (by & TCL_BY_UID) {
    snprintf(value, sizeof(value), "%u", (unsigned)l->uid);
    tcl_pair(&b, "uid", value, strlen(value), false);
  }
  if (by & TCL_BY_CGROUP) {
    if (names && names->cgroup_path) {
      const char *p = names->cgroup_path;
      while (*p == '/')
        p++; /* the root is implied */
      tcl_pair(&b, "cgroup", p, strlen(p), true);
    } else {
      /* not found under the cgroup mount (already gone): its id */
      snprintf(value, sizeof(value), "#%llu", (unsigned long long)l->cgroup_id);
      tcl_pair(&b, "cgroup", value, strlen(value), true);
    }
  }
  if (by & TCL_BY_NETNS) {
    snprintf(value, sizeof(value), "%llu", (unsigned long long)l->netns);
    tcl_pair(&b, "netns", value, strlen(value), false);
  }
  if (by & TCL_BY_FAMILY) {
    const char *f = l->family == 6 ? "ipv6" : "ipv4";
    tcl_pair(&b, "family", f, strlen(f), false);
  }
  if (by & TCL_BY_REMOTE_NETWORK) {
    const char *n = "other";
    if (l->network > 0 && names && l->network <= names->networks_num)
      n = names->network_names[l->network - 1];
    tcl_pair(&b, "remotenetwork", n, strlen(n), true);
  }
  if (by & TCL_BY_REMOTE_ADDRESS) {
    tcl_address_text(l->raddr, l->family, value, sizeof(value));
    tcl_pair(&b, "remoteaddress", value, strlen(value), false);
  }
  if (by & TCL_BY_REMOTE_PORT) {
    snprintf(value, sizeof(value), "%u", (unsigned)l->rport);
    tcl_pair(&b, "remoteport", value, strlen(value), false);
  }

  if (b.len < outlen) {
    memcpy(out, full, b.len + 1);
    return b.len;
  }
  /* Too long: keep whole labels, then "_hash-XXXXXXXX" (14 bytes), a label
   * of its own; just "hash-XXXXXXXX" when not even one label fits. */
  {
    char suffix[32];
    size_t keep, slen;

    snprintf(suffix, sizeof(suffix), "_hash-%08x", b.hash);
    slen = strlen(suffix);
    if (outlen <= slen) {
      out[0] = '\0';
      return 0;
    }
    keep = tcl_label_boundary(full, outlen - 1 - slen);
    if (keep == 0) {
      memcpy(out, suffix + 1, slen);
      return slen - 1;
    }
    memcpy(out, full, keep);
    memcpy(out + keep, suffix, slen + 1);
    return keep + slen;
  }
}
