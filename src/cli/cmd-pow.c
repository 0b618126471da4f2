/*
 * cmd-pow.c — `amp pow mint` and `amp pow check`: the registration proof
 * of work of PROTOCOL.md §6 for our identity or a DID document's.
 */
#include "cli.h"
#include "util.h"

#include <string.h>

static const char pow_help[] =
	"Usage: amp pow mint [--bits N] [--max-tries N] [COMMON OPTIONS]\n"
	"       amp pow check [--bits N] [--doc FILE] STAMP\n"
	"\n"
	"A node may ask for a Hashcash-style proof of work before it registers\n"
	"an identity (PROTOCOL.md §6).  The stamp is bound to the DID and both\n"
	"of its public keys and is valid for 24 hours.\n"
	"\n"
	"  mint    search for a stamp for our identity (no passphrase needed)\n"
	"          and print it as amp-pow-v1:BITS:TIMESTAMP:COUNTER.  Expected\n"
	"          work is 2^BITS hashes: 20 bits takes about a second.\n"
	"  check   check STAMP for the identity of --doc FILE (default: ours)\n"
	"          with at least --bits of difficulty; exits 0 when valid, else\n"
	"          prints the reason (AMP_E_POW_INSUFFICIENT, AMP_E_POW_STALE,\n"
	"          AMP_E_FUTURE) and exits 1.\n"
	"\n"
	"Options:\n"
	"  --bits N        difficulty in bits, 1-64 (default 20)\n"
	"  --max-tries N   mint: give up after N hashes (default: no limit)\n"
	"\n" CLI_COMMON_HELP
	"\n"
	"Examples:\n"
	"  amp pow mint --bits 22\n"
	"  amp pow check --bits 20 --doc alice.json amp-pow-v1:22:1767225600:00000000001f3a2c\n";

int cmd_pow(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS,
		{ "bits", required_argument, NULL, 'b' },
		{ "max-tries", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t bits = 20, max_tries = 0;
	int c;

	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'b':
			if (!util_parse_u64(optarg, 1, AMP_POW_BITS_MAX, &bits)) {
				cli_err(env, "--bits must be 1-%u", AMP_POW_BITS_MAX);
				return CLI_USAGE;
			}
			break;
		case 'm':
			if (!util_parse_u64(optarg, 1, UINT64_MAX, &max_tries)) {
				cli_err(env, "--max-tries must be a positive number");
				return CLI_USAGE;
			}
			break;
		case 'h':
			fputs(pow_help, stdout);
			return CLI_OK;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	const char *sub = optind < argc ? argv[optind] : "";
	int nargs = argc - optind - 1;
	amp_public_identity pub;
	const char *detail = NULL;
	amp_err e;

	if (strcmp(sub, "mint") == 0 && nargs == 0) {
		amp_pow_stamp st;
		char text[AMP_POW_TEXT_MAX + 1];
		if (cli_load_public(env, &pub) != CLI_OK)
			return CLI_FAIL;
		e = amp_pow_mint(&pub, (uint32_t)bits, 0, max_tries, &st, &detail);
		if (e != AMP_OK)
			return cli_fail(env, "mint", e, detail);
		if (amp_pow_format(&st, text, sizeof(text)) != AMP_OK)
			return cli_fail(env, "mint", AMP_E_INVALID_ARG, NULL);
		printf("%s\n", text);
		return CLI_OK;
	}
	if (strcmp(sub, "check") == 0 && nargs == 1) {
		amp_pow_stamp st;
		const char *s = argv[optind + 1];
		if (env->n_docs > 1) {
			cli_err(env, "give at most one --doc");
			return CLI_USAGE;
		}
		if (env->n_docs == 1 ? cli_read_doc(env, env->docs[0], &pub)
				     : cli_load_public(env, &pub))
			return CLI_FAIL;
		e = amp_pow_parse(s, strlen(s), &st, &detail);
		if (e == AMP_OK)
			e = amp_pow_check(&pub, &st, (uint32_t)bits, 0, &detail);
		if (e != AMP_OK)
			return cli_fail(env, "stamp", e, detail);
		printf("valid: %u bits for %s\n", (unsigned)st.bits, pub.did);
		return CLI_OK;
	}
	cli_err(env, "expected mint, or check STAMP");
	cli_usage_hint(env);
	return CLI_USAGE;
}
