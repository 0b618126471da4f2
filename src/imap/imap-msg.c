/*
 * imap-msg.c — what IMAP shows of one message (see imap-msg.h): ENVELOPE,
 * BODY, BODYSTRUCTURE, BODY[section] slices and the SEARCH text matches,
 * computed from the message's bytes over the MIME tree of src/mime/mime.c.
 * Pure: no I/O, no logging.  Owns nothing beyond the strings it returns.
 *
 * Where RFC 3501 leaves room, the output is Dovecot 2.3's (checked by
 * tests/e2e/test_imap_msg_dovecot.py):
 *  - header values in ENVELOPE (date, subject, message-id, in-reply-to)
 *    and in BODYSTRUCTURE (id, description, location) are raw: the bytes
 *    after the colon, leading blanks skipped, CR, LF and NUL removed,
 *    encoded-words left as they are; the first field of each name counts;
 *  - addresses: RFC 5322 parsing of the raw value, the display name is
 *    the phrase (quoted strings unquoted, words joined by one space) or,
 *    without one, the last comment after the addr-spec; a missing local
 *    part or domain is "MISSING_MAILBOX" / "MISSING_DOMAIN"; groups are
 *    (NIL NIL "name" NIL) ... (NIL NIL NIL NIL);
 *  - Content-Type and parameter names keep their case; a text part
 *    without a charset is given ("charset" "us-ascii") last; RFC 2231
 *    parameters are shown undecoded; a multipart without parts (no
 *    boundary) shows one empty text/plain part;
 *  - strings are quoted unless they hold '"', '\\' or an 8-bit byte, then
 *    they are literals;
 *  - sizes and line counts are of the bytes as given: a caller that
 *    stores CRLF (as the bridge does) gets what IMAP means.
 */
#include "imap-msg.h"

#include "mail-date.h"
#include "mail-header.h"
#include "mime-decode.h"
#include "mime.h"

#include <limits.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

/* Parameters kept per Content-Type / Content-Disposition: more are
 * dropped (Dovecot keeps them all, but a part's header is capped anyway). */
#define PARAMS_MAX 64u
/* Language tags kept per Content-Language. */
#define LANGS_MAX 32u

/* ---- output buffer, capped ---- */

typedef struct sb {
	char *p;
	size_t len, cap, max;
	bool over;  /* went past max: the result is refused */
} sb;

static void sb_put(sb *o, const void *d, size_t n)
{
	if (o->over)
		return;
	if (n > o->max - o->len) {
		o->over = true;
		return;
	}
	if (o->len + n + 1 > o->cap) {
		size_t c = o->cap == 0 ? 256 : o->cap;
		while (c < o->len + n + 1)
			c = c > SIZE_MAX / 2 ? SIZE_MAX : c * 2;
		char *np = realloc(o->p, c);
		if (np == NULL)
			abort();
		o->p = np;
		o->cap = c;
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void sb_str(sb *o, const char *s)
{
	sb_put(o, s, strlen(s));
}

static void sb_byte(sb *o, char c)
{
	sb_put(o, &c, 1);
}

static void sb_num(sb *o, uint64_t v)
{
	char t[24];
	size_t i = sizeof(t);
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	sb_put(o, t + i, sizeof(t) - i);
}

/* An IMAP string of s[0..n) with CR, LF and NUL left out: quoted, or a
 * literal when it holds '"', '\\' or an 8-bit byte (Dovecot's choice). */
static void put_string(sb *o, const uint8_t *s, size_t n)
{
	size_t keep = 0;
	bool lit = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c == '\r' || c == '\n' || c == '\0')
			continue;
		keep++;
		if (c == '"' || c == '\\' || c >= 0x80)
			lit = true;
	}
	if (lit) {
		sb_byte(o, '{');
		sb_num(o, keep);
		sb_str(o, "}\r\n");
	} else {
		sb_byte(o, '"');
	}
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c == '\r' || c == '\n' || c == '\0') {
			sb_put(o, s + i - run, run);
			run = 0;
			continue;
		}
		run++;
	}
	sb_put(o, s + n - run, run);
	if (!lit)
		sb_byte(o, '"');
}

/* ---- header fields ---- */

typedef struct span {
	const uint8_t *p;
	size_t n;
	bool ok;  /* the field is present */
} span;

/* The raw value of a field: after the colon, leading SP/HTAB skipped,
 * without the final line end. */
static span field_value(const uint8_t *h, const mail_field *f)
{
	size_t a = f->value_off, e = f->off + f->len;
	if (e > a && h[e - 1] == '\n')
		e--;
	if (e > a && h[e - 1] == '\r')
		e--;
	while (a < e && (h[a] == ' ' || h[a] == '\t'))
		a++;
	return (span){ h + a, e - a, true };
}

/* The first field called name in the header section h[0..n). */
static span header_get(const uint8_t *h, size_t n, const char *name)
{
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, h, n);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(h, &f, name))
			return field_value(h, &f);
	}
	return (span){ NULL, 0, false };
}

static void put_nspan(sb *o, span v)
{
	if (!v.ok)
		sb_str(o, "NIL");
	else
		put_string(o, v.p, v.n);
}

/* ---- RFC 822 tokens (a cursor over one value) ---- */

typedef struct cur {
	const uint8_t *p;
	size_t i, n;
	sb comment;    /* the last comment skipped, when asked for */
	bool want_comment;
} cur;

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip blanks, line ends and (nested) comments. */
static void skip_cfws(cur *c)
{
	while (c->i < c->n) {
		uint8_t ch = c->p[c->i];
		if (is_wsp(ch)) {
			c->i++;
			continue;
		}
		if (ch != '(')
			return;
		unsigned depth = 0;
		size_t start = c->i + 1, stop = c->i + 1;
		while (c->i < c->n) {
			ch = c->p[c->i];
			if (ch == '\\' && c->i + 1 < c->n) {
				c->i += 2;
				continue;
			}
			c->i++;
			if (ch == '(') {
				depth++;
			} else if (ch == ')') {
				if (--depth == 0) {
					stop = c->i - 1;
					break;
				}
			}
			stop = c->i;
		}
		if (c->want_comment) {
			c->comment.len = 0;
			c->comment.over = false;
			/* the comment's text, escapes undone */
			for (size_t k = start; k < stop; k++) {
				if (c->p[k] == '\\' && k + 1 < stop)
					k++;
				if (c->p[k] == '\r' || c->p[k] == '\n')
					continue;
				sb_byte(&c->comment, (char)c->p[k]);
			}
		}
	}
}

static bool is_atext(uint8_t c)
{
	if (c <= 32 || c == 127)
		return false;
	return strchr("()<>[]:;@\\,.\"", c) == NULL;
}

static bool is_mime_token(uint8_t c)
{
	if (c <= 32 || c == 127)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A quoted string at c->p[c->i] == '"', its content (escapes undone,
 * line ends dropped) appended to out. */
static bool take_quoted(cur *c, sb *out)
{
	c->i++;
	while (c->i < c->n) {
		uint8_t ch = c->p[c->i++];
		if (ch == '"')
			return true;
		if (ch == '\\' && c->i < c->n)
			ch = c->p[c->i++];
		else if (ch == '\r' || ch == '\n')
			continue;
		sb_byte(out, (char)ch);
	}
	return false;
}

static bool take_token(cur *c, sb *out)
{
	size_t s = c->i;
	while (c->i < c->n && is_mime_token(c->p[c->i]))
		c->i++;
	sb_put(out, c->p + s, c->i - s);
	return c->i > s;
}

/* ---- addresses ---- */

typedef struct addr_ctx {
	sb *o;
	unsigned count;
	bool opened;
} addr_ctx;

static void addr_open(addr_ctx *a)
{
	if (!a->opened) {
		sb_byte(a->o, '(');
		a->opened = true;
	}
	a->count++;
}

static void put_nsb(sb *o, const sb *s, bool empty_is_nil)
{
	if (s->len == 0 && empty_is_nil)
		sb_str(o, "NIL");
	else
		put_string(o, (const uint8_t *)(s->p != NULL ? s->p : ""),
			   s->len);
}

static void addr_emit(addr_ctx *a, const sb *name, const sb *route,
		      const sb *mbox, const sb *host)
{
	addr_open(a);
	sb_byte(a->o, '(');
	put_nsb(a->o, name, true);
	sb_byte(a->o, ' ');
	put_nsb(a->o, route, true);
	sb_byte(a->o, ' ');
	if (mbox->len == 0)
		sb_str(a->o, "\"MISSING_MAILBOX\"");
	else
		put_nsb(a->o, mbox, false);
	sb_byte(a->o, ' ');
	if (host->len == 0)
		sb_str(a->o, "\"MISSING_DOMAIN\"");
	else
		put_nsb(a->o, host, false);
	sb_byte(a->o, ')');
}

static void sb_reset(sb *s)
{
	s->len = 0;
	s->over = false;
	if (s->p != NULL)
		s->p[0] = '\0';
}

/* A phrase: words (atoms with dots, quoted strings) joined by one space.
 * Returns the number of words. */
static unsigned take_phrase(cur *c, sb *out)
{
	unsigned words = 0;
	for (;;) {
		skip_cfws(c);
		if (c->i >= c->n)
			break;
		uint8_t ch = c->p[c->i];
		if (ch != '"' && !is_atext(ch) && ch != '.')
			break;
		if (words > 0)
			sb_byte(out, ' ');
		if (ch == '"') {
			take_quoted(c, out);
		} else {
			size_t s = c->i;
			while (c->i < c->n &&
			       (is_atext(c->p[c->i]) || c->p[c->i] == '.'))
				c->i++;
			sb_put(out, c->p + s, c->i - s);
		}
		words++;
	}
	return words;
}

/* local-part: dot-atom or quoted string (unquoted), with CFWS between
 * the pieces. */
static void take_local(cur *c, sb *out)
{
	for (;;) {
		skip_cfws(c);
		if (c->i >= c->n)
			return;
		uint8_t ch = c->p[c->i];
		if (ch == '"') {
			take_quoted(c, out);
		} else if (is_atext(ch)) {
			size_t s = c->i;
			while (c->i < c->n && is_atext(c->p[c->i]))
				c->i++;
			sb_put(out, c->p + s, c->i - s);
		} else {
			return;
		}
		skip_cfws(c);
		if (c->i < c->n && c->p[c->i] == '.') {
			sb_byte(out, '.');
			c->i++;
			continue;
		}
		return;
	}
}

/* domain: dot-atom or a domain literal "[...]" kept with its brackets. */
static void take_domain(cur *c, sb *out)
{
	for (;;) {
		skip_cfws(c);
		if (c->i >= c->n)
			return;
		uint8_t ch = c->p[c->i];
		if (ch == '[') {
			size_t s = c->i;
			while (c->i < c->n && c->p[c->i] != ']') {
				if (c->p[c->i] == '\\' && c->i + 1 < c->n)
					c->i++;
				c->i++;
			}
			if (c->i < c->n)
				c->i++;
			sb_put(out, c->p + s, c->i - s);
		} else if (is_atext(ch)) {
			size_t s = c->i;
			while (c->i < c->n && is_atext(c->p[c->i]))
				c->i++;
			sb_put(out, c->p + s, c->i - s);
		} else {
			return;
		}
		skip_cfws(c);
		if (c->i < c->n && c->p[c->i] == '.') {
			sb_byte(out, '.');
			c->i++;
			continue;
		}
		return;
	}
}

/* addr-spec into mbox and host. */
static void take_addr_spec(cur *c, sb *mbox, sb *host)
{
	take_local(c, mbox);
	skip_cfws(c);
	if (c->i < c->n && c->p[c->i] == '@') {
		c->i++;
		take_domain(c, host);
	}
}

/* angle-addr after '<': [route ":"] addr-spec ">". */
static void take_angle(cur *c, sb *route, sb *mbox, sb *host)
{
	skip_cfws(c);
	if (c->i < c->n && c->p[c->i] == '@') {
		/* obs-route: "@a,@b:" */
		size_t s = c->i;
		while (c->i < c->n && c->p[c->i] != ':' && c->p[c->i] != '>')
			c->i++;
		if (c->i < c->n && c->p[c->i] == ':') {
			sb_put(route, c->p + s, c->i - s);
			c->i++;
		} else {
			c->i = s;
		}
	}
	take_addr_spec(c, mbox, host);
	skip_cfws(c);
	while (c->i < c->n && c->p[c->i] != '>' && c->p[c->i] != ',')
		c->i++;
	if (c->i < c->n && c->p[c->i] == '>')
		c->i++;
}

/* One mailbox (name-addr or addr-spec) starting at c->i; false when
 * nothing could be read (c->i then moves past one byte). */
static void take_mailbox(cur *c, addr_ctx *a, sb *name, sb *route, sb *mbox,
			 sb *host, bool in_group, bool *group_r)
{
	sb_reset(name);
	sb_reset(route);
	sb_reset(mbox);
	sb_reset(host);
	*group_r = false;
	size_t start = c->i;
	take_phrase(c, name);
	skip_cfws(c);
	if (c->i < c->n && c->p[c->i] == '<') {
		c->i++;
		take_angle(c, route, mbox, host);
		addr_emit(a, name, route, mbox, host);
		return;
	}
	if (!in_group && c->i < c->n && c->p[c->i] == ':') {
		c->i++;
		*group_r = true;
		return;
	}
	/* an addr-spec: read it again from the start */
	c->i = start;
	sb_reset(name);
	c->want_comment = true;
	sb_reset(&c->comment);
	take_addr_spec(c, mbox, host);
	skip_cfws(c);
	c->want_comment = false;
	if (mbox->len == 0 && host->len == 0 && c->i == start) {
		/* not an address: skip the byte */
		c->i++;
		return;
	}
	addr_emit(a, &c->comment, route, mbox, host);
}

/* An address list as ENVELOPE wants it, or NIL. */
static void put_addresses(sb *o, span v)
{
	if (!v.ok) {
		sb_str(o, "NIL");
		return;
	}
	cur c = { .p = v.p, .n = v.n };
	c.comment.max = v.n + 1;
	sb name = { .max = v.n + 1 }, route = { .max = v.n + 1 };
	sb mbox = { .max = v.n + 1 }, host = { .max = v.n + 1 };
	addr_ctx a = { .o = o };
	bool in_group = false;
	while (c.i < c.n) {
		skip_cfws(&c);
		if (c.i >= c.n)
			break;
		uint8_t ch = c.p[c.i];
		if (ch == ',') {
			c.i++;
			continue;
		}
		if (ch == ';' && in_group) {
			c.i++;
			in_group = false;
			addr_open(&a);
			sb_str(o, "(NIL NIL NIL NIL)");
			continue;
		}
		bool group;
		take_mailbox(&c, &a, &name, &route, &mbox, &host, in_group,
			     &group);
		if (group) {
			in_group = true;
			addr_open(&a);
			sb_str(o, "(NIL NIL ");
			put_nsb(o, &name, false);
			sb_str(o, " NIL)");
		}
	}
	if (in_group) {
		addr_open(&a);
		sb_str(o, "(NIL NIL NIL NIL)");
	}
	if (a.opened)
		sb_byte(o, ')');
	else
		sb_str(o, "NIL");
	free(c.comment.p);
	free(name.p);
	free(route.p);
	free(mbox.p);
	free(host.p);
}

/* ---- ENVELOPE ---- */

static void put_envelope(sb *o, const uint8_t *h, size_t n)
{
	span date = { 0 }, subject = { 0 }, from = { 0 }, sender = { 0 };
	span reply = { 0 }, to = { 0 }, cc = { 0 }, bcc = { 0 };
	span irt = { 0 }, mid = { 0 };
	static const char *const names[] = {
		"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc",
		"Bcc", "In-Reply-To", "Message-ID",
	};
	span *slots[] = { &date, &subject, &from, &sender, &reply, &to, &cc,
			  &bcc, &irt, &mid };
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, h, n);
	while (mail_header_next(&it, &f) == 1) {
		for (size_t k = 0; k < sizeof(slots) / sizeof(slots[0]); k++) {
			if (!slots[k]->ok && mail_field_is(h, &f, names[k])) {
				*slots[k] = field_value(h, &f);
				break;
			}
		}
	}
	sb_byte(o, '(');
	put_nspan(o, date);
	sb_byte(o, ' ');
	put_nspan(o, subject);
	sb_byte(o, ' ');
	size_t mark = o->len;
	put_addresses(o, from);
	size_t from_len = o->len - mark;
	for (int k = 0; k < 2; k++) {
		span v = k == 0 ? sender : reply;
		sb_byte(o, ' ');
		size_t m2 = o->len;
		put_addresses(o, v);
		if (!o->over && o->len - m2 == 3 &&
		    memcmp(o->p + m2, "NIL", 3) == 0) {
			/* absent or empty: the From addresses */
			o->len = m2;
			if (!o->over && from_len <= o->max - o->len) {
				sb_put(o, o->p + mark, from_len);
			} else {
				o->over = true;
			}
		}
	}
	span rest[] = { to, cc, bcc };
	for (size_t k = 0; k < 3; k++) {
		sb_byte(o, ' ');
		put_addresses(o, rest[k]);
	}
	sb_byte(o, ' ');
	put_nspan(o, irt);
	sb_byte(o, ' ');
	put_nspan(o, mid);
	sb_byte(o, ')');
}

/* ---- BODY / BODYSTRUCTURE ---- */

typedef struct pview {
	const uint8_t *msg;
	const mime_tree *t;      /* NULL: the message as one text part */
	size_t body_off, len;    /* for the one-part view */
} pview;

/* "(name value ...)" of a parameter list at c, or NIL. add_charset: a
 * text part, ("charset" "us-ascii") appended when there is none. */
static void put_params(sb *o, cur *c, bool add_charset)
{
	sb name = { .max = c->n + 1 }, val = { .max = c->n + 1 };
	unsigned n = 0;
	bool charset = false;
	for (;;) {
		skip_cfws(c);
		if (c->i >= c->n || c->p[c->i] != ';')
			break;
		c->i++;
		skip_cfws(c);
		sb_reset(&name);
		sb_reset(&val);
		if (!take_token(c, &name))
			continue;
		skip_cfws(c);
		if (c->i >= c->n || c->p[c->i] != '=')
			break;
		c->i++;
		skip_cfws(c);
		if (c->i < c->n && c->p[c->i] == '"') {
			if (!take_quoted(c, &val))
				break;
		} else if (!take_token(c, &val)) {
			break;
		}
		if (n >= PARAMS_MAX)
			continue;
		sb_byte(o, n == 0 ? '(' : ' ');
		put_string(o, (const uint8_t *)name.p, name.len);
		sb_byte(o, ' ');
		put_string(o, (const uint8_t *)(val.p != NULL ? val.p : ""),
			   val.len);
		if (name.len == 7 && strncasecmp(name.p, "charset", 7) == 0)
			charset = true;
		n++;
	}
	if (add_charset && !charset) {
		sb_str(o, n == 0 ? "(" : " ");
		sb_str(o, "\"charset\" \"us-ascii\"");
		n++;
	}
	sb_str(o, n == 0 ? "NIL" : ")");
	free(name.p);
	free(val.p);
}

typedef struct ctype {
	sb type, subtype;
	cur params;   /* positioned at the parameters */
	bool ok;
} ctype;

/* Content-Type of a header section; defaults text/plain (or dflt_msg:
 * message/rfc822 in a digest). */
static void read_ctype(const uint8_t *h, size_t n, ctype *ct, bool dflt_msg)
{
	span v = header_get(h, n, "Content-Type");
	memset(ct, 0, sizeof(*ct));
	ct->type.max = ct->subtype.max = MIME_TOKEN_MAX + 1;
	if (v.ok) {
		cur c = { .p = v.p, .n = v.n };
		skip_cfws(&c);
		if (take_token(&c, &ct->type)) {
			skip_cfws(&c);
			if (c.i < c.n && c.p[c.i] == '/') {
				c.i++;
				skip_cfws(&c);
				if (take_token(&c, &ct->subtype) &&
				    !ct->type.over && !ct->subtype.over) {
					ct->ok = true;
					ct->params = c;
					return;
				}
			}
		}
	}
	sb_reset(&ct->type);
	sb_reset(&ct->subtype);
	sb_str(&ct->type, dflt_msg ? "message" : "text");
	sb_str(&ct->subtype, dflt_msg ? "rfc822" : "plain");
	ct->params = (cur){ .p = (const uint8_t *)"", .n = 0 };
}

static void ctype_free(ctype *ct)
{
	free(ct->type.p);
	free(ct->subtype.p);
}

static bool sb_is(const sb *s, const char *w)
{
	size_t n = strlen(w);
	return s->len == n && strncasecmp(s->p, w, n) == 0;
}

static size_t count_lf(const uint8_t *p, size_t n)
{
	size_t k = 0;
	const uint8_t *e = p + n;
	while (p < e) {
		const uint8_t *q = memchr(p, '\n', (size_t)(e - p));
		if (q == NULL)
			break;
		k++;
		p = q + 1;
	}
	return k;
}

/* Content-Disposition: ("type" params) or NIL. */
static void put_disposition(sb *o, const uint8_t *h, size_t n)
{
	span v = header_get(h, n, "Content-Disposition");
	if (!v.ok) {
		sb_str(o, "NIL");
		return;
	}
	cur c = { .p = v.p, .n = v.n };
	sb tok = { .max = v.n + 1 };
	skip_cfws(&c);
	if (!take_token(&c, &tok)) {
		sb_str(o, "NIL");
		free(tok.p);
		return;
	}
	sb_byte(o, '(');
	put_string(o, (const uint8_t *)tok.p, tok.len);
	sb_byte(o, ' ');
	put_params(o, &c, false);
	sb_byte(o, ')');
	free(tok.p);
}

/* Content-Language: ("tag" ...) or NIL. */
static void put_language(sb *o, const uint8_t *h, size_t n)
{
	span v = header_get(h, n, "Content-Language");
	unsigned k = 0;
	if (v.ok) {
		cur c = { .p = v.p, .n = v.n };
		sb tok = { .max = v.n + 1 };
		for (;;) {
			skip_cfws(&c);
			if (c.i < c.n && c.p[c.i] == ',') {
				c.i++;
				continue;
			}
			sb_reset(&tok);
			if (!take_token(&c, &tok))
				break;
			if (k >= LANGS_MAX)
				continue;
			sb_byte(o, k == 0 ? '(' : ' ');
			put_string(o, (const uint8_t *)tok.p, tok.len);
			k++;
		}
		free(tok.p);
	}
	sb_str(o, k == 0 ? "NIL" : ")");
}

static void put_part(sb *o, const pview *v, uint32_t idx, bool ext,
		     bool dflt_msg);

/* The parts of a multipart, then its subtype and extension data. */
static void put_multipart(sb *o, const pview *v, const mime_part *p,
			  ctype *ct, const uint8_t *h, size_t hn, bool ext)
{
	sb_byte(o, '(');
	bool digest = sb_is(&ct->subtype, "digest");
	if (p->n_children == 0) {
		sb_str(o, ext ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
				"NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
			      : "(\"text\" \"plain\" (\"charset\" "
				"\"us-ascii\") NIL NIL \"7bit\" 0 0)");
	}
	for (uint32_t c = p->first_child; c != MIME_NONE;
	     c = v->t->parts[c].next_sibling)
		put_part(o, v, c, ext, digest);
	sb_byte(o, ' ');
	put_string(o, (const uint8_t *)ct->subtype.p, ct->subtype.len);
	if (ext) {
		sb_byte(o, ' ');
		put_params(o, &ct->params, false);
		sb_byte(o, ' ');
		put_disposition(o, h, hn);
		sb_byte(o, ' ');
		put_language(o, h, hn);
		sb_byte(o, ' ');
		put_nspan(o, header_get(h, hn, "Content-Location"));
	}
	sb_byte(o, ')');
}

static void put_part(sb *o, const pview *v, uint32_t idx, bool ext,
		     bool dflt_msg)
{
	size_t hoff, boff, end;
	const mime_part *p = NULL;
	if (v->t != NULL) {
		p = &v->t->parts[idx];
		hoff = p->hdr_off;
		boff = p->body_off;
		end = p->end;
	} else {
		hoff = 0;
		boff = v->body_off;
		end = v->len;
	}
	const uint8_t *h = v->msg + hoff;
	size_t hn = boff - hoff;
	ctype ct;
	read_ctype(h, hn, &ct, dflt_msg);
	if (v->t == NULL) {
		/* unparsable within the limits: one text/plain part */
		sb_reset(&ct.type);
		sb_reset(&ct.subtype);
		sb_str(&ct.type, "text");
		sb_str(&ct.subtype, "plain");
		ct.params = (cur){ .p = (const uint8_t *)"", .n = 0 };
	}
	bool multi = p != NULL && sb_is(&ct.type, "multipart") &&
		     (p->n_children > 0 || (p->flags & MIME_PART_NO_BOUNDARY));
	if (multi) {
		put_multipart(o, v, p, &ct, h, hn, ext);
		ctype_free(&ct);
		return;
	}
	bool text = sb_is(&ct.type, "text");
	bool message = p != NULL && p->n_children == 1 &&
		       sb_is(&ct.type, "message");
	sb_byte(o, '(');
	put_string(o, (const uint8_t *)ct.type.p, ct.type.len);
	sb_byte(o, ' ');
	put_string(o, (const uint8_t *)ct.subtype.p, ct.subtype.len);
	sb_byte(o, ' ');
	put_params(o, &ct.params, text);
	sb_byte(o, ' ');
	put_nspan(o, header_get(h, hn, "Content-ID"));
	sb_byte(o, ' ');
	put_nspan(o, header_get(h, hn, "Content-Description"));
	sb_byte(o, ' ');
	span enc = header_get(h, hn, "Content-Transfer-Encoding");
	if (enc.ok) {
		cur c = { .p = enc.p, .n = enc.n };
		sb tok = { .max = enc.n + 1 };
		skip_cfws(&c);
		if (take_token(&c, &tok))
			put_string(o, (const uint8_t *)tok.p, tok.len);
		else
			sb_str(o, "\"7bit\"");
		free(tok.p);
	} else {
		sb_str(o, "\"7bit\"");
	}
	sb_byte(o, ' ');
	sb_num(o, end - boff);
	if (message) {
		uint32_t ch = p->first_child;
		const mime_part *cp = &v->t->parts[ch];
		sb_byte(o, ' ');
		put_envelope(o, v->msg + cp->hdr_off,
			     cp->body_off - cp->hdr_off);
		sb_byte(o, ' ');
		put_part(o, v, ch, ext, false);
	}
	if (text || message) {
		sb_byte(o, ' ');
		sb_num(o, count_lf(v->msg + boff, end - boff));
	}
	if (ext) {
		sb_str(o, " NIL ");
		put_disposition(o, h, hn);
		sb_byte(o, ' ');
		put_language(o, h, hn);
		sb_byte(o, ' ');
		put_nspan(o, header_get(h, hn, "Content-Location"));
	}
	sb_byte(o, ')');
	ctype_free(&ct);
}

/* ---- analyse ---- */

static size_t header_end(const uint8_t *msg, size_t len)
{
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1)
		;
	return it.body_off;
}

int imap_msg_analyze(const uint8_t *msg, size_t len, imap_msg_info *info_r,
		     const char **error_r)
{
	memset(info_r, 0, sizeof(*info_r));
	info_r->sent = INT64_MIN;
	if (msg == NULL)
		msg = (const uint8_t *)"";
	mime_tree *t = NULL;
	if (mime_parse(msg, len, NULL, &t, NULL) != MIME_OK)
		t = NULL;
	pview v = { .msg = msg, .t = t, .len = len };
	size_t hend = t != NULL ? t->parts[0].body_off : header_end(msg, len);
	v.body_off = hend;

	sb env = { .max = IMAP_MSG_CACHE_MAX };
	sb bs = { .max = IMAP_MSG_CACHE_MAX };
	sb body = { .max = IMAP_MSG_CACHE_MAX };
	put_envelope(&env, msg, hend);
	put_part(&bs, &v, 0, true, false);
	put_part(&body, &v, 0, false, false);
	mime_tree_destroy(&t);

	span d = header_get(msg, hend, "Date");
	mail_date md;
	if (d.ok && mail_date_parse(d.p, d.n, &md))
		info_r->sent = (int64_t)md.t;

	if (env.over || bs.over || body.over ||
	    env.len + bs.len + body.len > IMAP_MSG_CACHE_MAX) {
		free(env.p);
		free(bs.p);
		free(body.p);
		if (error_r != NULL)
			*error_r = "message structure too large";
		return -1;
	}
	info_r->envelope = env.p;
	info_r->bodystructure = bs.p;
	info_r->body = body.p;
	return 0;
}

void imap_msg_info_free(imap_msg_info *info)
{
	if (info == NULL)
		return;
	free(info->envelope);
	free(info->bodystructure);
	free(info->body);
	info->envelope = info->bodystructure = info->body = NULL;
}

/* ---- sections ---- */

static bool part_is_multi(const mime_tree *t, uint32_t i)
{
	const mime_part *p = &t->parts[i];
	return strcmp(p->type, "multipart") == 0 && p->n_children > 0;
}

static bool part_is_message(const mime_tree *t, uint32_t i)
{
	const mime_part *p = &t->parts[i];
	return strcmp(p->type, "message") == 0 && p->n_children == 1 &&
	       !part_is_multi(t, i);
}

static uint32_t nth_child(const mime_tree *t, uint32_t i, unsigned long k)
{
	uint32_t c = t->parts[i].first_child;
	for (unsigned long j = 1; c != MIME_NONE && j < k; j++)
		c = t->parts[c].next_sibling;
	return c;
}

/* Part number k inside the message whose top part is m. */
static uint32_t in_message(const mime_tree *t, uint32_t m, unsigned long k)
{
	if (part_is_multi(t, m))
		return nth_child(t, m, k);
	return k == 1 ? m : MIME_NONE;
}

static bool word_is(const char *s, size_t n, size_t *i, const char *w)
{
	size_t wl = strlen(w);
	if (n - *i < wl || strncasecmp(s + *i, w, wl) != 0)
		return false;
	*i += wl;
	return true;
}

/* A header-list "(name name ...)": names as atoms or quoted strings. */
typedef struct hlist {
	const char *s;
	size_t n;
} hlist;

static bool hlist_has(const hlist *l, const uint8_t *name, size_t nl)
{
	size_t i = 0;
	while (i < l->n) {
		while (i < l->n && l->s[i] == ' ')
			i++;
		if (i >= l->n)
			break;
		size_t a, b;
		if (l->s[i] == '"') {
			a = ++i;
			while (i < l->n && l->s[i] != '"') {
				if (l->s[i] == '\\')
					i++;
				i++;
			}
			b = i < l->n ? i : l->n;
			i++;
		} else {
			a = i;
			while (i < l->n && l->s[i] != ' ')
				i++;
			b = i;
		}
		/* compare, undoing escapes in quoted names */
		size_t x = a, y = 0;
		bool eq = true;
		while (x < b && y < nl) {
			char ch = l->s[x];
			if (ch == '\\' && x + 1 < b)
				ch = l->s[++x];
			char c1 = ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
			char c2 = (char)name[y];
			c2 = c2 >= 'A' && c2 <= 'Z' ? c2 + 32 : c2;
			if (c1 != c2) {
				eq = false;
				break;
			}
			x++;
			y++;
		}
		if (eq && x == b && y == nl)
			return true;
	}
	return false;
}

/* HEADER.FIELDS [.NOT]: the matching fields of h[0..n), then CRLF. */
static int build_fields(const uint8_t *h, size_t n, const hlist *l, bool not,
			const uint8_t **out_r, size_t *n_r, uint8_t **alloc_r)
{
	uint8_t *b = malloc(n + 3);
	if (b == NULL)
		abort();
	size_t bl = 0;
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, h, n);
	while (mail_header_next(&it, &f) == 1) {
		bool has = !f.malformed && hlist_has(l, h + f.off, f.name_len);
		if (has == not)
			continue;
		memcpy(b + bl, h + f.off, f.len);
		bl += f.len;
		if (f.len > 0 && h[f.off + f.len - 1] != '\n') {
			b[bl++] = '\r';
			b[bl++] = '\n';
		}
	}
	b[bl++] = '\r';
	b[bl++] = '\n';
	*out_r = b;
	*n_r = bl;
	*alloc_r = b;
	return 0;
}

int imap_msg_section(const uint8_t *msg, size_t len, const char *section,
		     size_t section_len, const uint8_t **out_r, size_t *n_r,
		     uint8_t **alloc_r, const char **error_r)
{
	static const uint8_t empty[1] = { 0 };
	*out_r = empty;
	*n_r = 0;
	*alloc_r = NULL;
	if (msg == NULL)
		msg = empty;
	if (section == NULL)
		section_len = 0;
	const char *s = section;
	size_t i = 0;
	/* the part numbers */
	unsigned long nums[MIME_DEPTH_MAX_DEFAULT + 2];
	size_t nn = 0;
	while (i < section_len && s[i] >= '0' && s[i] <= '9') {
		unsigned long k = 0;
		while (i < section_len && s[i] >= '0' && s[i] <= '9') {
			if (k > (ULONG_MAX - 9) / 10) {
				*error_r = "part number too large";
				return -1;
			}
			k = k * 10 + (unsigned long)(s[i] - '0');
			i++;
		}
		if (k == 0) {
			*error_r = "part number 0";
			return -1;
		}
		if (nn >= sizeof(nums) / sizeof(nums[0])) {
			*error_r = "too many part numbers";
			return -1;
		}
		nums[nn++] = k;
		if (i < section_len && s[i] == '.')
			i++;
		else
			break;
	}
	enum { K_BODY, K_HEADER, K_FIELDS, K_FIELDS_NOT, K_TEXT, K_MIME } kind;
	hlist l = { "", 0 };
	if (i == section_len) {
		if (nn > 0 && s[i - 1] == '.') {
			*error_r = "section ends with '.'";
			return -1;
		}
		kind = K_BODY;
	} else if (word_is(s, section_len, &i, "HEADER.FIELDS.NOT")) {
		kind = K_FIELDS_NOT;
	} else if (word_is(s, section_len, &i, "HEADER.FIELDS")) {
		kind = K_FIELDS;
	} else if (word_is(s, section_len, &i, "HEADER")) {
		kind = K_HEADER;
	} else if (word_is(s, section_len, &i, "TEXT")) {
		kind = K_TEXT;
	} else if (nn > 0 && word_is(s, section_len, &i, "MIME")) {
		kind = K_MIME;
	} else {
		*error_r = "unknown section";
		return -1;
	}
	if (kind == K_FIELDS || kind == K_FIELDS_NOT) {
		while (i < section_len && s[i] == ' ')
			i++;
		if (i >= section_len || s[i] != '(' ||
		    s[section_len - 1] != ')') {
			*error_r = "HEADER.FIELDS without a list";
			return -1;
		}
		l.s = s + i + 1;
		l.n = section_len - i - 2;
		i = section_len;
	}
	if (i != section_len) {
		*error_r = "junk after the section";
		return -1;
	}

	mime_tree *t = NULL;
	if (mime_parse(msg, len, NULL, &t, NULL) != MIME_OK)
		t = NULL;
	/* msg_hdr..msg_body..msg_end: the message the suffix applies to;
	 * part_*: the part selected by the numbers */
	size_t mh = 0, mb, me = len, ph = 0, pb = 0, pe = 0;
	bool is_msg = true, found = true;
	if (t == NULL) {
		mb = header_end(msg, len);
		if (nn > 1 || (nn == 1 && nums[0] != 1)) {
			found = false;
		} else if (nn == 1) {
			ph = 0;
			pb = mb;
			pe = len;
			is_msg = false;
		}
	} else {
		mb = t->parts[0].body_off;
		if (nn > 0) {
			uint32_t c = in_message(t, 0, nums[0]);
			for (size_t k = 1; k < nn && c != MIME_NONE; k++) {
				if (part_is_multi(t, c))
					c = nth_child(t, c, nums[k]);
				else if (part_is_message(t, c))
					c = in_message(t,
						       t->parts[c].first_child,
						       nums[k]);
				else
					c = MIME_NONE;
			}
			if (c == MIME_NONE) {
				found = false;
			} else {
				const mime_part *p = &t->parts[c];
				ph = p->hdr_off;
				pb = p->body_off;
				pe = p->end;
				is_msg = part_is_message(t, c);
				if (is_msg) {
					const mime_part *m =
						&t->parts[p->first_child];
					mh = m->hdr_off;
					mb = m->body_off;
					me = m->end;
				}
			}
		}
	}
	mime_tree_destroy(&t);
	if (!found)
		return 0;
	if (nn > 0 && !is_msg && kind != K_BODY && kind != K_MIME)
		return 0; /* HEADER / TEXT of a part that is not a message */
	switch (kind) {
	case K_BODY:
		if (nn == 0) {
			*out_r = msg;
			*n_r = len;
		} else {
			*out_r = msg + pb;
			*n_r = pe - pb;
		}
		return 0;
	case K_MIME:
		*out_r = msg + ph;
		*n_r = pb - ph;
		return 0;
	case K_HEADER:
		*out_r = msg + mh;
		*n_r = mb - mh;
		return 0;
	case K_TEXT:
		*out_r = msg + mb;
		*n_r = me - mb;
		return 0;
	case K_FIELDS:
	case K_FIELDS_NOT:
		return build_fields(msg + mh, mb - mh, &l,
				    kind == K_FIELDS_NOT, out_r, n_r, alloc_r);
	}
	return 0;
}

/* ---- SEARCH ---- */

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static bool contains(const uint8_t *h, size_t hn, const char *needle,
		     size_t nl)
{
	if (nl == 0)
		return true;
	if (hn < nl)
		return false;
	uint8_t f = lower((uint8_t)needle[0]);
	for (size_t i = 0; i + nl <= hn; i++) {
		if (lower(h[i]) != f)
			continue;
		size_t k = 1;
		while (k < nl && lower(h[i + k]) == lower((uint8_t)needle[k]))
			k++;
		if (k == nl)
			return true;
	}
	return false;
}

/* The decoded value of f contains the needle. */
static bool field_has(const uint8_t *msg, const mail_field *f,
		      const char *needle, size_t nl)
{
	size_t n = mail_field_unfold(msg, f, NULL, 0);
	char *u = malloc(n + 1);
	if (u == NULL)
		abort();
	(void)mail_field_unfold(msg, f, u, n + 1);
	/* the value only: skip "name:" */
	size_t vs = f->value_off - f->off;
	const char *val = u, *colon = memchr(u, ':', n);
	size_t vn = n;
	if (!f->malformed && colon != NULL && (size_t)(colon - u) < vs) {
		val = colon + 1;
		vn = n - (size_t)(val - u);
	}
	size_t dsz = MIME_DECODE_WORDS_SIZE(vn);
	char *d = malloc(dsz);
	if (d == NULL)
		abort();
	size_t dl = mime_decode_words((const uint8_t *)val, vn, d, dsz, NULL);
	if (dl >= dsz)
		dl = dsz - 1;
	bool r = contains((const uint8_t *)d, dl, needle, nl);
	free(d);
	free(u);
	return r;
}

bool imap_msg_header_has(const uint8_t *msg, size_t len, const char *name,
			 const char *needle, size_t needle_len)
{
	if (msg == NULL || name == NULL)
		return false;
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(msg, &f, name) &&
		    field_has(msg, &f, needle, needle_len))
			return true;
	}
	return false;
}

/* The body of a leaf, transfer decoding undone, contains the needle. */
static bool leaf_has(const uint8_t *msg, const mime_part *p,
		     const char *needle, size_t nl)
{
	const uint8_t *b = msg + p->body_off;
	size_t n = p->end - p->body_off;
	if (p->cte != MIME_CTE_QP && p->cte != MIME_CTE_BASE64)
		return contains(b, n, needle, nl);
	uint8_t *d = malloc(n + 1);
	if (d == NULL)
		abort();
	size_t dl = p->cte == MIME_CTE_QP ? mime_decode_qp(b, n, d, n, NULL)
					  : mime_decode_base64(b, n, d, n, NULL);
	if (dl > n)
		dl = n;
	bool r = contains(d, dl, needle, nl);
	free(d);
	return r;
}

bool imap_msg_text_has(const uint8_t *msg, size_t len, bool with_header,
		       const char *needle, size_t needle_len)
{
	if (msg == NULL)
		return false;
	if (with_header) {
		mail_header_iter it;
		mail_field f;
		mail_header_iter_init(&it, msg, len);
		while (mail_header_next(&it, &f) == 1) {
			if (field_has(msg, &f, needle, needle_len))
				return true;
		}
	}
	if (needle_len == 0)
		return true;
	mime_tree *t = NULL;
	if (mime_parse(msg, len, NULL, &t, NULL) != MIME_OK) {
		size_t b = header_end(msg, len);
		return contains(msg + b, len - b, needle, needle_len);
	}
	bool r = false;
	for (size_t i = 0; i < t->n && !r; i++) {
		const mime_part *p = &t->parts[i];
		if (p->n_children > 0)
			continue;
		if (strcmp(p->type, "text") != 0 &&
		    strcmp(p->type, "message") != 0)
			continue;
		r = leaf_has(msg, p, needle, needle_len);
	}
	mime_tree_destroy(&t);
	return r;
}
