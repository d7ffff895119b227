# shellcheck shell=bash disable=SC2034 # (variables for the tests that source it)
#
# tests/lib/latency.sh - compare the plugin's per-interval figures with a
# ground truth taken outside the plugin: a packet capture on the client side,
# and the clients' own clocks.  Source tests/lib/collectd.sh and
# tests/lib/netns.sh first; collectd runs with the CSV writer, in the bed's
# client namespace.  Used by tests/accuracy.sh and tests/failure_reasons.sh.
#
# Reading the CSV (series names relative to DataDir/HOST, e.g.
# tcpconnlat-all/latency-average; every read dispatches every series once,
# so data row k of each series comes from the same read):
#   lat_row NAME ROW              value of data row ROW (1 = first)
#   lat_delta NAME ROW            counter at ROW minus counter at ROW - 1
#   lat_count NAME ROW            connects of a bucket series' row: its rate x
#                                 the time since the row before, rounded
#   lat_wait_rows ROW NAME...     wait until every series has ROW rows
#   lat_bucket_names              every bucket-latency-* series
#
# Ground truth:
#   lat_capture_start PORT        tcpdump on the client's veth (nanosecond
#                                 timestamps), TCP port PORT only
#   lat_capture_finish N OUT      wait until the capture holds N SYN/SYN-ACK
#                                 pairs, stop it, write the N handshake times
#                                 (ns, tests/pcap_synlat.awk) to OUT
#   lat_quantile FILE P           nearest-rank P-th percentile of the numbers in
#                                 FILE: the value at rank ceil(P/100 * n), as
#                                 the plugin defines it
#   lat_mean FILE / lat_max FILE / lat_ms NS / lat_sec_ms SECONDS
#
# Checks:
#   lat_close GOT_S WANT_NS       GOT (seconds) within 2 % or 0.2 ms of WANT (ns)
#   lat_not_above GOT_S CLIENT_NS GOT <= CLIENT x (1 + 1/64) + 1 us
#   lat_compare ROW TRUTH CLIENTS MODE
#                                 latency-percentile-50/90/99 and -average of
#                                 ROW against the capture TRUTH (lat_close) and
#                                 against the clients' durations CLIENTS
#                                 (lat_not_above; MODE "seq" also lat_close for
#                                 p50).  Sets LAT_LINE (the
#                                 figures) and LAT_BAD (what is out, or empty)
#   lat_check_buckets ROW TRUTH N LABEL
#                                 the buckets of ROW carry N connects, all in
#                                 buckets holding a measured duration (or one
#                                 within 1/32 of their edges: the precision of
#                                 an edge, and the kernel's time is a little
#                                 longer than the capture's), each bucket as
#                                 many as the ground truth unless a duration is
#                                 within 1/32 of its edges.  Sets LAT_BUCKETS
#
# Running a case in one interval:
#   lat_case N NEED RUN [SETUP] [TEARDOWN]
#                                 SETUP; unless the last read left at least
#                                 NEED seconds of the interval (CSV timestamps),
#                                 wait for a fresh read; RUN; TEARDOWN.  Then
#                                 check that the counters LAT_COUNTERS (default:
#                                 established) grew by exactly N between that
#                                 read and the next, i.e. the whole case landed
#                                 in one interval.  A case that straddled a read
#                                 (N counted over two intervals) is run again,
#                                 at most twice.  Sets LAT_ROW, the row of the
#                                 interval holding the case.
#
# Misc:
#   lat_syn_sent PORT             connects in SYN-SENT to PORT in the client ns
#   lat_setup                     root, tools and helpers checked, the bed
#                                 created, tcl_init, lat_private_work
#   lat_private_work              after tcl_init: move TCL_WORK to a directory
#                                 named /tmp/tcl-latency.XXXXXX

LAT_ALL=tcpconnlat-all
LAT_EST=$LAT_ALL/total_connections-established
LAT_REASONS=(refused timeout unreachable aborted other local)
LAT_AWK_DIR=${LAT_AWK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LAT_COUNTERS=$LAT_EST
LAT_CAP_PROC=
LAT_CAP_PCAP=
LAT_CAP_ERR=
LAT_ROW=
LAT_LINE=
LAT_BAD=
LAT_BUCKETS=

# ------------------------------------------------------------------ CSV

lat_row() {
	csv_exists "$1" || return 1
	_csv_data "$1" | sed -n "${2}p" | cut -d, -f2
}

lat_delta() {
	echo $(($(lat_row "$1" "$2") - $(lat_row "$1" $(($2 - 1)))))
}

lat_count() {
	_csv_data "$1" | awk -F, -v row="$2" -v i="$TCL_INTERVAL" '
		NR == row { printf "%.0f", $2 * (row > 1 ? $1 - prev : i); exit }
		{ prev = $1 }'
}

_lat_rows_ok() {
	local row=$1 n
	shift
	for n in "$@"; do
		(($(csv_rows "$n") >= row)) || return 1
	done
}
lat_wait_rows() {
	local row=$1
	shift
	wait_until $((TCL_INTERVAL + 15)) "row $row of $*" _lat_rows_ok "$row" "$@"
}

lat_bucket_names() {
	local f name
	for f in "$TCL_WORK/csv/$TCL_HOST/$LAT_ALL"/bucket-latency-*; do
		[[ -e "$f" ]] || continue
		name=${f#"$TCL_WORK/csv/$TCL_HOST/"}
		echo "${name%-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]}"
	done | sort -u
}

# ------------------------------------------------------------ statistics

lat_quantile() {
	sort -n "$1" | awk -v p="$2" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "nan"; exit }
			x = p / 100.0 * NR; r = int(x); if (r < x) r++
			if (r < 1) r = 1; if (r > NR) r = NR
			print v[r]
		}'
}
lat_mean() { awk '{ s += $1 } END { if (NR) printf "%.0f\n", s / NR; else print "nan" }' "$1"; }
lat_max() { sort -n "$1" | tail -n 1; }
lat_ms() { awk -v n="$1" 'BEGIN { printf "%.3f", n / 1e6 }'; }
lat_sec_ms() { awk -v g="$1" 'BEGIN { if (g ~ /^[0-9.e+-]+$/) printf "%.3f", g * 1e3; else print g }'; }

# |got - want| <= max(2 % of want, 0.2 ms)
lat_close() {
	awk -v g="$1" -v w="$2" 'BEGIN {
		if (g !~ /^[0-9.e+-]+$/) exit 1
		g *= 1e9; d = g - w; if (d < 0) d = -d
		tol = 0.02 * w; if (tol < 200000) tol = 200000
		exit !(d <= tol)
	}'
}

# The kernel's SYN_SENT -> ESTABLISHED lies inside the client's connect():
# the plugin may exceed the client's figure only by its bucket precision
# (1/64) and the CSV's rounding to 1 us.
lat_not_above() {
	awk -v g="$1" -v c="$2" 'BEGIN { exit !(g ~ /^[0-9.e+-]+$/ && g * 1e9 <= c * (1 + 1 / 64) + 1000) }'
}

_lat_diff() {
	awk -v g="$1" -v w="$2" 'BEGIN { if (g !~ /^[0-9.e+-]+$/ || w == 0) print "n/a"; else printf "%+.2f%%", (g * 1e9 - w) / w * 100 }'
}

lat_compare() {
	local row=$1 truth=$2 clients=$3 mode=$4 p got want cl truth_line client_line
	truth_line="plugin/capture"
	client_line="clients' clocks"
	LAT_BAD=
	for p in 50 90 99 avg max; do
		case $p in
		avg)
			got=$(lat_row "$LAT_ALL/latency-average" "$row")
			want=$(lat_mean "$truth")
			cl=$(lat_mean "$clients")
			;;
		max)
			got=$(lat_row "$LAT_ALL/latency-max" "$row")
			want=$(lat_max "$truth")
			cl=$(lat_max "$clients")
			;;
		*)
			got=$(lat_row "$LAT_ALL/latency-percentile-$p" "$row")
			want=$(lat_quantile "$truth" "$p")
			cl=$(lat_quantile "$clients" "$p")
			p=p$p
			;;
		esac
		truth_line+=" $p $(lat_sec_ms "$got")/$(lat_ms "$want") ($(_lat_diff "$got" "$want"))"
		client_line+=" $p $(lat_ms "$cl")"
		if [[ $p == max ]]; then
			# the histogram's precision for the top bucket: 1/32
			awk -v g="$got" -v w="$want" 'BEGIN { exit !(g ~ /^[0-9.e+-]+$/ && g * 1e9 <= w * (1 + 1 / 32) + 200000) }' ||
				LAT_BAD+=" max: plugin $(lat_sec_ms "$got") ms, capture $(lat_ms "$want") ms;"
			continue
		fi
		lat_close "$got" "$want" ||
			LAT_BAD+=" $p: plugin $(lat_sec_ms "$got") ms, capture $(lat_ms "$want") ms;"
		lat_not_above "$got" "$cl" ||
			LAT_BAD+=" $p: plugin $(lat_sec_ms "$got") ms above the clients' own $(lat_ms "$cl") ms;"
		# one at a time, the clients' median too (not their mean: a client
		# stalled once for tens of ms, as a busy VM does, moves it)
		if [[ $mode == seq && $p == p50 ]]; then
			lat_close "$got" "$cl" ||
				LAT_BAD+=" $p: plugin $(lat_sec_ms "$got") ms, clients' clocks $(lat_ms "$cl") ms;"
		fi
	done
	LAT_LINE="$truth_line ms; $client_line ms"
}

lat_check_buckets() {
	local row=$1 truth=$2 n=$3 label=$4 name range lo hi got want near total=0 held=0
	LAT_BUCKETS=
	while read -r name; do
		range=${name##*/bucket-latency-}
		lo=${range%_*}
		hi=${range#*_}
		got=$(lat_count "$name" "$row")
		# want: measured durations in [lo, hi); near: any within 1/32 of an edge
		read -r want near < <(awk -v lo="$lo" -v hi="$hi" '
			BEGIN { lo *= 1e9; inf = (hi == "inf"); if (!inf) hi *= 1e9 }
			{
				if ($1 >= lo && (inf || $1 < hi)) w++
				if ((lo > 0 && $1 >= lo * 31 / 32 && $1 < lo * 33 / 32) ||
				    (!inf && $1 >= hi * 31 / 32 && $1 < hi * 33 / 32)) n++
			}
			END { print w + 0, n + 0 }' "$truth")
		total=$((total + got))
		# a connect within the precision of an edge may land on either side
		if ((want > 0 || near > 0)); then
			held=$((held + got))
		fi
		if ((got > 0 || want > 0)); then
			LAT_BUCKETS+=" [$range] $got (truth $want)"
		fi
		if ((got != want && near == 0)); then
			fail "$label: bucket $range carries $got connects, the ground truth has $want there (none within 1/32 of its edges)"
		fi
	done < <(lat_bucket_names)
	((total == n)) || fail "$label: the buckets carry $total connects, expected $n:$LAT_BUCKETS"
	((held == n)) || fail "$label: the buckets holding the measured durations carry $held connects, expected $n:$LAT_BUCKETS"
}

# ------------------------------------------------------ one case, one interval

_lat_sum() { # ROW: sum of LAT_COUNTERS at ROW
	local s=0 c v
	for c in $LAT_COUNTERS; do
		v=$(lat_row "$c" "$1")
		s=$((s + v))
	done
	echo "$s"
}

_lat_fresh_read() { (($(csv_rows "$LAT_EST") > _LAT_R0)); }

# Seconds left before the next read: Interval minus the age of the last row.
_lat_time_left() {
	local f last
	f=$(csv_file "$LAT_EST") || {
		echo 0
		return 0
	}
	last=$(tail -n 1 "$f" | cut -d, -f1)
	awk -v last="$last" -v now="$(date +%s.%N)" -v i="$TCL_INTERVAL" \
		'BEGIN { if (last !~ /^[0-9.]+$/) print 0; else printf "%.3f\n", i - (now - last) }'
}

lat_case() {
	local n=$1 need=$2 run=$3 setup=${4:-:} teardown=${5:-:} attempt r e0 e1 e2
	# shellcheck disable=SC2086
	for attempt in 1 2 3; do
		$setup
		_LAT_R0=$(csv_rows "$LAT_EST")
		if awk -v l="$(_lat_time_left)" -v n="$need" 'BEGIN { exit !(l < n) }'; then
			wait_until $((TCL_INTERVAL + 15)) "a fresh read" _lat_fresh_read
		fi
		r=$(csv_rows "$LAT_EST")
		$run
		$teardown
		lat_wait_rows $((r + 1)) $LAT_COUNTERS
		e0=$(_lat_sum "$r")
		e1=$(_lat_sum $((r + 1)))
		if ((e1 - e0 == n)); then
			LAT_ROW=$((r + 1))
			return 0
		fi
		lat_wait_rows $((r + 2)) $LAT_COUNTERS
		e2=$(_lat_sum $((r + 2)))
		((e2 - e0 == n)) ||
			fail "$LAT_COUNTERS grew by $((e2 - e0)) over the two intervals after the case, but the clients made $n connects"
		note "the case straddled a read ($((e1 - e0)) + $((e2 - e1)) connects): running it again (attempt $((attempt + 1)))"
	done
	fail "the case did not fit in one interval of ${TCL_INTERVAL}s in 3 attempts"
}

# ---------------------------------------------------------------- capture

lat_capture_start() {
	local port=$1
	bed_spawn client "tcpdump-$port" tcpdump -i "$BED_CLIENT_IF" -n -U -s 128 \
		--time-stamp-precision=nano -w "$TCL_WORK/cap-$port.pcap" "tcp port $port"
	LAT_CAP_PROC=$BED_LAST_PROC
	LAT_CAP_ERR=$BED_LAST_ERR
	LAT_CAP_PCAP=$TCL_WORK/cap-$port.pcap
	bed_wait_line "$LAT_CAP_ERR" 'listening on' 10 "$LAT_CAP_PROC" ||
		fail "tcpdump did not start: $(cat "$LAT_CAP_ERR")"
}

# Handshake times (ns) per 4-tuple from the capture so far.
_lat_capture_pairs() {
	tcpdump -r "$LAT_CAP_PCAP" -n -tt --time-stamp-precision=nano 2>/dev/null |
		awk -f "$LAT_AWK_DIR/pcap_synlat.awk" >"$LAT_CAP_PCAP.dur" 2>"$LAT_CAP_PCAP.sum" || true
}
_lat_capture_has() {
	_lat_capture_pairs
	(($(wc -l <"$LAT_CAP_PCAP.dur") >= $1))
}

lat_capture_finish() {
	local n=$1 out=$2 got
	# tcpdump reads its ring buffer behind the traffic: wait for every pair
	wait_until 15 "$n SYN/SYN-ACK pairs in the capture ($(cat "$LAT_CAP_PCAP.sum" 2>/dev/null))" \
		_lat_capture_has "$n"
	bed_stop "$LAT_CAP_PROC"
	_lat_capture_pairs
	got=$(wc -l <"$LAT_CAP_PCAP.dur")
	((got == n)) || fail "the capture holds $got SYN/SYN-ACK pairs, expected $n ($(cat "$LAT_CAP_PCAP.sum"))"
	grep -q 'retrans=0 ' "$LAT_CAP_PCAP.sum" ||
		fail "SYNs were retransmitted, the bed is overloaded: $(cat "$LAT_CAP_PCAP.sum")"
	cp "$LAT_CAP_PCAP.dur" "$out"
}

# ------------------------------------------------------------------- misc

lat_syn_sent() {
	ip netns exec "$BED_CLIENT_NS" ss -Htn state syn-sent "( dport = :$1 )" | wc -l
}

# The prerequisites and the bed of a latency test: root, the tools and
# helpers, the two namespaces, a private work directory.
lat_setup() {
	tcl_require_root
	tcl_require_tools ip iptables ip6tables ss tcpdump chrt
	tcl_require_helpers tcpclient nfq_delay
	bed_create || fail "could not create the two-namespace test bed"
	tcl_init
	lat_private_work
}

# These tests run for minutes while other tests share the host; a clean-up
# of leftover /tmp/tcpconnlat-test.* directories by another session must not
# delete their CSV files in the middle of a run.
lat_private_work() {
	local old=$TCL_WORK
	TCL_WORK=$(mktemp -d /tmp/tcl-latency.XXXXXX) || fail "mktemp failed"
	chmod 755 "$TCL_WORK"
	rmdir "$old" 2>/dev/null || true
}
