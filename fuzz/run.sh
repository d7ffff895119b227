#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each one for a
# bounded time, starting from the corpus in fuzz/corpus/ (never written to:
# new inputs go to a scratch corpus in the build directory).
#
#   fuzz/run.sh [TARGET...]        TARGET: config, labels, notify (default: all)
#
# Environment:
#   FUZZ_SECONDS (30)    run time of each target
#   FUZZ_BUILD           build and scratch directory (default: a temporary one,
#                        removed afterwards unless a target failed)
#   FUZZ_MERGE=1         afterwards, merge the inputs that add coverage into
#                        fuzz/corpus/TARGET (for maintainers; then commit them)
#   CLANG (clang), COLLECTD_CPPFLAGS (Debian's collectd-dev headers)
#
# Exit: 0 no finding, 1 a finding (the input is kept as FUZZ_BUILD/crash-*
# and printed in base64), 77 clang's libFuzzer runtime is missing (under
# CI=true that is a failure). Debian 12: apt-get install clang libclang-rt-14-dev
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-30}
CLANG=${CLANG:-clang}
COLLECTD_CPPFLAGS=${COLLECTD_CPPFLAGS:--DHAVE_CONFIG_H -I/usr/include/collectd/core/daemon -I/usr/include/collectd/core -I/usr/include/collectd}
targets=("$@")
((${#targets[@]})) || targets=(config labels notify)

skip() {
	if [[ "${CI:-}" == true ]]; then
		echo "FAIL (CI=true): $*" >&2
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

command -v "$CLANG" >/dev/null || skip "$CLANG is not installed"
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
	rm -rf "$probe"
	skip "$CLANG cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev)"
fi
rm -rf "$probe"

keep=0
if [[ -n "${FUZZ_BUILD:-}" ]]; then
	build=$FUZZ_BUILD
	keep=1
else
	build=$(mktemp -d /tmp/tcpconnlat-fuzz.XXXXXX)
fi
mkdir -p "$build"

# shellcheck disable=SC2054 # the commas belong to -fsanitize=
CFLAGS_FUZZ=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter
	-Wno-missing-field-initializers)
# shellcheck disable=SC2206
collectd_cppflags=($COLLECTD_CPPFLAGS)

build_target() { # NAME
	case $1 in
	config)
		"$CLANG" "${CFLAGS_FUZZ[@]}" "${collectd_cppflags[@]}" -I"$top/src" -I"$top/bpf" \
			-I"$top/tests" "$here/fuzz_config.c" "$top/tests/plugin_mock.c" \
			"$top/src/config.c" -lm -o "$build/fuzz_config"
		;;
	notify)
		"$CLANG" "${CFLAGS_FUZZ[@]}" "${collectd_cppflags[@]}" -I"$top/src" -I"$top/bpf" \
			-I"$top/tests" "$here/fuzz_notify.c" "$top/tests/plugin_mock.c" \
			"$top/src/labels.c" "$top/src/ratelimit.c" -lbpf -lpthread -lm \
			-o "$build/fuzz_notify"
		;;
	labels)
		"$CLANG" "${CFLAGS_FUZZ[@]}" -I"$top/src" -I"$top/bpf" \
			"$here/fuzz_labels.c" "$top/src/labels.c" -o "$build/fuzz_labels"
		;;
	*)
		echo "fuzz/run.sh: unknown target $1 (config, labels, notify)" >&2
		return 2
		;;
	esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
for t in "${targets[@]}"; do
	if ! build_target "$t"; then
		echo "FAIL: fuzz_$t does not build" >&2
		failed=1
		continue
	fi
	scratch=$build/corpus-$t
	mkdir -p "$scratch"
	dict=()
	[[ -f "$here/$t.dict" ]] && dict=(-dict="$here/$t.dict")
	log=$build/fuzz_$t.log
	echo "# fuzz_$t: ${SECONDS_EACH}s from $(find "$here/corpus/$t" -type f | wc -l) seed inputs"
	if "$build/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$build/crash-$t-" "${dict[@]}" \
		"$scratch" "$here/corpus/$t" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
		echo "ok: fuzz_$t: ${runs:-?} inputs, $cov, no finding"
		if [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
			"$build/fuzz_$t" -merge=1 "${dict[@]}" "$here/corpus/$t" "$scratch" >>"$log" 2>&1 &&
				echo "# merged new inputs into fuzz/corpus/$t"
		fi
	else
		failed=1
		echo "FAIL: fuzz_$t found a problem (log: $log)" >&2
		grep -E 'ERROR|SUMMARY|fuzz_[a-z]*:|runtime error|instance|Base64' "$log" | head -n 20 >&2
		keep=1
	fi
done

if ((keep)); then
	echo "# build and scratch corpus kept in $build"
else
	rm -rf "$build"
fi
exit "$failed"
