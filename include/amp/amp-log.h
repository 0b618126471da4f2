/*
 * amp-log.h — the transparency log's pure parts (PROTOCOL.md §11):
 * RFC 9162 Merkle hashing, inclusion and consistency proofs (generated
 * over the caller's store of subtree hashes, and verified), the leaf
 * encoding and key-history rules, signed tree heads and witness
 * cosignatures.  No I/O and no allocation; every function is thread-safe.
 */
#ifndef AMP_AMPLOG_H
#define AMP_AMPLOG_H

#include "amp/amp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMP_LOG_HASH_BYTES 32u
#define AMP_LOG_PROOF_MAX 65u        /* hashes in any proof */
#define AMP_LOG_LEAF_MAX 512u        /* bytes of an encoded leaf */
#define AMP_LOG_LEVELS 64u           /* subtree levels of a tree < 2^64 */

/* ---------------------------------------------------------------- hashing */
void amp_log_leaf_hash(const uint8_t *leaf, size_t len, uint8_t out[32]);
void amp_log_node_hash(const uint8_t left[32], const uint8_t right[32],
		       uint8_t out[32]);
void amp_log_empty_root(uint8_t out[32]);            /* SHA256("") */
/* SHA256(ascii("AMPv1-log-did") || did) */
void amp_log_did_hash(const char *did, uint8_t out[32]);
/* SHA256(env): a receipt's subject */
void amp_log_envelope_digest(const uint8_t *env, size_t len, uint8_t out[32]);

/* ------------------------------------------------- appending (compact range)
 * The right edge of a tree: the roots of its complete subtrees, one per
 * set bit of size (hash[l] is the subtree of 2^l leaves when bit l is set).
 * A store loads it from its subtree table (or rebuilds it from leaves, as
 * an auditor does) and pushes leaf hashes on it. */
typedef struct amp_log_frontier {
	uint64_t size;
	uint8_t hash[AMP_LOG_LEVELS][32];
} amp_log_frontier;

/* Told every subtree an append completes, the leaf itself (level 0) first,
 * then the larger ones: the complete subtree at (level, index) covers
 * leaves [index * 2^level, (index + 1) * 2^level).  Return 0, or -1 to
 * make the push fail (the frontier is then unchanged). */
typedef int amp_log_emit_fn(void *ctx, unsigned level, uint64_t index,
			    const uint8_t hash[32]);

void amp_log_frontier_init(amp_log_frontier *f);
/* AMP_E_TOO_LARGE at size 2^63; AMP_E_IO when emit failed. emit may be
 * NULL. */
amp_err amp_log_frontier_push(amp_log_frontier *f, const uint8_t leaf_hash[32],
			      amp_log_emit_fn *emit, void *ctx) AMP_WUR;
/* MTH of the leaves pushed so far. */
void amp_log_frontier_root(const amp_log_frontier *f, uint8_t root[32]);

/* ------------------------------------------------------ proof generation
 * The hash of the complete subtree at (level, index), from the caller's
 * store.  0, or -1 when it cannot be read (the generator then fails with
 * AMP_E_IO). */
typedef int amp_log_node_fn(void *ctx, unsigned level, uint64_t index,
			    uint8_t out[32]);

/* MTH of the first size leaves. */
amp_err amp_log_root(uint64_t size, amp_log_node_fn *node, void *ctx,
		     uint8_t root[32]) AMP_WUR;
/* RFC 9162 PATH(index, D[size]) into path[AMP_LOG_PROOF_MAX];
 * AMP_E_INVALID_ARG unless index < size. */
amp_err amp_log_inclusion_proof(uint64_t index, uint64_t size,
				amp_log_node_fn *node, void *ctx,
				uint8_t path[][32], size_t *n_r) AMP_WUR;
/* RFC 9162 PROOF(first, D[second]); AMP_E_INVALID_ARG unless
 * 0 < first <= second (first == second gives an empty proof). */
amp_err amp_log_consistency_proof(uint64_t first, uint64_t second,
				  amp_log_node_fn *node, void *ctx,
				  uint8_t path[][32], size_t *n_r) AMP_WUR;

/* --------------------------------------------------- proof verification
 * RFC 9162 §2.1.3.2 and §2.1.4.2.  AMP_OK, or AMP_E_BAD_PROOF. */
amp_err amp_log_verify_inclusion(uint64_t index, uint64_t size,
				 const uint8_t leaf_hash[32],
				 const uint8_t path[][32], size_t n,
				 const uint8_t root[32]) AMP_WUR;
amp_err amp_log_verify_consistency(uint64_t first, uint64_t second,
				   const uint8_t first_root[32],
				   const uint8_t second_root[32],
				   const uint8_t path[][32], size_t n) AMP_WUR;

/* ------------------------------------------------------------- leaves */
typedef enum amp_log_type {
	AMP_LOG_REGISTER = 1,
	AMP_LOG_ROTATE = 2,
	AMP_LOG_REVOKE = 3,
	AMP_LOG_RECEIPT = 4,
} amp_log_type;

typedef struct amp_log_leaf {
	amp_log_type type;
	uint64_t time;
	uint8_t subject[32];            /* did hash, or envelope digest */
	uint32_t version;               /* register 0; rotate v; revoke v */
	uint8_t sign_pk[32], enc_pk[32];/* register, rotate */
	uint8_t sig[64];                /* register, rotate: self_sig; revoke: sig */
	uint8_t prev_sig[64];           /* rotate */
	char node[AMP_DID_MAX + 1];     /* receipt: the accepting node's DID */
} amp_log_leaf;

/* Canonical encoding (§11.2); AMP_E_INVALID_ARG for an impossible leaf
 * (unknown type, register with version != 0, rotate with version 0, bad
 * node DID), AMP_E_TOO_LARGE when cap is too small. */
amp_err amp_log_leaf_encode(const amp_log_leaf *l, uint8_t *out, size_t cap,
			    size_t *len_r) AMP_WUR;
/* Strict decoding: exact length per type, version byte 1, known type,
 * register version 0, rotate version >= 1, a receipt's node a valid
 * canonical DID.  AMP_E_TRUNCATED, AMP_E_MALFORMED, AMP_E_VERSION,
 * AMP_E_TOO_LARGE, AMP_E_BAD_DID. */
amp_err amp_log_leaf_decode(const uint8_t *buf, size_t len, amp_log_leaf *l_r,
			    const char **error_r) AMP_WUR;

/* key_input / revoke_input signatures of §11.2 (sk: libsodium 64-byte). */
void amp_log_sign_key(const uint8_t sk[64], const uint8_t did_hash[32],
		      uint32_t version, const uint8_t sign_pk[32],
		      const uint8_t enc_pk[32], uint8_t sig[64]);
bool amp_log_verify_key(const uint8_t pk[32], const uint8_t did_hash[32],
			uint32_t version, const uint8_t sign_pk[32],
			const uint8_t enc_pk[32], const uint8_t sig[64]);
void amp_log_sign_revoke(const uint8_t sk[64], const uint8_t did_hash[32],
			 uint32_t version, uint8_t sig[64]);
bool amp_log_verify_revoke(const uint8_t pk[32], const uint8_t did_hash[32],
			   uint32_t version, const uint8_t sig[64]);

/* One DID's key history, folded leaf by leaf (AMP-R-060).  Start zeroed. */
typedef struct amp_log_identity {
	bool exists, revoked;
	uint32_t version;
	uint8_t subject[32];
	uint8_t sign_pk[32], enc_pk[32];
	uint64_t since;                 /* time of the leaf that set the key */
} amp_log_identity;
/* Apply an identity leaf (register, rotate, revoke) of this subject:
 * AMP_OK and the state updated, or AMP_E_MALFORMED (out of order: a
 * second register, a version gap, anything after a revoke, a different
 * subject, a receipt) or AMP_E_BAD_SIGNATURE, with *error_r saying which;
 * the state is then unchanged. */
amp_err amp_log_identity_apply(amp_log_identity *st, const amp_log_leaf *l,
			       const char **error_r) AMP_WUR;

/* -------------------------------------------------------- tree heads */
typedef struct amp_log_head {
	char log[AMP_DID_MAX + 1];      /* the log node's DID */
	uint64_t size;
	uint8_t root[32];
	uint64_t time;
	uint8_t sig[64];
} amp_log_head;

/* Fill h->sig; AMP_E_INVALID_ARG for a log name that is not a DID. */
amp_err amp_log_head_sign(amp_log_head *h, const uint8_t sk[64]) AMP_WUR;
bool amp_log_head_verify(const amp_log_head *h, const uint8_t pk[32]);
amp_err amp_log_cosign(const amp_log_head *h, const char *witness,
		       uint64_t cotime, const uint8_t sk[64],
		       uint8_t sig[64]) AMP_WUR;
bool amp_log_cosign_verify(const amp_log_head *h, const char *witness,
			   uint64_t cotime, const uint8_t pk[32],
			   const uint8_t sig[64]);

#endif
