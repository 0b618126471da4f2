/*
 * bsync.c — see bsync.h.  Two threads meet through one slot: the worker
 * puts a job there (store this message, or store this cursor), wakes the
 * loop with uv_async_send and waits on a condition variable; the loop's
 * async callback runs the job against the bstore and marks it done.  So
 * the worker never touches SQLite and the loop never blocks on the
 * network.  The order per message: stored and committed (loop), then
 * acked on the node (worker); the cursor is stored after each batch.
 *
 * The de-duplication key given to bstore_deliver is not the sender's raw
 * envelope id (a forged envelope in "Unverified" must not shadow a real
 * one with the same id): BLAKE2b-128 over "v", the verified sender's DID
 * and the envelope id for opened mail; over "u" and the whole sealed
 * envelope for mail that failed.
 */
#include "bsync.h"

#include "client.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BSYNC_BACKOFF_MIN_MS 1000u
#define BSYNC_REASON_MAX 200u
#define BSYNC_B64_LINE 76u

typedef enum job_kind { JOB_DELIVER, JOB_CURSOR, JOB_ADDRESS } job_kind;

typedef struct job {
	job_kind kind;
	const char *mailbox;
	uint8_t key[16];
	const uint8_t *msg;
	size_t len;
	int64_t received;
	uint64_t cursor;
	int result;                /* bstore's: 0 stored, 1 known, -1 */
	const char *error;
	bool done;
} job;

struct bsync {
	uv_async_t async;
	cli_env env;               /* the worker's own copy */
	bsync_settings set;
	char address[512];
	uint64_t cursor;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	job *job;                  /* the slot, under mu */
	bool stop, exited, started;
};

/* ------------------------------------------------------- pure helpers */

bool bsync_did_address(const char *did, char *out, size_t size)
{
	amp_did d;
	const char *err = NULL;
	if (amp_did_parse(did, strlen(did), &d, &err) != AMP_OK)
		return false;
	int n = snprintf(out, size, "%s@%s", d.local, d.domain);
	return n > 0 && (size_t)n < size;
}

/* Header-safe copy of text: printable ASCII only, cut at max. */
static void header_safe(const char *in, char *out, size_t size, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; in[i] != '\0' && o + 1 < size && i < max; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[o++] = ch >= 32 && ch < 127 ? (char)ch : '?';
	}
	out[o] = '\0';
}

static void rfc5322_date(uint64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	if (strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		out[0] = '\0';
}

/* A growing output with a fixed maximum (set by the caller's sizing). */
typedef struct obuf {
	uint8_t *p;
	size_t len, cap;
	bool bad;
} obuf;

static void ob_put(obuf *b, const void *data, size_t n)
{
	if (b->bad || n > b->cap - b->len) {
		b->bad = true;
		return;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void ob_str(obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

int bsync_unverified_message(const char *reason, const char *sender,
			     const char *idhex, uint64_t received,
			     const uint8_t *envelope, size_t len,
			     uint8_t **msg_r, size_t *len_r)
{
	char why[BSYNC_REASON_MAX + 1], from[AMP_DID_MAX + 1], id[40],
		date[64], bound[48], head[2048];
	uint8_t rnd[8];
	char rhex[17];
	header_safe(reason, why, sizeof(why), BSYNC_REASON_MAX);
	header_safe(sender[0] != '\0' ? sender : "unknown", from, sizeof(from),
		    AMP_DID_MAX);
	header_safe(idhex[0] != '\0' ? idhex : "unknown", id, sizeof(id), 32);
	rfc5322_date(received, date, sizeof(date));
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(rhex, sizeof(rhex), rnd, sizeof(rnd));
	snprintf(bound, sizeof(bound), "=_amp_unverified_%s", rhex);
	int hn = snprintf(head, sizeof(head),
		"From: AMP bridge <bridge@localhost>\r\n"
		"Subject: Unverified AMP message (sender claimed: %s)\r\n"
		"Date: %s\r\n"
		"Message-ID: <%s.%s.unverified@amp-bridge.invalid>\r\n"
		"X-AMP-Verification: failed (%s)\r\n"
		"X-AMP-Sender-DID: %s\r\n"
		"X-AMP-Envelope-ID: %s\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"\r\n"
		"Your home node delivered this message, but the bridge could not\r\n"
		"verify and open it, so it is not shown as mail from its sender.\r\n"
		"\r\n"
		"Reason: %s\r\n"
		"Sender it claims (not proven): %s\r\n"
		"Envelope id: %s\r\n"
		"\r\n"
		"The sealed envelope is attached as it arrived (inspect it with\r\n"
		"`amp open --info -i FILE`).\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Type: application/octet-stream; name=\"%s.amp\"\r\n"
		"Content-Disposition: attachment; filename=\"%s.amp\"\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n",
		from, date, id, rhex, why, from, id, bound, bound, why, from, id,
		bound, id, id);
	if (hn < 0 || (size_t)hn >= sizeof(head))
		return -1;
	size_t b64len = sodium_base64_encoded_len(len,
						  sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64len);
	if (b64 == NULL)
		return -1;
	sodium_bin2base64(b64, b64len, envelope, len,
			  sodium_base64_VARIANT_ORIGINAL);
	size_t blen = strlen(b64);
	obuf ob = { .cap = (size_t)hn + blen + (blen / BSYNC_B64_LINE + 1) * 2 +
		    strlen(bound) + 16 };
	if ((ob.p = malloc(ob.cap)) == NULL) {
		free(b64);
		return -1;
	}
	ob_put(&ob, head, (size_t)hn);
	for (size_t i = 0; i < blen; i += BSYNC_B64_LINE) {
		size_t k = blen - i < BSYNC_B64_LINE ? blen - i : BSYNC_B64_LINE;
		ob_put(&ob, b64 + i, k);
		ob_str(&ob, "\r\n");
	}
	free(b64);
	ob_str(&ob, "--");
	ob_str(&ob, bound);
	ob_str(&ob, "--\r\n");
	if (ob.bad) {
		free(ob.p);
		return -1;
	}
	*msg_r = ob.p;
	*len_r = ob.len;
	return 0;
}

int bsync_wrap_text(const char *from_addr, const char *to_addr,
		    const char *idhex, uint64_t received, const uint8_t *body,
		    size_t len, uint8_t **msg_r, size_t *len_r)
{
	char from[600], to[600], date[64], head[1600];
	header_safe(from_addr, from, sizeof(from), 512);
	header_safe(to_addr, to, sizeof(to), 512);
	rfc5322_date(received, date, sizeof(date));
	int hn = snprintf(head, sizeof(head),
		"From: <%s>\r\n"
		"To: <%s>\r\n"
		"Date: %s\r\n"
		"Message-ID: <%s@amp.invalid>\r\n"
		"Subject: (no subject)\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n", from, to, date, idhex);
	if (hn < 0 || (size_t)hn >= sizeof(head))
		return -1;
	size_t lf = 0;
	for (size_t i = 0; i < len; i++)
		if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			lf++;
	if (len > SIZE_MAX / 2 - (size_t)hn - 2)
		return -1;
	obuf ob = { .cap = (size_t)hn + len + lf + 2 };
	if ((ob.p = malloc(ob.cap)) == NULL)
		return -1;
	ob_put(&ob, head, (size_t)hn);
	for (size_t i = 0; i < len; i++) { /* bare LF → CRLF (RFC 5322) */
		if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			ob_put(&ob, "\r", 1);
		ob_put(&ob, body + i, 1);
	}
	if (len > 0 && body[len - 1] != '\n')
		ob_str(&ob, "\r\n");
	if (ob.bad) {
		free(ob.p);
		return -1;
	}
	*msg_r = ob.p;
	*len_r = ob.len;
	return 0;
}

/* ----------------------------------------------------- the loop's side */

static void async_cb(uv_async_t *a)
{
	bsync *s = a->data;
	pthread_mutex_lock(&s->mu);
	job *j = s->job;
	pthread_mutex_unlock(&s->mu);
	if (j == NULL)
		return;
	uint32_t uid = 0;
	j->error = NULL;
	if (j->kind == JOB_DELIVER) {
		j->result = bstore_deliver(s->set.store, j->mailbox, j->key,
					   j->msg, j->len, j->received, &uid,
					   &j->error);
		if (j->result == 0)
			log_msg(LOG_INFO, "msg=\"bridge sync: stored\" mailbox=%s "
				"uid=%u size=%zu", j->mailbox, uid, j->len);
		if (j->result == 0 && s->set.changed != NULL)
			s->set.changed(s->set.arg);
	} else if (j->kind == JOB_CURSOR) {
		j->result = bstore_cursor_set(s->set.store, j->cursor);
		if (j->result != 0)
			j->error = "cannot store the cursor";
	} else {
		if (s->set.address_cb != NULL)
			s->set.address_cb(s->set.arg, s->address);
		j->result = 0;
	}
	pthread_mutex_lock(&s->mu);
	j->done = true;
	s->job = NULL;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------- the worker's side */

/* Run j on the loop's thread; false when stopping. */
static bool run_job(bsync *s, job *j)
{
	pthread_mutex_lock(&s->mu);
	j->done = false;
	s->job = j;
	uv_async_send(&s->async);
	while (!j->done && !s->stop)
		pthread_cond_wait(&s->cv, &s->mu);
	bool done = j->done;
	if (!done)
		s->job = NULL; /* the loop is in bsync_stop: not running it */
	pthread_mutex_unlock(&s->mu);
	return done;
}

static bool stopping(bsync *s)
{
	pthread_mutex_lock(&s->mu);
	bool st = s->stop;
	pthread_mutex_unlock(&s->mu);
	return st;
}

static void pause_ms(bsync *s, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000u;
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->stop &&
	       pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->mu);
}

static void dedup_key(const char *tag, const void *a, size_t alen,
		      const void *b, size_t blen, uint8_t out[16])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 16);
	crypto_generichash_update(&st, (const uint8_t *)tag, strlen(tag) + 1);
	crypto_generichash_update(&st, a, alen);
	if (b != NULL)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, 16);
}

/* One inbox item: opened (or not) and stored.  0 stored (ack it), -1 not
 * (stop this batch: the store failed or we are stopping). */
static int take_item(bsync *s, nclient *c, const Amp__V1__InboxItem *it)
{
	cli_opened op;
	job j = { .kind = JOB_DELIVER, .received = (int64_t)it->received };
	uint8_t *made = NULL;
	size_t made_len = 0;
	char idhex[2 * AMP_ENVELOPE_ID_BYTES + 1], folder[16];
	int built = 0;
	int r = cli_open_fetched(&s->env, c, s->set.id, s->set.retired,
				 s->set.n_retired, it->envelope.data,
				 it->envelope.len, &op);
	sodium_bin2hex(idhex, sizeof(idhex), op.envelope_id,
		       AMP_ENVELOPE_ID_BYTES);
	if (op.sender[0] == '\0')
		idhex[0] = '\0';
	if (r == CLI_OK) {
		j.mailbox = "INBOX";
		if (it->delivery != NULL &&
		    cli_note_value(it->delivery, "folder", folder, sizeof(folder)) &&
		    strcmp(folder, "Junk") == 0)
			j.mailbox = "Junk";
		dedup_key("v", op.sender, strlen(op.sender) + 1, op.envelope_id,
			  AMP_ENVELOPE_ID_BYTES, j.key);
		char from[600];
		if (strncmp(op.content_type, "text/plain", 10) == 0) {
			if (!bsync_did_address(op.sender, from, sizeof(from)))
				snprintf(from, sizeof(from), "%s", op.sender);
			built = bsync_wrap_text(from, s->address, idhex,
						it->received, op.body, op.len,
						&made, &made_len);
		} else {
			j.msg = op.body;
			j.len = op.len;
		}
		log_msg(LOG_INFO, "msg=\"bridge sync: verified\" seq=%llu "
			"sender=%s envelope=%s", (unsigned long long)it->seq,
			op.sender, idhex);
	} else {
		char q[LOG_QUOTE_MAX];
		j.mailbox = BSTORE_UNVERIFIED;
		dedup_key("u", it->envelope.data, it->envelope.len, NULL, 0, j.key);
		log_msg(LOG_WARN, "msg=\"bridge sync: verification failed\" "
			"seq=%llu sender=%s envelope=%s reason=%s",
			(unsigned long long)it->seq,
			op.sender[0] != '\0' ? op.sender : "-",
			idhex[0] != '\0' ? idhex : "-",
			log_quote(op.reason, strlen(op.reason), q));
		built = bsync_unverified_message(op.reason, op.sender, idhex,
						 it->received, it->envelope.data,
						 it->envelope.len, &made,
						 &made_len);
	}
	if (built != 0) {
		cli_opened_clear(&op);
		log_msg(LOG_ERR, "msg=\"bridge sync: cannot build the message "
			"to store\" seq=%llu", (unsigned long long)it->seq);
		return -1;
	}
	if (made != NULL) {
		j.msg = made;
		j.len = made_len;
	}
	bool ran = run_job(s, &j);
	if (made != NULL) {
		sodium_memzero(made, made_len);
		free(made);
	}
	cli_opened_clear(&op);
	if (!ran)
		return -1;
	if (j.result < 0) {
		log_msg(LOG_ERR, "msg=\"bridge sync: cannot store\" seq=%llu "
			"error=\"%s\"", (unsigned long long)it->seq,
			j.error != NULL ? j.error : "?");
		return -1;
	}
	return 0;
}

/* Our mail address as the node names it (§10.3.1: its canonical_maps
 * reverse entry, else local@domain): into s->address and, through the
 * loop, to the bridge.  Kept as it was when the node does not say. */
static void learn_address(bsync *s, nclient *c)
{
	Amp__V1__LookupRequest lr = AMP__V1__LOOKUP_REQUEST__INIT;
	lr.did = (char *)s->set.id->pub.did;
	Amp__V1__Frame f = AMP__V1__FRAME__INIT;
	f.body_case = AMP__V1__FRAME__BODY_LOOKUP;
	f.lookup = &lr;
	Amp__V1__Response *resp = NULL;
	const char *err = NULL;
	if (nclient_op(c, &f, nclient_timeout(c), &resp, NULL, &err) != 0) {
		log_msg(LOG_INFO, "msg=\"bridge sync: our address not learnt\" "
			"error=\"%s\"", err != NULL ? err : "?");
		return;
	}
	const char *a = resp->result_case == AMP__V1__RESPONSE__RESULT_LOOKUP &&
		resp->lookup->address != NULL ? resp->lookup->address : "";
	char safe[sizeof(s->address)];
	header_safe(a, safe, sizeof(safe), sizeof(safe) - 1);
	bool usable = a[0] != '\0' && strlen(a) < sizeof(s->address) &&
		      strcmp(safe, a) == 0 && strchr(a, '@') != NULL &&
		      strpbrk(a, " <>\"") == NULL;
	amp__v1__response__free_unpacked(resp, NULL);
	if (!usable)
		return;
	snprintf(s->address, sizeof(s->address), "%s", safe);
	log_msg(LOG_INFO, "msg=\"bridge sync: our address\" address=%s",
		s->address);
	job j = { .kind = JOB_ADDRESS };
	(void)run_job(s, &j);
}

/* Fetch and store until the connection fails or we stop. */
static void sync_loop(bsync *s, nclient *c)
{
	while (!stopping(s)) {
		Amp__V1__Response *resp = NULL;
		const char *err = NULL;
		if (nclient_fetch(c, s->cursor, BSYNC_BATCH, s->set.wait_ms, &resp,
				  NULL, &err) != 0) {
			if (!stopping(s))
				log_msg(LOG_WARN, "msg=\"bridge sync: fetch failed\" "
					"error=\"%s\"", err != NULL ? err : "?");
			return;
		}
		Amp__V1__FetchResult *fr = resp->result_case ==
			AMP__V1__RESPONSE__RESULT_FETCH ? resp->fetch : NULL;
		size_t n = fr != NULL ? fr->n_items : 0, i;
		bool failed = false;
		for (i = 0; i < n && !failed; i++) {
			const Amp__V1__InboxItem *it = fr->items[i];
			if (take_item(s, c, it) != 0) {
				failed = true;
				break;
			}
			if (nclient_ack(c, &it->seq, 1, NULL, &err) != 0) {
				log_msg(LOG_WARN, "msg=\"bridge sync: ack failed\" "
					"seq=%llu error=\"%s\"",
					(unsigned long long)it->seq, err);
				failed = true;
			}
		}
		if (!failed && fr != NULL && fr->cursor != s->cursor) {
			job j = { .kind = JOB_CURSOR, .cursor = fr->cursor };
			if (run_job(s, &j) && j.result == 0)
				s->cursor = fr->cursor;
		}
		amp__v1__response__free_unpacked(resp, NULL);
		if (failed)
			return; /* reconnect after a pause */
	}
}

static void *worker(void *arg)
{
	bsync *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* those are the loop's */
	unsigned backoff = BSYNC_BACKOFF_MIN_MS;
	while (!stopping(s)) {
		nclient *c = NULL;
		const char *err = NULL;
		if (cli_connect_node(&s->env, &s->set.conn, &c) != CLI_OK ||
		    nclient_auth(c, s->set.id, NULL, &err) != 0) {
			nclient_close(&c);
			if (stopping(s))
				break;
			log_msg(LOG_WARN, "msg=\"bridge sync: cannot reach the home "
				"node\" error=\"%s\" retry_ms=%u",
				err != NULL ? err : "connect failed", backoff);
			pause_ms(s, backoff);
			backoff = backoff >= BSYNC_BACKOFF_MAX_MS / 2
				? BSYNC_BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		log_msg(LOG_INFO, "msg=\"bridge sync: connected\" cursor=%llu",
			(unsigned long long)s->cursor);
		backoff = BSYNC_BACKOFF_MIN_MS;
		learn_address(s, c);
		sync_loop(s, c);
		nclient_close(&c);
		if (!stopping(s))
			pause_ms(s, backoff);
	}
	pthread_mutex_lock(&s->mu);
	s->exited = true;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig; /* only interrupts the worker's poll(2) */
}

int bsync_start(uv_loop_t *loop, const bsync_settings *set, bsync **s_r,
		const char **error_r)
{
	bsync *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	s->env = *set->env;
	s->set = *set;
	s->set.env = NULL;
	if (s->set.wait_ms == 0)
		s->set.wait_ms = BSYNC_WAIT_MS_DEFAULT;
	snprintf(s->address, sizeof(s->address), "%s",
		 set->address != NULL ? set->address : "");
	s->set.address = NULL;
	if (bstore_cursor_get(set->store, &s->cursor) != 0) {
		free(s);
		*error_r = "cannot read the sync cursor";
		return -1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: poll(2) returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (uv_async_init(loop, &s->async, async_cb) != 0) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		*error_r = "cannot make an async handle";
		return -1;
	}
	s->async.data = s;
	if (pthread_create(&s->thread, NULL, worker, s) != 0) {
		*error_r = "cannot start the sync thread";
		bsync_stop(&s);
		return -1;
	}
	s->started = true;
	*s_r = s;
	return 0;
}

static void async_closed(uv_handle_t *h)
{
	bsync *s = h->data;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

void bsync_stop(bsync **sp)
{
	bsync *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->started) {
		for (;;) {
			pthread_mutex_lock(&s->mu);
			bool ex = s->exited;
			pthread_mutex_unlock(&s->mu);
			if (ex)
				break;
			pthread_kill(s->thread, SIGUSR1);
			struct timespec ts = { 0, 20 * 1000000L };
			nanosleep(&ts, NULL);
		}
		pthread_join(s->thread, NULL);
	}
	uv_close((uv_handle_t *)&s->async, async_closed);
}
