/*
 * cmd-map.c — `amp map add|del|list|test|reload`: change and query the
 * running node's lookup tables through its admin socket,
 * <data_dir>/admin.sock (the wire format is src/daemon/admin-proto.h).
 *
 * The socket's path comes from the node's configuration (--config, else
 * aftersmtpd's default file, else the built-in data_dir), read with the
 * node's own schema, so a configuration aftersmtpd refuses is refused here
 * too; --socket names the socket directly.  One request per run; the
 * answer is streamed to standard output as it comes (`map list` of a big
 * table never sits in memory whole).  Blocking, with a timeout on every
 * read and write (the socket and its lines: src/cli/admin-client.h).
 */
#include "cli.h"

#include "admin-client.h"
#include "admin-proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NODE_DEFAULT_CONFIG ADMIN_CLIENT_DEFAULT_CONFIG
#define MAP_TIMEOUT_S 120    /* a reload of big tables takes a while */
#define MAP_NOT_FOUND 3      /* `map test`: nothing matched */

static const char map_help[] =
	"Usage: amp map add TABLE KEY [VALUE...]\n"
	"       amp map del TABLE KEY\n"
	"       amp map list TABLE\n"
	"       amp map test TABLE QUERY\n"
	"       amp map reload\n"
	"       [--config FILE] [--socket PATH]\n"
	"\n"
	"Change and query the lookup tables of the running node (aftersmtpd)\n"
	"without editing its table files: access control, relay domains,\n"
	"aliases, canonical addresses and transports, in Postfix's table\n"
	"format and with Postfix's lookup rules (docs/maps.md).  Each table is\n"
	"its file (the configuration key of the same name) followed by the\n"
	"run-time entries added here, which the node keeps in\n"
	"<data_dir>/maps.db across restarts.  A change is in force for the\n"
	"next lookup; nothing is restarted.  Runs on the node's machine, as\n"
	"root or as the node's user, and talks to the node through its admin\n"
	"socket.\n"
	"\n"
	"Commands:\n"
	"  add TABLE KEY [VALUE...]\n"
	"           add a run-time entry.  It is checked as a line of the\n"
	"           table's file would be; the words of VALUE are joined with\n"
	"           one space (VALUE is optional for relay_domains only).  A\n"
	"           key already in the file or added before is refused: edit\n"
	"           the file, or delete the entry first\n"
	"  del TABLE KEY\n"
	"           delete a run-time entry (entries of the file are edited in\n"
	"           the file)\n"
	"  list TABLE\n"
	"           print every entry: where it comes from (`line N` of the\n"
	"           file, `item N` of a list in the configuration, or\n"
	"           `run-time`), its key and its value; file order, then the\n"
	"           run-time entries in the order they were added; a last line\n"
	"           `# ...` sums up\n"
	"  test TABLE QUERY\n"
	"           look QUERY up as the SMTP server would and print the result\n"
	"           and the entry that gave it.  access: an address (`<>` or\n"
	"           '' for the null sender), `name[ip]` for a client, an IP\n"
	"           address, or a host name; relay: a domain; virtual: an\n"
	"           address (expanded through every alias) or a domain;\n"
	"           canonical: an address, or a DID (reverse); transport: an\n"
	"           address or a domain\n"
	"  reload   re-read every table file and the run-time entries with the\n"
	"           running configuration (the maps part of SIGHUP; the\n"
	"           configuration file itself is not re-read).  A file with an\n"
	"           error is refused, naming its line, and the tables in force\n"
	"           stay\n"
	"\n"
	"Tables (long or short name):\n"
	"  access_map          access      clients, senders, recipients -> OK,\n"
	"                                  REJECT, DEFER, DISCARD, HOLD, ...\n"
	"  relay_domains       relay       domains accepted besides `domains`\n"
	"  virtual_alias_maps  virtual     addresses -> addresses and DIDs\n"
	"  canonical_maps      canonical   address <-> DID\n"
	"  transport_maps      transport   domain -> amp:host, smtp:[host]:port\n"
	"\n"
	"Options:\n"
	"  --config FILE   the node's configuration, to find data_dir and its\n"
	"                  admin socket (default " NODE_DEFAULT_CONFIG ",\n"
	"                  else the built-in data_dir /var/lib/aftersmtp)\n"
	"  --socket PATH   the admin socket itself (instead of --config)\n"
	"  -h, --help      show this help\n"
	"\n"
	"Examples:\n"
	"  amp map add access 192.0.2.7 REJECT 5.7.1 spam source\n"
	"  amp map add virtual sales@example.org did:aftersmtp:example.org:ann,\n"
	"      did:aftersmtp:example.org:bob\n"
	"  amp map test access 'mail.example.net[192.0.2.7]'\n"
	"  amp map list access\n"
	"  amp map del access 192.0.2.7\n"
	"  amp map reload --config /etc/aftersmtp/aftersmtpd.conf\n"
	"\n"
	"Exit status: 0 success (test: an entry matched), 1 failure (the\n"
	"node refused the change, or cannot be reached), 2 usage error, 3 test:\n"
	"nothing matched.\n"
	"\n"
	"Files:\n"
	"  " NODE_DEFAULT_CONFIG "   the node's configuration\n"
	"  <data_dir>/admin.sock      the node's admin socket (0600; made by\n"
	"                             the running node)\n"
	"  <data_dir>/maps.db         the run-time entries (SQLite, 0600)\n"
	"\n"
	"See docs/maps.md for the table syntax and lookup rules.\n";

typedef enum { SHOW_PLAIN, SHOW_LIST, SHOW_TEST } show_mode;

/* Print one data line of the answer; `test` keeps its match line (in
 * match, ADMIN_REPLY_LINE_MAX bytes) to print after the result. */
static void show_data(show_mode mode, char *text, char *match)
{
	char *f[6];
	if (mode == SHOW_LIST) {
		/* ORIGIN LINE KEY VALUE */
		size_t n = admin_client_split(text, f, 4);
		if (n < 4) {
			printf("%s\n", text);
			return;
		}
		char where[32];
		if (strcmp(f[0], "file") == 0)
			snprintf(where, sizeof(where), "line %.20s", f[1]);
		else if (strcmp(f[0], "config") == 0)
			snprintf(where, sizeof(where), "item %.20s", f[1]);
		else
			snprintf(where, sizeof(where), "%.20s", f[0]);
		printf("%-10s  %-30s  %s\n", where, f[2], f[3]);
		return;
	}
	if (mode == SHOW_TEST && strncmp(text, "match\t", 6) == 0) {
		/* match KEY FORM ORIGIN WHERE */
		size_t n = admin_client_split(text, f, 5);
		if (n == 5) {
			snprintf(match, ADMIN_REPLY_LINE_MAX,
				 "key     %s (%s)\nfrom    %s\n", f[1], f[2],
				 f[4]);
			return;
		}
	}
	printf("%s\n", text);
}

int cmd_map(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *sock = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': sock = optarg; break;
		case 'h': fputs(map_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	static const struct {
		const char *name;
		int min, max; /* arguments after the subcommand; -1: any */
	} subs[] = {
		{ "add", 2, -1 }, { "del", 2, 2 }, { "list", 1, 1 },
		{ "test", 2, 2 }, { "reload", 0, 0 },
	};
	size_t si = sizeof(subs) / sizeof(subs[0]);
	if (nargs >= 1)
		for (si = 0; si < sizeof(subs) / sizeof(subs[0]); si++)
			if (strcmp(args[0], subs[si].name) == 0)
				break;
	if (si == sizeof(subs) / sizeof(subs[0])) {
		if (nargs == 0)
			cli_err(env, "which command: add, del, list, test or "
				"reload?");
		else
			cli_err(env, "unknown command '%s' (add, del, list, "
				"test, reload)", args[0]);
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if (nargs - 1 < subs[si].min ||
	    (subs[si].max >= 0 && nargs - 1 > subs[si].max)) {
		cli_err(env, "wrong number of arguments for `map %s`",
			subs[si].name);
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if (config != NULL && sock != NULL) {
		cli_err(env, "give --config or --socket, not both");
		return CLI_USAGE;
	}

	/* The request: "map", the subcommand, its arguments; add joins the
	 * words of VALUE with one space. */
	const char *f[ADMIN_FIELDS_MAX];
	size_t nf = 0;
	char value[ADMIN_LINE_MAX + 1];
	f[nf++] = "map";
	f[nf++] = subs[si].name;
	int fixed = strcmp(subs[si].name, "add") == 0 ? 2 : nargs - 1;
	for (int i = 1; i <= fixed; i++)
		f[nf++] = args[i];
	if (strcmp(subs[si].name, "add") == 0 && nargs > 3) {
		size_t o = 0;
		for (int i = 3; i < nargs; i++) {
			size_t l = strlen(args[i]);
			if (o + (i > 3) + l > ADMIN_LINE_MAX) {
				cli_err(env, "the value is too long");
				return CLI_FAIL;
			}
			if (i > 3)
				value[o++] = ' ';
			memcpy(value + o, args[i], l);
			o += l;
		}
		value[o] = '\0';
		f[nf++] = value;
	}
	static char req[ADMIN_LINE_MAX + 2];
	size_t req_len;
	const char *why = NULL;
	if (admin_format_request(f, nf, req, sizeof(req), &req_len, &why) != 0) {
		cli_err(env, "cannot send this request: %s", why);
		return CLI_FAIL;
	}

	char path[PATH_MAX];
	if (sock != NULL) {
		int n = snprintf(path, sizeof(path), "%s", sock);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			cli_err(env, "--socket: path too long");
			return CLI_USAGE;
		}
	} else if (admin_client_socket_path(env, config, path) != CLI_OK) {
		return CLI_FAIL;
	}
	admin_client *ac;
	if (admin_client_open(env, path, MAP_TIMEOUT_S, req, req_len, &ac) !=
	    CLI_OK)
		return CLI_FAIL;

	show_mode mode = strcmp(subs[si].name, "list") == 0   ? SHOW_LIST
			 : strcmp(subs[si].name, "test") == 0 ? SHOW_TEST
							      : SHOW_PLAIN;
	static char match[ADMIN_REPLY_LINE_MAX];
	match[0] = '\0';
	int rc = CLI_FAIL;
	for (;;) {
		char *line;
		const char *text;
		if (admin_client_next_line(ac, &line) != 0)
			break;
		admin_line_kind k = admin_line_classify(line, &text);
		if (k == ADMIN_LINE_DATA) {
			show_data(mode, (char *)text, match);
			continue;
		}
		if (k == ADMIN_LINE_ERROR) {
			cli_err(env, "%s", text);
			break;
		}
		if (k != ADMIN_LINE_OK) {
			cli_err(env, "unexpected answer from the node: %.200s", line);
			break;
		}
		if (mode == SHOW_LIST)
			printf("# %s\n", text);
		else if (mode == SHOW_TEST)
			printf("result  %s\n%s", text, match);
		else if (text[0] != '\0')
			printf("%s\n", text);
		rc = mode == SHOW_TEST && match[0] == '\0' ? MAP_NOT_FOUND
							    : CLI_OK;
		break;
	}
	admin_client_close(&ac);
	if (fflush(stdout) != 0 && rc == CLI_OK) {
		cli_err(env, "standard output: %s", strerror(errno));
		rc = CLI_FAIL;
	}
	return rc;
}
