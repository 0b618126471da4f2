/*
 * authres.c — Authentication-Results (RFC 8601): our field built, and the
 * authserv-id of a received one read.  See authres.h for the grammar, the
 * limits and what is refused.  Pure: no I/O, no allocation; values are
 * made safe in fixed stack buffers, the field is written into the
 * caller's buffer.
 */
#include "authres.h"

#include "util.h"

#include <string.h>

#define LINE_MAX_COLS 78u
#define NAME "Authentication-Results:"

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* RFC 2045 token character: printable ASCII but SPACE and tspecials. */
static bool token_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* RFC 5322 atext. */
static bool atext(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* ============================================================= building */

typedef struct sb {
	char *p;
	size_t n, cap;
	size_t col;     /* characters on the current line */
	bool over;
} sb;

static void sb_raw(sb *b, const char *s, size_t n)
{
	if (b->over || n >= b->cap - b->n) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	b->col += n;
}

/* One item that is never broken, after a space or a fold. */
static void sb_item(sb *b, const char *s, size_t n)
{
	if (b->col + 1 + n > LINE_MAX_COLS && b->col > 1) {
		sb_raw(b, "\r\n", 2);
		b->col = 0;
	}
	sb_raw(b, " ", 1);
	sb_raw(b, s, n);
}

static bool in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static const char *const spf_results[] = { "none", "neutral", "pass",
	"fail", "softfail", "temperror", "permerror", "policy", NULL };
static const char *const dkim_results[] = { "none", "pass", "fail",
	"policy", "neutral", "temperror", "permerror", NULL };
static const char *const dmarc_results[] = { "none", "pass", "fail",
	"temperror", "permerror", NULL };
static const char *const arc_results[] = { "none", "pass", "fail", NULL };
static const char *const amp_did_results[] = { "none", "pass", "fail",
	"temperror", "permerror", NULL };

/* The value made safe (see authres.h) into out (NUL-terminated);
 * returns its length. */
static size_t sanitise(const char *in, char out[AUTHRES_VALUE_MAX + 1])
{
	const uint8_t *s = (const uint8_t *)in;
	size_t len = strnlen(in, AUTHRES_PARSE_MAX);
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = s[i] < 0x80 ? 1 : util_utf8_seq(s + i, len - i, &cp);
		if (n == 0 || (n == 1 && (s[i] < 0x20 || s[i] == 0x7f)) ||
		    (n == 2 && cp < 0xa0)) {  /* C1 controls too */
			if (o + 1 > AUTHRES_VALUE_MAX)
				break;
			out[o++] = '?';
			i += n == 0 ? 1 : n;
			continue;
		}
		if (o + n > AUTHRES_VALUE_MAX)
			break;
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return o;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!token_char((uint8_t)s[i]))
			return false;
	return true;
}

/* local-part "@" domain with a dot-atom local-part and a token domain
 * (RFC 8601 pvalue, the address form). */
static bool is_addr(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (at == NULL)
		return false;
	size_t ln = (size_t)(at - s);
	if (!is_token(at + 1, n - ln - 1))
		return false;
	if (ln == 0)
		return true;    /* "@domain" is a pvalue too */
	bool dot_ok = false;
	for (size_t i = 0; i < ln; i++) {
		if (s[i] == '.') {
			if (!dot_ok)
				return false;
			dot_ok = false;
		} else if (atext((uint8_t)s[i])) {
			dot_ok = true;
		} else {
			return false;
		}
	}
	return dot_ok;
}

/* ptype.property=value as one item. */
static void sb_prop(sb *b, const char *prop, const char *val, bool semi)
{
	char v[AUTHRES_VALUE_MAX + 1];
	char item[2 * AUTHRES_VALUE_MAX + 40];
	size_t vn = sanitise(val, v), o = 0;
	size_t pn = strlen(prop);
	memcpy(item, prop, pn);
	o = pn;
	item[o++] = '=';
	if (is_token(v, vn) || is_addr(v, vn)) {
		memcpy(item + o, v, vn);
		o += vn;
	} else {
		item[o++] = '"';
		for (size_t i = 0; i < vn; i++) {
			if (v[i] == '"' || v[i] == '\\')
				item[o++] = '\\';
			item[o++] = v[i];
		}
		item[o++] = '"';
	}
	if (semi)
		item[o++] = ';';
	sb_item(b, item, o);
}

/* "method=result" and its properties (NULL values left out): the last
 * item gets the ';' when semi. */
static void sb_resinfo(sb *b, const char *method, const char *result,
		       const char *const *props, const char *const *vals,
		       size_t n, bool semi)
{
	size_t last = n;
	for (size_t i = 0; i < n; i++)
		if (vals[i] != NULL)
			last = i;
	char item[64];
	size_t mn = strlen(method), rn = strlen(result);
	memcpy(item, method, mn);
	item[mn] = '=';
	memcpy(item + mn + 1, result, rn);
	size_t o = mn + 1 + rn;
	if (semi && last == n)
		item[o++] = ';';
	sb_item(b, item, o);
	for (size_t i = 0; i < n; i++)
		if (vals[i] != NULL)
			sb_prop(b, props[i], vals[i], semi && i == last);
}

/* header.b: the first AUTHRES_B_LEN characters of b=, blanks and line
 * ends removed. */
static void b_prefix(const char *b, char out[AUTHRES_B_LEN + 1])
{
	size_t o = 0;
	for (size_t i = 0; b[i] != '\0' && o < AUTHRES_B_LEN &&
			   i < AUTHRES_PARSE_MAX; i++) {
		uint8_t c = (uint8_t)b[i];
		if (is_wsp(c) || c == '\r' || c == '\n')
			continue;
		out[o++] = (char)c;
	}
	out[o] = '\0';
}

int authres_build(const char *authserv_id, const authres_results *r,
		  char *out, size_t cap, size_t *len_r, const char **error_r)
{
	*len_r = 0;
	if (out != NULL && cap > 0)
		out[0] = '\0';
	if (out == NULL || cap == 0) {
		*error_r = "no output buffer";
		return -1;
	}
	size_t idn = authserv_id != NULL ? strnlen(authserv_id,
						   AUTHRES_ID_MAX + 1) : 0;
	if (idn == 0 || idn > AUTHRES_ID_MAX ||
	    !is_token(authserv_id, idn) ||
	    !authres_id_equal(authserv_id, authserv_id)) { /* "." */
		*error_r = "the authserv-id is not a token of 1..255 bytes";
		return -1;
	}
	if (r->spf != NULL && !in_list(r->spf, spf_results)) {
		*error_r = "bad spf result";
		return -1;
	}
	if (r->n_dkim > AUTHRES_DKIM_MAX ||
	    (r->n_dkim > 0 && r->dkim == NULL)) {
		*error_r = "too many dkim results";
		return -1;
	}
	for (size_t i = 0; i < r->n_dkim; i++) {
		if (r->dkim[i].result == NULL ||
		    !in_list(r->dkim[i].result, dkim_results)) {
			*error_r = "bad dkim result";
			return -1;
		}
	}
	if (r->dmarc != NULL && !in_list(r->dmarc, dmarc_results)) {
		*error_r = "bad dmarc result";
		return -1;
	}
	if (r->arc != NULL && !in_list(r->arc, arc_results)) {
		*error_r = "bad arc result";
		return -1;
	}
	if (r->amp_did != NULL && !in_list(r->amp_did, amp_did_results)) {
		*error_r = "bad amp-did result";
		return -1;
	}

	sb b = { .p = out, .n = 0, .cap = cap, .col = 0, .over = false };
	sb_raw(&b, NAME, sizeof(NAME) - 1);
	size_t methods = (r->spf != NULL) + r->n_dkim + (r->dmarc != NULL) +
			 (r->arc != NULL) + (r->amp_did != NULL);
	char id[AUTHRES_ID_MAX + 2];
	memcpy(id, authserv_id, idn);
	id[idn] = ';';
	sb_item(&b, id, idn + 1);
	if (methods == 0)
		sb_item(&b, "none", 4);
	if (r->spf != NULL) {
		static const char *const props[] = { "smtp.mailfrom",
						     "smtp.helo" };
		const char *vals[] = { r->spf_mailfrom,
			r->spf_mailfrom == NULL ? r->spf_helo : NULL };
		sb_resinfo(&b, "spf", r->spf, props, vals, 2, --methods > 0);
	}
	for (size_t i = 0; i < r->n_dkim; i++) {
		static const char *const props[] = { "header.d", "header.i",
			"header.s", "header.a", "header.b" };
		const authres_dkim *k = &r->dkim[i];
		char bp[AUTHRES_B_LEN + 1];
		if (k->b != NULL)
			b_prefix(k->b, bp);
		bool d = k->d != NULL;
		const char *vals[] = { k->d, d ? k->i : NULL, d ? k->s : NULL,
			d ? k->a : NULL, d && k->b != NULL && bp[0] != '\0' ?
			bp : NULL };
		sb_resinfo(&b, "dkim", k->result, props, vals, 5,
			   --methods > 0);
	}
	if (r->dmarc != NULL) {
		static const char *const props[] = { "header.from" };
		const char *vals[] = { r->dmarc_from };
		sb_resinfo(&b, "dmarc", r->dmarc, props, vals, 1,
			   --methods > 0);
	}
	if (r->arc != NULL) {
		static const char *const props[] = { "" };
		const char *vals[] = { NULL };
		sb_resinfo(&b, "arc", r->arc, props, vals, 0, --methods > 0);
	}
	if (r->amp_did != NULL) {
		static const char *const props[] = { "header.d" };
		const char *vals[] = { r->amp_did_d };
		sb_resinfo(&b, "amp-did", r->amp_did, props, vals, 1, false);
	}
	sb_raw(&b, "\r\n", 2);
	if (b.over) {
		out[0] = '\0';
		*error_r = "the output buffer is too small";
		return -1;
	}
	*len_r = b.n;
	return 0;
}

/* ============================================================== reading */

typedef struct rd {
	const uint8_t *s;
	size_t len, pos;
	const char *err;
} rd;

/* FWS at pos: 1*WSP, or a line end (CRLF or LF) followed by WSP.  Skips
 * it and returns true; a line end not followed by WSP is an error. */
static bool fws(rd *r)
{
	bool any = false;
	for (;;) {
		size_t p = r->pos;
		if (p < r->len && is_wsp(r->s[p])) {
			r->pos++;
			any = true;
			continue;
		}
		size_t e = p;
		if (e < r->len && r->s[e] == '\r')
			e++;
		if (e < r->len && r->s[e] == '\n') {
			if (e + 1 < r->len && is_wsp(r->s[e + 1])) {
				r->pos = e + 2;
				any = true;
				continue;
			}
			r->err = "a line end is not followed by a blank";
		} else if (e != p) {
			r->err = "a bare CR";
		}
		return any;
	}
}

/* A comment at pos ('('): skipped.  false and r->err on error. */
static bool comment(rd *r)
{
	unsigned depth = 0;
	do {
		(void)fws(r);
		if (r->err != NULL)
			return false;
		if (r->pos >= r->len) {
			r->err = "an unclosed comment";
			return false;
		}
		uint8_t c = r->s[r->pos];
		if (c == '(') {
			if (++depth > AUTHRES_COMMENT_DEPTH) {
				r->err = "comments nest too deep";
				return false;
			}
		} else if (c == ')') {
			depth--;
		} else if (c == '\\') {
			if (r->pos + 1 >= r->len || r->s[r->pos + 1] == '\0' ||
			    r->s[r->pos + 1] == '\r' ||
			    r->s[r->pos + 1] == '\n') {
				r->err = "a bad quoted-pair in a comment";
				return false;
			}
			r->pos++;
		} else if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f) {
			r->err = "a control byte in a comment";
			return false;
		}
		r->pos++;
	} while (depth > 0);
	return true;
}

/* [CFWS]: false on error. */
static bool cfws(rd *r)
{
	for (;;) {
		(void)fws(r);
		if (r->err != NULL)
			return false;
		if (r->pos < r->len && r->s[r->pos] == '(') {
			if (!comment(r))
				return false;
			continue;
		}
		return true;
	}
}

/* authserv-id: token or quoted-string, into id_r. */
static bool read_value(rd *r, char id_r[AUTHRES_ID_MAX + 1])
{
	size_t o = 0;
	if (r->pos >= r->len) {
		r->err = "no authserv-id";
		return false;
	}
	if (r->s[r->pos] == '"') {
		r->pos++;
		for (;;) {
			/* folding inside quotes: the line end goes, the
			 * blanks after it stay (they are part of the id) */
			if (r->pos < r->len && (r->s[r->pos] == '\r' ||
						r->s[r->pos] == '\n')) {
				size_t e = r->pos;
				if (r->s[e] == '\r')
					e++;
				if (e >= r->len || r->s[e] != '\n' ||
				    e + 1 >= r->len || !is_wsp(r->s[e + 1])) {
					r->err = "a bare line end in a quoted "
						 "string";
					return false;
				}
				r->pos = e + 1;
			}
			if (r->pos >= r->len) {
				r->err = "an unclosed quoted string";
				return false;
			}
			uint8_t c = r->s[r->pos];
			if (c == '"') {
				r->pos++;
				break;
			}
			if (c == '\\') {
				if (r->pos + 1 >= r->len) {
					r->err = "a bad quoted-pair";
					return false;
				}
				c = r->s[++r->pos];
				if (c == '\0' || c == '\r' || c == '\n') {
					r->err = "a bad quoted-pair";
					return false;
				}
			} else if (c == '\0' || (c < 0x20 && c != '\t') ||
				   c == 0x7f) {
				r->err = "a control byte in a quoted string";
				return false;
			}
			if (o == AUTHRES_ID_MAX) {
				r->err = "the authserv-id is longer than 255 "
					 "bytes";
				return false;
			}
			id_r[o++] = (char)c;
			r->pos++;
		}
	} else {
		while (r->pos < r->len && token_char(r->s[r->pos])) {
			if (o == AUTHRES_ID_MAX) {
				r->err = "the authserv-id is longer than 255 "
					 "bytes";
				return false;
			}
			id_r[o++] = (char)r->s[r->pos++];
		}
	}
	id_r[o] = '\0';
	if (o == 0) {
		r->err = "no authserv-id";
		return false;
	}
	return true;
}

/* The value with its final line end dropped. */
static size_t trim_end(const uint8_t *v, size_t len)
{
	if (len > 0 && v[len - 1] == '\n')
		len--;
	if (len > 0 && v[len - 1] == '\r')
		len--;
	return len;
}

/* Reads up to and including the authserv-id (and the ARC instance). */
static bool read_head(rd *r, bool arc, char id_r[AUTHRES_ID_MAX + 1],
		      unsigned *instance_r)
{
	if (r->len > AUTHRES_PARSE_MAX) {
		r->err = "the field is longer than 65536 bytes";
		return false;
	}
	if (memchr(r->s, '\0', r->len) != NULL) {
		r->err = "a NUL in the field";
		return false;
	}
	if (!cfws(r))
		return false;
	if (arc) {
		if (r->pos >= r->len || lower(r->s[r->pos]) != 'i') {
			r->err = "no i= instance";
			return false;
		}
		r->pos++;
		if (!cfws(r))
			return false;
		if (r->pos >= r->len || r->s[r->pos] != '=') {
			r->err = "no i= instance";
			return false;
		}
		r->pos++;
		if (!cfws(r))
			return false;
		unsigned n = 0, digits = 0;
		while (r->pos < r->len && is_digit(r->s[r->pos]) &&
		       digits < 3) {
			n = n * 10 + (unsigned)(r->s[r->pos++] - '0');
			digits++;
		}
		if (digits == 0 || n == 0 || n > AUTHRES_ARC_I_MAX ||
		    (r->pos < r->len && is_digit(r->s[r->pos]))) {
			r->err = "the ARC instance is not 1..50";
			return false;
		}
		*instance_r = n;
		if (!cfws(r))
			return false;
		if (r->pos >= r->len || r->s[r->pos] != ';') {
			r->err = "no ';' after the ARC instance";
			return false;
		}
		r->pos++;
		if (!cfws(r))
			return false;
	}
	return read_value(r, id_r);
}

int authres_parse_id(const uint8_t *value, size_t len, bool arc,
		     char id_r[AUTHRES_ID_MAX + 1], unsigned *instance_r,
		     unsigned *version_r, const char **error_r)
{
	rd r = { .s = value, .len = trim_end(value, len), .pos = 0,
		 .err = NULL };
	*instance_r = 0;
	*version_r = 1;
	id_r[0] = '\0';
	if (!read_head(&r, arc, id_r, instance_r))
		goto fail;
	size_t before = r.pos;
	if (!cfws(&r))
		goto fail;
	/* [CFWS authres-version] */
	if (r.pos < r.len && is_digit(r.s[r.pos])) {
		if (r.pos == before) {
			r.err = "the authserv-id is not followed by ';'";
			goto fail;
		}
		unsigned v = 0, digits = 0;
		while (r.pos < r.len && is_digit(r.s[r.pos])) {
			if (++digits > 9) {
				r.err = "the version is too long";
				goto fail;
			}
			v = v * 10 + (unsigned)(r.s[r.pos++] - '0');
		}
		*version_r = v;
		if (!cfws(&r))
			goto fail;
	}
	if (r.pos < r.len && r.s[r.pos] == ';')
		return 0;
	if (r.len - r.pos >= 4 && lower(r.s[r.pos]) == 'n' &&
	    lower(r.s[r.pos + 1]) == 'o' && lower(r.s[r.pos + 2]) == 'n' &&
	    lower(r.s[r.pos + 3]) == 'e') {
		r.pos += 4;
		if (!cfws(&r))
			goto fail;
		if (r.pos == r.len)
			return 0;
	}
	r.err = r.pos == r.len ? "no result after the authserv-id" :
		"the authserv-id is not followed by ';' or \"none\"";
fail:
	id_r[0] = '\0';
	*instance_r = 0;
	*error_r = r.err != NULL ? r.err : "malformed";
	return -1;
}

bool authres_id_equal(const char *a, const char *b)
{
	size_t na = strnlen(a, AUTHRES_ID_MAX + 2);
	size_t nb = strnlen(b, AUTHRES_ID_MAX + 2);
	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	if (na != nb || na == 0)
		return false;
	for (size_t i = 0; i < na; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

/* 1: reads and equals our_id; 0: reads, another id; -1: unreadable. */
static int claims(const uint8_t *value, size_t len, bool arc,
		  const char *our_id)
{
	char id[AUTHRES_ID_MAX + 1];
	unsigned inst = 0;
	rd r = { .s = value, .len = trim_end(value, len), .pos = 0,
		 .err = NULL };
	if (!read_head(&r, arc, id, &inst))
		return -1;
	return authres_id_equal(id, our_id) ? 1 : 0;
}

bool authres_claims_id(const uint8_t *value, size_t len, bool arc,
		       const char *our_id)
{
	return claims(value, len, arc, our_id) == 1;
}

size_t authres_scan(const uint8_t *msg, size_t len, const char *our_id,
		    bool drop_unreadable, mail_field *found_r, size_t cap)
{
	mail_header_iter it;
	mail_field f;
	size_t n = 0;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (!mail_field_is(msg, &f, "Authentication-Results"))
			continue;
		int c = claims(msg + f.value_off, f.off + f.len - f.value_off,
			       false, our_id);
		if (c == 1 || (c == -1 && drop_unreadable)) {
			if (n < cap)
				found_r[n] = f;
			n++;
		}
	}
	return n;
}
