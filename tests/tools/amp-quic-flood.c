/*
 * amp-quic-flood — a test tool, not installed.
 *
 *   amp-quic-flood HOST PORT CONNS STREAMS SECONDS
 *
 * Opens CONNS QUIC connections (ALPN amp/1) to HOST:PORT, each on its own
 * UDP socket; on each established one opens STREAMS streams and writes
 * only 2 bytes of a frame header on each (no FIN), then keeps everything
 * alive (timers, ACKs, PINGs before the idle timeout) for SECONDS from the
 * start.  Prints on standard output
 *
 *   connected=N streams=M refused=K
 *
 * N: connections whose handshake completed; M: streams opened (the
 * server's stream limit may hold some back); K: connections that never
 * completed (refused by the server, timed out, or failed locally).
 * Details go to standard error.  Exits 0 unless the arguments are bad.
 *
 * One thread, poll(2) over all sockets, the transport's non-blocking
 * client engine (src/transport/quic-private.h).
 */
#include "quic-private.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CONNS 100000u
#define MAX_STREAMS 100000u
#define MAX_SECONDS 86400u

typedef struct slot {
	quic_cconn *c;
	bool connected;
	unsigned opened;
	bool blocked_logged;
} slot;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: amp-quic-flood HOST PORT CONNS STREAMS SECONDS\n"
		"  opens CONNS QUIC connections, STREAMS streams on each holding\n"
		"  2 bytes of a frame header, keeps them for SECONDS, prints\n"
		"  connected=N streams=M refused=K\n");
}

/* Room for one socket per connection. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	uint64_t port, nconns, nstreams, seconds;
	unsigned long connected = 0, streams = 0, refused = 0, lost = 0;
	static const uint8_t half_header[2] = { 0, 0 };

	if (argc != 6 || !util_parse_u64(argv[2], 1, 65535, &port) ||
	    !util_parse_u64(argv[3], 1, MAX_CONNS, &nconns) ||
	    !util_parse_u64(argv[4], 0, MAX_STREAMS, &nstreams) ||
	    !util_parse_u64(argv[5], 1, MAX_SECONDS, &seconds)) {
		usage();
		return 2;
	}
	raise_nofile();
	const char *host = argv[1];
	uint64_t start = now_ms(), deadline = start + seconds * 1000u;
	unsigned hs_timeout = seconds * 1000u < 10000u ? (unsigned)seconds * 1000u
						       : 10000u;
	slot *slots = calloc((size_t)nconns, sizeof(*slots));
	struct pollfd *pfd = calloc((size_t)nconns, sizeof(*pfd));
	size_t *idx = calloc((size_t)nconns, sizeof(*idx));
	if (slots == NULL || pfd == NULL || idx == NULL) {
		fprintf(stderr, "amp-quic-flood: out of memory\n");
		return 1;
	}

	for (size_t i = 0; i < nconns; i++) {
		const char *err = NULL;
		if (quic_cconn_new(host, (uint16_t)port, QUIC_ALPN, hs_timeout,
				   &slots[i].c, &err) != 0 ||
		    quic_cconn_process(slots[i].c, &err) != 0) {
			fprintf(stderr, "conn %zu: %s\n", i, err);
			quic_cconn_free(&slots[i].c);
			refused++;
		}
	}

	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			break;
		size_t n = 0;
		int timeout = (int)(deadline - now);
		for (size_t i = 0; i < nconns; i++) {
			if (slots[i].c == NULL)
				continue;
			pfd[n].fd = quic_cconn_fd(slots[i].c);
			pfd[n].events = POLLIN;
			if (quic_cconn_want_write(slots[i].c))
				pfd[n].events |= POLLOUT;
			pfd[n].revents = 0;
			idx[n++] = i;
			int t = quic_cconn_timeout_ms(slots[i].c);
			if (t >= 0 && t < timeout)
				timeout = t;
		}
		if (n == 0)
			break; /* every connection is gone */
		if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
			perror("poll");
			break;
		}
		for (size_t k = 0; k < n; k++) {
			slot *sl = &slots[idx[k]];
			const char *err = NULL;
			if (pfd[k].revents == 0 && quic_cconn_timeout_ms(sl->c) != 0)
				continue;
			int rv = quic_cconn_process(sl->c, &err);
			if (rv == 0 && !sl->connected && quic_cconn_established(sl->c)) {
				sl->connected = true;
				connected++;
				quic_cconn_keep_alive(sl->c, 0);
			}
			while (rv == 0 && sl->connected && sl->opened < nstreams) {
				quic_cstream *st = NULL;
				int o = quic_cstream_open(sl->c, half_header,
							  sizeof(half_header), false,
							  1, &st, &err);
				if (o != 0) {
					if (o < 0)
						fprintf(stderr, "conn %zu: %s\n", idx[k], err);
					else if (!sl->blocked_logged)
						fprintf(stderr, "conn %zu: stream limit after %u streams\n",
							idx[k], sl->opened);
					sl->blocked_logged = true;
					break;
				}
				sl->opened++;
				streams++;
			}
			if (rv == 0 && sl->connected)
				rv = quic_cconn_process(sl->c, &err); /* send them */
			if (rv != 0) {
				fprintf(stderr, "conn %zu: %s\n", idx[k], err);
				if (sl->connected)
					lost++;
				else
					refused++;
				quic_cconn_free(&sl->c);
			}
		}
	}

	for (size_t i = 0; i < nconns; i++) {
		if (slots[i].c == NULL)
			continue;
		if (!slots[i].connected) {
			fprintf(stderr, "conn %zu: not established in time\n", i);
			refused++;
		}
		quic_cconn_close(slots[i].c, QUIC_APP_NO_ERROR);
		quic_cconn_free(&slots[i].c);
	}
	free(slots);
	free(pfd);
	free(idx);
	fprintf(stderr, "closed-by-server=%lu\n", lost);
	printf("connected=%lu streams=%lu refused=%lu\n", connected, streams,
	       refused);
	return 0;
}
