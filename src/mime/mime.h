/*
 * mime.h — the MIME structure of a message in memory (RFC 2045, RFC 2046),
 * bounded.  Pure: no I/O, no logging; it allocates the tree (within
 * ceilings set by the limits) and aborts when memory runs out (STYLE.md).
 *
 * mime_parse reads the whole message once, line by line, and gives a tree
 * of parts in document order: parts[0] is the message itself, a part's
 * parent comes before it.  For each part: where its header and body are,
 * the Content-Type (type and subtype lower-cased, boundary, charset), the
 * Content-Transfer-Encoding, the Content-Disposition and the file name.
 * Bodies are not decoded (mime-decode.h does that).
 *
 * Rules (chosen, and kept deterministic):
 *  - Header sections are read with mail-header.h (Postfix's rules: a line
 *    that is neither a field nor a continuation ends the header and starts
 *    the body).  A field whose first line is a delimiter of an open
 *    multipart (a boundary may contain ':') ends the header there too.
 *  - The first Content-Type, Content-Transfer-Encoding and
 *    Content-Disposition field of a part is the one used; later ones are
 *    ignored (MIME_PART_DUPLICATE).
 *  - No or an unparsable Content-Type: text/plain (RFC 2045 §5.2), or
 *    message/rfc822 inside multipart/digest (RFC 2046 §5.1.5); an
 *    unparsable one is flagged MIME_PART_BAD_CTYPE.
 *  - Parameters: attribute=token or quoted-string, comments skipped; a
 *    parameter that does not parse ends the list (what came before is
 *    kept).  RFC 2231: "name*=charset'lang'%XX" is decoded (us-ascii,
 *    utf-8: as is when valid UTF-8; iso-8859-1: to UTF-8; other charsets:
 *    the parameter is ignored), continuations "name*0", "name*1*", ... are
 *    joined in order of appearance while the numbers follow 0, 1, 2, ...
 *    (a gap or a repeat stops the join).  An RFC 2231 value beats a plain
 *    one of the same name.
 *  - Delimiter lines: "--" boundary, anything may follow (a prefix match,
 *    as Postfix and Dovecot do; RFC 2046 allows only blanks), "--"
 *    boundary "--" closes the multipart.  The line end before a delimiter
 *    belongs to the delimiter: a part's body ends before it.
 *  - Boundary collisions: a multipart whose boundary equals, or is a
 *    prefix of, or has as a prefix, the boundary of a multipart it is
 *    inside (still open) is not split into parts: it stays a leaf, flagged
 *    MIME_PART_BOUNDARY_COLLISION, and the delimiter lines inside it belong
 *    to the outer multipart (RFC 2046 §5.1.1: a boundary must not occur in
 *    the encapsulated parts).  So no line can ever match two open
 *    boundaries, and which multipart a line delimits never depends on the
 *    order of the search.
 *  - A delimiter of an outer multipart closes every part inside it (inner
 *    multiparts without their close delimiter get MIME_PART_UNTERMINATED);
 *    so does the end of the message.  Lines after a close delimiter are
 *    the multipart's epilogue.
 *  - A multipart type without a boundary (or an empty one): a leaf, flagged
 *    MIME_PART_NO_BOUNDARY.  A composite type (multipart, message/rfc822,
 *    message/global) whose Content-Transfer-Encoding is not 7bit, 8bit or
 *    binary is a leaf too, flagged MIME_PART_ENCODED_COMPOSITE.
 *  - message/rfc822 and message/global: the body is a message, parsed as
 *    the part's only child (one nesting level deeper).
 *
 * Cost: every line is looked at once; a line starting "--" is compared
 * with the open boundaries (at most max_depth of them), so the worst case
 * is O(max_depth * n) and the usual one O(n).  Memory: the tree
 * (sizeof(mime_part) a part) and the strings of each part, each within
 * its own cap below.
 */
#ifndef AMP_MIME_H
#define AMP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (mime_limits; 0 in a field means its default). */
#define MIME_DEPTH_MAX_DEFAULT 100u      /* Postfix mime_nesting_limit */
#define MIME_PARTS_MAX_DEFAULT 10000u
#define MIME_HEADER_MAX_DEFAULT 102400u  /* a part's header section, bytes;
					    Postfix header_size_limit */
#define MIME_BOUNDARY_MAX_DEFAULT 2048u  /* Postfix
					    mime_boundary_length_limit */
/* Hard ceilings for the limits themselves. */
#define MIME_DEPTH_MAX_CEILING 100000u
#define MIME_PARTS_MAX_CEILING 10000000u
#define MIME_BOUNDARY_MAX_CEILING 65536u

/* Caps of the strings kept for a part (longer values: see mime_part). */
#define MIME_TOKEN_MAX 127u     /* type, subtype (RFC 6838 §4.2) */
#define MIME_CHARSET_MAX 64u    /* charset, transfer encoding, disposition */
#define MIME_FILENAME_MAX 1024u /* file name, after RFC 2231 decoding */

#define MIME_NONE UINT32_MAX

typedef struct mime_limits {
	uint32_t max_depth;    /* deepest part: the message is depth 0 */
	uint32_t max_parts;    /* parts in all, the message included */
	size_t max_header;     /* bytes of one part's header fields */
	size_t max_boundary;   /* bytes of a boundary parameter */
} mime_limits;

typedef enum mime_err {
	MIME_OK = 0,
	MIME_ERR_DEPTH,     /* nested deeper than max_depth: 554 5.6.0 */
	MIME_ERR_PARTS,     /* more than max_parts parts: 554 5.6.0 */
	MIME_ERR_HEADER,    /* a header section over max_header: 552 5.3.4 */
	MIME_ERR_BOUNDARY,  /* a boundary over max_boundary: 554 5.6.0 */
	MIME_ERR_LIMITS,    /* a limit above its ceiling (the caller's bug) */
} mime_err;

typedef enum mime_cte {
	MIME_CTE_NONE = 0,  /* no Content-Transfer-Encoding: 7bit */
	MIME_CTE_7BIT,
	MIME_CTE_8BIT,
	MIME_CTE_BINARY,
	MIME_CTE_QP,
	MIME_CTE_BASE64,
	MIME_CTE_OTHER,     /* anything else (x-uuencode, typos): see cte */
} mime_cte;

/* mime_part.flags */
#define MIME_PART_BAD_CTYPE 0x0001u          /* unparsable Content-Type */
#define MIME_PART_NO_BOUNDARY 0x0002u        /* multipart, no boundary */
#define MIME_PART_BOUNDARY_COLLISION 0x0004u /* see above */
#define MIME_PART_UNTERMINATED 0x0008u       /* multipart never closed */
#define MIME_PART_ENCODED_COMPOSITE 0x0010u  /* composite, encoded: leaf */
#define MIME_PART_DUPLICATE 0x0020u          /* a MIME field repeated */
#define MIME_PART_HDR_MALFORMED 0x0040u      /* a malformed header field */
#define MIME_PART_HDR_NUL 0x0080u            /* a NUL in the header */
#define MIME_PART_HDR_NO_SEPARATOR 0x0100u   /* no empty line after the
						header (mail-header.h) */
#define MIME_PART_LONG_VALUE 0x0200u         /* a kept string was cut or
						dropped at its cap */
#define MIME_PART_BAD_PARAM 0x0400u          /* a parameter list stopped
						at a syntax error */

typedef struct mime_part {
	size_t hdr_off;    /* the header section: msg[hdr_off .. body_off) */
	size_t body_off;   /* the body: msg[body_off .. end) */
	size_t end;        /* (before the line end of a following delimiter) */
	uint32_t parent;   /* MIME_NONE for parts[0] */
	uint32_t first_child, next_sibling; /* MIME_NONE when none */
	uint32_t n_children;
	uint32_t depth;    /* parts[0]: 0 */
	uint32_t flags;    /* MIME_PART_* */
	mime_cte cte;
	/* NUL-terminated strings owned by the tree, "" when absent.  type,
	 * subtype, charset, cte_name and disposition are ASCII lower-cased;
	 * a type or subtype over MIME_TOKEN_MAX makes the Content-Type
	 * unparsable, a charset, encoding or disposition over
	 * MIME_CHARSET_MAX is dropped, a file name over MIME_FILENAME_MAX is
	 * cut at a UTF-8 character boundary (MIME_PART_LONG_VALUE). */
	const char *type, *subtype;
	const char *boundary;    /* multipart only, as declared (unquoted) */
	const char *charset;     /* the charset parameter, any type */
	const char *cte_name;    /* the Content-Transfer-Encoding token */
	const char *disposition; /* inline, attachment, ... */
	const char *filename;    /* Content-Disposition filename, else
				    Content-Type name; may hold any byte
				    but NUL (check it before using it as a
				    path) */
} mime_part;

typedef struct mime_tree {
	mime_part *parts;  /* parts[0 .. n): document order */
	size_t n;
	/* internal */
	struct mime_chunk *chunks; /* the strings, in blocks that never move */
	uint32_t *last_child;      /* per part, while children are added */
	size_t cap;                /* of parts and last_child */
} mime_tree;

/* The defaults above. */
void mime_limits_default(mime_limits *lim_r);

/* Parse msg[0 .. len) (borrowed, only for the call).  lim NULL: the
 * defaults.  On MIME_OK, *tree_r is a new tree (mime_tree_destroy); on an
 * error, *tree_r is NULL and *error_r (if not NULL) a static sentence that
 * names the limit.  Never blocks. */
mime_err mime_parse(const uint8_t *msg, size_t len, const mime_limits *lim,
		    mime_tree **tree_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Frees the tree; accepts NULL and *tree NULL; sets *tree to NULL. */
void mime_tree_destroy(mime_tree **tree);

/* "ok", "depth", "parts", "header", "boundary", "limits". */
const char *mime_err_name(mime_err e);

#endif
