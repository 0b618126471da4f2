/*
 * cmd-queue.c — `amp queue list|show|flush|hold|release|delete|stats`:
 * look at and act on the running node's outbound mail queue (issue 5)
 * through its admin socket, <data_dir>/admin.sock (the wire format is
 * src/daemon/admin-proto.h, the queue commands src/daemon/admin.h).
 *
 * The socket is --socket PATH, else <DIR>/admin.sock for --data-dir DIR,
 * else the data_dir of the node's configuration (--config, else
 * aftersmtpd's default file, else the built-in data_dir), read with the
 * node's own schema.  One request per run; the answer is printed as it
 * comes (a long list never sits in memory whole).  Blocking, with a
 * timeout on every read and write (the socket and its lines:
 * src/cli/admin-client.h).  Everything shown comes from the node
 * and is printed as text: the node has replaced control characters.
 */
#include "cli.h"

#include "admin-client.h"
#include "admin-proto.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NODE_DEFAULT_CONFIG ADMIN_CLIENT_DEFAULT_CONFIG
#define QUEUE_TIMEOUT_S 60
#define REPLY_WIDTH 48        /* list: the last reply column, characters */

static const char queue_help[] =
	"Usage: amp queue list [--state S] [--lane L] [--domain D] [--limit N]\n"
	"       amp queue show ID\n"
	"       amp queue flush\n"
	"       amp queue hold ID|all\n"
	"       amp queue release ID|all\n"
	"       amp queue delete ID|all\n"
	"       amp queue stats\n"
	"       [--config FILE | --data-dir DIR | --socket PATH]\n"
	"\n"
	"Look at and act on the outbound mail queue of the running node\n"
	"(aftersmtpd): the messages its users sent to mail addresses, waiting\n"
	"for delivery by SMTP.  The node keeps one entry per message and\n"
	"destination domain (the message itself is stored once, encrypted);\n"
	"an entry holds the recipients of that domain still to deliver.  Runs\n"
	"on the node's machine, as root or as the node's user, and talks to\n"
	"the node through its admin socket.  See docs/queue.md.\n"
	"\n"
	"Commands:\n"
	"  list     the entries, by next attempt (at most --limit, default\n"
	"           1000), one line each:\n"
	"             ID            the entry (16 hex digits)\n"
	"             LANE          critical, normal or bulk (below)\n"
	"             STATE         active, deferred, hold or bounced (below)\n"
	"             TRIES         delivery attempts so far\n"
	"             NEXT ATTEMPT  when it is due (UTC); for an active entry\n"
	"                           being delivered, when its attempt times\n"
	"                           out; for a bounced one, when it bounced\n"
	"             DOMAIN        the destination domain\n"
	"             SENDER        the envelope sender (<> for none)\n"
	"             RCPTS         recipients still to deliver\n"
	"             LAST REPLY    the last error (the entry's, else its\n"
	"                           first recipient's)\n"
	"           A value cut to fit its column ends in ~.  A last line\n"
	"           `# N entries` sums up.\n"
	"  show ID  everything about one entry: times, sender, DSN parameters\n"
	"           (ENVID, RET, per recipient NOTIFY and ORCPT), each\n"
	"           recipient's last reply, and the message's header section\n"
	"           (never its body)\n"
	"  flush    make every deferred entry due now (the node tries them at\n"
	"           once)\n"
	"  hold ID|all\n"
	"           keep entries from delivery until released (an entry being\n"
	"           delivered finishes its attempt; what is left stays held)\n"
	"  release ID|all\n"
	"           make held entries due now (one held during an attempt:\n"
	"           when that attempt times out)\n"
	"  delete ID|all\n"
	"           remove entries for good, in any state, without telling the\n"
	"           sender (no DSN)\n"
	"  stats    entries per lane and state, the age of the oldest entry\n"
	"           of each lane, and the bytes of the stored messages\n"
	"\n"
	"States:\n"
	"  active    due now, or being delivered\n"
	"  deferred  a delivery attempt failed for now; tried again at NEXT\n"
	"            ATTEMPT until it expires (then it bounces: a DSN goes to\n"
	"            the sender)\n"
	"  hold      held by the operator: never tried until released\n"
	"  bounced   given up (a DSN was sent); the message is gone and the\n"
	"            entry is kept for a while for inspection\n"
	"\n"
	"Lanes (leased separately, with their own share of the connection\n"
	"slots, smtp_out_lane_weights, so a bulk backlog never sits in front\n"
	"of urgent mail):\n"
	"  critical  urgent mail: the AMP sender chose the critical lane, or\n"
	"            the message has Priority: urgent\n"
	"  normal    everything else, DSNs included\n"
	"  bulk      the AMP bulk lane, or Precedence: bulk, list or junk\n"
	"\n"
	"Options:\n"
	"  --state S       list: only entries in state S\n"
	"  --lane L        list: only entries of lane L\n"
	"  --domain D      list: only entries for domain D (any case)\n"
	"  --limit N       list: at most N entries (1..100000; default 1000)\n"
	"  --config FILE   the node's configuration, to find data_dir and its\n"
	"                  admin socket (default " NODE_DEFAULT_CONFIG ",\n"
	"                  else the built-in data_dir /var/lib/aftersmtp)\n"
	"  --data-dir DIR  the node's data_dir (its socket is DIR/admin.sock)\n"
	"  --socket PATH   the admin socket itself\n"
	"  -h, --help      show this help\n"
	"\n"
	"Examples:\n"
	"  amp queue list\n"
	"  amp queue list --state deferred --domain example.net\n"
	"  amp queue show 3f2a9c04d1e5b677\n"
	"  amp queue hold all; amp queue release 3f2a9c04d1e5b677\n"
	"  amp queue flush --data-dir /var/lib/aftersmtp\n"
	"  amp queue stats\n"
	"\n"
	"Exit status: 0 success, 1 failure (the node refused, no such entry,\n"
	"or the node cannot be reached), 2 usage error.\n"
	"\n"
	"Files:\n"
	"  " NODE_DEFAULT_CONFIG "   the node's configuration\n"
	"  <data_dir>/admin.sock      the node's admin socket (0600)\n"
	"  <data_dir>/node.db         the queue, with the rest of the node's\n"
	"                             store (SQLite; messages encrypted)\n";

/* ------------------------------------------------------- formatting */

/* s cut to at most w (>= 1) characters (UTF-8; a cut one ends in '~')
 * and padded with spaces to w when pad, into out (FIT_SIZE(w) bytes). */
#define FIT_SIZE(w) (4 * (w) + 2)
static const char *fit(const char *s, size_t w, bool pad, char *out)
{
	size_t chars = 0, o = 0, i = 0;
	size_t total = 0;
	for (const char *p = s; *p != '\0'; p++)
		total += ((unsigned char)*p & 0xc0) != 0x80;
	size_t keep = total > w ? w - 1 : total;
	while (s[i] != '\0' && o < 4 * w - 4) {
		bool lead = ((unsigned char)s[i] & 0xc0) != 0x80;
		if (lead && chars == keep)
			break;
		chars += lead;
		out[o++] = s[i++];
	}
	if (s[i] != '\0' && chars < keep) /* not UTF-8: cut anyway */
		total = w + 1;
	if (total > w) {
		out[o++] = '~';
		chars++;
	}
	while (pad && chars < w) {
		out[o++] = ' ';
		chars++;
	}
	out[o] = '\0';
	return out;
}

/* A unix time from the wire as ISO 8601 UTC, "-" for 0 or garbage. */
static const char *iso_time(const char *secs, char out[32])
{
	uint64_t v;
	struct tm tm;
	if (!util_parse_u64(secs, 1, (uint64_t)INT32_MAX * 64, &v)) {
		snprintf(out, 32, "-");
		return out;
	}
	time_t t = (time_t)v;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "-");
	return out;
}

/* An age in seconds as "45s", "12m05s", "3h12m" or "2d04h". */
static const char *age(uint64_t s, char out[32])
{
	if (s < 60)
		snprintf(out, 32, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(out, 32, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, 32, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
			 s % 3600 / 60);
	else
		snprintf(out, 32, "%" PRIu64 "d%02" PRIu64 "h", s / 86400,
			 s % 86400 / 3600);
	return out;
}

/* " (12.3 KiB)" and so on, "" below 1 KiB. */
static const char *human_bytes(uint64_t b, char out[32])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	size_t u = 0;
	out[0] = '\0';
	if (b < 1024)
		return out;
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, 32, " (%.1f %s)", v, units[u]);
	return out;
}

typedef enum { SHOW_PLAIN, SHOW_LIST, SHOW_SHOW, SHOW_STATS } show_mode;

typedef struct shower {
	show_mode mode;
	bool header_done;
	size_t n_rcpts;
	bool in_headers;
	uint64_t total[4];
	uint64_t now;
} shower;

static void list_line(shower *sh, char *text)
{
	/* ID LANE STATE ATTEMPTS NEXT CREATED EXPIRES DOMAIN SENDER RCPTS
	 * REPLY */
	char *f[11];
	char a[FIT_SIZE(24)], b[FIT_SIZE(28)], c[FIT_SIZE(REPLY_WIDTH)], t[32];
	if (!sh->header_done) {
		printf("%-16s  %-8s  %-8s  %5s  %-20s  %-24s  %-28s  %5s  %s\n",
		       "ID", "LANE", "STATE", "TRIES", "NEXT ATTEMPT", "DOMAIN",
		       "SENDER", "RCPTS", "LAST REPLY");
		sh->header_done = true;
	}
	if (admin_client_split(text, f, 11) != 11) {
		printf("%s\n", text);
		return;
	}
	printf("%-16s  %-8s  %-8s  %5s  %-20s  %s  %s  %5s  %s\n", f[0], f[1],
	       f[2], f[3], iso_time(f[4], t), fit(f[7], 24, true, a),
	       fit(f[8], 28, true, b), f[9], fit(f[10], REPLY_WIDTH, false, c));
}

static void show_line(shower *sh, char *text)
{
	char *f[5];
	char t[32];
	size_t n = admin_client_split(text, f, 5);
	if (n >= 2 && strcmp(f[0], "rcpt") == 0 && n == 5) {
		if (sh->n_rcpts++ == 0)
			printf("recipients:\n");
		printf("  %s\n", f[1]);
		if (strcmp(f[3], "-") != 0)
			printf("      notify      %s\n", f[3]);
		if (f[2][0] != '\0')
			printf("      orcpt       %s\n", f[2]);
		if (f[4][0] != '\0')
			printf("      last reply  %s\n", f[4]);
		return;
	}
	if (n == 2 && strcmp(f[0], "header") == 0) {
		if (!sh->in_headers)
			printf("header section:\n");
		sh->in_headers = true;
		printf("  %s\n", f[1]);
		return;
	}
	if (n == 2 && strcmp(f[0], "header-cut") == 0) {
		printf("  ... (cut after %s bytes)\n", f[1]);
		return;
	}
	if (n != 2) {
		printf("%s\n", text);
		return;
	}
	static const struct {
		const char *key, *label;
		bool time;
	} keys[] = {
		{ "id", "id", false }, { "domain", "domain", false },
		{ "lane", "lane", false }, { "state", "state", false },
		{ "attempts", "attempts", false }, { "warned", "delay DSN sent", false },
		{ "created", "created", true }, { "expires", "expires", true },
		{ "next_attempt", "next attempt", true },
		{ "sender", "sender", false }, { "sender_did", "sender DID", false },
		{ "envid", "envid", false }, { "ret", "ret", false },
		{ "msgid", "message-id", false },
		{ "last_reply", "last reply", false },
		{ "body_bytes", "message bytes", false },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(f[0], keys[i].key) != 0)
			continue;
		const char *v = f[1][0] != '\0' ? f[1] : "-";
		if (keys[i].time)
			v = iso_time(f[1], t);
		printf("%-15s %s\n", keys[i].label, v);
		return;
	}
	printf("%-15s %s\n", f[0], f[1]);
}

static void stats_line(shower *sh, char *text)
{
	char *f[6];
	size_t n = admin_client_split(text, f, 6);
	if (n == 2 && strcmp(f[0], "bytes") == 0) {
		uint64_t b;
		if (!util_parse_u64(f[1], 0, UINT64_MAX, &b))
			b = 0;
		printf("%-9s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
		       "\n", "total", sh->total[0], sh->total[1], sh->total[2],
		       sh->total[3]);
		char h[32];
		printf("\nmessage bytes stored: %" PRIu64 "%s\n", b,
		       human_bytes(b, h));
		return;
	}
	if (n != 6) {
		printf("%s\n", text);
		return;
	}
	if (!sh->header_done) {
		printf("%-9s %9s %9s %9s %9s  %s\n", "LANE", "ACTIVE",
		       "DEFERRED", "HOLD", "BOUNCED", "OLDEST");
		sh->header_done = true;
	}
	uint64_t v[5];
	for (int i = 0; i < 5; i++) {
		if (!util_parse_u64(f[i + 1], 0, UINT64_MAX, &v[i]))
			v[i] = 0;
	}
	for (int i = 0; i < 4; i++)
		sh->total[i] += v[i];
	char old[96] = "-";
	if (v[4] != 0) {
		char a[32], iso[32];
		snprintf(old, sizeof(old), "%s (since %s)",
			 age(sh->now > v[4] ? sh->now - v[4] : 0, a),
			 iso_time(f[5], iso));
	}
	printf("%-9s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 "  %s\n",
	       f[0], v[0], v[1], v[2], v[3], old);
}

static void show_data(shower *sh, char *text)
{
	switch (sh->mode) {
	case SHOW_LIST:
		list_line(sh, text);
		return;
	case SHOW_SHOW:
		show_line(sh, text);
		return;
	case SHOW_STATS:
		stats_line(sh, text);
		return;
	case SHOW_PLAIN:
		break;
	}
	printf("%s\n", text);
}

/* ---------------------------------------------------------- the command */

enum { OPT_CONFIG = 1, OPT_DATADIR, OPT_SOCKET, OPT_STATE, OPT_LANE,
       OPT_DOMAIN, OPT_LIMIT };

int cmd_queue(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "data-dir", required_argument, NULL, OPT_DATADIR },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "lane", required_argument, NULL, OPT_LANE },
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *data_dir = NULL, *sock = NULL;
	/* list filters as request fields "key=value" */
	static char filt[4][ADMIN_LINE_MAX / 4];
	size_t n_filt = 0;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		const char *key = NULL;
		switch (c) {
		case OPT_CONFIG: config = optarg; break;
		case OPT_DATADIR: data_dir = optarg; break;
		case OPT_SOCKET: sock = optarg; break;
		case OPT_STATE: key = "state"; break;
		case OPT_LANE: key = "lane"; break;
		case OPT_DOMAIN: key = "domain"; break;
		case OPT_LIMIT: key = "limit"; break;
		case 'h': fputs(queue_help, stdout); return CLI_OK;
		default: cli_usage_hint(env); return CLI_USAGE;
		}
		if (key != NULL) {
			int k = n_filt < 4 ? snprintf(filt[n_filt],
						      sizeof(filt[0]), "%s=%s",
						      key, optarg)
					   : -1;
			if (k < 0 || (size_t)k >= sizeof(filt[0])) {
				cli_err(env, "too many or too long filters");
				return CLI_USAGE;
			}
			n_filt++;
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	static const struct {
		const char *name;
		int args;  /* after the subcommand; -1: list's filters */
		show_mode mode;
	} subs[] = {
		{ "list", -1, SHOW_LIST },   { "show", 1, SHOW_SHOW },
		{ "flush", 0, SHOW_PLAIN },  { "hold", 1, SHOW_PLAIN },
		{ "release", 1, SHOW_PLAIN }, { "delete", 1, SHOW_PLAIN },
		{ "stats", 0, SHOW_STATS },
	};
	const size_t n_subs = sizeof(subs) / sizeof(subs[0]);
	size_t si = n_subs;
	for (size_t i = 0; nargs >= 1 && i < n_subs; i++) {
		if (strcmp(args[0], subs[i].name) == 0)
			si = i;
	}
	if (si == n_subs) {
		if (nargs == 0)
			cli_err(env, "which command: list, show, flush, hold, "
				"release, delete or stats?");
		else
			cli_err(env, "unknown command '%s' (list, show, flush, "
				"hold, release, delete, stats)", args[0]);
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	bool is_list = subs[si].args < 0;
	if ((!is_list && nargs - 1 != subs[si].args) ||
	    (is_list && (size_t)(nargs - 1) + n_filt > 4) ||
	    (!is_list && n_filt > 0)) {
		cli_err(env, "wrong arguments for `queue %s`", subs[si].name);
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if ((config != NULL) + (data_dir != NULL) + (sock != NULL) > 1) {
		cli_err(env, "give one of --config, --data-dir and --socket");
		return CLI_USAGE;
	}

	/* "queue", the subcommand, its arguments (list: filters) */
	const char *f[ADMIN_FIELDS_MAX];
	size_t nf = 0;
	f[nf++] = "queue";
	f[nf++] = subs[si].name;
	for (int i = 1; i < nargs; i++)
		f[nf++] = args[i];
	for (size_t i = 0; i < n_filt; i++)
		f[nf++] = filt[i];
	static char req[ADMIN_LINE_MAX + 2];
	size_t req_len;
	const char *why = NULL;
	if (admin_format_request(f, nf, req, sizeof(req), &req_len, &why) != 0) {
		cli_err(env, "cannot send this request: %s", why);
		return CLI_FAIL;
	}

	char path[PATH_MAX];
	if (sock != NULL || data_dir != NULL) {
		int n = sock != NULL
				? snprintf(path, sizeof(path), "%s", sock)
				: snprintf(path, sizeof(path), "%s/%s",
					   data_dir, ADMIN_CLIENT_SOCKET_NAME);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			cli_err(env, "%s: path too long",
				sock != NULL ? "--socket" : "--data-dir");
			return CLI_USAGE;
		}
	} else if (admin_client_socket_path(env, config, path) != CLI_OK) {
		return CLI_FAIL;
	}
	admin_client *ac;
	if (admin_client_open(env, path, QUEUE_TIMEOUT_S, req, req_len, &ac) !=
	    CLI_OK)
		return CLI_FAIL;
	shower sh = { .mode = subs[si].mode, .now = (uint64_t)time(NULL) };
	int rc = CLI_FAIL;
	for (;;) {
		char *line;
		const char *text;
		if (admin_client_next_line(ac, &line) != 0)
			break;
		admin_line_kind k = admin_line_classify(line, &text);
		if (k == ADMIN_LINE_DATA) {
			show_data(&sh, (char *)text);
			continue;
		}
		if (k == ADMIN_LINE_ERROR) {
			cli_err(env, "%s", text);
			break;
		}
		if (k != ADMIN_LINE_OK) {
			cli_err(env, "unexpected answer from the node: %.200s",
				line);
			break;
		}
		if (sh.mode == SHOW_LIST) {
			if (!sh.header_done)
				printf("the queue is empty%s\n",
				       nf > 2 ? " (for these filters)" : "");
			else
				printf("# %s\n", text);
		} else if (sh.mode == SHOW_PLAIN && text[0] != '\0') {
			printf("%s\n", text);
		}
		rc = CLI_OK;
		break;
	}
	admin_client_close(&ac);
	if (fflush(stdout) != 0 && rc == CLI_OK) {
		cli_err(env, "standard output: %s", strerror(errno));
		rc = CLI_FAIL;
	}
	return rc;
}
