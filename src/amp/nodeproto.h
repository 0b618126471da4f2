/*
 * nodeproto.h — the byte strings of the node protocol (PROTOCOL.md §9–10)
 * that are signed or keyed, and the invite token format.  Pure functions:
 * no I/O, no state; the client (src/amp/client.c, `amp`) and the node
 * (src/daemon) build the same bytes from the same code.  (No independent
 * implementation checks these inputs yet: the e2e tests exercise them only
 * through `amp` against the node.)
 */
#ifndef AMP_NODEPROTO_H
#define AMP_NODEPROTO_H

#include "amp/amp.h"
#include "amp.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NP_X_BYTES 32u            /* TLS exporter, §9.1 */
#define NP_CHALLENGE_BYTES 32u
#define NP_ENC_PROOF_BYTES 32u
#define NP_PREAUTH_FRAME_MAX (64u * 1024u)   /* §8.2 */
#define NP_INVITE_MAX 128u                   /* text form, with NUL */
#define NP_INVITE_PREFIX "amp-invite-v1:"

/* Decode one Frame (a request on the node, a response on the client)
 * within a memory budget of its length plus NP_DECODE_SLACK: protobuf-c
 * allocates per repeated item, so a small frame of empty items could
 * otherwise expand many times over.  The blocks come from malloc: free
 * with amp__v1__frame__free_unpacked(f, NULL).  NULL when malformed or
 * over budget. */
#define NP_DECODE_SLACK (1024u * 1024u)
Amp__V1__Frame *np_frame_unpack(const uint8_t *buf, size_t len);

/* §9.1: the node signs hello_input. */
void np_hello_sign(const amp_identity *node, const uint8_t x[NP_X_BYTES],
		   const uint8_t challenge[NP_CHALLENGE_BYTES], uint64_t time,
		   uint8_t sig[AMP_SIG_BYTES]);
bool np_hello_verify(const amp_public_identity *node,
		     const uint8_t x[NP_X_BYTES],
		     const uint8_t challenge[NP_CHALLENGE_BYTES], uint64_t time,
		     const uint8_t sig[AMP_SIG_BYTES]);

/* §9.2: a user or peer node signs auth_input. */
void np_auth_sign(const amp_identity *id, const uint8_t x[NP_X_BYTES],
		  const uint8_t challenge[NP_CHALLENGE_BYTES],
		  const char *node_did, uint8_t sig[AMP_SIG_BYTES]);
bool np_auth_verify(const amp_public_identity *id, const uint8_t x[NP_X_BYTES],
		    const uint8_t challenge[NP_CHALLENGE_BYTES],
		    const char *node_did, const uint8_t sig[AMP_SIG_BYTES]);

/* §10.1 enc_proof from dh = X25519(enc_sk, peer enc_pk) (either side). */
void np_enc_proof(const uint8_t dh[32],
		  const uint8_t challenge[NP_CHALLENGE_BYTES], const char *did,
		  uint8_t out[NP_ENC_PROOF_BYTES]);

/* §10.1 register_input, signed by the new identity.  -1 when out of
 * memory (the inputs are bounded by the caller: document <= 64 KiB). */
int np_register_sign(const amp_identity *id, const uint8_t x[NP_X_BYTES],
		     const uint8_t challenge[NP_CHALLENGE_BYTES],
		     const char *doc, const char *stamp, const char *invite,
		     const uint8_t enc_proof[NP_ENC_PROOF_BYTES],
		     uint8_t sig[AMP_SIG_BYTES]) __attribute__((warn_unused_result));
bool np_register_verify(const amp_public_identity *id,
			const uint8_t x[NP_X_BYTES],
			const uint8_t challenge[NP_CHALLENGE_BYTES],
			const char *doc, const char *stamp, const char *invite,
			const uint8_t enc_proof[NP_ENC_PROOF_BYTES],
			const uint8_t sig[AMP_SIG_BYTES]);

/* Invite tokens (a node-local format; only the issuing node reads them):
 *   amp-invite-v1:<expires, decimal unix seconds>:<b64u(16 random)>:<b64u(mac)>
 * mac = BLAKE2b-128 keyed with key over "AMPv1-invite" ‖ u64(expires) ‖
 * nonce.  key: 32 bytes the node derives from its storage key. */
int np_invite_make(const uint8_t key[32], uint64_t expires,
		   char out[NP_INVITE_MAX]) __attribute__((warn_unused_result));
/* 0 when authentic and unexpired at now; -1 with *error_r otherwise. */
int np_invite_check(const uint8_t key[32], const char *token, uint64_t now,
		    uint64_t *expires_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
