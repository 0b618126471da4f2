/*
 * frame.h — the framing both AMP transports share (docs/ARCHITECTURE.md,
 * "The node"): each frame is u32 big-endian length ‖ payload, the payload a
 * protobuf message.  Over TLS a connection carries many frames; over QUIC
 * each stream carries one request frame and one response frame.
 *
 * frame_reader is a pure incremental parser: bytes in, whole frames out.
 * The length is checked against the reader's maximum before any payload
 * byte is read or any memory is allocated for it; the maximum can change
 * between frames (tighter before authentication).  The payload buffer
 * grows with the bytes received (never beyond the declared length), so
 * memory follows what the peer actually sent, not what it announced.
 * No I/O.
 */
#ifndef AMP_FRAME_H
#define AMP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_BYTES 4u
/* Largest frame any reader may accept: a maximal envelope (48 MiB) and
 * room for the request around it. */
#define FRAME_MAX_LIMIT (48u * 1024u * 1024u + 64u * 1024u)

typedef struct frame_reader {
	size_t max;                       /* current maximum payload */
	uint8_t hdr[FRAME_HEADER_BYTES];
	size_t hdr_have;
	uint8_t *buf;                     /* payload being read, or NULL */
	size_t need, have, cap;           /* declared, received, allocated */
	bool failed;                      /* after an error: refuse all */
} frame_reader;

typedef enum frame_res {
	FRAME_ERROR = -1,     /* *error_r says why; the stream is unusable */
	FRAME_NEED_MORE = 0,  /* all input consumed, no complete frame yet */
	FRAME_COMPLETE = 1,   /* *frame_r holds one frame (caller frees) */
} frame_res;

/* max: 1..FRAME_MAX_LIMIT. */
void frame_reader_init(frame_reader *r, size_t max);
void frame_reader_deinit(frame_reader *r);
/* Change the maximum for frames whose header has not been read yet. */
void frame_reader_set_max(frame_reader *r, size_t max);

/* Feed len bytes.  *consumed_r says how many were used: on
 * FRAME_COMPLETE possibly fewer than len (feed the rest again), on
 * FRAME_NEED_MORE all of them.  A complete frame's payload is returned in
 * *frame_r (malloc'ed, free with free()) and its length in *frame_len_r.
 * Errors: a zero length, or a length over the maximum (refused from the
 * header alone).  Also: FRAME_ERROR when out of memory. */
frame_res frame_reader_feed(frame_reader *r, const uint8_t *data, size_t len,
			    size_t *consumed_r, uint8_t **frame_r,
			    size_t *frame_len_r, const char **error_r)
	__attribute__((warn_unused_result));

/* True when no partial frame is buffered (a clean place to close). */
bool frame_reader_idle(const frame_reader *r);

/* Write the 4-byte header for a payload of len bytes (1..FRAME_MAX_LIMIT). */
void frame_header(size_t len, uint8_t out[FRAME_HEADER_BYTES]);

#endif
