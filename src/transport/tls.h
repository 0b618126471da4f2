/*
 * tls.h — TLS 1.3 sessions over memory buffers (GnuTLS), for the AMP
 * transport over TCP (PROTOCOL.md §8.1).  No sockets: the driver feeds
 * bytes received from the network with tls_feed() and sends what
 * tls_take_output() hands it, so the same code runs in tests, wired
 * client-to-server in memory.
 *
 *  - AMP mode: TLS 1.3 only, ALPN "amp/1" required on both sides (a peer
 *    without it fails the handshake).  SMTP mode (STARTTLS, port 465):
 *    TLS 1.2 or 1.3, no ALPN.
 *  - tls_exporter() gives the RFC 8446 exporter "EXPORTER-amp-v1" that
 *    §9 binds signatures to.
 *  - tls_creds_generate() makes a node's self-signed Ed25519 certificate
 *    (clients authenticate the node by its node key, §9.1, not by X.509).
 *
 * Limits: at most TLS_BUF_MAX bytes buffered in each direction; beyond it
 * tls_feed / tls_write refuse (the driver stops reading until drained).
 */
#ifndef AMP_TLS_H
#define AMP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_ALPN "amp/1"
#define TLS_EXPORTER_LABEL "EXPORTER-amp-v1"
#define TLS_EXPORTER_BYTES 32u
#define TLS_BUF_MAX (4u * 1024u * 1024u)

typedef struct tls_creds tls_creds;
typedef struct tls_session tls_session;

/* A fresh Ed25519 key and self-signed certificate for `name` (the node's
 * domain), valid for `days`; PEM texts returned for saving (free()). */
int tls_creds_generate(const char *name, unsigned days, char **cert_pem_r,
		       char **key_pem_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Server credentials from PEM texts. */
int tls_creds_server(const char *cert_pem, const char *key_pem,
		     tls_creds **creds_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Client credentials: no certificate check (the node key is checked at
 * the AMP layer, §9.1). */
int tls_creds_client(tls_creds **creds_r, const char **error_r)
	__attribute__((warn_unused_result));
/* Client credentials for outbound SMTP: the CAs of ca_file (PEM), or the
 * system's list when ca_file is NULL, for tls_verify_pkix (no check
 * happens during the handshake). */
int tls_creds_client_smtp(const char *ca_file, tls_creds **creds_r,
			  const char **error_r) __attribute__((warn_unused_result));
void tls_creds_free(tls_creds **creds);

/* An AMP session (TLS 1.3, ALPN amp/1 mandatory). */
int tls_session_new(tls_creds *creds, bool server, tls_session **s_r,
		    const char **error_r) __attribute__((warn_unused_result));
typedef enum tls_mode {
	TLS_MODE_AMP = 0, /* TLS 1.3 with ALPN amp/1 */
	TLS_MODE_SMTP,    /* STARTTLS / implicit TLS: TLS 1.2 or 1.3, no ALPN */
} tls_mode;
int tls_session_new_mode(tls_creds *creds, bool server, tls_mode mode,
			 tls_session **s_r, const char **error_r)
	__attribute__((warn_unused_result));
/* "TLS1.3 with cipher AES-256-GCM" (for Received: and logs), after the
 * handshake.  0, or -1 (not established, or out too small). */
int tls_describe(tls_session *s, char *out, size_t out_size)
	__attribute__((warn_unused_result));
void tls_session_free(tls_session **s);

/* Client: send host in the server name indication (before the handshake). */
int tls_set_server_name(tls_session *s, const char *host)
	__attribute__((warn_unused_result));

/* After the handshake, client side.  0: the peer's certificate chain is
 * valid for host under the system CAs (RFC 6125 name check); -1 with
 * *why_r. */
int tls_verify_pkix(tls_session *s, const char *host, const char **why_r)
	__attribute__((warn_unused_result));

/* One TLSA record (RFC 6698): usage, selector, matching type, data. */
typedef struct tls_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
} tls_tlsa;

/* After the handshake, client side: DANE for SMTP (RFC 7672).  0 when a
 * usable record matches: DANE-EE (3) the end-entity certificate or key,
 * with no name or date check (§3.1.1); DANE-TA (2) a certificate of the
 * chain the peer sent, which must then chain the end-entity certificate,
 * with the name checked against host (§3.1.2).  Records of usage 0 and 1
 * are unusable for SMTP (§3.1.3), like selectors and matching types we do
 * not implement: a set with no usable record also gives 0, for TLS
 * without authentication (§2.2: "a connection to the MTA MUST be made via
 * TLS, but authentication is not required"; the caller requires TLS).
 * -1 with *why_r. */
int tls_verify_dane(tls_session *s, const char *host, const tls_tlsa *rr,
		    size_t n, const char **why_r)
	__attribute__((warn_unused_result));

/* Bytes that arrived from the network.  -1 when the buffer limit would be
 * exceeded. */
int tls_feed(tls_session *s, const uint8_t *data, size_t len)
	__attribute__((warn_unused_result));

/* Advance the handshake and decrypt what can be decrypted.
 * Returns 1 once the handshake is complete, 0 while it needs more input,
 * -1 on a fatal error (*error_r says why: e.g. the peer offered no
 * "amp/1"). */
int tls_progress(tls_session *s, const char **error_r)
	__attribute__((warn_unused_result));
bool tls_handshake_done(const tls_session *s);

/* Decrypted application bytes available: copy up to len into buf.
 * Returns the count (0: none now), or -1 on a fatal error. */
long tls_read(tls_session *s, uint8_t *buf, size_t len, const char **error_r);
/* Encrypt application bytes (after the handshake). -1 on error. */
int tls_write(tls_session *s, const uint8_t *data, size_t len,
	      const char **error_r) __attribute__((warn_unused_result));

/* Ciphertext to send: *out_r points into the session; after sending n
 * bytes call tls_output_consumed(s, n). */
size_t tls_take_output(tls_session *s, const uint8_t **out_r);
void tls_output_consumed(tls_session *s, size_t n);

/* §9.1 channel binding, after the handshake. */
int tls_exporter(tls_session *s, uint8_t out[TLS_EXPORTER_BYTES])
	__attribute__((warn_unused_result));

#endif
