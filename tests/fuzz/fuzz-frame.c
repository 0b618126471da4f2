/*
 * fuzz-frame.c — libFuzzer target for the transport framing
 * (src/amp/frame.c).  The first input byte picks the maximum frame size and
 * the chunk size; the rest is the byte stream.  Property: feeding the
 * stream in chunks yields exactly the frames (and the error) of a direct,
 * one-pass reference reading of the same bytes.
 */
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t max = 1 + (size_t)(data[0] & 0x0f) * 97;
	size_t chunk = 1 + (data[0] >> 4);
	const uint8_t *s = data + 1;
	size_t len = size - 1;

	/* Reference: walk the stream directly. */
	size_t ref_frames = 0, pos = 0;
	bool ref_error = false;
	while (len - pos >= 4) {
		uint32_t n = ((uint32_t)s[pos] << 24) | ((uint32_t)s[pos + 1] << 16) |
			     ((uint32_t)s[pos + 2] << 8) | s[pos + 3];
		if (n == 0 || n > max) {
			ref_error = true;
			break;
		}
		if (len - pos - 4 < n)
			break;
		ref_frames++;
		pos += 4 + n;
	}

	frame_reader r;
	frame_reader_init(&r, max);
	size_t frames = 0, off = 0, expect_at = 0;
	bool error = false;
	while (off < len && !error) {
		size_t k = chunk < len - off ? chunk : len - off;
		size_t done = 0;
		while (done < k) {
			size_t used, flen;
			uint8_t *f = NULL;
			const char *err = NULL;
			frame_res res = frame_reader_feed(&r, s + off + done, k - done,
							  &used, &f, &flen, &err);
			if (res == FRAME_ERROR) {
				if (err == NULL)
					abort();
				error = true;
				break;
			}
			done += used;
			if (res == FRAME_COMPLETE) {
				/* the frame must be the bytes the reference saw */
				uint32_t n = ((uint32_t)s[expect_at] << 24) |
					     ((uint32_t)s[expect_at + 1] << 16) |
					     ((uint32_t)s[expect_at + 2] << 8) |
					     s[expect_at + 3];
				if (flen != n || memcmp(f, s + expect_at + 4, n) != 0)
					abort();
				expect_at += 4 + n;
				frames++;
				free(f);
			} else if (used != k - (done - used)) {
				abort(); /* NEED_MORE must consume everything */
			}
		}
		off += k;
	}
	if (frames != ref_frames || error != ref_error)
		abort();
	frame_reader_deinit(&r);
	return 0;
}
