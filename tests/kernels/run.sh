#!/usr/bin/env bash
# tests/kernels/run.sh - the kernel matrix: `make check-kernels`.
#
# Boots each kernel of KERNELS in QEMU (TCG: KVM guests hang on these
# machines) and runs tests/kernels/guest-smoke.sh inside it: the real
# collectd of the guest's architecture with the built plugin, real connects,
# the CSV writer read back. One guest at a time.
#
#   KERNELS="5.10-cloud 6.1 6.1-rt 6.12 6.1-arm64"   (the default)
#     X.Y[-cloud|-rt][-arm64]  the newest Debian kernel of that series and
#                              flavour the archive serves (5.10: Debian 11,
#                              6.1: Debian 12, 6.12: Debian 13)
#     linux-image-...          a Debian kernel package by name
#     5.10.0-32-cloud-amd64    a kernel release (uname -r) of a Debian package
#   KERNEL_TIMEOUT=900    seconds per guest, boot to power-off
#   GUEST_CPUS=2 GUEST_MEM=1024
#   KERNEL_CACHE=$builddir/kernels   downloads, root file systems, logs
#   KERNELS_REFRESH=1     look for newer kernel packages (else reuse the
#                         package chosen last time, without network)
#
# Everything downloaded or built is cached under KERNEL_CACHE: the kernel
# packages (from Debian's archive through an apt configuration of its own,
# never the machine's sources), the guest root file systems (Debian 12
# packages of the guest's architecture, unpacked into an initramfs), the
# arm64 cross build of the plugin. A second run downloads nothing.
#
# Output: one line per check and kernel, one log per kernel
# (KERNEL_CACHE/logs/TOKEN.log), the matrix as Markdown
# (KERNEL_CACHE/matrix.md; tests/kernels/table.sh puts it into README.md),
# and "kernels: N passed, N failed". A kernel passes when every check is
# proven, or refused with the plugin's one sentence on a kernel older than
# the minimum the README documents for it (tests/kernels/minimums).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=${TCL_SRCDIR:-$(cd "$here/../.." && pwd)}
BUILDDIR=${TCL_BUILDDIR:-$(pwd)}
KDIR=${KERNEL_CACHE:-$BUILDDIR/kernels}
KERNELS=${KERNELS:-}
[[ -n "${KERNELS// /}" ]] || KERNELS="5.10-cloud 6.1 6.1-rt 6.12 6.1-arm64"
KERNEL_TIMEOUT=${KERNEL_TIMEOUT:-900}
GUEST_CPUS=${GUEST_CPUS:-2}
GUEST_MEM=${GUEST_MEM:-1024}

# Debian 12 packages of the guest root file system (any architecture): the
# daemon and its plugins, the plugin's libraries, the tools of the suite.
GUEST_PKGS=(libc6 libgcc-s1 libcap2 libcap-ng0 libselinux1 libpcre2-8-0
	libacl1 libattr1 libgmp10 libtinfo6 libmd0 libbsd0 libmnl0 libxtables12
	libelf1 zlib1g libbpf1 busybox-static bash coreutils grep sed mawk
	util-linux iproute2 bpftool collectd-core)
# What the suite runs: each must find all its libraries in the tree.
GUEST_BINS=(usr/sbin/collectd usr/lib/collectd/csv.so usr/lib/collectd/logfile.so
	usr/lib/collectd/load.so bin/bash bin/date usr/bin/sort bin/grep bin/sed
	usr/bin/mawk usr/bin/setpriv bin/ip sbin/tc usr/sbin/bpftool)
# Kernel modules the suite needs (with their dependencies): the bed's veth
# pair, netem to hold the SYN-ACK, clsact and the bpf classifier of
# passive mode. Built-in ones are skipped.
GUEST_MODULES=(veth sch_netem sch_ingress cls_bpf)
# The checks, in the matrix's column order.
CHECKS=(load connect4 connect6 latency inbound shutdown passive leastpriv tracepoint)

die() {
	echo "check-kernels: $*" >&2
	exit 2
}
say() { echo "check-kernels: $*"; }

# ----------------------------------------------------------- requirements
arches_needed() {
	local t
	for t in $KERNELS; do
		if [[ $t == *arm64* ]]; then echo arm64; else echo amd64; fi
	done | sort -u
}
for tool in apt-get apt-cache dpkg-deb cpio readelf timeout file; do
	command -v "$tool" >/dev/null || die "$tool is not installed (scripts/deps.sh kernels installs what this needs)"
done
for a in $(arches_needed); do
	case $a in
	amd64) q=qemu-system-x86_64 pkg=qemu-system-x86 ;;
	arm64) q=qemu-system-aarch64 pkg=qemu-system-arm ;;
	esac
	command -v "$q" >/dev/null || die "$q is not installed: apt-get install $pkg (or scripts/deps.sh kernels)"
done
[[ $(id -u) -eq 0 ]] || die "needs root (the guest root file system keeps root-owned files and setuid bits)"
[[ -f "$BUILDDIR/src/.libs/tcpconnlat.so" ]] || die "no plugin in $BUILDDIR/src/.libs: run make first"

mkdir -p "$KDIR"/{logs,results,debs/kernel,resolved,k,run}

# ------------------------------------------------- kernel packages (apt)
# An apt configuration of our own: Debian 11, 12 and 13, amd64 and arm64,
# its own lists and cache. The machine's sources are never read or changed.
KAPT=$KDIR/apt
kapt_opts() {
	echo -o "Dir::Etc::sourcelist=$KAPT/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
		-o "Dir::State::lists=$KAPT/lists" -o "Dir::Cache=$KAPT/cache" \
		-o Dir::State::status=/dev/null -o APT::Architectures::=amd64 \
		-o APT::Architectures::=arm64 -o APT::Sandbox::User=root -o Acquire::Retries=2
}
kapt_setup() {
	local s
	mkdir -p "$KAPT/lists/partial" "$KAPT/cache/archives/partial"
	: >"$KAPT/sources.list.new"
	for s in "debian bullseye" "debian-security bullseye-security" "debian bookworm" \
		"debian bookworm-updates" "debian-security bookworm-security" "debian trixie" \
		"debian-security trixie-security"; do
		# shellcheck disable=SC2086 # two words: the archive path and the suite
		set -- $s
		echo "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/$1 $2 main" >>"$KAPT/sources.list.new"
	done
	mv "$KAPT/sources.list.new" "$KAPT/sources.list"
}
KAPT_UPDATED=
kapt_update() { # [force]
	[[ -n "$KAPT_UPDATED" ]] && return 0
	kapt_setup
	# Lists younger than a day are good enough to pick a kernel, unless
	# KERNELS_REFRESH asks for newer packages or they knew no candidate.
	if [[ -z "${1:-}" && -z "${KERNELS_REFRESH:-}" && -n "$(find "$KAPT/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]]; then
		return 0
	fi
	say "updating the kernel package lists (bullseye, bookworm, trixie; amd64, arm64)"
	# shellcheck disable=SC2046
	if ! apt-get -q $(kapt_opts) update >"$KDIR/logs/apt-update.log" 2>&1 ||
		grep -qE '^(E|Err):' "$KDIR/logs/apt-update.log"; then
		echo "check-kernels: updating the kernel package lists failed:" >&2
		grep -E '^(E|Err|W):' "$KDIR/logs/apt-update.log" | head -n 5 >&2
		return 1
	fi
	KAPT_UPDATED=1
}

# The package names a token stands for (a regex, or names).
token_regex() { # TOKEN -> an ERE on package names
	local t=$1 maj min flav arch
	if [[ $t =~ ^linux-image-[A-Za-z0-9.+~-]+$ ]]; then
		echo "^${t//./\\.}\$"
	elif [[ $t =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?(-[0-9]+|\+deb[0-9]+)-[a-z0-9-]+$ ]]; then
		t=${t//./\\.}
		echo "^linux-image-${t//+/\\+}(-unsigned)?\$"
	elif [[ $t =~ ^([0-9]+)\.([0-9]+)(-(cloud|rt))?(-(amd64|arm64))?$ ]]; then
		maj=${BASH_REMATCH[1]} min=${BASH_REMATCH[2]} flav=${BASH_REMATCH[4]}
		arch=${BASH_REMATCH[6]:-amd64}
		echo "^linux-image-$maj\\.$min(\\.0-[0-9]+|\\.[0-9]+\\+deb[0-9]+)-${flav:+$flav-}$arch-unsigned\$"
	else
		return 1
	fi
}

# Candidates "PACKAGE VERSION", newest first (dpkg's order).
candidates() { # REGEX
	local names line best=() i j tmp
	# shellcheck disable=SC2046
	names=$(apt-cache $(kapt_opts) pkgnames linux-image- 2>/dev/null | grep -E "$1" | sort -u)
	[[ -n "$names" ]] || return 0
	# shellcheck disable=SC2046,SC2086
	mapfile -t best < <(apt-cache $(kapt_opts) madison $names 2>/dev/null |
		awk -F'|' '$3 ~ /Packages/ { gsub(/ /, "", $1); gsub(/ /, "", $2); print $1 " " $2 }' | sort -u)
	for ((i = 1; i < ${#best[@]}; i++)); do
		for ((j = i; j > 0; j--)); do
			dpkg --compare-versions "${best[j]#* }" gt "${best[j - 1]#* }" || break
			tmp=${best[j]}
			best[j]=${best[j - 1]}
			best[j - 1]=$tmp
		done
	done
	printf '%s\n' "${best[@]}"
}

# resolve TOKEN: sets KPKG KVER KDEB (the cached .deb), downloading the newest
# candidate that the archive actually serves (the security suites list
# images that may 404: the next one is tried).
resolve() {
	local token=$1 regex rec=$KDIR/resolved/$1 pkg ver deb log=$KDIR/logs/$1.download.log tried=()
	if [[ -z "${KERNELS_REFRESH:-}" && -f "$rec" ]]; then
		read -r KPKG KVER KDEB <"$rec"
		[[ -f "$KDEB" ]] && return 0
	fi
	regex=$(token_regex "$token") || {
		RESOLVE_ERR="'$token' is not a kernel name this runner knows (X.Y[-cloud|-rt][-arm64], linux-image-..., or a release like 5.10.0-32-cloud-amd64)"
		return 1
	}
	kapt_update || {
		RESOLVE_ERR="the kernel package lists could not be updated (see $KDIR/logs/apt-update.log)"
		return 1
	}
	: >"$log"
	if [[ -z "$(candidates "$regex")" ]]; then
		kapt_update force || {
			RESOLVE_ERR="the kernel package lists could not be updated (see $KDIR/logs/apt-update.log)"
			return 1
		}
	fi
	while read -r pkg ver; do
		[[ -n "$pkg" ]] || continue
		tried+=("$pkg=$ver")
		# shellcheck disable=SC2046
		if (cd "$KDIR/debs/kernel" && apt-get -q $(kapt_opts) download "$pkg=$ver") >>"$log" 2>&1; then
			# apt names a foreign architecture's package "name:arm64"; its
			# file is name_version_arm64.deb, an epoch's colon as %3a.
			deb=$(ls -1t "$KDIR/debs/kernel/${pkg%%:*}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n 1)
			if [[ -n "$deb" ]]; then
				KPKG=${pkg%%:*} KVER=$ver KDEB=$deb
				echo "$KPKG $KVER $KDEB" >"$rec"
				return 0
			fi
		fi
		say "$token: $pkg $ver could not be downloaded, trying an older one"
		((${#tried[@]} >= 6)) && break
	done < <(candidates "$regex")
	if ((${#tried[@]} == 0)); then
		RESOLVE_ERR="no package in Debian's archive matches $regex"
	else
		RESOLVE_ERR="download failed for ${tried[*]}: $(grep -E '^(E|Err):' "$log" | tail -n 1)"
	fi
	return 1
}

# ------------------------------------------------------- kernel + modules
# prepare_kernel: from KDEB, the kernel image and a cpio of the modules the
# suite needs (cached in KX; the unpacked package is removed again, it is
# about 400 MB). Sets KREL (its uname -r), KIMAGE, MODCPIO.
prepare_kernel() {
	local want="${GUEST_MODULES[*]}"
	KX=$KDIR/k/$(basename "$KDEB" .deb)
	KT=$KX/tree
	KIMAGE=$KX/vmlinuz
	MODCPIO=$KX/modules.cpio
	if [[ -f "$KIMAGE" && -f "$MODCPIO" && -f "$KX/release" &&
		"$(cat "$KX/modules.want" 2>/dev/null)" == "$want" ]]; then
		KREL=$(cat "$KX/release")
		return 0
	fi
	rm -rf "$KX"
	mkdir -p "$KT"
	dpkg-deb -x "$KDEB" "$KT" || return 1
	# Debian 13 ships modules under /usr/lib/modules, older ones /lib/modules.
	KMODS=$(ls -1d "$KT"/lib/modules/* "$KT"/usr/lib/modules/* 2>/dev/null | head -n 1)
	KREL=${KMODS##*/}
	[[ -n "$KREL" && -f "$KT/boot/vmlinuz-$KREL" ]] || return 1
	modules_cpio || return 1
	cp "$KT/boot/vmlinuz-$KREL" "$KIMAGE"
	cp "$KT/boot/config-$KREL" "$KX/config" 2>/dev/null || true
	echo "$KREL" >"$KX/release"
	echo "$want" >"$KX/modules.want"
	rm -rf "$KT" "$KX/modstage"
}

_decompress_ko() { # SRC DST
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*) return 1 ;;
	esac
}

# The modules cpio: GUEST_MODULES and what they depend on, uncompressed (so
# busybox insmod loads them), with /etc/tcl-modules listing them in load order.
modules_cpio() {
	local stage=$KX/modstage m f
	rm -rf "$stage"
	mkdir -p "$stage/etc"
	declare -gA _KO=()
	declare -gA _SEEN=()
	_ORDER=()
	_MODNOTES=()
	while read -r f; do
		m=$(basename "$f")
		m=${m%%.ko*}
		_KO[${m//-/_}]=$f
	done < <(find "$KMODS" -name '*.ko*')
	for m in "${GUEST_MODULES[@]}"; do
		_add_module "$m" "$stage" || return 1
	done
	printf '%s\n' "${_ORDER[@]}" >"$stage/etc/tcl-modules"
	printf '%s\n' "${_MODNOTES[@]}" >"$KX/modules.notes"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$MODCPIO"
}
_add_module() { # NAME STAGE
	local m=${1//-/_} stage=$2 src rel dst d
	[[ -n "${_SEEN[$m]:-}" ]] && return 0
	_SEEN[$m]=1
	src=${_KO[$m]:-}
	if [[ -z "$src" ]]; then
		if grep -qE "/${m//_/[-_]}\.ko(\..*)?\$" "$KMODS/modules.builtin" 2>/dev/null; then
			_MODNOTES+=("$m built in")
		else
			_MODNOTES+=("$m not available in $KREL")
		fi
		return 0
	fi
	rel=${src#"$KT"}
	rel=${rel%.xz}
	rel=${rel%.zst}
	rel=${rel%.gz}
	dst=$stage$rel
	mkdir -p "$(dirname "$dst")"
	_decompress_ko "$src" "$dst" || return 1
	# its .modinfo "depends=" (readelf reads any architecture's modules)
	for d in $(readelf -p .modinfo "$dst" 2>/dev/null | sed -n 's/.*depends=//p' | tr ',' ' '); do
		_add_module "$d" "$stage" || return 1
	done
	_ORDER+=("$rel")
}

# ------------------------------------------------- guest root file system
tree_triplet() { case $1 in amd64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; esac; }

# find_lib TREE TRIPLET SONAME
find_lib() {
	local d
	for d in "lib/$2" "usr/lib/$2" lib usr/lib lib64; do
		[[ -e "$1/$d/$3" ]] && return 0
	done
	return 1
}

# rootfs ARCH: Debian 12 packages of ARCH unpacked into a tree and packed
# into ROOTCPIO (cached; rebuilt when the package list changes).
rootfs() {
	local arch=$1
	local dir=$KDIR/rootfs-$arch tree key missing=() f lib todo d
	tree=$dir/tree
	ROOTCPIO=$dir/base.cpio
	key="${GUEST_PKGS[*]} | ${GUEST_BINS[*]}"
	[[ -f "$ROOTCPIO" && "$(cat "$dir/key" 2>/dev/null)" == "$key" ]] && return 0
	say "building the $arch guest root file system from Debian packages"
	rm -rf "$dir"
	mkdir -p "$dir/debs" "$tree"
	if ! (cd "$dir/debs" && apt-get -q -o APT::Sandbox::User=root download "${GUEST_PKGS[@]/%/:$arch}") >"$dir/download.log" 2>&1; then
		echo "check-kernels: downloading the $arch packages of the guest root file system failed:" >&2
		grep -E '^(E|Err):' "$dir/download.log" | head -n 5 >&2
		[[ $arch == amd64 ]] || echo "check-kernels: is $arch a foreign architecture here (dpkg --add-architecture $arch && apt-get update; scripts/deps.sh kernels does it)?" >&2
		return 1
	fi
	for f in "$dir"/debs/*.deb; do
		dpkg-deb -x "$f" "$tree" || return 1
	done
	rm -rf "$tree"/usr/share/{doc,man,info,locale,lintian,bash-completion,zsh,bug,fish}
	mkdir -p "$tree"/{etc,root,var,proc,sys,dev,tmp,run}
	ln -sfn /run "$tree/var/run"
	ln -sfn mawk "$tree/usr/bin/awk"
	echo 'root:x:0:0:root:/root:/bin/bash' >"$tree/etc/passwd"
	echo 'root:x:0:' >"$tree/etc/group"
	# Every library of every program the suite runs must be in the tree.
	todo=("${GUEST_BINS[@]}")
	declare -A seen=()
	while ((${#todo[@]})); do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		[[ -e "$tree/$f" ]] || { missing+=("$f (no such file)"); continue; }
		for lib in $(readelf -d "$tree/$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			[[ -n "${seen[$lib]:-}" ]] && continue
			seen[$lib]=1
			if find_lib "$tree" "$(tree_triplet "$arch")" "$lib"; then
				for d in "lib/$(tree_triplet "$arch")" "usr/lib/$(tree_triplet "$arch")"; do
					[[ -e "$tree/$d/$lib" ]] && { todo+=("$d/$lib"); break; }
				done
			else
				missing+=("$lib (needed by $f)")
			fi
		done
	done
	if ((${#missing[@]})); then
		echo "check-kernels: the $arch guest root file system lacks: ${missing[*]}; add the package that provides it to GUEST_PKGS in $0" >&2
		return 1
	fi
	(cd "$tree" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$ROOTCPIO" || return 1
	echo "$key" >"$dir/key"
	rm -rf "$tree"
}

# ---------------------------------------------------- the plugin per arch
# PLUGIN_DIR_<arch>: the build whose tcpconnlat.so, tests/tcpclient and BPF
# objects go into the guest. amd64: the build this runs from; arm64: a cross
# build of the same sources (configure --host=aarch64-linux-gnu), kept under
# KERNEL_CACHE and brought up to date by make on every run.
plugin_build() { # ARCH -> sets PBUILD
	local arch=$1 b want
	case $arch in
	amd64)
		PBUILD=$BUILDDIR
		want="x86-64"
		make -C "$PBUILD" -s tests/tcpclient >/dev/null || return 1
		;;
	arm64)
		PBUILD=$KDIR/build-arm64
		want="ARM aarch64"
		b=$PBUILD
		[[ ! -f "$SRCDIR/config.status" ]] ||
			{ echo "check-kernels: $SRCDIR is configured in-tree; the arm64 cross build needs an out-of-tree source ('make distclean' there)" >&2; return 1; }
		command -v aarch64-linux-gnu-gcc >/dev/null ||
			{ echo "check-kernels: aarch64-linux-gnu-gcc is missing (scripts/deps.sh test installs the cross toolchain)" >&2; return 1; }
		mkdir -p "$b"
		if [[ ! -f "$b/Makefile" ]]; then
			say "configuring the arm64 cross build in $b"
			(cd "$b" && "$SRCDIR/configure" --quiet --host=aarch64-linux-gnu \
				--with-collectd-plugindir=/usr/lib/collectd) >"$KDIR/logs/build-arm64.log" 2>&1 ||
				{ echo "check-kernels: configure --host=aarch64-linux-gnu failed (see $KDIR/logs/build-arm64.log)" >&2; return 1; }
		fi
		say "building the plugin for arm64 (cross, $b)"
		make -C "$b" -j"$(nproc)" all tests/tcpclient >>"$KDIR/logs/build-arm64.log" 2>&1 ||
			{ echo "check-kernels: the arm64 cross build failed (see $KDIR/logs/build-arm64.log)" >&2; return 1; }
		;;
	esac
	file -b "$PBUILD/src/.libs/tcpconnlat.so" | grep -q "$want" ||
		{ echo "check-kernels: $PBUILD/src/.libs/tcpconnlat.so is not a $want object" >&2; return 1; }
}

# overlay ARCH: /init, the suite and the plugin (rebuilt every run).
overlay_cpio() {
	local arch=$1
	local o=$KDIR/run/overlay-$arch
	OVERCPIO=$KDIR/run/overlay-$arch.cpio
	rm -rf "$o"
	mkdir -p "$o/opt/tcl/lib" "$o/opt/tcl/plugin" "$o/opt/tcl/bin" "$o/opt/tcl/bpf"
	install -m 755 "$here/guest-init" "$o/init"
	install -m 755 "$here/guest-smoke.sh" "$o/opt/tcl/guest-smoke.sh"
	install -m 644 "$SRCDIR/tests/lib/collectd.sh" "$SRCDIR/tests/lib/netns.sh" "$o/opt/tcl/lib/"
	install -m 755 "$PBUILD/src/.libs/tcpconnlat.so" "$o/opt/tcl/plugin/"
	install -m 755 "$PBUILD/tests/tcpclient" "$o/opt/tcl/bin/"
	install -m 644 "$PBUILD"/bpf/*.bpf.o "$o/opt/tcl/bpf/" 2>/dev/null || true
	(cd "$o" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$OVERCPIO"
}

# ----------------------------------------------------------------- boot
boot() { # ARCH INITRD LOG
	local arch=$1 initrd=$2 log=$3 append="quiet loglevel=3 panic=-1"
	case $arch in
	amd64)
		timeout -k 10 "$KERNEL_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max \
			-smp "$GUEST_CPUS" -m "$GUEST_MEM" -nodefaults -no-user-config \
			-display none -serial stdio -no-reboot \
			-kernel "$KIMAGE" -initrd "$initrd" -append "console=ttyS0 $append" \
			</dev/null >"$log" 2>&1
		;;
	arm64)
		timeout -k 10 "$KERNEL_TIMEOUT" qemu-system-aarch64 -M virt -accel tcg \
			-cpu max,pauth-impdef=on -smp "$GUEST_CPUS" -m "$GUEST_MEM" -nodefaults \
			-no-user-config -display none -serial stdio -no-reboot \
			-kernel "$KIMAGE" -initrd "$initrd" -append "console=ttyAMA0 $append" \
			</dev/null >"$log" 2>&1
		;;
	esac
}

# ------------------------------------------------------------- verdicts
minimum_of() { # CHECK -> X.Y
	awk -v c="$1" '$1 == c { print $2; exit }' "$here/minimums"
}
# version_lt A B: A < B for X.Y[.Z] kernel versions
version_lt() {
	[[ "$1" != "$2" ]] && [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$1" ]]
}

# judge TOKEN ARCH LOG -> results/TOKEN.tsv; returns 0 when the kernel passed
judge() {
	local token=$1 arch=$2 log=$3 out=$KDIR/results/$1.tsv uname kver c line st detail min bad=0 when rev
	uname=$(sed -n 's/^TCLK info uname //p' "$log" | tr -d '\r' | head -n 1)
	uname=${uname:-$KREL}
	kver=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$uname")
	when=$(date -u +%Y-%m-%d)
	rev=$(git -C "$SRCDIR" describe --always --dirty 2>/dev/null || echo unknown)
	: >"$out.new"
	for c in "${CHECKS[@]}"; do
		line=$(tr -d '\r' <"$log" | grep -m1 "^TCLK result $c ")
		if [[ -z "$line" ]]; then
			st=fail detail="no result: $GUEST_END"
		else
			line=${line#"TCLK result $c "}
			st=${line%% *} detail=${line#* }
			min=$(minimum_of "$c")
			case $st in
			pass) st=proven ;;
			limit)
				if [[ -n "$min" ]] && version_lt "$kver" "$min"; then
					st=limit detail="$detail (older than the documented minimum, $min)"
				else
					st=fail detail="refused on $kver, which the README supports (minimum ${min:-none}): $detail"
				fi
				;;
			*) st=fail ;;
			esac
		fi
		[[ $st == fail ]] && bad=1
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$token" "$KPKG" "$KVER" "$uname" "$arch" "$c" "$st" "$detail" "$when $rev" >>"$out.new"
		printf '  %-11s %-7s %s\n' "$c" "$st" "$detail"
	done
	mv "$out.new" "$out"
	return $bad
}

# ----------------------------------------------------------------- main
passed=0 failed=0 summary=()
declare -A ARCH_READY=()
for token in $KERNELS; do
	if [[ $token == *arm64* ]]; then arch=arm64; else arch=amd64; fi
	log=$KDIR/logs/$token.log
	: >"$log"
	say "=== $token ($arch)"
	why=
	if ! resolve "$token"; then
		why=$RESOLVE_ERR
	elif ! prepare_kernel; then
		why="$KDEB could not be unpacked, holds no kernel image, or its modules could not be staged"
	else
		# the root file system and the plugin, once per architecture and run
		if [[ -z "${ARCH_READY[$arch]:-}" ]]; then
			if rootfs "$arch" && plugin_build "$arch" && overlay_cpio "$arch"; then
				ARCH_READY[$arch]="$ROOTCPIO $OVERCPIO $PBUILD"
			else
				ARCH_READY[$arch]=broken
			fi
		fi
		[[ ${ARCH_READY[$arch]} != broken ]] ||
			why="the $arch guest could not be prepared (see the messages above)"
	fi
	if [[ -n "$why" ]]; then
		say "FAIL $token: $why"
		echo "$why" >>"$log"
		summary+=("FAIL $token: $why")
		failed=$((failed + 1))
		continue
	fi
	read -r ROOTCPIO OVERCPIO PBUILD <<<"${ARCH_READY[$arch]}"
	initrd=$KDIR/run/initrd-$token.cpio
	cat "$ROOTCPIO" "$MODCPIO" "$OVERCPIO" >"$initrd"
	say "$token: $KPKG $KVER ($KREL), modules: $(paste -sd' ' "$KX/modules.notes" 2>/dev/null | sed 's/^$/all loaded as modules/')"
	t0=$(date +%s)
	boot "$arch" "$initrd" "$log"
	rc=$?
	secs=$(($(date +%s) - t0))
	rm -f "$initrd"
	if grep -q '^TCLK done' <(tr -d '\r' <"$log"); then
		GUEST_END="the suite ended without reporting it"
	elif ((rc == 124 || rc == 137)); then
		GUEST_END="the guest did not finish within KERNEL_TIMEOUT=${KERNEL_TIMEOUT}s"
	elif ! grep -q '^TCLK booted' <(tr -d '\r' <"$log"); then
		GUEST_END="the guest did not boot to its init (qemu exit $rc; last line: $(tr -d '\r' <"$log" | grep -v '^$' | tail -n 1))"
	else
		GUEST_END="the guest stopped before the suite ended (qemu exit $rc; last line: $(tr -d '\r' <"$log" | grep -v '^$' | tail -n 1))"
	fi
	say "$token: guest ran ${secs}s (log: $log)"
	if judge "$token" "$arch" "$log"; then
		st=PASS
		passed=$((passed + 1))
	else
		st=FAIL
		failed=$((failed + 1))
	fi
	lim=$(awk -F'\t' '$7 == "limit"' "$KDIR/results/$token.tsv" | wc -l)
	note=
	((lim == 0)) || note=": $lim checks refused by a documented kernel limit"
	summary+=("$st $token ($KREL, $arch)$note")
done

echo
printf '%s\n' "${summary[@]}"
if "$here/table.sh" "$KDIR" >"$KDIR/matrix.md" 2>/dev/null; then
	say "matrix of the last run of each kernel: $KDIR/matrix.md ('make kernel-matrix-readme' puts it into README.md)"
fi
echo "kernels: $passed passed, $failed failed"
((failed == 0))
