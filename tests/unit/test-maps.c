/*
 * test-maps.c — src/maps, the mapping engine (maps.h):
 *  - the examples of docs/maps.md: every example table is loaded from the
 *    page and every row of its example table is run through maps_test
 *    (matched key and printed result must be what the page says), also
 *    with the tables written with CRLF line ends;
 *  - file syntax (comments, blank lines, continuations, case folding) and
 *    a table of malformed files, each refused with the line it names;
 *  - limits: line lengths, key length, entry count, file size;
 *  - access_map values, the key forms and their order, clients;
 *  - networks: IPv4 and IPv6 longest prefix, against a brute-force
 *    search over random networks;
 *  - virtual expansion: loops, self-aliases, fan-out, depth, the lookup
 *    budget, diamonds; canonical both ways; transport values;
 *  - reload: a bad file leaves the old table in force.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "maps.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */
/* printf at buf[*len] within cap; a test that overflows its buffer fails. */
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= cap - *len)
		fail_msg("test buffer too small");
	*len += (size_t)w;
}

static maps_table *parse_opt(maps_kind kind, const maps_options *o,
			     const char *text)
{
	maps_table *t = NULL;
	maps_error err = { 0 };
	if (maps_table_parse(kind, o, "t", text, strlen(text), &t, &err) != 0)
		fail_msg("parse failed: %s\n--- text:\n%s", err.text, text);
	return t;
}

static maps_table *parse_ok(maps_kind kind, const char *text)
{
	return parse_opt(kind, NULL, text);
}

/* The text must be refused at line `line` with a message containing
 * `want` and naming the table "t". */
static void parse_err_n(maps_kind kind, const char *text, size_t len,
			unsigned line, const char *want)
{
	maps_table *t = NULL;
	maps_error err = { 0 };
	int r = maps_table_parse(kind, NULL, "t", text, len, &t, &err);
	if (r != -1 || t != NULL)
		fail_msg("accepted (want line %u: %s):\n%s", line, want, text);
	char prefix[64];
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "t, line %u: ", line);
	else
		snprintf(prefix, sizeof(prefix), "t: ");
	if (err.line != line || strncmp(err.text, prefix, strlen(prefix)) != 0 ||
	    strstr(err.text, want) == NULL)
		fail_msg("refused with line %u \"%s\", want line %u and \"%s\"",
			 err.line, err.text, line, want);
}

static void parse_err(maps_kind kind, const char *text, unsigned line,
		      const char *want)
{
	parse_err_n(kind, text, strlen(text), line, want);
}

static const char *test_result(const maps_table *t, const char *q,
			       maps_test_result *r)
{
	assert_int_equal(maps_test(t, q, r), 0);
	return r->result;
}

/* ------------------------------------------------------------ docs */
#define DOC_TABLES_MAX 16

typedef struct doc_table {
	char name[32];
	maps_kind kind;
	maps_options opt;
	char *text;     /* the fenced block */
	maps_table *t;
	size_t rows;
} doc_table;

static char *docs_path(void)
{
	const char *v = getenv("AMP_TEST_VECTORS");
	static char path[4096];
	assert_non_null(v);
	snprintf(path, sizeof(path), "%s/../../docs/maps.md", v);
	return path;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	/* a cell `code` is the code */
	if (n >= 2 && s[0] == '`' && s[n - 1] == '`') {
		s[n - 1] = '\0';
		s++;
	}
	return s;
}

static doc_table *doc_find(doc_table *d, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return &d[i];
	return NULL;
}

/* "<!-- example-table: NAME KIND [OPTION] -->": its words (each < n). */
static bool marker_words(const char *line, char *name, char *kind, char *opt,
			 size_t n)
{
	static const char pre[] = "<!-- example-table: ";
	char *w[3] = { name, kind, opt };
	if (strncmp(line, pre, sizeof(pre) - 1) != 0)
		return false;
	const char *p = line + sizeof(pre) - 1;
	int k = 0;
	while (*p != '\0' && k < 3) {
		while (*p == ' ')
			p++;
		size_t l = strcspn(p, " ");
		if (l == 0 || strncmp(p, "-->", 3) == 0)
			break;
		if (l >= n)
			return false;
		memcpy(w[k], p, l);
		w[k++][l] = '\0';
		p += l;
	}
	return k >= 2;
}

/* Read docs/maps.md: the example tables and the rows of the examples. */
typedef struct doc_row {
	char table[32];
	char query[512];
	char key[512];
	char result[4096];
	unsigned line;
} doc_row;

static void doc_read(doc_table *tabs, size_t *ntab, doc_row **rows_r,
		     size_t *nrows_r)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *path = docs_path();
	if (util_read_file(path, 1024 * 1024, &buf, &len) != 0)
		fail_msg("cannot read %s", path);
	doc_table *cur = NULL;
	bool in_fence = false, in_rows = false;
	size_t nrows = 0, cap = 128, text_len = 0;
	doc_row *rows = calloc(cap, sizeof(*rows));
	unsigned lineno = 0;
	assert_non_null(rows);
	char *p = (char *)buf; /* line by line; empty lines count */
	while (p != NULL && *p != '\0') {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		char *line = p;
		p = nl != NULL ? nl + 1 : NULL;
		lineno++;
		if (cur != NULL && !in_fence) {
			assert_string_equal(line, "```text");
			in_fence = true;
			cur->text = calloc(len + 1, 1);
			assert_non_null(cur->text);
			text_len = 0;
			continue;
		}
		if (in_fence) {
			if (strcmp(line, "```") == 0) {
				in_fence = false;
				cur = NULL;
				continue;
			}
			size_t l = strlen(line);
			memcpy(cur->text + text_len, line, l);
			text_len += l;
			cur->text[text_len++] = '\n';
			continue;
		}
		char name[32], kind[32], opt[32] = "";
		if (marker_words(line, name, kind, opt, sizeof(name))) {
			assert_true(*ntab < DOC_TABLES_MAX);
			cur = &tabs[(*ntab)++];
			memset(cur, 0, sizeof(*cur));
			snprintf(cur->name, sizeof(cur->name), "%s", name);
			if (!maps_kind_from_name(kind, &cur->kind))
				fail_msg("docs line %u: kind %s", lineno, kind);
			maps_options_default(cur->kind, &cur->opt);
			if (strcmp(opt, "subdomains=no") == 0)
				cur->opt.subdomains = false;
			else if (strcmp(opt, "subdomains=yes") == 0)
				cur->opt.subdomains = true;
			else if (opt[0] != '\0')
				fail_msg("docs line %u: option %s", lineno, opt);
			continue;
		}
		if (strcmp(line, "<!-- examples: begin -->") == 0) {
			in_rows = true;
			continue;
		}
		if (strcmp(line, "<!-- examples: end -->") == 0) {
			in_rows = false;
			continue;
		}
		if (!in_rows || line[0] != '|')
			continue;
		/* | table | query | matched key | result | */
		char *cells[6];
		int nc = 0;
		char *c = line + 1;
		while (nc < 6) {
			char *bar = strchr(c, '|');
			if (bar == NULL)
				break;
			*bar = '\0';
			cells[nc++] = trim(c);
			c = bar + 1;
		}
		if (nc != 4)
			fail_msg("docs line %u: %d cells", lineno, nc);
		if (strcmp(cells[0], "table") == 0 || strncmp(cells[0], "---", 3) == 0)
			continue;
		if (nrows == cap) {
			cap *= 2;
			rows = realloc(rows, cap * sizeof(*rows));
			assert_non_null(rows);
		}
		doc_row *r = &rows[nrows++];
		snprintf(r->table, sizeof(r->table), "%s", cells[0]);
		snprintf(r->query, sizeof(r->query), "%s", cells[1]);
		snprintf(r->key, sizeof(r->key), "%s", cells[2]);
		snprintf(r->result, sizeof(r->result), "%s", cells[3]);
		r->line = lineno;
	}
	assert_false(in_fence);
	assert_false(in_rows);
	free(buf);
	*rows_r = rows;
	*nrows_r = nrows;
}

/* Run every row against tables built from the example texts; when crlf,
 * the texts are written with CRLF line ends first. */
static void run_docs(bool crlf)
{
	doc_table tabs[DOC_TABLES_MAX];
	size_t ntab = 0, nrows = 0, bad = 0;
	doc_row *rows = NULL;
	doc_read(tabs, &ntab, &rows, &nrows);
	assert_true(ntab >= 5);
	assert_true(nrows >= 60);
	bool kinds[MAPS_KIND_COUNT] = { false };
	for (size_t i = 0; i < ntab; i++) {
		char *text = tabs[i].text;
		assert_non_null(text);
		size_t n = strlen(text);
		char *conv = calloc(2 * n + 1, 1);
		assert_non_null(conv);
		size_t o = 0;
		for (size_t k = 0; k < n; k++) {
			if (crlf && text[k] == '\n')
				conv[o++] = '\r';
			conv[o++] = text[k];
		}
		maps_error err;
		if (maps_table_parse(tabs[i].kind, &tabs[i].opt, tabs[i].name,
				     conv, o, &tabs[i].t, &err) != 0)
			fail_msg("docs table %s: %s", tabs[i].name, err.text);
		free(conv);
		kinds[tabs[i].kind] = true;
	}
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++)
		assert_true(kinds[k]);
	for (size_t i = 0; i < nrows; i++) {
		const doc_row *r = &rows[i];
		doc_table *d = doc_find(tabs, ntab, r->table);
		if (d == NULL)
			fail_msg("docs line %u: no table %s", r->line, r->table);
		d->rows++;
		maps_test_result tr;
		assert_int_equal(maps_test(d->t, r->query, &tr), 0);
		bool want_found = strcmp(r->key, "\xe2\x80\x94") != 0; /* — */
		bool ok = tr.found == want_found &&
			  strcmp(tr.result, r->result) == 0 &&
			  (!want_found || (tr.match.key != NULL &&
					   strcmp(tr.match.key, r->key) == 0));
		if (!ok) {
			print_error("docs/maps.md line %u: %s %s\n"
				    "  page:   key %s, result \"%s\"\n"
				    "  engine: key %s, result \"%s\"\n",
				    r->line, r->table, r->query, r->key,
				    r->result,
				    tr.found ? tr.match.key : "\xe2\x80\x94",
				    tr.result);
			bad++;
		}
	}
	for (size_t i = 0; i < ntab; i++) {
		if (tabs[i].rows == 0)
			fail_msg("docs table %s has no example rows",
				 tabs[i].name);
		maps_table_destroy(&tabs[i].t);
		free(tabs[i].text);
	}
	free(rows);
	if (bad > 0)
		fail_msg("%zu of %zu examples of docs/maps.md differ", bad,
			 nrows);
	print_message("docs/maps.md: %zu examples in %zu tables%s\n", nrows,
		      ntab, crlf ? " (CRLF)" : "");
}

static void test_docs_examples(void **state)
{
	(void)state;
	run_docs(false);
}

static void test_docs_examples_crlf(void **state)
{
	(void)state;
	run_docs(true);
}

/* ------------------------------------------------------------ syntax */
static void test_syntax(void **state)
{
	(void)state;
	maps_test_result r;
	maps_table *t = parse_ok(MAPS_ACCESS,
		"# comment\n"
		"\n"
		"   \t\n"
		"   # an indented comment is a comment, not a continuation\n"
		"Example.COM   REJECT   go\n"
		"# a comment inside a logical line\n"
		"\n"
		"\t  away   now  \n"
		"hash.example  REJECT # is not a comment here\n"
		"last.example OK");
	assert_int_equal(maps_table_count(t), 3);
	assert_string_equal(test_result(t, "x@example.com", &r),
			    "REJECT 554 5.7.1 go away   now");
	assert_int_equal(r.match.line, 5);
	assert_string_equal(r.match.key, "example.com");
	assert_string_equal(test_result(t, "hash.example", &r),
			    "REJECT 554 5.7.1 # is not a comment here");
	assert_string_equal(test_result(t, "LAST.example", &r), "OK");
	assert_int_equal(r.match.line, 10);
	/* entries are listed sorted, lines kept */
	maps_match m;
	assert_true(maps_table_entry(t, 0, &m));
	assert_string_equal(m.key, "example.com");
	assert_string_equal(m.value, "REJECT   go away   now");
	assert_false(maps_table_entry(t, 3, &m));
	maps_table_destroy(&t);
	assert_null(t);
	maps_table_destroy(&t); /* NULL is fine */

	/* empty files and files of comments are empty tables */
	t = parse_ok(MAPS_VIRTUAL, "");
	assert_int_equal(maps_table_count(t), 0);
	assert_string_equal(test_result(t, "a@b.example", &r), "not found");
	maps_table_destroy(&t);
	t = parse_ok(MAPS_TRANSPORT, "# only\n#comments\n\n");
	assert_int_equal(maps_table_count(t), 0);
	maps_table_destroy(&t);

	/* DIDs in values are folded, addresses keep their case */
	t = parse_ok(MAPS_VIRTUAL, "A@Example.com  DID:AFTERSMTP:Example.org:Bob,"
				   "Carol@Example.ORG\n");
	assert_string_equal(test_result(t, "a@EXAMPLE.com", &r),
			    "did:aftersmtp:example.org:bob, Carol@Example.ORG");
	assert_string_equal(r.match.key, "a@example.com");
	maps_table_destroy(&t);
	assert_string_equal(maps_kind_name(MAPS_CANONICAL), "canonical_maps");
	maps_kind k;
	assert_true(maps_kind_from_name("relay", &k));
	assert_int_equal(k, MAPS_RELAY_DOMAINS);
	assert_false(maps_kind_from_name("aliases", &k));
}

typedef struct bad_case {
	maps_kind kind;
	const char *text;
	unsigned line;
	const char *want;
} bad_case;

static void test_malformed(void **state)
{
	(void)state;
	static const bad_case cases[] = {
		{ MAPS_ACCESS, "example.com OK\nbad key with OKAY\n", 2,
		  "unknown action" },
		{ MAPS_ACCESS, "  leading REJECT\n", 1, "continuation line" },
		{ MAPS_ACCESS, "# c\n\nexample.com\n", 3, "missing value" },
		{ MAPS_ACCESS, "a.com OK\nb.com OK\nA.com REJECT\n", 3,
		  "duplicate key a.com (first on line 1)" },
		{ MAPS_ACCESS, "192.0.2.1/24 OK\n", 1, "bits set beyond" },
		{ MAPS_ACCESS, "0.0.0.1/0 OK\n", 1, "bits set beyond" },
		{ MAPS_ACCESS, "192.0.2.0/33 OK\n", 1,
		  "prefix length must be 0 to 32" },
		{ MAPS_ACCESS, "192.0.2.0/024 OK\n", 1, "prefix length" },
		{ MAPS_ACCESS, "192.0.2.0/ OK\n", 1, "prefix length" },
		{ MAPS_ACCESS, "2001:db8::/129 OK", 1, "0 to 128" },
		{ MAPS_ACCESS, "1.2.3 OK\n1.2.3.0/24 REJECT\n", 2,
		  "the same network as 1.2.3 (line 1)" },
		{ MAPS_ACCESS, "::ffff:1.2.3.0/120 OK\n1.2.3.0/24 OK\n", 2,
		  "the same network" },
		{ MAPS_ACCESS, "010.1.2.3 OK", 1, "not an IP" },
		{ MAPS_ACCESS, "1.2.3.4.5 OK", 1, "not an IP" },
		{ MAPS_ACCESS, "1.256 OK", 1, "not an IP" },
		{ MAPS_ACCESS, "fe80::1%eth0 OK", 1, "not an IP" },
		{ MAPS_ACCESS, "a:b:c OK", 1, "not an IP" },
		{ MAPS_ACCESS, "@example.com OK", 1, "@domain never matches" },
		{ MAPS_ACCESS, "x@example.com 550", 1,
		  "a reply code needs a text" },
		{ MAPS_ACCESS, "x@example.com 550 4.7.1 nope", 1,
		  "class differs" },
		{ MAPS_ACCESS, "x@example.com REJECT 4.7.1 nope", 1,
		  "class differs" },
		{ MAPS_ACCESS, "x@example.com DEFER 5.7.1 nope", 1,
		  "class differs" },
		{ MAPS_ACCESS, "x@example.com 250 fine", 1,
		  "reply codes are 4NN or 5NN" },
		{ MAPS_ACCESS, "x@example.com 550 5.7.1", 1, "needs a text" },
		{ MAPS_ACCESS, "x@example.com OK thanks", 1, "takes no text" },
		{ MAPS_ACCESS, "x@example.com DUNNO maybe", 1, "takes no text" },
		{ MAPS_ACCESS, "x@example.com REJECT caf\xc3\xa9", 1,
		  "printable ASCII" },
		{ MAPS_ACCESS, "x@example.com REJECT \xff", 1, "invalid UTF-8" },
		{ MAPS_ACCESS, "x@example.com REJECT \xc0\x80", 1,
		  "invalid UTF-8" },
		{ MAPS_ACCESS, "x@example.com REJECT \xed\xa0\x80", 1,
		  "invalid UTF-8" },
		{ MAPS_ACCESS, "a.com OK\nb.com\x01 OK\n", 2,
		  "control character 0x01" },
		{ MAPS_ACCESS, "a.com OK\r\nb.com OK\rc.com OK\n", 2,
		  "control character 0x0d" },
		{ MAPS_ACCESS, "a.com OK\n\x7f OK\n", 2, "control character 0x7f" },
		{ MAPS_ACCESS, "a..com OK", 1, "not an address" },
		{ MAPS_ACCESS, "a.com. OK", 1, "not an address" },
		{ MAPS_ACCESS, "x@ex ample.com OK", 1, "unknown action" },
		{ MAPS_ACCESS, "x@example.com FILTER smtp:x", 1,
		  "unknown action" },
		{ MAPS_ACCESS, "x@example.com DEFER_IF_PERMIT", 1,
		  "unknown action" },
		{ MAPS_ACCESS, "x@[300.1.1.1] OK", 1, "invalid domain" },
		{ MAPS_ACCESS, "\xef\xbb\xbf" "a.com OK", 1, "byte order mark" },
		{ MAPS_ACCESS, "a.com OK\nb.com REJECT \xef\xbb\xbf", 2,
		  "byte order mark" },
		{ MAPS_RELAY_DOMAINS, "user@example.com", 1, "not a domain" },
		{ MAPS_RELAY_DOMAINS, "ok.example\n*", 2, "not a domain" },
		{ MAPS_RELAY_DOMAINS, "192.0.2.0/24", 1, "not a domain" },
		{ MAPS_VIRTUAL, "a@example.com b@example.com, @example.org", 1,
		  "@domain is allowed only as the first" },
		{ MAPS_VIRTUAL, "a@example.com bob", 1, "not an address" },
		{ MAPS_VIRTUAL, "a@example.com ,, ,", 1, "missing value" },
		{ MAPS_VIRTUAL, "a@example.com did:aftersmtp:example..org:x", 1,
		  "DID" },
		{ MAPS_VIRTUAL, "a@example.com did:web:example.org", 1, "DID" },
		{ MAPS_VIRTUAL, "postmaster root@example.org", 1,
		  "bare user key" },
		{ MAPS_VIRTUAL, ".example.com a@example.org", 1, "not user@domain" },
		{ MAPS_VIRTUAL, "a@ a@example.org", 1, "invalid domain" },
		{ MAPS_VIRTUAL, "a@example.com a@", 1, "invalid domain" },
		{ MAPS_CANONICAL, "a@example.com b@example.com c@example.com", 1,
		  "one address or DID" },
		{ MAPS_CANONICAL, "example.com did:aftersmtp:example.com:x", 1,
		  "not user@domain or @domain" },
		{ MAPS_TRANSPORT, "example.com uucp:foo", 1, "unknown transport" },
		{ MAPS_TRANSPORT, "example.com smtp:[host:25", 1, "no ']'" },
		{ MAPS_TRANSPORT, "example.com smtp:[host]x", 1, "expected :PORT" },
		{ MAPS_TRANSPORT, "example.com smtp:host:0", 1, "1 to 65535" },
		{ MAPS_TRANSPORT, "example.com smtp:host:025", 1, "1 to 65535" },
		{ MAPS_TRANSPORT, "example.com smtp:host:65536", 1, "1 to 65535" },
		{ MAPS_TRANSPORT, "example.com smtp:host:smtp", 1, "1 to 65535" },
		{ MAPS_TRANSPORT, "example.com smtp:ho st", 1, "character outside" },
		{ MAPS_TRANSPORT, "example.com smtp:[]", 1, "empty" },
		{ MAPS_TRANSPORT, "example.com error:caf\xc3\xa9", 1,
		  "printable ASCII" },
		{ MAPS_TRANSPORT, "@example.com smtp:", 1, "not a domain" },
		{ MAPS_TRANSPORT, "a.example smtp:\nb.example amp:\n"
				  "A.example :\n", 3, "duplicate key a.example" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_err(cases[i].kind, cases[i].text, cases[i].line,
			  cases[i].want);
	/* a NUL byte on line 2 */
	static const char nul[] = "a.com OK\nb.com O\0K\n";
	parse_err_n(MAPS_ACCESS, nul, sizeof(nul) - 1, 2, "NUL byte");
	/* a continuation across comments belongs to the line it continues,
	 * and an error in the logical line names its first line */
	parse_err(MAPS_ACCESS, "a.com OK\nb.com REJECT\n# c\n\n  x\n"
			       "c.com OK thanks\n  more\n",
		  6, "takes no text");
	parse_err(MAPS_ACCESS, "a.com OK\nb.com\n# c\n  OK\nc.com OK\n"
			       "d.com\n",
		  6, "missing value");
	/* relay_domains: the value is optional and free */
	maps_table *t = parse_ok(MAPS_RELAY_DOMAINS,
				 "a.example\nb.example anything at all\n");
	assert_int_equal(maps_table_count(t), 2);
	maps_table_destroy(&t);
	/* the error names a file that has no name */
	maps_error err;
	assert_int_equal(maps_table_parse(MAPS_ACCESS, NULL, NULL, "x", 1, &t,
					  &err),
			 -1);
	assert_string_equal(err.text,
			    "access_map, line 1: x: missing value");
	assert_int_equal(maps_table_parse(MAPS_ACCESS, NULL, "n", NULL, 3, &t,
					  &err),
			 -1);
	maps_options o;
	maps_options_default(MAPS_VIRTUAL, &o);
	o.alias_fanout = 0;
	assert_int_equal(maps_table_parse(MAPS_VIRTUAL, &o, "n", "", 0, &t,
					  &err),
			 -1);
	assert_null(t);
	assert_int_equal(maps_table_parse((maps_kind)9, NULL, "n", "", 0, &t,
					  &err),
			 -1);
}

/* ------------------------------------------------------------ limits */
static void test_limits(void **state)
{
	(void)state;
	size_t big = 2 * MAPS_LINE_MAX + 100;
	char *text = calloc(big + 64, 1);
	assert_non_null(text);

	/* a physical line of MAPS_LINE_MAX bytes is fine, one more is not */
	snprintf(text, big, "a.example REJECT ");
	size_t n = strlen(text);
	memset(text + n, 'x', MAPS_LINE_MAX - n);
	text[MAPS_LINE_MAX] = '\0';
	parse_err(MAPS_ACCESS, text, 1, "text longer than 400 bytes");
	memcpy(text, "ok.example\n", 11);
	snprintf(text, big, "ok.example OK\nb.example REJECT ");
	n = strlen(text);
	memset(text + n, 'x', 14 + MAPS_LINE_MAX + 1 - n);
	text[14 + MAPS_LINE_MAX + 1] = '\0';
	parse_err(MAPS_ACCESS, text, 2, "longer than 4096 bytes");

	/* continuations past MAPS_LINE_MAX: named by the first line */
	size_t tl = 0;
	appendf(text, big, &tl, "x.example\n");
	for (int i = 0; i < 60; i++)
		appendf(text, big, &tl, "  %070d\n", i);
	parse_err(MAPS_RELAY_DOMAINS, text, 1,
		  "logical line longer than 4096 bytes");

	/* keys of MAPS_KEY_MAX bytes, and one more */
	memset(text, 0, big);
	memset(text, 'a', MAPS_KEY_MAX - 12);
	memcpy(text + MAPS_KEY_MAX - 12, "@example.com OK", 15);
	maps_table *t = parse_ok(MAPS_ACCESS, text);
	maps_access a;
	text[MAPS_KEY_MAX] = '\0';
	text[0] = 'A';
	assert_true(maps_access_address(t, text, &a, NULL));
	assert_int_equal(a.action, MAPS_ACT_OK);
	maps_table_destroy(&t);
	memset(text, 0, big);
	for (size_t i = 0; i < 8; i++) {
		memset(text + i * 64, 'a', 63);
		text[i * 64 + 63] = '.';
	}
	memcpy(text + 8 * 64, "x OK", 5);
	parse_err(MAPS_ACCESS, text, 1, "key longer than 512 bytes");
	/* a lookup longer than any key matches nothing */
	t = parse_ok(MAPS_ACCESS, "example.com REJECT\n");
	memset(text, 'a', 600);
	memcpy(text + 600, "@example.com", 13);
	assert_true(maps_access_address(t, text, &a, NULL)); /* domain */
	text[600] = '\0';
	assert_false(maps_access_domain(t, text, &a, NULL));
	maps_table_destroy(&t);
	free(text);

	/* entries: MAPS_ENTRIES_MAX + 1 is refused at its line */
	size_t cap = (size_t)(MAPS_ENTRIES_MAX + 1) * 12 + 16, len = 0;
	char *many = malloc(cap);
	assert_non_null(many);
	for (unsigned i = 0; i <= MAPS_ENTRIES_MAX; i++)
		len += (size_t)snprintf(many + len, cap - len, "d%u.x\n", i);
	char want[64];
	snprintf(want, sizeof(want), "more than %u entries", MAPS_ENTRIES_MAX);
	parse_err_n(MAPS_RELAY_DOMAINS, many, len, MAPS_ENTRIES_MAX + 1, want);
	/* 200,000 entries load and are all found */
	size_t n200 = 0;
	len = 0;
	for (unsigned i = 0; i < 200000; i++, n200++)
		len += (size_t)snprintf(many + len, cap - len,
					"u%u@d%u.example did:aftersmtp:d.example:u%u\n",
					i, i % 97, i);
	maps_error err;
	t = NULL;
	assert_int_equal(maps_table_parse(MAPS_CANONICAL, NULL, "big", many, len,
					  &t, &err),
			 0);
	assert_int_equal(maps_table_count(t), n200);
	for (unsigned i = 0; i < 200000; i += 997) {
		char q[64], out[MAPS_ADDR_MAX + 1], w[64];
		snprintf(q, sizeof(q), "U%u@D%u.example", i, i % 97);
		snprintf(w, sizeof(w), "did:aftersmtp:d.example:u%u", i);
		assert_int_equal(maps_canonical_forward(t, q, out, sizeof(out),
							NULL, &err),
				 1);
		assert_string_equal(out, w);
		assert_int_equal(maps_canonical_reverse(t, w, out, sizeof(out),
							NULL),
				 1);
		snprintf(w, sizeof(w), "u%u@d%u.example", i, i % 97);
		assert_string_equal(out, w);
	}
	maps_table_destroy(&t);
	free(many);

	/* the file size is checked before anything is read */
	char *huge = malloc((size_t)MAPS_FILE_MAX + 1);
	assert_non_null(huge);
	parse_err_n(MAPS_ACCESS, huge, (size_t)MAPS_FILE_MAX + 1, 0,
		    "larger than");
	free(huge);
}

/* ------------------------------------------------------------ access */
typedef struct access_case {
	const char *value;
	maps_action action;
	unsigned code;
	const char *dsn;
	const char *text;
} access_case;

static void test_access_values(void **state)
{
	(void)state;
	static const access_case ok[] = {
		{ "OK", MAPS_ACT_OK, 0, "", "" },
		{ "ok", MAPS_ACT_OK, 0, "", "" },
		{ "  Ok  ", MAPS_ACT_OK, 0, "", "" },
		{ "1234", MAPS_ACT_OK, 0, "", "" },
		{ "250", MAPS_ACT_OK, 0, "", "" },
		{ "4", MAPS_ACT_OK, 0, "", "" },
		{ "REJECT", MAPS_ACT_REJECT, 554, "5.7.1", "" },
		{ "reject go away", MAPS_ACT_REJECT, 554, "5.7.1", "go away" },
		{ "REJECT 5.7.27 null MX", MAPS_ACT_REJECT, 554, "5.7.27",
		  "null MX" },
		{ "REJECT 5.7.1000 x", MAPS_ACT_REJECT, 554, "5.7.1", "5.7.1000 x" },
		{ "REJECT 5.7", MAPS_ACT_REJECT, 554, "5.7.1", "5.7" },
		{ "DEFER", MAPS_ACT_DEFER, 450, "4.7.1", "" },
		{ "DEFER 4.3.2 later", MAPS_ACT_DEFER, 450, "4.3.2", "later" },
		{ "550 no", MAPS_ACT_REJECT, 550, "5.7.1", "no" },
		{ "550 5.1.1 no such user", MAPS_ACT_REJECT, 550, "5.1.1",
		  "no such user" },
		{ "421 4.7.0 bye", MAPS_ACT_DEFER, 421, "4.7.0", "bye" },
		{ "521 5.7.0 bye", MAPS_ACT_REJECT, 521, "5.7.0", "bye" },
		{ "451\tlater", MAPS_ACT_DEFER, 451, "4.7.1", "later" },
		{ "DISCARD", MAPS_ACT_DISCARD, 0, "", "" },
		{ "DISCARD 5.7.1 spam", MAPS_ACT_DISCARD, 0, "", "5.7.1 spam" },
		{ "HOLD review me", MAPS_ACT_HOLD, 0, "", "review me" },
		{ "DUNNO", MAPS_ACT_DUNNO, 0, "", "" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		maps_access a;
		const char *why = NULL;
		if (maps_access_parse(ok[i].value, &a, &why) != 0)
			fail_msg("\"%s\": %s", ok[i].value, why);
		if (a.action != ok[i].action || a.code != ok[i].code ||
		    strcmp(a.dsn, ok[i].dsn) != 0 ||
		    strcmp(a.text, ok[i].text) != 0)
			fail_msg("\"%s\": %s %u \"%s\" \"%s\"", ok[i].value,
				 maps_action_name(a.action), a.code, a.dsn,
				 a.text);
	}
	static const char *bad[] = {
		"", "   ", "OKAY", "OK fine", "550", "550 ", "450", "550 4.7.1 x",
		"250 x", "600 x", "55 x", "5500 x", "REJECT 4.7.1 x",
		"DEFER 5.7.1 x", "WARN x", "permit", "REJECT \x01",
		"DUNNO x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		maps_access a;
		const char *why = NULL;
		if (maps_access_parse(bad[i], &a, &why) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(why);
		assert_int_equal(a.action, MAPS_ACT_NONE);
	}
	maps_access a;
	char longtext[600] = "REJECT ";
	memset(longtext + 7, 'x', 400);
	assert_int_equal(maps_access_parse(longtext, &a, NULL), 0);
	assert_int_equal(strlen(a.text), 400);
	longtext[407] = 'x';
	assert_int_equal(maps_access_parse(longtext, &a, NULL), -1);
	assert_string_equal(maps_action_name(MAPS_ACT_HOLD), "HOLD");
}

typedef struct key_list {
	char keys[32][MAPS_KEY_MAX + 16];
	size_t n;
	size_t stop_after;
} key_list;

static bool collect(const char *key, size_t len, maps_form form, void *ctx)
{
	key_list *l = ctx;
	assert_int_equal(strlen(key), len);
	assert_true(l->n < 32);
	snprintf(l->keys[l->n++], sizeof(l->keys[0]), "%s %s", key,
		 maps_form_name(form));
	return l->stop_after != 0 && l->n == l->stop_after;
}

static void expect_keys(maps_kind kind, bool subdomains, const char *q,
			const char *const *want)
{
	key_list l = { .n = 0 };
	maps_options o;
	maps_options_default(kind, &o);
	o.subdomains = subdomains;
	maps_keys(kind, &o, q, collect, &l);
	size_t n = 0;
	while (want[n] != NULL)
		n++;
	bool same = l.n == n;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(l.keys[i], want[i]) == 0;
	if (!same) {
		for (size_t i = 0; i < l.n; i++)
			print_error("  got  %s\n", l.keys[i]);
		for (size_t i = 0; i < n; i++)
			print_error("  want %s\n", want[i]);
		fail_msg("keys of %s %s differ", maps_kind_name(kind), q);
	}
}

static void test_keys(void **state)
{
	(void)state;
	expect_keys(MAPS_ACCESS, true, "User@A.B.example.COM",
		    (const char *const[]){ "user@a.b.example.com user@domain",
					   "a.b.example.com domain",
					   "b.example.com parent domain",
					   ".b.example.com .domain",
					   "example.com parent domain",
					   ".example.com .domain",
					   "com parent domain", ".com .domain",
					   "user@ user@", NULL });
	expect_keys(MAPS_ACCESS, false, "user@a.example",
		    (const char *const[]){ "user@a.example user@domain",
					   "a.example domain",
					   ".example .domain", "user@ user@",
					   NULL });
	expect_keys(MAPS_ACCESS, true, "",
		    (const char *const[]){ "<> <>", NULL });
	expect_keys(MAPS_ACCESS, true, "u%v!w@[192.0.2.1]",
		    (const char *const[]){ "u%v!w@[192.0.2.1] user@domain",
					   "[192.0.2.1] domain",
					   "u%v!w@ user@", NULL });
	expect_keys(MAPS_ACCESS, true, "\"a@b\"@x.example",
		    (const char *const[]){ "\"a@b\"@x.example user@domain",
					   "x.example domain",
					   "example parent domain",
					   ".example .domain", "\"a@b\"@ user@",
					   NULL });
	expect_keys(MAPS_ACCESS, false, "host.example",
		    (const char *const[]){ "host.example domain",
					   ".example .domain", NULL });
	expect_keys(MAPS_VIRTUAL, false, "U@Ex.com",
		    (const char *const[]){ "u@ex.com user@domain",
					   "@ex.com @domain", NULL });
	expect_keys(MAPS_CANONICAL, false, "@ex.com",
		    (const char *const[]){ "@ex.com @domain", NULL });
	expect_keys(MAPS_VIRTUAL, false, "ex.com",
		    (const char *const[]){ "ex.com domain", NULL });
	expect_keys(MAPS_CANONICAL, false, "ex.com",
		    (const char *const[]){ NULL });
	expect_keys(MAPS_TRANSPORT, false, "u@a.b",
		    (const char *const[]){ "u@a.b user@domain", "a.b domain",
					   ".b .domain", "* *", NULL });
	expect_keys(MAPS_TRANSPORT, true, "a.b",
		    (const char *const[]){ "a.b domain", "b parent domain",
					   ".b .domain", "* *", NULL });
	expect_keys(MAPS_RELAY_DOMAINS, true, "user@a.b",
		    (const char *const[]){ "a.b domain", "b parent domain",
					   ".b .domain", NULL });
	/* stopping early */
	key_list l = { .stop_after = 2 };
	maps_keys(MAPS_ACCESS, NULL, "u@a.b.c", collect, &l);
	assert_int_equal(l.n, 2);
	l = (key_list){ .n = 0 };
	maps_keys(MAPS_ACCESS, NULL, NULL, collect, &l);
	assert_int_equal(l.n, 0);
}

static void test_access_lookups(void **state)
{
	(void)state;
	maps_access a;
	maps_match m;
	maps_table *t = parse_ok(MAPS_ACCESS,
		"host.example DUNNO\n"
		"192.0.2.1 REJECT\n"
		"postmaster@ OK\n"
		"postmaster 550 5.1.1 no\n"
		"[192.0.2.9] HOLD literal\n");
	/* a name's DUNNO ends the search: the address is not looked up */
	assert_true(maps_access_client(t, "host.example", "192.0.2.1", &a, &m));
	assert_int_equal(a.action, MAPS_ACT_DUNNO);
	assert_int_equal(m.form, MAPS_FORM_DOMAIN);
	assert_true(maps_access_client(t, "other.example", "192.0.2.1", &a, &m));
	assert_int_equal(a.action, MAPS_ACT_REJECT);
	assert_int_equal(m.form, MAPS_FORM_NETWORK);
	assert_true(maps_access_client(t, "UNKNOWN", "192.0.2.1", &a, &m));
	assert_true(maps_access_client(t, NULL, "192.0.2.1", &a, &m));
	assert_false(maps_access_client(t, NULL, "192.0.2.2", &a, &m));
	assert_int_equal(a.action, MAPS_ACT_NONE);
	assert_null(m.key);
	assert_false(maps_access_client(t, NULL, "not an ip", &a, &m));
	assert_false(maps_access_client(t, NULL, NULL, &a, &m));
	/* an address without a domain: the whole, then user@ */
	assert_true(maps_access_address(t, "Postmaster", &a, &m));
	assert_int_equal(a.code, 550);
	assert_int_equal(m.form, MAPS_FORM_ADDRESS);
	assert_true(maps_access_address(t, "postmaster@x.example", &a, &m));
	assert_int_equal(a.action, MAPS_ACT_OK);
	assert_int_equal(m.form, MAPS_FORM_LOCALPART);
	assert_false(maps_access_address(t, "", &a, &m));
	/* a domain literal is a domain, not a network */
	assert_true(maps_access_address(t, "u@[192.0.2.9]", &a, &m));
	assert_int_equal(a.action, MAPS_ACT_HOLD);
	assert_false(maps_access_client(t, NULL, "192.0.2.9", &a, &m));
	/* wrong uses */
	assert_false(maps_access_domain(t, "a@b", &a, &m));
	assert_false(maps_access_domain(t, "", &a, &m));
	assert_false(maps_access_address(NULL, "x", &a, &m));
	maps_table *v = parse_ok(MAPS_VIRTUAL, "");
	assert_false(maps_access_address(v, "x@y.z", &a, &m));
	assert_false(maps_relay_domain(v, "y.z", &m));
	maps_transport tr;
	assert_false(maps_transport_lookup(v, "y.z", &tr, &m));
	maps_table_destroy(&v);
	maps_table_destroy(&t);
}

/* ------------------------------------------------------------ CIDR */
static void expect_net(const maps_table *t, const char *ip, const char *key)
{
	maps_match m;
	bool found = maps_cidr_lookup(t, ip, &m);
	if (key == NULL) {
		if (found)
			fail_msg("%s matched %s", ip != NULL ? ip : "(null)",
				 m.key);
		return;
	}
	if (!found)
		fail_msg("%s: no match, want %s", ip, key);
	if (strcmp(m.key, key) != 0)
		fail_msg("%s matched %s, want %s", ip, m.key, key);
	assert_int_equal(m.form, MAPS_FORM_NETWORK);
}

static const char *cidr_lines[] = {
	"10.0.0.0/8 OK", "10.1.0.0/16 OK", "10.1.2.0/24 OK", "10.1.2.3 OK",
	"0.0.0.0/0 OK", "10.1.2.128/25 OK", "11 OK", "12.34 OK",
	"::/0 OK", "2001:db8::/32 OK", "2001:db8:abcd::/48 OK",
	"2001:db8:abcd:12::/64 OK", "2001:db8:abcd:12::1 OK",
	"[2001:db8:ffff::]/48 OK", "::ffff:10.9.0.0/112 OK",
	"2001:DB8:AAAA::/48 OK",
};

static void test_cidr(void **state)
{
	(void)state;
	size_t n = sizeof(cidr_lines) / sizeof(cidr_lines[0]);
	char fwd[2048] = "", rev[2048] = "";
	size_t fl = 0, rl = 0;
	for (size_t i = 0; i < n; i++) {
		appendf(fwd, sizeof(fwd), &fl, "%s\n", cidr_lines[i]);
		appendf(rev, sizeof(rev), &rl, "%s\n", cidr_lines[n - 1 - i]);
	}
	/* the order of the lines does not matter */
	for (int pass = 0; pass < 2; pass++) {
		maps_table *t = parse_ok(MAPS_ACCESS, pass == 0 ? fwd : rev);
		assert_int_equal(maps_table_count(t), n);
		expect_net(t, "10.1.2.3", "10.1.2.3");
		expect_net(t, "[10.1.2.3]", "10.1.2.3");
		expect_net(t, "::ffff:10.1.2.3", "10.1.2.3");
		expect_net(t, "[IPv6:::ffff:10.1.2.3]", "10.1.2.3");
		expect_net(t, "10.1.2.4", "10.1.2.0/24");
		expect_net(t, "10.1.2.200", "10.1.2.128/25");
		expect_net(t, "10.1.3.1", "10.1.0.0/16");
		expect_net(t, "10.2.0.0", "10.0.0.0/8");
		expect_net(t, "11.255.0.1", "11");
		expect_net(t, "12.34.56.78", "12.34");
		expect_net(t, "12.35.0.1", "0.0.0.0/0");
		expect_net(t, "10.9.200.1", "::ffff:10.9.0.0/112");
		expect_net(t, "255.255.255.255", "0.0.0.0/0");
		expect_net(t, "2001:db8:abcd:12::1", "2001:db8:abcd:12::1");
		expect_net(t, "2001:db8:abcd:12::2", "2001:db8:abcd:12::/64");
		expect_net(t, "2001:db8:abcd:13::1", "2001:db8:abcd::/48");
		expect_net(t, "2001:db8:1::1", "2001:db8::/32");
		expect_net(t, "2001:db8:ffff:1::1", "[2001:db8:ffff::]/48");
		expect_net(t, "2001:DB8:aaaa::5", "2001:db8:aaaa::/48");
		expect_net(t, "[IPv6:2001:db8:1::1]", "2001:db8::/32");
		expect_net(t, "2001:db9::1", "::/0");
		expect_net(t, "::", "::/0");
		expect_net(t, "10.1.2", NULL);
		expect_net(t, "bogus", NULL);
		expect_net(t, "", NULL);
		expect_net(t, "fe80::1%eth0", NULL);
		expect_net(t, "[10.1.2.3", NULL);
		expect_net(t, NULL, NULL);
		maps_table_destroy(&t);
	}
	/* no default routes: misses */
	maps_table *t = parse_ok(MAPS_ACCESS, "192.0.2.0/24 OK\n2001:db8::/32 OK\n");
	expect_net(t, "192.0.3.1", NULL);
	expect_net(t, "2001:db9::", NULL);
	expect_net(t, "::ffff:192.0.2.7", "192.0.2.0/24");
	maps_table_destroy(&t);
	uint8_t a[16];
	int fam;
	assert_true(maps_ip_parse("::ffff:192.0.2.7", a, &fam));
	assert_int_equal(fam, 4);
	assert_int_equal(a[0], 192);
	assert_true(maps_ip_parse("2001:db8::1", a, &fam));
	assert_int_equal(fam, 6);
	assert_false(maps_ip_parse("2001:db8::1/64", a, &fam));
}

/* Random networks against a brute-force longest-prefix search. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

typedef struct rnet {
	uint8_t a[16];
	int fam;
	unsigned prefix;
	char key[80];
} rnet;

static bool in_net(const uint8_t *a, int fam, const rnet *n)
{
	if (fam != n->fam)
		return false;
	for (unsigned b = 0; b < n->prefix; b++) {
		unsigned byte = b / 8, bit = 7 - b % 8;
		if (((a[byte] >> bit) & 1) != ((n->a[byte] >> bit) & 1))
			return false;
	}
	return true;
}

static void rnd_addr(uint8_t a[16], int fam)
{
	memset(a, 0, 16);
	/* few distinct top bytes, so that networks overlap */
	a[0] = fam == 4 ? (uint8_t)(10 + rnd() % 3) : 0x20;
	a[1] = (uint8_t)(rnd() % 4);
	for (int i = 2; i < (fam == 4 ? 4 : 16); i++)
		a[i] = (uint8_t)rnd();
}

static void test_cidr_random(void **state)
{
	(void)state;
	enum { NETS = 600, PROBES = 4000 };
	rnet *nets = calloc(NETS, sizeof(*nets));
	char *text = calloc(NETS, 100);
	assert_non_null(nets);
	assert_non_null(text);
	size_t nn = 0, len = 0;
	while (nn < NETS) {
		rnet *x = &nets[nn];
		x->fam = rnd() % 2 ? 4 : 6;
		unsigned max = x->fam == 4 ? 32 : 128;
		x->prefix = rnd() % (max + 1);
		if (x->fam == 6 && x->prefix == 0)
			continue; /* keep ::/0 out so misses happen */
		rnd_addr(x->a, x->fam);
		for (unsigned b = x->prefix; b < max; b++)
			x->a[b / 8] &= (uint8_t) ~(1u << (7 - b % 8));
		bool dup = false;
		for (size_t i = 0; i < nn && !dup; i++)
			dup = nets[i].fam == x->fam &&
			      nets[i].prefix == x->prefix &&
			      memcmp(nets[i].a, x->a, 16) == 0;
		if (dup)
			continue;
		char ip[INET6_ADDRSTRLEN];
		assert_non_null(inet_ntop(x->fam == 4 ? AF_INET : AF_INET6,
					  x->a, ip, sizeof(ip)));
		snprintf(x->key, sizeof(x->key), "%s/%u", ip, x->prefix);
		appendf(text, (size_t)NETS * 100, &len, "%s OK\n", x->key);
		nn++;
	}
	maps_table *t = parse_ok(MAPS_ACCESS, text);
	size_t hits = 0;
	for (int p = 0; p < PROBES; p++) {
		uint8_t a[16];
		int fam = rnd() % 2 ? 4 : 6;
		if (p % 3 == 0) { /* inside a known network */
			const rnet *x = &nets[rnd() % NETS];
			fam = x->fam;
			rnd_addr(a, fam);
			for (unsigned b = 0; b < x->prefix; b++) {
				unsigned byte = b / 8, bit = 7 - b % 8;
				a[byte] = (uint8_t)((a[byte] & ~(1u << bit)) |
						    (x->a[byte] & (1u << bit)));
			}
		} else {
			rnd_addr(a, fam);
			if (p % 3 == 1) /* anywhere */
				a[0] = (uint8_t)rnd();
		}
		const rnet *best = NULL;
		for (size_t i = 0; i < NETS; i++)
			if (in_net(a, fam, &nets[i]) &&
			    (best == NULL || nets[i].prefix > best->prefix))
				best = &nets[i];
		char ip[64];
		assert_non_null(inet_ntop(fam == 4 ? AF_INET : AF_INET6, a, ip,
					  sizeof(ip)));
		expect_net(t, ip, best != NULL ? best->key : NULL);
		hits += best != NULL;
	}
	assert_true(hits > PROBES / 3);
	assert_true(hits < PROBES);
	maps_table_destroy(&t);
	free(nets);
	free(text);
}

/* ------------------------------------------------------------ virtual */
static maps_status expand(const maps_table *t, const char *addr,
			  const char *want)
{
	maps_rcpts *r = NULL;
	maps_error err = { 0 };
	maps_status s = maps_virtual_expand(t, addr, &r, &err);
	if (s != MAPS_OK) {
		assert_null(r);
		if (want != NULL && strstr(err.text, want) == NULL)
			fail_msg("%s: %s, want %s", addr, err.text, want);
		return s;
	}
	char got[32768] = "";
	size_t gl = 0;
	for (size_t i = 0; i < r->n; i++)
		appendf(got, sizeof(got), &gl, "%s%s", i > 0 ? ", " : "",
			r->v[i]);
	if (want != NULL && strcmp(got, want) != 0)
		fail_msg("%s gave \"%s\", want \"%s\"", addr, got, want);
	maps_rcpts_destroy(&r);
	assert_null(r);
	return s;
}

static void test_virtual(void **state)
{
	(void)state;
	maps_table *t = parse_ok(MAPS_VIRTUAL,
		"a@x.example  a@x.example, b@x.example\n"
		"b@x.example  a@x.example\n"
		"l1@x.example l2@x.example\n"
		"l2@x.example l3@x.example\n"
		"l3@x.example l1@x.example\n"
		"@a.example   @b.example\n"
		"@b.example   @a.example\n"
		"@s.example   @s.example\n"
		"d@x.example  d1@x.example d2@x.example\n"
		"d1@x.example z@x.example, did:aftersmtp:x.example:z\n"
		"d2@x.example z@x.example, DID:aftersmtp:x.example:Z\n"
		"@long.example @aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
		"did@x.example did:aftersmtp:x.example:only\n"
		"c@x.example  b@x.example, did:aftersmtp:x.example:c\n");
	/* self with a way back from below: no loop (Postfix agrees), also
	 * when the way back starts above the address that lists itself */
	assert_int_equal(expand(t, "a@x.example", "a@x.example"), MAPS_OK);
	assert_int_equal(expand(t, "B@x.example", "a@x.example"), MAPS_OK);
	assert_int_equal(expand(t, "c@x.example",
				"a@x.example, did:aftersmtp:x.example:c"),
			 MAPS_OK);
	assert_int_equal(expand(t, "l1@x.example",
				"l3@x.example leads back to l1@x.example"),
			 MAPS_ERR_LOOP);
	assert_int_equal(expand(t, "l2@x.example", "alias loop"), MAPS_ERR_LOOP);
	assert_int_equal(expand(t, "u@a.example", "leads back to u@a.example"),
			 MAPS_ERR_LOOP);
	assert_int_equal(expand(t, "u@S.example", "u@S.example"), MAPS_OK);
	/* a diamond: z once, the DID once (case-folded) */
	assert_int_equal(expand(t, "d@x.example",
				"z@x.example, did:aftersmtp:x.example:z"),
			 MAPS_OK);
	assert_int_equal(expand(t, "did@x.example",
				"did:aftersmtp:x.example:only"),
			 MAPS_OK);
	/* no entry: the address itself, unchanged */
	maps_rcpts *r = NULL;
	maps_error err;
	assert_int_equal(maps_virtual_expand(t, "Nobody@x.example", &r, &err),
			 MAPS_OK);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->v[0], "Nobody@x.example");
	assert_false(r->changed);
	maps_rcpts_destroy(&r);
	assert_int_equal(maps_virtual_expand(t, "d@x.example", &r, &err), MAPS_OK);
	assert_true(r->changed);
	maps_rcpts_destroy(&r);
	/* a DID or an address without a domain as input: final */
	assert_int_equal(expand(t, "did:aftersmtp:x.example:q",
				"did:aftersmtp:x.example:q"),
			 MAPS_OK);
	assert_int_equal(expand(t, "local", "local"), MAPS_OK);
	/* a rewrite that grows past MAPS_ADDR_MAX */
	char addr[400];
	memset(addr, 'u', 300);
	memcpy(addr + 300, "@long.example", 14);
	assert_int_equal(expand(t, addr, "longer than 512"), MAPS_ERR_TOO_LONG);
	memset(addr, 'u', 399);
	addr[399] = '\0';
	char big[700];
	memset(big, 'v', 600);
	memcpy(big + 600, "@x.example", 11);
	assert_int_equal(expand(t, big, "longer than 512"), MAPS_ERR_TOO_LONG);
	assert_int_equal(expand(t, "", NULL), MAPS_ERR_INVALID);
	assert_int_equal(maps_virtual_expand(NULL, "a@b.c", &r, &err),
			 MAPS_ERR_INVALID);
	maps_match m;
	assert_true(maps_virtual_lookup(t, "x@a.example", &m));
	assert_int_equal(m.form, MAPS_FORM_CATCHALL);
	assert_false(maps_virtual_lookup(t, "a.example", &m));
	assert_false(maps_virtual_domain(t, "a.example", &m));
	assert_string_equal(maps_status_name(MAPS_ERR_LOOP), "alias loop");
	maps_table_destroy(&t);
}

static void test_virtual_limits(void **state)
{
	(void)state;
	maps_options o;
	maps_options_default(MAPS_VIRTUAL, &o);
	assert_int_equal(o.alias_fanout, MAPS_ALIAS_FANOUT_DEFAULT);
	assert_int_equal(o.alias_depth, MAPS_ALIAS_DEPTH_DEFAULT);
	assert_false(o.subdomains);

	/* fan-out: a tree of 2 x 3 leaves under limits of 5 and 6 */
	const char *tree = "a@x.example b@x.example, c@x.example\n"
			   "b@x.example d1@y.example d2@y.example d3@y.example\n"
			   "c@x.example d4@y.example d5@y.example d6@y.example\n";
	o.alias_fanout = 5;
	maps_table *t = parse_opt(MAPS_VIRTUAL, &o, tree);
	assert_int_equal(expand(t, "a@x.example", "more than 5 recipients"),
			 MAPS_ERR_FANOUT);
	maps_table_destroy(&t);
	o.alias_fanout = 6;
	t = parse_opt(MAPS_VIRTUAL, &o, tree);
	assert_int_equal(expand(t, "a@x.example",
				"d1@y.example, d2@y.example, d3@y.example, "
				"d4@y.example, d5@y.example, d6@y.example"),
			 MAPS_OK);
	maps_table_destroy(&t);

	/* the lookup budget: 11 aliases of one final address, fan-out 1,
	 * so 10 lookups at most */
	char text[64 * 1024];
	size_t len = 0;
	appendf(text, sizeof(text), &len, "root@x.example");
	for (int i = 1; i <= 11; i++)
		appendf(text, sizeof(text), &len, " m%d@x.example", i);
	appendf(text, sizeof(text), &len, "\n");
	for (int i = 1; i <= 11; i++)
		appendf(text, sizeof(text), &len, "m%d@x.example z@x.example\n",
				       i);
	o.alias_fanout = 1;
	t = parse_opt(MAPS_VIRTUAL, &o, text);
	assert_int_equal(expand(t, "root@x.example",
				"more than 10 addresses looked up"),
			 MAPS_ERR_FANOUT);
	assert_int_equal(expand(t, "m3@x.example", "z@x.example"), MAPS_OK);
	maps_table_destroy(&t);

	/* the default fan-out: 10 x 100 recipients pass, 11 x 100 do not */
	for (int lists = 10; lists <= 11; lists++) {
		len = 0;
		appendf(text, sizeof(text), &len, "all@x.example");
		for (int i = 0; i < lists; i++)
			appendf(text, sizeof(text), &len, " list%d@x.example", i);
		appendf(text, sizeof(text), &len, "\n");
		for (int i = 0; i < lists; i++) {
			appendf(text, sizeof(text), &len, "list%d@x.example", i);
			for (int k = 0; k < 100; k++)
				appendf(text, sizeof(text), &len, " u%d.%d@y.example",
						       i, k);
			appendf(text, sizeof(text), &len, "\n");
		}
		t = parse_ok(MAPS_VIRTUAL, text);
		maps_rcpts *r = NULL;
		maps_error err;
		maps_status s = maps_virtual_expand(t, "all@x.example", &r, &err);
		if (lists == 10) {
			assert_int_equal(s, MAPS_OK);
			assert_int_equal(r->n, 1000);
			assert_string_equal(r->v[999], "u9.99@y.example");
		} else {
			assert_int_equal(s, MAPS_ERR_FANOUT);
			assert_null(r);
			assert_non_null(strstr(err.text, "more than 1000 recipients"));
		}
		maps_rcpts_destroy(&r);
		maps_table_destroy(&t);
	}

	/* depth: a chain of 100 aliases passes, 101 does not */
	for (int n = 100; n <= 101; n++) {
		len = 0;
		for (int i = 0; i < n; i++)
			appendf(text, sizeof(text), &len,
				"c%d@x.example c%d@x.example\n", i,
				i + 1);
		t = parse_ok(MAPS_VIRTUAL, text);
		char want[64];
		snprintf(want, sizeof(want), "c%d@x.example", n);
		assert_int_equal(expand(t, "c0@x.example",
					n == 100 ? want : "nested deeper than 100"),
				 n == 100 ? MAPS_OK : MAPS_ERR_DEPTH);
		maps_table_destroy(&t);
	}
	o.alias_fanout = MAPS_ALIAS_FANOUT_DEFAULT;
	o.alias_depth = 2;
	t = parse_opt(MAPS_VIRTUAL, &o,
		      "a@x.example b@x.example\nb@x.example c@x.example\n"
		      "c@x.example d@x.example\n");
	assert_int_equal(expand(t, "b@x.example", "d@x.example"), MAPS_OK);
	assert_int_equal(expand(t, "a@x.example", "deeper than 2"),
			 MAPS_ERR_DEPTH);
	maps_table_destroy(&t);
}

/* ------------------------------------------------------------ canonical */
static void test_canonical(void **state)
{
	(void)state;
	char out[MAPS_ADDR_MAX + 1];
	maps_match m;
	maps_error err;
	maps_table *t = parse_ok(MAPS_CANONICAL,
		"z@x.example did:aftersmtp:x.example:team\n"
		"a@x.example did:aftersmtp:x.example:team\n"
		"self@x.example SELF@x.example\n"
		"l1@x.example l2@x.example\n"
		"l2@x.example l1@x.example\n"
		"@old.example @x.example\n"
		"@any.example did:aftersmtp:x.example:catchall\n"
		"@to.example  person@x.example\n");
	/* reverse: the first line, not the first key */
	assert_int_equal(maps_canonical_reverse(t, "did:aftersmtp:x.example:team",
						out, sizeof(out), &m),
			 1);
	assert_string_equal(out, "z@x.example");
	assert_int_equal(m.form, MAPS_FORM_REVERSE);
	assert_int_equal(m.line, 1);
	/* @old @x: the user comes back */
	assert_int_equal(maps_canonical_reverse(t, "Bob@x.example", out,
						sizeof(out), &m),
			 1);
	assert_string_equal(out, "Bob@old.example");
	/* a catch-all to a DID or an address cannot be reversed */
	assert_int_equal(maps_canonical_reverse(t,
						"did:aftersmtp:x.example:catchall",
						out, sizeof(out), &m),
			 0);
	assert_int_equal(maps_canonical_reverse(t, "person@x.example", out,
						sizeof(out), &m),
			 1);
	assert_string_equal(out, "person@old.example");
	assert_int_equal(maps_canonical_reverse(t, "nobody", out, sizeof(out),
						&m),
			 0);
	assert_int_equal(maps_canonical_reverse(t, "", out, sizeof(out), &m), 0);
	char tiny[4];
	assert_int_equal(maps_canonical_reverse(t, "did:aftersmtp:x.example:team",
						tiny, sizeof(tiny), &m),
			 MAPS_ERR_TOO_LONG);
	/* forward */
	assert_int_equal(maps_canonical_forward(t, "self@x.example", out,
						sizeof(out), &m, &err),
			 1);
	assert_string_equal(out, "SELF@x.example");
	assert_int_equal(maps_canonical_forward(t, "l1@x.example", out,
						sizeof(out), &m, &err),
			 MAPS_ERR_LOOP);
	assert_non_null(strstr(err.text, "canonical loop"));
	assert_int_equal(maps_canonical_forward(t, "q@any.example", out,
						sizeof(out), &m, &err),
			 1);
	assert_string_equal(out, "did:aftersmtp:x.example:catchall");
	assert_int_equal(m.form, MAPS_FORM_CATCHALL);
	assert_int_equal(maps_canonical_forward(t, "q@nowhere.example", out,
						sizeof(out), &m, &err),
			 0);
	assert_string_equal(out, "q@nowhere.example");
	assert_null(m.key);
	assert_int_equal(maps_canonical_forward(t, "a@x.example", tiny,
						sizeof(tiny), &m, &err),
			 MAPS_ERR_TOO_LONG);
	assert_int_equal(maps_canonical_forward(t, "", out, sizeof(out), &m,
						&err),
			 MAPS_ERR_INVALID);
	maps_test_result r;
	assert_string_equal(test_result(t, "l1@x.example", &r),
			    "error: canonical loop: l1@x.example comes back");
	assert_true(r.found);
	maps_table_destroy(&t);

	/* 10 rewrites in a row pass, 11 do not */
	char text[4096];
	for (int n = 10; n <= 11; n++) {
		size_t len = 0;
		for (int i = 0; i < n; i++)
			appendf(text, sizeof(text), &len,
				"c%d@x.example c%d@x.example\n", i,
				i + 1);
		t = parse_ok(MAPS_CANONICAL, text);
		int c = maps_canonical_forward(t, "c0@x.example", out,
					       sizeof(out), &m, &err);
		if (n == 10) {
			assert_int_equal(c, 1);
			assert_string_equal(out, "c10@x.example");
		} else {
			assert_int_equal(c, MAPS_ERR_DEPTH);
		}
		maps_table_destroy(&t);
	}
}

/* ------------------------------------------------------------ transport */
typedef struct tr_case {
	const char *value;
	const char *transport, *host;
	unsigned port;
	bool brackets;
	const char *text;
} tr_case;

static void test_transport_values(void **state)
{
	(void)state;
	static const tr_case ok[] = {
		{ "amp:node.example.org:4434", "amp", "node.example.org", 4434,
		  false, "" },
		{ "AMP:[Node.Example.org]", "amp", "node.example.org", 0, true,
		  "" },
		{ "smtp:[2001:db8::1]:25", "smtp", "2001:db8::1", 25, true, "" },
		{ "smtp:[192.0.2.1]", "smtp", "192.0.2.1", 0, true, "" },
		{ "smtp:", "smtp", "", 0, false, "" },
		{ "smtp", "smtp", "", 0, false, "" },
		{ ":", "", "", 0, false, "" },
		{ "", "", "", 0, false, "" },
		{ ":[gw.example]", "", "gw.example", 0, true, "" },
		{ ":gw.example:2525", "", "gw.example", 2525, false, "" },
		{ "error:", "error", "", 0, false, "" },
		{ "error:5.1.1 no: such user", "error", "", 0, false,
		  "5.1.1 no: such user" },
		{ "smtp:host_1.example:65535", "smtp", "host_1.example", 65535,
		  false, "" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		maps_transport r;
		const char *why = NULL;
		if (maps_transport_parse(ok[i].value, &r, &why) != 0)
			fail_msg("\"%s\": %s", ok[i].value, why);
		if (strcmp(r.transport, ok[i].transport) != 0 ||
		    strcmp(r.host, ok[i].host) != 0 || r.port != ok[i].port ||
		    r.brackets != ok[i].brackets ||
		    strcmp(r.text, ok[i].text) != 0)
			fail_msg("\"%s\": \"%s\" \"%s\" %u %d \"%s\"",
				 ok[i].value, r.transport, r.host, r.port,
				 r.brackets, r.text);
	}
	static const char *bad[] = {
		"local:", "uucp:foo", "verylongtransportname:x", "smtp:[x",
		"smtp:[x]:", "smtp:x:", "smtp:x:-1", "smtp:x:1:2", "smtp:x y",
		"smtp:[]", "smtp::25", "amp:h\xc3\xa9.example",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		maps_transport r;
		const char *why = NULL;
		if (maps_transport_parse(bad[i], &r, &why) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(why);
	}
	/* subdomain matching on: "example.com" covers the subdomains */
	maps_options o;
	maps_options_default(MAPS_TRANSPORT, &o);
	assert_false(o.subdomains);
	o.subdomains = true;
	maps_table *t = parse_opt(MAPS_TRANSPORT, &o, "example.com smtp:\n");
	maps_transport r;
	maps_match m;
	assert_true(maps_transport_lookup(t, "u@a.example.com", &r, &m));
	assert_int_equal(m.form, MAPS_FORM_PARENT);
	assert_false(maps_transport_lookup(t, "u@example.net", &r, &m));
	assert_false(maps_transport_lookup(t, "", &r, &m));
	maps_table_destroy(&t);
}

/* ------------------------------------------------------------ lists, files */
static void test_relay_list_and_entries(void **state)
{
	(void)state;
	maps_table *t = NULL;
	maps_error err;
	assert_int_equal(maps_relay_list_parse(NULL, "relay_domains",
					       " example.com, .Example.NET\tother.org,,",
					       &t, &err),
			 0);
	assert_int_equal(maps_table_count(t), 3);
	assert_true(maps_relay_domain(t, "a.example.com", NULL));
	assert_true(maps_relay_domain(t, "a.example.net", NULL));
	assert_false(maps_relay_domain(t, "example.net", NULL));
	assert_true(maps_relay_domain(t, "user@other.org", NULL));
	assert_false(maps_relay_domain(t, "", NULL));
	maps_table_destroy(&t);
	assert_int_equal(maps_relay_list_parse(NULL, "relay_domains",
					       "a.example, b@c.example", &t, &err),
			 -1);
	assert_string_equal(err.text, "relay_domains: item 2: b@c.example: not "
				      "a domain or .domain");
	assert_int_equal(err.line, 2);
	assert_int_equal(maps_relay_list_parse(NULL, "r", "a.example a.example",
					       &t, &err),
			 -1);
	assert_non_null(strstr(err.text, "duplicate key a.example (first on "
					 "item 1)"));
	assert_int_equal(maps_relay_list_parse(NULL, "r", NULL, &t, &err), 0);
	assert_int_equal(maps_table_count(t), 0);
	maps_table_destroy(&t);

	/* one entry, as `amp map add` checks it */
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "192.0.2.0/24",
					  "REJECT go", &err),
			 0);
	assert_int_equal(maps_entry_check(MAPS_VIRTUAL, "a@x.example",
					  "b@x.example, did:aftersmtp:x.example:c",
					  &err),
			 0);
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "192.0.2.1/24", "OK",
					  &err),
			 -1);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.text, "entry: 192.0.2.1/24: the address has "
				      "bits set beyond the prefix length "
				      "(write the network address)");
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "a b", "OK", &err), -1);
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "#a", "OK", &err), -1);
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "a.b", "OK\nc.d OK",
					  &err),
			 -1);
	assert_int_equal(maps_entry_check(MAPS_ACCESS, "", "OK", &err), -1);
	assert_int_equal(maps_entry_check(MAPS_TRANSPORT, "a.example",
					  "smtp:[h]:0", &err),
			 -1);
	assert_string_equal(err.text,
			    "entry: the port must be a number from 1 to 65535");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_reload(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-maps.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/access", dir);
	maps_table *t = NULL;
	maps_error err;
	assert_int_equal(maps_table_load(MAPS_ACCESS, NULL, path, &t, &err), -1);
	assert_non_null(strstr(err.text, "No such file"));
	assert_null(t);

	write_file(path, "bad.example REJECT\n");
	assert_int_equal(maps_table_load(MAPS_ACCESS, NULL, path, &t, &err), 0);
	assert_string_equal(maps_table_name(t), path);
	assert_int_equal(maps_table_kind(t), MAPS_ACCESS);
	assert_true(maps_table_options(t)->subdomains);
	maps_access a;
	assert_true(maps_access_domain(t, "mx.bad.example", &a, NULL));

	/* a bad line: the old table stays, the error names file and line */
	write_file(path, "good.example OK\n# c\nbad.example REJECT\n"
			 "worse.example BOUNCE\n");
	maps_table *before = t;
	assert_int_equal(maps_table_reload(&t, &err), -1);
	assert_ptr_equal(t, before);
	char want[512];
	snprintf(want, sizeof(want), "%s, line 4: unknown action", path);
	assert_int_equal(strncmp(err.text, want, strlen(want)), 0);
	assert_int_equal(err.line, 4);
	assert_true(maps_access_domain(t, "mx.bad.example", &a, NULL));
	assert_false(maps_access_domain(t, "good.example", &a, NULL));

	/* fixed: replaced */
	write_file(path, "good.example OK\n");
	assert_int_equal(maps_table_reload(&t, &err), 0);
	assert_false(maps_access_domain(t, "mx.bad.example", &a, NULL));
	assert_true(maps_access_domain(t, "good.example", &a, NULL));

	/* gone: the old table stays */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(maps_table_reload(&t, &err), -1);
	assert_true(maps_access_domain(t, "good.example", &a, NULL));
	maps_table_destroy(&t);

	/* a table parsed from memory has no file to reload */
	t = parse_ok(MAPS_ACCESS, "");
	assert_int_equal(maps_table_reload(&t, &err), -1);
	assert_non_null(strstr(err.text, "not loaded from a file"));
	maps_table_destroy(&t);
	assert_int_equal(maps_table_reload(&t, &err), -1);
	assert_int_equal(rmdir(dir), 0);
}

static void test_maps_test(void **state)
{
	(void)state;
	maps_test_result r;
	maps_table *t = parse_ok(MAPS_ACCESS, "example.com OK\n");
	assert_int_equal(maps_test(t, NULL, &r), -1);
	char *q = malloc(MAPS_LINE_MAX + 2);
	assert_non_null(q);
	memset(q, 'a', MAPS_LINE_MAX + 1);
	q[MAPS_LINE_MAX + 1] = '\0';
	assert_int_equal(maps_test(t, q, &r), -1);
	q[MAPS_LINE_MAX] = '\0';
	assert_int_equal(maps_test(t, q, &r), 0);
	assert_false(r.found);
	free(q);
	assert_string_equal(test_result(t, "[192.0.2.1", &r), "not found");
	assert_string_equal(test_result(t, "x[]", &r), "not found");
	assert_string_equal(test_result(t, "example.com[", &r), "not found");
	assert_string_equal(test_result(t, "example.com", &r), "OK");
	assert_int_equal(r.match.form, MAPS_FORM_DOMAIN);
	assert_string_equal(maps_form_name(r.match.form), "domain");
	maps_table_destroy(&t);
	assert_int_equal(maps_test(NULL, "x", &r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs_examples),
		cmocka_unit_test(test_docs_examples_crlf),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_access_values),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_access_lookups),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_cidr_random),
		cmocka_unit_test(test_virtual),
		cmocka_unit_test(test_virtual_limits),
		cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_transport_values),
		cmocka_unit_test(test_relay_list_and_entries),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_maps_test),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
