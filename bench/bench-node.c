/*
 * bench-node.c — amp-bench-node: deliveries per second and latency of a
 * running node, over TLS or QUIC, with N concurrent authenticated clients,
 * next to the crypto the node itself must do per delivery (measured in
 * the same run with bare libsodium on one core), so the result shows how
 * far the node is from the crypto limit.  Also: memory per idle
 * connection (--idle).
 *
 *   amp-bench-node --node HOST:PORT --domain D [--transport tls|quic]
 *                  [--clients N] [--messages M] [--size BYTES]
 *                  [--rcpt-node HOST:PORT --rcpt-domain D2]   (relayed)
 *   amp-bench-node --node HOST:PORT --idle N --hold SECONDS [--transport T]
 *
 * Senders and recipients are fresh identities registered with proof of
 * work (the node's pow_bits: run the node with a low value).  Messages
 * are sealed before the clock starts (sealing is the client's cost, see
 * amp-bench-seal).  Relayed: the run also waits until the recipient's
 * node holds every message and reports that end-to-end rate.
 * Output: one "key=value" line per measurement.
 */
#include "client.h"

#include "amp/amp.h"
#include "util.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct target {
	char host[256];
	uint16_t port;
	const char *domain;
} target;

static nclient_transport transport = NCLIENT_TLS;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "amp-bench-node: %s: %s\n", what, err != NULL ? err : "failed");
	exit(1);
}

static bool parse_target(const char *s, target *t)
{
	const char *colon = strrchr(s, ':');
	uint64_t p;
	if (colon == NULL || (size_t)(colon - s) >= sizeof(t->host) ||
	    !util_parse_u64(colon + 1, 1, 65535, &p))
		return false;
	memcpy(t->host, s, (size_t)(colon - s));
	t->host[colon - s] = '\0';
	t->port = (uint16_t)p;
	return true;
}

static nclient *connect_to(const target *t)
{
	nclient_opts o = { .host = t->host, .port = t->port, .transport = transport,
			   .timeout_ms = 30000 };
	nclient *c;
	const char *err = NULL;
	if (nclient_connect(&o, &c, &err) != 0)
		die("connect", err);
	return c;
}

static amp_identity *make_user(const target *t, const char *name)
{
	char did[AMP_DID_MAX + 1], local[64];
	const char *err = NULL;
	snprintf(local, sizeof(local), "%s%08x", name, randombytes_random());
	if (amp_did_format(t->domain, local, did, sizeof(did), &err) != AMP_OK)
		die("did", err);
	amp_identity *id;
	if (amp_identity_generate(did, &id, &err) != AMP_OK)
		die("keygen", err);
	nclient *c = connect_to(t);
	amp_pow_stamp st;
	char stamp[AMP_POW_TEXT_MAX + 1];
	if (amp_pow_mint(&id->pub, nclient_pow_bits(c), 0, 0, &st, &err) != AMP_OK ||
	    amp_pow_format(&st, stamp, sizeof(stamp)) != AMP_OK)
		die("pow", err);
	if (nclient_register(c, id, stamp, NULL, NULL, NULL, &err) != 0)
		die("register", err);
	nclient_close(&c);
	return id;
}

typedef struct job {
	const target *t;
	const amp_identity *sender;
	uint8_t **env;
	size_t *env_len;
	size_t first, n;
	double *lat;
} job;

static void *client_main(void *arg)
{
	job *j = arg;
	nclient *c = connect_to(j->t);
	const char *err = NULL;
	if (nclient_auth(c, j->sender, NULL, &err) != 0)
		die("auth", err);
	for (size_t i = 0; i < j->n; i++) {
		size_t k = j->first + i;
		Amp__V1__Response *resp = NULL;
		int status;
		double t0 = now_s();
		for (;;) {
			int r = nclient_deliver(c, j->env[k], j->env_len[k], &resp,
						&status, &err);
			if (r == 0)
				break;
			if (status == AMP__V1__STATUS__STATUS_RETRY_LATER ||
			    status == AMP__V1__STATUS__STATUS_RATE_LIMITED) {
				if (resp != NULL)
					amp__v1__response__free_unpacked(resp, NULL);
				resp = NULL;
				usleep(1000);
				continue;
			}
			die("deliver", err);
		}
		j->lat[k] = now_s() - t0;
		amp__v1__response__free_unpacked(resp, NULL);
	}
	nclient_close(&c);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Messages held by the recipient's node (fetch without ack). */
static size_t inbox_count(const target *t, const amp_identity *rcpt)
{
	nclient *c = connect_to(t);
	const char *err = NULL;
	if (nclient_auth(c, rcpt, NULL, &err) != 0)
		die("auth", err);
	size_t total = 0;
	uint64_t cursor = 0;
	for (;;) {
		Amp__V1__Response *resp;
		if (nclient_fetch(c, cursor, 1000, 0, &resp, NULL, &err) != 0)
			die("fetch", err);
		size_t n = resp->fetch->n_items;
		cursor = resp->fetch->cursor;
		amp__v1__response__free_unpacked(resp, NULL);
		total += n;
		if (n == 0)
			break;
	}
	nclient_close(&c);
	return total;
}

/* The crypto a node does per accepted delivery, bare, on one core:
 * BLAKE2b over the ciphertext and an Ed25519 verification (§5.5), and
 * one XChaCha20-Poly1305 seal of the envelope at rest (the store). */
static double crypto_limit(size_t size, size_t n)
{
	uint8_t *buf = malloc(size + 64), *out = malloc(size + 64 + 16);
	uint8_t pk[32], sk[64], sig[64], h[64], key[32], nonce[24], msg[256];
	if (buf == NULL || out == NULL)
		die("crypto", "out of memory");
	randombytes_buf(buf, size);
	randombytes_buf(msg, sizeof(msg));
	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
	randombytes_buf(key, sizeof(key));
	double t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		crypto_generichash(h, 32, buf, size, NULL, 0);
		memcpy(msg, h, 32);
		if (crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) == 0)
			die("crypto", "impossible verification");
		randombytes_buf(nonce, sizeof(nonce));
		crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, buf, size, h, 32,
							    NULL, nonce, key);
	}
	double dt = now_s() - t0;
	free(buf);
	free(out);
	return (double)n / dt;
}

static void idle_mode(const target *t, size_t n, unsigned hold)
{
	nclient **cs = calloc(n, sizeof(*cs));
	if (cs == NULL)
		die("idle", "out of memory");
	double t0 = now_s();
	for (size_t i = 0; i < n; i++)
		cs[i] = connect_to(t);
	printf("idle_connections=%zu connect_s=%.2f transport=%s\n", n, now_s() - t0,
	       nclient_transport_name(transport));
	fflush(stdout);
	sleep(hold);
	for (size_t i = 0; i < n; i++)
		nclient_close(&cs[i]);
	free(cs);
}

int main(int argc, char **argv)
{
	target node = { .domain = NULL }, rnode = { .domain = NULL };
	bool relayed = false;
	uint64_t clients = 1, messages = 2000, size = 10240, idle = 0, hold = 5;
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = v != NULL;
		if (strcmp(a, "--node") == 0 && ok)
			ok = parse_target(v, &node);
		else if (strcmp(a, "--domain") == 0 && ok)
			node.domain = v;
		else if (strcmp(a, "--rcpt-node") == 0 && ok)
			ok = relayed = parse_target(v, &rnode);
		else if (strcmp(a, "--rcpt-domain") == 0 && ok)
			rnode.domain = v;
		else if (strcmp(a, "--transport") == 0 && ok)
			ok = nclient_transport_parse(v, &transport);
		else if (strcmp(a, "--clients") == 0 && ok)
			ok = util_parse_u64(v, 1, 1024, &clients);
		else if (strcmp(a, "--messages") == 0 && ok)
			ok = util_parse_u64(v, 1, 10000000, &messages);
		else if (strcmp(a, "--size") == 0 && ok)
			ok = util_parse_u64(v, 1, AMP_BODY_MAX, &size);
		else if (strcmp(a, "--idle") == 0 && ok)
			ok = util_parse_u64(v, 1, 1000000, &idle);
		else if (strcmp(a, "--hold") == 0 && ok)
			ok = util_parse_u64(v, 0, 3600, &hold);
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "usage: see the top of bench/bench-node.c\n");
			return 2;
		}
	}
	if (amp_init() != AMP_OK || node.port == 0)
		die("usage", "--node HOST:PORT is required");
	if (idle > 0) {
		idle_mode(&node, idle, (unsigned)hold);
		return 0;
	}
	if (node.domain == NULL || (relayed && rnode.domain == NULL))
		die("usage", "--domain (and --rcpt-domain with --rcpt-node) required");
	if (!relayed)
		rnode = node;
	amp_identity *sender = make_user(&node, "s");
	amp_identity *rcpt = make_user(&rnode, "r");

	/* A 10 KB mail-like body: printable, moderately compressible. */
	uint8_t *body = malloc(size);
	if (body == NULL)
		die("body", "out of memory");
	for (size_t i = 0; i < size; i++)
		body[i] = (uint8_t)(i % 73 == 72 ? '\n' : 'a' + randombytes_uniform(26));
	uint8_t **env = calloc(messages, sizeof(*env));
	size_t *env_len = calloc(messages, sizeof(*env_len));
	double *lat = calloc(messages, sizeof(*lat));
	amp_ctx *ctx;
	const char *err = NULL;
	if (env == NULL || env_len == NULL || lat == NULL ||
	    amp_ctx_create(16, &ctx) != AMP_OK)
		die("alloc", "out of memory");
	amp_seal_params sp = { .content_type = "text/plain" };
	for (size_t i = 0; i < messages; i++)
		if (amp_seal(ctx, sender, &rcpt->pub, 1, &sp, body, size, &env[i],
			     &env_len[i], &err) != AMP_OK)
			die("seal", err);

	pthread_t *th = calloc(clients, sizeof(*th));
	job *jobs = calloc(clients, sizeof(*jobs));
	if (th == NULL || jobs == NULL)
		die("alloc", "out of memory");
	double t0 = now_s();
	size_t per = messages / clients, extra = messages % clients, first = 0;
	for (size_t i = 0; i < clients; i++) {
		jobs[i] = (job){ .t = &node, .sender = sender, .env = env,
				 .env_len = env_len, .first = first,
				 .n = per + (i < extra ? 1 : 0), .lat = lat };
		first += jobs[i].n;
		pthread_create(&th[i], NULL, client_main, &jobs[i]);
	}
	for (size_t i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	double dt = now_s() - t0;
	qsort(lat, messages, sizeof(*lat), cmp_double);
	double p50 = lat[messages / 2] * 1000, p99 = lat[(messages * 99) / 100] * 1000;
	printf("mode=%s transport=%s clients=%llu messages=%llu size=%llu "
	       "accepted_per_s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
	       relayed ? "relayed" : "local", nclient_transport_name(transport),
	       (unsigned long long)clients, (unsigned long long)messages,
	       (unsigned long long)size, (double)messages / dt, p50, p99);
	fflush(stdout);
	if (relayed) {
		size_t have = 0;
		while ((have = inbox_count(&rnode, rcpt)) < messages) {
			if (now_s() - t0 > 600)
				die("relay", "not every message arrived in 10 minutes");
			usleep(200000);
		}
		double e2e = now_s() - t0;
		printf("mode=relayed-end-to-end transport=%s clients=%llu messages=%zu "
		       "delivered_per_s=%.0f seconds=%.2f\n",
		       nclient_transport_name(transport), (unsigned long long)clients,
		       have, (double)messages / e2e, e2e);
	}
	printf("mode=crypto-limit size=%llu per_core_per_s=%.0f (BLAKE2b of the "
	       "body + Ed25519 verify + XChaCha20-Poly1305 at rest; bare libsodium)\n",
	       (unsigned long long)size, crypto_limit(size, messages));
	for (size_t i = 0; i < messages; i++)
		amp_free(env[i]);
	free(env);
	free(env_len);
	free(lat);
	free(th);
	free(jobs);
	free(body);
	amp_ctx_destroy(&ctx);
	amp_identity_destroy(&sender);
	amp_identity_destroy(&rcpt);
	return 0;
}
