/*
 * client.c — see client.h.  The TLS path drives a memory TLS session
 * (src/transport/tls.c) over a non-blocking TCP socket with poll(2); the
 * QUIC path uses the QUIC transport's blocking client.  Frames are read
 * with the same bounded frame_reader the node uses.
 */
#include "client.h"

#include "amp/amp-log.h"

#include "frame.h"
#include "nodeproto.h"
#include "quic.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000u

struct nclient {
	nclient_transport transport;
	unsigned timeout_ms;
	/* TLS */
	int fd;
	tls_creds *creds;
	tls_session *tls;
	frame_reader fr;
	uint8_t rbuf[65536];      /* decrypted bytes not yet framed */
	size_t roff, rlen;
	/* QUIC */
	quic_client *quic;
	/* from hello */
	uint8_t x[NP_X_BYTES];
	uint8_t challenge[NP_CHALLENGE_BYTES];
	amp_public_identity node;
	uint32_t pow_bits, max_frame;
	uint64_t next_id;
	char errbuf[320];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int remaining(uint64_t deadline)
{
	uint64_t n = now_ms();
	return n >= deadline ? 0 : (int)(deadline - n);
}

const char *nclient_transport_name(nclient_transport t)
{
	return t == NCLIENT_QUIC ? "quic" : "tls";
}

bool nclient_transport_parse(const char *s, nclient_transport *t_r)
{
	if (strcmp(s, "tls") == 0)
		*t_r = NCLIENT_TLS;
	else if (strcmp(s, "quic") == 0)
		*t_r = NCLIENT_QUIC;
	else
		return false;
	return true;
}

/* ------------------------------------------------------------ TLS/TCP */

static int tcp_connect(const char *host, uint16_t port, uint64_t deadline,
		       const char **error_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0) {
		*error_r = "cannot resolve the node's host name";
		return -1;
	}
	int fd = -1;
	*error_r = "cannot connect to the node";
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
				   SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
		    errno != EINPROGRESS) {
			close(fd);
			fd = -1;
			continue;
		}
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t el = sizeof(err);
		if (poll(&p, 1, remaining(deadline)) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
		    err != 0) {
			*error_r = err == ECONNREFUSED ? "connection refused by the node"
						       : "cannot connect to the node (timeout)";
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		/* requests are small writes answered at once: no Nagle delay */
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int tls_flush(nclient *c, uint64_t deadline, const char **error_r)
{
	const uint8_t *out;
	size_t n;
	while ((n = tls_take_output(c->tls, &out)) > 0) {
		ssize_t w = send(c->fd, out, n, MSG_NOSIGNAL);
		if (w > 0) {
			tls_output_consumed(c->tls, (size_t)w);
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			*error_r = "the connection to the node broke";
			return -1;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		if (poll(&p, 1, remaining(deadline)) != 1) {
			*error_r = "timed out sending to the node";
			return -1;
		}
	}
	return 0;
}

/* Wait for bytes from the network and give them to the TLS session. */
static int tls_fill(nclient *c, uint64_t deadline, const char **error_r)
{
	uint8_t buf[65536];
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int r = poll(&p, 1, remaining(deadline));
	if (r != 1) {
		*error_r = "timed out waiting for the node";
		return -1;
	}
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n == 0) {
		*error_r = "the node closed the connection";
		return -1;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		*error_r = "the connection to the node broke";
		return -1;
	}
	if (tls_feed(c->tls, buf, (size_t)n) != 0) {
		*error_r = "the node sent too much data";
		return -1;
	}
	return 0;
}

static int tls_open(nclient *c, const nclient_opts *o, uint64_t deadline,
		    const char **error_r)
{
	c->fd = tcp_connect(o->host, o->port, deadline, error_r);
	if (c->fd < 0)
		return -1;
	if (tls_creds_client(&c->creds, error_r) != 0 ||
	    tls_session_new(c->creds, false, &c->tls, error_r) != 0)
		return -1;
	for (;;) {
		int r = tls_progress(c->tls, error_r);
		if (r < 0 || tls_flush(c, deadline, error_r) != 0)
			return -1;
		if (r == 1)
			break;
		if (tls_fill(c, deadline, error_r) != 0)
			return -1;
	}
	if (tls_exporter(c->tls, c->x) != 0) {
		*error_r = "cannot derive the TLS exporter";
		return -1;
	}
	frame_reader_init(&c->fr, FRAME_MAX_LIMIT);
	return 0;
}

/* Encrypt and send len bytes; tls_write queues at most TLS_BUF_MAX, so
 * big payloads go in parts. */
static int tls_send_all(nclient *c, const uint8_t *data, size_t len,
			uint64_t deadline, const char **error_r)
{
	while (len > 0) {
		size_t part = len > 1024u * 1024u ? 1024u * 1024u : len;
		if (tls_write(c->tls, data, part, error_r) != 0 ||
		    tls_flush(c, deadline, error_r) != 0)
			return -1;
		data += part;
		len -= part;
	}
	return 0;
}

static int tls_send_frame(nclient *c, const uint8_t *payload, size_t len,
			  uint64_t deadline, const char **error_r)
{
	uint8_t hdr[FRAME_HEADER_BYTES];
	frame_header(len, hdr);
	if (tls_write(c->tls, hdr, sizeof(hdr), error_r) != 0)
		return -1;
	return tls_send_all(c, payload, len, deadline, error_r);
}

static int tls_recv_frame(nclient *c, uint64_t deadline, uint8_t **frame_r,
			  size_t *len_r, const char **error_r)
{
	for (;;) {
		while (c->rlen > 0) {
			size_t used;
			frame_res r = frame_reader_feed(&c->fr, c->rbuf + c->roff,
							c->rlen, &used, frame_r,
							len_r, error_r);
			if (r == FRAME_ERROR)
				return -1;
			c->roff += used;
			c->rlen -= used;
			if (r == FRAME_COMPLETE)
				return 0;
		}
		c->roff = 0;
		long n = tls_read(c->tls, c->rbuf, sizeof(c->rbuf), error_r);
		if (n < 0)
			return -1;
		if (n > 0) {
			c->rlen = (size_t)n;
			continue;
		}
		if (tls_fill(c, deadline, error_r) != 0)
			return -1;
		if (tls_progress(c->tls, error_r) < 0)
			return -1;
	}
}

/* ---------------------------------------------------------------- calls */

static int exchange(nclient *c, const uint8_t *payload, size_t len,
		    unsigned timeout_ms, uint8_t **resp_r, size_t *resp_len_r,
		    const char **error_r)
{
	uint64_t deadline = now_ms() + timeout_ms;
	if (c->transport == NCLIENT_QUIC)
		return quic_client_request(c->quic, payload, len, FRAME_MAX_LIMIT,
					   timeout_ms, resp_r, resp_len_r,
					   error_r);
	if (tls_send_frame(c, payload, len, deadline, error_r) != 0)
		return -1;
	return tls_recv_frame(c, deadline, resp_r, resp_len_r, error_r);
}

static int call_timeout(nclient *c, Amp__V1__Frame *req, unsigned timeout_ms,
			Amp__V1__Response **resp_r, const char **error_r)
{
	req->request_id = ++c->next_id;
	size_t len = amp__v1__frame__get_packed_size(req);
	if (len == 0 || len > FRAME_MAX_LIMIT) {
		*error_r = "the request is too large";
		return -1;
	}
	uint8_t *buf = malloc(len);
	if (buf == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	amp__v1__frame__pack(req, buf);
	uint8_t *resp = NULL;
	size_t rlen = 0;
	Amp__V1__Frame *f = NULL;
	/* Over TLS a response to an earlier request that timed out may come
	 * first: skip frames that answer another request. */
	for (int tries = 0; tries < 16; tries++) {
		int r = tries == 0 ? exchange(c, buf, len, timeout_ms, &resp,
					      &rlen, error_r)
				   : tls_recv_frame(c, now_ms() + timeout_ms,
						    &resp, &rlen, error_r);
		if (r != 0)
			break;
		f = np_frame_unpack(resp, rlen);
		free(resp);
		if (f == NULL || f->body_case != AMP__V1__FRAME__BODY_RESPONSE) {
			*error_r = "the node sent a malformed response";
			if (f != NULL)
				amp__v1__frame__free_unpacked(f, NULL);
			f = NULL;
			break;
		}
		if (f->request_id == req->request_id ||
		    c->transport == NCLIENT_QUIC)
			break;
		amp__v1__frame__free_unpacked(f, NULL);
		f = NULL;
	}
	free(buf);
	if (f == NULL)
		return -1;
	*resp_r = f->response;
	f->response = NULL;
	f->body_case = AMP__V1__FRAME__BODY__NOT_SET;
	amp__v1__frame__free_unpacked(f, NULL);
	return 0;
}

int nclient_call(nclient *c, Amp__V1__Frame *req, Amp__V1__Response **resp_r,
		 const char **error_r)
{
	return call_timeout(c, req, c->timeout_ms, resp_r, error_r);
}

const char *nclient_status_name(int status)
{
	static const char *const names[] = {
		"OK", "BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN",
		"NOT_FOUND", "CONFLICT", "TOO_LARGE", "RATE_LIMITED",
		"RETRY_LATER", "INTERNAL",
	};
	if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]))
		return "UNKNOWN";
	return names[status];
}

int nclient_op(nclient *c, Amp__V1__Frame *req, unsigned timeout_ms,
		       Amp__V1__Response **resp_r, int *status_r, const char **error_r)
{
	Amp__V1__Response *resp;
	if (status_r != NULL)
		*status_r = -1;
	if (call_timeout(c, req, timeout_ms, &resp, error_r) != 0)
		return -1;
	if (status_r != NULL)
		*status_r = (int)resp->status;
	if (resp->status != AMP__V1__STATUS__STATUS_OK) {
		snprintf(c->errbuf, sizeof(c->errbuf), "%s%s%.200s",
			 nclient_status_name((int)resp->status),
			 resp->error[0] != '\0' ? ": " : "", resp->error);
		*error_r = c->errbuf;
		amp__v1__response__free_unpacked(resp, NULL);
		return -1;
	}
	if (resp_r != NULL)
		*resp_r = resp;
	else
		amp__v1__response__free_unpacked(resp, NULL);
	return 0;
}

static int hello(nclient *c, const nclient_opts *o, const char **error_r)
{
	Amp__V1__HelloRequest h = AMP__V1__HELLO_REQUEST__INIT;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_HELLO;
	f.hello = &h;
	Amp__V1__Response *resp;
	if (nclient_op(c, &f, c->timeout_ms, &resp, NULL, error_r) != 0)
		return -1;
	Amp__V1__HelloResult *hr = resp->result_case ==
		AMP__V1__RESPONSE__RESULT_HELLO ? resp->hello : NULL;
	amp_did did;
	int r = -1;
	if (hr == NULL || hr->node_sign_pk.len != 32 || hr->node_enc_pk.len != 32 ||
	    hr->challenge.len != NP_CHALLENGE_BYTES || hr->signature.len != 64 ||
	    strlen(hr->node_did) > AMP_DID_MAX ||
	    amp_did_parse(hr->node_did, strlen(hr->node_did), &did, NULL) != AMP_OK ||
	    strcmp(did.local, "node") != 0) {
		*error_r = "the node's hello is malformed";
		goto out;
	}
	if (o->expect_domain != NULL && strcmp(did.domain, o->expect_domain) != 0) {
		*error_r = "the node is not the home node of that domain";
		goto out;
	}
	memcpy(c->node.did, hr->node_did, strlen(hr->node_did) + 1);
	memcpy(c->node.sign_pk, hr->node_sign_pk.data, 32);
	memcpy(c->node.enc_pk, hr->node_enc_pk.data, 32);
	memcpy(c->challenge, hr->challenge.data, NP_CHALLENGE_BYTES);
	if (o->pin_sign_pk != NULL &&
	    sodium_memcmp(o->pin_sign_pk, c->node.sign_pk, 32) != 0) {
		*error_r = "the node's key is not the pinned key (possible "
			   "impersonation; check the transport map or client "
			   "configuration)";
		goto out;
	}
	if (!np_hello_verify(&c->node, c->x, c->challenge, hr->server_time,
			     hr->signature.data)) {
		*error_r = "the node's hello signature does not verify (the "
			   "connection may be intercepted)";
		goto out;
	}
	c->pow_bits = hr->pow_bits;
	c->max_frame = hr->max_frame;
	r = 0;
out:
	amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nclient_connect(const nclient_opts *o, nclient **c_r, const char **error_r)
{
	nclient *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	c->fd = -1;
	c->transport = o->transport;
	c->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	uint64_t deadline = now_ms() + c->timeout_ms;
	int r;
	if (o->transport == NCLIENT_QUIC) {
		r = quic_client_connect(o->host, o->port, c->timeout_ms, &c->quic,
					error_r);
		if (r == 0)
			quic_client_exporter(c->quic, c->x);
	} else {
		r = tls_open(c, o, deadline, error_r);
	}
	if (r != 0 || hello(c, o, error_r) != 0) {
		nclient_close(&c);
		return -1;
	}
	*c_r = c;
	return 0;
}

void nclient_close(nclient **cp)
{
	nclient *c = *cp;
	if (c == NULL)
		return;
	if (c->tls != NULL) {
		frame_reader_deinit(&c->fr);
		tls_session_free(&c->tls);
	}
	tls_creds_free(&c->creds);
	if (c->fd >= 0)
		close(c->fd);
	if (c->quic != NULL)
		quic_client_close(&c->quic);
	sodium_memzero(c->rbuf, sizeof(c->rbuf));
	free(c);
	*cp = NULL;
}

const amp_public_identity *nclient_node(const nclient *c)
{
	return &c->node;
}

uint32_t nclient_pow_bits(const nclient *c)
{
	return c->pow_bits;
}

uint32_t nclient_max_frame(const nclient *c)
{
	return c->max_frame;
}

unsigned nclient_timeout(const nclient *c)
{
	return c->timeout_ms;
}

/* ----------------------------------------------------------- operations */

int nclient_auth(nclient *c, const amp_identity *id, int *status_r,
		 const char **error_r)
{
	uint8_t sig[AMP_SIG_BYTES];
	np_auth_sign(id, c->x, c->challenge, c->node.did, sig);
	Amp__V1__AuthRequest a = AMP__V1__AUTH_REQUEST__INIT;
	a.did = (char *)id->pub.did;
	a.signature.data = sig;
	a.signature.len = sizeof(sig);
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_AUTH;
	f.auth = &a;
	return nclient_op(c, &f, c->timeout_ms, NULL, status_r, error_r);
}

int nclient_register(nclient *c, const amp_identity *id, const char *stamp,
		     const char *invite, uint64_t *index_r, int *status_r,
		     const char **error_r)
{
	uint8_t subject[32], log_sig[AMP_SIG_BYTES];
	amp_log_did_hash(id->pub.did, subject);
	amp_log_sign_key(id->sign_sk, subject, 0, id->pub.sign_pk, id->pub.enc_pk,
			 log_sig);
	char *doc;
	uint8_t dh[32], proof[NP_ENC_PROOF_BYTES], sig[AMP_SIG_BYTES];
	if (status_r != NULL)
		*status_r = -1;
	if (amp_did_document_export(&id->pub, &doc, error_r) != AMP_OK)
		return -1;
	if (crypto_scalarmult(dh, id->enc_sk, c->node.enc_pk) != 0) {
		amp_free(doc);
		*error_r = "the node's encryption key is invalid";
		return -1;
	}
	np_enc_proof(dh, c->challenge, id->pub.did, proof);
	sodium_memzero(dh, sizeof(dh));
	stamp = stamp != NULL ? stamp : "";
	invite = invite != NULL ? invite : "";
	if (np_register_sign(id, c->x, c->challenge, doc, stamp, invite, proof,
			     sig) != 0) {
		amp_free(doc);
		*error_r = "out of memory";
		return -1;
	}
	Amp__V1__RegisterRequest rr = AMP__V1__REGISTER_REQUEST__INIT;
	rr.did_document = doc;
	rr.pow_stamp = (char *)stamp;
	rr.invite = (char *)invite;
	rr.enc_proof.data = proof;
	rr.enc_proof.len = sizeof(proof);
	rr.signature.data = sig;
	rr.signature.len = sizeof(sig);
	rr.log_signature.data = log_sig;
	rr.log_signature.len = sizeof(log_sig);
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_REGISTER;
	f.register_ = &rr;
	Amp__V1__Response *resp = NULL;
	int r = nclient_op(c, &f, c->timeout_ms, &resp, status_r, error_r);
	amp_free(doc);
	if (r == 0 && index_r != NULL) {
		if (resp->result_case != AMP__V1__RESPONSE__RESULT_LOG_INDEX) {
			*error_r = "the node's register answer has no log index";
			r = -1;
		} else {
			*index_r = resp->log_index->index;
		}
	}
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

/* One lookup by DID or by address; *address_r may be NULL. */
static int lookup_op(nclient *c, const char *did, const char *address,
		     char **doc_r, char **address_r, int *status_r,
		     const char **error_r)
{
	Amp__V1__LookupRequest l = AMP__V1__LOOKUP_REQUEST__INIT;
	if (did != NULL)
		l.did = (char *)did;
	if (address != NULL)
		l.address = (char *)address;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOOKUP;
	f.lookup = &l;
	Amp__V1__Response *resp;
	*doc_r = NULL;
	if (address_r != NULL)
		*address_r = NULL;
	if (nclient_op(c, &f, c->timeout_ms, &resp, status_r, error_r) != 0)
		return -1;
	int r = -1;
	if (resp->result_case != AMP__V1__RESPONSE__RESULT_LOOKUP) {
		*error_r = "the node's lookup answer is malformed";
	} else if ((*doc_r = strdup(resp->lookup->did_document)) == NULL ||
		   (address_r != NULL &&
		    (*address_r = strdup(resp->lookup->address)) == NULL)) {
		free(*doc_r);
		*doc_r = NULL;
		*error_r = "out of memory";
	} else {
		r = 0;
	}
	amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nclient_lookup(nclient *c, const char *did, char **doc_r, int *status_r,
		   const char **error_r)
{
	return lookup_op(c, did, NULL, doc_r, NULL, status_r, error_r);
}

int nclient_lookup_address(nclient *c, const char *address, char **doc_r,
			   char **address_r, int *status_r,
			   const char **error_r)
{
	return lookup_op(c, NULL, address, doc_r, address_r, status_r, error_r);
}

int nclient_deliver(nclient *c, const uint8_t *env, size_t len,
		    Amp__V1__Response **resp_r, int *status_r,
		    const char **error_r)
{
	Amp__V1__DeliverRequest d = AMP__V1__DELIVER_REQUEST__INIT;
	d.envelope.data = (uint8_t *)env;
	d.envelope.len = len;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_DELIVER;
	f.deliver = &d;
	/* Also on a refusal the per-recipient results are worth having. */
	Amp__V1__Response *resp;
	*status_r = -1;
	*resp_r = NULL;
	if (call_timeout(c, &f, c->timeout_ms, &resp, error_r) != 0)
		return -1;
	*status_r = (int)resp->status;
	if (resp->status != AMP__V1__STATUS__STATUS_OK) {
		snprintf(c->errbuf, sizeof(c->errbuf), "%s%s%.200s",
			 nclient_status_name((int)resp->status),
			 resp->error[0] != '\0' ? ": " : "", resp->error);
		*error_r = c->errbuf;
	}
	if (resp->result_case != AMP__V1__RESPONSE__RESULT_DELIVER &&
	    resp->status == AMP__V1__STATUS__STATUS_OK) {
		*error_r = "the node's deliver answer is malformed";
		amp__v1__response__free_unpacked(resp, NULL);
		return -1;
	}
	int r = resp->status == AMP__V1__STATUS__STATUS_OK ? 0 : -1;
	if (resp->result_case == AMP__V1__RESPONSE__RESULT_DELIVER)
		*resp_r = resp;
	else
		amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nclient_fetch(nclient *c, uint64_t cursor, uint32_t limit,
		  uint32_t wait_ms, Amp__V1__Response **resp_r, int *status_r,
		  const char **error_r)
{
	Amp__V1__FetchRequest fr = AMP__V1__FETCH_REQUEST__INIT;
	fr.cursor = cursor;
	fr.limit = limit;
	fr.wait_ms = wait_ms;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_FETCH;
	f.fetch = &fr;
	return nclient_op(c, &f, c->timeout_ms + wait_ms, resp_r, status_r, error_r);
}

int nclient_ack(nclient *c, const uint64_t *seqs, size_t n, int *status_r,
		const char **error_r)
{
	Amp__V1__AckRequest a = AMP__V1__ACK_REQUEST__INIT;
	a.seq = (uint64_t *)seqs;
	a.n_seq = n;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_ACK;
	f.ack = &a;
	return nclient_op(c, &f, c->timeout_ms, NULL, status_r, error_r);
}
