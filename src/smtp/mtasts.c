/*
 * mtasts.c — MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy
 * file and the MX pattern match.  See mtasts.h for the grammar accepted,
 * what is refused and the limits.  Pure: no I/O, no clock; the only
 * allocation is the parsed policy.
 */
#include "mtasts.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 32u     /* 1 + *31 characters of a field name */

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

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* A field name at s[0..len): its length (1..NAME_MAX_LEN), or 0 when
 * s does not start with one.  A longer run of name characters is 0 too. */
static size_t name_len(const uint8_t *s, size_t len)
{
	if (len == 0 || !is_alnum(s[0]))
		return 0;
	size_t n = 1;
	while (n < len && (is_alnum(s[n]) || s[n] == '_' || s[n] == '-' ||
			   s[n] == '.'))
		n++;
	return n <= NAME_MAX_LEN ? n : 0;
}

static bool same(const uint8_t *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

/* ------------------------------------------------------------ TXT record */

/* sts-ext-value: %x21-3A / %x3C / %x3E-7E (no '=', ';', space, controls) */
static bool ext_value_char(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

int mtasts_txt_parse(const uint8_t *rec, size_t len,
		     char id_r[MTASTS_ID_MAX + 1], const char **error_r)
{
	static const char version[] = "v=STSv1";
	size_t pos = sizeof(version) - 1, fields = 0;
	id_r[0] = '\0';
	if (len < pos || memcmp(rec, version, pos) != 0) {
		*error_r = "the record does not begin with v=STSv1";
		return -1;
	}
	for (;;) {
		while (pos < len && is_wsp(rec[pos]))
			pos++;
		if (pos == len)
			break;          /* blanks after the last field */
		if (rec[pos] != ';') {
			*error_r = "the record's fields are not separated by ';'";
			goto fail;
		}
		pos++;
		while (pos < len && is_wsp(rec[pos]))
			pos++;
		if (pos == len)
			break;          /* a final delimiter */
		size_t nl = name_len(rec + pos, len - pos);
		if (nl == 0 || pos + nl >= len || rec[pos + nl] != '=') {
			*error_r = "a field of the record is not name=value";
			goto fail;
		}
		size_t v = pos + nl + 1, ve = v;
		while (ve < len && ext_value_char(rec[ve]))
			ve++;
		if (ve == v) {
			*error_r = "a field of the record has an empty value";
			goto fail;
		}
		if (same(rec + pos, nl, "id")) {
			for (size_t i = v; i < ve; i++) {
				if (!is_alnum(rec[i])) {
					*error_r = "the record's id is not "
						   "alphanumeric";
					goto fail;
				}
			}
			if (ve - v > MTASTS_ID_MAX) {
				*error_r = "the record's id is longer than 32 "
					   "characters";
				goto fail;
			}
			if (id_r[0] == '\0') { /* a second id is ignored */
				memcpy(id_r, rec + v, ve - v);
				id_r[ve - v] = '\0';
			}
		}
		fields++;
		pos = ve;
	}
	if (id_r[0] == '\0') {
		*error_r = "the record has no id field";
		goto fail;
	}
	return 0;
fail:
	id_r[0] = '\0';
	return -1;
}

/* Whether a TXT record claims to be MTA-STS: "v=STSv1", blanks, then ';'
 * or the end (§3.1: other records are discarded). */
static bool is_sts(const char *s)
{
	if (strncmp(s, "v=STSv1", 7) != 0)
		return false;
	s += 7;
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == ';' || *s == '\0';
}

mtasts_txt_status mtasts_txt_select(const char *const *txt, size_t n,
				    char id_r[MTASTS_ID_MAX + 1],
				    const char **error_r)
{
	const char *one = NULL;
	size_t found = 0;
	id_r[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (txt[i] != NULL && is_sts(txt[i])) {
			found++;
			one = txt[i];
		}
	}
	if (found == 0) {
		*error_r = "no TXT record begins with v=STSv1";
		return MTASTS_TXT_NONE;
	}
	if (found > 1) {
		*error_r = "more than one TXT record begins with v=STSv1";
		return MTASTS_TXT_INVALID;
	}
	if (mtasts_txt_parse((const uint8_t *)one, strlen(one), id_r,
			     error_r) != 0)
		return MTASTS_TXT_INVALID;
	return MTASTS_TXT_OK;
}

/* ----------------------------------------------------------- policy file */

/* Domain (RFC 5321 §4.1.2): LDH labels of 1..63, each starting and ending
 * with a letter or digit, at most MTASTS_DOMAIN_MAX in all. */
static bool domain_ok(const uint8_t *s, size_t len)
{
	if (len == 0 || len > MTASTS_DOMAIN_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(s[i]) && (s[i] != '-' || label == 0))
			return false;
		label++;
	}
	return true;
}

static bool mx_pattern_ok(const uint8_t *s, size_t len)
{
	if (len >= 2 && s[0] == '*' && s[1] == '.')
		return domain_ok(s + 2, len - 2);
	return domain_ok(s, len);
}

/* A line's bytes: no control but HTAB, no DEL, valid UTF-8. */
static bool line_chars_ok(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return false;
			i++;
			continue;
		}
		uint32_t cp;
		size_t n = util_utf8_seq(s + i, len - i, &cp);
		if (n == 0 || (cp >= 0x80 && cp < 0xa0)) /* C1 controls too */
			return false;
		i += n;
	}
	return true;
}

typedef struct span {
	size_t off, len;
} span;

int mtasts_policy_parse(const uint8_t *text, size_t len, mtasts_policy **p_r,
			const char **error_r)
{
	bool have_version = false, have_mode = false, have_age = false;
	mtasts_mode mode = MTASTS_MODE_NONE;
	uint64_t age = 0;
	span mx[MTASTS_MX_MAX];
	size_t n_mx = 0, mx_bytes = 0;

	*p_r = NULL;
	if (len > MTASTS_POLICY_MAX) {
		*error_r = "the policy is larger than 64 KiB";
		return -1;
	}
	for (size_t pos = 0; pos < len;) {
		const uint8_t *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		size_t a = pos, b = end;
		pos = nl != NULL ? end + 1 : len;
		if (b > a && text[b - 1] == '\r')
			b--;
		while (b > a && is_wsp(text[b - 1]))
			b--;
		if (b == a)
			continue;       /* an empty line (lenient) */
		if (!line_chars_ok(text + a, b - a)) {
			*error_r = "the policy has a control character or "
				   "invalid UTF-8";
			return -1;
		}
		size_t n = name_len(text + a, b - a);
		if (n == 0 || a + n >= b || text[a + n] != ':') {
			*error_r = "a line of the policy is not name: value";
			return -1;
		}
		const uint8_t *name = text + a;
		size_t v = a + n + 1;
		while (v < b && is_wsp(text[v]))
			v++;
		const uint8_t *val = text + v;
		size_t vl = b - v;
		if (same(name, n, "version")) {
			if (have_version)
				continue;
			if (!same(val, vl, "STSv1")) {
				*error_r = "the policy's version is not STSv1";
				return -1;
			}
			have_version = true;
		} else if (same(name, n, "mode")) {
			if (have_mode)
				continue;
			if (same(val, vl, "enforce"))
				mode = MTASTS_MODE_ENFORCE;
			else if (same(val, vl, "testing"))
				mode = MTASTS_MODE_TESTING;
			else if (same(val, vl, "none"))
				mode = MTASTS_MODE_NONE;
			else {
				*error_r = "the policy's mode is not enforce, "
					   "testing or none";
				return -1;
			}
			have_mode = true;
		} else if (same(name, n, "max_age")) {
			if (have_age)
				continue;
			age = 0;
			if (vl == 0 || vl > 10) {
				*error_r = "the policy's max_age is not 1 to 10 "
					   "digits";
				return -1;
			}
			for (size_t i = 0; i < vl; i++) {
				if (!is_digit(val[i])) {
					*error_r = "the policy's max_age is not "
						   "1 to 10 digits";
					return -1;
				}
				age = age * 10 + (uint64_t)(val[i] - '0');
			}
			if (age > MTASTS_MAX_AGE_MAX)
				age = MTASTS_MAX_AGE_MAX;
			have_age = true;
		} else if (same(name, n, "mx")) {
			if (!mx_pattern_ok(val, vl)) {
				*error_r = "an mx of the policy is not a host name "
					   "or *. and a domain";
				return -1;
			}
			if (n_mx == MTASTS_MX_MAX) {
				*error_r = "the policy has more than 100 mx lines";
				return -1;
			}
			mx[n_mx].off = v;
			mx[n_mx].len = vl;
			n_mx++;
			mx_bytes += vl + 1;
		}
		/* any other field is ignored (§3.2) */
	}
	if (!have_version) {
		*error_r = "the policy has no version field";
		return -1;
	}
	if (!have_mode) {
		*error_r = "the policy has no mode field";
		return -1;
	}
	if (!have_age) {
		*error_r = "the policy has no max_age field";
		return -1;
	}
	if (n_mx == 0 && mode != MTASTS_MODE_NONE) {
		*error_r = "the policy has no mx field";
		return -1;
	}
	/* mx_bytes <= len + MTASTS_MX_MAX: no overflow */
	size_t size = sizeof(mtasts_policy) + mx_bytes;
	mtasts_policy *p = calloc(1, size);
	if (p == NULL)
		abort();
	char *w = (char *)(p + 1);
	p->mode = mode;
	p->max_age = (uint32_t)age;
	p->n_mx = n_mx;
	p->alloc_size = size;
	for (size_t i = 0; i < n_mx; i++) {
		p->mx[i] = w;
		for (size_t k = 0; k < mx[i].len; k++)
			*w++ = (char)lower(text[mx[i].off + k]);
		*w++ = '\0';
	}
	*p_r = p;
	return 0;
}

mtasts_policy *mtasts_policy_dup(const mtasts_policy *p)
{
	mtasts_policy *c = malloc(p->alloc_size);
	if (c == NULL)
		abort();
	memcpy(c, p, p->alloc_size);
	const char *base = (const char *)(p + 1);
	char *nbase = (char *)(c + 1);
	for (size_t i = 0; i < p->n_mx; i++)
		c->mx[i] = nbase + (p->mx[i] - base);
	return c;
}

void mtasts_policy_free(mtasts_policy **p)
{
	if (p == NULL || *p == NULL)
		return;
	free(*p);
	*p = NULL;
}

const char *mtasts_mode_name(mtasts_mode m)
{
	switch (m) {
	case MTASTS_MODE_NONE:
		return "none";
	case MTASTS_MODE_TESTING:
		return "testing";
	case MTASTS_MODE_ENFORCE:
		return "enforce";
	}
	return NULL;
}

/* ------------------------------------------------------------- MX match */

static bool same_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

bool mtasts_pattern_match(const char *pattern, const char *host)
{
	if (pattern == NULL || host == NULL)
		return false;
	size_t hl = strlen(host), pl = strlen(pattern);
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (pl > 0 && pattern[pl - 1] == '.')
		pl--;
	if (hl == 0 || pl == 0)
		return false;
	/* the host: no empty label, no '*' (it is a name, not a pattern) */
	for (size_t i = 0; i < hl; i++) {
		if (host[i] == '*')
			return false;
		if (host[i] == '.' && (i == 0 || host[i - 1] == '.'))
			return false;
	}
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *rest = pattern + 2;
		size_t rl = pl - 2;
		const char *dot = memchr(host, '.', hl);
		if (rl == 0 || dot == NULL || dot == host)
			return false;
		size_t tail = hl - (size_t)(dot - host) - 1;
		return tail == rl && same_ci(dot + 1, rest, rl);
	}
	return hl == pl && same_ci(host, pattern, hl);
}

bool mtasts_mx_match(const mtasts_policy *p, const char *host)
{
	if (p == NULL)
		return false;
	for (size_t i = 0; i < p->n_mx; i++)
		if (mtasts_pattern_match(p->mx[i], host))
			return true;
	return false;
}
