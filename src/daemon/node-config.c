/*
 * node-config.c — the configuration schema of aftersmtpd.  Every key the
 * daemon reads is declared here with its type, default, range, reload
 * behaviour and documentation; docs/CONFIG.md is generated from this table
 * (`aftersmtpd config-reference`) and a test fails when they differ.
 */
#include "node.h"

static const cfg_key keys[] = {
	{ "data_dir", CFG_STRING, "/var/lib/aftersmtp", 0, 0, false,
	  "Directory of the node's keys, certificate and store (created 0700 "
	  "by `aftersmtpd init`)." },
	{ "domains", CFG_LIST, "localhost", 0, 0, false,
	  "Domains this node serves, comma- or space-separated. The first one "
	  "names the node: its identity is did:aftersmtp:<first>:node." },
	{ "node_key_passphrase_file", CFG_STRING, "", 0, 0, false,
	  "File holding the passphrase of node.key. Empty: <data_dir>/node.pass, "
	  "generated at init. Point it at a systemd credential or another "
	  "protected file to keep the passphrase away from the data directory." },
	{ "tls_cert_days", CFG_INT, "3650", 1, 36500, false,
	  "Validity in days of the self-signed certificate made at init "
	  "(clients authenticate the node by its node key, not by X.509)." },
};

const cfg_schema node_schema = { "aftersmtpd", keys, sizeof(keys) / sizeof(keys[0]) };
