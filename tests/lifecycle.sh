#!/usr/bin/env bash
# Lifecycles: 50 start/stop cycles of collectd with the plugin leave no BPF
# program, link, map or BTF object behind and collectd's descriptors are the
# same every time; collectd killed with SIGKILL leaves nothing either (nothing
# is pinned); and every init failure gives one sentence and a clean unload:
# collectd keeps running its other plugins and holds exactly the descriptors
# it holds when the plugin refuses its configuration outright.
#
# collectd runs in the test's own network namespace with OwnNetnsOnly true.
# A plugin built with --enable-sanitizers runs with the sanitizer runtimes
# preloaded (LeakSanitizer then also checks every shutdown and failed init).
#   LIFECYCLE_CYCLES (50)   start/stop cycles
#   LIFECYCLE_KILLS (5)     SIGKILL cycles
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
command -v bpftool >/dev/null || tcl_skip_or_fail "bpftool is missing"
tcl_init
tcl_netns_create

CYCLES=${LIFECYCLE_CYCLES:-50}
KILLS=${LIFECYCLE_KILLS:-5}
REF=tcpconnlat-all/total_connections-refused
IN_NS=(ip netns exec "$TCL_NS")

# A plugin built with --enable-sanitizers needs the sanitizer runtimes
# preloaded into collectd; their reports (leaks at exit included) go to
# $TCL_WORK/asan.* and ubsan.* and fail the test.
tcl_sanitizer_env

# collectd's descriptors by kind: "2 /dev/null 12 anon_inode:bpf-map ..."
fd_signature() {
	local f
	for f in /proc/"$TCL_COLLECTD_PID"/fd/*; do
		readlink "$f" 2>/dev/null || true
	done | sed 's/:\[[0-9]*\]$//; s/^\(anon_inode:\)\[\(.*\)\]$/\1\2/' | sort | uniq -c |
		awk '{ printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2 }'
}
# The signature, once it holds still (a write in progress may add a file).
stable_signature() {
	local a b i
	a=$(fd_signature)
	for ((i = 0; i < 20; i++)); do
		sleep 0.1
		b=$(fd_signature)
		[[ "$a" == "$b" ]] && break
		a=$b
	done
	echo "$a"
}

# BTF objects the plugin's programs and maps refer to (wait_no_bpf_left
# follows programs, maps and links).
own_btf_ids() {
	local item
	for item in $TCL_OWN_BPF; do
		case $item in
		prog_id:*) bpftool prog show id "${item#*:}" 2>/dev/null ;;
		map_id:*) bpftool map show id "${item#*:}" 2>/dev/null ;;
		esac
	done | grep -oE 'btf_id [0-9]+' | awk '{print $2}' | sort -u | paste -sd' ' -
}
_btf_gone() {
	local id
	for id in $1; do
		bpftool btf show id "$id" >/dev/null 2>&1 && return 1
	done
	return 0
}
wait_btf_gone() { # IDS WHAT
	wait_until 10 "BTF objects $1 freed ($2)" _btf_gone "$1"
}

no_crash() {
	no_sanitizer_reports
	! grep -qiE 'segfault|assert|sanitizer|double free|corrupt' \
		"$TCL_WORK/collectd.log" "$TCL_WORK/collectd.stdout" 2>/dev/null ||
		fail "collectd logged a crash"
}

# --- 1. Start/stop cycles.
first_sig='' first_nbpf='' t0=$(date +%s)
for ((i = 1; i <= CYCLES; i++)); do
	rm -rf "$TCL_WORK/csv"
	: >"$TCL_WORK/collectd.stdout"
	collectd_start "OwnNetnsOnly true" "" "${IN_NS[@]}" "${SAN_ENV[@]}"
	grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log" || fail "cycle $i: the plugin did not start"
	[[ "$TCL_OWN_BPF" == *prog_id:* && "$TCL_OWN_BPF" == *link_id:* ]] ||
		fail "cycle $i: collectd holds no BPF program and link: '$TCL_OWN_BPF'"
	sig=$(stable_signature)
	nbpf=$(wc -w <<<"$TCL_OWN_BPF")
	if ((i == 1)); then
		first_sig=$sig first_nbpf=$nbpf
		note "collectd's descriptors: $sig"
	else
		[[ "$sig" == "$first_sig" ]] || fail "cycle $i: descriptors changed: '$sig', first cycle '$first_sig'"
		[[ "$nbpf" == "$first_nbpf" ]] || fail "cycle $i: $nbpf BPF objects, first cycle $first_nbpf"
	fi
	if ((i % 10 == 1 || i == CYCLES)); then
		# it measures, every time (a fresh collectd counts from 0)
		in_ns "$TCL_TEST_BIN/tcpclient" connect -a 127.0.0.1 -p 1 -n 3 -q 2>/dev/null
		wait_value "$REF" 3
	fi
	btf=$(own_btf_ids)
	collectd_stop
	grep -q "Exiting normally" "$TCL_WORK/collectd.log" || fail "cycle $i: collectd did not exit normally"
	no_crash
	wait_no_bpf_left "cycle $i"
	wait_btf_gone "$btf" "cycle $i"
done
pass "$CYCLES start/stop cycles in $(($(date +%s) - t0)) s: same descriptors every time ($first_nbpf BPF objects), nothing left after each stop"

# --- 2. SIGKILL: the kernel frees everything with the last descriptor.
for ((i = 1; i <= KILLS; i++)); do
	collectd_start "OwnNetnsOnly true" "" "${IN_NS[@]}" "${SAN_ENV[@]}"
	[[ -n "$TCL_OWN_BPF" ]] || fail "kill $i: no BPF object"
	btf=$(own_btf_ids)
	kill -KILL "$TCL_COLLECTD_PID"
	wait "$TCL_COLLECTD_PID" 2>/dev/null || true
	TCL_COLLECTD_PID=
	wait_no_bpf_left "after SIGKILL $i"
	wait_btf_gone "$btf" "after SIGKILL $i"
done
pass "$KILLS x SIGKILL: nothing pinned, nothing left"

# --- 3. Init failures: one sentence, clean unload, collectd runs on with the
# descriptors of a collectd whose tcpconnlat never touched BPF.
collectd_start "OwnNetnsOnly true
Percentile 150" "LoadPlugin load" "${IN_NS[@]}" "${SAN_ENV[@]}"
grep -q "not starting because of the configuration error" "$TCL_WORK/collectd.log" ||
	fail "the configuration error was not reported"
base_sig=$(stable_signature)
collectd_stop
no_sanitizer_reports
note "descriptors of a collectd whose tcpconnlat refused its configuration: $base_sig"

expect_clean_failure() { # WHAT SENTENCE_PART
	local n rows sig
	grep -qF "$2" "$TCL_WORK/collectd.log" || fail "$1: no log line containing: $2"
	n=$(grep -c 'tcpconnlat plugin: not starting: ' "$TCL_WORK/collectd.log" || true)
	[[ $n -eq 1 ]] || fail "$1: $n 'not starting' lines, expected one"
	grep -q "Initialization of plugin \`tcpconnlat' failed" "$TCL_WORK/collectd.log" ||
		fail "$1: collectd did not unload the plugin"
	rows=$(csv_rows load/load)
	wait_rows load/load $((rows + 2))
	collectd_alive || fail "$1: collectd died"
	sig=$(stable_signature)
	[[ "$sig" == "$base_sig" ]] || fail "$1: descriptors after the failed init '$sig', expected '$base_sig'"
	no_crash
	collectd_stop
	no_sanitizer_reports
	wait_no_bpf_left "$1"
	pass "$1: $(grep -o 'not starting: .*' "$TCL_WORK/collectd.log" | cut -c 15-140)..."
}
fail_case() { # WHAT SENTENCE_PART BLOCK [PREFIX...] (default prefix: into the netns)
	local what=$1 sentence=$2 block=$3
	shift 3
	(($#)) || set -- "${IN_NS[@]}"
	rm -rf "$TCL_WORK/csv"
	collectd_start "OwnNetnsOnly true
$block" "LoadPlugin load" "$@" "${SAN_ENV[@]}"
	expect_clean_failure "$what" "$sentence"
}

fail_case "no privilege (root without capabilities)" \
	"collectd lacks the privilege to load BPF tracing programs" "" \
	"${IN_NS[@]}" setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all
# inside "ip netns exec" /sys is a fresh sysfs: no tracefs, no debugfs
fail_case "forced classic tracepoint without tracefs" \
	"the classic tracepoint needs tracefs" 'AttachMode "tracepoint"'
fail_case "no kernel BTF (BtfPath to nothing)" \
	"kernel BTF is missing" 'BtfPath "/nonexistent/vmlinux"'
head -c 8192 /dev/urandom >"$TCL_WORK/garbage.btf"
fail_case "BtfPath to a file that is not BTF" \
	"not starting: " "BtfPath \"$TCL_WORK/garbage.btf\""
fail_case "Cgroup filter naming no cgroup" \
	'Cgroup "/tcl-no-such-cgroup-'$$'" was not found' "Cgroup \"/tcl-no-such-cgroup-$$\""

# A map too large to create: MaxInflight at its maximum with a breakdown
# (1.25 GiB of in-flight table and labels) in a memory cgroup of 256 MiB. Since Linux 5.11
# BPF maps are charged to the memory cgroup; RLIMIT_MEMLOCK plays no part.
memcg=
v1=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
v2=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
if [[ -n "$v1" && -d "/sys/fs/cgroup/memory$v1" ]]; then
	memcg=/sys/fs/cgroup/memory$v1/tcl-lifecycle-$$
	mkdir "$memcg"
	tcl_on_cleanup "rmdir '$memcg'"
	echo $((256 << 20)) >"$memcg/memory.limit_in_bytes"
else
	for m in /sys/fs/cgroup /sys/fs/cgroup/unified; do
		d=$m$v2
		if [[ -f "$d/cgroup.controllers" ]] && grep -qw memory "$d/cgroup.controllers" &&
			grep -qw memory "$d/cgroup.subtree_control" 2>/dev/null; then
			memcg=$d/tcl-lifecycle-$$
			mkdir "$memcg"
			tcl_on_cleanup "rmdir '$memcg'"
			echo $((256 << 20)) >"$memcg/memory.max"
			break
		fi
	done
fi
if [[ -n "$memcg" ]]; then
	JOIN=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$memcg")
	fail_case "a map too large for the memory cgroup (MaxInflight 16777216, By, 256 MiB)" \
		"could not create the BPF maps" "MaxInflight 16777216
By remote_port" "${JOIN[@]}" "${IN_NS[@]}"
	# the same cgroup is big enough for the default size
	rm -rf "$TCL_WORK/csv"
	collectd_start "OwnNetnsOnly true" "" "${JOIN[@]}" "${IN_NS[@]}" "${SAN_ENV[@]}"
	grep -q "measuring TCP connect latency" "$TCL_WORK/collectd.log" ||
		fail "the default MaxInflight does not fit in 256 MiB"
	collectd_stop
	no_sanitizer_reports
	wait_no_bpf_left "after the memory cgroup run"
	pass "the default MaxInflight fits in the same memory cgroup"
else
	note "no memory cgroup controller available: the map-too-large case is not run"
fi
