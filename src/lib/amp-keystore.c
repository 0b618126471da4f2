/*
 * amp-keystore.c — the passphrase-wrapped keystore (docs/amp.md
 * "Keystore format").
 *
 * A JSON object holding the DID and public keys in clear, and the two
 * secrets (Ed25519 seed ‖ X25519 secret) encrypted with
 * XChaCha20-Poly1305 under a key derived from the passphrase by Argon2id
 * (libsodium crypto_pwhash).  The public fields and the KDF parameters are
 * bound as associated data, so none can be altered without the passphrase.
 * KDF parameters read from a file are capped (ops <= 10, mem <= 1 GiB) so a
 * planted keystore cannot make us allocate without bound.
 */
#include "amp-private.h"

#include <jansson.h>
#include <sodium.h>

#define KS_MAX (64u * 1024u)
#define KS_OPS_MAX 10u
#define KS_MEM_MAX (1024ull * 1024ull * 1024ull)
#define KS_AD_MAX (14 + 4 + AMP_DID_MAX + 64 + 16 + crypto_pwhash_SALTBYTES)
#define B64U sodium_base64_VARIANT_URLSAFE_NO_PADDING

typedef struct ks_secret {
	uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	uint8_t plain[64];
} ks_secret;

static void kdf_params(amp_kdf_level level, uint64_t *ops, uint64_t *mem)
{
	switch (level) {
	case AMP_KDF_MODERATE:
		*ops = crypto_pwhash_OPSLIMIT_MODERATE;
		*mem = crypto_pwhash_MEMLIMIT_MODERATE;
		break;
	case AMP_KDF_SENSITIVE:
		*ops = crypto_pwhash_OPSLIMIT_SENSITIVE;
		*mem = crypto_pwhash_MEMLIMIT_SENSITIVE;
		break;
	case AMP_KDF_MIN:
		*ops = crypto_pwhash_OPSLIMIT_MIN;
		*mem = crypto_pwhash_MEMLIMIT_MIN;
		break;
	case AMP_KDF_INTERACTIVE:
	default:
		*ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		*mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
		break;
	}
}

static size_t ks_ad(const amp_public_identity *pub, uint64_t ops, uint64_t mem,
		    const uint8_t *salt, uint8_t buf[KS_AD_MAX])
{
	amp_wbuf w;
	amp_wbuf_init(&w, buf, KS_AD_MAX);
	amp_wbuf_str(&w, "AMPv1-keystore");
	amp_wbuf_lp(&w, pub->did, strlen(pub->did));
	amp_wbuf_put(&w, pub->sign_pk, 32);
	amp_wbuf_put(&w, pub->enc_pk, 32);
	amp_wbuf_u64(&w, ops);
	amp_wbuf_u64(&w, mem);
	amp_wbuf_put(&w, salt, crypto_pwhash_SALTBYTES);
	return w.len;
}

static void b64(char *out, size_t out_size, const uint8_t *bin, size_t len)
{
	sodium_bin2base64(out, out_size, bin, len, B64U);
}

amp_err amp_keystore_seal(const amp_identity *id, const char *pass,
			  size_t pass_len, amp_kdf_level level, char **text_r,
			  const char **error_r)
{
	uint8_t salt[crypto_pwhash_SALTBYTES], nonce[AMP_NONCE_BYTES];
	uint8_t ct[64 + 16], ad[KS_AD_MAX];
	uint64_t ops, mem;
	char s_sign[64], s_enc[64], s_salt[64], s_nonce[64], s_ct[128];

	if (id == NULL || pass == NULL || text_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no identity or passphrase given");
	kdf_params(level, &ops, &mem);
	ks_secret *sec = sodium_malloc(sizeof(*sec));
	if (sec == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot allocate secure memory");
	randombytes_buf(salt, sizeof(salt));
	randombytes_buf(nonce, sizeof(nonce));
	if (crypto_pwhash(sec->key, sizeof(sec->key), pass, pass_len, salt, ops,
			  (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_free(sec);
		AMP_FAIL(AMP_E_NOMEM, "Argon2id could not allocate its memory");
	}
	memcpy(sec->plain, id->sign_sk, 32); /* the seed half */
	memcpy(sec->plain + 32, id->enc_sk, 32);
	size_t ad_len = ks_ad(&id->pub, ops, mem, salt, ad);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, sec->plain, 64, ad,
						   ad_len, NULL, nonce, sec->key);
	sodium_free(sec);

	b64(s_sign, sizeof(s_sign), id->pub.sign_pk, 32);
	b64(s_enc, sizeof(s_enc), id->pub.enc_pk, 32);
	b64(s_salt, sizeof(s_salt), salt, sizeof(salt));
	b64(s_nonce, sizeof(s_nonce), nonce, sizeof(nonce));
	b64(s_ct, sizeof(s_ct), ct, sizeof(ct));
	json_t *doc = json_pack(
		"{s:s, s:i, s:s, s:s, s:s, s:{s:s, s:I, s:I, s:s}, s:s, s:s}",
		"type", "amp-keystore", "version", 1, "did", id->pub.did,
		"sign_pk", s_sign, "enc_pk", s_enc, "kdf", "alg", "argon2id13",
		"opslimit", (json_int_t)ops, "memlimit", (json_int_t)mem,
		"salt", s_salt, "nonce", s_nonce, "ciphertext", s_ct);
	if (doc == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot build keystore");
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot serialise keystore");
	*text_r = text;
	return AMP_OK;
}

/* Decode a base64url member into exactly n bytes. */
static bool get_b64(json_t *obj, const char *key, uint8_t *out, size_t n)
{
	return amp_b64u_decode_exact(json_string_value(json_object_get(obj, key)),
				     out, n);
}

typedef struct ks_parsed {
	amp_public_identity pub;
	uint64_t ops, mem;
	uint8_t salt[crypto_pwhash_SALTBYTES];
	uint8_t nonce[AMP_NONCE_BYTES];
	uint8_t ct[64 + 16];
} ks_parsed;

static amp_err ks_parse(const char *text, size_t len, ks_parsed *k,
			const char **error_r)
{
	json_error_t jerr;
	const char *bad = "keystore lacks a field or a field is invalid";

	if (text == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no keystore given");
	if (len > KS_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "keystore is larger than 64 KiB");
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		AMP_FAIL(AMP_E_KEYSTORE, "keystore is not valid JSON");
	amp_err e = AMP_OK;
	const char *type = json_string_value(json_object_get(doc, "type"));
	json_t *ver = json_object_get(doc, "version");
	const char *did = json_string_value(json_object_get(doc, "did"));
	json_t *kdf = json_object_get(doc, "kdf");
	const char *alg = json_string_value(json_object_get(kdf, "alg"));
	json_t *jops = json_object_get(kdf, "opslimit");
	json_t *jmem = json_object_get(kdf, "memlimit");

	memset(k, 0, sizeof(*k));
	if (type == NULL || strcmp(type, "amp-keystore") != 0 ||
	    !json_is_integer(ver) || json_integer_value(ver) != 1) {
		e = AMP_E_KEYSTORE;
		bad = "not an amp keystore of version 1";
	} else if (did == NULL ||
		   amp_did_parse(did, strlen(did), NULL, NULL) != AMP_OK) {
		e = AMP_E_KEYSTORE;
		bad = "keystore DID is invalid";
	} else if (alg == NULL || strcmp(alg, "argon2id13") != 0 ||
		   !json_is_integer(jops) || !json_is_integer(jmem) ||
		   json_integer_value(jops) < (json_int_t)crypto_pwhash_OPSLIMIT_MIN ||
		   json_integer_value(jops) > (json_int_t)KS_OPS_MAX ||
		   json_integer_value(jmem) < (json_int_t)crypto_pwhash_MEMLIMIT_MIN ||
		   json_integer_value(jmem) > (json_int_t)KS_MEM_MAX) {
		e = AMP_E_KEYSTORE;
		bad = "keystore KDF is not argon2id13 within ops 1-10, "
		      "mem 8 KiB-1 GiB";
	} else if (!get_b64(doc, "sign_pk", k->pub.sign_pk, 32) ||
		   !get_b64(doc, "enc_pk", k->pub.enc_pk, 32) ||
		   !get_b64(kdf, "salt", k->salt, sizeof(k->salt)) ||
		   !get_b64(doc, "nonce", k->nonce, sizeof(k->nonce)) ||
		   !get_b64(doc, "ciphertext", k->ct, sizeof(k->ct))) {
		e = AMP_E_KEYSTORE;
	} else {
		memcpy(k->pub.did, did, strlen(did) + 1);
		k->ops = (uint64_t)json_integer_value(jops);
		k->mem = (uint64_t)json_integer_value(jmem);
	}
	json_decref(doc);
	if (e != AMP_OK)
		AMP_FAIL(e, bad);
	return AMP_OK;
}

amp_err amp_keystore_public(const char *text, size_t len,
			    amp_public_identity *pub_r, const char **error_r)
{
	ks_parsed k;
	amp_err e = ks_parse(text, len, &k, error_r);
	if (e == AMP_OK && pub_r != NULL)
		*pub_r = k.pub;
	return e;
}

amp_err amp_keystore_open(const char *text, size_t len, const char *pass,
			  size_t pass_len, amp_identity **id_r,
			  const char **error_r)
{
	ks_parsed k;
	uint8_t ad[KS_AD_MAX];

	if (pass == NULL || id_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no passphrase given");
	amp_err e = ks_parse(text, len, &k, error_r);
	if (e != AMP_OK)
		return e;
	ks_secret *sec = sodium_malloc(sizeof(*sec));
	if (sec == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot allocate secure memory");
	if (crypto_pwhash(sec->key, sizeof(sec->key), pass, pass_len, k.salt,
			  k.ops, (size_t)k.mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_free(sec);
		AMP_FAIL(AMP_E_NOMEM, "Argon2id could not allocate its memory");
	}
	size_t ad_len = ks_ad(&k.pub, k.ops, k.mem, k.salt, ad);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    sec->plain, NULL, NULL, k.ct, sizeof(k.ct), ad, ad_len,
		    k.nonce, sec->key) != 0) {
		sodium_free(sec);
		AMP_FAIL(AMP_E_PASSPHRASE,
			 "wrong passphrase, or the keystore was altered");
	}
	amp_identity *id = NULL;
	e = amp_identity_from_secrets(k.pub.did, sec->plain, sec->plain + 32,
				      &id, error_r);
	sodium_free(sec);
	if (e != AMP_OK)
		return e;
	if (sodium_memcmp(id->pub.sign_pk, k.pub.sign_pk, 32) != 0 ||
	    sodium_memcmp(id->pub.enc_pk, k.pub.enc_pk, 32) != 0) {
		amp_identity_destroy(&id);
		AMP_FAIL(AMP_E_KEYSTORE,
			 "keystore secrets do not match its public keys");
	}
	*id_r = id;
	return AMP_OK;
}
