/*
 * fuzz-mtasts.c — libFuzzer target for src/smtp/mtasts.c (MTA-STS, RFC
 * 8461): what a remote domain controls, its `_mta-sts` TXT record and its
 * policy file, and the MX names its DNS gives.
 *
 * Input: byte 0 picks what the rest is:
 *   0 (mod 3)  a policy file       mtasts_policy_parse
 *   1          a TXT record        mtasts_txt_parse, mtasts_txt_select
 *   2          "PATTERN\0HOST"     mtasts_pattern_match
 *
 * Properties, against references written here (line by line, with their
 * own UTF-8 and host-name checks):
 *  - policy: accepted exactly when the reference accepts, with the same
 *    mode, max_age (capped) and mx patterns (lower-cased); a refusal has
 *    a reason and no policy; the same text with every LF made CRLF gives
 *    the same result; an accepted policy with an unknown field appended
 *    stays the same; a copy (mtasts_policy_dup) is equal; every pattern
 *    matches a host built from it ("*.d" -> "x.d", upper-cased, with a
 *    trailing dot) and "*.d" matches neither "d" nor "a.b.d";
 *  - TXT: accepted exactly when the reference accepts, with the same id
 *    (1..32 alphanumerics, the first id field); mtasts_txt_select on the
 *    record alone agrees (OK / INVALID / NONE);
 *  - match: the reference's answer, and the same with the pattern's case
 *    flipped.
 */
#include "mtasts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-mtasts: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static int low(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* ---------------------------------------------------- policy reference */

typedef struct ref_policy {
	int mode;                       /* 0 none, 1 testing, 2 enforce */
	unsigned long long max_age;
	size_t n_mx;
	char mx[MTASTS_MX_MAX][256];
} ref_policy;

/* Valid UTF-8 of s[0..n) without C0 (but HTAB), DEL or C1 controls. */
static int ref_text_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if (c == 0x7f || (c < 0x20 && c != '\t'))
				return 0;
			i++;
			continue;
		}
		size_t need;
		unsigned long cp;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i - 1 < need)   /* fewer than need bytes follow */
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* RFC 5321 Domain: dot-separated labels, 1..63 each, letters, digits and
 * inner hyphens, 253 in all. */
static int ref_domain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63 || !alnum(p[0]) || !alnum(p[l - 1]))
			return 0;
		for (size_t k = 0; k < l; k++)
			if (!alnum(p[k]) && p[k] != '-')
				return 0;
		if (dot == NULL)
			return 1;
		p = dot + 1;
	}
}

static int ref_name_n(const char *s, size_t n)
{
	if (n == 0 || n > 32 || !alnum(s[0]))
		return 0;
	for (size_t k = 1; k < n; k++)
		if (!alnum(s[k]) && s[k] != '_' && s[k] != '-' && s[k] != '.')
			return 0;
	return 1;
}

static int ref_name(const char *s)
{
	return ref_name_n(s, strlen(s));
}

/* 1 and *r, or 0. */
static int ref_policy_parse(const uint8_t *t, size_t len, ref_policy *r)
{
	int have_v = 0, have_m = 0, have_a = 0;
	memset(r, 0, sizeof(*r));
	if (len > MTASTS_POLICY_MAX)
		return 0;
	static char line[MTASTS_POLICY_MAX + 1];
	size_t start = 0;
	while (start < len) {
		size_t e = start;
		while (e < len && t[e] != '\n')
			e++;
		size_t n = e - start;
		memcpy(line, t + start, n);
		line[n] = '\0';
		start = e + 1;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (memchr(line, '\0', n) != NULL ||
		    !ref_text_ok((const uint8_t *)line, n))
			return 0;
		char *colon = strchr(line, ':');
		if (colon == NULL)
			return 0;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!ref_name(line))
			return 0;
		if (strcmp(line, "version") == 0) {
			if (!have_v && strcmp(v, "STSv1") != 0)
				return 0;
			have_v = 1;
		} else if (strcmp(line, "mode") == 0) {
			if (!have_m) {
				if (strcmp(v, "none") == 0)
					r->mode = 0;
				else if (strcmp(v, "testing") == 0)
					r->mode = 1;
				else if (strcmp(v, "enforce") == 0)
					r->mode = 2;
				else
					return 0;
			}
			have_m = 1;
		} else if (strcmp(line, "max_age") == 0) {
			if (!have_a) {
				size_t dl = strlen(v);
				if (dl == 0 || dl > 10 ||
				    strspn(v, "0123456789") != dl)
					return 0;
				r->max_age = strtoull(v, NULL, 10);
				if (r->max_age > 31557600)
					r->max_age = 31557600;
			}
			have_a = 1;
		} else if (strcmp(line, "mx") == 0) {
			const char *d = strncmp(v, "*.", 2) == 0 ? v + 2 : v;
			if (!ref_domain(d) || r->n_mx == MTASTS_MX_MAX)
				return 0;
			size_t k = 0;
			for (; v[k] != '\0'; k++)
				r->mx[r->n_mx][k] = (char)low((unsigned char)v[k]);
			r->mx[r->n_mx][k] = '\0';
			r->n_mx++;
		}
	}
	return have_v && have_m && have_a && (r->n_mx > 0 || r->mode == 0);
}

static void same_policy(const mtasts_policy *p, const ref_policy *r)
{
	CHECK((int)p->mode == r->mode);
	CHECK(p->max_age == r->max_age);
	CHECK(p->n_mx == r->n_mx);
	for (size_t i = 0; i < p->n_mx; i++)
		CHECK(strcmp(p->mx[i], r->mx[i]) == 0);
}

/* Each pattern matches what it stands for, and nothing one label off. */
static void check_patterns(const mtasts_policy *p)
{
	char host[300];
	for (size_t i = 0; i < p->n_mx; i++) {
		const char *m = p->mx[i];
		if (strncmp(m, "*.", 2) == 0) {
			snprintf(host, sizeof(host), "x.%s", m + 2);
			CHECK(mtasts_mx_match(p, host));
			CHECK(mtasts_pattern_match(m, host));
			CHECK(!mtasts_pattern_match(m, m + 2));
			snprintf(host, sizeof(host), "a.b.%s", m + 2);
			CHECK(!mtasts_pattern_match(m, host));
		} else {
			CHECK(mtasts_pattern_match(m, m));
			size_t k = 0;
			for (; m[k] != '\0'; k++)
				host[k] = (char)(m[k] >= 'a' && m[k] <= 'z'
						 ? m[k] - 32 : m[k]);
			host[k++] = '.';
			host[k] = '\0';
			CHECK(mtasts_mx_match(p, host));
		}
	}
}

static void fuzz_policy(const uint8_t *t, size_t len)
{
	static ref_policy ref;
	mtasts_policy *p = NULL;
	const char *err = NULL;
	int rc = mtasts_policy_parse(t, len, &p, &err);
	int want = ref_policy_parse(t, len, &ref);
	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == want);
	if (rc != 0) {
		CHECK(p == NULL && err != NULL);
	} else {
		CHECK(p != NULL && p->id[0] == '\0' && p->fetched == 0);
		same_policy(p, &ref);
		check_patterns(p);
		mtasts_policy *c = mtasts_policy_dup(p);
		same_policy(c, &ref);
		mtasts_policy_free(&c);
	}

	/* LF -> CRLF (only when the text has no CR of its own, and fits) */
	if (memchr(t, '\r', len) == NULL) {
		size_t lf = 0;
		for (size_t i = 0; i < len; i++)
			lf += t[i] == '\n';
		if (len + lf <= MTASTS_POLICY_MAX) {
			uint8_t *u = malloc(len + lf + 1);
			CHECK(u != NULL);
			size_t k = 0;
			for (size_t i = 0; i < len; i++) {
				if (t[i] == '\n')
					u[k++] = '\r';
				u[k++] = t[i];
			}
			mtasts_policy *q = NULL;
			CHECK((mtasts_policy_parse(u, k, &q, &err) == 0) ==
			      (rc == 0));
			if (q != NULL)
				same_policy(q, &ref);
			mtasts_policy_free(&q);
			free(u);
		}
	}

	/* an unknown field appended changes nothing */
	static const char extra[] = "\nx-fuzz-extra: ignored\n";
	if (rc == 0 && len + sizeof(extra) <= MTASTS_POLICY_MAX) {
		uint8_t *u = malloc(len + sizeof(extra));
		CHECK(u != NULL);
		memcpy(u, t, len);
		memcpy(u + len, extra, sizeof(extra) - 1);
		mtasts_policy *q = NULL;
		CHECK(mtasts_policy_parse(u, len + sizeof(extra) - 1, &q,
					  &err) == 0);
		same_policy(q, &ref);
		mtasts_policy_free(&q);
		free(u);
	}
	mtasts_policy_free(&p);
}

/* -------------------------------------------------------- TXT reference */

static int ref_ext_char(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

/* 1 and the id, or 0. */
static int ref_txt(const uint8_t *s, size_t n, char id[MTASTS_ID_MAX + 1])
{
	id[0] = '\0';
	if (n < 7 || memcmp(s, "v=STSv1", 7) != 0)
		return 0;
	size_t i = 7;
	for (;;) {
		size_t j = i;
		while (j < n && (s[j] == ' ' || s[j] == '\t'))
			j++;
		if (j == n)
			break;
		if (s[j] != ';')
			return 0;
		j++;
		while (j < n && (s[j] == ' ' || s[j] == '\t'))
			j++;
		if (j == n)
			break;
		size_t eq = j;
		while (eq < n && s[eq] != '=')
			eq++;
		if (eq == n)
			return 0;
		char name[40];
		if (!ref_name_n((const char *)s + j, eq - j))
			return 0;
		memcpy(name, s + j, eq - j);
		name[eq - j] = '\0';
		size_t v = eq + 1, ve = v;
		while (ve < n && ref_ext_char(s[ve]))
			ve++;
		if (ve == v)
			return 0;
		if (strcmp(name, "id") == 0) {
			if (ve - v > 32)
				return 0;
			for (size_t k = v; k < ve; k++)
				if (!alnum(s[k]))
					return 0;
			if (id[0] == '\0') {
				memcpy(id, s + v, ve - v);
				id[ve - v] = '\0';
			}
		}
		i = ve;
	}
	return id[0] != '\0';
}

static void fuzz_txt(const uint8_t *s, size_t n)
{
	char id[MTASTS_ID_MAX + 1], rid[MTASTS_ID_MAX + 1];
	const char *err = NULL;
	int rc = mtasts_txt_parse(s, n, id, &err);
	int want = ref_txt(s, n, rid);
	CHECK((rc == 0) == want);
	if (rc == 0) {
		CHECK(strcmp(id, rid) == 0);
		size_t l = strlen(id);
		CHECK(l >= 1 && l <= MTASTS_ID_MAX);
	} else {
		CHECK(rc == -1 && err != NULL && id[0] == '\0');
	}
	if (memchr(s, '\0', n) != NULL)
		return;
	char *rec = malloc(n + 1);
	CHECK(rec != NULL);
	memcpy(rec, s, n);
	rec[n] = '\0';
	const char *one[1] = { rec };
	mtasts_txt_status st = mtasts_txt_select(one, 1, id, &err);
	/* an STS record: "v=STSv1", blanks, then ';' or the end */
	size_t k = 7;
	int sts = n >= 7 && memcmp(rec, "v=STSv1", 7) == 0;
	while (sts && k < n && (rec[k] == ' ' || rec[k] == '\t'))
		k++;
	sts = sts && (k == n || rec[k] == ';');
	if (!sts)
		CHECK(st == MTASTS_TXT_NONE);
	else
		CHECK(st == (rc == 0 ? MTASTS_TXT_OK : MTASTS_TXT_INVALID));
	if (st == MTASTS_TXT_OK)
		CHECK(strcmp(id, rid) == 0);
	/* two copies are never one record */
	const char *two[2] = { rec, rec };
	st = mtasts_txt_select(two, 2, id, &err);
	CHECK(st == (sts ? MTASTS_TXT_INVALID : MTASTS_TXT_NONE));
	free(rec);
}

/* ------------------------------------------------------ match reference */

static int ref_match(const char *pat, const char *host)
{
	char p[2048], h[2048];
	size_t pl = strlen(pat), hl = strlen(host);
	if (pl >= sizeof(p) || hl >= sizeof(h))
		return -1;      /* not compared */
	for (size_t i = 0; i <= pl; i++)
		p[i] = (char)low((unsigned char)pat[i]);
	for (size_t i = 0; i <= hl; i++)
		h[i] = (char)low((unsigned char)host[i]);
	if (pl > 0 && p[pl - 1] == '.')
		p[--pl] = '\0';
	if (hl > 0 && h[hl - 1] == '.')
		h[--hl] = '\0';
	if (pl == 0 || hl == 0 || strchr(h, '*') != NULL ||
	    strstr(h, "..") != NULL || h[0] == '.')
		return 0;
	if (strncmp(p, "*.", 2) == 0) {
		const char *dot = strchr(h, '.');
		return pl > 2 && dot != NULL && dot != h &&
		       strcmp(dot + 1, p + 2) == 0;
	}
	return strcmp(p, h) == 0;
}

static void fuzz_match(const uint8_t *s, size_t n)
{
	char *buf = malloc(n + 2);
	CHECK(buf != NULL);
	memcpy(buf, s, n);
	buf[n] = '\0';
	buf[n + 1] = '\0';
	const char *pat = buf;
	const char *host = buf + strlen(buf) + 1;
	if (host > buf + n)
		host = buf + n;
	int want = ref_match(pat, host);
	int got = mtasts_pattern_match(pat, host);
	if (want >= 0)
		CHECK(got == want);
	for (char *c = buf; *c != '\0'; c++) {
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 32);
		else if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	}
	CHECK(mtasts_pattern_match(pat, host) == got);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_policy(data + 1, size - 1);
		break;
	case 1:
		fuzz_txt(data + 1, size - 1);
		break;
	default:
		fuzz_match(data + 1, size - 1);
		break;
	}
	return 0;
}
