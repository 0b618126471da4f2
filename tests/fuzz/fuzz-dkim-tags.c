/*
 * fuzz-dkim-tags.c — libFuzzer target for src/mime/dkim-tags.c (TESTING.md
 * F8: the RFC 6376 §3.2 tag-list parser) and for the DKIM canonicalisers
 * of src/mime/dkim-sign.c (header and body, simple and relaxed) over the
 * same input read as a message.
 *
 * Properties, checked without the modules' help:
 *  - a refusal has a reason and no tags;
 *  - what parses: at most DKIM_TAGS_MAX tags, distinct names of
 *    ALPHA *(ALPHA / DIGIT / "_") within DKIM_TAG_NAME_MAX, values within
 *    the text and DKIM_TAG_VALUE_MAX, made of VALCHAR and FWS and neither
 *    starting nor ending with a blank or line end, spec_end at a ';' or
 *    the end; dkim_tags_get finds each tag; the FWS-free value has no
 *    blank and a smaller buffer gets a prefix; the colon split's elements
 *    lie inside the value; the list printed back as "name=value;" parses
 *    to the same names and values;
 *  - relaxed header output: lower-case name, no LF and no CRLF but the
 *    final CRLF (a lone CR is an ordinary byte), no HTAB, no two SPs in a row, no SP after ':' or before the
 *    CRLF; simple header output: every LF after a CR, ends in CRLF;
 *  - relaxed body: empty or ends in CRLF, no blank before a CRLF, no two
 *    blanks in a row, no empty line at the end; simple body: ends in CRLF,
 *    never in CRLF CRLF unless it is just CRLF, every LF after a CR.
 */
#include "dkim-sign.h"
#include "dkim-tags.h"
#include "mail-header.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dkim-tags: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

typedef struct sink {
	uint8_t *b;
	size_t n, cap;
} sink;

static void emit(void *ctx, const uint8_t *p, size_t n)
{
	sink *s = ctx;
	CHECK(s->n + n <= s->cap);
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static bool wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

typedef struct splitctx {
	const uint8_t *v;
	size_t len, count;
} splitctx;

static int split_fn(void *ctx, const uint8_t *p, size_t n)
{
	splitctx *s = ctx;
	CHECK(p >= s->v && p + n <= s->v + s->len);
	CHECK(memchr(p, ':', n) == NULL);
	if (n > 0)
		CHECK(!wsp(p[0]) && !wsp(p[n - 1]));
	s->count++;
	return 0;
}

static void check_tags(const uint8_t *data, size_t size)
{
	dkim_tags tg, tg2;
	const char *err = NULL;

	if (dkim_tags_parse(data, size, &tg, &err) < 0) {
		CHECK(err != NULL && tg.n == 0);
		return;
	}
	CHECK(tg.n >= 1 && tg.n <= DKIM_TAGS_MAX);
	size_t cap = 0;
	for (size_t i = 0; i < tg.n; i++) {
		const dkim_tag *t = &tg.tag[i];
		const uint8_t *nm = data + t->name_off, *v = data + t->value_off;
		CHECK(t->name_len >= 1 && t->name_len <= DKIM_TAG_NAME_MAX);
		CHECK(t->name_off + t->name_len <= size);
		CHECK((nm[0] | 32) >= 'a' && (nm[0] | 32) <= 'z');
		for (size_t k = 1; k < t->name_len; k++)
			CHECK(((nm[k] | 32) >= 'a' && (nm[k] | 32) <= 'z') ||
			      (nm[k] >= '0' && nm[k] <= '9') || nm[k] == '_');
		CHECK(t->value_off + t->value_len <= size);
		CHECK(t->value_off >= t->name_off + t->name_len + 1);
		CHECK(t->value_len <= DKIM_TAG_VALUE_MAX);
		CHECK(t->spec_end >= t->value_off + t->value_len);
		CHECK(t->spec_end == size || data[t->spec_end] == ';');
		for (size_t k = 0; k < t->value_len; k++)
			CHECK((v[k] >= 0x21 && v[k] <= 0x7e && v[k] != ';') ||
			      wsp(v[k]) || v[k] == '\r' || v[k] == '\n');
		if (t->value_len > 0) {
			uint8_t a = v[0], z = v[t->value_len - 1];
			CHECK(!wsp(a) && a != '\r' && a != '\n');
			CHECK(!wsp(z) && z != '\r' && z != '\n');
		}
		for (size_t j = 0; j < i; j++)
			CHECK(!(tg.tag[j].name_len == t->name_len &&
				memcmp(data + tg.tag[j].name_off, nm,
				       t->name_len) == 0));
		char name[DKIM_TAG_NAME_MAX + 1];
		memcpy(name, nm, t->name_len);
		name[t->name_len] = '\0';
		CHECK(dkim_tags_get(&tg, name) == t);
		char *nows = malloc(t->value_len + 1), small[8];
		size_t n = dkim_tag_value_nows(&tg, t, nows, t->value_len + 1);
		CHECK(n <= t->value_len && strlen(nows) == n);
		for (size_t k = 0; k < n; k++)
			CHECK(!wsp((uint8_t)nows[k]) && nows[k] != '\r' &&
			      nows[k] != '\n');
		CHECK(dkim_tag_value_nows(&tg, t, small, sizeof(small)) == n);
		CHECK(strncmp(small, nows, sizeof(small) - 1) == 0);
		free(nows);
		splitctx sc = {.v = v, .len = t->value_len};
		CHECK(dkim_tag_value_split(&tg, t, split_fn, &sc) == 0);
		CHECK(sc.count >= 1);
		cap += t->name_len + t->value_len + 2;
	}
	/* printed back */
	uint8_t *o = malloc(cap + 1);
	size_t on = 0;
	for (size_t i = 0; i < tg.n; i++) {
		const dkim_tag *t = &tg.tag[i];
		memcpy(o + on, data + t->name_off, t->name_len);
		on += t->name_len;
		o[on++] = '=';
		memcpy(o + on, data + t->value_off, t->value_len);
		on += t->value_len;
		o[on++] = ';';
	}
	CHECK(on <= DKIM_TAGS_TEXT_MAX || on > size);
	if (on <= DKIM_TAGS_TEXT_MAX) {
		CHECK(dkim_tags_parse(o, on, &tg2, &err) == 0);
		CHECK(tg2.n == tg.n);
		for (size_t i = 0; i < tg.n; i++) {
			CHECK(tg2.tag[i].name_len == tg.tag[i].name_len);
			CHECK(tg2.tag[i].value_len == tg.tag[i].value_len);
			CHECK(memcmp(o + tg2.tag[i].value_off,
				     data + tg.tag[i].value_off,
				     tg.tag[i].value_len) == 0);
		}
	}
	free(o);
}

static void check_canon(const uint8_t *data, size_t size)
{
	sink s = {.cap = 2 * size + 4};
	mail_header_iter it;
	mail_field f;

	s.b = malloc(s.cap);
	mail_header_iter_init(&it, data, size);
	while (mail_header_next(&it, &f) == 1) {
		s.n = 0;
		dkim_canon_header_relaxed(data, &f, true, emit, &s);
		CHECK(s.n >= 3 && s.b[s.n - 2] == '\r' && s.b[s.n - 1] == '\n');
		size_t colon = f.malformed ? 0 : f.name_len;
		CHECK(s.b[colon] == ':');
		for (size_t k = 0; k < colon; k++)
			CHECK(!(s.b[k] >= 'A' && s.b[k] <= 'Z'));
		for (size_t k = 0; k + 2 < s.n; k++) {
			uint8_t c = s.b[k];
			CHECK(c != '\n' && c != '\t');
			CHECK(!(c == '\r' && s.b[k + 1] == '\n'));
			if (k > 0)
				CHECK(!(c == ' ' && s.b[k - 1] == ' '));
		}
		CHECK(s.b[colon + 1] != ' ');
		CHECK(s.b[s.n - 3] != ' ');
		s.n = 0;
		dkim_canon_header_simple(data, &f, true, emit, &s);
		CHECK(s.n >= 2 && s.b[s.n - 2] == '\r' && s.b[s.n - 1] == '\n');
		for (size_t k = 0; k < s.n; k++)
			if (s.b[k] == '\n')
				CHECK(k > 0 && s.b[k - 1] == '\r');
	}
	const uint8_t *body = data + it.body_off;
	size_t bl = size - it.body_off;
	s.n = 0;
	dkim_canon_body_relaxed(body, bl, emit, &s);
	if (s.n > 0) {
		CHECK(s.n >= 3 && s.b[s.n - 2] == '\r' && s.b[s.n - 1] == '\n');
		CHECK(!(s.n >= 4 && s.b[s.n - 4] == '\r' &&
			s.b[s.n - 3] == '\n'));
		for (size_t k = 0; k < s.n; k++) {
			if (s.b[k] == '\n')
				CHECK(k > 0 && s.b[k - 1] == '\r');
			if (s.b[k] == '\r' && k + 1 < s.n && s.b[k + 1] == '\n')
				CHECK(k == 0 || !wsp(s.b[k - 1]));
			CHECK(s.b[k] != '\t');
			if (k > 0)
				CHECK(!(s.b[k] == ' ' && s.b[k - 1] == ' '));
		}
	}
	s.n = 0;
	dkim_canon_body_simple(body, bl, emit, &s);
	CHECK(s.n >= 2 && s.b[s.n - 2] == '\r' && s.b[s.n - 1] == '\n');
	CHECK(s.n < 4 || !(s.b[s.n - 4] == '\r' && s.b[s.n - 3] == '\n'));
	for (size_t k = 0; k < s.n; k++)
		if (s.b[k] == '\n')
			CHECK(k > 0 && s.b[k - 1] == '\r');
	free(s.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_tags(data, size);
	check_canon(data, size);
	return 0;
}
