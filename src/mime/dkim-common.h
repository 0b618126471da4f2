/*
 * dkim-common.h — what the DKIM-family modules of libampmime share
 * (prefix dkc_): dkim-verify.c, arc.c, didsig.c and dkim-sign.c.  Before
 * it, each of them kept its own copy of these helpers.  Internal to
 * src/mime: not installed, not for callers outside the library.  Pure: no
 * I/O, no logging; out of memory aborts (STYLE.md).
 *
 * What is here:
 *   - the header section read into a bounded field table;
 *   - bytes: ASCII case folding and case-insensitive compares;
 *   - tags: d=/s= names, decimal values, base64 values, c=, the tag list
 *     of a field, the h= list (dkim_tag_value_split's callback);
 *   - hashing: SHA-256 through GnuTLS as a dkim_emit_fn, the body digest
 *     with an optional l= limit, the h= fields (bottom-most unused instance
 *     first, RFC 6376 §5.4.2), a signature field with b='s value cut out,
 *     one field's text canonicalised;
 *   - writing: a field folded within 78 columns, with a cap fixed at
 *     creation (dkc_fold).
 */
#ifndef AMP_DKIM_COMMON_H
#define AMP_DKIM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "dkim-sign.h"
#include "dkim-tags.h"
#include "dkim-verify.h"
#include "mail-header.h"

#define DKC_MAX_H DKIM_VERIFY_MAX_H /* names in one h= list */
#define DKC_B64_MAX 1024            /* base64 text of a b= or bh= value */
#define DKC_TOKEN_MAX 512           /* one token written by dkc_fold_fmt */
#define DKC_FOLD_COLS 78            /* columns a folded line stays within */

/* ---- Bytes ---- */

/* c in lower case when it is an ASCII capital. */
uint8_t dkc_lower(uint8_t c);
/* a[0..an) equals the string b, ASCII case ignored. */
bool dkc_mem_ieq(const uint8_t *a, size_t an, const char *b);
/* a[0..an) equals b[0..bn), ASCII case ignored. */
bool dkc_mem_ieq2(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* ---- Tags ---- */

/* A domain or selector as d=, s= and i= carry it: labels of
 * [A-Za-z0-9_-], 1..63 bytes, 1..DKIM_VERIFY_NAME_MAX bytes in all, no
 * empty label (so no leading, trailing or double dot). */
bool dkc_dname_ok(const uint8_t *p, size_t n);

/* t's value as a decimal number of 1..18 digits. */
bool dkc_parse_num(const dkim_tags *tg, const dkim_tag *t, uint64_t *v_r)
	__attribute__((warn_unused_result));

/* base64 s[0..n) (blanks already removed), not empty, decoded as a whole
 * into out (at most max bytes); *len_r the decoded length. */
bool dkc_b64_decode(const char *s, size_t n, uint8_t *out, size_t max,
		    size_t *len_r) __attribute__((warn_unused_result));
/* t's value with blanks removed (at most DKC_B64_MAX - 1 bytes of text),
 * decoded by dkc_b64_decode. */
bool dkc_b64_tag(const dkim_tags *tg, const dkim_tag *t, uint8_t *out,
		 size_t max, size_t *len_r) __attribute__((warn_unused_result));

/* c= (t not NULL): "relaxed" or "simple", then optionally "/" and one of
 * them for the body; false for anything else.  Sets *hrelaxed_r and
 * *brelaxed_r (simple when not named). */
bool dkc_parse_c(const dkim_tags *tg, const dkim_tag *t, bool *hrelaxed_r,
		 bool *brelaxed_r) __attribute__((warn_unused_result));

/* Where f's value ends, without the field's final line end. */
size_t dkc_value_end(const uint8_t *msg, const mail_field *f);
/* Parse f's value (up to dkc_value_end) as a tag list into *tg, which
 * borrows msg.  0, or -1 with *error_r (static). */
int dkc_field_tags(const uint8_t *msg, const mail_field *f, dkim_tags *tg,
		   const char **error_r) __attribute__((warn_unused_result));

/* Walk the header section of msg into a malloc'd table of at most
 * max_fields fields (*fields_r, owned by the caller; max_fields entries
 * allocated), *nf_r of them, *body_off_r where the body starts.  -1 with
 * *error_r (and nothing allocated) when a field ends past max_header
 * bytes or there are more than max_fields fields. */
int dkc_fields_read(const uint8_t *msg, size_t len, size_t max_header,
		    size_t max_fields, mail_field **fields_r, size_t *nf_r,
		    size_t *body_off_r, const char **error_r)
	__attribute__((warn_unused_result));

/* An h= list: names borrowed from the tag text (or static strings). */
typedef struct dkc_hname {
	const uint8_t *p;
	size_t n;
} dkc_hname;

typedef struct dkc_hlist {
	dkc_hname h[DKC_MAX_H];
	size_t n;
	bool too_many; /* more than DKC_MAX_H names */
	bool bad;      /* an empty name, or a byte outside %x21-7E, or ':' */
	bool has_from; /* "from" (any case) is listed */
} dkc_hlist;

/* dkim_tag_value_split's callback filling a zeroed dkc_hlist (ctx): 1
 * (stop) with too_many or bad set, else 0. */
int dkc_hlist_add(void *ctx, const uint8_t *p, size_t n);
/* name is in the list, ASCII case ignored. */
bool dkc_hlist_has(const dkc_hlist *hl, const char *name);

/* ---- Hashing ---- */

/* A dkim_emit_fn feeding a gnutls_hash_hd_t (ctx). */
void dkc_hash_emit(void *ctx, const uint8_t *p, size_t n);
/* A new SHA-256 context (GnuTLS); aborts if there is none. */
gnutls_hash_hd_t dkc_hash_new(void);

/* One field canonicalised, relaxed or simple, then CRLF if crlf. */
void dkc_canon_header(bool relaxed, const uint8_t *msg, const mail_field *f,
		      bool crlf, dkim_emit_fn *emit, void *ctx);

/* SHA-256 of body[0..len) canonicalised (relaxed or simple); when
 * limited, only the first limit canonical bytes are hashed.  *total_r:
 * the canonical body's length (may be NULL). */
void dkc_body_digest(const uint8_t *body, size_t len, bool relaxed,
		     bool limited, uint64_t limit, uint8_t digest[32],
		     uint64_t *total_r);

/* The fields hl names, in h= order, each the bottom-most instance in
 * fields[0..nf) not used by an earlier entry of the same name (a name
 * with no instance left adds nothing: over-signing), canonicalised with
 * CRLF into emit.  Malformed fields never match. */
void dkc_hash_fields(const uint8_t *msg, const mail_field *fields, size_t nf,
		     const dkc_hlist *hl, bool relaxed, dkim_emit_fn *emit,
		     void *ctx);

/* The signature field f (tags tg, parsed from msg, with a b= tag)
 * canonicalised without its final CRLF and with b='s value removed: the
 * blanks before the value and inside it go, those after it stay
 * (dkimpy's reading of RFC 6376 §3.5).  scratch holds f->len bytes. */
void dkc_canon_without_b(const uint8_t *msg, const mail_field *f,
			 const dkim_tags *tg, bool relaxed, uint8_t *scratch,
			 dkim_emit_fn *emit, void *ctx);

/* text, which must be exactly one well-formed field, canonicalised
 * relaxed (then CRLF if crlf).  0, or -1 (nothing emitted) when it is
 * not one field. */
int dkc_canon_text(const char *text, bool crlf, dkim_emit_fn *emit,
		   void *ctx) __attribute__((warn_unused_result));

/* ---- Writing a folded field ---- */

/* Text of at most max bytes (NUL-terminated in s); anything that would
 * pass max sets overflow, which stays set, and is not written. */
typedef struct dkc_fold {
	size_t n, col, max;
	bool overflow;
	char s[];
} dkc_fold;

/* A zeroed fold of max bytes (aborts when out of memory); the caller
 * owns it (dkc_fold_destroy). */
dkc_fold *dkc_fold_create(size_t max) __attribute__((warn_unused_result));
/* Accepts NULL; sets *fo to NULL. */
void dkc_fold_destroy(dkc_fold **fo);
/* n bytes of p as they are (col counts them). */
void dkc_fold_raw(dkc_fold *fo, const char *p, size_t n);
/* n bytes of tok, after a space when space; folded first ("\r\n ") when
 * the line would pass DKC_FOLD_COLS columns. */
void dkc_fold_tok(dkc_fold *fo, const char *tok, size_t n, bool space);
void dkc_fold_str(dkc_fold *fo, const char *tok, bool space);
/* A token formatted (at most DKC_TOKEN_MAX - 1 bytes: longer is the
 * caller's bug, abort), then as dkc_fold_tok. */
void dkc_fold_fmt(dkc_fold *fo, bool space, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The tags a DKIM-Signature and an ARC-Message-Signature we write share,
 * after a= : "c=relaxed/relaxed; d=domain; s=selector; t=t; h=h[0]:...;
 * bh=bh; b=" (b='s value follows: dkc_fold_b64).  domain and selector
 * are bounded by dkim_name_ok, h names are short constants. */
void dkc_fold_sig_tags(dkc_fold *fo, const char *domain,
		       const char *selector, uint64_t t, const char *const *h,
		       size_t h_count, const char *bh);
/* A base64 value (b=), filling each line to DKC_FOLD_COLS columns (FWS
 * in b= is ignored by verifiers, RFC 6376 §3.5). */
void dkc_fold_b64(dkc_fold *fo, const char *v);

#endif
