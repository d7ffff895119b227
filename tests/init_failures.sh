#!/usr/bin/env bash
# Init failures give one plain sentence and a clean unload while collectd
# runs on; and each attach mode, forced, works where the kernel allows it.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init

EST=tcpconnlat-all/total_connections-established

# collectd keeps running its other plugins, nothing of ours stays loaded.
expect_unloaded() { # WANT_SENTENCE
	local rows
	grep -qF "$1" "$TCL_WORK/collectd.log" || fail "no log line containing: $1"
	grep -q "Initialization of plugin \`tcpconnlat' failed" "$TCL_WORK/collectd.log" ||
		fail "collectd did not unload the plugin"
	rows=$(csv_rows load/load)
	wait_rows load/load $((rows + 3))
	collectd_alive || fail "collectd died"
	wait_no_bpf_left "BPF programs left loaded after a failed init"
	collectd_stop
	rm -rf "$TCL_WORK/csv"
	pass "$1"
}

# Works: counts a few refused connects exactly, logs the mode used. Every
# working configuration below carries "RemotePort $CLOSED", a closed port
# chosen at random for this run: only the test's own connects count,
# whatever else the host does.
CLOSED=$((30000 + RANDOM % 20000))
while ss -Htan "sport = :$CLOSED or dport = :$CLOSED" | grep -q .; do
	CLOSED=$((30000 + RANDOM % 20000))
done
expect_working() { # LOG_TEXT
	local base
	grep -qF "$1" "$TCL_WORK/collectd.log" || fail "no log line containing: $1"
	wait_rows tcpconnlat-all/total_connections-refused 1
	base=$(csv_last tcpconnlat-all/total_connections-refused)
	"$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p $CLOSED -n 7 -q 2>/dev/null
	wait_value tcpconnlat-all/total_connections-refused $((base + 7))
	collectd_stop
	wait_no_bpf_left "BPF programs left loaded after shutdown"
	rm -rf "$TCL_WORK/csv"
	pass "$1"
}

# 1. No kernel BTF (simulated: BtfPath points at nothing).
collectd_start 'BtfPath "/nonexistent/vmlinux"' "LoadPlugin load"
expect_unloaded "tcpconnlat plugin: not starting: kernel BTF is missing (/nonexistent/vmlinux"

# 2. No privilege: collectd as nobody, without capabilities.
mkdir -p "$TCL_WORK/csv"
chown -R nobody "$TCL_WORK"
collectd_start "" "LoadPlugin load" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all
expect_unloaded "tcpconnlat plugin: not starting: collectd lacks the privilege to load BPF tracing programs: run it as root, or grant it CAP_BPF and CAP_PERFMON"
chown -R root "$TCL_WORK"

# 3. Classic tracepoint forced, tracefs missing (a private mount namespace
#    where it is unmounted; the host's mounts are untouched).
collectd_start 'AttachMode "tracepoint"' "LoadPlugin load" \
	unshare -m sh -c 'umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; exec "$@"' sh
expect_unloaded "the classic tracepoint needs tracefs, which is not mounted"

# 4. Classic tracepoint forced, tracefs mounted (privately): it works.
collectd_start "AttachMode \"tracepoint\"
RemotePort $CLOSED" "" \
	unshare -m sh -c 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; exec "$@"' sh
expect_working "through the classic tracepoint sock:inet_sock_set_state"

# 5. tp_btf forced.
collectd_start "AttachMode \"tp_btf\"
RemotePort $CLOSED"
expect_working "through the BTF raw tracepoint (tp_btf)"

# 6. auto with tracefs missing still works (tp_btf needs no tracefs).
collectd_start "RemotePort $CLOSED" "" \
	unshare -m sh -c 'umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; exec "$@"' sh
expect_working "through the BTF raw tracepoint (tp_btf)"
