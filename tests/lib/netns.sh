# shellcheck shell=bash
#
# tests/lib/netns.sh - a two-namespace test bed for tcpconnlat tests.
#
# Source it from a bash test (set -euo pipefail is fine), then:
#
#   bed_create                      two fresh namespaces joined by a veth pair
#   bed_listen PORT [4|6|46] [BACKLOG]
#                                   tcpclient listeners on the server addresses
#                                   (PORT 0: ephemeral); sets BED_LISTEN_PORT
#   bed_delay_synack PORT MS [N]    hold SYN-ACKs from PORT for MS ms (every Nth
#                                   SYN-ACK of that port, v4 and v6 counted together)
#   bed_undelay_synack PORT         remove that delay again
#   bed_drop_syn PORT               drop SYNs to PORT (v4 + v6)
#   bed_reject_unreachable PORT [ICMP_DELAY_MS]
#                                   REJECT SYNs to PORT with ICMP host/addr unreachable
#   bed_syn_retries N               net.ipv4.tcp_syn_retries in the client ns
#   bed_rules_flush                 all server-ns rules and nfq_delay processes gone
#   bed_connect ADDR PORT [ARGS...] tcpclient connect in the client ns (foreground;
#                                   -n 1 unless ARGS has -n)
#   bed_tcpclient ARGS...           tcpclient ARGS in the client ns (foreground)
#   bed_client_exec / bed_server_exec CMD...
#                                   run CMD in that namespace (foreground)
#   bed_spawn client|server|host NAME CMD...
#                                   background process, tracked by PID
#   bed_stop PID[:START] [TIMEOUT_S]
#                                   SIGTERM (SIGKILL after the deadline) a tracked process
#   bed_wait_line FILE ERE TIMEOUT_S [PID[:START]]
#   bed_wait_cond TIMEOUT_S CMD...  / bed_wait_exit PID:START TIMEOUT_S
#                                   condition waits with deadlines (integer seconds)
#   bed_on_destroy COMMAND          cleanup hook (run first by bed_destroy)
#   bed_destroy                     everything gone (also runs from the traps)
#
# Exported after bed_create:
#   BED_CLIENT_NS BED_SERVER_NS     namespace names (tcl-c-PID-RAND / tcl-s-PID-RAND)
#   BED_CLIENT_V4 BED_SERVER_V4     10.231.SLOT.2 / 10.231.SLOT.1   (/24)
#   BED_CLIENT_V6 BED_SERVER_V6     fd00:7c1:0:SLOT::2 / fd00:7c1:0:SLOT::1 (/64, nodad)
#   BED_CLIENT_IF BED_SERVER_IF     veth names inside the namespaces (tcl0 / tcl1)
#   BED_SLOT                        1..250, unique among the beds alive on this host
#                                   (lock dirs under /run/tcl-netns-bed), so beds of
#                                   tests running in parallel never share addresses
#   BED_TMPDIR                      logs of the processes started (removed by
#                                   bed_destroy unless BED_KEEP_TMP=1)
#
# Helper binaries (tcpclient, nfq_delay) are found in $TCL_TEST_BIN, which
# defaults to the directory of the script that sources this file.
#
# Traps: bed_create installs EXIT, INT, TERM and HUP traps that call
# bed_destroy (and keep the exit status).  A test that needs its own cleanup
# registers it with bed_on_destroy "COMMAND" instead of setting a trap, or
# starts its processes through bed_spawn (then they are killed by PID).
#
# The library only ever touches the namespaces it created: iptables rules go
# into the server namespace, sysctls into the bed's namespaces, and deleting
# the namespaces removes both.

if [[ -n "${_TCL_NETNS_SH_LOADED:-}" ]]; then
	return 0
fi
_TCL_NETNS_SH_LOADED=1

if [[ -z "${TCL_TEST_BIN:-}" ]]; then
	TCL_TEST_BIN=$(cd "$(dirname "${BASH_SOURCE[1]:-${BASH_SOURCE[0]}}")" && pwd)
fi
export TCL_TEST_BIN

BED_LOCK_ROOT=${BED_LOCK_ROOT:-/run/tcl-netns-bed}

_BED_ACTIVE=0
_BED_NETNS=()      # namespaces this bed created
_BED_PIDS=()       # "pid:starttime" of every process this bed started
_BED_HOOKS=()      # commands run first by bed_destroy
_BED_SEQ=0
_BED_NFQ_NEXT=1
_BED_SLOT_DIR=
_BED_ICMP_NFQ=
declare -gA _BED_DELAYS=()  # port -> "queue pid:start"

bed_log() {
	printf 'bed: %s\n' "$*" >&2
}

# Centiseconds since boot (monotonic, no fork).
_bed_now_cs() {
	local up
	read -r up _ </proc/uptime
	up=${up/./}
	echo $((10#$up))
}

# _bed_starttime PID: field 22 of /proc/PID/stat (empty if gone)
_bed_starttime() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	rest=${stat##*) }
	# rest starts at field 3 (state); starttime is field 22
	# shellcheck disable=SC2086
	set -- $rest
	echo "${20:-}"
}

# _bed_alive PID:START -> 0 if that very process still runs (not a zombie)
_bed_alive() {
	local pid=${1%%:*} start=${1#*:} stat rest
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	[[ "$1" != Z && "${20:-}" == "$start" ]]
}

_bed_dead() {
	! _bed_alive "$1"
}

# bed_wait_exit PID:START TIMEOUT_S: wait (deadline) until that process ended.
bed_wait_exit() {
	bed_wait_cond "$2" _bed_dead "$1"
}

_bed_sysctl() { # NS KEY VALUE
	ip netns exec "$1" sysctl -qw "$2=$3" >/dev/null
}

_bed_ipt() { # iptables|ip6tables ARGS... (server namespace)
	local ipt=$1
	shift
	ip netns exec "$BED_SERVER_NS" "$ipt" -w "$@"
}

_bed_need_active() {
	if ((!_BED_ACTIVE)); then
		bed_log "no bed: call bed_create first"
		return 1
	fi
}

_bed_alloc_slot() {
	local start i x d pid
	mkdir -p "$BED_LOCK_ROOT" || return 1
	start=$((RANDOM % 250))
	for ((i = 0; i < 250; i++)); do
		x=$(((start + i) % 250 + 1))
		d=$BED_LOCK_ROOT/$x
		if mkdir "$d" 2>/dev/null; then
			echo "$$" >"$d/pid"
			BED_SLOT=$x
			_BED_SLOT_DIR=$d
			return 0
		fi
		# reclaim the slot of a bed whose owner died without cleaning up
		pid=$(cat "$d/pid" 2>/dev/null || true)
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			rm -rf "$d"
			if mkdir "$d" 2>/dev/null; then
				echo "$$" >"$d/pid"
				BED_SLOT=$x
				_BED_SLOT_DIR=$d
				return 0
			fi
		fi
	done
	bed_log "no free bed slot under $BED_LOCK_ROOT"
	return 1
}

_bed_on_exit() {
	local rc=$?
	bed_destroy
	exit "$rc"
}

_bed_on_signal() {
	trap - EXIT
	bed_log "caught signal, cleaning up"
	bed_destroy
	exit "$1"
}

_bed_install_traps() {
	trap _bed_on_exit EXIT
	trap '_bed_on_signal 129' HUP
	trap '_bed_on_signal 130' INT
	trap '_bed_on_signal 143' TERM
}

# bed_wait_line FILE ERE TIMEOUT_S [PID:START|PID]
# Wait until a line of FILE matches ERE; fail at the deadline or when the
# given process died without printing it.
bed_wait_line() {
	local file=$1 re=$2 timeout=$3 proc=${4:-} deadline
	deadline=$(($(_bed_now_cs) + timeout * 100))
	while :; do
		if [[ -f "$file" ]] && grep -Eq -- "$re" "$file"; then
			return 0
		fi
		if [[ -n "$proc" ]]; then
			if [[ "$proc" != *:* ]]; then
				proc="$proc:$(_bed_starttime "$proc")"
			fi
			if ! _bed_alive "$proc"; then
				grep -Eq -- "$re" "$file" 2>/dev/null && return 0
				bed_log "process ${proc%%:*} exited before printing /$re/ in $file"
				return 1
			fi
		fi
		if (($(_bed_now_cs) >= deadline)); then
			bed_log "timeout (${timeout}s) waiting for /$re/ in $file"
			return 1
		fi
		sleep 0.01
	done
}

# bed_wait_cond TIMEOUT_S CMD... : poll CMD until it succeeds or the deadline.
bed_wait_cond() {
	local timeout=$1 deadline
	shift
	deadline=$(($(_bed_now_cs) + timeout * 100))
	until "$@"; do
		if (($(_bed_now_cs) >= deadline)); then
			return 1
		fi
		sleep 0.01
	done
}

_bed_links_ready() {
	local ns ifc
	for ns in "$BED_CLIENT_NS:$BED_CLIENT_IF" "$BED_SERVER_NS:$BED_SERVER_IF"; do
		ifc=${ns#*:}
		ns=${ns%%:*}
		ip -n "$ns" -o link show dev "$ifc" 2>/dev/null | grep -q 'state UP' || return 1
		ip -n "$ns" -o link show dev lo 2>/dev/null | grep -q ',UP' || return 1
		# no tentative / dadfailed addresses left
		[[ -z "$(ip -n "$ns" -6 addr show dev "$ifc" tentative 2>/dev/null)" ]] || return 1
		[[ -z "$(ip -n "$ns" -6 addr show dev "$ifc" dadfailed 2>/dev/null)" ]] || return 1
	done
	ip -n "$BED_CLIENT_NS" -6 route get "$BED_SERVER_V6" >/dev/null 2>&1 || return 1
	ip -n "$BED_SERVER_NS" -6 route get "$BED_CLIENT_V6" >/dev/null 2>&1 || return 1
	ip -n "$BED_CLIENT_NS" -4 route get "$BED_SERVER_V4" >/dev/null 2>&1 || return 1
	ip -n "$BED_SERVER_NS" -4 route get "$BED_CLIENT_V4" >/dev/null 2>&1 || return 1
}

# bed_create: make the bed; returns non-zero (after cleaning up) on failure.
bed_create() {
	local tag ns
	if ((_BED_ACTIVE)); then
		bed_log "a bed already exists ($BED_CLIENT_NS, $BED_SERVER_NS)"
		return 1
	fi
	if [[ $(id -u) -ne 0 ]]; then
		bed_log "bed_create needs root"
		return 1
	fi
	_BED_ACTIVE=1
	_bed_install_traps
	_bed_alloc_slot || { bed_destroy; return 1; }
	BED_TMPDIR=$(mktemp -d /tmp/tcl-bed.XXXXXX) || { bed_destroy; return 1; }

	for _ in 1 2 3 4 5; do
		tag="$$-$RANDOM"
		BED_CLIENT_NS="tcl-c-$tag"
		BED_SERVER_NS="tcl-s-$tag"
		[[ -e "/run/netns/$BED_CLIENT_NS" || -e "/run/netns/$BED_SERVER_NS" ]] || break
	done
	BED_CLIENT_IF=tcl0
	BED_SERVER_IF=tcl1
	BED_SERVER_V4="10.231.$BED_SLOT.1"
	BED_CLIENT_V4="10.231.$BED_SLOT.2"
	BED_SERVER_V6="fd00:7c1:0:$BED_SLOT::1"
	BED_CLIENT_V6="fd00:7c1:0:$BED_SLOT::2"
	export BED_CLIENT_NS BED_SERVER_NS BED_CLIENT_V4 BED_SERVER_V4 \
		BED_CLIENT_V6 BED_SERVER_V6 BED_CLIENT_IF BED_SERVER_IF BED_SLOT BED_TMPDIR

	for ns in "$BED_CLIENT_NS" "$BED_SERVER_NS"; do
		if ! ip netns add "$ns"; then
			bed_log "ip netns add $ns failed"
			bed_destroy
			return 1
		fi
		_BED_NETNS+=("$ns")
		# no duplicate address detection at all inside the bed
		if ! { _bed_sysctl "$ns" net.ipv6.conf.all.accept_dad 0 &&
			_bed_sysctl "$ns" net.ipv6.conf.default.accept_dad 0 &&
			_bed_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 0 &&
			_bed_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 0; }; then
			bed_log "sysctl in $ns failed"
			bed_destroy
			return 1
		fi
		# ICMP errors (REJECT) must not be rate limited in the bed
		_bed_sysctl "$ns" net.ipv4.icmp_ratelimit 0 2>/dev/null || true
		_bed_sysctl "$ns" net.ipv6.icmp.ratelimit 0 2>/dev/null || true
		ip -n "$ns" link set lo up || { bed_destroy; return 1; }
	done

	if ! { ip -n "$BED_CLIENT_NS" link add "$BED_CLIENT_IF" type veth \
			peer name "$BED_SERVER_IF" netns "$BED_SERVER_NS" &&
		ip -n "$BED_CLIENT_NS" addr add "$BED_CLIENT_V4/24" dev "$BED_CLIENT_IF" &&
		ip -n "$BED_SERVER_NS" addr add "$BED_SERVER_V4/24" dev "$BED_SERVER_IF" &&
		ip -n "$BED_CLIENT_NS" -6 addr add "$BED_CLIENT_V6/64" dev "$BED_CLIENT_IF" nodad &&
		ip -n "$BED_SERVER_NS" -6 addr add "$BED_SERVER_V6/64" dev "$BED_SERVER_IF" nodad &&
		ip -n "$BED_CLIENT_NS" link set "$BED_CLIENT_IF" up &&
		ip -n "$BED_SERVER_NS" link set "$BED_SERVER_IF" up; }; then
		bed_log "veth setup failed"
		bed_destroy
		return 1
	fi

	if ! bed_wait_cond 10 _bed_links_ready; then
		bed_log "links / IPv6 addresses not usable after 10 s"
		ip -n "$BED_CLIENT_NS" addr >&2 || true
		ip -n "$BED_SERVER_NS" addr >&2 || true
		bed_destroy
		return 1
	fi
	bed_log "created $BED_CLIENT_NS ($BED_CLIENT_V4, $BED_CLIENT_V6) <-> $BED_SERVER_NS ($BED_SERVER_V4, $BED_SERVER_V6)"
}

# bed_on_destroy COMMAND: run COMMAND (eval'd) at the start of bed_destroy.
bed_on_destroy() {
	_BED_HOOKS+=("$1")
}

# bed_spawn client|server|host NAME CMD ARGS...
# Start CMD in the background (in the client/server namespace or the current
# one), stdout to $BED_TMPDIR/NAME.N.out, stderr to .err.  Tracked by PID and
# killed by bed_destroy.  Sets BED_LAST_PID, BED_LAST_PROC (pid:starttime),
# BED_LAST_OUT, BED_LAST_ERR.  Do not call it inside $( ... ).
bed_spawn() {
	local where=$1 name=$2 base pid start
	shift 2
	_bed_need_active || return 1
	_BED_SEQ=$((_BED_SEQ + 1))
	base="$BED_TMPDIR/$name.$_BED_SEQ"
	case $where in
	client) ip netns exec "$BED_CLIENT_NS" "$@" >"$base.out" 2>"$base.err" </dev/null & ;;
	server) ip netns exec "$BED_SERVER_NS" "$@" >"$base.out" 2>"$base.err" </dev/null & ;;
	host) "$@" >"$base.out" 2>"$base.err" </dev/null & ;;
	*)
		bed_log "bed_spawn: where must be client, server or host"
		return 1
		;;
	esac
	pid=$!
	start=$(_bed_starttime "$pid")
	_BED_PIDS+=("$pid:$start")
	BED_LAST_PID=$pid
	BED_LAST_PROC="$pid:$start"
	BED_LAST_OUT="$base.out"
	BED_LAST_ERR="$base.err"
}

# bed_stop PID|PID:START [TIMEOUT_S]: SIGTERM, wait, SIGKILL after the deadline.
bed_stop() {
	local proc=$1 timeout=${2:-5} pid p keep=()
	pid=${proc%%:*}
	if [[ "$proc" != *:* ]]; then
		for p in "${_BED_PIDS[@]}"; do
			[[ "${p%%:*}" == "$pid" ]] && proc=$p
		done
	fi
	if _bed_alive "$proc"; then
		kill -TERM "$pid" 2>/dev/null || true
		if ! bed_wait_cond "$timeout" _bed_dead "$proc"; then
			bed_log "pid $pid ignored SIGTERM, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			bed_wait_cond 5 _bed_dead "$proc" || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	for p in "${_BED_PIDS[@]}"; do
		[[ "${p%%:*}" == "$pid" ]] || keep+=("$p")
	done
	_BED_PIDS=("${keep[@]}")
}

# bed_server_exec / bed_client_exec CMD...: run CMD in that namespace (foreground)
bed_server_exec() {
	_bed_need_active || return 1
	ip netns exec "$BED_SERVER_NS" "$@"
}

bed_client_exec() {
	_bed_need_active || return 1
	ip netns exec "$BED_CLIENT_NS" "$@"
}

# bed_tcpclient ARGS...: tcpclient in the client namespace (foreground)
bed_tcpclient() {
	bed_client_exec "$TCL_TEST_BIN/tcpclient" "$@"
}

# bed_connect ADDR PORT [ARGS...]: tcpclient connect -a ADDR -p PORT ARGS...
# in the client namespace; default -n 1.  stdout/stderr as tcpclient's.
bed_connect() {
	local addr=$1 port=$2
	shift 2
	local a have_n=0
	for a in "$@"; do
		[[ "$a" == -n ]] && have_n=1
	done
	if ((have_n)); then
		bed_tcpclient connect -a "$addr" -p "$port" "$@"
	else
		bed_tcpclient connect -a "$addr" -p "$port" -n 1 "$@"
	fi
}

# bed_listen PORT [4|6|46] [BACKLOG]
# tcpclient listeners on the server addresses (default both families, same
# port; PORT 0 = ephemeral, chosen by the IPv4 listener).  Waits for "ready".
# Sets BED_LISTEN_PORT and BED_LISTEN_PIDS (pid:start ...).
bed_listen() {
	local port=${1:-0} fam=${2:-46} backlog=${3:-4096} addr f
	_bed_need_active || return 1
	BED_LISTEN_PIDS=()
	for f in 4 6; do
		[[ "$fam" == *"$f"* ]] || continue
		if [[ $f == 4 ]]; then addr=$BED_SERVER_V4; else addr=$BED_SERVER_V6; fi
		bed_spawn server "listen-v$f" "$TCL_TEST_BIN/tcpclient" listen -a "$addr" \
			-p "$port" -b "$backlog" || return 1
		if ! bed_wait_line "$BED_LAST_OUT" '^ready [0-9]+$' 10 "$BED_LAST_PROC"; then
			bed_log "listener on [$addr]:$port did not start: $(cat "$BED_LAST_ERR" 2>/dev/null)"
			return 1
		fi
		port=$(awk '/^ready /{print $2; exit}' "$BED_LAST_OUT")
		BED_LISTEN_PIDS+=("$BED_LAST_PROC")
	done
	BED_LISTEN_PORT=$port
	export BED_LISTEN_PORT
}

# bed_delay_synack PORT DELAY_MS [EVERY]
# nfq_delay in the server namespace + iptables/ip6tables OUTPUT rules that
# queue the SYN-ACKs sent from PORT.  Sets BED_NFQ_QUEUE, BED_NFQ_PID, BED_NFQ_PROC.
bed_delay_synack() {
	local port=$1 delay=$2 every=${3:-1} q ipt
	_bed_need_active || return 1
	if [[ -n "${_BED_DELAYS[$port]:-}" ]]; then
		bed_log "SYN-ACKs from port $port are already delayed"
		return 1
	fi
	q=$_BED_NFQ_NEXT
	_BED_NFQ_NEXT=$((q + 1))
	bed_spawn server "nfq_delay-q$q" "$TCL_TEST_BIN/nfq_delay" -q "$q" -d "$delay" \
		--every "$every" || return 1
	if ! bed_wait_line "$BED_LAST_OUT" '^ready$' 10 "$BED_LAST_PROC"; then
		bed_log "nfq_delay did not start: $(cat "$BED_LAST_ERR" 2>/dev/null)"
		return 1
	fi
	BED_NFQ_QUEUE=$q
	BED_NFQ_PID=$BED_LAST_PID
	BED_NFQ_PROC=$BED_LAST_PROC
	export BED_NFQ_QUEUE BED_NFQ_PID BED_NFQ_PROC
	_BED_DELAYS[$port]="$q $BED_LAST_PROC"
	for ipt in iptables ip6tables; do
		_bed_ipt "$ipt" -A OUTPUT -p tcp --sport "$port" --tcp-flags SYN,ACK SYN,ACK \
			-j NFQUEUE --queue-num "$q" --queue-bypass || {
			bed_log "$ipt NFQUEUE rule failed"
			return 1
		}
	done
}

# bed_undelay_synack PORT: remove the rules of bed_delay_synack, stop its nfq_delay.
bed_undelay_synack() {
	local port=$1 q proc ipt
	_bed_need_active || return 1
	[[ -n "${_BED_DELAYS[$port]:-}" ]] || return 0
	read -r q proc <<<"${_BED_DELAYS[$port]}"
	for ipt in iptables ip6tables; do
		_bed_ipt "$ipt" -D OUTPUT -p tcp --sport "$port" --tcp-flags SYN,ACK SYN,ACK \
			-j NFQUEUE --queue-num "$q" --queue-bypass || true
	done
	bed_stop "$proc"
	unset "_BED_DELAYS[$port]"
}

# bed_drop_syn PORT: drop SYNs to PORT in the server namespace (v4 + v6).
bed_drop_syn() {
	local port=$1 ipt
	_bed_need_active || return 1
	for ipt in iptables ip6tables; do
		_bed_ipt "$ipt" -A INPUT -p tcp --dport "$port" --syn -j DROP || return 1
	done
}

# bed_reject_unreachable PORT [ICMP_DELAY_MS]
# Answer SYNs to PORT with ICMP host unreachable (v4) / address unreachable
# (v6); the client's connect() fails with EHOSTUNREACH.
# The ICMP errors leaving the server namespace are held ICMP_DELAY_MS
# (default 1 ms) by an nfq_delay: on a veth the error would otherwise come
# back while connect() still holds the socket lock, and tcp_v4_err/tcp_v6_err
# drop ICMP errors for a locked socket (LINUX_MIB_LOCKDROPPEDICMPS): the
# connect would only fail on the SYN retransmit, a second later.
bed_reject_unreachable() {
	local port=$1 icmp_delay=${2:-1} q
	_bed_need_active || return 1
	if [[ -z "${_BED_ICMP_NFQ:-}" && "$icmp_delay" != 0 ]]; then
		q=$_BED_NFQ_NEXT
		_BED_NFQ_NEXT=$((q + 1))
		bed_spawn server "nfq_delay-icmp-q$q" "$TCL_TEST_BIN/nfq_delay" -q "$q" \
			-d "$icmp_delay" || return 1
		if ! bed_wait_line "$BED_LAST_OUT" '^ready$' 10 "$BED_LAST_PROC"; then
			bed_log "nfq_delay did not start: $(cat "$BED_LAST_ERR" 2>/dev/null)"
			return 1
		fi
		_bed_ipt iptables -A OUTPUT -p icmp --icmp-type host-unreachable \
			-j NFQUEUE --queue-num "$q" --queue-bypass || return 1
		_bed_ipt ip6tables -A OUTPUT -p icmpv6 --icmpv6-type address-unreachable \
			-j NFQUEUE --queue-num "$q" --queue-bypass || return 1
		_BED_ICMP_NFQ=$q
		_BED_ICMP_NFQ_PROC=$BED_LAST_PROC
	fi
	_bed_ipt iptables -A INPUT -p tcp --dport "$port" --syn \
		-j REJECT --reject-with icmp-host-unreachable || return 1
	_bed_ipt ip6tables -A INPUT -p tcp --dport "$port" --syn \
		-j REJECT --reject-with icmp6-addr-unreachable || return 1
}

# bed_syn_retries N: net.ipv4.tcp_syn_retries in the client namespace (also
# governs IPv6).  N=1 gives ETIMEDOUT after about 3 s, N=2 about 7 s.
bed_syn_retries() {
	_bed_need_active || return 1
	_bed_sysctl "$BED_CLIENT_NS" net.ipv4.tcp_syn_retries "$1"
}

# bed_rules_flush: remove every iptables/ip6tables rule of the server
# namespace and stop the nfq_delay processes.
bed_rules_flush() {
	local port
	_bed_need_active || return 1
	for port in "${!_BED_DELAYS[@]}"; do
		bed_undelay_synack "$port"
	done
	_bed_ipt iptables -F || true
	_bed_ipt ip6tables -F || true
	if [[ -n "$_BED_ICMP_NFQ" ]]; then
		bed_stop "$_BED_ICMP_NFQ_PROC"
		_BED_ICMP_NFQ=
	fi
}

# bed_destroy: kill what we started, delete the namespaces, free the slot.
# Idempotent; never fails.
bed_destroy() {
	local - p ns pid h deadline alive
	set +e
	((_BED_ACTIVE)) || return 0

	for ((h = ${#_BED_HOOKS[@]} - 1; h >= 0; h--)); do
		eval "${_BED_HOOKS[h]}" || bed_log "cleanup hook failed: ${_BED_HOOKS[h]}"
	done
	_BED_HOOKS=()

	for p in "${_BED_PIDS[@]}"; do
		_bed_alive "$p" && kill -TERM "${p%%:*}" 2>/dev/null
	done
	deadline=$(($(_bed_now_cs) + 500))
	while :; do
		alive=0
		for p in "${_BED_PIDS[@]}"; do
			_bed_alive "$p" && alive=1
		done
		((alive)) || break
		if (($(_bed_now_cs) >= deadline)); then
			for p in "${_BED_PIDS[@]}"; do
				if _bed_alive "$p"; then
					bed_log "pid ${p%%:*} ignored SIGTERM, sending SIGKILL"
					kill -KILL "${p%%:*}" 2>/dev/null
				fi
			done
			break
		fi
		sleep 0.01
	done
	for p in "${_BED_PIDS[@]}"; do
		wait "${p%%:*}" 2>/dev/null
	done
	_BED_PIDS=()

	for ns in "${_BED_NETNS[@]}"; do
		# anything still running inside our own namespace (e.g. children of
		# a spawned command, or a foreground client interrupted by a signal)
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns del "$ns" 2>/dev/null || bed_log "could not delete namespace $ns"
	done
	_BED_NETNS=()
	_BED_DELAYS=()
	_BED_ICMP_NFQ=

	if [[ -n "$_BED_SLOT_DIR" ]]; then
		rm -rf "$_BED_SLOT_DIR"
		_BED_SLOT_DIR=
	fi
	if [[ -n "${BED_TMPDIR:-}" && -d "$BED_TMPDIR" ]]; then
		if [[ "${BED_KEEP_TMP:-0}" == 1 ]]; then
			bed_log "logs kept in $BED_TMPDIR"
		else
			rm -rf "$BED_TMPDIR"
		fi
	fi
	_BED_ACTIVE=0
	return 0
}
