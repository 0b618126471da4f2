/*
 * fuzz-did.c — libFuzzer target for the DID parser (amp_did_parse,
 * amp_did_normalize, amp_did_format; PROTOCOL.md §3.1, AMP-R-003/004).
 *
 * Input: arbitrary bytes, parsed as a DID of exactly that length (no NUL
 * needed), then a NUL-terminated copy is normalised.  Inputs longer than
 * AMP_DID_MAX + 64 are cut there: the parser refuses anything over 332
 * bytes before looking at it, so longer inputs only waste time.
 *
 * Properties (abort() on violation):
 *  - parse succeeds => amp_did_format(domain, local) succeeds and equals
 *    the input byte for byte (the parser accepts only canonical DIDs);
 *  - parse succeeds => normalize succeeds and leaves the DID unchanged;
 *  - normalize succeeds => its output parses, has no uppercase letters,
 *    and differs from the input only in letter case.
 */
#include "fuzz-common.h"

#include <stdlib.h>
#include <string.h>

#define T "fuzz-did"
#define IN_MAX (AMP_DID_MAX + 64u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[IN_MAX + 1], out[AMP_DID_MAX + 1], fmt[AMP_DID_MAX + 1];
	const char *err = NULL;
	amp_did did;

	fuzz_init();
	if (size > IN_MAX)
		size = IN_MAX;
	memcpy(in, data, size);
	in[size] = '\0';

	bool parsed = amp_did_parse(in, size, &did, &err) == AMP_OK;
	if (parsed) {
		if (amp_did_format(did.domain, did.local, fmt, sizeof(fmt),
				   &err) != AMP_OK)
			fuzz_fail(T, "a parsed DID does not format");
		if (strlen(fmt) != size || memcmp(fmt, in, size) != 0)
			fuzz_fail(T, "format(parse(s)) != s");
	}

	/* The NUL-terminated copy stops at the first NUL in the input. */
	size_t clen = strlen(in);
	if (amp_did_normalize(in, out, sizeof(out), &err) == AMP_OK) {
		if (strlen(out) != clen)
			fuzz_fail(T, "normalize changed the length");
		for (size_t i = 0; i < clen; i++) {
			char a = in[i], b = out[i];
			if (b >= 'A' && b <= 'Z')
				fuzz_fail(T, "normalize left an uppercase letter");
			if (a != b && !(a >= 'A' && a <= 'Z' && b == a - 'A' + 'a'))
				fuzz_fail(T, "normalize changed a non-letter");
		}
		if (amp_did_parse(out, clen, NULL, &err) != AMP_OK)
			fuzz_fail(T, "normalize output does not parse");
	} else if (parsed && clen == size) {
		fuzz_fail(T, "a canonical DID does not normalize");
	}
	if (parsed && clen == size && memcmp(out, in, size + 1) != 0)
		fuzz_fail(T, "normalize changed a canonical DID");
	return 0;
}
