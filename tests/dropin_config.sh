#!/usr/bin/env bash
# The shipped drop-in works with the real plugin: as shipped (defaults), and
# with every option uncommented (each shown default is valid).
set -euo pipefail
. "$(dirname "$0")/lib/collectd.sh"

tcl_require_root
tcl_init
TCL_SRCDIR=${TCL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
dropin=$TCL_SRCDIR/collectd.conf.d/tcpconnlat.conf

run_with() { # DROPIN_FILE LABEL
	cat >"$TCL_WORK/collectd.conf" <<-EOF
		Hostname "$TCL_HOST"
		FQDNLookup false
		BaseDir "$TCL_WORK"
		TypesDB "/usr/share/collectd/types.db"
		PluginDir "$TCL_STOCK_PLUGINDIR"
		LoadPlugin logfile
		<Plugin logfile>
		  LogLevel info
		  File "$TCL_WORK/collectd.log"
		</Plugin>
		PluginDir "$TCL_PLUGIN_DIR"
		Include "$1"
	EOF
	: >"$TCL_WORK/collectd.log"
	# -T: parse, init every plugin, run each read once, exit.
	collectd -T -C "$TCL_WORK/collectd.conf" >"$TCL_WORK/stdout" 2>&1 ||
		fail "$2: collectd -T failed: $(cat "$TCL_WORK/stdout")"
	grep -q "tcpconnlat plugin: measuring TCP connect latency" "$TCL_WORK/collectd.log" ||
		fail "$2: the plugin did not start"
	if grep -q "tcpconnlat plugin:.*expected\|unknown option" "$TCL_WORK/collectd.log"; then
		fail "$2: configuration errors logged"
	fi
	wait_no_bpf_left "$2"
	pass "$2"
}

run_with "$dropin" "the drop-in as shipped"
# "#Key value" lines show defaults; "##Key value" lines are examples.
sed -E 's/^([[:space:]]*)#([A-Z][A-Za-z]+[[:space:]])/\1\2/' "$dropin" >"$TCL_WORK/all-options.conf"
n=$(grep -cE '^[[:space:]]+(Percentile|Bucket|Report|AttachMode|MaxInflight|Verbose|MaxSeries|SeriesTimeout|OwnNetnsOnly)' "$TCL_WORK/all-options.conf")
((n >= 20)) || fail "uncommenting found only $n options in the drop-in"
run_with "$TCL_WORK/all-options.conf" "the drop-in with all $n options uncommented"
