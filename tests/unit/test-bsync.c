/*
 * test-bsync.c — the bridge's sync (src/bridge/bsync.c) against a real
 * store (bstore.c in a temporary directory) and a scripted home node:
 * the node (nclient_*) and the opening of envelopes (cli_open_fetched)
 * are replaced here, so the test decides what each fetched "envelope"
 * opens to.  Checked: verified mail to INBOX byte for byte, Junk by the
 * delivery note, text/plain wrapped, a failure to Unverified with its
 * reason; every ack only after its message was stored; a message fetched
 * again after a crash between store and ack is stored once; the cursor
 * kept in the store; our address as the node names it; the node
 * unreachable then back (back-off); a stop during a long poll returns
 * at once; the pure helpers.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bsync.h"
#include "bstore.h"
#include "client.h"
#include "imap-mbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------- the scripted node */

/* An "envelope" here is text: "ok|SENDER|CONTENT-TYPE|BODY" opens to
 * BODY from SENDER, "bad|SENDER|REASON" fails with REASON. */
typedef struct item {
	uint64_t seq;
	const char *env;
	const char *delivery;
	bool acked;
} item;

static struct {
	pthread_mutex_t mu;
	item items[8];
	size_t n;
	char events[64][48];     /* "stored", "ack N" in order */
	size_t n_events;
	unsigned connect_fails;  /* refuse this many connects */
	unsigned connects;
	unsigned changed;
} node = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* "stored", or "ack SEQ" when seq > 0 */
static void event(unsigned long long seq)
{
	pthread_mutex_lock(&node.mu);
	if (node.n_events < 64 && seq > 0)
		snprintf(node.events[node.n_events++], 48, "ack %llu", seq);
	else if (node.n_events < 64)
		snprintf(node.events[node.n_events++], 48, "stored");
	pthread_mutex_unlock(&node.mu);
}

static int fake;

int cli_connect_node(cli_env *env, const cli_conn_opts *co, nclient **c_r)
{
	(void)env;
	(void)co;
	pthread_mutex_lock(&node.mu);
	node.connects++;
	bool fail = node.connect_fails > 0;
	if (fail)
		node.connect_fails--;
	pthread_mutex_unlock(&node.mu);
	if (fail)
		return CLI_FAIL;
	*c_r = (nclient *)&fake;
	return CLI_OK;
}

int nclient_auth(nclient *c, const amp_identity *id, int *status_r,
		 const char **error_r)
{
	(void)c;
	(void)id;
	(void)status_r;
	(void)error_r;
	return 0;
}

void nclient_close(nclient **c)
{
	*c = NULL;
}

int nclient_fetch(nclient *c, uint64_t cursor, uint32_t limit,
		  uint32_t wait_ms, Amp__V1__Response **resp_r, int *status_r,
		  const char **error_r)
{
	Amp__V1__InboxItem its[8], *ptrs[8];
	size_t n = 0;
	uint64_t last = cursor;
	(void)c;
	(void)status_r;
	pthread_mutex_lock(&node.mu);
	for (size_t i = 0; i < node.n && n < limit; i++) {
		if (node.items[i].acked || node.items[i].seq <= cursor)
			continue;
		amp__v1__inbox_item__init(&its[n]);
		its[n].seq = node.items[i].seq;
		its[n].received = 1700000000u + node.items[i].seq;
		its[n].envelope.data = (uint8_t *)node.items[i].env;
		its[n].envelope.len = strlen(node.items[i].env);
		its[n].delivery = (char *)(node.items[i].delivery != NULL
					   ? node.items[i].delivery : "");
		ptrs[n] = &its[n];
		last = node.items[i].seq;
		n++;
	}
	pthread_mutex_unlock(&node.mu);
	if (n == 0) {
		/* the long poll: interrupted by bsync_stop's SIGUSR1 */
		if (poll(NULL, 0, (int)wait_ms) < 0 && errno == EINTR) {
			*error_r = "interrupted";
			return -1;
		}
	}
	Amp__V1__FetchResult fr = AMP__V1__FETCH_RESULT__INIT;
	fr.items = ptrs;
	fr.n_items = n;
	fr.cursor = last;
	Amp__V1__Response r = AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_FETCH;
	r.fetch = &fr;
	size_t len = amp__v1__response__get_packed_size(&r);
	uint8_t *buf = malloc(len + 1);
	assert_non_null(buf);
	amp__v1__response__pack(&r, buf);
	*resp_r = amp__v1__response__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(*resp_r);
	return 0;
}

/* The lookup of our own DID: the node names our address. */
int nclient_op(nclient *c, Amp__V1__Frame *req, unsigned timeout_ms,
	       Amp__V1__Response **resp_r, int *status_r, const char **error_r)
{
	(void)c;
	(void)timeout_ms;
	(void)status_r;
	if (req->body_case != AMP__V1__FRAME__BODY_LOOKUP ||
	    strcmp(req->lookup->did, "did:aftersmtp:example.org:bob") != 0) {
		*error_r = "unexpected request";
		return -1;
	}
	Amp__V1__LookupResult lr = AMP__V1__LOOKUP_RESULT__INIT;
	lr.did_document = (char *)"{}";
	lr.address = (char *)"Bob.Builder@example.org";
	Amp__V1__Response r = AMP__V1__RESPONSE__INIT;
	r.result_case = AMP__V1__RESPONSE__RESULT_LOOKUP;
	r.lookup = &lr;
	size_t len = amp__v1__response__get_packed_size(&r);
	uint8_t *buf = malloc(len + 1);
	assert_non_null(buf);
	amp__v1__response__pack(&r, buf);
	*resp_r = amp__v1__response__unpack(NULL, len, buf);
	free(buf);
	return *resp_r != NULL ? 0 : -1;
}

unsigned nclient_timeout(const nclient *c)
{
	(void)c;
	return 1000;
}

int nclient_ack(nclient *c, const uint64_t *seqs, size_t n, int *status_r,
		const char **error_r)
{
	(void)c;
	(void)status_r;
	(void)error_r;
	for (size_t k = 0; k < n; k++) {
		pthread_mutex_lock(&node.mu);
		for (size_t i = 0; i < node.n; i++)
			if (node.items[i].seq == seqs[k])
				node.items[i].acked = true;
		pthread_mutex_unlock(&node.mu);
		event((unsigned long long)seqs[k]);
	}
	return 0;
}

/* ------------------------------------------- the opening, scripted */

int cli_open_fetched(cli_env *env, struct nclient *c, const amp_identity *id,
		     amp_identity *const *retired, size_t n_retired,
		     const uint8_t *data, size_t len, cli_opened *o)
{
	char text[512];
	(void)env;
	(void)c;
	(void)id;
	(void)retired;
	(void)n_retired;
	memset(o, 0, sizeof(*o));
	assert_true(len < sizeof(text));
	memcpy(text, data, len);
	text[len] = '\0';
	char *f1 = strchr(text, '|'), *f2 = f1 != NULL ? strchr(f1 + 1, '|') : NULL;
	assert_non_null(f2);
	*f1 = *f2 = '\0';
	snprintf(o->sender, sizeof(o->sender), "%s", f1 + 1);
	crypto_generichash(o->envelope_id, sizeof(o->envelope_id), data, len,
			   NULL, 0);
	if (strcmp(text, "bad") == 0) {
		snprintf(o->reason, sizeof(o->reason), "%s", f2 + 1);
		return CLI_FAIL;
	}
	char *f3 = strchr(f2 + 1, '|');
	assert_non_null(f3);
	*f3 = '\0';
	snprintf(o->content_type, sizeof(o->content_type), "%s", f2 + 1);
	o->len = strlen(f3 + 1);
	o->body = malloc(o->len + 1);
	assert_non_null(o->body);
	memcpy(o->body, f3 + 1, o->len);
	return CLI_OK;
}

void cli_opened_clear(cli_opened *o)
{
	free(o->body);
	o->body = NULL;
	o->len = 0;
}

bool cli_note_value(const char *note, const char *key, char *out, size_t size)
{
	/* enough for this test's notes: "KEY=VALUE" words */
	char want[64];
	snprintf(want, sizeof(want), "%s=", key);
	const char *p = strstr(note, want);
	if (p == NULL)
		return false;
	p += strlen(want);
	size_t n = strcspn(p, " ");
	if (n == 0 || n >= size)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* --------------------------------------------------------- the harness */

typedef struct world {
	char dir[64], path[128];
	uv_loop_t loop;
	uv_timer_t timer;
	bstore *store;
	bsync *sync;
	size_t want_acks;
	uint64_t want_cursor;
	cli_env env;
	const amp_identity *id;
	bool done;
} world;

static char learnt[128];

static void address_cb(void *arg, const char *address)
{
	(void)arg;
	snprintf(learnt, sizeof(learnt), "%s", address);
}

static void changed(void *arg)
{
	(void)arg;
	node.changed++;
	event(0);
}

static size_t acks(void)
{
	size_t n = 0;
	pthread_mutex_lock(&node.mu);
	for (size_t i = 0; i < node.n_events; i++)
		if (strncmp(node.events[i], "ack ", 4) == 0)
			n++;
	pthread_mutex_unlock(&node.mu);
	return n;
}

static void tick(uv_timer_t *t)
{
	world *w = t->data;
	uint64_t cursor = 0;
	if (acks() >= w->want_acks &&
	    bstore_cursor_get(w->store, &cursor) == 0 &&
	    cursor >= w->want_cursor) {
		w->done = true;
		uv_timer_stop(t);
		bsync_stop(&w->sync);
		uv_close((uv_handle_t *)t, NULL);
	}
}

static void open_store(world *w)
{
	uint8_t key[BSTORE_KEY_BYTES];
	const char *err = NULL;
	memset(key, 7, sizeof(key));
	assert_int_equal(bstore_open(w->path, key, &w->store, &err), 0);
}

/* Run a sync until want_acks acks have been seen and the stored cursor
 * reached want_cursor (at most 20 s). */
static void run_sync(world *w, size_t want_acks, uint64_t want_cursor)
{
	const char *err = NULL;
	bsync_settings set = {
		.env = &w->env, .id = w->id, .address = "bob@example.org",
		.wait_ms = 100,
		.store = w->store, .changed = changed, .address_cb = address_cb,
		.arg = w,
	};
	assert_int_equal(uv_loop_init(&w->loop), 0);
	w->want_acks = want_acks;
	w->want_cursor = want_cursor;
	w->done = false;
	assert_int_equal(bsync_start(&w->loop, &set, &w->sync, &err), 0);
	uv_timer_init(&w->loop, &w->timer);
	w->timer.data = w;
	uv_timer_start(&w->timer, tick, 10, 10);
	time_t t0 = time(NULL);
	while (!w->done && time(NULL) - t0 < 20)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_true(w->done);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
}

static void world_init(world *w)
{
	static amp_identity *me;
	const char *err = NULL;
	if (me == NULL)
		assert_int_equal(amp_identity_generate(
			"did:aftersmtp:example.org:bob", &me, &err), AMP_OK);
	memset(w, 0, sizeof(*w));
	w->id = me;
	snprintf(w->dir, sizeof(w->dir), "/tmp/test-bsync-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->path, sizeof(w->path), "%s/store.db", w->dir);
	snprintf(w->env.home, sizeof(w->env.home), "%s", w->dir);
	open_store(w);
	pthread_mutex_lock(&node.mu);
	node.n = node.n_events = 0;
	node.connect_fails = node.connects = node.changed = 0;
	pthread_mutex_unlock(&node.mu);
}

static void world_free(world *w)
{
	char cmd[160];
	bstore_close(&w->store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
	assert_int_equal(system(cmd), 0);
}

static void add_item(uint64_t seq, const char *env, const char *delivery)
{
	pthread_mutex_lock(&node.mu);
	node.items[node.n++] = (item){ .seq = seq, .env = env,
				       .delivery = delivery };
	pthread_mutex_unlock(&node.mu);
}

/* The messages of a mailbox, in UID order, as one string joined by '#'. */
static void mailbox_text(world *w, const char *name, char *out, size_t size,
			 size_t *n_r)
{
	imap_mbox_view v;
	const char *err = NULL;
	const imap_mbox_ops *ops = bstore_ops();
	assert_int_equal(ops->view(w->store, name, &v, &err), 0);
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < v.n; i++) {
		uint8_t *m;
		size_t len;
		assert_int_equal(ops->read(w->store, name, v.uids[i], &m, &len,
					   &err), 0);
		int k = snprintf(out + o, size - o, "%s%.*s", i > 0 ? "#" : "",
				 (int)len, (const char *)m);
		ops->release(w->store, m, len);
		assert_true(k >= 0 && (size_t)k < size - o);
		o += (size_t)k;
	}
	*n_r = v.n;
	imap_mbox_view_free(&v);
}

/* ------------------------------------------------------------- tests */

static const char *const SENDER = "did:aftersmtp:example.org:alice";

static void test_routes_and_orders(void **state)
{
	(void)state;
	world w;
	char text[16384];
	size_t n;
	world_init(&w);
	add_item(1, "ok|did:aftersmtp:example.org:alice|message/rfc822|"
		 "Subject: one\r\n\r\nfirst\r\n", NULL);
	add_item(2, "ok|did:aftersmtp:example.org:alice|text/plain|hi\nthere",
		 NULL);
	add_item(3, "ok|did:aftersmtp:example.org:alice|message/rfc822|"
		 "Subject: spam\r\n\r\njunk\r\n", "rcpt=bob@example.org folder=Junk");
	add_item(4, "bad|did:aftersmtp:example.org:mallory|AMP_E_BAD_SIGNATURE: "
		 "forged\r\nX-Evil: 1", NULL);
	run_sync(&w, 4, 4);

	mailbox_text(&w, "INBOX", text, sizeof(text), &n);
	assert_int_equal(n, 2);
	assert_non_null(strstr(text, "Subject: one\r\n\r\nfirst\r\n#"));
	/* text/plain wrapped: From the sender's address, CRLF lines */
	assert_non_null(strstr(text, "From: <alice@example.org>\r\n"));
	/* To: the address the node named for us, also told to the bridge */
	assert_non_null(strstr(text, "To: <Bob.Builder@example.org>\r\n"));
	assert_string_equal(learnt, "Bob.Builder@example.org");
	assert_non_null(strstr(text, "Subject: (no subject)\r\n"));
	assert_non_null(strstr(text, "Date: Tue, 14 Nov 2023 22:13:22 +0000\r\n"));
	assert_non_null(strstr(text, "\r\n\r\nhi\r\nthere\r\n"));
	mailbox_text(&w, "Junk", text, sizeof(text), &n);
	assert_int_equal(n, 1);
	assert_string_equal(text, "Subject: spam\r\n\r\njunk\r\n");
	mailbox_text(&w, BSTORE_UNVERIFIED, text, sizeof(text), &n);
	assert_int_equal(n, 1);
	/* the reason in the header, control bytes made harmless (no
	 * header injection), the envelope attached in base64 */
	assert_non_null(strstr(text, "X-AMP-Verification: failed "
			       "(AMP_E_BAD_SIGNATURE: forged??X-Evil: 1)\r\n"));
	assert_null(strstr(text, "\r\nX-Evil"));
	assert_non_null(strstr(text, "X-AMP-Sender-DID: "
			       "did:aftersmtp:example.org:mallory\r\n"));
	assert_non_null(strstr(text, "Content-Type: application/octet-stream"));
	assert_non_null(strstr(text, "YmFkfGRpZDphZnRlcnNtdHA6"));  /* "bad|did:aftersmtp:" */

	/* each ack after its message was stored: stored, ack 1, stored, ... */
	assert_int_equal(node.n_events, 8);
	for (size_t i = 0; i < 8; i += 2) {
		char want[16];
		snprintf(want, sizeof(want), "ack %zu", i / 2 + 1);
		assert_string_equal(node.events[i], "stored");
		assert_string_equal(node.events[i + 1], want);
	}
	uint64_t cursor = 0;
	assert_int_equal(bstore_cursor_get(w.store, &cursor), 0);
	assert_int_equal(cursor, 4);
	(void)SENDER;
	world_free(&w);
}

static void test_fetched_again_is_stored_once(void **state)
{
	(void)state;
	world w;
	char text[4096];
	size_t n;
	world_init(&w);
	add_item(1, "ok|did:aftersmtp:example.org:alice|message/rfc822|"
		 "Subject: once\r\n\r\nbody\r\n", NULL);
	add_item(2, "bad|did:aftersmtp:example.org:x|AMP_E_KEY_UNWRAP: no", NULL);
	run_sync(&w, 2, 2);
	/* a crash after storing, before acking (and before the cursor was
	 * written): the node serves both again from cursor 0 */
	pthread_mutex_lock(&node.mu);
	node.items[0].acked = node.items[1].acked = false;
	node.n_events = 0;
	node.changed = 0;
	pthread_mutex_unlock(&node.mu);
	assert_int_equal(bstore_cursor_set(w.store, 0), 0);
	bstore_close(&w.store);
	open_store(&w);
	run_sync(&w, 2, 2);
	assert_int_equal(node.changed, 0);        /* nothing new stored */
	assert_string_equal(node.events[0], "ack 1");
	assert_string_equal(node.events[1], "ack 2");
	mailbox_text(&w, "INBOX", text, sizeof(text), &n);
	assert_int_equal(n, 1);
	mailbox_text(&w, BSTORE_UNVERIFIED, text, sizeof(text), &n);
	assert_int_equal(n, 1);
	world_free(&w);
}

static void test_unreachable_node_then_back(void **state)
{
	(void)state;
	world w;
	world_init(&w);
	node.connect_fails = 2;  /* 1 s, then 2 s of back-off */
	add_item(7, "ok|did:aftersmtp:example.org:alice|message/rfc822|"
		 "Subject: late\r\n\r\nx\r\n", NULL);
	time_t t0 = time(NULL);
	run_sync(&w, 1, 7);
	assert_true(time(NULL) - t0 >= 2);
	assert_int_equal(node.connects, 3);
	world_free(&w);
}

static void stop_now(uv_timer_t *t)
{
	world *w = t->data;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	bsync_stop(&w->sync);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* the worker was in a 25 s long poll: interrupted, joined */
	assert_true(b.tv_sec - a.tv_sec < 2);
	uv_close((uv_handle_t *)t, NULL);
}

static void test_stop_during_long_poll(void **state)
{
	(void)state;
	world w;
	const char *err = NULL;
	world_init(&w);
	bsync_settings set = {
		.env = &w.env, .id = w.id, .address = "bob@example.org",
		.wait_ms = 25000,
		.store = w.store, .changed = changed, .arg = &w,
	};
	assert_int_equal(uv_loop_init(&w.loop), 0);
	assert_int_equal(bsync_start(&w.loop, &set, &w.sync, &err), 0);
	uv_timer_init(&w.loop, &w.timer);
	w.timer.data = &w;
	uv_timer_start(&w.timer, stop_now, 300, 0);
	uv_run(&w.loop, UV_RUN_DEFAULT);
	assert_null(w.sync);
	assert_int_equal(uv_loop_close(&w.loop), 0);
	world_free(&w);
}

static void test_helpers(void **state)
{
	(void)state;
	char out[64];
	uint8_t *m;
	size_t len;
	assert_true(bsync_did_address("did:aftersmtp:example.org:alice", out,
				      sizeof(out)));
	assert_string_equal(out, "alice@example.org");
	assert_false(bsync_did_address("alice@example.org", out, sizeof(out)));
	assert_false(bsync_did_address("did:aftersmtp:example.org:alice", out, 8));
	/* an undecodable envelope: no sender, no id */
	assert_int_equal(bsync_unverified_message("AMP_E_MALFORMED: x", "", "",
						  0, (const uint8_t *)"\x01\x02",
						  2, &m, &len), 0);
	assert_non_null(memmem(m, len, "X-AMP-Sender-DID: unknown\r\n", 27));
	assert_non_null(memmem(m, len, "Date: Thu, 01 Jan 1970 00:00:00 +0000", 37));
	assert_non_null(memmem(m, len, "\r\nAQI=\r\n--=_amp_unverified_", 27));
	free(m);
	/* an empty text body, and one with CRLF already */
	assert_int_equal(bsync_wrap_text("a@b", "c@d", "00", 0,
					 (const uint8_t *)"", 0, &m, &len), 0);
	assert_true(len > 4 && memcmp(m + len - 4, "\r\n\r\n", 4) == 0);
	free(m);
	assert_int_equal(bsync_wrap_text("a@b", "c@d", "00", 0,
					 (const uint8_t *)"x\r\ny\n", 5, &m, &len), 0);
	assert_true(memcmp(m + len - 8, "\r\nx\r\ny\r\n", 8) == 0);
	free(m);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_routes_and_orders),
		cmocka_unit_test(test_fetched_again_is_stored_once),
		cmocka_unit_test(test_unreachable_node_then_back),
		cmocka_unit_test(test_stop_during_long_poll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
