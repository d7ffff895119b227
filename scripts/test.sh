#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole test suite:
# unit tests, the privileged tests against the real kernel and the real
# collectd (as root), and make distcheck. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/deps.sh test || exit 1

build=${TCL_BUILD_DIR:-$top/_build}
rm -rf "$build"
mkdir -p "$build"
(autoreconf -fi && cd "$build" && "$top/configure" --quiet && make -j"$(nproc)") ||
	{ echo "tests: 0 passed, 1 failed"; exit 1; }

passed=0 failed=0

# distcheck: the tarball builds, installs and uninstalls cleanly out of tree
# (its own make check runs the unit tests only: the full suite runs below).
if (cd "$build" && make distcheck TESTS='$(UNIT_TESTS)' >distcheck.log 2>&1); then
	echo "PASS: make distcheck"
	passed=$((passed + 1))
else
	echo "FAIL: make distcheck (last lines of $build/distcheck.log follow)"
	tail -n 40 "$build/distcheck.log"
	failed=$((failed + 1))
fi

# The unit tests under ASan+UBSan (and, as root, the plugin in collectd
# through start/stop cycles and a short soak), then under valgrind.
for target in check-sanitizers check-valgrind; do
	if (cd "$build" && make "$target" >"$target.log" 2>&1); then
		echo "PASS: make $target"
		passed=$((passed + 1))
	else
		echo "FAIL: make $target (last lines of $build/$target.log follow)"
		tail -n 40 "$build/$target.log"
		failed=$((failed + 1))
	fi
done

(cd "$build" && make check)
if [[ -f "$build/test-suite.log" ]]; then
	p=$(sed -n 's/^# PASS: *//p' "$build/test-suite.log")
	f=$(sed -n 's/^# \(FAIL\|ERROR\|XPASS\): *//p' "$build/test-suite.log" | awk '{ s += $1 } END { print s + 0 }')
	s=$(sed -n 's/^# SKIP: *//p' "$build/test-suite.log")
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [[ ${f:-0} -ne 0 ]]; then
		echo "--- test-suite.log ---"
		cat "$build/test-suite.log"
	fi
else
	failed=$((failed + 1))
fi
echo "tests: $passed passed, $failed failed, ${s:-0} skipped"
[[ $failed -eq 0 ]]
