/*
 * cli-heads.c — the tree heads a client has seen (PROTOCOL.md §11.4,
 * AMP-R-062).  A client keeps the newest signed head of each node's log
 * in HOME/heads/<log DID>; every head it accepts later must be consistent
 * with it (a consistency proof from the node, in whichever direction), so
 * a node cannot show this client one history today and another tomorrow.
 * A proven contradiction leaves both signed heads in
 * HOME/heads/<log DID>.evidence.
 *
 * The file's format is logfile.h's (logfile_head_format / _parse): this
 * file only reads, writes and compares.
 */
#include "cli.h"

#include "client-log.h"
#include "logfile.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_TEXT_MAX LOGFILE_HEAD_MAX

static int head_path(const cli_env *env, const char *log, const char *ext,
		     char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/heads/%s%s", env->home, log, ext);
	return n > 0 && n < PATH_MAX ? 0 : -1;
}

int cli_head_seen(const cli_env *env, const char *log, amp_log_head *h_r)
{
	char path[PATH_MAX];
	uint8_t *text;
	size_t len;
	if (head_path(env, log, "", path) != 0)
		return -1;
	if (util_read_file(path, HEAD_TEXT_MAX, &text, &len) != 0)
		return errno == ENOENT ? 0 : -1;
	const char *why = NULL;
	int k = logfile_head_parse((const char *)text, len, h_r, &why);
	free(text);
	if (k != 0 || strcmp(h_r->log, log) != 0) {
		errno = EINVAL;
		return -1;
	}
	return 1;
}

static int head_write(const cli_env *env, const amp_log_head *h,
		      const char *ext, const char *text, size_t len)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/heads", env->home);
	if (n < 0 || (size_t)n >= sizeof(dir) || head_path(env, h->log, ext, path) != 0 ||
	    util_mkdirs(dir, 0700) != 0 ||
	    util_write_file_atomic(path, text, len, 0600, 0) != 0)
		return -1;
	return 0;
}

void cli_head_print(FILE *f, const char *label, const amp_log_head *h)
{
	char root[65];
	sodium_bin2hex(root, sizeof(root), h->root, 32);
	fprintf(f, "%s: %s size %" PRIu64 " root %s time %" PRIu64 "\n", label,
		h->log, h->size, root, h->time);
}

static int inconsistent(cli_env *env, const amp_log_head *had,
			const amp_log_head *got, const char *why)
{
	char text[2 * HEAD_TEXT_MAX + 64];
	size_t a = 0, b = 0;
	bool kept = logfile_head_format(had, text, HEAD_TEXT_MAX, &a) == 0 &&
		    logfile_head_format(got, text + a + 1, HEAD_TEXT_MAX, &b) == 0;
	text[a] = '\n';
	cli_err(env, "the node %s is INCONSISTENT: %s", got->log, why);
	cli_head_print(stderr, "  seen before", had);
	cli_head_print(stderr, "  now", got);
	char path[PATH_MAX];
	if (kept && head_write(env, got, ".evidence", text, a + 1 + b) == 0 &&
	    head_path(env, got->log, ".evidence", path) == 0)
		cli_err(env, "both signed heads are kept in %s", path);
	return CLI_FAIL;
}

int cli_head_accept(cli_env *env, struct nclient *c, const amp_log_head *h)
{
	amp_log_head had, nu;
	const char *err = NULL;
	int st;
	int f = cli_head_seen(env, h->log, &had);
	if (f < 0) {
		cli_err(env, "cannot read the tree head seen before from %s: %s",
			h->log, strerror(errno));
		return CLI_FAIL;
	}
	if (f == 1) {
		if (h->size == had.size) {
			if (memcmp(h->root, had.root, 32) != 0)
				return inconsistent(env, &had, h, "two signed "
						    "heads of one size differ");
			return CLI_OK;
		}
		/* Prove the smaller is a prefix of the larger. */
		const amp_log_head *small = h->size < had.size ? h : &had;
		const amp_log_head *big = h->size < had.size ? &had : h;
		int r = nlog_consistent(c, small, big->size, &nu, &st, &err);
		if (r == NLOG_INCONSISTENT)
			return inconsistent(env, &had, &nu, err);
		if (r != 0) {
			cli_err(env, "cannot check the node's tree head against "
				"the one seen before: %s", err);
			return CLI_FAIL;
		}
		if (memcmp(nu.root, big->root, 32) != 0)
			return inconsistent(env, &had, h->size < had.size ? &nu : h,
					    "two signed heads of one size differ");
		if (h->size < had.size)
			return CLI_OK;          /* keep the newer we had */
	}
	char text[HEAD_TEXT_MAX];
	size_t len = 0;
	if (logfile_head_format(h, text, sizeof(text), &len) != 0) {
		cli_err(env, "cannot remember the tree head: its log is not "
			"a DID");
		return CLI_FAIL;
	}
	if (head_write(env, h, "", text, len) != 0) {
		cli_err(env, "cannot remember the tree head: %s", strerror(errno));
		return CLI_FAIL;
	}
	return CLI_OK;
}
