/*
 * dkim-common.c — the helpers dkim-verify.c, arc.c, didsig.c and
 * dkim-sign.c share (dkim-common.h).  Nothing here keeps state; the only
 * allocations are dkc_fields_read's table and dkc_fold_create's buffer,
 * both sized by the caller's limit, and aborting when memory runs out.
 */
#include "dkim-common.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Bytes ---- */

uint8_t dkc_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

bool dkc_mem_ieq(const uint8_t *a, size_t an, const char *b)
{
	return dkc_mem_ieq2(a, an, (const uint8_t *)b, strlen(b));
}

bool dkc_mem_ieq2(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (dkc_lower(a[i]) != dkc_lower(b[i]))
			return false;
	return true;
}

/* ---- Tags ---- */

bool dkc_dname_ok(const uint8_t *p, size_t n)
{
	size_t label = 0;
	if (n == 0 || n > DKIM_VERIFY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

bool dkc_parse_num(const dkim_tags *tg, const dkim_tag *t, uint64_t *v_r)
{
	const uint8_t *p = tg->text + t->value_off;
	uint64_t v = 0;
	if (t->value_len == 0 || t->value_len > 18)
		return false;
	for (size_t i = 0; i < t->value_len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*v_r = v;
	return true;
}

bool dkc_b64_decode(const char *s, size_t n, uint8_t *out, size_t max,
		    size_t *len_r)
{
	const char *end = NULL;
	if (n == 0)
		return false;
	if (sodium_base642bin(out, max, s, n, NULL, len_r, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return end == s + n;
}

bool dkc_b64_tag(const dkim_tags *tg, const dkim_tag *t, uint8_t *out,
		 size_t max, size_t *len_r)
{
	char b64[DKC_B64_MAX];
	size_t n = dkim_tag_value_nows(tg, t, b64, sizeof(b64));
	return n < sizeof(b64) && dkc_b64_decode(b64, n, out, max, len_r);
}

/* One side of c=: 1 relaxed, 0 simple, -1 neither. */
static int canon_name(const uint8_t *p, size_t n)
{
	if (n == 7 && memcmp(p, "relaxed", 7) == 0)
		return 1;
	if (n == 6 && memcmp(p, "simple", 6) == 0)
		return 0;
	return -1;
}

bool dkc_parse_c(const dkim_tags *tg, const dkim_tag *t, bool *hrelaxed_r,
		 bool *brelaxed_r)
{
	const uint8_t *p = tg->text + t->value_off;
	const uint8_t *sl = memchr(p, '/', t->value_len);
	size_t hn = sl != NULL ? (size_t)(sl - p) : t->value_len;
	int h = canon_name(p, hn), b = 0;

	if (h < 0)
		return false;
	if (sl != NULL) {
		b = canon_name(sl + 1, t->value_len - hn - 1);
		if (b < 0)
			return false;
	}
	*hrelaxed_r = h == 1;
	*brelaxed_r = b == 1;
	return true;
}

size_t dkc_value_end(const uint8_t *msg, const mail_field *f)
{
	size_t vend = f->off + f->len;
	if (vend > f->value_off && msg[vend - 1] == '\n')
		vend--;
	if (vend > f->value_off && msg[vend - 1] == '\r')
		vend--;
	return vend;
}

int dkc_field_tags(const uint8_t *msg, const mail_field *f, dkim_tags *tg,
		   const char **error_r)
{
	return dkim_tags_parse(msg + f->value_off,
			       dkc_value_end(msg, f) - f->value_off, tg,
			       error_r);
}

int dkc_fields_read(const uint8_t *msg, size_t len, size_t max_header,
		    size_t max_fields, mail_field **fields_r, size_t *nf_r,
		    size_t *body_off_r, const char **error_r)
{
	mail_header_iter it;
	mail_field f, *fields;
	size_t nf = 0;

	if (max_fields == 0 || max_fields > SIZE_MAX / sizeof(*fields))
		abort(); /* the caller's bug */
	fields = malloc(max_fields * sizeof(*fields));
	if (fields == NULL)
		abort();
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (f.off + f.len > max_header) {
			*error_r = "header section too large";
			goto refuse;
		}
		if (nf == max_fields) {
			*error_r = "too many header fields";
			goto refuse;
		}
		fields[nf++] = f;
	}
	*fields_r = fields;
	*nf_r = nf;
	*body_off_r = it.body_off;
	return 0;
refuse:
	free(fields);
	return -1;
}

int dkc_hlist_add(void *ctx, const uint8_t *p, size_t n)
{
	dkc_hlist *l = ctx;
	if (n == 0) {
		l->bad = true;
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] < 33 || p[i] > 126 || p[i] == ':') {
			l->bad = true;
			return 1;
		}
	if (l->n == DKC_MAX_H) {
		l->too_many = true;
		return 1;
	}
	if (dkc_mem_ieq(p, n, "from"))
		l->has_from = true;
	l->h[l->n].p = p;
	l->h[l->n].n = n;
	l->n++;
	return 0;
}

bool dkc_hlist_has(const dkc_hlist *hl, const char *name)
{
	for (size_t j = 0; j < hl->n; j++)
		if (dkc_mem_ieq(hl->h[j].p, hl->h[j].n, name))
			return true;
	return false;
}

/* ---- Hashing ---- */

void dkc_hash_emit(void *ctx, const uint8_t *p, size_t n)
{
	if (gnutls_hash((gnutls_hash_hd_t)ctx, p, n) < 0)
		abort(); /* only on a bad handle: a bug */
}

gnutls_hash_hd_t dkc_hash_new(void)
{
	gnutls_hash_hd_t hd;
	if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0)
		abort();
	return hd;
}

void dkc_canon_header(bool relaxed, const uint8_t *msg, const mail_field *f,
		      bool crlf, dkim_emit_fn *emit, void *ctx)
{
	if (relaxed)
		dkim_canon_header_relaxed(msg, f, crlf, emit, ctx);
	else
		dkim_canon_header_simple(msg, f, crlf, emit, ctx);
}

typedef struct bodyemit {
	gnutls_hash_hd_t hd;
	bool limited;
	uint64_t limit; /* bytes still to hash when limited */
	uint64_t total; /* canonical body bytes seen */
} bodyemit;

static void body_emit(void *ctx, const uint8_t *p, size_t n)
{
	bodyemit *b = ctx;
	size_t take = n;
	b->total += n;
	if (b->limited) {
		if (take > b->limit)
			take = (size_t)b->limit;
		b->limit -= take;
	}
	if (take > 0)
		dkc_hash_emit(b->hd, p, take);
}

void dkc_body_digest(const uint8_t *body, size_t len, bool relaxed,
		     bool limited, uint64_t limit, uint8_t digest[32],
		     uint64_t *total_r)
{
	bodyemit be = {.hd = dkc_hash_new(), .limited = limited,
		       .limit = limit, .total = 0};
	if (relaxed)
		dkim_canon_body_relaxed(body, len, body_emit, &be);
	else
		dkim_canon_body_simple(body, len, body_emit, &be);
	gnutls_hash_deinit(be.hd, digest);
	if (total_r != NULL)
		*total_r = be.total;
}

void dkc_hash_fields(const uint8_t *msg, const mail_field *fields, size_t nf,
		     const dkc_hlist *hl, bool relaxed, dkim_emit_fn *emit,
		     void *ctx)
{
	for (size_t j = 0; j < hl->n; j++) {
		const dkc_hname *h = &hl->h[j];
		size_t used = 0;
		for (size_t k = 0; k < j; k++)
			if (dkc_mem_ieq2(hl->h[k].p, hl->h[k].n, h->p, h->n))
				used++;
		for (size_t k = nf; k-- > 0;) {
			const mail_field *f = &fields[k];
			if (f->malformed ||
			    !dkc_mem_ieq2(msg + f->off, f->name_len, h->p, h->n))
				continue;
			if (used-- == 0) {
				dkc_canon_header(relaxed, msg, f, true, emit,
						 ctx);
				break;
			}
		}
		/* not found: the null string, nothing hashed */
	}
}

void dkc_canon_without_b(const uint8_t *msg, const mail_field *f,
			 const dkim_tags *tg, bool relaxed, uint8_t *scratch,
			 dkim_emit_fn *emit, void *ctx)
{
	const dkim_tag *bt = dkim_tags_get(tg, "b");
	size_t vend = dkc_value_end(msg, f);
	size_t eq = f->value_off + bt->name_off + bt->name_len;
	while (msg[eq] != '=')
		eq++;
	size_t cut = f->value_off + bt->value_off + bt->value_len;
	size_t a = eq + 1 - f->off, b = vend - cut;
	memcpy(scratch, msg + f->off, a);
	memcpy(scratch + a, msg + cut, b);
	mail_field sf = *f;
	sf.off = 0;
	sf.len = a + b;
	sf.value_off = f->value_off - f->off;
	dkc_canon_header(relaxed, scratch, &sf, false, emit, ctx);
}

int dkc_canon_text(const char *text, bool crlf, dkim_emit_fn *emit,
		   void *ctx)
{
	const uint8_t *s = (const uint8_t *)text;
	size_t n = strlen(text);
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, s, n);
	if (mail_header_next(&it, &f) != 1 || f.malformed ||
	    f.off + f.len != n)
		return -1;
	dkim_canon_header_relaxed(s, &f, crlf, emit, ctx);
	return 0;
}

/* ---- Writing a folded field ---- */

dkc_fold *dkc_fold_create(size_t max)
{
	dkc_fold *fo;
	if (max > SIZE_MAX - sizeof(*fo) - 1)
		abort(); /* the caller's bug */
	fo = calloc(1, sizeof(*fo) + max + 1);
	if (fo == NULL)
		abort();
	fo->max = max;
	return fo;
}

void dkc_fold_destroy(dkc_fold **fo)
{
	if (fo == NULL || *fo == NULL)
		return;
	free(*fo);
	*fo = NULL;
}

void dkc_fold_raw(dkc_fold *fo, const char *p, size_t n)
{
	if (fo->overflow || n > fo->max - fo->n) {
		fo->overflow = true;
		return;
	}
	memcpy(fo->s + fo->n, p, n);
	fo->n += n;
	fo->s[fo->n] = '\0';
	fo->col += n;
}

void dkc_fold_tok(dkc_fold *fo, const char *tok, size_t n, bool space)
{
	if (fo->col + (space ? 1 : 0) + n > DKC_FOLD_COLS && fo->col > 1) {
		dkc_fold_raw(fo, "\r\n ", 3);
		fo->col = 1;
	} else if (space) {
		dkc_fold_raw(fo, " ", 1);
	}
	dkc_fold_raw(fo, tok, n);
}

void dkc_fold_str(dkc_fold *fo, const char *tok, bool space)
{
	dkc_fold_tok(fo, tok, strlen(tok), space);
}

void dkc_fold_fmt(dkc_fold *fo, bool space, const char *fmt, ...)
{
	char tok[DKC_TOKEN_MAX];
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(tok, sizeof(tok), fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= sizeof(tok))
		abort(); /* the callers bound what they format */
	dkc_fold_tok(fo, tok, (size_t)m, space);
}

void dkc_fold_sig_tags(dkc_fold *fo, const char *domain,
		       const char *selector, uint64_t t, const char *const *h,
		       size_t h_count, const char *bh)
{
	dkc_fold_str(fo, "c=relaxed/relaxed;", true);
	dkc_fold_fmt(fo, true, "d=%s;", domain);
	dkc_fold_fmt(fo, true, "s=%s;", selector);
	dkc_fold_fmt(fo, true, "t=%llu;", (unsigned long long)t);
	for (size_t j = 0; j < h_count; j++)
		dkc_fold_fmt(fo, j == 0, "%s%s%s", j == 0 ? "h=" : "", h[j],
			     j + 1 == h_count ? ";" : ":");
	dkc_fold_fmt(fo, true, "bh=%s;", bh);
	dkc_fold_str(fo, "b=", true);
}

void dkc_fold_b64(dkc_fold *fo, const char *v)
{
	for (size_t off = 0, n = strlen(v); off < n;) {
		size_t room = fo->col < DKC_FOLD_COLS ? DKC_FOLD_COLS - fo->col
						      : 0;
		if (room == 0) {
			dkc_fold_raw(fo, "\r\n ", 3);
			fo->col = 1;
			continue;
		}
		if (room > n - off)
			room = n - off;
		dkc_fold_raw(fo, v + off, room);
		off += room;
	}
}
