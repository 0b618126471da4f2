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
	{ "listen", CFG_LIST, "127.0.0.1", 0, 0, false,
	  "Addresses to listen on (numeric IPv4 or IPv6), each for QUIC on UDP "
	  "and TLS on TCP at `port`. `::` alone serves every IPv4 and IPv6 "
	  "address on Linux (do not add 0.0.0.0 beside it)." },
	{ "port", CFG_INT, "4434", 0, 65535, false,
	  "Port of both AMP transports (UDP for QUIC, TCP for TLS). 0 picks a "
	  "free port (logged at start; for tests)." },
	{ "transports", CFG_LIST, "quic tls", 0, 0, false,
	  "Which transports to serve: quic, tls or both." },
	{ "user", CFG_STRING, "aftersmtp", 0, 0, false,
	  "When started as root, the node gives data_dir to this user and "
	  "switches to it (and its group) after binding its ports "
	  "(scripts/bootstrap.sh creates the system account `aftersmtp`). "
	  "Ignored when not started as root. Empty: a root node refuses to "
	  "start." },
	{ "log_level", CFG_STRING, "info", 0, 0, true,
	  "Least level logged: debug, info, notice, warn, err, crit." },
	{ "pow_bits", CFG_INT, "22", 8, 40, true,
	  "Proof-of-work difficulty RegisterIdentity demands without an invite "
	  "(each bit doubles the sender's work; 22 is about 4 million hashes, "
	  "a few seconds on one core)." },
	{ "max_connections", CFG_INT, "10000", 1, 1000000, false,
	  "Connections at once, both transports together." },
	{ "max_connections_per_ip", CFG_INT, "100", 1, 1000000, false,
	  "Connections at once from one IP address." },
	{ "max_streams", CFG_INT, "32", 1, 1000, false,
	  "Requests in progress at once on one connection (QUIC streams, or "
	  "pipelined TLS requests; more are not read until one finishes)." },
	{ "max_frame", CFG_SIZE, "49216k", 65536, 50397184, false,
	  "Largest frame accepted after authentication (before it, 64 KiB). "
	  "The default fits the largest envelope (48 MiB)." },
	{ "max_message_size", CFG_SIZE, "48m", 1024, 50331648, true,
	  "Largest envelope DeliverMessage accepts (TOO_LARGE above)." },
	{ "idle_timeout", CFG_DURATION, "120s", 5, 86400, false,
	  "A connection with no request in progress for this long is closed." },
	{ "handshake_timeout", CFG_DURATION, "10s", 1, 600, false,
	  "Time a new connection has to finish its TLS handshake." },
	{ "rate_per_ip", CFG_INT, "200", 1, 10000000, true,
	  "Requests per second from one IP address (token bucket, burst of "
	  "twice this); beyond it: RATE_LIMITED." },
	{ "rate_per_identity", CFG_INT, "100", 1, 10000000, true,
	  "Requests per second of one authenticated identity (burst twice)." },
	{ "workers", CFG_INT, "0", 0, 256, false,
	  "Threads for CPU-heavy work (signature checks, sealing notices). "
	  "0: one per core." },
	{ "max_jobs", CFG_INT, "4096", 1, 1000000, true,
	  "Requests waiting for or in the worker pool; beyond it: RETRY_LATER." },
	{ "fetch_wait_max", CFG_DURATION, "60s", 0, 3600, true,
	  "Longest a FetchInbox long poll may wait for new mail." },
	{ "transport_map", CFG_STRING, "", 0, 0, true,
	  "File of peer routes, one per line: `DOMAIN HOST:PORT [TRANSPORT] "
	  "[key=NODE_SIGNING_KEY]`, TRANSPORT being tls (default) or quic. A "
	  "route overrides DNS SRV; key= pins the peer node's key. Empty: DNS "
	  "only." },
	{ "relay_threads", CFG_INT, "2", 1, 64, false,
	  "Threads delivering the relay queue to peer nodes." },
	{ "relay_retry_min", CFG_DURATION, "30s", 1, 86400, true,
	  "First retry delay of a failed relay; it doubles (with jitter) each "
	  "attempt up to relay_retry_max." },
	{ "relay_retry_max", CFG_DURATION, "1h", 1, 604800, true,
	  "Longest delay between two relay attempts." },
	{ "relay_lifetime", CFG_DURATION, "5d", 60, 2592000, true,
	  "A message that could not be relayed for this long is given up, and "
	  "a signed non-delivery notice goes to the sender's inbox." },
	{ "peer_timeout", CFG_DURATION, "15s", 1, 600, true,
	  "Timeout of one connection or request to a peer node." },
	{ "smtp_listen", CFG_LIST, "", 0, 0, false,
	  "Legacy Bridge, inbound: addresses (numeric IPv4 or IPv6) to accept "
	  "Internet mail on with ESMTP at `smtp_port`, STARTTLS offered. Empty: "
	  "no SMTP listener." },
	{ "smtp_port", CFG_INT, "25", 0, 65535, false,
	  "Port of the SMTP listener (0: any free port, logged at start)." },
	{ "smtps_listen", CFG_LIST, "", 0, 0, false,
	  "Addresses for SMTP over implicit TLS (RFC 8314) at `smtps_port`. "
	  "Empty: none." },
	{ "smtps_port", CFG_INT, "465", 0, 65535, false,
	  "Port of the implicit-TLS SMTP listener (0: any free port)." },
	{ "smtp_hostname", CFG_STRING, "", 0, 0, false,
	  "Name in the SMTP greeting, Received: and Authentication-Results: "
	  "headers. Empty: the first of `domains`." },
	{ "smtp_starttls", CFG_BOOL, "yes", 0, 0, false,
	  "Offer STARTTLS (RFC 3207) on `smtp_listen`." },
	{ "smtp_tls_cert_file", CFG_STRING, "", 0, 0, false,
	  "PEM certificate chain for STARTTLS and implicit TLS. Empty: the "
	  "node's self-signed certificate (good for opportunistic TLS between "
	  "MTAs; set a CA-signed one for clients that check names)." },
	{ "smtp_tls_key_file", CFG_STRING, "", 0, 0, false,
	  "PEM private key of `smtp_tls_cert_file` (read before the privilege "
	  "drop, so it may be readable by root only)." },
	{ "smtp_message_size_limit", CFG_SIZE, "25m", 1024, 33488896, false,
	  "Largest message accepted over SMTP (announced with SIZE; larger ones "
	  "are read to their end and refused with 552 5.3.4)." },
	{ "smtp_memory_limit", CFG_SIZE, "1g", 1048576, 68719476736, false,
	  "Message bytes all SMTP sessions together may hold in memory (the "
	  "text being received and the messages being sealed); a message that "
	  "would go over it is answered 452 4.3.1 and the client retries "
	  "later." },
	{ "smtp_max_connections", CFG_INT, "1000", 1, 100000, false,
	  "SMTP connections at once; more are answered 421 4.3.2 and closed." },
	{ "smtp_max_connections_per_ip", CFG_INT, "50", 1, 100000, false,
	  "SMTP connections at once from one IP address (IPv6: one /64); more "
	  "are answered 421 4.7.0 and closed." },
	{ "smtp_connection_rate_per_ip", CFG_INT, "0", 0, 1000000, false,
	  "New SMTP connections per minute from one IP address (IPv6: one /64); "
	  "more are answered 421 4.7.0. 0: no limit." },
	{ "smtp_message_rate_per_ip", CFG_INT, "0", 0, 1000000, false,
	  "Messages per minute accepted from one IP address; beyond it MAIL is "
	  "answered 450 4.7.0. 0: no limit." },
	{ "smtp_recipient_rate_per_ip", CFG_INT, "0", 0, 10000000, false,
	  "RCPT commands per minute from one IP address (IPv6: one /64); "
	  "beyond it RCPT is answered 450 4.7.0 (dictionary attacks). 0: no "
	  "limit." },
	{ "smtp_recipient_limit", CFG_INT, "1000", 100, 100000, false,
	  "Recipients of one message (RFC 5321 asks for at least 100); the "
	  "extra ones are answered 452 4.5.3 and the earlier ones kept." },
	{ "smtp_timeout", CFG_DURATION, "300s", 1, 3600, false,
	  "How long the server waits for the next command, or for more message "
	  "text (RFC 5321 §4.5.3.2: at least 5 minutes); then 421 4.4.2." },
	{ "smtp_session_max", CFG_DURATION, "1h", 1, 86400, false,
	  "Longest an SMTP session may last; then 421 4.4.2 after the current "
	  "message." },
	{ "smtp_greet_delay", CFG_DURATION, "0", 0, 60, false,
	  "Wait this long before the 220 greeting; a client that talks first "
	  "is refused with 554 5.5.0 (postscreen's pregreet test). 0: greet at "
	  "once." },
	{ "smtp_tls_timeout", CFG_DURATION, "60s", 1, 600, false,
	  "Time a client has to complete the TLS handshake (STARTTLS or "
	  "implicit TLS)." },
	{ "smtp_soft_error_limit", CFG_INT, "10", 0, 1000, false,
	  "Errors in a session after which every reply is delayed by "
	  "`smtp_error_sleep` (tarpit)." },
	{ "smtp_hard_error_limit", CFG_INT, "20", 1, 1000, false,
	  "Errors in a session after which it is closed with 421 4.7.0." },
	{ "smtp_error_sleep", CFG_DURATION, "1s", 0, 60, false,
	  "Delay of each reply once `smtp_soft_error_limit` is passed." },
	{ "smtp_bare_newline", CFG_STRING, "reject", 0, 0, false,
	  "A bare CR or LF in message text: `reject` (550 5.5.2 once the "
	  "message has ended; SMTP smuggling cannot start a second message) or "
	  "`normalize` (turn it into CRLF and accept)." },
	{ "smtp_hopcount_limit", CFG_INT, "50", 1, 1000, false,
	  "Messages with more Received: headers than this are refused with "
	  "554 5.4.6 (a mail loop)." },
	{ "smtp_header_size_limit", CFG_SIZE, "100k", 1024, 16777216, false,
	  "Largest header section (bytes); a larger one is refused with "
	  "552 5.3.4." },
	{ "smtp_header_count_limit", CFG_INT, "1000", 10, 1000000, false,
	  "Most header fields in a message; more are refused with 552 5.3.4." },
	{ "smtp_postmaster", CFG_STRING, "", 0, 0, false,
	  "Where mail for postmaster@ each of `domains` (and the bare "
	  "<Postmaster> of RFC 5321 §4.5.1) goes when virtual_alias_maps has no "
	  "entry for it: a DID or the address of a registered user. Empty: "
	  "such mail is refused (a warning is logged at start)." },
	{ "smtp_relay_networks", CFG_LIST, "", 0, 0, true,
	  "Client networks (CIDR, e.g. 192.0.2.0/24 2001:db8::/32) whose mail "
	  "may go to any destination. Empty: none: only mail for `domains`, "
	  "virtual alias domains and `relay_domains` is accepted. An item that "
	  "is not an address or network refuses the start (or the reload)." },
	{ "access_map", CFG_STRING, "", 0, 0, true,
	  "Access table file (docs/maps.md): client IP, network and host name, "
	  "sender and recipient addresses -> OK, REJECT, DEFER, DISCARD, HOLD. "
	  "Consulted at RCPT after the relay check. Empty: no file. Each of the "
	  "map tables is its file followed by the entries added with `amp map "
	  "add` (kept in <data_dir>/maps.db); a file with an error refuses the "
	  "start, and on reload keeps the tables in force." },
	{ "relay_domains", CFG_STRING, "", 0, 0, true,
	  "Domains (besides `domains`) mail is accepted for and relayed to: a "
	  "list (`example.net, .example.org`), or a table file's absolute path "
	  "(a value starting with /). Empty: none." },
	{ "virtual_alias_maps", CFG_STRING, "", 0, 0, true,
	  "Alias table file: user@domain or @domain -> addresses and DIDs, "
	  "expanded recursively. Empty: no file." },
	{ "virtual_alias_expansion_limit", CFG_INT, "1000", 1, 100000, true,
	  "Most final recipients one address may expand to." },
	{ "virtual_alias_recursion_limit", CFG_INT, "100", 1, 1000, true,
	  "Deepest nesting of aliases." },
	{ "canonical_maps", CFG_STRING, "", 0, 0, true,
	  "Canonical table file: address <-> DID rewriting (inbound: address to "
	  "DID; outbound: DID to address). Empty: none." },
	{ "transport_maps", CFG_STRING, "", 0, 0, true,
	  "Transport table file: domain -> amp:host or smtp:[host]:port, "
	  "overriding DNS for mail leaving through the bridge. Empty: none." },
	{ "dkim_keys", CFG_LIST, "", 0, 0, false,
	  "DKIM signing keys, one per signing domain: `domain:selector:/path/key.pem` "
	  "(`amp dkim keygen` makes the key and prints its TXT record). Mail "
	  "leaving through the gateway, and unsigned mail relayed for "
	  "`smtp_relay_networks`, is signed with the key of its From domain. "
	  "Read before the privilege drop. Empty: nothing is signed." },
	{ "dkim_sign_relayed", CFG_BOOL, "yes", 0, 0, true,
	  "Sign mail relayed for `smtp_relay_networks` (an app server, a "
	  "printer) when its From domain has a key and it carries no signature "
	  "of that domain yet." },
	{ "spf_verify", CFG_BOOL, "yes", 0, 0, false,
	  "Check SPF (RFC 7208) for mail taken in over SMTP: the MAIL FROM "
	  "domain, or the HELO name for a null sender. The result goes into "
	  "the Authentication-Results field and into DMARC." },
	{ "dkim_verify", CFG_BOOL, "yes", 0, 0, false,
	  "Verify the DKIM signatures (RFC 6376, RFC 8463; at most 8 a "
	  "message) of mail taken in over SMTP." },
	{ "dmarc_verify", CFG_BOOL, "yes", 0, 0, false,
	  "Evaluate DMARC (RFC 7489) for mail taken in over SMTP, from the SPF "
	  "and DKIM results and the From domain's published policy." },
	{ "arc_verify", CFG_BOOL, "yes", 0, 0, false,
	  "Validate the ARC chain (RFC 8617) of mail taken in over SMTP and "
	  "record its result (arc=none, pass or fail) in Authentication-Results." },
	{ "didsig_sign", CFG_BOOL, "yes", 0, 0, false,
	  "Put an AMP-DID-Signature field (PROTOCOL.md §12) on mail the "
	  "gateway sends to legacy addresses: the gateway identity's Ed25519 "
	  "signature naming the sending user's DID, which any AfterSMTP node "
	  "verifies through the registry. Added before DKIM signing." },
	{ "didsig_verify", CFG_BOOL, "yes", 0, 0, false,
	  "Verify the AMP-DID-Signature fields of mail taken in over SMTP: the "
	  "signing node's key is looked up (ours locally, another domain's at "
	  "its home node, within auth_timeout; no answer is temperror, never a "
	  "pass) and the result recorded as amp-did in Authentication-Results." },
	{ "arc_trusted_sealers", CFG_LIST, "", 0, 0, false,
	  "Domains (the d= of an ARC-Seal) whose intact chain may override a "
	  "DMARC failure: when DMARC fails but the ARC chain passes and its "
	  "most recent seal is by one of these (a mailing list or forwarder "
	  "you trust), the message is delivered as if DMARC had not failed. "
	  "Empty: no override." },
	{ "arc_seal", CFG_BOOL, "yes", 0, 0, false,
	  "ARC-seal (RFC 8617) mail this node forwards: a message from outside "
	  "whose recipient virtual_alias_maps turns into an address elsewhere, "
	  "or a bounce to one of our SRS addresses. The seal (ARC-Seal, "
	  "ARC-Message-Signature, ARC-Authentication-Results with our "
	  "Authentication-Results) is made with the dkim_keys key of "
	  "`arc_seal_domain` and carries the chain's validation (arc_verify), "
	  "so the next hop can trust what we found. Not sealed: a chain whose "
	  "keys could not be fetched (temperror), mail of relay clients, "
	  "relay_domains (backup MX)." },
	{ "arc_seal_domain", CFG_STRING, "", 0, 0, false,
	  "The d= of our ARC seals; it needs a dkim_keys entry. Empty: the "
	  "first of `domains` that has one (none: nothing is sealed, logged at "
	  "start)." },
	{ "srs", CFG_BOOL, "yes", 0, 0, false,
	  "Rewrite the envelope sender of forwarded mail with the Sender "
	  "Rewriting Scheme (SRS0=HASH=TT=domain=local@srs_domain, SRS1 for an "
	  "SRS address of another forwarder) so that it passes SPF at the next "
	  "hop, and take bounces to such addresses back to the original sender "
	  "(RCPT TO an SRS address at srs_domain: a bad hash or one older than "
	  "21 days is refused with 550 5.1.1). The key is derived from the node "
	  "identity. The null sender stays null." },
	{ "srs_domain", CFG_STRING, "", 0, 0, false,
	  "The domain of our SRS addresses (bounces to it must reach this "
	  "node). Empty: the first of `domains`." },
	{ "dmarc_policy", CFG_STRING, "enforce", 0, 0, false,
	  "What a DMARC failure does: `enforce` (the domain's policy: "
	  "`reject` refuses the message with 550 5.7.1 at the end of DATA, "
	  "`quarantine` delivers it to the recipients' Junk folder), "
	  "`quarantine` (both deliver to Junk) or `report` (only recorded in "
	  "Authentication-Results)." },
	{ "spf_fail_reject", CFG_BOOL, "no", 0, 0, false,
	  "Refuse a message whose SPF result is `fail` (550 5.7.23) even when "
	  "DMARC does not ask for it. Off by default: forwarded mail fails SPF "
	  "and DMARC already weighs SPF with DKIM." },
	{ "local_from_policy", CFG_STRING, "none", 0, 0, false,
	  "Mail from outside claiming a From address in one of our `domains`: "
	  "`none` (no special rule) or `require-auth` (it must carry a DKIM "
	  "signature of that domain or an AMP-DID-Signature of its node that "
	  "verifies, or it is refused with 550 5.7.1 at the end of DATA). "
	  "Clients in `smtp_relay_networks` are not checked." },
	{ "auth_timeout", CFG_DURATION, "30s", 1, 300, false,
	  "The longest the SPF, DKIM and DMARC checks of one message may take; "
	  "whatever has not answered by then counts as a temporary DNS error "
	  "(temperror), never as a pass." },
	{ "dns_forwarder", CFG_STRING, "", 0, 0, false,
	  "Where DNS questions go (outbound delivery, and the SPF, DKIM and "
	  "DMARC checks of inbound mail): `IP` or `IP@PORT` of a recursive "
	  "resolver. Empty: the servers of /etc/resolv.conf." },
	{ "dns_trust_anchor", CFG_STRING, "", 0, 0, false,
	  "File of DNSSEC trust anchors (DS or DNSKEY records), e.g. "
	  "/usr/share/dns/root.key. Needed for DANE: without it no answer is "
	  "validated, so TLSA records are not used. Empty: none." },
	{ "dns_timeout", CFG_DURATION, "10s", 1, 300, false,
	  "Longest wait for one DNS answer; then the attempt is deferred." },
	{ "smtp_out_port", CFG_INT, "25", 1, 65535, false,
	  "Port of the mail exchangers found in DNS (transport_maps entries "
	  "may name their own)." },
	{ "smtp_out_max_connections", CFG_INT, "50", 1, 10000, false,
	  "Most outbound SMTP connections at once, all destinations." },
	{ "smtp_out_dest_concurrency", CFG_INT, "10", 1, 1000, false,
	  "Most outbound connections at once to one destination domain." },
	{ "smtp_out_dest_rate", CFG_INT, "0", 0, 100000, true,
	  "Most delivery attempts started per minute to one destination "
	  "domain (they are spread evenly over the minute). 0: no limit." },
	{ "smtp_out_critical_senders", CFG_LIST, "", 0, 0, false,
	  "Envelope senders (user@domain, or @domain for a whole domain) whose "
	  "outbound mail always goes to the critical lane, whatever its headers "
	  "or AMP envelope say." },
	{ "smtp_out_bulk_senders", CFG_LIST, "", 0, 0, false,
	  "Envelope senders (user@domain or @domain) whose outbound mail always "
	  "goes to the bulk lane (newsletters, notifications)." },
	{ "smtp_out_lane_weights", CFG_LIST, "8 4 1", 0, 0, false,
	  "Share of free connection slots for the lanes critical, normal and "
	  "bulk when all three have mail waiting (each at least 1, so no lane "
	  "starves)." },
	{ "smtp_out_lane_sla", CFG_LIST, "1m 15m 4h", 0, 0, false,
	  "Delivery target per lane (critical, normal, bulk): a message "
	  "delivered later than this after it arrived is counted late in the "
	  "queue statistics and logged." },
	{ "smtp_out_tls", CFG_STRING, "may", 0, 0, false,
	  "STARTTLS towards other servers: `may` (when offered; the default, "
	  "RFC 3207 opportunistic TLS), `encrypt` (always required), `none`. "
	  "DANE TLSA records, when DNSSEC-validated, always require TLS and a "
	  "matching certificate." },
	{ "smtp_out_must_tls", CFG_LIST, "", 0, 0, false,
	  "Destination domains that always need TLS with a certificate valid "
	  "for the MX host (PKIX, the system's CA list) unless DANE applies: "
	  "no STARTTLS or a bad certificate defers the mail, never cleartext." },
	{ "smtp_out_ca_file", CFG_STRING, "", 0, 0, false,
	  "PEM file of the certificate authorities trusted when a server's "
	  "certificate is checked by PKIX (smtp_out_must_tls, MTA-STS enforce), "
	  "instead of the system's list (for a private CA). Read at start. "
	  "Empty: the system's CAs." },
	{ "smtp_out_auth_file", CFG_STRING, "", 0, 0, false,
	  "Smarthost credentials, one per line: `[host]:port user password` "
	  "(mode 0600, read before the privilege drop). A transport_maps "
	  "entry `smtp:[host]:port` naming such a host authenticates with AUTH "
	  "PLAIN or LOGIN, only over TLS. Empty: none." },
	{ "smtp_out_connect_timeout", CFG_DURATION, "30s", 1, 600, true,
	  "Longest wait for a TCP connection to a mail exchanger." },
	{ "smtp_out_command_timeout", CFG_DURATION, "300s", 1, 3600, true,
	  "Longest wait for the greeting and for the replies to EHLO, "
	  "STARTTLS, AUTH, MAIL and RCPT (RFC 5321 §4.5.3.2: 5 minutes)." },
	{ "smtp_out_data_init_timeout", CFG_DURATION, "120s", 1, 3600, true,
	  "Longest wait for the 354 reply to DATA (RFC 5321: 2 minutes)." },
	{ "smtp_out_data_block_timeout", CFG_DURATION, "180s", 1, 3600, true,
	  "Longest time to send one block of message text (RFC 5321: 3 "
	  "minutes)." },
	{ "smtp_out_data_done_timeout", CFG_DURATION, "600s", 1, 3600, true,
	  "Longest wait for the reply after the final dot (RFC 5321: 10 "
	  "minutes)." },
	{ "smtp_out_retry_min", CFG_DURATION, "300s", 1, 86400, true,
	  "First retry delay after a temporary failure; it doubles with each "
	  "attempt, with random jitter of up to a quarter." },
	{ "smtp_out_retry_max", CFG_DURATION, "4000s", 1, 604800, true,
	  "Longest retry delay." },
	{ "maximal_queue_lifetime", CFG_DURATION, "5d", 1, 2592000, true,
	  "How long a message may wait in the mail queue; then it is returned "
	  "to its sender with a delivery status notification." },
	{ "delay_warning_time", CFG_DURATION, "4h", 0, 2592000, true,
	  "Tell the sender once that a message is delayed when it is still "
	  "queued after this long (0: never)." },
	{ "smtp_out_lease", CFG_DURATION, "30m", 60, 86400, true,
	  "How long a delivery attempt owns a queue entry; if the node dies "
	  "during the attempt the entry is tried again after this." },
	{ "smtp_out_bounce_keep", CFG_DURATION, "1d", 0, 2592000, true,
	  "How long bounced entries stay visible in `amp queue list` (their "
	  "content is deleted at once)." },
	/* MTA-STS (RFC 8461) for outbound delivery: src/daemon/mtasts-fetch.c */
	{ "mta_sts", CFG_BOOL, "yes", 0, 0, false,
	  "Apply MTA-STS (RFC 8461) to outbound SMTP: look up each destination "
	  "domain's _mta-sts TXT record and fetch its policy from "
	  "https://mta-sts.DOMAIN/.well-known/mta-sts.txt (cached until its "
	  "max_age, also across restarts in <data_dir>/mtasts.db). In enforce "
	  "mode only the MX hosts the policy names are used, with TLS and a "
	  "certificate valid for the host; testing mode only logs. DANE takes "
	  "precedence when the MX host has TLSA records." },
	{ "mta_sts_ca_file", CFG_STRING, "", 0, 0, false,
	  "PEM file of the CA certificates the policy servers' certificates "
	  "must chain to, instead of the system's (for tests). Empty: the "
	  "system's CAs." },
	{ "mta_sts_port", CFG_INT, "443", 1, 65535, false,
	  "Port of the policy servers (RFC 8461 uses 443; another port is for "
	  "tests)." },
	{ "mta_sts_timeout", CFG_DURATION, "10s", 1, 300, false,
	  "Longest time for one policy fetch (connection, TLS and transfer); "
	  "a failed fetch leaves the cached policy, if any, in force." },
	/* Transparency log (PROTOCOL.md §11): src/daemon/tlog.c */
	{ "log_head_interval", CFG_DURATION, "1s", 1, 86400, false,
	  "How often the node signs a new tree head of its transparency log "
	  "when the log grew. Every leaf appended in between is covered by "
	  "the next head, so this is how long `amp register` waits at most "
	  "to see its entry in a signed head." },
	{ "log_receipts", CFG_BOOL, "yes", 0, 0, false,
	  "Log a delivery receipt (envelope digest, this node, time) for "
	  "every envelope accepted over AMP for a local user, so that its "
	  "sender can prove the delivery (`amp receipt`)." },
	{ "log_witnesses", CFG_LIST, "", 0, 0, false,
	  "Domains whose nodes may cosign this node's tree heads (they "
	  "authenticate as did:aftersmtp:DOMAIN:node). Their cosignatures "
	  "are served with the heads." },
	{ "log_witness_of", CFG_LIST, "", 0, 0, false,
	  "Domains whose nodes' logs this node witnesses: every "
	  "log_witness_interval it fetches their latest tree head, checks it "
	  "is consistent with the last one it cosigned, and cosigns it; any "
	  "inconsistency is kept as evidence, logged as an error and counted "
	  "(`aftersmtpd` admin `log alarms`), and that log is not cosigned "
	  "again." },
	{ "log_witness_interval", CFG_DURATION, "60s", 1, 86400, false,
	  "How often the logs of log_witness_of are checked and cosigned." },
	{ "tls_cert_days", CFG_INT, "3650", 1, 36500, false,
	  "Validity in days of the self-signed certificate made at init "
	  "(clients authenticate the node by its node key, not by X.509)." },
};

const cfg_schema node_schema = { "aftersmtpd", keys, sizeof(keys) / sizeof(keys[0]) };
