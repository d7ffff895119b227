#!/usr/bin/env bash
# Draws tcpconnlat's values from collectd's rrdtool writer as PNG graphs.
#
#   contrib/graphs.sh [-o OUTDIR] [-s START] [-e END] [-i INSTANCE] [-w WIDTH] HOSTDIR
#
#   HOSTDIR    the rrdtool plugin's DataDir/HOST, e.g. /var/lib/collectd/rrd/myhost
#              (Debian's collectd.conf: DataDir /var/lib/collectd/rrd)
#   -o OUTDIR  where the PNGs go (default: the current directory)
#   -s START   -e END   rrdtool time specs or epoch seconds (default: the last hour)
#   -i INSTANCE  plugin instance (default: all, i.e. tcpconnlat-all)
#   -w WIDTH   plot width in pixels (default: 800)
#
# Writes:
#   tcpconnlat-latency.png   latency percentiles, average and max over time
#   tcpconnlat-rates.png     connects per second: established up, failures
#                            (refused, timeout, unreachable, aborted, other,
#                            local) down
#   tcpconnlat-buckets.png   heat map: the share of each interval's connects
#                            in each latency bucket, with p50 and p99 on top
#   tcpconnlat-graphs.png    the three stacked in one image (needs python3)
#
# Needs rrdtool (Debian package rrdtool). Works on whatever percentiles and
# buckets the plugin was configured with: it draws the files it finds.
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
}

outdir=. start=end-1h end=now instance=all width=800
while getopts o:s:e:i:w:h opt; do
	case $opt in
	o) outdir=$OPTARG ;;
	s) start=$OPTARG ;;
	e) end=$OPTARG ;;
	i) instance=$OPTARG ;;
	w) width=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# == 1)) || usage
command -v rrdtool >/dev/null || {
	echo "$0: rrdtool is not installed (apt-get install rrdtool)" >&2
	exit 1
}
dir=$1/tcpconnlat-$instance
[[ -d "$dir" ]] || {
	echo "$0: no $dir: is HOSTDIR the rrdtool plugin's DataDir/HOST, and is tcpconnlat loaded?" >&2
	exit 1
}
mkdir -p "$outdir"

# rrdtool wants ':' escaped in DEF file names.
rrd() { local f="$dir/$1.rrd"; echo "${f//:/\\:}"; }
have() { [[ -f "$dir/$1.rrd" ]]; }

# --width/--height are the plot area; the legend goes below it.
common=(--start "$start" --end "$end" --width "$width" --disable-rrdtool-tag
	--font DEFAULT:9: --font TITLE:11: --color BACK#ffffff --color CANVAS#ffffff
	--color SHADEA#ffffff --color SHADEB#ffffff --border 0 --imgformat PNG)
files=()
graph() { # FILE HEIGHT ARGS...: rrdtool graph, quiet on success
	local f=$1 h=$2
	shift 2
	rrdtool graph "$outdir/$f" "${common[@]}" --height "$h" "$@" >/dev/null
	echo "graphs: wrote $outdir/$f"
	files+=("$outdir/$f")
}
# legend entries two to a line: $eol is "\l" after every second one
n_legend=0 eol=
next_legend() {
	n_legend=$((n_legend + 1))
	if ((n_legend % 2)); then eol=; else eol='\l'; fi
}

# --- latency percentiles, average, max ---------------------------------------
mapfile -t pcts < <(find "$dir" -maxdepth 1 -name 'latency-percentile-*.rrd' -printf '%f\n' |
	sed 's/^latency-percentile-//; s/\.rrd$//' | sort -g)
pct_colors=('#1b9e77' '#1f78b4' '#e6ab02' '#d95f02' '#e7298a' '#7570b3')
args=(--title "TCP connect latency, tcpconnlat-$instance (log scale)" --vertical-label seconds
	--logarithmic --units=si)
series=()
for i in "${!pcts[@]}"; do
	series+=("latency-percentile-${pcts[i]}|p${pcts[i]}|LINE2|${pct_colors[i % ${#pct_colors[@]}]}|")
done
have latency-average && series+=("latency-average|average|LINE1|#000000|")
have latency-max && series+=("latency-max|max|LINE1|#888888|:dashes")
n_legend=0
for i in "${!series[@]}"; do
	IFS='|' read -r file label kind color extra <<<"${series[i]}"
	next_legend
	args+=("DEF:l$i=$(rrd "$file"):value:AVERAGE"
		"$kind:l$i$color:$(printf '%-8s' "$label")$extra"
		"GPRINT:l$i:AVERAGE:avg %5.1lf %ss"
		"GPRINT:l$i:MAX:max %5.1lf %ss$eol")
done
if ((${#series[@]})); then
	[[ -n "$eol" ]] || args+=("COMMENT:\\l")
	graph tcpconnlat-latency.png 200 "${args[@]}"
else
	echo "graphs: no latency files in $dir (ReportPercentiles false?)" >&2
fi

# --- connects and failures per second ----------------------------------------
# The totals are DERIVE: the RRD files hold rates (connects per second).
args=(--title "TCP connects per second, tcpconnlat-$instance: established up, failed down"
	--vertical-label "connects/s" --units=si)
n_legend=0
if have total_connections-established; then
	next_legend
	args+=("DEF:est=$(rrd total_connections-established):value:AVERAGE"
		"AREA:est#66bb6a:established"
		"GPRINT:est:AVERAGE:avg %5.1lf/s" "GPRINT:est:MAX:max %5.1lf/s$eol")
fi
stack=
for f in refused:#fb8c00 timeout:#e53935 unreachable:#8e24aa aborted:#9e9e9e other:#6d4c41 local:#1e88e5; do
	name=${f%%:*} color=${f#*:}
	have "total_connections-$name" || continue
	next_legend
	args+=("DEF:$name=$(rrd "total_connections-$name"):value:AVERAGE" "CDEF:n$name=0,$name,-"
		"AREA:n$name$color:$(printf '%-11s' "$name")$stack"
		"GPRINT:$name:AVERAGE:avg %5.1lf/s" "GPRINT:$name:MAX:max %5.1lf/s$eol")
	stack=:STACK
done
[[ -n "$eol" ]] || args+=("COMMENT:\\l")
args+=("HRULE:0#000000")
graph tcpconnlat-rates.png 150 "${args[@]}"

# --- heat map of the latency buckets -----------------------------------------
# Each bucket [LO, HI) is a band from LO to HI on a logarithmic latency axis,
# coloured by the share of the interval's connects that fell into it.
mapfile -t buckets < <(find "$dir" -maxdepth 1 -name 'bucket-latency-*.rrd' -printf '%f\n' |
	sed 's/^bucket-latency-//; s/\.rrd$//' | sort -t_ -k1,1g)
if ((${#buckets[@]})); then
	# The buckets that had connects in the time range set the axis.
	pr=(--start "$start" --end "$end")
	for i in "${!buckets[@]}"; do
		pr+=("DEF:b$i=$(rrd "bucket-latency-${buckets[i]}"):value:AVERAGE" "VDEF:m$i=b$i,MAXIMUM"
			"PRINT:m$i:%.9lf")
	done
	mapfile -t maxes < <(rrdtool graph /dev/null "${pr[@]}" | tail -n +2)
	ymin='' ymax=''
	for i in "${!buckets[@]}"; do
		awk -v m="${maxes[i]:-nan}" 'BEGIN { exit !(m ~ /^[0-9.]+$/ && m > 0) }' || continue
		lo=${buckets[i]%_*} hi=${buckets[i]#*_}
		[[ "$hi" == inf ]] && hi=$(awk -v l="$lo" 'BEGIN { print l * 4 }')
		[[ "$lo" == 0 ]] && lo=$(awk -v h="$hi" 'BEGIN { print h / 10 }')
		if [[ -z "$ymin" ]] || awk -v a="$lo" -v b="$ymin" 'BEGIN { exit !(a < b) }'; then ymin=$lo; fi
		if [[ -z "$ymax" ]] || awk -v a="$hi" -v b="$ymax" 'BEGIN { exit !(a > b) }'; then ymax=$hi; fi
	done
	[[ -n "$ymin" ]] || ymin=0.00001 ymax=1
	# share of the interval's connects: upper bounds, colours, legend
	levels=(0.02 0.10 0.25 0.50 1.01)
	colors=('#fff3b0' '#ffd166' '#f79d65' '#e4572e' '#9b2226')
	labels=("< 2 %" "2-10 %" "10-25 %" "25-50 %" ">= 50 %")
	args=(--title "Share of connects per latency bucket, tcpconnlat-$instance (log scale)"
		--vertical-label seconds --logarithmic --units=si
		--lower-limit "$ymin" --upper-limit "$ymax" --rigid)
	sum=
	for i in "${!buckets[@]}"; do
		args+=("DEF:b$i=$(rrd "bucket-latency-${buckets[i]}"):value:AVERAGE")
		sum=${sum:+$sum,}b$i,UN,0,b$i,IF${sum:+,+}
	done
	args+=("CDEF:total=$sum")
	for i in "${!buckets[@]}"; do
		lo=${buckets[i]%_*} hi=${buckets[i]#*_}
		[[ "$hi" == inf ]] && hi=$ymax
		# the band, clipped to the axis (RPN numbers: no exponents)
		bot=$(awk -v l="$lo" -v y="$ymin" 'BEGIN { printf "%.10f", (l < y ? y : l) }')
		top=$(awk -v h="$hi" -v y="$ymax" 'BEGIN { printf "%.10f", (h > y ? y : h) }')
		awk -v b="$bot" -v t="$top" 'BEGIN { exit !(t > b) }' || continue
		# s: share; an invisible area up to the band's bottom, then the band
		args+=("CDEF:s$i=total,0,GT,b$i,UN,0,b$i,IF,total,/,0,IF"
			"CDEF:base$i=s$i,UN,0,0,IF,$bot,+" "AREA:base$i#00000000")
		prev=0
		for l in "${!levels[@]}"; do
			args+=("CDEF:h${i}_$l=s$i,$prev,GT,s$i,${levels[l]},LE,*,$top,$bot,-,0,IF"
				"AREA:h${i}_$l${colors[l]}::STACK")
			prev=${levels[l]}
		done
	done
	# the legend: empty (UNKN) areas that only show the colours
	args+=("CDEF:nil=total,UN,UNKN,UNKN,IF" "COMMENT:share of the interval's connects\\:")
	for l in "${!levels[@]}"; do
		args+=("AREA:nil${colors[l]}:${labels[l]}")
	done
	args+=("COMMENT:\\l")
	have latency-percentile-50 &&
		args+=("DEF:q50=$(rrd latency-percentile-50):value:AVERAGE" "LINE1:q50#000000:p50")
	have latency-percentile-99 &&
		args+=("DEF:q99=$(rrd latency-percentile-99):value:AVERAGE" "LINE1:q99#000000:p99:dashes")
	args+=("COMMENT:\\l")
	graph tcpconnlat-buckets.png 200 "${args[@]}"
fi

# --- all in one image --------------------------------------------------------------------
if command -v python3 >/dev/null && ((${#files[@]} > 1)); then
	python3 - "$outdir/tcpconnlat-graphs.png" "${files[@]}" <<'PY'
# Stack PNGs of the same width vertically (8-bit RGB/RGBA, non-interlaced,
# as rrdtool writes them); only the standard library.
import struct, sys, zlib

def read_png(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', path
    pos, idat, hdr = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b'IHDR':
            hdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, (path, hdr)
    bpp = 4 if ctype == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pr) & 255
        prev = line
        if ctype == 2:  # RGB to RGBA
            line = bytearray(b''.join(bytes(line[i:i + 3]) + b'\xff' for i in range(0, stride, 3)))
        rows.append(bytes(line))
    return w, rows

def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))

out, paths = sys.argv[1], sys.argv[2:]
imgs = [read_png(p) for p in paths]
width = max(w for w, _ in imgs)
sep = bytes([255, 255, 255, 255]) * width
rows = []
for i, (w, r) in enumerate(imgs):
    if i:
        rows += [sep] * 8
    pad = bytes([255, 255, 255, 255]) * (width - w)
    rows += [line + pad for line in r]
raw = b''.join(b'\x00' + line for line in rows)
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, len(rows), 8, 6, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
open(out, 'wb').write(png)
PY
	echo "graphs: wrote $outdir/tcpconnlat-graphs.png (all three)"
fi
