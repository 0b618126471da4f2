/*
 * test-arc.c — src/mime/arc: chains of 1, 2 and 3 sets made by our own
 * sealer (rsa-sha256 and ed25519-sha256, mixed) validating pass, and each
 * broken case of TESTING.md D9 failing with its reason: a tamper after the
 * last seal (body, signed header, an older AAR), a missing instance, a
 * missing field, a duplicate, more than 50 sets (and 50 real ones, then
 * the sealer's refusal), cv=fail mid-chain, an ARC-Seal with h=, an AMS
 * signing ARC-Seal, keys revoked / absent / failing to resolve, garbage
 * base64; the sealer's refusals and its folding.  python3-dkim checks us
 * independently in tests/e2e/test_arc_oracle.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arc.h"
#include "authres.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dkim_key *rsa_key, *ed_key;
static char *rsa_txt, *ed_txt;

#define RSA_Q "rsa._domainkey.example.org"
#define ED_Q "ed._domainkey.example.net"

static const char MSG[] =
	"Authentication-Results: mx.example.org; spf=pass "
	"smtp.mailfrom=alice@example.org\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: Bob <bob@example.net>\r\n"
	"Subject: hello\r\n"
	"Date: Sat, 22 Nov 2025 12:00:00 +0000\r\n"
	"Message-ID: <arc1@example.org>\r\n"
	"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=x; h=from;\r\n"
	" bh=AAAA; b=AAAA\r\n"
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

/* How the key lookups answer. */
enum { KEYS_OK, KEYS_TEMPFAIL_ED, KEYS_ABSENT_ED, KEYS_REVOKED_ED };

typedef struct verdict {
	arc_cv cv;
	char reason[ARC_REASON_MAX];
	size_t instances, nq;
	char sealer[ARC_MAX_INSTANCES + 1][64];
	char aar[ARC_MAX_INSTANCES + 1][16];
} verdict;

static verdict verify_mode(const char *msg, int mode)
{
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	arc_verify_result r;
	arc_key_answer ans[ARC_MAX_QUERIES];
	const uint8_t *txt[ARC_MAX_QUERIES];
	size_t len[ARC_MAX_QUERIES];
	const char *err;
	verdict v;
	static const char revoked[] = "v=DKIM1; k=ed25519; p=";

	memset(&v, 0, sizeof(v));
	assert_int_equal(arc_verify_prepare((const uint8_t *)msg, strlen(msg),
					    &lim, &set, &err), 0);
	v.nq = set->nq;
	for (size_t q = 0; q < set->nq; q++) {
		bool ed = strcmp(set->query[q], ED_Q) == 0;
		ans[q].txt = &txt[q];
		ans[q].len = &len[q];
		ans[q].n = 0;
		if (strcmp(set->query[q], RSA_Q) == 0) {
			txt[q] = (const uint8_t *)rsa_txt;
			len[q] = strlen(rsa_txt);
			ans[q].n = 1;
		} else if (ed && mode == KEYS_TEMPFAIL_ED) {
			ans[q].txt = NULL;
		} else if (ed && mode == KEYS_REVOKED_ED) {
			txt[q] = (const uint8_t *)revoked;
			len[q] = strlen(revoked);
			ans[q].n = 1;
		} else if (ed && mode != KEYS_ABSENT_ED) {
			txt[q] = (const uint8_t *)ed_txt;
			len[q] = strlen(ed_txt);
			ans[q].n = 1;
		}
	}
	arc_verify_finish(set, ans, &r);
	v.cv = r.cv;
	snprintf(v.reason, sizeof(v.reason), "%s", r.reason);
	v.instances = r.instances;
	for (size_t i = 1; r.cv == ARC_CV_PASS && i <= r.instances; i++) {
		snprintf(v.sealer[i], sizeof(v.sealer[i]), "%s", r.sealer[i]);
		snprintf(v.aar[i], sizeof(v.aar[i]), "%s", r.aar[i]);
	}
	arc_verify_set_free(&set);
	assert_null(set);
	return v;
}

static verdict verify(const char *msg)
{
	return verify_mode(msg, KEYS_OK);
}

/* A new message: the seal of msg by key (rsa: example.org, ed:
 * example.net) put before it. */
/* a followed by s, in a new string */
static char *prepend(const char *a, const char *s)
{
	size_t an = strlen(a), sn = strlen(s);
	char *out = malloc(an + sn + 1);
	assert_non_null(out);
	memcpy(out, a, an);
	memcpy(out + an, s, sn + 1);
	return out;
}

static char *seal_cv(const char *msg, bool ed, arc_cv cv)
{
	char *fields = NULL, *out;
	const char *err = NULL;
	int rc = arc_seal((const uint8_t *)msg, strlen(msg),
			  ed ? ed_key : rsa_key,
			  ed ? "example.net" : "example.org", ed ? "ed" : "rsa",
			  "mx.example.net; arc=pass; dkim=pass header.d="
			  "example.org", cv, 1763812800, &fields, &err);
	if (rc != 0)
		fail_msg("arc_seal: %s", err);
	out = prepend(fields, msg);
	free(fields);
	return out;
}

static char *seal(const char *msg, bool ed)
{
	return seal_cv(msg, ed, strstr(msg, "ARC-Seal:") != NULL ?
				ARC_CV_PASS : ARC_CV_NONE);
}

/* A copy of s with the first occurrence of a (after from) replaced by b. */
static char *replace(const char *s, const char *from, const char *a,
		     const char *b)
{
	const char *start = from != NULL ? strstr(s, from) : s;
	assert_non_null(start);
	const char *p = strstr(start, a);
	assert_non_null(p);
	size_t n = strlen(s) - strlen(a) + strlen(b);
	char *out = malloc(n + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(p - s));
	memcpy(out + (p - s), b, strlen(b));
	memcpy(out + (p - s) + strlen(b), p + strlen(a), strlen(p + strlen(a)) + 1);
	return out;
}

/* A copy of s without the field that starts at the first occurrence of
 * start (through the end of its continuation lines). */
static char *drop_field(const char *s, const char *start)
{
	const char *p = strstr(s, start);
	assert_non_null(p);
	const char *e = p;
	do {
		e = strchr(e, '\n');
		assert_non_null(e);
		e++;
	} while (*e == ' ' || *e == '\t');
	char *out = malloc(strlen(s) + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(p - s));
	memcpy(out + (p - s), e, strlen(e) + 1);
	return out;
}

/* A copy of the field that starts at start. */
static char *copy_field(const char *s, const char *start)
{
	const char *p = strstr(s, start);
	assert_non_null(p);
	const char *e = p;
	do {
		e = strchr(e, '\n');
		e++;
	} while (*e == ' ' || *e == '\t');
	return strndup(p, (size_t)(e - p));
}


static void test_no_chain(void **state)
{
	(void)state;
	verdict v = verify(MSG);
	assert_int_equal(v.cv, ARC_CV_NONE);
	assert_int_equal(v.instances, 0);
	assert_int_equal(v.nq, 0);
	assert_string_equal(arc_cv_name(v.cv), "none");
}

static void check_chain(bool ed_first)
{
	char *m1 = seal(MSG, ed_first);
	char *m2 = seal(m1, !ed_first);
	char *m3 = seal(m2, ed_first);
	verdict v;

	v = verify(m1);
	assert_int_equal(v.cv, ARC_CV_PASS);
	assert_string_equal(v.reason, "ok");
	assert_int_equal(v.instances, 1);
	assert_string_equal(v.sealer[1], ed_first ? "example.net"
						  : "example.org");
	assert_string_equal(v.aar[1], "i=1; mx.example");
	v = verify(m2);
	assert_int_equal(v.cv, ARC_CV_PASS);
	assert_int_equal(v.instances, 2);
	assert_int_equal(v.nq, 2);
	v = verify(m3);
	assert_int_equal(v.cv, ARC_CV_PASS);
	assert_int_equal(v.instances, 3);
	assert_string_equal(v.sealer[3], v.sealer[1]);
	assert_string_equal(v.sealer[2], ed_first ? "example.org"
						  : "example.net");
	assert_string_equal(v.aar[3], "i=3; mx.example");
	/* ARC-Seal first, then AMS, then AAR */
	assert_true(strncmp(m3, "ARC-Seal: i=3;", 14) == 0);
	assert_true(strstr(m3, "ARC-Message-Signature: i=3;") <
		    strstr(m3, "ARC-Authentication-Results: i=3;"));
	free(m1);
	free(m2);
	free(m3);
}

static void test_chain_rsa_first(void **state)
{
	(void)state;
	check_chain(false);
}

static void test_chain_ed_first(void **state)
{
	(void)state;
	check_chain(true);
}

static void test_one_key_one_query(void **state)
{
	(void)state;
	char *m1 = seal(MSG, true), *m2 = seal(m1, true), *m3 = seal(m2, true);
	verdict v = verify(m3);
	assert_int_equal(v.cv, ARC_CV_PASS);
	assert_int_equal(v.nq, 1);
	free(m1);
	free(m2);
	free(m3);
}

static void test_bare_lf(void **state)
{
	(void)state;
	char *lf = strdup(MSG), *w = lf;
	for (const char *p = MSG; *p != '\0'; p++)
		if (*p != '\r')
			*w++ = *p;
	*w = '\0';
	char *m1 = seal(lf, false);
	char *m2 = seal(m1, true);
	assert_int_equal(verify(m2).cv, ARC_CV_PASS);
	free(lf);
	free(m1);
	free(m2);
}

static void expect_fail(const char *msg, const char *reason)
{
	verdict v = verify(msg);
	assert_int_equal(v.cv, ARC_CV_FAIL);
	if (strstr(v.reason, reason) == NULL)
		fail_msg("reason \"%s\", expected \"%s\"", v.reason, reason);
}

static void test_tamper(void **state)
{
	(void)state;
	char *m1 = seal(MSG, false), *m2 = seal(m1, true), *m3 = seal(m2, false);
	char *t;

	t = replace(m3, NULL, "Hello Bob.", "Hello Bog.");
	expect_fail(t, "AMS of instance 3: body hash mismatch");
	free(t);
	t = replace(m3, NULL, "Subject: hello", "Subject: hellO");
	expect_fail(t, "AMS of instance 3 does not verify");
	free(t);
	/* an older hop's results rewritten: the newest seal covers them */
	t = replace(m3, "ARC-Authentication-Results: i=1;", "arc=pass",
		    "arc=fail");
	expect_fail(t, "ARC-Seal of instance 3 does not verify");
	free(t);
	/* the body changed after instance 2, then sealed as it must be,
	 * with cv=fail: the chain fails for good */
	t = replace(m2, NULL, "Hello Bob.", "Hello Bog.");
	char *r = seal_cv(t, false, ARC_CV_FAIL);
	expect_fail(r, "says cv=fail");
	free(r);
	free(t);
	free(m1);
	free(m2);
	free(m3);
}

static void test_structure(void **state)
{
	(void)state;
	char *m1 = seal(MSG, false), *m2 = seal(m1, true), *m3 = seal(m2, false);
	char *t, *u, *f;

	/* instance 2 removed entirely */
	t = drop_field(m3, "ARC-Seal: i=2;");
	u = drop_field(t, "ARC-Message-Signature: i=2;");
	free(t);
	t = drop_field(u, "ARC-Authentication-Results: i=2;");
	free(u);
	expect_fail(t, "instance 2 missing");
	free(t);
	/* only its seal removed */
	t = drop_field(m3, "ARC-Seal: i=2;");
	expect_fail(t, "instance 2 has no ARC-Seal");
	free(t);
	/* a duplicate AAR for instance 1 */
	f = copy_field(m3, "ARC-Authentication-Results: i=1;");
	t = prepend(f, m3);
	expect_fail(t, "instance 1 has two ARC-Authentication-Results");
	free(t);
	free(f);
	/* i=0 and a non-number */
	t = replace(m3, NULL, "ARC-Seal: i=3;", "ARC-Seal: i=0;");
	expect_fail(t, "ARC-Seal has no valid i=");
	free(t);
	t = replace(m3, NULL, "ARC-Message-Signature: i=3;",
		    "ARC-Message-Signature: i=x;");
	expect_fail(t, "ARC-Message-Signature has no valid i=");
	free(t);
	/* tags in another order: i= last in a seal */
	t = replace(m3, NULL, "ARC-Seal: i=3; a=rsa-sha256;",
		    "ARC-Seal: a=rsa-sha256;");
	u = replace(t, NULL, "cv=pass;", "cv=pass; i=3;");
	free(t);
	t = u;
	expect_fail(t, "ARC-Seal of instance 3 does not verify");
	free(t);
	/* cv=fail mid-chain (no crypto needed to fail) */
	t = replace(m3, "ARC-Seal: i=2;", "cv=pass", "cv=fail");
	expect_fail(t, "ARC-Seal of instance 2 says cv=fail");
	free(t);
	/* cv=pass at instance 1, cv=none at instance 2 */
	t = replace(m3, "ARC-Seal: i=1;", "cv=none", "cv=pass");
	expect_fail(t, "instance 1 but cv is not none");
	free(t);
	t = replace(m3, "ARC-Seal: i=2;", "cv=pass", "cv=none");
	expect_fail(t, "ARC-Seal of instance 2 has cv other than pass");
	free(t);
	/* an ARC-Seal with h= */
	t = replace(m3, "ARC-Seal: i=1;", "cv=none;", "cv=none; h=from;");
	expect_fail(t, "ARC-Seal of instance 1 has h=");
	free(t);
	/* the newest AMS signing ARC-Seal */
	t = replace(m3, "ARC-Message-Signature: i=3;", "h=from:",
		    "h=arc-seal:from:");
	expect_fail(t, "AMS of instance 3: signs ARC-Seal");
	free(t);
	/* garbage base64 in a seal and in the AMS */
	t = replace(m3, "ARC-Seal: i=1;", "b=", "b=!!!!");
	expect_fail(t, "ARC-Seal of instance 1 has a bad b=");
	free(t);
	t = replace(m3, "ARC-Message-Signature: i=3;", "bh=", "bh=*");
	expect_fail(t, "AMS of instance 3: has a bad bh=");
	free(t);
	t = replace(m3, "ARC-Seal: i=2;", "a=ed25519-sha256", "a=rsa-sha1");
	expect_fail(t, "ARC-Seal of instance 2 has an unknown a=");
	free(t);
	t = replace(m3, "ARC-Seal: i=2;", "d=example.net", "d=exa..mple");
	expect_fail(t, "has a bad d=");
	free(t);
	free(m1);
	free(m2);
	free(m3);
}

static void test_fifty(void **state)
{
	(void)state;
	char *m = strdup(MSG), *n, *fields = NULL, *t;
	const char *err = NULL;
	for (int i = 0; i < ARC_MAX_INSTANCES; i++) {
		n = seal(m, true);
		free(m);
		m = n;
	}
	verdict v = verify(m);
	assert_int_equal(v.cv, ARC_CV_PASS);
	assert_int_equal(v.instances, 50);
	assert_int_equal(arc_seal((const uint8_t *)m, strlen(m), ed_key,
				  "example.net", "ed", "mx.example.net; arc=pass",
				  ARC_CV_PASS, 1, &fields, &err), -1);
	assert_string_equal(err, "the chain already has 50 ARC sets");
	assert_int_equal(arc_seal((const uint8_t *)m, strlen(m), ed_key,
				  "example.net", "ed", "mx.example.net; arc=fail",
				  ARC_CV_FAIL, 1, &fields, &err), -1);
	/* a 51st set (hand-made: i=51 is never sealed) */
	t = prepend("ARC-Seal: i=51; a=ed25519-sha256; cv=pass; d=example.net;"
		    " s=ed; b=AAAA\r\n", m);
	expect_fail(t, "more than 50 ARC sets");
	free(t);
	/* over 150 ARC fields, whatever their i= */
	t = strdup(m);
	for (int i = 0; i < 2; i++) {
		n = prepend("ARC-Authentication-Results: i=1; x; none\r\n", t);
		free(t);
		t = n;
	}
	expect_fail(t, "more than 150 ARC fields");
	free(t);
	free(m);
}

static void test_keys(void **state)
{
	(void)state;
	char *m1 = seal(MSG, false), *m2 = seal(m1, true);
	verdict v;

	v = verify_mode(m2, KEYS_TEMPFAIL_ED);
	assert_int_equal(v.cv, ARC_CV_TEMPERROR);
	assert_string_equal(arc_cv_name(v.cv), "temperror");
	v = verify_mode(m2, KEYS_ABSENT_ED);
	assert_int_equal(v.cv, ARC_CV_FAIL);
	assert_non_null(strstr(v.reason, "no key record"));
	v = verify_mode(m2, KEYS_REVOKED_ED);
	assert_int_equal(v.cv, ARC_CV_FAIL);
	assert_non_null(strstr(v.reason, "key revoked"));
	/* a definite failure wins over a temperror */
	char *t = replace(m2, "ARC-Seal: i=1;", "t=", "t=1");
	v = verify_mode(t, KEYS_TEMPFAIL_ED);
	assert_int_equal(v.cv, ARC_CV_FAIL);
	assert_non_null(strstr(v.reason, "ARC-Seal of instance 1 does not"));
	free(t);
	free(m1);
	free(m2);
}

static void test_seal_refusals(void **state)
{
	(void)state;
	char *fields = NULL, *m1 = seal(MSG, false), *t;
	const char *err = NULL;
	const uint8_t *p = (const uint8_t *)MSG, *p1 = (const uint8_t *)m1;

	assert_int_equal(arc_seal(p1, strlen(m1), rsa_key, "example.org",
				  "rsa", "mx; none", ARC_CV_NONE, 1, &fields,
				  &err), -1);
	assert_string_equal(err, "cv=none but the message has ARC fields");
	assert_int_equal(arc_seal(p, strlen(MSG), rsa_key, "example.org",
				  "rsa", "mx; none", ARC_CV_PASS, 1, &fields,
				  &err), -1);
	assert_int_equal(arc_seal(p, strlen(MSG), rsa_key, "example.org",
				  "rsa", "mx; none", ARC_CV_TEMPERROR, 1,
				  &fields, &err), -1);
	assert_int_equal(arc_seal(p, strlen(MSG), rsa_key, "exa mple",
				  "rsa", "mx; none", ARC_CV_NONE, 1, &fields,
				  &err), -1);
	assert_int_equal(arc_seal(p, strlen(MSG), rsa_key, "example.org",
				  "rsa", "mx;\r\n none", ARC_CV_NONE, 1,
				  &fields, &err), -1);
	assert_int_equal(arc_seal(p, strlen(MSG), rsa_key, "example.org",
				  "rsa", "   ", ARC_CV_NONE, 1, &fields, &err),
			 -1);
	t = replace(MSG, NULL, "From:", "Frum:");
	assert_int_equal(arc_seal((const uint8_t *)t, strlen(t), rsa_key,
				  "example.org", "rsa", "mx; none",
				  ARC_CV_NONE, 1, &fields, &err), -1);
	assert_string_equal(err, "message has no From field");
	free(t);
	/* a broken chain: cv=pass refused, cv=fail sealed (and fails) */
	t = replace(m1, NULL, "Hello Bob.", "Hello Bog.");
	assert_int_equal(arc_seal((const uint8_t *)t, strlen(t), rsa_key,
				  "example.org", "rsa", "mx; arc=pass",
				  ARC_CV_PASS, 1, &fields, &err), -1);
	assert_string_equal(err, "the chain is broken: seal with cv=fail");
	char *r = seal_cv(t, true, ARC_CV_FAIL);
	expect_fail(r, "ARC-Seal of instance 2 says cv=fail");
	/* once failed, nobody can seal pass again */
	assert_int_equal(arc_seal((const uint8_t *)r, strlen(r), rsa_key,
				  "example.org", "rsa", "mx; arc=pass",
				  ARC_CV_PASS, 1, &fields, &err), -1);
	free(r);
	free(t);
	free(m1);
}

static void test_folding(void **state)
{
	(void)state;
	char payload[1200], *fields = NULL;
	const char *err = NULL;
	size_t n = 0;
	n += (size_t)snprintf(payload, sizeof(payload), "mx.example.net;");
	while (n + 40 < sizeof(payload))
		n += (size_t)snprintf(payload + n, sizeof(payload) - n,
				      " dkim=pass header.d=example.org;");
	assert_int_equal(arc_seal((const uint8_t *)MSG, strlen(MSG), rsa_key,
				  "example.org", "rsa", payload, ARC_CV_NONE,
				  1763812800, &fields, &err), 0);
	for (const char *line = fields; *line != '\0';) {
		const char *e = strstr(line, "\r\n");
		assert_non_null(e);
		assert_true(e - line <= 78);
		assert_true(strchr(line, '\n') == e + 1); /* CRLF only */
		line = e + 2;
	}
	char *m = prepend(fields, MSG);
	verdict v = verify(m);
	assert_int_equal(v.cv, ARC_CV_PASS);
	free(m);
	free(fields);
}

/* ---- RFC 8617 Appendix B ---- */

/* RFC 8617 Appendix B's three-hop example (the list lists.example.org,
 * then gmail.example, then clochette.example.org), as printed.  It
 * cannot be verified: the appendix publishes no key records for its
 * selectors (dk-lists, 20120806, clochette), and its b= values are 64
 * bytes, i.e. made with 512-bit RSA keys, which RFC 8301 §3.2 forbids a
 * verifier to accept (dkim-verify.h: 1024..8192 bits).  So what is
 * tested is its structure: three complete sets, the AMS 3 body hash
 * (which matches: the example was generated mechanically), the key
 * queries, the AARs, and the verdicts for each kind of key answer. */
static const char rfc8617_b[] =
	"Return-Path: <jqd@d1.example>\r\n"
	"Received: from example.org (example.org [208.69.40.157])\r\n"
	"    by gmail.example with ESMTP id d200mr22663000ykb.93.1421363207\r\n"
	"    for <fmartin@example.com>; Thu, 14 Jan 2015 15:02:40 -0800 (PST)\r\n"
	"Received: from segv.d1.example (segv.d1.example [72.52.75.15])\r\n"
	"    by lists.example.org (8.14.5/8.14.5) with ESMTP id t0EKaNU9010123\r\n"
	"    for <arc@example.org>; Thu, 14 Jan 2015 15:01:30 -0800 (PST)\r\n"
	"    (envelope-from jqd@d1.example)\r\n"
	"Received: from [2001:DB8::1A] (w-x-y-z.dsl.static.isp.example [w.x.y.z])\r\n"
	"    (authenticated bits=0)\r\n"
	"    by segv.d1.example with ESMTP id t0FN4a8O084569;\r\n"
	"    Thu, 14 Jan 2015 15:00:01 -0800 (PST)\r\n"
	"    (envelope-from jqd@d1.example)\r\n"
	"Received: from mail-ob0-f188.google.example\r\n"
	"    (mail-ob0-f188.google.example [208.69.40.157]) by\r\n"
	"    clochette.example.org with ESMTP id d200mr22663000ykb.93.1421363268\r\n"
	"    for <fmartin@example.org>; Thu, 14 Jan 2015 15:03:15 -0800 (PST)\r\n"
	"ARC-Seal: i=3; a=rsa-sha256; cv=pass; d=clochette.example.org; s=\r\n"
	"        clochette; t=12345; b=CU87XzXlNlk5X/yW4l73UvPUcP9ivwYWxyBWcVrRs7\r\n"
	"        +HPx3K05nJhny2fvymbReAmOA9GTH/y+k9kEc59hAKVg==\r\n"
	"ARC-Message-Signature: i=3; a=rsa-sha256; c=relaxed/relaxed; d=\r\n"
	"        clochette.example.org; h=message-id:date:from:to:subject; s=\r\n"
	"        clochette; t=12345; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZY\r\n"
	"        LQ=; b=o71vwyLsK+Wm4cOSlirXoRwzEvi0vqIjd/2/GkYFYlSd/GGfKzkAgPqxf\r\n"
	"        K7ccBMP7Zjb/mpeggswHjEMS8x5NQ==\r\n"
	"ARC-Authentication-Results: i=3; clochette.example.org; spf=fail\r\n"
	"    smtp.from=jqd@d1.example; dkim=fail (512-bit key)\r\n"
	"    header.i=@d1.example; dmarc=fail; arc=pass (as.2.gmail.example=pass,\r\n"
	"    ams.2.gmail.example=pass, as.1.lists.example.org=pass,\r\n"
	"    ams.1.lists.example.org=fail (message has been altered))\r\n"
	"Authentication-Results: clochette.example.org; spf=fail\r\n"
	"    smtp.from=jqd@d1.example; dkim=fail (512-bit key)\r\n"
	"    header.i=@d1.example; dmarc=fail; arc=pass (as.2.gmail.example=pass,\r\n"
	"    ams.2.gmail.example=pass, as.1.lists.example.org=pass,\r\n"
	"    ams.1.lists.example.org=fail (message has been altered))\r\n"
	"ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=gmail.example; s=20120806; t=\r\n"
	"        12345; b=Zpukh/kJL4Q7Kv391FKwTepgS56dgHIcdhhJZjsalhqkFIQQAJ4T9BE\r\n"
	"        8jjLXWpRNuh81yqnT1/jHn086RwezGw==\r\n"
	"ARC-Message-Signature: i=2; a=rsa-sha256; c=relaxed/relaxed; d=\r\n"
	"        gmail.example; h=message-id:date:from:to:subject; s=20120806; t=\r\n"
	"        12345; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; b=CVoG44\r\n"
	"        cVZvoSs2mMig2wwqPaJ4OZS5XGMCegWqQs1wvRZJS894tJM0xO1RJLgCPsBOxdA5\r\n"
	"        9WSqI9s9DfyKDfWg==\r\n"
	"ARC-Authentication-Results: i=2; gmail.example; spf=fail\r\n"
	"    smtp.from=jqd@d1.example; dkim=fail (512-bit key)\r\n"
	"    header.i=@example.org; dmarc=fail; arc=pass\r\n"
	"    (as.1.lists.example.org=pass, ams.1.lists.example.org=pass)\r\n"
	"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=lists.example.org; s=dk-lists;\r\n"
	"         t=12345; b=TlCCKzgk3TrAa+G77gYYO8Fxk4q/Ml0biqduZJeOYh6+0zhwQ8u/\r\n"
	"        lHxLi21pxu347isLSuNtvIagIvAQna9a5A==\r\n"
	"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=\r\n"
	"        lists.example.org; h=message-id:date:from:to:subject; s=\r\n"
	"        dk-lists; t=12345; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYL\r\n"
	"        Q=; b=DsoD3n3hiwlrN1ma8IZQFgZx8EDO7Wah3hUjIEsYKuShRKYB4LwGUiKD5Y\r\n"
	"        yHgcIwGHhSc/4+ewYqHMWDnuFxiQ==\r\n"
	"ARC-Authentication-Results: i=1; lists.example.org; spf=pass\r\n"
	"    smtp.mfrom=jqd@d1.example; dkim=pass (512-bit key)\r\n"
	"    header.i=@d1.example; dmarc=pass\r\n"
	"DKIM-Signature: v=1; a=rsa-sha1; c=relaxed/relaxed; d=d1.example; h=\r\n"
	"        message-id:date:from:to:subject; s=origin2015; bh=bIxxaeIQvmOBdT\r\n"
	"        AitYfSNFgzPP4=; b=qKjd5fYibKXWWIcMKCgRYuo1vJ2fD+IAQPjX+uamXIGY2Q\r\n"
	"        0HjQ+Lq3/yHzG3JHJp6780/nKQPOWt2UDJQrJkEA==\r\n"
	"Message-ID: <54B84785.1060301@d1.example>\r\n"
	"Date: Thu, 14 Jan 2015 15:00:01 -0800\r\n"
	"From: John Q Doe <jqd@d1.example>\r\n"
	"To: arc@dmarc.example\r\n"
	"Subject: [List 2] Example 1\r\n"
	"\r\n"
	"Hey gang,\r\n"
	"This is a test message.\r\n"
	"--J.\r\n";

/* The example's chain with every query answered by txt (NULL: the
 * lookup failed; "": no record). */
static arc_cv rfc8617_answered(const char *msg, const char *txt,
			       char reason[ARC_REASON_MAX])
{
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	arc_verify_result r;
	arc_key_answer ans[ARC_MAX_QUERIES];
	const uint8_t *t = (const uint8_t *)txt;
	size_t len = txt != NULL ? strlen(txt) : 0;
	const char *err;

	assert_int_equal(arc_verify_prepare((const uint8_t *)msg, strlen(msg),
					    &lim, &set, &err), 0);
	for (size_t q = 0; q < set->nq; q++) {
		ans[q].txt = txt != NULL ? &t : NULL;
		ans[q].len = &len;
		ans[q].n = txt != NULL && txt[0] != '\0' ? 1 : 0;
	}
	arc_verify_finish(set, ans, &r);
	snprintf(reason, ARC_REASON_MAX, "%s", r.reason);
	arc_cv cv = r.cv;
	arc_verify_set_free(&set);
	return cv;
}

static void test_rfc8617_appendix_b(void **state)
{
	(void)state;
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	const char *err;
	char reason[ARC_REASON_MAX];

	/* structure: three sets, nothing decided without keys, the body
	 * hash of AMS 3 matches; four key lookups, AMS 3 and AS 3 share
	 * one */
	assert_int_equal(arc_verify_prepare((const uint8_t *)rfc8617_b,
					    strlen(rfc8617_b), &lim, &set,
					    &err), 0);
	assert_int_equal(set->instances, 3);
	assert_false(set->decided);
	assert_int_equal(set->nq, 3);
	{
		static const char *const want[] = {
			"clochette._domainkey.clochette.example.org",
			"20120806._domainkey.gmail.example",
			"dk-lists._domainkey.lists.example.org",
		};
		for (size_t w = 0; w < 3; w++) {
			bool seen = false;
			for (size_t q = 0; q < set->nq; q++)
				seen = seen || strcmp(set->query[q],
						      want[w]) == 0;
			if (!seen)
				fail_msg("no query for %s", want[w]);
		}
	}
	arc_verify_set_free(&set);

	/* the AARs of the three hops: instance and authserv-id */
	{
		static const char *const ids[] = {
			"clochette.example.org", "gmail.example",
			"lists.example.org",
		};
		const char *p = rfc8617_b;
		for (unsigned k = 0; k < 3; k++) {
			const char *h = strstr(p, "ARC-Authentication-Results:");
			assert_non_null(h);
			h += strlen("ARC-Authentication-Results:");
			const char *e = h; /* the field's end: a CRLF and no WSP */
			do {
				e = strstr(e + 1, "\r\n");
				assert_non_null(e);
			} while (e[2] == ' ' || e[2] == '\t');
			char id[AUTHRES_ID_MAX + 1];
			unsigned inst = 0, ver = 0;
			assert_int_equal(authres_parse_id((const uint8_t *)h,
							  (size_t)(e - h), true,
							  id, &inst, &ver,
							  &err), 0);
			assert_int_equal(inst, 3 - k);
			assert_string_equal(id, ids[k]);
			p = e;
		}
	}

	/* no key published: fail; our lookups failing: temperror, never a
	 * pass; a key of 1024 bits or more that is not the signer's: fail */
	assert_int_equal(rfc8617_answered(rfc8617_b, "", reason),
			 ARC_CV_FAIL);
	assert_int_equal(rfc8617_answered(rfc8617_b, NULL, reason),
			 ARC_CV_TEMPERROR);
	assert_int_equal(rfc8617_answered(rfc8617_b, rsa_txt, reason),
			 ARC_CV_FAIL);
	/* a 512-bit key (like the example's) is refused (RFC 8301) */
	assert_int_equal(rfc8617_answered(
		rfc8617_b,
		"v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAJpDAmBtJbtdd"
		"Swo3DrDf0INT9vO0L0inc770eUcYL72YDsWN5sTM4fNUnposYO254Mv2uSfvZZB"
		"zIQ18N0QMi0CAwEAAQ==", reason), ARC_CV_FAIL);

	/* changes decided without a key */
	{
		char *m = replace(rfc8617_b, NULL, "Hey gang", "Hey Gang");
		verdict v = verify(m);
		assert_int_equal(v.cv, ARC_CV_FAIL);
		assert_string_equal(v.reason, "AMS of instance 3: body hash "
					      "mismatch");
		free(m);
		m = replace(rfc8617_b, "ARC-Seal: i=2;", "cv=pass", "cv=fail");
		v = verify(m);
		assert_int_equal(v.cv, ARC_CV_FAIL);
		assert_string_equal(v.reason,
				    "ARC-Seal of instance 2 says cv=fail");
		free(m);
		m = drop_field(rfc8617_b, "ARC-Seal: i=2;");
		v = verify(m);
		assert_int_equal(v.cv, ARC_CV_FAIL);
		assert_string_equal(v.reason, "instance 2 has no ARC-Seal");
		free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_chain),
		cmocka_unit_test(test_chain_rsa_first),
		cmocka_unit_test(test_chain_ed_first),
		cmocka_unit_test(test_one_key_one_query),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_fifty),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_seal_refusals),
		cmocka_unit_test(test_folding),
		cmocka_unit_test(test_rfc8617_appendix_b),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
