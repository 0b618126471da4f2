/*
 * cmd-node.c — the `amp` commands that talk to a node (PROTOCOL.md §8–10):
 * register, send, fetch, inbox, ack, lookup.
 *
 * `amp register` writes HOME/client.conf (0600), which the others read:
 *     node = HOST:PORT        the home node
 *     transport = quic|tls
 *     node_key = BASE64URL    the node's Ed25519 key, pinned (AMP-R-032)
 *     node_did = DID
 * DID documents learnt from the node are kept in HOME/known/DID.json
 * (trust on first use); a document given with --doc or already known
 * wins over the node's answer.
 */
#include "cli.h"

#include "bsend.h"
#include "client.h"
#include "client-log.h"
#include "amp-private.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX AMP_BODY_MAX

int cli_resolve_via(cli_env *env, nclient *c, const char *did,
		   const amp_public_identity *me, amp_public_identity *pub_r)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/known/%s.json", env->home, did);
	if (n < 0 || (size_t)n >= sizeof(path))
		return CLI_FAIL;
	if (me != NULL && strcmp(me->did, did) == 0) {
		*pub_r = *me;
		return CLI_OK;
	}
	int found = cli_doc_find(env, did, pub_r);
	if (found != CLI_NOT_FOUND)
		return found;
	if (access(path, F_OK) == 0)
		return cli_resolve(env, did, me, pub_r);
	char *doc = NULL;
	const char *err = NULL;
	if (nclient_lookup(c, did, &doc, NULL, &err) != 0) {
		cli_err(env, "lookup %s: %s", did, err);
		return CLI_FAIL;
	}
	amp_err e = amp_did_document_parse(doc, strlen(doc), pub_r, &err);
	if (e != AMP_OK || strcmp(pub_r->did, did) != 0) {
		free(doc);
		cli_err(env, "lookup %s: the node answered with an invalid document",
			did);
		return CLI_FAIL;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/known", env->home);
	if (util_mkdirs(dir, 0700) != 0 ||
	    util_write_file_atomic(path, doc, strlen(doc), 0644, 0) != 0)
		cli_err(env, "warning: cannot remember %s in %s: %s", did, dir,
			strerror(errno));
	free(doc);
	return CLI_OK;
}

/* A correspondent whose key we know (HOME/known) rotated it: accept the
 * node's new document only if the identity's proven key history (its
 * home node's transparency log, PROTOCOL.md §11) runs from the key we
 * know to the new one.  CLI_OK with *pub_r the new keys (remembered). */
static int follow_rotation(cli_env *env, nclient *c, const char *did,
			   const amp_public_identity *known,
			   amp_public_identity *pub_r)
{
	char *doc = NULL;
	nlog_proved *pp = NULL;
	size_t n = 0;
	amp_log_identity st;
	const char *err = NULL;
	int status, r = CLI_FAIL;
	amp_public_identity lognode;
	bool remote = false;
	if (cli_log_node_of(env, c, did, &lognode, &remote) != CLI_OK ||
	    nlog_lookup_history(c, did, remote ? &lognode : NULL, &doc, &st, &pp,
				&n, &status, &err) != 0 ||
	    (!remote && cli_head_accept(env, c, &pp[0].head) != CLI_OK))
		goto out;
	bool seen = false;
	for (size_t i = 0; i < n; i++)
		if (pp[i].l.type != AMP_LOG_REVOKE &&
		    memcmp(pp[i].l.sign_pk, known->sign_pk, 32) == 0)
			seen = true;
	if (!seen || st.revoked ||
	    amp_did_document_parse(doc, strlen(doc), pub_r, &err) != AMP_OK) {
		err = "the key we know is not in its proven key history";
		goto out;
	}
	char path[PATH_MAX];
	int k = snprintf(path, sizeof(path), "%s/known/%s.json", env->home, did);
	if (k < 0 || (size_t)k >= sizeof(path) ||
	    util_write_file_atomic(path, doc, strlen(doc), 0644, 0) != 0)
		cli_err(env, "warning: cannot remember the new key of %s", did);
	fprintf(stderr, "amp: %s: %s rotated its key to version %u (proven in "
		"its node's transparency log); now using the new key\n",
		env->cmd, did, (unsigned)st.version);
	r = CLI_OK;
out:
	if (r != CLI_OK && err != NULL)
		cli_err(env, "%s: cannot follow a key change: %s", did, err);
	free(pp);
	free(doc);
	return r;
}

/* ------------------------------------------------------------- register */

static const char register_help[] =
	"Usage: amp register --node HOST:PORT [--invite TOKEN] [OPTIONS]\n"
	"\n"
	"Register our identity (the keystore's, made by `amp keygen`) with its\n"
	"home node, the node serving its domain.  Without an invite, a\n"
	"proof-of-work stamp of the difficulty the node asks for is minted\n"
	"first (it takes seconds).  The node proves its identity by signing\n"
	"the session; we prove ours: the request is signed with the identity\n"
	"key and carries a proof that we hold the encryption key.\n"
	"\n"
	"On success HOME/client.conf is written with the node's address,\n"
	"transport and key, so later commands need no options.\n"
	"\n"
	"We do not take the node's word for it: we then wait until the node's\n"
	"transparency log shows the registration (our keys, signed by us) in\n"
	"a signed tree head, and check the proof (docs/transparency.md).  If\n"
	"it does not, the exit status is 1: do not trust that node.\n"
	"\n"
	"  --invite TOKEN     an invite from the node's operator\n"
	"                     (`aftersmtpd invite`) instead of proof of work\n"
	"  --stamp STAMP      use this stamp (`amp pow mint`) instead of minting\n"
	"  --log-wait SECONDS how long to wait for the log (default 30)\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp keygen --did did:aftersmtp:example.org:alice\n"
	"  amp register --node mail.example.org:4434\n";

int cmd_register(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "invite", required_argument, NULL, 'i' },
		{ "stamp", required_argument, NULL, 's' },
		{ "log-wait", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	cli_conn_opts co = { 0 };
	const char *invite = NULL, *stamp = NULL;
	unsigned log_wait = 30;
	uint64_t v;
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case 'i': invite = optarg; break;
		case 's': stamp = optarg; break;
		case 'L':
			if (!util_parse_u64(optarg, 1, 3600, &v)) {
				cli_err(env, "--log-wait must be 1-3600 seconds");
				return CLI_USAGE;
			}
			log_wait = (unsigned)v;
			break;
		case 'h': fputs(register_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
	}
	if (optind != argc) {
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	amp_identity *id = NULL;
	nclient *cl = NULL;
	const char *err = NULL;
	char stamp_buf[AMP_POW_TEXT_MAX + 1];
	int r = CLI_FAIL;
	if (cli_load_identity(env, &id) != CLI_OK)
		return CLI_FAIL;
	if (cli_connect_node(env, &co, &cl) != CLI_OK)
		goto out;
	const amp_public_identity *node = nclient_node(cl);
	amp_did mine, theirs;
	if (amp_did_parse(id->pub.did, strlen(id->pub.did), &mine, NULL) != AMP_OK ||
	    amp_did_parse(node->did, strlen(node->did), &theirs, NULL) != AMP_OK ||
	    strcmp(mine.domain, theirs.domain) != 0) {
		cli_err(env, "that node is %s; %s belongs to the node of %s",
			node->did, id->pub.did, mine.domain);
		goto out;
	}
	if (invite == NULL && stamp == NULL) {
		amp_pow_stamp st;
		uint32_t bits = nclient_pow_bits(cl);
		fprintf(stderr, "amp: register: minting a proof-of-work stamp of %u "
			"bits (about 2^%u hashes)...\n", bits, bits);
		amp_err e = amp_pow_mint(&id->pub, bits, 0, 0, &st, &err);
		if (e != AMP_OK || amp_pow_format(&st, stamp_buf, sizeof(stamp_buf)) != AMP_OK) {
			cli_fail(env, "proof of work", e, err);
			goto out;
		}
		stamp = stamp_buf;
		/* minting may take longer than the node keeps us: reconnect */
		nclient_close(&cl);
		if (cli_connect_node(env, &co, &cl) != CLI_OK)
			goto out;
		node = nclient_node(cl);
	}
	if (nclient_register(cl, id, stamp, invite, NULL, NULL, &err) != 0) {
		cli_err(env, "%s", err);
		goto out;
	}
	/* Remember the node (pinned from now on). */
	char key[64], path[PATH_MAX], text[1024];
	sodium_bin2base64(key, sizeof(key), node->sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	cfg *cc;
	if (cli_load_client_conf(env, &cc) != CLI_OK)
		goto out;
	char nodeaddr[300], tname[16];
	snprintf(nodeaddr, sizeof(nodeaddr), "%s",
		 co.node != NULL ? co.node : cfg_str(cc, "node"));
	snprintf(tname, sizeof(tname), "%s",
		 co.transport != NULL ? co.transport : cfg_str(cc, "transport"));
	cfg_free(&cc);
	int n = snprintf(text, sizeof(text),
			 "# written by `amp register`\nnode = %s\ntransport = %s\n"
			 "node_key = %s\nnode_did = %s\n",
			 nodeaddr, tname, key, node->did);
	if (n < 0 || (size_t)n >= sizeof(text) || cli_client_conf_path(env, path) != 0 ||
	    util_mkdirs(env->home, 0700) != 0 ||
	    util_write_file_atomic(path, text, (size_t)n, 0600, 0) != 0) {
		cli_err(env, "registered, but cannot write the client "
			"configuration: %s", strerror(errno));
		goto out;
	}
	printf("registered %s at %s (%s, %s)\nnode key %s (pinned in %s)\n",
	       id->pub.did, node->did, nodeaddr, tname, key, path);
	fflush(stdout);
	/* Do not trust the node: its log must show the registration. */
	amp_log_leaf want = { .type = AMP_LOG_REGISTER, .version = 0 };
	amp_log_did_hash(id->pub.did, want.subject);
	memcpy(want.sign_pk, id->pub.sign_pk, 32);
	memcpy(want.enc_pk, id->pub.enc_pk, 32);
	amp_log_sign_key(id->sign_sk, want.subject, 0, id->pub.sign_pk,
			 id->pub.enc_pk, want.sig);
	r = cli_log_confirm(env, cl, &want, log_wait);
out:
	nclient_close(&cl);
	amp_identity_destroy(&id);
	return r;
}

/* ----------------------------------------------------------------- send */

static const char send_help[] =
	"Usage: amp send [-f FILE] [OPTIONS] RECIPIENT...\n"
	"\n"
	"Seal a message end to end for each recipient DID, sign it with our\n"
	"identity, and hand it to our home node, which stores it for its own\n"
	"users and relays it to the other recipients' nodes.  The message is\n"
	"read from FILE or standard input: an RFC 5322 message (sent as\n"
	"message/rfc822) or plain text (text/plain).  Recipients' keys come\n"
	"from --doc files, HOME/known, or a lookup through the node (then\n"
	"remembered in HOME/known).\n"
	"\n"
	"A RECIPIENT that is a mail address (user@example.net) is reached\n"
	"through our node's gateway (PROTOCOL.md section 10.9): the message,\n"
	"which must then be an RFC 5322 message whose From is our own\n"
	"address or DID, is sealed to did:aftersmtp:<our domain>:gateway as\n"
	"well, with an AMP-Egress-To: field naming the mail addresses added\n"
	"at its top.  The node opens it, signs it with DKIM and sends it over\n"
	"SMTP; if it cannot be delivered, a delivery status notification\n"
	"comes back to our inbox.\n"
	"\n"
	"Prints one line per recipient: DID, then OK or the node's reason,\n"
	"then, when an AMP recipient accepted it, \"receipt DIGEST\": the\n"
	"envelope's SHA-256, under which each recipient's node logs that it\n"
	"accepted it (`amp receipt get DIGEST`).\n"
	"Exit status 0 when every recipient was accepted.\n"
	"\n"
	"  -f, --file FILE    the message (default: standard input)\n"
	"  --expires SECONDS  the message expires this long after sending\n"
	"  --lane LANE        critical, normal (default) or bulk: the queue\n"
	"                     lane at the nodes and the gateway\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Examples:\n"
	"  amp send did:aftersmtp:example.net:bob < letter.eml\n"
	"  amp send carol@example.com did:aftersmtp:example.net:bob < letter.eml\n";

/* Does the text start with an RFC 5322 header field? */
static bool looks_like_rfc5322(const uint8_t *b, size_t n)
{
	size_t i = 0;
	while (i < n && i < 80 && b[i] > 32 && b[i] < 127 && b[i] != ':')
		i++;
	return i > 0 && i < n && b[i] == ':';
}

int cmd_send(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "file", required_argument, NULL, 'f' },
		{ "expires", required_argument, NULL, 'e' },
		{ "lane", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	cli_conn_opts co = { 0 };
	const char *file = "-";
	uint64_t expires_in = 0;
	amp_lane lane = AMP_LANE_NORMAL;
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "hf:", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case 'f': file = optarg; break;
		case 'e':
			if (!util_parse_u64(optarg, 60, 10u * 365u * 86400u, &expires_in)) {
				cli_err(env, "--expires must be 60 seconds to 10 years");
				return CLI_USAGE;
			}
			break;
		case 'l':
			if (strcmp(optarg, "critical") == 0)
				lane = AMP_LANE_CRITICAL;
			else if (strcmp(optarg, "bulk") == 0)
				lane = AMP_LANE_BULK;
			else if (strcmp(optarg, "normal") != 0) {
				cli_err(env, "--lane is critical, normal or bulk");
				return CLI_USAGE;
			}
			break;
		case 'h': fputs(send_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
	}
	size_t n = (size_t)(argc - optind);
	if (n == 0 || n > AMP_RECIPIENTS_MAX) {
		cli_err(env, "give 1 to %u recipients", AMP_RECIPIENTS_MAX);
		return CLI_USAGE;
	}
	uint8_t *body;
	size_t len;
	if (util_read_file(file, MSG_MAX, &body, &len) != 0) {
		cli_err(env, "%s: %s", file, errno == EFBIG ? "larger than 32 MiB"
							    : strerror(errno));
		return CLI_FAIL;
	}
	/* Mail addresses go through the gateway: one AMP-Egress-To field
	 * at the top names them, and the gateway is one more recipient. */
	size_t n_mail = 0;
	for (int i = optind; i < argc; i++) {
		if (strncmp(argv[i], "did:", 4) == 0)
			continue;
		if (strchr(argv[i], '@') == NULL ||
		    strpbrk(argv[i], " \t\r\n<>,") != NULL || strlen(argv[i]) > 254) {
			cli_err(env, "%s: neither a DID nor a mail address", argv[i]);
			sodium_memzero(body, len);
			free(body);
			return CLI_USAGE;
		}
		n_mail++;
	}
	if (n_mail > 0) {
		if (!looks_like_rfc5322(body, len)) {
			cli_err(env, "mail addresses need an RFC 5322 message "
				"(with a From: field)");
			sodium_memzero(body, len);
			free(body);
			return CLI_USAGE;
		}
		const char **addrs = calloc(n_mail, sizeof(*addrs));
		size_t na = 0, nlen = 0;
		uint8_t *nb = NULL;
		for (int i = optind; addrs != NULL && i < argc; i++)
			if (strncmp(argv[i], "did:", 4) != 0)
				addrs[na++] = argv[i];
		int w = addrs != NULL ? bsend_egress_wrap(addrs, na, body, len, &nb, &nlen) : -1;
		free(addrs);
		sodium_memzero(body, len);
		free(body);
		if (w != 0) {
			cli_err(env, "the message is too large");
			return CLI_FAIL;
		}
		body = nb;
		len = nlen;
	}
	amp_identity *id = NULL;
	nclient *cl = NULL;
	amp_public_identity *rcpts = calloc(n, sizeof(*rcpts));
	uint8_t *env_bytes = NULL;
	size_t env_len = 0;
	const char *err = NULL;
	int r = CLI_FAIL;
	if (rcpts == NULL || cli_connect_auth(env, &co, &id, &cl) != CLI_OK)
		goto out;
	size_t nr = 0;
	for (int i = optind; i < argc; i++) {
		char canon[AMP_DID_MAX + 1];
		if (strncmp(argv[i], "did:", 4) != 0)
			continue;
		if (amp_did_normalize(argv[i], canon, sizeof(canon), &err) !=
		    AMP_OK) {
			cli_err(env, "%s: %s", argv[i], err);
			goto out;
		}
		if (cli_resolve_via(env, cl, canon, &id->pub, &rcpts[nr++]) != CLI_OK)
			goto out;
	}
	if (n_mail > 0 && bsend_gateway(env, cl, id, &rcpts[nr++]) != 0)
		goto out;
	bsend_opts so = {
		.content_type = looks_like_rfc5322(body, len) ? "message/rfc822"
							      : "text/plain",
		.expires = expires_in > 0 ? (uint64_t)time(NULL) + expires_in : 0,
		.lane = lane,
	};
	Amp__V1__Response *resp = NULL;
	int status;
	if (bsend_seal_deliver(id, cl, rcpts, nr, &so, body, len, &resp, &env_bytes,
			       &env_len, &status, &err) != 0) {
		cli_err(env, "%s: %s", env_bytes == NULL ? "seal" : "deliver", err);
		goto out;
	}
	r = CLI_OK;
	bool logged = false;       /* accepted for an AMP user: a receipt */
	for (size_t i = 0; resp != NULL && i < resp->deliver->n_recipients; i++) {
		Amp__V1__RecipientResult *rr = resp->deliver->recipients[i];
		bool ok = rr->status == AMP__V1__STATUS__STATUS_OK;
		amp_did rd;
		if (ok && amp_did_parse(rr->did, strlen(rr->did), &rd, NULL) == AMP_OK &&
		    strcmp(rd.local, "gateway") != 0)
			logged = true;
		printf("%s %s%s%s\n", rr->did, ok ? "OK" : nclient_status_name((int)rr->status),
		       rr->error[0] != '\0' ? " " : "", rr->error);
		if (!ok)
			r = CLI_FAIL;
	}
	if (resp != NULL && resp->deliver->duplicate)
		fprintf(stderr, "amp: send: the node had this message already\n");
	if (logged) {
		/* §11.2: the recipients' nodes log a receipt under this digest
		 * (`amp receipt get DIGEST`). */
		uint8_t dg[32];
		char hex[65];
		amp_log_envelope_digest(env_bytes, env_len, dg);
		sodium_bin2hex(hex, sizeof(hex), dg, sizeof(dg));
		printf("receipt %s\n", hex);
	}
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
out:
	amp_free(env_bytes);
	free(rcpts);
	sodium_memzero(body, len);
	free(body);
	nclient_close(&cl);
	amp_identity_destroy(&id);
	return r;
}

/* --------------------------------------------------------- fetch, inbox */

static const char fetch_help[] =
	"Usage: amp fetch [--maildir DIR] [--ack] [--wait SECONDS] [OPTIONS]\n"
	"\n"
	"Fetch our inbox from the home node, verify each message's signature\n"
	"and open it.  Messages go to a Maildir (DIR/new, one file each,\n"
	"written and synced before anything is acknowledged) or, without\n"
	"--maildir, to standard output in mbox form.  A message that fails to\n"
	"verify or open is reported and left on the node.\n"
	"\n"
	"  --maildir DIR      deliver into this Maildir (created if missing)\n"
	"  --ack              delete each message from the node once written\n"
	"  --wait SECONDS     if the inbox is empty, wait this long for mail\n"
	"                     (long poll; no polling)\n"
	"  --delivery-headers for mail the node took over SMTP, add at the top\n"
	"                     X-Original-To: (the address it was sent to) and,\n"
	"                     when the sender gave one, Original-Recipient:\n"
	"                     (RFC 3798, from its DSN ORCPT), from the node's\n"
	"                     delivery note; the sealed message is not changed\n"
	"\n"
	"Mail the node put in quarantine (the sender's domain failed DMARC\n"
	"and its policy asks for quarantine; see docs/mailauth.md) goes to the\n"
	"Maildir++ folder DIR/.Junk instead of DIR.\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp fetch --maildir ~/Maildir --ack\n";

static const char inbox_help[] =
	"Usage: amp inbox [--save DIR] [OPTIONS]\n"
	"\n"
	"List the messages waiting on the home node, without opening them:\n"
	"SEQ, received time (UTC), sender DID, size in bytes, envelope id.\n"
	"Use the SEQ with `amp ack`.\n"
	"\n"
	"  --save DIR         also write each sealed envelope, as received, to\n"
	"                     DIR/ENVELOPE-ID.amp (inspect one with\n"
	"                     `amp open --info -i FILE`)\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP;

static int maildir_write(cli_env *env, const char *dir, const char *name,
			 const uint8_t *data, size_t len)
{
	char tmp[PATH_MAX], fin[PATH_MAX], sub[PATH_MAX];
	static const char *const subs[] = { "tmp", "new", "cur" };
	for (size_t i = 0; i < 3; i++) {
		int sn = snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (sn < 0 || (size_t)sn >= sizeof(sub)) {
			cli_err(env, "%s: path too long", dir);
			return CLI_FAIL;
		}
		if (util_mkdirs(sub, 0700) != 0) {
			cli_err(env, "%s: %s", sub, strerror(errno));
			return CLI_FAIL;
		}
	}
	int a = snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name);
	int b = snprintf(fin, sizeof(fin), "%s/new/%s", dir, name);
	if (a < 0 || b < 0 || (size_t)a >= sizeof(tmp) || (size_t)b >= sizeof(fin)) {
		cli_err(env, "%s: path too long", dir);
		return CLI_FAIL;
	}
	/* written and fsync'd in tmp/, then moved to new/ (the rename is
	 * made durable by util_write_file_atomic's directory sync of new/ on
	 * the next message; sync it here too) */
	if (util_write_file_atomic(tmp, data, len, 0600, 0) != 0 ||
	    rename(tmp, fin) != 0) {
		cli_err(env, "%s: %s", fin, strerror(errno));
		return CLI_FAIL;
	}
	int sn = snprintf(sub, sizeof(sub), "%s/new", dir);
	FILE *d = sn > 0 && (size_t)sn < sizeof(sub) ? fopen(sub, "r") : NULL;
	if (d != NULL) {
		fsync(fileno(d));
		fclose(d);
	}
	return CLI_OK;
}

static void mbox_write(const char *sender, uint64_t received, const uint8_t *b,
		       size_t len)
{
	time_t t = (time_t)received;
	char date[64];
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	printf("From %s %s\n", sender, date);
	/* mboxrd: ">From " quoting of body lines */
	size_t i = 0;
	while (i < len) {
		const uint8_t *nl = memchr(b + i, '\n', len - i);
		size_t ll = nl != NULL ? (size_t)(nl - (b + i)) + 1 : len - i;
		size_t j = 0;
		while (j < ll && b[i + j] == '>')
			j++;
		if (ll - j >= 5 && memcmp(b + i + j, "From ", 5) == 0)
			putchar('>');
		fwrite(b + i, 1, ll, stdout);
		i += ll;
	}
	if (len == 0 || b[len - 1] != '\n')
		putchar('\n');
	putchar('\n');
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* xtext: upper-case hex only */
}

bool cli_note_value(const char *note, const char *key, char *out,
		       size_t size)
{
	size_t kl = strlen(key);
	for (const char *p = note; *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t wl = end != NULL ? (size_t)(end - p) : strlen(p);
		if (wl > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t o = 0;
			for (size_t i = kl + 1; i < wl; i++) {
				unsigned v = (unsigned char)p[i];
				if (v == '+') {
					int hi, lo;
					if (i + 2 >= wl ||
					    (hi = hexval(p[i + 1])) < 0 ||
					    (lo = hexval(p[i + 2])) < 0)
						return false;
					v = (unsigned)(hi * 16 + lo);
					i += 2;
				}
				if (v < 32 || v == 127 || o + 1 >= size)
					return false; /* never a control byte in a header */
				out[o++] = (char)v;
			}
			out[o] = '\0';
			return o > 0;
		}
		p += wl;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* X-Original-To: and Original-Recipient: from the note, in front of the
 * message (a new malloc'ed buffer; amp_free frees it). */
static bool delivery_headers(const char *note, const uint8_t *body, size_t blen,
			     uint8_t **out_r, size_t *len_r)
{
	char rcpt[1024], orcpt[1024], hdr[2200];
	int n = 0;
	if (cli_note_value(note, "rcpt", rcpt, sizeof(rcpt)))
		n = snprintf(hdr, sizeof(hdr), "X-Original-To: %s\r\n", rcpt);
	if (n >= 0 && cli_note_value(note, "orcpt", orcpt, sizeof(orcpt)))
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n,
			      "Original-Recipient: %s\r\n", orcpt);
	if (n <= 0 || (size_t)n >= sizeof(hdr))
		return false;
	uint8_t *b = malloc((size_t)n + blen);
	if (b == NULL)
		return false;
	memcpy(b, hdr, (size_t)n);
	memcpy(b + n, body, blen);
	*out_r = b;
	*len_r = (size_t)n + blen;
	return true;
}

/* `amp inbox`: one line per waiting envelope (decoded, not verified),
 * and the envelope saved in DIR when --save DIR. */
static int list_item(cli_env *env, const Amp__V1__InboxItem *it,
		     const char *save)
{
	amp_envelope *env_d = NULL;
	amp_envelope_info info;
	const char *err = NULL;
	amp_err e = amp_envelope_decode(it->envelope.data, it->envelope.len,
					&env_d, &err);
	if (e != AMP_OK) {
		cli_err(env, "message %llu: %s: %s", (unsigned long long)it->seq,
			amp_err_name(e), err);
		return CLI_FAIL;
	}
	amp_envelope_get_info(env_d, &info);
	char idhex[33];
	sodium_bin2hex(idhex, sizeof(idhex), info.envelope_id, 16);
	time_t t = (time_t)it->received;
	struct tm tm;
	char date[32];
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%llu  %s  %s  %zu  %s\n", (unsigned long long)it->seq, date,
	       info.sender, (size_t)it->envelope.len, idhex);
	amp_envelope_free(&env_d);
	char path[PATH_MAX];
	int pl = save == NULL ? 0
		: snprintf(path, sizeof(path), "%s/%s.amp", save, idhex);
	if (save != NULL &&
	    (pl < 0 || (size_t)pl >= sizeof(path) || util_mkdirs(save, 0700) != 0 ||
	     util_write_file_atomic(path, it->envelope.data, it->envelope.len,
				    0600, 0) != 0)) {
		cli_err(env, "%s: cannot save the envelope", save);
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_open_fetched(cli_env *env, nclient *c, const amp_identity *id,
		     amp_identity *const *retired, size_t n_retired,
		     const uint8_t *data, size_t len, cli_opened *o)
{
	amp_envelope *env_d = NULL;
	amp_envelope_info info;
	const char *err = NULL;
	memset(o, 0, sizeof(*o));
	amp_err e = amp_envelope_decode(data, len, &env_d, &err);
	if (e != AMP_OK) {
		snprintf(o->reason, sizeof(o->reason), "%s: %s", amp_err_name(e),
			 err != NULL ? err : "");
		return CLI_FAIL;
	}
	amp_envelope_get_info(env_d, &info);
	snprintf(o->sender, sizeof(o->sender), "%s", info.sender);
	memcpy(o->envelope_id, info.envelope_id, AMP_ENVELOPE_ID_BYTES);
	snprintf(o->content_type, sizeof(o->content_type), "%s",
		 info.content_type != NULL ? info.content_type : "message/rfc822");
	amp_public_identity sender;
	if (cli_resolve_via(env, c, o->sender, &id->pub, &sender) != CLI_OK) {
		amp_envelope_free(&env_d);
		snprintf(o->reason, sizeof(o->reason),
			 "the sender's keys cannot be resolved");
		return CLI_FAIL;
	}
	e = amp_envelope_open(NULL, env_d, id, &sender, 0, &o->body, &o->len, &err);
	amp_public_identity fresh;
	if (e == AMP_E_BAD_SIGNATURE &&
	    follow_rotation(env, c, sender.did, &sender, &fresh) == CLI_OK) {
		sender = fresh;
		e = amp_envelope_open(NULL, env_d, id, &sender, 0, &o->body,
				      &o->len, &err);
	}
	/* Sealed to a key we rotated away from: the kept ones. */
	for (size_t rk = 0; e == AMP_E_KEY_UNWRAP && rk < n_retired; rk++)
		e = amp_envelope_open(NULL, env_d, retired[rk], &sender, 0,
				      &o->body, &o->len, &err);
	if (e != AMP_OK)
		snprintf(o->reason, sizeof(o->reason), "%s: %s", amp_err_name(e),
			 err != NULL ? err : "");
	amp_envelope_free(&env_d); /* info and err point into it */
	return e == AMP_OK ? CLI_OK : CLI_FAIL;
}

void cli_opened_clear(cli_opened *o)
{
	if (o->body != NULL) {
		sodium_memzero(o->body, o->len);
		amp_free(o->body);
	}
	o->body = NULL;
	o->len = 0;
}

static int fetch_or_list(cli_env *env, int argc, char **argv, bool list)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "maildir", required_argument, NULL, 'm' },
		{ "ack", no_argument, NULL, 'a' },
		{ "wait", required_argument, NULL, 'w' },
		{ "save", required_argument, NULL, 's' },
		{ "delivery-headers", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	cli_conn_opts co = { 0 };
	const char *maildir = NULL, *save = NULL;
	bool dheaders = false;
	bool ack = false;
	uint64_t wait_s = 0;
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case 'm': if (list) goto usage; maildir = optarg; break;
		case 'a': if (list) goto usage; ack = true; break;
		case 's': if (!list) goto usage; save = optarg; break;
		case 'D': if (list) goto usage; dheaders = true; break;
		case 'w':
			if (!util_parse_u64(optarg, 0, 3600, &wait_s)) {
				cli_err(env, "--wait must be 0-3600 seconds");
				return CLI_USAGE;
			}
			break;
		case 'h':
			fputs(list ? inbox_help : fetch_help, stdout);
			return CLI_OK;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	amp_identity *id = NULL, **retired = NULL;
	size_t n_retired = 0;
	nclient *cl = NULL;
	const char *aerr = NULL;
	if (cli_load_identities(env, &id, &retired, &n_retired) != CLI_OK)
		return CLI_FAIL;
	if (cli_connect_node(env, &co, &cl) != CLI_OK ||
	    nclient_auth(cl, id, NULL, &aerr) != 0) {
		if (aerr != NULL)
			cli_err(env, "authentication: %s", aerr);
		nclient_close(&cl);
		cli_identities_free(&retired, n_retired);
		amp_identity_destroy(&id);
		return CLI_FAIL;
	}
	uint64_t cursor = 0;
	int r = CLI_OK;
	size_t got = 0, bad = 0;
	for (;;) {
		Amp__V1__Response *resp;
		const char *err = NULL;
		uint32_t wait_ms = got == 0 && bad == 0 ? (uint32_t)(wait_s * 1000u) : 0;
		if (nclient_fetch(cl, cursor, 100, wait_ms, &resp, NULL, &err) != 0) {
			cli_err(env, "fetch: %s", err);
			r = CLI_FAIL;
			break;
		}
		Amp__V1__FetchResult *fr = resp->result_case ==
			AMP__V1__RESPONSE__RESULT_FETCH ? resp->fetch : NULL;
		size_t n = fr != NULL ? fr->n_items : 0;
		for (size_t i = 0; i < n; i++) {
			Amp__V1__InboxItem *it = fr->items[i];
			if (list) {
				if (list_item(env, it, save) != CLI_OK)
					r = CLI_FAIL;
				got++;
				continue;
			}
			cli_opened op;
			if (cli_open_fetched(env, cl, id, retired, n_retired,
					     it->envelope.data, it->envelope.len,
					     &op) != CLI_OK) {
				cli_err(env, "message %llu%s%s: %s",
					(unsigned long long)it->seq,
					op.sender[0] != '\0' ? " from " : "", op.sender,
					op.reason);
				bad++;
				continue;
			}
			char idhex[33];
			sodium_bin2hex(idhex, sizeof(idhex), op.envelope_id, 16);
			uint8_t *body = op.body;
			size_t blen = op.len;
			op.body = NULL;
			int w = CLI_OK;
			if (dheaders && it->delivery != NULL && it->delivery[0] != '\0') {
				uint8_t *nb = NULL;
				size_t nlen = 0;
				if (delivery_headers(it->delivery, body, blen, &nb, &nlen)) {
					sodium_memzero(body, blen);
					amp_free(body);
					body = nb;
					blen = nlen;
				}
			}
			if (maildir != NULL) {
				char name[128], folder[16], junkdir[PATH_MAX];
				const char *dest = maildir;
				snprintf(name, sizeof(name), "%llu.%s.amp",
					 (unsigned long long)it->received, idhex);
				/* the node's verdict (folder=Junk: the sender's
				 * DMARC policy said quarantine): Maildir++ .Junk */
				if (it->delivery != NULL &&
				    cli_note_value(it->delivery, "folder", folder,
					       sizeof(folder)) &&
				    strcmp(folder, "Junk") == 0) {
					int jn = snprintf(junkdir, sizeof(junkdir),
							  "%s/.Junk", maildir);
					if (jn > 0 && (size_t)jn < sizeof(junkdir))
						dest = junkdir;
				}
				w = maildir_write(env, dest, name, body, blen);
			} else {
				mbox_write(op.sender, it->received, body, blen);
				if (fflush(stdout) != 0)
					w = CLI_FAIL;
			}
			sodium_memzero(body, blen);
			amp_free(body);
			if (w != CLI_OK) {
				r = CLI_FAIL;
				break;
			}
			got++;
			fprintf(stderr, "amp: fetch: %llu from %s (verified)\n",
				(unsigned long long)it->seq, op.sender);
			if (ack && nclient_ack(cl, &it->seq, 1, NULL, &err) != 0) {
				cli_err(env, "ack %llu: %s", (unsigned long long)it->seq, err);
				r = CLI_FAIL;
				break;
			}
		}
		if (fr != NULL)
			cursor = fr->cursor;
		amp__v1__response__free_unpacked(resp, NULL);
		if (n == 0 || r != CLI_OK)
			break;
	}
	if (!list)
		fprintf(stderr, "amp: fetch: %zu message%s%s\n", got,
			got == 1 ? "" : "s", bad > 0 ? " (some failed, see above)" : "");
	nclient_close(&cl);
	cli_identities_free(&retired, n_retired);
	amp_identity_destroy(&id);
	return bad > 0 ? CLI_FAIL : r;
usage:
	cli_usage_hint(env);
	return CLI_USAGE;
}

int cmd_fetch(cli_env *env, int argc, char **argv)
{
	return fetch_or_list(env, argc, argv, false);
}

int cmd_inbox(cli_env *env, int argc, char **argv)
{
	return fetch_or_list(env, argc, argv, true);
}

/* ------------------------------------------------------------ ack, lookup */

static const char ack_help[] =
	"Usage: amp ack [OPTIONS] SEQ...\n"
	"\n"
	"Delete messages from our inbox on the home node, by the SEQ that\n"
	"`amp inbox` shows.  The deletion is durable when this returns 0.\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP;

static const char lookup_help[] =
	"Usage: amp lookup [OPTIONS] DID|ADDRESS\n"
	"\n"
	"Ask the home node for DID's document (its keys); the node asks the\n"
	"DID's own node when it is remote.  Prints the JSON document.\n"
	"\n"
	"Given a mail address (user@example.org) instead, the node finds the\n"
	"identity it names (its canonical_maps, or the address's domain's\n"
	"node; PROTOCOL.md section 10.3.1) and the first line printed is\n"
	"\"DID ADDRESS\" (the identity and its mail address), then the\n"
	"document.  Exit status 1 with \"not found\" when the address is not\n"
	"an AfterSMTP identity: mail to it goes out as legacy mail.\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP;

static int ack_or_lookup(cli_env *env, int argc, char **argv, bool ack)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS, { NULL, 0, NULL, 0 },
	};
	cli_conn_opts co = { 0 };
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		if (c == 'h') {
			fputs(ack ? ack_help : lookup_help, stdout);
			return CLI_OK;
		}
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	size_t n = (size_t)(argc - optind);
	if (n == 0 || (!ack && n != 1) || n > 10000) {
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	amp_identity *id = NULL;
	nclient *cl = NULL;
	const char *err = NULL;
	int r = CLI_FAIL;
	if (cli_connect_auth(env, &co, &id, &cl) != CLI_OK)
		return CLI_FAIL;
	if (ack) {
		uint64_t *seqs = calloc(n, sizeof(*seqs));
		if (seqs == NULL)
			goto out;
		for (size_t i = 0; i < n; i++) {
			if (!util_parse_u64(argv[optind + i], 1, INT64_MAX, &seqs[i])) {
				cli_err(env, "'%s' is not a SEQ", argv[optind + i]);
				free(seqs);
				r = CLI_USAGE;
				goto out;
			}
		}
		if (nclient_ack(cl, seqs, n, NULL, &err) != 0)
			cli_err(env, "%s", err);
		else
			r = CLI_OK;
		free(seqs);
	} else {
		char *doc = NULL, *addr = NULL;
		const char *q = argv[optind];
		bool by_addr = strncmp(q, "did:", 4) != 0 && strchr(q, '@') != NULL;
		amp_public_identity pub;
		if ((by_addr ? nclient_lookup_address(cl, q, &doc, &addr, NULL, &err)
			     : nclient_lookup(cl, q, &doc, NULL, &err)) != 0) {
			cli_err(env, "%s", err);
		} else if (by_addr && amp_did_document_parse(doc, strlen(doc), &pub,
							     &err) != AMP_OK) {
			cli_err(env, "the node answered with an invalid document: %s",
				err);
		} else {
			if (by_addr)
				printf("%s %s\n", pub.did, addr);
			printf("%s\n", doc);
			r = CLI_OK;
		}
		free(addr);
		free(doc);
	}
out:
	nclient_close(&cl);
	amp_identity_destroy(&id);
	return r;
}

int cmd_ack(cli_env *env, int argc, char **argv)
{
	return ack_or_lookup(env, argc, argv, true);
}

int cmd_lookup(cli_env *env, int argc, char **argv)
{
	return ack_or_lookup(env, argc, argv, false);
}

/* ---------------------------------------------------------------- admin */

static const char admin_help[] =
	"Usage: amp admin invite [--config FILE] [--valid DURATION]\n"
	"\n"
	"Operator commands, run on the node's machine (they need the node's\n"
	"storage key, so they run `aftersmtpd` from beside `amp` or from\n"
	"PATH with the same configuration).\n"
	"\n"
	"  invite   print a one-time invite token: RegisterIdentity accepts it\n"
	"           instead of a proof of work, once, until it expires\n"
	"\n"
	"  --config FILE      the node's configuration (default: aftersmtpd's)\n"
	"  --valid DURATION   validity, N[s|m|h|d] (default 7d)\n"
	"\n"
	"Example:\n"
	"  amp admin invite --config /etc/aftersmtp/aftersmtpd.conf --valid 2d\n";

int cmd_admin(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "valid", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *valid = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'v': valid = optarg; break;
		case 'h': fputs(admin_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
	}
	if (optind != argc - 1 || strcmp(argv[optind], "invite") != 0) {
		cli_err(env, "the only admin command is `invite`");
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	/* aftersmtpd beside this program (a build tree or an install), else
	 * from PATH. */
	char self[PATH_MAX], path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *prog = "aftersmtpd";
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			static const char *const rel[] = { "aftersmtpd", "../daemon/aftersmtpd" };
			for (size_t i = 0; i < 2; i++) {
				int k = snprintf(path, sizeof(path), "%s/%s", self, rel[i]);
				if (k > 0 && (size_t)k < sizeof(path) && access(path, X_OK) == 0) {
					prog = path;
					break;
				}
			}
		}
	}
	char *args[8];
	int k = 0;
	args[k++] = (char *)"aftersmtpd";
	if (config != NULL) {
		args[k++] = (char *)"-c";
		args[k++] = (char *)config;
	}
	args[k++] = (char *)"invite";
	if (valid != NULL) {
		args[k++] = (char *)"--valid";
		args[k++] = (char *)valid;
	}
	args[k] = NULL;
	execvp(prog, args);
	cli_err(env, "cannot run %s: %s", prog, strerror(errno));
	return CLI_FAIL;
}
