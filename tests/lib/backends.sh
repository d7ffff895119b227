# shellcheck shell=bash
# shellcheck disable=SC2034 # BE_* variables are for the tests that source this
#
# tests/lib/backends.sh - real metric back ends for the tcpconnlat tests:
# carbon-cache (Graphite, whisper files), InfluxDB 1.x (its collectd
# listener) and collectd's own write_prometheus, each started by the test in
# network namespaces the test created, and queried back.
#
# Source tests/lib/collectd.sh first, then this file.
#
#   be_require                     skip (77) unless root, BTF, collectd, the plugin,
#                                  carbon-cache, whisper-fetch, influxd, curl and the
#                                  collectd writers; under CI=true a skip fails
#   be_init                        tcl_init with a work dir of its own
#                                  (/tmp/tcl-backends.XXXXXX) + cleanup traps;
#                                  call once, after be_require
#   be_netns VAR                   a fresh namespace (lo up, IPv6 DAD off), its name
#                                  in VAR; deleted on exit with everything in it
#   be_link NS1 IF1 ADDR1 NS2 IF2 ADDR2
#                                  veth pair, ADDRn/24 (IPv4) on each end, up
#   be_spawn NAME NS CMD...        CMD in namespace NS (or "-" for none) in the
#                                  background, stdout+stderr to $TCL_WORK/NAME.log,
#                                  tracked by PID; sets BE_PID
#   be_stop PID [TIMEOUT_S]        SIGTERM, SIGKILL after the deadline (default 10 s)
#   be_tcp_listening NS PORT / be_udp_bound NS PORT
#                                  something listens / is bound there (a condition)
#   be_wait TIMEOUT_S CMD...       poll CMD until true; returns 1 at the deadline
#   be_listeners NS PORT[:DELAY_MS]...
#                                  a tcpclient listener on each PORT in NS;
#                                  SYN-ACKs from a PORT given a DELAY_MS are held
#                                  that long (nfq_delay, queues 1, 2, ... in the
#                                  order given; rules in NS's OUTPUT chain)
#
#   be_carbon_start NS ADDR PORT   carbon-cache, whisper 1 s retention, line
#                                  receiver on ADDR:PORT (TCP); sets BE_WHISPER
#                                  (the whisper root); its log: $TCL_WORK/carbon.log
#   be_carbon_conns                connections carbon accepted so far (its log)
#   be_whisper_path METRIC         the .wsp file of a dotted metric path
#   be_whisper_values METRIC       "value" lines of every stored point (None skipped)
#   be_whisper_last METRIC         the newest stored value
#   be_whisper_metrics [PREFIX]    every metric path stored (dotted), sorted
#   be_whisper_dump                "metric value" for every stored point of every metric
#
#   be_influxd_start NS COLLECTD_ADDR COLLECTD_PORT
#                                  influxd, HTTP on 127.0.0.1:$BE_INFLUX_HTTP_PORT
#                                  inside NS, the collectd UDP listener on
#                                  COLLECTD_ADDR:COLLECTD_PORT, database "collectd"
#   be_influx_query QUERY          InfluxQL against "collectd"; prints the rows as
#                                  tab-separated lines: the series' tags
#                                  (k=v,k=v or "-") then the columns after time
#   be_influx_scalar QUERY         the first value of the first row ("" if none)
#   be_influx_bucket_counts WHERE  connects per bucket-rate series (rate x time
#                                  since its previous point), "tags<TAB>count"
#   be_influx_stat MODULE COLUMN   a counter of SHOW STATS FOR 'MODULE'
#
#   be_prom_scrape NS URL          GET URL from NS with curl (stdout)
#   be_prom_check_text FILE        every line of a Prometheus text exposition is
#                                  well-formed (prints the bad lines, returns 1)
#   be_prom_value FILE NAME LABELS the sample value of NAME{LABELS} (exact labels
#                                  text, e.g. 'tcpconnlat="all",type="established",instance="h"')
#
#   be_collectd_start NAME NS CONF wait until "Initialization complete" in
#                                  $TCL_WORK/NAME.collectd.log; sets BE_PID
#   be_collectd_conf_head NAME HOST
#                                  the common top of a collectd.conf (Hostname,
#                                  Interval $TCL_INTERVAL, logfile, stock PluginDir)
#
#   be_default_buckets             the 17 default bucket type instances (latency-LO_HI)
#   be_expected_values / be_expected_self
#                                  "TYPE TYPE_INSTANCE" of every value of plugin
#                                  instance all (default configuration) / the
#                                  required ones of self ($BE_SELF_RE: any self)
#
#   be_bucket_quantile P           stdin: "type_instance count" lines of bucket
#                                  names (latency-LO_HI) and counts; prints
#                                  "estimate lo hi" for the P-th percentile,
#                                  interpolated inside its bucket
#   be_nearest_rank P              stdin: one number per line; the P-th percentile
#                                  (nearest rank)
#
# Servers listen inside the test's own namespaces, so their ports are fixed
# (no clash with anything else on the host) and no traffic leaves them. Every
# process started here is stopped by PID on exit, even when the test fails,
# and then the namespaces are deleted.

BE_PY=/usr/bin/python3
BE_INFLUX_HTTP_PORT=${BE_INFLUX_HTTP_PORT:-8086}
BE_INFLUX_DB=collectd
BE_WHISPER=
_BE_PIDS=()
_BE_NETNS=()

be_require() {
	local p missing=()
	tcl_require_root
	for p in carbon-cache whisper-fetch influxd curl ip; do
		command -v "$p" >/dev/null || missing+=("$p")
	done
	[[ -x $BE_PY ]] || missing+=("$BE_PY")
	for p in write_graphite network write_prometheus logfile; do
		[[ -f "$TCL_STOCK_PLUGINDIR/$p.so" ]] || missing+=("$TCL_STOCK_PLUGINDIR/$p.so")
	done
	# write_prometheus loads only with these libraries installed
	if [[ -f "$TCL_STOCK_PLUGINDIR/write_prometheus.so" ]] &&
		ldd "$TCL_STOCK_PLUGINDIR/write_prometheus.so" 2>/dev/null | grep -q 'not found'; then
		missing+=("libraries of write_prometheus.so (libprotobuf-c1, libmicrohttpd12)")
	fi
	if ((${#missing[@]})); then
		tcl_skip_or_fail "missing: ${missing[*]} (scripts/deps.sh test installs them)"
	fi
}

_be_cleanup() {
	local i pid ns
	set +e
	for ((i = ${#_BE_PIDS[@]} - 1; i >= 0; i--)); do
		be_stop "${_BE_PIDS[i]}" 10
	done
	_BE_PIDS=()
	for ns in "${_BE_NETNS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns delete "$ns" 2>/dev/null || echo "# could not delete namespace $ns" >&2
	done
	_BE_NETNS=()
}

_be_on_exit() {
	local rc=$? f
	if [[ $rc -ne 0 && $rc -ne 77 ]]; then
		_TCL_FAILED=1
		for f in "$TCL_WORK"/*.collectd.log; do
			[[ -s $f ]] || continue
			echo "--- ${f##*/} (last 15 lines) ---" >&2
			tail -n 15 "$f" >&2
		done
	fi
	_be_cleanup
	tcl_cleanup
	exit "$rc"
}

be_init() {
	tcl_init
	# A work directory of its own name: sessions sharing this host clean up
	# leftover /tmp/tcpconnlat-test.* directories, and carbon, influxd and the
	# captures must keep their files for the whole run.
	local old=$TCL_WORK
	TCL_WORK=$(mktemp -d /tmp/tcl-backends.XXXXXX) || fail "mktemp"
	chmod 755 "$TCL_WORK"
	rmdir "$old" 2>/dev/null || true
	trap _be_on_exit EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

be_netns() {
	local name
	name="tcl-be-$$-$RANDOM-${#_BE_NETNS[@]}"
	ip netns add "$name" || fail "cannot create network namespace $name"
	_BE_NETNS+=("$name")
	ip netns exec "$name" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 >/dev/null 2>&1 || true
	ip -n "$name" link set lo up || fail "lo up in $name"
	printf -v "$1" %s "$name"
}

be_link() {
	local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6
	ip -n "$ns1" link add "$if1" type veth peer name "$if2" netns "$ns2" &&
		ip -n "$ns1" addr add "$a1/24" dev "$if1" &&
		ip -n "$ns2" addr add "$a2/24" dev "$if2" &&
		ip -n "$ns1" link set "$if1" up &&
		ip -n "$ns2" link set "$if2" up ||
		fail "veth $ns1/$if1 <-> $ns2/$if2"
	wait_until 10 "veth $if1 <-> $if2 up" _be_link_up "$ns1" "$if1" "$ns2" "$if2"
}
_be_link_up() {
	ip -n "$1" -o link show dev "$2" | grep -q 'state UP' &&
		ip -n "$3" -o link show dev "$4" | grep -q 'state UP'
}

be_spawn() {
	local name=$1 ns=$2
	shift 2
	if [[ $ns == - ]]; then
		"$@" >"$TCL_WORK/$name.log" 2>&1 </dev/null &
	else
		ip netns exec "$ns" "$@" >"$TCL_WORK/$name.log" 2>&1 </dev/null &
	fi
	BE_PID=$!
	_BE_PIDS+=("$BE_PID")
}

be_stop() {
	local pid=$1 timeout=${2:-10} i
	[[ -n "$pid" ]] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < timeout * 20; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			# a zombie child counts as gone
			[[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; then
			echo "# pid $pid ignored SIGTERM for ${timeout}s, killing it" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in "${_BE_PIDS[@]}"; do
		[[ $p == "$pid" ]] || keep+=("$p")
	done
	_BE_PIDS=("${keep[@]}")
	return 0
}

# be_wait TIMEOUT_S CMD...: poll CMD until it succeeds; 1 at the deadline
# (the caller says what failed, e.g. with the last values it saw).
be_wait() {
	local deadline
	deadline=$(($(_tcl_now_ms) + $1 * 1000))
	shift
	until "$@"; do
		(($(_tcl_now_ms) < deadline)) || return 1
		sleep 0.05
	done
}

be_listeners() {
	local ns=$1 pd p q=0
	shift
	for pd in "$@"; do
		p=${pd%%:*}
		be_spawn "listen-$p" "$ns" "$TCL_TEST_BIN/tcpclient" listen -a 0.0.0.0 -p "$p"
		wait_until 10 "listener on port $p" grep -q '^ready ' "$TCL_WORK/listen-$p.log"
	done
	for pd in "$@"; do
		[[ $pd == *:* ]] || continue
		q=$((q + 1))
		be_spawn "nfq-$q" "$ns" "$TCL_TEST_BIN/nfq_delay" -q "$q" -d "${pd#*:}"
		wait_until 10 "nfq_delay on queue $q" grep -q '^ready$' "$TCL_WORK/nfq-$q.log"
		ip netns exec "$ns" iptables -w -A OUTPUT -p tcp --sport "${pd%%:*}" \
			--tcp-flags SYN,ACK SYN,ACK -j NFQUEUE --queue-num "$q" --queue-bypass ||
			fail "iptables NFQUEUE rule in namespace $ns"
	done
}

_be_alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }

# A started server must stay up while the test waits for it.
_be_wait_server() { # PID NAME DESC CMD...
	local pid=$1 name=$2 desc=$3 deadline
	shift 3
	deadline=$(($(_tcl_now_ms) + 30000))
	until "$@"; do
		if ! _be_alive "$pid"; then
			echo "--- $name.log ---" >&2
			tail -n 30 "$TCL_WORK/$name.log" >&2
			fail "$name exited while waiting for: $desc"
		fi
		if (($(_tcl_now_ms) >= deadline)); then
			tail -n 30 "$TCL_WORK/$name.log" >&2
			fail "timed out after 30s waiting for: $desc"
		fi
		sleep 0.05
	done
}

be_tcp_listening() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null) ]]; }
be_udp_bound() { [[ -n $(ip netns exec "$1" ss -Hlun "sport = :$2" 2>/dev/null) ]]; }

# ---------------------------------------------------------------- carbon

be_carbon_start() {
	local ns=$1 addr=$2 port=$3 d=$TCL_WORK/carbon
	mkdir -p "$d/conf" "$d/storage/whisper" "$d/log" "$d/run"
	BE_WHISPER=$d/storage/whisper
	cat >"$d/conf/storage-schemas.conf" <<-EOF
		[everything_1s]
		pattern = .*
		retentions = 1s:30m
	EOF
	cat >"$d/conf/storage-aggregation.conf" <<-EOF
		[default]
		pattern = .*
		xFilesFactor = 0
		aggregationMethod = average
	EOF
	cat >"$d/conf/carbon.conf" <<-EOF
		[cache]
		GRAPHITE_ROOT = $d
		GRAPHITE_CONF_DIR = $d/conf
		CONF_DIR = $d/conf
		STORAGE_DIR = $d/storage
		LOCAL_DATA_DIR = $d/storage/whisper
		WHITELISTS_DIR = $d/storage/lists
		LOG_DIR = $d/log
		PID_DIR = $d/run
		ENABLE_LOGROTATION = False
		USER =
		MAX_CACHE_SIZE = inf
		MAX_UPDATES_PER_SECOND = inf
		MAX_CREATES_PER_MINUTE = inf
		LINE_RECEIVER_INTERFACE = $addr
		LINE_RECEIVER_PORT = $port
		ENABLE_UDP_LISTENER = False
		PICKLE_RECEIVER_INTERFACE = 127.0.0.1
		PICKLE_RECEIVER_PORT = 2004
		CACHE_QUERY_INTERFACE = 127.0.0.1
		CACHE_QUERY_PORT = 7002
		LOG_LISTENER_CONN_SUCCESS = True
		LOG_UPDATES = False
		LOG_CREATES = False
		LOG_CACHE_HITS = False
		LOG_CACHE_QUEUE_SORTS = False
		CACHE_WRITE_STRATEGY = sorted
		WHISPER_AUTOFLUSH = True
		ENABLE_TAGS = False
		CARBON_METRIC_INTERVAL = 0
	EOF
	be_spawn carbon "$ns" env GRAPHITE_ROOT="$d" GRAPHITE_STORAGE_DIR="$d/storage" \
		carbon-cache --config="$d/conf/carbon.conf" --nodaemon start
	BE_CARBON_PID=$BE_PID
	_be_wait_server "$BE_PID" carbon "carbon-cache listening on $addr:$port" \
		be_tcp_listening "$ns" "$port"
}

# Connections carbon accepted: with --nodaemon it logs to stdout, one
# "[listener] MetricLineReceiver connection with ADDR:PORT established" each.
be_carbon_conns() {
	grep -c '\[listener\] .* connection with .* established' "$TCL_WORK/carbon.log" || true
}

be_whisper_path() { echo "$BE_WHISPER/${1//.//}.wsp"; }

# Stored values, oldest first; empty slots (None) are left out.
be_whisper_values() {
	local f
	f=$(be_whisper_path "$1")
	[[ -f $f ]] || return 0
	whisper-fetch --from=$(($(date +%s) - 1800)) "$f" 2>/dev/null | awk '$2 != "None" { print $2 }'
}

be_whisper_last() { be_whisper_values "$1" | tail -n 1; }

# Every stored point of every metric (one python process): "metric value"
# lines, oldest first per metric; empty slots left out. Values are printed
# with repr(), so a NaN or an infinity stored in whisper shows as nan / inf.
be_whisper_dump() {
	"$BE_PY" - "$BE_WHISPER" <<-'EOF'
		import os, sys, time, whisper
		root = sys.argv[1]
		now = int(time.time())
		for d, _, files in sorted(os.walk(root)):
		    for f in sorted(files):
		        if not f.endswith('.wsp'):
		            continue
		        path = os.path.join(d, f)
		        metric = os.path.relpath(path, root)[:-4].replace(os.sep, '.')
		        (start, end, step), values = whisper.fetch(path, now - 1800, now + 1)
		        for v in values:
		            if v is not None:
		                print('%s %r' % (metric, v))
	EOF
}

be_whisper_metrics() {
	[[ -d $BE_WHISPER ]] || return 0
	(cd "$BE_WHISPER" && find . -name '*.wsp' | sed 's|^\./||; s|\.wsp$||; s|/|.|g' | sort) |
		grep -E "^${1:-}" || true
}

# ---------------------------------------------------------------- influxd

be_influxd_start() {
	local ns=$1 caddr=$2 cport=$3 d=$TCL_WORK/influxdb
	BE_INFLUX_NS=$ns
	mkdir -p "$d/meta" "$d/data" "$d/wal"
	cat >"$d/influxdb.conf" <<-EOF
		reporting-disabled = true
		bind-address = "127.0.0.1:8088"
		[meta]
		  dir = "$d/meta"
		[data]
		  dir = "$d/data"
		  wal-dir = "$d/wal"
		  query-log-enabled = false
		[monitor]
		  store-enabled = false
		[http]
		  enabled = true
		  bind-address = "127.0.0.1:$BE_INFLUX_HTTP_PORT"
		  log-enabled = false
		[continuous_queries]
		  enabled = false
		[subscriber]
		  enabled = false
		[[collectd]]
		  enabled = true
		  bind-address = "$caddr:$cport"
		  database = "$BE_INFLUX_DB"
		  typesdb = "/usr/share/collectd/types.db"
		  batch-size = 1
		  batch-pending = 10
		  batch-timeout = "100ms"
		  read-buffer = 0
	EOF
	be_spawn influxd "$ns" influxd run -config "$d/influxdb.conf"
	BE_INFLUXD_PID=$BE_PID
	_be_wait_server "$BE_PID" influxd "influxd answering /ping" _be_influx_ping
	_be_wait_server "$BE_PID" influxd "influxd's collectd listener on $caddr:$cport" \
		be_udp_bound "$ns" "$cport"
	# The collectd service creates its database itself, but only when the
	# first packet arrives; create it now so that earlier queries never fail.
	be_influx_post "CREATE DATABASE $BE_INFLUX_DB" >/dev/null
}

_be_influx_ping() {
	[[ $(ip netns exec "$BE_INFLUX_NS" curl -s -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$BE_INFLUX_HTTP_PORT/ping") == 204 ]]
}

be_influx_post() {
	ip netns exec "$BE_INFLUX_NS" curl -sS --max-time 10 -XPOST \
		"http://127.0.0.1:$BE_INFLUX_HTTP_PORT/query" --data-urlencode "q=$1"
}

# Raw JSON of a query (epoch seconds with fraction: epoch=ns).
be_influx_json() {
	ip netns exec "$BE_INFLUX_NS" curl -sS --max-time 10 -G \
		"http://127.0.0.1:$BE_INFLUX_HTTP_PORT/query" \
		--data-urlencode "db=$BE_INFLUX_DB" --data-urlencode "epoch=ns" \
		--data-urlencode "q=$1"
}

be_influx_query() {
	local json
	json=$(be_influx_json "$1") || return 1
	"$BE_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
for r in d.get("results", []):
    if "error" in r:
        sys.stderr.write("influx error: %s\n" % r["error"])
        sys.exit(1)
    for s in r.get("series", []):
        tags = s.get("tags") or {}
        t = ",".join("%s=%s" % (k, tags[k]) for k in sorted(tags)) or "-"
        skip = 1 if s.get("columns", [""])[0] == "time" else 0
        for row in s.get("values", []):
            print("\t".join([t] + ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row[skip:]]))
' "$json"
}

# be_influx_stat MODULE COLUMN: one counter of SHOW STATS (e.g. collectd
# droppedPointsInvalid), summed over the module's instances.
be_influx_stat() {
	local json
	json=$(be_influx_json "SHOW STATS FOR '$1'") || return 1
	"$BE_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
tot = 0
for r in d.get("results", []):
    for s in r.get("series", []):
        cols = s.get("columns", [])
        if sys.argv[2] in cols:
            for row in s.get("values", []):
                tot += row[cols.index(sys.argv[2])] or 0
print(tot)
' "$json" "$2"
}

be_influx_scalar() { be_influx_query "$1" | head -n 1 | cut -f2; }

# be_influx_bucket_counts WHERE: the connects each bucket-rate series carried
# after its first point, "host=H,type_instance=T<TAB>count" lines: each
# point's rate times the time since the series' previous point (the plugin
# divides by the time between its reads and stamps the values with the
# second). The first point has no previous one: the span of the first read
# (moments after the baseline at init) is not in the data.
be_influx_bucket_counts() {
	local json
	json=$(be_influx_json "SELECT \"value\" FROM \"tcpconnlat_value\" WHERE $1 GROUP BY \"host\", \"type_instance\"") || return 1
	"$BE_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
for r in d.get("results", []):
    if "error" in r:
        sys.stderr.write("influx error: %s\n" % r["error"])
        sys.exit(1)
    for s in r.get("series", []):
        tags = s.get("tags") or {}
        n, prev = 0.0, None
        for t, v in s.get("values", []):
            if v is not None and prev is not None:
                n += v * (t - prev) / 1e9
            prev = t
        print("%s\t%.3f" % (",".join("%s=%s" % (k, tags[k]) for k in sorted(tags)), n))
' "$json"
}

# ---------------------------------------------------------------- prometheus

be_prom_scrape() {
	ip netns exec "$1" curl -sS --max-time 10 "$2"
}

# Text exposition format 0.0.4: comments, blank lines, or
# name{label="value",...} value [timestamp_ms]
be_prom_check_text() {
	"$BE_PY" - "$1" <<-'EOF'
		import re, sys
		name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
		lval = r'"(?:[^"\\\n]|\\[\\"n])*"'
		label = r'[a-zA-Z_][a-zA-Z0-9_]*=' + lval
		# what Prometheus' parser accepts (Go's strconv.ParseFloat): the
		# special values in any case, a sign on Inf only ("-nan" is rejected)
		num = r'(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:inf|infinity)|(?i:nan))'
		line_re = re.compile(r'^' + name + r'(?:\{(?:' + label + r'(?:,' + label + r')*,?)?\})? ' + num + r'(?: -?[0-9]+)?$')
		bad = 0
		for ln in open(sys.argv[1]):
		    ln = ln.rstrip('\n')
		    if ln == '' or ln.startswith('#'):
		        continue
		    if not line_re.match(ln):
		        print('malformed exposition line: ' + ln)
		        bad += 1
		sys.exit(1 if bad else 0)
	EOF
}

be_prom_value() {
	awk -v want="$2{$3}" '$1 == want { print $2; found = 1; exit } END { exit !found }' "$1"
}

# ---------------------------------------------------------------- collectd

be_collectd_conf_head() { # NAME HOST
	cat <<-EOF
		Hostname "$2"
		FQDNLookup false
		Interval $TCL_INTERVAL
		BaseDir "$TCL_WORK/$1.base"
		PIDFile "$TCL_WORK/$1.collectd.pid"
		TypesDB "/usr/share/collectd/types.db"
		PluginDir "$TCL_STOCK_PLUGINDIR"
		LoadPlugin logfile
		<Plugin logfile>
		  LogLevel info
		  File "$TCL_WORK/$1.collectd.log"
		  Timestamp true
		</Plugin>
	EOF
}

be_collectd_start() { # NAME NS CONF_TEXT
	local name=$1 ns=$2
	mkdir -p "$TCL_WORK/$name.base"
	printf '%s\n' "$3" >"$TCL_WORK/$name.collectd.conf"
	: >"$TCL_WORK/$name.collectd.log"
	be_spawn "$name.collectd" "$ns" collectd -f -C "$TCL_WORK/$name.collectd.conf"
	_be_wait_server "$BE_PID" "$name.collectd" "collectd $name to finish its init" \
		grep -q "Initialization complete" "$TCL_WORK/$name.collectd.log"
}

# ---------------------------------------------------------------- names

# The type instances the plugin reports for plugin instance "all" with the
# default configuration (README, Metrics).
BE_DEFAULT_EDGES=(0 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05
	0.1 0.25 0.5 1 2.5 5 10 inf)
be_default_buckets() {
	local i
	for ((i = 0; i + 1 < ${#BE_DEFAULT_EDGES[@]}; i++)); do
		echo "latency-${BE_DEFAULT_EDGES[i]}_${BE_DEFAULT_EDGES[i + 1]}"
	done
}
# "TYPE TYPE_INSTANCE" of every value of plugin instance "all", then "self".
be_expected_values() {
	local p b r
	for p in percentile-50 percentile-90 percentile-99 percentile-99.9 average max; do
		echo "latency $p"
	done
	for r in established syn_retransmitted refused timeout unreachable aborted other local; do
		echo "total_connections $r"
	done
	for b in $(be_default_buckets); do
		echo "bucket $b"
	done
}
# Plugin instance "self" grows with the plugin: these four are required, and
# any other must look like TYPE-NAME (lowercase, digits, "_").
be_expected_self() {
	printf '%s\n' "gauge series" "derive filtered" "derive series_overflow" "derive stats_dropped"
}
BE_SELF_RE='[a-z]+-[a-z0-9_]+'

# ---------------------------------------------------------------- percentiles

# stdin: "latency-LO_HI COUNT" lines (any order; LO/HI in seconds, HI "inf").
# The P-th percentile: the first bucket, in edge order, where the running
# count reaches P% of the total, and a linear interpolation inside it (the
# same estimate as Prometheus' histogram_quantile). Prints "estimate lo hi".
be_bucket_quantile() {
	sed 's/^latency-//; s/_/ /' | sort -g -k1,1 | awk -v p="$1" '
		{ lo[NR] = $1; hi[NR] = $2; c[NR] = $3; total += $3 }
		END {
			if (total <= 0) exit 1
			rank = p / 100 * total; run = 0
			for (i = 1; i <= NR; i++) {
				if (c[i] > 0 && run + c[i] >= rank) {
					if (hi[i] == "inf") { printf "%s %s %s\n", lo[i], lo[i], hi[i]; exit 0 }
					printf "%.9g %s %s\n", lo[i] + (hi[i] - lo[i]) * (rank - run) / c[i], lo[i], hi[i]
					exit 0
				}
				run += c[i]
			}
			exit 1
		}'
}

be_nearest_rank() {
	sort -g | awk -v p="$1" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) exit 1
			r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1
			print v[r]
		}'
}
