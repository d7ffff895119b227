/* SPDX-License-Identifier: MIT */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

#include "clock.h"
#include "labels.h"
#include "notify.h"
#include "ratelimit.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <time.h>

#define TCL_NOTIFY_POLL_MS 100
#define TCL_CUT_MARK "..."

static struct ring_buffer *tcl_rb;
static pthread_t tcl_thread;
static bool tcl_thread_running;
static volatile bool tcl_stop;
static tcl_ratelimit_t tcl_rl;
static uint64_t tcl_limit;
static pthread_mutex_t tcl_totals_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t tcl_sent, tcl_dropped;

static void tcl_count(uint64_t sent, uint64_t dropped)
{
  pthread_mutex_lock(&tcl_totals_lock);
  tcl_sent += sent;
  tcl_dropped += dropped;
  pthread_mutex_unlock(&tcl_totals_lock);
}

static notification_t tcl_notification(int severity, cdtime_t when,
                                       const char *type,
                                       const char *type_instance)
{
  notification_t n = {.severity = severity, .time = when};

  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, "tcpconnlat", sizeof(n.plugin));
  sstrncpy(n.plugin_instance, "all", sizeof(n.plugin_instance));
  sstrncpy(n.type, type, sizeof(n.type));
  sstrncpy(n.type_instance, type_instance, sizeof(n.type_instance));
  return n;
}

/*
 * The process name is whatever the process chose (prctl, or the name of the
 * file it runs): control bytes in it would forge lines in the log, in
 * syslog and in the headers the exec plugin writes. It is written as the
 * process label is (src/labels.h), which also lets a notification be matched
 * with its series.
 */
static void tcl_notify_event(const struct tcl_event *e)
{
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  char comm[TCL_ESCAPED_SIZE(sizeof(e->comm))];
  char when_text[64], what[64];
  int len;
  bool slow = e->reason == TCL_EVENT_SLOW;
  const char *reason = slow ? "slow" : tcl_reason_name(e->reason);
  uint64_t wall_ns = tcl_monotonic_to_wall_ns(e->ktime_ns);
  double latency_ms = (double)e->latency_ns / 1e6;
  time_t secs = (time_t)(wall_ns / TCL_NS_PER_SEC);
  unsigned micros = (unsigned)((wall_ns % TCL_NS_PER_SEC) / 1000);
  struct tm tm;
  notification_t n;

  tcl_escape_value(e->comm, strnlen(e->comm, sizeof(e->comm)), comm,
                   sizeof(comm));
  tcl_address_format(e->saddr, e->family, src, sizeof(src));
  tcl_address_format(e->daddr, e->family, dst, sizeof(dst));
  gmtime_r(&secs, &tm);
  strftime(when_text, sizeof(when_text), "%Y-%m-%dT%H:%M:%S", &tm);

  n = tcl_notification(NOTIF_WARNING, NS_TO_CDTIME_T(wall_ns),
                       slow ? "latency" : "total_connections",
                       slow ? "slow" : reason);
  if (slow)
    snprintf(what, sizeof(what), "slow TCP connect: %.3f ms", latency_ms);
  else
    snprintf(what, sizeof(what), "failed TCP connect: %s", reason);
  len = snprintf(n.message, sizeof(n.message),
                 "%s, at %s.%06uZ, pid %u (%s), uid %u, IPv%u %s port %u -> "
                 "%s port %u",
                 what, when_text, micros, e->tgid, comm, e->uid, e->family,
                 src, e->sport, dst, e->dport);
  /* Long IPv6 addresses and an escaped name can pass collectd's message
   * size: say it was cut; the meta data holds every field whole. */
  if (len >= (int)sizeof(n.message))
    memcpy(n.message + sizeof(n.message) - sizeof(TCL_CUT_MARK), TCL_CUT_MARK,
           sizeof(TCL_CUT_MARK));

  plugin_notification_meta_add_double(&n, "time",
                                      (double)wall_ns / (double)TCL_NS_PER_SEC);
  plugin_notification_meta_add_unsigned_int(&n, "pid", e->tgid);
  plugin_notification_meta_add_string(&n, "comm", comm);
  plugin_notification_meta_add_unsigned_int(&n, "uid", e->uid);
  plugin_notification_meta_add_signed_int(&n, "ip_version", e->family);
  plugin_notification_meta_add_string(&n, "source_address", src);
  plugin_notification_meta_add_unsigned_int(&n, "local_port", e->sport);
  plugin_notification_meta_add_string(&n, "destination_address", dst);
  plugin_notification_meta_add_unsigned_int(&n, "destination_port", e->dport);
  plugin_notification_meta_add_string(&n, "reason", reason);
  if (slow)
    plugin_notification_meta_add_double(&n, "latency_ms", latency_ms);

  plugin_dispatch_notification(&n);
  plugin_notification_meta_free(n.meta);
}

static void tcl_notify_summary(uint64_t now)
{
  uint64_t dropped = tcl_ratelimit_summary(&tcl_rl, now);
  notification_t n;

  if (dropped == 0)
    return;
  n = tcl_notification(NOTIF_WARNING, cdtime(), "total_connections",
                       "notifications_dropped");
  snprintf(n.message, sizeof(n.message),
           "%" PRIu64 " slow or failed TCP connect notifications were "
           "dropped in one second: MaxNotificationsPerSecond is %" PRIu64,
           dropped, tcl_limit);
  plugin_notification_meta_add_unsigned_int(&n, "dropped", dropped);
  plugin_dispatch_notification(&n);
  plugin_notification_meta_free(n.meta);
}

static int tcl_notify_ringbuf_cb(void *ctx, void *data, size_t size)
{
  uint64_t now = tcl_monotonic_ns();

  (void)ctx;
  if (size < sizeof(struct tcl_event))
    return 0;
  tcl_notify_summary(now);
  if (!tcl_ratelimit_allow(&tcl_rl, now)) {
    tcl_count(0, 1);
    return 0;
  }
  tcl_notify_event(data);
  tcl_count(1, 0);
  return 0;
}

static void *tcl_notify_thread(void *arg)
{
  (void)arg;
  while (!tcl_stop) {
    /* The kernel does not wake us for every event (BPF_RB_NO_WAKEUP): poll
     * waits for a full quarter of the buffer or the timeout, then whatever
     * is there is read. */
    int n = ring_buffer__poll(tcl_rb, TCL_NOTIFY_POLL_MS);
    if (n >= 0)
      n = ring_buffer__consume(tcl_rb);
    if (n < 0 && n != -EINTR) {
      ERROR("tcpconnlat plugin: reading connect events failed: %s",
            STRERROR(-n));
      break;
    }
    tcl_notify_summary(tcl_monotonic_ns());
  }
  return NULL;
}

int tcl_notify_start(const tcl_conf_t *conf, int ringbuf_fd)
{
  int status;

  if (conf->slow_threshold_ns == 0 && !conf->notify_failures)
    return 0;
  tcl_limit = conf->max_notifications;
  tcl_ratelimit_init(&tcl_rl, tcl_limit);
  tcl_rb = ring_buffer__new(ringbuf_fd, tcl_notify_ringbuf_cb, NULL, NULL);
  if (tcl_rb == NULL) {
    status = errno;
    ERROR("tcpconnlat plugin: cannot read the connect event ring buffer: %s",
          STRERROR(status));
    return status;
  }
  tcl_stop = false;
  status = plugin_thread_create(&tcl_thread, tcl_notify_thread, NULL,
                                "tcl notify");
  if (status != 0) {
    ERROR("tcpconnlat plugin: cannot start the notification thread: %s",
          STRERROR(status));
    ring_buffer__free(tcl_rb);
    tcl_rb = NULL;
    return status;
  }
  tcl_thread_running = true;
  return 0;
}

void tcl_notify_stop(void)
{
  if (tcl_thread_running) {
    tcl_stop = true;
    pthread_join(tcl_thread, NULL);
    tcl_thread_running = false;
  }
  if (tcl_rb != NULL)
    ring_buffer__free(tcl_rb);
  tcl_rb = NULL;
}

void tcl_notify_totals(uint64_t *sent, uint64_t *dropped)
{
  pthread_mutex_lock(&tcl_totals_lock);
  *sent = tcl_sent;
  *dropped = tcl_dropped;
  pthread_mutex_unlock(&tcl_totals_lock);
}
