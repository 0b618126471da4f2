/*
 * outbound.c — see outbound.h.
 *
 * Everything here runs on the loop thread except the store calls and the
 * DSN sealing, which run on libuv's thread pool (lease_work, update_work):
 * the mail queue functions of store.h are synchronous.
 *
 * Scheduling: each lane is leased on its own (at most LEASE_BATCH rows at
 * a time, never more than the free connection slots), into a per-lane
 * list of waiting rows.  A free slot goes to the lane whose credit is
 * highest among the lanes with a row that may start (its destination below
 * smtp_out_dest_concurrency); a lane earns its weight each round.  When a
 * lease finds fewer rows than it asked for, the lane sleeps until the
 * store's next due time (store_mailq_next), re-checked at least every
 * TICK_S seconds so that a clock jump is noticed, or until outbound_wake.
 *
 * One attempt (a job) works through the destination's hosts in order:
 * transport_maps ([host] means no MX lookup), MX (RFC 5321 §5.1: null MX
 * bounces, NXDOMAIN bounces, no MX falls back to the domain itself, a
 * temporary DNS error defers), the hosts' addresses (IPv6 first), TLSA
 * when the MX and address answers were DNSSEC-secure.  A host that fails
 * before the transaction (connection, greeting, EHLO, TLS) passes to the
 * next one; once a transaction has begun, its replies are final for this
 * attempt.
 */
#include "outbound.h"

#include "dns.h"
#include "dsn.h"
#include "log.h"
#include "maps.h"
#include "mtasts-fetch.h"
#include "smtp-client.h"
#include "srs.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LANES MAILQ_LANES
#define LEASE_BATCH 32u
#define TICK_S 30u
#define HOSTS_MAX 10u
#define ADDRS_MAX 6u
#define TLSA_MAX 16u
#define WRITE_HIGH (256u * 1024u)   /* bytes handed to libuv, not yet sent */
#define READ_CHUNK 65536u
#define REASON_MAX 300u
#define DSN_ORIGINAL_MAX (1024u * 1024u)
#define AUTH_MAX 64u
#define PURGE_S 600u

typedef struct settings {
	unsigned port, max_conns, dest_conc;
	uint64_t dest_gap_ms;          /* smtp_out_dest_rate: 60000 / rate */
	unsigned weight[LANES];
	uint64_t sla[LANES];
	smtpc_tls_policy tls;
	uint64_t retry_min, retry_max, lifetime, warn_after, lease, bounce_keep;
	unsigned connect_ms, command_ms, data_init_ms, data_block_ms,
		data_end_ms;
	char hostname[256];
	bool dane;                     /* a trust anchor is configured */
	bool srs;                      /* srs: DSNs to our SRS addresses are
					  sent to the sender they stand for */
	char srs_domain[SRS_DOMAIN_MAX + 1];
} settings;

typedef struct auth_entry {
	char host[256];
	unsigned port;
	char user[SMTPC_AUTH_MAX + 1], pass[SMTPC_AUTH_MAX + 1];
} auth_entry;

typedef struct waiting {
	struct waiting *next;
	mailq_item *it;
} waiting;

typedef struct dest {
	struct dest *next;
	char domain[256];
	unsigned active;
	uint64_t last_start;           /* uv_now of the last attempt started */
} dest;

typedef struct job job;

struct outbound {
	outbound_params p;
	settings set;
	dns_resolver *dns;
	mtasts_fetcher *sts;           /* NULL: mta_sts = no */
	tls_creds *creds;
	amp_ctx *ctx;
	uv_timer_t tick;
	uv_timer_t rate_timer;         /* a destination's rate gap ends */
	auth_entry *auth;
	size_t n_auth;
	char **must_tls;
	size_t n_must_tls;
	/* scheduling */
	waiting *head[LANES], *tail[LANES];
	size_t n_waiting[LANES];
	bool leasing[LANES];
	uint64_t lane_due[LANES];      /* 0: lease when a slot is free; else
					  the lane was drained: look again at
					  this unix time */
	int credit[LANES];
	dest *dests;
	job *jobs;
	unsigned active;               /* jobs running */
	unsigned pending_work;         /* thread-pool items in flight */
	bool stopping, tick_closed, idle;
	uint64_t last_purge;
	pthread_mutex_t stats_lock;
	outbound_stats stats;
};

typedef enum job_step {
	STEP_DNS,                      /* waiting for a DNS answer */
	STEP_CONNECT,
	STEP_SMTP,
	STEP_CLOSING,                  /* the TCP handle is closing */
	STEP_RECORD,                   /* the outcome is being written */
} job_step;

struct job {
	job *next;
	outbound *o;
	mailq_item *it;
	dest *dest;
	job_step step;
	/* route */
	char nexthop[256];
	unsigned port;
	bool bracket;
	const auth_entry *auth;
	bool must_tls;                 /* smtp_out_must_tls: PKIX */
	mtasts_policy *sts;            /* the domain's MTA-STS policy, or NULL */
	mtasts_fetch_req *sts_req;
	struct {
		char name[256];
	} hosts[HOSTS_MAX];
	size_t n_hosts, hi;
	bool mx_secure;
	struct sockaddr_storage addrs[ADDRS_MAX];
	size_t n_addrs, ai;
	bool addr_secure;
	tls_tlsa tlsa[TLSA_MAX];
	uint8_t *tlsa_data[TLSA_MAX];
	size_t n_tlsa;
	bool dane;
	dns_query *q;
	/* connection */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_timer_t timer;
	size_t write_pending;
	smtp_client *cli;
	smtpc_rcpt *rcpts;
	char (*orcpt_x)[SMTPC_ORCPT_MAX + 1];   /* ORCPT as xtext */
	char envid_x[SMTPC_ENVID_MAX + 1];
	tls_session *tls;
	bool tls_on, tls_verified;
	bool tls_broke;                /* this connection's handshake failed */
	bool cleartext;                /* retrying this address without TLS */
	bool transaction;              /* a host reached MAIL FROM */
	/* outcome per recipient: 0 none yet, else the final code */
	unsigned *code;
	char (*reply)[REASON_MAX];
	char (*enh)[12];
	char remote[256];              /* the host that answered */
	char reason[REASON_MAX];       /* why the attempt failed as a whole */
	bool reason_permanent;
	bool peer_dsn;                 /* the peer took our DSN parameters */
	uint64_t now;
};

static void kick(outbound *o);
static void next_host(job *j);
static void connect_next(job *j);
static void attempt_over(job *j);
static void pump(job *j);
static void tick_cb(uv_timer_t *t);
static void rate_cb(uv_timer_t *t);
static void maybe_stopped(outbound *o);
static void purge_bounced(outbound *o);

/* ------------------------------------------------------------ settings */

static smtpc_tls_policy tls_policy(const char *v)
{
	if (strcmp(v, "none") == 0)
		return SMTPC_TLS_NONE;
	if (strcmp(v, "encrypt") == 0)
		return SMTPC_TLS_MUST;
	return SMTPC_TLS_MAY;
}

static unsigned ms(const cfg *c, const char *key)
{
	return (unsigned)cfg_int(c, key) * 1000u;
}

/* "1m" / "15m" / "4h" into seconds; 0 when malformed. */
static uint64_t duration(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	switch (*end) {
	case '\0':
	case 's':
		return v;
	case 'm':
		return v * 60;
	case 'h':
		return v * 3600;
	case 'd':
		return v * 86400;
	default:
		return 0;
	}
}

static int read_settings(const cfg *c, settings *s, char *err, size_t es)
{
	memset(s, 0, sizeof(*s));
	s->port = (unsigned)cfg_int(c, "smtp_out_port");
	s->max_conns = (unsigned)cfg_int(c, "smtp_out_max_connections");
	s->dest_conc = (unsigned)cfg_int(c, "smtp_out_dest_concurrency");
	long rate = cfg_int(c, "smtp_out_dest_rate");
	s->dest_gap_ms = rate > 0 ? 60000u / (uint64_t)rate : 0;
	const char *tp = cfg_str(c, "smtp_out_tls");
	if (strcmp(tp, "may") != 0 && strcmp(tp, "encrypt") != 0 &&
	    strcmp(tp, "none") != 0) {
		snprintf(err, es, "smtp_out_tls: '%s' is not may, encrypt or none",
			 tp);
		return -1;
	}
	s->tls = tls_policy(tp);
	if (cfg_list_len(c, "smtp_out_lane_weights") != LANES ||
	    cfg_list_len(c, "smtp_out_lane_sla") != LANES) {
		snprintf(err, es, "smtp_out_lane_weights and smtp_out_lane_sla "
			 "need three values (critical, normal, bulk)");
		return -1;
	}
	for (unsigned l = 0; l < LANES; l++) {
		const char *w = cfg_list_item(c, "smtp_out_lane_weights", l);
		char *end;
		unsigned long v = strtoul(w, &end, 10);
		s->sla[l] = duration(cfg_list_item(c, "smtp_out_lane_sla", l));
		if (*end != '\0' || v < 1 || v > 1000 || s->sla[l] == 0) {
			snprintf(err, es, "smtp_out_lane_weights (1..1000 each) "
				 "or smtp_out_lane_sla (N[s|m|h|d]) is malformed");
			return -1;
		}
		s->weight[l] = (unsigned)v;
	}
	s->retry_min = (uint64_t)cfg_int(c, "smtp_out_retry_min");
	s->retry_max = (uint64_t)cfg_int(c, "smtp_out_retry_max");
	if (s->retry_max < s->retry_min)
		s->retry_max = s->retry_min;
	s->lifetime = (uint64_t)cfg_int(c, "maximal_queue_lifetime");
	s->warn_after = (uint64_t)cfg_int(c, "delay_warning_time");
	s->lease = (uint64_t)cfg_int(c, "smtp_out_lease");
	s->bounce_keep = (uint64_t)cfg_int(c, "smtp_out_bounce_keep");
	s->connect_ms = ms(c, "smtp_out_connect_timeout");
	s->command_ms = ms(c, "smtp_out_command_timeout");
	s->data_init_ms = ms(c, "smtp_out_data_init_timeout");
	s->data_block_ms = ms(c, "smtp_out_data_block_timeout");
	s->data_end_ms = ms(c, "smtp_out_data_done_timeout");
	const char *hn = cfg_str(c, "smtp_hostname");
	if (*hn == '\0')
		hn = cfg_list_item(c, "domains", 0);
	snprintf(s->hostname, sizeof(s->hostname), "%s", hn);
	s->dane = *cfg_str(c, "dns_trust_anchor") != '\0';
	const char *sd = cfg_str(c, "srs_domain");
	s->srs = cfg_bool(c, "srs");
	snprintf(s->srs_domain, sizeof(s->srs_domain), "%s",
		 *sd != '\0' ? sd : cfg_list_item(c, "domains", 0));
	return 0;
}

/* The next blank-separated word of *p (at most cap - 1 bytes) into out;
 * false if there is none or it is too long. */
static bool word(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, " \t\r");
	if (n == 0 || n >= cap)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return true;
}

/* One "[host]:port user password" line into a. */
static bool auth_line(const char *q, auth_entry *a)
{
	char hp[300];
	if (!word(&q, hp, sizeof(hp)) || !word(&q, a->user, sizeof(a->user)) ||
	    !word(&q, a->pass, sizeof(a->pass)))
		return false;
	while (*q == ' ' || *q == '\t' || *q == '\r')
		q++;
	char *close = strchr(hp, ']');
	if (*q != '\0' || hp[0] != '[' || close == NULL || close[1] != ':' ||
	    (size_t)(close - hp - 1) >= sizeof(a->host) || close == hp + 1)
		return false;
	uint64_t port;
	if (!util_parse_u64(close + 2, 1, 65535, &port))
		return false;
	memcpy(a->host, hp + 1, (size_t)(close - hp - 1));
	a->host[close - hp - 1] = '\0';
	for (char *h = a->host; *h != '\0'; h++)
		if (*h >= 'A' && *h <= 'Z')
			*h = (char)(*h - 'A' + 'a');
	a->port = (unsigned)port;
	return true;
}

/* smtp_out_auth_file: "[host]:port user password" lines; # comments. */
static int parse_auth(outbound *o, const char *text, char *err, size_t es)
{
	size_t line = 0;
	const char *p = text;
	while (p != NULL && *p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		char buf[1024];
		line++;
		if (len >= sizeof(buf)) {
			snprintf(err, es, "smtp_out_auth_file, line %zu: too long",
				 line);
			return -1;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = nl != NULL ? nl + 1 : NULL;
		const char *q = buf;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '\0' || *q == '#' || *q == '\r')
			continue;
		bool ok = o->n_auth < AUTH_MAX && auth_line(q, &o->auth[o->n_auth]);
		sodium_memzero(buf, sizeof(buf));
		if (!ok) {
			snprintf(err, es, "smtp_out_auth_file, line %zu: expected "
				 "`[host]:port user password` (at most %u lines)",
				 line, AUTH_MAX);
			return -1;
		}
		o->n_auth++;
	}
	return 0;
}

/* ------------------------------------------------------------- stats */

static void stat_add(outbound *o, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&o->stats_lock);
	*field += n;
	pthread_mutex_unlock(&o->stats_lock);
}

void outbound_get_stats(outbound *o, outbound_stats *st)
{
	pthread_mutex_lock(&o->stats_lock);
	*st = o->stats;
	st->connections = o->active;
	pthread_mutex_unlock(&o->stats_lock);
}

/* ---------------------------------------------------------- destinations */

static dest *dest_get(outbound *o, const char *domain)
{
	for (dest *d = o->dests; d != NULL; d = d->next)
		if (strcmp(d->domain, domain) == 0)
			return d;
	return NULL;
}

/* A new attempt to domain may start now: below its concurrency, and
 * smtp_out_dest_rate's gap since the last start has passed (else the
 * rate timer is armed for when it has). */
static bool dest_free_slot(outbound *o, const char *domain)
{
	dest *d = dest_get(o, domain);
	if (d == NULL)
		return true;
	if (d->active >= o->set.dest_conc)
		return false;
	uint64_t now = uv_now(o->p.loop);
	if (o->set.dest_gap_ms > 0 && now < d->last_start + o->set.dest_gap_ms) {
		uint64_t in = d->last_start + o->set.dest_gap_ms - now;
		if (!uv_is_active((uv_handle_t *)&o->rate_timer) ||
		    uv_timer_get_due_in(&o->rate_timer) > in)
			uv_timer_start(&o->rate_timer, rate_cb, in, 0);
		return false;
	}
	return true;
}

static dest *dest_take(outbound *o, const char *domain)
{
	dest *d = dest_get(o, domain);
	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL)
			abort();
		snprintf(d->domain, sizeof(d->domain), "%s", domain);
		d->next = o->dests;
		o->dests = d;
	}
	d->active++;
	d->last_start = uv_now(o->p.loop);
	return d;
}

/* A destination is forgotten once idle, unless its rate gap still runs
 * (swept by dest_sweep). */
static void dest_release(outbound *o, dest *d)
{
	if (--d->active > 0 || o->set.dest_gap_ms > 0)
		return;
	for (dest **pp = &o->dests; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			free(d);
			return;
		}
	}
}

/* Idle destinations whose rate gap has passed. */
static void dest_sweep(outbound *o)
{
	uint64_t now = uv_now(o->p.loop);
	for (dest **pp = &o->dests; *pp != NULL;) {
		dest *d = *pp;
		if (d->active == 0 && now >= d->last_start + o->set.dest_gap_ms) {
			*pp = d->next;
			free(d);
		} else {
			pp = &d->next;
		}
	}
}

static void rate_cb(uv_timer_t *t)
{
	outbound *o = t->data;
	dest_sweep(o);
	kick(o);
}

/* ------------------------------------------------------------- leasing */

/* The tick fires when the first drained lane is due again, at most TICK_S
 * seconds from now (so that a wall-clock jump is noticed). */
static void arm_tick(outbound *o)
{
	uint64_t now = (uint64_t)time(NULL), in = TICK_S;
	for (unsigned l = 0; l < LANES; l++) {
		if (o->lane_due[l] == 0)
			continue;
		uint64_t d = o->lane_due[l] > now ? o->lane_due[l] - now : 0;
		if (d < in)
			in = d;
	}
	if (!o->stopping)
		uv_timer_start(&o->tick, tick_cb, in * 1000u + 10u, 0);
}

/* A drained lane is leased again when the tick fires: at its next due
 * row, or after TICK_S at the latest. */
static void tick_cb(uv_timer_t *t)
{
	outbound *o = t->data;
	for (unsigned l = 0; l < LANES; l++)
		o->lane_due[l] = 0;
	purge_bounced(o);
	kick(o);
}

typedef struct lease_req {
	uv_work_t w;
	outbound *o;
	unsigned lane;
	size_t want;
	uint64_t now, lease;
	mailq_item *items;
	size_t n;
	int rc;
	uint64_t next;                 /* when the lane has a due row again */
	int next_rc;
} lease_req;

static void lease_work(uv_work_t *w)
{
	lease_req *q = w->data;
	q->rc = store_mailq_lease(q->o->p.st, q->lane, q->now, q->lease, q->want,
				  &q->items, &q->n);
	if (q->rc == 0 && q->n < q->want)
		q->next_rc = store_mailq_next(q->o->p.st, q->lane, &q->next);
}

static void lease_after(uv_work_t *w, int status)
{
	lease_req *q = w->data;
	outbound *o = q->o;
	o->pending_work--;
	o->leasing[q->lane] = false;
	if (q->rc != 0 || status != 0) {
		log_msg(LOG_ERR, "msg=\"mail queue: lease failed\" lane=%u",
			q->lane);
		o->lane_due[q->lane] = (uint64_t)time(NULL) + 5;
	} else {
		for (size_t i = 0; i < q->n; i++) {
			waiting *wt = malloc(sizeof(*wt));
			mailq_item *it = malloc(sizeof(*it));
			if (wt == NULL || it == NULL)
				abort();
			*it = q->items[i];
			wt->it = it;
			wt->next = NULL;
			if (o->tail[q->lane] != NULL)
				o->tail[q->lane]->next = wt;
			else
				o->head[q->lane] = wt;
			o->tail[q->lane] = wt;
			o->n_waiting[q->lane]++;
		}
		free(q->items); /* the array only: the rows moved out */
		if (q->n < q->want) {
			/* drained: sleep until the lane's next due row */
			uint64_t now = (uint64_t)time(NULL);
			if (q->next_rc == 0)
				o->lane_due[q->lane] = q->next > now ? q->next : 0;
			else
				o->lane_due[q->lane] = now + TICK_S;
		}
	}
	free(q);
	arm_tick(o);
	kick(o);
	maybe_stopped(o);
}

/* ------------------------------------------------------------ dispatch */

static void job_start(outbound *o, mailq_item *it);

/* The first waiting row of the lane whose destination has a free slot;
 * unlinked and returned, or NULL. */
static mailq_item *take_startable(outbound *o, unsigned lane)
{
	waiting **pp = &o->head[lane], *prev = NULL;
	for (waiting *w = o->head[lane]; w != NULL; prev = w, w = w->next) {
		if (!dest_free_slot(o, w->it->domain)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (o->tail[lane] == w)
			o->tail[lane] = prev;
		o->n_waiting[lane]--;
		mailq_item *it = w->it;
		free(w);
		return it;
	}
	return NULL;
}

static bool lane_startable(outbound *o, unsigned lane)
{
	for (waiting *w = o->head[lane]; w != NULL; w = w->next)
		if (dest_free_slot(o, w->it->domain))
			return true;
	return false;
}

/* Start what the free slots allow, by lane credit; lease lanes that have
 * nothing waiting. */
static void kick(outbound *o)
{
	if (o->stopping)
		return;
	while (o->active < o->set.max_conns) {
		int best = -1;
		for (unsigned l = 0; l < LANES; l++)
			if (lane_startable(o, l) &&
			    (best < 0 || o->credit[l] > o->credit[best]))
				best = (int)l;
		if (best < 0)
			break;
		/* weighted round robin: the chosen lane pays the total */
		unsigned total = 0;
		for (unsigned l = 0; l < LANES; l++) {
			if (lane_startable(o, l)) {
				o->credit[l] += (int)o->set.weight[l];
				total += o->set.weight[l];
			}
		}
		o->credit[best] -= (int)total;
		job_start(o, take_startable(o, (unsigned)best));
	}
	unsigned free_slots = o->active < o->set.max_conns
			    ? o->set.max_conns - o->active : 0;
	uint64_t now = (uint64_t)time(NULL);
	for (unsigned l = 0; l < LANES; l++) {
		if (o->leasing[l] || o->n_waiting[l] >= free_slots ||
		    (o->lane_due[l] != 0 && o->lane_due[l] > now))
			continue;
		lease_req *q = calloc(1, sizeof(*q));
		if (q == NULL)
			abort();
		q->o = o;
		q->lane = l;
		q->want = free_slots - o->n_waiting[l];
		if (q->want > LEASE_BATCH)
			q->want = LEASE_BATCH;
		q->now = now;
		q->lease = o->set.lease;
		q->w.data = q;
		o->leasing[l] = true;
		o->pending_work++;
		if (uv_queue_work(o->p.loop, &q->w, lease_work, lease_after) != 0) {
			o->leasing[l] = false;
			o->pending_work--;
			free(q);
		}
	}
}

void outbound_wake(outbound *o)
{
	for (unsigned l = 0; l < LANES; l++)
		o->lane_due[l] = 0;
	kick(o);
}

/* ----------------------------------------------------------------- jobs */

/* RFC 3461 xtext of s into out (for ORCPT and ENVID on the wire). */
static const char *xtext(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (o + 4 >= cap)
			break;
		if (*p < 0x21 || *p > 0x7e || *p == '+' || *p == '=')
			o += (size_t)snprintf(out + o, cap - o, "+%02X", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
	return out;
}


static void job_reason(job *j, bool permanent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void job_reason(job *j, bool permanent, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
	va_end(ap);
	j->reason_permanent = permanent;
}

/* Every recipient without a result gets code/enh/text. */
static void finish_rest(job *j, unsigned code, const char *enh,
			const char *text)
{
	for (size_t i = 0; i < j->it->n_rcpts; i++) {
		if (j->code[i] != 0)
			continue;
		j->code[i] = code;
		snprintf(j->enh[i], sizeof(j->enh[i]), "%s", enh);
		snprintf(j->reply[i], sizeof(j->reply[i]), "%s", text);
	}
}

static const auth_entry *find_auth(outbound *o, const char *host,
				   unsigned port)
{
	for (size_t i = 0; i < o->n_auth; i++)
		if (o->auth[i].port == port &&
		    strcasecmp(o->auth[i].host, host) == 0)
			return &o->auth[i];
	return NULL;
}

static bool must_tls(outbound *o, const char *domain)
{
	for (size_t i = 0; i < o->n_must_tls; i++)
		if (strcasecmp(o->must_tls[i], domain) == 0)
			return true;
	return false;
}

static void mx_done(void *arg, const dns_mx_result *r);
static void query_mx(job *j);
static void sts_done(void *arg, const mtasts_policy *p, const char *why);

static void job_start(outbound *o, mailq_item *it)
{
	job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->code = calloc(it->n_rcpts, sizeof(*j->code))) == NULL ||
	    (j->reply = calloc(it->n_rcpts, sizeof(*j->reply))) == NULL ||
	    (j->enh = calloc(it->n_rcpts, sizeof(*j->enh))) == NULL ||
	    (j->rcpts = calloc(it->n_rcpts, sizeof(*j->rcpts))) == NULL ||
	    (j->orcpt_x = calloc(it->n_rcpts, sizeof(*j->orcpt_x))) == NULL)
		abort();
	j->o = o;
	j->it = it;
	j->now = (uint64_t)time(NULL);
	j->dest = dest_take(o, it->domain);
	j->next = o->jobs;
	o->jobs = j;
	o->active++;
	stat_add(o, &o->stats.attempts, 1);
	for (size_t i = 0; i < it->n_rcpts; i++) {
		j->rcpts[i].addr = it->rcpts[i].addr;
		j->rcpts[i].orcpt = it->rcpts[i].orcpt == NULL ? NULL
			: xtext(it->rcpts[i].orcpt, j->orcpt_x[i],
				sizeof(j->orcpt_x[i]));
		j->rcpts[i].notify = it->rcpts[i].notify;
	}
	uv_timer_init(o->p.loop, &j->timer);
	j->timer.data = j;
	j->must_tls = must_tls(o, it->domain);

	/* transport_maps: the domain's entry (per-address entries would need
	 * the row split by recipient; the domain's decides here) */
	maps_transport tr;
	memset(&tr, 0, sizeof(tr));
	const mapset_snap *snap = mapset_get(o->p.maps);
	bool found = maps_transport_lookup(snap->t[MAPS_TRANSPORT], it->domain,
					   &tr, NULL);
	mapset_put(snap);
	snprintf(j->nexthop, sizeof(j->nexthop), "%s", it->domain);
	j->port = o->set.port;
	if (found && strcmp(tr.transport, "error") == 0) {
		job_reason(j, true, "%s", tr.text[0] != '\0' ? tr.text
			   : "mail for this domain is refused by the transport table");
		finish_rest(j, 550, "5.0.0", j->reason);
		attempt_over(j);
		return;
	}
	if (found && strcmp(tr.transport, "amp") == 0) {
		job_reason(j, true, "the transport table sends %s to AMP, which "
			   "cannot carry SMTP mail", it->domain);
		finish_rest(j, 550, "5.3.5", j->reason);
		attempt_over(j);
		return;
	}
	if (found && tr.host[0] != '\0') {
		snprintf(j->nexthop, sizeof(j->nexthop), "%s", tr.host);
		j->bracket = tr.brackets;
		if (tr.port != 0)
			j->port = tr.port;
	}
	if (j->bracket) {
		j->auth = find_auth(o, j->nexthop, j->port);
		snprintf(j->hosts[0].name, sizeof(j->hosts[0].name), "%s",
			 j->nexthop);
		j->n_hosts = 1;
		j->mx_secure = true; /* named by the operator, not by DNS */
		next_host(j);
		return;
	}
	j->step = STEP_DNS;
	/* RFC 8461: the recipient domain's MTA-STS policy first (only when
	 * its MX records route the mail, not a transport_maps nexthop) */
	if (o->sts != NULL && strcmp(j->nexthop, it->domain) == 0 &&
	    mtasts_fetch_get(o->sts, it->domain, sts_done, j, &j->sts_req) == 0)
		return;
	query_mx(j);
}

static void query_mx(job *j)
{
	if (dns_query_mx(j->o->dns, j->nexthop, mx_done, j, &j->q) != 0) {
		job_reason(j, true, "%s is not a valid domain name", j->nexthop);
		finish_rest(j, 550, "5.1.2", j->reason);
		attempt_over(j);
	}
}

static void sts_done(void *arg, const mtasts_policy *p, const char *why)
{
	job *j = arg;
	j->sts_req = NULL;
	if (p != NULL && p->mode != MTASTS_MODE_NONE)
		j->sts = mtasts_policy_dup(p);
	else if (why != NULL && why[0] != '\0')
		log_msg(LOG_DEBUG, "msg=\"outbound: no MTA-STS policy\" domain=%s "
			"why=\"%s\"", j->it->domain, why);
	query_mx(j);
}

static bool is_ip_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;
	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

static void mx_done(void *arg, const dns_mx_result *r)
{
	job *j = arg;
	j->q = NULL;
	switch (r->status) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX, the domain itself is the host */
		snprintf(j->hosts[0].name, sizeof(j->hosts[0].name), "%s",
			 j->nexthop);
		j->n_hosts = 1;
		j->mx_secure = r->secure;
		next_host(j);
		return;
	case DNS_NXDOMAIN:
		job_reason(j, true, "Host or domain name not found. Name service "
			   "error for name=%s type=MX: Host not found", j->nexthop);
		finish_rest(j, 550, "5.1.2", j->reason);
		attempt_over(j);
		return;
	default:
		job_reason(j, false, "Host or domain name not found. Name service "
			   "error for name=%s type=MX: %s", j->nexthop,
			   r->why != NULL ? r->why : dns_status_name(r->status));
		finish_rest(j, 451, "4.4.3", j->reason);
		attempt_over(j);
		return;
	}
	if (r->null_mx) {
		job_reason(j, true, "Domain %s does not accept mail (null MX)",
			   j->nexthop);
		finish_rest(j, 556, "5.1.10", j->reason);
		attempt_over(j);
		return;
	}
	j->mx_secure = r->secure;
	size_t sts_skipped = 0;
	for (size_t i = 0; i < r->n && j->n_hosts < HOSTS_MAX; i++) {
		const char *h = r->mx[i].host;
		if (j->sts != NULL && !mtasts_mx_match(j->sts, h)) {
			/* RFC 8461 §4.1: enforce skips it; testing reports */
			log_msg(LOG_NOTICE, "msg=\"outbound: MX not in the MTA-STS "
				"policy\" domain=%s mx=%s mode=%s", j->it->domain, h,
				j->sts->mode == MTASTS_MODE_ENFORCE ? "enforce"
								     : "testing");
			if (j->sts->mode == MTASTS_MODE_ENFORCE) {
				sts_skipped++;
				continue;
			}
		}
		if (strcasecmp(h, j->o->set.hostname) == 0) {
			/* we are an MX: only better ones may take it */
			if (j->n_hosts == 0) {
				job_reason(j, true, "mail for %s loops back to myself",
					   j->nexthop);
				finish_rest(j, 554, "5.4.6", j->reason);
				attempt_over(j);
				return;
			}
			break;
		}
		snprintf(j->hosts[j->n_hosts].name, sizeof(j->hosts[0].name),
			 "%s", h);
		j->n_hosts++;
	}
	if (j->n_hosts == 0 && sts_skipped > 0) {
		job_reason(j, false, "MTA-STS: no MX host of %s matches its policy",
			   j->nexthop);
		finish_rest(j, 451, "4.7.5", j->reason);
		attempt_over(j);
		return;
	}
	next_host(j);
}

static void addr_done(void *arg, const dns_addr_result *r);
static void tlsa_done(void *arg, const dns_tlsa_result *r);

static void next_host(job *j)
{
	while (j->hi < j->n_hosts && is_ip_literal(j->hosts[j->hi].name) &&
	       !j->bracket) {
		job_reason(j, false, "MX host %s is an IP address, not a host "
			   "name (RFC 5321 §5.1)", j->hosts[j->hi].name);
		j->hi++;
	}
	if (j->hi >= j->n_hosts) {
		if (j->reason[0] == '\0')
			job_reason(j, false, "no mail exchanger of %s could be "
				   "reached", j->nexthop);
		finish_rest(j, j->reason_permanent ? 550 : 451,
			    j->reason_permanent ? "5.4.4" : "4.4.1", j->reason);
		attempt_over(j);
		return;
	}
	const char *h = j->hosts[j->hi].name;
	j->n_addrs = j->ai = 0;
	j->n_tlsa = 0;
	j->dane = false;
	j->step = STEP_DNS;
	if (is_ip_literal(h)) {
		/* a bracketed transport entry naming an address */
		struct sockaddr_storage *ss = &j->addrs[0];
		memset(ss, 0, sizeof(*ss));
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET, h, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		j->n_addrs = 1;
		j->addr_secure = false;
		connect_next(j);
		return;
	}
	if (dns_query_addr(j->o->dns, h, addr_done, j, &j->q) != 0) {
		job_reason(j, false, "MX host %s is not a valid host name", h);
		j->hi++;
		next_host(j);
	}
}

static void addr_done(void *arg, const dns_addr_result *r)
{
	job *j = arg;
	j->q = NULL;
	const char *h = j->hosts[j->hi].name;
	if (r->status != DNS_OK) {
		job_reason(j, false, "Host or domain name not found. Name service "
			   "error for name=%s type=A: %s", h,
			   r->why != NULL ? r->why : dns_status_name(r->status));
		j->hi++;
		next_host(j);
		return;
	}
	for (size_t i = 0; i < r->n && j->n_addrs < ADDRS_MAX; i++)
		j->addrs[j->n_addrs++] = r->addr[i];
	j->addr_secure = r->secure;
	/* RFC 7672 §2.2: TLSA only when the MX and the address answers were
	 * validated */
	if (j->o->set.dane && j->mx_secure && j->addr_secure) {
		if (dns_query_tlsa(j->o->dns, j->port, h, tlsa_done, j, &j->q) == 0)
			return;
	}
	connect_next(j);
}

static void tlsa_done(void *arg, const dns_tlsa_result *r)
{
	job *j = arg;
	j->q = NULL;
	const char *h = j->hosts[j->hi].name;
	if (r->status == DNS_OK && r->secure) {
		for (size_t i = 0; i < r->n && j->n_tlsa < TLSA_MAX; i++) {
			uint8_t *d = malloc(r->rr[i].len + 1);
			if (d == NULL)
				abort();
			memcpy(d, r->rr[i].data, r->rr[i].len);
			free(j->tlsa_data[j->n_tlsa]);
			j->tlsa_data[j->n_tlsa] = d;
			j->tlsa[j->n_tlsa] = (tls_tlsa){ r->rr[i].usage,
				r->rr[i].selector, r->rr[i].mtype, d, r->rr[i].len };
			j->n_tlsa++;
		}
		j->dane = j->n_tlsa > 0;
	} else if (r->status == DNS_TEMPFAIL || r->status == DNS_BOGUS) {
		/* §2.2: a TLSA lookup that fails makes the host unusable */
		job_reason(j, false, "TLSA lookup for %s failed: %s", h,
			   r->why != NULL ? r->why : dns_status_name(r->status));
		j->hi++;
		next_host(j);
		return;
	}
	connect_next(j);
}

/* ------------------------------------------------------------ connection */

static void on_connect(uv_connect_t *req, int status);
static void on_tcp_closed(uv_handle_t *h);
static smtpc_tls_policy tls_required(const job *j);

static void timer_cb(uv_timer_t *t)
{
	job *j = t->data;
	if (j->step == STEP_CONNECT) {
		job_reason(j, false, "connect to %s port %u: timed out",
			   j->hosts[j->hi].name, j->port);
		j->step = STEP_CLOSING;
		uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
		return;
	}
	if (j->step == STEP_SMTP && j->cli != NULL) {
		smtp_client_timeout(j->cli);
		pump(j);
	}
}

static void connect_next(job *j)
{
	if (j->ai >= j->n_addrs) {
		j->hi++;
		next_host(j);
		return;
	}
	struct sockaddr_storage ss = j->addrs[j->ai++];
	j->tls_broke = false;
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)j->port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)j->port);
	j->step = STEP_CONNECT;
	j->tls_on = j->tls_verified = false;
	j->write_pending = 0;
	uv_tcp_init(j->o->p.loop, &j->tcp);
	j->tcp.data = j;
	j->creq.data = j;
	int rc = uv_tcp_connect(&j->creq, &j->tcp, (struct sockaddr *)&ss,
				on_connect);
	if (rc != 0) {
		job_reason(j, false, "connect to %s: %s", j->hosts[j->hi].name,
			   uv_strerror(rc));
		j->step = STEP_CLOSING;
		uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
		return;
	}
	uv_timer_start(&j->timer, timer_cb, j->o->set.connect_ms, 0);
}

/* The TCP handle of one connection is closed: go on with the next
 * address, host, or end the attempt. */
static void on_tcp_closed(uv_handle_t *h)
{
	job *j = h->data;
	uv_timer_stop(&j->timer);
	tls_session_free(&j->tls);
	bool transaction = false;
	if (j->cli != NULL) {
		/* results of a host that reached the transaction are final */
		transaction = smtp_client_transaction(j->cli);
		for (size_t i = 0; i < j->it->n_rcpts; i++) {
			const smtpc_result *r = smtp_client_result(j->cli, i);
			if (r->phase == SMTPC_PHASE_RCPT || r->phase == SMTPC_PHASE_DATA ||
			    r->phase == SMTPC_PHASE_MAIL)
				transaction = true;
		}
		if (transaction) {
			j->transaction = true;
			j->peer_dsn = smtp_client_caps(j->cli)->dsn;
			/* the reason is this host's; earlier hosts' failures
			 * were logged as they happened */
			if (smtp_client_failed(j->cli))
				job_reason(j, false, "%s: %s", j->hosts[j->hi].name,
					   smtp_client_reason(j->cli));
			else
				j->reason[0] = '\0';
			snprintf(j->remote, sizeof(j->remote), "%s",
				 j->hosts[j->hi].name);
			for (size_t i = 0; i < j->it->n_rcpts; i++) {
				const smtpc_result *r = smtp_client_result(j->cli, i);
				if (r->phase == SMTPC_PHASE_NONE || j->code[i] != 0)
					continue;
				j->code[i] = r->code;
				snprintf(j->enh[i], sizeof(j->enh[i]), "%s", r->enh);
				if (snprintf(j->reply[i], sizeof(j->reply[i]),
					     "%u %s %.250s", r->code, r->enh,
					     r->text) < 0)
					j->reply[i][0] = '\0';
			}
		} else {
			const char *why = smtp_client_reason(j->cli);
			job_reason(j, false, "%s: %s", j->hosts[j->hi].name,
				   why[0] != '\0' ? why : smtp_client_last_reply(j->cli));
		}
		smtp_client_free(&j->cli);
	}
	/* Opportunistic TLS whose handshake failed: the same address once
	 * more in cleartext (as Postfix's `may` level does); never when a
	 * policy requires TLS. */
	if (!transaction && !j->o->stopping && j->tls_broke && !j->cleartext &&
	    tls_required(j) == SMTPC_TLS_MAY) {
		log_msg(LOG_NOTICE, "msg=\"outbound: TLS handshake failed; trying "
			"again without TLS\" domain=%s host=%s", j->it->domain,
			j->hosts[j->hi].name);
		j->cleartext = true;
		j->ai--;
		connect_next(j);
		return;
	}
	j->cleartext = false;
	if (!j->transaction && j->reason[0] != '\0')
		log_msg(LOG_INFO, "msg=\"outbound: host failed\" id=%016llx "
			"domain=%s reason=\"%s\"", (unsigned long long)j->it->id,
			j->it->domain, j->reason);
	if (j->transaction || j->o->stopping) {
		if (j->o->stopping)
			finish_rest(j, 451, "4.3.2", "the node is stopping");
		else
			finish_rest(j, 451, "4.4.2", j->reason[0] != '\0' ? j->reason
				    : "the connection ended early");
		attempt_over(j);
		return;
	}
	connect_next(j);
}

static void conn_close(job *j)
{
	if (j->step == STEP_CLOSING)
		return;
	j->step = STEP_CLOSING;
	uv_timer_stop(&j->timer);
	uv_read_stop((uv_stream_t *)&j->tcp);
	uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(READ_CHUNK);
	buf->len = buf->base != NULL ? READ_CHUNK : 0;
}

typedef struct wreq {
	uv_write_t w;
	job *j;
	size_t len;
	uint8_t data[];
} wreq;

static void on_write(uv_write_t *w, int status)
{
	wreq *r = (wreq *)w;
	job *j = r->j;
	j->write_pending -= r->len;
	sodium_memzero(r->data, r->len); /* AUTH lines pass here */
	free(r);
	if (j->step != STEP_SMTP)
		return;
	if (status != 0) {
		smtp_client_eof(j->cli);
		conn_close(j);
		return;
	}
	pump(j);
}

static int send_raw(job *j, const uint8_t *p, size_t n)
{
	wreq *r = malloc(sizeof(*r) + n);
	if (r == NULL)
		return -1;
	r->j = j;
	r->len = n;
	memcpy(r->data, p, n);
	uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)n);
	if (uv_write(&r->w, (uv_stream_t *)&j->tcp, &b, 1, on_write) != 0) {
		free(r);
		return -1;
	}
	j->write_pending += n;
	return 0;
}

/* Ciphertext the TLS session has for the network. */
static int flush_tls(job *j)
{
	const uint8_t *p;
	size_t n;
	while ((n = tls_take_output(j->tls, &p)) > 0) {
		if (send_raw(j, p, n) != 0)
			return -1;
		tls_output_consumed(j->tls, n);
	}
	return 0;
}

/* The handshake is done: check the certificate per the policy. */
static void tls_check(job *j)
{
	const char *why = NULL, *h = j->hosts[j->hi].name;
	int ok = 0;
	bool sts = j->sts != NULL && j->sts->mode == MTASTS_MODE_ENFORCE;
	if (j->dane) /* DANE takes precedence over MTA-STS (RFC 8461 §2) */
		ok = tls_verify_dane(j->tls, h, j->tlsa, j->n_tlsa, &why);
	else if (j->must_tls || sts)
		ok = tls_verify_pkix(j->tls, h, &why);
	j->tls_verified = true;
	if (ok != 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s certificate check failed: %s",
			 j->dane ? "DANE" : sts && !j->must_tls ? "MTA-STS (PKIX)"
							       : "PKIX", why);
		log_msg(LOG_NOTICE, "msg=\"outbound: TLS refused\" host=%s why=\"%s\"",
			h, msg);
		smtp_client_tls_failed(j->cli, msg);
		return;
	}
	smtp_client_tls_started(j->cli);
}

static void pump(job *j)
{
	const char *err = NULL;
	if (j->step != STEP_SMTP)
		return;
	for (;;) {
		if (smtp_client_want_tls(j->cli) && j->tls == NULL) {
			if (tls_session_new_mode(j->o->creds, false, TLS_MODE_SMTP,
						 &j->tls, &err) != 0 ||
			    tls_set_server_name(j->tls, j->hosts[j->hi].name) != 0) {
				smtp_client_tls_failed(j->cli, err != NULL ? err
						       : "cannot start TLS");
				continue;
			}
			j->tls_on = true;
		}
		if (j->tls != NULL && !tls_handshake_done(j->tls)) {
			int r = tls_progress(j->tls, &err);
			if (flush_tls(j) != 0)
				r = -1;
			if (r < 0) {
				j->tls_broke = true;
				smtp_client_tls_failed(j->cli, err != NULL ? err
						       : "TLS failed");
				tls_session_free(&j->tls);
				j->tls_on = false;
				break;
			}
			if (r == 0)
				break; /* wait for more ciphertext */
		}
		if (j->tls != NULL && tls_handshake_done(j->tls) && !j->tls_verified) {
			tls_check(j);
			continue;
		}
		if (j->write_pending >= WRITE_HIGH)
			break;
		const uint8_t *out;
		size_t n = smtp_client_output(j->cli, &out);
		if (n == 0)
			break;
		int rc = j->tls_on ? tls_write(j->tls, out, n, &err) : send_raw(j, out, n);
		if (rc == 0 && j->tls_on)
			rc = flush_tls(j);
		if (rc != 0) {
			smtp_client_eof(j->cli);
			break;
		}
		smtp_client_output_consumed(j->cli, n);
	}
	if (smtp_client_done(j->cli)) {
		conn_close(j);
		return;
	}
	unsigned t = smtp_client_timeout_ms(j->cli);
	if (t > 0)
		uv_timer_start(&j->timer, timer_cb, t, 0);
	else
		uv_timer_stop(&j->timer);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	job *j = s->data;
	const char *err = NULL;
	if (j->step != STEP_SMTP) {
		free(buf->base);
		return;
	}
	if (n < 0) {
		free(buf->base);
		smtp_client_eof(j->cli);
		conn_close(j);
		return;
	}
	if (n > 0) {
		if (j->tls != NULL) {
			if (tls_feed(j->tls, (uint8_t *)buf->base, (size_t)n) != 0) {
				free(buf->base);
				smtp_client_eof(j->cli);
				conn_close(j);
				return;
			}
			if (tls_handshake_done(j->tls)) {
				uint8_t plain[16384];
				long got;
				while ((got = tls_read(j->tls, plain, sizeof(plain),
						       &err)) > 0)
					smtp_client_feed(j->cli, plain, (size_t)got);
				if (got < 0) {
					free(buf->base);
					smtp_client_eof(j->cli);
					conn_close(j);
					return;
				}
			}
		} else {
			smtp_client_feed(j->cli, (uint8_t *)buf->base, (size_t)n);
		}
	}
	free(buf->base);
	pump(j);
}

/* The TLS policy of the current host: DANE, smtp_out_must_tls, an
 * enforced MTA-STS policy or smtp_out_tls = encrypt require it. */
static smtpc_tls_policy tls_required(const job *j)
{
	if (j->dane || j->must_tls ||
	    (j->sts != NULL && j->sts->mode == MTASTS_MODE_ENFORCE))
		return SMTPC_TLS_MUST;
	return j->o->set.tls;
}

static void on_connect(uv_connect_t *req, int status)
{
	job *j = req->data;
	if (j->step != STEP_CONNECT)
		return; /* timed out: closing already */
	uv_timer_stop(&j->timer);
	const char *h = j->hosts[j->hi].name;
	if (status != 0) {
		job_reason(j, false, "connect to %s port %u: %s", h, j->port,
			   uv_strerror(status));
		j->step = STEP_CLOSING;
		uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
		return;
	}
	const settings *set = &j->o->set;
	smtpc_settings cs = {
		.helo = set->hostname,
		.tls = j->cleartext ? SMTPC_TLS_NONE : tls_required(j),
		.auth_user = j->auth != NULL ? j->auth->user : NULL,
		.auth_pass = j->auth != NULL ? j->auth->pass : NULL,
		.greeting_ms = set->command_ms, .command_ms = set->command_ms,
		.data_init_ms = set->data_init_ms,
		.data_block_ms = set->data_block_ms,
		.data_end_ms = set->data_end_ms,
	};
	if (cs.auth_user != NULL && cs.tls == SMTPC_TLS_NONE)
		cs.tls = SMTPC_TLS_MUST;
	const mailq_item *it = j->it;
	bool eight = false, utf8 = false;
	for (size_t i = 0; i < it->body_len && !eight; i++)
		eight = it->body[i] >= 0x80;
	for (size_t i = 0; i < it->n_rcpts && !utf8; i++)
		for (const char *p = it->rcpts[i].addr; *p != '\0' && !utf8; p++)
			utf8 = (unsigned char)*p >= 0x80;
	for (const char *p = it->sender != NULL ? it->sender : ""; *p != '\0'; p++)
		utf8 = utf8 || (unsigned char)*p >= 0x80;
	smtpc_message m = {
		.mail_from = it->sender != NULL ? it->sender : "",
		.rcpts = j->rcpts, .n_rcpts = it->n_rcpts,
		.envid = it->envid == NULL ? NULL
			 : xtext(it->envid, j->envid_x, sizeof(j->envid_x)),
		.ret = it->ret,
		.body = it->body, .body_len = it->body_len,
		.eightbit = eight, .smtputf8 = utf8,
	};
	const char *err = NULL;
	if (smtp_client_new(&cs, &m, &j->cli, &err) != 0) {
		/* E4: refused before anything was sent: permanent */
		job_reason(j, true, "the message cannot be sent: %s", err);
		finish_rest(j, 554, "5.6.0", j->reason);
		j->transaction = true;
		j->step = STEP_CLOSING;
		uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
		return;
	}
	j->step = STEP_SMTP;
	if (uv_read_start((uv_stream_t *)&j->tcp, alloc_cb, on_read) != 0)
		smtp_client_eof(j->cli);
	pump(j);
}

/* ------------------------------------------------------------- outcome */

typedef struct update_req {
	uv_work_t w;
	job *j;
	mailq_outcome oc;
	uint8_t *done;
	const char **reply;
	dsn_rcpt *dsn;                 /* recipients the DSN reports */
	size_t n_dsn;
	bool dsn_delay;                /* a delay warning (else a failure or
					  success report) */
	int rc;
	bool dsn_stored;               /* a DSN went into the store */
	char dsn_where[32];            /* "inbox" or "mail" */
	unsigned delivered, deferred, bounced, late;
} update_req;

static uint64_t backoff(const settings *s, unsigned attempts)
{
	uint64_t d = s->retry_min;
	for (unsigned i = 1; i < attempts && d < s->retry_max; i++)
		d *= 2;
	if (d > s->retry_max)
		d = s->retry_max;
	uint64_t jitter = d / 4 > 0 ? randombytes_uniform((uint32_t)(d / 4 > UINT32_MAX ? UINT32_MAX : d / 4)) : 0;
	return d + jitter;
}

/* The sender's public identity if it is a local user who may get a DSN
 * (not a node: never a notice about a notice). */
static int dsn_identity(outbound *o, const char *did, amp_public_identity *pub)
{
	amp_did d;
	char *doc = NULL;
	size_t dl;
	const char *err = NULL;
	if (amp_did_parse(did, strlen(did), &d, NULL) != AMP_OK ||
	    strcmp(d.local, "node") == 0 || strcmp(d.local, "gateway") == 0)
		return -1;
	if (store_identity_get(o->p.st, did, &doc, &dl) != 1 ||
	    amp_did_document_parse(doc, dl, pub, &err) != AMP_OK) {
		free(doc);
		return -1;
	}
	free(doc);
	return 0;
}

/* The recipient of a DSN about a message sent from `sender`: a sender
 * that is one of our SRS addresses (mail we forwarded, smtpd.c) stands
 * for the original sender, so the DSN goes there (an SRS1 address gives
 * the SRS0 address of the forwarder before us, which reverses it in
 * turn).  The key is smtpd.c's: derived from the node identity.  false:
 * an SRS address of ours that does not reverse (too old): no DSN. */
static bool dsn_to(outbound *o, const char *sender, uint64_t now,
		   char out[SRS_ADDR_MAX + 1], const char **to_r)
{
	const char *at = strrchr(sender, '@');
	*to_r = sender;
	if (!o->set.srs || at == NULL ||
	    strcasecmp(at + 1, o->set.srs_domain) != 0 || !srs_is_srs(sender))
		return true;
	srs_config sc = { .domain = o->set.srs_domain };
	const char *why = NULL;
	srs_key_derive(o->p.node->sign_sk, sizeof(o->p.node->sign_sk), sc.key);
	int r = srs_reverse(&sc, sender, now, out, &why);
	sodium_memzero(sc.key, sizeof(sc.key));
	if (r != 0) {
		log_msg(LOG_NOTICE, "msg=\"outbound: no DSN: its SRS recipient does "
			"not reverse\" error=\"%s\"", why);
		return false;
	}
	*to_r = out;
	return true;
}

static void update_work(uv_work_t *w)
{
	update_req *u = w->data;
	job *j = u->j;
	outbound *o = j->o;
	const mailq_item *it = j->it;
	uint8_t *dsn = NULL, *env = NULL;
	size_t dsn_len = 0, env_len = 0;
	store_delivery sd;
	mailq_msg dm;
	mailq_rcpt dr;
	amp_envelope *ne = NULL;
	const char *err = NULL;
	const char *local[1];
	char srs_back[SRS_ADDR_MAX + 1];
	const char *to = it->sender;
	bool want = u->n_dsn > 0;
	if (want && it->sender_did == NULL && it->sender != NULL &&
	    it->sender[0] != '\0')
		want = dsn_to(o, it->sender, j->now, srs_back, &to);
	if (want) {
		uint8_t rnd[16];
		char from[300];
		randombytes_buf(rnd, sizeof(rnd));
		snprintf(from, sizeof(from), "MAILER-DAEMON@%s", o->set.hostname);
		dsn_report rep = {
			.reporting_mta = o->set.hostname, .from = from,
			.to = to, .envid = it->envid,
			.msgid_domain = o->set.hostname, .random16 = rnd,
			.arrival = it->created, .now = j->now,
			.original = it->body, .original_len = it->body_len,
			.full = it->ret != SMTPC_RET_HDRS && !u->dsn_delay,
			.max_original = DSN_ORIGINAL_MAX,
			.rcpts = u->dsn, .n = u->n_dsn,
		};
		if (dsn_build(&rep, &dsn, &dsn_len, &err) != 0) {
			log_msg(LOG_ERR, "msg=\"outbound: cannot build a DSN\" "
				"error=\"%s\"", err);
			dsn = NULL;
		}
	}
	if (dsn != NULL && it->sender_did != NULL) {
		amp_public_identity pub;
		amp_seal_params sp = { .content_type = "message/rfc822" };
		amp_envelope_info ni;
		if (dsn_identity(o, it->sender_did, &pub) == 0 &&
		    amp_seal(o->ctx, o->p.node, &pub, 1, &sp, dsn, dsn_len, &env,
			     &env_len, &err) == AMP_OK &&
		    amp_envelope_decode(env, env_len, &ne, &err) == AMP_OK) {
			amp_envelope_get_info(ne, &ni);
			local[0] = it->sender_did;
			sd = (store_delivery){
				.sender = o->p.node->pub.did,
				.envelope_id = ni.envelope_id,
				.env = env, .env_len = env_len, .received = j->now,
				.local = local, .n_local = 1,
			};
			u->oc.dsn_inbox = &sd;
			snprintf(u->dsn_where, sizeof(u->dsn_where), "inbox");
		}
	} else if (dsn != NULL && it->sender != NULL && it->sender[0] != '\0') {
		dr = (mailq_rcpt){ .addr = to };
		dm = (mailq_msg){
			.sender = "", .rcpts = &dr, .n_rcpts = 1,
			.body = dsn, .body_len = dsn_len, .lane = MAILQ_NORMAL,
			.created = j->now, .expires = j->now + o->set.lifetime,
		};
		u->oc.dsn_mail = &dm;
		snprintf(u->dsn_where, sizeof(u->dsn_where), "mail");
	}
	u->rc = store_mailq_update(o->p.st, &u->oc);
	u->dsn_stored = u->rc >= 0 && (u->oc.dsn_inbox != NULL ||
				       u->oc.dsn_mail != NULL);
	amp_envelope_free(&ne);
	amp_free(env);
	if (dsn != NULL) {
		sodium_memzero(dsn, dsn_len);
		free(dsn);
	}
}

static void job_free(job *j)
{
	for (size_t i = 0; i < TLSA_MAX; i++)
		free(j->tlsa_data[i]);
	mailq_items_free(j->it, 1);
	mtasts_policy_free(&j->sts);
	free(j->code);
	free(j->reply);
	free(j->enh);
	free(j->rcpts);
	free(j->orcpt_x);
	free(j);
}

/* When stopping: note when nothing is left in flight. */
static void maybe_stopped(outbound *o)
{
	if (o->stopping && o->jobs == NULL && o->pending_work == 0 &&
	    o->tick_closed)
		o->idle = true;
}

bool outbound_idle(const outbound *o)
{
	return o == NULL || o->idle;
}

static void job_timer_closed(uv_handle_t *h)
{
	job *j = h->data;
	outbound *o = j->o;
	job_free(j);
	maybe_stopped(o);
}

static void update_after(uv_work_t *w, int status)
{
	update_req *u = w->data;
	job *j = u->j;
	outbound *o = j->o;
	(void)status;
	o->pending_work--;
	const char *did = j->it->sender_did;
	if (u->rc < 0) {
		log_msg(LOG_ERR, "msg=\"outbound: the store failed recording an "
			"attempt; it is tried again after the lease\" id=%016llx",
			(unsigned long long)j->it->id);
	} else {
		log_msg(u->bounced > 0 ? LOG_NOTICE : LOG_INFO,
			"msg=\"outbound: attempt\" id=%016llx domain=%s relay=%s "
			"attempt=%u delivered=%u deferred=%u bounced=%u dsn=%s "
			"late=%u reason=\"%s\"", (unsigned long long)j->it->id,
			j->it->domain, j->remote[0] != '\0' ? j->remote : "none",
			j->it->attempts, u->delivered, u->deferred, u->bounced,
			u->dsn_stored ? u->dsn_where : "none", u->late, j->reason);
		stat_add(o, &o->stats.delivered, u->delivered);
		stat_add(o, &o->stats.deferred, u->deferred);
		stat_add(o, &o->stats.bounced, u->bounced);
		stat_add(o, &o->stats.late[j->it->lane < LANES ? j->it->lane : 1],
			 u->late);
		if (u->dsn_stored) {
			stat_add(o, &o->stats.dsn_sent, 1);
			if (u->oc.dsn_inbox != NULL && o->p.notify != NULL && did != NULL)
				o->p.notify(o->p.arg, did);
		}
	}
	bool new_mail = u->dsn_stored && u->oc.dsn_mail != NULL;
	/* a deferred row is due again at its next_attempt: the lane must
	 * not sleep past it */
	unsigned lane = j->it->lane < LANES ? j->it->lane : MAILQ_NORMAL;
	if (u->rc >= 0 && u->deferred > 0 && o->lane_due[lane] != 0 &&
	    o->lane_due[lane] > u->oc.next_attempt) {
		o->lane_due[lane] = u->oc.next_attempt;
		arm_tick(o);
	}
	free(u->done);
	free(u->reply);
	free(u->dsn);
	free(u);
	/* unlink, release the destination, close the timer, free */
	for (job **pp = &o->jobs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	dest_release(o, j->dest);
	o->active--;
	uv_close((uv_handle_t *)&j->timer, job_timer_closed);
	if (new_mail)
		outbound_wake(o);
	else
		kick(o);
}

/* Every recipient has a code: decide, build the outcome, record it on the
 * thread pool. */
static void attempt_over(job *j)
{
	outbound *o = j->o;
	const mailq_item *it = j->it;
	j->step = STEP_RECORD;
	uv_timer_stop(&j->timer);
	update_req *u = calloc(1, sizeof(*u));
	if (u == NULL || (u->done = calloc(it->n_rcpts, 1)) == NULL ||
	    (u->reply = calloc(it->n_rcpts, sizeof(*u->reply))) == NULL ||
	    (u->dsn = calloc(it->n_rcpts, sizeof(*u->dsn))) == NULL)
		abort();
	u->j = j;
	uint64_t now = (uint64_t)time(NULL);
	bool expired = now >= it->expires;
	bool warn = !it->warned && o->set.warn_after > 0 &&
		    now >= it->created + o->set.warn_after;
	bool no_dsn = it->sender == NULL || it->sender[0] == '\0';  /* Q9 */
	bool any_failed = false, any_delay = false, any_success = false;
	for (size_t i = 0; i < it->n_rcpts; i++) {
		unsigned code = j->code[i];
		unsigned notify = it->rcpts[i].notify;
		dsn_rcpt *d = &u->dsn[u->n_dsn];
		*d = (dsn_rcpt){
			.final_rcpt = it->rcpts[i].addr, .orcpt = it->rcpts[i].orcpt,
			.status = j->enh[i][0] != '\0' ? j->enh[i] : "4.0.0",
			.remote_mta = j->remote[0] != '\0' ? j->remote : NULL,
			.diag = j->reply[i][0] != '\0' ? j->reply[i] : NULL,
			.last_attempt = now,
		};
		if (code >= 200 && code < 300) {
			u->done[i] = 1;
			u->delivered++;
			if (now > it->created + o->set.sla[it->lane < LANES ? it->lane : 1])
				u->late++;
			if ((notify & SMTPC_NOTIFY_SUCCESS) && !j->peer_dsn) {
				d->action = DSN_RELAYED;
				any_success = true;
				u->n_dsn++;
			}
		} else if (code >= 500 || expired) {
			u->done[i] = 1;
			u->bounced++;
			if (code < 500) {
				d->status = "4.4.7";
				if (d->diag == NULL)
					d->diag = "delivery time expired";
			}
			if (!(notify & SMTPC_NOTIFY_NEVER) &&
			    (notify == 0 || (notify & SMTPC_NOTIFY_FAILURE))) {
				d->action = DSN_FAILED;
				any_failed = true;
				u->n_dsn++;
			}
		} else {
			u->deferred++;
			u->reply[i] = j->reply[i][0] != '\0' ? j->reply[i] : NULL;
			if (warn && !(notify & SMTPC_NOTIFY_NEVER) &&
			    (notify == 0 || (notify & SMTPC_NOTIFY_DELAY))) {
				d->action = DSN_DELAYED;
				d->will_retry_until = it->expires;
				any_delay = true;
				u->n_dsn++;
			}
		}
	}
	/* One DSN per attempt: failures first; a delay warning only when
	 * nothing failed (the failure report is the more important). */
	if (any_failed || any_success) {
		size_t k = 0;
		for (size_t i = 0; i < u->n_dsn; i++)
			if (u->dsn[i].action != DSN_DELAYED)
				u->dsn[k++] = u->dsn[i];
		u->n_dsn = k;
	} else {
		u->dsn_delay = any_delay;
	}
	if (no_dsn)
		u->n_dsn = 0;
	u->oc = (mailq_outcome){
		.id = it->id, .done = u->done, .reply = u->reply, .n = it->n_rcpts,
		.last_reply = j->reason[0] != '\0' ? j->reason : NULL,
		/* a stopping node leaves its rows due at once for the next start;
		 * a bounced row records when it bounced */
		.next_attempt = o->stopping || (u->bounced > 0 && u->deferred == 0)
				? now : now + backoff(&o->set, it->attempts),
		.warned = it->warned || (warn && u->deferred > 0),
		.bounced = u->bounced > 0 && u->deferred == 0,
	};
	u->w.data = u;
	o->pending_work++;
	if (uv_queue_work(o->p.loop, &u->w, update_work, update_after) != 0) {
		update_work(&u->w);
		update_after(&u->w, 0);
	}
}

/* ------------------------------------------------------------ lifecycle */

/* At start: rows leased by a node that died (kill -9, power loss) would
 * wait for their lease to end; this node is the queue's only user, so
 * they are due now.  Synchronous, before the loop runs. */
static void reclaim_leases(outbound *o)
{
	mailq_filter f = { .state = MAILQ_ACTIVE, .lane = -1 };
	mailq_item *items = NULL;
	size_t n = 0, reclaimed = 0;
	uint64_t now = (uint64_t)time(NULL);
	if (store_mailq_list(o->p.st, &f, &items, &n) != 0) {
		log_msg(LOG_ERR, "msg=\"outbound: cannot list the mail queue\"");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].next_attempt <= now)
			continue;
		uint8_t *none = calloc(items[i].n_rcpts + 1, 1);
		mailq_outcome oc = {
			.id = items[i].id, .done = none, .n = items[i].n_rcpts,
			.last_reply = items[i].last_reply, .next_attempt = now,
			.warned = items[i].warned,
		};
		if (none != NULL && store_mailq_update(o->p.st, &oc) >= 0)
			reclaimed++;
		free(none);
	}
	mailq_items_free(items, n);
	if (reclaimed > 0)
		log_msg(LOG_NOTICE, "msg=\"outbound: rows leased before a restart "
			"are due again\" count=%zu", reclaimed);
}

typedef struct purge_req {
	uv_work_t w;
	outbound *o;
	uint64_t before;
	int n;
} purge_req;

static void purge_work(uv_work_t *w)
{
	purge_req *q = w->data;
	q->n = store_mailq_purge(q->o->p.st, q->before);
}

static void purge_after(uv_work_t *w, int status)
{
	purge_req *q = w->data;
	(void)status;
	q->o->pending_work--;
	if (q->n > 0)
		log_msg(LOG_INFO, "msg=\"outbound: bounced rows purged\" count=%d",
			q->n);
	maybe_stopped(q->o);
	free(q);
}

/* Bounced rows stay visible for smtp_out_bounce_keep; every PURGE_S the
 * older ones go. */
static void purge_bounced(outbound *o)
{
	uint64_t now = (uint64_t)time(NULL);
	if (o->stopping || now < o->last_purge + PURGE_S)
		return;
	o->last_purge = now;
	purge_req *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return;
	q->o = o;
	q->before = now > o->set.bounce_keep ? now - o->set.bounce_keep : 0;
	q->w.data = q;
	o->pending_work++;
	if (uv_queue_work(o->p.loop, &q->w, purge_work, purge_after) != 0) {
		o->pending_work--;
		free(q);
	}
}

int outbound_start(const outbound_params *p, const cfg *conf, outbound **o_r,
		   char *err, size_t err_size)
{
	outbound *o = calloc(1, sizeof(*o));
	const char *e = NULL;
	if (o == NULL || (o->auth = calloc(AUTH_MAX, sizeof(*o->auth))) == NULL) {
		free(o);
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	o->p = *p;
	pthread_mutex_init(&o->stats_lock, NULL);
	if (read_settings(conf, &o->set, err, err_size) != 0 ||
	    (p->auth_text != NULL && parse_auth(o, p->auth_text, err, err_size) != 0))
		goto fail;
	o->n_must_tls = cfg_list_len(conf, "smtp_out_must_tls");
	if ((o->must_tls = calloc(o->n_must_tls + 1, sizeof(char *))) == NULL)
		goto oom;
	for (size_t i = 0; i < o->n_must_tls; i++)
		if ((o->must_tls[i] = strdup(cfg_list_item(conf, "smtp_out_must_tls",
							   i))) == NULL)
			goto oom;
	const char *fwd = cfg_str(conf, "dns_forwarder");
	const char *ta = cfg_str(conf, "dns_trust_anchor");
	dns_settings ds = {
		.forwarder = *fwd != '\0' ? fwd : NULL,
		.trust_anchor = *ta != '\0' ? ta : NULL,
		.timeout_ms = (unsigned)cfg_int(conf, "dns_timeout") * 1000u,
	};
	if (dns_new(p->loop, &ds, &o->dns, err, err_size) != 0)
		goto fail;
	if (cfg_bool(conf, "mta_sts")) {
		const char *sca = cfg_str(conf, "mta_sts_ca_file");
		mtasts_fetch_settings ms = {
			.loop = p->loop, .dns = o->dns, .db_path = p->mtasts_db,
			.ca_file = *sca != '\0' ? sca : NULL,
			.port = (unsigned)cfg_int(conf, "mta_sts_port"),
			.timeout_ms = (unsigned)cfg_int(conf, "mta_sts_timeout") * 1000u,
			.retry_s = MTASTS_FETCH_RETRY_DEFAULT_S,
		};
		if (mtasts_fetch_new(&ms, &o->sts, err, err_size) != 0)
			goto fail;
	}
	const char *ca = cfg_str(conf, "smtp_out_ca_file");
	if (tls_creds_client_smtp(*ca != '\0' ? ca : NULL, &o->creds, &e) != 0 ||
	    amp_ctx_create(256, &o->ctx) != AMP_OK) {
		snprintf(err, err_size, "outbound TLS: %s", e != NULL ? e : "out of memory");
		goto fail;
	}
	uv_timer_init(p->loop, &o->tick);
	o->tick.data = o;
	uv_timer_init(p->loop, &o->rate_timer);
	o->rate_timer.data = o;
	reclaim_leases(o);
	*o_r = o;
	outbound_wake(o);
	arm_tick(o);
	return 0;
oom:
	snprintf(err, err_size, "out of memory");
fail:
	outbound_free(&o);
	return -1;
}

void outbound_reconfigure(outbound *o, const cfg *conf)
{
	settings s;
	char err[256];
	if (read_settings(conf, &s, err, sizeof(err)) != 0) {
		log_msg(LOG_ERR, "msg=\"outbound settings kept\" error=\"%s\"", err);
		return;
	}
	/* connection limits and the port apply to new attempts too */
	o->set = s;
	kick(o);
}

static void tick_closed(uv_handle_t *h)
{
	outbound *o = h->data;
	o->tick_closed = true;
	maybe_stopped(o);
}

void outbound_stop(outbound *o)
{
	if (o == NULL || o->stopping)
		return;
	o->stopping = true;
	for (job *j = o->jobs; j != NULL; j = j->next) {
		if (j->step == STEP_DNS) {
			dns_cancel(j->q);
			j->q = NULL;
			mtasts_fetch_cancel(j->sts_req);
			j->sts_req = NULL;
			finish_rest(j, 451, "4.3.2", "the node is stopping");
			attempt_over(j);
		} else if (j->step == STEP_CONNECT || j->step == STEP_SMTP) {
			if (j->cli != NULL)
				smtp_client_eof(j->cli);
			if (j->step == STEP_SMTP)
				conn_close(j);
			else {
				j->step = STEP_CLOSING;
				uv_close((uv_handle_t *)&j->tcp, on_tcp_closed);
			}
		}
	}
	/* rows leased but not started: due again at once for the next start */
	uint64_t now = (uint64_t)time(NULL);
	for (unsigned l = 0; l < LANES; l++) {
		while (o->head[l] != NULL) {
			waiting *w = o->head[l];
			uint8_t *none = calloc(w->it->n_rcpts + 1, 1);
			mailq_outcome oc = { .id = w->it->id, .done = none,
					     .n = w->it->n_rcpts, .next_attempt = now,
					     .warned = w->it->warned };
			if (none == NULL || store_mailq_update(o->p.st, &oc) < 0)
				log_msg(LOG_ERR, "msg=\"outbound: a leased row waits "
					"for its lease\" id=%016llx",
					(unsigned long long)w->it->id);
			free(none);
			o->head[l] = w->next;
			mailq_items_free(w->it, 1);
			free(w);
		}
		o->tail[l] = NULL;
		o->n_waiting[l] = 0;
	}
	uv_timer_stop(&o->tick);
	uv_close((uv_handle_t *)&o->tick, tick_closed);
	uv_close((uv_handle_t *)&o->rate_timer, NULL);
}

void outbound_free(outbound **op)
{
	outbound *o = *op;
	if (o == NULL)
		return;
	for (unsigned l = 0; l < LANES; l++) {
		while (o->head[l] != NULL) {
			waiting *w = o->head[l];
			o->head[l] = w->next;
			mailq_items_free(w->it, 1);
			free(w);
		}
	}
	while (o->dests != NULL) {
		dest *d = o->dests;
		o->dests = d->next;
		free(d);
	}
	mtasts_fetch_free(&o->sts); /* before the resolver it borrows */
	dns_free(&o->dns);
	tls_creds_free(&o->creds);
	amp_ctx_destroy(&o->ctx);
	for (size_t i = 0; o->must_tls != NULL && i < o->n_must_tls; i++)
		free(o->must_tls[i]);
	free(o->must_tls);
	if (o->auth != NULL)
		sodium_memzero(o->auth, AUTH_MAX * sizeof(*o->auth));
	free(o->auth);
	pthread_mutex_destroy(&o->stats_lock);
	free(o);
	*op = NULL;
}
