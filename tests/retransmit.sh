#!/usr/bin/env bash
# retransmit.sh - outbound connects whose SYN was retransmitted are timed
# from their FIRST SYN and counted in total_connections-syn_retransmitted.
#
# In the two-namespace bed (tests/lib/netns.sh) the server's SYN-ACKs of one
# listener are held D = 1300 ms (NFQUEUE, tests/nfq_delay.c): longer than the
# client's initial retransmission timeout (1 s), so each client retransmits
# its SYN once, at about 1 s. The server answers that SYN with another
# SYN-ACK, which is held too and arrives about 2.3 s in, after the first one
# has completed the connect at about 1.3 s (the client, established by then,
# ignores it). So each connect takes about 1.3 s by its own clock and has
# exactly one retransmitted SYN, which the client namespace's
# TcpExtTCPSynRetrans confirms. The kernel forgets the first SYN's time by
# the time the SYN-ACK comes; tcp:tcp_retransmit_skb keeps it for the plugin
# in milliseconds, rounded so that the latency is never longer than it was.
#
# Checked, for AttachMode "tp_btf" and "tracepoint" (both hooks have both
# variants; tracefs is mounted in collectd's own mount namespace):
#   - established = N and syn_retransmitted = N exactly for the held port;
#   - the plugin's latency-max, -average, -percentile-50 and -99 of the
#     interval agree with the clients' own clocks (connect() call to return)
#     within 1 ms + 1/32: the plugin's time starts at the first SYN (ms
#     resolution) rather than at the call (a few us earlier), and a
#     percentile is a bucket (1/32 wide) estimate;
#   - a control group on another port, no hold, in the same interval:
#     established = M, syn_retransmitted 0, latencies within its clients';
#   - the first-SYN map keeps nothing of the bed afterwards: not the held
#     connects' (taken when they completed), not those of held connects the
#     plugin leaves out (IgnoreRemotePort: counted in self/derive-filtered),
#     and not those of a connect from the server namespace, which
#     OwnNetnsOnly does not watch (its SYN dropped and retransmitted, then
#     given up by the client).
# collectd runs in the client namespace with OwnNetnsOnly true.
#
#   RETRANSMIT_N (6)        held connects, all at once
#   RETRANSMIT_CONTROL (20) control connects, one after the other
#   RETRANSMIT_HOLD_MS (1300)
#
# Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/collectd.sh"
. "$here/lib/netns.sh"
. "$here/lib/latency.sh"
lat_setup
tcl_require_tools nstat

N=${RETRANSMIT_N:-6}
M=${RETRANSMIT_CONTROL:-20}
D=${RETRANSMIT_HOLD_MS:-1300}
# the first SYN-ACK must come after the first SYN retransmission (1 s) and
# before the second: 2 s since Linux 6.5 (tcp_syn_linear_timeouts), 3 s before
((D > 1000 && D < 2000)) || fail "RETRANSMIT_HOLD_MS must lie between 1000 and 2000 (the first and the second SYN retransmission)"

bed_listen 0 4 || fail "no listener for the held connects"
HELD=$BED_LISTEN_PORT
bed_delay_synack "$HELD" "$D" || fail "cannot hold the SYN-ACKs of port $HELD"
bed_listen 0 4 || fail "no listener for the control connects"
CTRL=$BED_LISTEN_PORT
bed_listen 0 4 || fail "no listener for the ignored connects"
IGN=$BED_LISTEN_PORT
bed_delay_synack "$IGN" "$D" || fail "cannot hold the SYN-ACKs of port $IGN"
# a port of the client namespace whose SYNs vanish, for the server's connect
FOREIGN=$((CTRL + 1))
[[ $FOREIGN != "$HELD" && $FOREIGN != "$IGN" ]] || FOREIGN=$((CTRL + 2))
bed_client_exec iptables -A INPUT -p tcp --dport "$FOREIGN" --syn -j DROP
note "bed: held SYN-ACKs from ports $HELD and $IGN (ignored) ($D ms), control port $CTRL, client port $FOREIGN drops SYNs"

HS=tcpconnlat-remoteport-$HELD
CS=tcpconnlat-remoteport-$CTRL
syn_retrans() { bed_client_exec nstat -asz TcpExtTCPSynRetrans | awk '$1 == "TcpExtTCPSynRetrans" { print $2 }'; }

# Values of the read at time T (every series of a read has the same time;
# series created later have fewer rows, so rows cannot be compared).
read_time() { _csv_data "$1" | sed -n "${2}p" | cut -d, -f1; } # NAME ROW
at() { _csv_data "$1" | awk -F, -v t="$2" '$1 == t { v = $2 } END { print v }'; } # NAME T
grew() { # NAME T0 T1 -> counter growth (0 before the series' first row)
	local a b
	a=$(at "$1" "$2") b=$(at "$1" "$3")
	echo $((${b:-0} - ${a:-0}))
}
# The first-SYN map's entries with an address of the bed: "laddr:lport>raddr:rport"
bed_entries() {
	local id fs=""
	for id in $(grep -hs '^map_id:' /proc/"$TCL_COLLECTD_PID"/fdinfo/* | awk '{print $2}' | sort -u); do
		bpftool map show id "$id" 2>/dev/null | awk 'NR == 1 && $4 == "tcl_first_syn" { found = 1 } END { exit !found }' && fs=$id
	done
	[[ -n "$fs" ]] || fail "cannot find collectd's first-SYN map"
	bpftool -j map dump id "$fs" | python3 -c '
import json, sys
net = [int(x) for x in sys.argv[1].split(".")[:3]]
for e in json.load(sys.stdin):
    k = e["formatted"]["key"]
    l, r = k["laddr"][12:], k["raddr"][12:]
    if l[:3] == net or r[:3] == net:
        print("%s:%d>%s:%d" % (".".join(map(str, l)), k["lport"], ".".join(map(str, r)), k["rport"]), end=" ")
' "$BED_SERVER_V4"
}

# |GOT - CLIENT| <= 1 ms + CLIENT / 32, GOT in s, CLIENT in ns
agrees() {
	awk -v g="$1" -v c="$2" 'BEGIN { if (g !~ /^[0-9.e+-]+$/) exit 1; d = g * 1e9 - c; if (d < 0) d = -d; exit !(d <= 1e6 + c / 32) }'
}

case_run() {
	SR0=$(syn_retrans)
	tcl_steal_mark
	bed_spawn client control "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$CTRL" -n "$M"
	CTRL_PROC=$BED_LAST_PROC CTRL_OUT=$BED_LAST_OUT CTRL_ERR=$BED_LAST_ERR
	bed_spawn client ignored "$TCL_TEST_BIN/tcpclient" connect -a "$BED_SERVER_V4" -p "$IGN" -n "$N" -c "$N"
	IGN_PROC=$BED_LAST_PROC IGN_ERR=$BED_LAST_ERR
	# gives up after 1.5 s, its SYN retransmitted once
	bed_spawn server foreign "$TCL_TEST_BIN/tcpclient" connect -a "$BED_CLIENT_V4" -p "$FOREIGN" -n 2 -c 2 -t 1500
	FOREIGN_PROC=$BED_LAST_PROC FOREIGN_ERR=$BED_LAST_ERR
	bed_connect "$BED_SERVER_V4" "$HELD" -n "$N" -c "$N" >"$TCL_WORK/held" 2>"$TCL_WORK/held.err"
	bed_wait_exit "$CTRL_PROC" 20 || fail "the control client did not finish"
	bed_wait_exit "$IGN_PROC" 20 || fail "the ignored client did not finish"
	bed_wait_exit "$FOREIGN_PROC" 20 || fail "the server's client did not finish"
	SR1=$(syn_retrans)
}

run_mode() { # tp_btf|tracepoint
	local mode=$1 prefix=(ip netns exec "$BED_CLIENT_NS") t0 t1 p got cl line="" bad="" s
	if [[ $mode == tracepoint ]]; then
		# "ip netns exec" mounts a fresh /sys in its own mount namespace:
		# tracefs goes there, the host's mounts are untouched
		prefix+=(sh -c 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || exit 99; exec "$@"' sh)
	fi
	rm -rf "$TCL_WORK/csv"
	TCL_INTERVAL=5
	collectd_start "OwnNetnsOnly true
Inbound false
IgnoreRemotePort $IGN
AttachMode \"$mode\"
By remote_port
Percentile 50
Percentile 99" "" "${prefix[@]}"
	collectd_alive || fail "$mode: collectd exited at start"
	if [[ $mode == tracepoint ]]; then
		grep -q "through the classic tracepoint sock:inet_sock_set_state, with tcp:tcp_retransmit_skb" "$TCL_WORK/collectd.log" ||
			fail "$mode: the plugin did not start on the classic tracepoints"
	else
		grep -q "through the BTF raw tracepoint (tp_btf) sock:inet_sock_set_state, with tcp:tcp_retransmit_skb" "$TCL_WORK/collectd.log" ||
			fail "$mode: the plugin did not start on tp_btf"
	fi
	lat_wait_rows 1 "$LAT_EST"

	# the whole case in one interval: about 1.3 s, the last held SYN-ACKs
	# come 1 s later
	lat_case $((N + M)) 4 case_run
	grep -q "^summary ok=$N refused=0 timeout=0 unreachable=0 aborted=0 other=0$" "$TCL_WORK/held.err" ||
		fail "$mode: the held clients: $(cat "$TCL_WORK/held.err")"
	grep -q "^summary ok=$M refused=0 timeout=0 unreachable=0 aborted=0 other=0$" "$CTRL_ERR" ||
		fail "$mode: the control clients: $(cat "$CTRL_ERR")"
	((SR1 - SR0 == 2 * N)) ||
		fail "$mode: the client namespace retransmitted $((SR1 - SR0)) SYNs, the bed should make it exactly $((2 * N)) (one per held or ignored connect): $(tcl_steal_since)"

	t0=$(read_time "$LAT_EST" $((LAT_ROW - 1)))
	t1=$(read_time "$LAT_EST" "$LAT_ROW")
	[[ $(grew "$HS/total_connections-established" "$t0" "$t1") == "$N" ]] ||
		fail "$mode: held port: established grew by $(grew "$HS/total_connections-established" "$t0" "$t1"), expected $N"
	[[ $(grew "$HS/total_connections-syn_retransmitted" "$t0" "$t1") == "$N" ]] ||
		fail "$mode: held port: syn_retransmitted grew by $(grew "$HS/total_connections-syn_retransmitted" "$t0" "$t1"), expected $N"
	[[ $(grew "$CS/total_connections-established" "$t0" "$t1") == "$M" ]] ||
		fail "$mode: control port: established grew by $(grew "$CS/total_connections-established" "$t0" "$t1"), expected $M"
	[[ $(grew "$CS/total_connections-syn_retransmitted" "$t0" "$t1") == 0 ]] ||
		fail "$mode: control port: syn_retransmitted grew by $(grew "$CS/total_connections-syn_retransmitted" "$t0" "$t1"), expected 0"
	[[ $(grew "$LAT_ALL/total_connections-syn_retransmitted" "$t0" "$t1") == "$N" ]] ||
		fail "$mode: all: syn_retransmitted grew by $(grew "$LAT_ALL/total_connections-syn_retransmitted" "$t0" "$t1"), expected $N"
	for s in "$HS" "$CS"; do
		for r in "${LAT_REASONS[@]}"; do
			[[ $(grew "$s/total_connections-$r" "$t0" "$t1") == 0 ]] || fail "$mode: $s: connects counted as $r"
		done
	done
	pass "$mode: $N held connects: established $N, syn_retransmitted $N (the client retransmitted $((SR1 - SR0)) SYNs, $N of them ignored); control: established $M, syn_retransmitted 0"

	# latencies of the held connects against their clients' own clocks
	awk '$1 == "ok" { print $2 }' "$TCL_WORK/held" >"$TCL_WORK/held.ns"
	for p in 50 99 avg max; do
		case $p in
		avg) got=$(at "$HS/latency-average" "$t1") cl=$(lat_mean "$TCL_WORK/held.ns") ;;
		max) got=$(at "$HS/latency-max" "$t1") cl=$(lat_max "$TCL_WORK/held.ns") ;;
		*) got=$(at "$HS/latency-percentile-$p" "$t1") cl=$(lat_quantile "$TCL_WORK/held.ns" "$p") p=p$p ;;
		esac
		line+=" $p $(lat_sec_ms "$got")/$(lat_ms "$cl")"
		agrees "$got" "$cl" || bad+=" $p: plugin $(lat_sec_ms "$got") ms, clients $(lat_ms "$cl") ms;"
	done
	[[ -z "$bad" ]] ||
		fail "$mode: held connects out of 1 ms + 1/32 of the clients' clocks:$bad (plugin/clients ms:$line); $(tcl_steal_since)"
	pass "$mode: held connects timed from the first SYN, plugin/clients ms:$line"

	# the control connects: not above their clients' own
	awk '$1 == "ok" { print $2 }' "$CTRL_OUT" >"$TCL_WORK/control.ns"
	got=$(at "$CS/latency-max" "$t1")
	cl=$(lat_max "$TCL_WORK/control.ns")
	lat_not_above "$got" "$cl" ||
		fail "$mode: control max $(lat_sec_ms "$got") ms is above its clients' own $(lat_ms "$cl") ms; $(tcl_steal_since)"
	pass "$mode: control max $(lat_sec_ms "$got") ms within its clients' $(lat_ms "$cl") ms"

	# the first-SYN map after the case: nothing of the bed left
	grep -q "^summary ok=$N " "$IGN_ERR" || fail "$mode: the ignored clients: $(cat "$IGN_ERR")"
	grep -q "^summary ok=0 .*timeout=2 " "$FOREIGN_ERR" || fail "$mode: the server's clients: $(cat "$FOREIGN_ERR")"
	[[ $(grew tcpconnlat-self/derive-filtered "$t0" "$t1") == "$N" ]] ||
		fail "$mode: self/derive-filtered grew by $(grew tcpconnlat-self/derive-filtered "$t0" "$t1"), expected $N (the ignored port's)"
	s=$(bed_entries)
	[[ -z "$s" ]] || fail "$mode: the first-SYN map still holds entries of the bed after every connect ended: $s"
	pass "$mode: the first-SYN map holds nothing of the bed: not the held, ignored ($N filtered) or other namespace's connects"

	collectd_alive || fail "$mode: collectd died"
	[[ $(csv_last tcpconnlat-self/derive-stats_dropped) == 0 ]] || fail "$mode: outcomes were dropped"
	collectd_stop
	wait_no_bpf_left "after $mode"
}

run_mode tp_btf
run_mode tracepoint
pass "retransmitted SYNs: counted and timed from the first SYN, through tp_btf and the classic tracepoints"
