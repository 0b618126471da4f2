/*
 * test-bsubmit.c — the bridge's submission listener (src/bridge/bsubmit.c)
 * on a real loopback socket, driven by Python's smtplib as a mail client
 * drives it (python3, spawned by the loop): AUTH PLAIN and LOGIN, wrong
 * passwords, STARTTLS, and the TESTING.md B2 rows (530, 538, 553), with a
 * test bridge that answers AUTH and submissions later, from timers, as
 * the real bridge does from its workers.  The Python side asserts the
 * replies and exits non-zero on a mismatch; this side checks what the
 * bridge was given.
 */
#include "test-common.h"

#include "bsubmit.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

typedef struct answer {
	uv_timer_t t;
	bsubmit_req *req;
	bool auth, ok;
	bsubmit_result result;
	char text[64];
} answer;

typedef struct bridge {
	unsigned auths, auth_fail, submits;
	char from[256], rcpts[1024];
	char msg[4096];
	size_t msg_len;
	size_t big_len;          /* the largest message given */
	int64_t exit_status;
	bool exited;
} bridge;

static void answer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void answer_cb(uv_timer_t *t)
{
	answer *a = t->data;
	if (a->auth)
		bsubmit_auth_done(a->req, a->ok);
	else
		bsubmit_submit_done(a->req, a->result, a->text);
	uv_close((uv_handle_t *)&a->t, answer_closed);
}

static void later(bridge *b, answer *a, unsigned ms)
{
	(void)b;
	uv_timer_init(uv_default_loop(), &a->t);
	a->t.data = a;
	uv_timer_start(&a->t, answer_cb, ms, 0);
}

static void cb_auth(void *arg, bsubmit_req *req, const char *authzid,
		    const char *user, const char *password, size_t len)
{
	bridge *b = arg;
	answer *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	assert_int_equal(strlen(password), len);
	b->auths++;
	a->req = req;
	a->auth = true;
	a->ok = strcmp(user, "alice@alpha.test") == 0 && len == 6 &&
		memcmp(password, "secret", 6) == 0 &&
		(authzid[0] == '\0' || strcmp(authzid, user) == 0);
	if (!a->ok)
		b->auth_fail++;
	later(b, a, a->ok ? 5 : 50); /* failures answered later (back-off) */
}

static bool cb_sender_ok(void *arg, const char *user, const char *from)
{
	(void)arg;
	return strcmp(user, from) == 0;
}

static void cb_submit(void *arg, bsubmit_req *req, const bsubmit_msg *m)
{
	bridge *b = arg;
	answer *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	b->submits++;
	assert_string_equal(m->user, "alice@alpha.test");
	snprintf(b->from, sizeof(b->from), "%s", m->from);
	b->rcpts[0] = '\0';
	for (size_t i = 0; i < m->n_rcpts; i++) {
		size_t o = strlen(b->rcpts);
		snprintf(b->rcpts + o, sizeof(b->rcpts) - o, "%s%s", i > 0 ? "," : "",
			 m->rcpts[i]);
	}
	if (m->len > b->big_len)
		b->big_len = m->len;
	if (m->len < sizeof(b->msg)) {
		memcpy(b->msg, m->data, m->len);
		b->msg_len = m->len;
	}
	a->req = req;
	a->result = BSUBMIT_OK;
	if (m->n_rcpts > 0 && strncmp(m->rcpts[0], "temp", 4) == 0) {
		a->result = BSUBMIT_TEMPFAIL;
		snprintf(a->text, sizeof(a->text), "RETRY_LATER: node\r\nbusy");
	} else if (m->n_rcpts > 0 && strncmp(m->rcpts[0], "perm", 4) == 0) {
		a->result = BSUBMIT_PERMFAIL;
		snprintf(a->text, sizeof(a->text), "BAD_REQUEST: From does not match");
	}
	later(b, a, 5);
}

static const bsubmit_callbacks cbs = {
	.auth = cb_auth, .sender_ok = cb_sender_ok, .submit = cb_submit,
};

/* The client: argv[1] the port, argv[2] the port that wants TLS first. */
static const char client_py[] =
	"import smtplib, ssl, sys, base64\n"
	"port, tport = int(sys.argv[1]), int(sys.argv[2])\n"
	"ctx = ssl.create_default_context()\n"
	"ctx.check_hostname = False\n"
	"ctx.verify_mode = ssl.CERT_NONE\n"
	"def eq(a, b):\n"
	"    if a != b:\n"
	"        print('MISMATCH', a, b, file=sys.stderr); sys.exit(1)\n"
	"msg = b'From: alice@alpha.test\\r\\nTo: bob@beta.test\\r\\nSubject: hi\\r\\n\\r\\n.dot\\r\\nbody\\r\\n'\n"
	"s = smtplib.SMTP('127.0.0.1', port)\n"
	"s.ehlo('client.test')\n"
	"eq(s.esmtp_features.get('auth'), ' PLAIN LOGIN')\n"
	"eq('starttls' in s.esmtp_features, True)\n"
	"eq(s.mail('alice@alpha.test')[0], 530)\n"                 /* B2 */
	"try:\n"
	"    s.login('alice@alpha.test', 'wrong'); eq('login', 'refused')\n"
	"except smtplib.SMTPAuthenticationError as e:\n"
	"    eq(e.smtp_code, 535)\n"
	"s.login('alice@alpha.test', 'secret')\n"                   /* PLAIN */
	"eq(s.docmd('AUTH', 'PLAIN')[0], 503)\n"
	"try:\n"
	"    s.sendmail('mallory@alpha.test', ['bob@beta.test'], msg); eq(1, 0)\n"
	"except smtplib.SMTPSenderRefused as e:\n"
	"    eq(e.smtp_code, 553)\n"                               /* B2 */
	"eq(s.sendmail('alice@alpha.test', ['bob@beta.test', 'carol@gamma.test'], msg), {})\n"
	"try:\n"
	"    s.sendmail('alice@alpha.test', ['temp@beta.test'], msg); eq(1, 0)\n"
	"except smtplib.SMTPDataError as e:\n"
	"    eq(e.smtp_code, 451); eq(e.smtp_error, b'4.3.0 RETRY_LATER: node??busy')\n"
	"try:\n"
	"    s.sendmail('alice@alpha.test', ['perm@beta.test'], msg); eq(1, 0)\n"
	"except smtplib.SMTPDataError as e:\n"
	"    eq(e.smtp_code, 554)\n"
	"try:\n"
	"    s.sendmail('alice@alpha.test', ['bob@beta.test'], b'x' * 300000); eq(1, 0)\n"
	"except smtplib.SMTPException as e:\n"
	"    eq(getattr(e, 'smtp_code', 552), 552)\n"
	"s.quit()\n"
	/* LOGIN, then STARTTLS forgets it (T2) */
	"s = smtplib.SMTP('127.0.0.1', port)\n"
	"s.ehlo('client.test')\n"
	"s.user, s.password = 'alice@alpha.test', 'secret'\n"
	"eq(s.auth('LOGIN', s.auth_login, initial_response_ok=False)[0], 235)\n"
	"s.starttls(context=ctx)\n"
	"s.ehlo('client.test')\n"
	"eq('starttls' in s.esmtp_features, False)\n"
	"eq(s.mail('alice@alpha.test')[0], 530)\n"
	"s.login('alice@alpha.test', 'secret')\n"
	"eq(s.sendmail('alice@alpha.test', ['dave@delta.test'], msg), {})\n"
	"s.quit()\n"
	/* the listener that wants TLS before AUTH (B2 538) */
	"s = smtplib.SMTP('127.0.0.1', tport)\n"
	"s.ehlo('client.test')\n"
	"eq('auth' in s.esmtp_features, False)\n"
	"eq(s.docmd('AUTH', 'PLAIN ' + base64.b64encode(b'\\0alice@alpha.test\\0secret').decode())[0], 538)\n"
	"s.starttls(context=ctx)\n"
	"s.ehlo('client.test')\n"
	"s.login('alice@alpha.test', 'secret')\n"
	"s.quit()\n";

static void child_exit(uv_process_t *p, int64_t status, int sig)
{
	bridge *b = p->data;
	b->exit_status = sig != 0 ? 128 + sig : status;
	b->exited = true;
	uv_close((uv_handle_t *)p, NULL);
}

static void test_smtplib_client(void **state)
{
	(void)state;
	uv_loop_t *loop = uv_default_loop();
	char *cert = NULL, *key = NULL;
	const char *err = NULL;
	tls_creds *creds = NULL;
	assert_int_equal(tls_creds_generate("localhost", 1, &cert, &key, &err), 0);
	assert_int_equal(tls_creds_server(cert, key, &creds, &err), 0);
	free(cert);
	free(key);
	bridge br = { 0 };
	bsubmit_settings set = { .creds = creds, .size_max = 100000 };
	bsubmit *b = NULL, *bt = NULL;
	assert_int_equal(bsubmit_start(loop, &set, &cbs, &br, &b, &err), 0);
	set.auth_needs_tls = true;
	assert_int_equal(bsubmit_start(loop, &set, &cbs, &br, &bt, &err), 0);
	char port[8], tport[8];
	snprintf(port, sizeof(port), "%u", (unsigned)bsubmit_port(b));
	snprintf(tport, sizeof(tport), "%u", (unsigned)bsubmit_port(bt));
	const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
	char *args[] = { (char *)py, "-c", (char *)client_py, port, tport, NULL };
	uv_stdio_container_t io[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 1 },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t po = {
		.exit_cb = child_exit, .file = py, .args = args,
		.stdio_count = 3, .stdio = io,
	};
	uv_process_t proc;
	proc.data = &br;
	assert_int_equal(uv_spawn(loop, &proc, &po), 0);
	while (!br.exited)
		uv_run(loop, UV_RUN_ONCE);
	bsubmit_close(&b);
	bsubmit_close(&bt);
	assert_null(b);
	uv_run(loop, UV_RUN_DEFAULT); /* every handle closes */
	assert_int_equal(uv_loop_alive(loop), 0);
	tls_creds_free(&creds);
	assert_int_equal(br.exit_status, 0);
	/* what the bridge was given */
	assert_int_equal(br.auth_fail, 2); /* smtplib tries PLAIN, then LOGIN */
	assert_int_equal(br.submits, 4);    /* ok, 451, 554, after STARTTLS */
	assert_string_equal(br.from, "alice@alpha.test");
	assert_string_equal(br.rcpts, "dave@delta.test");
	assert_int_equal(br.msg_len, strlen("From: alice@alpha.test\r\nTo: bob@beta.test\r\n"
					    "Subject: hi\r\n\r\n.dot\r\nbody\r\n"));
	assert_memory_equal(br.msg, "From: alice@alpha.test\r\n", 24);
	assert_true(br.big_len < 300000); /* the too-large one never reached it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtplib_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
