/*
 * nfq_delay - hold packets of an NFQUEUE for a fixed time, then accept them.
 *
 *   nfq_delay -q QUEUE_NUM -d DELAY_MS [--every N]
 *
 * Every packet read from queue QUEUE_NUM is held for DELAY_MS milliseconds,
 * counted from the moment it was received from the queue (CLOCK_MONOTONIC),
 * then given an NF_ACCEPT verdict.  Packets are held independently: packets
 * that arrive together are all released DELAY_MS after their own arrival
 * (one timerfd armed for the earliest pending release; the delay is constant,
 * so release order is arrival order; packets due together get one batch
 * verdict).  DELAY_MS may have a fractional part.
 *
 * --every N delays only every Nth packet (the Nth, 2Nth, ...; N=1, the
 * default, delays all) and accepts the others at once.
 *
 * Prints "ready" on stdout once bound to the queue.  On SIGTERM/SIGINT it
 * accepts every packet still held, unbinds, prints
 * "nfq_delay: packets=N delayed=N" on stderr and exits 0.
 * Exit status 1 on setup errors, 2 on usage errors.
 *
 * Link with -lnetfilter_queue.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

struct held {
	uint32_t id;
	int64_t release_ns;
};

/* FIFO ring of held packets (release times are non-decreasing). */
static struct held *ring;
static size_t ring_cap, ring_head, ring_len;

static struct nfq_q_handle *qh;
static int64_t delay_ns;
static unsigned long every = 1;
static unsigned long long n_packets, n_delayed, n_verdict_errors;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nfq_delay -q QUEUE_NUM -d DELAY_MS [--every N]\n");
}

static void accept_packet(uint32_t id)
{
	if (nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL) < 0) {
		n_verdict_errors++;
		if (n_verdict_errors <= 10)
			fprintf(stderr, "nfq_delay: verdict for packet %u failed: %s\n",
				id, strerror(errno));
	}
}

static int ring_push(uint32_t id, int64_t release_ns)
{
	if (ring_len == ring_cap) {
		size_t ncap = ring_cap ? ring_cap * 2 : 1024, i;
		struct held *n = malloc(ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		for (i = 0; i < ring_len; i++)
			n[i] = ring[(ring_head + i) % ring_cap];
		free(ring);
		ring = n;
		ring_cap = ncap;
		ring_head = 0;
	}
	ring[(ring_head + ring_len) % ring_cap] = (struct held){ id, release_ns };
	ring_len++;
	return 0;
}

/* Accept every held packet whose time has come (all of them if force).
 * One batch verdict covers them all: the kernel accepts every packet still in
 * its queue with an id up to the last due one.  That is exactly the due set:
 * held packets are in id order (arrival order, constant delay), the packets
 * not delayed got their verdict on arrival, and packets not read yet have
 * higher ids. */
static void release_due(int force)
{
	int64_t now = mono_ns();
	uint32_t last = 0;
	size_t n = 0;

	while (ring_len > 0) {
		struct held *h = &ring[ring_head];

		if (!force && h->release_ns > now)
			break;
		last = h->id;
		n++;
		ring_head = (ring_head + 1) % ring_cap;
		ring_len--;
	}
	if (n == 1) {
		accept_packet(last);
	} else if (n > 1 && nfq_set_verdict_batch(qh, last, NF_ACCEPT) < 0) {
		n_verdict_errors++;
		if (n_verdict_errors <= 10)
			fprintf(stderr, "nfq_delay: batch verdict up to packet %u failed: %s\n",
				last, strerror(errno));
	}
}

static int arm_timer(int tfd)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (ring_len > 0) {
		int64_t t = ring[ring_head].release_ns;

		if (t <= 0)
			t = 1;
		its.it_value.tv_sec = t / 1000000000LL;
		its.it_value.tv_nsec = t % 1000000000LL;
	}
	/* all-zero it_value disarms */
	return timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int on_packet(struct nfq_q_handle *q, struct nfgenmsg *msg,
		     struct nfq_data *nfa, void *data)
{
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	int64_t now = mono_ns();
	uint32_t id;

	(void)q;
	(void)msg;
	(void)data;
	if (ph == NULL)
		return 0;
	id = ntohl(ph->packet_id);
	n_packets++;
	if (delay_ns <= 0 || n_packets % every != 0) {
		accept_packet(id);
		return 0;
	}
	if (ring_push(id, now + delay_ns) != 0) {
		fprintf(stderr, "nfq_delay: out of memory, accepting packet %u at once\n", id);
		accept_packet(id);
		return 0;
	}
	n_delayed++;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_EVERY = 1000, OPT_HELP };
	static const struct option longopts[] = {
		{ "every", required_argument, NULL, OPT_EVERY },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	static char buf[65536] __attribute__((aligned));
	struct nfq_handle *h;
	long queue_num = -1;
	double delay_ms = -1;
	unsigned long long enobufs = 0;
	sigset_t sigs;
	int opt, nfd, tfd, sfd, running = 1;
	char *end;

	while ((opt = getopt_long(argc, argv, "q:d:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			errno = 0;
			queue_num = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || queue_num < 0 || queue_num > 65535)
				goto bad;
			break;
		case 'd':
			errno = 0;
			delay_ms = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(delay_ms >= 0 && delay_ms <= 3600000))
				goto bad;
			break;
		case OPT_EVERY:
			errno = 0;
			every = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || every < 1)
				goto bad;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc || queue_num < 0 || delay_ms < 0)
		goto bad;
	delay_ns = (int64_t)(delay_ms * 1e6 + 0.5);

	/* Precise wake-ups: the default 50 us timer slack is not needed here. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (sfd < 0 || tfd < 0) {
		perror("nfq_delay: signalfd/timerfd");
		return 1;
	}

	h = nfq_open();
	if (h == NULL) {
		perror("nfq_delay: nfq_open");
		return 1;
	}
	/* No-ops on kernels >= 3.8; kept for older ones, failures ignored. */
	nfq_unbind_pf(h, AF_INET);
	nfq_unbind_pf(h, AF_INET6);
	nfq_bind_pf(h, AF_INET);
	nfq_bind_pf(h, AF_INET6);

	qh = nfq_create_queue(h, (uint16_t)queue_num, on_packet, NULL);
	if (qh == NULL) {
		fprintf(stderr, "nfq_delay: cannot bind queue %ld: %s\n", queue_num,
			strerror(errno));
		nfq_close(h);
		return 1;
	}
	if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
		perror("nfq_delay: nfq_set_mode");
		nfq_destroy_queue(qh);
		nfq_close(h);
		return 1;
	}
	if (nfq_set_queue_maxlen(qh, 16384) < 0)
		perror("nfq_delay: nfq_set_queue_maxlen (ignored)");
	nfd = nfq_fd(h);
	{
		/* room for bursts of queued packets (FORCE works as root) */
		int rcvbuf = 8 * 1024 * 1024;

		if (setsockopt(nfd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0)
			setsockopt(nfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	}

	printf("ready\n");
	fflush(stdout);

	while (running) {
		struct pollfd pfd[3] = {
			{ .fd = nfd, .events = POLLIN },
			{ .fd = tfd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};

		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("nfq_delay: poll");
			break;
		}
		if (pfd[0].revents) {
			for (;;) {
				ssize_t n = recv(nfd, buf, sizeof(buf), MSG_DONTWAIT);

				if (n > 0) {
					nfq_handle_packet(h, buf, (int)n);
					continue;
				}
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 && errno == ENOBUFS) {
					/* kernel dropped messages: they are lost (the
					 * packets get dropped by the queue); go on */
					if (enobufs++ < 10)
						fprintf(stderr, "nfq_delay: ENOBUFS, messages lost\n");
					continue;
				}
				break; /* EAGAIN */
			}
		}
		if (pfd[1].revents) {
			uint64_t exp;

			if (read(tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
				perror("nfq_delay: read timerfd");
		}
		if (pfd[2].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) > 0)
				running = 0;
		}
		release_due(!running);
		if (arm_timer(tfd) != 0) {
			perror("nfq_delay: timerfd_settime");
			release_due(1);
			break;
		}
	}

	release_due(1);
	nfq_destroy_queue(qh);
	nfq_close(h);
	free(ring);
	fprintf(stderr, "nfq_delay: packets=%llu delayed=%llu\n", n_packets, n_delayed);
	return 0;

bad:
	fprintf(stderr, "nfq_delay: invalid or missing arguments\n");
	usage(stderr);
	return 2;
}
