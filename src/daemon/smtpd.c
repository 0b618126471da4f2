/*
 * smtpd.c — see smtpd.h.  One uv_tcp_t and one uv_timer_t per
 * connection feeding an smtp_session; replies go out with uv_write,
 * through GnuTLS (memory sessions of src/transport/tls.c) once TLS is up.
 *
 * Threads: everything here runs on the node's loop except
 *  - rcpt_work (worker pool): canonical and alias expansion and the
 *    registry reads for one RCPT, on a table snapshot taken on the loop;
 *  - seal_work (worker pool): sealing and handing the message to the
 *    store, whose commit callback (writer thread) posts the answer back
 *    with done_async, so the 250 follows the fsync.
 *
 * Forwarding (issue 7): a recipient that virtual_alias_maps turns into an
 * address elsewhere, for a client that is not a relay client, or a bounce
 * to one of our SRS addresses (RCPT TO an SRS address at srs_domain,
 * reversed at once: a bad hash or an old stamp is 550 5.1.1), makes the
 * mail-queue copy a forwarded one: its envelope sender is rewritten with
 * SRS (srs, srs_domain; the key is derived from the node identity's
 * signing key, wiped after each use) and it is ARC-sealed (arc_seal,
 * arc_seal_domain) with our Authentication-Results as the AAR and the cv
 * mailauth found.  When one message has both forwarded and other remote
 * recipients (relay_domains), the one queue copy is treated as forwarded.
 * A connection is reference counted: its two handles and every job it
 * has on a worker; it is freed when the last one is gone.
 */
#include "smtpd.h"

#include "log.h"
#include "mailauth.h"
#include "mail-date.h"
#include "mail-header.h"
#include "smtp-server.h"
#include "srs.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SMTPD_LISTEN_MAX 16u
#define SMTPD_READ_MAX 65536u          /* one read, and the held-back input */
#define SMTPD_WRITE_QUEUE_MAX (1u << 20) /* unsent replies: stop reading */
#define SMTPD_IP_BUCKETS 4096u
#define SMTPD_IP_ENTRIES_MAX 200000u   /* client IPs remembered for rates */
#define SMTPD_SWEEP_MS 60000u

/* dmarc_policy */
enum { DMARC_MODE_ENFORCE, DMARC_MODE_QUARANTINE, DMARC_MODE_REPORT };

typedef struct sconn_smtp sconn_smtp;
typedef struct ipent ipent;

typedef struct slisten {
	uv_tcp_t h;
	struct smtpd *d;
	bool implicit_tls;
} slisten;

/* Per client IP (IPv4, or the /64 of an IPv6 address): connections now,
 * and token buckets of connections and messages per minute. */
struct ipent {
	uint8_t key[16];
	unsigned conns;
	double conn_tok, msg_tok, rcpt_tok;
	uint64_t conn_t, msg_t, rcpt_t; /* uv_now of the last refill */
	ipent *next;
};

struct smtpd {
	uv_loop_t *loop;
	store *const *stp;
	amp_identity *const *nodep;
	mapset *const *mapsp;
	void (*notify)(void *, const char *);
	void *notify_arg;
	void (*out_wake)(void *);
	void *out_arg;
	dkimkeys *dkim;
	const lanes *lanes;
	bool dkim_relayed;           /* dkim_sign_relayed */
	uint64_t queue_lifetime;     /* maximal_queue_lifetime */
	char **domains;
	size_t n_domains;
	char hostname[256];
	char postmaster[MAPS_ADDR_MAX + 1]; /* smtp_postmaster, "" none */
	/* settings */
	uint64_t size_max;
	unsigned max_conns, max_per_ip, conn_rate, msg_rate, rcpt_rate, rcpt_limit;
	uint64_t timeout_ms, session_ms, tls_timeout_ms, greet_delay_ms;
	unsigned soft_errors, hard_errors, error_sleep_ms;
	unsigned hop_limit, hdr_count_limit;
	uint64_t hdr_size_limit;
	smtp_data_policy bare_policy;
	bool starttls;
	/* the authentication checks of inbound mail (issue 7) */
	mailauth *auth;              /* NULL: none runs */
	unsigned dmarc_mode;         /* DMARC_MODE_* */
	bool spf_reject;             /* spf_fail_reject */
	bool local_from_auth;        /* local_from_policy = require-auth */
	char **sealers;              /* arc_trusted_sealers, lower case */
	size_t n_sealers;
	/* forwarded mail: SRS and the ARC seal */
	bool srs_on;                 /* srs */
	char srs_domain[SRS_DOMAIN_MAX + 1]; /* lower case */
	bool arc_seal_on;            /* arc_seal, with a key for arc_domain */
	char arc_domain[SRS_DOMAIN_MAX + 1];
	tls_creds *creds;
	amp_ctx *actx;               /* pooled zstd contexts, X25519 cache */
	/* state */
	unsigned n_conns;
	uint64_t next_id;
	slisten *ls[SMTPD_LISTEN_MAX];
	size_t n_ls;
	ipent *ips[SMTPD_IP_BUCKETS];
	size_t n_ips;
	uint8_t ip_hkey[crypto_shorthash_KEYBYTES]; /* keyed bucket choice */
	uint64_t mem_limit, mem_used; /* message bytes held, all sessions */
	uv_timer_t sweep;
	bool stopping, closing_handles, freeing;
	int handles;
	unsigned inflight;           /* RCPT jobs and messages in progress */
	uv_async_t done_async;
	pthread_mutex_t done_lock;
	struct msg *done_head;
	sconn_smtp *conns;
};

/* A recipient outside this node: the message goes to the mail queue for
 * it (relay_domains, smtp_relay_networks, or an alias to an address
 * elsewhere). */
typedef struct remote_rcpt {
	char addr[SMTP_PATH_MAX + 1];
	char orcpt[SMTP_PATH_MAX + 16]; /* decoded "rfc822;addr", or "" */
	unsigned notify;
	bool forwarded;              /* an alias elsewhere, or a reversed SRS
					bounce: SRS and the ARC seal */
} remote_rcpt;

typedef struct msg {
	struct smtpd *d;
	sconn_smtp *c;
	uv_work_t work;
	uint8_t *body;
	size_t len;
	amp_public_identity *rcpts;
	char **notes;                /* per recipient: the delivery note */
	size_t n;
	remote_rcpt *remote;         /* for the mail queue */
	size_t n_remote;
	char from[SMTP_PATH_MAX + 1];
	char envid[101];
	unsigned ret;
	bool sign;                   /* DKIM-sign it (a relay client's mail) */
	/* forwarded mail: the queue copy's sender (SRS) and what the ARC
	 * seal needs from the checks (aar NULL: no seal) */
	char qsender[SRS_ADDR_MAX + 1];
	char *aar;                   /* our Authentication-Results value */
	arc_cv cv;
	size_t data_off;             /* the client's bytes start here in body */
	bool dkim_signed;
	int result;                  /* 0 stored; -1 failed */
	char idhex[33];
	/* freed once both happened, on the loop: the answer was handled
	 * (done_async_cb) and libuv is done with `work` (seal_after) */
	bool answered, worked;
	struct msg *next;
} msg;

struct sconn_smtp {
	uv_tcp_t h;
	uv_timer_t timer;
	smtpd *d;
	sconn_smtp *prev, *next;
	smtp_session *s;
	ipent *ipe;
	uint64_t id;
	char ip[INET6_ADDRSTRLEN];
	char helo[256];
	bool esmtp;
	/* TLS */
	tls_session *tls;
	bool implicit_tls, handshaking, starttls_req;
	char tls_desc[96];
	/* timing */
	uint64_t deadline, session_end, greet_at;
	bool greeted, in_data, delayed, shutting;
	/* input held back while the session waits for a decision */
	uint8_t *held;
	size_t held_len;
	bool reading, eof;
	/* the transaction */
	char from[SMTP_PATH_MAX + 1];
	bool from_null, utf8;
	char dsn_env[160];           /* " envid=X ret=Y" of MAIL (xtext) */
	char envid[101];             /* MAIL's ENVID, decoded */
	unsigned ret;                /* MAIL's RET: 0, 1 FULL, 2 HDRS */
	remote_rcpt *remote;         /* accepted recipients for the queue */
	size_t n_remote;
	bool relay_client;           /* the client is in smtp_relay_networks */
	char first_rcpt[SMTP_PATH_MAX + 1];
	unsigned n_rcpt_cmds;
	bool discard, over_memory;
	uint8_t *data;
	size_t data_len, data_cap;
	amp_public_identity *rcpts;
	char **notes;                /* parallel to rcpts */
	size_t n_rcpts;
	/* counters for the disconnect line */
	unsigned n_mail, n_rcpt_ok, n_stored, n_refused;
	int refs;                    /* handles, jobs on the workers */
	bool closing;
};

static void conn_close(sconn_smtp *c);
static void conn_unref(sconn_smtp *c);
static void flush(sconn_smtp *c);
static void arm(sconn_smtp *c);
static void resume_input(sconn_smtp *c);
static int start_tls(sconn_smtp *c);

static bool is_local(const smtpd *d, const char *domain_lc)
{
	for (size_t i = 0; i < d->n_domains; i++)
		if (strcmp(d->domains[i], domain_lc) == 0)
			return true;
	return false;
}

/* The SRS secret (srs.h): derived from the node identity's signing key,
 * so it survives restarts without a file of its own.  The caller wipes
 * c->key (sodium_memzero) when done. */
static void srs_setup(const smtpd *d, srs_config *c)
{
	const amp_identity *node = *d->nodep;
	*c = (srs_config){ .domain = d->srs_domain };
	srs_key_derive(node->sign_sk, sizeof(node->sign_sk), c->key);
}

static const mapset_snap *maps_get(const smtpd *d)
{
	return d->mapsp != NULL && *d->mapsp != NULL ? mapset_get(*d->mapsp) : NULL;
}

/* ------------------------------------------------------------ client IPs */

static void ip_key(const struct sockaddr_storage *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return;
	}
	const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(a, mapped, 12) == 0)
		memcpy(key, a, 16);   /* IPv4-mapped: the IPv4 address */
	else
		memcpy(key, a, 8);    /* one /64 */
}

static size_t ip_hash(const smtpd *d, const uint8_t key[16])
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, key, 16, d->ip_hkey); /* SipHash: no chosen collisions */
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (size_t)(v % SMTPD_IP_BUCKETS);
}

static ipent *ip_get(smtpd *d, const uint8_t key[16], uint64_t now)
{
	size_t b = ip_hash(d, key);
	for (ipent *e = d->ips[b]; e != NULL; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	if (d->n_ips >= SMTPD_IP_ENTRIES_MAX)
		return NULL;
	ipent *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, 16);
	e->conn_tok = d->conn_rate;
	e->msg_tok = d->msg_rate;
	e->rcpt_tok = d->rcpt_rate;
	e->conn_t = e->msg_t = e->rcpt_t = now;
	e->next = d->ips[b];
	d->ips[b] = e;
	d->n_ips++;
	return e;
}

/* One token of a per-minute bucket (burst: one minute's worth). */
static bool bucket_take(double *tok, uint64_t *t, unsigned per_min, uint64_t now)
{
	if (per_min == 0)
		return true;
	*tok += (double)(now - *t) * per_min / 60000.0;
	if (*tok > per_min)
		*tok = per_min;
	*t = now;
	if (*tok < 1.0)
		return false;
	*tok -= 1.0;
	return true;
}

/* Forget IPs with no connection whose buckets are full again. */
static void sweep_cb(uv_timer_t *t)
{
	smtpd *d = t->data;
	uint64_t now = uv_now(d->loop);
	for (size_t b = 0; b < SMTPD_IP_BUCKETS; b++) {
		ipent **pp = &d->ips[b];
		while (*pp != NULL) {
			ipent *e = *pp;
			if (e->conns == 0 && now - e->conn_t >= 60000 &&
			    now - e->msg_t >= 60000 && now - e->rcpt_t >= 60000) {
				*pp = e->next;
				free(e);
				d->n_ips--;
			} else {
				pp = &e->next;
			}
		}
	}
}

/* ---------------------------------------------------------------- output */

typedef struct wreq {
	uv_write_t w;
	uint8_t data[];
} wreq;

static void write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static int write_raw(sconn_smtp *c, const uint8_t *p, size_t n)
{
	wreq *wr = malloc(sizeof(*wr) + n);
	if (wr == NULL)
		abort();
	memcpy(wr->data, p, n);
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)n);
	if (uv_write(&wr->w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0) {
		free(wr);
		return -1;
	}
	return 0;
}

/* Ciphertext the TLS session has for the network. */
static int push_tls(sconn_smtp *c)
{
	const uint8_t *o;
	size_t n;
	while ((n = tls_take_output(c->tls, &o)) > 0) {
		if (write_raw(c, o, n) != 0)
			return -1;
		tls_output_consumed(c->tls, n);
	}
	return 0;
}

static int send_bytes(sconn_smtp *c, const uint8_t *p, size_t n)
{
	if (c->tls == NULL)
		return write_raw(c, p, n);
	const char *err = NULL;
	if (tls_write(c->tls, p, n, &err) != 0)
		return -1;
	return push_tls(c);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
	sconn_smtp *c = req->data;
	(void)status;
	free(req);
	conn_close(c);
	conn_unref(c);
}

/* The session is over: let the queued replies go out, then close. */
static void finish(sconn_smtp *c)
{
	if (c->shutting || c->closing)
		return;
	c->shutting = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->h);
		c->reading = false;
	}
	uv_shutdown_t *req = malloc(sizeof(*req));
	if (req == NULL)
		abort();
	req->data = c;
	c->refs++;
	if (uv_shutdown(req, (uv_stream_t *)&c->h, shutdown_done) != 0) {
		free(req);
		c->refs--;
		conn_close(c);
		return;
	}
	/* a client that never reads: the timer closes it */
	c->deadline = uv_now(c->d->loop) + 10000;
	arm(c);
}

static void send_output(sconn_smtp *c)
{
	const uint8_t *o;
	size_t n;
	bool sent = false;
	while (!c->closing && (n = smtp_session_output(c->s, &o)) > 0) {
		if (send_bytes(c, o, n) != 0) {
			conn_close(c);
			return;
		}
		smtp_session_output_consumed(c->s, n);
		sent = true;
	}
	if (c->closing)
		return;
	if (smtp_session_closing(c->s)) {
		finish(c);
		return;
	}
	if (sent) /* a reply: the client's turn (commands, or the text after 354) */
		c->deadline = uv_now(c->d->loop) + c->d->timeout_ms;
	if (c->starttls_req) {
		/* the 220 went out in plaintext; every later byte is TLS, and
		 * nothing received before it is kept (T1) */
		c->starttls_req = false;
		free(c->held);
		c->held = NULL;
		c->held_len = 0;
		if (start_tls(c) != 0)
			conn_close(c);
	}
}

/* Send what the session wrote, after the tarpit delay once the client
 * has made smtp_soft_error_limit errors (S14). */
static void flush(sconn_smtp *c)
{
	const uint8_t *o;
	if (c->closing || c->shutting || c->delayed)
		return;
	unsigned delay = smtp_session_delay_ms(c->s);
	if (delay > 0 && !c->starttls_req && !smtp_session_closing(c->s) &&
	    smtp_session_output(c->s, &o) > 0) {
		c->delayed = true;
		if (c->reading) {
			uv_read_stop((uv_stream_t *)&c->h);
			c->reading = false;
		}
		c->deadline = uv_now(c->d->loop) + delay;
		arm(c);
		return;
	}
	send_output(c);
	arm(c);
}

/* ----------------------------------------------------------------- timer */

static void timer_cb(uv_timer_t *t);

static void arm(sconn_smtp *c)
{
	if (c->closing)
		return;
	uint64_t now = uv_now(c->d->loop);
	uint64_t at = c->deadline;
	if (!c->delayed && !c->shutting) {
		if (!c->handshaking && c->greeted && smtp_session_pending(c->s)) {
			uv_timer_stop(&c->timer); /* the client waits for us */
			return;
		}
		if (!c->handshaking && c->session_end < at)
			at = c->session_end;
		if (!c->greeted && !c->handshaking && c->greet_at < at)
			at = c->greet_at;
	}
	/* at least 1 ms: a 0 ms timer started from a timer callback would run
	 * again in the same pass of the loop (its clock is not refreshed) */
	uv_timer_start(&c->timer, timer_cb, at > now ? at - now : 1, 0);
}

static void greet(sconn_smtp *c)
{
	c->greeted = true;
	smtp_session_greet(c->s);
	c->deadline = uv_now(c->d->loop) + c->d->timeout_ms;
	flush(c);
}

static void timer_cb(uv_timer_t *t)
{
	sconn_smtp *c = t->data;
	smtpd *d = c->d;
	uint64_t now = uv_now(d->loop);
	if (c->closing)
		return;
	if (c->shutting) {
		conn_close(c);
		return;
	}
	if (c->delayed) {
		c->delayed = false;
		send_output(c);
		resume_input(c);
		arm(c);
		return;
	}
	if (c->handshaking) {
		if (now >= c->deadline || now >= c->session_end) {
			log_msg(LOG_INFO, "msg=\"smtp: TLS handshake timeout\" session=%llu "
				"peer=%s", (unsigned long long)c->id, c->ip);
			conn_close(c);
			return;
		}
		arm(c);
		return;
	}
	if (!c->greeted && now >= c->greet_at) {
		greet(c);
		resume_input(c);
		return;
	}
	if (now >= c->deadline || now >= c->session_end) {
		log_msg(LOG_INFO, "msg=\"smtp: %s\" session=%llu peer=%s",
			now >= c->session_end ? "session too long" : "timeout",
			(unsigned long long)c->id, c->ip);
		smtp_session_timeout(c->s);
		send_output(c);
		return;
	}
	arm(c);
}

/* -------------------------------------------------------- the transaction */

static void notes_free(char **notes, size_t n)
{
	for (size_t i = 0; notes != NULL && i < n; i++)
		free(notes[i]);
	free(notes);
}

/* RFC 3461 xtext: printable ASCII except '+' and '=' as is, the rest +HH.
 * Appends " key=VALUE" to out (truncating safely). */
static void note_add(char *out, size_t size, const char *key, const char *v)
{
	size_t n = strlen(out);
	int k = snprintf(out + n, size - n, " %s=", key);
	if (k < 0 || (size_t)k >= size - n)
		return;
	n += (size_t)k;
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (n + 4 >= size)
			return;
		if (*p > 32 && *p < 127 && *p != '+' && *p != '=')
			out[n++] = (char)*p;
		else
			n += (size_t)snprintf(out + n, size - n, "+%02X", *p);
	}
	out[n] = '\0';
}

static void tx_clear(sconn_smtp *c)
{
	if (c->data != NULL)
		sodium_memzero(c->data, c->data_len);
	free(c->data);
	c->d->mem_used -= c->data_cap;
	c->data = NULL;
	c->data_len = c->data_cap = 0;
	c->over_memory = false;
	notes_free(c->notes, c->n_rcpts);
	c->notes = NULL;
	free(c->rcpts);
	c->rcpts = NULL;
	c->n_rcpts = 0;
	free(c->remote);
	c->remote = NULL;
	c->n_remote = 0;
	c->n_rcpt_cmds = 0;
	c->first_rcpt[0] = '\0';
	c->discard = false;
	c->in_data = false;
}

static void cb_helo(void *arg, const char *name, bool esmtp)
{
	sconn_smtp *c = arg;
	snprintf(c->helo, sizeof(c->helo), "%s", name);
	c->esmtp = esmtp;
}

static void cb_mail(void *arg, const smtp_path *from, const smtp_mail_params *p)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	if (c->ipe != NULL &&
	    !bucket_take(&c->ipe->msg_tok, &c->ipe->msg_t, d->msg_rate,
			 uv_now(d->loop))) {
		smtp_session_reply(c->s, 450, "4.7.0",
				   "Too many messages from your address, try later");
		return;
	}
	c->from_null = from->null;
	if (from->null || !smtp_path_format(from, c->from, sizeof(c->from)))
		c->from[0] = '\0';
	c->utf8 = p->smtputf8;
	snprintf(c->envid, sizeof(c->envid), "%s", p->envid);
	c->ret = p->ret == SMTP_RET_FULL ? 1 : p->ret == SMTP_RET_HDRS ? 2 : 0;
	c->dsn_env[0] = '\0';
	if (p->envid[0] != '\0')
		note_add(c->dsn_env, sizeof(c->dsn_env), "envid", p->envid);
	if (p->ret != SMTP_RET_NONE)
		note_add(c->dsn_env, sizeof(c->dsn_env), "ret",
			 p->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	c->n_mail++;
	smtp_session_reply(c->s, 250, "2.1.0", "Ok");
}

/* access_map on the client, the sender and the recipient (Postfix
 * check_client_access, check_sender_access, check_recipient_access in
 * that order): true when the RCPT was answered (refused). */
static bool access_check(sconn_smtp *c, const maps_table *t, const char *rcpt)
{
	if (maps_table_count(t) == 0)
		return false;
	for (int step = 0; step < 3; step++) {
		maps_access r;
		bool found = step == 0 ? maps_access_client(t, NULL, c->ip, &r, NULL)
			   : step == 1 ? maps_access_address(t, c->from, &r, NULL)
				       : maps_access_address(t, rcpt, &r, NULL);
		if (!found || r.action == MAPS_ACT_DUNNO)
			continue;
		switch (r.action) {
		case MAPS_ACT_OK:
			return false;
		case MAPS_ACT_DISCARD:
			c->discard = true;
			return false;
		case MAPS_ACT_REJECT:
		case MAPS_ACT_DEFER: {
			unsigned code = r.code;
			if (code == 421 || code == 521) /* no closing mid-session */
				code = code == 421 ? 450 : 550;
			smtp_session_reply(c->s, code, r.dsn,
					   r.text[0] != '\0' ? r.text : "Access denied");
			return true;
		}
		case MAPS_ACT_HOLD:
			/* No hold queue for inbound mail yet: defer it, so
			 * nothing held is delivered. */
			smtp_session_reply(c->s, 450, "4.7.1",
					   "Message held by policy, try later");
			return true;
		default:
			break;
		}
	}
	return false;
}

typedef struct rjob {
	uv_work_t w;
	sconn_smtp *c;
	const mapset_snap *snap;
	store *st;
	char addr[SMTP_PATH_MAX + 1];
	bool postmaster;             /* postmaster@ one of our domains */
	char note[600];              /* rcpt=, orcpt=, notify= (xtext) */
	char orcpt[SMTP_PATH_MAX + 16];
	unsigned notify;
	bool relay_client;           /* c->relay_client at RCPT */
	bool reversed;               /* addr is a reversed SRS bounce */
	/* results */
	amp_public_identity *ids;
	size_t n;
	remote_rcpt *remote;         /* addresses elsewhere: the mail queue */
	size_t n_remote;
	unsigned code;
	char enh[8];
	char text[SMTP_REPLY_TEXT_MAX];
} rjob;

static void rjob_fail(rjob *j, unsigned code, const char *enh, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));
static void rjob_fail(rjob *j, unsigned code, const char *enh, const char *fmt,
		      ...)
{
	if (j->code != 0)
		return;
	j->code = code;
	snprintf(j->enh, sizeof(j->enh), "%s", enh);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->text, sizeof(j->text), fmt, ap);
	va_end(ap);
}

/* One final recipient: a DID, or an address at one of our domains. */
static void rjob_target(rjob *j, const char *target, bool aliased)
{
	smtpd *d = j->c->d;
	char did[AMP_DID_MAX + 1];
	amp_did pd;
	const char *err;
	if (strncmp(target, "did:", 4) == 0) {
		if (amp_did_parse(target, strlen(target), &pd, &err) != AMP_OK) {
			rjob_fail(j, 451, "4.3.0", "Alias target %.200s is not a valid DID",
				  target);
			return;
		}
		if (!is_local(d, pd.domain)) {
			rjob_fail(j, 451, "4.4.0", "Cannot deliver to the remote DID %.200s "
				  "from this gateway yet", target);
			return;
		}
		snprintf(did, sizeof(did), "%s", target);
	} else {
		const char *at = strrchr(target, '@');
		char local[MAPS_ADDR_MAX + 1], dom[MAPS_ADDR_MAX + 1];
		if (at == NULL || at == target) {
			rjob_fail(j, 451, "4.3.0", "Alias target %.200s is not an address",
				  target);
			return;
		}
		snprintf(local, sizeof(local), "%.*s", (int)(at - target), target);
		snprintf(dom, sizeof(dom), "%s", at + 1);
		for (char *q = local; *q != '\0'; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		for (char *q = dom; *q != '\0'; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		if (!is_local(d, dom)) {
			/* the relay check passed at RCPT, or an alias of ours
			 * forwards here: the mail queue takes it */
			if (j->n + j->n_remote >= AMP_RECIPIENTS_MAX) {
				rjob_fail(j, 452, "4.5.3", "Too many recipients");
				return;
			}
			for (size_t i = 0; i < j->n_remote; i++)
				if (strcasecmp(j->remote[i].addr, target) == 0)
					return;
			remote_rcpt *nr = realloc(j->remote, (j->n_remote + 1) *
							    sizeof(*nr));
			if (nr == NULL)
				abort();
			j->remote = nr;
			remote_rcpt *r = &j->remote[j->n_remote++];
			snprintf(r->addr, sizeof(r->addr), "%s", target);
			snprintf(r->orcpt, sizeof(r->orcpt), "%s", j->orcpt);
			r->notify = j->notify;
			r->forwarded = j->reversed || (aliased && !j->relay_client);
			return;
		}
		if (amp_did_format(dom, local, did, sizeof(did), &err) != AMP_OK) {
			if (aliased)
				rjob_fail(j, 451, "4.3.0", "Alias target %.200s is unknown",
					  target);
			else
				rjob_fail(j, 550, "5.1.1", "No such user here");
			return;
		}
	}
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->ids[i].did, did) == 0)
			return;
	char *doc = NULL;
	size_t dl;
	amp_public_identity pub;
	int r = store_identity_get(j->st, did, &doc, &dl);
	if (r < 0) {
		free(doc);
		rjob_fail(j, 451, "4.3.0", "Cannot read the registry, try later");
		return;
	}
	if (r == 0 || amp_did_document_parse(doc, dl, &pub, &err) != AMP_OK) {
		free(doc);
		if (aliased)
			rjob_fail(j, 451, "4.3.0", "Alias target %.200s is unknown", target);
		else
			rjob_fail(j, 550, "5.1.1", "No such user here");
		return;
	}
	free(doc);
	if (j->n >= AMP_RECIPIENTS_MAX) {
		rjob_fail(j, 452, "4.5.3", "Too many recipients");
		return;
	}
	amp_public_identity *nv = realloc(j->ids, (j->n + 1) * sizeof(*nv));
	if (nv == NULL)
		abort();
	j->ids = nv;
	j->ids[j->n++] = pub;
}

/* Worker: canonical_maps, then virtual_alias_maps, then the registry. */
static void rcpt_work(uv_work_t *w)
{
	rjob *j = w->data;
	char cur[MAPS_ADDR_MAX + 1];
	maps_error me;
	snprintf(cur, sizeof(cur), "%s", j->addr);
	if (j->snap != NULL) {
		int r = maps_canonical_forward(j->snap->t[MAPS_CANONICAL], j->addr, cur,
					       sizeof(cur), NULL, &me);
		if (r < 0) {
			char q[LOG_QUOTE_MAX];
			log_msg(LOG_ERR, "msg=\"smtp: canonical_maps\" error=%s",
				log_quote(me.text, strlen(me.text), q));
			rjob_fail(j, 451, "4.3.0", "Address rewriting failed (%s)",
				  maps_status_name((maps_status)r));
			return;
		}
	}
	if (strncmp(cur, "did:", 4) == 0 || j->snap == NULL) {
		rjob_target(j, cur, strcmp(cur, j->addr) != 0);
		return;
	}
	maps_rcpts *rs = NULL;
	maps_status st = maps_virtual_expand(j->snap->t[MAPS_VIRTUAL], cur, &rs, &me);
	if (st != MAPS_OK) {
		char q[LOG_QUOTE_MAX];
		log_msg(LOG_ERR, "msg=\"smtp: virtual_alias_maps\" error=%s",
			log_quote(me.text, strlen(me.text), q));
		rjob_fail(j, 451, "4.3.0", "Alias expansion failed (%s)",
			  maps_status_name(st));
		return;
	}
	bool aliased = rs->changed || strcmp(cur, j->addr) != 0;
	if (!aliased && j->postmaster) {
		/* RFC 5321 §4.5.1: postmaster@ every domain of ours */
		if (j->c->d->postmaster[0] == '\0')
			rjob_fail(j, 550, "5.1.1", "No postmaster is configured here "
				  "(smtp_postmaster)");
		else
			rjob_target(j, j->c->d->postmaster, true);
		maps_rcpts_destroy(&rs);
		return;
	}
	for (size_t i = 0; i < rs->n && j->code == 0; i++)
		rjob_target(j, rs->v[i], aliased);
	maps_rcpts_destroy(&rs);
}

static void rcpt_after(uv_work_t *w, int status)
{
	rjob *j = w->data;
	sconn_smtp *c = j->c;
	smtpd *d = c->d;
	(void)status;
	if (j->snap != NULL)
		mapset_put(j->snap);
	d->inflight--;
	if (!c->closing && !c->shutting) {
		char q[LOG_QUOTE_MAX], q2[LOG_QUOTE_MAX];
		if (j->code != 0) {
			log_msg(LOG_INFO, "msg=\"smtp: recipient refused\" session=%llu "
				"peer=%s rcpt=%s code=%u reason=%s",
				(unsigned long long)c->id, c->ip,
				log_quote(j->addr, strlen(j->addr), q), j->code,
				log_quote(j->text, strlen(j->text), q2));
			c->n_refused++;
			smtp_session_reply(c->s, j->code, j->enh, j->text);
		} else {
			size_t add = 0, add_r = 0;
			for (size_t i = 0; i < j->n_remote; i++) {
				bool dup = false;
				for (size_t k = 0; k < c->n_remote && !dup; k++)
					dup = strcasecmp(c->remote[k].addr,
							 j->remote[i].addr) == 0;
				if (!dup)
					j->remote[add_r++] = j->remote[i];
			}
			for (size_t i = 0; i < j->n; i++) {
				bool dup = false;
				for (size_t k = 0; k < c->n_rcpts && !dup; k++)
					dup = strcmp(c->rcpts[k].did, j->ids[i].did) == 0;
				if (!dup)
					j->ids[add++] = j->ids[i];
			}
			if (c->n_rcpts + add > AMP_RECIPIENTS_MAX ||
			    c->n_remote + add_r > AMP_RECIPIENTS_MAX) {
				smtp_session_reply(c->s, 452, "4.5.3", "Too many recipients");
			} else {
				if (add_r > 0) {
					remote_rcpt *rr = realloc(c->remote,
						(c->n_remote + add_r) * sizeof(*rr));
					if (rr == NULL)
						abort();
					c->remote = rr;
					memcpy(c->remote + c->n_remote, j->remote,
					       add_r * sizeof(*rr));
					c->n_remote += add_r;
				}
				amp_public_identity *nr =
					realloc(c->rcpts, (c->n_rcpts + add + 1) * sizeof(*nr));
				char **nn = realloc(c->notes, (c->n_rcpts + add + 1) *
							      sizeof(*nn));
				if (nr == NULL || nn == NULL)
					abort();
				c->rcpts = nr;
				c->notes = nn;
				if (add > 0) /* j->ids is NULL for a remote-only RCPT */
					memcpy(c->rcpts + c->n_rcpts, j->ids, add * sizeof(*nr));
				for (size_t i = 0; i < add; i++)
					if ((c->notes[c->n_rcpts + i] = strdup(j->note + 1)) == NULL)
						abort();
				c->n_rcpts += add;
				if (c->n_rcpt_cmds++ == 0)
					snprintf(c->first_rcpt, sizeof(c->first_rcpt), "%s",
						 j->addr);
				c->n_rcpt_ok++;
				smtp_session_reply(c->s, 250, "2.1.5", "Ok");
			}
		}
		flush(c);
		resume_input(c);
	}
	free(j->ids);
	free(j->remote);
	free(j);
	conn_unref(c);
}

static void cb_rcpt(void *arg, const smtp_path *to, const smtp_rcpt_params *p)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	if (c->ipe != NULL &&
	    !bucket_take(&c->ipe->rcpt_tok, &c->ipe->rcpt_t, d->rcpt_rate,
			 uv_now(d->loop))) {
		c->n_refused++;
		smtp_session_reply(c->s, 450, "4.7.0",
				   "Too many recipients from your address, try later");
		return;
	}
	const mapset_snap *snap = maps_get(d);
	char addr[SMTP_PATH_MAX + 1];
	bool pm_bare = to->domain[0] == '\0' && strcasecmp(to->local, "postmaster") == 0;
	if (pm_bare) { /* <Postmaster>: ours, at the node's first domain */
		snprintf(addr, sizeof(addr), "postmaster@%s", d->domains[0]);
	} else if (to->domain[0] == '\0' || to->literal ||
		   !smtp_path_format(to, addr, sizeof(addr))) {
		if (snap != NULL)
			mapset_put(snap);
		smtp_session_reply(c->s, 554, "5.7.1", "Relay access denied");
		return;
	}
	/* the domain part lower-cased (the local part is kept as given) */
	const char *dom_lc = pm_bare ? d->domains[0] : to->domain_lc;
	snprintf(strrchr(addr, '@') + 1, sizeof(addr) - (size_t)(strrchr(addr, '@') + 1 - addr),
		 "%s", dom_lc);
	bool ours = is_local(d, dom_lc);
	/* A bounce to one of our SRS addresses goes back to the sender it
	 * stands for (issue 7), whoever the client is. */
	char reversed[SRS_ADDR_MAX + 1] = "";
	if (d->srs_on && !pm_bare && strcasecmp(dom_lc, d->srs_domain) == 0 &&
	    srs_is_srs(addr)) {
		srs_config sc;
		const char *why = NULL;
		srs_setup(d, &sc);
		int r = srs_reverse(&sc, addr, (uint64_t)time(NULL), reversed, &why);
		sodium_memzero(sc.key, sizeof(sc.key));
		if (r == 0 && strlen(reversed) > SMTP_PATH_MAX) {
			r = -1; /* no SMTP path is that long */
			why = "the address it stands for is too long";
			reversed[0] = '\0';
		}
		if (r != 0) {
			char text[SMTP_REPLY_TEXT_MAX], q[LOG_QUOTE_MAX];
			if (snap != NULL)
				mapset_put(snap);
			log_msg(LOG_INFO, "msg=\"smtp: recipient refused\" session=%llu "
				"peer=%s rcpt=%s code=550 reason=\"SRS: %s\"",
				(unsigned long long)c->id, c->ip,
				log_quote(addr, strlen(addr), q), why);
			snprintf(text, sizeof(text), "Invalid SRS address (%s)", why);
			c->n_refused++;
			smtp_session_reply(c->s, 550, "5.1.1", text);
			return;
		}
	}
	bool allowed = ours || reversed[0] != '\0';
	if (snap != NULL)
		c->relay_client = maps_cidr_lookup(snap->relay_networks, c->ip, NULL);
	if (!allowed && snap != NULL)
		allowed = maps_virtual_domain(snap->t[MAPS_VIRTUAL], dom_lc, NULL) ||
			  maps_relay_domain(snap->t[MAPS_RELAY_DOMAINS], dom_lc, NULL) ||
			  c->relay_client;
	if (!allowed) {
		if (snap != NULL)
			mapset_put(snap);
		c->n_refused++;
		smtp_session_reply(c->s, 554, "5.7.1", "Relay access denied");
		return;
	}
	if (snap != NULL && access_check(c, snap->t[MAPS_ACCESS], addr)) {
		mapset_put(snap);
		c->n_refused++;
		return;
	}
	rjob *j = calloc(1, sizeof(*j));
	if (j == NULL)
		abort();
	j->w.data = j;
	j->c = c;
	j->snap = snap;
	j->st = *d->stp;
	const char *target = reversed[0] != '\0' ? reversed : addr;
	size_t tl = strlen(target); /* <= SMTP_PATH_MAX, checked above */
	memcpy(j->addr, target, tl < sizeof(j->addr) ? tl + 1 : 0);
	j->addr[sizeof(j->addr) - 1] = '\0';
	j->reversed = reversed[0] != '\0';
	j->relay_client = c->relay_client;
	j->postmaster = ours && !j->reversed &&
			strncasecmp(addr, "postmaster@", 11) == 0;
	note_add(j->note, sizeof(j->note), "rcpt", addr);
	if (p->orcpt[0] != '\0')
		note_add(j->note, sizeof(j->note), "orcpt", p->orcpt);
	snprintf(j->orcpt, sizeof(j->orcpt), "%s", p->orcpt);
	j->notify = p->notify;
	if (p->notify != 0) {
		static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE",
						     "DELAY" };
		char nv[40] = "";
		for (unsigned b = 0; b < 4; b++)
			if (p->notify & (1u << b)) {
				size_t l = strlen(nv);
				snprintf(nv + l, sizeof(nv) - l, "%s%s", l > 0 ? "," : "",
					 names[b]);
			}
		note_add(j->note, sizeof(j->note), "notify", nv);
	}
	c->refs++;
	d->inflight++;
	if (uv_queue_work(d->loop, &j->w, rcpt_work, rcpt_after) != 0)
		abort(); /* cannot fail with a work callback */
}

static void cb_begin(void *arg)
{
	sconn_smtp *c = arg;
	c->data_len = 0;
	c->in_data = true;
}

static void cb_chunk(void *arg, const uint8_t *data, size_t len)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	if (len > d->size_max - c->data_len || c->over_memory)
		return; /* the reader reports the size at the end */
	if (c->data_len + len > c->data_cap) {
		size_t cap = c->data_cap == 0 ? 16384 : c->data_cap;
		while (cap < c->data_len + len)
			cap *= 2;
		if (d->mem_used + (cap - c->data_cap) > d->mem_limit) {
			c->over_memory = true; /* 452 4.3.1 at the end */
			return;
		}
		uint8_t *p = realloc(c->data, cap);
		if (p == NULL)
			abort();
		d->mem_used += cap - c->data_cap;
		c->data = p;
		c->data_cap = cap;
	}
	memcpy(c->data + c->data_len, data, len);
	c->data_len += len;
}

static void store_done(void *arg, int result, bool duplicate)
{
	msg *m = arg;
	smtpd *d = m->c->d;
	(void)duplicate;
	m->result = result;
	pthread_mutex_lock(&d->done_lock);
	m->next = d->done_head;
	d->done_head = m;
	/* under the lock: once the loop has taken m, d may go away */
	uv_async_send(&d->done_async);
	pthread_mutex_unlock(&d->done_lock);
}

/* The From field's domain (lower case) into out, if the message has
 * exactly one From with one address; and whether it already carries a
 * DKIM signature. */
static bool from_domain(const uint8_t *m, size_t len, char *out, size_t cap,
			bool *signed_r)
{
	mail_header_iter it;
	mail_field f;
	char v[1000];
	unsigned froms = 0;
	*signed_r = false;
	out[0] = '\0';
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(m, &f, "DKIM-Signature"))
			*signed_r = true;
		if (!mail_field_is(m, &f, "From") || ++froms > 1)
			continue;
		size_t n = mail_field_unfold(m, &f, v, sizeof(v));
		if (n >= sizeof(v) || strlen(v) != n)
			continue;
		char *lt = strrchr(v, '<'), *a = lt != NULL ? lt + 1 : v;
		char *at = strrchr(a, '@');
		if (at == NULL)
			continue;
		size_t dl = strcspn(at + 1, "> \t,;");
		if (dl == 0 || dl >= cap)
			continue;
		for (size_t i = 0; i < dl; i++) {
			char ch = at[1 + i];
			out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
		}
		out[dl] = '\0';
	}
	if (froms != 1)
		out[0] = '\0';
	return out[0] != '\0';
}

/* Precedence: bulk/list/junk -> the bulk lane; Priority: urgent -> the
 * critical lane (RFC 2156); otherwise normal. */
static unsigned lane_of(const uint8_t *m, size_t len)
{
	mail_header_iter it;
	mail_field f;
	char v[64];
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1) {
		if (mail_field_is(m, &f, "Precedence")) {
			mail_field_unfold(m, &f, v, sizeof(v));
			if (strcasecmp(v, "bulk") == 0 || strcasecmp(v, "list") == 0 ||
			    strcasecmp(v, "junk") == 0)
				return MAILQ_BULK;
		} else if (mail_field_is(m, &f, "Priority")) {
			mail_field_unfold(m, &f, v, sizeof(v));
			if (strcasecmp(v, "urgent") == 0)
				return MAILQ_CRITICAL;
		}
	}
	return MAILQ_NORMAL;
}

/* Worker: a forwarded message's queue copy.  The sender rewritten with
 * SRS (into m->qsender; the null sender stays null), the body ARC-sealed
 * (*body_r, *len_r then point into *buf_r, which replaces what it held).
 * Neither failing stops the message: it goes on as it is, logged. */
static void forward_part(msg *m, const char **sender_r, const uint8_t **body_r,
			 size_t *len_r, uint8_t **buf_r)
{
	smtpd *d = m->c->d;
	uint64_t now = (uint64_t)time(NULL);
	const char *srs_st = "off", *arc_st = "off", *why = NULL;
	char q[LOG_QUOTE_MAX];
	if (d->srs_on && m->from[0] != '\0') {
		srs_config sc;
		srs_setup(d, &sc);
		int r = srs_forward(&sc, m->from, now, m->qsender, &why);
		sodium_memzero(sc.key, sizeof(sc.key));
		if (r == 0) {
			*sender_r = m->qsender;
			srs_st = "rewritten";
		} else {
			log_msg(LOG_WARN, "msg=\"smtp: SRS rewriting failed; forwarded "
				"with the original sender\" error=\"%s\"", why);
			srs_st = "failed";
		}
	} else if (d->srs_on) {
		srs_st = "null-sender";
	}
	if (!d->arc_seal_on) {
		/* arc_st "off" */
	} else if (m->aar == NULL) {
		arc_st = "unchecked"; /* a relay client's mail, no checks ran */
	} else if (m->cv == ARC_CV_TEMPERROR) {
		/* we cannot vouch for a chain we could not validate */
		arc_st = "temperror";
	} else {
		char *fields = NULL;
		int r = dkimkeys_arc_seal(d->dkim, d->arc_domain, *body_r, *len_r,
					  m->aar, m->cv, now, &fields, &why);
		if (r == 1) {
			size_t fl = strlen(fields);
			uint8_t *nb = malloc(fl + *len_r);
			if (nb == NULL)
				abort();
			memcpy(nb, fields, fl);
			memcpy(nb + fl, *body_r, *len_r);
			free(fields);
			if (*buf_r != NULL) {
				sodium_memzero(*buf_r, *len_r);
				free(*buf_r);
			}
			*buf_r = nb;
			*body_r = nb;
			*len_r += fl;
			arc_st = "sealed";
		} else {
			log_msg(LOG_ERR, "msg=\"smtp: ARC sealing failed; forwarded "
				"unsealed\" error=\"%s\"", r < 0 ? why : "no key");
			arc_st = "failed";
		}
	}
	log_msg(LOG_INFO, "msg=\"smtp: forwarding\" session=%llu srs=%s "
		"sender=%s arc=%s cv=%s", (unsigned long long)m->c->id, srs_st,
		log_quote(*sender_r, strlen(*sender_r), q), arc_st,
		m->aar != NULL ? arc_cv_name(m->cv) : "unchecked");
}

/* Worker: the mail queue part of a message (remote recipients), signed
 * with DKIM when a relay client sent it unsigned, SRS-rewritten and
 * ARC-sealed when it is forwarded (forward_part).  *q points into m and
 * the returned buffers (*rc_r, *signed_r: the caller frees). */
static void queue_part(msg *m, mailq_msg *q, mailq_rcpt **rc_r,
		       uint8_t **signed_r)
{
	smtpd *d = m->c->d;
	const uint8_t *body = m->body;
	size_t len = m->len;
	*signed_r = NULL;
	char dom[256];
	bool has_sig;
	if (m->sign && from_domain(m->body, m->len, dom, sizeof(dom), &has_sig) &&
	    !has_sig) {
		size_t sl;
		const char *why = NULL;
		int r = dkimkeys_sign(d->dkim, dom, m->body, m->len,
				      (uint64_t)time(NULL), signed_r, &sl, &why);
		if (r == 1) {
			body = *signed_r;
			len = sl;
			m->dkim_signed = true;
		} else if (r < 0) {
			log_msg(LOG_ERR, "msg=\"smtp: DKIM signing failed; sent "
				"unsigned\" error=\"%s\"", why);
		}
	}
	const char *sender = m->from;
	bool fwd = false;
	for (size_t i = 0; i < m->n_remote; i++)
		fwd = fwd || m->remote[i].forwarded;
	if (fwd)
		forward_part(m, &sender, &body, &len, signed_r);
	mailq_rcpt *rc = calloc(m->n_remote, sizeof(*rc));
	if (rc == NULL)
		abort();
	for (size_t i = 0; i < m->n_remote; i++)
		rc[i] = (mailq_rcpt){
			.addr = m->remote[i].addr,
			.orcpt = m->remote[i].orcpt[0] != '\0' ? m->remote[i].orcpt
								 : NULL,
			.notify = m->remote[i].notify,
		};
	uint64_t now = (uint64_t)time(NULL);
	int cl = lanes_for_sender(d->lanes, m->from);
	*q = (mailq_msg){
		.sender = sender, .envid = m->envid[0] != '\0' ? m->envid : NULL,
		.ret = m->ret, .rcpts = rc, .n_rcpts = m->n_remote,
		.body = body, .body_len = len,
		.lane = cl >= 0 ? (unsigned)cl : lane_of(body, len),
		.created = now, .expires = now + d->queue_lifetime,
	};
	*rc_r = rc;
}

/* Worker: seal once for every recipient, then hand it to the store; the
 * remote recipients' part goes to the mail queue in the same
 * transaction. */
static void seal_work(uv_work_t *w)
{
	msg *m = w->data;
	smtpd *d = m->c->d;
	uint8_t *env = NULL;
	size_t env_len = 0;
	amp_envelope *e = NULL;
	const char *err = NULL;
	mailq_msg q;
	mailq_rcpt *qr = NULL;
	uint8_t *qsigned = NULL;
	if (m->n_remote > 0)
		queue_part(m, &q, &qr, &qsigned);
	if (m->n == 0) { /* the queue alone */
		if (store_mailq_put(*d->stp, &q, store_done, m) != 0)
			store_done(m, -1, false);
		free(qr);
		if (qsigned != NULL) {
			sodium_memzero(qsigned, q.body_len);
			free(qsigned);
		}
		return;
	}
	amp_seal_params sp = { .content_type = "message/rfc822" };
	if (amp_seal(d->actx, *d->nodep, m->rcpts, m->n, &sp, m->body, m->len, &env,
		     &env_len, &err) != AMP_OK ||
	    amp_envelope_decode(env, env_len, &e, &err) != AMP_OK) {
		log_msg(LOG_ERR, "msg=\"smtp: cannot seal\" error=\"%s\"", err);
		amp_free(env);
		store_done(m, -1, false);
		goto out;
	}
	amp_envelope_info info;
	amp_envelope_get_info(e, &info);
	sodium_bin2hex(m->idhex, sizeof(m->idhex), info.envelope_id, 16);
	const char **local = calloc(m->n, sizeof(*local));
	if (local == NULL)
		abort();
	for (size_t i = 0; i < m->n; i++)
		local[i] = m->rcpts[i].did;
	store_delivery sd = {
		.sender = (*d->nodep)->pub.did, .envelope_id = info.envelope_id,
		.env = env, .env_len = env_len, .received = (uint64_t)time(NULL),
		.local = local, .local_note = (const char *const *)m->notes,
		.n_local = m->n, .outbound = m->n_remote > 0 ? &q : NULL,
	};
	if (store_deliver(*d->stp, &sd, store_done, m) != 0)
		store_done(m, -1, false);
	free(local);
	amp_envelope_free(&e);
	amp_free(env);
out:
	free(qr);
	if (qsigned != NULL) {
		sodium_memzero(qsigned, q.body_len);
		free(qsigned);
	}
}

static void msg_free(msg *m)
{
	m->d->mem_used -= m->len;
	sodium_memzero(m->body, m->len);
	free(m->body);
	notes_free(m->notes, m->n);
	free(m->rcpts);
	free(m->remote);
	free(m->aar);
	free(m);
}

static void seal_after(uv_work_t *w, int status)
{
	msg *m = w->data;
	(void)status; /* the answer comes through done_async */
	m->worked = true;
	if (m->answered)
		msg_free(m);
}

static void done_async_cb(uv_async_t *a)
{
	smtpd *d = a->data;
	pthread_mutex_lock(&d->done_lock);
	msg *list = d->done_head;
	d->done_head = NULL;
	pthread_mutex_unlock(&d->done_lock);
	while (list != NULL) {
		msg *m = list;
		list = m->next;
		sconn_smtp *c = m->c;
		bool live = !c->closing && !c->shutting;
		if (m->result == 0) {
			char text[96];
			if (m->n > 0)
				snprintf(text, sizeof(text), "Ok: sealed and stored as %s",
					 m->idhex);
			else
				snprintf(text, sizeof(text), "Ok: queued");
			log_msg(LOG_INFO, "msg=\"smtp: message stored\" session=%llu peer=%s "
				"envelope=%s recipients=%zu queued=%zu dkim=%s bytes=%zu",
				(unsigned long long)c->id, c->ip, m->n > 0 ? m->idhex : "none",
				m->n, m->n_remote, m->dkim_signed ? "signed" : "no", m->len);
			if (m->n_remote > 0 && d->out_wake != NULL)
				d->out_wake(d->out_arg);
			for (size_t i = 0; d->notify != NULL && i < m->n; i++)
				d->notify(d->notify_arg, m->rcpts[i].did);
			c->n_stored++;
			if (live)
				smtp_session_reply(c->s, 250, "2.0.0", text);
		} else {
			log_msg(LOG_ERR, "msg=\"smtp: message not stored\" session=%llu "
				"peer=%s recipients=%zu bytes=%zu reason=%s",
				(unsigned long long)c->id, c->ip, m->n, m->len,
				m->result == STORE_E_FULL ? "disk-full" : "store-error");
			if (live && m->result == STORE_E_FULL)
				smtp_session_reply(c->s, 452, "4.3.1",
						   "Insufficient system storage, try again later");
			else if (live)
				smtp_session_reply(c->s, 451, "4.3.0",
						   "Could not store the message, try again later");
		}
		if (live) {
			flush(c);
			resume_input(c);
		}
		d->inflight--;
		m->answered = true;
		if (m->worked)
			msg_free(m);
		conn_unref(c);
	}
}

/* ------------------------------------------------------ end of the message */

typedef struct range {
	size_t off, len;
} range;

/* The authserv-id of an Authentication-Results value (RFC 8601 §2.2):
 * its first token. */
static bool ar_names_us(const uint8_t *m, const mail_field *f, const char *host)
{
	char v[600];
	mail_field_unfold(m, f, v, sizeof(v));
	size_t n = strcspn(v, " \t;(");
	return n == strlen(host) && strncasecmp(v, host, n) == 0;
}

/* Header checks (S12, S17, S20).  0 and the fields to drop in *drop_r
 * (caller frees), or an SMTP code with its reply. */
static unsigned header_check(const smtpd *d, const uint8_t *m, size_t len,
			     range **drop_r, size_t *n_drop_r, const char **enh_r,
			     const char **text_r)
{
	mail_header_iter it;
	mail_field f;
	unsigned fields = 0, hops = 0;
	range *drop = NULL;
	size_t n_drop = 0;
	mail_header_iter_init(&it, m, len);
	while (mail_header_next(&it, &f) == 1) {
		if (++fields > d->hdr_count_limit ||
		    f.off + f.len > d->hdr_size_limit) {
			free(drop);
			*enh_r = "5.3.4";
			*text_r = "Message header too large";
			return 552;
		}
		if (mail_field_is(m, &f, "Received") && ++hops > d->hop_limit) {
			free(drop);
			*enh_r = "5.4.6";
			*text_r = "Too many hops (mail loop?)";
			return 554;
		}
		if (mail_field_is(m, &f, "Authentication-Results") &&
		    ar_names_us(m, &f, d->hostname)) {
			range *nd = realloc(drop, (n_drop + 1) * sizeof(*nd));
			if (nd == NULL)
				abort();
			drop = nd;
			drop[n_drop++] = (range){ f.off, f.len };
		}
	}
	*drop_r = drop;
	*n_drop_r = n_drop;
	return 0;
}

static const char *protocol_name(const sconn_smtp *c)
{
	static const char *const names[] = { "SMTP", "ESMTP", "SMTPS", "ESMTPS",
					     "UTF8SMTP", "UTF8SMTP", "UTF8SMTPS",
					     "UTF8SMTPS" };
	return names[(c->esmtp ? 1 : 0) + (c->tls != NULL ? 2 : 0) +
		     (c->utf8 ? 4 : 0)];
}

/* A DKIM signature of `domain` (any case) verified. */
static bool dkim_pass_for(const mailauth_result *r, const char *domain)
{
	for (size_t i = 0; i < r->n_dkim; i++)
		if (r->dkim[i].status == DKIM_PASS && !r->dkim[i].partial &&
		    strcasecmp(r->dkim[i].d, domain) == 0)
			return true;
	return false;
}

/* An AMP-DID-Signature that verified, made by the node of `domain`
 * (n= is did:aftersmtp:DOMAIN:..., PROTOCOL.md §12). */
static bool did_pass_for(const mailauth_result *r, const char *domain)
{
	static const char pfx[] = "did:aftersmtp:";
	if (!r->did_checked || r->did != DIDSIG_PASS ||
	    strncmp(r->did_node, pfx, sizeof(pfx) - 1) != 0)
		return false;
	const char *dom = r->did_node + sizeof(pfx) - 1;
	const char *end = strchr(dom, ':');
	return end != NULL && (size_t)(end - dom) == strlen(domain) &&
	       strncasecmp(dom, domain, strlen(domain)) == 0;
}

/* An intact ARC chain whose last seal is by a trusted sealer: the
 * mailing-list case, where DMARC fails only because the list changed the
 * message (RFC 8617 §7.2). */
static const char *trusted_sealer(const smtpd *d, const mailauth_result *r)
{
	if (!r->arc_checked || r->arc != ARC_CV_PASS)
		return NULL;
	for (size_t i = 0; i < d->n_sealers; i++)
		if (strcasecmp(d->sealers[i], r->arc_sealer) == 0)
			return d->sealers[i];
	return NULL;
}

/* The policy over the checks' results: 0 (accept; *junk_r says whether
 * to the Junk folder), or an SMTP code with its reply in text. */
static unsigned auth_policy(const smtpd *d, const mailauth_result *r,
			    bool *junk_r, const char **enh_r, char *text,
			    size_t size)
{
	*junk_r = false;
	if (r->dmarc_checked && r->dmarc.result == DMARC_FAIL &&
	    d->dmarc_mode != DMARC_MODE_REPORT && trusted_sealer(d, r) == NULL) {
		dmarc_policy disp = r->dmarc.disposition;
		if (disp == DMARC_POLICY_REJECT &&
		    d->dmarc_mode == DMARC_MODE_QUARANTINE)
			disp = DMARC_POLICY_QUARANTINE;
		if (disp == DMARC_POLICY_REJECT) {
			*enh_r = "5.7.1";
			snprintf(text, size, "Message refused: it fails DMARC "
				 "and the policy of %s is to reject such mail (%s)",
				 r->from.domain[0] != '\0' ? r->from.domain
							   : "its From domain",
				 r->dmarc.reason);
			return 550;
		}
		*junk_r = disp == DMARC_POLICY_QUARANTINE;
	}
	if (d->spf_reject && r->spf_checked && r->spf == SPF_RESULT_FAIL) {
		*enh_r = "5.7.23";
		snprintf(text, size, "Message refused: SPF of %s does not allow "
			 "this host to send its mail", r->spf_domain);
		return 550;
	}
	if (d->local_from_auth && r->from.domain[0] != '\0' &&
	    is_local(d, r->from.domain) && !dkim_pass_for(r, r->from.domain) &&
	    !did_pass_for(r, r->from.domain)) {
		*enh_r = "5.7.1";
		snprintf(text, size, "Message refused: mail From %s must carry "
			 "a valid DKIM signature or AMP-DID-Signature of %s",
			 r->from.domain, r->from.domain);
		return 550;
	}
	return 0;
}

/* What the ARC seal of a forwarded copy needs from the checks: the cv
 * and our Authentication-Results value unfolded (arc_seal's payload:
 * "authserv-id; method=result ...", tabs as spaces, no line ends). */
static void keep_aar(msg *m, const mailauth_result *r)
{
	static const char name[] = "Authentication-Results:";
	const char *v = r->authres;
	size_t n = r->authres_len;
	if (n < sizeof(name) - 1 || strncasecmp(v, name, sizeof(name) - 1) != 0)
		return;
	v += sizeof(name) - 1;
	n -= sizeof(name) - 1;
	char *out = malloc(n + 1);
	if (out == NULL)
		abort();
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '\t')
			ch = ' ';
		if (ch == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = ch;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	m->aar = out;
	m->cv = r->arc;
}

/* The checks are done: refuse, or add our Authentication-Results field
 * below our Received: field and go on to seal and store. */
static void auth_done(void *arg, const mailauth_result *r)
{
	msg *m = arg;
	sconn_smtp *c = m->c;
	smtpd *d = m->d;
	char sum[300], text[600];
	const char *enh = NULL;
	bool junk;
	unsigned code = auth_policy(d, r, &junk, &enh, text, sizeof(text));
	mailauth_summary(r, sum, sizeof(sum));
	const char *sealer = r->dmarc.result == DMARC_FAIL ? trusted_sealer(d, r)
							   : NULL;
	log_msg(LOG_INFO, "msg=\"smtp: authentication\" session=%llu peer=%s "
		"results=\"%s\" action=%s%s%s", (unsigned long long)c->id, c->ip,
		sum, code != 0 ? "reject" : junk ? "junk" : "accept",
		sealer != NULL ? " arc_override=" : "",
		sealer != NULL ? sealer : "");
	if (code != 0) {
		bool live = !c->closing && !c->shutting;
		c->n_refused++;
		if (live) {
			smtp_session_reply(c->s, code, enh, text);
			flush(c);
			resume_input(c);
		}
		d->inflight--;
		msg_free(m);
		conn_unref(c);
		return;
	}
	if (r->authres_len > 0) {
		uint8_t *nb = realloc(m->body, r->authres_len + m->len + 1);
		if (nb == NULL)
			abort();
		/* right below our Received: field; both are this hop's */
		memmove(nb + m->data_off + r->authres_len, nb + m->data_off,
			m->len - m->data_off);
		memcpy(nb + m->data_off, r->authres, r->authres_len);
		m->body = nb;
		m->len += r->authres_len;
		d->mem_used += r->authres_len;
	}
	if (r->arc_checked && r->authres_len > 0)
		keep_aar(m, r);
	for (size_t i = 0; junk && i < m->n; i++) {
		static const char folder[] = " folder=Junk";
		size_t need = strlen(m->notes[i]) + sizeof(folder);
		char *nn = realloc(m->notes[i], need);
		if (nn == NULL)
			abort();
		memcpy(nn + strlen(nn), folder, sizeof(folder));
		m->notes[i] = nn;
	}
	if (uv_queue_work(d->loop, &m->work, seal_work, seal_after) != 0)
		abort(); /* cannot fail with a work callback */
}

static void cb_end(void *arg)
{
	sconn_smtp *c = arg;
	smtpd *d = c->d;
	c->in_data = false;
	range *drop = NULL;
	size_t n_drop = 0;
	const char *enh = NULL, *why = NULL;
	unsigned code = header_check(d, c->data, c->data_len, &drop, &n_drop, &enh,
				     &why);
	if (code == 0 && c->over_memory) {
		free(drop);
		code = 452;
		enh = "4.3.1";
		why = "Insufficient system storage, try again later";
	}
	if (code != 0) {
		log_msg(LOG_INFO, "msg=\"smtp: message refused\" session=%llu peer=%s "
			"code=%u reason=\"%s\"", (unsigned long long)c->id, c->ip, code, why);
		c->n_refused++;
		smtp_session_reply(c->s, code, enh, why);
		return;
	}
	if (c->discard) {
		free(drop);
		log_msg(LOG_INFO, "msg=\"smtp: message discarded by access_map\" "
			"session=%llu peer=%s bytes=%zu", (unsigned long long)c->id, c->ip,
			c->data_len);
		tx_clear(c);
		smtp_session_reply(c->s, 250, "2.0.0", "Ok: discarded");
		return;
	}
	/* Received: (RFC 5321 §4.4), then the message byte for byte, minus
	 * Authentication-Results fields that claim to be ours (RFC 8601 §5). */
	char rcv[1400], date[64], tlsinfo[120] = "";
	if (!mail_date_format(time(NULL), date, sizeof(date)))
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
	if (c->tls != NULL && c->tls_desc[0] != '\0')
		snprintf(tlsinfo, sizeof(tlsinfo), " (%s)", c->tls_desc);
	int hn = snprintf(rcv, sizeof(rcv),
			  "Received: from %s ([%s])\r\n\tby %s (AfterSMTP) with %s%s\r\n"
			  "\tfor <%s>; %s\r\n",
			  c->helo[0] != '\0' ? c->helo : "unknown", /* grammar-checked */
			  c->ip, d->hostname, protocol_name(c), tlsinfo,
			  c->n_rcpt_cmds == 1 ? c->first_rcpt : "multiple recipients",
			  date);
	if (hn < 0 || (size_t)hn >= sizeof(rcv))
		hn = 0;
	msg *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->body = malloc((size_t)hn + c->data_len + 1)) == NULL)
		abort();
	memcpy(m->body, rcv, (size_t)hn);
	size_t out = (size_t)hn, pos = 0;
	for (size_t i = 0; i <= n_drop; i++) {
		size_t end = i < n_drop ? drop[i].off : c->data_len;
		if (end > pos) /* an empty message has no data buffer */
			memcpy(m->body + out, c->data + pos, end - pos);
		out += end - pos;
		if (i < n_drop)
			pos = drop[i].off + drop[i].len;
	}
	if (n_drop > 0)
		log_msg(LOG_INFO, "msg=\"smtp: removed Authentication-Results naming "
			"us\" session=%llu peer=%s count=%zu", (unsigned long long)c->id,
			c->ip, n_drop);
	free(drop);
	m->len = out;
	m->data_off = (size_t)hn;
	m->d = d;
	d->mem_used += m->len;
	m->c = c;
	m->rcpts = c->rcpts;
	m->notes = c->notes;
	m->n = c->n_rcpts;
	m->remote = c->remote;
	m->n_remote = c->n_remote;
	c->remote = NULL;
	c->n_remote = 0;
	snprintf(m->from, sizeof(m->from), "%s", c->from);
	snprintf(m->envid, sizeof(m->envid), "%s", c->envid);
	m->ret = c->ret;
	m->sign = c->relay_client && d->dkim_relayed;
	for (size_t i = 0; c->dsn_env[0] != '\0' && i < m->n; i++) {
		size_t need = strlen(m->notes[i]) + strlen(c->dsn_env) + 1;
		char *nn = realloc(m->notes[i], need);
		if (nn == NULL)
			abort();
		memcpy(nn + strlen(nn), c->dsn_env, strlen(c->dsn_env) + 1);
		m->notes[i] = nn;
	}
	c->rcpts = NULL;
	c->notes = NULL;
	c->n_rcpts = 0;
	tx_clear(c);
	m->work.data = m;
	c->refs++;
	d->inflight++;
	/* Mail from outside is checked first (SPF, DKIM, DMARC); a relay
	 * client's is ours to sign, not to judge. */
	if (d->auth != NULL && !c->relay_client) {
		struct sockaddr_storage peer = { 0 };
		int pl = sizeof(peer);
		if (uv_tcp_getpeername(&c->h, (struct sockaddr *)&peer, &pl) != 0)
			peer.ss_family = AF_UNSPEC; /* SPF then says none */
		mailauth_input in = {
			.client = &peer, .helo = c->helo, .mail_from = m->from,
			.msg = m->body + m->data_off, .len = m->len - m->data_off,
		};
		(void)mailauth_start(d->auth, &in, auth_done, m);
		return;
	}
	if (uv_queue_work(d->loop, &m->work, seal_work, seal_after) != 0)
		abort(); /* cannot fail with a work callback */
}

static void cb_abort(void *arg)
{
	tx_clear(arg);
}

static void cb_starttls(void *arg)
{
	sconn_smtp *c = arg;
	c->starttls_req = true; /* the driver starts TLS after the 220 */
}

static const smtp_callbacks smtp_cbs = {
	.helo = cb_helo, .mail = cb_mail, .rcpt = cb_rcpt,
	.data_begin = cb_begin, .data_chunk = cb_chunk, .data_end = cb_end,
	.abort = cb_abort, .starttls = cb_starttls,
};

/* ----------------------------------------------------------------- input */

static int start_tls(sconn_smtp *c)
{
	const char *err = NULL;
	if (tls_session_new_mode(c->d->creds, true, TLS_MODE_SMTP, &c->tls, &err) != 0) {
		log_msg(LOG_ERR, "msg=\"smtp: TLS session\" error=\"%s\"", err);
		return -1;
	}
	c->handshaking = true;
	c->deadline = uv_now(c->d->loop) + c->d->tls_timeout_ms;
	arm(c);
	return 0;
}

/* Plaintext for the session.  Bytes the session cannot take now (a
 * decision is pending and its buffer is full) are held and reading stops
 * until the decision.  After STARTTLS the rest is discarded (T1). */
static void feed(sconn_smtp *c, const uint8_t *p, size_t len)
{
	size_t off = 0;
	if (c->in_data)
		c->deadline = uv_now(c->d->loop) + c->d->timeout_ms;
	while (off < len && !c->closing && !c->shutting) {
		size_t n = smtp_session_feed(c->s, p + off, len - off);
		off += n;
		if (c->starttls_req) {
			flush(c); /* the 220 in plaintext, then the handshake */
			return;   /* what followed STARTTLS is dropped */
		}
		if (n == 0) {
			if (c->held == NULL && (c->held = malloc(SMTPD_READ_MAX)) == NULL)
				abort();
			c->held_len = len - off;
			memcpy(c->held, p + off, c->held_len);
			if (c->reading) {
				uv_read_stop((uv_stream_t *)&c->h);
				c->reading = false;
			}
			break;
		}
	}
	flush(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(SMTPD_READ_MAX);
	buf->len = buf->base != NULL ? SMTPD_READ_MAX : 0;
}

/* Ciphertext from the network: the handshake, then plaintext records. */
static void tls_input(sconn_smtp *c, const uint8_t *p, size_t len)
{
	const char *err = NULL;
	char q[LOG_QUOTE_MAX];
	if (tls_feed(c->tls, p, len) != 0) {
		conn_close(c);
		return;
	}
	if (c->handshaking) {
		int r = tls_progress(c->tls, &err);
		if (r < 0 || push_tls(c) != 0) {
			log_msg(LOG_INFO, "msg=\"smtp: TLS handshake failed\" session=%llu "
				"peer=%s error=%s", (unsigned long long)c->id, c->ip,
				log_quote(err != NULL ? err : "write", strlen(err != NULL ? err : "write"), q));
			conn_close(c);
			return;
		}
		if (r == 0)
			return;
		c->handshaking = false;
		if (tls_describe(c->tls, c->tls_desc, sizeof(c->tls_desc)) != 0)
			c->tls_desc[0] = '\0';
		log_msg(LOG_INFO, "msg=\"smtp: TLS established\" session=%llu peer=%s "
			"tls=\"%s\"", (unsigned long long)c->id, c->ip, c->tls_desc);
		c->deadline = uv_now(c->d->loop) + c->d->timeout_ms;
		if (c->implicit_tls) {
			greet(c);
		} else {
			smtp_session_tls_started(c->s);
			flush(c);
		}
	}
	uint8_t buf[16384];
	long n;
	while (!c->closing && !c->shutting && c->held_len == 0 &&
	       (n = tls_read(c->tls, buf, sizeof(buf), &err)) != 0) {
		if (n < 0) {
			conn_close(c);
			return;
		}
		feed(c, buf, (size_t)n);
	}
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	sconn_smtp *c = (sconn_smtp *)st;
	if (nread < 0) {
		free(buf->base);
		if (nread == UV_EOF && (smtp_session_pending(c->s) || c->held_len > 0)) {
			/* a client that sent everything and half-closed: finish
			 * what it sent (answers included), then close */
			c->eof = true;
			uv_read_stop(st);
			c->reading = false;
			return;
		}
		if (c->in_data || smtp_session_pending(c->s))
			log_msg(LOG_INFO, "msg=\"smtp: lost connection\" session=%llu "
				"peer=%s%s", (unsigned long long)c->id, c->ip,
				c->in_data ? " during=DATA" : "");
		conn_close(c);
		return;
	}
	if (nread > 0) {
		if (c->tls != NULL)
			tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
		else
			feed(c, (const uint8_t *)buf->base, (size_t)nread);
	}
	free(buf->base);
	/* a client that sends and never reads its replies */
	if (!c->closing && c->reading &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->h) > SMTPD_WRITE_QUEUE_MAX) {
		log_msg(LOG_INFO, "msg=\"smtp: client does not read\" session=%llu "
			"peer=%s", (unsigned long long)c->id, c->ip);
		conn_close(c);
	}
}

/* Bytes held back while the TLS session had plaintext the SMTP session
 * could not take yet stay inside GnuTLS: tls_input reads them again. */
static void resume_input(sconn_smtp *c)
{
	if (c->closing || c->shutting || c->delayed || !c->greeted ||
	    smtp_session_pending(c->s))
		return;
	if (c->held_len > 0) {
		uint8_t *tmp = c->held;
		size_t n = c->held_len, off = 0;
		c->held = NULL;
		c->held_len = 0;
		feed(c, tmp + off, n);
		free(tmp);
		if (c->held_len > 0 || c->closing || c->shutting)
			return;
	}
	if (c->tls != NULL && !c->handshaking)
		tls_input(c, NULL, 0);
	if (c->eof) {
		if (!c->closing && !c->shutting && c->held_len == 0 &&
		    !smtp_session_pending(c->s))
			finish(c);
		return;
	}
	if (!c->reading && !c->closing && !c->shutting && c->held_len == 0 &&
	    uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) == 0)
		c->reading = true;
}

/* ----------------------------------------------------------- connections */

static void maybe_free(smtpd *d);

static void conn_unref(sconn_smtp *c)
{
	if (--c->refs > 0)
		return;
	smtpd *d = c->d;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->ipe != NULL)
		c->ipe->conns--;
	log_msg(LOG_INFO, "msg=\"smtp: disconnect\" session=%llu peer=%s mail=%u "
		"rcpt=%u stored=%u refused=%u errors=%u tls=%s",
		(unsigned long long)c->id, c->ip, c->n_mail, c->n_rcpt_ok, c->n_stored,
		c->n_refused, c->s != NULL ? smtp_session_errors(c->s) : 0,
		c->tls != NULL && !c->handshaking ? "yes" : "no");
	tx_clear(c);
	smtp_session_free(&c->s);
	tls_session_free(&c->tls);
	free(c->held);
	free(c);
	d->n_conns--;
	maybe_free(d);
}

static void conn_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(sconn_smtp *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->h, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void refuse(sconn_smtp *c, const char *line)
{
	(void)write_raw(c, (const uint8_t *)line, strlen(line));
	log_msg(LOG_INFO, "msg=\"smtp: connection refused\" peer=%s reply=\"%.*s\"",
		c->ip, (int)strcspn(line, "\r"), line);
	finish(c);
}

/* Bytes already waiting before we have said anything (S5: a client
 * that does not wait for the 220).  One MSG_PEEK; with smtp_greet_delay
 * the session itself also catches the ones that talk during the wait. */
static bool early_talker(sconn_smtp *c)
{
	uv_os_fd_t fd;
	char b;
	if (uv_fileno((uv_handle_t *)&c->h, &fd) != 0)
		return false;
	return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

static void on_connection(uv_stream_t *ls, int status)
{
	slisten *l = ls->data;
	smtpd *d = l->d;
	if (status != 0) {
		/* EMFILE and the like: libuv has closed the pending connection
		 * (its reserve-descriptor trick); nothing to do but log. */
		log_msg(LOG_WARN, "msg=\"smtp: accept failed\" error=\"%s\"",
			uv_strerror(status));
		return;
	}
	if (d->stopping)
		return;
	sconn_smtp *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort(); /* STYLE: out of memory aborts */
	c->d = d;
	c->id = ++d->next_id;
	c->refs = 2; /* the two handles */
	c->implicit_tls = l->implicit_tls;
	uv_tcp_init(d->loop, &c->h);
	uv_timer_init(d->loop, &c->timer);
	c->h.data = c->timer.data = c;
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	d->n_conns++;
	if (uv_accept(ls, (uv_stream_t *)&c->h) != 0) {
		conn_close(c);
		return;
	}
	struct sockaddr_storage peer;
	int pl = sizeof(peer);
	memset(&peer, 0, sizeof(peer));
	if (uv_tcp_getpeername(&c->h, (struct sockaddr *)&peer, &pl) != 0) {
		conn_close(c);
		return;
	}
	if (peer.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr))
		inet_ntop(AF_INET, ((struct sockaddr_in6 *)&peer)->sin6_addr.s6_addr + 12,
			  c->ip, sizeof(c->ip));
	else if (peer.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, c->ip,
			  sizeof(c->ip));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, c->ip,
			  sizeof(c->ip));
	uint64_t now = uv_now(d->loop);
	uint8_t key[16];
	ip_key(&peer, key);
	c->ipe = ip_get(d, key, now);
	if (c->ipe != NULL)
		c->ipe->conns++;
	c->deadline = now + d->timeout_ms;
	c->session_end = now + d->session_ms;
	c->greet_at = now + d->greet_delay_ms;
	smtp_settings set = {
		.hostname = d->hostname, .line_max = 1000, .max_rcpt = d->rcpt_limit,
		.soft_errors = d->soft_errors, .hard_errors = d->hard_errors,
		.error_delay_ms = d->error_sleep_ms,
		.offer = { .size_max = d->size_max, .chunking = true, .smtputf8 = true,
			   .dsn = true, .eightbit = true },
		.starttls = d->starttls && d->creds != NULL && !c->implicit_tls,
		.tls_active = c->implicit_tls, .bare_policy = d->bare_policy,
	};
	if (smtp_session_new(&set, &smtp_cbs, c, &c->s) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->h, 1);
	log_msg(LOG_INFO, "msg=\"smtp: connect\" session=%llu peer=%s tls=%s",
		(unsigned long long)c->id, c->ip, c->implicit_tls ? "implicit" : "no");
	if (d->n_conns > d->max_conns) {
		refuse(c, "421 4.3.2 Too many connections, try later\r\n");
		return;
	}
	if (c->ipe == NULL) {
		refuse(c, "421 4.3.2 Too many clients, try later\r\n");
		return;
	}
	if (c->ipe != NULL && c->ipe->conns > d->max_per_ip) {
		refuse(c, "421 4.7.0 Too many connections from your address\r\n");
		return;
	}
	if (c->ipe != NULL &&
	    !bucket_take(&c->ipe->conn_tok, &c->ipe->conn_t, d->conn_rate, now)) {
		refuse(c, "421 4.7.0 Too many connections from your address, try "
			  "later\r\n");
		return;
	}
	if (c->implicit_tls) {
		if (start_tls(c) != 0) {
			conn_close(c);
			return;
		}
		c->greet_at = now; /* after the handshake */
	} else if (early_talker(c)) {
		c->greeted = true;
		refuse(c, "554 5.5.0 Talking before the greeting\r\n");
		return;
	} else if (d->greet_delay_ms == 0) {
		greet(c);
	} else {
		arm(c);
	}
	if (uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) == 0)
		c->reading = true;
}

/* ------------------------------------------------------------- lifecycle */

static void handle_closed(uv_handle_t *h)
{
	smtpd *d = h->data;
	d->handles--;
	maybe_free(d);
}

static void listener_closed(uv_handle_t *h)
{
	slisten *l = h->data;
	smtpd *d = l->d;
	free(l);
	d->handles--;
	maybe_free(d);
}

/* After smtpd_free: once the last connection (and its jobs) is gone,
 * close the completion and sweep handles; free when every handle has
 * closed. */
static void maybe_free(smtpd *d)
{
	if (!d->freeing || d->conns != NULL || d->inflight > 0)
		return;
	if (!d->closing_handles) {
		d->closing_handles = true;
		uv_close((uv_handle_t *)&d->done_async, handle_closed);
		uv_close((uv_handle_t *)&d->sweep, handle_closed);
		return;
	}
	if (d->handles > 0)
		return;
	for (size_t i = 0; d->domains != NULL && i < d->n_domains; i++)
		free(d->domains[i]);
	free(d->domains);
	for (size_t i = 0; d->sealers != NULL && i < d->n_sealers; i++)
		free(d->sealers[i]);
	free(d->sealers);
	for (size_t b = 0; b < SMTPD_IP_BUCKETS; b++)
		while (d->ips[b] != NULL) {
			ipent *e = d->ips[b];
			d->ips[b] = e->next;
			free(e);
		}
	tls_creds_free(&d->creds);
	amp_ctx_destroy(&d->actx);
	pthread_mutex_destroy(&d->done_lock);
	free(d);
}

static int listen_one(smtpd *d, const char *addr, uint16_t port, bool implicit,
		      const char **error_r)
{
	struct sockaddr_storage sa;
	if (d->n_ls >= SMTPD_LISTEN_MAX) {
		*error_r = "too many SMTP listen addresses";
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0 &&
	    uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
		*error_r = "smtp_listen / smtps_listen: not a numeric IP address";
		return -1;
	}
	slisten *l = calloc(1, sizeof(*l));
	if (l == NULL)
		abort();
	l->d = d;
	l->implicit_tls = implicit;
	uv_tcp_init(d->loop, &l->h);
	l->h.data = l;
	d->ls[d->n_ls++] = l;
	d->handles++;
	int r = uv_tcp_bind(&l->h, (struct sockaddr *)&sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->h, 511, on_connection);
	if (r != 0) {
		*error_r = uv_strerror(r);
		return -1;
	}
	struct sockaddr_storage bound;
	int blen = sizeof(bound);
	uint16_t p = 0;
	if (uv_tcp_getsockname(&l->h, (struct sockaddr *)&bound, &blen) == 0)
		p = ntohs(bound.ss_family == AF_INET
				  ? ((struct sockaddr_in *)&bound)->sin_port
				  : ((struct sockaddr_in6 *)&bound)->sin6_port);
	log_msg(LOG_NOTICE, "msg=\"listening\" transport=%s addr=%s port=%u",
		implicit ? "smtps" : "smtp", addr, p);
	return 0;
}

static int load_creds(smtpd *d, const smtpd_params *p, const cfg *conf,
		      const char **error_r)
{
	const char *cf = cfg_str(conf, "smtp_tls_cert_file");
	const char *kf = cfg_str(conf, "smtp_tls_key_file");
	if ((*cf == '\0') != (*kf == '\0')) {
		*error_r = "smtp_tls_cert_file and smtp_tls_key_file go together";
		return -1;
	}
	if (*cf == '\0') {
		if (p->node_cert_pem == NULL || p->node_key_pem == NULL)
			return 0; /* no TLS */
		return tls_creds_server(p->node_cert_pem, p->node_key_pem, &d->creds,
					error_r);
	}
	uint8_t *crt = NULL, *key = NULL;
	size_t cl, kl;
	if (util_read_file(cf, 1024 * 1024, &crt, &cl) != 0) {
		*error_r = "cannot read smtp_tls_cert_file";
		return -1;
	}
	if (util_read_file(kf, 1024 * 1024, &key, &kl) != 0) {
		free(crt);
		*error_r = "cannot read smtp_tls_key_file";
		return -1;
	}
	int r = tls_creds_server((const char *)crt, (const char *)key, &d->creds,
				 error_r);
	sodium_memzero(key, kl);
	free(key);
	free(crt);
	return r;
}

/* The authentication checks of inbound mail and their policy. */
static int auth_setup(smtpd *d, const smtpd_params *p, const cfg *conf,
		      const char **error_r)
{
	static char err[300];
	const char *mode = cfg_str(conf, "dmarc_policy");
	const char *lf = cfg_str(conf, "local_from_policy");
	if (strcmp(mode, "enforce") == 0) {
		d->dmarc_mode = DMARC_MODE_ENFORCE;
	} else if (strcmp(mode, "quarantine") == 0) {
		d->dmarc_mode = DMARC_MODE_QUARANTINE;
	} else if (strcmp(mode, "report") == 0) {
		d->dmarc_mode = DMARC_MODE_REPORT;
	} else {
		*error_r = "dmarc_policy: enforce, quarantine or report";
		return -1;
	}
	if (strcmp(lf, "none") != 0 && strcmp(lf, "require-auth") != 0) {
		*error_r = "local_from_policy: none or require-auth";
		return -1;
	}
	d->local_from_auth = strcmp(lf, "require-auth") == 0;
	d->spf_reject = cfg_bool(conf, "spf_fail_reject");
	const char *fwd = cfg_str(conf, "dns_forwarder");
	const char *ta = cfg_str(conf, "dns_trust_anchor");
	mailauth_settings ms = {
		.authserv_id = d->hostname,
		.dns = {
			.forwarder = *fwd != '\0' ? fwd : NULL,
			.trust_anchor = *ta != '\0' ? ta : NULL,
			.timeout_ms = (unsigned)cfg_int(conf, "dns_timeout") * 1000u,
		},
		.spf = cfg_bool(conf, "spf_verify"),
		.dkim = cfg_bool(conf, "dkim_verify"),
		.dmarc = cfg_bool(conf, "dmarc_verify"),
		.arc = cfg_bool(conf, "arc_verify"),
		.did = cfg_bool(conf, "didsig_verify"),
		.did_resolve = p->did_resolve,
		.did_arg = p->did_arg,
		.timeout_ms = (unsigned)cfg_int(conf, "auth_timeout") * 1000u,
	};
	d->n_sealers = cfg_list_len(conf, "arc_trusted_sealers");
	d->sealers = calloc(d->n_sealers + 1, sizeof(char *));
	if (d->sealers == NULL)
		abort();
	for (size_t i = 0; i < d->n_sealers; i++) {
		d->sealers[i] = strdup(cfg_list_item(conf, "arc_trusted_sealers", i));
		if (d->sealers[i] == NULL)
			abort();
		for (char *q = d->sealers[i]; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
	}
	if (d->n_sealers > 0 && !ms.arc) {
		*error_r = "arc_trusted_sealers needs arc_verify";
		return -1;
	}
	if (!ms.spf && !ms.dkim && !ms.dmarc && !ms.arc && !ms.did)
		return 0;
	if (d->local_from_auth && !ms.dkim) {
		*error_r = "local_from_policy = require-auth needs dkim_verify";
		return -1;
	}
	if (mailauth_new(d->loop, &ms, &d->auth, err, sizeof(err)) != 0) {
		*error_r = err;
		return -1;
	}
	return 0;
}

/* Forwarded mail (issue 7): SRS and the ARC seal. */
static int fwd_setup(smtpd *d, const cfg *conf, const char **error_r)
{
	const char *sd = cfg_str(conf, "srs_domain");
	const char *ad = cfg_str(conf, "arc_seal_domain");
	d->srs_on = cfg_bool(conf, "srs");
	snprintf(d->srs_domain, sizeof(d->srs_domain), "%s",
		 *sd != '\0' ? sd : d->domains[0]);
	for (char *q = d->srs_domain; *q != '\0'; q++)
		*q = (char)tolower((unsigned char)*q);
	d->arc_seal_on = cfg_bool(conf, "arc_seal");
	if (!d->arc_seal_on)
		return 0;
	if (*ad != '\0') {
		if (!dkimkeys_has(d->dkim, ad)) {
			*error_r = "arc_seal_domain has no dkim_keys entry";
			return -1;
		}
		snprintf(d->arc_domain, sizeof(d->arc_domain), "%s", ad);
	} else {
		for (size_t i = 0; i < d->n_domains && d->arc_domain[0] == '\0'; i++)
			if (dkimkeys_has(d->dkim, d->domains[i]))
				snprintf(d->arc_domain, sizeof(d->arc_domain), "%s",
					 d->domains[i]);
	}
	if (d->arc_domain[0] == '\0') {
		log_msg(LOG_NOTICE, "msg=\"smtp: forwarded mail is not ARC-sealed: "
			"none of domains has a dkim_keys entry (arc_seal_domain)\"");
		d->arc_seal_on = false;
	} else if (!cfg_bool(conf, "arc_verify")) {
		log_msg(LOG_NOTICE, "msg=\"smtp: forwarded mail is not ARC-sealed: "
			"a seal states the chain's validation, and arc_verify is "
			"off\"");
		d->arc_seal_on = false;
	}
	return 0;
}

int smtpd_start(const smtpd_params *p, const cfg *conf, smtpd **d_r,
		const char **error_r)
{
	*d_r = NULL;
	size_t nl = cfg_list_len(conf, "smtp_listen");
	size_t ns = cfg_list_len(conf, "smtps_listen");
	if (nl + ns == 0)
		return 0;
	smtpd *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	d->loop = p->loop;
	d->stp = p->st;
	d->nodep = p->node;
	d->mapsp = p->maps;
	d->notify = p->notify;
	d->notify_arg = p->notify_arg;
	d->out_wake = p->out_wake;
	d->out_arg = p->out_arg;
	d->dkim = p->dkim;
	d->lanes = p->lanes;
	d->dkim_relayed = cfg_bool(conf, "dkim_sign_relayed");
	d->queue_lifetime = (uint64_t)cfg_int(conf, "maximal_queue_lifetime");
	d->size_max = (uint64_t)cfg_int(conf, "smtp_message_size_limit");
	d->max_conns = (unsigned)cfg_int(conf, "smtp_max_connections");
	d->max_per_ip = (unsigned)cfg_int(conf, "smtp_max_connections_per_ip");
	d->conn_rate = (unsigned)cfg_int(conf, "smtp_connection_rate_per_ip");
	d->msg_rate = (unsigned)cfg_int(conf, "smtp_message_rate_per_ip");
	d->rcpt_rate = (unsigned)cfg_int(conf, "smtp_recipient_rate_per_ip");
	d->rcpt_limit = (unsigned)cfg_int(conf, "smtp_recipient_limit");
	d->timeout_ms = (uint64_t)cfg_int(conf, "smtp_timeout") * 1000u;
	d->session_ms = (uint64_t)cfg_int(conf, "smtp_session_max") * 1000u;
	d->tls_timeout_ms = (uint64_t)cfg_int(conf, "smtp_tls_timeout") * 1000u;
	d->greet_delay_ms = (uint64_t)cfg_int(conf, "smtp_greet_delay") * 1000u;
	d->mem_limit = (uint64_t)cfg_int(conf, "smtp_memory_limit");
	randombytes_buf(d->ip_hkey, sizeof(d->ip_hkey));
	if (amp_ctx_create(1024, &d->actx) != AMP_OK)
		abort();
	d->soft_errors = (unsigned)cfg_int(conf, "smtp_soft_error_limit");
	d->hard_errors = (unsigned)cfg_int(conf, "smtp_hard_error_limit");
	d->error_sleep_ms = (unsigned)cfg_int(conf, "smtp_error_sleep") * 1000u;
	d->hop_limit = (unsigned)cfg_int(conf, "smtp_hopcount_limit");
	d->hdr_count_limit = (unsigned)cfg_int(conf, "smtp_header_count_limit");
	d->hdr_size_limit = (uint64_t)cfg_int(conf, "smtp_header_size_limit");
	d->starttls = cfg_bool(conf, "smtp_starttls");
	const char *bare = cfg_str(conf, "smtp_bare_newline");
	snprintf(d->postmaster, sizeof(d->postmaster), "%s",
		 cfg_str(conf, "smtp_postmaster"));
	if (d->postmaster[0] == '\0')
		log_msg(LOG_WARN, "msg=\"smtp: no smtp_postmaster: mail to postmaster@ "
			"is refused unless virtual_alias_maps routes it (RFC 5321 "
			"asks every domain to accept it)\"");
	pthread_mutex_init(&d->done_lock, NULL);
	uv_async_init(d->loop, &d->done_async, done_async_cb);
	d->done_async.data = d;
	uv_timer_init(d->loop, &d->sweep);
	d->sweep.data = d;
	d->handles = 2;
	if (strcmp(bare, "reject") == 0) {
		d->bare_policy = SMTP_DATA_REJECT_BARE;
	} else if (strcmp(bare, "normalize") == 0) {
		d->bare_policy = SMTP_DATA_NORMALISE;
	} else {
		*error_r = "smtp_bare_newline: reject or normalize";
		smtpd_free(&d);
		return -1;
	}
	const char *hn = cfg_str(conf, "smtp_hostname");
	snprintf(d->hostname, sizeof(d->hostname), "%s",
		 *hn != '\0' ? hn : cfg_list_item(conf, "domains", 0));
	d->n_domains = cfg_list_len(conf, "domains");
	d->domains = calloc(d->n_domains + 1, sizeof(char *));
	if (d->domains == NULL)
		abort();
	for (size_t i = 0; i < d->n_domains; i++)
		if ((d->domains[i] = strdup(cfg_list_item(conf, "domains", i))) == NULL)
			abort();
	if (auth_setup(d, p, conf, error_r) != 0 || fwd_setup(d, conf, error_r) != 0) {
		smtpd_free(&d);
		return -1;
	}
	if (load_creds(d, p, conf, error_r) != 0 ||
	    (ns > 0 && d->creds == NULL && (*error_r = "smtps_listen needs TLS "
					    "credentials") != NULL)) {
		smtpd_free(&d);
		return -1;
	}
	uint16_t port = (uint16_t)cfg_int(conf, "smtp_port");
	uint16_t sport = (uint16_t)cfg_int(conf, "smtps_port");
	for (size_t i = 0; i < nl + ns; i++) {
		bool implicit = i >= nl;
		const char *addr = implicit ? cfg_list_item(conf, "smtps_listen", i - nl)
					    : cfg_list_item(conf, "smtp_listen", i);
		if (listen_one(d, addr, implicit ? sport : port, implicit, error_r) != 0) {
			smtpd_free(&d);
			return -1;
		}
	}
	uv_timer_start(&d->sweep, sweep_cb, SMTPD_SWEEP_MS, SMTPD_SWEEP_MS);
	*d_r = d;
	return 0;
}

static uint16_t port_of(const smtpd *d, bool implicit)
{
	for (size_t i = 0; d != NULL && i < d->n_ls; i++) {
		if (d->ls[i]->implicit_tls != implicit)
			continue;
		struct sockaddr_storage sa;
		int len = sizeof(sa);
		if (uv_tcp_getsockname(&d->ls[i]->h, (struct sockaddr *)&sa, &len) != 0)
			return 0;
		return ntohs(sa.ss_family == AF_INET
				     ? ((struct sockaddr_in *)&sa)->sin_port
				     : ((struct sockaddr_in6 *)&sa)->sin6_port);
	}
	return 0;
}

uint16_t smtpd_port(const smtpd *d)
{
	return port_of(d, false);
}

uint16_t smtpd_tls_port(const smtpd *d)
{
	return port_of(d, true);
}

void smtpd_stop(smtpd *d)
{
	if (d == NULL || d->stopping)
		return;
	d->stopping = true;
	for (sconn_smtp *c = d->conns; c != NULL; c = c->next)
		conn_close(c);
	for (size_t i = 0; i < d->n_ls; i++)
		uv_close((uv_handle_t *)&d->ls[i]->h, listener_closed);
	d->n_ls = 0;
	uv_timer_stop(&d->sweep);
	/* checks still running end now; their messages go on as usual */
	mailauth_stop(d->auth);
	mailauth_free(&d->auth);
}

bool smtpd_idle(const smtpd *d)
{
	return d == NULL || d->inflight == 0;
}

void smtpd_free(smtpd **dp)
{
	smtpd *d = *dp;
	if (d == NULL)
		return;
	*dp = NULL;
	smtpd_stop(d);
	d->freeing = true;
	maybe_free(d);
}
