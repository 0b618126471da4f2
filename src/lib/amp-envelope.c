/*
 * amp-envelope.c — the sealed, signed envelope of PROTOCOL.md §5.
 *
 *   amp_seal            compress, pad (Padmé), encrypt once, wrap the
 *                       content key per recipient, sign, encode.
 *   amp_envelope_decode bounded protobuf decode + canonical-encoding and
 *                       structure checks (§5.6 steps 1-3).  No crypto.
 *   amp_envelope_verify signature and time window (steps 4-5).
 *   amp_envelope_open   steps 4-9: unwrap, decrypt, unpad, decompress.
 *
 * Limits: AMP_ENVELOPE_MAX input, AMP_RECIPIENTS_MAX recipients, protobuf-c
 * runs on a counting allocator capped at the input size plus a fixed
 * allowance, zstd output capped at AMP_BODY_MAX and its window at 32 MiB.
 * No plaintext leaves amp_envelope_open unless every check passed
 * (AMP-R-018).
 */
#include "amp-private.h"
#include "amp.pb-c.h"

#include <sodium.h>
#include <zstd.h>

#define CT_DEFAULT "message/rfc822"
#define WRAP_CTX_MAX (10 + 4 + AMP_ENVELOPE_ID_BYTES + 2 * (4 + AMP_DID_MAX) + 64)
#define PAYLOAD_AD_MAX (13 + 4 + AMP_ENVELOPE_ID_BYTES + 4 + AMP_DID_MAX + 4 + AMP_CONTENT_TYPE_MAX)
#define PADDED_MIN 256u
#define ZSTD_WINDOW_LOG_MAX 25 /* 32 MiB: no frame may ask for more memory */

struct amp_envelope {
	Amp__V1__Envelope *pb;    /* pb->header is never NULL once decoded */
	ProtobufCAllocator alloc;
	size_t alloc_used, alloc_max;
	bool alloc_exceeded;
};

/* ------------------------------------------------------------- helpers */

uint64_t amp_padme(uint64_t L)
{
	unsigned E = 63u - (unsigned)__builtin_clzll(L);
	unsigned S = 32u - (unsigned)__builtin_clz(E | 1u);
	if (E < 2)
		return L;
	uint64_t mask = (UINT64_C(1) << (E - S)) - 1;
	return (L + mask) & ~mask;
}

static uint64_t padded_size_for(uint64_t z_len)
{
	uint64_t p = amp_padme(4 + z_len);
	return p < PADDED_MIN ? PADDED_MIN : p;
}

static bool content_type_ok(const char *ct, size_t len)
{
	if (len == 0 || len > AMP_CONTENT_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (ct[i] < 0x20 || ct[i] > 0x7e)
			return false;
	}
	return true;
}

static void build_wrap_ctx(amp_wbuf *w, const uint8_t *envelope_id,
			   const char *sdid, const char *rdid,
			   const uint8_t s_enc_pk[32], const uint8_t r_enc_pk[32])
{
	amp_wbuf_str(w, "AMPv1-wrap");
	amp_wbuf_lp(w, envelope_id, AMP_ENVELOPE_ID_BYTES);
	amp_wbuf_lp(w, sdid, strlen(sdid));
	amp_wbuf_lp(w, rdid, strlen(rdid));
	amp_wbuf_put(w, s_enc_pk, 32);
	amp_wbuf_put(w, r_enc_pk, 32);
}

static void build_payload_ad(amp_wbuf *w, const uint8_t *envelope_id,
			     const char *sdid, const char *ct)
{
	amp_wbuf_str(w, "AMPv1-payload");
	amp_wbuf_lp(w, envelope_id, AMP_ENVELOPE_ID_BYTES);
	amp_wbuf_lp(w, sdid, strlen(sdid));
	amp_wbuf_lp(w, ct, strlen(ct));
}

uint8_t *amp_sig_input_build(const Amp__V1__EnvelopeHeader *h,
				const uint8_t *ct, size_t ct_len, size_t *len_r)
{
	size_t sender_len = strlen(h->sender);
	size_t ctype_len = strlen(h->content_type);
	size_t n = 9 + 4 + (4 + h->envelope_id.len) + (4 + sender_len) +
		   (4 + h->sealed_sender.len) + 8 + 8 + 4 + (4 + ctype_len) +
		   8 + (4 + h->payload_nonce.len) + 4 + 32;
	for (size_t i = 0; i < h->n_recipients; i++)
		n += 8 + strlen(h->recipients[i]->did) +
		     h->recipients[i]->wrapped_key.len;
	uint8_t *buf = amp_malloc(n);
	if (buf == NULL)
		return NULL;
	amp_wbuf w;
	amp_wbuf_init(&w, buf, n);
	amp_wbuf_str(&w, "AMPv1-sig");
	amp_wbuf_u32(&w, h->version);
	amp_wbuf_lp(&w, h->envelope_id.data, h->envelope_id.len);
	amp_wbuf_lp(&w, h->sender, sender_len);
	amp_wbuf_lp(&w, h->sealed_sender.data, h->sealed_sender.len);
	amp_wbuf_u64(&w, h->created);
	amp_wbuf_u64(&w, h->expires);
	amp_wbuf_u32(&w, (uint32_t)h->lane);
	amp_wbuf_lp(&w, h->content_type, ctype_len);
	amp_wbuf_u64(&w, h->padded_size);
	amp_wbuf_lp(&w, h->payload_nonce.data, h->payload_nonce.len);
	amp_wbuf_u32(&w, (uint32_t)h->n_recipients);
	for (size_t i = 0; i < h->n_recipients; i++) {
		const Amp__V1__Recipient *r = h->recipients[i];
		amp_wbuf_lp(&w, r->did, strlen(r->did));
		amp_wbuf_lp(&w, r->wrapped_key.data, r->wrapped_key.len);
	}
	uint8_t digest[32];
	crypto_generichash(digest, 32, ct, ct_len, NULL, 0);
	amp_wbuf_put(&w, digest, 32);
	if (w.overflow || w.len != n) {
		free(buf);
		return NULL;
	}
	*len_r = n;
	return buf;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True if any two of the n strings are equal.  n <= AMP_RECIPIENTS_MAX. */
static bool has_duplicate(const char **dids, size_t n)
{
	qsort(dids, n, sizeof(*dids), cmp_str_ptr);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(dids[i - 1], dids[i]) == 0)
			return true;
	}
	return false;
}

static void default_rng(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

/* ---------------------------------------------------------------- seal */

/* Per-message secrets: on the stack and wiped before return.  (Guarded
 * sodium_malloc pages cost seven system calls, more than the whole seal of
 * a small message; they are kept for long-term keys.) */
typedef struct seal_state {
	uint8_t content_key[AMP_CONTENT_KEY_BYTES];
	uint8_t dh[32];
	uint8_t kek[32];
} seal_state;

static amp_err seal_check_args(const amp_identity *sender,
			       const amp_public_identity *rcpt, size_t n,
			       const char *ct, const amp_seal_params *p,
			       size_t len, const char **error_r)
{
	if (sender == NULL || rcpt == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no sender or no recipients given");
	if (n == 0)
		AMP_FAIL(AMP_E_INVALID_ARG, "an envelope needs at least one recipient");
	if (n > AMP_RECIPIENTS_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "more than 1000 recipients");
	if (len > AMP_BODY_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "body is larger than 32 MiB");
	if (!content_type_ok(ct, strlen(ct)))
		AMP_FAIL(AMP_E_INVALID_ARG,
			 "content type must be 1-255 printable ASCII bytes");
	if (p->lane > AMP_LANE_BULK)
		AMP_FAIL(AMP_E_INVALID_ARG, "unknown lane");
	if (!amp_did_is_canonical(sender->pub.did, strlen(sender->pub.did)))
		AMP_FAIL(AMP_E_BAD_DID, "sender DID is not canonical");
	const char **dids = malloc(n * sizeof(*dids));
	if (dids == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory");
	amp_err e = AMP_OK;
	for (size_t i = 0; i < n && e == AMP_OK; i++) {
		dids[i] = rcpt[i].did;
		if (!amp_did_is_canonical(rcpt[i].did,
					  strnlen(rcpt[i].did, AMP_DID_MAX + 1))) {
			e = AMP_E_BAD_DID;
			if (error_r != NULL)
				*error_r = "a recipient DID is not canonical";
		}
	}
	if (e == AMP_OK && has_duplicate(dids, n)) {
		e = AMP_E_DUPLICATE_RECIPIENT;
		if (error_r != NULL)
			*error_r = "a recipient is listed twice";
	}
	free(dids);
	return e;
}

/* Compress body into a buffer laid out as the padded plaintext with 16 spare
 * bytes for the tag, so it can be encrypted in place. */
static amp_err seal_pad(amp_ctx *ctx, const uint8_t *body, size_t len,
			int level, uint8_t **buf_r, uint64_t *padded_size_r,
			const char **error_r)
{
	size_t bound = ZSTD_compressBound(len);
	uint64_t cap = padded_size_for(bound);
	if (cap > AMP_PADDED_MAX)
		cap = AMP_PADDED_MAX;
	uint8_t *buf = amp_malloc((size_t)cap + 16);
	if (buf == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory for the payload");
	ZSTD_CCtx *cctx = amp_ctx_cctx_get(ctx);
	if (cctx == NULL) {
		free(buf);
		AMP_FAIL(AMP_E_NOMEM, "out of memory for zstd");
	}
	size_t z = ZSTD_compressCCtx(cctx, buf + 4, (size_t)cap - 4, body, len,
				     level);
	amp_ctx_cctx_put(ctx, cctx);
	if (ZSTD_isError(z)) {
		free(buf);
		AMP_FAIL(AMP_E_TOO_LARGE, "compressed body exceeds the padded maximum");
	}
	uint64_t padded = padded_size_for(z);
	if (padded > AMP_PADDED_MAX) {
		free(buf);
		AMP_FAIL(AMP_E_TOO_LARGE, "padded payload exceeds 40 MiB");
	}
	buf[0] = (uint8_t)(z >> 24);
	buf[1] = (uint8_t)(z >> 16);
	buf[2] = (uint8_t)(z >> 8);
	buf[3] = (uint8_t)z;
	memset(buf + 4 + z, 0, (size_t)padded - 4 - z);
	*buf_r = buf;
	*padded_size_r = padded;
	return AMP_OK;
}

amp_err amp_seal(amp_ctx *ctx, const amp_identity *sender,
		 const amp_public_identity *rcpt, size_t n,
		 const amp_seal_params *params, const uint8_t *body, size_t len,
		 uint8_t **env_r, size_t *env_len_r, const char **error_r)
{
	static const amp_seal_params defaults;
	const amp_seal_params *p = params != NULL ? params : &defaults;
	const char *ct = p->content_type != NULL ? p->content_type : CT_DEFAULT;
	amp_rng_fn *rng = p->rng != NULL ? p->rng : default_rng;
	uint64_t created = p->created != 0 ? p->created : amp_now();
	amp_err e;

	if (body == NULL && len > 0)
		AMP_FAIL(AMP_E_INVALID_ARG, "no body given");
	if (env_r == NULL || env_len_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no output given");
	e = seal_check_args(sender, rcpt, n, ct, p, len, error_r);
	if (e != AMP_OK)
		return e;
	if (p->expires != 0 && p->expires <= created)
		AMP_FAIL(AMP_E_INVALID_ARG, "expiry must be after creation");

	uint8_t envelope_id[AMP_ENVELOPE_ID_BYTES], pnonce[AMP_NONCE_BYTES];
	seal_state st;
	Amp__V1__Recipient *rs = calloc(n, sizeof(*rs));
	Amp__V1__Recipient **rps = calloc(n, sizeof(*rps));
	uint8_t *wrapped = calloc(n, AMP_WRAPPED_KEY_BYTES);
	uint8_t *payload = NULL, *sig_input = NULL, *out = NULL;
	uint64_t padded_size = 0;
	size_t sig_len = 0;
	if (rs == NULL || rps == NULL || wrapped == NULL) {
		e = AMP_E_NOMEM;
		if (error_r != NULL)
			*error_r = "out of memory";
		goto out;
	}
	/* Random values, in the order the test vectors document. */
	rng(p->rng_ctx, envelope_id, sizeof(envelope_id));
	rng(p->rng_ctx, st.content_key, sizeof(st.content_key));
	rng(p->rng_ctx, pnonce, sizeof(pnonce));

	e = seal_pad(ctx, body, len, p->zstd_level != 0 ? p->zstd_level : 3,
		     &payload, &padded_size, error_r);
	if (e != AMP_OK)
		goto out;
	uint8_t ad[PAYLOAD_AD_MAX];
	amp_wbuf w;
	amp_wbuf_init(&w, ad, sizeof(ad));
	build_payload_ad(&w, envelope_id, sender->pub.did, ct);
	crypto_aead_xchacha20poly1305_ietf_encrypt(payload, NULL, payload,
						   padded_size, ad, w.len, NULL,
						   pnonce, st.content_key);

	/* §5.2: wrap the content key for each recipient. */
	for (size_t i = 0; i < n; i++) {
		uint8_t wctx[WRAP_CTX_MAX];
		uint8_t *wk = wrapped + i * AMP_WRAPPED_KEY_BYTES;
		e = amp_ctx_dh(ctx, sender->enc_sk, sender->pub.enc_pk,
			       rcpt[i].enc_pk, st.dh);
		if (e != AMP_OK) {
			if (error_r != NULL)
				*error_r = "a recipient's encryption key is a "
					   "low-order point";
			goto out;
		}
		amp_wbuf_init(&w, wctx, sizeof(wctx));
		build_wrap_ctx(&w, envelope_id, sender->pub.did, rcpt[i].did,
			       sender->pub.enc_pk, rcpt[i].enc_pk);
		crypto_generichash(st.kek, 32, wctx, w.len, st.dh, 32);
		rng(p->rng_ctx, wk, AMP_NONCE_BYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(
			wk + AMP_NONCE_BYTES, NULL, st.content_key,
			AMP_CONTENT_KEY_BYTES, wctx, w.len, NULL, wk, st.kek);
		amp__v1__recipient__init(&rs[i]);
		rs[i].did = (char *)rcpt[i].did;
		rs[i].wrapped_key.data = wk;
		rs[i].wrapped_key.len = AMP_WRAPPED_KEY_BYTES;
		rps[i] = &rs[i];
	}

	Amp__V1__EnvelopeHeader h;
	amp__v1__envelope_header__init(&h);
	h.version = AMP_PROTOCOL_VERSION;
	h.envelope_id.data = envelope_id;
	h.envelope_id.len = sizeof(envelope_id);
	h.sender = (char *)sender->pub.did;
	h.n_recipients = n;
	h.recipients = rps;
	h.created = created;
	h.expires = p->expires;
	h.lane = (Amp__V1__Lane)p->lane;
	h.content_type = (char *)ct;
	h.padded_size = padded_size;
	h.payload_nonce.data = pnonce;
	h.payload_nonce.len = sizeof(pnonce);

	uint8_t sig[AMP_SIG_BYTES];
	sig_input = amp_sig_input_build(&h, payload, (size_t)padded_size + 16,
				    &sig_len);
	if (sig_input == NULL) {
		e = AMP_E_NOMEM;
		if (error_r != NULL)
			*error_r = "out of memory for the signing input";
		goto out;
	}
	crypto_sign_detached(sig, NULL, sig_input, sig_len, sender->sign_sk);

	Amp__V1__Envelope env;
	amp__v1__envelope__init(&env);
	env.header = &h;
	env.ciphertext.data = payload;
	env.ciphertext.len = (size_t)padded_size + 16;
	env.signature.data = sig;
	env.signature.len = sizeof(sig);
	size_t out_len = amp__v1__envelope__get_packed_size(&env);
	if (out_len > AMP_ENVELOPE_MAX) {
		e = AMP_E_TOO_LARGE;
		if (error_r != NULL)
			*error_r = "encoded envelope exceeds 48 MiB";
		goto out;
	}
	out = amp_malloc(out_len);
	if (out == NULL) {
		e = AMP_E_NOMEM;
		if (error_r != NULL)
			*error_r = "out of memory for the envelope";
		goto out;
	}
	amp__v1__envelope__pack(&env, out);
	*env_r = out;
	*env_len_r = out_len;
	out = NULL;
	e = AMP_OK;
out:
	sodium_memzero(&st, sizeof(st));
	free(rs);
	free(rps);
	free(wrapped);
	free(payload);
	free(sig_input);
	free(out);
	return e;
}

/* -------------------------------------------------------------- decode */

/* Counting allocator for protobuf-c: every block carries its size so the
 * running total stays exact; over alloc_max, allocation fails. */
static void *pb_alloc(void *data, size_t size)
{
	amp_envelope *env = data;
	if (size > env->alloc_max - env->alloc_used ||
	    size > SIZE_MAX - sizeof(max_align_t)) {
		env->alloc_exceeded = true;
		return NULL;
	}
	max_align_t *blk = malloc(sizeof(max_align_t) + size);
	if (blk == NULL)
		return NULL;
	*(size_t *)blk = size;
	env->alloc_used += size;
	return blk + 1;
}

static void pb_free(void *data, void *ptr)
{
	amp_envelope *env = data;
	if (ptr == NULL)
		return;
	max_align_t *blk = (max_align_t *)ptr - 1;
	env->alloc_used -= *(size_t *)blk;
	free(blk);
}

/* Walk the wire format to tell a truncated input from a malformed one
 * before protobuf-c sees it (PROTOCOL.md §4).  The schema nests three
 * levels deep: Envelope.header (field 1) -> EnvelopeHeader.recipients
 * (field 5) -> Recipient; every occurrence of those fields is walked. */
typedef enum { WIRE_OK, WIRE_TRUNC, WIRE_BAD } wire_res;

static wire_res read_varint(const uint8_t *p, size_t len, size_t *pos,
			    uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return WIRE_TRUNC;
		uint8_t b = p[(*pos)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = r;
			return WIRE_OK;
		}
	}
	return WIRE_BAD;
}

/* level 0: Envelope, 1: EnvelopeHeader, 2: Recipient. */
static wire_res wire_scan(const uint8_t *p, size_t len, int level)
{
	static const uint64_t nested_field[] = { 1, 5, 0 };
	size_t pos = 0;
	while (pos < len) {
		uint64_t key, v;
		wire_res r = read_varint(p, len, &pos, &key);
		if (r != WIRE_OK)
			return r;
		switch (key & 7) {
		case 0:
			r = read_varint(p, len, &pos, &v);
			if (r != WIRE_OK)
				return r;
			break;
		case 1:
			if (len - pos < 8)
				return WIRE_TRUNC;
			pos += 8;
			break;
		case 5:
			if (len - pos < 4)
				return WIRE_TRUNC;
			pos += 4;
			break;
		case 2:
			r = read_varint(p, len, &pos, &v);
			if (r != WIRE_OK)
				return r;
			if (v > len - pos)
				return WIRE_TRUNC;
			if (level < 2 && (key >> 3) == nested_field[level]) {
				r = wire_scan(p + pos, (size_t)v, level + 1);
				if (r != WIRE_OK)
					return r;
			}
			pos += (size_t)v;
			break;
		default:
			return WIRE_BAD;
		}
	}
	return WIRE_OK;
}

static amp_err wire_check(const uint8_t *buf, size_t len, const char **error_r)
{
	wire_res r = wire_scan(buf, len, 0);
	if (r == WIRE_TRUNC)
		AMP_FAIL(AMP_E_TRUNCATED, "envelope ends inside a field");
	if (r == WIRE_BAD)
		AMP_FAIL(AMP_E_MALFORMED, "envelope is not valid protobuf");
	return AMP_OK;
}

static bool has_unknown_fields(const Amp__V1__Envelope *pb)
{
	if (pb->base.n_unknown_fields != 0)
		return true;
	if (pb->header == NULL)
		return false;
	if (pb->header->base.n_unknown_fields != 0)
		return true;
	for (size_t i = 0; i < pb->header->n_recipients; i++) {
		if (pb->header->recipients[i]->base.n_unknown_fields != 0)
			return true;
	}
	return false;
}

/* AMP-R-010: the bytes must be exactly what we would emit. */
static amp_err check_canonical(const Amp__V1__Envelope *pb, const uint8_t *buf,
			       size_t len, const char **error_r)
{
	if (has_unknown_fields(pb))
		AMP_FAIL(AMP_E_NONCANONICAL, "envelope has unknown fields");
	if (amp__v1__envelope__get_packed_size(pb) != len)
		AMP_FAIL(AMP_E_NONCANONICAL, "envelope is not canonically encoded");
	uint8_t *re = amp_malloc(len);
	if (re == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory");
	amp__v1__envelope__pack(pb, re);
	bool same = memcmp(re, buf, len) == 0;
	free(re);
	if (!same)
		AMP_FAIL(AMP_E_NONCANONICAL, "envelope is not canonically encoded");
	return AMP_OK;
}

/* §5.1 structure rules (step 3). */
static amp_err check_structure(const Amp__V1__Envelope *pb, const char **error_r)
{
	const Amp__V1__EnvelopeHeader *h = pb->header;

	if (h->envelope_id.len != AMP_ENVELOPE_ID_BYTES)
		AMP_FAIL(AMP_E_MALFORMED, "envelope id is not 16 bytes");
	if (h->sender == NULL ||
	    !amp_did_is_canonical(h->sender, strlen(h->sender)))
		AMP_FAIL(AMP_E_BAD_DID, "sender is not a canonical DID");
	if (h->n_recipients == 0)
		AMP_FAIL(AMP_E_MALFORMED, "envelope has no recipients");
	if (h->n_recipients > AMP_RECIPIENTS_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "envelope has more than 1000 recipients");
	if (h->expires != 0 && h->expires <= h->created)
		AMP_FAIL(AMP_E_MALFORMED, "envelope expires before it was created");
	if ((unsigned)h->lane > AMP_LANE_BULK)
		AMP_FAIL(AMP_E_MALFORMED, "unknown lane");
	if (h->content_type == NULL ||
	    !content_type_ok(h->content_type, strlen(h->content_type)))
		AMP_FAIL(AMP_E_MALFORMED,
			 "content type is not 1-255 printable ASCII bytes");
	if (h->padded_size < PADDED_MIN)
		AMP_FAIL(AMP_E_MALFORMED, "padded size is below 256");
	if (h->padded_size > AMP_PADDED_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "padded size exceeds 40 MiB");
	if (h->payload_nonce.len != AMP_NONCE_BYTES)
		AMP_FAIL(AMP_E_MALFORMED, "payload nonce is not 24 bytes");
	if (pb->ciphertext.len != h->padded_size + 16)
		AMP_FAIL(AMP_E_MALFORMED,
			 "ciphertext length is not padded size + 16");
	if (pb->signature.len != AMP_SIG_BYTES)
		AMP_FAIL(AMP_E_MALFORMED, "signature is not 64 bytes");

	const char **dids = malloc(h->n_recipients * sizeof(*dids));
	if (dids == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory");
	amp_err e = AMP_OK;
	for (size_t i = 0; i < h->n_recipients && e == AMP_OK; i++) {
		const Amp__V1__Recipient *r = h->recipients[i];
		dids[i] = r->did;
		if (r->did == NULL || !amp_did_is_canonical(r->did, strlen(r->did))) {
			e = AMP_E_BAD_DID;
			if (error_r != NULL)
				*error_r = "a recipient is not a canonical DID";
		} else if (r->wrapped_key.len != AMP_WRAPPED_KEY_BYTES) {
			e = AMP_E_MALFORMED;
			if (error_r != NULL)
				*error_r = "a wrapped key is not 72 bytes";
		}
	}
	if (e == AMP_OK && has_duplicate(dids, h->n_recipients)) {
		e = AMP_E_DUPLICATE_RECIPIENT;
		if (error_r != NULL)
			*error_r = "a recipient is listed twice";
	}
	free(dids);
	return e;
}

amp_err amp_envelope_decode(const uint8_t *buf, size_t len,
			    amp_envelope **env_r, const char **error_r)
{
	if (buf == NULL || env_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no envelope given");
	if (len > AMP_ENVELOPE_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "envelope is larger than 48 MiB");
	if (len == 0)
		AMP_FAIL(AMP_E_TRUNCATED, "envelope is empty");
	amp_err e = wire_check(buf, len, error_r);
	if (e != AMP_OK)
		return e;

	amp_envelope *env = calloc(1, sizeof(*env));
	if (env == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory");
	env->alloc.alloc = pb_alloc;
	env->alloc.free = pb_free;
	env->alloc.allocator_data = env;
	/* Legitimate decoding needs the input's bytes plus about 600 bytes
	 * per recipient; the allowance covers 1000 recipients. */
	env->alloc_max = len + 1024u * 1024u;
	env->pb = amp__v1__envelope__unpack(&env->alloc, len, buf);
	if (env->pb == NULL) {
		bool big = env->alloc_exceeded;
		free(env);
		if (big)
			AMP_FAIL(AMP_E_TOO_LARGE,
				 "envelope needs more memory than its size "
				 "allows (too many fields)");
		AMP_FAIL(AMP_E_MALFORMED, "envelope does not match the schema");
	}
	const Amp__V1__EnvelopeHeader *h = env->pb->header;
	if (h == NULL) {
		e = AMP_E_MALFORMED;
		if (error_r != NULL)
			*error_r = "envelope has no header";
	} else if ((e = check_canonical(env->pb, buf, len, error_r)) != AMP_OK) {
		/* error set */
	} else if (h->version != AMP_PROTOCOL_VERSION) {
		e = AMP_E_VERSION;
		if (error_r != NULL)
			*error_r = "envelope version is not 1";
	} else if (h->sealed_sender.len != 0) {
		e = AMP_E_UNSUPPORTED;
		if (error_r != NULL)
			*error_r = "sealed sender is not supported in version 1";
	} else {
		e = check_structure(env->pb, error_r);
	}
	if (e != AMP_OK) {
		amp_envelope_free(&env);
		return e;
	}
	*env_r = env;
	return AMP_OK;
}

void amp_envelope_free(amp_envelope **env)
{
	if (env == NULL || *env == NULL)
		return;
	amp_envelope *x = *env;
	if (x->pb != NULL)
		amp__v1__envelope__free_unpacked(x->pb, &x->alloc);
	free(x);
	*env = NULL;
}

void amp_envelope_get_info(const amp_envelope *env, amp_envelope_info *info_r)
{
	const Amp__V1__EnvelopeHeader *h = env->pb->header;
	info_r->version = h->version;
	info_r->envelope_id = h->envelope_id.data;
	info_r->sender = h->sender;
	info_r->created = h->created;
	info_r->expires = h->expires;
	info_r->lane = (amp_lane)h->lane;
	info_r->content_type = h->content_type;
	info_r->padded_size = h->padded_size;
	info_r->n_recipients = h->n_recipients;
}

const char *amp_envelope_recipient(const amp_envelope *env, size_t i)
{
	if (i >= env->pb->header->n_recipients)
		return NULL;
	return env->pb->header->recipients[i]->did;
}

/* -------------------------------------------------------- verify / open */

amp_err amp_envelope_verify(const amp_envelope *env,
			    const amp_public_identity *sender, uint64_t now,
			    const char **error_r)
{
	if (env == NULL || sender == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no envelope or sender given");
	const Amp__V1__EnvelopeHeader *h = env->pb->header;
	if (strcmp(h->sender, sender->did) != 0)
		AMP_FAIL(AMP_E_SENDER_MISMATCH,
			 "the given identity is not the envelope's sender");
	size_t sig_len;
	uint8_t *sig_input = amp_sig_input_build(h, env->pb->ciphertext.data,
					     env->pb->ciphertext.len, &sig_len);
	if (sig_input == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory for the signing input");
	int bad = crypto_sign_verify_detached(env->pb->signature.data,
					      sig_input, sig_len,
					      sender->sign_pk);
	free(sig_input);
	if (bad)
		AMP_FAIL(AMP_E_BAD_SIGNATURE,
			 "the sender's signature does not verify (AMP-R-017)");
	if (now == 0)
		now = amp_now();
	if (h->created > now && h->created - now > AMP_CLOCK_SKEW_MAX)
		AMP_FAIL(AMP_E_FUTURE,
			 "envelope was created more than 10 minutes in the future");
	if (h->expires != 0 && now >= h->expires)
		AMP_FAIL(AMP_E_EXPIRED, "envelope has expired");
	return AMP_OK;
}

/* Steps 8-9 after the content key is known: decrypt, unpad, decompress. */
static amp_err open_payload(amp_ctx *ctx, const amp_envelope *env,
			    const uint8_t *key,
			    uint8_t **body_r, size_t *body_len_r,
			    const char **error_r)
{
	const Amp__V1__EnvelopeHeader *h = env->pb->header;
	uint8_t ad[PAYLOAD_AD_MAX];
	amp_wbuf w;
	amp_wbuf_init(&w, ad, sizeof(ad));
	build_payload_ad(&w, h->envelope_id.data, h->sender, h->content_type);

	size_t padded_len = (size_t)h->padded_size;
	uint8_t *padded = amp_malloc(padded_len);
	if (padded == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory for the payload");
	unsigned long long mlen;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    padded, &mlen, NULL, env->pb->ciphertext.data,
		    env->pb->ciphertext.len, ad, w.len, h->payload_nonce.data,
		    key) != 0) {
		free(padded);
		AMP_FAIL(AMP_E_DECRYPT, "payload does not authenticate");
	}
	size_t z = ((size_t)padded[0] << 24) | ((size_t)padded[1] << 16) |
		   ((size_t)padded[2] << 8) | padded[3];
	amp_err e = AMP_OK;
	if (mlen != padded_len || z > padded_len - 4) {
		e = AMP_E_PADDING;
		if (error_r != NULL)
			*error_r = "compressed length exceeds the padded size";
	} else if (!sodium_is_zero(padded + 4 + z, padded_len - 4 - z)) {
		e = AMP_E_PADDING;
		if (error_r != NULL)
			*error_r = "padding bytes are not zero";
	}
	if (e == AMP_OK) {
		ZSTD_DCtx *dctx = amp_ctx_dctx_get(ctx);
		if (dctx == NULL) {
			e = AMP_E_NOMEM;
			if (error_r != NULL)
				*error_r = "out of memory for zstd";
		} else {
			e = amp_zstd_decompress_bounded(dctx, padded + 4, z,
							AMP_BODY_MAX, body_r,
							body_len_r, error_r);
			amp_ctx_dctx_put(ctx, dctx);
		}
	}
	sodium_memzero(padded, padded_len);
	free(padded);
	return e;
}

amp_err amp_envelope_open(amp_ctx *ctx, const amp_envelope *env,
			  const amp_identity *me,
			  const amp_public_identity *sender, uint64_t now,
			  uint8_t **body_r, size_t *body_len_r,
			  const char **error_r)
{
	if (me == NULL || body_r == NULL || body_len_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no identity or output given");
	amp_err e = amp_envelope_verify(env, sender, now, error_r);
	if (e != AMP_OK)
		return e;
	const Amp__V1__EnvelopeHeader *h = env->pb->header;
	const Amp__V1__Recipient *mine = NULL;
	for (size_t i = 0; i < h->n_recipients && mine == NULL; i++) {
		if (strcmp(h->recipients[i]->did, me->pub.did) == 0)
			mine = h->recipients[i];
	}
	if (mine == NULL)
		AMP_FAIL(AMP_E_NOT_RECIPIENT,
			 "our DID is not among the envelope's recipients");

	seal_state st;
	e = amp_ctx_dh(ctx, me->enc_sk, me->pub.enc_pk, sender->enc_pk, st.dh);
	if (e != AMP_OK)
		AMP_FAIL(e, "the sender's encryption key is a low-order point");
	uint8_t wctx[WRAP_CTX_MAX];
	amp_wbuf w;
	amp_wbuf_init(&w, wctx, sizeof(wctx));
	build_wrap_ctx(&w, h->envelope_id.data, h->sender, me->pub.did,
		       sender->enc_pk, me->pub.enc_pk);
	crypto_generichash(st.kek, 32, wctx, w.len, st.dh, 32);
	const uint8_t *wk = mine->wrapped_key.data;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    st.content_key, NULL, NULL, wk + AMP_NONCE_BYTES,
		    AMP_WRAPPED_KEY_BYTES - AMP_NONCE_BYTES, wctx, w.len, wk,
		    st.kek) != 0) {
		sodium_memzero(&st, sizeof(st));
		AMP_FAIL(AMP_E_KEY_UNWRAP,
			 "our wrapped content key does not authenticate "
			 "(AMP-R-014)");
	}
	e = open_payload(ctx, env, st.content_key, body_r, body_len_r, error_r);
	sodium_memzero(&st, sizeof(st));
	return e;
}

/* ---------------------------------------------------------- zstd bound */

amp_err amp_zstd_decompress_bounded(ZSTD_DCtx *dctx, const uint8_t *z,
				    size_t z_len, size_t max_out,
				    uint8_t **out_r, size_t *out_len_r,
				    const char **error_r)
{
	/* AMP-R-016: exactly one zstd frame (not skippable), nothing after. */
	if (z_len < 4 || !(z[0] == 0x28 && z[1] == 0xb5 && z[2] == 0x2f &&
			   z[3] == 0xfd))
		AMP_FAIL(AMP_E_DECOMPRESS, "payload is not a zstd frame");
	size_t fsize = ZSTD_findFrameCompressedSize(z, z_len);
	if (ZSTD_isError(fsize) || fsize != z_len)
		AMP_FAIL(AMP_E_DECOMPRESS,
			 "payload is not exactly one complete zstd frame");
	unsigned long long csize = ZSTD_getFrameContentSize(z, z_len);
	if (csize == ZSTD_CONTENTSIZE_ERROR)
		AMP_FAIL(AMP_E_DECOMPRESS, "zstd frame header is invalid");
	if (csize != ZSTD_CONTENTSIZE_UNKNOWN && csize > max_out)
		AMP_FAIL(AMP_E_TOO_LARGE, "body would exceed 32 MiB");

	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
	size_t cap = csize != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)csize : 64 * 1024;
	if (cap > max_out)
		cap = max_out;
	uint8_t *out = malloc(cap + 1);
	amp_err e = AMP_OK;
	ZSTD_inBuffer in = { z, z_len, 0 };
	ZSTD_outBuffer ob = { out, cap + 1, 0 };
	if (out == NULL) {
		e = AMP_E_NOMEM;
		if (error_r != NULL)
			*error_r = "out of memory for the body";
	}
	while (e == AMP_OK) {
		size_t r = ZSTD_decompressStream(dctx, &ob, &in);
		if (ZSTD_isError(r)) {
			e = AMP_E_DECOMPRESS;
			if (error_r != NULL)
				*error_r = "zstd frame is corrupt or needs "
					   "a dictionary or too large a window";
			break;
		}
		if (ob.pos > max_out) {
			e = AMP_E_TOO_LARGE;
			if (error_r != NULL)
				*error_r = "body would exceed 32 MiB";
			break;
		}
		if (r == 0)
			break; /* frame complete */
		if (ob.pos == ob.size) {
			/* Grow, never past max_out + 1 (one byte to detect);
			 * by hand, so the old plaintext copy can be wiped. */
			size_t ncap = ob.size * 2;
			if (ncap > max_out + 1)
				ncap = max_out + 1;
			uint8_t *n = malloc(ncap);
			if (n != NULL) {
				memcpy(n, out, ob.pos);
				sodium_memzero(out, ob.size);
				free(out);
			}
			if (n == NULL) {
				e = AMP_E_NOMEM;
				if (error_r != NULL)
					*error_r = "out of memory for the body";
				break;
			}
			out = n;
			ob.dst = out;
			ob.size = ncap;
		} else if (in.pos == in.size) {
			e = AMP_E_DECOMPRESS;
			if (error_r != NULL)
				*error_r = "zstd frame is incomplete";
			break;
		}
	}
	if (e != AMP_OK) {
		if (out != NULL)
			sodium_memzero(out, ob.size);
		free(out);
		return e;
	}
	if (csize != ZSTD_CONTENTSIZE_UNKNOWN && ob.pos != csize) {
		sodium_memzero(out, ob.size);
		free(out);
		AMP_FAIL(AMP_E_DECOMPRESS, "zstd frame content size is wrong");
	}
	*out_r = out;
	*out_len_r = ob.pos;
	return AMP_OK;
}
