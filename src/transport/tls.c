/*
 * tls.c — see tls.h.  GnuTLS in non-blocking mode with its transport
 * pointed at two bounded byte queues of the session (in: from the network;
 * out: to the network).  The pull callback reports EAGAIN when the input
 * queue is empty, which surfaces as "need more" to the caller.
 */
#include "tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3"
/* SMTP (STARTTLS, implicit TLS): Internet MTAs still speak TLS 1.2 */
#define PRIORITY_SMTP "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct bytebuf {
	uint8_t *p;
	size_t off, len, cap; /* live bytes are p[off .. off+len) */
} bytebuf;

struct tls_creds {
	gnutls_certificate_credentials_t cred;
};

struct tls_session {
	gnutls_session_t g;
	tls_mode mode;
	bytebuf in, out;
	bool done;
	bool failed;
	bool starved;   /* the pull function found the input queue empty */
};

/* ------------------------------------------------------------- buffers */

static int buf_append(bytebuf *b, const uint8_t *d, size_t n)
{
	if (n > TLS_BUF_MAX - b->len)
		return -1;
	if (b->off + b->len + n > b->cap) {
		if (b->off > 0) { /* compact first */
			memmove(b->p, b->p + b->off, b->len);
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap == 0 ? 16384 : b->cap;
			while (cap < b->len + n)
				cap *= 2;
			if (cap > TLS_BUF_MAX)
				cap = TLS_BUF_MAX;
			uint8_t *p = realloc(b->p, cap);
			if (p == NULL)
				return -1;
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->off + b->len, d, n);
	b->len += n;
	return 0;
}

static void buf_consume(bytebuf *b, size_t n)
{
	if (n >= b->len) {
		b->off = b->len = 0;
	} else {
		b->off += n;
		b->len -= n;
	}
}

static ssize_t push_fn(gnutls_transport_ptr_t ptr, const void *data, size_t n)
{
	tls_session *s = ptr;
	if (buf_append(&s->out, data, n) != 0) {
		gnutls_transport_set_errno(s->g, ENOBUFS);
		return -1;
	}
	return (ssize_t)n;
}

static ssize_t pull_fn(gnutls_transport_ptr_t ptr, void *data, size_t n)
{
	tls_session *s = ptr;
	if (s->in.len == 0) {
		s->starved = true;
		gnutls_transport_set_errno(s->g, EAGAIN);
		return -1;
	}
	if (n > s->in.len)
		n = s->in.len;
	memcpy(data, s->in.p + s->in.off, n);
	buf_consume(&s->in, n);
	return (ssize_t)n;
}

static int pull_timeout_fn(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	tls_session *s = ptr;
	(void)ms;
	return s->in.len > 0 ? 1 : 0;
}

/* ---------------------------------------------------------- credentials */

static char *dup_datum(const gnutls_datum_t *d)
{
	char *s = malloc(d->size + 1);
	if (s != NULL) {
		memcpy(s, d->data, d->size);
		s[d->size] = '\0';
	}
	return s;
}

int tls_creds_generate(const char *name, unsigned days, char **cert_pem_r,
		       char **key_pem_r, const char **error_r)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
	uint8_t serial[16];
	int rc;
	time_t now = time(NULL);

	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0) {
		*error_r = "no randomness";
		return -1;
	}
	serial[0] &= 0x7f; /* a positive serial number */
	rc = gnutls_x509_privkey_init(&key);
	if (rc >= 0)
		rc = gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519, 0, 0);
	if (rc >= 0)
		rc = gnutls_x509_crt_init(&crt);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_version(crt, 3);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_activation_time(crt, now - 3600);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
						   0, name, (unsigned)strlen(name));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
							  name, (unsigned)strlen(name),
							  GNUTLS_FSAN_SET);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key(crt, key);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (rc >= 0)
		rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA512, 0);
	if (rc >= 0)
		rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd);
	if (rc >= 0)
		rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
						       NULL, GNUTLS_PKCS_PLAIN, &kd);
	if (rc >= 0) {
		*cert_pem_r = dup_datum(&cd);
		*key_pem_r = dup_datum(&kd);
		if (*cert_pem_r == NULL || *key_pem_r == NULL) {
			free(*cert_pem_r);
			free(*key_pem_r);
			rc = GNUTLS_E_MEMORY_ERROR;
		}
	}
	if (kd.data != NULL) {
		gnutls_memset(kd.data, 0, kd.size);
		gnutls_free(kd.data);
	}
	gnutls_free(cd.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	if (rc < 0) {
		*error_r = gnutls_strerror(rc);
		return -1;
	}
	return 0;
}

static int creds_new(tls_creds **creds_r, const char **error_r)
{
	tls_creds *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	int rc = gnutls_certificate_allocate_credentials(&c->cred);
	if (rc < 0) {
		free(c);
		*error_r = gnutls_strerror(rc);
		return -1;
	}
	*creds_r = c;
	return 0;
}

int tls_creds_server(const char *cert_pem, const char *key_pem,
		     tls_creds **creds_r, const char **error_r)
{
	tls_creds *c;
	if (creds_new(&c, error_r) != 0)
		return -1;
	gnutls_datum_t cd = { (unsigned char *)cert_pem, (unsigned)strlen(cert_pem) };
	gnutls_datum_t kd = { (unsigned char *)key_pem, (unsigned)strlen(key_pem) };
	int rc = gnutls_certificate_set_x509_key_mem2(c->cred, &cd, &kd,
						      GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		*error_r = gnutls_strerror(rc);
		tls_creds_free(&c);
		return -1;
	}
	*creds_r = c;
	return 0;
}

int tls_creds_client(tls_creds **creds_r, const char **error_r)
{
	return creds_new(creds_r, error_r);
}

int tls_creds_client_smtp(const char *ca_file, tls_creds **creds_r,
			  const char **error_r)
{
	if (creds_new(creds_r, error_r) != 0)
		return -1;
	if (ca_file != NULL) {
		int rc = gnutls_certificate_set_x509_trust_file(
			(*creds_r)->cred, ca_file, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			*error_r = rc < 0 ? gnutls_strerror(rc)
					  : "no CA certificate in the file";
			tls_creds_free(creds_r);
			return -1;
		}
		return 0;
	}
	/* a machine without a CA list can still do DANE and opportunistic
	 * TLS; PKIX checks then fail */
	(void)gnutls_certificate_set_x509_system_trust((*creds_r)->cred);
	return 0;
}

void tls_creds_free(tls_creds **creds)
{
	if (creds == NULL || *creds == NULL)
		return;
	gnutls_certificate_free_credentials((*creds)->cred);
	free(*creds);
	*creds = NULL;
}

/* -------------------------------------------------------------- sessions */

int tls_session_new(tls_creds *creds, bool server, tls_session **s_r,
		    const char **error_r)
{
	return tls_session_new_mode(creds, server, TLS_MODE_AMP, s_r, error_r);
}

int tls_session_new_mode(tls_creds *creds, bool server, tls_mode mode,
			 tls_session **s_r, const char **error_r)
{
	tls_session *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	s->mode = mode;
	gnutls_datum_t alpn = { (unsigned char *)TLS_ALPN, sizeof(TLS_ALPN) - 1 };
	int rc = gnutls_init(&s->g, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
					    GNUTLS_NONBLOCK);
	if (rc >= 0)
		rc = gnutls_priority_set_direct(
			s->g, mode == TLS_MODE_AMP ? PRIORITY : PRIORITY_SMTP, NULL);
	if (rc >= 0)
		rc = gnutls_credentials_set(s->g, GNUTLS_CRD_CERTIFICATE, creds->cred);
	if (rc >= 0 && mode == TLS_MODE_AMP)
		rc = gnutls_alpn_set_protocols(s->g, &alpn, 1, GNUTLS_ALPN_MANDATORY);
	if (rc < 0) {
		*error_r = gnutls_strerror(rc);
		tls_session_free(&s);
		return -1;
	}
	gnutls_transport_set_ptr(s->g, s);
	gnutls_transport_set_push_function(s->g, push_fn);
	gnutls_transport_set_pull_function(s->g, pull_fn);
	gnutls_transport_set_pull_timeout_function(s->g, pull_timeout_fn);
	*s_r = s;
	return 0;
}

void tls_session_free(tls_session **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	tls_session *s = *sp;
	if (s->g != NULL)
		gnutls_deinit(s->g);
	free(s->in.p);
	free(s->out.p);
	free(s);
	*sp = NULL;
}

int tls_feed(tls_session *s, const uint8_t *data, size_t len)
{
	return len == 0 ? 0 : buf_append(&s->in, data, len);
}

bool tls_handshake_done(const tls_session *s)
{
	return s->done;
}

int tls_progress(tls_session *s, const char **error_r)
{
	if (s->failed) {
		*error_r = "TLS session already failed";
		return -1;
	}
	if (s->done)
		return 1;
	int rc;
	/* a warning alert is not fatal: go on while input is buffered */
	do
		rc = gnutls_handshake(s->g);
	while (rc < 0 && rc != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rc) &&
	       s->in.len > 0);
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return 0;
	if (rc < 0) {
		if (!gnutls_error_is_fatal(rc))
			return 0;
		s->failed = true;
		*error_r = gnutls_strerror(rc);
		return -1;
	}
	if (s->mode == TLS_MODE_SMTP) {
		s->done = true;
		return 1;
	}
	gnutls_datum_t sel;
	if (gnutls_alpn_get_selected_protocol(s->g, &sel) < 0 ||
	    sel.size != sizeof(TLS_ALPN) - 1 ||
	    memcmp(sel.data, TLS_ALPN, sel.size) != 0 ||
	    gnutls_protocol_get_version(s->g) != GNUTLS_TLS1_3) {
		s->failed = true;
		*error_r = "peer did not negotiate TLS 1.3 with ALPN amp/1";
		return -1;
	}
	s->done = true;
	return 1;
}

long tls_read(tls_session *s, uint8_t *buf, size_t len, const char **error_r)
{
	if (!s->done || s->failed || len == 0)
		return 0;
	ssize_t n;
	/* Warning alerts and refused renegotiations are not fatal: read on
	 * while records are buffered, so none is left behind.  GNUTLS_E_AGAIN
	 * means "no record" only when our input ran dry: after a TLS 1.3
	 * post-handshake message (NewSessionTicket, KeyUpdate) GnuTLS returns
	 * it too, with the records that came along (an SMTP reply right after
	 * the server's tickets) still buffered, and no more bytes may ever
	 * come to trigger another read.  Each round consumes a record, so
	 * the bound only guards against a GnuTLS that would not. */
	for (unsigned round = 0;; round++) {
		s->starved = false;
		n = gnutls_record_recv(s->g, buf, len);
		if (n >= 0)
			break;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if (s->starved || round >= 4096)
				break;
			continue;
		}
		if (gnutls_error_is_fatal((int)n) || s->in.len == 0)
			break;
	}
	if (n == 0) { /* close_notify: the peer is done */
		s->failed = true;
		*error_r = "the peer closed the TLS session";
		return -1;
	}
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
		return 0;
	if (n < 0) {
		if (!gnutls_error_is_fatal((int)n))
			return 0;
		s->failed = true;
		*error_r = gnutls_strerror((int)n);
		return -1;
	}
	return (long)n;
}

int tls_write(tls_session *s, const uint8_t *data, size_t len,
	      const char **error_r)
{
	if (!s->done || s->failed) {
		*error_r = "TLS session is not established";
		return -1;
	}
	while (len > 0) {
		/* Our push never blocks (it fails when the output queue is
		 * full), so GNUTLS_E_AGAIN cannot loop here. */
		ssize_t n = gnutls_record_send(s->g, data, len);
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0) {
			s->failed = true;
			*error_r = gnutls_strerror((int)n);
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t tls_take_output(tls_session *s, const uint8_t **out_r)
{
	*out_r = s->out.p != NULL ? s->out.p + s->out.off : NULL;
	return s->out.len;
}

void tls_output_consumed(tls_session *s, size_t n)
{
	buf_consume(&s->out, n);
}

int tls_describe(tls_session *s, char *out, size_t out_size)
{
	if (!s->done || out_size == 0)
		return -1;
	const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s->g));
	const char *c = gnutls_cipher_get_name(gnutls_cipher_get(s->g));
	int n = snprintf(out, out_size, "%s with cipher %s", v != NULL ? v : "TLS",
			 c != NULL ? c : "unknown");
	return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

int tls_exporter(tls_session *s, uint8_t out[TLS_EXPORTER_BYTES])
{
	if (!s->done)
		return -1;
	return gnutls_prf_rfc5705(s->g, sizeof(TLS_EXPORTER_LABEL) - 1,
				  TLS_EXPORTER_LABEL, 0, NULL,
				  TLS_EXPORTER_BYTES, (char *)out) < 0
		       ? -1
		       : 0;
}

/* ------------------------------------------------- peer verification */

int tls_set_server_name(tls_session *s, const char *host)
{
	return gnutls_server_name_set(s->g, GNUTLS_NAME_DNS, host,
				      strlen(host)) < 0 ? -1 : 0;
}

int tls_verify_pkix(tls_session *s, const char *host, const char **why_r)
{
	unsigned status = 0;
	if (!s->done) {
		*why_r = "no TLS session";
		return -1;
	}
	int rc = gnutls_certificate_verify_peers3(s->g, host, &status);
	if (rc < 0) {
		*why_r = gnutls_strerror(rc);
		return -1;
	}
	if (status == 0)
		return 0;
	/* an untrusted chain first: its names and dates mean nothing */
	if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA))
		*why_r = "the certificate is not signed by a trusted authority";
	else if (status & GNUTLS_CERT_EXPIRED)
		*why_r = "the certificate has expired";
	else if (status & GNUTLS_CERT_NOT_ACTIVATED)
		*why_r = "the certificate is not valid yet";
	else if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
		*why_r = "the certificate is for another name";
	else
		*why_r = "the certificate is not valid";
	return -1;
}

/* The bytes a TLSA record's selector names: the whole certificate (0) or
 * its SubjectPublicKeyInfo (1), hashed per the matching type. */
static bool tlsa_match(const tls_tlsa *r, const gnutls_datum_t *der)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t spki = { NULL, 0 };
	uint8_t dig[64];
	const uint8_t *p = der->data;
	size_t len = der->size;
	bool ok = false;
	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	if (r->selector == 1) {
		gnutls_pubkey_t pk;
		if (gnutls_pubkey_init(&pk) < 0)
			goto out;
		if (gnutls_pubkey_import_x509(pk, crt, 0) < 0 ||
		    gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &spki) < 0) {
			gnutls_pubkey_deinit(pk);
			goto out;
		}
		gnutls_pubkey_deinit(pk);
		p = spki.data;
		len = spki.size;
	} else if (r->selector != 0) {
		goto out;
	}
	switch (r->mtype) {
	case 0:
		ok = r->len == len && gnutls_memcmp(r->data, p, len) == 0;
		break;
	case 1:
		ok = r->len == 32 &&
		     gnutls_hash_fast(GNUTLS_DIG_SHA256, p, len, dig) >= 0 &&
		     gnutls_memcmp(r->data, dig, 32) == 0;
		break;
	case 2:
		ok = r->len == 64 &&
		     gnutls_hash_fast(GNUTLS_DIG_SHA512, p, len, dig) >= 0 &&
		     gnutls_memcmp(r->data, dig, 64) == 0;
		break;
	default:
		break;
	}
out:
	gnutls_free(spki.data);
	gnutls_x509_crt_deinit(crt);
	return ok;
}

/* DANE-TA: the certificate chain[0..ta] is valid with chain[ta] as the
 * only trust anchor, and chain[0] is for host. */
static bool chain_to(const gnutls_datum_t *chain, unsigned n, unsigned ta,
		     const char *host)
{
	gnutls_x509_crt_t crts[16], anchor;
	unsigned got = 0, status = 1;
	bool ok = false;
	if (ta >= 16 || ta >= n || gnutls_x509_crt_init(&anchor) < 0)
		return false;
	if (gnutls_x509_crt_import(anchor, &chain[ta], GNUTLS_X509_FMT_DER) < 0)
		goto out;
	for (got = 0; got <= ta; got++) {
		if (gnutls_x509_crt_init(&crts[got]) < 0)
			break;
		if (gnutls_x509_crt_import(crts[got], &chain[got],
					   GNUTLS_X509_FMT_DER) < 0) {
			got++;
			break;
		}
	}
	if (got == ta + 1 &&
	    gnutls_x509_crt_list_verify(crts, ta + 1, &anchor, 1, NULL, 0, 0,
					&status) >= 0 &&
	    status == 0 && gnutls_x509_crt_check_hostname(crts[0], host) != 0)
		ok = true;
	for (unsigned i = 0; i < got; i++)
		gnutls_x509_crt_deinit(crts[i]);
out:
	gnutls_x509_crt_deinit(anchor);
	return ok;
}

/* RFC 7672 §3.1.3 and RFC 7671 §4: only DANE-TA(2) and DANE-EE(3), with
 * a selector and matching type we implement, can authenticate an SMTP
 * server; the others are unusable. */
static bool tlsa_usable(const tls_tlsa *r)
{
	return (r->usage == 2 || r->usage == 3) && r->selector <= 1 &&
	       r->mtype <= 2;
}

int tls_verify_dane(tls_session *s, const char *host, const tls_tlsa *rr,
		    size_t n, const char **why_r)
{
	unsigned n_chain = 0;
	const gnutls_datum_t *chain;
	bool usable = false;
	for (size_t i = 0; i < n; i++)
		usable = usable || tlsa_usable(&rr[i]);
	if (!s->done) {
		*why_r = "no TLS session";
		return -1;
	}
	/* RFC 7672 §2.2: a secure TLSA RRset with no usable record asks for
	 * TLS without authentication */
	if (!usable)
		return 0;
	if ((chain = gnutls_certificate_get_peers(s->g, &n_chain)) == NULL ||
	    n_chain == 0) {
		*why_r = "the server sent no certificate";
		return -1;
	}
	bool name_failed = false;
	for (size_t i = 0; i < n; i++) {
		if (!tlsa_usable(&rr[i]))
			continue;
		if (rr[i].usage == 3) {
			if (tlsa_match(&rr[i], &chain[0]))
				return 0;
			continue;
		}
		for (unsigned c = 0; c < n_chain && c < 16; c++) {
			if (!tlsa_match(&rr[i], &chain[c]))
				continue;
			if (chain_to(chain, n_chain, c, host))
				return 0;
			name_failed = true;
		}
	}
	*why_r = name_failed
		 ? "a DANE-TA record matches, but the chain does not lead from it "
		   "to a valid certificate for the host name"
		 : "no TLSA record matches the server's certificate";
	return -1;
}
