#!/usr/bin/env bash
# Installs what is needed, builds the plugin, and runs collectd in the
# foreground with it and the write_log writer, so that values show on this
# terminal: one short summary per interval. It makes a few loopback
# connections of its own every second (some to a closed port, to show
# failures). Ctrl-C stops everything.
#   DEMO_SECONDS=N   stop by itself after N seconds
#   DEMO_RAW=1       print write_log's own output instead of the summary
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [[ $(id -u) -ne 0 ]]; then
	echo "demo: run it as root (sudo $0): it installs packages and loads BPF programs" >&2
	exit 1
fi

echo "demo: installing the build dependencies and collectd with apt-get (the first time takes a few minutes) ..."
scripts/deps.sh demo

build=$top/_build
echo "demo: building the plugin in $build ..."
mkdir -p "$build"
if [[ ! -x configure || configure.ac -nt configure || Makefile.am -nt configure ]]; then
	autoreconf -fi >/dev/null 2>&1
fi
(cd "$build" && { [[ -f Makefile ]] || "$top/configure" --quiet; } &&
	make -j"$(nproc)" >/dev/null && make tests/tcpclient >/dev/null)

work=$(mktemp -d /tmp/tcpconnlat-demo.XXXXXX)
stock=$(collectd -h | sed -n 's/^ *Plugin directory  *//p')
format=JSON
[[ -z "${DEMO_RAW:-}" ]] || format=Graphite
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
  Format $format
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
  1. install it:     (cd _build && make install)
                     puts tcpconnlat.so into collectd's plugin directory and the
                     man page and example drop-in into /usr/local/share
                     (on Debian you can build a package instead: see README.md)
  2. a collectd:     apt-get install --no-install-recommends collectd
                     Debian's default collectd.conf writes RRD files with the
                     rrdtool writer and includes /etc/collectd/collectd.conf.d/*.conf
  3. enable it:      cp collectd.conf.d/tcpconnlat.conf /etc/collectd/collectd.conf.d/
                     edit it (every option is listed there with its default),
                     then: systemctl restart collectd
  4. pick a writer:  rrdtool (the default; draw it: contrib/graphs.sh
                     /var/lib/collectd/rrd/HOST), csv, write_graphite,
                     network (InfluxDB), write_prometheus
  5. read more:      man ./_build/src/collectd-tcpconnlat.5 and README.md
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

# --- the summary: write_log's JSON values, one block per interval -----------
# One interval's values arrive together; a pause of half a second ends a block.
summary() {
	local line v inst type ti block=() prev=() rc
	while :; do
		rc=0
		IFS= read -r -t 0.5 line || rc=$?
		if ((rc == 0)); then
			case $line in
			*'write_log values:' | '') continue ;;
			'[{'*)
				[[ $line =~ \"plugin\":\"tcpconnlat\" ]] || continue
				[[ $line =~ \"values\":\[([^],]*) ]] || continue
				v=${BASH_REMATCH[1]}
				[[ $line =~ \"plugin_instance\":\"([^\"]*)\" ]] && inst=${BASH_REMATCH[1]// /_}
				[[ $line =~ \"type\":\"([^\"]*)\" ]] && type=${BASH_REMATCH[1]}
				ti=
				[[ $line =~ \"type_instance\":\"([^\"]*)\" ]] && ti=${BASH_REMATCH[1]// /_}
				block+=("C ${inst:--} $type${ti:+-$ti} $v")
				;;
			*) echo "$line" ;;
			esac
			continue
		fi
		if ((${#block[@]})); then
			printf '%s\n' "${prev[@]}" "${block[@]}" | summary_block "$(date +%T)"
			prev=("${block[@]/#C/P}")
			block=()
		fi
		((rc > 128)) || break # EOF
	done
}
summary_block() {
	awk -v now="$1" '
	function lat(s) {
		if (s == "null" || s == "nan" || s == "") return "-"
		s += 0
		if (s < 0.001) return sprintf("%.1f µs", s * 1e6)
		if (s < 1) return sprintf("%.2f ms", s * 1e3)
		return sprintf("%.2f s", s)
	}
	function edge(x) {
		if (x == "inf") return "inf"
		x += 0
		if (x == 0) return "0"
		if (x < 0.001) return sprintf("%g µs", x * 1e6)
		if (x < 1) return sprintf("%g ms", x * 1e3)
		return sprintf("%g s", x)
	}
	$1 == "P" { prev[$2 " " $3] = $4; next }
	{
		if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
		val[$2 " " $3] = $4; names[$2] = names[$2] " " $3
	}
	END {
		split("established refused timeout unreachable aborted other", outcomes, " ")
		for (k = 1; k <= n; k++) {
			inst = order[k]
			m = split(names[inst], nm, " ")
			tot = ""; pct = ""; np = 0; nb = 0; zero = 0; self = ""; rest = ""
			for (o = 1; o <= 6; o++) {
				key = inst " total_connections-" outcomes[o]
				if (!(key in val)) continue
				d = (key in prev && val[key] != prev[key]) ? sprintf(" (+%d)", val[key] - prev[key]) : ""
				tot = tot sprintf("   %s %d%s", outcomes[o], val[key], d)
			}
			for (i = 1; i <= m; i++) {
				name = nm[i]; v = val[inst " " name]
				if (inst == "self") {
					sub(/^(gauge|derive)-/, "", name)
					self = self sprintf("   %s %g", name, v)
				} else if (name ~ /^latency-percentile-/) {
					p = substr(name, 20) + 0
					for (j = ++np; j > 1 && pv[j - 1] > p; j--) { pv[j] = pv[j - 1]; ps[j] = ps[j - 1] }
					pv[j] = p; ps[j] = v
				} else if (name ~ /^bucket-latency-/) {
					if (v + 0 == 0) { zero++; continue }
					split(substr(name, 16), e, "_")
					lo = e[1] + 0
					for (j = ++nb; j > 1 && bl[j - 1] > lo; j--) { bl[j] = bl[j - 1]; bs[j] = bs[j - 1] }
					bl[j] = lo; bs[j] = sprintf("%s-%s %g/s", edge(e[1]), edge(e[2]), v)
				} else if (name !~ /^(total_connections-|latency-(average|max)$)/) {
					rest = rest sprintf("   %s %s", name, v)
				}
			}
			for (j = 1; j <= np; j++) pct = pct sprintf("   p%g %s", pv[j], lat(ps[j]))
			if ((inst " latency-average") in val) pct = pct "   average " lat(val[inst " latency-average"])
			if ((inst " latency-max") in val) pct = pct "   max " lat(val[inst " latency-max"])
			printf "%s  tcpconnlat-%s\n", now, inst
			if (tot != "") printf "    totals   %s\n", tot
			if (pct != "") printf "    latency  %s\n", pct
			if (nb + zero > 0) {
				b = ""
				for (j = 1; j <= nb; j++) b = b "   " bs[j]
				printf "    buckets  %s   (%d more at 0/s)\n", (nb ? b : "   none"), zero
			}
			if (self != "") printf "    health   %s\n", self
			if (rest != "") printf "    other    %s\n", rest
		}
		fflush()
	}'
}

cat <<EOT
demo: collectd runs with tcpconnlat below, Interval 2 s. Every 2 s it reports
      the connects that finished in those 2 s: latency percentiles, average and
      max, connects per second per latency bucket, and the totals since start
      (+ this interval). This script makes 20 connects and 2 refused ones per
      second on loopback. The first report comes before anything was measured:
      NaN ("-") and zeros. Writers get the same values, named as in README.md
      (e.g. tcpconnlat-all/latency-percentile-99); DEMO_RAW=1 shows write_log's
      own output. Ctrl-C stops it.

EOT
run=(collectd -f -C "$work/collectd.conf")
[[ -z "${DEMO_SECONDS:-}" ]] || run=(timeout --foreground "$DEMO_SECONDS" "${run[@]}")
if [[ -n "${DEMO_RAW:-}" ]]; then
	"${run[@]}" || true
else
	"${run[@]}" | summary || true
fi
