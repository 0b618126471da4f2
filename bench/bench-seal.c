/*
 * bench-seal.c — amp-bench-seal: throughput of amp_seal and of opening an
 * envelope (amp_envelope_decode + amp_envelope_open, by the first
 * recipient), side by side with a "bare primitives" baseline that does the
 * same cryptographic and compression work with plain libsodium and zstd
 * calls and nothing else (PROTOCOL.md §5.2, §5.3, §5.5).
 *
 * Rows: {seal, open} x payload {1 KB, 10 KB, 1 MB} x {1, 10} recipients x
 * shared-secret cache {off, on}.
 *   cache off  amp gets an amp_ctx of capacity 0 (no secret caching, but
 *              its pooled zstd contexts, as a node would run); the
 *              baseline does one X25519 per recipient when sealing, one
 *              when opening.
 *   cache on   amp gets an amp_ctx of 1024 entries, warmed before timing
 *              (a miss during timing aborts the run); the baseline does no
 *              X25519 at all.
 *
 * The baseline per seal: random envelope id, content key and nonce; zstd
 * level 3 (a reused ZSTD_CCtx); zero padding to the Padmé size;
 * XChaCha20-Poly1305 over the padded size; per recipient [X25519] + keyed
 * BLAKE2b-256 of the real wrap context + a random nonce + a 32-byte AEAD;
 * BLAKE2b-256 of the ciphertext; Ed25519 over the real §5.5 signing input.
 * Per open: BLAKE2b-256 of the ciphertext + Ed25519 verify; [X25519];
 * keyed BLAKE2b + 32-byte AEAD decrypt; payload AEAD decrypt; padding check;
 * zstd decompress (a reused ZSTD_DCtx).  It keeps its contexts and buffers
 * across operations and does no encoding: it is the floor the primitives
 * set, not a second implementation.
 *
 * Timing: CLOCK_MONOTONIC.  After a warmup of a fifth of --time per side,
 * a row runs --reps rounds; in a round amp and bare run in alternating
 * 10 ms slices until each side has run for at least --time seconds, so
 * that changes in the machine's load hit both alike.  Times are medians
 * over the rounds; amp/bare is the median of the rounds' ratios and
 * "spread" its (max - min) / median.
 *
 * After the table: PASS/MISS of the target (seal 10 KB to one
 * recipient within 1.5x of the baseline) and the per-call cost on this
 * machine of calls that would dominate small messages if they were made per
 * operation (sodium_malloc/sodium_free, zstd context creation: libamp
 * avoids both), plus randombytes_buf, which both sides make.
 *
 * The payload is real mail (the corpus' .eml files concatenated in name
 * order, each payload a prefix of the same text) because compressibility
 * decides zstd's share of the cost; without the corpus a deterministic
 * pseudo-random text stands in and the output says so.
 *
 * Not installed and not a test: bench/run.sh runs it and writes
 * bench/RESULTS.md; bench/README.md explains the table.
 */
#include "amp/amp.h"
#include "amp-private.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#ifndef CORPUS_DEFAULT /* set by bench/meson.build: ../shared/corpus/ham */
#define CORPUS_DEFAULT "../shared/corpus/ham"
#endif
#define ZSTD_LEVEL 3
#define CACHE_CAPACITY 1024u
#define RCPT_MAX 10u
#define REPS_DEFAULT 5u
#define REPS_QUICK 1u
#define REPS_MAX 99u
#define TIME_DEFAULT 0.5
#define TIME_QUICK 0.05
#define TIME_MIN 0.001
#define TIME_MAX 3600.0
#define WARMUP_MIN 0.01
#define SLICE_S 0.01               /* alternation granularity of amp/bare */
#define TARGET_RATIO 1.5
#define TARGET_SIZE (10u * 1024u)
#define TARGET_RCPT 1u
#define CONTENT_TYPE "message/rfc822"
#define SENDER_DID "did:aftersmtp:example.org:alice"
#define MIB 1048576.0

#define PADDED_MIN 256u
#define WRAP_CTX_MAX (10 + 4 + AMP_ENVELOPE_ID_BYTES + 2 * (4 + AMP_DID_MAX) + 64)
#define PAYLOAD_AD_MAX                                                        \
	(13 + 4 + AMP_ENVELOPE_ID_BYTES + 4 + AMP_DID_MAX + 4 +               \
	 AMP_CONTENT_TYPE_MAX)
#define SIG_INPUT_MAX                                                         \
	(9 + 4 + 4 + AMP_ENVELOPE_ID_BYTES + 4 + AMP_DID_MAX + 4 + 8 + 8 +    \
	 4 + 4 + AMP_CONTENT_TYPE_MAX + 8 + 4 + AMP_NONCE_BYTES + 4 +         \
	 RCPT_MAX * (4 + AMP_DID_MAX + 4 + AMP_WRAPPED_KEY_BYTES) + 32)

#define N_SIZES 3u
static const size_t payload_sizes[N_SIZES] = {
	1024u, 10u * 1024u, 1024u * 1024u
};
static const char *const payload_names[N_SIZES] = { "1 KB", "10 KB", "1 MB" };
static const char *const payload_tags[N_SIZES] = { "1KB", "10KB", "1MB" };
#define N_RCPT_COUNTS 2u
static const size_t rcpt_counts[N_RCPT_COUNTS] = { 1u, RCPT_MAX };

/* ----------------------------------------------------------------- helpers */

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("amp-bench-seal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The canonical byte strings are written with libamp's own fixed-capacity
 * writer (amp_wbuf, amp-private.h): the writer is bookkeeping, not one of
 * the primitives being compared.  Overflow is a bug of this program. */
static size_t wbuf_done(const amp_wbuf *w)
{
	if (w->overflow)
		die("internal error: scratch buffer too small");
	return w->len;
}

static uint64_t padded_size_for(uint64_t z_len)
{
	uint64_t p = amp_padme(4 + z_len);
	return p < PADDED_MIN ? PADDED_MIN : p;
}

/* ----------------------------------------------------------------- payload */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_eml_suffix(const char *name)
{
	size_t n = strlen(name);
	return n > 4 && strcmp(name + n - 4, ".eml") == 0;
}

/* Fill buf[0..len) with the .eml files of dir concatenated in name order,
 * starting over when the corpus is smaller than len.  files_for[i] is set to
 * the number of files the first payload_sizes[i] bytes span.  Returns the
 * number of distinct files read, 0 when there is no usable corpus. */
static size_t load_corpus(const char *dir, uint8_t *buf, size_t len,
			  size_t files_for[N_SIZES])
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!has_eml_suffix(de->d_name))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				die("out of memory listing %s", dir);
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL)
			die("out of memory listing %s", dir);
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);

	size_t fill = 0, files = 0, distinct = 0;
	memset(files_for, 0, N_SIZES * sizeof(files_for[0]));
	while (n > 0 && fill < len) {
		size_t before = fill;
		for (size_t i = 0; i < n && fill < len; i++) {
			char path[4096];
			int r = snprintf(path, sizeof(path), "%s/%s", dir,
					 names[i]);
			if (r < 0 || (size_t)r >= sizeof(path))
				continue;
			FILE *f = fopen(path, "rb");
			if (f == NULL)
				continue;
			size_t got = fread(buf + fill, 1, len - fill, f);
			fclose(f);
			if (got == 0)
				continue;
			fill += got;
			files++;
			if (files <= n)
				distinct = files;
			for (size_t s = 0; s < N_SIZES; s++) {
				if (files_for[s] == 0 && fill >= payload_sizes[s])
					files_for[s] = files;
			}
		}
		if (fill == before)
			break; /* nothing readable */
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return fill == len ? distinct : 0;
}

/* Deterministic English-like text with header-like lines and random tokens
 * (xorshift64*), for when the corpus is absent. */
static void synth_text(uint8_t *buf, size_t len)
{
	static const char *const words[] = {
		"the", "of", "and", "to", "a", "in", "is", "that", "for",
		"it", "with", "as", "was", "on", "be", "at", "by", "this",
		"have", "from", "or", "an", "but", "not", "are", "list",
		"mail", "message", "server", "please", "thanks", "patch",
		"version", "release", "problem", "works", "install", "kernel",
		"package", "update", "would", "could", "should", "think",
		"know", "just", "like", "time", "people", "because", "there",
		"which", "about", "when", "some", "what", "into", "than",
		"other", "then", "them", "these", "only", "new",
	};
	static const char *const headers[] = {
		"Received: from", "Message-Id: <", "Date: Thu, 22 Aug 2002",
		"From:", "Subject: Re:", "X-Mailer:",
	};
	static const char alnum[] =
		"abcdefghijklmnopqrstuvwxyz0123456789";
	uint64_t s = UINT64_C(0x9e3779b97f4a7c15);
	size_t pos = 0, col = 0;

	while (pos < len) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		uint64_t r = s * UINT64_C(2685821657736338717);
		char tok[64];
		size_t tl;
		if (col == 0 && r % 23 == 0) {
			tl = (size_t)snprintf(tok, sizeof(tok), "%s ",
					      headers[(r >> 8) % 6]);
		} else if (r % 17 == 0) {
			tl = 8 + (size_t)((r >> 8) % 9);
			for (size_t i = 0; i < tl; i++)
				tok[i] = alnum[(r >> (i * 3 + 12)) % 36];
			tok[tl++] = ' ';
		} else {
			tl = (size_t)snprintf(tok, sizeof(tok), "%s ",
					      words[(r >> 8) % 64]);
		}
		if (col + tl > 72) {
			tok[tl - 1] = '\n';
			col = 0;
		} else {
			col += tl;
		}
		for (size_t i = 0; i < tl && pos < len; i++)
			buf[pos++] = (uint8_t)tok[i];
	}
}

/* ------------------------------------------------------------------ world */

typedef struct world {
	amp_identity *sender;
	amp_identity *rcpt[RCPT_MAX];
	amp_public_identity rcpt_pub[RCPT_MAX];
	amp_ctx *ctx;                 /* the shared-secret cache of "on" rows */
	amp_ctx *ctx_nocache;         /* capacity 0: the "off" rows */
	uint64_t created;             /* the baseline's header time */
} world;

static void world_init(world *w)
{
	const char *err = NULL;
	amp_err e;

	memset(w, 0, sizeof(*w));
	e = amp_identity_generate(SENDER_DID, &w->sender, &err);
	if (e != AMP_OK)
		die("amp_identity_generate: %s", err != NULL ? err : "");
	for (size_t i = 0; i < RCPT_MAX; i++) {
		char did[AMP_DID_MAX + 1];
		int r = snprintf(did, sizeof(did),
				 "did:aftersmtp:example.net:bob-%zu", i);
		if (r < 0 || (size_t)r >= sizeof(did))
			die("internal error: DID too long");
		e = amp_identity_generate(did, &w->rcpt[i], &err);
		if (e != AMP_OK)
			die("amp_identity_generate: %s", err != NULL ? err : "");
		w->rcpt_pub[i] = w->rcpt[i]->pub;
	}
	if (amp_ctx_create(CACHE_CAPACITY, &w->ctx) != AMP_OK ||
	    amp_ctx_create(0, &w->ctx_nocache) != AMP_OK)
		die("amp_ctx_create failed");
	w->created = (uint64_t)time(NULL);
}

static void world_deinit(world *w)
{
	amp_identity_destroy(&w->sender);
	for (size_t i = 0; i < RCPT_MAX; i++)
		amp_identity_destroy(&w->rcpt[i]);
	amp_ctx_destroy(&w->ctx);
	amp_ctx_destroy(&w->ctx_nocache);
}

/* ------------------------------------------------------------- bare state */

/* What the baseline's seal produces: the header values that matter to the
 * primitives and the ciphertext.  No encoding. */
typedef struct bare_env {
	uint8_t eid[AMP_ENVELOPE_ID_BYTES];
	uint8_t pnonce[AMP_NONCE_BYTES];
	uint8_t wrapped[RCPT_MAX][AMP_WRAPPED_KEY_BYTES];
	uint8_t sig[AMP_SIG_BYTES];
	uint64_t padded;
	uint8_t *ct;                  /* padded + 16 bytes */
} bare_env;

typedef struct bare {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	size_t buf_cap;               /* padded bound of the largest payload + 16 */
	uint8_t *seal_buf;            /* seal: padded plaintext, encrypted in place */
	uint8_t *open_ct;             /* open: the ciphertext of `opened` */
	uint8_t *plain;               /* open: decrypted padded payload */
	uint8_t *body;                /* open: decompressed body */
	bare_env sealed;              /* the seal loop's output */
	bare_env opened;              /* the open loop's fixed input */
	uint8_t dh_seal[RCPT_MAX][32];/* X25519 results "from the cache" */
	uint8_t dh_open[32];
	uint8_t sig_in[SIG_INPUT_MAX];
} bare;

static bare *bare_create(const world *w, size_t max_len)
{
	bare *b = xcalloc(1, sizeof(*b));
	b->cctx = ZSTD_createCCtx();
	b->dctx = ZSTD_createDCtx();
	if (b->cctx == NULL || b->dctx == NULL)
		die("out of memory for zstd contexts");
	b->buf_cap = (size_t)padded_size_for(ZSTD_compressBound(max_len)) + 16;
	b->seal_buf = xcalloc(1, b->buf_cap);
	b->open_ct = xcalloc(1, b->buf_cap);
	b->plain = xcalloc(1, b->buf_cap);
	b->body = xcalloc(1, max_len);
	for (size_t i = 0; i < RCPT_MAX; i++) {
		if (crypto_scalarmult(b->dh_seal[i], w->sender->enc_sk,
				      w->rcpt_pub[i].enc_pk) != 0)
			die("X25519 failed");
	}
	if (crypto_scalarmult(b->dh_open, w->rcpt[0]->enc_sk,
			      w->sender->pub.enc_pk) != 0)
		die("X25519 failed");
	return b;
}

static void bare_destroy(bare **bp)
{
	bare *b = *bp;
	if (b == NULL)
		return;
	ZSTD_freeCCtx(b->cctx);
	ZSTD_freeDCtx(b->dctx);
	free(b->seal_buf);
	free(b->open_ct);
	free(b->plain);
	free(b->body);
	sodium_memzero(b, sizeof(*b));
	free(b);
	*bp = NULL;
}

/* The canonical byte strings of §5.2, §5.3 and §5.5. */
static size_t wrap_ctx(uint8_t *out, size_t cap, const uint8_t *eid,
		       const char *sdid, const char *rdid,
		       const uint8_t s_pk[32], const uint8_t r_pk[32])
{
	amp_wbuf w;
	amp_wbuf_init(&w, out, cap);
	amp_wbuf_str(&w, "AMPv1-wrap");
	amp_wbuf_lp(&w, eid, AMP_ENVELOPE_ID_BYTES);
	amp_wbuf_lp(&w, sdid, strlen(sdid));
	amp_wbuf_lp(&w, rdid, strlen(rdid));
	amp_wbuf_put(&w, s_pk, 32);
	amp_wbuf_put(&w, r_pk, 32);
	return wbuf_done(&w);
}

static size_t payload_ad(uint8_t *out, size_t cap, const uint8_t *eid,
			 const char *sdid)
{
	amp_wbuf w;
	amp_wbuf_init(&w, out, cap);
	amp_wbuf_str(&w, "AMPv1-payload");
	amp_wbuf_lp(&w, eid, AMP_ENVELOPE_ID_BYTES);
	amp_wbuf_lp(&w, sdid, strlen(sdid));
	amp_wbuf_lp(&w, CONTENT_TYPE, strlen(CONTENT_TYPE));
	return wbuf_done(&w);
}

static size_t sig_input(uint8_t *out, size_t cap, const world *wd, size_t n,
			const bare_env *e, const uint8_t digest[32])
{
	amp_wbuf w;
	amp_wbuf_init(&w, out, cap);
	amp_wbuf_str(&w, "AMPv1-sig");
	amp_wbuf_u32(&w, AMP_PROTOCOL_VERSION);
	amp_wbuf_lp(&w, e->eid, AMP_ENVELOPE_ID_BYTES);
	amp_wbuf_lp(&w, wd->sender->pub.did, strlen(wd->sender->pub.did));
	amp_wbuf_lp(&w, "", 0);                  /* sealed_sender */
	amp_wbuf_u64(&w, wd->created);
	amp_wbuf_u64(&w, 0);                     /* expires */
	amp_wbuf_u32(&w, 0);                     /* lane */
	amp_wbuf_lp(&w, CONTENT_TYPE, strlen(CONTENT_TYPE));
	amp_wbuf_u64(&w, e->padded);
	amp_wbuf_lp(&w, e->pnonce, AMP_NONCE_BYTES);
	amp_wbuf_u32(&w, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const char *did = wd->rcpt_pub[i].did;
		amp_wbuf_lp(&w, did, strlen(did));
		amp_wbuf_lp(&w, e->wrapped[i], AMP_WRAPPED_KEY_BYTES);
	}
	amp_wbuf_put(&w, digest, 32);
	return wbuf_done(&w);
}

/* ------------------------------------------------------------- operations */

typedef struct row_case {
	bool open;                    /* false: seal */
	bool cache;
	size_t size_idx, size, n;
	const uint8_t *payload;
	world *w;
	bare *b;
	uint8_t *env;                 /* open rows: one amp envelope */
	size_t env_len;
	char label[64];               /* "seal 10KB 1rcpt cache-off" */
} row_case;

typedef void bench_fn(row_case *c);

static void amp_seal_op(row_case *c)
{
	amp_seal_params p;
	const char *err = NULL;
	uint8_t *env = NULL;
	size_t env_len = 0;

	memset(&p, 0, sizeof(p));
	p.zstd_level = ZSTD_LEVEL;
	amp_err e = amp_seal(c->cache ? c->w->ctx : c->w->ctx_nocache, c->w->sender,
			     c->w->rcpt_pub, c->n, &p, c->payload, c->size,
			     &env, &env_len, &err);
	if (e != AMP_OK)
		die("amp_seal: %s: %s", amp_err_name(e), err != NULL ? err : "");
	amp_free(env);
}

static void amp_open_op(row_case *c)
{
	amp_envelope *env = NULL;
	const char *err = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0;

	amp_err e = amp_envelope_decode(c->env, c->env_len, &env, &err);
	if (e != AMP_OK)
		die("amp_envelope_decode: %s: %s", amp_err_name(e),
		    err != NULL ? err : "");
	e = amp_envelope_open(c->cache ? c->w->ctx : c->w->ctx_nocache, env, c->w->rcpt[0],
			      &c->w->sender->pub, 0, &body, &body_len, &err);
	amp_envelope_free(&env);
	if (e != AMP_OK)
		die("amp_envelope_open: %s: %s", amp_err_name(e),
		    err != NULL ? err : "");
	if (body_len != c->size)
		die("amp_envelope_open returned %zu bytes, not %zu", body_len,
		    c->size);
	amp_free(body);
}

static void bare_seal_into(row_case *c, bare_env *out, uint8_t *buf)
{
	const world *w = c->w;
	bare *b = c->b;
	uint8_t key[AMP_CONTENT_KEY_BYTES], dh[32], kek[32], digest[32];
	uint8_t ad[PAYLOAD_AD_MAX], wctx[WRAP_CTX_MAX];

	randombytes_buf(out->eid, sizeof(out->eid));
	randombytes_buf(key, sizeof(key));
	randombytes_buf(out->pnonce, sizeof(out->pnonce));

	size_t z = ZSTD_compressCCtx(b->cctx, buf + 4, b->buf_cap - 16 - 4,
				     c->payload, c->size, ZSTD_LEVEL);
	if (ZSTD_isError(z))
		die("ZSTD_compressCCtx: %s", ZSTD_getErrorName(z));
	uint64_t padded = padded_size_for(z);
	buf[0] = (uint8_t)(z >> 24);
	buf[1] = (uint8_t)(z >> 16);
	buf[2] = (uint8_t)(z >> 8);
	buf[3] = (uint8_t)z;
	memset(buf + 4 + z, 0, (size_t)padded - 4 - z);
	size_t ad_len = payload_ad(ad, sizeof(ad), out->eid, w->sender->pub.did);
	crypto_aead_xchacha20poly1305_ietf_encrypt(buf, NULL, buf, padded, ad,
						   ad_len, NULL, out->pnonce,
						   key);

	for (size_t i = 0; i < c->n; i++) {
		const uint8_t *shared = b->dh_seal[i];
		uint8_t *wk = out->wrapped[i];
		if (!c->cache) {
			if (crypto_scalarmult(dh, w->sender->enc_sk,
					      w->rcpt_pub[i].enc_pk) != 0)
				die("X25519 failed");
			shared = dh;
		}
		size_t wl = wrap_ctx(wctx, sizeof(wctx), out->eid,
				     w->sender->pub.did, w->rcpt_pub[i].did,
				     w->sender->pub.enc_pk,
				     w->rcpt_pub[i].enc_pk);
		crypto_generichash(kek, 32, wctx, wl, shared, 32);
		randombytes_buf(wk, AMP_NONCE_BYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(
			wk + AMP_NONCE_BYTES, NULL, key, sizeof(key), wctx, wl,
			NULL, wk, kek);
	}
	out->padded = padded;
	out->ct = buf;
	crypto_generichash(digest, 32, buf, (size_t)padded + 16, NULL, 0);
	size_t sl = sig_input(b->sig_in, sizeof(b->sig_in), w, c->n, out,
			      digest);
	crypto_sign_detached(out->sig, NULL, b->sig_in, sl, w->sender->sign_sk);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(kek, sizeof(kek));
}

static void bare_seal_op(row_case *c)
{
	bare_seal_into(c, &c->b->sealed, c->b->seal_buf);
}

static void bare_open_op(row_case *c)
{
	const world *w = c->w;
	bare *b = c->b;
	const bare_env *e = &b->opened;
	uint8_t key[AMP_CONTENT_KEY_BYTES], dh[32], kek[32], digest[32];
	uint8_t ad[PAYLOAD_AD_MAX], wctx[WRAP_CTX_MAX];
	const uint8_t *shared = b->dh_open;

	crypto_generichash(digest, 32, e->ct, (size_t)e->padded + 16, NULL, 0);
	size_t sl = sig_input(b->sig_in, sizeof(b->sig_in), w, c->n, e,
			      digest);
	if (crypto_sign_verify_detached(e->sig, b->sig_in, sl,
					w->sender->pub.sign_pk) != 0)
		die("bare open: signature does not verify");
	if (!c->cache) {
		if (crypto_scalarmult(dh, w->rcpt[0]->enc_sk,
				      w->sender->pub.enc_pk) != 0)
			die("X25519 failed");
		shared = dh;
	}
	size_t wl = wrap_ctx(wctx, sizeof(wctx), e->eid, w->sender->pub.did,
			     w->rcpt[0]->pub.did, w->sender->pub.enc_pk,
			     w->rcpt[0]->pub.enc_pk);
	crypto_generichash(kek, 32, wctx, wl, shared, 32);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    key, NULL, NULL, e->wrapped[0] + AMP_NONCE_BYTES,
		    AMP_WRAPPED_KEY_BYTES - AMP_NONCE_BYTES, wctx, wl,
		    e->wrapped[0], kek) != 0)
		die("bare open: wrapped key does not authenticate");
	size_t ad_len = payload_ad(ad, sizeof(ad), e->eid, w->sender->pub.did);
	unsigned long long mlen;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    b->plain, &mlen, NULL, e->ct, (size_t)e->padded + 16, ad,
		    ad_len, e->pnonce, key) != 0)
		die("bare open: payload does not authenticate");
	size_t z = ((size_t)b->plain[0] << 24) | ((size_t)b->plain[1] << 16) |
		   ((size_t)b->plain[2] << 8) | b->plain[3];
	if (mlen != e->padded || z > e->padded - 4 ||
	    !sodium_is_zero(b->plain + 4 + z, (size_t)e->padded - 4 - z))
		die("bare open: bad padding");
	size_t r = ZSTD_decompressDCtx(b->dctx, b->body, c->size, b->plain + 4,
				       z);
	if (ZSTD_isError(r) || r != c->size)
		die("bare open: zstd: %s",
		    ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
	sodium_memzero(key, sizeof(key));
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(kek, sizeof(kek));
}

/* Open rows need an envelope of each kind; both are checked to round-trip
 * before anything is timed. */
static void row_prepare(row_case *c)
{
	bare *b = c->b;

	if (!c->open)
		return;
	amp_seal_params p;
	const char *err = NULL;
	memset(&p, 0, sizeof(p));
	p.zstd_level = ZSTD_LEVEL;
	amp_err e = amp_seal(NULL, c->w->sender, c->w->rcpt_pub, c->n, &p,
			     c->payload, c->size, &c->env, &c->env_len, &err);
	if (e != AMP_OK)
		die("amp_seal: %s: %s", amp_err_name(e), err != NULL ? err : "");

	amp_envelope *env = NULL;
	amp_envelope_info info;
	uint8_t *body = NULL;
	size_t body_len = 0;
	e = amp_envelope_decode(c->env, c->env_len, &env, &err);
	if (e == AMP_OK)
		e = amp_envelope_open(NULL, env, c->w->rcpt[0],
				      &c->w->sender->pub, 0, &body, &body_len,
				      &err);
	if (e != AMP_OK)
		die("opening a fresh envelope: %s: %s", amp_err_name(e),
		    err != NULL ? err : "");
	amp_envelope_get_info(env, &info);
	amp_envelope_free(&env);
	if (body_len != c->size || memcmp(body, c->payload, c->size) != 0)
		die("amp round trip changed the body");
	amp_free(body);

	bare_seal_into(c, &b->opened, b->open_ct);
	bare_open_op(c);
	if (memcmp(b->body, c->payload, c->size) != 0)
		die("bare round trip changed the body");
	/* Both sides must push the same number of bytes through the AEAD
	 * and BLAKE2b. */
	if (info.padded_size != b->opened.padded)
		die("%s: amp pads to %llu bytes, the baseline to %llu",
		    c->label, (unsigned long long)info.padded_size,
		    (unsigned long long)b->opened.padded);
}

static void row_finish(row_case *c)
{
	amp_free(c->env);
	c->env = NULL;
	c->env_len = 0;
}

/* ---------------------------------------------------------------- timing */

/* Run fn for at least min_time seconds; seconds per operation. */
static double run_for(bench_fn *fn, row_case *c, double min_time)
{
	uint64_t n = 0;
	double t0 = now_s(), t;

	do {
		fn(c);
		n++;
		t = now_s();
	} while (t - t0 < min_time);
	return (t - t0) / (double)n;
}

/* One round of a row: amp and bare run in alternating slices of SLICE_S
 * seconds until each side has run for at least min_time; seconds per
 * operation of each side.  Fine alternation keeps a change in the
 * machine's load from favouring one side. */
static void run_pair(bench_fn *fa, bench_fn *fb, row_case *c,
		     double min_time, double *amp_r, double *bare_r)
{
	double sa = 0, sb = 0;
	uint64_t na = 0, nb = 0;

	while (sa < min_time || sb < min_time) {
		if (sa < min_time) {
			double t0 = now_s(), t;
			do {
				fa(c);
				na++;
				t = now_s();
			} while (t - t0 < SLICE_S);
			sa += t - t0;
		}
		if (sb < min_time) {
			double t0 = now_s(), t;
			do {
				fb(c);
				nb++;
				t = now_s();
			} while (t - t0 < SLICE_S);
			sb += t - t0;
		}
	}
	*amp_r = sa / (double)na;
	*bare_r = sb / (double)nb;
}

static double median(const double *v, size_t n, double *min_r, double *max_r)
{
	double s[REPS_MAX];

	memcpy(s, v, n * sizeof(*v));
	for (size_t i = 1; i < n; i++) {
		double x = s[i];
		size_t j = i;
		for (; j > 0 && s[j - 1] > x; j--)
			s[j] = s[j - 1];
		s[j] = x;
	}
	*min_r = s[0];
	*max_r = s[n - 1];
	return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

typedef struct bench_opts {
	double min_time;
	unsigned reps;
	bool quick, markdown;
	const char *corpus;
	const char *filter;
} bench_opts;

typedef struct row_result {
	double amp_s, bare_s;         /* median seconds per operation */
	double ratio;                 /* median of the rounds' amp/bare */
	double spread;                /* (max - min) / median of those ratios */
} row_result;

static void measure_row(row_case *c, const bench_opts *o, row_result *r)
{
	bench_fn *fa = c->open ? amp_open_op : amp_seal_op;
	bench_fn *fb = c->open ? bare_open_op : bare_seal_op;
	double a[REPS_MAX], b[REPS_MAX], q[REPS_MAX], lo, hi;
	double warm = o->min_time / 5 > WARMUP_MIN ? o->min_time / 5 : WARMUP_MIN;
	amp_cache_stats s0, s1;

	/* The warmup also fills the cache for the "on" rows. */
	run_for(fa, c, warm);
	run_for(fb, c, warm);
	amp_ctx_cache_stats(c->w->ctx, &s0);
	for (unsigned i = 0; i < o->reps; i++) {
		run_pair(fa, fb, c, o->min_time, &a[i], &b[i]);
		q[i] = a[i] / b[i];
	}
	amp_ctx_cache_stats(c->w->ctx, &s1);
	if (c->cache && s1.misses != s0.misses)
		die("%s: the shared-secret cache missed while timing",
		    c->label);
	if (!c->cache && (s1.hits != s0.hits || s1.misses != s0.misses))
		die("%s: the cache was used by a cache-off row", c->label);

	r->amp_s = median(a, o->reps, &lo, &hi);
	r->bare_s = median(b, o->reps, &lo, &hi);
	r->ratio = median(q, o->reps, &lo, &hi);
	r->spread = (hi - lo) / r->ratio;
}

/* The fixed costs the baseline avoids by design, measured on this machine
 * so that a reader can tell how much of amp/bare they explain.  None of
 * them depends on the payload. */
static void probe_sodium_malloc(row_case *c)
{
	(void)c;
	void *p = sodium_malloc(96);
	if (p == NULL)
		die("sodium_malloc failed");
	sodium_free(p);
}

static void probe_zstd_cctx(row_case *c)
{
	(void)c;
	ZSTD_CCtx *x = ZSTD_createCCtx();
	if (x == NULL)
		die("ZSTD_createCCtx failed");
	ZSTD_freeCCtx(x);
}

static void probe_zstd_dctx(row_case *c)
{
	(void)c;
	ZSTD_DCtx *x = ZSTD_createDCtx();
	if (x == NULL)
		die("ZSTD_createDCtx failed");
	ZSTD_freeDCtx(x);
}

static void probe_randombytes(row_case *c)
{
	uint8_t buf[32];
	(void)c;
	randombytes_buf(buf, sizeof(buf));
}

typedef struct probe {
	const char *name;
	const char *who;
	bench_fn *fn;
} probe;

static const probe probes[] = {
	{ "sodium_malloc(96) + sodium_free",
	  "amp: none per message (per-message secrets are on the stack, "
	  "wiped); bare: none", probe_sodium_malloc },
	{ "ZSTD_createCCtx + ZSTD_freeCCtx",
	  "amp: none with an amp_ctx (pooled), 1 per seal without; bare: "
	  "none (reused)", probe_zstd_cctx },
	{ "ZSTD_createDCtx + ZSTD_freeDCtx",
	  "amp: none with an amp_ctx (pooled), 1 per open without; bare: "
	  "none (reused)", probe_zstd_dctx },
	{ "randombytes_buf(32)",
	  "both: 3 + recipients per seal", probe_randombytes },
};

/* ---------------------------------------------------------------- output */

static bool is_target(const row_case *c)
{
	return !c->open && c->size == TARGET_SIZE && c->n == TARGET_RCPT;
}

static const char *verdict(double ratio)
{
	return ratio <= TARGET_RATIO ? "PASS" : "MISS";
}

#define N_COLS 12u

static void print_table_head(const bench_opts *o)
{
	if (o->markdown) {
		printf("| op | payload | rcpt | cache | amp ops/s | amp µs/op "
		       "| amp MB/s | bare ops/s | bare µs/op | bare MB/s "
		       "| amp/bare | spread |\n"
		       "|---|---:|---:|---|---:|---:|---:|---:|---:|---:"
		       "|---:|---:|\n");
		return;
	}
	printf("%-4s %6s %4s %-5s | %10s %9s %8s | %10s %9s %8s | %8s %6s\n",
	       "", "", "", "", "amp", "", "", "bare", "", "", "", "");
	printf("%-4s %6s %4s %-5s | %10s %4sµs/op %8s | %10s %4sµs/op %8s "
	       "| %8s %6s\n",
	       "op", "size", "rcpt", "cache", "ops/s", "", "MB/s", "ops/s", "",
	       "MB/s", "amp/bare", "spread");
	printf("-----------------------+------------------------------+"
	       "------------------------------+----------------\n");
}

static void print_row(const bench_opts *o, const row_case *c,
		      const row_result *r)
{
	char cell[N_COLS][32];
	double ratio = r->ratio;
	bool target = is_target(c);

	snprintf(cell[0], sizeof(cell[0]), "%s", c->open ? "open" : "seal");
	snprintf(cell[1], sizeof(cell[1]), "%s", payload_names[c->size_idx]);
	snprintf(cell[2], sizeof(cell[2]), "%zu", c->n);
	snprintf(cell[3], sizeof(cell[3]), "%s", c->cache ? "on" : "off");
	snprintf(cell[4], sizeof(cell[4]), "%.0f", 1.0 / r->amp_s);
	snprintf(cell[5], sizeof(cell[5]), "%.1f", r->amp_s * 1e6);
	snprintf(cell[6], sizeof(cell[6]), "%.1f",
		 (double)c->size / r->amp_s / MIB);
	snprintf(cell[7], sizeof(cell[7]), "%.0f", 1.0 / r->bare_s);
	snprintf(cell[8], sizeof(cell[8]), "%.1f", r->bare_s * 1e6);
	snprintf(cell[9], sizeof(cell[9]), "%.1f",
		 (double)c->size / r->bare_s / MIB);
	snprintf(cell[10], sizeof(cell[10]), "%.2fx", ratio);
	snprintf(cell[11], sizeof(cell[11]), "%.1f%%", r->spread * 100);

	if (o->markdown) {
		for (size_t i = 0; i < N_COLS; i++) {
			if (target && i == 10)
				printf("| **%s** (target <= %.1fx: **%s**) ",
				       cell[i], TARGET_RATIO, verdict(ratio));
			else if (target)
				printf("| **%s** ", cell[i]);
			else
				printf("| %s ", cell[i]);
		}
		printf("|\n");
	} else {
		printf("%-4s %6s %4s %-5s | %10s %9s %8s | %10s %9s %8s "
		       "| %8s %6s",
		       cell[0], cell[1], cell[2], cell[3], cell[4], cell[5],
		       cell[6], cell[7], cell[8], cell[9], cell[10], cell[11]);
		if (target)
			printf("  <== TARGET (<= %.1fx): %s", TARGET_RATIO,
			       verdict(ratio));
		printf("\n");
	}
	fflush(stdout);
}

static void print_preface(const bench_opts *o, size_t corpus_files,
			  const size_t files_for[N_SIZES],
			  const uint8_t *payload)
{
	const char *li = o->markdown ? "- " : "  ";
	double warm = o->min_time / 5 > WARMUP_MIN ? o->min_time / 5 : WARMUP_MIN;

	if (o->markdown)
		printf("### amp-bench-seal\n\n");
	else
		printf("amp-bench-seal: libamp seal/open vs bare "
		       "libsodium+zstd primitives\n\n");
	printf("%slibraries (run time): libsodium %s, zstd %s\n", li,
	       sodium_version_string(), ZSTD_versionString());
	if (corpus_files > 0) {
		printf("%spayload: real mail, the .eml files of %s "
		       "concatenated in name order (%zu read)",
		       li, o->corpus, corpus_files);
		for (size_t s = 0; s < N_SIZES; s++)
			printf("%s %s = %zu message%s", s == 0 ? ";" : ",",
			       payload_names[s], files_for[s],
			       files_for[s] == 1 ? "" : "s");
		printf("\n");
	} else {
		printf("%spayload: SYNTHETIC pseudo-random English-like text "
		       "(no corpus at %s)\n", li, o->corpus);
	}
	printf("%scompressibility (zstd level %d):", li, ZSTD_LEVEL);
	for (size_t s = 0; s < N_SIZES; s++) {
		size_t cap = ZSTD_compressBound(payload_sizes[s]);
		uint8_t *tmp = xcalloc(1, cap);
		size_t z = ZSTD_compress(tmp, cap, payload, payload_sizes[s],
				  ZSTD_LEVEL);
		free(tmp);
		if (ZSTD_isError(z))
			die("ZSTD_compress: %s", ZSTD_getErrorName(z));
		printf("%s %s -> %zu bytes (%.2f:1), padded %llu",
		       s == 0 ? "" : ";", payload_names[s], z,
		       (double)payload_sizes[s] / (double)z,
		       (unsigned long long)padded_size_for(z));
	}
	printf("\n");
	printf("%stiming: CLOCK_MONOTONIC; each figure is the median of %u "
	       "round%s; in a round amp and bare alternate in %.0f ms slices "
	       "until each ran >= %.3g s; warmup %.3g s per side%s\n", li,
	       o->reps, o->reps == 1 ? "" : "s", SLICE_S * 1e3, o->min_time,
	       warm, o->quick ? " (--quick: smoke test only)" : "");
	printf("%sseal = amp_seal; open = amp_envelope_decode + "
	       "amp_envelope_open by the first recipient\n", li);
	printf("%scache on = amp_ctx(%u) warmed, bare does no X25519; "
	       "cache off = amp_ctx(0) (zstd contexts pooled, no secrets "
	       "cached), bare does one X25519 per recipient "
	       "(one per open)\n", li, CACHE_CAPACITY);
	printf("%sKB = 1024 bytes, MB = 1048576 bytes; MB/s counts plaintext "
	       "bytes; amp/bare = median over the rounds of amp time / bare "
	       "time; spread = (max-min)/median of those ratios\n", li);
	if (o->filter != NULL)
		printf("%sonly rows matching \"%s\"\n", li, o->filter);
	printf("\n");
}

static void print_probes(const bench_opts *o)
{
	double v[REPS_MAX], lo, hi;
	double warm = o->min_time / 5 > WARMUP_MIN ? o->min_time / 5 : WARMUP_MIN;

	if (o->markdown)
		printf("\n**Fixed costs on this machine** (µs per call, "
		       "independent of the payload)\n\n"
		       "| call | µs | paid by |\n|---|---:|---|\n");
	else
		printf("\nFixed costs on this machine (µs per call, "
		       "independent of the payload):\n");
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		run_for(probes[i].fn, NULL, warm);
		for (unsigned r = 0; r < o->reps; r++)
			v[r] = run_for(probes[i].fn, NULL, o->min_time);
		double m = median(v, o->reps, &lo, &hi) * 1e6;
		if (o->markdown)
			printf("| %s | %.2f | %s |\n", probes[i].name, m,
			       probes[i].who);
		else
			printf("  %-32s %9.2f µs  %s\n", probes[i].name, m,
			       probes[i].who);
	}
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fputs("Usage: amp-bench-seal [OPTIONS]\n"
	      "\n"
	      "Measures amp_seal and amp_envelope_decode+amp_envelope_open for\n"
	      "payloads of 1 KB, 10 KB and 1 MB, 1 and 10 recipients, with the\n"
	      "shared-secret cache on and off, next to a loop of the bare\n"
	      "libsodium and zstd primitives the same work needs, and prints\n"
	      "the ratio amp/bare.  Target: seal 10 KB to 1 recipient within\n"
	      "1.5x of the bare primitives.\n"
	      "\n"
	      "Options:\n"
	      "  --time SECONDS  minimum time of each timed loop (default 0.5)\n"
	      "  --reps N        repetitions, the median is reported (default 5)\n"
	      "  --quick         1 repetition of 0.05 s: a smoke test for CI\n"
	      "                  (--time/--reps still override)\n"
	      "  --markdown      print the table as Markdown\n"
	      "  --corpus DIR    mail corpus (*.eml), default "
	      CORPUS_DEFAULT "\n"
	      "  --filter TEXT   only rows whose label contains TEXT, labels\n"
	      "                  look like \"seal 10KB 1rcpt cache-off\"\n"
	      "  --help          this text\n"
	      "\n"
	      "Exit status: 0 when every row ran (PASS or MISS), 1 on error,\n"
	      "2 on a usage error.\n", f);
}

static void parse_opts(int argc, char **argv, bench_opts *o)
{
	bool time_set = false, reps_set = false;

	memset(o, 0, sizeof(*o));
	o->min_time = TIME_DEFAULT;
	o->reps = REPS_DEFAULT;
	o->corpus = CORPUS_DEFAULT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_val = i + 1 < argc;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--quick") == 0) {
			o->quick = true;
		} else if (strcmp(a, "--markdown") == 0) {
			o->markdown = true;
		} else if (strcmp(a, "--time") == 0 && has_val) {
			char *end;
			errno = 0;
			double t = strtod(argv[++i], &end);
			if (errno != 0 || end == argv[i] || *end != '\0' ||
			    !(t >= TIME_MIN && t <= TIME_MAX)) {
				fprintf(stderr, "amp-bench-seal: --time wants "
					"seconds between %g and %g\n",
					TIME_MIN, TIME_MAX);
				exit(2);
			}
			o->min_time = t;
			time_set = true;
		} else if (strcmp(a, "--reps") == 0 && has_val) {
			char *end;
			errno = 0;
			unsigned long n = strtoul(argv[++i], &end, 10);
			if (errno != 0 || end == argv[i] || *end != '\0' ||
			    n < 1 || n > REPS_MAX) {
				fprintf(stderr, "amp-bench-seal: --reps wants "
					"1 to %u\n", REPS_MAX);
				exit(2);
			}
			o->reps = (unsigned)n;
			reps_set = true;
		} else if (strcmp(a, "--corpus") == 0 && has_val) {
			o->corpus = argv[++i];
		} else if (strcmp(a, "--filter") == 0 && has_val) {
			o->filter = argv[++i];
		} else {
			usage(stderr);
			exit(2);
		}
	}
	if (o->quick) {
		if (!time_set)
			o->min_time = TIME_QUICK;
		if (!reps_set)
			o->reps = REPS_QUICK;
	}
}

typedef struct target_note {
	bool seen;
	bool cache;
	double ratio, spread, amp_us, bare_us;
} target_note;

static void print_verdict(const bench_opts *o, const target_note *t,
			  size_t nt)
{
	bool all = true;
	size_t seen = 0;

	for (size_t i = 0; i < nt; i++) {
		if (t[i].seen) {
			seen++;
			if (t[i].ratio > TARGET_RATIO)
				all = false;
		}
	}
	if (seen == 0)
		return;
	printf("\n%sTarget: seal 10 KB to 1 recipient within %.1fx of the bare "
	       "primitives%s\n", o->markdown ? "**" : "", TARGET_RATIO,
	       o->markdown ? "**\n" : "");
	for (size_t i = 0; i < nt; i++) {
		if (!t[i].seen)
			continue;
		double ratio = t[i].ratio;
		bool close = ratio * (1 - t[i].spread) <= TARGET_RATIO &&
			     ratio * (1 + t[i].spread) > TARGET_RATIO;
		printf("%scache %-3s: amp %.1f µs, bare %.1f µs, ratio %.2fx "
		       "-> %s%s\n", o->markdown ? "- " : "  ",
		       t[i].cache ? "on" : "off", t[i].amp_us, t[i].bare_us,
		       ratio, verdict(ratio),
		       close ? " (within the measurement spread)" : "");
	}
	if (seen == nt)
		printf("%sTARGET %s%s\n", o->markdown ? "\n**" : "  ",
		       all ? "PASS" : "MISS", o->markdown ? "**" : "");
}

int main(int argc, char **argv)
{
	bench_opts o;
	world w;
	size_t files_for[N_SIZES];
	target_note target[2];
	size_t max_len = payload_sizes[N_SIZES - 1];

	parse_opts(argc, argv, &o);
	if (amp_init() != AMP_OK)
		die("amp_init failed");
	setvbuf(stdout, NULL, _IOLBF, 0);

	uint8_t *payload = xcalloc(1, max_len);
	size_t corpus_files = load_corpus(o.corpus, payload, max_len,
					  files_for);
	if (corpus_files == 0)
		synth_text(payload, max_len);

	world_init(&w);
	bare *b = bare_create(&w, max_len);
	memset(target, 0, sizeof(target));

	print_preface(&o, corpus_files, files_for, payload);
	print_table_head(&o);
	for (unsigned op = 0; op < 2; op++) {
		for (size_t s = 0; s < N_SIZES; s++) {
			for (size_t k = 0; k < N_RCPT_COUNTS; k++) {
				for (unsigned cache = 0; cache < 2; cache++) {
					row_case c;
					row_result r;
					memset(&c, 0, sizeof(c));
					c.open = op == 1;
					c.cache = cache == 1;
					c.size_idx = s;
					c.size = payload_sizes[s];
					c.n = rcpt_counts[k];
					c.payload = payload;
					c.w = &w;
					c.b = b;
					snprintf(c.label, sizeof(c.label),
						 "%s %s %zurcpt cache-%s",
						 c.open ? "open" : "seal",
						 payload_tags[s], c.n,
						 c.cache ? "on" : "off");
					if (o.filter != NULL &&
					    strstr(c.label, o.filter) == NULL)
						continue;
					row_prepare(&c);
					measure_row(&c, &o, &r);
					row_finish(&c);
					print_row(&o, &c, &r);
					if (is_target(&c)) {
						target_note *t = &target[cache];
						t->seen = true;
						t->cache = c.cache;
						t->ratio = r.ratio;
						t->spread = r.spread;
						t->amp_us = r.amp_s * 1e6;
						t->bare_us = r.bare_s * 1e6;
					}
				}
			}
		}
	}
	print_verdict(&o, target, 2);
	if (o.filter == NULL)
		print_probes(&o);

	bare_destroy(&b);
	world_deinit(&w);
	free(payload);
	return 0;
}
