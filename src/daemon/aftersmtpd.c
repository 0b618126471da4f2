/*
 * aftersmtpd.c — the AfterSMTP node daemon's command line.
 *
 * Commands: run (node-run.c), init, configuration checking and display,
 * show-node, invite, quickstart DOMAIN.
 */
#include "node.h"
#include "nodeproto.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/aftersmtp/aftersmtpd.conf"

static const char usage[] =
	"Usage: aftersmtpd [--config FILE] COMMAND [OPTIONS]\n"
	"\n"
	"aftersmtpd is the AfterSMTP node: it keeps the identities of its\n"
	"domains, accepts end-to-end encrypted envelopes over QUIC and TLS\n"
	"(PROTOCOL.md), stores them for its users and relays them to other\n"
	"nodes.\n"
	"\n"
	"Commands:\n"
	"  run                    serve (foreground; logs to standard error):\n"
	"                         initialises data_dir on first start, binds\n"
	"                         the listeners, drops to `user` if root.\n"
	"                         SIGHUP reloads the configuration, SIGTERM\n"
	"                         drains and stops\n"
	"  invite [--valid DURATION]\n"
	"                         print a one-time invite token that registers\n"
	"                         one identity without proof of work (default\n"
	"                         validity 7d; units s m h d)\n"
	"  init                   create what is missing in data_dir: the node\n"
	"                         identity (did:aftersmtp:<domain>:node, an\n"
	"                         Argon2id keystore), its passphrase file, the\n"
	"                         storage key and a self-signed TLS certificate\n"
	"                         (secrets 0600); never replaces a file\n"
	"  check-config           validate the configuration, listing every error\n"
	"                         with its line (also: --check-config)\n"
	"  show-config [-n]       print every setting, or with -n only those not\n"
	"                         at their default (like postconf -n)\n"
	"  config-reference       print every key with type, default, range and\n"
	"                         meaning, as Markdown (docs/CONFIG.md)\n"
	"  show-node              print the node's DID, keys and DNS key record\n"
	"  quickstart DOMAIN [--host HOST] [--dir DIR]\n"
	"                         write DIR/aftersmtpd.conf for DOMAIN (default\n"
	"                         DIR: ./aftersmtp-DOMAIN), initialise DIR/data,\n"
	"                         and print the DNS records the node needs\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE      configuration file (default " DEFAULT_CONFIG
	" if it\n"
	"                         exists, else the built-in defaults)\n"
	"  -h, --help             this help;  --version  the version\n"
	"\n"
	"Exit status: 0 success, 1 failure, 2 usage error.\n"
	"\n"
	"Example:\n"
	"  aftersmtpd -c aftersmtp-example.org/aftersmtpd.conf run\n"
	"  aftersmtpd quickstart example.org --host mail.example.org\n"
	"  aftersmtpd -c aftersmtp-example.org/aftersmtpd.conf show-config -n\n";

/* Load the configuration: the named file, else the default file if it
 * exists, else the defaults.  *from_r names the source. */
static int load_config(const char *path, cfg **c_r, const char **from_r)
{
	cfg_errors errs;
	bool explicit_path = path != NULL;
	if (!explicit_path)
		path = DEFAULT_CONFIG;
	if (!explicit_path && access(path, F_OK) != 0) {
		*from_r = "built-in defaults";
		if (cfg_defaults(&node_schema, c_r, &errs) != 0) {
			cfg_print_errors(&errs, "defaults", stderr);
			return -1;
		}
		return 0;
	}
	uint8_t *text;
	size_t len;
	if (util_read_file(path, CFG_FILE_MAX, &text, &len) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", path,
			errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return -1;
	}
	int r = cfg_parse(&node_schema, (const char *)text, len, c_r, &errs);
	free(text);
	if (r != 0) {
		cfg_print_errors(&errs, path, stderr);
		return -1;
	}
	*from_r = path;
	return 0;
}

static int show_node(const cfg *c)
{
	amp_identity *id = NULL;
	if (node_load_identity(c, &id) != 0)
		return 1;
	char sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
	char ps[64], pe[64];
	amp_key_id(id->pub.sign_pk, sk);
	amp_key_id(id->pub.enc_pk, ek);
	sodium_bin2base64(ps, sizeof(ps), id->pub.sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(pe, sizeof(pe), id->pub.enc_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	printf("node        %s\nsigning     #sig-%s\nencryption  #enc-%s\n"
	       "dns         _amp-node.%s. IN TXT \"v=amp1; k=ed25519; p=%s; x=%s\"\n",
	       id->pub.did, sk, ek, cfg_list_item(c, "domains", 0), ps, pe);
	amp_identity_destroy(&id);
	return 0;
}

static int quickstart(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *dir = NULL;
	int c;
	optind = 0; /* GNU getopt: 0 also resets its "+" mode */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'd': dir = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default:
			fprintf(stderr, "Try 'aftersmtpd --help'.\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "aftersmtpd: quickstart needs one DOMAIN\n");
		return 2;
	}
	char domain[AMP_DID_DOMAIN_MAX + 1], did[AMP_DID_MAX + 1];
	const char *err = NULL;
	int n = snprintf(domain, sizeof(domain), "%s", argv[optind]);
	for (char *p = domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (n < 0 || (size_t)n >= sizeof(domain) ||
	    amp_did_format(domain, "node", did, sizeof(did), &err) != AMP_OK) {
		fprintf(stderr, "aftersmtpd: '%s' is not a domain name: %s\n",
			argv[optind], err != NULL ? err : "too long");
		return 2;
	}
	char hostbuf[300], dirbuf[PATH_MAX], conf[PATH_MAX], text[PATH_MAX + 512];
	if (host == NULL) {
		snprintf(hostbuf, sizeof(hostbuf), "mail.%s", domain);
		host = hostbuf;
	}
	if (dir == NULL) {
		snprintf(dirbuf, sizeof(dirbuf), "aftersmtp-%s", domain);
		dir = dirbuf;
	}
	/* 0755: the node switches to an unprivileged user that must reach
	 * data/ (which is 0700 and given to that user at start). */
	if (util_mkdirs(dir, 0755) != 0 ||
	    snprintf(conf, sizeof(conf), "%s/aftersmtpd.conf", dir) >= (int)sizeof(conf)) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char absdir[PATH_MAX];
	if (realpath(dir, absdir) == NULL) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int len = snprintf(text, sizeof(text),
			   "# aftersmtpd configuration for %s, written by "
			   "`aftersmtpd quickstart`.\n"
			   "# Every key and its default: `aftersmtpd "
			   "config-reference` (docs/CONFIG.md).\n"
			   "domains = %s\n"
			   "data_dir = %s/data\n"
			   "# every address, IPv4 and IPv6\n"
			   "listen = ::\n",
			   domain, domain, absdir);
	if (len < 0 || (size_t)len >= sizeof(text) ||
	    util_write_file_atomic(conf, text, (size_t)len, 0644, UTIL_NO_REPLACE) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", conf,
			errno == EEXIST ? "exists already; not replaced"
					: strerror(errno));
		return 1;
	}
	printf("wrote %s\n", conf);
	cfg *nc;
	const char *from;
	if (load_config(conf, &nc, &from) != 0 || node_init_data_dir(nc, false) != 0)
		return 1;
	amp_identity *id = NULL;
	if (node_load_identity(nc, &id) != 0) {
		cfg_free(&nc);
		return 1;
	}
	char ps[64], pe[64];
	sodium_bin2base64(ps, sizeof(ps), id->pub.sign_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(pe, sizeof(pe), id->pub.enc_pk, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	printf("\n; DNS records for %s (zone-file syntax).\n"
	       "; %s must also have A and/or AAAA records with the node's "
	       "addresses.\n"
	       "_amp._udp.%s.  3600 IN SRV 10 10 4434 %s.\n"
	       "_amp._tcp.%s.  3600 IN SRV 10 10 4434 %s.\n"
	       "%s.            3600 IN MX  10 %s.\n"
	       "_amp-node.%s.  3600 IN TXT \"v=amp1; k=ed25519; p=%s; x=%s\"\n"
	       "; SPF, DKIM, DMARC, MTA-STS and TLSA records come with the "
	       "Legacy Bridge.\n",
	       domain, host, domain, host, domain, host, domain, host, domain,
	       ps, pe);
	amp_identity_destroy(&id);
	cfg_free(&nc);
	return 0;
}

static int invite(const cfg *c, int argc, char **argv)
{
	uint64_t valid = 7 * 86400;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--valid") == 0 && i + 1 < argc) {
			int64_t v;
			if (!cfg_parse_duration(argv[++i], &v) || v < 1 ||
			    v > 3650 * 86400) {
				fprintf(stderr, "aftersmtpd: invite: bad --valid "
					"(1s to 3650d)\n");
				return 2;
			}
			valid = (uint64_t)v;
		} else {
			fprintf(stderr, "aftersmtpd: invite: unexpected '%s'\n",
				argv[i]);
			return 2;
		}
	}
	uint8_t skey[32], ikey[32];
	char token[NP_INVITE_MAX];
	if (node_load_storage_key(c, skey) != 0)
		return 1;
	node_subkey(skey, "AMPv1-invite-key", ikey);
	sodium_memzero(skey, sizeof(skey));
	int r = np_invite_make(ikey, (uint64_t)time(NULL) + valid, token);
	sodium_memzero(ikey, sizeof(ikey));
	if (r != 0)
		return 1;
	printf("%s\n", token);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *cmd = NULL;
	int c;

	if (amp_init() != AMP_OK) {
		fprintf(stderr, "aftersmtpd: cannot initialise libsodium\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'C': cmd = "check-config"; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("aftersmtpd 0.1.0 (AMP protocol version %u)\n",
				 AMP_PROTOCOL_VERSION);
			  return 0;
		default:
			fprintf(stderr, "Try 'aftersmtpd --help'.\n");
			return 2;
		}
	}
	if (cmd == NULL) {
		if (optind >= argc) {
			fputs(usage, stderr);
			return 2;
		}
		cmd = argv[optind++];
	}
	if (strcmp(cmd, "quickstart") == 0)
		return quickstart(argc - optind + 1, argv + optind - 1);
	if (strcmp(cmd, "config-reference") == 0) {
		cfg_print_doc(&node_schema, stdout);
		return 0;
	}
	if (strcmp(cmd, "invite") == 0) {
		cfg *ic;
		const char *ifrom;
		if (load_config(config_path, &ic, &ifrom) != 0)
			return 1;
		int ir = invite(ic, argc - optind, argv + optind);
		cfg_free(&ic);
		return ir;
	}
	bool non_default = false;
	if (strcmp(cmd, "show-config") == 0 && optind < argc &&
	    strcmp(argv[optind], "-n") == 0) {
		non_default = true;
		optind++;
	}
	if (optind != argc) {
		fprintf(stderr, "aftersmtpd: unexpected '%s' (try --help)\n",
			argv[optind]);
		return 2;
	}
	cfg *conf;
	const char *from;
	int r;
	if (strcmp(cmd, "check-config") == 0) {
		if (load_config(config_path, &conf, &from) != 0)
			return 1;
		printf("%s: configuration is valid\n", from);
		r = 0;
	} else if (strcmp(cmd, "show-config") == 0) {
		if (load_config(config_path, &conf, &from) != 0)
			return 1;
		cfg_print(conf, non_default, stdout);
		r = 0;
	} else if (strcmp(cmd, "run") == 0) {
		if (load_config(config_path, &conf, &from) != 0)
			return 1;
		/* run owns conf (it swaps it on reload) */
		return node_run_main(conf, strcmp(from, "built-in defaults") == 0
						   ? NULL : from);
	} else if (strcmp(cmd, "init") == 0) {
		if (load_config(config_path, &conf, &from) != 0)
			return 1;
		r = node_init_data_dir(conf, false) == 0 ? 0 : 1;
		if (r == 0)
			printf("data directory %s is ready\n", cfg_str(conf, "data_dir"));
	} else if (strcmp(cmd, "show-node") == 0) {
		if (load_config(config_path, &conf, &from) != 0)
			return 1;
		r = show_node(conf);
	} else {
		fprintf(stderr, "aftersmtpd: unknown command '%s' (try --help)\n",
			cmd);
		return 2;
	}
	cfg_free(&conf);
	return r;
}
