#!/usr/bin/env bash
# The Debian package, end to end, as an operator gets it:
#
#   1. dpkg-buildpackage -us -uc -b builds collectd-tcpconnlat from a copy of
#      the source tree (debian/rules runs autoreconf in that copy);
#   2. apt-get installs the .deb (its dependencies must resolve);
#   3. the system collectd (collectd-core's /usr/sbin/collectd) runs with a
#      config that has no PluginDir and no TypesDB: only a csv writer and
#      "LoadPlugin tcpconnlat", so the package must have put the plugin where
#      collectd looks. Connects are made in a private network namespace and
#      collectd runs in it: first the bare LoadPlugin (counts at least ours:
#      the tracepoint is host-wide), then with OwnNetnsOnly true (exact counts);
#   4. apt-get purge removes it, and every file dpkg -L listed is gone.
#
# Needs root and a Debian system with dpkg-dev and debhelper (scripts/deps.sh
# test installs them). Refuses to touch an already installed
# collectd-tcpconnlat. The installed package is purged even when the test fails.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
PKG=collectd-tcpconnlat

# --- what the test needs --------------------------------------------------
[[ $(id -u) -eq 0 ]] || tcl_skip_or_fail "needs root (installs a package, loads BPF programs)"
[[ -r /sys/kernel/btf/vmlinux ]] || tcl_skip_or_fail "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
for cmd in dpkg-buildpackage dh apt-get ip collectd cc; do
	command -v "$cmd" >/dev/null ||
		tcl_skip_or_fail "$cmd is not installed (scripts/deps.sh test installs it)"
done
[[ -f "$TCL_SRCDIR/debian/control" ]] || tcl_skip_or_fail "no debian/ directory in $TCL_SRCDIR"
COLLECTD_BIN=$(command -v collectd)
dpkg -S "$(readlink -f "$COLLECTD_BIN")" >/dev/null 2>&1 ||
	tcl_skip_or_fail "$COLLECTD_BIN does not belong to a Debian package"

# One package test at a time on this host (they install the same package).
exec {lock_fd}>/run/tcl-package-test.lock
flock -w 600 "$lock_fd" || fail "another package test holds /run/tcl-package-test.lock"

# dpkg's state of the package: not-installed, installed, config-files, ...
pkg_state() { dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || echo not-installed; }
if [[ $(pkg_state) != not-installed ]]; then
	tcl_skip_or_fail "$PKG is already installed on this host; the test would replace and purge it"
fi

unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -y -q)

tcl_init
# A work directory of its own name: sessions sharing a host clean up leftover
# /tmp/tcpconnlat-test.* directories, and this one holds the .deb being installed.
_old_work=$TCL_WORK
TCL_WORK=$(mktemp -d /tmp/tcl-package.XXXXXX)
chmod 755 "$TCL_WORK"
rmdir "$_old_work"
PKG_INSTALLED=0
pkg_cleanup() {
	if ((PKG_INSTALLED)); then
		echo "# purging $PKG" >&2
		"${APT[@]}" purge "$PKG" >>"$TCL_WORK/apt.log" 2>&1 ||
			dpkg --purge "$PKG" >>"$TCL_WORK/apt.log" 2>&1 || true
		PKG_INSTALLED=0
	fi
}
_pkg_on_exit() {
	local rc=$?
	set +e
	pkg_cleanup
	(exit "$rc") # _tcl_on_exit takes the status from $?
	_tcl_on_exit
}
trap _pkg_on_exit EXIT

# --- 1. build ---------------------------------------------------------------
t0=$(date +%s)
ver=$(dpkg-parsechangelog -l "$TCL_SRCDIR/debian/changelog" -S Version)
srcpkg=$(dpkg-parsechangelog -l "$TCL_SRCDIR/debian/changelog" -S Source)
arch=$(dpkg --print-architecture)
build_root=$TCL_WORK/pkg
tree=$build_root/$srcpkg-${ver%-*}
mkdir -p "$tree"
if git -C "$TCL_SRCDIR" rev-parse --show-toplevel >/dev/null 2>&1 &&
	[[ $(git -C "$TCL_SRCDIR" rev-parse --show-toplevel) -ef "$TCL_SRCDIR" ]]; then
	# a checkout: tracked files and new ones not ignored, as they are now
	# (not the scripts' build and output directories _build, _graphs, ...)
	(cd "$TCL_SRCDIR" && git ls-files -z --cached --others --exclude-standard) |
		grep -zv '^_' |
		tar -C "$TCL_SRCDIR" --null --ignore-failed-read -T - -cf - 2>/dev/null |
		tar -C "$tree" -xf -
else
	# an unpacked release tarball (e.g. under make distcheck)
	tar -C "$TCL_SRCDIR" --exclude='./_*' -cf - . | tar -C "$tree" -xf -
	chmod -R u+w "$tree"
fi
note "building $PKG $ver in $tree"
(cd "$tree" && dpkg-checkbuilddeps) >"$TCL_WORK/builddeps.log" 2>&1 ||
	tcl_skip_or_fail "build dependencies missing: $(cat "$TCL_WORK/builddeps.log")"
if ! (cd "$tree" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
	>"$TCL_WORK/dpkg-buildpackage.log" 2>&1; then
	tail -n 40 "$TCL_WORK/dpkg-buildpackage.log" >&2
	fail "dpkg-buildpackage failed (log: $TCL_WORK/dpkg-buildpackage.log)"
fi
deb=$build_root/${PKG}_${ver}_${arch}.deb
[[ -f "$deb" ]] || fail "dpkg-buildpackage made no $deb: $(ls "$build_root")"
pass "dpkg-buildpackage -us -uc -b built $(basename "$deb") in $(($(date +%s) - t0)) s"

depends=$(dpkg-deb -f "$deb" Depends)
for d in collectd-core libbpf1 libc6; do
	grep -q "\\b$d\\b" <<<"$depends" || fail "Depends lacks $d: $depends"
done
pass "Depends: $depends"

# --- 2. install ---------------------------------------------------------------
PKG_INSTALLED=1
"${APT[@]}" install --no-install-recommends "$deb" >"$TCL_WORK/apt.log" 2>&1 ||
	fail "apt-get install $deb failed: $(tail -n 20 "$TCL_WORK/apt.log")"
[[ $(pkg_state) == installed ]] ||
	fail "$PKG is not installed after apt-get install"
mapfile -t pkg_files < <(dpkg -L "$PKG" | while read -r f; do [[ -f "$f" ]] && echo "$f"; done)
plugindir=$("$COLLECTD_BIN" -h | sed -n 's/^ *Plugin directory  *//p')
for f in "$plugindir/tcpconnlat.so" \
	/usr/share/man/man5/collectd-tcpconnlat.5.gz \
	/usr/share/doc/$PKG/examples/tcpconnlat.conf \
	/usr/share/doc/$PKG/README.md.gz \
	/usr/share/doc/$PKG/copyright; do
	printf '%s\n' "${pkg_files[@]}" | grep -qx "$f" || fail "the package does not install $f"
done
printf '%s\n' "${pkg_files[@]}" | grep -q '\.la$' && fail "the package ships a libtool .la file"
pass "installed: ${#pkg_files[@]} files, the plugin in collectd's plugin directory $plugindir"

# --- 3. the system collectd with the packaged plugin ----------------------------
tcl_netns_create

pkg_collectd_start() { # PLUGIN_BLOCK (empty: bare LoadPlugin)
	local conf=$TCL_WORK/collectd.conf
	rm -rf "$TCL_WORK/csv"
	mkdir -p "$TCL_WORK/csv"
	{
		cat <<-EOF
			Hostname "$TCL_HOST"
			FQDNLookup false
			Interval 1
			BaseDir "$TCL_WORK"
			PIDFile "$TCL_WORK/collectd.pid"
			LoadPlugin logfile
			<Plugin logfile>
			  LogLevel info
			  File "$TCL_WORK/collectd.log"
			  Timestamp true
			</Plugin>
			LoadPlugin csv
			<Plugin csv>
			  DataDir "$TCL_WORK/csv"
			  StoreRates false
			</Plugin>
			LoadPlugin tcpconnlat
		EOF
		[[ -z "$1" ]] || printf '<Plugin tcpconnlat>\n  %s\n</Plugin>\n' "$1"
	} >"$conf"
	: >"$TCL_WORK/collectd.log"
	# not through a shell function: $! must be collectd itself (ip netns exec
	# execs it), so that collectd_stop stops it
	ip netns exec "$TCL_NS" "$COLLECTD_BIN" -f -C "$conf" >>"$TCL_WORK/collectd.stdout" 2>&1 &
	TCL_COLLECTD_PID=$!
	wait_until 20 "collectd to finish its init" \
		grep -q "Initialization complete" "$TCL_WORK/collectd.log"
	grep -q "tcpconnlat plugin: measuring TCP connect latency" "$TCL_WORK/collectd.log" ||
		fail "the packaged plugin did not start"
}

tcpclient=$TCL_TEST_BIN/tcpclient
if [[ ! -x "$tcpclient" ]]; then
	tcpclient=$TCL_WORK/tcpclient
	cc -O2 -pthread -o "$tcpclient" "$TCL_SRCDIR/tests/tcpclient.c" || fail "cannot build tcpclient"
fi
tcl_spawn ip netns exec "$TCL_NS" "$tcpclient" listen -a 127.0.0.1 -p 0 >"$TCL_WORK/listen"
wait_until 10 "the listener" grep -q '^ready ' "$TCL_WORK/listen"
PORT=$(awk '/^ready /{print $2}' "$TCL_WORK/listen")
connects() { # PORT COUNT -> the client's summary line
	in_ns "$tcpclient" connect -a 127.0.0.1 -p "$1" -n "$2" -q 2>&1 >/dev/null | grep '^summary'
}

EST=tcpconnlat-all/total_connections-established
REF=tcpconnlat-all/total_connections-refused
P50=tcpconnlat-all/latency-percentile-50
_at_least() { # NAME MIN
	local v
	v=$(csv_last "$1" 2>/dev/null) || return 1
	[[ "$v" =~ ^[0-9]+$ ]] && ((v >= $2))
}
_some_finite() { # NAME
	csv_values_after "$1" 0 | grep -qvE '^-?nan$'
}

N=30 K=5
# 3a. bare LoadPlugin: the defaults, every namespace (other traffic only adds)
pkg_collectd_start ""
wait_rows "$EST" 1
base_est=$(csv_last "$EST") base_ref=$(csv_last "$REF")
grep -q " ok=$N " <<<"$(connects "$PORT" $N)" || fail "the client's connects failed"
grep -q " refused=$K " <<<"$(connects 1 $K)" || fail "the client's refused connects did not fail as refused"
wait_until 15 "established >= $((base_est + N))" _at_least "$EST" $((base_est + N))
wait_until 15 "refused >= $((base_ref + K))" _at_least "$REF" $((base_ref + K))
wait_until 15 "a finite percentile-50" _some_finite "$P50"
collectd_stop
pass "bare LoadPlugin tcpconnlat: established +$N and refused +$K seen, percentiles finite"

# 3b. OwnNetnsOnly true: exactly the namespace's connects
pkg_collectd_start "OwnNetnsOnly true"
wait_rows "$EST" 1
base_est=$(csv_last "$EST") base_ref=$(csv_last "$REF")
[[ "$base_est" == 0 && "$base_ref" == 0 ]] || fail "OwnNetnsOnly: counts before any connect: established=$base_est refused=$base_ref"
grep -q " ok=$N " <<<"$(connects "$PORT" $N)" || fail "the client's connects failed"
grep -q " refused=$K " <<<"$(connects 1 $K)" || fail "the client's refused connects did not fail as refused"
wait_value "$EST" $N
wait_value "$REF" $K
rows=$(csv_rows "$EST")
wait_rows "$EST" $((rows + 2))
[[ $(csv_last "$EST") == "$N" && $(csv_last "$REF") == "$K" ]] ||
	fail "counts moved past the namespace's connects: established=$(csv_last "$EST") refused=$(csv_last "$REF")"
collectd_stop
pass "OwnNetnsOnly true: established=$N refused=$K, exactly"

# --- 4. purge ---------------------------------------------------------------------
"${APT[@]}" purge "$PKG" >>"$TCL_WORK/apt.log" 2>&1 || fail "apt-get purge failed: $(tail -n 20 "$TCL_WORK/apt.log")"
PKG_INSTALLED=0
[[ $(pkg_state) == not-installed ]] || fail "$PKG is in state $(pkg_state) after purge"

left=()
for f in "${pkg_files[@]}"; do
	[[ -e "$f" ]] && left+=("$f")
done
((${#left[@]} == 0)) || fail "files left after purge: ${left[*]}"
[[ ! -e /usr/share/doc/$PKG ]] || fail "/usr/share/doc/$PKG left after purge"
pass "purged: all ${#pkg_files[@]} files gone ($(($(date +%s) - t0)) s in all)"
