/*
 * test-authres.c — Authentication-Results (RFC 8601), src/mime/authres.c:
 * our field (exact text, every method and property, quoting and
 * sanitising of values, header.b, folding at 78 columns, refusals), the
 * authserv-id of received fields (tokens, quoted strings, nested comments,
 * folding, versions, "none", ARC's i=, refusals and limits, every prefix),
 * TESTING.md S20 (fields claiming our id found through comments and case,
 * others kept) and, when python3-authres is installed, every field we
 * build parsed by it (D11) with the same methods, results and values.
 * The amp-did extension method (AMP-DID-Signature, issue 7): every
 * result, the DIDs as quoted values, its place after arc, refusals.
 */
#include "test-common.h"

#include "authres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *build(const char *id, const authres_results *r,
			 char *out, size_t cap)
{
	size_t len = 0;
	const char *err = NULL;
	if (authres_build(id, r, out, cap, &len, &err) != 0)
		fail_msg("build refused: %s", err);
	assert_int_equal(len, strlen(out));
	return out;
}

/* Lines of a built field: CRLF only, each at most 78 characters, every
 * continuation starting with a blank; the whole ends in CRLF. */
static void check_folding(const char *f)
{
	size_t col = 0, n = strlen(f);
	assert_true(n >= 2 && f[n - 2] == '\r' && f[n - 1] == '\n');
	for (size_t i = 0; i < n; i++) {
		if (f[i] == '\r') {
			assert_int_equal(f[i + 1], '\n');
			assert_true(col <= 78);
			i++;
			col = 0;
			if (i + 1 < n)
				assert_true(f[i + 1] == ' ');
			continue;
		}
		assert_true(f[i] != '\n');
		col++;
	}
}

static void test_build_full(void **state)
{
	(void)state;
	char out[AUTHRES_FIELD_MAX];
	authres_dkim k[] = { {
		.result = "pass", .d = "example.com", .s = "sel2025",
		.a = "ed25519-sha256",
		.b = "dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=",
	} };
	authres_results r = {
		.spf = "pass", .spf_mailfrom = "alice@example.com",
		.dkim = k, .n_dkim = 1,
		.dmarc = "pass", .dmarc_from = "example.com",
		.arc = "none",
	};
	build("mx.example.org", &r, out, sizeof(out));
	assert_string_equal(out,
		"Authentication-Results: mx.example.org; spf=pass\r\n"
		" smtp.mailfrom=alice@example.com; dkim=pass header.d=example.com\r\n"
		" header.s=sel2025 header.a=ed25519-sha256 header.b=dGhpcyBp; dmarc=pass\r\n"
		" header.from=example.com; arc=none\r\n");
	check_folding(out);

	/* nothing known: "none" */
	authres_results none = { 0 };
	build("mx.example.org", &none, out, sizeof(out));
	assert_string_equal(out, "Authentication-Results: mx.example.org; "
			    "none\r\n");
	/* spf alone with the HELO identity; dkim without d= */
	authres_dkim k2[] = { { .result = "none" },
			      { .result = "fail", .d = "example.net",
				.i = "@example.net", .b = "ab/c\r\n d+e=f" } };
	authres_results r2 = { .spf = "none", .spf_helo = "mx.example.net",
			       .dkim = k2, .n_dkim = 2 };
	build("mx", &r2, out, sizeof(out));
	assert_string_equal(out,
		"Authentication-Results: mx; spf=none smtp.helo=mx.example.net;"
		" dkim=none;\r\n"
		" dkim=fail header.d=example.net header.i=@example.net"
		" header.b=\"ab/cd+e=\"\r\n");
	check_folding(out);
	/* mailfrom wins over helo */
	authres_results r3 = { .spf = "softfail", .spf_mailfrom = "a@b.example",
			       .spf_helo = "h.example" };
	build("mx", &r3, out, sizeof(out));
	assert_string_equal(out, "Authentication-Results: mx; spf=softfail"
			    " smtp.mailfrom=a@b.example\r\n");
}

typedef struct val_case {
	const char *in, *out;
} val_case;

static void test_build_values(void **state)
{
	(void)state;
	static const val_case cases[] = {
		{ "user@example.com", "user@example.com" },
		{ "first.last+tag@example.com", "first.last+tag@example.com" },
		{ "@example.com", "@example.com" },
		{ "example.com", "example.com" },
		{ "a b@example.com", "\"a b@example.com\"" },
		{ "\"q\"@example.com", "\"\\\"q\\\"@example.com\"" },
		{ "a\\b@example.com", "\"a\\\\b@example.com\"" },
		{ ".a@example.com", "\".a@example.com\"" },
		{ "a..b@example.com", "\"a..b@example.com\"" },
		{ "a@b@example.com", "\"a@b@example.com\"" },
		{ "a@exa mple.com", "\"a@exa mple.com\"" },
		{ "x;y", "\"x;y\"" },
		{ "", "\"\"" },
		/* CR, LF, controls, DEL, C1, invalid UTF-8: '?' */
		{ "evil\r\nX-Injected: 1", "\"evil??X-Injected: 1\"" },
		{ "a\tb\x7f" "c", "\"a?b?c\"" },
		{ "a\xc2\x85" "b", "\"a?b\"" },
		{ "a\xff\xc3" "b", "\"a??b\"" },
		/* valid UTF-8 kept, quoted (not a token) */
		{ "j\xc3\xb6rg@example.com", "\"j\xc3\xb6rg@example.com\"" },
	};
	char out[AUTHRES_FIELD_MAX];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		authres_results r = { .dmarc = "fail",
				      .dmarc_from = cases[i].in };
		build("mx", &r, out, sizeof(out));
		char want[512];
		snprintf(want, sizeof(want), "Authentication-Results: mx; "
			 "dmarc=fail header.from=%s\r\n", cases[i].out);
		/* long values fold before the property */
		if (strcmp(out, want) != 0)
			fail_msg("%s: got %s", cases[i].in, out);
	}
	/* a long value is cut at AUTHRES_VALUE_MAX bytes, on a character
	 * boundary */
	char big[1000];
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	big[AUTHRES_VALUE_MAX - 1] = '\xc3';
	big[AUTHRES_VALUE_MAX] = '\xa9';
	authres_results r = { .dmarc = "fail", .dmarc_from = big };
	build("mx", &r, out, sizeof(out));
	const char *v = strstr(out, "header.from=");
	assert_non_null(v);
	v += strlen("header.from=");
	/* all 'a': a token, not quoted; the two bytes of U+00E9 did not fit */
	assert_int_equal(strlen(v), AUTHRES_VALUE_MAX - 1 + 2);
	/* the item is longer than a line: alone on its own line */
	assert_non_null(strstr(out, "dmarc=fail\r\n header.from=aaa"));
}

static void test_build_folding(void **state)
{
	(void)state;
	authres_dkim k[AUTHRES_DKIM_MAX];
	for (size_t i = 0; i < AUTHRES_DKIM_MAX; i++)
		k[i] = (authres_dkim){ .result = "pass",
			.d = "a-rather-long-subdomain.of.example.com",
			.i = "someone@a-rather-long-subdomain.of.example.com",
			.s = "selector-with-a-long-name", .a = "rsa-sha256",
			.b = "ABCDEFGHIJKLMNOP" };
	authres_results r = { .spf = "permerror",
		.spf_mailfrom = "very.long.local.part@"
				"a-rather-long-subdomain.example.com",
		.dkim = k, .n_dkim = AUTHRES_DKIM_MAX, .dmarc = "temperror",
		.dmarc_from = "example.com", .arc = "fail" };
	char out[AUTHRES_FIELD_MAX];
	build("mx.example.org", &r, out, sizeof(out));
	check_folding(out);
	/* the buffer too small by one byte, and the exact size */
	size_t len = strlen(out), l2;
	char *small = malloc(len + 1);
	const char *err = NULL;
	assert_non_null(small);
	assert_int_equal(authres_build("mx.example.org", &r, small, len + 1,
				       &l2, &err), 0);
	assert_string_equal(small, out);
	assert_int_equal(authres_build("mx.example.org", &r, small, len,
				       &l2, &err), -1);
	assert_string_equal(small, "");
	assert_non_null(err);
	free(small);
}

/* A built field unfolded: every CRLF SP that folds it is one SP. */
static void unfold(const char *in, char *out)
{
	size_t o = 0;
	for (size_t i = 0; in[i] != '\0'; i++) {
		if (in[i] == '\r' && in[i + 1] == '\n' && in[i + 2] == ' ') {
			i++;
			continue;
		}
		out[o++] = in[i];
	}
	out[o] = '\0';
}

static void test_build_amp_did(void **state)
{
	(void)state;
	char out[AUTHRES_FIELD_MAX];
	/* with every other method: last, the DID quoted (':' is a tspecial) */
	authres_results r = {
		.spf = "pass", .spf_mailfrom = "alice@alpha.example.net",
		.dmarc = "none", .dmarc_from = "alpha.example.net",
		.arc = "none", .amp_did = "pass",
		.amp_did_d = "did:aftersmtp:alpha.example.net:alice",
	};
	build("mx.beta.example.net", &r, out, sizeof(out));
	assert_string_equal(out,
		"Authentication-Results: mx.beta.example.net; spf=pass\r\n"
		" smtp.mailfrom=alice@alpha.example.net; dmarc=none\r\n"
		" header.from=alpha.example.net; arc=none; amp-did=pass\r\n"
		" header.d=\"did:aftersmtp:alpha.example.net:alice\"\r\n");
	check_folding(out);
	/* alone, every result keyword */
	static const char *const results[] = { "none", "pass", "fail",
		"temperror", "permerror" };
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		authres_results a = { .amp_did = results[i],
				      .amp_did_d = "did:aftersmtp:a.example:b" };
		char want[200], flat[AUTHRES_FIELD_MAX];
		build("mx", &a, out, sizeof(out));
		snprintf(want, sizeof(want), "Authentication-Results: mx; "
			 "amp-did=%s header.d=\"did:aftersmtp:a.example:b\"\r\n",
			 results[i]);
		unfold(out, flat);
		assert_string_equal(flat, want);
		check_folding(out);
	}
	/* without the DID (a field whose d= did not read) */
	authres_results bare = { .dkim = (authres_dkim[]){ { .result =
		"none" } }, .n_dkim = 1, .amp_did = "permerror" };
	build("mx", &bare, out, sizeof(out));
	assert_string_equal(out, "Authentication-Results: mx; dkim=none;"
			    " amp-did=permerror\r\n");
	/* a long DID: one item longer than a line stays whole */
	char did[400];
	snprintf(did, sizeof(did), "did:aftersmtp:%s.example:%s",
		 "a-very-long-label-of-sixty-three-characters-a-very-long-label",
		 "someone-with-a-long-local-part");
	authres_results lng = { .arc = "pass", .amp_did = "fail",
				.amp_did_d = did };
	build("mx.example.org", &lng, out, sizeof(out));
	char want[600];
	snprintf(want, sizeof(want), "Authentication-Results: mx.example.org;"
		 " arc=pass; amp-did=fail\r\n header.d=\"%s\"\r\n", did);
	assert_string_equal(out, want);
	/* a value from a message is made safe: quotes escaped, controls
	 * replaced (the verifier only reports canonical DIDs; this is the
	 * builder's own guard) */
	authres_results odd = { .amp_did = "fail",
				.amp_did_d = "did:\"x\r\ny" };
	build("mx", &odd, out, sizeof(out));
	assert_string_equal(out, "Authentication-Results: mx; amp-did=fail"
			    " header.d=\"did:\\\"x??y\"\r\n");
}

static void test_build_refused(void **state)
{
	(void)state;
	char out[256];
	size_t len;
	const char *err;
	authres_results ok = { .spf = "pass" };
	static const char *const bad_ids[] = { "", "mx example", "mx;x",
		"mx(x)", "\"mx\"", "mx\r\n", "m\xc3\xa9" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		err = NULL;
		assert_int_equal(authres_build(bad_ids[i], &ok, out,
					       sizeof(out), &len, &err), -1);
		assert_non_null(err);
	}
	assert_int_equal(authres_build(NULL, &ok, out, sizeof(out), &len,
				       &err), -1);
	char long_id[AUTHRES_ID_MAX + 2];
	memset(long_id, 'a', sizeof(long_id));
	long_id[AUTHRES_ID_MAX + 1] = '\0';
	assert_int_equal(authres_build(long_id, &ok, out, sizeof(out), &len,
				       &err), -1);
	authres_results bad[] = {
		{ .spf = "PASS" }, { .spf = "ok" }, { .dmarc = "softfail" },
		{ .arc = "neutral" },
		{ .amp_did = "neutral" }, { .amp_did = "PASS" },
		{ .amp_did = "policy" }, { .amp_did = "" },
		{ .dkim = (authres_dkim[]){ { .result = "softfail" } },
		  .n_dkim = 1 },
		{ .dkim = (authres_dkim[]){ { .result = NULL } }, .n_dkim = 1 },
		{ .dkim = NULL, .n_dkim = 1 },
		{ .dkim = (authres_dkim[AUTHRES_DKIM_MAX + 1]){ { 0 } },
		  .n_dkim = AUTHRES_DKIM_MAX + 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		assert_int_equal(authres_build("mx", &bad[i], out, sizeof(out),
					       &len, &err), -1);
		assert_non_null(err);
	}
	assert_int_equal(authres_build("mx", &ok, NULL, 0, &len, &err), -1);
}

/* ------------------------------------------------------------- reading */

typedef struct id_case {
	const char *in;
	const char *id;         /* NULL: refused */
	unsigned version;
} id_case;

static const id_case id_cases[] = {
	{ " mx.example.org; spf=pass", "mx.example.org", 1 },
	{ "mx.example.org;", "mx.example.org", 1 },
	{ "mx.example.org ; dkim=pass", "mx.example.org", 1 },
	{ " mx.example.org 1; dkim=pass", "mx.example.org", 1 },
	{ " mx.example.org (comment) 1 (c) ; x", "mx.example.org", 1 },
	{ " mx.example.org 2; dkim=pass", "mx.example.org", 2 },
	{ " mx.example.org; none", "mx.example.org", 1 },
	{ " mx.example.org none", "mx.example.org", 1 },
	{ " mx.example.org NONE (nothing)\r\n", "mx.example.org", 1 },
	{ " mx.example.org(c);", "mx.example.org", 1 },
	{ "(a (nested \\) comment) here)mx.example.org;", "mx.example.org",
	  1 },
	{ " \"mx.example.org\"; spf=pass", "mx.example.org", 1 },
	{ " \"mx \\\"q\\\\\";", "mx \"q\\", 1 },
	{ " \"caf\xc3\xa9\";", "caf\xc3\xa9", 1 },
	{ "\r\n\tmx.example.org\r\n ;\r\n spf=pass\r\n", "mx.example.org",
	  1 },
	{ "\n mx.example.org\n ;", "mx.example.org", 1 },
	{ " \"mx\r\n .example\";", "mx .example", 1 },
	{ " MX.Example.ORG.; x", "MX.Example.ORG.", 1 },
	/* refused */
	{ "", NULL, 0 },
	{ "   ", NULL, 0 },
	{ " ;spf=pass", NULL, 0 },
	{ " mx.example.org", NULL, 0 },         /* no result */
	{ " mx.example.org spf=pass", NULL, 0 },
	{ " mx.example.org 1", NULL, 0 },
	{ " mx.example.org nonex", NULL, 0 },
	{ " mx.example.org none; x", NULL, 0 },
	{ " mx.example.org1;", "mx.example.org1", 1 },
	{ " mx.example.org 1234567890;", NULL, 0 },
	{ " (unclosed mx.example.org;", NULL, 0 },
	{ " \"unclosed;", NULL, 0 },
	{ " \"\";", NULL, 0 },
	{ " mx\r\n;", NULL, 0 },                /* a line end, no blank */
	{ " mx\r;", NULL, 0 },
	{ " mx;\r\nx", "mx", 1 },              /* only the head is read */
	{ " (a\x01) mx;", NULL, 0 },
	{ " \"a\x01\";", NULL, 0 },
	{ " \"a\\", NULL, 0 },
	{ " \xc3\xa9mx;", NULL, 0 },
	{ " @mx;", NULL, 0 },
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
		const id_case *c = &id_cases[i];
		char id[AUTHRES_ID_MAX + 1];
		unsigned inst = 99, ver = 99;
		const char *err = NULL;
		int rc = authres_parse_id((const uint8_t *)c->in, strlen(c->in),
					  false, id, &inst, &ver, &err);
		if (c->id == NULL) {
			if (rc != -1)
				fail_msg("accepted [%s] as %s", c->in, id);
			assert_non_null(err);
			assert_string_equal(id, "");
			continue;
		}
		if (rc != 0)
			fail_msg("refused [%s]: %s", c->in, err);
		assert_string_equal(id, c->id);
		assert_int_equal(ver, c->version);
		assert_int_equal(inst, 0);
		/* every prefix: no crash, a refusal has a reason */
		size_t len = strlen(c->in);
		for (size_t k = 0; k < len; k++) {
			uint8_t *copy = malloc(k + 1);
			assert_non_null(copy);
			memcpy(copy, c->in, k);
			err = NULL;
			if (authres_parse_id(copy, k, false, id, &inst, &ver,
					     &err) != 0)
				assert_non_null(err);
			free(copy);
		}
	}
}

static void test_parse_limits(void **state)
{
	(void)state;
	char id[AUTHRES_ID_MAX + 1];
	unsigned inst, ver;
	const char *err;
	char buf[AUTHRES_PARSE_MAX + 16];
	/* a 255-byte id, then 256 */
	buf[0] = ' ';
	memset(buf + 1, 'a', AUTHRES_ID_MAX);
	buf[1 + AUTHRES_ID_MAX] = ';';
	assert_int_equal(authres_parse_id((uint8_t *)buf, AUTHRES_ID_MAX + 2,
					  false, id, &inst, &ver, &err), 0);
	assert_int_equal(strlen(id), AUTHRES_ID_MAX);
	memset(buf + 1, 'a', AUTHRES_ID_MAX + 1);
	buf[2 + AUTHRES_ID_MAX] = ';';
	assert_int_equal(authres_parse_id((uint8_t *)buf, AUTHRES_ID_MAX + 3,
					  false, id, &inst, &ver, &err), -1);
	/* nested comments: 16 deep, then 17 */
	char c[128];
	int n = 0;
	for (int i = 0; i < 16; i++)
		c[n++] = '(';
	for (int i = 0; i < 16; i++)
		c[n++] = ')';
	memcpy(c + n, "mx;", 3);
	assert_int_equal(authres_parse_id((uint8_t *)c, (size_t)n + 3, false,
					  id, &inst, &ver, &err), 0);
	n = 0;
	for (int i = 0; i < 17; i++)
		c[n++] = '(';
	for (int i = 0; i < 17; i++)
		c[n++] = ')';
	memcpy(c + n, "mx;", 3);
	assert_int_equal(authres_parse_id((uint8_t *)c, (size_t)n + 3, false,
					  id, &inst, &ver, &err), -1);
	assert_string_equal(err, "comments nest too deep");
	/* the field size: a long comment fits, one byte more does not */
	memset(buf, ' ', sizeof(buf));
	memcpy(buf + AUTHRES_PARSE_MAX - 3, "mx;", 3);
	assert_int_equal(authres_parse_id((uint8_t *)buf, AUTHRES_PARSE_MAX,
					  false, id, &inst, &ver, &err), 0);
	memcpy(buf + AUTHRES_PARSE_MAX - 2, "mx;", 3);
	assert_int_equal(authres_parse_id((uint8_t *)buf,
					  AUTHRES_PARSE_MAX + 1, false, id,
					  &inst, &ver, &err), -1);
	/* NUL */
	assert_int_equal(authres_parse_id((const uint8_t *)" mx;\0", 5, false,
					  id, &inst, &ver, &err), -1);
}

static void test_parse_arc(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		unsigned inst;
		const char *id;
	} cases[] = {
		{ " i=1; mx.example.org; spf=pass", 1, "mx.example.org" },
		{ "i=50;mx;", 50, "mx" },
		{ " (c) I (c) = (c) 7 (c) ; (c) \"mx\" 1 ; x", 7, "mx" },
		{ " i=1; mx none", 1, "mx" },
		{ " i=0; mx;", 0, NULL },
		{ " i=51; mx;", 0, NULL },
		{ " i=001; mx;", 1, "mx" },
		{ " i=0001; mx;", 0, NULL },
		{ " i=; mx;", 0, NULL },
		{ " i=1 mx;", 0, NULL },
		{ " mx.example.org; spf=pass", 0, NULL },
		{ " j=1; mx;", 0, NULL },
		{ " i=1;", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[AUTHRES_ID_MAX + 1];
		unsigned inst = 99, ver;
		const char *err = NULL;
		int rc = authres_parse_id((const uint8_t *)cases[i].in,
					  strlen(cases[i].in), true, id, &inst,
					  &ver, &err);
		if (cases[i].id == NULL) {
			if (rc != -1)
				fail_msg("accepted %s", cases[i].in);
			assert_int_equal(inst, 0);
			assert_non_null(err);
		} else {
			if (rc != 0)
				fail_msg("refused %s: %s", cases[i].in, err);
			assert_int_equal(inst, cases[i].inst);
			assert_string_equal(id, cases[i].id);
		}
	}
	/* the ARC form read as a plain field is refused, and vice versa */
	assert_false(authres_claims_id((const uint8_t *)" i=1; mx;", 9, false,
				       "mx"));
	assert_true(authres_claims_id((const uint8_t *)" i=1; mx;", 9, true,
				      "mx"));
}

/* ----------------------------------------------------------------- S20 */

static void test_s20_claims(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		bool ours;
	} cases[] = {
		{ " mx.ours.example; dkim=pass header.d=paypal.com", true },
		{ " MX.OURS.EXAMPLE; dkim=pass", true },
		{ " mx.ours.example.; dkim=pass", true },
		{ " (forged by a spammer) mx.ours.example (yes) ; dkim=pass",
		  true },
		{ " \"mx.ours.example\"; dkim=pass", true },
		{ "\r\n mx.ours.example\r\n\t; dkim=pass", true },
		{ " mx.ours.example 1; dkim=pass", true },
		{ " mx.ours.example 2; dkim=pass", true },   /* any version */
		{ " mx.ours.example", true },               /* malformed tail */
		{ " mx.ours.example dkim=pass", true },
		{ " mx.ours.example(c)dkim=pass", true },
		{ " mx.ours.example.other; dkim=pass", false },
		{ " other.mx.ours.example; dkim=pass", false },
		{ " mx.ours.exampl; dkim=pass", false },
		{ " \"mx.ours.example \"; dkim=pass", false },
		{ " mx.ours.example..; dkim=pass", false },
		{ " (mx.ours.example) other.example; dkim=pass", false },
		{ " (unclosed mx.ours.example; dkim=pass", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = authres_claims_id((const uint8_t *)cases[i].v,
					     strlen(cases[i].v), false,
					     "mx.ours.example");
		if (got != cases[i].ours)
			fail_msg("%s: %d", cases[i].v, got);
	}
	assert_true(authres_id_equal("Mx.Ours.Example.", "mx.ours.example"));
	assert_false(authres_id_equal("", ""));
	assert_false(authres_id_equal(".", ""));
	assert_false(authres_id_equal("mx", "mx.."));
}

static void test_s20_scan(void **state)
{
	(void)state;
	static const char msg[] =
		"Received: from x by y\r\n"
		"Authentication-Results: mx.ours.example; dkim=pass\r\n"
		"authentication-results : (c) MX.OURS.EXAMPLE\r\n"
		"\t; spf=pass\r\n"
		"Authentication-Results: mx.other.example; dkim=pass\r\n"
		"ARC-Authentication-Results: i=1; mx.ours.example; spf=pass\r\n"
		"Authentication-Results: (unclosed\r\n"
		"X-Authentication-Results: mx.ours.example; x=y\r\n"
		"From: a@example.com\r\n"
		"\r\n"
		"Authentication-Results: mx.ours.example; in the body\r\n";
	mail_field f[4];
	size_t n = authres_scan((const uint8_t *)msg, sizeof(msg) - 1,
				"mx.ours.example", false, f, 4);
	assert_int_equal(n, 2);
	assert_int_equal(f[0].off, strlen("Received: from x by y\r\n"));
	assert_true(memcmp(msg + f[1].off, "authentication-results :", 24) ==
		    0);
	assert_true(memcmp(msg + f[1].off + f[1].len - 12, "; spf=pass\r\n",
			   12) == 0);
	n = authres_scan((const uint8_t *)msg, sizeof(msg) - 1,
			 "mx.ours.example", true, f, 4);
	assert_int_equal(n, 3);
	assert_true(memcmp(msg + f[2].off, "Authentication-Results: (unc",
			   28) == 0);
	/* more than cap: counted, first cap stored */
	n = authres_scan((const uint8_t *)msg, sizeof(msg) - 1,
			 "mx.ours.example", true, f, 1);
	assert_int_equal(n, 3);
	n = authres_scan((const uint8_t *)msg, sizeof(msg) - 1,
			 "mx.none.example", false, NULL, 0);
	assert_int_equal(n, 0);
}

/* Whatever we build reads back with our id. */
static void test_round_trip(void **state)
{
	(void)state;
	authres_dkim k[] = { { .result = "pass", .d = "ex\"am;ple.com",
			       .s = "s(1)", .b = "a b c d e f g h i" } };
	authres_results r = { .spf = "fail", .spf_mailfrom = "(x)@y",
			      .dkim = k, .n_dkim = 1, .dmarc = "fail",
			      .dmarc_from = "evil\r\nAuthentication-Results: x",
			      .arc = "pass" };
	static const char *const ids[] = { "mx.example.org", "a",
		"host-1.example", "x!#$%&'*+-.^_`{|}~" };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char out[AUTHRES_FIELD_MAX];
		build(ids[i], &r, out, sizeof(out));
		check_folding(out);
		const char *v = out + strlen("Authentication-Results:");
		char id[AUTHRES_ID_MAX + 1];
		unsigned inst, ver;
		const char *err;
		assert_int_equal(authres_parse_id((const uint8_t *)v, strlen(v),
						  false, id, &inst, &ver, &err),
				 0);
		assert_string_equal(id, ids[i]);
		assert_true(authres_claims_id((const uint8_t *)v, strlen(v),
					      false, ids[i]));
		/* one field only: the injected text stays inside a value */
		mail_field f[2];
		assert_int_equal(authres_scan((const uint8_t *)out,
					      strlen(out), ids[i], false, f, 2),
				 1);
	}
}

/* ------------------------------------------------- python3-authres (D11) */

static const char py_check[] =
	"import sys\n"
	"try:\n"
	"    import authres\n"
	"except ImportError:\n"
	"    sys.exit(77)\n"
	"data = open(sys.argv[1], 'rb').read().decode('utf-8')\n"
	"for block in data.split('\\0'):\n"
	"    if not block:\n"
	"        continue\n"
	"    field, want = block.split('\\x01')\n"
	"    h = authres.AuthenticationResultsHeader.parse(field.rstrip('\\r\\n'))\n"
	"    got = h.authserv_id + '|' + ';'.join(\n"
	"        r.method + '=' + r.result + ''.join(\n"
	"            ' ' + p.type + '.' + p.name + '=' + p.value\n"
	"            for p in r.properties) for r in h.results)\n"
	"    if got != want:\n"
	"        print('authres: got  ' + repr(got))\n"
	"        print('authres: want ' + repr(want))\n"
	"        sys.exit(1)\n";

typedef struct py_case {
	authres_results r;
	const char *want;       /* as the script prints it */
} py_case;

static void test_python_authres(void **state)
{
	(void)state;
	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	authres_dkim k1[] = { { .result = "pass", .d = "example.com",
				.i = "@example.com", .s = "sel",
				.a = "rsa-sha256", .b = "ab/cd+ef==" },
			      { .result = "fail", .d = "example.net",
				.s = "s2", .b = "Zm9vYmFy" } };
	py_case cases[] = {
		{ { .spf = "pass", .spf_mailfrom = "alice@example.com",
		    .dkim = k1, .n_dkim = 2, .dmarc = "pass",
		    .dmarc_from = "example.com", .arc = "none" },
		  "mx.example.org|spf=pass smtp.mailfrom=alice@example.com;"
		  "dkim=pass header.d=example.com header.i=@example.com"
		  " header.s=sel header.a=rsa-sha256 header.b=ab/cd+ef;"
		  "dkim=fail header.d=example.net header.s=s2"
		  " header.b=Zm9vYmFy;"
		  "dmarc=pass header.from=example.com;arc=none" },
		{ { 0 }, "mx.example.org|" },
		{ { .spf = "softfail", .spf_helo = "helo.example" },
		  "mx.example.org|spf=softfail smtp.helo=helo.example" },
		/* python3-authres 1.2.0 strips the quotes of a quoted-string
		 * but leaves its quoted-pairs as they are */
		{ { .dmarc = "fail", .dmarc_from = "a b\"c\\d" },
		  "mx.example.org|dmarc=fail header.from=a b\\\"c\\\\d" },
		{ { .spf = "temperror", .spf_mailfrom = "x\r\ny@example.com" },
		  "mx.example.org|spf=temperror "
		  "smtp.mailfrom=x??y@example.com" },
		/* the extension method: an unknown method is read like any */
		{ { .spf = "pass", .spf_mailfrom = "alice@alpha.example.net",
		    .dmarc = "none", .dmarc_from = "alpha.example.net",
		    .arc = "none", .amp_did = "pass",
		    .amp_did_d = "did:aftersmtp:alpha.example.net:alice" },
		  "mx.example.org|spf=pass smtp.mailfrom=alice@alpha.example.net;"
		  "dmarc=none header.from=alpha.example.net;arc=none;"
		  "amp-did=pass header.d=did:aftersmtp:alpha.example.net:alice" },
		{ { .amp_did = "temperror",
		    .amp_did_d = "did:aftersmtp:alpha.example.net:alice" },
		  "mx.example.org|amp-did=temperror"
		  " header.d=did:aftersmtp:alpha.example.net:alice" },
	};
	char path[] = "/tmp/test-authres-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *fp = fdopen(fd, "wb");
	assert_non_null(fp);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[AUTHRES_FIELD_MAX];
		build("mx.example.org", &cases[i].r, out, sizeof(out));
		fprintf(fp, "%s\x01%s%c", out, cases[i].want, 0);
	}
	assert_int_equal(fclose(fp), 0);
	char script[] = "/tmp/test-authres-py-XXXXXX";
	int sfd = mkstemp(script);
	assert_true(sfd >= 0);
	assert_int_equal(write(sfd, py_check, sizeof(py_check) - 1),
			 (ssize_t)(sizeof(py_check) - 1));
	close(sfd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s", script, path);
	int st = system(cmd);
	unlink(path);
	unlink(script);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77) {
		print_message("python3-authres is not installed: skipped\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* RFC 8601 Appendix B: every example Authentication-Results field (the
 * value after "Authentication-Results:", folded as printed, CRLF line
 * ends) reads with its authserv-id and version, and is ours exactly when
 * our id is that authserv-id. */
static void test_rfc8601_appendix_b(void **state)
{
	(void)state;
	static const struct {
		const char *sect, *value, *id;
		unsigned version;
	} ex[] = {
		/* B.2: service provided, no authentication done */
		{ "B.2", " example.org 1; none", "example.org", 1 },
		/* B.3 */
		{ "B.3", " example.com;\r\n"
		  "          spf=pass smtp.mailfrom=example.net",
		  "example.com", 1 },
		/* B.4: several authentications, a single MTA (two fields) */
		{ "B.4", " example.com;\r\n"
		  "          auth=pass (cram-md5) smtp.auth=sender@example.net;"
		  "\r\n"
		  "          spf=pass smtp.mailfrom=example.net",
		  "example.com", 1 },
		{ "B.4", " example.com; iprev=pass\r\n"
		  "          policy.iprev=192.0.2.200",
		  "example.com", 1 },
		/* B.5: different MTAs */
		{ "B.5", " example.com;\r\n"
		  "          dkim=pass (good signature) header.d=example.com",
		  "example.com", 1 },
		{ "B.5", " example.com;\r\n"
		  "          auth=pass (cram-md5) smtp.auth=sender@example.com;"
		  "\r\n"
		  "          spf=fail smtp.mailfrom=example.com",
		  "example.com", 1 },
		/* B.6: multi-tiered */
		{ "B.6", " example.com;\r\n"
		  "      dkim=pass reason=\"good signature\"\r\n"
		  "        header.i=@mail-router.example.net;\r\n"
		  "      dkim=fail reason=\"bad signature\"\r\n"
		  "        header.i=@newyork.example.com",
		  "example.com", 1 },
		{ "B.6", " example.net;\r\n"
		  "      dkim=pass (good signature) header.i=@newyork.example.com",
		  "example.net", 1 },
		/* B.7: comment-heavy */
		{ "B.7", " foo.example.net (foobar) 1 (baz);\r\n"
		  "    dkim (Because I like it) / 1 (One yay) = (wait for it) "
		  "fail\r\n"
		  "      policy (A dot can go here) . (like that) expired\r\n"
		  "      (this surprised me) = (as I wasn't expecting it) "
		  "1362471462",
		  "foo.example.net", 1 },
	};
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		char id[AUTHRES_ID_MAX + 1];
		unsigned inst = 99, ver = 0;
		const char *err = NULL;
		const uint8_t *v = (const uint8_t *)ex[i].value;
		size_t n = strlen(ex[i].value);
		if (authres_parse_id(v, n, false, id, &inst, &ver, &err) != 0)
			fail_msg("%s example %zu refused: %s", ex[i].sect, i,
				 err);
		if (strcmp(id, ex[i].id) != 0 || ver != ex[i].version ||
		    inst != 0)
			fail_msg("%s example %zu: id %s version %u", ex[i].sect,
				 i, id, ver);
		/* with the field's final line end too */
		{
			char *t = malloc(n + 3);
			assert_non_null(t);
			memcpy(t, ex[i].value, n);
			memcpy(t + n, "\r\n", 3);
			assert_int_equal(authres_parse_id((uint8_t *)t, n + 2,
							  false, id, &inst,
							  &ver, &err), 0);
			assert_string_equal(id, ex[i].id);
			free(t);
		}
		/* ours when our id is the example's, in any case and with a
		 * trailing dot; not another's or a parent's */
		assert_true(authres_claims_id(v, n, false, ex[i].id));
		char up[AUTHRES_ID_MAX + 2];
		size_t k;
		for (k = 0; ex[i].id[k] != '\0'; k++)
			up[k] = (char)((ex[i].id[k] >= 'a' &&
					ex[i].id[k] <= 'z') ?
				       ex[i].id[k] - 32 : ex[i].id[k]);
		up[k++] = '.';
		up[k] = '\0';
		assert_true(authres_claims_id(v, n, false, up));
		assert_false(authres_claims_id(v, n, false, "mx.example.org"));
		assert_false(authres_claims_id(v, n, false, "example"));
		assert_false(authres_claims_id(
			v, n, false, strcmp(ex[i].id, "example.net") == 0 ?
			"example.com" : "example.net"));
	}

	/* B.4's two fields and B.5's message as a header section: a
	 * receiver whose id is example.com finds every field that claims
	 * it, whatever MTA added it (S20), and none for another id. */
	static const char b5[] =
		"Authentication-Results: example.com;\r\n"
		"          dkim=pass (good signature) header.d=example.com\r\n"
		"Received: from mail-router.example.com\r\n"
		"              (mail-router.example.com [192.0.2.1])\r\n"
		"          by auth-checker.example.com (8.11.6/8.11.6)\r\n"
		"              with ESMTP id i7PK0sH7021929;\r\n"
		"          Fri, Feb 15 2002 17:19:22 -0800\r\n"
		"Authentication-Results: example.com;\r\n"
		"          auth=pass (cram-md5) smtp.auth=sender@example.com;\r\n"
		"          spf=fail smtp.mailfrom=example.com\r\n"
		"Received: from dialup-1-2-3-4.example.net\r\n"
		"              (dialup-1-2-3-4.example.net [192.0.2.200])\r\n"
		"          by mail-router.example.com (8.11.6/8.11.6)\r\n"
		"              with ESMTPA id g1G0r1kA003489;\r\n"
		"          Fri, Feb 15 2002 17:19:07 -0800\r\n"
		"From: sender@example.com\r\n"
		"Date: Fri, Feb 15 2002 16:54:30 -0800\r\n"
		"To: receiver@example.com\r\n"
		"Message-Id: <12345.abc@example.com>\r\n"
		"Subject: here's a sample\r\n"
		"\r\n"
		"Hello!  Goodbye!\r\n";
	mail_field found[4];
	assert_int_equal(authres_scan((const uint8_t *)b5, strlen(b5),
				      "example.com", false, found, 4), 2);
	assert_int_equal(authres_scan((const uint8_t *)b5, strlen(b5),
				      "example.net", true, found, 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_full),
		cmocka_unit_test(test_build_values),
		cmocka_unit_test(test_build_folding),
		cmocka_unit_test(test_build_amp_did),
		cmocka_unit_test(test_build_refused),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_parse_arc),
		cmocka_unit_test(test_s20_claims),
		cmocka_unit_test(test_s20_scan),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_python_authres),
		cmocka_unit_test(test_rfc8601_appendix_b),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
