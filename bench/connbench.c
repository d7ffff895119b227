/* SPDX-License-Identifier: MIT */
/*
 * connbench - loopback TCP connect/accept/close load generator for the
 * tcpconnlat benchmark (bench/run.sh).
 *
 *   connbench [-t THREADS] [-d SECONDS | -n COUNT] [-f 4|6|both]
 *             [-p PORT] [--dests N] [--rate PER_SECOND] [--close rst|fin]
 *             [--refused] [-q]
 *
 * The process is both ends: it listens on the loopback address of each
 * family it uses (127.0.0.1, ::1), accepts and closes in THREADS acceptor
 * threads per family, and connects from THREADS client threads. Each client
 * connect is blocking: socket(), connect(), close(). With "-f both" the
 * connects alternate between IPv4 and IPv6.
 *
 *   -t THREADS    client threads (and acceptor threads per family); default 1
 *   -d SECONDS    run this long (default 5); -n COUNT stops after COUNT connects
 *   -f FAMILY     4, 6 or both (default 4)
 *   -p PORT       listening port (default 0: an ephemeral one)
 *   --dests N     IPv4 only: rotate over N destination addresses 127.0.0.1,
 *                 127.0.0.2, ... (the listener then binds 0.0.0.0; run it in
 *                 a network namespace of its own). Makes N label sets for
 *                 "By remote_address".
 *   --rate R      pace the connects to R per second in total
 *   --close MODE  rst (default): the client closes with SO_LINGER 0, so no
 *                 TIME_WAIT socket holds the ephemeral port; fin: an orderly
 *                 close (needs net.ipv4.tcp_tw_reuse for long runs)
 *   --refused     no listener: every connect is refused (RST)
 *   --inline      each client thread accepts its own connections: connect(),
 *                 accept(), close both, with no other thread involved (on
 *                 loopback the whole handshake runs inside connect()). No
 *                 cross-thread wake-ups: the steadiest CPU cost per connect.
 *   -q            only the summary line
 *
 * Output, one line on stdout:
 *   connbench family=F threads=T seconds=S connects=N ipv4=N ipv6=N
 *     refused=N errors=N rate=R cpu_us_per_connect=C
 * rate is completed connects (established or refused) per second; C is the
 * process's CPU time (user + system, all threads: on loopback this includes
 * the softirq work of both ends, and the BPF programs) per connect.
 * Exit status: 0 ran, 1 setup error, 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256

static int opt_threads = 1;
static double opt_seconds = 5.0;
static long opt_count = -1;
static bool opt_v4 = true, opt_v6 = false;
static int opt_port = 0;
static long opt_dests = 1;
static double opt_rate = 0;
static bool opt_fin = false;
static bool opt_refused = false;
static bool opt_quiet = false;
static bool opt_inline = false;

static int listen_fd[2] = {-1, -1}; /* [0] IPv4, [1] IPv6 */
static uint16_t port_of[2];
static atomic_long next_index;
static atomic_long n_ok[2], n_refused, n_errors;
static atomic_bool stopping;
static uint64_t t_start, t_deadline;

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
  fprintf(f, "usage: connbench [-t THREADS] [-d SECONDS | -n COUNT] "
             "[-f 4|6|both] [-p PORT] [--dests N] [--rate R] "
             "[--close rst|fin] [--refused] [-q]\n");
}

static int make_listener(int fam)
{
  struct sockaddr_storage ss = {0};
  socklen_t len;
  int one = 1, fd;

  fd = socket(fam == 0 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fam == 0) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)opt_port);
    a->sin_addr.s_addr = htonl(opt_dests > 1 ? INADDR_ANY : INADDR_LOOPBACK);
    len = sizeof(*a);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)opt_port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    fprintf(stderr, "connbench: bind (IPv%d, port %d): %s\n", fam ? 6 : 4,
            opt_port, strerror(errno));
    close(fd);
    return -1;
  }
  if (!opt_refused && listen(fd, 4096) != 0) {
    fprintf(stderr, "connbench: listen: %s\n", strerror(errno));
    close(fd);
    return -1;
  }
  len = sizeof(ss);
  getsockname(fd, (struct sockaddr *)&ss, &len);
  port_of[fam] = ntohs(fam == 0 ? ((struct sockaddr_in *)&ss)->sin_port
                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
  return fd;
}

static void *acceptor(void *arg)
{
  int fd = *(int *)arg;

  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
      close(c);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (stopping)
      break;
    if (errno == EMFILE || errno == ENFILE) {
      usleep(1000);
      continue;
    }
    break; /* shutdown() of the listener at the end */
  }
  return NULL;
}

/* Waits until connect number idx is due under --rate. */
static void pace(long idx)
{
  uint64_t due, now;

  if (opt_rate <= 0)
    return;
  due = t_start + (uint64_t)((double)idx * 1e9 / opt_rate);
  now = now_ns();
  if (due > now) {
    struct timespec ts = {.tv_sec = (time_t)((due - now) / 1000000000ull),
                          .tv_nsec = (long)((due - now) % 1000000000ull)};
    nanosleep(&ts, NULL);
  }
}

static void *client(void *arg)
{
  struct linger lg = {.l_onoff = 1, .l_linger = 0};

  (void)arg;
  for (;;) {
    long idx = atomic_fetch_add(&next_index, 1);
    int fam, fd, rc;
    struct sockaddr_storage ss = {0};
    socklen_t len;

    if (opt_count >= 0 && idx >= opt_count)
      break;
    if (stopping || (opt_count < 0 && now_ns() >= t_deadline))
      break;
    pace(idx);
    fam = (opt_v4 && opt_v6) ? (int)(idx & 1) : (opt_v6 ? 1 : 0);
    if (fam == 0) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      a->sin_family = AF_INET;
      a->sin_port = htons(port_of[0]);
      a->sin_addr.s_addr =
          htonl(INADDR_LOOPBACK + (uint32_t)(opt_dests > 1 ? idx % opt_dests : 0));
      len = sizeof(*a);
    } else {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port_of[1]);
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    }
    fd = socket(fam == 0 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      atomic_fetch_add(&n_errors, 1);
      usleep(1000);
      continue;
    }
    rc = connect(fd, (struct sockaddr *)&ss, len);
    if (rc == 0 && opt_inline) {
      int a = accept4(listen_fd[fam], NULL, NULL, SOCK_CLOEXEC);
      if (a >= 0)
        close(a);
    }
    if (rc == 0)
      atomic_fetch_add(&n_ok[fam], 1);
    else if (errno == ECONNREFUSED)
      atomic_fetch_add(&n_refused, 1);
    else
      atomic_fetch_add(&n_errors, 1);
    if (rc == 0 && !opt_fin)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
  }
  return NULL;
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    fprintf(stderr, "connbench: %s: expected an integer in [%ld, %ld], got %s\n",
            what, lo, hi, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"dests", required_argument, NULL, 'D'},
      {"rate", required_argument, NULL, 'r'},
      {"close", required_argument, NULL, 'c'},
      {"refused", no_argument, NULL, 'R'},
      {"inline", no_argument, NULL, 'I'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  pthread_t clients[MAX_THREADS], acceptors[2][MAX_THREADS];
  int nacc[2] = {0, 0};
  struct rusage ru;
  long total;
  double secs, cpu_us;
  int c;

  while ((c = getopt_long(argc, argv, "t:d:n:f:p:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 't':
      opt_threads = (int)parse_long(optarg, 1, MAX_THREADS, "-t");
      break;
    case 'd':
      opt_seconds = strtod(optarg, NULL);
      if (opt_seconds <= 0) {
        fprintf(stderr, "connbench: -d: expected seconds > 0\n");
        return 2;
      }
      break;
    case 'n':
      opt_count = parse_long(optarg, 0, 1L << 40, "-n");
      break;
    case 'f':
      if (strcmp(optarg, "4") == 0) {
        opt_v4 = true, opt_v6 = false;
      } else if (strcmp(optarg, "6") == 0) {
        opt_v4 = false, opt_v6 = true;
      } else if (strcmp(optarg, "both") == 0) {
        opt_v4 = opt_v6 = true;
      } else {
        usage(stderr);
        return 2;
      }
      break;
    case 'p':
      opt_port = (int)parse_long(optarg, 0, 65535, "-p");
      break;
    case 'D':
      opt_dests = parse_long(optarg, 1, 1L << 24, "--dests");
      break;
    case 'r':
      opt_rate = strtod(optarg, NULL);
      break;
    case 'c':
      if (strcmp(optarg, "rst") == 0)
        opt_fin = false;
      else if (strcmp(optarg, "fin") == 0)
        opt_fin = true;
      else {
        usage(stderr);
        return 2;
      }
      break;
    case 'R':
      opt_refused = true;
      break;
    case 'I':
      opt_inline = true;
      break;
    case 'q':
      opt_quiet = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  if (opt_dests > 1 && opt_v6) {
    fprintf(stderr, "connbench: --dests is for IPv4 only\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  for (int fam = 0; fam < 2; fam++) {
    if (!(fam == 0 ? opt_v4 : opt_v6))
      continue;
    listen_fd[fam] = make_listener(fam);
    if (listen_fd[fam] < 0)
      return 1;
    if (opt_refused || opt_inline) {
      /* refused: the port is reserved but nobody listens; inline: the
       * clients accept themselves */
      continue;
    }
    for (int i = 0; i < opt_threads; i++) {
      if (pthread_create(&acceptors[fam][i], NULL, acceptor, &listen_fd[fam]) != 0)
        return 1;
      nacc[fam]++;
    }
  }

  t_start = now_ns();
  t_deadline = t_start + (uint64_t)(opt_seconds * 1e9);
  for (int i = 0; i < opt_threads; i++)
    if (pthread_create(&clients[i], NULL, client, NULL) != 0)
      return 1;
  for (int i = 0; i < opt_threads; i++)
    pthread_join(clients[i], NULL);
  secs = (double)(now_ns() - t_start) / 1e9;

  stopping = true;
  for (int fam = 0; fam < 2; fam++) {
    if (listen_fd[fam] >= 0)
      shutdown(listen_fd[fam], SHUT_RDWR);
    for (int i = 0; i < nacc[fam]; i++)
      pthread_join(acceptors[fam][i], NULL);
    if (listen_fd[fam] >= 0)
      close(listen_fd[fam]);
  }

  total = n_ok[0] + n_ok[1] + n_refused;
  getrusage(RUSAGE_SELF, &ru);
  cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  printf("connbench family=%s threads=%d seconds=%.3f connects=%ld ipv4=%ld "
         "ipv6=%ld refused=%ld errors=%ld rate=%.1f cpu_us_per_connect=%.2f\n",
         opt_v4 && opt_v6 ? "both" : (opt_v6 ? "6" : "4"), opt_threads, secs,
         total, (long)n_ok[0], (long)n_ok[1], (long)n_refused, (long)n_errors,
         secs > 0 ? (double)total / secs : 0.0,
         total > 0 ? cpu_us / (double)total : 0.0);
  if (!opt_quiet && n_errors > 0)
    fprintf(stderr, "connbench: %ld connects failed with errors other than "
                    "ECONNREFUSED\n",
            (long)n_errors);
  return 0;
}
