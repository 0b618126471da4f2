/*
 * server-log.c — the transparency log's operations (PROTOCOL.md §11.4):
 * log_head, log_proof, log_consistency, log_entries, log_cosign, rotate,
 * revoke, and the key history that lookup adds on request.  They run on
 * the worker pool like every handler in server.c; the reads use the
 * store's read connection (committed data only), and every proof is given
 * against a head the node signed (src/daemon/tlog.c signs them).
 */
#include "server-private.h"

#include "amp/amp-log.h"
#include "client.h"
#include "log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HISTORY_MAX 1000u             /* leaves of one DID (rotations) */
#define ENTRIES_MAX 1000u

/* A head with its cosignatures, in protobuf form, on the caller's stack. */
typedef struct head_pb {
	amp_log_head h;
	store_cosig cs[STORE_COSIG_MAX];
	Amp__V1__Cosignature c[STORE_COSIG_MAX];
	Amp__V1__Cosignature *cp[STORE_COSIG_MAX];
	Amp__V1__LogHead m;
} head_pb;

static void head_pb_fill(server *s, head_pb *hp)
{
	size_t n = 0;
	if (store_log_cosigs(s->st, hp->h.size, hp->cs, STORE_COSIG_MAX, &n) != 0)
		n = 0;  /* the head still stands without its cosignatures */
	amp__v1__log_head__init(&hp->m);
	hp->m.log = hp->h.log;
	hp->m.size = hp->h.size;
	hp->m.root.data = hp->h.root;
	hp->m.root.len = 32;
	hp->m.time = hp->h.time;
	hp->m.signature.data = hp->h.sig;
	hp->m.signature.len = 64;
	for (size_t i = 0; i < n; i++) {
		amp__v1__cosignature__init(&hp->c[i]);
		hp->c[i].witness = hp->cs[i].witness;
		hp->c[i].time = hp->cs[i].time;
		hp->c[i].signature.data = hp->cs[i].sig;
		hp->c[i].signature.len = 64;
		hp->cp[i] = &hp->c[i];
	}
	hp->m.cosignatures = hp->cp;
	hp->m.n_cosignatures = n;
}

/* The latest head (size 0) or the head of exactly that size: 0, or -1 with
 * the request answered. */
static int head_load(sreq *r, uint64_t size, head_pb *hp)
{
	int f = size == 0 ? store_log_head_latest(r->s->st, &hp->h)
			  : store_log_head_get(r->s->st, size, &hp->h);
	if (f < 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				"the store failed; try again", 1000);
		return -1;
	}
	if (f == 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				size == 0 ? "no signed tree head yet"
					  : "no signed tree head of that size", 0);
		return -1;
	}
	head_pb_fill(r->s, hp);
	return 0;
}

static void store_failed(sreq *r)
{
	srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
			"the store failed; try again", 1000);
}

void op_log_head(sreq *r)
{
	head_pb hp;
	if (head_load(r, 0, &hp) != 0)
		return;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_HEAD;
	resp.log_head = &hp.m;
	srv_pack(r, &resp);
}

/* Inclusion proof of leaf index under a head of size `size`, into p (with
 * pathbuf/pb as storage).  0, or -1 answered. */
typedef struct proof_pb {
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	ProtobufCBinaryData pd[AMP_LOG_PROOF_MAX];
	Amp__V1__LogProof m;
	uint8_t *leaf;
} proof_pb;

static int proof_load(sreq *r, uint64_t index, uint64_t size, proof_pb *p)
{
	size_t len = 0, n = 0;
	p->leaf = NULL;
	int f = store_log_leaf(r->s->st, index, &p->leaf, &len);
	if (f <= 0 || store_log_inclusion(r->s->st, index, size, p->path, &n) != 0) {
		free(p->leaf);
		p->leaf = NULL;
		store_failed(r);
		return -1;
	}
	amp__v1__log_proof__init(&p->m);
	p->m.index = index;
	p->m.leaf.data = p->leaf;
	p->m.leaf.len = len;
	for (size_t i = 0; i < n; i++) {
		p->pd[i].data = p->path[i];
		p->pd[i].len = 32;
	}
	p->m.path = p->pd;
	p->m.n_path = n;
	return 0;
}

/* The newest leaf with this subject below `below`: 1 found, 0 none, -1. */
static int latest_of(store *st, const uint8_t subject[32], uint64_t below,
		     uint64_t *idx_r)
{
	uint64_t *idx = malloc(HISTORY_MAX * sizeof(*idx));
	size_t n = 0;
	if (idx == NULL)
		return -1;
	int r = store_log_find(st, subject, below, idx, HISTORY_MAX, &n);
	if (r == 0 && n > 0)
		*idx_r = idx[n - 1];
	free(idx);
	return r < 0 ? -1 : n > 0;
}

static void log_proof_remote(sreq *r, const Amp__V1__LogProofRequest *q);

void op_log_proof(sreq *r)
{
	Amp__V1__LogProofRequest *q = r->f->log_proof;
	if (q->log[0] != '\0' && strcmp(q->log, r->s->node->pub.did) != 0) {
		log_proof_remote(r, q);
		return;
	}
	if (q->subject.len != 0 && q->subject.len != 32) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"a subject is 32 bytes", 0);
		return;
	}
	head_pb hp;
	if (head_load(r, q->tree_size, &hp) != 0)
		return;
	uint64_t index = q->index;
	if (q->subject.len == 32) {
		int f = latest_of(r->s->st, q->subject.data, hp.h.size, &index);
		if (f < 0) {
			store_failed(r);
			return;
		}
		if (f == 0) {
			uint64_t later;
			f = latest_of(r->s->st, q->subject.data, UINT64_MAX, &later);
			srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
					f == 1 ? "not yet in a signed tree head"
					       : "no leaf with that subject", 0);
			return;
		}
	} else if (index >= hp.h.size) {
		uint64_t size;
		uint8_t root[32];
		bool later = store_log_state(r->s->st, &size, root) == 0 &&
			     index < size;
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				later ? "not yet in a signed tree head"
				      : "no leaf with that index", 0);
		return;
	}
	proof_pb p;
	if (proof_load(r, index, hp.h.size, &p) != 0)
		return;
	Amp__V1__LogProofResult pr = AMP__V1__LOG_PROOF_RESULT__INIT;
	pr.head = &hp.m;
	pr.proof = &p.m;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_PROOF;
	resp.log_proof = &pr;
	srv_pack(r, &resp);
	free(p.leaf);
}

void op_log_consistency(sreq *r)
{
	Amp__V1__LogConsistencyRequest *q = r->f->log_consistency;
	head_pb first, second;
	if (q->first == 0 || (q->second != 0 && q->first > q->second)) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"need 0 < first <= second", 0);
		return;
	}
	if (head_load(r, q->second, &second) != 0)
		return;
	if (q->first > second.h.size) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"first is beyond the latest head", 0);
		return;
	}
	if (head_load(r, q->first, &first) != 0)
		return;
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	ProtobufCBinaryData pd[AMP_LOG_PROOF_MAX];
	size_t n = 0;
	if (store_log_consistency(r->s->st, first.h.size, second.h.size, path,
				  &n) != 0) {
		store_failed(r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		pd[i].data = path[i];
		pd[i].len = 32;
	}
	Amp__V1__LogConsistencyResult cr = AMP__V1__LOG_CONSISTENCY_RESULT__INIT;
	cr.first = &first.m;
	cr.second = &second.m;
	cr.path = pd;
	cr.n_path = n;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_CONSISTENCY;
	resp.log_consistency = &cr;
	srv_pack(r, &resp);
}

void op_log_entries(sreq *r)
{
	Amp__V1__LogEntriesRequest *q = r->f->log_entries;
	if (q->count == 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"count is 1 to 1000", 0);
		return;
	}
	head_pb hp;
	if (head_load(r, 0, &hp) != 0)
		return;
	/* Only what the latest head covers: one consistent view. */
	uint64_t count = q->count > ENTRIES_MAX ? ENTRIES_MAX : q->count;
	if (q->start >= hp.h.size)
		count = 0;
	else if (count > hp.h.size - q->start)
		count = hp.h.size - q->start;
	uint8_t **leaves = NULL;
	size_t *lens = NULL, n = 0;
	if (count > 0 && store_log_entries(r->s->st, q->start, (unsigned)count,
					   &leaves, &lens, &n) != 0) {
		store_failed(r);
		return;
	}
	ProtobufCBinaryData *ld = calloc(n + 1, sizeof(*ld));
	if (ld == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		ld[i].data = leaves[i];
		ld[i].len = lens[i];
	}
	Amp__V1__LogEntriesResult er = AMP__V1__LOG_ENTRIES_RESULT__INIT;
	er.start = q->start;
	er.leaves = ld;
	er.n_leaves = n;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_ENTRIES;
	resp.log_entries = &er;
	srv_pack(r, &resp);
	free(ld);
	if (leaves != NULL)
		store_log_leaves_free(leaves, lens, n);
}

static bool is_witness(const server *s, const char *did)
{
	amp_did d;
	if (amp_did_parse(did, strlen(did), &d, NULL) != AMP_OK ||
	    strcmp(d.local, "node") != 0)
		return false;
	for (size_t i = 0; i < s->n_log_witnesses; i++)
		if (strcmp(s->log_witnesses[i], d.domain) == 0)
			return true;
	return false;
}

void op_log_cosign(sreq *r)
{
	server *s = r->s;
	Amp__V1__LogHead *m = r->f->log_cosign->head;
	if (r->auth != AUTH_PEER || !is_witness(s, r->did)) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
				"only a witness of this log (log_witnesses), "
				"authenticated as its node, may cosign", 0);
		return;
	}
	if (m == NULL || m->n_cosignatures != 1 || m->root.len != 32 ||
	    m->cosignatures[0]->signature.len != 64 ||
	    strcmp(m->log, s->node->pub.did) != 0 ||
	    strcmp(m->cosignatures[0]->witness, r->did) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"a head of this log with one cosignature by "
				"the authenticated witness", 0);
		return;
	}
	amp_log_head h;
	int f = store_log_head_get(s->st, m->size, &h);
	if (f < 0) {
		store_failed(r);
		return;
	}
	if (f == 0 || memcmp(h.root, m->root.data, 32) != 0 || h.time != m->time) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				"this node did not sign that head", 0);
		return;
	}
	amp_public_identity wpub;
	const char *err = NULL;
	if (srv_dir_get(s, r->did, true, &wpub, NULL, &err) != 1) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				err != NULL ? err : "cannot look the witness up",
				30000);
		return;
	}
	const Amp__V1__Cosignature *c = m->cosignatures[0];
	if (!amp_log_cosign_verify(&h, r->did, c->time, wpub.sign_pk,
				   c->signature.data)) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				   AMP_E_BAD_SIGNATURE);
		return;
	}
	store_cosig cs;
	memcpy(cs.witness, r->did, strlen(r->did) + 1);
	cs.time = c->time;
	memcpy(cs.sig, c->signature.data, 64);
	if (store_log_cosig_put(s->st, h.size, &cs) != 0) {
		store_failed(r);
		return;
	}
	log_msg(LOG_INFO, "msg=\"tree head cosigned\" witness=%s size=%llu",
		r->did, (unsigned long long)h.size);
	srv_pack_status(r, AMP__V1__STATUS__STATUS_OK, NULL, 0);
}

/* ------------------------------------------------- rotation, revocation */

/* The DID's key history folded (AMP-R-060): 1 and *st, *last (the index
 * of its latest leaf) when it has one; 0 when it has none; -1 on error
 * (answered). */
static int history_state(sreq *r, const uint8_t subject[32],
			 amp_log_identity *st, uint64_t *last, size_t *n_r)
{
	uint64_t *idx = malloc(HISTORY_MAX * sizeof(*idx));
	size_t n = 0;
	if (idx == NULL)
		abort();
	memset(st, 0, sizeof(*st));
	if (store_log_find(r->s->st, subject, UINT64_MAX, idx, HISTORY_MAX,
			   &n) != 0) {
		free(idx);
		store_failed(r);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t *leaf = NULL;
		size_t len = 0;
		amp_log_leaf l;
		const char *err = NULL;
		if (store_log_leaf(r->s->st, idx[i], &leaf, &len) != 1 ||
		    amp_log_leaf_decode(leaf, len, &l, &err) != AMP_OK ||
		    amp_log_identity_apply(st, &l, &err) != AMP_OK) {
			/* our own log contradicts itself: never build on it */
			log_msg(LOG_ERR, "msg=\"transparency log: a key history "
				"does not verify\" index=%llu",
				(unsigned long long)idx[i]);
			free(leaf);
			free(idx);
			srv_pack_status(r, AMP__V1__STATUS__STATUS_INTERNAL,
					"this identity's key history is broken",
					0);
			return -1;
		}
		free(leaf);
	}
	if (n > 0)
		*last = idx[n - 1];
	*n_r = n;
	free(idx);
	return n > 0;
}

/* Checks common to rotate and revoke: a local, registered, logged, not
 * revoked DID.  0 and the state, or -1 answered. */
static int change_precheck(sreq *r, const char *did, uint8_t subject[32],
			   amp_log_identity *st, uint64_t *last)
{
	server *s = r->s;
	amp_did d;
	if (amp_did_parse(did, strlen(did), &d, NULL) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				   AMP_E_BAD_DID);
		return -1;
	}
	if (!srv_is_local_domain(s, d.domain)) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
				"this node does not serve that domain", 0);
		return -1;
	}
	amp_log_did_hash(did, subject);
	size_t n = 0;
	int f = history_state(r, subject, st, last, &n);
	if (f < 0)
		return -1;
	if (f == 0) {
		int rev = store_identity_revoked(s->st, did);
		char *doc = NULL;
		size_t len;
		int reg = rev == 0 ? store_identity_get(s->st, did, &doc, &len) : 0;
		free(doc);
		srv_pack_status(r, reg == 1 ? AMP__V1__STATUS__STATUS_FORBIDDEN
					    : AMP__V1__STATUS__STATUS_NOT_FOUND,
				reg == 1 ? "registered before the transparency "
					   "log existed: its key cannot change"
					 : "unknown identity", 0);
		return -1;
	}
	if (st->revoked) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				"that identity was revoked", 0);
		return -1;
	}
	if (n >= HISTORY_MAX) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
				"too many key changes for one identity", 0);
		return -1;
	}
	return 0;
}

/* Store the change; answer with the leaf's index. */
static void change_commit(sreq *r, const char *did, const char *doc,
			  size_t doc_len, const amp_log_leaf *l, uint64_t last,
			  const char *what)
{
	uint8_t leaf[AMP_LOG_LEAF_MAX];
	size_t len;
	if (amp_log_leaf_encode(l, leaf, sizeof(leaf), &len) != AMP_OK) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_INTERNAL,
				"cannot encode the log leaf", 0);
		return;
	}
	store_id_res res;
	uint64_t index = 0;
	if (store_identity_change(r->s->st, did, doc, doc_len, leaf, len, last,
				  &res, &index) != 0) {
		store_failed(r);
		return;
	}
	switch (res) {
	case STORE_ID_OK:
		break;
	case STORE_ID_STALE:
		srv_pack_status(r, AMP__V1__STATUS__STATUS_CONFLICT,
				"stale key version", 0);
		return;
	case STORE_ID_REVOKED:
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				"that identity was revoked", 0);
		return;
	default:
		srv_pack_status(r, AMP__V1__STATUS__STATUS_NOT_FOUND,
				"unknown identity", 0);
		return;
	}
	log_msg(LOG_INFO, "msg=\"identity %s\" version=%u log_index=%llu", what,
		(unsigned)l->version, (unsigned long long)index);
	Amp__V1__LogIndexResult ir = AMP__V1__LOG_INDEX_RESULT__INIT;
	ir.index = index;
	Amp__V1__Response resp = AMP__V1__RESPONSE__INIT;
	resp.result_case = AMP__V1__RESPONSE__RESULT_LOG_INDEX;
	resp.log_index = &ir;
	srv_pack(r, &resp);
}

void op_rotate(sreq *r)
{
	Amp__V1__RotateRequest *q = r->f->rotate;
	amp_public_identity pub;
	const char *err = NULL;
	amp_err e;
	size_t dl = strlen(q->did_document);
	if ((e = amp_did_document_parse(q->did_document, dl, &pub, &err)) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST, e);
		return;
	}
	if (q->self_signature.len != 64 || q->prev_signature.len != 64 ||
	    q->version == 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"malformed rotate request", 0);
		return;
	}
	amp_log_identity st;
	uint8_t subject[32];
	uint64_t last = 0;
	if (change_precheck(r, pub.did, subject, &st, &last) != 0)
		return;
	if (q->version != st.version + 1) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_CONFLICT,
				"stale key version", 0);
		return;
	}
	/* AMP-R-005: a low-order X25519 key gives an all-zero result. */
	uint8_t dh[32];
	int low = crypto_scalarmult(dh, r->s->node->enc_sk, pub.enc_pk);
	sodium_memzero(dh, sizeof(dh));
	if (low != 0) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				   AMP_E_BAD_KEY);
		return;
	}
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_ROTATE;
	l.time = (uint64_t)time(NULL);
	memcpy(l.subject, subject, 32);
	l.version = q->version;
	memcpy(l.sign_pk, pub.sign_pk, 32);
	memcpy(l.enc_pk, pub.enc_pk, 32);
	memcpy(l.sig, q->self_signature.data, 64);
	memcpy(l.prev_sig, q->prev_signature.data, 64);
	amp_log_identity next = st;
	if (amp_log_identity_apply(&next, &l, &err) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				   AMP_E_BAD_SIGNATURE);
		return;
	}
	change_commit(r, pub.did, q->did_document, dl, &l, last, "key rotated");
}

void op_revoke(sreq *r)
{
	Amp__V1__RevokeRequest *q = r->f->revoke;
	if (q->signature.len != 64 || strlen(q->did) > AMP_DID_MAX) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"malformed revoke request", 0);
		return;
	}
	amp_log_identity st;
	uint8_t subject[32];
	uint64_t last = 0;
	if (change_precheck(r, q->did, subject, &st, &last) != 0)
		return;
	if (q->version != st.version) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_CONFLICT,
				"stale key version", 0);
		return;
	}
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_REVOKE;
	l.time = (uint64_t)time(NULL);
	memcpy(l.subject, subject, 32);
	l.version = q->version;
	memcpy(l.sig, q->signature.data, 64);
	amp_log_identity next = st;
	const char *err = NULL;
	if (amp_log_identity_apply(&next, &l, &err) != AMP_OK) {
		srv_pack_amp_error(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				   AMP_E_BAD_SIGNATURE);
		return;
	}
	change_commit(r, q->did, NULL, 0, &l, last, "revoked");
}

/* ------------------------------------------------------ lookup history */

struct srv_history {
	head_pb hp;
	proof_pb *pp;
	Amp__V1__LogProof **list;
	size_t n;
};

srv_history *srv_log_history(sreq *r, const char *did,
			     Amp__V1__LookupResult *lr)
{
	srv_history *h = calloc(1, sizeof(*h));
	uint64_t *idx = malloc(HISTORY_MAX * sizeof(*idx));
	if (h == NULL || idx == NULL)
		abort();
	uint8_t subject[32];
	amp_log_did_hash(did, subject);
	size_t n = 0;
	if (head_load(r, 0, &h->hp) != 0)
		goto fail;
	if (store_log_find(r->s->st, subject, h->hp.h.size, idx, HISTORY_MAX,
			   &n) != 0) {
		store_failed(r);
		goto fail;
	}
	if ((h->pp = calloc(n + 1, sizeof(*h->pp))) == NULL ||
	    (h->list = calloc(n + 1, sizeof(*h->list))) == NULL)
		abort();
	for (; h->n < n; h->n++) {
		if (proof_load(r, idx[h->n], h->hp.h.size, &h->pp[h->n]) != 0)
			goto fail;
		h->list[h->n] = &h->pp[h->n].m;
	}
	free(idx);
	lr->head = &h->hp.m;
	lr->history = h->list;
	lr->n_history = h->n;
	return h;
fail:
	free(idx);
	srv_log_history_free(h);
	return NULL;
}

void srv_log_history_free(srv_history *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; h->pp != NULL && i < h->n; i++)
		free(h->pp[i].leaf);
	free(h->pp);
	free(h->list);
	free(h);
}

/* Ask the node of domain the same request (f) and pass its answer
 * through unchanged: the client checks every part with that node's key. */
static void forward(sreq *r, const char *domain, Amp__V1__Frame *f, int want)
{
	nclient *c = NULL;
	const char *err = NULL;
	if (srv_peer_connect(r->s, domain, &c, &err) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER, err, 5000);
		return;
	}
	Amp__V1__Response *resp = NULL;
	if (nclient_call(c, f, &resp, &err) != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				"that node did not answer", 5000);
	} else if (resp->status == AMP__V1__STATUS__STATUS_OK &&
		   (int)resp->result_case != want) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_RETRY_LATER,
				"that node answered wrongly", 5000);
	} else {
		srv_pack(r, resp);
	}
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
	nclient_close(&c);
}

void srv_log_remote_history(sreq *r, const char *did, const char *domain)
{
	Amp__V1__LookupRequest l = AMP__V1__LOOKUP_REQUEST__INIT;
	l.did = (char *)did;
	l.history = true;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOOKUP;
	f.lookup = &l;
	forward(r, domain, &f, AMP__V1__RESPONSE__RESULT_LOOKUP);
}

/* log_proof of another node's log (§11.4): for our own users. */
static void log_proof_remote(sreq *r, const Amp__V1__LogProofRequest *q)
{
	amp_did d;
	if (r->auth != AUTH_USER) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_FORBIDDEN,
				"only this node's users may ask it about "
				"other logs", 0);
		return;
	}
	if (amp_did_parse(q->log, strlen(q->log), &d, NULL) != AMP_OK ||
	    strcmp(d.local, "node") != 0) {
		srv_pack_status(r, AMP__V1__STATUS__STATUS_BAD_REQUEST,
				"log is a node's DID", 0);
		return;
	}
	Amp__V1__LogProofRequest fq = *q;
	fq.log = (char *)"";
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_PROOF;
	f.log_proof = &fq;
	forward(r, d.domain, &f, AMP__V1__RESPONSE__RESULT_LOG_PROOF);
}
