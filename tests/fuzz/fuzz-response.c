/*
 * fuzz-response.c — libFuzzer target for the client's response decoding
 * (src/amp/client.c call_timeout and the operations on top of it): one
 * frame payload from a node, decoded as an amp.v1.Frame the way the
 * client does (protobuf-c's default allocator: no budget; here a counting
 * allocator that grants everything), refused unless its body is a
 * Response, the Response detached from the Frame and the Frame freed,
 * then walked as hello(), nclient_lookup, nclient_deliver and
 * nclient_fetch (with `amp fetch` decoding each item's envelope) walk it,
 * at the fixed session of fuzz-common.h.
 *
 * Input: arbitrary bytes (run.sh stops at 64 KiB).
 *
 * Properties (abort() on violation):
 *  - every block is freed, after the detach too (fuzz-pb.c);
 *  - the decode allocates at most FUZZ_RESPONSE_AMPLIFICATION times the
 *    input plus 64 KiB (the client has no budget: this bounds what a node
 *    can make it allocate per byte sent);
 *  - pack(f) decodes again and packs to the same bytes; the node's
 *    budget one byte short of what this decode used fails cleanly;
 *  - hello: a HelloResult that verifies stops verifying under another
 *    server_time or another x; its node DID fits AMP_DID_MAX;
 *  - fetch: every item is present; an envelope that decodes has
 *    1..AMP_RECIPIENTS_MAX recipients.
 */
#include "fuzz-common.h"

#include "amp/amp-log.h"
#include "fuzz-pb.h"
#include "nodeproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-response"

/* protobuf-c's worst case is an empty repeated submessage (2 input
 * bytes): its struct, the pointer slot and scan bookkeeping. */
#define FUZZ_RESPONSE_AMPLIFICATION 128u

static uint8_t x[NP_X_BYTES], challenge[NP_CHALLENGE_BYTES];

static size_t str_len(const char *s)
{
	if (s == NULL)
		fuzz_fail(T, "a string field is NULL");
	return strlen(s);
}

static void bytes_touch(const ProtobufCBinaryData *b)
{
	volatile uint8_t sink = 0;
	if (b->len > 0 && b->data == NULL)
		fuzz_fail(T, "a bytes field has a length and no data");
	if (b->len > 0)
		sink ^= b->data[0] ^ b->data[b->len - 1];
	(void)sink;
}

/* client.c hello() */
static void walk_hello(const Amp__V1__HelloResult *hr)
{
	fuzz_pb_check_unknown(T, &hr->base);
	bytes_touch(&hr->node_sign_pk);
	bytes_touch(&hr->node_enc_pk);
	bytes_touch(&hr->challenge);
	bytes_touch(&hr->signature);
	size_t dl = str_len(hr->node_did);
	amp_did did;
	if (hr->node_sign_pk.len != 32 || hr->node_enc_pk.len != 32 ||
	    hr->challenge.len != NP_CHALLENGE_BYTES || hr->signature.len != 64 ||
	    dl > AMP_DID_MAX ||
	    amp_did_parse(hr->node_did, dl, &did, NULL) != AMP_OK ||
	    strcmp(did.local, "node") != 0)
		return;
	amp_public_identity pub;
	memcpy(pub.did, hr->node_did, dl + 1);
	memcpy(pub.sign_pk, hr->node_sign_pk.data, 32);
	memcpy(pub.enc_pk, hr->node_enc_pk.data, 32);
	if (!np_hello_verify(&pub, x, hr->challenge.data, hr->server_time,
			     hr->signature.data))
		return;
	uint8_t other[NP_X_BYTES];
	memcpy(other, x, sizeof(other));
	other[31] ^= 0x80;
	if (np_hello_verify(&pub, x, hr->challenge.data, hr->server_time + 1,
			    hr->signature.data) ||
	    np_hello_verify(&pub, other, hr->challenge.data, hr->server_time,
			    hr->signature.data))
		fuzz_fail(T, "a hello signature ignores the time or x");
}

static void walk_envelope(const ProtobufCBinaryData *b)
{
	bytes_touch(b);
	amp_envelope *env = NULL;
	if (amp_envelope_decode(b->data, b->len, &env, NULL) != AMP_OK)
		return;
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	if (info.n_recipients == 0 || info.n_recipients > AMP_RECIPIENTS_MAX)
		fuzz_fail(T, "a decoded envelope has a bad recipient count");
	amp_envelope_free(&env);
}

/* The transparency log's results (PROTOCOL.md §11.4), read as
 * client-log.c reads them: heads, leaves decoded, proofs verified. */
static bool log_head(const Amp__V1__LogHead *h, uint8_t root[32])
{
	if (h == NULL)
		return false;
	fuzz_pb_check_unknown(T, &h->base);
	for (size_t i = 0; i < h->n_cosignatures; i++)
		fuzz_pb_check_unknown(T, &h->cosignatures[i]->base);
	if (h->root.len != 32)
		return false;
	memcpy(root, h->root.data, 32);
	return true;
}

static void log_proof(const Amp__V1__LogProof *p, uint64_t size,
		      const uint8_t root[32])
{
	uint8_t path[AMP_LOG_PROOF_MAX][32], lh[32];
	amp_log_leaf l;
	if (p == NULL)
		return;
	fuzz_pb_check_unknown(T, &p->base);
	if (p->n_path > AMP_LOG_PROOF_MAX || p->leaf.len > AMP_LOG_LEAF_MAX)
		return;
	for (size_t i = 0; i < p->n_path; i++) {
		if (p->path[i].len != 32)
			return;
		memcpy(path[i], p->path[i].data, 32);
	}
	(void)amp_log_leaf_decode(p->leaf.data, p->leaf.len, &l, NULL);
	amp_log_leaf_hash(p->leaf.data, p->leaf.len, lh);
	if (root != NULL)
		(void)amp_log_verify_inclusion(p->index, size, lh,
					       (const uint8_t (*)[32])path,
					       p->n_path, root);
}

static void walk_log_result(const Amp__V1__Response *r)
{
	uint8_t root[32], root2[32];
	switch (r->result_case) {
	case AMP__V1__RESPONSE__RESULT_LOG_HEAD:
		(void)log_head(r->log_head, root);
		break;
	case AMP__V1__RESPONSE__RESULT_LOG_PROOF: {
		const Amp__V1__LogProofResult *pr = r->log_proof;
		fuzz_pb_check_unknown(T, &pr->base);
		bool ok = log_head(pr->head, root);
		log_proof(pr->proof, ok ? pr->head->size : 0, ok ? root : NULL);
		break;
	}
	case AMP__V1__RESPONSE__RESULT_LOG_CONSISTENCY: {
		const Amp__V1__LogConsistencyResult *cr = r->log_consistency;
		uint8_t path[AMP_LOG_PROOF_MAX][32];
		fuzz_pb_check_unknown(T, &cr->base);
		bool ok1 = log_head(cr->first, root);
		bool ok2 = log_head(cr->second, root2);
		if (!ok1 || !ok2 || cr->n_path > AMP_LOG_PROOF_MAX)
			break;
		for (size_t i = 0; i < cr->n_path; i++) {
			if (cr->path[i].len != 32)
				return;
			memcpy(path[i], cr->path[i].data, 32);
		}
		(void)amp_log_verify_consistency(cr->first->size, cr->second->size,
						 root, root2,
						 (const uint8_t (*)[32])path,
						 cr->n_path);
		break;
	}
	case AMP__V1__RESPONSE__RESULT_LOG_ENTRIES: {
		const Amp__V1__LogEntriesResult *er = r->log_entries;
		amp_log_leaf l;
		fuzz_pb_check_unknown(T, &er->base);
		for (size_t i = 0; i < er->n_leaves; i++)
			(void)amp_log_leaf_decode(er->leaves[i].data,
						  er->leaves[i].len, &l, NULL);
		break;
	}
	case AMP__V1__RESPONSE__RESULT_LOG_INDEX:
		fuzz_pb_check_unknown(T, &r->log_index->base);
		break;
	default:
		fuzz_fail(T, "an unknown result case");
	}
}

static void walk_response(const Amp__V1__Response *r)
{
	fuzz_pb_check_unknown(T, &r->base);
	/* op(): "STATUS: reason" with the reason cut at 200 bytes */
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "%d%s%.200s", (int)r->status,
			 str_len(r->error) > 0 ? ": " : "", r->error);
	if (n < 0)
		fuzz_fail(T, "snprintf failed");
	switch (r->result_case) {
	case AMP__V1__RESPONSE__RESULT__NOT_SET:
		break;
	case AMP__V1__RESPONSE__RESULT_HELLO:
		walk_hello(r->hello);
		break;
	case AMP__V1__RESPONSE__RESULT_LOOKUP: {
		fuzz_pb_check_unknown(T, &r->lookup->base);
		amp_public_identity pub;
		const char *doc = r->lookup->did_document;
		(void)amp_did_document_parse(doc, str_len(doc), &pub, NULL);
		uint8_t root[32];
		bool ok = log_head(r->lookup->head, root);
		for (size_t i = 0; i < r->lookup->n_history; i++)
			log_proof(r->lookup->history[i],
				  ok ? r->lookup->head->size : 0, ok ? root : NULL);
		break;
	}
	case AMP__V1__RESPONSE__RESULT_DELIVER: {
		const Amp__V1__DeliverResult *d = r->deliver;
		fuzz_pb_check_unknown(T, &d->base);
		if (d->n_recipients > 0 && d->recipients == NULL)
			fuzz_fail(T, "recipient results counted but absent");
		for (size_t i = 0; i < d->n_recipients; i++) {
			const Amp__V1__RecipientResult *rr = d->recipients[i];
			fuzz_pb_check_unknown(T, &rr->base);
			n = snprintf(msg, sizeof(msg), "%.200s %d %.200s", rr->did,
				     (int)rr->status, rr->error);
			(void)str_len(rr->did);
			(void)str_len(rr->error);
		}
		break;
	}
	case AMP__V1__RESPONSE__RESULT_FETCH: {
		const Amp__V1__FetchResult *fr = r->fetch;
		fuzz_pb_check_unknown(T, &fr->base);
		if (fr->n_items > 0 && fr->items == NULL)
			fuzz_fail(T, "fetch items counted but absent");
		for (size_t i = 0; i < fr->n_items; i++) {
			fuzz_pb_check_unknown(T, &fr->items[i]->base);
			walk_envelope(&fr->items[i]->envelope);
		}
		break;
	}
	default:
		walk_log_result(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	fuzz_session(x, challenge);
	fuzz_pb_budget b;
	fuzz_pb_budget_init(&b, false, 0);
	Amp__V1__Frame *f = fuzz_pb_unpack(T, &b, data, size);
	if (f == NULL)
		return 0;
	size_t granted = b.granted;
	if (granted > (size_t)FUZZ_RESPONSE_AMPLIFICATION * size + 65536u) {
		fprintf(stderr, "%s: %zu input bytes, %zu allocated\n", T, size,
			granted);
		fuzz_fail(T, "the decode allocates too much per input byte");
	}
	fuzz_pb_check_unknown(T, &f->base);
	fuzz_pb_round_trip(T, f, data, size, granted, false);
	if (f->body_case != AMP__V1__FRAME__BODY_RESPONSE) {
		/* "the node sent a malformed response" */
		fuzz_pb_free(T, &b, f);
		return 0;
	}
	/* call_timeout: keep the Response, free the Frame around it */
	Amp__V1__Response *r = f->response;
	f->response = NULL;
	f->body_case = AMP__V1__FRAME__BODY__NOT_SET;
	amp__v1__frame__free_unpacked(f, &b.a);
	if (r == NULL)
		fuzz_fail(T, "a Response body without a Response");
	walk_response(r);
	amp__v1__response__free_unpacked(r, &b.a);
	fuzz_pb_budget_check_empty(T, &b);
	return 0;
}
