/*
 * dkim-verify.c — DKIM verification (dkim-verify.h).
 *
 * prepare walks the header section once with mail-header.h's iterator
 * into a table of at most DKIM_VERIFY_MAX_FIELDS fields (the only
 * allocation besides the set and one DKIM_VERIFY_SIG_MAX scratch buffer),
 * so that each h= name is found by scanning that table from the bottom:
 * per signature at most DKIM_VERIFY_MAX_H * (DKIM_VERIFY_MAX_H +
 * DKIM_VERIFY_MAX_FIELDS) name compares.  Each checked signature streams
 * the body once through its canonicalisation into SHA-256 (nothing is
 * copied), so the cost is at most DKIM_VERIFY_MAX passes over the body.
 * The canonical header data is never stored either: it goes straight into
 * SHA-256, and only the 32-byte digest waits for the key.
 *
 * Keys: RSA through GnuTLS (gnutls_pubkey_import of the DER
 * SubjectPublicKeyInfo, gnutls_pubkey_verify_hash2 with
 * GNUTLS_SIGN_RSA_SHA256 over the digest); Ed25519 through libsodium
 * (crypto_sign_verify_detached over the digest, RFC 8463 §3).
 *
 * The tag, h= and hashing helpers are dkim-common.h's, shared with arc.c,
 * didsig.c and dkim-sign.c.
 */
#include "dkim-verify.h"

#include "dkim-common.h"
#include "dkim-sign.h"
#include "dkim-tags.h"
#include "mail-header.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P_B64_MAX 2048  /* base64 of an 8192-bit SubjectPublicKeyInfo */
#define P_DER_MAX 1536

/* What prepare learns of one field; then check_sig's working state. */
typedef struct sigctx {
	const uint8_t *msg;
	size_t len, body_off;
	const mail_field *fields;
	size_t nf;
	size_t from_count;
	uint8_t *scratch; /* DKIM_VERIFY_SIG_MAX bytes */
	uint64_t now;
} sigctx;

/* Final status and reason; the flags already set stay. */
static void decide(dkim_verify_sig *sig, dkim_status st, const char *why)
{
	sig->result.status = st;
	sig->result.reason = why;
	sig->need_key = false;
}

const char *dkim_status_name(dkim_status st)
{
	switch (st) {
	case DKIM_PENDING:
		return "pending";
	case DKIM_PASS:
		return "pass";
	case DKIM_FAIL:
		return "fail";
	case DKIM_PERMERROR:
		return "permerror";
	case DKIM_TEMPERROR:
		return "temperror";
	case DKIM_NEUTRAL:
		return "neutral";
	case DKIM_NOT_CHECKED:
		return "not-checked";
	}
	return "?";
}

/* ---- h= and q= lists ---- */

typedef struct want {
	const char *a, *b; /* either matches (b may be NULL) */
	bool found;
	bool icase;
} want;

static int want_fn(void *ctx, const uint8_t *p, size_t n)
{
	want *w = ctx;
	if (w->icase ? (dkc_mem_ieq(p, n, w->a) ||
			(w->b != NULL && dkc_mem_ieq(p, n, w->b)))
		     : ((n == strlen(w->a) && memcmp(p, w->a, n) == 0) ||
			(w->b != NULL && n == strlen(w->b) &&
			 memcmp(p, w->b, n) == 0)))
		w->found = true;
	return 0;
}

static bool list_has(const dkim_tags *tg, const dkim_tag *t, const char *a,
		     const char *b, bool icase)
{
	want w = {.a = a, .b = b, .found = false, .icase = icase};
	if (dkim_tag_value_split(tg, t, want_fn, &w) != 0)
		return false;
	return w.found;
}

/* ---- One signature ---- */

/* Check the field fi and compute its hashes; sets sig->result (decided)
 * or leaves need_key set. */
static void check_sig(const sigctx *c, const mail_field *f,
		      dkim_verify_sig *sig)
{
	const uint8_t *msg = c->msg;
	dkim_tags tg;
	const char *err;
	const dkim_tag *t;
	bool hrelaxed = false, brelaxed = false;
	uint64_t tv = 0, xv = 0, lv = 0;
	bool has_t = false, has_x = false, has_l = false;
	dkc_hlist hl;
	uint8_t bh[64];
	size_t bh_len;

	sig->need_key = false;
	if (f->len > DKIM_VERIFY_SIG_MAX)
		return decide(sig, DKIM_PERMERROR,
			      "DKIM-Signature field too long");
	if (dkc_field_tags(msg, f, &tg, &err) < 0)
		return decide(sig, DKIM_PERMERROR, err);

	/* d= and s= first, so that even a refused signature names them. */
	t = dkim_tags_get(&tg, "d");
	if (t != NULL && dkc_dname_ok(tg.text + t->value_off, t->value_len)) {
		memcpy(sig->d, tg.text + t->value_off, t->value_len);
		sig->d[t->value_len] = '\0';
	}
	t = dkim_tags_get(&tg, "s");
	if (t != NULL && dkc_dname_ok(tg.text + t->value_off, t->value_len)) {
		memcpy(sig->s, tg.text + t->value_off, t->value_len);
		sig->s[t->value_len] = '\0';
	}

	t = dkim_tags_get(&tg, "v");
	if (t == NULL)
		return decide(sig, DKIM_PERMERROR, "no v= tag");
	if (!dkim_tag_value_is(&tg, t, "1"))
		return decide(sig, DKIM_PERMERROR, "v= is not 1");
	static const char *const required[] = {"a", "b", "bh", "d", "h", "s"};
	for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++)
		if (dkim_tags_get(&tg, required[k]) == NULL) {
			static const char *const why[] = {
				"no a= tag", "no b= tag", "no bh= tag",
				"no d= tag", "no h= tag", "no s= tag",
			};
			return decide(sig, DKIM_PERMERROR, why[k]);
		}
	t = dkim_tags_get(&tg, "a");
	if (dkim_tag_value_is(&tg, t, "rsa-sha256"))
		sig->alg = DKIM_VERIFY_RSA_SHA256;
	else if (dkim_tag_value_is(&tg, t, "ed25519-sha256"))
		sig->alg = DKIM_VERIFY_ED25519_SHA256;
	else if (dkim_tag_value_is(&tg, t, "rsa-sha1"))
		return decide(sig, DKIM_FAIL,
			      "rsa-sha1 not accepted (RFC 8301)");
	else
		return decide(sig, DKIM_PERMERROR, "unknown a= algorithm");
	if (sig->d[0] == '\0')
		return decide(sig, DKIM_PERMERROR, "bad d= domain");
	if (sig->s[0] == '\0')
		return decide(sig, DKIM_PERMERROR, "bad s= selector");
	{
		int m = snprintf(sig->query, sizeof(sig->query),
				 "%s._domainkey.%s", sig->s, sig->d);
		if (m < 0 || (size_t)m >= sizeof(sig->query)) {
			sig->query[0] = '\0';
			return decide(sig, DKIM_PERMERROR,
				      "key query name too long");
		}
	}

	t = dkim_tags_get(&tg, "c");
	if (t != NULL && !dkc_parse_c(&tg, t, &hrelaxed, &brelaxed))
		return decide(sig, DKIM_PERMERROR, "bad c= value");
	t = dkim_tags_get(&tg, "q");
	if (t != NULL && !list_has(&tg, t, "dns/txt", NULL, false))
		return decide(sig, DKIM_PERMERROR, "q= does not list dns/txt");

	/* i=: [local-part] "@" domain, under d= */
	t = dkim_tags_get(&tg, "i");
	if (t != NULL) {
		const uint8_t *p = tg.text + t->value_off;
		size_t at = t->value_len;
		while (at > 0 && p[at - 1] != '@')
			at--;
		if (at == 0)
			return decide(sig, DKIM_PERMERROR, "i= has no '@'");
		const uint8_t *dom = p + at;
		size_t dn = t->value_len - at, dl = strlen(sig->d);
		if (!dkc_dname_ok(dom, dn))
			return decide(sig, DKIM_PERMERROR, "bad i= domain");
		if (!(dkc_mem_ieq(dom, dn, sig->d) ||
		      (dn > dl + 1 && dom[dn - dl - 1] == '.' &&
		       dkc_mem_ieq(dom + dn - dl, dl, sig->d))))
			return decide(sig, DKIM_PERMERROR,
				      "i= domain is not d= or under it");
		memcpy(sig->i_domain, dom, dn);
		sig->i_domain[dn] = '\0';
	} else {
		memcpy(sig->i_domain, sig->d, strlen(sig->d) + 1);
	}

	if ((t = dkim_tags_get(&tg, "t")) != NULL) {
		if (!dkc_parse_num(&tg, t, &tv))
			return decide(sig, DKIM_PERMERROR, "bad t= value");
		has_t = true;
	}
	if ((t = dkim_tags_get(&tg, "x")) != NULL) {
		if (!dkc_parse_num(&tg, t, &xv))
			return decide(sig, DKIM_PERMERROR, "bad x= value");
		has_x = true;
	}
	if ((t = dkim_tags_get(&tg, "l")) != NULL) {
		if (!dkc_parse_num(&tg, t, &lv))
			return decide(sig, DKIM_PERMERROR, "bad l= value");
		has_l = true;
	}
	if (has_t && has_x && xv < tv)
		return decide(sig, DKIM_PERMERROR, "x= is before t=");

	memset(&hl, 0, sizeof(hl));
	t = dkim_tags_get(&tg, "h");
	if (dkim_tag_value_split(&tg, t, dkc_hlist_add, &hl) != 0) {
		if (hl.too_many)
			return decide(sig, DKIM_PERMERROR,
				      "too many names in h=");
		return decide(sig, DKIM_PERMERROR, "bad h= value");
	}
	if (!hl.has_from)
		return decide(sig, DKIM_PERMERROR, "h= does not list from");

	if (!dkc_b64_tag(&tg, dkim_tags_get(&tg, "bh"), bh, sizeof(bh),
			 &bh_len) || bh_len != 32)
		return decide(sig, DKIM_PERMERROR, "bad bh= value");
	if (!dkc_b64_tag(&tg, dkim_tags_get(&tg, "b"), sig->b, sizeof(sig->b),
			 &sig->b_len))
		return decide(sig, DKIM_PERMERROR, "bad b= value");
	if (sig->alg == DKIM_VERIFY_ED25519_SHA256 && sig->b_len != 64)
		return decide(sig, DKIM_PERMERROR,
			      "ed25519 b= is not 64 bytes");

	if (has_x && c->now != 0 && c->now > xv)
		return decide(sig, DKIM_FAIL, "signature expired");

	/* The body hash. */
	{
		uint8_t digest[32];
		uint64_t total;
		dkc_body_digest(msg + c->body_off, c->len - c->body_off,
				brelaxed, has_l, lv, digest, &total);
		if (has_l && lv > total)
			return decide(sig, DKIM_FAIL,
				      "l= is longer than the body");
		if (sodium_memcmp(digest, bh, 32) != 0)
			return decide(sig, DKIM_FAIL, "body hash mismatch");
		sig->result.partial = has_l && lv < total;
	}

	/* The header hash: the h= fields, then this field with b='s value
	 * removed. */
	{
		gnutls_hash_hd_t hd = dkc_hash_new();
		dkc_hash_fields(msg, c->fields, c->nf, &hl, hrelaxed,
				dkc_hash_emit, hd);
		dkc_canon_without_b(msg, f, &tg, hrelaxed, c->scratch,
				    dkc_hash_emit, hd);
		gnutls_hash_deinit(hd, sig->hdr_digest);
	}
	sig->need_key = true;
	sig->result.status = DKIM_PENDING;
	sig->result.reason = "waiting for the key";
}

int dkim_verify_prepare(const uint8_t *msg, size_t len,
			const dkim_verify_limits *limits,
			dkim_verify_set **set_r, const char **error_r)
{
	size_t max_sigs = limits->max_sigs, max_header = limits->max_header;
	mail_field *fields;
	size_t nf, froms = 0, body_off;
	dkim_verify_set *set;

	if (sodium_init() < 0)
		abort();
	if (max_sigs == 0 || max_sigs > DKIM_VERIFY_MAX)
		max_sigs = DKIM_VERIFY_MAX;
	if (max_header == 0)
		max_header = DKIM_MAX_HEADER;
	if (dkc_fields_read(msg, len, max_header, DKIM_VERIFY_MAX_FIELDS,
			    &fields, &nf, &body_off, error_r) < 0)
		return -1;
	for (size_t k = 0; k < nf; k++)
		if (mail_field_is(msg, &fields[k], "from"))
			froms++;

	set = calloc(1, sizeof(*set));
	if (set == NULL)
		abort();
	set->from_count = froms;
	sigctx c = {.msg = msg, .len = len, .body_off = body_off,
		    .fields = fields, .nf = nf, .from_count = froms,
		    .now = limits->now};
	c.scratch = malloc(DKIM_VERIFY_SIG_MAX);
	if (c.scratch == NULL)
		abort();
	for (size_t k = 0; k < nf; k++) {
		if (!mail_field_is(msg, &fields[k], "dkim-signature"))
			continue;
		set->found++;
		if (set->n == max_sigs)
			continue;
		dkim_verify_sig *sig = &set->sig[set->n++];
		sig->result.multiple_from = froms > 1;
		check_sig(&c, &fields[k], sig);
	}
	free(c.scratch);
	free(fields);
	*set_r = set;
	return 0;
}

/* ---- The key ---- */

typedef struct keyrec {
	dkim_tags tg;
	bool ed25519;
	bool testing, strict;
} keyrec;

/* Parse a key record; false if it is not one (syntax, or a v= that is not
 * first or not DKIM1). */
static bool key_parse(const uint8_t *txt, size_t len, keyrec *k)
{
	const char *err;
	const dkim_tag *t;
	if (dkim_tags_parse(txt, len, &k->tg, &err) < 0)
		return false;
	t = dkim_tags_get(&k->tg, "v");
	if (t != NULL && (t != &k->tg.tag[0] ||
			  !dkim_tag_value_is(&k->tg, t, "DKIM1")))
		return false;
	return true;
}

static void finish_key(dkim_verify_sig *sig, keyrec *k, size_t from_count)
{
	const dkim_tag *t;
	char p64[P_B64_MAX];
	uint8_t der[P_DER_MAX];
	size_t n, der_len;

	t = dkim_tags_get(&k->tg, "k");
	if (t == NULL || dkim_tag_value_is(&k->tg, t, "rsa"))
		k->ed25519 = false;
	else if (dkim_tag_value_is(&k->tg, t, "ed25519"))
		k->ed25519 = true;
	else
		return decide(sig, DKIM_PERMERROR, "unknown key type k=");
	if (k->ed25519 != (sig->alg == DKIM_VERIFY_ED25519_SHA256))
		return decide(sig, DKIM_PERMERROR,
			      "key type k= does not match a=");
	t = dkim_tags_get(&k->tg, "h");
	if (t != NULL && !list_has(&k->tg, t, "sha256", NULL, false))
		return decide(sig, DKIM_PERMERROR,
			      "key h= does not allow sha256");
	t = dkim_tags_get(&k->tg, "s");
	if (t != NULL && !list_has(&k->tg, t, "*", "email", false))
		return decide(sig, DKIM_PERMERROR,
			      "key s= is not for email");
	t = dkim_tags_get(&k->tg, "t");
	if (t != NULL) {
		k->testing = list_has(&k->tg, t, "y", NULL, false);
		k->strict = list_has(&k->tg, t, "s", NULL, false);
	}
	sig->result.testing = k->testing;
	t = dkim_tags_get(&k->tg, "p");
	if (t == NULL)
		return decide(sig, DKIM_PERMERROR, "no p= in the key record");
	n = dkim_tag_value_nows(&k->tg, t, p64, sizeof(p64));
	if (n == 0)
		return decide(sig, DKIM_FAIL, "key revoked");
	if (n >= sizeof(p64) || !dkc_b64_decode(p64, n, der, sizeof(der), &der_len))
		return decide(sig, DKIM_PERMERROR, "bad p= value");
	if (k->strict && strlen(sig->i_domain) != strlen(sig->d))
		return decide(sig, DKIM_FAIL,
			      "key t=s but i= is a subdomain of d=");

	if (k->ed25519) {
		if (der_len != crypto_sign_PUBLICKEYBYTES)
			return decide(sig, DKIM_PERMERROR,
				      "ed25519 p= is not 32 bytes");
		if (crypto_sign_verify_detached(sig->b, sig->hdr_digest, 32,
						der) != 0)
			return decide(sig, DKIM_FAIL, "bad signature");
	} else {
		gnutls_pubkey_t pub;
		gnutls_datum_t kd = {der, (unsigned)der_len};
		gnutls_datum_t hd = {sig->hdr_digest, 32};
		gnutls_datum_t sd = {sig->b, (unsigned)sig->b_len};
		unsigned bits = 0;
		int rc;
		if (gnutls_pubkey_init(&pub) < 0)
			abort();
		if (gnutls_pubkey_import(pub, &kd, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_pubkey_deinit(pub);
			return decide(sig, DKIM_PERMERROR,
				      "p= is not a public key");
		}
		if (gnutls_pubkey_get_pk_algorithm(pub, &bits) !=
		    GNUTLS_PK_RSA) {
			gnutls_pubkey_deinit(pub);
			return decide(sig, DKIM_PERMERROR,
				      "p= is not an RSA key");
		}
		if (bits < DKIM_VERIFY_RSA_MIN_BITS) {
			gnutls_pubkey_deinit(pub);
			return decide(sig, DKIM_FAIL,
				      "RSA key shorter than 1024 bits (RFC 8301)");
		}
		if (bits > DKIM_VERIFY_RSA_MAX_BITS) {
			gnutls_pubkey_deinit(pub);
			return decide(sig, DKIM_PERMERROR,
				      "RSA key longer than 8192 bits");
		}
		rc = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_SHA256, 0,
						&hd, &sd);
		gnutls_pubkey_deinit(pub);
		if (rc < 0)
			return decide(sig, DKIM_FAIL, "bad signature");
	}
	sig->result.crypto_ok = true;
	if (from_count > 1)
		return decide(sig, DKIM_FAIL, "multiple From");
	if (from_count == 0)
		return decide(sig, DKIM_FAIL, "no From field");
	if (sig->result.partial)
		return decide(sig, DKIM_NEUTRAL,
			      "l= does not cover the whole body");
	decide(sig, DKIM_PASS, "ok");
}

/* The records of one lookup (dkim_verify_finish's txt, len, n). */
static void finish_records(dkim_verify_sig *sig, const uint8_t *const *txt,
			   const size_t *len, size_t n, size_t from_count)
{
	keyrec *k;

	if (txt == NULL) {
		decide(sig, DKIM_TEMPERROR, "key lookup failed");
	} else if (n == 0) {
		decide(sig, DKIM_PERMERROR, "no key record");
	} else {
		k = calloc(1, sizeof(*k));
		if (k == NULL)
			abort();
		if (n > DKIM_VERIFY_MAX_TXT)
			n = DKIM_VERIFY_MAX_TXT;
		size_t r;
		for (r = 0; r < n; r++)
			if (key_parse(txt[r], len[r], k))
				break;
		if (r == n)
			decide(sig, DKIM_PERMERROR, "bad key record");
		else
			finish_key(sig, k, from_count);
		free(k);
	}
}

void dkim_verify_finish(dkim_verify_set *set, size_t i,
			const uint8_t *const *txt, const size_t *len,
			size_t n, dkim_verify_result *result_r)
{
	dkim_verify_sig *sig;

	if (i >= set->n)
		abort(); /* the caller's bug */
	sig = &set->sig[i];
	if (!sig->need_key) {
		*result_r = sig->result;
		return;
	}
	finish_records(sig, txt, len, n, set->from_count);
	*result_r = sig->result;
}

void dkim_verify_digest(dkim_verify_alg alg, const uint8_t digest[32],
			const uint8_t *b, size_t b_len,
			const uint8_t *const *txt, const size_t *len,
			size_t n, dkim_verify_result *result_r)
{
	dkim_verify_sig *sig = calloc(1, sizeof(*sig));
	if (sig == NULL)
		abort();
	sig->alg = alg;
	memcpy(sig->hdr_digest, digest, 32);
	if (b_len == 0 || b_len > sizeof(sig->b)) {
		decide(sig, DKIM_PERMERROR, "bad b= value");
	} else if (alg == DKIM_VERIFY_ED25519_SHA256 && b_len != 64) {
		decide(sig, DKIM_PERMERROR, "ed25519 b= is not 64 bytes");
	} else {
		memcpy(sig->b, b, b_len);
		sig->b_len = b_len;
		sig->need_key = true;
		/* d= and i_domain both empty: a key's t=s has nothing to
		 * refuse; one "From" so the message checks do not apply. */
		finish_records(sig, txt, len, n, 1);
	}
	*result_r = sig->result;
	free(sig);
}

void dkim_verify_set_free(dkim_verify_set **set)
{
	if (set == NULL || *set == NULL)
		return;
	free(*set);
	*set = NULL;
}
