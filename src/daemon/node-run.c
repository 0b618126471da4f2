/*
 * node-run.c — `aftersmtpd run`: start the node and serve until SIGTERM.
 *
 * Start: create what is missing in the data directory, bind every
 * listener (TLS on TCP and QUIC on UDP, each `listen` address), drop
 * privileges when started as root, then load the keys, open the store,
 * and start the core and the relay threads.  Signals (libuv, on the loop):
 *   SIGHUP            re-read the configuration; apply the reloadable keys
 *                     (a changed non-reloadable key refuses the reload and
 *                     keeps the old configuration, logged)
 *   SIGTERM, SIGINT   drain: stop accepting, answer parked fetches, wait
 *                     for the requests in progress (at most DRAIN_MAX_S),
 *                     close the connections, stop the relay, flush the
 *                     store, exit 0.
 *
 * The node gives the checks of inbound mail (smtpd, mailauth.h) its DID
 * lookup to verify AMP-DID-Signature fields (did_resolve: a node or
 * gateway DID, ours from the store, another domain's from its home node
 * through the server's cache); the listener starts before the server, so
 * a lookup before it is ready, or after it is being freed, is refused as
 * temporary.  Before the server is freed, the lookups in progress on
 * worker threads are waited for (did_close).
 */
#include "node.h"

#include "admin.h"
#include "dkimkeys.h"
#include "gateway.h"
#include "outbound.h"
#include "log.h"
#include "mapset.h"
#include "quic.h"
#include "relay.h"
#include "tlog.h"
#include "server.h"
#include "server-private.h"
#include "smtpd.h"
#include "tcp.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LISTEN 8u
#define DRAIN_MAX_S 30u

typedef struct node_run {
	uv_loop_t loop;
	cfg *conf;
	const char *config_path;
	amp_identity *id;
	uint8_t storage_key[32];
	store *st;
	router *routes;
	server *srv;
	relay *rl;
	tlog *tl;            /* tree heads and witnessing */
	tls_creds *creds;
	tcp_listener *tcp[MAX_LISTEN];
	quic_server *quic[MAX_LISTEN];
	size_t n_tcp, n_quic;
	smtpd *smtp;
	mapset *maps;        /* the lookup tables (after the privilege drop) */
	dkimkeys *dkim;      /* dkim_keys (read before the privilege drop) */
	lanes *lanes;        /* smtp_out_*_senders */
	char *auth_text;     /* smtp_out_auth_file (read before the drop) */
	amp_identity *gw_id; /* gateway.key */
	gateway *gw;
	outbound *out;
	admin *adm;          /* <data_dir>/admin.sock */
	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t drain_timer;
	bool stopping;
	/* DID lookups for the DID signature checks (worker threads) */
	pthread_mutex_t did_lock;
	pthread_cond_t did_idle;
	unsigned did_busy;
	bool did_closed;
} node_run;

/* ----------------------------------------------------------- QUIC glue */

static void q_send(void *t, uint64_t tag, const uint8_t *payload, size_t len)
{
	if (quic_respond(t, (int64_t)tag, payload, len) != 0)
		log_msg(LOG_DEBUG, "msg=\"answer dropped: stream gone\"");
}

static void q_set_max_frame(void *t, size_t max)
{
	quic_conn_set_max_frame(t, max);
}

static void q_close(void *t)
{
	quic_conn_close(t, 0);
}

static const sconn_ops quic_ops = {
	.send = q_send,
	.set_max_frame = q_set_max_frame,
	.pause = NULL, /* QUIC: the stream limit is flow control */
	.close = q_close,
};

static void *q_on_connect(void *arg, quic_conn *c, const struct sockaddr *peer,
			  const uint8_t exporter[QUIC_EXPORTER_BYTES])
{
	node_run *n = arg;
	if (n->srv == NULL)
		return NULL;
	sconn *sc = server_conn_open(n->srv, &quic_ops, c, peer);
	if (sc != NULL)
		server_conn_ready(sc, exporter);
	return sc;
}

static void q_on_request(void *user, quic_conn *c, int64_t stream_id,
			 uint8_t *payload, size_t len)
{
	(void)c;
	server_conn_request(user, (uint64_t)stream_id, payload, len);
}

static void q_on_close(void *user, quic_conn *c)
{
	(void)c;
	server_conn_closed(user);
}

static const quic_server_cbs quic_cbs = {
	.on_connect = q_on_connect,
	.on_request = q_on_request,
	.on_close = q_on_close,
};

/* ------------------------------------------------- DID signature lookup */

/* mailauth_did_resolve: the Ed25519 key of the n= of an AMP-DID-Signature
 * (PROTOCOL.md §12, AMP-R-071): only the node or gateway identity of
 * n='s domain signs, and its document must be that DID's (srv_dir_get
 * compares the answer's DID; the home node is reached through routes and
 * pinned keys with the domain expected).  Worker thread; blocks up to
 * peer_timeout when the home node is asked. */
static int did_resolve(void *arg, const char *node_did, uint8_t pk_r[32],
		       const char **why_r)
{
	node_run *n = arg;
	amp_did d;
	if (amp_did_parse(node_did, strlen(node_did), &d, NULL) != AMP_OK) {
		*why_r = "n= is not a DID";
		return 0;
	}
	if (strcmp(d.local, "node") != 0 && strcmp(d.local, "gateway") != 0) {
		*why_r = "n= is not a node or gateway DID";
		return 0;
	}
	pthread_mutex_lock(&n->did_lock);
	if (n->did_closed || n->srv == NULL) {
		pthread_mutex_unlock(&n->did_lock);
		*why_r = "the DID lookup is not available";
		return -1;
	}
	n->did_busy++;
	pthread_mutex_unlock(&n->did_lock);
	amp_public_identity pub;
	const char *err = NULL;
	int r = srv_dir_get(n->srv, node_did, true, &pub, NULL, &err);
	pthread_mutex_lock(&n->did_lock);
	if (--n->did_busy == 0)
		pthread_cond_broadcast(&n->did_idle);
	pthread_mutex_unlock(&n->did_lock);
	if (r == 1 && strcmp(pub.did, node_did) == 0) {
		memcpy(pk_r, pub.sign_pk, 32);
		sodium_memzero(&pub, sizeof(pub));
		return 1;
	}
	if (r == 1) {
		*why_r = "the lookup answered for another DID";
		return -1;
	}
	if (r == 0) {
		*why_r = "the signing node's DID does not exist";
		return 0;
	}
	char q[LOG_QUOTE_MAX];
	log_msg(LOG_INFO, "msg=\"DID signature: the signing node was not "
		"resolved\" did=%s error=%s", node_did,
		log_quote(err != NULL ? err : "?", err != NULL ? strlen(err) : 1,
			  q));
	*why_r = "the signing node's DID could not be resolved";
	return -1;
}

/* No lookup starts after this; those running have returned. */
static void did_close(node_run *n)
{
	pthread_mutex_lock(&n->did_lock);
	n->did_closed = true;
	while (n->did_busy > 0)
		pthread_cond_wait(&n->did_idle, &n->did_lock);
	pthread_mutex_unlock(&n->did_lock);
}

/* ------------------------------------------------------------- helpers */

static int load_config_file(const char *path, cfg **c_r)
{
	uint8_t *text;
	size_t len;
	cfg_errors errs;
	if (util_read_file(path, CFG_FILE_MAX, &text, &len) != 0) {
		log_msg(LOG_ERR, "msg=\"cannot read the configuration\" file=%s "
			"error=\"%s\"", path, strerror(errno));
		return -1;
	}
	int r = cfg_parse(&node_schema, (const char *)text, len, c_r, &errs);
	free(text);
	if (r != 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_msg(LOG_ERR, "msg=\"configuration error\" file=%s "
				"line=%u error=\"%s\"", path, errs.e[i].line,
				errs.e[i].text);
		return -1;
	}
	return 0;
}

/* One line with the size of every table. */
static void log_maps(node_run *n, const char *what)
{
	const mapset_snap *s = mapset_get(n->maps);
	log_msg(LOG_NOTICE, "msg=\"%s\" access_map=%zu relay_domains=%zu "
		"virtual_alias_maps=%zu canonical_maps=%zu transport_maps=%zu "
		"smtp_relay_networks=%zu", what,
		maps_table_count(s->t[MAPS_ACCESS]),
		maps_table_count(s->t[MAPS_RELAY_DOMAINS]),
		maps_table_count(s->t[MAPS_VIRTUAL]),
		maps_table_count(s->t[MAPS_CANONICAL]),
		maps_table_count(s->t[MAPS_TRANSPORT]),
		maps_table_count(s->relay_networks));
	mapset_put(s);
}

static const cfg *running_conf(void *arg)
{
	node_run *n = arg;
	return n->conf;
}

static void reload(node_run *n)
{
	cfg *nc;
	cfg_errors errs;
	if (n->config_path == NULL) {
		log_msg(LOG_NOTICE, "msg=\"SIGHUP: no configuration file; nothing "
			"to reload\"");
		return;
	}
	if (load_config_file(n->config_path, &nc) != 0) {
		log_msg(LOG_ERR, "msg=\"reload refused; the old configuration "
			"stays\"");
		return;
	}
	if (cfg_reload_check(n->conf, nc, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_msg(LOG_ERR, "msg=\"reload refused: needs a restart\" "
				"key=\"%s\"", errs.e[i].text);
		cfg_free(&nc);
		return;
	}
	char err[256];
	if (router_reload(n->routes, cfg_str(nc, "transport_map"), err,
			  sizeof(err)) != 0) {
		log_msg(LOG_ERR, "msg=\"reload refused: transport_map\" error=\"%s\"",
			err);
		cfg_free(&nc);
		return;
	}
	/* The tables: a bad file refuses this part only; the tables in force
	 * stay, and so do the map settings they were built with. */
	char merr[MAPSET_ERROR_MAX];
	if (mapset_reload(n->maps, nc, merr) != 0)
		log_msg(LOG_ERR, "msg=\"map reload refused; the old tables stay\" "
			"error=\"%s\"", merr);
	else
		log_maps(n, "maps reloaded");
	log_level lv;
	if (log_level_parse(cfg_str(nc, "log_level"), &lv))
		log_set_level(lv);
	server_reconfigure(n->srv, nc);
	relay_reconfigure(n->rl, nc);
	tlog_reconfigure(n->tl, nc);
	outbound_reconfigure(n->out, nc);
	cfg_free(&n->conf);
	n->conf = nc;
	log_msg(LOG_NOTICE, "msg=\"configuration reloaded\" file=%s",
		n->config_path);
}

static void close_everything(node_run *n)
{
	for (size_t i = 0; i < n->n_tcp; i++)
		tcp_listener_close(&n->tcp[i]);
	for (size_t i = 0; i < n->n_quic; i++)
		quic_server_stop(&n->quic[i]);
	smtpd_stop(n->smtp);
	admin_stop(&n->adm);
	outbound_stop(n->out);
	uv_close((uv_handle_t *)&n->sig_hup, NULL);
	uv_close((uv_handle_t *)&n->sig_term, NULL);
	uv_close((uv_handle_t *)&n->sig_int, NULL);
	uv_close((uv_handle_t *)&n->drain_timer, NULL);
	uv_stop(&n->loop);
}

static void drained(void *arg)
{
	node_run *n = arg;
	log_msg(LOG_NOTICE, "msg=\"drained; closing connections\"");
	uv_timer_stop(&n->drain_timer);
	close_everything(n);
}

static void drain_timeout_cb(uv_timer_t *t)
{
	node_run *n = t->data;
	log_msg(LOG_WARN, "msg=\"drain timed out; closing with requests in "
		"progress\"");
	close_everything(n);
}

static void on_signal(uv_signal_t *h, int signum)
{
	node_run *n = h->data;
	if (signum == SIGHUP) {
		reload(n);
		return;
	}
	if (n->stopping)
		return;
	n->stopping = true;
	log_msg(LOG_NOTICE, "msg=\"stopping: draining requests\" signal=%s",
		signum == SIGTERM ? "TERM" : "INT");
	for (size_t i = 0; i < n->n_tcp; i++)
		tcp_listener_pause(n->tcp[i]);
	for (size_t i = 0; i < n->n_quic; i++)
		quic_server_pause(n->quic[i]);
	uv_timer_start(&n->drain_timer, drain_timeout_cb, DRAIN_MAX_S * 1000u, 0);
	server_drain(n->srv, drained, n);
}

static void notify_cb(void *arg, const char *did)
{
	node_run *n = arg;
	if (n->srv != NULL)
		server_notify(n->srv, did);
}

/* Started as root: give the data directory to `user`, then become it
 * (after the ports are bound). */
static int lookup_user(const cfg *c, struct passwd *pw_r, char *buf,
		       size_t buflen)
{
	const char *user = cfg_str(c, "user");
	if (geteuid() != 0)
		return 0;
	if (*user == '\0') {
		log_msg(LOG_CRIT, "msg=\"refusing to run as root: set `user` to an "
			"unprivileged account\"");
		return -1;
	}
	struct passwd *pw = NULL;
	if (getpwnam_r(user, pw_r, buf, buflen, &pw) != 0 || pw == NULL) {
		log_msg(LOG_CRIT, "msg=\"no such user\" user=%s", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_msg(LOG_CRIT, "msg=\"`user` must not be root\"");
		return -1;
	}
	return 1;
}

static int chown_data_dir(const cfg *c, uid_t uid, gid_t gid)
{
	static const char *const files[] = {
		"", "node.key", "gateway.key", "node.pass", "storage.key", "tls.crt", "tls.key",
		"node.db", "node.db-wal", "node.db-shm", "maps.db", "mtasts.db",
		"maps.db-journal",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[PATH_MAX];
		if (node_data_path(c, files[i], path) != 0)
			return -1;
		if (chown(path, uid, gid) != 0 && errno != ENOENT) {
			log_msg(LOG_CRIT, "msg=\"cannot chown\" path=%s error=\"%s\"",
				path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int drop_privileges(const struct passwd *pw)
{
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot drop privileges\" error=\"%s\"",
			strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_msg(LOG_CRIT, "msg=\"privileges were not dropped\"");
		return -1;
	}
	log_msg(LOG_INFO, "msg=\"privileges dropped\" user=%s uid=%u",
		pw->pw_name, (unsigned)pw->pw_uid);
	return 0;
}

static int read_text(const cfg *c, const char *name, char **text_r)
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	if (node_data_path(c, name, path) != 0 ||
	    util_read_file(path, 64 * 1024, &buf, &len) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot read\" file=%s error=\"%s\"", name,
			strerror(errno));
		return -1;
	}
	*text_r = (char *)buf;
	return 0;
}

static void smtp_notify(void *arg, const char *did)
{
	node_run *n = arg;
	if (n->srv != NULL)
		server_notify(n->srv, did);
}

static void log_stats_cb(void *arg, tlog_stats *st)
{
	tlog_get_stats(((node_run *)arg)->tl, st);
}

static void log_sign_cb(void *arg)
{
	tlog_wake(((node_run *)arg)->tl);
}

static void out_wake(void *arg)
{
	node_run *n = arg;
	if (n->out != NULL)
		outbound_wake(n->out);
}

static int bind_all(node_run *n)
{
	const cfg *c = n->conf;
	uint16_t port = (uint16_t)cfg_int(c, "port");
	bool want_tls = false, want_quic = false;
	for (size_t i = 0; i < cfg_list_len(c, "transports"); i++) {
		const char *t = cfg_list_item(c, "transports", i);
		if (strcmp(t, "tls") == 0)
			want_tls = true;
		else if (strcmp(t, "quic") == 0)
			want_quic = true;
		else {
			log_msg(LOG_CRIT, "msg=\"unknown transport\" transport=%s", t);
			return -1;
		}
	}
	char *crt, *key;
	const char *err = NULL;
	if (read_text(c, "tls.crt", &crt) != 0)
		return -1;
	if (read_text(c, "tls.key", &key) != 0) {
		free(crt);
		return -1;
	}
	int r = tls_creds_server(crt, key, &n->creds, &err);
	if (r != 0)
		log_msg(LOG_CRIT, "msg=\"TLS credentials\" error=\"%s\"", err);
	for (size_t i = 0; r == 0 && i < cfg_list_len(c, "listen"); i++) {
		const char *addr = cfg_list_item(c, "listen", i);
		if (i >= MAX_LISTEN) {
			log_msg(LOG_CRIT, "msg=\"too many listen addresses\"");
			r = -1;
			break;
		}
		/* Port 0: TLS picks one, QUIC takes the same number. */
		uint16_t p = port;
		if (want_tls) {
			if (tcp_listen(&n->loop, &n->srv, n->creds, addr, p,
				       &n->tcp[n->n_tcp], &err) != 0) {
				log_msg(LOG_CRIT, "msg=\"cannot listen\" transport=tls "
					"addr=%s port=%u error=\"%s\"", addr, p, err);
				r = -1;
				break;
			}
			p = tcp_listener_port(n->tcp[n->n_tcp++]);
			log_msg(LOG_NOTICE, "msg=\"listening\" transport=tls addr=%s "
				"port=%u", addr, p);
		}
		if (want_quic) {
			quic_server_opts qo = {
				.loop = &n->loop, .host = addr, .port = p,
				.cert_pem = crt, .key_pem = key,
				.max_conns = (unsigned)cfg_int(c, "max_connections"),
				.max_conns_per_ip = (unsigned)cfg_int(c, "max_connections_per_ip"),
				.max_streams = (unsigned)cfg_int(c, "max_streams"),
				.max_frame = 64u * 1024u,
				.idle_timeout_ms = (unsigned)cfg_int(c, "idle_timeout") * 1000u,
				.handshake_timeout_ms = (unsigned)cfg_int(c, "handshake_timeout") * 1000u,
			};
			if (quic_server_start(&qo, &quic_cbs, n, &n->quic[n->n_quic],
					      &err) != 0) {
				log_msg(LOG_CRIT, "msg=\"cannot listen\" transport=quic "
					"addr=%s port=%u error=\"%s\"", addr, p, err);
				r = -1;
				break;
			}
			log_msg(LOG_NOTICE, "msg=\"listening\" transport=quic addr=%s "
				"port=%u", addr, quic_server_port(n->quic[n->n_quic]));
			n->n_quic++;
		}
	}
	if (r == 0) {
		smtpd_params sp = {
			.loop = &n->loop, .st = &n->st, .node = &n->id,
			.maps = &n->maps,
			.node_cert_pem = crt, .node_key_pem = key,
			.notify = smtp_notify, .notify_arg = n,
			.out_wake = out_wake, .out_arg = n, .dkim = n->dkim,
			.lanes = n->lanes,
			.did_resolve = did_resolve, .did_arg = n,
		};
		if (smtpd_start(&sp, c, &n->smtp, &err) != 0) {
			log_msg(LOG_CRIT, "msg=\"cannot listen\" transport=smtp "
				"error=\"%s\"", err);
			r = -1;
		}
	}
	sodium_memzero(key, strlen(key));
	free(key);
	free(crt);
	return r;
}

static int start_services(node_run *n)
{
	const char *err = NULL;
	char ebuf[256], db[PATH_MAX];
	if (node_load_identity(n->conf, &n->id) != 0 ||
	    node_load_key(n->conf, "gateway.key", &n->gw_id) != 0 ||
	    node_load_storage_key(n->conf, n->storage_key) != 0)
		return -1;
	if (node_data_path(n->conf, "node.db", db) != 0)
		return -1;
	store_opts so = { .path = db, .key = n->storage_key };
	if (store_open(&so, &n->st, &err) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot open the store\" path=%s "
			"error=\"%s\"", db, err);
		return -1;
	}
	if (router_create(cfg_str(n->conf, "transport_map"), &n->routes, ebuf,
			  sizeof(ebuf)) != 0) {
		log_msg(LOG_CRIT, "msg=\"transport_map\" error=\"%s\"", ebuf);
		return -1;
	}
	/* The tables, as the node's user: a table file the node cannot
	 * read at start it could not read on SIGHUP. */
	char merr[MAPSET_ERROR_MAX];
	if (node_data_path(n->conf, "maps.db", db) != 0)
		return -1;
	if (mapset_open(n->conf, db, &n->maps, merr) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot load the maps\" error=\"%s\"",
			merr);
		return -1;
	}
	log_maps(n, "maps loaded");
	const char *hn = cfg_str(n->conf, "smtp_hostname");
	gateway_params gp = {
		.id = n->gw_id, .maps = n->maps, .dkim = n->dkim, .lanes = n->lanes,
		.hostname = *hn != '\0' ? hn : cfg_list_item(n->conf, "domains", 0),
		.didsig_sign = cfg_bool(n->conf, "didsig_sign"),
	};
	if (gateway_new(&gp, &n->gw, &err) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot start the gateway\" error=\"%s\"",
			err);
		return -1;
	}
	server_params sp = {
		.loop = &n->loop, .st = n->st, .node = n->id,
		.storage_key = n->storage_key, .routes = n->routes, .gw = n->gw,
		.maps = n->maps,
	};
	if (server_create(&sp, n->conf, &n->srv, &err) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot start the core\" error=\"%s\"", err);
		return -1;
	}
	relay_params rp = {
		.st = n->st, .routes = n->routes, .node = n->id,
		.notify = notify_cb, .notify_arg = n,
	};
	if (relay_start(&rp, n->conf, &n->rl, &err) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot start the relay\" error=\"%s\"", err);
		return -1;
	}
	server_set_relay(n->srv, n->rl);
	tlog_params tp = { .st = n->st, .routes = n->routes, .node = n->id };
	if (tlog_start(&tp, n->conf, &n->tl, &err) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot start the transparency log\" "
			"error=\"%s\"", err);
		return -1;
	}
	char sts_db[PATH_MAX];
	if (node_data_path(n->conf, "mtasts.db", sts_db) != 0)
		return -1;
	outbound_params op = {
		.loop = &n->loop, .st = n->st, .maps = n->maps, .node = n->id,
		.auth_text = n->auth_text, .mtasts_db = sts_db,
		.notify = smtp_notify, .arg = n,
	};
	if (outbound_start(&op, n->conf, &n->out, ebuf, sizeof(ebuf)) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot start outbound delivery\" "
			"error=\"%s\"", ebuf);
		return -1;
	}
	if (n->auth_text != NULL) {
		sodium_memzero(n->auth_text, strlen(n->auth_text));
		free(n->auth_text);
		n->auth_text = NULL;
	}
	server_set_outbound(n->srv, out_wake, n);
	log_msg(LOG_INFO, "msg=\"outbound ready\" gateway=%s dkim_keys=%zu",
		n->gw_id->pub.did, dkimkeys_count(n->dkim));
	admin_params ap = {
		.loop = &n->loop, .data_dir = cfg_str(n->conf, "data_dir"),
		.maps = n->maps, .conf = running_conf, .arg = n,
		.st = n->st, .queue_changed = out_wake,
		.log_stats = log_stats_cb, .log_sign = log_sign_cb,
	};
	if (admin_start(&ap, &n->adm, ebuf, sizeof(ebuf)) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot make the admin socket\" "
			"error=\"%s\"", ebuf);
		return -1;
	}
	log_msg(LOG_INFO, "msg=\"admin socket ready\" path=%s/%s",
		cfg_str(n->conf, "data_dir"), ADMIN_SOCKET_NAME);
	return 0;
}

int node_run_main(cfg *conf, const char *config_path)
{
	node_run n;
	memset(&n, 0, sizeof(n));
	n.conf = conf;
	n.config_path = config_path;
	pthread_mutex_init(&n.did_lock, NULL);
	pthread_cond_init(&n.did_idle, NULL);
	log_level lv = LOG_INFO;
	log_level_parse(cfg_str(conf, "log_level"), &lv);
	log_init(2, lv, "aftersmtpd");
	signal(SIGPIPE, SIG_IGN);
	/* Every connection is a descriptor: take the hard limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)cfg_int(conf, "max_connections") + 64)
		log_msg(LOG_WARN, "msg=\"the descriptor limit is below "
			"max_connections\" limit=%llu max_connections=%lld",
			(unsigned long long)rl.rlim_cur,
			(long long)cfg_int(conf, "max_connections"));

	/* libuv's pool runs the handlers: size it before first use. */
	long workers = cfg_int(conf, "workers");
	if (workers == 0)
		workers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 2;
	char wbuf[16];
	snprintf(wbuf, sizeof(wbuf), "%ld", workers);
	setenv("UV_THREADPOOL_SIZE", wbuf, 1);

	struct passwd pw;
	char pwbuf[4096];
	int as_root = lookup_user(conf, &pw, pwbuf, sizeof(pwbuf));
	if (as_root < 0 || node_init_data_dir(conf, true) != 0 ||
	    (as_root == 1 && chown_data_dir(conf, pw.pw_uid, pw.pw_gid) != 0) ||
	    uv_loop_init(&n.loop) != 0) {
		cfg_free(&n.conf);
		return 1;
	}
	/* Signals are caught from here on (a SIGTERM during the start is
	 * handled once the loop runs, instead of killing the node); their
	 * callbacks only run inside uv_run, after the start. */
	uv_signal_init(&n.loop, &n.sig_hup);
	uv_signal_init(&n.loop, &n.sig_term);
	uv_signal_init(&n.loop, &n.sig_int);
	n.sig_hup.data = n.sig_term.data = n.sig_int.data = &n;
	uv_signal_start(&n.sig_hup, on_signal, SIGHUP);
	uv_signal_start(&n.sig_term, on_signal, SIGTERM);
	uv_signal_start(&n.sig_int, on_signal, SIGINT);
	uv_timer_init(&n.loop, &n.drain_timer);
	n.drain_timer.data = &n;
	int rc = 1;
	char kerr[300];
	const char *af = cfg_str(conf, "smtp_out_auth_file");
	if (dkimkeys_load(conf, &n.dkim, kerr, sizeof(kerr)) != 0) {
		log_msg(LOG_CRIT, "msg=\"cannot load the DKIM keys\" error=\"%s\"",
			kerr);
		goto out;
	}
	if (lanes_new(conf, &n.lanes, kerr, sizeof(kerr)) != 0) {
		log_msg(LOG_CRIT, "msg=\"bad lane configuration\" error=\"%s\"",
			kerr);
		goto out;
	}
	if (*af != '\0') {
		uint8_t *buf;
		size_t len;
		if (util_read_file(af, 256 * 1024, &buf, &len) != 0) {
			log_msg(LOG_CRIT, "msg=\"cannot read smtp_out_auth_file\" "
				"file=%s error=\"%s\"", af, strerror(errno));
			goto out;
		}
		n.auth_text = (char *)buf;
	}
	if (bind_all(&n) != 0)
		goto out;
	if (as_root == 1 && drop_privileges(&pw) != 0)
		goto out;
	if (start_services(&n) != 0)
		goto out;
	log_msg(LOG_NOTICE, "msg=\"node ready\" did=%s workers=%ld pid=%ld",
		n.id->pub.did, workers, (long)getpid());
	uv_run(&n.loop, UV_RUN_DEFAULT);
	rc = 0;
out:
	if (rc != 0) {
		for (size_t i = 0; i < n.n_tcp; i++)
			tcp_listener_close(&n.tcp[i]);
		for (size_t i = 0; i < n.n_quic; i++)
			quic_server_stop(&n.quic[i]);
		smtpd_stop(n.smtp);
		admin_stop(&n.adm);
		outbound_stop(n.out);
		uv_close((uv_handle_t *)&n.sig_hup, NULL);
		uv_close((uv_handle_t *)&n.sig_term, NULL);
		uv_close((uv_handle_t *)&n.sig_int, NULL);
		uv_close((uv_handle_t *)&n.drain_timer, NULL);
	}
	/* SMTP messages being sealed, and outbound attempts being recorded,
	 * finish while the store is open */
	while (!smtpd_idle(n.smtp) || !outbound_idle(n.out))
		uv_run(&n.loop, UV_RUN_ONCE);
	smtpd_free(&n.smtp);
	outbound_free(&n.out); /* its DNS handles close in the run below */
	did_close(&n);      /* no DID lookup uses the server or the store */
	tlog_stop(&n.tl);   /* signs a last head of what was committed */
	relay_stop(&n.rl);
	store_close(&n.st); /* finishes the writes in flight */
	server_destroy(&n.srv); /* freed when its sessions are */
	uv_run(&n.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&n.loop) != 0)
		log_msg(LOG_WARN, "msg=\"handles left open at exit\"");
	gateway_free(&n.gw);
	dkimkeys_free(&n.dkim);
	lanes_free(&n.lanes);
	amp_identity_destroy(&n.gw_id);
	if (n.auth_text != NULL) {
		sodium_memzero(n.auth_text, strlen(n.auth_text));
		free(n.auth_text);
	}
	mapset_close(&n.maps); /* after the SMTP server: nothing reads it */
	router_free(&n.routes);
	tls_creds_free(&n.creds);
	amp_identity_destroy(&n.id);
	sodium_memzero(n.storage_key, sizeof(n.storage_key));
	cfg_free(&n.conf);
	pthread_cond_destroy(&n.did_idle);
	pthread_mutex_destroy(&n.did_lock);
	if (rc == 0)
		log_msg(LOG_NOTICE, "msg=\"stopped\"");
	return rc;
}
