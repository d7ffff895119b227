#!/usr/bin/env bash
# failure_reasons.sh - failed connects are counted exactly, by reason, and
# never leak into the latency figures; connects in flight when the plugin
# starts or stops give no bogus value.
#
# Two network namespaces joined by a veth pair (tests/lib/netns.sh); collectd
# runs inside the client namespace with OwnNetnsOnly true, so only this
# test's connects are counted. In the server namespace:
#   timeout      SYNs dropped (iptables DROP), net.ipv4.tcp_syn_retries = 1 in
#                the client namespace: ETIMEDOUT after about 3 s
#   refused      a closed port: RST
#   unreachable  iptables REJECT --reject-with icmp-host-unreachable /
#                icmp6-addr-unreachable: EHOSTUNREACH
#   aborted      non-blocking connects closed by the client 50 ms in, while
#                nfq_delay holds the SYN-ACK for 300 ms
# Each over IPv4 and IPv6, all at once, inside one collectd interval:
#   1. failures only: every total_connections-REASON grew by exactly the
#      connects attempted (the clients agree), established did not move, the
#      percentiles, average and max are NaN and every bucket is 0;
#   2. the same failures plus 100 successful connects (SYN-ACK held 20 ms):
#      the same exact counts, established +100, and the percentiles, average,
#      max and buckets are those of the 100 successes (packet capture on the
#      client side, tests/lib/latency.sh), so no failure leaked into them;
#   3. the interval after that: nothing more.
# In flight at start and stop (SYN-ACKs held until the test releases them):
#   4. connects started before collectd, completed or killed (an abort) after
#      its init: counted like any other (the kernel's own clock times them
#      from their SYN), as are the connects started after init; the longest
#      latency is the longest the clients timed, within the histogram's
#      precision; no value negative or absurd;
#   5. connects in flight while collectd stops and starts again: counted once,
#      by the new instance; then new connects count normally.
#
# Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/collectd.sh"
. "$here/lib/netns.sh"
. "$here/lib/latency.sh"
lat_setup

SELF=tcpconnlat-self
ABORTED=$LAT_ALL/total_connections-aborted
LAT_SERIES=(latency-percentile-50 latency-percentile-90 latency-percentile-99
	latency-percentile-99.9 latency-average latency-max)

# Ports: refused and unreachable need nothing listening; SYNs to the timeout
# port are dropped before any socket sees them.
P_REFUSED=1
P_UNREACH=2
P_TIMEOUT=3
bed_listen 0 46 || fail "listener (aborts)"
P_ABORT=$BED_LISTEN_PORT
bed_delay_synack "$P_ABORT" 300 || fail "SYN-ACK delay 300 ms"
bed_listen 0 46 || fail "listener (successes)"
P_OK=$BED_LISTEN_PORT
bed_delay_synack "$P_OK" 20 || fail "SYN-ACK delay 20 ms"
bed_listen 0 46 || fail "listener (in flight)"
P_HELD=$BED_LISTEN_PORT
bed_reject_unreachable "$P_UNREACH" || fail "REJECT rule"
bed_drop_syn "$P_TIMEOUT" || fail "DROP rule"
bed_syn_retries 1 || fail "tcp_syn_retries"

# Per family and reason: connects attempted.
N_TIMEOUT=10 N_REFUSED=20 N_UNREACH=20 N_ABORT=15 N_OK=100
declare -A WANT=([timeout]=$((2 * N_TIMEOUT)) [refused]=$((2 * N_REFUSED))
	[unreachable]=$((2 * N_UNREACH)) [aborted]=$((2 * N_ABORT)) [other]=0 [local]=0)
N_FAIL=$((2 * (N_TIMEOUT + N_REFUSED + N_UNREACH + N_ABORT)))

addr() { if [[ $1 == 4 ]]; then echo "$BED_SERVER_V4"; else echo "$BED_SERVER_V6"; fi; }
is_nan() { [[ $1 == nan || $1 == -nan ]]; }
num_is() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^[-0-9.e+]+$/ && a == b + 0) }'; }

# Background clients, checked against the summary they print.
CL_PROCS=() CL_ERRS=() CL_WANT=()
spawn_clients() { # WANT_SUMMARY NAME ARGS...
	local want=$1 name=$2
	shift 2
	bed_spawn client "$name" "$TCL_TEST_BIN/tcpclient" connect "$@"
	CL_PROCS+=("$BED_LAST_PROC")
	CL_ERRS+=("$BED_LAST_ERR")
	CL_WANT+=("$want")
}
wait_clients() { # TIMEOUT_S
	local i
	for i in "${!CL_PROCS[@]}"; do
		bed_wait_exit "${CL_PROCS[i]}" "$1" || fail "a client did not finish within $1 s: ${CL_ERRS[i]}"
	done
	for i in "${!CL_PROCS[@]}"; do
		grep -q "^summary ${CL_WANT[i]}\$" "${CL_ERRS[i]}" ||
			fail "the test bed did not give what was expected: want '${CL_WANT[i]}', got '$(tail -n 1 "${CL_ERRS[i]}")'"
	done
	CL_PROCS=() CL_ERRS=() CL_WANT=()
}
summary() { # ok refused timeout unreachable aborted
	echo "ok=$1 refused=$2 timeout=$3 unreachable=$4 aborted=$5 other=0"
}

WITH_OK=0
OK_OUT=$TCL_WORK/clients-ok
OK_TRUTH=$TCL_WORK/truth-ok

run_failures() {
	local fam a
	for fam in 4 6; do
		a=$(addr $fam)
		spawn_clients "$(summary 0 0 $N_TIMEOUT 0 0)" "timeout-v$fam" \
			-a "$a" -p $P_TIMEOUT -n $N_TIMEOUT -c $N_TIMEOUT -q
		spawn_clients "$(summary 0 0 0 0 $N_ABORT)" "abort-v$fam" \
			-a "$a" -p "$P_ABORT" -n $N_ABORT -c $N_ABORT --abort-after-ms 50 -q
		spawn_clients "$(summary 0 $N_REFUSED 0 0 0)" "refused-v$fam" \
			-a "$a" -p $P_REFUSED -n $N_REFUSED -q
		spawn_clients "$(summary 0 0 0 $N_UNREACH 0)" "unreach-v$fam" \
			-a "$a" -p $P_UNREACH -n $N_UNREACH -q
	done
	if ((WITH_OK)); then
		bed_client_exec chrt -f 10 "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" \
			-p "$P_OK" -n $N_OK >"$OK_OUT" 2>"$OK_OUT.err"
	fi
	wait_clients 15
}
ok_setup() { lat_capture_start "$P_OK"; }
ok_teardown() { lat_capture_finish $N_OK "$OK_TRUTH"; }

# The failure counters of ROW grew by exactly WANT, established by EST.
check_counts() { # ROW EST LABEL
	local row=$1 est=$2 label=$3 r got line=""
	got=$(lat_delta "$LAT_EST" "$row")
	((got == est)) || fail "$label: established grew by $got, expected $est"
	for r in "${LAT_REASONS[@]}"; do
		got=$(lat_delta "$LAT_ALL/total_connections-$r" "$row")
		((got == ${WANT[$r]})) || fail "$label: total_connections-$r grew by $got, expected ${WANT[$r]}"
		line+=" $r +$got"
	done
	COUNTS_LINE="established +$est,$line"
}

# ROW has NaN latencies and empty buckets.
check_quiet() { # ROW LABEL
	local row=$1 label=$2 s v name
	for s in "${LAT_SERIES[@]}"; do
		v=$(lat_row "$LAT_ALL/$s" "$row")
		is_nan "$v" || fail "$label: $s is $v, expected NaN (no connect completed)"
	done
	while read -r name; do
		v=$(lat_count "$name" "$row")
		((v == 0)) || fail "$label: ${name##*/} carries $v connects, expected 0"
	done < <(lat_bucket_names)
}

# Every latency value written so far is NaN or in (0, 10 s).
check_sane() { # LABEL
	local s v
	for s in "${LAT_SERIES[@]}"; do
		while read -r v; do
			is_nan "$v" && continue
			awk -v v="$v" 'BEGIN { exit !(v ~ /^[0-9.e+-]+$/ && v + 0 > 0 && v + 0 < 10) }' ||
				fail "$1: $s has the value $v"
		done < <(csv_values_after "$LAT_ALL/$s" 0)
	done
}

start_collectd() { # INTERVAL
	rm -rf "$TCL_WORK/csv"
	TCL_INTERVAL=$1
	collectd_start "OwnNetnsOnly true" "" ip netns exec "$BED_CLIENT_NS"
	collectd_alive || fail "collectd exited at start"
	lat_wait_rows 1 "$LAT_EST" "$ABORTED"
}
stop_collectd() {
	collectd_alive || fail "collectd died"
	collectd_stop
	if grep -qiE "segfault|assert|failed" "$TCL_WORK/collectd.log"; then
		fail "collectd logged an error: $(grep -iE "segfault|assert|failed" "$TCL_WORK/collectd.log" | head -n 3)"
	fi
}

# ------------------------------------------------ 1-3: failures, one interval
# Timeouts take 3 s: 5 s intervals, a case starts with at least 4.5 s left.
start_collectd 5
LAT_COUNTERS="$LAT_EST"
for r in "${LAT_REASONS[@]}"; do
	LAT_COUNTERS+=" $LAT_ALL/total_connections-$r"
done

WITH_OK=0
lat_case $N_FAIL 4.5 run_failures
check_counts "$LAT_ROW" 0 "failures only"
check_quiet "$LAT_ROW" "failures only"
pass "failures only, IPv4 + IPv6 in one interval: $COUNTS_LINE; percentiles, average and max NaN, buckets 0"

WITH_OK=1
lat_case $((N_FAIL + N_OK)) 4.5 run_failures ok_setup ok_teardown
check_counts "$LAT_ROW" $N_OK "failures + $N_OK successes"
grep -q "^summary ok=$N_OK refused=0 timeout=0 unreachable=0 aborted=0 other=0$" "$OK_OUT.err" ||
	fail "the successful clients did not all connect: $(cat "$OK_OUT.err")"
awk '$1 == "ok" { print $2 }' "$OK_OUT" >"$OK_OUT.ns"
lat_compare "$LAT_ROW" "$OK_TRUTH" "$OK_OUT.ns" seq
[[ -z "$LAT_BAD" ]] || fail "failures + successes: the latency figures are not those of the successes:$LAT_BAD ($LAT_LINE)"
lat_check_buckets "$LAT_ROW" "$OK_TRUTH" $N_OK "failures + successes"
pass "failures + $N_OK successes (20 ms) in one interval: $COUNTS_LINE; $LAT_LINE; buckets:$LAT_BUCKETS"

lat_wait_rows $((LAT_ROW + 1)) $LAT_COUNTERS "${LAT_SERIES[@]/#/$LAT_ALL/}"
for c in $LAT_COUNTERS; do
	d=$(lat_delta "$c" $((LAT_ROW + 1)))
	((d == 0)) || fail "the interval after the failures: ${c##*/} grew by $d"
done
check_quiet $((LAT_ROW + 1)) "the interval after the failures"
check_sane "failures"
[[ $(csv_last $SELF/derive-stats_dropped) == 0 ]] || fail "outcomes were dropped: $(csv_last $SELF/derive-stats_dropped)"
pass "nothing late: the next interval has no count and NaN latencies; no outcome dropped"
stop_collectd
bed_syn_retries 6 || fail "tcp_syn_retries"

# ------------------------------------------- 4: in flight when collectd starts
# SYN-ACKs of P_HELD are held (10 s at most) until bed_undelay_synack, whose
# nfq_delay accepts every held packet when it stops.
N_BEFORE=8 N_KILL=6 N_AFTER=10 BEFORE_OUTS=()
syn_sent_is() { [[ $(lat_syn_sent "$P_HELD") -eq $1 ]]; }

bed_delay_synack "$P_HELD" 10000 || fail "SYN-ACK hold"
for fam in 4 6; do
	spawn_clients "$(summary $N_BEFORE 0 0 0 0)" "before-v$fam" \
		-a "$(addr $fam)" -p "$P_HELD" -n $N_BEFORE -c $N_BEFORE
	BEFORE_OUTS+=("$BED_LAST_OUT")
done
# blocking connects in a process killed later: the kernel closes the sockets
bed_spawn client killed "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$P_HELD" \
	-n $N_KILL -c $N_KILL -q
KILL_PROC=$BED_LAST_PROC
bed_wait_cond 10 syn_sent_is $((2 * N_BEFORE + N_KILL)) ||
	fail "expected $((2 * N_BEFORE + N_KILL)) connects in SYN-SENT, have $(lat_syn_sent "$P_HELD")"
t_before=$(date +%s%N)

start_collectd 1
lat_wait_rows 2 "$LAT_EST" "$ABORTED"
syn_sent_is $((2 * N_BEFORE + N_KILL)) ||
	fail "the connects started before collectd did not stay in flight across its start ($(lat_syn_sent "$P_HELD") in SYN-SENT)"
bed_stop "$KILL_PROC"
BEFORE_PROCS=("${CL_PROCS[@]}") BEFORE_ERRS=("${CL_ERRS[@]}") BEFORE_WANT=("${CL_WANT[@]}")
CL_PROCS=() CL_ERRS=() CL_WANT=()
t_after=$(date +%s%N)
AFTER_OUTS=()
for fam in 4 6; do
	bed_spawn client "after-v$fam" "$TCL_TEST_BIN/tcpclient" connect -a "$(addr $fam)" -p "$P_HELD" \
		-n $N_AFTER -c $N_AFTER
	CL_PROCS+=("$BED_LAST_PROC") CL_ERRS+=("$BED_LAST_ERR") CL_WANT+=("$(summary $N_AFTER 0 0 0 0)")
	AFTER_OUTS+=("$BED_LAST_OUT")
done
bed_wait_cond 10 syn_sent_is $((2 * N_BEFORE + 2 * N_AFTER)) ||
	fail "expected $((2 * N_BEFORE + 2 * N_AFTER)) connects in SYN-SENT, have $(lat_syn_sent "$P_HELD")"
bed_undelay_synack "$P_HELD"
CL_PROCS+=("${BEFORE_PROCS[@]}") CL_ERRS+=("${BEFORE_ERRS[@]}") CL_WANT+=("${BEFORE_WANT[@]}")
wait_clients 15
note "started $(((t_after - t_before) / 1000000)) ms apart: before collectd ($((2 * N_BEFORE)) + $N_KILL killed), after its init ($((2 * N_AFTER)))"

N_ALL=$((2 * N_BEFORE + 2 * N_AFTER))
wait_value "$LAT_EST" $N_ALL
wait_value "$ABORTED" $N_KILL
rows=$(csv_rows "$LAT_EST")
lat_wait_rows $((rows + 2)) "$LAT_EST" "$ABORTED" "${LAT_SERIES[@]/#/$LAT_ALL/}"
[[ $(csv_last "$LAT_EST") == "$N_ALL" ]] ||
	fail "in flight at start: established is $(csv_last "$LAT_EST"), expected $N_ALL (started before and after init)"
for r in "${LAT_REASONS[@]}"; do
	want=0
	[[ $r == aborted ]] && want=$N_KILL
	[[ $(csv_last "$LAT_ALL/total_connections-$r") == "$want" ]] ||
		fail "in flight at start: total_connections-$r is $(csv_last "$LAT_ALL/total_connections-$r"), expected $want"
done
check_sane "in flight at start"
# Every connect is timed from its own SYN, those started before collectd
# too: the longest latency is the longest any client timed (the clients'
# clocks also hold the microseconds before the SYN left), within the
# histogram's precision.
cat "${AFTER_OUTS[@]}" "${BEFORE_OUTS[@]}" | awk '$1 == "ok" { print $2 }' >"$TCL_WORK/held.ns"
cat "${BEFORE_OUTS[@]}" | awk '$1 == "ok" { print $2 }' >"$TCL_WORK/before.ns"
held_max=$(lat_max "$TCL_WORK/held.ns")
before_max=$(lat_max "$TCL_WORK/before.ns")
plugin_max=$(csv_values_after "$LAT_ALL/latency-max" 0 | grep -v nan | sort -g | tail -n 1)
awk -v g="$plugin_max" -v c="$held_max" 'BEGIN { exit !(g * 1e9 <= c * (1 + 1 / 32) + 1000) }' ||
	fail "in flight at start: latency-max $(lat_sec_ms "$plugin_max") ms is longer than any connect the clients timed ($(lat_ms "$held_max") ms)"
awk -v g="$plugin_max" -v c="$before_max" 'BEGIN { exit !(g * 1e9 >= c * (1 - 1 / 32) - 2e6) }' ||
	fail "in flight at start: latency-max $(lat_sec_ms "$plugin_max") ms is shorter than the connects started before collectd ($(lat_ms "$before_max") ms): they were not timed from their SYN"
total=0
while read -r name; do
	total=$((total + $(csv_bucket_count "$name" 0)))
done < <(lat_bucket_names)
((total == N_ALL)) || fail "in flight at start: the buckets carry $total connects, expected $N_ALL"
pass "in flight at start: established $N_ALL ($((2 * N_BEFORE)) started before init), aborted $N_KILL (killed); latency-max $(lat_sec_ms "$plugin_max") ms = the clients' longest $(lat_ms "$before_max") ms"

# -------------------------------------- 5: in flight when collectd stops/starts
N_HELD=10 N_KILL2=6 N_NEW=20
bed_delay_synack "$P_HELD" 10000 || fail "SYN-ACK hold"
for fam in 4 6; do
	spawn_clients "$(summary $N_HELD 0 0 0 0)" "held-v$fam" \
		-a "$(addr $fam)" -p "$P_HELD" -n $N_HELD -c $N_HELD -q
done
bed_spawn client killed2 "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V6" -p "$P_HELD" \
	-n $N_KILL2 -c $N_KILL2 -q
KILL_PROC=$BED_LAST_PROC
bed_wait_cond 10 syn_sent_is $((2 * N_HELD + N_KILL2)) ||
	fail "expected $((2 * N_HELD + N_KILL2)) connects in SYN-SENT, have $(lat_syn_sent "$P_HELD")"
rows=$(csv_rows "$LAT_EST")
lat_wait_rows $((rows + 2)) "$LAT_EST"
stop_collectd
[[ $(csv_last "$LAT_EST") == "$N_ALL" ]] || fail "the stopping collectd counted the held connects"

start_collectd 1
lat_wait_rows 2 "$LAT_EST" "$ABORTED"
syn_sent_is $((2 * N_HELD + N_KILL2)) ||
	fail "the held connects did not stay in flight across the restart ($(lat_syn_sent "$P_HELD") in SYN-SENT)"
bed_stop "$KILL_PROC"
bed_undelay_synack "$P_HELD"
wait_clients 15
wait_value "$LAT_EST" $((2 * N_HELD))
wait_value "$ABORTED" $N_KILL2
rows=$(csv_rows "$LAT_EST")
lat_wait_rows $((rows + 2)) "$LAT_EST" "$ABORTED" "${LAT_SERIES[@]/#/$LAT_ALL/}"
[[ $(csv_last "$LAT_EST") == $((2 * N_HELD)) ]] || fail "in flight across a restart: established is $(csv_last "$LAT_EST"), expected $((2 * N_HELD))"
for r in "${LAT_REASONS[@]}"; do
	want=0
	[[ $r == aborted ]] && want=$N_KILL2
	[[ $(csv_last "$LAT_ALL/total_connections-$r") == "$want" ]] ||
		fail "in flight across a restart: total_connections-$r is $(csv_last "$LAT_ALL/total_connections-$r"), expected $want"
done
check_sane "in flight across a restart"
pass "in flight across a stop and a start: counted once, by the new instance (established $((2 * N_HELD)), aborted $N_KILL2)"
N_BASE=$((2 * N_HELD))

# ... and the new instance counts new connects normally.
rows0=$(csv_rows "$LAT_EST")
bed_client_exec "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$P_OK" -n $N_NEW \
	>"$TCL_WORK/new" 2>"$TCL_WORK/new.err"
grep -q "^summary ok=$N_NEW " "$TCL_WORK/new.err" || fail "new connects: $(cat "$TCL_WORK/new.err")"
wait_value "$LAT_EST" $((N_BASE + N_NEW))
rows=$(csv_rows "$LAT_EST")
lat_wait_rows $((rows + 1)) "$LAT_EST" "$ABORTED" "${LAT_SERIES[@]/#/$LAT_ALL/}"
[[ $(csv_last "$LAT_EST") == $((N_BASE + N_NEW)) ]] || fail "new connects: established $(csv_last "$LAT_EST"), expected $((N_BASE + N_NEW))"
awk '$1 == "ok" { print $2 }' "$TCL_WORK/new" >"$TCL_WORK/new.ns"
new_max=$(lat_max "$TCL_WORK/new.ns")
while read -r v; do
	is_nan "$v" && continue
	awk -v v="$v" -v c="$new_max" 'BEGIN { exit !(v * 1e9 >= 20e6 * (1 - 1 / 64) && v * 1e9 <= c * (1 + 1 / 32) + 1000) }' ||
		fail "new connects: a latency of $(lat_sec_ms "$v") ms, outside [20 ms, the clients' longest $(lat_ms "$new_max") ms]"
done < <(for s in "${LAT_SERIES[@]}"; do csv_values_after "$LAT_ALL/$s" "$rows0"; done)
check_sane "after the restart"
stop_collectd
pass "after the restart: $N_NEW new connects counted, latencies within [20 ms, $(lat_ms "$new_max") ms]"
