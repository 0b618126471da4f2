/*
 * test-identity.c — DIDs (parse, normalise, format, limits), key ids, DID
 * documents (export, parse, every AMP-R-006 refusal) and the keystore
 * (seal/open, wrong passphrase, tampering, KDF caps).
 */
#include "test-common.h"

static void test_did_parse_parts(void **state)
{
	(void)state;
	amp_did d;
	const char *s = "did:aftersmtp:mail.example.org:first.last";
	assert_int_equal(amp_did_parse(s, strlen(s), &d, NULL), AMP_OK);
	assert_string_equal(d.domain, "mail.example.org");
	assert_string_equal(d.local, "first.last");
	/* Exactly len bytes are read: a prefix of a valid DID is checked as
	 * itself, and the bytes after len are never looked at. */
	assert_int_equal(amp_did_parse(s, 20, NULL, NULL), AMP_E_BAD_DID);
	char buf[64];
	memcpy(buf, "did:aftersmtp:a.b:c", 19);
	memset(buf + 19, 'Z', sizeof(buf) - 19);
	assert_int_equal(amp_did_parse(buf, 19, NULL, NULL), AMP_OK);
	/* NUL inside is refused. */
	assert_int_equal(amp_did_parse("did:aftersmtp:a.b:c\0d", 21, NULL, NULL),
			 AMP_E_BAD_DID);
	assert_int_equal(amp_did_parse(NULL, 0, NULL, NULL), AMP_E_INVALID_ARG);
}

static void test_did_normalize_format(void **state)
{
	(void)state;
	char out[AMP_DID_MAX + 1];
	const char *err = NULL;
	assert_int_equal(amp_did_normalize("DID:AfterSMTP:Example.ORG:Bob", out,
					   sizeof(out), &err),
			 AMP_OK);
	assert_string_equal(out, "did:aftersmtp:example.org:bob");
	assert_int_equal(amp_did_normalize("did:aftersmtp:exämple.org:bob", out,
					   sizeof(out), &err),
			 AMP_E_BAD_DID);
	char small[10];
	assert_int_equal(amp_did_normalize("did:aftersmtp:a:b", small,
					   sizeof(small), &err),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_did_format("example.org", "alice", out, sizeof(out),
					NULL),
			 AMP_OK);
	assert_string_equal(out, "did:aftersmtp:example.org:alice");
	assert_int_equal(amp_did_format("example.org", "al ice", out,
					sizeof(out), &err),
			 AMP_E_BAD_DID);
	assert_int_equal(amp_did_format("", "a", out, sizeof(out), &err),
			 AMP_E_BAD_DID);
	assert_int_equal(amp_did_format("a.b", "c", small, sizeof(small), &err),
			 AMP_E_INVALID_ARG);
	/* Over-long input to normalise is refused without reading past 333. */
	char longs[1000];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	assert_int_equal(amp_did_normalize(longs, out, sizeof(out), &err),
			 AMP_E_BAD_DID);
}

static void test_key_id(void **state)
{
	(void)state;
	uint8_t pk[32] = { 0 };
	char kid[AMP_KEY_ID_HEX + 1];
	amp_key_id(pk, kid);
	assert_int_equal(strlen(kid), 16);
	/* BLAKE2b-64 of 32 zero bytes, computed independently with
	 * python3 hashlib.blake2b(bytes(32), digest_size=8). */
	assert_string_equal(kid, "c50d124a8aaf41a1");
}

static amp_identity *alice(void)
{
	return t_identity("did:aftersmtp:example.org:alice");
}

static amp_err parse_doc_str(const char *s)
{
	amp_public_identity pub;
	const char *err = NULL;
	amp_err e = amp_did_document_parse(s, strlen(s), &pub, &err);
	if (e != AMP_OK)
		assert_non_null(err);
	return e;
}

/* Apply a JSON edit to alice's document and parse it. */
typedef void doc_edit(json_t *doc);

static amp_err parse_edited(doc_edit *fn)
{
	amp_identity *a = alice();
	char *s;
	assert_int_equal(amp_did_document_export(&a->pub, &s, NULL), AMP_OK);
	json_t *doc = json_loads(s, 0, NULL);
	amp_free(s);
	fn(doc);
	s = json_dumps(doc, 0);
	amp_err e = parse_doc_str(s);
	free(s);
	json_decref(doc);
	amp_identity_destroy(&a);
	return e;
}

static json_t *vm(json_t *doc, size_t i)
{
	return json_array_get(json_object_get(doc, "verificationMethod"), i);
}

static void e_noop(json_t *d) { (void)d; }
static void e_bad_id(json_t *d) { json_object_set_new(d, "id", json_string("did:aftersmtp:X:y")); }
static void e_no_vm(json_t *d) { json_object_del(d, "verificationMethod"); }
static void e_controller(json_t *d) { json_object_set_new(vm(d, 0), "controller", json_string("did:aftersmtp:evil.org:x")); }
static void e_crv(json_t *d) { json_object_set_new(json_object_get(vm(d, 0), "publicKeyJwk"), "crv", json_string("P-256")); }
static void e_short_x(json_t *d) { json_object_set_new(json_object_get(vm(d, 1), "publicKeyJwk"), "x", json_string("AAAA")); }
static void e_kid(json_t *d)
{
	const char *id = json_string_value(json_object_get(vm(d, 0), "id"));
	char buf[512];
	snprintf(buf, sizeof(buf), "%.*s0000000000000000", (int)(strlen(id) - 16), id);
	json_object_set_new(vm(d, 0), "id", json_string(buf));
}
static void e_two_sig(json_t *d)
{
	json_array_append(json_object_get(d, "verificationMethod"), vm(d, 0));
}
static void e_no_auth(json_t *d) { json_object_set_new(d, "authentication", json_array()); }
static void e_no_ka(json_t *d) { json_object_del(d, "keyAgreement"); }
static void e_type(json_t *d) { json_object_set_new(vm(d, 1), "type", json_string("X25519KeyAgreementKey2019")); }
static void e_extra(json_t *d) { json_object_set_new(d, "service", json_array()); }

static void test_did_document(void **state)
{
	(void)state;
	assert_int_equal(parse_edited(e_noop), AMP_OK);
	assert_int_equal(parse_edited(e_extra), AMP_OK); /* unknown members ignored */
	assert_int_equal(parse_edited(e_bad_id), AMP_E_BAD_DID);
	assert_int_equal(parse_edited(e_no_vm), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_controller), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_crv), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_short_x), AMP_E_BAD_KEY);
	assert_int_equal(parse_edited(e_kid), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_two_sig), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_no_auth), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_no_ka), AMP_E_MALFORMED);
	assert_int_equal(parse_edited(e_type), AMP_E_MALFORMED);
	assert_int_equal(parse_doc_str("not json"), AMP_E_MALFORMED);
	assert_int_equal(parse_doc_str("[]"), AMP_E_MALFORMED);
	assert_int_equal(parse_doc_str("{\"id\":1}"), AMP_E_MALFORMED);
	/* Duplicate keys are refused rather than silently resolved. */
	assert_int_equal(parse_doc_str("{\"id\":\"did:aftersmtp:a:b\","
				       "\"id\":\"did:aftersmtp:a:c\"}"),
			 AMP_E_MALFORMED);
	/* Over 64 KiB: refused before parsing. */
	size_t big = AMP_DIDDOC_MAX + 1;
	char *s = malloc(big + 1);
	memset(s, ' ', big);
	s[big] = '\0';
	amp_public_identity pub;
	assert_int_equal(amp_did_document_parse(s, big, &pub, NULL),
			 AMP_E_TOO_LARGE);
	/* Deep nesting does not crash (jansson's depth limit). */
	size_t depth = 60000;
	char *deep = malloc(depth * 2 + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[depth * 2] = '\0';
	assert_int_equal(amp_did_document_parse(deep, AMP_DIDDOC_MAX, &pub, NULL),
			 AMP_E_MALFORMED);
	free(deep);
	free(s);
}

static void test_keystore_roundtrip(void **state)
{
	(void)state;
	amp_identity *a = alice(), *back = NULL;
	char *text;
	const char *err = NULL;
	assert_int_equal(amp_keystore_seal(a, "correct horse", 13, AMP_KDF_MIN,
					   &text, &err),
			 AMP_OK);
	/* The secrets are not in the file in any readable form. */
	char hex[129];
	sodium_bin2hex(hex, sizeof(hex), a->sign_sk, 32);
	assert_null(strstr(text, hex));
	amp_public_identity pub;
	assert_int_equal(amp_keystore_public(text, strlen(text), &pub, NULL), AMP_OK);
	assert_memory_equal(&pub, &a->pub, sizeof(pub));
	assert_int_equal(amp_keystore_open(text, strlen(text), "correct horse",
					   13, &back, &err),
			 AMP_OK);
	assert_memory_equal(back->sign_sk, a->sign_sk, 64);
	assert_memory_equal(back->enc_sk, a->enc_sk, 32);
	amp_identity_destroy(&back);
	assert_null(back);
	assert_int_equal(amp_keystore_open(text, strlen(text), "correct horsf",
					   13, &back, &err),
			 AMP_E_PASSPHRASE);
	assert_null(back);
	amp_free(text);
	amp_identity_destroy(&a);
}

/* Replace the value of member `key` (anywhere in the JSON) and open. */
static amp_err open_edited(const char *text, const char *path0,
			   const char *path1, json_t *value)
{
	json_t *doc = json_loads(text, 0, NULL);
	json_t *obj = path1 != NULL ? json_object_get(doc, path0) : doc;
	json_object_set_new(obj, path1 != NULL ? path1 : path0, value);
	char *s = json_dumps(doc, 0);
	amp_identity *id = NULL;
	const char *err = NULL;
	amp_err e = amp_keystore_open(s, strlen(s), "pw", 2, &id, &err);
	amp_identity_destroy(&id);
	free(s);
	json_decref(doc);
	return e;
}

static void test_keystore_tamper(void **state)
{
	(void)state;
	amp_identity *a = alice(), *b = t_identity("did:aftersmtp:x.org:bob");
	char *text;
	assert_int_equal(amp_keystore_seal(a, "pw", 2, AMP_KDF_MIN, &text, NULL),
			 AMP_OK);
	char b64[64];
	sodium_bin2base64(b64, sizeof(b64), b->pub.sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	/* Public fields are bound as associated data. */
	assert_int_equal(open_edited(text, "did", NULL,
				     json_string("did:aftersmtp:x.org:bob")),
			 AMP_E_PASSPHRASE);
	assert_int_equal(open_edited(text, "sign_pk", NULL, json_string(b64)),
			 AMP_E_PASSPHRASE);
	/* KDF downgrade to a weaker setting changes the key: refused. */
	assert_int_equal(open_edited(text, "kdf", "opslimit", json_integer(2)),
			 AMP_E_PASSPHRASE);
	/* KDF parameters outside the caps are refused before any work. */
	assert_int_equal(open_edited(text, "kdf", "memlimit",
				     json_integer((json_int_t)1 << 40)),
			 AMP_E_KEYSTORE);
	assert_int_equal(open_edited(text, "kdf", "opslimit", json_integer(1000)),
			 AMP_E_KEYSTORE);
	assert_int_equal(open_edited(text, "kdf", "alg", json_string("scrypt")),
			 AMP_E_KEYSTORE);
	assert_int_equal(open_edited(text, "version", NULL, json_integer(2)),
			 AMP_E_KEYSTORE);
	assert_int_equal(open_edited(text, "ciphertext", NULL, json_string("AAAA")),
			 AMP_E_KEYSTORE);
	amp_identity *id = NULL;
	assert_int_equal(amp_keystore_open("{}", 2, "pw", 2, &id, NULL),
			 AMP_E_KEYSTORE);
	assert_int_equal(amp_keystore_open("garbage", 7, "pw", 2, &id, NULL),
			 AMP_E_KEYSTORE);
	amp_free(text);
	amp_identity_destroy(&a);
	amp_identity_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_did_parse_parts),
		cmocka_unit_test(test_did_normalize_format),
		cmocka_unit_test(test_key_id),
		cmocka_unit_test(test_did_document),
		cmocka_unit_test(test_keystore_roundtrip),
		cmocka_unit_test(test_keystore_tamper),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
