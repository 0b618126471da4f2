/*
 * maps.c — lookups: the key forms each table tries and their order
 * (maps_keys), access_map actions, relay_domains, virtual alias expansion,
 * canonical rewriting both ways, transport_maps, and maps_test.
 *
 * Key forms (docs/maps.md "Search order"), every key ASCII-lower-cased:
 *   address user@domain:   access:    user@domain, domain walk, user@
 *                          virtual, canonical: user@domain, @domain
 *                          transport: user@domain, domain walk, *
 *   domain walk of a.b.c:  a.b.c, then for b.c and c in turn: "b.c"
 *                          (only with subdomains on), then ".b.c";
 *                          no walk for an address literal [..].
 *   null sender "":        <> (access only)
 * The split is at the last '@'; '%' and '!' are ordinary characters.
 *
 * Virtual expansion is iterative (an explicit stack of at most
 * alias_depth frames: no recursion on the C stack), with a hash set of
 * the addresses seen (case-folded), which makes every address expanded
 * once: loops are found as an address met again while its own expansion
 * is still open (unless the way back passes an address that lists
 * itself, where Postfix's expansion stops too), and diamonds cost nothing
 * twice.
 */
#include "maps-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *maps_form_name(maps_form form)
{
	switch (form) {
	case MAPS_FORM_NONE: return "none";
	case MAPS_FORM_ADDRESS: return "user@domain";
	case MAPS_FORM_DOMAIN: return "domain";
	case MAPS_FORM_PARENT: return "parent domain";
	case MAPS_FORM_DOT_PARENT: return ".domain";
	case MAPS_FORM_LOCALPART: return "user@";
	case MAPS_FORM_CATCHALL: return "@domain";
	case MAPS_FORM_NETWORK: return "network";
	case MAPS_FORM_WILDCARD: return "*";
	case MAPS_FORM_NULL_SENDER: return "<>";
	case MAPS_FORM_REVERSE: return "reverse";
	}
	return "?";
}

const char *maps_status_name(maps_status s)
{
	switch (s) {
	case MAPS_OK: return "ok";
	case MAPS_ERR_LOOP: return "alias loop";
	case MAPS_ERR_FANOUT: return "fan-out limit";
	case MAPS_ERR_DEPTH: return "depth limit";
	case MAPS_ERR_TOO_LONG: return "too long";
	case MAPS_ERR_INVALID: return "invalid";
	}
	return "?";
}

/* ------------------------------------------------------------ key forms */
typedef struct keygen {
	maps_key_fn fn;
	void *ctx;
	bool stop;
} keygen;

/* Emit a ++ b (folded) as a key of form f.  True once fn asked to stop. */
static bool emit(keygen *g, const char *a, size_t al, const char *b, size_t bl,
		 maps_form f)
{
	char k[MAPS_KEY_MAX + 1];
	if (g->stop)
		return true;
	if (al + bl == 0 || al + bl > MAPS_KEY_MAX)
		return false;
	for (size_t i = 0; i < al; i++)
		k[i] = maps_lc(a[i]);
	for (size_t i = 0; i < bl; i++)
		k[al + i] = maps_lc(b[i]);
	k[al + bl] = '\0';
	g->stop = g->fn(k, al + bl, f, g->ctx);
	return g->stop;
}

static bool domain_walk(keygen *g, const char *d, size_t len, bool subdomains)
{
	if (len == 0)
		return false;
	if (emit(g, d, len, NULL, 0, MAPS_FORM_DOMAIN))
		return true;
	if (d[0] == '[')
		return false;
	for (size_t i = 0; i + 1 < len; i++) {
		if (d[i] != '.')
			continue;
		if (subdomains &&
		    emit(g, d + i + 1, len - i - 1, NULL, 0, MAPS_FORM_PARENT))
			return true;
		if (emit(g, d + i, len - i, NULL, 0, MAPS_FORM_DOT_PARENT))
			return true;
	}
	return false;
}

static const char *last_at(const char *s)
{
	return strrchr(s, '@');
}

void maps_keys(maps_kind kind, const maps_options *opt, const char *q,
	       maps_key_fn fn, void *ctx)
{
	maps_options def;
	if (opt == NULL) {
		maps_options_default(kind, &def);
		opt = &def;
	}
	keygen g = { .fn = fn, .ctx = ctx };
	if (q == NULL)
		return;
	size_t len = strlen(q);
	const char *at = last_at(q);
	size_t ll = at != NULL ? (size_t)(at - q) : len;
	const char *dom = at != NULL ? at + 1 : q;
	size_t dl = at != NULL ? len - ll - 1 : len;
	switch (kind) {
	case MAPS_ACCESS:
		if (len == 0) {
			emit(&g, "<>", 2, NULL, 0, MAPS_FORM_NULL_SENDER);
			return;
		}
		if (at == NULL) {
			domain_walk(&g, q, len, opt->subdomains);
			return;
		}
		if (emit(&g, q, len, NULL, 0, MAPS_FORM_ADDRESS) ||
		    domain_walk(&g, dom, dl, opt->subdomains))
			return;
		if (ll > 0 && dl > 0)
			emit(&g, q, ll + 1, NULL, 0, MAPS_FORM_LOCALPART);
		return;
	case MAPS_RELAY_DOMAINS:
		domain_walk(&g, dom, dl, opt->subdomains);
		return;
	case MAPS_VIRTUAL:
	case MAPS_CANONICAL:
		if (at == NULL) {
			if (kind == MAPS_VIRTUAL)
				emit(&g, q, len, NULL, 0, MAPS_FORM_DOMAIN);
			return;
		}
		if (ll > 0 && emit(&g, q, len, NULL, 0, MAPS_FORM_ADDRESS))
			return;
		if (dl > 0)
			emit(&g, "@", 1, dom, dl, MAPS_FORM_CATCHALL);
		return;
	case MAPS_TRANSPORT:
		if (at != NULL && ll > 0 &&
		    emit(&g, q, len, NULL, 0, MAPS_FORM_ADDRESS))
			return;
		if (domain_walk(&g, dom, dl, opt->subdomains))
			return;
		emit(&g, "*", 1, NULL, 0, MAPS_FORM_WILDCARD);
		return;
	}
}

typedef struct finder {
	const maps_table *t;
	const maps_entry *e;
	maps_form form;
} finder;

static bool find_cb(const char *key, size_t len, maps_form form, void *ctx)
{
	(void)len;
	finder *f = ctx;
	const maps_entry *e = maps_find(f->t, key);
	if (e == NULL)
		return false;
	f->e = e;
	f->form = form;
	return true;
}

/* The first entry the keys of q (as a table of kind) find. */
static bool lookup(const maps_table *t, maps_kind kind, const char *q,
		   maps_match *m)
{
	finder f = { .t = t };
	maps_keys(kind, &t->opt, q, find_cb, &f);
	if (f.e == NULL)
		return false;
	if (m != NULL)
		*m = (maps_match){ .form = f.form, .key = f.e->key,
				   .value = f.e->value, .line = f.e->line };
	return true;
}

static void bug(const char *what)
{
	fprintf(stderr, "maps: bug: %s\n", what);
	abort();
}

/* ------------------------------------------------------------ access */
static bool access_result(const maps_match *mm, maps_access *r, maps_match *m)
{
	const char *why;
	if (maps_access_parse(mm->value, r, &why) != 0)
		bug("an access value checked at load does not parse");
	if (m != NULL)
		*m = *mm;
	return true;
}

static bool access_none(maps_access *r, maps_match *m)
{
	memset(r, 0, sizeof(*r));
	if (m != NULL)
		memset(m, 0, sizeof(*m));
	return false;
}

bool maps_access_address(const maps_table *t, const char *addr,
			 maps_access *r, maps_match *m)
{
	maps_match mm;
	if (t == NULL || t->kind != MAPS_ACCESS || addr == NULL)
		return access_none(r, m);
	/* A query without '@' is still an address here: the whole, user@. */
	if (addr[0] != '\0' && strchr(addr, '@') == NULL) {
		size_t len = strlen(addr);
		char k[MAPS_KEY_MAX + 2];
		if (len + 1 <= MAPS_KEY_MAX) {
			maps_fold(addr, len, k, sizeof(k));
			const maps_entry *e = maps_find(t, k);
			maps_form f = MAPS_FORM_ADDRESS;
			if (e == NULL) {
				k[len] = '@';
				k[len + 1] = '\0';
				e = maps_find(t, k);
				f = MAPS_FORM_LOCALPART;
			}
			if (e != NULL) {
				mm = (maps_match){ .form = f, .key = e->key,
						   .value = e->value,
						   .line = e->line };
				return access_result(&mm, r, m);
			}
		}
		return access_none(r, m);
	}
	if (!lookup(t, MAPS_ACCESS, addr, &mm))
		return access_none(r, m);
	return access_result(&mm, r, m);
}

bool maps_access_domain(const maps_table *t, const char *name, maps_access *r,
			maps_match *m)
{
	maps_match mm;
	if (t == NULL || t->kind != MAPS_ACCESS || name == NULL ||
	    name[0] == '\0' || strchr(name, '@') != NULL)
		return access_none(r, m);
	if (!lookup(t, MAPS_ACCESS, name, &mm))
		return access_none(r, m);
	return access_result(&mm, r, m);
}

bool maps_access_client(const maps_table *t, const char *name, const char *ip,
			maps_access *r, maps_match *m)
{
	maps_match mm;
	if (t == NULL || t->kind != MAPS_ACCESS)
		return access_none(r, m);
	if (name != NULL && name[0] != '\0' && !maps_fold_eq(name, "unknown") &&
	    maps_access_domain(t, name, r, m))
		return true;
	if (ip == NULL || !maps_cidr_lookup(t, ip, &mm))
		return access_none(r, m);
	return access_result(&mm, r, m);
}

/* ------------------------------------------------------------ relay */
bool maps_relay_domain(const maps_table *t, const char *domain, maps_match *m)
{
	if (t == NULL || t->kind != MAPS_RELAY_DOMAINS || domain == NULL ||
	    domain[0] == '\0') {
		if (m != NULL)
			memset(m, 0, sizeof(*m));
		return false;
	}
	bool ok = lookup(t, MAPS_RELAY_DOMAINS, domain, m);
	if (!ok && m != NULL)
		memset(m, 0, sizeof(*m));
	return ok;
}

/* ------------------------------------------------------------ virtual */
bool maps_virtual_lookup(const maps_table *t, const char *addr, maps_match *m)
{
	bool ok = t != NULL && t->kind == MAPS_VIRTUAL && addr != NULL &&
		  strchr(addr, '@') != NULL &&
		  lookup(t, MAPS_VIRTUAL, addr, m);
	if (!ok && m != NULL)
		memset(m, 0, sizeof(*m));
	return ok;
}

bool maps_virtual_domain(const maps_table *t, const char *domain,
			 maps_match *m)
{
	bool ok = t != NULL && t->kind == MAPS_VIRTUAL && domain != NULL &&
		  domain[0] != '\0' && strchr(domain, '@') == NULL &&
		  lookup(t, MAPS_VIRTUAL, domain, m);
	if (!ok && m != NULL)
		memset(m, 0, sizeof(*m));
	return ok;
}

enum { N_GRAY = 1, N_BLACK = 2, N_SELF = 4, N_EMITTED = 8 };

typedef struct xnode {
	char *addr;          /* as produced */
	char *key;           /* folded */
	unsigned state;
} xnode;

typedef struct xframe {
	size_t node;
	const char *pos;     /* next item in the entry's value */
	bool first;          /* the next item is the value's first */
} xframe;

typedef struct expander {
	const maps_table *t;
	xnode *nodes;
	size_t n, cap;
	size_t *slot;        /* node index + 1; 0 = empty */
	size_t nslot;        /* power of two */
	xframe *stack;
	size_t depth;        /* frames in use */
	size_t max_depth, fanout, visits;
	maps_rcpts *out;
	size_t out_cap;
	maps_error *err;
} expander;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static void slots_grow(expander *x)
{
	size_t ns = x->nslot == 0 ? 64 : x->nslot * 2;
	size_t *s = maps_xcalloc(ns, sizeof(*s));
	for (size_t i = 0; i < x->n; i++) {
		size_t h = (size_t)hash_str(x->nodes[i].key) & (ns - 1);
		while (s[h] != 0)
			h = (h + 1) & (ns - 1);
		s[h] = i + 1;
	}
	free(x->slot);
	x->slot = s;
	x->nslot = ns;
}

/* The node of addr (taking ownership of addr, a heap string); *created_r
 * tells whether it is new.  SIZE_MAX when the lookup budget is spent. */
static size_t node_get(expander *x, char *addr, bool *created_r)
{
	size_t len = strlen(addr);
	char *key = maps_xcalloc(len + 1, 1);
	maps_fold(addr, len, key, len + 1);
	if (x->nslot > 0) {
		size_t h = (size_t)hash_str(key) & (x->nslot - 1);
		while (x->slot[h] != 0) {
			size_t i = x->slot[h] - 1;
			if (strcmp(x->nodes[i].key, key) == 0) {
				free(addr);
				free(key);
				*created_r = false;
				return i;
			}
			h = (h + 1) & (x->nslot - 1);
		}
	}
	if (x->n >= x->visits) {
		free(addr);
		free(key);
		return SIZE_MAX;
	}
	if (x->n == x->cap) {
		x->cap = x->cap == 0 ? 16 : x->cap * 2;
		x->nodes = maps_xreallocarray(x->nodes, x->cap, sizeof(*x->nodes));
	}
	x->nodes[x->n] = (xnode){ .addr = addr, .key = key };
	x->n++;
	if (x->n * 2 > x->nslot) {
		slots_grow(x);
	} else {
		size_t h = (size_t)hash_str(key) & (x->nslot - 1);
		while (x->slot[h] != 0)
			h = (h + 1) & (x->nslot - 1);
		x->slot[h] = x->n;
	}
	*created_r = true;
	return x->n - 1;
}

static maps_status emit_final(expander *x, size_t ni)
{
	xnode *nd = &x->nodes[ni];
	if (nd->state & N_EMITTED)
		return MAPS_OK;
	nd->state |= N_EMITTED;
	if (x->out->n >= x->fanout) {
		maps_error_set(x->err, x->t->name, 0,
			       "more than %zu recipients for one address",
			       x->fanout);
		return MAPS_ERR_FANOUT;
	}
	if (x->out->n == x->out_cap) {
		x->out_cap = x->out_cap == 0 ? 8 : x->out_cap * 2;
		x->out->v = maps_xreallocarray(x->out->v, x->out_cap,
					       sizeof(*x->out->v));
	}
	x->out->v[x->out->n++] = maps_xstrdup(nd->addr);
	return MAPS_OK;
}

/* Next item of a value ("a b c", normalised at load) from *pos: its start
 * and length, or false at the end. */
static bool next_item(const char **pos, const char **item_r, size_t *len_r)
{
	const char *p = *pos;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return false;
	const char *s = p;
	while (*p != '\0' && *p != ' ')
		p++;
	*item_r = s;
	*len_r = (size_t)(p - s);
	*pos = p;
	return true;
}

/* The address an item means for node addr: "@dom" as the first item is
 * the same user at dom.  A heap string, or NULL when too long. */
static char *item_addr(const char *addr, const char *item, size_t len,
		       bool first)
{
	size_t ll = 0;
	if (first && item[0] == '@') {
		const char *at = last_at(addr);
		ll = at != NULL ? (size_t)(at - addr) : strlen(addr);
	}
	if (ll + len > MAPS_ADDR_MAX)
		return NULL;
	char *s = maps_xcalloc(ll + len + 1, 1);
	memcpy(s, addr, ll);
	memcpy(s + ll, item, len);
	s[ll + len] = '\0';
	return s;
}

static maps_status too_long(expander *x, const char *addr)
{
	maps_error_set(x->err, x->t->name, 0,
		       "an address made from %.80s is longer than %u bytes",
		       addr, MAPS_ADDR_MAX);
	return MAPS_ERR_TOO_LONG;
}

/* Look node ni up; final, or pushed for expansion. */
static maps_status enter(expander *x, size_t ni)
{
	xnode *nd = &x->nodes[ni];
	maps_match m;
	if (maps_is_did(nd->addr) || strchr(nd->addr, '@') == NULL ||
	    !lookup(x->t, MAPS_VIRTUAL, nd->addr, &m)) {
		nd->state |= N_BLACK;
		return emit_final(x, ni);
	}
	x->out->changed = true;
	if (x->depth >= x->max_depth) {
		maps_error_set(x->err, x->t->name, 0,
			       "aliases nested deeper than %zu (at %.80s)",
			       x->max_depth, nd->addr);
		return MAPS_ERR_DEPTH;
	}
	nd->state |= N_GRAY;
	/* An address that lists itself is final (and expands the rest). */
	const char *pos = m.value, *item;
	size_t len;
	bool first = true;
	while (next_item(&pos, &item, &len)) {
		char *a = item_addr(nd->addr, item, len, first);
		first = false;
		if (a == NULL)
			return too_long(x, nd->addr);
		bool self = maps_fold_eq(a, nd->addr);
		free(a);
		if (self) {
			nd->state |= N_SELF;
			maps_status s = emit_final(x, ni);
			if (s != MAPS_OK)
				return s;
			break;
		}
	}
	x->stack[x->depth++] = (xframe){ .node = ni, .pos = m.value,
					 .first = true };
	return MAPS_OK;
}

/* Open node ci is met again from the top of the stack: the way from ci
 * back to itself ends (Postfix stops there too) when an address on it
 * lists itself. */
static bool cycle_ends(const expander *x, size_t ci)
{
	for (size_t i = x->depth; i > 0; i--) {
		size_t ni = x->stack[i - 1].node;
		if (x->nodes[ni].state & N_SELF)
			return true;
		if (ni == ci)
			break;
	}
	return false;
}

static maps_status run(expander *x)
{
	while (x->depth > 0) {
		xframe *f = &x->stack[x->depth - 1];
		size_t ni = f->node;
		const char *item;
		size_t len;
		if (!next_item(&f->pos, &item, &len)) {
			x->nodes[ni].state = (x->nodes[ni].state & ~(unsigned)N_GRAY) |
					     N_BLACK;
			x->depth--;
			continue;
		}
		char *a = item_addr(x->nodes[ni].addr, item, len, f->first);
		f->first = false;
		if (a == NULL)
			return too_long(x, x->nodes[ni].addr);
		if (maps_fold_eq(a, x->nodes[ni].addr)) {
			free(a); /* itself: emitted on entry */
			continue;
		}
		bool created;
		size_t ci = node_get(x, a, &created);
		if (ci == SIZE_MAX) {
			maps_error_set(x->err, x->t->name, 0,
				       "more than %zu addresses looked up for "
				       "one address",
				       x->visits);
			return MAPS_ERR_FANOUT;
		}
		if (created) {
			maps_status s = enter(x, ci);
			if (s != MAPS_OK)
				return s;
			continue;
		}
		if ((x->nodes[ci].state & N_GRAY) && !cycle_ends(x, ci)) {
			maps_error_set(x->err, x->t->name, 0,
				       "alias loop: %.80s leads back to %.80s",
				       x->nodes[ni].addr, x->nodes[ci].addr);
			return MAPS_ERR_LOOP;
		}
		/* done, or a way back that ends at an address that lists
		 * itself: its recipients are out already */
	}
	return MAPS_OK;
}

void maps_rcpts_destroy(maps_rcpts **r)
{
	if (r == NULL || *r == NULL)
		return;
	for (size_t i = 0; i < (*r)->n; i++)
		free((*r)->v[i]);
	free((*r)->v);
	free(*r);
	*r = NULL;
}

maps_status maps_virtual_expand(const maps_table *t, const char *addr,
				maps_rcpts **r_r, maps_error *err)
{
	*r_r = NULL;
	if (t == NULL || t->kind != MAPS_VIRTUAL || addr == NULL ||
	    addr[0] == '\0') {
		maps_error_set(err, t != NULL ? t->name : "virtual_alias_maps",
			       0, "no address, or not a virtual_alias_maps table");
		return MAPS_ERR_INVALID;
	}
	if (strlen(addr) > MAPS_ADDR_MAX) {
		maps_error_set(err, t->name, 0, "address longer than %u bytes",
			       MAPS_ADDR_MAX);
		return MAPS_ERR_TOO_LONG;
	}
	expander x = {
		.t = t,
		.max_depth = t->opt.alias_depth,
		.fanout = t->opt.alias_fanout,
		.visits = (size_t)t->opt.alias_fanout *
			  MAPS_ALIAS_VISITS_PER_FANOUT,
		.err = err,
	};
	x.out = maps_xcalloc(1, sizeof(*x.out));
	x.stack = maps_xcalloc((size_t)x.max_depth + 1, sizeof(*x.stack));
	bool created;
	size_t root = node_get(&x, maps_xstrdup(addr), &created);
	maps_status s = root == SIZE_MAX ? MAPS_ERR_FANOUT : enter(&x, root);
	if (s == MAPS_OK)
		s = run(&x);
	for (size_t i = 0; i < x.n; i++) {
		free(x.nodes[i].addr);
		free(x.nodes[i].key);
	}
	free(x.nodes);
	free(x.slot);
	free(x.stack);
	if (s != MAPS_OK) {
		maps_rcpts_destroy(&x.out);
		return s;
	}
	*r_r = x.out;
	return MAPS_OK;
}

/* ------------------------------------------------------------ canonical */
static int put(const char *s, char *out, size_t out_size)
{
	size_t n = strlen(s);
	if (n + 1 > out_size) {
		if (out_size > 0)
			out[0] = '\0';
		return MAPS_ERR_TOO_LONG;
	}
	memcpy(out, s, n + 1);
	return 0;
}

int maps_canonical_forward(const maps_table *t, const char *addr, char *out,
			   size_t out_size, maps_match *m, maps_error *err)
{
	/* the address and each rewrite of it, to find loops */
	char seen[MAPS_CANONICAL_DEPTH + 1][MAPS_ADDR_MAX + 1];
	size_t n_seen = 0;
	char cur[MAPS_ADDR_MAX + 1];
	bool found = false;
	if (m != NULL)
		memset(m, 0, sizeof(*m));
	if (t == NULL || t->kind != MAPS_CANONICAL || addr == NULL ||
	    addr[0] == '\0') {
		maps_error_set(err, t != NULL ? t->name : "canonical_maps", 0,
			       "no address, or not a canonical_maps table");
		return MAPS_ERR_INVALID;
	}
	if (strlen(addr) > MAPS_ADDR_MAX) {
		maps_error_set(err, t->name, 0, "address longer than %u bytes",
			       MAPS_ADDR_MAX);
		return MAPS_ERR_TOO_LONG;
	}
	snprintf(cur, sizeof(cur), "%s", addr);
	snprintf(seen[n_seen++], sizeof(seen[0]), "%s", addr);
	for (;;) {
		maps_match mm;
		if (maps_is_did(cur) || strchr(cur, '@') == NULL ||
		    !lookup(t, MAPS_CANONICAL, cur, &mm))
			break;
		if (!found && m != NULL)
			*m = mm;
		found = true;
		const char *item = mm.value;
		char *next = item_addr(cur, item, strlen(item), true);
		if (next == NULL) {
			maps_error_set(err, t->name, 0,
				       "rewriting %.80s gives more than %u bytes",
				       cur, MAPS_ADDR_MAX);
			return MAPS_ERR_TOO_LONG;
		}
		bool self = maps_fold_eq(next, cur);
		snprintf(cur, sizeof(cur), "%s", next);
		free(next);
		if (self)
			break;
		for (size_t i = 0; i < n_seen; i++)
			if (maps_fold_eq(seen[i], cur)) {
				maps_error_set(err, t->name, 0,
					       "canonical loop: %.80s comes back",
					       cur);
				return MAPS_ERR_LOOP;
			}
		if (n_seen - 1 == MAPS_CANONICAL_DEPTH) {
			maps_error_set(err, t->name, 0,
				       "more than %u canonical rewrites of "
				       "%.80s",
				       MAPS_CANONICAL_DEPTH, addr);
			return MAPS_ERR_DEPTH;
		}
		snprintf(seen[n_seen++], sizeof(seen[0]), "%s", cur);
	}
	if (put(cur, out, out_size) != 0) {
		maps_error_set(err, t->name, 0, "result does not fit");
		return MAPS_ERR_TOO_LONG;
	}
	return found ? 1 : 0;
}

/* The first reversible entry whose folded value is key, or NULL. */
static const maps_entry *rev_find(const maps_table *t, const char *key)
{
	size_t lo = 0, hi = t->n_rev;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->rev_key[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->n_rev && strcmp(t->rev_key[lo], key) == 0)
		return t->rev[lo];
	return NULL;
}

int maps_canonical_reverse(const maps_table *t, const char *value, char *out,
			   size_t out_size, maps_match *m)
{
	char k[MAPS_KEY_MAX + 2];
	if (m != NULL)
		memset(m, 0, sizeof(*m));
	if (t == NULL || t->kind != MAPS_CANONICAL || value == NULL)
		return 0;
	size_t len = strlen(value);
	if (len == 0 || !maps_fold(value, len, k, sizeof(k)))
		return 0;
	const maps_entry *e = rev_find(t, k);
	const char *at = last_at(value);
	char res[MAPS_ADDR_MAX + 1];
	if (e != NULL) {
		snprintf(res, sizeof(res), "%s", e->key);
	} else if (at != NULL && at > value && !maps_is_did(value)) {
		e = rev_find(t, k + (at - value));
		if (e == NULL)
			return 0;
		size_t ll = (size_t)(at - value);
		if (ll + strlen(e->key) > MAPS_ADDR_MAX)
			return 0;
		memcpy(res, value, ll);
		memcpy(res + ll, e->key, strlen(e->key) + 1);
	} else {
		return 0;
	}
	if (m != NULL)
		*m = (maps_match){ .form = MAPS_FORM_REVERSE, .key = e->key,
				   .value = e->value, .line = e->line };
	if (put(res, out, out_size) != 0)
		return MAPS_ERR_TOO_LONG;
	return 1;
}

/* ------------------------------------------------------------ transport */
bool maps_transport_lookup(const maps_table *t, const char *q,
			   maps_transport *r, maps_match *m)
{
	maps_match mm;
	memset(r, 0, sizeof(*r));
	if (t == NULL || t->kind != MAPS_TRANSPORT || q == NULL || q[0] == '\0' ||
	    !lookup(t, MAPS_TRANSPORT, q, &mm)) {
		if (m != NULL)
			memset(m, 0, sizeof(*m));
		return false;
	}
	const char *why;
	if (maps_transport_parse(mm.value, r, &why) != 0)
		bug("a transport value checked at load does not parse");
	if (m != NULL)
		*m = mm;
	return true;
}

/* ------------------------------------------------------------ test */
static void fmt_access(const maps_access *a, char *out, size_t n)
{
	int w;
	if (a->action == MAPS_ACT_REJECT || a->action == MAPS_ACT_DEFER)
		w = snprintf(out, n, "%s %u %s%s%s", maps_action_name(a->action),
			     a->code, a->dsn, a->text[0] ? " " : "", a->text);
	else
		w = snprintf(out, n, "%s%s%s", maps_action_name(a->action),
			     a->text[0] ? " " : "", a->text);
	if (w < 0 || (size_t)w >= n)
		bug("access result does not fit");
}

static void fmt_transport(const maps_transport *tr, char *out, size_t n)
{
	int w;
	if (strcmp(tr->transport, "error") == 0) {
		w = snprintf(out, n, "error:%s", tr->text);
	} else {
		char port[8] = "";
		if (tr->port != 0)
			snprintf(port, sizeof(port), ":%u", tr->port);
		w = snprintf(out, n, "%s:%s%s%s%s", tr->transport,
			     tr->brackets ? "[" : "", tr->host,
			     tr->brackets ? "]" : "", port);
	}
	if (w < 0 || (size_t)w >= n)
		bug("transport result does not fit");
}

/* "error: reason" from an error "NAME: reason". */
static void fmt_error(const maps_table *t, const maps_error *e, char *out,
		      size_t n)
{
	const char *why = e->text;
	size_t nl = strlen(t->name);
	if (strncmp(why, t->name, nl) == 0 && strncmp(why + nl, ": ", 2) == 0)
		why += nl + 2;
	snprintf(out, n, "error: %s", why);
}

int maps_test(const maps_table *t, const char *q, maps_test_result *r)
{
	memset(r, 0, sizeof(*r));
	if (t == NULL || q == NULL || strlen(q) > MAPS_LINE_MAX) {
		snprintf(r->result, sizeof(r->result), "invalid query");
		return -1;
	}
	char *res = r->result;
	size_t rn = sizeof(r->result);
	maps_match *m = &r->match;
	switch (t->kind) {
	case MAPS_ACCESS: {
		maps_access a;
		size_t len = strlen(q);
		const char *br = strchr(q, '[');
		if (len == 0 || strcmp(q, "<>") == 0) {
			r->found = maps_access_address(t, "", &a, m);
		} else if (strchr(q, '@') != NULL) {
			r->found = maps_access_address(t, q, &a, m);
		} else if (br != NULL && br > q && q[len - 1] == ']') {
			char name[MAPS_LINE_MAX + 1], ip[MAPS_LINE_MAX + 1];
			size_t nl = (size_t)(br - q);
			memcpy(name, q, nl);
			name[nl] = '\0';
			memcpy(ip, br + 1, len - nl - 2);
			ip[len - nl - 2] = '\0';
			r->found = maps_access_client(t, name, ip, &a, m);
		} else {
			uint8_t addr[16];
			int fam;
			if (maps_ip_parse(q, addr, &fam))
				r->found = maps_access_client(t, NULL, q, &a, m);
			else
				r->found = maps_access_domain(t, q, &a, m);
		}
		if (r->found)
			fmt_access(&a, res, rn);
		break;
	}
	case MAPS_RELAY_DOMAINS:
		r->found = maps_relay_domain(t, q, m);
		if (r->found)
			snprintf(res, rn, "relay");
		break;
	case MAPS_VIRTUAL: {
		if (strchr(q, '@') == NULL) {
			r->found = maps_virtual_domain(t, q, m);
			if (r->found)
				snprintf(res, rn, "virtual alias domain");
			break;
		}
		r->found = maps_virtual_lookup(t, q, m);
		if (!r->found)
			break;
		maps_rcpts *rc = NULL;
		maps_error err;
		if (maps_virtual_expand(t, q, &rc, &err) != MAPS_OK) {
			fmt_error(t, &err, res, rn);
			break;
		}
		size_t o = 0;
		for (size_t i = 0; i < rc->n; i++) {
			int w = snprintf(res + o, rn - o, "%s%s", i ? ", " : "",
					 rc->v[i]);
			if (w < 0 || (size_t)w >= rn - o) {
				/* more than fits: say how many */
				snprintf(res, rn, "%zu recipients", rc->n);
				break;
			}
			o += (size_t)w;
		}
		maps_rcpts_destroy(&rc);
		break;
	}
	case MAPS_CANONICAL: {
		char out[MAPS_ADDR_MAX + 1];
		if (maps_is_did(q)) {
			r->found = maps_canonical_reverse(t, q, out, sizeof(out),
							  m) == 1;
			if (r->found)
				snprintf(res, rn, "%s", out);
			break;
		}
		maps_error err;
		int c = maps_canonical_forward(t, q, out, sizeof(out), m, &err);
		if (c < 0 && m->key != NULL) { /* a rewrite failed */
			r->found = true;
			fmt_error(t, &err, res, rn);
			return 0;
		}
		r->found = c == 1;
		if (r->found)
			snprintf(res, rn, "%s", out);
		break;
	}
	case MAPS_TRANSPORT: {
		maps_transport tr;
		r->found = maps_transport_lookup(t, q, &tr, m);
		if (r->found)
			fmt_transport(&tr, res, rn);
		break;
	}
	}
	if (!r->found) {
		memset(m, 0, sizeof(*m));
		snprintf(res, rn, "not found");
	}
	return 0;
}
