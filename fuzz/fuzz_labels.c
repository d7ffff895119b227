/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the label encoding (src/labels.c).
 *
 * tcl_escape_value on arbitrary bytes and output sizes: the output holds
 * only [A-Za-z0-9_-], fits, and reads back (with the README's rules) to the
 * input, or, when the output was too small, to the longest prefix whose
 * escapes fit.
 *
 * tcl_labels_instance on an arbitrary struct tcl_labels, By bits (the eight
 * the README documents), cgroup path, RemoteNetwork names and output size:
 * the instance holds only [A-Za-z0-9_-] and fits. When the whole encoding
 * fits, it reads back left to right to exactly the label set that a
 * reference encoder (written here from the README, independently of
 * labels.c) predicts: the encoding is injective. When it does not fit, the
 * instance is the longest prefix of the complete encoding that ends after a
 * whole label (README: "cut after a whole label value"), followed by
 * "_hash-" and 8 hex digits that do not depend on the output size; it reads
 * back to the first labels of the set, then the hash.
 *
 * Input: [selector:1] then, for the escape target, [outlen:2][bytes...];
 * for the instance target, [struct tcl_labels][by:4][outlen:2][flags:1]
 * [strings, NUL-separated: the cgroup path if flags bit 0, then network
 * names] -- short inputs are zero-padded.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"

#define DOC_BY_BITS 0xffu /* the eight labels the README documents */
#define MAX_NAMES 64

static bool safe(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

static bool is_hex(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* The README's reading of one escaped value, up to the end of the value
 * (the end of the string, or "_" followed by a lowercase letter). Returns
 * the number of input characters consumed, or -1 if malformed. */
static long unescape_value(const char *in, char *out, size_t *outlen)
{
  size_t i = 0, o = 0;

  while (in[i] != '\0') {
    if (in[i] != '_') {
      out[o++] = in[i++];
      continue;
    }
    if (in[i + 1] == '_') {
      out[o++] = '_';
      i += 2;
    } else if (is_hex(in[i + 1]) && is_hex(in[i + 2])) {
      char hex[3] = {in[i + 1], in[i + 2], 0};
      out[o++] = (char)strtol(hex, NULL, 16);
      i += 3;
    } else if (in[i + 1] >= 'a' && in[i + 1] <= 'z') {
      break; /* the next key */
    } else {
      return -1;
    }
  }
  *outlen = o;
  return (long)i;
}

/* ---- tcl_escape_value ------------------------------------------------- */

static void fuzz_escape(const uint8_t *data, size_t size)
{
  size_t outlen, len, n, back_len = 0;
  char *out, *back;
  long used;

  if (size < 2)
    return;
  outlen = ((size_t)data[0] << 8 | data[1]) % 4096;
  data += 2;
  size -= 2;
  len = size;
  out = malloc(outlen ? outlen : 1); /* exact size: ASan sees any overrun */
  back = malloc(len + 1);
  if (out == NULL || back == NULL)
    abort();

  n = tcl_escape_value((const char *)data, len, out, outlen);
  if (outlen == 0) {
    if (n != 0)
      abort();
    goto done;
  }
  if (n >= outlen || strlen(out) != n || !safe(out, n))
    abort();
  used = unescape_value(out, back, &back_len);
  if (used < 0 || (size_t)used != n) /* no key starts inside a value */
    abort();
  if (back_len > len || memcmp(back, data, back_len) != 0)
    abort(); /* always a prefix of the input... */
  if (outlen > 3 * len && back_len != len)
    abort(); /* ...and all of it when there was room */
  if (back_len < len) {
    /* cut only where the next whole escape did not fit */
    unsigned char c = data[back_len];
    size_t need = (c == '_') ? 2
                  : ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '-')
                      ? 1
                      : 3;
    if (n + need < outlen)
      abort();
  }
done:
  free(out);
  free(back);
}

/* ---- tcl_labels_instance ---------------------------------------------- */

struct pair {
  const char *key;
  char value[2048];
  size_t len;
};

/* The README's encoding, as pairs (key, raw value). */
static size_t reference_pairs(const struct tcl_labels *l, uint32_t by,
                              const tcl_label_names_t *names, struct pair *p)
{
  size_t n = 0;
  char text[INET6_ADDRSTRLEN];

#define PAIR(k, ...)                                                           \
  do {                                                                         \
    p[n].key = (k);                                                            \
    p[n].len = (size_t)snprintf(p[n].value, sizeof(p[n].value), __VA_ARGS__);  \
    n++;                                                                       \
  } while (0)

  if (by & TCL_BY_PROCESS) {
    size_t c = strnlen(l->comm, sizeof(l->comm));
    p[n].key = "process";
    memcpy(p[n].value, l->comm, c);
    p[n].len = c;
    n++;
  }
  if (by & TCL_BY_UID)
    PAIR("uid", "%u", (unsigned)l->uid);
  if (by & TCL_BY_CGROUP) {
    if (names->cgroup_path) {
      const char *s = names->cgroup_path;
      while (*s == '/')
        s++;
      PAIR("cgroup", "%s", s);
    } else {
      PAIR("cgroup", "#%llu", (unsigned long long)l->cgroup_id);
    }
  }
  if (by & TCL_BY_NETNS)
    PAIR("netns", "%llu", (unsigned long long)l->netns); /* a cookie: 64 bits */
  if (by & TCL_BY_FAMILY)
    PAIR("family", "%s", l->family == 6 ? "ipv6" : "ipv4");
  if (by & TCL_BY_REMOTE_NETWORK)
    PAIR("remotenetwork", "%s",
         (l->network > 0 && l->network <= names->networks_num)
             ? names->network_names[l->network - 1]
             : "other");
  if (by & TCL_BY_REMOTE_ADDRESS) {
    if (l->family == 4)
      inet_ntop(AF_INET, l->raddr + 12, text, sizeof(text));
    else
      inet_ntop(AF_INET6, l->raddr, text, sizeof(text));
    for (char *s = text; *s; s++)
      if (*s == '.' || *s == ':')
        *s = '-';
    PAIR("remoteaddress", "%s", text);
  }
  if (by & TCL_BY_REMOTE_PORT)
    PAIR("remoteport", "%u", (unsigned)l->rport);
  return n;
#undef PAIR
}

/* Reads an instance back: pairs in order. Returns the count, or -1 if it
 * does not follow the grammar. A trailing "_hash-XXXXXXXX" is returned as a
 * pair with key "hash". */
static long read_instance(const char *s, struct pair *p, size_t max,
                          char keys[][16])
{
  size_t n = 0;

  while (*s != '\0') {
    size_t k = 0, len = 0;
    long used;

    if (n > 0) {
      if (*s != '_')
        return -1;
      s++;
    }
    while (s[k] >= 'a' && s[k] <= 'z' && k < 15)
      k++;
    if (k == 0 || s[k] != '-' || n >= max)
      return -1;
    memcpy(keys[n], s, k);
    keys[n][k] = '\0';
    p[n].key = keys[n];
    s += k + 1;
    used = unescape_value(s, p[n].value, &len);
    if (used < 0)
      return -1;
    p[n].len = len;
    s += used;
    n++;
  }
  return (long)n;
}

static bool pairs_equal(const struct pair *a, const struct pair *b)
{
  return strcmp(a->key, b->key) == 0 && a->len == b->len &&
         memcmp(a->value, b->value, a->len) == 0;
}

static struct pair want[16], got[16];
static char got_keys[16][16];

/* Report what broke, with the instance, then crash (libFuzzer saves the
 * input). */
static void bad(const char *why, const char *instance, size_t outlen)
{
  fprintf(stderr, "fuzz_labels: %s\n  outlen %zu, instance \"%s\"\n", why,
          outlen, instance);
  abort();
}

/* Length of the token of s at i, by the README's reading: "__" and "_XX"
 * are one token, anything else one byte. */
static size_t token_len(const char *s, size_t i)
{
  if (s[i] == '_' && s[i + 1] == '_')
    return 2;
  if (s[i] == '_' && is_hex(s[i + 1]) && is_hex(s[i + 2]))
    return 3;
  return 1;
}

/* May an encoding be cut at pos (0, or the end of a whole label: the end
 * of the string or a "_" that starts the next key)? *next: the next such
 * position, or -1. */
static bool safe_cut(const char *s, size_t pos, size_t *next)
{
  size_t i = 0;
  bool in_key = true, ok = pos == 0;

  *next = (size_t)-1;
  for (;;) {
    bool label_end = false;

    if (s[i] == '\0') {
      label_end = true;
    } else if (in_key) {
      if (s[i] == '-')
        in_key = false;
      i++;
      continue;
    } else if (s[i] == '_' && s[i + 1] != '_' &&
               !(is_hex(s[i + 1]) && is_hex(s[i + 2]))) {
      label_end = true; /* the separator before the next key */
    }
    if (label_end) {
      if (i == pos)
        ok = true;
      else if (i > pos && *next == (size_t)-1)
        *next = i;
      if (s[i] == '\0')
        break;
      in_key = true;
      i++;
      continue;
    }
    i += token_len(s, i);
  }
  return ok;
}

/* The complete encoding reads back to exactly the reference label set. */
static void check_complete(const char *inst, size_t outlen,
                           const struct pair *ref, size_t nref)
{
  long n = read_instance(inst, got, 16, got_keys);

  if (n < 0)
    bad("a complete instance does not read back", inst, outlen);
  if ((size_t)n != nref)
    bad("a complete instance reads back to a different number of labels",
        inst, outlen);
  for (size_t i = 0; i < nref; i++)
    if (!pairs_equal(&got[i], &ref[i]))
      bad("a complete instance reads back to other labels", inst, outlen);
}

static void fuzz_instance(const uint8_t *data, size_t size)
{
  struct tcl_labels l;
  uint8_t buf[sizeof(struct tcl_labels) + 7];
  char strings[4096 + 1];
  const char *names_v[MAX_NAMES];
  tcl_label_names_t names = {.network_names = names_v};
  uint32_t by;
  size_t outlen, slen, n, nref, off, full;
  char *out, *big;
  uint8_t flags;

  memset(buf, 0, sizeof(buf));
  memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
  memcpy(&l, buf, sizeof(l));
  memcpy(&by, buf + sizeof(l), 4);
  by &= DOC_BY_BITS;
  outlen = ((size_t)buf[sizeof(l) + 4] << 8 | buf[sizeof(l) + 5]) % 400;
  flags = buf[sizeof(l) + 6];

  /* the strings: cgroup path (flags bit 0), then network names */
  off = size > sizeof(buf) ? sizeof(buf) : size;
  slen = size - off;
  if (slen > sizeof(strings) - 1)
    slen = sizeof(strings) - 1;
  memcpy(strings, data + off, slen);
  strings[slen] = '\0';
  {
    const char *s = strings, *end = strings + slen;
    names.cgroup_path = (flags & 1) ? s : NULL;
    if (flags & 1)
      s += strlen(s) + 1;
    while (s <= end && names.networks_num < MAX_NAMES) {
      names_v[names.networks_num++] = s;
      s += strlen(s) + 1;
    }
  }

  out = malloc(outlen ? outlen : 1); /* exact size: ASan sees any overrun */
  big = malloc(8192);
  if (out == NULL || big == NULL)
    abort();
  nref = reference_pairs(&l, by, &names, want);
  full = tcl_labels_instance(&l, by, &names, big, 8192);
  if (full >= 8192 || strlen(big) != full || !safe(big, full))
    bad("the complete instance is not safe", big, 8192);
  if (full <= 1000) /* below every internal buffer of labels.c */
    check_complete(big, 8192, want, nref);

  n = tcl_labels_instance(&l, by, &names, out, outlen);
  if (outlen == 0)
    goto done;
  if (n >= outlen || strlen(out) != n || !safe(out, n))
    bad("the instance does not fit or has unsafe characters", out, outlen);

  if (full < outlen) {
    /* it fitted: the complete encoding, reading back to the label set */
    if (n != full || memcmp(out, big, n) != 0)
      bad("an instance that fits differs from the complete one", out, outlen);
    check_complete(out, outlen, want, nref);
  } else if (n > 0) {
    /* too long: whole labels of the complete encoding, as many as fit
     * (never part of a value, a key or an escape), then the
     * hash as a label of its own, "_hash-XXXXXXXX", or "hash-XXXXXXXX"
     * alone when no label fits; the hash does not depend on the cut */
    size_t keep, next;
    char again[400];

    if (n < 13 || memcmp(out + n - 13, "hash-", 5) != 0 ||
        strspn(out + n - 8, "0123456789abcdef") != 8)
      bad("a cut instance does not end in hash-XXXXXXXX", out, outlen);
    keep = n - 13;
    if (keep > 0) {
      if (out[keep - 1] != '_')
        bad("a cut instance has no separator before its hash", out, outlen);
      keep--;
    }
    if (memcmp(out, big, keep) != 0)
      bad("a cut instance is not a prefix of the complete one", out, outlen);
    if (!safe_cut(big, keep, &next))
      bad("a cut instance keeps part of a label", out, outlen);
    if (next != (size_t)-1 && next + 14 < outlen)
      bad("a cut instance keeps less than fits", out, outlen);
    if (outlen > 40) {
      size_t m = tcl_labels_instance(&l, by, &names, again, outlen - 1);
      if (m < 8 || memcmp(again + m - 8, out + n - 8, 8) != 0)
        bad("the hash depends on the output size", out, outlen);
    }
    /* The README's left-to-right reading finds the hash as the last label. */
    {
      long g = read_instance(out, got, 16, got_keys);
      if (g < 1 || strcmp(got[g - 1].key, "hash") != 0 || got[g - 1].len != 8)
        bad("a cut instance does not read back with its hash last", out,
            outlen);
      for (long k = 0; k + 1 < g; k++)
        if ((size_t)k >= nref || !pairs_equal(&got[k], &want[k]))
          bad("a cut instance reads back to other labels than the set's "
              "first ones", out, outlen);
    }
  } else if (outlen > 15) {
    bad("an empty instance although the hash would fit", out, outlen);
  }
done:
  free(out);
  free(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (data[0] & 1)
    fuzz_escape(data + 1, size - 1);
  else
    fuzz_instance(data + 1, size - 1);
  return 0;
}
