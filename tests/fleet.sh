#!/usr/bin/env bash
# A fleet: two collectd agents, each with the plugin and OwnNetnsOnly true,
# each in its own network namespace with its own Hostname and its own client
# traffic, send through collectd's network plugin to a central collectd. The
# central one writes to a real carbon-cache and a real InfluxDB (network
# plugin, Forward true) and serves write_prometheus. The test checks:
#   - per-host totals equal each host's connects, in every store;
#   - the fleet total (the README's InfluxQL) equals their sum;
#   - the fleet-wide percentiles computed from the bucket rates (the README's
#     query and computation) fall in the same bucket as the percentiles of
#     every client's own measured connect durations.
#
# Topology (all namespaces made by the test, addresses only inside them):
#   agent A (10.232.1.2) ──veth── servers (10.232.1.1, 10.232.2.1) ──veth── agent B (10.232.2.2)
# The servers' namespace holds carbon, influxd and the central collectd (on
# its loopback), and the listeners the agents' clients connect to. SYN-ACKs
# from two of those ports are held by nfq_delay (15 ms and 60 ms), so each
# host has its own known latencies.
set -euo pipefail
here=$(dirname "$0")
. "$here/lib/collectd.sh"
. "$here/lib/backends.sh"

be_require
command -v iptables >/dev/null || tcl_skip_or_fail "iptables is not installed"
[[ -x "$TCL_TEST_BIN/nfq_delay" ]] ||
	tcl_skip_or_fail "$TCL_TEST_BIN/nfq_delay is not built (needs libnetfilter-queue-dev)"
be_init

HOST_A=fleet-a.example
HOST_B=fleet-b.example
P_FAST=5001 P_A=5002 P_B=5003 P_CLOSED=5999
DELAY_A=15 DELAY_B=60 # ms
PROM_URL=http://127.0.0.1:9103/metrics

be_netns S
be_netns A
be_netns B
be_link "$A" tfa0 10.232.1.2 "$S" tfs1 10.232.1.1
be_link "$B" tfb0 10.232.2.2 "$S" tfs2 10.232.2.1

be_carbon_start "$S" 127.0.0.1 2003
be_influxd_start "$S" 127.0.0.1 25827

# The central collectd: receives from the agents, writes to every back end.
central="$(be_collectd_conf_head central central.example)
LoadPlugin network
<Plugin network>
  Listen \"0.0.0.0\" \"25826\"
  Server \"127.0.0.1\" \"25827\"
  Forward true
</Plugin>
<LoadPlugin write_graphite>
  FlushInterval 1
</LoadPlugin>
<Plugin write_graphite>
  <Node \"carbon\">
    Host \"127.0.0.1\"
    Port \"2003\"
    Protocol \"tcp\"
    StoreRates false
  </Node>
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host \"127.0.0.1\"
  Port \"9103\"
</Plugin>"
be_collectd_start central "$S" "$central"
wait_until 10 "the central collectd's network listener" be_udp_bound "$S" 25826

# Listeners, and the SYN-ACK delays of ports P_A and P_B.
be_listeners "$S" "$P_FAST" "$P_A:$DELAY_A" "$P_B:$DELAY_B"

# The agents: the plugin, counting only their own namespace, and the network
# plugin to the central collectd. Nothing else: they make no TCP connect.
agent_conf() { # NAME HOSTNAME SERVER_ADDR
	cat <<-EOF
		$(be_collectd_conf_head "$1" "$2")
		<LoadPlugin network>
		  FlushInterval 1
		</LoadPlugin>
		<Plugin network>
		  Server "$3" "25826"
		</Plugin>
		PluginDir "$TCL_PLUGIN_DIR"
		LoadPlugin tcpconnlat
		<Plugin tcpconnlat>
		  OwnNetnsOnly true
		</Plugin>
	EOF
}
be_collectd_start agent-a "$A" "$(agent_conf agent-a "$HOST_A" 10.232.1.1)"
be_collectd_start agent-b "$B" "$(agent_conf agent-b "$HOST_B" 10.232.2.1)"

# ---------------------------------------------------------------- queries

TOTAL_Q="FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'total_connections'"
# per-host totals: "host value" lines
influx_per_host() { # TYPE_INSTANCE
	be_influx_query "SELECT last(\"value\") $TOTAL_Q AND \"type_instance\" = '$1' GROUP BY \"host\"" |
		sed 's/^host=//' | tr '\t' ' ' | sort
}
influx_fleet() { # TYPE_INSTANCE: the README's fleet total
	be_influx_scalar "SELECT sum(\"last\") FROM (SELECT last(\"value\") $TOTAL_Q AND \"type_instance\" = '$1' GROUP BY \"host\")"
}
host_value() { awk -v h="$1" '$1 == h { print $2 + 0 }'; }

_first_data() {
	local t
	t=$(influx_per_host established)
	[[ -n $(host_value "$HOST_A" <<<"$t") && -n $(host_value "$HOST_B" <<<"$t") ]]
}
wait_until 20 "both agents' first values in InfluxDB, through the central collectd" _first_data
note "both agents report through the central collectd"

# ---------------------------------------------------------------- traffic

# Each host: fast connects, delayed ones, refused ones. Both hosts at once.
host_traffic() { # NS SERVER_ADDR N_FAST PORT N_SLOW N_REFUSED OUT
	local ns=$1 addr=$2 out=$7
	: >"$out"
	ip netns exec "$ns" "$TCL_TEST_BIN/tcpclient" connect -a "$addr" -p $P_FAST -n "$3" >>"$out" 2>>"$out.err"
	ip netns exec "$ns" "$TCL_TEST_BIN/tcpclient" connect -a "$addr" -p "$4" -n "$5" >>"$out" 2>>"$out.err"
	ip netns exec "$ns" "$TCL_TEST_BIN/tcpclient" connect -a "$addr" -p $P_CLOSED -n "$6" >>"$out" 2>>"$out.err"
}
FAST_A=20 SLOW_A=50 REF_A=4
FAST_B=10 SLOW_B=30 REF_B=6
host_traffic "$A" 10.232.1.1 $FAST_A $P_A $SLOW_A $REF_A "$TCL_WORK/clients-a" &
pid_a=$!
host_traffic "$B" 10.232.2.1 $FAST_B $P_B $SLOW_B $REF_B "$TCL_WORK/clients-b" &
pid_b=$!
wait "$pid_a" || fail "host A's clients failed: $(cat "$TCL_WORK/clients-a.err")"
wait "$pid_b" || fail "host B's clients failed: $(cat "$TCL_WORK/clients-b.err")"

count_result() { awk -v r="$2" '$1 == r { n++ } END { print n + 0 }' "$1"; }
EST_A=$(count_result "$TCL_WORK/clients-a" ok) REF_A_SEEN=$(count_result "$TCL_WORK/clients-a" refused)
EST_B=$(count_result "$TCL_WORK/clients-b" ok) REF_B_SEEN=$(count_result "$TCL_WORK/clients-b" refused)
[[ $EST_A == $((FAST_A + SLOW_A)) && $REF_A_SEEN == "$REF_A" ]] ||
	fail "host A's clients: $EST_A ok, $REF_A_SEEN refused; expected $((FAST_A + SLOW_A)) and $REF_A"
[[ $EST_B == $((FAST_B + SLOW_B)) && $REF_B_SEEN == "$REF_B" ]] ||
	fail "host B's clients: $EST_B ok, $REF_B_SEEN refused; expected $((FAST_B + SLOW_B)) and $REF_B"
note "host A made $EST_A established + $REF_A refused, host B $EST_B + $REF_B"

# ---------------------------------------------------------------- per-host and fleet totals

prom_host() { # FILE HOST TYPE_INSTANCE
	be_prom_value "$1" collectd_tcpconnlat_total_connections_total \
		"tcpconnlat=\"all\",type=\"$3\",instance=\"$2\"" || echo none
}
_totals_reached() {
	local ie ir prom=$TCL_WORK/prom.txt
	ie=$(influx_per_host established)
	ir=$(influx_per_host refused)
	be_prom_scrape "$S" "$PROM_URL" >"$prom" 2>/dev/null || return 1
	LAST="InfluxDB established: ${ie//$'\n'/ }, refused: ${ir//$'\n'/ };"
	LAST+=" Graphite A $(be_whisper_last "${HOST_A//./_}.tcpconnlat-all.total_connections-established")"
	LAST+=" B $(be_whisper_last "${HOST_B//./_}.tcpconnlat-all.total_connections-established");"
	LAST+=" Prometheus A $(prom_host "$prom" "$HOST_A" established) B $(prom_host "$prom" "$HOST_B" established)"
	[[ $(host_value "$HOST_A" <<<"$ie") == "$EST_A" && $(host_value "$HOST_B" <<<"$ie") == "$EST_B" ]] || return 1
	[[ $(host_value "$HOST_A" <<<"$ir") == "$REF_A" && $(host_value "$HOST_B" <<<"$ir") == "$REF_B" ]] || return 1
	local h want ti v host
	for h in A B; do
		for ti in established refused; do
			if [[ $h == A ]]; then host=$HOST_A; else host=$HOST_B; fi
			if [[ $ti == established ]]; then want=EST_$h; else want=REF_$h; fi
			want=${!want}
			v=$(be_whisper_last "${host//./_}.tcpconnlat-all.total_connections-$ti")
			awk -v a="$v" -v b="$want" 'BEGIN { exit !(a != "" && a + 0 == b) }' || return 1
			v=$(prom_host "$prom" "$host" "$ti")
			[[ $v == "$want" ]] || return 1
		done
	done
}
LAST=
be_wait 30 _totals_reached || fail "per-host totals not reached in 30 s: $LAST"
pass "per-host totals in InfluxDB, Graphite and Prometheus: $HOST_A $EST_A established / $REF_A refused, $HOST_B $EST_B / $REF_B"

fleet_est=$(influx_fleet established)
fleet_ref=$(influx_fleet refused)
awk -v a="$fleet_est" -v b="$((EST_A + EST_B))" -v c="$fleet_ref" -v d="$((REF_A + REF_B))" \
	'BEGIN { exit !(a + 0 == b && c + 0 == d) }' ||
	fail "fleet totals from InfluxDB: established $fleet_est (want $((EST_A + EST_B))), refused $fleet_ref (want $((REF_A + REF_B)))"
pass "fleet totals (README query): established $((EST_A + EST_B)) = $EST_A + $EST_B, refused $((REF_A + REF_B))"

# ---------------------------------------------------------------- fleet percentiles from buckets

# Every interval's bucket rates must have arrived: per host, rate x the time
# since the previous value, summed over time, equals that host's established
# total.
BUCKET_Q="FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'bucket' AND time > now() - 1h"
_buckets_complete() {
	local per
	per=$(be_influx_bucket_counts "\"instance\" = 'all' AND \"type\" = 'bucket' AND time > now() - 1h" |
		sed 's/^host=\([^,]*\),[^\t]*/\1/' | awk -F'\t' '{ s[$1] += $2 } END { for (h in s) print h, s[h] }')
	LAST="bucket counts per host: ${per//$'\n'/ }"
	awk -v a="$(host_value "$HOST_A" <<<"$per")" -v b="$(host_value "$HOST_B" <<<"$per")" \
		-v x="$EST_A" -v y="$EST_B" 'BEGIN { exit !(a != "" && b != "" && sprintf("%.0f", a) == x && sprintf("%.0f", b) == y) }'
}
be_wait 15 _buckets_complete || fail "per-host bucket counts never matched the totals: $LAST"
pass "per-host bucket counts equal per-host totals ($LAST)"

# The README's fleet query: connects per bucket over the whole fleet.
be_influx_query "SELECT sum(\"value\") * $TCL_INTERVAL $BUCKET_Q GROUP BY \"type_instance\"" |
	sed 's/^type_instance=//' | tr '\t' ' ' >"$TCL_WORK/fleet-buckets"
note "fleet buckets: $(awk '$2 > 0 { printf "%s=%.0f ", $1, $2 }' "$TCL_WORK/fleet-buckets")"
# What every client measured itself (ok connects, seconds).
awk '$1 == "ok" { printf "%.9f\n", $2 / 1e9 }' "$TCL_WORK/clients-a" "$TCL_WORK/clients-b" >"$TCL_WORK/durations"
# "Within the bucket resolution": the clients' own percentile lies in the
# bucket the estimate comes from, or at most one width of that bucket from
# the estimate (a connect close to an edge can fall on either side: the
# clients time connect() from user space, the plugin from the SYN to the
# SYN-ACK, within 1/32).
for p in 50 90 99; do
	read -r est lo hi < <(be_bucket_quantile "$p" <"$TCL_WORK/fleet-buckets") ||
		fail "no p$p from the fleet buckets"
	truth=$(be_nearest_rank "$p" <"$TCL_WORK/durations")
	if awk -v t="$truth" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(t >= lo && (hi == "inf" || t < hi)) }'; then
		pass "fleet p$p from buckets: $est s, bucket [$lo, $hi); the clients' own p$p: $truth s, same bucket"
	elif awk -v t="$truth" -v e="$est" -v lo="$lo" -v hi="$hi" 'BEGIN { d = t - e; if (d < 0) d = -d; exit !(hi != "inf" && d <= hi - lo) }'; then
		pass "fleet p$p from buckets: $est s, bucket [$lo, $hi); the clients' own p$p: $truth s, within one bucket width"
	else
		fail "fleet p$p: the buckets say $est s (bucket [$lo, $hi)), the clients measured $truth s"
	fi
done

# The README's p99 per host. With fewer than 100 connects in an interval,
# an interval's p99 is its slowest connect: at least the SYN-ACK delay that
# host's clients got, at most the slowest connect its clients measured
# (+ 1/32, the histogram's precision). The per-host p99s are not a fleet
# percentile (averaging them would say neither).
be_influx_query "SELECT max(\"value\") FROM \"tcpconnlat_value\" WHERE \"instance\" = 'all' AND \"type\" = 'latency' AND \"type_instance\" = 'percentile-99' AND time > now() - 1h GROUP BY \"host\"" >"$TCL_WORK/host-p99"
for h in A B; do
	if [[ $h == A ]]; then host=$HOST_A delay=$DELAY_A; else host=$HOST_B delay=$DELAY_B; fi
	got=$(awk -F'\t' -v h="host=$host" '$1 == h { print $2 }' "$TCL_WORK/host-p99")
	cmax=$(awk '$1 == "ok" { if ($2 > m) m = $2 } END { printf "%.9f", m / 1e9 }' "$TCL_WORK/clients-${h,,}")
	awk -v g="$got" -v d="$delay" -v m="$cmax" 'BEGIN { exit !(g != "" && g >= d / 1000 * (1 - 1 / 32) && g <= m * (1 + 1 / 32)) }' ||
		fail "per-host p99 (README query) of $host: $got s; expected between the ${delay} ms delay and the clients' slowest, $cmax s"
	pass "per-host p99 (README query) of $host: $got s (SYN-ACK delay ${delay} ms, clients' slowest $cmax s)"
done

# Graphite: every host's paths are there, with the host's dots escaped: as
# many as the documented values of "all" (tests/lib/backends.sh).
want=$(be_expected_values | wc -l)
for h in "$HOST_A" "$HOST_B"; do
	n=$(be_whisper_metrics "${h//./_}\.tcpconnlat-all\." | wc -l)
	[[ $n == "$want" ]] || fail "Graphite: $n paths under ${h//./_}.tcpconnlat-all, expected $want"
done
pass "Graphite: $want paths under each of ${HOST_A//./_}.tcpconnlat-all and ${HOST_B//./_}.tcpconnlat-all"
pass "fleet test done"
