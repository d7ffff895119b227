#!/usr/bin/env bash
# No latency longer than a connect really took, whatever happens to the
# sockets around it: thousands of loopback connects reuse socket addresses
# at once (the kernel hands a freed socket's memory to the next one), while
# half of them are filtered out at their outcome (Process) and, in the second
# run, the start records that carry the process are evicted all the time
# (MaxInflight 16 against 64 connects held in flight). The ground truth is the
# clients' own clock: the plugin's longest latency must not exceed the
# longest connect() the wanted client timed (plus the histogram's 1/32), and
# every count must be what the clients made.
#   run 1: tp_btf, the default table of start records: exact counts;
#   run 2: the classic tracepoint, a table of 16 slots while 64 more
#          connects are held in SYN-SENT: records go missing
#          (self/derive-no_start) but never lend a connect another one's start.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init
tcl_netns_create

N=${REUSE_CONNECTS:-3000} C=32 K=200
# Two copies of the client: the process name is what the filter sees.
cp "$TCL_TEST_BIN/tcpclient" "$TCL_WORK/tclreuse-a"
cp "$TCL_TEST_BIN/tcpclient" "$TCL_WORK/tclreuse-b"
A=tcpconnlat-process-tclreuse-a

out="$TCL_WORK/listen"
tcl_spawn ip netns exec "$TCL_NS" "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 >"$out"
wait_until 10 "listener" grep -q '^ready ' "$out"
PORT=$(awk '/^ready /{print $2}' "$out")
CLOSED=1

# Both clients at once, each N connects C at a time and K refused ones.
traffic() {
	local p
	in_ns "$TCL_WORK/tclreuse-a" connect -a 127.0.0.1 -p "$PORT" -n $N -c $C >"$TCL_WORK/a.out" 2>"$TCL_WORK/a.err" &
	p=$!
	in_ns "$TCL_WORK/tclreuse-b" connect -a 127.0.0.1 -p "$PORT" -n $N -c $C -q 2>"$TCL_WORK/b.err"
	in_ns "$TCL_WORK/tclreuse-a" connect -a 127.0.0.1 -p $CLOSED -n $K -q 2>"$TCL_WORK/a-refused.err"
	in_ns "$TCL_WORK/tclreuse-b" connect -a 127.0.0.1 -p $CLOSED -n $K -q 2>"$TCL_WORK/b-refused.err"
	wait "$p"
	grep -q "^summary ok=$N " "$TCL_WORK/a.err" || fail "client a: $(cat "$TCL_WORK/a.err")"
	grep -q "^summary ok=$N " "$TCL_WORK/b.err" || fail "client b: $(cat "$TCL_WORK/b.err")"
	grep -q "^summary ok=0 refused=$K " "$TCL_WORK/a-refused.err" || fail "client a, refused: $(cat "$TCL_WORK/a-refused.err")"
	grep -q "^summary ok=0 refused=$K " "$TCL_WORK/b-refused.err" || fail "client b, refused: $(cat "$TCL_WORK/b-refused.err")"
}

# The longest latency the plugin ever reported for client a, against the
# longest connect() client a timed.
check_max() { # LABEL
	local plugin_max client_max
	plugin_max=$(csv_values_after "$A/latency-max" 0 | grep -v nan | sort -g | tail -n 1)
	client_max=$(awk '$1 == "ok" { print $2 }' "$TCL_WORK/a.out" | sort -n | tail -n 1)
	[[ -n $plugin_max && -n $client_max ]] || fail "$1: no latency (plugin '$plugin_max', client '$client_max')"
	awk -v g="$plugin_max" -v c="$client_max" 'BEGIN { exit !(g * 1e9 <= c * (1 + 1 / 32) + 1000) }' ||
		fail "$1: latency-max $plugin_max s is longer than any connect client a timed ($client_max ns)"
	MAX_LINE="latency-max $(awk -v g="$plugin_max" 'BEGIN { printf "%.3f", g * 1e3 }') ms <= the client's longest $(awk -v c="$client_max" 'BEGIN { printf "%.3f", c / 1e6 }') ms"
}

# Counters settle once two reads in a row agree.
settle() { # FILE
	local rows
	rows=$(csv_rows "$1")
	wait_rows "$1" $((rows + 2))
}

run() { # LABEL CONFIG [CMD, run before the traffic]
	rm -rf "$TCL_WORK/csv"
	# ip netns exec mounts a /sys of its own: tracefs is mounted in there
	# (privately) for the classic tracepoint.
	collectd_start "OwnNetnsOnly true
By process
Process \"tclreuse-a\"
$2" "" ip netns exec "$TCL_NS" sh -c \
		'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; exec "$@"' sh
	wait_rows tcpconnlat-self/derive-filtered 1
	[[ -z "${3:-}" ]] || "$3"
	traffic
}

# ---------------------------------------------- 1: the default table
run "tp_btf" 'AttachMode "tp_btf"'
grep -q "kept from connect() to its outcome in a table of 16384 slots" "$TCL_WORK/collectd.log" ||
	fail "tp_btf: no table of start records: $(grep 'tcpconnlat plugin' "$TCL_WORK/collectd.log" | tail -n 3)"
wait_value "$A/total_connections-established" $N 20
wait_value "$A/total_connections-refused" $K 20
settle "$A/total_connections-established"
[[ $(csv_last "$A/total_connections-established") == "$N" ]] || fail "tp_btf: established $(csv_last "$A/total_connections-established"), expected $N"
[[ $(csv_last tcpconnlat-self/derive-filtered) == $((N + K)) ]] ||
	fail "tp_btf: filtered $(csv_last tcpconnlat-self/derive-filtered), expected client b's $((N + K))"
[[ $(csv_last tcpconnlat-self/derive-no_start) == 0 ]] || fail "tp_btf: $(csv_last tcpconnlat-self/derive-no_start) outcomes without a start record"
check_max "tp_btf"
collectd_stop
pass "tp_btf, 16384 start slots: client a's $N connects and $K refusals exactly, client b's $((N + K)) filtered; $MAX_LINE"

# ------------------------------------------ 2: a table far too small
# A loopback connect is in flight only while its own connect() runs, so the
# clients alone overflow 16 slots only when a full accept queue drops SYNs
# (a fresh-clone run once saw no record go missing). H connects held in
# SYN-SENT meanwhile (their SYNs dropped; the client gives up after 5 s)
# overflow the table whatever the scheduler does: at least H - 16 of their
# records are evicted by the others, and their outcomes come without one.
DROP=9 H=64
in_ns iptables -w -A INPUT -p tcp --dport $DROP --syn -j DROP || fail "cannot drop SYNs to port $DROP"
_held() { (($(in_ns ss -Htn state syn-sent "( dport = :$DROP )" | wc -l) >= H)); }
hold() {
	tcl_spawn ip netns exec "$TCL_NS" "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p $DROP \
		-n $H -c $H -t 5000 --comm tclreuse-h -q 2>"$TCL_WORK/h.err"
	HOLD_PID=${_TCL_PIDS[-1]}
	wait_until 10 "$H connects held in SYN-SENT" _held
}
run "tracepoint" 'AttachMode "tracepoint"
MaxInflight 16' hold
wait "$HOLD_PID" || fail "the held connects' client failed: $(cat "$TCL_WORK/h.err")"
grep -q "^summary ok=0 refused=0 timeout=$H " "$TCL_WORK/h.err" || fail "held connects: $(cat "$TCL_WORK/h.err")"
grep -q "kept from connect() to its outcome in a table of 16 slots" "$TCL_WORK/collectd.log" ||
	fail "tracepoint: no table of 16 start slots: $(grep 'tcpconnlat plugin' "$TCL_WORK/collectd.log" | tail -n 3)"
settle tcpconnlat-self/derive-no_start
est=$(csv_last "$A/total_connections-established" 2>/dev/null || echo 0)
nostart=$(csv_last tcpconnlat-self/derive-no_start)
filtered=$(csv_last tcpconnlat-self/derive-filtered)
refused=$(csv_last "$A/total_connections-refused" 2>/dev/null || echo 0)
((nostart >= H - 16)) || fail "tracepoint: $nostart outcomes without a start record, expected at least $((H - 16)) of the $H held connects"
# Every outcome is counted once: kept for a, or filtered (b's, the held
# ones, and a's whose record was evicted, which have no process to match).
((est + refused + filtered == 2 * (N + K) + H)) ||
	fail "tracepoint: established $est + refused $refused + filtered $filtered != the $((2 * (N + K) + H)) connects made"
((est <= N && est >= N - nostart)) || fail "tracepoint: established $est, expected $N less at most the $nostart without a record"
check_max "tracepoint"
collectd_stop
pass "tracepoint, 16 start slots: $nostart records missing, established $est of $N, every outcome counted once; $MAX_LINE"
wait_no_bpf_left "after the reuse runs"
