/* SPDX-License-Identifier: MIT */
/*
 * Notifications as collectd receives them (src/notify.c with the daemon
 * mocked): a process name is written as the process label is, so that no
 * byte of it can forge a line in a log or a header of the exec plugin.
 */
#include "notify.c" /* the static functions under test */

#include "plugin_mock.h"
#include "unit.h"

/* Printable ASCII only: what a log line or an exec header can carry. */
static bool printable(const char *s)
{
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      return false;
  return true;
}

static bool all_printable(void)
{
  if (!printable(mock_last_notification.message))
    return false;
  for (size_t i = 0; i < mock_meta_num; i++)
    if (!printable(mock_meta[i].value))
      return false;
  return true;
}

static struct tcl_event event(const char *comm, size_t comm_len,
                              uint8_t reason)
{
  struct tcl_event e = {.tgid = 4242, .uid = 1000, .family = 4,
                        .sport = 40000, .dport = 443, .reason = reason};

  e.ktime_ns = tcl_monotonic_ns();
  memcpy(e.comm, comm, comm_len);
  e.saddr[10] = e.saddr[11] = e.daddr[10] = e.daddr[11] = 0xff;
  e.saddr[12] = 127, e.saddr[15] = 1;
  e.daddr[12] = 127, e.daddr[15] = 2;
  return e;
}

static void test_hostile_comm(void)
{
  static const char hostile[] = "x\nHost: forged\xff"; /* 15 bytes */
  struct tcl_event e = event(hostile, sizeof(hostile) - 1, TCL_REASON_REFUSED);
  const char *comm;

  tcl_notify_event(&e);
  comm = mock_meta_value("comm");
  CHECK(comm != NULL && strcmp(comm, "x_0AHost_3A_20forged_FF") == 0);
  CHECK(strstr(mock_last_notification.message,
               "pid 4242 (x_0AHost_3A_20forged_FF), uid 1000") != NULL);
  CHECK(all_printable());
  CHECK(strcmp(mock_last_notification.type_instance, "refused") == 0);
}

static void test_plain_and_full_comm(void)
{
  struct tcl_event e = event("curl", 4, TCL_EVENT_SLOW);
  const char *comm;

  e.latency_ns = 25000000;
  tcl_notify_event(&e);
  comm = mock_meta_value("comm");
  CHECK(comm != NULL && strcmp(comm, "curl") == 0);
  CHECK(strncmp(mock_last_notification.message,
                "slow TCP connect: 25.000 ms, at ", 32) == 0);
  CHECK(strstr(mock_last_notification.message,
               "(curl), uid 1000, IPv4 127.0.0.1 port 40000 -> 127.0.0.2 "
               "port 443") != NULL);

  /* all 16 bytes used, no NUL: still read within the field */
  e = event("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x1b",
            16, TCL_REASON_TIMEOUT);
  tcl_notify_event(&e);
  comm = mock_meta_value("comm");
  CHECK(comm != NULL && strcmp(comm, "_01_02_03_04_05_06_07_08_09_0A_0B_0C_0D"
                                     "_0E_0F_1B") == 0);
  CHECK(all_printable());
}

static void test_reason_names(void)
{
  struct tcl_event e = event("c", 1, TCL_REASON_UNREACHABLE);

  tcl_notify_event(&e);
  CHECK(strcmp(mock_meta_value("reason"), "unreachable") == 0);
  e.reason = 200; /* not a reason the plugin knows */
  tcl_notify_event(&e);
  CHECK(strcmp(mock_meta_value("reason"), "other") == 0);
  CHECK(strcmp(mock_last_notification.type_instance, "other") == 0);
}

/* The longest addresses, an escaped name and an absurd latency do not fit
 * in collectd's message: it is cut visibly, the meta data keeps every
 * field. */
static void test_cut_message(void)
{
  struct tcl_event e = event("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
                             "\xff\xff\xff\xff",
                             15, TCL_EVENT_SLOW);
  size_t len;

  e.family = 6;
  memset(e.saddr, 0xfe, sizeof(e.saddr));
  memset(e.daddr, 0xfe, sizeof(e.daddr));
  e.tgid = e.uid = UINT32_MAX;
  e.sport = e.dport = UINT16_MAX;
  e.latency_ns = UINT64_MAX;
  tcl_notify_event(&e);
  len = strlen(mock_last_notification.message);
  CHECK_EQ_U64(len, sizeof(mock_last_notification.message) - 1);
  CHECK(strcmp(mock_last_notification.message + len - 3, "...") == 0);
  CHECK(strcmp(mock_meta_value("destination_address"),
               "fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe") == 0);
  CHECK(all_printable());
}

int main(void)
{
  RUN_TEST(test_hostile_comm);
  RUN_TEST(test_plain_and_full_comm);
  RUN_TEST(test_reason_names);
  RUN_TEST(test_cut_message);
  UNIT_END();
}
