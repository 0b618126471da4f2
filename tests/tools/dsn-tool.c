/*
 * dsn-tool.c — a test tool (not installed) over src/mime/dsn.h, driven by
 * tests/e2e/test_dsn_format.py so that Python's email package can read
 * our delivery status notifications independently.
 *
 *   dsn-tool [OPTIONS] MESSAGE-FILE     ("-": standard input)
 *
 * Per message:  --reporting-mta HOST  --from ADDR  --to ADDR
 *               --msgid-domain DOMAIN  --random HEX32  --now UNIXTIME
 *               [--arrival UNIXTIME] [--envid TEXT] [--full]
 *               [--max-original BYTES]
 * Per recipient, --rcpt starts one and the options after it describe it:
 *               --rcpt ADDR  --action failed|delayed|delivered|relayed|expanded
 *               --status X.Y.Z  [--remote-mta HOST] [--diag TEXT]
 *               [--orcpt TYPE;ADDR] [--last-attempt UNIXTIME]
 *               [--retry-until UNIXTIME]
 * A TEXT argument may use \r, \n, \t, \\ and \xHH escapes, so tests can
 * pass control and 8-bit bytes.  The DSN goes to standard output.
 *
 * Exit 0 on success, 1 when dsn_build refuses (the reason on stderr), 2 on
 * a usage error.
 */
#include "dsn.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOOL_MAX_INPUT (64u * 1024 * 1024)

static int usage(const char *why)
{
	fprintf(stderr, "dsn-tool: %s\n"
		"usage: dsn-tool --reporting-mta HOST --from ADDR --to ADDR "
		"--msgid-domain D --random HEX32 --now T [--arrival T] "
		"[--envid TEXT] [--full] [--max-original N] --rcpt ADDR "
		"--action A --status S [--remote-mta H] [--diag TEXT] "
		"[--orcpt TEXT] [--last-attempt T] [--retry-until T] ... "
		"MESSAGE-FILE\n", why);
	return 2;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* s with its escapes decoded, in place (the result is never longer).  A
 * \x00 would end the string: refused. */
static bool unescape(char *s)
{
	size_t k = 0;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] != '\\') {
			s[k++] = s[i];
			continue;
		}
		char c = s[++i];
		if (c == 'r') {
			s[k++] = '\r';
		} else if (c == 'n') {
			s[k++] = '\n';
		} else if (c == 't') {
			s[k++] = '\t';
		} else if (c == '\\') {
			s[k++] = '\\';
		} else if (c == 'x' && hexval(s[i + 1]) >= 0 &&
			   hexval(s[i + 2]) >= 0) {
			int v = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			if (v == 0)
				return false;
			s[k++] = (char)v;
			i += 2;
		} else {
			return false;
		}
	}
	s[k] = '\0';
	return true;
}

static bool parse_action(const char *s, dsn_action *a_r)
{
	for (int a = DSN_FAILED; a <= DSN_EXPANDED; a++) {
		if (strcmp(s, dsn_action_name((dsn_action)a)) == 0) {
			*a_r = (dsn_action)a;
			return true;
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	static dsn_rcpt rcpts[DSN_MAX_RCPTS];
	dsn_report r = { .max_original = SIZE_MAX };
	uint8_t rnd[16];
	const char *file = NULL, *error = NULL;
	bool have_random = false, have_now = false;
	uint64_t v;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--full") == 0) {
			r.full = true;
			continue;
		}
		if (strncmp(o, "--", 2) != 0 || strcmp(o, "--") == 0) {
			if (file != NULL)
				return usage("more than one message file");
			file = o;
			continue;
		}
		if (i + 1 >= argc)
			return usage("an option without its value");
		char *a = argv[++i];
		dsn_rcpt *p = r.n > 0 ? &rcpts[r.n - 1] : NULL;
		bool per_rcpt = strcmp(o, "--action") == 0 ||
			strcmp(o, "--status") == 0 ||
			strcmp(o, "--remote-mta") == 0 ||
			strcmp(o, "--diag") == 0 ||
			strcmp(o, "--orcpt") == 0 ||
			strcmp(o, "--last-attempt") == 0 ||
			strcmp(o, "--retry-until") == 0;
		if (per_rcpt && p == NULL)
			return usage("a recipient option before --rcpt");
		if (strcmp(o, "--reporting-mta") == 0) {
			r.reporting_mta = a;
		} else if (strcmp(o, "--from") == 0) {
			r.from = a;
		} else if (strcmp(o, "--to") == 0) {
			if (!unescape(a))
				return usage("bad escape in --to");
			r.to = a;
		} else if (strcmp(o, "--msgid-domain") == 0) {
			r.msgid_domain = a;
		} else if (strcmp(o, "--envid") == 0) {
			if (!unescape(a))
				return usage("bad escape in --envid");
			r.envid = a;
		} else if (strcmp(o, "--random") == 0) {
			if (strlen(a) != 32)
				return usage("--random takes 32 hex digits");
			for (size_t k = 0; k < 16; k++) {
				int h = hexval(a[2 * k]), l = hexval(a[2 * k + 1]);
				if (h < 0 || l < 0)
					return usage("--random takes 32 hex "
						     "digits");
				rnd[k] = (uint8_t)(h * 16 + l);
			}
			have_random = true;
		} else if (strcmp(o, "--now") == 0) {
			if (!util_parse_u64(a, 0, UINT64_MAX, &r.now))
				return usage("bad --now");
			have_now = true;
		} else if (strcmp(o, "--arrival") == 0) {
			if (!util_parse_u64(a, 0, UINT64_MAX, &r.arrival))
				return usage("bad --arrival");
		} else if (strcmp(o, "--max-original") == 0) {
			if (!util_parse_u64(a, 0, SIZE_MAX, &v))
				return usage("bad --max-original");
			r.max_original = (size_t)v;
		} else if (strcmp(o, "--rcpt") == 0) {
			if (r.n == DSN_MAX_RCPTS)
				return usage("too many --rcpt");
			if (!unescape(a))
				return usage("bad escape in --rcpt");
			rcpts[r.n++] = (dsn_rcpt){ .final_rcpt = a,
						   .action = DSN_FAILED };
		} else if (strcmp(o, "--action") == 0) {
			if (!parse_action(a, &p->action))
				return usage("bad --action");
		} else if (strcmp(o, "--status") == 0) {
			p->status = a;
		} else if (strcmp(o, "--remote-mta") == 0) {
			if (!unescape(a))
				return usage("bad escape in --remote-mta");
			p->remote_mta = a;
		} else if (strcmp(o, "--diag") == 0) {
			if (!unescape(a))
				return usage("bad escape in --diag");
			p->diag = a;
		} else if (strcmp(o, "--orcpt") == 0) {
			if (!unescape(a))
				return usage("bad escape in --orcpt");
			p->orcpt = a;
		} else if (strcmp(o, "--last-attempt") == 0) {
			if (!util_parse_u64(a, 0, UINT64_MAX, &p->last_attempt))
				return usage("bad --last-attempt");
		} else if (strcmp(o, "--retry-until") == 0) {
			if (!util_parse_u64(a, 0, UINT64_MAX,
					    &p->will_retry_until))
				return usage("bad --retry-until");
		} else {
			return usage("unknown option");
		}
	}
	if (file == NULL || !have_random || !have_now)
		return usage("MESSAGE-FILE, --random and --now are needed");
	r.random16 = rnd;
	r.rcpts = rcpts;

	uint8_t *msg = NULL, *out = NULL;
	size_t len = 0, out_len = 0;
	if (util_read_file(file, TOOL_MAX_INPUT, &msg, &len) < 0) {
		fprintf(stderr, "dsn-tool: %s: %s\n", file, strerror(errno));
		return 1;
	}
	r.original = msg;
	r.original_len = len;
	if (dsn_build(&r, &out, &out_len, &error) < 0) {
		fprintf(stderr, "dsn-tool: %s\n", error);
		free(msg);
		return 1;
	}
	free(msg);
	int rc = util_write_all(STDOUT_FILENO, out, out_len) < 0 ? 1 : 0;
	free(out);
	return rc;
}
