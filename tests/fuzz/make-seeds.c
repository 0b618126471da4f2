/*
 * make-seeds.c — writes the seed corpora of the libFuzzer targets:
 *
 *     fuzz-make-seeds OUTDIR       (normally tests/fuzz/corpus)
 *
 * creates OUTDIR/<target>/<name> for the targets envelope, armor, did,
 * diddoc, pow and keystore, overwriting files of the same name and leaving
 * every other file (regress-* reproducers) alone.
 *
 * The seeds are built with the fixed identities, clock and passphrase of
 * fuzz-common.h, so the targets reach the paths behind a valid signature,
 * a valid wrapped key and a valid proof of work.  Envelopes that must carry
 * a valid signature over a broken payload (bad padding, a second zstd frame,
 * a decompression bomb, ...) are built here field by field and signed with
 * a signing input written from PROTOCOL.md §5.5, not with libamp's.
 *
 * Output is reproducible: libsodium's random source is replaced by a
 * ChaCha20 stream under a fixed key before amp_init(), and amp_seal gets a
 * deterministic rng per seed, so running this twice writes the same bytes.
 * Never link this replacement into anything but a seed generator.
 *
 * Limits: every seed stays under 64 KiB (the targets' -max_len) and the
 * whole corpus well under 1 MB.
 */
#include "fuzz-common.h"
#include "amp.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#define MAX_RCPT 200u
#define SEED_MAX (64u * 1024u)
#define CREATED (FUZZ_NOW - 3600u)

static const char *outdir;

static void die(const char *what)
{
	fprintf(stderr, "make-seeds: %s\n", what);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		die("out of memory");
	return p;
}

/* ------------------------------------------------ deterministic randomness */

static const uint8_t det_key[32] = "aftersmtp fuzz seeds, not random";
static uint64_t det_counter;

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

static void det_buf(void *const buf, const size_t size)
{
	uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	put_u64(nonce, det_counter++);
	crypto_stream_chacha20(buf, size, nonce, det_key);
}

static uint32_t det_random(void)
{
	uint32_t v;
	det_buf(&v, sizeof(v));
	return v;
}

static const char *det_name(void)
{
	return "aftersmtp-fuzz-seeds";
}

static randombytes_implementation det_impl = {
	.implementation_name = det_name,
	.random = det_random,
	.buf = det_buf,
};

/* amp_seal's rng: a stream per seed name; remembers the content key (the
 * second draw, PROTOCOL.md order: id, key, payload nonce, wrap nonces). */
typedef struct seal_rng {
	uint8_t key[32];
	uint64_t n;
	unsigned calls;
	uint8_t content_key[32];
} seal_rng;

static void seal_rng_fill(void *ctx, uint8_t *buf, size_t len)
{
	seal_rng *r = ctx;
	uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	put_u64(nonce, r->n++);
	crypto_stream_chacha20(buf, len, nonce, r->key);
	if (r->calls == 1 && len == 32)
		memcpy(r->content_key, buf, 32);
	r->calls++;
}

static void seal_rng_init(seal_rng *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	crypto_generichash(r->key, 32, (const uint8_t *)name, strlen(name),
			   NULL, 0);
}

/* ------------------------------------------------------------ file output */

static void write_seed(const char *target, const char *name, const void *data,
		       size_t len)
{
	char path[4096];

	if (len > SEED_MAX)
		die("a seed is over 64 KiB");
	int n = snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (n < 0 || (size_t)n >= sizeof(path))
		die("path too long");
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("cannot create a corpus directory");
	n = snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		die("path too long");
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		die("cannot create a seed file");
	if ((len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die("cannot write a seed file");
}

static void write_str(const char *target, const char *name, const char *s)
{
	write_seed(target, name, s, strlen(s));
}

/* --------------------------------------------------- envelopes, by field */

/* Every field of an envelope in owned memory, to change and re-sign. */
typedef struct env_fields {
	uint32_t version;
	uint8_t id[AMP_ENVELOPE_ID_BYTES];
	char sender[AMP_DID_MAX + 1];
	uint8_t sealed[8];
	size_t sealed_len;
	size_t n;
	char rdid[MAX_RCPT][AMP_DID_MAX + 1];
	uint8_t wk[MAX_RCPT][AMP_WRAPPED_KEY_BYTES];
	uint64_t created, expires;
	uint32_t lane;
	char ctype[AMP_CONTENT_TYPE_MAX + 1];
	uint64_t padded_size;
	uint8_t pnonce[AMP_NONCE_BYTES];
	uint8_t *ct;
	size_t ct_len;
	uint8_t sig[AMP_SIG_BYTES];
	uint8_t content_key[32]; /* known when we sealed it */
	/* Encoded lengths, normally the full sizes; shortened by the
	 * decoder-refusal seeds.  wk0_len applies to recipient 0 only. */
	size_t id_len, pnonce_len, sig_len, wk0_len;
} env_fields;

static void copy_str(char *dst, size_t size, const char *src)
{
	if (src == NULL || strlen(src) >= size)
		die("string field too long");
	memcpy(dst, src, strlen(src) + 1);
}

static env_fields *fields_from(const uint8_t *buf, size_t len)
{
	Amp__V1__Envelope *pb = amp__v1__envelope__unpack(NULL, len, buf);
	if (pb == NULL || pb->header == NULL)
		die("cannot unpack our own envelope");
	const Amp__V1__EnvelopeHeader *h = pb->header;
	env_fields *f = xcalloc(1, sizeof(*f));
	if (h->envelope_id.len != sizeof(f->id) || h->n_recipients > MAX_RCPT ||
	    h->payload_nonce.len != sizeof(f->pnonce) ||
	    pb->signature.len != sizeof(f->sig))
		die("our own envelope has odd field sizes");
	f->version = h->version;
	memcpy(f->id, h->envelope_id.data, sizeof(f->id));
	copy_str(f->sender, sizeof(f->sender), h->sender);
	f->n = h->n_recipients;
	for (size_t i = 0; i < f->n; i++) {
		copy_str(f->rdid[i], sizeof(f->rdid[i]), h->recipients[i]->did);
		memcpy(f->wk[i], h->recipients[i]->wrapped_key.data,
		       AMP_WRAPPED_KEY_BYTES);
	}
	f->created = h->created;
	f->expires = h->expires;
	f->lane = (uint32_t)h->lane;
	copy_str(f->ctype, sizeof(f->ctype), h->content_type);
	f->padded_size = h->padded_size;
	memcpy(f->pnonce, h->payload_nonce.data, sizeof(f->pnonce));
	f->ct_len = pb->ciphertext.len;
	f->ct = xcalloc(1, f->ct_len);
	memcpy(f->ct, pb->ciphertext.data, f->ct_len);
	memcpy(f->sig, pb->signature.data, sizeof(f->sig));
	f->id_len = sizeof(f->id);
	f->pnonce_len = sizeof(f->pnonce);
	f->sig_len = sizeof(f->sig);
	f->wk0_len = AMP_WRAPPED_KEY_BYTES;
	amp__v1__envelope__free_unpacked(pb, NULL);
	return f;
}

static void fields_free(env_fields *f)
{
	free(f->ct);
	free(f);
}

/* Protobuf encoding of f; *len_r set; free with free(). */
static uint8_t *fields_pack(const env_fields *f, size_t *len_r)
{
	Amp__V1__Recipient *rs = xcalloc(f->n + 1, sizeof(*rs));
	Amp__V1__Recipient **rps = xcalloc(f->n + 1, sizeof(*rps));
	Amp__V1__EnvelopeHeader h;
	Amp__V1__Envelope env;

	for (size_t i = 0; i < f->n; i++) {
		amp__v1__recipient__init(&rs[i]);
		rs[i].did = (char *)f->rdid[i];
		rs[i].wrapped_key.data = (uint8_t *)f->wk[i];
		rs[i].wrapped_key.len = i == 0 ? f->wk0_len
						: AMP_WRAPPED_KEY_BYTES;
		rps[i] = &rs[i];
	}
	amp__v1__envelope_header__init(&h);
	h.version = f->version;
	h.envelope_id.data = (uint8_t *)f->id;
	h.envelope_id.len = f->id_len;
	h.sender = (char *)f->sender;
	h.sealed_sender.data = (uint8_t *)f->sealed;
	h.sealed_sender.len = f->sealed_len;
	h.n_recipients = f->n;
	h.recipients = rps;
	h.created = f->created;
	h.expires = f->expires;
	h.lane = (Amp__V1__Lane)f->lane;
	h.content_type = (char *)f->ctype;
	h.padded_size = f->padded_size;
	h.payload_nonce.data = (uint8_t *)f->pnonce;
	h.payload_nonce.len = f->pnonce_len;
	amp__v1__envelope__init(&env);
	env.header = &h;
	env.ciphertext.data = f->ct;
	env.ciphertext.len = f->ct_len;
	env.signature.data = (uint8_t *)f->sig;
	env.signature.len = f->sig_len;
	size_t len = amp__v1__envelope__get_packed_size(&env);
	uint8_t *out = xcalloc(1, len);
	amp__v1__envelope__pack(&env, out);
	free(rs);
	free(rps);
	*len_r = len;
	return out;
}

/* lp(x) of §1 into p; returns the bytes written. */
static size_t lp(uint8_t *p, const void *x, size_t n)
{
	put_u32(p, (uint32_t)n);
	memcpy(p + 4, x, n);
	return 4 + n;
}

/* §5.5 from the protocol text, then Ed25519 with `who`'s key. */
static void fields_sign(env_fields *f, fuzz_who who)
{
	const amp_identity *id = fuzz_identity(who);
	size_t cap = 4096 + f->n * (4 + AMP_DID_MAX + 4 + AMP_WRAPPED_KEY_BYTES);
	uint8_t *m = xcalloc(1, cap), *p = m;

	memcpy(p, "AMPv1-sig", 9);
	p += 9;
	put_u32(p, f->version);
	p += 4;
	p += lp(p, f->id, sizeof(f->id));
	p += lp(p, f->sender, strlen(f->sender));
	p += lp(p, f->sealed, f->sealed_len);
	put_u64(p, f->created);
	p += 8;
	put_u64(p, f->expires);
	p += 8;
	put_u32(p, f->lane);
	p += 4;
	p += lp(p, f->ctype, strlen(f->ctype));
	put_u64(p, f->padded_size);
	p += 8;
	p += lp(p, f->pnonce, sizeof(f->pnonce));
	put_u32(p, (uint32_t)f->n);
	p += 4;
	for (size_t i = 0; i < f->n; i++) {
		p += lp(p, f->rdid[i], strlen(f->rdid[i]));
		p += lp(p, f->wk[i], AMP_WRAPPED_KEY_BYTES);
	}
	crypto_generichash(p, 32, f->ct, f->ct_len, NULL, 0);
	p += 32;
	crypto_sign_detached(f->sig, NULL, m, (size_t)(p - m), id->sign_sk);
	free(m);
}

/* Padmé of §5.3 (L >= 2). */
static uint64_t padme(uint64_t L)
{
	unsigned E = 0, S = 0;
	while ((L >> (E + 1)) != 0)
		E++;
	while ((E >> S) != 0)
		S++;
	if (E < 2)
		return L;
	uint64_t mask = (UINT64_C(1) << (E - S)) - 1;
	return (L + mask) & ~mask;
}

/* Replace the payload: padded = u32(zlen) ‖ z ‖ zeros, or a given padded
 * plaintext; encrypt under f's content key (§5.3). */
static void fields_set_padded(env_fields *f, const uint8_t *padded,
			      size_t padded_len)
{
	uint8_t ad[512];
	size_t n = 0;

	memcpy(ad, "AMPv1-payload", 13);
	n = 13;
	n += lp(ad + n, f->id, sizeof(f->id));
	n += lp(ad + n, f->sender, strlen(f->sender));
	n += lp(ad + n, f->ctype, strlen(f->ctype));
	free(f->ct);
	f->ct_len = padded_len + 16;
	f->ct = xcalloc(1, f->ct_len);
	crypto_aead_xchacha20poly1305_ietf_encrypt(f->ct, NULL, padded,
						   padded_len, ad, n, NULL,
						   f->pnonce, f->content_key);
	f->padded_size = padded_len;
}

static void fields_set_z(env_fields *f, const uint8_t *z, size_t zlen)
{
	uint64_t padded = padme(4 + zlen);
	if (padded < 256)
		padded = 256;
	uint8_t *buf = xcalloc(1, (size_t)padded);
	put_u32(buf, (uint32_t)zlen);
	if (zlen > 0)
		memcpy(buf + 4, z, zlen);
	fields_set_padded(f, buf, (size_t)padded);
	free(buf);
}

/* amp_seal with a deterministic rng; returns the fields (content key set). */
static env_fields *seal(const char *name, fuzz_who from, const fuzz_who *to,
			size_t n, const amp_seal_params *params,
			const void *body, size_t len)
{
	amp_public_identity rcpt[3];
	amp_seal_params p = *params;
	const char *err = NULL;
	uint8_t *env = NULL;
	size_t env_len = 0;
	seal_rng rng;

	for (size_t i = 0; i < n; i++)
		rcpt[i] = fuzz_identity(to[i])->pub;
	seal_rng_init(&rng, name);
	p.rng = seal_rng_fill;
	p.rng_ctx = &rng;
	if (p.created == 0)
		p.created = CREATED;
	if (amp_seal(NULL, fuzz_identity(from), rcpt, n, &p, body, len, &env,
		     &env_len, &err) != AMP_OK)
		die(err);
	env_fields *f = fields_from(env, env_len);
	memcpy(f->content_key, rng.content_key, 32);
	amp_free(env);
	return f;
}

/* Self-check: does the seed reach the result it was made for?  Decode,
 * then (if it decodes) open as fuzz-envelope does, as alice at FUZZ_NOW. */
static void expect(const char *name, const uint8_t *b, size_t len,
		   amp_err want)
{
	const amp_identity *me = fuzz_identity(FUZZ_ALICE);
	amp_envelope *env = NULL;
	const char *err = "";
	uint8_t *body = NULL;
	size_t body_len;

	amp_err e = amp_envelope_decode(b, len, &env, &err);
	if (e == AMP_OK) {
		e = amp_envelope_open(NULL, env, me, &me->pub, FUZZ_NOW, &body,
				      &body_len, &err);
		amp_free(body);
		amp_envelope_free(&env);
	}
	if (e != want) {
		fprintf(stderr, "make-seeds: %s gives %s (%s), not %s\n", name,
			amp_err_name(e), err, amp_err_name(want));
		exit(1);
	}
}

/* Write f as an envelope seed, check it gives `want`, and when armor is
 * set write it armoured too. */
static void emit(const char *name, const env_fields *f, bool armor,
		 amp_err want)
{
	size_t len, tlen;
	uint8_t *b = fields_pack(f, &len);
	char *t = NULL;

	write_seed("envelope", name, b, len);
	expect(name, b, len, want);
	if (armor) {
		if (amp_armor_encode(b, len, &t, &tlen) != AMP_OK)
			die("cannot armour");
		write_seed("armor", name, t, tlen);
		amp_free(t);
	}
	free(b);
}

static void write_fields(const char *name, const env_fields *f, amp_err want)
{
	size_t len;
	uint8_t *b = fields_pack(f, &len);
	write_seed("envelope", name, b, len);
	expect(name, b, len, want);
	free(b);
}

static const char mail[] =
	"From: alice@example.org\r\nTo: alice@example.org\r\n"
	"Subject: fuzz seed\r\n\r\nHello from the fuzz corpus.\r\n";

/* zstd frame of src with content size flag and window log as given. */
static uint8_t *zstd_frame(const void *src, size_t len, bool size_flag,
			   int window_log, size_t *zlen_r)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(len) + 64;
	uint8_t *z = xcalloc(1, cap);
	if (c == NULL)
		die("zstd");
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, size_flag ? 1 : 0);
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
	ZSTD_outBuffer out = { z, cap, 0 };
	ZSTD_inBuffer in = { src, len, 0 };
	if (window_log != 0) {
		/* Stream it so the window is not shrunk to the input. */
		ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
		if (ZSTD_isError(ZSTD_compressStream2(c, &out, &in,
						      ZSTD_e_continue)) ||
		    in.pos != in.size)
			die("zstd");
	}
	size_t r;
	do {
		r = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
		if (ZSTD_isError(r))
			die("zstd");
	} while (r != 0);
	ZSTD_freeCCtx(c);
	*zlen_r = out.pos;
	return z;
}

/* Valid envelopes from libamp's amp_seal. */
static void seeds_sealed(void)
{
	amp_seal_params p = { 0 };
	env_fields *f;
	const fuzz_who self[] = { FUZZ_ALICE };
	const fuzz_who three[] = { FUZZ_BOB, FUZZ_ALICE, FUZZ_CAROL };
	const fuzz_who others[] = { FUZZ_BOB, FUZZ_CAROL };

	f = seal("self-1rcpt", FUZZ_ALICE, self, 1, &p, mail, sizeof(mail) - 1);
	emit("self-1rcpt", f, true, AMP_OK);
	fields_free(f);

	p.lane = AMP_LANE_CRITICAL;
	f = seal("self-3rcpt", FUZZ_ALICE, three, 3, &p, mail, sizeof(mail) - 1);
	emit("self-3rcpt", f, true, AMP_OK);
	fields_free(f);

	p = (amp_seal_params){ .lane = AMP_LANE_BULK,
			       .content_type = "text/plain; charset=utf-8",
			       .expires = FUZZ_NOW + 86400 };
	f = seal("self-expires-later", FUZZ_ALICE, self, 1, &p, "hi", 2);
	emit("self-expires-later", f, false, AMP_OK);
	fields_free(f);

	p = (amp_seal_params){ .created = FUZZ_NOW - 7200,
			       .expires = FUZZ_NOW - 60 };
	f = seal("self-expired", FUZZ_ALICE, self, 1, &p, mail, sizeof(mail) - 1);
	emit("self-expired", f, false, AMP_E_EXPIRED);
	fields_free(f);

	p = (amp_seal_params){ .created = FUZZ_NOW + 3600 };
	f = seal("self-future", FUZZ_ALICE, self, 1, &p, mail, sizeof(mail) - 1);
	emit("self-future", f, false, AMP_E_FUTURE);
	fields_free(f);

	p = (amp_seal_params){ 0 };
	f = seal("not-recipient", FUZZ_ALICE, others, 2, &p, mail,
		 sizeof(mail) - 1);
	emit("not-recipient", f, false, AMP_E_NOT_RECIPIENT);
	fields_free(f);

	f = seal("from-bob", FUZZ_BOB, self, 1, &p, mail, sizeof(mail) - 1);
	emit("from-bob", f, false, AMP_E_SENDER_MISMATCH);
	fields_free(f);

	f = seal("self-empty-body", FUZZ_ALICE, self, 1, &p, "", 0);
	emit("self-empty-body", f, true, AMP_OK);
	fields_free(f);

	/* 12 KiB of text at a high level; 3 KiB of noise that will not
	 * compress (a padded size above the 256 minimum). */
	char *text = xcalloc(1, 12 * 1024);
	for (size_t i = 0; i < 12 * 1024; i++)
		text[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
	p = (amp_seal_params){ .zstd_level = 19 };
	f = seal("self-text-12k", FUZZ_ALICE, self, 1, &p, text, 12 * 1024);
	emit("self-text-12k", f, false, AMP_OK);
	fields_free(f);
	free(text);

	uint8_t noise[3000];
	det_buf(noise, sizeof(noise));
	p = (amp_seal_params){ 0 };
	f = seal("self-noise-3k", FUZZ_ALICE, self, 1, &p, noise, sizeof(noise));
	emit("self-noise-3k", f, true, AMP_OK);
	fields_free(f);

	/* Many recipients: alice among 150 made-up ones (their wrapped keys
	 * are sealed to bob's key; only the DIDs matter to the decoder). */
	f = seal("self-150rcpt", FUZZ_ALICE, self, 1, &p, mail,
		 sizeof(mail) - 1);
	for (size_t i = 1; i < 150; i++) {
		snprintf(f->rdid[i], sizeof(f->rdid[i]),
			 "did:aftersmtp:r%zu.example.org:user-%zu", i % 7, i);
		memcpy(f->wk[i], f->wk[0], AMP_WRAPPED_KEY_BYTES);
		f->wk[i][0] ^= (uint8_t)i;
	}
	f->n = 150;
	fields_sign(f, FUZZ_ALICE);
	emit("self-150rcpt", f, false, AMP_OK);
	fields_free(f);
}

/* Validly signed by alice, to alice, with something wrong behind the
 * signature: each reaches one failure of §5.6 steps 7-9. */
static void seeds_signed_broken(void)
{
	amp_seal_params p = { 0 };
	const fuzz_who self[] = { FUZZ_ALICE };
	env_fields *f;
	uint8_t *z, *buf;
	size_t zlen;

#define FRESH(name)                                                           \
	f = seal(name, FUZZ_ALICE, self, 1, &p, mail, sizeof(mail) - 1)
#define DONE(name, want)                                                      \
	do {                                                                  \
		fields_sign(f, FUZZ_ALICE);                                   \
		emit(name, f, false, want);                                   \
		fields_free(f);                                               \
	} while (0)

	FRESH("signed-bad-wrapped-key");
	f->wk[0][40] ^= 0x01;
	DONE("signed-bad-wrapped-key", AMP_E_KEY_UNWRAP);

	FRESH("signed-bad-ciphertext");
	f->ct[10] ^= 0x80;
	DONE("signed-bad-ciphertext", AMP_E_DECRYPT);

	/* z length says more than the padded size holds. */
	FRESH("signed-zlen-too-big");
	buf = xcalloc(1, 256);
	put_u32(buf, 253);
	fields_set_padded(f, buf, 256);
	free(buf);
	DONE("signed-zlen-too-big", AMP_E_PADDING);

	/* A non-zero padding byte after a valid frame. */
	FRESH("signed-nonzero-padding");
	z = zstd_frame(mail, sizeof(mail) - 1, true, 0, &zlen);
	buf = xcalloc(1, 512);
	put_u32(buf, (uint32_t)zlen);
	memcpy(buf + 4, z, zlen);
	buf[511] = 1;
	fields_set_padded(f, buf, 512);
	free(buf);
	DONE("signed-nonzero-padding", AMP_E_PADDING);

	/* Trailing bytes after the frame, and two frames. */
	FRESH("signed-zstd-trailing");
	buf = xcalloc(1, zlen + 3);
	memcpy(buf, z, zlen);
	memcpy(buf + zlen, "xyz", 3);
	fields_set_z(f, buf, zlen + 3);
	free(buf);
	DONE("signed-zstd-trailing", AMP_E_DECOMPRESS);

	FRESH("signed-zstd-two-frames");
	buf = xcalloc(1, 2 * zlen);
	memcpy(buf, z, zlen);
	memcpy(buf + zlen, z, zlen);
	fields_set_z(f, buf, 2 * zlen);
	free(buf);
	DONE("signed-zstd-two-frames", AMP_E_DECOMPRESS);

	/* A truncated frame. */
	FRESH("signed-zstd-truncated");
	fields_set_z(f, z, zlen - 2);
	DONE("signed-zstd-truncated", AMP_E_DECOMPRESS);
	free(z);

	FRESH("signed-not-zstd");
	fields_set_z(f, (const uint8_t *)"plain text, no frame", 20);
	DONE("signed-not-zstd", AMP_E_DECOMPRESS);

	/* A skippable frame (magic 0x184D2A50, 4 bytes of content). */
	FRESH("signed-zstd-skippable");
	static const uint8_t skip[] = { 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0,
					'a', 'b', 'c', 'd' };
	fields_set_z(f, skip, sizeof(skip));
	DONE("signed-zstd-skippable", AMP_E_DECOMPRESS);

	/* z of length 0: an empty payload is not a frame. */
	FRESH("signed-zstd-empty");
	fields_set_z(f, NULL, 0);
	DONE("signed-zstd-empty", AMP_E_DECOMPRESS);

	/* No content size in the header: the output buffer grows from
	 * 64 KiB (200 KiB of text) — a valid envelope. */
	char *text = xcalloc(1, 200 * 1024);
	for (size_t i = 0; i < 200 * 1024; i++)
		text[i] = (char)('a' + (i * 7 + i / 1000) % 26);
	FRESH("signed-zstd-unknown-size");
	z = zstd_frame(text, 200 * 1024, false, 0, &zlen);
	fields_set_z(f, z, zlen);
	free(z);
	DONE("signed-zstd-unknown-size", AMP_OK);
	free(text);

	/* Window of 2^27 > the 2^25 the reader allows. */
	FRESH("signed-zstd-big-window");
	z = zstd_frame(mail, sizeof(mail) - 1, false, 27, &zlen);
	fields_set_z(f, z, zlen);
	free(z);
	DONE("signed-zstd-big-window", AMP_E_DECOMPRESS);

	/* Bombs: 33 MiB of zeros, with and without a declared size. */
	const size_t bomb = 33u * 1024u * 1024u;
	uint8_t *zeros = xcalloc(1, bomb);
	FRESH("signed-bomb-declared");
	z = zstd_frame(zeros, bomb, true, 0, &zlen);
	fields_set_z(f, z, zlen);
	free(z);
	DONE("signed-bomb-declared", AMP_E_TOO_LARGE);

	FRESH("signed-bomb-undeclared");
	z = zstd_frame(zeros, bomb, false, 0, &zlen);
	fields_set_z(f, z, zlen);
	free(z);
	DONE("signed-bomb-undeclared", AMP_E_TOO_LARGE);
	free(zeros);
#undef FRESH
#undef DONE
}

/* Decoder refusals (steps 2-3); signatures are irrelevant here. */
static void seeds_structure(void)
{
	amp_seal_params p = { 0 };
	const fuzz_who two[] = { FUZZ_ALICE, FUZZ_BOB };
	env_fields *f = seal("structure", FUZZ_ALICE, two, 2, &p, mail,
			     sizeof(mail) - 1);
	env_fields *g = xcalloc(1, sizeof(*g));
	uint8_t *b;
	size_t len;

#define VARIANT(name, want, change)                                           \
	do {                                                                  \
		uint8_t *ct_ = g->ct;                                         \
		memcpy(g, f, sizeof(*g));                                     \
		g->ct = ct_;                                                  \
		free(g->ct);                                                  \
		g->ct = xcalloc(1, f->ct_len);                                \
		memcpy(g->ct, f->ct, f->ct_len);                              \
		change;                                                       \
		write_fields(name, g, want);                                  \
	} while (0)

	g->ct = NULL;
	VARIANT("bad-version-2", AMP_E_VERSION,
		g->version = 2);
	VARIANT("bad-sealed-sender", AMP_E_UNSUPPORTED,
		(g->sealed_len = 3, memcpy(g->sealed, "abc", 3)));
	VARIANT("bad-duplicate-recipient", AMP_E_DUPLICATE_RECIPIENT,
		memcpy(g->rdid[1], g->rdid[0], sizeof(g->rdid[0])));
	VARIANT("bad-sender-did", AMP_E_BAD_DID,
		g->sender[14] = 'E');
	VARIANT("bad-recipient-did", AMP_E_BAD_DID,
		copy_str(g->rdid[1], sizeof(g->rdid[1]), "did:aftersmtp:example..org:bob"));
	VARIANT("bad-lane-3", AMP_E_MALFORMED,
		g->lane = 3);
	VARIANT("bad-content-type", AMP_E_MALFORMED,
		copy_str(g->ctype, sizeof(g->ctype), "text/plain\t"));
	VARIANT("bad-expires-before-created", AMP_E_MALFORMED,
		g->expires = g->created);
	VARIANT("bad-padded-size", AMP_E_MALFORMED,
		g->padded_size += 16);
	VARIANT("bad-padded-small", AMP_E_MALFORMED,
		(g->padded_size = 16, g->ct_len = 32));
	VARIANT("bad-no-recipients", AMP_E_MALFORMED,
		g->n = 0);
	VARIANT("bad-ciphertext-short", AMP_E_MALFORMED,
		g->ct_len -= 1);
	VARIANT("bad-id-15", AMP_E_MALFORMED,
		g->id_len = 15);
	VARIANT("bad-nonce-23", AMP_E_MALFORMED,
		g->pnonce_len = 23);
	VARIANT("bad-signature-63", AMP_E_MALFORMED,
		g->sig_len = 63);
	VARIANT("bad-wrapped-key-71", AMP_E_MALFORMED,
		g->wk0_len = 71);
	VARIANT("bad-padded-over-40m", AMP_E_TOO_LARGE,
		g->padded_size = AMP_PADDED_MAX + 256);
	VARIANT("bad-signature", AMP_E_BAD_SIGNATURE,
		g->sig[5] ^= 0x10);
	fields_free(g);

	/* Byte-level: truncated, an unknown field, fields out of order. */
	b = fields_pack(f, &len);
	write_seed("envelope", "bad-truncated", b, len / 2);
	expect("bad-truncated", b, len / 2, AMP_E_TRUNCATED);
	uint8_t *u = xcalloc(1, len + 2);
	memcpy(u, b, len);
	u[len] = 0x20; /* field 4, varint */
	u[len + 1] = 0x01;
	write_seed("envelope", "bad-unknown-field", u, len + 2);
	expect("bad-unknown-field", u, len + 2, AMP_E_NONCANONICAL);
	free(u);
	/* The three top-level fields are length-delimited; reverse them. */
	size_t spans[3][2], k = 0, pos = 0;
	while (pos < len && k < 3) {
		size_t start = pos, v = 0;
		unsigned shift = 0;
		pos++; /* one-byte key */
		while (b[pos] & 0x80) {
			v |= (size_t)(b[pos++] & 0x7f) << shift;
			shift += 7;
		}
		v |= (size_t)b[pos++] << shift;
		pos += v;
		spans[k][0] = start;
		spans[k][1] = pos;
		k++;
	}
	if (k != 3 || pos != len)
		die("cannot split our own envelope");
	u = xcalloc(1, len);
	size_t o = 0;
	for (size_t i = 3; i-- > 0;) {
		memcpy(u + o, b + spans[i][0], spans[i][1] - spans[i][0]);
		o += spans[i][1] - spans[i][0];
	}
	write_seed("envelope", "bad-noncanonical-order", u, len);
	expect("bad-noncanonical-order", u, len, AMP_E_NONCANONICAL);
	/* Ciphertext and signature without the header (field 1). */
	size_t hl = spans[0][1] - spans[0][0];
	write_seed("envelope", "bad-no-header", b + hl, len - hl);
	expect("bad-no-header", b + hl, len - hl, AMP_E_MALFORMED);
	/* The header field sent with a wire type other than length-delimited:
	 * fixed64 (schema mismatch) and a group (not protobuf we accept). */
	memcpy(u, b, len);
	u[0] = 0x09;
	write_seed("envelope", "bad-header-fixed64", u, len);
	expect("bad-header-fixed64", u, len, AMP_E_MALFORMED);
	u[0] = 0x0b;
	write_seed("envelope", "bad-wire-group", u, len);
	expect("bad-wire-group", u, len, AMP_E_MALFORMED);
	free(u);
	free(b);
	fields_free(f);
#undef VARIANT
}

/* Armour-only seeds: line-ending and whitespace variants, broken ones. */
static void seeds_armor(void)
{
	amp_seal_params p = { 0 };
	const fuzz_who self[] = { FUZZ_ALICE };
	env_fields *f = seal("armor", FUZZ_ALICE, self, 1, &p, "x", 1);
	size_t len, tlen;
	uint8_t *b = fields_pack(f, &len);
	char *t = NULL;

	if (amp_armor_encode(b, len, &t, &tlen) != AMP_OK)
		die("cannot armour");
	/* CRLF, leading and trailing whitespace, indented lines. */
	char *crlf = xcalloc(1, 2 * tlen + 16), *ind = xcalloc(1, 2 * tlen + 16);
	size_t c = 0, d = 0;
	memcpy(crlf, " \t\r\n", 4);
	c = 4;
	for (size_t i = 0; i < tlen; i++) {
		if (t[i] == '\n')
			crlf[c++] = '\r';
		crlf[c++] = t[i];
		ind[d++] = t[i];
		if (t[i] == '\n' && i + 1 < tlen)
			ind[d++] = ' ';
	}
	memcpy(crlf + c, "\r\n\r\n", 4);
	write_seed("armor", "crlf-whitespace", crlf, c + 4);
	write_seed("armor", "indented-lines", ind, d);
	/* One long line, no END line, bad base64, bad padding. */
	size_t bl = strlen("-----BEGIN AMP ENVELOPE-----\n");
	d = 0;
	for (size_t i = 0; i < tlen; i++) {
		if (t[i] != '\n' || i < bl || i + 28 >= tlen)
			ind[d++] = t[i];
	}
	write_seed("armor", "one-line", ind, d);
	write_seed("armor", "no-end-line", t, tlen - 27);
	memcpy(ind, t, tlen);
	ind[bl + 5] = '*';
	write_seed("armor", "bad-base64", ind, tlen);
	write_str("armor", "tiny",
		  "-----BEGIN AMP ENVELOPE-----\naGVsbG8=\n"
		  "-----END AMP ENVELOPE-----\n");
	write_str("armor", "tiny-bad-bits",
		  "-----BEGIN AMP ENVELOPE-----\naGVsbG9=\n"
		  "-----END AMP ENVELOPE-----\n");
	write_str("armor", "empty-body",
		  "-----BEGIN AMP ENVELOPE-----\n-----END AMP ENVELOPE-----\n");
	write_str("armor", "end-only", "-----END AMP ENVELOPE-----\n");
	free(crlf);
	free(ind);
	amp_free(t);
	free(b);
	fields_free(f);
}

/* ------------------------------------------------------------------- DIDs */

static void seeds_did(void)
{
	static const char *const dids[] = {
		/* valid */
		"did:aftersmtp:example.org:alice",
		"did:aftersmtp:mail.example.co.uk:first.last-2_x",
		"did:aftersmtp:a:b",
		"did:aftersmtp:0.9:0_9",
		"did:aftersmtp:xn--bcher-kva.example:u",
		"did:aftersmtp:a-b.c-d.e:a.b.c",
		/* invalid (PROTOCOL.md §3.1 and around) */
		"did:aftersmtp:Example.org:alice",
		"did:aftersmtp:example..org:a",
		"did:aftersmtp:example.org:.alice",
		"did:aftersmtp:example.org:a..b",
		"did:aftersmtp:-x.org:a",
		"did:aftersmtp:x-.org:a",
		"did:aftersmtp:example.org",
		"did:aftersmtp:example.org:",
		"did:aftersmtp::alice",
		"did:aftersmtp:example.org.:alice",
		"did:aftersmtp:example.org:alice_",
		"did:aftersmtp:example.org:al:ice",
		"did:aftersmtp:example.org:al%20ice",
		"did:aftersmtp:exa_mple.org:alice",
		"did:web:example.org:alice",
		"DID:AFTERSMTP:EXAMPLE.ORG:ALICE",
		"did:aftersmtp:",
		"",
	};
	char name[32];

	for (size_t i = 0; i < sizeof(dids) / sizeof(dids[0]); i++) {
		snprintf(name, sizeof(name), "did-%02zu", i);
		write_str("did", name, dids[i]);
	}
	/* Bytes a C string cannot hold: an embedded NUL, a high byte. */
	write_seed("did", "nul-inside", "did:aftersmtp:example.org:al\0ice", 32);
	write_seed("did", "high-byte", "did:aftersmtp:example.org:\xc3\xa9", 28);

	/* A 63-byte label and a 64-byte local part, then one byte more. */
	char lab[65];
	memset(lab, 'a', 64);
	lab[64] = '\0';
	char big[AMP_DID_MAX + 2];
	snprintf(big, sizeof(big), "did:aftersmtp:%.63s.org:%.64s", lab, lab);
	write_str("did", "label-63-local-64", big);
	snprintf(big, sizeof(big), "did:aftersmtp:%.64s.org:a", lab);
	write_str("did", "label-64", big);
	snprintf(big, sizeof(big), "did:aftersmtp:a.org:%.64sb", lab);
	write_str("did", "local-65", big);

	/* The longest: 253-byte domain (4 labels) and 64-byte local part. */
	size_t n = 0;
	memcpy(big, "did:aftersmtp:", 14);
	n = 14;
	for (int l = 0; l < 4; l++) {
		size_t ll = l < 3 ? 63 : 61;
		memset(big + n, 'a' + l, ll);
		n += ll;
		big[n++] = l < 3 ? '.' : ':';
	}
	memset(big + n, 'z', 64);
	n += 64;
	write_seed("did", "longest", big, n);
	big[n] = 'z';
	write_seed("did", "longest-plus-one", big, n + 1);
	/* A 254-byte domain with a 1-byte local part: short, but refused. */
	memcpy(big + 14 + 253, "a:b", 3);
	write_seed("did", "domain-254", big, 14 + 256);
}

/* ---------------------------------------------------------- DID documents */

static char *dump(json_t *doc, size_t flags)
{
	char *s = json_dumps(doc, flags);
	if (s == NULL)
		die("json_dumps");
	return s;
}

static void seeds_diddoc(void)
{
	static const char *const names[] = { "alice", "bob", "carol" };
	const char *err = NULL;
	char *doc = NULL, *s;
	json_error_t jerr;

	for (int w = 0; w < 3; w++) {
		if (amp_did_document_export(&fuzz_identity((fuzz_who)w)->pub, &doc,
					    &err) != AMP_OK)
			die(err);
		write_str("diddoc", names[w], doc);
		amp_free(doc);
	}
	/* Variants of alice's document, edited as JSON. */
	if (amp_did_document_export(&fuzz_identity(FUZZ_ALICE)->pub, &doc,
				    &err) != AMP_OK)
		die(err);
	json_t *base = json_loads(doc, 0, &jerr);
	amp_free(doc);
	if (base == NULL)
		die("cannot reload our DID document");

	s = dump(base, JSON_COMPACT | JSON_SORT_KEYS);
	write_str("diddoc", "alice-compact-sorted", s);
	free(s);

#define VARIANT(name, change)                                                 \
	do {                                                                  \
		json_t *d = json_deep_copy(base);                             \
		json_t *vm = json_object_get(d, "verificationMethod");        \
		json_t *m0 = json_array_get(vm, 0);                           \
		json_t *m1 = json_array_get(vm, 1);                           \
		(void)m0;                                                     \
		(void)m1;                                                     \
		change;                                                       \
		s = dump(d, JSON_INDENT(1) | JSON_PRESERVE_ORDER);            \
		write_str("diddoc", name, s);                                 \
		free(s);                                                      \
		json_decref(d);                                               \
	} while (0)

	VARIANT("extra-members",
		(json_object_set_new(d, "service", json_array()),
		 json_object_set_new(m0, "extra", json_true())));
	VARIANT("methods-swapped",
		(json_incref(m0), json_array_remove(vm, 0),
		 json_array_append_new(vm, m0)));
	VARIANT("no-key-agreement", json_object_del(d, "keyAgreement"));
	VARIANT("no-authentication", json_object_del(d, "authentication"));
	VARIANT("wrong-controller",
		json_object_set_new(m1, "controller",
				    json_string("did:aftersmtp:example.org:bob")));
	VARIANT("wrong-curve",
		json_object_set_new(json_object_get(m1, "publicKeyJwk"), "crv",
				    json_string("P-256")));
	VARIANT("short-key",
		json_object_set_new(json_object_get(m0, "publicKeyJwk"), "x",
				    json_string("AAAA")));
	VARIANT("wrong-key-id",
		json_object_set_new(m0, "id",
				    json_string(FUZZ_DID_ALICE "#sig-0000000000000000")));
	VARIANT("two-sig-keys", json_array_append(vm, m0));
	VARIANT("bad-did",
		json_object_set_new(d, "id",
				    json_string("did:aftersmtp:Example.org:alice")));
	VARIANT("method-not-object", json_array_set_new(vm, 1, json_integer(7)));
	VARIANT("method-type-ed25519vk2018",
		json_object_set_new(m0, "type",
				    json_string("Ed25519VerificationKey2018")));
	json_decref(base);
#undef VARIANT

	write_str("diddoc", "dup-keys", "{\"id\": \"a\", \"id\": \"b\"}");
	write_str("diddoc", "not-json", "{\"id\": did:aftersmtp:example.org:a");
	write_str("diddoc", "empty-object", "{}");
	write_str("diddoc", "array", "[1, 2.5e3, null, true, \"\\u00e9\"]");
}

/* ---------------------------------------------------------- proof of work */

static void seeds_pow(void)
{
	const amp_public_identity *pub = &fuzz_identity(FUZZ_ALICE)->pub;
	static const struct {
		const char *name;
		uint32_t bits;
		uint64_t ts;
	} mint[] = {
		{ "valid-1", 1, FUZZ_NOW - 60 },
		{ "valid-8", 8, FUZZ_NOW - 3600 },
		{ "valid-12", 12, FUZZ_NOW },
		{ "valid-16", 16, FUZZ_NOW + 200 },
		{ "stale-8", 8, FUZZ_NOW - 2 * 86400 },
		{ "future-8", 8, FUZZ_NOW + 3600 },
	};
	char text[AMP_POW_TEXT_MAX + 1];
	const char *err = NULL;
	amp_pow_stamp st;

	for (size_t i = 0; i < sizeof(mint) / sizeof(mint[0]); i++) {
		if (amp_pow_mint(pub, mint[i].bits, mint[i].ts, 0, &st, &err) !=
			    AMP_OK ||
		    amp_pow_format(&st, text, sizeof(text)) != AMP_OK)
			die("cannot mint");
		write_str("pow", mint[i].name, text);
	}
	/* 4 bits claimed where the digest has fewer zeros, most likely. */
	write_str("pow", "wrong-counter", "amp-pow-v1:4:1767225600:0000000000000000");
	write_str("pow", "max", "amp-pow-v1:64:18446744073709551615:ffffffffffffffff");
	write_str("pow", "zero-ts", "amp-pow-v1:3:0:0000000000000001");
	write_str("pow", "bad-bits-0", "amp-pow-v1:0:1767225600:0000000000000000");
	write_str("pow", "bad-bits-65", "amp-pow-v1:65:1767225600:0000000000000000");
	write_str("pow", "bad-leading-zero", "amp-pow-v1:08:1767225600:0000000000000000");
	write_str("pow", "bad-upper-hex", "amp-pow-v1:8:1767225600:00000000000000AB");
	write_str("pow", "bad-15-hex", "amp-pow-v1:8:1767225600:000000000000000");
	write_str("pow", "bad-ts-overflow", "amp-pow-v1:8:18446744073709551616:0000000000000000");
	write_str("pow", "bad-prefix", "amp-pow-v2:8:1767225600:0000000000000000");
	write_str("pow", "bad-sign", "amp-pow-v1:+8:1767225600:0000000000000000");
	write_str("pow", "bad-too-long",
		  "amp-pow-v1:8:1767225600:0000000000000000:00000000000000000000");
}

/* --------------------------------------------------------------- keystore */

/* alice's keystore text with the ciphertext replaced by bob's secrets,
 * encrypted with the right passphrase and associated data: it decrypts,
 * but the secrets do not match the public keys. */
static char *keystore_mismatched(const char *ks)
{
	json_error_t jerr;
	json_t *doc = json_loads(ks, 0, &jerr);
	json_t *kdf = json_object_get(doc, "kdf");
	const amp_public_identity *pub = &fuzz_identity(FUZZ_ALICE)->pub;
	uint8_t salt[crypto_pwhash_SALTBYTES], nonce[AMP_NONCE_BYTES];
	uint8_t key[32], plain[64], ct[80], ad[512];
	char b64[128];
	size_t n = 0, blen;
	const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	const char *ssalt = json_string_value(json_object_get(kdf, "salt"));
	const char *snonce = json_string_value(json_object_get(doc, "nonce"));

	if (ssalt == NULL || snonce == NULL ||
	    sodium_base642bin(salt, sizeof(salt), ssalt, strlen(ssalt), NULL,
			      &blen, NULL, v) != 0 ||
	    sodium_base642bin(nonce, sizeof(nonce), snonce, strlen(snonce),
			      NULL, &blen, NULL, v) != 0)
		die("cannot read our keystore");
	if (crypto_pwhash(key, sizeof(key), FUZZ_PASSPHRASE,
			  strlen(FUZZ_PASSPHRASE), salt, 1, 8192,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		die("argon2id");
	memcpy(ad, "AMPv1-keystore", 14);
	n = 14;
	n += lp(ad + n, pub->did, strlen(pub->did));
	memcpy(ad + n, pub->sign_pk, 32);
	n += 32;
	memcpy(ad + n, pub->enc_pk, 32);
	n += 32;
	put_u64(ad + n, 1);
	n += 8;
	put_u64(ad + n, 8192);
	n += 8;
	memcpy(ad + n, salt, sizeof(salt));
	n += sizeof(salt);
	fuzz_secrets(FUZZ_BOB, plain, plain + 32);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, 64, ad, n,
						   NULL, nonce, key);
	sodium_bin2base64(b64, sizeof(b64), ct, sizeof(ct), v);
	json_object_set_new(doc, "ciphertext", json_string(b64));
	char *s = dump(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}

static void seeds_keystore(void)
{
	static const char pass[] = FUZZ_PASSPHRASE;
	const char *err = NULL;
	char *ks = NULL, *s;

	if (amp_keystore_seal(fuzz_identity(FUZZ_BOB), pass, sizeof(pass) - 1,
			      AMP_KDF_MIN, &ks, &err) != AMP_OK)
		die(err);
	write_str("keystore", "bob-min", ks);
	amp_free(ks);
	if (amp_keystore_seal(fuzz_identity(FUZZ_ALICE), "other", 5,
			      AMP_KDF_MIN, &ks, &err) != AMP_OK)
		die(err);
	write_str("keystore", "alice-min-other-passphrase", ks);
	amp_free(ks);
	/* Public read only: the target never runs Argon2id at 64 MiB. */
	if (amp_keystore_seal(fuzz_identity(FUZZ_CAROL), pass, sizeof(pass) - 1,
			      AMP_KDF_INTERACTIVE, &ks, &err) != AMP_OK)
		die(err);
	write_str("keystore", "carol-interactive", ks);
	amp_free(ks);

	if (amp_keystore_seal(fuzz_identity(FUZZ_ALICE), pass, sizeof(pass) - 1,
			      AMP_KDF_MIN, &ks, &err) != AMP_OK)
		die(err);
	write_str("keystore", "alice-min", ks);
	s = keystore_mismatched(ks);
	write_str("keystore", "alice-min-bob-secrets", s);
	free(s);

	/* Edited copies: a tampered DID (breaks the associated data), a
	 * wrong version, a KDF outside the caps, a missing member. */
	json_error_t jerr;
	json_t *base = json_loads(ks, 0, &jerr);
	amp_free(ks);
	if (base == NULL)
		die("cannot reload our keystore");
#define VARIANT(name, change)                                                 \
	do {                                                                  \
		json_t *d = json_deep_copy(base);                             \
		json_t *kdf = json_object_get(d, "kdf");                      \
		(void)kdf;                                                    \
		change;                                                       \
		s = dump(d, JSON_INDENT(2) | JSON_PRESERVE_ORDER);            \
		write_str("keystore", name, s);                               \
		free(s);                                                      \
		json_decref(d);                                               \
	} while (0)
	VARIANT("tampered-did",
		json_object_set_new(d, "did", json_string(FUZZ_DID_BOB)));
	VARIANT("version-2", json_object_set_new(d, "version", json_integer(2)));
	VARIANT("bad-did", json_object_set_new(d, "did",
					       json_string("did:aftersmtp:a..b:c")));
	VARIANT("ops-11", json_object_set_new(kdf, "opslimit", json_integer(11)));
	VARIANT("mem-too-small",
		json_object_set_new(kdf, "memlimit", json_integer(4096)));
	VARIANT("no-nonce", json_object_del(d, "nonce"));
	s = dump(base, JSON_COMPACT);
	write_str("keystore", "alice-min-compact", s);
	free(s);
	json_decref(base);
#undef VARIANT
	write_str("keystore", "not-json", "{\"type\": \"amp-keystore\",");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
		die("cannot create OUTDIR");
	if (randombytes_set_implementation(&det_impl) != 0)
		die("cannot replace the random source");
	fuzz_init();
	seeds_sealed();
	seeds_signed_broken();
	seeds_structure();
	seeds_armor();
	seeds_did();
	seeds_diddoc();
	seeds_pow();
	seeds_keystore();
	return 0;
}
