#!/usr/bin/env bash
# Soak test against a build: a sustained high connect rate for minutes, then
# exact totals and flat memory (see tests/soak.sh). As root.
#
#   scripts/soak.sh [BUILD_DIR]     default: _build (as scripts/test.sh makes it)
#   SOAK_SECONDS=600 scripts/soak.sh
#
# `make soak` in a configured tree does the same.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-${TCL_BUILD_DIR:-$top/_build}}" && pwd) || {
	echo "$0: no build directory (run scripts/test.sh, or give one)" >&2
	exit 2
}
[[ -f "$build/src/.libs/tcpconnlat.so" ]] || {
	echo "$0: $build has no built plugin (make in $build first)" >&2
	exit 2
}
[[ -x "$build/tests/tcpclient" ]] || make -C "$build" tests/tcpclient >/dev/null
export TCL_PLUGIN_DIR=$build/src/.libs TCL_TEST_BIN=$build/tests TCL_SRCDIR=$top
export SOAK_SECONDS=${SOAK_SECONDS:-300}
exec bash "$top/tests/soak.sh"
