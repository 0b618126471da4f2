/*
 * fuzz-maps.c — libFuzzer target for the mapping engine (src/maps): the
 * table-file parser (maps_table_parse) and the lookup key derivation
 * (maps_keys, maps_test and the lookups behind it).
 *
 * Input: byte 0 picks the table kind (bits 0-2, modulo 5), subdomain
 * matching (bit 3) and small alias limits (bit 4: fan-out 3, depth 3);
 * the rest is a table file, optionally followed by "\n%%\n" and queries,
 * one per line.
 *
 * Properties (abort() on violation):
 *  - a refused file names a line that exists (1 <= N <= lines) and the
 *    table: "fuzz, line N: ...";
 *  - an accepted file has at most one entry per line; every key is
 *    1..MAPS_KEY_MAX bytes, lower case, without blanks or controls, on a
 *    line that exists; values have no controls but TAB;
 *  - the entries printed back as "KEY VALUE" lines parse to the same
 *    entries (key, value and kind of key);
 *  - each string key looked up as a query is found, as itself (the first
 *    key form of a query is the query);
 *  - for every query and key: the keys derived are lower case, 1..
 *    MAPS_KEY_MAX bytes, and not more than the query's length allows;
 *    maps_test succeeds and says "not found" exactly when nothing
 *    matched; a matched key is one of the table's; the query in upper
 *    case finds the same entry with the same result, case aside;
 *  - a virtual expansion that succeeds gives 1..fan-out recipients, no
 *    two equal (case-folded), each a DID or an address; one that fails
 *    leaves no list;
 *  - maps_entry_check agrees with a one-line table.
 */
#include "maps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T "fuzz-maps"
#define CHECK_MAX 256   /* entries and queries checked one by one */

static void fail(const char *what)
{
	fprintf(stderr, "%s: property violated: %s\n", T, what);
	abort();
}

static char lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool fold_eq(const char *a, const char *b)
{
	for (; *a != '\0' && lc(*a) == lc(*b); a++, b++)
		;
	return *a == '\0' && *b == '\0';
}

static bool has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

typedef struct keyck {
	size_t n, qlen;
} keyck;

static bool key_cb(const char *key, size_t len, maps_form form, void *ctx)
{
	keyck *k = ctx;
	(void)form;
	if (len == 0 || len > MAPS_KEY_MAX || strlen(key) != len)
		fail("derived key length");
	for (size_t i = 0; i < len; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			fail("derived key not lower case");
	if (++k->n > 2 * k->qlen + 8)
		fail("too many derived keys");
	return false;
}

static bool is_table_key(const maps_table *t, const char *key)
{
	maps_match m;
	for (size_t i = 0; maps_table_entry(t, i, &m); i++)
		if (m.key == key)
			return true;
	return false;
}

static void check_query(const maps_table *t, const char *q)
{
	size_t ql = strlen(q);
	if (ql > MAPS_LINE_MAX)
		return;
	keyck k = { .qlen = ql };
	maps_keys(maps_table_kind(t), maps_table_options(t), q, key_cb, &k);

	maps_test_result r;
	if (maps_test(t, q, &r) != 0)
		fail("maps_test refused a query of a valid length");
	if (strnlen(r.result, sizeof(r.result)) == sizeof(r.result) ||
	    r.result[0] == '\0')
		fail("result text");
	if (r.found != (strcmp(r.result, "not found") != 0))
		fail("found disagrees with the text");
	if (r.found && (r.match.key == NULL || !is_table_key(t, r.match.key)))
		fail("matched key is not a key of the table");

	/* case-insensitive: the same entry, the same result */
	char *up = malloc(ql + 1);
	if (up == NULL)
		abort();
	for (size_t i = 0; i <= ql; i++)
		up[i] = (q[i] >= 'a' && q[i] <= 'z') ? (char)(q[i] - 32) : q[i];
	maps_test_result r2;
	if (maps_test(t, up, &r2) != 0)
		fail("maps_test refused the upper-case query");
	if (r2.found != r.found || r2.match.key != r.match.key ||
	    !fold_eq(r.result, r2.result))
		fail("upper case gives another result");
	free(up);

	if (maps_table_kind(t) == MAPS_VIRTUAL && q[0] != '\0') {
		maps_rcpts *rc = NULL;
		maps_error err;
		maps_status s = maps_virtual_expand(t, q, &rc, &err);
		if (s != MAPS_OK) {
			if (rc != NULL || err.text[0] == '\0')
				fail("failed expansion left a list or no error");
			return;
		}
		const maps_options *o = maps_table_options(t);
		if (rc->n == 0 || rc->n > o->alias_fanout)
			fail("recipient count");
		if (!rc->changed && (rc->n != 1 || strcmp(rc->v[0], q) != 0))
			fail("unchanged expansion is not the input");
		for (size_t i = 0; i < rc->n && i < CHECK_MAX; i++) {
			const char *a = rc->v[i];
			if (strncasecmp(a, "did:", 4) != 0 &&
			    strchr(a, '@') == NULL && strcmp(a, q) != 0)
				fail("recipient neither DID nor address");
			for (size_t j = 0; j < i; j++)
				if (fold_eq(a, rc->v[j]))
					fail("duplicate recipient");
		}
		maps_rcpts_destroy(&rc);
	}
}

/* Print the entries back as a table file. */
static char *print_table(const maps_table *t, size_t *len_r)
{
	size_t cap = 64, len = 0;
	maps_match m;
	for (size_t i = 0; maps_table_entry(t, i, &m); i++)
		cap += strlen(m.key) + strlen(m.value) + 2;
	char *s = malloc(cap);
	if (s == NULL)
		abort();
	for (size_t i = 0; maps_table_entry(t, i, &m); i++)
		len += (size_t)snprintf(s + len, cap - len, "%s %s\n", m.key,
					m.value);
	*len_r = len;
	return s;
}

static void check_table(const maps_table *t, maps_kind kind,
			const maps_options *o, size_t lines)
{
	size_t n = maps_table_count(t);
	if (n > lines)
		fail("more entries than lines");
	maps_match m;
	for (size_t i = 0; i < n; i++) {
		if (!maps_table_entry(t, i, &m))
			fail("entry missing");
		size_t kl = strlen(m.key);
		if (kl == 0 || kl > MAPS_KEY_MAX || m.line == 0 || m.line > lines)
			fail("entry key length or line");
		for (size_t c = 0; c < kl; c++)
			if ((m.key[c] >= 'A' && m.key[c] <= 'Z') ||
			    m.key[c] == ' ' || m.key[c] == '\t')
				fail("key not folded, or a blank in it");
		if (has_ctl(m.key) || has_ctl(m.value))
			fail("control character in an entry");
	}
	if (maps_table_entry(t, n, &m))
		fail("entry past the count");

	/* printed back, the same entries */
	size_t plen;
	char *text = print_table(t, &plen);
	maps_table *t2 = NULL;
	maps_error err;
	if (maps_table_parse(kind, o, "fuzz", text, plen, &t2, &err) != 0) {
		fprintf(stderr, "%s\n", err.text);
		fail("printed table does not parse");
	}
	if (maps_table_count(t2) != n)
		fail("printed table has another count");
	for (size_t i = 0; i < n; i++) {
		maps_match a, b;
		if (!maps_table_entry(t, i, &a) || !maps_table_entry(t2, i, &b))
			fail("entry missing after print");
		if (strcmp(a.key, b.key) != 0 || strcmp(a.value, b.value) != 0 ||
		    a.form != b.form)
			fail("printed entry parses to another entry");
	}
	maps_table_destroy(&t2);
	free(text);

	/* each string key finds itself; each key as a query */
	for (size_t i = 0; i < n && i < CHECK_MAX; i++) {
		maps_table_entry(t, i, &m);
		check_query(t, m.key);
		bool skip = m.form == MAPS_FORM_NETWORK || m.key[0] == '[' ||
			    (kind == MAPS_CANONICAL &&
			     strncmp(m.key, "did:", 4) == 0);
		if (skip)
			continue;
		maps_test_result r;
		if (maps_test(t, m.key, &r) != 0 || !r.found ||
		    r.match.key != m.key)
			fail("a key does not find itself");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	maps_kind kind = (maps_kind)((data[0] & 7) % MAPS_KIND_COUNT);
	maps_options o;
	maps_options_default(kind, &o);
	o.subdomains = (data[0] & 8) != 0;
	if (data[0] & 16) {
		o.alias_fanout = 3;
		o.alias_depth = 3;
	}
	const char *text = (const char *)data + 1;
	size_t len = size - 1, tlen = len;
	const char *sep = NULL;
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(text + i, "\n%%\n", 4) == 0) {
			sep = text + i;
			break;
		}
	if (sep != NULL)
		tlen = (size_t)(sep - text) + 1; /* keep the newline */

	size_t lines = 1;
	for (size_t i = 0; i < tlen; i++)
		lines += text[i] == '\n';

	maps_table *t = NULL;
	maps_error err = { 0 };
	if (maps_table_parse(kind, &o, "fuzz", text, tlen, &t, &err) != 0) {
		if (t != NULL)
			fail("table set on failure");
		if (err.line < 1 || err.line > lines ||
		    strncmp(err.text, "fuzz, line ", 11) != 0)
			fail("error does not name a line that exists");
		return 0;
	}
	check_table(t, kind, &o, lines);

	if (sep != NULL) {
		/* queries: one per line, NUL-terminated copies */
		const char *q = sep + 4, *end = text + len;
		size_t nq = 0;
		while (q <= end && nq < CHECK_MAX) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));
			const char *qe = nl != NULL ? nl : end;
			size_t ql = (size_t)(qe - q);
			char *s = malloc(ql + 1);
			if (s == NULL)
				abort();
			memcpy(s, q, ql);
			s[ql] = '\0';
			if (strlen(s) == ql) {
				check_query(t, s);
				/* the query as KEY VALUE for maps_entry_check */
				char *sp = strchr(s, ' ');
				char *tab = strchr(s, '\t');
				if (sp != NULL && (tab == NULL || tab > sp)) {
					*sp = '\0';
					maps_error e1, e2;
					maps_table *one = NULL;
					int a = maps_entry_check(kind, s, sp + 1,
								 &e1);
					*sp = ' ';
					int b = maps_table_parse(kind, NULL, "x", s,
								 ql, &one, &e2);
					maps_table_destroy(&one);
					if (s[0] != '#' && s[0] != ' ' && a != b)
						fail("entry check and a one-line "
						     "table disagree");
				}
			}
			free(s);
			nq++;
			if (nl == NULL)
				break;
			q = nl + 1;
		}
	}
	maps_table_destroy(&t);
	return 0;
}
