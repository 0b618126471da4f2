/*
 * test-smtp-addr.c — src/smtp/smtp-addr: RFC 5321 paths and ESMTP
 * parameters.  Tables of valid and invalid paths (TESTING.md S8 and S18
 * address tricks, address literals, lengths, UTF-8), the canonical form
 * and its round trip, then parameters (S9) through parse and the MAIL and
 * RCPT checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "smtp-addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------- paths */

enum { RCPT = 0, MAIL = 1 };
enum { ASCII = 0, UTF8 = 1 };

typedef struct pcase {
	const char *in;
	size_t len;          /* 0: strlen(in) */
	int cmd;             /* MAIL allows <> */
	int utf8;            /* SMTPUTF8 */
	smtp_addr_err want;
	const char *canon;   /* smtp_path_format when OK */
} pcase;

#define OKC(in, canon) { in, 0, RCPT, ASCII, SMTP_ADDR_OK, canon }
#define BADC(in, err) { in, 0, RCPT, ASCII, err, NULL }
#define SYN(in) BADC(in, SMTP_ADDR_SYNTAX)
/* Inputs with a NUL inside: the length is given. */
#define NULC(in) { in, sizeof(in) - 1, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL }

static const pcase path_cases[] = {
	OKC("<user@example.org>", "user@example.org"),
	OKC("<User.Name+tag@Example.ORG>", "User.Name+tag@Example.ORG"),
	{ "<>", 0, MAIL, ASCII, SMTP_ADDR_OK, "" },
	SYN("<>"), /* RCPT TO:<> */
	{ "<Postmaster>", 0, RCPT, ASCII, SMTP_ADDR_OK, "Postmaster" },
	OKC("<postmaster>", "postmaster"),
	{ "<postmaster>", 0, MAIL, ASCII, SMTP_ADDR_SYNTAX, NULL },
	SYN("<\"postmaster\">"),
	SYN("<user>"),

	/* quoted local parts: kept quoted only when needed (S8) */
	OKC("<\"a b\"@x.org>", "\"a b\"@x.org"),
	OKC("<\"u@other\"@ours.test>", "\"u@other\"@ours.test"),
	OKC("<\"abc\"@x.org>", "abc@x.org"),
	OKC("<\"a.b\"@x.org>", "a.b@x.org"),
	OKC("<\"a..b\"@x.org>", "\"a..b\"@x.org"),
	OKC("<\".a\"@x.org>", "\".a\"@x.org"),
	OKC("<\"a\\\"b\"@x.org>", "\"a\\\"b\"@x.org"),
	OKC("<\"a\\b\"@x.org>", "ab@x.org"), /* needless quoted-pair */
	OKC("<\"\\\\\"@x.org>", "\"\\\\\"@x.org"),
	OKC("<\"a\\ b\"@x.org>", "\"a b\"@x.org"),
	SYN("<\"\"@x.org>"),
	SYN("<\"a@x.org>"),
	SYN("<\"a\"b@x.org>"),
	SYN("<\"a\\"),
	SYN("<a\"b\"@x.org>"),

	/* open-relay tricks keep '%' and '!' as plain characters (S18) */
	OKC("<u%other@ours.test>", "u%other@ours.test"),
	OKC("<other!u@ours.test>", "other!u@ours.test"),
	OKC("<u%d@[127.0.0.1]>", "u%d@[127.0.0.1]"),
	OKC("<d!u@[127.0.0.1]>", "d!u@[127.0.0.1]"),
	OKC("<\"u@d\"@[127.0.0.1]>", "\"u@d\"@[127.0.0.1]"),
	SYN("<u@d@[127.0.0.1]>"),
	SYN("<d!u>"),
	BADC("<@a,@b:u@c>", SMTP_ADDR_ROUTE),
	BADC("<@a:u@c>", SMTP_ADDR_ROUTE),
	BADC("<@[127.0.0.1]:u@d>", SMTP_ADDR_ROUTE),

	/* dot-strings */
	SYN("<.a@x.org>"),
	SYN("<a.@x.org>"),
	SYN("<a..b@x.org>"),
	SYN("<a b@x.org>"),
	SYN("<@x.org>"),
	OKC("<a.b.c@x.org>", "a.b.c@x.org"),

	/* shell and SQL metacharacters: refused by the grammar or kept
	 * verbatim (never interpreted) */
	OKC("<`id`@x.org>", "`id`@x.org"),
	OKC("<a|b@x.org>", "a|b@x.org"),
	OKC("<a'b@x.org>", "a'b@x.org"),
	OKC("<$USER@x.org>", "$USER@x.org"),
	OKC("<{a}&b@x.org>", "{a}&b@x.org"),
	SYN("<$(id)@x.org>"),
	SYN("<a;b@x.org>"),
	SYN("<a\\b@x.org>"),
	SYN("<a\"b@x.org>"),
	SYN("<a(b)@x.org>"),
	SYN("<';DROP TABLE users;--@x.org>"),
	OKC("<\"';DROP TABLE users;--\"@x.org>",
	    "\"';DROP TABLE users;--\"@x.org"),
	OKC("<\"$(id)\"@x.org>", "\"$(id)\"@x.org"),
	OKC("<\"a;b|c`d`\"@x.org>", "\"a;b|c`d`\"@x.org"),
	OKC("<\"root+:|exec /bin/sh 0<&1 #\"@x.org>",
	    "\"root+:|exec /bin/sh 0<&1 #\"@x.org"),
	SYN("<\";sleep 66;\"@x.org; rm -rf />"),

	/* domains */
	OKC("<a@x>", "a@x"),
	OKC("<a@1.2.3.4>", "a@1.2.3.4"),
	OKC("<a@x-y.z9.org>", "a@x-y.z9.org"),
	OKC("<a@XN--bcher-kva.example>", "a@XN--bcher-kva.example"),
	SYN("<a@-x.org>"),
	SYN("<a@x-.org>"),
	SYN("<a@x..org>"),
	SYN("<a@x.org.>"),
	SYN("<a@.x.org>"),
	SYN("<a@x_y.org>"),
	SYN("<a@>"),
	SYN("<a@x.org"),
	SYN("<a@x.org extra>"),
	SYN("a@x.org"),
	SYN(""),
	SYN("<"),
	SYN(" <a@x.org>"),

	/* address literals */
	OKC("<u@[1.2.3.4]>", "u@[1.2.3.4]"),
	OKC("<u@[0.0.0.0]>", "u@[0.0.0.0]"),
	OKC("<u@[255.255.255.255]>", "u@[255.255.255.255]"),
	SYN("<u@[1.2.3.321]>"),
	SYN("<u@[1..2.3.4]>"),
	SYN("<u@[1.2.3.4.5.]>"),
	SYN("<u@[1.2.3.4.5]>"),
	SYN("<u@[1.2.3.4.]>"),
	SYN("<u@[1.2.3]>"),
	SYN("<u@[256.1.1.1]>"),
	SYN("<u@[01.2.3.4]>"),
	SYN("<u@[1.2.3.0004]>"),
	SYN("<u@[1.2.3.4>"),
	SYN("<u@[]>"),
	SYN("<u@[ 1.2.3.4]>"),
	SYN("<u@[1.2.3.4 ]>"),
	SYN("<u@[a.b.c.d]>"),
	OKC("<u@[IPv6:::1]>", "u@[IPv6:::1]"),
	OKC("<u@[IPv6:::]>", "u@[IPv6:::]"),
	OKC("<u@[ipv6:2001:db8::1]>", "u@[ipv6:2001:db8::1]"),
	OKC("<u@[IPv6:2001:DB8:0:0:0:0:0:1]>", "u@[IPv6:2001:DB8:0:0:0:0:0:1]"),
	OKC("<u@[IPv6:1:2:3:4:5:6::]>", "u@[IPv6:1:2:3:4:5:6::]"),
	OKC("<u@[IPv6:1::2:3:4:5:6]>", "u@[IPv6:1::2:3:4:5:6]"),
	OKC("<u@[IPv6:::ffff:1.2.3.4]>", "u@[IPv6:::ffff:1.2.3.4]"),
	OKC("<u@[IPv6:::1.2.3.4]>", "u@[IPv6:::1.2.3.4]"),
	OKC("<u@[IPv6:1:2:3:4:5:6:1.2.3.4]>", "u@[IPv6:1:2:3:4:5:6:1.2.3.4]"),
	OKC("<u@[IPv6:1:2:3:4::1.2.3.4]>", "u@[IPv6:1:2:3:4::1.2.3.4]"),
	OKC("<u@[IPv6:0000:0:0:0:0:0:0:ffff]>", "u@[IPv6:0000:0:0:0:0:0:0:ffff]"),
	SYN("<u@[IPv6:1:2:3:4:5:6:7]>"),
	SYN("<u@[IPv6:1:2:3:4:5:6:7:8:9]>"),
	SYN("<u@[IPv6:1:2:3:4:5:6:7::]>"), /* "::" is at least two groups */
	SYN("<u@[IPv6:1:2:3:4:5::1.2.3.4]>"),
	SYN("<u@[IPv6:1:2:3:4:5:1.2.3.4]>"),
	SYN("<u@[IPv6:1::2::3]>"),
	SYN("<u@[IPv6:12345::]>"),
	SYN("<u@[IPv6:g::]>"),
	SYN("<u@[IPv6:1:]>"),
	SYN("<u@[IPv6::1]>"),
	SYN("<u@[IPv6:::1.2.3.321]>"),
	SYN("<u@[IPv6:::1.2.3.4:1]>"),
	SYN("<u@[IPv6:1.2.3.4]>"),
	SYN("<u@[IPv6:]>"),
	SYN("<u@[::1]>"),
	SYN("<u@[x400:abc]>"),
	SYN("<u@[IPv6:::1]x>"),

	/* NUL and controls, never (with SMTPUTF8 too) */
	NULC("<a\0b@x.org>"),
	NULC("<ab@x\0y.org>"),
	NULC("<\"a\0b\"@x.org>"),
	NULC("<\0>"),
	NULC("<ab@x.org\0>"),
	NULC("<ab@[1.2.3.4\0]>"),
	SYN("<a\tb@x.org>"),
	SYN("<\"a\tb\"@x.org>"),
	SYN("<\"a\x7f\"@x.org>"),
	SYN("<a@x.org\r>"),
	SYN("<a@x\r\n.org>"),

	/* 8-bit without SMTPUTF8 */
	BADC("<jos\xc3\xa9@x.org>", SMTP_ADDR_8BIT),
	BADC("<a@\xc3\xa9x.org>", SMTP_ADDR_8BIT),
	BADC("<\"\xc3\xa9\"@x.org>", SMTP_ADDR_8BIT),
	BADC("<\"\\\xc3\xa9\"@x.org>", SMTP_ADDR_8BIT),
	BADC("<a@[1.2.3.\xc3\xa9]>", SMTP_ADDR_8BIT),
	BADC("<\xff@x.org>", SMTP_ADDR_8BIT),

	/* valid UTF-8 with it */
	{ "<jos\xc3\xa9@ex\xc3\xa4mple.org>", 0, RCPT, UTF8, SMTP_ADDR_OK,
	  "jos\xc3\xa9@ex\xc3\xa4mple.org" },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
	  0, RCPT, UTF8, SMTP_ADDR_OK,
	  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a" },
	{ "<\xf0\x9f\x98\x80@x.org>", 0, RCPT, UTF8, SMTP_ADDR_OK,
	  "\xf0\x9f\x98\x80@x.org" },
	{ "<\"\xc3\xa9 x\"@x.org>", 0, RCPT, UTF8, SMTP_ADDR_OK,
	  "\"\xc3\xa9 x\"@x.org" },
	{ "<\"\xc3\xa9\"@x.org>", 0, RCPT, UTF8, SMTP_ADDR_OK, "\xc3\xa9@x.org" },
	{ "<a@[1.2.3.\xc3\xa9]>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<a@-\xc3\xa9.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	/* and invalid UTF-8 refused */
	{ "<\xc3@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xc3(@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xc0\xaf@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xe0\x80\xaf@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xed\xa0\x80@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xf4\x90\x80\x80@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xf8\x88\x80\x80\x80@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\xc2\x85@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<a@\xff.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\"\xe2\x82\"@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
	{ "<\"\\\xc3\xa9\"@x.org>", 0, RCPT, UTF8, SMTP_ADDR_SYNTAX, NULL },
};

static void check_case(const pcase *c)
{
	size_t len = c->len != 0 ? c->len : strlen(c->in);
	smtp_path p;
	size_t used = 99;
	const char *why = NULL;
	smtp_addr_err e = smtp_path_parse(c->in, len, c->cmd == MAIL,
					  c->utf8 == UTF8, &p, &used, &why);
	if (e != c->want)
		fail_msg("%s: got %d, want %d (%s)", c->in, (int)e, (int)c->want,
			 why != NULL ? why : "-");
	if (e != SMTP_ADDR_OK) {
		assert_non_null(why);
		assert_int_equal(used, 0);
		return;
	}
	assert_null(why);
	assert_int_equal(used, len);
	char out[SMTP_PATH_MAX + 1];
	assert_true(smtp_path_format(&p, out, sizeof(out)));
	if (strcmp(out, c->canon) != 0)
		fail_msg("%s: canonical '%s', want '%s'", c->in, out, c->canon);

	/* round trip: "<" canonical ">" parses to the same path */
	char again[SMTP_PATH_MAX + 3];
	smtp_path q;
	size_t qused;
	snprintf(again, sizeof(again), "<%s>", out);
	assert_int_equal(smtp_path_parse(again, strlen(again), c->cmd == MAIL,
					 c->utf8 == UTF8, &q, &qused, &why),
			 SMTP_ADDR_OK);
	assert_int_equal(qused, strlen(again));
	assert_memory_equal(&p, &q, sizeof(p));

	/* the same path with parameters after it: used stops at '>' */
	char more[SMTP_PATH_MAX + 32];
	snprintf(more, sizeof(more), "%.*s SIZE=100", (int)len, c->in);
	assert_int_equal(smtp_path_parse(more, strlen(more), c->cmd == MAIL,
					 c->utf8 == UTF8, &q, &qused, &why),
			 SMTP_ADDR_OK);
	assert_int_equal(qused, len);

	/* ASCII paths parse the same with SMTPUTF8; 8-bit ones never
	 * without */
	e = smtp_path_parse(c->in, len, c->cmd == MAIL, c->utf8 != UTF8, &q,
			    &qused, &why);
	if (!p.utf8) {
		assert_int_equal(e, SMTP_ADDR_OK);
		assert_memory_equal(&p, &q, sizeof(p));
	} else {
		assert_int_equal(e, SMTP_ADDR_8BIT);
	}
}

static void test_path_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++)
		check_case(&path_cases[i]);
}

static void test_path_fields(void **state)
{
	(void)state;
	smtp_path p;
	size_t used;
	const char *why;
	const char *s = "<John.Doe@Mail.Example.ORG>";
	assert_int_equal(smtp_path_parse(s, strlen(s), false, false, &p, &used,
					 &why),
			 SMTP_ADDR_OK);
	assert_string_equal(p.local, "John.Doe"); /* local part case kept */
	assert_string_equal(p.domain, "Mail.Example.ORG");
	assert_string_equal(p.domain_lc, "mail.example.org");
	assert_false(p.null);
	assert_false(p.literal);
	assert_false(p.utf8);

	s = "<a@[IPv6:2001:DB8::1]>";
	assert_int_equal(smtp_path_parse(s, strlen(s), false, false, &p, &used,
					 &why),
			 SMTP_ADDR_OK);
	assert_true(p.literal);
	assert_string_equal(p.domain, "[IPv6:2001:DB8::1]");
	assert_string_equal(p.domain_lc, "[ipv6:2001:db8::1]");

	s = "<\xc3\x89mile@\xc3\x89" "COLE.fr>";
	assert_int_equal(smtp_path_parse(s, strlen(s), false, true, &p, &used,
					 &why),
			 SMTP_ADDR_OK);
	assert_true(p.utf8);
	/* only ASCII is folded */
	assert_string_equal(p.domain_lc, "\xc3\x89" "cole.fr");

	s = "<>";
	assert_int_equal(smtp_path_parse(s, 2, true, false, &p, &used, &why),
			 SMTP_ADDR_OK);
	assert_true(p.null);
	assert_string_equal(p.local, "");
	assert_string_equal(p.domain, "");
	char out[4];
	assert_true(smtp_path_format(&p, out, sizeof(out)));
	assert_string_equal(out, "");

	/* format refuses a buffer that is too small */
	s = "<abc@x.org>";
	assert_int_equal(smtp_path_parse(s, strlen(s), false, false, &p, &used,
					 &why),
			 SMTP_ADDR_OK);
	char small[9];
	assert_false(smtp_path_format(&p, small, sizeof(small)));
	assert_string_equal(small, "");
	char exact[10];
	assert_true(smtp_path_format(&p, exact, sizeof(exact)));
	assert_string_equal(exact, "abc@x.org");
	assert_false(smtp_path_format(&p, exact, 0));
}

/* A domain of n octets: labels of 63 joined by dots. */
static void make_domain(char *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (i % 64 == 63) ? '.' : 'a';
	if (n > 0 && d[n - 1] == '.')
		d[n - 1] = 'b';
	d[n] = '\0';
}

static smtp_addr_err parse_lp(const char *local, size_t dlen, bool quote)
{
	char d[600], s[800];
	smtp_path p;
	size_t used;
	const char *why;
	make_domain(d, dlen);
	snprintf(s, sizeof(s), quote ? "<\"%s\"@%s>" : "<%s@%s>", local, d);
	return smtp_path_parse(s, strlen(s), false, false, &p, &used, &why);
}

static void test_path_limits(void **state)
{
	(void)state;
	char l[200];
	memset(l, 'x', sizeof(l));

	/* local part: 64 octets on the wire */
	l[64] = '\0';
	assert_int_equal(parse_lp(l, 10, false), SMTP_ADDR_OK);
	l[64] = 'x';
	l[65] = '\0';
	assert_int_equal(parse_lp(l, 10, false), SMTP_ADDR_TOO_LONG);
	l[65] = 'x';
	l[62] = '\0'; /* "x..x" quoted: 64 with the quotes */
	assert_int_equal(parse_lp(l, 10, true), SMTP_ADDR_OK);
	l[62] = 'x';
	l[63] = '\0';
	assert_int_equal(parse_lp(l, 10, true), SMTP_ADDR_TOO_LONG);
	l[63] = 'x';
	l[150] = '\0';
	assert_int_equal(parse_lp(l, 10, false), SMTP_ADDR_TOO_LONG);

	/* path 256 with "<", "@" and ">": local 1 + domain 252 */
	assert_int_equal(parse_lp("a", 252, false), SMTP_ADDR_OK);
	assert_int_equal(parse_lp("a", 253, false), SMTP_ADDR_TOO_LONG);
	assert_int_equal(parse_lp("a", 255, false), SMTP_ADDR_TOO_LONG);
	/* domain over 255 */
	assert_int_equal(parse_lp("a", 256, false), SMTP_ADDR_TOO_LONG);
	assert_int_equal(parse_lp("a", 500, false), SMTP_ADDR_TOO_LONG);

	/* labels: 63 octets */
	char d[100], s[200];
	smtp_path p;
	size_t used;
	const char *why;
	memset(d, 'a', 63);
	d[63] = '\0';
	snprintf(s, sizeof(s), "<a@%s.org>", d);
	assert_int_equal(smtp_path_parse(s, strlen(s), false, false, &p, &used,
					 &why),
			 SMTP_ADDR_OK);
	snprintf(s, sizeof(s), "<a@%sa.org>", d);
	assert_int_equal(smtp_path_parse(s, strlen(s), false, false, &p, &used,
					 &why),
			 SMTP_ADDR_SYNTAX);

	/* a long literal is a long domain */
	char lit[400];
	memset(lit, 0, sizeof(lit));
	memcpy(lit, "<a@[IPv6:", 9);
	memset(lit + 9, '1', 300);
	memcpy(lit + 309, "]>", 2);
	assert_int_equal(smtp_path_parse(lit, strlen(lit), false, false, &p,
					 &used, &why),
			 SMTP_ADDR_TOO_LONG);

	/* the local part buffer holds every canonical form: 62 characters
	 * needing escapes quoted */
	char q[200];
	size_t n = 0;
	q[n++] = '<';
	q[n++] = '"';
	for (int i = 0; i < 31; i++) {
		q[n++] = '\\';
		q[n++] = '"';
	}
	q[n++] = '"';
	memcpy(q + n, "@x>", 3);
	n += 3;
	assert_int_equal(smtp_path_parse(q, n, false, false, &p, &used, &why),
			 SMTP_ADDR_OK);
	assert_int_equal(strlen(p.local), 64);
}

/* ------------------------------------------------------------ parameters */

static const smtp_offer offer_all = {
	.size_max = 10000000, .chunking = true, .smtputf8 = true, .dsn = true,
	.eightbit = true,
};
static const smtp_offer offer_plain = {
	.size_max = 10000000, .chunking = false, .smtputf8 = false,
	.dsn = false, .eightbit = true,
};
static const smtp_offer offer_none = { .size_max = 0 };

static smtp_param_err parse(const char *s, smtp_params *ps)
{
	const char *why = NULL;
	smtp_param_err e = smtp_params_parse(s, strlen(s), ps, &why);
	if (e != SMTP_PARAM_OK)
		assert_non_null(why);
	else
		assert_null(why);
	return e;
}

static void test_params_parse(void **state)
{
	(void)state;
	smtp_params ps;
	assert_int_equal(parse("", &ps), SMTP_PARAM_OK);
	assert_int_equal(ps.n, 0);
	assert_int_equal(parse("   ", &ps), SMTP_PARAM_OK);
	assert_int_equal(ps.n, 0);
	assert_int_equal(parse(" size=1000 Body=8BITMIME SMTPUTF8", &ps),
			 SMTP_PARAM_OK);
	assert_int_equal(ps.n, 3);
	assert_string_equal(ps.p[0].key, "SIZE");
	assert_string_equal(ps.p[0].value, "1000");
	assert_true(ps.p[0].has_value);
	assert_string_equal(ps.p[1].key, "BODY");
	assert_string_equal(ps.p[1].value, "8BITMIME"); /* value as given */
	assert_string_equal(ps.p[2].key, "SMTPUTF8");
	assert_false(ps.p[2].has_value);
	assert_string_equal(ps.p[2].value, "");
	assert_int_equal(parse("  SIZE=1   X-Y-2  ", &ps), SMTP_PARAM_OK);
	assert_int_equal(ps.n, 2);
	assert_string_equal(ps.p[1].key, "X-Y-2");
	assert_int_equal(parse(" AUTH=<>", &ps), SMTP_PARAM_OK);
	assert_string_equal(ps.p[0].value, "<>");
	assert_int_equal(parse(" X=\xc3\xa9t\xc3\xa9", &ps), SMTP_PARAM_OK);

	assert_int_equal(parse("SIZE=1", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" SIZE=", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" =1", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" SIZE==1", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" A=b=c", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" -X", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X_Y", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X\t", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse("\tX", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X=a\x01", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X=a\x7f", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X=a\r\n", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X=\xc3", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X=\xff", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" \xc3\xa9=1", &ps), SMTP_PARAM_SYNTAX);
	assert_int_equal(parse(" X\xc3\xa9=1", &ps), SMTP_PARAM_SYNTAX);
	const char nul[] = " X=a\0b";
	const char *why;
	assert_int_equal(smtp_params_parse(nul, sizeof(nul) - 1, &ps, &why),
			 SMTP_PARAM_SYNTAX);

	/* duplicates, in any case */
	assert_int_equal(parse(" SIZE=10 SIZE=20", &ps), SMTP_PARAM_DUPLICATE);
	assert_int_equal(parse(" SIZE=10 size=10", &ps), SMTP_PARAM_DUPLICATE);
	assert_int_equal(parse(" SMTPUTF8 SMTPUTF8", &ps),
			 SMTP_PARAM_DUPLICATE);

	/* counts and lengths */
	char s[1200];
	size_t n = 0;
	for (unsigned i = 0; i < SMTP_PARAMS_MAX; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, " P%u=%u", i, i);
	assert_int_equal(parse(s, &ps), SMTP_PARAM_OK);
	assert_int_equal(ps.n, SMTP_PARAMS_MAX);
	snprintf(s + n, sizeof(s) - n, " LAST");
	assert_int_equal(parse(s, &ps), SMTP_PARAM_TOO_MANY);

	memset(s, 'k', sizeof(s));
	s[0] = ' ';
	s[32] = '\0'; /* keyword of 31 */
	assert_int_equal(parse(s, &ps), SMTP_PARAM_OK);
	s[32] = 'k';
	s[33] = '\0';
	assert_int_equal(parse(s, &ps), SMTP_PARAM_SYNTAX);
	memcpy(s, " X=", 3);
	memset(s + 3, 'v', 600);
	s[3 + SMTP_PARAM_VALUE_MAX] = '\0';
	assert_int_equal(parse(s, &ps), SMTP_PARAM_OK);
	assert_int_equal(strlen(ps.p[0].value), SMTP_PARAM_VALUE_MAX);
	s[3 + SMTP_PARAM_VALUE_MAX] = 'v';
	s[4 + SMTP_PARAM_VALUE_MAX] = '\0';
	assert_int_equal(parse(s, &ps), SMTP_PARAM_SYNTAX);
}

static smtp_param_err mail(const char *s, const smtp_offer *o,
			   smtp_mail_params *m)
{
	smtp_params ps;
	const char *why = NULL;
	assert_int_equal(parse(s, &ps), SMTP_PARAM_OK);
	smtp_param_err e = smtp_params_check_mail(&ps, o, m, &why);
	if (e != SMTP_PARAM_OK)
		assert_non_null(why);
	return e;
}

static smtp_param_err rcpt(const char *s, const smtp_offer *o,
			   smtp_rcpt_params *r)
{
	smtp_params ps;
	const char *why = NULL;
	assert_int_equal(parse(s, &ps), SMTP_PARAM_OK);
	smtp_param_err e = smtp_params_check_rcpt(&ps, o, r, &why);
	if (e != SMTP_PARAM_OK)
		assert_non_null(why);
	return e;
}

static void test_params_mail(void **state)
{
	(void)state;
	smtp_mail_params m;

	assert_int_equal(mail("", &offer_all, &m), SMTP_PARAM_OK);
	assert_int_equal(m.size, 0);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_false(m.smtputf8);
	assert_int_equal(m.ret, SMTP_RET_NONE);
	assert_string_equal(m.envid, "");

	/* SIZE (RFC 1870) */
	assert_int_equal(mail(" SIZE=10000000", &offer_all, &m), SMTP_PARAM_OK);
	assert_int_equal(m.size, 10000000);
	assert_int_equal(mail(" SIZE=10000001", &offer_all, &m),
			 SMTP_PARAM_TOO_BIG);
	assert_int_equal(mail(" SIZE=99999999999", &offer_all, &m),
			 SMTP_PARAM_TOO_BIG);
	assert_int_equal(mail(" SIZE=18446744073709551615", &offer_none, &m),
			 SMTP_PARAM_OK);
	assert_int_equal(m.size, UINT64_MAX);
	assert_int_equal(mail(" SIZE=18446744073709551616", &offer_none, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE=abc", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE=12k", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE=-1", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE=+1", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" SIZE=0", &offer_all, &m), SMTP_PARAM_OK);

	/* BODY */
	assert_int_equal(mail(" BODY=8BITMIME", &offer_plain, &m),
			 SMTP_PARAM_OK);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	assert_int_equal(mail(" body=7bit", &offer_plain, &m), SMTP_PARAM_OK);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_int_equal(mail(" BODY=BINARYMIME", &offer_plain, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" BODY=BINARYMIME", &offer_all, &m),
			 SMTP_PARAM_OK);
	assert_int_equal(m.body, SMTP_BODY_BINARYMIME);
	assert_int_equal(mail(" BODY=QUOTED", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" BODY", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	smtp_offer chunk_only = { .chunking = true };
	assert_int_equal(mail(" BODY=8BITMIME", &chunk_only, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" BODY=BINARYMIME", &chunk_only, &m),
			 SMTP_PARAM_OK);
	assert_int_equal(mail(" BODY=7BIT", &offer_none, &m),
			 SMTP_PARAM_UNKNOWN);

	/* SMTPUTF8 */
	assert_int_equal(mail(" SMTPUTF8", &offer_all, &m), SMTP_PARAM_OK);
	assert_true(m.smtputf8);
	assert_int_equal(mail(" SMTPUTF8", &offer_plain, &m),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" SMTPUTF8=yes", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);

	/* RET and ENVID (RFC 3461) */
	assert_int_equal(mail(" RET=FULL ENVID=QQ314159", &offer_all, &m),
			 SMTP_PARAM_OK);
	assert_int_equal(m.ret, SMTP_RET_FULL);
	assert_string_equal(m.envid, "QQ314159");
	assert_int_equal(mail(" ret=hdrs", &offer_all, &m), SMTP_PARAM_OK);
	assert_int_equal(m.ret, SMTP_RET_HDRS);
	assert_int_equal(mail(" RET=ALL", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" RET", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" RET=FULL", &offer_plain, &m),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" ENVID=x", &offer_plain, &m), SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" ENVID=a+2Bb+3Dc+20d+2b", &offer_all, &m),
			 SMTP_PARAM_OK);
	assert_string_equal(m.envid, "a+b=c d+");
	assert_int_equal(mail(" ENVID=a+00b", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=a+0D+0A", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=a+C3+A9", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=a+4", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=a+", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=a+ZZ", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID=\xc3\xa9", &offer_all, &m),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail(" ENVID", &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	char s[400];
	memcpy(s, " ENVID=", 7);
	memset(s + 7, 'e', 100);
	s[107] = '\0';
	assert_int_equal(mail(s, &offer_all, &m), SMTP_PARAM_OK);
	assert_int_equal(strlen(m.envid), 100);
	s[107] = 'e';
	s[108] = '\0';
	assert_int_equal(mail(s, &offer_all, &m), SMTP_PARAM_BAD_VALUE);
	/* 100 decoded from 300 encoded */
	for (int i = 0; i < 100; i++)
		memcpy(s + 7 + 3 * i, "+2B", 3);
	s[307] = '\0';
	assert_int_equal(mail(s, &offer_all, &m), SMTP_PARAM_OK);
	assert_int_equal(strlen(m.envid), 100);

	/* not ours */
	assert_int_equal(mail(" AUTH=<>", &offer_all, &m), SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" XFOO=1", &offer_all, &m), SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" NOTIFY=NEVER", &offer_all, &m),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" ORCPT=rfc822;a@b", &offer_all, &m),
			 SMTP_PARAM_UNKNOWN);
	/* the first bad parameter decides */
	assert_int_equal(mail(" SIZE=1 XFOO SIZE2=abc", &offer_all, &m),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail(" SIZE=99999999999 XFOO", &offer_all, &m),
			 SMTP_PARAM_TOO_BIG);

	/* duplicates built by hand are refused by the check too */
	smtp_params ps = { .n = 2 };
	memcpy(ps.p[0].key, "SIZE", 5);
	memcpy(ps.p[0].value, "1", 2);
	ps.p[0].has_value = true;
	ps.p[1] = ps.p[0];
	const char *why;
	assert_int_equal(smtp_params_check_mail(&ps, &offer_all, &m, &why),
			 SMTP_PARAM_DUPLICATE);
}

static void test_params_rcpt(void **state)
{
	(void)state;
	smtp_rcpt_params r;

	assert_int_equal(rcpt("", &offer_all, &r), SMTP_PARAM_OK);
	assert_int_equal(r.notify, 0);
	assert_string_equal(r.orcpt, "");

	/* NOTIFY */
	assert_int_equal(rcpt(" NOTIFY=NEVER", &offer_all, &r), SMTP_PARAM_OK);
	assert_int_equal(r.notify, 1);
	assert_int_equal(rcpt(" NOTIFY=SUCCESS,FAILURE,DELAY", &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_int_equal(r.notify, 2 | 4 | 8);
	assert_int_equal(rcpt(" notify=delay,failure", &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_int_equal(r.notify, 4 | 8);
	assert_int_equal(rcpt(" NOTIFY=NEVER,SUCCESS", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=FAILURE,NEVER", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=SUCCESS,", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=,SUCCESS", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=SUCCESS,,DELAY", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=SOMETIMES", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=SUCCESSFAILURE", &offer_all, &r),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY", &offer_all, &r), SMTP_PARAM_BAD_VALUE);
	assert_int_equal(rcpt(" NOTIFY=NEVER", &offer_plain, &r),
			 SMTP_PARAM_UNKNOWN);

	/* ORCPT */
	assert_int_equal(rcpt(" ORCPT=rfc822;user@example.org", &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_string_equal(r.orcpt, "rfc822;user@example.org");
	assert_int_equal(rcpt(" ORCPT=RFC822;a+2Bb@x.org NOTIFY=DELAY",
			      &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_string_equal(r.orcpt, "RFC822;a+b@x.org");
	assert_int_equal(r.notify, 8);
	assert_int_equal(rcpt(" ORCPT=rfc822;+22a+20b+22@x.org", &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_string_equal(r.orcpt, "rfc822;\"a b\"@x.org");
	assert_int_equal(rcpt(" ORCPT=x400;c+3Dus+3Ba+3Dx", &offer_all, &r),
			 SMTP_PARAM_OK);
	assert_string_equal(r.orcpt, "x400;c=us;a=x");
	/* malformed */
	static const char *const bad[] = {
		" ORCPT=user@example.org",     /* no addr-type */
		" ORCPT=rfc822;",              /* empty address */
		" ORCPT=;a@x.org",             /* empty addr-type */
		" ORCPT=rfc822;a@x.org+",      /* truncated hexchar */
		" ORCPT=rfc822;a@x.org+4",
		" ORCPT=rfc822;a+ZZ@x.org",
		" ORCPT=rfc822;a+00b@x.org",   /* NUL */
		" ORCPT=rfc822;a@x.org+0D+0A", /* CR LF */
		" ORCPT=rfc822;a+C3+A9@x.org", /* 8-bit */
		" ORCPT=rfc822;not-an-address",
		" ORCPT=rfc822;<a@x.org>",
		" ORCPT=rfc822;a@b@x.org",
		" ORCPT=rfc822;@a:b@x.org",
		" ORCPT=rfc(822);a@x.org",
		" ORCPT=averyveryverylongaddrtype;a@x.org",
		" ORCPT",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rcpt(bad[i], &offer_all, &r) != SMTP_PARAM_BAD_VALUE)
			fail_msg("%s accepted", bad[i]);
		assert_string_equal(r.orcpt, "");
	}
	assert_int_equal(rcpt(" ORCPT=rfc822;a@x.org", &offer_plain, &r),
			 SMTP_PARAM_UNKNOWN);

	/* the longest rfc822 address fits */
	char s[600], d[300];
	make_domain(d, 252);
	snprintf(s, sizeof(s), " ORCPT=rfc822;a@%s", d);
	assert_int_equal(rcpt(s, &offer_all, &r), SMTP_PARAM_OK);
	assert_int_equal(strlen(r.orcpt), 7 + 254);
	make_domain(d, 253);
	snprintf(s, sizeof(s), " ORCPT=rfc822;a@%s", d);
	assert_int_equal(rcpt(s, &offer_all, &r), SMTP_PARAM_BAD_VALUE);

	/* MAIL parameters are unknown here */
	assert_int_equal(rcpt(" SIZE=1", &offer_all, &r), SMTP_PARAM_UNKNOWN);
	assert_int_equal(rcpt(" BODY=8BITMIME", &offer_all, &r),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(rcpt(" AUTH=<>", &offer_all, &r), SMTP_PARAM_UNKNOWN);
}

/* TESTING.md S9 as the server will see it: the argument after "MAIL FROM:"
 * split into a path and parameters. */
static smtp_param_err mail_line(const char *arg, const smtp_offer *o)
{
	smtp_path p;
	size_t used;
	const char *why;
	smtp_params ps;
	smtp_mail_params m;
	assert_int_equal(smtp_path_parse(arg, strlen(arg), true, o->smtputf8,
					 &p, &used, &why),
			 SMTP_ADDR_OK);
	smtp_param_err e = smtp_params_parse(arg + used, strlen(arg) - used,
					     &ps, &why);
	if (e != SMTP_PARAM_OK)
		return e;
	return smtp_params_check_mail(&ps, o, &m, &why);
}

static void test_s9(void **state)
{
	(void)state;
	assert_int_equal(mail_line("<a@x.org> SIZE=20000000", &offer_plain),
			 SMTP_PARAM_TOO_BIG);
	assert_int_equal(mail_line("<a@x.org> SIZE=abc", &offer_plain),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail_line("<a@x.org> SIZE=1 SIZE=1", &offer_plain),
			 SMTP_PARAM_DUPLICATE);
	assert_int_equal(mail_line("<a@x.org> FROB=1", &offer_plain),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail_line("<a@x.org> BODY=BINARYMIME", &offer_plain),
			 SMTP_PARAM_BAD_VALUE);
	assert_int_equal(mail_line("<a@x.org> SMTPUTF8", &offer_plain),
			 SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail_line("<> AUTH=<>", &offer_all), SMTP_PARAM_UNKNOWN);
	assert_int_equal(mail_line("<a@x.org>SIZE=1", &offer_plain),
			 SMTP_PARAM_SYNTAX);
	assert_int_equal(mail_line("<> SIZE=1000 BODY=8BITMIME", &offer_plain),
			 SMTP_PARAM_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_fields),
		cmocka_unit_test(test_path_limits),
		cmocka_unit_test(test_params_parse),
		cmocka_unit_test(test_params_mail),
		cmocka_unit_test(test_params_rcpt),
		cmocka_unit_test(test_s9),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
