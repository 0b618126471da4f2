/*
 * test-didsig.c — src/mime/didsig: the AMP-DID-Signature field.  The
 * test vector of PROTOCOL.md §12.5 byte for byte; sign and verify round
 * trips (CRLF and bare LF, folding within 78 columns, over-signing in
 * h=); every tampering fails: a body byte, a signed header, a prepended
 * From, a field added that was over-signed, d= swapped for another user,
 * the wrong key; fields built here with chosen tags (forge(), an
 * independent hash written from the spec over dkim-sign.h's relaxed
 * canonicaliser): d= of another domain, h=from without over-signing and
 * a prepended From ("multiple From"), t= in the future, syntax
 * (duplicate and missing tags, bad base64, unknown v= and a=, DIDs not
 * canonical, huge h=); 100 fields (only the first 4 checked); temperror
 * and none; signer refusals; prepare's limits.  The Python oracle
 * (tests/e2e/test_didsig_oracle.py) checks the same rules independently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "didsig.h"
#include "dkim-sign.h"
#include "mail-header.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALICE "did:aftersmtp:example.org:alice"
#define BOB "did:aftersmtp:example.org:bob"
#define NODE "did:aftersmtp:example.org:node"
#define T0 UINT64_C(1767225600) /* 2026-01-01T00:00:00Z */

static uint8_t sk[64], pk[32], sk2[64], pk2[32];

static const char MSG[] =
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: DID signature test vector\r\n"
	"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
	"Message-ID: <vector-1@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"Hello Bob.\r\n";

/* PROTOCOL.md §12.5: seed 00 01 .. 1f, t=T0, d=ALICE, n=NODE. */
static const char VECTOR[] =
	"AMP-DID-Signature: v=1; a=ed25519-sha256; d=did:aftersmtp:example.org:alice;\r\n"
	" n=did:aftersmtp:example.org:node; t=1767225600; h=from:from:to:to:cc:subject:\r\n"
	" subject:date:date:message-id:message-id:reply-to:mime-version:mime-version:\r\n"
	" content-type:content-type; bh=DD3L33E64/RV0CUJdfGTtPGKU7OPJpo/2LxOdf3k0RI=;\r\n"
	" b=V3ramZJieja1ICOZ/KnkGtLDw+jcetAEsXZzjmwChImURAjuZ9+Xp0DCG4QdQP/SIAvl9cx9nwX\r\n"
	" K8nXs3rgyDw==\r\n";

static int group_setup(void **state)
{
	uint8_t seed[32];
	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	crypto_sign_seed_keypair(pk, sk, seed);
	crypto_sign_keypair(pk2, sk2);
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

/* Replace the first tok in s by rep (a new string; s is freed). */
static char *subst1(char *s, const char *tok, const char *rep)
{
	char *p = strstr(s, tok);
	assert_non_null(p);
	size_t pre = (size_t)(p - s), tn = strlen(tok), rn = strlen(rep);
	size_t sn = strlen(s);
	char *o = malloc(sn - tn + rn + 1);
	assert_non_null(o);
	memcpy(o, s, pre);
	memcpy(o + pre, rep, rn);
	memcpy(o + pre + rn, p + tn, sn - pre - tn + 1);
	free(s);
	return o;
}

static char *subst_all(char *s, const char *tok, const char *rep)
{
	while (strstr(s, tok) != NULL)
		s = subst1(s, tok, rep);
	return s;
}

/* msg signed by the node key s as NODE for sender, the field on top. */
static char *sign_as(const uint8_t *s, const char *sender, const char *msg,
		     uint64_t t)
{
	char *field = NULL, *out;
	const char *err = NULL;
	if (didsig_sign(s, sender, NODE, (const uint8_t *)msg, strlen(msg), t,
			&field, &err) != 0)
		fail_msg("didsig_sign: %s", err);
	out = cat(field, msg);
	free(field);
	return out;
}

/* Verify msg with key k (NULL: unresolved) at now; the verdict, and
 * that field's reason in *why (may be NULL). */
static didsig_status verify(const char *msg, const uint8_t *k, uint64_t now,
			    const char **why)
{
	didsig_set *set = NULL;
	didsig_result r;
	const char *err = NULL;
	size_t idx;
	if (didsig_verify_prepare((const uint8_t *)msg, strlen(msg), &set,
				  &err) != 0)
		fail_msg("prepare: %s", err);
	for (size_t i = 0; i < set->n; i++) {
		didsig_verify_finish(set, i, k, now, &r);
		assert_non_null(r.reason);
		assert_int_not_equal(r.status, DIDSIG_PENDING);
		if (r.status == DIDSIG_PASS)
			assert_true(r.crypto_ok);
	}
	didsig_status st = didsig_verify_verdict(set, &idx);
	if (why != NULL)
		*why = st == DIDSIG_NONE ? "none" : set->sig[idx].result.reason;
	didsig_set_free(&set);
	assert_null(set);
	return st;
}

static void expect(const char *msg, const uint8_t *k, uint64_t now,
		   didsig_status want, const char *reason)
{
	const char *why = NULL;
	didsig_status st = verify(msg, k, now, &why);
	if (st != want || (reason != NULL && strcmp(why, reason) != 0))
		fail_msg("got %s \"%s\", want %s \"%s\"",
			 didsig_status_name(st), why, didsig_status_name(want),
			 reason != NULL ? reason : "*");
}

typedef struct sha_ctx {
	crypto_hash_sha256_state st;
} sha_ctx;

static void sha_emit(void *ctx, const uint8_t *p, size_t n)
{
	crypto_hash_sha256_update(&((sha_ctx *)ctx)->st, p, n);
}

/* Base64 SHA-256 of the relaxed body of msg. */
static void bh_of(const char *msg, char out[DKIM_BH_SIZE])
{
	const char *err;
	assert_int_equal(dkim_body_hash((const uint8_t *)msg, strlen(msg), out,
					&err), 0);
}

/* A field with chosen tags: "AMP-DID-Signature: " tags " b=" signed here
 * from the spec with key s over the names h[0..nh) of msg, then put on
 * top of msg.  Written apart from didsig.c: the field list is walked per
 * name with the iterator, the instances counted from the bottom. */
static char *forge(const uint8_t *s, const char *tags, const char *const *h,
		   size_t nh, const char *msg)
{
	const uint8_t *m = (const uint8_t *)msg;
	size_t len = strlen(msg);
	sha_ctx c;
	uint8_t digest[32], sig[64];
	char b64[100];
	char *text = cat("AMP-DID-Signature: ", tags);
	char *field, *t2, *out;

	crypto_hash_sha256_init(&c.st);
	crypto_hash_sha256_update(&c.st, (const uint8_t *)"AMPv1-didsig", 13);
	for (size_t j = 0; j < nh; j++) {
		mail_header_iter it;
		mail_field f, all[64];
		size_t n = 0, used = 0;
		for (size_t k = 0; k < j; k++)
			if (strcasecmp(h[k], h[j]) == 0)
				used++;
		mail_header_iter_init(&it, m, len);
		while (mail_header_next(&it, &f) == 1)
			if (mail_field_is(m, &f, h[j]) && n < 64)
				all[n++] = f;
		if (used < n)
			dkim_canon_header_relaxed(m, &all[n - 1 - used], true,
						  sha_emit, &c);
	}
	t2 = cat(text, " b=");
	{
		mail_header_iter it;
		mail_field f;
		mail_header_iter_init(&it, (const uint8_t *)t2, strlen(t2));
		assert_int_equal(mail_header_next(&it, &f), 1);
		dkim_canon_header_relaxed((const uint8_t *)t2, &f, false,
					  sha_emit, &c);
	}
	crypto_hash_sha256_final(&c.st, digest);
	crypto_sign_detached(sig, NULL, digest, 32, s);
	sodium_bin2base64(b64, sizeof(b64), sig, 64,
			  sodium_base64_VARIANT_ORIGINAL);
	field = cat(t2, b64);
	free(t2);
	free(text);
	t2 = cat(field, "\r\n");
	out = cat(t2, msg);
	free(t2);
	free(field);
	return out;
}

static const char *const H_STD[] = {"from", "from", "to", "to", "subject",
				    "subject"};

/* "v=1; a=...; d=D; n=N; t=T; h=from:from:to:to:subject:subject;
 * bh=BH;" for msg. */
static char *std_tags(const char *d, const char *n, uint64_t t,
		      const char *msg)
{
	char bh[DKIM_BH_SIZE], *s = malloc(1024);
	assert_non_null(s);
	bh_of(msg, bh);
	snprintf(s, 1024,
		 "v=1; a=ed25519-sha256; d=%s; n=%s; t=%llu;\r\n"
		 " h=from:from:to:to:subject:subject; bh=%s;",
		 d, n, (unsigned long long)t, bh);
	return s;
}

/* ---- tests ---- */

static void test_did_ok(void **state)
{
	static const char *const good[] = {
		ALICE, "did:aftersmtp:mail.example.co.uk:first.last-2_x",
		"did:aftersmtp:a:b", "did:aftersmtp:x-1.y:0",
	};
	static const char *const bad[] = {
		"did:aftersmtp:Example.org:alice",
		"did:aftersmtp:example..org:a", "did:aftersmtp:example.org:.alice",
		"did:aftersmtp:example.org:a..b", "did:aftersmtp:-x.org:a",
		"did:aftersmtp:example.org", "did:web:example.org:alice",
		"did:aftersmtp:example.org:alice.", "did:aftersmtp:example.org.:a",
		"did:aftersmtp:example.org:a:b", "did:aftersmtp::a",
		"did:aftersmtp:example.org:", "did:aftersmtp:ex_ample.org:a",
		"did:aftersmtp:example.org:al ice", "",
	};
	char longd[400];
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(didsig_did_ok(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (didsig_did_ok(bad[i], strlen(bad[i])))
			fail_msg("accepted %s", bad[i]);
	/* 14 + 253 + 1 + 64 = 332 bytes is the longest */
	memcpy(longd, "did:aftersmtp:", 14);
	size_t n = 14;
	for (int l = 0; l < 4; l++) { /* 4 labels of 63 and a dot: 255 */
		memset(longd + n, 'a', 63);
		n += 63;
		longd[n++] = '.';
	}
	n -= 3; /* 253 bytes of domain: ...a.a (last label 61) */
	longd[n - 1] = 'a';
	longd[n++] = ':';
	memset(longd + n, 'b', 64);
	n += 64;
	assert_int_equal(n, 332);
	assert_true(didsig_did_ok(longd, n));
	longd[n] = 'b';
	assert_false(didsig_did_ok(longd, n + 1)); /* local part 65 */
}

static void test_vector(void **state)
{
	char *field = NULL;
	const char *err = NULL;
	(void)state;
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)MSG,
				     strlen(MSG), T0, &field, &err), 0);
	assert_string_equal(field, VECTOR);
	free(field);
	char *m = cat(VECTOR, MSG);
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
}

static void test_round_trip(void **state)
{
	(void)state;
	char *m = sign_as(sk, ALICE, MSG, T0);
	didsig_set *set = NULL;
	didsig_result r;
	const char *err;

	/* lines within 78 columns, CRLF, the field first */
	{
		const char *e = strstr(m, "\r\nFrom:");
		assert_non_null(e);
		for (const char *p = m; p < e;) {
			const char *nl = strstr(p, "\r\n");
			assert_true(nl - p <= 78);
			p = nl + 2;
		}
	}
	assert_int_equal(didsig_verify_prepare((const uint8_t *)m, strlen(m),
					       &set, &err), 0);
	assert_int_equal(set->found, 1);
	assert_int_equal(set->n, 1);
	assert_int_equal(set->from_count, 1);
	assert_true(set->sig[0].need_key);
	assert_string_equal(set->sig[0].sender, ALICE);
	assert_string_equal(set->sig[0].node, NODE);
	assert_int_equal(set->sig[0].t, T0);
	didsig_verify_finish(set, 0, pk, T0, &r);
	assert_int_equal(r.status, DIDSIG_PASS);
	assert_true(r.crypto_ok);
	assert_false(r.multiple_from);
	/* finishing again only copies */
	didsig_verify_finish(set, 0, pk2, T0, &r);
	assert_int_equal(r.status, DIDSIG_PASS);
	didsig_set_free(&set);
	didsig_set_free(&set); /* NULL is fine */
	didsig_set_free(NULL);

	/* now 0: t= not checked; an old t= passes (no expiry) */
	expect(m, pk, 0, DIDSIG_PASS, "ok");
	expect(m, pk, T0 + 10 * 365 * 86400, DIDSIG_PASS, "ok");
	free(m);

	/* bare LF: signed as LF, verified as LF and as CRLF */
	{
		static const char lf[] = "From: a@example.org\nTo: b@x\n"
					 "Subject:  folded\n  value\n\n"
					 "body  line \n\n\n";
		static const char crlf[] = "From: a@example.org\r\nTo: b@x\r\n"
					   "Subject:  folded\r\n  value\r\n\r\n"
					   "body  line \r\n\r\n\r\n";
		char *f = NULL;
		assert_int_equal(didsig_sign(sk, ALICE, NODE,
					     (const uint8_t *)lf, strlen(lf),
					     T0, &f, &err), 0);
		char *a = cat(f, lf), *b = cat(f, crlf);
		expect(a, pk, T0, DIDSIG_PASS, "ok");
		expect(b, pk, T0, DIDSIG_PASS, "ok");
		free(a);
		free(b);
		free(f);
	}
	/* no body, no empty line */
	{
		char *a = sign_as(sk, ALICE, "From: a@example.org", T0);
		expect(a, pk, T0, DIDSIG_PASS, "ok");
		free(a);
	}
}

static void test_tamper(void **state)
{
	(void)state;
	char *m;

	/* a body byte */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "Hello Bob", "Hello Rob");
	expect(m, pk, T0, DIDSIG_FAIL, "body hash mismatch");
	free(m);
	/* an added body line; WSP changes relaxed canonicalisation ignores */
	{
		char *s = sign_as(sk, ALICE, MSG, T0);
		m = cat(s, "P.S.\r\n");
		free(s);
	}
	expect(m, pk, T0, DIDSIG_FAIL, "body hash mismatch");
	free(m);
	m = subst1(sign_as(sk, ALICE, MSG, T0), "Hello Bob.\r\n",
		   "Hello   Bob.  \r\n\r\n\r\n");
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
	/* a signed header */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "Subject: DID",
		   "Subject: DIX");
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	m = subst1(sign_as(sk, ALICE, MSG, T0), "To: Bob", "To: Rob");
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	/* an unsigned header may change */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "\r\n\r\n", "\r\nX-Spam: yes\r\n\r\n");
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
	/* a prepended From: over-signed, so the signature breaks */
	{
		char *s = sign_as(sk, ALICE, MSG, T0);
		m = cat("From: Mallory <m@example.org>\r\n", s);
		free(s);
		expect(m, pk, T0, DIDSIG_FAIL, NULL);
		free(m);
	}
	/* fields signed as absent (over-signed) added: Cc, Reply-To, a
	 * second Subject at the bottom */
	static const char *const added[] = {
		"Cc: eve@example.net\r\n", "Reply-To: eve@example.net\r\n",
		"Subject: other\r\n", "Date: Fri, 02 Jan 2026 00:00:00 +0000\r\n",
	};
	for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
		char *a = cat("charset=utf-8\r\n", added[i]);
		char *rep = cat(a, "\r\n");
		m = subst1(sign_as(sk, ALICE, MSG, T0), "charset=utf-8\r\n\r\n",
			   rep);
		free(rep);
		free(a);
		expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
		free(m);
	}
	/* d= swapped for another user of the same domain */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "d=" ALICE, "d=" BOB);
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	/* n= swapped too: still the key the caller gives for the new n= */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "n=" NODE,
		   "n=did:aftersmtp:example.org:gw");
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	/* t= changed */
	m = subst1(sign_as(sk, ALICE, MSG, T0), "t=1767225600", "t=1767225601");
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	/* the wrong key */
	m = sign_as(sk, ALICE, MSG, T0);
	expect(m, pk2, T0, DIDSIG_FAIL, "bad signature");
	free(m);
	m = sign_as(sk2, ALICE, MSG, T0);
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	expect(m, pk2, T0, DIDSIG_PASS, "ok");
	free(m);
	/* a b= byte */
	m = sign_as(sk, ALICE, MSG, T0);
	{
		char *b = strstr(m, " b=");
		assert_non_null(b);
		b[3] = b[3] == 'A' ? 'B' : 'A';
	}
	expect(m, pk, T0, DIDSIG_FAIL, "bad signature");
	free(m);
}

static void test_time(void **state)
{
	(void)state;
	char *m = sign_as(sk, ALICE, MSG, T0 + 300);
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
	m = sign_as(sk, ALICE, MSG, T0 + 301);
	expect(m, pk, T0, DIDSIG_FAIL, "t= is in the future");
	expect(m, pk, 0, DIDSIG_PASS, "ok");
	expect(m, pk, T0 + 1, DIDSIG_PASS, "ok");
	free(m);
	m = sign_as(sk, ALICE, MSG, UINT64_C(999999999999999999));
	expect(m, pk, T0, DIDSIG_FAIL, "t= is in the future");
	free(m);
	m = sign_as(sk, ALICE, MSG, 0);
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
}

static void test_chosen_tags(void **state)
{
	(void)state;
	char *tags, *m;

	/* our forge agrees with didsig_sign */
	tags = std_tags(ALICE, NODE, T0, MSG);
	m = forge(sk, tags, H_STD, 6, MSG);
	expect(m, pk, T0, DIDSIG_PASS, "ok");
	free(m);
	free(tags);
	/* d= of another domain, correctly signed */
	tags = std_tags("did:aftersmtp:example.net:alice", NODE, T0, MSG);
	m = forge(sk, tags, H_STD, 6, MSG);
	expect(m, pk, T0, DIDSIG_FAIL,
	       "d= is not of the signing node's domain");
	free(m);
	free(tags);
	tags = std_tags(ALICE, "did:aftersmtp:sub.example.org:node", T0, MSG);
	m = forge(sk, tags, H_STD, 6, MSG);
	expect(m, pk, T0, DIDSIG_FAIL,
	       "d= is not of the signing node's domain");
	free(m);
	free(tags);
	/* h=from without over-signing, then a From prepended: the crypto
	 * holds, "multiple From" fails it */
	{
		static const char *const h1[] = {"from", "subject"};
		char bh[DKIM_BH_SIZE], t[512];
		bh_of(MSG, bh);
		snprintf(t, sizeof(t),
			 "v=1; a=ed25519-sha256; d=%s; n=%s; t=1; h=from:subject; bh=%s;",
			 ALICE, NODE, bh);
		m = forge(sk, t, h1, 2, MSG);
		expect(m, pk, T0, DIDSIG_PASS, "ok");
		char *m2 = cat("From: Mallory <m@example.org>\r\n", m);
		didsig_set *set = NULL;
		didsig_result r;
		const char *err;
		assert_int_equal(didsig_verify_prepare((const uint8_t *)m2,
						       strlen(m2), &set, &err),
				 0);
		didsig_verify_finish(set, 0, pk, T0, &r);
		assert_int_equal(r.status, DIDSIG_FAIL);
		assert_string_equal(r.reason, "multiple From");
		assert_true(r.crypto_ok);
		assert_true(r.multiple_from);
		didsig_set_free(&set);
		free(m2);
		free(m);
		/* no From at all (h= lists it, absent: empty) */
		static const char nofrom[] = "To: b@x\r\n\r\nbody\r\n";
		bh_of(nofrom, bh);
		snprintf(t, sizeof(t),
			 "v=1; a=ed25519-sha256; d=%s; n=%s; t=1; h=from; bh=%s;",
			 ALICE, NODE, bh);
		m = forge(sk, t, h1, 1, nofrom);
		expect(m, pk, T0, DIDSIG_FAIL, "no From field");
		free(m);
	}
	/* b= folded anywhere, tags in another order, unknown tags, blanks:
	 * still a pass */
	{
		char bh[DKIM_BH_SIZE], t[1024];
		bh_of(MSG, bh);
		snprintf(t, sizeof(t),
			 "xnew=whatever ;  h = from : from:to:to:subject:subject ;"
			 "\r\n\tbh=%.*s\r\n %s; t=%llu; n=%s;d=%s; a=ed25519-sha256; v=1;",
			 20, bh, bh + 20, (unsigned long long)T0, NODE, ALICE);
		m = forge(sk, t, H_STD, 6, MSG);
		expect(m, pk, T0, DIDSIG_PASS, "ok");
		/* b= folded with FWS inside */
		char *b = strstr(m, " b=");
		assert_non_null(b);
		char head[8];
		memcpy(head, b, 7);
		head[7] = '\0';
		char rep[16];
		snprintf(rep, sizeof(rep), "%s\r\n\t", head);
		m = subst1(m, head, rep);
		expect(m, pk, T0, DIDSIG_PASS, "ok");
		free(m);
	}
}

static void test_syntax(void **state)
{
	(void)state;
	char bh[DKIM_BH_SIZE];
	static const struct {
		const char *tags; /* @D@, @N@, @BH@ replaced */
		const char *reason;
	} cases[] = {
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@; v=1;",
		 "duplicate tag"},
		{"a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@;",
		 "no v= tag"},
		{"v=1; d=@D@; n=@N@; t=1; h=from; bh=@BH@;", "no a= tag"},
		{"v=1; a=ed25519-sha256; n=@N@; t=1; h=from; bh=@BH@;",
		 "no d= tag"},
		{"v=1; a=ed25519-sha256; d=@D@; t=1; h=from; bh=@BH@;",
		 "no n= tag"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; h=from; bh=@BH@;",
		 "no t= tag"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; bh=@BH@;",
		 "no h= tag"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from;",
		 "no bh= tag"},
		{"v=2; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@;",
		 "unknown v= version"},
		{"v=1; a=rsa-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@;",
		 "unknown a= algorithm"},
		{"v=1; a=Ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@;",
		 "unknown a= algorithm"},
		{"V=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@;",
		 "no v= tag"},
		{"v=1; a=ed25519-sha256; d=did:aftersmtp:Example.org:alice; n=@N@; t=1; h=from; bh=@BH@;",
		 "d= is not a canonical DID"},
		{"v=1; a=ed25519-sha256; d=did:aftersmtp:example.org:alice.; n=@N@; t=1; h=from; bh=@BH@;",
		 "d= is not a canonical DID"},
		{"v=1; a=ed25519-sha256; d=@D@; n=did:aftersmtp:example.org:node.; t=1; h=from; bh=@BH@;",
		 "n= is not a canonical DID"},
		{"v=1; a=ed25519-sha256; d=@D@; n=did:aftersmtp:example.org; t=1; h=from; bh=@BH@;",
		 "n= is not a canonical DID"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=-1; h=from; bh=@BH@;",
		 "bad t= value"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1234567890123456789; h=from; bh=@BH@;",
		 "bad t= value"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=to; bh=@BH@;",
		 "h= does not list from"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from::to; bh=@BH@;",
		 "bad h= value"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=AAAA;",
		 "bad bh= value"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=@BH@=;",
		 "bad bh= value"},
		{"v=1; a=ed25519-sha256; d=@D@; n=@N@; t=1; h=from; bh=!@BH@;",
		 "bad bh= value"},
	};
	static const char *const h1[] = {"from"};
	bh_of(MSG, bh);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tg = subst_all(cat("", cases[i].tags), "@D@", ALICE);
		tg = subst_all(tg, "@N@", NODE);
		tg = subst_all(tg, "@BH@", bh);
		char *m = forge(sk, tg, h1, 1, MSG);
		free(tg);
		const char *why;
		didsig_status st = verify(m, pk, T0, &why);
		if (st != DIDSIG_PERMERROR ||
		    (strcmp(cases[i].reason, "duplicate tag") != 0 &&
		     strcmp(why, cases[i].reason) != 0))
			fail_msg("case %zu: got %s \"%s\", want permerror \"%s\"",
				 i, didsig_status_name(st), why,
				 cases[i].reason);
		free(m);
	}

	/* b= missing, bad base64, 63 and 65 bytes */
	char *m = sign_as(sk, ALICE, MSG, T0);
	char *b = strstr(m, " b=");
	assert_non_null(b);
	{
		char *m2 = cat("", m);
		char *b2 = strstr(m2, " b=");
		memcpy(b2, " x=", 3);
		expect(m2, pk, T0, DIDSIG_PERMERROR, "no b= tag");
		free(m2);
	}
	static const char *const badb[] = {
		"AAAA!AAA", "AAA", "AAAA====", /* bad base64 */
		/* 63 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		/* 65 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		/* 66 bytes */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	for (size_t i = 0; i < sizeof(badb) / sizeof(badb[0]); i++) {
		size_t pre = (size_t)(b - m) + 3;
		char *m2 = malloc(strlen(m) + 200);
		assert_non_null(m2);
		memcpy(m2, m, pre);
		m2[pre] = '\0';
		strncat(m2, badb[i], 199);
		strncat(m2, strstr(b, "\r\nFrom:"), strlen(m));
		expect(m2, pk, T0, DIDSIG_PERMERROR, "bad b= value");
		free(m2);
	}
	free(m);

	/* h=: 64 names fine, 65 too many, 10k names: the field too long */
	{
		char *tags = malloc(80000);
		assert_non_null(tags);
		static const char *hs[DIDSIG_MAX_H];
		for (size_t n = 64; n <= 65; n++) {
			int k = snprintf(tags, 80000,
					 "v=1; a=ed25519-sha256; d=%s; n=%s; t=1; bh=%s; h=from",
					 ALICE, NODE, bh);
			for (size_t j = 1; j < n; j++)
				k += snprintf(tags + k, 80000 - (size_t)k,
					      ":%sx-%zu", j % 8 ? "" : "\r\n ",
					      j);
			snprintf(tags + k, 80000 - (size_t)k, ";");
			hs[0] = "from";
			m = forge(sk, tags, hs, 1, MSG);
			if (n == 64)
				/* signed over from only: the others (absent)
				 * add nothing, so it verifies */
				expect(m, pk, T0, DIDSIG_PASS, "ok");
			else
				expect(m, pk, T0, DIDSIG_PERMERROR,
				       "too many names in h=");
			free(m);
		}
		int k = snprintf(tags, 80000,
				 "v=1; a=ed25519-sha256; d=%s; n=%s; t=1; bh=%s; h=from",
				 ALICE, NODE, bh);
		for (size_t j = 1; j < 10000; j++)
			k += snprintf(tags + k, 80000 - (size_t)k, ":%s",
				      j % 10 ? "to" : "to\r\n ");
		snprintf(tags + k, 80000 - (size_t)k, ";");
		m = forge(sk, tags, hs, 1, MSG);
		expect(m, pk, T0, DIDSIG_PERMERROR,
		       "AMP-DID-Signature field too long");
		free(m);
		free(tags);
	}
}

static void test_many_fields(void **state)
{
	(void)state;
	static const char junk[] = "AMP-DID-Signature: v=1; a=x\r\n";
	char *m = sign_as(sk, ALICE, MSG, T0);
	didsig_set *set = NULL;
	didsig_result r;
	const char *err;
	size_t idx;

	/* three bad ones above a good one: it is checked (4th) and wins */
	for (int i = 0; i < 3; i++) {
		char *o = cat(junk, m);
		free(m);
		m = o;
	}
	assert_int_equal(didsig_verify_prepare((const uint8_t *)m, strlen(m),
					       &set, &err), 0);
	assert_int_equal(set->found, 4);
	assert_int_equal(set->n, 4);
	for (size_t i = 0; i < 3; i++) {
		assert_false(set->sig[i].need_key);
		assert_int_equal(set->sig[i].result.status, DIDSIG_PERMERROR);
	}
	for (size_t i = 0; i < set->n; i++)
		didsig_verify_finish(set, i, pk, T0, &r);
	assert_int_equal(didsig_verify_verdict(set, &idx), DIDSIG_PASS);
	assert_int_equal(idx, 3);
	didsig_set_free(&set);

	/* 97 more on top: 100 in all, the good one not checked */
	for (int i = 0; i < 97; i++) {
		char *o = cat(i % 2 ? junk : "AMP-DID-Signature: garbage\r\n",
			      m);
		free(m);
		m = o;
	}
	assert_int_equal(didsig_verify_prepare((const uint8_t *)m, strlen(m),
					       &set, &err), 0);
	assert_int_equal(set->found, 101);
	assert_int_equal(set->n, DIDSIG_VERIFY_MAX);
	for (size_t i = 0; i < set->n; i++)
		didsig_verify_finish(set, i, pk, T0, &r);
	assert_int_equal(didsig_verify_verdict(set, &idx), DIDSIG_PERMERROR);
	didsig_set_free(&set);
	free(m);

	/* verdict order: pass > temperror > fail > permerror */
	m = sign_as(sk, ALICE, MSG, T0);
	{
		char *two = sign_as(sk2, ALICE, m, T0); /* wrong key on top */
		char *three = cat(junk, two);
		assert_int_equal(didsig_verify_prepare((const uint8_t *)three,
						       strlen(three), &set,
						       &err), 0);
		assert_int_equal(set->n, 3);
		/* before any finish: pending counts as temperror */
		assert_int_equal(didsig_verify_verdict(set, &idx),
				 DIDSIG_TEMPERROR);
		assert_int_equal(idx, 1);
		didsig_verify_finish(set, 1, pk, T0, &r);
		assert_int_equal(r.status, DIDSIG_FAIL);
		didsig_verify_finish(set, 2, NULL, T0, &r);
		assert_int_equal(r.status, DIDSIG_TEMPERROR);
		assert_int_equal(didsig_verify_verdict(set, &idx),
				 DIDSIG_TEMPERROR);
		assert_int_equal(idx, 2);
		didsig_set_free(&set);
		free(three);
		free(two);
	}
	expect(m, NULL, T0, DIDSIG_TEMPERROR, "node DID not resolved");
	expect(MSG, pk, T0, DIDSIG_NONE, NULL);
	assert_int_equal(didsig_verify_verdict(NULL, &idx), DIDSIG_NONE);
	free(m);
}

static void test_sign_refusals(void **state)
{
	(void)state;
	char *f = NULL;
	const char *err = NULL;
	const uint8_t *m = (const uint8_t *)MSG;
	size_t n = strlen(MSG);

	assert_int_equal(didsig_sign(sk, "did:aftersmtp:Example.org:alice",
				     NODE, m, n, T0, &f, &err), -1);
	assert_int_equal(didsig_sign(sk, ALICE, "did:web:example.org:node", m,
				     n, T0, &f, &err), -1);
	assert_int_equal(didsig_sign(sk, "did:aftersmtp:example.net:alice",
				     NODE, m, n, T0, &f, &err), -1);
	assert_string_equal(err,
			    "the node may only vouch for a DID of its domain");
	static const char nofrom[] = "To: x@y\r\n\r\nb\r\n";
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)nofrom,
				     strlen(nofrom), T0, &f, &err), -1);
	assert_string_equal(err, "message has no From field");
	char *two = cat("From: x@example.org\r\n", MSG);
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)two,
				     strlen(two), T0, &f, &err), -1);
	assert_string_equal(err, "message has more than one From");
	free(two);
	/* 60 To fields: h= would need more than 64 names */
	char *many = cat("", MSG);
	for (int i = 0; i < 60; i++) {
		char *o = cat("To: x@example.net\r\n", many);
		free(many);
		many = o;
	}
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)many,
				     strlen(many), T0, &f, &err), -1);
	assert_string_equal(err, "too many signed fields for h=");
	free(many);
	assert_null(f);
}

static void test_limits(void **state)
{
	(void)state;
	didsig_set *set = NULL;
	const char *err = NULL;
	char *f = NULL;

	/* 2049 fields */
	size_t fl = strlen("X-A: b\r\n");
	char *m = malloc(2049 * fl + strlen(MSG) + 1);
	assert_non_null(m);
	for (size_t i = 0; i < 2048; i++)
		memcpy(m + i * fl, "X-A: b\r\n", fl);
	memcpy(m + 2048 * fl, MSG, strlen(MSG) + 1);
	/* 2048 + 7 fields: refused */
	assert_int_equal(didsig_verify_prepare((const uint8_t *)m, strlen(m),
					       &set, &err), -1);
	assert_null(set);
	assert_string_equal(err, "too many header fields");
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)m,
				     strlen(m), T0, &f, &err), -1);
	free(m);
	/* a header section over DKIM_MAX_HEADER */
	size_t big = DKIM_MAX_HEADER + 100;
	m = malloc(big + strlen(MSG) + 1);
	assert_non_null(m);
	memcpy(m, "X-Big: ", 7);
	memset(m + 7, 'a', big - 9);
	memcpy(m + big - 2, "\r\n", 2);
	memcpy(m + big, MSG, strlen(MSG) + 1);
	assert_int_equal(didsig_verify_prepare((const uint8_t *)m, strlen(m),
					       &set, &err), -1);
	assert_string_equal(err, "header section too large");
	assert_int_equal(didsig_sign(sk, ALICE, NODE, (const uint8_t *)m,
				     strlen(m), T0, &f, &err), -1);
	free(m);
	assert_null(f);
	/* a field over DIDSIG_FIELD_MAX */
	m = sign_as(sk, ALICE, MSG, T0);
	{
		char *pad = malloc(DIDSIG_FIELD_MAX + 10);
		assert_non_null(pad);
		memset(pad, ' ', DIDSIG_FIELD_MAX);
		memcpy(pad, "v=1;\r\n", 6);
		pad[DIDSIG_FIELD_MAX] = '\0';
		m = subst1(m, "v=1;", pad);
		free(pad);
	}
	expect(m, pk, T0, DIDSIG_PERMERROR,
	       "AMP-DID-Signature field too long");
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_did_ok),
		cmocka_unit_test(test_vector),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_chosen_tags),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_many_fields),
		cmocka_unit_test(test_sign_refusals),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
