/*
 * test-tls.c — src/transport/tls: a client and a server session wired
 * together in memory: TLS 1.3 handshake with ALPN amp/1 and a generated
 * Ed25519 certificate, equal exporters on both sides, data both ways
 * (also large, in many records), a peer without ALPN refused, garbage
 * refused, buffers bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
	tls_creds *sc, *cc;
	tls_session *server, *client;
} pair;

static int pair_setup(void **state)
{
	pair *p = calloc(1, sizeof(*p));
	char *cert, *key;
	const char *err = NULL;
	if (tls_creds_generate("alpha.test", 30, &cert, &key, &err) != 0)
		fail_msg("generate: %s", err);
	assert_non_null(strstr(cert, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(key, "PRIVATE KEY"));
	assert_int_equal(tls_creds_server(cert, key, &p->sc, &err), 0);
	assert_int_equal(tls_creds_client(&p->cc, &err), 0);
	free(cert);
	free(key);
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	pair *p = *state;
	tls_creds_free(&p->sc);
	tls_creds_free(&p->cc);
	free(p);
	return 0;
}

/* Move bytes a->b and b->a until neither has output; progress both. */
static int pump(tls_session *a, tls_session *b, const char **err)
{
	for (int round = 0; round < 100; round++) {
		int ra = tls_progress(a, err);
		int rb = tls_progress(b, err);
		if (ra < 0 || rb < 0)
			return -1;
		const uint8_t *o;
		size_t n = tls_take_output(a, &o), m;
		if (n > 0) {
			if (tls_feed(b, o, n) != 0)
				return -1;
			tls_output_consumed(a, n);
		}
		m = tls_take_output(b, &o);
		if (m > 0) {
			if (tls_feed(a, o, m) != 0)
				return -1;
			tls_output_consumed(b, m);
		}
		if (n == 0 && m == 0 && ra == 1 && rb == 1)
			return 0;
	}
	return -2;
}

static void test_handshake_and_data(void **state)
{
	pair *p = *state;
	const char *err = NULL;
	assert_int_equal(tls_session_new(p->sc, true, &p->server, &err), 0);
	assert_int_equal(tls_session_new(p->cc, false, &p->client, &err), 0);
	assert_false(tls_handshake_done(p->client));
	uint8_t x0[TLS_EXPORTER_BYTES];
	assert_int_equal(tls_exporter(p->client, x0), -1); /* not yet */
	if (pump(p->client, p->server, &err) != 0)
		fail_msg("handshake: %s", err ? err : "no progress");
	assert_true(tls_handshake_done(p->client));
	assert_true(tls_handshake_done(p->server));
	uint8_t xc[TLS_EXPORTER_BYTES], xs[TLS_EXPORTER_BYTES];
	assert_int_equal(tls_exporter(p->client, xc), 0);
	assert_int_equal(tls_exporter(p->server, xs), 0);
	assert_memory_equal(xc, xs, sizeof(xc));

	/* 1 MB client -> server, in many records, and a reply. */
	size_t big = 1024 * 1024;
	uint8_t *data = malloc(big), *got = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(tls_write(p->client, data, big, &err), 0);
	size_t have = 0;
	while (have < big) {
		const uint8_t *o;
		size_t n = tls_take_output(p->client, &o);
		assert_int_equal(tls_feed(p->server, o, n), 0);
		tls_output_consumed(p->client, n);
		long r;
		while ((r = tls_read(p->server, got + have, big - have, &err)) > 0)
			have += (size_t)r;
		if (r < 0)
			fail_msg("server read: %s (have %zu)", err, have);
		if (n == 0)
			break;
	}
	assert_int_equal(have, big);
	assert_memory_equal(got, data, big);
	assert_int_equal(tls_write(p->server, (const uint8_t *)"pong", 4, &err), 0);
	const uint8_t *o;
	size_t n = tls_take_output(p->server, &o);
	assert_int_equal(tls_feed(p->client, o, n), 0);
	tls_output_consumed(p->server, n);
	uint8_t small[16];
	long r = 0;
	for (int i = 0; i < 5 && r == 0; i++)
		r = tls_read(p->client, small, sizeof(small), &err);
	assert_int_equal(r, 4);
	assert_memory_equal(small, "pong", 4);
	free(data);
	free(got);
	tls_session_free(&p->server);
	tls_session_free(&p->client);
	assert_null(p->client);
}

/* A bare GnuTLS client over two memory queues, for peers our API cannot
 * produce (one that offers no ALPN). */
typedef struct raw_client {
	gnutls_session_t g;
	uint8_t in[65536], out[65536];
	size_t in_len, out_len;
} raw_client;

static ssize_t raw_push(gnutls_transport_ptr_t ptr, const void *d, size_t n)
{
	raw_client *c = ptr;
	if (c->out_len + n > sizeof(c->out))
		return -1;
	memcpy(c->out + c->out_len, d, n);
	c->out_len += n;
	return (ssize_t)n;
}

static ssize_t raw_pull(gnutls_transport_ptr_t ptr, void *d, size_t n)
{
	raw_client *c = ptr;
	if (c->in_len == 0) {
		gnutls_transport_set_errno(c->g, EAGAIN);
		return -1;
	}
	if (n > c->in_len)
		n = c->in_len;
	memcpy(d, c->in, n);
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	return (ssize_t)n;
}

static void test_refusals(void **state)
{
	pair *p = *state;
	const char *err = NULL;

	/* A plain TLS client that offers no ALPN: the server refuses it. */
	raw_client rc = { 0 };
	gnutls_certificate_credentials_t cred;
	assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
	assert_int_equal(gnutls_init(&rc.g, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
	assert_int_equal(gnutls_priority_set_direct(rc.g, "NORMAL", NULL), 0);
	assert_int_equal(gnutls_credentials_set(rc.g, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_transport_set_ptr(rc.g, &rc);
	gnutls_transport_set_push_function(rc.g, raw_push);
	gnutls_transport_set_pull_function(rc.g, raw_pull);
	assert_int_equal(tls_session_new(p->sc, true, &p->server, &err), 0);
	int server_rc = 0, client_rc = GNUTLS_E_AGAIN;
	for (int round = 0; round < 20 && server_rc == 0; round++) {
		if (client_rc == GNUTLS_E_AGAIN)
			client_rc = gnutls_handshake(rc.g);
		if (rc.out_len > 0) {
			assert_int_equal(tls_feed(p->server, rc.out, rc.out_len), 0);
			rc.out_len = 0;
		}
		server_rc = tls_progress(p->server, &err);
		const uint8_t *so;
		size_t sn = tls_take_output(p->server, &so);
		if (sn > 0 && rc.in_len + sn <= sizeof(rc.in)) {
			memcpy(rc.in + rc.in_len, so, sn);
			rc.in_len += sn;
		}
		tls_output_consumed(p->server, sn);
	}
	assert_int_equal(server_rc, -1);
	assert_false(tls_handshake_done(p->server));
	gnutls_deinit(rc.g);
	gnutls_certificate_free_credentials(cred);
	tls_session_free(&p->server);

	/* Garbage instead of a ClientHello: the server fails, never crashes. */
	assert_int_equal(tls_session_new(p->sc, true, &p->server, &err), 0);
	static const uint8_t junk[] = "EHLO example.org\r\nGET / HTTP/1.1\r\n\r\n";
	assert_int_equal(tls_feed(p->server, junk, sizeof(junk) - 1), 0);
	assert_int_equal(tls_progress(p->server, &err), -1);
	assert_non_null(err);
	assert_int_equal(tls_progress(p->server, &err), -1); /* stays failed */
	uint8_t wbuf[1] = { 0 };
	assert_int_equal(tls_write(p->server, wbuf, 1, &err), -1);
	tls_session_free(&p->server);

	/* Buffers are bounded. */
	assert_int_equal(tls_session_new(p->sc, true, &p->server, &err), 0);
	uint8_t *chunk = calloc(1, 1024 * 1024);
	for (int i = 0; i < 4; i++)
		assert_int_equal(tls_feed(p->server, chunk, 1024 * 1024), 0);
	assert_int_equal(tls_feed(p->server, chunk, 1), -1);
	free(chunk);
	tls_session_free(&p->server);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_data),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, pair_setup, pair_teardown);
}
