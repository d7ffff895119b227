#!/bin/bash
# tests/kernels/guest-smoke.sh - the smoke suite that tests/kernels/run.sh
# runs inside each QEMU guest (PID 1 is tests/kernels/guest-init).
#
# The guest is ours alone: no other process makes connections, so every
# count is exact against what this suite's own clients did. It runs the real
# collectd (Debian's, of the guest's architecture) with the built plugin and
# reads back what collectd's CSV writer stored, with the helpers of
# tests/lib/collectd.sh; the two-namespace bed is tests/lib/netns.sh's.
#
# Each check prints one line on the console:
#   TCLK result CHECK pass|limit|fail DETAIL
# pass:  proven on this kernel.
# limit: the plugin refused to start with its one "not starting: ..."
#        sentence (DETAIL), unloaded cleanly, left no BPF object, and
#        collectd went on; run.sh accepts it only on a kernel older than the
#        minimum the README documents for that check (tests/kernels/minimums).
# fail:  anything else, with the reason.
#
# Checks, by collectd instance (each instance: start, checks, stop):
#   main (root, defaults)   load connect4 connect6 latency inbound shutdown
#   passive (Interface on the bed's client veth, Inbound false)   passive
#   least privilege (uid without passwd entry, CAP_BPF+CAP_PERFMON)  leastpriv
#   classic tracepoint (AttachMode "tracepoint", Inbound false)  tracepoint
set -uo pipefail

TCL_LIB=${TCL_LIB:-/opt/tcl/lib}
export TCL_PLUGIN_DIR=${TCL_PLUGIN_DIR:-/opt/tcl/plugin}
export TCL_TEST_BIN=${TCL_TEST_BIN:-/opt/tcl/bin}
# shellcheck source=tests/lib/collectd.sh
. "$TCL_LIB/collectd.sh"
# shellcheck source=tests/lib/netns.sh
. "$TCL_LIB/netns.sh"

SUITE=/tmp/tcl-suite
mkdir -p "$SUITE"
RESULTS=$SUITE/results
: >"$RESULTS"

ALL=tcpconnlat-all
EST=$ALL/total_connections-established
REF=$ALL/total_connections-refused
INB=tcpconnlat-inbound/total_connections-established
INBREQ=tcpconnlat-inbound/total_connections-requests
DELAY_MS=100       # netem delay on the server's veth: the SYN-ACK is held this long
LOOP_OK=20         # connects per family to a loopback listener
LOOP_REFUSED=5     # connects per family to a closed loopback port
PASSIVE_N=6        # handshakes across the veth for passive mode
LP_UID=61234       # least privilege: a uid with no passwd entry
CLOSED=1           # nothing listens on port 1 in the guest

result() { # CHECK STATUS DETAIL
	printf 'TCLK result %s %s %s\n' "$1" "$2" "$3" | tee -a "$RESULTS"
	printf 'TCLK time %s %ss\n' "$1" "$(cut -d' ' -f1 /proc/uptime)"
}
info() { printf 'TCLK info %s %s\n' "$1" "$2"; }

# ---------------------------------------------------------------- helpers
# float compare: ok A OP B (awk)
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# run_client [NS] ADDR PORT COUNT -> the client's summary line
client_summary() {
	local pre=()
	if [[ $1 == ns:* ]]; then
		pre=(ip netns exec "${1#ns:}")
		shift
	fi
	"${pre[@]}" "$TCL_TEST_BIN/tcpclient" connect -a "$1" -p "$2" -n "$3" -q 2>&1 >/dev/null | grep '^summary'
}
expect_summary() { # SUMMARY KEY WANT
	local got
	got=$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")
	[[ "$got" == "$3" ]] || fail "client saw $2=$got, expected $3 ($1)"
}

# Each counter reaches its WANT and stays there for two more intervals.
expect_exact() { # WHAT NAME WANT [NAME WANT...]
	local what=$1 rows i
	shift
	local args=("$@")
	for ((i = 0; i < ${#args[@]}; i += 2)); do
		wait_value "${args[i]}" "${args[i + 1]}" 20
	done
	rows=$(csv_rows "${args[0]}")
	wait_rows "${args[0]}" $((rows + 2)) 20
	for ((i = 0; i < ${#args[@]}; i += 2)); do
		[[ $(csv_last "${args[i]}") == "${args[i + 1]}" ]] ||
			fail "$what: ${args[i]} went on to $(csv_last "${args[i]}"), expected ${args[i + 1]}"
	done
}

# Value of NAME in the CSV row with timestamp TS (first column).
csv_at() { # NAME TS
	local f
	for f in "$TCL_WORK/csv/$TCL_HOST/$1"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]; do
		[[ -f "$f" ]] && awk -F, -v t="$2" '$1 == t { print $2 }' "$f"
	done | tail -n 1
}
# Timestamp of the first row of counter NAME whose value is >= WANT.
csv_ts_reaching() { # NAME WANT
	local f
	for f in "$TCL_WORK/csv/$TCL_HOST/$1"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]; do
		[[ -f "$f" ]] && tail -n +2 "$f"
	done | awk -F, -v w="$2" '$2 + 0 >= w + 0 { print $1; exit }'
}

# The plugin's own programs and maps loaded anywhere in the guest (the guest
# runs nothing else that uses BPF, so "ours" is every tcl_* object).
tcl_objects() {
	{
		bpftool prog list 2>/dev/null | grep -oE 'name tcl_[A-Za-z0-9_]+'
		bpftool map list 2>/dev/null | grep -oE 'name tcl_[A-Za-z0-9_]+'
	} | sort | paste -sd' ' -
}
_no_tcl_objects() { [[ -z "$(tcl_objects)" ]]; }

# After collectd stopped: nothing of ours left (the kernel frees objects
# asynchronously after the last descriptor is closed: wait with a deadline).
expect_nothing_left() { # WHEN
	_TCL_WAIT_LAST=tcl_objects
	wait_until 15 "no tcl_* BPF program or map left $1" _no_tcl_objects
	_TCL_WAIT_LAST=
}

# The checks run in subshells, so the collectd they look at is not their
# child: a stopped collectd stays a zombie until the instance's shell reaps
# it. These two replace collectd.sh's versions (kill -0 is true for a zombie).
_tcl_gone() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	[[ ${st%% *} == Z ]]
}
collectd_alive() { [[ -n "$TCL_COLLECTD_PID" ]] && ! _tcl_gone "$TCL_COLLECTD_PID"; }
collectd_stop() {
	local pid=$TCL_COLLECTD_PID i
	[[ -n "$pid" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 600; i++)); do
		_tcl_gone "$pid" && break
		sleep 0.05
	done
	if ! _tcl_gone "$pid"; then
		echo "FAIL: collectd did not stop within 30 s of SIGTERM, killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
		STOP_KILLED=1
	fi
	wait "$pid" 2>/dev/null || true
	TCL_COLLECTD_PID=
}

# --------------------------------------------------- collectd instances
# instance NAME BLOCK GLOBAL PREFIX...: a fresh work dir (owned by
# INSTANCE_OWNER when set), collectd started with the plugin and the load
# plugin (which must keep running whatever the plugin does). Sets LIMIT to
# the plugin's "not starting" sentence when it refused (after checking that
# the refusal is clean), else empty.
instance() {
	local name=$1 block=$2 global=$3 f
	shift 3
	TCL_WORK=$SUITE/$name
	rm -rf "$TCL_WORK"
	mkdir -p "$TCL_WORK/csv"
	chmod 755 "$TCL_WORK"
	if [[ -n "${INSTANCE_OWNER:-}" ]]; then
		for f in collectd.log collectd.stdout; do : >"$TCL_WORK/$f"; done
		chown -R "$INSTANCE_OWNER:$INSTANCE_OWNER" "$TCL_WORK"
	fi
	LIMIT=
	collectd_start "$block" "LoadPlugin load
$global" "$@"
	if grep -q 'tcpconnlat plugin: not starting' "$TCL_WORK/collectd.log"; then
		LIMIT=$(sed -n 's/.*tcpconnlat plugin: not starting: //p' "$TCL_WORK/collectd.log" | head -n 1)
		expect_clean_refusal
		[[ -z "${INSTANCE_OBJECT:-}" ]] || verifier_words "$INSTANCE_OBJECT"
	fi
}

# A refusal must be one sentence, a clean unload, and collectd goes on.
expect_clean_refusal() {
	local n rows
	n=$(grep -c 'tcpconnlat plugin: not starting' "$TCL_WORK/collectd.log")
	[[ $n -eq 1 ]] || fail "the plugin logged $n 'not starting' lines"
	# AttachMode "auto" says why its first choice failed before trying the
	# next ("...; trying tracepoint next."): nothing else may be logged.
	n=$(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" | grep -v 'not starting' | grep -vc '; trying [a-z_]* next\.$' || true)
	[[ $n -eq 0 ]] || fail "besides its sentence the plugin logged: $(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" | grep -v 'not starting' | grep -v '; trying [a-z_]* next\.$' | head -n 3)"
	grep -q "Initialization of plugin \`tcpconnlat' failed" "$TCL_WORK/collectd.log" ||
		fail "collectd did not unload the plugin after its refusal"
	collectd_alive || fail "collectd exited after the plugin's refusal"
	rows=$(csv_rows load/load)
	wait_rows load/load $((rows + 2)) 20
	expect_nothing_left "after the refusal"
	[[ -z "$(tcl_collectd_bpf_ids)" ]] || fail "collectd still holds BPF descriptors after the refusal"
}

# The verifier's own words, for the report (the plugin's sentence says what
# failed; a reader of the matrix wants the kernel's reason too): load the
# object with bpftool, as a person would, and keep the last line of each
# rejected program's verifier log.
verifier_words() { # OBJECT
	local obj=/opt/tcl/bpf/$1 pin=/sys/fs/bpf/tcl-diag words
	[[ -f "$obj" ]] || return 0
	if [[ -f "$SUITE/verifier-$1" ]]; then # another instance asked already
		cp "$SUITE/verifier-$1" "$TCL_WORK/verifier"
		return 0
	fi
	rm -rf "$pin"
	bpftool prog loadall "$obj" "$pin" >"$TCL_WORK/bpftool.log" 2>&1
	rm -rf "$pin"
	words=$(awk '/-- BEGIN PROG LOAD LOG --/ { inlog = 1; last = ""; next }
		/-- END PROG LOAD LOG --/ { if (last != "") print last; inlog = 0; next }
		inlog && NF && !/^(processed|verification time|stack depth)/ { last = $0 }' \
		"$TCL_WORK/bpftool.log" | sort -u | head -n 3 | paste -sd';' -)
	echo "bpftool prog loadall $1: ${words:-loads}" >"$SUITE/verifier-$1"
	cp "$SUITE/verifier-$1" "$TCL_WORK/verifier"
	return 0
}

limit_detail() {
	local v=
	[[ -f "$TCL_WORK/verifier" ]] && v=" [$(cat "$TCL_WORK/verifier")]"
	echo "$LIMIT$v"
}

# check NAME FUNCTION: run FUNCTION in a subshell (fail exits it) and report.
# With LIMIT set, the check is the refusal itself, already verified. A
# function may report a limit of its own: a feature the plugin turned off
# with its one sentence (limit NAME SENTENCE, then return).
check() {
	local name=$1 fn=$2 err=$SUITE/$1.err detail
	if [[ -n "$LIMIT" ]]; then
		result "$name" limit "$(limit_detail)"
		return 0
	fi
	rm -f "$SUITE/$name.detail" "$SUITE/$name.limit"
	if (
		CHECK_NAME=$name
		"$fn"
	) 2>"$err"; then
		if [[ -f "$SUITE/$name.limit" ]]; then
			result "$name" limit "$(cat "$SUITE/$name.limit")"
		else
			detail=$(cat "$SUITE/$name.detail" 2>/dev/null)
			result "$name" pass "${detail:-ok}"
		fi
	else
		cat "$err" >&2
		detail=$(sed -n 's/^FAIL: //p' "$err" | head -n 1)
		result "$name" fail "${detail:-exited without a reason (see the log above)}"
	fi
}
detail() { echo "$*" >"$SUITE/$CHECK_NAME.detail"; }
limit() { echo "$*" >"$SUITE/$CHECK_NAME.limit"; }

# ---------------------------------------------------------------- checks
check_load() {
	local mode
	mode=$(sed -n 's/.*tcpconnlat plugin: measuring TCP connect latency through \(.*\), with tcp:.*/\1/p' "$TCL_WORK/collectd.log" | head -n 1)
	[[ -n "$mode" ]] || fail "the plugin did not log its attach mode"
	case $mode in
	*tp_btf*) mode=tp_btf ;;
	*classic*) mode=tracepoint ;;
	esac
	detail "attach mode $mode"
}

loop_family() { # ADDR LISTENER_OUT
	local port s est0 ref0
	port=$(awk '/^ready /{print $2}' "$2")
	est0=$(csv_last "$EST") ref0=$(csv_last "$REF")
	s=$(client_summary "$1" "$port" $LOOP_OK)
	expect_summary "$s" ok $LOOP_OK
	s=$(client_summary "$1" $CLOSED $LOOP_REFUSED)
	expect_summary "$s" refused $LOOP_REFUSED
	expect_exact "$1" "$EST" $((est0 + LOOP_OK)) "$REF" $((ref0 + LOOP_REFUSED))
}
check_connect4() {
	loop_family 127.0.0.1 "$SUITE/listen4"
	detail "established +$LOOP_OK, refused +$LOOP_REFUSED, exactly"
}
check_connect6() {
	loop_family ::1 "$SUITE/listen6"
	detail "established +$LOOP_OK, refused +$LOOP_REFUSED, exactly"
}

# One handshake whose SYN-ACK netem holds DELAY_MS: the plugin's latency lies
# between the delay imposed and what the client's own clock saw around
# connect(); average (exact), median and max agree within the histogram's
# precision (1/64 at a bucket's midpoint).
check_latency() {
	local est0 line client_ns ts avg p50 max d_s c_s
	[[ -n "${BED_SERVER_NS:-}" ]] || fail "no two-namespace bed (see the bed's message above)"
	[[ -n "${NETEM:-}" ]] || fail "no netem qdisc: $NETEM_ERR"
	# A first connect resolves the neighbours (the server's ARP reply is held
	# too): the measured one is then the SYN-ACK's delay alone.
	est0=$(csv_last "$EST")
	line=$(bed_connect "$BED_SERVER_V4" "$BED_LISTEN_PORT" 2>/dev/null | grep -E '^(ok|refused|timeout|unreachable|aborted|other)' | head -n 1)
	[[ $line == ok\ * ]] || fail "the warm-up connect did not succeed: ${line:-no output}"
	wait_value "$EST" $((est0 + 1)) 20
	est0=$((est0 + 1))
	line=$(bed_connect "$BED_SERVER_V4" "$BED_LISTEN_PORT" 2>/dev/null | grep -E '^(ok|refused|timeout|unreachable|aborted|other)' | head -n 1)
	[[ $line == ok\ * ]] || fail "the delayed connect did not succeed: ${line:-no output}"
	client_ns=$(awk '{ print $2 }' <<<"$line")
	expect_exact "delayed connect" "$EST" $((est0 + 1))
	ts=$(csv_ts_reaching "$EST" $((est0 + 1)))
	avg=$(csv_at "$ALL/latency-average" "$ts")
	p50=$(csv_at "$ALL/latency-percentile-50" "$ts")
	max=$(csv_at "$ALL/latency-max" "$ts")
	d_s=$(awk -v d=$DELAY_MS 'BEGIN { printf "%.6f", d / 1000 }')
	c_s=$(awk -v c="$client_ns" 'BEGIN { printf "%.6f", c / 1e9 }')
	[[ -n "$avg" && -n "$p50" && -n "$max" ]] || fail "no latency values in the interval at $ts (avg '$avg', p50 '$p50', max '$max')"
	fcmp "$avg" '>=' "$d_s" || fail "average $avg s is below the $DELAY_MS ms the SYN-ACK was held"
	fcmp "$avg" '<=' "$c_s" || fail "average $avg s exceeds the client's own connect() time $c_s s"
	for v in "$p50" "$max"; do
		awk -v v="$v" -v a="$avg" 'BEGIN { d = v - a; if (d < 0) d = -d; exit !(d <= a / 64 + 1e-9) }' ||
			fail "median/max $v s differ from the average $avg s by more than 1/64"
	done
	detail "SYN-ACK held ${DELAY_MS} ms: average $(awk -v a="$avg" 'BEGIN { printf "%.3f", a * 1000 }') ms, median $(awk -v a="$p50" 'BEGIN { printf "%.3f", a * 1000 }') ms, max $(awk -v a="$max" 'BEGIN { printf "%.3f", a * 1000 }') ms; client $(awk -v a="$c_s" 'BEGIN { printf "%.3f", a * 1000 }') ms"
}

# Every connect that succeeded in the guest since this collectd started was
# accepted by a listener of the guest: inbound counts them all.
check_inbound() {
	local want=$((2 * LOOP_OK + ${LATENCY_CONNECTS:-0}))
	local off
	off=$(sed -n 's/.*tcpconnlat plugin: inbound handshake latency is off: \(.*\); connects are.*/\1/p' "$TCL_WORK/collectd.log" | head -n 1)
	if [[ -n "$off" ]]; then
		limit "inbound handshake latency is off: $off"
		return 0
	fi
	expect_exact inbound "$INB" "$want"
	# InboundRequests: requests counted where sock_ops can be attached (a
	# cgroup v2 mount), else one sentence and the rest measured
	if grep -q "connection requests are counted by a sock_ops" "$TCL_WORK/collectd.log"; then
		expect_exact inbound "$INBREQ" "$want"
		detail "inbound established $want and requests $want, exactly"
	else
		off=$(sed -n 's/.*connection requests are not counted: \(.*\)\./\1/p' "$TCL_WORK/collectd.log" | head -n 1)
		[[ -n "$off" ]] || fail "InboundRequests true: neither requests counted nor a sentence saying why not"
		detail "inbound established $want, exactly; requests not counted, as the plugin said: $off"
	fi
}

check_shutdown() {
	STOP_KILLED=
	collectd_stop
	[[ -z "$STOP_KILLED" ]] || fail "collectd did not stop within 30 s of SIGTERM"
	expect_nothing_left "after collectd stopped"
	! grep -E 'tcpconnlat plugin:.*(ERROR|error|failed)' "$TCL_WORK/collectd.log" | grep -qv 'not starting' ||
		fail "the plugin logged an error: $(grep -E 'tcpconnlat plugin:.*(error|failed)' "$TCL_WORK/collectd.log" | head -n 1)"
	detail "stopped; no tcl_* program or map left"
}

# Passive mode: collectd in the client namespace with Interface on its veth;
# the handshakes to the server leave through it (direction out).
check_passive() {
	local i a line max_c=0 c avg
	local IF=tcpconnlat-iface-${BED_CLIENT_IF}-out
	grep -q "tcpconnlat plugin: Interface \"$BED_CLIENT_IF\"" "$TCL_WORK/collectd.log" ||
		fail "the plugin did not log the TC filters on $BED_CLIENT_IF"
	for ((i = 0; i < PASSIVE_N; i++)); do
		if ((i % 2)); then a=$BED_SERVER_V6; else a=$BED_SERVER_V4; fi
		line=$(bed_connect "$a" "$BED_LISTEN_PORT" 2>/dev/null | grep -E '^(ok|refused|timeout|unreachable|aborted|other)' | head -n 1)
		[[ $line == ok\ * ]] || fail "connect $i to $a failed: ${line:-no output}"
		c=$(awk '{ print $2 }' <<<"$line")
		((c > max_c)) && max_c=$c
	done
	expect_exact passive "$IF/total_connections-syn" "$PASSIVE_N" \
		"$IF/total_connections-established" "$PASSIVE_N"
	avg=$(csv_values_after "$IF/latency-average" 0 | grep -v nan | tail -n 1)
	[[ -n "$avg" ]] || fail "no latency-average for $IF"
	fcmp "$avg" '>=' "$(awk -v d=$DELAY_MS 'BEGIN { print d / 1000 }')" || fail "passive average $avg s is below the $DELAY_MS ms delay"
	fcmp "$avg" '<=' "$(awk -v c="$max_c" 'BEGIN { print c / 1e9 }')" || fail "passive average $avg s exceeds the client's longest connect()"
	collectd_stop
	expect_nothing_left "after the passive collectd stopped"
	! bed_client_exec tc filter show dev "$BED_CLIENT_IF" ingress | grep -q 'tcl_iface' ||
		fail "the plugin's TC filter is still on $BED_CLIENT_IF"
	detail "$PASSIVE_N handshakes (IPv4+IPv6) on $BED_CLIENT_IF: syn $PASSIVE_N, established $PASSIVE_N, average $(awk -v a="$avg" 'BEGIN { printf "%.3f", a * 1000 }') ms; filters removed"
}

check_counts_only() { # NAME: loopback v4 counts, then stop and nothing left
	local port s est0 ref0
	port=$(awk '/^ready /{print $2}' "$SUITE/listen4")
	est0=$(csv_last "$EST") ref0=$(csv_last "$REF")
	s=$(client_summary 127.0.0.1 "$port" 10)
	expect_summary "$s" ok 10
	s=$(client_summary ::1 $CLOSED 3)
	expect_summary "$s" refused 3
	expect_exact "$1" "$EST" $((est0 + 10)) "$REF" $((ref0 + 3))
	collectd_stop
	expect_nothing_left "after collectd stopped"
}

check_leastpriv() {
	local st
	st=/proc/$TCL_COLLECTD_PID/status
	grep -qE "^Uid:[[:space:]]+${LP_UID}[[:space:]]" "$st" || fail "collectd does not run as uid $LP_UID: $(grep ^Uid: "$st")"
	grep -qE "^CapEff:[[:space:]]+$LP_MASK\$" "$st" || fail "collectd's CapEff is not $LP_MASK: $(grep ^CapEff: "$st")"
	check_counts_only leastpriv
	detail "uid $LP_UID with only $LP_CAPS (CapEff $LP_MASK), RLIMIT_MEMLOCK unlimited: established +10, refused +3, exactly"
}

check_tracepoint() {
	grep -q 'measuring TCP connect latency through the classic tracepoint' "$TCL_WORK/collectd.log" ||
		fail "the plugin did not say it used the classic tracepoint"
	check_counts_only tracepoint
	grep -qE 'connection requests are (counted by a sock_ops|not counted: )' "$TCL_WORK/collectd.log" ||
		fail "OwnNetnsOnly with InboundRequests: no sentence on connection requests"
	detail "classic tracepoint (tracefs), OwnNetnsOnly, InboundRequests: established +10, refused +3, exactly; $(grep -oE 'connection requests are (counted|not counted: [^.]*)' "$TCL_WORK/collectd.log" | head -n 1)"
}

# ----------------------------------------------------------------- run
info uname "$(uname -r)"
info machine "$(uname -m)"
info btf "$([[ -r /sys/kernel/btf/vmlinux ]] && echo yes || echo no)"
info cap_last_cap "$(cat /proc/sys/kernel/cap_last_cap)"
info cpus "$(nproc)"

# Loopback listeners for the whole suite (root namespace).
tcl_spawn "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 >"$SUITE/listen4"
tcl_spawn "$TCL_TEST_BIN/tcpclient" listen -a ::1 -p 0 >"$SUITE/listen6"

# The two-namespace bed; netem on the server's veth holds every packet the
# server sends (so the SYN-ACK) DELAY_MS.
NETEM='' NETEM_ERR=''
if bed_create && bed_listen 0 46; then
	if NETEM_ERR=$(bed_server_exec tc qdisc add dev "$BED_SERVER_IF" root netem delay "${DELAY_MS}ms" 2>&1); then
		NETEM=1
	fi
else
	note "the two-namespace bed could not be made"
fi

inst_main() {
	INSTANCE_OBJECT=tcpconnlat.bpf.o
	instance main "InboundRequests true" ""
	check load check_load
	check connect4 check_connect4
	check connect6 check_connect6
	LATENCY_CONNECTS=2
	check latency check_latency
	check inbound check_inbound
	if [[ -n "$LIMIT" ]]; then
		result shutdown pass "refused cleanly: one sentence, unloaded, no tcl_* object left, collectd went on"
	else
		check shutdown check_shutdown
	fi
}

inst_passive() {
	[[ -n "${BED_CLIENT_NS:-}" ]] || fail "no two-namespace bed"
	INSTANCE_OBJECT=iface.bpf.o
	instance passive "Interface \"$BED_CLIENT_IF\"
Inbound false" "" ip netns exec "$BED_CLIENT_NS"
	check passive check_passive
}

# Least privilege: the capabilities of the systemd drop-in for Inbound false,
# CAP_SYS_ADMIN where the kernel has no CAP_BPF (before 5.8); the locked
# memory limit raised as the drop-in's LimitMEMLOCK=infinity does.
inst_leastpriv() {
	local set_caps
	if (($(cat /proc/sys/kernel/cap_last_cap) >= 39)); then
		LP_CAPS=bpf,perfmon LP_MASK=000000c000000000
	else
		LP_CAPS=sys_admin LP_MASK=0000000000200000
	fi
	set_caps="-all,+${LP_CAPS//,/,+}"
	ulimit -l unlimited
	INSTANCE_OWNER=$LP_UID
	INSTANCE_OBJECT=tcpconnlat.bpf.o
	instance leastpriv "Inbound false" "" \
		setpriv --reuid="$LP_UID" --regid="$LP_UID" --clear-groups --no-new-privs \
		--inh-caps="$set_caps" --ambient-caps="$set_caps" --bounding-set="$set_caps"
	check leastpriv check_leastpriv
}

inst_tracepoint() {
	INSTANCE_OBJECT=tcpconnlat.bpf.o
	# OwnNetnsOnly (collectd and these loopback connects share the guest's
	# namespace) with InboundRequests: a kernel without netns cookies (before
	# 5.14) must turn request counting off with one sentence and measure
	# the rest, not refuse to start
	instance tracepoint 'AttachMode "tracepoint"
OwnNetnsOnly true
InboundRequests true' ""
	check tracepoint check_tracepoint
}

# run_instance FUNCTION CHECK...: the instance in a subshell (its collectd is
# stopped when it ends, however it ends); checks it did not report fail with
# the instance's reason.
run_instance() {
	local fn=$1 err=$SUITE/$1.err c why
	shift
	(
		trap 'collectd_stop' EXIT
		"$fn"
	) 2>"$err"
	cat "$err" >&2
	why=$(sed -n 's/^FAIL: //p' "$err" | head -n 1)
	for c in "$@"; do
		grep -q "^TCLK result $c " "$RESULTS" ||
			result "$c" fail "not reached: ${why:-the instance ended early (see the log)}"
	done
}

run_instance inst_main load connect4 connect6 latency inbound shutdown
run_instance inst_passive passive
run_instance inst_leastpriv leastpriv
run_instance inst_tracepoint tracepoint

bed_destroy
tcl_cleanup
echo "TCLK done"
