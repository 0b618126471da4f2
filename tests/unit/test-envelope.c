/*
 * test-envelope.c — amp_seal / amp_envelope_decode / verify / open:
 * round trips, every refusal of PROTOCOL.md §5.6 with its own error code,
 * truncation at every length, non-canonical encodings, bounds.
 *
 * Tampering comes in two forms: raw (the signature must catch it:
 * AMP_E_BAD_SIGNATURE) and re-signed by the sender's key, which proves the
 * inner bindings (AEAD associated data, padding, compression) hold on their
 * own.
 */
#include "test-common.h"

typedef struct fixture {
	amp_identity *alice, *bob, *carol;
	amp_ctx *ctx;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	f->alice = t_identity("did:aftersmtp:example.org:alice");
	f->bob = t_identity("did:aftersmtp:example.net:bob");
	f->carol = t_identity("did:aftersmtp:example.com:carol");
	assert_int_equal(amp_ctx_create(64, &f->ctx), AMP_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	amp_identity_destroy(&f->alice);
	amp_identity_destroy(&f->bob);
	amp_identity_destroy(&f->carol);
	amp_ctx_destroy(&f->ctx);
	free(f);
	return 0;
}

static const char MSG[] = "Subject: test\r\n\r\nHello, world.\r\n";

/* ------------------------------------------------------------ mutation */

typedef void mutate_fn(Amp__V1__Envelope *pb, void *arg);

/* Decode env with protobuf-c, apply fn, re-sign with signer (if not NULL),
 * re-encode.  Returns a new buffer. */
static uint8_t *mutate(const uint8_t *env, size_t len, mutate_fn *fn, void *arg,
		       const amp_identity *signer, size_t *out_len)
{
	Amp__V1__Envelope *pb = amp__v1__envelope__unpack(NULL, len, env);
	assert_non_null(pb);
	fn(pb, arg);
	uint8_t sig[64];
	uint8_t *own_sig = pb->signature.data;
	if (signer != NULL) {
		size_t n;
		uint8_t *si = amp_sig_input_build(pb->header, pb->ciphertext.data,
						  pb->ciphertext.len, &n);
		assert_non_null(si);
		crypto_sign_detached(sig, NULL, si, n, signer->sign_sk);
		free(si);
		pb->signature.data = sig;
	}
	*out_len = amp__v1__envelope__get_packed_size(pb);
	uint8_t *out = malloc(*out_len);
	amp__v1__envelope__pack(pb, out);
	pb->signature.data = own_sig; /* protobuf-c frees its own pointer */
	amp__v1__envelope__free_unpacked(pb, NULL);
	return out;
}

static amp_err open_as(fixture *f, const uint8_t *env, size_t len,
		       const amp_identity *me, const amp_identity *sender)
{
	uint8_t *body = NULL;
	size_t blen = 0;
	amp_err e = t_open(f->ctx, env, len, me, &sender->pub, T_NOW, &body, &blen);
	free(body);
	return e;
}

static amp_err decode_only(const uint8_t *env, size_t len)
{
	amp_envelope *e = NULL;
	amp_err r = amp_envelope_decode(env, len, &e, NULL);
	amp_envelope_free(&e);
	return r;
}

/* ---------------------------------------------------------- round trips */

static void test_roundtrip_each_recipient(void **state)
{
	fixture *f = *state;
	amp_identity *to[] = { f->bob, f->carol, f->alice };
	uint8_t *env, *body;
	size_t len, blen;

	t_seal(f->ctx, f->alice, to, 3, MSG, sizeof(MSG) - 1, 0, &env, &len);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(t_open(f->ctx, env, len, to[i], &f->alice->pub,
					T_NOW, &body, &blen),
				 AMP_OK);
		assert_int_equal(blen, sizeof(MSG) - 1);
		assert_memory_equal(body, MSG, blen);
		free(body);
	}
	amp_free(env);
}

static void test_roundtrip_sizes(void **state)
{
	fixture *f = *state;
	static const size_t sizes[] = { 0, 1, 251, 252, 253, 1000, 65536,
					1024 * 1024 + 7 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint8_t *in = malloc(sizes[k] + 1), *env, *body;
		size_t len, blen;
		randombytes_buf(in, sizes[k]); /* incompressible */
		t_seal(NULL, f->alice, &f->bob, 1, in, sizes[k], 0, &env, &len);
		assert_true(len <= AMP_ENVELOPE_MAX);
		assert_int_equal(t_open(NULL, env, len, f->bob, &f->alice->pub,
					T_NOW, &body, &blen),
				 AMP_OK);
		assert_int_equal(blen, sizes[k]);
		if (blen > 0)
			assert_memory_equal(body, in, blen);
		free(body);
		free(in);
		amp_free(env);
	}
}

static void test_info_and_padding(void **state)
{
	fixture *f = *state;
	amp_identity *to[] = { f->bob, f->carol };
	amp_public_identity pubs[] = { f->bob->pub, f->carol->pub };
	uint8_t *env;
	size_t len;
	amp_seal_params p = { .content_type = "text/plain", .created = T_NOW,
			      .expires = T_NOW + 60, .lane = AMP_LANE_BULK };
	(void)to;
	assert_int_equal(amp_seal(NULL, f->alice, pubs, 2, &p,
				  (const uint8_t *)MSG, sizeof(MSG) - 1, &env,
				  &len, NULL),
			 AMP_OK);
	amp_envelope *e;
	assert_int_equal(amp_envelope_decode(env, len, &e, NULL), AMP_OK);
	amp_envelope_info info;
	amp_envelope_get_info(e, &info);
	assert_int_equal(info.version, 1);
	assert_string_equal(info.sender, f->alice->pub.did);
	assert_int_equal(info.created, T_NOW);
	assert_int_equal(info.expires, T_NOW + 60);
	assert_int_equal(info.lane, AMP_LANE_BULK);
	assert_string_equal(info.content_type, "text/plain");
	assert_int_equal(info.padded_size, 256); /* small bodies pad to 256 */
	assert_int_equal(info.n_recipients, 2);
	assert_string_equal(amp_envelope_recipient(e, 0), f->bob->pub.did);
	assert_string_equal(amp_envelope_recipient(e, 1), f->carol->pub.did);
	assert_null(amp_envelope_recipient(e, 2));
	assert_int_equal(amp_envelope_verify(e, &f->alice->pub, T_NOW, NULL),
			 AMP_OK);
	amp_envelope_free(&e);
	assert_null(e);
	amp_envelope_free(&e); /* NULL is fine */
	amp_free(env);
}

static void test_two_seals_differ(void **state)
{
	fixture *f = *state;
	uint8_t *a, *b;
	size_t la, lb;
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &a, &la);
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &b, &lb);
	assert_int_equal(la, lb);
	assert_memory_not_equal(a, b, la); /* fresh ids, keys, nonces */
	amp_free(a);
	amp_free(b);
}

/* ------------------------------------------------------ refusals (open) */

static void test_wrong_recipient(void **state)
{
	fixture *f = *state;
	uint8_t *env;
	size_t len;
	t_seal(f->ctx, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &env, &len);
	assert_int_equal(open_as(f, env, len, f->carol, f->alice),
			 AMP_E_NOT_RECIPIENT);
	/* Carol impersonating Bob's DID with her own keys cannot unwrap. */
	amp_identity *fake = NULL;
	uint8_t seed[32] = { 1 }, esk[32] = { 2 };
	assert_int_equal(amp_identity_from_secrets(f->bob->pub.did, seed, esk,
						   &fake, NULL),
			 AMP_OK);
	assert_int_equal(open_as(f, env, len, fake, f->alice), AMP_E_KEY_UNWRAP);
	amp_identity_destroy(&fake);
	amp_free(env);
}

static void test_wrong_sender_identity(void **state)
{
	fixture *f = *state;
	uint8_t *env;
	size_t len;
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &env, &len);
	/* Someone else's document for the sender. */
	assert_int_equal(open_as(f, env, len, f->bob, f->carol),
			 AMP_E_SENDER_MISMATCH);
	/* Right DID, wrong key: an impostor's DID document. */
	amp_public_identity forged = f->carol->pub;
	memcpy(forged.did, f->alice->pub.did, sizeof(forged.did));
	amp_envelope *e;
	assert_int_equal(amp_envelope_decode(env, len, &e, NULL), AMP_OK);
	assert_int_equal(amp_envelope_verify(e, &forged, T_NOW, NULL),
			 AMP_E_BAD_SIGNATURE);
	amp_envelope_free(&e);
	amp_free(env);
}

static void flip_envelope_id(Amp__V1__Envelope *pb, void *arg)
{
	(void)arg;
	pb->header->envelope_id.data[0] ^= 1;
}

static void flip_ciphertext(Amp__V1__Envelope *pb, void *arg)
{
	size_t at = *(size_t *)arg;
	pb->ciphertext.data[at % pb->ciphertext.len] ^= 0x80;
}

static void bump_created(Amp__V1__Envelope *pb, void *arg)
{
	(void)arg;
	pb->header->created += 1;
}

static void set_lane(Amp__V1__Envelope *pb, void *arg)
{
	(void)arg;
	pb->header->lane = AMP__V1__LANE__LANE_CRITICAL;
}

static void swap_recipients(Amp__V1__Envelope *pb, void *arg)
{
	(void)arg;
	Amp__V1__Recipient *t = pb->header->recipients[0];
	pb->header->recipients[0] = pb->header->recipients[1];
	pb->header->recipients[1] = t;
}

static void swap_wrapped_keys(Amp__V1__Envelope *pb, void *arg)
{
	(void)arg;
	ProtobufCBinaryData t = pb->header->recipients[0]->wrapped_key;
	pb->header->recipients[0]->wrapped_key = pb->header->recipients[1]->wrapped_key;
	pb->header->recipients[1]->wrapped_key = t;
}

static void test_tampered_header(void **state)
{
	fixture *f = *state;
	amp_identity *to[] = { f->bob, f->carol };
	uint8_t *env, *bad;
	size_t len, blen, at = 0;
	t_seal(NULL, f->alice, to, 2, MSG, sizeof(MSG) - 1, 0, &env, &len);

	mutate_fn *fns[] = { flip_envelope_id, bump_created, set_lane,
			     swap_recipients, swap_wrapped_keys };
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		bad = mutate(env, len, fns[i], &at, NULL, &blen);
		assert_int_equal(open_as(f, bad, blen, f->bob, f->alice),
				 AMP_E_BAD_SIGNATURE);
		free(bad);
	}
	/* Every single bit of the signature matters. */
	bad = malloc(len);
	for (size_t bit = 0; bit < 64 * 8; bit += 37) {
		memcpy(bad, env, len);
		bad[len - 64 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(open_as(f, bad, len, f->bob, f->alice),
				 AMP_E_BAD_SIGNATURE);
	}
	free(bad);
	amp_free(env);
}

static void test_tampered_ciphertext(void **state)
{
	fixture *f = *state;
	uint8_t *env, *bad;
	size_t len, blen;
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &env, &len);
	for (size_t at = 0; at < 272; at += 17) {
		bad = mutate(env, len, flip_ciphertext, &at, NULL, &blen);
		assert_int_equal(open_as(f, bad, blen, f->bob, f->alice),
				 AMP_E_BAD_SIGNATURE);
		free(bad);
		/* Re-signed by the sender: the AEAD still refuses it. */
		bad = mutate(env, len, flip_ciphertext, &at, f->alice, &blen);
		assert_int_equal(open_as(f, bad, blen, f->bob, f->alice),
				 AMP_E_DECRYPT);
		free(bad);
	}
	amp_free(env);
}

static void test_swapped_wrapped_key_resigned(void **state)
{
	fixture *f = *state;
	amp_identity *to[] = { f->bob, f->carol };
	uint8_t *env, *bad;
	size_t len, blen;
	t_seal(NULL, f->alice, to, 2, MSG, sizeof(MSG) - 1, 0, &env, &len);
	/* A validly signed envelope whose wrapped keys were exchanged between
	 * entries: each recipient's unwrap fails (AMP-R-014). */
	bad = mutate(env, len, swap_wrapped_keys, NULL, f->alice, &blen);
	assert_int_equal(open_as(f, bad, blen, f->bob, f->alice), AMP_E_KEY_UNWRAP);
	assert_int_equal(open_as(f, bad, blen, f->carol, f->alice),
			 AMP_E_KEY_UNWRAP);
	free(bad);
	/* A wrapped key moved into another envelope (other id) fails too. */
	bad = mutate(env, len, flip_envelope_id, NULL, f->alice, &blen);
	assert_int_equal(open_as(f, bad, blen, f->bob, f->alice), AMP_E_KEY_UNWRAP);
	free(bad);
	amp_free(env);
}

/* Replace the whole payload with one we encrypt ourselves, so padding and
 * compression checks can be reached with a valid AEAD and signature. */
typedef struct payload_swap {
	const uint8_t *padded;
	size_t len;
	const amp_identity *sender, *rcpt;
} payload_swap;

static void replace_payload(Amp__V1__Envelope *pb, void *arg)
{
	payload_swap *ps = arg;
	Amp__V1__EnvelopeHeader *h = pb->header;
	uint8_t dh[32], kek[32], key[32], wctx[1024], ad[1024];
	amp_wbuf w;

	/* Unwrap the content key as the recipient. */
	assert_int_equal(crypto_scalarmult(dh, ps->rcpt->enc_sk,
					   ps->sender->pub.enc_pk),
			 0);
	amp_wbuf_init(&w, wctx, sizeof(wctx));
	amp_wbuf_str(&w, "AMPv1-wrap");
	amp_wbuf_lp(&w, h->envelope_id.data, 16);
	amp_wbuf_lp(&w, h->sender, strlen(h->sender));
	amp_wbuf_lp(&w, ps->rcpt->pub.did, strlen(ps->rcpt->pub.did));
	amp_wbuf_put(&w, ps->sender->pub.enc_pk, 32);
	amp_wbuf_put(&w, ps->rcpt->pub.enc_pk, 32);
	crypto_generichash(kek, 32, wctx, w.len, dh, 32);
	const uint8_t *wk = h->recipients[0]->wrapped_key.data;
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
				 key, NULL, NULL, wk + 24, 48, wctx, w.len, wk,
				 kek),
			 0);
	amp_wbuf_init(&w, ad, sizeof(ad));
	amp_wbuf_str(&w, "AMPv1-payload");
	amp_wbuf_lp(&w, h->envelope_id.data, 16);
	amp_wbuf_lp(&w, h->sender, strlen(h->sender));
	amp_wbuf_lp(&w, h->content_type, strlen(h->content_type));
	uint8_t *ct = malloc(ps->len + 16);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, ps->padded, ps->len,
						   ad, w.len, NULL,
						   h->payload_nonce.data, key);
	free(pb->ciphertext.data);
	pb->ciphertext.data = ct;
	pb->ciphertext.len = ps->len + 16;
	h->padded_size = ps->len;
}

static amp_err open_with_padded(fixture *f, const uint8_t *padded, size_t len)
{
	uint8_t *env, *bad;
	size_t elen, blen;
	payload_swap ps = { padded, len, f->alice, f->bob };
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &env, &elen);
	bad = mutate(env, elen, replace_payload, &ps, f->alice, &blen);
	amp_err e = open_as(f, bad, blen, f->bob, f->alice);
	free(bad);
	amp_free(env);
	return e;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void test_padding_and_compression_checks(void **state)
{
	fixture *f = *state;
	uint8_t padded[512];
	size_t z;

	/* A correct payload built by hand opens (the harness works). */
	memset(padded, 0, sizeof(padded));
	z = ZSTD_compress(padded + 4, 200, "hi", 2, 3);
	put_u32(padded, (uint32_t)z);
	assert_int_equal(open_with_padded(f, padded, 256), AMP_OK);

	/* Length field larger than the padded size. */
	put_u32(padded, 253);
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_PADDING);
	/* Non-zero padding byte. */
	put_u32(padded, (uint32_t)z);
	padded[255] = 1;
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_PADDING);
	padded[255] = 0;
	/* Not zstd. */
	memset(padded + 4, 'x', z);
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_DECOMPRESS);
	/* Two frames where one is required. */
	memset(padded, 0, sizeof(padded));
	z = ZSTD_compress(padded + 4, 100, "hi", 2, 3);
	size_t z2 = ZSTD_compress(padded + 4 + z, 100, "yo", 2, 3);
	put_u32(padded, (uint32_t)(z + z2));
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_DECOMPRESS);
	/* A truncated frame. */
	put_u32(padded, (uint32_t)(z - 1));
	memset(padded + 4 + z - 1, 0, 256 - 4 - z + 1);
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_DECOMPRESS);
	/* A skippable frame (magic 0x184D2A50) is not a content frame. */
	memset(padded, 0, sizeof(padded));
	static const uint8_t skip[] = { 0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0 };
	memcpy(padded + 4, skip, sizeof(skip));
	put_u32(padded, sizeof(skip));
	assert_int_equal(open_with_padded(f, padded, 256), AMP_E_DECOMPRESS);
}

static void test_compression_bomb(void **state)
{
	fixture *f = *state;
	/* 33 MiB of zeros compresses to ~1 KiB; it must be refused without
	 * producing more than 32 MiB.  Declared size and streaming frame both. */
	size_t big = AMP_BODY_MAX + 1024u * 1024u;
	uint8_t *zeros = calloc(1, big);
	size_t cap = ZSTD_compressBound(big);
	uint8_t *padded = calloc(1, cap + 4);
	size_t z = ZSTD_compress(padded + 4, cap, zeros, big, 19);
	assert_false(ZSTD_isError(z));
	put_u32(padded, (uint32_t)z);
	size_t plen = 256;
	while (plen < z + 4)
		plen *= 2;
	/* zstd may use all of dst as scratch: clear the padding. */
	memset(padded + 4 + z, 0, plen - 4 - z);
	assert_int_equal(open_with_padded(f, padded, plen), AMP_E_TOO_LARGE);

	/* Same without a content size in the frame header. */
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	ZSTD_inBuffer in = { zeros, big, 0 };
	ZSTD_outBuffer out = { padded + 4, cap, 0 };
	memset(padded, 0, cap + 4);
	assert_int_equal(ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end), 0);
	ZSTD_freeCCtx(cc);
	put_u32(padded, (uint32_t)out.pos);
	plen = 256;
	while (plen < out.pos + 4)
		plen *= 2;
	memset(padded + 4 + out.pos, 0, plen - 4 - out.pos);
	assert_int_equal(open_with_padded(f, padded, plen), AMP_E_TOO_LARGE);
	free(zeros);
	free(padded);
}

static void test_expired_and_future(void **state)
{
	fixture *f = *state;
	uint8_t *env, *body = NULL;
	size_t len, blen;
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, T_NOW + 100,
	       &env, &len);
	assert_int_equal(t_open(NULL, env, len, f->bob, &f->alice->pub,
				T_NOW + 99, &body, &blen),
			 AMP_OK);
	free(body);
	assert_int_equal(t_open(NULL, env, len, f->bob, &f->alice->pub,
				T_NOW + 100, &body, &blen),
			 AMP_E_EXPIRED);
	/* Created at T_NOW: seen from 601 s earlier it is from the future. */
	assert_int_equal(t_open(NULL, env, len, f->bob, &f->alice->pub,
				T_NOW - 600, &body, &blen),
			 AMP_OK);
	free(body);
	assert_int_equal(t_open(NULL, env, len, f->bob, &f->alice->pub,
				T_NOW - 601, &body, &blen),
			 AMP_E_FUTURE);
	amp_free(env);
}

/* --------------------------------------------------- refusals (decode) */

static void test_truncated_every_length(void **state)
{
	fixture *f = *state;
	amp_identity *to[] = { f->bob, f->carol };
	uint8_t *env;
	size_t len;
	t_seal(NULL, f->alice, to, 2, MSG, sizeof(MSG) - 1, 0, &env, &len);
	assert_int_equal(decode_only(env, len), AMP_OK);
	for (size_t n = 0; n < len; n++) {
		/* Copy so ASan catches any read past n. */
		uint8_t *p = malloc(n + 1);
		memcpy(p, env, n);
		amp_err e = decode_only(p, n);
		assert_int_not_equal(e, AMP_OK);
		assert_true(e == AMP_E_TRUNCATED || e == AMP_E_MALFORMED ||
			    e == AMP_E_NONCANONICAL);
		free(p);
	}
	/* A recipient whose did claims 5 bytes but holds 1, inside a
	 * complete header: truncation at the third nesting level. */
	static const uint8_t nested[] = { 0x0a, 0x07, 0x08, 0x01, 0x2a, 0x03,
					  0x0a, 0x05, 0x61 };
	assert_int_equal(decode_only(nested, sizeof(nested)), AMP_E_TRUNCATED);
	/* Cutting inside the ciphertext field is reported as truncation. */
	assert_int_equal(decode_only(env, len - 100), AMP_E_TRUNCATED);
	assert_int_equal(decode_only(env, 0), AMP_E_TRUNCATED);
	amp_free(env);
}

static void test_noncanonical(void **state)
{
	fixture *f = *state;
	uint8_t *env;
	size_t len;
	t_seal(NULL, f->alice, &f->bob, 1, MSG, sizeof(MSG) - 1, 0, &env, &len);
	Amp__V1__Envelope *pb = amp__v1__envelope__unpack(NULL, len, env);
	assert_non_null(pb);

	/* Fields re-ordered: signature (3) first, then header (1), then
	 * ciphertext (2).  Same content, different bytes. */
	Amp__V1__Envelope only = AMP__V1__ENVELOPE__INIT;
	uint8_t *re = malloc(len + 128);
	size_t o = 0;
	only.signature = pb->signature;
	o += amp__v1__envelope__pack(&only, re + o);
	only = (Amp__V1__Envelope)AMP__V1__ENVELOPE__INIT;
	only.header = pb->header;
	o += amp__v1__envelope__pack(&only, re + o);
	only = (Amp__V1__Envelope)AMP__V1__ENVELOPE__INIT;
	only.ciphertext = pb->ciphertext;
	o += amp__v1__envelope__pack(&only, re + o);
	assert_int_equal(o, len);
	assert_int_equal(decode_only(re, o), AMP_E_NONCANONICAL);

	/* A duplicated field (the signature twice: the last one wins). */
	memcpy(re, env, len);
	memcpy(re + len, env + len - 66, 66);
	assert_int_equal(decode_only(re, len + 66), AMP_E_NONCANONICAL);

	/* An unknown field (number 15, varint 1) appended. */
	memcpy(re, env, len);
	re[len] = (15 << 3) | 0;
	re[len + 1] = 1;
	assert_int_equal(decode_only(re, len + 2), AMP_E_NONCANONICAL);

	/* A non-minimal varint for a length: header length with an extra
	 * 0x80 0x00 continuation is still the same value. */
	assert_int_equal(env[0], 0x0a); /* field 1, length-delimited */
	size_t pos = 1, hl = 0, shift = 0;
	while (env[pos] & 0x80) {
		hl |= (size_t)(env[pos] & 0x7f) << shift;
		shift += 7;
		pos++;
	}
	hl |= (size_t)env[pos] << shift;
	(void)hl;
	re[0] = env[0];
	memcpy(re + 1, env + 1, pos - 1);
	re[pos] = env[pos] | 0x80;
	re[pos + 1] = 0x00;
	memcpy(re + pos + 2, env + pos + 1, len - pos - 1);
	assert_int_equal(decode_only(re, len + 1), AMP_E_NONCANONICAL);

	free(re);
	amp__v1__envelope__free_unpacked(pb, NULL);
	amp_free(env);
}

typedef struct set_arg {
	int what;
} set_arg;

static void break_field(Amp__V1__Envelope *pb, void *arg)
{
	static uint8_t buf[2048];
	static char did[400];
	Amp__V1__EnvelopeHeader *h = pb->header;
	switch (((set_arg *)arg)->what) {
	case 0: h->version = 2; break;
	case 1: h->sealed_sender.data = buf; h->sealed_sender.len = 10; break;
	case 2: h->envelope_id.len = 15; break;
	case 3: snprintf(did, sizeof(did), "did:aftersmtp:Example.org:alice");
		h->sender = did; break;
	case 4: snprintf(did, sizeof(did), "did:aftersmtp:x:a..b");
		h->recipients[0]->did = did; break;
	case 5: h->recipients[0]->wrapped_key.len = 71; break;
	case 6: h->expires = h->created; break;
	case 7: h->lane = (Amp__V1__Lane)3; break;
	case 8: h->content_type = (char *)"text/plain\n"; break;
	case 9: h->content_type = (char *)""; break;
	case 10: h->padded_size = 255; break;
	case 11: h->padded_size = (uint64_t)AMP_PADDED_MAX + 1; break;
	case 12: h->payload_nonce.len = 12; break;
	case 13: pb->ciphertext.len -= 1; break;
	case 14: pb->signature.len = 63; break;
	case 15: h->n_recipients = 0; break;
	case 16: h->recipients[1]->did = h->recipients[0]->did; break;
	case 17: pb->header = NULL; break;
	}
}

static void test_structure_rules(void **state)
{
	fixture *f = *state;
	static const amp_err want[] = {
		AMP_E_VERSION,   AMP_E_UNSUPPORTED, AMP_E_MALFORMED,
		AMP_E_BAD_DID,   AMP_E_BAD_DID,     AMP_E_MALFORMED,
		AMP_E_MALFORMED, AMP_E_MALFORMED,   AMP_E_MALFORMED,
		AMP_E_MALFORMED, AMP_E_MALFORMED,   AMP_E_TOO_LARGE,
		AMP_E_MALFORMED, AMP_E_MALFORMED,   AMP_E_MALFORMED,
		AMP_E_MALFORMED, AMP_E_DUPLICATE_RECIPIENT, AMP_E_MALFORMED,
	};
	amp_identity *to[] = { f->bob, f->carol };
	uint8_t *env;
	size_t len;
	t_seal(NULL, f->alice, to, 2, MSG, sizeof(MSG) - 1, 0, &env, &len);
	for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++) {
		Amp__V1__Envelope *pb = amp__v1__envelope__unpack(NULL, len, env);
		Amp__V1__EnvelopeHeader *h = pb->header;
		Amp__V1__Recipient **rs = h->recipients;
		Amp__V1__Recipient r0 = *rs[0], r1 = *rs[1];
		Amp__V1__EnvelopeHeader hcopy = *h;
		ProtobufCBinaryData ct = pb->ciphertext, sig = pb->signature;
		set_arg a = { i };
		break_field(pb, &a);
		size_t n = amp__v1__envelope__get_packed_size(pb);
		uint8_t *bad = malloc(n);
		amp__v1__envelope__pack(pb, bad);
		const char *msg = NULL;
		amp_envelope *e = NULL;
		amp_err got = amp_envelope_decode(bad, n, &e, &msg);
		if (got != want[i])
			fail_msg("case %d: want %s, got %s (%s)", i,
				 amp_err_name(want[i]), amp_err_name(got),
				 msg != NULL ? msg : "");
		assert_non_null(msg);
		assert_null(e);
		free(bad);
		/* Restore what break_field pointed elsewhere, then free. */
		*rs[0] = r0;
		*rs[1] = r1;
		*h = hcopy;
		pb->header = h;
		pb->ciphertext = ct;
		pb->signature = sig;
		amp__v1__envelope__free_unpacked(pb, NULL);
	}
	amp_free(env);
}

static void test_too_large_and_args(void **state)
{
	fixture *f = *state;
	static uint8_t one[1];
	uint8_t *env = NULL;
	size_t len = 0;
	const char *msg = NULL;
	amp_envelope *e = NULL;
	assert_int_equal(amp_envelope_decode(one, (size_t)AMP_ENVELOPE_MAX + 1,
					     &e, &msg),
			 AMP_E_TOO_LARGE);
	/* Seal refuses: no recipients, too many, duplicates, big body,
	 * bad content type, expiry before creation. */
	amp_public_identity two[2] = { f->bob->pub, f->bob->pub };
	amp_seal_params p = { .created = T_NOW };
	assert_int_equal(amp_seal(NULL, f->alice, two, 0, &p, one, 1, &env,
				  &len, &msg),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_seal(NULL, f->alice, two, AMP_RECIPIENTS_MAX + 1,
				  &p, one, 1, &env, &len, &msg),
			 AMP_E_TOO_LARGE);
	assert_int_equal(amp_seal(NULL, f->alice, two, 2, &p, one, 1, &env,
				  &len, &msg),
			 AMP_E_DUPLICATE_RECIPIENT);
	assert_int_equal(amp_seal(NULL, f->alice, two, 1, &p, one,
				  (size_t)AMP_BODY_MAX + 1, &env, &len, &msg),
			 AMP_E_TOO_LARGE);
	p.content_type = "bad\x01type";
	assert_int_equal(amp_seal(NULL, f->alice, two, 1, &p, one, 1, &env,
				  &len, &msg),
			 AMP_E_INVALID_ARG);
	p.content_type = NULL;
	p.expires = T_NOW;
	assert_int_equal(amp_seal(NULL, f->alice, two, 1, &p, one, 1, &env,
				  &len, &msg),
			 AMP_E_INVALID_ARG);
	/* A recipient whose X25519 key is a low-order point (all zero). */
	amp_public_identity weak = f->bob->pub;
	memset(weak.enc_pk, 0, 32);
	p.expires = 0;
	assert_int_equal(amp_seal(NULL, f->alice, &weak, 1, &p, one, 1, &env,
				  &len, &msg),
			 AMP_E_BAD_KEY);
	assert_null(env);
}

static void test_max_recipients(void **state)
{
	fixture *f = *state;
	size_t n = AMP_RECIPIENTS_MAX;
	amp_public_identity *pubs = calloc(n, sizeof(*pubs));
	for (size_t i = 0; i < n; i++) {
		pubs[i] = f->bob->pub;
		snprintf(pubs[i].did, sizeof(pubs[i].did),
			 "did:aftersmtp:example.net:user%zu", i);
	}
	pubs[n - 1] = f->bob->pub; /* the last one is really bob */
	uint8_t *env, *body;
	size_t len, blen;
	amp_seal_params p = { .created = T_NOW };
	assert_int_equal(amp_seal(f->ctx, f->alice, pubs, n, &p,
				  (const uint8_t *)MSG, sizeof(MSG) - 1, &env,
				  &len, NULL),
			 AMP_OK);
	assert_int_equal(t_open(f->ctx, env, len, f->bob, &f->alice->pub, T_NOW,
				&body, &blen),
			 AMP_OK);
	assert_memory_equal(body, MSG, blen);
	free(body);
	amp_free(env);
	free(pubs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_each_recipient),
		cmocka_unit_test(test_roundtrip_sizes),
		cmocka_unit_test(test_info_and_padding),
		cmocka_unit_test(test_two_seals_differ),
		cmocka_unit_test(test_wrong_recipient),
		cmocka_unit_test(test_wrong_sender_identity),
		cmocka_unit_test(test_tampered_header),
		cmocka_unit_test(test_tampered_ciphertext),
		cmocka_unit_test(test_swapped_wrapped_key_resigned),
		cmocka_unit_test(test_padding_and_compression_checks),
		cmocka_unit_test(test_compression_bomb),
		cmocka_unit_test(test_expired_and_future),
		cmocka_unit_test(test_truncated_every_length),
		cmocka_unit_test(test_noncanonical),
		cmocka_unit_test(test_structure_rules),
		cmocka_unit_test(test_too_large_and_args),
		cmocka_unit_test(test_max_recipients),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
