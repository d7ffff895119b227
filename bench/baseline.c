/* SPDX-License-Identifier: MIT */
/*
 * baseline - the benchmark's BPF helper (bench/run.sh).
 *
 *   baseline load OBJ CGROUP_DIR [--stats] [--tracepoint-only|--sockops-only]
 *       Loads the empty programs of OBJ (bench/empty.bpf.o), attaches
 *       empty_tp_btf to sock:inet_sock_set_state and empty_sockops to the
 *       cgroup v2 directory CGROUP_DIR, prints
 *           prog empty_tp_btf ID
 *           prog empty_sockops ID
 *           ready
 *       and holds them until SIGTERM/SIGINT or until stdin reaches EOF.
 *       --stats also turns on the kernel's BPF run-time statistics
 *       (bpf_enable_stats(BPF_STATS_RUN_TIME)) for as long as it runs.
 *
 *   baseline show ID...
 *       One line per program id: "ID NAME run_cnt run_time_ns".
 *
 *   baseline count MAP_ID
 *       The number of entries in a map (walking its keys).
 *
 *   baseline stats
 *       Only turns the run-time statistics on, until SIGTERM or stdin EOF.
 *
 * Exit status: 0, 1 on errors, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt,
                       va_list ap)
{
  if (level == LIBBPF_DEBUG)
    return 0;
  return vfprintf(stderr, fmt, ap);
}

/* Until a signal, or EOF on stdin (the script's pipe closes when it dies). */
static void hold(void)
{
  struct sigaction sa = {.sa_handler = on_signal};
  struct pollfd p = {.fd = 0, .events = POLLIN};
  char buf[256];

  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  while (!stop) {
    int n = poll(&p, 1, 500);
    if (n > 0) {
      ssize_t r = read(0, buf, sizeof(buf));
      if (r <= 0)
        break;
    }
  }
}

static int prog_id(const struct bpf_program *prog)
{
  struct bpf_prog_info info;
  __u32 len = sizeof(info);

  memset(&info, 0, sizeof(info));
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0)
    return -1;
  return (int)info.id;
}

/* which: 3 both programs, 1 the tracepoint one only, 2 the sock_ops one only */
static int cmd_load(const char *path, const char *cgroup, int stats, int which)
{
  struct bpf_object *obj;
  struct bpf_program *tp, *so;
  struct bpf_link *l1, *l2;
  int cg, stats_fd = -1;

  obj = bpf_object__open_file(path, NULL);
  if (obj == NULL) {
    fprintf(stderr, "baseline: cannot open %s: %s\n", path, strerror(errno));
    return 1;
  }
  tp = bpf_object__find_program_by_name(obj, "empty_tp_btf");
  so = bpf_object__find_program_by_name(obj, "empty_sockops");
  if (tp == NULL || so == NULL) {
    fprintf(stderr, "baseline: %s lacks the empty programs\n", path);
    return 1;
  }
  bpf_program__set_autoload(tp, which & 1);
  bpf_program__set_autoload(so, (which & 2) != 0);
  if (bpf_object__load(obj) != 0) {
    fprintf(stderr, "baseline: cannot load %s: %s\n", path, strerror(errno));
    return 1;
  }
  l1 = l2 = NULL;
  if (which & 1)
    l1 = bpf_program__attach(tp);
  if ((which & 1) && l1 == NULL) {
    fprintf(stderr, "baseline: cannot attach empty_tp_btf: %s\n",
            strerror(errno));
    return 1;
  }
  cg = (which & 2) ? open(cgroup, O_RDONLY | O_DIRECTORY) : -1;
  if ((which & 2) && cg < 0) {
    fprintf(stderr, "baseline: cannot open %s: %s\n", cgroup, strerror(errno));
    return 1;
  }
  if (which & 2) {
    l2 = bpf_program__attach_cgroup(so, cg);
    close(cg);
  }
  if ((which & 2) && l2 == NULL) {
    fprintf(stderr, "baseline: cannot attach empty_sockops to %s: %s\n",
            cgroup, strerror(errno));
    return 1;
  }
  if (stats) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (stats_fd < 0) {
      fprintf(stderr, "baseline: bpf_enable_stats: %s\n", strerror(errno));
      return 1;
    }
  }
  if (which & 1)
    printf("prog empty_tp_btf %d\n", prog_id(tp));
  if (which & 2)
    printf("prog empty_sockops %d\n", prog_id(so));
  printf("ready\n");
  fflush(stdout);
  hold();
  if (l2)
    bpf_link__destroy(l2);
  if (l1)
    bpf_link__destroy(l1);
  bpf_object__close(obj);
  if (stats_fd >= 0)
    close(stats_fd);
  return 0;
}

static int cmd_show(int argc, char **argv)
{
  int status = 0;

  for (int i = 0; i < argc; i++) {
    struct bpf_prog_info info;
    __u32 len = sizeof(info);
    int fd = bpf_prog_get_fd_by_id((__u32)strtoul(argv[i], NULL, 10));

    if (fd < 0) {
      fprintf(stderr, "baseline: no program with id %s\n", argv[i]);
      status = 1;
      continue;
    }
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
      printf("%u %s %llu %llu\n", info.id, info.name,
             (unsigned long long)info.run_cnt,
             (unsigned long long)info.run_time_ns);
    else
      status = 1;
    close(fd);
  }
  return status;
}

/* Entries of a map, by walking its keys. */
static int cmd_count(const char *id_text)
{
  struct bpf_map_info info;
  __u32 len = sizeof(info);
  long n = 0;
  char *key, *next;
  int fd = bpf_map_get_fd_by_id((__u32)strtoul(id_text, NULL, 10));

  if (fd < 0) {
    fprintf(stderr, "baseline: no map with id %s\n", id_text);
    return 1;
  }
  memset(&info, 0, sizeof(info));
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return 1;
  key = calloc(1, info.key_size);
  next = calloc(1, info.key_size);
  if (key == NULL || next == NULL)
    return 1;
  for (int first = 1; bpf_map_get_next_key(fd, first ? NULL : key, next) == 0;
       first = 0) {
    memcpy(key, next, info.key_size);
    n++;
  }
  printf("%ld\n", n);
  free(key);
  free(next);
  close(fd);
  return 0;
}

int main(int argc, char **argv)
{
  libbpf_set_print(quiet_print);
  if (argc >= 4 && strcmp(argv[1], "load") == 0) {
    int stats = 0, which = 3;

    for (int i = 4; i < argc; i++) {
      if (strcmp(argv[i], "--stats") == 0)
        stats = 1;
      else if (strcmp(argv[i], "--tracepoint-only") == 0)
        which = 1;
      else if (strcmp(argv[i], "--sockops-only") == 0)
        which = 2;
      else {
        fprintf(stderr, "baseline: unknown option %s\n", argv[i]);
        return 2;
      }
    }
    return cmd_load(argv[2], argv[3], stats, which);
  }
  if (argc >= 2 && strcmp(argv[1], "show") == 0)
    return cmd_show(argc - 2, argv + 2);
  if (argc == 3 && strcmp(argv[1], "count") == 0)
    return cmd_count(argv[2]);
  if (argc == 2 && strcmp(argv[1], "stats") == 0) {
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (fd < 0) {
      fprintf(stderr, "baseline: bpf_enable_stats: %s\n", strerror(errno));
      return 1;
    }
    printf("ready\n");
    fflush(stdout);
    hold();
    close(fd);
    return 0;
  }
  fprintf(stderr, "usage: baseline load OBJ CGROUP_DIR [--stats] "
                  "[--tracepoint-only|--sockops-only] | show ID... "
                  "| count MAP_ID | stats\n");
  return 2;
}
