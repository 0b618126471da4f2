/*
 * maps-private.h — what the files of src/maps share: the table's layout,
 * the checked allocator, ASCII case folding, the syntax checks of keys
 * and values (maps-value.c) and the network entries (maps-cidr.c).
 */
#ifndef AMP_MAPS_PRIVATE_H
#define AMP_MAPS_PRIVATE_H

#include "maps.h"

#include <stdarg.h>

/* An entry with a string key, in the table's sorted array. */
typedef struct maps_entry {
	const char *key;     /* lower case, NUL-terminated, in the pool */
	const char *value;   /* normalised, NUL-terminated, in the pool */
	uint32_t line;
} maps_entry;

/* A network entry (access_map): an address, a CIDR block or a partial
 * IPv4 address ("1.2.3" = 1.2.3.0/24). */
typedef struct maps_net {
	uint8_t addr[16];    /* host bits zero */
	uint8_t family;      /* 4 or 6 */
	uint8_t prefix;      /* 0..32 or 0..128 */
	const char *key;     /* as written (lower case) */
	const char *value;
	uint32_t line;
} maps_net;

/* The networks of one family and prefix length: net[start..start+n). */
typedef struct maps_net_group {
	uint8_t family, prefix;
	size_t start, n;
} maps_net_group;

struct maps_table {
	maps_kind kind;
	maps_options opt;
	char *name;            /* for messages */
	char *path;            /* the file, or NULL when parsed from memory */
	char *pool;            /* every key and value string */
	size_t pool_len, pool_cap;
	maps_entry *e;         /* sorted by key (strcmp) */
	size_t n;
	maps_net *net;         /* sorted: family, prefix descending, address */
	size_t n_net;
	maps_net_group *grp;   /* one per (family, prefix) present */
	size_t n_grp;
	const maps_entry **rev; /* canonical: reversible entries by value */
	size_t n_rev;
	const char **rev_key;  /* the value each rev entry is found by */
};

/* Allocation that aborts on failure, with n * size checked. */
void *maps_xcalloc(size_t n, size_t size);
void *maps_xreallocarray(void *p, size_t n, size_t size);
char *maps_xstrdup(const char *s);

static inline char maps_lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static inline bool maps_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Lower-case the ASCII letters of s[0..len) into out (out_size >= len+1).
 * False (and out = "") when it does not fit. */
bool maps_fold(const char *s, size_t len, char *out, size_t out_size);

/* ASCII case-insensitive equality. */
bool maps_fold_eq(const char *a, const char *b);

/* printf into err->text, prefixed "NAME, line N: " (N > 0) or "NAME: ". */
void maps_error_set(maps_error *err, const char *name, unsigned line,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The exact entry for key (already folded), or NULL. */
const maps_entry *maps_find(const maps_table *t, const char *key);

/* ---- maps-value.c: syntax of keys and values ---- */
bool maps_utf8_valid(const char *s, size_t len);
/* A domain: LDH/underscore/UTF-8 labels of 1..63 bytes, at most 255 bytes,
 * or an address literal [..]. */
bool maps_domain_valid(const char *s, size_t len);
/* A local part: 1..MAPS_KEY_MAX bytes, printable, no blank, no ','. */
bool maps_local_valid(const char *s, size_t len);
/* s starts with "did:" (any case). */
bool maps_is_did(const char *s);
/* An address item of a virtual/canonical value (an address, a DID, or
 * "@domain" when at_ok); DIDs are lower-cased in place.  NULL or a static
 * reason. */
const char *maps_item_check(char *item, size_t len, bool at_ok);

/* ---- maps-cidr.c: network keys ---- */
/* key is a network key (IP address, partial IPv4, or CIDR): fills n (not
 * key/value/line) and returns 1; 0: not a network key; -1: looks like one
 * but is wrong (*why_r). */
int maps_net_parse(const char *key, maps_net *n, const char **why_r);
/* Sort the networks, group them, find duplicates: NULL or the duplicate. */
const maps_net *maps_net_index(maps_table *t, const maps_net **first_r);
const maps_net *maps_net_find(const maps_table *t, const uint8_t addr[16],
			      int family);

#endif
