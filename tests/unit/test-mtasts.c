/*
 * test-mtasts.c — MTA-STS (RFC 8461), the pure part (src/smtp/mtasts.c):
 * the `_mta-sts` TXT record and the choice among several records (§3.1),
 * the policy file (§3.2: every field, duplicates, unknown fields, line
 * ends, limits) and the MX pattern match (§4.1), with the RFC's examples.
 * Tables of valid and invalid inputs; every prefix of the valid ones; the
 * same policy with LF and CRLF line ends.
 */
#include "test-common.h"

#include "mtasts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ TXT record */

typedef struct txt_case {
	const char *in;
	const char *id;         /* NULL: refused */
} txt_case;

static const txt_case txt_cases[] = {
	/* RFC 8461 §3.1's example */
	{ "v=STSv1; id=20160831085700Z;", "20160831085700Z" },
	{ "v=STSv1; id=20160831085700Z", "20160831085700Z" },
	{ "v=STSv1;id=1", "1" },
	{ "v=STSv1 ; id=1 ;", "1" },
	{ "v=STSv1\t;\tid=abc\t;\t", "abc" },
	{ "v=STSv1; id=1   ", "1" },          /* trailing blanks (lenient) */
	/* extensions are ignored, before or after the id */
	{ "v=STSv1; ext=1; id=xyz", "xyz" },
	{ "v=STSv1; id=xyz; a_b-c.d=!\"#$%&'()*+,-./0123456789:<>?@~", "xyz" },
	{ "v=STSv1; x=y; id=Q; z=w;", "Q" },
	/* a second id is ignored (first wins) */
	{ "v=STSv1; id=first; id=second", "first" },
	/* 32 alphanumerics, the most */
	{ "v=STSv1; id=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
	  "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" },
	/* a 32-character extension name is fine */
	{ "v=STSv1; abcdefghijklmnopqrstuvwxyz012345=1; id=1", "1" },
	/* refused */
	{ "v=STSv1", NULL },                  /* no field */
	{ "v=STSv1;", NULL },
	{ "v=STSv1; ", NULL },
	{ "v=STSv1; ext=1", NULL },           /* no id */
	{ "v=STSv1; ID=1", NULL },            /* names are case-sensitive */
	{ "V=STSv1; id=1", NULL },
	{ "v=stsv1; id=1", NULL },
	{ "v=STSv2; id=1", NULL },
	{ " v=STSv1; id=1", NULL },
	{ "v=STSv1 id=1", NULL },             /* no ';' */
	{ "v=STSv1;; id=1", NULL },           /* an empty field */
	{ "v=STSv1; id=1;;", NULL },
	{ "v=STSv1; id=", NULL },
	{ "v=STSv1; id=1-2", NULL },          /* not alphanumeric */
	{ "v=STSv1; id=a.b", NULL },
	{ "v=STSv1; id=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", NULL }, /* 33 */
	{ "v=STSv1; id=1 2", NULL },
	{ "v=STSv1; id=ok; id=bad-", NULL },  /* every id must be well formed */
	{ "v=STSv1; id=1; x", NULL },         /* not name=value */
	{ "v=STSv1; id=1; x=", NULL },
	{ "v=STSv1; id=1; x=a=b", NULL },     /* '=' not in a value */
	{ "v=STSv1; id=1; _x=1", NULL },      /* a name starts alphanumeric */
	{ "v=STSv1; id=1; abcdefghijklmnopqrstuvwxyz0123456=1", NULL }, /* 33 */
	{ "v=STSv1; id=1; x=\x7f", NULL },
	{ "v=STSv1; id=1; x=caf\xc3\xa9", NULL },
	{ "v=STSv1; id=1\r\n", NULL },
	{ "", NULL },
};

static void test_txt_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(txt_cases) / sizeof(txt_cases[0]); i++) {
		const txt_case *c = &txt_cases[i];
		char id[MTASTS_ID_MAX + 1];
		const char *err = NULL;
		memset(id, 'x', sizeof(id));
		int rc = mtasts_txt_parse((const uint8_t *)c->in, strlen(c->in),
					  id, &err);
		if (c->id != NULL) {
			if (rc != 0)
				fail_msg("case %zu '%s' refused: %s", i, c->in, err);
			assert_string_equal(id, c->id);
		} else {
			if (rc != -1)
				fail_msg("case %zu '%s' accepted", i, c->in);
			assert_non_null(err);
			assert_string_equal(id, "");
		}
	}
}

static void test_txt_nul(void **state)
{
	(void)state;
	static const uint8_t rec[] = "v=STSv1; id=1\0";
	char id[MTASTS_ID_MAX + 1];
	const char *err;
	assert_int_equal(mtasts_txt_parse(rec, sizeof(rec) - 1, id, &err), -1);
	assert_int_equal(mtasts_txt_parse(rec, sizeof(rec) - 2, id, &err), 0);
	/* every proper prefix of a valid record up to the id's first
	 * character is refused; from there on each is a valid record */
	static const char full[] = "v=STSv1; id=20160831085700Z;";
	for (size_t n = 0; n < sizeof(full) - 1; n++) {
		int rc = mtasts_txt_parse((const uint8_t *)full, n, id, &err);
		assert_int_equal(rc, n >= 13 ? 0 : -1);
	}
}

static void test_txt_select(void **state)
{
	(void)state;
	char id[MTASTS_ID_MAX + 1];
	const char *err;
	const char *none[] = { "v=spf1 -all", "v=STSv10; id=1", "hello" };
	assert_int_equal(mtasts_txt_select(none, 3, id, &err), MTASTS_TXT_NONE);
	assert_int_equal(mtasts_txt_select(NULL, 0, id, &err), MTASTS_TXT_NONE);
	assert_string_equal(id, "");

	const char *one[] = { "v=spf1 -all", "v=STSv1; id=abc", "x" };
	assert_int_equal(mtasts_txt_select(one, 3, id, &err), MTASTS_TXT_OK);
	assert_string_equal(id, "abc");

	/* blanks before the ';' still make it an STS record */
	const char *blank[] = { "v=STSv1 ;id=7" };
	assert_int_equal(mtasts_txt_select(blank, 1, id, &err), MTASTS_TXT_OK);
	assert_string_equal(id, "7");

	/* two STS records, even identical: no policy (§3.1) */
	const char *two[] = { "v=STSv1; id=1", "v=STSv1; id=1" };
	assert_int_equal(mtasts_txt_select(two, 2, id, &err),
			 MTASTS_TXT_INVALID);
	assert_non_null(strstr(err, "more than one"));
	const char *two2[] = { "v=STSv1; id=1", "v=STSv1; broken" };
	assert_int_equal(mtasts_txt_select(two2, 2, id, &err),
			 MTASTS_TXT_INVALID);

	/* the one STS record is invalid */
	const char *bad[] = { "v=STSv1; id=no-dash", "v=spf1" };
	assert_int_equal(mtasts_txt_select(bad, 2, id, &err),
			 MTASTS_TXT_INVALID);
	assert_string_equal(id, "");
	const char *bare[] = { "v=STSv1" };
	assert_int_equal(mtasts_txt_select(bare, 1, id, &err),
			 MTASTS_TXT_INVALID);
}

/* ----------------------------------------------------------- policy file */

#define RFC_POLICY "version: STSv1\n" "mode: enforce\n" \
	"mx: mail.example.com\n" "mx: *.example.net\n" \
	"mx: backupmx.example.com\n" "max_age: 604800\n"

static mtasts_policy *parse_ok(const char *text)
{
	mtasts_policy *p = NULL;
	const char *err = NULL;
	int rc = mtasts_policy_parse((const uint8_t *)text, strlen(text), &p,
				     &err);
	if (rc != 0)
		fail_msg("'%s' refused: %s", text, err);
	assert_non_null(p);
	return p;
}

static const char *parse_bad(const char *text, size_t len)
{
	mtasts_policy *p = (mtasts_policy *)1;
	const char *err = NULL;
	if (len == 0)
		len = strlen(text);
	int rc = mtasts_policy_parse((const uint8_t *)text, len, &p, &err);
	if (rc != -1)
		fail_msg("'%s' accepted", text);
	assert_null(p);
	assert_non_null(err);
	return err;
}

static void test_policy_rfc_example(void **state)
{
	(void)state;
	mtasts_policy *p = parse_ok(RFC_POLICY);
	assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
	assert_int_equal(p->max_age, 604800);
	assert_int_equal(p->n_mx, 3);
	assert_string_equal(p->mx[0], "mail.example.com");
	assert_string_equal(p->mx[1], "*.example.net");
	assert_string_equal(p->mx[2], "backupmx.example.com");
	assert_string_equal(p->id, "");
	assert_true(p->fetched == 0 && p->expires == 0);

	mtasts_policy *c = mtasts_policy_dup(p);
	mtasts_policy_free(&p);
	assert_null(p);
	assert_int_equal(c->n_mx, 3);
	assert_string_equal(c->mx[1], "*.example.net");
	assert_true(mtasts_mx_match(c, "mx7.example.net"));
	mtasts_policy_free(&c);
	mtasts_policy_free(&c);     /* NULL is fine */
	mtasts_policy_free(NULL);
}

/* The brief's example, with CRLF, LF, mixed, and no final line end give
 * the same policy. */
static void test_policy_line_ends(void **state)
{
	(void)state;
	const char *forms[] = {
		"version: STSv1\nmode: enforce\nmx: mail.example.com\n"
		"mx: *.example.net\nmax_age: 86400\n",
		"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
		"mx: *.example.net\r\nmax_age: 86400\r\n",
		"version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\n"
		"mx: *.example.net\nmax_age: 86400",
		"version:STSv1\nmode:\t enforce \t\nmx:   mail.example.com\n"
		"mx: *.example.net   \r\nmax_age: 86400\t\r\n",
		/* empty and blank lines are skipped (lenient) */
		"\n\r\nversion: STSv1\n\n  \nmode: enforce\nmx: mail.example.com\n"
		"\t\r\nmx: *.example.net\nmax_age: 86400\n\n\n",
		/* order does not matter; names and patterns keep their case
		 * rules: mx is lowered */
		"max_age: 86400\nmx: MAIL.Example.COM\nmx: *.EXAMPLE.net\n"
		"mode: enforce\nversion: STSv1\n",
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		mtasts_policy *p = parse_ok(forms[i]);
		assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
		assert_int_equal(p->max_age, 86400);
		assert_int_equal(p->n_mx, 2);
		assert_string_equal(p->mx[0], "mail.example.com");
		assert_string_equal(p->mx[1], "*.example.net");
		mtasts_policy_free(&p);
	}
}

static void test_policy_fields(void **state)
{
	(void)state;
	mtasts_policy *p;

	p = parse_ok("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0\n");
	assert_int_equal(p->mode, MTASTS_MODE_TESTING);
	assert_int_equal(p->max_age, 0);
	mtasts_policy_free(&p);

	/* mode none needs no mx (§3.2) */
	p = parse_ok("version: STSv1\nmode: none\nmax_age: 86400\n");
	assert_int_equal(p->mode, MTASTS_MODE_NONE);
	assert_int_equal(p->n_mx, 0);
	assert_false(mtasts_mx_match(p, "mail.example.com"));
	mtasts_policy_free(&p);

	/* max_age: ten digits; above a year is capped */
	p = parse_ok("version: STSv1\nmode: enforce\nmx: a.example\n"
		     "max_age: 9999999999\n");
	assert_int_equal(p->max_age, MTASTS_MAX_AGE_MAX);
	mtasts_policy_free(&p);
	p = parse_ok("version: STSv1\nmode: enforce\nmx: a.example\n"
		     "max_age: 31557601\n");
	assert_int_equal(p->max_age, 31557600);
	mtasts_policy_free(&p);
}

static void test_policy_max_age_digits(void **state)
{
	(void)state;
	/* 00000315576 is 11 digits: refused; 10 with leading zeros fine */
	parse_bad("version: STSv1\nmode: enforce\nmx: a.example\n"
		  "max_age: 00000315576\n", 0);
	mtasts_policy *p = parse_ok("version: STSv1\nmode: enforce\n"
				    "mx: a.example\nmax_age: 0000086400\n");
	assert_int_equal(p->max_age, 86400);
	mtasts_policy_free(&p);
}

/* A repeated non-mx field: the first counts, later ones are ignored even
 * when malformed (§3.2). */
static void test_policy_duplicates(void **state)
{
	(void)state;
	mtasts_policy *p = parse_ok(
		"version: STSv1\nversion: STSv9\nmode: testing\nmode: enforce\n"
		"mode: bogus\nmx: a.example\nmax_age: 100\nmax_age: x\n"
		"mx: b.example\nmx: a.example\n");
	assert_int_equal(p->mode, MTASTS_MODE_TESTING);
	assert_int_equal(p->max_age, 100);
	assert_int_equal(p->n_mx, 3);
	assert_string_equal(p->mx[2], "a.example");
	mtasts_policy_free(&p);
}

/* Unknown fields are ignored whatever they hold (but no controls and
 * only valid UTF-8). */
static void test_policy_unknown_fields(void **state)
{
	(void)state;
	mtasts_policy *p = parse_ok(
		"version: STSv1\nx-note: caf\xc3\xa9 \xe2\x82\xac\nmode: enforce\n"
		"Mode: none\nVersion: STSv2\nMX: evil.example\nfoo:\n"
		"a.b_c-d: anything : goes\tand tabs\nmx: a.example\n"
		"max_age: 60\nabcdefghijklmnopqrstuvwxyz012345: 1\n");
	assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
	assert_int_equal(p->n_mx, 1);
	assert_string_equal(p->mx[0], "a.example");
	mtasts_policy_free(&p);
}

typedef struct bad_case {
	const char *in;
	size_t len;             /* 0: strlen */
	const char *why;        /* a word of the reason */
} bad_case;

#define HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"

static const bad_case bad_policies[] = {
	{ "", 0, "no version" },
	{ "mode: enforce\nmx: a.example\nmax_age: 1\n", 0, "no version" },
	{ "version: STSv1\nmx: a.example\nmax_age: 1\n", 0, "no mode" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n", 0, "no max_age" },
	{ HEAD, 0, "no mx" },
	{ "version: STSv1\nmode: testing\nmax_age: 1\n", 0, "no mx" },
	{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", 0,
	  "version" },
	{ "version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", 0,
	  "version" },
	{ "version: STSv1 x\nmode: enforce\nmx: a.example\nmax_age: 1\n", 0,
	  "version" },
	{ "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", 0,
	  "mode" },
	{ "version: STSv1\nmode: report\nmx: a.example\nmax_age: 1\n", 0,
	  "mode" },
	{ "version: STSv1\nmode:\nmx: a.example\nmax_age: 1\n", 0, "mode" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
	  0, "max_age" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", 0,
	  "max_age" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: +5\n", 0,
	  "max_age" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", 0,
	  "max_age" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age:\n", 0,
	  "max_age" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 8 6\n", 0,
	  "max_age" },
	/* mx: ["*."] Domain */
	{ HEAD "mx:\n", 0, "mx" },
	{ HEAD "mx: *\n", 0, "mx" },
	{ HEAD "mx: *.\n", 0, "mx" },
	{ HEAD "mx: *example.com\n", 0, "mx" },
	{ HEAD "mx: mx*.example.com\n", 0, "mx" },
	{ HEAD "mx: mail.*.example.com\n", 0, "mx" },
	{ HEAD "mx: *.*.example.com\n", 0, "mx" },
	{ HEAD "mx: **.example.com\n", 0, "mx" },
	{ HEAD "mx: mail.example.com.\n", 0, "mx" },
	{ HEAD "mx: .example.com\n", 0, "mx" },
	{ HEAD "mx: a..example.com\n", 0, "mx" },
	{ HEAD "mx: -a.example.com\n", 0, "mx" },
	{ HEAD "mx: a-.example.com\n", 0, "mx" },
	{ HEAD "mx: mail_1.example.com\n", 0, "mx" },
	{ HEAD "mx: [192.0.2.1]\n", 0, "mx" },
	{ HEAD "mx: mail.example.com, b.example\n", 0, "mx" },
	{ HEAD "mx: mail example.com\n", 0, "mx" },
	{ HEAD "mx: m\xc3\xa9l.example.com\n", 0, "mx" },
	{ HEAD "mx: a.example\nmx: b..example\n", 0, "mx" },
	/* lines */
	{ HEAD "mx: a.example\nnot a field\n", 0, "name: value" },
	{ HEAD "mx: a.example\n mode: enforce\n", 0, "name: value" },
	{ HEAD "mx : a.example\n", 0, "name: value" },
	{ HEAD "mx= a.example\n", 0, "name: value" },
	{ HEAD "mx: a.example\n:x\n", 0, "name: value" },
	{ HEAD "mx: a.example\n_x: 1\n", 0, "name: value" },
	{ HEAD "mx: a.example\nabcdefghijklmnopqrstuvwxyz0123456: 1\n", 0,
	  "name: value" },
	/* bytes */
	{ HEAD "mx: a.example\nx: a\rb\n", 0, "control" },
	{ HEAD "mx: a.example\r\r\n", 0, "control" },
	{ HEAD "mx: a.example\nx: \x01\n", 0, "control" },
	{ HEAD "mx: a.example\nx: \x7f\n", 0, "control" },
	{ HEAD "mx: a.example\nx: \xc2\x85\n", 0, "control" },   /* C1 NEL */
	{ HEAD "mx: a.example\nx: \xff\n", 0, "UTF-8" },
	{ HEAD "mx: a.example\nx: \xc3\n", 0, "UTF-8" },
	{ HEAD "mx: a.example\nx: \xc0\xaf\n", 0, "UTF-8" },      /* overlong */
	{ HEAD "mx: a.example\nx: \xed\xa0\x80\n", 0, "UTF-8" },  /* surrogate */
	{ HEAD "mx: a.example\nx: a\0b\n", sizeof(HEAD "mx: a.example\nx: a\0b\n") - 1,
	  "control" },
};

static void test_policy_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]);
	     i++) {
		const bad_case *c = &bad_policies[i];
		const char *err = parse_bad(c->in, c->len);
		if (strstr(err, c->why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err,
				 c->why);
	}
}

/* At most MTASTS_MX_MAX mx lines. */
static void test_policy_mx_limit(void **state)
{
	(void)state;
	size_t cap = 100 * 32 + 200;
	char *t = malloc(cap);
	assert_non_null(t);
	size_t n = (size_t)snprintf(t, cap, "%s", HEAD);
	for (unsigned i = 0; i < MTASTS_MX_MAX; i++)
		n += (size_t)snprintf(t + n, cap - n, "mx: mx%u.example.net\n", i);
	mtasts_policy *p = parse_ok(t);
	assert_int_equal(p->n_mx, MTASTS_MX_MAX);
	assert_string_equal(p->mx[99], "mx99.example.net");
	assert_true(mtasts_mx_match(p, "mx99.example.net"));
	assert_false(mtasts_mx_match(p, "mx100.example.net"));
	mtasts_policy_free(&p);
	snprintf(t + n, cap - n, "mx: mx100.example.net\n");
	assert_non_null(strstr(parse_bad(t, 0), "more than 100"));
	free(t);
}

/* A policy of exactly MTASTS_POLICY_MAX bytes is read, one more refused;
 * a label of 63 characters and a domain of 253 are the most. */
static void test_policy_sizes(void **state)
{
	(void)state;
	uint8_t *t = malloc(MTASTS_POLICY_MAX + 1);
	assert_non_null(t);
	size_t n = (size_t)snprintf((char *)t, 200, "%smx: a.example\n", HEAD);
	while (n < MTASTS_POLICY_MAX) {
		size_t k = MTASTS_POLICY_MAX - n < 80 ? MTASTS_POLICY_MAX - n : 80;
		memset(t + n, 'x', k);
		if (k >= 3) {
			t[n + 1] = ':';
			t[n + k - 1] = '\n';
		} else {
			memset(t + n, '\n', k);
		}
		n += k;
	}
	mtasts_policy *p = NULL;
	const char *err = NULL;
	assert_int_equal(mtasts_policy_parse(t, MTASTS_POLICY_MAX, &p, &err), 0);
	assert_int_equal(p->n_mx, 1);
	mtasts_policy_free(&p);
	t[MTASTS_POLICY_MAX] = '\n';
	assert_int_equal(mtasts_policy_parse(t, MTASTS_POLICY_MAX + 1, &p, &err),
			 -1);
	assert_non_null(strstr(err, "64 KiB"));
	free(t);

	char label63[64], text[600];
	memset(label63, 'a', 63);
	label63[63] = '\0';
	snprintf(text, sizeof(text), HEAD "mx: *.%s.example\n", label63);
	p = parse_ok(text);
	mtasts_policy_free(&p);
	snprintf(text, sizeof(text), HEAD "mx: *.%sa.example\n", label63);
	parse_bad(text, 0);
	/* 253 = 4 * 63 + 1 dot... built as 63.63.63.61 */
	char dom[260];
	snprintf(dom, sizeof(dom), "%s.%s.%s.%.*s", label63, label63, label63,
		 61, label63);
	assert_int_equal(strlen(dom), 253);
	snprintf(text, sizeof(text), HEAD "mx: %s\n", dom);
	p = parse_ok(text);
	assert_true(mtasts_mx_match(p, dom));
	mtasts_policy_free(&p);
	snprintf(text, sizeof(text), HEAD "mx: *.%s\n", dom);  /* *. + 253 */
	p = parse_ok(text);
	mtasts_policy_free(&p);
	snprintf(text, sizeof(text), HEAD "mx: a%s\n", dom);   /* 254 */
	parse_bad(text, 0);
}

/* Every prefix of a valid policy either parses or is refused with a
 * reason, and the prefixes that end after the last required line agree
 * with the whole. */
static void test_policy_prefixes(void **state)
{
	(void)state;
	static const char full[] = RFC_POLICY;
	for (size_t n = 0; n <= sizeof(full) - 1; n++) {
		mtasts_policy *p = NULL;
		const char *err = NULL;
		int rc = mtasts_policy_parse((const uint8_t *)full, n, &p, &err);
		if (rc == 0) {
			/* only once max_age (the last line) has a digit */
			assert_true(n >= sizeof(full) - 1 - 7);
			assert_int_equal(p->n_mx, 3);
			mtasts_policy_free(&p);
		} else {
			assert_null(p);
			assert_non_null(err);
		}
	}
}

/* ------------------------------------------------------------- MX match */

typedef struct match_case {
	const char *pattern, *host;
	bool match;
} match_case;

static const match_case match_cases[] = {
	/* RFC 8461 §4.1: "*.example.com" matches "mx1.example.com", not
	 * "example.com" nor a name two labels deeper */
	{ "*.example.com", "mx1.example.com", true },
	{ "*.example.com", "mx2.example.com", true },
	{ "*.example.com", "example.com", false },
	{ "*.example.com", "mx1.mx2.example.com", false },
	{ "*.example.com", "foo.com", false },
	{ "*.example.com", "xexample.com", false },
	{ "*.example.com", ".example.com", false },
	{ "*.example.com", "*.example.com", false },
	{ "*.example.com", "mx1.example.com.evil", false },
	{ "*.example.com", "mx1.example.co", false },
	/* case-insensitive, one trailing dot ignored */
	{ "*.example.com", "MX1.EXAMPLE.COM", true },
	{ "*.EXAMPLE.com", "mx1.example.COM.", true },
	{ "mail.example.com", "mail.example.com", true },
	{ "mail.example.com", "Mail.Example.Com.", true },
	{ "mail.example.com", "mail.example.com..", false },
	{ "mail.example.com", "mx.mail.example.com", false },
	{ "mail.example.com", "example.com", false },
	{ "mail.example.com", "mail.example.co", false },
	{ "mail.example.com", "mail.example.comm", false },
	{ "mail.example.com", "", false },
	{ "mail.example.com", ".", false },
	{ "mail.example.com", "mail..example.com", false },
	{ "", "mail.example.com", false },
	{ "*.", "a.", false },
	{ "*.com", "example.com", true },
};

static void test_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]);
	     i++) {
		const match_case *c = &match_cases[i];
		if (mtasts_pattern_match(c->pattern, c->host) != c->match)
			fail_msg("case %zu: '%s' vs '%s' should %smatch", i,
				 c->pattern, c->host, c->match ? "" : "not ");
	}
	assert_false(mtasts_pattern_match(NULL, "a"));
	assert_false(mtasts_pattern_match("a", NULL));
}

/* The policy's patterns together (RFC 8461 §3.2's example). */
static void test_mx_match_policy(void **state)
{
	(void)state;
	mtasts_policy *p = parse_ok(RFC_POLICY);
	assert_true(mtasts_mx_match(p, "mail.example.com"));
	assert_true(mtasts_mx_match(p, "backupmx.example.com"));
	assert_true(mtasts_mx_match(p, "mx1.example.net"));
	assert_true(mtasts_mx_match(p, "MX1.Example.Net."));
	assert_false(mtasts_mx_match(p, "example.net"));
	assert_false(mtasts_mx_match(p, "a.b.example.net"));
	assert_false(mtasts_mx_match(p, "other.example.com"));
	assert_false(mtasts_mx_match(p, "example.com"));
	assert_false(mtasts_mx_match(p, "mail.example.com.evil.org"));
	assert_false(mtasts_mx_match(p, NULL));
	assert_false(mtasts_mx_match(NULL, "mail.example.com"));
	mtasts_policy_free(&p);
}

static void test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_NONE), "none");
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_TESTING), "testing");
	assert_string_equal(mtasts_mode_name(MTASTS_MODE_ENFORCE), "enforce");
	assert_null(mtasts_mode_name((mtasts_mode)7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_table),
		cmocka_unit_test(test_txt_nul),
		cmocka_unit_test(test_txt_select),
		cmocka_unit_test(test_policy_rfc_example),
		cmocka_unit_test(test_policy_line_ends),
		cmocka_unit_test(test_policy_fields),
		cmocka_unit_test(test_policy_max_age_digits),
		cmocka_unit_test(test_policy_duplicates),
		cmocka_unit_test(test_policy_unknown_fields),
		cmocka_unit_test(test_policy_bad),
		cmocka_unit_test(test_policy_mx_limit),
		cmocka_unit_test(test_policy_sizes),
		cmocka_unit_test(test_policy_prefixes),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_mx_match_policy),
		cmocka_unit_test(test_mode_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
