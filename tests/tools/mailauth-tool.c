/*
 * mailauth-tool.c — a test tool (not installed) over src/daemon/mailauth.h:
 * the node's SPF, DKIM and DMARC checks of one message, with DNS from a
 * loopback server (tests/e2e/dnsfixture.py), so the e2e tests can compare
 * every verdict with independent implementations (pyspf, dkimpy,
 * authheaders); and the AMP-DID-Signature check with node keys given on
 * the command line instead of the registry.
 *
 *   mailauth-tool --forwarder IP[@PORT] --ip CLIENT-IP --helo NAME
 *                 [--mail-from ADDR] [--id AUTHSERV-ID] [--timeout MS]
 *                 [--no-spf] [--no-dkim] [--no-dmarc] [--no-arc]
 *                 [--no-did] [--did-key NODE-DID=HEX-PK]...
 *                 [--did-unknown NODE-DID]... [--did-delay MS] < message
 *
 * The DID resolver (on a worker thread, as in the node): a --did-key
 * node has that Ed25519 key, a --did-unknown node does not exist (0), any
 * other cannot be resolved (-1: temperror); each answer comes after
 * --did-delay milliseconds (to test the deadline).
 *
 * Prints one item a line:
 *   spf RESULT domain=D helo=yes|no reason="..."
 *   dkim-found N
 *   dkim RESULT d=D s=S a=ALG partial=yes|no reason="..."   (each checked)
 *   arc CV instances=N sealer=D reason="..."
 *   dmarc RESULT from=D policy=P disposition=X record=D reason="..."
 *   amp-did RESULT found=N d=DID n=DID reason="..."   (when found > 0 or
 *                    the message could not be read)
 *   timed-out yes|no
 *   authres VALUE   (our Authentication-Results field unfolded, the name
 *                    and colon left out)
 * Exit 0 when a result was printed, 1 when the check could not start, 2
 * on a usage error.
 */
#include "mailauth.h"
#include "log.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOOL_MSG_MAX (64u * 1024 * 1024)
#define TOOL_DID_KEYS 16

static int printed;

typedef struct did_key {
	const char *did;
	bool known;
	uint8_t pk[32];
} did_key;

static did_key did_keys[TOOL_DID_KEYS];
static size_t n_did_keys;
static unsigned did_delay_ms;

static int resolve(void *arg, const char *node_did, uint8_t pk_r[32],
		   const char **why_r)
{
	(void)arg;
	if (did_delay_ms > 0) {
		struct timespec ts = { did_delay_ms / 1000,
				       (long)(did_delay_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < n_did_keys; i++) {
		if (strcmp(did_keys[i].did, node_did) != 0)
			continue;
		if (!did_keys[i].known) {
			*why_r = "no such node";
			return 0;
		}
		memcpy(pk_r, did_keys[i].pk, 32);
		return 1;
	}
	*why_r = "the node cannot be reached";
	return -1;
}

/* NODE-DID=HEX-PK or (known false) NODE-DID. */
static int add_key(char *arg, bool known)
{
	if (n_did_keys >= TOOL_DID_KEYS)
		return -1;
	did_key *k = &did_keys[n_did_keys];
	k->did = arg;
	k->known = known;
	if (known) {
		char *eq = strchr(arg, '=');
		size_t bin_len;
		if (eq == NULL)
			return -1;
		*eq = '\0';
		if (sodium_hex2bin(k->pk, 32, eq + 1, strlen(eq + 1), NULL,
				   &bin_len, NULL) != 0 || bin_len != 32)
			return -1;
	}
	n_did_keys++;
	return 0;
}

static const char *yesno(bool b)
{
	return b ? "yes" : "no";
}

static void done(void *arg, const mailauth_result *r)
{
	(void)arg;
	if (r->spf_checked)
		printf("spf %s domain=%s helo=%s reason=\"%s\"\n",
		       spf_result_name(r->spf), r->spf_domain, yesno(r->spf_helo),
		       r->spf_reason != NULL ? r->spf_reason : "");
	if (r->dkim_checked) {
		printf("dkim-found %zu\n", r->dkim_found);
		if (r->dkim_error != NULL)
			printf("dkim-error \"%s\"\n", r->dkim_error);
		for (size_t i = 0; i < r->n_dkim; i++)
			printf("dkim %s d=%s s=%s a=%s partial=%s reason=\"%s\"\n",
			       dkim_status_name(r->dkim[i].status), r->dkim[i].d,
			       r->dkim[i].s, r->dkim[i].a, yesno(r->dkim[i].partial),
			       r->dkim[i].reason);
	}
	if (r->arc_checked)
		printf("arc %s instances=%zu sealer=%s reason=\"%s\"\n",
		       arc_cv_name(r->arc), r->arc_instances, r->arc_sealer,
		       r->arc_reason);
	if (r->dmarc_checked)
		printf("dmarc %s from=%s policy=%s disposition=%s record=%s "
		       "reason=\"%s\"\n", dmarc_result_name(r->dmarc.result),
		       r->from.domain, dmarc_policy_name(r->dmarc.policy),
		       dmarc_policy_name(r->dmarc.disposition), r->dmarc_domain,
		       r->dmarc.reason);
	if (r->did_checked && r->did != DIDSIG_NONE)
		printf("amp-did %s found=%zu d=%s n=%s reason=\"%s\"\n",
		       didsig_status_name(r->did), r->did_found, r->did_sender,
		       r->did_node, r->did_reason);
	printf("timed-out %s\n", yesno(r->timed_out));
	/* unfolded, without "Authentication-Results:" */
	const char *v = strchr(r->authres, ':');
	printf("authres ");
	for (v = v != NULL ? v + 1 : ""; *v != '\0'; v++)
		if (*v != '\r' && *v != '\n')
			putchar(*v == '\t' ? ' ' : *v);
	putchar('\n');
	printed = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: mailauth-tool --forwarder IP[@PORT] --ip IP "
		"--helo NAME [--mail-from ADDR]\n"
		"         [--id ID] [--timeout MS] [--no-spf] [--no-dkim] "
		"[--no-dmarc] [--no-arc]\n"
		"         [--no-did] [--did-key NODE-DID=HEX]... "
		"[--did-unknown NODE-DID]... [--did-delay MS] < message\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "forwarder", required_argument, NULL, 'f' },
		{ "ip", required_argument, NULL, 'i' },
		{ "helo", required_argument, NULL, 'h' },
		{ "mail-from", required_argument, NULL, 'm' },
		{ "id", required_argument, NULL, 'I' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-spf", no_argument, NULL, 'S' },
		{ "no-dkim", no_argument, NULL, 'D' },
		{ "no-dmarc", no_argument, NULL, 'M' },
		{ "no-arc", no_argument, NULL, 'A' },
		{ "no-did", no_argument, NULL, 'N' },
		{ "did-key", required_argument, NULL, 'k' },
		{ "did-unknown", required_argument, NULL, 'u' },
		{ "did-delay", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	mailauth_settings s = {
		.authserv_id = "mx.example.net", .spf = true, .dkim = true,
		.dmarc = true, .arc = true, .did = true, .did_resolve = resolve,
	};
	const char *ip = NULL, *helo = "", *from = "";
	struct sockaddr_storage ss = { 0 };
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'f': s.dns.forwarder = optarg; break;
		case 'i': ip = optarg; break;
		case 'h': helo = optarg; break;
		case 'm': from = optarg; break;
		case 'I': s.authserv_id = optarg; break;
		case 't': s.timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			  s.dns.timeout_ms = s.timeout_ms; break;
		case 'S': s.spf = false; break;
		case 'D': s.dkim = false; break;
		case 'M': s.dmarc = false; break;
		case 'A': s.arc = false; break;
		case 'N': s.did = false; break;
		case 'k':
		case 'u':
			if (add_key(optarg, o == 'k') != 0)
				return usage();
			break;
		case 'w': did_delay_ms = (unsigned)strtoul(optarg, NULL, 10);
			  break;
		default: return usage();
		}
	}
	if (ip == NULL || optind != argc)
		return usage();
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return usage();
	log_init(2, LOG_INFO, "mailauth-tool");
	uint8_t *msg = malloc(TOOL_MSG_MAX);
	if (msg == NULL)
		return 1;
	size_t len = fread(msg, 1, TOOL_MSG_MAX, stdin);
	uv_loop_t loop;
	uv_loop_init(&loop);
	mailauth *ma;
	char err[256];
	if (mailauth_new(&loop, &s, &ma, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailauth-tool: %s\n", err);
		free(msg);
		return 1;
	}
	mailauth_input in = { .client = &ss, .helo = helo, .mail_from = from,
			      .msg = msg, .len = len };
	(void)mailauth_start(ma, &in, done, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	mailauth_free(&ma);
	uv_run(&loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&loop) == 0 && printed ? 0 : 1;
	free(msg);
	return rc;
}
