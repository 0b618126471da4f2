/*
 * test-vectors.c — libamp against the committed test vectors
 * (the JSON files of tests/vectors, PROTOCOL.md §7): DIDs, keys and DID documents,
 * Padmé, proofs of work, and envelopes re-sealed byte for byte from their
 * fixed inputs and opened by every recipient.
 */
#include "test-common.h"

static void test_did_vectors(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("did.json");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "valid"), i, v) {
		const char *s = json_string_value(v);
		amp_did d;
		char back[AMP_DID_MAX + 1];
		const char *err = NULL;
		if (amp_did_parse(s, strlen(s), &d, &err) != AMP_OK)
			fail_msg("valid DID refused: %s: %s", s, err);
		assert_int_equal(amp_did_format(d.domain, d.local, back,
						sizeof(back), NULL),
				 AMP_OK);
		assert_string_equal(back, s);
	}
	assert_true(i >= 5);
	json_array_foreach(json_object_get(j, "invalid"), i, v) {
		const char *s = json_string_value(json_object_get(v, "did"));
		const char *err = NULL;
		amp_err e = amp_did_parse(s, strlen(s), NULL, &err);
		if (e != AMP_E_BAD_DID)
			fail_msg("invalid DID (%s) gave %s: %s",
				 json_string_value(json_object_get(v, "why")),
				 amp_err_name(e), s);
		assert_non_null(err);
	}
	assert_true(i >= 20);
	json_decref(j);
}

static void test_key_vectors(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("keys.json");
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v) {
		uint8_t seed[32], esk[32], spk[32], epk[32];
		const char *did = json_string_value(json_object_get(v, "did"));
		t_unhex_fixed(json_string_value(json_object_get(v, "sign_seed")), seed, 32);
		t_unhex_fixed(json_string_value(json_object_get(v, "enc_sk")), esk, 32);
		t_unhex_fixed(json_string_value(json_object_get(v, "sign_pk")), spk, 32);
		t_unhex_fixed(json_string_value(json_object_get(v, "enc_pk")), epk, 32);
		amp_identity *id = NULL;
		assert_int_equal(amp_identity_from_secrets(did, seed, esk, &id, NULL),
				 AMP_OK);
		assert_memory_equal(id->pub.sign_pk, spk, 32);
		assert_memory_equal(id->pub.enc_pk, epk, 32);
		char kid[AMP_KEY_ID_HEX + 1];
		amp_key_id(spk, kid);
		assert_string_equal(kid, json_string_value(json_object_get(v, "sig_key_id")));
		amp_key_id(epk, kid);
		assert_string_equal(kid, json_string_value(json_object_get(v, "enc_key_id")));
		/* Our export equals the vector's document, and parses back. */
		char *doc;
		assert_int_equal(amp_did_document_export(&id->pub, &doc, NULL), AMP_OK);
		json_t *mine = json_loads(doc, 0, NULL);
		assert_true(json_equal(mine, json_object_get(v, "document")));
		amp_public_identity back;
		assert_int_equal(amp_did_document_parse(doc, strlen(doc), &back, NULL),
				 AMP_OK);
		assert_memory_equal(&back, &id->pub, sizeof(back));
		json_decref(mine);
		amp_free(doc);
		amp_identity_destroy(&id);
	}
	assert_int_equal(i, 3);
	json_decref(j);
}

static void test_padme_vectors(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("padme.json");
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v) {
		uint64_t L = (uint64_t)json_integer_value(json_array_get(v, 0));
		uint64_t want = (uint64_t)json_integer_value(json_array_get(v, 1));
		uint64_t got = amp_padme(L);
		assert_int_equal(got, want);
		assert_true(got >= L);
		assert_true(got - L <= L / 8 + 1); /* at most 12.5 % overhead */
	}
	json_decref(j);
}

static void test_pow_vectors(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("pow.json");
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v) {
		amp_public_identity pub = { 0 };
		const char *did = json_string_value(json_object_get(v, "did"));
		memcpy(pub.did, did, strlen(did) + 1);
		t_unhex_fixed(json_string_value(json_object_get(v, "sign_pk")), pub.sign_pk, 32);
		t_unhex_fixed(json_string_value(json_object_get(v, "enc_pk")), pub.enc_pk, 32);
		uint64_t ts = (uint64_t)json_integer_value(json_object_get(v, "timestamp"));
		uint32_t bits = (uint32_t)json_integer_value(json_object_get(v, "bits"));
		const char *text = json_string_value(json_object_get(v, "text"));
		amp_pow_stamp st, parsed;
		char out[AMP_POW_TEXT_MAX + 1];
		assert_int_equal(amp_pow_mint(&pub, bits, ts, 0, &st, NULL), AMP_OK);
		assert_int_equal(st.counter,
				 (uint64_t)json_integer_value(json_object_get(v, "counter")));
		assert_int_equal(amp_pow_format(&st, out, sizeof(out)), AMP_OK);
		assert_string_equal(out, text);
		assert_int_equal(amp_pow_parse(text, strlen(text), &parsed, NULL), AMP_OK);
		assert_int_equal(parsed.bits, st.bits);
		assert_int_equal(parsed.timestamp, st.timestamp);
		assert_int_equal(parsed.counter, st.counter);
		assert_int_equal(amp_pow_check(&pub, &parsed, bits, ts + 10, NULL), AMP_OK);
	}
	json_decref(j);
}

typedef struct script {
	uint8_t vals[32][32];
	size_t lens[32];
	size_t n, next;
} script;

static void script_rng(void *ctx, uint8_t *buf, size_t len)
{
	script *s = ctx;
	assert_true(s->next < s->n);
	assert_int_equal(s->lens[s->next], len);
	memcpy(buf, s->vals[s->next++], len);
}

static void script_add(script *s, json_t *o, const char *key, size_t len)
{
	t_unhex_fixed(json_string_value(json_object_get(o, key)), s->vals[s->n], len);
	s->lens[s->n++] = len;
}

static amp_identity *vid(json_t *o)
{
	uint8_t seed[32], esk[32];
	amp_identity *id = NULL;
	t_unhex_fixed(json_string_value(json_object_get(o, "sign_seed")), seed, 32);
	t_unhex_fixed(json_string_value(json_object_get(o, "enc_sk")), esk, 32);
	assert_int_equal(amp_identity_from_secrets(
				 json_string_value(json_object_get(o, "did")),
				 seed, esk, &id, NULL),
			 AMP_OK);
	return id;
}

static void test_envelope_vectors(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("envelope.json");
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(j, "cases"), i, c) {
		json_t *jr = json_object_get(c, "recipients");
		size_t n = json_array_size(jr);
		amp_identity *sender = vid(json_object_get(c, "sender"));
		amp_identity *rcpt[8];
		amp_public_identity pubs[8];
		script sc = { 0 };
		script_add(&sc, c, "envelope_id", 16);
		script_add(&sc, c, "content_key", 32);
		script_add(&sc, c, "payload_nonce", 24);
		for (size_t k = 0; k < n; k++) {
			rcpt[k] = vid(json_array_get(jr, k));
			pubs[k] = rcpt[k]->pub;
			script_add(&sc, json_array_get(jr, k), "wrap_nonce", 24);
		}
		size_t blen, want_len;
		uint8_t *body = t_unhex(json_string_value(json_object_get(c, "body")), &blen);
		uint8_t *want = t_unhex(json_string_value(json_object_get(c, "envelope")),
					&want_len);
		amp_seal_params p = {
			.content_type = json_string_value(json_object_get(c, "content_type")),
			.created = (uint64_t)json_integer_value(json_object_get(c, "created")),
			.expires = (uint64_t)json_integer_value(json_object_get(c, "expires")),
			.lane = (amp_lane)json_integer_value(json_object_get(c, "lane")),
			.zstd_level = 3, .rng = script_rng, .rng_ctx = &sc,
		};
		uint8_t *env;
		size_t len;
		assert_int_equal(amp_seal(NULL, sender, pubs, n, &p, body, blen,
					  &env, &len, NULL),
				 AMP_OK);
		assert_int_equal(sc.next, sc.n);
		assert_int_equal(len, want_len);
		assert_memory_equal(env, want, len);
		for (size_t k = 0; k < n; k++) {
			uint8_t *out;
			size_t olen;
			assert_int_equal(t_open(NULL, want, want_len, rcpt[k],
						&sender->pub, p.created + 1, &out,
						&olen),
					 AMP_OK);
			assert_int_equal(olen, blen);
			if (blen > 0)
				assert_memory_equal(out, body, blen);
			free(out);
			amp_identity_destroy(&rcpt[k]);
		}
		amp_identity_destroy(&sender);
		amp_free(env);
		free(body);
		free(want);
	}
	assert_int_equal(i, 3);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_did_vectors),
		cmocka_unit_test(test_key_vectors),
		cmocka_unit_test(test_padme_vectors),
		cmocka_unit_test(test_pow_vectors),
		cmocka_unit_test(test_envelope_vectors),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
