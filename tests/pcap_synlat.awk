# pcap_synlat.awk - TCP handshake times from a packet capture, the ground
# truth of the accuracy tests when many clients run at once.
#
#   tcpdump -r FILE -n -tt --time-stamp-precision=nano | awk -f pcap_synlat.awk
#
# Pairs each SYN with the SYN-ACK of the same 4-tuple (reversed) and prints
# the time between them in nanoseconds, one line per connect, in the order the
# SYN-ACKs were seen.  The first SYN of a tuple starts the clock (as the
# kernel's SYN_SENT does); a second SYN before the SYN-ACK is a retransmit.
# A tuple seen again after its SYN-ACK (port reuse) starts a new pair.
# With -v tuples=1 each line also names the SYN's source and destination
# ("NS SRC DST", as tcpdump prints them: address.port).
# On stderr: "pcap: syn=N paired=N retrans=N orphan_synack=N".
#
# Timestamps are split into seconds and nanoseconds: a double cannot hold
# both at once.

function flags_of(   i) {
	for (i = 6; i <= NF; i++)
		if ($i == "Flags")
			return $(i + 1)
	return ""
}

$2 == "IP" || $2 == "IP6" {
	src = $3
	dst = $5
	sub(/:$/, "", dst)
	flags = flags_of()
	split($1, t, ".")
	if (flags == "[S],") {
		k = src " " dst
		if (k in syn_sec) {
			retrans++
		} else {
			syn_sec[k] = t[1] + 0
			syn_ns[k] = t[2] + 0
			nsyn++
		}
	} else if (flags == "[S.],") {
		k = dst " " src
		if (k in syn_sec) {
			printf "%.0f", (t[1] - syn_sec[k]) * 1e9 + (t[2] - syn_ns[k])
			if (tuples)
				printf " %s", k
			printf "\n"
			delete syn_sec[k]
			delete syn_ns[k]
			npair++
		} else {
			orphan++
		}
	}
}

END {
	printf "pcap: syn=%d paired=%d retrans=%d orphan_synack=%d\n",
		nsyn, npair, retrans, orphan > "/dev/stderr"
}
