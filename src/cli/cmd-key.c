/*
 * cmd-key.c — identity changes under the transparency log (PROTOCOL.md
 * §11): `amp key rotate`, `amp key revoke`, `amp did resolve`, and the
 * check `amp register` and these make after the node said OK: that the
 * node really put the change in its log (cli_log_confirm).
 */
#include "cli.h"

#include "client-log.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONFIRM_WAIT_S 30u

/* The same leaf apart from the time the node chose. */
static bool same_change(const amp_log_leaf *a, const amp_log_leaf *b)
{
	return a->type == b->type && a->version == b->version &&
	       memcmp(a->subject, b->subject, 32) == 0 &&
	       memcmp(a->sign_pk, b->sign_pk, 32) == 0 &&
	       memcmp(a->enc_pk, b->enc_pk, 32) == 0 &&
	       memcmp(a->sig, b->sig, 64) == 0 &&
	       memcmp(a->prev_sig, b->prev_sig, 64) == 0;
}

int cli_log_confirm(cli_env *env, struct nclient *c, const amp_log_leaf *want,
		    unsigned wait_s)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	nlog_proved *p = malloc(sizeof(*p));
	if (p == NULL)
		return CLI_FAIL;
	const char *err = "no answer";
	int st = -1, r = CLI_FAIL;
	for (;;) {
		if (nlog_proof(c, NULL, 0, want->subject, 0, p, &st, &err) == 0) {
			if (same_change(&p->l, want))
				break;
			/* an older leaf of ours: the new one may come */
			err = "the log's latest entry for this identity is not "
			      "this change";
		} else if (st != AMP__V1__STATUS__STATUS_NOT_FOUND) {
			goto out;       /* a proof that does not verify, etc. */
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= (time_t)wait_s)
			goto out;
		usleep(250 * 1000);
	}
	if (cli_head_accept(env, c, &p->head) != CLI_OK) {
		free(p);
		return CLI_FAIL;
	}
	printf("in the transparency log of %s: entry %" PRIu64 ", proven in "
	       "the signed tree head of size %" PRIu64 "\n", p->head.log,
	       p->index, p->head.size);
	r = CLI_OK;
out:
	if (r != CLI_OK)
		cli_err(env, "the node did not show this change in its "
			"transparency log within %u s: %s -- do not trust this "
			"node with your identity", wait_s, err);
	free(p);
	return r;
}

int cli_log_node_of(cli_env *env, struct nclient *c, const char *did,
		    amp_public_identity *pub_r, bool *remote_r)
{
	amp_did d, home;
	const char *err = NULL;
	const amp_public_identity *node = nclient_node(c);
	if (amp_did_parse(did, strlen(did), &d, &err) != AMP_OK ||
	    amp_did_parse(node->did, strlen(node->did), &home, &err) != AMP_OK) {
		cli_err(env, "%s: %s", did, err);
		return CLI_FAIL;
	}
	*remote_r = strcmp(d.domain, home.domain) != 0;
	if (!*remote_r) {
		*pub_r = *node;
		return CLI_OK;
	}
	char ndid[AMP_DID_MAX + 1], *doc = NULL;
	if (amp_did_format(d.domain, "node", ndid, sizeof(ndid), &err) != AMP_OK ||
	    nclient_lookup(c, ndid, &doc, NULL, &err) != 0) {
		cli_err(env, "the node of %s: %s", d.domain, err);
		return CLI_FAIL;
	}
	amp_err e = amp_did_document_parse(doc, strlen(doc), pub_r, &err);
	free(doc);
	if (e != AMP_OK || strcmp(pub_r->did, ndid) != 0) {
		cli_err(env, "the node of %s: an invalid document", d.domain);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ----------------------------------------------------------- amp key */

static const char key_help[] =
	"Usage: amp key rotate [--kdf LEVEL] [OPTIONS]\n"
	"       amp key revoke --yes [OPTIONS]\n"
	"\n"
	"Change our identity's keys at its home node, in the node's\n"
	"transparency log (see docs/transparency.md), so that everyone who\n"
	"checks the log sees the change and can check that we made it.\n"
	"\n"
	"rotate   make a new signing and encryption key pair.  The change is\n"
	"         signed by the old signing key and by the new one; the node\n"
	"         replaces our DID document and logs the change.  The keystore\n"
	"         then holds the new keys, and the old keystore is kept as\n"
	"         KEYSTORE.vN (N the old key version), so mail sealed to the old\n"
	"         key can still be opened (`amp open --keystore KEYSTORE.vN`).\n"
	"revoke   end the identity for good: signed by the current key, logged;\n"
	"         the node then refuses mail to it and lookups of it, and the\n"
	"         DID can never be registered again.  Needs --yes.\n"
	"\n"
	"Both wait until the node shows the change in a signed tree head and\n"
	"check its proof; exit status 1 if it does not.\n"
	"\n"
	"  --kdf LEVEL   Argon2id cost of the new keystore, as for `amp keygen`\n"
	"  --yes         confirm a revocation\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Examples:\n"
	"  amp key rotate\n"
	"  amp did resolve did:aftersmtp:example.org:alice\n";

/* The passphrase and the opened keystore: one read of the passphrase for
 * both the old keystore and the new one (a --passphrase-fd is read once). */
static int open_keystore(cli_env *env, char **pass, size_t *plen,
			 amp_identity **id_r, const char **path_r, char *pbuf)
{
	uint8_t *text;
	size_t len;
	const char *detail = NULL;
	if ((*path_r = cli_keystore_path(env, pbuf)) == NULL)
		return CLI_FAIL;
	if (util_read_file(*path_r, 1024 * 1024, &text, &len) != 0) {
		cli_err(env, "%s: %s", *path_r, strerror(errno));
		return CLI_FAIL;
	}
	if (cli_passphrase(env, false, pass, plen) != CLI_OK) {
		free(text);
		return CLI_FAIL;
	}
	amp_err e = amp_keystore_open((const char *)text, len, *pass, *plen, id_r,
				      &detail);
	free(text);
	if (e != AMP_OK) {
		cli_passphrase_free(pass, *plen);
		return cli_fail(env, *path_r, e, detail);
	}
	return CLI_OK;
}

/* Our identity's state in the node's log, checked against our keystore. */
static int my_state(cli_env *env, struct nclient *c, const amp_identity *id,
		    amp_log_identity *st)
{
	char *doc = NULL;
	const char *err = NULL;
	nlog_proved *pp = NULL;
	size_t n = 0;
	int status;
	if (nlog_lookup_history(c, id->pub.did, NULL, &doc, st, &pp, &n, &status,
				&err) != 0) {
		cli_err(env, "%s: %s", id->pub.did, err);
		return CLI_FAIL;
	}
	int r = n > 0 ? cli_head_accept(env, c, &pp[0].head) : CLI_FAIL;
	free(pp);
	free(doc);
	if (r != CLI_OK)
		return CLI_FAIL;
	if (memcmp(st->sign_pk, id->pub.sign_pk, 32) != 0 ||
	    memcmp(st->enc_pk, id->pub.enc_pk, 32) != 0) {
		cli_err(env, "the node's log shows other keys for %s (version "
			"%" PRIu32 ") than our keystore's", id->pub.did,
			st->version);
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int key_rotate(cli_env *env, const cli_conn_opts *co, amp_kdf_level kdf)
{
	char *pass = NULL, pbuf[PATH_MAX], old_path[PATH_MAX + 16];
	size_t plen = 0;
	const char *path, *err = NULL;
	amp_identity *id = NULL, *nu = NULL;
	struct nclient *c = NULL;
	char *text = NULL;
	amp_log_identity st;
	int status, r = CLI_FAIL;
	if (open_keystore(env, &pass, &plen, &id, &path, pbuf) != CLI_OK)
		return CLI_FAIL;
	if (cli_connect_node(env, co, &c) != CLI_OK ||
	    my_state(env, c, id, &st) != CLI_OK)
		goto out;
	uint32_t v = st.version + 1;
	if (amp_identity_generate(id->pub.did, &nu, &err) != AMP_OK ||
	    amp_keystore_seal(nu, pass, plen, kdf, &text, &err) != AMP_OK) {
		cli_err(env, "cannot make the new keys: %s", err);
		goto out;
	}
	/* The old keystore is kept before anything changes at the node. */
	snprintf(old_path, sizeof(old_path), "%s.v%" PRIu32, path, st.version);
	uint8_t *old_text;
	size_t old_len;
	if (util_read_file(path, 1024 * 1024, &old_text, &old_len) != 0 ||
	    util_write_file_atomic(old_path, old_text, old_len, 0600,
				   UTIL_NO_REPLACE) != 0) {
		cli_err(env, "cannot keep the old keystore as %s: %s", old_path,
			strerror(errno));
		goto out;
	}
	free(old_text);
	uint64_t index = 0;
	if (nlog_rotate(c, id, nu, v, &index, &status, &err) != 0) {
		cli_err(env, "rotate: %s", err);
		unlink(old_path);
		goto out;
	}
	if (util_write_file_atomic(path, text, strlen(text), 0600, 0) != 0) {
		cli_err(env, "the node has the new key, but the keystore %s "
			"cannot be written: %s -- the new keys are lost", path,
			strerror(errno));
		goto out;
	}
	char sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
	amp_key_id(nu->pub.sign_pk, sk);
	amp_key_id(nu->pub.enc_pk, ek);
	printf("rotated %s to key version %" PRIu32 "\n  signing   #sig-%s\n"
	       "  encryption #enc-%s\n  old keystore kept as %s\n", nu->pub.did,
	       v, sk, ek, old_path);
	amp_log_leaf want = { .type = AMP_LOG_ROTATE, .version = v };
	amp_log_did_hash(nu->pub.did, want.subject);
	memcpy(want.sign_pk, nu->pub.sign_pk, 32);
	memcpy(want.enc_pk, nu->pub.enc_pk, 32);
	amp_log_sign_key(nu->sign_sk, want.subject, v, nu->pub.sign_pk,
			 nu->pub.enc_pk, want.sig);
	amp_log_sign_key(id->sign_sk, want.subject, v, nu->pub.sign_pk,
			 nu->pub.enc_pk, want.prev_sig);
	r = cli_log_confirm(env, c, &want, CONFIRM_WAIT_S);
out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		amp_free(text);
	}
	cli_passphrase_free(&pass, plen);
	nclient_close(&c);
	amp_identity_destroy(&id);
	amp_identity_destroy(&nu);
	return r;
}

static int key_revoke(cli_env *env, const cli_conn_opts *co)
{
	amp_identity *id = NULL;
	struct nclient *c = NULL;
	amp_log_identity st;
	const char *err = NULL;
	int status, r = CLI_FAIL;
	if (cli_load_identity(env, &id) != CLI_OK)
		return CLI_FAIL;
	if (cli_connect_node(env, co, &c) != CLI_OK ||
	    my_state(env, c, id, &st) != CLI_OK)
		goto out;
	uint64_t index = 0;
	if (nlog_revoke(c, id, st.version, &index, &status, &err) != 0) {
		cli_err(env, "revoke: %s", err);
		goto out;
	}
	printf("revoked %s (key version %" PRIu32 ")\n", id->pub.did, st.version);
	amp_log_leaf want = { .type = AMP_LOG_REVOKE, .version = st.version };
	amp_log_did_hash(id->pub.did, want.subject);
	amp_log_sign_revoke(id->sign_sk, want.subject, st.version, want.sig);
	r = cli_log_confirm(env, c, &want, CONFIRM_WAIT_S);
out:
	nclient_close(&c);
	amp_identity_destroy(&id);
	return r;
}

int cmd_key(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "kdf", required_argument, NULL, 'k' },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	cli_conn_opts co = { 0 };
	amp_kdf_level kdf = AMP_KDF_INTERACTIVE;
	bool yes = false;
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case 'k':
			if (!cli_kdf_parse(optarg, &kdf)) {
				cli_err(env, "--kdf must be interactive, moderate, "
					     "sensitive or min");
				return CLI_USAGE;
			}
			break;
		case 'y': yes = true; break;
		case 'h': fputs(key_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
	}
	const char *sub = optind < argc ? argv[optind] : NULL;
	if (sub != NULL && optind + 1 == argc && strcmp(sub, "rotate") == 0)
		return key_rotate(env, &co, kdf);
	if (sub != NULL && optind + 1 == argc && strcmp(sub, "revoke") == 0) {
		if (!yes) {
			cli_err(env, "revoking ends the identity for good; say "
				"--yes");
			return CLI_USAGE;
		}
		return key_revoke(env, &co);
	}
	cli_err(env, "expected rotate or revoke");
	cli_usage_hint(env);
	return CLI_USAGE;
}

/* ----------------------------------------------------- amp did resolve */

int cli_did_resolve(cli_env *env, const cli_conn_opts *co, const char *did_arg)
{
	char did[AMP_DID_MAX + 1];
	const char *detail = NULL, *err = NULL;
	amp_err e = amp_did_normalize(did_arg, did, sizeof(did), &detail);
	if (e != AMP_OK)
		return cli_fail(env, "DID", e, detail);
	struct nclient *c = NULL;
	char *doc = NULL;
	nlog_proved *pp = NULL;
	size_t n = 0;
	amp_log_identity st;
	int status, r = CLI_FAIL;
	amp_public_identity lognode;
	amp_identity *me = NULL;
	bool remote = false;
	amp_did d;
	char home_domain[AMP_DID_DOMAIN_MAX + 1] = "";
	cfg *cc = NULL;
	if (cli_load_client_conf(env, &cc) == CLI_OK) {
		amp_did hd;
		const char *nd = cfg_str(cc, "node_did");
		if (amp_did_parse(nd, strlen(nd), &hd, NULL) == AMP_OK)
			snprintf(home_domain, sizeof(home_domain), "%s", hd.domain);
		cfg_free(&cc);
	}
	/* Another node's identity: our node asks that node, which only a
	 * user of ours may make it do. */
	if (amp_did_parse(did, strlen(did), &d, NULL) == AMP_OK &&
	    home_domain[0] != '\0' && strcmp(d.domain, home_domain) != 0) {
		if (cli_connect_auth(env, co, &me, &c) != CLI_OK)
			return CLI_FAIL;
	} else if (cli_connect_node(env, co, &c) != CLI_OK) {
		return CLI_FAIL;
	}
	if (cli_log_node_of(env, c, did, &lognode, &remote) != CLI_OK)
		goto out;
	if (nlog_lookup_history(c, did, remote ? &lognode : NULL, &doc, &st, &pp,
				&n, &status, &err) != 0) {
		cli_err(env, "%s: %s", did, err);
		goto out;
	}
	/* Heads of our own node's log are checked against the ones we saw
	 * before; another node's we can only check for its signature. */
	if (!remote && cli_head_accept(env, c, &pp[0].head) != CLI_OK)
		goto out;
	char sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
	amp_key_id(st.sign_pk, sk);
	amp_key_id(st.enc_pk, ek);
	printf("%s\n  key version %" PRIu32 "%s\n  signing   #sig-%s (Ed25519)\n"
	       "  encryption #enc-%s (X25519)\nhistory (every entry proven in "
	       "the signed tree head of size %" PRIu64 " of %s):\n", did,
	       st.version, st.revoked ? " REVOKED" : "", sk, ek,
	       pp[0].head.size, pp[0].head.log);
	for (size_t i = 0; i < n; i++) {
		const amp_log_leaf *l = &pp[i].l;
		static const char *const what[] = { "?", "registered",
						    "rotated", "revoked" };
		printf("  entry %-8" PRIu64 " time %-10" PRIu64 " %-10s version "
		       "%" PRIu32, pp[i].index, l->time,
		       l->type <= AMP_LOG_REVOKE ? what[l->type] : "?", l->version);
		if (l->type != AMP_LOG_REVOKE) {
			amp_key_id(l->sign_pk, sk);
			printf("  #sig-%s", sk);
		}
		printf("\n");
	}
	r = CLI_OK;
out:
	free(pp);
	free(doc);
	nclient_close(&c);
	amp_identity_destroy(&me);
	return r;
}
