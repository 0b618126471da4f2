/*
 * fuzz-pb.c — the budgeted protobuf-c allocator and the Frame round trip
 * shared by fuzz-request and fuzz-response; see fuzz-pb.h.
 *
 * Each block carries a hidden header with its size so frees can be
 * counted; the header is not part of the budget (np_frame_unpack in
 * src/amp/nodeproto.c counts the n protobuf-c asks for, and so does
 * this one; fuzz-request checks that the two agree).
 */
#include "fuzz-pb.h"
#include "fuzz-common.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef union hdr {
	size_t n;
	max_align_t align;
} hdr;

static void *budget_alloc(void *data, size_t n)
{
	fuzz_pb_budget *b = data;
	b->calls++;
	/* as np_frame_unpack's budget does */
	if (b->limited) {
		if (n > b->left)
			return NULL;
		b->left -= n;
	}
	if (n > SIZE_MAX - sizeof(hdr))
		fuzz_fail("fuzz-pb", "protobuf-c asked for SIZE_MAX bytes");
	hdr *h = malloc(sizeof(hdr) + n);
	if (h == NULL)
		fuzz_fail("fuzz-pb", "out of memory");
	h->n = n;
	b->granted += n;
	b->live += n;
	b->blocks++;
	return h + 1;
}

static void budget_free(void *data, void *p)
{
	fuzz_pb_budget *b = data;
	if (p == NULL)
		return;
	hdr *h = (hdr *)p - 1;
	if (b->blocks == 0 || h->n > b->live)
		fuzz_fail("fuzz-pb", "a block freed that was not allocated");
	b->live -= h->n;
	b->blocks--;
	free(h);
}

void fuzz_pb_budget_init(fuzz_pb_budget *b, bool limited, size_t left)
{
	memset(b, 0, sizeof(*b));
	b->a.alloc = budget_alloc;
	b->a.free = budget_free;
	b->a.allocator_data = b;
	b->limited = limited;
	b->left = b->start = limited ? left : 0;
}

static void check_accounts(const char *target, const fuzz_pb_budget *b)
{
	if (b->limited &&
	    (b->granted > b->start || b->granted + b->left != b->start))
		fuzz_fail(target, "the decode budget does not add up");
}

void fuzz_pb_budget_check_empty(const char *target, const fuzz_pb_budget *b)
{
	check_accounts(target, b);
	if (b->live != 0 || b->blocks != 0)
		fuzz_fail(target, "protobuf-c left blocks allocated");
}

Amp__V1__Frame *fuzz_pb_unpack(const char *target, fuzz_pb_budget *b,
			       const uint8_t *data, size_t len)
{
	Amp__V1__Frame *f = amp__v1__frame__unpack(&b->a, len, data);
	check_accounts(target, b);
	if (f == NULL)
		fuzz_pb_budget_check_empty(target, b);
	return f;
}

void fuzz_pb_free(const char *target, fuzz_pb_budget *b, Amp__V1__Frame *f)
{
	if (f != NULL)
		amp__v1__frame__free_unpacked(f, &b->a);
	fuzz_pb_budget_check_empty(target, b);
}

void fuzz_pb_check_unknown(const char *target, const ProtobufCMessage *m)
{
	if (m == NULL)
		fuzz_fail(target, "a set message field is NULL");
	if (m->n_unknown_fields > 0 && m->unknown_fields == NULL)
		fuzz_fail(target, "unknown fields counted but absent");
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
		volatile uint8_t sink = 0;
		/* touch the first and last byte so ASan checks the length */
		if (u->len > 0)
			sink ^= u->data[0] ^ u->data[u->len - 1];
		(void)sink;
	}
}

/* protobuf-c (1.4.1, still in 1.5.2) refuses field number 0 only when
 * the tag is one byte: "80 00" is kept as an unknown field numbered 0,
 * which pack writes as "00" and unpack then refuses.  Harmless to us (the
 * node ignores unknown fields; envelopes are kept as received), but such
 * a message has no round trip: find one anywhere in m. */
static bool has_field_zero(const ProtobufCMessage *m)
{
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *base = (const char *)m;
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + fd->quantifier_offset);
			ProtobufCMessage *const *a =
				*(ProtobufCMessage *const *const *)(base + fd->offset);
			for (size_t j = 0; j < n; j++)
				if (has_field_zero(a[j]))
					return true;
		} else {
			const ProtobufCMessage *sub =
				*(const ProtobufCMessage *const *)(base + fd->offset);
			if (sub != NULL && has_field_zero(sub))
				return true;
		}
	}
	return false;
}

static uint8_t *pack(const char *target, const Amp__V1__Frame *f,
		     size_t *len_r)
{
	size_t n = amp__v1__frame__get_packed_size(f);
	uint8_t *buf = malloc(n > 0 ? n : 1);
	if (buf == NULL)
		fuzz_fail(target, "out of memory");
	if (amp__v1__frame__pack(f, buf) != n)
		fuzz_fail(target, "pack wrote other than get_packed_size bytes");
	*len_r = n;
	return buf;
}

/* pack(f) decodes and packs to the same bytes. */
static void repack(const char *target, const Amp__V1__Frame *f, bool limited)
{
	size_t n1, n2;
	uint8_t *p1 = pack(target, f, &n1);
	fuzz_pb_budget b;
	fuzz_pb_budget_init(&b, limited, n1 + FUZZ_PB_SLACK);
	Amp__V1__Frame *g = fuzz_pb_unpack(target, &b, p1, n1);
	if (g == NULL && has_field_zero(&f->base)) {
		free(p1);
		return;
	}
	if (g == NULL)
		fuzz_fail(target, "a packed frame does not decode again");
	if (g->request_id != f->request_id || g->body_case != f->body_case)
		fuzz_fail(target, "the round trip changed request_id or the body");
	uint8_t *p2 = pack(target, g, &n2);
	if (n2 != n1 || memcmp(p1, p2, n1) != 0)
		fuzz_fail(target, "pack(unpack(pack(f))) != pack(f)");
	free(p2);
	fuzz_pb_free(target, &b, g);
	free(p1);
}

void fuzz_pb_round_trip(const char *target, const Amp__V1__Frame *f,
			const uint8_t *data, size_t len, size_t granted,
			bool limited)
{
	repack(target, f, limited);

	/* A budget one byte (or more) short must fail, and cleanly: the
	 * allocations come in the same order, so one of them is refused. */
	if (granted == 0)
		return;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ data[i]) * 16777619u;
	fuzz_pb_budget b;
	fuzz_pb_budget_init(&b, true, granted - 1 - h % granted);
	if (fuzz_pb_unpack(target, &b, data, len) != NULL)
		fuzz_fail(target, "decoded under a smaller budget than it needs");
	fuzz_pb_budget_check_empty(target, &b);
}
