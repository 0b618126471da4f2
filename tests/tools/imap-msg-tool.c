/*
 * imap-msg-tool.c — a test tool (not installed) over src/imap/imap-msg.h,
 * driven by tests/e2e/test_imap_msg_dovecot.py to compare what we show of
 * a message with what Dovecot shows of the same file.
 *
 *   imap-msg-tool MESSAGE-FILE                 ("-": standard input)
 *   imap-msg-tool --section S MESSAGE-FILE     (S as between the brackets)
 *   imap-msg-tool --search-header NAME NEEDLE MESSAGE-FILE
 *   imap-msg-tool --search-text body|text NEEDLE MESSAGE-FILE
 *
 * Without an option: three items, each "NAME LENGTH\n" then LENGTH bytes
 * (the IMAP syntax, literals and all) then "\n", for ENVELOPE, BODY and
 * BODYSTRUCTURE, then "SENT <unix seconds or NONE>\n".  --section writes
 * the section's bytes and nothing else; the searches print "yes" or "no".
 *
 * Exit 0 on success, 1 when the library refuses (the reason on stderr), 2
 * on a usage error.
 */
#include "imap-msg.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_MAX_INPUT (64u * 1024 * 1024)

static int usage(void)
{
	fprintf(stderr, "usage: imap-msg-tool [--section S | --search-header "
		"NAME NEEDLE | --search-text body|text NEEDLE] FILE\n");
	return 2;
}

static void item(const char *name, const char *v)
{
	printf("%s %zu\n", name, strlen(v));
	fwrite(v, 1, strlen(v), stdout);
	fputc('\n', stdout);
}

int main(int argc, char **argv)
{
	const char *section = NULL, *hname = NULL, *needle = NULL;
	const char *where = NULL;
	int i = 1;
	if (i + 2 < argc && strcmp(argv[i], "--section") == 0) {
		section = argv[i + 1];
		i += 2;
	} else if (i + 3 < argc && strcmp(argv[i], "--search-header") == 0) {
		hname = argv[i + 1];
		needle = argv[i + 2];
		i += 3;
	} else if (i + 3 < argc && strcmp(argv[i], "--search-text") == 0) {
		where = argv[i + 1];
		needle = argv[i + 2];
		if (strcmp(where, "body") != 0 && strcmp(where, "text") != 0)
			return usage();
		i += 3;
	}
	if (i + 1 != argc || argv[i][0] == '\0' ||
	    (argv[i][0] == '-' && argv[i][1] == '-'))
		return usage();
	uint8_t *msg;
	size_t len;
	if (util_read_file(argv[i], TOOL_MAX_INPUT, &msg, &len) < 0) {
		fprintf(stderr, "imap-msg-tool: %s: %s\n", argv[i],
			strerror(errno));
		return 1;
	}
	int rc = 0;
	const char *error = "?";
	if (section != NULL) {
		const uint8_t *out;
		size_t n;
		uint8_t *alloc;
		if (imap_msg_section(msg, len, section, strlen(section), &out,
				     &n, &alloc, &error) < 0) {
			fprintf(stderr, "imap-msg-tool: %s\n", error);
			rc = 1;
		} else {
			fwrite(out, 1, n, stdout);
			free(alloc);
		}
	} else if (hname != NULL) {
		puts(imap_msg_header_has(msg, len, hname, needle,
					 strlen(needle)) ? "yes" : "no");
	} else if (where != NULL) {
		puts(imap_msg_text_has(msg, len, strcmp(where, "text") == 0,
				       needle, strlen(needle)) ? "yes" : "no");
	} else {
		imap_msg_info info;
		if (imap_msg_analyze(msg, len, &info, &error) < 0) {
			fprintf(stderr, "imap-msg-tool: %s\n", error);
			rc = 1;
		} else {
			item("ENVELOPE", info.envelope);
			item("BODY", info.body);
			item("BODYSTRUCTURE", info.bodystructure);
			if (info.sent == INT64_MIN)
				puts("SENT NONE");
			else
				printf("SENT %" PRId64 "\n", info.sent);
			imap_msg_info_free(&info);
		}
	}
	free(msg);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}
