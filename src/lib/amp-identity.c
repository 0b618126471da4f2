/*
 * amp-identity.c — identities (PROTOCOL.md §3.2) and DID documents (§3.3).
 *
 * Identities live in sodium_malloc()ed memory (guard pages, mlock, wiped on
 * free).  DID documents are read with jansson after a size check
 * (AMP_DIDDOC_MAX) and validated by AMP-R-006; nothing in a document is
 * trusted until every check passed.
 */
#include "amp-private.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>

static amp_identity *identity_alloc(void)
{
	amp_identity *id = sodium_malloc(sizeof(*id));
	if (id != NULL)
		memset(id, 0, sizeof(*id));
	return id;
}

void amp_identity_destroy(amp_identity **id)
{
	if (id == NULL || *id == NULL)
		return;
	sodium_free(*id); /* wipes */
	*id = NULL;
}

static amp_err check_did_arg(const char *did, const char **error_r)
{
	if (did == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no DID given");
	size_t len = strnlen(did, AMP_DID_MAX + 1);
	return amp_did_parse(did, len, NULL, error_r);
}

amp_err amp_identity_from_secrets(const char *did, const uint8_t sign_seed[32],
				  const uint8_t enc_sk[32], amp_identity **id_r,
				  const char **error_r)
{
	amp_err e = check_did_arg(did, error_r);
	if (e != AMP_OK)
		return e;
	amp_identity *id = identity_alloc();
	if (id == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot allocate secure memory for keys");
	memcpy(id->pub.did, did, strlen(did) + 1);
	crypto_sign_seed_keypair(id->pub.sign_pk, id->sign_sk, sign_seed);
	memcpy(id->enc_sk, enc_sk, AMP_ENC_SK_BYTES);
	crypto_scalarmult_base(id->pub.enc_pk, id->enc_sk);
	*id_r = id;
	return AMP_OK;
}

amp_err amp_identity_generate(const char *did, amp_identity **id_r,
			      const char **error_r)
{
	uint8_t seed[32], esk[32];
	randombytes_buf(seed, sizeof(seed));
	randombytes_buf(esk, sizeof(esk));
	amp_err e = amp_identity_from_secrets(did, seed, esk, id_r, error_r);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(esk, sizeof(esk));
	return e;
}

/* ------------------------------------------------------------ DID document */

static json_t *method_json(const char *did, const char *kind, const char *crv,
			   const uint8_t pk[32], char id_out[AMP_DID_MAX + 32])
{
	char kid[AMP_KEY_ID_HEX + 1];
	char x[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

	amp_key_id(pk, kid);
	snprintf(id_out, AMP_DID_MAX + 32, "%s#%s-%s", did, kind, kid);
	sodium_bin2base64(x, sizeof(x), pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "id", id_out,
			 "type", "JsonWebKey2020", "controller", did,
			 "publicKeyJwk", "kty", "OKP", "crv", crv, "x", x);
}

amp_err amp_did_document_export(const amp_public_identity *pub, char **json_r,
				const char **error_r)
{
	char sig_id[AMP_DID_MAX + 32], enc_id[AMP_DID_MAX + 32];

	if (pub == NULL || json_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no identity given");
	amp_err e = check_did_arg(pub->did, error_r);
	if (e != AMP_OK)
		return e;
	json_t *sig = method_json(pub->did, "sig", "Ed25519", pub->sign_pk, sig_id);
	json_t *enc = method_json(pub->did, "enc", "X25519", pub->enc_pk, enc_id);
	if (sig == NULL || enc == NULL) {
		json_decref(sig);
		json_decref(enc);
		AMP_FAIL(AMP_E_NOMEM, "cannot build DID document");
	}
	json_t *doc = json_pack(
		"{s:[s,s], s:s, s:[o,o], s:[s], s:[s], s:[s]}", "@context",
		"https://www.w3.org/ns/did/v1",
		"https://w3id.org/security/suites/jws-2020/v1", "id", pub->did,
		"verificationMethod", sig, enc, "authentication", sig_id,
		"assertionMethod", sig_id, "keyAgreement", enc_id);
	if (doc == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot build DID document");
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s == NULL)
		AMP_FAIL(AMP_E_NOMEM, "cannot serialise DID document");
	*json_r = s;
	return AMP_OK;
}

/* Does array `arr` contain the string `want`? */
static bool json_array_has(json_t *arr, const char *want)
{
	size_t i;
	json_t *v;
	if (!json_is_array(arr))
		return false;
	json_array_foreach(arr, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	}
	return false;
}

/* Validate one verification method; on success write its key to pk and
 * which kind it is ("sig" for Ed25519, "enc" for X25519). */
static amp_err method_parse(json_t *m, const char *did, uint8_t pk[32],
			    bool *is_sig_r, const char **error_r)
{
	const char *mid = json_string_value(json_object_get(m, "id"));
	const char *type = json_string_value(json_object_get(m, "type"));
	const char *ctl = json_string_value(json_object_get(m, "controller"));
	json_t *jwk = json_object_get(m, "publicKeyJwk");
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *x = json_string_value(json_object_get(jwk, "x"));
	char want[AMP_DID_MAX + 32], kid[AMP_KEY_ID_HEX + 1];

	if (mid == NULL || type == NULL || ctl == NULL || kty == NULL ||
	    crv == NULL || x == NULL)
		AMP_FAIL(AMP_E_MALFORMED,
			 "DID document: a verification method lacks id, type, "
			 "controller or publicKeyJwk kty/crv/x");
	if (strcmp(type, "JsonWebKey2020") != 0 || strcmp(kty, "OKP") != 0)
		AMP_FAIL(AMP_E_MALFORMED,
			 "DID document: verification method is not a "
			 "JsonWebKey2020 OKP key");
	if (strcmp(ctl, did) != 0)
		AMP_FAIL(AMP_E_MALFORMED,
			 "DID document: a controller differs from the id");
	if (strcmp(crv, "Ed25519") == 0)
		*is_sig_r = true;
	else if (strcmp(crv, "X25519") == 0)
		*is_sig_r = false;
	else
		AMP_FAIL(AMP_E_MALFORMED,
			 "DID document: key curve is neither Ed25519 nor X25519");
	if (!amp_b64u_decode_exact(x, pk, 32))
		AMP_FAIL(AMP_E_BAD_KEY,
			 "DID document: key x is not 32 bytes of base64url");
	amp_key_id(pk, kid);
	snprintf(want, sizeof(want), "%s#%s-%s", did, *is_sig_r ? "sig" : "enc",
		 kid);
	if (strcmp(mid, want) != 0)
		AMP_FAIL(AMP_E_MALFORMED,
			 "DID document: a method id does not match its key id");
	return AMP_OK;
}

amp_err amp_did_document_parse(const char *json, size_t len,
			       amp_public_identity *pub_r, const char **error_r)
{
	amp_public_identity pub;
	json_error_t jerr;
	amp_err e = AMP_OK;
	int n_sig = 0, n_enc = 0;
	char sig_id[AMP_DID_MAX + 32] = "", enc_id[AMP_DID_MAX + 32] = "";

	if (json == NULL || pub_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no DID document given");
	if (len > AMP_DIDDOC_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "DID document is larger than 64 KiB");
	json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		AMP_FAIL(AMP_E_MALFORMED, "DID document is not valid JSON");
	const char *did = json_string_value(json_object_get(doc, "id"));
	json_t *vms = json_object_get(doc, "verificationMethod");
	if (did == NULL || !json_is_array(vms)) {
		e = AMP_E_MALFORMED;
		if (error_r != NULL)
			*error_r = "DID document lacks id or verificationMethod";
		goto out;
	}
	e = amp_did_parse(did, strlen(did), NULL, error_r);
	if (e != AMP_OK)
		goto out;
	memset(&pub, 0, sizeof(pub));
	memcpy(pub.did, did, strlen(did) + 1);

	size_t i;
	json_t *m;
	json_array_foreach(vms, i, m) {
		uint8_t pk[32];
		bool is_sig;
		e = method_parse(m, did, pk, &is_sig, error_r);
		if (e != AMP_OK)
			goto out;
		const char *mid = json_string_value(json_object_get(m, "id"));
		if (is_sig) {
			n_sig++;
			memcpy(pub.sign_pk, pk, 32);
			snprintf(sig_id, sizeof(sig_id), "%s", mid);
		} else {
			n_enc++;
			memcpy(pub.enc_pk, pk, 32);
			snprintf(enc_id, sizeof(enc_id), "%s", mid);
		}
	}
	if (n_sig != 1 || n_enc != 1) {
		e = AMP_E_MALFORMED;
		if (error_r != NULL)
			*error_r = "DID document must have exactly one Ed25519 "
				   "and one X25519 key";
		goto out;
	}
	if (!json_array_has(json_object_get(doc, "authentication"), sig_id) ||
	    !json_array_has(json_object_get(doc, "keyAgreement"), enc_id)) {
		e = AMP_E_MALFORMED;
		if (error_r != NULL)
			*error_r = "DID document: authentication or keyAgreement "
				   "does not name its key";
		goto out;
	}
	*pub_r = pub;
out:
	json_decref(doc);
	return e;
}
