/*
 * amp.h — the public API of libamp, the AfterSMTP protocol library.
 *
 * libamp implements the constructions of docs/PROTOCOL.md: identities and
 * DIDs, DID documents, sealed and signed envelopes, the registration proof of
 * work, a cache of X25519 shared secrets, and the passphrase-wrapped keystore.
 * It does no network I/O and keeps no global state beyond libsodium's.
 *
 * Conventions
 *  - Every fallible function returns an amp_err (AMP_OK == 0) and, when
 *    error_r is not NULL, sets *error_r to a static, human-readable sentence
 *    that says precisely what was wrong.  error_r strings never contain
 *    secret material or input bytes.
 *  - Functions ending in _r write their out-parameters only on success.
 *  - Memory returned to the caller is freed with the matching _free/_destroy
 *    function, never with free() directly unless stated.
 *  - Secret keys live in sodium_malloc()ed memory and are wiped on destroy.
 *  - Nothing blocks except amp_keystore_* (file I/O and Argon2id) and
 *    amp_pow_mint (CPU-bound search).
 *  - Call amp_init() once before anything else (it initialises libsodium).
 *  - All functions are thread-safe for distinct objects; amp_ctx (the shared
 *    secret cache) is thread-safe on its own.
 */
#ifndef AMP_AMP_H
#define AMP_AMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AMP_WUR __attribute__((warn_unused_result))
#else
#define AMP_WUR
#endif

/* ---------------------------------------------------------------- limits */
/* The ceilings of PROTOCOL.md §2 ("Limits").  Every decoder enforces them
 * before it allocates. */
#define AMP_DID_PREFIX          "did:aftersmtp:"
#define AMP_DID_DOMAIN_MAX      253u   /* octets, RFC 1035 presentation form */
#define AMP_DID_LABEL_MAX       63u
#define AMP_DID_LOCAL_MAX       64u
#define AMP_DID_MAX             (14u + AMP_DID_DOMAIN_MAX + 1u + AMP_DID_LOCAL_MAX) /* 332 */
#define AMP_CONTENT_TYPE_MAX    255u
#define AMP_RECIPIENTS_MAX      1000u
#define AMP_BODY_MAX            (32u * 1024u * 1024u)  /* plaintext bytes */
#define AMP_PADDED_MAX          (40u * 1024u * 1024u)  /* padded payload bytes */
#define AMP_ENVELOPE_MAX        (48u * 1024u * 1024u)  /* encoded envelope */
#define AMP_DIDDOC_MAX          (64u * 1024u)          /* DID document JSON */
#define AMP_CLOCK_SKEW_MAX      600u   /* seconds an envelope may be "from the future" */
#define AMP_POW_BITS_MAX        64u
#define AMP_POW_VALID_FOR       86400u /* seconds a stamp stays valid */
#define AMP_POW_SKEW_MAX        300u   /* seconds a stamp may be from the future */

#define AMP_SIGN_PK_BYTES       32u
#define AMP_SIGN_SK_BYTES       64u
#define AMP_ENC_PK_BYTES        32u
#define AMP_ENC_SK_BYTES        32u
#define AMP_SIG_BYTES           64u
#define AMP_ENVELOPE_ID_BYTES   16u
#define AMP_NONCE_BYTES         24u
#define AMP_CONTENT_KEY_BYTES   32u
#define AMP_WRAPPED_KEY_BYTES   72u    /* nonce(24) || ciphertext(32) || tag(16) */
#define AMP_KEY_ID_HEX          16u    /* hex characters, no NUL */
#define AMP_PROTOCOL_VERSION    1u

/* ---------------------------------------------------------------- errors */
typedef enum amp_err {
	AMP_OK = 0,
	AMP_E_INVALID_ARG,        /* caller passed something impossible */
	AMP_E_NOMEM,              /* allocation failed */
	AMP_E_TRUNCATED,          /* input ends before a complete structure */
	AMP_E_TOO_LARGE,          /* a field or the whole input exceeds its limit */
	AMP_E_MALFORMED,          /* input cannot be decoded or a field is invalid */
	AMP_E_NONCANONICAL,       /* decodes, but is not the canonical encoding */
	AMP_E_VERSION,            /* unsupported protocol version */
	AMP_E_UNSUPPORTED,        /* a feature this version does not implement */
	AMP_E_BAD_DID,            /* DID syntax */
	AMP_E_BAD_KEY,            /* a public key is invalid (low order, wrong size) */
	AMP_E_BAD_SIGNATURE,      /* Ed25519 signature does not verify */
	AMP_E_SENDER_MISMATCH,    /* header sender differs from the key given */
	AMP_E_DUPLICATE_RECIPIENT,/* a DID appears twice in the recipient list */
	AMP_E_NOT_RECIPIENT,      /* our DID is not among the recipients */
	AMP_E_KEY_UNWRAP,         /* our wrapped content key does not authenticate */
	AMP_E_DECRYPT,            /* the payload does not authenticate */
	AMP_E_PADDING,            /* the decrypted payload's padding is invalid */
	AMP_E_DECOMPRESS,         /* the payload is not one valid zstd frame */
	AMP_E_EXPIRED,            /* now >= expires */
	AMP_E_FUTURE,             /* created (or a stamp) is too far in the future */
	AMP_E_REPLAY,             /* envelope id already seen by this replay guard */
	AMP_E_POW_INSUFFICIENT,   /* stamp below the required difficulty, or its hash fails */
	AMP_E_POW_STALE,          /* stamp older than AMP_POW_VALID_FOR */
	AMP_E_PASSPHRASE,         /* keystore passphrase is wrong (or file tampered) */
	AMP_E_KEYSTORE,           /* keystore file is not a valid keystore */
	AMP_E_IO,                 /* a file operation failed (see errno) */
	AMP_E_BAD_PROOF,          /* a Merkle proof does not verify */
	AMP_E__COUNT
} amp_err;

/* "AMP_E_EXPIRED" etc.; never NULL. */
const char *amp_err_name(amp_err e);
/* A short generic sentence for the code; never NULL. */
const char *amp_strerror(amp_err e);

/* Initialise libsodium.  Returns AMP_OK or AMP_E_INVALID_ARG if libsodium
 * cannot initialise. Safe to call more than once. */
amp_err amp_init(void) AMP_WUR;

/* ---------------------------------------------------------------- DIDs */
typedef struct amp_did {
	char domain[AMP_DID_DOMAIN_MAX + 1];
	char local[AMP_DID_LOCAL_MAX + 1];
} amp_did;

/* Parse a DID in canonical form (PROTOCOL.md §3.1, AMP-R-001..006).
 * Exactly len bytes are examined; no NUL is needed.  Uppercase is refused:
 * use amp_did_normalize first for user input. */
amp_err amp_did_parse(const char *s, size_t len, amp_did *did_r,
		      const char **error_r) AMP_WUR;
/* Lower-case ASCII letters of user input into out (size out_size, NUL
 * terminated) and then parse it. */
amp_err amp_did_normalize(const char *s, char *out, size_t out_size,
			  const char **error_r) AMP_WUR;
/* Format "did:aftersmtp:<domain>:<local>" into out; validates both parts. */
amp_err amp_did_format(const char *domain, const char *local, char *out,
		       size_t out_size, const char **error_r) AMP_WUR;

/* ------------------------------------------------------------ identities */
/* Public half of an identity: what a DID document carries. */
typedef struct amp_public_identity {
	char did[AMP_DID_MAX + 1];
	uint8_t sign_pk[AMP_SIGN_PK_BYTES];   /* Ed25519 */
	uint8_t enc_pk[AMP_ENC_PK_BYTES];     /* X25519 */
} amp_public_identity;

/* A full identity with its secret keys.  Always allocated by libamp in
 * guarded, locked memory; never copy it. */
typedef struct amp_identity {
	amp_public_identity pub;
	uint8_t sign_sk[AMP_SIGN_SK_BYTES];   /* libsodium form: seed || pk */
	uint8_t enc_sk[AMP_ENC_SK_BYTES];
} amp_identity;

/* New identity with fresh random keys for the canonical DID `did`. */
amp_err amp_identity_generate(const char *did, amp_identity **id_r,
			      const char **error_r) AMP_WUR;
/* Identity from given secret material (test vectors, keystore):
 * sign_seed is the 32-byte Ed25519 seed, enc_sk the X25519 secret. */
amp_err amp_identity_from_secrets(const char *did, const uint8_t sign_seed[32],
				  const uint8_t enc_sk[32], amp_identity **id_r,
				  const char **error_r) AMP_WUR;
/* Wipes and frees; accepts NULL and sets *id to NULL. */
void amp_identity_destroy(amp_identity **id);

/* Key id: 16 lowercase hex chars of BLAKE2b-64(pk) plus NUL (§3.2). */
void amp_key_id(const uint8_t pk[32], char out[AMP_KEY_ID_HEX + 1]);

/* DID document (W3C DID Core, JsonWebKey2020) as a NUL-terminated JSON
 * string; free with amp_free. */
amp_err amp_did_document_export(const amp_public_identity *pub, char **json_r,
				const char **error_r) AMP_WUR;
/* Parse and validate a DID document (at most AMP_DIDDOC_MAX bytes). */
amp_err amp_did_document_parse(const char *json, size_t len,
			       amp_public_identity *pub_r,
			       const char **error_r) AMP_WUR;

/* Free memory returned by libamp (JSON strings, encoded envelopes). */
void amp_free(void *p);

/* ------------------------------------------- shared-secret cache (amp_ctx) */
/* An amp_ctx holds a bounded, thread-safe LRU cache of X25519 results keyed
 * by (own public key, peer public key), and a small pool of zstd contexts.
 * Secrets are held in locked memory and wiped on eviction and destroy.
 * capacity 0 disables the secret cache (the pool stays).  Passing no
 * amp_ctx (NULL) works everywhere but creates a zstd context per call,
 * which costs more than sealing a small message: long-lived programs
 * should keep one amp_ctx. */
typedef struct amp_ctx amp_ctx;
amp_err amp_ctx_create(size_t cache_capacity, amp_ctx **ctx_r) AMP_WUR;
void amp_ctx_destroy(amp_ctx **ctx);
typedef struct amp_cache_stats {
	uint64_t hits, misses, evictions;
	size_t entries, capacity;
} amp_cache_stats;
void amp_ctx_cache_stats(amp_ctx *ctx, amp_cache_stats *stats_r);

/* ---------------------------------------------------------------- envelopes */
typedef enum amp_lane {
	AMP_LANE_NORMAL = 0,
	AMP_LANE_CRITICAL = 1,
	AMP_LANE_BULK = 2,
} amp_lane;

/* Fills buf with len random bytes.  Tests and vectors inject a deterministic
 * source; production leaves it NULL (libsodium's randombytes_buf). */
typedef void amp_rng_fn(void *rng_ctx, uint8_t *buf, size_t len);

typedef struct amp_seal_params {
	const char *content_type;   /* NULL: "message/rfc822" */
	uint64_t created;           /* unix seconds; 0: now */
	uint64_t expires;           /* unix seconds; 0: never */
	amp_lane lane;
	int zstd_level;             /* 0: 3 */
	amp_rng_fn *rng;            /* NULL: randombytes_buf */
	void *rng_ctx;
} amp_seal_params;

/* Seal body (len <= AMP_BODY_MAX) for n (1..AMP_RECIPIENTS_MAX) distinct
 * recipients and sign it as sender.  ctx may be NULL (no cache).  The
 * encoded envelope is returned in *env_r (free with amp_free). */
amp_err amp_seal(amp_ctx *ctx, const amp_identity *sender,
		 const amp_public_identity *recipients, size_t n,
		 const amp_seal_params *params, const uint8_t *body, size_t len,
		 uint8_t **env_r, size_t *env_len_r,
		 const char **error_r) AMP_WUR;

/* A decoded, structurally valid envelope (signature not yet checked). */
typedef struct amp_envelope amp_envelope;

/* What anyone may read from a header.  Pointers stay valid until the
 * envelope is freed. */
typedef struct amp_envelope_info {
	uint32_t version;
	const uint8_t *envelope_id;          /* AMP_ENVELOPE_ID_BYTES */
	const char *sender;                  /* canonical DID */
	uint64_t created, expires;
	amp_lane lane;
	const char *content_type;
	uint64_t padded_size;
	size_t n_recipients;
} amp_envelope_info;

/* Decode and check structure and bounds (PROTOCOL.md §5.6, steps 1-3):
 * no crypto.  len must be <= AMP_ENVELOPE_MAX. */
amp_err amp_envelope_decode(const uint8_t *buf, size_t len,
			    amp_envelope **env_r, const char **error_r) AMP_WUR;
void amp_envelope_free(amp_envelope **env);
void amp_envelope_get_info(const amp_envelope *env, amp_envelope_info *info_r);
/* Recipient i's DID (i < n_recipients). */
const char *amp_envelope_recipient(const amp_envelope *env, size_t i);

/* Verify the sender's signature and the time window (steps 4-5) with the
 * sender's public identity, whose DID must equal the header's sender.
 * now: unix seconds (0: current time). */
amp_err amp_envelope_verify(const amp_envelope *env,
			    const amp_public_identity *sender, uint64_t now,
			    const char **error_r) AMP_WUR;

/* Verify, then unwrap our content key and decrypt, unpad and decompress
 * (steps 4-9).  The plaintext is returned in *body_r (free with amp_free). */
amp_err amp_envelope_open(amp_ctx *ctx, const amp_envelope *env,
			  const amp_identity *me,
			  const amp_public_identity *sender, uint64_t now,
			  uint8_t **body_r, size_t *body_len_r,
			  const char **error_r) AMP_WUR;

/* ----------------------------------------------------------- replay guard */
/* Remembers (sender, envelope id) pairs until the envelope's expiry or,
 * when it never expires, `window` seconds after the later of its creation
 * and its first sighting; at most `capacity` of them: when full, the entry
 * that would be forgotten soonest is dropped.  Check envelopes only after
 * amp_envelope_verify succeeded (the sender is then authenticated).
 * Envelopes without an expiry are protected only for `window`: senders
 * should set one.  Thread-safe. */
typedef struct amp_replay_guard amp_replay_guard;
amp_err amp_replay_guard_create(size_t capacity, uint64_t window,
				amp_replay_guard **guard_r) AMP_WUR;
void amp_replay_guard_destroy(amp_replay_guard **guard);
/* AMP_OK and remembers the id if unseen; AMP_E_REPLAY if seen. */
amp_err amp_replay_guard_check(amp_replay_guard *guard,
			       const amp_envelope *env, uint64_t now,
			       const char **error_r) AMP_WUR;

/* -------------------------------------------------------- proof of work */
typedef struct amp_pow_stamp {
	uint32_t bits;
	uint64_t timestamp;
	uint64_t counter;
} amp_pow_stamp;

/* Search for a stamp of `bits` (1..AMP_POW_BITS_MAX) difficulty over pub at
 * `timestamp` (0: now).  Gives up with AMP_E_TOO_LARGE after max_tries
 * hashes (0: no limit). */
amp_err amp_pow_mint(const amp_public_identity *pub, uint32_t bits,
		     uint64_t timestamp, uint64_t max_tries,
		     amp_pow_stamp *stamp_r, const char **error_r) AMP_WUR;
/* Check a stamp against pub at time now (0: current time), requiring at
 * least required_bits. */
amp_err amp_pow_check(const amp_public_identity *pub,
		      const amp_pow_stamp *stamp, uint32_t required_bits,
		      uint64_t now, const char **error_r) AMP_WUR;
/* Text form "amp-pow-v1:<bits>:<timestamp>:<counter, 16 hex>" (§6.3). */
#define AMP_POW_TEXT_MAX 64u
amp_err amp_pow_format(const amp_pow_stamp *stamp, char *out, size_t out_size)
	AMP_WUR;
amp_err amp_pow_parse(const char *s, size_t len, amp_pow_stamp *stamp_r,
		      const char **error_r) AMP_WUR;

/* --------------------------------------------------------------- keystore */
typedef enum amp_kdf_level {
	AMP_KDF_INTERACTIVE = 0,  /* Argon2id ops 2, 64 MiB: the default */
	AMP_KDF_MODERATE = 1,     /* ops 3, 256 MiB */
	AMP_KDF_SENSITIVE = 2,    /* ops 4, 1 GiB */
	AMP_KDF_MIN = 3,          /* ops 1, 8 KiB: tests only, never for real keys */
} amp_kdf_level;

/* Serialise id into keystore text (JSON) encrypted under passphrase.
 * Result is NUL-terminated; free with amp_free. */
amp_err amp_keystore_seal(const amp_identity *id, const char *passphrase,
			  size_t pass_len, amp_kdf_level level, char **text_r,
			  const char **error_r) AMP_WUR;
/* Read only the public identity of a keystore (no passphrase needed). */
amp_err amp_keystore_public(const char *text, size_t len,
			    amp_public_identity *pub_r,
			    const char **error_r) AMP_WUR;
/* Decrypt a keystore. AMP_E_PASSPHRASE when the passphrase is wrong. */
amp_err amp_keystore_open(const char *text, size_t len, const char *passphrase,
			  size_t pass_len, amp_identity **id_r,
			  const char **error_r) AMP_WUR;

/* ------------------------------------------------------- armour (text form) */
/* "-----BEGIN AMP ENVELOPE-----" base64 lines "-----END AMP ENVELOPE-----"
 * (PROTOCOL.md §5.8).  Returned text is NUL-terminated; free with amp_free. */
amp_err amp_armor_encode(const uint8_t *bin, size_t len, char **text_r,
			 size_t *text_len_r) AMP_WUR;
/* True if buf starts (after optional whitespace) with the BEGIN line. */
bool amp_armor_detect(const uint8_t *buf, size_t len);
amp_err amp_armor_decode(const uint8_t *text, size_t len, uint8_t **bin_r,
			 size_t *bin_len_r, const char **error_r) AMP_WUR;

#ifdef __cplusplus
}
#endif
#endif
