/*
 * test-mime.c — src/mime: the header section iterator (mail-header) and
 * the MIME structure parser (mime).  TESTING.md S12 and F6.
 *
 * Header iterator: a table of valid and invalid header sections (fields,
 * unfolded values, malformed fields, where the body starts); the RFC 5322
 * Appendix A messages; every message cut at every length (the fields that
 * end before the cut are exactly those of the whole message, and the
 * invariants hold: contiguous fields from 0, body_off <= len); 100k and
 * 400k fields iterate in linear time.
 * MIME: the RFC 2046 §5.1.1 example, nesting, message/rfc822, digest,
 * parameters (quoted, RFC 2231), boundary collisions, unterminated parts,
 * every message cut at every length (invariants of the tree), the limits
 * (2000-deep nesting refused with the depth error, parts, header bytes,
 * boundary length) and linear time on many parts; the shared mail corpus
 * (AMP_TEST_CORPUS) parses with the default limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mail-header.h"
#include "mime.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

#define MAXF 32

typedef struct hdr_result {
	size_t n;
	mail_field f[MAXF];
	char value[MAXF][256];
	size_t body_off;
	bool no_separator;
} hdr_result;

/* Iterate msg, checking the invariants; keep the first MAXF fields. */
static size_t iterate(const uint8_t *msg, size_t len, hdr_result *r)
{
	mail_header_iter it;
	mail_field f;
	size_t n = 0, expect = 0;
	memset(r, 0, sizeof(*r));
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		assert_int_equal(f.off, expect);
		assert_true(f.len > 0);
		assert_true(f.off + f.len <= len);
		assert_true(f.value_off >= f.off &&
			    f.value_off <= f.off + f.len);
		if (f.malformed) {
			assert_int_equal(f.name_len, 0);
			assert_int_equal(f.value_off, f.off);
		} else {
			assert_true(f.name_len > 0 &&
				    f.off + f.name_len < f.value_off);
			assert_int_equal(msg[f.value_off - 1], ':');
		}
		assert_int_equal(f.nul, memchr(msg + f.off, 0, f.len) != NULL);
		char v[8];
		size_t vl = mail_field_unfold(msg, &f, v, sizeof(v));
		assert_true(vl <= f.len);
		assert_int_equal(strlen(v) <= vl, true);
		if (n < MAXF) {
			r->f[n] = f;
			size_t l = mail_field_unfold(msg, &f, r->value[n],
						     sizeof(r->value[n]));
			assert_int_equal(l, vl);
		}
		expect = f.off + f.len;
		n++;
	}
	assert_true(it.done);
	assert_int_equal(mail_header_next(&it, &f), 0);
	assert_true(it.body_off >= expect && it.body_off <= len);
	if (it.no_separator)
		assert_int_equal(it.body_off, expect);
	else
		assert_true(it.body_off > expect);
	r->n = n;
	r->body_off = it.body_off;
	r->no_separator = it.no_separator;
	return n;
}

/* ------------------------------------------------------------ header table */

typedef struct hcase {
	const char *msg;
	size_t len;            /* 0: strlen */
	const char *fields[6]; /* "Name=value", "!value" when malformed */
	long body_off;         /* -1: len */
	bool no_separator;
} hcase;

static const hcase hcases[] = {
	{ "Subject: hi\r\n\r\nbody", 0, { "Subject=hi" }, 15, false },
	{ "Subject: hi\n\nbody", 0, { "Subject=hi" }, 13, false },
	{ "A: 1\r\nB:2\r\nc:   3  \r\n\r\n", 0, { "A=1", "B=2", "c=3" }, -1,
	  false },
	{ "Subject: a\r\n b\r\n\tc\r\n\r\nx", 0, { "Subject=a b\tc" }, 22,
	  false },
	{ "A: b\r\n \r\n c\r\n\r\n", 0, { "A=b  c" }, -1, false },
	{ "A: b\r\n", 0, { "A=b" }, -1, true },
	{ "A: b", 0, { "A=b" }, -1, true },
	{ "A: b\r", 0, { "A=b" }, -1, true },
	{ "A: b\r\n\r", 0, { "A=b" }, -1, false },
	{ "", 0, { NULL }, 0, true },
	{ "\r\nbody", 0, { NULL }, 2, false },
	{ "\nbody", 0, { NULL }, 1, false },
	/* Postfix: a non-field line ends the header and starts the body */
	{ "A: b\r\nnot a header\r\nC: d\r\n\r\n", 0, { "A=b" }, 6, true },
	{ "A: b\r\n:x\r\n", 0, { "A=b" }, 6, true },
	{ "A: b\r\nX Y: z\r\n", 0, { "A=b" }, 6, true },
	{ "X-A\0B: v\r\n\r\n", 12, { NULL }, 0, true },
	{ "X-\xc3\xa9: v\r\n\r\n", 0, { NULL }, 0, true },
	{ "--boundary\r\n", 0, { NULL }, 0, true },
	/* obsolete: blanks between the name and the colon */
	{ "Subject : x\r\n\r\n", 0, { "Subject=x" }, -1, false },
	{ "Subject\t: x\r\n\r\n", 0, { "Subject=x" }, -1, false },
	/* an empty value, and a value that is only blanks */
	{ "A:\r\nB:   \r\n\r\n", 0, { "A=", "B=" }, -1, false },
	/* a first line that starts with a blank: a malformed field */
	{ " x\r\n y\r\nA: b\r\n\r\n", 0, { "!x\r\n y", "A=b" }, -1, false },
	/* mbox separator */
	{ "From jdoe@example.com Mon Jan  1 00:00:00 2001\nA: b\n\n", 0,
	  { "!From jdoe@example.com Mon Jan  1 00:00:00 2001", "A=b" }, -1,
	  false },
	/* but the obsolete "From :" is a field */
	{ "From : x\n\n", 0, { "From=x" }, -1, false },
	/* NUL in a value: reported, kept */
	{ "A: x\0y\r\n\r\n", 10, { "A=x" }, -1, false },
	/* a bare CR inside a value is an ordinary byte */
	{ "A: x\ry\r\n\r\n", 0, { "A=x\ry" }, -1, false },
	/* field names: any printable ASCII but ':' */
	{ "X-!#$%&'*+-.^_`{|}~: v\r\n\r\n", 0, { "X-!#$%&'*+-.^_`{|}~=v" },
	  -1, false },
};

static void check_hcase(const hcase *c)
{
	size_t len = c->len != 0 ? c->len : strlen(c->msg);
	const uint8_t *msg = (const uint8_t *)c->msg;
	hdr_result r;
	size_t want = 0;
	while (want < 6 && c->fields[want] != NULL)
		want++;
	iterate(msg, len, &r);
	if (r.n != want)
		fail_msg("%s: %zu fields, want %zu", c->msg, r.n, want);
	for (size_t i = 0; i < want; i++) {
		const char *w = c->fields[i];
		if (w[0] == '!') {
			assert_true(r.f[i].malformed);
			/* the malformed "value" is the whole text; compare the
			 * beginning of it (the unfold removes line ends) */
			char exp[256];
			size_t k = 0;
			for (const char *p = w + 1; *p; p++)
				if (*p != '\r' && *p != '\n')
					exp[k++] = *p;
			exp[k] = '\0';
			assert_string_equal(r.value[i], exp);
			continue;
		}
		const char *eq = strchr(w, '=');
		assert_non_null(eq);
		char name[64];
		memcpy(name, w, (size_t)(eq - w));
		name[eq - w] = '\0';
		assert_false(r.f[i].malformed);
		if (!mail_field_is(msg, &r.f[i], name))
			fail_msg("%s: field %zu is not %s", c->msg, i, name);
		assert_string_equal(r.value[i], eq + 1);
	}
	size_t body = c->body_off < 0 ? len : (size_t)c->body_off;
	if (r.body_off != body)
		fail_msg("%s: body at %zu, want %zu", c->msg, r.body_off, body);
	assert_int_equal(r.no_separator, c->no_separator);
}

static void test_header_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++)
		check_hcase(&hcases[i]);
}

static void test_header_helpers(void **state)
{
	(void)state;
	const uint8_t *m = (const uint8_t *)"content-TYPE: text/plain\r\n\r\n";
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, m, strlen((const char *)m));
	assert_int_equal(mail_header_next(&it, &f), 1);
	assert_true(mail_field_is(m, &f, "Content-Type"));
	assert_true(mail_field_is(m, &f, "CONTENT-type"));
	assert_false(mail_field_is(m, &f, "Content-Typ"));
	assert_false(mail_field_is(m, &f, "Content-Types"));
	/* truncation of the unfolded value; the untruncated length back */
	char small[5];
	assert_int_equal(mail_field_unfold(m, &f, small, sizeof(small)), 10);
	assert_string_equal(small, "text");
	assert_int_equal(mail_field_unfold(m, &f, NULL, 0), 10);
	char one[1] = { 'x' };
	assert_int_equal(mail_field_unfold(m, &f, one, 1), 10);
	assert_int_equal(one[0], '\0');
	/* NUL inside the value: counted, copied */
	const uint8_t nul[] = "A: x\0y\r\n";
	mail_header_iter_init(&it, nul, sizeof(nul) - 1);
	assert_int_equal(mail_header_next(&it, &f), 1);
	assert_true(f.nul);
	assert_true(it.nul_seen);
	char v[8];
	assert_int_equal(mail_field_unfold(nul, &f, v, sizeof(v)), 3);
	assert_memory_equal(v, "x\0y", 4);
}

/* ------------------------------------------------------------ RFC 5322 App. A */

typedef struct appx {
	const char *name;
	const char *msg;
	const char *fields[12];
	const char *body;
} appx;

static const appx appendix[] = {
	{ "A.1.1",
	  "From: John Doe <jdoe@machine.example>\r\n"
	  "To: Mary Smith <mary@example.net>\r\n"
	  "Subject: Saying Hello\r\n"
	  "Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
	  "Message-ID: <1234@local.machine.example>\r\n"
	  "\r\n"
	  "This is a message just to say hello.\r\n"
	  "So, \"Hello\".\r\n",
	  { "From=John Doe <jdoe@machine.example>",
	    "To=Mary Smith <mary@example.net>", "Subject=Saying Hello",
	    "Date=Fri, 21 Nov 1997 09:55:06 -0600",
	    "Message-ID=<1234@local.machine.example>" },
	  "This is a message just to say hello.\r\nSo, \"Hello\".\r\n" },
	{ "A.1.2",
	  "From: \"Joe Q. Public\" <john.q.public@example.com>\r\n"
	  "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n"
	  "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n"
	  "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	  "Message-ID: <5678.21-Nov-1997@example.com>\r\n"
	  "\r\n"
	  "Hi everyone.\r\n",
	  { "From=\"Joe Q. Public\" <john.q.public@example.com>",
	    "To=Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
	    "Cc=<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
	    "Date=Tue, 1 Jul 2003 10:52:37 +0200",
	    "Message-ID=<5678.21-Nov-1997@example.com>" },
	  "Hi everyone.\r\n" },
	{ "A.1.3",
	  "From: Pete <pete@silly.example>\r\n"
	  "To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n"
	  "Cc: Undisclosed recipients:;\r\n"
	  "Date: Thu, 13 Feb 1969 23:32:54 -0330\r\n"
	  "Message-ID: <testabcd.1234@silly.example>\r\n"
	  "\r\n"
	  "Testing.\r\n",
	  { "From=Pete <pete@silly.example>",
	    "To=A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	    "Cc=Undisclosed recipients:;",
	    "Date=Thu, 13 Feb 1969 23:32:54 -0330",
	    "Message-ID=<testabcd.1234@silly.example>" },
	  "Testing.\r\n" },
	{ "A.3",
	  "Resent-From: Mary Smith <mary@example.net>\r\n"
	  "Resent-To: Jane Brown <j-brown@other.example>\r\n"
	  "Resent-Date: Mon, 24 Nov 1997 14:22:01 -0800\r\n"
	  "Resent-Message-ID: <78910@example.net>\r\n"
	  "From: John Doe <jdoe@machine.example>\r\n"
	  "To: Mary Smith <mary@example.net>\r\n"
	  "Subject: Saying Hello\r\n"
	  "Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
	  "Message-ID: <1234@local.machine.example>\r\n"
	  "\r\n"
	  "This is a message just to say hello.\r\n"
	  "So, \"Hello\".\r\n",
	  { "Resent-From=Mary Smith <mary@example.net>",
	    "Resent-To=Jane Brown <j-brown@other.example>",
	    "Resent-Date=Mon, 24 Nov 1997 14:22:01 -0800",
	    "Resent-Message-ID=<78910@example.net>",
	    "From=John Doe <jdoe@machine.example>",
	    "To=Mary Smith <mary@example.net>", "Subject=Saying Hello",
	    "Date=Fri, 21 Nov 1997 09:55:06 -0600",
	    "Message-ID=<1234@local.machine.example>" },
	  "This is a message just to say hello.\r\nSo, \"Hello\".\r\n" },
	{ "A.4",
	  "Received: from x.y.test\r\n"
	  "   by example.net\r\n"
	  "   via TCP\r\n"
	  "   with ESMTP\r\n"
	  "   id ABC12345\r\n"
	  "   for <mary@example.net>;  21 Nov 1997 10:05:43 -0600\r\n"
	  "Received: from node.example by x.y.test; 21 Nov 1997 10:01:22 -0600\r\n"
	  "From: John Doe <jdoe@node.example>\r\n"
	  "To: Mary Smith <mary@example.net>\r\n"
	  "Subject: Saying Hello\r\n"
	  "Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
	  "Message-ID: <1234@local.node.example>\r\n"
	  "\r\n"
	  "This is a message just to say hello.\r\n"
	  "So, \"Hello\".\r\n",
	  { "Received=from x.y.test   by example.net   via TCP   with ESMTP"
	    "   id ABC12345   for <mary@example.net>;  21 Nov 1997 10:05:43 -0600",
	    "Received=from node.example by x.y.test; 21 Nov 1997 10:01:22 -0600",
	    "From=John Doe <jdoe@node.example>",
	    "To=Mary Smith <mary@example.net>", "Subject=Saying Hello",
	    "Date=Fri, 21 Nov 1997 09:55:06 -0600",
	    "Message-ID=<1234@local.node.example>" },
	  "This is a message just to say hello.\r\nSo, \"Hello\".\r\n" },
	{ "A.5",
	  "From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n"
	  "To:A Group(Some people)\r\n"
	  "     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	  "         joe@example.org,\r\n"
	  "  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n"
	  "Cc:(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;\r\n"
	  "Date: Thu,\r\n"
	  "      13\r\n"
	  "        Feb\r\n"
	  "          1969\r\n"
	  "      23:32\r\n"
	  "               -0330 (Newfoundland Time)\r\n"
	  "Message-ID:              <testabcd.1234@silly.test>\r\n"
	  "\r\n"
	  "Testing.\r\n",
	  { "From=Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	    "To=A Group(Some people)     :Chris Jones <c@(Chris's host.)public.example>,"
	    "         joe@example.org,  John <jdoe@one.test> (my dear friend); (the end of the group)",
	    "Cc=(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;",
	    "Date=Thu,      13        Feb          1969      23:32"
	    "               -0330 (Newfoundland Time)",
	    "Message-ID=<testabcd.1234@silly.test>" },
	  "Testing.\r\n" },
	{ "A.6.1",
	  "From: Joe Q. Public <john.q.public@example.com>\r\n"
	  "To: Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example\r\n"
	  "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
	  "Message-ID: <5678.21-Nov-1997@example.com>\r\n"
	  "\r\n"
	  "Hi everyone.\r\n",
	  { "From=Joe Q. Public <john.q.public@example.com>",
	    "To=Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example",
	    "Date=Tue, 1 Jul 2003 10:52:37 +0200",
	    "Message-ID=<5678.21-Nov-1997@example.com>" },
	  "Hi everyone.\r\n" },
	{ "A.6.2",
	  "From: John Doe <jdoe@machine.example>\r\n"
	  "To: Mary Smith <mary@example.net>\r\n"
	  "Subject: Saying Hello\r\n"
	  "Date: 21 Nov 97 09:55:06 GMT\r\n"
	  "Message-ID: <1234@local.machine.example>\r\n"
	  "\r\n"
	  "This is a message just to say hello.\r\n"
	  "So, \"Hello\".\r\n",
	  { "From=John Doe <jdoe@machine.example>",
	    "To=Mary Smith <mary@example.net>", "Subject=Saying Hello",
	    "Date=21 Nov 97 09:55:06 GMT",
	    "Message-ID=<1234@local.machine.example>" },
	  "This is a message just to say hello.\r\nSo, \"Hello\".\r\n" },
	{ "A.6.3",
	  "From  : John Doe <jdoe@machine(comment).  example>\r\n"
	  "To    : Mary Smith\r\n"
	  "  \r\n"
	  "          <mary@example.net>\r\n"
	  "Subject     : Saying Hello\r\n"
	  "Date  : Fri, 21 Nov 1997 09(comment):   55  :  06 -0600\r\n"
	  "Message-ID  : <1234   @   local(blah)  .machine .example>\r\n"
	  "\r\n"
	  "This is a message just to say hello.\r\n"
	  "So, \"Hello\".\r\n",
	  { "From=John Doe <jdoe@machine(comment).  example>",
	    "To=Mary Smith            <mary@example.net>",
	    "Subject=Saying Hello",
	    "Date=Fri, 21 Nov 1997 09(comment):   55  :  06 -0600",
	    "Message-ID=<1234   @   local(blah)  .machine .example>" },
	  "This is a message just to say hello.\r\nSo, \"Hello\".\r\n" },
};

static void test_header_rfc5322_appendix(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(appendix) / sizeof(appendix[0]); i++) {
		const appx *a = &appendix[i];
		const uint8_t *m = (const uint8_t *)a->msg;
		size_t len = strlen(a->msg);
		hdr_result r;
		size_t want = 0;
		while (want < 12 && a->fields[want] != NULL)
			want++;
		iterate(m, len, &r);
		if (r.n != want)
			fail_msg("%s: %zu fields, want %zu", a->name, r.n, want);
		for (size_t k = 0; k < want; k++) {
			const char *eq = strchr(a->fields[k], '=');
			char name[64];
			memcpy(name, a->fields[k], (size_t)(eq - a->fields[k]));
			name[eq - a->fields[k]] = '\0';
			if (!mail_field_is(m, &r.f[k], name))
				fail_msg("%s: field %zu is not %s", a->name, k, name);
			if (strcmp(r.value[k], eq + 1) != 0)
				fail_msg("%s: %s: got \"%s\"", a->name, name,
					 r.value[k]);
		}
		assert_false(r.no_separator);
		assert_string_equal(a->msg + r.body_off, a->body);
		/* the same with bare LF line ends */
		char lf[2048];
		size_t n = 0;
		for (size_t k = 0; k < len; k++)
			if (a->msg[k] != '\r')
				lf[n++] = a->msg[k];
		hdr_result r2;
		iterate((const uint8_t *)lf, n, &r2);
		assert_int_equal(r2.n, want);
		for (size_t k = 0; k < want; k++)
			assert_string_equal(r2.value[k], r.value[k]);
	}
}

/* Every prefix of msg: the invariants hold and the fields that end before
 * the cut are the whole message's. */
static void check_prefixes(const uint8_t *msg, size_t len)
{
	hdr_result full, r;
	iterate(msg, len, &full);
	for (size_t cut = 0; cut <= len; cut++) {
		iterate(msg, cut, &r);
		assert_true(r.body_off <= cut);
		for (size_t k = 0; k < full.n && k < MAXF; k++) {
			const mail_field *f = &full.f[k];
			if (f->off + f->len > cut)
				break;
			/* a field that ends before the cut is followed by at
			 * least one byte when it ends earlier than the cut */
			if (f->off + f->len == cut && k + 1 < full.n)
				continue;
			assert_true(k < r.n);
			assert_int_equal(r.f[k].off, f->off);
			if (f->off + f->len < cut) {
				assert_int_equal(r.f[k].len, f->len);
				assert_string_equal(r.value[k], full.value[k]);
			}
		}
	}
}

static void test_header_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(appendix) / sizeof(appendix[0]); i++)
		check_prefixes((const uint8_t *)appendix[i].msg,
			       strlen(appendix[i].msg));
	for (size_t i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++)
		check_prefixes((const uint8_t *)hcases[i].msg,
			       hcases[i].len != 0 ? hcases[i].len
						  : strlen(hcases[i].msg));
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n fields "X-Field-k: value k" (every third one folded), then a body. */
static uint8_t *many_fields(size_t n, size_t *len_r)
{
	size_t cap = n * 64 + 64, len = 0;
	uint8_t *m = malloc(cap);
	assert_non_null(m);
	for (size_t k = 0; k < n; k++)
		len += (size_t)snprintf((char *)m + len, cap - len,
					k % 3 == 0 ? "X-Field-%zu: value\r\n %zu\r\n"
						   : "X-Field-%zu: value %zu\r\n",
					k, k);
	len += (size_t)snprintf((char *)m + len, cap - len, "\r\nbody\r\n");
	*len_r = len;
	return m;
}

static double time_fields(size_t n)
{
	size_t len;
	uint8_t *m = many_fields(n, &len);
	double t0 = cpu_now();
	mail_header_iter it;
	mail_field f;
	size_t count = 0;
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1)
		count++;
	double t = cpu_now() - t0;
	assert_int_equal(count, n);
	assert_int_equal(it.body_off, len - 6);
	free(m);
	return t;
}

static void test_header_linear(void **state)
{
	(void)state;
	/* linear: 4x the fields, about 4x the time (quadratic would be 16x);
	 * best of three against a loaded machine */
	double t1 = 1e9, t4 = 1e9;
	for (int r = 0; r < 3; r++) {
		double x = time_fields(100000), y = time_fields(400000);
		t1 = x < t1 ? x : t1;
		t4 = y < t4 ? y : t4;
	}
	if (t1 > 2.0 || t4 > 8 * t1 + 0.1)
		fail_msg("header iteration not linear: 100k %.3fs, 400k %.3fs",
			 t1, t4);
	/* one 10 MB field (S12) */
	size_t big = 10u << 20;
	uint8_t *m = malloc(big + 32);
	assert_non_null(m);
	memcpy(m, "Subject: ", 9);
	memset(m + 9, 'x', big);
	memcpy(m + 9 + big, "\r\n\r\nbody", 8);
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, m, big + 17);
	assert_int_equal(mail_header_next(&it, &f), 1);
	assert_int_equal(f.len, big + 11);
	assert_int_equal(mail_field_unfold(m, &f, NULL, 0), big);
	assert_int_equal(mail_header_next(&it, &f), 0);
	assert_int_equal(it.body_off, big + 13);
	free(m);
}

/* ------------------------------------------------------------ MIME */

/* Structural invariants of a tree over msg[0..len). */
static void check_tree(const mime_tree *t, size_t len)
{
	assert_true(t->n >= 1);
	for (size_t i = 0; i < t->n; i++) {
		const mime_part *p = &t->parts[i];
		assert_true(p->hdr_off <= p->body_off);
		assert_true(p->body_off <= p->end);
		assert_true(p->end <= len);
		assert_non_null(p->type);
		assert_non_null(p->subtype);
		assert_true(p->type[0] != '\0' && p->subtype[0] != '\0');
		if (i == 0) {
			assert_int_equal(p->parent, MIME_NONE);
			assert_int_equal(p->hdr_off, 0);
			assert_int_equal(p->depth, 0);
			assert_int_equal(p->end, len);
		} else {
			assert_true(p->parent < i);
			const mime_part *pp = &t->parts[p->parent];
			assert_int_equal(p->depth, pp->depth + 1);
			assert_true(p->hdr_off >= pp->body_off);
			assert_true(p->end <= pp->end);
		}
		size_t nc = 0, prev_end = p->body_off;
		for (uint32_t c = p->first_child; c != MIME_NONE;
		     c = t->parts[c].next_sibling) {
			assert_true(c > i && c < t->n);
			assert_int_equal(t->parts[c].parent, i);
			assert_true(t->parts[c].hdr_off >= prev_end);
			prev_end = t->parts[c].end;
			nc++;
		}
		assert_int_equal(nc, p->n_children);
	}
}

static mime_tree *parse_ok(const char *msg, size_t len)
{
	mime_tree *t = NULL;
	const char *err = NULL;
	mime_err e = mime_parse((const uint8_t *)msg, len, NULL, &t, &err);
	if (e != MIME_OK)
		fail_msg("mime_parse: %s: %s", mime_err_name(e), err);
	check_tree(t, len);
	return t;
}

static void assert_body(const char *msg, const mime_part *p, const char *want)
{
	size_t n = p->end - p->body_off;
	if (n != strlen(want) || memcmp(msg + p->body_off, want, n) != 0)
		fail_msg("body \"%.*s\", want \"%s\"", (int)n,
			 msg + p->body_off, want);
}

static const char rfc2046_example[] =
	"From: Nathaniel Borenstein <nsb@bellcore.com>\r\n"
	"To: Ned Freed <ned@innosoft.com>\r\n"
	"Date: Sun, 21 Mar 1993 23:56:48 -0800 (PST)\r\n"
	"Subject: Sample message\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-type: multipart/mixed; boundary=\"simple boundary\"\r\n"
	"\r\n"
	"This is the preamble.  It is to be ignored, though it\r\n"
	"is a handy place for composition agents to include an\r\n"
	"explanatory note to non-MIME conformant readers.\r\n"
	"\r\n"
	"--simple boundary\r\n"
	"\r\n"
	"This is implicitly typed plain US-ASCII text.\r\n"
	"It does NOT end with a linebreak.\r\n"
	"--simple boundary\r\n"
	"Content-type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"This is explicitly typed plain US-ASCII text.\r\n"
	"It DOES end with a linebreak.\r\n"
	"\r\n"
	"--simple boundary--\r\n"
	"\r\n"
	"This is the epilogue.  It is also to be ignored.\r\n";

static void test_mime_rfc2046(void **state)
{
	(void)state;
	const char *m = rfc2046_example;
	mime_tree *t = parse_ok(m, strlen(m));
	assert_int_equal(t->n, 3);
	assert_string_equal(t->parts[0].type, "multipart");
	assert_string_equal(t->parts[0].subtype, "mixed");
	assert_string_equal(t->parts[0].boundary, "simple boundary");
	assert_int_equal(t->parts[0].n_children, 2);
	assert_int_equal(t->parts[0].flags, 0);
	assert_string_equal(t->parts[1].type, "text");
	assert_string_equal(t->parts[1].subtype, "plain");
	assert_string_equal(t->parts[1].charset, "");
	assert_body(m, &t->parts[1],
		    "This is implicitly typed plain US-ASCII text.\r\n"
		    "It does NOT end with a linebreak.");
	assert_string_equal(t->parts[2].charset, "us-ascii");
	assert_body(m, &t->parts[2],
		    "This is explicitly typed plain US-ASCII text.\r\n"
		    "It DOES end with a linebreak.\r\n");
	assert_int_equal(t->parts[0].end, strlen(m));
	mime_tree_destroy(&t);
	assert_null(t);
	mime_tree_destroy(&t);
	mime_tree_destroy(NULL);
}

static const char nested_example[] =
	"From: a@example.org\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed;\n"
	"\tboundary=\"=_outer\\\"x\"  (a comment)\n"
	"\n"
	"--=_outer\"x\n"
	"Content-Type: multipart/alternative; boundary=inner\n"
	"\n"
	"--inner\n"
	"Content-Type: text/plain; charset=\"UTF-8\"\n"
	"Content-Transfer-Encoding: Quoted-Printable\n"
	"\n"
	"caf=C3=A9\n"
	"--inner\n"
	"Content-Type: TEXT/HTML; CHARSET=iso-8859-1\n"
	"\n"
	"<p>caf\xe9</p>\n"
	"--inner--\n"
	"--=_outer\"x\n"
	"Content-Type: application/pdf; name=\"ignored.pdf\"\n"
	"Content-Disposition: attachment;\n"
	"  filename=\"report \\\"q1\\\".pdf\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"JVBERi0=\n"
	"--=_outer\"x\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"Subject: inner message\n"
	"Content-Type: multipart/mixed; boundary=deep\n"
	"\n"
	"--deep\n"
	"\n"
	"deep text\n"
	"--deep--\n"
	"--=_outer\"x--\n";

static void test_mime_nested(void **state)
{
	(void)state;
	const char *m = nested_example;
	mime_tree *t = parse_ok(m, strlen(m));
	assert_int_equal(t->n, 8);
	const mime_part *p = t->parts;
	assert_string_equal(p[0].boundary, "=_outer\"x");
	assert_int_equal(p[0].n_children, 3);
	assert_string_equal(p[1].subtype, "alternative");
	assert_int_equal(p[1].parent, 0);
	assert_int_equal(p[1].n_children, 2);
	assert_string_equal(p[2].charset, "utf-8");
	assert_int_equal(p[2].cte, MIME_CTE_QP);
	assert_string_equal(p[2].cte_name, "quoted-printable");
	assert_body(m, &p[2], "caf=C3=A9");
	assert_string_equal(p[3].type, "text");
	assert_string_equal(p[3].subtype, "html");
	assert_string_equal(p[3].charset, "iso-8859-1");
	assert_int_equal(p[3].parent, 1);
	assert_body(m, &p[3], "<p>caf\xe9</p>");
	assert_string_equal(p[4].type, "application");
	assert_string_equal(p[4].disposition, "attachment");
	assert_string_equal(p[4].filename, "report \"q1\".pdf");
	assert_int_equal(p[4].cte, MIME_CTE_BASE64);
	assert_body(m, &p[4], "JVBERi0=");
	assert_string_equal(p[5].type, "message");
	assert_int_equal(p[5].n_children, 1);
	assert_int_equal(p[6].parent, 5);
	assert_int_equal(p[6].depth, 2);
	assert_string_equal(p[6].subtype, "mixed");
	assert_int_equal(p[6].hdr_off, p[5].body_off);
	assert_int_equal(p[7].depth, 3);
	assert_body(m, &p[7], "deep text");
	for (size_t i = 0; i < t->n; i++)
		if (p[i].flags != 0)
			fail_msg("part %zu flags %#x", i, p[i].flags);
	mime_tree_destroy(&t);
}

typedef struct mcase {
	const char *name, *msg;
	size_t nparts;
	uint32_t flags0, flags1; /* expected flags of parts 0 and 1 */
} mcase;

static const mcase mcases[] = {
	{ "no MIME", "Subject: x\n\nhello\n", 1, 0, 0 },
	{ "empty", "", 1, MIME_PART_HDR_NO_SEPARATOR, 0 },
	{ "no boundary", "Content-Type: multipart/mixed\n\n--x\n\nhi\n", 1,
	  MIME_PART_NO_BOUNDARY, 0 },
	{ "empty boundary", "Content-Type: multipart/mixed; boundary=\"\"\n\n--\n",
	  1, MIME_PART_NO_BOUNDARY, 0 },
	{ "bad content-type", "Content-Type: text\n\nx\n", 1,
	  MIME_PART_BAD_CTYPE, 0 },
	{ "bad params", "Content-Type: text/plain charset=x\n\nx\n", 1,
	  MIME_PART_BAD_PARAM, 0 },
	{ "duplicate content-type",
	  "Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=b\n\n--b\n",
	  1, MIME_PART_DUPLICATE, 0 },
	{ "base64 multipart",
	  "Content-Type: multipart/mixed; boundary=b\n"
	  "Content-Transfer-Encoding: base64\n\n--b\n\nx\n--b--\n",
	  1, MIME_PART_ENCODED_COMPOSITE, 0 },
	{ "unterminated", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n",
	  2, MIME_PART_UNTERMINATED, 0 },
	{ "unquoted boundary with =",
	  "Content-Type: multipart/mixed; boundary=----=_Part_1\n\n"
	  "------=_Part_1\n\nx\n------=_Part_1--\n",
	  2, 0, 0 },
	{ "malformed header",
	  " lead\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n",
	  2, MIME_PART_HDR_MALFORMED, 0 },
	{ "nul in header", "Subject: a\0b\n\nx", 1, MIME_PART_HDR_NUL, 0 },
	/* a delimiter that looks like a field ends the part's header */
	{ "boundary with a colon",
	  "Content-Type: multipart/mixed; boundary=\"a:b\"\n\n"
	  "--a:b\nContent-Type: text/plain\n--a:b\n\ny\n--a:b--\n",
	  3, 0, MIME_PART_HDR_NO_SEPARATOR },
	/* the delimiter after the header's end without an empty line */
	{ "header ended by a delimiter",
	  "Content-Type: multipart/mixed; boundary=b\n\n--b\nX: y\n--b--\n",
	  2, 0, MIME_PART_HDR_NO_SEPARATOR },
	/* digest children default to message/rfc822 */
	{ "digest",
	  "Content-Type: multipart/digest; boundary=b\n\n--b\n\nSubject: one\n\n1\n"
	  "--b\n\nSubject: two\n\n2\n--b--\n",
	  5, 0, 0 },
	/* RFC 2046 prefix match: anything after the boundary */
	{ "prefix match",
	  "Content-Type: multipart/mixed; boundary=b\n\n--b junk\n\nx\n--b--junk\n",
	  2, 0, 0 },
	/* the CTE of message/rfc822 must be an identity to look inside */
	{ "encoded message",
	  "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n",
	  1, MIME_PART_ENCODED_COMPOSITE, 0 },
	{ "long charset",
	  "Content-Type: text/plain; charset=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\nx",
	  1, MIME_PART_LONG_VALUE, 0 },
};

static void test_mime_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++) {
		const mcase *c = &mcases[i];
		size_t len = strlen(c->msg);
		if (strcmp(c->name, "nul in header") == 0)
			len = 16;
		mime_tree *t = parse_ok(c->msg, len);
		if (t->n != c->nparts)
			fail_msg("%s: %zu parts, want %zu", c->name, t->n,
				 c->nparts);
		if (t->parts[0].flags != c->flags0)
			fail_msg("%s: flags %#x, want %#x", c->name,
				 t->parts[0].flags, c->flags0);
		if (t->n > 1 && t->parts[1].flags != c->flags1)
			fail_msg("%s: part 1 flags %#x, want %#x", c->name,
				 t->parts[1].flags, c->flags1);
		mime_tree_destroy(&t);
	}
}

static void test_mime_params(void **state)
{
	(void)state;
	static const struct {
		const char *hdr, *filename, *charset;
	} cases[] = {
		/* RFC 2231 §4: charset and language, percent-encoded */
		{ "Content-Type: application/x-stuff;\n"
		  " title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A\n"
		  "Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.txt\n",
		  "\xe2\x82\xac rates.txt", "" },
		/* RFC 2231 §3: continuations */
		{ "Content-Type: message/external-body; access-type=URL;\n"
		  " name*0=\"ftp://\";\n name*1=\"cs.utk.edu/pub/moore/\";\n"
		  " name*2=\"bulk-mailer/bulk-mailer.tar\"\n",
		  "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar", "" },
		/* RFC 2231 §4.1: mixed encoded and plain segments */
		{ "Content-Type: application/x-stuff;\n"
		  " name*0*=us-ascii'en'This%20is%20even%20more%20;\n"
		  " name*1*=%2A%2A%2Afun%2A%2A%2A%20;\n name*2=\"isn't it!\"\n",
		  "This is even more ***fun*** isn't it!", "" },
		/* ISO-8859-1 to UTF-8 */
		{ "Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt\n",
		  "caf\xc3\xa9.txt", "" },
		/* another charset: the plain value is used */
		{ "Content-Disposition: attachment; filename=\"plain.txt\";\n"
		  " filename*=koi8-r''%C1%C2.txt\n",
		  "plain.txt", "" },
		/* an RFC 2231 value beats a plain one, in either order */
		{ "Content-Disposition: attachment; filename*=utf-8''ext.txt;"
		  " filename=plain.txt\n",
		  "ext.txt", "" },
		/* invalid UTF-8: the plain value */
		{ "Content-Disposition: attachment; filename=a.txt; filename*=utf-8''%FF.txt\n",
		  "a.txt", "" },
		/* a gap in the continuation: joined up to it */
		{ "Content-Type: text/plain; name*0=a; name*2=c; name*1=b\n",
		  "a", "" },
		/* a repeat stops too */
		{ "Content-Type: text/plain; name*0=a; name*0=x; name*1=b\n",
		  "a", "" },
		/* a missing charset'lang' prefix: the extended value is refused */
		{ "Content-Type: text/plain; name*=abc; name=def\n", "def", "" },
		/* Content-Disposition's filename beats Content-Type's name */
		{ "Content-Disposition: inline; filename=d.txt\n"
		  "Content-Type: text/plain; name=n.txt; charset=\"ISO-8859-15\"\n",
		  "d.txt", "iso-8859-15" },
		{ "Content-Type: text/plain; name=n.txt\n"
		  "Content-Disposition: inline\n",
		  "n.txt", "" },
		/* comments and folding between the pieces */
		{ "Content-Type: (c) text (d) / (e) plain (f) ; (g) charset (h) = (i)\n"
		  " \"utf-8\" (j)\n",
		  "", "utf-8" },
		/* the first of two parameters of the same name counts */
		{ "Content-Type: text/plain; charset=a; charset=b\n", "", "a" },
		/* bad percent escapes are kept */
		{ "Content-Disposition: attachment; filename*=utf-8''100%25%zz%4\n",
		  "100%%zz%4", "" },
		/* a NUL from %00 is dropped */
		{ "Content-Disposition: attachment; filename*=utf-8''a%00b\n",
		  "ab", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[1024];
		int n = snprintf(msg, sizeof(msg), "%s\nbody\n", cases[i].hdr);
		assert_true(n > 0 && (size_t)n < sizeof(msg));
		mime_tree *t = parse_ok(msg, (size_t)n);
		if (strcmp(t->parts[0].filename, cases[i].filename) != 0)
			fail_msg("case %zu: filename \"%s\", want \"%s\"", i,
				 t->parts[0].filename, cases[i].filename);
		assert_string_equal(t->parts[0].charset, cases[i].charset);
		mime_tree_destroy(&t);
	}
	/* a long file name is cut at a character boundary */
	char msg[8192];
	size_t n = (size_t)snprintf(msg, sizeof(msg),
				    "Content-Disposition: attachment; filename=\"");
	for (size_t k = 0; k < 700; k++) { /* 1400 bytes of "é" */
		msg[n++] = '\xc3';
		msg[n++] = '\xa9';
	}
	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "x\"\n\nbody\n");
	mime_tree *t = parse_ok(msg, n);
	assert_int_equal(strlen(t->parts[0].filename), MIME_FILENAME_MAX);
	assert_true(t->parts[0].flags & MIME_PART_LONG_VALUE);
	mime_tree_destroy(&t);
}

/* Boundary collisions: the outer multipart keeps its delimiters. */
static void test_mime_collisions(void **state)
{
	(void)state;
	static const char *const inner[] = { "b", "bb", "" };
	/* inner boundary equal to the outer one, longer (outer is its
	 * prefix), shorter (it is the outer's prefix) */
	static const char *const bounds[] = { "outer", "outer-x", "out" };
	/* with "outer" and "outer-x", the inner line "--outer" or
	 * "--outer-x" is itself a delimiter of "outer" (prefix match): one
	 * more part, "inner text"; with "out" it is text of the leaf */
	static const size_t nparts[] = { 4, 4, 3 };
	for (size_t i = 0; i < 3; i++) {
		char m[1024];
		int n = snprintf(m, sizeof(m),
			"Content-Type: multipart/mixed; boundary=outer\n\n"
			"--outer\n"
			"Content-Type: multipart/alternative; boundary=\"%s\"\n\n"
			"--%s\n\ninner text %s\n"
			"--outer\n\nsecond\n"
			"--outer--\n",
			bounds[i], bounds[i], inner[i]);
		mime_tree *t = parse_ok(m, (size_t)n);
		/* root, the colliding multipart (a leaf), "second" */
		assert_int_equal(t->n, nparts[i]);
		assert_int_equal(t->parts[0].n_children, nparts[i] - 1);
		assert_true(t->parts[1].flags & MIME_PART_BOUNDARY_COLLISION);
		assert_int_equal(t->parts[1].n_children, 0);
		assert_string_equal(t->parts[1].boundary, bounds[i]);
		assert_body(m, &t->parts[t->n - 1], "second");
		assert_int_equal(t->parts[0].flags, 0);
		mime_tree_destroy(&t);
	}
	/* no collision: distinct boundaries nest */
	const char *ok =
		"Content-Type: multipart/mixed; boundary=aa\n\n"
		"--aa\nContent-Type: multipart/mixed; boundary=ba\n\n"
		"--ba\n\nx\n--ba--\n--aa--\n";
	mime_tree *t = parse_ok(ok, strlen(ok));
	assert_int_equal(t->n, 3);
	mime_tree_destroy(&t);
	/* an outer delimiter closes an unterminated inner multipart */
	const char *unterm =
		"Content-Type: multipart/mixed; boundary=aa\n\n"
		"--aa\nContent-Type: multipart/mixed; boundary=ba\n\n"
		"--ba\n\ninner\n--aa\n\nouter\n--aa--\n";
	t = parse_ok(unterm, strlen(unterm));
	assert_int_equal(t->n, 4);
	assert_true(t->parts[1].flags & MIME_PART_UNTERMINATED);
	assert_body(unterm, &t->parts[2], "inner");
	assert_int_equal(t->parts[3].parent, 0);
	assert_body(unterm, &t->parts[3], "outer");
	mime_tree_destroy(&t);
	/* after the close delimiter, "--b" lines are epilogue text */
	const char *epi =
		"Content-Type: multipart/mixed; boundary=b\n\n"
		"--b\n\nx\n--b--\n--b\n\nnot a part\n";
	t = parse_ok(epi, strlen(epi));
	assert_int_equal(t->n, 2);
	assert_int_equal(t->parts[0].flags, 0);
	mime_tree_destroy(&t);
}

static void check_mime_prefixes(const char *m)
{
	size_t len = strlen(m);
	for (size_t cut = 0; cut <= len; cut++) {
		mime_tree *t = NULL;
		mime_err e = mime_parse((const uint8_t *)m, cut, NULL, &t, NULL);
		assert_int_equal(e, MIME_OK);
		check_tree(t, cut);
		mime_tree_destroy(&t);
	}
}

static void test_mime_prefixes(void **state)
{
	(void)state;
	check_mime_prefixes(rfc2046_example);
	check_mime_prefixes(nested_example);
	for (size_t i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++)
		check_mime_prefixes(mcases[i].msg);
}

/* n nested multiparts, boundaries b0000, b0001, ... (fixed width: "b1"
 * would be a prefix of "b10", a collision) */
static char *nested(size_t n, size_t *len_r)
{
	size_t cap = n * 96 + 64, len = 0;
	char *m = malloc(cap);
	assert_non_null(m);
	for (size_t k = 0; k < n; k++) {
		len += (size_t)snprintf(m + len, cap - len,
			"Content-Type: multipart/mixed; boundary=\"b%04zu\"\n\n--b%04zu\n",
			k, k);
	}
	len += (size_t)snprintf(m + len, cap - len, "\ndeepest\n");
	*len_r = len;
	return m;
}

static void test_mime_limits(void **state)
{
	(void)state;
	mime_tree *t = NULL;
	const char *err = NULL;
	size_t len;
	/* S12: 2000-deep nesting is refused with the depth error */
	char *m = nested(2000, &len);
	assert_int_equal(mime_parse((uint8_t *)m, len, NULL, &t, &err),
			 MIME_ERR_DEPTH);
	assert_null(t);
	assert_non_null(err);
	assert_non_null(strstr(err, "nest"));
	free(m);
	/* 100 levels below the message is the limit: 100 multiparts make
	 * depths 0..99 and the text part is at depth 100 */
	m = nested(100, &len);
	assert_int_equal(mime_parse((uint8_t *)m, len, NULL, &t, &err), MIME_OK);
	assert_int_equal(t->n, 101);
	assert_int_equal(t->parts[100].depth, 100);
	mime_tree_destroy(&t);
	free(m);
	m = nested(101, &len);
	assert_int_equal(mime_parse((uint8_t *)m, len, NULL, &t, &err),
			 MIME_ERR_DEPTH);
	free(m);
	/* a lower limit */
	mime_limits lim = { .max_depth = 3 };
	m = nested(3, &len);
	assert_int_equal(mime_parse((uint8_t *)m, len, &lim, &t, &err), MIME_OK);
	mime_tree_destroy(&t);
	free(m);
	m = nested(4, &len);
	assert_int_equal(mime_parse((uint8_t *)m, len, &lim, &t, &err),
			 MIME_ERR_DEPTH);
	free(m);
	/* message/rfc822 nesting counts too */
	char *chain = malloc(200 * 40 + 16);
	assert_non_null(chain);
	len = 0;
	for (size_t k = 0; k < 200; k++)
		len += (size_t)snprintf(chain + len, 200 * 40 + 16 - len,
					"Content-Type: message/rfc822\n\n");
	assert_int_equal(mime_parse((uint8_t *)chain, len, NULL, &t, &err),
			 MIME_ERR_DEPTH);
	assert_int_equal(mime_parse((uint8_t *)chain, 30 * 100, NULL, &t, &err),
			 MIME_OK);
	assert_int_equal(t->n, 101);
	assert_string_equal(t->parts[99].subtype, "rfc822");
	assert_string_equal(t->parts[100].type, "text"); /* empty header */
	mime_tree_destroy(&t);
	free(chain);
	/* header bytes of one part */
	mime_limits hl = { .max_header = 64 };
	/* 9 + 54 + 1 = 64 bytes, then 65 */
	const char *h = "Subject: 012345678901234567890123456789012345678901234567890123\n\nx";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &hl, &t, &err),
			 MIME_OK);
	mime_tree_destroy(&t);
	h = "Subject: 0123456789012345678901234567890123456789012345678901234\n\nx";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &hl, &t, &err),
			 MIME_ERR_HEADER);
	assert_null(t);
	/* a nested part's header over the default limit */
	size_t big = MIME_HEADER_MAX_DEFAULT + 10;
	char *bm = malloc(big + 200);
	assert_non_null(bm);
	len = (size_t)snprintf(bm, 200, "Content-Type: multipart/mixed; boundary=b\n\n--b\nX: ");
	memset(bm + len, 'a', big);
	len += big;
	len += (size_t)snprintf(bm + len, 200, "\n\nx\n--b--\n");
	assert_int_equal(mime_parse((uint8_t *)bm, len, NULL, &t, &err),
			 MIME_ERR_HEADER);
	free(bm);
	/* boundary length */
	mime_limits bl = { .max_boundary = 10 };
	h = "Content-Type: multipart/mixed; boundary=0123456789\n\n--0123456789\n\nx\n";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &bl, &t, &err),
			 MIME_OK);
	mime_tree_destroy(&t);
	h = "Content-Type: multipart/mixed; boundary=0123456789a\n\n--0123456789a\n\nx\n";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &bl, &t, &err),
			 MIME_ERR_BOUNDARY);
	/* but a long boundary parameter on a leaf is not an error */
	h = "Content-Type: text/plain; boundary=0123456789a\n\nx\n";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &bl, &t, &err),
			 MIME_OK);
	mime_tree_destroy(&t);
	/* parts */
	mime_limits pl = { .max_parts = 3 };
	h = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n1\n--b\n\n2\n--b--\n";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &pl, &t, &err),
			 MIME_OK);
	mime_tree_destroy(&t);
	h = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n1\n--b\n\n2\n--b\n\n3\n--b--\n";
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &pl, &t, &err),
			 MIME_ERR_PARTS);
	/* limits above their ceilings */
	mime_limits bad = { .max_depth = MIME_DEPTH_MAX_CEILING + 1 };
	assert_int_equal(mime_parse((const uint8_t *)h, strlen(h), &bad, &t, &err),
			 MIME_ERR_LIMITS);
	mime_limits def;
	mime_limits_default(&def);
	assert_int_equal(def.max_depth, 100);
	assert_int_equal(def.max_parts, 10000);
	assert_string_equal(mime_err_name(MIME_ERR_DEPTH), "depth");
}

/* n sibling parts in one multipart/mixed */
static char *many_parts(size_t n, size_t *len_r)
{
	size_t cap = n * 48 + 128, len = 0;
	char *m = malloc(cap);
	assert_non_null(m);
	len += (size_t)snprintf(m, cap,
		"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n");
	for (size_t k = 0; k < n; k++)
		len += (size_t)snprintf(m + len, cap - len,
					"--=_b\r\n\r\npart %zu\r\n", k);
	len += (size_t)snprintf(m + len, cap - len, "--=_b--\r\n");
	*len_r = len;
	return m;
}

static double time_parts(size_t n)
{
	size_t len;
	char *m = many_parts(n, &len);
	mime_limits lim = { .max_parts = (uint32_t)n + 1 };
	mime_tree *t = NULL;
	double t0 = cpu_now();
	assert_int_equal(mime_parse((uint8_t *)m, len, &lim, &t, NULL), MIME_OK);
	double dt = cpu_now() - t0;
	assert_int_equal(t->n, n + 1);
	assert_int_equal(t->parts[0].n_children, n);
	mime_tree_destroy(&t);
	free(m);
	return dt;
}

static void test_mime_linear(void **state)
{
	(void)state;
	/* best of three (fresh memory's page faults make single runs noisy);
	 * a quadratic scan would take many seconds at 200k parts */
	double t1 = 1e9, t4 = 1e9;
	for (int r = 0; r < 3; r++) {
		double a = time_parts(50000), b = time_parts(200000);
		t1 = a < t1 ? a : t1;
		t4 = b < t4 ? b : t4;
	}
	if (t1 > 2.0 || t4 > 8 * t1 + 0.3)
		fail_msg("MIME parsing not linear: 50k parts %.3fs, 200k %.3fs",
			 t1, t4);
	/* S12: a million parts with the default limits: refused quickly */
	size_t len;
	char *m = many_parts(1000000, &len);
	mime_tree *t = NULL;
	const char *err = NULL;
	double t0 = cpu_now();
	assert_int_equal(mime_parse((uint8_t *)m, len, NULL, &t, &err),
			 MIME_ERR_PARTS);
	assert_true(cpu_now() - t0 < 2.0);
	assert_null(t);
	free(m);
	/* 100k delimiter-like lines against 100 open boundaries sharing a
	 * long prefix: bounded by max_depth per line */
	size_t depth = 100, lines = 20000, cap = depth * 200 + lines * 200;
	m = malloc(cap);
	assert_non_null(m);
	len = 0;
	char pre[121];
	memset(pre, 'p', 120);
	pre[120] = '\0';
	for (size_t k = 0; k < depth - 1; k++)
		len += (size_t)snprintf(m + len, cap - len,
			"Content-Type: multipart/mixed; boundary=\"%s%03zu\"\n\n--%s%03zu\n",
			pre, k, pre, k);
	for (size_t k = 0; k < lines; k++)
		len += (size_t)snprintf(m + len, cap - len, "--%sxxx\n", pre);
	t0 = cpu_now();
	assert_int_equal(mime_parse((uint8_t *)m, len, NULL, &t, &err), MIME_OK);
	assert_true(cpu_now() - t0 < 5.0);
	assert_int_equal(t->n, depth);
	mime_tree_destroy(&t);
	free(m);
}

/* Every message of the shared corpus parses with the default limits, and
 * every header section iterates with the invariants. */
static size_t corpus_dir(const char *dir, size_t *parts_r)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	size_t n = 0;
	static uint8_t buf[1 << 22];
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		int pl = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_true(pl > 0 && (size_t)pl < sizeof(path));
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		size_t len = fread(buf, 1, sizeof(buf), f);
		assert_true(len < sizeof(buf));
		fclose(f);
		hdr_result r;
		iterate(buf, len, &r);
		mime_tree *t = NULL;
		const char *err = NULL;
		mime_err e = mime_parse(buf, len, NULL, &t, &err);
		if (e != MIME_OK)
			fail_msg("%s: %s", path, err);
		check_tree(t, len);
		*parts_r += t->n;
		mime_tree_destroy(&t);
		n++;
	}
	closedir(d);
	return n;
}

static void test_mime_corpus(void **state)
{
	(void)state;
	const char *root = getenv("AMP_TEST_CORPUS");
	char ham[4096], spam[4096];
	if (root == NULL || snprintf(ham, sizeof(ham), "%s/ham", root) < 0 ||
	    snprintf(spam, sizeof(spam), "%s/spam", root) < 0 ||
	    access(ham, R_OK) != 0) {
		if (getenv("CI") != NULL)
			fail_msg("mail corpus not found at %s",
				 root ? root : "(unset)");
		skip();
	}
	size_t parts = 0;
	size_t n = corpus_dir(ham, &parts) + corpus_dir(spam, &parts);
	assert_true(n > 0);
	print_message("corpus: %zu messages, %zu MIME parts\n", n, parts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_table),
		cmocka_unit_test(test_header_helpers),
		cmocka_unit_test(test_header_rfc5322_appendix),
		cmocka_unit_test(test_header_prefixes),
		cmocka_unit_test(test_header_linear),
		cmocka_unit_test(test_mime_rfc2046),
		cmocka_unit_test(test_mime_nested),
		cmocka_unit_test(test_mime_table),
		cmocka_unit_test(test_mime_params),
		cmocka_unit_test(test_mime_collisions),
		cmocka_unit_test(test_mime_prefixes),
		cmocka_unit_test(test_mime_limits),
		cmocka_unit_test(test_mime_linear),
		cmocka_unit_test(test_mime_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
