/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  uint64_t id;
  char *path;
} tcl_cgroup_entry_t;

static char tcl_root[4096];
static bool tcl_root_known;
static tcl_cgroup_entry_t *tcl_entries;
static size_t tcl_entries_num, tcl_entries_cap;
static bool tcl_scanned_this_round;

const char *tcl_cgroup_root(void)
{
  FILE *f;
  char line[8192];

  if (tcl_root_known)
    return tcl_root[0] ? tcl_root : NULL;
  tcl_root_known = true;
  f = fopen("/proc/self/mountinfo", "r");
  if (f == NULL)
    return NULL;
  /* "36 35 0:30 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw" */
  while (fgets(line, sizeof(line), f) != NULL) {
    char *sep = strstr(line, " - cgroup2 ");
    char mnt[4096];

    if (sep == NULL)
      continue;
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) {
      snprintf(tcl_root, sizeof(tcl_root), "%s", mnt);
      break;
    }
  }
  fclose(f);
  return tcl_root[0] ? tcl_root : NULL;
}

int tcl_cgroup_lookup(const char *path, uint64_t *id, uint32_t *level)
{
  const char *root = tcl_cgroup_root();
  char full[8192];
  struct stat st;
  uint32_t depth = 0;
  bool in_component = false;

  if (root == NULL)
    return ENOENT;
  snprintf(full, sizeof(full), "%s%s", root, path);
  if (stat(full, &st) != 0)
    return errno;
  if (!S_ISDIR(st.st_mode))
    return ENOTDIR;
  for (const char *p = path; *p; p++) {
    if (*p == '/')
      in_component = false;
    else if (!in_component) {
      in_component = true;
      depth++;
    }
  }
  *id = (uint64_t)st.st_ino;
  *level = depth;
  return 0;
}

static size_t tcl_root_len;

static int tcl_cgroup_visit(const char *fpath, const struct stat *sb,
                            int typeflag, struct FTW *ftwbuf)
{
  tcl_cgroup_entry_t *e;
  const char *rel;

  (void)ftwbuf;
  if (typeflag != FTW_D)
    return 0;
  if (tcl_entries_num == tcl_entries_cap) {
    size_t cap = tcl_entries_cap ? 2 * tcl_entries_cap : 256;
    tcl_cgroup_entry_t *grown = realloc(tcl_entries, cap * sizeof(*grown));
    if (grown == NULL)
      return 1;
    tcl_entries = grown;
    tcl_entries_cap = cap;
  }
  rel = fpath + tcl_root_len;
  e = &tcl_entries[tcl_entries_num];
  e->id = (uint64_t)sb->st_ino;
  e->path = strdup(rel[0] ? rel : "/");
  if (e->path == NULL)
    return 1;
  tcl_entries_num++;
  return 0;
}

static void tcl_cgroup_clear(void)
{
  for (size_t i = 0; i < tcl_entries_num; i++)
    free(tcl_entries[i].path);
  tcl_entries_num = 0;
}

static void tcl_cgroup_scan(void)
{
  const char *root = tcl_cgroup_root();

  tcl_cgroup_clear();
  if (root == NULL)
    return;
  tcl_root_len = strlen(root);
  nftw(root, tcl_cgroup_visit, 16, FTW_PHYS | FTW_MOUNT);
}

const char *tcl_cgroup_path(uint64_t id)
{
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < tcl_entries_num; i++)
      if (tcl_entries[i].id == id)
        return tcl_entries[i].path;
    if (pass == 0) {
      if (tcl_scanned_this_round)
        return NULL;
      tcl_scanned_this_round = true;
      tcl_cgroup_scan();
    }
  }
  return NULL;
}

void tcl_cgroup_new_round(void)
{
  tcl_scanned_this_round = false;
}

void tcl_cgroup_free(void)
{
  tcl_cgroup_clear();
  free(tcl_entries);
  tcl_entries = NULL;
  tcl_entries_cap = 0;
}
