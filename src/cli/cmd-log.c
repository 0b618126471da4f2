/*
 * cmd-log.c — `amp log head|verify|monitor|proof|consistency` and
 * `amp receipt get|verify`: what a user, or anyone, does with a node's
 * transparency log (PROTOCOL.md §11; the user's page is
 * docs/transparency.md).
 *
 * Every answer from the node comes through client-log.h, which checks it
 * against the node key pinned for the connection (head signatures, leaf
 * encodings, inclusion proofs), and every head taken from a node goes
 * through cli_head_accept: it must be consistent with the newest head of
 * that log this client saw before (HOME/heads, AMP-R-062).  What this
 * file adds on top:
 *  - verify: an audit of the whole log from its leaves (log_entries, in
 *    pages of 1000): strict decoding, the root rebuilt with the frontier
 *    and compared with the signed head's, every DID's key history folded
 *    (AMP-R-060) in an open-addressing table keyed by subject, receipts
 *    naming this node.  On a root mismatch the first leaf whose served
 *    bytes differ from what the signed tree holds is located with
 *    O(log n) inclusion proofs (logs up to LOCATE_MAX leaves).
 *  - monitor: the same scan, incremental, for one DID.  HOME/monitor/DID
 *    keeps the scanned size, the frontier at that size (so the new leaves
 *    are checked against the new signed head without reading the old
 *    ones again) and the DID's key state.
 *  - consistency: the one request client-log.h has no call returning the
 *    proof itself for; its heads are checked here the way client-log.c
 *    checks them (signature with the connection's node key, log name).
 *  - receipts: a self-contained JSON file (log, node key, head, leaf,
 *    inclusion proof) that `amp receipt verify` checks offline.
 * The monitor state and receipt files are formatted, parsed and (the
 * receipt) checked by logfile.c, which is pure; this file reads and
 * writes them and prints.
 * Everything the node sends is printed as hex, numbers or a canonical
 * DID, never as raw text.  Blocking; one connection per run (monitor:
 * per round).  Limits: 16 --witness; receipt files 64 KiB, monitor
 * states 8 KiB (logfile.h); the leaf hashes kept for locating a changed
 * leaf, 64 MiB.
 */
#include "cli.h"

#include "amp-private.h"
#include "client-log.h"
#include "logfile.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_PAGE 1000u                /* leaves per log_entries (§11.4) */
#define PROGRESS_EVERY 10000u
#define WITNESS_MAX 16u
#define LOCATE_MAX ((uint64_t)1 << 21) /* leaves: 64 MiB of hashes */
#define ID_SLOTS_MIN ((size_t)1024)
#define ID_SLOTS_MAX ((size_t)1 << 26)
#define BUSY_RETRIES 60u              /* a busy or rate-limited request */
#define EVENTS_MAX 4096u              /* key changes of one DID per round */
#define MONITOR_INTERVAL_S 60u
#define RECEIPT_FORMAT LOGFILE_RECEIPT_FORMAT

/* ------------------------------------------------------------- options */

enum {
	OPT_WITNESS = 2000,
	OPT_JSON,
	OPT_PROGRESS,
	OPT_ONCE,
	OPT_INTERVAL,
	OPT_SUBJECT,
	OPT_DIDOPT,
	OPT_SIZE,
	OPT_CONFIG,
	OPT_DATADIR,
	OPT_OUTPUT = 'o',
};

/* Which options were given, to refuse those a subcommand does not take. */
enum {
	G_WITNESS = 1 << 0,
	G_JSON = 1 << 1,
	G_PROGRESS = 1 << 2,
	G_ONCE = 1 << 3,
	G_INTERVAL = 1 << 4,
	G_SUBJECT = 1 << 5,
	G_DID = 1 << 6,
	G_SIZE = 1 << 7,
	G_OUTPUT = 1 << 8,
	G_CONN = 1 << 9,              /* --node, --transport, --timeout */
	G_NODEKEY = 1 << 10,
	G_ADMIN = 1 << 11,            /* --config, --data-dir */
};

typedef struct log_opts {
	cli_conn_opts co;
	char witness[WITNESS_MAX][AMP_DID_MAX + 1];
	size_t n_witness;
	bool json, progress, once;
	unsigned interval;
	uint8_t subject[32];
	char did[AMP_DID_MAX + 1];
	uint64_t size;
	const char *output;
	const char *config, *data_dir;
	unsigned given;
} log_opts;

static const struct option log_longopts[] = {
	CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
	{ "witness", required_argument, NULL, OPT_WITNESS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "did", required_argument, NULL, OPT_DIDOPT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "data-dir", required_argument, NULL, OPT_DATADIR },
	{ NULL, 0, NULL, 0 },
};

static const char log_help[] =
	"Usage: amp log head [--witness DID]... [--json] [OPTIONS]\n"
	"       amp log verify [--witness DID]... [--progress] [OPTIONS]\n"
	"       amp log monitor DID [--once] [--interval SECONDS] [OPTIONS]\n"
	"       amp log proof (INDEX | --subject HEX | --did DID) [--size N]\n"
	"                     [--json] [OPTIONS]\n"
	"       amp log consistency FIRST [SECOND] [--json] [OPTIONS]\n"
	"       amp log status|alarms [N]|sign [--config FILE | --data-dir DIR]\n"
	"\n"
	"Check the transparency log of the home node: the append-only Merkle\n"
	"log (RFC 9162) in which a node records every registration, key\n"
	"rotation and revocation of its users, and a receipt for every\n"
	"envelope it accepts for them (PROTOCOL.md section 11).  Nothing the\n"
	"node says is taken on trust: every tree head's signature is checked\n"
	"with the node's pinned key, every proof is verified here, and every\n"
	"head must be consistent with the heads this client saw before\n"
	"(HOME/heads/NODE-DID).  A node caught showing two histories is\n"
	"reported as INCONSISTENT and both signed heads are kept in\n"
	"HOME/heads/NODE-DID.evidence.  See docs/transparency.md.\n"
	"\n"
	"Commands:\n"
	"  head     the latest signed tree head (log, size, root, time) and\n"
	"           the witnesses' cosignatures of it.  Each --witness DID\n"
	"           (a witness node, did:aftersmtp:DOMAIN:node) must have a\n"
	"           valid cosignature on it, else exit status 1.\n"
	"  verify   audit the whole log from scratch: fetch every leaf the\n"
	"           latest head covers, decode each strictly, rebuild the\n"
	"           Merkle tree and compare its root with the signed one,\n"
	"           check every identity's key history (each change signed by\n"
	"           the key before it, nothing after a revocation) and that\n"
	"           every receipt names this node.  Prints the leaves of each\n"
	"           type and `OK: N leaves, root matches the signed head`, or\n"
	"           the first bad leaf's index and why.  Progress goes to\n"
	"           standard error every 10000 leaves when it is a terminal\n"
	"           (always with --progress).\n"
	"  monitor DID\n"
	"           watch one identity's keys: each round takes the latest\n"
	"           head, reads the leaves added since the last round (all of\n"
	"           them the first time), checks them against the signed head,\n"
	"           and prints one line per change of DID's keys:\n"
	"             DID registered: sig key id K, enc key id K, at T, log index I\n"
	"             DID key rotated to version N: sig key id K, enc key id K,\n"
	"               at T, log index I\n"
	"             DID REVOKED at T, log index I\n"
	"           The first round prints the current state instead; a round\n"
	"           without change prints nothing.  Reading the log itself, not\n"
	"           the node's lookup answers, sees a change the node hides\n"
	"           from lookups.  State: HOME/monitor/DID.  Without --once it\n"
	"           runs until stopped, a round every --interval (default 60)\n"
	"           seconds; a round that cannot reach the node is reported and\n"
	"           retried, anything proven wrong ends it with status 1.\n"
	"  proof INDEX | --subject HEX | --did DID\n"
	"           print leaf INDEX (or the latest leaf with that subject: an\n"
	"           envelope digest or a DID's hash) and its inclusion proof,\n"
	"           verified, against the latest head or the head of size\n"
	"           --size N\n"
	"  consistency FIRST [SECOND]\n"
	"           print the consistency proof between the node's signed\n"
	"           heads of sizes FIRST and SECOND (default: the latest),\n"
	"           verified\n"
	"\n";

/* then cli_log_admin_help (cmd-logadmin.c), then: */
static const char log_help_rest[] =
	"\n"
	"Options:\n"
	"  --witness DID      head, verify: require a valid cosignature by this\n"
	"                     witness node (repeatable, at most 16).  Its key\n"
	"                     comes from --doc, else HOME/known/DID.json, else\n"
	"                     a lookup through the home node (remembered in\n"
	"                     HOME/known); the lookup needs our identity, so\n"
	"                     the keystore passphrase is asked for\n"
	"  --json             head, proof, consistency: print JSON, every hash,\n"
	"                     key and signature in hex, for other verifiers\n"
	"  --progress         verify: progress on standard error even when it\n"
	"                     is not a terminal\n"
	"  --once             monitor: one round, then exit\n"
	"  --interval SECONDS monitor: time between rounds (1-86400)\n"
	"  --subject HEX      proof: the 32-byte subject, 64 hex digits\n"
	"  --did DID          proof: the latest leaf of this DID's key history\n"
	"  --size N           proof: against the signed head of size N\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Examples:\n"
	"  amp log head\n"
	"  amp log head --witness did:aftersmtp:example.net:node\n"
	"  amp log verify --progress\n"
	"  amp log monitor did:aftersmtp:example.org:alice --once\n"
	"  amp log proof --did did:aftersmtp:example.org:alice --json\n"
	"  amp log consistency 120 --json\n"
	"\n"
	"Exit status: 0 verified, 1 failure (a check failed, the node is\n"
	"inconsistent or cannot be reached), 2 usage error.\n"
	"\n"
	"Files:\n"
	"  HOME/client.conf            the home node and its pinned key\n"
	"  HOME/heads/NODE-DID         the newest tree head seen of that log\n"
	"  HOME/heads/NODE-DID.evidence  two contradicting signed heads\n"
	"  HOME/monitor/DID            monitor's state for DID\n";

static const char receipt_help[] =
	"Usage: amp receipt get DIGEST [-o FILE] [OPTIONS]\n"
	"       amp receipt verify FILE [--node-key KEY]\n"
	"\n"
	"A node logs a receipt for every envelope it accepts for one of its\n"
	"users: the SHA-256 digest of the envelope's bytes, the node's DID\n"
	"and the time (PROTOCOL.md section 11.2).  It holds no address and no\n"
	"content; whoever knows the envelope's bytes (its sender) can compute\n"
	"the digest and prove the delivery to anyone with the receipt file.\n"
	"\n"
	"Commands:\n"
	"  get DIGEST   ask the recipients' node (the home node, or --node\n"
	"               with --node-key) for the receipt of the envelope whose\n"
	"               SHA-256 is DIGEST (64 hex digits; `amp send` prints it\n"
	"               as `receipt DIGEST`), check its inclusion proof and the\n"
	"               signed tree head, and write a self-contained receipt\n"
	"               file (JSON).  Prints `accepted by NODE at TIME (log index\n"
	"               I, tree size N)`.  A node signs a new head about every\n"
	"               second: a receipt asked for at once may not be in one\n"
	"               yet (try again in a second).\n"
	"  verify FILE  check a receipt file without any network: the tree\n"
	"               head's signature with the node key in the file (or\n"
	"               --node-key, which must match it), that the leaf is the\n"
	"               receipt of that digest by that node, and its inclusion\n"
	"               proof.  Prints the same `accepted by` line.\n"
	"\n"
	"Options:\n"
	"  --did DID          get: the recipient (a DID of its domain); the\n"
	"                     receipt is in the log of its node, which, when\n"
	"                     it is not ours, our node asks for us (we\n"
	"                     authenticate, so the keystore is needed)\n"
	"  -o, --output FILE  get: write the receipt here (default: standard\n"
	"                     output; the `accepted by` line then goes to\n"
	"                     standard error)\n"
	"  --node-key KEY     verify: the node key (base64url) the receipt\n"
	"                     must carry; get: the node's key, as for every\n"
	"                     command that talks to a node\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Receipt file: {\"format\": \"" RECEIPT_FORMAT "\", \"log\": NODE-DID,\n"
	"  \"node_key\": BASE64URL, \"digest\": HEX, \"head\": {\"size\", \"root\",\n"
	"  \"time\", \"sig\"}, \"index\": I, \"leaf\": HEX, \"path\": [HEX, ...]}\n"
	"\n"
	"Examples:\n"
	"  amp receipt get 5f0c...e1 -o letter.receipt\n"
	"  amp receipt get 5f0c...e1 --did did:aftersmtp:example.net:bob\n"
	"  amp receipt verify letter.receipt --node-key Zm9v...\n"
	"\n"
	"Exit status: 0 verified, 1 failure (not found, not yet in a signed\n"
	"head, a check failed), 2 usage error.\n";

static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
	size_t len = 0;
	return strlen(s) == 2 * n &&
	       sodium_hex2bin(out, n, s, 2 * n, NULL, &len, NULL) == 0 &&
	       len == n;
}

/* Parse the options of every log and receipt subcommand.  CLI_OK and
 * argv[optind...] the subcommand and its arguments, or an exit code in
 * *done_r (help, usage error). */
static int parse_opts(cli_env *env, int argc, char **argv, const char *help,
		      log_opts *o, int *done_r)
{
	int c, k;
	uint64_t v;
	memset(o, 0, sizeof(*o));
	o->interval = MONITOR_INTERVAL_S;
	o->output = "-";
	while ((c = cli_next_opt(env, argc, argv, "ho:", log_longopts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &o->co)) != 0) {
			if (k < 0)
				goto usage;
			o->given |= c == 'K' ? G_NODEKEY : G_CONN;
			continue;
		}
		const char *err = NULL;
		switch (c) {
		case OPT_WITNESS: {
			if (o->n_witness == WITNESS_MAX) {
				cli_err(env, "at most %u --witness", WITNESS_MAX);
				goto usage;
			}
			char *w = o->witness[o->n_witness];
			amp_did d;
			if (amp_did_normalize(optarg, w, AMP_DID_MAX + 1, &err) !=
				    AMP_OK ||
			    amp_did_parse(w, strlen(w), &d, &err) != AMP_OK) {
				cli_err(env, "--witness %s: %s", optarg, err);
				goto usage;
			}
			if (strcmp(d.local, "node") != 0) {
				cli_err(env, "--witness %s: a witness is a node, "
					"did:aftersmtp:DOMAIN:node", optarg);
				goto usage;
			}
			o->n_witness++;
			o->given |= G_WITNESS;
			break;
		}
		case OPT_JSON: o->json = true; o->given |= G_JSON; break;
		case OPT_PROGRESS:
			o->progress = true;
			o->given |= G_PROGRESS;
			break;
		case OPT_ONCE: o->once = true; o->given |= G_ONCE; break;
		case OPT_INTERVAL:
			if (!util_parse_u64(optarg, 1, 86400, &v)) {
				cli_err(env, "--interval must be 1-86400 seconds");
				goto usage;
			}
			o->interval = (unsigned)v;
			o->given |= G_INTERVAL;
			break;
		case OPT_SUBJECT:
			if (!hex_decode(optarg, o->subject, 32)) {
				cli_err(env, "--subject must be 64 hex digits");
				goto usage;
			}
			o->given |= G_SUBJECT;
			break;
		case OPT_DIDOPT:
			if (amp_did_normalize(optarg, o->did, sizeof(o->did),
					      &err) != AMP_OK) {
				cli_err(env, "--did %s: %s", optarg, err);
				goto usage;
			}
			o->given |= G_DID;
			break;
		case OPT_SIZE:
			if (!util_parse_u64(optarg, 1, INT64_MAX, &o->size)) {
				cli_err(env, "--size must be a tree size, 1 or more");
				goto usage;
			}
			o->given |= G_SIZE;
			break;
		case OPT_OUTPUT: o->output = optarg; o->given |= G_OUTPUT; break;
		case OPT_CONFIG: o->config = optarg; o->given |= G_ADMIN; break;
		case OPT_DATADIR: o->data_dir = optarg; o->given |= G_ADMIN; break;
		case 'h':
			fputs(help, stdout);
			if (help == log_help) {
				fputs(cli_log_admin_help, stdout);
				fputs(log_help_rest, stdout);
			}
			*done_r = CLI_OK;
			return CLI_FAIL;
		default:
			goto usage;
		}
	}
	return CLI_OK;
usage:
	cli_usage_hint(env);
	*done_r = CLI_USAGE;
	return CLI_FAIL;
}

/* Refuse the options a subcommand does not take; check its arity. */
static bool opts_fit(cli_env *env, const log_opts *o, const char *sub,
		     unsigned allowed, int nargs, int min, int max)
{
	if ((o->given & ~allowed) != 0) {
		cli_err(env, "an option given does not apply to `%s %s`",
			env->cmd, sub);
		return false;
	}
	if (nargs < min || nargs > max) {
		cli_err(env, "wrong number of arguments for `%s %s`", env->cmd,
			sub);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------ printing */

static const char *iso_time(uint64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (t > (uint64_t)INT32_MAX * 64 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%" PRIu64, t);
	return out;
}

static const char *type_name(amp_log_type t)
{
	switch (t) {
	case AMP_LOG_REGISTER: return "register";
	case AMP_LOG_ROTATE: return "rotate";
	case AMP_LOG_REVOKE: return "revoke";
	case AMP_LOG_RECEIPT: return "receipt";
	}
	return "unknown";
}

static void key_ids(const uint8_t spk[32], const uint8_t epk[32],
		    char s[AMP_KEY_ID_HEX + 1], char e[AMP_KEY_ID_HEX + 1])
{
	amp_key_id(spk, s);
	amp_key_id(epk, e);
}

/* A decoded leaf, a few indented lines. */
static void leaf_print(FILE *f, const amp_log_leaf *l)
{
	char t[32], subj[65], s[AMP_KEY_ID_HEX + 1], e[AMP_KEY_ID_HEX + 1];
	sodium_bin2hex(subj, sizeof(subj), l->subject, 32);
	fprintf(f, "  type     %s\n  time     %" PRIu64 " (%s)\n"
		"  subject  %s\n", type_name(l->type), l->time,
		iso_time(l->time, t), subj);
	switch (l->type) {
	case AMP_LOG_REGISTER:
	case AMP_LOG_ROTATE:
		key_ids(l->sign_pk, l->enc_pk, s, e);
		fprintf(f, "  keys     version %" PRIu32 ": sig key id %s, enc "
			"key id %s\n", l->version, s, e);
		break;
	case AMP_LOG_REVOKE:
		fprintf(f, "  revokes  key version %" PRIu32 "\n", l->version);
		break;
	case AMP_LOG_RECEIPT:
		fprintf(f, "  node     %s\n", l->node);
		break;
	}
}

/* ---------------------------------------------------------------- JSON */

/* o[k] = v, consuming v; false when v is NULL or the set fails. */
static bool jset(json_t *o, const char *k, json_t *v)
{
	if (o == NULL || v == NULL) {
		json_decref(v);
		return false;
	}
	return json_object_set_new(o, k, v) == 0;
}

/* Write text[len] to path ("-": standard output, flushed). */
static int text_out(cli_env *env, const char *path, const char *text,
		    size_t len)
{
	int r = cli_write_out(env, path, text, len, 0644, 0);
	if (r == CLI_OK && strcmp(path, "-") == 0 && fflush(stdout) != 0) {
		cli_err(env, "standard output: %s", strerror(errno));
		r = CLI_FAIL;
	}
	return r;
}

/* Write o (consumed) as indented JSON and a newline to path ("-":
 * standard output). */
static int json_out(cli_env *env, const char *path, json_t *o)
{
	if (o == NULL) {
		cli_err(env, "cannot write the answer as JSON (a number out of "
			"range, or out of memory)");
		return CLI_FAIL;
	}
	char *s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (s == NULL) {
		cli_err(env, "out of memory");
		return CLI_FAIL;
	}
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (t == NULL) {
		free(s);
		cli_err(env, "out of memory");
		return CLI_FAIL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	int r = text_out(env, path, t, n + 1);
	free(t);
	return r;
}

/* ------------------------------------------------------- the home node */

static int log_connect(cli_env *env, const log_opts *o, bool auth,
		       amp_identity **id_r, nclient **c_r)
{
	if (auth)
		return cli_connect_auth(env, &o->co, id_r, c_r);
	return cli_connect_node(env, &o->co, c_r);
}

/* The node's latest head, its signature checked (client-log.c), accepted
 * against the heads seen before (cli-heads.c).  *resp_r (may be NULL)
 * keeps the answer for its cosignatures. */
static int latest_head(cli_env *env, nclient *c, amp_log_head *h,
		       Amp__V1__Response **resp_r)
{
	const char *err = NULL;
	int st = 0;
	Amp__V1__Response *resp = NULL;
	if (nlog_head(c, h, &resp, &st, &err) != 0) {
		cli_err(env, "tree head: %s", err);
		return CLI_FAIL;
	}
	if (cli_head_accept(env, c, h) != CLI_OK) {
		amp__v1__response__free_unpacked(resp, NULL);
		return CLI_FAIL;
	}
	if (resp_r != NULL)
		*resp_r = resp;
	else
		amp__v1__response__free_unpacked(resp, NULL);
	return CLI_OK;
}

/* A witness node's signing key: --doc, else HOME/known, else a lookup
 * through the home node (remembered in HOME/known: trust on first use). */
static int witness_key(cli_env *env, nclient *c, const char *did,
		       uint8_t pk[32])
{
	amp_public_identity pub;
	if (cli_resolve_via(env, c, did, NULL, &pub) != CLI_OK)
		return CLI_FAIL;
	memcpy(pk, pub.sign_pk, 32);
	return CLI_OK;
}

/* Every --witness must have a valid cosignature of h among m's; ok[i]
 * (may be NULL) is set for each cosignature verified. */
static int check_witnesses(cli_env *env, nclient *c, const log_opts *o,
			   const amp_log_head *h, const Amp__V1__LogHead *m,
			   bool *ok)
{
	for (size_t w = 0; w < o->n_witness; w++) {
		const char *did = o->witness[w];
		uint8_t pk[32];
		bool found = false, valid = false;
		if (witness_key(env, c, did, pk) != CLI_OK)
			return CLI_FAIL;
		for (size_t i = 0; i < m->n_cosignatures; i++) {
			const Amp__V1__Cosignature *cs = m->cosignatures[i];
			if (cs->witness == NULL || strcmp(cs->witness, did) != 0)
				continue;
			found = true;
			if (cs->signature.len == 64 &&
			    amp_log_cosign_verify(h, did, cs->time, pk,
						  cs->signature.data)) {
				valid = true;
				if (ok != NULL)
					ok[i] = true;
			}
		}
		if (!valid) {
			cli_err(env, "the tree head of size %" PRIu64 " is not "
				"cosigned by %s%s", h->size, did,
				found ? " (its cosignature does not verify)" : "");
			return CLI_FAIL;
		}
	}
	return CLI_OK;
}

/* -------------------------------------------------------------- head */

static int log_head(cli_env *env, const log_opts *o)
{
	nclient *c = NULL;
	amp_identity *id = NULL;
	Amp__V1__Response *resp = NULL;
	amp_log_head h;
	bool *ok = NULL;
	int r = CLI_FAIL;
	if (log_connect(env, o, o->n_witness > 0, &id, &c) != CLI_OK)
		return CLI_FAIL;
	if (latest_head(env, c, &h, &resp) != CLI_OK)
		goto out;
	const Amp__V1__LogHead *m = resp->log_head;
	if ((ok = calloc(m->n_cosignatures + 1, sizeof(*ok))) == NULL)
		goto out;
	if (check_witnesses(env, c, o, &h, m, ok) != CLI_OK)
		goto out;
	const amp_public_identity *node = nclient_node(c);
	if (o->json) {
		json_t *j = logfile_json_head(&h, true), *cs = json_array();
		jset(j, "node_key", logfile_json_hex(node->sign_pk, 32));
		for (size_t i = 0; cs != NULL && i < m->n_cosignatures; i++) {
			const Amp__V1__Cosignature *x = m->cosignatures[i];
			json_t *e = json_object();
			bool named = amp_did_parse(x->witness, strlen(x->witness),
						   &(amp_did){ 0 }, NULL) == AMP_OK;
			if (!jset(e, "witness", named ? json_string(x->witness)
						      : json_null()) ||
			    !jset(e, "time", logfile_json_u64(x->time)) ||
			    !jset(e, "sig", x->signature.len == 64
						    ? logfile_json_hex(x->signature.data, 64)
						    : json_null()) ||
			    !jset(e, "verified", json_boolean(ok[i])) ||
			    json_array_append_new(cs, e) != 0) {
				json_decref(cs);
				cs = NULL;
			}
		}
		if (!jset(j, "cosignatures", cs)) {
			json_decref(j);
			j = NULL;
		}
		r = json_out(env, "-", j);
		goto out;
	}
	char root[65], t[32], key[64];
	sodium_bin2hex(root, sizeof(root), h.root, 32);
	sodium_bin2base64(key, sizeof(key), node->sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	printf("log   %s\nsize  %" PRIu64 "\nroot  %s\ntime  %" PRIu64 " (%s)\n"
	       "signature verified with the node key %s\n", h.log, h.size,
	       root, h.time, iso_time(h.time, t), key);
	for (size_t i = 0; i < m->n_cosignatures; i++) {
		const Amp__V1__Cosignature *x = m->cosignatures[i];
		bool named = amp_did_parse(x->witness, strlen(x->witness),
					   &(amp_did){ 0 }, NULL) == AMP_OK;
		printf("cosigned by %s at %s (%s)\n",
		       named ? x->witness : "(a malformed witness name)",
		       iso_time(x->time, t),
		       ok[i] ? "verified" : "not checked: give --witness DID");
	}
	if (m->n_cosignatures == 0)
		printf("no cosignatures\n");
	r = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(ok);
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
	nclient_close(&c);
	amp_identity_destroy(&id);
	return r;
}

/* ----------------------------------------------------- reading leaves */

/* Told each leaf in order; CLI_OK to go on. */
typedef int leaf_fn(void *ctx, uint64_t index, const uint8_t *leaf,
		    size_t len);

static bool busy(int st)
{
	return st == AMP__V1__STATUS__STATUS_RATE_LIMITED ||
	       st == AMP__V1__STATUS__STATUS_RETRY_LATER;
}

/* Leaves [from, to) of the log (all covered by a head we accepted), in
 * pages of LOG_PAGE, each handed to fn; a busy node is waited for. */
static int scan_leaves(cli_env *env, nclient *c, uint64_t from, uint64_t to,
		       leaf_fn *fn, void *ctx)
{
	unsigned tries = 0;
	for (uint64_t at = from; at < to;) {
		uint32_t want = to - at > LOG_PAGE ? LOG_PAGE
						   : (uint32_t)(to - at);
		Amp__V1__Response *resp = NULL;
		const char *err = NULL;
		int st = 0;
		if (nlog_entries(c, at, want, &resp, &st, &err) != 0) {
			if (busy(st) && ++tries <= BUSY_RETRIES) {
				usleep(tries < 4 ? 250u * 1000u : 1000u * 1000u);
				continue;
			}
			cli_err(env, "log entries from %" PRIu64 ": %s", at, err);
			return CLI_FAIL;
		}
		tries = 0;
		const Amp__V1__LogEntriesResult *er = resp->log_entries;
		if (er == NULL || er->start != at || er->n_leaves > want) {
			amp__v1__response__free_unpacked(resp, NULL);
			cli_err(env, "the node's answer to log_entries from %"
				PRIu64 " is malformed", at);
			return CLI_FAIL;
		}
		if (er->n_leaves == 0) {
			amp__v1__response__free_unpacked(resp, NULL);
			cli_err(env, "the node gives no leaf at index %" PRIu64
				", below the size %" PRIu64 " of its signed tree "
				"head", at, to);
			return CLI_FAIL;
		}
		int r = CLI_OK;
		for (size_t i = 0; r == CLI_OK && i < er->n_leaves; i++)
			r = fn(ctx, at + i, er->leaves[i].data, er->leaves[i].len);
		at += er->n_leaves;
		amp__v1__response__free_unpacked(resp, NULL);
		if (r != CLI_OK)
			return r;
	}
	return CLI_OK;
}

/* --------------------------------------------- key histories, by subject */

/* Open addressing, linear probing, at most half full; the slot's
 * `exists` marks it used (every stored history starts with a register).
 * Keyed SipHash: the node chooses the subjects. */
typedef struct id_table {
	amp_log_identity *slot;
	size_t cap, n;
	uint8_t key[crypto_shorthash_KEYBYTES];
} id_table;

static amp_log_identity *id_find(id_table *t, const uint8_t subject[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;
	crypto_shorthash(h, subject, 32, t->key);
	memcpy(&v, h, sizeof(v));
	for (size_t i = (size_t)v & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		amp_log_identity *s = &t->slot[i];
		if (!s->exists || memcmp(s->subject, subject, 32) == 0)
			return s;
	}
}

static int id_grow(id_table *t)
{
	size_t cap = t->cap == 0 ? ID_SLOTS_MIN : t->cap * 2;
	if (cap > ID_SLOTS_MAX)
		return -1;
	amp_log_identity *slot = calloc(cap, sizeof(*slot));
	if (slot == NULL)
		return -1;
	amp_log_identity *old = t->slot;
	size_t old_cap = t->cap;
	t->slot = slot;
	t->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].exists)
			*id_find(t, old[i].subject) = old[i];
	free(old);
	return 0;
}

static int id_init(id_table *t)
{
	memset(t, 0, sizeof(*t));
	crypto_shorthash_keygen(t->key);
	return id_grow(t);
}

static void id_deinit(id_table *t)
{
	free(t->slot);
	t->slot = NULL;
}

/* Fold leaf l into its subject's history: AMP_OK, an error of
 * amp_log_identity_apply, or AMP_E_NOMEM. */
static amp_err id_apply(id_table *t, const amp_log_leaf *l, const char **why)
{
	amp_log_identity *s = id_find(t, l->subject);
	bool was = s->exists;
	amp_log_identity next = *s;
	amp_err e = amp_log_identity_apply(&next, l, why);
	if (e != AMP_OK)
		return e;
	*s = next;
	if (!was && ++t->n * 2 > t->cap && id_grow(t) != 0) {
		*why = "too many identities to hold in memory";
		return AMP_E_NOMEM;
	}
	return AMP_OK;
}

/* ------------------------------------------------------------- verify */

typedef struct verifier {
	cli_env *env;
	const amp_log_head *h;
	amp_log_frontier f;
	id_table ids;
	uint8_t (*hashes)[32];          /* every leaf hash, for locate() */
	uint64_t count[5];              /* by type */
	uint64_t n_bad;
	uint64_t first_bad;
	char why[256];
	bool progress;
} verifier;

static void verify_bad(verifier *v, uint64_t index, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verify_bad(verifier *v, uint64_t index, const char *fmt, ...)
{
	va_list ap;
	if (v->n_bad++ > 0)
		return;
	v->first_bad = index;
	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
}

static int verify_leaf(void *ctx, uint64_t index, const uint8_t *leaf,
		       size_t len)
{
	verifier *v = ctx;
	uint8_t lh[32];
	amp_log_leaf l;
	const char *why = NULL;
	amp_log_leaf_hash(leaf, len, lh);
	if (amp_log_frontier_push(&v->f, lh, NULL, NULL) != AMP_OK) {
		cli_err(v->env, "the log is too large");
		return CLI_FAIL;
	}
	if (v->hashes != NULL)
		memcpy(v->hashes[index], lh, 32);
	if (v->progress && (index + 1) % PROGRESS_EVERY == 0)
		fprintf(stderr, "amp: log verify: %" PRIu64 " of %" PRIu64
			" leaves\n", index + 1, v->h->size);
	amp_err e = amp_log_leaf_decode(leaf, len, &l, &why);
	if (e != AMP_OK) {
		verify_bad(v, index, "it does not decode: %s: %s", amp_err_name(e),
			   why != NULL ? why : "");
		return CLI_OK;
	}
	v->count[l.type]++;
	if (l.type == AMP_LOG_RECEIPT) {
		if (strcmp(l.node, v->h->log) != 0)
			verify_bad(v, index, "a receipt of another node, %s",
				   l.node);
		return CLI_OK;
	}
	e = id_apply(&v->ids, &l, &why);
	if (e == AMP_E_NOMEM) {
		cli_err(v->env, "%s", why);
		return CLI_FAIL;
	}
	if (e != AMP_OK)
		verify_bad(v, index, "its identity's key history breaks "
			   "(AMP-R-060): %s", why != NULL ? why : amp_err_name(e));
	return CLI_OK;
}

/* MTH of hashes [a, b). */
static void range_root(const uint8_t (*hs)[32], uint64_t a, uint64_t b,
		       uint8_t out[32])
{
	amp_log_frontier f;
	amp_log_frontier_init(&f);
	for (uint64_t i = a; i < b; i++)
		if (amp_log_frontier_push(&f, hs[i], NULL, NULL) != AMP_OK)
			break;          /* not below 2^63 leaves */
	amp_log_frontier_root(&f, out);
}

/* The leaf ranges of the hashes of PATH(m, D[0:n]), bottom up (RFC 9162
 * §2.1.3.1): each is the sibling of the subtree holding m at one level. */
static size_t path_ranges(uint64_t m, uint64_t n, uint64_t lo[64],
			  uint64_t hi[64])
{
	uint64_t a = 0, b = n, tl[64], th[64];
	size_t k = 0;
	while (b - a > 1 && k < 64) {
		uint64_t s = 1;
		while (s * 2 < b - a)
			s *= 2;
		if (m < a + s) {
			tl[k] = a + s;
			th[k++] = b;
			b = a + s;
		} else {
			tl[k] = a;
			th[k++] = a + s;
			a += s;
		}
	}
	for (size_t i = 0; i < k; i++) {
		lo[i] = tl[k - 1 - i];
		hi[i] = th[k - 1 - i];
	}
	return k;
}

/* The root of the leaves served differs from the signed one: find the
 * first leaf whose served bytes differ from the one the signed tree
 * holds.  Descend from [0, size): the node's inclusion proof of the
 * range's first leaf gives the node's hashes of every sibling range; the
 * leftmost one that differs from ours holds the first changed leaf.
 * CLI_OK with *bad_r and *why_r, or CLI_FAIL when it cannot tell. */
static int locate(cli_env *env, nclient *c, const amp_log_head *h,
		  const uint8_t (*hs)[32], uint64_t *bad_r, const char **why_r)
{
	nlog_proved *p = malloc(sizeof(*p));
	uint64_t lo = 0, hi = h->size, rl[64], rh[64];
	int r = CLI_FAIL;
	if (p == NULL)
		return CLI_FAIL;
	for (unsigned step = 0; step < 70; step++) {
		const char *err = NULL;
		int st = 0;
		if (nlog_proof(c, NULL, lo, NULL, h->size, p, &st, &err) != 0) {
			if (st == AMP__V1__STATUS__STATUS_OK) {
				/* the node's own proof of its leaf fails */
				*bad_r = lo;
				*why_r = "the node's proof of it does not verify "
					 "against its signed head";
				r = CLI_OK;
			}
			break;
		}
		uint8_t lh[32], mine[32];
		if (memcmp(p->head.root, h->root, 32) != 0) {
			/* a second signed head of this size: evidence */
			(void)cli_head_accept(env, c, &p->head);
			break;
		}
		amp_log_leaf_hash(p->leaf, p->leaf_len, lh);
		if (memcmp(lh, hs[lo], 32) != 0) {
			*bad_r = lo;
			*why_r = "log_entries served other bytes than the leaf "
				 "its signed tree head holds";
			r = CLI_OK;
			break;
		}
		size_t n = path_ranges(lo, h->size, rl, rh);
		if (n != p->n_path)
			break;
		bool moved = false;
		for (size_t i = 0; i < n && !moved; i++) {
			if (rl[i] < lo || rh[i] > hi)
				continue;
			range_root(hs, rl[i], rh[i], mine);
			if (memcmp(mine, p->path[i], 32) != 0) {
				lo = rl[i];
				hi = rh[i];
				moved = true;
			}
		}
		if (!moved)
			break;
	}
	free(p);
	return r;
}

static int log_verify(cli_env *env, const log_opts *o)
{
	nclient *c = NULL;
	amp_identity *id = NULL;
	Amp__V1__Response *resp = NULL;
	amp_log_head h;
	verifier v;
	int r = CLI_FAIL;
	memset(&v, 0, sizeof(v));
	v.env = env;
	v.h = &h;
	v.progress = o->progress || isatty(STDERR_FILENO);
	amp_log_frontier_init(&v.f);
	if (id_init(&v.ids) != 0) {
		cli_err(env, "out of memory");
		return CLI_FAIL;
	}
	if (log_connect(env, o, o->n_witness > 0, &id, &c) != CLI_OK)
		goto out;
	if (latest_head(env, c, &h, &resp) != CLI_OK ||
	    check_witnesses(env, c, o, &h, resp->log_head, NULL) != CLI_OK)
		goto out;
	if (h.size <= LOCATE_MAX && h.size > 0)
		v.hashes = malloc((size_t)h.size * 32);
	if (scan_leaves(env, c, 0, h.size, verify_leaf, &v) != CLI_OK)
		goto out;
	uint8_t root[32];
	amp_log_frontier_root(&v.f, root);
	bool root_ok = memcmp(root, h.root, 32) == 0;
	size_t revoked = 0;
	for (size_t i = 0; i < v.ids.cap; i++)
		revoked += v.ids.slot[i].exists && v.ids.slot[i].revoked;
	cli_head_print(stdout, "head", &h);
	printf("leaves: register %" PRIu64 ", rotate %" PRIu64 ", revoke %"
	       PRIu64 ", receipt %" PRIu64 "\nidentities: %zu (%zu revoked)\n",
	       v.count[AMP_LOG_REGISTER], v.count[AMP_LOG_ROTATE],
	       v.count[AMP_LOG_REVOKE], v.count[AMP_LOG_RECEIPT], v.ids.n,
	       revoked);
	if (v.n_bad > 0) {
		printf("FAIL: leaf %" PRIu64 ": %s\n", v.first_bad, v.why);
		if (v.n_bad > 1)
			printf("FAIL: %" PRIu64 " bad leaves in all\n", v.n_bad);
		if (root_ok)
			printf("the signed tree holds this leaf: the node signed "
			       "an invalid log (its signed head, kept in "
			       "HOME/heads, is the evidence)\n");
	}
	if (!root_ok) {
		char a[65], b[65];
		sodium_bin2hex(a, sizeof(a), root, 32);
		sodium_bin2hex(b, sizeof(b), h.root, 32);
		printf("FAIL: the root of the %" PRIu64 " leaves served is %s, "
		       "the signed head's is %s: the node changed, removed or "
		       "inserted leaves after signing\n", h.size, a, b);
		uint64_t bad;
		const char *why = NULL;
		if (v.hashes == NULL)
			printf("(the log is too large to locate the changed "
			       "leaf here)\n");
		else if (locate(env, c, &h, (const uint8_t (*)[32])v.hashes,
				&bad, &why) == CLI_OK)
			printf("FAIL: leaf %" PRIu64 " is the first that differs: "
			       "%s\n", bad, why);
		else
			printf("(the node's proofs do not tell which leaf "
			       "changed)\n");
	}
	if (v.n_bad == 0 && root_ok) {
		printf("OK: %" PRIu64 " leaves, root matches the signed head\n",
		       h.size);
		r = CLI_OK;
	}
	if (fflush(stdout) != 0)
		r = CLI_FAIL;
out:
	free(v.hashes);
	id_deinit(&v.ids);
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
	nclient_close(&c);
	amp_identity_destroy(&id);
	return r;
}

/* ------------------------------------------------------------ monitor */

/* HOME/monitor/DID: what the last round saw (logfile.h). */
typedef logfile_monitor mon_state;

typedef struct mon_event {
	amp_log_type type;
	uint32_t version;
	uint8_t sign_pk[32], enc_pk[32];
	uint64_t time, index;
} mon_event;

static int mon_path(const cli_env *env, const char *did, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/monitor/%s", env->home, did);
	return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* 1 read, 0 none yet, -1 unreadable (reported). */
static int mon_load(cli_env *env, const char *did, mon_state *s)
{
	char path[PATH_MAX];
	uint8_t *text;
	size_t len;
	const char *why = NULL;
	memset(s, 0, sizeof(*s));
	amp_log_frontier_init(&s->f);
	memcpy(s->did, did, strlen(did) + 1);
	if (mon_path(env, did, path) != 0) {
		cli_err(env, "HOME is too long");
		return -1;
	}
	if (util_read_file(path, LOGFILE_MONITOR_MAX, &text, &len) != 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EFBIG) {
			cli_err(env, "%s: %s", path, strerror(errno));
			return -1;
		}
		why = "larger than a monitor state can be";
	} else {
		int k = logfile_monitor_parse((const char *)text, len, s, &why);
		free(text);
		if (k == 0 && strcmp(s->did, did) != 0)
			why = "it is the state of another DID";
		else if (k == 0)
			return 1;
	}
	cli_err(env, "%s is damaged: remove it to start monitoring afresh "
		"(%s)", path, why);
	return -1;
}

static int mon_save(cli_env *env, const mon_state *s)
{
	char path[PATH_MAX], dir[PATH_MAX], text[LOGFILE_MONITOR_MAX];
	size_t n = 0;
	if (logfile_monitor_format(s, text, sizeof(text), &n) != 0) {
		cli_err(env, "cannot keep the monitor's state: it is not "
			"consistent (a bug)");
		return CLI_FAIL;
	}
	int k = snprintf(dir, sizeof(dir), "%s/monitor", env->home);
	if (k < 0 || (size_t)k >= sizeof(dir) ||
	    mon_path(env, s->did, path) != 0 || util_mkdirs(dir, 0700) != 0 ||
	    util_write_file_atomic(path, text, n, 0600, 0) != 0) {
		cli_err(env, "cannot keep the monitor's state in %s: %s", dir,
			strerror(errno));
		return CLI_FAIL;
	}
	return CLI_OK;
}

typedef struct monitor {
	cli_env *env;
	const char *did;
	uint8_t subject[32];
	mon_state s;
	mon_event *ev;
	size_t n_ev;
	bool alarm;
} monitor;

static int monitor_leaf(void *ctx, uint64_t index, const uint8_t *leaf,
			size_t len)
{
	monitor *m = ctx;
	uint8_t lh[32];
	amp_log_leaf l;
	const char *why = NULL;
	amp_log_leaf_hash(leaf, len, lh);
	if (amp_log_frontier_push(&m->s.f, lh, NULL, NULL) != AMP_OK) {
		cli_err(m->env, "the log is too large");
		return CLI_FAIL;
	}
	amp_err e = amp_log_leaf_decode(leaf, len, &l, &why);
	if (e != AMP_OK) {
		cli_err(m->env, "leaf %" PRIu64 " of the log does not decode: "
			"%s: %s", index, amp_err_name(e), why != NULL ? why : "");
		m->alarm = true;
		return CLI_FAIL;
	}
	if (l.type == AMP_LOG_RECEIPT || memcmp(l.subject, m->subject, 32) != 0)
		return CLI_OK;
	if ((e = amp_log_identity_apply(&m->s.id, &l, &why)) != AMP_OK) {
		cli_err(m->env, "ALARM: log index %" PRIu64 ": an invalid change "
			"of %s's keys (AMP-R-060): %s", index, m->did,
			why != NULL ? why : amp_err_name(e));
		m->alarm = true;
		return CLI_FAIL;
	}
	if (m->n_ev == EVENTS_MAX) {
		cli_err(m->env, "more than %u changes of %s's keys in one round",
			EVENTS_MAX, m->did);
		m->alarm = true;
		return CLI_FAIL;
	}
	mon_event *ev = &m->ev[m->n_ev++];
	ev->type = l.type;
	ev->version = l.version;
	memcpy(ev->sign_pk, l.sign_pk, 32);
	memcpy(ev->enc_pk, l.enc_pk, 32);
	ev->time = l.time;
	ev->index = index;
	m->s.changed = l.time;
	m->s.index = index;
	return CLI_OK;
}

static void mon_print_event(const char *did, const mon_event *ev)
{
	char t[32], s[AMP_KEY_ID_HEX + 1], e[AMP_KEY_ID_HEX + 1];
	key_ids(ev->sign_pk, ev->enc_pk, s, e);
	iso_time(ev->time, t);
	if (ev->type == AMP_LOG_REGISTER)
		printf("%s registered: sig key id %s, enc key id %s, at %s, log "
		       "index %" PRIu64 "\n", did, s, e, t, ev->index);
	else if (ev->type == AMP_LOG_ROTATE)
		printf("%s key rotated to version %" PRIu32 ": sig key id %s, "
		       "enc key id %s, at %s, log index %" PRIu64 "\n", did,
		       ev->version, s, e, t, ev->index);
	else
		printf("%s REVOKED at %s, log index %" PRIu64 "\n", did, t,
		       ev->index);
}

static void mon_print_state(const char *did, const mon_state *s)
{
	char t[32], sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
	if (!s->id.exists) {
		printf("%s is not in the transparency log of %s (tree size %"
		       PRIu64 ")\n", did, s->log, s->f.size);
		return;
	}
	if (s->id.revoked) {
		printf("%s REVOKED at %s, log index %" PRIu64 "\n", did,
		       iso_time(s->changed, t), s->index);
		return;
	}
	key_ids(s->id.sign_pk, s->id.enc_pk, sk, ek);
	printf("%s key version %" PRIu32 ": sig key id %s, enc key id %s, "
	       "since %s, log index %" PRIu64 "\n", did, s->id.version, sk, ek,
	       iso_time(s->id.since, t), s->index);
}

#define ROUND_RETRY 3    /* the node could not be asked: try next round */

static int monitor_round(cli_env *env, const log_opts *o, const char *did,
			 mon_event *ev)
{
	monitor m;
	nclient *c = NULL;
	amp_log_head h;
	memset(&m, 0, sizeof(m));
	m.env = env;
	m.did = did;
	m.ev = ev;
	amp_log_did_hash(did, m.subject);
	int loaded = mon_load(env, did, &m.s);
	if (loaded < 0)
		return CLI_FAIL;
	bool first = loaded == 0;
	if (log_connect(env, o, false, NULL, &c) != CLI_OK)
		return ROUND_RETRY;
	int r = ROUND_RETRY;
	const amp_public_identity *node = nclient_node(c);
	amp_did dd, nd;
	if (amp_did_parse(did, strlen(did), &dd, NULL) != AMP_OK ||
	    amp_did_parse(node->did, strlen(node->did), &nd, NULL) != AMP_OK ||
	    strcmp(dd.domain, nd.domain) != 0) {
		cli_err(env, "%s is not an identity of %s: its changes are in "
			"the log of its own node (--node)", did, node->did);
		r = CLI_FAIL;
		goto out;
	}
	if (first)
		memcpy(m.s.log, node->did, strlen(node->did) + 1);
	else if (strcmp(m.s.log, node->did) != 0) {
		cli_err(env, "the monitor's state of %s is of the log of %s, "
			"not of %s", did, m.s.log, node->did);
		r = CLI_FAIL;
		goto out;
	}
	const char *err = NULL;
	int st = 0;
	if (nlog_head(c, &h, NULL, &st, &err) != 0) {
		cli_err(env, "tree head: %s", err);
		if (st == AMP__V1__STATUS__STATUS_OK)
			r = CLI_FAIL;   /* a bad signature: not a network matter */
		goto out;
	}
	if (cli_head_accept(env, c, &h) != CLI_OK) {
		r = CLI_FAIL;
		goto out;
	}
	if (h.size > m.s.f.size) {
		int k = scan_leaves(env, c, m.s.f.size, h.size, monitor_leaf, &m);
		if (k != CLI_OK) {
			r = m.alarm ? CLI_FAIL : ROUND_RETRY;
			goto out;
		}
		uint8_t root[32];
		amp_log_frontier_root(&m.s.f, root);
		if (memcmp(root, h.root, 32) != 0) {
			cli_err(env, "ALARM: the leaves %s served do not hash to "
				"its signed tree head of size %" PRIu64 " (run "
				"`amp log verify`)", node->did, h.size);
			r = CLI_FAIL;
			goto out;
		}
	}
	if (first)
		mon_print_state(did, &m.s);
	else
		for (size_t i = 0; i < m.n_ev; i++)
			mon_print_event(did, &m.ev[i]);
	if (fflush(stdout) != 0) {
		r = CLI_FAIL;
		goto out;
	}
	r = mon_save(env, &m.s);
out:
	nclient_close(&c);
	return r;
}

static int log_monitor(cli_env *env, const log_opts *o, const char *arg)
{
	char did[AMP_DID_MAX + 1];
	const char *err = NULL;
	if (amp_did_normalize(arg, did, sizeof(did), &err) != AMP_OK) {
		cli_err(env, "%s: %s", arg, err);
		return CLI_USAGE;
	}
	mon_event *ev = calloc(EVENTS_MAX, sizeof(*ev));
	if (ev == NULL) {
		cli_err(env, "out of memory");
		return CLI_FAIL;
	}
	int r;
	for (;;) {
		r = monitor_round(env, o, did, ev);
		if (o->once || r == CLI_FAIL)
			break;
		if (r == ROUND_RETRY)
			cli_err(env, "trying again in %u s", o->interval);
		for (unsigned left = o->interval; left > 0;)
			left = sleep(left);
	}
	free(ev);
	return r == CLI_OK ? CLI_OK : CLI_FAIL;
}

/* -------------------------------------------------------------- proof */

static int log_proof(cli_env *env, const log_opts *o, const char *arg)
{
	uint64_t index = 0;
	uint8_t subject[32];
	const uint8_t *subj = NULL;
	if ((arg != NULL) + ((o->given & G_SUBJECT) != 0) +
		    ((o->given & G_DID) != 0) != 1) {
		cli_err(env, "give one of INDEX, --subject HEX and --did DID");
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if (arg != NULL && !util_parse_u64(arg, 0, INT64_MAX, &index)) {
		cli_err(env, "'%s' is not a leaf index", arg);
		return CLI_USAGE;
	}
	if (o->given & G_SUBJECT) {
		memcpy(subject, o->subject, 32);
		subj = subject;
	} else if (o->given & G_DID) {
		amp_log_did_hash(o->did, subject);
		subj = subject;
	}
	nclient *c = NULL;
	nlog_proved *p = malloc(sizeof(*p));
	const char *err = NULL;
	int st = 0, r = CLI_FAIL;
	if (p == NULL || log_connect(env, o, false, NULL, &c) != CLI_OK)
		goto out;
	if (nlog_proof(c, NULL, index, subj, o->size, p, &st, &err) != 0) {
		cli_err(env, "%s", err);
		goto out;
	}
	if (cli_head_accept(env, c, &p->head) != CLI_OK)
		goto out;
	const amp_public_identity *node = nclient_node(c);
	uint8_t lh[32];
	amp_log_leaf_hash(p->leaf, p->leaf_len, lh);
	if (o->json) {
		json_t *j = json_object();
		if (!jset(j, "log", json_string(p->head.log)) ||
		    !jset(j, "node_key", logfile_json_hex(node->sign_pk, 32)) ||
		    !jset(j, "index", logfile_json_u64(p->index)) ||
		    !jset(j, "tree_size", logfile_json_u64(p->head.size)) ||
		    !jset(j, "leaf", logfile_json_hex(p->leaf, p->leaf_len)) ||
		    !jset(j, "leaf_hash", logfile_json_hex(lh, 32)) ||
		    !jset(j, "type", json_string(type_name(p->l.type))) ||
		    !jset(j, "time", logfile_json_u64(p->l.time)) ||
		    !jset(j, "subject", logfile_json_hex(p->l.subject, 32)) ||
		    !jset(j, "path",
			  logfile_json_path((const uint8_t (*)[32])p->path,
					    p->n_path)) ||
		    !jset(j, "head", logfile_json_head(&p->head, true))) {
			json_decref(j);
			j = NULL;
		}
		r = json_out(env, "-", j);
		goto out;
	}
	char hx[65];
	sodium_bin2hex(hx, sizeof(hx), lh, 32);
	printf("leaf %" PRIu64 " of the log of %s\n", p->index, p->head.log);
	leaf_print(stdout, &p->l);
	printf("  hash     %s\n", hx);
	printf("inclusion proof (%zu hash%s) verified against the signed tree "
	       "head:\n", p->n_path, p->n_path == 1 ? "" : "es");
	for (size_t i = 0; i < p->n_path; i++) {
		sodium_bin2hex(hx, sizeof(hx), p->path[i], 32);
		printf("  %s\n", hx);
	}
	cli_head_print(stdout, "head", &p->head);
	r = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(p);
	nclient_close(&c);
	return r;
}

/* -------------------------------------------------------- consistency */

static int log_consistency(cli_env *env, const log_opts *o, char **args,
			   int nargs)
{
	uint64_t first, second = 0;
	if (!util_parse_u64(args[0], 1, INT64_MAX, &first) ||
	    (nargs == 2 && !util_parse_u64(args[1], 1, INT64_MAX, &second))) {
		cli_err(env, "FIRST and SECOND are tree sizes, 1 or more");
		return CLI_USAGE;
	}
	if (second != 0 && second < first) {
		cli_err(env, "SECOND must not be smaller than FIRST");
		return CLI_USAGE;
	}
	nclient *c = NULL;
	const char *err = NULL;
	int st = 0, r = CLI_FAIL;
	if (log_connect(env, o, false, NULL, &c) != CLI_OK)
		return CLI_FAIL;
	amp_log_head h1, h2;
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t n_path = 0;
	int k = nlog_consistency(c, first, second, &h1, &h2, path, &n_path, &st,
				 &err);
	if (k == NLOG_INCONSISTENT) {
		cli_err(env, "the consistency proof from size %" PRIu64 " to %"
			PRIu64 " does not verify: the node's two signed heads "
			"are not of one history", h1.size, h2.size);
		cli_head_print(stderr, "  first", &h1);
		cli_head_print(stderr, "  second", &h2);
		goto out;
	}
	if (k != 0) {
		cli_err(env, "%s", err);
		goto out;
	}
	if (cli_head_accept(env, c, &h2) != CLI_OK ||
	    cli_head_accept(env, c, &h1) != CLI_OK)
		goto out;
	if (o->json) {
		json_t *j = json_object();
		if (!jset(j, "log", json_string(h2.log)) ||
		    !jset(j, "node_key",
			  logfile_json_hex(nclient_node(c)->sign_pk, 32)) ||
		    !jset(j, "first", logfile_json_head(&h1, true)) ||
		    !jset(j, "second", logfile_json_head(&h2, true)) ||
		    !jset(j, "path",
			  logfile_json_path((const uint8_t (*)[32])path,
					    n_path))) {
			json_decref(j);
			j = NULL;
		}
		r = json_out(env, "-", j);
		goto out;
	}
	printf("consistency proof from size %" PRIu64 " to size %" PRIu64
	       " (%zu hash%s) verified\n", h1.size, h2.size, n_path,
	       n_path == 1 ? "" : "es");
	for (size_t i = 0; i < n_path; i++) {
		char hx[65];
		sodium_bin2hex(hx, sizeof(hx), path[i], 32);
		printf("  %s\n", hx);
	}
	cli_head_print(stdout, "first", &h1);
	cli_head_print(stdout, "second", &h2);
	r = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	nclient_close(&c);
	return r;
}

/* ------------------------------------------------------------ receipts */

static void accepted_line(FILE *f, const amp_log_leaf *l, uint64_t index,
			  uint64_t size)
{
	char t[32];
	fprintf(f, "accepted by %s at %s (log index %" PRIu64 ", tree size %"
		PRIu64 ")\n", l->node, iso_time(l->time, t), index, size);
}

static int receipt_get(cli_env *env, const log_opts *o, const char *arg)
{
	uint8_t digest[32];
	if (!hex_decode(arg, digest, 32)) {
		cli_err(env, "DIGEST is the SHA-256 of the envelope, 64 hex "
			"digits");
		return CLI_USAGE;
	}
	nclient *c = NULL;
	nlog_proved *p = malloc(sizeof(*p));
	logfile_receipt *rc = NULL;
	char *text = NULL;
	amp_identity *me = NULL;
	const char *err = NULL;
	int st = 0, r = CLI_FAIL;
	/* --did: the recipient; the receipt is in the log of its node.  When
	 * that is not our node, ours asks it for us (we authenticate). */
	amp_public_identity lognode;
	bool remote = false;
	if (p == NULL || log_connect(env, o, o->did[0] != '\0', &me, &c) != CLI_OK)
		goto out;
	if (o->did[0] != '\0' &&
	    cli_log_node_of(env, c, o->did, &lognode, &remote) != CLI_OK)
		goto out;
	const amp_public_identity *node = remote ? &lognode : nclient_node(c);
	if (nlog_proof(c, remote ? &lognode : NULL, 0, digest, 0, p, &st,
		       &err) != 0) {
		if (st == AMP__V1__STATUS__STATUS_NOT_FOUND &&
		    strstr(err, "not yet in a signed tree head") != NULL)
			cli_err(env, "%s accepted that envelope, but its receipt "
				"is not yet in a signed tree head: try again in "
				"a second", node->did);
		else if (st == AMP__V1__STATUS__STATUS_NOT_FOUND)
			cli_err(env, "%s has no receipt for that envelope (%s)",
				node->did, err);
		else
			cli_err(env, "%s", err);
		goto out;
	}
	if (p->l.type != AMP_LOG_RECEIPT || strcmp(p->l.node, node->did) != 0) {
		cli_err(env, "the node's leaf with that digest is not its "
			"receipt (%s by %s)", type_name(p->l.type),
			p->l.type == AMP_LOG_RECEIPT ? p->l.node : node->did);
		goto out;
	}
	/* Another node's heads can only be checked for its signature. */
	if (!remote && cli_head_accept(env, c, &p->head) != CLI_OK)
		goto out;
	if ((rc = malloc(sizeof(*rc))) == NULL ||
	    (text = malloc(LOGFILE_RECEIPT_MAX)) == NULL) {
		cli_err(env, "out of memory");
		goto out;
	}
	memset(rc, 0, sizeof(*rc));
	memcpy(rc->node_key, node->sign_pk, 32);
	memcpy(rc->digest, digest, 32);
	rc->head = p->head;
	rc->index = p->index;
	memcpy(rc->leaf, p->leaf, p->leaf_len);
	rc->leaf_len = p->leaf_len;
	memcpy(rc->path, p->path, p->n_path * 32);
	rc->n_path = p->n_path;
	size_t len = 0;
	if (logfile_receipt_format(rc, text, LOGFILE_RECEIPT_MAX, &len) != 0) {
		cli_err(env, "cannot write the receipt (a number out of range, "
			"or out of memory)");
		goto out;
	}
	if (text_out(env, o->output, text, len) != CLI_OK)
		goto out;
	accepted_line(strcmp(o->output, "-") == 0 ? stderr : stdout, &p->l,
		      p->index, p->head.size);
	r = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(text);
	free(rc);
	free(p);
	nclient_close(&c);
	amp_identity_destroy(&me);
	return r;
}

static int receipt_verify(cli_env *env, const log_opts *o, const char *file)
{
	uint8_t *text = NULL, given[32];
	size_t len;
	const char *bad = NULL, *why = NULL;
	amp_log_leaf l;
	int r = CLI_FAIL;
	if (o->co.node_key != NULL &&
	    !amp_b64u_decode_exact(o->co.node_key, given, 32)) {
		cli_err(env, "--node-key is not a base64url Ed25519 key");
		return CLI_USAGE;
	}
	if (util_read_file(file, LOGFILE_RECEIPT_MAX, &text, &len) != 0) {
		cli_err(env, "%s: %s", file, errno == EFBIG
			? "larger than a receipt can be" : strerror(errno));
		return CLI_FAIL;
	}
	logfile_receipt *rc = malloc(sizeof(*rc));
	if (rc == NULL) {
		cli_err(env, "out of memory");
		goto out;
	}
	if (logfile_receipt_parse((const char *)text, len, rc, &bad) != 0) {
		cli_err(env, "%s is not a receipt file: %s", file, bad);
		goto out;
	}
	if (logfile_receipt_check(rc, o->co.node_key != NULL ? given : NULL, &l,
				  &bad, &why) != 0) {
		cli_err(env, "%s: FAILED: %s%s%s", file, bad,
			why != NULL ? ": " : "", why != NULL ? why : "");
		goto out;
	}
	accepted_line(stdout, &l, rc->index, rc->head.size);
	r = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(rc);
	free(text);
	return r;
}

/* ---------------------------------------------------------- dispatch */

int cmd_log(cli_env *env, int argc, char **argv)
{
	log_opts o;
	int done = CLI_OK;
	if (parse_opts(env, argc, argv, log_help, &o, &done) != CLI_OK)
		return done;
	int nargs = argc - optind;
	char **args = argv + optind;
	const char *sub = nargs > 0 ? args[0] : "";
	const unsigned conn = G_CONN | G_NODEKEY;
	if (strcmp(sub, "head") == 0) {
		if (!opts_fit(env, &o, sub, conn | G_WITNESS | G_JSON, nargs, 1, 1))
			goto usage;
		return log_head(env, &o);
	}
	if (strcmp(sub, "verify") == 0) {
		if (!opts_fit(env, &o, sub, conn | G_WITNESS | G_PROGRESS, nargs,
			      1, 1))
			goto usage;
		return log_verify(env, &o);
	}
	if (strcmp(sub, "monitor") == 0) {
		if (!opts_fit(env, &o, sub, conn | G_ONCE | G_INTERVAL, nargs, 2,
			      2))
			goto usage;
		return log_monitor(env, &o, args[1]);
	}
	if (strcmp(sub, "proof") == 0) {
		if (!opts_fit(env, &o, sub,
			      conn | G_SUBJECT | G_DID | G_SIZE | G_JSON, nargs,
			      1, 2))
			goto usage;
		return log_proof(env, &o, nargs == 2 ? args[1] : NULL);
	}
	if (strcmp(sub, "consistency") == 0) {
		if (!opts_fit(env, &o, sub, conn | G_JSON, nargs, 2, 3))
			goto usage;
		return log_consistency(env, &o, args + 1, nargs - 1);
	}
	/* The operator's: the node's admin socket (cmd-logadmin.c). */
	bool alarms = strcmp(sub, "alarms") == 0;
	if (alarms || strcmp(sub, "status") == 0 || strcmp(sub, "sign") == 0) {
		uint64_t n;
		if (!opts_fit(env, &o, sub, G_ADMIN, nargs, 1, alarms ? 2 : 1))
			goto usage;
		if (o.config != NULL && o.data_dir != NULL) {
			cli_err(env, "give --config or --data-dir, not both");
			goto usage;
		}
		if (nargs == 2 && !util_parse_u64(args[1], 1, 10000, &n)) {
			cli_err(env, "alarms N: N is 1 to 10000");
			goto usage;
		}
		return cli_log_admin(env, sub, nargs == 2 ? args[1] : NULL,
				     o.config, o.data_dir);
	}
	cli_err(env, nargs == 0 ? "which command: head, verify, monitor, proof, "
		"consistency, status, alarms or sign?" : "unknown command (head, "
		"verify, monitor, proof, consistency, status, alarms, sign)");
usage:
	cli_usage_hint(env);
	return CLI_USAGE;
}

int cmd_receipt(cli_env *env, int argc, char **argv)
{
	log_opts o;
	int done = CLI_OK;
	if (parse_opts(env, argc, argv, receipt_help, &o, &done) != CLI_OK)
		return done;
	int nargs = argc - optind;
	char **args = argv + optind;
	const char *sub = nargs > 0 ? args[0] : "";
	if (strcmp(sub, "get") == 0) {
		if (!opts_fit(env, &o, sub, G_CONN | G_NODEKEY | G_OUTPUT | G_DID, nargs,
			      2, 2))
			goto usage;
		return receipt_get(env, &o, args[1]);
	}
	if (strcmp(sub, "verify") == 0) {
		if (!opts_fit(env, &o, sub, G_NODEKEY, nargs, 2, 2))
			goto usage;
		return receipt_verify(env, &o, args[1]);
	}
	cli_err(env, nargs == 0 ? "which command: get or verify?"
				: "unknown command (get, verify)");
usage:
	cli_usage_hint(env);
	return CLI_USAGE;
}
