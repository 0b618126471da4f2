/*
 * fuzz-mail-header.c — libFuzzer target for src/mime (TESTING.md F6): the
 * RFC 5322 header iterator and unfolding (mail-header.c) and the MIME
 * structure parser (mime.c) over the same input.
 *
 * Input: byte 0 picks the MIME limits (bits 0-1 max_depth 1/2/4/100,
 * bits 2-3 max_parts 1/3/20/10000, bits 4-5 max_header 8/64/1024/100k,
 * bits 6-7 max_boundary 1/8/70/2048); the rest is the message.
 *
 * Properties, checked without the modules' help:
 *  - header: a reference reading written here (cut into lines first, then
 *    classified) gives the same fields and the same body offset; fields
 *    are contiguous from 0 and within the message, body_off <= len; a
 *    field's name is ftext then blanks then ':'; mail_field_is finds it
 *    under another case; the unfolded value has no LF, at most f->len
 *    bytes, and a smaller buffer gets a prefix of it;
 *  - MIME: either MIME_OK and a tree whose parts nest (document order,
 *    parents first, depth = parent's + 1 within max_depth, at most
 *    max_parts, offsets ordered and inside the parent's body, siblings in
 *    order), headers and bodies start at line starts, each child of a
 *    multipart follows a line "--" boundary of its parent, lower-case type
 *    strings; or an error with a reason and no tree.  The same input
 *    parsed twice gives the same tree.
 */
#include "mail-header.h"
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-mail-header: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

/* ------------------------------------------------------------ reference */

typedef struct ref_field {
	size_t off, len, name_len;
	bool malformed;
} ref_field;

static bool blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The header section as mail-header.h describes it, read line by line;
 * returns the number of fields (all kept in out, which has room for
 * len + 1), *body_r the body offset. */
static size_t reference(const uint8_t *m, size_t len, ref_field *out,
			size_t *body_r, bool *nosep_r)
{
	size_t n = 0, pos = 0;
	for (;;) {
		if (pos >= len) {
			*body_r = len;
			*nosep_r = true;
			return n;
		}
		size_t e = pos; /* the line is [pos, e) without its end */
		while (e < len && m[e] != '\n')
			e++;
		size_t next = e < len ? e + 1 : len;
		size_t ce = e;
		if (ce > pos && m[ce - 1] == '\r')
			ce--;
		if (ce == pos) {
			*body_r = next;
			*nosep_r = false;
			return n;
		}
		if (blank(m[pos]) && n > 0) {
			out[n - 1].len = next - out[n - 1].off;
			pos = next;
			continue;
		}
		ref_field f = { pos, next - pos, 0, false };
		if (blank(m[pos])) {
			f.malformed = true;
		} else {
			size_t i = pos;
			while (i < ce && m[i] > 32 && m[i] < 127 && m[i] != ':')
				i++;
			size_t nl = i - pos;
			while (i < ce && blank(m[i]))
				i++;
			if (nl > 0 && i < ce && m[i] == ':')
				f.name_len = nl;
			else if (ce - pos >= 5 && memcmp(m + pos, "From ", 5) == 0)
				f.malformed = true;
			else {
				*body_r = pos;
				*nosep_r = true;
				return n;
			}
		}
		out[n++] = f;
		pos = next;
	}
}

static void check_header(const uint8_t *m, size_t len)
{
	ref_field *ref = malloc((len + 1) * sizeof(*ref));
	CHECK(ref != NULL);
	size_t rbody;
	bool rnosep;
	size_t rn = reference(m, len, ref, &rbody, &rnosep);

	char *val = malloc(len + 1), small[7];
	CHECK(val != NULL);
	mail_header_iter it;
	mail_field f;
	size_t n = 0, expect = 0;
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1) {
		CHECK(n < rn);
		CHECK(f.off == expect && f.off == ref[n].off);
		CHECK(f.len == ref[n].len && f.len > 0);
		CHECK(f.off + f.len <= len);
		CHECK(f.malformed == ref[n].malformed);
		CHECK(f.name_len == ref[n].name_len);
		CHECK(f.nul == (memchr(m + f.off, 0, f.len) != NULL));
		if (f.malformed) {
			CHECK(f.value_off == f.off && f.name_len == 0);
		} else {
			CHECK(f.name_len > 0 && f.value_off > f.off + f.name_len);
			CHECK(f.value_off <= f.off + f.len);
			CHECK(m[f.value_off - 1] == ':');
			for (size_t i = f.off + f.name_len; i < f.value_off - 1; i++)
				CHECK(blank(m[i]));
			/* found under another case */
			char name[64];
			if (f.name_len < sizeof(name)) {
				for (size_t i = 0; i < f.name_len; i++) {
					char c = (char)m[f.off + i];
					if (c >= 'a' && c <= 'z')
						c = (char)(c - 32);
					else if (c >= 'A' && c <= 'Z')
						c = (char)(c + 32);
					name[i] = c;
				}
				name[f.name_len] = '\0';
				CHECK(mail_field_is(m, &f, name));
				name[f.name_len - 1] = '\0';
				CHECK(!mail_field_is(m, &f, name));
			}
		}
		size_t vl = mail_field_unfold(m, &f, val, len + 1);
		CHECK(vl <= f.len);
		CHECK(memchr(val, '\n', vl) == NULL);
		CHECK(val[vl] == '\0');
		if (vl > 0) {
			CHECK(!blank((uint8_t)val[0]) && !blank((uint8_t)val[vl - 1]));
		}
		size_t sl = mail_field_unfold(m, &f, small, sizeof(small));
		CHECK(sl == vl);
		size_t kept = vl < sizeof(small) - 1 ? vl : sizeof(small) - 1;
		CHECK(memcmp(small, val, kept) == 0 && small[kept] == '\0');
		expect = f.off + f.len;
		n++;
	}
	CHECK(n == rn);
	CHECK(it.done && mail_header_next(&it, &f) == 0);
	CHECK(it.body_off == rbody && it.no_separator == rnosep);
	CHECK(it.body_off <= len && it.body_off >= expect);
	CHECK(it.fields == n);
	free(val);
	free(ref);
}

/* ------------------------------------------------------------ MIME */

static bool line_start(const uint8_t *m, size_t len, size_t off)
{
	return off == 0 || off == len || m[off - 1] == '\n';
}

static bool lower_token(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return false;
	return true;
}

static void check_tree(const uint8_t *m, size_t len, const mime_tree *t,
		       const mime_limits *lim)
{
	CHECK(t->n >= 1 && t->n <= lim->max_parts);
	for (size_t i = 0; i < t->n; i++) {
		const mime_part *p = &t->parts[i];
		CHECK(p->hdr_off <= p->body_off && p->body_off <= p->end &&
		      p->end <= len);
		CHECK(p->depth <= lim->max_depth);
		CHECK(line_start(m, len, p->hdr_off));
		CHECK(line_start(m, len, p->body_off));
		CHECK(p->type[0] != '\0' && p->subtype[0] != '\0');
		CHECK(lower_token(p->type) && lower_token(p->subtype) &&
		      lower_token(p->charset) && lower_token(p->cte_name) &&
		      lower_token(p->disposition));
		CHECK(strlen(p->filename) <= MIME_FILENAME_MAX);
		CHECK(strlen(p->boundary) <= lim->max_boundary);
		if (i == 0) {
			CHECK(p->parent == MIME_NONE && p->depth == 0 &&
			      p->hdr_off == 0 && p->end == len);
		} else {
			CHECK(p->parent < i);
			const mime_part *pp = &t->parts[p->parent];
			CHECK(p->depth == pp->depth + 1);
			CHECK(p->hdr_off >= pp->body_off && p->end <= pp->end);
			if (strcmp(pp->type, "multipart") == 0) {
				/* the line before the child is a delimiter */
				size_t e = p->hdr_off;
				if (e > 0 && m[e - 1] == '\n')
					e--;
				size_t s = e;
				while (s > 0 && m[s - 1] != '\n')
					s--;
				size_t bl = strlen(pp->boundary);
				CHECK(bl > 0 && e - s >= 2 + bl);
				CHECK(m[s] == '-' && m[s + 1] == '-' &&
				      memcmp(m + s + 2, pp->boundary, bl) == 0);
			} else {
				/* message/rfc822: the body is the message */
				CHECK(strcmp(pp->type, "message") == 0);
				CHECK(p->hdr_off == pp->body_off && p->end == pp->end);
				CHECK(pp->n_children == 1);
			}
		}
		size_t nc = 0, prev = p->body_off;
		for (uint32_t c = p->first_child; c != MIME_NONE;
		     c = t->parts[c].next_sibling) {
			CHECK(c > i && c < t->n && t->parts[c].parent == i);
			CHECK(t->parts[c].hdr_off >= prev);
			prev = t->parts[c].end;
			nc++;
		}
		CHECK(nc == p->n_children);
		if (p->n_children > 0)
			CHECK((p->flags & (MIME_PART_NO_BOUNDARY |
					   MIME_PART_BOUNDARY_COLLISION |
					   MIME_PART_ENCODED_COMPOSITE)) == 0);
	}
}

static bool same_tree(const mime_tree *a, const mime_tree *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const mime_part *x = &a->parts[i], *y = &b->parts[i];
		if (x->hdr_off != y->hdr_off || x->body_off != y->body_off ||
		    x->end != y->end || x->parent != y->parent ||
		    x->flags != y->flags || x->cte != y->cte ||
		    strcmp(x->type, y->type) != 0 ||
		    strcmp(x->subtype, y->subtype) != 0 ||
		    strcmp(x->boundary, y->boundary) != 0 ||
		    strcmp(x->charset, y->charset) != 0 ||
		    strcmp(x->filename, y->filename) != 0)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t depths[4] = { 1, 2, 4, 100 };
	static const uint32_t parts[4] = { 1, 3, 20, 10000 };
	static const size_t headers[4] = { 8, 64, 1024, 102400 };
	static const size_t bounds[4] = { 1, 8, 70, 2048 };
	if (size < 1)
		return 0;
	uint8_t o = data[0];
	const uint8_t *m = data + 1;
	size_t len = size - 1;

	check_header(m, len);

	mime_limits lim = { depths[o & 3], parts[(o >> 2) & 3],
			    headers[(o >> 4) & 3], bounds[o >> 6] };
	mime_tree *t = NULL, *t2 = NULL;
	const char *err = NULL;
	mime_err e = mime_parse(m, len, &lim, &t, &err);
	if (e == MIME_OK) {
		CHECK(t != NULL);
		check_tree(m, len, t, &lim);
		CHECK(mime_parse(m, len, &lim, &t2, NULL) == MIME_OK);
		CHECK(same_tree(t, t2));
		mime_tree_destroy(&t2);
	} else {
		CHECK(t == NULL && err != NULL && err[0] != '\0');
		CHECK(e == MIME_ERR_DEPTH || e == MIME_ERR_PARTS ||
		      e == MIME_ERR_HEADER || e == MIME_ERR_BOUNDARY);
	}
	mime_tree_destroy(&t);
	CHECK(t == NULL);
	return 0;
}
