/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the <Plugin tcpconnlat> parser (src/config.c).
 *
 * The input is read like the inside of a collectd <Plugin> block: one option
 * per line, "Key value value ...". A value is a "quoted string" (backslash
 * escapes \" and \\), true/false/yes/no/on/off (a boolean), something
 * strtod() reads completely (a number: also nan, inf, 0x1p3, 1e999), or
 * else an unquoted string. A line "@N Key values..." stands for N lines
 * (N <= 300) whose numbers grow by 1 and whose strings get 1, 2, ...
 * appended from the second copy on, so that the fuzzer reaches the limits
 * (32 percentiles, 64 buckets, 256 CIDRs...) that need many distinct lines.
 * The tree is handed to tcl_conf_parse and tcl_conf_finish exactly as
 * collectd would hand it over.
 *
 * Checked: no sanitizer report, tcl_conf_parse returns 0 (a non-zero
 * return stops collectd 5.12 entirely), an error message is NUL-terminated,
 * and whatever was accepted stays within the documented bounds.
 */
#include "collectd.h"

#include "plugin.h"

#include "conf.h"
#include "plugin_mock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MAX_CHILDREN 2048
#define FUZZ_MAX_REPEAT 300
#define FUZZ_MAX_VALUES 128

static tcl_conf_t conf;

/* One token from *p (not past end); returns a malloc'd string or NULL at
 * the end of the line. *quoted says whether it was a quoted string. */
static char *next_token(const char **p, const char *end, int *quoted)
{
  const char *s = *p;
  char *tok;
  size_t n = 0;

  while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
    s++;
  if (s >= end || *s == '\n') {
    *p = s;
    return NULL;
  }
  tok = malloc((size_t)(end - s) + 1);
  if (tok == NULL)
    abort();
  *quoted = (*s == '"');
  if (*quoted) {
    s++;
    while (s < end && *s != '"' && *s != '\n') {
      if (*s == '\\' && s + 1 < end && s[1] != '\n')
        s++;
      tok[n++] = *s++;
    }
    if (s < end && *s == '"')
      s++;
  } else {
    while (s < end && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
      tok[n++] = *s++;
  }
  tok[n] = '\0';
  *p = s;
  return tok;
}

static void set_value(oconfig_value_t *v, char *tok, int quoted)
{
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  char *endp;
  double d;

  if (!quoted) {
    for (size_t i = 0; i < 3; i++) {
      if (strcasecmp(tok, yes[i]) == 0 || strcasecmp(tok, no[i]) == 0) {
        v->type = OCONFIG_TYPE_BOOLEAN;
        v->value.boolean = strcasecmp(tok, yes[i]) == 0;
        free(tok);
        return;
      }
    }
    d = strtod(tok, &endp);
    if (endp != tok && *endp == '\0') {
      v->type = OCONFIG_TYPE_NUMBER;
      v->value.number = d;
      free(tok);
      return;
    }
  }
  v->type = OCONFIG_TYPE_STRING;
  v->value.string = tok;
}

/* Copy number k of a repeated line: numbers + k, strings with k appended. */
static void copy_child(oconfig_item_t *dst, const oconfig_item_t *src, long k)
{
  dst->key = strdup(src->key);
  dst->values = calloc(src->values_num ? (size_t)src->values_num : 1,
                       sizeof(oconfig_value_t));
  if (dst->key == NULL || dst->values == NULL)
    abort();
  dst->parent = src->parent;
  dst->values_num = src->values_num;
  for (int j = 0; j < src->values_num; j++) {
    dst->values[j] = src->values[j];
    if (src->values[j].type == OCONFIG_TYPE_NUMBER) {
      dst->values[j].value.number += (double)k;
    } else if (src->values[j].type == OCONFIG_TYPE_STRING) {
      size_t len = strlen(src->values[j].value.string);
      char *s = malloc(len + 24);
      if (s == NULL)
        abort();
      snprintf(s, len + 24, "%s%ld", src->values[j].value.string, k);
      dst->values[j].value.string = s;
    }
  }
}

static void free_tree(oconfig_item_t *block)
{
  for (int i = 0; i < block->children_num; i++) {
    oconfig_item_t *c = &block->children[i];
    for (int j = 0; j < c->values_num; j++)
      if (c->values[j].type == OCONFIG_TYPE_STRING)
        free(c->values[j].value.string);
    free(c->values);
    free(c->key);
  }
  free(block->children);
}

/* Entries of the one kernel table two port keys fill together. */
static size_t distinct_ports(const uint16_t *a, size_t an, const uint16_t *b,
                             size_t bn)
{
  static uint8_t seen[65536];
  size_t n = 0;

  memset(seen, 0, sizeof(seen));
  for (size_t i = 0; i < an + bn; i++) {
    uint16_t port = i < an ? a[i] : b[i - an];
    if (!seen[port]) {
      seen[port] = 1;
      n++;
    }
  }
  return n;
}

static void check_bounds(const tcl_conf_t *c)
{
  if (memchr(c->error, '\0', sizeof(c->error)) == NULL)
    abort();
  if (c->error[0] != '\0')
    return; /* the plugin refuses to start: nothing else matters */
  if (c->percentiles_num == 0 || c->percentiles_num > TCL_MAX_PERCENTILES)
    abort();
  for (size_t i = 0; i < c->percentiles_num; i++)
    if (!(c->percentiles[i] > 0 && c->percentiles[i] < 100))
      abort();
  if (c->buckets_num == 0 || c->buckets_num > TCL_MAX_BUCKETS)
    abort();
  for (size_t i = 0; i < c->buckets_num; i++)
    if (!(c->buckets[i].lo_ns < c->buckets[i].hi_ns))
      abort();
  if (c->max_inflight < 1 || c->max_inflight > TCL_MAX_MAX_INFLIGHT)
    abort();
  if (c->max_series < 1 || c->max_series > TCL_MAX_MAX_SERIES)
    abort();
  if (c->pids_num > TCL_MAX_SET || c->uids_num > TCL_MAX_SET ||
      c->comms_num > TCL_MAX_SET || c->cgroups_num > TCL_MAX_CGROUP_FILTERS ||
      distinct_ports(c->rports, c->rports_num, c->ignore_rports,
                     c->ignore_rports_num) > TCL_MAX_PORTS ||
      distinct_ports(c->lports, c->lports_num, c->ignore_lports,
                     c->ignore_lports_num) > TCL_MAX_PORTS ||
      c->networks_num > TCL_MAX_NETWORKS || c->cidrs_num > TCL_MAX_CIDRS)
    abort();
  for (size_t i = 0; i < c->cidrs_num; i++)
    if (c->cidrs[i].prefixlen > 128 || c->cidrs[i].network >= c->networks_num)
      abort();
  for (size_t i = 0; i < c->networks_num; i++)
    if (memchr(c->networks[i].name, '\0', TCL_NETWORK_NAME_LEN) == NULL)
      abort();
  for (size_t i = 0; i < c->cgroups_num; i++)
    if (memchr(c->cgroups[i], '\0', sizeof(c->cgroups[i])) == NULL ||
        c->cgroups[i][0] != '/')
      abort();
  if (memchr(c->btf_path, '\0', sizeof(c->btf_path)) == NULL)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *p = (const char *)data, *end = p + size;
  oconfig_item_t block = {.key = "Plugin"};

  mock_quiet = true;
  block.children = calloc(FUZZ_MAX_CHILDREN, sizeof(oconfig_item_t));
  if (block.children == NULL)
    abort();
  while (p < end && block.children_num < FUZZ_MAX_CHILDREN) {
    int quoted = 0;
    char *key = next_token(&p, end, &quoted);
    oconfig_item_t *c;
    long repeat = 1;

    if (key == NULL) {
      if (p < end)
        p++; /* the newline */
      continue;
    }
    if (key[0] == '@' && !quoted) {
      repeat = strtol(key + 1, NULL, 10);
      if (repeat < 1)
        repeat = 1;
      if (repeat > FUZZ_MAX_REPEAT)
        repeat = FUZZ_MAX_REPEAT;
      free(key);
      key = next_token(&p, end, &quoted);
      if (key == NULL)
        continue;
    }
    c = &block.children[block.children_num++];
    c->key = key;
    c->parent = &block;
    for (int cap = 0;;) {
      char *tok = next_token(&p, end, &quoted);
      if (tok == NULL)
        break;
      if (c->values_num >= FUZZ_MAX_VALUES) {
        free(tok);
        continue;
      }
      if (c->values_num == cap) {
        cap = cap ? 2 * cap : 4;
        c->values = realloc(c->values, (size_t)cap * sizeof(oconfig_value_t));
        if (c->values == NULL)
          abort();
      }
      set_value(&c->values[c->values_num++], tok, quoted);
    }
    for (long k = 1; k < repeat && block.children_num < FUZZ_MAX_CHILDREN; k++)
      copy_child(&block.children[block.children_num++], c, k);
  }

  tcl_conf_init(&conf);
  if (tcl_conf_parse(&conf, &block) != 0)
    abort(); /* would stop the whole daemon */
  tcl_conf_finish(&conf);
  check_bounds(&conf);

  free_tree(&block);
  return 0;
}
