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
 */
#include "dkim-verify.h"

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
#define B_B64_MAX 1024  /* base64 of DKIM_VERIFY_B_MAX bytes, padded */

typedef struct hname {
	const uint8_t *p;
	size_t n;
} hname;

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

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static bool mem_ieq(const uint8_t *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lower(a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

static bool mem_ieq2(const uint8_t *a, size_t an, const uint8_t *b,
		     size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

static void hash_emit(void *ctx, const uint8_t *p, size_t n)
{
	if (gnutls_hash((gnutls_hash_hd_t)ctx, p, n) < 0)
		abort(); /* only on a bad handle: a bug */
}

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

/* A domain or selector: labels of [A-Za-z0-9_-], 1..63 bytes, 1..253 in
 * all, no empty label (so no leading, trailing or double dot). */
static bool dname_ok(const uint8_t *p, size_t n)
{
	size_t label = 0;
	if (n == 0 || n > DKIM_VERIFY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Decimal, 1..18 digits. */
static bool parse_num(const dkim_tags *tg, const dkim_tag *t, uint64_t *v_r)
{
	const uint8_t *p = tg->text + t->value_off;
	uint64_t v = 0;
	if (t->value_len == 0 || t->value_len > 18)
		return false;
	for (size_t i = 0; i < t->value_len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*v_r = v;
	return true;
}

/* base64 (FWS already removed) decoded exactly into out. */
static bool b64_decode(const char *s, size_t n, uint8_t *out, size_t max,
		       size_t *len_r)
{
	const char *end = NULL;
	if (n == 0)
		return false;
	if (sodium_base642bin(out, max, s, n, NULL, len_r, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return end == s + n;
}

/* ---- h= and q= lists ---- */

typedef struct hlist {
	hname h[DKIM_VERIFY_MAX_H];
	size_t n;
	bool too_many, bad, has_from;
} hlist;

static int h_add(void *ctx, const uint8_t *p, size_t n)
{
	hlist *l = ctx;
	if (n == 0) {
		l->bad = true;
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] < 33 || p[i] > 126 || p[i] == ':') {
			l->bad = true;
			return 1;
		}
	if (l->n == DKIM_VERIFY_MAX_H) {
		l->too_many = true;
		return 1;
	}
	if (mem_ieq(p, n, "from"))
		l->has_from = true;
	l->h[l->n].p = p;
	l->h[l->n].n = n;
	l->n++;
	return 0;
}

typedef struct want {
	const char *a, *b; /* either matches (b may be NULL) */
	bool found;
	bool icase;
} want;

static int want_fn(void *ctx, const uint8_t *p, size_t n)
{
	want *w = ctx;
	if (w->icase ? (mem_ieq(p, n, w->a) ||
			(w->b != NULL && mem_ieq(p, n, w->b)))
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

/* ---- Body hash ---- */

typedef struct bodyemit {
	gnutls_hash_hd_t hd;
	bool limited;
	uint64_t limit; /* bytes still to hash when limited */
	uint64_t total; /* canonical body bytes seen */
} bodyemit;

static void body_emit(void *ctx, const uint8_t *p, size_t n)
{
	bodyemit *b = ctx;
	size_t take = n;
	b->total += n;
	if (b->limited) {
		if (take > b->limit)
			take = (size_t)b->limit;
		b->limit -= take;
	}
	if (take > 0)
		hash_emit(b->hd, p, take);
}

/* ---- One signature ---- */

static void canon_header(bool relaxed, const uint8_t *msg,
			 const mail_field *f, bool crlf, gnutls_hash_hd_t hd)
{
	if (relaxed)
		dkim_canon_header_relaxed(msg, f, crlf, hash_emit, hd);
	else
		dkim_canon_header_simple(msg, f, crlf, hash_emit, hd);
}

static bool field_named(const uint8_t *msg, const mail_field *f,
			const hname *h)
{
	return !f->malformed && mem_ieq2(msg + f->off, f->name_len, h->p, h->n);
}

/* Check the field fi and compute its hashes; sets sig->result (decided)
 * or leaves need_key set. */
static void check_sig(const sigctx *c, const mail_field *f,
		      dkim_verify_sig *sig)
{
	const uint8_t *msg = c->msg;
	size_t vend = f->off + f->len;
	dkim_tags tg;
	const char *err;
	const dkim_tag *t;
	bool hrelaxed = false, brelaxed = false;
	uint64_t tv = 0, xv = 0, lv = 0;
	bool has_t = false, has_x = false, has_l = false;
	hlist hl;
	char b64[B_B64_MAX];
	uint8_t bh[64];
	size_t bh_len, n;

	sig->need_key = false;
	if (f->len > DKIM_VERIFY_SIG_MAX)
		return decide(sig, DKIM_PERMERROR,
			      "DKIM-Signature field too long");
	if (vend > f->value_off && msg[vend - 1] == '\n')
		vend--;
	if (vend > f->value_off && msg[vend - 1] == '\r')
		vend--;
	if (dkim_tags_parse(msg + f->value_off, vend - f->value_off, &tg,
			    &err) < 0)
		return decide(sig, DKIM_PERMERROR, err);

	/* d= and s= first, so that even a refused signature names them. */
	t = dkim_tags_get(&tg, "d");
	if (t != NULL && dname_ok(tg.text + t->value_off, t->value_len)) {
		memcpy(sig->d, tg.text + t->value_off, t->value_len);
		sig->d[t->value_len] = '\0';
	}
	t = dkim_tags_get(&tg, "s");
	if (t != NULL && dname_ok(tg.text + t->value_off, t->value_len)) {
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
	if (t != NULL) {
		const uint8_t *p = tg.text + t->value_off;
		const uint8_t *sl = memchr(p, '/', t->value_len);
		size_t hn = sl != NULL ? (size_t)(sl - p) : t->value_len;
		if (hn == 7 && memcmp(p, "relaxed", 7) == 0)
			hrelaxed = true;
		else if (!(hn == 6 && memcmp(p, "simple", 6) == 0))
			return decide(sig, DKIM_PERMERROR, "bad c= value");
		if (sl != NULL) {
			size_t bn = t->value_len - hn - 1;
			if (bn == 7 && memcmp(sl + 1, "relaxed", 7) == 0)
				brelaxed = true;
			else if (!(bn == 6 && memcmp(sl + 1, "simple", 6) == 0))
				return decide(sig, DKIM_PERMERROR,
					      "bad c= value");
		}
	}
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
		if (!dname_ok(dom, dn))
			return decide(sig, DKIM_PERMERROR, "bad i= domain");
		if (!(mem_ieq(dom, dn, sig->d) ||
		      (dn > dl + 1 && dom[dn - dl - 1] == '.' &&
		       mem_ieq(dom + dn - dl, dl, sig->d))))
			return decide(sig, DKIM_PERMERROR,
				      "i= domain is not d= or under it");
		memcpy(sig->i_domain, dom, dn);
		sig->i_domain[dn] = '\0';
	} else {
		memcpy(sig->i_domain, sig->d, strlen(sig->d) + 1);
	}

	if ((t = dkim_tags_get(&tg, "t")) != NULL) {
		if (!parse_num(&tg, t, &tv))
			return decide(sig, DKIM_PERMERROR, "bad t= value");
		has_t = true;
	}
	if ((t = dkim_tags_get(&tg, "x")) != NULL) {
		if (!parse_num(&tg, t, &xv))
			return decide(sig, DKIM_PERMERROR, "bad x= value");
		has_x = true;
	}
	if ((t = dkim_tags_get(&tg, "l")) != NULL) {
		if (!parse_num(&tg, t, &lv))
			return decide(sig, DKIM_PERMERROR, "bad l= value");
		has_l = true;
	}
	if (has_t && has_x && xv < tv)
		return decide(sig, DKIM_PERMERROR, "x= is before t=");

	memset(&hl, 0, sizeof(hl));
	t = dkim_tags_get(&tg, "h");
	if (dkim_tag_value_split(&tg, t, h_add, &hl) != 0) {
		if (hl.too_many)
			return decide(sig, DKIM_PERMERROR,
				      "too many names in h=");
		return decide(sig, DKIM_PERMERROR, "bad h= value");
	}
	if (!hl.has_from)
		return decide(sig, DKIM_PERMERROR, "h= does not list from");

	t = dkim_tags_get(&tg, "bh");
	n = dkim_tag_value_nows(&tg, t, b64, sizeof(b64));
	if (n >= sizeof(b64) || !b64_decode(b64, n, bh, sizeof(bh), &bh_len) ||
	    bh_len != 32)
		return decide(sig, DKIM_PERMERROR, "bad bh= value");
	t = dkim_tags_get(&tg, "b");
	n = dkim_tag_value_nows(&tg, t, b64, sizeof(b64));
	if (n >= sizeof(b64) ||
	    !b64_decode(b64, n, sig->b, sizeof(sig->b), &sig->b_len))
		return decide(sig, DKIM_PERMERROR, "bad b= value");
	if (sig->alg == DKIM_VERIFY_ED25519_SHA256 && sig->b_len != 64)
		return decide(sig, DKIM_PERMERROR,
			      "ed25519 b= is not 64 bytes");

	if (has_x && c->now != 0 && c->now > xv)
		return decide(sig, DKIM_FAIL, "signature expired");

	/* The body hash. */
	{
		bodyemit be = {.limited = has_l, .limit = lv, .total = 0};
		uint8_t digest[32];
		if (gnutls_hash_init(&be.hd, GNUTLS_DIG_SHA256) < 0)
			abort();
		if (brelaxed)
			dkim_canon_body_relaxed(msg + c->body_off,
						c->len - c->body_off,
						body_emit, &be);
		else
			dkim_canon_body_simple(msg + c->body_off,
					       c->len - c->body_off,
					       body_emit, &be);
		gnutls_hash_deinit(be.hd, digest);
		if (has_l && lv > be.total)
			return decide(sig, DKIM_FAIL,
				      "l= is longer than the body");
		if (sodium_memcmp(digest, bh, 32) != 0)
			return decide(sig, DKIM_FAIL, "body hash mismatch");
		sig->result.partial = has_l && lv < be.total;
	}

	/* The header hash. */
	{
		gnutls_hash_hd_t hd;
		if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0)
			abort();
		for (size_t j = 0; j < hl.n; j++) {
			size_t used = 0;
			for (size_t k = 0; k < j; k++)
				if (mem_ieq2(hl.h[k].p, hl.h[k].n, hl.h[j].p,
					     hl.h[j].n))
					used++;
			for (size_t k = c->nf; k-- > 0;) {
				if (!field_named(msg, &c->fields[k], &hl.h[j]))
					continue;
				if (used-- == 0) {
					canon_header(hrelaxed, msg,
						     &c->fields[k], true, hd);
					break;
				}
			}
			/* not found: the null string, nothing hashed */
		}
		/* This field with b='s value removed (dkimpy's reading of
		 * §3.5: the blanks before the value and inside it go, those
		 * after it stay). */
		const dkim_tag *bt = dkim_tags_get(&tg, "b");
		size_t eq = f->value_off + bt->name_off + bt->name_len;
		while (msg[eq] != '=')
			eq++;
		size_t cut = f->value_off + bt->value_off + bt->value_len;
		size_t a = eq + 1 - f->off, b = vend - cut;
		memcpy(c->scratch, msg + f->off, a);
		memcpy(c->scratch + a, msg + cut, b);
		mail_field sf = *f;
		sf.off = 0;
		sf.len = a + b;
		sf.value_off = f->value_off - f->off;
		canon_header(hrelaxed, c->scratch, &sf, false, hd);
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
	mail_header_iter it;
	mail_field f;
	mail_field *fields;
	size_t nf = 0, froms = 0;
	dkim_verify_set *set;

	if (sodium_init() < 0)
		abort();
	if (max_sigs == 0 || max_sigs > DKIM_VERIFY_MAX)
		max_sigs = DKIM_VERIFY_MAX;
	if (max_header == 0)
		max_header = DKIM_MAX_HEADER;
	fields = malloc(DKIM_VERIFY_MAX_FIELDS * sizeof(*fields));
	if (fields == NULL)
		abort();
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (f.off + f.len > max_header) {
			free(fields);
			*error_r = "header section too large";
			return -1;
		}
		if (nf == DKIM_VERIFY_MAX_FIELDS) {
			free(fields);
			*error_r = "too many header fields";
			return -1;
		}
		if (mail_field_is(msg, &f, "from"))
			froms++;
		fields[nf++] = f;
	}

	set = calloc(1, sizeof(*set));
	if (set == NULL)
		abort();
	set->from_count = froms;
	sigctx c = {.msg = msg, .len = len, .body_off = it.body_off,
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
	if (n >= sizeof(p64) || !b64_decode(p64, n, der, sizeof(der), &der_len))
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
