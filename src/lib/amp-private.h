/*
 * amp-private.h — what libamp's own files share and nobody else may use.
 *
 * - amp_wbuf: a fixed-capacity byte writer for the canonical byte strings
 *   of PROTOCOL.md (lp(), u32(), u64()).  Writes past the capacity set an
 *   overflow flag instead of writing; callers check it once at the end.
 * - checked allocation helpers (amp_xmalloc aborts on impossible sizes).
 * - AMP_FAIL(): set *error_r and return a code in one statement.
 */
#ifndef AMP_PRIVATE_H
#define AMP_PRIVATE_H

#include "amp/amp.h"

#include <stdlib.h>
#include <string.h>

#define AMP_FAIL(code, msg)                                                   \
	do {                                                                  \
		if (error_r != NULL)                                          \
			*error_r = (msg);                                     \
		return (code);                                                \
	} while (0)

/* The one hard ceiling on any single allocation libamp makes. */
#define AMP_ALLOC_MAX ((size_t)AMP_ENVELOPE_MAX + 1024u * 1024u)

/* malloc that returns NULL for 0 or > AMP_ALLOC_MAX instead of asking. */
void *amp_malloc(size_t n);

typedef struct amp_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
} amp_wbuf;

static inline void amp_wbuf_init(amp_wbuf *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->len = 0;
	w->cap = cap;
	w->overflow = false;
}

static inline void amp_wbuf_put(amp_wbuf *w, const void *data, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, data, n);
	w->len += n;
}

static inline void amp_wbuf_u8(amp_wbuf *w, uint8_t v)
{
	amp_wbuf_put(w, &v, 1);
}

static inline void amp_wbuf_u32(amp_wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 8), (uint8_t)v };
	amp_wbuf_put(w, b, 4);
}

static inline void amp_wbuf_u64(amp_wbuf *w, uint64_t v)
{
	amp_wbuf_u32(w, (uint32_t)(v >> 32));
	amp_wbuf_u32(w, (uint32_t)v);
}

/* lp(x) of PROTOCOL.md §1: u32 length then the bytes. */
static inline void amp_wbuf_lp(amp_wbuf *w, const void *data, size_t n)
{
	if (n > UINT32_MAX) {
		w->overflow = true;
		return;
	}
	amp_wbuf_u32(w, (uint32_t)n);
	amp_wbuf_put(w, data, n);
}

static inline void amp_wbuf_str(amp_wbuf *w, const char *s)
{
	amp_wbuf_put(w, s, strlen(s));
}

/* Shared-secret lookup used by the envelope code (amp-cache.c).
 * Computes X25519(own_sk, peer_pk) or takes it from ctx's cache.
 * AMP_E_BAD_KEY for a low-order peer key (AMP-R-005). */
amp_err amp_ctx_dh(amp_ctx *ctx, const uint8_t own_sk[32],
		   const uint8_t own_pk[32], const uint8_t peer_pk[32],
		   uint8_t dh_r[32]) AMP_WUR;

/* zstd contexts from ctx's pool (or new ones when ctx is NULL or the
 * pool is empty); _put returns them (or frees them when the pool is full).
 * NULL from _get means out of memory. */
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct ZSTD_DCtx_s ZSTD_DCtx;
ZSTD_CCtx *amp_ctx_cctx_get(amp_ctx *ctx);
void amp_ctx_cctx_put(amp_ctx *ctx, ZSTD_CCtx *c);
ZSTD_DCtx *amp_ctx_dctx_get(amp_ctx *ctx);
void amp_ctx_dctx_put(amp_ctx *ctx, ZSTD_DCtx *d);

/* Decompress exactly one zstd frame z[0..z_len) with dctx (reset here)
 * into a new buffer of at most max_out bytes (AMP-R-016); free with
 * free(). */
amp_err amp_zstd_decompress_bounded(ZSTD_DCtx *dctx, const uint8_t *z,
				    size_t z_len, size_t max_out,
				    uint8_t **out_r, size_t *out_len_r,
				    const char **error_r) AMP_WUR;

/* §5.5 signing input of a complete header and its ciphertext, in a new
 * buffer (free with free()); NULL when out of memory.  Used by the envelope
 * code and by tests that re-sign tampered envelopes. */
struct Amp__V1__EnvelopeHeader;
uint8_t *amp_sig_input_build(const struct Amp__V1__EnvelopeHeader *h,
			     const uint8_t *ct, size_t ct_len, size_t *len_r);

/* §5.3 Padmé rounding of L (L >= 2). */
uint64_t amp_padme(uint64_t L);

/* Strict base64url without padding decoding to exactly n bytes. */
bool amp_b64u_decode_exact(const char *s, uint8_t *out, size_t n);

/* Current time in unix seconds. */
uint64_t amp_now(void);

/* True when s[0..len) is a canonical DID (no error text). */
bool amp_did_is_canonical(const char *s, size_t len);

#endif
