#!/usr/bin/env bash
# Least privilege: collectd as an unprivileged user with only the capabilities
# of contrib/collectd-tcpconnlat.service.d/tcpconnlat.conf measures exactly;
# each of them is needed (without it the plugin refuses in one sentence and
# collectd keeps running its other plugins, or, for a capability only one
# feature needs, the plugin says what it cannot do); with "Inbound false"
# CAP_BPF and CAP_PERFMON alone are enough. Also: nothing is pinned, the
# programs only call read-only helpers, RLIMIT_MEMLOCK plays no part on this
# kernel, and what the classic tracepoint and CollectBpfStats need beyond the
# minimum.
#
# The drop-in is emulated with setpriv (no systemd is needed): a numeric uid
# without a passwd entry (as DynamicUser=yes gives), no_new_privs, the
# ambient and bounding sets parsed from the drop-in itself. collectd runs in
# the test's own network namespace (nsenter, so that it sees the host's /sys)
# with OwnNetnsOnly true.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
command -v setpriv >/dev/null || tcl_skip_or_fail "setpriv (util-linux) is missing"
command -v nsenter >/dev/null || tcl_skip_or_fail "nsenter (util-linux) is missing"
command -v bpftool >/dev/null || tcl_skip_or_fail "bpftool is missing"
tcl_init
tcl_netns_create

SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
DROPIN=$SRCDIR/contrib/collectd-tcpconnlat.service.d/tcpconnlat.conf
[[ -r "$DROPIN" ]] || fail "the systemd drop-in $DROPIN is missing"

ALL=tcpconnlat-all
EST=$ALL/total_connections-established
REF=$ALL/total_connections-refused
CAP_BPF=39 CAP_PERFMON=38

# --- The drop-in: systemd accepts it, and it grants exactly the minimum. ----
if command -v systemd-analyze >/dev/null && [[ -r /lib/systemd/system/collectd.service ]]; then
	units=$TCL_WORK/units
	mkdir -p "$units/collectd.service.d"
	cp /lib/systemd/system/collectd.service "$units/"
	cp "$DROPIN" "$units/collectd.service.d/"
	msgs=$(SYSTEMD_UNIT_PATH="$units:" systemd-analyze verify --man=no \
		"$units/collectd.service" 2>&1 | grep -F tcpconnlat.conf || true)
	[[ -z "$msgs" ]] || fail "systemd-analyze verify complains about the drop-in: $msgs"
	pass "systemd-analyze verify accepts the drop-in"
else
	note "systemd-analyze or collectd.service not installed: drop-in syntax not verified"
fi

# dropin_caps KEY: the capabilities of KEY= as setpriv names (bpf,perfmon)
dropin_caps() {
	sed -n "s/^[[:space:]]*$1=//p" "$DROPIN" | tr ' ' '\n' | sed '/^$/d' |
		tr 'A-Z' 'a-z' | sed 's/^cap_//' | sort -u | paste -sd, -
}
AMBIENT=$(dropin_caps AmbientCapabilities)
BOUNDING=$(dropin_caps CapabilityBoundingSet)
[[ ",$AMBIENT," == *,bpf,* && ",$AMBIENT," == *,perfmon,* ]] ||
	fail "drop-in AmbientCapabilities is '$AMBIENT', expected at least CAP_BPF CAP_PERFMON"
[[ "$BOUNDING" == "$AMBIENT" ]] || fail "drop-in CapabilityBoundingSet ($BOUNDING) differs from AmbientCapabilities ($AMBIENT)"
grep -qE '^[[:space:]]*NoNewPrivileges=yes' "$DROPIN" || fail "drop-in lacks NoNewPrivileges=yes"
grep -qE '^[[:space:]]*(DynamicUser=yes|User=)' "$DROPIN" || fail "drop-in does not run collectd as an unprivileged user"
pass "drop-in grants {$AMBIENT} to an unprivileged user (below: that set is sufficient, and each member necessary)"

# An unused uid/gid (no passwd entry, no process): what DynamicUser= gives.
LP_UID=
for ((i = 0; i < 1000; i++)); do
	u=$((61000 + (RANDOM + i) % 1000))
	getent passwd "$u" >/dev/null || getent group "$u" >/dev/null ||
		pgrep -u "$u" >/dev/null || { LP_UID=$u; break; }
done
[[ -n "$LP_UID" ]] || fail "no free uid in 61000-61999"
note "unprivileged collectd runs as uid/gid $LP_UID"

capnum() { # NAME (bpf) -> number, from the kernel's header or a short table
	local n
	n=$(sed -n "s/^#define CAP_${1^^}[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p" /usr/include/linux/capability.h 2>/dev/null | head -n 1)
	if [[ -z "$n" ]]; then
		case $1 in
		dac_read_search) n=2 ;; net_admin) n=12 ;; net_raw) n=13 ;; sys_admin) n=21 ;;
		perfmon) n=$CAP_PERFMON ;; bpf) n=$CAP_BPF ;; *) fail "unknown capability $1" ;;
		esac
	fi
	echo "$n"
}
capmask() { # CAPNAMES (setpriv style, comma separated) -> /proc status hex
	local m=0 c
	for c in ${1//,/ }; do
		m=$((m | 1 << $(capnum "$c")))
	done
	printf '%016x' "$m"
}

# Files collectd writes belong to the user it runs as.
own_work() {
	rm -rf "$TCL_WORK/csv"
	mkdir -p "$TCL_WORK/csv"
	: >"$TCL_WORK/collectd.log"
	: >"$TCL_WORK/collectd.stdout"
	chown -R "$1:$1" "$TCL_WORK/csv" "$TCL_WORK/collectd.log" "$TCL_WORK/collectd.stdout"
	chown "$1:$1" "$TCL_WORK"
}

NSENTER=(nsenter "--net=/run/netns/$TCL_NS")
# start_as UID CAPS BLOCK [WRAPPER...]: collectd as UID with exactly CAPS
# (ambient, inheritable, bounding), no_new_privs, in the test's namespace.
start_as() {
	local uid=$1 caps=$2 block=$3 set
	shift 3
	set=-all${caps:+,$(sed 's/\(^\|,\)/\1+/g' <<<"$caps")}
	own_work "$uid"
	collectd_start "OwnNetnsOnly true
$block" "LoadPlugin load" "${NSENTER[@]}" "$@" \
		setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
		--inh-caps="$set" --ambient-caps="$set" --bounding-set="$set"
	check_identity "$uid" "$caps"
}

check_identity() { # UID CAPS: what the running collectd really has
	local st want
	st=/proc/$TCL_COLLECTD_PID/status
	want=$(capmask "$2")
	grep -qE "^Uid:[[:space:]]+$1[[:space:]]+$1[[:space:]]+$1[[:space:]]+$1\$" "$st" ||
		fail "collectd does not run as uid $1: $(grep ^Uid: "$st")"
	for f in CapEff CapPrm CapBnd; do
		grep -qE "^$f:[[:space:]]+$want\$" "$st" || fail "collectd $f is not $want: $(grep "^$f:" "$st")"
	done
	grep -qE '^NoNewPrivs:[[:space:]]+1$' "$st" || fail "collectd runs without no_new_privs"
}

# Exactly one line from the plugin, containing TEXT; unloaded, nothing of
# ours held; the load plugin goes on.
expect_refused() { # TEXT
	local lines rows f
	lines=$(grep -c 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" || true)
	grep -qF "$1" "$TCL_WORK/collectd.log" || fail "no log line containing: $1"
	[[ "$lines" -eq 1 ]] || fail "expected one line from the plugin, got $lines: $(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log")"
	grep -q "Initialization of plugin \`tcpconnlat' failed" "$TCL_WORK/collectd.log" ||
		fail "collectd did not unload the plugin"
	rows=$(csv_rows load/load)
	wait_rows load/load $((rows + 3))
	collectd_alive || fail "collectd died"
	for f in /proc/"$TCL_COLLECTD_PID"/fd/*; do
		[[ "$(readlink "$f" 2>/dev/null)" != anon_inode:*bpf* && "$(readlink "$f" 2>/dev/null)" != anon_inode:btf ]] ||
			fail "collectd still holds BPF objects after the failed init"
	done
	! grep -qiE 'segfault|assert|sanitizer' "$TCL_WORK/collectd.log" "$TCL_WORK/collectd.stdout" ||
		fail "collectd logged a crash"
	collectd_stop
}

# A listener in the namespace; refusals from the closed port 1.
out4="$TCL_WORK/listen4"
tcl_spawn in_ns "$TCL_TEST_BIN/tcpclient" listen -a 127.0.0.1 -p 0 >"$out4"
wait_until 10 "IPv4 listener" grep -q '^ready ' "$out4"
PORT=$(awk '/^ready /{print $2}' "$out4")

run_client() { # ADDR PORT COUNT -> summary line
	in_ns "$TCL_TEST_BIN/tcpclient" connect -a "$1" -p "$2" -n "$3" -q 2>&1 >/dev/null | grep '^summary'
}

# counts_exact N K: N established and K refused more than now, exactly.
counts_exact() {
	local n=$1 k=$2 be br s rows
	wait_rows "$EST" 1
	wait_rows "$REF" 1
	be=$(csv_last "$EST")
	br=$(csv_last "$REF")
	s=$(run_client 127.0.0.1 "$PORT" "$n")
	[[ "$s" == *" ok=$n "* ]] || fail "client: $s (wanted ok=$n)"
	s=$(run_client 127.0.0.1 1 "$k")
	[[ "$s" == *" refused=$k "* ]] || fail "client: $s (wanted refused=$k)"
	wait_value "$EST" $((be + n))
	wait_value "$REF" $((br + k))
	rows=$(csv_rows "$EST")
	wait_rows "$EST" $((rows + 2))
	[[ $(csv_last "$EST") == $((be + n)) && $(csv_last "$REF") == $((br + k)) ]] ||
		fail "counts grew past +$n/+$k"
}

# Read-only helpers only (map operations on the plugin's own maps, the
# current task's ids, time, bpf_probe_read_kernel, the ring buffer the plugin
# reads). Anything else must be reviewed before it is added here.
HELPERS_OK='^(pc\+[0-9]+|bpf_map_(lookup|update|delete|push|pop|peek)_elem|bpf_map_lookup_percpu_elem|__?[a-z_]*map_(gen_)?(lookup|update|delete|push|pop|peek)_elem|[a-z_]*map_lookup_elem|htab_[a-z_]*elem|trie_[a-z_]*elem|queue_[a-z_]*elem|queue_stack_map_[a-z_]*elem|bpf_get_current_(pid_tgid|uid_gid|comm|cgroup_id|ancestor_cgroup_id|task|task_btf)|bpf_get_current_ancestor_cgroup_id|bpf_ktime_get_(ns|boot_ns|coarse_ns|tai_ns)|bpf_jiffies64|bpf_probe_read_kernel(_str)?|bpf_get_smp_processor_id|bpf_get_numa_node_id|bpf_ringbuf_(reserve|submit|discard|output|query)|bpf_get_prandom_u32|bpf_this_cpu_ptr|bpf_per_cpu_ptr|bpf_skc_to_[a-z0-9_]*|bpf_get_socket_cookie[a-z_]*|bpf_get_netns_cookie[a-z_]*|bpf_get_ns_current_pid_tgid)$'
check_bpf_objects() {
	local item kind id out calls bad
	[[ -n "$TCL_OWN_BPF" ]] || fail "collectd holds no BPF object"
	for item in $TCL_OWN_BPF; do
		kind=${item%%:*} id=${item#*:}
		case $kind in
		prog_id) out=$(bpftool -f prog show id "$id") ;;
		map_id) out=$(bpftool -f map show id "$id") ;;
		link_id) out=$(bpftool -f link show id "$id") ;;
		*) continue ;;
		esac
		! grep -q pinned <<<"$out" || fail "$kind $id is pinned: $out"
		[[ $kind == prog_id ]] || continue
		# tracing programs, and the sock_ops program of Inbound (which returns
		# every callback's default; its context writes are not checked here)
		grep -qE "^$id: (tracing|tracepoint|raw_tracepoint|sock_ops) " <<<"$out" ||
			fail "program $id is of an unexpected type: $(head -n 1 <<<"$out")"
		calls=$(bpftool prog dump xlated id "$id" | grep -oE 'call [^ #]+' | awk '{print $2}' | sort -u)
		bad=$(grep -vE "$HELPERS_OK" <<<"$calls" || true)
		[[ -z "$bad" ]] || fail "program $id calls helpers that are not read-only (review them): $(paste -sd' ' <<<"$bad")"
		note "program $id ($(awk 'NR == 1 { print $2 }' <<<"$out")) helpers: $(paste -sd' ' <<<"$calls")"
	done
	# nothing of ours on the bpf filesystem either
	if [[ -d /sys/fs/bpf ]] && find /sys/fs/bpf -maxdepth 3 2>/dev/null | grep -qiE 'tcl_|tcpconnlat'; then
		fail "something named after tcpconnlat is pinned under /sys/fs/bpf"
	fi
}

# --- 1. The drop-in's user and capabilities, RLIMIT_MEMLOCK 0: exact counts.
# (memlock 0 proves that this kernel charges the maps to the memory cgroup:
# with the old accounting not even one map could be created.)
kmaj=$(uname -r | cut -d. -f1) kmin=$(uname -r | cut -d. -f2)
memlock=()
if ((kmaj > 5 || (kmaj == 5 && kmin >= 11))); then
	memlock=(prlimit --memlock=0:0)
fi
start_as "$LP_UID" "$AMBIENT" "" "${memlock[@]}"
grep -q "measuring TCP connect latency through the BTF raw tracepoint" "$TCL_WORK/collectd.log" ||
	fail "the plugin did not start with the drop-in's capabilities"
[[ ${#memlock[@]} -eq 0 ]] || [[ $(awk '/Max locked memory/{print $4}' /proc/"$TCL_COLLECTD_PID"/limits) == 0 ]] ||
	fail "RLIMIT_MEMLOCK is not 0"
counts_exact 40 9
[[ $(csv_last tcpconnlat-self/derive-stats_dropped) == 0 ]] || fail "outcomes were dropped"
rows=$(csv_rows load/load)
((rows > 0)) || fail "the load plugin wrote nothing"
! grep -E 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" | grep -vq 'tcpconnlat plugin: measuring ' ||
	fail "the plugin logged more than its start line: $(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log")"
check_bpf_objects
collectd_stop
wait_no_bpf_left "after the unprivileged collectd stopped"
pass "uid $LP_UID with {$AMBIENT} only${memlock:+ and RLIMIT_MEMLOCK 0}: exact counts, nothing pinned, read-only helpers"

# --- 1b. Outbound connects alone need only CAP_BPF and CAP_PERFMON.
if [[ "$AMBIENT" != "bpf,perfmon" ]]; then
	start_as "$LP_UID" "bpf,perfmon" "Inbound false"
	if grep -q 'unknown option "Inbound"' "$TCL_WORK/collectd.log"; then
		collectd_stop
		note "this plugin has no Inbound option: nothing more to check"
	else
		grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log" ||
			fail "with Inbound false, CAP_BPF and CAP_PERFMON were not enough"
		! grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" | grep -vq 'tcpconnlat plugin: measuring ' ||
			fail "the plugin logged more than its start line: $(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log")"
		counts_exact 20 5
		check_bpf_objects
		collectd_stop
		wait_no_bpf_left "after the Inbound false run"
		pass "Inbound false: CAP_BPF+CAP_PERFMON alone, exact counts"
	fi
fi

# --- 1c. InboundRequests needs CAP_NET_ADMIN as well (a sock_ops program):
# without it the plugin says so once and measures everything else.
if [[ ",$AMBIENT," != *,net_admin,* ]]; then
	start_as "$LP_UID" "$AMBIENT" "InboundRequests true"
	grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log" ||
		fail "InboundRequests true without CAP_NET_ADMIN: the plugin did not start"
	grep -q "connection requests are not counted: collectd lacks CAP_NET_ADMIN" "$TCL_WORK/collectd.log" ||
		fail "InboundRequests true without CAP_NET_ADMIN: no warning naming it: $(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log")"
	counts_exact 10 3
	collectd_stop
	wait_no_bpf_left "after the InboundRequests run"
	pass "InboundRequests true without CAP_NET_ADMIN: one warning naming it, exact counts"
fi

# --- 2. root whose bounding set is the drop-in's (the drop-in without its
# user lines): works too.
start_as 0 "$AMBIENT" ""
counts_exact 15 4
collectd_stop
wait_no_bpf_left "after the capability-bounded root collectd stopped"
pass "root bounded to {$AMBIENT}: exact counts"

# --- 3. Capabilities removed: none at all, then the drop-in's set without
# each one of its members. Each member must matter: without it the plugin
# refuses in one sentence (clean unload, collectd goes on) or, for a
# capability that only one feature needs, runs and says what it cannot do.
sets=("")
for c in ${AMBIENT//,/ }; do
	sets+=("$(tr ',' '\n' <<<"$AMBIENT" | grep -vx "$c" | paste -sd, -)")
done
for caps in "${sets[@]}"; do
	start_as "$LP_UID" "$caps" ""
	if [[ -n "$caps" ]] && grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log"; then
		others=$(grep 'tcpconnlat plugin:' "$TCL_WORK/collectd.log" | grep -v 'tcpconnlat plugin: measuring ' || true)
		[[ -n "$others" ]] || fail "capabilities {$caps}: the plugin runs as with the whole set: is the missing one needed?"
		collectd_stop
		wait_no_bpf_left "after a partial start"
		pass "capabilities {$caps}: runs and says what it cannot do: $(head -n 1 <<<"$others" | cut -c 23-200)"
		continue
	fi
	expect_refused "tcpconnlat plugin: not starting: "
	grep -qE 'not starting: .*(privilege|CAP_)' "$TCL_WORK/collectd.log" ||
		fail "the sentence does not say which privilege is missing"
	wait_no_bpf_left "after a refused start"
	pass "capabilities {${caps:-none}}: refused in one sentence ($(grep -o 'not starting: [^:]*' "$TCL_WORK/collectd.log")), plugin unloaded, collectd runs on"
done

# --- 4. CollectBpfStats needs CAP_SYS_ADMIN (kernel-wide statistics): with
# the minimum the plugin warns and measures anyway.
start_as "$LP_UID" "$AMBIENT" "CollectBpfStats true"
grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log" || fail "the plugin did not start"
grep -q "CollectBpfStats" "$TCL_WORK/collectd.log" ||
	fail "no warning that the run-time statistics are unavailable"
counts_exact 5 3
collectd_stop
wait_no_bpf_left "after the CollectBpfStats run"
pass "CollectBpfStats without CAP_SYS_ADMIN: a warning, exact counts"

# --- 5. The classic tracepoint, forced, as the unprivileged user. tracefs is
# mounted in a private mount namespace. Its root directory is 0700: the
# minimum is not enough; CAP_DAC_READ_SEARCH, or a tracefs mounted with
# collectd's group, is.
TRACEFS_ROOT='umount -l /sys/kernel/tracing 2>/dev/null; mount -t tracefs nodev /sys/kernel/tracing || exit 99; exec "$@"'
start_as "$LP_UID" "$AMBIENT" 'AttachMode "tracepoint"' unshare -m sh -c "$TRACEFS_ROOT" sh
expect_refused "tracefs"
wait_no_bpf_left "after the refused classic tracepoint"
pass "classic tracepoint with the minimum: refused in one sentence ($(grep -o 'not starting: [^:]*' "$TCL_WORK/collectd.log"))"

start_as "$LP_UID" "$AMBIENT,dac_read_search" 'AttachMode "tracepoint"' unshare -m sh -c "$TRACEFS_ROOT" sh
grep -q "through the classic tracepoint" "$TCL_WORK/collectd.log" || fail "the classic tracepoint did not start with CAP_DAC_READ_SEARCH"
counts_exact 6 2
collectd_stop
wait_no_bpf_left "after the classic tracepoint run"
pass "classic tracepoint with {$AMBIENT}+CAP_DAC_READ_SEARCH: exact counts"

start_as "$LP_UID" "$AMBIENT" 'AttachMode "tracepoint"' unshare -m sh -c \
	"umount -l /sys/kernel/tracing 2>/dev/null; mount -t tracefs -o gid=$LP_UID,mode=0750 nodev /sys/kernel/tracing || exit 99; exec \"\$@\"" sh
grep -q "through the classic tracepoint" "$TCL_WORK/collectd.log" || fail "the classic tracepoint did not start with a group-readable tracefs"
counts_exact 6 2
collectd_stop
wait_no_bpf_left "after the classic tracepoint run"
pass "classic tracepoint with the minimum and tracefs mounted gid=collectd's,mode=0750: exact counts"

chown root:root "$TCL_WORK"
