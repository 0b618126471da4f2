/*
 * test-imap-msg.c — what IMAP shows of a message (src/imap/imap-msg.c):
 * ENVELOPE, BODY and BODYSTRUCTURE of hand-made messages, one rule each
 * (the expected strings are what Dovecot 2.3 answers for the same bytes,
 * checked when they were written), every BODY[section] kind, the SEARCH
 * helpers, and TESTING.md I10: malformed MIME (deep nesting, missing
 * boundary, huge parts, many parts) gives bounded output, never an error
 * but the documented one.
 */
#include "test-common.h"

#include "imap-msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static imap_msg_info analyze(const char *m)
{
	imap_msg_info info;
	const char *error = NULL;
	assert_int_equal(imap_msg_analyze((const uint8_t *)m, strlen(m),
					  &info, &error), 0);
	return info;
}

static void expect_envelope(const char *m, const char *env)
{
	imap_msg_info info = analyze(m);
	assert_string_equal(info.envelope, env);
	imap_msg_info_free(&info);
}

static void expect_structure(const char *m, const char *bs, const char *body)
{
	imap_msg_info info = analyze(m);
	assert_string_equal(info.bodystructure, bs);
	if (body != NULL)
		assert_string_equal(info.body, body);
	imap_msg_info_free(&info);
}

/* BODY[section] of m as a NUL-terminated string (freed by the caller). */
static char *section(const char *m, const char *s)
{
	const uint8_t *out;
	size_t n;
	uint8_t *alloc;
	const char *error = NULL;
	assert_int_equal(imap_msg_section((const uint8_t *)m, strlen(m), s,
					  strlen(s), &out, &n, &alloc, &error),
			 0);
	char *r = malloc(n + 1);
	assert_non_null(r);
	memcpy(r, out, n);
	r[n] = '\0';
	if (alloc == NULL)
		assert_true(n == 0 || (out >= (const uint8_t *)m &&
				       out + n <= (const uint8_t *)m + strlen(m)));
	free(alloc);
	return r;
}

static void expect_section(const char *m, const char *s, const char *want)
{
	char *got = section(m, s);
	assert_string_equal(got, want);
	free(got);
}

/* ---- ENVELOPE ---- */

static void test_envelope_basic(void **state)
{
	(void)state;
	expect_envelope(
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
		"Subject: hello\r\n"
		"From: Alice <alice@example.org>\r\n"
		"To: bob@example.net, \"Carol C\" <carol@example.com>\r\n"
		"Cc: dave@example.org (Dave)\r\n"
		"Message-ID: <1@example.org>\r\n"
		"In-Reply-To: <0@example.org>\r\n\r\nbody\r\n",
		"(\"Mon, 1 Jan 2024 00:00:00 +0000\" \"hello\" "
		"((\"Alice\" NIL \"alice\" \"example.org\")) "
		"((\"Alice\" NIL \"alice\" \"example.org\")) "
		"((\"Alice\" NIL \"alice\" \"example.org\")) "
		"((NIL NIL \"bob\" \"example.net\")(\"Carol C\" NIL \"carol\" "
		"\"example.com\")) ((\"Dave\" NIL \"dave\" \"example.org\")) "
		"NIL \"<0@example.org>\" \"<1@example.org>\")");
}

static void test_envelope_missing_fields(void **state)
{
	(void)state;
	expect_envelope("X: y\r\n\r\n",
			"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	expect_envelope("", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* empty values: strings "", address lists NIL */
	expect_envelope("Subject:\r\nTo:\r\nMessage-ID: \r\n\r\n",
			"(NIL \"\" NIL NIL NIL NIL NIL NIL NIL \"\")");
}

static void test_envelope_sender_defaults(void **state)
{
	(void)state;
	expect_envelope("From: a@b\r\nSender: s@t\r\n\r\n",
			"(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"s\" "
			"\"t\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
	expect_envelope("From: a@b\r\nReply-To:\r\n\r\n",
			"(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" "
			"\"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)");
}

static void test_envelope_groups(void **state)
{
	(void)state;
	expect_envelope(
		"To: undisclosed-recipients:;\r\n"
		"Cc: G: a@b, C <c@d>;, e@f\r\nBcc: H: x@y\r\n\r\n",
		"(NIL NIL NIL NIL NIL ((NIL NIL \"undisclosed-recipients\" "
		"NIL)(NIL NIL NIL NIL)) ((NIL NIL \"G\" NIL)(NIL NIL \"a\" "
		"\"b\")(\"C\" NIL \"c\" \"d\")(NIL NIL NIL NIL)(NIL NIL \"e\" "
		"\"f\")) ((NIL NIL \"H\" NIL)(NIL NIL \"x\" \"y\")(NIL NIL NIL "
		"NIL)) NIL NIL)");
}

static void test_envelope_raw_values(void **state)
{
	(void)state;
	/* encoded-words stay encoded; the subject is "for humans" (folding
	 * collapsed: a literal), the date only loses its line ends */
	expect_envelope(
		"Date:   x\r\n y \r\n"
		"Subject: =?utf-8?q?h=C3=A9?=\r\n  folded\r\n"
		"From: =?utf-8?b?w6k=?= <a@b>\r\n\r\n",
		"(\"x y \" {26}\r\n=?utf-8?q?h=C3=A9?= folded "
		"((\"=?utf-8?b?w6k=?=\" NIL \"a\" \"b\")) ((\"=?utf-8?b?w6k=?=\" "
		"NIL \"a\" \"b\")) ((\"=?utf-8?b?w6k=?=\" NIL \"a\" \"b\")) NIL "
		"NIL NIL NIL NIL)");
}

static void test_envelope_quoting(void **state)
{
	(void)state;
	/* quotes: 4 escapes stay quoted, 5 make a literal; 8-bit: literal;
	 * a display name with quotes: a literal (for humans) */
	expect_envelope("Message-ID: a\"b\"c\"d\"e\r\n"
			"In-Reply-To: a\"b\"c\"d\"e\"f\r\n"
			"Subject: h\xc3\xa9\r\nFrom: \"x\\\\y\" <a@b>\r\n\r\n",
			"(NIL {3}\r\nh\xc3\xa9 (({3}\r\nx\\y NIL \"a\" \"b\")) "
			"(({3}\r\nx\\y NIL \"a\" \"b\")) (({3}\r\nx\\y NIL \"a\" "
			"\"b\")) NIL NIL NIL {11}\r\na\"b\"c\"d\"e\"f "
			"\"a\\\"b\\\"c\\\"d\\\"e\")");
}

static void test_envelope_address_recovery(void **state)
{
	(void)state;
	expect_envelope(
		"To: a@, <a>, <a@b, a b@c, @b, <@b>, <@r1,@r2:a@b>, , Foo Bar, "
		"a@b (first) (second), x <a@b> (cmt), <@r1 a@b>, a@b.c.\r\n\r\n",
		"(NIL NIL NIL NIL NIL ((NIL NIL \"a\" \"MISSING_DOMAIN\")"
		"(NIL NIL \"a\" \"MISSING_DOMAIN\")"
		"(NIL NIL \"a\" \"SYNTAX_ERROR\")"
		"(\"a b\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
		"(NIL NIL \"MISSING_MAILBOX\" \"b\")"
		"(NIL \"INVALID_ROUTE\" \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
		"(NIL \"@r1,@r2\" \"a\" \"b\")"
		"(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
		"(\"Foo Bar\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
		"(\"second\" NIL \"a\" \"b\")(\"x\" NIL \"a\" \"b\")"
		"(NIL \"INVALID_ROUTE\" \"a\" \"b\")"
		"(NIL NIL \"a\" \"MISSING_DOMAIN\")) NIL NIL NIL NIL)");
}

static void test_envelope_duplicates(void **state)
{
	(void)state;
	/* strings: the last field; addresses: all fields joined */
	expect_envelope("Subject: s1\r\nTo: a@1\r\nSubject: s2\r\nTo: a@2\r\n"
			"\r\n",
			"(NIL \"s2\" NIL NIL NIL ((NIL NIL \"a\" \"1\")(NIL NIL "
			"\"a\" \"2\")) NIL NIL NIL NIL)");
}

static void test_sent(void **state)
{
	(void)state;
	imap_msg_info info = analyze("Date: Mon, 1 Jan 2024 01:00:00 +0100\r\n"
				     "\r\n");
	assert_int_equal(info.sent, 1704067200);
	imap_msg_info_free(&info);
	info = analyze("Date: yesterday\r\n\r\n");
	assert_true(info.sent == INT64_MIN);
	imap_msg_info_free(&info);
	info = analyze("Subject: x\r\n\r\n");
	assert_true(info.sent == INT64_MIN);
	imap_msg_info_free(&info);
}

/* ---- BODY / BODYSTRUCTURE ---- */

static void test_structure_single(void **state)
{
	(void)state;
	expect_structure("Subject: x\r\n\r\nbody\r\nline2\r\n",
			 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
			 "\"7bit\" 13 2 NIL NIL NIL NIL)",
			 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
			 "\"7bit\" 13 2)");
	/* case kept, charset given last when missing, extension data */
	expect_structure(
		"MIME-Version: 1.0\r\n"
		"Content-Type: TEXT/Html; Format=flowed\r\n"
		"Content-Transfer-Encoding: QUOTED-printable\r\n"
		"Content-ID: <id>\r\nContent-Description: desc\r\n"
		"Content-Disposition: inline; filename=\"a b\"\r\n"
		"Content-Language: en, fr\r\nContent-Location: http://x\r\n"
		"\r\nx",
		"(\"TEXT\" \"Html\" (\"Format\" \"flowed\" \"charset\" "
		"\"us-ascii\") \"<id>\" \"desc\" \"QUOTED-printable\" 1 0 NIL "
		"(\"inline\" (\"filename\" \"a b\")) (\"en\" \"fr\") "
		"\"http://x\")",
		"(\"TEXT\" \"Html\" (\"Format\" \"flowed\" \"charset\" "
		"\"us-ascii\") \"<id>\" \"desc\" \"QUOTED-printable\" 1 0)");
	/* not text: no line count; no parameters: NIL */
	expect_structure("Content-Type: application/octet-stream\r\n\r\nab\r\n",
			 "(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" "
			 "4 NIL NIL NIL NIL)", NULL);
	/* RFC 2231 parameters are shown as written */
	expect_structure("Content-Type: text/plain; name*=utf-8''%C3%A9\r\n"
			 "\r\nx",
			 "(\"text\" \"plain\" (\"name*\" \"utf-8''%C3%A9\" "
			 "\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL "
			 "NIL NIL)", NULL);
}

static void test_structure_not_mime(void **state)
{
	(void)state;
	/* no MIME-Version, no Content-Type: the Content-* fields are not
	 * MIME fields */
	expect_structure("Content-Description: d\r\nContent-Language: en\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\nx",
			 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
			 "\"7bit\" 1 0 NIL NIL NIL NIL)", NULL);
	expect_structure("MIME-Version: 1.0\r\nContent-Description: d\r\n\r\nx",
			 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL "
			 "\"d\" \"7bit\" 1 0 NIL NIL NIL NIL)", NULL);
}

static const char *const NESTED =
	"From: a@b\r\n"
	"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
	"preamble\r\n"
	"--XX\r\n"
	"Content-Type: text/plain\r\n\r\n"
	"hello\r\n"
	"--XX\r\n"
	"Content-Type: message/rfc822\r\n\r\n"
	"Subject: inner\r\n\r\n"
	"inner body\r\n"
	"--XX\r\n"
	"Content-Type: multipart/alternative; boundary=YY\r\n\r\n"
	"--YY\r\n\r\n"
	"a\r\n"
	"--YY\r\n"
	"Content-Type: text/html\r\n\r\n"
	"<b>\r\n"
	"--YY--\r\n"
	"--XX--\r\n"
	"epilogue\r\n";

static void test_structure_nested(void **state)
{
	(void)state;
	expect_structure(NESTED,
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"5 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" "
		"28 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" "
		"\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL "
		"NIL NIL) 2 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" "
		"\"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)(\"text\" "
		"\"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL "
		"NIL NIL) \"alternative\" (\"boundary\" \"YY\") NIL NIL NIL) "
		"\"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)",
		"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "
		"5 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 28 (NIL "
		"\"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
		"(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0) 2)((\"text\" "
		"\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
		"(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 "
		"0) \"alternative\") \"mixed\")");
}

static void test_structure_missing_boundary(void **state)
{
	(void)state;
	/* a multipart without a boundary has no parts: one empty text */
	expect_structure("Subject: x\r\nContent-Type: multipart/mixed\r\n\r\n"
			 "--x\r\n\r\nbody\r\n--x--\r\n",
			 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
			 "\"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)",
			 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
			 "\"7bit\" 0 0) \"mixed\")");
}

static void test_structure_encoded_composite(void **state)
{
	(void)state;
	/* a base64 message/rfc822 is not parsed: still an envelope and a
	 * body (empty ones), as RFC 3501's grammar wants; message/global is
	 * a basic part; a base64 multipart has one empty part (Dovecot) */
	expect_structure(
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: message/rfc822\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"U3ViamVjdDogeAoKYgo=\r\n"
		"--b\r\nContent-Type: message/global\r\n\r\n"
		"Subject: g\r\n\r\nx\r\n"
		"--b\r\nContent-Type: multipart/alternative; boundary=c\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"LS1jCgp4Ci0tYy0tCg==\r\n--b--\r\n",
		"((\"message\" \"rfc822\" NIL NIL NIL \"base64\" 20 (NIL NIL NIL "
		"NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" "
		"\"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL "
		"NIL)(\"message\" \"global\" NIL NIL NIL \"7bit\" 15 NIL NIL NIL "
		"NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		"\"7bit\" 0 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" "
		"\"c\") NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)",
		NULL);
}

static void test_structure_close_delimiter_line_end(void **state)
{
	(void)state;
	/* a message/rfc822 part whose multipart closes right before the
	 * outer delimiter takes that line end (Dovecot: 116 bytes, 11
	 * lines; 114 and 10 by RFC 2046) */
	const char *m =
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: message/rfc822\r\n\r\n"
		"Subject: in\r\n"
		"Content-Type: multipart/alternative; boundary=c\r\n\r\n"
		"--c\r\n\r\nA\r\n--c\r\nContent-Type: text/html\r\n\r\nB\r\n"
		"--c--\r\n--b--\r\n";
	imap_msg_info info = analyze(m);
	assert_non_null(strstr(info.bodystructure, "\"7bit\" 116 (NIL \"in\""));
	assert_non_null(strstr(info.bodystructure, "NIL NIL NIL) 11 NIL"));
	imap_msg_info_free(&info);
	char *s = section(m, "1");
	assert_int_equal(strlen(s), 116);
	assert_string_equal(s + strlen(s) - 7, "--c--\r\n");
	free(s);
}

/* ---- TESTING.md I10: malformed MIME, bounded ---- */

static char *repeat(const char *head, const char *unit, size_t n,
		    const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *m = malloc(hl + ul * n + tl + 1);
	assert_non_null(m);
	memcpy(m, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(m + hl + i * ul, unit, ul);
	memcpy(m + hl + n * ul, tail, tl + 1);
	return m;
}

static void test_i10_deep_nesting(void **state)
{
	(void)state;
	/* 1000 nested message/rfc822: beyond the MIME depth limit (100), the
	 * message is one text/plain part; analysis is not an error */
	char *m = repeat("", "Content-Type: message/rfc822\r\n\r\n", 1000,
			 "x\r\n");
	imap_msg_info info = analyze(m);
	assert_int_equal(strncmp(info.bodystructure,
				 "(\"text\" \"plain\" (\"charset\" \"us-ascii\")",
				 38), 0);
	assert_true(strlen(info.bodystructure) < 200);
	imap_msg_info_free(&info);
	expect_section(m, "1.1.1.1.1", "");
	free(m);

	/* 90 levels: within the limit, each level shown once */
	m = repeat("", "Content-Type: message/rfc822\r\n\r\n", 90, "x\r\n");
	info = analyze(m);
	size_t n = 0;
	for (const char *p = info.bodystructure;
	     (p = strstr(p, "\"rfc822\"")) != NULL; p++)
		n++;
	assert_int_equal(n, 90);
	assert_true(strlen(info.bodystructure) < 60000);
	imap_msg_info_free(&info);
	free(m);

	/* nested multiparts without ends, past the limit */
	char unit[64];
	char *big = malloc(300 * 64 + 16);
	assert_non_null(big);
	big[0] = '\0';
	size_t bl = 0;
	for (int i = 0; i < 300; i++) {
		int k = snprintf(unit, sizeof(unit),
				 "Content-Type: multipart/mixed; boundary=b%d"
				 "\r\n\r\n--b%d\r\n", i, i);
		assert_true(k > 0 && (size_t)k < sizeof(unit));
		memcpy(big + bl, unit, (size_t)k);
		bl += (size_t)k;
	}
	memcpy(big + bl, "\r\nx\r\n", 6);
	info = analyze(big);
	assert_true(strlen(info.bodystructure) < 200);
	imap_msg_info_free(&info);
	free(big);
}

static void test_i10_huge_part(void **state)
{
	(void)state;
	/* an 8 MiB part: its size and lines counted, nothing copied */
	size_t n = 8u << 20;
	char *m = malloc(n + 64);
	assert_non_null(m);
	int h = snprintf(m, 64, "Content-Type: text/plain\r\n\r\n");
	for (size_t i = 0; i < n; i += 64) {
		memset(m + h + i, 'a', 62);
		m[h + i + 62] = '\r';
		m[h + i + 63] = '\n';
	}
	m[h + n] = '\0';
	clock_t t0 = clock();
	imap_msg_info info = analyze(m);
	assert_string_equal(info.bodystructure,
			    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL "
			    "NIL \"7bit\" 8388608 131072 NIL NIL NIL NIL)");
	imap_msg_info_free(&info);
	char *s = section(m, "TEXT");
	assert_int_equal(strlen(s), n);
	free(s);
	assert_true(imap_msg_text_has((const uint8_t *)m, strlen(m), false,
				      "AAAA", 4));
	assert_false(imap_msg_text_has((const uint8_t *)m, strlen(m), false,
				       "b", 1));
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 10.0);
	free(m);
}

static void test_i10_too_large(void **state)
{
	(void)state;
	/* 9000 parts with a 200-byte description each: BODYSTRUCTURE would
	 * be over IMAP_MSG_CACHE_MAX, so analyze refuses with a reason */
	char unit[400];
	char desc[201];
	memset(desc, 'd', 200);
	desc[200] = '\0';
	int k = snprintf(unit, sizeof(unit),
			 "--b\r\nContent-Description: %s\r\n\r\nx\r\n", desc);
	assert_true(k > 0 && (size_t)k < sizeof(unit));
	char *m = repeat("MIME-Version: 1.0\r\n"
			 "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
			 unit, 9000, "--b--\r\n");
	imap_msg_info info;
	const char *error = NULL;
	assert_int_equal(imap_msg_analyze((const uint8_t *)m, strlen(m), &info,
					  &error), -1);
	assert_non_null(error);
	assert_null(info.envelope);
	/* sections still work */
	expect_section(m, "9000", "x");
	expect_section(m, "9001", "");
	free(m);

	/* more parts than the MIME limit (10000): one text/plain part */
	m = repeat("Content-Type: multipart/mixed; boundary=b\r\n\r\n",
		   "--b\r\n\r\nx\r\n", 10001, "--b--\r\n");
	info = analyze(m);
	assert_int_equal(strncmp(info.bodystructure, "(\"text\" \"plain\"", 15),
			 0);
	imap_msg_info_free(&info);
	free(m);
}

/* ---- sections ---- */

static void test_sections_top(void **state)
{
	(void)state;
	const char *m = "Subject: x\r\nX: 1\r\nSubject: y\r\n\tfold\r\n\r\nbody\r\n";
	expect_section(m, "", m);
	expect_section(m, "HEADER",
		       "Subject: x\r\nX: 1\r\nSubject: y\r\n\tfold\r\n\r\n");
	expect_section(m, "TEXT", "body\r\n");
	expect_section(m, "1", "body\r\n");
	expect_section(m, "1.MIME",
		       "Subject: x\r\nX: 1\r\nSubject: y\r\n\tfold\r\n\r\n");
	expect_section(m, "2", "");
	expect_section(m, "1.1", "");
	expect_section(m, "HEADER.FIELDS (SUBJECT)",
		       "Subject: x\r\nSubject: y\r\n\tfold\r\n\r\n");
	expect_section(m, "header.fields (\"X\" nothere)", "X: 1\r\n\r\n");
	expect_section(m, "HEADER.FIELDS.NOT (Subject)", "X: 1\r\n\r\n");
	expect_section(m, "HEADER.FIELDS (None)", "\r\n");
	/* no empty line after the header */
	const char *h = "Subject: a\r\nX-Other: 2";
	expect_section(h, "HEADER.FIELDS (X-Other)", "X-Other: 2\r\n");
	expect_section(h, "HEADER.FIELDS.NOT (Subject)", "X-Other: 2");
	expect_section("", "HEADER.FIELDS.NOT (Subject)", "");
	expect_section("", "HEADER.FIELDS (Subject)", "\r\n");
}

static void test_sections_parts(void **state)
{
	(void)state;
	const char *m = NESTED;
	expect_section(m, "1", "hello");
	expect_section(m, "1.MIME", "Content-Type: text/plain\r\n\r\n");
	expect_section(m, "1.1", "hello");       /* a leaf's part 1 */
	expect_section(m, "1.1.1", "");
	expect_section(m, "2", "Subject: inner\r\n\r\ninner body");
	expect_section(m, "2.MIME", "Content-Type: message/rfc822\r\n\r\n");
	expect_section(m, "2.HEADER", "Subject: inner\r\n\r\n");
	expect_section(m, "2.TEXT", "inner body");
	expect_section(m, "2.HEADER.FIELDS (Subject)", "Subject: inner\r\n\r\n");
	expect_section(m, "2.1", "inner body");
	expect_section(m, "2.1.MIME", "Subject: inner\r\n\r\n");
	expect_section(m, "2.1.1", "");
	expect_section(m, "2.2", "");
	expect_section(m, "3",
		       "--YY\r\n\r\na\r\n--YY\r\nContent-Type: text/html\r\n\r\n"
		       "<b>\r\n--YY--\r\n");
	expect_section(m, "3.1", "a");
	expect_section(m, "3.1.MIME", "\r\n");
	expect_section(m, "3.2", "<b>");
	expect_section(m, "3.2.MIME", "Content-Type: text/html\r\n\r\n");
	expect_section(m, "3.3", "");
	expect_section(m, "4", "");
	expect_section(m, "1.HEADER", "");      /* not a message/rfc822 */
	expect_section(m, "3.TEXT", "");
	expect_section(m, "TEXT", strstr(m, "preamble"));
}

static void test_sections_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"0", "1.", "1..2", "BODY", "MIME", "1.X", "HEADER.FIELDS",
		"HEADER.FIELDS From", "TEXT ", "01.0", "99999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const uint8_t *out;
		size_t n;
		uint8_t *alloc;
		const char *error = NULL;
		assert_int_equal(imap_msg_section((const uint8_t *)"a: b\r\n\r\n",
						  8, bad[i], strlen(bad[i]),
						  &out, &n, &alloc, &error), -1);
		assert_non_null(error);
		assert_null(alloc);
	}
}

/* ---- SEARCH ---- */

static void test_search(void **state)
{
	(void)state;
	const char *m =
		"Subject: =?utf-8?q?Caf=C3=A9_au_lait?=\r\n"
		"From: Alice <alice@example.org>\r\n"
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: text/plain\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"soft=\r\nbreak and =41BC\r\n"
		"--b\r\nContent-Type: text/plain\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"aGlkZGVuIHdvcmQ=\r\n"
		"--b\r\nContent-Type: application/octet-stream\r\n\r\n"
		"binaryneedle\r\n"
		"--b--\r\n";
	size_t n = strlen(m);
	const uint8_t *u = (const uint8_t *)m;
	assert_true(imap_msg_header_has(u, n, "subject", "CAFé AU", 8));
	assert_true(imap_msg_header_has(u, n, "Subject", "au lait", 7));
	assert_false(imap_msg_header_has(u, n, "Subject", "=?utf-8", 7));
	assert_true(imap_msg_header_has(u, n, "from", "ALICE@", 6));
	assert_true(imap_msg_header_has(u, n, "From", "", 0));
	assert_false(imap_msg_header_has(u, n, "To", "", 0));
	assert_true(imap_msg_text_has(u, n, false, "softbreak", 9));
	assert_true(imap_msg_text_has(u, n, false, "abc", 3));
	assert_true(imap_msg_text_has(u, n, false, "HIDDEN WORD", 11));
	assert_false(imap_msg_text_has(u, n, false, "aGlkZGVu", 8));
	assert_false(imap_msg_text_has(u, n, false, "binaryneedle", 12));
	assert_false(imap_msg_text_has(u, n, false, "alice", 5));
	assert_true(imap_msg_text_has(u, n, true, "alice", 5));
	assert_true(imap_msg_text_has(u, n, true, "café", 5));
	assert_true(imap_msg_text_has(u, n, false, "", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_basic),
		cmocka_unit_test(test_envelope_missing_fields),
		cmocka_unit_test(test_envelope_sender_defaults),
		cmocka_unit_test(test_envelope_groups),
		cmocka_unit_test(test_envelope_raw_values),
		cmocka_unit_test(test_envelope_quoting),
		cmocka_unit_test(test_envelope_address_recovery),
		cmocka_unit_test(test_envelope_duplicates),
		cmocka_unit_test(test_sent),
		cmocka_unit_test(test_structure_single),
		cmocka_unit_test(test_structure_not_mime),
		cmocka_unit_test(test_structure_nested),
		cmocka_unit_test(test_structure_missing_boundary),
		cmocka_unit_test(test_structure_encoded_composite),
		cmocka_unit_test(test_structure_close_delimiter_line_end),
		cmocka_unit_test(test_i10_deep_nesting),
		cmocka_unit_test(test_i10_huge_part),
		cmocka_unit_test(test_i10_too_large),
		cmocka_unit_test(test_sections_top),
		cmocka_unit_test(test_sections_parts),
		cmocka_unit_test(test_sections_errors),
		cmocka_unit_test(test_search),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
