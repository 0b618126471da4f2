/*
 * egress.c — the outbound rewrite of a user's message (egress.h).
 *
 * One pass over the header section with mail-header.h's iterator: each
 * field is dropped (AMP-*, Bcc), rewritten (the address fields: DID tokens
 * replaced, everything between them copied) or copied, always with its
 * line ends made CRLF.  The From and Sender fields are read back from the
 * output (unfolded, then a small RFC 5322 mailbox-list reader) to compare
 * their address with the sender's.  The body is copied with the same line
 * end rule.
 *
 * Memory: the output grows in one buffer whose maximum is fixed before
 * the first byte is written (twice the input for LF -> CRLF, plus at most
 * 16 times the header section for DID -> address growth: a DID token is
 * at least 17 bytes and an address at most 254); unfolded values get a
 * buffer of their field's size.  Out of memory aborts (STYLE.md).
 * Work: O(input + header section x 16); the recipient deduplication is
 * O(EGRESS_MAX_RCPTS^2) string comparisons at most.
 */
#include "egress.h"

#include "obuf.h"

#include "mail-date.h"
#include "mail-header.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DID_PREFIX "did:aftersmtp:"
#define DID_PREFIX_LEN 14u
#define DID_MAX 332u          /* PROTOCOL.md §3.1 */
#define DID_DOMAIN_MAX 253u
#define DID_LABEL_MAX 63u
#define DID_LOCAL_MAX 64u
#define ADDR_LOCAL_MAX 64u    /* RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255u  /* RFC 5321 §4.5.3.1.2 */
#define MAP_BUF 512u          /* what the map function may write */


/* m[a..b) into o, each bare LF and a CR that ends m (m_len) as CRLF.  The
 * caller has refused any other bare CR. */
static void copy_norm(obuf *o, const uint8_t *m, size_t m_len, size_t a,
		      size_t b)
{
	size_t run = a;
	for (size_t i = a; i < b; i++) {
		bool lf = m[i] == '\n' && (i == 0 || m[i - 1] != '\r');
		bool cr = m[i] == '\r' && i + 1 == m_len;
		if (!lf && !cr)
			continue;
		ob_put(o, m + run, i - run);
		ob_put(o, "\r\n", 2);
		run = i + 1;
	}
	ob_put(o, m + run, b - run);
}

/* ---- Character classes ---- */

static bool is_lower_digit(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(uint8_t c)
{
	return is_lower_digit(c) || (c >= 'A' && c <= 'Z');
}

/* RFC 5322 atext */
static bool is_atext(uint8_t c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- DID tokens ---- */

/* s[0..len) is a DID domain: labels of 1..63 [a-z0-9-], no '-' at their
 * ends, 1..253 bytes. */
static bool did_domain_ok(const char *s, size_t len)
{
	if (len == 0 || len > DID_DOMAIN_MAX)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		size_t l = i - start;
		if (l == 0 || l > DID_LABEL_MAX ||
		    !is_lower_digit((uint8_t)s[start]) ||
		    !is_lower_digit((uint8_t)s[i - 1]))
			return false;
		start = i + 1;
	}
	return true;
}

/* s[0..len) is a DID local part: 1..64 [a-z0-9._-], starting and ending
 * with [a-z0-9], no "..". */
static bool did_local_ok(const char *s, size_t len)
{
	if (len == 0 || len > DID_LOCAL_MAX ||
	    !is_lower_digit((uint8_t)s[0]) ||
	    !is_lower_digit((uint8_t)s[len - 1]))
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
	return true;
}

size_t egress_did_span(const char *s, size_t len)
{
	if (len < DID_PREFIX_LEN || memcmp(s, DID_PREFIX, DID_PREFIX_LEN) != 0)
		return 0;
	size_t i = DID_PREFIX_LEN, d0 = i;
	while (i < len && (is_lower_digit((uint8_t)s[i]) || s[i] == '.' ||
			   s[i] == '-'))
		i++;
	if (i >= len || s[i] != ':' || !did_domain_ok(s + d0, i - d0))
		return 0;
	size_t l0 = ++i;
	while (i < len && (is_lower_digit((uint8_t)s[i]) || s[i] == '.' ||
			   s[i] == '-' || s[i] == '_'))
		i++;
	if (i < len) {
		uint8_t c = (uint8_t)s[i];
		if (is_atext(c) || c == '@' || c == ':' || c >= 0x80)
			return 0;
	}
	size_t e = i;
	while (e > l0 && s[e - 1] == '.')
		e--;
	if (!did_local_ok(s + l0, e - l0))
		return 0;
	return e;
}

/* ---- Addresses ---- */

/* The UTF-8 character at s[i..len): its length, 0 if invalid or a C1
 * control. */
static size_t utf8_at(const char *s, size_t len, size_t i)
{
	uint32_t cp;
	size_t n = util_utf8_seq((const uint8_t *)s + i, len - i, &cp);
	if (n == 0 || cp < 0xa0)
		return 0;
	return n;
}

/* The local part at s[0..len): its length up to (not including) the '@'
 * that follows it, or 0 if it is not a dot-atom or quoted string. */
static size_t local_span(const char *s, size_t len)
{
	size_t i = 0;
	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++) {
			uint8_t c = (uint8_t)s[i];
			if (c == '\\') {
				if (++i >= len || (uint8_t)s[i] < 0x21 ||
				    (uint8_t)s[i] > 0x7e)
					return 0;
			} else if (c >= 0x80) {
				size_t n = utf8_at(s, len, i);
				if (n == 0)
					return 0;
				i += n - 1;
			} else if (c < 0x21 || c == 0x7f) {
				return 0; /* blanks and controls: never */
			}
		}
		if (i >= len || i < 2) /* unterminated, or "" */
			return 0;
		return i + 1;
	}
	bool dot_ok = false;
	for (; i < len && s[i] != '@'; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == '.') {
			if (!dot_ok)
				return 0;
			dot_ok = false;
		} else if (c >= 0x80) {
			size_t n = utf8_at(s, len, i);
			if (n == 0)
				return 0;
			i += n - 1;
			dot_ok = true;
		} else if (is_atext(c)) {
			dot_ok = true;
		} else {
			return 0;
		}
	}
	return dot_ok ? i : 0;
}

static bool domain_ok(const char *s, size_t len)
{
	if (len == 0 || len > ADDR_DOMAIN_MAX)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < len; i++) {
			uint8_t c = (uint8_t)s[i];
			if (c < 0x21 || c > 0x7e || c == '[' || c == ']' ||
			    c == '\\')
				return false;
		}
		return true;
	}
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63 || s[start] == '-' ||
			    s[i - 1] == '-')
				return false;
			start = i + 1;
			continue;
		}
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x80) {
			size_t n = utf8_at(s, len, i);
			if (n == 0)
				return false;
			i += n - 1;
		} else if (!is_alnum(c) && c != '-') {
			return false;
		}
	}
	return true;
}

bool egress_addr_ok(const char *s, size_t len)
{
	if (len == 0 || len > EGRESS_ADDR_MAX)
		return false;
	size_t l = local_span(s, len);
	if (l == 0 || l > ADDR_LOCAL_MAX || l >= len || s[l] != '@')
		return false;
	return domain_ok(s + l + 1, len - l - 1);
}

/* Split addr (valid or not) at its last '@'. */
static bool addr_split(const char *a, size_t n, size_t *at_r)
{
	for (size_t i = n; i > 0; i--) {
		if (a[i - 1] == '@') {
			*at_r = i - 1;
			return true;
		}
	}
	return false;
}

/* The local part without its quotes and quoted-pair backslashes into out
 * (cap >= n + 1); returns its length. */
static size_t local_unquote(const char *s, size_t n, char *out)
{
	size_t k = 0;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		for (size_t i = 1; i + 1 < n; i++) {
			if (s[i] == '\\' && i + 2 < n)
				i++;
			out[k++] = s[i];
		}
	} else {
		memcpy(out, s, n);
		k = n;
	}
	out[k] = '\0';
	return k;
}

/* Same mailbox: local parts equal once unquoted, domains equal ignoring
 * ASCII case. */
static bool addr_same(const char *a, size_t an, const char *b, size_t bn)
{
	size_t ai, bi;
	if (!addr_split(a, an, &ai) || !addr_split(b, bn, &bi))
		return false;
	if (an - ai != bn - bi)
		return false;
	for (size_t i = 1; ai + i < an; i++)
		if (lower((uint8_t)a[ai + i]) != lower((uint8_t)b[bi + i]))
			return false;
	char la[EGRESS_ADDR_MAX + 1], lb[EGRESS_ADDR_MAX + 1];
	if (ai > EGRESS_ADDR_MAX || bi > EGRESS_ADDR_MAX)
		return false;
	size_t ln = local_unquote(a, ai, la), lm = local_unquote(b, bi, lb);
	return ln == lm && memcmp(la, lb, ln) == 0;
}

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] >= 0x80)
			return true;
	return false;
}

/* ---- The rewrite ---- */

enum { C_FROM, C_DATE, C_MSGID, C_SUBJECT, C_TO, C_CC, C_SENDER,
       C_REPLYTO, C_INREPLYTO, C_REFERENCES, C_N };
static const char *const counted[C_N] = {
	"From", "Date", "Message-ID", "Subject", "To", "Cc", "Sender",
	"Reply-To", "In-Reply-To", "References",
};
static const char *const address_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Resent-From",
	"Resent-Sender", "Resent-To", "Resent-Cc",
};

typedef struct ctx {
	const uint8_t *m;
	size_t len;
	egress_map_fn *map;
	void *arg;
	obuf out;
	egress_result *res;
	size_t n_seen;       /* AMP-Egress-To addresses before dedup */
	size_t rcap;
	const char **error_r;
	/* where From and Sender went in out: [off, off+len), value_off */
	size_t from_off, from_len, from_voff;
	size_t sender_off, sender_len, sender_voff;
	char sender_addr[EGRESS_ADDR_MAX + 1];
	size_t sender_addr_len;
} ctx;

static int fail(ctx *c, const char *why)
{
	*c->error_r = why;
	return -1;
}

/* A message naming s (sanitised to printable ASCII, cut) in res->error. */
static int fail_named(ctx *c, const char *what, const char *s, size_t n)
{
	char clean[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < sizeof(clean); i++) {
		uint8_t ch = (uint8_t)s[i];
		clean[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (k < n && k + 4 <= sizeof(clean)) {
		memcpy(clean + k, "...", 3);
		k += 3;
	}
	clean[k] = '\0';
	int r = snprintf(c->res->error, sizeof(c->res->error), "%s: \"%s\"",
			 what, clean);
	if (r < 0 || (size_t)r >= sizeof(c->res->error))
		return fail(c, what);
	return fail(c, c->res->error);
}

/* The address for did (a canonical DID of dn bytes) into addr (size
 * EGRESS_ADDR_MAX + 1): the map's, or LOCAL@DOMAIN. */
static int did_address(ctx *c, const char *did, size_t dn, char *addr,
		       size_t *alen_r)
{
	char d[DID_MAX + 1], buf[MAP_BUF];
	if (dn > DID_MAX)
		return fail(c, "DID longer than 332 bytes");
	memcpy(d, did, dn);
	d[dn] = '\0';
	const char *mapped = c->map != NULL ?
		c->map(c->arg, d, buf, sizeof(buf)) : NULL;
	if (mapped != NULL) {
		size_t n = strnlen(mapped, EGRESS_ADDR_MAX + 1);
		if (!egress_addr_ok(mapped, n))
			return fail_named(c, "the map gives an invalid address "
					  "for", d, dn);
		memcpy(addr, mapped, n);
		addr[n] = '\0';
		*alen_r = n;
		return 0;
	}
	const char *dom = d + DID_PREFIX_LEN;
	const char *colon = memchr(dom, ':', dn - DID_PREFIX_LEN);
	if (colon == NULL)
		abort(); /* a bug: the DID was checked */
	size_t dl = (size_t)(colon - dom), ll = dn - DID_PREFIX_LEN - dl - 1;
	/* at most 64 + 1 + 253: over EGRESS_ADDR_MAX for the longest */
	if (ll + 1 + dl > EGRESS_ADDR_MAX)
		return fail_named(c, "DID too long for a mail address", d, dn);
	memcpy(addr, colon + 1, ll);
	addr[ll] = '@';
	memcpy(addr + ll + 1, dom, dl);
	addr[ll + 1 + dl] = '\0';
	*alen_r = ll + 1 + dl;
	return 0;
}

/* Copy field f to out with its DID tokens replaced. */
static int rewrite_field(ctx *c, const mail_field *f)
{
	const uint8_t *m = c->m;
	size_t end = f->off + f->len, seg = f->off;
	for (size_t i = f->value_off; i + DID_PREFIX_LEN <= end; i++) {
		if (m[i] != 'd' || memcmp(m + i, DID_PREFIX,
					  DID_PREFIX_LEN) != 0)
			continue;
		uint8_t b = m[i - 1]; /* i > f->off: the ':' is before */
		if (is_atext(b) || b == '.' || b == '@' || b >= 0x80)
			continue;
		size_t n = egress_did_span((const char *)m + i, end - i);
		if (n == 0)
			continue;
		char addr[EGRESS_ADDR_MAX + 1];
		size_t alen;
		if (did_address(c, (const char *)m + i, n, addr, &alen) < 0)
			return -1;
		copy_norm(&c->out, m, c->len, seg, i);
		ob_put(&c->out, addr, alen);
		seg = i + n;
		i = seg - 1;
	}
	copy_norm(&c->out, m, c->len, seg, end);
	return 0;
}

static bool rcpt_known(const egress_result *r, const char *a, size_t n)
{
	for (size_t i = 0; i < r->n_rcpts; i++)
		if (addr_same(r->rcpts[i], strlen(r->rcpts[i]), a, n))
			return true;
	return false;
}

/* One AMP-Egress-To item s[0..n) (blanks trimmed). */
static int add_rcpt(ctx *c, const char *s, size_t n)
{
	egress_result *r = c->res;
	if (n == 0)
		return 0; /* "a@x,,b@y": empty list elements are skipped */
	if (++c->n_seen > EGRESS_MAX_RCPTS)
		return fail(c, "more than 1000 AMP-Egress-To recipients");
	const char *a = s;
	size_t an = n;
	if (s[0] == '<') {
		if (n < 2 || s[n - 1] != '>')
			return fail_named(c, "invalid recipient in "
					  "AMP-Egress-To", s, n);
		a++;
		an -= 2;
	}
	if (!egress_addr_ok(a, an))
		return fail_named(c, "invalid recipient in AMP-Egress-To", s, n);
	if (rcpt_known(r, a, an))
		return 0;
	if (r->n_rcpts == c->rcap) {
		size_t cap = c->rcap == 0 ? 8 : c->rcap * 2;
		char **q = realloc(r->rcpts, cap * sizeof(*q));
		if (q == NULL)
			abort();
		r->rcpts = q;
		c->rcap = cap;
	}
	char *copy = malloc(an + 1);
	if (copy == NULL)
		abort();
	memcpy(copy, a, an);
	copy[an] = '\0';
	r->rcpts[r->n_rcpts++] = copy;
	if (has_8bit(a, an))
		r->smtputf8 = true;
	return 0;
}

static int egress_to(ctx *c, const mail_field *f)
{
	char *v = malloc(f->len + 1);
	if (v == NULL)
		abort();
	size_t n = mail_field_unfold(c->m, f, v, f->len + 1);
	size_t start = 0;
	bool quoted = false, esc = false;
	int rc = 0;
	for (size_t i = 0; i <= n && rc == 0; i++) {
		if (i < n && quoted && !esc && v[i] == '\\') {
			esc = true;
			continue;
		}
		if (i < n && v[i] == '"' && !esc)
			quoted = !quoted;
		esc = false;
		if (i < n && (v[i] != ',' || quoted))
			continue;
		size_t a = start, b = i;
		while (a < b && is_wsp(v[a]))
			a++;
		while (b > a && is_wsp(v[b - 1]))
			b--;
		rc = add_rcpt(c, v + a, b - a);
		start = i + 1;
	}
	free(v);
	return rc;
}

/* The From (is_from) or Sender field copied to out[off..off+len) (value at voff) is
 * exactly one mailbox with the sender's address; for From, also sets
 * res->from_domain. */
static int check_mailbox(ctx *c, size_t off, size_t len, size_t voff,
			 bool is_from)
{
	mail_field f = { .off = off, .len = len, .name_len = 1,
			 .value_off = voff };
	char *v = malloc(len + 1), *a = malloc(len + 1);
	size_t alen, at;
	const char *why = NULL;
	int rc = 0;
	if (v == NULL || a == NULL)
		abort();
	size_t n = mail_field_unfold(c->out.p, &f, v, len + 1);
	long k = mail_mailbox_list(v, n, a, &alen, &why);
	if (k < 0) {
		rc = fail_named(c, is_from ? "From is not one mailbox" :
				"Sender is not one mailbox", why, strlen(why));
	} else if (k != 1) {
		rc = fail(c, is_from ? "From must hold exactly one mailbox" :
			  "Sender must hold exactly one mailbox");
	} else if (!addr_same(a, alen, c->sender_addr, c->sender_addr_len)) {
		rc = fail(c, is_from ? "From does not match the sender" :
			  "Sender does not match the sender");
	} else if (is_from) {
		if (!addr_split(a, alen, &at))
			abort(); /* it matched an address */
		char *d = malloc(alen - at);
		if (d == NULL)
			abort();
		for (size_t i = at + 1; i < alen; i++)
			d[i - at - 1] = (char)lower((uint8_t)a[i]);
		d[alen - at - 1] = '\0';
		c->res->from_domain = d;
		if (has_8bit(a, alen))
			c->res->smtputf8 = true;
	}
	free(v);
	free(a);
	return rc;
}

static bool domain_name_ok(const char *s)
{
	size_t n = strnlen(s, 254);
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((uint8_t)s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

static int prepare(ctx *c, const char *sender_did, const char *msgid_domain,
		   const uint8_t random16[16], uint64_t now)
{
	const uint8_t *m = c->m;
	size_t len = c->len;
	egress_result *r = c->res;
	size_t counts[C_N] = { 0 };

	size_t sd_len = sender_did != NULL ?
		strnlen(sender_did, DID_MAX + 1) : 0;
	if (sd_len == 0 || sd_len > DID_MAX ||
	    egress_did_span(sender_did, sd_len) != sd_len)
		return fail(c, "the sender is not a canonical DID");
	if (msgid_domain == NULL || !domain_name_ok(msgid_domain))
		return fail(c, "invalid Message-ID domain");
	if (did_address(c, sender_did, sd_len, c->sender_addr,
			&c->sender_addr_len) < 0)
		return -1;
	if (len > (SIZE_MAX - 65536) / 4)
		return fail(c, "message too large");
	if (memchr(m, '\0', len) != NULL)
		return fail(c, "the message has a NUL byte");
	for (const uint8_t *p = m; (p = memchr(p, '\r', len - (size_t)(p - m)))
	     != NULL; p++) {
		if (p + 1 < m + len && p[1] != '\n')
			return fail(c, "the message has a bare CR (not "
				    "before LF)");
	}
	size_t hmax = len < EGRESS_MAX_HEADER ? len : EGRESS_MAX_HEADER;
	c->out.max = 2 * len + 16 * hmax + 4096;

	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1) {
		if (f.off + f.len > EGRESS_MAX_HEADER)
			return fail(c, "the header section is over 1 MiB");
		if (it.fields > EGRESS_MAX_FIELDS)
			return fail(c, "more than 10000 header fields");
		if (f.malformed)
			return fail(c, "a malformed header line (a leading "
				    "blank, or a \"From \" line)");
		if (f.name_len >= 4 && (m[f.off] | 0x20) == 'a' &&
		    (m[f.off + 1] | 0x20) == 'm' &&
		    (m[f.off + 2] | 0x20) == 'p' && m[f.off + 3] == '-') {
			if (mail_field_is(m, &f, "AMP-Egress-To") &&
			    egress_to(c, &f) < 0)
				return -1;
			continue;
		}
		if (mail_field_is(m, &f, "Bcc"))
			continue;
		for (size_t k = 0; k < C_N; k++)
			if (mail_field_is(m, &f, counted[k]))
				counts[k]++;
		bool addr = false;
		for (size_t k = 0; k < sizeof(address_fields) /
					       sizeof(address_fields[0]); k++)
			if (mail_field_is(m, &f, address_fields[k]))
				addr = true;
		size_t start = c->out.len;
		if (addr) {
			if (rewrite_field(c, &f) < 0)
				return -1;
		} else {
			copy_norm(&c->out, m, len, f.off, f.off + f.len);
		}
		if (c->out.p[c->out.len - 1] != '\n')
			ob_put(&c->out, "\r\n", 2); /* the last line of m */
		size_t voff = start + (f.value_off - f.off);
		if (mail_field_is(m, &f, "From") && counts[C_FROM] == 1) {
			c->from_off = start;
			c->from_len = c->out.len - start;
			c->from_voff = voff;
		}
		if (mail_field_is(m, &f, "Sender") && counts[C_SENDER] == 1) {
			c->sender_off = start;
			c->sender_len = c->out.len - start;
			c->sender_voff = voff;
		}
	}
	if (it.body_off > EGRESS_MAX_HEADER)
		return fail(c, "the header section is over 1 MiB");
	if (counts[C_FROM] == 0)
		return fail(c, "no From field");
	for (size_t k = 0; k < C_N; k++) {
		if (counts[k] > 1) {
			int n = snprintf(r->error, sizeof(r->error),
					 "more than one %s field", counted[k]);
			if (n < 0 || (size_t)n >= sizeof(r->error))
				abort();
			return fail(c, r->error);
		}
	}
	if (r->n_rcpts == 0)
		return fail(c, "no recipient (no AMP-Egress-To address)");
	if (check_mailbox(c, c->from_off, c->from_len, c->from_voff,
			  true) < 0)
		return -1;
	if (counts[C_SENDER] == 1 &&
	    check_mailbox(c, c->sender_off, c->sender_len,
			  c->sender_voff, false) < 0)
		return -1;
	if (counts[C_DATE] == 0) {
		char date[MAIL_DATE_FORMAT_SIZE];
		if (now > INT64_MAX ||
		    !mail_date_format((time_t)now, date, sizeof(date)))
			return fail(c, "the clock is outside 1900..9999");
		ob_str(&c->out, "Date: ");
		ob_str(&c->out, date);
		ob_str(&c->out, "\r\n");
	}
	if (counts[C_MSGID] == 0) {
		static const char hex[] = "0123456789abcdef";
		char id[33];
		for (size_t i = 0; i < 16; i++) {
			id[2 * i] = hex[random16[i] >> 4];
			id[2 * i + 1] = hex[random16[i] & 15];
		}
		id[32] = '\0';
		ob_str(&c->out, "Message-ID: <");
		ob_str(&c->out, id);
		ob_str(&c->out, "@");
		ob_str(&c->out, msgid_domain);
		ob_str(&c->out, ">\r\n");
	}
	ob_put(&c->out, "\r\n", 2);
	copy_norm(&c->out, m, len, it.body_off, len);
	r->eightbit = false;
	for (size_t i = 0; i < c->out.len && !r->eightbit; i++)
		if (c->out.p[i] >= 0x80)
			r->eightbit = true;
	return 0;
}

int egress_prepare(const uint8_t *in, size_t in_len, const char *sender_did,
		   egress_map_fn *map, void *arg, const char *msgid_domain,
		   const uint8_t random16[16], uint64_t now,
		   egress_result *res, const char **error_r)
{
	static const uint8_t none[1];
	const char *dummy;
	memset(res, 0, sizeof(*res));
	ctx c = { .m = in != NULL ? in : none, .len = in != NULL ? in_len : 0,
		  .map = map, .arg = arg, .res = res,
		  .error_r = error_r != NULL ? error_r : &dummy };
	if (random16 == NULL)
		return fail(&c, "no random bytes for the Message-ID");
	if (prepare(&c, sender_did, msgid_domain, random16, now) < 0) {
		free(c.out.p);
		char keep[sizeof(res->error)];
		memcpy(keep, res->error, sizeof(keep));
		egress_result_free(res);
		memcpy(res->error, keep, sizeof(keep));
		return -1;
	}
	res->msg = c.out.p;
	res->len = c.out.len;
	return 0;
}

void egress_result_free(egress_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n_rcpts; i++)
		free(res->rcpts[i]);
	free(res->rcpts);
	free(res->msg);
	free(res->from_domain);
	memset(res, 0, sizeof(*res));
}
