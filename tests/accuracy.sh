#!/usr/bin/env bash
# accuracy.sh - the plugin's latency figures against a packet capture and the
# clients' own clocks, on a network with known handshake delays.
#
# Two network namespaces joined by a veth pair (tests/lib/netns.sh). In the
# server namespace, nfq_delay holds every SYN-ACK of a listener for D ms
# (iptables -j NFQUEUE), so that a connect from the client namespace takes
# about D. collectd runs inside the client namespace with OwnNetnsOnly true:
# only this test's connects are counted, whatever else runs on the host.
#
# For D = 5, 20 and 100 ms, over IPv4 and IPv6, 200 connects per case, one
# after the other and 32 at a time, each case inside one collectd interval:
#   - latency-percentile-50/90/99 and latency-average of that interval are
#     within 2 % (or 0.2 ms, whichever is larger) of the same nearest-rank
#     quantiles (and the mean) of the ground truth;
#   - established grew by exactly 200 between the interval's two reads;
#   - the buckets holding the measured durations carry all 200 connects
#     (rate x interval), and every bucket's count matches the ground truth
#     except where a duration lies within the histogram's precision (1/32)
#     of a bucket edge (then that connect may count on either side).
#
# Ground truth, independent of the plugin: the SYN and SYN-ACK timestamps of a
# packet capture on the client's veth (tcpdump, nanosecond timestamps, paired
# by 4-tuple in tests/pcap_synlat.awk), for every case. The clients' own
# connect() times (CLOCK_MONOTONIC around a blocking connect) are checked too:
#   - one at a time (client at SCHED_FIFO): the median within 2 % or 0.2 ms;
#   - always: no percentile and not the mean above the clients' own, beyond
#     the histogram's precision (1/64): SYN_SENT -> ESTABLISHED happens inside
#     connect(), so each kernel time is shorter than the client's.
# The clients' clocks are not the reference for p90/p99 and the mean: on this
# 2-core VM they carry the system call and the wake-up after the SYN-ACK,
# 50-130 us per connect for a single client, and now and then a stall of
# tens of ms even at real-time priority (the VM's CPU taken away), which is
# what an application timing connect() sees on top of the handshake; with 32
# clients at once, also their wait for a CPU.  The test prints both.
#
# Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/collectd.sh"
. "$here/lib/netns.sh"
. "$here/lib/latency.sh"
lat_setup

N=200
CONC=32
DELAYS=(5 20 100)
declare -A PORT=()
for d in "${DELAYS[@]}"; do
	bed_listen 0 46 || fail "listener for D=$d ms"
	PORT[$d]=$BED_LISTEN_PORT
	bed_delay_synack "${PORT[$d]}" "$d" || fail "SYN-ACK delay of $d ms"
done
note "bed: $BED_CLIENT_NS -> $BED_SERVER_NS, ports: 5 ms ${PORT[5]}, 20 ms ${PORT[20]}, 100 ms ${PORT[100]}"

# One collectd per group of cases, its interval long enough for the slowest
# case of the group (200 x D one after the other).
start_collectd() { # INTERVAL
	rm -rf "$TCL_WORK/csv"
	TCL_INTERVAL=$1
	collectd_start "OwnNetnsOnly true" "" ip netns exec "$BED_CLIENT_NS"
	collectd_alive || fail "collectd exited at start"
	lat_wait_rows 1 "$LAT_EST"
}

# At the end of a group: no failure, nothing unmatched or dropped, no crash.
stop_collectd() {
	local r
	collectd_alive || fail "collectd died"
	for r in "${LAT_REASONS[@]}"; do
		[[ $(csv_last "$LAT_ALL/total_connections-$r") == 0 ]] || fail "connects counted as $r"
	done
	[[ $(csv_last "$LAT_ALL/total_connections-syn_retransmitted") == 0 ]] || fail "connects counted as retransmitted"
	[[ $(csv_last tcpconnlat-self/derive-stats_dropped) == 0 ]] || fail "outcomes were dropped"
	collectd_stop
	if grep -qiE "segfault|assert|failed" "$TCL_WORK/collectd.log"; then
		fail "collectd logged an error: $(grep -iE "segfault|assert|failed" "$TCL_WORK/collectd.log" | head -n 3)"
	fi
}

# The case being run (lat_case takes function names).
C_FAM='' C_D='' C_MODE='' C_ADDR='' C_OUT='' C_TRUTH=''
case_setup() {
	lat_capture_start "${PORT[$C_D]}"
}
case_run() {
	if [[ $C_MODE == seq ]]; then
		# real-time priority: the client's clock should time the connect, not
		# the wait for a CPU that other work on the host holds
		bed_client_exec chrt -f 10 "$TCL_TEST_BIN/tcpclient" connect -a "$C_ADDR" \
			-p "${PORT[$C_D]}" -n $N >"$C_OUT" 2>"$C_OUT.err"
	else
		bed_connect "$C_ADDR" "${PORT[$C_D]}" -n $N -c $CONC >"$C_OUT" 2>"$C_OUT.err"
	fi
}
case_teardown() {
	lat_capture_finish $N "$C_TRUTH"
}

SUMMARY=()

run_case() { # FAMILY D MODE
	C_FAM=$1 C_D=$2 C_MODE=$3
	local label need
	if [[ $C_MODE == seq ]]; then
		label="IPv$C_FAM D=$C_D ms one at a time"
	else
		label="IPv$C_FAM D=$C_D ms $CONC at a time"
	fi
	if [[ $C_FAM == 4 ]]; then C_ADDR=$BED_SERVER_V4; else C_ADDR=$BED_SERVER_V6; fi
	C_OUT=$TCL_WORK/clients-v$C_FAM-$C_D-$C_MODE
	C_TRUTH=$TCL_WORK/truth-v$C_FAM-$C_D-$C_MODE
	# seconds the case needs: N rounds of D one at a time, N/32 rounds at once
	if [[ $C_MODE == seq ]]; then
		need=$(awk -v n=$N -v d="$C_D" 'BEGIN { print n * (d + 0.8) / 1000 + 0.5 }')
	else
		need=$(awk -v n=$N -v c=$CONC -v d="$C_D" 'BEGIN { print int((n + c - 1) / c) * (d + 2) / 1000 + 0.5 }')
	fi
	lat_case $N "$need" case_run case_setup case_teardown

	grep -q "^summary ok=$N refused=0 timeout=0 unreachable=0 aborted=0 other=0$" "$C_OUT.err" ||
		fail "$label: the clients did not all connect: $(cat "$C_OUT.err")"
	awk '$1 == "ok" { print $2 }' "$C_OUT" >"$C_OUT.ns"
	lat_compare "$LAT_ROW" "$C_TRUTH" "$C_OUT.ns" "$C_MODE"
	[[ -z "$LAT_BAD" ]] || fail "$label: out of tolerance:$LAT_BAD ($LAT_LINE)"
	lat_check_buckets "$LAT_ROW" "$C_TRUTH" $N "$label"
	SUMMARY+=("$label: $LAT_LINE; buckets:$LAT_BUCKETS")
	pass "$label: $LAT_LINE; buckets:$LAT_BUCKETS"
}

# Group 1, 2 s intervals: the fast cases (one at a time at 5 ms: ~1.1 s;
# 32 at a time: at most 7 rounds of D).
start_collectd 2
for fam in 4 6; do
	run_case "$fam" 5 seq
	for d in "${DELAYS[@]}"; do
		run_case "$fam" "$d" conc
	done
done
stop_collectd

# Group 2, 6 s intervals: 200 x 20 ms one at a time (~4.1 s).
start_collectd 6
for fam in 4 6; do
	run_case "$fam" 20 seq
done
stop_collectd

# Group 3, 24 s intervals: 200 x 100 ms one at a time (~20.1 s).
start_collectd 24
for fam in 4 6; do
	run_case "$fam" 100 seq
done
stop_collectd

echo "# accuracy: plugin/capture and the clients' clocks, in ms, per case"
for line in "${SUMMARY[@]}"; do
	echo "#   $line"
done
pass "accuracy: all ${#SUMMARY[@]} cases within 2 % or 0.2 ms of the capture"
