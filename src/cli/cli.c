/*
 * cli.c — shared machinery of the `amp` command (see cli.h): environment,
 * errors, passphrases, keystore loading and DID resolution.
 */
#include "cli.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASS_MAX 1024u
#define KEYSTORE_FILE_MAX (64u * 1024u)

int cli_env_init(cli_env *env)
{
	memset(env, 0, sizeof(*env));
	env->passphrase_fd = -1;
	const char *home = getenv("AMP_HOME");
	int n;
	if (home != NULL && *home != '\0') {
		n = snprintf(env->home, sizeof(env->home), "%s", home);
	} else {
		const char *h = getenv("HOME");
		n = snprintf(env->home, sizeof(env->home), "%s/.amp",
			     h != NULL && *h != '\0' ? h : ".");
	}
	if (n < 0 || (size_t)n >= sizeof(env->home)) {
		fprintf(stderr, "amp: AMP_HOME path is too long\n");
		return CLI_FAIL;
	}
	const char *ks = getenv("AMP_KEYSTORE");
	if (ks != NULL && *ks != '\0')
		n = snprintf(env->keystore, sizeof(env->keystore), "%s", ks);
	else
		env->keystore[0] = '\0'; /* derived from home when needed */
	if (n < 0 || (size_t)n >= sizeof(env->keystore)) {
		fprintf(stderr, "amp: AMP_KEYSTORE path is too long\n");
		return CLI_FAIL;
	}
	return CLI_OK;
}

const char *cli_keystore_path(const cli_env *env, char buf[PATH_MAX])
{
	if (env->keystore[0] != '\0')
		return env->keystore;
	int n = snprintf(buf, PATH_MAX, "%s/keystore.json", env->home);
	if (n < 0 || n >= PATH_MAX) {
		cli_err(env, "keystore path is too long");
		return NULL;
	}
	return buf;
}

/* Handle a common option. 1: handled; 0: not common; -1: bad value. */
static int common_opt(cli_env *env, int c, const char *arg)
{
	uint64_t v;
	int n;
	switch (c) {
	case OPT_HOME:
		n = snprintf(env->home, sizeof(env->home), "%s", arg);
		return n >= 0 && (size_t)n < sizeof(env->home) ? 1 : -1;
	case OPT_KEYSTORE:
		n = snprintf(env->keystore, sizeof(env->keystore), "%s", arg);
		return n >= 0 && (size_t)n < sizeof(env->keystore) ? 1 : -1;
	case OPT_PASSFD:
		if (!util_parse_u64(arg, 0, 1023, &v))
			return -1;
		env->passphrase_fd = (int)v;
		return 1;
	case OPT_DOC:
		if (env->n_docs == sizeof(env->docs) / sizeof(env->docs[0]))
			return -1;
		env->docs[env->n_docs++] = arg;
		return 1;
	default:
		return 0;
	}
}

int cli_next_opt(cli_env *env, int argc, char **argv, const char *shorts,
		 const struct option *longs)
{
	for (;;) {
		int c = getopt_long(argc, argv, shorts, longs, NULL);
		if (c == -1 || c == '?')
			return c;
		int r = common_opt(env, c, optarg);
		if (r == 0)
			return c;
		if (r < 0) {
			cli_err(env, "invalid value '%s'", optarg);
			return '?';
		}
	}
}

void cli_usage_hint(const cli_env *env)
{
	fprintf(stderr, "Try 'amp %s --help' for the options.\n", env->cmd);
}

void cli_err(const cli_env *env, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "amp: %s: ", env->cmd != NULL ? env->cmd : "error");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_fail(const cli_env *env, const char *what, amp_err e,
	     const char *detail)
{
	cli_err(env, "%s: %s: %s", what, amp_err_name(e),
		detail != NULL ? detail : amp_strerror(e));
	return CLI_FAIL;
}

/* Read one line (without the newline) of at most PASS_MAX bytes from fd. */
static int read_pass_line(int fd, char *buf, size_t *len_r)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (n == PASS_MAX) {
			errno = EFBIG;
			return -1;
		}
		buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len_r = n;
	return 0;
}

/* Terminal state while echo is off, for the signal handler to restore. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };

static void tty_restore_and_reraise(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Ask on the controlling terminal with echo off.  Echo comes back on every
 * path, also when a signal (Ctrl-C, Ctrl-Z, hang-up) ends the prompt. */
static int prompt_tty(const char *prompt, char *buf, size_t *len_r)
{
	struct sigaction sa, old_sa[sizeof(tty_signals) / sizeof(tty_signals[0])];
	struct termios noecho;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (tcgetattr(fd, &tty_saved) != 0) {
		close(fd);
		return -1; /* not a terminal: never ask with echo on */
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_restore_and_reraise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
		sigaction(tty_signals[i], &sa, &old_sa[i]);
	tty_fd = fd;
	noecho = tty_saved;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	int r = tcsetattr(fd, TCSAFLUSH, &noecho);
	if (r == 0)
		r = util_write_all(fd, prompt, strlen(prompt));
	if (r == 0)
		r = read_pass_line(fd, buf, len_r);
	tcsetattr(fd, TCSAFLUSH, &tty_saved);
	tty_fd = -1;
	for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++)
		sigaction(tty_signals[i], &old_sa[i], NULL);
	if (util_write_all(fd, "\n", 1) != 0)
		r = -1;
	close(fd);
	return r;
}

void cli_passphrase_free(char **pass, size_t len)
{
	(void)len;
	if (pass != NULL && *pass != NULL) {
		sodium_free(*pass); /* wipes */
		*pass = NULL;
	}
}

int cli_passphrase(const cli_env *env, bool confirm, char **pass_r,
		   size_t *len_r)
{
	char *buf = sodium_malloc(PASS_MAX + 1);
	size_t len = 0;
	if (buf == NULL) {
		cli_err(env, "cannot allocate secure memory for the passphrase");
		return CLI_FAIL;
	}
	const char *envpass = getenv("AMP_PASSPHRASE");
	if (env->passphrase_fd >= 0) {
		if (read_pass_line(env->passphrase_fd, buf, &len) != 0) {
			cli_err(env, "cannot read the passphrase from fd %d: %s",
				env->passphrase_fd, strerror(errno));
			sodium_free(buf);
			return CLI_FAIL;
		}
	} else if (envpass != NULL) {
		len = strlen(envpass);
		if (len > PASS_MAX) {
			cli_err(env, "AMP_PASSPHRASE is longer than %u bytes",
				PASS_MAX);
			sodium_free(buf);
			return CLI_FAIL;
		}
		memcpy(buf, envpass, len + 1);
	} else {
		if (prompt_tty("Keystore passphrase: ", buf, &len) != 0) {
			cli_err(env, "no passphrase: no terminal to ask on "
				     "(use --passphrase-fd or AMP_PASSPHRASE)");
			sodium_free(buf);
			return CLI_FAIL;
		}
		if (confirm) {
			char *again = sodium_malloc(PASS_MAX + 1);
			size_t alen = 0;
			int r = again == NULL ? -1
					      : prompt_tty("Repeat passphrase: ",
							   again, &alen);
			bool same = r == 0 && alen == len &&
				    sodium_memcmp(buf, again, len) == 0;
			if (again != NULL)
				sodium_free(again);
			if (!same) {
				cli_err(env, "the passphrases differ");
				sodium_free(buf);
				return CLI_FAIL;
			}
		}
	}
	if (len == 0) {
		cli_err(env, "the passphrase is empty");
		sodium_free(buf);
		return CLI_FAIL;
	}
	*pass_r = buf;
	*len_r = len;
	return CLI_OK;
}

static int read_keystore(const cli_env *env, char **text_r, size_t *len_r,
			 const char **path_r)
{
	static char pbuf[PATH_MAX];
	const char *path = cli_keystore_path(env, pbuf);
	uint8_t *text;
	if (path == NULL)
		return CLI_FAIL;
	if (util_read_file(path, KEYSTORE_FILE_MAX, &text, len_r) != 0) {
		if (errno == ENOENT)
			cli_err(env, "%s: no keystore (create one with "
				     "`amp keygen --did DID`)", path);
		else
			cli_err(env, "%s: %s", path, strerror(errno));
		return CLI_FAIL;
	}
	*text_r = (char *)text;
	*path_r = path;
	return CLI_OK;
}

int cli_load_public(const cli_env *env, amp_public_identity *pub_r)
{
	char *text;
	size_t len;
	const char *path, *detail = NULL;
	if (read_keystore(env, &text, &len, &path) != CLI_OK)
		return CLI_FAIL;
	amp_err e = amp_keystore_public(text, len, pub_r, &detail);
	free(text);
	return e == AMP_OK ? CLI_OK : cli_fail(env, path, e, detail);
}

#define RETIRED_MAX 64u

int cli_load_identities(const cli_env *env, amp_identity **id_r,
			amp_identity ***retired_r, size_t *n_r)
{
	char *text, *pass;
	size_t len, plen;
	const char *path, *detail = NULL;
	*retired_r = NULL;
	*n_r = 0;
	if (read_keystore(env, &text, &len, &path) != CLI_OK)
		return CLI_FAIL;
	if (cli_passphrase(env, false, &pass, &plen) != CLI_OK) {
		free(text);
		return CLI_FAIL;
	}
	amp_err e = amp_keystore_open(text, len, pass, plen, id_r, &detail);
	free(text);
	if (e != AMP_OK) {
		cli_passphrase_free(&pass, plen);
		return cli_fail(env, path, e, detail);
	}
	/* The keystores `amp key rotate` kept, newest first. */
	amp_identity **ret = calloc(RETIRED_MAX, sizeof(*ret));
	size_t n = 0;
	for (unsigned v = RETIRED_MAX; ret != NULL && v-- > 0;) {
		char rp[PATH_MAX + 16];
		uint8_t *rt;
		size_t rlen;
		snprintf(rp, sizeof(rp), "%s.v%u", path, v);
		if (util_read_file(rp, KEYSTORE_FILE_MAX, &rt, &rlen) != 0)
			continue;
		amp_identity *old = NULL;
		if (amp_keystore_open((const char *)rt, rlen, pass, plen, &old,
				      &detail) == AMP_OK &&
		    strcmp(old->pub.did, (*id_r)->pub.did) == 0)
			ret[n++] = old;
		else {
			amp_identity_destroy(&old);
			cli_err(env, "warning: %s: cannot open the retired keystore "
				"with this passphrase", rp);
		}
		free(rt);
	}
	cli_passphrase_free(&pass, plen);
	*retired_r = ret;
	*n_r = n;
	return CLI_OK;
}

void cli_identities_free(amp_identity ***retired, size_t n)
{
	for (size_t i = 0; *retired != NULL && i < n; i++)
		amp_identity_destroy(&(*retired)[i]);
	free(*retired);
	*retired = NULL;
}

int cli_load_identity(const cli_env *env, amp_identity **id_r)
{
	char *text, *pass;
	size_t len, plen;
	const char *path, *detail = NULL;
	if (read_keystore(env, &text, &len, &path) != CLI_OK)
		return CLI_FAIL;
	if (cli_passphrase(env, false, &pass, &plen) != CLI_OK) {
		free(text);
		return CLI_FAIL;
	}
	amp_err e = amp_keystore_open(text, len, pass, plen, id_r, &detail);
	cli_passphrase_free(&pass, plen);
	free(text);
	return e == AMP_OK ? CLI_OK : cli_fail(env, path, e, detail);
}

int cli_read_doc(const cli_env *env, const char *path,
		 amp_public_identity *pub_r)
{
	uint8_t *text;
	size_t len;
	const char *detail = NULL;
	if (util_read_file(path, AMP_DIDDOC_MAX, &text, &len) != 0)
		return errno == EFBIG
			       ? cli_fail(env, path, AMP_E_TOO_LARGE,
					  "DID document is larger than 64 KiB")
			       : cli_fail(env, path, AMP_E_IO, strerror(errno));
	amp_err e = amp_did_document_parse((const char *)text, len, pub_r,
					   &detail);
	free(text);
	return e == AMP_OK ? CLI_OK : cli_fail(env, path, e, detail);
}

int cli_doc_find(cli_env *env, const char *did, amp_public_identity *pub_r)
{
	if (!env->docs_loaded) {
		for (size_t i = 0; i < env->n_docs; i++) {
			if (cli_read_doc(env, env->docs[i], &env->doc_ids[i]) != CLI_OK)
				return CLI_FAIL;
		}
		env->docs_loaded = true;
	}
	for (size_t i = 0; i < env->n_docs; i++) {
		if (strcmp(env->doc_ids[i].did, did) == 0) {
			*pub_r = env->doc_ids[i];
			return CLI_OK;
		}
	}
	return CLI_NOT_FOUND;
}

int cli_resolve(cli_env *env, const char *did,
		const amp_public_identity *me, amp_public_identity *pub_r)
{
	int r = cli_doc_find(env, did, pub_r);
	if (r != CLI_NOT_FOUND)
		return r;
	if (me != NULL && strcmp(me->did, did) == 0) {
		*pub_r = *me;
		return CLI_OK;
	}
	/* A canonical DID has no '/', so it is safe as a file name. */
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/known/%s.json", env->home, did);
	if (n < 0 || (size_t)n >= sizeof(path) || access(path, R_OK) != 0) {
		cli_err(env, "%s: unknown identity; import its DID document "
			     "with `amp did import FILE` or pass --doc FILE",
			did);
		return CLI_FAIL;
	}
	if (cli_read_doc(env, path, pub_r) != CLI_OK)
		return CLI_FAIL;
	if (strcmp(pub_r->did, did) != 0) {
		cli_err(env, "%s: holds the document of %s, not of %s; "
			     "re-import the right document", path, pub_r->did, did);
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_write_out(const cli_env *env, const char *path, const void *data,
		  size_t len, mode_t mode, int flags)
{
	if (util_write_file_atomic(path, data, len, mode, flags) != 0) {
		cli_err(env, "%s: cannot write: %s",
			strcmp(path, "-") == 0 ? "standard output" : path,
			errno == EEXIST ? "it already exists" : strerror(errno));
		return CLI_FAIL;
	}
	return CLI_OK;
}

bool cli_kdf_parse(const char *s, amp_kdf_level *level_r)
{
	static const struct {
		const char *name;
		amp_kdf_level level;
	} levels[] = {
		{ "interactive", AMP_KDF_INTERACTIVE },
		{ "moderate", AMP_KDF_MODERATE },
		{ "sensitive", AMP_KDF_SENSITIVE },
		{ "min", AMP_KDF_MIN },
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(s, levels[i].name) == 0) {
			*level_r = levels[i].level;
			return true;
		}
	return false;
}
