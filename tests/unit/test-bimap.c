/*
 * test-bimap.c — the bridge's IMAP listener (src/bridge/bimap.c) on
 * loopback over the in-memory store (imap-memstore.c): a client thread
 * with a blocking socket (and, for STARTTLS, a memory TLS client from
 * src/transport/tls.h) talks to it while the test's libuv loop runs the
 * listener.  Login checks are answered later from a timer, as the
 * bridge's Argon2id checks are.  Checked: greeting, LOGIN right and
 * wrong, SELECT, LOGOUT's BYE then close; FETCH 1:* over 10,000 messages
 * while the client does not read (back-pressure), every response
 * arriving; STARTTLS with a pipelined plaintext command that must be
 * dropped (I6); IDLE woken by bimap_changed; the idle timeout's BYE;
 * a huge literal before login: BYE, then closed (I1).
 * The client thread never calls cmocka (it records its first failure;
 * the test asserts after joining it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bimap.h"
#include "imap-memstore.h"
#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct t_world t_world;

typedef struct client {
	int fd;
	tls_session *tls;
	char buf[1 << 16];
	size_t len;
} client;

struct t_world {
	uv_loop_t loop;
	uv_async_t async;        /* client → loop: "add a message", "done" */
	memstore *ms;
	bimap *b;
	uint16_t port;
	tls_creds *server_creds, *client_creds;
	pthread_t thread;
	void (*script)(t_world *w);
	char fail[512];
	bool want_add, done;
	pthread_mutex_t mu;
};

/* ----------------------------------------------------- the client side */

#define CHECK(w, cond, ...)                                                   \
	do {                                                                  \
		if (!(cond)) {                                                \
			if ((w)->fail[0] == '\0')                             \
				snprintf((w)->fail, sizeof((w)->fail),        \
					 __VA_ARGS__);                        \
			return;                                               \
		}                                                             \
	} while (0)

static int cl_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool cl_flush_tls(client *c)
{
	const uint8_t *o;
	size_t n;
	while ((n = tls_take_output(c->tls, &o)) > 0) {
		if (send(c->fd, o, n, MSG_NOSIGNAL) != (ssize_t)n)
			return false;
		tls_output_consumed(c->tls, n);
	}
	return true;
}

static bool cl_send(client *c, const char *s)
{
	const char *err = NULL;
	size_t n = strlen(s);
	if (c->tls == NULL)
		return send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
	return tls_write(c->tls, (const uint8_t *)s, n, &err) == 0 &&
	       cl_flush_tls(c);
}

/* More bytes into c->buf; 0 at EOF, -1 on error or timeout. */
static int cl_fill(client *c)
{
	uint8_t raw[16384];
	const char *err = NULL;
	for (;;) {
		if (c->tls != NULL) {
			long k = tls_read(c->tls, (uint8_t *)c->buf + c->len,
					  sizeof(c->buf) - c->len, &err);
			if (k < 0)
				return -1;
			if (k > 0) {
				c->len += (size_t)k;
				return 1;
			}
		}
		ssize_t n = recv(c->fd, c->tls != NULL ? (char *)raw
				 : c->buf + c->len,
				 c->tls != NULL ? sizeof(raw)
				 : sizeof(c->buf) - c->len, 0);
		if (n <= 0)
			return n == 0 ? 0 : -1;
		if (c->tls == NULL) {
			c->len += (size_t)n;
			return 1;
		}
		if (tls_feed(c->tls, raw, (size_t)n) != 0 ||
		    tls_progress(c->tls, &err) < 0 || !cl_flush_tls(c))
			return -1;
	}
}

/* Drive the client handshake to its end. */
static bool cl_handshake(client *c)
{
	uint8_t raw[16384];
	const char *err = NULL;
	while (!tls_handshake_done(c->tls)) {
		if (tls_progress(c->tls, &err) < 0 || !cl_flush_tls(c))
			return false;
		if (tls_handshake_done(c->tls))
			break;
		ssize_t n = recv(c->fd, raw, sizeof(raw), 0);
		if (n <= 0 || tls_feed(c->tls, raw, (size_t)n) != 0)
			return false;
	}
	return cl_flush_tls(c);
}

/* One line (CRLF stripped) into out; false at EOF or error. */
static bool cl_line(client *c, char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl != NULL) {
			size_t l = (size_t)(nl - c->buf) + 1;
			size_t k = l >= 2 && nl[-1] == '\r' ? l - 2 : l - 1;
			if (k >= size)
				k = size - 1;
			memcpy(out, c->buf, k);
			out[k] = '\0';
			memmove(c->buf, c->buf + l, c->len - l);
			c->len -= l;
			return true;
		}
		if (c->len == sizeof(c->buf) || cl_fill(c) <= 0)
			return false;
	}
}

/* Lines until the tagged answer of tag; *untagged_r counts "* " lines
 * containing `count` (may be NULL); the tagged line into last. */
static bool cl_answer(client *c, const char *tag, const char *count,
		      size_t *untagged_r, char *last, size_t size)
{
	char line[4096];
	size_t tl = strlen(tag);
	if (untagged_r != NULL)
		*untagged_r = 0;
	while (cl_line(c, line, sizeof(line))) {
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ') {
			size_t k = strlen(line) < size ? strlen(line) : size - 1;
			memcpy(last, line, k);
			last[k] = '\0';
			return true;
		}
		if (count != NULL && strncmp(line, "* ", 2) == 0 &&
		    strstr(line, count) != NULL)
			(*untagged_r)++;
	}
	return false;
}

static bool cl_open(t_world *w, client *c)
{
	char line[1024];
	memset(c, 0, sizeof(*c));
	c->fd = cl_connect(w->port);
	return c->fd >= 0 && cl_line(c, line, sizeof(line)) &&
	       strncmp(line, "* OK", 4) == 0;
}

static void cl_close(client *c)
{
	tls_session_free(&c->tls);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void *client_main(void *arg)
{
	t_world *w = arg;
	w->script(w);
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_mutex_unlock(&w->mu);
	uv_async_send(&w->async);
	return NULL;
}

/* --------------------------------------------------------- the loop side */

typedef struct pending {
	uv_timer_t t;
	bimap_login *req;
	bool ok;
} pending;

static void closed_free(uv_handle_t *h)
{
	free(h->data);
}

static void answer(uv_timer_t *t)
{
	pending *p = t->data;
	bimap_login_done(p->req, p->ok);
	uv_close((uv_handle_t *)t, closed_free);
}

/* The password is "secret" for "bob"; answered 20 ms later. */
static void login(void *arg, bimap_login *req, const char *user,
		  const char *password, size_t len)
{
	t_world *w = arg;
	pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->req = req;
	p->ok = strcmp(user, "bob") == 0 && len == 6 &&
		memcmp(password, "secret", 6) == 0;
	uv_timer_init(&w->loop, &p->t);
	p->t.data = p;
	uv_timer_start(&p->t, answer, 20, 0);
}

static void on_async(uv_async_t *a)
{
	t_world *w = a->data;
	pthread_mutex_lock(&w->mu);
	bool add = w->want_add, done = w->done;
	w->want_add = false;
	pthread_mutex_unlock(&w->mu);
	if (add) {
		memstore_add(w->ms, "INBOX", "Subject: new\r\n\r\nnew mail\r\n",
			     0, 1700000000);
		bimap_changed(w->b);
	}
	if (done) {
		bimap_close(&w->b);
		uv_close((uv_handle_t *)&w->async, NULL);
	}
}

static void run(t_world *w, void (*script)(t_world *), unsigned idle_ms,
		bool tls)
{
	const char *err = NULL;
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	w->script = script;
	if (w->ms == NULL)
		w->ms = memstore_new();
	assert_non_null(w->ms);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	if (tls) {
		char *cert = NULL, *key = NULL;
		assert_int_equal(tls_creds_generate("localhost", 1, &cert, &key,
						    &err), 0);
		assert_int_equal(tls_creds_server(cert, key, &w->server_creds,
						  &err), 0);
		assert_int_equal(tls_creds_client(&w->client_creds, &err), 0);
		free(cert);
		free(key);
	}
	bimap_settings set = {
		.creds = w->server_creds, .ops = &memstore_ops, .st = w->ms,
		.idle_timeout_ms = idle_ms, .login = login, .arg = w,
	};
	assert_int_equal(bimap_start(&w->loop, &set, &w->b, &err), 0);
	w->port = bimap_port(w->b);
	assert_true(w->port > 0);
	uv_async_init(&w->loop, &w->async, on_async);
	w->async.data = w;
}

static void go(t_world *w)
{
	assert_int_equal(pthread_create(&w->thread, NULL, client_main, w), 0);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	pthread_join(w->thread, NULL);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	tls_creds_free(&w->server_creds);
	tls_creds_free(&w->client_creds);
	memstore_free(&w->ms);
	pthread_mutex_destroy(&w->mu);
	if (w->fail[0] != '\0')
		fail_msg("%s", w->fail);
}

/* ------------------------------------------------------------ scripts */

static void script_login(t_world *w)
{
	client c;
	char last[1024], line[1024];
	size_t n;
	CHECK(w, cl_open(w, &c), "no greeting");
	CHECK(w, cl_send(&c, "a LOGIN bob wrong\r\n") &&
	      cl_answer(&c, "a", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "a NO", 4) == 0, "wrong password: %.200s", last);
	CHECK(w, cl_send(&c, "b LOGIN bob secret\r\n") &&
	      cl_answer(&c, "b", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "b OK", 4) == 0, "login: %.200s", last);
	CHECK(w, cl_send(&c, "c SELECT INBOX\r\n") &&
	      cl_answer(&c, "c", "EXISTS", &n, last, sizeof(last)) &&
	      strncmp(last, "c OK", 4) == 0 && n == 1, "select: %.200s", last);
	CHECK(w, cl_send(&c, "d LOGOUT\r\n") && cl_line(&c, line, sizeof(line)) &&
	      strncmp(line, "* BYE", 5) == 0, "logout: %.200s", line);
	CHECK(w, cl_answer(&c, "d", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "d OK", 4) == 0, "logout: %.200s", last);
	CHECK(w, cl_fill(&c) == 0, "not closed after LOGOUT");
	cl_close(&c);
}

static void test_login_select_logout(void **state)
{
	(void)state;
	t_world w;
	run(&w, script_login, 0, false);
	memstore_add(w.ms, "INBOX", "Subject: one\r\n\r\nbody\r\n", 0, 1700000000);
	go(&w);
}

#define BIG_N 10000

static void script_big_fetch(t_world *w)
{
	client c;
	char last[1024];
	size_t n;
	CHECK(w, cl_open(w, &c), "no greeting");
	CHECK(w, cl_send(&c, "a LOGIN bob secret\r\n") &&
	      cl_answer(&c, "a", NULL, NULL, last, sizeof(last)), "login");
	CHECK(w, cl_send(&c, "b SELECT INBOX\r\n") &&
	      cl_answer(&c, "b", NULL, NULL, last, sizeof(last)), "select");
	CHECK(w, cl_send(&c, "c FETCH 1:* (FLAGS ENVELOPE BODY.PEEK[])\r\n"),
	      "send");
	usleep(500 * 1000); /* not reading: the listener must wait for us */
	CHECK(w, cl_answer(&c, "c", " FETCH (", &n, last, sizeof(last)) &&
	      strncmp(last, "c OK", 4) == 0, "fetch: %.200s", last);
	CHECK(w, n == BIG_N, "%zu FETCH responses, not %u", n, BIG_N);
	cl_close(&c);
}

static void test_fetch_everything_while_the_client_waits(void **state)
{
	(void)state;
	t_world w;
	char msg[1200];
	run(&w, script_big_fetch, 0, false);
	memstore_set_max(w.ms, BIG_N);
	for (unsigned i = 0; i < BIG_N; i++) {
		int k = snprintf(msg, sizeof(msg), "Subject: message %u of a long "
				 "run\r\nFrom: a@example.org\r\n\r\n%0900u\r\n",
				 i, i);
		assert_true(k > 0 && (size_t)k < sizeof(msg));
		assert_int_not_equal(memstore_add(w.ms, "INBOX", msg, 0,
						  1700000000), 0);
	}
	go(&w);
}

static void script_starttls(t_world *w)
{
	client c;
	char last[1024];
	const char *err = NULL;
	CHECK(w, cl_open(w, &c), "no greeting");
	/* the LOGIN after STARTTLS, in the same packet, must be dropped */
	CHECK(w, cl_send(&c, "s STARTTLS\r\nx LOGIN bob secret\r\n") &&
	      cl_answer(&c, "s", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "s OK", 4) == 0, "starttls: %.200s", last);
	CHECK(w, c.len == 0, "plaintext after the OK");
	CHECK(w, tls_session_new_mode(w->client_creds, false, TLS_MODE_SMTP,
				      &c.tls, &err) == 0, "tls: %.200s", err);
	CHECK(w, cl_handshake(&c), "TLS handshake");
	CHECK(w, cl_send(&c, "y NOOP\r\n") &&
	      cl_answer(&c, "y", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "y OK", 4) == 0, "noop over TLS: %.200s", last);
	/* not logged in: the pipelined LOGIN was dropped */
	CHECK(w, cl_send(&c, "z SELECT INBOX\r\n") &&
	      cl_answer(&c, "z", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "z OK", 4) != 0, "select before login: %.200s", last);
	CHECK(w, cl_send(&c, "l LOGIN bob secret\r\n") &&
	      cl_answer(&c, "l", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "l OK", 4) == 0, "login over TLS: %.200s", last);
	cl_close(&c);
}

static void test_starttls_drops_pipelined_plaintext(void **state)
{
	(void)state;
	t_world w;
	run(&w, script_starttls, 0, true);
	go(&w);
}

static void script_idle(t_world *w)
{
	client c;
	char last[1024], line[1024];
	CHECK(w, cl_open(w, &c), "no greeting");
	CHECK(w, cl_send(&c, "a LOGIN bob secret\r\n") &&
	      cl_answer(&c, "a", NULL, NULL, last, sizeof(last)), "login");
	CHECK(w, cl_send(&c, "b SELECT INBOX\r\n") &&
	      cl_answer(&c, "b", NULL, NULL, last, sizeof(last)), "select");
	CHECK(w, cl_send(&c, "i IDLE\r\n") && cl_line(&c, line, sizeof(line)) &&
	      line[0] == '+', "idle: %.200s", line);
	pthread_mutex_lock(&w->mu);
	w->want_add = true;
	pthread_mutex_unlock(&w->mu);
	uv_async_send(&w->async);
	CHECK(w, cl_line(&c, line, sizeof(line)) &&
	      strcmp(line, "* 2 EXISTS") == 0, "not woken: %.200s", line);
	CHECK(w, cl_send(&c, "DONE\r\n") &&
	      cl_answer(&c, "i", NULL, NULL, last, sizeof(last)) &&
	      strncmp(last, "i OK", 4) == 0, "done: %.200s", last);
	cl_close(&c);
}

static void test_idle_woken_by_changed(void **state)
{
	(void)state;
	t_world w;
	run(&w, script_idle, 0, false);
	memstore_add(w.ms, "INBOX", "Subject: one\r\n\r\nbody\r\n", 0, 1700000000);
	go(&w);
}

static void script_timeout(t_world *w)
{
	client c;
	char line[1024];
	struct timeval a, b;
	gettimeofday(&a, NULL);
	CHECK(w, cl_open(w, &c), "no greeting");
	CHECK(w, cl_line(&c, line, sizeof(line)) &&
	      strncmp(line, "* BYE", 5) == 0, "no BYE: %.200s", line);
	CHECK(w, cl_fill(&c) == 0, "not closed after the timeout");
	gettimeofday(&b, NULL);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_usec - a.tv_usec) / 1000;
	CHECK(w, ms >= 250 && ms < 5000, "timed out after %ld ms", ms);
	cl_close(&c);
}

static void test_idle_timeout(void **state)
{
	(void)state;
	t_world w;
	run(&w, script_timeout, 300, false);
	go(&w);
}

static void script_huge_literal(t_world *w)
{
	client c;
	char line[1024];
	CHECK(w, cl_open(w, &c), "no greeting");
	/* I1: a literal far over the pre-login limit, and data after it */
	CHECK(w, cl_send(&c, "a LOGIN {999999999}\r\nxxxxxxxxxxxxxxxx"),
	      "send");
	bool bye = false;
	struct timeval a, b;
	gettimeofday(&a, NULL);
	while (cl_line(&c, line, sizeof(line)))
		if (strncmp(line, "* BYE", 5) == 0)
			bye = true;
	gettimeofday(&b, NULL);
	CHECK(w, bye, "no BYE before the close");
	CHECK(w, b.tv_sec - a.tv_sec < 5, "not closed (the read timed out)");
	cl_close(&c);
}

static void test_huge_literal_closes(void **state)
{
	(void)state;
	t_world w;
	run(&w, script_huge_literal, 0, false);
	go(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_select_logout),
		cmocka_unit_test(test_fetch_everything_while_the_client_waits),
		cmocka_unit_test(test_starttls_drops_pipelined_plaintext),
		cmocka_unit_test(test_idle_woken_by_changed),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_huge_literal_closes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
