#!/usr/bin/env bash
# Installs, with apt-get, what tcpconnlat needs on Debian 12.
#   scripts/deps.sh build   the toolchain and libraries to build the plugin
#   scripts/deps.sh demo    build + collectd and the write_log writer
#   scripts/deps.sh test    build + everything the test suite runs
set -euo pipefail

what=${1:-build}
build=(autoconf automake libtool pkg-config make gcc libc6-dev
	clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	collectd-core collectd-dev perl ca-certificates)
demo=(libyajl2 iproute2)
test=(iproute2 iptables util-linux procps libnetfilter-queue-dev
	libyajl2 xz-utils)

case $what in
build) pkgs=("${build[@]}") ;;
demo) pkgs=("${build[@]}" "${demo[@]}") ;;
test) pkgs=("${build[@]}" "${test[@]}") ;;
*)
	echo "usage: $0 build|demo|test" >&2
	exit 2
	;;
esac

if [[ $(id -u) -ne 0 ]]; then
	echo "$0: run as root (apt-get install needs it)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "deps.sh: installed the $what dependencies (${#pkgs[@]} packages)"
