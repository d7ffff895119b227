#!/usr/bin/env bash
# Breakdowns and filters with real processes: two programs with different
# comm values, users, cgroups and network namespaces connect to two ports over
# IPv4 and IPv6. Every series shows exactly its own connects; each filter
# keeps exactly what it should; overflow lands in "other" with the total
# unchanged; an idle series disappears and comes back.
#
# Isolation: the plugin only counts the test's own two programs (a Process
# filter on their unique comm values), so other traffic on the host cannot
# change the counts.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init

CGROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[[ -n "$CGROOT" ]] || tcl_skip_or_fail "no cgroup v2 hierarchy is mounted"

# Two programs: copies of tcpclient under their own names (comm).
A=tclbd-a$$ B=tclbd-b$$
A=${A:0:15} B=${B:0:15}
cp "$TCL_TEST_BIN/tcpclient" "$TCL_WORK/$A"
cp "$TCL_TEST_BIN/tcpclient" "$TCL_WORK/$B"
chmod 755 "$TCL_WORK/$A" "$TCL_WORK/$B"

# Two cgroups, two namespaces (each with listeners on both ports).
CG_A="tcl-bd-$$-a" CG_B="tcl-bd-$$-b"
mkdir "$CGROOT/$CG_A" "$CGROOT/$CG_B"
tcl_on_cleanup 'rmdir "$CGROOT/$CG_A" "$CGROOT/$CG_B" 2>/dev/null'

tcl_netns_create
NS_A=$TCL_NS
tcl_netns_create
NS_B=$TCL_NS
P1=5001 P2=5002
for ns in "$NS_A" "$NS_B"; do
	for a in 127.0.0.1 ::1; do
		for p in $P1 $P2; do
			out="$TCL_WORK/listen-$ns-$a-$p"
			tcl_spawn ip netns exec "$ns" "$TCL_TEST_BIN/tcpclient" listen -a "$a" -p $p >"$out"
			wait_until 10 "listener $ns $a:$p" grep -q '^ready' "$out"
		done
	done
done

# run_as PROG NS CGROUP USER ADDR PORT COUNT: connects from PROG as USER in
# CGROUP and NS; checks that the client itself saw COUNT successes.
run_as() {
	local prog=$1 ns=$2 cg=$3 user=$4 addr=$5 port=$6 n=$7 s
	# joins the cgroup as root (before ip netns exec, which mounts a /sys of
	# its own without the cgroup hierarchy), then drops to the user
	s=$(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROOT/$cg" \
		ip netns exec "$ns" setpriv --reuid="$user" --regid="$user" --clear-groups \
		"$TCL_WORK/$prog" connect -a "$addr" -p "$port" -n "$n" -q 2>&1 >/dev/null)
	grep -q "summary ok=$n " <<<"$s" || fail "$prog $addr:$port: client saw $s, expected ok=$n"
}
# The processes must really be in their cgroups: check it once.
sh -c 'echo $$ >"$1/cgroup.procs" && exec ip netns exec "$2" cat /proc/self/cgroup' sh "$CGROOT/$CG_A" "$NS_A" |
	grep -q "0::/$CG_A" || fail "cannot place a process in cgroup $CG_A"

# A namespace's id as its own processes see it: the cookie (SO_NETNS_COOKIE,
# Linux 5.14) where the kernel has one, else the inode number.
netns_id() {
	ip netns exec "$1" python3 -c 'import socket, struct
s = socket.socket()
try:
    print(struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])
except OSError:
    print(0)' | { read -r c; [[ $c != 0 ]] && echo "$c" || stat -L -c %i "/run/netns/$1"; }
}
NS_A_INO=$(netns_id "$NS_A")
NS_B_INO=$(netns_id "$NS_B")
NOBODY=$(id -u nobody)

# The traffic of every phase: A as root in CG_A/NS_A, B as nobody in CG_B/NS_B.
traffic() {
	run_as "$A" "$NS_A" "$CG_A" 0 127.0.0.1 $P1 7
	run_as "$A" "$NS_A" "$CG_A" 0 ::1 $P2 5
	run_as "$B" "$NS_B" "$CG_B" "$NOBODY" 127.0.0.1 $P2 4
	run_as "$B" "$NS_B" "$CG_B" "$NOBODY" ::1 $P1 3
}
TOTAL=$((7 + 5 + 4 + 3))
PROCS="Process \"$A\" \"$B\""

established() { csv_last "tcpconnlat-$1/total_connections-established"; }
expect_established() { # INSTANCE WANT
	wait_value "tcpconnlat-$1/total_connections-established" "$2"
}
# After the counts are reached, two more intervals must not add anything.
settle() {
	local rows
	rows=$(csv_rows tcpconnlat-self/gauge-series)
	wait_rows tcpconnlat-self/gauge-series $((rows + 2))
}
series_dirs() { find "$TCL_WORK/csv/$TCL_HOST" -maxdepth 1 -name 'tcpconnlat-*' -printf '%f\n' | sort; }
# (Inbound stays at its default: its series, tcpconnlat-inbound, is not one
# of the label sets counted here.)
phase() { # NAME BLOCK [raw]: fresh collectd; unless raw, only A and B count
	local procs=$PROCS
	[[ "${3:-}" == raw ]] && procs=
	collectd_stop
	rm -rf "$TCL_WORK/csv"
	collectd_start "$procs
$2"
	wait_rows tcpconnlat-self/gauge-series 1
	note "phase: $1"
}

# --- 1. every label at once: each series exactly its own connects ----------
phase "By all labels" "By process uid cgroup netns family remote_port"
traffic
# The documented encoding; these names need no escapes ([A-Za-z0-9-] only).
inst() { # PROG UID CG NSINO FAMILY PORT
	echo "process-$1_uid-$2_cgroup-$3_netns-$4_family-$5_remoteport-$6"
}
expect_established all $TOTAL
expect_established "$(inst "$A" 0 "$CG_A" "$NS_A_INO" ipv4 $P1)" 7
expect_established "$(inst "$A" 0 "$CG_A" "$NS_A_INO" ipv6 $P2)" 5
expect_established "$(inst "$B" "$NOBODY" "$CG_B" "$NS_B_INO" ipv4 $P2)" 4
expect_established "$(inst "$B" "$NOBODY" "$CG_B" "$NS_B_INO" ipv6 $P1)" 3
settle
n=$(series_dirs | grep -vcE '^tcpconnlat-(all|self|inbound)$' || true)
[[ $n -eq 4 ]] || fail "expected 4 labelled series, found $n: $(series_dirs | tr '\n' ' ')"
[[ $(established all) -eq $TOTAL ]] || fail "all grew past $TOTAL"
wait_value tcpconnlat-self/gauge-series 4
while read -r name; do
	[[ $name == */latency-percentile-50 ]] || continue
	csv_values_after "$name" 0 | grep -qvE '^(nan|-nan)$' || fail "no finite percentile in $name"
done < <(csv_names tcpconnlat-process-)
pass "four series, each with exactly its own connects; percentiles per series"

# --- 2. single labels -------------------------------------------------------
phase "By process" "By process"
traffic
expect_established "process-$A" 12
expect_established "process-$B" 7
pass "By process: $A 12, $B 7"

phase "By family remote_port, no total" "By family remote_port
ReportTotal false"
traffic
expect_established family-ipv4_remoteport-$P1 7
expect_established family-ipv6_remoteport-$P2 5
expect_established family-ipv4_remoteport-$P2 4
expect_established family-ipv6_remoteport-$P1 3
settle
[[ ! -d "$TCL_WORK/csv/$TCL_HOST/tcpconnlat-all" ]] || fail "ReportTotal false still dispatched all"
pass "By family remote_port; ReportTotal false drops all"

phase "By remote_network" 'By remote_network
RemoteNetwork "loopback4" "127.0.0.0/8"'
traffic
expect_established remotenetwork-loopback4 11
expect_established remotenetwork-other 8
pass "By remote_network: named range and other"

# --- 3. filters, each alone and combined (AND) ----------------------------
# Each filter ANDed with the Process filter on A and B (the isolation).
check_filter() { # NAME BLOCK WANT_TOTAL [raw]
	phase "$1" "$2" "${4:-}"
	traffic
	expect_established all "$3"
	settle
	[[ $(established all) -eq $3 ]] || fail "$1: all = $(established all), expected $3"
	pass "filter $1 keeps exactly $3"
}
check_filter "Process A" "Process \"$A\"" 12 raw
check_filter "Uid nobody" "Uid $NOBODY" 7
check_filter "Cgroup A" "Cgroup \"/$CG_A\"" 12
# Cgroup with collectd in a cgroup namespace, as in a container that mounts
# cgroup2 itself: the mount's root is the namespace's root (CG_N), the
# Cgroup path "/a" is below it, and the kernel counts levels from its own
# root. A runs in CG_N/a, B outside the namespace's root.
CG_N="tcl-bd-$$-n"
mkdir -p "$CGROOT/$CG_N/a"
tcl_on_cleanup 'rmdir "$CGROOT/$CG_N/a" "$CGROOT/$CG_N" 2>/dev/null'
cat >"$TCL_WORK/in-cgns.sh" <<'EOS'
#!/bin/sh
# in-cgns.sh CGROUP MOUNTPOINT CMD...: CMD in a cgroup namespace rooted at
# CGROUP, with a cgroup2 mount of its own at MOUNTPOINT in place of the
# host's (a private mount namespace: nothing changes outside).
echo $$ >"$1/cgroup.procs" || exit 1
mnt=$2
shift 2
exec unshare --cgroup --mount --propagation private sh -c \
	'umount "$1" && mount -t cgroup2 none "$1" && shift && exec "$@"' sh "$mnt" "$@"
EOS
collectd_stop
rm -rf "$TCL_WORK/csv"
collectd_start "$PROCS
Cgroup \"/a\"" "" sh "$TCL_WORK/in-cgns.sh" "$CGROOT/$CG_N" "$CGROOT"
wait_rows tcpconnlat-self/gauge-series 1
note "phase: Cgroup inside a cgroup namespace"
# collectd really is inside: its own cgroup2 mount has the namespace's root
[[ $(readlink "/proc/$TCL_COLLECTD_PID/ns/cgroup") != "$(readlink /proc/self/ns/cgroup)" ]] ||
	fail "collectd is not in a cgroup namespace of its own"
mroot=$(awk -v m="$CGROOT" '{ for (i = 7; i <= NF && $i != "-"; i++); if ($5 == m && $(i + 1) == "cgroup2") r = $4 }
	END { print r }' "/proc/$TCL_COLLECTD_PID/mountinfo")
[[ "$mroot" == "/$CG_N" ]] || fail "collectd's cgroup2 mount has root $mroot, expected /$CG_N"
run_as "$A" "$NS_A" "$CG_N/a" 0 127.0.0.1 $P1 7
run_as "$A" "$NS_A" "$CG_N/a" 0 ::1 $P2 5
run_as "$B" "$NS_B" "$CG_B" "$NOBODY" 127.0.0.1 $P2 4
expect_established all 12
settle
[[ $(established all) -eq 12 ]] || fail "Cgroup in a cgroup namespace: all = $(established all), expected 12"
pass "filter Cgroup \"/a\" from inside a cgroup namespace keeps exactly the 12 of /$CG_N/a"

# The same with a cgroup2 mount of a sub-hierarchy in the initial cgroup
# namespace (a bind mount of CG_N in place of the host's mount): its root,
# "/CG_N" in mountinfo, is one level below the kernel's.
collectd_stop
rm -rf "$TCL_WORK/csv"
collectd_start "$PROCS
Cgroup \"/a\"" "" unshare --mount --propagation private sh -c \
	'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$CGROOT/$CG_N" "$CGROOT"
wait_rows tcpconnlat-self/gauge-series 1
note "phase: Cgroup under a mount of a sub-hierarchy"
mroot=$(awk -v m="$CGROOT" '{ for (i = 7; i <= NF && $i != "-"; i++); if ($5 == m && $(i + 1) == "cgroup2") r = $4 }
	END { print r }' "/proc/$TCL_COLLECTD_PID/mountinfo")
[[ "$mroot" == "/$CG_N" ]] || fail "collectd's cgroup2 mount has root $mroot, expected /$CG_N"
run_as "$A" "$NS_A" "$CG_N/a" 0 127.0.0.1 $P1 7
run_as "$B" "$NS_B" "$CG_B" "$NOBODY" 127.0.0.1 $P2 4
expect_established all 7
settle
[[ $(established all) -eq 7 ]] || fail "Cgroup under a sub-hierarchy mount: all = $(established all), expected 7"
pass "filter Cgroup \"/a\" under a cgroup2 mount of /$CG_N keeps exactly the 7 of /$CG_N/a"

check_filter "RemotePort" "RemotePort $P1" 10
check_filter "IgnoreRemotePort" "IgnoreRemotePort $P1" 9
check_filter "IncludeRemoteNetwork" 'RemoteNetwork "lo6" "::1/128"
IncludeRemoteNetwork "lo6"' 8
check_filter "IgnoreRemoteNetwork" 'RemoteNetwork "lo6" "::1/128"
IgnoreRemoteNetwork "lo6"' 11
check_filter "Uid AND RemotePort" "Uid 0
RemotePort $P2" 5
[[ $(csv_last tcpconnlat-self/derive-filtered) -gt 0 ]] || fail "filtered connects not counted in self"

# A filter on a pid: only that process (a shell that execs the client).
collectd_stop
rm -rf "$TCL_WORK/csv"
# Start the client paused on a fifo, so its pid is known before it connects.
mkfifo "$TCL_WORK/go"
ip netns exec "$NS_A" sh -c 'read x <"$1"; exec "$2" connect -a 127.0.0.1 -p "$3" -n 6 -q' sh \
	"$TCL_WORK/go" "$TCL_WORK/$A" $P1 2>/dev/null &
PID=$!
_TCL_PIDS+=("$PID")
collectd_start "$PROCS
Pid $PID"
wait_rows tcpconnlat-all/total_connections-established 1
echo go >"$TCL_WORK/go"
wait "$PID"
traffic
expect_established all 6
settle
[[ $(established all) -eq 6 ]] || fail "Pid filter: all = $(established all), expected 6"
pass "filter Pid keeps exactly that process's 6"

# --- 4. overflow: MaxSeries 2, four label sets -> two series + other --------
phase "MaxSeries 2" "By family remote_port
MaxSeries 2"
traffic
expect_established all $TOTAL
settle
sum=0
for d in $(series_dirs | grep -vE '^tcpconnlat-(all|self|inbound)$'); do
	sum=$((sum + $(established "${d#tcpconnlat-}")))
done
[[ $sum -eq $TOTAL ]] || fail "series + other hold $sum connects, expected $TOTAL"
[[ -d "$TCL_WORK/csv/$TCL_HOST/tcpconnlat-other" ]] || fail "no other series"
n=$(series_dirs | grep -vcE '^tcpconnlat-(all|self|other|inbound)$' || true)
[[ $n -eq 2 ]] || fail "expected 2 labelled series under MaxSeries 2, found $n"
[[ $(csv_last tcpconnlat-self/derive-series_overflow) -gt 0 ]] || fail "overflow not counted"
pass "MaxSeries 2: two series + other = $TOTAL, overflow counted"

# --- 5. idle series disappear and come back ---------------------------------
phase "SeriesTimeout 2" "By process
SeriesTimeout 2"
run_as "$A" "$NS_A" "$CG_A" 0 127.0.0.1 $P1 7
expect_established "process-$A" 7
wait_value tcpconnlat-self/gauge-series 1
# Idle: after the timeout the series stops being dispatched.
wait_value tcpconnlat-self/gauge-series 0 20
rows=$(csv_rows "tcpconnlat-process-$A/total_connections-established")
wait_rows tcpconnlat-all/total_connections-established $(($(csv_rows tcpconnlat-all/total_connections-established) + 3))
[[ $(csv_rows "tcpconnlat-process-$A/total_connections-established") -eq $rows ]] ||
	fail "the idle series is still dispatched"
[[ $(csv_last tcpconnlat-self/derive-series_expired) -ge 1 ]] || fail "expiry not counted"
# Comes back: a fresh life, with exactly its new connects.
run_as "$A" "$NS_A" "$CG_A" 0 127.0.0.1 $P1 4
expect_established "process-$A" 4
expect_established all 11
wait_value tcpconnlat-self/gauge-series 1
pass "an idle series disappears and comes back with exactly its new connects"

collectd_stop
wait_no_bpf_left "after the breakdown tests"
