#!/usr/bin/env bash
# contrib/graphs.sh draws what collectd's rrdtool writer stored: the real
# collectd with the built plugin and the rrdtool writer runs in a private
# network namespace (OwnNetnsOnly true) while connects succeed and fail there;
# then graphs.sh must write its PNGs, and the RRD files must hold the rates
# the graphs draw.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
tcl_require_root
command -v rrdtool >/dev/null || tcl_skip_or_fail "rrdtool is not installed (apt-get install rrdtool)"
[[ -f "$TCL_STOCK_PLUGINDIR/rrdtool.so" ]] || tcl_skip_or_fail "collectd's rrdtool plugin is missing"
tcl_init
# a work directory of its own name: sessions sharing a host clean up leftover
# /tmp/tcpconnlat-test.* directories
_old_work=$TCL_WORK
TCL_WORK=$(mktemp -d /tmp/tcl-graphs.XXXXXX)
chmod 755 "$TCL_WORK"
rmdir "$_old_work"
tcl_netns_create

tcl_spawn ip netns exec "$TCL_NS" "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 >"$TCL_WORK/listen"
wait_until 10 "the listener" grep -q '^ready ' "$TCL_WORK/listen"
PORT=$(awk '/^ready /{print $2}' "$TCL_WORK/listen")

mkdir -p "$TCL_WORK/rrd"
collectd_start "OwnNetnsOnly true" "LoadPlugin rrdtool
<Plugin rrdtool>
  DataDir \"$TCL_WORK/rrd\"
</Plugin>" ip netns exec "$TCL_NS"
grep -q 'plugin "rrdtool" successfully loaded' "$TCL_WORK/collectd.log" ||
	fail "collectd's rrdtool writer did not load (librrd8 missing?)"
EST=tcpconnlat-all/total_connections-established
wait_rows "$EST" 1
start=$(date +%s)
# Four seconds of connects: 20/s established, 2/s refused.
for _ in 1 2 3 4; do
	in_ns "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p "$PORT" -n 20 -q 2>/dev/null
	in_ns "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p 1 -n 2 -q 2>/dev/null
	sleep 1
done
end=$(date +%s)
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 2))
collectd_stop

hostdir=$TCL_WORK/rrd/$TCL_HOST
for f in latency-percentile-50 latency-max total_connections-established \
	total_connections-refused bucket-latency-0_0.0001; do
	[[ -f "$hostdir/tcpconnlat-all/$f.rrd" ]] || fail "no RRD file tcpconnlat-all/$f.rrd"
done
# The established rate the graphs draw: about 20/s while the connects ran.
max=$(rrdtool graph /dev/null --start "$start" --end "$end" \
	"DEF:e=$hostdir/tcpconnlat-all/total_connections-established.rrd:value:AVERAGE" \
	"VDEF:m=e,MAXIMUM" "PRINT:m:%.1lf" | tail -n 1)
awk -v m="$max" 'BEGIN { exit !(m >= 10 && m <= 40) }' ||
	fail "the RRD file's established rate peaked at $max/s, expected about 20/s"
pass "the rrdtool writer stored tcpconnlat's values (established peaked at $max/s)"

out=$TCL_WORK/png
"$TCL_SRCDIR/contrib/graphs.sh" -s $((start - 2)) -e $((end + 2)) -o "$out" "$hostdir" \
	>"$TCL_WORK/graphs.log" 2>&1 || fail "contrib/graphs.sh failed: $(cat "$TCL_WORK/graphs.log")"
grep -qi 'error' "$TCL_WORK/graphs.log" && fail "contrib/graphs.sh reported: $(cat "$TCL_WORK/graphs.log")"
for png in latency rates buckets; do
	f=$out/tcpconnlat-$png.png
	file -b "$f" 2>/dev/null | grep -q '^PNG image data' || fail "no PNG $f: $(cat "$TCL_WORK/graphs.log")"
done
if command -v python3 >/dev/null; then
	desc=$(file -b "$out/tcpconnlat-graphs.png")
	[[ "$desc" == "PNG image data"* ]] || fail "the combined image is not a PNG: $desc"
	pass "contrib/graphs.sh wrote the three graphs and the combined image ($desc)"
else
	pass "contrib/graphs.sh wrote the three graphs"
fi
