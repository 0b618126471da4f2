/*
 * cmd-envelope.c — `amp seal`, `amp open` and `amp verify`: the envelope
 * commands.  Input is read whole (bounded by the protocol's limits) from a
 * file or standard input; output goes to standard output or is written
 * atomically to a file.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

/* Armoured input may be 4/3 larger than a binary envelope. */
#define ENVELOPE_INPUT_MAX ((size_t)AMP_ENVELOPE_MAX / 3u * 4u + AMP_ENVELOPE_MAX / 32u + 256u)

static const char seal_help[] =
	"Usage: amp seal --to DID[,DID...] [-i FILE] [-o FILE] [OPTIONS]\n"
	"\n"
	"Encrypt a message once for one or more recipients and sign it with our\n"
	"key (PROTOCOL.md §5): the body is zstd-compressed, padded, encrypted\n"
	"with XChaCha20-Poly1305 under a fresh content key, and that key is\n"
	"wrapped for each recipient's X25519 key.  Recipients' keys come from\n"
	"--doc files or DID documents imported with `amp did import`.  Needs\n"
	"the keystore passphrase.\n"
	"\n"
	"Options:\n"
	"  --to DID[,DID...]     recipients (repeatable; 1-1000 in all); include\n"
	"                        your own DID to be able to read it yourself\n"
	"  -i, --input FILE      message to seal (default: standard input; at\n"
	"                        most 32 MiB)\n"
	"  -o, --output FILE     envelope (default: standard output)\n"
	"  -a, --armor           write the text form (BEGIN AMP ENVELOPE ...)\n"
	"  --content-type TYPE   media type of the body (default message/rfc822)\n"
	"  --lane LANE           normal (default), critical or bulk\n"
	"  --expires WHEN        unix time, or +N[s|m|h|d] from now (default:\n"
	"                        never)\n"
	"\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp seal --to did:aftersmtp:example.org:bob,did:aftersmtp:example.org:alice \\\n"
	"      --expires +7d -i note.eml -o note.amp\n";

static const char open_help[] =
	"Usage: amp open [-i FILE] [-o FILE] [--info] [COMMON OPTIONS]\n"
	"\n"
	"Verify an envelope addressed to us and decrypt it.  The sender's DID\n"
	"document must be imported (or given with --doc).  Checks, in order:\n"
	"encoding, structure, the sender's signature, expiry, that we are a\n"
	"recipient, the wrapped key, the payload, padding and compression.  No\n"
	"plaintext is written unless every check passes; a failure prints its\n"
	"error code (e.g. AMP_E_NOT_RECIPIENT) and exits 1.  Needs the keystore\n"
	"passphrase.  Binary and armoured envelopes are both accepted.\n"
	"\n"
	"Options:\n"
	"  -i, --input FILE    envelope (default: standard input)\n"
	"  -o, --output FILE   plaintext (default: standard output)\n"
	"  --info              also print the header (sender, id, times) on\n"
	"                      standard error\n"
	"\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp open -i note.amp -o note.eml\n";

static const char verify_help[] =
	"Usage: amp verify [-i FILE] [COMMON OPTIONS]\n"
	"\n"
	"Check an envelope's encoding, structure, sender signature and time\n"
	"window without decrypting it (what a relaying node does), and print\n"
	"its header.  Anyone can verify; no keystore passphrase is needed.\n"
	"The sender's DID document must be imported or given with --doc.\n"
	"\n"
	"Options:\n"
	"  -i, --input FILE    envelope (default: standard input)\n"
	"\n" CLI_COMMON_HELP
	"\n"
	"Example:\n"
	"  amp verify -i note.amp\n";

static const char *lane_name(amp_lane l)
{
	return l == AMP_LANE_CRITICAL ? "critical"
	       : l == AMP_LANE_BULK   ? "bulk"
				      : "normal";
}

/* "+N[smhd]" relative to now, or an absolute unix time. */
static bool parse_when(const char *s, uint64_t now, uint64_t *t_r)
{
	uint64_t v, mult = 1;
	char num[32];
	if (*s != '+')
		return util_parse_u64(s, 1, UINT64_MAX, t_r);
	size_t len = strlen(s + 1);
	if (len == 0 || len >= sizeof(num))
		return false;
	memcpy(num, s + 1, len + 1);
	switch (num[len - 1]) {
	case 'd': mult = 86400; num[len - 1] = '\0'; break;
	case 'h': mult = 3600; num[len - 1] = '\0'; break;
	case 'm': mult = 60; num[len - 1] = '\0'; break;
	case 's': num[len - 1] = '\0'; break;
	default: break;
	}
	if (!util_parse_u64(num, 1, UINT64_MAX / mult - now, &v))
		return false;
	*t_r = now + v * mult;
	return true;
}

/* Split "a,b,c" (a copy) into canonical DIDs appended to dids. */
static int add_recipients(cli_env *env, const char *list, char (*dids)[AMP_DID_MAX + 1],
			  size_t *n)
{
	const char *p = list;
	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char one[AMP_DID_MAX + 2];
		const char *detail = NULL;
		if (*n == AMP_RECIPIENTS_MAX) {
			cli_err(env, "more than %u recipients", AMP_RECIPIENTS_MAX);
			return CLI_USAGE;
		}
		if (len > AMP_DID_MAX) {
			cli_err(env, "a recipient DID is longer than %u bytes",
				AMP_DID_MAX);
			return CLI_USAGE;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		amp_err e = amp_did_normalize(one, dids[*n], AMP_DID_MAX + 1,
					      &detail);
		if (e != AMP_OK) {
			cli_fail(env, "--to", e, detail);
			return CLI_USAGE;
		}
		(*n)++;
		p += len;
		if (*p == ',')
			p++;
	}
	return CLI_OK;
}

int cmd_seal(cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS,
		{ "to", required_argument, NULL, 't' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "armor", no_argument, NULL, 'a' },
		{ "content-type", required_argument, NULL, 'c' },
		{ "lane", required_argument, NULL, 'l' },
		{ "expires", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	const char *in = "-", *out = "-";
	bool armor = false;
	amp_seal_params params = { 0 };
	uint64_t now = (uint64_t)time(NULL);
	size_t n = 0;
	int c, r;
	char (*dids)[AMP_DID_MAX + 1] = calloc(AMP_RECIPIENTS_MAX, AMP_DID_MAX + 1);
	amp_public_identity *rcpt = calloc(AMP_RECIPIENTS_MAX, sizeof(*rcpt));
	amp_identity *me = NULL;
	uint8_t *body = NULL, *env_bytes = NULL;
	char *text = NULL;
	size_t body_len = 0, env_len = 0, text_len = 0;

	if (dids == NULL || rcpt == NULL) {
		cli_err(env, "out of memory");
		r = CLI_FAIL;
		goto out;
	}
	params.created = now;
	while ((c = cli_next_opt(env, argc, argv, "hi:o:a", opts)) != -1) {
		r = CLI_OK;
		switch (c) {
		case 't':
			r = add_recipients(env, optarg, dids, &n);
			break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'a': armor = true; break;
		case 'c': params.content_type = optarg; break;
		case 'l':
			if (strcmp(optarg, "normal") == 0)
				params.lane = AMP_LANE_NORMAL;
			else if (strcmp(optarg, "critical") == 0)
				params.lane = AMP_LANE_CRITICAL;
			else if (strcmp(optarg, "bulk") == 0)
				params.lane = AMP_LANE_BULK;
			else {
				cli_err(env, "--lane must be normal, critical or bulk");
				r = CLI_USAGE;
			}
			break;
		case 'e':
			if (!parse_when(optarg, now, &params.expires) ||
			    params.expires <= now) {
				cli_err(env, "--expires must be a future unix "
					     "time or +N[s|m|h|d]");
				r = CLI_USAGE;
			}
			break;
		case 'h':
			fputs(seal_help, stdout);
			goto out;
		default:
			cli_usage_hint(env);
			r = CLI_USAGE;
		}
		if (r != CLI_OK)
			goto out;
	}
	if (n == 0 || optind != argc) {
		cli_err(env, "--to DID is required (see `amp seal --help`)");
		r = CLI_USAGE;
		goto out;
	}
	amp_public_identity mine;
	if ((r = cli_load_public(env, &mine)) != CLI_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((r = cli_resolve(env, dids[i], &mine, &rcpt[i])) != CLI_OK)
			goto out;
	}
	if (util_read_file(in, AMP_BODY_MAX, &body, &body_len) != 0) {
		cli_err(env, "%s: %s", strcmp(in, "-") == 0 ? "standard input" : in,
			errno == EFBIG ? "message is larger than 32 MiB"
				       : strerror(errno));
		r = CLI_FAIL;
		goto out;
	}
	if ((r = cli_load_identity(env, &me)) != CLI_OK)
		goto out;
	const char *detail = NULL;
	amp_err e = amp_seal(NULL, me, rcpt, n, &params, body, body_len,
			     &env_bytes, &env_len, &detail);
	if (e != AMP_OK) {
		r = cli_fail(env, "seal", e, detail);
		goto out;
	}
	if (armor) {
		if (amp_armor_encode(env_bytes, env_len, &text, &text_len) != AMP_OK) {
			cli_err(env, "out of memory");
			r = CLI_FAIL;
			goto out;
		}
		r = cli_write_out(env, out, text, text_len, 0644, 0);
	} else {
		r = cli_write_out(env, out, env_bytes, env_len, 0644, 0);
	}
out:
	amp_identity_destroy(&me);
	if (body != NULL)
		sodium_memzero(body, body_len);
	free(body);
	amp_free(env_bytes);
	amp_free(text);
	free(dids);
	free(rcpt);
	return r;
}

/* Read an envelope (binary or armoured) and decode it. */
static int load_envelope(cli_env *env, const char *in, amp_envelope **env_r)
{
	uint8_t *raw, *bin = NULL;
	size_t raw_len, bin_len;
	const char *detail = NULL;
	const char *name = strcmp(in, "-") == 0 ? "standard input" : in;
	if (util_read_file(in, ENVELOPE_INPUT_MAX, &raw, &raw_len) != 0)
		return cli_fail(env, name, errno == EFBIG ? AMP_E_TOO_LARGE : AMP_E_IO,
				errno == EFBIG ? "envelope is larger than 48 MiB"
					       : strerror(errno));
	amp_err e = AMP_OK;
	if (amp_armor_detect(raw, raw_len)) {
		e = amp_armor_decode(raw, raw_len, &bin, &bin_len, &detail);
		if (e == AMP_OK)
			e = amp_envelope_decode(bin, bin_len, env_r, &detail);
	} else {
		e = amp_envelope_decode(raw, raw_len, env_r, &detail);
	}
	free(raw);
	free(bin);
	return e == AMP_OK ? CLI_OK : cli_fail(env, name, e, detail);
}

static void print_info(FILE *f, const amp_envelope *envl)
{
	amp_envelope_info info;
	char id_hex[AMP_ENVELOPE_ID_BYTES * 2 + 1];
	amp_envelope_get_info(envl, &info);
	sodium_bin2hex(id_hex, sizeof(id_hex), info.envelope_id,
		       AMP_ENVELOPE_ID_BYTES);
	fprintf(f, "envelope     %s\nsender       %s\n", id_hex, info.sender);
	for (size_t i = 0; i < info.n_recipients; i++)
		fprintf(f, "recipient    %s\n", amp_envelope_recipient(envl, i));
	fprintf(f, "created      %llu\nexpires      %llu%s\nlane         %s\n"
		   "content-type %s\npadded-size  %llu\n",
		(unsigned long long)info.created,
		(unsigned long long)info.expires,
		info.expires == 0 ? " (never)" : "", lane_name(info.lane),
		info.content_type, (unsigned long long)info.padded_size);
}

/* Shared option loop of open and verify. */
static int parse_in_out(cli_env *env, int argc, char **argv, const char *help,
			const char **in, const char **out, bool *info)
{
	static const struct option opts[] = {
		CLI_COMMON_LONGOPTS,
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "info", no_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = cli_next_opt(env, argc, argv, "hi:o:", opts)) != -1) {
		switch (c) {
		case 'i': *in = optarg; break;
		case 'o': *out = optarg; break;
		case 'I': *info = true; break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			cli_usage_hint(env);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		cli_usage_hint(env);
		return CLI_USAGE;
	}
	return CLI_OK;
}

int cmd_open(cli_env *env, int argc, char **argv)
{
	const char *in = "-", *out = "-", *detail = NULL;
	bool info = false;
	int r = parse_in_out(env, argc, argv, open_help, &in, &out, &info);
	if (r != CLI_OK)
		return r < 0 ? CLI_OK : r;
	amp_public_identity mine, sender;
	amp_envelope *envl = NULL;
	amp_identity *me = NULL;
	if (cli_load_public(env, &mine) != CLI_OK ||
	    load_envelope(env, in, &envl) != CLI_OK)
		return CLI_FAIL;
	amp_envelope_info hdr;
	amp_envelope_get_info(envl, &hdr);
	if (info)
		print_info(stderr, envl);
	uint8_t *body = NULL;
	size_t body_len = 0;
	r = cli_resolve(env, hdr.sender, &mine, &sender);
	if (r == CLI_OK)
		r = cli_load_identity(env, &me);
	if (r == CLI_OK) {
		amp_err e = amp_envelope_open(NULL, envl, me, &sender, 0, &body,
					      &body_len, &detail);
		if (e != AMP_OK)
			r = cli_fail(env, strcmp(in, "-") == 0 ? "standard input" : in,
				     e, detail);
	}
	if (r == CLI_OK)
		r = cli_write_out(env, out, body, body_len, 0600, 0);
	if (body != NULL) {
		sodium_memzero(body, body_len);
		free(body);
	}
	amp_identity_destroy(&me);
	amp_envelope_free(&envl);
	return r;
}

int cmd_verify(cli_env *env, int argc, char **argv)
{
	const char *in = "-", *out = "-", *detail = NULL;
	bool info = true;
	int r = parse_in_out(env, argc, argv, verify_help, &in, &out, &info);
	if (r != CLI_OK)
		return r < 0 ? CLI_OK : r;
	if (strcmp(out, "-") != 0) {
		cli_err(env, "verify writes nothing but its report; -o is not "
			     "an option of verify");
		return CLI_USAGE;
	}
	amp_public_identity sender;
	amp_public_identity mine, *minep = NULL;
	amp_envelope *envl = NULL;
	if (load_envelope(env, in, &envl) != CLI_OK)
		return CLI_FAIL;
	/* Our own identity is optional for verify. */
	char ks[PATH_MAX];
	const char *ks_path = cli_keystore_path(env, ks);
	if (ks_path == NULL) {
		amp_envelope_free(&envl);
		return CLI_FAIL;
	}
	if (env->keystore[0] != '\0' || access(ks_path, R_OK) == 0) {
		if (cli_load_public(env, &mine) != CLI_OK) {
			amp_envelope_free(&envl);
			return CLI_FAIL;
		}
		minep = &mine;
	}
	amp_envelope_info hdr;
	amp_envelope_get_info(envl, &hdr);
	r = cli_resolve(env, hdr.sender, minep, &sender);
	if (r == CLI_OK) {
		amp_err e = amp_envelope_verify(envl, &sender, 0, &detail);
		if (e != AMP_OK)
			r = cli_fail(env, strcmp(in, "-") == 0 ? "standard input" : in,
				     e, detail);
	}
	if (r == CLI_OK) {
		print_info(stdout, envl);
		printf("signature    good (%s)\n", hdr.sender);
	}
	amp_envelope_free(&envl);
	return r;
}
