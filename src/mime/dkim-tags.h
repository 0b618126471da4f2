/*
 * dkim-tags.h — RFC 6376 §3.2 tag=value lists, as found in DKIM-Signature
 * fields, DKIM key records, the ARC-* fields and DMARC records.  Pure: no
 * I/O, no allocation, no logging; the parsed list is offsets into the
 * caller's text.
 *
 * Grammar (RFC 6376 §3.2, FWS from RFC 5322 with a bare LF accepted as a
 * line end, like mail-header.h):
 *     tag-list  = tag-spec *( ";" tag-spec ) [ ";" ]
 *     tag-spec  = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
 *     tag-name  = ALPHA *( ALPHA / DIGIT / "_" )
 *     tag-value = [ tval *( 1*(WSP / FWS) tval ) ]
 *     tval      = 1*( %x21-3A / %x3C-7E )           ; VALCHAR
 * Tag names are case-sensitive ("V=1" is a tag "V", not "v").  The value
 * is kept as written (inner FWS included, FWS around it excluded);
 * dkim_tag_value_nows gives it with every blank and line end removed, the
 * form base64 tags (b=, bh=, p=) are decoded from.
 *
 * Refused, with a static reason: an empty list; an empty tag-spec (";;",
 * or ";" first); a bad tag name; a missing "="; a byte in a value other
 * than VALCHAR, SP, HTAB or a line end followed by a blank (so no NUL, no
 * 8-bit, no bare CR, no line end not followed by a blank); a tag that
 * appears twice (§3.2 "Tags with duplicate names MUST NOT occur"); more
 * than DKIM_TAGS_MAX tags; a name over DKIM_TAG_NAME_MAX bytes, a value
 * over DKIM_TAG_VALUE_MAX bytes; a list over DKIM_TAGS_TEXT_MAX bytes.
 * Lenient: blanks (FWS) after the final ";" (common in DNS records).
 */
#ifndef AMP_DKIM_TAGS_H
#define AMP_DKIM_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DKIM_TAGS_MAX 64              /* tags in one list */
#define DKIM_TAG_NAME_MAX 32          /* bytes of a tag name */
#define DKIM_TAG_VALUE_MAX 8192       /* bytes of a value, FWS included */
#define DKIM_TAGS_TEXT_MAX (64 * 1024) /* bytes of the whole list */

typedef struct dkim_tag {
	size_t name_off, name_len;   /* the name, in the text */
	size_t value_off, value_len; /* the value, FWS around it excluded */
	size_t spec_end;             /* the ';' ending the tag-spec, or the
					end of the text */
} dkim_tag;

typedef struct dkim_tags {
	const uint8_t *text; /* borrowed: the caller keeps it alive */
	size_t len;
	size_t n;
	dkim_tag tag[DKIM_TAGS_MAX];
} dkim_tags;

/* Parse text[0..len) into *tags_r (which borrows text).  Returns 0, or -1
 * with *error_r (static) and tags_r->n == 0. */
int dkim_tags_parse(const uint8_t *text, size_t len, dkim_tags *tags_r,
		    const char **error_r) __attribute__((warn_unused_result));

/* The tag named name (case-sensitive), or NULL. */
const dkim_tag *dkim_tags_get(const dkim_tags *tags, const char *name)
	__attribute__((warn_unused_result));

/* The tag's value is exactly s (case-sensitive, FWS inside counts). */
bool dkim_tag_value_is(const dkim_tags *tags, const dkim_tag *tag,
		       const char *s) __attribute__((warn_unused_result));

/* The value with every SP, HTAB, CR and LF removed, written to out
 * NUL-terminated and truncated to out_size - 1 bytes (out may be NULL
 * when out_size is 0).  Returns the untruncated length. */
size_t dkim_tag_value_nows(const dkim_tags *tags, const dkim_tag *tag,
			   char *out, size_t out_size);

/* Split a value into a colon-separated list (h=, q=, the key record's h=,
 * s=, t=): calls fn for each element with blanks and FWS around it
 * removed.  An element may be empty (the caller decides).  Stops and
 * returns fn's result when it is not 0; else 0. */
typedef int dkim_tag_list_fn(void *ctx, const uint8_t *p, size_t n);
int dkim_tag_value_split(const dkim_tags *tags, const dkim_tag *tag,
			 dkim_tag_list_fn *fn, void *ctx)
	__attribute__((warn_unused_result));

#endif
