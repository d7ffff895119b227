/* SPDX-License-Identifier: MIT */
/*
 * Label sets as plugin instances: one documented, unambiguous encoding that
 * is safe in collectd identifiers, CSV/RRD file names, Graphite paths and
 * InfluxDB tags. Pure functions, unit-tested with hostile input.
 *
 * The plugin instance lists the labels in a fixed order, each as KEY-VALUE,
 * joined by "_":   process-curl_uid-1000_remoteport-443
 * Keys: process uid cgroup netns family remotenetwork remoteaddress
 * remoteport (lowercase letters only). Values keep A-Z a-z 0-9 and "-";
 * "_" becomes "__"; every other byte becomes "_" and two uppercase hex
 * digits ("." is "_2E", "/" is "_2F", " " is "_20"). After a "_", a second
 * "_" is a literal underscore, a hex digit starts an escape and a lowercase
 * letter starts the next key, so the encoding reads back one way only.
 * Addresses are written with "-" in place of "." and ":" (127-0-0-1,
 * fd00--1). An instance longer than collectd allows keeps its whole labels
 * that fit and ends in "_hash-XXXXXXXX", a hash of the whole encoding.
 */
#ifndef TCPCONNLAT_LABELS_H
#define TCPCONNLAT_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>

#include "tcpconnlat.h"

/* What a label set needs besides the kernel's struct: names to print. */
typedef struct {
  const char *const *network_names; /* RemoteNetwork names, by index */
  size_t networks_num;
  const char *cgroup_path; /* the cgroup's path, or NULL if unknown */
} tcl_label_names_t;

/* Escapes len bytes of in; returns the length written (out is NUL-ended,
 * truncated at an escape boundary when outlen is short). */
#define TCL_ESCAPED_SIZE(len) (3 * (len) + 1) /* room for any len bytes */
size_t tcl_escape_value(const char *in, size_t len, char *out, size_t outlen);

/* An address of the shared header's form (IPv6, IPv4 mapped) as text, the
 * IPv4 ones dotted: out needs INET6_ADDRSTRLEN bytes. */
void tcl_address_format(const uint8_t addr[16], uint8_t family, char *out,
                        size_t outlen);

/* The name of an enum tcl_reason ("refused", ...): the type instance of the
 * failure totals and the reason of a failure notification. "other" for a
 * value out of range. */
const char *tcl_reason_name(uint32_t reason);

/* The plugin instance of a label set under `by`. Returns its length. */
size_t tcl_labels_instance(const struct tcl_labels *l, uint32_t by,
                           const tcl_label_names_t *names, char *out,
                           size_t outlen);

#endif /* TCPCONNLAT_LABELS_H */
