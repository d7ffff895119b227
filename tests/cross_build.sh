#!/usr/bin/env bash
# Cross build for arm64 with Debian's multiarch packages:
#
#   ./configure --host=aarch64-linux-gnu && make
#
# in a fresh build directory must give an AArch64 tcpconnlat.so, and the BPF
# object embedded in it must be compiled for the host, not the build machine:
# clang -target bpfel (aarch64 is little-endian) with -D__TARGET_ARCH_arm64.
#
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, libbpf-dev:arm64,
# libelf-dev:arm64, zlib1g-dev:arm64 and pkgconf:arm64 (the
# aarch64-linux-gnu-pkg-config wrapper); scripts/deps.sh test installs them.
# No root needed. Nothing is run on the target architecture.
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
HOST=aarch64-linux-gnu
MA_LIBDIR=/usr/lib/$HOST

# A missing cross toolchain is a skip, except under CI where it fails.
command -v "$HOST-gcc" >/dev/null || tcl_skip_or_fail "$HOST-gcc is missing (gcc-$HOST)"
[[ -f "$MA_LIBDIR/pkgconfig/libbpf.pc" ]] || tcl_skip_or_fail "libbpf-dev:arm64 is not installed"
[[ -f "$MA_LIBDIR/libelf.so" ]] || tcl_skip_or_fail "libelf-dev:arm64 is not installed"
[[ -f "$MA_LIBDIR/libz.so" ]] || tcl_skip_or_fail "zlib1g-dev:arm64 is not installed"
for cmd in file readelf clang bpftool; do
	command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] ||
		tcl_skip_or_fail "$cmd is not installed"
done
[[ -x "$TCL_SRCDIR/configure" ]] || fail "$TCL_SRCDIR/configure is missing (run autoreconf -fi there)"
[[ ! -f "$TCL_SRCDIR/config.status" ]] ||
	fail "$TCL_SRCDIR is configured in-tree; an out-of-tree build needs 'make distclean' there first"

# The cross pkg-config: Debian's triplet wrapper (pkgconf:arm64) when there,
# else the native one restricted to the arm64 .pc files.
pc_env=()
if command -v "$HOST-pkg-config" >/dev/null; then
	pc_note="$HOST-pkg-config"
else
	pc_env=(PKG_CONFIG=pkg-config "PKG_CONFIG_LIBDIR=$MA_LIBDIR/pkgconfig:/usr/share/pkgconfig")
	pc_note="pkg-config with PKG_CONFIG_LIBDIR=$MA_LIBDIR/pkgconfig"
fi

# No root, no collectd, no netns: only a work dir.
TCL_WORK=$(mktemp -d /tmp/tcpconnlat-cross.XXXXXX)
trap '_tcl_on_exit' EXIT
b=$TCL_WORK/build
mkdir -p "$b"
t0=$(date +%s)
(cd "$b" && env "${pc_env[@]}" "$TCL_SRCDIR/configure" --host="$HOST") >"$TCL_WORK/configure.log" 2>&1 || {
	tail -n 30 "$TCL_WORK/configure.log" >&2
	fail "configure --host=$HOST failed ($pc_note)"
}
grep -q "BPF: .*-target bpfel (__TARGET_ARCH_arm64)" "$TCL_WORK/configure.log" ||
	fail "configure did not pick bpfel/arm64 for the BPF object: $(grep 'BPF:' "$TCL_WORK/configure.log")"
grep -q "plugin directory: *\${libdir}/collectd" "$TCL_WORK/configure.log" ||
	fail "a cross configure asked the build machine's collectd for the plugin directory: $(grep 'plugin directory' "$TCL_WORK/configure.log")"
pass "configure --host=$HOST ($pc_note)"

(cd "$b" && make -j"$(nproc)" V=1) >"$TCL_WORK/make.log" 2>&1 || {
	tail -n 30 "$TCL_WORK/make.log" >&2
	fail "make failed"
}
pass "make ($(($(date +%s) - t0)) s for configure and make)"

so=$b/src/.libs/tcpconnlat.so
[[ -f "$so" ]] || fail "no $so"
desc=$(file -b "$so")
[[ "$desc" == *"ELF 64-bit LSB shared object, ARM aarch64"* ]] ||
	fail "tcpconnlat.so is not an AArch64 shared object: $desc"
readelf -d "$so" | grep -q 'NEEDED.*libbpf\.so' || fail "tcpconnlat.so does not link libbpf"
pass "file: tcpconnlat.so: $desc"

# The BPF object: a BPF ELF, little-endian like aarch64 ...
obj=$b/bpf/tcpconnlat.bpf.o
[[ -f "$obj" ]] || fail "no $obj"
hdr=$(readelf -h "$obj")
grep -qE 'Machine: +Linux BPF' <<<"$hdr" || fail "bpf/tcpconnlat.bpf.o is not a BPF object: $(grep Machine <<<"$hdr")"
grep -qE 'Data: +.*little endian' <<<"$hdr" || fail "bpf/tcpconnlat.bpf.o is not little-endian: $(grep Data <<<"$hdr")"
# ... compiled by clang for arm64 (the build machine's arch must not leak in)
clang_line=$(grep -E -- '-c [^ ]*bpf/tcpconnlat\.bpf\.c' "$TCL_WORK/make.log" | head -n 1)
[[ -n "$clang_line" ]] || fail "no clang command line for bpf/tcpconnlat.bpf.c in the make log"
grep -q -- '-target bpfel' <<<"$clang_line" || fail "clang did not target bpfel: $clang_line"
grep -q -- '-D__TARGET_ARCH_arm64' <<<"$clang_line" || fail "clang did not get -D__TARGET_ARCH_arm64: $clang_line"
if grep -qE -- '-D__TARGET_ARCH_(x86|arm|powerpc|s390|riscv|loongarch)( |$)' <<<"$clang_line"; then
	fail "clang got a second __TARGET_ARCH: $clang_line"
fi
# ... and that object is the one embedded in the plugin (skeleton size).
obj_size=$(stat -c %s "$obj")
grep -qE "sz = $obj_size;" "$b/src/tcpconnlat.skel.h" ||
	fail "the skeleton does not embed the $obj_size-byte object"
pass "BPF object: $(file -b "$obj" | cut -d, -f1-2), clang -target bpfel -D__TARGET_ARCH_arm64, embedded in the plugin"
