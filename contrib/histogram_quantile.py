#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Quantiles from tcpconnlat's cumulative buckets (BucketStyle "cumulative").

Reads on standard input the JSON answer of a Graphite render request
(format=json) or of an InfluxDB 1.x query (/query) whose series are the
connects per "le" bucket over a time range, summed over hosts as the query
says (see README.md, "Sending to Graphite" and "Sending to InfluxDB"), and
prints one line per group of series and quantile:

    GROUP Q SECONDS

GROUP is what is left of a Graphite series name without its
"derive-latency-le_EDGE" part (the host with groupByNodes(..., 0, 2)), or the InfluxDB tags other than type_instance
("*" when nothing is left: the whole fleet). The estimate is the one
Prometheus' histogram_quantile() makes: find the bucket where the running
count reaches Q x the count of the "+Inf" bucket, interpolate linearly
inside it (from 0 for the first bucket), and answer the highest finite edge
when the rank falls in "+Inf".

Usage: histogram_quantile.py Q [Q...]     e.g. histogram_quantile.py 0.5 0.99
"""
import json
import math
import re
import sys

LE = re.compile(r"(?:derive-)?latency-le_([0-9]+e-[0-9]+|\+Inf)")


def groups_from_graphite(data):
    """Graphite: a list of {"target", "datapoints": [[value, time], ...]}."""
    for s in data:
        m = LE.search(s["target"])
        if m is None:
            continue
        group = (s["target"][:m.start()] + s["target"][m.end():]).strip(".-_")
        n = sum(v for v, _ in s["datapoints"] if v is not None)
        yield group or "*", float(m.group(1)), n


def groups_from_influxdb(data):
    """InfluxDB: {"results": [{"series": [{"tags", "values"}]}]}."""
    for result in data.get("results", []):
        if "error" in result:
            sys.exit("InfluxDB: %s" % result["error"])
        for s in result.get("series", []):
            tags = dict(s.get("tags") or {})
            m = LE.search(tags.pop("type_instance", ""))
            if m is None:
                continue
            group = ",".join("%s=%s" % kv for kv in sorted(tags.items()))
            n = sum(row[1] for row in s["values"] if row[1] is not None)
            yield group or "*", float(m.group(1)), n


def quantile(q, buckets):
    """buckets: [(le, cumulative count)], sorted by le, ending with +Inf."""
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if le == math.inf:
                return buckets[i - 1][0] if i > 0 else math.nan
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return math.nan


def main():
    qs = [float(q) for q in sys.argv[1:]]
    if not qs or not all(0 <= q <= 1 for q in qs):
        sys.exit(__doc__.strip().splitlines()[-1])
    data = json.load(sys.stdin)
    rows = groups_from_graphite(data) if isinstance(data, list) else groups_from_influxdb(data)
    groups = {}
    for group, le, n in rows:
        counts = groups.setdefault(group, {})
        counts[le] = counts.get(le, 0) + n
    if not groups:
        sys.exit("no latency-le_ series in the answer")
    for group in sorted(groups):
        buckets = sorted(groups[group].items())
        # counters read at different instants can be a little out of order
        for i in range(1, len(buckets)):
            if buckets[i][1] < buckets[i - 1][1]:
                buckets[i] = (buckets[i][0], buckets[i - 1][1])
        for q in qs:
            print("%s %g %.9g" % (group, q, quantile(q, buckets)))


if __name__ == "__main__":
    main()
