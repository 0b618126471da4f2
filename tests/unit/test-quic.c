/*
 * test-quic.c — src/transport/quic*: a real server on a libuv loop in its
 * own thread (127.0.0.1, port 0) answering each request with its payload
 * reversed, and blocking clients: equal exporters on both sides, 100
 * requests from 1 byte to 1 MiB, an oversized frame refused on its
 * stream while the connection goes on, a lowered frame maximum, answers
 * given later from a timer, the node closing a connection, ALPN refused
 * (other and none), max_conns, pause, max_conns_per_ip, max_streams with
 * credit given back, Retry, idle and handshake timeouts, server stop with
 * clients connected and from inside a callback, junk datagrams and
 * Version Negotiation, 8 concurrent clients.  Every test ends with the loop empty
 * (uv_loop_close == 0) and, under ASan, no leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quic-private.h"
#include "tls.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

static char *g_cert, *g_key;

/* cmocka's asserts jump back into the test: not from other threads. */
#define CHECK(x)                                                        \
	do {                                                            \
		if (!(x)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n",    \
				__FILE__, __LINE__, #x);                \
			abort();                                        \
		}                                                       \
	} while (0)

/* ------------------------------------------------- server in a thread */

enum { CMD_NONE, CMD_STOP, CMD_COUNT, CMD_PAUSE };

typedef struct tsrv {
	quic_server_opts o;
	bool set_retry;
	unsigned retry_threshold;
	uv_loop_t loop;
	uv_async_t async;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	quic_server *s;
	uint16_t port;
	int state;              /* 0 starting, 1 running, -1 failed */
	const char *error;
	int cmd;
	unsigned cmd_done;
	unsigned count;         /* answer to CMD_COUNT */
	int loop_close_rc;
	/* under mu */
	unsigned connects, closes, requests, late_fail;
	uint8_t exporter[QUIC_EXPORTER_BYTES];
} tsrv;

/* The node's per-connection state: a timer for answers given later. */
typedef struct tconn {
	tsrv *t;
	quic_conn *c;
	uv_timer_t timer;
	int64_t sid;
	uint8_t *payload;
	size_t len;
} tconn;

static uint8_t *reversed(const uint8_t *p, size_t len)
{
	uint8_t *r = malloc(len);
	CHECK(r != NULL);
	for (size_t i = 0; i < len; i++)
		r[i] = p[len - 1 - i];
	return r;
}

static void *on_connect(void *arg, quic_conn *c, const struct sockaddr *peer,
			const uint8_t exporter[QUIC_EXPORTER_BYTES])
{
	tsrv *t = arg;
	(void)peer;
	tconn *u = calloc(1, sizeof(*u));
	CHECK(u != NULL);
	u->t = t;
	u->c = c;
	uv_timer_init(&t->loop, &u->timer);
	u->timer.data = u;
	pthread_mutex_lock(&t->mu);
	t->connects++;
	memcpy(t->exporter, exporter, QUIC_EXPORTER_BYTES);
	pthread_mutex_unlock(&t->mu);
	return u;
}

static void later_cb(uv_timer_t *tm)
{
	tconn *u = tm->data;
	uint8_t *r = reversed(u->payload, u->len);
	if (quic_respond(u->c, u->sid, r, u->len) != 0) {
		pthread_mutex_lock(&u->t->mu);
		u->t->late_fail++;
		pthread_mutex_unlock(&u->t->mu);
	}
	free(r);
	free(u->payload);
	u->payload = NULL;
}

static void on_request(void *user, quic_conn *c, int64_t sid,
		       uint8_t *payload, size_t len)
{
	tconn *u = user;
	pthread_mutex_lock(&u->t->mu);
	u->t->requests++;
	pthread_mutex_unlock(&u->t->mu);
	if (len == 4 && memcmp(payload, "stop", 4) == 0) {
		/* The node stops the server from inside a callback. */
		free(payload);
		CHECK(quic_respond(c, sid, (const uint8_t *)"bye", 3) == 0);
		quic_server_stop(&u->t->s);
		CHECK(u->t->s == NULL);
		uv_close((uv_handle_t *)&u->t->async, NULL);
		return;
	}
	if (len == 5 && memcmp(payload, "close", 5) == 0) {
		free(payload);
		quic_conn_close(c, 0x77);
		return;
	}
	if (len > 7 && memcmp(payload, "setmax:", 7) == 0) {
		char num[32] = { 0 };
		memcpy(num, payload + 7, len - 7 < 31 ? len - 7 : 31);
		quic_conn_set_max_frame(c, strtoul(num, NULL, 10));
		free(payload);
		CHECK(quic_respond(c, sid, (const uint8_t *)"ok", 2) == 0);
		CHECK(quic_respond(c, sid, (const uint8_t *)"ok", 2) == -1);
		return;
	}
	if (len >= 5 && memcmp(payload, "later", 5) == 0 && u->payload == NULL) {
		u->sid = sid;
		u->payload = payload;
		u->len = len;
		uv_timer_start(&u->timer, later_cb, 20, 0);
		return;
	}
	uint8_t *r = reversed(payload, len);
	CHECK(quic_respond(c, sid, r, len) == 0);
	free(r);
	free(payload);
}

static void tconn_free(uv_handle_t *h)
{
	tconn *u = h->data;
	free(u->payload);
	free(u);
}

static void on_close(void *user, quic_conn *c)
{
	tconn *u = user;
	CHECK(u->c == c);
	pthread_mutex_lock(&u->t->mu);
	u->t->closes++;
	pthread_mutex_unlock(&u->t->mu);
	uv_close((uv_handle_t *)&u->timer, tconn_free);
}

static void async_cb(uv_async_t *a)
{
	tsrv *t = a->data;
	pthread_mutex_lock(&t->mu);
	int cmd = t->cmd;
	t->cmd = CMD_NONE;
	pthread_mutex_unlock(&t->mu);
	if (cmd == CMD_STOP) {
		quic_server_stop(&t->s);
		CHECK(t->s == NULL);
		uv_close((uv_handle_t *)&t->async, NULL);
	} else if (cmd == CMD_COUNT) {
		t->count = quic_server_conn_count(t->s);
	} else if (cmd == CMD_PAUSE) {
		quic_server_pause(t->s);
	}
	pthread_mutex_lock(&t->mu);
	t->cmd_done++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void *server_thread(void *arg)
{
	tsrv *t = arg;
	const quic_server_cbs cbs = { on_connect, on_request, on_close };
	const char *err = NULL;

	CHECK(uv_loop_init(&t->loop) == 0);
	uv_async_init(&t->loop, &t->async, async_cb);
	t->async.data = t;
	t->o.loop = &t->loop;
	int rc = quic_server_start(&t->o, &cbs, t, &t->s, &err);
	pthread_mutex_lock(&t->mu);
	if (rc != 0) {
		t->state = -1;
		t->error = err;
	} else {
		if (t->set_retry)
			quic_server_set_retry_threshold(t->s, t->retry_threshold);
		t->port = quic_server_port(t->s);
		t->state = 1;
	}
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (rc != 0)
		uv_close((uv_handle_t *)&t->async, NULL);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	t->loop_close_rc = uv_loop_close(&t->loop);
	return NULL;
}

static void tsrv_defaults(tsrv *t)
{
	memset(t, 0, sizeof(*t));
	t->o.host = "127.0.0.1";
	t->o.port = 0;
	t->o.cert_pem = g_cert;
	t->o.key_pem = g_key;
	t->o.max_conns = 64;
	t->o.max_conns_per_ip = 32;
	t->o.max_streams = 8;
	t->o.max_frame = 2 * MIB;
	t->o.idle_timeout_ms = 10000;
	t->o.handshake_timeout_ms = 5000;
}

static void tsrv_start(tsrv *t)
{
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	assert_int_equal(pthread_create(&t->th, NULL, server_thread, t), 0);
	pthread_mutex_lock(&t->mu);
	while (t->state == 0)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	if (t->state != 1)
		fail_msg("server start: %s", t->error);
}

static void tsrv_cmd(tsrv *t, int cmd)
{
	pthread_mutex_lock(&t->mu);
	unsigned seq = t->cmd_done;
	t->cmd = cmd;
	pthread_mutex_unlock(&t->mu);
	uv_async_send(&t->async);
	pthread_mutex_lock(&t->mu);
	while (t->cmd_done == seq)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

static unsigned tsrv_count(tsrv *t)
{
	tsrv_cmd(t, CMD_COUNT);
	return t->count;
}

static unsigned tsrv_get(tsrv *t, const unsigned *field)
{
	pthread_mutex_lock(&t->mu);
	unsigned v = *field;
	pthread_mutex_unlock(&t->mu);
	return v;
}

/* Join, and check that the loop ended with nothing left. */
static void tsrv_join(tsrv *t)
{
	pthread_join(t->th, NULL);
	assert_int_equal(t->loop_close_rc, 0);
	assert_int_equal(t->connects, t->closes);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
}

static void tsrv_stop(tsrv *t)
{
	tsrv_cmd(t, CMD_STOP);
	tsrv_join(t);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait (up to ms) until *field reaches want; line: the caller's. */
#define WAIT_FOR(t, f, w, ms) wait_for(t, f, w, ms, __LINE__)
static void wait_for(tsrv *t, const unsigned *field, unsigned want,
		     unsigned ms, int line)
{
	uint64_t end = now_ms() + ms;
	while (tsrv_get(t, field) < want && now_ms() < end)
		usleep(5000);
	if (tsrv_get(t, field) < want)
		fail_msg("line %d: waited for %u, have %u", line, want,
			 tsrv_get(t, field));
}

static quic_client *connect_ok(tsrv *t)
{
	quic_client *c = NULL;
	const char *err = NULL;
	if (quic_client_connect("127.0.0.1", t->port, 5000, &c, &err) != 0)
		fail_msg("connect: %s", err);
	return c;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

/* One request; the answer must be the payload reversed. */
static void echo_ok(quic_client *c, size_t len, unsigned seed)
{
	uint8_t *p = malloc(len), *resp = NULL;
	size_t rlen = 0;
	const char *err = NULL;
	assert_non_null(p);
	fill(p, len, seed);
	if (quic_client_request(c, p, len, 4 * MIB, 20000, &resp, &rlen, &err) != 0)
		fail_msg("request of %zu bytes: %s", len, err);
	assert_int_equal(rlen, len);
	for (size_t i = 0; i < len; i++)
		if (resp[i] != p[len - 1 - i])
			fail_msg("byte %zu of %zu differs", i, len);
	free(p);
	free(resp);
}

/* ------------------------------------------------------------- tests */

static void test_requests(void **state)
{
	tsrv t;
	const char *err = NULL;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	quic_client *c = connect_ok(&t);
	WAIT_FOR(&t, &t.connects, 1, 2000);

	/* §9.1: both ends see the same exporter. */
	uint8_t xc[QUIC_EXPORTER_BYTES], zero[QUIC_EXPORTER_BYTES] = { 0 };
	quic_client_exporter(c, xc);
	pthread_mutex_lock(&t.mu);
	assert_memory_equal(xc, t.exporter, QUIC_EXPORTER_BYTES);
	pthread_mutex_unlock(&t.mu);
	assert_memory_not_equal(xc, zero, QUIC_EXPORTER_BYTES);

	/* 100 sequential requests, 1 byte to 1 MiB. */
	for (unsigned i = 0; i < 100; i++) {
		/* 2^(20 i / 99), linear between powers of two. */
		unsigned k = i * 20 / 99, r = i * 20 % 99;
		size_t len = ((size_t)1 << k) + (((size_t)1 << k) * r) / 99;
		echo_ok(c, len, i);
	}
	assert_int_equal(tsrv_get(&t, &t.requests), 100);

	/* A frame over the maximum: refused on its stream from the header;
	 * the connection serves the next request. */
	size_t big = 2 * MIB + 1;
	uint8_t *p = calloc(1, big);
	assert_int_equal(quic_client_request(c, p, big, MIB, 10000, &resp, &rlen,
					     &err), -1);
	assert_non_null(strstr(err, "refused the request"));
	echo_ok(c, 1000, 1);

	/* A response larger than the client's max_resp is refused. */
	assert_int_equal(quic_client_request(c, p, 5000, 4999, 10000, &resp,
					     &rlen, &err), -1);
	assert_non_null(strstr(err, "larger than allowed"));
	echo_ok(c, 1000, 2);

	/* The node lowers the maximum (as after auth, the other way). */
	const char *sm = "setmax:1000";
	assert_int_equal(quic_client_request(c, (const uint8_t *)sm, strlen(sm),
					     100, 10000, &resp, &rlen, &err), 0);
	assert_int_equal(rlen, 2);
	assert_memory_equal(resp, "ok", 2);
	free(resp);
	assert_int_equal(quic_client_request(c, p, 1001, MIB, 10000, &resp,
					     &rlen, &err), -1);
	echo_ok(c, 1000, 3);

	/* An answer given later, outside the callback. */
	memcpy(p, "later", 5);
	assert_int_equal(quic_client_request(c, p, 600, MIB, 10000, &resp,
					     &rlen, &err), 0);
	assert_int_equal(rlen, 600);
	assert_int_equal(resp[599], 'l');
	free(resp);
	free(p);

	/* The node closes the connection: the request fails, on_close runs. */
	assert_int_equal(quic_client_request(c, (const uint8_t *)"close", 5,
					     100, 10000, &resp, &rlen, &err), -1);
	WAIT_FOR(&t, &t.closes, 1, 2000);
	assert_int_equal(quic_client_request(c, (const uint8_t *)"x", 1, 100,
					     1000, &resp, &rlen, &err), -1);
	quic_client_close(&c);
	assert_null(c);
	assert_int_equal(tsrv_get(&t, &t.late_fail), 0);
	tsrv_stop(&t);
}

static void test_alpn_refused(void **state)
{
	tsrv t;
	quic_client *c = NULL;
	const char *err = NULL;
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	uint64_t t0 = now_ms();
	assert_int_equal(quic_client_connect_alpn("127.0.0.1", t.port, 3000,
						  "smtp/9", &c, &err), -1);
	assert_non_null(strstr(err, "TLS"));
	assert_int_equal(quic_client_connect_alpn("127.0.0.1", t.port, 3000,
						  NULL, &c, &err), -1);
	assert_non_null(strstr(err, "TLS"));
	assert_true(now_ms() - t0 < 2500); /* refused, not timed out */
	assert_null(c);
	assert_int_equal(tsrv_get(&t, &t.connects), 0);
	/* And the right one still works. */
	c = connect_ok(&t);
	echo_ok(c, 10, 0);
	quic_client_close(&c);
	tsrv_stop(&t);
}

static void test_per_ip_limit(void **state)
{
	tsrv t;
	quic_client *c3 = NULL;
	const char *err = NULL;
	(void)state;

	tsrv_defaults(&t);
	t.o.max_conns_per_ip = 2;
	tsrv_start(&t);
	quic_client *c1 = connect_ok(&t), *c2 = connect_ok(&t);
	uint64_t t0 = now_ms();
	assert_int_equal(quic_client_connect("127.0.0.1", t.port, 3000, &c3, &err), -1);
	assert_true(now_ms() - t0 < 3500);
	assert_non_null(strstr(err, "refused"));
	assert_int_equal(tsrv_count(&t), 2);
	echo_ok(c1, 100, 1);
	echo_ok(c2, 100, 2);
	/* Once one is gone (after its draining period), a new one fits. */
	quic_client_close(&c1);
	uint64_t end = now_ms() + 3000;
	while (tsrv_count(&t) > 1 && now_ms() < end)
		usleep(10000);
	assert_int_equal(tsrv_count(&t), 1);
	c3 = connect_ok(&t);
	echo_ok(c3, 100, 3);
	quic_client_close(&c2);
	quic_client_close(&c3);
	tsrv_stop(&t);
}

static void test_max_conns_and_pause(void **state)
{
	tsrv t;
	quic_client *c2 = NULL;
	const char *err = NULL;
	(void)state;

	tsrv_defaults(&t);
	t.o.max_conns = 1;
	tsrv_start(&t);
	quic_client *c1 = connect_ok(&t);
	assert_int_equal(quic_client_connect("127.0.0.1", t.port, 3000, &c2, &err), -1);
	assert_non_null(strstr(err, "refused"));
	quic_client_close(&c1);
	tsrv_stop(&t);

	/* Paused: new clients are refused, the ones connected go on. */
	tsrv_defaults(&t);
	tsrv_start(&t);
	c1 = connect_ok(&t);
	tsrv_cmd(&t, CMD_PAUSE);
	assert_int_equal(quic_client_connect("127.0.0.1", t.port, 3000, &c2, &err), -1);
	assert_non_null(strstr(err, "refused"));
	echo_ok(c1, 100, 4);
	quic_client_close(&c1);
	tsrv_stop(&t);
}

/* Drive an engine connection until cond(c) or ms pass. */
static void pump_until(quic_cconn *c, bool (*cond)(void *), void *arg,
		       unsigned ms)
{
	uint64_t end = now_ms() + ms;
	const char *err = NULL;
	while (!cond(arg) && now_ms() < end) {
		struct pollfd pfd = { .fd = quic_cconn_fd(c), .events = POLLIN };
		int to = quic_cconn_timeout_ms(c);
		if (to < 0 || to > 50)
			to = 50;
		(void)poll(&pfd, 1, to);
		if (quic_cconn_process(c, &err) != 0)
			fail_msg("connection: %s", err);
	}
}

static bool is_established(void *arg)
{
	return quic_cconn_established(arg);
}

typedef struct open_try {
	quic_cconn *c;
	quic_cstream *st;
} open_try;

static bool try_open(void *arg)
{
	open_try *o = arg;
	const char *err = NULL;
	static const uint8_t two[2] = { 0, 0 };
	if (o->st != NULL)
		return true;
	int rv = quic_cstream_open(o->c, two, sizeof(two), false, 100, &o->st, &err);
	assert_true(rv >= 0);
	return rv == 0;
}

static void test_max_streams(void **state)
{
	tsrv t;
	quic_cconn *c = NULL;
	quic_cstream *st[3] = { NULL };
	const char *err = NULL;
	static const uint8_t two[2] = { 0, 0 };
	(void)state;

	tsrv_defaults(&t);
	t.o.max_streams = 2;
	tsrv_start(&t);
	assert_int_equal(quic_cconn_new("127.0.0.1", t.port, QUIC_ALPN, 5000,
					&c, &err), 0);
	pump_until(c, is_established, c, 5000);
	assert_true(quic_cconn_established(c));
	/* Two streams holding half a header each: the third must wait. */
	assert_int_equal(quic_cstream_open(c, two, 2, false, 100, &st[0], &err), 0);
	assert_int_equal(quic_cstream_open(c, two, 2, false, 100, &st[1], &err), 0);
	assert_int_equal(quic_cstream_open(c, two, 2, false, 100, &st[2], &err), 1);
	open_try o = { c, NULL };
	pump_until(c, try_open, &o, 300);
	assert_null(o.st);
	/* Cancel one: the server closes it and gives the credit back. */
	quic_cstream_release(&st[0]);
	pump_until(c, try_open, &o, 3000);
	assert_non_null(o.st);
	quic_cstream_release(&o.st);
	quic_cstream_release(&st[1]);
	quic_cconn_close(c, 0);
	quic_cconn_free(&c);
	tsrv_stop(&t);
}

static void test_retry(void **state)
{
	tsrv t;
	(void)state;

	tsrv_defaults(&t);
	t.set_retry = true;
	t.retry_threshold = 0; /* every client answers a Retry first */
	tsrv_start(&t);
	quic_client *c = connect_ok(&t);
	echo_ok(c, 5000, 9);
	quic_client_close(&c);
	tsrv_stop(&t);
}

static void test_idle_timeout(void **state)
{
	tsrv t;
	const char *err = NULL;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	(void)state;

	/* Both ends give up after the idle timeout; the node hears on_close. */
	tsrv_defaults(&t);
	t.o.idle_timeout_ms = 300;
	tsrv_start(&t);
	quic_client *c = connect_ok(&t);
	echo_ok(c, 10, 0);
	WAIT_FOR(&t, &t.closes, 1, 3000);
	assert_int_equal(tsrv_count(&t), 0);
	assert_int_equal(quic_client_request(c, (const uint8_t *)"x", 1, 100,
					     1000, &resp, &rlen, &err), -1);
	assert_non_null(strstr(err, "idle"));
	quic_client_close(&c);
	tsrv_stop(&t);
}

static void test_handshake_timeout(void **state)
{
	tsrv t;
	quic_cconn *hc = NULL;
	const char *err = NULL;
	(void)state;

	/* A client that sends its Initial and goes silent is dropped. */
	tsrv_defaults(&t);
	t.o.handshake_timeout_ms = 400;
	tsrv_start(&t);
	assert_int_equal(quic_cconn_new("127.0.0.1", t.port, QUIC_ALPN, 5000,
					&hc, &err), 0);
	assert_int_equal(quic_cconn_process(hc, &err), 0);
	uint64_t end = now_ms() + 1000;
	while (tsrv_count(&t) == 0 && now_ms() < end)
		usleep(5000);
	assert_int_equal(tsrv_count(&t), 1);
	uint64_t t0 = now_ms();
	end = t0 + 3000;
	while (tsrv_count(&t) > 0 && now_ms() < end)
		usleep(20000);
	assert_int_equal(tsrv_count(&t), 0);
	assert_true(now_ms() - t0 < 1500);
	quic_cconn_free(&hc);
	assert_int_equal(tsrv_get(&t, &t.connects), 0);
	tsrv_stop(&t);
}

static void test_stop_with_client(void **state)
{
	tsrv t;
	const char *err = NULL;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	quic_client *c = connect_ok(&t);
	quic_client *c2 = connect_ok(&t);
	echo_ok(c, 100, 1);
	tsrv_stop(&t);
	assert_int_equal(t.connects, 2);
	uint64_t t0 = now_ms();
	assert_int_equal(quic_client_request(c, (const uint8_t *)"x", 1, 100,
					     5000, &resp, &rlen, &err), -1);
	assert_true(now_ms() - t0 < 2000); /* told, not timed out */
	assert_non_null(strstr(err, "shutting down"));
	quic_client_close(&c);
	quic_client_close(&c2);
}

static void test_stop_inside_callback(void **state)
{
	tsrv t;
	const char *err = NULL;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	quic_client *c = connect_ok(&t), *c2 = connect_ok(&t);
	/* The answer queued before the stop may or may not go out. */
	if (quic_client_request(c, (const uint8_t *)"stop", 4, 100, 5000, &resp,
				&rlen, &err) == 0) {
		assert_int_equal(rlen, 3);
		free(resp);
	}
	tsrv_join(&t);
	assert_int_equal(t.connects, 2);
	assert_int_equal(quic_client_request(c2, (const uint8_t *)"x", 1, 100,
					     5000, &resp, &rlen, &err), -1);
	assert_non_null(strstr(err, "shutting down"));
	quic_client_close(&c);
	quic_client_close(&c2);
}

/* Datagrams no client would send: dropped, or answered with Version
 * Negotiation; the server goes on. */
static void test_garbage(void **state)
{
	tsrv t;
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(t.port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	uint8_t pkt[1300];
	for (unsigned i = 0; i < 200; i++) {
		size_t len = 1 + (i * 37) % sizeof(pkt);
		fill(pkt, len, i);
		if (i % 3 == 0)
			pkt[0] |= 0xc0; /* long header */
		else if (i % 3 == 1)
			pkt[0] = (uint8_t)((pkt[0] & 0x3f) | 0x40); /* short */
		assert_int_equal(send(fd, pkt, len, 0), (ssize_t)len);
	}
	/* An Initial-sized long header with an unknown version. */
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = 0xc0;
	memcpy(pkt + 1, "\x1a\x2a\x3a\x4a", 4);
	pkt[5] = 8;  /* DCID length */
	pkt[14] = 8; /* SCID length */
	assert_int_equal(send(fd, pkt, 1200, 0), 1200);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t vn[1500];
	ssize_t n = 0;
	while (poll(&pfd, 1, 2000) == 1) {
		n = recv(fd, vn, sizeof(vn), 0);
		if (n >= 7 && memcmp(vn + 1, "\0\0\0\0", 4) == 0)
			break;
	}
	assert_true(n >= 7);
	assert_memory_equal(vn + 1, "\0\0\0\0", 4); /* Version Negotiation */
	close(fd);
	quic_client *c = connect_ok(&t);
	echo_ok(c, 1000, 5);
	quic_client_close(&c);
	tsrv_stop(&t);
}

typedef struct worker {
	uint16_t port;
	unsigned id;
	int ok;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	quic_client *c = NULL;
	const char *err = NULL;
	if (quic_client_connect("127.0.0.1", w->port, 5000, &c, &err) != 0)
		return NULL;
	for (unsigned i = 0; i < 20; i++) {
		size_t len = 1 + ((w->id * 7919u + i * 104729u) % 65536u);
		uint8_t *p = malloc(len), *resp = NULL;
		size_t rlen = 0;
		fill(p, len, w->id * 100 + i);
		if (quic_client_request(c, p, len, MIB, 20000, &resp, &rlen,
					&err) != 0 || rlen != len) {
			free(p);
			free(resp);
			quic_client_close(&c);
			return NULL;
		}
		for (size_t k = 0; k < len; k++) {
			if (resp[k] != p[len - 1 - k]) {
				free(p);
				free(resp);
				quic_client_close(&c);
				return NULL;
			}
		}
		free(p);
		free(resp);
	}
	quic_client_close(&c);
	w->ok = 1;
	return NULL;
}

static void test_concurrent(void **state)
{
	tsrv t;
	pthread_t th[8];
	worker w[8];
	(void)state;

	tsrv_defaults(&t);
	tsrv_start(&t);
	for (unsigned i = 0; i < 8; i++) {
		w[i] = (worker){ t.port, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ok, 1);
	}
	assert_int_equal(tsrv_get(&t, &t.requests), 160);
	tsrv_stop(&t);
}

static void test_bad_options(void **state)
{
	quic_server_opts o;
	quic_server *s = NULL;
	const quic_server_cbs cbs = { on_connect, on_request, on_close };
	const char *err = NULL;
	uv_loop_t loop;
	(void)state;

	assert_int_equal(uv_loop_init(&loop), 0);
	memset(&o, 0, sizeof(o));
	o.loop = &loop;
	o.host = "127.0.0.1";
	o.cert_pem = g_cert;
	o.key_pem = g_key;
	o.max_conns = o.max_conns_per_ip = o.max_streams = 1;
	o.max_frame = 100;
	o.idle_timeout_ms = o.handshake_timeout_ms = 1000;
	o.max_streams = 0;
	assert_int_equal(quic_server_start(&o, &cbs, NULL, &s, &err), -1);
	o.max_streams = 1;
	o.host = "localhost";
	assert_int_equal(quic_server_start(&o, &cbs, NULL, &s, &err), -1);
	o.host = "127.0.0.1";
	o.key_pem = "not a key";
	assert_int_equal(quic_server_start(&o, &cbs, NULL, &s, &err), -1);
	assert_null(s);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int group_setup(void **state)
{
	const char *err = NULL;
	(void)state;
	if (tls_creds_generate("quic.test", 30, &g_cert, &g_key, &err) != 0)
		fail_msg("generate: %s", err);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(g_cert);
	free(g_key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_alpn_refused),
		cmocka_unit_test(test_per_ip_limit),
		cmocka_unit_test(test_max_conns_and_pause),
		cmocka_unit_test(test_max_streams),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_stop_with_client),
		cmocka_unit_test(test_stop_inside_callback),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
