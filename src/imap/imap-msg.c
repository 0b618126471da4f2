/*
 * imap-msg.c — what IMAP shows of one message (see imap-msg.h): ENVELOPE,
 * BODY, BODYSTRUCTURE, BODY[section] slices and the SEARCH text matches,
 * computed from the message's bytes over the MIME tree of src/mime/mime.c.
 * Pure: no I/O, no logging.  Owns nothing beyond the strings it returns.
 *
 * Where RFC 3501 leaves room, the output is Dovecot 2.3's, byte for byte
 * (tests/e2e/test_imap_msg_dovecot.py compares 300 corpus messages):
 *  - header values are raw (encoded-words left as they are), CR and LF
 *    removed, the blanks after the colon skipped (only one when the first
 *    line holds nothing else); date, subject, message-id, in-reply-to:
 *    the last field of the name; From, To, ...: every field's addresses
 *    joined; Sender and Reply-To: From's when they have none;
 *  - the subject and display names are "for humans": runs of blanks and
 *    line ends become one space, none at the ends, and a string that had
 *    to change, or holds '"', '\\' or 8-bit, is sent as a literal; other
 *    strings are quoted (at most 4 escapes) or literals (8-bit);
 *  - addresses: RFC 5322 with Dovecot's recovery: a display name from the
 *    phrase, or from the last comment after an addr-spec; a missing local
 *    part or domain is "MISSING_MAILBOX" / "MISSING_DOMAIN", an angle
 *    address that does not close "SYNTAX_ERROR", a bad route
 *    "INVALID_ROUTE"; an empty list element is a missing address; what
 *    follows an address up to the next ',' is skipped; groups are
 *    (NIL NIL "name" NIL) ... (NIL NIL NIL NIL);
 *  - Content-Type, subtype, parameter names and values keep their case;
 *    a text part without a charset is given ("charset" "us-ascii") last;
 *    RFC 2231 parameters are shown undecoded; the first MIME field of a
 *    name counts; a message's own header with neither MIME-Version nor
 *    Content-Type has no MIME fields at all (text/plain, 7bit); a
 *    multipart mime.c did not split (no boundary, a boundary collision,
 *    a transfer encoding) shows one empty text/plain part; an unparsed
 *    message/rfc822 an empty envelope and body; message/global is a
 *    basic part;
 *  - a multipart whose close delimiter ends a part takes that line's end
 *    into the part (sizes, lines, BODY[n]);
 *  - sections: part numbers as find_part says; HEADER.FIELDS gives the
 *    fields as they are then CRLF; a part that does not exist, or
 *    HEADER / TEXT of a part that is not a message/rfc822, is empty.
 * Sizes and line counts are of the bytes as given: a caller that stores
 * CRLF (as the bridge does) gets what IMAP means.  Header sections end
 * where mail-header.h says (a line that is not a field ends them), and
 * the MIME tree is mime.h's (a boundary collision is not split): there
 * Dovecot differs (a line without a colon stays in its header; the
 * innermost boundary wins).
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
	if (o->over || n == 0)
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

/* Escaped quotes and backslashes a quoted string may hold before it is
 * sent as a literal instead (Dovecot's limit). */
#define QUOTED_ESCAPES_MAX 4u

/* An IMAP string of s[0..n): CR and LF left out, the string cut at a NUL;
 * quoted (with at most QUOTED_ESCAPES_MAX escapes), else a literal when
 * it holds an 8-bit byte or more escapes. */
static void put_string(sb *o, const uint8_t *s, size_t n)
{
	if (n == 0) {
		sb_str(o, "\"\"");
		return;
	}
	const uint8_t *z = memchr(s, '\0', n);
	if (z != NULL)
		n = (size_t)(z - s);
	size_t keep = 0, esc = 0;
	bool lit = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c == '\r' || c == '\n')
			continue;
		keep++;
		if (c == '"' || c == '\\')
			esc++;
		if (c >= 0x80)
			lit = true;
	}
	if (esc > QUOTED_ESCAPES_MAX)
		lit = true;
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
		bool drop = c == '\r' || c == '\n';
		bool quote = !lit && (c == '"' || c == '\\');
		if (drop || quote) {
			sb_put(o, s + i - run, run);
			run = 0;
			if (quote) {
				sb_byte(o, '\\');
				sb_byte(o, (char)c);
			}
			continue;
		}
		run++;
	}
	sb_put(o, s + n - run, run);
	if (!lit)
		sb_byte(o, '"');
}

/* A string meant for people (ENVELOPE subject and display names):
 * blanks, tabs and line ends collapse into one space, none kept at
 * either end, NUL becomes 0x80; sent quoted when nothing had to change
 * and it holds no '"', '\\' or 8-bit byte, else as a literal (Dovecot's
 * imap_append_string_for_humans rules). */
static void put_human(sb *o, const uint8_t *s, size_t n)
{
	bool change = false, lwsp = true;
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (c != ' ' || lwsp)
				change = true;
			if (!lwsp)
				out++;
			lwsp = true;
			continue;
		}
		if (c == '"' || c == '\\' || c >= 0x80 || c == '\0')
			change = true;
		lwsp = false;
		out++;
	}
	if (lwsp && out > 0) {
		out--; /* the space that would end it */
		change = true;
	}
	if (n > 0 && lwsp && out == 0)
		change = true;
	if (!change) {
		sb_byte(o, '"');
		sb_put(o, s, n);
		sb_byte(o, '"');
		return;
	}
	if (out == 0) {
		sb_str(o, "\"\"");
		return;
	}
	sb_byte(o, '{');
	sb_num(o, out);
	sb_str(o, "}\r\n");
	size_t w = 0;
	bool pend = false;
	lwsp = true;
	for (size_t i = 0; i < n && w < out; i++) {
		uint8_t c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!lwsp)
				pend = true;
			lwsp = true;
			continue;
		}
		if (pend) {
			sb_byte(o, ' ');
			w++;
			pend = false;
		}
		sb_byte(o, c == '\0' ? (char)0x80 : (char)c);
		w++;
		lwsp = false;
	}
}

/* ---- header fields ---- */

typedef struct span {
	const uint8_t *p;
	size_t n;
	bool ok;  /* the field is present */
} span;

/* The raw value of a field, without its final line end: after the
 * colon, the blanks that start it are skipped when its first line has
 * something else, else only one (Dovecot). */
static span field_value(const uint8_t *h, const mail_field *f)
{
	size_t a = f->value_off, e = f->off + f->len;
	if (e > a && h[e - 1] == '\n')
		e--;
	if (e > a && h[e - 1] == '\r')
		e--;
	size_t k = a;
	while (k < e && (h[k] == ' ' || h[k] == '\t'))
		k++;
	if (k < e && h[k] != '\r' && h[k] != '\n')
		a = k;
	else if (a < e && (h[a] == ' ' || h[a] == '\t'))
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

static void sb_reset(sb *s)
{
	s->len = 0;
	s->over = false;
	if (s->p != NULL)
		s->p[0] = '\0';
}

/* Skip blanks, line ends and (nested) comments; an unclosed comment runs
 * to the end. */
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
		size_t start = c->i + 1, stop = c->n;
		while (c->i < c->n) {
			ch = c->p[c->i];
			if (ch == '\\' && c->i + 1 < c->n) {
				c->i += 2;
				continue;
			}
			c->i++;
			if (ch == '(') {
				depth++;
			} else if (ch == ')' && --depth == 0) {
				stop = c->i - 1;
				break;
			}
		}
		if (c->want_comment) {
			sb_reset(&c->comment);
			/* the comment's text, escapes undone */
			for (size_t k = start; k < stop; k++) {
				if (c->p[k] == '\\' && k + 1 < stop)
					k++;
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
 * line ends dropped) appended to out; false when it is not closed. */
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

/* An unquoted parameter value, read as leniently as mime.c reads it
 * (up to ';', a blank, a control or '"'), so boundary==_b1 is the value
 * "=_b1" here too, as in Dovecot. */
static bool take_value(cur *c, sb *out)
{
	size_t s = c->i;
	while (c->i < c->n && c->p[c->i] > 32 && c->p[c->i] != 127 &&
	       c->p[c->i] != ';' && c->p[c->i] != '"')
		c->i++;
	sb_put(out, c->p + s, c->i - s);
	return c->i > s;
}

static void take_atext(cur *c, sb *out)
{
	size_t s = c->i;
	while (c->i < c->n && is_atext(c->p[c->i]))
		c->i++;
	sb_put(out, c->p + s, c->i - s);
}

/* ---- addresses (Dovecot's recovery from bad syntax) ---- */

typedef struct addr {
	sb name, route, mbox, host;
	bool no_host;       /* host: "MISSING_DOMAIN" */
	bool syntax_error;  /* host: "SYNTAX_ERROR" */
	bool bad_route;     /* route: "INVALID_ROUTE" */
} addr;

typedef struct addr_ctx {
	sb *o;
	cur c;
	addr a;
	bool opened;
} addr_ctx;

static void addr_open(addr_ctx *x)
{
	if (!x->opened) {
		sb_byte(x->o, '(');
		x->opened = true;
	}
}

static void addr_emit(addr_ctx *x)
{
	addr *a = &x->a;
	sb *o = x->o;
	addr_open(x);
	sb_byte(o, '(');
	if (a->name.len == 0)
		sb_str(o, "NIL");
	else
		put_human(o, (const uint8_t *)a->name.p, a->name.len);
	sb_byte(o, ' ');
	if (a->bad_route)
		sb_str(o, "\"INVALID_ROUTE\"");
	else if (a->route.len == 0)
		sb_str(o, "NIL");
	else
		put_string(o, (const uint8_t *)a->route.p, a->route.len);
	sb_byte(o, ' ');
	if (a->mbox.len == 0)
		sb_str(o, "\"MISSING_MAILBOX\"");
	else
		put_string(o, (const uint8_t *)a->mbox.p, a->mbox.len);
	sb_byte(o, ' ');
	if (a->syntax_error)
		sb_str(o, "\"SYNTAX_ERROR\"");
	else if (a->host.len == 0 || a->no_host)
		sb_str(o, "\"MISSING_DOMAIN\"");
	else
		put_string(o, (const uint8_t *)a->host.p, a->host.len);
	sb_byte(o, ')');
}

static void addr_reset(addr *a)
{
	sb_reset(&a->name);
	sb_reset(&a->route);
	sb_reset(&a->mbox);
	sb_reset(&a->host);
	a->no_host = a->syntax_error = a->bad_route = false;
}

static bool at(const cur *c, char ch)
{
	return c->i < c->n && c->p[c->i] == (uint8_t)ch;
}

/* A phrase: words (atoms that may hold dots, quoted strings) joined by
 * one space. */
static void take_phrase(cur *c, sb *out)
{
	bool first = true;
	for (;;) {
		skip_cfws(c);
		if (c->i >= c->n)
			return;
		uint8_t ch = c->p[c->i];
		if (ch != '"' && !is_atext(ch) && ch != '.')
			return;
		if (!first)
			sb_byte(out, ' ');
		first = false;
		if (ch == '"') {
			take_quoted(c, out);
		} else {
			size_t s = c->i;
			while (c->i < c->n &&
			       (is_atext(c->p[c->i]) || c->p[c->i] == '.'))
				c->i++;
			sb_put(out, c->p + s, c->i - s);
		}
	}
}

/* local-part: words (atoms, quoted strings) and dots, leniently (empty
 * and trailing dots are kept, as Dovecot does). */
static void take_local(cur *c, sb *out)
{
	skip_cfws(c);
	for (bool word = true;;) {
		if (word) {
			if (at(c, '"'))
				take_quoted(c, out);
			else if (c->i < c->n && is_atext(c->p[c->i]))
				take_atext(c, out);
		}
		skip_cfws(c);
		if (!at(c, '.'))
			return;
		sb_byte(out, '.');
		c->i++;
		skip_cfws(c);
		word = true;
	}
}

/* domain: a dot-atom (strict: a dot between two atoms) or a domain
 * literal "[...]"; false when it does not parse. */
static bool take_domain(cur *c, sb *out)
{
	skip_cfws(c);
	if (at(c, '[')) {
		size_t s = c->i;
		while (c->i < c->n && c->p[c->i] != ']') {
			if (c->p[c->i] == '\\' && c->i + 1 < c->n)
				c->i++;
			c->i++;
		}
		if (c->i >= c->n)
			return false;
		c->i++;
		sb_put(out, c->p + s, c->i - s);
		skip_cfws(c);
		return true;
	}
	for (;;) {
		if (c->i >= c->n || !is_atext(c->p[c->i]))
			return false;
		take_atext(c, out);
		skip_cfws(c);
		if (!at(c, '.'))
			return true;
		sb_byte(out, '.');
		c->i++;
		skip_cfws(c);
	}
}

/* Skip to the next ',' (or ';' in a group) outside quotes and comments. */
static void skip_junk(cur *c, bool in_group)
{
	while (c->i < c->n) {
		uint8_t ch = c->p[c->i];
		if (ch == ',' || (in_group && ch == ';'))
			return;
		if (ch == '"') {
			sb none = { .max = 0 };
			take_quoted(c, &none);
		} else if (ch == '(') {
			bool w = c->want_comment;
			c->want_comment = false;
			skip_cfws(c);
			c->want_comment = w;
		} else {
			c->i++;
		}
	}
}

/* angle-addr after '<': [route ":"] addr-spec ">". */
static void take_angle(cur *c, addr *a)
{
	skip_cfws(c);
	if (at(c, '@')) {
		/* obs-route: "@a,@b:" */
		for (;;) {
			c->i++;
			sb_byte(&a->route, '@');
			if (!take_domain(c, &a->route)) {
				a->bad_route = true;
				break;
			}
			while (at(c, ',')) {
				c->i++;
				skip_cfws(c);
			}
			if (at(c, '@')) {
				sb_byte(&a->route, ',');
				continue;
			}
			if (at(c, ':'))
				c->i++;
			else
				a->bad_route = true;
			break;
		}
	}
	take_local(c, &a->mbox);
	if (at(c, '@')) {
		c->i++;
		if (!take_domain(c, &a->host)) {
			sb_reset(&a->host);
			a->syntax_error = true;
		}
	}
	skip_cfws(c);
	if (at(c, '>'))
		c->i++;
	else
		a->syntax_error = true;
}

/* One list element at c->i (not ',' or ';'): a mailbox, or a group's
 * start (true: the phrase in a->name is its name). */
static bool take_mailbox(addr_ctx *x, bool in_group)
{
	cur *c = &x->c;
	addr *a = &x->a;
	addr_reset(a);
	size_t start = c->i;
	take_phrase(c, &a->name);
	skip_cfws(c);
	if (at(c, '<')) {
		c->i++;
		take_angle(c, a);
		addr_emit(x);
		return false;
	}
	if (!in_group && at(c, ':')) {
		c->i++;
		return true;
	}
	/* an addr-spec, its name from the last comment after its start */
	c->i = start;
	sb_reset(&a->name);
	take_local(c, &a->mbox);
	c->want_comment = true;
	sb_reset(&c->comment);
	if (at(c, '@')) {
		c->i++;
		if (!take_domain(c, &a->host)) {
			sb_reset(&a->host);
			a->no_host = true;
		}
	} else if (!(c->i >= c->n || at(c, ',') || (in_group && at(c, ';')))) {
		/* neither: a phrase without an address */
		c->want_comment = false;
		c->i = start;
		sb_reset(&a->mbox);
		take_phrase(c, &a->name);
		skip_junk(c, in_group);
		addr_emit(x);
		return false;
	}
	skip_cfws(c);
	c->want_comment = false;
	if (c->comment.len > 0)
		sb_put(&a->name, c->comment.p, c->comment.len);
	addr_emit(x);
	return false;
}

/* The addresses of one field's value, added to x's list. */
static void parse_addresses(addr_ctx *x, span v)
{
	cur *c = &x->c;
	*c = (cur){ .p = v.p, .n = v.n, .comment = c->comment };
	bool in_group = false;
	skip_cfws(c);
	while (c->i < c->n) {
		if (at(c, ',')) {
			/* an empty element */
			if (!in_group) {
				addr_reset(&x->a);
				addr_emit(x);
			}
			c->i++;
			skip_cfws(c);
			continue;
		}
		if (in_group && at(c, ';')) {
			c->i++;
			in_group = false;
			addr_open(x);
			sb_str(x->o, "(NIL NIL NIL NIL)");
			skip_junk(c, false);
		} else if (take_mailbox(x, in_group)) {
			in_group = true;
			addr_open(x);
			sb_str(x->o, "(NIL NIL ");
			put_string(x->o, (const uint8_t *)x->a.name.p,
				   x->a.name.len);
			sb_str(x->o, " NIL)");
			skip_cfws(c);
			continue;
		} else {
			skip_junk(c, in_group);
		}
		if (at(c, ','))
			c->i++;
		skip_cfws(c);
	}
	if (in_group) {
		addr_open(x);
		sb_str(x->o, "(NIL NIL NIL NIL)");
	}
}

/* The address list of every field called name in h[0..n) (Dovecot joins
 * them), or NIL when there is none. */
static void put_addresses(sb *o, const uint8_t *h, size_t n, const char *name)
{
	addr_ctx x = { .o = o };
	size_t cap = n + 16;
	x.c.comment.max = cap;
	x.a.name.max = x.a.route.max = x.a.mbox.max = x.a.host.max = cap;
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, h, n);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(h, &f, name))
			parse_addresses(&x, field_value(h, &f));
	}
	if (x.opened)
		sb_byte(o, ')');
	else
		sb_str(o, "NIL");
	free(x.c.comment.p);
	free(x.a.name.p);
	free(x.a.route.p);
	free(x.a.mbox.p);
	free(x.a.host.p);
}

/* ---- ENVELOPE ---- */

/* The last field called name in h[0..n) (Dovecot: the last one wins). */
static span header_last(const uint8_t *h, size_t n, const char *name)
{
	span v = { NULL, 0, false };
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, h, n);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(h, &f, name))
			v = field_value(h, &f);
	}
	return v;
}

/* Sender and Reply-To: their addresses, or From's when they have none. */
static void put_or_from(sb *o, const uint8_t *h, size_t n, const char *name,
			size_t from_off, size_t from_len)
{
	size_t m = o->len;
	put_addresses(o, h, n, name);
	if (o->over || o->len - m != 3 || memcmp(o->p + m, "NIL", 3) != 0)
		return;
	o->len = m;
	char *copy = malloc(from_len);
	if (copy == NULL)
		abort();
	memcpy(copy, o->p + from_off, from_len);
	sb_put(o, copy, from_len);
	free(copy);
}

static void put_envelope(sb *o, const uint8_t *h, size_t n)
{
	sb_byte(o, '(');
	put_nspan(o, header_last(h, n, "Date"));
	sb_byte(o, ' ');
	span subject = header_last(h, n, "Subject");
	if (subject.ok)
		put_human(o, subject.p, subject.n);
	else
		sb_str(o, "NIL");
	sb_byte(o, ' ');
	size_t from_off = o->len;
	put_addresses(o, h, n, "From");
	size_t from_len = o->len - from_off;
	sb_byte(o, ' ');
	put_or_from(o, h, n, "Sender", from_off, from_len);
	sb_byte(o, ' ');
	put_or_from(o, h, n, "Reply-To", from_off, from_len);
	static const char *const rest[] = { "To", "Cc", "Bcc" };
	for (size_t k = 0; k < 3; k++) {
		sb_byte(o, ' ');
		put_addresses(o, h, n, rest[k]);
	}
	sb_byte(o, ' ');
	put_nspan(o, header_last(h, n, "In-Reply-To"));
	sb_byte(o, ' ');
	put_nspan(o, header_last(h, n, "Message-ID"));
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
		} else if (!take_value(c, &val)) {
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

/* Where Dovecot ends a part: where mime.c does, except that a part whose
 * last line is the close delimiter of a multipart it holds (it, or its
 * last part, ..., or the message it encapsulates) also takes that line's
 * end, which RFC 2046 gives to the next delimiter when no epilogue
 * follows.  Dovecot's sizes, line counts and BODY[n] include it. */
static size_t part_end(const uint8_t *msg, size_t len, const mime_tree *t,
		       uint32_t idx)
{
	size_t e = t->parts[idx].end;
	if (e >= len || (msg[e] != '\r' && msg[e] != '\n'))
		return e;
	size_t ls = e, b0 = t->parts[idx].body_off;
	while (ls > b0 && msg[ls - 1] != '\n')
		ls--;
	const uint8_t *line = msg + ls;
	size_t ln = e - ls;
	for (uint32_t q = idx; q != MIME_NONE;) {
		const mime_part *p = &t->parts[q];
		if (p->n_children == 0)
			break;
		if (strcmp(p->type, "multipart") == 0) {
			size_t bl = strlen(p->boundary);
			if (!(p->flags & MIME_PART_UNTERMINATED) && ln >= bl + 4 &&
			    line[0] == '-' && line[1] == '-' &&
			    memcmp(line + 2, p->boundary, bl) == 0 &&
			    line[bl + 2] == '-' && line[bl + 3] == '-') {
				if (msg[e] == '\r' && e + 1 < len &&
				    msg[e + 1] == '\n')
					return e + 2;
				return e + 1;
			}
			/* its last part */
			uint32_t c = p->first_child, last = MIME_NONE;
			while (c != MIME_NONE) {
				last = c;
				c = t->parts[c].next_sibling;
			}
			q = last;
		} else {
			q = p->first_child;
		}
		if (q != MIME_NONE && t->parts[q].end != e)
			break;
	}
	return e;
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
		end = part_end(v->msg, v->len, v->t, idx);
	} else {
		hoff = 0;
		boff = v->body_off;
		end = v->len;
	}
	const uint8_t *h = v->msg + hoff;
	size_t hn = boff - hoff;
	/* A message's own header without MIME-Version or Content-Type: its
	 * Content-* fields are not MIME ones (Dovecot ignores them all). */
	bool root = p == NULL || p->parent == MIME_NONE ||
		    strcmp(v->t->parts[p->parent].type, "message") == 0;
	if (root && !header_get(h, hn, "MIME-Version").ok &&
	    !header_get(h, hn, "Content-Type").ok)
		hn = 0;
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
	/* a multipart mime.c did not split (no boundary, a boundary
	 * collision, a transfer encoding) is still shown as a multipart, of
	 * one empty part (Dovecot) */
	bool multi = p != NULL && sb_is(&ct.type, "multipart");
	if (multi) {
		put_multipart(o, v, p, &ct, h, hn, ext);
		ctype_free(&ct);
		return;
	}
	bool text = sb_is(&ct.type, "text");
	/* message/rfc822 has an envelope and a body (RFC 3501 body-type-msg;
	 * message/global is a basic part, as in Dovecot 2.3) */
	bool message = p != NULL && sb_is(&ct.type, "message") &&
		       sb_is(&ct.subtype, "rfc822");
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
	if (message && p->n_children == 1) {
		uint32_t ch = p->first_child;
		const mime_part *cp = &v->t->parts[ch];
		sb_byte(o, ' ');
		put_envelope(o, v->msg + cp->hdr_off,
			     cp->body_off - cp->hdr_off);
		sb_byte(o, ' ');
		put_part(o, v, ch, ext, false);
	} else if (message) {
		/* not parsed (a transfer encoding): an empty message */
		sb_str(o, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ");
		sb_str(o, ext ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
				"NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
			      : "(\"text\" \"plain\" (\"charset\" "
				"\"us-ascii\") NIL NIL \"7bit\" 0 0)");
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

/* message/rfc822 with its message parsed (message/global is a leaf for
 * IMAP, as in Dovecot 2.3) */
static bool part_is_message(const mime_tree *t, uint32_t i)
{
	const mime_part *p = &t->parts[i];
	return strcmp(p->type, "message") == 0 &&
	       strcmp(p->subtype, "rfc822") == 0 && p->n_children == 1;
}

static uint32_t nth_child(const mime_tree *t, uint32_t i, unsigned long k)
{
	uint32_t c = t->parts[i].first_child;
	for (unsigned long j = 1; c != MIME_NONE && j < k; j++)
		c = t->parts[c].next_sibling;
	return c;
}

/* The part that the numbers nums[0..nn) name, MIME_NONE if none, by
 * Dovecot's rules: in a multipart, n is its n-th part (a multipart
 * without parts has none); in a message/rfc822 part, n is the n-th part
 * of the message it holds (1: that message's body when it is not a
 * multipart); a message that is not a multipart has only part 1, itself;
 * and a leaf inside a multipart also answers to one more ".1", itself
 * again ("2.1" is "2", "2.1.1" is nothing). */
static uint32_t find_part(const mime_tree *t, const unsigned long *nums,
			  size_t nn)
{
	uint32_t c = 0;
	bool self = true; /* c cannot be its own part 1 any more */
	for (size_t k = 0; k < nn && c != MIME_NONE; k++) {
		unsigned long num = nums[k];
		if (k > 0 && part_is_message(t, c)) {
			c = t->parts[c].first_child;
			self = false;
			if (!part_is_multi(t, c) &&
			    strcmp(t->parts[c].type, "multipart") != 0) {
				/* the message's body: its part 1 */
				self = true;
				if (num != 1)
					c = MIME_NONE;
				continue;
			}
		}
		if (part_is_multi(t, c)) {
			c = nth_child(t, c, num);
			self = false;
		} else if (strcmp(t->parts[c].type, "multipart") == 0) {
			c = MIME_NONE; /* no boundary: no parts */
		} else if (k == 0) {
			if (num != 1)
				c = MIME_NONE;
		} else if (num != 1 || self) {
			c = MIME_NONE;
		} else {
			self = true;
		}
	}
	return c;
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

/* HEADER.FIELDS [.NOT]: the matching fields of h[0..n) as they are, then
 * CRLF; for HEADER.FIELDS.NOT only when the header section ends with an
 * empty line (Dovecot). */
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
	}
	if (!not || !it.no_separator) {
		b[bl++] = '\r';
		b[bl++] = '\n';
	}
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
	const char *dummy;
	*out_r = empty;
	*n_r = 0;
	*alloc_r = NULL;
	if (error_r == NULL)
		error_r = &dummy;
	if (msg == NULL)
		msg = empty;
	if (section == NULL) {
		section = "";
		section_len = 0;
	}
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
			uint32_t c = find_part(t, nums, nn);
			if (c == MIME_NONE) {
				found = false;
			} else {
				const mime_part *p = &t->parts[c];
				ph = p->hdr_off;
				pb = p->body_off;
				pe = part_end(msg, len, t, c);
				is_msg = part_is_message(t, c);
				if (is_msg) {
					const mime_part *m =
						&t->parts[p->first_child];
					mh = m->hdr_off;
					mb = m->body_off;
					me = part_end(msg, len, t,
							   p->first_child);
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
	/* the value only (mail_field_unfold leaves the name out) */
	(void)mail_field_unfold(msg, f, u, n + 1);
	const char *val = u;
	size_t vn = n;
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
