/*
 * fuzz-imap-parse.c — TESTING.md F10: the IMAP command parser
 * (src/imap/imap-parse.c) fed arbitrary bytes in arbitrary chunks.
 *
 * Input layout: byte 0 picks the limits (small or default) and byte 1
 * seeds the chunk sizes; the rest is what the client sends.  After an
 * IDLE command the parser is put in IDLE mode, after a one-argument
 * AUTHENTICATE in line mode, as the driver will.
 *
 * Invariants checked (abort on violation):
 *  - feed never takes more than it was given, takes everything when it
 *    asks for more, and takes at least one byte per event;
 *  - after FATAL nothing more is taken;
 *  - a command's tree respects the limits: nodes <= args_max, depth <=
 *    depth_max, every string NUL-terminated, no NUL inside, bytes kept
 *    <= cmd_max, literals <= literal_max, lists count their children;
 *  - the events (a hash of the whole transcript) are the same fed in one
 *    piece and in the chunks.
 */
#include "imap-parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct walk {
	unsigned nodes;
	size_t bytes;
} walk;

static uint64_t mix(uint64_t h, const void *d, size_t n)
{
	const uint8_t *b = d;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211u;
	return h;
}

static uint64_t tree(const imap_parser_settings *set, const imap_arg *a,
		     unsigned depth, walk *w, uint64_t h)
{
	if (depth > set->depth_max)
		abort();
	for (; a != NULL; a = a->next) {
		if (++w->nodes > set->args_max)
			abort();
		h = mix(h, &a->type, sizeof(a->type));
		if (a->type == IMAP_ARG_LIST) {
			unsigned n = 0;
			for (const imap_arg *c = a->child; c != NULL; c = c->next)
				n++;
			if (n != a->count)
				abort();
			h = mix(h, "(", 1);
			h = tree(set, a->child, depth + 1, w, h);
			h = mix(h, ")", 1);
			continue;
		}
		if (a->str == NULL || a->str[a->len] != '\0' || memchr(a->str, 0, a->len) != NULL)
			abort();
		if (a->type == IMAP_ARG_LITERAL && a->len > set->literal_max)
			abort();
		w->bytes += a->len + 1;
		h = mix(h, a->str, a->len + 1);
	}
	return h;
}

static uint64_t run(const imap_parser_settings *set, const uint8_t *data,
		    size_t size, uint8_t seed, bool chunked)
{
	imap_parser *p;
	if (imap_parser_new(set, &p) != 0)
		abort();
	imap_parser_settings lim = *set;
	uint64_t h = 14695981039346656037u;
	unsigned step = seed | 1u;
	size_t off = 0;
	while (off < size) {
		size_t piece = size - off;
		if (chunked) {
			piece = 1 + (step % 61);
			step = step * 1103515245u + 12345u;
			if (piece > size - off)
				piece = size - off;
		}
		size_t used = 0;
		imap_parse_status r = imap_parser_feed(p, data + off, piece, &used);
		if (used > piece || (r == IMAP_PARSE_MORE && used != piece) ||
		    (r != IMAP_PARSE_MORE && used == 0))
			abort();
		off += used;
		if (r == IMAP_PARSE_MORE)
			continue;
		h = mix(h, &r, sizeof(r));
		if (r == IMAP_PARSE_COMMAND) {
			const imap_command *c = imap_parser_command(p);
			if (c->tag == NULL || c->tag_len == 0 || strlen(c->tag) != c->tag_len ||
			    c->cmd >= IMAP_CMD_COUNT || c->name == NULL)
				abort();
			h = mix(h, c->tag, c->tag_len);
			h = mix(h, c->name, strlen(c->name));
			h = mix(h, &c->uid, sizeof(c->uid));
			walk w = { 0, 0 };
			h = tree(&lim, c->args, 0, &w, h);
			if (w.bytes > lim.cmd_max)
				abort();
			if (c->cmd == IMAP_CMD_IDLE)
				imap_parser_idle(p);
			else if (c->cmd == IMAP_CMD_AUTHENTICATE && c->argc == 1)
				imap_parser_expect_line(p);
		} else if (r == IMAP_PARSE_LINE) {
			size_t n;
			const char *l = imap_parser_line(p, &n);
			if (n > lim.line_max || memchr(l, 0, n) != NULL)
				abort();
			h = mix(h, l, n);
		} else if (r == IMAP_PARSE_ERROR || r == IMAP_PARSE_FATAL) {
			const char *e = imap_parser_error(p);
			const char *t = imap_parser_error_tag(p);
			if (e[0] == '\0')
				abort();
			h = mix(h, e, strlen(e));
			if (t != NULL)
				h = mix(h, t, strlen(t));
			if (r == IMAP_PARSE_FATAL) {
				if (imap_parser_feed(p, data, size, &used) != IMAP_PARSE_FATAL ||
				    used != 0)
					abort();
				break;
			}
		}
	}
	imap_parser_free(&p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], seed = data[1];
	data += 2;
	size -= 2;
	imap_parser_settings set = { 0 };
	if (mode & 1) {
		set.line_max = 64 + (mode >> 1);
		set.literal_max = 1 + (mode >> 2);
		set.cmd_max = 256 + mode;
		set.depth_max = 1 + (mode >> 5);
		set.args_max = 4 + (mode >> 3);
	}
	/* what the parser really applies: its defaults */
	set.line_max = set.line_max ? set.line_max : IMAP_LINE_MAX_DEFAULT;
	set.cmd_max = set.cmd_max ? set.cmd_max : IMAP_CMD_MAX_DEFAULT;
	set.literal_max = set.literal_max ? set.literal_max : IMAP_LITERAL_MAX_DEFAULT;
	set.depth_max = set.depth_max ? set.depth_max : IMAP_DEPTH_MAX_DEFAULT;
	set.args_max = set.args_max ? set.args_max : IMAP_ARGS_MAX_DEFAULT;
	if (run(&set, data, size, seed, false) != run(&set, data, size, seed, true))
		abort();
	return 0;
}
