/*
 * dkim-tags.c — RFC 6376 §3.2 tag lists (dkim-tags.h).
 *
 * One pass over the text: each byte is looked at once by the scanner,
 * and once more by the duplicate check of the names (at most
 * DKIM_TAGS_MAX names of at most DKIM_TAG_NAME_MAX bytes, so the check
 * costs at most 64 * 63 / 2 short compares).  Nothing is allocated; the
 * result is offsets into the caller's text.
 */
#include "dkim-tags.h"

#include <string.h>

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_valchar(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

/* Length of a line end at p (CRLF or a bare LF) that is followed by a
 * blank, so part of FWS; else 0. */
static size_t fold_at(const uint8_t *t, size_t len, size_t p)
{
	size_t n = 0;
	if (p < len && t[p] == '\n')
		n = 1;
	else if (p + 1 < len && t[p] == '\r' && t[p + 1] == '\n')
		n = 2;
	if (n == 0 || p + n >= len || !is_wsp(t[p + n]))
		return 0;
	return n;
}

static size_t skip_fws(const uint8_t *t, size_t len, size_t p)
{
	for (;;) {
		if (p < len && is_wsp(t[p])) {
			p++;
			continue;
		}
		size_t n = fold_at(t, len, p);
		if (n == 0)
			return p;
		p += n;
	}
}

static int fail(dkim_tags *tags, const char **error_r, const char *why)
{
	tags->n = 0;
	*error_r = why;
	return -1;
}

int dkim_tags_parse(const uint8_t *text, size_t len, dkim_tags *tags_r,
		    const char **error_r)
{
	size_t p = 0;

	tags_r->text = text;
	tags_r->len = len;
	tags_r->n = 0;
	if (len > DKIM_TAGS_TEXT_MAX)
		return fail(tags_r, error_r, "tag list too long");
	for (;;) {
		dkim_tag tg;

		p = skip_fws(text, len, p);
		if (p == len) {
			if (tags_r->n == 0)
				return fail(tags_r, error_r, "empty tag list");
			return 0; /* blanks after the final ';' */
		}
		if (text[p] == ';')
			return fail(tags_r, error_r, "empty tag-spec");
		if (!is_alpha(text[p]))
			return fail(tags_r, error_r, "bad tag name");
		tg.name_off = p;
		while (p < len && (is_alpha(text[p]) || is_digit(text[p]) ||
				   text[p] == '_'))
			p++;
		tg.name_len = p - tg.name_off;
		if (tg.name_len > DKIM_TAG_NAME_MAX)
			return fail(tags_r, error_r, "tag name too long");
		p = skip_fws(text, len, p);
		if (p == len || text[p] != '=')
			return fail(tags_r, error_r,
				    p < len && is_valchar(text[p]) ?
				    "bad tag name" : "no '=' after a tag name");
		p = skip_fws(text, len, p + 1);
		tg.value_off = p;
		size_t vend = p;
		while (p < len && text[p] != ';') {
			if (is_valchar(text[p])) {
				vend = ++p;
				if (vend - tg.value_off > DKIM_TAG_VALUE_MAX)
					return fail(tags_r, error_r,
						    "tag value too long");
				continue;
			}
			size_t q = skip_fws(text, len, p);
			if (q == p)
				return fail(tags_r, error_r,
					    "bad byte in a tag value");
			p = q;
		}
		tg.value_len = vend - tg.value_off;
		tg.spec_end = p;
		for (size_t i = 0; i < tags_r->n; i++) {
			const dkim_tag *o = &tags_r->tag[i];
			if (o->name_len == tg.name_len &&
			    memcmp(text + o->name_off, text + tg.name_off,
				   tg.name_len) == 0)
				return fail(tags_r, error_r,
					    "duplicate tag");
		}
		if (tags_r->n == DKIM_TAGS_MAX)
			return fail(tags_r, error_r, "too many tags");
		tags_r->tag[tags_r->n++] = tg;
		if (p == len)
			return 0;
		p++; /* the ';' */
	}
}

const dkim_tag *dkim_tags_get(const dkim_tags *tags, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < tags->n; i++) {
		const dkim_tag *t = &tags->tag[i];
		if (t->name_len == n &&
		    memcmp(tags->text + t->name_off, name, n) == 0)
			return t;
	}
	return NULL;
}

bool dkim_tag_value_is(const dkim_tags *tags, const dkim_tag *tag,
		       const char *s)
{
	size_t n = strlen(s);
	return tag->value_len == n &&
	       memcmp(tags->text + tag->value_off, s, n) == 0;
}

size_t dkim_tag_value_nows(const dkim_tags *tags, const dkim_tag *tag,
			   char *out, size_t out_size)
{
	const uint8_t *v = tags->text + tag->value_off;
	size_t n = 0;
	for (size_t i = 0; i < tag->value_len; i++) {
		uint8_t c = v[i];
		if (is_wsp(c) || c == '\r' || c == '\n')
			continue;
		if (n + 1 < out_size)
			out[n] = (char)c;
		n++;
	}
	if (out_size > 0)
		out[n < out_size ? n : out_size - 1] = '\0';
	return n;
}

static bool is_blank_or_eol(uint8_t c)
{
	return is_wsp(c) || c == '\r' || c == '\n';
}

int dkim_tag_value_split(const dkim_tags *tags, const dkim_tag *tag,
			 dkim_tag_list_fn *fn, void *ctx)
{
	const uint8_t *v = tags->text + tag->value_off;
	size_t len = tag->value_len, a = 0;

	for (;;) {
		const uint8_t *c = memchr(v + a, ':', len - a);
		size_t e = c != NULL ? (size_t)(c - v) : len;
		size_t s = a, t = e;
		while (s < t && is_blank_or_eol(v[s]))
			s++;
		while (t > s && is_blank_or_eol(v[t - 1]))
			t--;
		int rc = fn(ctx, v + s, t - s);
		if (rc != 0)
			return rc;
		if (c == NULL)
			return 0;
		a = e + 1;
	}
}
