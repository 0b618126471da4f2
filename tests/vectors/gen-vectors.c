/*
 * gen-vectors.c — writes the test vectors of PROTOCOL.md §7 into a
 * directory: did.json, keys.json, padme.json, pow.json, envelope.json.
 *
 * Every secret and random value is fixed (derived from a label with
 * BLAKE2b), so the output is reproducible.  The envelope intermediates
 * (dh, wrap_ctx, kek, wrapped keys, padded, payload_ad, ciphertext,
 * sig_input, signature) are recomputed here from libsodium primitives, not
 * taken from libamp, and checked against the envelope amp_seal produced:
 * the generator refuses to write vectors on which the two disagree.
 *
 * Usage: amp-gen-vectors OUTDIR     (the committed copies are in
 * tests/vectors/; `make vectors` regenerates them)
 */
#include "amp/amp.h"
#include "amp.pb-c.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define DIE(...)                                                              \
	do {                                                                  \
		fprintf(stderr, "amp-gen-vectors: " __VA_ARGS__);             \
		fputc('\n', stderr);                                          \
		exit(1);                                                      \
	} while (0)

static void fixed(const char *label, uint8_t *out, size_t len)
{
	crypto_generichash(out, len, (const uint8_t *)label, strlen(label),
			   (const uint8_t *)"AMP test vector", 15);
}

static json_t *hexj(const uint8_t *p, size_t len)
{
	char *h = malloc(len * 2 + 1);
	if (h == NULL)
		DIE("out of memory");
	sodium_bin2hex(h, len * 2 + 1, p, len);
	json_t *s = json_string(h);
	free(h);
	return s;
}

static void write_json(const char *dir, const char *name, json_t *j)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (json_dump_file(j, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0)
		DIE("cannot write %s", path);
	FILE *f = fopen(path, "a");
	if (f == NULL || fputc('\n', f) == EOF || fclose(f) != 0)
		DIE("cannot write %s", path);
	json_decref(j);
}

/* ------------------------------------------------------------ identities */

typedef struct vid {
	const char *did;
	uint8_t seed[32], esk[32];
	amp_identity *id;
} vid;

static void vid_make(vid *v, const char *did)
{
	char label[400];
	const char *err = NULL;
	v->did = did;
	snprintf(label, sizeof(label), "%s sign", did);
	fixed(label, v->seed, 32);
	snprintf(label, sizeof(label), "%s enc", did);
	fixed(label, v->esk, 32);
	if (amp_identity_from_secrets(did, v->seed, v->esk, &v->id, &err) != AMP_OK)
		DIE("identity %s: %s", did, err);
}

static json_t *vid_json(const vid *v)
{
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "did", v->did,
			 "sign_seed", hexj(v->seed, 32), "enc_sk", hexj(v->esk, 32),
			 "sign_pk", hexj(v->id->pub.sign_pk, 32), "enc_pk",
			 hexj(v->id->pub.enc_pk, 32));
}

/* ---------------------------------------------------------- byte writer */

typedef struct wb {
	uint8_t *p;
	size_t len, cap;
} wb;

static void wb_put(wb *w, const void *d, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->p = realloc(w->p, w->cap);
		if (w->p == NULL)
			DIE("out of memory");
	}
	memcpy(w->p + w->len, d, n);
	w->len += n;
}

static void wb_u32(wb *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 8), (uint8_t)v };
	wb_put(w, b, 4);
}

static void wb_u64(wb *w, uint64_t v)
{
	wb_u32(w, (uint32_t)(v >> 32));
	wb_u32(w, (uint32_t)v);
}

static void wb_lp(wb *w, const void *d, size_t n)
{
	wb_u32(w, (uint32_t)n);
	wb_put(w, d, n);
}

static void wb_str(wb *w, const char *s)
{
	wb_put(w, s, strlen(s));
}

/* ------------------------------------------------------------ scripted rng */

typedef struct script {
	const uint8_t *vals[1 + 1 + 1 + 16];
	size_t lens[1 + 1 + 1 + 16];
	size_t n, next;
} script;

static void script_rng(void *ctx, uint8_t *buf, size_t len)
{
	script *s = ctx;
	if (s->next >= s->n || s->lens[s->next] != len)
		DIE("scripted rng: unexpected request %zu of %zu bytes", s->next,
		    len);
	memcpy(buf, s->vals[s->next++], len);
}

static uint64_t padme(uint64_t L)
{
	unsigned E = 63u - (unsigned)__builtin_clzll(L);
	unsigned S = 32u - (unsigned)__builtin_clz(E | 1u);
	if (E < 2)
		return L;
	uint64_t mask = (UINT64_C(1) << (E - S)) - 1;
	return (L + mask) & ~mask;
}

/* ---------------------------------------------------------------- cases */

typedef struct ecase {
	const char *name;
	vid *sender;
	vid *rcpt[4];
	size_t n;
	const uint8_t *body;
	size_t body_len;
	uint64_t created, expires;
	amp_lane lane;
	const char *content_type;
} ecase;

static void check_eq(const char *what, const uint8_t *a, size_t alen,
		     const uint8_t *b, size_t blen)
{
	if (alen != blen || memcmp(a, b, alen) != 0)
		DIE("%s: libamp and the reference construction differ", what);
}

static json_t *envelope_case(const ecase *c)
{
	uint8_t envelope_id[16], content_key[32], pnonce[24], wnonce[16][24];
	char label[64];
	script sc = { 0 };

	snprintf(label, sizeof(label), "%s envelope_id", c->name);
	fixed(label, envelope_id, 16);
	snprintf(label, sizeof(label), "%s content_key", c->name);
	fixed(label, content_key, 32);
	snprintf(label, sizeof(label), "%s payload_nonce", c->name);
	fixed(label, pnonce, 24);
	sc.vals[sc.n] = envelope_id, sc.lens[sc.n++] = 16;
	sc.vals[sc.n] = content_key, sc.lens[sc.n++] = 32;
	sc.vals[sc.n] = pnonce, sc.lens[sc.n++] = 24;
	for (size_t i = 0; i < c->n; i++) {
		snprintf(label, sizeof(label), "%s wrap_nonce %zu", c->name, i);
		fixed(label, wnonce[i], 24);
		sc.vals[sc.n] = wnonce[i], sc.lens[sc.n++] = 24;
	}

	/* libamp's envelope. */
	amp_public_identity pubs[4];
	for (size_t i = 0; i < c->n; i++)
		pubs[i] = c->rcpt[i]->id->pub;
	amp_seal_params p = { .content_type = c->content_type,
			      .created = c->created, .expires = c->expires,
			      .lane = c->lane, .zstd_level = 3,
			      .rng = script_rng, .rng_ctx = &sc };
	uint8_t *env;
	size_t env_len;
	const char *err = NULL;
	if (amp_seal(NULL, c->sender->id, pubs, c->n, &p, c->body, c->body_len,
		     &env, &env_len, &err) != AMP_OK)
		DIE("seal %s: %s", c->name, err);
	Amp__V1__Envelope *pb = amp__v1__envelope__unpack(NULL, env_len, env);
	if (pb == NULL)
		DIE("%s: libamp's envelope does not decode", c->name);

	/* Reference construction, §5.3. */
	const char *sdid = c->sender->did;
	size_t zcap = ZSTD_compressBound(c->body_len);
	uint8_t *z = malloc(zcap);
	size_t zlen = ZSTD_compress(z, zcap, c->body, c->body_len, 3);
	if (ZSTD_isError(zlen))
		DIE("zstd");
	uint64_t padded_size = padme(4 + zlen);
	if (padded_size < 256)
		padded_size = 256;
	uint8_t *padded = calloc(1, padded_size);
	padded[0] = (uint8_t)(zlen >> 24), padded[1] = (uint8_t)(zlen >> 16);
	padded[2] = (uint8_t)(zlen >> 8), padded[3] = (uint8_t)zlen;
	memcpy(padded + 4, z, zlen);
	wb ad = { 0 };
	wb_str(&ad, "AMPv1-payload");
	wb_lp(&ad, envelope_id, 16);
	wb_lp(&ad, sdid, strlen(sdid));
	wb_lp(&ad, c->content_type, strlen(c->content_type));
	uint8_t *ct = malloc(padded_size + 16);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, padded, padded_size,
						   ad.p, ad.len, NULL, pnonce,
						   content_key);
	check_eq("ciphertext", ct, padded_size + 16, pb->ciphertext.data,
		 pb->ciphertext.len);

	/* §5.2 per recipient. */
	json_t *jr = json_array();
	for (size_t i = 0; i < c->n; i++) {
		const vid *r = c->rcpt[i];
		uint8_t dh[32], kek[32], wk[72];
		if (crypto_scalarmult(dh, c->sender->esk, r->id->pub.enc_pk) != 0)
			DIE("dh");
		wb wc = { 0 };
		wb_str(&wc, "AMPv1-wrap");
		wb_lp(&wc, envelope_id, 16);
		wb_lp(&wc, sdid, strlen(sdid));
		wb_lp(&wc, r->did, strlen(r->did));
		wb_put(&wc, c->sender->id->pub.enc_pk, 32);
		wb_put(&wc, r->id->pub.enc_pk, 32);
		crypto_generichash(kek, 32, wc.p, wc.len, dh, 32);
		memcpy(wk, wnonce[i], 24);
		crypto_aead_xchacha20poly1305_ietf_encrypt(wk + 24, NULL,
							   content_key, 32, wc.p,
							   wc.len, NULL, wk, kek);
		check_eq("wrapped key", wk, 72,
			 pb->header->recipients[i]->wrapped_key.data,
			 pb->header->recipients[i]->wrapped_key.len);
		json_t *o = vid_json(r);
		json_object_set_new(o, "dh", hexj(dh, 32));
		json_object_set_new(o, "wrap_ctx", hexj(wc.p, wc.len));
		json_object_set_new(o, "kek", hexj(kek, 32));
		json_object_set_new(o, "wrap_nonce", hexj(wnonce[i], 24));
		json_object_set_new(o, "wrapped_key", hexj(wk, 72));
		json_array_append_new(jr, o);
		free(wc.p);
	}

	/* §5.5 signing input. */
	wb si = { 0 };
	wb_str(&si, "AMPv1-sig");
	wb_u32(&si, 1);
	wb_lp(&si, envelope_id, 16);
	wb_lp(&si, sdid, strlen(sdid));
	wb_lp(&si, "", 0);
	wb_u64(&si, c->created);
	wb_u64(&si, c->expires);
	wb_u32(&si, (uint32_t)c->lane);
	wb_lp(&si, c->content_type, strlen(c->content_type));
	wb_u64(&si, padded_size);
	wb_lp(&si, pnonce, 24);
	wb_u32(&si, (uint32_t)c->n);
	for (size_t i = 0; i < c->n; i++) {
		wb_lp(&si, c->rcpt[i]->did, strlen(c->rcpt[i]->did));
		wb_lp(&si, pb->header->recipients[i]->wrapped_key.data, 72);
	}
	uint8_t digest[32], sig[64];
	crypto_generichash(digest, 32, ct, padded_size + 16, NULL, 0);
	wb_put(&si, digest, 32);
	crypto_sign_detached(sig, NULL, si.p, si.len, c->sender->id->sign_sk);
	check_eq("signature", sig, 64, pb->signature.data, pb->signature.len);

	json_t *o = json_pack(
		"{s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:i, s:s, s:o, s:o, "
		"s:I, s:o, s:o, s:o, s:o, s:o, s:o}",
		"name", c->name, "sender", vid_json(c->sender), "recipients", jr,
		"envelope_id", hexj(envelope_id, 16), "content_key",
		hexj(content_key, 32), "payload_nonce", hexj(pnonce, 24),
		"created", (json_int_t)c->created, "expires",
		(json_int_t)c->expires, "lane", (int)c->lane, "content_type",
		c->content_type, "body", hexj(c->body, c->body_len), "z",
		hexj(z, zlen), "padded_size", (json_int_t)padded_size, "padded",
		hexj(padded, padded_size), "payload_ad", hexj(ad.p, ad.len),
		"ciphertext", hexj(ct, padded_size + 16), "sig_input",
		hexj(si.p, si.len), "signature", hexj(sig, 64), "envelope",
		hexj(env, env_len));
	amp__v1__envelope__free_unpacked(pb, NULL);
	amp_free(env);
	free(z);
	free(padded);
	free(ad.p);
	free(ct);
	free(si.p);
	return o;
}

/* ------------------------------------------------------------ other files */

static json_t *did_vectors(void)
{
	static const char *valid[] = {
		"did:aftersmtp:example.org:alice",
		"did:aftersmtp:mail.example.co.uk:first.last-2_x",
		"did:aftersmtp:localhost:a",
		"did:aftersmtp:x-1.y:0",
		"did:aftersmtp:a.b.c.d.e:z.z-z_z",
	};
	static const struct { const char *did, *why; } invalid[] = {
		{ "did:aftersmtp:Example.org:alice", "uppercase in domain" },
		{ "did:aftersmtp:example.org:Alice", "uppercase in local part" },
		{ "did:aftersmtp:example..org:a", "empty label" },
		{ "did:aftersmtp:example.org.:a", "trailing dot" },
		{ "did:aftersmtp:-x.org:a", "label starts with '-'" },
		{ "did:aftersmtp:x-.org:a", "label ends with '-'" },
		{ "did:aftersmtp:example.org:.alice", "local starts with '.'" },
		{ "did:aftersmtp:example.org:alice.", "local ends with '.'" },
		{ "did:aftersmtp:example.org:a..b", "consecutive dots" },
		{ "did:aftersmtp:example.org:_a", "local starts with '_'" },
		{ "did:aftersmtp:example.org", "no local part" },
		{ "did:aftersmtp:example.org:", "empty local part" },
		{ "did:aftersmtp::alice", "empty domain" },
		{ "did:aftersmtp:example.org:a:b", "':' in local part" },
		{ "did:aftersmtp:exa_mple.org:a", "'_' in domain" },
		{ "did:aftersmtp:example.org:al ice", "space" },
		{ "did:aftersmtp:example.org:al%20ice", "percent-encoding" },
		{ "did:aftersmtp:ex\xc3\xa4mple.org:a", "non-ASCII" },
		{ "did:web:example.org:alice", "other DID method" },
		{ "DID:aftersmtp:example.org:alice", "uppercase scheme" },
		{ "", "empty" },
	};
	json_t *v = json_array(), *inv = json_array();
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		json_array_append_new(v, json_string(valid[i]));
	/* Length limits: a 63-byte label and 64-byte local are fine... */
	char buf[512];
	snprintf(buf, sizeof(buf), "did:aftersmtp:%.63s.org:%.64s",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	json_array_append_new(v, json_string(buf));
	/* ...the longest possible DID (332 bytes) is fine... */
	char dom[254];
	memset(dom, 'a', 253);
	for (int k = 63; k < 253; k += 64)
		dom[k] = '.';
	dom[253] = '\0';
	char longest[400];
	snprintf(longest, sizeof(longest), "did:aftersmtp:%s:%.64s", dom,
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	json_array_append_new(v, json_string(longest));
	/* ...one more byte in a label, the local part or the domain is not. */
	json_array_append_new(inv, json_pack("{s:s, s:s}", "did",
		"did:aftersmtp:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org:a",
		"why", "64-byte label"));
	snprintf(buf, sizeof(buf), "did:aftersmtp:example.org:%.65s",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	json_array_append_new(inv, json_pack("{s:s, s:s}", "did", buf, "why",
					     "65-byte local part"));
	snprintf(buf, sizeof(buf), "did:aftersmtp:a.%s:b", dom);
	json_array_append_new(inv, json_pack("{s:s, s:s}", "did", buf, "why",
					     "254-byte domain"));
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		json_array_append_new(inv, json_pack("{s:s, s:s}", "did",
						     invalid[i].did, "why",
						     invalid[i].why));
	return json_pack("{s:o, s:o}", "valid", v, "invalid", inv);
}

static json_t *key_vectors(vid *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char sk[17], ek[17], *doc;
		const char *err = NULL;
		amp_key_id(ids[i].id->pub.sign_pk, sk);
		amp_key_id(ids[i].id->pub.enc_pk, ek);
		if (amp_did_document_export(&ids[i].id->pub, &doc, &err) != AMP_OK)
			DIE("document: %s", err);
		json_t *o = vid_json(&ids[i]);
		json_object_set_new(o, "sig_key_id", json_string(sk));
		json_object_set_new(o, "enc_key_id", json_string(ek));
		json_object_set_new(o, "document", json_loads(doc, 0, NULL));
		json_array_append_new(a, o);
		amp_free(doc);
	}
	return a;
}

static json_t *padme_vectors(void)
{
	static const uint64_t L[] = { 2, 3, 4, 5, 8, 9, 100, 255, 256, 257,
				      300, 1000, 1024, 1025, 4096, 5000,
				      100000, 1000000, 41943040 };
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++)
		json_array_append_new(a, json_pack("[I, I]", (json_int_t)L[i],
						   (json_int_t)padme(L[i])));
	return a;
}

static json_t *pow_vectors(const vid *v)
{
	json_t *a = json_array();
	const uint64_t ts = 1767225600; /* 2026-01-01T00:00:00Z */
	for (uint32_t bits = 4; bits <= 16; bits += 4) {
		amp_pow_stamp st;
		char text[AMP_POW_TEXT_MAX + 1];
		const char *err = NULL;
		if (amp_pow_mint(&v->id->pub, bits, ts, 0, &st, &err) != AMP_OK ||
		    amp_pow_format(&st, text, sizeof(text)) != AMP_OK)
			DIE("pow: %s", err);
		/* Reference input and digest for the found counter. */
		wb w = { 0 };
		wb_str(&w, "AMPv1-pow");
		wb_lp(&w, v->did, strlen(v->did));
		wb_put(&w, v->id->pub.sign_pk, 32);
		wb_put(&w, v->id->pub.enc_pk, 32);
		wb_u64(&w, ts);
		uint8_t b = (uint8_t)bits;
		wb_put(&w, &b, 1);
		wb_u64(&w, st.counter);
		uint8_t d[32];
		crypto_generichash(d, 32, w.p, w.len, NULL, 0);
		json_array_append_new(
			a, json_pack("{s:s, s:o, s:o, s:I, s:i, s:I, s:s, s:o, s:o}",
				     "did", v->did, "sign_pk",
				     hexj(v->id->pub.sign_pk, 32), "enc_pk",
				     hexj(v->id->pub.enc_pk, 32), "timestamp",
				     (json_int_t)ts, "bits", (int)bits, "counter",
				     (json_int_t)st.counter, "text", text,
				     "pow_input", hexj(w.p, w.len), "digest",
				     hexj(d, 32)));
		free(w.p);
	}
	return a;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "Usage: amp-gen-vectors OUTDIR\n");
		return 2;
	}
	if (amp_init() != AMP_OK)
		DIE("libsodium");
	vid ids[3];
	vid_make(&ids[0], "did:aftersmtp:example.org:alice");
	vid_make(&ids[1], "did:aftersmtp:example.net:bob");
	vid_make(&ids[2], "did:aftersmtp:mail.example.com:carol.smith");

	static const char body1[] = "Subject: hello\r\n\r\nHi Bob, this is a test vector.\r\n";
	static const char body2[] =
		"From: Alice <alice@example.org>\r\n"
		"To: Bob <bob@example.net>, Carol <carol.smith@example.com>\r\n"
		"Subject: quarterly figures\r\n"
		"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
		"Message-ID: <vector-2@example.org>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"\r\n"
		"The figures are attached in spirit. The figures are attached in spirit.\r\n"
		"The figures are attached in spirit. The figures are attached in spirit.\r\n"
		"Gr\xc3\xbc\xc3\x9f""e, Alice\r\n";
	ecase cases[] = {
		{ .name = "one-recipient", .sender = &ids[0],
		  .rcpt = { &ids[1] }, .n = 1, .body = (const uint8_t *)body1,
		  .body_len = sizeof(body1) - 1, .created = 1767225600,
		  .expires = 0, .lane = AMP_LANE_NORMAL,
		  .content_type = "message/rfc822" },
		{ .name = "three-recipients", .sender = &ids[0],
		  .rcpt = { &ids[1], &ids[2], &ids[0] }, .n = 3,
		  .body = (const uint8_t *)body2, .body_len = sizeof(body2) - 1,
		  .created = 1767225600, .expires = 1767225600 + 7 * 86400,
		  .lane = AMP_LANE_BULK, .content_type = "message/rfc822" },
		{ .name = "empty-body", .sender = &ids[1], .rcpt = { &ids[0] },
		  .n = 1, .body = (const uint8_t *)"", .body_len = 0,
		  .created = 1767225601, .expires = 1767225601 + 60,
		  .lane = AMP_LANE_CRITICAL,
		  .content_type = "text/plain; charset=utf-8" },
	};
	json_t *ec = json_array();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		json_array_append_new(ec, envelope_case(&cases[i]));

	const char *dir = argv[1];
	write_json(dir, "envelope.json", json_pack("{s:o}", "cases", ec));
	write_json(dir, "did.json", did_vectors());
	write_json(dir, "keys.json", key_vectors(ids, 3));
	write_json(dir, "padme.json", padme_vectors());
	write_json(dir, "pow.json", pow_vectors(&ids[0]));
	for (size_t i = 0; i < 3; i++)
		amp_identity_destroy(&ids[i].id);
	printf("vectors written to %s\n", dir);
	return 0;
}
