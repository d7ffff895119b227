/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "cgroup.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <ftw.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The inode of /proc/self/ns/cgroup in the initial cgroup namespace
 * (PROC_CGROUP_INIT_INO, include/linux/proc_ns.h). */
#define TCL_CGROUP_INIT_NS_INO 0xEFFFFFFBU
/* Directories nftw keeps open while it scans the hierarchy. */
#define TCL_CGROUP_SCAN_FDS 16
/* Deeper than any hierarchy systemd, container engines or people make. */
#define TCL_CGROUP_MAX_LEVEL 255

typedef struct {
  uint64_t id;
  char *path;
} tcl_cgroup_entry_t;

static char tcl_root[4096];
static bool tcl_root_known;
/* The mount's root below the kernel's root cgroup: see tcl_cgroup_lookup. */
static int tcl_mount_level;
static bool tcl_mount_level_known;
static tcl_cgroup_entry_t *tcl_entries;
static size_t tcl_entries_num, tcl_entries_cap;
static bool tcl_scanned_this_round;

/* Components of a cgroup path, ".." counting -1: the level of its end
 * relative to its start. */
static int tcl_path_depth(const char *path)
{
  int depth = 0;

  while (*path != '\0') {
    size_t len;

    while (*path == '/')
      path++;
    len = strcspn(path, "/");
    if (len == 2 && strncmp(path, "..", 2) == 0)
      depth--;
    else if (len > 0 && !(len == 1 && path[0] == '.'))
      depth++;
    path += len;
  }
  return depth;
}

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
  /* "36 35 0:30 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw": the first
   * cgroup2 mount point; of mounts stacked on it, the last (visible) one. */
  while (fgets(line, sizeof(line), f) != NULL) {
    char *sep = strstr(line, " - cgroup2 ");
    char root[4096], mnt[4096];

    if (sep == NULL)
      continue;
    if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 ||
        (tcl_root[0] != '\0' && strcmp(tcl_root, mnt) != 0))
      continue;
    snprintf(tcl_root, sizeof(tcl_root), "%s", mnt);
    /* The mount's root (4th field), shown relative to the root of our
     * cgroup namespace: "/" for a container's own mount, "/x" for a mount
     * of a sub-hierarchy, "/../.." for the host's mount seen from a
     * namespace two levels down. */
    tcl_mount_level = tcl_path_depth(root);
  }
  fclose(f);
  return tcl_root[0] ? tcl_root : NULL;
}

/*
 * The level of this thread's cgroup, from the kernel's root: only BPF is
 * told (bpf_get_current_ancestor_cgroup_id counts from there). A program
 * of 14 instructions finds the ancestor level at which the thread's own
 * cgroup id appears, run once with BPF_PROG_TEST_RUN, which runs a raw
 * tracepoint program in the calling thread (net/bpf/test_run.c).
 */
#define TCL_INSN(c, d, s, o, i)                                               \
  ((struct bpf_insn){                                                        \
      .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define TCL_CALL(fn) TCL_INSN(BPF_JMP | BPF_CALL, 0, 0, 0, (fn))

static int tcl_cgroup_own_level(int *level)
{
  const struct bpf_insn prog[] = {
      TCL_CALL(BPF_FUNC_get_current_cgroup_id),
      TCL_INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_7, BPF_REG_0, 0, 0),
      TCL_INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_6, 0, 0, 0),
      /* 3: loop over levels in r6 */
      TCL_INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_6, 0, 0),
      TCL_CALL(BPF_FUNC_get_current_ancestor_cgroup_id),
      TCL_INSN(BPF_JMP | BPF_JEQ | BPF_X, BPF_REG_0, BPF_REG_7, 4, 0), /* 10 */
      TCL_INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 5, 0),         /* 12 */
      TCL_INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_6, 0, 0, 1),
      TCL_INSN(BPF_JMP | BPF_JLT | BPF_K, BPF_REG_6, 0, -6,
               TCL_CGROUP_MAX_LEVEL + 1),                              /* 3 */
      TCL_INSN(BPF_JMP | BPF_JA, 0, 0, 2, 0),                          /* 12 */
      /* 10: found at level r6 */
      TCL_INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_0, BPF_REG_6, 0, 0),
      TCL_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
      /* 12: not found */
      TCL_INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1),
      TCL_INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  LIBBPF_OPTS(bpf_test_run_opts, run);
  int fd, err = 0;

  fd = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "tcl_cg_level",
                     "Dual MIT/GPL", prog, STATIC_ARRAY_SIZE(prog), NULL);
  if (fd < 0)
    return errno ? errno : EINVAL;
  if (bpf_prog_test_run_opts(fd, &run) != 0)
    err = errno ? errno : EINVAL;
  else if (run.retval > TCL_CGROUP_MAX_LEVEL)
    err = ENOENT;
  else
    *level = (int)run.retval;
  close(fd);
  return err;
}

/* Path of this thread's cgroup relative to the root of its cgroup
 * namespace ("0::/x" in /proc/self/cgroup). */
static int tcl_cgroup_own_path(char *out, size_t len)
{
  FILE *f = fopen("/proc/thread-self/cgroup", "r");
  char line[4096];
  int err = ENOENT;

  if (f == NULL)
    return errno;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "0::", 3) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(out, len, "%s", line + 3);
      err = 0;
      break;
    }
  fclose(f);
  return err;
}

/* Level of the cgroup namespace's root from the kernel's root: 0 in the
 * initial namespace, else the own cgroup's level less its depth below the
 * namespace's root. */
static int tcl_cgroup_ns_level(int *level)
{
  struct stat st;
  char own[4096];
  int own_level, err;

  if (stat("/proc/self/ns/cgroup", &st) == 0 &&
      st.st_ino == TCL_CGROUP_INIT_NS_INO) {
    *level = 0;
    return 0;
  }
  err = tcl_cgroup_own_level(&own_level);
  if (err != 0) {
    ERROR("tcpconnlat plugin: collectd runs in a cgroup namespace, and the "
          "level of its root, which the Cgroup filter needs, could not be "
          "read with a BPF program: %s",
          STRERROR(err));
    return err;
  }
  err = tcl_cgroup_own_path(own, sizeof(own));
  if (err != 0) {
    ERROR("tcpconnlat plugin: cannot read collectd's cgroup from "
          "/proc/thread-self/cgroup: %s",
          STRERROR(err));
    return err;
  }
  *level = own_level - tcl_path_depth(own);
  return 0;
}

/*
 * The kernel counts a cgroup's level from its own root; a Cgroup path is
 * below the cgroup2 mount. In a cgroup namespace (collectd in a container),
 * or with a mount of a sub-hierarchy, the mount's root is not the kernel's:
 * level = namespace root's level + mount root's depth below it + the path's
 * depth below the mount.
 */
int tcl_cgroup_lookup(const char *path, uint64_t *id, uint32_t *level)
{
  const char *root = tcl_cgroup_root();
  char full[8192];
  struct stat st;
  int depth;

  if (root == NULL)
    return ENOENT;
  snprintf(full, sizeof(full), "%s%s", root, path);
  if (stat(full, &st) != 0)
    return errno;
  if (!S_ISDIR(st.st_mode))
    return ENOTDIR;
  if (!tcl_mount_level_known) {
    int ns_level, err = tcl_cgroup_ns_level(&ns_level);

    if (err != 0)
      return err;
    tcl_mount_level += ns_level;
    tcl_mount_level_known = true;
  }
  depth = tcl_mount_level + tcl_path_depth(path);
  if (depth < 0)
    return ENOENT; /* above the kernel's root: not a cgroup */
  *id = (uint64_t)st.st_ino;
  *level = (uint32_t)depth;
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
  nftw(root, tcl_cgroup_visit, TCL_CGROUP_SCAN_FDS, FTW_PHYS | FTW_MOUNT);
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
