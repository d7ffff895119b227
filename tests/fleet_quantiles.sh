#!/usr/bin/env bash
# fleet_quantiles.sh - BucketStyle "cumulative" in the three back ends, with
# the README's own configuration and queries (taken from README.md at run
# time, so that the two cannot drift apart):
#   - a real Prometheus scrapes two collectd agents' write_prometheus with the
#     README's prometheus.yml (only its targets and scrape_interval replaced)
#     and answers the README's PromQL: p50/p99 per host and across the hosts,
#     and the mean per host;
#   - a real carbon-cache and graphite-web answer the README's Graphite
#     target, and a real InfluxDB the README's InfluxQL query, each read by
#     contrib/histogram_quantile.py: p50/p99 across the hosts;
#   - Prometheus stopped for two collectd intervals while connects go on, then
#     started again: no connect is missing from the cumulative counts.
#
# Ground truth, independent of the plugin: a packet capture on each agent's
# veth (SYN out -> SYN-ACK in, tests/pcap_synlat.awk), and the clients' own
# clocks (CLOCK_MONOTONIC around a blocking connect()). Host A's connects get
# their SYN-ACK held 20 ms, host B's 60 ms (nfq_delay), A makes 3/5 of them:
# the fleet's p50 is an A connect and its p99 a B connect, which neither
# host alone has.
#
# Tolerance: the test's Bucket edges (5, 18, 26, 34, 58, 66, 74, 100 ms, +Inf)
# put the two delays (20.5 and 60.5 ms as connects take them here) in buckets
# of their own, 8 ms wide, with 8 ms buckets above them for the slower ones.
# histogram_quantile() (and the script, which does the same) interpolates
# linearly inside the bucket the rank falls in, so its answer lies in the
# bucket that holds the true quantile, and is as precise as that bucket is
# wide. So each estimate must lie
#   - in the bucket holding the capture's quantile (or in the neighbouring
#     one when that quantile is within 1/32 of the edge between them: the
#     kernel's histogram puts a connect on one side of an edge with that
#     precision, and its time is some 10-85 us longer than the wire's);
#   - in the bucket holding the clients' own quantile, or below it: a
#     client's connect() lasts longer than the kernel's handshake (the call,
#     and its wake-up after the SYN-ACK: tens of ms now and then on this
#     shared VM, which a p99 of 80 connects, their second slowest, shows).
#
# Topology (namespaces made by the test, addresses only inside them):
#   agent A (10.233.1.2) --veth-- S (10.233.1.1, 10.233.2.1) --veth-- agent B (10.233.2.2)
# S holds the listeners and their delays, carbon, graphite-web, influxd and
# Prometheus. The agents send to carbon (write_graphite) and InfluxDB
# (network) and serve write_prometheus for Prometheus to scrape.
#
# Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
here=$(dirname "$0")
. "$here/lib/collectd.sh"
. "$here/lib/backends.sh"

TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$here/.." && pwd)}
README=$TCL_SRCDIR/README.md
QUANTILE=$TCL_SRCDIR/contrib/histogram_quantile.py
GRAPHITE_APP=/usr/lib/python3/dist-packages/graphite

be_require
tcl_require_tools iptables tcpdump prometheus django-admin
[[ -d $GRAPHITE_APP ]] || tcl_skip_or_fail "graphite-web is not installed (scripts/deps.sh test)"
tcl_require_helpers tcpclient nfq_delay
be_init

HOST_A=fleet-a.example HOST_B=fleet-b.example
ADDR_A=10.233.1.2 ADDR_B=10.233.2.2 S_A=10.233.1.1 S_B=10.233.2.1
P_A=5002 P_B=5003
DELAY_A=20 DELAY_B=60 # ms
PROM=http://127.0.0.1:9090
GRAPHITE=http://127.0.0.1:8080

# ---------------------------------------------------------------- README

# The fenced block after "<!-- tested: NAME" in README.md.
readme_block() {
	awk -v tag="<!-- tested: $1 " '
		index($0, tag) == 1 { found = 1; next }
		found && /^```/ { if (inblock) exit; inblock = 1; next }
		inblock { print }' "$README"
}
PROM_YML=$(readme_block prometheus-config)
mapfile -t PROMQL < <(readme_block prometheus-queries)
GRAPHITE_TARGET=$(readme_block graphite-fleet)
INFLUXQL=$(readme_block influxdb-fleet | tr '\n' ' ')
[[ -n $PROM_YML && ${#PROMQL[@]} == 5 && -n $GRAPHITE_TARGET && -n $INFLUXQL ]] ||
	fail "README.md lacks a tested block (prometheus-config, 5 prometheus-queries, graphite-fleet, influxdb-fleet)"

# The README's prometheus.yml with this test's targets and interval.
grep -q '^ *scrape_interval: 10s' <<<"$PROM_YML" && grep -q '^ *- targets: \[' <<<"$PROM_YML" ||
	fail "the README's prometheus.yml has no 'scrape_interval: 10s' or '- targets: [' line to adapt"
sed -e "s/scrape_interval: 10s/scrape_interval: ${TCL_INTERVAL}s/" \
	-e "s/- targets: \[.*\]/- targets: [\"$ADDR_A:9103\", \"$ADDR_B:9103\"]/" \
	<<<"$PROM_YML" >"$TCL_WORK/prometheus.yml"

# ---------------------------------------------------------------- servers

be_netns S
be_netns A
be_netns B
be_link "$A" tqa0 "$ADDR_A" "$S" tqs1 "$S_A"
be_link "$B" tqb0 "$ADDR_B" "$S" tqs2 "$S_B"

be_carbon_start "$S" 0.0.0.0 2003
be_influxd_start "$S" 0.0.0.0 25826

# graphite-web's render API on the same whisper files (Django's own server)
mkdir -p "$TCL_WORK/graphite-web/py" "$TCL_WORK/graphite-web/log"
cat >"$TCL_WORK/graphite-web/py/tcl_graphite_settings.py" <<EOF
SECRET_KEY = 'tcpconnlat-test'
STORAGE_DIR = '$TCL_WORK/graphite-web'
WHISPER_DIR = '$BE_WHISPER'
STANDARD_DIRS = ['$BE_WHISPER']
LOG_DIR = '$TCL_WORK/graphite-web/log'
INDEX_FILE = '$TCL_WORK/graphite-web/index'
CARBONLINK_HOSTS = []
ALLOWED_HOSTS = ['*']
EOF
be_spawn graphite-web "$S" env GRAPHITE_SETTINGS_MODULE=tcl_graphite_settings \
	PYTHONPATH="$TCL_WORK/graphite-web/py" DJANGO_SETTINGS_MODULE=graphite.settings \
	"$BE_PY" "$(command -v django-admin)" runserver --noreload 127.0.0.1:8080
_graphite_up() { [[ $(ip netns exec "$S" curl -s -o /dev/null -w '%{http_code}' "$GRAPHITE/render") == 200 ]]; }
_be_wait_server "$BE_PID" graphite-web "graphite-web answering /render" _graphite_up

# Listeners, and the SYN-ACK delays of their ports.
be_listeners "$S" "$P_A:$DELAY_A" "$P_B:$DELAY_B"

# ---------------------------------------------------------------- agents

agent_conf() { # NAME HOSTNAME OWN_ADDR SERVER_ADDR
	cat <<-EOF
		$(be_collectd_conf_head "$1" "$2")
		<LoadPlugin write_graphite>
		  FlushInterval 1
		</LoadPlugin>
		<Plugin write_graphite>
		  <Node "carbon">
		    Host "$4"
		    Port "2003"
		    Protocol "tcp"
		    StoreRates false
		  </Node>
		</Plugin>
		<LoadPlugin network>
		  FlushInterval 1
		</LoadPlugin>
		<Plugin network>
		  Server "$4" "25826"
		</Plugin>
		LoadPlugin write_prometheus
		<Plugin write_prometheus>
		  Host "$3"
		  Port "9103"
		</Plugin>
		PluginDir "$TCL_PLUGIN_DIR"
		LoadPlugin tcpconnlat
		<Plugin tcpconnlat>
		  OwnNetnsOnly true
		  # write_graphite's own connection to carbon is not the test's
		  IgnoreRemotePort 2003
		  Inbound false
		  BucketStyle "cumulative"
		  Bucket 0 0.005
		  Bucket 0.005 0.018
		  Bucket 0.018 0.026
		  Bucket 0.026 0.034
		  Bucket 0.034 0.058
		  Bucket 0.058 0.066
		  Bucket 0.066 0.074
		  Bucket 0.074 0.1
		  Bucket 0.1 0
		</Plugin>
	EOF
}
EDGES=(0 0.005 0.018 0.026 0.034 0.058 0.066 0.074 0.1 inf)
be_collectd_start agent-a "$A" "$(agent_conf agent-a "$HOST_A" "$ADDR_A" "$S_A")"
be_collectd_start agent-b "$B" "$(agent_conf agent-b "$HOST_B" "$ADDR_B" "$S_B")"

# ---------------------------------------------------------------- Prometheus

prom_start() {
	be_spawn prometheus "$S" prometheus --config.file="$TCL_WORK/prometheus.yml" \
		--storage.tsdb.path="$TCL_WORK/prometheus-data" --web.listen-address=127.0.0.1:9090
	PROM_PID=$BE_PID
	_be_wait_server "$PROM_PID" prometheus "Prometheus ready" _prom_ready
}
_prom_ready() { [[ $(ip netns exec "$S" curl -s -o /dev/null -w '%{http_code}' "$PROM/-/ready") == 200 ]]; }

# prom_query QUERY [TIME]: "label=value,... value" lines of an instant query.
prom_query() {
	local json
	json=$(ip netns exec "$S" curl -sS --max-time 10 -G "$PROM/api/v1/query" \
		--data-urlencode "query=$1" ${2:+--data-urlencode "time=$2"}) || return 1
	"$BE_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
if d.get("status") != "success":
    sys.exit("prometheus: %s" % d.get("error"))
for r in d["data"]["result"]:
    m = r["metric"]
    print("%s %s" % (",".join("%s=%s" % (k, m[k]) for k in sorted(m)) or "*", r["value"][1]))
' "$json"
}
prom_scalar() { prom_query "$1" | awk 'NR == 1 { print $2 }'; }
prom_check_config() {
	ip netns exec "$S" curl -sS --max-time 10 "$PROM/api/v1/status/config" | grep -q 'tcpconnlat_latency_seconds_bucket' ||
		fail "Prometheus does not run the README's relabelling"
}

prom_start
prom_check_config
COUNT_Q='sum(tcpconnlat_latency_seconds_count{tcpconnlat="all"})'
_prom_has() { [[ $(prom_scalar "$COUNT_Q" 2>/dev/null) == "$1" && $(prom_query "$COUNT_Q" | wc -l) == 1 ]] &&
	[[ $(prom_query 'count(tcpconnlat_latency_seconds_count{tcpconnlat="all"})' | awk '{ print $2 }') == 2 ]]; }
_TCL_WAIT_LAST="prom_query 'tcpconnlat_latency_seconds_count' | tr '\n' ' '"
wait_until 30 "both agents' cumulative counters in Prometheus" _prom_has 0
_TCL_WAIT_LAST=
n=$(prom_query 'count by (instance) (tcpconnlat_latency_seconds_bucket{tcpconnlat="all"})' | awk '{ print $2 }' | sort -u)
[[ $n == 9 ]] || fail "Prometheus: expected 9 le buckets per host after the README's relabelling, got $n"
pass "Prometheus scrapes both agents through the README's configuration: 9 le buckets per host, count and sum"

# ---------------------------------------------------------------- traffic

# A capture on each agent's veth for the whole run: SYN out, SYN-ACK in.
for h in a b; do
	if [[ $h == a ]]; then ns=$A ifc=tqa0 port=$P_A; else ns=$B ifc=tqb0 port=$P_B; fi
	be_spawn "tcpdump-$h" "$ns" tcpdump -i "$ifc" -n -U -s 128 --time-stamp-precision=nano \
		-w "$TCL_WORK/cap-$h.pcap" "tcp port $port"
	wait_until 10 "tcpdump on $ifc" grep -q 'listening on' "$TCL_WORK/tcpdump-$h.log"
done
# wire-a, wire-b, wire-fleet: the handshake times (s) the captures hold so far
_wire_pairs() { # HOST
	tcpdump -r "$TCL_WORK/cap-$1.pcap" -n -tt --time-stamp-precision=nano 2>/dev/null |
		awk -f "$TCL_SRCDIR/tests/pcap_synlat.awk" 2>"$TCL_WORK/wire-$1.sum" |
		awk '{ printf "%.9f\n", $1 / 1e9 }' >"$TCL_WORK/wire-$1"
}
_wire_complete() {
	_wire_pairs a && _wire_pairs b &&
		(($(wc -l <"$TCL_WORK/wire-a") == OK_A && $(wc -l <"$TCL_WORK/wire-b") == OK_B))
}
wire_read() {
	_TCL_WAIT_LAST="cat '$TCL_WORK/wire-a.sum' '$TCL_WORK/wire-b.sum'"
	wait_until 15 "the captures holding all $OK_A + $OK_B handshakes" _wire_complete
	_TCL_WAIT_LAST=
	grep -q 'retrans=0 ' "$TCL_WORK/wire-a.sum" && grep -q 'retrans=0 ' "$TCL_WORK/wire-b.sum" ||
		fail "SYNs were retransmitted, the test bed is overloaded: $(cat "$TCL_WORK/wire-a.sum" "$TCL_WORK/wire-b.sum")"
	cat "$TCL_WORK/wire-a" "$TCL_WORK/wire-b" >"$TCL_WORK/wire-fleet"
}

# Each host's connects, both hosts at once; the clients' lines are appended.
traffic() { # N_A N_B
	ip netns exec "$A" "$TCL_TEST_BIN/tcpclient" connect -a "$S_A" -p $P_A -n "$1" -c 8 \
		>>"$TCL_WORK/clients-a" 2>>"$TCL_WORK/clients-a.err" &
	local pa=$!
	ip netns exec "$B" "$TCL_TEST_BIN/tcpclient" connect -a "$S_B" -p $P_B -n "$2" -c 8 \
		>>"$TCL_WORK/clients-b" 2>>"$TCL_WORK/clients-b.err" &
	local pb=$!
	wait "$pa" || fail "host A's clients failed: $(cat "$TCL_WORK/clients-a.err")"
	wait "$pb" || fail "host B's clients failed: $(cat "$TCL_WORK/clients-b.err")"
	OK_A=$(awk '$1 == "ok" { n++ } END { print n + 0 }' "$TCL_WORK/clients-a")
	OK_B=$(awk '$1 == "ok" { n++ } END { print n + 0 }' "$TCL_WORK/clients-b")
	[[ $(wc -l <"$TCL_WORK/clients-a") == "$OK_A" && $(wc -l <"$TCL_WORK/clients-b") == "$OK_B" ]] ||
		fail "not every connect succeeded: $(grep -hv '^ok' "$TCL_WORK/clients-a" "$TCL_WORK/clients-b" | head -n 3)"
	awk '{ printf "%.9f\n", $2 / 1e9 }' "$TCL_WORK/clients-a" >"$TCL_WORK/truth-a"
	awk '{ printf "%.9f\n", $2 / 1e9 }' "$TCL_WORK/clients-b" >"$TCL_WORK/truth-b"
	cat "$TCL_WORK/truth-a" "$TCL_WORK/truth-b" >"$TCL_WORK/truth-fleet"
	wire_read
}

# ---------------------------------------------------------------- checks

steal_note() {
	tcl_steal_note
}

# The configured bucket (lo, hi] holding X seconds.
bucket_of() {
	awk -v x="$1" -v e="${EDGES[*]}" 'BEGIN {
		n = split(e, E, " ")
		for (i = 1; i < n; i++) if (x > E[i] && (E[i + 1] == "inf" || x <= E[i + 1])) { print E[i], E[i + 1]; exit }
	}'
}

# The buckets a quantile X (seconds) may be counted in: its own, and its
# neighbour when X is within 1/32 of the edge between them ("lo hi" lines).
buckets_near() {
	awk -v x="$1" -v e="${EDGES[*]}" 'BEGIN {
		n = split(e, E, " ")
		for (i = 1; i < n; i++) {
			lo = E[i]; hi = E[i + 1]
			if (x > lo && (hi == "inf" || x <= hi)) print lo, hi
			else if (hi != "inf" && x > hi && x <= hi * (1 + 1 / 32)) print lo, hi
			else if (x > lo * (1 - 1 / 32) && x <= lo) print lo, hi
		}
	}'
}

# check_q LABEL Q ESTIMATE CAPTURE_FILE CLIENTS_FILE (see the tolerance above)
check_q() {
	local label est=$3 cap cl elo ehi clo chi rank
	rank=$(awk -v q="$2" 'BEGIN { print q * 100 }')
	label="$1 p$rank"
	cap=$(be_nearest_rank "$rank" <"$4")
	cl=$(be_nearest_rank "$rank" <"$5")
	awk -v x="$est" 'BEGIN { exit !(x ~ /^[0-9.e+-]+$/) }' ||
		fail "$label: no estimate ($est); the capture says $cap s"
	read -r elo ehi < <(bucket_of "$est")
	buckets_near "$cap" | grep -qx "$elo $ehi" ||
		fail "$label: $est s (bucket ($elo, $ehi]), the capture says $cap s (bucket ($(bucket_of "$cap" | tr ' ' ,)]); $(steal_note)"
	read -r clo chi < <(bucket_of "$cl")
	awk -v eh="$ehi" -v ch="$chi" 'BEGIN { exit !(ch == "inf" || (eh != "inf" && eh + 0 <= ch + 0)) }' ||
		fail "$label: $est s (bucket ($elo, $ehi]) is above the bucket ($clo, $chi] of the clients' own $cl s; $(steal_note)"
	pass "$label: $est s in ($elo, $ehi]; the capture's $cap s, the clients' own $cl s"
}

host_of() { sed -n "s/.*instance=\\([^, ]*\\).*/\\1/p"; }

# The README's five PromQL lines: per-host p50/p99, fleet p50/p99, mean.
check_promql() { # PHASE
	local line host est f i
	for i in 0 1; do
		prom_query "${PROMQL[i]}" >"$TCL_WORK/promql-$i"
		(($(wc -l <"$TCL_WORK/promql-$i") == 2)) || fail "PromQL ${PROMQL[i]}: expected one answer per host, got: $(cat "$TCL_WORK/promql-$i")"
		while read -r line est; do
			host=$(host_of <<<"$line")
			if [[ $host == "$HOST_A" ]]; then f=a; else f=b; fi
			check_q "$1: Prometheus, $host" "$([[ $i == 0 ]] && echo 0.5 || echo 0.99)" "$est" \
				"$TCL_WORK/wire-$f" "$TCL_WORK/truth-$f"
		done <"$TCL_WORK/promql-$i"
	done
	for i in 2 3; do
		est=$(prom_scalar "${PROMQL[i]}")
		check_q "$1: Prometheus, fleet" "$([[ $i == 2 ]] && echo 0.5 || echo 0.99)" "$est" \
			"$TCL_WORK/wire-fleet" "$TCL_WORK/truth-fleet"
	done
	# the mean: the kernel's exact sum over the count, so within 2 % (or
	# 0.2 ms) of the capture's mean (accuracy.sh's tolerance), and at least
	# the delay and at most the clients' own mean (connect() lasts longer)
	prom_query "${PROMQL[4]}" >"$TCL_WORK/promql-4"
	(($(wc -l <"$TCL_WORK/promql-4") == 2)) || fail "PromQL ${PROMQL[4]}: expected one answer per host, got: $(cat "$TCL_WORK/promql-4")"
	while read -r line est; do
		host=$(host_of <<<"$line")
		if [[ $host == "$HOST_A" ]]; then f=a d=$DELAY_A; else f=b d=$DELAY_B; fi
		cm=$(awk '{ s += $1 } END { printf "%.9f", s / NR }' "$TCL_WORK/truth-$f")
		wm=$(awk '{ s += $1 } END { printf "%.9f", s / NR }' "$TCL_WORK/wire-$f")
		awk -v m="$est" -v d="$d" -v c="$cm" -v w="$wm" 'BEGIN {
			t = 0.02 * w; if (t < 0.0002) t = 0.0002; e = m - w; if (e < 0) e = -e
			exit !(e <= t && m >= d / 1000 && m <= c + 0.0002) }' ||
			fail "$1: Prometheus mean of $host: $est s; the capture's mean $wm s, the clients' $cm s, the delay ${d} ms; $(steal_note)"
		pass "$1: Prometheus mean of $host: $est s (the capture's $wm s, the clients' $cm s, delay ${d} ms)"
	done <"$TCL_WORK/promql-4"
}

# ---------------------------------------------------------------- phase 1

traffic 120 80
TOTAL=$((OK_A + OK_B))
_TCL_WAIT_LAST="prom_scalar '$COUNT_Q'"
wait_until 20 "Prometheus counting all $TOTAL connects" _prom_has "$TOTAL"
_TCL_WAIT_LAST=
check_promql "$OK_A + $OK_B connects"

# ---------------------------------------------------------------- missed scrapes

# Prometheus stops; connects go on; the agents dispatch at least two
# intervals that nobody scrapes; Prometheus starts again on the same data.
t_stop=$(date +%s.%N)
be_stop "$PROM_PID"
traffic 30 20
TOTAL=$((OK_A + OK_B))
# what an agent serves: its count, and the time (ms) of that sample
_agent_sample() { # ADDR
	be_prom_scrape "$S" "http://$1:9103/metrics" 2>/dev/null |
		awk '/^collectd_tcpconnlat_derive_total\{.*type="latency-count"/ && /tcpconnlat="all"/ { print $2, $3 }'
}
_agents_ahead() {
	local ca ta cb tb
	read -r ca ta < <(_agent_sample "$ADDR_A") || return 1
	read -r cb tb < <(_agent_sample "$ADDR_B") || return 1
	awk -v ca="$ca" -v cb="$cb" -v ta="$ta" -v tb="$tb" -v na="$OK_A" -v nb="$OK_B" \
		-v t="$t_stop" -v i="$TCL_INTERVAL" \
		'BEGIN { exit !(ca == na && cb == nb && ta / 1000 >= t + 3.5 * i && tb / 1000 >= t + 3.5 * i) }'
}
wait_until 20 "both agents counting the connects made while Prometheus was down, 3.5 intervals on" _agents_ahead
t_restart=$(date +%s.%N)
prom_start
_TCL_WAIT_LAST="prom_scalar '$COUNT_Q'"
wait_until 20 "Prometheus counting all $TOTAL connects after its restart" _prom_has "$TOTAL"
_TCL_WAIT_LAST=
# Prometheus really missed those intervals: it holds no sample from after
# its stop until an interval before its start (its first scrape after the
# start brings the agents' last read, up to an interval old).
t_end=$(awk -v b="$t_restart" -v i="$TCL_INTERVAL" 'BEGIN { printf "%.3f", b - i - 0.25 }')
gap=$(awk -v a="$t_stop" -v b="$t_end" 'BEGIN { printf "%d", b - a - 0.25 }')
((gap >= 2 * TCL_INTERVAL)) || fail "Prometheus missed only $gap s of samples"
missed=$(prom_query "count_over_time(tcpconnlat_latency_seconds_count{tcpconnlat=\"all\"}[${gap}s])" "$t_end")
[[ -z $missed ]] || fail "Prometheus holds samples from the time it was down: $missed"
pass "missed scrapes: Prometheus without a sample for ${gap} s, the counts hold all $TOTAL connects ($OK_A + $OK_B) after its restart"
check_promql "after the missed scrapes, $OK_A + $OK_B connects"

# ---------------------------------------------------------------- Graphite

# The README's target; its "+Inf" series is the fleet's count.
graphite_json() {
	ip netns exec "$S" curl -sS --max-time 10 -G "$GRAPHITE/render" --data-urlencode from=-1h \
		--data-urlencode format=json --data-urlencode "target=$GRAPHITE_TARGET"
}
_count_of() { # stdin: JSON (Graphite or InfluxDB); the +Inf bucket's total
	"$BE_PY" -c '
import json, sys
d = json.load(sys.stdin)
if isinstance(d, list):
    print(sum(v for s in d if s["target"].endswith("le_+Inf") for v, _ in s["datapoints"] if v is not None))
else:
    print(sum(r[1] for res in d.get("results", []) for s in res.get("series", [])
              if s["tags"]["type_instance"].endswith("le_+Inf") for r in s["values"] if r[1] is not None))
'
}
_graphite_has() { [[ $(graphite_json | _count_of 2>/dev/null) == "$TOTAL"* ]]; }
_TCL_WAIT_LAST="graphite_json | _count_of"
wait_until 20 "graphite-web counting all $TOTAL connects (README target)" _graphite_has
_TCL_WAIT_LAST=
graphite_json | "$BE_PY" "$QUANTILE" 0.5 0.99 >"$TCL_WORK/graphite-q"
while read -r group q est; do
	[[ $group == "*" ]] || fail "Graphite: the README's target gave group $group, expected the fleet (*)"
	check_q "Graphite, fleet" "$q" "$est" "$TCL_WORK/wire-fleet" "$TCL_WORK/truth-fleet"
done <"$TCL_WORK/graphite-q"

# ---------------------------------------------------------------- InfluxDB

_influx_has() { [[ $(be_influx_json "$INFLUXQL" | _count_of 2>/dev/null) == "$TOTAL"* ]]; }
_TCL_WAIT_LAST="be_influx_json '$INFLUXQL' | _count_of"
wait_until 20 "InfluxDB counting all $TOTAL connects (README query)" _influx_has
_TCL_WAIT_LAST=
be_influx_json "$INFLUXQL" | "$BE_PY" "$QUANTILE" 0.5 0.99 >"$TCL_WORK/influx-q"
while read -r group q est; do
	[[ $group == "*" ]] || fail "InfluxDB: the README's query gave group $group, expected the fleet (*)"
	check_q "InfluxDB, fleet" "$q" "$est" "$TCL_WORK/wire-fleet" "$TCL_WORK/truth-fleet"
done <"$TCL_WORK/influx-q"

pass "fleet quantiles from the cumulative buckets in Prometheus, Graphite and InfluxDB ($(steal_note))"
