/*
 * bridge.c — see bridge.h.  The main thread runs the libuv loop: the two
 * listeners, the store, the answers of password checks and sends.  Work
 * that blocks goes elsewhere: Argon2id checks and sends (bsend_message
 * over its own nclient) to libuv's thread pool, the inbox sync to
 * bsync's thread.  Each thread that talks to the node has its own copy
 * of the cli_env (its --doc cache is not shared).
 *
 * Stopping (SIGINT/SIGTERM): the listeners close their connections, the
 * sync thread is interrupted and joined, pending back-off delays answer
 * "no" at once, and the loop runs until every handle has closed and
 * every pool job has come back; then the store is closed.
 */
#include "bridge.h"

#include "bimap.h"
#include "bsend.h"
#include "bstore.h"
#include "bsubmit.h"
#include "bsync.h"
#include "client.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BRIDGE_HASH_FILE_MAX 1024u
#define BRIDGE_PEM_MAX 65536u
#define BRIDGE_CERT_DAYS 3650u

typedef struct pwcheck pwcheck;

typedef struct bridge {
	uv_loop_t loop;
	const bridge_settings *set;
	amp_identity *id, **retired;
	size_t n_retired;
	bstore *store;
	tls_creds *creds;
	bimap *imap;
	bsubmit *smtp;
	bsync *sync;
	uv_signal_t sig[2];
	char address[AMP_DID_MAX + 2];  /* local@domain of the DID */
	char alias[512];                 /* the node's name for us, if other */
	char pwpath[PATH_MAX];
	unsigned fails;          /* wrong passwords in a row */
	pwcheck *delayed;        /* answers waiting out their back-off */
	bool stopping, signals;
} bridge;

bool bridge_path(const cli_env *env, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/bridge%s%s", env->home,
			 name[0] != '\0' ? "/" : "", name);
	return n > 0 && (size_t)n < size;
}

/* ------------------------------------------------------------ logins */

struct pwcheck {
	uv_work_t w;
	uv_timer_t t;
	bridge *br;
	pwcheck *prev, *next;    /* in br->delayed while the timer runs */
	bimap_login *ireq;
	bsubmit_req *sreq;
	char *pw;                /* sodium_malloc'ed copy */
	size_t len;
	bool user_ok, ok;
};

/* Is user ours: the mail address (any case; the DID's local@domain or
 * the one the home node's canonical_maps give us) or the DID? */
static bool user_is_ours(const bridge *br, const char *user)
{
	return strcasecmp(user, br->address) == 0 ||
	       (br->alias[0] != '\0' && strcasecmp(user, br->alias) == 0) ||
	       strcmp(user, br->id->pub.did) == 0;
}

static void pw_answer(pwcheck *p, bool ok)
{
	if (p->ireq != NULL)
		bimap_login_done(p->ireq, ok);
	else
		bsubmit_auth_done(p->sreq, ok);
	p->ireq = NULL;
	p->sreq = NULL;
}

static void pw_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void pw_unlink(pwcheck *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		p->br->delayed = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
}

static void pw_delay_done(uv_timer_t *t)
{
	pwcheck *p = t->data;
	pw_unlink(p);
	pw_answer(p, false);
	uv_close((uv_handle_t *)&p->t, pw_free_cb);
}

/* Thread pool: Argon2id over the stored hash (read at every check). */
static void pw_work(uv_work_t *w)
{
	pwcheck *p = w->data;
	uint8_t *hash = NULL;
	size_t hl = 0;
	p->ok = false;
	if (util_read_file(p->br->pwpath, BRIDGE_HASH_FILE_MAX, &hash, &hl) != 0)
		return;
	while (hl > 0 && (hash[hl - 1] == '\n' || hash[hl - 1] == '\r'))
		hash[--hl] = '\0';
	/* verified even for a wrong user name: the same time either way */
	bool pass = crypto_pwhash_str_verify((const char *)hash, p->pw,
					     p->len) == 0;
	p->ok = pass && p->user_ok;
	free(hash);
}

static void pw_after(uv_work_t *w, int status)
{
	pwcheck *p = w->data;
	bridge *br = p->br;
	sodium_free(p->pw);
	p->pw = NULL;
	if (status == 0 && p->ok) {
		br->fails = 0;
		pw_answer(p, true);
		free(p);
		return;
	}
	if (br->fails < 31)
		br->fails++;
	unsigned delay = BRIDGE_BACKOFF_MIN_MS;
	for (unsigned i = 1; i < br->fails && delay < BRIDGE_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BRIDGE_BACKOFF_MAX_MS)
		delay = BRIDGE_BACKOFF_MAX_MS;
	log_msg(LOG_NOTICE, "msg=\"bridge: wrong user or password\" via=%s "
		"failures=%u delay_ms=%u", p->ireq != NULL ? "imap" : "smtp",
		br->fails, delay);
	if (br->stopping) {
		pw_answer(p, false);
		free(p);
		return;
	}
	uv_timer_init(&br->loop, &p->t);
	p->t.data = p;
	p->next = br->delayed;
	if (br->delayed != NULL)
		br->delayed->prev = p;
	br->delayed = p;
	uv_timer_start(&p->t, pw_delay_done, delay, 0);
}

static void pw_check(bridge *br, bimap_login *ireq, bsubmit_req *sreq,
		     const char *user, const char *password, size_t len)
{
	pwcheck *p = calloc(1, sizeof(*p));
	if (p == NULL || (p->pw = sodium_malloc(len + 1)) == NULL)
		abort(); /* out of memory: loudly */
	p->br = br;
	p->ireq = ireq;
	p->sreq = sreq;
	memcpy(p->pw, password, len);
	p->pw[len] = '\0';
	p->len = len;
	p->user_ok = user_is_ours(br, user);
	p->w.data = p;
	if (uv_queue_work(&br->loop, &p->w, pw_work, pw_after) != 0) {
		sodium_free(p->pw);
		free(p);
		pw_answer(&(pwcheck){ .ireq = ireq, .sreq = sreq }, false);
	}
}

static uint64_t store_generation(void *st)
{
	return bstore_generation(st);
}

static void imap_login(void *arg, bimap_login *req, const char *user,
		       const char *password, size_t len)
{
	pw_check(arg, req, NULL, user, password, len);
}

static void smtp_auth(void *arg, bsubmit_req *req, const char *authzid,
		      const char *user, const char *password, size_t len)
{
	bridge *br = arg;
	if (authzid[0] != '\0' && !user_is_ours(br, authzid)) {
		bsubmit_auth_done(req, false); /* acting as someone else */
		return;
	}
	pw_check(br, NULL, req, user, password, len);
}

/* -------------------------------------------------------------- send */

static bool sender_ok(void *arg, const char *user, const char *from)
{
	bridge *br = arg;
	(void)user; /* one user: checked at AUTH */
	return from[0] != '\0' && user_is_ours(br, from);
}

typedef struct sendjob {
	uv_work_t w;
	bridge *br;
	bsubmit_req *req;
	bsubmit_msg m;           /* a copy: its pointers are valid until
				    bsubmit_submit_done, *m only in the call */
	cli_env env;             /* this thread's copy */
	bsend_rcpt *out;
	bool all_ok, temporary;
	char text[1024];
} sendjob;

static void send_work(uv_work_t *w)
{
	sendjob *j = w->data;
	nclient *c = NULL;
	const char *err = NULL;
	bsend_opts o = { .expires = 0, .lane = AMP_LANE_NORMAL };
	if (cli_connect_node(&j->env, &j->br->set->conn, &c) != CLI_OK ||
	    nclient_auth(c, j->br->id, NULL, &err) != 0) {
		nclient_close(&c);
		j->all_ok = false;
		j->temporary = true;
		snprintf(j->text, sizeof(j->text),
			 "the home node cannot be reached%s%s",
			 err != NULL ? ": " : "", err != NULL ? err : "");
		return;
	}
	int r = bsend_message(&j->env, c, j->br->id, &o, j->m.rcpts,
			      j->m.n_rcpts, j->m.data, j->m.len, j->out, &err);
	nclient_close(&c);
	(void)r; /* the per-recipient outcomes say it all */
	j->all_ok = bsend_summary(j->m.rcpts, j->out, j->m.n_rcpts,
				  &j->temporary, j->text, sizeof(j->text));
}

static void send_after(uv_work_t *w, int status)
{
	sendjob *j = w->data;
	bridge *br = j->br;
	if (status != 0) {
		j->all_ok = false;
		j->temporary = true;
		snprintf(j->text, sizeof(j->text), "not sent (stopping)");
	}
	log_msg(LOG_INFO, "msg=\"bridge: submitted\" rcpts=%zu size=%zu "
		"result=%s", j->m.n_rcpts, j->m.len,
		j->all_ok ? "sent" : j->temporary ? "tempfail" : "permfail");
	if (j->all_ok) {
		/* the copy in Sent (\Seen), as the client gave it */
		uint32_t uid = 0, uidv = 0;
		const char *err = NULL;
		if (bstore_ops()->append(br->store, "Sent", j->m.data, j->m.len,
					 IMAP_FLAG_SEEN, -1, 0, &uid, &uidv,
					 &err) != 0)
			log_msg(LOG_ERR, "msg=\"bridge: cannot keep the Sent "
				"copy\" error=\"%s\"", err != NULL ? err : "?");
		else if (br->imap != NULL)
			bimap_changed(br->imap);
		bsubmit_submit_done(j->req, BSUBMIT_OK, "");
	} else {
		bsubmit_submit_done(j->req, j->temporary ? BSUBMIT_TEMPFAIL
				    : BSUBMIT_PERMFAIL, j->text);
	}
	free(j->out);
	free(j);
}

static void smtp_submit(void *arg, bsubmit_req *req, const bsubmit_msg *m)
{
	bridge *br = arg;
	sendjob *j = calloc(1, sizeof(*j));
	if (j == NULL || m->n_rcpts == 0 ||
	    (j->out = calloc(m->n_rcpts, sizeof(*j->out))) == NULL) {
		free(j);
		bsubmit_submit_done(req, BSUBMIT_TEMPFAIL, "out of memory");
		return;
	}
	j->br = br;
	j->req = req;
	j->m = *m;
	j->env = *br->set->env;
	j->w.data = j;
	if (br->stopping ||
	    uv_queue_work(&br->loop, &j->w, send_work, send_after) != 0) {
		free(j->out);
		free(j);
		bsubmit_submit_done(req, BSUBMIT_TEMPFAIL, "the bridge is stopping");
	}
}

/* ------------------------------------------------------------ start */

static void store_changed(void *arg)
{
	bridge *br = arg;
	if (br->imap != NULL)
		bimap_changed(br->imap);
}

static void address_learnt(void *arg, const char *address)
{
	bridge *br = arg;
	if (strcasecmp(address, br->address) == 0)
		br->alias[0] = '\0';
	else
		snprintf(br->alias, sizeof(br->alias), "%s", address);
}

static void stop(bridge *br)
{
	if (br->stopping)
		return;
	br->stopping = true;
	log_msg(LOG_INFO, "msg=\"bridge: stopping\"");
	for (int i = 0; br->signals && i < 2; i++)
		uv_close((uv_handle_t *)&br->sig[i], NULL);
	bsync_stop(&br->sync);
	bimap_close(&br->imap);
	bsubmit_close(&br->smtp);
	while (br->delayed != NULL) {
		pwcheck *p = br->delayed;
		pw_unlink(p);
		uv_timer_stop(&p->t);
		pw_answer(p, false);
		uv_close((uv_handle_t *)&p->t, pw_free_cb);
	}
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	stop(s->data);
}

/* The store key from the identity's secret signing key (bridge.h). */
static void store_key(const amp_identity *id, uint8_t key[BSTORE_KEY_BYTES])
{
	uint8_t master[crypto_kdf_KEYBYTES];
	static const char label[] = "amp-bridge-store";
	crypto_generichash(master, sizeof(master), id->sign_sk,
			   sizeof(id->sign_sk), (const uint8_t *)label,
			   sizeof(label) - 1);
	crypto_kdf_derive_from_key(key, BSTORE_KEY_BYTES, 1, "ampbrdg1", master);
	sodium_memzero(master, sizeof(master));
}

/* store.db under the current key, else a retired one's (a store made
 * before `amp key rotate`). */
static int open_store(bridge *br, const cli_env *env)
{
	char path[PATH_MAX];
	uint8_t key[BSTORE_KEY_BYTES];
	const char *err = NULL, *first = NULL;
	if (!bridge_path(env, "store.db", path, sizeof(path))) {
		cli_err(env, "HOME is too long");
		return CLI_FAIL;
	}
	for (size_t i = 0; i <= br->n_retired; i++) {
		store_key(i == 0 ? br->id : br->retired[i - 1], key);
		int r = bstore_open(path, key, &br->store, &err);
		sodium_memzero(key, sizeof(key));
		if (r == 0)
			return CLI_OK;
		if (first == NULL)
			first = err;
	}
	cli_err(env, "%s: %s", path, first != NULL ? first : "cannot open");
	return CLI_FAIL;
}

/* tls.pem/tls.key, made on first run. */
static int load_creds(bridge *br, const cli_env *env)
{
	char cpath[PATH_MAX], kpath[PATH_MAX];
	uint8_t *cert = NULL, *key = NULL;
	size_t cl, kl;
	const char *err = NULL;
	if (!bridge_path(env, "tls.pem", cpath, sizeof(cpath)) ||
	    !bridge_path(env, "tls.key", kpath, sizeof(kpath)))
		return CLI_FAIL;
	if (access(cpath, F_OK) != 0) {
		char *c = NULL, *k = NULL;
		if (tls_creds_generate("localhost", BRIDGE_CERT_DAYS, &c, &k,
				       &err) != 0) {
			cli_err(env, "TLS certificate: %s", err);
			return CLI_FAIL;
		}
		int w = util_write_file_atomic(kpath, k, strlen(k), 0600, 0);
		if (w == 0)
			w = util_write_file_atomic(cpath, c, strlen(c), 0644, 0);
		sodium_memzero(k, strlen(k));
		free(k);
		free(c);
		if (w != 0) {
			cli_err(env, "%s: %s", cpath, strerror(errno));
			return CLI_FAIL;
		}
	}
	if (util_read_file(cpath, BRIDGE_PEM_MAX, &cert, &cl) != 0 ||
	    util_read_file(kpath, BRIDGE_PEM_MAX, &key, &kl) != 0) {
		cli_err(env, "%s: %s", cert == NULL ? cpath : kpath,
			strerror(errno));
		free(cert);
		return CLI_FAIL;
	}
	int r = tls_creds_server((const char *)cert, (const char *)key,
				 &br->creds, &err);
	sodium_memzero(key, kl);
	free(key);
	free(cert);
	if (r != 0) {
		cli_err(env, "%s: %s", cpath, err);
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int start(bridge *br, const bridge_settings *set)
{
	cli_env *env = set->env;
	const char *err = NULL;
	char dir[PATH_MAX];
	if (cli_load_identities(env, &br->id, &br->retired, &br->n_retired) !=
	    CLI_OK)
		return CLI_FAIL;
	if (!bsync_did_address(br->id->pub.did, br->address,
			       sizeof(br->address))) {
		cli_err(env, "%s: not a DID with a mail address", br->id->pub.did);
		return CLI_FAIL;
	}
	if (!bridge_path(env, "", dir, sizeof(dir)) ||
	    !bridge_path(env, "password", br->pwpath, sizeof(br->pwpath)) ||
	    util_mkdirs(dir, 0700) != 0) {
		cli_err(env, "%s: %s", dir, strerror(errno));
		return CLI_FAIL;
	}
	if (access(br->pwpath, R_OK) != 0)
		cli_err(env, "warning: no bridge password yet (%s): every login "
			"is refused until `amp bridge password` makes one",
			br->pwpath);
	if (open_store(br, env) != CLI_OK || load_creds(br, env) != CLI_OK)
		return CLI_FAIL;
	for (int i = 0; i < 2; i++) {
		uv_signal_init(&br->loop, &br->sig[i]);
		br->sig[i].data = br;
		uv_signal_start(&br->sig[i], on_signal, i == 0 ? SIGINT : SIGTERM);
	}
	br->signals = true;
	bimap_settings is = {
		.port = set->imap_port, .creds = br->creds, .ops = bstore_ops(),
		.st = br->store, .login = imap_login, .arg = br,
		.generation = store_generation,
	};
	if (bimap_start(&br->loop, &is, &br->imap, &err) != 0) {
		cli_err(env, "IMAP on 127.0.0.1:%u: %s", (unsigned)set->imap_port,
			err);
		return CLI_FAIL;
	}
	bsubmit_settings ss = { .port = set->smtp_port, .creds = br->creds };
	static const bsubmit_callbacks scb = {
		.auth = smtp_auth, .sender_ok = sender_ok, .submit = smtp_submit,
	};
	if (bsubmit_start(&br->loop, &ss, &scb, br, &br->smtp, &err) != 0) {
		cli_err(env, "SMTP submission on 127.0.0.1:%u: %s",
			(unsigned)set->smtp_port, err);
		return CLI_FAIL;
	}
	if (!set->no_sync) {
		bsync_settings ys = {
			.env = env, .conn = set->conn, .id = br->id,
			.retired = br->retired, .n_retired = br->n_retired,
			.address = br->address, .wait_ms = set->poll_wait_ms,
			.store = br->store, .changed = store_changed,
			.address_cb = address_learnt, .arg = br,
		};
		if (bsync_start(&br->loop, &ys, &br->sync, &err) != 0) {
			cli_err(env, "sync: %s", err);
			return CLI_FAIL;
		}
	}
	log_msg(LOG_INFO, "msg=\"bridge ready\" user=%s did=%s imap_port=%u "
		"smtp_port=%u pid=%ld", br->address, br->id->pub.did,
		(unsigned)bimap_port(br->imap), (unsigned)bsubmit_port(br->smtp),
		(long)getpid());
	printf("bridge ready imap=127.0.0.1:%u smtp=127.0.0.1:%u\n",
	       (unsigned)bimap_port(br->imap), (unsigned)bsubmit_port(br->smtp));
	fflush(stdout);
	return CLI_OK;
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int bridge_run(const bridge_settings *set)
{
	bridge *br = calloc(1, sizeof(*br));
	if (br == NULL)
		return CLI_FAIL;
	br->set = set;
	log_init(2, LOG_INFO, "amp-bridge");
	signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer: EPIPE, not death */
	if (uv_loop_init(&br->loop) != 0) {
		free(br);
		return CLI_FAIL;
	}
	int r = start(br, set);
	if (r != CLI_OK)
		stop(br);
	uv_run(&br->loop, UV_RUN_DEFAULT);
	/* a start that failed half-way may leave handles: close them */
	uv_walk(&br->loop, walk_close, NULL);
	uv_run(&br->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&br->loop) != 0)
		log_msg(LOG_WARN, "msg=\"bridge: the loop did not close clean\"");
	bstore_close(&br->store);
	tls_creds_free(&br->creds);
	cli_identities_free(&br->retired, br->n_retired);
	amp_identity_destroy(&br->id);
	if (r == CLI_OK)
		log_msg(LOG_INFO, "msg=\"bridge stopped\"");
	free(br);
	return r;
}

/* ----------------------------------------------------------- password */

int bridge_password_new(cli_env *env, char out[BRIDGE_PASSWORD_CHARS])
{
	/* 20 characters of 32 (100 bits), no look-alikes (0/o, 1/l) */
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
	char dir[PATH_MAX], path[PATH_MAX], hash[crypto_pwhash_STRBYTES];
	size_t o = 0;
	for (unsigned i = 0; i < 20; i++) {
		if (i > 0 && i % 5 == 0)
			out[o++] = '-';
		out[o++] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	}
	out[o] = '\0';
	if (!bridge_path(env, "", dir, sizeof(dir)) ||
	    !bridge_path(env, "password", path, sizeof(path)) ||
	    util_mkdirs(dir, 0700) != 0) {
		cli_err(env, "%s: %s", dir, strerror(errno));
		return CLI_FAIL;
	}
	if (crypto_pwhash_str(hash, out, o, crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		cli_err(env, "out of memory hashing the password");
		return CLI_FAIL;
	}
	size_t hl = strlen(hash);
	hash[hl++] = '\n';
	if (util_write_file_atomic(path, hash, hl, 0600, 0) != 0) {
		cli_err(env, "%s: %s", path, strerror(errno));
		return CLI_FAIL;
	}
	return CLI_OK;
}
