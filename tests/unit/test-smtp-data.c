/*
 * test-smtp-data.c — src/smtp/smtp-data: the DATA reader.  TESTING.md S3
 * (every smuggling variant, followed by a smuggled transaction: one end
 * only, at the real CRLF.CRLF), dot-unstuffing, the first line, S11 (size
 * over the limit: counted, discarded, the end still found), S2 (a 100 KB
 * line), and every message fed in one piece, byte by byte, split at every
 * point and in random pieces with the same result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "smtp-data.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct result {
	uint8_t *out;
	size_t out_len, out_cap;
	size_t consumed;
	bool done, bare, too_big, too_long;
	uint64_t size;
} result;

static void collect(void *arg, const uint8_t *d, size_t n)
{
	result *r = arg;
	assert_true(n > 0);
	if (r->out_len + n > r->out_cap) {
		r->out_cap = (r->out_len + n) * 2;
		r->out = realloc(r->out, r->out_cap);
		assert_non_null(r->out);
	}
	memcpy(r->out + r->out_len, d, n);
	r->out_len += n;
}

static void result_free(result *r)
{
	free(r->out);
	memset(r, 0, sizeof(*r));
}

typedef struct opts {
	smtp_data_policy policy;
	uint64_t max_size;
	size_t line_max;
} opts;

static const opts REJECT = { SMTP_DATA_REJECT_BARE, 0, 0 };
static const opts NORMAL = { SMTP_DATA_NORMALISE, 0, 0 };

/* Feed in[0..len) in pieces that end at cuts[0..ncuts) (increasing), then
 * the rest.  Every piece before the end must be consumed whole; once
 * done, nothing more is consumed. */
static void run_cuts(const uint8_t *in, size_t len, const opts *o,
		     const size_t *cuts, size_t ncuts, result *res)
{
	smtp_data_reader r;
	memset(res, 0, sizeof(*res));
	smtp_data_init(&r, o->policy, o->max_size, o->line_max, collect, res);
	size_t from = 0;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : len;
		bool done = false;
		size_t used = smtp_data_feed(&r, in + from, to - from, &done);
		if (res->done) {
			assert_int_equal(used, 0);
			assert_true(done);
		} else if (done) {
			res->done = true;
			res->consumed += used;
		} else {
			assert_int_equal(used, to - from);
			res->consumed += used;
		}
		from = to;
	}
	res->bare = r.bare_seen;
	res->too_big = r.too_big;
	res->too_long = r.line_too_long;
	res->size = r.size;
	assert_int_equal(r.done, res->done);
	if (res->done) {
		bool done = false;
		size_t before = res->out_len;
		assert_int_equal(smtp_data_feed(&r, (const uint8_t *)"x\r\n.\r\n",
						6, &done),
				 0);
		assert_true(done);
		assert_int_equal(res->out_len, before);
	}
}

static void run_one(const uint8_t *in, size_t len, const opts *o,
		    result *res)
{
	run_cuts(in, len, o, NULL, 0, res);
}

static void assert_same(const result *a, const result *b)
{
	assert_int_equal(a->consumed, b->consumed);
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->bare, b->bare);
	assert_int_equal(a->too_big, b->too_big);
	assert_int_equal(a->too_long, b->too_long);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->out_len, b->out_len);
	if (a->out_len > 0)
		assert_memory_equal(a->out, b->out, a->out_len);
}

/* One feed, byte by byte, split at every point, random pieces: all the
 * same; returns the one-feed result. */
static void run_all_ways(const uint8_t *in, size_t len, const opts *o,
			 result *res)
{
	result other;
	run_one(in, len, o, res);

	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run_cuts(in, len, o, cuts, len, &other);
	assert_same(res, &other);
	result_free(&other);

	for (size_t k = 0; k <= len; k++) {
		run_cuts(in, len, o, &k, 1, &other);
		assert_same(res, &other);
		result_free(&other);
	}

	srand(7);
	for (int round = 0; round < 20; round++) {
		size_t n = 0, at = 0;
		while (at < len) {
			at += 1 + (size_t)rand() % 7;
			if (at > len)
				at = len;
			cuts[n++] = at;
		}
		run_cuts(in, len, o, cuts, n, &other);
		assert_same(res, &other);
		result_free(&other);
	}
	free(cuts);
}

static void expect(const char *in, size_t in_len, const opts *o,
		   size_t consumed, const char *out, size_t out_len, bool bare)
{
	result res;
	run_all_ways((const uint8_t *)in, in_len, o, &res);
	assert_true(res.done);
	assert_int_equal(res.consumed, consumed);
	assert_int_equal(res.out_len, out_len);
	if (out_len > 0)
		assert_memory_equal(res.out, out, out_len);
	assert_int_equal(res.size, out_len);
	assert_int_equal(res.bare, bare);
	assert_false(res.too_big);
	assert_false(res.too_long);
	result_free(&res);
}

#define EXPECT(in, o, consumed, out, bare) \
	expect(in, sizeof(in) - 1, o, consumed, out, sizeof(out) - 1, bare)

static void test_basic(void **state)
{
	(void)state;
	EXPECT("Subject: x\r\n\r\nbody\r\n.\r\n", &REJECT, 23,
	       "Subject: x\r\n\r\nbody\r\n", false);
	/* the first line: DATA's CRLF precedes it */
	EXPECT(".\r\n", &REJECT, 3, "", false);
	EXPECT(".\r\nMAIL FROM:<a@b>\r\n", &REJECT, 3, "", false);
	EXPECT("\r\n.\r\n", &REJECT, 5, "\r\n", false);
	EXPECT("..\r\n.\r\n", &REJECT, 7, ".\r\n", false);
	EXPECT(".x\r\n.\r\n", &REJECT, 7, "x\r\n", false);
	/* dot-unstuffing */
	EXPECT("a\r\n..x\r\n.\r\n", &REJECT, 11, "a\r\n.x\r\n", false);
	EXPECT("a\r\n..\r\n.\r\n", &REJECT, 10, "a\r\n.\r\n", false);
	EXPECT("a\r\n...\r\n.\r\n", &REJECT, 11, "a\r\n..\r\n", false);
	EXPECT("a\r\n.b.\r\n.\r\n", &REJECT, 11, "a\r\nb.\r\n", false);
	EXPECT("a.\r\n.\r\n", &REJECT, 7, "a.\r\n", false);
	EXPECT("a\r\n. \r\n.\r\n", &REJECT, 10, "a\r\n \r\n", false);
	/* what follows the end is not consumed */
	EXPECT("a\r\n.\r\n.\r\n", &REJECT, 6, "a\r\n", false);
	EXPECT("a\r\n.\r\nb\r\n.\r\n", &REJECT, 6, "a\r\n", false);
	/* NUL is content */
	EXPECT("a\0b\r\n.\r\n", &REJECT, 8, "a\0b\r\n", false);
	/* bare CR and LF kept as content, flagged */
	EXPECT("a\nb\r\n.\r\n", &REJECT, 8, "a\nb\r\n", true);
	EXPECT("a\rb\r\n.\r\n", &REJECT, 8, "a\rb\r\n", true);
	EXPECT("a\r\r\n.\r\n", &REJECT, 7, "a\r\r\n", true);
	EXPECT("a\n\r\n.\r\n", &REJECT, 7, "a\n\r\n", true);
	EXPECT("\n.\r\n.\r\n", &REJECT, 7, "\n.\r\n", true);
	/* ... or turned into CRLF */
	EXPECT("a\nb\r\n.\r\n", &NORMAL, 8, "a\r\nb\r\n", true);
	EXPECT("a\rb\r\n.\r\n", &NORMAL, 8, "a\r\nb\r\n", true);
	EXPECT("a\r\r\n.\r\n", &NORMAL, 7, "a\r\n\r\n", true);
	EXPECT("a\n\r\n.\r\n", &NORMAL, 7, "a\r\n\r\n", true);
	EXPECT("a\n..b\r\n.\r\n", &NORMAL, 10, "a\r\n.b\r\n", true);
	EXPECT("\r\r\n.\r\n", &NORMAL, 6, "\r\n\r\n", true);
	EXPECT("\n\r\n.\r\n", &NORMAL, 6, "\r\n\r\n", true);
	EXPECT("a\r\n.\r\n", &NORMAL, 6, "a\r\n", false);
}

/* TESTING.md S3: each ending, then a smuggled transaction. */
static void test_smuggling(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		size_t len;
		const char *reject_out;
		size_t reject_len;
		const char *normal_out;
		size_t normal_len;
		bool bare;
	} vs[] = {
#define V(v, r, n, b) \
	{ v, sizeof(v) - 1, r, sizeof(r) - 1, n, sizeof(n) - 1, b }
		V("\n.\n", "\n.\n", "\r\n\r\n", true),
		V("\r.\r", "\r.\r", "\r\n\r\n", true),
		V("\r.\n", "\r.\n", "\r\n\r\n", true),
		V("\n.\r", "\n.\r", "\r\n\r\n", true),
		V("\n.\r\n", "\n.\r\n", "\r\n\r\n", true),
		V("\r\n.\n", "\r\n\n", "\r\n\r\n", true),
		V("\r.\r\n", "\r.\r\n", "\r\n\r\n", true),
		V("\r\n.\r", "\r\n\r", "\r\n\r\n", true),
		V("\r\n\0.\r\n", "\r\n\0.\r\n", "\r\n\0.\r\n", false),
		V("\r\n.\0\r\n", "\r\n\0\r\n", "\r\n\0\r\n", false),
#undef V
	};
	static const char head[] = "Subject: t\r\n\r\nhello";
	static const char smuggled[] = "MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\n"
				       "DATA\r\nsmuggled\r\n";
	static const char end[] = ".\r\n";
	static const char next[] = "QUIT\r\n";
	for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		uint8_t in[256], want[256];
		size_t n = 0, w;
		memcpy(in + n, head, sizeof(head) - 1);
		n += sizeof(head) - 1;
		memcpy(in + n, vs[i].v, vs[i].len);
		n += vs[i].len;
		memcpy(in + n, smuggled, sizeof(smuggled) - 1);
		n += sizeof(smuggled) - 1;
		memcpy(in + n, end, sizeof(end) - 1);
		n += sizeof(end) - 1;
		size_t real_end = n;
		memcpy(in + n, next, sizeof(next) - 1);
		n += sizeof(next) - 1;

		for (int pol = 0; pol < 2; pol++) {
			const opts *o = pol == 0 ? &REJECT : &NORMAL;
			const char *vo = pol == 0 ? vs[i].reject_out
						  : vs[i].normal_out;
			size_t vl = pol == 0 ? vs[i].reject_len
					     : vs[i].normal_len;
			w = 0;
			memcpy(want + w, head, sizeof(head) - 1);
			w += sizeof(head) - 1;
			memcpy(want + w, vo, vl);
			w += vl;
			memcpy(want + w, smuggled, sizeof(smuggled) - 1);
			w += sizeof(smuggled) - 1;

			result res;
			run_all_ways(in, n, o, &res);
			/* one end only, the real one */
			assert_true(res.done);
			assert_int_equal(res.consumed, real_end);
			assert_int_equal(res.bare, vs[i].bare);
			assert_int_equal(res.out_len, w);
			assert_memory_equal(res.out, want, w);
			if (pol == 1) {
				/* normalised output: every CR before an LF,
				 * every LF after a CR */
				for (size_t k = 0; k < res.out_len; k++) {
					if (res.out[k] == '\r')
						assert_true(k + 1 < res.out_len &&
							    res.out[k + 1] == '\n');
					if (res.out[k] == '\n')
						assert_true(k > 0 &&
							    res.out[k - 1] == '\r');
				}
			}
			result_free(&res);

			/* without the real end there is no end at all */
			run_all_ways(in, real_end - 3, o, &res);
			assert_false(res.done);
			assert_int_equal(res.consumed, real_end - 3);
			result_free(&res);
		}
	}
}

/* S11: over max_size the output stops at max_size, the octets are still
 * counted, and the end is found. */
static void test_size(void **state)
{
	(void)state;
	size_t lines = 1000, n = 0;
	uint8_t *in = malloc(lines * 12 + 16);
	assert_non_null(in);
	for (size_t i = 0; i < lines; i++) {
		memcpy(in + n, "0123456789\r\n", 12);
		n += 12;
	}
	memcpy(in + n, ".\r\nRSET\r\n", 9);
	size_t total = n;
	n += 9;

	for (int pol = 0; pol < 2; pol++) {
		opts o = { pol == 0 ? SMTP_DATA_REJECT_BARE : SMTP_DATA_NORMALISE,
			   0, 0 };
		result res;
		uint64_t maxes[] = { 100, 11999, 12000, 12001, 1 };
		for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
			o.max_size = maxes[m];
			run_one(in, n, &o, &res);
			assert_true(res.done);
			assert_int_equal(res.consumed, total + 3);
			assert_int_equal(res.size, total);
			assert_int_equal(res.too_big, total > maxes[m]);
			size_t kept = total < maxes[m] ? total : (size_t)maxes[m];
			assert_int_equal(res.out_len, kept);
			assert_memory_equal(res.out, in, kept);
			result_free(&res);
		}
		/* the same byte by byte */
		size_t *cuts = malloc(n * sizeof(*cuts));
		assert_non_null(cuts);
		for (size_t i = 0; i < n; i++)
			cuts[i] = i + 1;
		o.max_size = 5000;
		run_cuts(in, n, &o, cuts, n, &res);
		assert_true(res.done);
		assert_true(res.too_big);
		assert_int_equal(res.consumed, total + 3);
		assert_int_equal(res.out_len, 5000);
		assert_int_equal(res.size, total);
		result_free(&res);
		free(cuts);
	}

	/* counting only, without a callback */
	smtp_data_reader r;
	bool done;
	smtp_data_init(&r, SMTP_DATA_REJECT_BARE, 10, 0, NULL, NULL);
	assert_int_equal(smtp_data_feed(&r, in, n, &done), total + 3);
	assert_true(done);
	assert_true(r.too_big);
	assert_int_equal(r.size, total);
	free(in);
}

/* S2: a 100 KB line, with and without a line limit; line length counts
 * the CRLF (RFC 5321: 1000 octets with it). */
static void test_long_line(void **state)
{
	(void)state;
	size_t big = 100 * 1024;
	uint8_t *in = malloc(big + 32);
	assert_non_null(in);
	memset(in, 'x', big);
	memcpy(in + big, "\r\nshort\r\n.\r\nNOOP\r\n", 18);
	size_t n = big + 18, end = big + 12;

	size_t limits[] = { 0, 1000, big + 1, big + 2, big + 100 };
	for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
		for (int pol = 0; pol < 2; pol++) {
			opts o = { pol == 0 ? SMTP_DATA_REJECT_BARE
					    : SMTP_DATA_NORMALISE,
				   0, limits[l] };
			result res, bytes;
			run_one(in, n, &o, &res);
			assert_true(res.done);
			assert_int_equal(res.consumed, end);
			assert_int_equal(res.out_len, big + 9);
			assert_memory_equal(res.out, in, big + 9);
			assert_int_equal(res.too_long,
					 limits[l] != 0 && limits[l] < big + 2);
			assert_false(res.too_big);
			assert_false(res.bare);
			size_t cuts[] = { 1, 4096, big - 1, big, big + 1, big + 2 };
			run_cuts(in, n, &o, cuts, 6, &bytes);
			assert_same(&res, &bytes);
			result_free(&bytes);
			result_free(&res);
		}
	}

	/* the boundary: 998 octets and CRLF fit in 1000 */
	opts o = { SMTP_DATA_REJECT_BARE, 0, 1000 };
	result res;
	memset(in, 'y', 999);
	memcpy(in + 998, "\r\n.\r\n", 5);
	run_one(in, 1003, &o, &res);
	assert_true(res.done);
	assert_false(res.too_long);
	result_free(&res);
	memcpy(in + 999, "\r\n.\r\n", 5);
	run_one(in, 1004, &o, &res);
	assert_true(res.done);
	assert_true(res.too_long);
	result_free(&res);
	/* a dot removed by unstuffing does not count */
	in[0] = '.';
	memset(in + 1, 'y', 998);
	memcpy(in + 999, "\r\n.\r\n", 5);
	run_one(in, 1004, &o, &res);
	assert_true(res.done);
	assert_false(res.too_long);
	result_free(&res);
	/* with REJECT_BARE a bare LF does not end a line; NORMALISE: it does */
	memset(in, 'y', 1200);
	in[600] = '\n';
	memcpy(in + 1200, "\r\n.\r\n", 5);
	run_one(in, 1205, &o, &res);
	assert_true(res.too_long);
	assert_true(res.bare);
	result_free(&res);
	o.policy = SMTP_DATA_NORMALISE;
	run_one(in, 1205, &o, &res);
	assert_false(res.too_long);
	assert_true(res.bare);
	assert_int_equal(res.out_len, 1203);
	result_free(&res);
	free(in);
}

/* A few messages through every way of splitting, under both policies and
 * small limits. */
static void test_splits(void **state)
{
	(void)state;
	static const char *const msgs[] = {
		"From: a\r\nTo: b\r\n\r\nline\r\n..dot\r\n.\r\n",
		"\r\r\n\n\r\r\n..\r\n.\r\r\n.\n.\r\n.\r\n",
		"x\r\n.\r\r\n.\r\n",
		"\r\n\r\n\r\n.\r\n",
		"...\r\n..\r\n.\r\nafter",
		"no end here\r\n.\r",
		"\r\n.",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		for (int pol = 0; pol < 2; pol++) {
			for (unsigned lim = 0; lim < 3; lim++) {
				opts o = { pol == 0 ? SMTP_DATA_REJECT_BARE
						    : SMTP_DATA_NORMALISE,
					   lim * 7, lim * 3 };
				result res;
				run_all_ways((const uint8_t *)msgs[i],
					     strlen(msgs[i]), &o, &res);
				result_free(&res);
			}
		}
	}
	/* the third message: the dot is unstuffed, then "\r\r\n" is a bare
	 * CR and a CRLF, so the ".\r\n" after it ends the data */
	result res;
	run_one((const uint8_t *)msgs[2], strlen(msgs[2]), &REJECT, &res);
	assert_true(res.done);
	assert_int_equal(res.consumed, strlen(msgs[2]));
	assert_true(res.bare);
	assert_int_equal(res.out_len, 6);
	assert_memory_equal(res.out, "x\r\n\r\r\n", 6);
	result_free(&res);
	/* an unterminated message keeps what it has not decided yet */
	run_one((const uint8_t *)msgs[5], strlen(msgs[5]), &REJECT, &res);
	assert_false(res.done);
	assert_int_equal(res.consumed, strlen(msgs[5]));
	assert_int_equal(res.out_len, 13);
	result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_splits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
