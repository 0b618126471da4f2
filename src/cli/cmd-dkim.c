/*
 * cmd-dkim.c — `amp dkim keygen`: a DKIM signing key (RSA 2048 or
 * Ed25519, src/mime/dkim-sign.h) written to a 0600 file, and the DNS TXT
 * record that publishes its public half.  No keystore, no passphrase.
 */
#include "cli.h"
#include "dkim-sign.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static const char dkim_help[] =
	"Usage: amp dkim keygen --domain DOMAIN --selector SELECTOR\n"
	"                       [--alg rsa|ed25519] --out KEYFILE\n"
	"\n"
	"Generate a DKIM signing key (RFC 6376; Ed25519 per RFC 8463) for the\n"
	"legacy bridge's outbound mail, write it to KEYFILE as a PKCS#8 PEM\n"
	"private key (mode 0600; an existing file is never replaced), and print\n"
	"the DNS record to publish, in zone-file form:\n"
	"\n"
	"  SELECTOR._domainkey.DOMAIN. IN TXT \"v=DKIM1; k=rsa; p=...\"\n"
	"\n"
	"The TXT data is cut into strings of at most 255 bytes, as DNS\n"
	"requires; resolvers join them.\n"
	"\n"
	"Options:\n"
	"  --domain DOMAIN      the signing domain (d=)\n"
	"  --selector SELECTOR  the selector (s=), e.g. 2026a\n"
	"  --alg rsa|ed25519    key type (default rsa: 2048 bits; many receivers\n"
	"                       do not check ed25519 yet, so publish both)\n"
	"  --out KEYFILE        where to write the private key\n"
	"  -h, --help           show this help\n"
	"\n"
	"Example:\n"
	"  amp dkim keygen --domain example.org --selector 2026r --out rsa.pem\n"
	"  amp dkim keygen --domain example.org --selector 2026e --alg ed25519 \\\n"
	"      --out ed25519.pem\n";

/* A name dkim_sign accepts, and not starting or ending with a dot. */
static bool dns_name_ok(const char *s)
{
	return dkim_name_ok(s) && s[0] != '.' && s[strlen(s) - 1] != '.';
}

int cmd_dkim(cli_env *env, int argc, char **argv)
{
	enum { OPT_DOMAIN = 2000, OPT_SELECTOR, OPT_ALG, OPT_OUT };
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS,
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "selector", required_argument, NULL, OPT_SELECTOR },
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "out", required_argument, NULL, OPT_OUT },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *selector = NULL, *out = NULL;
	const char *error = NULL;
	dkim_alg alg = DKIM_RSA2048;
	char *pem = NULL, *txt = NULL;
	int c, r;

	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case OPT_DOMAIN:
			domain = optarg;
			break;
		case OPT_SELECTOR:
			selector = optarg;
			break;
		case OPT_ALG:
			if (strcmp(optarg, "rsa") == 0) {
				alg = DKIM_RSA2048;
			} else if (strcmp(optarg, "ed25519") == 0) {
				alg = DKIM_ED25519;
			} else {
				cli_err(env, "--alg must be rsa or ed25519");
				return CLI_USAGE;
			}
			break;
		case OPT_OUT:
			out = optarg;
			break;
		case 'h':
			fputs(dkim_help, stdout);
			return CLI_OK;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc || strcmp(argv[optind], "keygen") != 0) {
		cli_err(env, "expected keygen");
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if (domain == NULL || selector == NULL || out == NULL) {
		cli_err(env, "keygen needs --domain, --selector and --out");
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	if (!dns_name_ok(domain) || !dns_name_ok(selector)) {
		cli_err(env, "--domain and --selector are DNS names "
			     "(letters, digits, '-', '_', '.')");
		return CLI_USAGE;
	}
	if (strcmp(out, "-") == 0) {
		cli_err(env, "--out must be a file (the DNS record goes to "
			     "standard output)");
		return CLI_USAGE;
	}
	if (dkim_keygen(alg, &pem, &txt, &error) < 0) {
		cli_err(env, "%s", error);
		return CLI_FAIL;
	}
	r = cli_write_out(env, out, pem, strlen(pem), 0600, UTIL_NO_REPLACE);
	dkim_pem_free(&pem);
	if (r != CLI_OK) {
		free(txt);
		return CLI_FAIL;
	}
	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t off = 0, n = strlen(txt); off < n; off += 255) {
		size_t k = n - off > 255 ? 255 : n - off;
		printf(" \"%.*s\"", (int)k, txt + off);
	}
	printf("\n");
	free(txt);
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}
