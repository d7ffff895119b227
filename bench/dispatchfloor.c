/* SPDX-License-Identifier: MIT */
/*
 * dispatchfloor - a collectd plugin for the benchmark (bench/run.sh): what
 * collectd itself charges a read callback per dispatched value.
 *
 *   LoadPlugin dispatchfloor
 *   <Plugin dispatchfloor>
 *     Values 29000       # gauges dispatched per read
 *     PerInstance 29     # values per plugin instance (as tcpconnlat's series)
 *   </Plugin>
 *
 * Each read dispatches Values gauges through plugin_dispatch_values(), with
 * the same identifiers' shape as tcpconnlat's (plugin instance per series,
 * type and type instance per value), and nothing else; then it dispatches
 * its own duration as dispatchfloor-self/duration-read. tcpconnlat's read
 * callback cannot be cheaper than this.
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"

static int df_values = 29000;
static int df_per_instance = 29;

static int df_config(const char *key, const char *value)
{
  if (strcasecmp(key, "Values") == 0)
    df_values = atoi(value);
  else if (strcasecmp(key, "PerInstance") == 0)
    df_per_instance = atoi(value);
  else
    return -1;
  if (df_values < 0 || df_per_instance < 1)
    return -1;
  return 0;
}

static void df_submit(const char *instance, const char *type,
                      const char *type_instance, value_t value)
{
  value_list_t vl = VALUE_LIST_INIT;

  vl.values = &value;
  vl.values_len = 1;
  sstrncpy(vl.plugin, "dispatchfloor", sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

static int df_read(void)
{
  cdtime_t begin = cdtime();
  char instance[DATA_MAX_NAME_LEN] = "", type_instance[DATA_MAX_NAME_LEN];

  for (int i = 0; i < df_values; i++) {
    if (i % df_per_instance == 0)
      snprintf(instance, sizeof(instance), "series-%d", i / df_per_instance);
    snprintf(type_instance, sizeof(type_instance), "v%d", i % df_per_instance);
    df_submit(instance, "gauge", type_instance, (value_t){.gauge = (gauge_t)i});
  }
  df_submit("self", "duration", "read",
            (value_t){.gauge = CDTIME_T_TO_DOUBLE(cdtime() - begin)});
  return 0;
}

static const char *df_keys[] = {"Values", "PerInstance"};

void module_register(void)
{
  plugin_register_config("dispatchfloor", df_config, df_keys,
                         STATIC_ARRAY_SIZE(df_keys));
  plugin_register_read("dispatchfloor", df_read);
}
