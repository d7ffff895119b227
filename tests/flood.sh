#!/usr/bin/env bash
# A flood of connects that never complete (their SYNs are dropped, and
# retransmitted twice: tcp_syn_retries 2), several times MaxInflight, while
# normal connects go on. Outbound timing keeps no state per connect; only a
# handshake whose SYN is retransmitted leaves its first SYN's time in an LRU
# map of MaxInflight entries, so the flood fills that map over and over:
#   - every normal connect made meanwhile (before the flood's retransmissions
#     and while they fill the map) is counted (established exact) and timed:
#     the buckets carry exactly the normal connects, no bucket lies above the
#     range of the clients' own connect() times, and no interval's max is
#     above the clients' own max (tests/lib/latency.sh lat_not_above);
#   - every flood connect is counted as a timeout, exactly F, and none as
#     established or as a latency;
#   - syn_retransmitted counts established connects only: the normal
#     connects whose SYN was retransmitted (those that took over a second
#     by the client's clock; normally none);
#   - memory stays bounded: the first-SYN map keeps its size and at most
#     MaxInflight entries, and is empty once the flood is over; the BPF maps'
#     memlock and collectd's RSS do not grow with the flood;
#   - self/derive-no_start is not reported (no start records on this path).
#
# collectd runs in the bed's client namespace with OwnNetnsOnly true, so only
# the test's own connects count.
#   FLOOD_MAXINFLIGHT (64)  MaxInflight
#   FLOOD_FACTOR (8)        flood size = FACTOR x MaxInflight, all at once
#   FLOOD_NORMAL (200)      normal connects made while the flood is in flight
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/netns.sh"
. "$here/lib/collectd.sh"
. "$here/lib/latency.sh"

tcl_require_root
tcl_require_tools ss nstat bpftool python3
tcl_require_helpers tcpclient
bed_create || fail "could not create the test bed"
tcl_init

MAXINF=${FLOOD_MAXINFLIGHT:-64}
FACTOR=${FLOOD_FACTOR:-8}
F=$((MAXINF * FACTOR))
N1=${FLOOD_NORMAL:-200}
NA=$((N1 / 2)) NB=$((N1 - N1 / 2))
N2=100
DROP_PORT=9
RTO_NS=1000000000 # the initial SYN retransmission timeout

bed_listen 0 4 || fail "no listener"
OK_PORT=$BED_LISTEN_PORT
bed_drop_syn "$DROP_PORT" || fail "cannot drop SYNs"
# the flood gives up after ~7 s; ~10 s from Linux 6.5 on, whose first SYN
# retransmissions come a second apart (tcp_syn_linear_timeouts, 4): 5
# retransmissions each. SeriesTimeout keeps the normal port's series alive
# across that idle time, so its counter is not restarted.
bed_syn_retries 2 || fail "cannot set tcp_syn_retries"

ALL=tcpconnlat-all
SELF=tcpconnlat-self
OKS=tcpconnlat-remoteport-$OK_PORT
DRS=tcpconnlat-remoteport-$DROP_PORT

collectd_start "OwnNetnsOnly true
MaxInflight $MAXINF
SeriesTimeout 120
By remote_port" "" ip netns exec "$BED_CLIENT_NS"
wait_rows "$ALL/total_connections-established" 2

# Memory: collectd's RSS, and the BPF maps it holds (memlock is what the
# kernel accounts for each map: all of it for preallocated ones).
rss_kb() { awk '/^VmRSS:/{print $2}' /proc/"$TCL_COLLECTD_PID"/status; }
map_id() { # NAME: the id of collectd's map of that name
	local id
	for id in $(grep -hs '^map_id:' /proc/"$TCL_COLLECTD_PID"/fdinfo/* | awk '{print $2}' | sort -u); do
		bpftool map show id "$id" 2>/dev/null | awk -v n="$1" -v id="$id" 'NR == 1 && $4 == n { print id }'
	done | head -n 1
}
FS_ID=$(map_id tcl_first_syn)
[[ -n "$FS_ID" ]] || fail "cannot find the first-SYN map of collectd"
fs_field() { # max_entries|memlock
	bpftool map show id "$FS_ID" | awk -v f="$1" '{ for (i = 1; i < NF; i++) if ($i == f) { v = $(i + 1); sub("B$", "", v); print v } }'
}
fs_entries() {
	bpftool -j map dump id "$FS_ID" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}
v() { csv_last "$1" 2>/dev/null || echo 0; } # counter now (0 before its first row)
d_() { echo $(($(v "$1") - $2)); }
mib() { bed_client_exec nstat -asz "$1" | awk -v n="$1" '$1 == n { print $2 }'; } # NAME: the client namespace's counter
syn_retrans() { mib TcpExtTCPSynRetrans; }

[[ $(fs_field max_entries) == "$MAXINF" ]] || fail "the first-SYN map has $(fs_field max_entries) entries, expected MaxInflight $MAXINF"
rss0=$(rss_kb) maps0=$(tcl_maps_bytes) fs0=$(fs_field memlock)
est0=$(v "$ALL/total_connections-established")
to0=$(v "$ALL/total_connections-timeout")
rtx0=$(v "$ALL/total_connections-syn_retransmitted")
rows0=$(csv_rows "$ALL/latency-max")
note "before: RSS ${rss0} kB, maps $maps0 B (first-SYN map $fs0 B for $MAXINF entries)"

# --- The flood: F blocking connects at once to a port whose SYNs vanish.
sr0=$(syn_retrans) af0=$(mib TcpAttemptFails) ab0=$(mib TcpExtTCPAbortOnTimeout)
bed_spawn client flood "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$DROP_PORT" -n "$F" -c "$F" -q
FLOOD=$BED_LAST_PROC FLOOD_ERR=$BED_LAST_ERR
syn_sent() { bed_client_exec ss -Htn state syn-sent "( dport = :$DROP_PORT )" | wc -l; }
_flood_started() { (($(syn_sent) >= F)); }
wait_until 20 "all $F flood connects in SYN-SENT" _flood_started
note "flood: $F connects in SYN-SENT, MaxInflight $MAXINF"

normal() { # N OUT
	bed_tcpclient connect -a "$BED_SERVER_V4" -p "$OK_PORT" -n "$1" -c 2 >"$2" 2>"$2.err"
	grep -q "^summary ok=$1 " "$2.err" || fail "normal client during the flood: $(cat "$2.err")"
}
# Batch A, before the flood's first retransmission; batch B once every flood
# SYN has been retransmitted at least once (the first-SYN map is full of the
# flood's entries), before the flood gives up.
normal "$NA" "$TCL_WORK/normal-a"
_flood_retransmitted() { (($(syn_retrans) - sr0 >= F)); }
wait_until 10 "every flood SYN retransmitted once (TcpExtTCPSynRetrans +$F)" _flood_retransmitted
ent=$(fs_entries)
((ent > 0 && ent <= MAXINF)) || fail "the first-SYN map holds $ent entries while the flood retransmits (MaxInflight $MAXINF)"
normal "$NB" "$TCL_WORK/normal-b"
_flood_started || fail "the flood ended before the normal connects did (slow machine?): raise tcp_syn_retries"
rss1=$(rss_kb) maps1=$(tcl_maps_bytes) fs1=$(fs_field memlock)
note "during: RSS ${rss1} kB, maps $maps1 B, first-SYN map $fs1 B, $ent entries"

# The flood times out (tcp_syn_retries 2).
bed_wait_exit "$FLOOD" 20 || fail "the flood client did not finish"
grep -q "^summary ok=0 refused=0 timeout=$F " "$FLOOD_ERR" ||
	fail "flood client: $(cat "$FLOOD_ERR")"

# Every connect of the namespace accounted for exactly once.
_settled() {
	(($(d_ "$ALL/total_connections-established" "$est0") == N1 &&
		$(d_ "$ALL/total_connections-timeout" "$to0") == F))
}
# what the kernel says of the client namespace, for a failure's message:
# every SYN_SENT -> CLOSE counts in TcpAttemptFails, every connect that gave
# up in TcpExtTCPAbortOnTimeout; and the plugin's other reasons (were missing
# timeouts counted under another one, or not seen at all?)
kernel_says() {
	local r others=
	for r in refused unreachable aborted other local; do
		others+=" $r $(v "$ALL/total_connections-$r")"
	done
	echo "the client namespace's kernel: TcpAttemptFails +$(($(mib TcpAttemptFails) - af0)), TcpExtTCPAbortOnTimeout +$(($(mib TcpExtTCPAbortOnTimeout) - ab0)); self/derive-recursion_misses $(v "$SELF/derive-recursion_misses"); the plugin's other reasons:$others; $(tcl_steal_note)"
}
_TCL_WAIT_LAST='echo "established +$(d_ "$ALL/total_connections-established" "$est0") timeout +$(d_ "$ALL/total_connections-timeout" "$to0"); $(kernel_says)"'
wait_until 15 "established +$N1, timeout +$F" _settled
_TCL_WAIT_LAST=
rows=$(csv_rows "$ALL/total_connections-established")
wait_rows "$ALL/total_connections-established" $((rows + 2))
_settled || fail "after two more reads: established +$(d_ "$ALL/total_connections-established" "$est0"), timeout +$(d_ "$ALL/total_connections-timeout" "$to0"); expected +$N1, +$F; $(kernel_says)"
[[ $(v "$OKS/total_connections-established") == "$N1" ]] ||
	fail "series remoteport-$OK_PORT has $(v "$OKS/total_connections-established") established, expected exactly $N1"
[[ $(v "$DRS/total_connections-timeout") == "$F" ]] || fail "series remoteport-$DROP_PORT has $(v "$DRS/total_connections-timeout") timeouts, expected $F"
[[ $(v "$DRS/total_connections-established") == 0 ]] || fail "a flood connect was counted as established"
for r in refused unreachable aborted other; do
	[[ $(v "$ALL/total_connections-$r") == 0 ]] || fail "connects counted as $r"
done
# retransmitted SYNs of established connects only: a normal connect whose
# SYN was lost took at least the retransmission timeout by its own clock
cat "$TCL_WORK/normal-a" "$TCL_WORK/normal-b" | awk '$1 == "ok" { print $2 }' >"$TCL_WORK/normal.ns"
slow=$(awk -v rto=$RTO_NS '$1 >= rto' "$TCL_WORK/normal.ns" | wc -l)
[[ $(d_ "$ALL/total_connections-syn_retransmitted" "$rtx0") == "$slow" ]] ||
	fail "syn_retransmitted grew by $(d_ "$ALL/total_connections-syn_retransmitted" "$rtx0"), but $slow normal connects took a retransmission timeout (the flood's $F retransmitted connects failed)"
[[ $(v "$DRS/total_connections-syn_retransmitted") == 0 ]] || fail "the flood's failed connects counted in syn_retransmitted"
[[ $(v "$SELF/derive-stats_dropped") == 0 ]] || fail "stats_dropped is not 0"
! csv_exists "$SELF/derive-no_start" || fail "self/derive-no_start is reported, but no start records are kept on this path"
pass "flood of $F (${FACTOR}x MaxInflight, every SYN retransmitted) + $N1 normal: $N1 established, $F timeouts, syn_retransmitted +$slow, exactly"

# --- After the flood: the first-SYN map is empty again, and normal connects
# are counted exactly.
ent=$(fs_entries)
((ent == 0)) || fail "the first-SYN map still holds $ent entries after the flood timed out: $(bpftool -j map dump id "$FS_ID" | python3 -c 'import json, sys; print([(e["formatted"]["key"]["laddr"][12:], e["formatted"]["key"]["lport"], e["formatted"]["key"]["raddr"][12:], e["formatted"]["key"]["rport"]) for e in json.load(sys.stdin)])' 2>&1)"
e0=$(v "$OKS/total_connections-established")
normal "$N2" "$TCL_WORK/normal-c"
awk '$1 == "ok" { print $2 }' "$TCL_WORK/normal-c" >>"$TCL_WORK/normal.ns"
wait_value "$OKS/total_connections-established" $((e0 + N2))
wait_value "$ALL/total_connections-established" $((est0 + N1 + N2))
rows=$(csv_rows "$ALL/total_connections-established")
wait_rows "$ALL/total_connections-established" $((rows + 2))
[[ $(v "$ALL/total_connections-established") == $((est0 + N1 + N2)) ]] || fail "established grew past +$N2"
pass "after the flood: the first-SYN map is empty, $N2 normal connects counted exactly"

# --- No bogus latency: every interval's max is NaN or within the clients'
# own max; the flooded port's series never has a finite latency; the buckets
# carry exactly the normal connects, none above the clients' own range.
CMAX=$(lat_max "$TCL_WORK/normal.ns")
while read -r x; do
	case $x in nan | -nan) ;; *)
		lat_not_above "$x" "$CMAX" ||
			fail "latency-max $x s in an interval of the flood, above the clients' own max $(lat_ms "$CMAX") ms" ;;
	esac
done < <(csv_values_after "$ALL/latency-max" "$rows0")
if csv_exists "$DRS/latency-max"; then
	while read -r x; do
		[[ $x == nan || $x == -nan ]] || fail "the flooded port has a latency: $x"
	done < <(csv_values_after "$DRS/latency-max" 0)
fi
sum=0
while read -r name; do
	lo=${name##*/bucket-latency-}
	lo=${lo%_*}
	add=$(csv_values_after "$name" "$rows0" | awk -v i="$TCL_INTERVAL" '{ s += $1 * i } END { printf "%.0f", s }')
	sum=$((sum + add))
	# a bucket is above the clients' range when its lower edge is above
	# their max (with the histogram's precision, 1/32)
	if ((add > 0)) && awk -v lo="$lo" -v m="$CMAX" 'BEGIN { exit !(lo * 1e9 > m * (1 + 1 / 32) + 1000) }'; then
		fail "bucket $name carries $add connects, above the clients' own max $(lat_ms "$CMAX") ms"
	fi
done < <(csv_names "$ALL/bucket-latency-")
((sum == N1 + N2)) || fail "buckets carry $sum connects, expected $((N1 + N2))"
pass "no bogus latency: every max within the clients' own ($(lat_ms "$CMAX") ms), none for the flooded port, buckets = the $((N1 + N2)) normal connects"

# --- Memory stayed bounded.
rss2=$(rss_kb) maps2=$(tcl_maps_bytes) fs2=$(fs_field memlock)
note "after: RSS ${rss2} kB, maps $maps2 B, first-SYN map $fs2 B"
[[ "$fs0" == "$fs1" && "$fs1" == "$fs2" ]] || fail "the first-SYN map changed size: $fs0 $fs1 $fs2 B"
# The stats map allocates a slot per used bucket and reason on first use
# (a few dozen here), about 100 bytes each.
((maps2 - maps0 < 256 * 1024)) || fail "BPF map memory grew by $((maps2 - maps0)) B"
((rss2 - rss0 < 4096)) || fail "collectd's RSS grew by $((rss2 - rss0)) kB"
pass "memory bounded: first-SYN map constant ($fs0 B, at most $MAXINF entries), maps +$((maps2 - maps0)) B, RSS +$((rss2 - rss0)) kB"

collectd_stop
wait_no_bpf_left "after the flood test"
grep -qiE 'segfault|assert' "$TCL_WORK/collectd.log" && fail "collectd logged a crash"
pass "shutdown left nothing behind"
