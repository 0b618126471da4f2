/*
 * fuzz-config.c — libFuzzer target for the configuration parser
 * (src/core/config.c) against a schema with every value type.
 * Property: a file that parses prints (cfg_print) to a file that parses to
 * the same print — the printed form is a fixed point.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const cfg_key keys[] = {
	{ "data_dir", CFG_STRING, "/var/lib/aftersmtp", 0, 0, false,
	  "Directory of the store and keys." },
	{ "max_connections", CFG_INT, "1000", -5, 100000, true,
	  "Connections accepted at once." },
	{ "drop_privileges", CFG_BOOL, "yes", 0, 0, false,
	  "Switch to the configured user after binding." },
	{ "idle_timeout", CFG_DURATION, "5m", 0, 86400 * 365, true,
	  "Close a connection idle this long." },
	{ "max_frame_size", CFG_SIZE, "1m", 0, INT64_MAX, true,
	  "Largest frame accepted." },
	{ "domains", CFG_LIST, "localhost", 0, 0, true,
	  "Domains this node serves." },
};
static const cfg_schema schema = { "fuzzd", keys, sizeof(keys) / sizeof(keys[0]) };

static char *print_all(const cfg *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (f == NULL)
		abort();
	cfg_print(c, false, f);
	fclose(f);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cfg *c = NULL, *c2 = NULL;
	cfg_errors errs;
	if (cfg_parse(&schema, (const char *)data, size, &c, &errs) != 0) {
		if (errs.n == 0 || c != NULL)
			abort(); /* failure must say why and return nothing */
		return 0;
	}
	size_t len, len2;
	char *p1 = print_all(c, &len);
	if (cfg_parse(&schema, p1, len, &c2, &errs) != 0)
		abort(); /* our own output must parse */
	char *p2 = print_all(c2, &len2);
	if (len != len2 || memcmp(p1, p2, len) != 0)
		abort();
	free(p1);
	free(p2);
	cfg_free(&c);
	cfg_free(&c2);
	return 0;
}
