"""Tests of ampy on its own, and of ampy against the JSON test vectors (§7).

Run: /usr/bin/python3 -m pytest -q tests/interop/test_ampy_self.py
"""

import glob
import json
import os
import subprocess
import sys
import time

import pytest
import zstandard

import ampy
from ampy import AmpError

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.normpath(os.path.join(HERE, "..", "vectors"))
NOW = int(time.time())


def ident(name):
    return ampy.Identity.generate(f"did:aftersmtp:example.org:{name}")


@pytest.fixture(scope="module")
def alice():
    return ident("alice")


@pytest.fixture(scope="module")
def bob():
    return ident("bob")


@pytest.fixture(scope="module")
def carol():
    return ident("carol")


def code_of(fn, *args, **kwargs):
    """Run fn and return the AmpError code it raised (fails if it raised none)."""
    with pytest.raises(AmpError) as info:
        fn(*args, **kwargs)
    return info.value.code


# ---- small protobuf wire helpers for building non-canonical encodings ----

def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(number, payload):
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def parse(data):
    env = ampy.pb.Envelope()
    env.ParseFromString(data)
    return env


def resign(env, sender):
    """Re-sign a (mutated) Envelope so that only the mutation is wrong; returns bytes."""
    env.signature = ampy.sign(sender.sign_sk, ampy.signature_input(env.header, env.ciphertext))
    return env.SerializeToString()


def reencrypt(data, sender, content_key, padded):
    """Replace the payload of a sealed envelope with `padded`, encrypted and signed properly."""
    env = parse(data)
    h = env.header
    h.padded_size = len(padded)
    env.ciphertext = ampy.aead_encrypt(content_key, h.payload_nonce, padded,
                                       ampy.payload_ad(h.envelope_id, h.sender, h.content_type))
    return resign(env, sender)


# ---- DIDs (§3.1), padme (§5.3), key ids and documents (§3.2, §3.3) ----

@pytest.mark.parametrize("did", [
    "did:aftersmtp:example.org:alice",
    "did:aftersmtp:mail.example.co.uk:first.last-2_x",
    "did:aftersmtp:localhost:a",
    "did:aftersmtp:" + ".".join(["a" * 63] * 3) + "." + "b" * 61 + ":" + "c" * 64,
])
def test_valid_dids(did):
    assert ampy.is_valid_did(did)


@pytest.mark.parametrize("did", [
    "did:aftersmtp:Example.org:alice",
    "did:aftersmtp:example..org:a",
    "did:aftersmtp:example.org:.alice",
    "did:aftersmtp:example.org:a..b",
    "did:aftersmtp:-x.org:a",
    "did:aftersmtp:example.org",
    "did:web:example.org:alice",
    "did:aftersmtp:example.org.:alice",
    "did:aftersmtp:example.org:alice%40",
    "did:aftersmtp:exämple.org:alice",
    "did:aftersmtp:example.org:alice_",
    "did:aftersmtp:" + "a" * 64 + ".org:alice",
    "did:aftersmtp:example.org:" + "a" * 65,
    "did:aftersmtp:" + ".".join(["a" * 63] * 4) + ":a",
])
def test_invalid_dids(did):
    assert not ampy.is_valid_did(did)


def test_padme_examples():
    assert [ampy.padme(n) for n in (300, 1000, 1025, 100000)] == [304, 1024, 1088, 100352]
    assert ampy.padded_size_for(0) == 256


def test_document_round_trip(alice):
    doc = ampy.DidDocument.parse(alice.document().to_json())
    assert doc == alice.document()
    assert doc.sig_method_id == f"{alice.did}#sig-{ampy.key_id(alice.sign_pk)}"
    assert len(ampy.key_id(alice.sign_pk)) == 16


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(id="did:aftersmtp:Example.org:alice"),
    lambda d: d["verificationMethod"].pop(),
    lambda d: d["verificationMethod"].append(d["verificationMethod"][0]),
    lambda d: d["verificationMethod"][0]["publicKeyJwk"].update(x="AAAA"),
    lambda d: d["verificationMethod"][0].update(id=d["id"] + "#sig-0000000000000000"),
    lambda d: d["verificationMethod"][1].update(controller="did:aftersmtp:example.org:eve"),
    lambda d: d.update(authentication=[]),
    lambda d: d.update(keyAgreement=[d["authentication"][0]]),
    lambda d: d["verificationMethod"].append({"id": d["id"] + "#p256", "type": "JsonWebKey2020",
                                              "controller": d["id"],
                                              "publicKeyJwk": {"kty": "EC", "crv": "P-256"}}),
    lambda d: d["verificationMethod"][1].update(type="X25519KeyAgreementKey2019"),
])
def test_document_checks(alice, mutate):
    doc = alice.document().to_dict()
    mutate(doc)
    assert code_of(ampy.DidDocument.parse, json.dumps(doc)) in (
        "AMP_E_MALFORMED", "AMP_E_BAD_DID", "AMP_E_BAD_KEY")


def test_document_bad_key_and_duplicate_members(alice):
    doc = alice.document().to_dict()
    doc["verificationMethod"][0]["publicKeyJwk"]["x"] = "AAAA"
    assert code_of(ampy.DidDocument.parse, json.dumps(doc)) == "AMP_E_BAD_KEY"
    text = alice.document().to_json()
    dup = text.replace('"id":', '"id": "did:aftersmtp:x.org:y", "id":', 1)
    assert code_of(ampy.DidDocument.parse, dup) == "AMP_E_MALFORMED"


def test_document_ignores_unknown_members_and_refuses_oversize(alice):
    doc = alice.document().to_dict()
    doc["service"] = [{"id": "x"}]
    assert ampy.DidDocument.parse(json.dumps(doc)) == alice.document()
    doc["padding"] = "x" * ampy.MAX_DOCUMENT
    assert code_of(ampy.DidDocument.parse, json.dumps(doc)) == "AMP_E_TOO_LARGE"


# ---- seal / open round trips ----

@pytest.mark.parametrize("body", [b"", b"hello, world\n", os.urandom(100 * 1024)],
                         ids=["empty", "short", "100KB"])
def test_round_trip_one_recipient(alice, bob, body):
    data = ampy.seal(alice, [bob.document()], body, "message/rfc822")
    opened = ampy.open_envelope(data, bob, alice.document())
    assert opened.body == body
    assert opened.sender == alice.did and opened.content_type == "message/rfc822"
    env = parse(data)
    assert len(env.ciphertext) == env.header.padded_size + 16
    assert env.header.padded_size == ampy.padded_size_for(
        len(zstandard.ZstdCompressor(level=3).compress(body)))


def test_round_trip_three_recipients(alice, bob, carol):
    body = b"to three\n" * 1000
    data = ampy.seal(alice, [bob.document(), carol.document(), alice.document()], body)
    for who in (bob, carol, alice):
        assert ampy.open_envelope(data, who, alice.document()).body == body


def test_armor_round_trip(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"armoured")
    text = ampy.armor(data)
    lines = text.splitlines()
    assert lines[0] == ampy.ARMOR_BEGIN and lines[-1] == ampy.ARMOR_END
    assert all(len(line) == 64 for line in lines[1:-2]) and len(lines[-2]) <= 64
    assert ampy.read_envelope_bytes(text.encode()) == data
    crlf = ("  \r\n" + text.replace("\n", " \r\n")).encode()
    assert ampy.read_envelope_bytes(crlf) == data
    assert ampy.read_envelope_bytes(data) == data


def test_verify_without_decrypting(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"x", created=NOW, expires=NOW + 60)
    env = ampy.verify_envelope(data, alice.document(), now=NOW)
    assert env.header.expires == NOW + 60 and env.header.recipients[0].did == bob.did


# ---- §5.6 failures, each with its named code ----

def test_not_recipient(alice, bob, carol):
    data = ampy.seal(alice, [bob.document()], b"for bob")
    assert code_of(ampy.open_envelope, data, carol, alice.document()) == "AMP_E_NOT_RECIPIENT"


def test_too_large(alice, bob):
    assert code_of(ampy.decode_envelope, bytes(ampy.MAX_ENVELOPE + 1)) == "AMP_E_TOO_LARGE"


@pytest.mark.parametrize("cut", [1, 10, 100, 300])
def test_truncated(alice, bob, cut):
    data = ampy.seal(alice, [bob.document()], b"truncate me")
    assert code_of(ampy.open_envelope, data[:-cut], bob, alice.document()) == "AMP_E_TRUNCATED"


def test_malformed_wire(alice, bob):
    assert code_of(ampy.decode_envelope, b"\x0f\x00") == "AMP_E_MALFORMED"  # wire type 7
    assert code_of(ampy.decode_envelope, b"\x08\x01") == "AMP_E_MALFORMED"  # header as varint
    assert code_of(ampy.decode_envelope, ld(1, b"\x0a\x01\x01")) == "AMP_E_MALFORMED"
    data = ampy.seal(alice, [bob.document()], b"x")
    env = parse(data)
    without_signature = ld(1, env.header.SerializeToString()) + ld(2, env.ciphertext)
    assert code_of(ampy.decode_envelope, without_signature) == "AMP_E_MALFORMED"


def test_noncanonical_encodings(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"canonical")
    env = parse(data)
    header = env.header.SerializeToString()
    assert header.startswith(b"\x08\x01")
    variants = {
        "reordered": ld(1, header) + ld(3, env.signature) + ld(2, env.ciphertext),
        "unknown field": data + b"\x78\x01",
        "unknown header field": ld(1, header + b"\x60\x05") + ld(2, env.ciphertext)
        + ld(3, env.signature),
        "non-minimal varint": ld(1, b"\x08\x81\x00" + header[2:]) + ld(2, env.ciphertext)
        + ld(3, env.signature),
        "default value present": ld(1, header + b"\x40\x00") + ld(2, env.ciphertext)
        + ld(3, env.signature),
        "field twice": data + ld(3, env.signature),
    }
    for name, variant in variants.items():
        assert code_of(ampy.open_envelope, variant, bob, alice.document()) \
            == "AMP_E_NONCANONICAL", name


@pytest.mark.parametrize("mutate,code", [
    (lambda e: setattr(e.header, "version", 2), "AMP_E_VERSION"),
    (lambda e: setattr(e.header, "sealed_sender", b"x"), "AMP_E_UNSUPPORTED"),
    (lambda e: setattr(e.header, "sender", "did:aftersmtp:Example.org:alice"), "AMP_E_BAD_DID"),
    (lambda e: setattr(e.header.recipients[0], "did", "did:web:x"), "AMP_E_BAD_DID"),
    (lambda e: e.header.recipients.add().CopyFrom(e.header.recipients[0]),
     "AMP_E_DUPLICATE_RECIPIENT"),
    (lambda e: e.header.ClearField("recipients"), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header.recipients[0], "wrapped_key", bytes(71)), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "envelope_id", bytes(15)), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "payload_nonce", bytes(12)), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "lane", 3), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "content_type", ""), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "content_type", "text/plain\n"), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "content_type", "x" * 256), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "expires", e.header.created), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "padded_size", e.header.padded_size + 1), "AMP_E_MALFORMED"),
    (lambda e: setattr(e.header, "padded_size", ampy.MAX_PADDED + 1), "AMP_E_TOO_LARGE"),
    (lambda e: setattr(e, "ciphertext", e.ciphertext[:-1]), "AMP_E_MALFORMED"),
])
def test_structure_errors(alice, bob, mutate, code):
    env = parse(ampy.seal(alice, [bob.document()], b"structure"))
    mutate(env)
    data = resign(env, alice)
    assert code_of(ampy.open_envelope, data, bob, alice.document()) == code


def test_signature_length(alice, bob):
    env = parse(ampy.seal(alice, [bob.document()], b"x"))
    env.signature = env.signature[:63]
    assert code_of(ampy.decode_envelope, env.SerializeToString()) == "AMP_E_MALFORMED"


def test_too_many_recipients(alice, bob):
    env = parse(ampy.seal(alice, [bob.document()], b"x"))
    for i in range(ampy.MAX_RECIPIENTS):
        env.header.recipients.add(did=f"did:aftersmtp:example.org:r{i}", wrapped_key=bytes(72))
    assert code_of(ampy.decode_envelope, env.SerializeToString()) == "AMP_E_TOO_LARGE"


def test_sender_mismatch(alice, bob, carol):
    data = ampy.seal(alice, [bob.document()], b"x")
    assert code_of(ampy.open_envelope, data, bob, carol.document()) == "AMP_E_SENDER_MISMATCH"
    impostor = ampy.DidDocument(alice.did, carol.sign_pk, alice.enc_pk)
    assert code_of(ampy.open_envelope, data, bob, impostor) == "AMP_E_BAD_SIGNATURE"


def test_tampered_header_byte(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"tamper")
    env = parse(data)
    for needle in (env.header.envelope_id, env.header.recipients[0].wrapped_key,
                   env.header.payload_nonce):
        at = data.index(needle) + 5
        tampered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        assert code_of(ampy.open_envelope, tampered, bob, alice.document()) \
            == "AMP_E_BAD_SIGNATURE"
        assert code_of(ampy.verify_envelope, tampered, alice.document()) \
            == "AMP_E_BAD_SIGNATURE"


@pytest.mark.parametrize("field", ["created", "expires", "lane"])
def test_tampered_header_field(alice, bob, field):
    env = parse(ampy.seal(alice, [bob.document()], b"x", created=NOW - 10, expires=NOW + 100))
    setattr(env.header, field, getattr(env.header, field) + 1)
    assert code_of(ampy.open_envelope, env.SerializeToString(), bob, alice.document()) \
        == "AMP_E_BAD_SIGNATURE"


def test_reordered_recipients_break_signature(alice, bob, carol):
    env = parse(ampy.seal(alice, [bob.document(), carol.document()], b"x"))
    first, second = (ampy.pb.Recipient(), ampy.pb.Recipient())
    first.CopyFrom(env.header.recipients[1])
    second.CopyFrom(env.header.recipients[0])
    del env.header.recipients[:]
    env.header.recipients.extend([first, second])
    assert code_of(ampy.open_envelope, env.SerializeToString(), bob, alice.document()) \
        == "AMP_E_BAD_SIGNATURE"


def test_tampered_ciphertext(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"ciphertext")
    tampered = data[:-100] + bytes([data[-100] ^ 0x80]) + data[-99:]
    assert parse(tampered).signature == parse(data).signature  # the flip is in the ciphertext
    assert code_of(ampy.open_envelope, tampered, bob, alice.document()) == "AMP_E_BAD_SIGNATURE"
    env = parse(tampered)
    assert code_of(ampy.open_envelope, resign(env, alice), bob, alice.document()) \
        == "AMP_E_DECRYPT"


def test_time_checks(alice, bob):
    def at(created, expires, now):
        data = ampy.seal(alice, [bob.document()], b"time", created=created, expires=expires)
        return ampy.open_envelope(data, bob, alice.document(), now=now).body

    assert at(NOW + 600, 0, NOW) == b"time"
    assert code_of(at, NOW + 601, 0, NOW) == "AMP_E_FUTURE"
    assert at(NOW - 1000, NOW + 1, NOW) == b"time"
    assert code_of(at, NOW - 1000, NOW, NOW) == "AMP_E_EXPIRED"
    assert code_of(at, NOW - 1000, NOW - 10, NOW) == "AMP_E_EXPIRED"
    assert code_of(at, NOW + 601, NOW + 700, NOW + 1000) == "AMP_E_EXPIRED"


def test_wrapped_key_moved_or_corrupted(alice, bob, carol):
    env = parse(ampy.seal(alice, [bob.document(), carol.document()], b"x"))
    env.header.recipients[0].wrapped_key = env.header.recipients[1].wrapped_key
    assert code_of(ampy.open_envelope, resign(env, alice), bob, alice.document()) \
        == "AMP_E_KEY_UNWRAP"
    other = parse(ampy.seal(alice, [bob.document()], b"x"))
    other.header.envelope_id = os.urandom(16)  # the wrap context binds the envelope id
    assert code_of(ampy.open_envelope, resign(other, alice), bob, alice.document()) \
        == "AMP_E_KEY_UNWRAP"


def test_low_order_keys(alice, bob):
    data = ampy.seal(alice, [bob.document()], b"x")
    low_order_sender = ampy.DidDocument(alice.did, alice.sign_pk, bytes(32))
    assert code_of(ampy.open_envelope, data, bob, low_order_sender) == "AMP_E_BAD_KEY"
    low_order_recipient = ampy.DidDocument(bob.did, bob.sign_pk, bytes(32))
    assert code_of(ampy.seal, alice, [low_order_recipient], b"x") == "AMP_E_BAD_KEY"


def test_padding_checks(alice, bob):
    key = os.urandom(32)
    z = zstandard.ZstdCompressor().compress(b"padding")
    data = ampy.seal(alice, [bob.document()], b"", content_key=key, z=z)
    good = ampy.pad(z)
    nonzero = good[:-1] + b"\x01"
    too_long = ampy.u32(len(good) - 3) + good[4:]
    for padded in (nonzero, too_long):
        assert code_of(ampy.open_envelope, reencrypt(data, alice, key, padded), bob,
                       alice.document()) == "AMP_E_PADDING"
    assert ampy.open_envelope(reencrypt(data, alice, key, good), bob,
                              alice.document()).body == b"padding"


# RFC 8878 §3.1.2: a skippable frame with an empty payload.
SKIPPABLE_FRAME = bytes.fromhex("502a4d18" "00000000")


@pytest.mark.parametrize("z", [
    b"",
    b"not zstd at all",
    zstandard.ZstdCompressor().compress(b"two frames") * 2,
    zstandard.ZstdCompressor().compress(b"trailing") + b"\0",
    zstandard.ZstdCompressor().compress(b"truncated frame" * 20)[:-3],
    SKIPPABLE_FRAME,
    SKIPPABLE_FRAME + zstandard.ZstdCompressor().compress(b"after a skippable frame"),
    zstandard.ZstdCompressor().compress(b"before a skippable frame") + SKIPPABLE_FRAME,
], ids=["empty", "garbage", "two-frames", "trailing", "truncated", "skippable",
        "skippable-first", "skippable-last"])
def test_decompress_errors(alice, bob, z):
    data = ampy.seal(alice, [bob.document()], b"", z=z)
    assert code_of(ampy.open_envelope, data, bob, alice.document()) == "AMP_E_DECOMPRESS"


def test_decompression_limit(alice, bob):
    exact = zstandard.ZstdCompressor().compress(bytes(ampy.MAX_BODY))
    data = ampy.seal(alice, [bob.document()], b"", z=exact)
    assert len(ampy.open_envelope(data, bob, alice.document()).body) == ampy.MAX_BODY
    bomb = zstandard.ZstdCompressor().compress(bytes(ampy.MAX_BODY + 1))
    data = ampy.seal(alice, [bob.document()], b"", z=bomb)
    assert code_of(ampy.open_envelope, data, bob, alice.document()) == "AMP_E_TOO_LARGE"


def test_seal_refusals(alice, bob):
    assert code_of(ampy.seal, alice, [bob.document(), bob.document()], b"x") \
        == "AMP_E_DUPLICATE_RECIPIENT"
    assert code_of(ampy.seal, alice, [], b"x") == "AMP_E_MALFORMED"
    assert code_of(ampy.seal, alice, [bob.document()], b"x", "") == "AMP_E_MALFORMED"
    assert code_of(ampy.seal, alice, [bob.document()], b"x", created=NOW, expires=NOW) \
        == "AMP_E_MALFORMED"


# ---- §6 proof of work ----

def test_pow_mint_and_check(alice):
    doc = alice.document()
    stamp = ampy.pow_mint(doc, 12, timestamp=NOW)
    ampy.pow_check(doc, stamp, 12, now=NOW)
    ampy.pow_check(doc, stamp, 8, now=NOW)  # more bits than required is fine
    assert ampy.PowStamp.from_text(stamp.to_text()) == stamp
    assert code_of(ampy.pow_check, doc, stamp, 13, now=NOW) == "AMP_E_POW_INSUFFICIENT"
    other = ident("other").document()
    wrong_counter = ampy.PowStamp(12, NOW, stamp.counter + 1)
    for d, s in ((other, stamp), (doc, wrong_counter)):
        if not ampy.has_leading_zero_bits(ampy.pow_digest(d.did, d.sign_pk, d.enc_pk, s), 12):
            assert code_of(ampy.pow_check, d, s, 12, now=NOW) == "AMP_E_POW_INSUFFICIENT"


def test_pow_below_difficulty_with_bad_digest(alice):
    doc = alice.document()
    for counter in range(64):  # find a counter whose digest does not start with a zero bit
        stamp = ampy.PowStamp(1, NOW, counter)
        if ampy.pow_digest(doc.did, doc.sign_pk, doc.enc_pk, stamp)[0] & 0x80:
            break
    assert code_of(ampy.pow_check, doc, stamp, 1, now=NOW) == "AMP_E_POW_INSUFFICIENT"


def test_pow_times(alice):
    doc = alice.document()
    for age, code in ((-300, None), (-301, "AMP_E_FUTURE"), (86400, None),
                      (86401, "AMP_E_POW_STALE")):
        stamp = ampy.pow_mint(doc, 4, timestamp=NOW - age)
        if code:
            assert code_of(ampy.pow_check, doc, stamp, 4, now=NOW) == code
        else:
            ampy.pow_check(doc, stamp, 4, now=NOW)


def test_pow_text_form():
    stamp = ampy.PowStamp.from_text("amp-pow-v1:20:1767225600:00000000000a1b2c")
    assert stamp == ampy.PowStamp(20, 1767225600, 0xA1B2C)
    assert stamp.to_text() == "amp-pow-v1:20:1767225600:00000000000a1b2c"
    for bad in ("amp-pow-v1:020:1767225600:00000000000a1b2c",
                "amp-pow-v1:20:1767225600:a1b2c",
                "amp-pow-v1:20:1767225600:00000000000A1B2C",
                "amp-pow-v2:20:1767225600:00000000000a1b2c"):
        assert code_of(ampy.PowStamp.from_text, bad) == "AMP_E_MALFORMED"


# ---- the command line ----

def run_cli(*args, stdin=b""):
    return subprocess.run([sys.executable, os.path.join(HERE, "ampy.py"), *map(str, args)],
                          input=stdin, capture_output=True, check=False)


def test_cli(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli("keygen", "--did", "did:aftersmtp:example.org:a", "-o", a).returncode == 0
    assert run_cli("keygen", "--did", "did:aftersmtp:example.org:b", "-o", b).returncode == 0
    for key, doc in ((a, tmp_path / "a.doc"), (b, tmp_path / "b.doc")):
        doc.write_bytes(run_cli("document", key).stdout)
    sealed = run_cli("seal", "--key", a, "--to-doc", tmp_path / "b.doc", "--armor",
                     stdin=b"cli body")
    assert sealed.returncode == 0 and sealed.stdout.startswith(b"-----BEGIN AMP ENVELOPE-----")
    opened = run_cli("open", "--key", b, "--sender-doc", tmp_path / "a.doc", stdin=sealed.stdout)
    assert opened.returncode == 0 and opened.stdout == b"cli body"
    env = tmp_path / "env.bin"
    env.write_bytes(ampy.dearmor(sealed.stdout))
    assert run_cli("verify", "--sender-doc", tmp_path / "a.doc", "-i", env).returncode == 0
    refused = run_cli("open", "--key", a, "--sender-doc", tmp_path / "a.doc", "-i", env)
    assert refused.returncode == 1 and b"AMP_E_NOT_RECIPIENT" in refused.stderr
    stamp = run_cli("pow-mint", "--key", a, "--bits", 8).stdout.decode().strip()
    assert run_cli("pow-check", "--doc", tmp_path / "a.doc", "--bits", 8, stamp).returncode == 0
    refused = run_cli("pow-check", "--doc", tmp_path / "b.doc", "--bits", 8, stamp)
    assert refused.returncode == 1 and b"AMP_E_POW_INSUFFICIENT" in refused.stderr


# ---- §7 test vectors ----

def load_vectors(name):
    if not glob.glob(os.path.join(VECTORS, "*.json")):
        pytest.skip("vectors not generated yet")
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)


def unhex(s):
    return bytes.fromhex(s)


def envelope_cases():
    """The cases of envelope.json, or [None] when it does not exist (yet)."""
    path = os.path.join(VECTORS, "envelope.json")
    if not os.path.exists(path):
        return [None]
    with open(path, encoding="utf-8") as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("case", envelope_cases(), ids=lambda c: c["name"] if c else "none")
def test_vectors_envelope(case):
    if case is None:
        load_vectors("envelope.json")  # skips, or fails when other vectors exist
    s = case["sender"]
    sender = ampy.Identity(s["did"], unhex(s["sign_seed"]), unhex(s["enc_sk"]))
    assert sender.sign_pk.hex() == s["sign_pk"] and sender.enc_pk.hex() == s["enc_pk"]
    envelope_id = unhex(case["envelope_id"])
    content_key = unhex(case["content_key"])
    recipients, docs = [], []
    for r in case["recipients"]:
        rid = ampy.Identity(r["did"], unhex(r["sign_seed"]), unhex(r["enc_sk"]))
        assert rid.sign_pk.hex() == r["sign_pk"] and rid.enc_pk.hex() == r["enc_pk"]
        dh = ampy.x25519(sender.enc_sk, rid.enc_pk)
        assert dh.hex() == r["dh"] and ampy.x25519(rid.enc_sk, sender.enc_pk) == dh
        ctx = ampy.wrap_context(envelope_id, sender.did, rid.did, sender.enc_pk, rid.enc_pk)
        assert ctx.hex() == r["wrap_ctx"], rid.did
        kek = ampy.key_encryption_key(dh, ctx)
        assert kek.hex() == r["kek"], rid.did
        wrapped = ampy.wrap_key(content_key, kek, ctx, unhex(r["wrap_nonce"]))
        assert wrapped.hex() == r["wrapped_key"], rid.did
        recipients.append(rid)
        docs.append(rid.document())

    z = unhex(case["z"])
    body = unhex(case["body"])
    assert ampy.decompress_one_frame(z) == body
    padded = ampy.pad(z)
    assert len(padded) == case["padded_size"] and padded.hex() == case["padded"]
    ad = ampy.payload_ad(envelope_id, sender.did, case["content_type"])
    assert ad.hex() == case["payload_ad"]
    ciphertext = ampy.aead_encrypt(content_key, unhex(case["payload_nonce"]), padded, ad)
    assert ciphertext.hex() == case["ciphertext"]

    envelope = ampy.seal(sender, docs, body, case["content_type"], created=case["created"],
                         expires=case["expires"], lane=case["lane"],
                         envelope_id=envelope_id, content_key=content_key,
                         payload_nonce=unhex(case["payload_nonce"]),
                         wrap_nonces=[unhex(r["wrap_nonce"]) for r in case["recipients"]],
                         z=z)
    env = parse(envelope)
    assert ampy.signature_input(env.header, env.ciphertext).hex() == case["sig_input"]
    assert env.signature.hex() == case["signature"]
    assert envelope.hex() == case["envelope"]

    now = case["created"]
    for rid in recipients:
        opened = ampy.open_envelope(unhex(case["envelope"]), rid, sender.document(), now=now)
        assert opened.body == body


def test_vectors_did():
    vec = load_vectors("did.json")
    for did in vec["valid"]:
        assert ampy.is_valid_did(did), did
    for case in vec["invalid"]:
        assert not ampy.is_valid_did(case["did"]), case


def test_vectors_padme():
    for length, padded in load_vectors("padme.json"):
        assert ampy.padme(length) == padded, length


def test_vectors_keys():
    for case in load_vectors("keys.json"):
        ident_ = ampy.Identity(case["did"], unhex(case["sign_seed"]), unhex(case["enc_sk"]))
        assert ident_.sign_pk.hex() == case["sign_pk"]
        assert ident_.enc_pk.hex() == case["enc_pk"]
        assert ampy.key_id(ident_.sign_pk) == case["sig_key_id"]
        assert ampy.key_id(ident_.enc_pk) == case["enc_key_id"]
        assert ident_.document().to_dict() == case["document"]
        assert ampy.DidDocument.parse(json.dumps(case["document"])) == ident_.document()


def test_vectors_pow():
    for case in load_vectors("pow.json"):
        doc = ampy.DidDocument(case["did"], unhex(case["sign_pk"]), unhex(case["enc_pk"]))
        stamp = ampy.PowStamp(case["bits"], case["timestamp"], case["counter"])
        assert stamp.to_text() == case["text"]
        assert ampy.PowStamp.from_text(case["text"]) == stamp
        prefix = ampy.pow_prefix(doc.did, doc.sign_pk, doc.enc_pk, stamp.timestamp, stamp.bits)
        assert (prefix + ampy.u64(stamp.counter)).hex() == case["pow_input"]
        assert ampy.pow_digest(doc.did, doc.sign_pk, doc.enc_pk, stamp).hex() == case["digest"]
        ampy.pow_check(doc, stamp, case["bits"], now=case["timestamp"])
        # Minting searches counter = 0, 1, 2, ...: the vector's counter is the first that works.
        assert ampy.pow_mint(doc, stamp.bits, timestamp=stamp.timestamp) == stamp
