/* SPDX-License-Identifier: MIT */
/* <Plugin tcpconnlat> parsing: defaults, good values, and every bad one. */
#include "collectd.h"

#include "plugin.h"

#include "conf.h"
#include "plugin_mock.h"
#include "unit.h"

#define MAX_CHILDREN 16
static oconfig_item_t children[MAX_CHILDREN];
static oconfig_value_t values[MAX_CHILDREN][3];
static int nchildren;

static void reset(void)
{
  memset(children, 0, sizeof(children));
  memset(values, 0, sizeof(values));
  nchildren = 0;
  mock_last_log[0] = '\0';
}

static oconfig_item_t *add(const char *key)
{
  oconfig_item_t *ci = &children[nchildren];
  ci->key = (char *)key;
  ci->values = values[nchildren];
  nchildren++;
  return ci;
}

static void num(oconfig_item_t *ci, double d)
{
  ci->values[ci->values_num].type = OCONFIG_TYPE_NUMBER;
  ci->values[ci->values_num++].value.number = d;
}

static void str(oconfig_item_t *ci, const char *s)
{
  ci->values[ci->values_num].type = OCONFIG_TYPE_STRING;
  ci->values[ci->values_num++].value.string = (char *)s;
}

static void boolean(oconfig_item_t *ci, bool b)
{
  ci->values[ci->values_num].type = OCONFIG_TYPE_BOOLEAN;
  ci->values[ci->values_num++].value.boolean = b;
}

static void parse(tcl_conf_t *conf)
{
  oconfig_item_t block = {.key = "Plugin", .children = children,
                          .children_num = nchildren};
  tcl_conf_init(conf);
  /* Never non-zero: collectd 5.12 would stop the whole daemon. */
  CHECK(tcl_conf_parse(conf, &block) == 0);
  tcl_conf_finish(conf);
}

static void test_defaults(void)
{
  tcl_conf_t conf;

  reset();
  parse(&conf);
  CHECK(conf.error[0] == '\0');
  CHECK_EQ_U64(conf.percentiles_num, 4);
  CHECK_NEAR(conf.percentiles[0], 50, 0);
  CHECK_NEAR(conf.percentiles[3], 99.9, 0);
  CHECK_EQ_U64(conf.buckets_num, 17);
  CHECK(conf.inbound && !conf.inbound_requests); /* requests: opt-in */
  CHECK_EQ_U64(conf.buckets[0].lo_ns, 0);
  CHECK_EQ_U64(conf.buckets[0].hi_ns, 100000);
  CHECK_EQ_U64(conf.buckets[1].hi_ns, 250000);
  CHECK_EQ_U64(conf.buckets[16].lo_ns, 10000000000ULL);
  CHECK_EQ_U64(conf.buckets[16].hi_ns, UINT64_MAX);
  CHECK(conf.report_percentiles && conf.report_buckets && conf.report_failures);
  CHECK(conf.report_idle);
  CHECK(conf.bucket_style == TCL_BUCKETS_RATE);
  CHECK(conf.attach_mode == TCL_ATTACH_AUTO);
  CHECK(conf.interface_attach == TCL_IFACE_ATTACH_AUTO);
  CHECK_EQ_U64(conf.max_inflight, TCL_DEFAULT_MAX_INFLIGHT);
  CHECK(!conf.verbose);
}

static void test_good_values(void)
{
  tcl_conf_t conf;
  oconfig_item_t *ci;

  reset();
  num(add("Percentile"), 75);
  num(add("percentile"), 99.99);
  ci = add("Bucket");
  num(ci, 0.001);
  num(ci, 0.002);
  ci = add("BUCKET");
  num(ci, 0.002);
  num(ci, 0);
  boolean(add("ReportPercentiles"), false);
  boolean(add("ReportBuckets"), false);
  boolean(add("ReportFailures"), false);
  boolean(add("ReportIdle"), false);
  str(add("BucketStyle"), "Cumulative");
  str(add("AttachMode"), "tracepoint");
  str(add("InterfaceAttach"), "TC");
  num(add("MaxInflight"), 1024);
  str(add("BtfPath"), "/tmp/vmlinux.btf");
  boolean(add("Verbose"), true);
  boolean(add("InboundRequests"), true);
  parse(&conf);
  CHECK(conf.error[0] == '\0');
  CHECK_EQ_U64(conf.percentiles_num, 2);
  CHECK_NEAR(conf.percentiles[1], 99.99, 0);
  CHECK_EQ_U64(conf.buckets_num, 2);
  CHECK_EQ_U64(conf.buckets[0].lo_ns, 1000000);
  CHECK_EQ_U64(conf.buckets[0].hi_ns, 2000000);
  CHECK_EQ_U64(conf.buckets[1].hi_ns, UINT64_MAX);
  CHECK(!conf.report_percentiles && !conf.report_buckets &&
        !conf.report_failures && !conf.report_idle);
  CHECK(conf.bucket_style == TCL_BUCKETS_CUMULATIVE);
  CHECK(conf.attach_mode == TCL_ATTACH_TRACEPOINT);
  CHECK(conf.interface_attach == TCL_IFACE_ATTACH_TC);
  CHECK_EQ_U64(conf.max_inflight, 1024);
  CHECK(strcmp(conf.btf_path, "/tmp/vmlinux.btf") == 0);
  CHECK(conf.verbose);
  CHECK(conf.inbound_requests);
}

/* One bad option: an error that names it and says what was expected. */
static void expect_error(const char *what, const char *key_in_msg,
                         const char *expected_in_msg)
{
  tcl_conf_t conf;

  parse(&conf);
  CHECK(conf.error[0] != '\0');
  if (strstr(conf.error, key_in_msg) == NULL ||
      strstr(conf.error, expected_in_msg) == NULL) {
    fprintf(stderr, "  %s: error \"%s\" lacks \"%s\" or \"%s\"\n", what,
            conf.error, key_in_msg, expected_in_msg);
    CHECK(!"error message names the key and the expectation");
  }
  CHECK(strstr(mock_last_log, "tcpconnlat plugin: ") == mock_last_log);
}

static void test_bad_values(void)
{
  oconfig_item_t *ci;

  reset();
  num(add("Frobnicate"), 1);
  expect_error("unknown key", "Frobnicate", "valid options are");
  /* the whole list of keys, not cut short */
  expect_error("unknown key", "Frobnicate", "InterfaceAttach, Verbose.");

  reset();
  num(add("Percentile"), 150);
  expect_error("percentile too big", "Percentile", "less than 100");

  reset();
  num(add("Percentile"), 0);
  expect_error("percentile zero", "Percentile", "greater than 0");

  reset();
  str(add("Percentile"), "high");
  expect_error("percentile string", "Percentile", "one number");

  reset();
  ci = add("Bucket");
  num(ci, 1);
  num(ci, 0.5);
  expect_error("bucket reversed", "Bucket", "LO < HI");

  reset();
  num(add("Bucket"), 1);
  expect_error("bucket one value", "Bucket", "two numbers");

  reset();
  ci = add("Bucket");
  num(ci, -1);
  num(ci, 0);
  expect_error("bucket negative", "Bucket", "0 <= LO");

  reset();
  str(add("BucketStyle"), "histogram");
  expect_error("bucket style", "BucketStyle",
               "expected \"rate\" or \"cumulative\", got \"histogram\"");

  reset();
  num(add("BucketStyle"), 1);
  expect_error("bucket style number", "BucketStyle",
               "expected \"rate\" or \"cumulative\"");

  reset();
  str(add("AttachMode"), "kprobe");
  expect_error("attach mode", "AttachMode", "\"tp_btf\"");

  reset();
  str(add("InterfaceAttach"), "xdp");
  expect_error("interface attach", "InterfaceAttach", "\"tcx\"");

  reset();
  num(add("MaxInflight"), 0);
  expect_error("max inflight zero", "MaxInflight", "whole number");

  reset();
  num(add("MaxInflight"), 1.5);
  expect_error("max inflight fraction", "MaxInflight", "whole number");

  reset();
  num(add("MaxInflight"), 1e9);
  expect_error("max inflight huge", "MaxInflight", "16777216");

  reset();
  str(add("ReportBuckets"), "yes please");
  expect_error("boolean", "ReportBuckets", "true or false");

  reset();
  num(add("BtfPath"), 3);
  expect_error("btf path", "BtfPath", "path");

  /* the first error is kept, later ones logged too */
  reset();
  num(add("Percentile"), 101);
  num(add("Nope"), 1);
  {
    tcl_conf_t conf;
    int before = mock_log_count;
    parse(&conf);
    CHECK(strstr(conf.error, "Percentile") != NULL);
    CHECK_EQ_U64(mock_log_count - before, 2);
  }
}

static void test_breakdowns_and_filters(void)
{
  tcl_conf_t conf;
  oconfig_item_t *ci;

  reset();
  ci = add("By");
  str(ci, "process");
  str(ci, "remote_port");
  str(add("by"), "CGROUP");
  ci = add("RemoteNetwork");
  str(ci, "dc1");
  str(ci, "10.0.0.0/8");
  str(ci, "fd00::/8");
  ci = add("RemoteNetwork");
  str(ci, "lo");
  str(ci, "127.0.0.1");
  str(add("IgnoreRemoteNetwork"), "lo"); /* after its definition */
  ci = add("RemotePort");
  num(ci, 443);
  num(ci, 80);
  num(add("IgnoreRemotePort"), 22);
  num(add("Pid"), 1);
  ci = add("Uid");
  num(ci, 1000);
  str(ci, "root");
  str(add("Process"), "curl");
  str(add("Cgroup"), "/system.slice");
  num(add("MaxSeries"), 10);
  num(add("SeriesTimeout"), 3);
  boolean(add("ReportTotal"), false);
  boolean(add("OwnNetnsOnly"), true);
  parse(&conf);
  CHECK(conf.error[0] == '\0');
  CHECK_EQ_U64(conf.by, TCL_BY_PROCESS | TCL_BY_REMOTE_PORT | TCL_BY_CGROUP);
  CHECK_EQ_U64(conf.networks_num, 2);
  CHECK_EQ_U64(conf.cidrs_num, 3);
  CHECK_EQ_U64(conf.cidrs[0].prefixlen, 96 + 8);
  CHECK_EQ_U64(conf.cidrs[1].prefixlen, 8);
  CHECK_EQ_U64(conf.cidrs[2].prefixlen, 128);
  CHECK_EQ_U64(conf.cidrs[2].network, 1);
  CHECK(conf.networks[1].ignore && !conf.networks[1].include);
  CHECK_EQ_U64(conf.rports_num, 2);
  CHECK_EQ_U64(conf.ignore_rports[0], 22);
  CHECK_EQ_U64(conf.uids_num, 2);
  CHECK_EQ_U64(conf.uids[1], 0);
  CHECK(strcmp(conf.comms[0], "curl") == 0);
  CHECK(strcmp(conf.cgroups[0], "/system.slice") == 0);
  CHECK_EQ_U64(conf.max_series, 10);
  CHECK_EQ_U64(conf.series_timeout, 3);
  CHECK(!conf.report_total && conf.own_netns_only);

  /* IncludeRemoteNetwork before its RemoteNetwork */
  reset();
  str(add("IncludeRemoteNetwork"), "dc1");
  ci = add("RemoteNetwork");
  str(ci, "dc1");
  str(ci, "192.168.0.0/16");
  parse(&conf);
  CHECK(conf.error[0] == '\0');
  CHECK(conf.networks[0].include);
}

static void test_breakdown_errors(void)
{
  oconfig_item_t *ci;

  reset();
  str(add("By"), "hostname");
  expect_error("by unknown", "By", "remote_address");

  reset();
  str(add("By"), "remote_network");
  expect_error("by network without networks", "remote_network",
               "RemoteNetwork");

  reset();
  ci = add("RemoteNetwork");
  str(ci, "dc1");
  str(ci, "10.1.2.3/8");
  expect_error("cidr host bits", "RemoteNetwork", "zero host bits");

  reset();
  ci = add("RemoteNetwork");
  str(ci, "dc1");
  str(ci, "300.1.2.3");
  expect_error("cidr bad address", "RemoteNetwork", "CIDR");

  reset();
  ci = add("RemoteNetwork");
  str(ci, "other");
  str(ci, "10.0.0.0/8");
  expect_error("network named other", "RemoteNetwork", "other than");

  reset();
  str(add("IgnoreRemoteNetwork"), "nowhere");
  expect_error("undefined network", "IgnoreRemoteNetwork", "nowhere");

  reset();
  str(add("Process"), "a-name-longer-than-15");
  expect_error("comm too long", "Process", "1 to 15 bytes");

  reset();
  str(add("Uid"), "no-such-user-here");
  expect_error("unknown user", "Uid", "no user here");

  reset();
  num(add("RemotePort"), 70000);
  expect_error("port range", "RemotePort", "1 to 65535");

  reset();
  str(add("Cgroup"), "system.slice");
  expect_error("relative cgroup", "Cgroup", "/system.slice");

  reset();
  num(add("MaxSeries"), 0);
  expect_error("max series", "MaxSeries", "whole number");

  reset();
  boolean(add("ReportTotal"), false);
  expect_error("nothing to report", "ReportTotal", "By");
}

static void test_parse_cidr(void)
{
  uint8_t a[16];
  uint32_t len;

  CHECK(tcl_parse_cidr("10.0.0.0/8", a, &len) == 0 && len == 104 &&
        a[10] == 0xff && a[12] == 10);
  CHECK(tcl_parse_cidr("0.0.0.0/0", a, &len) == 0 && len == 96);
  CHECK(tcl_parse_cidr("::/0", a, &len) == 0 && len == 0);
  CHECK(tcl_parse_cidr("2001:db8::/32", a, &len) == 0 && len == 32 &&
        a[0] == 0x20 && a[1] == 0x01);
  CHECK(tcl_parse_cidr("192.168.1.1", a, &len) == 0 && len == 128);
  CHECK(tcl_parse_cidr("10.0.0.0/33", a, &len) != 0);
  CHECK(tcl_parse_cidr("10.0.0.0/", a, &len) != 0);
  CHECK(tcl_parse_cidr("10.0.0.0/8x", a, &len) != 0);
  CHECK(tcl_parse_cidr("fd00::1/8", a, &len) != 0);
  CHECK(tcl_parse_cidr("", a, &len) != 0);
  CHECK(tcl_parse_cidr("example.com/8", a, &len) != 0);
}

/* Interface, InterfaceTimeout */
static void test_interfaces(void)
{
  static const char *const many[6][3] = {
      {"a0", "a1", "a2"}, {"b0", "b1", "b2"}, {"c0", "c1", "c2"},
      {"d0", "d1", "d2"}, {"e0", "e1", "e2"}, {"f0", "f1", "f2"}};
  tcl_conf_t conf;
  oconfig_item_t *ci;

  reset();
  parse(&conf);
  CHECK_EQ_U64(conf.interfaces_num, 0);
  CHECK_EQ_U64(conf.interface_timeout, TCL_DEFAULT_INTERFACE_TIMEOUT);

  reset();
  str(add("Interface"), "eth0");
  ci = add("interface");
  str(ci, "br-lan.100");
  str(ci, "wg0");
  num(add("InterfaceTimeout"), 5);
  parse(&conf);
  CHECK(conf.error[0] == '\0');
  CHECK_EQ_U64(conf.interfaces_num, 3);
  CHECK(strcmp(conf.interfaces[0], "eth0") == 0);
  CHECK(strcmp(conf.interfaces[1], "br-lan.100") == 0);
  CHECK(strcmp(conf.interfaces[2], "wg0") == 0);
  CHECK_EQ_U64(conf.interface_timeout, 5);

  reset();
  str(add("Interface"), "0123456789abcdef"); /* 16 bytes: one too many */
  expect_error("interface too long", "Interface", "1 to 15 bytes");

  reset();
  str(add("Interface"), "eth0/1");
  expect_error("interface slash", "Interface", "without");

  reset();
  str(add("Interface"), "");
  expect_error("interface empty", "Interface", "1 to 15 bytes");

  reset();
  num(add("Interface"), 1);
  expect_error("interface number", "Interface", "interface names");

  reset();
  str(add("Interface"), "eth0");
  str(add("Interface"), "eth0");
  expect_error("interface twice", "Interface", "named twice");

  reset();
  for (int i = 0; i < 6; i++) { /* 18 names */
    ci = add("Interface");
    for (int j = 0; j < 3; j++)
      str(ci, many[i][j]);
  }
  expect_error("interfaces too many", "Interface", "at most 16");

  reset();
  num(add("InterfaceTimeout"), 0);
  expect_error("interface timeout 0", "InterfaceTimeout", "whole number");
}

/* KEY with the ports FIRST..LAST as its values. */
static oconfig_value_t port_values[4][2 * TCL_MAX_PORTS];
static void ports(int list, const char *key, int first, int last)
{
  oconfig_item_t *ci = add(key);

  ci->values = port_values[list];
  for (int p = first; p <= last; p++)
    num(ci, p);
}

/*
 * RemotePort and IgnoreRemotePort fill one kernel table of TCL_MAX_PORTS
 * entries (tcl_rports), LocalPort and IgnoreLocalPort another (tcl_lports):
 * the limit is on distinct ports of both keys together.
 */
static void test_port_limits(void)
{
  static const char *const pairs[2][2] = {
      {"RemotePort", "IgnoreRemotePort"}, {"LocalPort", "IgnoreLocalPort"}};
  tcl_conf_t conf;

  for (int k = 0; k < 2; k++) {
    const char *inc = pairs[k][0], *ign = pairs[k][1];
    size_t *inc_num = k ? &conf.lports_num : &conf.rports_num;
    size_t *ign_num = k ? &conf.ignore_lports_num : &conf.ignore_rports_num;

    /* 128 distinct: 100 + 78, 50 of them in both lists */
    reset();
    ports(0, inc, 1, 100);
    ports(1, ign, 51, 128);
    parse(&conf);
    CHECK(conf.error[0] == '\0');
    CHECK_EQ_U64(*inc_num, 100);
    CHECK_EQ_U64(*ign_num, 78);

    /* repeats within one key take no room */
    reset();
    ports(0, inc, 1, 128);
    ports(1, inc, 1, 128);
    parse(&conf);
    CHECK(conf.error[0] == '\0');
    CHECK_EQ_U64(*inc_num, 128);

    /* 129 distinct: refused, naming the key, both keys and the limit */
    reset();
    ports(0, inc, 1, 100);
    ports(1, ign, 101, 129);
    expect_error("129 distinct ports", ign, "at most 128 distinct ports");
    CHECK(strstr(mock_last_log, inc) != NULL);
    CHECK(strstr(mock_last_log, "port 129 would be one more") != NULL);

    reset();
    ports(0, inc, 1, 129);
    expect_error("129 ports in one key", inc, "at most 128 distinct ports");
  }
}

int main(void)
{
  RUN_TEST(test_interfaces);
  RUN_TEST(test_port_limits);
  RUN_TEST(test_breakdowns_and_filters);
  RUN_TEST(test_breakdown_errors);
  RUN_TEST(test_parse_cidr);
  RUN_TEST(test_defaults);
  RUN_TEST(test_good_values);
  RUN_TEST(test_bad_values);
  UNIT_END();
}
