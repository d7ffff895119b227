#!/bin/bash
# iface.sh - passive mode on an interface (Interface NAME): handshakes that a
# router only forwards, measured by the TC programs on its interfaces.
#
#   client (cA) ---- (rA) router (rB) ---- (sB) server      rC=rD: spare veth
#
# collectd runs in the router namespace with Interface rA rB rC, so the TC
# programs see only this bed's packets and every count is exact. The server
# holds its SYN-ACKs D ms (NFQUEUE + nfq_delay). rA carries filters of
# somebody else, among them u32 filters that end classification for every
# IPv4 and IPv6 packet (classid 1:1) at priorities 7 and 8: whatever runs
# behind them sees nothing. Two runs: InterfaceAttach "tc" (TC filters, as on
# kernels without tcx), then "auto" (tcx links on this kernel). Checked:
#   - where the programs run: TC filters at the lowest free priority on each
#     side (rA ingress 2, since 1 is taken; 1 elsewhere), the log says so and
#     warns about the filter ahead; tcx links (collectd's fdinfo: ingress
#     46, egress 47 on each interface) and no TC filter; both see everything
#     the terminating filters would hide;
#   - forwarded handshakes, IPv4 and IPv6, D = 20 ms (TC run) and 50 ms (tcx
#     run), 100 sequential connects each: the router's latency (iface-rA-in:
#     SYN came in; iface-rB-out: SYN went out) matches the client's own
#     connect() times within 2 % or 0.2 ms (mean over the case; every
#     interval's median and max within the client's range); syn/established
#     counts exact;
#   - TCP Fast Open (tcpclient --fastopen), IPv4 and IPv6: SYNs that carry
#     data (the server's TcpExt TCPFastOpenPassive counts them) are paired
#     with SYN-ACKs that acknowledge the data too, and timed as above;
#   - a retransmitted SYN (the server drops the first SYN of each connect) is
#     counted and timed from the SYN the SYN-ACK answers (TCP timestamps),
#     not from the first one; without timestamps it is counted as ambiguous
#     and not timed;
#   - SYNs never answered are counted as unanswered after InterfaceTimeout;
#   - politeness: filters installed beforehand by someone else (on a clsact
#     qdisc they created) and one added while collectd runs are still there
#     afterwards; the plugin's own filters (handle 0x7c1) and links are gone;
#     the clsact qdisc the plugin created is removed only where nobody else
#     uses it; a failed start (a shared filter block on the third interface,
#     InterfaceAttach "tc") removes what it had attached to the first two.
#
# Exit: 0 pass, 1 fail, 77 skip (a skip is a failure when CI=true).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${TCL_TEST_BIN:=$here}"
# shellcheck source=lib/collectd.sh
. "$here/lib/collectd.sh"

tcl_require_root
for tool in ip tc iptables ip6tables sysctl awk paste chrt; do
	command -v "$tool" >/dev/null 2>&1 || tcl_skip_or_fail "$tool is not installed"
done
for bin in tcpclient nfq_delay; do
	[[ -x "$TCL_TEST_BIN/$bin" ]] || tcl_skip_or_fail "helper $TCL_TEST_BIN/$bin is not built"
done

tcl_init

OUR_HANDLE=0x7c1 # TCL_IFACE_TC_HANDLE
N=100           # sequential connects per accuracy case

# ------------------------------------------------------------------ the bed
# A slot of our own: addresses 10.233.SLOT.0/24 and fd00:7c3:SLOT::/48,
# distinct from every other bed alive on this host.
SLOT_ROOT=/run/tcl-iface-bed
SLOT_DIR=
alloc_slot() {
	local start i x d pid
	mkdir -p "$SLOT_ROOT"
	start=$((RANDOM % 250))
	for ((i = 0; i < 250; i++)); do
		x=$(((start + i) % 250 + 1))
		d=$SLOT_ROOT/$x
		pid=$(cat "$d/pid" 2>/dev/null || true)
		if [[ -d "$d" && -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			rm -rf "$d" # its owner died without cleaning up
		fi
		if mkdir "$d" 2>/dev/null; then
			echo $$ >"$d/pid"
			SLOT=$x
			SLOT_DIR=$d
			return 0
		fi
	done
	fail "no free address slot under $SLOT_ROOT"
}
alloc_slot
tcl_on_cleanup "rm -rf '$SLOT_DIR'"

tag="$$-$RANDOM"
NS_C=tcl-ic-$tag
NS_R=tcl-ir-$tag
NS_S=tcl-is-$tag
for ns in "$NS_C" "$NS_R" "$NS_S"; do
	ip netns add "$ns" || fail "cannot create network namespace $ns"
	_TCL_NETNS+=("$ns") # deleted by tcl_cleanup, with everything in it
	ip -n "$ns" link set lo up
	for k in all default; do
		ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$k.accept_dad=0"
		ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$k.disable_ipv6=0"
	done
done
in_c() { ip netns exec "$NS_C" "$@"; }
in_r() { ip netns exec "$NS_R" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

C4=10.233.$SLOT.2 RA4=10.233.$SLOT.1 RB4=10.233.$SLOT.129 S4=10.233.$SLOT.130
C6=fd00:7c3:$SLOT:1::2 RA6=fd00:7c3:$SLOT:1::1 RB6=fd00:7c3:$SLOT:2::1 S6=fd00:7c3:$SLOT:2::2

ip -n "$NS_C" link add cA type veth peer name rA netns "$NS_R"
ip -n "$NS_S" link add sB type veth peer name rB netns "$NS_R"
ip -n "$NS_R" link add rC type veth peer name rD
ip -n "$NS_C" addr add "$C4/25" dev cA
ip -n "$NS_C" addr add "$C6/64" dev cA nodad
ip -n "$NS_R" addr add "$RA4/25" dev rA
ip -n "$NS_R" addr add "$RA6/64" dev rA nodad
ip -n "$NS_R" addr add "$RB4/25" dev rB
ip -n "$NS_R" addr add "$RB6/64" dev rB nodad
ip -n "$NS_S" addr add "$S4/25" dev sB
ip -n "$NS_S" addr add "$S6/64" dev sB nodad
for l in "$NS_C cA" "$NS_R rA" "$NS_R rB" "$NS_R rC" "$NS_R rD" "$NS_S sB"; do
	read -r ns dev <<<"$l"
	ip -n "$ns" link set "$dev" up
done
ip -n "$NS_C" route add default via "$RA4"
ip -n "$NS_C" -6 route add default via "$RA6"
ip -n "$NS_S" route add default via "$RB4"
ip -n "$NS_S" -6 route add default via "$RB6"
in_r sysctl -qw net.ipv4.ip_forward=1
in_r sysctl -qw net.ipv6.conf.all.forwarding=1

_links_ready() {
	local l ns dev
	for l in "$NS_C cA" "$NS_R rA" "$NS_R rB" "$NS_S sB"; do
		read -r ns dev <<<"$l"
		[[ "$(ip -n "$ns" -o link show dev "$dev")" == *"state UP"* ]] || return 1
		[[ -z "$(ip -n "$ns" -6 addr show dev "$dev" tentative)" ]] || return 1
	done
	ip -n "$NS_C" route get "$S4" >/dev/null 2>&1 && ip -n "$NS_C" -6 route get "$S6" >/dev/null 2>&1 &&
		ip -n "$NS_S" route get "$C4" >/dev/null 2>&1 && ip -n "$NS_S" -6 route get "$C6" >/dev/null 2>&1
}
wait_until 10 "the links and routes of the bed" _links_ready

# ------------------------------------------------------------ the server
# listen ADDR PORT [ARGS]: a tcpclient listener in the server namespace,
# tracked by PID (ip netns exec execs it); sets LISTEN_PORT
listen() {
	local out=$TCL_WORK/listen-$RANDOM
	tcl_spawn ip netns exec "$NS_S" "$TCL_TEST_BIN/tcpclient" listen -a "$1" -p "$2" "${@:3}" >"$out" 2>&1
	wait_until 10 "a listener on [$1]:$2" grep -q '^ready ' "$out"
	LISTEN_PORT=$(awk '/^ready /{print $2; exit}' "$out")
}
listen "$S4" 0
P20=$LISTEN_PORT
listen "$S6" "$P20"
listen "$S4" 0
P50=$LISTEN_PORT
listen "$S6" "$P50"
listen "$S4" 0
PR=$LISTEN_PORT # retransmissions: the first SYN of each connect is dropped
PD=9            # every SYN dropped: never answered
# TCP Fast Open: the server takes data in the SYN (tcp_fastopen bit 2), the
# client sends it once it has the server's cookie (bit 1).
in_s sysctl -qw net.ipv4.tcp_fastopen=3
in_c sysctl -qw net.ipv4.tcp_fastopen=1
listen "$S4" 0 --fastopen
PF=$LISTEN_PORT
listen "$S6" "$PF" --fastopen

# nfq_delay Q MS in the server namespace
nfq() {
	local out=$TCL_WORK/nfq-$1
	# real-time priority: the hold stays D ms when the host is busy, so every
	# interval sees the same latencies
	tcl_spawn ip netns exec "$NS_S" chrt -f 10 "$TCL_TEST_BIN/nfq_delay" -q "$1" -d "$2" >"$out" 2>&1
	wait_until 10 "nfq_delay on queue $1" grep -q '^ready$' "$out"
}
nfq 1 20
nfq 2 50
for ipt in iptables ip6tables; do
	in_s "$ipt" -w -A OUTPUT -p tcp --sport "$P20" --tcp-flags SYN,ACK SYN,ACK \
		-j NFQUEUE --queue-num 1 --queue-bypass
	in_s "$ipt" -w -A OUTPUT -p tcp --sport "$P50" --tcp-flags SYN,ACK SYN,ACK \
		-j NFQUEUE --queue-num 2 --queue-bypass
	in_s "$ipt" -w -A OUTPUT -p tcp --sport "$PF" --tcp-flags SYN,ACK SYN,ACK \
		-j NFQUEUE --queue-num 1 --queue-bypass
done
in_s iptables -w -A OUTPUT -p tcp --sport "$PR" --tcp-flags SYN,ACK SYN,ACK \
	-j NFQUEUE --queue-num 1 --queue-bypass
# Each connect to PR sends exactly two SYNs: the first (even packets) dropped.
in_s iptables -w -A INPUT -p tcp --dport "$PR" --syn \
	-m statistic --mode nth --every 2 --packet 0 -j DROP
in_s iptables -w -A INPUT -p tcp --dport "$PD" --syn -j DROP

# connect ADDR PORT COUNT FILE [ARGS]: client connects; fails unless all ok
connect_ok() {
	local addr=$1 port=$2 n=$3 f=$4
	shift 4
	# at real-time priority, as in accuracy.sh: the client's own clock is the
	# ground truth, and a wake-up delayed by other load on the host is not
	# part of the handshake
	in_c chrt -f 10 "$TCL_TEST_BIN/tcpclient" connect -a "$addr" -p "$port" -n "$n" "$@" >"$f" 2>"$f.err" ||
		fail "tcpclient connect to [$addr]:$port: $(cat "$f.err")"
	[[ $(awk '$1 == "ok"' "$f" | wc -l) -eq $n ]] ||
		fail "connects to [$addr]:$port: not all $n ok: $(sort "$f" | cut -d' ' -f1 | uniq -c | tr '\n' ' ')"
}
# warm up neighbour caches and the delay helpers before anything is measured
connect_ok "$S4" "$P20" 1 "$TCL_WORK/warm4" -t 5000
connect_ok "$S6" "$P50" 1 "$TCL_WORK/warm6" -t 5000

# -------------------------------------------- filters of somebody else
in_r tc qdisc add dev rA clsact
# never match, so the chain goes on to the plugin's filter
in_r tc filter add dev rA ingress prio 1 handle 800::1 u32 match u32 0x7c3a5e11 0xffffffff at 0
in_r tc filter add dev rA egress prio 2 bpf bytecode '1,6 0 0 0,'

# and filters that end classification for every packet (a u32 match with a
# classid), at a priority number below the plugin's old fixed 1985: a filter
# behind them sees nothing. The plugin must run ahead of them.
for side in ingress egress; do
	in_r tc filter add dev rA "$side" pref 7 protocol ip u32 match u32 0 0 classid 1:1
	in_r tc filter add dev rA "$side" pref 8 protocol ipv6 u32 match u32 0 0 classid 1:1
done

# (output captured first: grep -q ending a pipe early fails it under pipefail)
filters() { in_r tc filter show dev "$1" "$2" 2>/dev/null || true; }
filters_have() { # DEV SIDE ERE
	local out
	out=$(filters "$1" "$2")
	grep -Eq -- "$3" <<<"$out"
}
has_qdisc() {
	local out
	out=$(in_r tc qdisc show dev "$1")
	grep -q clsact <<<"$out"
}
has_ours() { filters_have "$1" "$2" "pref ${3:-[0-9]+} bpf .*handle $OUR_HANDLE"; } # DEV SIDE [PRIO]
foreign_ok() { # rA's two filters of somebody else, unchanged
	filters_have rA ingress 'pref 1 u32 .*fh 800::1' &&
		filters_have rA ingress 'match 7c3a5e11/ffffffff at 0' &&
		filters_have rA egress "pref 2 bpf .*bytecode '1,6 0 0 0'" &&
		filters_have rA ingress 'pref 7 u32 .*flowid 1:1' && filters_have rA ingress 'pref 8 u32 .*flowid 1:1' &&
		filters_have rA egress 'pref 7 u32 .*flowid 1:1' && filters_have rA egress 'pref 8 u32 .*flowid 1:1'
}
foreign_ok || fail "could not install the filters of somebody else"

# ------------------------------------------ a start that fails half-way
# rD's clsact qdisc takes filters only through a shared block (ingress_block):
# with InterfaceAttach "tc", attaching there fails after rA and rC were done;
# everything must be undone.
in_r tc qdisc add dev rD ingress_block 7193 clsact
collectd_start 'Interface "rA" "rC" "rD"
InterfaceAttach "tc"
OwnNetnsOnly true' "" ip netns exec "$NS_R"
wait_until 10 "the failed start to be logged" \
	grep -q 'not starting: Interface "rD": the kernel refused a TC filter on its ingress .*shared filter block' "$TCL_WORK/collectd.log"
wait_until 10 "the plugin to be unloaded" grep -q "Plugin will be unloaded" "$TCL_WORK/collectd.log"
collectd_stop
foreign_ok || fail "failed start: the filters of somebody else on rA changed"
for dev in rA rC; do
	for side in ingress egress; do
		! has_ours "$dev" "$side" || fail "failed start: our $side filter on $dev was left behind"
	done
done
! has_qdisc rC || fail "failed start: the clsact qdisc created on rC was left behind"
has_qdisc rA || fail "failed start: the clsact qdisc of somebody else on rA was removed"
has_qdisc rD || fail "failed start: rD's clsact qdisc (somebody else's) was removed"
pass "a failed start (a shared filter block on rD) left no filter or qdisc of ours, and the others' untouched"
in_r tc qdisc del dev rD clsact

# ---------------------------------------------------------- reading back
# All rows "epoch,value" of NAME (plugin-instance/type-instance), every day.
rows() { _csv_data "$1"; }
nrows() { rows "$1" | wc -l; }
last() { csv_last "tcpconnlat-$1"; }

# Expected totals of the two series that see the forwarded handshakes, since
# collectd started (its maps start empty).
declare -A want
want_reset() {
	want=([syn]=0 [established]=0 [syn_retransmit]=0 [ambiguous]=0 [unanswered]=0)
}
SEEN=(iface-rA-in iface-rB-out)
QUIET=(iface-rA-out iface-rB-in iface-rC-in iface-rC-out)
COUNTERS=(total_connections-syn total_connections-established total_connections-syn_retransmit
	total_connections-ambiguous total_connections-unanswered)
HIST=(latency-average latency-max latency-percentile-50)

_rows_complete() { # INSTANCE: every file used has as many rows as the first
	local inst=$1 n f
	n=$(nrows "tcpconnlat-$inst/total_connections-established")
	for f in "${HIST[@]}" "${COUNTERS[@]}"; do
		(($(nrows "tcpconnlat-$inst/$f") >= n)) || return 1
	done
}

# Wait until both series show the expected totals, then check every counter.
settle() {
	local inst c k
	for inst in "${SEEN[@]}"; do
		for c in "${COUNTERS[@]}"; do
			k=${c#total_connections-}
			wait_value "tcpconnlat-$inst/$c" "${want[$k]}" 20
		done
		wait_until 10 "complete rows of $inst" _rows_complete "$inst"
		for c in evictions synack_unmatched stats_dropped; do
			[[ $(last "$inst/derive-$c") == 0 ]] || fail "$inst: derive-$c is $(last "$inst/derive-$c"), expected 0"
		done
	done
	for inst in "${QUIET[@]}"; do
		for c in "${COUNTERS[@]}" derive-synack_unmatched; do
			[[ $(last "$inst/$c") == 0 ]] || fail "$inst: $c is $(last "$inst/$c"), expected 0"
		done
	done
}

# hist INSTANCE FROM_ROW: "n sum_s p50min p50max max" over the rows after
# FROM_ROW: connects timed, their latency sum (average x count per interval),
# the smallest and largest interval median, the largest interval max.
hist() {
	local inst=tcpconnlat-$1 from=$2
	paste -d, <(rows "$inst/total_connections-established") <(rows "$inst/latency-average") \
		<(rows "$inst/latency-percentile-50") <(rows "$inst/latency-max") |
		awk -F, -v from="$from" '
			# a row some file does not have yet (collectd writes them one
			# by one): paste leaves its fields empty; it is the last one
			$1 == "" || $3 == "" || $5 == "" || $7 == "" { exit }
			NR > 1 { n = $2 - prev }
			{ prev = $2 }
			NR > from && n > 0 {
				tn += n; sum += n * $4
				if (pmin == "" || $6 < pmin) pmin = $6
				if (pmax == "" || $6 > pmax) pmax = $6
				if (mx == "" || $8 > mx) mx = $8
			}
			END { printf "%d %.9f %s %s %s\n", tn, sum, pmin, pmax, mx }'
}

# client FILE [LIMIT_S]: "n mean_s median_s min_s max_s kept kept_mean_s" of
# the ok connects; kept: those not slower than LIMIT_S
client() {
	awk '$1 == "ok" { print $2 / 1e9 }' "$1" | sort -g | awk -v lim="${2:-inf}" '
		{ v[NR] = $1; s += $1; if (lim == "inf" || $1 <= lim) { k++; ks += $1 } }
		END {
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%d %.9f %.9f %.9f %.9f %d %.9f\n", NR, s / NR, med, v[1], v[NR], k, k ? ks / k : 0
		}'
}

ms() { awk -v s="$1" 'BEGIN { printf "%.3f", s * 1000 }'; }

# ------------------------------------------------------- accuracy cases
# The client's connect() also holds the time its packets spend between it
# and the router, and its own wake-up: a few microseconds, unless the CPU is
# busy. Connects slower than the slowest handshake the router saw in the
# case (plus the tolerance) were delayed on the client's side, after the
# SYN-ACK had passed the router: they are left out of the client's mean (at
# most 5 % of them).
accuracy() { # FAMILY ADDR PORT D [TCPCLIENT ARGS]
	local fam=$1 addr=$2 port=$3 d=$4 f inst cmean cmed cmin cmax kept kmean
	local n sum pmin pmax mx mean tol limit what="SYN-ACK delay $d ms"
	shift 4
	f=$TCL_WORK/case-v$fam-$d-$port
	[[ $# -eq 0 ]] || what="$what, $*"
	declare -A from_row=()
	for inst in "${SEEN[@]}"; do
		from_row[$inst]=$(nrows "tcpconnlat-$inst/total_connections-established")
	done
	connect_ok "$addr" "$port" "$N" "$f" "$@"
	want[syn]=$((want[syn] + N))
	want[established]=$((want[established] + N))
	settle
	for inst in "${SEEN[@]}"; do
		read -r n sum pmin pmax mx < <(hist "$inst" "${from_row[$inst]}")
		[[ $n -eq $N ]] || fail "$inst IPv$fam D=$d: $n connects timed in the case's intervals, expected $N"
		mean=$(awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.9f", s / n }')
		read -r _ cmean cmed cmin cmax _ _ < <(client "$f")
		tol=$(awk -v c="$cmed" 'BEGIN { t = 0.02 * c; if (t < 0.0002) t = 0.0002; printf "%.9f", t }')
		limit=$(awk -v m="$mx" -v t="$tol" 'BEGIN { printf "%.9f", m + t }')
		read -r _ _ _ _ _ kept kmean < <(client "$f" "$limit")
		note "$inst IPv$fam D=$d ms $*: router mean $(ms "$mean") ms, interval medians" \
			"$(ms "$pmin")..$(ms "$pmax") ms, max $(ms "$mx") ms | client mean $(ms "$cmean") ms," \
			"median $(ms "$cmed") ms, min $(ms "$cmin"), max $(ms "$cmax"); $kept/$N not slower" \
			"than $(ms "$limit") ms: mean $(ms "$kmean") ms | tolerance $(ms "$tol") ms"
		((kept >= N * 95 / 100)) ||
			fail "$inst IPv$fam D=$d: only $kept of the client's $N connects were within $(ms "$limit") ms, the router's slowest + tolerance"
		awk -v a="$mean" -v b="$kmean" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' ||
			fail "$inst IPv$fam D=$d: router mean $(ms "$mean") ms is not within $(ms "$tol") ms of the client's $(ms "$kmean") ms"
		# a median is its bucket's midpoint: the histogram's 1/64 comes on top
		# (the mean above is exact and keeps the plain tolerance)
		mtol=$(awk -v t="$tol" -v c="$cmed" 'BEGIN { printf "%.9f", t + c / 64 }')
		awk -v a="$pmin" -v b="$pmax" -v c="$cmed" -v t="$mtol" 'BEGIN { exit !(a >= c - t && b <= c + t) }' ||
			fail "$inst IPv$fam D=$d: interval medians $(ms "$pmin")..$(ms "$pmax") ms are not within $(ms "$mtol") ms (tolerance + 1/64) of the client's median $(ms "$cmed") ms"
		awk -v m="$mx" -v lo="$cmin" -v hi="$cmax" -v t="$tol" 'BEGIN { exit !(m >= lo - t && m <= hi + t) }' ||
			fail "$inst IPv$fam D=$d: router max $(ms "$mx") ms is outside the client's range $(ms "$cmin")..$(ms "$cmax") ms"
	done
	pass "IPv$fam, $what, $N forwarded handshakes: counts exact, latency within 2 % or 0.2 ms of the client's"
}

# ------------------------------------------- TC filters (InterfaceAttach tc)
# As on kernels without tcx (Debian 12's 6.1): filters at the lowest free
# priority, ahead of the terminating filters on rA.
want_reset
collectd_start 'Interface "rA"
Interface "rB" "rC"
InterfaceAttach "tc"
InterfaceTimeout 2
OwnNetnsOnly true' "" ip netns exec "$NS_R"
log_has() { grep -Eq -- "$1" "$TCL_WORK/collectd.log"; }
log_has 'Interface "rA" \(ifindex [0-9]+, Ethernet\): TC filters \(handle 0x7c1\) attached at priority 2 on ingress \(1 in use ahead\) and 1 on egress \(0 ahead\).*clsact qdisc shared' ||
	fail "rA: expected priorities 2 (ingress) and 1 (egress) and the shared clsact qdisc to be logged"
log_has 'Interface "rA": filters at priorities 1 to 1 on its ingress run ahead' ||
	fail "rA: expected a warning about the filter at priority 1 on its ingress"
log_has 'Interface "rB" \(ifindex [0-9]+, Ethernet\): TC filters .* at priority 1 on ingress .* 1 on egress .*clsact qdisc created' ||
	fail "rB: expected priority 1 and the created clsact qdisc to be logged"
has_ours rA ingress 2 || fail "no filter of ours at priority 2 on rA ingress: $(filters rA ingress)"
has_ours rA egress 1 || fail "no filter of ours at priority 1 on rA egress: $(filters rA egress)"
for dev in rB rC; do
	for side in ingress egress; do
		has_ours "$dev" "$side" 1 || fail "no filter of ours at priority 1 on $dev $side: $(filters "$dev" "$side")"
	done
done
# somebody adds a filter to the qdisc the plugin created on rB
in_r tc filter add dev rB egress prio 3 bpf bytecode '1,6 0 0 0,'
pass "TC filters (handle $OUR_HANDLE) attached at the lowest free priority on rA, rB, rC, ahead of the terminating ones"

accuracy 4 "$S4" "$P20" 20
accuracy 6 "$S6" "$P20" 20

collectd_stop
wait_no_bpf_left "after the TC filter run"
for dev in rA rB rC; do
	for side in ingress egress; do
		! has_ours "$dev" "$side" || fail "after shutdown: our $side filter is still on $dev"
	done
done
foreign_ok || fail "after shutdown: the filters of somebody else on rA changed: $(filters rA ingress; filters rA egress)"
has_qdisc rA || fail "after shutdown: the clsact qdisc of somebody else on rA was removed"
filters_have rB egress "pref 3 bpf .*bytecode '1,6 0 0 0'" ||
	fail "after shutdown: the filter added on rB while collectd ran was removed"
has_qdisc rB || fail "after shutdown: rB's clsact qdisc was removed although another filter used it"
! has_qdisc rC || fail "after shutdown: the clsact qdisc the plugin created on rC was left behind"
pass "after the TC filter run: no filter of ours left; the others' filters and qdiscs untouched; our unused qdisc removed"

# ------------------------------------------------ tcx (InterfaceAttach auto)
# "auto" takes tcx where the kernel has it (6.6 and later): links at the head
# of each chain, ahead of every TC filter; no qdisc needed.
# tcx_links: "ifindex attach_type" of every tcx link collectd holds
tcx_links() {
	local f
	for f in /proc/"$TCL_COLLECTD_PID"/fdinfo/*; do
		awk '$1 == "link_type:" && $2 == "tcx" { t = 1 } $1 == "ifindex:" { i = $2 }
			$1 == "attach_type:" { a = $2 } END { if (t) print i, a }' "$f" 2>/dev/null || true
	done | sort
}
want_reset
collectd_start 'Interface "rA" "rB" "rC"
InterfaceTimeout 2
OwnNetnsOnly true' "" ip netns exec "$NS_R"
if log_has 'this kernel has no tcx'; then
	note "this kernel has no tcx: \"auto\" attached TC filters"
	has_ours rA ingress 2 && has_ours rA egress 1 || fail "auto without tcx: our filters are not ahead on rA"
else
	want_links=$(for dev in rA rB rC; do
		i=$(in_r cat "/sys/class/net/$dev/ifindex")
		echo "$i 46"
		echo "$i 47"
	done | sort)
	[[ "$(tcx_links)" == "$want_links" ]] ||
		fail "tcx: collectd holds the links '$(tcx_links | tr '\n' ' ')', expected '$(tr '\n' ' ' <<<"$want_links")'"
	for dev in rA rB rC; do
		log_has "Interface \"$dev\" \\(ifindex [0-9]+, Ethernet\\): attached through tcx links at the head of ingress and egress" ||
			fail "$dev: expected the tcx attachment to be logged"
		for side in ingress egress; do
			! has_ours "$dev" "$side" || fail "tcx: a TC filter of ours on $dev $side as well"
		done
	done
	! has_qdisc rC || fail "tcx: a clsact qdisc was created on rC"
	pass "tcx links (ingress 46, egress 47) on rA, rB, rC, ahead of the terminating TC filters"
fi

accuracy 4 "$S4" "$P50" 50
accuracy 6 "$S6" "$P50" 50

# ------------------------------------------------------ TCP Fast Open
# After the first connect (which fetches the cookie) the SYNs carry data and
# the SYN-ACK acknowledges it too (ISN + 1 + length). The server's own count
# of SYNs whose data it took (TcpExt TCPFastOpenPassive) says the data was
# really there.
tfo_passive() {
	in_s cat /proc/net/netstat | awk '$1 == "TcpExt:" {
		if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1 } else print $col["TCPFastOpenPassive"] }'
}
for fam in 4 6; do
	addr=$S4
	[[ $fam == 4 ]] || addr=$S6
	tfo0=$(tfo_passive)
	accuracy "$fam" "$addr" "$PF" 20 --fastopen
	tfo=$(($(tfo_passive) - tfo0))
	note "TCP Fast Open, IPv$fam: the server took data from $tfo of $N SYNs"
	((tfo >= N - 1)) || fail "TCP Fast Open, IPv$fam: the server took data from only $tfo of $N SYNs"
done

# ------------------------------------------------ retransmitted SYNs
# The server drops the first SYN of every connect to PR: the client's
# connect takes its SYN timeout (1 s) + 20 ms. The router times the handshake
# from the SYN its SYN-ACK echoes (TCP timestamps): about 20 ms.
f=$TCL_WORK/retransmit
declare -A from_row=()
for inst in "${SEEN[@]}"; do
	from_row[$inst]=$(nrows "tcpconnlat-$inst/total_connections-established")
done
connect_ok "$S4" "$PR" 4 "$f"
read -r _ cmean _ cmin _ _ _ < <(client "$f")
awk -v m="$cmin" 'BEGIN { exit !(m > 0.9) }' ||
	fail "retransmission case: a connect took $(ms "$cmin") ms, so its first SYN was not dropped"
want[syn]=$((want[syn] + 4))
want[syn_retransmit]=$((want[syn_retransmit] + 4))
want[established]=$((want[established] + 4))
settle
for inst in "${SEEN[@]}"; do
	read -r n sum pmin pmax mx < <(hist "$inst" "${from_row[$inst]}")
	mean=$(awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.9f", s / n }')
	note "$inst retransmitted SYN: router mean $(ms "$mean") ms, max $(ms "$mx") ms; client mean $(ms "$cmean") ms"
	[[ $n -eq 4 ]] || fail "$inst retransmission case: $n timed, expected 4"
	awk -v a="$mean" -v m="$mx" 'BEGIN { exit !(a >= 0.020 && m < 0.1) }' ||
		fail "$inst: a retransmitted handshake was timed $(ms "$mean") ms (max $(ms "$mx")), expected from the answered SYN (about 20 ms)"
done
pass "retransmitted SYNs counted (4) and timed from the SYN the SYN-ACK answers"

# Without TCP timestamps the answered SYN cannot be known (Karn): counted, not timed.
in_c sysctl -qw net.ipv4.tcp_timestamps=0
connect_ok "$S4" "$PR" 3 "$TCL_WORK/karn"
in_c sysctl -qw net.ipv4.tcp_timestamps=1
want[syn]=$((want[syn] + 3))
want[syn_retransmit]=$((want[syn_retransmit] + 3))
want[ambiguous]=$((want[ambiguous] + 3))
settle
pass "without timestamps, retransmitted handshakes are counted as ambiguous (3) and not timed"

# -------------------------------------------------------- unanswered
# No answer to any SYN; the client gives up after about 3 s (tcp_syn_retries
# 1; how many SYNs it sends meanwhile depends on the kernel, e.g.
# tcp_syn_linear_timeouts: the server's DROP rule counts them); then
# InterfaceTimeout 2 expires the entries.
in_c sysctl -qw net.ipv4.tcp_syn_retries=1
in_c "$TCL_TEST_BIN/tcpclient" connect -a "$S4" -p "$PD" -n 3 -c 3 >"$TCL_WORK/unanswered" 2>&1 || true
[[ $(awk '$1 == "timeout"' "$TCL_WORK/unanswered" | wc -l) -eq 3 ]] ||
	fail "unanswered case: expected 3 timeouts: $(cat "$TCL_WORK/unanswered")"
syns=$(in_s iptables -w -L INPUT -v -x -n | awk -v m=" dpt:$PD " 'index($0 " ", m) && /DROP/ { print $1 }')
[[ "$syns" =~ ^[0-9]+$ && $syns -ge 3 ]] || fail "unanswered case: the server's DROP rule counted '$syns' SYNs"
note "unanswered case: 3 connects sent $syns SYNs"
want[syn]=$((want[syn] + 3))
want[syn_retransmit]=$((want[syn_retransmit] + syns - 3))
want[unanswered]=$((want[unanswered] + 3))
settle
for inst in "${SEEN[@]}"; do
	wait_value "tcpconnlat-$inst/gauge-pending" 0 10
done
pass "unanswered SYNs counted (3) once InterfaceTimeout passed"

# ------------------------------------------------------------ shutdown
collectd_stop
wait_no_bpf_left "after shutdown"
for dev in rA rB rC; do
	for side in ingress egress; do
		! has_ours "$dev" "$side" || fail "after shutdown: our $side filter is still on $dev"
	done
done
foreign_ok || fail "after shutdown: the filters of somebody else on rA changed: $(filters rA ingress; filters rA egress)"
has_qdisc rA || fail "after shutdown: the clsact qdisc of somebody else on rA was removed"
filters_have rB egress "pref 3 bpf .*bytecode '1,6 0 0 0'" ||
	fail "after shutdown: the filter somebody added on rB was removed"
! has_qdisc rC || fail "after shutdown: a clsact qdisc was left on rC"
pass "after shutdown: nothing of ours left; the others' filters and qdiscs untouched"
