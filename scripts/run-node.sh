#!/bin/sh
# run-node.sh — what `make run` does: start a node for `localhost` on the
# embedded defaults (SQLite store in /var/lib/aftersmtp, listening on
# 127.0.0.1:4434 over QUIC and TLS, node key and self-signed certificate
# made on first start), after printing how to use it.  Ctrl-C stops it
# (it drains first).  Usage: scripts/run-node.sh BUILD_DIR
set -eu
B=$(readlink -f "${1:-build}")
AMPD=$B/src/daemon/aftersmtpd
AMP=$B/src/cli/amp
cat <<MSG
Starting an AfterSMTP node for the domain 'localhost' on 127.0.0.1:4434
(QUIC and TLS), data in /var/lib/aftersmtp.  In another terminal:

  export PATH=$B/src/cli:\$PATH
  AMP_HOME=/tmp/alice amp keygen --did did:aftersmtp:localhost:alice
  AMP_HOME=/tmp/alice amp register --node 127.0.0.1:4434
  AMP_HOME=/tmp/bob amp keygen --did did:aftersmtp:localhost:bob
  AMP_HOME=/tmp/bob amp register --node 127.0.0.1:4434
  echo 'Hello Bob' | AMP_HOME=/tmp/alice amp send did:aftersmtp:localhost:bob
  AMP_HOME=/tmp/bob amp fetch

(register mints a proof of work of 22 bits: a few seconds.)  Stop the node
with Ctrl-C.  docs/node.md has the rest.

MSG
exec "$AMPD" run
