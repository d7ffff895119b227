/* SPDX-License-Identifier: MIT */
/* cgroup v2 ids (what the kernel reports) to paths (what operators read). */
#ifndef TCPCONNLAT_CGROUP_H
#define TCPCONNLAT_CGROUP_H

#include <stddef.h>
#include <stdint.h>

/* The cgroup2 mount point, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified;
 * NULL when there is none. */
const char *tcl_cgroup_root(void);

/* Id and depth (the root is level 0) of a path below the cgroup2 mount, for
 * the Cgroup filter. 0 or an errno. */
int tcl_cgroup_lookup(const char *path, uint64_t *id, uint32_t *level);

/* Path of a cgroup id, relative to the mount ("/system.slice/x.service"),
 * rescanning the hierarchy at most once per call of tcl_cgroup_new_round.
 * NULL when unknown. */
const char *tcl_cgroup_path(uint64_t id);
void tcl_cgroup_new_round(void);
void tcl_cgroup_free(void);

#endif /* TCPCONNLAT_CGROUP_H */
