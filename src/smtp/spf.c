/*
 * spf.c — SPF (RFC 7208): a resumable check_host() evaluator.  See spf.h
 * for the API, what is implemented, what is refused and the limits.
 *
 * Shape: a stack of frames, one per record being evaluated (the outermost
 * domain, then one per include; a redirect replaces its frame).  Each
 * frame holds its record (checked whole when it arrives), the position of
 * the next term and the mechanism under evaluation.  spf_step() works
 * until it must ask DNS (ev->wait says what the answer is for) or the
 * result is known; spf_answer() takes the answer and moves on.  Every
 * array is fixed at its limit; the one allocation is the evaluator.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FRAMES_MAX (SPF_LOOKUP_LIMIT + 1u)
#define VALUE_MAX 640u          /* a macro letter's value: local@domain */
#define IP6_NIBBLES_LEN 63u     /* 32 nibbles and 31 dots */

typedef enum term_kind {
	K_ALL,
	K_INCLUDE,
	K_A,
	K_MX,
	K_PTR,
	K_IP4,
	K_IP6,
	K_EXISTS,
	K_REDIRECT,
	K_EXP,
	K_UNKNOWN,              /* an unknown modifier: ignored */
} term_kind;

typedef struct term {
	term_kind kind;
	char qual;              /* '+', '-', '~', '?' */
	size_t start, end;      /* the term in the record */
	size_t ds, ds_len;      /* domain-spec in the record; ds_len 0: none */
	unsigned cidr4, cidr6;
	uint8_t net[16];        /* ip4 / ip6 */
} term;

typedef struct frame {
	char domain[SPF_NAME_MAX + 1];
	bool have_rec;
	bool via_redirect;      /* no record here is a permerror */
	char rec[SPF_RECORD_MAX];
	size_t rec_len;
	size_t pos;             /* of the next term */
	bool has_redirect, has_exp;
	term redirect, exp;
	term cur;               /* the mechanism under evaluation */
} frame;

typedef enum wait {
	W_NONE = 0,
	W_RECORD,               /* TXT of the top frame's domain */
	W_ADDR,                 /* A/AAAA of an a or exists mechanism */
	W_MX,
	W_MX_ADDR,
	W_PTR,
	W_PTR_ADDR,
	W_EXP,
} wait;

struct spf_eval {
	spf_ip ip;
	char sdomain[SPF_NAME_MAX + 1];         /* %{o} */
	char local[SPF_LOCAL_MAX + 1];          /* %{l} */
	char helo[SPF_NAME_MAX + 1];            /* %{h} */
	char host[SPF_NAME_MAX + 1];            /* %{r} */
	char ip_i[IP6_NIBBLES_LEN + 1];         /* %{i} */
	char ip_c[INET6_ADDRSTRLEN];            /* %{c} */
	uint64_t now;                           /* %{t} */
	spf_limits lim;

	frame fr[FRAMES_MAX];
	unsigned depth;                         /* frames in use */

	wait wait;
	spf_query q;
	char names[SPF_MX_LIMIT][SPF_NAME_MAX + 1];   /* mx / ptr names */
	char ptr_target[SPF_NAME_MAX + 1];            /* of a ptr mechanism */
	unsigned n_names, next_name;

	bool done;
	spf_outcome out;
};

/* ------------------------------------------------------------ characters */

static bool is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(uint8_t c)
{
	return is_alpha(c) || is_digit(c);
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

static bool ieq(const uint8_t *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

/* A name we may ask for (spf.h): 1..253 octets, labels 1..63 of %x21-7E
 * other than '\\', no final dot (the caller strips one). */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > SPF_NAME_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '\\' || ++label > 63)
			return false;
	}
	return label > 0;
}

/* ------------------------------------------------------------ macros (§7) */

typedef enum tok_kind {
	T_LIT,          /* one literal octet: tok.c */
	T_ESC,          /* %% %_ %-: tok.c is '%', ' ', '-' */
	T_MACRO,
} tok_kind;

typedef struct tok {
	tok_kind kind;
	uint8_t c;              /* T_LIT, T_ESC; T_MACRO: the letter */
	unsigned digits;        /* 0: none (all parts) */
	bool reverse;
	char delims[8];         /* NUL-terminated set; "" means "." */
} tok;

/* The token at s[*pos..len); *pos moves past it.  0, or -1 with *err. */
static int next_tok(const uint8_t *s, size_t len, size_t *pos, bool exp,
		    tok *t, const char **err)
{
	size_t p = *pos;
	uint8_t c = s[p];
	memset(t, 0, sizeof(*t));
	if (c != '%') {
		/* macro-literal = %x21-24 / %x26-7E; SP in explain-string */
		if ((c < 0x21 || c > 0x7e) && !(exp && c == ' ')) {
			*err = "a character not allowed in a macro string";
			return -1;
		}
		t->kind = T_LIT;
		t->c = c;
		*pos = p + 1;
		return 0;
	}
	if (p + 1 >= len) {
		*err = "a '%' at the end of a macro string";
		return -1;
	}
	c = s[p + 1];
	if (c == '%' || c == '_' || c == '-') {
		t->kind = T_ESC;
		t->c = c == '%' ? '%' : c == '_' ? ' ' : '-';
		*pos = p + 2;
		return 0;
	}
	if (c != '{') {
		*err = "a '%' not followed by '{', '%', '_' or '-'";
		return -1;
	}
	p += 2;
	if (p >= len) {
		*err = "an unterminated macro";
		return -1;
	}
	uint8_t l = lower(s[p]);
	if (strchr("slodiphcrtv", l) == NULL || l == 0) {
		*err = "an unknown macro letter";
		return -1;
	}
	if (!exp && (l == 'c' || l == 'r' || l == 't')) {
		*err = "macro letters c, r and t are only allowed in exp text";
		return -1;
	}
	t->kind = T_MACRO;
	t->c = s[p++];
	bool any_digit = false;
	while (p < len && is_digit(s[p])) {
		any_digit = true;
		if (t->digits < 1000)   /* saturate: more parts than exist */
			t->digits = t->digits * 10 + (unsigned)(s[p] - '0');
		p++;
	}
	if (any_digit && t->digits == 0) {
		*err = "a macro's digit transformer is zero";
		return -1;
	}
	if (p < len && lower(s[p]) == 'r') {
		t->reverse = true;
		p++;
	}
	size_t nd = 0;
	while (p < len && strchr(".-+,/_=", s[p]) != NULL && s[p] != 0) {
		if (strchr(t->delims, s[p]) == NULL &&
		    nd < sizeof(t->delims) - 1)
			t->delims[nd++] = (char)s[p];
		p++;
	}
	if (p >= len || s[p] != '}') {
		*err = "a macro not closed by '}'";
		return -1;
	}
	*pos = p + 1;
	return 0;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool toplabel_ok(const uint8_t *s, size_t len)
{
	bool alpha = false, hyphen = false;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '-')
			hyphen = true;
		else if (is_alpha(s[i]))
			alpha = true;
		else if (!is_digit(s[i]))
			return false;
	}
	if (hyphen)
		return is_alnum(s[0]) && is_alnum(s[len - 1]);
	return alpha;
}

/* The syntax of a macro string; with domain, of a domain-spec
 * (macro-string domain-end).  0 or -1 with *err. */
static int macro_check(const uint8_t *s, size_t len, bool exp, bool domain,
		       const char **err)
{
	size_t pos = 0, tail = 0;
	tok t;
	bool last_macro = false;
	if (domain && len == 0) {
		*err = "an empty domain-spec";
		return -1;
	}
	while (pos < len) {
		if (next_tok(s, len, &pos, exp, &t, err) < 0)
			return -1;
		last_macro = t.kind != T_LIT;
		if (last_macro)
			tail = pos;
	}
	if (!domain || last_macro)
		return 0;
	/* domain-end = "." toplabel ["."] in the literal tail */
	size_t end = len;
	if (end > tail && s[end - 1] == '.')
		end--;
	size_t dot = end;
	while (dot > tail && s[dot - 1] != '.')
		dot--;
	if (dot == tail || !toplabel_ok(s + dot, end - dot)) {
		*err = "a domain-spec does not end in a top-level label or a "
		       "macro";
		return -1;
	}
	return 0;
}

/* An expansion under way: with slide, the rightmost octets are kept when
 * it grows past its buffer (a domain is cut on the left anyway). */
typedef struct ebuf {
	char b[SPF_EXPAND_MAX];
	size_t len, cap;
	bool slide, cut;
} ebuf;

static void eput(ebuf *e, uint8_t c)
{
	if (e->len == e->cap) {
		e->cut = true;
		if (!e->slide)
			return;
		size_t keep = e->cap / 2;
		memmove(e->b, e->b + (e->cap - keep), keep);
		e->len = keep;
	}
	e->b[e->len++] = (char)c;
}

static size_t put_str(char *buf, size_t cap, size_t n, const char *s)
{
	while (*s != '\0' && n < cap)
		buf[n++] = *s++;
	return n;
}

/* The value of a macro letter (§7.3) in buf (cap VALUE_MAX); its length. */
static size_t letter_value(const spf_eval *ev, const char *domain, uint8_t l,
			   char *buf)
{
	size_t n = 0;
	switch (l) {
	case 's':
		n = put_str(buf, VALUE_MAX, n, ev->local);
		n = put_str(buf, VALUE_MAX, n, "@");
		n = put_str(buf, VALUE_MAX, n, ev->sdomain);
		break;
	case 'l':
		n = put_str(buf, VALUE_MAX, n, ev->local);
		break;
	case 'o':
		n = put_str(buf, VALUE_MAX, n, ev->sdomain);
		break;
	case 'd':
		n = put_str(buf, VALUE_MAX, n, domain);
		break;
	case 'i':
		n = put_str(buf, VALUE_MAX, n, ev->ip_i);
		break;
	case 'p':
		n = put_str(buf, VALUE_MAX, n, "unknown");
		break;
	case 'v':
		n = put_str(buf, VALUE_MAX, n,
			    ev->ip.family == AF_INET ? "in-addr" : "ip6");
		break;
	case 'h':
		n = put_str(buf, VALUE_MAX, n, ev->helo);
		break;
	case 'c':
		n = put_str(buf, VALUE_MAX, n, ev->ip_c);
		break;
	case 'r':
		n = put_str(buf, VALUE_MAX, n, ev->host);
		break;
	case 't': {
		char num[24];
		snprintf(num, sizeof(num), "%llu", (unsigned long long)ev->now);
		n = put_str(buf, VALUE_MAX, n, num);
		break;
	}
	default:
		break;
	}
	return n;
}

static bool unreserved(uint8_t c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void eput_val(ebuf *e, uint8_t c, bool escape)
{
	static const char hex[] = "0123456789ABCDEF";
	if (escape && !unreserved(c)) {
		eput(e, '%');
		eput(e, (uint8_t)hex[c >> 4]);
		eput(e, (uint8_t)hex[c & 15]);
	} else {
		eput(e, c);
	}
}

/* One macro: split the value on the delimiters, reverse, keep the
 * rightmost digits parts, join with '.' (§7.3), URL-escape for an upper
 * case letter. */
static void expand_macro(const spf_eval *ev, const char *domain,
			 const tok *t, ebuf *e)
{
	char val[VALUE_MAX];
	size_t n = letter_value(ev, domain, lower(t->c), val);
	const char *delims = t->delims[0] != '\0' ? t->delims : ".";
	bool escape = t->c >= 'A' && t->c <= 'Z';
	/* parts: at most n + 1 */
	uint16_t ps[VALUE_MAX + 1], pe[VALUE_MAX + 1];
	size_t np = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || strchr(delims, val[i]) != NULL) {
			ps[np] = (uint16_t)start;
			pe[np] = (uint16_t)i;
			np++;
			start = i + 1;
		}
	}
	/* order: index k of the output walks parts first..last, reversed
	 * when asked; keep the last `digits` of that order */
	size_t first = 0;
	if (t->digits != 0 && t->digits < np)
		first = np - t->digits;
	for (size_t k = first; k < np; k++) {
		size_t idx = t->reverse ? np - 1 - k : k;
		if (k > first)
			eput_val(e, '.', escape);
		for (size_t i = ps[idx]; i < pe[idx]; i++)
			eput_val(e, (uint8_t)val[i], escape);
	}
}

int spf_expand(const spf_eval *ev, const char *domain, const uint8_t *s,
	       size_t len, spf_expand_kind kind, char *out, size_t out_size,
	       const char **error_r)
{
	bool exp = kind == SPF_EXPAND_EXP;
	if (out_size == 0) {
		*error_r = "no room for the expansion";
		return -1;
	}
	out[0] = '\0';
	if (domain == NULL)
		domain = ev->fr[0].domain;
	if (macro_check(s, len, exp, !exp, error_r) < 0)
		return -1;
	ebuf e;
	e.len = 0;
	e.cap = exp ? SPF_EXP_MAX : SPF_EXPAND_MAX;
	e.slide = !exp;
	e.cut = false;
	size_t pos = 0;
	tok t;
	while (pos < len) {
		if (next_tok(s, len, &pos, exp, &t, error_r) < 0)
			return -1;              /* not reached: checked */
		if (t.kind == T_MACRO) {
			expand_macro(ev, domain, &t, &e);
		} else if (t.kind == T_ESC && t.c == '-') {
			eput(&e, '%');          /* %- is "%20" */
			eput(&e, '2');
			eput(&e, '0');
		} else {
			eput(&e, t.c);
		}
	}
	size_t off = 0, n = e.len;
	if (exp) {
		for (size_t i = 0; i < n; i++) {
			uint8_t c = (uint8_t)e.b[i];
			if (c < 0x20 || c > 0x7e)
				e.b[i] = '?';
		}
	} else {
		if (n > 0 && e.b[n - 1] == '.')
			n--;
		/* §7.3: drop labels on the left until it fits */
		while (n - off > SPF_NAME_MAX) {
			const char *dot = memchr(e.b + off, '.', n - off);
			if (dot == NULL)
				break;
			off = (size_t)(dot - e.b) + 1;
		}
		if (!name_ok(e.b + off, n - off)) {
			*error_r = "a macro expanded to something that is not a "
				   "domain name";
			return -1;
		}
		for (size_t i = off; i < n; i++)
			e.b[i] = (char)lower((uint8_t)e.b[i]);
	}
	n -= off;
	if (n > out_size - 1)
		n = out_size - 1;
	memcpy(out, e.b + off, n);
	out[n] = '\0';
	return (int)n;
}

/* ------------------------------------------------------------ terms (§4.6) */

/* A CIDR length at s[0..len): "0" / %x31-39 *DIGIT, at most max. */
static bool cidr_parse(const uint8_t *s, size_t len, unsigned max,
		       unsigned *v_r)
{
	if (len == 0 || len > 3 || (s[0] == '0' && len > 1))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*v_r = v;
	return true;
}

/* A trailing dual-cidr-length of s[0..*len): strip it, set the lengths.
 * -1 when digits after the last '/' are not a valid length. */
static int dual_cidr_strip(const uint8_t *s, size_t *len, unsigned *c4,
			   unsigned *c6)
{
	size_t n = *len, d = n;
	while (d > 0 && is_digit(s[d - 1]))
		d--;
	if (d == n || d == 0 || s[d - 1] != '/')
		return 0;
	if (d >= 2 && s[d - 2] == '/') {
		if (!cidr_parse(s + d, n - d, 128, c6))
			return -1;
		n = d - 2;
		d = n;
		while (d > 0 && is_digit(s[d - 1]))
			d--;
		if (d == n || d == 0 || s[d - 1] != '/') {
			*len = n;
			return 0;
		}
	}
	if (!cidr_parse(s + d, n - d, 32, c4))
		return -1;
	*len = d - 1;
	return 0;
}

/* ip4-network: four qnum (0..255, no leading zero) */
static bool ip4_parse(const uint8_t *s, size_t len, uint8_t out[4])
{
	size_t p = 0;
	for (int k = 0; k < 4; k++) {
		if (k > 0) {
			if (p >= len || s[p] != '.')
				return false;
			p++;
		}
		size_t st = p;
		unsigned v = 0;
		while (p < len && is_digit(s[p]) && p - st < 3)
			v = v * 10 + (unsigned)(s[p++] - '0');
		if (p == st || v > 255 || (s[st] == '0' && p - st > 1))
			return false;
		out[k] = (uint8_t)v;
	}
	return p == len;
}

static bool ip6_parse(const uint8_t *s, size_t len, uint8_t out[16])
{
	char buf[INET6_ADDRSTRLEN + 1];
	if (len == 0 || len >= sizeof(buf))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(is_digit(s[i]) || (lower(s[i]) >= 'a' &&
					 lower(s[i]) <= 'f') ||
		      s[i] == ':' || s[i] == '.'))
			return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* The term at rec[*pos..) (after its leading spaces); *pos moves past
 * it.  0, or -1 with *err (a permerror). */
static int term_parse(const uint8_t *rec, size_t len, size_t *pos, term *t,
		      const char **err)
{
	size_t p = *pos, end = p;
	while (end < len && rec[end] != ' ')
		end++;
	memset(t, 0, sizeof(*t));
	t->start = p;
	t->end = end;
	t->qual = '+';
	t->cidr4 = 32;
	t->cidr6 = 128;
	*pos = end;
	bool qualified = false;
	if (strchr("+-~?", rec[p]) != NULL && rec[p] != 0) {
		t->qual = (char)rec[p++];
		qualified = true;
	}
	size_t ns = p;
	if (p >= end || !is_alpha(rec[p])) {
		*err = "a term does not begin with a name";
		return -1;
	}
	while (p < end && (is_alnum(rec[p]) || rec[p] == '-' ||
			   rec[p] == '_' || rec[p] == '.'))
		p++;
	const uint8_t *nm = rec + ns;
	size_t nl = p - ns;
	if (p < end && rec[p] == '=') {
		if (qualified) {
			*err = "a modifier with a qualifier";
			return -1;
		}
		t->ds = p + 1;
		t->ds_len = end - (p + 1);
		bool known = true;
		if (ieq(nm, nl, "redirect"))
			t->kind = K_REDIRECT;
		else if (ieq(nm, nl, "exp"))
			t->kind = K_EXP;
		else
			known = false;
		if (!known) {
			t->kind = K_UNKNOWN;
			return macro_check(rec + t->ds, t->ds_len, true, false,
					   err);
		}
		return macro_check(rec + t->ds, t->ds_len, false, true, err);
	}
	const uint8_t *rest = rec + p;
	size_t rl = end - p;
	if (ieq(nm, nl, "all")) {
		t->kind = K_ALL;
		if (rl != 0) {
			*err = "'all' takes no argument";
			return -1;
		}
		return 0;
	}
	if (ieq(nm, nl, "include") || ieq(nm, nl, "exists")) {
		t->kind = ieq(nm, nl, "include") ? K_INCLUDE : K_EXISTS;
		if (rl < 2 || rest[0] != ':') {
			*err = "include and exists need ':' and a domain-spec";
			return -1;
		}
		t->ds = p + 1;
		t->ds_len = rl - 1;
		return macro_check(rec + t->ds, t->ds_len, false, true, err);
	}
	if (ieq(nm, nl, "a") || ieq(nm, nl, "mx") || ieq(nm, nl, "ptr")) {
		t->kind = ieq(nm, nl, "a") ? K_A : ieq(nm, nl, "mx") ? K_MX
								      : K_PTR;
		size_t al = rl;
		if (t->kind != K_PTR &&
		    dual_cidr_strip(rest, &al, &t->cidr4, &t->cidr6) < 0) {
			*err = "a bad CIDR length";
			return -1;
		}
		if (al == 0)
			return 0;
		if (rest[0] != ':' || al < 2) {
			*err = "a mechanism's argument is not ':' domain-spec";
			return -1;
		}
		t->ds = p + 1;
		t->ds_len = al - 1;
		return macro_check(rec + t->ds, t->ds_len, false, true, err);
	}
	if (ieq(nm, nl, "ip4") || ieq(nm, nl, "ip6")) {
		bool v6 = ieq(nm, nl, "ip6");
		t->kind = v6 ? K_IP6 : K_IP4;
		if (rl < 2 || rest[0] != ':') {
			*err = "ip4 and ip6 need ':' and an address";
			return -1;
		}
		const uint8_t *a = rest + 1;
		size_t al = rl - 1;
		const uint8_t *slash = memchr(a, '/', al);
		size_t nlen = slash != NULL ? (size_t)(slash - a) : al;
		bool ok = v6 ? ip6_parse(a, nlen, t->net)
			     : ip4_parse(a, nlen, t->net);
		if (!ok) {
			*err = v6 ? "a bad ip6 network" : "a bad ip4 network";
			return -1;
		}
		if (slash != NULL &&
		    !cidr_parse(slash + 1, al - nlen - 1, v6 ? 128 : 32,
				v6 ? &t->cidr6 : &t->cidr4)) {
			*err = "a bad CIDR length";
			return -1;
		}
		return 0;
	}
	*err = "an unknown mechanism";
	return -1;
}

/* The record, whole (§4.6), with its redirect and exp noted. */
static int record_check(frame *f, const char **err)
{
	size_t pos = 6;         /* after "v=spf1" */
	term t;
	f->has_redirect = f->has_exp = false;
	for (;;) {
		while (pos < f->rec_len && f->rec[pos] == ' ')
			pos++;
		if (pos >= f->rec_len)
			return 0;
		if (term_parse((const uint8_t *)f->rec, f->rec_len, &pos, &t,
			       err) < 0)
			return -1;
		if (t.kind == K_REDIRECT) {
			if (f->has_redirect) {
				*err = "more than one redirect modifier";
				return -1;
			}
			f->has_redirect = true;
			f->redirect = t;
		} else if (t.kind == K_EXP) {
			if (f->has_exp) {
				*err = "more than one exp modifier";
				return -1;
			}
			f->has_exp = true;
			f->exp = t;
		}
	}
}

/* ------------------------------------------------------------ evaluation */

static void finish(spf_eval *ev, spf_result r, const char *reason)
{
	ev->out.result = r;
	ev->out.reason = reason;
	ev->done = true;
	ev->wait = W_NONE;
}

static void ask(spf_eval *ev, wait w, spf_qtype type, const char *name)
{
	ev->wait = w;
	ev->q.type = type;
	snprintf(ev->q.name, sizeof(ev->q.name), "%s", name);
	ev->out.queries++;
}

static spf_qtype addr_type(const spf_eval *ev)
{
	return ev->ip.family == AF_INET ? SPF_Q_A : SPF_Q_AAAA;
}

static spf_result qual_result(char q)
{
	switch (q) {
	case '-':
		return SPF_RESULT_FAIL;
	case '~':
		return SPF_RESULT_SOFTFAIL;
	case '?':
		return SPF_RESULT_NEUTRAL;
	default:
		return SPF_RESULT_PASS;
	}
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rem = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rem == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rem));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool addr_match(const spf_eval *ev, const uint8_t *data, size_t len,
		       const term *t)
{
	if (ev->ip.family == AF_INET)
		return len == 4 && prefix_eq(ev->ip.addr, data, t->cidr4);
	return len == 16 && prefix_eq(ev->ip.addr, data, t->cidr6);
}

static void term_text(const frame *f, const term *t, char *out)
{
	size_t n = t->end - t->start;
	if (n > SPF_TERM_MAX)
		n = SPF_TERM_MAX;
	memcpy(out, f->rec + t->start, n);
	out[n] = '\0';
}

/* A frame's own result (not an error): pass it to the include that asked,
 * or end the evaluation (fetching the explanation first for fail). */
static void conclude(spf_eval *ev, spf_result r, const char *reason,
		     const term *t)
{
	frame *f = &ev->fr[ev->depth - 1];
	if (ev->depth > 1) {
		ev->depth--;
		frame *p = &ev->fr[ev->depth - 1];
		switch (r) {
		case SPF_RESULT_PASS:
			conclude(ev, qual_result(p->cur.qual),
				 "matched an include", &p->cur);
			return;
		case SPF_RESULT_NONE:
			finish(ev, SPF_RESULT_PERMERROR,
			       "an included domain has no SPF record");
			return;
		default:        /* fail, softfail, neutral: no match */
			return;
		}
	}
	ev->out.result = r;
	ev->out.reason = reason;
	if (t != NULL)
		term_text(f, t, ev->out.mechanism);
	if (r != SPF_RESULT_NONE)
		snprintf(ev->out.domain, sizeof(ev->out.domain), "%s",
			 f->domain);
	if (r == SPF_RESULT_FAIL && f->has_exp) {
		char name[SPF_NAME_MAX + 1];
		const char *err;
		if (spf_expand(ev, f->domain,
			       (const uint8_t *)f->rec + f->exp.ds,
			       f->exp.ds_len, SPF_EXPAND_DOMAIN, name,
			       sizeof(name), &err) >= 0) {
			ask(ev, W_EXP, SPF_Q_TXT, name);
			return;
		}
	}
	finish(ev, r, reason);
}

/* Count a DNS term; false (and a permerror) past the limit. */
static bool count_lookup(spf_eval *ev)
{
	if (ev->out.lookups >= ev->lim.lookups) {
		finish(ev, SPF_RESULT_PERMERROR,
		       "more than 10 DNS lookups (RFC 7208 section 4.6.4)");
		return false;
	}
	ev->out.lookups++;
	return true;
}

/* Count a void lookup; false (and a permerror) past the limit. */
static bool count_void(spf_eval *ev)
{
	if (ev->out.voids >= ev->lim.voids) {
		finish(ev, SPF_RESULT_PERMERROR,
		       "more than 2 void DNS lookups (RFC 7208 section 4.6.4)");
		return false;
	}
	ev->out.voids++;
	return true;
}

/* The target of a mechanism: its domain-spec expanded, or the frame's
 * domain.  false when the expansion is not a name. */
static bool target(spf_eval *ev, const frame *f, const term *t, char *out)
{
	const char *err;
	if (t->ds_len == 0) {
		snprintf(out, SPF_NAME_MAX + 1, "%s", f->domain);
		return true;
	}
	return spf_expand(ev, f->domain, (const uint8_t *)f->rec + t->ds,
			  t->ds_len, SPF_EXPAND_DOMAIN, out, SPF_NAME_MAX + 1,
			  &err) >= 0;
}

static void reverse_name(const spf_eval *ev, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	if (ev->ip.family == AF_INET) {
		snprintf(out, SPF_NAME_MAX + 1, "%u.%u.%u.%u.in-addr.arpa",
			 ev->ip.addr[3], ev->ip.addr[2], ev->ip.addr[1],
			 ev->ip.addr[0]);
		return;
	}
	for (int i = 15; i >= 0; i--) {
		out[n++] = hex[ev->ip.addr[i] & 15];
		out[n++] = '.';
		out[n++] = hex[ev->ip.addr[i] >> 4];
		out[n++] = '.';
	}
	memcpy(out + n, "ip6.arpa", 9);
}

/* The end of a frame's terms: redirect, or neutral (§4.7). */
static void end_of_record(spf_eval *ev, frame *f)
{
	if (!f->has_redirect) {
		conclude(ev, SPF_RESULT_NEUTRAL, "no mechanism matched", NULL);
		return;
	}
	if (!count_lookup(ev))
		return;
	char name[SPF_NAME_MAX + 1];
	if (!target(ev, f, &f->redirect, name)) {
		finish(ev, SPF_RESULT_PERMERROR,
		       "the redirect target is not a domain name");
		return;
	}
	memcpy(f->domain, name, sizeof(name));
	f->have_rec = false;
	f->via_redirect = true;
}

/* One unit of work when nothing is waiting. */
static void advance(spf_eval *ev)
{
	frame *f = &ev->fr[ev->depth - 1];
	if (!f->have_rec) {
		ask(ev, W_RECORD, SPF_Q_TXT, f->domain);
		return;
	}
	while (f->pos < f->rec_len && f->rec[f->pos] == ' ')
		f->pos++;
	if (f->pos >= f->rec_len) {
		end_of_record(ev, f);
		return;
	}
	const char *err;
	term *t = &f->cur;
	if (term_parse((const uint8_t *)f->rec, f->rec_len, &f->pos, t,
		       &err) < 0) {
		finish(ev, SPF_RESULT_PERMERROR, err);  /* not reached */
		return;
	}
	char name[SPF_NAME_MAX + 1];
	switch (t->kind) {
	case K_ALL:
		conclude(ev, qual_result(t->qual), "matched", t);
		return;
	case K_IP4:
		if (ev->ip.family == AF_INET &&
		    prefix_eq(ev->ip.addr, t->net, t->cidr4))
			conclude(ev, qual_result(t->qual), "matched", t);
		return;
	case K_IP6:
		if (ev->ip.family == AF_INET6 &&
		    prefix_eq(ev->ip.addr, t->net, t->cidr6))
			conclude(ev, qual_result(t->qual), "matched", t);
		return;
	case K_REDIRECT:
	case K_EXP:
	case K_UNKNOWN:
		return;
	case K_INCLUDE:
		if (!count_lookup(ev))
			return;
		if (!target(ev, f, t, name)) {
			finish(ev, SPF_RESULT_PERMERROR,
			       "an include target is not a domain name");
			return;
		}
		if (ev->depth >= FRAMES_MAX) {  /* not reached: the limit */
			finish(ev, SPF_RESULT_PERMERROR, "includes too deep");
			return;
		}
		frame *n = &ev->fr[ev->depth++];
		memcpy(n->domain, name, sizeof(name));
		n->have_rec = false;
		n->via_redirect = false;
		return;
	case K_A:
	case K_EXISTS:
	case K_MX:
	case K_PTR:
		if (!count_lookup(ev))
			return;
		if (!target(ev, f, t, name))
			return;         /* no such name: no match */
		if (t->kind == K_A)
			ask(ev, W_ADDR, addr_type(ev), name);
		else if (t->kind == K_EXISTS)
			ask(ev, W_ADDR, SPF_Q_A, name);
		else if (t->kind == K_MX)
			ask(ev, W_MX, SPF_Q_MX, name);
		else {
			memcpy(ev->ptr_target, name, sizeof(name));
			char rev[SPF_NAME_MAX + 1];
			reverse_name(ev, rev);
			ev->n_names = 0;
			ask(ev, W_PTR, SPF_Q_PTR, rev);
		}
		return;
	}
}

spf_status spf_step(spf_eval *ev, spf_query *q_r)
{
	while (!ev->done) {
		if (ev->wait != W_NONE) {
			*q_r = ev->q;
			return SPF_NEED_DNS;
		}
		advance(ev);
	}
	return SPF_DONE;
}

/* A name from an MX or PTR answer: lower case, no final dot, in out;
 * false when it is not a name (or is the null MX "."). */
static bool answer_name(const spf_rr *rr, char *out)
{
	size_t len = rr->len;
	if (rr->data == NULL || len == 0)
		return false;
	if (rr->data[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)lower(rr->data[i]);
	out[len] = '\0';
	return name_ok(out, len);
}

/* Whether name is target or under it. */
static bool under(const char *name, const char *target)
{
	size_t n = strlen(name), t = strlen(target);
	if (n < t)
		return false;
	for (size_t i = 0; i < t; i++)
		if (lower((uint8_t)name[n - t + i]) != lower((uint8_t)target[i]))
			return false;
	return n == t || name[n - t - 1] == '.';
}

/* Ask for the next MX or PTR name's addresses, or end the mechanism
 * (no match) when none is left. */
static void next_name(spf_eval *ev, wait w)
{
	if (ev->next_name < ev->n_names) {
		ask(ev, w, addr_type(ev), ev->names[ev->next_name++]);
		return;
	}
	ev->wait = W_NONE;
}

static bool dns_error(spf_dns_status st)
{
	return st == SPF_DNS_SERVFAIL || st == SPF_DNS_TIMEOUT;
}

static bool dns_void(spf_dns_status st, size_t n)
{
	return st == SPF_DNS_NXDOMAIN || st == SPF_DNS_NODATA ||
	       (st == SPF_DNS_OK && n == 0);
}

static bool is_spf_record(const spf_rr *rr)
{
	return rr->data != NULL && rr->len >= 6 && ieq(rr->data, 6, "v=spf1") &&
	       (rr->len == 6 || rr->data[6] == ' ');
}

static void answer_record(spf_eval *ev, spf_dns_status st, const spf_rr *rr,
			  size_t n)
{
	frame *f = &ev->fr[ev->depth - 1];
	if (dns_error(st)) {
		finish(ev, SPF_RESULT_TEMPERROR,
		       "a DNS error looking up an SPF record");
		return;
	}
	const spf_rr *one = NULL;
	size_t found = 0;
	if (st == SPF_DNS_OK) {
		for (size_t i = 0; i < n; i++) {
			if (is_spf_record(&rr[i])) {
				one = &rr[i];
				found++;
			}
		}
	}
	if (found > 1) {
		finish(ev, SPF_RESULT_PERMERROR, "more than one SPF record");
		return;
	}
	if (found == 0) {
		if (f->via_redirect)
			finish(ev, SPF_RESULT_PERMERROR,
			       "the redirect target has no SPF record");
		else
			conclude(ev, SPF_RESULT_NONE, "no SPF record", NULL);
		return;
	}
	if (one->len > SPF_RECORD_MAX) {
		finish(ev, SPF_RESULT_PERMERROR,
		       "an SPF record longer than 4096 octets");
		return;
	}
	memcpy(f->rec, one->data, one->len);
	f->rec_len = one->len;
	f->pos = 6;
	f->have_rec = true;
	const char *err;
	if (record_check(f, &err) < 0) {
		finish(ev, SPF_RESULT_PERMERROR, err);
		return;
	}
	ev->wait = W_NONE;
}

int spf_answer(spf_eval *ev, spf_dns_status st, const spf_rr *rr, size_t n)
{
	if (ev == NULL || ev->done || ev->wait == W_NONE)
		return -1;
	if (st != SPF_DNS_OK || rr == NULL)
		n = 0;
	wait w = ev->wait;
	ev->wait = W_NONE;
	frame *f = &ev->fr[ev->depth - 1];
	term *t = &f->cur;
	switch (w) {
	case W_NONE:
		break;
	case W_RECORD:
		answer_record(ev, st, rr, n);
		break;
	case W_ADDR:
		if (dns_error(st)) {
			finish(ev, SPF_RESULT_TEMPERROR,
			       "a DNS error looking up addresses");
			break;
		}
		if (dns_void(st, n)) {
			count_void(ev);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			bool m = t->kind == K_EXISTS
					 ? rr[i].data != NULL && rr[i].len == 4
					 : rr[i].data != NULL &&
						   addr_match(ev, rr[i].data,
							      rr[i].len, t);
			if (m) {
				conclude(ev, qual_result(t->qual), "matched",
					 t);
				break;
			}
		}
		break;
	case W_MX:
		if (dns_error(st)) {
			finish(ev, SPF_RESULT_TEMPERROR,
			       "a DNS error looking up MX records");
			break;
		}
		if (dns_void(st, n)) {
			count_void(ev);
			break;
		}
		if (n > ev->lim.mx_names) {
			finish(ev, SPF_RESULT_PERMERROR,
			       "more than 10 MX names (RFC 7208 section 4.6.4)");
			break;
		}
		ev->n_names = ev->next_name = 0;
		for (size_t i = 0; i < n; i++)
			if (answer_name(&rr[i], ev->names[ev->n_names]))
				ev->n_names++;
		next_name(ev, W_MX_ADDR);
		break;
	case W_MX_ADDR:
	case W_PTR_ADDR:
		if (dns_error(st)) {
			if (w == W_MX_ADDR) {
				finish(ev, SPF_RESULT_TEMPERROR,
				       "a DNS error looking up an MX host");
				break;
			}
			next_name(ev, w);       /* §5.5: skip the name */
			break;
		}
		for (size_t i = 0; i < n; i++) {
			if (rr[i].data != NULL &&
			    addr_match(ev, rr[i].data, rr[i].len, t)) {
				conclude(ev, qual_result(t->qual), "matched",
					 t);
				return 0;
			}
		}
		next_name(ev, w);
		break;
	case W_PTR: {
		if (dns_error(st))
			break;          /* §5.5: no match */
		if (dns_void(st, n)) {
			count_void(ev);
			break;
		}
		char nm[SPF_NAME_MAX + 1];
		ev->n_names = ev->next_name = 0;
		for (size_t i = 0; i < n && i < ev->lim.ptr_names; i++) {
			if (answer_name(&rr[i], nm) && under(nm, ev->ptr_target))
				memcpy(ev->names[ev->n_names++], nm,
				       sizeof(nm));
		}
		next_name(ev, W_PTR_ADDR);
		break;
	}
	case W_EXP: {
		const spf_rr *one = NULL;
		if (st == SPF_DNS_OK && n == 1)
			one = &rr[0];
		const char *err;
		if (one != NULL && one->data != NULL &&
		    spf_expand(ev, f->domain, one->data, one->len,
			       SPF_EXPAND_EXP, ev->out.explanation,
			       sizeof(ev->out.explanation), &err) < 0)
			ev->out.explanation[0] = '\0';
		finish(ev, ev->out.result, ev->out.reason);
		break;
	}
	}
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

static bool text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* §4.3: a multi-label name, labels of 1..63 octets; ours: of letters,
 * digits, '-' and '_' (no address literal, no 8-bit name). */
static bool domain_ok(const char *d)
{
	size_t len = strlen(d);
	for (size_t i = 0; i < len; i++)
		if (!is_alnum((uint8_t)d[i]) && d[i] != '-' && d[i] != '_' &&
		    d[i] != '.')
			return false;
	return len > 0 && memchr(d, '.', len) != NULL && name_ok(d, len);
}

spf_eval *spf_new(const spf_ip *ip, const char *domain, const char *local,
		  const char *helo, const char *host, uint64_t now,
		  const spf_limits *lim, const char **error_r)
{
	static const spf_limits rfc = { SPF_LOOKUP_LIMIT, SPF_VOID_LIMIT,
					SPF_MX_LIMIT, SPF_PTR_LIMIT };
	if (ip == NULL || (ip->family != AF_INET && ip->family != AF_INET6)) {
		*error_r = "no IPv4 or IPv6 address";
		return NULL;
	}
	if (domain == NULL)
		domain = "";
	if (local == NULL || local[0] == '\0')
		local = "postmaster";
	if (helo == NULL)
		helo = "";
	if (host == NULL || host[0] == '\0')
		host = "unknown";
	if (!text_ok(local, SPF_LOCAL_MAX)) {
		*error_r = "the local part is too long or has a control byte";
		return NULL;
	}
	if (!text_ok(helo, SPF_NAME_MAX) || !text_ok(host, SPF_NAME_MAX)) {
		*error_r = "the HELO or host name is too long or has a control "
			   "byte";
		return NULL;
	}
	if (lim == NULL)
		lim = &rfc;
	if (lim->lookups < 1 || lim->lookups > SPF_LOOKUP_LIMIT ||
	    lim->voids > SPF_VOID_LIMIT || lim->mx_names < 1 ||
	    lim->mx_names > SPF_MX_LIMIT || lim->ptr_names < 1 ||
	    lim->ptr_names > SPF_PTR_LIMIT) {
		*error_r = "a limit outside the RFC's";
		return NULL;
	}
	spf_eval *ev = calloc(1, sizeof(*ev));
	if (ev == NULL)
		abort();
	ev->ip = *ip;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0,
					    0, 0, 0, 0, 0xff, 0xff };
	if (ip->family == AF_INET6 && memcmp(ip->addr, mapped, 12) == 0) {
		ev->ip.family = AF_INET;
		memcpy(ev->ip.addr, ip->addr + 12, 4);
		memset(ev->ip.addr + 4, 0, 12);
	}
	ev->lim = *lim;
	ev->now = now;
	snprintf(ev->local, sizeof(ev->local), "%s", local);
	snprintf(ev->helo, sizeof(ev->helo), "%s", helo);
	snprintf(ev->host, sizeof(ev->host), "%s", host);
	if (ev->ip.family == AF_INET) {
		snprintf(ev->ip_i, sizeof(ev->ip_i), "%u.%u.%u.%u",
			 ev->ip.addr[0], ev->ip.addr[1], ev->ip.addr[2],
			 ev->ip.addr[3]);
		memcpy(ev->ip_c, ev->ip_i, strlen(ev->ip_i) + 1); /* <= 16 */
	} else {
		static const char hex[] = "0123456789abcdef";
		size_t n = 0;
		for (int i = 0; i < 16; i++) {
			if (i > 0)
				ev->ip_i[n++] = '.';
			ev->ip_i[n++] = hex[ev->ip.addr[i] >> 4];
			ev->ip_i[n++] = '.';
			ev->ip_i[n++] = hex[ev->ip.addr[i] & 15];
		}
		ev->ip_i[n] = '\0';
		if (inet_ntop(AF_INET6, ev->ip.addr, ev->ip_c,
			      sizeof(ev->ip_c)) == NULL)
			ev->ip_c[0] = '\0';
	}
	/* §4.3: the domain, one final dot ignored */
	size_t dl = strlen(domain);
	char d[SPF_NAME_MAX + 1];
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	bool ok = dl <= SPF_NAME_MAX;
	if (ok) {
		for (size_t i = 0; i < dl; i++)
			d[i] = (char)lower((uint8_t)domain[i]);
		d[dl] = '\0';
		ok = domain_ok(d);
	}
	if (ok) {
		memcpy(ev->sdomain, d, dl + 1);
	} else {
		/* keep a bounded copy for %{o}; the result is none */
		snprintf(ev->sdomain, sizeof(ev->sdomain), "%.*s",
			 (int)(dl < SPF_NAME_MAX ? dl : SPF_NAME_MAX), domain);
	}
	memcpy(ev->fr[0].domain, ev->sdomain, sizeof(ev->sdomain));
	ev->depth = 1;
	ev->out.reason = "";
	if (!ok)
		finish(ev, SPF_RESULT_NONE,
		       "the domain is malformed or not multi-label");
	return ev;
}

void spf_free(spf_eval **ev)
{
	if (ev == NULL || *ev == NULL)
		return;
	free(*ev);
	*ev = NULL;
}

const spf_outcome *spf_outcome_get(const spf_eval *ev)
{
	return ev != NULL && ev->done ? &ev->out : NULL;
}

const char *spf_result_name(spf_result r)
{
	switch (r) {
	case SPF_RESULT_NONE:
		return "none";
	case SPF_RESULT_NEUTRAL:
		return "neutral";
	case SPF_RESULT_PASS:
		return "pass";
	case SPF_RESULT_FAIL:
		return "fail";
	case SPF_RESULT_SOFTFAIL:
		return "softfail";
	case SPF_RESULT_TEMPERROR:
		return "temperror";
	case SPF_RESULT_PERMERROR:
		return "permerror";
	}
	return NULL;
}
