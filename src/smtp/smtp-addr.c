/*
 * smtp-addr.c — RFC 5321 paths and ESMTP parameters (smtp-addr.h).
 *
 * Pure: bytes in, a parsed value or an error code and a static sentence
 * out.  No I/O, no allocation, no locale (ASCII case folding only).
 *
 * What it refuses, beyond the RFC 5321 §4.1.2 grammar:
 *  - source routes (<@a,@b:u@c>): SMTP_ADDR_ROUTE;
 *  - an empty local part, also when quoted (<""@x>);
 *  - 8-bit octets without SMTPUTF8 (SMTP_ADDR_8BIT), and with it anything
 *    but well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF) and C1
 *    controls (U+0080..U+009F); NUL and other controls always;
 *  - address literals other than [IPv4] (no leading zeros: [01.2.3.4] is
 *    octal to some readers) and [IPv6:...] (RFC 5321 §4.1.3 as written:
 *    "::" stands for at least two groups); General-address-literal tags are
 *    not registered for anything but IPv6, so [tag:...] is refused.
 * Limits: local part 64 octets as written on the wire (quotes and
 * backslashes included, so the canonical form is never longer), domain 255,
 * the whole path 256 including "<" and ">", labels 63.
 *
 * Accepted beyond the "local@domain" form: RCPT TO:<Postmaster> (any case,
 * only when allow_null is false), which RFC 5321 §4.1.1.3 says MUST be
 * accepted; it comes back with an empty domain.
 *
 * ESMTP parameters: keyword 1..31 octets, value 1..512 octets (RFC 6531
 * lets it carry UTF-8), separated by one or more spaces.  The checks accept
 * a keyword only when its extension is offered; anything else is
 * SMTP_PARAM_UNKNOWN (555 5.5.4).  xtext (RFC 3461 §4) is decoded with upper
 * or lower case hex digits; decoded ENVID and ORCPT must be printable ASCII
 * (space allowed); an rfc822 ORCPT must be an RFC 5321 mailbox.
 */
#include "smtp-addr.h"
#include "util.h"

#include <string.h>

/* ------------------------------------------------------------ characters */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned char c)
{
	if (is_digit(c))
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (unsigned)(c - 'a' + 10);
	return (unsigned)(c - 'A' + 10);
}

static char to_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 5322 atext (ASCII part). */
static bool is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool eq_nocase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (to_upper(*a) != to_upper(*b))
			return false;
	return *a == *b;
}

/* s[0..n) equals the ASCII literal lit (n octets) ignoring case. */
static bool eq_nocase_n(const unsigned char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (to_upper((char)s[i]) != to_upper(lit[i]))
			return false;
	return true;
}

/* Length of the well-formed UTF-8 sequence at s[0..len) (2..4), or 0.
 * C1 controls (U+0080..U+009F) count as malformed: they are controls. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	uint32_t cp;
	size_t n = util_utf8_seq(s, len, &cp);
	return n >= 2 && cp >= 0xa0 ? n : 0; /* above the C1 controls */
}

/* ------------------------------------------------------------------ paths */

typedef struct pctx {
	const unsigned char *s;
	size_t len, i;
	bool utf8ok, saw8;
	smtp_addr_err err;
	const char *why;
} pctx;

static bool fail(pctx *c, smtp_addr_err err, const char *why)
{
	c->err = err;
	c->why = why;
	return false;
}

/* An 8-bit octet at c->i: the length of its UTF-8 sequence, or 0 after
 * setting the error. */
static size_t take8(pctx *c)
{
	if (!c->utf8ok) {
		fail(c, SMTP_ADDR_8BIT,
		     "8-bit characters in an address need SMTPUTF8");
		return 0;
	}
	size_t n = utf8_seq(c->s + c->i, c->len - c->i);
	if (n == 0)
		fail(c, SMTP_ADDR_SYNTAX, "invalid UTF-8 in the address");
	c->saw8 = true;
	return n;
}

/* Is dec[0..n) a Dot-string (atoms of atext or UTF-8 joined by single
 * dots)?  The UTF-8 in dec has already been checked. */
static bool is_dot_string(const unsigned char *dec, size_t n)
{
	if (n == 0 || dec[0] == '.' || dec[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (dec[i] == '.') {
			if (dec[i + 1] == '.')
				return false;
		} else if (dec[i] < 0x80 && !is_atext(dec[i])) {
			return false;
		}
	}
	return true;
}

static bool parse_local(pctx *c, smtp_path *p, bool *quoted_r)
{
	unsigned char dec[SMTP_LOCAL_MAX];
	size_t n = 0, start = c->i;
	bool quoted = c->i < c->len && c->s[c->i] == '"';
	*quoted_r = quoted;
	if (quoted) {
		c->i++;
		for (;;) {
			if (c->i >= c->len)
				return fail(c, SMTP_ADDR_SYNTAX,
					    "unterminated quoted local part");
			unsigned char ch = c->s[c->i];
			size_t k = 1;
			if (ch == '"') {
				c->i++;
				break;
			}
			if (ch == '\\') {
				/* quoted-pairSMTP = "\" %d32-126 */
				c->i++;
				if (c->i >= c->len)
					return fail(c, SMTP_ADDR_SYNTAX,
						    "unterminated quoted local part");
				ch = c->s[c->i];
				if (ch >= 0x80 && !c->utf8ok)
					return fail(c, SMTP_ADDR_8BIT,
						    "8-bit characters in an address need SMTPUTF8");
				if (ch < 32 || ch > 126)
					return fail(c, SMTP_ADDR_SYNTAX,
						    "bad character after a backslash");
			} else if (ch >= 0x80) {
				k = take8(c);
				if (k == 0)
					return false;
			} else if (ch < 32 || ch == 127) {
				return fail(c, SMTP_ADDR_SYNTAX,
					    "control character in the address");
			}
			if (c->i + k - start > SMTP_LOCAL_MAX)
				return fail(c, SMTP_ADDR_TOO_LONG,
					    "local part longer than 64 octets");
			memcpy(dec + n, c->s + c->i, k);
			n += k;
			c->i += k;
		}
		if (c->i - start > SMTP_LOCAL_MAX)
			return fail(c, SMTP_ADDR_TOO_LONG,
				    "local part longer than 64 octets");
		if (n == 0)
			return fail(c, SMTP_ADDR_SYNTAX, "empty local part");
	} else {
		while (c->i < c->len) {
			unsigned char ch = c->s[c->i];
			size_t k = 1;
			if (ch >= 0x80) {
				k = take8(c);
				if (k == 0)
					return false;
			} else if (ch == '.') {
				if (n == 0 || dec[n - 1] == '.')
					return fail(c, SMTP_ADDR_SYNTAX,
						    "misplaced dot in the local part");
			} else if (!is_atext(ch)) {
				break;
			}
			if (n + k > SMTP_LOCAL_MAX)
				return fail(c, SMTP_ADDR_TOO_LONG,
					    "local part longer than 64 octets");
			memcpy(dec + n, c->s + c->i, k);
			n += k;
			c->i += k;
		}
		if (n == 0) {
			if (c->i < c->len && (c->s[c->i] < 32 || c->s[c->i] == 127))
				return fail(c, SMTP_ADDR_SYNTAX,
					    "control character in the address");
			return fail(c, SMTP_ADDR_SYNTAX, "empty local part");
		}
		if (dec[n - 1] == '.')
			return fail(c, SMTP_ADDR_SYNTAX,
				    "misplaced dot in the local part");
	}

	/* Canonical form: unquoted when the content is a Dot-string,
	 * otherwise quoted with only '"' and '\' escaped. */
	size_t o = 0;
	if (is_dot_string(dec, n)) {
		memcpy(p->local, dec, n);
		o = n;
	} else {
		p->local[o++] = '"';
		for (size_t i = 0; i < n; i++) {
			if (dec[i] == '"' || dec[i] == '\\')
				p->local[o++] = '\\';
			p->local[o++] = (char)dec[i];
		}
		p->local[o++] = '"';
	}
	p->local[o] = '\0';
	return true;
}

/* Snum 3("." Snum), each 0..255 without leading zeros. */
static bool ipv4_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		size_t start = i;
		unsigned v = 0;
		while (i < n && is_digit(s[i]) && i - start < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
		if (i < n && is_digit(s[i]))
			return false;
	}
	return i == n;
}

/* IPv6-addr of RFC 5321 §4.1.3: IPv6-full (8 groups), IPv6-comp (at most
 * 6 groups besides "::"), IPv6v4-full (6 groups and an IPv4 address),
 * IPv6v4-comp (at most 4 groups besides "::" and the IPv4 address). */
static bool ipv6_ok(const unsigned char *s, size_t n)
{
	size_t i = 0, groups = 0;
	bool dc = false, v4 = false;
	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		dc = true;
		i = 2;
	} else if (n >= 1 && s[0] == ':') {
		return false;
	}
	while (i < n) {
		size_t j = i;
		bool dot = false;
		while (j < n && s[j] != ':') {
			if (s[j] == '.')
				dot = true;
			j++;
		}
		if (dot) {
			/* the IPv4 part ends the address */
			if (j != n || !ipv4_ok(s + i, j - i))
				return false;
			v4 = true;
			i = j;
			break;
		}
		if (j == i || j - i > 4)
			return false;
		for (size_t k = i; k < j; k++)
			if (!is_hex(s[k]))
				return false;
		groups++;
		i = j;
		if (i == n)
			break;
		i++; /* ':' */
		if (i < n && s[i] == ':') {
			if (dc)
				return false;
			dc = true;
			i++;
		} else if (i == n) {
			return false; /* a single trailing ':' */
		}
	}
	if (v4)
		return dc ? groups <= 4 : groups == 6;
	return dc ? groups <= 6 : groups == 8;
}

static bool parse_literal(pctx *c, smtp_path *p)
{
	size_t start = c->i++; /* '[' */
	while (c->i < c->len && c->s[c->i] != ']') {
		unsigned char ch = c->s[c->i];
		if (ch >= 0x80) {
			if (take8(c) == 0)
				return false;
			return fail(c, SMTP_ADDR_SYNTAX,
				    "8-bit character in an address literal");
		}
		/* dcontent = %d33-90 / %d94-126 */
		if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
			return fail(c, SMTP_ADDR_SYNTAX,
				    "bad character in an address literal");
		c->i++;
		if (c->i - start > SMTP_DOMAIN_MAX)
			return fail(c, SMTP_ADDR_TOO_LONG,
				    "domain longer than 255 octets");
	}
	if (c->i >= c->len)
		return fail(c, SMTP_ADDR_SYNTAX, "unterminated address literal");
	c->i++; /* ']' */
	if (c->i - start > SMTP_DOMAIN_MAX)
		return fail(c, SMTP_ADDR_TOO_LONG, "domain longer than 255 octets");
	const unsigned char *in = c->s + start + 1;
	size_t n = c->i - start - 2;
	bool ok;
	if (n >= 5 && eq_nocase_n(in, "IPv6:", 5))
		ok = ipv6_ok(in + 5, n - 5);
	else if (memchr(in, ':', n) != NULL)
		return fail(c, SMTP_ADDR_SYNTAX,
			    "unsupported address literal (only IPv4 and IPv6)");
	else
		ok = ipv4_ok(in, n);
	if (!ok)
		return fail(c, SMTP_ADDR_SYNTAX, "invalid address literal");
	memcpy(p->domain, c->s + start, c->i - start);
	p->domain[c->i - start] = '\0';
	p->literal = true;
	return true;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (or a U-label with SMTPUTF8: LDH plus UTF-8, no hyphen at either end). */
static bool parse_domain(pctx *c, smtp_path *p)
{
	size_t start = c->i;
	if (c->i < c->len && c->s[c->i] == '[')
		return parse_literal(c, p);
	for (;;) {
		size_t label = c->i;
		while (c->i < c->len) {
			unsigned char ch = c->s[c->i];
			size_t k = 1;
			if (ch >= 0x80) {
				k = take8(c);
				if (k == 0)
					return false;
			} else if (!is_alpha(ch) && !is_digit(ch) && ch != '-') {
				break;
			}
			c->i += k;
			if (c->i - start > SMTP_DOMAIN_MAX)
				return fail(c, SMTP_ADDR_TOO_LONG,
					    "domain longer than 255 octets");
		}
		if (c->i == label) {
			if (c->i < c->len && (c->s[c->i] < 32 || c->s[c->i] == 127))
				return fail(c, SMTP_ADDR_SYNTAX,
					    "control character in the address");
			return fail(c, SMTP_ADDR_SYNTAX, "empty domain label");
		}
		if (c->i - label > 63)
			return fail(c, SMTP_ADDR_SYNTAX,
				    "domain label longer than 63 octets");
		if (c->s[label] == '-' || c->s[c->i - 1] == '-')
			return fail(c, SMTP_ADDR_SYNTAX,
				    "domain label starts or ends with a hyphen");
		if (c->i < c->len && c->s[c->i] == '.') {
			c->i++;
			continue;
		}
		break;
	}
	memcpy(p->domain, c->s + start, c->i - start);
	p->domain[c->i - start] = '\0';
	return true;
}

bool smtp_domain_check(const char *s, size_t len, bool smtputf8)
{
	pctx c = { .s = (const unsigned char *)s, .len = len, .i = 0,
		   .utf8ok = smtputf8, .err = SMTP_ADDR_OK, .why = NULL };
	smtp_path p;
	memset(&p, 0, sizeof(p));
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	return parse_domain(&c, &p) && c.i == len;
}

smtp_addr_err smtp_path_parse(const char *s, size_t len, bool allow_null,
			      bool smtputf8, smtp_path *path_r, size_t *used_r,
			      const char **why_r)
{
	pctx c = { .s = (const unsigned char *)s, .len = len, .i = 0,
		   .utf8ok = smtputf8, .err = SMTP_ADDR_OK, .why = NULL };
	bool quoted = false;
	memset(path_r, 0, sizeof(*path_r));
	*used_r = 0;
	*why_r = NULL;
	if (len == 0 || s[0] != '<') {
		*why_r = "the address must be enclosed in <>";
		return SMTP_ADDR_SYNTAX;
	}
	if (len >= 2 && s[1] == '>') {
		if (!allow_null) {
			*why_r = "the null path <> is not allowed here";
			return SMTP_ADDR_SYNTAX;
		}
		path_r->null = true;
		*used_r = 2;
		return SMTP_ADDR_OK;
	}
	if (len >= 2 && s[1] == '@') {
		/* A-d-l ":" (RFC 5321 §4.1.2), or just a missing local part */
		for (size_t i = 2; i < len && i < SMTP_PATH_MAX && s[i] != '>';
		     i++) {
			if (s[i] == ':') {
				*why_r = "source routes are not accepted";
				return SMTP_ADDR_ROUTE;
			}
		}
		*why_r = "empty local part";
		return SMTP_ADDR_SYNTAX;
	}
	c.i = 1;
	if (!parse_local(&c, path_r, &quoted))
		goto err;
	if (c.i < len && s[c.i] == '@') {
		c.i++;
		if (!parse_domain(&c, path_r))
			goto err;
	} else if (c.i < len && s[c.i] == '>' && !quoted && !allow_null &&
		   eq_nocase(path_r->local, "postmaster")) {
		/* RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> without a domain */
	} else {
		if (c.i < len && (unsigned char)s[c.i] >= 0x80 && !smtputf8) {
			fail(&c, SMTP_ADDR_8BIT,
			     "8-bit characters in an address need SMTPUTF8");
			goto err;
		}
		fail(&c, SMTP_ADDR_SYNTAX,
		     c.i < len && (s[c.i] == '>' || s[c.i] == ' ')
			     ? "the address needs a domain (local@domain)"
			     : "bad character in the local part");
		goto err;
	}
	if (c.i >= len || s[c.i] != '>') {
		if (c.i < len && (unsigned char)s[c.i] >= 0x80 && !smtputf8)
			fail(&c, SMTP_ADDR_8BIT,
			     "8-bit characters in an address need SMTPUTF8");
		else
			fail(&c, SMTP_ADDR_SYNTAX,
			     c.i < len ? "bad character in the domain"
				       : "the address must end with >");
		goto err;
	}
	c.i++;
	if (c.i > SMTP_PATH_MAX) {
		fail(&c, SMTP_ADDR_TOO_LONG, "path longer than 256 octets");
		goto err;
	}
	for (size_t i = 0; path_r->domain[i] != '\0'; i++)
		path_r->domain_lc[i] = to_lower(path_r->domain[i]);
	path_r->utf8 = c.saw8;
	*used_r = c.i;
	return SMTP_ADDR_OK;
err:
	memset(path_r, 0, sizeof(*path_r));
	*why_r = c.why;
	return c.err;
}

bool smtp_path_format(const smtp_path *p, char *out, size_t out_size)
{
	size_t ll = p->null ? 0 : strlen(p->local);
	size_t dl = p->null ? 0 : strlen(p->domain);
	size_t need = ll + (dl > 0 ? 1 + dl : 0);
	if (out_size == 0)
		return false;
	if (need >= out_size) {
		out[0] = '\0';
		return false;
	}
	memcpy(out, p->local, ll);
	if (dl > 0) {
		out[ll] = '@';
		memcpy(out + ll + 1, p->domain, dl);
	}
	out[need] = '\0';
	return true;
}

/* ------------------------------------------------------------- parameters */

smtp_param_err smtp_params_parse(const char *s, size_t len, smtp_params *out,
				 const char **why_r)
{
	size_t i = 0;
	out->n = 0;
	*why_r = NULL;
	for (;;) {
		size_t sp = i;
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			return SMTP_PARAM_OK;
		if (i == sp) {
			*why_r = "parameters must be separated by spaces";
			return SMTP_PARAM_SYNTAX;
		}
		smtp_param p;
		size_t k = 0;
		memset(&p, 0, sizeof(p));
		if (!is_alpha((unsigned char)s[i]) && !is_digit((unsigned char)s[i])) {
			*why_r = "bad parameter keyword";
			return SMTP_PARAM_SYNTAX;
		}
		while (i < len && (is_alpha((unsigned char)s[i]) ||
				   is_digit((unsigned char)s[i]) || s[i] == '-')) {
			if (k == sizeof(p.key) - 1) {
				*why_r = "parameter keyword too long";
				return SMTP_PARAM_SYNTAX;
			}
			p.key[k++] = to_upper(s[i++]);
		}
		p.key[k] = '\0';
		p.has_value = false;
		size_t v = 0;
		if (i < len && s[i] == '=') {
			i++;
			p.has_value = true;
			while (i < len && s[i] != ' ') {
				unsigned char ch = (unsigned char)s[i];
				size_t n = 1;
				if (ch >= 0x80) {
					n = utf8_seq((const unsigned char *)s + i,
						     len - i);
					if (n == 0) {
						*why_r = "invalid UTF-8 in a parameter value";
						return SMTP_PARAM_SYNTAX;
					}
				} else if (ch < 33 || ch > 126 || ch == '=') {
					*why_r = "bad character in a parameter value";
					return SMTP_PARAM_SYNTAX;
				}
				if (v + n > SMTP_PARAM_VALUE_MAX) {
					*why_r = "parameter value too long";
					return SMTP_PARAM_SYNTAX;
				}
				memcpy(p.value + v, s + i, n);
				v += n;
				i += n;
			}
			if (v == 0) {
				*why_r = "empty parameter value";
				return SMTP_PARAM_SYNTAX;
			}
		} else if (i < len && s[i] != ' ') {
			*why_r = "bad character in a parameter keyword";
			return SMTP_PARAM_SYNTAX;
		}
		p.value[v] = '\0';
		for (size_t j = 0; j < out->n; j++) {
			if (strcmp(out->p[j].key, p.key) == 0) {
				*why_r = "duplicate parameter";
				return SMTP_PARAM_DUPLICATE;
			}
		}
		if (out->n == SMTP_PARAMS_MAX) {
			*why_r = "too many parameters";
			return SMTP_PARAM_TOO_MANY;
		}
		out->p[out->n++] = p;
	}
}

/* Parameters built by hand may repeat a keyword; parse never lets that
 * through, the checks do not either. */
static bool has_duplicate(const smtp_params *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		for (size_t j = 0; j < i; j++)
			if (eq_nocase(ps->p[i].key, ps->p[j].key))
				return true;
	return false;
}

/* xtext (RFC 3461 §4): "+" HEX HEX or a char 33..126 other than '+' and
 * '='.  The decoded text must be printable ASCII (32..126).  Writes a
 * NUL-terminated string of at most max octets into out. */
static bool xtext_decode(const char *v, char *out, size_t max, size_t *len_r)
{
	size_t o = 0;
	for (size_t i = 0; v[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch == '+') {
			if (!is_hex((unsigned char)v[i + 1]) ||
			    !is_hex((unsigned char)v[i + 2]))
				return false;
			ch = (unsigned char)(hex_val((unsigned char)v[i + 1]) * 16 +
					     hex_val((unsigned char)v[i + 2]));
			i += 2;
		} else if (ch < 33 || ch > 126 || ch == '=') {
			return false;
		}
		if (ch < 32 || ch > 126 || o == max)
			return false;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	*len_r = o;
	return true;
}

static bool parse_size(const char *v, uint64_t *size_r)
{
	uint64_t n = 0;
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++) {
		if (!is_digit((unsigned char)*v))
			return false;
		unsigned d = (unsigned)(*v - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*size_r = n;
	return true;
}

#define BAD(code, text)         \
	do {                    \
		*why_r = (text); \
		return (code);  \
	} while (0)

smtp_param_err smtp_params_check_mail(const smtp_params *ps,
				      const smtp_offer *offer,
				      smtp_mail_params *out, const char **why_r)
{
	memset(out, 0, sizeof(*out));
	out->body = SMTP_BODY_7BIT;
	out->ret = SMTP_RET_NONE;
	*why_r = NULL;
	if (has_duplicate(ps))
		BAD(SMTP_PARAM_DUPLICATE, "duplicate parameter");
	for (size_t i = 0; i < ps->n; i++) {
		const smtp_param *p = &ps->p[i];
		const char *v = p->value;
		if (eq_nocase(p->key, "SIZE")) {
			/* RFC 1870 */
			uint64_t n;
			if (!p->has_value || !parse_size(v, &n))
				BAD(SMTP_PARAM_BAD_VALUE,
				    "SIZE needs a decimal number of octets");
			if (offer->size_max != 0 && n > offer->size_max)
				BAD(SMTP_PARAM_TOO_BIG,
				    "message size exceeds the fixed maximum");
			out->size = n;
		} else if (eq_nocase(p->key, "BODY")) {
			/* RFC 6152 (8BITMIME), RFC 3030 (BINARYMIME) */
			if (!offer->eightbit && !offer->chunking)
				BAD(SMTP_PARAM_UNKNOWN, "BODY is not supported");
			if (!p->has_value)
				BAD(SMTP_PARAM_BAD_VALUE, "BODY needs a value");
			if (eq_nocase(v, "7BIT")) {
				out->body = SMTP_BODY_7BIT;
			} else if (eq_nocase(v, "8BITMIME")) {
				if (!offer->eightbit)
					BAD(SMTP_PARAM_BAD_VALUE,
					    "8BITMIME is not offered");
				out->body = SMTP_BODY_8BITMIME;
			} else if (eq_nocase(v, "BINARYMIME")) {
				if (!offer->chunking)
					BAD(SMTP_PARAM_BAD_VALUE,
					    "BINARYMIME needs CHUNKING (BDAT)");
				out->body = SMTP_BODY_BINARYMIME;
			} else {
				BAD(SMTP_PARAM_BAD_VALUE,
				    "BODY must be 7BIT, 8BITMIME or BINARYMIME");
			}
		} else if (eq_nocase(p->key, "SMTPUTF8") && offer->smtputf8) {
			/* RFC 6531 §3.4 */
			if (p->has_value)
				BAD(SMTP_PARAM_BAD_VALUE, "SMTPUTF8 takes no value");
			out->smtputf8 = true;
		} else if (eq_nocase(p->key, "RET") && offer->dsn) {
			/* RFC 3461 §4.3 */
			if (p->has_value && eq_nocase(v, "FULL"))
				out->ret = SMTP_RET_FULL;
			else if (p->has_value && eq_nocase(v, "HDRS"))
				out->ret = SMTP_RET_HDRS;
			else
				BAD(SMTP_PARAM_BAD_VALUE, "RET must be FULL or HDRS");
		} else if (eq_nocase(p->key, "ENVID") && offer->dsn) {
			/* RFC 3461 §4.4: at most 100 characters decoded */
			size_t n;
			if (!p->has_value ||
			    !xtext_decode(v, out->envid, sizeof(out->envid) - 1,
					  &n)) {
				out->envid[0] = '\0';
				BAD(SMTP_PARAM_BAD_VALUE,
				    "ENVID must be xtext of at most 100 printable characters");
			}
		} else {
			BAD(SMTP_PARAM_UNKNOWN, "unknown MAIL parameter");
		}
	}
	return SMTP_PARAM_OK;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
static bool parse_notify(const char *v, unsigned *bits_r)
{
	static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE",
					      "DELAY" };
	unsigned bits = 0;
	for (;;) {
		size_t n = strcspn(v, ",");
		unsigned bit = 0;
		for (unsigned k = 0; k < 4; k++)
			if (strlen(names[k]) == n &&
			    eq_nocase_n((const unsigned char *)v, names[k], n))
				bit = 1u << k;
		if (bit == 0)
			return false;
		bits |= bit;
		if (v[n] == '\0')
			break;
		v += n + 1;
	}
	if ((bits & 1u) != 0 && bits != 1u)
		return false;
	*bits_r = bits;
	return true;
}

/* ORCPT = addr-type ";" xtext (RFC 3461 §4.2).  addr-type is an atom; an
 * rfc822 address must be an RFC 5321 mailbox. */
static bool parse_orcpt(const char *v, char *out, size_t out_size)
{
	size_t t = strcspn(v, ";"), n;
	if (t == 0 || v[t] != ';' || t > 20)
		return false;
	for (size_t i = 0; i < t; i++)
		if (!is_atext((unsigned char)v[i]))
			return false;
	memcpy(out, v, t);
	out[t] = ';';
	if (!xtext_decode(v + t + 1, out + t + 1, out_size - t - 2, &n) ||
	    n == 0)
		return false;
	if (t == 6 && eq_nocase_n((const unsigned char *)v, "rfc822", 6)) {
		char path[SMTP_PATH_MAX + 3];
		smtp_path p;
		size_t used;
		const char *why;
		if (n > SMTP_PATH_MAX)
			return false;
		path[0] = '<';
		memcpy(path + 1, out + t + 1, n);
		path[n + 1] = '>';
		if (smtp_path_parse(path, n + 2, false, false, &p, &used, &why) !=
			    SMTP_ADDR_OK ||
		    used != n + 2)
			return false;
	}
	return true;
}

smtp_param_err smtp_params_check_rcpt(const smtp_params *ps,
				      const smtp_offer *offer,
				      smtp_rcpt_params *out, const char **why_r)
{
	memset(out, 0, sizeof(*out));
	*why_r = NULL;
	if (has_duplicate(ps))
		BAD(SMTP_PARAM_DUPLICATE, "duplicate parameter");
	for (size_t i = 0; i < ps->n; i++) {
		const smtp_param *p = &ps->p[i];
		if (eq_nocase(p->key, "NOTIFY") && offer->dsn) {
			if (!p->has_value || !parse_notify(p->value, &out->notify)) {
				out->notify = 0;
				BAD(SMTP_PARAM_BAD_VALUE,
				    "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
			}
		} else if (eq_nocase(p->key, "ORCPT") && offer->dsn) {
			if (!p->has_value ||
			    !parse_orcpt(p->value, out->orcpt, sizeof(out->orcpt))) {
				out->orcpt[0] = '\0';
				BAD(SMTP_PARAM_BAD_VALUE,
				    "ORCPT must be addr-type;xtext with a valid address");
			}
		} else {
			BAD(SMTP_PARAM_UNKNOWN, "unknown RCPT parameter");
		}
	}
	return SMTP_PARAM_OK;
}
