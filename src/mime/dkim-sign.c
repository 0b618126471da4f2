/*
 * dkim-sign.c — DKIM signing (dkim-sign.h): relaxed/relaxed
 * canonicalisation, the body and header hashes, rsa-sha256 and
 * ed25519-sha256 signatures through GnuTLS, key generation.
 *
 * The canonical forms are never stored: they go through a 4 KiB buffer
 * into a streaming SHA-256 (dkc_hash_emit; the field is written with
 * dkim-common.h's dkc_fold, shared with ARC and the AMP-DID-Signature).  The header section is walked
 * with mail-header.h's iterator, once to count the signed fields and once
 * per h= entry to find its instance (h= has at most 12 + DKIM_MAX_FROM + 1
 * entries, the header section at most DKIM_MAX_HEADER bytes).
 *
 * rsa-sha256: PKCS#1 v1.5 over SHA-256 of the canonical header data.
 * ed25519-sha256 (RFC 8463 §3): PureEdDSA over the 32-byte SHA-256 of the
 * same data.  Either way the header hash is computed here and handed to
 * GnuTLS (gnutls_privkey_sign_hash2 for RSA, sign_data2 for Ed25519).
 *
 * Secrets: the key stays inside the gnutls_privkey_t; PEM text made by
 * dkim_keygen is wiped when GnuTLS's copy is freed and by dkim_pem_free.
 */
#include "dkim-sign.h"

#include "dkim-common.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dkim_key {
	gnutls_privkey_t priv;
	dkim_alg alg;
};

/* The fields we sign, in h= order (lower case, as written in h=). */
static const char *const signed_names[] = {
	"from", "to", "cc", "subject", "date", "message-id", "mime-version",
	"content-type", "content-transfer-encoding", "reply-to",
	"in-reply-to", "references",
};
#define N_SIGNED (sizeof(signed_names) / sizeof(signed_names[0]))
#define MAX_H (N_SIGNED + DKIM_MAX_FROM + 1)
#define SIG_MAX 4096 /* the DKIM-Signature field we write */

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* ---- Emitters ---- */

typedef struct outbuf {
	uint8_t b[4096];
	size_t n;
	dkim_emit_fn *emit;
	void *ctx;
} outbuf;

static void ob_flush(outbuf *o)
{
	if (o->n > 0)
		o->emit(o->ctx, o->b, o->n);
	o->n = 0;
}

static void ob_put(outbuf *o, uint8_t c)
{
	if (o->n == sizeof(o->b))
		ob_flush(o);
	o->b[o->n++] = c;
}

/* ---- Canonicalisation ---- */

void dkim_canon_header_relaxed(const uint8_t *msg, const mail_field *f,
			       bool crlf, dkim_emit_fn *emit, void *ctx)
{
	outbuf o = {.n = 0, .emit = emit, .ctx = ctx};
	size_t end = f->off + f->len;
	bool ws = false, any = false;

	for (size_t i = f->off; i < f->off + f->name_len; i++) {
		uint8_t c = msg[i];
		ob_put(&o, (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c);
	}
	ob_put(&o, ':');
	for (size_t i = f->value_off; i < end; i++) {
		uint8_t c = msg[i];
		if (c == '\n' || (c == '\r' && (i + 1 == end ||
						msg[i + 1] == '\n')))
			continue; /* unfold: line ends go, blanks stay */
		if (is_wsp(c)) {
			ws = true;
			continue;
		}
		if (ws && any)
			ob_put(&o, ' ');
		ws = false;
		any = true;
		ob_put(&o, c);
	}
	if (crlf) {
		ob_put(&o, '\r');
		ob_put(&o, '\n');
	}
	ob_flush(&o);
}

void dkim_canon_body_relaxed(const uint8_t *body, size_t len,
			     dkim_emit_fn *emit, void *ctx)
{
	outbuf o = {.n = 0, .emit = emit, .ctx = ctx};
	size_t empty = 0;      /* empty lines not yet written */
	bool line_any = false; /* this line has written a byte */
	bool ws = false;       /* WSP pending in this line */

	for (size_t i = 0; i < len; i++) {
		uint8_t c = body[i];
		if (c == '\n' || (c == '\r' && i + 1 < len &&
				  body[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			if (line_any) {
				ob_put(&o, '\r');
				ob_put(&o, '\n');
			} else {
				empty++;
			}
			line_any = ws = false;
			continue;
		}
		if (is_wsp(c)) {
			ws = true;
			continue;
		}
		if (!line_any) {
			for (; empty > 0; empty--) {
				ob_put(&o, '\r');
				ob_put(&o, '\n');
			}
		}
		if (ws)
			ob_put(&o, ' '); /* leading WSP too: one SP stays */
		ws = false;
		line_any = true;
		ob_put(&o, c);
	}
	if (line_any) { /* a last line without its CRLF */
		ob_put(&o, '\r');
		ob_put(&o, '\n');
	}
	ob_flush(&o);
}

void dkim_canon_header_simple(const uint8_t *msg, const mail_field *f,
			      bool crlf, dkim_emit_fn *emit, void *ctx)
{
	outbuf o = {.n = 0, .emit = emit, .ctx = ctx};
	size_t end = f->off + f->len;
	size_t vend = end; /* without the final line end */

	if (vend > f->off && msg[vend - 1] == '\n')
		vend--;
	if (vend > f->off && msg[vend - 1] == '\r')
		vend--;
	for (size_t i = f->off; i < vend; i++) {
		uint8_t c = msg[i];
		if (c == '\r' && i + 1 < vend && msg[i + 1] == '\n')
			continue; /* the LF writes the CRLF */
		if (c == '\n') {
			ob_put(&o, '\r');
			ob_put(&o, '\n');
			continue;
		}
		ob_put(&o, c);
	}
	if (crlf) {
		ob_put(&o, '\r');
		ob_put(&o, '\n');
	}
	ob_flush(&o);
}

void dkim_canon_body_simple(const uint8_t *body, size_t len,
			    dkim_emit_fn *emit, void *ctx)
{
	outbuf o = {.n = 0, .emit = emit, .ctx = ctx};
	size_t empty = 0;      /* empty lines not yet written */
	bool line_any = false; /* this line has a byte */
	bool wrote = false;    /* something was written */

	for (size_t i = 0; i < len; i++) {
		uint8_t c = body[i];
		if (c == '\n' || (c == '\r' && i + 1 < len &&
				  body[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			if (line_any) {
				ob_put(&o, '\r');
				ob_put(&o, '\n');
			} else {
				empty++;
			}
			line_any = false;
			continue;
		}
		if (!line_any) {
			for (; empty > 0; empty--) {
				ob_put(&o, '\r');
				ob_put(&o, '\n');
			}
		}
		line_any = wrote = true;
		ob_put(&o, c);
	}
	if (line_any || !wrote) { /* a last line without its CRLF, or an
				     empty body: one CRLF */
		ob_put(&o, '\r');
		ob_put(&o, '\n');
	}
	ob_flush(&o);
}

/* ---- Helpers ---- */

static int b64(const uint8_t *p, size_t n, char **out_r)
{
	size_t sz = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(sz);
	if (s == NULL)
		abort();
	sodium_bin2base64(s, sz, p, n, sodium_base64_VARIANT_ORIGINAL);
	*out_r = s;
	return 0;
}

bool dkim_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

/* Walk the header section: counts[i] = instances of signed_names[i];
 * *body_off_r = where the body starts. */
static int scan_header(const uint8_t *msg, size_t len,
		       size_t counts[N_SIGNED], size_t *body_off_r,
		       const char **error_r)
{
	mail_header_iter it;
	mail_field f;

	memset(counts, 0, N_SIGNED * sizeof(counts[0]));
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (f.off + f.len > DKIM_MAX_HEADER) {
			*error_r = "header section too large to sign";
			return -1;
		}
		for (size_t i = 0; i < N_SIGNED; i++)
			if (mail_field_is(msg, &f, signed_names[i]))
				counts[i]++;
	}
	*body_off_r = it.body_off;
	return 0;
}

/* Field number idx (0 = top) named name, or false. */
static bool find_field(const uint8_t *msg, size_t len, const char *name,
		       size_t idx, mail_field *f_r)
{
	mail_header_iter it;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, f_r) == 1) {
		if (mail_field_is(msg, f_r, name)) {
			if (idx == 0)
				return true;
			idx--;
		}
	}
	return false;
}

/* SHA-256 of the canonical header data: the h= fields (bottom-most
 * unused instance first, RFC 6376 §5.4.2) then sig_field without its
 * final CRLF. */
static int header_hash(const uint8_t *msg, size_t len,
		       const char *const *h, size_t h_count,
		       const char *sig_field, uint8_t digest[32],
		       const char **error_r)
{
	gnutls_hash_hd_t hd;
	mail_field f;

	if (h_count > MAX_H) {
		*error_r = "too many fields in h=";
		return -1;
	}
	if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0) {
		*error_r = "SHA-256 unavailable";
		return -1;
	}
	for (size_t j = 0; j < h_count; j++) {
		size_t count = 0, u = 0;
		mail_header_iter it;

		for (size_t i = 0; i < j; i++)
			if (dkc_mem_ieq((const uint8_t *)h[i], strlen(h[i]),
					h[j]))
				u++;
		mail_header_iter_init(&it, msg, len);
		while (mail_header_next(&it, &f) == 1) {
			if (f.off + f.len > DKIM_MAX_HEADER) {
				gnutls_hash_deinit(hd, NULL);
				*error_r = "header section too large to sign";
				return -1;
			}
			if (mail_field_is(msg, &f, h[j]))
				count++;
		}
		if (u >= count)
			continue; /* a null string: over-signing */
		if (!find_field(msg, len, h[j], count - 1 - u, &f))
			abort();
		dkim_canon_header_relaxed(msg, &f, true, dkc_hash_emit, hd);
	}

	/* The signature field itself, through the same canonicalisation. */
	if (dkc_canon_text(sig_field, false, dkc_hash_emit, hd) < 0) {
		gnutls_hash_deinit(hd, NULL);
		*error_r = "bad DKIM-Signature field text";
		return -1;
	}
	gnutls_hash_deinit(hd, digest);
	return 0;
}

int dkim_body_hash(const uint8_t *msg, size_t len, char bh_r[DKIM_BH_SIZE],
		   const char **error_r)
{
	size_t counts[N_SIGNED], body_off;
	gnutls_hash_hd_t hd;
	uint8_t digest[32];

	if (scan_header(msg, len, counts, &body_off, error_r) < 0)
		return -1;
	if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0) {
		*error_r = "SHA-256 unavailable";
		return -1;
	}
	dkim_canon_body_relaxed(msg + body_off, len - body_off, dkc_hash_emit,
				hd);
	gnutls_hash_deinit(hd, digest);
	sodium_bin2base64(bh_r, DKIM_BH_SIZE, digest, sizeof(digest),
			  sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/* ---- Keys ---- */

int dkim_key_load_pem(const char *pem, size_t len, dkim_key **k_r,
		      const char **error_r)
{
	gnutls_privkey_t priv;
	gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)len};
	unsigned bits = 0;
	int pk;
	dkim_key *k;

	if (len > 64 * 1024 || len == 0) {
		*error_r = "key file size out of range";
		return -1;
	}
	if (gnutls_privkey_init(&priv) < 0) {
		*error_r = "gnutls_privkey_init failed";
		return -1;
	}
	if (gnutls_privkey_import_x509_raw(priv, &d, GNUTLS_X509_FMT_PEM,
					   NULL, 0) < 0) {
		gnutls_privkey_deinit(priv);
		*error_r = "not a PEM private key (PKCS#8 RSA or Ed25519)";
		return -1;
	}
	pk = gnutls_privkey_get_pk_algorithm(priv, &bits);
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		abort();
	k->priv = priv;
	if (pk == GNUTLS_PK_RSA) {
		if (bits < 1024) {
			dkim_key_free(&k);
			*error_r = "RSA key shorter than 1024 bits (RFC 8301)";
			return -1;
		}
		k->alg = DKIM_RSA2048;
	} else if (pk == GNUTLS_PK_EDDSA_ED25519) {
		k->alg = DKIM_ED25519;
	} else {
		dkim_key_free(&k);
		*error_r = "key is neither RSA nor Ed25519";
		return -1;
	}
	*k_r = k;
	return 0;
}

void dkim_key_free(dkim_key **k)
{
	if (k == NULL || *k == NULL)
		return;
	gnutls_privkey_deinit((*k)->priv);
	free(*k);
	*k = NULL;
}

dkim_alg dkim_key_alg(const dkim_key *k)
{
	return k->alg;
}

static int sign_digest(const dkim_key *k, const uint8_t digest[32],
		       char **b_r, const char **error_r)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)digest, 32};
	gnutls_datum_t sig = {NULL, 0};
	int rc;

	if (k->alg == DKIM_RSA2048)
		rc = gnutls_privkey_sign_hash2(k->priv, GNUTLS_SIGN_RSA_SHA256,
					       0, &in, &sig);
	else
		rc = gnutls_privkey_sign_data2(k->priv,
					       GNUTLS_SIGN_EDDSA_ED25519, 0,
					       &in, &sig);
	if (rc < 0) {
		*error_r = "signing failed";
		return -1;
	}
	rc = b64(sig.data, sig.size, b_r);
	gnutls_free(sig.data);
	return rc;
}

int dkim_sign_digest(const dkim_key *k, const uint8_t digest[32],
		     char **b_r, const char **error_r)
{
	return sign_digest(k, digest, b_r, error_r);
}

int dkim_sign_raw(const dkim_key *k, const uint8_t *msg, size_t len,
		  const char *const *h, size_t h_count, const char *sig_field,
		  char **b_r, const char **error_r)
{
	uint8_t digest[32];

	if (header_hash(msg, len, h, h_count, sig_field, digest, error_r) < 0)
		return -1;
	return sign_digest(k, digest, b_r, error_r);
}

/* ---- The DKIM-Signature field, folded ---- */

int dkim_sign(const dkim_key *k, const char *domain, const char *selector,
	      const uint8_t *msg, size_t len, uint64_t t, char **header_r,
	      const char **error_r)
{
	size_t counts[N_SIGNED], body_off, h_count = 0;
	const char *h[MAX_H];
	char bh[DKIM_BH_SIZE];
	char *b = NULL;
	dkc_fold *sb;

	if (!dkim_name_ok(domain) || !dkim_name_ok(selector)) {
		*error_r = "bad DKIM domain or selector";
		return -1;
	}
	if (scan_header(msg, len, counts, &body_off, error_r) < 0)
		return -1;
	if (counts[0] == 0) {
		*error_r = "message has no From field";
		return -1;
	}
	if (counts[0] > DKIM_MAX_FROM) {
		*error_r = "too many From fields";
		return -1;
	}
	for (size_t i = 0; i < counts[0] + 1; i++)
		h[h_count++] = signed_names[0];
	for (size_t i = 1; i < N_SIGNED; i++)
		if (counts[i] > 0)
			h[h_count++] = signed_names[i];
	if (dkim_body_hash(msg, len, bh, error_r) < 0)
		return -1;

	sb = dkc_fold_create(SIG_MAX - 1);
	dkc_fold_raw(sb, "DKIM-Signature:", 15);
	dkc_fold_str(sb, "v=1;", true);
	dkc_fold_str(sb, k->alg == DKIM_RSA2048 ? "a=rsa-sha256;"
						 : "a=ed25519-sha256;", true);
	dkc_fold_sig_tags(sb, domain, selector, t, h, h_count, bh);
	if (sb->overflow) {
		dkc_fold_destroy(&sb);
		*error_r = "DKIM-Signature field too long";
		return -1;
	}
	if (dkim_sign_raw(k, msg, len, h, h_count, sb->s, &b, error_r) < 0) {
		dkc_fold_destroy(&sb);
		return -1;
	}
	dkc_fold_b64(sb, b);
	dkc_fold_raw(sb, "\r\n", 2);
	free(b);
	if (sb->overflow) {
		dkc_fold_destroy(&sb);
		*error_r = "DKIM-Signature field too long";
		return -1;
	}
	*header_r = strdup(sb->s);
	dkc_fold_destroy(&sb);
	if (*header_r == NULL)
		abort();
	return 0;
}

/* ---- Key generation ---- */

void dkim_pem_free(char **pem)
{
	if (pem == NULL || *pem == NULL)
		return;
	sodium_memzero(*pem, strlen(*pem));
	free(*pem);
	*pem = NULL;
}

int dkim_keygen(dkim_alg alg, char **key_pem_r, char **txt_record_r,
		const char **error_r)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_privkey_t priv = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t pem = {NULL, 0}, p = {NULL, 0};
	char *p64 = NULL, *txt = NULL, *out = NULL;
	size_t txt_sz;
	int rc = -1;

	*error_r = "key generation failed";
	if (gnutls_x509_privkey_init(&x) < 0)
		return -1;
	if (gnutls_x509_privkey_generate(x, alg == DKIM_RSA2048 ?
					 GNUTLS_PK_RSA :
					 GNUTLS_PK_EDDSA_ED25519,
					 alg == DKIM_RSA2048 ? 2048 : 0,
					 0) < 0)
		goto out;
	if (gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL,
					      GNUTLS_PKCS_PLAIN, &pem) < 0)
		goto out;
	if (gnutls_privkey_init(&priv) < 0 || gnutls_pubkey_init(&pub) < 0)
		goto out;
	if (gnutls_privkey_import_x509(priv, x, 0) < 0)
		goto out;
	if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) < 0)
		goto out;
	if (alg == DKIM_RSA2048) {
		/* p= is the SubjectPublicKeyInfo DER (RFC 6376 §3.6.1) */
		if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &p) < 0)
			goto out;
	} else {
		/* p= is the raw 32-byte public key (RFC 8463 §4.2) */
		gnutls_ecc_curve_t curve;
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &p, NULL, 0) < 0)
			goto out;
	}
	(void)b64(p.data, p.size, &p64);
	txt_sz = strlen(p64) + 64;
	txt = malloc(txt_sz);
	if (txt == NULL)
		abort();
	{
		int n = snprintf(txt, txt_sz, "v=DKIM1; k=%s; p=%s",
				 alg == DKIM_RSA2048 ? "rsa" : "ed25519", p64);
		if (n < 0 || (size_t)n >= txt_sz)
			abort();
	}
	out = malloc(pem.size + 1);
	if (out == NULL)
		abort();
	memcpy(out, pem.data, pem.size);
	out[pem.size] = '\0';
	*key_pem_r = out;
	*txt_record_r = txt;
	txt = NULL;
	rc = 0;
out:
	free(txt);
	free(p64);
	if (p.data != NULL)
		gnutls_free(p.data);
	if (pem.data != NULL) {
		sodium_memzero(pem.data, pem.size);
		gnutls_free(pem.data);
	}
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	if (priv != NULL)
		gnutls_privkey_deinit(priv);
	gnutls_x509_privkey_deinit(x); /* priv only borrowed it */
	return rc;
}
