/*
 * amp-cache.c — amp_ctx: a bounded, thread-safe LRU cache of X25519 shared
 * secrets, keyed by (own public key, peer public key) (PROTOCOL.md §5.2,
 * AMP-R-015).
 *
 * Layout: `capacity` slots allocated once with sodium_malloc (guard pages,
 * locked, wiped on free), an open-addressing index of 2*capacity buckets
 * hashed with SipHash (crypto_shorthash) under a random key so a peer cannot
 * choose keys that collide, and an intrusive doubly-linked LRU list.
 * A secret is wiped the moment its slot is evicted.  One mutex guards
 * everything; the X25519 itself runs outside the lock.
 *
 * amp_ctx also pools zstd compression and decompression contexts (at most
 * ZPOOL_MAX idle of each), because creating one costs more than sealing a
 * 10 KB message (bench/README.md).  Without an amp_ctx every call creates
 * and frees its own.
 */
#include "amp-private.h"

#include <pthread.h>
#include <sodium.h>
#include <zstd.h>

#define ZPOOL_MAX 8

#define NIL UINT32_MAX

typedef struct cache_slot {
	uint8_t own_pk[32];
	uint8_t peer_pk[32];
	uint8_t secret[32];
	uint32_t prev, next;   /* LRU list; head = most recent */
} cache_slot;

struct amp_ctx {
	pthread_mutex_t lock;
	size_t capacity;
	cache_slot *slots;     /* sodium_malloc'd, capacity entries */
	uint32_t *index;       /* n_buckets entries: slot number or NIL */
	size_t n_buckets;
	uint32_t head, tail;
	size_t entries;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	amp_cache_stats stats;
	void *cpool[ZPOOL_MAX];       /* idle ZSTD_CCtx */
	void *dpool[ZPOOL_MAX];       /* idle ZSTD_DCtx */
	size_t n_cpool, n_dpool;
};

amp_err amp_ctx_create(size_t capacity, amp_ctx **ctx_r)
{
	if (ctx_r == NULL || capacity > (1u << 24))
		return AMP_E_INVALID_ARG;
	amp_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return AMP_E_NOMEM;
	ctx->capacity = capacity;
	ctx->head = ctx->tail = NIL;
	if (capacity > 0) {
		ctx->slots = sodium_allocarray(capacity, sizeof(cache_slot));
		ctx->n_buckets = capacity * 2;
		ctx->index = malloc(ctx->n_buckets * sizeof(uint32_t));
		if (ctx->slots == NULL || ctx->index == NULL) {
			sodium_free(ctx->slots);
			free(ctx->index);
			free(ctx);
			return AMP_E_NOMEM;
		}
		memset(ctx->slots, 0, capacity * sizeof(cache_slot));
		for (size_t i = 0; i < ctx->n_buckets; i++)
			ctx->index[i] = NIL;
	}
	randombytes_buf(ctx->hash_key, sizeof(ctx->hash_key));
	ctx->stats.capacity = capacity;
	if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
		sodium_free(ctx->slots);
		free(ctx->index);
		free(ctx);
		return AMP_E_NOMEM;
	}
	*ctx_r = ctx;
	return AMP_OK;
}

void amp_ctx_destroy(amp_ctx **ctx)
{
	if (ctx == NULL || *ctx == NULL)
		return;
	amp_ctx *c = *ctx;
	for (size_t i = 0; i < c->n_cpool; i++)
		ZSTD_freeCCtx(c->cpool[i]);
	for (size_t i = 0; i < c->n_dpool; i++)
		ZSTD_freeDCtx(c->dpool[i]);
	pthread_mutex_destroy(&c->lock);
	sodium_free(c->slots); /* wipes every secret */
	free(c->index);
	sodium_memzero(c->hash_key, sizeof(c->hash_key));
	free(c);
	*ctx = NULL;
}

void amp_ctx_cache_stats(amp_ctx *ctx, amp_cache_stats *stats_r)
{
	pthread_mutex_lock(&ctx->lock);
	*stats_r = ctx->stats;
	stats_r->entries = ctx->entries;
	pthread_mutex_unlock(&ctx->lock);
}

static size_t bucket_of(const amp_ctx *c, const uint8_t own[32],
			const uint8_t peer[32])
{
	uint8_t key[64], h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	memcpy(key, own, 32);
	memcpy(key + 32, peer, 32);
	crypto_shorthash(h, key, sizeof(key), c->hash_key);
	for (size_t i = 0; i < sizeof(h); i++)
		v = (v << 8) | h[i];
	return (size_t)(v % c->n_buckets);
}

/* Bucket holding (own, peer), or the empty bucket where it would go. */
static size_t probe(const amp_ctx *c, const uint8_t own[32],
		    const uint8_t peer[32])
{
	size_t b = bucket_of(c, own, peer);
	for (;;) {
		uint32_t s = c->index[b];
		if (s == NIL)
			return b;
		const cache_slot *slot = &c->slots[s];
		if (memcmp(slot->own_pk, own, 32) == 0 &&
		    memcmp(slot->peer_pk, peer, 32) == 0)
			return b;
		b = (b + 1) % c->n_buckets;
	}
}

static void lru_unlink(amp_ctx *c, uint32_t s)
{
	cache_slot *x = &c->slots[s];
	if (x->prev != NIL)
		c->slots[x->prev].next = x->next;
	else
		c->head = x->next;
	if (x->next != NIL)
		c->slots[x->next].prev = x->prev;
	else
		c->tail = x->prev;
	x->prev = x->next = NIL;
}

static void lru_push_front(amp_ctx *c, uint32_t s)
{
	cache_slot *x = &c->slots[s];
	x->prev = NIL;
	x->next = c->head;
	if (c->head != NIL)
		c->slots[c->head].prev = s;
	c->head = s;
	if (c->tail == NIL)
		c->tail = s;
}

/* Remove bucket b from the linear-probing index, re-seating the cluster
 * that follows it (backward-shift deletion). */
static void index_remove(amp_ctx *c, size_t b)
{
	c->index[b] = NIL;
	size_t j = (b + 1) % c->n_buckets;
	while (c->index[j] != NIL) {
		uint32_t s = c->index[j];
		c->index[j] = NIL;
		size_t nb = probe(c, c->slots[s].own_pk, c->slots[s].peer_pk);
		c->index[nb] = s;
		j = (j + 1) % c->n_buckets;
	}
}

static bool lookup(amp_ctx *c, const uint8_t own[32], const uint8_t peer[32],
		   uint8_t out[32])
{
	size_t b = probe(c, own, peer);
	uint32_t s = c->index[b];
	if (s == NIL)
		return false;
	memcpy(out, c->slots[s].secret, 32);
	lru_unlink(c, s);
	lru_push_front(c, s);
	return true;
}

static void insert(amp_ctx *c, const uint8_t own[32], const uint8_t peer[32],
		   const uint8_t secret[32])
{
	size_t b = probe(c, own, peer);
	if (c->index[b] != NIL)
		return; /* another thread inserted it meanwhile */
	uint32_t s;
	if (c->entries < c->capacity) {
		s = (uint32_t)c->entries++;
	} else {
		s = c->tail;
		cache_slot *old = &c->slots[s];
		index_remove(c, probe(c, old->own_pk, old->peer_pk));
		lru_unlink(c, s);
		sodium_memzero(old->secret, sizeof(old->secret));
		c->stats.evictions++;
		b = probe(c, own, peer);
	}
	cache_slot *x = &c->slots[s];
	memcpy(x->own_pk, own, 32);
	memcpy(x->peer_pk, peer, 32);
	memcpy(x->secret, secret, 32);
	c->index[b] = s;
	lru_push_front(c, s);
}

amp_err amp_ctx_dh(amp_ctx *ctx, const uint8_t own_sk[32],
		   const uint8_t own_pk[32], const uint8_t peer_pk[32],
		   uint8_t dh_r[32])
{
	if (ctx != NULL && ctx->capacity > 0) {
		pthread_mutex_lock(&ctx->lock);
		bool hit = lookup(ctx, own_pk, peer_pk, dh_r);
		if (hit)
			ctx->stats.hits++;
		else
			ctx->stats.misses++;
		pthread_mutex_unlock(&ctx->lock);
		if (hit)
			return AMP_OK;
	}
	/* AMP-R-005: libsodium refuses an all-zero result (low-order point). */
	if (crypto_scalarmult(dh_r, own_sk, peer_pk) != 0) {
		sodium_memzero(dh_r, 32);
		return AMP_E_BAD_KEY;
	}
	if (ctx != NULL && ctx->capacity > 0) {
		pthread_mutex_lock(&ctx->lock);
		insert(ctx, own_pk, peer_pk, dh_r);
		pthread_mutex_unlock(&ctx->lock);
	}
	return AMP_OK;
}

/* ------------------------------------------------------ zstd context pool */

/* Take an idle context from one of ctx's pools (NULL if none). */
static void *pool_take(amp_ctx *ctx, void **pool, size_t *n)
{
	void *x = NULL;
	pthread_mutex_lock(&ctx->lock);
	if (*n > 0)
		x = pool[--*n];
	pthread_mutex_unlock(&ctx->lock);
	return x;
}

/* Keep x in the pool; false when it is full (the caller frees x). */
static bool pool_give(amp_ctx *ctx, void **pool, size_t *n, void *x)
{
	bool kept = false;
	pthread_mutex_lock(&ctx->lock);
	if (*n < ZPOOL_MAX) {
		pool[(*n)++] = x;
		kept = true;
	}
	pthread_mutex_unlock(&ctx->lock);
	return kept;
}

ZSTD_CCtx *amp_ctx_cctx_get(amp_ctx *ctx)
{
	ZSTD_CCtx *c = ctx != NULL ? pool_take(ctx, ctx->cpool, &ctx->n_cpool) : NULL;
	return c != NULL ? c : ZSTD_createCCtx();
}

void amp_ctx_cctx_put(amp_ctx *ctx, ZSTD_CCtx *c)
{
	if (c != NULL && (ctx == NULL || !pool_give(ctx, ctx->cpool, &ctx->n_cpool, c)))
		ZSTD_freeCCtx(c);
}

ZSTD_DCtx *amp_ctx_dctx_get(amp_ctx *ctx)
{
	ZSTD_DCtx *d = ctx != NULL ? pool_take(ctx, ctx->dpool, &ctx->n_dpool) : NULL;
	return d != NULL ? d : ZSTD_createDCtx();
}

void amp_ctx_dctx_put(amp_ctx *ctx, ZSTD_DCtx *d)
{
	if (d != NULL && (ctx == NULL || !pool_give(ctx, ctx->dpool, &ctx->n_dpool, d)))
		ZSTD_freeDCtx(d);
}
