/*
 * config.h — typed configuration: a schema table per component, a parser
 * for `key = value` files, and the `--check-config` / "show non-default"
 * machinery (STYLE.md "Configuration is a typed schema").
 *
 * File syntax (Postfix main.cf style):
 *   # comment                   whole-line comments only
 *   key = value                 surrounding blanks trimmed
 *       continued value         a line starting with a blank continues the
 *                               previous value (joined with one space)
 * Keys are [a-z0-9_]+.  Unknown keys, duplicates, bad values and values
 * outside [min, max] are errors; the parser collects every error (up to
 * CFG_ERRORS_MAX) with its line number instead of stopping at the first.
 *
 * Types and value syntax:
 *   CFG_STRING    any text up to CFG_VALUE_MAX bytes, no control characters
 *   CFG_INT       decimal, within [min, max]
 *   CFG_BOOL      yes/no, true/false, on/off, 1/0
 *   CFG_DURATION  N with an optional unit s, m, h, d (seconds), in [min,max]
 *   CFG_SIZE      N with an optional unit k, m, g (x1024), in [min, max]
 *   CFG_LIST      comma- or blank-separated words
 *
 * Limits: file CFG_FILE_MAX bytes, line CFG_LINE_MAX, value CFG_VALUE_MAX.
 * Pure: no I/O except cfg_print_* writing to a FILE the caller gives.
 */
#ifndef AMP_CONFIG_H
#define AMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_FILE_MAX   (1024u * 1024u)
#define CFG_LINE_MAX   4096u
#define CFG_VALUE_MAX  4096u
#define CFG_ERRORS_MAX 32u
#define CFG_ERROR_TEXT 160u

typedef enum cfg_type {
	CFG_STRING,
	CFG_INT,
	CFG_BOOL,
	CFG_DURATION,
	CFG_SIZE,
	CFG_LIST,
} cfg_type;

typedef struct cfg_key {
	const char *name;
	cfg_type type;
	const char *def;      /* default, in file syntax; never NULL */
	int64_t min, max;     /* CFG_INT, CFG_DURATION, CFG_SIZE */
	bool reloadable;      /* may change on SIGHUP */
	const char *doc;      /* one or more sentences; never NULL or empty */
} cfg_key;

typedef struct cfg_schema {
	const char *component; /* "aftersmtpd", … */
	const cfg_key *keys;
	size_t n_keys;
} cfg_schema;

typedef struct cfg_error {
	unsigned line;                 /* 0: not tied to a line */
	char text[CFG_ERROR_TEXT];
} cfg_error;

typedef struct cfg_errors {
	cfg_error e[CFG_ERRORS_MAX];
	size_t n;
	bool truncated;                /* more errors than CFG_ERRORS_MAX */
} cfg_errors;

/* The parsed values of one schema.  Every key has a value: the file's or
 * the default. */
typedef struct cfg cfg;

/* Check the schema itself: names well-formed and unique, docs present,
 * defaults valid for their type and range.  0, or -1 with errs filled. */
int cfg_schema_check(const cfg_schema *schema, cfg_errors *errs);

/* Parse text (len bytes, no NUL needed) against schema.  On success
 * returns 0 and *cfg_r; else -1, *cfg_r NULL and every error in errs. */
int cfg_parse(const cfg_schema *schema, const char *text, size_t len,
	      cfg **cfg_r, cfg_errors *errs);
/* Values of the defaults alone (for a node started without a file). */
int cfg_defaults(const cfg_schema *schema, cfg **cfg_r, cfg_errors *errs);
void cfg_free(cfg **c);

/* Typed getters; the key must exist in the schema with that type (a
 * mismatch is a bug and aborts). */
const char *cfg_str(const cfg *c, const char *key);
int64_t cfg_int(const cfg *c, const char *key);   /* INT, DURATION, SIZE */
bool cfg_bool(const cfg *c, const char *key);
/* CFG_LIST: number of words, and word i. */
size_t cfg_list_len(const cfg *c, const char *key);
const char *cfg_list_item(const cfg *c, const char *key, size_t i);

/* A CFG_DURATION value ("N" with an optional unit s, m, h, d) in seconds,
 * for command-line options that take the same syntax. */
bool cfg_parse_duration(const char *s, int64_t *seconds_r);

/* Keys whose value differs between old and new that are not reloadable;
 * writes their names into errs.  0 when a reload may proceed. */
int cfg_reload_check(const cfg *old_cfg, const cfg *new_cfg, cfg_errors *errs);

/* "key = value" for every key (or only those not at their default), in
 * schema order: the `postconf -n` view. */
void cfg_print(const cfg *c, bool non_default_only, FILE *out);
/* The schema as a Markdown table: key, type, default, range, reload, doc. */
void cfg_print_doc(const cfg_schema *schema, FILE *out);
/* "FILE:LINE: text" for each error, and a final count line. */
void cfg_print_errors(const cfg_errors *errs, const char *file, FILE *out);

#endif
