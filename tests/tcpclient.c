/*
 * tcpclient - TCP connect / listen helper for the tcpconnlat tests.
 *
 *   tcpclient listen  -a ADDR -p PORT [-b BACKLOG] [--fastopen]
 *   tcpclient connect -a ADDR -p PORT -n COUNT [-c CONCURRENCY] [-t TIMEOUT_MS]
 *                     [--abort-after-ms MS] [--hold-ms MS] [--comm NAME] [-q]
 *                     [--fastopen]
 *
 * listen:  binds ADDR:PORT (IPv4 or IPv6 by the syntax of ADDR; SO_REUSEADDR;
 *          IPV6_V6ONLY for IPv6), accepts and closes connections in a thread,
 *          prints "ready <port>" on stdout once listening (PORT 0 picks an
 *          ephemeral port) and runs until SIGTERM/SIGINT.
 *
 * connect: makes COUNT connects from CONCURRENCY threads and prints one line
 *          per connect on stdout:
 *            <result> <duration_ns> <local_addr> <local_port> <remote_addr> <remote_port> <errno>
 *          result: ok | refused | timeout | unreachable | aborted | other:<errno>
 *          errno: what the kernel returned for the connect, by name
 *          (ECONNREFUSED, EADDRNOTAVAIL, ...: connect()'s own error, or
 *          SO_ERROR once the socket polled writable); 0 when it succeeded or
 *          when the client gave up itself (-t / --abort-after-ms reached:
 *          result timeout / aborted) and closed the socket.
 *          and on stderr at the end:
 *            summary ok=N refused=N timeout=N unreachable=N aborted=N other=N
 *          Without -t / --abort-after-ms the connect() is blocking and timed
 *          around the call.  With -t or --abort-after-ms the connect is
 *          non-blocking; the time runs until the socket polls writable and
 *          SO_ERROR has been read (or until the own timeout / abort point).
 *          -q suppresses the per-connect lines (summary only).
 *          --hold-ms keeps each established connection open and idle that
 *          long before closing it; SIGUSR1 ends every hold at once.
 *
 * --fastopen: TCP Fast Open (net.ipv4.tcp_fastopen must allow it). listen
 *          sets TCP_FASTOPEN and reads the one byte each client sends before
 *          closing. connect (blocking mode only) sets TCP_FASTOPEN_CONNECT
 *          and sends one byte: once the first connect has the server's
 *          cookie, that byte rides in the SYN. The time runs from connect()
 *          until the socket is established (polls writable).
 *          --comm NAME renames the process (prctl PR_SET_NAME, the kernel
 *          keeps 15 bytes) before the first connect, whatever bytes NAME
 *          holds: the tests use it for hostile process names.
 *
 * Exit status: 0 when it ran (whatever the results), 1 on a setup error
 * (listen: bind/listen failed), 2 on usage errors.
 *
 * Depends on libc and pthread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum result {
	RES_OK,
	RES_REFUSED,
	RES_TIMEOUT,
	RES_UNREACHABLE,
	RES_ABORTED,
	RES_OTHER,
	RES_MAX
};

static const char *const result_names[RES_MAX] = {
	"ok", "refused", "timeout", "unreachable", "aborted", "other",
};

struct connect_cfg {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	long count;
	long concurrency;
	long timeout_ms;  /* -1: none */
	long abort_ms;    /* -1: none */
	long hold_ms;     /* keep an established connection idle this long */
	int quiet;
	int fastopen;
};

static struct connect_cfg ccfg;
static atomic_long next_index;
static atomic_long counters[RES_MAX];
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char remote_host[NI_MAXHOST];
/* SIGUSR1 writes to it: every held connection polls its read end */
static int release_pipe[2] = { -1, -1 };
static char remote_serv[NI_MAXSERV];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tcpclient listen  -a ADDR -p PORT [-b BACKLOG]\n"
		"       tcpclient connect -a ADDR -p PORT -n COUNT [-c CONCURRENCY]\n"
		"                         [-t TIMEOUT_MS] [--abort-after-ms MS]\n"
		"                         [--hold-ms MS] [--comm NAME] [-q]\n"
		"       --fastopen with either: TCP Fast Open\n");
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Numeric ADDR + PORT into a sockaddr; the family follows the ADDR syntax. */
static int resolve(const char *addr, const char *port, int passive,
		   struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	rc = getaddrinfo(addr, port, &hints, &res);
	if (rc != 0 || res == NULL) {
		fprintf(stderr, "tcpclient: bad address %s port %s: %s\n", addr, port,
			rc != 0 ? gai_strerror(rc) : "no result");
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void format_addr(const struct sockaddr *sa, socklen_t len, char *host,
			size_t hostlen, char *serv, size_t servlen)
{
	if (getnameinfo(sa, len, host, hostlen, serv, servlen,
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hostlen, "-");
		snprintf(serv, servlen, "-");
	}
}

static int sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

static int addr_unspecified(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return 1;
}

/* getsockname(); returns 1 when it gave an address with a non-zero port. */
static int local_name(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (getsockname(fd, (struct sockaddr *)ss, len) != 0)
		return 0;
	return sockaddr_port(ss) != 0;
}

/* ------------------------------------------------------------------ listen */

static int listen_fastopen;

struct listen_arg {
	int fd;
};

static void *accept_loop(void *p)
{
	struct listen_arg *la = p;

	for (;;) {
		int c = accept4(la->fd, NULL, NULL, SOCK_CLOEXEC);

		if (c >= 0) {
			char byte;

			/* The client's byte: closing with it unread would reset. */
			if (listen_fastopen)
				while (recv(c, &byte, 1, 0) < 0 && errno == EINTR)
					;
			close(c);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of resources: back off briefly instead of spinning. */
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
		}
		/* EINTR, ECONNABORTED, EPROTO, ...: keep accepting. */
	}
	return NULL;
}

static int do_listen(const char *addr, const char *port, long backlog)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct listen_arg la;
	pthread_t thr;
	sigset_t set;
	int one = 1, sig = 0, fd, rc;

	if (resolve(addr, port, 1, &ss, &len) != 0)
		return 2;

	/* Default dispositions, then block: the main thread sigwait()s. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("tcpclient: socket");
		return 1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
		perror("tcpclient: SO_REUSEADDR");
		return 1;
	}
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
		perror("tcpclient: IPV6_V6ONLY");
		return 1;
	}
	if (listen_fastopen) {
		int qlen = SOMAXCONN;

		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) != 0) {
			perror("tcpclient: TCP_FASTOPEN");
			return 1;
		}
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
		fprintf(stderr, "tcpclient: bind %s port %s: %s\n", addr, port,
			strerror(errno));
		return 1;
	}
	if (listen(fd, (int)backlog) != 0) {
		perror("tcpclient: listen");
		return 1;
	}
	if (!local_name(fd, &ss, &len)) {
		perror("tcpclient: getsockname");
		return 1;
	}

	la.fd = fd;
	rc = pthread_create(&thr, NULL, accept_loop, &la);
	if (rc != 0) {
		fprintf(stderr, "tcpclient: pthread_create: %s\n", strerror(rc));
		return 1;
	}

	printf("ready %d\n", sockaddr_port(&ss));
	fflush(stdout);

	while (sigwait(&set, &sig) != 0)
		;
	return 0;
}

/* ----------------------------------------------------------------- connect */

static enum result classify(int err)
{
	switch (err) {
	case 0:
		return RES_OK;
	case ECONNREFUSED:
		return RES_REFUSED;
	case ETIMEDOUT:
		return RES_TIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:
		return RES_UNREACHABLE;
	default:
		return RES_OTHER;
	}
}

/* The errno's symbolic name (glibc 2.32+), else its number. */
static void errno_name(int err, char *buf, size_t len)
{
	const char *name = err ? strerrorname_np(err) : NULL;

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%d", err);
}

static void report(enum result r, int err, int kerr, int64_t dur_ns,
		   const struct sockaddr_storage *local, socklen_t local_len,
		   int have_local)
{
	char lhost[NI_MAXHOST] = "-", lserv[NI_MAXSERV] = "-";
	char res[32], ename[32];

	atomic_fetch_add(&counters[r], 1);
	if (ccfg.quiet)
		return;
	if (have_local) {
		format_addr((const struct sockaddr *)local, local_len, lhost,
			    sizeof(lhost), lserv, sizeof(lserv));
		/* a failed blocking connect leaves the port but clears the address */
		if (addr_unspecified(local))
			snprintf(lhost, sizeof(lhost), "-");
	}
	if (r == RES_OTHER)
		snprintf(res, sizeof(res), "other:%d", err);
	else
		snprintf(res, sizeof(res), "%s", result_names[r]);

	errno_name(kerr, ename, sizeof(ename));

	pthread_mutex_lock(&out_lock);
	printf("%s %lld %s %s %s %s %s\n", res, (long long)dur_ns, lhost, lserv,
	       remote_host, remote_serv, ename);
	pthread_mutex_unlock(&out_lock);
}

/* poll() for writability until the absolute deadline (ns, -1 = none); polls
 * at least once, so a connect already complete at the deadline counts.
 * Returns 1 when writable/error, 0 on deadline. */
static int wait_writable(int fd, int64_t deadline_ns)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int tmo = -1, rc;

		if (deadline_ns >= 0) {
			int64_t left = deadline_ns - mono_ns();

			/* round up to whole ms so we never wake early */
			left = left > 0 ? (left + 999999) / 1000000 : 0;
			tmo = left > INT_MAX ? INT_MAX : (int)left;
		}
		rc = poll(&pfd, 1, tmo);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return 1; /* let SO_ERROR tell */
		if (deadline_ns >= 0 && mono_ns() >= deadline_ns)
			return 0;
	}
}

static void one_connect(void)
{
	const struct sockaddr *ra = (const struct sockaddr *)&ccfg.addr;
	int nonblock = ccfg.timeout_ms >= 0 || ccfg.abort_ms >= 0;
	struct sockaddr_storage local, early;
	socklen_t local_len = 0, early_len = 0;
	int have_local = 0, have_early = 0, gave_up = 0;
	int64_t t0, t1;
	enum result r;
	int fd, err = 0, kerr;

	fd = socket(ccfg.addr.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		err = errno;
		report(RES_OTHER, err, err, 0, NULL, 0, 0);
		return;
	}

	if (ccfg.fastopen) {
		int one = 1;

		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) != 0) {
			err = errno;
			close(fd);
			report(RES_OTHER, err, err, 0, NULL, 0, 0);
			return;
		}
	}

	t0 = mono_ns();
	if (ccfg.fastopen) {
		/* connect() returns at once; the send makes the SYN (with the
		 * byte when a cookie is known) and the poll waits for the
		 * handshake. */
		if (connect(fd, ra, ccfg.addrlen) != 0 ||
		    send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
			err = errno;
		} else {
			socklen_t l = sizeof(err);

			wait_writable(fd, -1);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
				err = errno;
		}
		t1 = mono_ns();
		r = classify(err);
	} else if (!nonblock) {
		if (connect(fd, ra, ccfg.addrlen) != 0) {
			err = errno;
			if (err == EINTR) {
				/* connect goes on in the background: wait for it */
				wait_writable(fd, -1);
				socklen_t l = sizeof(err);

				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
					err = errno;
			}
		}
		t1 = mono_ns();
		r = classify(err);
	} else if (connect(fd, ra, ccfg.addrlen) == 0) {
		t1 = mono_ns();
		r = RES_OK;
	} else if (errno != EINPROGRESS) {
		err = errno;
		t1 = mono_ns();
		r = classify(err);
	} else {
		int64_t wait_ms;
		int abort_first;

		/* The SYN is out: the local port is assigned now. */
		have_early = local_name(fd, &early, &early_len);

		if (ccfg.abort_ms >= 0 &&
		    (ccfg.timeout_ms < 0 || ccfg.abort_ms <= ccfg.timeout_ms)) {
			wait_ms = ccfg.abort_ms;
			abort_first = 1;
		} else {
			wait_ms = ccfg.timeout_ms;
			abort_first = 0;
		}
		if (wait_writable(fd, t0 + wait_ms * 1000000LL)) {
			socklen_t l = sizeof(err);

			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
				err = errno;
			t1 = mono_ns();
			r = classify(err);
		} else {
			t1 = mono_ns();
			r = abort_first ? RES_ABORTED : RES_TIMEOUT;
			err = abort_first ? 0 : ETIMEDOUT;
			gave_up = 1;
		}
	}
	/* what the kernel said, not the client's own verdict */
	kerr = gave_up ? 0 : err;

	have_local = local_name(fd, &local, &local_len);
	if (!have_local && have_early) {
		local = early;
		local_len = early_len;
		have_local = 1;
	}
	if (r == RES_OK && ccfg.hold_ms > 0) {
		/* idle: nothing sent that could complete a delayed handshake */
		struct pollfd pfd = { .fd = release_pipe[0], .events = POLLIN };
		int64_t end = mono_ns() + ccfg.hold_ms * 1000000LL, left;

		while ((left = end - mono_ns()) > 0 &&
		       poll(&pfd, 1, (int)((left + 999999) / 1000000)) <= 0)
			;
	}
	close(fd);
	report(r, err, kerr, t1 - t0, &local, local_len, have_local);
}

static void *connect_worker(void *unused)
{
	(void)unused;
	for (;;) {
		long i = atomic_fetch_add(&next_index, 1);

		if (i >= ccfg.count)
			break;
		one_connect();
	}
	return NULL;
}

static void on_release(int sig)
{
	(void)sig;
	/* async-signal-safe; the pipe stays readable for every thread */
	if (write(release_pipe[1], "r", 1) < 0)
		return;
}

static int do_connect(void)
{
	pthread_t *thr;
	long i, started = 0;

	if (ccfg.hold_ms > 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_release;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (pipe2(release_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
		    sigaction(SIGUSR1, &sa, NULL) != 0) {
			perror("tcpclient: release pipe");
			return 1;
		}
	}

	format_addr((const struct sockaddr *)&ccfg.addr, ccfg.addrlen, remote_host,
		    sizeof(remote_host), remote_serv, sizeof(remote_serv));

	if (ccfg.concurrency > ccfg.count && ccfg.count > 0)
		ccfg.concurrency = ccfg.count;
	thr = calloc((size_t)ccfg.concurrency, sizeof(*thr));
	if (thr == NULL) {
		perror("tcpclient: calloc");
		return 1;
	}
	if (ccfg.concurrency <= 1) {
		connect_worker(NULL);
	} else {
		for (i = 0; i < ccfg.concurrency; i++) {
			int rc = pthread_create(&thr[i], NULL, connect_worker, NULL);

			if (rc != 0) {
				fprintf(stderr, "tcpclient: pthread_create: %s (running with %ld threads)\n",
					strerror(rc), started);
				break;
			}
			started++;
		}
		if (started == 0)
			connect_worker(NULL);
		for (i = 0; i < started; i++)
			pthread_join(thr[i], NULL);
	}
	free(thr);
	fflush(stdout);
	fprintf(stderr, "summary ok=%ld refused=%ld timeout=%ld unreachable=%ld aborted=%ld other=%ld\n",
		atomic_load(&counters[RES_OK]), atomic_load(&counters[RES_REFUSED]),
		atomic_load(&counters[RES_TIMEOUT]), atomic_load(&counters[RES_UNREACHABLE]),
		atomic_load(&counters[RES_ABORTED]), atomic_load(&counters[RES_OTHER]));
	return 0;
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	enum { OPT_ABORT = 1000, OPT_HOLD, OPT_FASTOPEN, OPT_COMM, OPT_HELP };
	static const struct option longopts[] = {
		{ "fastopen", no_argument, NULL, OPT_FASTOPEN },
		{ "abort-after-ms", required_argument, NULL, OPT_ABORT },
		{ "hold-ms", required_argument, NULL, OPT_HOLD },
		{ "comm", required_argument, NULL, OPT_COMM },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode, *addr = NULL, *port = NULL, *comm = NULL;
	long backlog = SOMAXCONN, v;
	int listen_mode, opt;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	mode = argv[1];
	if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(mode, "listen") == 0) {
		listen_mode = 1;
	} else if (strcmp(mode, "connect") == 0) {
		listen_mode = 0;
	} else {
		fprintf(stderr, "tcpclient: unknown mode '%s'\n", mode);
		usage(stderr);
		return 2;
	}

	ccfg.count = -1;
	ccfg.concurrency = 1;
	ccfg.timeout_ms = -1;
	ccfg.abort_ms = -1;

	/* options follow the mode word */
	argc--;
	argv++;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "a:p:b:n:c:t:qh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			if (parse_long(optarg, 0, 65535, &v) != 0)
				goto bad;
			port = optarg;
			break;
		case 'b':
			if (!listen_mode || parse_long(optarg, 1, INT_MAX, &backlog) != 0)
				goto bad;
			break;
		case 'n':
			if (listen_mode || parse_long(optarg, 0, LONG_MAX / 2, &ccfg.count) != 0)
				goto bad;
			break;
		case 'c':
			if (listen_mode || parse_long(optarg, 1, 4096, &ccfg.concurrency) != 0)
				goto bad;
			break;
		case 't':
			if (listen_mode || parse_long(optarg, 1, 86400000L, &ccfg.timeout_ms) != 0)
				goto bad;
			break;
		case OPT_ABORT:
			if (listen_mode || parse_long(optarg, 0, 86400000L, &ccfg.abort_ms) != 0)
				goto bad;
			break;
		case OPT_HOLD:
			if (listen_mode || parse_long(optarg, 0, 86400000L, &ccfg.hold_ms) != 0)
				goto bad;
			break;
		case OPT_FASTOPEN:
			listen_fastopen = listen_mode;
			ccfg.fastopen = !listen_mode;
			break;
		case OPT_COMM:
			if (listen_mode || optarg[0] == '\0')
				goto bad;
			comm = optarg;
			break;
		case 'q':
			if (listen_mode)
				goto bad;
			ccfg.quiet = 1;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc || addr == NULL || port == NULL)
		goto bad;

	if (listen_mode)
		return do_listen(addr, port, backlog);

	if (ccfg.count < 0)
		goto bad;
	if (ccfg.fastopen && (ccfg.timeout_ms >= 0 || ccfg.abort_ms >= 0))
		goto bad; /* blocking mode only */
	if (resolve(addr, port, 0, &ccfg.addr, &ccfg.addrlen) != 0)
		return 2;
	if (sockaddr_port(&ccfg.addr) == 0)
		goto bad;
	/* before the threads start: they inherit the name */
	if (comm != NULL && prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) {
		perror("tcpclient: prctl(PR_SET_NAME)");
		return 1;
	}
	return do_connect();

bad:
	fprintf(stderr, "tcpclient: invalid or missing arguments\n");
	usage(stderr);
	return 2;
}
