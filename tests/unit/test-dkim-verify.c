/*
 * test-dkim-verify.c — src/mime/dkim-tags and src/mime/dkim-verify: the
 * tag-list syntax table (TESTING.md D6), the simple canonicalisers
 * (D7), messages signed by our own dkim_sign (rsa-sha256, ed25519-sha256)
 * verifying and failing when changed, signatures built here with
 * dkim_sign_raw and chosen tags (D3 l=, D4 multiple From, D5 algorithm
 * and key policy, D6 tag syntax), the limits (D8: 50 signatures, h= with
 * 10k names, too many fields).  python3-dkim signs independently in
 * tests/e2e/test_dkim_oracle.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dkim-sign.h"
#include "dkim-tags.h"
#include "dkim-verify.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 512-bit RSA SubjectPublicKeyInfo (openssl genrsa 512), for RFC 8301. */
#define RSA512_P "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAJpDAmBtJbtddSwo3DrDf0INT9vO" \
	"0L0inc770eUcYL72YDsWN5sTM4fNUnposYO254Mv2uSfvZZBzIQ18N0QMi0CAwEAAQ=="

static dkim_key *rsa_key, *ed_key;
static char *rsa_txt, *ed_txt;

static const char MSG[] =
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: hello\r\n"
	"Date: Sat, 22 Nov 2025 12:00:00 +0000\r\n"
	"Message-ID: <v1@example.org>\r\n"
	"\r\n"
	"Hello Bob.\r\n"
	"Second  line\t here.\r\n";

static int group_setup(void **state)
{
	char *pem;
	const char *err;
	(void)state;
	if (dkim_keygen(DKIM_RSA2048, &pem, &rsa_txt, &err) < 0 ||
	    dkim_key_load_pem(pem, strlen(pem), &rsa_key, &err) < 0)
		return -1;
	dkim_pem_free(&pem);
	if (dkim_keygen(DKIM_ED25519, &pem, &ed_txt, &err) < 0 ||
	    dkim_key_load_pem(pem, strlen(pem), &ed_key, &err) < 0)
		return -1;
	dkim_pem_free(&pem);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	dkim_key_free(&rsa_key);
	dkim_key_free(&ed_key);
	free(rsa_txt);
	free(ed_txt);
	return 0;
}

/* ---- helpers ---- */

static char *cat(const char *a, const char *b)
{
	size_t an = strlen(a), bn = strlen(b);
	char *s = malloc(an + bn + 1);
	assert_non_null(s);
	memcpy(s, a, an);
	memcpy(s + an, b, bn + 1);
	return s;
}

/* Replace every tok in s by rep (a new string; s is freed). */
static char *subst(char *s, const char *tok, const char *rep)
{
	char *p;
	while ((p = strstr(s, tok)) != NULL) {
		size_t pre = (size_t)(p - s), tn = strlen(tok);
		size_t rn = strlen(rep), sn = strlen(s);
		char *o = malloc(sn - tn + rn + 1);
		assert_non_null(o);
		memcpy(o, s, pre);
		memcpy(o + pre, rep, rn);
		memcpy(o + pre + rn, p + tn, sn - pre - tn + 1);
		free(s);
		s = o;
	}
	return s;
}

typedef struct sink {
	char b[1 << 16];
	size_t n;
} sink;

static void sink_emit(void *ctx, const uint8_t *p, size_t n)
{
	sink *s = ctx;
	assert_true(s->n + n < sizeof(s->b));
	memcpy(s->b + s->n, p, n);
	s->n += n;
	s->b[s->n] = '\0';
}

/* Relaxed body hash of msg, the first l canonical bytes (l < 0: all). */
static void body_hash(const char *msg, long l, char out[DKIM_BH_SIZE])
{
	static sink b;
	const char *body = strstr(msg, "\r\n\r\n");
	uint8_t d[32];
	assert_non_null(body);
	body += 4;
	b.n = 0;
	dkim_canon_body_relaxed((const uint8_t *)body, strlen(body), sink_emit,
				&b);
	crypto_hash_sha256(d, (const uint8_t *)b.b,
			   l < 0 ? b.n : (size_t)l);
	sodium_bin2base64(out, DKIM_BH_SIZE, d, 32,
			  sodium_base64_VARIANT_ORIGINAL);
}

/* A c=relaxed/relaxed DKIM-Signature field for msg made from tmpl, where
 * %BH% is the body hash (of the first l bytes), %BHF% the same folded,
 * %B% the signature; hn the h= names, colon-separated (the template
 * writes its own h=). */
static char *mksig(const dkim_key *k, const char *msg, const char *tmpl,
		   const char *hn, long l)
{
	char bh[DKIM_BH_SIZE], bhf[DKIM_BH_SIZE + 4], *b = NULL;
	char hbuf[512], *h[32];
	size_t nh = 0;
	const char *err;

	body_hash(msg, l, bh);
	memcpy(bhf, bh, 20);
	memcpy(bhf + 20, "\r\n\t", 3);
	memcpy(bhf + 23, bh + 20, strlen(bh + 20) + 1);
	snprintf(hbuf, sizeof(hbuf), "%s", hn);
	for (char *p = hbuf, *q; p != NULL; p = q) {
		q = strchr(p, ':');
		if (q != NULL)
			*q++ = '\0';
		h[nh++] = p;
	}
	char *s = subst(subst(subst(cat(tmpl, ""), "%BHF%", bhf), "%BH%", bh),
			"%B%", "");
	assert_int_equal(dkim_sign_raw(k, (const uint8_t *)msg, strlen(msg),
				       (const char *const *)h, nh, s, &b,
				       &err), 0);
	free(s);
	s = subst(subst(subst(cat(tmpl, "\r\n"), "%BHF%", bhf), "%BH%", bh),
		  "%B%", b);
	free(b);
	return s;
}

#define RSA_PRE "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; " \
	"d=example.org; s=sel; "
#define ED_PRE "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; " \
	"d=example.org; s=sel; "

/* Verify signature idx of msg with key records txt[0..n) (txt NULL: the
 * lookup failed). */
static dkim_verify_result verify_n(const char *msg, const char *const *txt,
				   size_t n, uint64_t now, size_t idx)
{
	dkim_verify_limits lim = {.now = now};
	dkim_verify_set *set = NULL;
	dkim_verify_result r;
	const char *err;
	const uint8_t *t[8];
	size_t tl[8];

	assert_int_equal(dkim_verify_prepare((const uint8_t *)msg, strlen(msg),
					     &lim, &set, &err), 0);
	assert_true(idx < set->n);
	for (size_t i = 0; txt != NULL && i < n; i++) {
		t[i] = (const uint8_t *)txt[i];
		tl[i] = strlen(txt[i]);
	}
	if (set->sig[idx].need_key)
		assert_string_equal(set->sig[idx].query,
				    "sel._domainkey.example.org");
	dkim_verify_finish(set, idx, txt != NULL ? t : NULL, tl, n, &r);
	assert_non_null(r.reason);
	assert_false(set->sig[idx].need_key);
	dkim_verify_set_free(&set);
	assert_null(set);
	return r;
}

static dkim_verify_result verify1(const char *msg, const char *txt,
				  uint64_t now)
{
	return verify_n(msg, &txt, 1, now, 0);
}

#define ASSERT_RESULT(r, st, why)                                          \
	do {                                                               \
		dkim_verify_result r_ = (r);                               \
		if (r_.status != (st) || strcmp(r_.reason, (why)) != 0)    \
			fail_msg("got %s \"%s\", want %s \"%s\"",          \
				 dkim_status_name(r_.status), r_.reason,   \
				 dkim_status_name(st), (why));             \
	} while (0)

/* A signature from template tmpl over MSG with rsa_key, verified. */
static dkim_verify_result rsa_case(const char *tmpl, const char *hn, long l,
				   const char *txt, uint64_t now)
{
	char *sig = mksig(rsa_key, MSG, tmpl, hn, l);
	char *m = cat(sig, MSG);
	dkim_verify_result r = verify1(m, txt != NULL ? txt : rsa_txt, now);
	free(sig);
	free(m);
	return r;
}

/* ---- dkim-tags ---- */

static void test_tags_table(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int n;            /* tags, or -1: refused */
		const char *why;  /* the reason, when refused */
	} cases[] = {
		{"v=1", 1, NULL},
		{"v=1;", 1, NULL},
		{"v=1; ", 1, NULL},
		{"v=1;\r\n ", 1, NULL},
		{" v = 1 ; a=b ;", 2, NULL},
		{"v=1;\r\n\ta=rsa-sha256", 2, NULL},
		{"v=1;\n a=x", 2, NULL},
		{"a=;b=", 2, NULL},
		{"b=ab cd\r\n ef", 1, NULL},
		{"V=1;v=1", 2, NULL},          /* names are case-sensitive */
		{"x_1=y", 1, NULL},
		{"z=a|b=c:d", 1, NULL},
		{"", -1, "empty tag list"},
		{"  ", -1, "empty tag list"},
		{";", -1, "empty tag-spec"},
		{"v=1;;a=2", -1, "empty tag-spec"},
		{";v=1", -1, "empty tag-spec"},
		{"v=1; ;", -1, "empty tag-spec"},
		{"v=1;v=2", -1, "duplicate tag"},
		{"bh=a; b=c; bh=d", -1, "duplicate tag"},
		{"1v=1", -1, "bad tag name"},
		{"_a=1", -1, "bad tag name"},
		{"a-b=1", -1, "bad tag name"},
		{"a b=1", -1, "bad tag name"},
		{"v", -1, "no '=' after a tag name"},
		{"v;", -1, "no '=' after a tag name"},
		{"a=b\r\nc", -1, "bad byte in a tag value"},
		{"a=b\r\n", -1, "bad byte in a tag value"},
		{"a=b\rc", -1, "bad byte in a tag value"},
		{"a=\xc3\xa9", -1, "bad byte in a tag value"},
		{"a=b\x01", -1, "bad byte in a tag value"},
		{"v=1\r\n", -1, "bad byte in a tag value"},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", -1, "tag name too long"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dkim_tags tg;
		const char *err = NULL;
		int rc = dkim_tags_parse((const uint8_t *)cases[i].in,
					 strlen(cases[i].in), &tg, &err);
		if (cases[i].n < 0) {
			if (rc != -1 || strcmp(err, cases[i].why) != 0)
				fail_msg("case %zu \"%s\": rc %d err %s", i,
					 cases[i].in, rc, err ? err : "-");
			assert_int_equal(tg.n, 0);
		} else {
			if (rc != 0 || (int)tg.n != cases[i].n)
				fail_msg("case %zu \"%s\": rc %d n %zu err %s",
					 i, cases[i].in, rc, tg.n,
					 err ? err : "-");
		}
	}
	/* a NUL inside */
	{
		dkim_tags tg;
		const char *err;
		assert_int_equal(dkim_tags_parse((const uint8_t *)"a=b\0c", 5,
						 &tg, &err), -1);
	}
}

static void test_tags_values(void **state)
{
	(void)state;
	const char *in = " v = 1 ; b = ab\r\n cd \t ef ;\th = from : to :\r\n"
			 " subject ;";
	dkim_tags tg;
	const char *err;
	char out[64];
	assert_int_equal(dkim_tags_parse((const uint8_t *)in, strlen(in), &tg,
					 &err), 0);
	assert_int_equal(tg.n, 3);
	const dkim_tag *v = dkim_tags_get(&tg, "v");
	const dkim_tag *b = dkim_tags_get(&tg, "b");
	assert_non_null(v);
	assert_true(dkim_tag_value_is(&tg, v, "1"));
	assert_null(dkim_tags_get(&tg, "V"));
	assert_int_equal(dkim_tag_value_nows(&tg, b, out, sizeof(out)), 6);
	assert_string_equal(out, "abcdef");
	assert_int_equal(dkim_tag_value_nows(&tg, b, out, 4), 6);
	assert_string_equal(out, "abc");
	assert_int_equal(dkim_tag_value_nows(&tg, b, NULL, 0), 6);
	assert_int_equal(b->value_len, strlen("ab\r\n cd \t ef"));
	/* spec_end is the ';' */
	assert_int_equal(in[b->spec_end], ';');
	assert_int_equal(in[tg.tag[0].spec_end], ';');
}

static void test_tags_limits(void **state)
{
	(void)state;
	char *s = malloc(DKIM_TAGS_TEXT_MAX + 16);
	dkim_tags tg;
	const char *err;
	size_t n = 0;
	assert_non_null(s);
	/* 64 tags pass, 65 do not */
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(s + n, 16, "t%d=%d;", i, i);
	size_t n64 = (size_t)(strstr(s, "t64=") - s);
	assert_int_equal(dkim_tags_parse((uint8_t *)s, n64, &tg, &err), 0);
	assert_int_equal(tg.n, 64);
	assert_int_equal(dkim_tags_parse((uint8_t *)s, n, &tg, &err), -1);
	assert_string_equal(err, "too many tags");
	/* a value of DKIM_TAG_VALUE_MAX passes, one byte more does not */
	memcpy(s, "p=", 2);
	memset(s + 2, 'A', DKIM_TAG_VALUE_MAX + 1);
	assert_int_equal(dkim_tags_parse((uint8_t *)s, 2 + DKIM_TAG_VALUE_MAX,
					 &tg, &err), 0);
	assert_int_equal(dkim_tags_parse((uint8_t *)s,
					 3 + DKIM_TAG_VALUE_MAX, &tg, &err),
			 -1);
	assert_string_equal(err, "tag value too long");
	/* the whole list */
	memset(s, ' ', DKIM_TAGS_TEXT_MAX + 1);
	memcpy(s, "a=1;", 4);
	assert_int_equal(dkim_tags_parse((uint8_t *)s, DKIM_TAGS_TEXT_MAX, &tg,
					 &err), 0);
	assert_int_equal(dkim_tags_parse((uint8_t *)s, DKIM_TAGS_TEXT_MAX + 1,
					 &tg, &err), -1);
	assert_string_equal(err, "tag list too long");
	free(s);
}

/* Every prefix of a valid list parses or is refused with a reason. */
static void test_tags_prefixes(void **state)
{
	(void)state;
	const char *in = "v=1; a=rsa-sha256; h=from:to;\r\n b=abc\r\n\tdef;";
	for (size_t i = 0; i <= strlen(in); i++) {
		dkim_tags tg;
		const char *err = NULL;
		if (dkim_tags_parse((const uint8_t *)in, i, &tg, &err) < 0)
			assert_non_null(err);
	}
}

/* ---- simple canonicalisation (D7) ---- */

static void test_canon_simple(void **state)
{
	(void)state;
	static const struct {
		const char *in, *hdr, *body;
	} cases[] = {
		{"From: a\r\n\r\n", "From: a\r\n", "\r\n"},
		{"From: a\r\n", "From: a\r\n", "\r\n"},
		{"From: a\r\n\r\n\r\n\r\n", "From: a\r\n", "\r\n"},
		{"From: a\r\n\r\nx", "From: a\r\n", "x\r\n"},
		{"From: a\r\n\r\nx \t\r\n\r\n", "From: a\r\n", "x \t\r\n"},
		{"From: a\r\n\r\n \r\n\r\n", "From: a\r\n", " \r\n"},
		{"From: a\r\n\r\n\r\nx\r\n", "From: a\r\n", "\r\nx\r\n"},
		{"From :  a \r\n\tb\r\n\r\nA  B\r\n", "From :  a \r\n\tb\r\n",
		 "A  B\r\n"},
		{"From: a\n\tb\n\nx\ny\n\n", "From: a\r\n\tb\r\n", "x\r\ny\r\n"},
		{"X: a\rb\r\n\r\nc\rd", "X: a\rb\r\n", "c\rd\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static sink h, b;
		const uint8_t *m = (const uint8_t *)cases[i].in;
		size_t len = strlen(cases[i].in);
		mail_header_iter it;
		mail_field f;
		h.n = b.n = 0;
		h.b[0] = b.b[0] = '\0';
		mail_header_iter_init(&it, m, len);
		while (mail_header_next(&it, &f) == 1)
			dkim_canon_header_simple(m, &f, true, sink_emit, &h);
		dkim_canon_body_simple(m + it.body_off, len - it.body_off,
				       sink_emit, &b);
		if (strcmp(h.b, cases[i].hdr) != 0 ||
		    strcmp(b.b, cases[i].body) != 0)
			fail_msg("case %zu: header \"%s\" body \"%s\"", i, h.b,
				 b.b);
	}
}

/* ---- our own signer, verified ---- */

static void own_signed(dkim_key *k, const char *txt, const char *msg)
{
	char *hdr = NULL, *m, *bad;
	const char *err;
	assert_int_equal(dkim_sign(k, "example.org", "sel",
				   (const uint8_t *)msg, strlen(msg),
				   1763812800, &hdr, &err), 0);
	m = cat(hdr, msg);
	dkim_verify_result r = verify1(m, txt, 1763812900);
	ASSERT_RESULT(r, DKIM_PASS, "ok");
	assert_true(r.crypto_ok);
	assert_false(r.partial || r.multiple_from || r.testing);

	/* one body byte changed */
	bad = cat(m, "");
	*strstr(bad, "Bob.") = 'R';
	ASSERT_RESULT(verify1(bad, txt, 0), DKIM_FAIL, "body hash mismatch");
	free(bad);
	/* a signed header changed */
	bad = cat(m, "");
	*strstr(bad, "hello") = 'j';
	ASSERT_RESULT(verify1(bad, txt, 0), DKIM_FAIL, "bad signature");
	free(bad);
	/* a second From above (over-signed by dkim_sign: bad signature, and
	 * never a pass) */
	bad = cat("From: Mallory <ceo@example.org>\r\n", m);
	dkim_verify_result r2 = verify1(bad, txt, 0);
	assert_int_equal(r2.status, DKIM_FAIL);
	assert_true(r2.multiple_from);
	free(bad);
	/* trailing empty lines and WSP changes: relaxed still passes */
	bad = cat(m, "\r\n\r\n");
	ASSERT_RESULT(verify1(bad, txt, 0), DKIM_PASS, "ok");
	free(bad);
	/* the same message with bare LF line ends */
	{
		size_t n = strlen(m), j = 0;
		char *lf = malloc(n + 1);
		assert_non_null(lf);
		for (size_t i = 0; i < n; i++)
			if (!(m[i] == '\r' && m[i + 1] == '\n'))
				lf[j++] = m[i];
		lf[j] = '\0';
		ASSERT_RESULT(verify1(lf, txt, 0), DKIM_PASS, "ok");
		free(lf);
	}
	free(m);
	free(hdr);
}

static void test_own_rsa(void **state)
{
	(void)state;
	own_signed(rsa_key, rsa_txt, MSG);
}

static void test_own_ed25519(void **state)
{
	(void)state;
	own_signed(ed_key, ed_txt, MSG);
}

/* D7: empty body, folded and 8-bit headers, WSP runs. */
static void test_own_edge_messages(void **state)
{
	(void)state;
	static const char *const msgs[] = {
		"From: a@example.org\r\nSubject: hello\r\n\r\n",
		"From: a@example.org\r\nSubject: hello\r\n",
		"From: a@example.org\r\nSubject: hello\r\n\tfolded   twice\r\n"
		"\r\nBob.\r\n",
		"From: =?utf-8?q?x?= <a@example.org>\r\nSubject: hello "
		"\xc3\xa9t\xc3\xa9\r\n\r\nBob.\r\n\xc3\xa9\r\n",
		"From: a@example.org\r\nSubject: hello\r\n\r\n  Bob. \t \r\n"
		"\r\n\r\n\t\r\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		char *hdr = NULL, *m;
		const char *err;
		assert_int_equal(dkim_sign(ed_key, "example.org", "sel",
					   (const uint8_t *)msgs[i],
					   strlen(msgs[i]), 1, &hdr, &err), 0);
		m = cat(hdr, msgs[i]);
		ASSERT_RESULT(verify1(m, ed_txt, 0), DKIM_PASS, "ok");
		free(m);
		free(hdr);
	}
	/* D7 dot-stuffing: signed un-stuffed, verified stuffed: fails */
	{
		const char *un = "From: a@example.org\r\nSubject: hello\r\n\r\n"
				 ".leading dot\r\n";
		char *hdr = NULL, *m;
		const char *err;
		assert_int_equal(dkim_sign(ed_key, "example.org", "sel",
					   (const uint8_t *)un, strlen(un), 1,
					   &hdr, &err), 0);
		m = subst(cat(hdr, un), "\r\n.leading", "\r\n..leading");
		ASSERT_RESULT(verify1(m, ed_txt, 0), DKIM_FAIL,
			      "body hash mismatch");
		free(m);
		free(hdr);
	}
}

/* ---- signatures with chosen tags ---- */

#define H_STD "h=from:to:subject; bh=%BH%; b=%B%"

static void test_chosen_tags_pass(void **state)
{
	(void)state;
	/* b= not last; bh= folded; unknown tags; q=; i= under d= */
	ASSERT_RESULT(rsa_case(RSA_PRE "h=from:to:subject; bh=%BH%; b=%B%; "
			       "z=a|b; x1=y", "from:to:subject", -1, NULL, 0),
		      DKIM_PASS, "ok");
	ASSERT_RESULT(rsa_case(RSA_PRE "q=dns/txt; i=user@Mail.Example.ORG; "
			       "h=from; bh=%BHF%; b=%B%", "from", -1, NULL, 0),
		      DKIM_PASS, "ok");
	ASSERT_RESULT(rsa_case(RSA_PRE "i=@example.org; " H_STD,
			       "from:to:subject", -1, NULL, 0),
		      DKIM_PASS, "ok");
	/* a name in h= that is not in the message: the null string */
	ASSERT_RESULT(rsa_case(RSA_PRE "h=from:cc:from:reply-to; bh=%BH%; "
			       "b=%B%", "from:cc:from:reply-to", -1, NULL, 0),
		      DKIM_PASS, "ok");
	/* t= and x=: x in the future passes, expiry only with now */
	ASSERT_RESULT(rsa_case(RSA_PRE "t=100; x=200; " H_STD,
			       "from:to:subject", -1, NULL, 150),
		      DKIM_PASS, "ok");
	ASSERT_RESULT(rsa_case(RSA_PRE "t=100; x=200; " H_STD,
			       "from:to:subject", -1, NULL, 0),
		      DKIM_PASS, "ok");
	ASSERT_RESULT(rsa_case(RSA_PRE "t=100; x=100; " H_STD,
			       "from:to:subject", -1, NULL, 100),
		      DKIM_PASS, "ok");
}

/* D6: tag syntax. */
static void test_chosen_tags_refused(void **state)
{
	(void)state;
	static const struct {
		const char *tmpl;
		uint64_t now;
		dkim_status st;
		const char *why;
	} cases[] = {
		{RSA_PRE "d=example.org; " H_STD, 0, DKIM_PERMERROR,
		 "duplicate tag"},
		{"DKIM-Signature: a=rsa-sha256; d=example.org; s=sel; " H_STD,
		 0, DKIM_PERMERROR, "no v= tag"},
		{"DKIM-Signature: V=1; a=rsa-sha256; d=example.org; s=sel; "
		 H_STD, 0, DKIM_PERMERROR, "no v= tag"},
		{"DKIM-Signature: v=2; a=rsa-sha256; d=example.org; s=sel; "
		 H_STD, 0, DKIM_PERMERROR, "v= is not 1"},
		{RSA_PRE "h=from:to:subject; b=%B%", 0, DKIM_PERMERROR,
		 "no bh= tag"},
		{RSA_PRE "h=from:to:subject; bh=%BH%; B=%B%", 0, DKIM_PERMERROR,
		 "no b= tag"},
		{"DKIM-Signature: v=1; a=rsa-sha256; s=sel; " H_STD, 0,
		 DKIM_PERMERROR, "no d= tag"},
		{"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; " H_STD, 0,
		 DKIM_PERMERROR, "no s= tag"},
		{RSA_PRE "bh=%BH%; b=%B%", 0, DKIM_PERMERROR, "no h= tag"},
		{RSA_PRE "h=to:subject; bh=%BH%; b=%B%", 0, DKIM_PERMERROR,
		 "h= does not list from"},
		{RSA_PRE "h=from::to; bh=%BH%; b=%B%", 0, DKIM_PERMERROR,
		 "bad h= value"},
		{RSA_PRE "t=200; x=100; " H_STD, 0, DKIM_PERMERROR,
		 "x= is before t="},
		{RSA_PRE "t=100; x=200; " H_STD, 201, DKIM_FAIL,
		 "signature expired"},
		{RSA_PRE "x=abc; " H_STD, 0, DKIM_PERMERROR, "bad x= value"},
		{RSA_PRE "t=1234567890123456789; " H_STD, 0, DKIM_PERMERROR,
		 "bad t= value"},
		{RSA_PRE "i=user@example.com; " H_STD, 0, DKIM_PERMERROR,
		 "i= domain is not d= or under it"},
		{RSA_PRE "i=user@badexample.org; " H_STD, 0, DKIM_PERMERROR,
		 "i= domain is not d= or under it"},
		{RSA_PRE "i=user.example.org; " H_STD, 0, DKIM_PERMERROR,
		 "i= has no '@'"},
		{RSA_PRE "q=dns; " H_STD, 0, DKIM_PERMERROR,
		 "q= does not list dns/txt"},
		{"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/fancy; "
		 "d=example.org; s=sel; " H_STD, 0, DKIM_PERMERROR,
		 "bad c= value"},
		{"DKIM-Signature: v=1; a=rsa-sha256; c=Relaxed; "
		 "d=example.org; s=sel; " H_STD, 0, DKIM_PERMERROR,
		 "bad c= value"},
		{"DKIM-Signature: v=1; a=rsa-sha256; d=exa..mple.org; s=sel; "
		 H_STD, 0, DKIM_PERMERROR, "bad d= domain"},
		{"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=se/l; "
		 H_STD, 0, DKIM_PERMERROR, "bad s= selector"},
		{"DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=sel; "
		 H_STD, 0, DKIM_FAIL, "rsa-sha1 not accepted (RFC 8301)"},
		{"DKIM-Signature: v=1; a=rsa-sha512; d=example.org; s=sel; "
		 H_STD, 0, DKIM_PERMERROR, "unknown a= algorithm"},
		{RSA_PRE "h=from; bh=AAAA; b=%B%", 0, DKIM_PERMERROR,
		 "bad bh= value"},
		{RSA_PRE "h=from; bh=%BH%; b=%B%!", 0, DKIM_PERMERROR,
		 "bad b= value"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dkim_verify_result r = rsa_case(cases[i].tmpl,
						"from:to:subject", -1, NULL,
						cases[i].now);
		if (r.status != cases[i].st ||
		    strcmp(r.reason, cases[i].why) != 0)
			fail_msg("case %zu: got %s \"%s\", want \"%s\"", i,
				 dkim_status_name(r.status), r.reason,
				 cases[i].why);
		assert_false(r.crypto_ok);
	}
}

/* D3: l=. */
static void test_body_length(void **state)
{
	(void)state;
	char *sig = mksig(rsa_key, MSG, RSA_PRE "l=11; " H_STD,
			  "from:to:subject", 11);
	char *m = cat(sig, MSG);
	dkim_verify_result r = verify1(m, rsa_txt, 0);
	ASSERT_RESULT(r, DKIM_NEUTRAL, "l= does not cover the whole body");
	assert_true(r.partial && r.crypto_ok);
	free(m);
	free(sig);
	/* l= exactly the canonical body ("Hello Bob.\r\nSecond line
	 * here.\r\n" = 12 + 19): pass */
	sig = mksig(rsa_key, MSG, RSA_PRE "l=31; " H_STD, "from:to:subject",
		    31);
	m = cat(sig, MSG);
	r = verify1(m, rsa_txt, 0);
	ASSERT_RESULT(r, DKIM_PASS, "ok");
	/* ... and with content appended: no longer counts */
	free(m);
	{
		char *t = cat(sig, MSG);
		m = cat(t, "Click http://evil.example/\r\n");
		free(t);
	}
	r = verify1(m, rsa_txt, 0);
	ASSERT_RESULT(r, DKIM_NEUTRAL, "l= does not cover the whole body");
	free(m);
	free(sig);
	/* l= longer than the body */
	sig = mksig(rsa_key, MSG, RSA_PRE "l=32; " H_STD, "from:to:subject",
		    31);
	m = cat(sig, MSG);
	ASSERT_RESULT(verify1(m, rsa_txt, 0), DKIM_FAIL,
		      "l= is longer than the body");
	free(m);
	free(sig);
}

/* D4: a second From that the signature does not cover. */
static void test_multiple_from(void **state)
{
	(void)state;
	char *sig = mksig(ed_key, MSG, ED_PRE H_STD, "from:to:subject", -1);
	char *m = cat("From: Mallory <ceo@example.org>\r\n", sig);
	char *m2 = cat(m, MSG);
	dkim_verify_result r = verify1(m2, ed_txt, 0);
	ASSERT_RESULT(r, DKIM_FAIL, "multiple From");
	assert_true(r.crypto_ok && r.multiple_from);
	free(m);
	free(m2);
	/* no From at all: a signature that passes does not count */
	{
		const char *nf = "To: b@example.net\r\n\r\nx\r\n";
		char *s2 = mksig(ed_key, nf, ED_PRE "h=from:to; bh=%BH%; b=%B%",
				 "from:to", -1);
		m = cat(s2, nf);
		ASSERT_RESULT(verify1(m, ed_txt, 0), DKIM_FAIL,
			      "no From field");
		free(m);
		free(s2);
	}
	free(sig);
}

/* D5: algorithm and key policy. */
static void test_key_policy(void **state)
{
	(void)state;
	char p[1024], rec[1200];
	const char *pp = strstr(rsa_txt, "p=");
	assert_non_null(pp);
	snprintf(p, sizeof(p), "%s", pp); /* "p=..." */
	static const struct {
		const char *fmt; /* %s: "p=..." of the RSA key */
		dkim_status st;
		const char *why;
		bool testing;
	} cases[] = {
		{"%s", DKIM_PASS, "ok", false},
		{"v=DKIM1; %s", DKIM_PASS, "ok", false},
		{"v=DKIM1; k=rsa; h=sha1:sha256; s=email; %s;", DKIM_PASS,
		 "ok", false},
		{"k=rsa; s=*; %s", DKIM_PASS, "ok", false},
		{"t=y; %s", DKIM_PASS, "ok", true},
		{"t=s:y; %s", DKIM_PASS, "ok", true},
		{"k=rsa; v=DKIM1; %s", DKIM_PERMERROR, "bad key record", false},
		{"v=DKIM2; %s", DKIM_PERMERROR, "bad key record", false},
		{"v=DKIM1; %s; p=x", DKIM_PERMERROR, "bad key record", false},
		{"v=DKIM1; k=ed25519; %s", DKIM_PERMERROR,
		 "key type k= does not match a=", false},
		{"v=DKIM1; k=dsa; %s", DKIM_PERMERROR, "unknown key type k=",
		 false},
		{"v=DKIM1; h=sha1; %s", DKIM_PERMERROR,
		 "key h= does not allow sha256", false},
		{"v=DKIM1; s=tlsrpt; %s", DKIM_PERMERROR,
		 "key s= is not for email", false},
		{"v=DKIM1; k=rsa; p=", DKIM_FAIL, "key revoked", false},
		{"v=DKIM1; k=rsa", DKIM_PERMERROR, "no p= in the key record",
		 false},
		{"v=DKIM1; p=" RSA512_P, DKIM_FAIL,
		 "RSA key shorter than 1024 bits (RFC 8301)", false},
		{"v=DKIM1; p=QUJD", DKIM_PERMERROR, "p= is not a public key",
		 false},
		{"v=DKIM1; p=!!", DKIM_PERMERROR, "bad p= value", false},
	};
	char *sig = mksig(rsa_key, MSG, RSA_PRE H_STD, "from:to:subject", -1);
	char *m = cat(sig, MSG);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *rc = subst(cat(cases[i].fmt, ""), "%s", p);
		snprintf(rec, sizeof(rec), "%s", rc);
		free(rc);
		dkim_verify_result r = verify1(m, rec, 0);
		if (r.status != cases[i].st ||
		    strcmp(r.reason, cases[i].why) != 0 ||
		    r.testing != cases[i].testing)
			fail_msg("case %zu \"%s\": got %s \"%s\"", i, rec,
				 dkim_status_name(r.status), r.reason);
	}
	/* the Ed25519 key for an rsa-sha256 signature, and the other way */
	ASSERT_RESULT(verify1(m, ed_txt, 0), DKIM_PERMERROR,
		      "key type k= does not match a=");
	/* another RSA key: bad signature */
	{
		char *pem, *txt2;
		const char *err;
		assert_int_equal(dkim_keygen(DKIM_RSA2048, &pem, &txt2, &err),
				 0);
		ASSERT_RESULT(verify1(m, txt2, 0), DKIM_FAIL, "bad signature");
		dkim_pem_free(&pem);
		free(txt2);
	}
	/* several records: the first that is a key record counts */
	{
		const char *recs[3] = {"v=spf1 -all", "garbage", rsa_txt};
		ASSERT_RESULT(verify_n(m, recs, 3, 0, 0), DKIM_PASS, "ok");
		ASSERT_RESULT(verify_n(m, recs, 2, 0, 0), DKIM_PERMERROR,
			      "bad key record");
		ASSERT_RESULT(verify_n(m, recs, 0, 0, 0), DKIM_PERMERROR,
			      "no key record");
		ASSERT_RESULT(verify_n(m, NULL, 0, 0, 0), DKIM_TEMPERROR,
			      "key lookup failed");
	}
	free(m);
	free(sig);

	/* t=s: i= must be d= itself */
	sig = mksig(ed_key, MSG, ED_PRE "i=a@sub.example.org; " H_STD,
		    "from:to:subject", -1);
	m = cat(sig, MSG);
	snprintf(rec, sizeof(rec), "t=s; %s", strstr(ed_txt, "k="));
	ASSERT_RESULT(verify1(m, rec, 0), DKIM_FAIL,
		      "key t=s but i= is a subdomain of d=");
	ASSERT_RESULT(verify1(m, ed_txt, 0), DKIM_PASS, "ok");
	free(m);
	free(sig);
	sig = mksig(ed_key, MSG, ED_PRE "i=a@EXAMPLE.org; " H_STD,
		    "from:to:subject", -1);
	m = cat(sig, MSG);
	ASSERT_RESULT(verify1(m, rec, 0), DKIM_PASS, "ok");
	/* an Ed25519 p= that is not 32 bytes */
	ASSERT_RESULT(verify1(m, "k=ed25519; p=QUJD", 0), DKIM_PERMERROR,
		      "ed25519 p= is not 32 bytes");
	free(m);
	free(sig);
}

/* D8: limits. */
static void test_limits(void **state)
{
	(void)state;
	dkim_verify_limits lim = {0};
	dkim_verify_set *set = NULL;
	const char *err;
	char *sig = mksig(ed_key, MSG, ED_PRE H_STD, "from:to:subject", -1);
	size_t sl = strlen(sig), ml = strlen(MSG);
	char *m = malloc(50 * sl + ml + 1);
	assert_non_null(m);
	/* 50 signatures: 8 checked, all found */
	for (size_t i = 0; i < 50; i++)
		memcpy(m + i * sl, sig, sl);
	memcpy(m + 50 * sl, MSG, ml + 1);
	assert_int_equal(dkim_verify_prepare((uint8_t *)m, strlen(m), &lim,
					     &set, &err), 0);
	assert_int_equal(set->found, 50);
	assert_int_equal(set->n, DKIM_VERIFY_MAX);
	for (size_t i = 0; i < set->n; i++) {
		dkim_verify_result r;
		const uint8_t *t = (const uint8_t *)ed_txt;
		size_t tl = strlen(ed_txt);
		assert_true(set->sig[i].need_key);
		dkim_verify_finish(set, i, &t, &tl, 1, &r);
		assert_int_equal(r.status, DKIM_PASS);
	}
	dkim_verify_set_free(&set);
	lim.max_sigs = 2;
	assert_int_equal(dkim_verify_prepare((uint8_t *)m, strlen(m), &lim,
					     &set, &err), 0);
	assert_int_equal(set->n, 2);
	dkim_verify_set_free(&set);
	dkim_verify_set_free(&set); /* NULL is fine */
	free(m);
	free(sig);

	/* h= with 10k names: refused, bounded */
	{
		size_t cap = 10000 * 6 + 256;
		char *h = malloc(cap), *msg2;
		assert_non_null(h);
		size_t n = (size_t)snprintf(h, cap, ED_PRE "h=from");
		for (int i = 0; i < 10000; i++)
			n += (size_t)snprintf(h + n, cap - n, ":to");
		snprintf(h + n, cap - n, "; bh=AAAA; b=AAAA\r\n");
		msg2 = cat(h, MSG);
		ASSERT_RESULT(verify1(msg2, ed_txt, 0), DKIM_PERMERROR,
			      "DKIM-Signature field too long");
		free(msg2);
		/* 65 names fit in the field but not in h= */
		n = (size_t)snprintf(h, cap, ED_PRE "h=from");
		for (int i = 0; i < DKIM_VERIFY_MAX_H; i++)
			n += (size_t)snprintf(h + n, cap - n, ":to");
		snprintf(h + n, cap - n, "; bh=AAAA; b=AAAA\r\n");
		msg2 = cat(h, MSG);
		ASSERT_RESULT(verify1(msg2, ed_txt, 0), DKIM_PERMERROR,
			      "too many names in h=");
		free(msg2);
		/* a long but not too long value inside a short field:
		 * the tag parser's limit */
		n = (size_t)snprintf(h, cap, ED_PRE "z=");
		memset(h + n, 'a', DKIM_TAG_VALUE_MAX + 1);
		n += DKIM_TAG_VALUE_MAX + 1;
		snprintf(h + n, cap - n, "; h=from; bh=AAAA; b=AAAA\r\n");
		msg2 = cat(h, MSG);
		ASSERT_RESULT(verify1(msg2, ed_txt, 0), DKIM_PERMERROR,
			      "tag value too long");
		free(msg2);
		free(h);
	}
	/* too many header fields, too large a header section */
	{
		size_t cap = (DKIM_VERIFY_MAX_FIELDS + 1) * 8 + 64;
		char *x = malloc(cap);
		size_t n = 0;
		assert_non_null(x);
		for (int i = 0; i <= DKIM_VERIFY_MAX_FIELDS; i++)
			n += (size_t)snprintf(x + n, cap - n, "X: a\r\n");
		snprintf(x + n, cap - n, "\r\nbody\r\n");
		lim.max_sigs = 0;
		assert_int_equal(dkim_verify_prepare((uint8_t *)x, strlen(x),
						     &lim, &set, &err), -1);
		assert_string_equal(err, "too many header fields");
		lim.max_header = 100;
		assert_int_equal(dkim_verify_prepare((uint8_t *)x, strlen(x),
						     &lim, &set, &err), -1);
		assert_string_equal(err, "header section too large");
		free(x);
	}
	/* a message without signatures */
	lim.max_header = 0;
	assert_int_equal(dkim_verify_prepare((const uint8_t *)MSG, ml, &lim,
					     &set, &err), 0);
	assert_int_equal(set->found, 0);
	assert_int_equal(set->n, 0);
	dkim_verify_set_free(&set);
}

/* Each signature of a message with two (rsa and ed25519) separately;
 * a decided signature needs no key and finish just copies its result. */
static void test_two_signatures(void **state)
{
	(void)state;
	char *s1 = mksig(rsa_key, MSG, RSA_PRE H_STD, "from:to:subject", -1);
	char *s2 = mksig(ed_key, MSG, ED_PRE H_STD, "from:to:subject", -1);
	char *bad = cat("DKIM-Signature: v=1; a=rsa-sha1; d=example.org; "
			"s=x; h=from; bh=AAAA; b=AAAA\r\n", s2);
	char *m = cat(bad, MSG), *m2 = cat(s1, m);
	ASSERT_RESULT(verify_n(m2, (const char *const *)&rsa_txt, 1, 0, 0),
		      DKIM_PASS, "ok");
	ASSERT_RESULT(verify_n(m2, NULL, 0, 0, 1), DKIM_FAIL,
		      "rsa-sha1 not accepted (RFC 8301)");
	ASSERT_RESULT(verify_n(m2, (const char *const *)&ed_txt, 1, 0, 2),
		      DKIM_PASS, "ok");
	free(m);
	free(m2);
	free(bad);
	free(s1);
	free(s2);
}

/* ---- the RFCs' published examples ---- */

/* RFC 8463 Appendix A.2: the key records of the brisbane (Ed25519) and
 * test (RSA 1024) selectors, the DNS strings joined. */
static const char rfc8463_ed_txt[] =
	"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rfc8463_rsa_txt[] =
	"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
	"iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
	"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
	"Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

/* RFC 8463 Appendix A.3: the message signed with both keys. */
static const char rfc8463_signed[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	" d=football.example.com; i=@football.example.com;\r\n"
	" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
	" subject : date : message-id : from : subject : date;\r\n"
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
	" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
	" d=football.example.com; i=@football.example.com;\r\n"
	" q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
	" date : message-id : from : subject : date;\r\n"
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	" b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
	" DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
	" dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n";

/* Both signatures of msg with the A.2 records, each checked against
 * want (PASS: ok; otherwise the reason given). */
static void rfc8463_check(const char *msg, uint64_t now, dkim_status st,
			  const char *why_ed, const char *why_rsa)
{
	dkim_verify_limits lim = {.now = now};
	dkim_verify_set *set = NULL;
	dkim_verify_result r;
	const char *err;
	const uint8_t *t;
	size_t tl;

	assert_int_equal(dkim_verify_prepare((const uint8_t *)msg, strlen(msg),
					     &lim, &set, &err), 0);
	assert_int_equal(set->found, 2);
	assert_int_equal(set->n, 2);
	assert_int_equal(set->from_count, 1);
	/* top-most first: ed25519 (brisbane), then rsa (test) */
	assert_int_equal(set->sig[0].alg, DKIM_VERIFY_ED25519_SHA256);
	assert_int_equal(set->sig[1].alg, DKIM_VERIFY_RSA_SHA256);
	assert_string_equal(set->sig[0].d, "football.example.com");
	assert_string_equal(set->sig[0].i_domain, "football.example.com");
	if (set->sig[0].need_key) {
		assert_string_equal(set->sig[0].query,
				    "brisbane._domainkey.football.example.com");
		assert_string_equal(set->sig[1].query,
				    "test._domainkey.football.example.com");
	}
	t = (const uint8_t *)rfc8463_ed_txt;
	tl = strlen(rfc8463_ed_txt);
	dkim_verify_finish(set, 0, &t, &tl, 1, &r);
	ASSERT_RESULT(r, st, why_ed);
	assert_int_equal(r.crypto_ok, st == DKIM_PASS);
	t = (const uint8_t *)rfc8463_rsa_txt;
	tl = strlen(rfc8463_rsa_txt);
	dkim_verify_finish(set, 1, &t, &tl, 1, &r);
	ASSERT_RESULT(r, st, why_rsa);
	assert_int_equal(r.crypto_ok, st == DKIM_PASS);
	dkim_verify_set_free(&set);
}

/* RFC 8463 Appendix A.3: both published signatures verify with the A.2
 * keys (t= 1528637909 and no x=: any now passes, 0 skips the clock);
 * a changed body byte or signed header fails both. */
static void test_rfc8463_appendix_a(void **state)
{
	(void)state;
	char *bad;

	rfc8463_check(rfc8463_signed, 0, DKIM_PASS, "ok", "ok");
	rfc8463_check(rfc8463_signed, 1528637909, DKIM_PASS, "ok", "ok");
	rfc8463_check(rfc8463_signed, 1763812800, DKIM_PASS, "ok", "ok");

	/* a body byte */
	bad = cat(rfc8463_signed, "");
	*strstr(bad, "hungry") = 'H';
	rfc8463_check(bad, 0, DKIM_FAIL, "body hash mismatch",
		      "body hash mismatch");
	free(bad);
	/* a byte of a signed header field (Subject) */
	bad = cat(rfc8463_signed, "");
	*strstr(bad, "dinner") = 'D';
	rfc8463_check(bad, 0, DKIM_FAIL, "bad signature", "bad signature");
	free(bad);
	/* a byte of the signed Date and of the Message-ID */
	bad = cat(rfc8463_signed, "");
	*strstr(bad, "21:00:37") = '3';
	rfc8463_check(bad, 0, DKIM_FAIL, "bad signature", "bad signature");
	free(bad);
	bad = cat(rfc8463_signed, "");
	*strstr(bad, "5F8J") = '6';
	rfc8463_check(bad, 0, DKIM_FAIL, "bad signature", "bad signature");
	free(bad);
	/* relaxed/relaxed: WSP inside a line and trailing empty lines do
	 * not matter */
	bad = cat(rfc8463_signed, "\r\n\r\n");
	rfc8463_check(bad, 0, DKIM_PASS, "ok", "ok");
	free(bad);
	/* a Subject added above: over-signed by h=, so both fail, and the
	 * message then has two Subject fields (not counted by From) */
	bad = cat("Subject: Is dinner ready?\r\n", rfc8463_signed);
	rfc8463_check(bad, 0, DKIM_FAIL, "bad signature", "bad signature");
	free(bad);
	/* each key for the other signature: k= does not match a= */
	{
		dkim_verify_limits lim = {0};
		dkim_verify_set *set = NULL;
		dkim_verify_result r;
		const char *err;
		const uint8_t *t = (const uint8_t *)rfc8463_rsa_txt;
		size_t tl = strlen(rfc8463_rsa_txt);
		assert_int_equal(dkim_verify_prepare(
					 (const uint8_t *)rfc8463_signed,
					 strlen(rfc8463_signed), &lim, &set,
					 &err), 0);
		dkim_verify_finish(set, 0, &t, &tl, 1, &r);
		ASSERT_RESULT(r, DKIM_PERMERROR,
			      "key type k= does not match a=");
		t = (const uint8_t *)rfc8463_ed_txt;
		tl = strlen(rfc8463_ed_txt);
		dkim_verify_finish(set, 1, &t, &tl, 1, &r);
		ASSERT_RESULT(r, DKIM_PERMERROR,
			      "key type k= does not match a=");
		dkim_verify_set_free(&set);
	}
}

/* RFC 6376 Appendix C: the public key record of brisbane._domainkey.
 * example.com (the 1024-bit RSA key whose private half C prints). */
static const char rfc6376_txt[] =
	"v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/"
	"DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/Rtd"
	"C2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDd"
	"QPNUYckcQ2QIDAQAB";

/* RFC 6376 Appendix A.2, with the two corrections of its errata: the
 * body's "game. Are" has ONE space (Erratum 3192: A.1 and A.2 print two,
 * and the published bh= is the hash of the body with one), and the folded
 * lines of the header fields start with six spaces (Erratum 4926: the
 * header's whitespace as printed is not what was signed, and c=simple
 * keeps every blank).  %BODY% is replaced by the body. */
static const char rfc6376_signed[] =
	"DKIM-Signature: v=1; a=rsa-sha256; s=brisbane; d=example.com;\r\n"
	"      c=simple/simple; q=dns/txt; i=joe@football.example.com;\r\n"
	"      h=Received : From : To : Subject : Date : Message-ID;\r\n"
	"      bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	"      b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB\r\n"
	"        4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut\r\n"
	"        KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV\r\n"
	"        4bmp/YzhwvcubU4=;\r\n"
	"Received: from client1.football.example.com  [192.0.2.1]\r\n"
	"      by submitserver.example.com with SUBMISSION;\r\n"
	"      Fri, 11 Jul 2003 21:01:54 -0700 (PDT)\r\n"
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"%BODY%";

static dkim_verify_result rfc6376_verify(const char *msg)
{
	dkim_verify_limits lim = {0};
	dkim_verify_set *set = NULL;
	dkim_verify_result r;
	const char *err;
	const uint8_t *t = (const uint8_t *)rfc6376_txt;
	size_t tl = strlen(rfc6376_txt);

	assert_int_equal(dkim_verify_prepare((const uint8_t *)msg, strlen(msg),
					     &lim, &set, &err), 0);
	assert_int_equal(set->n, 1);
	assert_string_equal(set->sig[0].d, "example.com");
	assert_string_equal(set->sig[0].i_domain, "football.example.com");
	if (set->sig[0].need_key)
		assert_string_equal(set->sig[0].query,
				    "brisbane._domainkey.example.com");
	dkim_verify_finish(set, 0, &t, &tl, 1, &r);
	dkim_verify_set_free(&set);
	return r;
}

/* RFC 6376 Appendix A/C: the example verifies only as its errata correct
 * it; as printed (two spaces in the body) its body hash does not match. */
static void test_rfc6376_appendix_a(void **state)
{
	(void)state;
	char *m, *bad;
	dkim_verify_result r;

	m = subst(cat(rfc6376_signed, ""), "%BODY%",
		  "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\n"
		  "Joe.\r\n");
	r = rfc6376_verify(m);
	ASSERT_RESULT(r, DKIM_PASS, "ok");
	assert_true(r.crypto_ok);
	/* simple body: trailing empty lines are ignored... */
	bad = cat(m, "\r\n\r\n");
	ASSERT_RESULT(rfc6376_verify(bad), DKIM_PASS, "ok");
	free(bad);
	/* ...but not a changed body or one line more */
	bad = cat(m, "Extra line.\r\n");
	ASSERT_RESULT(rfc6376_verify(bad), DKIM_FAIL, "body hash mismatch");
	free(bad);
	/* c=simple header: one blank more in the signed Received field */
	bad = subst(cat(m, ""), "\r\n      by submitserver",
		    "\r\n\t      by submitserver");
	ASSERT_RESULT(rfc6376_verify(bad), DKIM_FAIL, "bad signature");
	free(bad);
	/* a signed header changed */
	bad = subst(cat(m, ""), "Subject: Is dinner", "Subject: Is lunch");
	ASSERT_RESULT(rfc6376_verify(bad), DKIM_FAIL, "bad signature");
	free(bad);
	free(m);

	/* the body as A.1 and A.2 print it (Erratum 3192) */
	m = subst(cat(rfc6376_signed, ""), "%BODY%",
		  "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\n"
		  "Joe.\r\n");
	ASSERT_RESULT(rfc6376_verify(m), DKIM_FAIL, "body hash mismatch");
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags_table),
		cmocka_unit_test(test_tags_values),
		cmocka_unit_test(test_tags_limits),
		cmocka_unit_test(test_tags_prefixes),
		cmocka_unit_test(test_canon_simple),
		cmocka_unit_test(test_own_rsa),
		cmocka_unit_test(test_own_ed25519),
		cmocka_unit_test(test_own_edge_messages),
		cmocka_unit_test(test_chosen_tags_pass),
		cmocka_unit_test(test_chosen_tags_refused),
		cmocka_unit_test(test_body_length),
		cmocka_unit_test(test_multiple_from),
		cmocka_unit_test(test_key_policy),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_two_signatures),
		cmocka_unit_test(test_rfc8463_appendix_a),
		cmocka_unit_test(test_rfc6376_appendix_a),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
