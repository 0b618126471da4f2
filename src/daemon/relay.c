/*
 * relay.c — see relay.h.  Each thread loops: lease a few due entries,
 * attempt each, record the outcome; when nothing is due, sleep until the
 * earliest next attempt (at most RELAY_TICK_S, on the monotonic clock, so
 * a wall-clock jump is noticed at the next tick) or until relay_wake.
 * Queue times are wall-clock unix seconds because they must survive a
 * restart; the store's lease treats entries scheduled implausibly far
 * ahead (the clock went back) as due.
 */
#include "relay.h"

#include "client.h"
#include "log.h"
#include "mail-date.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RELAY_TICK_S 5u
#define RELAY_BATCH 64u
#define NDN_TEXT_MAX 8192u

typedef struct relay_settings {
	uint64_t retry_min, retry_max, lifetime;
	unsigned timeout_ms;
} relay_settings;

struct relay {
	relay_params p;
	amp_ctx *ctx;
	pthread_t *threads;
	unsigned n_threads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, woken;
	relay_settings set;
	relay_stats stats;
	uint64_t quarantined_seen;   /* under lock: quarantines already logged */
};

static relay_settings read_settings(const cfg *conf)
{
	relay_settings s = {
		.retry_min = (uint64_t)cfg_int(conf, "relay_retry_min"),
		.retry_max = (uint64_t)cfg_int(conf, "relay_retry_max"),
		.lifetime = (uint64_t)cfg_int(conf, "relay_lifetime"),
		.timeout_ms = (unsigned)cfg_int(conf, "peer_timeout") * 1000u,
	};
	if (s.retry_max < s.retry_min)
		s.retry_max = s.retry_min;
	return s;
}

/* The reason for each refused recipient, one line each, into buf. */
typedef struct failure {
	char text[NDN_TEXT_MAX];
	size_t len;
	unsigned n;
} failure;

static void failure_add(failure *f, const char *did, const char *why)
{
	int n = snprintf(f->text + f->len, sizeof(f->text) - f->len,
			 "  %s\r\n      %.200s\r\n", did, why);
	if (n > 0 && (size_t)n < sizeof(f->text) - f->len)
		f->len += (size_t)n;
	f->n++;
}

/* Seal a non-delivery notice from the node to the sender and store it,
 * removing the queue entry, in one transaction. */
static void bounce(relay *r, const store_queue_item *it, const amp_envelope *env,
		   const failure *f, unsigned attempts)
{
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	amp_did sd;
	const char *err = NULL;
	if (amp_did_parse(info.sender, strlen(info.sender), &sd, NULL) != AMP_OK ||
	    strcmp(sd.local, "node") == 0) {
		/* never a notice about a notice */
		log_msg(LOG_NOTICE, "msg=\"relay gave up; no notice for a node "
			"sender\" domain=%s", it->domain);
		if (store_queue_done(r->p.st, it->id) != 0)
			log_msg(LOG_ERR, "msg=\"store failed removing a queue entry\"");
		return;
	}
	char *doc = NULL;
	size_t dl;
	amp_public_identity sender;
	if (store_identity_get(r->p.st, info.sender, &doc, &dl) != 1 ||
	    amp_did_document_parse(doc, dl, &sender, &err) != AMP_OK) {
		free(doc);
		log_msg(LOG_NOTICE, "msg=\"relay gave up; the sender is no longer "
			"registered, no notice\" domain=%s", it->domain);
		if (store_queue_done(r->p.st, it->id) != 0)
			log_msg(LOG_ERR, "msg=\"store failed removing a queue entry\"");
		return;
	}
	free(doc);
	char idhex[33], date[MAIL_DATE_FORMAT_SIZE], body[NDN_TEXT_MAX + 2048];
	sodium_bin2hex(idhex, sizeof(idhex), info.envelope_id, 16);
	/* a host clock outside 1900..9999: date the notice 1970 rather than
	 * not at all */
	time_t now = time(NULL);
	if (!mail_date_format(now, date, sizeof(date)) &&
	    !mail_date_format(0, date, sizeof(date)))
		abort(); /* cannot happen: 1970 always fits */
	int n = snprintf(body, sizeof(body),
		"From: <%s>\r\n"
		"To: <%s>\r\n"
		"Date: %s\r\n"
		"Subject: Undelivered AMP message\r\n"
		"Auto-Submitted: auto-replied\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"\r\n"
		"This is the AfterSMTP node %s.\r\n"
		"\r\n"
		"Your message %s could not be delivered to these recipients\r\n"
		"at %s (after %u attempts):\r\n"
		"\r\n"
		"%.*s"
		"\r\n"
		"Nothing more will be tried for them.\r\n",
		r->p.node->pub.did, info.sender, date, r->p.node->pub.did, idhex,
		it->domain, attempts, (int)f->len, f->text);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = (int)strlen(body);
	amp_seal_params sp = { .content_type = "message/rfc822" };
	uint8_t *ndn;
	size_t ndn_len;
	amp_envelope *ne = NULL;
	if (amp_seal(r->ctx, r->p.node, &sender, 1, &sp, (const uint8_t *)body,
		     (size_t)n, &ndn, &ndn_len, &err) != AMP_OK ||
	    amp_envelope_decode(ndn, ndn_len, &ne, &err) != AMP_OK) {
		log_msg(LOG_ERR, "msg=\"cannot seal a non-delivery notice\" "
			"error=\"%s\"", err);
		return; /* the lease expires and it is tried again */
	}
	amp_envelope_info ni;
	amp_envelope_get_info(ne, &ni);
	const char *local[1] = { info.sender };
	store_delivery sdl = {
		.sender = r->p.node->pub.did, .envelope_id = ni.envelope_id,
		.env = ndn, .env_len = ndn_len, .received = (uint64_t)now,
		.local = local, .n_local = 1,
	};
	if (store_queue_bounce(r->p.st, it->id, &sdl) != 0) {
		log_msg(LOG_ERR, "msg=\"store failed writing a non-delivery "
			"notice\"");
	} else {
		log_msg(LOG_NOTICE, "msg=\"relay gave up; notice sent to the "
			"sender\" envelope=%s domain=%s recipients=%u attempts=%u",
			idhex, it->domain, f->n, attempts);
		pthread_mutex_lock(&r->lock);
		r->stats.bounced++;
		pthread_mutex_unlock(&r->lock);
		if (r->p.notify != NULL)
			r->p.notify(r->p.notify_arg, info.sender);
	}
	amp_envelope_free(&ne);
	amp_free(ndn);
}

static bool permanent(int status)
{
	return status == AMP__V1__STATUS__STATUS_BAD_REQUEST ||
	       status == AMP__V1__STATUS__STATUS_FORBIDDEN ||
	       status == AMP__V1__STATUS__STATUS_NOT_FOUND ||
	       status == AMP__V1__STATUS__STATUS_TOO_LARGE;
}

/* Every recipient of env at domain, with the same reason. */
static void fail_all(failure *f, const amp_envelope *env, const char *domain,
		     const char *why)
{
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	for (size_t i = 0; i < info.n_recipients; i++) {
		const char *rc = amp_envelope_recipient(env, i);
		amp_did d;
		if (amp_did_parse(rc, strlen(rc), &d, NULL) == AMP_OK &&
		    strcmp(d.domain, domain) == 0)
			failure_add(f, rc, why);
	}
}

/* One open connection per relay thread, reused while the leased entries
 * go to the same domain and it keeps working. */
typedef struct peer_conn {
	nclient *c;
	char domain[256];
} peer_conn;

static void peer_close(peer_conn *pc)
{
	nclient_close(&pc->c);
	pc->domain[0] = '\0';
}

static void attempt(relay *r, const store_queue_item *it, relay_settings set,
		    peer_conn *pc)
{
	amp_envelope *env = NULL;
	const char *err = NULL;
	if (amp_envelope_decode(it->envelope, it->envelope_len, &env, &err) != AMP_OK) {
		/* cannot happen for what the node accepted: keep it aside */
		log_msg(LOG_ERR, "msg=\"undecodable queue entry dropped\" id=%llu",
			(unsigned long long)it->id);
		if (store_queue_done(r->p.st, it->id) != 0)
			log_msg(LOG_ERR, "msg=\"store failed removing a queue entry\"");
		return;
	}
	uint64_t now = (uint64_t)time(NULL);
	failure f = { .len = 0 };
	int status = -1;
	char why[300] = "";
	route rt;
	if (pc->c != NULL && strcmp(pc->domain, it->domain) != 0)
		peer_close(pc);
	if (pc->c == NULL) {
		if (router_find(r->p.routes, it->domain, &rt, &err) != 0) {
			snprintf(why, sizeof(why), "no route: %s", err);
		} else {
			nclient_opts o = {
				.host = rt.host, .port = rt.port,
				.transport = rt.transport,
				.timeout_ms = set.timeout_ms,
				.pin_sign_pk = rt.pinned ? rt.pin : NULL,
				.expect_domain = it->domain,
			};
			if (nclient_connect(&o, &pc->c, &err) != 0) {
				snprintf(why, sizeof(why), "%s:%u (%s): %s", rt.host,
					 rt.port, nclient_transport_name(rt.transport),
					 err);
			} else {
				int ast;
				/* A peer that has not pinned us refuses: delivery
				 * to its own users needs no authentication. */
				if (nclient_auth(pc->c, r->p.node, &ast, &err) != 0 &&
				    ast < 0) {
					snprintf(why, sizeof(why), "auth: %s", err);
					peer_close(pc);
				} else {
					snprintf(pc->domain, sizeof(pc->domain), "%s",
						 it->domain);
				}
			}
		}
	}
	if (pc->c != NULL) {
		Amp__V1__Response *resp = NULL;
		if (nclient_deliver(pc->c, it->envelope, it->envelope_len, &resp,
				    &status, &err) != 0) {
			snprintf(why, sizeof(why), "%s", err);
			if (status < 0) /* the connection failed */
				peer_close(pc);
		}
		/* Only this entry's domain: the peer refuses the others (they
		 * are another entry's business). */
		for (size_t i = 0; resp != NULL && i < resp->deliver->n_recipients; i++) {
			Amp__V1__RecipientResult *rr = resp->deliver->recipients[i];
			amp_did rd;
			if (rr->status != AMP__V1__STATUS__STATUS_OK &&
			    permanent((int)rr->status) &&
			    amp_did_parse(rr->did, strlen(rr->did), &rd, NULL) == AMP_OK &&
			    strcmp(rd.domain, it->domain) == 0)
				failure_add(&f, rr->did, rr->error);
		}
		if (resp != NULL)
			amp__v1__response__free_unpacked(resp, NULL);
	}
	char idhex[33];
	amp_envelope_info info;
	amp_envelope_get_info(env, &info);
	sodium_bin2hex(idhex, sizeof(idhex), info.envelope_id, 16);
	unsigned attempts = it->attempts + 1;
	if (status == AMP__V1__STATUS__STATUS_OK) {
		if (f.n > 0) {
			bounce(r, it, env, &f, attempts);
		} else if (store_queue_done(r->p.st, it->id) != 0) {
			log_msg(LOG_ERR, "msg=\"store failed removing a delivered "
				"entry\" envelope=%s", idhex);
		}
		log_msg(LOG_INFO, "msg=\"relayed\" envelope=%s domain=%s "
			"attempts=%u refused=%u", idhex, it->domain, attempts, f.n);
		pthread_mutex_lock(&r->lock);
		r->stats.delivered++;
		pthread_mutex_unlock(&r->lock);
	} else if (status >= 0 && permanent(status)) {
		if (f.n == 0) /* no per-recipient reasons: the overall one */
			fail_all(&f, env, it->domain, why);
		bounce(r, it, env, &f, attempts);
	} else {
		/* Exponential backoff with jitter in [1/2, 1] of the step. */
		uint64_t step = set.retry_min;
		for (unsigned i = 0; i < it->attempts && step < set.retry_max; i++)
			step *= 2;
		if (step > set.retry_max)
			step = set.retry_max;
		uint64_t delay = step / 2 + randombytes_uniform((uint32_t)(step / 2 + 1));
		if (delay == 0)
			delay = 1;
		if (now + delay >= it->expires) {
			char gave[400];
			snprintf(gave, sizeof(gave), "gave up after %u attempts; last "
				 "error: %s", attempts, why);
			fail_all(&f, env, it->domain, gave);
			bounce(r, it, env, &f, attempts);
		} else {
			char q[LOG_QUOTE_MAX];
			log_msg(LOG_INFO, "msg=\"relay deferred\" envelope=%s domain=%s "
				"attempts=%u retry_in=%llus error=%s", idhex,
				it->domain, attempts, (unsigned long long)delay,
				log_quote(why, strlen(why), q));
			if (store_queue_retry(r->p.st, it->id, now + delay) != 0)
				log_msg(LOG_ERR, "msg=\"store failed rescheduling\"");
			pthread_mutex_lock(&r->lock);
			r->stats.retried++;
			pthread_mutex_unlock(&r->lock);
		}
	}
	amp_envelope_free(&env);
}

static void *relay_main(void *arg)
{
	relay *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->lock);
		bool stop = r->stop;
		relay_settings set = r->set;
		r->woken = false;
		pthread_mutex_unlock(&r->lock);
		if (stop)
			return NULL;
		uint64_t now = (uint64_t)time(NULL);
		store_queue_item *items = NULL;
		size_t n = 0;
		/* an attempt is a connect and a request, each within the
		 * peer timeout: a lease outlives it */
		uint64_t lease = set.timeout_ms / 1000u * 2 + 5;
		if (store_queue_lease(r->p.st, now, lease, set.retry_max * 2 + lease,
				      RELAY_BATCH, &items, &n) != 0) {
			log_msg(LOG_ERR, "msg=\"store failed leasing the relay queue\"");
			n = 0;
		}
		peer_conn pc = { .c = NULL };
		store_stats ss;
		store_get_stats(r->p.st, &ss);
		pthread_mutex_lock(&r->lock);
		uint64_t newly = ss.quarantined > r->quarantined_seen
				 ? ss.quarantined - r->quarantined_seen : 0;
		r->quarantined_seen += newly;
		pthread_mutex_unlock(&r->lock);
		if (newly > 0)
			log_msg(LOG_WARN, "msg=\"corrupt relay queue entries "
				"quarantined (kept in the quarantine table)\" "
				"count=%llu", (unsigned long long)newly);
		/* Stop early on relay_stop, and before the leases run out (the
		 * entries not attempted come back when their lease ends). */
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&r->lock);
			stop = r->stop;
			pthread_mutex_unlock(&r->lock);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (stop || (uint64_t)(t1.tv_sec - t0.tv_sec) > lease / 2)
				break;
			attempt(r, &items[i], set, &pc);
		}
		peer_close(&pc);
		store_queue_free(items, n);
		if (n > 0)
			continue;
		uint64_t next = 0, wait_s = RELAY_TICK_S;
		if (store_queue_next(r->p.st, &next) == 1 && next > now &&
		    next - now < wait_s)
			wait_s = next - now;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)wait_s;
		pthread_mutex_lock(&r->lock);
		while (!r->stop && !r->woken &&
		       pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
			;
		pthread_mutex_unlock(&r->lock);
	}
}

int relay_start(const relay_params *p, const cfg *conf, relay **r_r,
		const char **error_r)
{
	relay *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	r->p = *p;
	r->set = read_settings(conf);
	store_stats ss;
	store_get_stats(p->st, &ss);
	r->quarantined_seen = ss.quarantined;
	if (ss.quarantined > 0)
		log_msg(LOG_NOTICE, "msg=\"relay queue entries in quarantine "
			"from before\" count=%llu", (unsigned long long)ss.quarantined);
	r->n_threads = (unsigned)cfg_int(conf, "relay_threads");
	r->threads = calloc(r->n_threads, sizeof(pthread_t));
	if (r->threads == NULL || amp_ctx_create(64, &r->ctx) != AMP_OK) {
		free(r->threads);
		free(r);
		*error_r = "out of memory";
		return -1;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->lock, NULL);
	for (unsigned i = 0; i < r->n_threads; i++) {
		if (pthread_create(&r->threads[i], NULL, relay_main, r) != 0) {
			r->n_threads = i;
			relay_stop(&r);
			*error_r = "cannot start the relay threads";
			return -1;
		}
	}
	*r_r = r;
	return 0;
}

void relay_reconfigure(relay *r, const cfg *conf)
{
	relay_settings s = read_settings(conf);
	pthread_mutex_lock(&r->lock);
	r->set = s;
	pthread_mutex_unlock(&r->lock);
}

void relay_wake(relay *r)
{
	pthread_mutex_lock(&r->lock);
	r->woken = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void relay_stop(relay **rp)
{
	relay *r = *rp;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < r->n_threads; i++)
		pthread_join(r->threads[i], NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	amp_ctx_destroy(&r->ctx);
	free(r->threads);
	free(r);
	*rp = NULL;
}

void relay_get_stats(relay *r, relay_stats *st)
{
	pthread_mutex_lock(&r->lock);
	*st = r->stats;
	pthread_mutex_unlock(&r->lock);
}
