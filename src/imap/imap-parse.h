/*
 * imap-parse.h — the IMAP4rev1 command parser (RFC 3501 §9, with
 * LITERAL+ RFC 7888, IDLE RFC 2177, UIDPLUS RFC 4315, MOVE RFC 6851,
 * NAMESPACE RFC 2342, SPECIAL-USE RFC 6154) as a pure, bounded state
 * machine for `amp bridge` (issue 6).  The driver feeds bytes in any
 * chunking; the parser returns one event at a time: a complete command,
 * "send a continuation", a BAD, or a fatal error.  No I/O, no clocks.
 *
 * The parser never consumes bytes past the end of the command (or
 * continuation request) it reports: after STARTTLS the driver discards
 * whatever it still holds (TESTING.md I6).
 *
 * Output: tag, command (enum and canonical name, UID flag) and its
 * arguments as a tree of imap_arg: atoms, quoted strings, literals
 * ({n} and LITERAL+ {n+}), NIL and parenthesised lists.  An atom may
 * hold a bracketed part with spaces (BODY[HEADER.FIELDS (From)]<0.9>).
 * The shape of every command is checked (argument count and kinds,
 * sequence sets, FETCH items with sections and partials, STORE items
 * with +FLAGS.SILENT etc.); SEARCH keys are kept as a generic tree and
 * only its CHARSET prefix is checked: their meaning is the driver's.
 *
 * Limits (imap_parser_settings; 0 picks the default; each capped):
 *  line_max    bytes of one line, literal data excluded, CRLF included
 *              (the count starts again after each literal's data):
 *              default 8192, at most 65536.  Over it: FATAL (I4).
 *  literal_max one literal: default 65536 (set it small before login
 *              and raise it after, I1), at most cmd_max.  A larger
 *              {n} or {n+}: FATAL "Literal size too large" as soon as
 *              its header is read, so nothing of it is read or stored;
 *              the driver answers "* BYE" and closes (I1).
 *  cmd_max     bytes kept for one command (tag, name, every string and
 *              literal, one NUL each): default 1 MiB, at most 64 MiB;
 *              allocated at creation.  Over it: FATAL.
 *  depth_max   nested '(': default 16, at most 64.  Over it: ERROR
 *              "Too many '('" (I2).
 *  args_max    argument nodes (lists and their items) of a command:
 *              default 1024, at most 65536.  Over it: ERROR.
 *
 * Byte rules: a line ends with CRLF or with a bare LF (I5, as Dovecot);
 * a CR not followed by LF is an ERROR; a NUL anywhere (line, quoted
 * string, literal) is an ERROR (I3); 8-bit bytes are refused in tags,
 * names and atoms and accepted in quoted strings and literals; empty
 * lines are ignored; tokens are separated by exactly one SP.
 *
 * After an ERROR the rest of the command is skipped without storing it;
 * LITERAL+ literals announced at the end of a skipped line are skipped
 * too (within literal_max, else FATAL) so their data is never read as
 * commands.  A synchronising literal in a skipped line ends the command
 * (no continuation is sent, so the client sends no data).
 */
#ifndef AMP_IMAP_PARSE_H
#define AMP_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_LINE_MAX_DEFAULT 8192u
#define IMAP_LINE_MAX_LIMIT 65536u
#define IMAP_LITERAL_MAX_DEFAULT 65536u
#define IMAP_CMD_MAX_DEFAULT (1024u * 1024u)
#define IMAP_CMD_MAX_LIMIT (64u * 1024u * 1024u)
#define IMAP_DEPTH_MAX_DEFAULT 16u
#define IMAP_DEPTH_MAX_LIMIT 64u
#define IMAP_ARGS_MAX_DEFAULT 1024u
#define IMAP_ARGS_MAX_LIMIT 65536u

typedef struct imap_parser imap_parser;

typedef struct imap_parser_settings {
	size_t line_max;
	size_t literal_max;
	size_t cmd_max;
	unsigned depth_max;
	unsigned args_max;
} imap_parser_settings;

typedef enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
} imap_arg_type;

typedef struct imap_arg imap_arg;
struct imap_arg {
	imap_arg_type type;
	bool literal_plus;      /* LITERAL: was {n+} */
	const char *str;        /* ATOM/QUOTED/LITERAL/NIL: NUL-terminated */
	size_t len;             /* its length (a literal has no NUL inside) */
	const imap_arg *child;  /* LIST: first item, NULL when empty */
	unsigned count;         /* LIST: number of items */
	const imap_arg *next;   /* next sibling, NULL at the end */
};

typedef enum imap_cmd {
	IMAP_CMD_CAPABILITY, IMAP_CMD_NOOP, IMAP_CMD_LOGOUT, IMAP_CMD_STARTTLS,
	IMAP_CMD_AUTHENTICATE, IMAP_CMD_LOGIN, IMAP_CMD_SELECT,
	IMAP_CMD_EXAMINE, IMAP_CMD_CREATE, IMAP_CMD_DELETE, IMAP_CMD_RENAME,
	IMAP_CMD_SUBSCRIBE, IMAP_CMD_UNSUBSCRIBE, IMAP_CMD_LIST, IMAP_CMD_LSUB,
	IMAP_CMD_STATUS, IMAP_CMD_APPEND, IMAP_CMD_CHECK, IMAP_CMD_CLOSE,
	IMAP_CMD_EXPUNGE, IMAP_CMD_SEARCH, IMAP_CMD_FETCH, IMAP_CMD_STORE,
	IMAP_CMD_COPY, IMAP_CMD_MOVE, IMAP_CMD_IDLE, IMAP_CMD_NAMESPACE,
	IMAP_CMD_COUNT
} imap_cmd;

typedef struct imap_command {
	const char *tag;        /* NUL-terminated */
	size_t tag_len;
	imap_cmd cmd;
	const char *name;       /* canonical upper case ("FETCH") */
	bool uid;               /* UID FETCH/STORE/COPY/MOVE/SEARCH/EXPUNGE */
	const imap_arg *args;   /* first argument (after UID's subcommand) */
	unsigned argc;          /* top-level arguments */
} imap_command;

typedef enum imap_parse_status {
	IMAP_PARSE_MORE,        /* all given bytes taken, need more */
	IMAP_PARSE_COMMAND,     /* imap_parser_command() is valid */
	IMAP_PARSE_CONTINUE,    /* send "+ ..." now: a {n} literal follows */
	IMAP_PARSE_ERROR,       /* send "<tag> BAD <text>" ("* BAD" when no
				 * tag); the rest of the command is skipped */
	IMAP_PARSE_FATAL,       /* send "* BYE <text>" and close */
	IMAP_PARSE_DONE,        /* IDLE mode: the DONE line */
	IMAP_PARSE_LINE,        /* line mode: imap_parser_line() */
} imap_parse_status;

/* Settings are copied; NULL means all defaults.  Allocates cmd_max and
 * args_max nodes once.  -1 on bad settings or no memory. */
int imap_parser_new(const imap_parser_settings *set, imap_parser **p_r)
	__attribute__((warn_unused_result));
void imap_parser_free(imap_parser **p);

/* Parse from data[0..len): stops after the first event and sets *used_r
 * to the bytes taken (all of them for MORE).  What an event returns
 * (command, line, tag, error text) stays valid until the next call. */
imap_parse_status imap_parser_feed(imap_parser *p, const uint8_t *data,
				   size_t len, size_t *used_r)
	__attribute__((warn_unused_result));

const imap_command *imap_parser_command(const imap_parser *p);
/* The tag of the command an ERROR is about, NULL when none was read
 * (or it is over 127 bytes, or the ERROR is IDLE's "Expected DONE":
 * the driver answers with the IDLE command's tag). */
const char *imap_parser_error_tag(const imap_parser *p);
/* The text for BAD / BYE after ERROR or FATAL. */
const char *imap_parser_error(const imap_parser *p);

/* After accepting IDLE: the next line must be DONE (DONE, or ERROR
 * "Expected DONE"; either way back to commands). */
void imap_parser_idle(imap_parser *p);
/* The next line is raw (AUTHENTICATE continuation): LINE, without its
 * line end, within line_max; then back to commands. */
void imap_parser_expect_line(imap_parser *p);
const char *imap_parser_line(const imap_parser *p, size_t *len_r);

/* Change literal_max (after login); capped by cmd_max. */
void imap_parser_set_literal_max(imap_parser *p, size_t literal_max);
/* Forget any partial command (after STARTTLS). */
void imap_parser_reset(imap_parser *p);

/* Sequence sets (RFC 3501 seq-set): nz-number / "*", ranges a:b.  A
 * range is kept low to high (*:1 is 1:*); "*" is IMAP_SEQ_STAR. */
#define IMAP_SEQ_STAR ((uint64_t)1 << 32)
typedef struct imap_seq_range {
	uint64_t lo, hi;
} imap_seq_range;

/* Parse s[0..len): up to max ranges into r (r may be NULL with max 0
 * to only validate); *n_r = ranges in the set.  -1 with *error_r on bad
 * syntax, 0, numbers over 4294967295, or more than max ranges when r. */
int imap_seqset_parse(const char *s, size_t len, imap_seq_range *r,
		      size_t max, size_t *n_r, const char **error_r)
	__attribute__((warn_unused_result));

/* One FETCH item (ENVELOPE, BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.10>,
 * ...; not the macros ALL/FAST/FULL).  -1 with *error_r. */
int imap_fetch_att_check(const char *s, size_t len, const char **error_r)
	__attribute__((warn_unused_result));

#endif
