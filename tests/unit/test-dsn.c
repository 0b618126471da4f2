/*
 * test-dsn.c — src/mime/dsn: delivery status notifications.  Each DSN
 * built here is checked for form (CRLF only, lines within 998 octets, the
 * top-level fields, mime_parse finds multipart/report with exactly the
 * three parts and no boundary trouble) and then for content: the
 * delivery-status part is read back block by block with mail-header.h
 * and its fields compared.  Cases: each action, mixed recipients,
 * injection attempts in diag / remote_mta / envid / addresses (CR, LF,
 * boundary text, header lines), a boundary present in the original, the
 * size cut-off, originals without an empty line, 8-bit originals, long
 * lines, 1000 recipients, refusals, determinism.  Python's email package
 * reads the same output in tests/e2e/test_dsn_format.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dsn.h"
#include "mail-header.h"
#include "mime.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_NOW UINT64_C(1767225600) /* Thu, 01 Jan 2026 00:00:00 +0000 */

static const uint8_t rnd[16] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};
#define RND_HEX "00112233445566778899aabbccddeeff"

static const char orig_msg[] =
	"From: alice@example.org\r\n"
	"To: bob@example.net\r\n"
	"Subject: hello\r\n"
	"Message-ID: <1@example.org>\r\n"
	"\r\n"
	"Hi Bob,\r\n"
	"how are you?\r\n";

static dsn_report base_report(const dsn_rcpt *rcpts, size_t n)
{
	dsn_report r = {
		.reporting_mta = "mx.example.org",
		.from = "MAILER-DAEMON@mx.example.org",
		.to = "alice@example.org",
		.msgid_domain = "mx.example.org",
		.random16 = rnd,
		.arrival = T_NOW - 3600,
		.now = T_NOW,
		.original = (const uint8_t *)orig_msg,
		.original_len = sizeof(orig_msg) - 1,
		.full = true,
		.max_original = 1024 * 1024,
		.rcpts = rcpts,
		.n = n,
	};
	return r;
}

/* ---- Reading a DSN back ---- */

typedef struct dsn_view {
	char *msg;         /* NUL-terminated copy */
	size_t len;
	mime_tree *t;
	const mime_part *report, *human, *status, *orig;
	char *ds;          /* the delivery-status part's text */
	size_t ds_len;
} dsn_view;

/* Form checks every DSN must pass; fills v. */
static void check_form(const uint8_t *out, size_t len, dsn_view *v)
{
	memset(v, 0, sizeof(*v));
	v->msg = malloc(len + 1);
	assert_non_null(v->msg);
	memcpy(v->msg, out, len);
	v->msg[len] = '\0';
	v->len = len;

	/* CRLF only, lines within 998 octets, no NUL */
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		assert_int_not_equal(out[i], 0);
		if (out[i] == '\r') {
			assert_true(i + 1 < len && out[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_int_not_equal(out[i], '\n'); /* no bare LF */
		col++;
		assert_true(col <= 998);
	}
	assert_true(len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n');

	/* the top-level fields, once each */
	static const char *const want[] = {
		"Date", "From", "To", "Subject", "Message-ID",
		"Auto-Submitted", "MIME-Version", "Content-Type",
	};
	size_t seen[8] = {0};
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, out, len);
	while (mail_header_next(&it, &f) == 1) {
		assert_false(f.malformed);
		for (size_t k = 0; k < 8; k++)
			if (mail_field_is(out, &f, want[k]))
				seen[k]++;
	}
	assert_false(it.no_separator);
	for (size_t k = 0; k < 8; k++)
		assert_int_equal(seen[k], 1);
	assert_non_null(strstr(v->msg, "\r\nAuto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(v->msg, "\r\nMIME-Version: 1.0\r\n"));

	/* the MIME structure: multipart/report with three parts */
	assert_int_equal(mime_parse(out, len, NULL, &v->t, NULL), MIME_OK);
	const mime_tree *t = v->t;
	v->report = &t->parts[0];
	assert_string_equal(v->report->type, "multipart");
	assert_string_equal(v->report->subtype, "report");
	assert_int_equal(v->report->n_children, 3);
	for (size_t i = 0; i < t->n; i++)
		assert_int_equal(t->parts[i].flags &
				 (MIME_PART_BOUNDARY_COLLISION |
				  MIME_PART_UNTERMINATED |
				  MIME_PART_NO_BOUNDARY | MIME_PART_BAD_CTYPE),
				 0);
	v->human = &t->parts[v->report->first_child];
	v->status = &t->parts[v->human->next_sibling];
	v->orig = &t->parts[v->status->next_sibling];
	assert_string_equal(v->human->type, "text");
	assert_string_equal(v->human->subtype, "plain");
	assert_string_equal(v->human->charset, "us-ascii");
	assert_string_equal(v->status->type, "message");
	assert_string_equal(v->status->subtype, "delivery-status");
	assert_true(strcmp(v->orig->subtype, "rfc822") == 0 ||
		    strcmp(v->orig->subtype, "rfc822-headers") == 0);
	/* the delimiters: exactly three and a close one */
	char delim[128];
	snprintf(delim, sizeof(delim), "\r\n--%s", v->report->boundary);
	size_t nd = 0;
	for (const char *p = v->msg; (p = strstr(p, delim)) != NULL; p++)
		nd++;
	assert_int_equal(nd, 4);

	v->ds_len = v->status->end - v->status->body_off;
	v->ds = malloc(v->ds_len + 1);
	assert_non_null(v->ds);
	memcpy(v->ds, out + v->status->body_off, v->ds_len);
	v->ds[v->ds_len] = '\0';
}

static void view_free(dsn_view *v)
{
	mime_tree_destroy(&v->t);
	free(v->msg);
	free(v->ds);
}

/* The blocks of the delivery-status part: how many there are, and the
 * unfolded value of `name` in block b (NULL when absent; static). */
static size_t ds_blocks(const dsn_view *v)
{
	size_t n = 0, pos = 0;
	const uint8_t *m = (const uint8_t *)v->ds;
	while (pos < v->ds_len) {
		mail_header_iter it;
		mail_field f;
		size_t fields = 0;
		mail_header_iter_init(&it, m + pos, v->ds_len - pos);
		while (mail_header_next(&it, &f) == 1) {
			assert_false(f.malformed);
			fields++;
		}
		if (fields > 0)
			n++;
		assert_true(it.body_off > 0);
		pos += it.body_off;
	}
	return n;
}

static const char *ds_field(const dsn_view *v, size_t block,
			    const char *name)
{
	static char val[4096];
	size_t n = 0, pos = 0;
	const uint8_t *m = (const uint8_t *)v->ds;
	while (pos < v->ds_len) {
		mail_header_iter it;
		mail_field f;
		const char *found = NULL;
		size_t fields = 0;
		mail_header_iter_init(&it, m + pos, v->ds_len - pos);
		while (mail_header_next(&it, &f) == 1) {
			fields++;
			if (n == block && mail_field_is(m + pos, &f, name)) {
				mail_field_unfold(m + pos, &f, val,
						  sizeof(val));
				found = val;
			}
		}
		if (fields > 0 && n++ == block)
			return found;
		pos += it.body_off;
	}
	return NULL;
}

static void build_ok(const dsn_report *r, dsn_view *v)
{
	uint8_t *out = NULL;
	size_t len = 0;
	const char *err = NULL;
	int rc = dsn_build(r, &out, &len, &err);
	if (rc != 0)
		fail_msg("dsn_build: %s", err);
	check_form(out, len, v);
	free(out);
}

static void build_fails(const dsn_report *r, const char *why)
{
	uint8_t *out = (uint8_t *)"x";
	size_t len = 1;
	const char *err = NULL;
	assert_int_equal(dsn_build(r, &out, &len, &err), -1);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_non_null(err);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, why);
}

/* The top-level field `name` unfolded (static). */
static const char *top_field(const dsn_view *v, const char *name)
{
	static char val[1024];
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, (const uint8_t *)v->msg, v->len);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is((const uint8_t *)v->msg, &f, name)) {
			mail_field_unfold((const uint8_t *)v->msg, &f, val,
					  sizeof(val));
			return val;
		}
	}
	return NULL;
}

static bool human_has(const dsn_view *v, const char *s)
{
	size_t n = v->human->end - v->human->body_off;
	char *h = malloc(n + 1);
	assert_non_null(h);
	memcpy(h, v->msg + v->human->body_off, n);
	h[n] = '\0';
	bool r = strstr(h, s) != NULL;
	free(h);
	return r;
}

/* ---- Tests ---- */

static void test_failed(void **state)
{
	(void)state;
	dsn_rcpt rc = {
		.final_rcpt = "bob@example.net",
		.orcpt = "rfc822;Bob@Example.net",
		.action = DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx.example.net",
		.diag = "550 5.1.1 <bob@example.net>: no such user",
		.last_attempt = T_NOW - 60,
	};
	dsn_report r = base_report(&rc, 1);
	r.envid = "QQ314159";
	dsn_view v;
	build_ok(&r, &v);
	assert_string_equal(top_field(&v, "Subject"),
			    "Undelivered Mail Returned to Sender");
	assert_string_equal(top_field(&v, "From"),
			    "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
	assert_string_equal(top_field(&v, "To"), "alice@example.org");
	assert_string_equal(top_field(&v, "Date"),
			    "Thu, 01 Jan 2026 00:00:00 +0000");
	assert_string_equal(top_field(&v, "Message-ID"),
			    "<" RND_HEX "@mx.example.org>");
	assert_string_equal(v.report->boundary, "dsn_" RND_HEX);
	assert_non_null(strstr(top_field(&v, "Content-Type"),
			       "report-type=delivery-status"));

	assert_int_equal(ds_blocks(&v), 2);
	assert_string_equal(ds_field(&v, 0, "Reporting-MTA"),
			    "dns; mx.example.org");
	assert_string_equal(ds_field(&v, 0, "Original-Envelope-Id"),
			    "QQ314159");
	assert_string_equal(ds_field(&v, 0, "Arrival-Date"),
			    "Wed, 31 Dec 2025 23:00:00 +0000");
	assert_string_equal(ds_field(&v, 1, "Original-Recipient"),
			    "rfc822; Bob@Example.net");
	assert_string_equal(ds_field(&v, 1, "Final-Recipient"),
			    "rfc822; bob@example.net");
	assert_string_equal(ds_field(&v, 1, "Action"), "failed");
	assert_string_equal(ds_field(&v, 1, "Status"), "5.1.1");
	assert_string_equal(ds_field(&v, 1, "Remote-MTA"),
			    "dns; mx.example.net");
	assert_string_equal(ds_field(&v, 1, "Diagnostic-Code"),
			    "smtp; 550 5.1.1 <bob@example.net>: no such user");
	assert_string_equal(ds_field(&v, 1, "Last-Attempt-Date"),
			    "Wed, 31 Dec 2025 23:59:00 +0000");
	assert_null(ds_field(&v, 1, "Will-Retry-Until"));

	/* the whole original, unchanged */
	assert_string_equal(v.orig->subtype, "rfc822");
	assert_int_equal(v.orig->cte, MIME_CTE_NONE);
	assert_int_equal(v.orig->end - v.orig->body_off, sizeof(orig_msg) - 1);
	assert_memory_equal(v.msg + v.orig->body_off, orig_msg,
			    sizeof(orig_msg) - 1);

	assert_true(human_has(&v, "<bob@example.net>"));
	assert_true(human_has(&v, "mx.example.net said: 550 5.1.1"));
	assert_true(human_has(&v, "nothing more will be tried"));
	view_free(&v);
}

static void test_delayed(void **state)
{
	(void)state;
	dsn_rcpt rc = {
		.final_rcpt = "carol@example.net",
		.action = DSN_DELAYED,
		.status = "4.4.1",
		.last_attempt = T_NOW - 60,
		.will_retry_until = T_NOW + 5 * 86400,
	};
	dsn_report r = base_report(&rc, 1);
	r.full = false; /* RET=HDRS */
	dsn_view v;
	build_ok(&r, &v);
	assert_string_equal(top_field(&v, "Subject"),
			    "Delayed Mail (still being retried)");
	assert_int_equal(ds_blocks(&v), 2);
	assert_null(ds_field(&v, 0, "Original-Envelope-Id"));
	assert_string_equal(ds_field(&v, 1, "Action"), "delayed");
	assert_string_equal(ds_field(&v, 1, "Status"), "4.4.1");
	assert_null(ds_field(&v, 1, "Remote-MTA"));
	assert_null(ds_field(&v, 1, "Diagnostic-Code"));
	assert_null(ds_field(&v, 1, "Original-Recipient"));
	assert_string_equal(ds_field(&v, 1, "Will-Retry-Until"),
			    "Tue, 06 Jan 2026 00:00:00 +0000");
	assert_true(human_has(&v, "keep trying until Tue, 06 Jan 2026"));
	assert_true(human_has(&v, "did not answer")); /* 4.4.1 explained */
	/* headers only */
	assert_string_equal(v.orig->subtype, "rfc822-headers");
	const char *hdr = "From: alice@example.org\r\nTo: bob@example.net\r\n"
			  "Subject: hello\r\nMessage-ID: <1@example.org>\r\n";
	assert_int_equal(v.orig->end - v.orig->body_off, strlen(hdr));
	assert_memory_equal(v.msg + v.orig->body_off, hdr, strlen(hdr));
	view_free(&v);
}

static void test_success_kinds(void **state)
{
	(void)state;
	static const dsn_action acts[] = { DSN_DELIVERED, DSN_RELAYED,
					   DSN_EXPANDED };
	static const char *const names[] = { "delivered", "relayed",
					     "expanded" };
	for (size_t k = 0; k < 3; k++) {
		dsn_rcpt rc = {
			.final_rcpt = "dave@example.net",
			.action = acts[k],
			.status = "2.0.0",
			.remote_mta = "mx.example.net",
			.diag = "250 2.0.0 Ok: queued as 4Xyz",
			.will_retry_until = T_NOW, /* ignored: not delayed */
		};
		dsn_report r = base_report(&rc, 1);
		dsn_view v;
		build_ok(&r, &v);
		assert_string_equal(top_field(&v, "Subject"),
				    "Successful Mail Delivery Report");
		assert_string_equal(ds_field(&v, 1, "Action"), names[k]);
		assert_null(ds_field(&v, 1, "Will-Retry-Until"));
		view_free(&v);
	}
}

static void test_mixed(void **state)
{
	(void)state;
	dsn_rcpt rc[4] = {
		{ .final_rcpt = "a@example.net", .action = DSN_DELIVERED,
		  .status = "2.0.0" },
		{ .final_rcpt = "b@example.net", .action = DSN_DELAYED,
		  .status = "4.2.2", .will_retry_until = T_NOW + 86400 },
		{ .final_rcpt = "c@example.net", .action = DSN_FAILED,
		  .status = "5.2.2", .remote_mta = "mx.example.net",
		  .diag = "552 5.2.2 mailbox full" },
		{ .final_rcpt = "d@example.net", .action = DSN_FAILED,
		  .status = "5.4.4" },
	};
	dsn_report r = base_report(rc, 4);
	dsn_view v;
	build_ok(&r, &v);
	assert_string_equal(top_field(&v, "Subject"),
			    "Undelivered Mail Returned to Sender");
	assert_int_equal(ds_blocks(&v), 5);
	static const char *const act[] = { "delivered", "delayed", "failed",
					   "failed" };
	static const char *const fin[] = { "a", "b", "c", "d" };
	for (size_t i = 0; i < 4; i++) {
		char want[64];
		snprintf(want, sizeof(want), "rfc822; %s@example.net", fin[i]);
		assert_string_equal(ds_field(&v, i + 1, "Final-Recipient"),
				    want);
		assert_string_equal(ds_field(&v, i + 1, "Action"), act[i]);
		assert_string_equal(ds_field(&v, i + 1, "Status"),
				    rc[i].status);
	}
	assert_non_null(ds_field(&v, 2, "Will-Retry-Until"));
	assert_true(human_has(&v, "Delivered:"));
	assert_true(human_has(&v, "still trying"));
	assert_true(human_has(&v, "552 5.2.2 mailbox full"));
	assert_true(human_has(&v, "no route")); /* 5.4.4 explained */

	/* delayed before delivered: the delay subject */
	rc[2].action = rc[3].action = DSN_DELIVERED;
	rc[2].status = rc[3].status = "2.0.0";
	dsn_view w;
	build_ok(&r, &w);
	assert_string_equal(top_field(&w, "Subject"),
			    "Delayed Mail (still being retried)");
	view_free(&w);
	view_free(&v);
}

static void test_injection(void **state)
{
	(void)state;
	/* the remote MX knows our boundary pattern and tries everything */
	static const char diag[] =
		"550 no\r\nContent-Type: text/html\r\n\r\n--dsn_" RND_HEX
		"--\r\nBcc: evil@example.com\r\n.\r\n\x01\x7f\xff end\tx";
	dsn_rcpt rc[2] = {
		{ .final_rcpt = "bob@example.net\r\nBcc: evil@example.com",
		  .orcpt = "rfc822;x@y\r\nX-Injected: 1",
		  .action = DSN_FAILED, .status = "5.0.0",
		  .remote_mta = "mx.example.net\r\nX-Injected: 1 --dsn_",
		  .diag = diag },
		{ .final_rcpt = "c@example.net", .action = DSN_FAILED,
		  .status = "5.0.0", .diag = "\r\n\r\n" },
	};
	dsn_report r = base_report(rc, 2);
	r.envid = "E1\r\nX-Injected: 1";
	dsn_view v;
	build_ok(&r, &v);
	/* no line anywhere starts with an injected field */
	assert_null(strstr(v.msg, "\r\nBcc:"));
	assert_null(strstr(v.msg, "\r\nX-Injected"));
	assert_null(strstr(v.msg, "\r\nContent-Type: text/html"));
	/* the injected delimiter made us pick another boundary */
	assert_string_equal(v.report->boundary, "dsn_" RND_HEX "_1");
	assert_int_equal(ds_blocks(&v), 3);
	assert_string_equal(ds_field(&v, 1, "Diagnostic-Code"),
			    "smtp; 550 no Content-Type: text/html --dsn_" RND_HEX
			    "-- Bcc: evil@example.com . ??? end x");
	assert_string_equal(ds_field(&v, 1, "Remote-MTA"),
			    "dns; mx.example.net??X-Injected:?1?--dsn_");
	assert_string_equal(ds_field(&v, 0, "Original-Envelope-Id"),
			    "E1??X-Injected: 1");
	/* not printable ASCII: the RFC 6533 form, CR LF escaped */
	assert_string_equal(ds_field(&v, 1, "Final-Recipient"),
			    "utf-8; bob@example.net\\x{D}\\x{A}Bcc:\\x{20}"
			    "evil@example.com");
	assert_string_equal(ds_field(&v, 1, "Original-Recipient"),
			    "utf-8; x@y\\x{D}\\x{A}X-Injected:\\x{20}1");
	/* a diag of blanks only: no Diagnostic-Code */
	assert_null(ds_field(&v, 2, "Diagnostic-Code"));
	assert_string_equal(ds_field(&v, 2, "Action"), "failed");
	view_free(&v);

	/* the boundary inside the original is avoided too */
	static const char evil[] = "Subject: x\r\n\r\n--dsn_" RND_HEX
				   "\r\n--dsn_" RND_HEX "_1--\r\n";
	dsn_rcpt one = { .final_rcpt = "b@example.net", .action = DSN_FAILED,
			 .status = "5.1.1" };
	r = base_report(&one, 1);
	r.original = (const uint8_t *)evil;
	r.original_len = sizeof(evil) - 1;
	build_ok(&r, &v);
	assert_string_equal(v.report->boundary, "dsn_" RND_HEX "_2");
	assert_string_equal(v.orig->subtype, "rfc822");
	assert_memory_equal(v.msg + v.orig->body_off, evil, sizeof(evil) - 1);
	view_free(&v);
}

static void test_size_cutoff(void **state)
{
	(void)state;
	dsn_rcpt rc = { .final_rcpt = "b@example.net", .action = DSN_FAILED,
			.status = "5.1.1" };
	dsn_report r = base_report(&rc, 1);
	dsn_view v;
	r.max_original = sizeof(orig_msg) - 1; /* fits exactly */
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822");
	view_free(&v);
	r.max_original = sizeof(orig_msg) - 2; /* one byte short */
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822-headers");
	assert_null(strstr(v.msg, "how are you"));
	assert_non_null(strstr(v.msg, "\r\nSubject: hello\r\n"));
	view_free(&v);
}

static void test_no_blank_line(void **state)
{
	(void)state;
	dsn_rcpt rc = { .final_rcpt = "b@example.net", .action = DSN_FAILED,
			.status = "5.1.1" };
	dsn_report r = base_report(&rc, 1);
	dsn_view v;
	/* only fields, no empty line, no final line end: all header */
	static const char h[] = "From: a@example.org\r\nSubject: no body";
	r.original = (const uint8_t *)h;
	r.original_len = sizeof(h) - 1;
	r.full = false;
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822-headers");
	assert_int_equal(v.orig->end - v.orig->body_off, sizeof(h) + 1);
	assert_memory_equal(v.msg + v.orig->body_off,
			    "From: a@example.org\r\nSubject: no body\r\n",
			    sizeof(h) + 1);
	view_free(&v);
	/* the same attached whole: a line end is added */
	r.full = true;
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822");
	assert_memory_equal(v.msg + v.orig->body_off,
			    "From: a@example.org\r\nSubject: no body\r\n",
			    sizeof(h) + 1);
	view_free(&v);
	/* bare LF: becomes CRLF; the body starts at a non-field line */
	static const char lf[] = "From: a@example.org\nSubject: s\n"
				 "not a field\nbody\n";
	r.original = (const uint8_t *)lf;
	r.original_len = sizeof(lf) - 1;
	r.full = false;
	build_ok(&r, &v);
	assert_int_equal(v.orig->end - v.orig->body_off,
			 strlen("From: a@example.org\r\nSubject: s\r\n"));
	view_free(&v);
	r.full = true;
	build_ok(&r, &v);
	assert_memory_equal(v.msg + v.orig->body_off,
			    "From: a@example.org\r\nSubject: s\r\n"
			    "not a field\r\nbody\r\n", sizeof(lf) + 3);
	view_free(&v);
	/* an empty original */
	r.original = NULL;
	r.original_len = 0;
	build_ok(&r, &v);
	view_free(&v);
}

static void test_8bit_and_long_lines(void **state)
{
	(void)state;
	dsn_rcpt rc = { .final_rcpt = "j\xc3\xb6rg@example.de",
			.orcpt = "utf-8;j\\x{F6}rg@example.de",
			.action = DSN_FAILED, .status = "5.1.1" };
	dsn_report r = base_report(&rc, 1);
	dsn_view v;
	static const char m8[] = "Subject: gr\xc3\xbc\xc3\x9f""e\r\n\r\n"
				 "caf\xc3\xa9\r\n";
	r.original = (const uint8_t *)m8;
	r.original_len = sizeof(m8) - 1;
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822");
	assert_int_equal(v.orig->cte, MIME_CTE_8BIT);
	assert_string_equal(ds_field(&v, 1, "Final-Recipient"),
			    "utf-8; j\\x{F6}rg@example.de");
	assert_string_equal(ds_field(&v, 1, "Original-Recipient"),
			    "utf-8; j\\x{F6}rg@example.de");
	assert_true(human_has(&v, "<j??rg@example.de>"));
	view_free(&v);
	r.full = false;
	build_ok(&r, &v);
	assert_string_equal(v.orig->subtype, "rfc822-headers");
	assert_int_equal(v.orig->cte, MIME_CTE_8BIT);
	view_free(&v);

	/* a 2000-octet body line cannot go as message/rfc822: headers;
	 * a 1500-octet header line is cut at 998 */
	size_t n = 4000;
	char *big = malloc(n);
	assert_non_null(big);
	size_t k = (size_t)snprintf(big, n, "X-Long: ");
	memset(big + k, 'h', 1500);
	k += 1500;
	k += (size_t)snprintf(big + k, n - k, "\r\nSubject: s\r\n\r\n");
	memset(big + k, 'b', 2000);
	k += 2000;
	r.original = (const uint8_t *)big;
	r.original_len = k;
	r.full = true;
	/* a reply without blanks, longer than DSN_DIAG_MAX */
	char *diag = malloc(3001);
	assert_non_null(diag);
	memset(diag, 'd', 3000);
	diag[3000] = '\0';
	rc.diag = diag;
	rc.remote_mta = "mx.example.de";
	build_ok(&r, &v); /* check_form: lines <= 998 */
	assert_string_equal(v.orig->subtype, "rfc822-headers");
	assert_non_null(strstr(v.msg, "\r\nSubject: s\r\n"));
	const char *d = ds_field(&v, 1, "Diagnostic-Code");
	assert_non_null(d);
	assert_true(strlen(d) > 2000 && strlen(d) < 2020);
	assert_non_null(strstr(d, "..."));
	view_free(&v);
	free(diag);
	free(big);
}

static void test_1000_rcpts(void **state)
{
	(void)state;
	dsn_rcpt *rc = calloc(DSN_MAX_RCPTS + 1, sizeof(*rc));
	char (*addr)[32] = calloc(DSN_MAX_RCPTS + 1, sizeof(*addr));
	assert_non_null(rc);
	assert_non_null(addr);
	for (size_t i = 0; i <= DSN_MAX_RCPTS; i++) {
		snprintf(addr[i], sizeof(addr[i]), "u%zu@example.net", i);
		rc[i] = (dsn_rcpt){ .final_rcpt = addr[i],
				    .action = i % 2 ? DSN_DELAYED : DSN_FAILED,
				    .status = i % 2 ? "4.4.1" : "5.1.1",
				    .remote_mta = "mx.example.net",
				    .diag = "421 4.4.1 try again later, please",
				    .will_retry_until = T_NOW + 86400 };
	}
	dsn_report r = base_report(rc, DSN_MAX_RCPTS);
	dsn_view v;
	build_ok(&r, &v);
	assert_int_equal(ds_blocks(&v), DSN_MAX_RCPTS + 1);
	assert_string_equal(ds_field(&v, 1000, "Final-Recipient"),
			    "rfc822; u999@example.net");
	view_free(&v);
	r.n = DSN_MAX_RCPTS + 1;
	build_fails(&r, "1 to 1000 recipients");
	free(addr);
	free(rc);
}

static void test_refusals(void **state)
{
	(void)state;
	dsn_rcpt rc = { .final_rcpt = "b@example.net", .action = DSN_FAILED,
			.status = "5.1.1" };
	dsn_report r;

	build_fails(NULL, "no report");
	r = base_report(&rc, 0);
	build_fails(&r, "1 to 1000");
	r = base_report(&rc, 1);
	r.to = "";
	build_fails(&r, "null sender");
	r.to = NULL;
	build_fails(&r, "null sender");
	r.to = "alice@example.org\r\nBcc: x@y";
	build_fails(&r, "invalid To");
	r.to = "alice@example.org, x@y";
	build_fails(&r, "invalid To");
	r.to = "alice";
	build_fails(&r, "invalid To");
	r = base_report(&rc, 1);
	r.from = "MAILER-DAEMON@x>\r\nX: y";
	build_fails(&r, "invalid From");
	r = base_report(&rc, 1);
	r.reporting_mta = "mx example";
	build_fails(&r, "Reporting-MTA");
	r = base_report(&rc, 1);
	r.msgid_domain = NULL;
	build_fails(&r, "Message-ID domain");
	r = base_report(&rc, 1);
	r.random16 = NULL;
	build_fails(&r, "random");
	r = base_report(&rc, 1);
	r.now = UINT64_C(253402300800); /* year 10000 */
	build_fails(&r, "1900..9999");
	r = base_report(&rc, 1);
	static const char *const bad_status[] = {
		"", "5", "5.1", "3.1.1", "5.1.1.1", "5.1111.1", "5..1",
		"5.1.", "5.1.1 ", "x.1.1", NULL,
	};
	for (size_t i = 0; bad_status[i] != NULL; i++) {
		rc.status = bad_status[i];
		build_fails(&r, "invalid status");
	}
	rc.status = NULL;
	build_fails(&r, "invalid status");
	rc.status = "5.1.1";
	rc.action = (dsn_action)7;
	build_fails(&r, "invalid action");
	rc.action = DSN_FAILED;
	rc.final_rcpt = "";
	build_fails(&r, "recipient address");
	rc.final_rcpt = "b@example.net";
	rc.last_attempt = UINT64_C(253402300800);
	build_fails(&r, "1900..9999");

	/* a UTF-8 sender is fine (the DSN then needs SMTPUTF8) */
	rc.last_attempt = 0;
	r.to = "j\xc3\xb6rg@example.de";
	dsn_view v;
	build_ok(&r, &v);
	view_free(&v);
	r.to = "j\xc3rg@example.de"; /* invalid UTF-8 */
	build_fails(&r, "invalid To");
}

static void test_deterministic(void **state)
{
	(void)state;
	dsn_rcpt rc = { .final_rcpt = "b@example.net", .action = DSN_FAILED,
			.status = "5.1.1", .diag = "550 no" };
	dsn_report r = base_report(&rc, 1);
	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	assert_int_equal(dsn_build(&r, &a, &al, NULL), 0);
	assert_int_equal(dsn_build(&r, &b, &bl, NULL), 0);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);
	free(b);
	uint8_t other[16];
	memcpy(other, rnd, 16);
	other[0] ^= 0xf0;
	r.random16 = other;
	assert_int_equal(dsn_build(&r, &b, &bl, NULL), 0);
	char *s = malloc(bl + 1);
	assert_non_null(s);
	memcpy(s, b, bl);
	s[bl] = '\0';
	assert_non_null(strstr(s, "boundary=\"dsn_f0112233"));
	assert_null(strstr(s, RND_HEX));
	free(s);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed),
		cmocka_unit_test(test_delayed),
		cmocka_unit_test(test_success_kinds),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_size_cutoff),
		cmocka_unit_test(test_no_blank_line),
		cmocka_unit_test(test_8bit_and_long_lines),
		cmocka_unit_test(test_1000_rcpts),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
