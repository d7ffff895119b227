#!/usr/bin/env bash
# Installs, with apt-get, what tcpconnlat needs on Debian 12.
#   scripts/deps.sh build   the toolchain and libraries to build the plugin
#   scripts/deps.sh demo    build + collectd and the write_log writer
#   scripts/deps.sh test    build + everything the test suite runs
#   scripts/deps.sh kernels test + QEMU and what `make check-kernels` needs
set -euo pipefail

what=${1:-build}
build=(autoconf automake libtool pkg-config make gcc libc6-dev
	clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	collectd-core collectd-dev perl ca-certificates)
demo=(libyajl2 iproute2)
test=(iproute2 iptables util-linux procps libnetfilter-queue-dev
	libyajl2 xz-utils tcpdump
	python3 graphite-carbon python3-whisper graphite-web prometheus influxdb
	libprotobuf-c1 libmicrohttpd12 curl
	build-essential dpkg-dev debhelper file rrdtool librrd8
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross pkgconf:arm64
	libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64
	valgrind libclang-rt-14-dev)
# make check-kernels: TCG guests of both architectures; the guests' root file
# systems and kernels are Debian packages it downloads itself.
kernels=(qemu-system-x86 qemu-system-arm cpio xz-utils zstd binutils file
	debian-archive-keyring)

case $what in
build) pkgs=("${build[@]}") ;;
demo) pkgs=("${build[@]}" "${demo[@]}") ;;
test) pkgs=("${build[@]}" "${test[@]}") ;;
kernels) pkgs=("${build[@]}" "${test[@]}" "${kernels[@]}") ;;
*)
	echo "usage: $0 build|demo|test|kernels" >&2
	exit 2
	;;
esac

if [[ $(id -u) -ne 0 ]]; then
	echo "$0: run as root (apt-get install needs it)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The cross-build test (tests/cross_build.sh) needs arm64 libraries from
# Debian's multiarch archive (and make check-kernels the arm64 guest's
# packages): arm64 must be a foreign architecture before apt-get update
# fetches the package lists.
if [[ $what == test || $what == kernels ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "deps.sh: installed the $what dependencies (${#pkgs[@]} packages)"
