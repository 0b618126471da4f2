/*
 * admin-proto.h — the admin channel's wire format, both ends of it
 * (docs/ARCHITECTURE.md "The admin channel").  Pure: bytes in, fields
 * out; no I/O, no allocation.  The daemon's driver is admin.c, the client
 * `amp map` (src/cli/cmd-map.c).
 *
 * Request: one line, fields separated by one TAB, ended by LF (a CR
 * before the LF is dropped).  At most ADMIN_LINE_MAX bytes before the LF
 * and ADMIN_FIELDS_MAX fields; every field valid UTF-8 without control
 * characters; the first (the command) not empty.  Example:
 *     map<TAB>add<TAB>access<TAB>192.0.2.7<TAB>REJECT spam source<LF>
 *
 * Response: zero or more data lines "* TEXT", then exactly one final
 * line, "ok [TEXT]" or "error TEXT".  Lines end in LF, carry no control
 * characters but TAB, and are at most ADMIN_REPLY_LINE_MAX bytes.  One
 * request is answered completely before the next is read.
 */
#ifndef AMP_ADMIN_PROTO_H
#define AMP_ADMIN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_LINE_MAX 8192u        /* request bytes before the LF */
#define ADMIN_FIELDS_MAX 16u        /* fields of one request */
#define ADMIN_REPLY_LINE_MAX 16384u /* response line, LF included */

/* A request's fields: NUL-terminated, pointing into the reader's buffer
 * (or the line given to admin_parse_line); valid until the next call. */
typedef struct admin_req {
	size_t n;                       /* 1..ADMIN_FIELDS_MAX */
	const char *f[ADMIN_FIELDS_MAX];
	size_t len[ADMIN_FIELDS_MAX];
} admin_req;

/* Splits a byte stream into request lines (one per connection). */
typedef struct admin_reader {
	char buf[ADMIN_LINE_MAX + 1];
	size_t len;
	bool skipping;   /* dropping the rest of a line that was too long */
	bool have_line;  /* buf holds the line returned last: drop it first */
} admin_reader;

#define ADMIN_REQ 1    /* a request in *req */
#define ADMIN_MORE 0   /* every byte consumed; the line is not complete */
#define ADMIN_BAD (-1) /* this line is refused; the reader is in sync */

void admin_reader_init(admin_reader *r);

/* Consume bytes from *data (advanced, *len reduced) up to the end of the
 * next request line.  ADMIN_REQ: the request in *req.  ADMIN_MORE: all
 * of *len was consumed.  ADMIN_BAD: the line is refused, *error_r is a
 * static reason; a line longer than ADMIN_LINE_MAX is refused as soon as
 * it passes the limit and the rest of it, up to its LF, is dropped
 * without another answer.  Call again while *len > 0. */
int admin_reader_next(admin_reader *r, const uint8_t **data, size_t *len,
		      admin_req *req, const char **error_r)
	__attribute__((warn_unused_result));

/* Split one line (len bytes, without its LF; line[len] must be writable)
 * into fields, in place (TABs become NULs).  0, or -1 with a static
 * reason: empty, a control character, invalid UTF-8, too many fields, an
 * empty command. */
int admin_parse_line(char *line, size_t len, admin_req *req,
		     const char **error_r) __attribute__((warn_unused_result));

/* Client side: "f[0] TAB f[1] ... LF" into out.  0 with *len_r, or -1
 * with a static reason (a field with a control character or TAB, an
 * empty command, invalid UTF-8, more than ADMIN_FIELDS_MAX fields, longer
 * than ADMIN_LINE_MAX or than out). */
int admin_format_request(const char *const *f, size_t n, char *out,
			 size_t out_size, size_t *len_r, const char **error_r)
	__attribute__((warn_unused_result));

/* Server side: one response line "PREFIX[ TEXT]\n" into out (prefix "*",
 * "ok" or "error").  Control characters of text become '?' (TAB is kept
 * when tabs_ok, else it becomes a space); text is cut to fit out and
 * ADMIN_REPLY_LINE_MAX; a NUL follows when there is room.  Returns the
 * bytes written, LF included (0 when out_size < strlen(prefix) + 1). */
size_t admin_format_reply(char *out, size_t out_size, const char *prefix,
			  const char *text, bool tabs_ok);

typedef enum admin_line_kind {
	ADMIN_LINE_BAD = -1,  /* none of these */
	ADMIN_LINE_DATA = 0,  /* "* TEXT" or "*" */
	ADMIN_LINE_OK,        /* "ok TEXT" or "ok" */
	ADMIN_LINE_ERROR,     /* "error TEXT" or "error" */
} admin_line_kind;

/* Client side: what a response line (without its LF) is; *text_r points
 * at its TEXT ("" when none). */
admin_line_kind admin_line_classify(const char *line, const char **text_r);

#endif
