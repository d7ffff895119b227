#!/usr/bin/env bash
# failure_classes.sh - every connect is counted under the reason that matches
# what the application was told: the client records, connect by connect, the
# errno the kernel returned (connect()'s own error, or SO_ERROR once the
# socket polled writable; none when the client gave up itself), and the
# plugin's totals must equal the clients' counts exactly, reason by reason:
#
#   ok                      established
#   ECONNREFUSED            refused
#   ETIMEDOUT               timeout
#   EHOSTUNREACH/ENETUNREACH unreachable
#   EADDRNOTAVAIL           local
#   none, the client closed aborted
#   anything else           other
#
# With NotifyFailures true, the failure notifications must carry the same
# reasons, as many of each.
#
# Two network namespaces (tests/lib/netns.sh); collectd runs in the client
# namespace with OwnNetnsOnly true. Three phases, the totals checked after
# each (cumulative):
#
# 1. answers at the first SYN (the bed's defaults: ICMP errors held 1 ms so
#    that they find the socket unlocked, no ICMP rate limit): refused (closed
#    port: RST), unreachable (REJECT icmp-host-unreachable /
#    icmp6-addr-unreachable), timeout (SYNs dropped, tcp_syn_retries 1),
#    aborted (non-blocking connects closed 50 ms in while the SYN-ACK is held
#    300 ms), and successes; IPv4 and IPv6, blocking and non-blocking.
# 2. soft errors: the ICMP errors come back at once, so the first one finds
#    the socket still locked by connect() (TcpExtLockDroppedIcmps) and is
#    kept as a soft error, and the server's ICMP rate limit is the kernel's
#    default (1 per second after a burst), so later SYNs get no answer:
#    - blocking connects fail after a retransmit, with EHOSTUNREACH (the
#      soft error, when the retries run out, or the ICMP answer to a
#      retransmitted SYN) or ETIMEDOUT (no answer at all);
#    - non-blocking IPv4 connects: the queued ICMP error makes poll() report
#      POLLERR at once, SO_ERROR returns the soft error (EHOSTUNREACH) and
#      clears it, and the application closes the socket, still in SYN-SENT
#      with no socket error: that used to be counted as aborted.
# 3. no free local port: net.ipv4.ip_local_port_range shrunk to 4 ports in
#    the client namespace, 4 connections per family held open to one
#    listener, then more connects to it fail inside connect() with
#    EADDRNOTAVAIL after the socket entered SYN-SENT (inet_hash_connect):
#    they used to be counted as aborted too.
# The bed itself is checked too: each phase must have produced the cases it
# is there for (else the test says so and fails). The three phases run twice:
# with the BTF raw tracepoint and with the classic tracepoint (AttachMode,
# tracefs mounted in a private mount namespace), whose programs read the
# socket each through its own context.
#
# Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/collectd.sh"
. "$here/lib/netns.sh"
. "$here/lib/latency.sh"
lat_setup

REASONS=(established refused timeout unreachable aborted local other)
declare -A EXPECT=()
for r in "${REASONS[@]}"; do
	EXPECT[$r]=0
done
SELF=tcpconnlat-self
ROUND=

addr() { if [[ $1 == 4 ]]; then echo "$BED_SERVER_V4"; else echo "$BED_SERVER_V6"; fi; }

# Clients of the current phase: their per-connect lines (tests/tcpclient.c:
# result duration_ns laddr lport raddr rport errno).
PHASE_PROCS=() PHASE_OUTS=()
client() { # NAME ARGS... (tcpclient connect, in the client namespace)
	local name=$1
	shift
	bed_spawn client "$name" "$TCL_TEST_BIN/tcpclient" connect "$@"
	PHASE_PROCS+=("$BED_LAST_PROC")
	PHASE_OUTS+=("$BED_LAST_OUT")
}
wait_clients() { # TIMEOUT_S
	local p
	for p in "${PHASE_PROCS[@]}"; do
		bed_wait_exit "$p" "$1" || fail "a client did not finish within $1 s"
	done
	PHASE_PROCS=()
}

# The reason each connect of FILE... must be counted under.
truth() {
	awk '
		$7 == "0" { print ($1 == "ok" ? "established" : "aborted"); next }
		$7 == "ECONNREFUSED" { print "refused"; next }
		$7 == "ETIMEDOUT" { print "timeout"; next }
		$7 == "EHOSTUNREACH" || $7 == "ENETUNREACH" { print "unreachable"; next }
		$7 == "EADDRNOTAVAIL" { print "local"; next }
		{ print "other" }' "$@"
}
# How many lines of FILE... match the awk condition COND.
count() { # COND FILE...
	local cond=$1
	shift
	awk "$cond { n++ } END { print n + 0 }" "$@"
}

# Failure notifications of REASON in collectd's log so far.
notes() {
	grep -c "Notification: .*plugin = tcpconnlat, .*type = total_connections, type_instance = $1," \
		"$TCL_WORK/collectd.log" || true
}
notes_at_least() { (($(notes "$1") >= $2)); }

lock_dropped_icmps() {
	ip netns exec "$BED_CLIENT_NS" cat /proc/net/netstat |
		awk '$1 == "TcpExt:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "LockDroppedIcmps") c = i; n = 1 } else print $c }'
}

# The phase's connects are added to EXPECT; once a read after the last of
# them is written, every total must equal its expectation.
check_phase() { # LABEL
	local label=$1 r n got line="" bad=""
	while read -r r; do
		EXPECT[$r]=$((EXPECT[$r] + 1))
	done < <(truth "${PHASE_OUTS[@]}")
	n=$(csv_rows "$LAT_EST")
	lat_wait_rows $((n + 1)) "$LAT_EST"
	for r in "${REASONS[@]}"; do
		csv_exists "$LAT_ALL/total_connections-$r" || continue
		lat_wait_rows $((n + 1)) "$LAT_ALL/total_connections-$r"
	done
	for r in "${REASONS[@]}"; do
		got=$(csv_last "$LAT_ALL/total_connections-$r") || got=missing
		line+=" $r $got"
		[[ $got == "${EXPECT[$r]}" ]] || bad+=" $r: $got, the clients say ${EXPECT[$r]};"
	done
	[[ -z "$bad" ]] || fail "$ROUND $label: the totals are not what the applications were told:$bad (clients: $(cat "${PHASE_OUTS[@]}" | awk '{ print $1 "/" $7 }' | sort | uniq -c | tr -s ' \n' ' '))"
	# NotifyFailures: one notification per failure, with the same reason
	for r in "${REASONS[@]:1}"; do
		_TCL_WAIT_LAST="notes $r"
		wait_until 10 "${EXPECT[$r]} notifications of $r" notes_at_least "$r" "${EXPECT[$r]}"
		_TCL_WAIT_LAST=
		got=$(notes "$r")
		[[ $got == "${EXPECT[$r]}" ]] || bad+=" $r: $got notified, the clients say ${EXPECT[$r]};"
	done
	[[ -z "$bad" ]] || fail "$ROUND $label: the failure notifications do not match the clients:$bad"
	pass "$ROUND $label: totals and notifications as the clients were told:$line"
	PHASE_OUTS=()
}

# Connections to the listener of phase 3 that hold a local port (the
# listener closes what it accepts: the client side sits in CLOSE-WAIT, its
# port still taken, until the client closes).
established_to_hold() {
	ip netns exec "$BED_CLIENT_NS" ss -Htn state established state close-wait \
		"( dport = :$P_HOLD )" | wc -l
}
holding() { (($(established_to_hold) == 8)); }

PORT_RANGE=$(ip netns exec "$BED_CLIENT_NS" sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')

# One round per way of attaching: the two programs call the same
# classification, but each reads the socket through its own context.
round() { # tp_btf|tracepoint
	local mode=$1 fam a r c v p outs nb_outs hold_procs dropped0 dropped
	local n_ref n_unr n_tmo n_abo n_ok n_nb_soft n_late n_noport n_held
	local -a prefix=(ip netns exec "$BED_CLIENT_NS")
	local logline="through the BTF raw tracepoint (tp_btf)"
	if [[ $mode == tracepoint ]]; then
		# tracefs in a private mount namespace; the host's mounts are untouched
		prefix+=(unshare -m sh -c 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; exec "$@"' sh)
		logline="through the classic tracepoint sock:inet_sock_set_state"
	fi
	for r in "${REASONS[@]}"; do
		EXPECT[$r]=0
	done
	ROUND=$mode
	rm -rf "$TCL_WORK/csv"
	TCL_INTERVAL=1
	collectd_start "OwnNetnsOnly true
AttachMode \"$mode\"
NotifyFailures true
MaxNotificationsPerSecond 100000" "" "${prefix[@]}"
	collectd_alive || fail "$mode: collectd exited at start"
	grep -q "$logline" "$TCL_WORK/collectd.log" || fail "$mode: collectd did not attach $logline"
	lat_wait_rows 1 "$LAT_EST"

	# ---------------------------------------------- 1: answered at the first SYN
	P_REFUSED=1 P_UNREACH=2 P_TIMEOUT=3
	bed_listen 0 46 || fail "listener (aborts)"
	P_ABORT=$BED_LISTEN_PORT
	bed_delay_synack "$P_ABORT" 300 || fail "SYN-ACK delay 300 ms"
	bed_listen 0 46 || fail "listener (successes)"
	P_OK=$BED_LISTEN_PORT
	bed_reject_unreachable "$P_UNREACH" || fail "REJECT rule"
	bed_drop_syn "$P_TIMEOUT" || fail "DROP rule"
	bed_syn_retries 1 || fail "tcp_syn_retries"
	ip netns exec "$BED_SERVER_NS" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 >/dev/null ||
		fail "ICMP rate limit in the server namespace"

	for fam in 4 6; do
		a=$(addr $fam)
		client "refused-v$fam" -a "$a" -p $P_REFUSED -n 10
		client "refused-nb-v$fam" -a "$a" -p $P_REFUSED -n 5 -t 5000
		client "unreach-v$fam" -a "$a" -p $P_UNREACH -n 10
		client "unreach-nb-v$fam" -a "$a" -p $P_UNREACH -n 5 -t 5000
		client "timeout-v$fam" -a "$a" -p $P_TIMEOUT -n 3 -c 3
		client "abort-v$fam" -a "$a" -p "$P_ABORT" -n 10 -c 10 --abort-after-ms 50
		client "ok-v$fam" -a "$a" -p "$P_OK" -n 10
	done
	wait_clients 15
	outs=("${PHASE_OUTS[@]}")
	((${#outs[@]} == 14)) || fail "$ROUND phase 1: ${#outs[@]} client outputs, expected 14"
	# the bed gave each class: the clients' own counts
	n_ref=$(count '$7 == "ECONNREFUSED"' "${outs[@]}")
	n_unr=$(count '$7 == "EHOSTUNREACH"' "${outs[@]}")
	n_tmo=$(count '$7 == "ETIMEDOUT"' "${outs[@]}")
	n_abo=$(count '$1 == "aborted" && $7 == "0"' "${outs[@]}")
	n_ok=$(count '$1 == "ok"' "${outs[@]}")
	((n_ref == 30 && n_unr == 30 && n_tmo == 6 && n_abo == 20 && n_ok == 20)) ||
		fail "$ROUND phase 1: the bed did not answer as set up: refused $n_ref/30, unreachable $n_unr/30, timeout $n_tmo/6, aborted $n_abo/20, ok $n_ok/20"
	check_phase "phase 1 (refused, unreachable, timeout, aborted, ok; IPv4 + IPv6)"

	# ----------------------------------------------------------- 2: soft errors
	bed_rules_flush || fail "flushing the rules of phase 1"
	bed_reject_unreachable "$P_UNREACH" 0 || fail "REJECT rule (ICMP errors not held)"
	# the kernel's default ICMP rate limit (the bed switches it off)
	ip netns exec "$BED_SERVER_NS" sysctl -qw net.ipv4.icmp_ratelimit=1000 net.ipv6.icmp.ratelimit=1000 >/dev/null ||
		fail "ICMP rate limit in the server namespace"
	dropped0=$(lock_dropped_icmps)
	# Non-blocking first, while the server's ICMP token buckets are full.
	for fam in 4 6; do
		client "soft-nb-v$fam" -a "$(addr $fam)" -p $P_UNREACH -n 12 -c 12 -t 20000
	done
	wait_clients 15
	nb_outs=("${PHASE_OUTS[@]}")
	for fam in 4 6; do
		client "soft-v$fam" -a "$(addr $fam)" -p $P_UNREACH -n 12 -c 12
	done
	wait_clients 15
	dropped=$(($(lock_dropped_icmps) - dropped0))
	n_nb_soft=$(count '$7 == "EHOSTUNREACH" && $2 < 500000000' "${nb_outs[0]}")
	n_late=$(count '$7 == "EHOSTUNREACH" && $2 >= 900000000' "${PHASE_OUTS[@]}")
	note "$ROUND phase 2: $dropped ICMP errors found the socket locked; non-blocking IPv4 connects told EHOSTUNREACH at once: $n_nb_soft; connects told EHOSTUNREACH after a retransmit: $n_late"
	((dropped > 0 && n_nb_soft > 0 && n_late > 0)) ||
		fail "$ROUND phase 2: the bed did not give soft errors (locked: $dropped, at once through SO_ERROR: $n_nb_soft, after a retransmit: $n_late)"
	check_phase "phase 2 (ICMP errors as soft errors, rate limited; blocking and non-blocking, IPv4 + IPv6)"

	# ------------------------------------------------------- 3: no local port
	bed_rules_flush || fail "flushing the rules of phase 2"
	bed_listen 0 46 || fail "listener (held connections)"
	P_HOLD=$BED_LISTEN_PORT
	ip netns exec "$BED_CLIENT_NS" sysctl -qw net.ipv4.ip_local_port_range="40000 40003" ||
		fail "ip_local_port_range in the client namespace"
	# 4 connections per family use every local port towards that listener;
	# they stay open until SIGUSR1 (60 s at most).
	for fam in 4 6; do
		client "hold-v$fam" -a "$(addr $fam)" -p "$P_HOLD" -n 4 -c 4 --hold-ms 60000
	done
	hold_procs=("${PHASE_PROCS[@]}")
	bed_wait_cond 10 holding || fail "$ROUND phase 3: $(established_to_hold) connections held, expected 8"
	PHASE_PROCS=()
	for fam in 4 6; do
		client "noport-v$fam" -a "$(addr $fam)" -p "$P_HOLD" -n 10
		client "noport-nb-v$fam" -a "$(addr $fam)" -p "$P_HOLD" -n 5 -t 5000
	done
	wait_clients 10
	holding || fail "$ROUND phase 3: the held connections ended before the failing connects did"
	for p in "${hold_procs[@]}"; do
		kill -USR1 "${p%%:*}"
	done
	PHASE_PROCS=("${hold_procs[@]}")
	wait_clients 10
	n_noport=$(count '$7 == "EADDRNOTAVAIL"' "${PHASE_OUTS[@]}")
	n_held=$(count '$1 == "ok"' "${PHASE_OUTS[@]}")
	((n_noport == 30 && n_held == 8)) ||
		fail "$ROUND phase 3: the bed did not run out of ports as set up: EADDRNOTAVAIL $n_noport/30, held $n_held/8"
	check_phase "phase 3 (no free local port: EADDRNOTAVAIL inside connect(); IPv4 + IPv6)"

	# NotifyFailures keeps each connect's process: every outcome found it
	for c in no_start stats_dropped; do
		v=$(csv_last "$SELF/derive-$c") || fail "no series $SELF/derive-$c"
		[[ $v == 0 ]] || fail "$mode: self/derive-$c is $v: some outcomes lost their start record or were dropped"
	done
	collectd_alive || fail "$mode: collectd died"
	collectd_stop
	pass "$mode: every outcome found its start record; collectd ran throughout"
	bed_rules_flush || fail "flushing the rules of phase 3"
	ip netns exec "$BED_CLIENT_NS" sysctl -qw net.ipv4.ip_local_port_range="$PORT_RANGE" ||
		fail "restoring ip_local_port_range"
}

for mode in tp_btf tracepoint; do
	round "$mode"
done
