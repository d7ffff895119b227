#!/usr/bin/env bash
# Makes a picture of tcpconnlat's data from a real run: builds the plugin,
# runs collectd with tcpconnlat and the rrdtool writer for a few minutes while
# connects with varied latencies and failures happen between two private
# network namespaces, then draws the RRD files with contrib/graphs.sh.
#
#   sudo contrib/demo-graphs.sh [OUTDIR]      (default: ./_graphs)
#
#   DEMO_SECONDS=N     length of the run (default 150)
#   DEMO_INTERVAL=N    collectd's Interval (default 2)
#   TCL_BUILD_DIR=DIR  build directory (default: ./_build)
#   TCL_NO_DEPS=1      do not apt-get install anything
#
# Latencies are real: the server namespace holds back its SYN-ACKs for a set
# time (iptables NFQUEUE and the test helper nfq_delay), drops SYNs for
# timeouts, answers with ICMP for unreachable, and has closed ports for
# refusals. collectd runs inside the client namespace with OwnNetnsOnly true,
# so only these connects are counted. Needs root. Nothing outside the two
# namespaces is touched; they are removed at the end, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out=$(mkdir -p "${1:-$top/_graphs}" && cd "${1:-$top/_graphs}" && pwd)
seconds=${DEMO_SECONDS:-150}
interval=${DEMO_INTERVAL:-2}
build=${TCL_BUILD_DIR:-$top/_build}

if [[ $(id -u) -ne 0 ]]; then
	echo "$0: run as root (it loads BPF programs and makes network namespaces)" >&2
	exit 1
fi

if [[ -z "${TCL_NO_DEPS:-}" ]]; then
	echo "demo-graphs: installing dependencies with apt-get ..."
	scripts/deps.sh demo
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		rrdtool librrd8 iptables libnetfilter-queue-dev python3 >/dev/null
fi

echo "demo-graphs: building in $build ..."
if [[ ! -x configure || configure.ac -nt configure || Makefile.am -nt configure ]]; then
	autoreconf -fi >/dev/null 2>&1
fi
mkdir -p "$build"
(
	cd "$build"
	[[ -f Makefile ]] || "$top/configure" --quiet
	make -j"$(nproc)" >/dev/null
	make tests/tcpclient >/dev/null
	# nfq_delay needs libnetfilter-queue: reconfigure if it was missing before
	if ! make tests/nfq_delay >/dev/null 2>&1; then
		"$top/configure" --quiet
		make -j"$(nproc)" >/dev/null
		make tests/nfq_delay >/dev/null
	fi
)

export TCL_TEST_BIN=$build/tests
# shellcheck source=tests/lib/netns.sh
. "$top/tests/lib/netns.sh"
bed_create

rrd=$out/rrd
rm -rf "$rrd"
mkdir -p "$rrd"
work=$BED_TMPDIR
stock=$(collectd -h | sed -n 's/^ *Plugin directory  *//p')
cat >"$work/collectd.conf" <<EOC
Hostname "demo"
FQDNLookup false
Interval $interval
BaseDir "$work"
PIDFile "$work/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
PluginDir "${stock:-/usr/lib/collectd}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$work/collectd.log"
</Plugin>
LoadPlugin rrdtool
<Plugin rrdtool>
  DataDir "$rrd"
</Plugin>
PluginDir "$build/src/.libs"
LoadPlugin tcpconnlat
<Plugin tcpconnlat>
  OwnNetnsOnly true
</Plugin>
EOC

# Servers: one port per latency, v4 and v6 listeners on each.
declare -A port
for name in fast d5 d20 d80 d300; do
	bed_listen 0 4
	port[$name]=$BED_LISTEN_PORT
done
bed_delay_synack "${port[d5]}" 5
bed_delay_synack "${port[d20]}" 20
bed_delay_synack "${port[d80]}" 80
bed_delay_synack "${port[d300]}" 300
port[refused]=1     # nothing listens there
port[timeout]=7     # SYNs dropped
port[unreach]=9     # ICMP host unreachable
bed_drop_syn "${port[timeout]}"
bed_reject_unreachable "${port[unreach]}"
bed_syn_retries 1   # a dropped SYN times out after about 3 s

bed_spawn client collectd collectd -f -C "$work/collectd.conf"
collectd_proc=$BED_LAST_PROC
bed_wait_line "$work/collectd.log" 'Initialization complete' 20 "$collectd_proc" || {
	cat "$work/collectd.log" >&2
	exit 1
}
grep 'tcpconnlat plugin:' "$work/collectd.log" || true

# One second of load: NAME=COUNT ... connects, each group in parallel.
load_pids=()
load() {
	local kv name n
	for kv in "$@"; do
		name=${kv%=*} n=${kv#*=}
		((n > 0)) || continue
		ip netns exec "$BED_CLIENT_NS" "$TCL_TEST_BIN/tcpclient" connect \
			-a "$BED_SERVER_V4" -p "${port[$name]}" -n "$n" -c "$n" -q \
			>/dev/null 2>&1 </dev/null &
		load_pids+=("$!")
	done
}

# Five phases, each a fifth of the run.
phase_of() { echo $(($1 * 5 / seconds)); }
start=$(date +%s)
echo "demo-graphs: collectd with tcpconnlat and the rrdtool writer; $seconds s of varied connects ..."
last=-1
while (($(date +%s) - start < seconds)); do
	p=$(phase_of $(($(date +%s) - start)))
	if ((p != last)); then
		case $p in
		0) echo "  phase 1: calm, fast connects" ;;
		1) echo "  phase 2: a slow backend (20 ms, 80 ms) and refusals" ;;
		2) echo "  phase 3: overload: most connects 20-300 ms, timeouts" ;;
		3) echo "  phase 4: a network outage: unreachable and timeouts" ;;
		*) echo "  phase 5: recovered" ;;
		esac
		last=$p
	fi
	case $p in
	0) load fast=30 d5=2 ;;
	1) load fast=25 d5=3 d20=6 d80=2 refused=2 ;;
	2) load fast=6 d5=3 d20=12 d80=8 d300=3 refused=3 timeout=1 ;;
	3) load fast=20 d5=2 d20=2 unreach=4 timeout=2 ;;
	*) load fast=30 d5=2 ;;
	esac
	sleep 1
done
end=$(date +%s)
for p in "${load_pids[@]}"; do
	wait "$p" 2>/dev/null || true
done
sleep $((interval * 2))   # the last interval reaches the RRD files
bed_stop "$collectd_proc" 10
bed_destroy

# the last interval is only partly covered by the load: leave it out
"$top/contrib/graphs.sh" -s "$start" -e $((end - interval)) -o "$out" "$rrd/demo"
echo "demo-graphs: the RRD files are in $rrd/demo, the graphs in $out"
