/*
 * config.c — the typed configuration of config.h: schema checks, the
 * `key = value` parser (every error collected with its line), typed
 * values, reload checks and the printers behind --check-config,
 * "show non-default settings" and the generated documentation.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct cfg_value {
	char *raw;          /* the text, from the file or the default */
	unsigned line;      /* 0: the default */
	int64_t num;
	bool b;
	char **items;
	size_t n_items;
} cfg_value;

struct cfg {
	const cfg_schema *schema;
	cfg_value *v;       /* one per schema key, same order */
};

static const char *type_name(cfg_type t)
{
	static const char *names[] = { "string", "integer", "boolean",
				       "duration", "size", "list" };
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static void add_error(cfg_errors *errs, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(cfg_errors *errs, unsigned line, const char *fmt, ...)
{
	if (errs->n == CFG_ERRORS_MAX) {
		errs->truncated = true;
		return;
	}
	cfg_error *e = &errs->e[errs->n++];
	va_list ap;
	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

static bool key_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

static ssize_t key_index(const cfg_schema *schema, const char *name, size_t len)
{
	for (size_t i = 0; i < schema->n_keys; i++) {
		if (strlen(schema->keys[i].name) == len &&
		    memcmp(schema->keys[i].name, name, len) == 0)
			return (ssize_t)i;
	}
	return -1;
}

/* Printable text for error messages: at most 40 bytes, controls as '?'. */
static void shown(const char *s, size_t len, char out[48])
{
	size_t n = len > 40 ? 40 : len, o = 0;
	for (size_t i = 0; i < n; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (len > 40) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* ---------------------------------------------------------- conversion */

/* Decimal with an optional leading '-', no overflow. */
static bool parse_i64(const char *s, size_t len, int64_t *v_r)
{
	bool neg = len > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	uint64_t v = 0;
	if (i == len)
		return false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static const int64_t dur_f[] = { 1, 60, 3600, 86400 };

/* N with an optional unit letter from `units`, each multiplying by the
 * matching factor. */
static bool parse_scaled(const char *s, size_t len, const char *units,
			 const int64_t *factors, int64_t *v_r)
{
	int64_t mult = 1, v;
	if (len > 0 && s[len - 1] != '\0') {
		const char *u = strchr(units, tolower((unsigned char)s[len - 1]));
		if (u != NULL) {
			mult = factors[u - units];
			len--;
		}
	}
	if (!parse_i64(s, len, &v) || v < 0 || v > INT64_MAX / mult)
		return false;
	*v_r = v * mult;
	return true;
}

bool cfg_parse_duration(const char *s, int64_t *seconds_r)
{
	return parse_scaled(s, strlen(s), "smhd", dur_f, seconds_r);
}

static void free_items(cfg_value *v)
{
	for (size_t i = 0; i < v->n_items; i++)
		free(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->n_items = 0;
}

static int split_list(cfg_value *v)
{
	const char *p = v->raw;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		char **items = realloc(v->items, (v->n_items + 1) * sizeof(char *));
		char *w = malloc(n + 1);
		if (items == NULL || w == NULL) {
			free(w);
			if (items != NULL)
				v->items = items;
			return -1;
		}
		v->items = items;
		memcpy(w, p, n);
		w[n] = '\0';
		v->items[v->n_items++] = w;
		p += n;
	}
	return 0;
}

/* Convert v->raw for key k; on failure add an error at v->line. */
static bool convert(const cfg_key *k, cfg_value *v, cfg_errors *errs)
{
	static const int64_t size_f[] = { 1024, 1024 * 1024, 1024 * 1024 * 1024 };
	const char *s = v->raw;
	size_t len = strlen(s);
	char sh[48];
	bool ok = true;

	shown(s, len, sh);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			add_error(errs, v->line, "%s: value has a control character",
				  k->name);
			return false;
		}
	}
	switch (k->type) {
	case CFG_STRING:
		break;
	case CFG_INT:
		ok = parse_i64(s, len, &v->num);
		break;
	case CFG_DURATION:
		ok = parse_scaled(s, len, "smhd", dur_f, &v->num);
		break;
	case CFG_SIZE:
		ok = parse_scaled(s, len, "kmg", size_f, &v->num);
		break;
	case CFG_BOOL:
		if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "on") ||
		    !strcmp(s, "1"))
			v->b = true;
		else if (!strcmp(s, "no") || !strcmp(s, "false") ||
			 !strcmp(s, "off") || !strcmp(s, "0"))
			v->b = false;
		else
			ok = false;
		break;
	case CFG_LIST:
		free_items(v);
		if (split_list(v) != 0) {
			add_error(errs, v->line, "%s: out of memory", k->name);
			return false;
		}
		break;
	}
	if (!ok) {
		add_error(errs, v->line, "%s: '%s' is not a valid %s%s", k->name,
			  sh, type_name(k->type),
			  k->type == CFG_DURATION ? " (N[s|m|h|d])"
			  : k->type == CFG_SIZE   ? " (N[k|m|g])"
			  : k->type == CFG_BOOL   ? " (yes or no)"
						  : "");
		return false;
	}
	if ((k->type == CFG_INT || k->type == CFG_DURATION ||
	     k->type == CFG_SIZE) &&
	    (v->num < k->min || v->num > k->max)) {
		add_error(errs, v->line, "%s: %s is outside %lld..%lld", k->name,
			  sh, (long long)k->min, (long long)k->max);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- schema */

int cfg_schema_check(const cfg_schema *schema, cfg_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	for (size_t i = 0; i < schema->n_keys; i++) {
		const cfg_key *k = &schema->keys[i];
		if (!key_name_ok(k->name, strlen(k->name)))
			add_error(errs, 0, "schema %s: bad key name '%s'",
				  schema->component, k->name);
		if (k->doc == NULL || strlen(k->doc) < 10)
			add_error(errs, 0, "schema %s: key %s has no documentation",
				  schema->component, k->name);
		if (k->def == NULL)
			add_error(errs, 0, "schema %s: key %s has no default",
				  schema->component, k->name);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(schema->keys[j].name, k->name) == 0)
				add_error(errs, 0, "schema %s: key %s twice",
					  schema->component, k->name);
		}
		if (k->def != NULL) {
			cfg_value v = { .raw = (char *)k->def };
			if (!convert(k, &v, errs))
				add_error(errs, 0, "schema %s: default of %s is invalid",
					  schema->component, k->name);
			free_items(&v);
		}
	}
	return errs->n == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- parse */

void cfg_free(cfg **c)
{
	if (c == NULL || *c == NULL)
		return;
	cfg *x = *c;
	for (size_t i = 0; i < x->schema->n_keys; i++) {
		free(x->v[i].raw);
		free_items(&x->v[i]);
	}
	free(x->v);
	free(x);
	*c = NULL;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Record "key = value" (the logical line) into c. */
static void assign(cfg *c, const char *line, size_t len, unsigned lineno,
		   cfg_errors *errs)
{
	const char *eq = memchr(line, '=', len);
	char sh[48];
	if (eq == NULL) {
		shown(line, len, sh);
		add_error(errs, lineno, "expected 'key = value', found '%s'", sh);
		return;
	}
	size_t klen = (size_t)(eq - line);
	while (klen > 0 && is_blank(line[klen - 1]))
		klen--;
	const char *val = eq + 1;
	size_t vlen = len - (size_t)(val - line);
	while (vlen > 0 && is_blank(*val))
		val++, vlen--;
	while (vlen > 0 && is_blank(val[vlen - 1]))
		vlen--;
	shown(line, klen, sh);
	if (!key_name_ok(line, klen)) {
		add_error(errs, lineno, "'%s' is not a key name ([a-z0-9_])", sh);
		return;
	}
	ssize_t i = key_index(c->schema, line, klen);
	if (i < 0) {
		add_error(errs, lineno, "unknown key '%s' (see the %s "
			  "configuration reference)", sh, c->schema->component);
		return;
	}
	cfg_value *v = &c->v[i];
	if (v->line != 0) {
		add_error(errs, lineno, "%s is already set on line %u", sh, v->line);
		return;
	}
	if (vlen > CFG_VALUE_MAX) {
		add_error(errs, lineno, "%s: value longer than %u bytes", sh,
			  CFG_VALUE_MAX);
		return;
	}
	char *raw = dup_n(val, vlen);
	if (raw == NULL) {
		add_error(errs, lineno, "out of memory");
		return;
	}
	free(v->raw);
	v->raw = raw;
	v->line = lineno;
}

static cfg *cfg_new(const cfg_schema *schema)
{
	cfg *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->schema = schema;
	c->v = calloc(schema->n_keys > 0 ? schema->n_keys : 1, sizeof(cfg_value));
	if (c->v == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

int cfg_parse(const cfg_schema *schema, const char *text, size_t len,
	      cfg **cfg_r, cfg_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	*cfg_r = NULL;
	if (len > CFG_FILE_MAX) {
		add_error(errs, 0, "configuration is larger than %u bytes",
			  CFG_FILE_MAX);
		return -1;
	}
	cfg *c = cfg_new(schema);
	char *logical = malloc(CFG_VALUE_MAX + CFG_LINE_MAX + 2);
	if (c == NULL || logical == NULL) {
		free(logical);
		cfg_free(&c);
		add_error(errs, 0, "out of memory");
		return -1;
	}
	size_t llen = 0;
	unsigned lstart = 0, lineno = 0;
	bool have = false, overlong = false;
	size_t pos = 0;
	while (pos <= len) {
		const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		const char *line = text + pos;
		size_t n = end - pos;
		bool last = nl == NULL;
		lineno++;
		pos = end + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (last && n == 0)
			break;
		if (memchr(line, '\0', n) != NULL) {
			add_error(errs, lineno, "line has a NUL byte");
			continue;
		}
		if (n > CFG_LINE_MAX) {
			add_error(errs, lineno, "line longer than %u bytes",
				  CFG_LINE_MAX);
			continue;
		}
		size_t first = 0;
		while (first < n && is_blank(line[first]))
			first++;
		if (first == n || line[first] == '#')
			continue; /* blank or comment */
		if (first > 0) { /* continuation */
			if (!have) {
				add_error(errs, lineno,
					  "indented line continues no setting");
				continue;
			}
			if (llen + 1 + (n - first) > CFG_VALUE_MAX + CFG_LINE_MAX) {
				if (!overlong)
					add_error(errs, lstart,
						  "setting is longer than %u bytes",
						  CFG_VALUE_MAX);
				overlong = true;
				continue;
			}
			logical[llen++] = ' ';
			memcpy(logical + llen, line + first, n - first);
			llen += n - first;
			continue;
		}
		if (have && !overlong)
			assign(c, logical, llen, lstart, errs);
		memcpy(logical, line, n);
		llen = n;
		lstart = lineno;
		have = true;
		overlong = false;
		if (last)
			break;
	}
	if (have && !overlong)
		assign(c, logical, llen, lstart, errs);
	free(logical);

	for (size_t i = 0; i < schema->n_keys; i++) {
		cfg_value *v = &c->v[i];
		if (v->raw == NULL) {
			v->raw = dup_n(schema->keys[i].def,
				       strlen(schema->keys[i].def));
			if (v->raw == NULL) {
				add_error(errs, 0, "out of memory");
				continue;
			}
		}
		convert(&schema->keys[i], v, errs);
	}
	if (errs->n > 0) {
		cfg_free(&c);
		return -1;
	}
	*cfg_r = c;
	return 0;
}

int cfg_defaults(const cfg_schema *schema, cfg **cfg_r, cfg_errors *errs)
{
	return cfg_parse(schema, "", 0, cfg_r, errs);
}

/* --------------------------------------------------------------- getters */

static const cfg_value *value_of(const cfg *c, const char *key, cfg_type want)
{
	ssize_t i = key_index(c->schema, key, strlen(key));
	if (i < 0) {
		fprintf(stderr, "BUG: config key %s is not in schema %s\n", key,
			c->schema->component);
		abort();
	}
	cfg_type t = c->schema->keys[i].type;
	bool numeric = t == CFG_INT || t == CFG_DURATION || t == CFG_SIZE;
	if (!(t == want || (want == CFG_INT && numeric))) {
		fprintf(stderr, "BUG: config key %s is a %s, read as a %s\n", key,
			type_name(t), type_name(want));
		abort();
	}
	return &c->v[i];
}

const char *cfg_str(const cfg *c, const char *key)
{
	return value_of(c, key, CFG_STRING)->raw;
}

int64_t cfg_int(const cfg *c, const char *key)
{
	return value_of(c, key, CFG_INT)->num;
}

bool cfg_bool(const cfg *c, const char *key)
{
	return value_of(c, key, CFG_BOOL)->b;
}

size_t cfg_list_len(const cfg *c, const char *key)
{
	return value_of(c, key, CFG_LIST)->n_items;
}

const char *cfg_list_item(const cfg *c, const char *key, size_t i)
{
	const cfg_value *v = value_of(c, key, CFG_LIST);
	return i < v->n_items ? v->items[i] : NULL;
}

int cfg_reload_check(const cfg *old_cfg, const cfg *new_cfg, cfg_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	const cfg_schema *s = old_cfg->schema;
	for (size_t i = 0; i < s->n_keys; i++) {
		if (s->keys[i].reloadable)
			continue;
		if (strcmp(old_cfg->v[i].raw, new_cfg->v[i].raw) != 0)
			add_error(errs, new_cfg->v[i].line,
				  "%s cannot change on reload; restart to apply it",
				  s->keys[i].name);
	}
	return errs->n == 0 ? 0 : -1;
}

/* -------------------------------------------------------------- printers */

void cfg_print(const cfg *c, bool non_default_only, FILE *out)
{
	const cfg_schema *s = c->schema;
	for (size_t i = 0; i < s->n_keys; i++) {
		if (non_default_only && strcmp(c->v[i].raw, s->keys[i].def) == 0)
			continue;
		fprintf(out, "%s = %s\n", s->keys[i].name, c->v[i].raw);
	}
}

void cfg_print_doc(const cfg_schema *schema, FILE *out)
{
	fprintf(out, "| key | type | default | range | on reload | meaning |\n"
		     "| --- | --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < schema->n_keys; i++) {
		const cfg_key *k = &schema->keys[i];
		char range[64] = "";
		if (k->type == CFG_INT || k->type == CFG_DURATION ||
		    k->type == CFG_SIZE)
			snprintf(range, sizeof(range), "%lld … %lld",
				 (long long)k->min, (long long)k->max);
		fprintf(out, "| `%s` | %s | `%s` | %s | %s | %s |\n", k->name,
			type_name(k->type), k->def, range,
			k->reloadable ? "applied" : "restart", k->doc);
	}
}

void cfg_print_errors(const cfg_errors *errs, const char *file, FILE *out)
{
	for (size_t i = 0; i < errs->n; i++) {
		if (errs->e[i].line > 0)
			fprintf(out, "%s:%u: %s\n", file, errs->e[i].line,
				errs->e[i].text);
		else
			fprintf(out, "%s: %s\n", file, errs->e[i].text);
	}
	fprintf(out, "%s: %zu error%s%s\n", file, errs->n,
		errs->n == 1 ? "" : "s",
		errs->truncated ? " (more not shown)" : "");
}
