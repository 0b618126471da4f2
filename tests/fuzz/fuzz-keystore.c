/*
 * fuzz-keystore.c — libFuzzer target for the keystore reader
 * (amp_keystore_public, amp_keystore_open; format in src/lib/amp-keystore.c).
 *
 * Input: arbitrary bytes as keystore text.  amp_keystore_public runs on
 * every input.  amp_keystore_open (Argon2id) runs with FUZZ_PASSPHRASE only
 * when the public read succeeded and the document's kdf object says
 * exactly opslimit 1 and memlimit 8192 (AMP_KDF_MIN), read here with
 * jansson so a string elsewhere in the document cannot fake it: any other
 * setting may cost up to 10 passes over 1 GiB per execution.
 *
 * Properties (abort() on violation):
 *  - open succeeds => public succeeded, and the opened identity's public
 *    half equals what amp_keystore_public read (memcmp of the struct);
 *  - open succeeds => re-sealing the identity at AMP_KDF_MIN and opening
 *    that gives the same public identity again.
 */
#include "fuzz-common.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-keystore"

/* Is the kdf object exactly the AMP_KDF_MIN setting (ops 1, mem 8 KiB)? */
static bool kdf_is_min(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)data, size,
				 JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return false;
	json_t *kdf = json_object_get(doc, "kdf");
	json_t *ops = json_object_get(kdf, "opslimit");
	json_t *mem = json_object_get(kdf, "memlimit");
	bool min = json_is_integer(ops) && json_integer_value(ops) == 1 &&
		   json_is_integer(mem) && json_integer_value(mem) == 8192;
	json_decref(doc);
	return min;
}

static void check_reseal(const amp_identity *id)
{
	static const char pass[] = FUZZ_PASSPHRASE;
	amp_identity *id2 = NULL;
	const char *err = NULL;
	char *text = NULL;

	if (amp_keystore_seal(id, pass, sizeof(pass) - 1, AMP_KDF_MIN, &text,
			      &err) != AMP_OK)
		fuzz_fail(T, "an opened identity does not seal");
	if (amp_keystore_open(text, strlen(text), pass, sizeof(pass) - 1, &id2,
			      &err) != AMP_OK)
		fuzz_fail(T, "a freshly sealed keystore does not open");
	if (memcmp(&id->pub, &id2->pub, sizeof(id->pub)) != 0)
		fuzz_fail(T, "open(seal(id)) has another public identity");
	amp_identity_destroy(&id2);
	amp_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char pass[] = FUZZ_PASSPHRASE;
	amp_public_identity pub;
	amp_identity *id = NULL;
	const char *err = NULL;

	fuzz_init();
	if (amp_keystore_public((const char *)data, size, &pub, &err) != AMP_OK)
		return 0;
	if (!kdf_is_min(data, size))
		return 0;
	if (amp_keystore_open((const char *)data, size, pass, sizeof(pass) - 1,
			      &id, &err) != AMP_OK)
		return 0;
	if (memcmp(&id->pub, &pub, sizeof(pub)) != 0)
		fuzz_fail(T, "open and public disagree on the public identity");
	check_reseal(id);
	amp_identity_destroy(&id);
	return 0;
}
