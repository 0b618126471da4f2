/*
 * server-private.h — what the node's request core (server.c) shares with
 * the files that hold some of its operations (server-log.c: the
 * transparency log's operations, PROTOCOL.md §11.4).  Not for anyone else.
 */
#ifndef AMP_SERVER_PRIVATE_H
#define AMP_SERVER_PRIVATE_H

#include "server.h"

#include "amp.pb-c.h"
#include "gateway.h"
#include "nodeproto.h"

#include <arpa/inet.h>
#include <pthread.h>

#define SWEEP_MS 200u
#define LIMIT_SLOTS 65536u         /* rate-limit buckets (hashed keys) */
#define DIRCACHE_SLOTS 1024u       /* remote DID documents cached */
#define DIRCACHE_TTL 600u          /* seconds */
#define UNREACH_SLOTS 256u         /* domains whose node failed recently */
#define UNREACH_TTL 60u            /* seconds they are not tried again */
#define FETCH_LIMIT_DEFAULT 100u
#define FETCH_LIMIT_MAX 1000u
#define INFLIGHT_BYTES_MAX (1024ull * 1024u * 1024u)

enum { ST_ANY, ST_HELLO, ST_USER };
enum auth_kind { AUTH_NONE, AUTH_USER, AUTH_PEER };

typedef struct bucket {
	double tokens;
	uint64_t last_ms;
	uint32_t conns;
} bucket;

typedef struct dircache_slot {
	char did[AMP_DID_MAX + 1];
	amp_public_identity pub;
	char *doc;
	uint64_t expires;
} dircache_slot;

typedef struct unreach_slot {
	char domain[AMP_DID_DOMAIN_MAX + 1];
	uint64_t until;
} unreach_slot;

typedef struct settings {          /* the reloadable ones */
	uint32_t pow_bits;
	double rate_ip, rate_id;
	unsigned max_jobs;
	size_t max_message;
	uint64_t fetch_wait_max_ms;
	uint64_t relay_lifetime;
	uint64_t queue_lifetime;          /* maximal_queue_lifetime */
	unsigned peer_timeout_ms;
} settings;

struct sreq;

struct server {
	uv_loop_t *loop;
	store *st;
	const amp_identity *node;
	char *node_doc;
	router *routes;
	struct relay *relay;
	gateway *gw;                      /* NULL: no gateway */
	struct mapset *maps;              /* NULL: no canonical_maps */
	void (*out_wake)(void *arg);      /* mail queue entries were written */
	void *out_arg;
	uint8_t invite_key[32], token_key[32], limit_key[16];
	char **domains;
	size_t n_domains;
	char **log_witnesses;             /* domains whose nodes may cosign */
	size_t n_log_witnesses;
	bool log_receipts;                /* log a receipt per accepted envelope */
	settings set;
	unsigned max_conns, max_conns_ip, max_streams;
	size_t max_frame;
	uint64_t idle_ms, handshake_ms;
	/* state */
	unsigned n_conns;
	unsigned jobs;               /* requests queued or running on workers */
	unsigned active;             /* requests not yet answered */
	uint64_t inflight_bytes;
	bucket *buckets;             /* LIMIT_SLOTS */
	struct sreq *waiters;
	sconn *conns;                /* all sessions (for the sweep) */
	uv_timer_t sweep;
	uv_async_t done_async;
	pthread_mutex_t done_lock;
	struct sreq *done_head;
	struct notice *notices;      /* DIDs to wake, from other threads */
	bool draining;
	bool started, destroying;
	int handles_open;
	void (*drain_cb)(void *);
	void *drain_arg;
	server_stats stats;
	pthread_mutex_t dir_lock;
	dircache_slot *dircache;
	unreach_slot *unreach;       /* under dir_lock */
};

struct sconn {
	server *s;
	const sconn_ops *ops;
	void *t;
	sconn *prev, *next;
	int refs;
	bool closed, ready, hello_done;
	enum auth_kind auth;
	char did[AMP_DID_MAX + 1];
	uint8_t x[NP_X_BYTES], challenge[NP_CHALLENGE_BYTES];
	char ip[INET6_ADDRSTRLEN];
	unsigned ip_slot;
	unsigned inflight;
	bool paused;
	uint64_t opened_ms, last_ms;
};

typedef struct notice {
	struct notice *next;
	char did[AMP_DID_MAX + 1];
} notice;

typedef struct deliver_ctx {
	size_t n;
	char (*dids)[AMP_DID_MAX + 1];
	Amp__V1__Status *status;
	const char **error;
	const char **local;
	size_t n_local;
	char (*domains)[254];
	size_t n_domains;
	bool outbound;                    /* a mail queue entry was written */
	char gw_why[200];                 /* why the gateway refused */
} deliver_ctx;

typedef struct sreq {
	server *s;
	sconn *c;
	uint64_t tag, rid;
	size_t in_len;
	Amp__V1__Frame *f;
	int op;
	/* copies of the session's state the worker may read */
	uint8_t x[NP_X_BYTES], challenge[NP_CHALLENGE_BYTES];
	enum auth_kind auth;
	char did[AMP_DID_MAX + 1];
	uv_work_t work;
	int refs;                    /* loop-side owners: work, store */
	uint8_t *out;
	size_t out_len;
	/* results applied on the loop */
	enum auth_kind auth_result;
	bool fetch_empty;
	bool async;                  /* the answer comes from the store */
	deliver_ctx *d;
	/* waiting fetch */
	bool parked, waited;
	uint64_t deadline_ms;
	struct sreq *wnext;
	struct sreq *dnext;          /* completion queue */
} sreq;

typedef struct op_def {
	const char *name;
	int state;
	void (*run)(sreq *r);        /* worker thread; NULL: on the loop */
} op_def;

/* Pack a response (or a bare status) as the request's answer. */
void srv_pack(sreq *r, Amp__V1__Response *resp);
void srv_pack_status(sreq *r, Amp__V1__Status st, const char *error,
		     uint32_t retry_ms);
void srv_pack_amp_error(sreq *r, Amp__V1__Status st, amp_err e);
bool srv_is_local_domain(const server *s, const char *domain);
/* Connect to the node of a peer domain (routes, pinned keys, a recent
 * failure remembered for a minute).  0, or -1 with *error_r. */
int srv_peer_connect(server *s, const char *domain, struct nclient **c_r,
		     const char **error_r);
/* lookup with history of a remote DID: ask its home node, pass the
 * answer through (answers the request). */
void srv_log_remote_history(sreq *r, const char *did, const char *domain);
/* Look a DID up (see server.c). */
int srv_dir_get(server *s, const char *did, bool remote,
		amp_public_identity *pub, char **doc_r, const char **error_r);

/* server-log.c: worker-thread handlers */
void op_log_head(sreq *r);
void op_log_proof(sreq *r);
void op_log_consistency(sreq *r);
void op_log_entries(sreq *r);
void op_log_cosign(sreq *r);
void op_rotate(sreq *r);
void op_revoke(sreq *r);
/* Point lr->head and lr->history at did's key history with proofs
 * (lookup with history: true), owned by the returned object: free it
 * after packing.  NULL with the request answered already. */
typedef struct srv_history srv_history;
srv_history *srv_log_history(sreq *r, const char *did,
			     Amp__V1__LookupResult *lr);
void srv_log_history_free(srv_history *h);

#endif
