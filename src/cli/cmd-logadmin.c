/*
 * cmd-logadmin.c — the operator's side of the transparency log:
 * `amp log status`, `amp log alarms [N]`, `amp log sign`, over the node's
 * admin socket (src/daemon/admin.c "log ..." commands).  `amp log`'s other
 * subcommands (cmd-log.c) talk AMP to a node like any user; these run on
 * the node's machine, as root or the node's user.
 */
#include "cli.h"

#include "admin-client.h"
#include "admin-proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGADMIN_TIMEOUT_S 30u

const char cli_log_admin_help[] =
	"Operator subcommands (on the node's machine, through its admin socket):\n"
	"  status               the log's size, its latest signed tree head\n"
	"                       and who cosigned it, and the counters: heads\n"
	"                       signed, logs of other nodes cosigned, witness\n"
	"                       checks that failed, alarms raised\n"
	"  alarms [N]           the newest N (default 100) witness alarms: a\n"
	"                       witnessed node signed two heads that contradict\n"
	"                       each other.  Each line: id, time, the log, why,\n"
	"                       the head we had (size, root) and the one we got.\n"
	"                       Both are signed by that node: forward them to its\n"
	"                       operator and to its users; the node stops\n"
	"                       cosigning that log.\n"
	"  sign                 sign a tree head now if the log grew\n"
	"  --config FILE        the node's configuration (default\n"
	"                       /etc/aftersmtp/aftersmtpd.conf), for its data_dir\n"
	"  --data-dir DIR       or the data directory itself\n";

int cli_log_admin(cli_env *env, const char *sub, const char *arg,
		  const char *config, const char *data_dir)
{
	const char *f[3] = { "log", sub, arg };
	static char req[ADMIN_LINE_MAX + 2];
	size_t req_len;
	const char *why = NULL;
	if (admin_format_request(f, arg != NULL ? 3 : 2, req, sizeof(req),
				 &req_len, &why) != 0) {
		cli_err(env, "cannot send this request: %s", why);
		return CLI_FAIL;
	}
	char path[PATH_MAX];
	if (data_dir != NULL) {
		int n = snprintf(path, sizeof(path), "%s/%s", data_dir,
				 ADMIN_CLIENT_SOCKET_NAME);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			cli_err(env, "--data-dir: path too long");
			return CLI_USAGE;
		}
	} else if (admin_client_socket_path(env, config, path) != CLI_OK) {
		return CLI_FAIL;
	}
	admin_client *ac;
	if (admin_client_open(env, path, LOGADMIN_TIMEOUT_S, req, req_len, &ac) !=
	    CLI_OK)
		return CLI_FAIL;
	bool alarms = strcmp(sub, "alarms") == 0;
	size_t n = 0;
	int rc = CLI_FAIL;
	for (;;) {
		char *line, *fl[8];
		const char *text;
		if (admin_client_next_line(ac, &line) != 0)
			break;
		admin_line_kind k = admin_line_classify(line, &text);
		if (k == ADMIN_LINE_DATA) {
			size_t nf = admin_client_split((char *)text, fl, 8);
			n++;
			if (alarms && nf == 8)
				printf("alarm %s at %s: %s: %s\n  had size %s root %s\n"
				       "  got size %s root %s\n", fl[0], fl[1],
				       fl[2], fl[3], fl[4], fl[5], fl[6], fl[7]);
			else if (!alarms && nf == 2)
				printf("%-18s %s\n", fl[0], fl[1]);
			else if (!alarms && nf == 4)
				printf("%-18s size %s time %s root %s\n", fl[0],
				       fl[1], fl[2], fl[3]);
			else if (!alarms && nf == 3)
				printf("%-18s %s at %s\n", fl[0], fl[1], fl[2]);
			else
				printf("%s\n", text);
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
		if (alarms && n == 0)
			printf("no alarms\n");
		else if (strcmp(sub, "sign") == 0)
			printf("asked the node to sign a tree head\n");
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
