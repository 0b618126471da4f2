/*
 * fuzz-diddoc.c — libFuzzer target for the DID document reader
 * (amp_did_document_parse, PROTOCOL.md §3.3, AMP-R-006) and, on what it
 * accepts, the writer (amp_did_document_export).
 *
 * Input: arbitrary bytes as the JSON text (the parser takes a length; no
 * NUL is needed, and documents over AMP_DIDDOC_MAX are refused unread).
 *
 * Properties (abort() on violation):
 *  - parse(doc) succeeds => export(result) succeeds, and parsing that
 *    export yields the same public identity (memcmp of the whole struct:
 *    DID and both keys);
 *  - exporting the re-parsed identity gives the same text again (export is
 *    a function of the identity alone).
 */
#include "fuzz-common.h"

#include <stdlib.h>
#include <string.h>

#define T "fuzz-diddoc"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	amp_public_identity pub, pub2;
	const char *err = NULL;
	char *json = NULL, *json2 = NULL;

	fuzz_init();
	if (amp_did_document_parse((const char *)data, size, &pub, &err) !=
	    AMP_OK)
		return 0;
	if (amp_did_document_export(&pub, &json, &err) != AMP_OK)
		fuzz_fail(T, "a parsed DID document does not export");
	if (amp_did_document_parse(json, strlen(json), &pub2, &err) != AMP_OK)
		fuzz_fail(T, "an exported DID document does not parse");
	if (memcmp(&pub, &pub2, sizeof(pub)) != 0)
		fuzz_fail(T, "parse(export(parse(doc))) != parse(doc)");
	if (amp_did_document_export(&pub2, &json2, &err) != AMP_OK)
		fuzz_fail(T, "a re-parsed DID document does not export");
	if (strcmp(json, json2) != 0)
		fuzz_fail(T, "export is not a function of the identity");
	amp_free(json);
	amp_free(json2);
	return 0;
}
