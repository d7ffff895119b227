#!/usr/bin/env bash
# The core, end to end: the real kernel, the real collectd with the built
# plugin and its CSV writer, real loopback connects. The ground truth is what
# the test's own client saw, never the plugin's output.
#
# Everything runs in a private network namespace, with collectd inside it and
# OwnNetnsOnly true: other traffic on the host cannot change the counts. A
# second check shows that without the filter the plugin sees that namespace
# from the host.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init
tcl_netns_create

ALL=tcpconnlat-all
EST=$ALL/total_connections-established
REF=$ALL/total_connections-refused

# Listeners on both families, and a port that refuses.
# Ports are chosen with tcl_spawn outside $( ), so the PID stays tracked.
out4="$TCL_WORK/listen4" out6="$TCL_WORK/listen6"
tcl_spawn ip netns exec "$TCL_NS" "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 >"$out4"
tcl_spawn ip netns exec "$TCL_NS" "$TCL_TEST_BIN/tcpclient" listen -a ::1 -p 0 >"$out6"
wait_until 10 "IPv4 listener" grep -q '^ready ' "$out4"
wait_until 10 "IPv6 listener" grep -q '^ready ' "$out6"
PORT4=$(awk '/^ready /{print $2}' "$out4")
PORT6=$(awk '/^ready /{print $2}' "$out6")
# A closed port: nothing listens in the fresh namespace but our listeners.
CLOSED=1

# run_client ADDR PORT COUNT -> the client's own summary line
run_client() {
	in_ns "$TCL_TEST_BIN/tcpclient" connect -a "$1" -p "$2" -n "$3" -q 2>&1 >/dev/null | grep '^summary'
}
expect_summary() { # SUMMARY KEY WANT
	local got
	got=$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")
	[[ "$got" == "$3" ]] || fail "client saw $2=$got, expected $3 ($1)"
}

collectd_start "OwnNetnsOnly true" "" ip netns exec "$TCL_NS"
grep -q "tcpconnlat plugin: measuring TCP connect latency through" "$TCL_WORK/collectd.log" ||
	fail "the plugin did not log its attach mode"
wait_rows "$EST" 1
base_est=$(csv_last "$EST")
base_ref=$(csv_last "$REF")
base_rows=$(csv_rows "$EST")
note "baseline: established=$base_est refused=$base_ref"

# Batch one: N IPv4 + M IPv6 + K refused.
N=60 M=40 K=25
s=$(run_client 127.0.0.1 "$PORT4" $N)
expect_summary "$s" ok $N
s=$(run_client ::1 "$PORT6" $M)
expect_summary "$s" ok $M
s=$(run_client 127.0.0.1 $CLOSED $K)
expect_summary "$s" refused $K

wait_value "$EST" $((base_est + N + M))
wait_value "$REF" $((base_ref + K))
# ... and nothing more arrives in the next two intervals.
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 2))
[[ $(csv_last "$EST") == $((base_est + N + M)) ]] || fail "established grew past $((base_est + N + M)): $(csv_last "$EST")"
[[ $(csv_last "$REF") == $((base_ref + K)) ]] || fail "refused grew past $((base_ref + K)): $(csv_last "$REF")"
pass "batch one: established +$((N + M)), refused +$K, exactly"

# Percentiles: every value written is NaN (no connects in that interval) or
# finite and positive, and the intervals of the batch have finite ones.
for p in 50 90 99 99.9; do
	name=$ALL/latency-percentile-$p
	finite=0
	while read -r v; do
		case $v in
		nan | -nan) ;;
		*)
			awk -v v="$v" 'BEGIN { exit !(v + 0 > 0 && v + 0 < 10) }' ||
				fail "percentile-$p has an implausible value $v"
			finite=$((finite + 1))
			;;
		esac
	done < <(csv_values_after "$name" "$base_rows")
	((finite > 0)) || fail "percentile-$p has no finite value for the batch"
done
pass "percentiles finite and positive where connects happened, NaN elsewhere"

# Buckets: rate x span summed over all buckets and intervals = connects.
sum=0
while read -r name; do
	add=$(csv_bucket_count "$name" "$base_rows")
	sum=$((sum + add))
done < <(csv_names "$ALL/bucket-latency-")
[[ $sum -eq $((N + M)) ]] || fail "buckets carry $sum connects, expected $((N + M))"
pass "buckets carry all $((N + M)) connects"

# Batch two, in a later interval: exactly its own counts.
N2=17 K2=9
s=$(run_client ::1 "$PORT6" $N2)
expect_summary "$s" ok $N2
s=$(run_client ::1 $CLOSED $K2)
expect_summary "$s" refused $K2
wait_value "$EST" $((base_est + N + M + N2))
wait_value "$REF" $((base_ref + K + K2))
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 2))
[[ $(csv_last "$EST") == $((base_est + N + M + N2)) ]] || fail "established grew past the second batch"
pass "batch two: established +$N2, refused +$K2, exactly"

# Loopback SYNs are never lost: no connect counts as retransmitted, and the
# plugin keeps no start record on the default path (no no_start metric).
[[ $(csv_last "$ALL/total_connections-syn_retransmitted") == 0 ]] || fail "loopback connects counted as retransmitted"
[[ $(csv_rows tcpconnlat-self/derive-no_start) == 0 ]] || fail "start records were kept on the default path"
[[ $(csv_last tcpconnlat-self/derive-stats_dropped) == 0 ]] || fail "outcomes were dropped"
pass "self: no SYN retransmitted, no start record kept, nothing dropped"

# IPv4-mapped IPv6: a v6 socket connecting to ::ffff:127.0.0.1 counts too.
s=$(run_client ::ffff:127.0.0.1 "$PORT4" 5)
expect_summary "$s" ok 5
wait_value "$EST" $((base_est + N + M + N2 + 5))
pass "IPv4-mapped connects counted"

# OwnNetnsOnly: connects made outside the namespace are not counted.
"$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p 1 -n 11 -q 2>/dev/null
rows=$(csv_rows "$REF")
wait_rows "$REF" $((rows + 2))
[[ $(csv_last "$REF") == $((base_ref + K + K2)) ]] || fail "OwnNetnsOnly counted connects of the host namespace"
pass "OwnNetnsOnly: the host namespace's connects are not counted"
collectd_stop
wait_no_bpf_left "after the namespaced collectd stopped"

# ReportIdle false: an interval in which no connect completed sends only the
# totals: no NaN percentiles, average or max, no zero bucket rates.
rm -rf "$TCL_WORK/csv"
collectd_start "OwnNetnsOnly true
ReportIdle false" "" ip netns exec "$TCL_NS"
wait_rows "$EST" 2
[[ -z "$(csv_names "$ALL/latency-")$(csv_names "$ALL/bucket-")" ]] ||
	fail "ReportIdle false: latencies or buckets dispatched before any connect"
N3=30
s=$(run_client 127.0.0.1 "$PORT4" $N3)
expect_summary "$s" ok $N3
wait_value "$EST" $N3
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 3)) # three intervals without a connect
lat_rows=$(csv_rows "$ALL/latency-max")
((lat_rows >= 1 && lat_rows <= 2)) ||
	fail "ReportIdle false: latency-max has $lat_rows rows for connects made within about one interval"
! csv_values_after "$ALL/latency-max" 0 | grep -q nan || fail "ReportIdle false: a NaN latency was dispatched"
sum=0
while read -r name; do
	(($(csv_rows "$name") == lat_rows)) || fail "ReportIdle false: $name has $(csv_rows "$name") rows, latency-max $lat_rows"
	add=$(csv_bucket_count "$name" 0)
	sum=$((sum + add))
done < <(csv_names "$ALL/bucket-latency-")
((sum == N3)) || fail "ReportIdle false: buckets carry $sum connects, expected $N3"
(($(csv_rows "$EST") >= lat_rows + 3)) || fail "ReportIdle false: the totals stopped too"
pass "ReportIdle false: latencies and buckets only in the $lat_rows interval(s) with connects (no NaN, buckets = $N3), totals every interval"
collectd_stop
wait_no_bpf_left "after the ReportIdle run"

# Without the filter, the plugin in the host namespace sees the connects of
# every namespace (at least ours: other traffic on the host may add more).
rm -rf "$TCL_WORK/csv"
collectd_start ""
wait_rows "$REF" 1
host_base=$(csv_last "$REF")
s=$(run_client 127.0.0.1 $CLOSED 13)
expect_summary "$s" refused 13
wait_until 15 "the host-namespace plugin to count the namespace's 13 refusals" \
	eval '(( $(csv_last "$REF") >= host_base + 13 ))'
pass "default: connects in other namespaces are counted"
collectd_stop
wait_no_bpf_left "BPF programs still loaded after collectd stopped"
grep -qiE "segfault|assert" "$TCL_WORK/collectd.log" && fail "collectd logged a crash"
pass "shutdown left no BPF program loaded"
