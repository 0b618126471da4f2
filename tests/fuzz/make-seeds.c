/*
 * make-seeds.c — writes the seed corpora of the libFuzzer targets:
 *
 *     fuzz-make-seeds OUTDIR       (normally tests/fuzz/corpus)
 *
 * creates OUTDIR/<target>/<name> for the targets envelope, armor, did,
 * diddoc, pow, keystore, request, response, routes and invite, overwriting
 * files of the same name and leaving every other file (regress-*
 * reproducers) alone.
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
 * Node-protocol seeds (request, response, invite) are signed for the fixed
 * session of fuzz-common.h (x, challenge, the node of example.org, its
 * invite key) with nodeproto.c, so the targets reach the paths behind a
 * valid auth, register and hello signature and an authentic invite.
 *
 * Limits: every seed stays under 64 KiB (the targets' -max_len) and the
 * whole corpus well under 1 MB.
 */
#include "fuzz-common.h"
#include "amp.pb-c.h"
#include "nodeproto.h"

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

/* ---------------------------------------------------------- node protocol */

/* The session of fuzz-common.h: x, challenge, the node, its invite key. */
static uint8_t s_x[NP_X_BYTES], s_ch[NP_CHALLENGE_BYTES], s_ikey[32];

static void write_frame(const char *target, const char *name,
			const Amp__V1__Frame *f)
{
	size_t n = amp__v1__frame__get_packed_size(f);
	uint8_t *b = xcalloc(1, n + 1);
	if (amp__v1__frame__pack(f, b) != n)
		die("pack");
	write_seed(target, name, b, n);
	free(b);
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
	return (ProtobufCBinaryData){ .len = n, .data = (uint8_t *)p };
}

/* A protobuf varint at p; returns its length. */
static size_t varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		p[n] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		n++;
		v >>= 7;
	} while (v != 0);
	return n;
}

static void seed_auth(const char *name, const amp_identity *id,
		      const uint8_t *challenge, size_t sig_len)
{
	uint8_t sig[AMP_SIG_BYTES];
	np_auth_sign(id, s_x, challenge, FUZZ_DID_NODE, sig);
	Amp__V1__AuthRequest a = AMP__V1__AUTH_REQUEST__INIT;
	a.did = (char *)id->pub.did;
	a.signature = bin(sig, sig_len);
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.request_id = 2;
	f.body_case = AMP__V1__FRAME__BODY_AUTH;
	f.auth = &a;
	write_frame("request", name, &f);
}

static char *stamp_text(const amp_public_identity *pub, uint32_t bits)
{
	static char text[AMP_POW_TEXT_MAX + 1];
	amp_pow_stamp st;
	const char *err = NULL;
	if (amp_pow_mint(pub, bits, FUZZ_NOW - 60, 0, &st, &err) != AMP_OK ||
	    amp_pow_format(&st, text, sizeof(text)) != AMP_OK)
		die("cannot mint");
	return text;
}

/* A RegisterRequest of id signed as §10.1 says; broken as asked. */
static void seed_register(const char *name, const amp_identity *id,
			  const char *doc_override, const char *stamp,
			  const char *invite, bool bad_proof, bool bad_sig)
{
	const amp_identity *node = fuzz_identity(FUZZ_NODE);
	const char *err = NULL;
	char *doc = NULL;
	uint8_t dh[32], proof[NP_ENC_PROOF_BYTES], sig[AMP_SIG_BYTES];
	if (amp_did_document_export(&id->pub, &doc, &err) != AMP_OK)
		die(err);
	const char *d = doc_override != NULL ? doc_override : doc;
	if (crypto_scalarmult(dh, id->enc_sk, node->pub.enc_pk) != 0)
		die("X25519");
	np_enc_proof(dh, s_ch, id->pub.did, proof);
	if (bad_proof)
		proof[0] ^= 1;
	if (np_register_sign(id, s_x, s_ch, d, stamp, invite, proof, sig) != 0)
		die("np_register_sign");
	if (bad_sig)
		sig[5] ^= 0x10;
	Amp__V1__RegisterRequest q = AMP__V1__REGISTER_REQUEST__INIT;
	q.did_document = (char *)d;
	q.pow_stamp = (char *)stamp;
	q.invite = (char *)invite;
	q.enc_proof = bin(proof, sizeof(proof));
	q.signature = bin(sig, sizeof(sig));
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.request_id = 3;
	f.body_case = AMP__V1__FRAME__BODY_REGISTER;
	f.register_ = &q;
	write_frame("request", name, &f);
	amp_free(doc);
}

/* Envelope bytes sealed by alice (free with free()). */
static uint8_t *sealed_bytes(const char *name, const fuzz_who *to, size_t n,
			     size_t *len_r)
{
	amp_seal_params p = { 0 };
	env_fields *f = seal(name, FUZZ_ALICE, to, n, &p, mail, sizeof(mail) - 1);
	uint8_t *b = fields_pack(f, len_r);
	fields_free(f);
	return b;
}

static void seeds_request(void)
{
	const amp_identity *alice = fuzz_identity(FUZZ_ALICE);
	const amp_identity *bob = fuzz_identity(FUZZ_BOB);
	const amp_identity *node = fuzz_identity(FUZZ_NODE);
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	char inv[NP_INVITE_MAX], old_inv[NP_INVITE_MAX];
	uint8_t other_ch[NP_CHALLENGE_BYTES];
	const char *err = NULL;

	Amp__V1__HelloRequest h = AMP__V1__HELLO_REQUEST__INIT;
	f.request_id = 1;
	f.body_case = AMP__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	write_frame("request", "hello", &f);

	seed_auth("auth-alice", alice, s_ch, AMP_SIG_BYTES);
	seed_auth("auth-bob", bob, s_ch, AMP_SIG_BYTES);
	seed_auth("auth-short-sig", alice, s_ch, AMP_SIG_BYTES - 1);
	memcpy(other_ch, s_ch, sizeof(other_ch));
	other_ch[3] ^= 0x40;
	seed_auth("auth-other-challenge", alice, other_ch, AMP_SIG_BYTES);
	/* a peer node: the node's keys under another domain's node DID */
	uint8_t seed[32], esk[32];
	amp_identity *peer = NULL;
	fuzz_secrets(FUZZ_NODE, seed, esk);
	if (amp_identity_from_secrets("did:aftersmtp:mail.example.net:node", seed,
				      esk, &peer, &err) != AMP_OK)
		die(err);
	seed_auth("auth-peer-node", peer, s_ch, AMP_SIG_BYTES);
	amp_identity_destroy(&peer);
	Amp__V1__AuthRequest a = AMP__V1__AUTH_REQUEST__INIT;
	a.did = "did:aftersmtp:Example.org:alice";
	f.request_id = 2;
	f.body_case = AMP__V1__FRAME__BODY_AUTH;
	f.auth = &a;
	write_frame("request", "auth-bad-did", &f);

	if (np_invite_make(s_ikey, FUZZ_NOW + 7 * 86400, inv) != 0 ||
	    np_invite_make(s_ikey, FUZZ_NOW - 1, old_inv) != 0)
		die("np_invite_make");
	char stamp[AMP_POW_TEXT_MAX + 1];
	memcpy(stamp, stamp_text(&alice->pub, 8), sizeof(stamp));
	seed_register("register-stamp", alice, NULL, stamp, "", false, false);
	seed_register("register-invite", bob, NULL, "", inv, false, false);
	seed_register("register-both", alice, NULL, stamp, inv, false, false);
	seed_register("register-neither", alice, NULL, "", "", false, false);
	seed_register("register-bad-proof", bob, NULL, "", inv, true, false);
	seed_register("register-bad-sig", alice, NULL, stamp, "", false, true);
	seed_register("register-expired-invite", bob, NULL, "", old_inv, false,
		      false);
	seed_register("register-reserved-node", node, NULL,
		      stamp_text(&node->pub, 8), "", false, false);
	seed_register("register-doc-not-json", alice, "{\"id\": ", stamp, "",
		      false, false);

	Amp__V1__LookupRequest l = AMP__V1__LOOKUP_REQUEST__INIT;
	f.request_id = 4;
	f.body_case = AMP__V1__FRAME__BODY_LOOKUP;
	f.lookup = &l;
	l.did = FUZZ_DID_ALICE;
	write_frame("request", "lookup-alice", &f);
	l.did = FUZZ_DID_CAROL;
	write_frame("request", "lookup-remote", &f);
	char longdid[AMP_DID_MAX + 40];
	memset(longdid, 'a', sizeof(longdid) - 1);
	memcpy(longdid, "did:aftersmtp:example.org:", 26);
	longdid[sizeof(longdid) - 1] = '\0';
	l.did = longdid;
	write_frame("request", "lookup-too-long", &f);

	const fuzz_who self[] = { FUZZ_ALICE };
	const fuzz_who three[] = { FUZZ_BOB, FUZZ_ALICE, FUZZ_CAROL };
	size_t elen;
	uint8_t *env = sealed_bytes("deliver-self", self, 1, &elen);
	Amp__V1__DeliverRequest d = AMP__V1__DELIVER_REQUEST__INIT;
	d.envelope = bin(env, elen);
	f.request_id = 5;
	f.body_case = AMP__V1__FRAME__BODY_DELIVER;
	f.deliver = &d;
	write_frame("request", "deliver-self", &f);
	free(env);
	env = sealed_bytes("deliver-3rcpt", three, 3, &elen);
	d.envelope = bin(env, elen);
	write_frame("request", "deliver-3rcpt", &f);
	free(env);
	d.envelope = bin("not an envelope", 15);
	write_frame("request", "deliver-garbage", &f);

	Amp__V1__FetchRequest fr = AMP__V1__FETCH_REQUEST__INIT;
	fr.cursor = 7;
	fr.limit = 100;
	fr.wait_ms = 30000;
	f.request_id = 6;
	f.body_case = AMP__V1__FRAME__BODY_FETCH;
	f.fetch = &fr;
	write_frame("request", "fetch", &f);
	fr.cursor = UINT64_MAX;
	fr.limit = UINT32_MAX;
	fr.wait_ms = UINT32_MAX;
	f.request_id = UINT64_MAX;
	write_frame("request", "fetch-max", &f);

	uint64_t seqs[] = { 1, 2, 3, 1000000, UINT64_MAX };
	Amp__V1__AckRequest ak = AMP__V1__ACK_REQUEST__INIT;
	ak.seq = seqs;
	ak.n_seq = 5;
	f.request_id = 7;
	f.body_case = AMP__V1__FRAME__BODY_ACK;
	f.ack = &ak;
	write_frame("request", "ack", &f);
	ak.n_seq = 0;
	write_frame("request", "ack-empty", &f);

	/* Encodings written by hand. */
	static const uint8_t two[] = { 0x08, 0x01, 0x12, 0x00, 0x1a, 0x02, 0x0a, 0x00 };
	write_seed("request", "two-bodies", two, sizeof(two));
	static const uint8_t unknown[] = { 0x08, 0x01, 0x12, 0x02, 0x48, 0x05,
					   0x48, 0x00, 0xa2, 0x06, 0x03, 'a', 'b', 'c',
					   0x75, 1, 2, 3, 4 };
	write_seed("request", "unknown-fields", unknown, sizeof(unknown));
	static const uint8_t longvar[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0xff, 0x01, 0x12, 0x00 };
	write_seed("request", "varint-10-bytes", longvar, sizeof(longvar));
	static const uint8_t badvar[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0x01 };
	write_seed("request", "varint-11-bytes", badvar, sizeof(badvar));
	static const uint8_t unpacked[] = { 0x42, 0x06, 0x08, 0x01, 0x08, 0x02,
					    0x08, 0x03 };
	write_seed("request", "ack-unpacked", unpacked, sizeof(unpacked));
	static const uint8_t group[] = { 0x08, 0x01, 0x13, 0x14 };
	write_seed("request", "wire-group", group, sizeof(group));
	static const uint8_t overlen[] = { 0x08, 0x01, 0x22, 0xff, 0xff, 0xff,
					   0xff, 0x0f, 0x0a };
	write_seed("request", "length-past-end", overlen, sizeof(overlen));
	write_seed("request", "empty", "", 0);

	/* Budget edge: 2-byte unknown fields cost more than 1 MiB to scan. */
	size_t n = 0;
	uint8_t *big = xcalloc(1, SEED_MAX);
	while (n + 2 <= 60000) {
		big[n++] = 0x48;
		big[n++] = 0x00;
	}
	write_seed("request", "budget-unknown-fields", big, n);
	/* ... and an ack of 20000 unpacked seqs (inside one submessage). */
	n = 0;
	big[n++] = 0x42;
	n += varint(big + n, 40000);
	for (int i = 0; i < 20000; i++) {
		big[n++] = 0x08;
		big[n++] = (uint8_t)(i & 0x7f);
	}
	write_seed("request", "budget-ack-unpacked", big, n);
	free(big);
}

static void seed_response(const char *name, Amp__V1__Response *r)
{
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.request_id = 9;
	f.body_case = AMP__V1__FRAME__BODY_RESPONSE;
	f.response = r;
	write_frame("response", name, &f);
}

static void seed_hello_result(const char *name, const amp_identity *node,
			      uint64_t signed_time, size_t sign_pk_len)
{
	uint8_t sig[AMP_SIG_BYTES];
	np_hello_sign(node, s_x, s_ch, signed_time, sig);
	Amp__V1__HelloResult hr = AMP__V1__HELLO_RESULT__INIT;
	hr.node_did = (char *)node->pub.did;
	hr.node_sign_pk = bin(node->pub.sign_pk, sign_pk_len);
	hr.node_enc_pk = bin(node->pub.enc_pk, 32);
	hr.challenge = bin(s_ch, sizeof(s_ch));
	hr.server_time = FUZZ_NOW;
	hr.max_frame = 16u * 1024u * 1024u;
	hr.pow_bits = 20;
	hr.signature = bin(sig, sizeof(sig));
	Amp__V1__Response r = AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_HELLO;
	r.hello = &hr;
	seed_response(name, &r);
}

static void seeds_response(void)
{
	const amp_identity *node = fuzz_identity(FUZZ_NODE);
	const char *err = NULL;

	seed_hello_result("hello", node, FUZZ_NOW, 32);
	seed_hello_result("hello-bad-sig", node, FUZZ_NOW + 1, 32);
	seed_hello_result("hello-short-key", node, FUZZ_NOW, 31);
	seed_hello_result("hello-not-a-node", fuzz_identity(FUZZ_ALICE), FUZZ_NOW,
			  32);

	char *doc = NULL;
	if (amp_did_document_export(&fuzz_identity(FUZZ_ALICE)->pub, &doc,
				    &err) != AMP_OK)
		die(err);
	Amp__V1__LookupResult lr = AMP__V1__LOOKUP_RESULT__INIT;
	lr.did_document = doc;
	Amp__V1__Response r = AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_LOOKUP;
	r.lookup = &lr;
	seed_response("lookup", &r);
	amp_free(doc);

	Amp__V1__RecipientResult rr[3] = {
		AMP__V1__RECIPIENT_RESULT__INIT, AMP__V1__RECIPIENT_RESULT__INIT,
		AMP__V1__RECIPIENT_RESULT__INIT,
	};
	Amp__V1__RecipientResult *rrp[3] = { &rr[0], &rr[1], &rr[2] };
	rr[0].did = FUZZ_DID_ALICE;
	rr[1].did = FUZZ_DID_BOB;
	rr[1].status = AMP__V1__STATUS__STATUS_NOT_FOUND;
	rr[1].error = "unknown identity";
	rr[2].did = FUZZ_DID_CAROL;
	rr[2].status = AMP__V1__STATUS__STATUS_FORBIDDEN;
	rr[2].error = "relay denied";
	Amp__V1__DeliverResult dr = AMP__V1__DELIVER_RESULT__INIT;
	dr.recipients = rrp;
	dr.n_recipients = 3;
	r = (Amp__V1__Response)AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_DELIVER;
	r.deliver = &dr;
	seed_response("deliver", &r);
	dr.duplicate = true;
	r.status = AMP__V1__STATUS__STATUS_BAD_REQUEST;
	r.error = "some recipients refused";
	seed_response("deliver-refused-duplicate", &r);

	const fuzz_who self[] = { FUZZ_ALICE };
	const fuzz_who three[] = { FUZZ_BOB, FUZZ_ALICE, FUZZ_CAROL };
	size_t l1, l2;
	uint8_t *e1 = sealed_bytes("fetch-1", self, 1, &l1);
	uint8_t *e2 = sealed_bytes("fetch-2", three, 3, &l2);
	Amp__V1__InboxItem it[3] = {
		AMP__V1__INBOX_ITEM__INIT, AMP__V1__INBOX_ITEM__INIT,
		AMP__V1__INBOX_ITEM__INIT,
	};
	Amp__V1__InboxItem *itp[3] = { &it[0], &it[1], &it[2] };
	it[0].seq = 1;
	it[0].received = FUZZ_NOW - 10;
	it[0].envelope = bin(e1, l1);
	it[1].seq = 2;
	it[1].received = FUZZ_NOW;
	it[1].envelope = bin(e2, l2);
	it[2].seq = UINT64_MAX;
	it[2].envelope = bin("garbage", 7);
	Amp__V1__FetchResult fres = AMP__V1__FETCH_RESULT__INIT;
	fres.items = itp;
	fres.n_items = 3;
	fres.cursor = 2;
	r = (Amp__V1__Response)AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_FETCH;
	r.fetch = &fres;
	seed_response("fetch", &r);
	fres.n_items = 0;
	seed_response("fetch-empty", &r);
	free(e1);
	free(e2);

	r = (Amp__V1__Response)AMP__V1__RESPONSE__INIT;
	r.status = AMP__V1__STATUS__STATUS_RATE_LIMITED;
	r.error = "too many requests";
	r.retry_after_ms = 1000;
	seed_response("rate-limited", &r);
	r.status = (Amp__V1__Status)99;
	seed_response("status-unknown", &r);
	r.status = (Amp__V1__Status)-1;
	seed_response("status-negative", &r);

	Amp__V1__HelloRequest h = AMP__V1__HELLO_REQUEST__INIT;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	write_frame("response", "not-a-response", &f);
	write_seed("response", "empty", "", 0);

	/* 20000 empty inbox items: what protobuf-c allocates per byte. */
	uint8_t *big = xcalloc(1, SEED_MAX);
	size_t inner = 20000 * 2, mid = 1 + 3 + inner, n = 0;
	big[n++] = 0x7a; /* 15: response */
	n += varint(big + n, mid);
	big[n++] = 0x3a; /* 7: fetch */
	n += varint(big + n, inner);
	for (int i = 0; i < 20000; i++) {
		big[n++] = 0x0a; /* 1: items */
		big[n++] = 0x00;
	}
	write_seed("response", "many-empty-items", big, n);
	free(big);
}

static void seeds_routes(void)
{
	const amp_identity *node = fuzz_identity(FUZZ_NODE);
	char key[64], text[1024];
	sodium_bin2base64(key, sizeof(key), node->pub.sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(text, sizeof(text),
		 "# transport map\n"
		 "example.org   mx.example.org:4434\n"
		 "\n"
		 "Example.NET   [::1]:4434  quic   key=%s  # pinned\n"
		 "mail.example.com\t192.0.2.1:443\ttls\r\n"
		 "   # indented comment\n"
		 "v6.example   [2001:db8::1]:65535 key=%s quic",
		 key, key);
	write_str("routes", "valid", text);
	write_str("routes", "empty", "");
	write_str("routes", "comments-only", "# a\n\n   \n#b\n");
	write_str("routes", "missing-port", "example.org mx.example.org\n");
	write_str("routes", "port-0", "example.org mx.example.org:0\n");
	write_str("routes", "port-70000", "example.org mx.example.org:70000\n");
	write_str("routes", "bad-domain", "exa_mple.org mx:1\n");
	write_str("routes", "bad-key", "example.org mx:1 key=abc\n");
	write_str("routes", "unknown-word", "example.org mx:1 udp\n");
	write_str("routes", "too-many-words", "example.org mx:1 tls key=x tls\n");
	write_str("routes", "one-word", "example.org\n");
	write_str("routes", "v6-no-port", "example.org [::1]\n");
	write_str("routes", "v6-unclosed", "example.org [::1:4434\n");
	char *longline = xcalloc(1, 1100);
	memset(longline, 'a', 1030);
	memcpy(longline + 1030, ".org mx:1\n", 10);
	write_str("routes", "overlong-line", longline);
	free(longline);
	write_seed("routes", "nul-inside", "example.org mx:1\0 tls\n", 22);
}

static void seeds_invite(void)
{
	char tok[NP_INVITE_MAX];
	if (np_invite_make(s_ikey, FUZZ_NOW + 86400, tok) != 0)
		die("np_invite_make");
	write_str("invite", "valid", tok);
	char t2[NP_INVITE_MAX + 8];
	memcpy(t2, tok, strlen(tok) + 1);
	t2[strlen(t2) - 1] = t2[strlen(t2) - 1] == 'A' ? 'B' : 'A';
	write_str("invite", "tampered-mac", t2);
	memcpy(t2, tok, strlen(tok) + 1);
	t2[strlen(NP_INVITE_PREFIX)] = '2';
	write_str("invite", "tampered-expiry", t2);
	memcpy(t2, tok, strlen(tok) + 1);
	t2[strlen(tok) / 2]++;
	write_str("invite", "tampered-middle", t2);
	memcpy(t2, tok, strlen(tok) + 1);
	t2[strlen(tok) - 5] = '\0';
	write_str("invite", "truncated", t2);
	if (np_invite_make(s_ikey, FUZZ_NOW, tok) != 0)
		die("np_invite_make");
	write_str("invite", "expired-now", tok);
	if (np_invite_make(s_ikey, UINT64_MAX, tok) != 0)
		die("np_invite_make");
	write_str("invite", "expires-max", tok);
	if (np_invite_make(s_ikey, 0, tok) != 0)
		die("np_invite_make");
	write_str("invite", "expires-0", tok);
	char big[200];
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, NP_INVITE_PREFIX "1:", strlen(NP_INVITE_PREFIX) + 2);
	write_str("invite", "overlong", big);
	write_str("invite", "prefix-only", NP_INVITE_PREFIX);
	write_str("invite", "no-colons", NP_INVITE_PREFIX "123");
	write_str("invite", "garbage", "amp-pow-v1:8:1767225600:0000000000000000");
}

static void seeds_node(void)
{
	fuzz_session(s_x, s_ch);
	fuzz_invite_key(s_ikey);
	seeds_request();
	seeds_response();
	seeds_routes();
	seeds_invite();
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
	seeds_node();
	return 0;
}
