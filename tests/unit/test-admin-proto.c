/*
 * test-admin-proto.c — src/daemon/admin-proto.c, the admin channel's
 * wire format, three ways (STYLE.md "Tests"): a table of valid request
 * lines with their fields and one of refused lines with their reasons;
 * the same cases fed to the reader whole, one byte at a time and all in
 * one stream; then the limits (an over-long line is refused once and the
 * next one read), the client's request formatter, the server's response
 * lines and their classification.  tests/fuzz/fuzz-admin.c is the third
 * way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admin-proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct good {
	const char *line;  /* with its LF */
	size_t n;
	const char *f[6];
} good;

static const good goods[] = {
	{ "help\n", 1, { "help" } },
	{ "map\tlist\taccess\n", 3, { "map", "list", "access" } },
	{ "map\tadd\taccess\t192.0.2.7\tREJECT spam source\n", 5,
	  { "map", "add", "access", "192.0.2.7", "REJECT spam source" } },
	{ "map\ttest\taccess\t\r\n", 4, { "map", "test", "access", "" } },
	{ "map\tadd\trelay\texample.net\t\n", 5,
	  { "map", "add", "relay", "example.net", "" } },
	{ "map\ttest\tvirtual\tj\xc3\xb6rg@example.org\n", 4,
	  { "map", "test", "virtual", "j\xc3\xb6rg@example.org" } },
	{ "a\t\t\tb\n", 4, { "a", "", "", "b" } },
	{ "x \xf0\x9f\x93\xa8 y\n", 1, { "x \xf0\x9f\x93\xa8 y" } },
};

typedef struct bad {
	const char *line;
	size_t len;        /* 0: strlen */
	const char *why;
} bad;

static const bad bads[] = {
	{ "\n", 0, "empty request" },
	{ "\r\n", 0, "empty request" },
	{ "\tmap\n", 0, "empty command" },
	{ "map\tadd\ta\x01\n", 0, "a control character in the request" },
	{ "map\r\tlist\n", 0, "a control character in the request" },
	{ "map\x7f\n", 0, "a control character in the request" },
	{ "map\0list\n", 9, "a NUL byte in the request" },
	{ "map \xc3\n", 0, "invalid UTF-8 in the request" },
	{ "\xc0\x80\n", 0, "invalid UTF-8 in the request" },        /* overlong */
	{ "\xed\xa0\x80\n", 0, "invalid UTF-8 in the request" },    /* surrogate */
	{ "\xf4\x90\x80\x80\n", 0, "invalid UTF-8 in the request" },/* > U+10FFFF */
	{ "\xff\n", 0, "invalid UTF-8 in the request" },
	{ "1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t16\t17\n", 0,
	  "too many fields in the request" },
};

static size_t blen(const bad *b)
{
	return b->len != 0 ? b->len : strlen(b->line);
}

static void check_good(const good *g, const admin_req *r)
{
	if (r->n != g->n)
		fail_msg("'%s': %zu fields, want %zu", g->line, r->n, g->n);
	for (size_t i = 0; i < g->n; i++) {
		assert_string_equal(r->f[i], g->f[i]);
		assert_int_equal(r->len[i], strlen(g->f[i]));
	}
}

/* Feed len bytes in pieces of `step` (0: all at once); collect results. */
typedef struct outcome {
	int kind;          /* ADMIN_REQ or ADMIN_BAD */
	admin_req req;
	char copy[ADMIN_LINE_MAX + 16];
	const char *why;
} outcome;

static size_t feed(admin_reader *rd, const char *data, size_t len,
		   size_t step, outcome *out, size_t max)
{
	size_t n = 0;
	for (size_t off = 0; off < len;) {
		size_t k = step == 0 || len - off < step ? len - off : step;
		const uint8_t *p = (const uint8_t *)data + off;
		size_t left = k;
		while (left > 0) {
			admin_req r;
			const char *why = NULL;
			size_t before = left;
			int rc = admin_reader_next(rd, &p, &left, &r, &why);
			if (rc == ADMIN_MORE) {
				assert_int_equal(left, 0);
				break;
			}
			assert_true(left < before); /* progress */
			assert_true(n < max);
			out[n].kind = rc;
			out[n].why = why;
			if (rc == ADMIN_REQ) {
				/* fields live in the reader until the next
				 * call: copy them */
				size_t o = 0;
				out[n].req.n = r.n;
				for (size_t i = 0; i < r.n; i++) {
					memcpy(out[n].copy + o, r.f[i], r.len[i] + 1);
					out[n].req.f[i] = out[n].copy + o;
					out[n].req.len[i] = r.len[i];
					o += r.len[i] + 1;
				}
			}
			n++;
		}
		off += k;
	}
	return n;
}

static void test_table(void **state)
{
	(void)state;
	static outcome out[64];
	static const size_t steps[] = { 0, 1, 2, 7 };
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
			admin_reader rd;
			admin_reader_init(&rd);
			size_t n = feed(&rd, goods[i].line, strlen(goods[i].line),
					steps[s], out, 64);
			assert_int_equal(n, 1);
			assert_int_equal(out[0].kind, ADMIN_REQ);
			check_good(&goods[i], &out[0].req);
		}
		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			admin_reader rd;
			admin_reader_init(&rd);
			size_t n = feed(&rd, bads[i].line, blen(&bads[i]),
					steps[s], out, 64);
			assert_int_equal(n, 1);
			assert_int_equal(out[0].kind, ADMIN_BAD);
			if (strcmp(out[0].why, bads[i].why) != 0)
				fail_msg("bad case %zu: '%s', want '%s'", i,
					 out[0].why, bads[i].why);
		}
	}
}

/* Every case in one stream: the reader stays in step after each refusal. */
static void test_stream(void **state)
{
	(void)state;
	static char all[8192];
	static outcome out[64];
	size_t len = 0;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		memcpy(all + len, goods[i % (sizeof(goods) / sizeof(goods[0]))].line,
		       strlen(goods[i % (sizeof(goods) / sizeof(goods[0]))].line));
		len += strlen(goods[i % (sizeof(goods) / sizeof(goods[0]))].line);
		memcpy(all + len, bads[i].line, blen(&bads[i]));
		len += blen(&bads[i]);
	}
	for (size_t step = 0; step < 4; step++) {
		admin_reader rd;
		admin_reader_init(&rd);
		size_t n = feed(&rd, all, len, step, out, 64);
		assert_int_equal(n, 2 * (sizeof(bads) / sizeof(bads[0])));
		for (size_t i = 0; i < n; i += 2) {
			assert_int_equal(out[i].kind, ADMIN_REQ);
			check_good(&goods[(i / 2) % (sizeof(goods) / sizeof(goods[0]))],
				   &out[i].req);
			assert_int_equal(out[i + 1].kind, ADMIN_BAD);
			assert_string_equal(out[i + 1].why, bads[i / 2].why);
		}
	}
}

static void test_long_lines(void **state)
{
	(void)state;
	static outcome out[8];
	size_t big = 3 * ADMIN_LINE_MAX;
	char *s = malloc(big + 64);
	assert_non_null(s);
	for (size_t step = 0; step < 3; step++) {
		static const size_t steps[] = { 0, 1, 1000 };
		/* exactly at the limit: accepted; one more byte: refused once,
		 * the rest of the line dropped, the next line read */
		size_t len = 0;
		memset(s, 'a', ADMIN_LINE_MAX);
		len = ADMIN_LINE_MAX;
		s[len++] = '\n';
		memset(s + len, 'b', ADMIN_LINE_MAX + 1);
		len += ADMIN_LINE_MAX + 1;
		memset(s + len, 'c', ADMIN_LINE_MAX);
		len += ADMIN_LINE_MAX;
		s[len++] = '\n';
		memcpy(s + len, "help\n", 5);
		len += 5;
		admin_reader rd;
		admin_reader_init(&rd);
		size_t n = feed(&rd, s, len, steps[step], out, 8);
		assert_int_equal(n, 3);
		assert_int_equal(out[0].kind, ADMIN_REQ);
		assert_int_equal(out[0].req.len[0], ADMIN_LINE_MAX);
		assert_int_equal(out[1].kind, ADMIN_BAD);
		assert_string_equal(out[1].why, "request line longer than 8192 bytes");
		assert_int_equal(out[2].kind, ADMIN_REQ);
		assert_string_equal(out[2].req.f[0], "help");
		/* a CRLF line whose CR is byte 8193 is too long */
		memset(s, 'a', ADMIN_LINE_MAX);
		memcpy(s + ADMIN_LINE_MAX, "\r\nhelp\n", 7);
		admin_reader_init(&rd);
		n = feed(&rd, s, ADMIN_LINE_MAX + 7, steps[step], out, 8);
		assert_int_equal(n, 2);
		assert_int_equal(out[0].kind, ADMIN_BAD);
		assert_int_equal(out[1].kind, ADMIN_REQ);
	}
	free(s);
}

static void test_format_request(void **state)
{
	(void)state;
	char out[ADMIN_LINE_MAX + 2];
	size_t len;
	const char *why;
	const char *f[] = { "map", "add", "access", "192.0.2.7", "REJECT spam" };
	assert_int_equal(admin_format_request(f, 5, out, sizeof(out), &len, &why),
			 0);
	assert_string_equal(out, "map\tadd\taccess\t192.0.2.7\tREJECT spam\n");
	assert_int_equal(len, strlen(out));
	/* it reads back as the same fields */
	admin_req r;
	out[len - 1] = '\0';
	assert_int_equal(admin_parse_line(out, len - 1, &r, &why), 0);
	assert_int_equal(r.n, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(r.f[i], f[i]);

	const char *tab[] = { "map", "a\tb" };
	assert_int_equal(admin_format_request(tab, 2, out, sizeof(out), &len, &why),
			 -1);
	assert_string_equal(why, "a TAB in an argument");
	const char *nl[] = { "map", "a\nb" };
	assert_int_equal(admin_format_request(nl, 2, out, sizeof(out), &len, &why),
			 -1);
	const char *empty[] = { "" };
	assert_int_equal(admin_format_request(empty, 1, out, sizeof(out), &len,
					      &why), -1);
	const char *utf[] = { "\xc3" };
	assert_int_equal(admin_format_request(utf, 1, out, sizeof(out), &len,
					      &why), -1);
	static char big[ADMIN_LINE_MAX + 1];
	memset(big, 'x', ADMIN_LINE_MAX);
	const char *lg[] = { "m", big };
	assert_int_equal(admin_format_request(lg, 2, out, sizeof(out), &len, &why),
			 -1);
	assert_string_equal(why, "request line longer than 8192 bytes");
	const char *small[] = { "help" };
	assert_int_equal(admin_format_request(small, 1, out, 5, &len, &why), -1);
	assert_int_equal(admin_format_request(small, 1, out, 6, &len, &why), 0);
	const char *many[17];
	for (size_t i = 0; i < 17; i++)
		many[i] = "x";
	assert_int_equal(admin_format_request(many, 17, out, sizeof(out), &len,
					      &why), -1);
}

static void test_reply(void **state)
{
	(void)state;
	char out[64];
	const char *t;
	assert_int_equal(admin_format_reply(out, sizeof(out), "ok", "", false), 3);
	assert_string_equal(out, "ok\n");
	admin_format_reply(out, sizeof(out), "error", "bad\nline\x01\xff", false);
	assert_string_equal(out, "error bad?line??\n");
	admin_format_reply(out, sizeof(out), "*", "a\tb", true);
	assert_string_equal(out, "* a\tb\n");
	admin_format_reply(out, sizeof(out), "*", "a\tb", false);
	assert_string_equal(out, "* a b\n");
	/* cut to fit, never inside a character */
	size_t n = admin_format_reply(out, 12, "ok", "\xc3\xa9\xc3\xa9\xc3\xa9"
				      "\xc3\xa9\xc3\xa9", false);
	assert_int_equal(n, 12);
	assert_memory_equal(out, "ok \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n", 12);
	n = admin_format_reply(out, 11, "ok", "\xc3\xa9\xc3\xa9\xc3\xa9", false);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "ok \xc3\xa9\xc3\xa9\xc3\xa9\n", 10);
	assert_int_equal(admin_format_reply(out, 3, "ok", "x", false), 3);
	assert_int_equal(admin_format_reply(out, 2, "ok", "x", false), 0);

	assert_int_equal(admin_line_classify("ok", &t), ADMIN_LINE_OK);
	assert_string_equal(t, "");
	assert_int_equal(admin_line_classify("ok added", &t), ADMIN_LINE_OK);
	assert_string_equal(t, "added");
	assert_int_equal(admin_line_classify("error no", &t), ADMIN_LINE_ERROR);
	assert_string_equal(t, "no");
	assert_int_equal(admin_line_classify("* file\t3", &t), ADMIN_LINE_DATA);
	assert_string_equal(t, "file\t3");
	assert_int_equal(admin_line_classify("okay", &t), ADMIN_LINE_BAD);
	assert_int_equal(admin_line_classify("", &t), ADMIN_LINE_BAD);
	assert_int_equal(admin_line_classify("**", &t), ADMIN_LINE_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_format_request),
		cmocka_unit_test(test_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
