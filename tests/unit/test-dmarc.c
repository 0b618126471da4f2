/*
 * test-dmarc.c — DMARC (RFC 7489), the pure part (src/mime/dmarc.c): the
 * record parser (every tag, bad values defaulted, §6.6.3's p=none with a
 * valid rua, duplicates and malformed lists refused, the RFC's examples,
 * every prefix of every valid record), the choice among TXT records, the
 * organisational domain at public-suffix boundaries (com, co.uk,
 * kawasaki.jp, private suffixes), the discovery names, alignment, and
 * evaluation (TESTING.md D12 and D4: relaxed/strict, subdomains and sp,
 * pct steps, SPF fail with aligned DKIM pass, l= signatures ignored,
 * several From).
 */
#include "test-common.h"

#include "dmarc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dmarc_record parse_ok(const char *s)
{
	dmarc_record r;
	const char *err = NULL;
	int rc = dmarc_record_parse((const uint8_t *)s, strlen(s), &r, &err);
	if (rc != 0)
		fail_msg("refused %s: %s", s, err);
	return r;
}

static const char *parse_err(const char *s)
{
	dmarc_record r;
	const char *err = NULL;
	int rc = dmarc_record_parse((const uint8_t *)s, strlen(s), &r, &err);
	if (rc == 0)
		fail_msg("accepted %s", s);
	assert_non_null(err);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_int_equal(r.pct, 100);
	return err;
}

/* ------------------------------------------------------------- records */

static void test_rfc_examples(void **state)
{
	(void)state;
	/* RFC 7489 Appendix B.2.1 .. B.2.4 */
	dmarc_record r = parse_ok(
		"v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com");
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_false(r.sp_given);
	assert_string_equal(r.rua, "mailto:dmarc-feedback@example.com");
	assert_string_equal(r.ruf, "");
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict);
	assert_false(r.aspf_strict);
	assert_int_equal(r.ri, 86400);
	assert_string_equal(r.fo, "0");
	assert_string_equal(r.rf, "afrf");
	assert_int_equal(r.warnings, 0);

	r = parse_ok("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com;"
		     " ruf=mailto:auth-reports@thirdparty.example.net");
	assert_string_equal(r.ruf, "mailto:auth-reports@thirdparty.example.net");

	r = parse_ok("v=DMARC1; p=quarantine;"
		     " rua=mailto:dmarc-feedback@example.com,"
		     "mailto:tld-test@thirdparty.example.net!10m;"
		     " pct=25");
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.sp, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.pct, 25);
	assert_string_equal(r.rua, "mailto:dmarc-feedback@example.com,"
			    "mailto:tld-test@thirdparty.example.net!10m");

	/* §6.6.3 step 6: no p, a valid rua: p=none */
	r = parse_ok("v=DMARC1; rua=mailto:dmarc-feedback@example.com");
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_true(r.warnings & DMARC_REC_P_DEFAULTED);
}

static void test_every_tag(void **state)
{
	(void)state;
	dmarc_record r = parse_ok(
		"v=DMARC1;p=reject;sp=none;pct=0;adkim=s;aspf=s;"
		"rua=mailto:a@b.example;ruf=mailto:f@b.example;fo=1:d:s;"
		"rf=afrf:iodef;ri=3600");
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_true(r.sp_given);
	assert_int_equal(r.pct, 0);
	assert_true(r.adkim_strict);
	assert_true(r.aspf_strict);
	assert_string_equal(r.rua, "mailto:a@b.example");
	assert_string_equal(r.ruf, "mailto:f@b.example");
	assert_string_equal(r.fo, "1:d:s");
	assert_string_equal(r.rf, "afrf:iodef");
	assert_int_equal(r.ri, 3600);
	assert_int_equal(r.warnings, 0);

	/* keywords are case-insensitive, tag names are not */
	r = parse_ok("v=DMARC1; p=ReJeCt; SP=none; adkim=S; aspf=R");
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_REJECT); /* SP is unknown */
	assert_true(r.adkim_strict);
	assert_false(r.aspf_strict);

	/* blanks and folding around '=' and ';', a final ';' */
	r = parse_ok("v = DMARC1 ;\r\n p = quarantine ;\tpct = 050 ; ");
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
	assert_int_equal(r.pct, 50);
	r = parse_ok("v=DMARC1;p=none;");
	assert_int_equal(r.p, DMARC_POLICY_NONE);

	/* unknown tags, anywhere after v, are ignored */
	r = parse_ok("v=DMARC1; x_y=anything; p=reject; np=none; psd=y");
	assert_int_equal(r.p, DMARC_POLICY_REJECT);

	/* pct and ri at their limits */
	assert_int_equal(parse_ok("v=DMARC1; p=none; pct=100").pct, 100);
	assert_int_equal(parse_ok("v=DMARC1; p=none; ri=4294967295").ri,
			 UINT32_MAX);
	assert_int_equal(parse_ok("v=DMARC1; p=none; ri=0").ri, 0);
	/* a value with inner blanks (kept as written) */
	r = parse_ok("v=DMARC1; p=none; rua=mailto:a@b.example, "
		     "mailto:c@d.example");
	assert_string_equal(r.rua, "mailto:a@b.example, mailto:c@d.example");
}

typedef struct warn_case {
	const char *in;
	unsigned warnings;
} warn_case;

static void test_bad_values_default(void **state)
{
	(void)state;
	static const warn_case cases[] = {
		{ "v=DMARC1; p=none; pct=101", DMARC_REC_BAD_PCT },
		{ "v=DMARC1; p=none; pct=-1", DMARC_REC_BAD_PCT },
		{ "v=DMARC1; p=none; pct=1.5", DMARC_REC_BAD_PCT },
		{ "v=DMARC1; p=none; pct=99999999999", DMARC_REC_BAD_PCT },
		{ "v=DMARC1; p=none; adkim=x", DMARC_REC_BAD_ADKIM },
		{ "v=DMARC1; p=none; adkim=relaxed", DMARC_REC_BAD_ADKIM },
		{ "v=DMARC1; p=none; aspf=strict", DMARC_REC_BAD_ASPF },
		{ "v=DMARC1; p=none; fo=2", DMARC_REC_BAD_FO },
		{ "v=DMARC1; p=none; fo=0:", DMARC_REC_BAD_FO },
		{ "v=DMARC1; p=none; fo=0::1", DMARC_REC_BAD_FO },
		{ "v=DMARC1; p=none; fo=0:1:d:s:0:1:d:s:0", DMARC_REC_BAD_FO },
		{ "v=DMARC1; p=none; rf=:afrf", DMARC_REC_BAD_RF },
		{ "v=DMARC1; p=none; rf=a_b", DMARC_REC_BAD_RF },
		{ "v=DMARC1; p=none; ri=4294967296", DMARC_REC_BAD_RI },
		{ "v=DMARC1; p=none; ri=1h", DMARC_REC_BAD_RI },
		{ "v=DMARC1; p=none; fo=1 : d", 0 },
		{ "v=DMARC1; p=none; rf=afrf : iodef", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dmarc_record r = parse_ok(cases[i].in);
		if (r.warnings != cases[i].warnings)
			fail_msg("%s: warnings %#x", cases[i].in, r.warnings);
		assert_int_equal(r.p, DMARC_POLICY_NONE);
		if (cases[i].warnings & DMARC_REC_BAD_PCT)
			assert_int_equal(r.pct, 100);
		if (cases[i].warnings & DMARC_REC_BAD_FO)
			assert_string_equal(r.fo, "0");
		if (cases[i].warnings & DMARC_REC_BAD_RF)
			assert_string_equal(r.rf, "afrf");
		if (cases[i].warnings & DMARC_REC_BAD_RI)
			assert_int_equal(r.ri, 86400);
		assert_false(r.adkim_strict);
		assert_false(r.aspf_strict);
	}
}

static void test_missing_p(void **state)
{
	(void)state;
	/* a bad p or sp with a valid rua: none, everything else kept */
	dmarc_record r = parse_ok("v=DMARC1; p=bogus; adkim=s; "
				  "rua=mailto:x@example.com");
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_true(r.adkim_strict);
	assert_true(r.warnings & DMARC_REC_P_DEFAULTED);
	r = parse_ok("v=DMARC1; p=reject; sp=bogus; "
		     "rua=junk,https://r.example/x!5k");
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_int_equal(r.sp, DMARC_POLICY_NONE);
	assert_true(r.warnings & DMARC_REC_P_DEFAULTED);
	/* without a valid rua: refused */
	parse_err("v=DMARC1");
	parse_err("v=DMARC1;");
	parse_err("v=DMARC1; pct=50");
	parse_err("v=DMARC1; p=bogus");
	parse_err("v=DMARC1; p=reject; sp=bogus");
	parse_err("v=DMARC1; rua=junk");
	parse_err("v=DMARC1; rua=mailto:");
	parse_err("v=DMARC1; rua=:x");
	parse_err("v=DMARC1; rua=1x:y");
	parse_err("v=DMARC1; rua=mailto:a@b!");
	parse_err("v=DMARC1; rua=mailto:a@b!10x");
	parse_err("v=DMARC1; rua=mailto:a@b!k");
	parse_err("v=DMARC1; rua=mailto:a@b!10m!2");
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"v=DMARC2; p=none",
		"v=dmarc1; p=none",       /* DMARC1 is case-sensitive */
		"V=DMARC1; p=none",
		" v=DMARC1; p=none",
		"p=none; v=DMARC1",       /* v first */
		"v=DMARC1 p=none",
		"v=DMARC1x; p=none",
		"v=DMARC1; p=none; v=DMARC1",
		"v=DMARC1; p=none; p=reject",      /* duplicates */
		"v=DMARC1; p=none; pct=1; pct=1",
		"v=DMARC1; p=none; rua=mailto:a@b.c; rua=mailto:a@b.c",
		"v=DMARC1; p=none; adkim=r; adkim=s",
		"v=DMARC1; p=none; fo=0; fo=1",
		"v=DMARC1; p=none;; pct=1",        /* an empty tag */
		"v=DMARC1; ; p=none",
		"v=DMARC1; p",
		"v=DMARC1; p=",
		"v=DMARC1; p=none; pct",
		"v=DMARC1; p=none; 1x=2",
		"v=DMARC1; p=none; _x=2",
		"v=DMARC1; p=none; x-y=2",
		"v=DMARC1; p=none; x=\x01",
		"v=DMARC1; p=none; x=caf\xc3\xa9",
		"v=DMARC1; p=none\r\n",            /* CRLF not folding */
		"v=DMARC1; p=none\r\nx=y",
		"v=DMARC1; p=none;\n",
		"v=DMARC1; p=none; x=a\rb",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_err(bad[i]);
	/* NUL inside */
	static const char nul[] = "v=DMARC1; p=none; x=a\0b";
	dmarc_record r;
	const char *err = NULL;
	assert_int_equal(dmarc_record_parse((const uint8_t *)nul,
					    sizeof(nul) - 1, &r, &err), -1);
	assert_non_null(err);
	/* the limits */
	char big[DMARC_RECORD_MAX + 2];
	int n = snprintf(big, sizeof(big), "v=DMARC1; p=none; x=");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\0';
	big[DMARC_RECORD_MAX] = '\0';
	parse_ok(big);                          /* exactly the limit */
	big[DMARC_RECORD_MAX] = 'a';
	assert_string_equal(parse_err(big),
			    "the DMARC record is longer than 2048 bytes");
	char rua[DMARC_URIS_MAX + 64];
	n = snprintf(rua, sizeof(rua), "v=DMARC1; p=none; rua=mailto:");
	memset(rua + n, 'a', DMARC_URIS_MAX - 7);
	rua[n + DMARC_URIS_MAX - 7] = '\0';    /* rua value: 1024 bytes */
	assert_int_equal(strlen(parse_ok(rua).rua), DMARC_URIS_MAX);
	size_t rl = strlen(rua);
	rua[rl] = 'a';                          /* one byte more */
	rua[rl + 1] = '\0';
	parse_err(rua);
}

/* Every prefix of the valid records parses or is refused with a reason;
 * the whole record fed in pieces is not a thing here (a TXT record comes
 * whole), so prefixes stand for truncated DNS answers. */
static void test_prefixes(void **state)
{
	(void)state;
	static const char *const recs[] = {
		"v=DMARC1;p=reject;sp=none;pct=0;adkim=s;aspf=s;"
		"rua=mailto:a@b.example;ruf=mailto:f@b.example;fo=1:d:s;"
		"rf=afrf:iodef;ri=3600",
		"v = DMARC1 ;\r\n p = quarantine ;\tpct = 050 ; ",
	};
	for (size_t k = 0; k < 2; k++) {
		size_t len = strlen(recs[k]);
		for (size_t i = 0; i <= len; i++) {
			dmarc_record r;
			const char *err = NULL;
			uint8_t *copy = malloc(i + 1);
			assert_non_null(copy);
			memcpy(copy, recs[k], i);
			int rc = dmarc_record_parse(copy, i, &r, &err);
			if (rc != 0)
				assert_non_null(err);
			free(copy);
		}
	}
}

static void test_txt_select(void **state)
{
	(void)state;
	dmarc_record r;
	const char *err = NULL;
	const char *one[] = { "v=spf1 -all", NULL, "v=DMARC1; p=reject",
			      "google-site-verification=x" };
	assert_int_equal(dmarc_txt_select(one, 4, &r, &err), DMARC_TXT_OK);
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	const char *none[] = { "v=spf1 -all", "v=DMARC10; p=reject",
			       "v=DMARC1x", "xv=DMARC1; p=none" };
	assert_int_equal(dmarc_txt_select(none, 4, &r, &err), DMARC_TXT_NONE);
	assert_int_equal(dmarc_txt_select(NULL, 0, &r, &err), DMARC_TXT_NONE);
	const char *two[] = { "v=DMARC1; p=reject", "v=DMARC1; p=none" };
	assert_int_equal(dmarc_txt_select(two, 2, &r, &err),
			 DMARC_TXT_INVALID);
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	const char *bad[] = { "v=DMARC1; p=reject; p=none" };
	assert_int_equal(dmarc_txt_select(bad, 1, &r, &err),
			 DMARC_TXT_INVALID);
	const char *bare[] = { "v=DMARC1" };    /* selected, then refused */
	assert_int_equal(dmarc_txt_select(bare, 1, &r, &err),
			 DMARC_TXT_INVALID);
	const char *sp[] = { "v = DMARC1 ; p=quarantine" };
	assert_int_equal(dmarc_txt_select(sp, 1, &r, &err), DMARC_TXT_OK);
	assert_int_equal(r.p, DMARC_POLICY_QUARANTINE);
}

/* ------------------------------------------------------------- domains */

typedef struct org_case {
	const char *in;
	int rc;
	const char *org;
} org_case;

static void test_org_domain(void **state)
{
	(void)state;
	static const org_case cases[] = {
		{ "example.com", 1, "example.com" },
		{ "a.b.example.com", 1, "example.com" },
		{ "MAIL.Example.COM.", 1, "example.com" },
		{ "com", 0, "" },
		{ "co.uk", 0, "" },
		{ "uk", 0, "" },
		{ "example.co.uk", 1, "example.co.uk" },
		{ "news.example.co.uk", 1, "example.co.uk" },
		{ "example.uk", 1, "example.uk" },
		/* *.kawasaki.jp with the exception !city.kawasaki.jp */
		{ "kawasaki.jp", 0, "" },
		{ "foo.kawasaki.jp", 0, "" },
		{ "a.foo.kawasaki.jp", 1, "a.foo.kawasaki.jp" },
		{ "city.kawasaki.jp", 1, "city.kawasaki.jp" },
		{ "www.city.kawasaki.jp", 1, "city.kawasaki.jp" },
		/* the private section counts */
		{ "github.io", 0, "" },
		{ "alice.github.io", 1, "alice.github.io" },
		{ "x.alice.github.io", 1, "alice.github.io" },
		/* unlisted top-level labels: the implicit "*" rule */
		{ "a.b.example.invalid", 1, "example.invalid" },
		{ "xn--p1ai", 0, "" },
		{ "xn--e1afmkfd.xn--p1ai", 1, "xn--e1afmkfd.xn--p1ai" },
		/* refused */
		{ "", -1, "" },
		{ ".", -1, "" },
		{ "a..example.com", -1, "" },
		{ ".example.com", -1, "" },
		{ "example.com..", -1, "" },
		{ "exa mple.com", -1, "" },
		{ "caf\xc3\xa9.example", -1, "" },
		{ "a\x01.com", -1, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char org[DMARC_DOMAIN_MAX + 1];
		const char *err = NULL;
		int rc = dmarc_org_domain(NULL, cases[i].in, org, &err);
		if (rc != cases[i].rc || strcmp(org, cases[i].org) != 0)
			fail_msg("%s: %d %s", cases[i].in, rc, org);
		if (rc < 0)
			assert_non_null(err);
	}
	/* length limits: 63-byte labels, 253 bytes */
	char name[300], org[DMARC_DOMAIN_MAX + 1];
	const char *err;
	memset(name, 'a', 63);
	memcpy(name + 63, ".com", sizeof(".com"));
	assert_int_equal(dmarc_org_domain(NULL, name, org, &err), 1);
	memset(name, 'a', 64);
	memcpy(name + 64, ".com", sizeof(".com"));
	assert_int_equal(dmarc_org_domain(NULL, name, org, &err), -1);
	for (size_t i = 0; i < 250; i += 2)
		memcpy(name + i, "a.", 2);
	memcpy(name + 250, "uk", sizeof("uk"));        /* 252 bytes */
	assert_int_equal(strlen(name), 252);
	assert_int_equal(dmarc_org_domain(NULL, name, org, &err), 1);
	assert_string_equal(org, "a.uk");
	memcpy(name + 250, "ukk", sizeof("ukk"));       /* 253 */
	assert_int_equal(dmarc_org_domain(NULL, name, org, &err), 1);
	assert_string_equal(org, "a.ukk");
	memcpy(name + 250, "ukkk", sizeof("ukkk"));      /* 254 */
	assert_int_equal(dmarc_org_domain(NULL, name, org, &err), -1);
	assert_int_equal(dmarc_org_domain(NULL, NULL, org, &err), -1);
}

static void test_query_names(void **state)
{
	(void)state;
	char n[2][DMARC_NAME_MAX + 1];
	const char *err;
	assert_int_equal(dmarc_query_names(NULL, "Mail.Example.COM", n, &err),
			 2);
	assert_string_equal(n[0], "_dmarc.mail.example.com");
	assert_string_equal(n[1], "_dmarc.example.com");
	assert_int_equal(dmarc_query_names(NULL, "example.com.", n, &err), 1);
	assert_string_equal(n[0], "_dmarc.example.com");
	assert_string_equal(n[1], "");
	assert_int_equal(dmarc_query_names(NULL, "a.b.example.co.uk", n, &err),
			 2);
	assert_string_equal(n[1], "_dmarc.example.co.uk");
	assert_int_equal(dmarc_query_names(NULL, "co.uk", n, &err), 1);
	assert_string_equal(n[0], "_dmarc.co.uk");
	assert_int_equal(dmarc_query_names(NULL, "a..b", n, &err), -1);
	assert_string_equal(n[0], "");
	/* the longest name fits */
	char name[DMARC_DOMAIN_MAX + 1];
	for (size_t i = 0; i < 250; i += 2)
		memcpy(name + i, "a.", 2);
	memcpy(name + 250, "ukk", sizeof("ukk"));
	assert_int_equal(dmarc_query_names(NULL, name, n, &err), 2);
	assert_int_equal(strlen(n[0]), DMARC_NAME_MAX);
	assert_string_equal(n[1], "_dmarc.a.ukk");
}

typedef struct align_case {
	const char *a, *b;
	bool relaxed, strict;
} align_case;

static void test_alignment(void **state)
{
	(void)state;
	static const align_case cases[] = {
		/* RFC 7489 §3.1.1 and §3.1.2 */
		{ "example.com", "example.com", true, true },
		{ "news.example.com", "example.com", true, false },
		{ "example.com", "news.example.com", true, false },
		{ "a.example.com", "b.example.com", true, false },
		{ "EXAMPLE.com.", "example.COM", true, true },
		{ "example.com", "example.net", false, false },
		{ "example.com", "com", false, false },
		{ "example.com", "xexample.com", false, false },
		/* public-suffix boundaries */
		{ "a.co.uk", "b.co.uk", false, false },
		{ "x.a.co.uk", "a.co.uk", true, false },
		{ "co.uk", "co.uk", true, true },     /* same name */
		{ "a.co.uk", "co.uk", false, false },
		{ "alice.github.io", "bob.github.io", false, false },
		{ "x.alice.github.io", "alice.github.io", true, false },
		{ "a.foo.kawasaki.jp", "b.foo.kawasaki.jp", false, false },
		{ "www.city.kawasaki.jp", "city.kawasaki.jp", true, false },
		{ "bad..name", "bad..name", false, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const align_case *c = &cases[i];
		if (dmarc_aligned(NULL, c->a, c->b, false) != c->relaxed ||
		    dmarc_aligned(NULL, c->a, c->b, true) != c->strict)
			fail_msg("%s vs %s", c->a, c->b);
	}
}

/* ---------------------------------------------------------- evaluation */

static dmarc_input input(const char *from, const dmarc_record *rec,
			 dmarc_found found)
{
	dmarc_input in;
	memset(&in, 0, sizeof(in));
	in.from_fields = 1;
	in.from_mailboxes = 1;
	in.from_domain = from;
	in.spf = DMARC_SPF_NONE;
	in.found = found;
	in.rec = rec;
	return in;
}

static void test_evaluate_d12(void **state)
{
	(void)state;
	dmarc_verdict v;
	dmarc_record reject = parse_ok("v=DMARC1; p=reject");
	dmarc_record strict = parse_ok("v=DMARC1; p=reject; adkim=s; aspf=s");
	dmarc_record sub = parse_ok("v=DMARC1; p=reject; sp=quarantine");

	/* p=reject, SPF fail, aligned DKIM pass: pass */
	dmarc_dkim k1[] = { { "example.com", false } };
	dmarc_input in = input("example.com", &reject, DMARC_FOUND_FROM);
	in.spf = DMARC_SPF_FAIL;
	in.spf_domain = "example.com";
	in.dkim = k1;
	in.n_dkim = 1;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_true(v.dkim_aligned);
	assert_false(v.spf_aligned);
	assert_int_equal(v.disposition, DMARC_POLICY_NONE);
	assert_int_equal(v.policy, DMARC_POLICY_REJECT);

	/* relaxed: a subdomain's DKIM aligns; strict: it does not */
	dmarc_dkim k2[] = { { "mail.example.com", false } };
	in.dkim = k2;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	in.rec = &strict;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
	assert_non_null(v.reason);

	/* SPF pass aligned (relaxed), DKIM absent */
	in = input("example.com", &reject, DMARC_FOUND_FROM);
	in.spf = DMARC_SPF_PASS;
	in.spf_domain = "bounces.example.com";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_true(v.spf_aligned);
	in.rec = &strict;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	/* SPF pass for an unaligned domain; softfail/neutral never align */
	in.rec = &reject;
	in.spf_domain = "example.net";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	in.spf_domain = "example.com";
	in.spf = DMARC_SPF_SOFTFAIL;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	in.spf = DMARC_SPF_PASS;
	in.spf_domain = NULL;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);

	/* public-suffix boundary: two registrants under co.uk */
	dmarc_dkim k3[] = { { "attacker.co.uk", false } };
	in = input("victim.co.uk", &reject, DMARC_FOUND_FROM);
	in.dkim = k3;
	in.n_dkim = 1;
	in.spf = DMARC_SPF_PASS;
	in.spf_domain = "co.uk";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);

	/* a DKIM pass with l= not covering the body is ignored (D3), the
	 * next aligned one counts */
	dmarc_dkim k4[] = { { "example.com", true }, { "other.example", false },
			    { "EXAMPLE.COM.", false } };
	in = input("example.com", &reject, DMARC_FOUND_FROM);
	in.dkim = k4;
	in.n_dkim = 1;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	in.n_dkim = 3;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_int_equal(v.dkim_index, 2);

	/* subdomains: the record at ORG applies sp to FROM below it... */
	in = input("a.b.example.com", &sub, DMARC_FOUND_ORG);
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_true(v.subdomain_policy);
	assert_int_equal(v.policy, DMARC_POLICY_QUARANTINE);
	assert_int_equal(v.disposition, DMARC_POLICY_QUARANTINE);
	/* ...but p to a record found at FROM itself */
	in.found = DMARC_FOUND_FROM;
	dmarc_evaluate(NULL, &in, &v);
	assert_false(v.subdomain_policy);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
	/* no sp: p for subdomains too */
	in = input("a.example.com", &reject, DMARC_FOUND_ORG);
	dmarc_evaluate(NULL, &in, &v);
	assert_true(v.subdomain_policy);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
	/* a subdomain's DKIM aligns relaxed with its parent's From */
	dmarc_dkim k5[] = { { "example.com", false } };
	in.dkim = k5;
	in.n_dkim = 1;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
}

static void test_evaluate_pct(void **state)
{
	(void)state;
	dmarc_verdict v;
	dmarc_record r25 = parse_ok("v=DMARC1; p=reject; pct=25");
	dmarc_record q25 = parse_ok("v=DMARC1; p=quarantine; pct=25");
	dmarc_record r0 = parse_ok("v=DMARC1; p=reject; pct=0");
	dmarc_record n0 = parse_ok("v=DMARC1; p=none; pct=0");
	dmarc_input in = input("example.com", &r25, DMARC_FOUND_FROM);
	for (unsigned rnd = 0; rnd < 100; rnd++) {
		in.random = rnd;
		in.rec = &r25;
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.result, DMARC_FAIL);
		assert_int_equal(v.sampled_out, rnd >= 25);
		assert_int_equal(v.disposition, rnd < 25 ?
				 DMARC_POLICY_REJECT : DMARC_POLICY_QUARANTINE);
		in.rec = &q25;
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.disposition, rnd < 25 ?
				 DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE);
		in.rec = &r0;
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.disposition, DMARC_POLICY_QUARANTINE);
		in.rec = &n0;
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.disposition, DMARC_POLICY_NONE);
		assert_false(v.sampled_out);
	}
	in.rec = &r25;
	in.random = 1000;               /* out of range: never sampled */
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.disposition, DMARC_POLICY_QUARANTINE);
}

static void test_evaluate_from_and_discovery(void **state)
{
	(void)state;
	dmarc_verdict v;
	dmarc_record none = parse_ok("v=DMARC1; p=none");
	dmarc_dkim k[] = { { "example.com", false } };
	dmarc_input in = input("example.com", &none, DMARC_FOUND_FROM);
	in.dkim = k;
	in.n_dkim = 1;
	/* D4: several From fields, several or no addresses: fail, reject,
	 * even with an aligned DKIM pass and p=none */
	size_t fields[] = { 0, 2, 1, 1 }, boxes[] = { 1, 1, 2, 0 };
	for (size_t i = 0; i < 4; i++) {
		in.from_fields = fields[i];
		in.from_mailboxes = boxes[i];
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.result, DMARC_FAIL);
		assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
		assert_non_null(v.reason);
	}
	in.from_fields = in.from_mailboxes = 1;
	in.from_domain = "bad..domain";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	in.from_domain = NULL;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	in.from_domain = "example.com";
	/* discovery outcomes */
	dmarc_found f[] = { DMARC_FOUND_NONE, DMARC_FOUND_TEMPERROR,
			    DMARC_FOUND_PERMERROR };
	dmarc_result want[] = { DMARC_NONE, DMARC_TEMPERROR, DMARC_PERMERROR };
	for (size_t i = 0; i < 3; i++) {
		in.found = f[i];
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.result, want[i]);
		assert_int_equal(v.disposition, DMARC_POLICY_NONE);
	}
	in.found = DMARC_FOUND_FROM;
	in.rec = NULL;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PERMERROR);
	/* p=none fail: disposition none */
	in.rec = &none;
	in.n_dkim = 0;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.disposition, DMARC_POLICY_NONE);
	/* only the first DMARC_DKIM_MAX signatures are looked at */
	dmarc_dkim many[DMARC_DKIM_MAX + 1];
	for (size_t i = 0; i < DMARC_DKIM_MAX; i++)
		many[i] = (dmarc_dkim){ "other.example", false };
	many[DMARC_DKIM_MAX] = (dmarc_dkim){ "example.com", false };
	in.dkim = many;
	in.n_dkim = DMARC_DKIM_MAX + 1;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);

	assert_string_equal(dmarc_result_name(DMARC_TEMPERROR), "temperror");
	assert_string_equal(dmarc_policy_name(DMARC_POLICY_QUARANTINE),
			    "quarantine");
	assert_null(dmarc_policy_name((dmarc_policy)7));
	assert_null(dmarc_result_name((dmarc_result)7));
}

/* The From fields as DMARC reads them (RFC 7489 §6.6.1), and the
 * mailbox-list reader under them (mail_mailbox_list). */
static void test_from_get(void **state)
{
	(void)state;
	static const struct {
		const char *msg;
		size_t fields, mailboxes;
		const char *domain;
	} cases[] = {
		{ "From: a@Example.ORG\r\n\r\nx", 1, 1, "example.org" },
		{ "From: \"Doe, J\" <j@x.example.>\r\n\r\n", 1, 1, "x.example" },
		{ "From: (c@evil.example) a@good.example\r\n\r\n", 1, 1,
		  "good.example" },
		{ "From: J <j@a.example> (comment <x@b.example>)\r\n\r\n", 1, 1,
		  "a.example" },
		{ "FROM:\r\n a@folded.example\r\n\r\n", 1, 1, "folded.example" },
		{ "From: a@one.example, b@two.example\r\n\r\n", 1, 2, "" },
		{ "From: a@one.example\r\nFrom: b@two.example\r\n\r\n", 2, 1, "" },
		{ "Subject: none\r\n\r\n", 0, 0, "" },
		{ "From: group: a@x.example;\r\n\r\n", 1, 0, "" },
		{ "From: <a@x.example\r\n\r\n", 1, 0, "" },
		{ "From: no-at-sign\r\n\r\n", 1, 1, "" },
		{ "From: a@\r\n\r\n", 1, 1, "" },
		{ "From: a@x..example\r\n\r\n", 1, 1, "" },
		{ "From: a@x.example..\r\n\r\n", 1, 1, "" },
		{ "From: a@.x.example\r\n\r\n", 1, 1, "" },
		{ "From: <a@x\001y.example>\r\n\r\n", 1, 1, "" },
		/* the body is not looked at */
		{ "To: x@y.example\r\n\r\nFrom: a@b.example\r\n", 0, 0, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dmarc_from f;
		dmarc_from_get((const uint8_t *)cases[i].msg, strlen(cases[i].msg),
			       &f);
		assert_int_equal(f.fields, cases[i].fields);
		assert_int_equal(f.mailboxes, cases[i].mailboxes);
		assert_string_equal(f.domain, cases[i].domain);
	}
	/* a NUL inside the address: no domain rather than a cut one */
	static const uint8_t nul[] = "From: a@good.example\0.evil.example\r\n\r\n";
	dmarc_from f;
	dmarc_from_get(nul, sizeof(nul) - 1, &f);
	assert_string_equal(f.domain, "");
	/* an over-long domain */
	char big[400];
	int n = snprintf(big, sizeof(big), "From: a@%0300d.example\r\n\r\n", 0);
	dmarc_from_get((const uint8_t *)big, (size_t)n, &f);
	assert_int_equal(f.mailboxes, 1);
	assert_string_equal(f.domain, "");
}

/* ---------------------------------------------- RFC 7489 Appendix B */

/* B.1: the identifier alignment examples, each as dmarc_aligned sees
 * the pair and as dmarc_evaluate decides a message that carries it (the
 * SPF or DKIM check itself passed in every example) under a p=reject
 * record in relaxed and in strict mode. */
static void b1_case(const char *from, const char *spf, const char *dkim_d,
		    bool relaxed_pass, bool strict_pass)
{
	dmarc_record rel = parse_ok("v=DMARC1; p=reject");
	dmarc_record str = parse_ok(spf != NULL ?
				    "v=DMARC1; p=reject; aspf=s" :
				    "v=DMARC1; p=reject; adkim=s");
	dmarc_dkim k[] = { { dkim_d, false } };
	const char *other = spf != NULL ? spf : dkim_d;
	/* the record is at the organisational domain of From */
	dmarc_found found = strcmp(from, "example.com") == 0 ?
		DMARC_FOUND_FROM : DMARC_FOUND_ORG;
	dmarc_input in = input(from, &rel, found);
	dmarc_verdict v;

	if (dmarc_aligned(NULL, from, other, false) != relaxed_pass ||
	    dmarc_aligned(NULL, from, other, true) != strict_pass)
		fail_msg("alignment of %s and %s", from, other);
	if (spf != NULL) {
		in.spf = DMARC_SPF_PASS;
		in.spf_domain = spf;
	} else {
		in.dkim = k;
		in.n_dkim = 1;
	}
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, relaxed_pass ? DMARC_PASS : DMARC_FAIL);
	assert_int_equal(v.spf_aligned, spf != NULL && relaxed_pass);
	assert_int_equal(v.dkim_aligned, spf == NULL && relaxed_pass);
	assert_int_equal(v.disposition, relaxed_pass ? DMARC_POLICY_NONE :
			 DMARC_POLICY_REJECT);
	assert_int_equal(v.subdomain_policy, found == DMARC_FOUND_ORG);
	in.rec = &str;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, strict_pass ? DMARC_PASS : DMARC_FAIL);
	assert_int_equal(v.disposition, strict_pass ? DMARC_POLICY_NONE :
			 DMARC_POLICY_REJECT);
}

static void test_rfc7489_b1_alignment(void **state)
{
	(void)state;
	/* B.1.1 Example 1: MAIL FROM:<sender@example.com>,
	 * From: sender@example.com: in alignment */
	b1_case("example.com", "example.com", NULL, true, true);
	/* Example 2: MAIL FROM:<sender@child.example.com>,
	 * From: sender@example.com: relaxed only */
	b1_case("example.com", "child.example.com", NULL, true, false);
	/* Example 3: MAIL FROM:<sender@example.net>,
	 * From: sender@child.example.com: not in alignment */
	b1_case("child.example.com", "example.net", NULL, false, false);
	/* B.1.2 Example 1: d=example.com, From: sender@example.com */
	b1_case("example.com", NULL, "example.com", true, true);
	/* Example 2: d=example.com, From: sender@child.example.com */
	b1_case("child.example.com", NULL, "example.com", true, false);
	/* Example 3: d=sample.net, From: sender@child.example.com */
	b1_case("child.example.com", NULL, "sample.net", false, false);

	/* What the receiver reads from B.1's messages: the From domain. */
	static const char *const msgs[] = {
		"From: sender@example.com\r\n"
		"Date: Fri, Feb 15 2002 16:54:30 -0800\r\n"
		"To: receiver@example.org\r\n"
		"Subject: here's a sample\r\n\r\nHello!  Goodbye!\r\n",
		"DKIM-Signature: v=1; d=example.com; s=x; h=from\r\n"
		"From: sender@child.example.com\r\n"
		"Date: Fri, Feb 15 2002 16:54:30 -0800\r\n"
		"To: receiver@example.org\r\n"
		"Subject: here's a sample\r\n\r\nHello!  Goodbye!\r\n",
	};
	static const char *const dom[] = { "example.com", "child.example.com" };
	for (size_t i = 0; i < 2; i++) {
		dmarc_from f;
		dmarc_from_get((const uint8_t *)msgs[i], strlen(msgs[i]), &f);
		assert_int_equal(f.fields, 1);
		assert_int_equal(f.mailboxes, 1);
		assert_string_equal(f.domain, dom[i]);
	}
}

/* B.2: the Domain Owner's records (B.2.1, B.2.3 and B.2.4 are read in
 * test_rfc_examples) as policy discovery and evaluation use them. */
static void test_rfc7489_b2_records(void **state)
{
	(void)state;
	dmarc_verdict v;
	char names[2][DMARC_NAME_MAX + 1];
	const char *err = NULL;

	/* B.2.2: per-message reports to the domain itself */
	dmarc_record r = parse_ok("v=DMARC1; p=none; "
				  "rua=mailto:dmarc-feedback@example.com; "
				  "ruf=mailto:auth-reports@example.com");
	assert_int_equal(r.p, DMARC_POLICY_NONE);
	assert_string_equal(r.rua, "mailto:dmarc-feedback@example.com");
	assert_string_equal(r.ruf, "mailto:auth-reports@example.com");
	assert_int_equal(r.warnings, 0);
	/* B.2.1-B.2.3 are monitoring only: a failing message is delivered
	 * (disposition none) */
	dmarc_input in = input("example.com", &r, DMARC_FOUND_FROM);
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.policy, DMARC_POLICY_NONE);
	assert_int_equal(v.disposition, DMARC_POLICY_NONE);
	/* the same record as DNS gives it, the strings of B.2.2's TXT
	 * joined, among other TXT records at the name */
	{
		const char *txt[] = {
			"v=spf1 -all",
			"v=DMARC1; p=none; "
			"rua=mailto:dmarc-feedback@example.com; "
			"ruf=mailto:auth-reports@example.com",
		};
		dmarc_record sel;
		assert_int_equal(dmarc_txt_select(txt, 2, &sel, &err),
				 DMARC_TXT_OK);
		assert_string_equal(sel.ruf, "mailto:auth-reports@example.com");
	}
	/* B.2.3's third party publishes an authorisation record for
	 * example.com's reports (§7.1): a v=DMARC1 record with no p and no
	 * rua is no policy record */
	err = parse_err("v=DMARC1");
	err = parse_err("v=DMARC1;");

	/* B.2.4: the record of the test subdomain, quarantine for 25% */
	r = parse_ok("v=DMARC1; p=quarantine; "
		     "rua=mailto:dmarc-feedback@example.com,"
		     "mailto:tld-test@thirdparty.example.net!10m; "
		     "pct=25");
	assert_int_equal(dmarc_query_names(NULL, "test.example.com", names,
					   &err), 2);
	assert_string_equal(names[0], "_dmarc.test.example.com");
	assert_string_equal(names[1], "_dmarc.example.com");
	in = input("test.example.com", &r, DMARC_FOUND_FROM);
	for (unsigned rnd = 0; rnd < 100; rnd++) {
		in.random = rnd;
		dmarc_evaluate(NULL, &in, &v);
		assert_int_equal(v.result, DMARC_FAIL);
		assert_int_equal(v.policy, DMARC_POLICY_QUARANTINE);
		assert_false(v.subdomain_policy);
		assert_int_equal(v.sampled_out, rnd >= 25);
		assert_int_equal(v.disposition, rnd < 25 ?
				 DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE);
	}
	/* authenticated mail of the subdomain passes whatever pct says */
	dmarc_dkim k[] = { { "test.example.com", false } };
	in.dkim = k;
	in.n_dkim = 1;
	in.random = 0;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_int_equal(v.disposition, DMARC_POLICY_NONE);
}

/* B.3.1: the receiver of example.com's mail at SMTP time, with the
 * record example.com publishes there. */
static void test_rfc7489_b3_receiver(void **state)
{
	(void)state;
	dmarc_verdict v;
	dmarc_record r = parse_ok("v=DMARC1; p=reject; aspf=r; "
				  "rua=mailto:dmarc-feedback@example.com");
	assert_int_equal(r.p, DMARC_POLICY_REJECT);
	assert_int_equal(r.sp, DMARC_POLICY_REJECT);
	assert_false(r.aspf_strict);
	assert_false(r.adkim_strict);
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.warnings, 0);

	/* From: sender@example.com with neither SPF nor DKIM passing for
	 * an aligned domain: fail, reject (the 550 5.7.1 of B.3.1) */
	dmarc_input in = input("example.com", &r, DMARC_FOUND_FROM);
	in.spf = DMARC_SPF_FAIL;
	in.spf_domain = "example.com";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
	assert_false(v.sampled_out);
	/* SPF passing for a subdomain aligns under aspf=r */
	in.spf = DMARC_SPF_PASS;
	in.spf_domain = "mail.example.com";
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_PASS);
	assert_true(v.spf_aligned);
	assert_int_equal(v.disposition, DMARC_POLICY_NONE);
	/* a DKIM pass of another organisation does not */
	dmarc_dkim k[] = { { "example.net", false } };
	in.spf = DMARC_SPF_SOFTFAIL;
	in.dkim = k;
	in.n_dkim = 1;
	dmarc_evaluate(NULL, &in, &v);
	assert_int_equal(v.result, DMARC_FAIL);
	assert_int_equal(v.disposition, DMARC_POLICY_REJECT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_examples),
		cmocka_unit_test(test_every_tag),
		cmocka_unit_test(test_bad_values_default),
		cmocka_unit_test(test_missing_p),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_txt_select),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_query_names),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_evaluate_d12),
		cmocka_unit_test(test_evaluate_pct),
		cmocka_unit_test(test_evaluate_from_and_discovery),
		cmocka_unit_test(test_from_get),
		cmocka_unit_test(test_rfc7489_b1_alignment),
		cmocka_unit_test(test_rfc7489_b2_records),
		cmocka_unit_test(test_rfc7489_b3_receiver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
