/*
 * admin-proto.c — the admin channel's wire format (admin-proto.h): the
 * request line reader and splitter, the request formatter of the client,
 * the response line formatter of the daemon and the classifier of the
 * client.  Pure and bounded: the reader holds at most ADMIN_LINE_MAX + 1
 * bytes, copies nothing beyond the current line and never allocates.
 */
#include "admin-proto.h"
#include "util.h"

#include <string.h>

void admin_reader_init(admin_reader *r)
{
	r->len = 0;
	r->skipping = false;
	r->have_line = false;
	r->buf[0] = '\0';
}

/* Length of the valid UTF-8 sequence at s[0..n) (no overlong forms, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	return util_utf8_seq(s, n, &cp);
}

/* s[0..n) is valid UTF-8 with no control character (TAB allowed when
 * tab_ok); *why_r otherwise. */
static bool text_ok(const char *s, size_t n, bool tab_ok, const char **why_r)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x20 || u[i] == 0x7f) {
			if (u[i] == '\t' && tab_ok) {
				i++;
				continue;
			}
			*why_r = u[i] == 0 ? "a NUL byte in the request"
					   : "a control character in the request";
			return false;
		}
		size_t k = utf8_seq(u + i, n - i);
		if (k == 0) {
			*why_r = "invalid UTF-8 in the request";
			return false;
		}
		i += k;
	}
	return true;
}

int admin_parse_line(char *line, size_t len, admin_req *req,
		     const char **error_r)
{
	req->n = 0;
	if (len == 0) {
		*error_r = "empty request";
		return -1;
	}
	if (len > ADMIN_LINE_MAX) {
		*error_r = "request line longer than 8192 bytes";
		return -1;
	}
	if (!text_ok(line, len, true, error_r))
		return -1;
	line[len] = '\0';
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != '\t')
			continue;
		if (req->n == ADMIN_FIELDS_MAX) {
			req->n = 0;
			*error_r = "too many fields in the request";
			return -1;
		}
		line[i] = '\0';
		req->f[req->n] = line + start;
		req->len[req->n] = i - start;
		req->n++;
		start = i + 1;
	}
	if (req->len[0] == 0) {
		req->n = 0;
		*error_r = "empty command";
		return -1;
	}
	return 0;
}

static void consume(const uint8_t **data, size_t *len, size_t n)
{
	*data += n;
	*len -= n;
}

int admin_reader_next(admin_reader *r, const uint8_t **data, size_t *len,
		      admin_req *req, const char **error_r)
{
	req->n = 0;
	if (r->have_line) {
		r->len = 0;
		r->have_line = false;
	}
	while (*len > 0) {
		const uint8_t *nl = memchr(*data, '\n', *len);
		size_t take = nl != NULL ? (size_t)(nl - *data) : *len;
		if (r->skipping) {
			consume(data, len, take + (nl != NULL));
			if (nl == NULL)
				return ADMIN_MORE;
			r->skipping = false;
			continue;
		}
		if (take > ADMIN_LINE_MAX - r->len) {
			/* the CR of a CRLF counts: it is part of the line
			 * until the LF is seen */
			r->len = 0;
			consume(data, len, take + (nl != NULL));
			r->skipping = nl == NULL;
			*error_r = "request line longer than 8192 bytes";
			return ADMIN_BAD;
		}
		memcpy(r->buf + r->len, *data, take);
		r->len += take;
		consume(data, len, take);
		if (nl == NULL)
			return ADMIN_MORE;
		consume(data, len, 1);
		r->have_line = true;
		size_t ll = r->len;
		if (ll > 0 && r->buf[ll - 1] == '\r')
			ll--;
		return admin_parse_line(r->buf, ll, req, error_r) == 0
			       ? ADMIN_REQ
			       : ADMIN_BAD;
	}
	return ADMIN_MORE;
}

int admin_format_request(const char *const *f, size_t n, char *out,
			 size_t out_size, size_t *len_r, const char **error_r)
{
	size_t o = 0;
	if (n == 0 || f[0] == NULL || f[0][0] == '\0') {
		*error_r = "empty command";
		return -1;
	}
	if (n > ADMIN_FIELDS_MAX) {
		*error_r = "too many fields in the request";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t l = f[i] != NULL ? strlen(f[i]) : 0;
		if (l > 0 && !text_ok(f[i], l, false, error_r)) {
			if (memchr(f[i], '\t', l) != NULL)
				*error_r = "a TAB in an argument";
			return -1;
		}
		if (o + (i > 0) + l > ADMIN_LINE_MAX) {
			*error_r = "request line longer than 8192 bytes";
			return -1;
		}
		if (o + (i > 0) + l + 1 >= out_size) {
			*error_r = "request longer than its buffer";
			return -1;
		}
		if (i > 0)
			out[o++] = '\t';
		if (l > 0)
			memcpy(out + o, f[i], l);
		o += l;
	}
	out[o++] = '\n';
	out[o] = '\0';
	*len_r = o;
	return 0;
}

size_t admin_format_reply(char *out, size_t out_size, const char *prefix,
			  const char *text, bool tabs_ok)
{
	size_t pl = strlen(prefix);
	if (out_size < pl + 1)
		return 0;
	size_t cap = out_size < ADMIN_REPLY_LINE_MAX ? out_size
						     : ADMIN_REPLY_LINE_MAX;
	size_t o = 0;
	memcpy(out, prefix, pl);
	o = pl;
	if (text != NULL && text[0] != '\0' && o + 2 < cap) {
		out[o++] = ' ';
		const unsigned char *u = (const unsigned char *)text;
		size_t tl = strlen(text);
		for (size_t i = 0; i < tl && o + 1 < cap;) {
			unsigned char c = u[i];
			if (c == '\t') {
				out[o++] = tabs_ok ? '\t' : ' ';
				i++;
				continue;
			}
			if (c < 0x20 || c == 0x7f) {
				out[o++] = '?';
				i++;
				continue;
			}
			size_t k = utf8_seq(u + i, tl - i);
			if (k == 0) {
				out[o++] = '?';
				i++;
				continue;
			}
			if (o + k + 1 > cap)
				break; /* never cut a character in two */
			memcpy(out + o, u + i, k);
			o += k;
			i += k;
		}
	}
	out[o++] = '\n';
	if (o < out_size)
		out[o] = '\0';
	return o;
}

admin_line_kind admin_line_classify(const char *line, const char **text_r)
{
	static const struct {
		const char *p;
		admin_line_kind k;
	} kinds[] = {
		{ "*", ADMIN_LINE_DATA },
		{ "ok", ADMIN_LINE_OK },
		{ "error", ADMIN_LINE_ERROR },
	};
	*text_r = "";
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t pl = strlen(kinds[i].p);
		if (strncmp(line, kinds[i].p, pl) != 0)
			continue;
		if (line[pl] == '\0')
			return kinds[i].k;
		if (line[pl] == ' ') {
			*text_r = line + pl + 1;
			return kinds[i].k;
		}
	}
	return ADMIN_LINE_BAD;
}
