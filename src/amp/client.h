/*
 * client.h — a blocking AMP client (PROTOCOL.md §8–10) for the `amp`
 * command and the node's relay threads.  One connection, one request at a
 * time, every wait bounded by the timeout given at connect.
 *
 * Transports: TLS 1.3 over TCP (a socket driving src/transport/tls.c) or
 * QUIC (src/transport/quic.h's client).  nclient_connect does the
 * handshake and `hello`, and checks the node's hello signature: against a
 * pinned key when one is given (AMP-R-032), else against the key in the
 * hello itself (proof that the peer holds the key it claims; the caller
 * then pins it, trust on first use).
 */
#ifndef AMP_CLIENT_H
#define AMP_CLIENT_H

#include "amp/amp.h"
#include "amp.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nclient_transport {
	NCLIENT_TLS = 0,
	NCLIENT_QUIC = 1,
} nclient_transport;

typedef struct nclient_opts {
	const char *host;                   /* name or numeric address */
	uint16_t port;
	nclient_transport transport;
	unsigned timeout_ms;                /* 0: 10 s */
	const uint8_t *pin_sign_pk;         /* expected node key, or NULL */
	const char *expect_domain;          /* node DID must be of this domain */
} nclient_opts;

typedef struct nclient nclient;

int nclient_connect(const nclient_opts *o, nclient **c_r, const char **error_r)
	__attribute__((warn_unused_result));
void nclient_close(nclient **c);

/* What hello returned. */
const amp_public_identity *nclient_node(const nclient *c);
uint32_t nclient_pow_bits(const nclient *c);
uint32_t nclient_max_frame(const nclient *c);
const char *nclient_transport_name(nclient_transport t);
bool nclient_transport_parse(const char *s, nclient_transport *t_r);

/* Send request (its request_id is set here) and wait for the response.
 * *resp_r: free with amp__v1__response__free_unpacked(r, NULL).  Returns 0
 * when a response arrived (whatever its status), -1 on a transport or
 * decoding failure. */
int nclient_call(nclient *c, Amp__V1__Frame *req, Amp__V1__Response **resp_r,
		 const char **error_r) __attribute__((warn_unused_result));

/* nclient_call, and a status other than OK turned into -1 with *error_r
 * "STATUS: reason" and *status_r; *resp_r (when not NULL) is set only on
 * OK. */
int nclient_op(nclient *c, Amp__V1__Frame *req, unsigned timeout_ms,
	       Amp__V1__Response **resp_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));
/* The timeout given at connect. */
unsigned nclient_timeout(const nclient *c);

/* The operations.  They return 0 on STATUS_OK; otherwise -1, with
 * *error_r "STATUS: reason" (a static buffer of the connection, valid
 * until its next call) and *status_r (when not NULL) the status. */
int nclient_auth(nclient *c, const amp_identity *id, int *status_r,
		 const char **error_r) __attribute__((warn_unused_result));
/* Signs the §11.2 register leaf too; *index_r (may be NULL): its index
 * in the node's transparency log. */
int nclient_register(nclient *c, const amp_identity *id, const char *stamp,
		     const char *invite, uint64_t *index_r, int *status_r,
		     const char **error_r) __attribute__((warn_unused_result));
/* *doc_r: malloc'ed JSON. */
int nclient_lookup(nclient *c, const char *did, char **doc_r, int *status_r,
		   const char **error_r) __attribute__((warn_unused_result));
/* By mail address (PROTOCOL.md §10.3.1): *doc_r the identity's document
 * and *address_r its mail address (both malloc'ed; address "" when the
 * node gave none).  NOT_FOUND in *status_r: not an AMP identity. */
int nclient_lookup_address(nclient *c, const char *address, char **doc_r,
			   char **address_r, int *status_r,
			   const char **error_r) __attribute__((warn_unused_result));
/* *resp_r keeps the per-recipient results (free as in nclient_call); it is
 * set whenever the node answered with them, also on a refusal (-1). */
int nclient_deliver(nclient *c, const uint8_t *env, size_t len,
		    Amp__V1__Response **resp_r, int *status_r,
		    const char **error_r) __attribute__((warn_unused_result));
int nclient_fetch(nclient *c, uint64_t cursor, uint32_t limit,
		  uint32_t wait_ms, Amp__V1__Response **resp_r, int *status_r,
		  const char **error_r) __attribute__((warn_unused_result));
int nclient_ack(nclient *c, const uint64_t *seqs, size_t n, int *status_r,
		const char **error_r) __attribute__((warn_unused_result));

/* "STATUS_NOT_FOUND" -> "NOT_FOUND" */
const char *nclient_status_name(int status);

#endif
