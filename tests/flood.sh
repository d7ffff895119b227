#!/usr/bin/env bash
# A flood of connects that never complete (their SYNs are dropped), several
# times MaxInflight, while normal connects go on: the in-flight table keeps
# its fixed size, the flood's starts that do not fit are evicted (oldest
# first) and counted in self/derive-inflight_evicted (their outcomes in
# derive-unmatched), no flood connect ever shows up as a latency, the normal
# connects made while the flood is in flight are all counted and timed, every
# connect made in the namespace is accounted for exactly once, and once the
# flood has timed out the normal connects are still counted exactly.
#
# collectd runs in the bed's client namespace with OwnNetnsOnly true, so only
# the test's own connects count.
#   FLOOD_MAXINFLIGHT (64)  MaxInflight
#   FLOOD_FACTOR (8)        flood size = FACTOR x MaxInflight, all at once
#   FLOOD_NORMAL (200)      normal connects made while the map is full
set -euo pipefail
. "$(dirname "$0")/lib/netns.sh"
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
command -v ss >/dev/null || tcl_skip_or_fail "ss (iproute2) is missing"
bed_create || fail "could not create the test bed"
tcl_init

MAXINF=${FLOOD_MAXINFLIGHT:-64}
FACTOR=${FLOOD_FACTOR:-8}
F=$((MAXINF * FACTOR))
N1=${FLOOD_NORMAL:-200}
N2=100
DROP_PORT=9

bed_listen 0 4 || fail "no listener"
OK_PORT=$BED_LISTEN_PORT
bed_drop_syn "$DROP_PORT" || fail "cannot drop SYNs"
bed_syn_retries 2 || fail "cannot set tcp_syn_retries" # flood gives up after ~7 s

ALL=tcpconnlat-all
SELF=tcpconnlat-self
OKS=tcpconnlat-remoteport-$OK_PORT
DRS=tcpconnlat-remoteport-$DROP_PORT

collectd_start "OwnNetnsOnly true
MaxInflight $MAXINF
By remote_port" "" ip netns exec "$BED_CLIENT_NS"
wait_rows "$ALL/total_connections-established" 2

# Memory: collectd's RSS, and the BPF maps it holds (memlock is what the
# kernel accounts for each map: all of it for preallocated ones).
rss_kb() { awk '/^VmRSS:/{print $2}' /proc/"$TCL_COLLECTD_PID"/status; }
maps_bytes() {
	awk 'FNR == 1 { m = 0 } /^memlock:/ { m = $2 } /^map_id:/ { s += m } END { print s + 0 }' \
		/proc/"$TCL_COLLECTD_PID"/fdinfo/* 2>/dev/null
}
map_bytes() { # NAME
	local id
	for id in $(grep -hs '^map_id:' /proc/"$TCL_COLLECTD_PID"/fdinfo/* | awk '{print $2}'); do
		bpftool map show id "$id" 2>/dev/null | awk -v n="$1" '$4 == n { getline; for (i = 1; i <= NF; i++) if ($i == "memlock") { sub("B", "", $(i+1)); print $(i+1) } }'
	done | head -n 1
}
v() { csv_last "$1" 2>/dev/null || echo 0; } # counter now (0 before its first row)

rss0=$(rss_kb) maps0=$(maps_bytes) infl0=$(map_bytes tcl_inflight)
[[ -n "$infl0" ]] || fail "cannot find the in-flight map of collectd"
est0=$(v "$ALL/total_connections-established")
to0=$(v "$ALL/total_connections-timeout")
drop0=$(v "$SELF/derive-inflight_dropped")
unm0=$(v "$SELF/derive-unmatched")
rows0=$(csv_rows "$ALL/latency-max")
note "before: RSS ${rss0} kB, maps $maps0 B (in-flight map $infl0 B for $MAXINF entries)"

# --- The flood: F blocking connects at once to a port whose SYNs vanish.
ev0=$(v "$SELF/derive-inflight_evicted")
bed_spawn client flood "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$DROP_PORT" -n "$F" -c "$F" -q
FLOOD=$BED_LAST_PROC FLOOD_ERR=$BED_LAST_ERR
syn_sent() { bed_client_exec ss -Htn state syn-sent "( dport = :$DROP_PORT )" | wc -l; }
_flood_started() { (($(syn_sent) >= F)); }
wait_until 20 "all $F flood connects in SYN-SENT" _flood_started
note "flood: $F connects in SYN-SENT, MaxInflight $MAXINF"

# Normal connects while the table is full of the flood's starts.
s=$(bed_tcpclient connect -a "$BED_SERVER_V4" -p "$OK_PORT" -n "$N1" -c 2 -q 2>&1 >/dev/null | grep '^summary')
[[ "$s" == *" ok=$N1 "* ]] || fail "normal client during the flood: $s"
_flood_started || fail "the flood ended before the normal connects did (slow machine?): raise tcp_syn_retries"
_holding() { local g; g=$(v "$SELF/gauge-inflight"); ((${g%.*} > 0 && ${g%.*} <= MAXINF)); }
wait_until 10 "the table holds flood starts (0 < gauge-inflight <= $MAXINF)" _holding
rss1=$(rss_kb) maps1=$(maps_bytes) infl1=$(map_bytes tcl_inflight)
note "during: RSS ${rss1} kB, maps $maps1 B, in-flight map $infl1 B"

# The flood times out (tcp_syn_retries 2).
bed_wait_exit "$FLOOD" 20 || fail "the flood client did not finish"
grep -q "^summary ok=0 refused=0 timeout=$F " "$FLOOD_ERR" ||
	fail "flood client: $(cat "$FLOOD_ERR")"
wait_value "$SELF/gauge-inflight" 0

# Every connect of the namespace accounted for exactly once: each flood
# connect either timed out with its start remembered, or lost its start to a
# newer one (evicted), or (rarely) found its way being written by another CPU
# at that instant (dropped). A normal connect is never the oldest start of
# its set while the flood's are there, so none is evicted.
d_() { echo $(($(v "$1") - $2)); }
_settled() {
	local e t d u x
	e=$(d_ "$ALL/total_connections-established" "$est0")
	t=$(d_ "$ALL/total_connections-timeout" "$to0")
	d=$(d_ "$SELF/derive-inflight_dropped" "$drop0")
	u=$(d_ "$SELF/derive-unmatched" "$unm0")
	x=$(d_ "$SELF/derive-inflight_evicted" "$ev0")
	((e == N1 && t + x + d == F && u == x + d))
}
_TCL_WAIT_LAST='echo "established +$(d_ "$ALL/total_connections-established" "$est0") timeout +$(d_ "$ALL/total_connections-timeout" "$to0") evicted +$(d_ "$SELF/derive-inflight_evicted" "$ev0") dropped +$(d_ "$SELF/derive-inflight_dropped" "$drop0") unmatched +$(d_ "$SELF/derive-unmatched" "$unm0")"'
wait_until 15 "established = $N1, timeouts + evicted + dropped = $F, unmatched = evicted + dropped" _settled
_TCL_WAIT_LAST=
E=$(d_ "$ALL/total_connections-established" "$est0")
T=$(d_ "$ALL/total_connections-timeout" "$to0")
D=$(d_ "$SELF/derive-inflight_dropped" "$drop0")
X=$(d_ "$SELF/derive-inflight_evicted" "$ev0")
note "flood phase: established +$E, timeouts +$T, evicted +$X, dropped +$D, unmatched +$((X + D))"
((T <= MAXINF)) || fail "$T flood connects timed out with their start remembered, more than the table holds ($MAXINF)"
((X >= F - MAXINF - D)) || fail "only $X evictions for a flood of $F into $MAXINF ways"
[[ $(v "$OKS/total_connections-established") == "$N1" ]] || fail "series remoteport-$OK_PORT has $(v "$OKS/total_connections-established") established, expected exactly $N1"
[[ $(v "$DRS/total_connections-timeout") == "$T" ]] || fail "the timeouts are not in series remoteport-$DROP_PORT"
[[ $(v "$DRS/total_connections-established") == 0 ]] || fail "a flood connect was counted as established"
[[ $(v "$SELF/derive-stats_dropped") == 0 ]] || fail "stats_dropped is not 0"
pass "flood of $F (${FACTOR}x MaxInflight) + $N1 normal: all $N1 normal counted and timed, $T flood timeouts, $X evicted, $D dropped, nothing lost or counted twice"

# --- After the flood: normal connects are counted exactly again.
e0=$(v "$OKS/total_connections-established")
d0=$(v "$SELF/derive-inflight_dropped")
x0=$(v "$SELF/derive-inflight_evicted")
s=$(bed_tcpclient connect -a "$BED_SERVER_V4" -p "$OK_PORT" -n "$N2" -c 2 -q 2>&1 >/dev/null | grep '^summary')
[[ "$s" == *" ok=$N2 "* ]] || fail "normal client after the flood: $s"
wait_value "$OKS/total_connections-established" $((e0 + N2))
wait_value "$ALL/total_connections-established" $((est0 + E + N2))
rows=$(csv_rows "$ALL/total_connections-established")
wait_rows "$ALL/total_connections-established" $((rows + 2))
[[ $(v "$ALL/total_connections-established") == $((est0 + E + N2)) ]] || fail "established grew past +$N2"
[[ $(v "$SELF/derive-inflight_dropped") == "$d0" ]] || fail "starts dropped after the flood"
[[ $(v "$SELF/derive-inflight_evicted") == "$x0" ]] || fail "starts evicted after the flood"
pass "after the flood: $N2 normal connects counted exactly"

# --- No bogus latency: no flood connect ever became one. Every interval's
# max is NaN or well under the SYN timeout (~1 s for a single retransmit);
# the series of the dropped port never has a finite latency; the buckets
# carry exactly the established connects.
while read -r x; do
	case $x in nan | -nan) ;; *)
		awk -v x="$x" 'BEGIN { exit !(x + 0 > 0 && x + 0 < 0.5) }' ||
			fail "implausible latency-max $x during the flood" ;;
	esac
done < <(csv_values_after "$ALL/latency-max" "$rows0")
while read -r x; do
	[[ $x == nan || $x == -nan ]] || fail "the flooded port has a latency: $x"
done < <(csv_values_after "$DRS/latency-max" 0)
sum=0
while read -r name; do
	add=$(csv_bucket_count "$name" "$rows0")
	sum=$((sum + add))
done < <(csv_names "$ALL/bucket-latency-")
((sum == E + N2)) || fail "buckets carry $sum connects, expected $((E + N2))"
pass "no bogus latency: max latency sane in every interval, none for the flooded port, buckets = established"

# --- Memory stayed bounded.
while read -r x; do
	awk -v x="$x" -v m="$MAXINF" 'BEGIN { exit !(x + 0 <= m) }' || fail "gauge-inflight $x > MaxInflight $MAXINF"
done < <(csv_values_after "$SELF/gauge-inflight" 0)
rss2=$(rss_kb) maps2=$(maps_bytes) infl2=$(map_bytes tcl_inflight)
note "after: RSS ${rss2} kB, maps $maps2 B, in-flight map $infl2 B"
[[ "$infl0" == "$infl1" && "$infl1" == "$infl2" ]] || fail "the in-flight map changed size: $infl0 $infl1 $infl2 B"
# The stats map allocates a slot per used bucket and reason on first use
# (a few dozen here), about 100 bytes each.
((maps2 - maps0 < 256 * 1024)) || fail "BPF map memory grew by $((maps2 - maps0)) B"
((rss2 - rss0 < 4096)) || fail "collectd's RSS grew by $((rss2 - rss0)) kB"
pass "memory bounded: in-flight map constant ($infl0 B), maps +$((maps2 - maps0)) B, RSS +$((rss2 - rss0)) kB, gauge-inflight <= $MAXINF"

collectd_stop
wait_no_bpf_left "after the flood test"
grep -qiE 'segfault|assert' "$TCL_WORK/collectd.log" && fail "collectd logged a crash"
pass "shutdown left nothing behind"
