/*
 * test-frame.c — src/amp/frame: the shared transport framing.  A table of
 * valid and invalid streams, the same streams fed one byte at a time and
 * split at random points, limits refused from the header alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* Build a stream of frames with the given payload lengths (payload byte i
 * of frame f is (f * 31 + i) & 0xff). */
static uint8_t *stream_of(const size_t *lens, size_t n, size_t *len_r)
{
	size_t total = 0;
	for (size_t f = 0; f < n; f++)
		total += 4 + lens[f];
	uint8_t *s = malloc(total + 1), *p = s;
	for (size_t f = 0; f < n; f++) {
		frame_header(lens[f], p);
		p += 4;
		for (size_t i = 0; i < lens[f]; i++)
			*p++ = (uint8_t)((f * 31 + i) & 0xff);
	}
	*len_r = total;
	return s;
}

/* Feed the stream in chunks of `chunk` bytes (0: random sizes); check
 * every frame comes out intact; return the number of frames. */
static size_t feed_all(const uint8_t *s, size_t len, size_t chunk, size_t max,
		       const size_t *lens)
{
	frame_reader r;
	frame_reader_init(&r, max);
	size_t pos = 0, frames = 0;
	while (pos < len) {
		size_t k = chunk != 0 ? chunk : 1 + (size_t)(rand() % 700);
		if (k > len - pos)
			k = len - pos;
		size_t off = 0;
		while (off < k) {
			size_t used;
			uint8_t *f = NULL;
			size_t flen;
			const char *err = NULL;
			frame_res res = frame_reader_feed(&r, s + pos + off, k - off,
							  &used, &f, &flen, &err);
			assert_int_not_equal(res, FRAME_ERROR);
			off += used;
			if (res == FRAME_COMPLETE) {
				assert_int_equal(flen, lens[frames]);
				for (size_t i = 0; i < flen; i++)
					assert_int_equal(f[i], (uint8_t)((frames * 31 + i) & 0xff));
				free(f);
				frames++;
			} else {
				assert_int_equal(used, k - (off - used));
			}
		}
		pos += k;
	}
	assert_true(frame_reader_idle(&r));
	frame_reader_deinit(&r);
	return frames;
}

static void test_streams(void **state)
{
	(void)state;
	static const size_t lens[] = { 1, 2, 3, 4, 5, 100, 4096, 65536, 1, 70000, 7 };
	size_t n = sizeof(lens) / sizeof(lens[0]), len;
	uint8_t *s = stream_of(lens, n, &len);
	assert_int_equal(feed_all(s, len, len, 70000, lens), n);   /* at once */
	assert_int_equal(feed_all(s, len, 1, 70000, lens), n);     /* byte by byte */
	assert_int_equal(feed_all(s, len, 3, 70000, lens), n);
	srand(7);
	for (int i = 0; i < 20; i++)
		assert_int_equal(feed_all(s, len, 0, 70000, lens), n); /* random splits */
	free(s);
}

static frame_res feed_once(frame_reader *r, const uint8_t *d, size_t n,
			   size_t *used, const char **err)
{
	uint8_t *f = NULL;
	size_t flen;
	frame_res res = frame_reader_feed(r, d, n, used, &f, &flen, err);
	free(f);
	return res;
}

static void test_refusals(void **state)
{
	(void)state;
	frame_reader r;
	size_t used;
	const char *err = NULL;
	static const uint8_t zero[] = { 0, 0, 0, 0, 'x' };
	frame_reader_init(&r, 100);
	assert_int_equal(feed_once(&r, zero, sizeof(zero), &used, &err), FRAME_ERROR);
	assert_string_equal(err, "frame has length 0");
	assert_int_equal(used, 4);
	/* once failed, always failed */
	assert_int_equal(feed_once(&r, zero + 4, 1, &used, &err), FRAME_ERROR);
	frame_reader_deinit(&r);

	/* Over the maximum: refused from the 4 header bytes, nothing more is
	 * read or allocated (a 4 GiB claim costs nothing). */
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff };
	frame_reader_init(&r, 100);
	assert_int_equal(feed_once(&r, huge, 2, &used, &err), FRAME_NEED_MORE);
	assert_false(frame_reader_idle(&r));
	assert_int_equal(feed_once(&r, huge + 2, 2, &used, &err), FRAME_ERROR);
	assert_string_equal(err, "frame is larger than the maximum");
	frame_reader_deinit(&r);

	uint8_t hdr[4];
	frame_reader_init(&r, 100);
	frame_header(100, hdr);
	assert_int_equal(feed_once(&r, hdr, 4, &used, &err), FRAME_NEED_MORE);
	frame_reader_deinit(&r); /* frees the partial frame */
	frame_reader_init(&r, 100);
	frame_header(101, hdr);
	assert_int_equal(feed_once(&r, hdr, 4, &used, &err), FRAME_ERROR);
	frame_reader_deinit(&r);

	/* The maximum changes between frames (e.g. after authentication). */
	size_t lens[] = { 50, 500 }, len;
	uint8_t *s = stream_of(lens, 2, &len);
	frame_reader_init(&r, 100);
	uint8_t *f;
	size_t flen;
	assert_int_equal(frame_reader_feed(&r, s, len, &used, &f, &flen, &err),
			 FRAME_COMPLETE);
	assert_int_equal(used, 54);
	free(f);
	assert_int_equal(feed_once(&r, s + used, len - used, &used, &err), FRAME_ERROR);
	frame_reader_deinit(&r);
	frame_reader_init(&r, 100);
	assert_int_equal(frame_reader_feed(&r, s, len, &used, &f, &flen, &err),
			 FRAME_COMPLETE);
	free(f);
	frame_reader_set_max(&r, 1000);
	size_t rest = len - used;
	assert_int_equal(frame_reader_feed(&r, s + used, rest, &used, &f, &flen, &err),
			 FRAME_COMPLETE);
	assert_int_equal(flen, 500);
	free(f);
	frame_reader_deinit(&r);
	free(s);

	/* limits of the limit */
	frame_reader_init(&r, 0);
	assert_int_equal(r.max, 1);
	frame_reader_set_max(&r, SIZE_MAX);
	assert_int_equal(r.max, FRAME_MAX_LIMIT);
	assert_int_equal(feed_once(&r, NULL, 0, &used, &err), FRAME_NEED_MORE);
	frame_reader_deinit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_streams),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
