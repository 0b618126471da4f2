/*
 * fuzz-pb.h — what the node-protocol targets (fuzz-request, fuzz-response)
 * share: a protobuf-c allocator that keeps the node's decode budget and
 * counts what it hands out, a Frame decoder under it, and the round trip.
 *
 * The budget is the one of server_conn_request (src/daemon/server.c):
 * the allocator refuses a block larger than what is left, and what it
 * grants is never given back (a free does not refill), so one decode
 * allocates at most input length + FUZZ_PB_SLACK bytes in total.  The
 * copy here must stay the same as server.c's pb_alloc; the accounting
 * (granted, live) is what the targets check: granted + left == start,
 * and every block freed once the message is.
 */
#ifndef AMP_FUZZ_PB_H
#define AMP_FUZZ_PB_H

#include "amp.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* server.c DECODE_SLACK */
#define FUZZ_PB_SLACK (1024u * 1024u)

typedef struct fuzz_pb_budget {
	ProtobufCAllocator a;
	bool limited;        /* false: grant everything (the client's NULL) */
	size_t left;         /* server.c pb_budget.left */
	size_t start;        /* left when made */
	size_t granted;      /* bytes handed out, in total */
	size_t live;         /* bytes handed out and not yet freed */
	size_t blocks;       /* blocks not yet freed */
	size_t calls;        /* allocation requests, refused ones too */
} fuzz_pb_budget;

/* limited: the node's budget of `left` bytes; else unlimited. */
void fuzz_pb_budget_init(fuzz_pb_budget *b, bool limited, size_t left);

/* Abort (naming target) unless the accounting holds and nothing is
 * live. */
void fuzz_pb_budget_check_empty(const char *target, const fuzz_pb_budget *b);

/* Decode a Frame under b; checks the accounting after a failure. */
Amp__V1__Frame *fuzz_pb_unpack(const char *target, fuzz_pb_budget *b,
			       const uint8_t *data, size_t len);

/* Free f (may be NULL) and check that b is empty. */
void fuzz_pb_free(const char *target, fuzz_pb_budget *b, Amp__V1__Frame *f);

/* The properties every decoded frame must have:
 *  - packing f gives exactly get_packed_size bytes; those decode again
 *    (under a budget of their length + slack) and pack to the same bytes
 *    (unless f holds an unknown field numbered 0: see fuzz-pb.c);
 *  - the same input under a budget smaller than what the first decode
 *    was granted (cut point chosen from the input) fails cleanly: NULL,
 *    nothing live.
 * f was decoded from data under a budget that granted `granted`. */
void fuzz_pb_round_trip(const char *target, const Amp__V1__Frame *f,
			const uint8_t *data, size_t len, size_t granted,
			bool limited);

/* m must be there (a set body case or message field carries one;
 * handlers rely on the pointer) and its unknown fields readable. */
void fuzz_pb_check_unknown(const char *target, const ProtobufCMessage *m);

#endif
