/*
 * imap-parse.c — the IMAP command parser (see imap-parse.h for the API,
 * the limits and the byte rules).  A byte-at-a-time state machine:
 * strings go into one buffer of cmd_max bytes allocated at creation,
 * argument nodes into an array of args_max; literal data is copied in
 * bulk.  Every state change depends on one byte only, so the events are
 * the same whatever the chunking.  Then the command's shape is checked
 * against a table (name, argument kinds).
 */
#include "imap-parse.h"

#include <stdlib.h>
#include <string.h>

enum state {
	S_TAG, S_NAME, S_ARG, S_AFTER, S_ATOM, S_QUOTED, S_QESC, S_LHDR,
	S_LCR, S_LLF, S_LDATA, S_CR, S_SKIP, S_SKIP_LIT, S_LINE, S_LINE_CR,
};

enum mode { M_CMD, M_IDLE, M_LINE };

struct imap_parser {
	imap_parser_settings set;
	enum state st;
	enum mode mode;
	bool fatal;
	bool after_sp;          /* S_ARG: a SP was just read */
	char *buf;
	size_t buf_len;
	imap_arg *args;
	unsigned nargs;
	imap_arg *stack[IMAP_DEPTH_MAX_LIMIT + 1];
	imap_arg *tail[IMAP_DEPTH_MAX_LIMIT + 1];
	unsigned depth;
	imap_arg *first;
	unsigned argc;
	size_t line_len;
	size_t tag_len, name_off, tok_off;
	bool have_tag;
	/* literal */
	uint64_t lit_len;
	size_t lit_left;
	bool lit_plus, lit_digits;
	/* bracket part of an atom */
	unsigned brk;
	bool bq, bq_esc;
	/* skipping: the tail of the line as {digits+} */
	int sk;                 /* 0 none, 1 '{', 2 digits, 3 '+', 4 '}' */
	uint64_t sk_n;
	const char *error;
	char tag_copy[128];
	imap_command cmd;
	size_t line_out;
};

static size_t pick(size_t v, size_t def, size_t lim)
{
	if (v == 0)
		v = def;
	return v > lim ? lim : v;
}

int imap_parser_new(const imap_parser_settings *set, imap_parser **p_r)
{
	imap_parser_settings s = { 0 };
	*p_r = NULL;
	if (set != NULL)
		s = *set;
	s.line_max = pick(s.line_max, IMAP_LINE_MAX_DEFAULT, IMAP_LINE_MAX_LIMIT);
	if (s.line_max < 64)
		return -1;
	s.cmd_max = pick(s.cmd_max, IMAP_CMD_MAX_DEFAULT, IMAP_CMD_MAX_LIMIT);
	if (s.cmd_max < s.line_max)
		s.cmd_max = s.line_max;
	s.literal_max = pick(s.literal_max, IMAP_LITERAL_MAX_DEFAULT, s.cmd_max);
	s.depth_max = (unsigned)pick(s.depth_max, IMAP_DEPTH_MAX_DEFAULT, IMAP_DEPTH_MAX_LIMIT);
	s.args_max = (unsigned)pick(s.args_max, IMAP_ARGS_MAX_DEFAULT, IMAP_ARGS_MAX_LIMIT);
	imap_parser *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	p->set = s;
	p->buf = malloc(s.cmd_max + 1);
	p->args = calloc(s.args_max, sizeof(*p->args));
	if (p->buf == NULL || p->args == NULL) {
		imap_parser_free(&p);
		return -1;
	}
	imap_parser_reset(p);
	*p_r = p;
	return 0;
}

void imap_parser_free(imap_parser **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	free((*pp)->buf);
	free((*pp)->args);
	free(*pp);
	*pp = NULL;
}

static void new_command(imap_parser *p)
{
	p->st = S_TAG;
	p->buf_len = 0;
	p->nargs = 0;
	p->depth = 0;
	p->first = NULL;
	p->argc = 0;
	p->tail[0] = NULL;
	p->line_len = 0;
	p->have_tag = false;
	p->tag_len = 0;
	p->brk = 0;
	p->bq = p->bq_esc = false;
	p->sk = 0;
}

void imap_parser_reset(imap_parser *p)
{
	p->fatal = false;
	p->mode = M_CMD;
	p->error = NULL;
	new_command(p);
}

void imap_parser_set_literal_max(imap_parser *p, size_t literal_max)
{
	p->set.literal_max = pick(literal_max, IMAP_LITERAL_MAX_DEFAULT, p->set.cmd_max);
}

void imap_parser_idle(imap_parser *p)
{
	new_command(p);
	p->mode = M_IDLE;
	p->st = S_LINE;
}

void imap_parser_expect_line(imap_parser *p)
{
	new_command(p);
	p->mode = M_LINE;
	p->st = S_LINE;
}

const imap_command *imap_parser_command(const imap_parser *p)
{
	return &p->cmd;
}

const char *imap_parser_error_tag(const imap_parser *p)
{
	return p->tag_copy[0] != '\0' ? p->tag_copy : NULL;
}

const char *imap_parser_error(const imap_parser *p)
{
	return p->error != NULL ? p->error : "";
}

const char *imap_parser_line(const imap_parser *p, size_t *len_r)
{
	*len_r = p->line_out;
	return p->buf;
}

/* ---- characters ---- */

/* ATOM-CHAR plus what astrings, list-mailbox, flags and sequence sets
 * add (']', '%', '*', '\\'). */
static bool atom_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

static bool tag_char(uint8_t c)
{
	return atom_char(c) && c != '%' && c != '*' && c != '\\' && c != '+';
}

static bool upper_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		char c = a[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 32);
		if (c != b[i])
			return false;
	}
	return true;
}

/* ---- the command table ---- */

static const char *const cmd_names[IMAP_CMD_COUNT] = {
	"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN",
	"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
	"UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "CHECK", "CLOSE",
	"EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "IDLE",
	"NAMESPACE",
};

static int lookup_cmd(const char *s, size_t len)
{
	for (int i = 0; i < IMAP_CMD_COUNT; i++)
		if (upper_eq(s, len, cmd_names[i]))
			return i;
	return -1;
}

/* ---- buffer and nodes ---- */

static bool put(imap_parser *p, char c)
{
	if (p->buf_len >= p->set.cmd_max)
		return false;
	p->buf[p->buf_len++] = c;
	return true;
}

static imap_arg *new_arg(imap_parser *p, imap_arg_type t)
{
	if (p->nargs >= p->set.args_max)
		return NULL;
	imap_arg *a = &p->args[p->nargs++];
	memset(a, 0, sizeof(*a));
	a->type = t;
	imap_arg *prev = p->tail[p->depth];
	if (prev != NULL)
		prev->next = a;
	else if (p->depth == 0)
		p->first = a;
	else
		p->stack[p->depth - 1]->child = a;
	p->tail[p->depth] = a;
	if (p->depth == 0)
		p->argc++;
	else
		p->stack[p->depth - 1]->count++;
	return a;
}

/* ---- sequence sets ---- */

static int seq_number(const char *s, size_t len, size_t *i, uint64_t *v)
{
	if (*i < len && s[*i] == '*') {
		(*i)++;
		*v = IMAP_SEQ_STAR;
		return 0;
	}
	if (*i >= len || s[*i] < '1' || s[*i] > '9')
		return -1;
	uint64_t n = 0;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		n = n * 10 + (uint64_t)(s[*i] - '0');
		if (n > UINT32_MAX)
			return -1;
		(*i)++;
	}
	*v = n;
	return 0;
}

int imap_seqset_parse(const char *s, size_t len, imap_seq_range *r,
		      size_t max, size_t *n_r, const char **error_r)
{
	size_t i = 0, n = 0;
	*n_r = 0;
	for (;;) {
		uint64_t lo, hi;
		if (seq_number(s, len, &i, &lo) != 0) {
			*error_r = "Invalid sequence set";
			return -1;
		}
		hi = lo;
		if (i < len && s[i] == ':') {
			i++;
			if (seq_number(s, len, &i, &hi) != 0) {
				*error_r = "Invalid sequence set";
				return -1;
			}
		}
		if (r != NULL) {
			if (n >= max) {
				*error_r = "Too many ranges in sequence set";
				return -1;
			}
			r[n].lo = lo < hi ? lo : hi;
			r[n].hi = lo < hi ? hi : lo;
		}
		n++;
		if (i == len)
			break;
		if (s[i] != ',') {
			*error_r = "Invalid sequence set";
			return -1;
		}
		i++;
	}
	*n_r = n;
	return 0;
}

static bool is_seqset(const imap_arg *a)
{
	size_t n;
	const char *e;
	return a != NULL && a->type == IMAP_ARG_ATOM &&
	       imap_seqset_parse(a->str, a->len, NULL, 0, &n, &e) == 0;
}

/* ---- FETCH items ---- */

static bool digits_nz(const char *s, size_t len, size_t *i)
{
	uint64_t n;
	return seq_number(s, len, i, &n) == 0 && n != IMAP_SEQ_STAR;
}

static bool number(const char *s, size_t len, size_t *i)
{
	size_t st = *i;
	uint64_t n = 0;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		n = n * 10 + (uint64_t)(s[*i] - '0');
		if (n > UINT32_MAX)
			return false;
		(*i)++;
	}
	return *i > st;
}

static bool starts(const char *s, size_t len, size_t i, const char *w)
{
	size_t wl = strlen(w);
	return len - i >= wl && upper_eq(s + i, wl, w);
}

/* "(" name *(SP name) ")": names are astring chars or quoted strings. */
static bool header_list(const char *s, size_t len, size_t *i)
{
	if (*i >= len || s[*i] != '(')
		return false;
	(*i)++;
	for (;;) {
		if (*i < len && s[*i] == '"') {
			(*i)++;
			while (*i < len && s[*i] != '"') {
				if (s[*i] == '\\')
					(*i)++;
				(*i)++;
			}
			if (*i >= len)
				return false;
			(*i)++;
		} else {
			size_t st = *i;
			while (*i < len && atom_char((uint8_t)s[*i]) && s[*i] != ']')
				(*i)++;
			if (*i == st)
				return false;
		}
		if (*i < len && s[*i] == ')') {
			(*i)++;
			return true;
		}
		if (*i >= len || s[*i] != ' ')
			return false;
		(*i)++;
	}
}

static bool section(const char *s, size_t len, size_t *i)
{
	bool part = false;
	while (*i < len && s[*i] >= '1' && s[*i] <= '9') {
		if (!digits_nz(s, len, i))
			return false;
		part = true;
		if (*i < len && s[*i] == '.')
			(*i)++;
		else
			return true;
	}
	if (part && starts(s, len, *i, "MIME")) {
		*i += 4;
		return true;
	}
	if (starts(s, len, *i, "HEADER.FIELDS.NOT ")) {
		*i += 18;
		return header_list(s, len, i);
	}
	if (starts(s, len, *i, "HEADER.FIELDS ")) {
		*i += 14;
		return header_list(s, len, i);
	}
	if (starts(s, len, *i, "HEADER")) {
		*i += 6;
		return true;
	}
	if (starts(s, len, *i, "TEXT")) {
		*i += 4;
		return true;
	}
	return !part && *i < len && s[*i] == ']';
}

int imap_fetch_att_check(const char *s, size_t len, const char **error_r)
{
	static const char *const plain[] = {
		"ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER",
		"RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID",
		"MODSEQ",
	};
	for (size_t k = 0; k < sizeof(plain) / sizeof(plain[0]); k++)
		if (upper_eq(s, len, plain[k]))
			return 0;
	size_t i;
	if (starts(s, len, 0, "BODY.PEEK["))
		i = 10;
	else if (starts(s, len, 0, "BODY["))
		i = 5;
	else {
		*error_r = "Unknown FETCH item";
		return -1;
	}
	if (!section(s, len, &i) || i >= len || s[i] != ']') {
		*error_r = "Invalid BODY[section]";
		return -1;
	}
	i++;
	if (i < len && s[i] == '<') {
		i++;
		if (!number(s, len, &i) || i >= len || s[i] != '.') {
			*error_r = "Invalid partial <n.m>";
			return -1;
		}
		i++;
		if (!digits_nz(s, len, &i) || i >= len || s[i] != '>') {
			*error_r = "Invalid partial <n.m>";
			return -1;
		}
		i++;
	}
	if (i != len) {
		*error_r = "Junk after FETCH item";
		return -1;
	}
	return 0;
}

/* ---- the shape of each command ---- */

static bool is_astring(const imap_arg *a)
{
	return a != NULL && a->type != IMAP_ARG_LIST;
}

static bool is_atom(const imap_arg *a)
{
	return a != NULL && (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL);
}

static bool is_list(const imap_arg *a)
{
	return a != NULL && a->type == IMAP_ARG_LIST;
}

static bool atoms_only(const imap_arg *l)
{
	for (const imap_arg *a = l->child; a != NULL; a = a->next)
		if (!is_atom(a))
			return false;
	return true;
}

static const char *check_fetch(const imap_arg *a, unsigned argc)
{
	const char *e = "Invalid FETCH";
	if (argc < 2 || argc > 3 || !is_seqset(a))
		return argc < 2 ? "Missing arguments" : "Invalid sequence set";
	a = a->next;
	if (is_list(a)) {
		if (a->count == 0)
			return "Empty FETCH list";
		for (const imap_arg *i = a->child; i != NULL; i = i->next)
			if (i->type != IMAP_ARG_ATOM ||
			    imap_fetch_att_check(i->str, i->len, &e) != 0)
				return e;
	} else if (a->type == IMAP_ARG_ATOM) {
		if (!upper_eq(a->str, a->len, "ALL") && !upper_eq(a->str, a->len, "FAST") &&
		    !upper_eq(a->str, a->len, "FULL") &&
		    imap_fetch_att_check(a->str, a->len, &e) != 0)
			return e;
	} else {
		return e;
	}
	if (argc == 3 && !is_list(a->next))
		return "Invalid FETCH modifiers";
	return NULL;
}

static const char *check_store(const imap_arg *a, unsigned argc)
{
	if (argc < 3)
		return "Missing arguments";
	if (!is_seqset(a))
		return "Invalid sequence set";
	a = a->next;
	if (is_list(a)) {       /* RFC 7162 (UNCHANGEDSINCE n) */
		a = a->next;
		argc--;
		if (argc < 3)
			return "Missing arguments";
	}
	if (a->type != IMAP_ARG_ATOM)
		return "Invalid STORE item";
	const char *s = a->str;
	size_t n = a->len;
	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		s++;
		n--;
	}
	if (!upper_eq(s, n, "FLAGS") && !upper_eq(s, n, "FLAGS.SILENT"))
		return "Invalid STORE item";
	a = a->next;
	if (is_list(a)) {
		if (a->next != NULL || !atoms_only(a))
			return "Invalid flag list";
		return NULL;
	}
	for (; a != NULL; a = a->next)
		if (!is_atom(a))
			return "Invalid flag";
	return NULL;
}

static const char *check_search(const imap_arg *a, unsigned argc)
{
	if (argc == 0)
		return "Missing search keys";
	if (a->type == IMAP_ARG_ATOM && upper_eq(a->str, a->len, "CHARSET")) {
		if (argc < 3 || !is_astring(a->next))
			return "Invalid CHARSET";
	}
	return NULL;
}

static const char *check_append(const imap_arg *a, unsigned argc)
{
	if (argc < 2 || argc > 4 || !is_astring(a))
		return "Invalid APPEND";
	a = a->next;
	if (is_list(a)) {
		if (!atoms_only(a))
			return "Invalid flag list";
		a = a->next;
	}
	if (a != NULL && a->type == IMAP_ARG_QUOTED && a->next != NULL)
		a = a->next;
	if (a == NULL || a->type != IMAP_ARG_LITERAL || a->next != NULL)
		return "APPEND needs a message literal";
	return NULL;
}

static const char *check_list(const imap_arg *a, unsigned argc)
{
	if (is_list(a)) {       /* RFC 5258 selection options */
		a = a->next;
		argc--;
	}
	if (argc < 2 || !is_astring(a) || !(is_astring(a->next) || is_list(a->next)))
		return "Invalid LIST";
	a = a->next->next;
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_ATOM && upper_eq(a->str, a->len, "RETURN") &&
	    is_list(a->next) && a->next->next == NULL)
		return NULL;
	return "Invalid LIST";
}

static const char *check(imap_command *c)
{
	const imap_arg *a = c->args;
	unsigned n = c->argc;
	switch (c->cmd) {
	case IMAP_CMD_CAPABILITY: case IMAP_CMD_NOOP: case IMAP_CMD_LOGOUT:
	case IMAP_CMD_STARTTLS: case IMAP_CMD_CHECK: case IMAP_CMD_CLOSE:
	case IMAP_CMD_IDLE: case IMAP_CMD_NAMESPACE:
		return n == 0 ? NULL : "Unexpected arguments";
	case IMAP_CMD_EXPUNGE:
		if (c->uid)
			return n == 1 && is_seqset(a) ? NULL : "Invalid UID EXPUNGE";
		return n == 0 ? NULL : "Unexpected arguments";
	case IMAP_CMD_AUTHENTICATE:
		return (n == 1 || n == 2) && a->type == IMAP_ARG_ATOM &&
		       (n == 1 || a->next->type == IMAP_ARG_ATOM) ? NULL : "Invalid AUTHENTICATE";
	case IMAP_CMD_LOGIN:
	case IMAP_CMD_RENAME:
		return n == 2 && is_astring(a) && is_astring(a->next) ? NULL : "Expected two strings";
	case IMAP_CMD_SELECT: case IMAP_CMD_EXAMINE: case IMAP_CMD_CREATE:
		return (n == 1 || n == 2) && is_astring(a) &&
		       (n == 1 || is_list(a->next)) ? NULL : "Invalid mailbox arguments";
	case IMAP_CMD_DELETE: case IMAP_CMD_SUBSCRIBE: case IMAP_CMD_UNSUBSCRIBE:
		return n == 1 && is_astring(a) ? NULL : "Expected a mailbox";
	case IMAP_CMD_LIST:
		return check_list(a, n);
	case IMAP_CMD_LSUB:
		return n == 2 && is_astring(a) && is_astring(a->next) ? NULL : "Invalid LSUB";
	case IMAP_CMD_STATUS:
		return n == 2 && is_astring(a) && is_list(a->next) && a->next->count > 0 &&
		       atoms_only(a->next) ? NULL : "Invalid STATUS";
	case IMAP_CMD_APPEND:
		return check_append(a, n);
	case IMAP_CMD_SEARCH:
		return check_search(a, n);
	case IMAP_CMD_FETCH:
		return check_fetch(a, n);
	case IMAP_CMD_STORE:
		return check_store(a, n);
	case IMAP_CMD_COPY: case IMAP_CMD_MOVE:
		if (n != 2)
			return "Expected a sequence set and a mailbox";
		return is_seqset(a) && is_astring(a->next) ? NULL : "Invalid sequence set";
	case IMAP_CMD_COUNT:
		break;
	}
	return "Unknown command";
}

/* ---- events ---- */

static imap_parse_status fail(imap_parser *p, const char *why, bool at_lf)
{
	p->error = why;
	p->tag_copy[0] = '\0';
	if (p->have_tag && p->tag_len < sizeof(p->tag_copy)) {
		memcpy(p->tag_copy, p->buf, p->tag_len);
		p->tag_copy[p->tag_len] = '\0';
	}
	new_command(p);
	if (!at_lf)
		p->st = S_SKIP;
	return IMAP_PARSE_ERROR;
}

static imap_parse_status fatal(imap_parser *p, const char *why)
{
	p->error = why;
	p->fatal = true;
	return IMAP_PARSE_FATAL;
}

static imap_parse_status finish(imap_parser *p)
{
	if (p->depth > 0)
		return fail(p, "Missing ')'", true);
	imap_command *c = &p->cmd;
	memset(c, 0, sizeof(*c));
	c->tag = p->buf;
	c->tag_len = p->tag_len;
	int k = lookup_cmd(p->buf + p->name_off, strlen(p->buf + p->name_off));
	c->args = p->first;
	c->argc = p->argc;
	if (k >= 0) {
		c->cmd = (imap_cmd)k;
	} else {        /* UID: S_NAME let nothing else through */
		const imap_arg *s = p->first;
		int sub = s != NULL && s->type == IMAP_ARG_ATOM ? lookup_cmd(s->str, s->len) : -1;
		if (sub != IMAP_CMD_FETCH && sub != IMAP_CMD_STORE && sub != IMAP_CMD_COPY &&
		    sub != IMAP_CMD_MOVE && sub != IMAP_CMD_SEARCH && sub != IMAP_CMD_EXPUNGE)
			return fail(p, "Invalid UID command", true);
		c->uid = true;
		c->cmd = (imap_cmd)sub;
		c->args = s->next;
		c->argc--;
	}
	c->name = cmd_names[c->cmd];
	const char *e = check(c);
	if (e != NULL)
		return fail(p, e, true);
	p->tag_copy[0] = '\0';
	new_command(p);
	return IMAP_PARSE_COMMAND;
}

/* The token in buf[tok_off..) is complete. */
static imap_parse_status end_token(imap_parser *p, imap_arg_type t)
{
	size_t len = p->buf_len - p->tok_off;
	if (!put(p, '\0'))
		return fatal(p, "Command too large");
	if (t == IMAP_ARG_ATOM && upper_eq(p->buf + p->tok_off, len, "NIL"))
		t = IMAP_ARG_NIL;
	imap_arg *a = new_arg(p, t);
	if (a == NULL)
		return fail(p, "Too many arguments", false);
	a->str = p->buf + p->tok_off;
	a->len = len;
	a->literal_plus = t == IMAP_ARG_LITERAL && p->lit_plus;
	p->st = S_AFTER;
	return IMAP_PARSE_MORE;
}

static imap_parse_status end_line(imap_parser *p, bool bad_sp)
{
	if (bad_sp)
		return fail(p, "Trailing space", true);
	return finish(p);
}

static imap_parse_status step_after_eol(imap_parser *p, uint8_t c);

/* One byte of the command line (not literal data). */
static imap_parse_status step(imap_parser *p, uint8_t c)
{
	imap_parse_status r;
	if (p->st != S_SKIP && ++p->line_len > p->set.line_max)
		return fatal(p, "Input line too long");
	switch (p->st) {
	case S_TAG:
		if (c == '\n' && p->tag_len == 0) {
			p->line_len = 0;
			return IMAP_PARSE_MORE;     /* empty line */
		}
		if (c == '\r' && p->tag_len == 0)
			return IMAP_PARSE_MORE;
		if (c == ' ' && p->tag_len > 0) {
			if (!put(p, '\0'))
				return fatal(p, "Command too large");
			p->have_tag = true;
			p->name_off = p->buf_len;
			p->st = S_NAME;
			return IMAP_PARSE_MORE;
		}
		if (c == 0)
			return fail(p, "NULs not allowed", false);
		if (c == '\r' || c == '\n')
			return fail(p, p->tag_len == 0 ? "CR without LF" : "Missing command",
				    c == '\n');
		if (p->line_len > 1 && p->tag_len == 0)
			return fail(p, "CR without LF", false);
		if (!tag_char(c))
			return fail(p, c == ' ' ? "Missing tag" : "Invalid characters in tag", false);
		if (!put(p, (char)c))
			return fatal(p, "Command too large");
		p->tag_len++;
		return IMAP_PARSE_MORE;
	case S_NAME:
		if (c == ' ' || c == '\r' || c == '\n') {
			size_t n = p->buf_len - p->name_off;
			if (n == 0)
				return fail(p, "Missing command", c == '\n');
			if (lookup_cmd(p->buf + p->name_off, n) < 0 &&
			    !upper_eq(p->buf + p->name_off, n, "UID"))
				return fail(p, "Unknown command", c == '\n');
			if (!put(p, '\0'))
				return fatal(p, "Command too large");
			if (c == ' ') {
				p->st = S_ARG;
				p->after_sp = true;
				return IMAP_PARSE_MORE;
			}
			p->st = S_AFTER;
			return step_after_eol(p, c);
		}
		if (c == 0)
			return fail(p, "NULs not allowed", false);
		if (!atom_char(c))
			return fail(p, "Invalid characters in command name", false);
		if (!put(p, (char)c))
			return fatal(p, "Command too large");
		return IMAP_PARSE_MORE;
	case S_ARG:
		switch (c) {
		case '(':
			if (p->depth >= p->set.depth_max)
				return fail(p, "Too many '('", false);
			{
				imap_arg *a = new_arg(p, IMAP_ARG_LIST);
				if (a == NULL)
					return fail(p, "Too many arguments", false);
				p->stack[p->depth++] = a;
				p->tail[p->depth] = NULL;
			}
			p->after_sp = false;
			return IMAP_PARSE_MORE;
		case ')':
			if (p->after_sp || p->depth == 0)
				return fail(p, "Unexpected ')'", false);
			p->depth--;
			p->st = S_AFTER;
			return IMAP_PARSE_MORE;
		case '"':
			p->tok_off = p->buf_len;
			p->st = S_QUOTED;
			return IMAP_PARSE_MORE;
		case '{':
			p->lit_len = 0;
			p->lit_plus = p->lit_digits = false;
			p->st = S_LHDR;
			return IMAP_PARSE_MORE;
		case '\r':
		case '\n':
			if (!p->after_sp && p->depth > 0)
				return fail(p, "Missing ')'", c == '\n');
			if (c == '\r') {
				if (p->after_sp)
					return fail(p, "Trailing space", false);
				p->st = S_CR;
				return IMAP_PARSE_MORE;
			}
			return end_line(p, p->after_sp);
		case ' ':
			return fail(p, "Double space", false);
		case 0:
			return fail(p, "NULs not allowed", false);
		default:
			if (!atom_char(c))
				return fail(p, "Invalid characters in atom", false);
			if (c >= 0x80)
				return fail(p, "8-bit characters in atom", false);
			p->tok_off = p->buf_len;
			p->brk = c == '[' ? 1 : 0;
			p->bq = p->bq_esc = false;
			p->st = S_ATOM;
			if (!put(p, (char)c))
				return fatal(p, "Command too large");
			return IMAP_PARSE_MORE;
		}
	case S_ATOM:
		if (p->brk > 0) {
			if (c == 0)
				return fail(p, "NULs not allowed", false);
			if (c == '\r' || c == '\n')
				return fail(p, "Missing ']'", c == '\n');
			if (c >= 0x80)
				return fail(p, "8-bit characters in atom", false);
			if (p->bq) {
				if (p->bq_esc)
					p->bq_esc = false;
				else if (c == '\\')
					p->bq_esc = true;
				else if (c == '"')
					p->bq = false;
			} else if (c == '"') {
				p->bq = true;
			} else if (c == '[') {
				if (p->brk >= p->set.depth_max)
					return fail(p, "Too many '['", false);
				p->brk++;
			} else if (c == ']') {
				p->brk--;
			}
			if (!put(p, (char)c))
				return fatal(p, "Command too large");
			return IMAP_PARSE_MORE;
		}
		if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			r = end_token(p, IMAP_ARG_ATOM);
			if (r != IMAP_PARSE_MORE)
				return r;
			p->line_len--;
			return step(p, c);
		}
		if (c == 0)
			return fail(p, "NULs not allowed", false);
		if (c >= 0x80)
			return fail(p, "8-bit characters in atom", false);
		if (!atom_char(c))
			return fail(p, "Invalid characters in atom", false);
		if (c == '[')
			p->brk = 1;
		if (!put(p, (char)c))
			return fatal(p, "Command too large");
		return IMAP_PARSE_MORE;
	case S_QUOTED:
		if (c == '"')
			return end_token(p, IMAP_ARG_QUOTED);
		if (c == '\\') {
			p->st = S_QESC;
			return IMAP_PARSE_MORE;
		}
		if (c == 0)
			return fail(p, "NULs not allowed in strings", false);
		if (c == '\r' || c == '\n')
			return fail(p, "Missing '\"'", c == '\n');
		if (!put(p, (char)c))
			return fatal(p, "Command too large");
		return IMAP_PARSE_MORE;
	case S_QESC:
		if (c != '"' && c != '\\')
			return fail(p, c == '\n' ? "Missing '\"'" : "Invalid escape in string",
				    c == '\n');
		if (!put(p, (char)c))
			return fatal(p, "Command too large");
		p->st = S_QUOTED;
		return IMAP_PARSE_MORE;
	case S_LHDR:
		if (c >= '0' && c <= '9' && !p->lit_plus) {
			p->lit_len = p->lit_len * 10 + (c - '0');
			p->lit_digits = true;
			if (p->lit_len > p->set.literal_max)
				return fatal(p, "Literal size too large");
			return IMAP_PARSE_MORE;
		}
		if (c == '+' && p->lit_digits && !p->lit_plus) {
			p->lit_plus = true;
			return IMAP_PARSE_MORE;
		}
		if (c == '}' && p->lit_digits) {
			if (p->lit_len + 1 > p->set.cmd_max - p->buf_len)
				return fatal(p, "Command too large");
			p->st = S_LCR;
			return IMAP_PARSE_MORE;
		}
		return fail(p, "Invalid literal header", c == '\n');
	case S_LCR:
		if (c == '\r') {
			p->st = S_LLF;
			return IMAP_PARSE_MORE;
		}
		__attribute__((fallthrough));
	case S_LLF:
		if (c != '\n')
			return fail(p, "Missing CRLF after literal header", false);
		p->tok_off = p->buf_len;
		p->lit_left = (size_t)p->lit_len;
		p->line_len = 0;
		p->st = S_LDATA;
		if (p->lit_left == 0) {
			r = end_token(p, IMAP_ARG_LITERAL);
			if (r != IMAP_PARSE_MORE)
				return r;
		}
		return p->lit_plus ? IMAP_PARSE_MORE : IMAP_PARSE_CONTINUE;
	case S_AFTER:
		if (c == ' ') {
			p->st = S_ARG;
			p->after_sp = true;
			return IMAP_PARSE_MORE;
		}
		if (c == ')') {
			if (p->depth == 0)
				return fail(p, "Unexpected ')'", false);
			p->depth--;
			return IMAP_PARSE_MORE;
		}
		if (c == '\r' || c == '\n')
			return step_after_eol(p, c);
		if (c == 0)
			return fail(p, "NULs not allowed", false);
		return fail(p, "Missing space", false);
	case S_CR:
		if (c != '\n')
			return fail(p, "CR without LF", false);
		return end_line(p, false);
	case S_SKIP:
		if (c == '\n') {
			if (p->sk == 4) {
				/* a LITERAL+ literal: its data follows at once */
				if (p->sk_n > p->set.literal_max)
					return fatal(p, "Literal size too large");
				p->lit_left = (size_t)p->sk_n;
				if (p->lit_left > 0)
					p->st = S_SKIP_LIT;
			} else {
				new_command(p);
			}
			p->sk = 0;
			return IMAP_PARSE_MORE;
		}
		if (c == '\r' && p->sk == 4)
			return IMAP_PARSE_MORE;
		if (c == '{') {
			p->sk = 1;
			p->sk_n = 0;
		} else if (c >= '0' && c <= '9' && (p->sk == 1 || p->sk == 2)) {
			p->sk = 2;
			if (p->sk_n < UINT32_MAX)
				p->sk_n = p->sk_n * 10 + (c - '0');
		} else if (c == '+' && p->sk == 2) {
			p->sk = 3;
		} else if (c == '}' && p->sk == 3) {
			p->sk = 4;
		} else {
			p->sk = 0;
		}
		return IMAP_PARSE_MORE;
	default:
		break;
	}
	return fatal(p, "Parser state");
}

/* CR or LF after a complete token (or the command name). */
static imap_parse_status step_after_eol(imap_parser *p, uint8_t c)
{
	if (c == '\r') {
		p->st = S_CR;
		return IMAP_PARSE_MORE;
	}
	return end_line(p, false);
}

static imap_parse_status line_step(imap_parser *p, uint8_t c)
{
	if (c == '\n') {
		p->line_out = p->buf_len;
		p->buf[p->buf_len] = '\0';
		enum mode m = p->mode;
		p->mode = M_CMD;
		p->tag_copy[0] = '\0';
		if (m == M_LINE) {
			new_command(p);
			return IMAP_PARSE_LINE;
		}
		bool done = upper_eq(p->buf, p->buf_len, "DONE");
		new_command(p);
		if (done)
			return IMAP_PARSE_DONE;
		p->error = "Expected DONE";
		return IMAP_PARSE_ERROR;
	}
	if (++p->line_len > p->set.line_max)
		return fatal(p, "Input line too long");
	if (p->st == S_LINE_CR || c == 0) {
		p->mode = M_CMD;
		p->tag_copy[0] = '\0';
		return fail(p, c == 0 ? "NULs not allowed" : "CR without LF", false);
	}
	if (c == '\r') {
		p->st = S_LINE_CR;
		return IMAP_PARSE_MORE;
	}
	p->buf[p->buf_len++] = (char)c;
	return IMAP_PARSE_MORE;
}

imap_parse_status imap_parser_feed(imap_parser *p, const uint8_t *data,
				   size_t len, size_t *used_r)
{
	size_t i = 0;
	imap_parse_status r = IMAP_PARSE_MORE;
	*used_r = 0;
	if (p->fatal)
		return IMAP_PARSE_FATAL;
	while (i < len && r == IMAP_PARSE_MORE) {
		if (p->st == S_LDATA || p->st == S_SKIP_LIT) {
			size_t n = len - i < p->lit_left ? len - i : p->lit_left;
			if (p->st == S_LDATA) {
				if (memchr(data + i, 0, n) != NULL) {
					/* skip what is left of the literal, then the line */
					const uint8_t *z = memchr(data + i, 0, n);
					size_t k = (size_t)(z - (data + i)) + 1;
					p->lit_left -= k;
					i += k;
					r = fail(p, "NULs not allowed in literals", false);
					if (p->lit_left > 0)
						p->st = S_SKIP_LIT;
					continue;
				}
				memcpy(p->buf + p->buf_len, data + i, n);
				p->buf_len += n;
			}
			p->lit_left -= n;
			i += n;
			if (p->lit_left == 0) {
				if (p->st == S_LDATA)
					r = end_token(p, IMAP_ARG_LITERAL);
				else
					p->st = S_SKIP;
			}
			continue;
		}
		if (p->st == S_LINE || p->st == S_LINE_CR)
			r = line_step(p, data[i]);
		else
			r = step(p, data[i]);
		i++;
	}
	*used_r = i;
	return r;
}
