/*
 * amp.c — entry point of the `amp` command: dispatches to the
 * subcommands (cmd-*.c) and prints the top-level help.
 */
#include "cli.h"

#include <string.h>

#define AMP_VERSION "0.1.0"

static const char usage[] =
	"Usage: amp [COMMAND] [OPTIONS]\n"
	"\n"
	"amp is the command line of AfterSMTP: it makes identities, seals and\n"
	"opens end-to-end encrypted envelopes, and mints registration proofs\n"
	"of work, and talks to AfterSMTP nodes.  Private keys stay in a\n"
	"passphrase-protected keystore.\n"
	"\n"
	"Commands:\n"
	"  keygen            create an identity (DID and keys) in the keystore\n"
	"  did show          print our DID and key ids\n"
	"  did document      print our DID document (W3C DID Core JSON)\n"
	"  did import FILE   remember another identity's DID document\n"
	"  did list          list remembered identities\n"
	"  did check DID     check a DID's syntax and print its canonical form\n"
	"  did resolve DID   a DID's keys and their proven key history\n"
	"  key rotate        new keys for our identity, logged by the node\n"
	"  key revoke        end our identity for good\n"
	"  seal --to DID     encrypt and sign a message for one or more DIDs\n"
	"  open              verify and decrypt an envelope addressed to us\n"
	"  verify            check an envelope's signature without decrypting\n"
	"  pow mint          mint a registration proof-of-work stamp\n"
	"  pow check STAMP   check a stamp against an identity\n"
	"  register          register our identity with its home node\n"
	"  send DID...       seal a message and send it through the home node\n"
	"  fetch             fetch, verify and open our mail (Maildir or mbox)\n"
	"  inbox             list the messages waiting on the node\n"
	"  ack SEQ...        delete messages from the node\n"
	"  lookup DID|ADDRESS\n"
	"                    a DID's document (or the identity an address\n"
	"                    names) through the node\n"
	"  bridge run|password|status\n"
	"                    the local bridge: our AMP mail over IMAP and SMTP\n"
	"                    submission on 127.0.0.1, for ordinary mail clients\n"
	"  log head|verify|monitor|proof|consistency\n"
	"                    check the home node's transparency log: its\n"
	"                    signed head, a full audit, watching a DID's keys,\n"
	"                    proofs (docs/transparency.md); (operator) log\n"
	"                    status|alarms|sign through the admin socket\n"
	"  receipt get|verify\n"
	"                    a node's proof that it accepted an envelope, and\n"
	"                    its offline check\n"
	"  admin invite      (operator) print a one-time registration invite\n"
	"  map add|del|list|test|reload\n"
	"                    (operator) change and query the running node's\n"
	"                    lookup tables (access, aliases, relay domains, ...)\n"
	"  queue list|show|flush|hold|release|delete|stats\n"
	"                    (operator) look at and act on the node's outbound\n"
	"                    mail queue\n"
	"  dkim keygen       (operator) make a DKIM signing key and print its\n"
	"                    DNS TXT record\n"
	"  help COMMAND      show the help of a command (same as COMMAND --help)\n"
	"  version           print the version\n"
	"\n"
	"Environment:\n"
	"  AMP_HOME        state directory (default ~/.amp): keystore.json and\n"
	"                  known/DID.json, the DID documents of other identities\n"
	"  AMP_KEYSTORE    keystore file (default $AMP_HOME/keystore.json)\n"
	"  AMP_PASSPHRASE  keystore passphrase (else --passphrase-fd or a prompt)\n"
	"\n"
	"Exit status: 0 success, 1 failure, 2 usage error.\n"
	"\n"
	"Example:\n"
	"  amp keygen --did did:aftersmtp:example.org:alice\n"
	"  amp did document > alice.json      # give this to your correspondents\n"
	"  amp did import bob.json\n"
	"  amp seal --to did:aftersmtp:example.org:bob -i note.eml -o note.amp\n"
	"\n"
	"See docs/amp.md for the full manual.\n";

int main(int argc, char **argv)
{
	cli_env env;

	if (amp_init() != AMP_OK) {
		fprintf(stderr, "amp: cannot initialise libsodium\n");
		return CLI_FAIL;
	}
	if (cli_env_init(&env) != CLI_OK)
		return CLI_FAIL;
	if (argc < 2 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("amp %s (AMP protocol version %u)\n", AMP_VERSION,
		       AMP_PROTOCOL_VERSION);
		return CLI_OK;
	}
	/* "amp help seal" is "amp seal --help". */
	char *help_argv[5];
	if (strcmp(cmd, "help") == 0) {
		if (argc < 3) {
			fputs(usage, stdout);
			return CLI_OK;
		}
		int k = 0;
		help_argv[k++] = argv[0];
		help_argv[k++] = argv[2];
		if (argc > 3)
			help_argv[k++] = argv[3];
		help_argv[k++] = (char *)"--help";
		help_argv[k] = NULL;
		argv = help_argv;
		argc = k;
		cmd = argv[1];
	}
	static const struct {
		const char *name;
		int (*fn)(cli_env *, int, char **);
	} cmds[] = {
		{ "keygen", cmd_keygen }, { "did", cmd_did },
		{ "key", cmd_key },
		{ "seal", cmd_seal },     { "open", cmd_open },
		{ "verify", cmd_verify }, { "pow", cmd_pow },
		{ "register", cmd_register }, { "send", cmd_send },
		{ "fetch", cmd_fetch },   { "inbox", cmd_inbox },
		{ "ack", cmd_ack },       { "lookup", cmd_lookup },
		{ "admin", cmd_admin },   { "map", cmd_map },
		{ "dkim", cmd_dkim },     { "queue", cmd_queue },
		{ "log", cmd_log },       { "receipt", cmd_receipt },
		{ "bridge", cmd_bridge },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) == 0) {
			env.cmd = cmds[i].name;
			return cmds[i].fn(&env, argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "amp: unknown command '%s' (try `amp --help`)\n", cmd);
	return CLI_USAGE;
}
