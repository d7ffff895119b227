#!/usr/bin/env bash
# Real back ends, end to end: one collectd with the built plugin sends to a
# real carbon-cache (write_graphite), a real InfluxDB 1.x (network plugin ->
# InfluxDB's collectd listener) and serves write_prometheus. The test makes a
# known number of connects and reads every store back:
#   - the established and refused totals equal what the test made (plus the
#     connections write_graphite itself made to carbon, counted by carbon);
#   - every percentile, total and bucket is there under the name the README
#     documents, and nothing else is;
#   - no NaN is stored as a number, no path, series or label is broken;
#   - the bucket rates add up to the established total;
#   - with "By process", the breakdown series (plugin instance
#     process-<comm>) arrive intact too, with the test client's own totals,
#     and the README's "slowest processes" query finds them.
#
# Isolation: collectd (with OwnNetnsOnly true) and the test's connects run in
# a namespace of their own ("agent"); the servers run in a second one
# ("servers"), joined by a veth pair (10.232.1.0/24). The queries run from
# the servers' namespace, so they are never counted.
set -euo pipefail
here=$(dirname "$0")
. "$here/lib/collectd.sh"
. "$here/lib/backends.sh"

be_require
be_init

HOST=tcl-backends.example # a dot: write_graphite escapes it, the others keep it
GHOST=${HOST//./_}
S_ADDR=10.232.1.1
A_ADDR=10.232.1.2
CARBON_PORT=2003
CAPTURE_PORT=2013
INFLUX_COLLECTD_PORT=25826
PROM_URL="http://$A_ADDR:9103/metrics"
ALL="$GHOST.tcpconnlat-all"

be_netns S
be_netns A
be_link "$S" tbe0 "$S_ADDR" "$A" tbe1 "$A_ADDR"

be_carbon_start "$S" "$S_ADDR" "$CARBON_PORT"
be_influxd_start "$S" "$S_ADDR" "$INFLUX_COLLECTD_PORT"
# A plain UDP sink that keeps write_graphite's lines exactly as sent.
be_spawn capture "$S" "$BE_PY" -u -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
out = open(sys.argv[3], "ab", buffering=0)
while True:
    out.write(s.recv(65535))
' "$S_ADDR" "$CAPTURE_PORT" "$TCL_WORK/graphite-lines"
wait_until 10 "the line capture to bind" be_udp_bound "$S" "$CAPTURE_PORT"
note "carbon-cache, influxd and the line capture are up"

be_spawn listen4 "$A" "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0
be_spawn listen6 "$A" "$TCL_TEST_BIN/tcpclient" listen -a ::1 -p 0
wait_until 10 "IPv4 listener" grep -q '^ready ' "$TCL_WORK/listen4.log"
wait_until 10 "IPv6 listener" grep -q '^ready ' "$TCL_WORK/listen6.log"
PORT4=$(awk '/^ready /{print $2}' "$TCL_WORK/listen4.log")
PORT6=$(awk '/^ready /{print $2}' "$TCL_WORK/listen6.log")

# The configuration the README documents, one block per back end. Node
# "carbon" stores the totals as counts, node "rates" keeps write_graphite's
# default (StoreRates true) under the prefix "rates.".
conf="$(be_collectd_conf_head agent "$HOST")
<LoadPlugin write_graphite>
  FlushInterval 1
</LoadPlugin>
<Plugin write_graphite>
  <Node \"carbon\">
    Host \"$S_ADDR\"
    Port \"$CARBON_PORT\"
    Protocol \"tcp\"
    StoreRates false
  </Node>
  <Node \"rates\">
    Host \"$S_ADDR\"
    Port \"$CARBON_PORT\"
    Protocol \"tcp\"
    Prefix \"rates.\"
  </Node>
  <Node \"capture\">
    Host \"$S_ADDR\"
    Port \"$CAPTURE_PORT\"
    Protocol \"udp\"
    StoreRates false
  </Node>
</Plugin>
<LoadPlugin network>
  FlushInterval 1
</LoadPlugin>
<Plugin network>
  Server \"$S_ADDR\" \"$INFLUX_COLLECTD_PORT\"
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host \"$A_ADDR\"
  Port \"9103\"
</Plugin>
PluginDir \"$TCL_PLUGIN_DIR\"
LoadPlugin tcpconnlat
<Plugin tcpconnlat>
  OwnNetnsOnly true
  By process
  # the exact-path checks below are about the outbound series; inbound
  # series are tests/inbound.sh's
  Inbound false
</Plugin>"
be_collectd_start agent "$A" "$conf"
AGENT_PID=$BE_PID

# ---------------------------------------------------------------- helpers

influx_last() { # TYPE_INSTANCE [PLUGIN_INSTANCE] of total_connections
	be_influx_scalar "SELECT last(\"value\") FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" = '${2:-all}' AND \"type\" = 'total_connections' AND \"type_instance\" = '$1'"
}
prom_scrape() { be_prom_scrape "$S" "$PROM_URL" >"$TCL_WORK/prom.txt.tmp" && mv "$TCL_WORK/prom.txt.tmp" "$TCL_WORK/prom.txt"; }
prom_get() { # FAMILY TYPE_LABEL [PLUGIN_INSTANCE]
	be_prom_value "$TCL_WORK/prom.txt" "$1" "tcpconnlat=\"${3:-all}\",type=\"$2\",instance=\"$HOST\""
}
# "graphite influx prometheus" values of total_connections-TI [of PLUGIN_INSTANCE]
store_totals() {
	local g i p pi=${2:-all}
	g=$(be_whisper_last "$GHOST.tcpconnlat-$pi.total_connections-$1")
	i=$(influx_last "$1" "$pi" || true)
	p=$(prom_get collectd_tcpconnlat_total_connections_total "$1" "$pi" || true)
	echo "${g:-none} ${i:-none} ${p:-none}"
}
all_equal() { # WANT VALUE...
	local want=$1 v
	shift
	for v; do
		awk -v a="$v" -v b="$want" 'BEGIN { exit !(a ~ /^[0-9.e+]+$/ && a + 0 == b + 0) }' || return 1
	done
}
is_finite_latency() { awk -v v="$1" 'BEGIN { exit !(v ~ /^[0-9.e+-]+$/ && v + 0 > 0 && v + 0 < 10) }'; }

# ---------------------------------------------------------------- data flows

_first_data() {
	prom_scrape 2>/dev/null || return 1
	local t
	t=$(store_totals established)
	[[ $t != *none* ]]
}
wait_until 20 "the first values in carbon, InfluxDB and write_prometheus" _first_data
note "first values arrived: established (graphite influx prometheus) = $(store_totals established)"

# ---------------------------------------------------------------- connects

run_client() { # ADDR PORT COUNT -> the client's summary line
	ip netns exec "$A" "$TCL_TEST_BIN/tcpclient" connect -a "$1" -p "$2" -n "$3" -q 2>&1 >/dev/null |
		grep '^summary'
}
expect_summary() { # SUMMARY KEY WANT
	local got
	got=$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")
	[[ $got == "$3" ]] || fail "client saw $2=$got, expected $3 ($1)"
}
N4=40 N6=20 K4=10 K6=5
s=$(run_client 127.0.0.1 "$PORT4" $N4) && expect_summary "$s" ok $N4
s=$(run_client ::1 "$PORT6" $N6) && expect_summary "$s" ok $N6
s=$(run_client 127.0.0.1 1 $K4) && expect_summary "$s" refused $K4
s=$(run_client ::1 1 $K6) && expect_summary "$s" refused $K6
N_OK=$((N4 + N6)) N_REF=$((K4 + K6))
note "made $N_OK established and $N_REF refused connects"

# write_prometheus shows only the newest interval: the one that holds the
# connects has finite percentiles (watch for it now, it lasts one interval).
_prom_p99_finite() {
	prom_scrape 2>/dev/null || return 1
	is_finite_latency "$(prom_get collectd_tcpconnlat_latency percentile-99 || echo none)"
}
wait_until 10 "write_prometheus to show a finite percentile-99" _prom_p99_finite
note "write_prometheus, busy interval: $(grep 'tcpconnlat="all",type="percentile-99"' "$TCL_WORK/prom.txt")"

# Totals: host-wide (all), what the test made plus write_graphite's own TCP
# connections to carbon (the plugin counts them too: they are connects from
# that namespace; carbon logs each one it accepts); and the breakdown series
# of the test's client process, exactly what it made.
_totals_reached() {
	local e r pe pr
	prom_scrape 2>/dev/null || return 1
	WANT_EST=$((N_OK + $(be_carbon_conns)))
	e=$(store_totals established)
	r=$(store_totals refused)
	pe=$(store_totals established process-tcpclient)
	pr=$(store_totals refused process-tcpclient)
	LAST="all: established (graphite influx prometheus) = $e, want $WANT_EST; refused = $r, want $N_REF;"
	LAST+=" process-tcpclient: established = $pe, want $N_OK; refused = $pr, want $N_REF"
	# shellcheck disable=SC2086 # three values each
	all_equal "$WANT_EST" $e && all_equal "$N_REF" $r && all_equal "$N_OK" $pe && all_equal "$N_REF" $pr
}
LAST=
be_wait 20 _totals_reached || fail "totals not reached in 20 s: $LAST"
G=$(be_carbon_conns)
pass "totals in Graphite, InfluxDB and Prometheus: all: established $WANT_EST ($N_OK + $G write_graphite connections), refused $N_REF; process-tcpclient: $N_OK and $N_REF"

# ... and they stay there for two more intervals.
_est_points() { be_influx_scalar "SELECT count(\"value\") FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" = 'all' AND \"type\" = 'total_connections' AND \"type_instance\" = 'established'"; }
n0=$(_est_points)
_two_more() { (($(_est_points) >= n0 + 2)); }
wait_until 10 "two more intervals in InfluxDB" _two_more
_totals_reached || fail "totals moved after the connects: $LAST"
[[ $(be_carbon_conns) == "$G" ]] || fail "write_graphite reconnected to carbon during the test"

# An idle interval: write_prometheus shows the NaN percentiles as it prints them.
_prom_p99_nan() {
	prom_scrape 2>/dev/null || return 1
	[[ $(prom_get collectd_tcpconnlat_latency percentile-99 || true) == nan ]]
}
wait_until 10 "write_prometheus to show an idle interval" _prom_p99_nan
note "write_prometheus, idle interval: $(grep 'tcpconnlat="all",type="percentile-99"' "$TCL_WORK/prom.txt")"

# ---------------------------------------------------------------- Prometheus

prom_scrape
be_prom_check_text "$TCL_WORK/prom.txt" >&2 || fail "write_prometheus served malformed lines (above)"
while read -r type ti; do
	case $type in
	latency) fam=collectd_tcpconnlat_latency ;;
	bucket) fam=collectd_tcpconnlat_bucket ;;
	total_connections) fam=collectd_tcpconnlat_total_connections_total ;;
	esac
	prom_get "$fam" "$ti" >/dev/null || fail "write_prometheus: no $fam{tcpconnlat=\"all\",type=\"$ti\",instance=\"$HOST\"}"
done < <(be_expected_values)
prom_get collectd_tcpconnlat_gauge series self >/dev/null || fail "write_prometheus: no self series gauge"
prom_get collectd_tcpconnlat_derive_total filtered self >/dev/null || fail "write_prometheus: no self filtered counter"
grep -qx '# TYPE collectd_tcpconnlat_total_connections_total counter' "$TCL_WORK/prom.txt" || fail "totals are not a counter"
grep -qx '# TYPE collectd_tcpconnlat_bucket gauge' "$TCL_WORK/prom.txt" || fail "buckets are not a gauge"
grep -qx '# TYPE collectd_tcpconnlat_latency gauge' "$TCL_WORK/prom.txt" || fail "latencies are not a gauge"
if grep -E '^collectd_tcpconnlat' "$TCL_WORK/prom.txt" | grep -qiE ' -nan( |$)'; then
	fail "write_prometheus printed -nan, which Prometheus cannot parse"
fi
pass "Prometheus: well-formed exposition, every documented series, counters and gauges as documented; idle percentiles print as 'nan'"

# ---------------------------------------------------------------- the stores at rest

# Stop collectd: nothing more is sent, and the servers get the last values
# (write_graphite and the network plugin flush at shutdown).
be_stop "$AGENT_PID" 15

# ---------------------------------------------------------------- Graphite

# 1. Exactly the documented paths of "all", escaped once (host and bucket
#    dots -> _); "self" holds the required ones and only well-formed others.
expected_paths() { # PREFIX
	local type ti
	while read -r type ti; do
		echo "$1$ALL.$type-${ti//./_}"
	done < <(be_expected_values)
}
SELF_PATH_RE="^(rates\.)?${GHOST}\.tcpconnlat-self\.$BE_SELF_RE\$"
# breakdown series: process-<encoded comm>, the same type instances as "all"
PROC_PATH_RE="^(rates\.)?${GHOST}\.tcpconnlat-process-[A-Za-z0-9_-]+\.(latency-(percentile-[0-9_]+|average|max)|total_connections-[a-z_]+|bucket-latency-[0-9_]+(inf)?)\$"
{ expected_paths "" && expected_paths "rates."; } | sort >"$TCL_WORK/paths.want"
be_whisper_metrics >"$TCL_WORK/paths.got"
grep -v "^\(rates\.\)\?$GHOST\.tcpconnlat-\(self\|process-[^.]*\)\." "$TCL_WORK/paths.got" |
	diff -u "$TCL_WORK/paths.want" - >&2 ||
	fail "carbon stored other metric paths than the documented ones (diff above)"
for prefix in "" "rates."; do
	while read -r type ti; do
		grep -qx "$prefix$GHOST\.tcpconnlat-self\.$type-$ti" "$TCL_WORK/paths.got" ||
			fail "Graphite: no $prefix$GHOST.tcpconnlat-self.$type-$ti"
	done < <(be_expected_self)
done
bad_self=$(grep "^\(rates\.\)\?$GHOST\.tcpconnlat-self\." "$TCL_WORK/paths.got" | grep -vE "$SELF_PATH_RE" || true)
[[ -z $bad_self ]] || fail "Graphite: malformed self paths: $bad_self"
bad_proc=$(grep "^\(rates\.\)\?$GHOST\.tcpconnlat-process-" "$TCL_WORK/paths.got" | grep -vE "$PROC_PATH_RE" || true)
[[ -z $bad_proc ]] || fail "Graphite: malformed breakdown paths: $bad_proc"
expected_paths "" | sed "s/\.tcpconnlat-all\./.tcpconnlat-process-tcpclient./" | while read -r m; do
	grep -qx "$m" "$TCL_WORK/paths.got" || fail "Graphite: no $m"
done
# no stray directory either (an unescaped dot would make one)
stray=$(cd "$BE_WHISPER" && find . -mindepth 1 -type d |
	grep -vxE "\./(rates(/$GHOST)?|$GHOST)(/tcpconnlat-(all|self|process-[A-Za-z0-9_-]+))?" || true)
[[ -z $stray ]] || fail "stray directories in the whisper tree: $stray"
pass "Graphite: the $(wc -l <"$TCL_WORK/paths.want") documented paths of all (e.g. $ALL.bucket-latency-0_001_0_0025, $ALL.latency-percentile-99_9), well-formed self and breakdown paths ($(grep -o 'tcpconnlat-process-[^.]*' "$TCL_WORK/paths.got" | sort -u | tr '\n' ' ')), nothing else"

# 2. The lines write_graphite sent, against what carbon stored.
# carbon writes its cache to whisper in the background: poll until every
# line sent has landed (or the deadline says it never will).
graphite_crosscheck() {
	"$BE_PY" - "$TCL_WORK/graphite-lines" "$TCL_WORK/paths.want" "$BE_WHISPER" "$SELF_PATH_RE" "$PROC_PATH_RE" \
		>"$TCL_WORK/graphite-check" <<-'EOF'
		import math, os, re, sys, time, whisper
		lines, want_file, root, self_re, proc_re = sys.argv[1:6]
		want = set(l.strip() for l in open(want_file))
		self_re = re.compile(self_re)
		proc_re = re.compile(proc_re)
		bad = []
		sent = {}        # (path, ts) -> value text
		dupes = set()
		nan_paths = set()
		raw = open(lines, 'rb').read().decode('ascii')
		for ln in raw.split('\n'):
		    if ln == '':
		        continue
		    m = re.match(r'^([A-Za-z0-9_.-]+) (\S+) ([0-9]+)\r$', ln)
		    if not m:
		        bad.append('malformed line: %r' % ln)
		        continue
		    path, val, ts = m.group(1), m.group(2), int(m.group(3))
		    if path not in want and not self_re.match(path) and not proc_re.match(path):
		        bad.append('undocumented path: %s' % path)
		    if val == 'nan':
		        nan_paths.add(path.split('.')[-1])
		    elif not re.match(r'^-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$', val):
		        bad.append('value is neither a number nor "nan": %r' % ln)
		    if (path, ts) in sent:
		        dupes.add((path, ts))
		    sent[(path, ts)] = val
		# NaN is sent only for the latency gauges of idle intervals.
		for p in nan_paths:
		    if not p.startswith('latency-'):
		        bad.append('nan sent for %s' % p)
		# Every line sent, as carbon stored it: NaN -> empty slot, numbers as sent.
		cache = {}
		now = int(time.time())
		stored_nan = 0
		for (path, ts), val in sorted(sent.items()):
		    if (path, ts) in dupes:
		        continue
		    if path not in cache:
		        f = os.path.join(root, *path.split('.')) + '.wsp'
		        (start, end, step), vals = whisper.fetch(f, now - 1800, now + 1)
		        cache[path] = dict((start + i * step, v) for i, v in enumerate(vals))
		    got = cache[path].get(ts)
		    if val == 'nan':
		        stored_nan += 1
		        if got is not None:
		            bad.append('%s at %d: sent nan, carbon stored %r' % (path, ts, got))
		    elif got is None or abs(got - float(val)) > 1e-9 * max(1.0, abs(got)):
		        bad.append('%s at %d: sent %s, carbon stored %r' % (path, ts, val, got))
		for b in bad[:20]:
		    print(b)
		print('lines=%d nan_lines=%d nan_paths=%s collisions=%d' % (
		    len(sent), stored_nan, ','.join(sorted(nan_paths)), len(dupes)))
		sys.exit(1 if bad else 0)
	EOF
}
be_wait 15 graphite_crosscheck || {
	head -n 21 "$TCL_WORK/graphite-check" >&2
	fail "write_graphite's lines and carbon's whisper files disagree"
}
summary=$(tail -n 1 "$TCL_WORK/graphite-check")
grep -q 'nan_lines=[1-9]' <<<"$summary" || fail "write_graphite sent no NaN for idle intervals ($summary)"
pass "Graphite: every line well-formed; NaN sent as 'nan' and dropped by carbon (empty slot), numbers stored as sent ($summary)"

# 3. Values: no NaN or infinity stored anywhere, percentiles plausible.
be_whisper_dump >"$TCL_WORK/whisper.dump"
if awk '$2 !~ /^-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?$/ { print; bad = 1 } END { exit !bad }' \
	"$TCL_WORK/whisper.dump" | head -n 5 >&2; then
	fail "whisper holds a value that is not a finite number"
fi
est_points=$(grep -c "^$ALL.total_connections-established " "$TCL_WORK/whisper.dump")
for p in 50 90 99 99.9; do
	m="$ALL.latency-percentile-${p//./_}"
	awk -v m="$m" '$1 == m { n++; if (!($2 > 0 && $2 < 10)) bad = 1 } END { exit !(n > 0 && !bad && n < '"$est_points"') }' \
		"$TCL_WORK/whisper.dump" || fail "$m: expected finite values in (0, 10) s in fewer slots than the totals"
done
pass "Graphite: percentiles finite where connects happened, empty slots elsewhere ($est_points slots of totals)"

# 4. Buckets: rate x interval, summed over every slot but the first, is the
# established total less the first interval's connects, within the jitter of
# collectd's reads: the plugin divides each count by the time between its two
# reads (about Interval; the first read comes moments after the baseline
# taken at init, so it has a span of its own), and whisper keeps only whole
# seconds, so that time cannot be read back: with a 1 s Interval one read
# 100 ms late moves its interval's figure by 10 %. So this is a bound on
# gross errors (a rate over the wrong span, lost or doubled intervals),
# 20 % + 2 connects; the exact check of rate x real span is InfluxDB's below,
# which keeps each value's own time, and exact counts come from the
# cumulative buckets (tests/fleet_quantiles.sh).
collisions=$(sed -n 's/.*collisions=\([0-9]*\).*/\1/p' <<<"$summary")
est_first=$(awk -v m="$ALL.total_connections-established" '$1 == m { printf "%.0f", $2; exit }' "$TCL_WORK/whisper.dump")
bsum=$(awk -v m="$ALL.bucket-latency-" -v i="$TCL_INTERVAL" 'index($1, m) == 1 { if (seen[$1]++) s += $2 * i } END { printf "%.0f", s }' "$TCL_WORK/whisper.dump")
want_b=$((WANT_EST - est_first))
if [[ $collisions == 0 ]]; then
	awk -v b="$bsum" -v w="$want_b" 'BEGIN { d = b - w; if (d < 0) d = -d; exit !(d <= w * 0.2 + 2) }' ||
		fail "Graphite buckets carry $bsum connects after the first interval, expected $want_b ($WANT_EST less $est_first in the first interval)"
	pass "Graphite: the buckets carry $bsum connects after the first interval, the totals $want_b"
else
	note "write_graphite sent two points for one whisper second $collisions times; bucket sum $bsum of $WANT_EST not checked"
fi

# 5. Node "rates" (StoreRates true): each total arrives as
#    (count - previous count) / (seconds between the two values), with the
#    exact times InfluxDB got for the same values; the first value after
#    collectd starts has no rate and leaves its slot empty.
be_influx_json "SELECT \"value\" FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" = 'all' AND \"type\" = 'total_connections' AND \"type_instance\" = 'established'" >"$TCL_WORK/est.json"
"$BE_PY" - "$TCL_WORK/est.json" "$(be_whisper_path "rates.$ALL.total_connections-established")" \
	>"$TCL_WORK/rates-check" <<-'EOF' || { cat "$TCL_WORK/rates-check" >&2; fail "write_graphite's rates do not match the counts"; }
	import json, math, sys, time, whisper
	d = json.load(open(sys.argv[1]))
	pts = [(t / 1e9, v) for t, v in d["results"][0]["series"][0]["values"]]
	now = int(time.time())
	(start, end, step), vals = whisper.fetch(sys.argv[2], now - 1800, now + 1)
	stored = dict((start + i * step, v) for i, v in enumerate(vals) if v is not None)
	sec = lambda t: int(math.floor(t + 0.5))  # write_graphite rounds to the second
	seconds = [sec(t) for t, _ in pts]
	bad, checked, total = [], 0, 0.0
	# (two values that round to the same second share one slot: skip those)
	if seconds.count(seconds[0]) == 1 and stored.get(seconds[0]) is not None:
	    bad.append("the first value has a rate: %r" % stored[seconds[0]])
	for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
	    if seconds.count(sec(t1)) > 1:
	        continue
	    want = (v1 - v0) / (t1 - t0)
	    got = stored.get(sec(t1))
	    if got is None or abs(got - want) > 2e-6 + 1e-6 * abs(want):
	        bad.append("at %d: rate %r stored, %r expected (%g connects in %.6f s)" % (sec(t1), got, want, v1 - v0, t1 - t0))
	    checked += 1
	    total += v1 - v0
	for b in bad[:10]:
	    print(b)
	print("%d rates checked, %g connects after the first value" % (checked, total))
	sys.exit(1 if bad or checked == 0 else 0)
EOF
pass "Graphite, StoreRates true: totals arrive as per-second rates over the real time between values ($(tail -n 1 "$TCL_WORK/rates-check"))"

# ---------------------------------------------------------------- InfluxDB

# Measurement <plugin>_<data source name>: tcpconnlat_value, and
# tcpconnlat_seconds for self's duration-read (type duration's source is
# "seconds" in types.db).
q_meas=$(be_influx_query 'SHOW MEASUREMENTS' | cut -f2 | tr '\n' ' ')
[[ $q_meas == "tcpconnlat_value " || $q_meas == "tcpconnlat_seconds tcpconnlat_value " ]] ||
	fail "InfluxDB measurements: '$q_meas', expected tcpconnlat_value (and tcpconnlat_seconds)"
be_influx_query 'SHOW SERIES' | cut -f2 | sort >"$TCL_WORK/series.got"
while read -r type ti; do
	echo "tcpconnlat_value,host=$HOST,instance=all,type=$type,type_instance=$ti"
done < <(be_expected_values) | sort >"$TCL_WORK/series.want"
grep -v ",instance=\(self\|process-[^,]*\)," "$TCL_WORK/series.got" | diff -u "$TCL_WORK/series.want" - >&2 ||
	fail "InfluxDB holds other series than the documented ones (diff above)"
while read -r type ti; do
	grep -qx "tcpconnlat_value,host=$HOST,instance=self,type=$type,type_instance=$ti" "$TCL_WORK/series.got" ||
		fail "InfluxDB: no self series $type-$ti"
done < <(be_expected_self)
bad_self=$(grep ",instance=self," "$TCL_WORK/series.got" |
	grep -vE "^tcpconnlat_(value|seconds),host=$HOST,instance=self,type=[a-z]+,type_instance=[a-z0-9_]+\$" || true)
[[ -z $bad_self ]] || fail "InfluxDB: malformed self series: $bad_self"
bad_proc=$(grep ",instance=process-" "$TCL_WORK/series.got" |
	grep -vE "^tcpconnlat_value,host=$HOST,instance=process-[A-Za-z0-9_-]+,type=(latency|total_connections|bucket),type_instance=[a-z0-9._-]+\$" || true)
[[ -z $bad_proc ]] || fail "InfluxDB: malformed breakdown series: $bad_proc"
pass "InfluxDB: measurement tcpconnlat_value, the $(wc -l <"$TCL_WORK/series.want") documented series of all, tags intact (type_instance=latency-0.001_0.0025, percentile-99.9), well-formed self series"

be_influx_query "SELECT count(\"value\"), min(\"value\"), max(\"value\") FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" = 'all' AND \"type\" = 'latency' GROUP BY \"type_instance\"" >"$TCL_WORK/influx.latency"
[[ $(wc -l <"$TCL_WORK/influx.latency") == 6 ]] || fail "InfluxDB: expected 6 latency series with values: $(cat "$TCL_WORK/influx.latency")"
while IFS=$'\t' read -r tags _count min max; do
	is_finite_latency "$min" && is_finite_latency "$max" || fail "InfluxDB: $tags has implausible values ($min .. $max)"
done <"$TCL_WORK/influx.latency"
pass "InfluxDB: all 6 latency series hold finite values in (0, 10) s"

# after the first interval (its span is not in the data): see Graphite above
ibsum=$(be_influx_bucket_counts "\"host\" = '$HOST' AND \"instance\" = 'all' AND \"type\" = 'bucket'" | awk -F'\t' '{ s += $2 } END { print s + 0 }')
ifirst=$(be_influx_scalar "SELECT first(\"value\") FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" = 'all' AND \"type\" = 'total_connections' AND \"type_instance\" = 'established'")
all_equal "$((WANT_EST - ${ifirst%.*}))" "$(printf '%.0f' "$ibsum")" ||
	fail "InfluxDB buckets carry $ibsum connects after the first interval, expected $((WANT_EST - ${ifirst%.*})) ($WANT_EST less $ifirst)"
pass "InfluxDB: the buckets carry all $((WANT_EST - ${ifirst%.*})) connects after the first interval (and $ifirst in it)"

# The README's queries.
be_influx_query "SELECT sum(\"failures\") FROM (SELECT non_negative_difference(\"value\") AS \"failures\" FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'total_connections' AND \"type_instance\" != 'established' AND time > now() - 1h GROUP BY \"host\", \"type_instance\") GROUP BY \"host\", \"type_instance\"" >"$TCL_WORK/q.failures"
awk -F'\t' -v h="host=$HOST,type_instance=refused" -v n="$N_REF" '$1 == h && $2 == n { ok = 1 } END { exit !ok }' "$TCL_WORK/q.failures" ||
	fail "README query 'failures by reason' did not give refused=$N_REF: $(cat "$TCL_WORK/q.failures")"
awk -F'\t' '$1 !~ /refused/ && $2 != 0 { exit 1 }' "$TCL_WORK/q.failures" ||
	fail "README query 'failures by reason' shows other failures: $(cat "$TCL_WORK/q.failures")"
be_influx_query "SELECT non_negative_derivative(last(\"value\"), 1s) FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'total_connections' AND \"type_instance\" != 'established' AND time > now() - 1h GROUP BY time(1s), \"host\", \"type_instance\" fill(none)" >"$TCL_WORK/q.failrate"
awk -F'\t' -v h="host=$HOST,type_instance=refused" '$1 == h && $2 > 0 { ok = 1 } END { exit !ok }' "$TCL_WORK/q.failrate" ||
	fail "README query 'failure rate by reason' shows no refusal rate"
be_influx_query "SELECT max(\"value\") FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'latency' AND \"type_instance\" = 'percentile-99' AND time > now() - 1h GROUP BY time(1m), \"host\" fill(none)" >"$TCL_WORK/q.p99"
awk -F'\t' -v h="host=$HOST" '$1 == h && $2 > 0 && $2 < 10 { ok = 1 } END { exit !ok }' "$TCL_WORK/q.p99" ||
	fail "README query 'p99 per host' gave nothing plausible: $(cat "$TCL_WORK/q.p99")"
be_influx_query "SELECT top(\"p99\", \"host\", \"instance\", 10) FROM (SELECT max(\"value\") AS \"p99\" FROM \"tcpconnlat_value\" WHERE \"instance\" =~ /^process-/ AND \"type\" = 'latency' AND \"type_instance\" = 'percentile-99' AND time > now() - 1h GROUP BY \"host\", \"instance\")" >"$TCL_WORK/q.slowest"
awk -F'\t' -v h="$HOST" '$3 == h && $4 == "process-tcpclient" && $2 > 0 && $2 < 10 { ok = 1 } END { exit !ok }' "$TCL_WORK/q.slowest" ||
	fail "README query 'slowest processes' did not list process-tcpclient: $(cat "$TCL_WORK/q.slowest")"
pass "InfluxDB: the README's queries (failures by reason, failure rate, p99 per host, slowest processes) answer as expected"

# ---------------------------------------------------------------- NaN in InfluxDB

# Every series (all, process-*) has one established point per interval, and
# that interval's six latency values are either all stored (connects
# happened) or all dropped as NaN by InfluxDB: the points it dropped as
# invalid are 6 x (established points - p99 points), summed over the series.
_nan_accounted() {
	local idle dropped
	idle=$(be_influx_query "SELECT count(\"value\") FROM \"tcpconnlat_value\" WHERE \"host\" = '$HOST' AND \"instance\" != 'self' AND ((\"type\" = 'total_connections' AND \"type_instance\" = 'established') OR (\"type\" = 'latency' AND \"type_instance\" = 'percentile-99')) GROUP BY \"instance\", \"type\"" |
		awk -F'\t' '$1 ~ /type=total_connections/ { s += $2 } $1 ~ /type=latency/ { s -= $2 } END { print s + 0 }')
	dropped=$(be_influx_stat collectd droppedPointsInvalid)
	LAST="idle series-intervals $idle, points InfluxDB dropped as invalid $dropped"
	[[ -n $idle && -n $dropped ]] && ((idle > 0 && dropped == 6 * idle))
}
be_wait 10 _nan_accounted || fail "InfluxDB NaN accounting: $LAST"
grep -q 'NaN is an unsupported value for field value' "$TCL_WORK/influxd.log" ||
	fail "influxd did not log the NaN points it dropped"
pass "InfluxDB: NaN values are dropped, never stored ($LAST)"

grep -iE 'write_graphite|network plugin|write_prometheus' "$TCL_WORK/agent.collectd.log" |
	grep -iE 'error|fail' >&2 && fail "a writer logged errors"
pass "back ends test done"
