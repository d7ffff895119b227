#!/bin/bash
# bed_selftest.sh - proves the network-namespace test bed (tests/lib/netns.sh)
# and its helpers (tcpclient, nfq_delay) before any plugin test relies on them.
#
# Needs root, iproute2, iptables/ip6tables with NFQUEUE, and the helper
# binaries in $TCL_TEST_BIN (default: this script's directory); builds nothing.
# Exit: 0 pass, 1 fail, 77 skip (a skip is a failure when CI=true).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${TCL_TEST_BIN:=$here}"
export TCL_TEST_BIN

skip() {
	if [[ "${CI:-}" == true ]]; then
		echo "FAIL: would skip, but CI=true: $*"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, iptables)"
for tool in ip iptables ip6tables sysctl awk; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed"
done
for bin in tcpclient nfq_delay; do
	[[ -x "$TCL_TEST_BIN/$bin" ]] || skip "helper $TCL_TEST_BIN/$bin not built (set TCL_TEST_BIN)"
done

# shellcheck source=lib/netns.sh
. "$here/lib/netns.sh"

failures=0
checks=0

pass() {
	checks=$((checks + 1))
	echo "PASS: $*"
}

fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL: $*"
}

# stats FILE RESULT -> "n median_ns min_ns max_ns" over the lines with RESULT
stats() {
	awk -v r="$2" '$1 == r { print $2 }' "$1" | sort -n | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print 0, -1, -1, -1; exit }
			if (NR % 2) med = v[(NR + 1) / 2]; else med = (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%d %.0f %.0f %.0f\n", NR, med, v[1], v[NR]
		}'
}

ms() { # ns -> ms with 3 decimals
	awk -v n="$1" 'BEGIN { printf "%.3f", n / 1e6 }'
}

# count FILE RESULT
count() {
	awk -v r="$1" '$1 == r { n++ } END { print n + 0 }' "$2"
}

# all_results FILE RESULT N: exactly N lines, all with RESULT
all_results() {
	local file=$1 want=$2 n=$3 total good
	total=$(wc -l <"$file")
	good=$(count "$want" "$file")
	[[ $total -eq $n && $good -eq $n ]]
}

# local_ok FILE CLIENT_ADDR: every ok line names the client address and a port
local_ok() {
	awk -v a="$2" '$1 == "ok" && ($3 != a || $4 !~ /^[0-9]+$/ || $4 == 0) { bad = 1 }
		END { exit bad }' "$1"
}

bed_create || { echo "FAIL: bed_create"; exit 1; }
echo "bed: client $BED_CLIENT_NS ($BED_CLIENT_V4, $BED_CLIENT_V6)," \
	"server $BED_SERVER_NS ($BED_SERVER_V4, $BED_SERVER_V6)"
out=$BED_TMPDIR/selftest
mkdir -p "$out"

family_addr() { # 4|6 -> server address
	if [[ $1 == 4 ]]; then echo "$BED_SERVER_V4"; else echo "$BED_SERVER_V6"; fi
}
family_client() {
	if [[ $1 == 4 ]]; then echo "$BED_CLIENT_V4"; else echo "$BED_CLIENT_V6"; fi
}

# ---------------------------------------------------------------- baseline
bed_listen 0 || { echo "FAIL: listener"; exit 1; }
base_port=$BED_LISTEN_PORT
for fam in 4 6; do
	f=$out/base-v$fam
	bed_connect "$(family_addr $fam)" "$base_port" -n 11 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" ok)
	if all_results "$f" ok 11 && local_ok "$f" "$(family_client $fam)"; then
		pass "IPv$fam no delay: 11/11 ok, median $(ms "$med") ms (min $(ms "$min"), max $(ms "$max"))"
	else
		fail "IPv$fam no delay: $(cat "$f.err")"
	fi
done

# ------------------------------------------------------------ SYN-ACK delay
declare -A delay_port=()
for d in 5 20 100; do
	bed_listen 0 || { echo "FAIL: listener"; exit 1; }
	delay_port[$d]=$BED_LISTEN_PORT
	bed_delay_synack "$BED_LISTEN_PORT" "$d" || { echo "FAIL: bed_delay_synack $d"; exit 1; }
done

for fam in 4 6; do
	for d in 5 20 100; do
		lo=$((d * 1000000))
		hi=$(((d + 3) * 1000000))
		for mode in sequential concurrent; do
			f=$out/delay-v$fam-$d-$mode
			if [[ $mode == sequential ]]; then
				nconn=11
				bed_connect "$(family_addr $fam)" "${delay_port[$d]}" -n $nconn >"$f" 2>"$f.err"
			else
				nconn=32
				bed_connect "$(family_addr $fam)" "${delay_port[$d]}" -n $nconn -c 32 >"$f" 2>"$f.err"
			fi
			read -r n med min max < <(stats "$f" ok)
			what="IPv$fam delay $d ms $mode (n=$nconn): median $(ms "$med") ms (min $(ms "$min"), max $(ms "$max"))"
			if ! all_results "$f" ok "$nconn"; then
				fail "$what: not all ok: $(cat "$f.err")"
			elif ((med < lo || med > hi)); then
				fail "$what: median outside [$d, $((d + 3))] ms"
			elif ! local_ok "$f" "$(family_client $fam)"; then
				fail "$what: bad local address/port in output"
			else
				pass "$what"
			fi
		done
	done
done

# every 2nd SYN-ACK delayed: sequential connects alternate fast / slow
bed_listen 0 4 || { echo "FAIL: listener"; exit 1; }
every_port=$BED_LISTEN_PORT
bed_delay_synack "$every_port" 50 2 || { echo "FAIL: bed_delay_synack --every"; exit 1; }
f=$out/every
bed_connect "$BED_SERVER_V4" "$every_port" -n 10 >"$f" 2>"$f.err"
pattern=$(awk '{ printf "%s", ($1 == "ok" ? ($2 >= 50e6 ? "S" : "F") : "x") }' "$f")
if [[ "$pattern" == FSFSFSFSFS ]]; then
	pass "IPv4 delay 50 ms --every 2: pattern $pattern (F < 50 ms <= S)"
else
	fail "IPv4 delay 50 ms --every 2: pattern '$pattern', want FSFSFSFSFS"
fi

# ---------------------------------------------------------------- refused
closed_port=1
for fam in 4 6; do
	f=$out/refused-v$fam
	bed_connect "$(family_addr $fam)" "$closed_port" -n 3 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" refused)
	if all_results "$f" refused 3; then
		pass "IPv$fam closed port: 3/3 refused, median $(ms "$med") ms"
	else
		fail "IPv$fam closed port: $(tr '\n' ' ' <"$f") $(cat "$f.err")"
	fi
done

# ------------------------------------------------------------ unreachable
reject_port=2
bed_reject_unreachable "$reject_port" || { echo "FAIL: bed_reject_unreachable"; exit 1; }
for fam in 4 6; do
	f=$out/unreach-v$fam
	bed_connect "$(family_addr $fam)" "$reject_port" -n 3 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" unreachable)
	if all_results "$f" unreachable 3 && ((max < 500000000)); then
		pass "IPv$fam REJECT icmp unreachable: 3/3 unreachable, median $(ms "$med") ms"
	else
		fail "IPv$fam REJECT icmp unreachable: $(tr '\n' ' ' <"$f") $(cat "$f.err")"
	fi
done

# ---------------------------------------------------------------- aborted
bed_listen 0 || { echo "FAIL: listener"; exit 1; }
abort_port=$BED_LISTEN_PORT
bed_delay_synack "$abort_port" 300 || { echo "FAIL: bed_delay_synack 300"; exit 1; }
for fam in 4 6; do
	f=$out/abort-v$fam
	bed_connect "$(family_addr $fam)" "$abort_port" -n 3 --abort-after-ms 50 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" aborted)
	if all_results "$f" aborted 3 && ((min >= 50000000 && max < 80000000)); then
		pass "IPv$fam --abort-after-ms 50 with SYN-ACK held 300 ms: 3/3 aborted after $(ms "$min")..$(ms "$max") ms"
	else
		fail "IPv$fam --abort-after-ms 50: $(tr '\n' ' ' <"$f") $(cat "$f.err")"
	fi
	# a connect that completes before the abort point is reported ok
	f=$out/abort-late-v$fam
	bed_connect "$(family_addr $fam)" "${delay_port[5]}" -n 3 --abort-after-ms 1000 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" ok)
	if all_results "$f" ok 3 && ((med >= 5000000 && med <= 8000000)); then
		pass "IPv$fam --abort-after-ms 1000 on a 5 ms path: 3/3 ok, median $(ms "$med") ms"
	else
		fail "IPv$fam --abort-after-ms 1000 on a 5 ms path: $(tr '\n' ' ' <"$f")"
	fi
done

# ---------------------------------------------------------------- timeouts
drop_port=3
bed_drop_syn "$drop_port" || { echo "FAIL: bed_drop_syn"; exit 1; }
for fam in 4 6; do
	f=$out/owntimeout-v$fam
	bed_connect "$(family_addr $fam)" "$drop_port" -n 2 -t 200 >"$f" 2>"$f.err"
	read -r n med min max < <(stats "$f" timeout)
	if all_results "$f" timeout 2 && ((min >= 200000000 && max < 300000000)); then
		pass "IPv$fam SYN dropped, -t 200: 2/2 timeout after $(ms "$min")..$(ms "$max") ms"
	else
		fail "IPv$fam SYN dropped, -t 200: $(tr '\n' ' ' <"$f") $(cat "$f.err")"
	fi
done

# kernel timeout: tcp_syn_retries=1 -> SYN, one retransmit after 1 s, ETIMEDOUT
# after 1 + 2 s.  Both families at once to keep it short.
bed_syn_retries 1 || { echo "FAIL: bed_syn_retries"; exit 1; }
declare -A tproc=() tout=()
for fam in 4 6; do
	bed_spawn client "kto-v$fam" "$TCL_TEST_BIN/tcpclient" connect -a "$(family_addr $fam)" \
		-p "$drop_port" -n 1
	tproc[$fam]=$BED_LAST_PROC
	tout[$fam]=$BED_LAST_OUT
done
for fam in 4 6; do
	# deadline: 3 s expected, 10 s hard limit
	if ! bed_wait_exit "${tproc[$fam]}" 10; then
		fail "IPv$fam SYN dropped, tcp_syn_retries=1: no result after 10 s"
		continue
	fi
	f=${tout[$fam]}
	read -r n med min max < <(stats "$f" timeout)
	if all_results "$f" timeout 1 && ((min >= 2500000000 && max <= 4500000000)); then
		pass "IPv$fam SYN dropped, tcp_syn_retries=1: timeout after $(ms "$min") ms"
	else
		fail "IPv$fam SYN dropped, tcp_syn_retries=1: $(tr '\n' ' ' <"$f")"
	fi
done
bed_syn_retries 6

# ------------------------------------------------------------ nfq_delay exit
nfq_err=$(ls "$BED_TMPDIR"/nfq_delay-q1.*.err)
bed_undelay_synack "${delay_port[5]}"
if grep -Eq '^nfq_delay: packets=[0-9]+ delayed=[0-9]+$' "$nfq_err"; then
	pass "nfq_delay exits cleanly on SIGTERM ($(cat "$nfq_err"))"
else
	fail "nfq_delay exit: $(cat "$nfq_err")"
fi

# ---------------------------------------------------------------- cleanup
client_ns=$BED_CLIENT_NS
server_ns=$BED_SERVER_NS
pids=("${_BED_PIDS[@]}")
bed_destroy
leftover=""
for ns in "$client_ns" "$server_ns"; do
	[[ -e "/run/netns/$ns" ]] && leftover+=" namespace $ns"
done
for p in "${pids[@]}"; do
	_bed_alive "$p" && leftover+=" pid ${p%%:*}"
done
if [[ -z "$leftover" ]]; then
	pass "bed_destroy: namespaces and ${#pids[@]} processes gone"
else
	fail "bed_destroy left:$leftover"
fi

echo "bed_selftest: $((checks - failures))/$checks checks passed"
((failures == 0)) || exit 1
exit 0
