/*
 * server.c — the node's request core; see server.h.
 *
 * A request's life:
 *   driver → server_conn_request (loop): decode the Frame under a memory
 *   budget, check the rate limits and the operation table (state), then
 *   either answer at once (hello, refusals) or queue it on the worker
 *   pool (uv_queue_work), counting it against max_jobs (else
 *   RETRY_LATER).  The worker runs the handler (signature checks, store
 *   reads, peer lookups) and packs the response.  A delivery hands its
 *   write to the store; the store's writer thread calls back after the
 *   fsync'd COMMIT, packs the answer and posts the request to a
 *   completion queue that a uv_async brings back to the loop, which
 *   sends it.  So `OK` to a delivery always follows the fsync.
 *
 * Lifetimes: a request holds a reference on its session; a session is
 * freed when its transport has closed and no request refers to it.  All
 * reference counts change on the loop thread only.
 *
 * Long-poll fetch: a fetch that found nothing parks on the waiter list;
 * a delivery to that DID (seen when its commit comes back) or the end of
 * wait_ms (a 200 ms sweep timer) runs it again or answers it.
 */
#include "server-private.h"

#include "amp.pb-c.h"
#include "amp/amp-log.h"
#include "client.h"
#include "frame.h"
#include "log.h"
#include "node.h"
#include "nodeproto.h"
#include "gateway.h"
#include "mapset.h"
#include "relay.h"
#include "route.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void op_auth(sreq *r);
static void op_register(sreq *r);
static void op_lookup(sreq *r);
static void op_deliver(sreq *r);
static void op_fetch(sreq *r);
static void op_ack(sreq *r);

/* Indexed by Frame body case. */
static const op_def op_table[] = {
	[AMP__V1__FRAME__BODY_HELLO] = { "hello", ST_ANY, NULL },
	[AMP__V1__FRAME__BODY_AUTH] = { "auth", ST_HELLO, op_auth },
	[AMP__V1__FRAME__BODY_REGISTER] = { "register", ST_HELLO, op_register },
	[AMP__V1__FRAME__BODY_LOOKUP] = { "lookup", ST_ANY, op_lookup },
	[AMP__V1__FRAME__BODY_DELIVER] = { "deliver", ST_ANY, op_deliver },
	[AMP__V1__FRAME__BODY_FETCH] = { "fetch", ST_USER, op_fetch },
	[AMP__V1__FRAME__BODY_ACK] = { "ack", ST_USER, op_ack },
	[AMP__V1__FRAME__BODY_LOG_HEAD] = { "log_head", ST_ANY, op_log_head },
	[AMP__V1__FRAME__BODY_LOG_PROOF] = { "log_proof", ST_ANY, op_log_proof },
	[AMP__V1__FRAME__BODY_LOG_CONSISTENCY] = { "log_consistency", ST_ANY,
						   op_log_consistency },
	[AMP__V1__FRAME__BODY_LOG_ENTRIES] = { "log_entries", ST_ANY,
					       op_log_entries },
	[AMP__V1__FRAME__BODY_LOG_COSIGN] = { "log_cosign", ST_HELLO,
					      op_log_cosign },
	[AMP__V1__FRAME__BODY_ROTATE] = { "rotate", ST_HELLO, op_rotate },
	[AMP__V1__FRAME__BODY_REVOKE] = { "revoke", ST_HELLO, op_revoke },
};
#define N_OPS (sizeof(op_table) / sizeof(op_table[0]))

static uint64_t now_ms(server *s)
{
	return uv_now(s->loop);
}

/* ---------------------------------------------------------- responses */

void srv_pack(sreq *r, Amp__V1__Response *resp)
{
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.request_id = r->rid;
	f.body_case = AMP__V1__FRAME__BODY_RESPONSE;
	f.response = resp;
	size_t n = amp__v1__frame__get_packed_size(&f);
	uint8_t *buf = malloc(n > 0 ? n : 1);
	if (buf == NULL)
		abort(); /* out of memory: STYLE.md, abort loudly */
	amp__v1__frame__pack(&f, buf);
	free(r->out);
	r->out = buf;
	r->out_len = n;
}

void srv_pack_status(sreq *r, Amp__V1__Status st, const char *error,
			uint32_t retry_ms)
{
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.status = st;
	resp.error = (char *)(error != NULL ? error : "");
	resp.retry_after_ms = retry_ms;
	srv_pack(r, &resp);
}

void srv_pack_amp_error(sreq *r, Amp__V1__Status st, amp_err e)
{
	srv_pack_status(r, st, amp_err_name(e), 0);
}

/* ------------------------------------------------------------- session */

static void maybe_free(server *s);

static void conn_unref(sconn *c)
{
	if (--c->refs > 0)
		return;
	server *s = c->s;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	sodium_memzero(c, sizeof(*c));
	free(c);
	maybe_free(s);
}

static void maybe_drained(server *s)
{
	if (s->draining && s->active == 0 && s->drain_cb != NULL) {
		void (*cb)(void *) = s->drain_cb;
		s->drain_cb = NULL;
		cb(s->drain_arg);
	}
}

static void req_free(sreq *r)
{
	server *s = r->s;
	sconn *c = r->c;
	if (r->f != NULL)
		amp__v1__frame__free_unpacked(r->f, NULL);
	free(r->out);
	if (r->d != NULL) {
		free(r->d->dids);
		free(r->d->status);
		free(r->d->error);
		free(r->d->local);
		free(r->d->domains);
		free(r->d);
	}
	s->inflight_bytes -= r->in_len;
	s->active--;
	c->inflight--;
	if (c->paused && c->inflight < s->max_streams && !c->closed) {
		c->paused = false;
		if (c->ops->pause != NULL)
			c->ops->pause(c->t, false);
	}
	free(r);
	conn_unref(c);
	maybe_drained(s);
}

/* Send the packed answer (if the connection is still there) and drop one
 * reference. */
static void req_answer(sreq *r)
{
	sconn *c = r->c;
	if (r->out != NULL && !c->closed) {
		c->ops->send(c->t, r->tag, r->out, r->out_len);
		c->last_ms = now_ms(r->s);
	}
	free(r->out);
	r->out = NULL;
}

static void req_unref(sreq *r)
{
	if (--r->refs == 0)
		req_free(r);
}

/* ---------------------------------------------------------- rate limits */

static unsigned slot_of(server *s, const char *kind, const char *key)
{
	uint8_t h[8];
	char buf[AMP_DID_MAX + 16];
	int n = snprintf(buf, sizeof(buf), "%s:%s", kind, key);
	crypto_shorthash(h, (const uint8_t *)buf, (size_t)(n > 0 ? n : 0),
			 s->limit_key);
	uint64_t v;
	memcpy(&v, h, 8);
	return (unsigned)(v % LIMIT_SLOTS);
}

/* Take a token from bucket i refilled at rate/s with a burst of 2*rate. */
static bool bucket_take(server *s, unsigned i, double rate, uint32_t *retry_ms)
{
	bucket *b = &s->buckets[i];
	uint64_t now = now_ms(s);
	double burst = 2 * rate;
	if (b->last_ms == 0 || now < b->last_ms) {
		b->tokens = burst;
	} else {
		b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_ms = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	*retry_ms = (uint32_t)((1.0 - b->tokens) * 1000.0 / rate) + 1;
	return false;
}

/* ------------------------------------------------------------ directory */

bool srv_is_local_domain(const server *s, const char *domain)
{
	for (size_t i = 0; i < s->n_domains; i++)
		if (strcmp(s->domains[i], domain) == 0)
			return true;
	return false;
}

static unsigned dircache_slot_of(const server *s, const char *did)
{
	uint8_t h[8];
	crypto_shorthash(h, (const uint8_t *)did, strlen(did), s->limit_key);
	uint64_t v;
	memcpy(&v, h, 8);
	return (unsigned)(v % DIRCACHE_SLOTS);
}

/* Drop a cached remote document: true if there was one. */
static bool dir_forget(server *s, const char *did)
{
	pthread_mutex_lock(&s->dir_lock);
	dircache_slot *cs = &s->dircache[dircache_slot_of(s, did)];
	bool had = cs->doc != NULL && strcmp(cs->did, did) == 0;
	if (had) {
		free(cs->doc);
		cs->doc = NULL;
	}
	pthread_mutex_unlock(&s->dir_lock);
	return had;
}

int srv_peer_connect(server *s, const char *domain, nclient **c_r,
		     const char **error_r)
{
	/* A node that just failed is not tried again for a while: remote
	 * lookups run on the workers, and an unreachable domain must not
	 * hold them all. */
	uint64_t now = (uint64_t)time(NULL);
	unsigned us;
	{
		uint8_t h[8];
		crypto_shorthash(h, (const uint8_t *)domain, strlen(domain),
				 s->limit_key);
		uint64_t v;
		memcpy(&v, h, 8);
		us = (unsigned)(v % UNREACH_SLOTS);
	}
	pthread_mutex_lock(&s->dir_lock);
	bool recently_failed = strcmp(s->unreach[us].domain, domain) == 0 &&
			       s->unreach[us].until > now;
	pthread_mutex_unlock(&s->dir_lock);
	if (recently_failed) {
		*error_r = "the identity's home node cannot be reached";
		return -1;
	}
	route rt;
	if (router_find(s->routes, domain, &rt, error_r) != 0)
		return -1;
	nclient_opts o = {
		.host = rt.host, .port = rt.port, .transport = rt.transport,
		.timeout_ms = s->set.peer_timeout_ms,
		.pin_sign_pk = rt.pinned ? rt.pin : NULL,
		.expect_domain = domain,
	};
	if (nclient_connect(&o, c_r, error_r) != 0) {
		char q[LOG_QUOTE_MAX];
		log_msg(LOG_WARN, "peer=%s msg=\"lookup: cannot reach the home "
			"node\" error=%s", domain,
			log_quote(*error_r, strlen(*error_r), q));
		pthread_mutex_lock(&s->dir_lock);
		memcpy(s->unreach[us].domain, domain, strlen(domain) + 1);
		s->unreach[us].until = now + UNREACH_TTL;
		pthread_mutex_unlock(&s->dir_lock);
		*error_r = "the identity's home node cannot be reached";
		return -1;
	}
	return 0;
}

/* Look a DID up: this node's own identity, a local registration, or (when
 * remote is true) the DID's home node, cached.  1 found (pub, and *doc_r
 * when doc_r != NULL), 0 not found, -1 failure (*error_r). */
int srv_dir_get(server *s, const char *did, bool remote,
		   amp_public_identity *pub, char **doc_r, const char **error_r)
{
	amp_did d;
	if (amp_did_parse(did, strlen(did), &d, error_r) != AMP_OK)
		return 0;
	if (strcmp(did, s->node->pub.did) == 0) {
		*pub = s->node->pub;
		if (doc_r != NULL && (*doc_r = strdup(s->node_doc)) == NULL)
			return -1;
		return 1;
	}
	if (s->gw != NULL && strcmp(did, gateway_pub(s->gw)->did) == 0) {
		*pub = *gateway_pub(s->gw);
		if (doc_r != NULL &&
		    (*doc_r = strdup(gateway_document(s->gw))) == NULL)
			return -1;
		return 1;
	}
	if (srv_is_local_domain(s, d.domain)) {
		char *doc;
		size_t len;
		int r = store_identity_get(s->st, did, &doc, &len);
		if (r <= 0) {
			*error_r = r < 0 ? "store read failed" : "unknown identity";
			return r;
		}
		if (amp_did_document_parse(doc, len, pub, error_r) != AMP_OK) {
			free(doc);
			return -1;
		}
		if (doc_r != NULL)
			*doc_r = doc;
		else
			free(doc);
		return 1;
	}
	if (!remote) {
		*error_r = "not a local identity";
		return 0;
	}
	/* Cache of remote documents. */
	unsigned slot = dircache_slot_of(s, did);
	uint64_t now = (uint64_t)time(NULL);
	pthread_mutex_lock(&s->dir_lock);
	dircache_slot *cs = &s->dircache[slot];
	if (cs->doc != NULL && strcmp(cs->did, did) == 0 && cs->expires > now) {
		*pub = cs->pub;
		int r = 1;
		if (doc_r != NULL && (*doc_r = strdup(cs->doc)) == NULL)
			r = -1;
		pthread_mutex_unlock(&s->dir_lock);
		return r;
	}
	pthread_mutex_unlock(&s->dir_lock);

	nclient *cl;
	if (srv_peer_connect(s, d.domain, &cl, error_r) != 0)
		return -1;
	char *doc = NULL;
	int status;
	int r = nclient_lookup(cl, did, &doc, &status, error_r);
	nclient_close(&cl);
	if (r != 0)
		return status == AMP__V1__STATUS__STATUS_NOT_FOUND ? 0 : -1;
	if (amp_did_document_parse(doc, strlen(doc), pub, error_r) != AMP_OK ||
	    strcmp(pub->did, did) != 0) {
		free(doc);
		*error_r = "the home node returned a document for another DID";
		return -1;
	}
	pthread_mutex_lock(&s->dir_lock);
	free(cs->doc);
	cs->doc = strdup(doc);
	if (cs->doc != NULL) {
		memcpy(cs->did, did, strlen(did) + 1);
		cs->pub = *pub;
		cs->expires = now + DIRCACHE_TTL;
	}
	pthread_mutex_unlock(&s->dir_lock);
	if (doc_r != NULL)
		*doc_r = doc;
	else
		free(doc);
	return 1;
}

static bool is_local_sender(const server *s, const char *did)
{
	amp_did d;
	return amp_did_parse(did, strlen(did), &d, NULL) == AMP_OK &&
	       srv_is_local_domain(s, d.domain);
}

/* ------------------------------------------------------------ handlers */

static void op_auth(sreq *r)
{
	Amp__V1__AuthRequest *a = r->f->auth;
	amp_public_identity pub;
	const char *err = NULL;
	amp_did d;
	r->auth_result = AUTH_NONE;
	if (a->signature.len != AMP_SIG_BYTES ||
	    amp_did_parse(a->did, strlen(a->did), &d, &err) != AMP_OK) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
			    "malformed auth request", 0);
		return;
	}
	enum auth_kind kind;
	if (srv_is_local_domain(r->s, d.domain)) {
		if (srv_dir_get(r->s, a->did, false, &pub, NULL, &err) != 1) {
			srv_pack_status(r, AMP__V1__STATUS__STATUS_UNAUTHENTICATED,
				    "unknown identity", 0);
			return;
		}
		kind = AUTH_USER;
	} else if (strcmp(d.local, "node") == 0 &&
		   router_pinned_key(r->s->routes, d.domain, pub.sign_pk)) {
		/* pinned in the transport map */
		memcpy(pub.did, a->did, strlen(a->did) + 1);
		kind = AUTH_PEER;
	} else if (strcmp(d.local, "node") == 0) {
		/* Not pinned: the peer node's key from its own DID document
		 * (its registry), as for any remote identity. */
		int found = srv_dir_get(r->s, a->did, true, &pub, NULL, &err);
		if (found != 1) {
			srv_pack_status(r, found < 0 ? AMP__V1__STATUS__STATUS_RETRY_LATER
						 : AMP__V1__STATUS__STATUS_UNAUTHENTICATED,
				    found < 0 ? err : "unknown peer node",
				    found < 0 ? 30000 : 0);
			return;
		}
		kind = AUTH_PEER;
	} else {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_UNAUTHENTICATED,
			    "neither a local identity nor a node", 0);
		return;
	}
	if (!np_auth_verify(&pub, r->x, r->challenge, r->s->node->pub.did,
			    a->signature.data)) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_UNAUTHENTICATED,
			       AMP_E_BAD_SIGNATURE);
		return;
	}
	r->auth_result = kind;
	memcpy(r->did, a->did, strlen(a->did) + 1);
	srv_pack_status(r, AMP__V1__STATUS__STATUS_OK, NULL, 0);
}

static void op_register(sreq *r)
{
	server *s = r->s;
	Amp__V1__RegisterRequest *q = r->f->register_;
	amp_public_identity pub;
	const char *err = NULL;
	amp_err e;
	size_t dl = strlen(q->did_document);
	if ((e = amp_did_document_parse(q->did_document, dl, &pub, &err)) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, e);
		return;
	}
	amp_did d;
	if (amp_did_parse(pub.did, strlen(pub.did), &d, &err) != AMP_OK) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, "AMP_E_BAD_DID", 0);
		return;
	}
	if (!srv_is_local_domain(s, d.domain)) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
			    "this node does not serve that domain", 0);
		return;
	}
	if (strcmp(d.local, "node") == 0 || strcmp(d.local, "postmaster") == 0 ||
	    strcmp(d.local, "abuse") == 0 || strcmp(d.local, "gateway") == 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
			    "that name is reserved", 0);
		return;
	}
	bool has_stamp = q->pow_stamp[0] != '\0', has_invite = q->invite[0] != '\0';
	if (has_stamp == has_invite) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
			    "give either a proof-of-work stamp or an invite", 0);
		return;
	}
	if (q->enc_proof.len != NP_ENC_PROOF_BYTES ||
	    q->signature.len != AMP_SIG_BYTES) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
			    "malformed register request", 0);
		return;
	}
	/* Possession of both keys first: cheap to check, and a failed proof
	 * must not consume the stamp or invite. */
	if (!np_register_verify(&pub, r->x, r->challenge, q->did_document,
				q->pow_stamp, q->invite, q->enc_proof.data,
				q->signature.data)) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
			       AMP_E_BAD_SIGNATURE);
		return;
	}
	/* §11.2: the register leaf carries the key's own signature. */
	amp_log_leaf leaf;
	memset(&leaf, 0, sizeof(leaf));
	leaf.type = AMP_LOG_REGISTER;
	amp_log_did_hash(pub.did, leaf.subject);
	memcpy(leaf.sign_pk, pub.sign_pk, 32);
	memcpy(leaf.enc_pk, pub.enc_pk, 32);
	if (q->log_signature.len != AMP_SIG_BYTES ||
	    !amp_log_verify_key(pub.sign_pk, leaf.subject, 0, pub.sign_pk,
				pub.enc_pk, q->log_signature.data)) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"bad log signature", 0);
		return;
	}
	memcpy(leaf.sig, q->log_signature.data, AMP_SIG_BYTES);
	uint8_t dh[32], want[NP_ENC_PROOF_BYTES];
	if (crypto_scalarmult(dh, s->node->enc_sk, pub.enc_pk) != 0) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, AMP_E_BAD_KEY);
		return;
	}
	np_enc_proof(dh, r->challenge, pub.did, want);
	sodium_memzero(dh, sizeof(dh));
	if (sodium_memcmp(want, q->enc_proof.data, NP_ENC_PROOF_BYTES) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
			    "enc_proof does not prove the encryption key", 0);
		return;
	}
	uint64_t now = (uint64_t)time(NULL), token_expires;
	crypto_generichash_state hs;
	uint8_t token[32];
	crypto_generichash_init(&hs, s->token_key, 32, sizeof(token));
	if (has_stamp) {
		amp_pow_stamp stamp;
		if ((e = amp_pow_parse(q->pow_stamp, strlen(q->pow_stamp), &stamp,
				       &err)) != AMP_OK ||
		    (e = amp_pow_check(&pub, &stamp, s->set.pow_bits, now, &err)) !=
			    AMP_OK) {
			srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, e);
			return;
		}
		token_expires = stamp.timestamp + AMP_POW_VALID_FOR + AMP_POW_SKEW_MAX;
		crypto_generichash_update(&hs, (const uint8_t *)"stamp", 6);
		crypto_generichash_update(&hs, (const uint8_t *)pub.did,
					  strlen(pub.did) + 1);
		crypto_generichash_update(&hs, (const uint8_t *)q->pow_stamp,
					  strlen(q->pow_stamp));
	} else {
		if (np_invite_check(s->invite_key, q->invite, now, &token_expires,
				    &err) != 0) {
			srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN, err, 0);
			return;
		}
		crypto_generichash_update(&hs, (const uint8_t *)"invite", 7);
		crypto_generichash_update(&hs, (const uint8_t *)q->invite,
					  strlen(q->invite));
	}
	crypto_generichash_final(&hs, token, sizeof(token));
	store_reg_res res;
	uint8_t lb[AMP_LOG_LEAF_MAX];
	size_t lb_len;
	uint64_t index = 0;
	leaf.time = now;
	if (amp_log_leaf_encode(&leaf, lb, sizeof(lb), &lb_len) != AMP_OK) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_INTERNAL,
				"cannot encode the log leaf", 0);
		return;
	}
	if (store_register_logged(s->st, pub.did, q->did_document, dl, token,
				  token_expires, lb, lb_len, &res, &index) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_INTERNAL,
			    "the store failed; try again", 1000);
		return;
	}
	if (res == STORE_REG_TAKEN) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_CONFLICT,
			    "that DID is registered already", 0);
		return;
	}
	if (res == STORE_REG_TOKEN_USED) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
			    has_stamp ? "that stamp was used already"
				      : "that invite was used already", 0);
		return;
	}
	log_msg(LOG_INFO, "msg=\"identity registered\" by=%s log_index=%llu",
		has_stamp ? "stamp" : "invite", (unsigned long long)index);
	Amp__V1__LogIndexResult ir = AMP__V1__LOG_INDEX_RESULT__INIT;
	ir.index = index;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_INDEX;
	resp.log_index = &ir;
	srv_pack(r, &resp);
}

/* AMP-R-075: the mail address of an identity of our domains, "" for the
 * node's own and gateway DIDs. */
static void local_address(server *s, const char *did, char *out, size_t size)
{
	amp_did d;
	out[0] = '\0';
	if (amp_did_parse(did, strlen(did), &d, NULL) != AMP_OK ||
	    strcmp(did, s->node->pub.did) == 0 ||
	    (s->gw != NULL && strcmp(did, gateway_pub(s->gw)->did) == 0))
		return;
	if (s->maps != NULL) {
		const mapset_snap *snap = mapset_get(s->maps);
		int k = maps_canonical_reverse(snap->t[MAPS_CANONICAL], did, out,
					       size, NULL);
		mapset_put(snap);
		if (k == 1)
			return;
	}
	int n = snprintf(out, size, "%s@%s", d.local, d.domain);
	if (n < 0 || (size_t)n >= size)
		out[0] = '\0';
}

static void pack_lookup(sreq *r, char *doc, const char *address)
{
	Amp__V1__LookupResult lr = AMP__V1__LOOKUP_RESULT__INIT;
	lr.did_document = doc;
	lr.address = (char *)address;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOOKUP;
	resp.lookup = &lr;
	srv_pack(r, &resp);
}

/* §10.3.1 in another domain (AMP-R-074): its node, if it is known to
 * run AfterSMTP; the answer must be an identity of that domain. */
static void lookup_remote_address(sreq *r, const char *addr,
				  const char *domain)
{
	route rt;
	const char *err = NULL;
	if (router_find(r->s->routes, domain, &rt, &err) != 0 || rt.fallback) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				"no AfterSMTP node is known for that domain", 0);
		return;
	}
	nclient *cl;
	char *doc = NULL, *raddr = NULL;
	int status = 0;
	if (srv_peer_connect(r->s, domain, &cl, &err) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER, err, 5000);
		return;
	}
	int k = nclient_lookup_address(cl, addr, &doc, &raddr, &status, &err);
	nclient_close(&cl);
	if (k != 0) {
		if (status == AMP__V1__STATUS__STATUS_NOT_FOUND)
			srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
					"unknown identity", 0);
		else
			srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
					err, 5000);
		return;
	}
	amp_public_identity pub;
	amp_did d;
	char address[256];
	const char *at = strrchr(raddr, '@');
	if (amp_did_document_parse(doc, strlen(doc), &pub, &err) != AMP_OK ||
	    amp_did_parse(pub.did, strlen(pub.did), &d, NULL) != AMP_OK ||
	    strcmp(d.domain, domain) != 0 || strcmp(d.local, "node") == 0 ||
	    strcmp(d.local, "gateway") == 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				"the home node answered with an identity of "
				"another domain", 5000);
	} else {
		int n = at != NULL && strcasecmp(at + 1, domain) == 0 &&
				strlen(raddr) < sizeof(address)
			? snprintf(address, sizeof(address), "%s", raddr)
			: snprintf(address, sizeof(address), "%s@%s", d.local,
				   d.domain);
		if (n < 0 || (size_t)n >= sizeof(address))
			address[0] = '\0';
		pack_lookup(r, doc, address);
	}
	free(doc);
	free(raddr);
}

/* §10.3.1: the identity a mail address names. */
static void op_lookup_address(sreq *r)
{
	const char *in = r->f->lookup->address;
	size_t len = strlen(in);
	const char *at = strrchr(in, '@');
	char addr[255], cur[MAPS_ADDR_MAX + 1], did[AMP_DID_MAX + 1];
	if (len > 254 || at == NULL || at == in || at[1] == '\0' ||
	    r->f->lookup->did[0] != '\0' || r->f->lookup->history) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"malformed address lookup", 0);
		return;
	}
	for (size_t i = 0; i <= len; i++)
		addr[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
	char *domain = addr + (at - in) + 1;
	if (!srv_is_local_domain(r->s, domain)) {
		if (r->auth != AUTH_USER)
			srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
					"remote lookups are for this node's "
					"users", 0);
		else
			lookup_remote_address(r, addr, domain);
		return;
	}
	/* AMP-R-073: canonical_maps as at RCPT, then the registry */
	snprintf(cur, sizeof(cur), "%s", addr);
	if (r->s->maps != NULL) {
		const mapset_snap *snap = mapset_get(r->s->maps);
		maps_error me;
		int k = maps_canonical_forward(snap->t[MAPS_CANONICAL], addr, cur,
					       sizeof(cur), NULL, &me);
		mapset_put(snap);
		if (k < 0) {
			srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
					"address rewriting failed", 5000);
			return;
		}
	}
	const char *err = "unknown identity";
	char *cat = strrchr(cur, '@');
	if (strncmp(cur, "did:", 4) == 0) {
		if (amp_did_normalize(cur, did, sizeof(did), &err) != AMP_OK)
			did[0] = '\0';
	} else if (cat != NULL && srv_is_local_domain(r->s, cat + 1)) {
		*cat = '\0';
		if (amp_did_format(cat + 1, cur, did, sizeof(did), &err) != AMP_OK)
			did[0] = '\0';
	} else {
		did[0] = '\0';
		err = "that address is not an identity here";
	}
	amp_public_identity pub;
	char *doc = NULL, address[256];
	int found = did[0] == '\0' ? 0
		: srv_dir_get(r->s, did, false, &pub, &doc, &err);
	if (found == 1)
		local_address(r->s, pub.did, address, sizeof(address));
	if (found == 1 && address[0] == '\0') {
		found = 0; /* the node's own and gateway identities */
		err = "that address is not an identity here";
	}
	if (found < 0)
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER, err, 5000);
	else if (found == 0)
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND, err, 0);
	else
		pack_lookup(r, doc, address);
	free(doc);
}

static void op_lookup(sreq *r)
{
	const char *did = r->f->lookup->did;
	amp_public_identity pub;
	const char *err = "unknown identity";
	char *doc = NULL;
	if (r->f->lookup->address[0] != '\0') {
		op_lookup_address(r);
		return;
	}
	if (strlen(did) > AMP_DID_MAX) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, AMP_E_BAD_DID);
		return;
	}
	/* A remote identity's key history comes from its home node's log,
	 * passed through unchanged: the client checks it with that node's
	 * key (§11.4).  Only for users of this node, as any remote lookup. */
	amp_did rd;
	if (r->f->lookup->history && r->auth == AUTH_USER &&
	    amp_did_parse(did, strlen(did), &rd, NULL) == AMP_OK &&
	    !srv_is_local_domain(r->s, rd.domain)) {
		srv_log_remote_history(r, did, rd.domain);
		return;
	}
	/* Only users of this node make the node ask other nodes. */
	int found = srv_dir_get(r->s, did, r->auth == AUTH_USER, &pub, &doc, &err);
	if (found < 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER, err, 5000);
		return;
	}
	if (found == 0) {
		if (store_identity_revoked(r->s->st, did) == 1)
			err = "that identity was revoked";
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND, err, 0);
		return;
	}
	Amp__V1__LookupResult lr = AMP__V1__LOOKUP_RESULT__INIT;
	lr.did_document = doc;
	srv_history *h = NULL;
	amp_did d;
	char address[256] = "";
	if (amp_did_parse(pub.did, strlen(pub.did), &d, NULL) == AMP_OK) {
		if (srv_is_local_domain(r->s, d.domain))
			local_address(r->s, pub.did, address, sizeof(address));
		else if (snprintf(address, sizeof(address), "%s@%s", d.local,
				  d.domain) >= (int)sizeof(address))
			address[0] = '\0';
	}
	lr.address = address;
	/* The key history of our own users, from our own log (§11.4). */
	if (r->f->lookup->history &&
	    amp_did_parse(did, strlen(did), &d, NULL) == AMP_OK &&
	    srv_is_local_domain(r->s, d.domain) &&
	    (h = srv_log_history(r, did, &lr)) == NULL) {
		free(doc);
		return;
	}
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOOKUP;
	resp.lookup = &lr;
	srv_pack(r, &resp);
	srv_log_history_free(h);
	free(doc);
}

/* Build the DeliverResult response from r->d. */
static void pack_deliver(sreq *r, bool duplicate)
{
	deliver_ctx *d = r->d;
	Amp__V1__RecipientResult *rr = calloc(d->n, sizeof(*rr));
	Amp__V1__RecipientResult **rp = calloc(d->n, sizeof(*rp));
	if (rr == NULL || rp == NULL)
		abort();
	bool any_ok = false;
	Amp__V1__Status first_bad = AMP__V1__STATUS__STATUS_OK;
	for (size_t i = 0; i < d->n; i++) {
		amp__v1__recipient_result__init(&rr[i]);
		rr[i].did = d->dids[i];
		rr[i].status = d->status[i];
		rr[i].error = (char *)(d->error[i] != NULL ? d->error[i] : "");
		rp[i] = &rr[i];
		if (d->status[i] == AMP__V1__STATUS__STATUS_OK)
			any_ok = true;
		else if (first_bad == AMP__V1__STATUS__STATUS_OK)
			first_bad = d->status[i];
	}
	Amp__V1__DeliverResult dr = AMP__V1__DELIVER_RESULT__INIT;
	dr.recipients = rp;
	dr.n_recipients = d->n;
	dr.duplicate = duplicate;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.status = any_ok ? AMP__V1__STATUS__STATUS_OK : first_bad;
	/* A replayed or retried envelope: nothing is stored again. */
	resp.error = (char *)(duplicate ? "AMP_E_REPLAY" : any_ok ? "" :
			      "no recipient accepted");
	resp.result_case = AMP__V1__RESPONSE__RESULT_DELIVER;
	resp.deliver = &dr;
	srv_pack(r, &resp);
	free(rr);
	free(rp);
}

/* Writer thread: the delivery is durable (or failed). */
static void deliver_done(void *arg, int result, bool duplicate)
{
	sreq *r = arg;
	server *s = r->s;
	if (result != 0)
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			    "the store failed; try again", 1000);
	else
		pack_deliver(r, duplicate);
	pthread_mutex_lock(&s->done_lock);
	r->dnext = s->done_head;
	s->done_head = r;
	pthread_mutex_unlock(&s->done_lock);
	uv_async_send(&s->done_async);
}

static void op_deliver(sreq *r)
{
	server *s = r->s;
	const ProtobufCBinaryData *eb = &r->f->deliver->envelope;
	const char *err = NULL;
	amp_envelope *env = NULL;
	amp_err e;
	if (eb->len > s->set.max_message) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_TOO_LARGE,
			    "the envelope is larger than this node accepts", 0);
		return;
	}
	if ((e = amp_envelope_decode(eb->data, eb->len, &env, &err)) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, e);
		return;
	}
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	/* A remote sender's keys come from its home node: only for an
	 * authenticated peer or user, so that anonymous clients cannot make
	 * the node connect out (relaying nodes authenticate as themselves). */
	amp_public_identity sender;
	int found = srv_dir_get(s, info.sender, r->auth != AUTH_NONE, &sender, NULL,
			    &err);
	if (found <= 0) {
		bool remote = !is_local_sender(s, info.sender);
		amp_envelope_free(&env); /* info points into it */
		if (found < 0)
			srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER, err, 30000);
		else if (r->auth == AUTH_NONE && remote)
			srv_pack_status(r, AMP__V1__STATUS__STATUS_UNAUTHENTICATED,
				    "mail from a remote sender needs an "
				    "authenticated node", 0);
		else
			srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				    "unknown sender", 0);
		return;
	}
	e = amp_envelope_verify(env, &sender, 0, &err);
	/* A remote sender may have rotated its key (§11) since we cached its
	 * document: ask its home node once more. */
	if (e == AMP_E_BAD_SIGNATURE && r->auth != AUTH_NONE &&
	    !is_local_sender(s, info.sender) && dir_forget(s, info.sender) &&
	    srv_dir_get(s, info.sender, true, &sender, NULL, &err) == 1)
		e = amp_envelope_verify(env, &sender, 0, &err);
	if (e != AMP_OK) {
		amp_envelope_free(&env);
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, e);
		return;
	}
	/* Relaying to other nodes: only for an authenticated user of this
	 * node sending as themselves. */
	bool may_relay = r->auth == AUTH_USER && strcmp(r->did, info.sender) == 0;
	size_t n = info.n_recipients;
	deliver_ctx *d = calloc(1, sizeof(*d));
	if (d == NULL || (d->dids = calloc(n, sizeof(*d->dids))) == NULL ||
	    (d->status = calloc(n, sizeof(*d->status))) == NULL ||
	    (d->error = calloc(n, sizeof(*d->error))) == NULL ||
	    (d->local = calloc(n, sizeof(*d->local))) == NULL ||
	    (d->domains = calloc(n, sizeof(*d->domains))) == NULL)
		abort();
	r->d = d;
	d->n = n;
	size_t gw_idx = SIZE_MAX;          /* the gateway among the recipients */
	for (size_t i = 0; i < n; i++) {
		const char *rcpt = amp_envelope_recipient(env, i);
		amp_did rd;
		memcpy(d->dids[i], rcpt, strlen(rcpt) + 1);
		if (amp_did_parse(rcpt, strlen(rcpt), &rd, NULL) != AMP_OK) {
			d->status[i] = AMP__V1__STATUS__STATUS_BAD_REQUEST;
			d->error[i] = "AMP_E_BAD_DID";
		} else if (s->gw != NULL &&
			   strcmp(rcpt, gateway_pub(s->gw)->did) == 0) {
			/* §10.9: mail for legacy addresses, from our users only */
			if (may_relay) {
				gw_idx = i;
			} else {
				d->status[i] = AMP__V1__STATUS__STATUS_FORBIDDEN;
				d->error[i] = "the gateway sends only for this "
					      "node's users, authenticated as "
					      "the sender";
			}
		} else if (srv_is_local_domain(s, rd.domain)) {
			amp_public_identity rp;
			int rf = srv_dir_get(s, rcpt, false, &rp, NULL, &err);
			if (rf == 1) {
				d->local[d->n_local++] = d->dids[i];
			} else {
				d->status[i] = rf == 0 ? AMP__V1__STATUS__STATUS_NOT_FOUND
						       : AMP__V1__STATUS__STATUS_RETRY_LATER;
				d->error[i] = rf == 0 ? "no such recipient here"
						      : "store read failed";
			}
		} else if (!may_relay) {
			d->status[i] = AMP__V1__STATUS__STATUS_FORBIDDEN;
			d->error[i] = "relaying denied: authenticate as the sender";
		} else {
			bool seen = false;
			for (size_t k = 0; k < d->n_domains && !seen; k++)
				seen = strcmp(d->domains[k], rd.domain) == 0;
			if (!seen)
				memcpy(d->domains[d->n_domains++], rd.domain,
				       strlen(rd.domain) + 1);
		}
	}
	/* Deduplication is by the whole envelope, so a recipient that could
	 * not be checked now makes the whole delivery wait: nothing is
	 * stored and the sender retries all of it. */
	for (size_t i = 0; i < n; i++) {
		if (d->status[i] == AMP__V1__STATUS__STATUS_RETRY_LATER) {
			amp_envelope_free(&env);
			srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				    "a recipient cannot be checked now", 5000);
			return;
		}
	}
	uint64_t now = (uint64_t)time(NULL);
	gateway_msg gm;
	memset(&gm, 0, sizeof(gm));
	if (gw_idx != SIZE_MAX) {
		if (gateway_prepare(s->gw, env, &sender, now, s->set.queue_lifetime,
				    &gm, d->gw_why, sizeof(d->gw_why)) == 0) {
			d->outbound = true;
			log_msg(LOG_INFO, "msg=\"gateway: queued\" rcpts=%zu "
				"bytes=%zu dkim=%s lane=%u", gm.q.n_rcpts,
				gm.q.body_len, gm.signed_ ? "yes" : "no",
				gm.q.lane);
		} else {
			char q[LOG_QUOTE_MAX];
			d->status[gw_idx] = AMP__V1__STATUS__STATUS_BAD_REQUEST;
			d->error[gw_idx] = d->gw_why;
			log_msg(LOG_NOTICE, "msg=\"gateway: refused\" why=%s",
				log_quote(d->gw_why, strlen(d->gw_why), q));
		}
	}
	if (d->n_local + d->n_domains == 0 && !d->outbound) {
		amp_envelope_free(&env);
		pack_deliver(r, false);
		return;
	}
	const char **domains = calloc(d->n_domains + 1, sizeof(*domains));
	if (domains == NULL)
		abort();
	for (size_t k = 0; k < d->n_domains; k++)
		domains[k] = d->domains[k];
	/* §11.2: a receipt for an envelope accepted for our users. */
	uint8_t receipt[AMP_LOG_LEAF_MAX];
	size_t receipt_len = 0;
	if (d->n_local > 0 && s->log_receipts) {
		amp_log_leaf rl;
		memset(&rl, 0, sizeof(rl));
		rl.type = AMP_LOG_RECEIPT;
		rl.time = now;
		amp_log_envelope_digest(eb->data, eb->len, rl.subject);
		memcpy(rl.node, s->node->pub.did, strlen(s->node->pub.did) + 1);
		if (amp_log_leaf_encode(&rl, receipt, sizeof(receipt),
					&receipt_len) != AMP_OK)
			receipt_len = 0;
	}
	store_delivery sd = {
		.receipt = receipt_len > 0 ? receipt : NULL,
		.receipt_len = receipt_len,
		.sender = info.sender, .envelope_id = info.envelope_id,
		.env = eb->data, .env_len = eb->len, .received = now,
		.local = d->local, .n_local = d->n_local,
		.domains = domains, .n_domains = d->n_domains,
		.expires = now + s->set.relay_lifetime,
		.outbound = d->outbound ? &gm.q : NULL,
	};
	/* From here the store's callback owns the answer and the reference
	 * queue_work reserved for it; it may run before this worker returns,
	 * so r is not touched after the call. */
	free(r->out);
	r->out = NULL;
	r->async = true; /* uses the reference queue_work reserved */
	if (store_deliver(s->st, &sd, deliver_done, r) != 0) {
		r->async = false;
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			    "the store is busy or closing", 1000);
	}
	free(domains);
	gateway_msg_free(&gm);
	amp_envelope_free(&env);
}

static void op_fetch(sreq *r)
{
	Amp__V1__FetchRequest *q = r->f->fetch;
	unsigned limit = q->limit == 0 ? FETCH_LIMIT_DEFAULT
		       : q->limit > FETCH_LIMIT_MAX ? FETCH_LIMIT_MAX : q->limit;
	store_item *items = NULL;
	size_t n = 0;
	int nq = store_inbox_fetch(r->s->st, r->did, q->cursor, limit, &items, &n);
	if (nq > 0)
		log_msg(LOG_ERR, "msg=\"corrupt inbox entries quarantined\" count=%d",
			nq);
	if (nq < 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			    "the store failed; try again", 1000);
		return;
	}
	Amp__V1__InboxItem *it = calloc(n + 1, sizeof(*it));
	Amp__V1__InboxItem **ip = calloc(n + 1, sizeof(*ip));
	if (it == NULL || ip == NULL)
		abort();
	/* Keep the answer within the frame maximum. */
	size_t budget = r->s->max_frame - 4096, used = 0, k = 0;
	uint64_t cursor = q->cursor;
	for (size_t i = 0; i < n; i++) {
		if (items[i].envelope_len + 64 > budget - used && k > 0)
			break;
		amp__v1__inbox_item__init(&it[k]);
		it[k].seq = items[i].seq;
		it[k].received = items[i].received;
		it[k].envelope.data = items[i].envelope;
		it[k].envelope.len = items[i].envelope_len;
		if (items[i].note != NULL)
			it[k].delivery = items[i].note;
		ip[k] = &it[k];
		used += items[i].envelope_len + 64;
		cursor = items[i].seq;
		k++;
	}
	Amp__V1__FetchResult fr = AMP__V1__FETCH_RESULT__INIT;
	fr.items = ip;
	fr.n_items = k;
	fr.cursor = cursor;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_FETCH;
	resp.fetch = &fr;
	srv_pack(r, &resp);
	r->fetch_empty = k == 0;
	free(it);
	free(ip);
	store_items_free(items, n);
}

static void op_ack(sreq *r)
{
	Amp__V1__AckRequest *q = r->f->ack;
	if (q->n_seq > 10000) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_TOO_LARGE,
			    "at most 10000 seqs per ack", 0);
		return;
	}
	if (store_inbox_ack(r->s->st, r->did, q->seq, q->n_seq) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			    "the store failed; try again", 1000);
		return;
	}
	srv_pack_status(r, AMP__V1__STATUS__STATUS_OK, NULL, 0);
}

/* ------------------------------------------------------------- dispatch */

static void queue_work(sreq *r);

static void park(sreq *r)
{
	server *s = r->s;
	uint64_t wait = r->f->fetch->wait_ms;
	if (wait > s->set.fetch_wait_max_ms)
		wait = s->set.fetch_wait_max_ms;
	r->parked = true;
	r->waited = true;
	r->deadline_ms = now_ms(s) + wait;
	r->wnext = s->waiters;
	s->waiters = r;
}

static void work_cb(uv_work_t *w)
{
	sreq *r = w->data;
	op_table[r->op].run(r);
}

static void after_work_cb(uv_work_t *w, int status)
{
	sreq *r = w->data;
	server *s = r->s;
	s->jobs--;
	if (r->async) { /* deliver_done answers and drops the store's ref */
		req_unref(r);
		return;
	}
	if (r->op == AMP__V1__FRAME__BODY_DELIVER)
		req_unref(r); /* the store's reference, unused */
	if (status == UV_ECANCELED)
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			    "the node is stopping", 1000);
	sconn *c = r->c;
	if (r->op == AMP__V1__FRAME__BODY_AUTH && r->auth_result != AUTH_NONE &&
	    !c->closed) {
		c->auth = r->auth_result;
		memcpy(c->did, r->did, sizeof(c->did));
		if (c->ops->set_max_frame != NULL)
			c->ops->set_max_frame(c->t, s->max_frame);
		log_msg(LOG_INFO, "peer=%s msg=\"authenticated\" as=%s", c->ip,
			c->auth == AUTH_USER ? "user" : "peer-node");
	}
	if (r->op == AMP__V1__FRAME__BODY_FETCH && r->fetch_empty &&
	    !r->waited && r->f->fetch->wait_ms > 0 && !s->draining &&
	    !c->closed && status == 0) {
		park(r);
		return;
	}
	if (r->out != NULL)
		req_answer(r);
	req_unref(r);
}

/* The work holds a reference; a delivery holds a second one for the
 * store's callback (taken here, on the loop: reference counts never
 * change on a worker). */
static void queue_work(sreq *r)
{
	server *s = r->s;
	int refs = r->op == AMP__V1__FRAME__BODY_DELIVER ? 2 : 1;
	r->work.data = r;
	r->refs += refs;
	s->jobs++;
	if (uv_queue_work(s->loop, &r->work, work_cb, after_work_cb) != 0) {
		s->jobs--;
		r->refs -= refs;
		srv_pack_status(r, AMP__V1__STATUS__STATUS_INTERNAL,
			    "cannot queue the request", 1000);
		req_answer(r);
	}
}

/* Run the fetches waiting for did again: there is new mail. */
static void wake(server *s, const char *did)
{
	sreq **pp = &s->waiters;
	while (*pp != NULL) {
		sreq *w = *pp;
		if (strcmp(w->did, did) == 0) {
			*pp = w->wnext;
			w->parked = false;
			free(w->out);
			w->out = NULL;
			queue_work(w);
			req_unref(w);
		} else {
			pp = &w->wnext;
		}
	}
}

void server_notify(server *s, const char *did)
{
	notice *n = calloc(1, sizeof(*n));
	if (n == NULL || strlen(did) > AMP_DID_MAX) {
		free(n);
		return;
	}
	memcpy(n->did, did, strlen(did) + 1);
	pthread_mutex_lock(&s->done_lock);
	n->next = s->notices;
	s->notices = n;
	pthread_mutex_unlock(&s->done_lock);
	uv_async_send(&s->done_async);
}

void server_set_relay(server *s, struct relay *r)
{
	s->relay = r;
}

void server_set_outbound(server *s, void (*wake_fn)(void *arg), void *arg)
{
	s->out_wake = wake_fn;
	s->out_arg = arg;
}

/* Completed deliveries (from the store's writer thread) and notices. */
static void done_async_cb(uv_async_t *a)
{
	server *s = a->data;
	pthread_mutex_lock(&s->done_lock);
	sreq *list = s->done_head;
	s->done_head = NULL;
	notice *nl = s->notices;
	s->notices = NULL;
	pthread_mutex_unlock(&s->done_lock);
	while (nl != NULL) {
		notice *n = nl;
		nl = n->next;
		wake(s, n->did);
		free(n);
	}
	while (list != NULL) {
		sreq *r = list;
		list = r->dnext;
		req_answer(r);
		s->stats.delivered++;
		deliver_ctx *d = r->d;
		for (size_t i = 0; d != NULL && i < d->n_local; i++)
			wake(s, d->local[i]);
		if (d != NULL && d->n_domains > 0 && s->relay != NULL)
			relay_wake(s->relay);
		if (d != NULL && d->outbound && s->out_wake != NULL)
			s->out_wake(s->out_arg);
		req_unref(r);
	}
}

static void op_hello(server *s, sconn *c, sreq *r)
{
	randombytes_buf(c->challenge, sizeof(c->challenge));
	c->hello_done = true;
	uint64_t t = (uint64_t)time(NULL);
	uint8_t sig[AMP_SIG_BYTES];
	np_hello_sign(s->node, c->x, c->challenge, t, sig);
	Amp__V1__HelloResult h = AMP__V1__HELLO_RESULT__INIT;
	h.node_did = (char *)s->node->pub.did;
	h.node_sign_pk.data = (uint8_t *)s->node->pub.sign_pk;
	h.node_sign_pk.len = 32;
	h.node_enc_pk.data = (uint8_t *)s->node->pub.enc_pk;
	h.node_enc_pk.len = 32;
	h.challenge.data = c->challenge;
	h.challenge.len = sizeof(c->challenge);
	h.server_time = t;
	h.max_frame = (uint32_t)s->max_frame;
	h.pow_bits = s->set.pow_bits;
	h.signature.data = sig;
	h.signature.len = sizeof(sig);
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_HELLO;
	resp.hello = &h;
	srv_pack(r, &resp);
	req_answer(r);
}

void server_conn_request(sconn *c, uint64_t tag, uint8_t *payload, size_t len)
{
	server *s = c->s;
	s->stats.requests++;
	c->last_ms = now_ms(s);
	sreq *r = calloc(1, sizeof(*r));
	if (r == NULL)
		abort();
	r->s = s;
	r->c = c;
	r->tag = tag;
	r->in_len = len;
	r->refs = 1;
	c->refs++;
	c->inflight++;
	s->active++;
	s->inflight_bytes += len;
	if (c->inflight >= s->max_streams && !c->paused && c->ops->pause != NULL) {
		c->paused = true;
		c->ops->pause(c->t, true);
	}
	r->f = np_frame_unpack(payload, len);
	sodium_memzero(payload, len);
	free(payload);
	uint32_t retry = 0;
	const char *why = NULL;
	Amp__V1__Status st = AMP__V1__STATUS__STATUS_OK;
	if (r->f == NULL) {
		st = AMP__V1__STATUS__STATUS_BAD_REQUEST;
		why = "the frame is not a valid request";
	} else {
		r->rid = r->f->request_id;
		r->op = (int)r->f->body_case;
		if (r->op <= 0 || (size_t)r->op >= N_OPS ||
		    op_table[r->op].name == NULL) {
			st = AMP__V1__STATUS__STATUS_BAD_REQUEST;
			why = "not a request";
		} else if (s->draining) {
			st = AMP__V1__STATUS__STATUS_RETRY_LATER;
			why = "the node is restarting";
			retry = 2000;
		} else if (!bucket_take(s, c->ip_slot, s->set.rate_ip, &retry) ||
			   (c->auth == AUTH_USER &&
			    !bucket_take(s, slot_of(s, "id", c->did), s->set.rate_id,
					 &retry))) {
			st = AMP__V1__STATUS__STATUS_RATE_LIMITED;
			why = "too many requests";
			s->stats.rate_limited++;
		} else if (op_table[r->op].state == ST_HELLO && !c->hello_done) {
			st = AMP__V1__STATUS__STATUS_UNAUTHENTICATED;
			why = "send hello first";
		} else if (op_table[r->op].state == ST_USER && c->auth != AUTH_USER) {
			st = AMP__V1__STATUS__STATUS_UNAUTHENTICATED;
			why = "authenticate as a user of this node first";
		} else if (op_table[r->op].run != NULL &&
			   (s->jobs >= s->set.max_jobs ||
			    s->inflight_bytes > INFLIGHT_BYTES_MAX)) {
			st = AMP__V1__STATUS__STATUS_RETRY_LATER;
			why = "the node is busy";
			retry = 500;
			s->stats.retry_later++;
		}
	}
	if (why != NULL) {
		log_msg(LOG_DEBUG, "peer=%s msg=\"request refused\" op=%s "
			"reason=\"%s\"", c->ip,
			r->f != NULL && r->op > 0 && (size_t)r->op < N_OPS &&
			op_table[r->op].name != NULL ? op_table[r->op].name : "?",
			why);
		srv_pack_status(r, st, why, retry);
		req_answer(r);
		req_unref(r);
		return;
	}
	if (op_table[r->op].run == NULL) {
		op_hello(s, c, r);
		req_unref(r);
		return;
	}
	memcpy(r->x, c->x, sizeof(r->x));
	memcpy(r->challenge, c->challenge, sizeof(r->challenge));
	r->auth = c->auth;
	memcpy(r->did, c->did, sizeof(r->did));
	queue_work(r);
	req_unref(r);
}

/* ---------------------------------------------------------- connections */

sconn *server_conn_open(server *s, const sconn_ops *ops, void *t,
			const struct sockaddr *peer)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr,
			  ip, sizeof(ip));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr,
			  ip, sizeof(ip));
	unsigned slot = slot_of(s, "ip", ip);
	if (s->draining || s->n_conns >= s->max_conns ||
	    s->buckets[slot].conns >= s->max_conns_ip) {
		log_msg(LOG_NOTICE, "peer=%s msg=\"connection refused\" reason=%s",
			ip, s->draining ? "draining" : s->n_conns >= s->max_conns
			? "max_connections" : "max_connections_per_ip");
		return NULL;
	}
	sconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->s = s;
	c->ops = ops;
	c->t = t;
	c->refs = 1;
	memcpy(c->ip, ip, sizeof(ip));
	c->ip_slot = slot;
	c->opened_ms = c->last_ms = now_ms(s);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	s->buckets[slot].conns++;
	s->stats.conns++;
	return c;
}

void server_conn_ready(sconn *c, const uint8_t x[32])
{
	memcpy(c->x, x, NP_X_BYTES);
	c->ready = true;
	c->last_ms = now_ms(c->s);
	log_msg(LOG_DEBUG, "peer=%s msg=\"connected\"", c->ip);
}

void server_conn_closed(sconn *c)
{
	server *s = c->s;
	if (c->closed)
		return;
	c->closed = true;
	s->n_conns--;
	s->buckets[c->ip_slot].conns--;
	/* Parked fetches of this connection are answered by nobody: drop. */
	sreq **pp = &s->waiters;
	while (*pp != NULL) {
		sreq *w = *pp;
		if (w->c == c) {
			*pp = w->wnext;
			w->parked = false;
			req_unref(w);
		} else {
			pp = &w->wnext;
		}
	}
	conn_unref(c);
}

static void sweep_cb(uv_timer_t *t)
{
	server *s = t->data;
	uint64_t now = now_ms(s);
	sreq **pp = &s->waiters;
	while (*pp != NULL) {
		sreq *w = *pp;
		if (w->deadline_ms <= now || s->draining) {
			*pp = w->wnext;
			w->parked = false;
			req_answer(w); /* the empty answer the worker packed */
			req_unref(w);
		} else {
			pp = &w->wnext;
		}
	}
	sconn *next;
	for (sconn *c = s->conns; c != NULL; c = next) {
		next = c->next; /* closing may free c (QUIC closes at once) */
		if (c->closed)
			continue;
		if (!c->ready && now - c->opened_ms > s->handshake_ms) {
			log_msg(LOG_INFO, "peer=%s msg=\"handshake timeout\"", c->ip);
			c->ops->close(c->t);
		} else if (c->inflight == 0 && now - c->last_ms > s->idle_ms) {
			log_msg(LOG_DEBUG, "peer=%s msg=\"idle timeout\"", c->ip);
			c->ops->close(c->t);
		}
	}
}

/* ------------------------------------------------------------ lifecycle */

static void apply_settings(server *s, const cfg *conf)
{
	s->set.pow_bits = (uint32_t)cfg_int(conf, "pow_bits");
	s->set.rate_ip = (double)cfg_int(conf, "rate_per_ip");
	s->set.rate_id = (double)cfg_int(conf, "rate_per_identity");
	s->set.max_jobs = (unsigned)cfg_int(conf, "max_jobs");
	s->set.max_message = (size_t)cfg_int(conf, "max_message_size");
	s->set.fetch_wait_max_ms = (uint64_t)cfg_int(conf, "fetch_wait_max") * 1000u;
	s->set.relay_lifetime = (uint64_t)cfg_int(conf, "relay_lifetime");
	s->set.queue_lifetime = (uint64_t)cfg_int(conf, "maximal_queue_lifetime");
	s->set.peer_timeout_ms = (unsigned)cfg_int(conf, "peer_timeout") * 1000u;
}

int server_create(const server_params *p, const cfg *conf, server **s_r,
		  const char **error_r)
{
	server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	s->loop = p->loop;
	s->st = p->st;
	s->node = p->node;
	s->gw = p->gw;
	s->maps = p->maps;
	s->routes = p->routes;
	node_subkey(p->storage_key, "AMPv1-invite-key", s->invite_key);
	node_subkey(p->storage_key, "AMPv1-token-key", s->token_key);
	randombytes_buf(s->limit_key, sizeof(s->limit_key));
	s->n_domains = cfg_list_len(conf, "domains");
	s->domains = calloc(s->n_domains + 1, sizeof(char *));
	s->buckets = calloc(LIMIT_SLOTS, sizeof(bucket));
	s->dircache = calloc(DIRCACHE_SLOTS, sizeof(dircache_slot));
	s->unreach = calloc(UNREACH_SLOTS, sizeof(unreach_slot));
	if (s->domains == NULL || s->buckets == NULL || s->dircache == NULL ||
	    s->unreach == NULL) {
		*error_r = "out of memory";
		server_destroy(&s);
		return -1;
	}
	for (size_t i = 0; i < s->n_domains; i++)
		if ((s->domains[i] = strdup(cfg_list_item(conf, "domains", i))) == NULL) {
			*error_r = "out of memory";
			server_destroy(&s);
			return -1;
		}
	s->n_log_witnesses = cfg_list_len(conf, "log_witnesses");
	if ((s->log_witnesses = calloc(s->n_log_witnesses + 1,
				       sizeof(char *))) == NULL) {
		*error_r = "out of memory";
		server_destroy(&s);
		return -1;
	}
	for (size_t i = 0; i < s->n_log_witnesses; i++)
		if ((s->log_witnesses[i] =
			     strdup(cfg_list_item(conf, "log_witnesses", i))) == NULL) {
			*error_r = "out of memory";
			server_destroy(&s);
			return -1;
		}
	s->log_receipts = cfg_bool(conf, "log_receipts");
	if (amp_did_document_export(&s->node->pub, &s->node_doc, error_r) != AMP_OK) {
		server_destroy(&s);
		return -1;
	}
	s->max_conns = (unsigned)cfg_int(conf, "max_connections");
	s->max_conns_ip = (unsigned)cfg_int(conf, "max_connections_per_ip");
	s->max_streams = (unsigned)cfg_int(conf, "max_streams");
	s->max_frame = (size_t)cfg_int(conf, "max_frame");
	s->idle_ms = (uint64_t)cfg_int(conf, "idle_timeout") * 1000u;
	s->handshake_ms = (uint64_t)cfg_int(conf, "handshake_timeout") * 1000u;
	apply_settings(s, conf);
	pthread_mutex_init(&s->done_lock, NULL);
	pthread_mutex_init(&s->dir_lock, NULL);
	s->started = true;
	s->handles_open = 2;
	uv_async_init(s->loop, &s->done_async, done_async_cb);
	s->done_async.data = s;
	uv_timer_init(s->loop, &s->sweep);
	s->sweep.data = s;
	uv_timer_start(&s->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
	*s_r = s;
	return 0;
}

void server_reconfigure(server *s, const cfg *conf)
{
	apply_settings(s, conf);
}

void server_drain(server *s, void (*done)(void *arg), void *arg)
{
	s->draining = true;
	s->drain_cb = done;
	s->drain_arg = arg;
	sweep_cb(&s->sweep); /* answer parked fetches now */
	maybe_drained(s);
}

static void server_free(server *s)
{
	if (s->started) {
		pthread_mutex_destroy(&s->done_lock);
		pthread_mutex_destroy(&s->dir_lock);
	}
	for (size_t i = 0; s->domains != NULL && i < s->n_domains; i++)
		free(s->domains[i]);
	free(s->domains);
	for (size_t i = 0; s->log_witnesses != NULL && i < s->n_log_witnesses; i++)
		free(s->log_witnesses[i]);
	free(s->log_witnesses);
	free(s->buckets);
	if (s->dircache != NULL)
		for (size_t i = 0; i < DIRCACHE_SLOTS; i++)
			free(s->dircache[i].doc);
	free(s->dircache);
	free(s->unreach);
	amp_free(s->node_doc);
	sodium_memzero(s->invite_key, sizeof(s->invite_key));
	sodium_memzero(s->token_key, sizeof(s->token_key));
	free(s);
}

/* Freed once both handles have closed and every session is gone. */
static void maybe_free(server *s)
{
	if (s->destroying && s->handles_open == 0 && s->conns == NULL)
		server_free(s);
}

static void handle_closed_cb(uv_handle_t *h)
{
	server *s = h->data;
	s->handles_open--;
	maybe_free(s);
}

void server_destroy(server **sp)
{
	server *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	if (!s->started) {
		server_free(s);
		return;
	}
	done_async_cb(&s->done_async); /* completions posted at the end */
	s->destroying = true;
	uv_close((uv_handle_t *)&s->done_async, handle_closed_cb);
	uv_close((uv_handle_t *)&s->sweep, handle_closed_cb);
}

void server_get_stats(server *s, server_stats *st)
{
	*st = s->stats;
	st->jobs = s->jobs;
}

const char *server_node_document(server *s)
{
	return s->node_doc;
}
