/*
 * fuzz-armor.c — libFuzzer target for the text armour of envelopes
 * (amp_armor_detect, amp_armor_decode, amp_armor_encode; PROTOCOL.md §5.8).
 *
 * Input: arbitrary bytes as armoured text.  Only the armour is fuzzed here;
 * the envelope inside is fuzz-envelope's business.
 *
 * Properties (abort() on violation):
 *  - decode succeeds => detect was true and the result is not empty;
 *  - decode succeeds => encode(result) succeeds, is detected, is
 *    NUL-terminated at the length it reports, and decodes to the same
 *    bytes;
 *  - encode output is canonical: encoding the round-tripped bytes again
 *    gives the same text.
 */
#include "fuzz-common.h"

#include <stdlib.h>
#include <string.h>

#define T "fuzz-armor"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *bin = NULL, *bin2 = NULL;
	size_t bin_len = 0, bin2_len = 0, text_len = 0, text2_len = 0;
	char *text = NULL, *text2 = NULL;
	const char *err = NULL;

	fuzz_init();
	bool detected = amp_armor_detect(data, size);
	if (amp_armor_decode(data, size, &bin, &bin_len, &err) != AMP_OK)
		return 0;
	if (!detected)
		fuzz_fail(T, "decode accepted text that detect refused");
	if (bin_len == 0)
		fuzz_fail(T, "decode returned an empty envelope");
	if (amp_armor_encode(bin, bin_len, &text, &text_len) != AMP_OK)
		fuzz_fail(T, "decoded bytes do not encode");
	if (strlen(text) != text_len)
		fuzz_fail(T, "encode reported a wrong text length");
	if (!amp_armor_detect((const uint8_t *)text, text_len))
		fuzz_fail(T, "encoded text is not detected as armour");
	if (amp_armor_decode((const uint8_t *)text, text_len, &bin2, &bin2_len,
			     &err) != AMP_OK)
		fuzz_fail(T, "encoded text does not decode");
	if (bin2_len != bin_len || memcmp(bin, bin2, bin_len) != 0)
		fuzz_fail(T, "decode(encode(x)) != x");
	if (amp_armor_encode(bin2, bin2_len, &text2, &text2_len) != AMP_OK)
		fuzz_fail(T, "round-tripped bytes do not encode");
	if (text2_len != text_len || memcmp(text, text2, text_len) != 0)
		fuzz_fail(T, "encode is not deterministic");
	amp_free(bin);
	amp_free(bin2);
	amp_free(text);
	amp_free(text2);
	return 0;
}
