/*
 * fuzz-request.c — libFuzzer target for the node's request decoding
 * (PROTOCOL.md §8-§10): one transport frame payload, decoded as an
 * amp.v1.Frame as server_conn_request (src/daemon/server.c) does with
 * np_frame_unpack,
 * under the same budgeted allocator (fuzz-pb.c: input length + 1 MiB,
 * never refilled), then walked the way the handlers walk it (op_auth,
 * op_register, op_lookup, op_deliver, op_fetch, op_ack) with the fixed
 * session of fuzz-common.h: x, challenge, the node of example.org, its
 * invite key and the clock FUZZ_NOW.
 *
 * Input: arbitrary bytes (a frame payload; the node caps frames before
 * authentication at 64 KiB, so does run.sh).
 *
 * Properties (abort() on violation):
 *  - the budget adds up, nothing is allocated beyond it, and every block
 *    is freed, also when the decode fails (fuzz-pb.c);
 *  - a set body case carries its message;
 *  - pack(f) decodes again and packs to the same bytes; the input under
 *    a smaller budget than it was granted fails cleanly (fuzz-pb.c);
 *  - auth: a DID that amp_did_parse accepts fits AMP_DID_MAX (the node
 *    copies it into a fixed buffer); a signature that verifies stops
 *    verifying under another challenge;
 *  - register: a DID document that parses has an id that amp_did_parse
 *    accepts; an accepted invite has not expired; a register signature
 *    that verifies stops verifying when the invite text changes;
 *  - deliver: what amp_envelope_decode accepts has 1..AMP_RECIPIENTS_MAX
 *    recipients, each a string of at most AMP_DID_MAX bytes.
 */
#include "fuzz-common.h"
#include "fuzz-pb.h"
#include "nodeproto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-request"

static const amp_identity *node;
static uint8_t x[NP_X_BYTES], challenge[NP_CHALLENGE_BYTES], invite_key[32];

static void setup(void)
{
	if (node != NULL)
		return;
	node = fuzz_identity(FUZZ_NODE);
	fuzz_session(x, challenge);
	fuzz_invite_key(invite_key);
}

/* Read every byte of a string as strlen does, and return its length. */
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

/* The identity the node would check a DID against: a user of this node
 * from the directory (alice or bob), else a pinned peer node key with
 * the DID copied in (op_auth). */
static amp_public_identity key_of(const char *did, const amp_did *d)
{
	amp_public_identity pub;
	if (strcmp(did, FUZZ_DID_BOB) == 0)
		pub = fuzz_identity(FUZZ_BOB)->pub;
	else if (strcmp(d->local, "node") == 0)
		pub = node->pub;
	else
		pub = fuzz_identity(FUZZ_ALICE)->pub;
	memcpy(pub.did, did, strlen(did) + 1);
	return pub;
}

static void walk_auth(const Amp__V1__AuthRequest *a)
{
	fuzz_pb_check_unknown(T, &a->base);
	bytes_touch(&a->signature);
	size_t dl = str_len(a->did);
	amp_did d;
	const char *err = NULL;
	if (amp_did_parse(a->did, dl, &d, &err) != AMP_OK)
		return;
	if (dl > AMP_DID_MAX)
		fuzz_fail(T, "amp_did_parse accepted a DID over AMP_DID_MAX");
	if (a->signature.len != AMP_SIG_BYTES)
		return;
	amp_public_identity pub = key_of(a->did, &d);
	if (!np_auth_verify(&pub, x, challenge, node->pub.did, a->signature.data))
		return;
	uint8_t other[NP_CHALLENGE_BYTES];
	memcpy(other, challenge, sizeof(other));
	other[0] ^= 1;
	if (np_auth_verify(&pub, x, other, node->pub.did, a->signature.data))
		fuzz_fail(T, "an auth signature verifies under another challenge");
}

static void walk_register(const Amp__V1__RegisterRequest *q)
{
	fuzz_pb_check_unknown(T, &q->base);
	bytes_touch(&q->enc_proof);
	bytes_touch(&q->signature);
	size_t dl = str_len(q->did_document), sl = str_len(q->pow_stamp);
	size_t il = str_len(q->invite);
	amp_public_identity pub;
	const char *err = NULL;
	bool have_pub = false;
	if (amp_did_document_parse(q->did_document, dl, &pub, &err) == AMP_OK) {
		amp_did d;
		if (amp_did_parse(pub.did, str_len(pub.did), &d, &err) != AMP_OK)
			fuzz_fail(T, "a DID document's id is not a DID");
		have_pub = true;
	}
	if (sl > 0) {
		amp_pow_stamp st;
		if (amp_pow_parse(q->pow_stamp, sl, &st, &err) == AMP_OK && have_pub)
			(void)amp_pow_check(&pub, &st, 8, FUZZ_NOW, &err);
	}
	if (il > 0) {
		uint64_t expires = 0;
		if (np_invite_check(invite_key, q->invite, FUZZ_NOW, &expires,
				    &err) == 0 &&
		    expires <= FUZZ_NOW)
			fuzz_fail(T, "an expired invite was accepted");
	}
	if (!have_pub || q->enc_proof.len != NP_ENC_PROOF_BYTES ||
	    q->signature.len != AMP_SIG_BYTES)
		return;
	if (np_register_verify(&pub, x, challenge, q->did_document, q->pow_stamp,
			       q->invite, q->enc_proof.data, q->signature.data)) {
		/* The invite is signed: another one must not verify. */
		const char *other = il > 0 ? "" : "amp-invite-v1:1:x:y";
		if (np_register_verify(&pub, x, challenge, q->did_document,
				       q->pow_stamp, other, q->enc_proof.data,
				       q->signature.data))
			fuzz_fail(T, "a register signature ignores the invite");
	}
	uint8_t dh[32], want[NP_ENC_PROOF_BYTES];
	if (crypto_scalarmult(dh, node->enc_sk, pub.enc_pk) != 0)
		return;
	np_enc_proof(dh, challenge, pub.did, want);
	(void)sodium_memcmp(want, q->enc_proof.data, NP_ENC_PROOF_BYTES);
}

static void walk_lookup(const Amp__V1__LookupRequest *l)
{
	fuzz_pb_check_unknown(T, &l->base);
	size_t dl = str_len(l->did);
	amp_did d;
	if (dl <= AMP_DID_MAX)
		(void)amp_did_parse(l->did, dl, &d, NULL);
}

static void walk_deliver(const Amp__V1__DeliverRequest *q)
{
	fuzz_pb_check_unknown(T, &q->base);
	bytes_touch(&q->envelope);
	amp_envelope *env = NULL;
	const char *err = NULL;
	if (amp_envelope_decode(q->envelope.data, q->envelope.len, &env, &err) !=
	    AMP_OK)
		return;
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	if (info.n_recipients == 0 || info.n_recipients > AMP_RECIPIENTS_MAX)
		fuzz_fail(T, "a decoded envelope has a bad recipient count");
	for (size_t i = 0; i < info.n_recipients; i++) {
		const char *rcpt = amp_envelope_recipient(env, i);
		amp_did rd;
		if (rcpt == NULL || strlen(rcpt) > AMP_DID_MAX)
			fuzz_fail(T, "a recipient is missing or over AMP_DID_MAX");
		(void)amp_did_parse(rcpt, strlen(rcpt), &rd, NULL);
	}
	if (strcmp(info.sender, FUZZ_DID_ALICE) == 0)
		(void)amp_envelope_verify(env, &fuzz_identity(FUZZ_ALICE)->pub, 0,
					  &err);
	amp_envelope_free(&env);
}

static void walk_ack(const Amp__V1__AckRequest *q)
{
	fuzz_pb_check_unknown(T, &q->base);
	if (q->n_seq > 0 && q->seq == NULL)
		fuzz_fail(T, "ack seqs counted but absent");
	volatile uint64_t sum = 0;
	for (size_t i = 0; i < q->n_seq; i++)
		sum += q->seq[i];
	(void)sum;
}

/* The transparency log's requests (PROTOCOL.md §11.4), read as
 * server-log.c reads them. */
static void walk_log_head(const Amp__V1__LogHead *h)
{
	if (h == NULL)
		return;
	fuzz_pb_check_unknown(T, &h->base);
	amp_did d;
	(void)amp_did_parse(h->log, str_len(h->log), &d, NULL);
	if (h->n_cosignatures > 0 && h->cosignatures == NULL)
		fuzz_fail(T, "cosignatures counted but absent");
	for (size_t i = 0; i < h->n_cosignatures; i++) {
		fuzz_pb_check_unknown(T, &h->cosignatures[i]->base);
		(void)amp_did_parse(h->cosignatures[i]->witness,
				    str_len(h->cosignatures[i]->witness), &d, NULL);
	}
}

static void walk_log(const Amp__V1__Frame *f)
{
	amp_did d;
	amp_public_identity pub;
	switch (f->body_case) {
	case AMP__V1__FRAME__BODY_LOG_HEAD:
		fuzz_pb_check_unknown(T, &f->log_head->base);
		break;
	case AMP__V1__FRAME__BODY_LOG_PROOF:
		fuzz_pb_check_unknown(T, &f->log_proof->base);
		(void)amp_did_parse(f->log_proof->log, str_len(f->log_proof->log),
				    &d, NULL);
		break;
	case AMP__V1__FRAME__BODY_LOG_CONSISTENCY:
		fuzz_pb_check_unknown(T, &f->log_consistency->base);
		break;
	case AMP__V1__FRAME__BODY_LOG_ENTRIES:
		fuzz_pb_check_unknown(T, &f->log_entries->base);
		break;
	case AMP__V1__FRAME__BODY_LOG_COSIGN:
		fuzz_pb_check_unknown(T, &f->log_cosign->base);
		walk_log_head(f->log_cosign->head);
		break;
	case AMP__V1__FRAME__BODY_ROTATE: {
		const char *doc = f->rotate->did_document;
		fuzz_pb_check_unknown(T, &f->rotate->base);
		(void)amp_did_document_parse(doc, str_len(doc), &pub, NULL);
		break;
	}
	case AMP__V1__FRAME__BODY_REVOKE:
		fuzz_pb_check_unknown(T, &f->revoke->base);
		(void)amp_did_parse(f->revoke->did, str_len(f->revoke->did), &d,
				    NULL);
		break;
	default:
		fuzz_fail(T, "an unknown body case");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	fuzz_pb_budget b;
	fuzz_pb_budget_init(&b, true, size + FUZZ_PB_SLACK);
	Amp__V1__Frame *f = fuzz_pb_unpack(T, &b, data, size);
	/* The node's own decoder (np_frame_unpack) accepts exactly what the
	 * counting copy here accepts. */
	Amp__V1__Frame *real = np_frame_unpack(data, size);
	if ((real == NULL) != (f == NULL))
		fuzz_fail(T, "np_frame_unpack and the counted budget disagree");
	if (real != NULL)
		amp__v1__frame__free_unpacked(real, NULL);
	if (f == NULL)
		return 0;
	size_t granted = b.granted;
	fuzz_pb_check_unknown(T, &f->base);
	switch (f->body_case) {
	case AMP__V1__FRAME__BODY__NOT_SET:
		break;
	case AMP__V1__FRAME__BODY_HELLO:
		fuzz_pb_check_unknown(T, &f->hello->base);
		break;
	case AMP__V1__FRAME__BODY_AUTH:
		walk_auth(f->auth);
		break;
	case AMP__V1__FRAME__BODY_REGISTER:
		walk_register(f->register_);
		break;
	case AMP__V1__FRAME__BODY_LOOKUP:
		walk_lookup(f->lookup);
		break;
	case AMP__V1__FRAME__BODY_DELIVER:
		walk_deliver(f->deliver);
		break;
	case AMP__V1__FRAME__BODY_FETCH: {
		fuzz_pb_check_unknown(T, &f->fetch->base);
		volatile uint64_t sink = f->fetch->cursor + f->fetch->limit +
					 f->fetch->wait_ms;
		(void)sink;
		break;
	}
	case AMP__V1__FRAME__BODY_ACK:
		walk_ack(f->ack);
		break;
	case AMP__V1__FRAME__BODY_RESPONSE:
		/* not a request: the node refuses it unread */
		fuzz_pb_check_unknown(T, &f->response->base);
		break;
	default:
		walk_log(f);
	}
	fuzz_pb_round_trip(T, f, data, size, granted, true);
	fuzz_pb_free(T, &b, f);
	return 0;
}
