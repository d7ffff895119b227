/* SPDX-License-Identifier: MIT */
/*
 * What one series dispatches: bucket rates over the measured span, the
 * cumulative "le" counters with their names, and the average of torn reads.
 * collectd's plugin_dispatch_values is replaced by a recorder.
 */
#include "dispatch.c" /* the static helpers too */

#include "unit.h"

#define MAX_VALUES 256

static struct {
  char type[DATA_MAX_NAME_LEN];
  char type_instance[DATA_MAX_NAME_LEN];
  value_t value;
} got[MAX_VALUES];
static size_t ngot;

int plugin_dispatch_values(value_list_t const *vl)
{
  if (ngot < MAX_VALUES && vl->values_len == 1) {
    sstrncpy(got[ngot].type, vl->type, sizeof(got[ngot].type));
    sstrncpy(got[ngot].type_instance, vl->type_instance,
             sizeof(got[ngot].type_instance));
    got[ngot].value = vl->values[0];
    ngot++;
  }
  return 0;
}

/* The value dispatched as TYPE-TYPE_INSTANCE, or NULL. */
static const value_t *find(const char *type, const char *type_instance)
{
  for (size_t i = 0; i < ngot; i++)
    if (strcmp(got[i].type, type) == 0 &&
        strcmp(got[i].type_instance, type_instance) == 0)
      return &got[i].value;
  fprintf(stderr, "  not dispatched: %s-%s\n", type, type_instance);
  return NULL;
}

/* The value dispatched as TYPE-TYPE_INSTANCE; a failed check when there is
 * none (find names it), and then a value no check here accepts: NaN as a
 * gauge, 0x7ff8000000000000 as a derive. */
static const value_t *need(const char *type, const char *type_instance)
{
  static value_t poison;
  const value_t *v = find(type, type_instance);

  CHECK(v != NULL);
  if (v != NULL)
    return v;
  poison.gauge = NAN;
  return &poison;
}

static size_t count_type(const char *type)
{
  size_t n = 0;

  for (size_t i = 0; i < ngot; i++)
    n += strcmp(got[i].type, type) == 0;
  return n;
}

/* Three ranges: [0, 1 ms), [1 ms, 5 ms), [5 ms, inf). */
static void setup_conf(tcl_conf_t *conf, tcl_bucket_style_t style)
{
  memset(conf, 0, sizeof(*conf));
  conf->percentiles[0] = 50;
  conf->percentiles_num = 1;
  conf->buckets[0] = (tcl_range_t){0, 1000000};
  conf->buckets[1] = (tcl_range_t){1000000, 5000000};
  conf->buckets[2] = (tcl_range_t){5000000, UINT64_MAX};
  conf->buckets_num = 3;
  conf->report_percentiles = true;
  conf->report_buckets = true;
  conf->report_idle = true;
  conf->report_failures = true;
  conf->bucket_style = style;
  tcl_dispatch_prepare(conf);
  ngot = 0;
}

static tcl_entry_t entry(uint64_t ns, uint64_t count)
{
  return (tcl_entry_t){.slot = tcl_bucket_index(ns), .count = count,
                       .sum_ns = ns * count};
}

/*
 * Rates are counts over the time the interval really spanned: 40 connects in
 * a delta whose reads were 20 s apart are 2 per second, whatever Interval
 * says (it was 10 s: a failed read in between made the span double).
 */
static void test_rates_over_measured_span(void)
{
  tcl_conf_t conf;
  tcl_entry_t delta[] = {entry(500000, 10), entry(2000000, 30)};
  tcl_snapshot_t prev = {.taken_ns = 1000000000ULL};
  tcl_snapshot_t cur = {.taken_ns = 21000000000ULL};
  const value_t *v;

  setup_conf(&conf, TCL_BUCKETS_RATE);
  tcl_dispatch_series(&conf, "all", delta, 2, delta, 2,
                      tcl_snapshot_span_s(&prev, &cur), TCL_REASONS_OUTBOUND,
                      0);
  v = need("bucket", "latency-0_0.001");
  CHECK_NEAR(v->gauge, 10.0 / 20.0, 1e-9);
  v = need("bucket", "latency-0.001_0.005");
  CHECK_NEAR(v->gauge, 30.0 / 20.0, 1e-9);
  v = need("bucket", "latency-0.005_inf");
  CHECK_NEAR(v->gauge, 0, 0);
  /* no cumulative counters in this style */
  CHECK_EQ_U64(count_type("derive"), 0);
}

static void test_le_names(void)
{
  char buf[DATA_MAX_NAME_LEN];

  tcl_le_name(2500000, buf, sizeof(buf));
  CHECK(strcmp(buf, "latency-le_2500e-6") == 0);
  tcl_le_name(10000000000ULL, buf, sizeof(buf));
  CHECK(strcmp(buf, "latency-le_10000000e-6") == 0);
  tcl_le_name(1500, buf, sizeof(buf)); /* not a whole microsecond */
  CHECK(strcmp(buf, "latency-le_1500e-9") == 0);
  tcl_le_name(UINT64_MAX, buf, sizeof(buf));
  CHECK(strcmp(buf, "latency-le_+Inf") == 0);
  /* no character that write_graphite escapes (".", "/", white space) */
  CHECK(strpbrk("latency-le_2500e-6latency-le_+Inf", "./ \t") == NULL);
}

/*
 * Cumulative: counters of every connect since the series started (the
 * cumulative entries), at or below each distinct upper edge, then the count
 * and the latency sum; the same in an idle interval, ReportIdle or not.
 */
static void test_cumulative_counters(void)
{
  tcl_conf_t conf;
  tcl_entry_t cum[] = {entry(500000, 10), entry(2000000, 30),
                       entry(7000000, 5),
                       {.slot = TCL_SLOT_FAILURE_BASE, .count = 4}};
  const value_t *v;

  setup_conf(&conf, TCL_BUCKETS_CUMULATIVE);
  conf.report_idle = false;
  /* an idle interval: no delta at all */
  tcl_dispatch_series(&conf, "all", NULL, 0, cum, 4, 10.0,
                      TCL_REASONS_OUTBOUND, 0);
  CHECK_EQ_U64(count_type("bucket"), 0);
  CHECK_EQ_U64(count_type("derive"), 5);
  v = need("derive", "latency-le_1000e-6");
  CHECK_EQ_U64(v->derive, 10);
  v = need("derive", "latency-le_5000e-6");
  CHECK_EQ_U64(v->derive, 40);
  v = need("derive", "latency-le_+Inf");
  CHECK_EQ_U64(v->derive, 45);
  v = need("derive", "latency-count");
  CHECK_EQ_U64(v->derive, 45);
  v = need("derive", "latency-sum_ns");
  CHECK_EQ_U64(v->derive, 10 * 500000 + 30 * 2000000 + 5 * 7000000);
  v = need("total_connections", "established");
  CHECK_EQ_U64(v->derive, 45);
  v = need("total_connections", "refused");
  CHECK_EQ_U64(v->derive, 4);

  /* edges listed twice, or out of order, give one counter each, ascending */
  memset(&conf, 0, sizeof(conf));
  conf.buckets[0] = (tcl_range_t){5000000, UINT64_MAX};
  conf.buckets[1] = (tcl_range_t){0, 5000000};
  conf.buckets[2] = (tcl_range_t){1000000, 5000000};
  conf.buckets_num = 3;
  tcl_dispatch_prepare(&conf);
  CHECK_EQ_U64(tcl_le_num, 2);
  CHECK_EQ_U64(tcl_le_edges[0], 5000000);
  CHECK_EQ_U64(tcl_le_edges[1], UINT64_MAX);
}

/* A torn read (the sum of two connects with the count of one) does not pull
 * the interval's average out of the bucket. */
static void test_average_of_torn_read(void)
{
  tcl_conf_t conf;
  tcl_entry_t e = entry(1000000, 1);
  const value_t *v;

  e.sum_ns = 2000000;
  setup_conf(&conf, TCL_BUCKETS_RATE);
  tcl_dispatch_series(&conf, "all", &e, 1, &e, 1, 10.0, TCL_REASONS_OUTBOUND,
                      0);
  v = need("latency", "average");
  CHECK(v->gauge * 1e9 >= (double)tcl_bucket_lower_ns(e.slot) &&
        v->gauge * 1e9 <= (double)tcl_bucket_upper_ns(e.slot));
}

/* Established counts the connects without a latency too; the retransmitted
 * and requests totals come from their own slots, and only where asked. */
static void test_totals(void)
{
  tcl_conf_t conf;
  tcl_entry_t cum[] = {entry(500000, 10),
                       {.slot = TCL_SLOT_FAILURE_BASE, .count = 4},
                       {.slot = TCL_SLOT_RETRANSMITTED, .count = 3},
                       {.slot = TCL_SLOT_UNTIMED, .count = 2},
                       {.slot = TCL_SLOT_REQUESTS, .count = 20}};
  const value_t *v;

  setup_conf(&conf, TCL_BUCKETS_RATE);
  tcl_dispatch_series(&conf, "all", NULL, 0, cum, 5, 10.0,
                      TCL_REASONS_OUTBOUND, TCL_TOTAL_SYN_RETRANSMITTED);
  CHECK((v = find("total_connections", "established")) != NULL && v->derive == 12);
  CHECK((v = find("total_connections", "syn_retransmitted")) != NULL && v->derive == 3);
  CHECK((v = find("total_connections", "refused")) != NULL && v->derive == 4);
  CHECK(find("total_connections", "requests") == NULL);
  CHECK(find("total_connections", "synack_retransmitted") == NULL);

  setup_conf(&conf, TCL_BUCKETS_RATE);
  tcl_dispatch_series(&conf, "inbound", NULL, 0, cum, 5, 10.0,
                      TCL_REASONS_INBOUND,
                      TCL_TOTAL_SYNACK_RETRANSMITTED | TCL_TOTAL_REQUESTS);
  CHECK((v = find("total_connections", "synack_retransmitted")) != NULL && v->derive == 3);
  CHECK((v = find("total_connections", "requests")) != NULL && v->derive == 20);
  CHECK(find("total_connections", "refused") == NULL);
}

int main(void)
{
  RUN_TEST(test_totals);
  RUN_TEST(test_rates_over_measured_span);
  RUN_TEST(test_le_names);
  RUN_TEST(test_cumulative_counters);
  RUN_TEST(test_average_of_torn_read);
  UNIT_END();
}
