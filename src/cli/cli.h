/*
 * cli.h — what the `amp` command's files share: the environment (home
 * directory, keystore path, passphrase source), error reporting, loading
 * the keystore and resolving DIDs to public identities.
 *
 * Exit codes of every command: 0 success, 1 failure (bad input, failed
 * verification, I/O), 2 usage error.
 */
#ifndef AMP_CLI_H
#define AMP_CLI_H

#include "amp/amp.h"
#include "amp/amp-log.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

typedef struct cli_env {
	char home[3072];         /* $AMP_HOME or ~/.amp; short enough for home/known/DID.json */
	char keystore[PATH_MAX]; /* --keystore, $AMP_KEYSTORE, home/keystore.json */
	int passphrase_fd;       /* --passphrase-fd, or -1 */
	const char *cmd;         /* "seal", "did document", … for messages */
	const char *docs[64];    /* --doc FILE options, in order */
	size_t n_docs;
	/* The --doc files, read and validated once, on first use. */
	amp_public_identity doc_ids[64];
	bool docs_loaded;
} cli_env;

/* Options every command accepts; a command's long-option table starts with
 * CLI_COMMON_LONGOPTS and its option loop calls cli_next_opt. */
enum {
	OPT_HOME = 1000,
	OPT_KEYSTORE,
	OPT_PASSFD,
	OPT_DOC,
	OPT_HELP = 'h',
};
#define CLI_COMMON_LONGOPTS                                                   \
	{ "home", required_argument, NULL, OPT_HOME },                        \
	{ "keystore", required_argument, NULL, OPT_KEYSTORE },                \
	{ "passphrase-fd", required_argument, NULL, OPT_PASSFD },             \
	{ "doc", required_argument, NULL, OPT_DOC },                          \
	{ "help", no_argument, NULL, OPT_HELP }
#define CLI_COMMON_HELP                                                       \
	"Common options:\n"                                                   \
	"  --home DIR         state directory (default $AMP_HOME, else ~/.amp)\n" \
	"  --keystore FILE    keystore (default $AMP_KEYSTORE, else\n"        \
	"                     HOME/keystore.json)\n"                          \
	"  --passphrase-fd N  read the keystore passphrase from file\n"       \
	"                     descriptor N (else $AMP_PASSPHRASE, else a\n"   \
	"                     prompt on the terminal)\n"                      \
	"  --doc FILE         use this DID document to resolve a DID\n"       \
	"                     (repeatable; else HOME/known/DID.json)\n"       \
	"  -h, --help         show this help\n"

/* Fill env from the environment. Returns CLI_OK or CLI_FAIL. */
int cli_env_init(cli_env *env);
/* getopt_long that handles the common options itself.  Returns the next
 * command-specific option, -1 at the end, or '?' after an unknown option
 * or an invalid value (already reported). */
int cli_next_opt(cli_env *env, int argc, char **argv, const char *shorts,
		 const struct option *longs);

/* "Try 'amp CMD --help'" on standard error, after a usage error. */
void cli_usage_hint(const cli_env *env);
void cli_err(const cli_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "amp: CMD: WHAT: AMP_E_X: detail" and return CLI_FAIL. */
int cli_fail(const cli_env *env, const char *what, amp_err e,
	     const char *detail);

/* Passphrase from fd, $AMP_PASSPHRASE or the terminal (asked twice when
 * confirm).  Returned in sodium_malloc()ed memory: free with
 * cli_passphrase_free. */
int cli_passphrase(const cli_env *env, bool confirm, char **pass_r,
		   size_t *len_r);
void cli_passphrase_free(char **pass, size_t len);

/* The keystore's path: --keystore, $AMP_KEYSTORE or HOME/keystore.json.
 * NULL (after an error message) when it does not fit. */
const char *cli_keystore_path(const cli_env *env, char buf[PATH_MAX]);
int cli_load_public(const cli_env *env, amp_public_identity *pub_r);
int cli_load_identity(const cli_env *env, amp_identity **id_r);
/* The keystore's identity and the retired ones `amp key rotate` kept
 * (KEYSTORE.vN, same passphrase, newest first), with one passphrase read.
 * Free the retired ones with cli_identities_free. */
int cli_load_identities(const cli_env *env, amp_identity **id_r,
			amp_identity ***retired_r, size_t *n_r);
void cli_identities_free(amp_identity ***retired, size_t n);

/* Resolve a canonical DID: --doc files, then our own identity (me may be
 * NULL), then HOME/known/DID.json. */
int cli_resolve(cli_env *env, const char *did,
		const amp_public_identity *me, amp_public_identity *pub_r);

struct nclient;
/* Resolve a DID: --doc files, ourselves (me may be NULL), HOME/known;
 * else ask the node on c and remember its answer in HOME/known (trust on
 * first use). */
int cli_resolve_via(cli_env *env, struct nclient *c, const char *did,
		    const amp_public_identity *me, amp_public_identity *pub_r);

/* ------------------------------ opening fetched mail (cmd-node.c) */
/* One envelope from our inbox, as cli_open_fetched found it. */
typedef struct cli_opened {
	char sender[AMP_DID_MAX + 1];  /* the header's sender ("" when the
					  envelope could not be decoded) */
	uint8_t envelope_id[AMP_ENVELOPE_ID_BYTES]; /* zero when undecodable */
	char content_type[64];         /* "message/rfc822", "text/plain", ... */
	uint8_t *body;                 /* the plaintext: cli_opened_clear */
	size_t len;
	char reason[256];              /* why not, after CLI_FAIL */
} cli_opened;
/* Decode one envelope fetched for id, resolve its sender's keys through
 * c (cli_resolve_via: known, else looked up and remembered), verify and
 * open it; a signature that fails under a known key is retried after the
 * sender's proven key rotation, a key unwrap that fails with our
 * current key is retried with the retired ones.  CLI_OK with o->body, or
 * CLI_FAIL with o->reason (o->sender and o->envelope_id set when the
 * envelope decoded).  Blocks on c.  `amp fetch` and the bridge's sync
 * (src/bridge/bsync.c) both open mail through here. */
int cli_open_fetched(cli_env *env, struct nclient *c, const amp_identity *id,
		     amp_identity *const *retired, size_t n_retired,
		     const uint8_t *data, size_t len, cli_opened *o)
	__attribute__((warn_unused_result));
/* Wipe and free o->body. */
void cli_opened_clear(cli_opened *o);
/* The value of key in a node's delivery note ("rcpt=a@b folder=Junk
 * ..."), xtext-decoded (RFC 3461) into out; false when absent or
 * malformed (never a control byte). */
bool cli_note_value(const char *note, const char *key, char *out,
		    size_t size);

/* Find did among the --doc files (read on first use): CLI_OK,
 * CLI_NOT_FOUND when it is not among them, CLI_FAIL when a --doc file is
 * unreadable (reported). */
#define CLI_NOT_FOUND 3
int cli_doc_find(cli_env *env, const char *did, amp_public_identity *pub_r);

/* Read a DID document file and validate it. */
int cli_read_doc(const cli_env *env, const char *path,
		 amp_public_identity *pub_r);

/* Write output (file atomically or "-" for stdout); flags as for
 * util_write_file_atomic.  CLI_OK or CLI_FAIL. */
int cli_write_out(const cli_env *env, const char *path, const void *data,
		  size_t len, mode_t mode, int flags);

/* ------------------------------------------- the home node (cli-conn.c) */
struct nclient;
struct cfg;
typedef struct cli_conn_opts {
	const char *node;              /* --node, else client.conf */
	const char *transport;         /* --transport, else client.conf */
	const char *node_key;          /* --node-key, else client.conf */
	unsigned timeout_ms;
} cli_conn_opts;

/* HOME/client.conf's path, and the file read (missing: defaults). */
int cli_client_conf_path(const cli_env *env, char out[PATH_MAX]);
int cli_load_client_conf(const cli_env *env, struct cfg **c_r);
/* Connect to the home node: options over client.conf. */
int cli_connect_node(cli_env *env, const cli_conn_opts *co,
		     struct nclient **c_r);
/* The same, then authenticate as the keystore's identity. */
int cli_connect_auth(cli_env *env, const cli_conn_opts *co, amp_identity **id_r,
		     struct nclient **c_r);
/* A connection option from CLI_CONN_LONGOPTS: 1 taken, 0 not one, -1
 * bad value (reported). */
int cli_parse_conn_opt(cli_env *env, int c, cli_conn_opts *co);
#define CLI_CONN_LONGOPTS                                                         \
	{ "node", required_argument, NULL, 'N' },                             \
	{ "transport", required_argument, NULL, 'T' },                        \
	{ "node-key", required_argument, NULL, 'K' },                         \
	{ "timeout", required_argument, NULL, 'W' }
#define CLI_CONN_HELP                                                             \
	"Connection options (default: HOME/client.conf, written by register):\n" \
	"  --node HOST:PORT   the home node\n"                               \
	"  --transport T      quic (default) or tls (TLS 1.3 over TCP, for\n" \
	"                     networks that block UDP)\n"                     \
	"  --node-key KEY     the node's signing key (base64url); the node\n" \
	"                     must prove it holds it (else: trust on first use)\n" \
	"  --timeout SECONDS  per request (default 10)\n"


/* ------------------------------------- tree heads seen (cli-heads.c) */
/* Accept a head of the log of the node on c whose signature the caller
 * checked (client-log.h does): it must be consistent with the newest head
 * of that log seen before (HOME/heads/<log DID>), whichever is larger;
 * the newer is remembered.  CLI_OK, or CLI_FAIL after a message; a proven
 * contradiction also writes HOME/heads/<log DID>.evidence. */
int cli_head_accept(cli_env *env, struct nclient *c, const amp_log_head *h);
/* The newest head seen of log: 1, 0 none, -1 (errno). */
int cli_head_seen(const cli_env *env, const char *log, amp_log_head *h_r);
/* "LABEL: LOG size N root HEX time T" */
void cli_head_print(FILE *f, const char *label, const amp_log_head *h);

/* ------------------------------------ identity changes (cmd-key.c) */
/* After the node accepted a change: wait up to wait_s seconds until its
 * log shows `want` (time aside) as the latest leaf of its subject in a
 * signed head, proven and consistent with the heads seen before.  Prints
 * where it is; CLI_FAIL with a warning not to trust the node otherwise. */
int cli_log_confirm(cli_env *env, struct nclient *c, const amp_log_leaf *want,
		    unsigned wait_s);
/* The node whose log holds did's history: ours (*remote_r false, *pub_r
 * the connection's node) or its home node, whose key is looked up through
 * ours (the connection must be authenticated). */
int cli_log_node_of(cli_env *env, struct nclient *c, const char *did,
		    amp_public_identity *pub_r, bool *remote_r);
/* `amp did resolve DID`: the document's keys and their proven history. */
int cli_did_resolve(cli_env *env, const cli_conn_opts *co, const char *did);
/* "interactive", "moderate", "sensitive", "min" */
bool cli_kdf_parse(const char *s, amp_kdf_level *level_r);

/* `amp log status|alarms|sign` over the admin socket (cmd-logadmin.c):
 * sub is "status", "alarms" (arg: N or NULL) or "sign"; config or
 * data_dir may be NULL. */
int cli_log_admin(cli_env *env, const char *sub, const char *arg,
		  const char *config, const char *data_dir);
extern const char cli_log_admin_help[];

int cmd_keygen(cli_env *env, int argc, char **argv);
int cmd_key(cli_env *env, int argc, char **argv);
int cmd_did(cli_env *env, int argc, char **argv);
int cmd_seal(cli_env *env, int argc, char **argv);
int cmd_open(cli_env *env, int argc, char **argv);
int cmd_verify(cli_env *env, int argc, char **argv);
int cmd_pow(cli_env *env, int argc, char **argv);
int cmd_register(cli_env *env, int argc, char **argv);
int cmd_send(cli_env *env, int argc, char **argv);
int cmd_fetch(cli_env *env, int argc, char **argv);
int cmd_inbox(cli_env *env, int argc, char **argv);
int cmd_ack(cli_env *env, int argc, char **argv);
int cmd_lookup(cli_env *env, int argc, char **argv);
int cmd_admin(cli_env *env, int argc, char **argv);
int cmd_map(cli_env *env, int argc, char **argv);
int cmd_dkim(cli_env *env, int argc, char **argv);
int cmd_queue(cli_env *env, int argc, char **argv);
int cmd_log(cli_env *env, int argc, char **argv);
int cmd_receipt(cli_env *env, int argc, char **argv);
int cmd_bridge(cli_env *env, int argc, char **argv);

#endif
