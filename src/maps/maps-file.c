/*
 * maps-file.c — table files: the reader of logical lines, the checks of
 * each kind's keys and values, the sorted index, and the table's life
 * (parse, load, reload, destroy, accessors).
 *
 * Reader (Postfix table syntax, as docs/maps.md "File syntax"):
 *  - lines end in LF or CRLF; a NUL, any other control character (TAB
 *    excepted), invalid UTF-8 or U+FEFF (a byte order mark) is an error;
 *  - a blank line, or one whose first non-blank character is '#', is
 *    skipped (it does not end a logical line);
 *  - a line starting with a blank continues the logical line before it,
 *    joined with one space;
 *  - KEY is the first word, VALUE the rest with blanks trimmed.
 * Limits: MAPS_FILE_MAX bytes, MAPS_LINE_MAX bytes per logical line,
 * MAPS_ENTRIES_MAX entries, MAPS_KEY_MAX bytes per key.  The first error
 * stops the parse and names its line (the logical line's first line).
 * A duplicate key is an error (Postfix warns and keeps the first).
 *
 * Memory: every key and value is copied into one pool sized from the
 * input before parsing (keys and values never grow beyond the bytes they
 * came from, plus their NULs and, for canonical_maps, a folded copy of the
 * value), so pointers into it stay valid; entries are sorted once and
 * binary-searched.
 */
#define _GNU_SOURCE /* memmem */
#include "maps-private.h"

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *maps_xcalloc(size_t n, size_t size)
{
	if (n == 0 || size == 0)
		n = size = 1;
	void *p = calloc(n, size);
	if (p == NULL) {
		fprintf(stderr, "maps: out of memory (%zu x %zu bytes)\n", n,
			size);
		abort();
	}
	return p;
}

void *maps_xreallocarray(void *p, size_t n, size_t size)
{
	if (n == 0 || size == 0)
		n = size = 1;
	if (n > SIZE_MAX / size) {
		fprintf(stderr, "maps: allocation size overflow\n");
		abort();
	}
	void *q = realloc(p, n * size);
	if (q == NULL) {
		fprintf(stderr, "maps: out of memory (%zu x %zu bytes)\n", n,
			size);
		abort();
	}
	return q;
}

char *maps_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = maps_xcalloc(n, 1);
	memcpy(d, s, n);
	return d;
}

bool maps_fold(const char *s, size_t len, char *out, size_t out_size)
{
	if (len + 1 > out_size) {
		if (out_size > 0)
			out[0] = '\0';
		return false;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = maps_lc(s[i]);
	out[len] = '\0';
	return true;
}

bool maps_fold_eq(const char *a, const char *b)
{
	for (; *a != '\0' && maps_lc(*a) == maps_lc(*b); a++, b++)
		;
	return *a == '\0' && *b == '\0';
}

void maps_error_set(maps_error *err, const char *name, unsigned line,
		    const char *fmt, ...)
{
	if (err == NULL)
		return;
	err->line = line;
	/* "NAME, line N: " with the name cut to half the space, then the
	 * reason in what is left (cut if it must be). */
	int w;
	if (line > 0)
		w = snprintf(err->text, sizeof(err->text), "%.*s, line %u: ",
			     (int)(MAPS_ERROR_TEXT / 2),
			     name != NULL ? name : "table", line);
	else
		w = snprintf(err->text, sizeof(err->text), "%.*s: ",
			     (int)(MAPS_ERROR_TEXT / 2),
			     name != NULL ? name : "table");
	if (w < 0 || (size_t)w >= sizeof(err->text))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text + w, sizeof(err->text) - (size_t)w, fmt, ap);
	va_end(ap);
}

const char *maps_kind_name(maps_kind kind)
{
	switch (kind) {
	case MAPS_ACCESS: return "access_map";
	case MAPS_RELAY_DOMAINS: return "relay_domains";
	case MAPS_VIRTUAL: return "virtual_alias_maps";
	case MAPS_CANONICAL: return "canonical_maps";
	case MAPS_TRANSPORT: return "transport_maps";
	}
	return "?";
}

bool maps_kind_from_name(const char *name, maps_kind *kind_r)
{
	static const struct {
		const char *a, *b;
		maps_kind k;
	} names[] = {
		{ "access_map", "access", MAPS_ACCESS },
		{ "relay_domains", "relay", MAPS_RELAY_DOMAINS },
		{ "virtual_alias_maps", "virtual", MAPS_VIRTUAL },
		{ "canonical_maps", "canonical", MAPS_CANONICAL },
		{ "transport_maps", "transport", MAPS_TRANSPORT },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].a) == 0 ||
		    strcmp(name, names[i].b) == 0) {
			*kind_r = names[i].k;
			return true;
		}
	return false;
}

void maps_options_default(maps_kind kind, maps_options *opt_r)
{
	*opt_r = (maps_options){
		.subdomains = kind == MAPS_ACCESS || kind == MAPS_RELAY_DOMAINS,
		.alias_fanout = MAPS_ALIAS_FANOUT_DEFAULT,
		.alias_depth = MAPS_ALIAS_DEPTH_DEFAULT,
	};
}

/* ------------------------------------------------------------ parsing */
typedef struct parse {
	maps_table *t;
	const char *name;
	bool lines;            /* errors name lines (not: an entry check) */
	const char *unit;      /* "line" or "item" */
	size_t cap_e, cap_net;
	maps_error *err;
} parse;

#define PFAIL(p, line, ...)                                                   \
	do {                                                                  \
		perr((p), (line), __VA_ARGS__);                               \
		return -1;                                                    \
	} while (0)

static void perr(parse *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void perr(parse *p, unsigned line, const char *fmt, ...)
{
	char why[MAPS_ERROR_TEXT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!p->lines || strcmp(p->unit, "line") == 0 || line == 0) {
		maps_error_set(p->err, p->name, p->lines ? line : 0, "%s", why);
	} else {
		maps_error_set(p->err, p->name, 0, "%s %u: %s", p->unit, line,
			       why);
		if (p->err != NULL)
			p->err->line = line;
	}
}

static char *pool_add(maps_table *t, const char *s, size_t len)
{
	if (t->pool_len + len + 1 > t->pool_cap) {
		/* The pool is sized from the input: running out is a bug. */
		fprintf(stderr, "maps: pool overflow (%zu + %zu > %zu)\n",
			t->pool_len, len + 1, t->pool_cap);
		abort();
	}
	char *d = t->pool + t->pool_len;
	memcpy(d, s, len);
	d[len] = '\0';
	t->pool_len += len + 1;
	return d;
}

/* Last '@' of s[0..len), or NULL. */
static const char *last_at(const char *s, size_t len)
{
	for (size_t i = len; i > 0; i--)
		if (s[i - 1] == '@')
			return s + i - 1;
	return NULL;
}

/* "domain" or ".domain" */
static bool domain_key(const char *k, size_t len, bool dot_ok)
{
	if (dot_ok && len > 1 && k[0] == '.' && k[1] != '[')
		return maps_domain_valid(k + 1, len - 1);
	return maps_domain_valid(k, len);
}

/* Check key (folded) for the table's kind.  *net_r: 1 when it is a
 * network (n filled). */
static const char *key_check(maps_kind kind, const char *k, size_t len,
			     maps_net *n, int *net_r)
{
	const char *why = NULL;
	const char *at = last_at(k, len);
	size_t ll = at != NULL ? (size_t)(at - k) : 0;
	size_t dl = at != NULL ? len - ll - 1 : 0;
	*net_r = 0;
	switch (kind) {
	case MAPS_ACCESS:
		if (strcmp(k, "<>") == 0)
			return NULL;
		if (at == NULL) {
			*net_r = maps_net_parse(k, n, &why);
			if (*net_r != 0)
				return *net_r < 0 ? why : NULL;
			return domain_key(k, len, true)
				       ? NULL
				       : "not an address, user@, domain, "
					 ".domain, IP address or network";
		}
		if (ll == 0)
			return "@domain never matches in access_map: write "
			       "the domain alone";
		if (!maps_local_valid(k, ll))
			return "invalid local part";
		if (dl > 0 && !maps_domain_valid(at + 1, dl))
			return "invalid domain";
		return NULL;
	case MAPS_RELAY_DOMAINS:
		if (at != NULL || !domain_key(k, len, true))
			return "not a domain or .domain";
		return NULL;
	case MAPS_VIRTUAL:
	case MAPS_CANONICAL:
		if (at == NULL) {
			/* A virtual alias domain; one without a dot would more
			 * likely be Postfix's bare "user" key. */
			if (kind == MAPS_VIRTUAL && memchr(k, '.', len) != NULL &&
			    maps_domain_valid(k, len))
				return NULL;
			return kind == MAPS_VIRTUAL
				       ? "not user@domain, @domain or a domain "
					 "with a dot (a bare user key is not "
					 "supported)"
				       : "not user@domain or @domain (a bare "
					 "user key is not supported)";
		}
		if (ll > 0 && !maps_local_valid(k, ll))
			return "invalid local part";
		if (!maps_domain_valid(at + 1, dl))
			return "invalid domain";
		return NULL;
	case MAPS_TRANSPORT:
		if (strcmp(k, "*") == 0)
			return NULL;
		if (at == NULL)
			return domain_key(k, len, true)
				       ? NULL
				       : "not a domain, .domain, user@domain or *";
		if (ll == 0 || !maps_local_valid(k, ll) ||
		    !maps_domain_valid(at + 1, dl))
			return "not a domain, .domain, user@domain or *";
		return NULL;
	}
	return "unknown table kind";
}

/* Normalise a list of address items (virtual, canonical) from v into out:
 * items separated by one space.  Returns the number of items, or -1 with
 * *why_r. */
static int items_norm(char *v, char *out, size_t out_size, const char **why_r)
{
	size_t o = 0;
	int count = 0;
	char *p = v;
	for (;;) {
		while (*p == ',' || maps_blank(*p))
			p++;
		if (*p == '\0')
			break;
		char *s = p;
		while (*p != '\0' && *p != ',' && !maps_blank(*p))
			p++;
		size_t len = (size_t)(p - s);
		char save = *p;
		*p = '\0';
		const char *why = maps_item_check(s, len, count == 0);
		*p = save;
		if (why != NULL) {
			*why_r = why;
			return -1;
		}
		if (o + len + 2 > out_size) {
			*why_r = "value too long";
			return -1;
		}
		if (o > 0)
			out[o++] = ' ';
		memcpy(out + o, s, len);
		o += len;
		count++;
	}
	out[o] = '\0';
	if (count == 0)
		*why_r = "missing value";
	return count > 0 ? count : -1;
}

static int add_entry(parse *p, const char *key, size_t kl, const char *val,
		     size_t vl, unsigned line)
{
	maps_table *t = p->t;
	if (t->n + t->n_net >= MAPS_ENTRIES_MAX)
		PFAIL(p, line, "more than %u entries", MAPS_ENTRIES_MAX);
	if (t->n == p->cap_e) {
		p->cap_e = p->cap_e == 0 ? 64 : p->cap_e * 2;
		t->e = maps_xreallocarray(t->e, p->cap_e, sizeof(*t->e));
	}
	maps_entry *e = &t->e[t->n++];
	e->key = pool_add(t, key, kl);
	e->value = pool_add(t, val, vl);
	e->line = line;
	return 0;
}

static int add_net(parse *p, const maps_net *n, const char *key, size_t kl,
		   const char *val, size_t vl, unsigned line)
{
	maps_table *t = p->t;
	if (t->n + t->n_net >= MAPS_ENTRIES_MAX)
		PFAIL(p, line, "more than %u entries", MAPS_ENTRIES_MAX);
	if (t->n_net == p->cap_net) {
		p->cap_net = p->cap_net == 0 ? 16 : p->cap_net * 2;
		t->net = maps_xreallocarray(t->net, p->cap_net, sizeof(*t->net));
	}
	maps_net *x = &t->net[t->n_net++];
	*x = *n;
	x->key = pool_add(t, key, kl);
	x->value = pool_add(t, val, vl);
	x->line = line;
	return 0;
}

/* One logical line (lb[0..ll), mutable, no control characters). */
static int add_line(parse *p, char *lb, size_t ll, unsigned line)
{
	maps_kind kind = p->t->kind;
	while (ll > 0 && maps_blank(lb[ll - 1]))
		ll--;
	lb[ll] = '\0';
	if (!maps_utf8_valid(lb, ll))
		PFAIL(p, line, "invalid UTF-8");
	size_t kl = 0;
	while (kl < ll && !maps_blank(lb[kl]))
		kl++;
	char *val = lb + kl;
	while (maps_blank(*val))
		val++;
	size_t vl = strlen(val);
	if (kl > MAPS_KEY_MAX)
		PFAIL(p, line, "key longer than %u bytes", MAPS_KEY_MAX);
	for (size_t i = 0; i < kl; i++)
		lb[i] = maps_lc(lb[i]);
	char save = lb[kl];
	lb[kl] = '\0';
	maps_net n;
	int is_net = 0;
	const char *why = key_check(kind, lb, kl, &n, &is_net);
	lb[kl] = save;
	if (why != NULL)
		PFAIL(p, line, "%.*s: %s", (int)(kl > 80 ? 80 : kl), lb, why);
	if (vl == 0 && kind != MAPS_RELAY_DOMAINS)
		PFAIL(p, line, "%.*s: missing value", (int)(kl > 80 ? 80 : kl),
		      lb);

	char norm[MAPS_LINE_MAX + 1];
	switch (kind) {
	case MAPS_ACCESS: {
		maps_access a;
		if (maps_access_parse(val, &a, &why) != 0)
			PFAIL(p, line, "%s", why);
		break;
	}
	case MAPS_RELAY_DOMAINS:
		break;
	case MAPS_VIRTUAL:
	case MAPS_CANONICAL: {
		if (kind == MAPS_VIRTUAL && memchr(lb, '@', kl) == NULL)
			break; /* a virtual alias domain: the value is free */
		int c = items_norm(val, norm, sizeof(norm), &why);
		if (c < 0)
			PFAIL(p, line, "%s", why);
		if (kind == MAPS_CANONICAL && c != 1)
			PFAIL(p, line, "canonical_maps takes one address or DID");
		val = norm;
		vl = strlen(norm);
		break;
	}
	case MAPS_TRANSPORT: {
		maps_transport tr;
		if (maps_transport_parse(val, &tr, &why) != 0)
			PFAIL(p, line, "%s", why);
		break;
	}
	}
	if (is_net)
		return add_net(p, &n, lb, kl, val, vl, line);
	return add_entry(p, lb, kl, val, vl, line);
}

static int entry_cmp(const void *pa, const void *pb)
{
	const maps_entry *a = pa, *b = pb;
	int c = strcmp(a->key, b->key);
	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int rev_cmp_tab(const maps_table *t, size_t i, size_t j)
{
	int c = strcmp(t->rev_key[i], t->rev_key[j]);
	if (c != 0)
		return c;
	return t->rev[i]->line < t->rev[j]->line ? -1
	       : t->rev[i]->line > t->rev[j]->line;
}

/* canonical_maps: the entries a reverse lookup can use, by folded value:
 * "user@domain  VALUE" (VALUE not @domain) and "@d1  @d2". */
static void build_reverse(maps_table *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const maps_entry *e = &t->e[i];
		if ((e->key[0] != '@') == (e->value[0] != '@'))
			n++;
	}
	if (n == 0)
		return;
	t->rev = maps_xcalloc(n, sizeof(*t->rev));
	t->rev_key = maps_xcalloc(n, sizeof(*t->rev_key));
	for (size_t i = 0; i < t->n; i++) {
		const maps_entry *e = &t->e[i];
		if ((e->key[0] != '@') != (e->value[0] != '@'))
			continue;
		size_t vl = strlen(e->value);
		char *f = pool_add(t, e->value, vl);
		for (size_t k = 0; k < vl; k++)
			f[k] = maps_lc(f[k]);
		t->rev[t->n_rev] = e;
		t->rev_key[t->n_rev++] = f;
	}
	/* insertion sort would be quadratic on big tables: sort indices */
	size_t *idx = maps_xcalloc(n, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	/* merge sort of idx by (rev_key, line) */
	size_t *tmp = maps_xcalloc(n, sizeof(*tmp));
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n;
			size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi)
				tmp[o++] = rev_cmp_tab(t, idx[a], idx[b]) <= 0
						   ? idx[a++]
						   : idx[b++];
			while (a < mid)
				tmp[o++] = idx[a++];
			while (b < hi)
				tmp[o++] = idx[b++];
		}
		memcpy(idx, tmp, n * sizeof(*idx));
	}
	const maps_entry **rev = maps_xcalloc(n, sizeof(*rev));
	const char **rk = maps_xcalloc(n, sizeof(*rk));
	for (size_t i = 0; i < n; i++) {
		rev[i] = t->rev[idx[i]];
		rk[i] = t->rev_key[idx[i]];
	}
	free(t->rev);
	free(t->rev_key);
	t->rev = rev;
	t->rev_key = rk;
	free(idx);
	free(tmp);
}

static int finish(parse *p)
{
	maps_table *t = p->t;
	if (t->n > 0)
		qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	const maps_entry *dup = NULL, *first = NULL;
	for (size_t i = 1; i < t->n; i++)
		if (strcmp(t->e[i - 1].key, t->e[i].key) == 0 &&
		    (dup == NULL || t->e[i].line < dup->line)) {
			dup = &t->e[i];
			first = &t->e[i - 1];
		}
	const maps_net *ndup = NULL, *nfirst = NULL;
	ndup = maps_net_index(t, &nfirst);
	if (dup != NULL && (ndup == NULL || dup->line < ndup->line))
		PFAIL(p, dup->line, "duplicate key %.80s (first on %s %u)",
		      dup->key, p->unit, first->line);
	if (ndup != NULL)
		PFAIL(p, ndup->line, "%.80s: the same network as %.80s (%s %u)",
		      ndup->key, nfirst->key, p->unit, nfirst->line);
	if (t->kind == MAPS_CANONICAL)
		build_reverse(t);
	return 0;
}

static int parse_text(parse *p, const char *text, size_t len)
{
	if (len > MAPS_FILE_MAX)
		PFAIL(p, 0, "larger than %u bytes", MAPS_FILE_MAX);
	size_t lines = 1;
	for (const char *q = text; (q = memchr(q, '\n', (size_t)(text + len - q)));
	     q++)
		lines++;
	maps_table *t = p->t;
	t->pool_cap = (t->kind == MAPS_CANONICAL ? 2 * len : len) +
		      4 * lines + 16;
	t->pool = maps_xcalloc(t->pool_cap, 1);

	char *lb = maps_xcalloc(MAPS_LINE_MAX + 1, 1);
	size_t ll = 0;
	unsigned lineno = 0, lstart = 0;
	bool have = false;
	int r = 0;
	const char *q = text, *end = text + len;
	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *le = nl != NULL ? nl : end;
		size_t pl = (size_t)(le - q);
		lineno++;
		if (pl > 0 && q[pl - 1] == '\r')
			pl--;
		const char *s = q;
		q = nl != NULL ? nl + 1 : end;
		if (pl > MAPS_LINE_MAX) {
			perr(p, lineno, "longer than %u bytes", MAPS_LINE_MAX);
			r = -1;
			break;
		}
		for (size_t i = 0; i < pl; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == 0 || (c < 0x20 && c != '\t') || c == 0x7f) {
				perr(p, lineno, c == 0 ? "NUL byte"
						       : "control character 0x%02x",
				     c);
				r = -1;
				break;
			}
		}
		if (r != 0)
			break;
		/* U+FEFF: invisible, and a key starting with it would not
		 * read back after a byte order mark is stripped */
		if (pl >= 3 && memmem(s, pl, "\xef\xbb\xbf", 3) != NULL) {
			perr(p, lineno, "byte order mark (U+FEFF)");
			r = -1;
			break;
		}
		size_t i = 0;
		while (i < pl && maps_blank(s[i]))
			i++;
		if (i == pl || s[i] == '#')
			continue;
		if (i > 0) {
			if (!have) {
				perr(p, lineno, "a continuation line (starting "
						"with a blank) with no line "
						"before it");
				r = -1;
				break;
			}
			size_t n = pl - i;
			if (ll + 1 + n > MAPS_LINE_MAX) {
				perr(p, lstart, "logical line longer than %u "
						"bytes",
				     MAPS_LINE_MAX);
				r = -1;
				break;
			}
			lb[ll++] = ' ';
			memcpy(lb + ll, s + i, n);
			ll += n;
			continue;
		}
		if (have && (r = add_line(p, lb, ll, lstart)) != 0)
			break;
		memcpy(lb, s, pl);
		ll = pl;
		lstart = lineno;
		have = true;
	}
	if (r == 0 && have)
		r = add_line(p, lb, ll, lstart);
	free(lb);
	if (r == 0)
		r = finish(p);
	return r;
}

static maps_table *table_new(maps_kind kind, const maps_options *opt,
			     const char *name)
{
	maps_table *t = maps_xcalloc(1, sizeof(*t));
	t->kind = kind;
	if (opt != NULL)
		t->opt = *opt;
	else
		maps_options_default(kind, &t->opt);
	t->name = maps_xstrdup(name != NULL ? name : maps_kind_name(kind));
	return t;
}

static int opt_check(maps_kind kind, const maps_options *opt, const char *name,
		     maps_error *err)
{
	if ((unsigned)kind >= MAPS_KIND_COUNT) {
		maps_error_set(err, name, 0, "unknown table kind");
		return -1;
	}
	if (opt == NULL)
		return 0;
	if (opt->alias_fanout < 1 || opt->alias_fanout > MAPS_ALIAS_FANOUT_MAX ||
	    opt->alias_depth < 1 || opt->alias_depth > MAPS_ALIAS_DEPTH_MAX) {
		maps_error_set(err, name, 0,
			       "alias fan-out must be 1..%u and depth 1..%u",
			       MAPS_ALIAS_FANOUT_MAX, MAPS_ALIAS_DEPTH_MAX);
		return -1;
	}
	return 0;
}

static int parse_into(maps_kind kind, const maps_options *opt, const char *name,
		      const char *text, size_t len, bool lines,
		      const char *unit, maps_table **t_r, maps_error *err)
{
	if (name == NULL)
		name = maps_kind_name(kind);
	if (opt_check(kind, opt, name, err) != 0)
		return -1;
	if (text == NULL && len > 0) {
		maps_error_set(err, name, 0, "no text");
		return -1;
	}
	parse p = { .t = table_new(kind, opt, name), .name = name,
		    .lines = lines, .unit = unit, .err = err };
	if (parse_text(&p, text != NULL ? text : "", len) != 0) {
		maps_table_destroy(&p.t);
		return -1;
	}
	*t_r = p.t;
	return 0;
}

int maps_table_parse(maps_kind kind, const maps_options *opt, const char *name,
		     const char *text, size_t len, maps_table **t_r,
		     maps_error *err)
{
	return parse_into(kind, opt, name, text, len, true, "line", t_r, err);
}

int maps_table_load(maps_kind kind, const maps_options *opt, const char *path,
		    maps_table **t_r, maps_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	if (path == NULL) {
		maps_error_set(err, maps_kind_name(kind), 0, "no file name");
		return -1;
	}
	if (opt_check(kind, opt, path, err) != 0)
		return -1;
	if (util_read_file(path, MAPS_FILE_MAX, &buf, &len) != 0) {
		if (errno == EFBIG)
			maps_error_set(err, path, 0, "larger than %u bytes",
				       MAPS_FILE_MAX);
		else
			maps_error_set(err, path, 0, "%s", strerror(errno));
		return -1;
	}
	maps_table *t = NULL;
	int r = maps_table_parse(kind, opt, path, (const char *)buf, len, &t,
				 err);
	free(buf);
	if (r != 0)
		return -1;
	t->path = maps_xstrdup(path);
	*t_r = t;
	return 0;
}

int maps_table_reload(maps_table **t, maps_error *err)
{
	if (t == NULL || *t == NULL) {
		maps_error_set(err, "table", 0, "no table");
		return -1;
	}
	if ((*t)->path == NULL) {
		maps_error_set(err, (*t)->name, 0, "not loaded from a file");
		return -1;
	}
	maps_table *n = NULL;
	if (maps_table_load((*t)->kind, &(*t)->opt, (*t)->path, &n, err) != 0)
		return -1;
	maps_table_destroy(t);
	*t = n;
	return 0;
}

int maps_relay_list_parse(const maps_options *opt, const char *name,
			  const char *list, maps_table **t_r, maps_error *err)
{
	if (list == NULL)
		list = "";
	size_t len = strlen(list);
	if (len > MAPS_FILE_MAX) {
		maps_error_set(err, name != NULL ? name : "relay_domains", 0,
			       "list longer than %u bytes", MAPS_FILE_MAX);
		return -1;
	}
	/* One domain per line: separators become newlines. */
	char *text = maps_xcalloc(len + 1, 1);
	size_t o = 0;
	bool sep = true;
	for (size_t i = 0; i < len; i++) {
		char c = list[i];
		if (c == ',' || maps_blank(c) || c == '\n' || c == '\r') {
			if (!sep)
				text[o++] = '\n';
			sep = true;
			continue;
		}
		text[o++] = c;
		sep = false;
	}
	int r = parse_into(MAPS_RELAY_DOMAINS, opt, name, text, o, true, "item",
			   t_r, err);
	free(text);
	return r;
}

int maps_entry_check(maps_kind kind, const char *key, const char *value,
		     maps_error *err)
{
	const char *name = "entry";
	if (key == NULL || value == NULL || key[0] == '\0') {
		maps_error_set(err, name, 0, "no key");
		return -1;
	}
	size_t kl = strlen(key), vl = strlen(value);
	for (size_t i = 0; i < kl; i++)
		if (maps_blank(key[i]) || key[i] == '\n' || key[i] == '\r') {
			maps_error_set(err, name, 0, "the key has a blank");
			return -1;
		}
	if (key[0] == '#') {
		maps_error_set(err, name, 0, "a key cannot start with '#'");
		return -1;
	}
	if (memchr(value, '\n', vl) != NULL) {
		maps_error_set(err, name, 0, "the value has a line break");
		return -1;
	}
	if (kl + 1 + vl > MAPS_LINE_MAX) {
		maps_error_set(err, name, 0, "longer than %u bytes",
			       MAPS_LINE_MAX);
		return -1;
	}
	char *line = maps_xcalloc(kl + vl + 2, 1);
	memcpy(line, key, kl);
	line[kl] = ' ';
	memcpy(line + kl + 1, value, vl);
	maps_table *t = NULL;
	int r = parse_into(kind, NULL, name, line, kl + 1 + vl, false, "line",
			   &t, err);
	free(line);
	maps_table_destroy(&t);
	return r;
}

void maps_table_destroy(maps_table **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	maps_table *t = *tp;
	free(t->name);
	free(t->path);
	free(t->pool);
	free(t->e);
	free(t->net);
	free(t->grp);
	free(t->rev);
	free(t->rev_key);
	free(t);
	*tp = NULL;
}

maps_kind maps_table_kind(const maps_table *t)
{
	return t->kind;
}

const char *maps_table_name(const maps_table *t)
{
	return t->name;
}

const maps_options *maps_table_options(const maps_table *t)
{
	return &t->opt;
}

size_t maps_table_count(const maps_table *t)
{
	return t != NULL ? t->n + t->n_net : 0;
}

bool maps_table_entry(const maps_table *t, size_t i, maps_match *m_r)
{
	if (t == NULL || i >= t->n + t->n_net)
		return false;
	if (i < t->n) {
		const maps_entry *e = &t->e[i];
		*m_r = (maps_match){ .form = MAPS_FORM_NONE, .key = e->key,
				     .value = e->value, .line = e->line };
	} else {
		const maps_net *x = &t->net[i - t->n];
		*m_r = (maps_match){ .form = MAPS_FORM_NETWORK, .key = x->key,
				     .value = x->value, .line = x->line };
	}
	return true;
}

const maps_entry *maps_find(const maps_table *t, const char *key)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->e[mid].key, key);
		if (c == 0) {
			/* duplicates are refused at load: mid is the one */
			return &t->e[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
