/*
 * cmd-bridge.c — `amp bridge run|password|status` (issue 6): the local
 * bridge that lets ordinary mail clients read and send AMP mail over
 * IMAP and SMTP submission on 127.0.0.1 (src/bridge/bridge.h;
 * docs/amp-bridge.md).  Option parsing and messages only.
 */
#include "cli.h"

#include "bridge.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char bridge_help[] =
	"Usage: amp bridge run [--imap-port N] [--smtp-port N] [OPTIONS]\n"
	"       amp bridge password\n"
	"       amp bridge status [--imap-port N] [--smtp-port N]\n"
	"\n"
	"The local bridge: ordinary mail clients (Thunderbird, mutt, Apple\n"
	"Mail) read and send end-to-end AMP mail through it.  It holds our\n"
	"keys, fetches our inbox from the home node, verifies and opens every\n"
	"message, keeps the mail encrypted at rest in HOME/bridge/store.db and\n"
	"serves it over IMAP4rev1 on 127.0.0.1; mail the client sends to its\n"
	"SMTP submission port is sealed and sent as AMP (to AMP users by their\n"
	"DID or user@domain address, to everyone else through the home node's\n"
	"gateway).  Private keys and plaintext never leave this machine.\n"
	"\n"
	"  run       run in the foreground until SIGINT or SIGTERM.  Prints\n"
	"            \"bridge ready imap=127.0.0.1:P smtp=127.0.0.1:Q\" once\n"
	"            both ports listen; log lines (key=value) go to standard\n"
	"            error.  Needs the keystore passphrase (as every command).\n"
	"  password  make a new random bridge password, print it once, and\n"
	"            store only its Argon2id hash (HOME/bridge/password, 0600).\n"
	"            It replaces the old one at once, also in a running bridge.\n"
	"            This is not the keystore passphrase: give it to the mail\n"
	"            client.\n"
	"  status    say what is set up and whether the ports answer.\n"
	"\n"
	"In the mail client: IMAP server 127.0.0.1 port 1143, SMTP server\n"
	"127.0.0.1 port 1025, user name our mail address (local@domain of our\n"
	"DID, or the address the home node's canonical_maps give us) or the\n"
	"DID itself, password from `amp bridge password`, no\n"
	"encryption or STARTTLS (offered with a self-signed certificate for\n"
	"\"localhost\", HOME/bridge/tls.pem, for clients that insist).\n"
	"\n"
	"What arrives: verified mail in INBOX (Junk when the home node's\n"
	"policy said so); a message that fails verification goes to the\n"
	"\"Unverified\" folder as a notice naming the reason in an\n"
	"X-AMP-Verification header, with the sealed envelope attached: never\n"
	"dropped, never shown as from its claimed sender.  Sent mail is kept\n"
	"in Sent.  Wrong passwords are answered ever more slowly (1 s doubling\n"
	"to 16 s).\n"
	"\n"
	"Options:\n"
	"  --imap-port N      IMAP port on 127.0.0.1 (default 1143; 0: any)\n"
	"  --smtp-port N      submission port on 127.0.0.1 (default 1025; 0: any)\n"
	"  --poll-wait SECONDS how long one inbox long poll waits at the node\n"
	"                     (default 25)\n"
	"  --no-sync          do not talk to the node: serve what is stored\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp register --node mail.example.org:4434\n"
	"  amp bridge password          # note it: it is shown once\n"
	"  amp bridge run\n"
	"\n"
	"See docs/amp-bridge.md.\n";

/* Does something accept TCP connections on 127.0.0.1:port? */
static bool port_answers(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int bridge_status(cli_env *env, uint16_t imap, uint16_t smtp)
{
	static const struct {
		const char *name, *what;
	} files[] = {
		{ "password", "bridge password hash" },
		{ "store.db", "mail store" },
		{ "tls.pem", "STARTTLS certificate" },
	};
	char path[PATH_MAX];
	bool ready = true;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!bridge_path(env, files[i].name, path, sizeof(path)))
			return CLI_FAIL;
		bool there = access(path, F_OK) == 0;
		printf("%-22s %s (%s)\n", files[i].what, there ? "yes" : "no", path);
		if (i == 0 && !there)
			ready = false;
	}
	bool ia = port_answers(imap), sa = port_answers(smtp);
	printf("%-22s %s (127.0.0.1:%u)\n", "IMAP answers", ia ? "yes" : "no",
	       (unsigned)imap);
	printf("%-22s %s (127.0.0.1:%u)\n", "submission answers",
	       sa ? "yes" : "no", (unsigned)smtp);
	if (!ready)
		printf("next: amp bridge password\n");
	else if (!ia || !sa)
		printf("next: amp bridge run\n");
	return ready && ia && sa ? CLI_OK : CLI_FAIL;
}

int cmd_bridge(cli_env *env, int argc, char **argv)
{
	enum { OPT_IMAP = 2000, OPT_SMTP, OPT_WAIT, OPT_NOSYNC };
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "imap-port", required_argument, NULL, OPT_IMAP },
		{ "smtp-port", required_argument, NULL, OPT_SMTP },
		{ "poll-wait", required_argument, NULL, OPT_WAIT },
		{ "no-sync", no_argument, NULL, OPT_NOSYNC },
		{ NULL, 0, NULL, 0 },
	};
	bridge_settings set = {
		.env = env,
		.imap_port = BRIDGE_IMAP_PORT_DEFAULT,
		.smtp_port = BRIDGE_SMTP_PORT_DEFAULT,
	};
	uint64_t v;
	int c, k;
	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &set.conn)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case OPT_IMAP:
		case OPT_SMTP:
			if (!util_parse_u64(optarg, 0, 65535, &v)) {
				cli_err(env, "a port is 0-65535");
				return CLI_USAGE;
			}
			if (c == OPT_IMAP)
				set.imap_port = (uint16_t)v;
			else
				set.smtp_port = (uint16_t)v;
			break;
		case OPT_WAIT:
			if (!util_parse_u64(optarg, 1, 3600, &v)) {
				cli_err(env, "--poll-wait must be 1-3600 seconds");
				return CLI_USAGE;
			}
			set.poll_wait_ms = (unsigned)(v * 1000u);
			break;
		case OPT_NOSYNC:
			set.no_sync = true;
			break;
		case 'h':
			fputs(bridge_help, stdout);
			return CLI_OK;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	const char *sub = optind + 1 == argc ? argv[optind] : NULL;
	if (sub != NULL && strcmp(sub, "run") == 0)
		return bridge_run(&set);
	if (sub != NULL && strcmp(sub, "password") == 0) {
		char pw[BRIDGE_PASSWORD_CHARS];
		if (bridge_password_new(env, pw) != CLI_OK)
			return CLI_FAIL;
		printf("%s\n", pw);
		sodium_memzero(pw, sizeof(pw));
		if (fflush(stdout) != 0)
			return CLI_FAIL;
		fprintf(stderr, "amp: bridge: this password is shown only now; "
			"give it to your mail client (a running bridge uses it at "
			"once)\n");
		return CLI_OK;
	}
	if (sub != NULL && strcmp(sub, "status") == 0)
		return bridge_status(env, set.imap_port, set.smtp_port);
	cli_err(env, "expected run, password or status");
	cli_usage_hint(env);
	return CLI_USAGE;
}
