/*
 * cli-conn.c — connecting to the home node, for every `amp` command that
 * talks to one: HOME/client.conf (written by `amp register`), the
 * connection options, and authentication as our identity.
 */
#include "cli.h"

#include "client.h"
#include "amp-private.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cfg_key client_keys[] = {
	{ "node", CFG_STRING, "", 0, 0, false, "HOST:PORT of the home node." },
	{ "transport", CFG_STRING, "quic", 0, 0, false, "quic or tls." },
	{ "node_key", CFG_STRING, "", 0, 0, false,
	  "The node's Ed25519 signing key (base64url), checked on every "
	  "connection." },
	{ "node_did", CFG_STRING, "", 0, 0, false, "The node's DID." },
};
static const cfg_schema client_schema = {
	"amp client", client_keys, sizeof(client_keys) / sizeof(client_keys[0])
};


static bool split_hostport(const char *s, char *host, size_t hostlen,
			   uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	uint64_t p;
	size_t hl;
	if (colon == NULL || !util_parse_u64(colon + 1, 1, 65535, &p))
		return false;
	const char *h = s;
	hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return true;
}

int cli_client_conf_path(const cli_env *env, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/client.conf", env->home);
	return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* Load client.conf (missing: defaults). */
int cli_load_client_conf(const cli_env *env, cfg **c_r)
{
	char path[PATH_MAX];
	cfg_errors errs;
	uint8_t *text;
	size_t len;
	if (cli_client_conf_path(env, path) != 0)
		return CLI_FAIL;
	if (util_read_file(path, CFG_FILE_MAX, &text, &len) != 0) {
		if (errno != ENOENT) {
			cli_err(env, "%s: %s", path, strerror(errno));
			return CLI_FAIL;
		}
		return cfg_defaults(&client_schema, c_r, &errs) == 0 ? CLI_OK : CLI_FAIL;
	}
	int r = cfg_parse(&client_schema, (const char *)text, len, c_r, &errs);
	free(text);
	if (r != 0) {
		cfg_print_errors(&errs, path, stderr);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Connect to the home node: options over client.conf. */
int cli_connect_node(cli_env *env, const cli_conn_opts *co, nclient **c_r)
{
	cfg *cc;
	if (cli_load_client_conf(env, &cc) != CLI_OK)
		return CLI_FAIL;
	const char *node = co->node != NULL ? co->node : cfg_str(cc, "node");
	const char *tname = co->transport != NULL ? co->transport
						  : cfg_str(cc, "transport");
	const char *key = co->node_key != NULL ? co->node_key : cfg_str(cc, "node_key");
	char host[256];
	uint8_t pin[32];
	nclient_opts o = { .timeout_ms = co->timeout_ms };
	int r = CLI_FAIL;
	if (*node == '\0') {
		cli_err(env, "no node: give --node HOST:PORT or run `amp register` "
			"first");
		goto out;
	}
	if (!split_hostport(node, host, sizeof(host), &o.port)) {
		cli_err(env, "'%s' is not HOST:PORT", node);
		goto out;
	}
	o.host = host;
	if (!nclient_transport_parse(tname, &o.transport)) {
		cli_err(env, "transport must be quic or tls");
		goto out;
	}
	if (*key != '\0') {
		if (!amp_b64u_decode_exact(key, pin, sizeof(pin))) {
			cli_err(env, "the node key is not a base64url Ed25519 key");
			goto out;
		}
		o.pin_sign_pk = pin;
	}
	const char *err = NULL;
	if (nclient_connect(&o, c_r, &err) != 0) {
		cli_err(env, "%s (%s): %s", node, nclient_transport_name(o.transport),
			err);
		goto out;
	}
	r = CLI_OK;
out:
	cfg_free(&cc);
	return r;
}

int cli_connect_auth(cli_env *env, const cli_conn_opts *co, amp_identity **id_r,
			nclient **c_r)
{
	const char *err = NULL;
	if (cli_load_identity(env, id_r) != CLI_OK)
		return CLI_FAIL;
	if (cli_connect_node(env, co, c_r) != CLI_OK) {
		amp_identity_destroy(id_r);
		return CLI_FAIL;
	}
	if (nclient_auth(*c_r, *id_r, NULL, &err) != 0) {
		cli_err(env, "authentication: %s", err);
		nclient_close(c_r);
		amp_identity_destroy(id_r);
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_parse_conn_opt(cli_env *env, int c, cli_conn_opts *co)
{
	uint64_t v;
	switch (c) {
	case 'N': co->node = optarg; return 1;
	case 'T': co->transport = optarg; return 1;
	case 'K': co->node_key = optarg; return 1;
	case 'W':
		if (!util_parse_u64(optarg, 1, 3600, &v)) {
			cli_err(env, "--timeout must be 1-3600 seconds");
			return -1;
		}
		co->timeout_ms = (unsigned)v * 1000u;
		return 1;
	}
	return 0;
}

