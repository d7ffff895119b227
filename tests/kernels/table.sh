#!/usr/bin/env bash
# tests/kernels/table.sh - the kernel matrix as Markdown, from the last run
# of each kernel (KERNEL_CACHE/results/*.tsv, written by tests/kernels/run.sh).
#
#   tests/kernels/table.sh KERNEL_CACHE            print the table
#   tests/kernels/table.sh --readme README KERNEL_CACHE
#                 replace the lines between "<!-- kernel-matrix:begin -->"
#                 and "<!-- kernel-matrix:end -->" in README with it
#
# A cell says "proven" only where the guest suite passed that check on that
# kernel; "limit" where the plugin refused with its one sentence on a kernel
# older than the documented minimum; "FAIL" otherwise. Notes below the table
# give each limit's sentence and each failure's reason.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readme=
if [[ ${1:-} == --readme ]]; then
	readme=$2
	shift 2
fi
kdir=${1:?usage: $0 [--readme README] KERNEL_CACHE}
shopt -s nullglob
files=("$kdir"/results/*.tsv)
((${#files[@]})) || { echo "table.sh: no results under $kdir/results: run make check-kernels first" >&2; exit 1; }

CHECKS=(load connect4 connect6 latency inbound shutdown passive leastpriv tracepoint)
declare -A TITLE=(
	[load]="loads (attach mode)" [connect4]="IPv4 counts" [connect6]="IPv6 counts"
	[latency]="delayed handshake" [inbound]="inbound" [shutdown]="clean stop"
	[passive]="passive (veth)" [leastpriv]="CAP_BPF+CAP_PERFMON" [tracepoint]="classic tracepoint")

render() {
	local f kernel cell c n=0 st detail mode key kv min
	declare -A NOTE_OF=() MIN_PROVEN=()
	local notes=() rows=()
	# one row per kernel, oldest kernel first, amd64 before arm64
	mapfile -t rows < <(for f in "${files[@]}"; do
		awk -F'\t' 'NR == 1 { print $4 "\t" $5 "\t" FILENAME }' "$f"
	done | sort -t$'\t' -k2,2 -k1,1V)
	printf '| Kernel | Arch | Debian package |'
	for c in "${CHECKS[@]}"; do printf ' %s |' "${TITLE[$c]}"; done
	printf '\n| --- | --- | --- |'
	for c in "${CHECKS[@]}"; do printf ' --- |'; done
	printf '\n'
	for kernel in "${rows[@]}"; do
		f=${kernel##*$'\t'}
		IFS=$'\t' read -r _ pkg ver uname arch _ <"$f"
		printf '| %s | %s | %s %s |' "$uname" "$arch" "$pkg" "$ver"
		for c in "${CHECKS[@]}"; do
			IFS=$'\t' read -r st detail < <(awk -F'\t' -v c="$c" '$6 == c { print $7 "\t" $8 }' "$f")
			case ${st:-} in
			proven)
				cell=proven
				if [[ $c == load ]]; then
					mode=$(sed -n 's/^attach mode //p' <<<"$detail")
					cell="proven ($mode)"
				fi
				kv=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$uname")
				if [[ -z "${MIN_PROVEN[$c]:-}" ]] ||
					[[ "$(printf '%s\n%s\n' "$kv" "${MIN_PROVEN[$c]}" | sort -V | head -n 1)" == "$kv" ]]; then
					MIN_PROVEN[$c]=$kv
				fi
				;;
			limit | fail)
				key="$st: $detail"
				if [[ -z "${NOTE_OF[$key]:-}" ]]; then
					n=$((n + 1))
					NOTE_OF[$key]=$n
					notes+=("$n. $key")
				fi
				if [[ $st == limit ]]; then cell="limit [${NOTE_OF[$key]}]"; else cell="**FAIL** [${NOTE_OF[$key]}]"; fi
				;;
			*) cell="not run" ;;
			esac
			printf ' %s |' "$cell"
		done
		printf '\n'
	done
	printf '\n| Check | Documented minimum | Oldest kernel proven above |\n| --- | --- | --- |\n'
	for c in "${CHECKS[@]}"; do
		min=$(awk -v c="$c" '$1 == c { print $2 }' "$here/minimums")
		[[ $min == 0 ]] && min=any
		printf '| %s | %s | %s |\n' "${TITLE[$c]}" "${min:-?}" "${MIN_PROVEN[$c]:-none}"
	done
	printf '\n'
	((${#notes[@]})) && printf '%s\n' "${notes[@]}"
	printf '\nFrom %s.\n' "$(awk -F'\t' '{ print $9 }' "${files[@]}" | sort -u | paste -sd',' - | sed 's/,/, /g')"
}

if [[ -z "$readme" ]]; then
	render
	exit 0
fi
if ! grep -q '^<!-- kernel-matrix:begin -->$' "$readme" || ! grep -q '^<!-- kernel-matrix:end -->$' "$readme"; then
	echo "table.sh: $readme has no kernel-matrix markers" >&2
	exit 1
fi
table=$(render)
T="$table" awk '
	/^<!-- kernel-matrix:begin -->$/ { print; print ""; print ENVIRON["T"]; print ""; skip = 1; next }
	/^<!-- kernel-matrix:end -->$/ { skip = 0 }
	!skip { print }' "$readme" >"$readme.new"
mv "$readme.new" "$readme"
echo "table.sh: $readme updated from $kdir/results"
