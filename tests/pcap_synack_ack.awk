# pcap_synack_ack.awk - the server's view of a handshake from a capture taken
# on the server side: the time from the first SYN-ACK it sent to the first
# packet of the client that acknowledges it (the final ACK, or anything after
# it, e.g. the ACK a client sends for a retransmitted SYN-ACK).
#
#   tcpdump -r FILE -n -tt --time-stamp-precision=nano | awk -v server=ADDR.PORT -f pcap_synack_ack.awk
#
# Prints "<client-port> <nanoseconds> <SYN-ACKs sent>" per completed
# handshake. The first SYN-ACK starts the clock, as the kernel's request
# socket keeps it (snt_synack) and the plugin times a handshake whose SYN-ACK
# was retransmitted; the third column says how many SYN-ACKs were sent.
# A SYN with a new sequence number from a client port starts a new handshake
# (port reuse after a handshake that never completed); the same SYN again is a
# retransmission of the client's.

function flags_of(   i) {
	for (i = 6; i <= NF; i++)
		if ($i == "Flags")
			return $(i + 1)
	return ""
}

function seq_of(   i, s) {
	for (i = 6; i < NF; i++)
		if ($i == "seq") {
			s = $(i + 1)
			sub(/,$/, "", s)
			return s
		}
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
	if (dst == server && flags == "[S],") {
		if ((src in isn) && isn[src] != seq_of()) {
			delete sa_sec[src]
			delete sa_ns[src]
			delete nsa[src]
		}
		isn[src] = seq_of()
	} else if (src == server && flags == "[S.],") {
		if (!(dst in sa_sec)) {
			sa_sec[dst] = t[1] + 0
			sa_ns[dst] = t[2] + 0
		}
		nsa[dst]++
	} else if (dst == server && (src in sa_sec) && flags !~ /S/) {
		printf "%s %d %d\n", port_of(src), (t[1] - sa_sec[src]) * 1000000000 + (t[2] - sa_ns[src]), nsa[src]
		delete sa_sec[src]
		delete sa_ns[src]
		delete nsa[src]
		delete isn[src]
	}
}
