/*
 * test-smtp-reply.c — the outbound client's reply parser
 * (src/smtp/smtp-reply.c), TESTING.md E1: a table of valid and invalid
 * replies, the same fed one byte at a time and split at every offset,
 * and the limits (line length, line count, kept text).
 */
#include "test-common.h"

#include "smtp-reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct good_case {
	const char *in;
	unsigned code;
	const char *enh;
	size_t lines;
	const char *text;       /* lines joined by '\n' */
} good_case;

static const good_case good[] = {
	{ "220 mx.example ESMTP\r\n", 220, "", 1, "mx.example ESMTP" },
	{ "250 2.1.0 Ok\r\n", 250, "2.1.0", 1, "2.1.0 Ok" },
	{ "250\r\n", 250, "", 1, "" },
	{ "250 \r\n", 250, "", 1, "" },
	{ "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 250, "", 3,
	  "mx.example\nPIPELINING\nSIZE 1000" },
	{ "250-\r\n250\r\n", 250, "", 2, "\n" },
	/* bare LF accepted as a line end (documented leniency) */
	{ "550-5.1.1 no\n550 5.1.1 such user\n", 550, "5.1.1", 2,
	  "5.1.1 no\n5.1.1 such user" },
	{ "451 4.7.1\r\n", 451, "4.7.1", 1, "4.7.1" },
	{ "554 5.999.999 x\r\n", 554, "5.999.999", 1, "5.999.999 x" },
	/* enhanced codes not taken: wrong class, class 3, malformed */
	{ "550 2.1.0 x\r\n", 550, "", 1, "2.1.0 x" },
	{ "354 3.0.0 go\r\n", 354, "", 1, "3.0.0 go" },
	{ "250 2.1000.0 x\r\n", 250, "", 1, "2.1000.0 x" },
	{ "250 2.1.0x\r\n", 250, "", 1, "2.1.0x" },
	{ "250 2..0 x\r\n", 250, "", 1, "2..0 x" },
	{ "250 2.1. x\r\n", 250, "", 1, "2.1. x" },
	/* any other octet is text (users sanitise) */
	{ "250 caf\xc3\xa9\t\x1b[0m\r\n", 250, "", 1, "caf\xc3\xa9\t\x1b[0m" },
	{ "599 x\r\n", 599, "", 1, "x" },
	{ "200 x\r\n", 200, "", 1, "x" },
};

typedef struct bad_case {
	const char *in;
	size_t len;             /* 0: strlen */
	const char *why;
} bad_case;

static const bad_case bad[] = {
	{ "2x0 hi\r\n", 0, "reply code is not three digits" },
	{ "HTTP/1.1 400 Bad Request\r\n", 0, "reply code is not three digits" },
	{ "25\r\n", 0, "reply code is not three digits" },
	{ "\r\n", 0, "reply code is not three digits" },
	{ "199 x\r\n", 0, "reply code out of range" },
	{ "600 x\r\n", 0, "reply code out of range" },
	{ "099 x\r\n", 0, "reply code out of range" },
	{ "250_x\r\n", 0, "bad separator after the reply code" },
	{ "2500 x\r\n", 0, "bad separator after the reply code" },
	{ "250-a\r\n251 b\r\n", 0, "continuation with a different code" },
	{ "250-a\r\n550 b\r\n", 0, "continuation with a different code" },
	{ "250 a\0b\r\n", 9, "NUL byte in a reply" },
	{ "250 a\rb\r\n", 0, "bare CR in a reply" },
	{ "250 a\r\r\n", 0, "bare CR in a reply" },
	{ "250-a\r250 b\r\n", 0, "bare CR in a reply" },
};

static size_t case_len(const bad_case *b)
{
	return b->len != 0 ? b->len : strlen(b->in);
}

static void check_good(const good_case *g, const smtp_reply *r)
{
	assert_int_equal(r->code, g->code);
	assert_string_equal(r->enh, g->enh);
	assert_int_equal(r->n_lines, g->lines);
	assert_string_equal(r->text, g->text);
	assert_int_equal(r->text_len, strlen(g->text));
	assert_false(r->truncated);
}

static void test_good_table(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const smtp_reply *r;
		size_t used, n = strlen(good[i].in);
		smtp_reply_parser_init(p);
		assert_true(smtp_reply_parser_idle(p));
		assert_int_equal(smtp_reply_parse(p, (const uint8_t *)good[i].in,
						  n, &used, &r),
				 SMTP_REPLY_OK);
		assert_int_equal(used, n);
		check_good(&good[i], r);
		assert_true(smtp_reply_parser_idle(p));
	}
	free(p);
}

/* The same, one octet at a time: NEED_MORE until the last. */
static void test_good_bytewise(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const uint8_t *in = (const uint8_t *)good[i].in;
		size_t n = strlen(good[i].in);
		smtp_reply_parser_init(p);
		for (size_t k = 0; k < n; k++) {
			const smtp_reply *r;
			size_t used;
			smtp_reply_status st = smtp_reply_parse(p, in + k, 1, &used, &r);
			assert_int_equal(used, 1);
			if (k + 1 < n) {
				assert_int_equal(st, SMTP_REPLY_NEED_MORE);
				assert_false(smtp_reply_parser_idle(p));
			} else {
				assert_int_equal(st, SMTP_REPLY_OK);
				check_good(&good[i], r);
			}
		}
	}
	free(p);
}

static void test_bad_table(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const smtp_reply *r;
		size_t used, n = case_len(&bad[i]);
		/* whole */
		smtp_reply_parser_init(p);
		assert_int_equal(smtp_reply_parse(p, (const uint8_t *)bad[i].in,
						  n, &used, &r),
				 SMTP_REPLY_ERROR);
		assert_true(used <= n);
		assert_null(r);
		assert_string_equal(smtp_reply_parser_error(p), bad[i].why);
		/* sticky */
		assert_int_equal(smtp_reply_parse(p, (const uint8_t *)"250 ok\r\n",
						  8, &used, &r),
				 SMTP_REPLY_ERROR);
		assert_int_equal(used, 0);
		assert_false(smtp_reply_parser_idle(p));
		/* one octet at a time: the same error, never a reply */
		smtp_reply_parser_init(p);
		smtp_reply_status st = SMTP_REPLY_NEED_MORE;
		for (size_t k = 0; k < n && st == SMTP_REPLY_NEED_MORE; k++)
			st = smtp_reply_parse(p, (const uint8_t *)bad[i].in + k, 1,
					      &used, &r);
		assert_int_equal(st, SMTP_REPLY_ERROR);
		assert_string_equal(smtp_reply_parser_error(p), bad[i].why);
	}
	free(p);
}

/* E1: two replies back to back, split at every offset (and CRLF split
 * between its two octets): the same two replies, nothing swallowed. */
static void test_split_everywhere(void **state)
{
	(void)state;
	static const char two[] =
		"250-mx.example says hi\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
		"550 5.1.1 <b@example.net> no such user\r\n";
	size_t n = strlen(two), first = strlen(two) - 40;
	smtp_reply_parser *p = malloc(sizeof(*p));
	assert_int_equal(memcmp(two + first, "550", 3), 0);
	for (size_t cut = 0; cut <= n; cut++) {
		const uint8_t *in = (const uint8_t *)two;
		const smtp_reply *r;
		size_t used, off = 0, got = 0;
		smtp_reply_parser_init(p);
		size_t pieces[2] = { cut, n - cut };
		for (int k = 0; k < 2; k++) {
			size_t end = off + pieces[k];
			while (off < end) {
				smtp_reply_status st = smtp_reply_parse(
					p, in + off, end - off, &used, &r);
				assert_int_not_equal(st, SMTP_REPLY_ERROR);
				off += used;
				if (st == SMTP_REPLY_OK) {
					got++;
					if (got == 1) {
						assert_int_equal(off, first);
						assert_int_equal(r->code, 250);
						assert_int_equal(r->n_lines, 3);
						assert_string_equal(r->text,
							"mx.example says hi\nPIPELINING\n8BITMIME");
					} else {
						assert_int_equal(off, n);
						assert_int_equal(r->code, 550);
						assert_string_equal(r->enh, "5.1.1");
					}
				}
			}
		}
		assert_int_equal(got, 2);
		assert_true(smtp_reply_parser_idle(p));
	}
	free(p);
}

/* E1: the line limit, with its CRLF, exactly. */
static void test_line_limit(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	char *line = malloc(SMTP_REPLY_LINE_MAX + 8);
	const smtp_reply *r;
	size_t used;
	/* SMTP_REPLY_LINE_MAX octets with CRLF: accepted */
	memset(line, 'a', SMTP_REPLY_LINE_MAX);
	memcpy(line, "250 ", 4);
	memcpy(line + SMTP_REPLY_LINE_MAX - 2, "\r\n", 2);
	smtp_reply_parser_init(p);
	assert_int_equal(smtp_reply_parse(p, (uint8_t *)line, SMTP_REPLY_LINE_MAX,
					  &used, &r),
			 SMTP_REPLY_OK);
	assert_int_equal(r->line[0].len, SMTP_REPLY_LINE_MAX - 6);
	/* one more: refused, and before the LF arrives */
	memset(line, 'a', SMTP_REPLY_LINE_MAX + 1);
	memcpy(line, "250 ", 4);
	smtp_reply_parser_init(p);
	assert_int_equal(smtp_reply_parse(p, (uint8_t *)line, SMTP_REPLY_LINE_MAX - 1,
					  &used, &r),
			 SMTP_REPLY_NEED_MORE);
	assert_int_equal(smtp_reply_parse(p, (uint8_t *)line, 1, &used, &r),
			 SMTP_REPLY_ERROR);
	assert_string_equal(smtp_reply_parser_error(p), "reply line too long");
	/* a megabyte without LF: refused at the limit, nothing more read */
	size_t big = 1u << 20;
	char *mb = malloc(big);
	memset(mb, 'x', big);
	memcpy(mb, "220 ", 4);
	smtp_reply_parser_init(p);
	assert_int_equal(smtp_reply_parse(p, (uint8_t *)mb, big, &used, &r),
			 SMTP_REPLY_ERROR);
	assert_int_equal(used, SMTP_REPLY_LINE_MAX - 1);
	free(mb);
	free(line);
	free(p);
}

/* E1: 10,000 continuation lines are refused at line 129. */
static void test_many_lines(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	const smtp_reply *r;
	size_t used, total = 0;
	smtp_reply_parser_init(p);
	smtp_reply_status st = SMTP_REPLY_NEED_MORE;
	unsigned i;
	for (i = 0; i < 10000 && st == SMTP_REPLY_NEED_MORE; i++) {
		char l[64];
		int n = snprintf(l, sizeof(l), "250-line %u\r\n", i);
		st = smtp_reply_parse(p, (uint8_t *)l, (size_t)n, &used, &r);
		total += used;
	}
	assert_int_equal(st, SMTP_REPLY_ERROR);
	assert_int_equal(i, SMTP_REPLY_LINES_MAX + 1);
	/* every line before the refused one was taken whole */
	assert_true(total >= (size_t)SMTP_REPLY_LINES_MAX * 13u);
	assert_string_equal(smtp_reply_parser_error(p), "too many lines in one reply");

	/* exactly SMTP_REPLY_LINES_MAX lines: fine */
	smtp_reply_parser_init(p);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++) {
		char l[64];
		int n = snprintf(l, sizeof(l), "250%cline %u\r\n",
				 i + 1 < SMTP_REPLY_LINES_MAX ? '-' : ' ', i);
		st = smtp_reply_parse(p, (uint8_t *)l, (size_t)n, &used, &r);
		assert_int_equal(st, i + 1 < SMTP_REPLY_LINES_MAX
					     ? SMTP_REPLY_NEED_MORE : SMTP_REPLY_OK);
	}
	assert_int_equal(r->n_lines, SMTP_REPLY_LINES_MAX);
	size_t len;
	const char *t = smtp_reply_line_text(r, 5, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(t, "line 5", 6);
	free(p);
}

/* More text than SMTP_REPLY_KEEP_MAX: kept up to the limit, marked. */
static void test_keep_limit(void **state)
{
	(void)state;
	smtp_reply_parser *p = malloc(sizeof(*p));
	const smtp_reply *r = NULL;
	size_t used;
	char l[1100];
	smtp_reply_parser_init(p);
	for (unsigned i = 0; i < 20; i++) {
		memset(l, 'a' + (int)i, sizeof(l));
		memcpy(l, i < 19 ? "250-" : "250 ", 4);
		memcpy(l + 1000, "\r\n", 2);
		smtp_reply_status st = smtp_reply_parse(p, (uint8_t *)l, 1002,
							&used, &r);
		assert_int_equal(st, i < 19 ? SMTP_REPLY_NEED_MORE : SMTP_REPLY_OK);
	}
	assert_true(r->truncated);
	assert_int_equal(r->n_lines, 20);
	assert_int_equal(r->text_len, SMTP_REPLY_KEEP_MAX);
	assert_int_equal(strlen(r->text), SMTP_REPLY_KEEP_MAX);
	size_t len;
	smtp_reply_line_text(r, 19, &len);
	assert_int_equal(len, 0);
	smtp_reply_line_text(r, 0, &len);
	assert_int_equal(len, 996);
	free(p);
}

/* "250-" and nothing more: not idle (the client reports it at EOF). */
static void test_partial(void **state)
{
	(void)state;
	smtp_reply_parser p;
	const smtp_reply *r;
	size_t used;
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parse(&p, (uint8_t *)"250-a\r\n", 7, &used, &r),
			 SMTP_REPLY_NEED_MORE);
	assert_false(smtp_reply_parser_idle(&p));
	smtp_reply_parser_init(&p);
	assert_int_equal(smtp_reply_parse(&p, (uint8_t *)"25", 2, &used, &r),
			 SMTP_REPLY_NEED_MORE);
	assert_false(smtp_reply_parser_idle(&p));
	assert_int_equal(smtp_reply_parse(&p, (uint8_t *)"0 ok\r", 5, &used, &r),
			 SMTP_REPLY_NEED_MORE);
	assert_int_equal(smtp_reply_parse(&p, (uint8_t *)"\n220", 4, &used, &r),
			 SMTP_REPLY_OK);
	assert_int_equal(used, 1);
	assert_string_equal(r->text, "ok");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_table),
		cmocka_unit_test(test_good_bytewise),
		cmocka_unit_test(test_bad_table),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_many_lines),
		cmocka_unit_test(test_keep_limit),
		cmocka_unit_test(test_partial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
