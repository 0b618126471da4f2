/*
 * mtasts-fetch.c — see mtasts-fetch.h.
 *
 * A request joins the job of its domain (one job per domain at a time,
 * in f->jobs until it is answered).  A job: TXT query (S_TXT), then, when
 * a fetch is needed, the address query for mta-sts.DOMAIN (S_ADDR), a
 * place in the fetch queue (S_QUEUED) and the transfer on the thread pool
 * (S_WORK).  The pool thread runs libcurl, parses the policy and writes
 * it to the database (under db_lock); everything else, the memory cache
 * included, belongs to the loop thread.
 *
 * Lifetime: every entry from libuv (DNS callbacks, after_work) holds
 * f->busy while it runs, so a callback may free the fetcher: it is only
 * marked closing, and destroyed once nothing runs and no transfer is on
 * the pool (a transfer's job is then an orphan, freed by after_work).
 */
#include "mtasts-fetch.h"

#include "log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BUCKETS 4096u
#define ADDRS_MAX 8u                 /* addresses of mta-sts.DOMAIN given to curl */
#define HOST_MAX (MTASTS_FETCH_DOMAIN_MAX + 8u)   /* "mta-sts." + domain */
#define RESOLVE_MAX (HOST_MAX + 8u + ADDRS_MAX * (INET6_ADDRSTRLEN + 3u))
#define URL_MAX (HOST_MAX + 64u)
#define PEER_TEXT_MAX 160u           /* bytes of a Location, Content-Type,
					curl error shown in `why` */

typedef struct entry {
	struct entry *next;
	char domain[MTASTS_FETCH_DOMAIN_MAX + 1];
	mtasts_policy *p;            /* NULL: only a failed fetch remembered */
	uint64_t retry_after;        /* no fetch before (after a failure) */
	char fail_why[MTASTS_FETCH_WHY_MAX];
} entry;

typedef enum job_step { S_TXT, S_ADDR, S_QUEUED, S_WORK } job_step;

typedef struct job {
	struct job *next;            /* f->jobs */
	struct job *qnext;           /* f->qhead: waiting for a fetch slot */
	mtasts_fetcher *f;
	job_step step;
	bool orphan;                 /* freed while on the pool */
	char domain[MTASTS_FETCH_DOMAIN_MAX + 1];
	char id[MTASTS_ID_MAX + 1];  /* of the TXT record */
	dns_query *q;
	mtasts_fetch_req *reqs;
	uv_work_t w;
	char resolve[RESOLVE_MAX];   /* "mta-sts.D:PORT:ADDR[,ADDR]" */
	mtasts_policy *newp;         /* the transfer's result, or NULL */
	char why[MTASTS_FETCH_WHY_MAX];
} job;

struct mtasts_fetch_req {
	mtasts_fetch_req *next;
	job *j;
	mtasts_fetch_cb *cb;
	void *arg;
};

struct mtasts_fetcher {
	uv_loop_t *loop;
	dns_resolver *dns;
	char *ca_file;               /* NULL: the system's CAs */
	unsigned port, timeout_ms, retry_s, parallel;
	size_t cache_max;
	sqlite3 *db;                 /* NULL: memory only */
	pthread_mutex_t db_lock;
	bool curl_ready;
	entry *bucket[BUCKETS];
	size_t n_entries;
	job *jobs;                   /* not yet answered */
	job *qhead, *qtail;
	unsigned working;            /* jobs on the pool */
	unsigned busy;               /* callbacks from libuv running */
	bool closing;
	mtasts_fetch_stats stats;
};

static void pump(mtasts_fetcher *f);

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

/* Text into buf (cut to fit: `why` texts are bounded), or after what it
 * holds already. */
static void textf(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

static void appendf(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strnlen(buf, cap);
	if (n + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

/* Peer-supplied text made printable ASCII and cut, for `why`. */
static const char *clean(const char *in, char *out, size_t cap)
{
	size_t k = 0;
	if (in == NULL)
		in = "";
	for (; *in != '\0' && k + 4 < cap && k < PEER_TEXT_MAX; in++)
		out[k++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
	if (*in != '\0' && k + 4 <= cap) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

/* `domain` as a lower-case name without trailing dot into out; false when
 * it is not LDH labels of 1..63 within MTASTS_FETCH_DOMAIN_MAX. */
static bool domain_norm(const char *in, char out[MTASTS_FETCH_DOMAIN_MAX + 1])
{
	size_t len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > MTASTS_FETCH_DOMAIN_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? in[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63 || out[i - 1] == '-')
				return false;
			label = 0;
			if (i < len)
				out[i] = '.';
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (c == '-' && label > 0)))
			return false;
		out[i] = c;
		label++;
	}
	out[len] = '\0';
	return true;
}

/* -------------------------------------------------------------- cache */

static unsigned bucket_of(const char *domain)
{
	uint32_t h = 2166136261u;
	for (const char *p = domain; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % BUCKETS;
}

static entry *cache_find(mtasts_fetcher *f, const char *domain)
{
	for (entry *e = f->bucket[bucket_of(domain)]; e != NULL; e = e->next)
		if (strcmp(e->domain, domain) == 0)
			return e;
	return NULL;
}

static bool cache_valid(const entry *e, uint64_t now)
{
	return e != NULL && e->p != NULL && e->p->expires > now;
}

/* Drop the entry that matters least: a remembered failure, else the
 * policy expiring first.  Only when the cache is full (a linear scan). */
static void evict_one(mtasts_fetcher *f)
{
	entry **victim = NULL;
	uint64_t best = UINT64_MAX;
	for (unsigned b = 0; b < BUCKETS; b++) {
		for (entry **pp = &f->bucket[b]; *pp != NULL; pp = &(*pp)->next) {
			uint64_t key = (*pp)->p != NULL ? (*pp)->p->expires : 0;
			if (victim == NULL || key < best) {
				victim = pp;
				best = key;
			}
		}
	}
	if (victim == NULL)
		return;
	entry *e = *victim;
	*victim = e->next;
	mtasts_policy_free(&e->p);
	free(e);
	f->n_entries--;
}

/* The entry of domain, created (evicting another when full) if needed. */
static entry *cache_slot(mtasts_fetcher *f, const char *domain)
{
	entry *e = cache_find(f, domain);
	if (e != NULL)
		return e;
	if (f->n_entries >= f->cache_max)
		evict_one(f);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		abort();
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	unsigned b = bucket_of(domain);
	e->next = f->bucket[b];
	f->bucket[b] = e;
	f->n_entries++;
	return e;
}

static void cache_clear(mtasts_fetcher *f)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
		while (f->bucket[b] != NULL) {
			entry *e = f->bucket[b];
			f->bucket[b] = e->next;
			mtasts_policy_free(&e->p);
			free(e);
		}
	}
	f->n_entries = 0;
}

/* ----------------------------------------------------------- database */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS mtasts_policy ("
	" domain TEXT PRIMARY KEY NOT NULL,"
	" id TEXT NOT NULL,"
	" fetched INTEGER NOT NULL,"
	" expires INTEGER NOT NULL,"
	" policy BLOB NOT NULL)";

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > MTASTS_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

/* Read the unexpired rows into the cache; delete the expired and the
 * unreadable ones.  On the loop thread, before any transfer. */
typedef struct bad_row {
	struct bad_row *next;
	bool null;                   /* the domain column is NULL */
	char domain[];
} bad_row;

static int db_load(mtasts_fetcher *f, char *err, size_t es)
{
	sqlite3_stmt *st = NULL, *del = NULL;
	bad_row *bad = NULL;
	uint64_t now = now_s();
	int rc = -1;
	size_t dropped = 0;
	if (sqlite3_prepare_v2(f->db, "DELETE FROM mtasts_policy WHERE "
			       "expires <= ?", -1, &del, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(del, 1, (sqlite3_int64)now);
	if (sqlite3_step(del) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(del);
	del = NULL;
	if (sqlite3_prepare_v2(f->db, "SELECT domain, id, fetched, expires, "
			       "policy FROM mtasts_policy ORDER BY expires DESC",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(f->db, "DELETE FROM mtasts_policy WHERE "
			       "domain IS ?", -1, &del, NULL) != SQLITE_OK)
		goto out;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 0);
		const char *id = (const char *)sqlite3_column_text(st, 1);
		sqlite3_int64 fetched = sqlite3_column_int64(st, 2);
		sqlite3_int64 expires = sqlite3_column_int64(st, 3);
		const uint8_t *text = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);
		char dom[MTASTS_FETCH_DOMAIN_MAX + 1];
		mtasts_policy *p = NULL;
		const char *perr;
		if (d == NULL || id == NULL || !domain_norm(d, dom) ||
		    strcmp(dom, d) != 0 || !id_ok(id) || fetched < 0 ||
		    expires <= fetched || (text == NULL && len > 0) ||
		    mtasts_policy_parse(text != NULL ? text : (const uint8_t *)"",
					len, &p, &perr) != 0 ||
		    (uint64_t)expires != (uint64_t)fetched + p->max_age) {
			/* deleted once the SELECT is over */
			mtasts_policy_free(&p);
			size_t dl = d != NULL ? strlen(d) : 0;
			bad_row *b = malloc(sizeof(*b) + dl + 1);
			if (b == NULL)
				abort();
			memcpy(b->domain, d != NULL ? d : "", dl + 1);
			b->null = d == NULL;
			b->next = bad;
			bad = b;
			dropped++;
			continue;
		}
		if (f->n_entries >= f->cache_max || cache_find(f, dom) != NULL) {
			mtasts_policy_free(&p);
			continue;
		}
		snprintf(p->id, sizeof(p->id), "%s", id);
		p->fetched = (uint64_t)fetched;
		p->expires = (uint64_t)expires;
		cache_slot(f, dom)->p = p;
	}
	if (s != SQLITE_DONE)
		goto out;
	for (bad_row *b = bad; b != NULL; b = b->next) {
		sqlite3_reset(del);
		if (b->null)
			sqlite3_bind_null(del, 1);
		else
			sqlite3_bind_text(del, 1, b->domain, -1, SQLITE_STATIC);
		if (sqlite3_step(del) != SQLITE_DONE)
			goto out;
	}
	if (dropped > 0)
		log_msg(LOG_WARN, "msg=\"mta-sts: unreadable cached policies "
			"deleted\" count=%zu", dropped);
	rc = 0;
out:
	if (rc != 0)
		snprintf(err, es, "MTA-STS cache: %s", sqlite3_errmsg(f->db));
	while (bad != NULL) {
		bad_row *b = bad;
		bad = b->next;
		free(b);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return rc;
}

static int db_open(mtasts_fetcher *f, const char *path, char *err, size_t es)
{
	if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, es, "MTA-STS cache %s: %s", path,
			 f->db != NULL ? sqlite3_errmsg(f->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(f->db, 5000);
	if (sqlite3_exec(f->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, es, "MTA-STS cache %s: %s", path,
			 sqlite3_errmsg(f->db));
		return -1;
	}
	return db_load(f, err, es);
}

/* On a pool thread: the fetched policy (text as received) into the
 * database. */
static void db_store(mtasts_fetcher *f, const char *domain,
		     const mtasts_policy *p, const uint8_t *text, size_t len)
{
	if (f->db == NULL)
		return;
	pthread_mutex_lock(&f->db_lock);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(f->db, "INSERT OR REPLACE INTO "
				    "mtasts_policy (domain, id, fetched, expires, "
				    "policy) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)p->fetched);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)p->expires);
		sqlite3_bind_blob(st, 5, len > 0 ? text : (const uint8_t *)"",
				  (int)len, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	if (rc != SQLITE_OK)
		log_msg(LOG_ERR, "msg=\"mta-sts: cannot store the policy\" "
			"domain=%s error=\"%s\"", domain, sqlite3_errmsg(f->db));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&f->db_lock);
}

/* ------------------------------------------------------------- answers */

static void destroy(mtasts_fetcher *f)
{
	cache_clear(f);
	if (f->db != NULL)
		sqlite3_close(f->db);
	pthread_mutex_destroy(&f->db_lock);
	if (f->curl_ready)
		curl_global_cleanup();
	free(f->ca_file);
	free(f);
}

static void enter(mtasts_fetcher *f)
{
	f->busy++;
}

/* The end of a libuv callback: f may be gone afterwards. */
static void leave(mtasts_fetcher *f)
{
	if (--f->busy == 0 && f->closing && f->working == 0)
		destroy(f);
}

static void unlink_job(job *j)
{
	for (job **pp = &j->f->jobs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			return;
		}
	}
}

/* Every request of the job gets p and why; the job is freed.  A callback
 * may free the fetcher: the others then get none. */
static void answer(job *j, const mtasts_policy *p, const char *why)
{
	mtasts_fetcher *f = j->f;
	unlink_job(j);
	while (j->reqs != NULL && !f->closing) {
		mtasts_fetch_req *r = j->reqs;
		j->reqs = r->next;
		r->cb(r->arg, p, why);
		free(r);
	}
	while (j->reqs != NULL) {
		mtasts_fetch_req *r = j->reqs;
		j->reqs = r->next;
		free(r);
	}
	free(j);
}

/* No policy from this fetch: remember the failure, answer with the cached
 * policy while it is valid. */
static void fetch_failed(job *j, const char *what)
{
	mtasts_fetcher *f = j->f;
	uint64_t now = now_s();
	char why[MTASTS_FETCH_WHY_MAX], lq[LOG_QUOTE_MAX];
	entry *e = cache_slot(f, j->domain);
	f->stats.fetch_failures++;
	e->retry_after = now + f->retry_s;
	textf(e->fail_why, sizeof(e->fail_why), "%s", what);
	log_msg(LOG_NOTICE, "msg=\"mta-sts: policy fetch failed\" domain=%s "
		"id=%s why=%s cached=%s", j->domain, j->id,
		log_quote(what, strlen(what), lq),
		cache_valid(e, now) ? e->p->id : "-");
	if (cache_valid(e, now)) {
		f->stats.cache_hits++;
		textf(why, sizeof(why), "policy fetch failed: %s; cached "
			 "policy (id %s) used until it expires", what, e->p->id);
		answer(j, e->p, why);
	} else {
		textf(why, sizeof(why), "policy fetch failed: %s", what);
		answer(j, NULL, why);
	}
}

static void fetch_failedf(job *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fetch_failedf(job *j, const char *fmt, ...)
{
	char what[MTASTS_FETCH_WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fetch_failed(j, what);
}

/* ------------------------------------------------------------ transfer */

typedef struct body {
	uint8_t *buf;
	size_t len;
	bool too_big;
} body;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	body *b = arg;
	size_t len = size * n;  /* curl: size is always 1 */
	if (len > MTASTS_POLICY_MAX - b->len) {
		b->too_big = true;
		return 0;       /* CURLE_WRITE_ERROR */
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return len;
}

/* "text/plain", any parameters, any case of the type. */
static bool text_plain(const char *ct)
{
	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = strlen("text/plain");
	if (strncasecmp(ct, "text/plain", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

#define SETOPT(c, opt, val) \
	do { \
		if (rc == CURLE_OK) \
			rc = curl_easy_setopt(c, opt, val); \
	} while (0)

/* On a pool thread: GET the policy, parse and store it.  Sets j->newp, or
 * j->why. */
static void transfer(job *j)
{
	mtasts_fetcher *f = j->f;
	char url[URL_MAX], errbuf[CURL_ERROR_SIZE], t[PEER_TEXT_MAX + 8];
	body b = { .buf = malloc(MTASTS_POLICY_MAX) };
	CURL *c = curl_easy_init();
	struct curl_slist *res = curl_slist_append(NULL, j->resolve);
	CURLcode rc = CURLE_OK;

	if (b.buf == NULL || c == NULL || res == NULL) {
		textf(j->why, sizeof(j->why), "out of memory");
		goto out;
	}
	if (f->port == 443)
		snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/"
			 "mta-sts.txt", j->domain);
	else
		snprintf(url, sizeof(url), "https://mta-sts.%s:%u/.well-known/"
			 "mta-sts.txt", j->domain, f->port);
	errbuf[0] = '\0';
	SETOPT(c, CURLOPT_URL, url);
	SETOPT(c, CURLOPT_RESOLVE, res);
	SETOPT(c, CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L);       /* §3.3 */
	SETOPT(c, CURLOPT_PROXY, "");                /* ignore *_proxy */
	SETOPT(c, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(c, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (f->ca_file != NULL) {
		SETOPT(c, CURLOPT_CAINFO, f->ca_file);
		SETOPT(c, CURLOPT_CAPATH, (char *)NULL);
	}
	SETOPT(c, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
	SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, (long)f->timeout_ms);
	SETOPT(c, CURLOPT_NOSIGNAL, 1L);
	SETOPT(c, CURLOPT_FORBID_REUSE, 1L);
	SETOPT(c, CURLOPT_USERAGENT, "AfterSMTP-MTA-STS/1");
	SETOPT(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MTASTS_POLICY_MAX);
	SETOPT(c, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(c, CURLOPT_WRITEDATA, &b);
	SETOPT(c, CURLOPT_ERRORBUFFER, errbuf);
	if (rc != CURLE_OK) {
		textf(j->why, sizeof(j->why), "libcurl: %s",
			 curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_perform(c);
	if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		textf(j->why, sizeof(j->why), "%s: the policy is larger "
			 "than %u bytes", url, MTASTS_POLICY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		textf(j->why, sizeof(j->why), "%s: %s (%s)", url,
			 curl_easy_strerror(rc),
			 clean(errbuf[0] != '\0' ? errbuf : "-", t, sizeof(t)));
		goto out;
	}
	long code = 0;
	char *ct = NULL, *loc = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 300 && code < 400) {
		curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
		textf(j->why, sizeof(j->why), "%s: HTTP %ld redirect to %s "
			 "refused (RFC 8461 section 3.3)", url, code,
			 clean(loc != NULL ? loc : "-", t, sizeof(t)));
		goto out;
	}
	if (code != 200) {
		textf(j->why, sizeof(j->why), "%s: HTTP %ld", url, code);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	if (!text_plain(ct)) {
		textf(j->why, sizeof(j->why), "%s: Content-Type %s is not "
			 "text/plain", url, clean(ct != NULL ? ct : "(none)", t,
						  sizeof(t)));
		goto out;
	}
	const char *perr;
	mtasts_policy *p;
	if (mtasts_policy_parse(b.buf, b.len, &p, &perr) != 0) {
		textf(j->why, sizeof(j->why), "%s: invalid policy: %s", url,
			 perr);
		goto out;
	}
	snprintf(p->id, sizeof(p->id), "%s", j->id);
	p->fetched = now_s();
	p->expires = p->fetched + p->max_age;
	db_store(f, j->domain, p, b.buf, b.len);
	j->newp = p;
out:
	curl_slist_free_all(res);
	if (c != NULL)
		curl_easy_cleanup(c);
	free(b.buf);
}

static void work_cb(uv_work_t *w)
{
	transfer(w->data);
}

static void after_work(uv_work_t *w, int status)
{
	job *j = w->data;
	mtasts_fetcher *f = j->f;
	(void)status;
	f->working--;
	enter(f);
	if (j->orphan) {
		mtasts_policy_free(&j->newp);
		free(j);
	} else if (j->newp == NULL) {
		fetch_failed(j, j->why);
	} else {
		entry *e = cache_slot(f, j->domain);
		mtasts_policy_free(&e->p);
		e->p = j->newp;
		j->newp = NULL;
		e->retry_after = 0;
		e->fail_why[0] = '\0';
		f->stats.fetches++;
		log_msg(LOG_INFO, "msg=\"mta-sts: policy fetched\" domain=%s "
			"id=%s mode=%s max_age=%u mx=%zu", j->domain, e->p->id,
			mtasts_mode_name(e->p->mode), (unsigned)e->p->max_age,
			e->p->n_mx);
		answer(j, e->p, "policy fetched");
	}
	if (!f->closing)
		pump(f);
	leave(f);
}

/* Start queued transfers while there are free slots. */
static void pump(mtasts_fetcher *f)
{
	while (!f->closing && f->working < f->parallel && f->qhead != NULL) {
		job *j = f->qhead;
		f->qhead = j->qnext;
		if (f->qhead == NULL)
			f->qtail = NULL;
		j->qnext = NULL;
		j->step = S_WORK;
		j->w.data = j;
		if (uv_queue_work(f->loop, &j->w, work_cb, after_work) != 0) {
			fetch_failed(j, "the thread pool refused the transfer");
			continue;
		}
		f->working++;
	}
}

/* ----------------------------------------------------------------- DNS */

static void addr_done(void *arg, const dns_addr_result *r)
{
	job *j = arg;
	mtasts_fetcher *f = j->f;
	j->q = NULL;
	enter(f);
	if (r->status != DNS_OK || r->n == 0) {
		fetch_failedf(j, "no address for mta-sts.%s (%s%s%s)", j->domain,
			      dns_status_name(r->status), r->why != NULL ? ": " : "",
			      r->why != NULL ? r->why : "");
		goto out;
	}
	size_t k = (size_t)snprintf(j->resolve, sizeof(j->resolve),
				    "mta-sts.%s:%u:", j->domain, f->port);
	for (size_t i = 0; i < r->n && i < ADDRS_MAX; i++) {
		char a[INET6_ADDRSTRLEN];
		const struct sockaddr_storage *ss = &r->addr[i];
		const void *src = ss->ss_family == AF_INET6
			? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
			: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
		if (inet_ntop(ss->ss_family, src, a, sizeof(a)) == NULL)
			continue;
		int n = snprintf(j->resolve + k, sizeof(j->resolve) - k,
				 ss->ss_family == AF_INET6 ? "%s[%s]" : "%s%s",
				 j->resolve[k - 1] == ':' ? "" : ",", a);
		if (n < 0 || (size_t)n >= sizeof(j->resolve) - k)
			break;
		k += (size_t)n;
	}
	if (j->resolve[k - 1] == ':') {
		fetch_failedf(j, "no usable address for mta-sts.%s", j->domain);
		goto out;
	}
	j->step = S_QUEUED;
	if (f->qtail != NULL)
		f->qtail->qnext = j;
	else
		f->qhead = j;
	f->qtail = j;
	pump(f);
out:
	leave(f);
}

static void txt_done(void *arg, const dns_txt_result *r)
{
	job *j = arg;
	mtasts_fetcher *f = j->f;
	uint64_t now = now_s();
	char id[MTASTS_ID_MAX + 1], why[MTASTS_FETCH_WHY_MAX];
	const char *what = NULL;
	mtasts_txt_status st = MTASTS_TXT_INVALID;
	j->q = NULL;
	enter(f);
	switch (r->status) {
	case DNS_OK:
		st = mtasts_txt_select(r->txt, r->n, id, &what);
		if (st == MTASTS_TXT_NONE)
			what = "no _mta-sts TXT record begins with v=STSv1";
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		st = MTASTS_TXT_NONE;
		what = "no _mta-sts TXT record";
		break;
	default:
		what = r->why != NULL ? r->why : dns_status_name(r->status);
		break;
	}
	entry *e = cache_find(f, j->domain);
	bool valid = cache_valid(e, now);
	if (st == MTASTS_TXT_OK && valid && strcmp(e->p->id, id) == 0) {
		f->stats.cache_hits++;
		answer(j, e->p, "cached policy (TXT id unchanged)");
		goto out;
	}
	if (st != MTASTS_TXT_OK) {
		if (r->status == DNS_OK && st == MTASTS_TXT_INVALID)
			textf(why, sizeof(why), "invalid _mta-sts TXT "
				 "record: %s", what);
		else if (r->status != DNS_OK && st != MTASTS_TXT_NONE)
			textf(why, sizeof(why), "_mta-sts TXT lookup failed: "
				 "%s", what);
		else
			textf(why, sizeof(why), "%s", what);
		if (valid) {
			appendf(why, sizeof(why), "; cached policy (id "
				 "%s) used until it expires", e->p->id);
			f->stats.cache_hits++;
		}
		answer(j, valid ? e->p : NULL, why);
		goto out;
	}
	memcpy(j->id, id, sizeof(j->id));
	if (e != NULL && e->retry_after > now) {
		/* a fetch failed lately: not again before retry_after */
		textf(why, sizeof(why), "policy fetch failed %llu s ago (%s)",
			 (unsigned long long)(now + f->retry_s - e->retry_after),
			 e->fail_why);
		if (valid) {
			appendf(why, sizeof(why), "; cached policy (id "
				 "%s) used until it expires", e->p->id);
			f->stats.cache_hits++;
		}
		answer(j, valid ? e->p : NULL, why);
		goto out;
	}
	char host[HOST_MAX + 1];
	snprintf(host, sizeof(host), "mta-sts.%s", j->domain);
	j->step = S_ADDR;
	if (dns_query_addr(f->dns, host, addr_done, j, &j->q) != 0)
		fetch_failedf(j, "%s is not a valid name", host);
out:
	leave(f);
}

/* ------------------------------------------------------------ requests */

int mtasts_fetch_get(mtasts_fetcher *f, const char *domain,
		     mtasts_fetch_cb *cb, void *arg, mtasts_fetch_req **r_r)
{
	char dom[MTASTS_FETCH_DOMAIN_MAX + 1];
	if (r_r != NULL)
		*r_r = NULL;
	if (f == NULL || f->closing || domain == NULL || cb == NULL ||
	    !domain_norm(domain, dom))
		return -1;
	job *j = NULL;
	for (job *x = f->jobs; x != NULL; x = x->next) {
		if (strcmp(x->domain, dom) == 0) {
			j = x;
			break;
		}
	}
	mtasts_fetch_req *r = calloc(1, sizeof(*r));
	if (r == NULL)
		abort();
	r->cb = cb;
	r->arg = arg;
	if (j == NULL) {
		char name[MTASTS_FETCH_DOMAIN_MAX + 16];
		if ((j = calloc(1, sizeof(*j))) == NULL)
			abort();
		j->f = f;
		j->step = S_TXT;
		memcpy(j->domain, dom, sizeof(dom));
		snprintf(name, sizeof(name), "_mta-sts.%s", dom);
		if (dns_query_txt(f->dns, name, txt_done, j, &j->q) != 0) {
			free(j);
			free(r);
			return -1;
		}
		j->next = f->jobs;
		f->jobs = j;
	}
	r->j = j;
	r->next = j->reqs;
	j->reqs = r;
	f->stats.requests++;
	if (r_r != NULL)
		*r_r = r;
	return 0;
}

void mtasts_fetch_cancel(mtasts_fetch_req *r)
{
	if (r == NULL)
		return;
	for (mtasts_fetch_req **pp = &r->j->reqs; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			free(r);
			return;
		}
	}
}

void mtasts_fetch_get_stats(const mtasts_fetcher *f, mtasts_fetch_stats *st)
{
	*st = f->stats;
	st->cached = f->n_entries;
}

/* ----------------------------------------------------------- lifecycle */

int mtasts_fetch_new(const mtasts_fetch_settings *s, mtasts_fetcher **f_r,
		     char *err, size_t err_size)
{
	*f_r = NULL;
	mtasts_fetcher *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	f->loop = s->loop;
	f->dns = s->dns;
	f->port = s->port != 0 ? s->port : 443;
	f->timeout_ms = s->timeout_ms != 0 ? s->timeout_ms
		: MTASTS_FETCH_TIMEOUT_DEFAULT_MS;
	f->retry_s = s->retry_s;
	f->parallel = s->parallel != 0 ? s->parallel
		: MTASTS_FETCH_PARALLEL_DEFAULT;
	f->cache_max = s->cache_max != 0 ? s->cache_max
		: MTASTS_FETCH_CACHE_DEFAULT;
	pthread_mutex_init(&f->db_lock, NULL);
	if (f->port > 65535) {
		snprintf(err, err_size, "MTA-STS port %u is not 1..65535",
			 f->port);
		goto fail;
	}
	if (s->ca_file != NULL && s->ca_file[0] != '\0' &&
	    (f->ca_file = strdup(s->ca_file)) == NULL) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, err_size, "libcurl cannot start");
		goto fail;
	}
	f->curl_ready = true;
	curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	if (v == NULL || (v->features & CURL_VERSION_SSL) == 0) {
		snprintf(err, err_size, "libcurl has no TLS support");
		goto fail;
	}
	if (s->db_path != NULL && db_open(f, s->db_path, err, err_size) != 0)
		goto fail;
	*f_r = f;
	return 0;
fail:
	destroy(f);
	return -1;
}

void mtasts_fetch_free(mtasts_fetcher **fp)
{
	mtasts_fetcher *f = *fp;
	if (f == NULL)
		return;
	*fp = NULL;
	f->closing = true;
	while (f->jobs != NULL) {
		job *j = f->jobs;
		f->jobs = j->next;
		while (j->reqs != NULL) {
			mtasts_fetch_req *r = j->reqs;
			j->reqs = r->next;
			free(r);
		}
		if (j->step == S_WORK) {
			j->orphan = true;  /* after_work frees it */
			continue;
		}
		dns_cancel(j->q);
		free(j);
	}
	f->qhead = f->qtail = NULL;
	if (f->busy == 0 && f->working == 0)
		destroy(f);
}
