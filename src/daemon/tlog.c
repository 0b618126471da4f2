/*
 * tlog.c — signing our tree heads and witnessing other logs; see tlog.h.
 */
#include "tlog.h"

#include "client-log.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct tlog_settings {
	unsigned head_s, witness_s, timeout_ms;
	char **of;                       /* log_witness_of */
	size_t n_of;
} tlog_settings;

struct tlog {
	tlog_params p;
	pthread_t signer, witness;
	bool signer_up, witness_up;
	pthread_mutex_t lock;            /* settings, stop, wake, stats */
	pthread_cond_t cond;
	tlog_settings set;
	bool stop, wake;
	tlog_stats stats;
};

static void settings_free(tlog_settings *s)
{
	for (size_t i = 0; s->of != NULL && i < s->n_of; i++)
		free(s->of[i]);
	free(s->of);
	s->of = NULL;
	s->n_of = 0;
}

static int settings_read(const cfg *conf, tlog_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->head_s = (unsigned)cfg_int(conf, "log_head_interval");
	s->witness_s = (unsigned)cfg_int(conf, "log_witness_interval");
	s->timeout_ms = (unsigned)cfg_int(conf, "peer_timeout") * 1000u;
	s->n_of = cfg_list_len(conf, "log_witness_of");
	if ((s->of = calloc(s->n_of + 1, sizeof(char *))) == NULL)
		return -1;
	for (size_t i = 0; i < s->n_of; i++)
		if ((s->of[i] = strdup(cfg_list_item(conf, "log_witness_of", i))) ==
		    NULL) {
			settings_free(s);
			return -1;
		}
	return 0;
}

/* Wait up to seconds (or until woken / stopping): true to go on. */
static bool nap(tlog *t, unsigned seconds, bool wakeable)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	pthread_mutex_lock(&t->lock);
	while (!t->stop && !(wakeable && t->wake) &&
	       pthread_cond_timedwait(&t->cond, &t->lock, &ts) == 0)
		;
	if (wakeable)
		t->wake = false;
	bool go = !t->stop;
	pthread_mutex_unlock(&t->lock);
	return go;
}

/* ------------------------------------------------------------- signer */

/* Sign a head of the committed log when it grew since the latest head
 * (or there is none yet). */
static void sign_once(tlog *t)
{
	uint64_t size;
	amp_log_head h, last;
	if (store_log_state(t->p.st, &size, h.root) != 0) {
		log_msg(LOG_ERR, "msg=\"transparency log: cannot read the log "
			"state\"");
		return;
	}
	int f = store_log_head_latest(t->p.st, &last);
	if (f < 0 || (f == 1 && last.size >= size))
		return;
	memset(h.log, 0, sizeof(h.log));
	memcpy(h.log, t->p.node->pub.did, strlen(t->p.node->pub.did) + 1);
	h.size = size;
	h.time = (uint64_t)time(NULL);
	if (amp_log_head_sign(&h, t->p.node->sign_sk) != AMP_OK ||
	    store_log_head_put(t->p.st, &h) != 0) {
		log_msg(LOG_ERR, "msg=\"transparency log: cannot store a tree "
			"head\" size=%llu", (unsigned long long)size);
		return;
	}
	pthread_mutex_lock(&t->lock);
	t->stats.heads_signed++;
	pthread_mutex_unlock(&t->lock);
	log_msg(LOG_DEBUG, "msg=\"tree head signed\" size=%llu",
		(unsigned long long)size);
}

static void *signer_main(void *arg)
{
	tlog *t = arg;
	do {
		sign_once(t);
		pthread_mutex_lock(&t->lock);
		unsigned s = t->set.head_s;
		pthread_mutex_unlock(&t->lock);
		if (!nap(t, s, true))
			break;
	} while (true);
	return NULL;
}

/* ------------------------------------------------------------ witness */

static void alarm_raise(tlog *t, const amp_log_head *had,
			const amp_log_head *got, const char *why)
{
	store_alarm a;
	memset(&a, 0, sizeof(a));
	a.at = (uint64_t)time(NULL);
	snprintf(a.reason, sizeof(a.reason), "%s", why);
	a.had = *had;
	a.got = *got;
	if (store_log_alarm_put(t->p.st, &a) != 0)
		log_msg(LOG_ERR, "msg=\"transparency log: cannot store the "
			"evidence of an alarm\"");
	char q[LOG_QUOTE_MAX];
	log_msg(LOG_ERR, "msg=\"transparency log inconsistency: not cosigning "
		"this log any more\" log=%s reason=%s had_size=%llu "
		"got_size=%llu", got->log, log_quote(why, strlen(why), q),
		(unsigned long long)had->size, (unsigned long long)got->size);
	pthread_mutex_lock(&t->lock);
	t->stats.alarms++;
	pthread_mutex_unlock(&t->lock);
}

static void witness_fail(tlog *t, const char *domain, const char *why)
{
	char q[LOG_QUOTE_MAX];
	log_msg(LOG_WARN, "msg=\"witness: cannot check a log\" peer=%s "
		"error=%s", domain, log_quote(why, strlen(why), q));
	pthread_mutex_lock(&t->lock);
	t->stats.witness_failures++;
	pthread_mutex_unlock(&t->lock);
}

/* Check and cosign the latest head of domain's node (AMP-R-061). */
static void witness_one(tlog *t, const char *domain, unsigned timeout_ms)
{
	const char *err = NULL;
	route rt;
	if (router_find(t->p.routes, domain, &rt, &err) != 0) {
		witness_fail(t, domain, err);
		return;
	}
	nclient_opts o = {
		.host = rt.host, .port = rt.port, .transport = rt.transport,
		.timeout_ms = timeout_ms,
		.pin_sign_pk = rt.pinned ? rt.pin : NULL,
		.expect_domain = domain,
	};
	nclient *c = NULL;
	if (nclient_connect(&o, &c, &err) != 0) {
		witness_fail(t, domain, err);
		return;
	}
	amp_log_head h, had, nu;
	int st;
	if (nlog_head(c, &h, NULL, &st, &err) != 0) {
		witness_fail(t, domain, err);
		goto out;
	}
	int f = store_log_alarmed(t->p.st, h.log);
	if (f != 0) {
		if (f < 0)
			witness_fail(t, domain, "store read failed");
		goto out;
	}
	f = store_witness_get(t->p.st, h.log, &had);
	if (f < 0) {
		witness_fail(t, domain, "store read failed");
		goto out;
	}
	nu = h;
	if (f == 1) {
		if (h.size < had.size) {
			alarm_raise(t, &had, &h, "the log shrank");
			goto out;
		}
		if (h.size == had.size && memcmp(h.root, had.root, 32) != 0) {
			alarm_raise(t, &had, &h,
				    "two signed heads of one size differ");
			goto out;
		}
		if (h.size > had.size) {
			int r = nlog_consistent(c, &had, h.size, &nu, &st, &err);
			if (r == NLOG_INCONSISTENT) {
				alarm_raise(t, &had, &nu, err);
				goto out;
			}
			if (r != 0) {
				witness_fail(t, domain, err);
				goto out;
			}
		}
	}
	if (store_witness_put(t->p.st, &nu) != 0) {
		witness_fail(t, domain, "store write failed");
		goto out;
	}
	uint64_t cotime = (uint64_t)time(NULL);
	uint8_t sig[64];
	if (amp_log_cosign(&nu, t->p.node->pub.did, cotime, t->p.node->sign_sk,
			   sig) != AMP_OK) {
		witness_fail(t, domain, "cannot cosign");
		goto out;
	}
	if (nclient_auth(c, t->p.node, &st, &err) != 0 ||
	    nlog_cosign(c, &nu, t->p.node->pub.did, cotime, sig, &st, &err) != 0) {
		witness_fail(t, domain, err);
		goto out;
	}
	pthread_mutex_lock(&t->lock);
	t->stats.cosigned++;
	pthread_mutex_unlock(&t->lock);
	log_msg(LOG_DEBUG, "msg=\"witness: cosigned\" log=%s size=%llu", nu.log,
		(unsigned long long)nu.size);
out:
	nclient_close(&c);
}

static void *witness_main(void *arg)
{
	tlog *t = arg;
	for (;;) {
		pthread_mutex_lock(&t->lock);
		unsigned wait_s = t->set.witness_s, timeout_ms = t->set.timeout_ms;
		size_t n = t->set.n_of;
		char **of = calloc(n + 1, sizeof(char *));
		for (size_t i = 0; of != NULL && i < n; i++)
			of[i] = strdup(t->set.of[i]);
		pthread_mutex_unlock(&t->lock);
		for (size_t i = 0; of != NULL && i < n; i++) {
			if (of[i] != NULL)
				witness_one(t, of[i], timeout_ms);
			free(of[i]);
		}
		free(of);
		if (!nap(t, wait_s, false))
			break;
	}
	return NULL;
}

/* ---------------------------------------------------------- lifecycle */

int tlog_start(const tlog_params *p, const cfg *conf, tlog **t_r,
	       const char **error_r)
{
	tlog *t = calloc(1, sizeof(*t));
	if (t == NULL || settings_read(conf, &t->set) != 0) {
		free(t);
		*error_r = "out of memory";
		return -1;
	}
	t->p = *p;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->lock, NULL);
	/* A head before anyone asks: also one of the empty log. */
	sign_once(t);
	t->signer_up = pthread_create(&t->signer, NULL, signer_main, t) == 0;
	t->witness_up = t->signer_up &&
			pthread_create(&t->witness, NULL, witness_main, t) == 0;
	if (!t->witness_up) {
		tlog_stop(&t);
		*error_r = "cannot start the transparency log threads";
		return -1;
	}
	*t_r = t;
	return 0;
}

void tlog_reconfigure(tlog *t, const cfg *conf)
{
	tlog_settings s;
	if (settings_read(conf, &s) != 0)
		return;
	pthread_mutex_lock(&t->lock);
	settings_free(&t->set);
	t->set = s;
	pthread_mutex_unlock(&t->lock);
}

void tlog_wake(tlog *t)
{
	pthread_mutex_lock(&t->lock);
	t->wake = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void tlog_stop(tlog **tp)
{
	tlog *t = *tp;
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (t->signer_up)
		pthread_join(t->signer, NULL);
	if (t->witness_up)
		pthread_join(t->witness, NULL);
	/* Leaves appended since the last head get one before we go. */
	sign_once(t);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	settings_free(&t->set);
	free(t);
	*tp = NULL;
}

void tlog_get_stats(tlog *t, tlog_stats *st)
{
	pthread_mutex_lock(&t->lock);
	*st = t->stats;
	pthread_mutex_unlock(&t->lock);
}
