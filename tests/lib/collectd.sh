# shellcheck shell=bash
#
# tests/lib/collectd.sh - run the real collectd daemon with the built plugin
# and read back what its CSV writer stored.
#
#   tcl_init                      work dir, cleanup on exit (call after
#                                 bed_create when the netns bed is used)
#   tcl_require_root              skip (77) unless root with kernel BTF and
#                                 collectd; with CI=true a skip is a failure
#   collectd_start [BLOCK] [GLOBAL]   BLOCK goes inside <Plugin tcpconnlat>,
#                                 GLOBAL into the top level (more plugins)
#   collectd_stop                 SIGTERM, wait for the exit
#   csv_last NAME                 last value of DataDir/HOST/NAME-<date>
#   csv_rows NAME                 number of rows written so far
#   csv_bucket_count NAME SKIP    connects a bucket rate series carried after
#                                 row SKIP (rate x time since the previous row)
#   wait_until SECONDS DESC CMD...   poll CMD until true or fail the test
#   fail MSG / pass MSG / note MSG
#   tcl_steal_mark / tcl_steal_since
#                                 CPU the hypervisor took from this VM since
#                                 the mark (steal in /proc/stat), as a phrase
#                                 for the message of a timing failure
#   tcl_maps_bytes                memlock bytes of every BPF map collectd holds
#
# Environment from `make check`: TCL_PLUGIN_DIR (the built tcpconnlat.so),
# TCL_TEST_BIN (test helpers), TCL_SRCDIR.

TCL_PLUGIN_DIR=${TCL_PLUGIN_DIR:-$(pwd)/src/.libs}
TCL_TEST_BIN=${TCL_TEST_BIN:-$(pwd)/tests}
TCL_HOST=tcltest
TCL_INTERVAL=${TCL_INTERVAL:-1}
TCL_STOCK_PLUGINDIR=${TCL_STOCK_PLUGINDIR:-$(collectd -h 2>/dev/null | sed -n 's/^ *Plugin directory  *//p')}
TCL_STOCK_PLUGINDIR=${TCL_STOCK_PLUGINDIR:-/usr/lib/collectd}
TCL_COLLECTD_PID=
TCL_OWN_BPF=
TCL_WORK=
_TCL_PIDS=()
_TCL_NETNS=()
_TCL_HOOKS=()
_TCL_WAIT_LAST=
_TCL_FAILED=0

note() { echo "# $*"; }
pass() { echo "ok: $*"; }
fail() {
	echo "FAIL: $*" >&2
	# every failure says whether the host stole CPU meanwhile: a timing
	# check that failed then may be noise rather than a defect
	[[ -n "${_TCL_STEAL0:-}" ]] && echo "# $(tcl_steal_note)" >&2
	_TCL_FAILED=1
	if [[ -n "$TCL_WORK" && -f "$TCL_WORK/collectd.log" ]]; then
		echo "--- collectd.log (last 30 lines) ---" >&2
		tail -n 30 "$TCL_WORK/collectd.log" >&2
	fi
	exit 1
}

# A privileged test that cannot run: skip, except under CI where it fails.
tcl_skip_or_fail() {
	if [[ "${CI:-}" == true ]]; then
		echo "FAIL (CI=true, a privileged test must run): $*" >&2
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

tcl_require_root() {
	[[ $(id -u) -eq 0 ]] || tcl_skip_or_fail "needs root to load BPF programs"
	[[ -r /sys/kernel/btf/vmlinux ]] || tcl_skip_or_fail "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
	command -v collectd >/dev/null || tcl_skip_or_fail "collectd is not installed (apt-get install collectd-core)"
	[[ -f "$TCL_PLUGIN_DIR/tcpconnlat.so" ]] || tcl_skip_or_fail "the plugin is not built ($TCL_PLUGIN_DIR/tcpconnlat.so)"
}

# Run COMMAND (eval'd) at cleanup, after processes and namespaces are gone.
tcl_on_cleanup() { _TCL_HOOKS+=("$1"); }

# Start a background process tracked by PID (killed on exit).
tcl_spawn() {
	"$@" &
	_TCL_PIDS+=("$!")
}

tcl_cleanup() {
	local pid ns
	if [[ -n "$TCL_COLLECTD_PID" ]]; then
		collectd_stop || true
	fi

	for pid in "${_TCL_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${_TCL_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	_TCL_PIDS=()
	for ns in "${_TCL_NETNS[@]}"; do
		# processes still inside, then the namespace itself
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns delete "$ns" 2>/dev/null || true
	done
	_TCL_NETNS=()
	for pid in "${_TCL_HOOKS[@]}"; do
		eval "$pid" || true
	done
	_TCL_HOOKS=()
	if [[ -n "$TCL_WORK" && -d "$TCL_WORK" ]]; then
		if [[ $_TCL_FAILED -eq 0 && -z "${TCL_KEEP:-}" ]]; then
			rm -rf "$TCL_WORK"
		else
			echo "# test files kept in $TCL_WORK" >&2
		fi
	fi
}

_tcl_on_exit() {
	local rc=$?
	[[ $rc -ne 0 && $rc -ne 77 ]] && _TCL_FAILED=1
	tcl_cleanup
	exit "$rc"
}

tcl_init() {
	tcl_steal_mark
	TCL_WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcpconnlat-test.XXXXXX")
	chmod 755 "$TCL_WORK"
	if [[ "${_BED_ACTIVE:-0}" -eq 1 ]] && declare -F bed_on_destroy >/dev/null; then
		bed_on_destroy tcl_cleanup
	else
		trap _tcl_on_exit EXIT
		trap 'exit 129' HUP
		trap 'exit 130' INT
		trap 'exit 141' PIPE
		trap 'exit 143' TERM
	fi
}

_tcl_now_ms() { date +%s%3N; }

# A timing failure says whether the host took the CPU away meanwhile: steal
# time of all CPUs (the 8th value of /proc/stat's "cpu" line), in ms.
_tcl_steal_ms() {
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%d\n", $9 * 1000 / hz; exit }' /proc/stat
}
tcl_steal_mark() { _TCL_STEAL0=$(_tcl_steal_ms); }
tcl_steal_since() {
	local d=$(($(_tcl_steal_ms) - ${_TCL_STEAL0:-0}))
	if ((d > 0)); then
		echo "the host stole $d ms of CPU meanwhile (steal, /proc/stat)"
	else
		echo "no CPU stolen meanwhile (steal, /proc/stat)"
	fi
}

# A private network namespace with loopback up, removed on exit; its name
# goes to TCL_NS. Tests run collectd inside it with OwnNetnsOnly true, so that
# no other traffic on the host can change their exact counts.
tcl_netns_create() {
	TCL_NS="tcl-t-$$-$RANDOM"
	ip netns add "$TCL_NS" || fail "cannot create network namespace $TCL_NS"
	_TCL_NETNS+=("$TCL_NS")
	ip -n "$TCL_NS" link set lo up
}
in_ns() { ip netns exec "$TCL_NS" "$@"; }

wait_until() {
	local timeout=$1 desc=$2 deadline
	shift 2
	deadline=$(($(_tcl_now_ms) + timeout * 1000))
	until "$@"; do
		if (($(_tcl_now_ms) >= deadline)); then
			fail "timed out after ${timeout}s waiting for: $desc${_TCL_WAIT_LAST:+ (last: $(eval "$_TCL_WAIT_LAST" 2>/dev/null || echo none))}"
		fi
		sleep 0.05
	done
}

# collectd_start [TCPCONNLAT_BLOCK] [GLOBAL_CONFIG] [EXEC_PREFIX...]
collectd_start() {
	local block=${1:-} global=${2:-}
	shift 2 2>/dev/null || shift $#
	local conf="$TCL_WORK/collectd.conf"
	mkdir -p "$TCL_WORK/csv"
	cat >"$conf" <<-EOF
		Hostname "$TCL_HOST"
		FQDNLookup false
		Interval $TCL_INTERVAL
		BaseDir "$TCL_WORK"
		PIDFile "$TCL_WORK/collectd.pid"
		TypesDB "/usr/share/collectd/types.db"
		PluginDir "$TCL_STOCK_PLUGINDIR"
		LoadPlugin logfile
		<Plugin logfile>
		  LogLevel info
		  File "$TCL_WORK/collectd.log"
		  Timestamp true
		</Plugin>
		LoadPlugin csv
		<Plugin csv>
		  DataDir "$TCL_WORK/csv"
		  StoreRates false
		</Plugin>
		$global
		PluginDir "$TCL_PLUGIN_DIR"
		LoadPlugin tcpconnlat
		<Plugin tcpconnlat>
		$block
		</Plugin>
	EOF
	: >"$TCL_WORK/collectd.log"
	"$@" collectd -f -C "$conf" >>"$TCL_WORK/collectd.stdout" 2>&1 &
	TCL_COLLECTD_PID=$!
	wait_until 20 "collectd to finish its init" \
		grep -q "Initialization complete" "$TCL_WORK/collectd.log"
	TCL_OWN_BPF=$(tcl_collectd_bpf_ids | tr '\n' ' ')
}

collectd_alive() {
	[[ -n "$TCL_COLLECTD_PID" ]] && kill -0 "$TCL_COLLECTD_PID" 2>/dev/null
}

collectd_stop() {
	local pid=$TCL_COLLECTD_PID i
	[[ -n "$pid" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "# collectd did not stop within 10 s, killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	TCL_COLLECTD_PID=
}

# Newest CSV file for NAME ("tcpconnlat-all/total_connections-established").
# collectd's csv plugin starts a new file per day: the helpers below read
# NAME's files in date order, so a test that runs across midnight still sees
# one series of rows.
csv_file() {
	local f
	# shellcheck disable=SC2012
	f=$(ls -1 "$TCL_WORK/csv/$TCL_HOST/$1"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] 2>/dev/null | tail -n 1)
	[[ -n "$f" ]] || return 1
	echo "$f"
}

csv_exists() { csv_file "$1" >/dev/null; }

# Every data row of NAME, all days, oldest first (no headers).
_csv_data() {
	local f
	for f in "$TCL_WORK/csv/$TCL_HOST/$1"-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]; do
		[[ -f "$f" ]] && tail -n +2 "$f"
	done
	return 0
}

csv_rows() {
	_csv_data "$1" | wc -l
}

# Names (as the helpers take them) of the files matching PREFIX*, once
# each however many days they span: csv_names tcpconnlat-all/bucket-latency-
csv_names() {
	local f n
	for f in "$TCL_WORK/csv/$TCL_HOST/$1"*-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]; do
		[[ -f "$f" ]] || continue
		n=${f#"$TCL_WORK/csv/$TCL_HOST/"}
		echo "${n%-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]}"
	done | sort -u
}

# Connects a bucket-rate series (bucket-latency-*) carried in the rows after
# the first SKIP: each rate times the time since the previous row. The plugin
# divides an interval's count by the time between its two reads, and stamps
# the values with the second one, so rate x (time since the previous value) is
# the count (to the CSV's millisecond). The first row of a run has no row
# before it: Interval stands in (the tests make no connect before it).
csv_bucket_count() { # NAME SKIP
	_csv_data "$1" | awk -F, -v skip="$2" -v i="$TCL_INTERVAL" '
		NR > skip { s += $2 * (NR > 1 ? $1 - prev : i) }
		{ prev = $1 }
		END { printf "%.0f", s }'
}

# Last value; an integer for counters ("123"), as written for gauges ("nan").
csv_last() {
	csv_exists "$1" || return 1
	_csv_data "$1" | tail -n 1 | cut -d, -f2
}

# Rows after the first SKIP rows, one value per line.
csv_values_after() {
	_csv_data "$1" | tail -n +$(($2 + 1)) | cut -d, -f2
}

# Wait until NAME has at least N rows.
wait_rows() {
	wait_until "${3:-15}" "$2 rows of $1" _tcl_rows_at_least "$1" "$2"
}
_tcl_rows_at_least() { (($(csv_rows "$1") >= $2)); }

# Every failure says it (fail above): steal since the last mark (tcl_init
# sets one), and the load.
tcl_steal_note() {
	echo "$(tcl_steal_since); load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Wait until a counter's last value equals WANT.
wait_value() {
	_TCL_WAIT_LAST="csv_last '$1'"
	wait_until "${3:-15}" "$1 to reach $2" _tcl_value_is "$1" "$2"
	_TCL_WAIT_LAST=
}
_tcl_value_is() {
	local v
	v=$(csv_last "$1" 2>/dev/null) || return 1
	# numerically, so that a gauge's "0.000000" equals 0
	awk -v a="$v" -v b="$2" 'BEGIN { exit !(a == b + 0 && a ~ /^[-0-9.e+]+$/) }'
}

# BPF objects held through collectd's own fds: "prog_id:N", "map_id:N" lines.
tcl_collectd_bpf_ids() {
	[[ -n "$TCL_COLLECTD_PID" ]] || return 0
	{ grep -hsE '^(prog_id|map_id|link_id):' /proc/"$TCL_COLLECTD_PID"/fdinfo/* 2>/dev/null || true; } |
		tr -d '\t ' | sort -u
}

# Bytes the kernel accounts (memlock) for every BPF map collectd holds. One
# cat: a descriptor closed between the glob and the read (the CSV writer's)
# is skipped, where mawk, Debian's awk, would stop at the file it cannot open
# and print nothing (a soak sample once came out empty so).
tcl_maps_bytes() {
	{ cat /proc/"$TCL_COLLECTD_PID"/fdinfo/* 2>/dev/null || true; } |
		awk '/^pos:/ { m = 0 } /^memlock:/ { m = $2 } /^map_id:/ { s += m } END { print s + 0 }'
}

# Are any of the objects our collectd held (recorded at start) still alive?
_tcl_own_bpf_alive() {
	local item kind id
	for item in $TCL_OWN_BPF; do
		kind=${item%%:*} id=${item#*:}
		case $kind in
		prog_id) bpftool prog show id "$id" >/dev/null 2>&1 && return 0 ;;
		map_id) bpftool map show id "$id" >/dev/null 2>&1 && return 0 ;;
		link_id) bpftool link show id "$id" >/dev/null 2>&1 && return 0 ;;
		esac
	done
	return 1
}

# How many BPF programs and maps named like ours are loaded on the host
# (other collectds included).
tcl_progs_loaded() {
	local progs maps
	progs=$(bpftool prog list 2>/dev/null | grep -cE 'name tcl_(tp_btf|tracepoint|retransmit)' || true)
	maps=$(bpftool map list 2>/dev/null | grep -cE 'name tcl_(first_syn|stats|counters)' || true)
	echo $((progs + maps))
}

# No BPF object of ours left: if collectd still runs (a failed init), it
# holds no BPF fd; the programs, maps and links it held at start are gone
# (the kernel frees them asynchronously after the last fd closes: wait).
_tcl_no_bpf_left() {
	if collectd_alive && [[ -n "$(tcl_collectd_bpf_ids)" && -z "$TCL_OWN_BPF" ]]; then
		return 1
	fi
	! _tcl_own_bpf_alive
}
wait_no_bpf_left() {
	wait_until 10 "no tcpconnlat BPF program, map or link left ($1)" _tcl_no_bpf_left
}

# Test prerequisites: a missing tool or helper skips (fails under CI=true).
tcl_require_tools() { # TOOL...
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || tcl_skip_or_fail "$tool is not installed (scripts/deps.sh test)"
	done
}
tcl_require_helpers() { # BIN... (in TCL_TEST_BIN)
	local bin
	for bin in "$@"; do
		[[ -x "$TCL_TEST_BIN/$bin" ]] || tcl_skip_or_fail "test helper $TCL_TEST_BIN/$bin is not built (libnetfilter-queue-dev)"
	done
}

# A plugin built with --enable-sanitizers loads into collectd only with the
# sanitizer runtimes preloaded: tcl_sanitizer_env sets SAN_ENV, a command
# prefix for collectd_start (empty otherwise); no_sanitizer_reports fails on
# any report. Call after tcl_init.
tcl_sanitizer_env() {
	local san_rt
	SAN_ENV=()
	san_rt=$(ldd "$TCL_PLUGIN_DIR/tcpconnlat.so" 2>/dev/null | awk '/lib(asan|ubsan)\.so/ { print $3 }' | paste -sd' ' -)
	if [[ -n "$san_rt" ]]; then
		SAN_ENV=(env "LD_PRELOAD=$san_rt"
			"ASAN_OPTIONS=detect_leaks=1:log_path=$TCL_WORK/asan"
			"LSAN_OPTIONS=use_tls=0:print_suppressions=0:suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lsan.supp"
			"UBSAN_OPTIONS=print_stacktrace=1:log_path=$TCL_WORK/ubsan")
		note "the plugin is built with sanitizers: collectd runs with $san_rt preloaded"
	fi
}
no_sanitizer_reports() {
	local f
	for f in "$TCL_WORK"/asan.* "$TCL_WORK"/ubsan.*; do
		[[ -e "$f" ]] || continue
		cat "$f" >&2
		fail "sanitizer report in $f"
	done
}
