/*
 * test-cache.c — the X25519 shared-secret cache (amp_ctx): correctness,
 * LRU order, bounded size, low-order keys, and many threads at once; and
 * the replay guard (amp_replay_guard): duplicates, expiry, fullness.
 */
#include "test-common.h"

#include <pthread.h>

#define NPEERS 32

typedef struct peers {
	uint8_t own_sk[32], own_pk[32];
	uint8_t pk[NPEERS][32];
	uint8_t want[NPEERS][32];
} peers;

static peers *make_peers(void)
{
	peers *p = malloc(sizeof(*p));
	randombytes_buf(p->own_sk, 32);
	crypto_scalarmult_base(p->own_pk, p->own_sk);
	for (int i = 0; i < NPEERS; i++) {
		uint8_t sk[32];
		randombytes_buf(sk, 32);
		crypto_scalarmult_base(p->pk[i], sk);
		assert_int_equal(crypto_scalarmult(p->want[i], p->own_sk, p->pk[i]), 0);
	}
	return p;
}

static void dh_ok(amp_ctx *ctx, peers *p, int i)
{
	uint8_t out[32];
	assert_int_equal(amp_ctx_dh(ctx, p->own_sk, p->own_pk, p->pk[i], out), AMP_OK);
	assert_memory_equal(out, p->want[i], 32);
}

static void test_lru(void **state)
{
	(void)state;
	peers *p = make_peers();
	amp_ctx *ctx;
	amp_cache_stats st;
	assert_int_equal(amp_ctx_create(4, &ctx), AMP_OK);
	for (int i = 0; i < 4; i++)
		dh_ok(ctx, p, i);          /* misses: 0 1 2 3 */
	dh_ok(ctx, p, 0);                  /* hit; order 0 3 2 1 */
	dh_ok(ctx, p, 4);                  /* miss; evicts 1 */
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 5);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.capacity, 4);
	dh_ok(ctx, p, 0);                  /* still cached */
	dh_ok(ctx, p, 2);
	dh_ok(ctx, p, 3);
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.hits, 4);
	dh_ok(ctx, p, 1);                  /* was evicted: miss */
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.misses, 6);
	assert_int_equal(st.evictions, 2);
	/* Churn through all peers many times: never above capacity, always
	 * right. */
	for (int r = 0; r < 20; r++)
		for (int i = 0; i < NPEERS; i++)
			dh_ok(ctx, p, (i * 7 + r) % NPEERS);
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.entries, 4);
	amp_ctx_destroy(&ctx);
	assert_null(ctx);
	amp_ctx_destroy(&ctx);
	free(p);
}

static void test_disabled_and_bad_key(void **state)
{
	(void)state;
	peers *p = make_peers();
	amp_ctx *ctx;
	amp_cache_stats st;
	assert_int_equal(amp_ctx_create(0, &ctx), AMP_OK);
	dh_ok(ctx, p, 0);
	dh_ok(ctx, p, 0);
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.entries, 0);
	amp_ctx_destroy(&ctx);
	dh_ok(NULL, p, 1); /* no context at all */

	assert_int_equal(amp_ctx_create(8, &ctx), AMP_OK);
	uint8_t zero[32] = { 0 }, out[32];
	assert_int_equal(amp_ctx_dh(ctx, p->own_sk, p->own_pk, zero, out),
			 AMP_E_BAD_KEY);
	assert_true(sodium_is_zero(out, 32));
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.entries, 0); /* failures are not cached */
	/* A different own key with the same peer is a different entry. */
	peers *q = make_peers();
	memcpy(q->pk[0], p->pk[0], 32);
	assert_int_equal(crypto_scalarmult(q->want[0], q->own_sk, q->pk[0]), 0);
	dh_ok(ctx, p, 0);
	dh_ok(ctx, q, 0);
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(amp_ctx_create(SIZE_MAX, &ctx), AMP_E_INVALID_ARG);
	amp_ctx_destroy(&ctx);
	free(p);
	free(q);
}

typedef struct worker {
	amp_ctx *ctx;
	peers *p;
	int seed;
	int errors;
} worker;

static void *hammer(void *arg)
{
	worker *w = arg;
	uint8_t out[32];
	for (int i = 0; i < 3000; i++) {
		int k = (i * 13 + w->seed * 5) % NPEERS;
		if (amp_ctx_dh(w->ctx, w->p->own_sk, w->p->own_pk, w->p->pk[k],
			       out) != AMP_OK ||
		    memcmp(out, w->p->want[k], 32) != 0)
			w->errors++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	peers *p = make_peers();
	amp_ctx *ctx;
	assert_int_equal(amp_ctx_create(16, &ctx), AMP_OK);
	pthread_t t[8];
	worker w[8];
	for (int i = 0; i < 8; i++) {
		w[i] = (worker){ ctx, p, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].errors, 0);
	}
	amp_cache_stats st;
	amp_ctx_cache_stats(ctx, &st);
	assert_int_equal(st.hits + st.misses, 8 * 3000);
	assert_true(st.entries <= 16);
	amp_ctx_destroy(&ctx);
	free(p);
}

/* Seal and open through one shared amp_ctx from several threads: the
 * secret cache and the pooled zstd contexts stay correct under contention. */
typedef struct sealer {
	amp_ctx *ctx;
	amp_identity *a, *b;
	int errors;
} sealer;

static void *seal_open_loop(void *arg)
{
	sealer *s = arg;
	amp_public_identity to = s->b->pub;
	for (int i = 0; i < 150; i++) {
		char msg[64];
		int n = snprintf(msg, sizeof(msg), "message %d from %p", i, arg);
		uint8_t *env, *body = NULL;
		size_t len, blen;
		amp_seal_params p = { .created = T_NOW };
		if (amp_seal(s->ctx, s->a, &to, 1, &p, (uint8_t *)msg, (size_t)n,
			     &env, &len, NULL) != AMP_OK) {
			s->errors++;
			continue;
		}
		if (t_open(s->ctx, env, len, s->b, &s->a->pub, T_NOW, &body,
			   &blen) != AMP_OK ||
		    blen != (size_t)n || memcmp(body, msg, blen) != 0)
			s->errors++;
		free(body);
		amp_free(env);
	}
	return NULL;
}

static void test_shared_ctx_threads(void **state)
{
	(void)state;
	amp_identity *a = t_identity("did:aftersmtp:a.org:a");
	amp_identity *b = t_identity("did:aftersmtp:b.org:b");
	for (size_t cap = 0; cap <= 4; cap += 4) {
		amp_ctx *ctx;
		assert_int_equal(amp_ctx_create(cap, &ctx), AMP_OK);
		pthread_t t[6];
		sealer s[6];
		for (int i = 0; i < 6; i++) {
			s[i] = (sealer){ ctx, a, b, 0 };
			assert_int_equal(pthread_create(&t[i], NULL,
							seal_open_loop, &s[i]),
					 0);
		}
		for (int i = 0; i < 6; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(s[i].errors, 0);
		}
		amp_ctx_destroy(&ctx);
	}
	amp_identity_destroy(&a);
	amp_identity_destroy(&b);
}

/* ------------------------------------------------------------- replay */

static uint8_t *seal_one(amp_identity *a, amp_identity *b, uint64_t expires,
			 size_t *len)
{
	uint8_t *env;
	t_seal(NULL, a, &b, 1, "x", 1, expires, &env, len);
	return env;
}

static amp_err check(amp_replay_guard *g, const uint8_t *env, size_t len,
		     uint64_t now)
{
	amp_envelope *e;
	assert_int_equal(amp_envelope_decode(env, len, &e, NULL), AMP_OK);
	amp_err r = amp_replay_guard_check(g, e, now, NULL);
	amp_envelope_free(&e);
	return r;
}

static void test_replay(void **state)
{
	(void)state;
	amp_identity *a = t_identity("did:aftersmtp:a.org:a");
	amp_identity *b = t_identity("did:aftersmtp:b.org:b");
	amp_replay_guard *g;
	size_t l1, l2;
	assert_int_equal(amp_replay_guard_create(3, 3600, &g), AMP_OK);
	uint8_t *e1 = seal_one(a, b, 0, &l1);          /* forgotten at +3600 */
	uint8_t *e2 = seal_one(a, b, T_NOW + 60, &l2); /* forgotten at +60 */
	assert_int_equal(check(g, e1, l1, T_NOW), AMP_OK);
	assert_int_equal(check(g, e1, l1, T_NOW + 1), AMP_E_REPLAY);
	assert_int_equal(check(g, e2, l2, T_NOW), AMP_OK);
	assert_int_equal(check(g, e2, l2, T_NOW + 59), AMP_E_REPLAY);
	/* After its expiry the id may be forgotten (the envelope itself is
	 * refused as expired by amp_envelope_verify anyway). */
	assert_int_equal(check(g, e2, l2, T_NOW + 61), AMP_OK);
	assert_int_equal(check(g, e1, l1, T_NOW + 3599), AMP_E_REPLAY);
	/* Full: three more ids; the one due soonest is dropped, never the
	 * table overflowing. */
	size_t l[4];
	uint8_t *more[4];
	for (int i = 0; i < 4; i++) {
		more[i] = seal_one(a, b, T_NOW + 1000 + (uint64_t)i, &l[i]);
		assert_int_equal(check(g, more[i], l[i], T_NOW + 100), AMP_OK);
	}
	assert_int_equal(check(g, more[3], l[3], T_NOW + 100), AMP_E_REPLAY);
	assert_int_equal(check(g, more[2], l[2], T_NOW + 100), AMP_E_REPLAY);
	for (int i = 0; i < 4; i++)
		amp_free(more[i]);
	amp_free(e1);
	amp_free(e2);
	amp_replay_guard_destroy(&g);
	assert_null(g);
	assert_int_equal(amp_replay_guard_create(0, 1, &g), AMP_E_INVALID_ARG);
	amp_identity_destroy(&a);
	amp_identity_destroy(&b);
}

static uint8_t *seal_at(amp_identity *a, amp_identity *b, uint64_t created,
		       size_t *len)
{
	uint8_t *env;
	amp_seal_params p = { .created = created };
	assert_int_equal(amp_seal(NULL, a, &b->pub, 1, &p, (const uint8_t *)"x",
				  1, &env, len, NULL),
			 AMP_OK);
	return env;
}

/* Review finding: an old envelope that never expires must not be
 * forgotten one second after it is first seen. */
static void test_replay_old_never_expiring(void **state)
{
	(void)state;
	amp_identity *a = t_identity("did:aftersmtp:a.org:a");
	amp_identity *b = t_identity("did:aftersmtp:b.org:b");
	amp_replay_guard *g;
	size_t len;
	assert_int_equal(amp_replay_guard_create(8, 3600, &g), AMP_OK);
	uint8_t *env = seal_at(a, b, T_NOW - 7200, &len);
	assert_int_equal(check(g, env, len, T_NOW), AMP_OK);
	assert_int_equal(check(g, env, len, T_NOW + 2), AMP_E_REPLAY);
	assert_int_equal(check(g, env, len, T_NOW + 3599), AMP_E_REPLAY);
	assert_int_equal(check(g, env, len, T_NOW + 3601), AMP_OK);
	amp_free(env);
	/* At the end of time nothing can be remembered "until later", but the
	 * table neither wraps to empty buckets nor overfills and hangs: 20
	 * inserts into 8 slots all return. */
	env = seal_at(a, b, T_NOW, &len);
	assert_int_equal(check(g, env, len, UINT64_MAX), AMP_OK);
	for (int i = 0; i < 20; i++) {
		uint8_t *e2 = seal_at(a, b, T_NOW, &len);
		amp_err r = check(g, e2, len, UINT64_MAX);
		assert_true(r == AMP_OK || r == AMP_E_REPLAY);
		amp_free(e2);
	}
	/* and the guard still works at ordinary times afterwards */
	assert_int_equal(check(g, env, len, T_NOW), AMP_OK);
	assert_int_equal(check(g, env, len, T_NOW + 1), AMP_E_REPLAY);
	amp_free(env);
	amp_replay_guard_destroy(&g);
	amp_identity_destroy(&a);
	amp_identity_destroy(&b);
}

/* The same envelope id from two senders: independent entries. */
static void fixed_id_rng(void *ctx, uint8_t *buf, size_t len)
{
	int *calls = ctx;
	if ((*calls)++ == 0 && len == AMP_ENVELOPE_ID_BYTES)
		memcpy(buf, "same-id-16-bytes", AMP_ENVELOPE_ID_BYTES);
	else
		randombytes_buf(buf, len);
}

static void test_replay_keyed_by_sender(void **state)
{
	(void)state;
	amp_identity *a = t_identity("did:aftersmtp:a.org:a");
	amp_identity *c = t_identity("did:aftersmtp:c.org:c");
	amp_identity *b = t_identity("did:aftersmtp:b.org:b");
	amp_replay_guard *g;
	uint8_t *env[2];
	size_t len[2];
	assert_int_equal(amp_replay_guard_create(8, 3600, &g), AMP_OK);
	for (int k = 0; k < 2; k++) {
		int calls = 0;
		amp_seal_params p = { .created = T_NOW, .rng = fixed_id_rng,
				      .rng_ctx = &calls };
		assert_int_equal(amp_seal(NULL, k == 0 ? a : c, &b->pub, 1, &p,
					  (const uint8_t *)"x", 1, &env[k],
					  &len[k], NULL),
				 AMP_OK);
	}
	assert_int_equal(check(g, env[0], len[0], T_NOW), AMP_OK);
	assert_int_equal(check(g, env[1], len[1], T_NOW), AMP_OK);
	assert_int_equal(check(g, env[0], len[0], T_NOW), AMP_E_REPLAY);
	assert_int_equal(check(g, env[1], len[1], T_NOW), AMP_E_REPLAY);
	amp_free(env[0]);
	amp_free(env[1]);
	amp_replay_guard_destroy(&g);
	amp_identity_destroy(&a);
	amp_identity_destroy(&b);
	amp_identity_destroy(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lru),
		cmocka_unit_test(test_disabled_and_bad_key),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_shared_ctx_threads),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_replay_old_never_expiring),
		cmocka_unit_test(test_replay_keyed_by_sender),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
