/*
 * test-imap-parse.c — the IMAP command parser (src/imap/imap-parse.c):
 * every command of issue 6 parses, every kind of malformed input gives
 * BAD with a reason or BYE (TESTING.md I1–I5, I8), and every case gives
 * the same events fed whole and one byte at a time.  Events are written
 * as a transcript ("CMD a FETCH [A:1:* (A:FLAGS)]", "CONT", "BAD a
 * reason", "BYE reason") and compared as text.
 */
#include "test-common.h"

#include "imap-parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
	char s[8192];
	size_t n;
} out;

static void add(out *o, const char *t, size_t len)
{
	if (o->n + len + 1 >= sizeof(o->s))
		len = sizeof(o->s) - o->n - 1;
	memcpy(o->s + o->n, t, len);
	o->n += len;
	o->s[o->n] = '\0';
}

static void adds(out *o, const char *t)
{
	add(o, t, strlen(t));
}

static void dump(out *o, const imap_arg *a)
{
	for (bool first = true; a != NULL; a = a->next, first = false) {
		if (!first)
			adds(o, " ");
		switch (a->type) {
		case IMAP_ARG_ATOM: adds(o, "A:"); break;
		case IMAP_ARG_QUOTED: adds(o, "Q:"); break;
		case IMAP_ARG_LITERAL: adds(o, a->literal_plus ? "L+:" : "L:"); break;
		case IMAP_ARG_NIL: adds(o, "NIL"); continue;
		case IMAP_ARG_LIST:
			adds(o, "(");
			dump(o, a->child);
			adds(o, ")");
			continue;
		}
		add(o, a->str, a->len);
	}
}

/* Feed in pieces of chunk bytes (0: all at once); idle after IDLE. */
static void run(imap_parser_settings *set, const char *in, size_t len,
		size_t chunk, out *o)
{
	imap_parser *p;
	assert_int_equal(imap_parser_new(set, &p), 0);
	o->n = 0;
	o->s[0] = '\0';
	size_t off = 0;
	while (off < len) {
		size_t piece = chunk == 0 || chunk > len - off ? len - off : chunk;
		size_t used;
		imap_parse_status r = imap_parser_feed(p, (const uint8_t *)in + off, piece, &used);
		assert_true(used <= piece);
		off += used;
		if (r == IMAP_PARSE_MORE) {
			assert_int_equal(used, piece);
			continue;
		}
		if (o->n > 0)
			adds(o, "|");
		if (r == IMAP_PARSE_COMMAND) {
			const imap_command *c = imap_parser_command(p);
			adds(o, "CMD ");
			adds(o, c->tag);
			adds(o, c->uid ? " UID " : " ");
			adds(o, c->name);
			adds(o, " [");
			dump(o, c->args);
			adds(o, "]");
			if (c->cmd == IMAP_CMD_IDLE)
				imap_parser_idle(p);
			if (c->cmd == IMAP_CMD_AUTHENTICATE && c->argc == 1)
				imap_parser_expect_line(p);
		} else if (r == IMAP_PARSE_CONTINUE) {
			adds(o, "CONT");
		} else if (r == IMAP_PARSE_DONE) {
			adds(o, "DONE");
		} else if (r == IMAP_PARSE_LINE) {
			size_t n;
			const char *l = imap_parser_line(p, &n);
			adds(o, "LINE ");
			add(o, l, n);
		} else if (r == IMAP_PARSE_ERROR) {
			const char *t = imap_parser_error_tag(p);
			adds(o, "BAD ");
			adds(o, t != NULL ? t : "*");
			adds(o, " ");
			adds(o, imap_parser_error(p));
		} else {
			assert_int_equal(r, IMAP_PARSE_FATAL);
			adds(o, "BYE ");
			adds(o, imap_parser_error(p));
			size_t u;
			assert_int_equal(imap_parser_feed(p, (const uint8_t *)"x", 1, &u),
					 IMAP_PARSE_FATAL);
			assert_int_equal(u, 0);
			break;
		}
	}
	imap_parser_free(&p);
	assert_null(p);
}

/* The transcript must be want, fed whole, byte by byte and in 3s. */
static void expect_set(imap_parser_settings *set, const char *in, size_t len,
		       const char *want)
{
	out a, b, c;
	run(set, in, len, 0, &a);
	run(set, in, len, 1, &b);
	run(set, in, len, 3, &c);
	if (strcmp(a.s, want) != 0) {
		fprintf(stderr, "input: %.*s\nwant: %s\ngot:  %s\n", (int)len, in, want, a.s);
		fail();
	}
	assert_string_equal(b.s, want);
	assert_string_equal(c.s, want);
}

#define EXPECT(in, want) expect_set(NULL, in, sizeof(in) - 1, want)

static void test_simple_commands(void **state)
{
	(void)state;
	EXPECT("a CAPABILITY\r\n", "CMD a CAPABILITY []");
	EXPECT("a1 noop\r\nb2 LOGOUT\r\n", "CMD a1 NOOP []|CMD b2 LOGOUT []");
	EXPECT("x STARTTLS\r\n", "CMD x STARTTLS []");
	EXPECT("x CHECK\r\nx CLOSE\r\nx EXPUNGE\r\nx NAMESPACE\r\n",
	       "CMD x CHECK []|CMD x CLOSE []|CMD x EXPUNGE []|CMD x NAMESPACE []");
	EXPECT("a LOGIN alice \"se\\\"cret\"\r\n", "CMD a LOGIN [A:alice Q:se\"cret]");
	EXPECT("a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
	       "CONT|CMD a LOGIN [L:alice L+:secret]");
	EXPECT("a SELECT INBOX\r\nb EXAMINE \"Sent Items\"\r\n",
	       "CMD a SELECT [A:INBOX]|CMD b EXAMINE [Q:Sent Items]");
	EXPECT("a SELECT INBOX (CONDSTORE)\r\n", "CMD a SELECT [A:INBOX (A:CONDSTORE)]");
	EXPECT("a CREATE Drafts (USE (\\Drafts))\r\n",
	       "CMD a CREATE [A:Drafts (A:USE (A:\\Drafts))]");
	EXPECT("a DELETE x\r\na RENAME x y\r\na SUBSCRIBE x\r\na UNSUBSCRIBE NIL\r\n",
	       "CMD a DELETE [A:x]|CMD a RENAME [A:x A:y]|CMD a SUBSCRIBE [A:x]|"
	       "CMD a UNSUBSCRIBE [NIL]");
	EXPECT("a LIST \"\" *\r\nb LSUB \"\" %\r\n",
	       "CMD a LIST [Q: A:*]|CMD b LSUB [Q: A:%]");
	EXPECT("a LIST (SPECIAL-USE) \"\" * RETURN (SUBSCRIBED)\r\n",
	       "CMD a LIST [(A:SPECIAL-USE) Q: A:* A:RETURN (A:SUBSCRIBED)]");
	EXPECT("a STATUS INBOX (MESSAGES UIDNEXT)\r\n",
	       "CMD a STATUS [A:INBOX (A:MESSAGES A:UIDNEXT)]");
	EXPECT("a APPEND INBOX (\\Seen) \"01-Jan-2026 00:00:00 +0000\" {3+}\r\nabc\r\n",
	       "CMD a APPEND [A:INBOX (A:\\Seen) Q:01-Jan-2026 00:00:00 +0000 L+:abc]");
	EXPECT("a APPEND INBOX {0}\r\n\r\n", "CONT|CMD a APPEND [A:INBOX L:]");
	EXPECT("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
	       "CMD a AUTHENTICATE [A:PLAIN A:AGFsaWNlAHNlY3JldA==]");
	EXPECT("a AUTHENTICATE PLAIN\r\nAGFsaWNl\r\nb NOOP\r\n",
	       "CMD a AUTHENTICATE [A:PLAIN]|LINE AGFsaWNl|CMD b NOOP []");
	EXPECT("a IDLE\r\nDONE\r\nb NOOP\r\n", "CMD a IDLE []|DONE|CMD b NOOP []");
	EXPECT("a IDLE\r\nNOOP\r\n", "CMD a IDLE []|BAD * Expected DONE");
}

static void test_fetch_store_search(void **state)
{
	(void)state;
	EXPECT("a FETCH 1:* (FLAGS UID)\r\n", "CMD a FETCH [A:1:* (A:FLAGS A:UID)]");
	EXPECT("a FETCH 2,4:7 ALL\r\n", "CMD a FETCH [A:2,4:7 A:ALL]");
	EXPECT("a FETCH 1 BODY[]\r\n", "CMD a FETCH [A:1 A:BODY[]]");
	EXPECT("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.1024> RFC822.SIZE)\r\n",
	       "CMD a FETCH [A:1 (A:BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.1024> "
	       "A:RFC822.SIZE)]");
	EXPECT("a FETCH 1 (BODY[1.2.MIME] BODY[3.TEXT] BODY[HEADER.FIELDS.NOT (X)])\r\n",
	       "CMD a FETCH [A:1 (A:BODY[1.2.MIME] A:BODY[3.TEXT] "
	       "A:BODY[HEADER.FIELDS.NOT (X)])]");
	EXPECT("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n",
	       "CMD a UID FETCH [A:1:* (A:FLAGS) (A:CHANGEDSINCE A:5)]");
	EXPECT("a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)\r\n",
	       "CMD a STORE [A:1 A:+FLAGS.SILENT (A:\\Seen A:\\Deleted)]");
	EXPECT("a UID STORE 1:3 -flags \\Seen\r\n",
	       "CMD a UID STORE [A:1:3 A:-flags A:\\Seen]");
	EXPECT("a STORE 1 FLAGS ()\r\n", "CMD a STORE [A:1 A:FLAGS ()]");
	EXPECT("a COPY 1:2 Trash\r\nb UID MOVE 5 Archive\r\nc MOVE 1 x\r\n",
	       "CMD a COPY [A:1:2 A:Trash]|CMD b UID MOVE [A:5 A:Archive]|"
	       "CMD c MOVE [A:1 A:x]");
	EXPECT("a UID COPY 1 x\r\nb UID EXPUNGE 1:3\r\n",
	       "CMD a UID COPY [A:1 A:x]|CMD b UID EXPUNGE [A:1:3]");
	EXPECT("a SEARCH CHARSET UTF-8 OR (FROM x) (TO {1+}\r\ny) UNSEEN\r\n",
	       "CMD a SEARCH [A:CHARSET A:UTF-8 A:OR (A:FROM A:x) (A:TO L+:y) A:UNSEEN]");
	EXPECT("a UID SEARCH 1:* NOT DELETED\r\n",
	       "CMD a UID SEARCH [A:1:* A:NOT A:DELETED]");
	/* bad shapes */
	EXPECT("a FETCH 0 FLAGS\r\n", "BAD a Invalid sequence set");
	EXPECT("a FETCH 1:4294967296 FLAGS\r\n", "BAD a Invalid sequence set");
	EXPECT("a FETCH 1,,2 FLAGS\r\n", "BAD a Invalid sequence set");
	EXPECT("a FETCH 1 BOGUS\r\n", "BAD a Unknown FETCH item");
	EXPECT("a FETCH 1 (ALL)\r\n", "BAD a Unknown FETCH item");
	EXPECT("a FETCH 1 BODY[1.]\r\n", "BAD a Invalid BODY[section]");
	EXPECT("a FETCH 1 BODY[MIME]\r\n", "BAD a Invalid BODY[section]");
	EXPECT("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "BAD a Invalid BODY[section]");
	EXPECT("a FETCH 1 BODY[]<1>\r\n", "BAD a Invalid partial <n.m>");
	EXPECT("a FETCH 1 BODY[]<1.0>\r\n", "BAD a Invalid partial <n.m>");
	EXPECT("a FETCH 1 BODY[]x\r\n", "BAD a Junk after FETCH item");
	EXPECT("a FETCH 1 BODY[TEXT\r\n", "BAD a Missing ']'");
	EXPECT("a STORE 1 FLAGZ (\\Seen)\r\n", "BAD a Invalid STORE item");
	EXPECT("a STORE 1 FLAGS ((x))\r\n", "BAD a Invalid flag list");
	EXPECT("a UID FROB 1\r\n", "BAD a Invalid UID command");
	EXPECT("a UID LOGIN x y\r\n", "BAD a Invalid UID command");
	EXPECT("a EXPUNGE 1\r\n", "BAD a Unexpected arguments");
	EXPECT("a SEARCH\r\n", "BAD a Missing search keys");
	EXPECT("a SEARCH CHARSET\r\n", "BAD a Invalid CHARSET");
	EXPECT("a APPEND INBOX (\\Seen)\r\n", "BAD a APPEND needs a message literal");
	EXPECT("a STATUS INBOX ()\r\n", "BAD a Invalid STATUS");
	EXPECT("a LOGIN x\r\n", "BAD a Expected two strings");
	EXPECT("a LOGIN (x) y\r\n", "BAD a Expected two strings");
	EXPECT("a COPY 1\r\n", "BAD a Expected a sequence set and a mailbox");
	EXPECT("a NOOP x\r\n", "BAD a Unexpected arguments");
}

static void test_seqset(void **state)
{
	(void)state;
	imap_seq_range r[4];
	size_t n;
	const char *e;
	assert_int_equal(imap_seqset_parse("*:1,5,4294967295", 16, r, 4, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_true(r[0].lo == 1 && r[0].hi == IMAP_SEQ_STAR);
	assert_true(r[1].lo == 5 && r[1].hi == 5);
	assert_true(r[2].lo == 4294967295u && r[2].hi == 4294967295u);
	assert_int_equal(imap_seqset_parse("1,2,3,4,5", 9, r, 4, &n, &e), -1);
	assert_int_equal(imap_seqset_parse("1,2,3,4,5", 9, NULL, 0, &n, &e), 0);
	assert_int_equal(n, 5);
	const char *bad[] = { "", "0", "01", "1:", ":1", "1,", "*:*:1", "a", "1 2",
			      "4294967296", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imap_seqset_parse(bad[i], strlen(bad[i]), r, 4, &n, &e), -1);
}

static void test_malformed(void **state)
{
	(void)state;
	/* missing tag, bad tag characters, unknown command */
	EXPECT(" NOOP\r\n", "BAD * Missing tag");
	EXPECT("a+ NOOP\r\n", "BAD * Invalid characters in tag");
	EXPECT("a* NOOP\r\n", "BAD * Invalid characters in tag");
	EXPECT("\xe9 NOOP\r\nb NOOP\r\n", "BAD * Invalid characters in tag|CMD b NOOP []");
	EXPECT("a\r\n", "BAD * Missing command");
	EXPECT("a \r\n", "BAD a Missing command");
	EXPECT("a FROB\r\nb NOOP\r\n", "BAD a Unknown command|CMD b NOOP []");
	EXPECT("a FROB x y\r\nb NOOP\r\n", "BAD a Unknown command|CMD b NOOP []");
	/* unbalanced parentheses, spaces */
	EXPECT("a STATUS x (MESSAGES\r\n", "BAD a Missing ')'");
	EXPECT("a STATUS x (MESSAGES))\r\n", "BAD a Unexpected ')'");
	EXPECT("a STATUS x )\r\n", "BAD a Unexpected ')'");
	EXPECT("a STATUS x (MESSAGES )\r\n", "BAD a Unexpected ')'");
	EXPECT("a LOGIN  x y\r\n", "BAD a Double space");
	EXPECT("a NOOP \r\n", "BAD a Trailing space");
	EXPECT("a LOGIN x\"y\" z\r\n", "BAD a Invalid characters in atom");
	EXPECT("a LOGIN \"x\"y z\r\n", "BAD a Missing space");
	EXPECT("a LOGIN \"x\\y\" z\r\n", "BAD a Invalid escape in string");
	EXPECT("a LOGIN \"x\r\n", "BAD a Missing '\"'");
	EXPECT("a LOGIN x\xff y\r\n", "BAD a 8-bit characters in atom");
	EXPECT("a LOGIN \"\xc3\xa9\" y\r\n", "CMD a LOGIN [Q:\xc3\xa9 A:y]");
	/* literal headers */
	EXPECT("a LOGIN {x}\r\n", "BAD a Invalid literal header");
	EXPECT("a LOGIN {}\r\n", "BAD a Invalid literal header");
	EXPECT("a LOGIN {+}\r\n", "BAD a Invalid literal header");
	EXPECT("a LOGIN {1++}\r\n", "BAD a Invalid literal header");
	EXPECT("a LOGIN {1} x\r\n", "BAD a Missing CRLF after literal header");
	EXPECT("a LOGIN {3}\r\nabc\r\n", "CONT|BAD a Expected two strings");
	/* I3: NULs */
	EXPECT("a LOGIN \"ali\0ce\" \"x\"\r\nb NOOP\r\n",
	       "BAD a NULs not allowed in strings|CMD b NOOP []");
	EXPECT("a NOOP\0\r\n", "BAD a NULs not allowed");
	EXPECT("a LOGIN {5+}\r\nal\0ce x\r\nb NOOP\r\n",
	       "BAD a NULs not allowed in literals|CMD b NOOP []");
	/* I5: bare LF ends a line; a bare CR is refused */
	EXPECT("a CAPABILITY\n", "CMD a CAPABILITY []");
	EXPECT("a LOGIN {1}\nx y\n", "CONT|CMD a LOGIN [L:x A:y]");
	EXPECT("a NOOP\rb NOOP\r\nc NOOP\r\n", "BAD a CR without LF|CMD c NOOP []");
	EXPECT("\rb NOOP\r\n", "BAD * CR without LF");
	EXPECT("\r\n\n\r\na NOOP\r\n", "CMD a NOOP []");
	/* after an error, a LITERAL+ literal in the skipped line is skipped:
	 * its data never becomes a command */
	EXPECT("a FROB {10+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n",
	       "BAD a Unknown command|CMD c NOOP []");
	EXPECT("a FROB {0+}\r\n x\r\nc NOOP\r\n", "BAD a Unknown command|CMD c NOOP []");
	/* a synchronising one ends the skipped command (no continuation) */
	EXPECT("a FROB {12}\r\nc NOOP\r\n", "BAD a Unknown command|CMD c NOOP []");
	/* I6: the parser stops right after STARTTLS */
	{
		imap_parser *p;
		size_t used;
		const char *in = "a STARTTLS\r\nb CAPABILITY\r\n";
		assert_int_equal(imap_parser_new(NULL, &p), 0);
		assert_int_equal(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used),
				 IMAP_PARSE_COMMAND);
		assert_int_equal(used, 12);
		imap_parser_free(&p);
	}
}

static void test_limits(void **state)
{
	(void)state;
	imap_parser_settings set = { .line_max = 100, .literal_max = 10,
				     .cmd_max = 200, .depth_max = 3, .args_max = 8 };
	/* I1: literals over the cap, synchronising or not, before any data */
	EXPECT("a LOGIN {4294967295}\r\n", "BYE Literal size too large");
	EXPECT("a LOGIN {100000000+}\r\n", "BYE Literal size too large");
	EXPECT("a LOGIN {99999999999999999999999}\r\n", "BYE Literal size too large");
#define EXPECT_S(in, want) expect_set(&set, in, sizeof(in) - 1, want)
	EXPECT_S("a LOGIN {10}\r\n0123456789 x\r\n", "CONT|CMD a LOGIN [L:0123456789 A:x]");
	EXPECT_S("a LOGIN {11}\r\n", "BYE Literal size too large");
	EXPECT_S("a FROB {11+}\r\n01234567890\r\n",
		 "BAD a Unknown command|BYE Literal size too large");
	/* I2: nesting */
	EXPECT_S("a SEARCH (((x)))\r\n", "CMD a SEARCH [(((A:x)))]");
	EXPECT_S("a SEARCH ((((x))))\r\nb NOOP\r\n", "BAD a Too many '('|CMD b NOOP []");
	/* arguments */
	EXPECT_S("a SEARCH 1 2 3 4 5 6 7 8\r\n", "CMD a SEARCH [A:1 A:2 A:3 A:4 A:5 A:6 A:7 A:8]");
	EXPECT_S("a SEARCH 1 2 3 4 5 6 7 8 9\r\nb NOOP\r\n",
		 "BAD a Too many arguments|CMD b NOOP []");
	/* I4: line length */
	char line[300];
	memset(line, 'x', sizeof(line));
	memcpy(line, "a LOGIN ", 8);
	expect_set(&set, line, 99, "");
	expect_set(&set, line, 101, "BYE Input line too long");
	/* total command size: literals add up */
	EXPECT_S("a SEARCH {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789"
		 " {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789"
		 " {10+}\r\n0123456789 {10+}\r\n0123456789\r\n",
		 "CMD a SEARCH [L+:0123456789 L+:0123456789 L+:0123456789 L+:0123456789"
		 " L+:0123456789 L+:0123456789 L+:0123456789 L+:0123456789]");
	set.line_max = 64;
	set.cmd_max = 64;
	EXPECT_S("a SEARCH {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789"
		 " {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789"
		 " {10+}\r\n0123456789 {10+}\r\n0123456789\r\n",
		 "BYE Command too large");
	/* I4 with defaults: 100 KB line */
	size_t big = 100 * 1024;
	char *b = malloc(big);
	assert_non_null(b);
	memset(b, 'x', big);
	memcpy(b, "a LOGIN ", 8);
	expect_set(NULL, b, big, "BYE Input line too long");
	/* I2 with defaults: 2000 '(' */
	memset(b, '(', 2000);
	memcpy(b, "a NOOP ", 7);
	memcpy(b + 2000, "\r\n", 2);
	expect_set(NULL, b, 2002, "BAD a Too many '('");
	free(b);
	/* the literal cap can be raised after login */
	imap_parser *p;
	size_t used;
	assert_int_equal(imap_parser_new(&set, &p), 0);
	imap_parser_set_literal_max(p, 50);
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"a LOGIN {40}\r\n", 14, &used),
			 IMAP_PARSE_CONTINUE);
	imap_parser_free(&p);
	imap_parser_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_fetch_store_search),
		cmocka_unit_test(test_seqset),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
