#!/bin/bash
# demo.sh — what `make run` shows until the node exists: two identities,
# one message sealed to both, opened by each, its signature verified, and
# a tampered copy refused.  Everything happens in a temporary directory
# that is removed at the end.  Usage: scripts/demo.sh PATH/TO/amp
set -euo pipefail
AMP=$(readlink -f "${1:-build/src/cli/amp}")
DIR=$(mktemp -d /tmp/amp-demo.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"
# A demo passphrase in the environment; real use asks on the terminal.
export AMP_PASSPHRASE="demo passphrase, not for real keys"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
alice() { AMP_HOME=$DIR/alice "$AMP" "$@"; }
bob() { AMP_HOME=$DIR/bob "$AMP" "$@"; }

say "1. Alice and Bob each create an identity (Ed25519 + X25519, Argon2id keystore)"
run env AMP_HOME=alice "$AMP" keygen --did did:aftersmtp:example.org:alice
run env AMP_HOME=bob "$AMP" keygen --did did:aftersmtp:example.net:bob
ls -l alice/keystore.json bob/keystore.json

say "2. They exchange DID documents"
alice did document -o alice.json
bob did document -o bob.json
run env AMP_HOME=alice "$AMP" did import bob.json
run env AMP_HOME=bob "$AMP" did import alice.json

say "3. Alice seals one message to both of them"
cat > note.eml <<'MSG'
From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: hello over AMP

Hi Bob, this message is compressed, padded, encrypted once, and its key is
wrapped for each of us. Only the two of us can read it.
MSG
run env AMP_HOME=alice "$AMP" seal --to did:aftersmtp:example.net:bob,did:aftersmtp:example.org:alice --expires +7d -i note.eml -o note.amp
echo "note.eml: $(wc -c < note.eml) bytes of plaintext -> note.amp: $(wc -c < note.amp) bytes of envelope"

say "4. Anyone can check who signed it, without decrypting"
run env AMP_HOME=bob "$AMP" verify -i note.amp

say "5. Each recipient opens it"
bob open -i note.amp -o bob-reads.eml
alice open -i note.amp -o alice-reads.eml
cmp note.eml bob-reads.eml && echo "Bob's copy is byte-identical"
cmp note.eml alice-reads.eml && echo "Alice's copy is byte-identical"

say "6. One flipped byte is refused"
cp note.amp forged.amp
printf '\x01' | dd of=forged.amp bs=1 seek=200 conv=notrunc status=none
if bob open -i forged.amp -o /dev/null; then
	echo "demo: the forged envelope was accepted — this is a bug" >&2
	exit 1
fi

say "Done. Try it yourself: amp --help"
