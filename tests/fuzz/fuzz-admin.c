/*
 * fuzz-admin.c — libFuzzer target for the admin channel's wire format
 * (src/daemon/admin-proto.c; TESTING.md F13): the request line reader
 * and splitter the daemon runs on every byte a client sends, the request
 * formatter of `amp map`, and the response line formatter and classifier.
 *
 * Input: byte 0 picks how the rest is cut into reads (0: one read; else
 * pieces of 1..255 bytes); the rest is what a client sends.
 *
 * Properties (abort() on violation):
 *  - every call makes progress: it returns a request or a refusal having
 *    consumed at least one byte, or "more" having consumed all;
 *  - the outcomes (requests with their fields, refusals with their
 *    reasons) are the same however the input is cut;
 *  - there are no more outcomes than lines (LFs, plus one);
 *  - a request has 1..ADMIN_FIELDS_MAX fields, a non-empty first one, each
 *    field valid UTF-8 (checked here independently) without control
 *    characters, ADMIN_LINE_MAX bytes at most with its TABs;
 *  - a request formatted again (admin_format_request) is one line that
 *    reads back as the same fields;
 *  - a response line made from any field, or from the raw input, is one
 *    line ending in LF, at most ADMIN_REPLY_LINE_MAX bytes, without
 *    control characters (TAB only when allowed), valid UTF-8, and is
 *    classified as what it was made as.
 */
#include "admin-proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T "fuzz-admin"
#define MAX_OUTCOMES 4096

static void fail(const char *what)
{
	fprintf(stderr, "%s: property violated: %s\n", T, what);
	abort();
}

/* An independent UTF-8 check: the decoded value of each sequence must
 * need exactly its length, not be a surrogate, not exceed U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned long cp;
		size_t len;
		if (s[i] < 0x80) {
			i++;
			continue;
		} else if ((s[i] >> 5) == 6) {
			len = 2;
			cp = s[i] & 0x1f;
		} else if ((s[i] >> 4) == 14) {
			len = 3;
			cp = s[i] & 0x0f;
		} else if ((s[i] >> 3) == 30) {
			len = 4;
			cp = s[i] & 0x07;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] >> 6) != 2)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
		if (need != len || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

typedef struct outcome {
	int kind;
	const char *why;
	size_t n;
	size_t len[ADMIN_FIELDS_MAX];
	char *f[ADMIN_FIELDS_MAX];
} outcome;

static void outcomes_free(outcome *o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < o[i].n; k++)
			free(o[i].f[k]);
}

static void check_reply(const char *prefix, const char *text, bool tabs_ok,
			admin_line_kind want)
{
	static char out[ADMIN_REPLY_LINE_MAX + 8];
	size_t n = admin_format_reply(out, sizeof(out), prefix, text, tabs_ok);
	if (n == 0 || n > ADMIN_REPLY_LINE_MAX || out[n - 1] != '\n')
		fail("a reply is not one line within the limit");
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if ((c < 0x20 && !(c == '\t' && tabs_ok)) || c == 0x7f)
			fail("a control character in a reply");
	}
	if (!utf8_ok((const unsigned char *)out, n))
		fail("invalid UTF-8 in a reply");
	out[n - 1] = '\0';
	const char *t;
	if (admin_line_classify(out, &t) != want)
		fail("a reply is not classified as what it was made as");
}

/* Feed data[0..len) in pieces of step bytes (0: one piece). */
static size_t run(const uint8_t *data, size_t len, size_t step, outcome *o)
{
	static admin_reader rd;
	size_t n = 0;
	admin_reader_init(&rd);
	for (size_t off = 0; off < len;) {
		size_t k = step == 0 || len - off < step ? len - off : step;
		const uint8_t *p = data + off;
		size_t left = k;
		while (left > 0) {
			admin_req r;
			const char *why = NULL;
			size_t before = left;
			int rc = admin_reader_next(&rd, &p, &left, &r, &why);
			if (rc == ADMIN_MORE) {
				if (left != 0)
					fail("more input wanted with bytes left");
				break;
			}
			if (left >= before)
				fail("no progress");
			if (n == MAX_OUTCOMES)
				fail("too many outcomes");
			if (rc == ADMIN_BAD) {
				if (why == NULL || why[0] == '\0')
					fail("a refusal without a reason");
				o[n++] = (outcome){ .kind = rc, .why = why };
				continue;
			}
			if (rc != ADMIN_REQ)
				fail("unknown result");
			if (r.n < 1 || r.n > ADMIN_FIELDS_MAX || r.len[0] == 0)
				fail("field count or empty command");
			size_t total = r.n - 1;
			o[n] = (outcome){ .kind = rc, .n = r.n };
			for (size_t i = 0; i < r.n; i++) {
				if (strlen(r.f[i]) != r.len[i])
					fail("a field's length is wrong");
				for (size_t j = 0; j < r.len[i]; j++) {
					unsigned char c = (unsigned char)r.f[i][j];
					if (c < 0x20 || c == 0x7f)
						fail("a control character in a field");
				}
				if (!utf8_ok((const unsigned char *)r.f[i], r.len[i]))
					fail("invalid UTF-8 in a field");
				total += r.len[i];
				o[n].len[i] = r.len[i];
				o[n].f[i] = malloc(r.len[i] + 1);
				if (o[n].f[i] == NULL)
					abort();
				memcpy(o[n].f[i], r.f[i], r.len[i] + 1);
			}
			if (total > ADMIN_LINE_MAX)
				fail("a request longer than the limit");
			n++;
		}
		off += k;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static outcome a[MAX_OUTCOMES], b[MAX_OUTCOMES];
	static char line[ADMIN_LINE_MAX + 2];
	if (size < 1)
		return 0;
	size_t step = data[0];
	data++;
	size--;

	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	size_t na = run(data, size, 0, a);
	size_t nb = run(data, size, step, b);
	if (na > lines)
		fail("more outcomes than lines");
	if (na != nb)
		fail("the outcomes depend on how the input is cut");
	for (size_t i = 0; i < na; i++) {
		if (a[i].kind != b[i].kind || a[i].n != b[i].n ||
		    (a[i].kind == ADMIN_BAD && strcmp(a[i].why, b[i].why) != 0))
			fail("the outcomes depend on how the input is cut");
		for (size_t k = 0; k < a[i].n; k++)
			if (a[i].len[k] != b[i].len[k] ||
			    memcmp(a[i].f[k], b[i].f[k], a[i].len[k]) != 0)
				fail("the fields depend on how the input is cut");
		if (a[i].kind == ADMIN_BAD) {
			check_reply("error", a[i].why, false, ADMIN_LINE_ERROR);
			continue;
		}
		/* round trip through the client's formatter */
		size_t len;
		const char *why;
		if (admin_format_request((const char *const *)a[i].f, a[i].n, line,
					 sizeof(line), &len, &why) != 0)
			fail("a request read cannot be formatted again");
		if (len == 0 || line[len - 1] != '\n' ||
		    memchr(line, '\n', len - 1) != NULL)
			fail("a formatted request is not one line");
		admin_req r;
		if (admin_parse_line(line, len - 1, &r, &why) != 0 ||
		    r.n != a[i].n)
			fail("a formatted request does not read back");
		for (size_t k = 0; k < r.n; k++)
			if (strcmp(r.f[k], a[i].f[k]) != 0)
				fail("a formatted request reads back different");
		for (size_t k = 0; k < a[i].n; k++)
			check_reply(k % 2 ? "*" : "ok", a[i].f[k], k % 3 == 0,
				    k % 2 ? ADMIN_LINE_DATA : ADMIN_LINE_OK);
	}
	outcomes_free(a, na);
	outcomes_free(b, nb);

	/* any bytes as the text of a reply */
	char *text = malloc(size + 1);
	if (text == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	check_reply("error", text, false, ADMIN_LINE_ERROR);
	check_reply("*", text, true, ADMIN_LINE_DATA);
	free(text);
	return 0;
}
