/*
 * mime.c — the bounded MIME structure parser (mime.h).
 *
 * One pass over the lines of the message.  State:
 *  - the tree (parts in document order, each with its parent);
 *  - `cur`, the deepest part whose body is being read: it and its
 *    ancestors are the open parts (their end is not known yet);
 *  - a stack of open multiparts (not yet closed), with their boundaries.
 * A part is started by reading its whole header section at once with
 * mail-header.c (bounded by max_header); then only its body lines are
 * read, and only a line starting "--" is compared with the stack.  A
 * delimiter of stack entry k ends every open part below that multipart
 * (each part is ended exactly once, so these walks cost O(parts) in all),
 * drops the stack entries above k and either starts the next part or,
 * for a close delimiter, drops k too.  message/rfc822 starts its child at
 * once.  No recursion: a deep message costs a deep stack array, capped by
 * max_depth.
 *
 * Parameter values are copied into fixed-size accumulators (boundary:
 * max_boundary bytes; file names MIME_FILENAME_MAX; charset
 * MIME_CHARSET_MAX) allocated once per call, then kept in the tree's
 * string blocks, which never move (parts point into them).  The total of
 * the strings is at most a fixed amount a part (asserted).
 */
#include "mime.h"
#include "util.h"

#include "mail-header.h"

#include <stdlib.h>
#include <string.h>

struct mime_chunk {
	struct mime_chunk *next;
	size_t used, cap;
	char data[];
};

#define CHUNK_MIN 65536u

typedef struct open_mp {
	uint32_t part;
	const char *b;
	size_t blen;
} open_mp;

typedef struct acc {
	char *b;
	size_t n, cap;
	bool over;
} acc;

/* One parameter the parser wants (boundary, charset, name, filename), as a
 * plain value and as an RFC 2231 value. */
typedef struct param_target {
	const char *name;
	acc plain, ext;
	bool plain_set;
	bool ext_started, ext_closed, ext_dead, ext_bad, has_charset;
	unsigned next_seg;
	char charset[MIME_CHARSET_MAX + 1];
	size_t cs_n;
	bool cs_over;
} param_target;

/* Where the bytes of the value being read go. */
typedef struct sink {
	acc *a;          /* NULL: nowhere */
	param_target *tg;
	bool pct;        /* %XX decoding (RFC 2231 extended values) */
	int prefix;      /* 1: in the charset, 2: in the language */
	int pst;         /* %XX state: 0, 1 after '%', 2 after a digit */
	uint8_t h1;
} sink;

typedef struct ctx {
	const uint8_t *msg;
	size_t len;
	mime_limits lim;
	mime_tree *t;
	open_mp *stack;
	size_t nstack, stack_cap;
	size_t pool_total, pool_max;
	char *mem;       /* backing of the accumulators and conv */
	char *conv;      /* ISO-8859-1 to UTF-8 */
	size_t conv_cap;
	param_target tg[4]; /* boundary, charset, name, filename */
	const char *error;
} ctx;

enum { TG_BOUNDARY = 0, TG_CHARSET, TG_NAME, TG_FILENAME };

/* ------------------------------------------------------------ memory */

static void *xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		abort();
	void *q = realloc(p, n * size == 0 ? 1 : n * size);
	if (q == NULL)
		abort(); /* out of memory: STYLE.md, abort loudly */
	return q;
}

/* A NUL-terminated copy of s[0..n) in the tree's strings (lower-cased when
 * asked); "" for n == 0. */
static const char *pool_add(ctx *c, const char *s, size_t n, bool lower)
{
	if (n == 0)
		return "";
	mime_tree *t = c->t;
	struct mime_chunk *k = t->chunks;
	if (k == NULL || k->cap - k->used < n + 1) {
		size_t cap = n + 1 > CHUNK_MIN ? n + 1 : CHUNK_MIN;
		k = xrealloc(NULL, 1, sizeof(*k) + cap);
		k->next = t->chunks;
		k->used = 0;
		k->cap = cap;
		t->chunks = k;
	}
	c->pool_total += n + 1;
	if (c->pool_total > c->pool_max)
		abort(); /* a bug: the per-part string caps do not hold */
	char *d = k->data + k->used;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (lower && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch + ('a' - 'A'));
		d[i] = ch;
	}
	d[n] = '\0';
	k->used += n + 1;
	return d;
}

/* ------------------------------------------------------------ lexing */

static bool is_blank(uint8_t ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* RFC 2045 token: ASCII 33..126 except tspecials. */
static bool is_token(uint8_t ch)
{
	if (ch <= 32 || ch >= 127)
		return false;
	return strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

/* An unquoted parameter value, read leniently: everything up to ';', a
 * blank, a control or '"' (so boundary=----=_Part_1 is one value, as most
 * readers take it). */
static bool is_value_byte(uint8_t ch)
{
	return ch > 32 && ch != 127 && ch != ';' && ch != '"';
}

static uint8_t ascii_lower(uint8_t ch)
{
	return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch + ('a' - 'A')) : ch;
}

static bool eq_nocase(const uint8_t *a, size_t n, const char *b)
{
	if (strlen(b) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != (uint8_t)b[i])
			return false;
	return true;
}

/* Skip blanks, line ends and comments (nested, with quoted pairs; an
 * unterminated one runs to the end). */
static size_t skip_cfws(const uint8_t *m, size_t i, size_t end)
{
	while (i < end) {
		if (is_blank(m[i])) {
			i++;
		} else if (m[i] == '(') {
			size_t depth = 0;
			while (i < end) {
				if (m[i] == '\\' && i + 1 < end) {
					i += 2;
					continue;
				}
				if (m[i] == '(')
					depth++;
				else if (m[i] == ')' && --depth == 0) {
					i++;
					break;
				}
				i++;
			}
		} else {
			break;
		}
	}
	return i;
}

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* ------------------------------------------------------------ values */

static void acc_put(acc *a, uint8_t ch)
{
	if (ch == '\0')
		return; /* kept strings are C strings: NULs are dropped */
	if (a->n < a->cap)
		a->b[a->n++] = (char)ch;
	else
		a->over = true;
}

static void sink_put(sink *s, uint8_t ch)
{
	if (s->a == NULL)
		return;
	if (s->prefix == 1) {
		param_target *tg = s->tg;
		if (ch == '\'')
			s->prefix = 2;
		else if (tg->cs_n < MIME_CHARSET_MAX)
			tg->charset[tg->cs_n++] = (char)ascii_lower(ch);
		else
			tg->cs_over = true;
		return;
	}
	if (s->prefix == 2) {
		if (ch == '\'')
			s->prefix = 0;
		return;
	}
	if (!s->pct) {
		acc_put(s->a, ch);
		return;
	}
	if (s->pst == 1) {
		if (hexval(ch) >= 0) {
			s->h1 = ch;
			s->pst = 2;
			return;
		}
		acc_put(s->a, '%');
	} else if (s->pst == 2) {
		if (hexval(ch) >= 0) {
			acc_put(s->a, (uint8_t)(hexval(s->h1) << 4 | hexval(ch)));
			s->pst = 0;
			return;
		}
		acc_put(s->a, '%');
		acc_put(s->a, s->h1);
	}
	s->pst = 0;
	if (ch == '%')
		s->pst = 1;
	else
		acc_put(s->a, ch);
}

static void sink_end(sink *s)
{
	if (s->a == NULL)
		return;
	if (s->pst >= 1)
		acc_put(s->a, '%');
	if (s->pst == 2)
		acc_put(s->a, s->h1);
	if (s->prefix != 0)
		s->tg->ext_bad = true; /* no charset'language' */
}

/* Which accumulator the parameter attr[0..n) goes to (RFC 2231 §3, §4). */
static void choose_sink(param_target *tgs, size_t ntg, const uint8_t *attr,
			size_t n, sink *s)
{
	memset(s, 0, sizeof(*s));
	size_t star = 0;
	while (star < n && attr[star] != '*')
		star++;
	param_target *tg = NULL;
	for (size_t k = 0; k < ntg; k++)
		if (eq_nocase(attr, star, tgs[k].name))
			tg = &tgs[k];
	if (tg == NULL)
		return;
	s->tg = tg;
	if (star == n) { /* name=value: the first one counts */
		if (!tg->plain_set) {
			tg->plain_set = true;
			s->a = &tg->plain;
		}
		return;
	}
	if (star + 1 == n) { /* name*=charset'lang'value */
		if (!tg->ext_started) {
			tg->ext_started = tg->ext_closed = true;
			tg->has_charset = true;
			s->a = &tg->ext;
			s->pct = true;
			s->prefix = 1;
		}
		return;
	}
	/* name*N or name*N*: N without leading zeros, at most 3 digits */
	size_t i = star + 1, d0 = i;
	unsigned seg = 0;
	while (i < n && attr[i] >= '0' && attr[i] <= '9' && i - d0 < 4)
		seg = seg * 10 + (unsigned)(attr[i++] - '0');
	bool enc = i + 1 == n && attr[i] == '*';
	if (i == d0 || i - d0 > 3 || (attr[d0] == '0' && i - d0 > 1) ||
	    (i != n && !enc))
		return;
	if (tg->ext_closed || tg->ext_dead)
		return;
	if (seg != tg->next_seg) {
		tg->ext_dead = true; /* a gap or a repeat: the join stops */
		return;
	}
	tg->next_seg++;
	tg->ext_started = true;
	s->a = &tg->ext;
	s->pct = enc;
	if (seg == 0 && enc) {
		tg->has_charset = true;
		s->prefix = 1;
	}
}

/* Read a quoted-string at m[i] == '"' into s; returns the offset after it
 * (the end when it is unterminated, *bad_r set). */
static size_t read_quoted(const uint8_t *m, size_t i, size_t end, sink *s,
			  bool *bad_r)
{
	i++;
	while (i < end) {
		uint8_t ch = m[i];
		if (ch == '"')
			return i + 1;
		if (ch == '\\' && i + 1 < end) {
			sink_put(s, m[i + 1]);
			i += 2;
			continue;
		}
		if (ch != '\r' && ch != '\n') /* unfolding */
			sink_put(s, ch);
		i++;
	}
	*bad_r = true;
	return i;
}

/* ";" attribute "=" value, repeated, from m[i]; stops at the first syntax
 * error (MIME_PART_BAD_PARAM). */
static void parse_params(param_target *tgs, size_t ntg, const uint8_t *m,
			 size_t i, size_t end, uint32_t *flags)
{
	for (;;) {
		i = skip_cfws(m, i, end);
		if (i >= end)
			return;
		if (m[i] != ';')
			break;
		i = skip_cfws(m, i + 1, end);
		if (i >= end)
			return;
		size_t a0 = i;
		while (i < end && is_token(m[i]))
			i++;
		size_t a1 = i;
		if (a1 == a0)
			break;
		i = skip_cfws(m, i, end);
		if (i >= end || m[i] != '=')
			break;
		i = skip_cfws(m, i + 1, end);
		sink s;
		choose_sink(tgs, ntg, m + a0, a1 - a0, &s);
		bool bad = false;
		if (i < end && m[i] == '"') {
			i = read_quoted(m, i, end, &s, &bad);
		} else {
			size_t v0 = i;
			while (i < end && is_value_byte(m[i]))
				sink_put(&s, m[i++]);
			bad = i == v0;
		}
		sink_end(&s);
		if (bad)
			break;
	}
	*flags |= MIME_PART_BAD_PARAM;
}

static size_t utf8_valid_len(const uint8_t *s, size_t n)
{
	size_t i = 0, k;
	uint32_t cp;
	while (i < n && (k = util_utf8_seq(s + i, n - i, &cp)) > 0)
		i += k;
	return i;
}

/* Back n up so that s[0..n) does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
	size_t k = n;
	while (k > 0 && n - k < 3 && ((uint8_t)s[k - 1] & 0xc0) == 0x80)
		k--;
	if (k > 0 && (uint8_t)s[k - 1] >= 0xc0) {
		size_t need = (uint8_t)s[k - 1] >= 0xf0 ? 4
			      : (uint8_t)s[k - 1] >= 0xe0 ? 3 : 2;
		if (n - (k - 1) < need)
			return k - 1;
	}
	return n;
}

/* The value of a target: the RFC 2231 one when usable, else the plain
 * one.  *over_r: it was longer than its cap (and is cut). */
static bool target_value(ctx *c, param_target *tg, const char **v_r,
			 size_t *n_r, bool *over_r)
{
	if (tg->ext_started && !tg->ext_bad && !tg->cs_over) {
		const char *cs = tg->has_charset ? tg->charset : "";
		size_t csn = tg->has_charset ? tg->cs_n : 0;
		const uint8_t *e = (const uint8_t *)tg->ext.b;
		size_t en = tg->ext.n;
		if (eq_nocase((const uint8_t *)cs, csn, "iso-8859-1") ||
		    eq_nocase((const uint8_t *)cs, csn, "iso_8859-1") ||
		    eq_nocase((const uint8_t *)cs, csn, "latin1")) {
			size_t o = 0;
			for (size_t i = 0; i < en && o + 2 <= c->conv_cap; i++) {
				if (e[i] < 0x80) {
					c->conv[o++] = (char)e[i];
				} else {
					c->conv[o++] = (char)(0xc0 | e[i] >> 6);
					c->conv[o++] = (char)(0x80 | (e[i] & 0x3f));
				}
			}
			*v_r = c->conv;
			*n_r = o;
			*over_r = tg->ext.over;
			return true;
		}
		if (csn == 0 || eq_nocase((const uint8_t *)cs, csn, "utf-8") ||
		    eq_nocase((const uint8_t *)cs, csn, "utf8") ||
		    eq_nocase((const uint8_t *)cs, csn, "us-ascii")) {
			size_t ok = utf8_valid_len(e, en);
			if (ok == en || (tg->ext.over && en - ok < 4)) {
				*v_r = tg->ext.b;
				*n_r = ok;
				*over_r = tg->ext.over;
				return true;
			}
		}
		/* another charset, or invalid: the plain value, if any */
	}
	if (tg->plain_set) {
		*v_r = tg->plain.b;
		*n_r = tg->plain.n;
		*over_r = tg->plain.over;
		return true;
	}
	return false;
}

static void targets_reset(param_target *tgs, size_t ntg,
			  const char *const *names)
{
	for (size_t k = 0; k < ntg; k++) {
		param_target *tg = &tgs[k];
		char *pb = tg->plain.b, *eb = tg->ext.b;
		size_t pcap = tg->plain.cap, ecap = tg->ext.cap;
		memset(tg, 0, sizeof(*tg));
		tg->name = names[k];
		tg->plain.b = pb;
		tg->plain.cap = pcap;
		tg->ext.b = eb;
		tg->ext.cap = ecap;
	}
}

/* ------------------------------------------------------------ parts */

typedef struct part_hdr {
	bool ct_seen, cte_seen, cd_seen;
	bool ct_bad;
	const char *type, *subtype;
	size_t type_n, subtype_n;
	const char *boundary;
	size_t boundary_n;
	bool boundary_over, has_boundary;
} part_hdr;

/* A token (type, subtype, encoding, disposition) at m[*i]. */
static size_t read_token(const uint8_t *m, size_t *i, size_t end)
{
	size_t t0 = *i;
	while (*i < end && is_token(m[*i]))
		(*i)++;
	return *i - t0;
}

static void parse_content_type(ctx *c, mime_part *p, part_hdr *h,
			       const uint8_t *m, size_t i, size_t end)
{
	i = skip_cfws(m, i, end);
	size_t t0 = i, tn = read_token(m, &i, end);
	i = skip_cfws(m, i, end);
	if (tn == 0 || i >= end || m[i] != '/') {
		h->ct_bad = true;
		return;
	}
	i = skip_cfws(m, i + 1, end);
	size_t s0 = i, sn = read_token(m, &i, end);
	if (sn == 0 || tn > MIME_TOKEN_MAX || sn > MIME_TOKEN_MAX) {
		if (tn > MIME_TOKEN_MAX || sn > MIME_TOKEN_MAX)
			p->flags |= MIME_PART_LONG_VALUE;
		h->ct_bad = true;
		return;
	}
	p->type = pool_add(c, (const char *)m + t0, tn, true);
	p->subtype = pool_add(c, (const char *)m + s0, sn, true);
	static const char *const names[3] = { "boundary", "charset", "name" };
	targets_reset(c->tg, 3, names);
	parse_params(c->tg, 3, m, i, end, &p->flags);

	const char *v;
	size_t n;
	bool over;
	if (target_value(c, &c->tg[TG_BOUNDARY], &v, &n, &over)) {
		/* copied now: v may be the conversion buffer, which the
		 * next target_value reuses */
		h->has_boundary = n > 0;
		h->boundary_over = over || n > c->lim.max_boundary;
		h->boundary_n = n;
		if (!h->boundary_over)
			h->boundary = pool_add(c, v, n, false);
	}
	if (target_value(c, &c->tg[TG_CHARSET], &v, &n, &over)) {
		if (over)
			p->flags |= MIME_PART_LONG_VALUE;
		else
			p->charset = pool_add(c, v, n, true);
	}
	if (target_value(c, &c->tg[TG_NAME], &v, &n, &over)) {
		if (over) {
			p->flags |= MIME_PART_LONG_VALUE;
			n = utf8_cut(v, n > MIME_FILENAME_MAX ? MIME_FILENAME_MAX : n);
		} else if (n > MIME_FILENAME_MAX) {
			p->flags |= MIME_PART_LONG_VALUE;
			n = utf8_cut(v, MIME_FILENAME_MAX);
		}
		if (p->filename[0] == '\0')
			p->filename = pool_add(c, v, n, false);
	}
}

static void parse_disposition(ctx *c, mime_part *p, const uint8_t *m,
			      size_t i, size_t end)
{
	i = skip_cfws(m, i, end);
	size_t t0 = i, tn = read_token(m, &i, end);
	if (tn > MIME_CHARSET_MAX)
		p->flags |= MIME_PART_LONG_VALUE;
	else
		p->disposition = pool_add(c, (const char *)m + t0, tn, true);
	if (tn == 0)
		return;
	static const char *const names[1] = { "filename" };
	param_target *tg = &c->tg[TG_FILENAME];
	targets_reset(tg, 1, names);
	parse_params(tg, 1, m, i, end, &p->flags);
	const char *v;
	size_t n;
	bool over;
	if (target_value(c, tg, &v, &n, &over)) {
		if (over || n > MIME_FILENAME_MAX) {
			p->flags |= MIME_PART_LONG_VALUE;
			n = utf8_cut(v, n > MIME_FILENAME_MAX ? MIME_FILENAME_MAX : n);
		}
		/* the disposition's filename beats Content-Type's name */
		p->filename = pool_add(c, v, n, false);
	}
}

static void parse_cte(ctx *c, mime_part *p, const uint8_t *m, size_t i,
		      size_t end)
{
	i = skip_cfws(m, i, end);
	size_t t0 = i, tn = read_token(m, &i, end);
	if (tn > MIME_CHARSET_MAX) {
		p->flags |= MIME_PART_LONG_VALUE;
		p->cte = MIME_CTE_OTHER;
		return;
	}
	p->cte_name = pool_add(c, (const char *)m + t0, tn, true);
	static const struct {
		const char *name;
		mime_cte cte;
	} known[] = {
		{ "7bit", MIME_CTE_7BIT },
		{ "8bit", MIME_CTE_8BIT },
		{ "binary", MIME_CTE_BINARY },
		{ "quoted-printable", MIME_CTE_QP },
		{ "base64", MIME_CTE_BASE64 },
	};
	p->cte = MIME_CTE_OTHER;
	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
		if (strcmp(p->cte_name, known[k].name) == 0)
			p->cte = known[k].cte;
}

/* The open multipart whose delimiter the line m[0..n) (after "--") is,
 * or -1.  At most one can match (collisions are refused at push). */
static long match_open(const ctx *c, const uint8_t *m, size_t n)
{
	for (size_t k = c->nstack; k-- > 0;) {
		const open_mp *o = &c->stack[k];
		if (n >= o->blen && memcmp(m, o->b, o->blen) == 0)
			return (long)k;
	}
	return -1;
}

/* The line content of msg at pos: its end before CRLF / LF. */
static size_t line_end(const ctx *c, size_t pos, size_t *next_r)
{
	const uint8_t *lf = memchr(c->msg + pos, '\n', c->len - pos);
	size_t ce = lf != NULL ? (size_t)(lf - c->msg) : c->len;
	*next_r = lf != NULL ? ce + 1 : c->len;
	if (ce > pos && c->msg[ce - 1] == '\r')
		ce--;
	return ce;
}

static bool is_delimiter(const ctx *c, size_t pos)
{
	if (c->nstack == 0 || c->len - pos < 2 || c->msg[pos] != '-' ||
	    c->msg[pos + 1] != '-')
		return false;
	size_t next, ce = line_end(c, pos, &next);
	return match_open(c, c->msg + pos + 2, ce - pos - 2) >= 0;
}

static mime_err fail(ctx *c, mime_err e, const char *why)
{
	c->error = why;
	return e;
}

/* A new part, child of parent (MIME_NONE: the message), header at
 * hdr_off. */
static mime_err add_part(ctx *c, uint32_t parent, size_t hdr_off,
			 uint32_t *idx_r)
{
	mime_tree *t = c->t;
	uint32_t depth = parent == MIME_NONE ? 0 : t->parts[parent].depth + 1;
	if (depth > c->lim.max_depth)
		return fail(c, MIME_ERR_DEPTH,
			    "MIME parts nested deeper than the nesting limit");
	if (t->n >= c->lim.max_parts)
		return fail(c, MIME_ERR_PARTS,
			    "more MIME parts than the limit");
	if (t->n == t->cap) {
		size_t cap = t->cap == 0 ? 16 : t->cap * 2;
		if (cap > c->lim.max_parts)
			cap = c->lim.max_parts;
		t->parts = xrealloc(t->parts, cap, sizeof(*t->parts));
		t->last_child = xrealloc(t->last_child, cap,
					 sizeof(*t->last_child));
		t->cap = cap;
	}
	uint32_t idx = (uint32_t)t->n++;
	mime_part *p = &t->parts[idx];
	memset(p, 0, sizeof(*p));
	p->hdr_off = hdr_off;
	p->body_off = hdr_off;
	p->end = hdr_off;
	p->parent = parent;
	p->first_child = p->next_sibling = MIME_NONE;
	p->depth = depth;
	p->type = p->subtype = p->boundary = p->charset = p->cte_name =
		p->disposition = p->filename = "";
	t->last_child[idx] = MIME_NONE;
	if (parent != MIME_NONE) {
		mime_part *pp = &t->parts[parent];
		if (pp->first_child == MIME_NONE)
			pp->first_child = idx;
		else
			t->parts[t->last_child[parent]].next_sibling = idx;
		t->last_child[parent] = idx;
		pp->n_children++;
	}
	*idx_r = idx;
	return MIME_OK;
}

/* Read the header of part idx; set its body_off and MIME fields. */
static mime_err read_header(ctx *c, uint32_t idx, part_hdr *h)
{
	mime_part *p = &c->t->parts[idx];
	size_t base = p->hdr_off;
	const uint8_t *m = c->msg;
	mail_header_iter it;
	mail_field f;
	memset(h, 0, sizeof(*h));
	mail_header_iter_init(&it, m + base, c->len - base);
	for (;;) {
		if (mail_header_next(&it, &f) == 0) {
			p->body_off = base + it.body_off;
			if (it.no_separator)
				p->flags |= MIME_PART_HDR_NO_SEPARATOR;
			break;
		}
		if (f.off + f.len > c->lim.max_header)
			return fail(c, MIME_ERR_HEADER,
				    "a MIME header section larger than the "
				    "limit");
		size_t off = base + f.off, end = off + f.len;
		if (is_delimiter(c, off)) {
			p->body_off = off;
			p->flags |= MIME_PART_HDR_NO_SEPARATOR;
			break;
		}
		if (f.malformed)
			p->flags |= MIME_PART_HDR_MALFORMED;
		if (f.nul)
			p->flags |= MIME_PART_HDR_NUL;
		mail_field af = f;
		af.off = off;
		af.value_off = base + f.value_off;
		if (mail_field_is(m, &af, "Content-Type")) {
			if (h->ct_seen) {
				p->flags |= MIME_PART_DUPLICATE;
				continue;
			}
			h->ct_seen = true;
			parse_content_type(c, p, h, m, af.value_off, end);
		} else if (mail_field_is(m, &af, "Content-Transfer-Encoding")) {
			if (h->cte_seen) {
				p->flags |= MIME_PART_DUPLICATE;
				continue;
			}
			h->cte_seen = true;
			parse_cte(c, p, m, af.value_off, end);
		} else if (mail_field_is(m, &af, "Content-Disposition")) {
			if (h->cd_seen) {
				p->flags |= MIME_PART_DUPLICATE;
				continue;
			}
			h->cd_seen = true;
			parse_disposition(c, p, m, af.value_off, end);
		}
	}
	if (!h->ct_seen || h->ct_bad) {
		if (h->ct_bad)
			p->flags |= MIME_PART_BAD_CTYPE;
		bool digest = p->parent != MIME_NONE &&
			      strcmp(c->t->parts[p->parent].type, "multipart") == 0 &&
			      strcmp(c->t->parts[p->parent].subtype, "digest") == 0;
		p->type = digest ? "message" : "text";
		p->subtype = digest ? "rfc822" : "plain";
		p->charset = "";
		h->has_boundary = false;
	}
	return MIME_OK;
}

static bool identity_cte(mime_cte e)
{
	return e == MIME_CTE_NONE || e == MIME_CTE_7BIT || e == MIME_CTE_8BIT ||
	       e == MIME_CTE_BINARY;
}

/* Does b collide with an open boundary (equal, or a prefix either way)? */
static bool collides(const ctx *c, const char *b, size_t n)
{
	for (size_t k = 0; k < c->nstack; k++) {
		const open_mp *o = &c->stack[k];
		size_t l = n < o->blen ? n : o->blen;
		if (memcmp(b, o->b, l) == 0)
			return true;
	}
	return false;
}

/* Start a part (and, for message/rfc822, the message inside it, and so
 * on) with its header at hdr_off; *cur_r is the deepest one started. */
static mime_err start_part(ctx *c, uint32_t parent, size_t hdr_off,
			   uint32_t *cur_r)
{
	for (;;) {
		uint32_t idx;
		part_hdr h;
		mime_err e = add_part(c, parent, hdr_off, &idx);
		if (e != MIME_OK)
			return e;
		e = read_header(c, idx, &h);
		if (e != MIME_OK)
			return e;
		mime_part *p = &c->t->parts[idx];
		*cur_r = idx;
		bool multi = strcmp(p->type, "multipart") == 0;
		bool message = strcmp(p->type, "message") == 0 &&
			       (strcmp(p->subtype, "rfc822") == 0 ||
				strcmp(p->subtype, "global") == 0);
		if (!multi && !message)
			return MIME_OK;
		if (!identity_cte(p->cte)) {
			p->flags |= MIME_PART_ENCODED_COMPOSITE;
			return MIME_OK;
		}
		if (message) {
			parent = idx;
			hdr_off = p->body_off;
			continue;
		}
		if (!h.has_boundary) {
			p->flags |= MIME_PART_NO_BOUNDARY;
			return MIME_OK;
		}
		if (h.boundary_over)
			return fail(c, MIME_ERR_BOUNDARY,
				    "a MIME boundary longer than the limit");
		p->boundary = h.boundary;
		if (collides(c, p->boundary, h.boundary_n)) {
			p->flags |= MIME_PART_BOUNDARY_COLLISION;
			return MIME_OK;
		}
		if (c->nstack == c->stack_cap) {
			/* depth bounds the stack: at most max_depth + 1 */
			size_t cap = c->stack_cap == 0 ? 8 : c->stack_cap * 2;
			c->stack = xrealloc(c->stack, cap, sizeof(*c->stack));
			c->stack_cap = cap;
		}
		c->stack[c->nstack++] = (open_mp){ idx, p->boundary,
						   h.boundary_n };
		return MIME_OK;
	}
}

/* End the open parts from cur up to, not including, stop (MIME_NONE: all
 * of them) at offset at (never before a part's body). */
static void end_parts(ctx *c, uint32_t cur, uint32_t stop, size_t at)
{
	for (uint32_t k = cur; k != stop && k != MIME_NONE;
	     k = c->t->parts[k].parent) {
		mime_part *p = &c->t->parts[k];
		p->end = at > p->body_off ? at : p->body_off;
	}
}

static mime_err run(ctx *c)
{
	uint32_t cur;
	mime_err e = start_part(c, MIME_NONE, 0, &cur);
	if (e != MIME_OK)
		return e;
	size_t pos = c->t->parts[cur].body_off, prev_eol = 0;
	const uint8_t *m = c->msg;
	while (pos < c->len) {
		size_t next, ce = line_end(c, pos, &next);
		long k = -1;
		if (c->nstack > 0 && ce - pos >= 2 && m[pos] == '-' &&
		    m[pos + 1] == '-')
			k = match_open(c, m + pos + 2, ce - pos - 2);
		if (k < 0) {
			prev_eol = next - ce;
			pos = next;
			continue;
		}
		open_mp *o = &c->stack[k];
		uint32_t mp = o->part;
		end_parts(c, cur, mp, pos - prev_eol);
		for (size_t j = (size_t)k + 1; j < c->nstack; j++)
			c->t->parts[c->stack[j].part].flags |=
				MIME_PART_UNTERMINATED;
		size_t after = pos + 2 + o->blen;
		bool close = ce - after >= 2 && m[after] == '-' &&
			     m[after + 1] == '-';
		if (close) {
			c->nstack = (size_t)k;
			cur = mp;
			prev_eol = next - ce;
			pos = next;
			continue;
		}
		c->nstack = (size_t)k + 1;
		e = start_part(c, mp, next, &cur);
		if (e != MIME_OK)
			return e;
		pos = c->t->parts[cur].body_off;
		prev_eol = 0;
	}
	end_parts(c, cur, MIME_NONE, c->len);
	for (size_t j = 0; j < c->nstack; j++)
		c->t->parts[c->stack[j].part].flags |= MIME_PART_UNTERMINATED;
	return MIME_OK;
}

/* ------------------------------------------------------------ API */

void mime_limits_default(mime_limits *lim_r)
{
	lim_r->max_depth = MIME_DEPTH_MAX_DEFAULT;
	lim_r->max_parts = MIME_PARTS_MAX_DEFAULT;
	lim_r->max_header = MIME_HEADER_MAX_DEFAULT;
	lim_r->max_boundary = MIME_BOUNDARY_MAX_DEFAULT;
}

const char *mime_err_name(mime_err e)
{
	switch (e) {
	case MIME_OK:
		return "ok";
	case MIME_ERR_DEPTH:
		return "depth";
	case MIME_ERR_PARTS:
		return "parts";
	case MIME_ERR_HEADER:
		return "header";
	case MIME_ERR_BOUNDARY:
		return "boundary";
	case MIME_ERR_LIMITS:
		return "limits";
	}
	return "unknown";
}

void mime_tree_destroy(mime_tree **tree)
{
	if (tree == NULL || *tree == NULL)
		return;
	mime_tree *t = *tree;
	struct mime_chunk *k = t->chunks;
	while (k != NULL) {
		struct mime_chunk *nx = k->next;
		free(k);
		k = nx;
	}
	free(t->parts);
	free(t->last_child);
	free(t);
	*tree = NULL;
}

mime_err mime_parse(const uint8_t *msg, size_t len, const mime_limits *lim,
		    mime_tree **tree_r, const char **error_r)
{
	ctx c;
	memset(&c, 0, sizeof(c));
	*tree_r = NULL;
	mime_limits_default(&c.lim);
	if (lim != NULL) {
		if (lim->max_depth != 0)
			c.lim.max_depth = lim->max_depth;
		if (lim->max_parts != 0)
			c.lim.max_parts = lim->max_parts;
		if (lim->max_header != 0)
			c.lim.max_header = lim->max_header;
		if (lim->max_boundary != 0)
			c.lim.max_boundary = lim->max_boundary;
	}
	if (c.lim.max_depth > MIME_DEPTH_MAX_CEILING ||
	    c.lim.max_parts > MIME_PARTS_MAX_CEILING ||
	    c.lim.max_boundary > MIME_BOUNDARY_MAX_CEILING) {
		if (error_r != NULL)
			*error_r = "a MIME limit above its ceiling";
		return MIME_ERR_LIMITS;
	}
	c.msg = msg;
	c.len = len;
	c.t = xrealloc(NULL, 1, sizeof(*c.t));
	memset(c.t, 0, sizeof(*c.t));

	/* the accumulators: plain and extended values of each target */
	size_t bcap = c.lim.max_boundary, fcap = MIME_FILENAME_MAX;
	size_t caps[4] = { bcap, MIME_CHARSET_MAX, fcap, fcap };
	size_t total = 0;
	for (size_t k = 0; k < 4; k++)
		total += 2 * caps[k];
	c.conv_cap = 2 * (bcap > fcap ? bcap : fcap);
	c.mem = xrealloc(NULL, total + c.conv_cap, 1);
	char *q = c.mem;
	for (size_t k = 0; k < 4; k++) {
		c.tg[k].plain.b = q;
		c.tg[k].plain.cap = caps[k];
		q += caps[k];
		c.tg[k].ext.b = q;
		c.tg[k].ext.cap = caps[k];
		q += caps[k];
	}
	c.conv = q;
	/* strings a part: type, subtype, boundary, charset, encoding,
	 * disposition, two file names (name, then filename) */
	size_t per_part = 2 * (MIME_TOKEN_MAX + 1) + (bcap + 1) +
			  3 * (MIME_CHARSET_MAX + 1) + 2 * (fcap + 1);
	c.pool_max = per_part * c.lim.max_parts;

	mime_err e = run(&c);
	free(c.mem);
	free(c.stack);
	if (e != MIME_OK) {
		mime_tree_destroy(&c.t);
		if (error_r != NULL)
			*error_r = c.error;
		return e;
	}
	free(c.t->last_child);
	c.t->last_child = NULL;
	*tree_r = c.t;
	return MIME_OK;
}
