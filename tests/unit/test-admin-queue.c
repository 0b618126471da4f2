/*
 * test-admin-queue.c — the admin channel's `queue` commands (admin.c over
 * a real store and a real socket, on a libuv loop) and `amp queue` (the
 * built binary, $AMP_CLI) against it: list with filters and its limit,
 * a list longer than one output chunk, show (metadata, recipients, the
 * header section and never the body), hold/release/flush/delete with ID
 * or all (queue_changed called after flush and release), stats, bad IDs
 * and filters answered with "error", a node without a queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admin.h"
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static const uint8_t KEY[STORE_KEY_BYTES] = "0123456789abcdef0123456789abcde";

typedef struct fixture {
	char dir[64];
	char sock[128];
	store *st;
	uv_loop_t loop;
	uv_async_t done;
	admin *adm;
	int changed;             /* queue_changed calls */
	void (*client)(struct fixture *f);
	pthread_t thread;
} fixture;

static const cfg *no_conf(void *arg)
{
	(void)arg;
	return NULL;
}

static void on_changed(void *arg)
{
	fixture *f = arg;
	f->changed++;
}

static void on_done(uv_async_t *a)
{
	fixture *f = a->data;
	admin_stop(&f->adm);
	uv_close((uv_handle_t *)a, NULL);
}

static void *client_main(void *arg)
{
	fixture *f = arg;
	f->client(f);
	uv_async_send(&f->done);
	return NULL;
}

/* Serve the admin channel until the client function returns. */
static void serve(fixture *f, bool with_store, void (*client)(fixture *f))
{
	assert_int_equal(uv_loop_init(&f->loop), 0);
	admin_params p = { .loop = &f->loop, .data_dir = f->dir, .maps = NULL,
			   .conf = no_conf, .arg = f,
			   .st = with_store ? f->st : NULL,
			   .queue_changed = on_changed };
	char err[256];
	if (admin_start(&p, &f->adm, err, sizeof(err)) != 0)
		fail_msg("admin_start: %s", err);
	f->done.data = f;
	assert_int_equal(uv_async_init(&f->loop, &f->done, on_done), 0);
	f->client = client;
	assert_int_equal(pthread_create(&f->thread, NULL, client_main, f), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	pthread_join(f->thread, NULL);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ------------------------------------------------------- the client */

typedef struct reply {
	char *text;              /* every line, LF-separated */
	size_t len;
	size_t n_data;           /* "* " lines */
	char final[512];         /* the "ok ..." or "error ..." line */
} reply;

/* One request (fields joined by TAB here), the whole answer. */
static void ask(fixture *f, const char *req, reply *r)
{
	memset(r, 0, sizeof(*r));
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(f->sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, f->sock, strlen(f->sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	size_t rl = strlen(req);
	assert_int_equal(write(fd, req, rl), (ssize_t)rl);
	assert_int_equal(write(fd, "\n", 1), 1);
	size_t cap = 1 << 16;
	r->text = malloc(cap);
	assert_non_null(r->text);
	size_t line = 0;
	for (;;) {
		if (r->len + 4096 > cap) {
			cap *= 2;
			r->text = realloc(r->text, cap);
			assert_non_null(r->text);
		}
		ssize_t n = read(fd, r->text + r->len, 4096);
		assert_true(n > 0);
		r->len += (size_t)n;
		bool final = false;
		while (!final) {
			char *nl = memchr(r->text + line, '\n', r->len - line);
			if (nl == NULL)
				break;
			if (r->text[line] == '*') {
				r->n_data++;
			} else {
				size_t l = (size_t)(nl - (r->text + line));
				snprintf(r->final, sizeof(r->final), "%.*s",
					 (int)l, r->text + line);
				final = true;
			}
			line = (size_t)(nl - r->text) + 1;
		}
		if (final)
			break;
	}
	r->text[r->len] = '\0';
	close(fd);
}

static void reply_free(reply *r)
{
	free(r->text);
}

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* `amp queue ARGS --socket SOCK`: its exit status and output. */
static int run_cli(fixture *f, const char *args, char *out, size_t size)
{
	const char *amp = getenv("AMP_CLI");
	if (amp == NULL)
		fail_msg("AMP_CLI is not set");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s queue %s --socket %s 2>&1", amp, args,
		 f->sock);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------- set-up */

typedef struct pw {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pending, failed;
} pw;

static void on_put(void *arg, int result, bool dup)
{
	pw *w = arg;
	(void)dup;
	pthread_mutex_lock(&w->lock);
	w->pending--;
	w->failed += result != 0;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static const char BODY[] =
	"From: Ann <ann@origin.example>\r\n"
	"To: bob@far.example\r\n"
	"Subject: quarterly\r\n"
	" report\r\n"
	"Message-ID: <q1@origin.example>\r\n"
	"\r\n"
	"SECRET-BODY-TEXT: never on the admin wire\r\n";

/* n messages: the first to two domains, the others to bulk.example */
static void fill(fixture *f, int n)
{
	pw w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	static const mailq_rcpt r2[] = {
		{ "bob@far.example", "rfc822;bob@far.example",
		  MAILQ_NOTIFY_FAILURE | MAILQ_NOTIFY_DELAY },
		{ "cy@near.example", NULL, 0 },
	};
	static const mailq_rcpt rb[] = { { "list@bulk.example", NULL, 0 } };
	for (int i = 0; i < n; i++) {
		char msgid[64];
		snprintf(msgid, sizeof(msgid), "<m%d@origin.example>", i);
		mailq_msg m = { .sender = i == 0 ? "ann@origin.example" : "",
				.envid = i == 0 ? "ENV1" : NULL, .ret = 2,
				.msgid = msgid, .rcpts = i == 0 ? r2 : rb,
				.n_rcpts = i == 0 ? 2 : 1,
				.body = (const uint8_t *)BODY,
				.body_len = sizeof(BODY) - 1,
				.lane = i == 0 ? MAILQ_NORMAL : MAILQ_BULK,
				.created = (uint64_t)time(NULL) - 3600,
				.expires = (uint64_t)time(NULL) + 86400 };
		pthread_mutex_lock(&w.lock);
		w.pending++;
		pthread_mutex_unlock(&w.lock);
		assert_int_equal(store_mailq_put(f->st, &m, on_put, &w), 0);
	}
	pthread_mutex_lock(&w.lock);
	while (w.pending > 0)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	assert_int_equal(w.failed, 0);
}

static void setup_fixture(fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/amp-adminq-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/admin.sock", f->dir);
	char db[128];
	snprintf(db, sizeof(db), "%s/node.db", f->dir);
	store_opts o = { .path = db, .key = KEY };
	const char *err = NULL;
	if (store_open(&o, &f->st, &err) != 0)
		fail_msg("store_open: %s", err);
}

static void teardown_fixture(fixture *f)
{
	store_close(&f->st);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
}

/* the id of the entry for domain (16 hex digits) from a list answer */
static void id_of(const reply *r, const char *domain, char id[17])
{
	char pat[300];
	snprintf(pat, sizeof(pat), "\t%s\t", domain);
	const char *p = strstr(r->text, pat);
	assert_non_null(p);
	while (p > r->text && p[-1] != '\n')
		p--;
	assert_true(starts(p, "* "));
	memcpy(id, p + 2, 16);
	id[16] = '\0';
}

/* ------------------------------------------------------- the tests */

static void client_commands(fixture *f)
{
	reply r;
	ask(f, "queue\tstats", &r);
	assert_string_equal(r.final, "ok");
	assert_non_null(strstr(r.text, "* normal\t2\t0\t0\t0\t"));
	assert_non_null(strstr(r.text, "* bulk\t3\t0\t0\t0\t"));
	assert_non_null(strstr(r.text, "* critical\t0\t0\t0\t0\t0\n"));
	char want[64];
	snprintf(want, sizeof(want), "* bytes\t%zu\n", 4 * (sizeof(BODY) - 1));
	assert_non_null(strstr(r.text, want));
	reply_free(&r);

	ask(f, "queue\tlist", &r);
	assert_string_equal(r.final, "ok 5 entries");
	assert_int_equal(r.n_data, 5);
	assert_non_null(strstr(r.text, "\tnormal\tactive\t0\t"));
	assert_non_null(strstr(r.text, "\tfar.example\tann@origin.example\t1\t\n"));
	assert_non_null(strstr(r.text, "\tbulk.example\t<>\t1\t\n"));
	char far[17], near[17], bulk[17];
	id_of(&r, "far.example", far);
	id_of(&r, "near.example", near);
	id_of(&r, "bulk.example", bulk);
	reply_free(&r);

	ask(f, "queue\tlist\tlimit=2", &r);
	assert_string_equal(r.final, "ok 2 entries (limit reached)");
	assert_int_equal(r.n_data, 2);
	reply_free(&r);
	ask(f, "queue\tlist\tlane=bulk\tdomain=BULK.example\tstate=active", &r);
	assert_string_equal(r.final, "ok 3 entries");
	reply_free(&r);
	ask(f, "queue\tlist\tstate=hold", &r);
	assert_string_equal(r.final, "ok 0 entries");
	reply_free(&r);
	ask(f, "queue\tlist\tcolour=red", &r);
	assert_true(starts(r.final, "error unknown filter"));
	reply_free(&r);
	ask(f, "queue\tlist\tlane=fast", &r);
	assert_true(starts(r.final, "error unknown lane"));
	reply_free(&r);
	ask(f, "queue\tlist\tlimit=0", &r);
	assert_true(starts(r.final, "error limit"));
	reply_free(&r);

	/* show: metadata, recipients, headers; never the body */
	char req[128];
	snprintf(req, sizeof(req), "queue\tshow\t%s", far);
	ask(f, req, &r);
	snprintf(want, sizeof(want), "ok %s", far);
	assert_string_equal(r.final, want);
	assert_non_null(strstr(r.text, "* domain\tfar.example\n"));
	assert_non_null(strstr(r.text, "* sender\tann@origin.example\n"));
	assert_non_null(strstr(r.text, "* envid\tENV1\n"));
	assert_non_null(strstr(r.text, "* ret\thdrs\n"));
	assert_non_null(strstr(r.text, "* msgid\t<m0@origin.example>\n"));
	assert_non_null(strstr(r.text, "* rcpt\tbob@far.example\t"
				       "rfc822;bob@far.example\tfailure,delay\t\n"));
	assert_null(strstr(r.text, "cy@near.example"));
	assert_non_null(strstr(r.text, "* header\tSubject: quarterly\n"));
	assert_non_null(strstr(r.text, "* header\t report\n"));
	assert_non_null(strstr(r.text, "* header\tMessage-ID: <q1@origin.example>\n"));
	assert_null(strstr(r.text, "SECRET-BODY-TEXT"));
	assert_null(strstr(r.text, "\r"));
	reply_free(&r);
	ask(f, "queue\tshow\tzz", &r);
	assert_true(starts(r.final, "error bad queue ID"));
	reply_free(&r);
	ask(f, "queue\tshow\t0000000000000001", &r);
	assert_string_equal(r.final, "error no queue entry 0000000000000001");
	reply_free(&r);
	ask(f, "queue\tshow\tall", &r);
	assert_true(starts(r.final, "error bad queue ID"));
	reply_free(&r);

	/* hold / release / flush / delete */
	ask(f, "queue\thold\tall", &r);
	assert_string_equal(r.final, "ok 5 entries held");
	reply_free(&r);
	assert_int_equal(f->changed, 0);
	snprintf(req, sizeof(req), "queue\thold\t%s", far);
	ask(f, req, &r);
	snprintf(want, sizeof(want), "ok 0 entries held (%s is hold)", far);
	assert_string_equal(r.final, want);
	reply_free(&r);
	snprintf(req, sizeof(req), "queue\trelease\t%s", far);
	ask(f, req, &r);
	assert_string_equal(r.final, "ok 1 entry released");
	reply_free(&r);
	assert_int_equal(f->changed, 1);
	ask(f, "queue\tlist\tstate=hold", &r);
	assert_string_equal(r.final, "ok 4 entries");
	reply_free(&r);
	ask(f, "queue\trelease\tall", &r);
	assert_string_equal(r.final, "ok 4 entries released");
	reply_free(&r);
	assert_int_equal(f->changed, 2);
	ask(f, "queue\tflush", &r);
	assert_string_equal(r.final, "ok 0 deferred entries due now");
	reply_free(&r);
	assert_int_equal(f->changed, 3);
	snprintf(req, sizeof(req), "queue\tdelete\t%s", near);
	ask(f, req, &r);
	assert_string_equal(r.final, "ok 1 entry deleted");
	reply_free(&r);
	ask(f, req, &r);
	snprintf(want, sizeof(want), "error no queue entry %s", near);
	assert_string_equal(r.final, want);
	reply_free(&r);
	ask(f, "queue\tdelete", &r);
	assert_string_equal(r.final, "error usage: queue delete ID|all");
	reply_free(&r);
	ask(f, "queue\tbogus", &r);
	assert_true(starts(r.final, "error unknown command"));
	reply_free(&r);
	ask(f, "help", &r);
	assert_non_null(strstr(r.text, "* queue list [state=S]"));
	reply_free(&r);

	/* the command line client */
	static char out[1 << 16];
	assert_int_equal(run_cli(f, "list", out, sizeof(out)), 0);
	assert_true(starts(out, "ID                LANE      STATE     TRIES"));
	assert_non_null(strstr(out, "far.example"));
	assert_non_null(strstr(out, "# 4 entries\n"));
	assert_int_equal(run_cli(f, "list --state hold", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "the queue is empty (for these filters)"));
	assert_int_equal(run_cli(f, "list --lane bulk --limit 1", out,
				 sizeof(out)), 0);
	assert_non_null(strstr(out, "# 1 entry (limit reached)"));
	snprintf(req, sizeof(req), "show %s", far);
	assert_int_equal(run_cli(f, req, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "domain          far.example\n"));
	assert_non_null(strstr(out, "recipients:\n  bob@far.example\n"));
	assert_non_null(strstr(out, "header section:\n  From: Ann"));
	assert_null(strstr(out, "SECRET-BODY-TEXT"));
	assert_int_equal(run_cli(f, "stats", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "LANE         ACTIVE"));
	assert_non_null(strstr(out, "total"));
	assert_non_null(strstr(out, "message bytes stored:"));
	assert_int_equal(run_cli(f, "show nothex", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "bad queue ID"));
	assert_int_equal(run_cli(f, "hold", out, sizeof(out)), 2);
	snprintf(req, sizeof(req), "delete %s", bulk);
	assert_int_equal(run_cli(f, req, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "1 entry deleted"));
	assert_int_equal(run_cli(f, "delete all", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "3 entries deleted"));
	assert_int_equal(run_cli(f, "list", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "the queue is empty\n"));
}

static void test_commands(void **state)
{
	(void)state;
	fixture f;
	setup_fixture(&f);
	fill(&f, 4);
	serve(&f, true, client_commands);
	teardown_fixture(&f);
}

/* A list longer than one output chunk (64 KiB), with long replies. */
static void client_long_list(fixture *f)
{
	reply r;
	ask(f, "queue\tlist\tlimit=100000", &r);
	assert_string_equal(r.final, "ok 601 entries");
	assert_int_equal(r.n_data, 601);
	assert_true(r.len > 150000);
	reply_free(&r);
}

static void test_long_list(void **state)
{
	(void)state;
	fixture f;
	setup_fixture(&f);
	fill(&f, 600);
	/* give every row a long last reply */
	mailq_item *it;
	size_t n;
	assert_int_equal(store_mailq_lease(f.st, MAILQ_BULK,
					   (uint64_t)time(NULL), 60, 1000, &it,
					   &n), 0);
	assert_int_equal(n, 599);
	char longr[400];
	memset(longr, 'x', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	for (size_t i = 0; i < n; i++) {
		const uint8_t keep[] = { 0 };
		mailq_outcome o = { .id = it[i].id, .done = keep, .n = 1,
				    .last_reply = longr,
				    .next_attempt = (uint64_t)time(NULL) + 600 };
		assert_int_equal(store_mailq_update(f.st, &o), 0);
	}
	mailq_items_free(it, n);
	serve(&f, true, client_long_list);
	teardown_fixture(&f);
}

static void client_no_queue(fixture *f)
{
	reply r;
	ask(f, "queue\tstats", &r);
	assert_string_equal(r.final, "error this node has no mail queue");
	reply_free(&r);
}

static void test_no_queue(void **state)
{
	(void)state;
	fixture f;
	setup_fixture(&f);
	serve(&f, false, client_no_queue);
	teardown_fixture(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_long_list),
		cmocka_unit_test(test_no_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
