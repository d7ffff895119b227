# pcap_synack_ack.awk - the server's view of a handshake from a capture taken
# on the server side: the time from each SYN-ACK it sent to the first packet
# of the client that acknowledges it (the final ACK, or anything after it).
#
#   tcpdump -r FILE -n -tt --time-stamp-precision=nano | awk -v server=ADDR.PORT -f pcap_synack_ack.awk
#
# Prints "<client-port> <nanoseconds>" per completed handshake. The SYN-ACK
# that starts the clock is the last one sent before the ACK (a retransmitted
# SYN-ACK restarts it, as the kernel's request socket does).

function flags_of(   i) {
	for (i = 6; i <= NF; i++)
		if ($i == "Flags")
			return $(i + 1)
	return ""
}

function port_of(a,   n, p) {
	n = split(a, p, ".")
	return p[n]
}

$2 == "IP" || $2 == "IP6" {
	src = $3
	dst = $5
	sub(/:$/, "", dst)
	flags = flags_of()
	split($1, t, ".")
	if (src == server && flags == "[S.],") {
		sa_sec[dst] = t[1] + 0
		sa_ns[dst] = t[2] + 0
	} else if (dst == server && (src in sa_sec) && flags !~ /S/) {
		printf "%s %d\n", port_of(src), (t[1] - sa_sec[src]) * 1000000000 + (t[2] - sa_ns[src])
		delete sa_sec[src]
		delete sa_ns[src]
	}
}
