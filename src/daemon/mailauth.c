/*
 * mailauth.c — see mailauth.h.
 *
 * A check is freed when four things have happened: its callback ran (or
 * it was cancelled), the prepare worker is done with it (uv_work_t), so
 * is the DID resolver's worker, and its timer handle is closed.  Its DNS
 * queries are always cancelled before the callback, so no DNS callback
 * can reach a finished check.
 *
 * AMP-DID-Signature: the resolver's worker reads only the node DIDs
 * copied into the check (did_q) and writes only the answers (did_pk,
 * did_rc, did_why); the set itself is touched on the loop alone, after
 * that worker has finished, or at the deadline (then the answers are
 * never read).  A node that cannot be resolved in time is temperror.
 */
#include "mailauth.h"

#include "authres.h"
#include "dkim-sign.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mailauth {
	uv_loop_t *loop;
	dns_resolver *dns;
	char id[AUTHRES_ID_MAX + 1];
	bool spf, dkim, dmarc, arc, did;
	mailauth_did_resolve *did_resolve;
	void *did_arg;
	unsigned timeout_ms;
	mailauth_check *head;
};

typedef struct keyarg {
	mailauth_check *c;
	size_t i;
} keyarg;

/* One ARC key query and its answer, kept until every one has come. */
typedef struct arckey {
	mailauth_check *c;
	size_t q;
	dns_query *dq;
	bool answered, failed;    /* failed: a DNS temporary failure */
	char **txt;               /* the records (malloc'd) */
	size_t *len, n;
} arckey;

struct mailauth_check {
	mailauth *ma;
	mailauth_check *prev, *next;
	mailauth_cb *cb;
	void *arg;
	const uint8_t *msg;
	size_t len;
	/* SPF */
	spf_eval *spf;
	dns_query *spf_q;
	bool spf_running;
	/* the worker: DKIM prepare and the From fields (it reads only c:
	 * mailauth_free may run while it works) */
	uv_work_t work;
	bool working, do_dkim, do_from, do_arc;
	dkim_verify_set *set;
	arc_verify_set *arcset;
	arckey *arckeys;          /* [n_arckeys]: arcset->nq when asked
				     (arc_verify_finish zeroes nq) */
	size_t n_arckeys;
	unsigned arc_pending;
	const char *dkim_err;
	dmarc_from from;
	/* DKIM keys */
	dns_query *key_q[DKIM_VERIFY_MAX];
	keyarg karg[DKIM_VERIFY_MAX];
	unsigned keys_pending;
	/* DMARC discovery */
	char names[2][DMARC_NAME_MAX + 1];
	int n_names, name_i;
	dns_query *dmarc_q;
	bool dmarc_running;
	dmarc_found found;
	dmarc_record rec;
	/* AMP-DID-Signature: prepared on the worker, nodes resolved on a
	 * second one (did_working) */
	bool do_did;
	didsig_set *didset;
	const char *did_err;      /* prepare refused the message */
	uv_work_t did_work;
	bool did_working;
	mailauth_did_resolve *did_resolve;
	void *did_arg;
	bool did_ask[DIDSIG_VERIFY_MAX];
	char did_q[DIDSIG_VERIFY_MAX][DIDSIG_DID_MAX + 1];
	uint8_t did_pk[DIDSIG_VERIFY_MAX][32];
	int did_rc[DIDSIG_VERIFY_MAX];
	const char *did_why[DIDSIG_VERIFY_MAX];
	uv_timer_t timer;
	bool starting;            /* inside mailauth_start: no completion */
	bool done, cancelled, timer_closed;
	mailauth_result res;
};

static const char *dkim_alg_name(dkim_verify_alg a)
{
	return a == DKIM_VERIFY_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

int mailauth_new(uv_loop_t *loop, const mailauth_settings *s, mailauth **ma_r,
		 char *err, size_t err_size)
{
	*ma_r = NULL;
	if (s->authserv_id == NULL || s->authserv_id[0] == '\0' ||
	    strlen(s->authserv_id) > AUTHRES_ID_MAX) {
		snprintf(err, err_size, "authserv-id: empty or too long");
		return -1;
	}
	mailauth *ma = calloc(1, sizeof(*ma));
	if (ma == NULL)
		abort();
	ma->loop = loop;
	snprintf(ma->id, sizeof(ma->id), "%s", s->authserv_id);
	ma->spf = s->spf;
	ma->dkim = s->dkim;
	ma->dmarc = s->dmarc;
	ma->arc = s->arc;
	ma->did = s->did;
	ma->did_resolve = s->did_resolve;
	ma->did_arg = s->did_arg;
	ma->timeout_ms = s->timeout_ms != 0 ? s->timeout_ms
					    : MAILAUTH_TIMEOUT_DEFAULT_MS;
	if ((ma->spf || ma->dkim || ma->dmarc || ma->arc) &&
	    dns_new(loop, &s->dns, &ma->dns, err, err_size) != 0) {
		free(ma);
		return -1;
	}
	*ma_r = ma;
	return 0;
}

/* ------------------------------------------------------------- freeing */

static void arckeys_free(mailauth_check *c)
{
	for (size_t q = 0; c->arckeys != NULL && q < c->n_arckeys; q++) {
		for (size_t i = 0; i < c->arckeys[q].n; i++)
			free(c->arckeys[q].txt[i]);
		free(c->arckeys[q].txt);
		free(c->arckeys[q].len);
	}
	free(c->arckeys);
	c->arckeys = NULL;
}

static void check_free(mailauth_check *c)
{
	spf_free(&c->spf);
	dkim_verify_set_free(&c->set);
	arckeys_free(c);
	arc_verify_set_free(&c->arcset);
	didsig_set_free(&c->didset);
	sodium_memzero(c->did_pk, sizeof(c->did_pk));
	free(c);
}

static void maybe_free(mailauth_check *c)
{
	if (c->done && !c->working && !c->did_working && c->timer_closed)
		check_free(c);
}

static void timer_closed(uv_handle_t *h)
{
	mailauth_check *c = h->data;
	c->timer_closed = true;
	maybe_free(c);
}

static void unlink_check(mailauth_check *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->ma->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Every DNS query of c cancelled (no callback will come). */
static void cancel_queries(mailauth_check *c)
{
	dns_cancel(c->spf_q);
	c->spf_q = NULL;
	for (size_t i = 0; i < DKIM_VERIFY_MAX; i++) {
		dns_cancel(c->key_q[i]);
		c->key_q[i] = NULL;
	}
	dns_cancel(c->dmarc_q);
	c->dmarc_q = NULL;
	for (size_t q = 0; c->arckeys != NULL && q < c->n_arckeys; q++) {
		dns_cancel(c->arckeys[q].dq);
		c->arckeys[q].dq = NULL;
	}
}

/* ----------------------------------------------------------- the result */

static void fill_dkim(mailauth_check *c)
{
	mailauth_result *r = &c->res;
	if (c->set == NULL)
		return;
	r->dkim_found = c->set->found;
	r->n_dkim = c->set->n;
	for (size_t i = 0; i < c->set->n; i++) {
		const dkim_verify_sig *s = &c->set->sig[i];
		mailauth_dkim *o = &r->dkim[i];
		o->status = s->result.status;
		o->reason = s->result.reason;
		o->partial = s->result.partial;
		o->testing = s->result.testing;
		snprintf(o->d, sizeof(o->d), "%s", s->d);
		snprintf(o->s, sizeof(o->s), "%s", s->s);
		snprintf(o->i_domain, sizeof(o->i_domain), "%s", s->i_domain);
		o->a = dkim_alg_name(s->alg);
		o->b[0] = '\0';
		if (s->b_len >= 6)
			sodium_bin2base64(o->b, sizeof(o->b), s->b, 6,
					  sodium_base64_VARIANT_ORIGINAL);
	}
}

static dmarc_spf dmarc_spf_of(spf_result r)
{
	switch (r) {
	case SPF_RESULT_NONE:
		return DMARC_SPF_NONE;
	case SPF_RESULT_NEUTRAL:
		return DMARC_SPF_NEUTRAL;
	case SPF_RESULT_PASS:
		return DMARC_SPF_PASS;
	case SPF_RESULT_FAIL:
		return DMARC_SPF_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return DMARC_SPF_SOFTFAIL;
	case SPF_RESULT_TEMPERROR:
		return DMARC_SPF_TEMPERROR;
	case SPF_RESULT_PERMERROR:
		return DMARC_SPF_PERMERROR;
	}
	return DMARC_SPF_NONE;
}

/* The RFC 8601 result of one signature: dkim_status_name's, except that
 * a key never answered is temperror and an unchecked one is left out. */
static const char *dkim_ar_name(const mailauth_dkim *d)
{
	if (d->status == DKIM_NOT_CHECKED)
		return NULL;
	return d->status == DKIM_PENDING ? "temperror"
					 : dkim_status_name(d->status);
}

static void build_authres(mailauth_check *c)
{
	mailauth_result *r = &c->res;
	authres_dkim ad[AUTHRES_DKIM_MAX];
	size_t nd = 0;
	authres_results ar = { 0 };
	if (r->spf_checked) {
		ar.spf = spf_result_name(r->spf);
		if (r->spf_helo)
			ar.spf_helo = r->spf_domain[0] != '\0' ? r->spf_domain : NULL;
		else
			ar.spf_mailfrom = r->spf_domain[0] != '\0' ? r->spf_domain
								   : NULL;
	}
	if (r->dkim_checked) {
		for (size_t i = 0; i < r->n_dkim && nd < AUTHRES_DKIM_MAX; i++) {
			const mailauth_dkim *d = &r->dkim[i];
			const char *name = dkim_ar_name(d);
			if (name == NULL)
				continue;
			bool named = d->d[0] != '\0' && dkim_name_ok(d->d);
			ad[nd++] = (authres_dkim){
				.result = name,
				.d = named ? d->d : NULL,
				.s = named && dkim_name_ok(d->s) ? d->s : NULL,
				.a = named ? d->a : NULL,
				.b = named && d->b[0] != '\0' ? d->b : NULL,
			};
		}
		if (nd == 0)
			ad[nd++] = (authres_dkim){ .result = "none" };
		ar.dkim = ad;
		ar.n_dkim = nd;
	}
	if (r->arc_checked && r->arc != ARC_CV_TEMPERROR)
		ar.arc = arc_cv_name(r->arc); /* RFC 8617 §7: none pass fail */
	if (r->did_checked && r->did != DIDSIG_NONE) {
		/* left out for a message without the field: legacy mail
		 * nearly never has one */
		ar.amp_did = didsig_status_name(r->did);
		ar.amp_did_d = r->did_sender[0] != '\0' ? r->did_sender : NULL;
	}
	if (r->dmarc_checked) {
		ar.dmarc = dmarc_result_name(r->dmarc.result);
		ar.dmarc_from = r->from.domain[0] != '\0' &&
						dkim_name_ok(r->from.domain)
					? r->from.domain
					: NULL;
	}
	const char *why;
	if (authres_build(c->ma->id, &ar, r->authres, sizeof(r->authres),
			  &r->authres_len, &why) != 0) {
		/* cannot happen with the names above; say so rather than
		 * leave a half field */
		log_msg(LOG_ERR, "msg=\"mailauth: cannot build "
			"Authentication-Results\" error=\"%s\"", why);
		r->authres[0] = '\0';
		r->authres_len = 0;
	}
}

/* The ARC verdict from the answers there are (one missing: temperror). */
static void finish_arc(mailauth_check *c)
{
	mailauth_result *r = &c->res;
	if (c->working || c->arcset == NULL) { /* the worker owns arcset */
		r->arc = ARC_CV_TEMPERROR;
		snprintf(r->arc_reason, sizeof(r->arc_reason), "%s",
			 c->working ? "the check ran out of time"
				    : "the message could not be read");
		return;
	}
	arc_key_answer *ans = calloc(c->n_arckeys + 1, sizeof(*ans));
	if (ans == NULL)
		abort();
	for (size_t q = 0; q < c->n_arckeys; q++) {
		static const uint8_t *const no_record[1] = { NULL };
		static const size_t no_len[1] = { 0 };
		const arckey *k = &c->arckeys[q];
		bool have = k->answered && !k->failed;
		ans[q] = (arc_key_answer){
			.txt = !have ? NULL
			       : k->n > 0 ? (const uint8_t *const *)k->txt
					  : no_record,
			.len = k->n > 0 ? k->len : no_len,
			.n = have ? k->n : 0,
		};
	}
	arc_verify_result ar;
	arc_verify_finish(c->arcset, ans, &ar);
	free(ans);
	r->arc = ar.cv;
	r->arc_instances = ar.instances;
	snprintf(r->arc_reason, sizeof(r->arc_reason), "%s", ar.reason);
	if (ar.cv == ARC_CV_PASS && ar.instances > 0)
		snprintf(r->arc_sealer, sizeof(r->arc_sealer), "%s",
			 ar.sealer[ar.instances]);
}

/* A field whose node is definitely not a signer of its domain. */
static void did_refuse(didsig_set *set, size_t i, const char *why)
{
	didsig_sig *s = &set->sig[i];
	s->need_key = false;
	s->result.status = DIDSIG_FAIL;
	s->result.reason = why;
	s->result.crypto_ok = false;
}

/* The DID signature verdict from what there is: a field still waiting
 * for its node's key is temperror. */
static void finish_did(mailauth_check *c)
{
	mailauth_result *r = &c->res;
	const char *late = c->working || c->did_working
				   ? "the check ran out of time"
				   : "the signing node was not resolved";
	if (c->working) { /* the worker still owns didset */
		r->did = DIDSIG_TEMPERROR;
		snprintf(r->did_reason, sizeof(r->did_reason), "%s", late);
		return;
	}
	if (c->didset == NULL) {
		if (c->did_err != NULL) {
			r->did = DIDSIG_PERMERROR;
			snprintf(r->did_reason, sizeof(r->did_reason), "%s",
				 c->did_err);
		} else {
			r->did = DIDSIG_NONE;
		}
		return;
	}
	uint64_t now = (uint64_t)time(NULL);
	for (size_t i = 0; i < c->didset->n; i++) {
		if (!c->didset->sig[i].need_key)
			continue;
		didsig_result dr;
		didsig_verify_finish(c->didset, i, NULL, now, &dr);
		c->didset->sig[i].result.reason = late;
	}
	size_t at = 0;
	r->did_found = c->didset->found;
	r->did = didsig_verify_verdict(c->didset, &at);
	if (r->did == DIDSIG_NONE)
		return;
	const didsig_sig *s = &c->didset->sig[at];
	snprintf(r->did_reason, sizeof(r->did_reason), "%s", s->result.reason);
	snprintf(r->did_sender, sizeof(r->did_sender), "%s", s->sender);
	snprintf(r->did_node, sizeof(r->did_node), "%s", s->node);
}

/* Everything answered, or the time is up: the verdict, the callback. */
static void complete(mailauth_check *c)
{
	if (c->done)
		return;
	c->done = true;
	cancel_queries(c);
	unlink_check(c);
	uv_timer_stop(&c->timer);
	mailauth_result *r = &c->res;
	if (c->spf_running) { /* out of time */
		r->spf = SPF_RESULT_TEMPERROR;
		r->spf_reason = "the check ran out of time";
		c->spf_running = false;
	}
	/* While the worker runs it owns set, arcset and from: none of them
	 * is read, and every result it would have given is temperror. */
	if (c->working) {
		r->dkim_error = "the check ran out of time";
	} else if (c->set != NULL) {
		for (size_t i = 0; i < c->set->n; i++) {
			if (c->set->sig[i].result.status != DKIM_PENDING)
				continue;
			dkim_verify_result vr;
			dkim_verify_finish(c->set, i, NULL, NULL, 0, &vr);
		}
		fill_dkim(c);
	}
	if (r->arc_checked)
		finish_arc(c); /* temperror while the worker runs */
	if (r->did_checked)
		finish_did(c);
	if (r->dmarc_checked && c->working) {
		/* the From fields were never read: no verdict, and never a
		 * refusal because of our own slowness */
		r->dmarc.result = DMARC_TEMPERROR;
		r->dmarc.reason = "the check ran out of time";
	} else if (r->dmarc_checked && c->from.fields == 0) {
		/* RFC 7489 §6.6.1 leaves a message without From to local
		 * policy: no domain, so no DMARC (several From fields, or a
		 * From of several mailboxes, do fail) */
		r->dmarc.result = DMARC_NONE;
		r->dmarc.reason = "no From field";
	} else if (r->dmarc_checked) {
		if (c->dmarc_running) {
			c->found = DMARC_FOUND_TEMPERROR;
			c->dmarc_running = false;
		}
		dmarc_dkim dd[DMARC_DKIM_MAX];
		size_t nd = 0;
		for (size_t i = 0; i < r->n_dkim && nd < DMARC_DKIM_MAX; i++)
			if (r->dkim[i].status == DKIM_PASS)
				dd[nd++] = (dmarc_dkim){ .d = r->dkim[i].d,
							 .partial = r->dkim[i].partial };
		dmarc_input in = {
			.from_fields = c->from.fields,
			.from_mailboxes = c->from.mailboxes,
			.from_domain = c->from.domain,
			.spf = r->spf_checked ? dmarc_spf_of(r->spf) : DMARC_SPF_NONE,
			.spf_domain = r->spf_checked && r->spf_domain[0] != '\0'
					      ? r->spf_domain
					      : NULL,
			.dkim = dd,
			.n_dkim = nd,
			.found = c->found,
			.rec = &c->rec,
			.random = randombytes_uniform(100),
		};
		r->from = c->from;
		dmarc_evaluate(NULL, &in, &r->dmarc);
		if (c->found == DMARC_FOUND_FROM || c->found == DMARC_FOUND_ORG)
			snprintf(r->dmarc_domain, sizeof(r->dmarc_domain), "%s",
				 c->names[c->name_i] + 7);
	}
	build_authres(c);
	if (!c->cancelled)
		c->cb(c->arg, r);
	uv_close((uv_handle_t *)&c->timer, timer_closed);
}

static void maybe_complete(mailauth_check *c)
{
	if (!c->done && !c->starting && !c->spf_running && !c->working &&
	    !c->did_working && c->keys_pending == 0 && c->arc_pending == 0 &&
	    !c->dmarc_running)
		complete(c);
}

/* Everything was known within mailauth_start: finish on the loop. */
static void on_soon(uv_timer_t *t)
{
	complete(t->data);
}

static void on_timeout(uv_timer_t *t)
{
	mailauth_check *c = t->data;
	c->res.timed_out = true;
	log_msg(LOG_WARN, "msg=\"mailauth: checks ran out of time; "
		"unanswered ones count as temperror\" timeout_ms=%u",
		c->ma->timeout_ms);
	complete(c);
}

/* ------------------------------------------------------------------ SPF */

static spf_dns_status spf_status_of(dns_status st, const char *why)
{
	switch (st) {
	case DNS_OK:
		return SPF_DNS_OK;
	case DNS_NODATA:
		return SPF_DNS_NODATA;
	case DNS_NXDOMAIN:
		return SPF_DNS_NXDOMAIN;
	case DNS_TEMPFAIL:
	case DNS_BOGUS:
		break;
	}
	return why != NULL && strcmp(why, "timeout") == 0 ? SPF_DNS_TIMEOUT
							  : SPF_DNS_SERVFAIL;
}

static void spf_run(mailauth_check *c);

/* At most this many records of one answer go to the SPF evaluator
 * (RFC 7208's own limits are lower: 10 names per mx or ptr). */
#define SPF_RR_MAX 64u

/* The answer to the query the evaluator waits for; then on with it. */
static void spf_resume(mailauth_check *c, dns_status st, const char *why,
		       const spf_rr *rr, size_t n)
{
	c->spf_q = NULL;
	if (spf_answer(c->spf, spf_status_of(st, why), rr, n) != 0)
		abort(); /* a query is always waiting here */
	spf_run(c);
}

static void spf_txt_done(void *arg, const dns_txt_result *r)
{
	spf_rr rr[SPF_RR_MAX];
	size_t n = 0;
	for (size_t i = 0; r->status == DNS_OK && i < r->n && n < SPF_RR_MAX; i++)
		rr[n++] = (spf_rr){ (const uint8_t *)r->txt[i], strlen(r->txt[i]) };
	spf_resume(arg, r->status, r->why, rr, n);
}

static void spf_rr_done(void *arg, const dns_rr_result *r)
{
	spf_rr rr[SPF_RR_MAX];
	size_t n = 0;
	for (size_t i = 0; r->status == DNS_OK && i < r->n && n < SPF_RR_MAX; i++)
		rr[n++] = (spf_rr){ r->data[i], r->len[i] };
	spf_resume(arg, r->status, r->why, rr, n);
}

static void spf_mx_done(void *arg, const dns_mx_result *r)
{
	spf_rr rr[SPF_RR_MAX];
	size_t n = 0;
	if (r->status == DNS_OK && r->null_mx)
		rr[n++] = (spf_rr){ (const uint8_t *)".", 1 };
	for (size_t i = 0; r->status == DNS_OK && !r->null_mx && i < r->n &&
			   n < SPF_RR_MAX; i++)
		rr[n++] = (spf_rr){ (const uint8_t *)r->mx[i].host,
				    strlen(r->mx[i].host) };
	spf_resume(arg, r->status, r->why, rr, n);
}

static void spf_finished(mailauth_check *c)
{
	const spf_outcome *o = spf_outcome_get(c->spf);
	c->spf_running = false;
	c->res.spf = o->result;
	c->res.spf_reason = o->reason;
	maybe_complete(c);
}

/* Step the evaluator until it waits for DNS or is done. */
static void spf_run(mailauth_check *c)
{
	spf_query q;
	while (spf_step(c->spf, &q) == SPF_NEED_DNS) {
		int rc;
		switch (q.type) {
		case SPF_Q_TXT:
			rc = dns_query_txt(c->ma->dns, q.name, spf_txt_done, c,
					   &c->spf_q);
			break;
		case SPF_Q_MX:
			rc = dns_query_mx(c->ma->dns, q.name, spf_mx_done, c,
					  &c->spf_q);
			break;
		case SPF_Q_A:
		case SPF_Q_AAAA:
		case SPF_Q_PTR:
			rc = dns_query_rr(c->ma->dns,
					  q.type == SPF_Q_A ? DNS_RR_A
					  : q.type == SPF_Q_AAAA ? DNS_RR_AAAA
								 : DNS_RR_PTR,
					  q.name, spf_rr_done, c, &c->spf_q);
			break;
		default:
			rc = -1;
			break;
		}
		if (rc == 0)
			return; /* its callback continues */
		/* A name src/dns does not ask about (spf.h allows bytes that
		 * are not host-name bytes): it cannot be a host, so it has
		 * no records. */
		if (spf_answer(c->spf, SPF_DNS_NXDOMAIN, NULL, 0) != 0)
			abort();
	}
	spf_finished(c);
}

/* The address of MAIL FROM: local part and domain (the last '@'). */
static void split_addr(const char *a, char *local, size_t lsize, char *dom,
		       size_t dsize)
{
	const char *at = strrchr(a, '@');
	local[0] = dom[0] = '\0';
	if (at == NULL)
		return;
	size_t ll = (size_t)(at - a);
	if (ll < lsize) {
		memcpy(local, a, ll);
		local[ll] = '\0';
	}
	snprintf(dom, dsize, "%s", at + 1);
}

static void spf_start(mailauth_check *c, const mailauth_input *in)
{
	mailauth_result *r = &c->res;
	spf_ip ip = { 0 };
	char local[SPF_LOCAL_MAX + 1], dom[SPF_NAME_MAX + 2];
	const char *err = NULL;
	r->spf_checked = true;
	if (in->client->ss_family == AF_INET) {
		const struct sockaddr_in *s4 =
			(const struct sockaddr_in *)in->client;
		ip.family = AF_INET;
		memcpy(ip.addr, &s4->sin_addr, 4);
	} else if (in->client->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
			(const struct sockaddr_in6 *)in->client;
		ip.family = AF_INET6;
		memcpy(ip.addr, &s6->sin6_addr, 16);
	}
	if (in->mail_from[0] != '\0') {
		split_addr(in->mail_from, local, sizeof(local), dom, sizeof(dom));
	} else {
		r->spf_helo = true;
		snprintf(local, sizeof(local), "postmaster");
		snprintf(dom, sizeof(dom), "%s", in->helo);
	}
	size_t dl = strlen(dom); /* a longer name has no SPF: none */
	if (dl < sizeof(r->spf_domain))
		memcpy(r->spf_domain, dom, dl + 1);
	for (char *p = r->spf_domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	c->spf = spf_new(&ip, dom, local, in->helo, c->ma->id,
			 (uint64_t)time(NULL), NULL, &err);
	if (c->spf == NULL) {
		/* out of bounds (an overlong local part): nothing to check */
		r->spf = SPF_RESULT_NONE;
		r->spf_reason = err;
		return;
	}
	c->spf_running = true;
	spf_run(c);
}

/* ----------------------------------------------------------- DKIM, DMARC */

static void key_done(void *arg, const dns_txt_result *r)
{
	keyarg *k = arg;
	mailauth_check *c = k->c;
	dkim_verify_result vr;
	c->key_q[k->i] = NULL;
	if (r->status == DNS_TEMPFAIL || r->status == DNS_BOGUS) {
		dkim_verify_finish(c->set, k->i, NULL, NULL, 0, &vr);
	} else {
		const uint8_t *txt[DKIM_VERIFY_MAX_TXT];
		size_t len[DKIM_VERIFY_MAX_TXT], n = 0;
		for (size_t i = 0; r->status == DNS_OK && i < r->n &&
				   n < DKIM_VERIFY_MAX_TXT; i++) {
			txt[n] = (const uint8_t *)r->txt[i];
			len[n++] = strlen(r->txt[i]);
		}
		dkim_verify_finish(c->set, k->i, txt, len, n, &vr);
	}
	c->keys_pending--;
	maybe_complete(c);
}

static void arckey_done(void *arg, const dns_txt_result *r)
{
	arckey *k = arg;
	mailauth_check *c = k->c;
	k->dq = NULL;
	k->answered = true;
	if (r->status == DNS_TEMPFAIL || r->status == DNS_BOGUS) {
		k->failed = true;
	} else if (r->status == DNS_OK) {
		size_t n = r->n < DKIM_VERIFY_MAX_TXT ? r->n : DKIM_VERIFY_MAX_TXT;
		k->txt = calloc(n, sizeof(*k->txt));
		k->len = calloc(n, sizeof(*k->len));
		if (k->txt == NULL || k->len == NULL)
			abort();
		for (size_t i = 0; i < n; i++) {
			if ((k->txt[i] = strdup(r->txt[i])) == NULL)
				abort();
			k->len[i] = strlen(r->txt[i]);
		}
		k->n = n;
	}
	c->arc_pending--;
	maybe_complete(c);
}

/* The ARC keys: all asked at once, judged together at the end. */
static void arc_ask(mailauth_check *c)
{
	if (c->arcset == NULL || c->arcset->nq == 0)
		return;
	c->arckeys = calloc(c->arcset->nq, sizeof(*c->arckeys));
	if (c->arckeys == NULL)
		abort();
	c->n_arckeys = c->arcset->nq;
	for (size_t q = 0; q < c->arcset->nq; q++) {
		arckey *k = &c->arckeys[q];
		k->c = c;
		k->q = q;
		if (dns_query_txt(c->ma->dns, c->arcset->query[q], arckey_done, k,
				  &k->dq) == 0)
			c->arc_pending++;
		else
			k->answered = true; /* a name no key can be at: none */
	}
}

static void dmarc_ask(mailauth_check *c);

static void dmarc_done(void *arg, const dns_txt_result *r)
{
	mailauth_check *c = arg;
	const char *why;
	c->dmarc_q = NULL;
	bool next = false;
	switch (r->status) {
	case DNS_OK:
		switch (dmarc_txt_select(r->txt, r->n, &c->rec, &why)) {
		case DMARC_TXT_OK:
			c->found = c->name_i == 0 ? DMARC_FOUND_FROM
						  : DMARC_FOUND_ORG;
			break;
		case DMARC_TXT_NONE:
			next = true;
			break;
		case DMARC_TXT_INVALID:
			c->found = DMARC_FOUND_PERMERROR;
			break;
		}
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		next = true;
		break;
	case DNS_TEMPFAIL:
	case DNS_BOGUS:
		c->found = DMARC_FOUND_TEMPERROR;
		break;
	}
	if (next && c->name_i + 1 < c->n_names) {
		c->name_i++;
		dmarc_ask(c);
		return;
	}
	if (next)
		c->found = DMARC_FOUND_NONE;
	c->dmarc_running = false;
	maybe_complete(c);
}

static void dmarc_ask(mailauth_check *c)
{
	c->dmarc_running = true;
	while (dns_query_txt(c->ma->dns, c->names[c->name_i], dmarc_done, c,
			     &c->dmarc_q) != 0) {
		/* a name src/dns refuses has no record */
		if (c->name_i + 1 >= c->n_names) {
			c->found = DMARC_FOUND_NONE;
			c->dmarc_running = false;
			return;
		}
		c->name_i++;
	}
}

static void prepare_work(uv_work_t *w)
{
	mailauth_check *c = w->data;
	if (c->do_dkim) {
		dkim_verify_limits lim = { .now = (uint64_t)time(NULL) };
		if (dkim_verify_prepare(c->msg, c->len, &lim, &c->set,
					&c->dkim_err) != 0)
			c->set = NULL;
	}
	if (c->do_arc) {
		const char *why;
		arc_verify_limits alim = { 0 };
		if (arc_verify_prepare(c->msg, c->len, &alim, &c->arcset, &why) != 0)
			c->arcset = NULL;
	}
	if (c->do_from)
		dmarc_from_get(c->msg, c->len, &c->from);
	if (c->do_did &&
	    didsig_verify_prepare(c->msg, c->len, &c->didset, &c->did_err) != 0)
		c->didset = NULL;
}

/* ------------------------------------------------------ DID signatures */

/* Worker: every node asked, one after the other (the same node twice is
 * asked once).  Reads did_q and did_ask, writes the answers only. */
static void did_resolve_work(uv_work_t *w)
{
	mailauth_check *c = w->data;
	for (size_t i = 0; i < DIDSIG_VERIFY_MAX; i++) {
		if (!c->did_ask[i])
			continue;
		size_t j;
		for (j = 0; j < i; j++)
			if (c->did_ask[j] && strcmp(c->did_q[j], c->did_q[i]) == 0)
				break;
		if (j < i) {
			c->did_rc[i] = c->did_rc[j];
			c->did_why[i] = c->did_why[j];
			memcpy(c->did_pk[i], c->did_pk[j], 32);
			continue;
		}
		c->did_why[i] = NULL;
		c->did_rc[i] = c->did_resolve(c->did_arg, c->did_q[i],
					      c->did_pk[i], &c->did_why[i]);
		if (c->did_why[i] == NULL)
			c->did_why[i] = c->did_rc[i] == 0 ? "not a signing node"
							  : "not resolved";
	}
}

/* Loop: the answers, unless the check has already ended. */
static void did_resolve_after(uv_work_t *w, int status)
{
	mailauth_check *c = w->data;
	(void)status;
	c->did_working = false;
	if (c->done) {
		maybe_free(c);
		return;
	}
	uint64_t now = (uint64_t)time(NULL);
	for (size_t i = 0; i < c->didset->n; i++) {
		if (!c->did_ask[i])
			continue;
		didsig_result dr;
		if (c->did_rc[i] == 1) {
			didsig_verify_finish(c->didset, i, c->did_pk[i], now, &dr);
		} else if (c->did_rc[i] == 0) {
			did_refuse(c->didset, i, c->did_why[i]);
		} else {
			didsig_verify_finish(c->didset, i, NULL, now, &dr);
			c->didset->sig[i].result.reason = c->did_why[i];
		}
	}
	maybe_complete(c);
}

/* After prepare: the fields that need a key go to the resolver. */
static void did_ask(mailauth_check *c)
{
	size_t n = 0;
	for (size_t i = 0; c->didset != NULL && i < c->didset->n; i++) {
		if (!c->didset->sig[i].need_key)
			continue;
		if (c->did_resolve == NULL)
			break; /* finish_did: temperror */
		c->did_ask[i] = true;
		snprintf(c->did_q[i], sizeof(c->did_q[i]), "%s",
			 c->didset->sig[i].node);
		n++;
	}
	if (n == 0)
		return;
	c->did_working = true;
	c->did_work.data = c;
	if (uv_queue_work(c->ma->loop, &c->did_work, did_resolve_work,
			  did_resolve_after) != 0)
		abort();
}

static void prepare_after(uv_work_t *w, int status)
{
	mailauth_check *c = w->data;
	(void)status;
	c->working = false;
	if (c->done) {
		maybe_free(c);
		return;
	}
	mailauth_result *r = &c->res;
	r->dkim_error = c->dkim_err;
	for (size_t i = 0; c->set != NULL && i < c->set->n; i++) {
		if (!c->set->sig[i].need_key)
			continue;
		c->karg[i] = (keyarg){ c, i };
		if (dns_query_txt(c->ma->dns, c->set->sig[i].query, key_done,
				  &c->karg[i], &c->key_q[i]) == 0) {
			c->keys_pending++;
		} else { /* a name src/dns refuses: no key can be there */
			static const uint8_t *const none[1] = { NULL };
			static const size_t none_len[1] = { 0 };
			dkim_verify_result vr;
			dkim_verify_finish(c->set, i, none, none_len, 0, &vr);
		}
	}
	if (r->arc_checked)
		arc_ask(c);
	if (r->did_checked)
		did_ask(c);
	if (r->dmarc_checked) {
		const char *why;
		c->n_names = c->from.domain[0] != '\0'
				     ? dmarc_query_names(NULL, c->from.domain,
							 c->names, &why)
				     : -1;
		if (c->n_names > 0)
			dmarc_ask(c);
		else
			c->found = DMARC_FOUND_NONE; /* evaluate says why */
	}
	maybe_complete(c);
}

/* ------------------------------------------------------------ the check */

mailauth_check *mailauth_start(mailauth *ma, const mailauth_input *in,
			       mailauth_cb *cb, void *arg)
{
	mailauth_check *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->ma = ma;
	c->cb = cb;
	c->arg = arg;
	c->msg = in->msg;
	c->len = in->len;
	c->res.dkim_checked = ma->dkim;
	c->res.dmarc_checked = ma->dmarc;
	c->res.arc_checked = ma->arc;
	c->res.did_checked = ma->did;
	c->did_resolve = ma->did_resolve;
	c->did_arg = ma->did_arg;
	c->next = ma->head;
	if (ma->head != NULL)
		ma->head->prev = c;
	ma->head = c;
	if (uv_timer_init(ma->loop, &c->timer) != 0)
		abort();
	c->timer.data = c;
	if (uv_timer_start(&c->timer, on_timeout, ma->timeout_ms, 0) != 0)
		abort();
	c->starting = true;
	if (ma->spf)
		spf_start(c, in);
	if (ma->dkim || ma->dmarc || ma->arc || ma->did) {
		c->working = true;
		c->do_dkim = ma->dkim;
		c->do_from = ma->dmarc;
		c->do_arc = ma->arc;
		c->do_did = ma->did;
		c->work.data = c;
		if (uv_queue_work(ma->loop, &c->work, prepare_work,
				  prepare_after) != 0)
			abort();
	}
	c->starting = false;
	/* The callback never runs inside mailauth_start: when everything
	 * is already known, a timer of 0 ms finishes on the loop. */
	if (!c->working && !c->spf_running &&
	    uv_timer_start(&c->timer, on_soon, 0, 0) != 0)
		abort();
	return c;
}

void mailauth_cancel(mailauth_check *c)
{
	if (c == NULL || c->done)
		return;
	c->cancelled = true;
	complete(c);
}

void mailauth_stop(mailauth *ma)
{
	while (ma != NULL && ma->head != NULL) {
		ma->head->res.timed_out = true;
		complete(ma->head);
	}
}

void mailauth_free(mailauth **map)
{
	mailauth *ma = *map;
	if (ma == NULL)
		return;
	*map = NULL;
	while (ma->head != NULL)
		mailauth_cancel(ma->head);
	dns_free(&ma->dns);
	free(ma);
}

void mailauth_summary(const mailauth_result *r, char *out, size_t size)
{
	size_t o = 0;
	int n;
	out[0] = '\0';
#define PUT(...)                                                             \
	do {                                                                 \
		n = snprintf(out + o, size - o, __VA_ARGS__);                \
		if (n < 0 || (size_t)n >= size - o)                          \
			return;                                              \
		o += (size_t)n;                                              \
	} while (0)
	if (r->spf_checked)
		PUT("spf=%s", spf_result_name(r->spf));
	if (r->dkim_checked) {
		if (r->n_dkim == 0)
			PUT("%sdkim=none", o > 0 ? " " : "");
		for (size_t i = 0; i < r->n_dkim; i++) {
			const char *nm = dkim_status_name(r->dkim[i].status);
			PUT("%sdkim=%s:%s", o > 0 ? " " : "", nm,
			    r->dkim[i].d[0] != '\0' ? r->dkim[i].d : "?");
		}
	}
	if (r->arc_checked)
		PUT("%sarc=%s", o > 0 ? " " : "", arc_cv_name(r->arc));
	if (r->dmarc_checked)
		PUT("%sdmarc=%s", o > 0 ? " " : "",
		    dmarc_result_name(r->dmarc.result));
	if (r->did_checked && r->did != DIDSIG_NONE)
		PUT("%samp-did=%s:%s", o > 0 ? " " : "",
		    didsig_status_name(r->did),
		    r->did_sender[0] != '\0' ? r->did_sender : "?");
	if (r->timed_out)
		PUT(" (timed out)");
#undef PUT
}
