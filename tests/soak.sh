#!/usr/bin/env bash
# Soak: a sustained high connect rate with collectd and the plugin running.
# At the end the totals collectd dispatched equal the connects the clients
# made, exactly; after the warm-up collectd's RSS, the memory of the BPF maps
# it holds, its descriptors and its threads are flat.
#
# The test suite runs a short variant; `make soak` runs it for minutes:
#   SOAK_SECONDS (20)        load duration
#   SOAK_WARMUP (a fifth, at least 5)  seconds excluded from the flatness check
#   SOAK_CONCURRENCY (2)     client threads per batch
#   SOAK_RSS_TOL_KB (1024)   allowed RSS spread after the warm-up
#   SOAK_MAP_TOL (65536)     allowed BPF map memory spread after the warm-up (bytes)
#   SOAK_BLOCK               extra lines for <Plugin tcpconnlat>
#                            (default "By remote_port family")
# Samples go to $TCL_WORK/soak.tsv (kept with TCL_KEEP=1). A plugin built
# with --enable-sanitizers runs with the sanitizer runtimes preloaded; its
# reports fail the test (RSS is then not checked: ASan's quarantine grows).
#
# collectd runs in the test's own network namespace with OwnNetnsOnly true:
# only the test's connects count.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init
tcl_netns_create

SECS=${SOAK_SECONDS:-20}
WARMUP=${SOAK_WARMUP:-$((SECS / 5 > 5 ? SECS / 5 : 5))}
CONC=${SOAK_CONCURRENCY:-2}
RSS_TOL=${SOAK_RSS_TOL_KB:-1024}
MAP_TOL=${SOAK_MAP_TOL:-65536}
BLOCK=${SOAK_BLOCK-"By remote_port family"}
((SECS > WARMUP)) || fail "SOAK_SECONDS ($SECS) must exceed the warm-up ($WARMUP)"

ALL=tcpconnlat-all
SELF=tcpconnlat-self
EST=$ALL/total_connections-established
REF=$ALL/total_connections-refused

out4="$TCL_WORK/listen4" out6="$TCL_WORK/listen6"
tcl_spawn in_ns "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 -b 4096 >"$out4"
tcl_spawn in_ns "$TCL_TEST_BIN/tcpclient" listen -a ::1 -p 0 -b 4096 >"$out6"
wait_until 10 "IPv4 listener" grep -q '^ready ' "$out4"
wait_until 10 "IPv6 listener" grep -q '^ready ' "$out6"
PORT4=$(awk '/^ready /{print $2}' "$out4")
PORT6=$(awk '/^ready /{print $2}' "$out6")

# A plugin built with --enable-sanitizers needs the sanitizer runtimes
# preloaded into collectd; their reports (leaks at exit included) go to
# $TCL_WORK/asan.* and ubsan.* and fail the test.
tcl_sanitizer_env

collectd_start "OwnNetnsOnly true
$BLOCK" "" ip netns exec "$TCL_NS" "${SAN_ENV[@]}"
wait_rows "$EST" 1
base_est=$(csv_last "$EST")
base_ref=$(csv_last "$REF")

rss_kb() { awk '/^VmRSS:/{print $2}' /proc/"$TCL_COLLECTD_PID"/status; }
threads() { awk '/^Threads:/{print $2}' /proc/"$TCL_COLLECTD_PID"/status; }
# (the fewest of three looks: the csv writer holds a file only while writing)
fds() {
	local i n min=
	for i in 1 2 3; do
		n=$(find /proc/"$TCL_COLLECTD_PID"/fd -mindepth 1 2>/dev/null | wc -l)
		[[ -z "$min" || $n -lt $min ]] && min=$n
	done
	echo "$min"
}

# The load: batches of connects (IPv4, IPv6, and a few refusals) until the
# deadline. Each batch's own summary is the ground truth.
S4=$TCL_WORK/summaries4 S6=$TCL_WORK/summaries6 SR=$TCL_WORK/summaries_refused
: >"$S4"
: >"$S6"
: >"$SR"
load() {
	local end=$1 b=0
	while (($(date +%s) < end)); do
		b=$((b + 1))
		in_ns "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p "$PORT4" -n 3000 -c "$CONC" -q 2>>"$S4" >/dev/null
		in_ns "$TCL_TEST_BIN/tcpclient" connect -a ::1 -p "$PORT6" -n 1000 -c "$CONC" -q 2>>"$S6" >/dev/null
		if ((b % 4 == 0)); then
			in_ns "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p 1 -n 100 -q 2>>"$SR" >/dev/null
		fi
	done
}
start=$(date +%s)
end=$((start + SECS))
tcl_spawn load "$end"
LOAD_PID=${_TCL_PIDS[-1]}

SAMPLES=$TCL_WORK/soak.tsv
echo -e "t\trss_kb\tmaps_bytes\tfds\tthreads" >"$SAMPLES"
while kill -0 "$LOAD_PID" 2>/dev/null; do
	collectd_alive || fail "collectd died during the soak"
	echo -e "$(($(date +%s) - start))\t$(rss_kb)\t$(tcl_maps_bytes)\t$(fds)\t$(threads)" >>"$SAMPLES"
	sleep 1
done
wait "$LOAD_PID" || fail "the load generator failed"
echo -e "$(($(date +%s) - start))\t$(rss_kb)\t$(tcl_maps_bytes)\t$(fds)\t$(threads)" >>"$SAMPLES"

# Ground truth from the clients.
tally() { # FILE -> ok refused other
	awk '/^summary/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); c[kv[1]] += kv[2] }
	} END { print c["ok"] + 0, c["refused"] + 0, c["timeout"] + c["unreachable"] + c["aborted"] + c["other"] }' "$1"
}
read -r ok4 r4 o4 < <(tally "$S4")
read -r ok6 r6 o6 < <(tally "$S6")
read -r okr refused orr < <(tally "$SR")
ok=$((ok4 + ok6))
batches=$(cat "$S4" "$S6" "$SR" | grep -c '^summary' || true)
((ok4 > 0 && ok6 > 0)) || fail "the load made no connects"
((r4 + r6 + o4 + o6 + okr + orr == 0)) ||
	fail "clients saw unexpected results: $(cat "$S4" "$S6" "$SR" | grep -v ' timeout=0 unreachable=0 aborted=0 other=0' | head -n 3)"
note "load: $ok established + $refused refused in $SECS s ($(((ok + refused) / SECS)) connects/s, $batches batches)"

# The dispatched totals equal the connects made, exactly, and stay there.
wait_value "$EST" $((base_est + ok)) 20
wait_value "$REF" $((base_ref + refused)) 20
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 2))
[[ $(csv_last "$EST") == $((base_est + ok)) && $(csv_last "$REF") == $((base_ref + refused)) ]] ||
	fail "the totals moved past the connects made"
if [[ "$BLOCK" == "By remote_port family" ]]; then
	# the breakdown is exact too (instance: labels in their fixed order)
	[[ $(csv_last "tcpconnlat-family-ipv4_remoteport-$PORT4/total_connections-established") == "$ok4" ]] ||
		fail "series family-ipv4_remoteport-$PORT4: $(csv_last "tcpconnlat-family-ipv4_remoteport-$PORT4/total_connections-established"), expected $ok4"
	[[ $(csv_last "tcpconnlat-family-ipv6_remoteport-$PORT6/total_connections-established") == "$ok6" ]] ||
		fail "series family-ipv6_remoteport-$PORT6: $(csv_last "tcpconnlat-family-ipv6_remoteport-$PORT6/total_connections-established"), expected $ok6"
	[[ $(csv_last "tcpconnlat-family-ipv4_remoteport-1/total_connections-refused") == "$refused" ]] ||
		fail "series family-ipv4_remoteport-1: $(csv_last "tcpconnlat-family-ipv4_remoteport-1/total_connections-refused"), expected $refused"
fi
for c in stats_dropped series_overflow; do
	[[ $(csv_last "$SELF/derive-$c") == 0 ]] || fail "self/derive-$c is $(csv_last "$SELF/derive-$c")"
done
pass "dispatched totals = connects made: established $ok ($ok4 IPv4, $ok6 IPv6), refused $refused; nothing dropped"

# Flat after the warm-up. A sample with a field missing would be read as a
# shifted row: refuse it by name instead.
bad=$(awk -F'\t' 'NR > 1 && (NF != 5 || $2 !~ /^[0-9]+$/ || $3 !~ /^[0-9]+$/ || $4 !~ /^[0-9]+$/ || $5 !~ /^[0-9]+$/)' "$SAMPLES" | head -n 1)
[[ -z "$bad" ]] || fail "a sample of collectd's resources is incomplete: '$bad' (t rss_kb maps_bytes fds threads; $SAMPLES)"
read -r n rmin rmax mmin mmax fmin fmax tmin tmax < <(awk -v w="$WARMUP" -F'\t' 'NR > 1 && $1 >= w {
		n++
		if (n == 1 || $2 < rmin) rmin = $2; if (n == 1 || $2 > rmax) rmax = $2
		if (n == 1 || $3 < mmin) mmin = $3; if (n == 1 || $3 > mmax) mmax = $3
		if (n == 1 || $4 < fmin) fmin = $4; if (n == 1 || $4 > fmax) fmax = $4
		if (n == 1 || $5 < tmin) tmin = $5; if (n == 1 || $5 > tmax) tmax = $5
	} END { print n + 0, rmin, rmax, mmin, mmax, fmin, fmax, tmin, tmax }' "$SAMPLES")
((n >= 3)) || fail "only $n samples after the warm-up"
note "after ${WARMUP}s warm-up ($n samples): RSS $rmin..$rmax kB, BPF maps $mmin..$mmax B, fds $fmin..$fmax, threads $tmin..$tmax"
((${#SAN_ENV[@]} > 0 || rmax - rmin <= RSS_TOL)) || fail "collectd's RSS grew by $((rmax - rmin)) kB after the warm-up (tolerance $RSS_TOL kB; see $SAMPLES)"
((mmax - mmin <= MAP_TOL)) || fail "BPF map memory grew by $((mmax - mmin)) B after the warm-up (tolerance $MAP_TOL B)"
((fmin == fmax)) || fail "collectd's descriptors changed: $fmin..$fmax"
((tmin == tmax)) || fail "collectd's threads changed: $tmin..$tmax"
pass "flat after the warm-up: RSS spread $((rmax - rmin)) kB, BPF maps $((mmax - mmin)) B, descriptors $fmin, threads $tmin"

collectd_stop
no_sanitizer_reports
wait_no_bpf_left "after the soak"
grep -qiE 'segfault|assert' "$TCL_WORK/collectd.log" && fail "collectd logged a crash"
pass "soak of $SECS s done"
