#!/usr/bin/env bash
# Installs what is needed, builds the plugin, and runs collectd in the
# foreground with it and the write_log writer, so that values show on this
# terminal. It makes a few loopback connections of its own every second
# (some to a closed port, to show failures). Ctrl-C stops everything.
#   DEMO_SECONDS=N   stop by itself after N seconds
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/deps.sh demo

build=$top/_build
mkdir -p "$build"
autoreconf -fi >/dev/null 2>&1
(cd "$build" && "$top/configure" --quiet && make -j"$(nproc)" >/dev/null && make tests/tcpclient >/dev/null)

work=$(mktemp -d /tmp/tcpconnlat-demo.XXXXXX)
stock=$(collectd -h | sed -n 's/^ *Plugin directory  *//p')
cat >"$work/collectd.conf" <<EOC
Hostname "demo"
FQDNLookup false
Interval 2
BaseDir "$work"
PIDFile "$work/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
PluginDir "${stock:-/usr/lib/collectd}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
LoadPlugin write_log
<Plugin write_log>
  Format Graphite
</Plugin>
PluginDir "$build/src/.libs"
LoadPlugin tcpconnlat
<Plugin tcpconnlat>
  Percentile 50
  Percentile 99
</Plugin>
EOC

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
	cat <<'EON'

What next:
  - install it:   (cd _build && make install)   puts tcpconnlat.so in collectd's plugin directory
  - enable it:    cp collectd.conf.d/tcpconnlat.conf /etc/collectd/collectd.conf.d/
                  and restart collectd; every option is listed there with its default
  - pick a writer: csv, rrdtool, write_graphite, network (InfluxDB), write_prometheus
  - read more:    man ./_build/src/collectd-tcpconnlat.5 and README.md
EON
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build/tests/tcpclient" listen -a 127.0.0.1 -p 0 >"$work/listen" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$work/listen" && break; sleep 0.05; done
port=$(awk '/^ready/{print $2}' "$work/listen")
(
	while :; do
		"$build/tests/tcpclient" connect -a 127.0.0.1 -p "$port" -n 20 -q 2>/dev/null
		"$build/tests/tcpclient" connect -a 127.0.0.1 -p 1 -n 2 -q 2>/dev/null
		sleep 1
	done
) &
pids+=($!)

echo "demo: collectd with tcpconnlat; values every 2 s below (Ctrl-C to stop)"
if [[ -n "${DEMO_SECONDS:-}" ]]; then
	timeout --foreground "$DEMO_SECONDS" collectd -f -C "$work/collectd.conf" || true
else
	collectd -f -C "$work/collectd.conf"
fi
