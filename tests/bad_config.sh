#!/usr/bin/env bash
# A wrong key or value in <Plugin tcpconnlat>: one error naming the key and
# what was expected, the plugin refuses to start, and collectd keeps running
# its other plugins (here: load, written by csv).
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init

check_bad() { # BLOCK EXPECTED_LOG_TEXT
	local block=$1 want=$2 rows
	collectd_start "$block" "LoadPlugin load"
	grep -qF "$want" "$TCL_WORK/collectd.log" ||
		fail "no log line containing: $want"
	grep -qF "tcpconnlat plugin: not starting because of the configuration error" "$TCL_WORK/collectd.log" ||
		fail "the plugin did not say it refuses to start"
	# The daemon and its other plugins keep running.
	rows=$(csv_rows load/load)
	wait_rows load/load $((rows + 3))
	collectd_alive || fail "collectd died"
	[[ ! -d "$TCL_WORK/csv/$TCL_HOST/tcpconnlat-all" ]] || fail "the plugin dispatched values despite the error"
	wait_no_bpf_left "BPF programs loaded despite the error"
	collectd_stop
	rm -rf "$TCL_WORK/csv"
	pass "$want"
}

check_bad "Frobnicate 1" \
	'tcpconnlat plugin: unknown option "Frobnicate" in <Plugin tcpconnlat>; valid options are'
check_bad "Percentile 150" \
	"tcpconnlat plugin: Percentile: expected one number greater than 0 and less than 100, got 150."
check_bad 'AttachMode "kprobe"' \
	'tcpconnlat plugin: AttachMode: expected "auto", "tp_btf" or "tracepoint", got "kprobe".'
check_bad "Bucket 0.5 0.1" \
	"tcpconnlat plugin: Bucket: expected two numbers LO HI in seconds with 0 <= LO < HI, or HI 0 for infinity, got 0.5 0.1."
check_bad "MaxInflight 0" \
	"tcpconnlat plugin: MaxInflight: expected a whole number from 1 to 16777216, got 0."
check_bad 'ReportBuckets "maybe"' \
	"tcpconnlat plugin: ReportBuckets: expected true or false."

# RemotePort and IgnoreRemotePort share one kernel table of 128 ports (as do
# LocalPort and IgnoreLocalPort): 128 distinct ports in all load and run,
# the 129th is refused by name instead of failing the load.
check_bad "RemotePort $(seq -s ' ' 1 100)
IgnoreRemotePort $(seq -s ' ' 101 129)" \
	"tcpconnlat plugin: IgnoreRemotePort: at most 128 distinct ports can be given in IgnoreRemotePort and RemotePort together (one kernel table holds both); port 129 would be one more."
check_bad "IgnoreLocalPort $(seq -s ' ' 1000 1128)" \
	"tcpconnlat plugin: IgnoreLocalPort: at most 128 distinct ports can be given in IgnoreLocalPort and LocalPort together (one kernel table holds both); port 1128 would be one more."
collectd_start "RemotePort $(seq -s ' ' 1 100)
IgnoreRemotePort $(seq -s ' ' 51 128)
LocalPort $(seq -s ' ' 1000 1127)
IgnoreLocalPort 1000" "LoadPlugin load"
wait_rows tcpconnlat-self/gauge-series 2
! grep -q "tcpconnlat plugin: not starting" "$TCL_WORK/collectd.log" || fail "128 distinct ports were refused"
collectd_stop
pass "128 distinct ports in RemotePort and IgnoreRemotePort (and in LocalPort and IgnoreLocalPort) load and run"
