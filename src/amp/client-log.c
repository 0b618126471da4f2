/*
 * client-log.c — the transparency log's client operations; see
 * client-log.h.
 */
#include "client-log.h"

#include <stdlib.h>
#include <string.h>

int nlog_head_from_pb(const Amp__V1__LogHead *m, amp_log_head *h)
{
	if (m == NULL || m->root.len != 32 || m->signature.len != 64 ||
	    strlen(m->log) > AMP_DID_MAX)
		return -1;
	memset(h, 0, sizeof(*h));
	memcpy(h->log, m->log, strlen(m->log) + 1);
	h->size = m->size;
	memcpy(h->root, m->root.data, 32);
	h->time = m->time;
	memcpy(h->sig, m->signature.data, 64);
	return 0;
}

void nlog_head_to_pb(const amp_log_head *h, Amp__V1__LogHead *m)
{
	amp__v1__log_head__init(m);
	m->log = (char *)h->log;
	m->size = h->size;
	m->root.data = (uint8_t *)h->root;
	m->root.len = 32;
	m->time = h->time;
	m->signature.data = (uint8_t *)h->sig;
	m->signature.len = 64;
}

/* A head of the log of `node` (NULL: the node we are connected to),
 * signed by it. */
static int head_check_of(nclient *c, const amp_public_identity *node,
			 const Amp__V1__LogHead *m, amp_log_head *h,
			 const char **error_r)
{
	if (node == NULL)
		node = nclient_node(c);
	if (nlog_head_from_pb(m, h) != 0) {
		*error_r = "the node's tree head is malformed";
		return -1;
	}
	if (strcmp(h->log, node->did) != 0) {
		*error_r = "the tree head is of another node's log";
		return -1;
	}
	if (!amp_log_head_verify(h, node->sign_pk)) {
		*error_r = "the tree head's signature does not verify";
		return -1;
	}
	return 0;
}

static int head_check(nclient *c, const Amp__V1__LogHead *m, amp_log_head *h,
		      const char **error_r)
{
	return head_check_of(c, NULL, m, h, error_r);
}

static int call(nclient *c, Amp__V1__Frame *f, int want,
		Amp__V1__Response **resp_r, int *status_r, const char **error_r)
{
	Amp__V1__Response *resp = NULL;
	if (nclient_op(c, f, nclient_timeout(c), &resp, status_r, error_r) != 0)
		return -1;
	if ((int)resp->result_case != want) {
		amp__v1__response__free_unpacked(resp, NULL);
		*error_r = "the node's answer is malformed";
		return -1;
	}
	*resp_r = resp;
	return 0;
}

int nlog_head(nclient *c, amp_log_head *h_r, Amp__V1__Response **resp_r,
	      int *status_r, const char **error_r)
{
	Amp__V1__LogHeadRequest q = AMP__V1__LOG_HEAD_REQUEST__INIT;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_HEAD;
	f.log_head = &q;
	Amp__V1__Response *resp;
	if (call(c, &f, AMP__V1__RESPONSE__RESULT_LOG_HEAD, &resp, status_r,
		 error_r) != 0)
		return -1;
	int r = head_check(c, resp->log_head, h_r, error_r);
	if (r == 0 && resp_r != NULL)
		*resp_r = resp;
	else
		amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nlog_proof_check(const Amp__V1__LogProof *m, const amp_log_head *h,
		     nlog_proved *p, const char **error_r)
{
	memset(p, 0, sizeof(*p));
	p->head = *h;
	if (m == NULL || m->leaf.len == 0 || m->leaf.len > AMP_LOG_LEAF_MAX ||
	    m->n_path > AMP_LOG_PROOF_MAX) {
		*error_r = "the node's proof is malformed";
		return -1;
	}
	for (size_t i = 0; i < m->n_path; i++) {
		if (m->path[i].len != 32) {
			*error_r = "the node's proof is malformed";
			return -1;
		}
		memcpy(p->path[i], m->path[i].data, 32);
	}
	p->n_path = m->n_path;
	p->index = m->index;
	memcpy(p->leaf, m->leaf.data, m->leaf.len);
	p->leaf_len = m->leaf.len;
	const char *why = NULL;
	if (amp_log_leaf_decode(p->leaf, p->leaf_len, &p->l, &why) != AMP_OK) {
		*error_r = "the log leaf does not decode";
		return -1;
	}
	uint8_t lh[32];
	amp_log_leaf_hash(p->leaf, p->leaf_len, lh);
	if (p->index >= h->size ||
	    amp_log_verify_inclusion(p->index, h->size, lh,
				     (const uint8_t (*)[32])p->path, p->n_path,
				     h->root) != AMP_OK) {
		*error_r = "the inclusion proof does not verify";
		return -1;
	}
	return 0;
}

int nlog_proof(nclient *c, const amp_public_identity *log_node,
	       uint64_t index, const uint8_t *subject, uint64_t tree_size,
	       nlog_proved *p_r, int *status_r, const char **error_r)
{
	Amp__V1__LogProofRequest q = AMP__V1__LOG_PROOF_REQUEST__INIT;
	q.index = index;
	q.tree_size = tree_size;
	if (log_node != NULL)
		q.log = (char *)log_node->did;
	if (subject != NULL) {
		q.subject.data = (uint8_t *)subject;
		q.subject.len = 32;
	}
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_PROOF;
	f.log_proof = &q;
	Amp__V1__Response *resp;
	if (call(c, &f, AMP__V1__RESPONSE__RESULT_LOG_PROOF, &resp, status_r,
		 error_r) != 0)
		return -1;
	amp_log_head h;
	int r = -1;
	if (head_check_of(c, log_node, resp->log_proof->head, &h, error_r) == 0 &&
	    (tree_size == 0 || h.size == tree_size) &&
	    nlog_proof_check(resp->log_proof->proof, &h, p_r, error_r) == 0) {
		r = 0;
		if (subject != NULL && memcmp(p_r->l.subject, subject, 32) != 0) {
			*error_r = "the node proved a leaf of another subject";
			r = -1;
		} else if (subject == NULL && p_r->index != index) {
			*error_r = "the node proved another leaf";
			r = -1;
		}
	} else if (tree_size != 0 && h.size != tree_size) {
		*error_r = "the node proved against another tree size";
	}
	amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nlog_consistency(nclient *c, uint64_t first, uint64_t second,
		     amp_log_head *h1, amp_log_head *h2, uint8_t path[][32],
		     size_t *n_r, int *status_r, const char **error_r)
{
	Amp__V1__LogConsistencyRequest q = AMP__V1__LOG_CONSISTENCY_REQUEST__INIT;
	q.first = first;
	q.second = second;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_CONSISTENCY;
	f.log_consistency = &q;
	Amp__V1__Response *resp;
	if (call(c, &f, AMP__V1__RESPONSE__RESULT_LOG_CONSISTENCY, &resp,
		 status_r, error_r) != 0)
		return -1;
	Amp__V1__LogConsistencyResult *cr = resp->log_consistency;
	int r = -1;
	if (head_check(c, cr->first, h1, error_r) != 0 ||
	    head_check(c, cr->second, h2, error_r) != 0)
		goto out;
	if (h1->size != first || (second != 0 && h2->size != second) ||
	    h2->size < h1->size) {
		*error_r = "the node proved other sizes than asked";
		goto out;
	}
	if (cr->n_path > AMP_LOG_PROOF_MAX) {
		*error_r = "the node's consistency proof is malformed";
		goto out;
	}
	for (size_t i = 0; i < cr->n_path; i++) {
		if (cr->path[i].len != 32) {
			*error_r = "the node's consistency proof is malformed";
			goto out;
		}
		memcpy(path[i], cr->path[i].data, 32);
	}
	*n_r = cr->n_path;
	if (amp_log_verify_consistency(h1->size, h2->size, h1->root, h2->root,
				       (const uint8_t (*)[32])path,
				       cr->n_path) != AMP_OK) {
		*error_r = "the node's two signed heads are not consistent (not of one history)";
		r = NLOG_INCONSISTENT;
		goto out;
	}
	r = 0;
out:
	amp__v1__response__free_unpacked(resp, NULL);
	return r;
}

int nlog_consistent(nclient *c, const amp_log_head *had, uint64_t second,
		    amp_log_head *new_r, int *status_r, const char **error_r)
{
	if (second != 0 && second < had->size) {
		*error_r = "asked for a smaller tree";
		return -1;
	}
	/* Every tree is consistent with the empty one: then only the head
	 * of size `second` is wanted (the proof from it to itself is empty). */
	if (had->size == 0 && second == 0)
		return nlog_head(c, new_r, NULL, status_r, error_r);
	amp_log_head first;
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t n = 0;
	int r = nlog_consistency(c, had->size == 0 ? second : had->size, second,
				 &first, new_r, path, &n, status_r, error_r);
	if (r == NLOG_INCONSISTENT)
		return r;
	if (r != 0 || had->size == 0)
		return r;
	/* The node's own head of our size must be the one we saw: two
	 * signed heads of one size that differ prove a split view. */
	if (memcmp(first.root, had->root, 32) != 0) {
		*new_r = first;
		*error_r = "the node signed two different heads of one size";
		return NLOG_INCONSISTENT;
	}
	return 0;
}

int nlog_entries(nclient *c, uint64_t start, uint32_t count,
		 Amp__V1__Response **resp_r, int *status_r,
		 const char **error_r)
{
	Amp__V1__LogEntriesRequest q = AMP__V1__LOG_ENTRIES_REQUEST__INIT;
	q.start = start;
	q.count = count;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_ENTRIES;
	f.log_entries = &q;
	return call(c, &f, AMP__V1__RESPONSE__RESULT_LOG_ENTRIES, resp_r,
		    status_r, error_r);
}

int nlog_cosign(nclient *c, const amp_log_head *h, const char *witness,
		uint64_t cotime, const uint8_t sig[64], int *status_r,
		const char **error_r)
{
	Amp__V1__LogHead m;
	nlog_head_to_pb(h, &m);
	Amp__V1__Cosignature cs = AMP__V1__COSIGNATURE__INIT;
	Amp__V1__Cosignature *csp = &cs;
	cs.witness = (char *)witness;
	cs.time = cotime;
	cs.signature.data = (uint8_t *)sig;
	cs.signature.len = 64;
	m.cosignatures = &csp;
	m.n_cosignatures = 1;
	Amp__V1__LogCosignRequest q = AMP__V1__LOG_COSIGN_REQUEST__INIT;
	q.head = &m;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOG_COSIGN;
	f.log_cosign = &q;
	return nclient_op(c, &f, nclient_timeout(c), NULL, status_r, error_r);
}

static int index_call(nclient *c, Amp__V1__Frame *f, uint64_t *index_r,
		      int *status_r, const char **error_r)
{
	Amp__V1__Response *resp;
	if (call(c, f, AMP__V1__RESPONSE__RESULT_LOG_INDEX, &resp, status_r,
		 error_r) != 0)
		return -1;
	if (index_r != NULL)
		*index_r = resp->log_index->index;
	amp__v1__response__free_unpacked(resp, NULL);
	return 0;
}

int nlog_rotate(nclient *c, const amp_identity *old, const amp_identity *nu,
		uint32_t version, uint64_t *index_r, int *status_r,
		const char **error_r)
{
	if (strcmp(old->pub.did, nu->pub.did) != 0 || version == 0) {
		*error_r = "a rotation keeps the DID and raises the version";
		return -1;
	}
	char *doc;
	if (amp_did_document_export(&nu->pub, &doc, error_r) != AMP_OK)
		return -1;
	uint8_t subject[32], self_sig[64], prev_sig[64];
	amp_log_did_hash(nu->pub.did, subject);
	amp_log_sign_key(nu->sign_sk, subject, version, nu->pub.sign_pk,
			 nu->pub.enc_pk, self_sig);
	amp_log_sign_key(old->sign_sk, subject, version, nu->pub.sign_pk,
			 nu->pub.enc_pk, prev_sig);
	Amp__V1__RotateRequest q = AMP__V1__ROTATE_REQUEST__INIT;
	q.did_document = doc;
	q.version = version;
	q.self_signature.data = self_sig;
	q.self_signature.len = 64;
	q.prev_signature.data = prev_sig;
	q.prev_signature.len = 64;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_ROTATE;
	f.rotate = &q;
	int r = index_call(c, &f, index_r, status_r, error_r);
	amp_free(doc);
	return r;
}

int nlog_revoke(nclient *c, const amp_identity *id, uint32_t version,
		uint64_t *index_r, int *status_r, const char **error_r)
{
	uint8_t subject[32], sig[64];
	amp_log_did_hash(id->pub.did, subject);
	amp_log_sign_revoke(id->sign_sk, subject, version, sig);
	Amp__V1__RevokeRequest q = AMP__V1__REVOKE_REQUEST__INIT;
	q.did = (char *)id->pub.did;
	q.version = version;
	q.signature.data = sig;
	q.signature.len = 64;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_REVOKE;
	f.revoke = &q;
	return index_call(c, &f, index_r, status_r, error_r);
}

int nlog_lookup_history(nclient *c, const char *did,
			const amp_public_identity *log_node, char **doc_r,
			amp_log_identity *st_r, nlog_proved **proofs_r,
			size_t *n_r, int *status_r, const char **error_r)
{
	Amp__V1__LookupRequest l = AMP__V1__LOOKUP_REQUEST__INIT;
	l.did = (char *)did;
	l.history = true;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOOKUP;
	f.lookup = &l;
	Amp__V1__Response *resp;
	if (call(c, &f, AMP__V1__RESPONSE__RESULT_LOOKUP, &resp, status_r,
		 error_r) != 0)
		return -1;
	Amp__V1__LookupResult *lr = resp->lookup;
	amp_log_head h;
	nlog_proved *pp = NULL;
	amp_public_identity pub;
	uint8_t subject[32];
	int r = -1;
	memset(st_r, 0, sizeof(*st_r));
	*doc_r = NULL;
	amp_log_did_hash(did, subject);
	if (lr->head == NULL) {
		*error_r = "the node gave no key history (its log does not "
			   "cover this identity)";
		goto out;
	}
	if (head_check_of(c, log_node, lr->head, &h, error_r) != 0)
		goto out;
	if ((pp = calloc(lr->n_history + 1, sizeof(*pp))) == NULL) {
		*error_r = "out of memory";
		goto out;
	}
	for (size_t i = 0; i < lr->n_history; i++) {
		const char *why = NULL;
		if (nlog_proof_check(lr->history[i], &h, &pp[i], error_r) != 0)
			goto out;
		if (memcmp(pp[i].l.subject, subject, 32) != 0 ||
		    (i > 0 && pp[i].index <= pp[i - 1].index)) {
			*error_r = "the key history holds a leaf of another "
				   "identity, or is out of order";
			goto out;
		}
		if (amp_log_identity_apply(st_r, &pp[i].l, &why) != AMP_OK) {
			*error_r = why != NULL ? why
					       : "the key history does not verify";
			goto out;
		}
	}
	if (!st_r->exists) {
		*error_r = "the identity is not in the node's transparency log";
		goto out;
	}
	const char *why = NULL;
	if (amp_did_document_parse(lr->did_document, strlen(lr->did_document),
				   &pub, &why) != AMP_OK ||
	    strcmp(pub.did, did) != 0 ||
	    memcmp(pub.sign_pk, st_r->sign_pk, 32) != 0 ||
	    memcmp(pub.enc_pk, st_r->enc_pk, 32) != 0) {
		*error_r = "the node's document does not carry the keys its "
			   "log shows";
		goto out;
	}
	if ((*doc_r = strdup(lr->did_document)) == NULL) {
		*error_r = "out of memory";
		goto out;
	}
	r = 0;
	if (n_r != NULL)
		*n_r = lr->n_history;
	if (proofs_r != NULL) {
		*proofs_r = pp;
		pp = NULL;
	}
out:
	free(pp);
	amp__v1__response__free_unpacked(resp, NULL);
	return r;
}
