#!/usr/bin/env bash
# bpf_objects.sh - both BPF programs build for big-endian hosts as well as
# little-endian ones, and no byte-order conversion in bpf/ is written by hand.
#
# Ports and addresses in struct sock and in packets are in network byte
# order. On a big-endian host (s390x, ppc64) that is the host's own order, so
# a conversion must be bpf_ntohs()/bpf_ntohl() (bpf/bpf_endian.h), which the
# compiler turns into nothing there; a hand-written swap (__builtin_bswap16,
# (x >> 8) | (x << 8)) swaps anyway and every port comes out wrong: By
# remote_port splits by the wrong port, RemotePort drops every connect.
#
# 1. each of bpf/tcpconnlat.bpf.c and bpf/iface.bpf.c compiles with the
#    project's flags for -target bpfel (x86) and -target bpfeb (s390);
#    bpftool gen object links the bpfel one (BTF intact; Debian 12's
#    libbpf 1.1 links only objects of the build machine's byte order, which
#    is what a native s390x build gives it);
# 2. the bpfeb objects hold no byte-swap instruction at all (llvm-objdump):
#    on a big-endian host no value read from the kernel or a packet needs
#    swapping, so any swap there is a conversion written by hand;
# 3. no source in bpf/ spells a swap by hand (__builtin_bswap*, a value
#    shifted by 8 both ways, a 0xff00 mask shifted down).
#
# Needs clang, llvm-objdump, bpftool and libbpf-dev (scripts/deps.sh build);
# no root, no kernel. Exit: 0 pass, 1 fail, 77 skip (a failure when CI=true).
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
CLANG=${CLANG:-clang}
BPF=$TCL_SRCDIR/bpf
PROGRAMS=(tcpconnlat iface)

objdump=
for c in llvm-objdump llvm-objdump-19 llvm-objdump-16 llvm-objdump-14; do
	if command -v "$c" >/dev/null; then
		objdump=$c
		break
	fi
done
[[ -n "$objdump" ]] || tcl_skip_or_fail "llvm-objdump is not installed (llvm)"
command -v "$CLANG" >/dev/null || tcl_skip_or_fail "$CLANG is not installed (clang)"
bpftool=$(command -v bpftool || echo /usr/sbin/bpftool)
[[ -x "$bpftool" ]] || tcl_skip_or_fail "bpftool is not installed"
libbpf_cflags=$(pkg-config --cflags libbpf 2>/dev/null) ||
	tcl_skip_or_fail "libbpf-dev is not installed (no libbpf.pc)"

TCL_WORK=$(mktemp -d /tmp/tcpconnlat-bpfobj.XXXXXX)
trap '_tcl_on_exit' EXIT

# ------------------------------------------------------- 1: both byte orders
# The flags of Makefile.am (BPF_CFLAGS, BPF_CPPFLAGS), the arch a host of
# that byte order would have.
build() { # PROGRAM TARGET ARCH
	local prog=$1 target=$2 arch=$3 out=$TCL_WORK/$1.$2
	# shellcheck disable=SC2086 # libbpf_cflags is a list of flags
	"$CLANG" -g -O2 -Wall -target "$target" -mcpu=v3 \
		-D__TARGET_ARCH_"$arch" -I"$BPF" $libbpf_cflags \
		-c "$BPF/$prog.bpf.c" -o "$out.tmp.o" 2>"$out.log" ||
		fail "$prog.bpf.c does not compile for -target $target: $(head -n 20 "$out.log")"
	if [[ $target == "$HOST_TARGET" ]]; then
		"$bpftool" gen object "$out.o" "$out.tmp.o" 2>>"$out.log" ||
			fail "bpftool gen object rejects the $target object of $prog.bpf.c: $(tail -n 5 "$out.log")"
	else
		mv "$out.tmp.o" "$out.o"
	fi
}
HOST_TARGET=bpfel
[[ $(printf '\1\0' | od -An -tu2 | tr -d ' ') == 1 ]] || HOST_TARGET=bpfeb
for p in "${PROGRAMS[@]}"; do
	build "$p" bpfel x86
	build "$p" bpfeb s390
done
pass "bpf/tcpconnlat.bpf.c and bpf/iface.bpf.c build for bpfel (x86) and bpfeb (s390)"

# ------------------------------------- 2: no byte swap in a big-endian object
# llvm prints BPF_END as "r1 = be16 r1" / "r1 = le16 r1" (and "bswap16"
# with -mcpu=v4).
SWAP_RE='= (be|le|bswap)(16|32|64) '
bad=""
for p in "${PROGRAMS[@]}"; do
	"$objdump" -d --no-show-raw-insn "$TCL_WORK/$p.bpfeb.o" >"$TCL_WORK/$p.bpfeb.dis"
	n=$(grep -cE "$SWAP_RE" "$TCL_WORK/$p.bpfeb.dis" || true)
	if ((n > 0)); then
		bad+=" $p.bpf.c: $n ($(grep -E "$SWAP_RE" "$TCL_WORK/$p.bpfeb.dis" |
			sed 's/^ *[0-9]*: *//' | sort | uniq -c | awk '{ $1 = $1 "x"; print }' |
			paste -sd, -))"
	fi
	# the check can see a swap: the little-endian object has the
	# conversions of network-order fields
	grep -qE "$SWAP_RE" <("$objdump" -d --no-show-raw-insn "$TCL_WORK/$p.bpfel.o") ||
		fail "no byte swap found in the bpfel object of $p.bpf.c: the instruction pattern '$SWAP_RE' no longer matches this llvm-objdump"
done
[[ -z "$bad" ]] ||
	fail "byte swaps in the big-endian objects, wrong on s390x/ppc64 (use bpf_ntohs/bpf_ntohl from bpf/bpf_endian.h):$bad"
pass "the bpfeb objects swap no bytes; the bpfel ones convert network order"

# --------------------------------------------- 3: no hand-written conversion
hand=$(grep -nE '__builtin_bswap|>> *8\b.*<< *8\b|<< *8\b.*>> *8\b|0xff00[uUlL]*\) *>>' \
	"$BPF"/*.c "$BPF"/*.h 2>/dev/null | sed "s|^$BPF/|bpf/|" || true)
[[ -z "$hand" ]] ||
	fail "byte order converted by hand in bpf/ (use bpf_ntohs/bpf_ntohl/bpf_htons from bpf/bpf_endian.h):"$'\n'"$hand"
pass "no byte-order conversion written by hand in bpf/"
