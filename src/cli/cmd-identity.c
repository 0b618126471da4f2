/*
 * cmd-identity.c — `amp keygen` and `amp did show|document|import|list|
 * check`: creating the keystore and handling DID documents.
 */
#include "cli.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char keygen_help[] =
	"Usage: amp keygen --did DID [--kdf LEVEL] [--force] [COMMON OPTIONS]\n"
	"\n"
	"Create a new identity: a random Ed25519 signing key and a random\n"
	"X25519 encryption key for DID, stored in the keystore (mode 0600)\n"
	"encrypted under a passphrase with Argon2id.  The file is written to a\n"
	"temporary name, synced, then renamed: never half-written.\n"
	"\n"
	"Options:\n"
	"  --did DID       the identity, did:aftersmtp:DOMAIN:LOCAL (letters are\n"
	"                  lower-cased; see `amp did check`)\n"
	"  --kdf LEVEL     Argon2id cost: interactive (default; 64 MiB, 2 passes),\n"
	"                  moderate (256 MiB, 3), sensitive (1 GiB, 4), or min\n"
	"                  (tests only: no real protection)\n"
	"  --force         replace an existing keystore (its keys are lost)\n"
	"\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp keygen --did did:aftersmtp:example.org:alice\n";

int cmd_keygen(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS,
		{ "did", required_argument, NULL, 'd' },
		{ "kdf", required_argument, NULL, 'k' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *did_arg = NULL;
	amp_kdf_level level = AMP_KDF_INTERACTIVE;
	bool force = false;
	int c, r;

	while ((c = cli_next_opt(env, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'd':
			did_arg = optarg;
			break;
		case 'k':
			if (!cli_kdf_parse(optarg, &level)) {
				cli_err(env, "--kdf must be interactive, moderate, "
					     "sensitive or min");
				return CLI_USAGE;
			}
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(keygen_help, stdout);
			return CLI_OK;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	if (did_arg == NULL || optind != argc) {
		cli_err(env, "--did DID is required (see `amp keygen --help`)");
		return CLI_USAGE;
	}
	char did[AMP_DID_MAX + 1];
	const char *detail = NULL;
	amp_err e = amp_did_normalize(did_arg, did, sizeof(did), &detail);
	if (e != AMP_OK)
		return cli_fail(env, did_arg, e, detail);

	char pbuf[PATH_MAX];
	const char *path = cli_keystore_path(env, pbuf);
	if (path == NULL)
		return CLI_FAIL;
	if (!force && access(path, F_OK) == 0) {
		cli_err(env, "%s: a keystore already exists (use --force to "
			     "replace it and lose its keys)", path);
		return CLI_FAIL;
	}
	if (env->keystore[0] == '\0' && util_mkdirs(env->home, 0700) != 0) {
		cli_err(env, "%s: cannot create: %s", env->home, strerror(errno));
		return CLI_FAIL;
	}
	char *pass;
	size_t plen;
	if (cli_passphrase(env, true, &pass, &plen) != CLI_OK)
		return CLI_FAIL;
	amp_identity *id = NULL;
	char *text = NULL;
	e = amp_identity_generate(did, &id, &detail);
	if (e == AMP_OK)
		e = amp_keystore_seal(id, pass, plen, level, &text, &detail);
	cli_passphrase_free(&pass, plen);
	if (e != AMP_OK) {
		amp_identity_destroy(&id);
		return cli_fail(env, did, e, detail);
	}
	/* Without --force, never replace a keystore, even one that appeared
	 * while we were asking for the passphrase. */
	r = cli_write_out(env, path, text, strlen(text), 0600,
			  force ? 0 : UTIL_NO_REPLACE);
	amp_free(text);
	if (r == CLI_OK) {
		char sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
		amp_key_id(id->pub.sign_pk, sk);
		amp_key_id(id->pub.enc_pk, ek);
		printf("created %s\n  keystore  %s\n  signing   #sig-%s "
		       "(Ed25519)\n  encryption #enc-%s (X25519)\n",
		       did, path, sk, ek);
	}
	amp_identity_destroy(&id);
	return r;
}

/* ----------------------------------------------------------------- did */

static const char did_help[] =
	"Usage: amp did SUBCOMMAND [OPTIONS]\n"
	"\n"
	"Show our identity, export its DID document, and keep the DID documents\n"
	"of correspondents (in HOME/known/) so that `amp seal --to DID` and\n"
	"`amp open` can find their keys.  None of these needs the passphrase.\n"
	"\n"
	"Subcommands:\n"
	"  show                 our DID, key ids and keystore path\n"
	"  document [-o FILE]   our DID document (W3C DID Core, JsonWebKey2020)\n"
	"  import FILE [--force]\n"
	"                       validate a DID document and remember it; a\n"
	"                       different key for a DID already known is refused\n"
	"                       unless --force (it may be an impostor)\n"
	"  list                 the DIDs we know\n"
	"  check DID            check DID syntax; print the canonical form\n"
	"  resolve DID          ask the home node for DID's keys and their\n"
	"                       history in the node's transparency log, every\n"
	"                       entry's proof checked against a signed tree head\n"
	"                       (consistent with the heads seen before)\n"
	"\n" CLI_CONN_HELP "\n" CLI_COMMON_HELP
	"\n"
	"Examples:\n"
	"  amp did document -o alice.json\n"
	"  amp did import bob.json\n"
	"  amp did check did:aftersmtp:Example.ORG:bob\n"
	"  amp did resolve did:aftersmtp:example.org:alice\n";

static int did_show(cli_env *env)
{
	amp_public_identity pub;
	char sk[AMP_KEY_ID_HEX + 1], ek[AMP_KEY_ID_HEX + 1];
	if (cli_load_public(env, &pub) != CLI_OK)
		return CLI_FAIL;
	amp_key_id(pub.sign_pk, sk);
	amp_key_id(pub.enc_pk, ek);
	printf("did         %s\nsigning     %s#sig-%s (Ed25519)\n"
	       "encryption  %s#enc-%s (X25519)\n",
	       pub.did, pub.did, sk, pub.did, ek);
	return CLI_OK;
}

static int did_document(cli_env *env, const char *out)
{
	amp_public_identity pub;
	char *json;
	const char *detail = NULL;
	if (cli_load_public(env, &pub) != CLI_OK)
		return CLI_FAIL;
	amp_err e = amp_did_document_export(&pub, &json, &detail);
	if (e != AMP_OK)
		return cli_fail(env, pub.did, e, detail);
	/* jansson's text has no final newline; files and terminals want one. */
	size_t len = strlen(json);
	char *text = malloc(len + 2);
	if (text == NULL) {
		amp_free(json);
		cli_err(env, "out of memory");
		return CLI_FAIL;
	}
	memcpy(text, json, len);
	text[len] = '\n';
	text[len + 1] = '\0';
	int r = cli_write_out(env, out, text, len + 1, 0644, 0);
	free(text);
	amp_free(json);
	return r;
}

static int did_import(cli_env *env, const char *file, bool force)
{
	amp_public_identity pub, old;
	if (cli_read_doc(env, file, &pub) != CLI_OK)
		return CLI_FAIL;
	char dir[PATH_MAX], path[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/known", env->home);
	int m = snprintf(path, sizeof(path), "%s/%s.json", dir, pub.did);
	if (n < 0 || (size_t)n >= sizeof(dir) || m < 0 ||
	    (size_t)m >= sizeof(path)) {
		cli_err(env, "AMP_HOME path is too long");
		return CLI_FAIL;
	}
	if (access(path, F_OK) == 0 && !force) {
		if (cli_read_doc(env, path, &old) != CLI_OK)
			return CLI_FAIL;
		if (memcmp(old.sign_pk, pub.sign_pk, 32) != 0 ||
		    memcmp(old.enc_pk, pub.enc_pk, 32) != 0) {
			cli_err(env, "%s: already known with DIFFERENT keys; "
				     "verify with its owner, then use --force",
				pub.did);
			return CLI_FAIL;
		}
	}
	if (util_mkdirs(dir, 0700) != 0) {
		cli_err(env, "%s: cannot create: %s", dir, strerror(errno));
		return CLI_FAIL;
	}
	/* Store our own canonical rendering, not the file as given. */
	char *json;
	const char *detail = NULL;
	amp_err e = amp_did_document_export(&pub, &json, &detail);
	if (e != AMP_OK)
		return cli_fail(env, pub.did, e, detail);
	int r = cli_write_out(env, path, json, strlen(json), 0644, 0);
	amp_free(json);
	if (r == CLI_OK)
		printf("imported %s\n", pub.did);
	return r;
}

static int did_list(cli_env *env)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/known", env->home);
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? CLI_OK : CLI_FAIL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 &&
		    amp_did_parse(de->d_name, len - 5, NULL, NULL) == AMP_OK)
			printf("%.*s\n", (int)(len - 5), de->d_name);
	}
	closedir(d);
	return CLI_OK;
}

int cmd_did(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS, CLI_CONN_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = "-";
	bool force = false;
	cli_conn_opts co = { 0 };
	int c, k;

	while ((c = cli_next_opt(env, argc, argv, "ho:", opts)) != -1) {
		if ((k = cli_parse_conn_opt(env, c, &co)) != 0) {
			if (k < 0)
				return CLI_USAGE;
			continue;
		}
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(did_help, stdout);
			return CLI_OK;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	const char *sub = optind < argc ? argv[optind] : NULL;
	int nargs = argc - optind - 1;
	if (sub != NULL && strcmp(sub, "show") == 0 && nargs == 0)
		return did_show(env);
	if (sub != NULL && strcmp(sub, "document") == 0 && nargs == 0)
		return did_document(env, out);
	if (sub != NULL && strcmp(sub, "import") == 0 && nargs == 1)
		return did_import(env, argv[optind + 1], force);
	if (sub != NULL && strcmp(sub, "list") == 0 && nargs == 0)
		return did_list(env);
	if (sub != NULL && strcmp(sub, "resolve") == 0 && nargs == 1)
		return cli_did_resolve(env, &co, argv[optind + 1]);
	if (sub != NULL && strcmp(sub, "check") == 0 && nargs == 1) {
		char did[AMP_DID_MAX + 1];
		const char *detail = NULL;
		amp_err e = amp_did_normalize(argv[optind + 1], did,
					      sizeof(did), &detail);
		if (e != AMP_OK)
			return cli_fail(env, "DID", e, detail);
		printf("%s\n", did);
		return CLI_OK;
	}
	cli_err(env, "expected show, document, import FILE, list, check DID or "
		"resolve DID");
	cli_usage_hint(env);
	return CLI_USAGE;
}
