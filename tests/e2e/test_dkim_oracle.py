"""Our DKIM verifier (src/mime/dkim-verify.c) on signatures made by an
independent signer: python3-dkim (dkimpy) `dkim.sign` (TESTING.md D2, D3).

Keys are generated here: RSA 2048 with `openssl genrsa` (p= the DER
SubjectPublicKeyInfo), Ed25519 with nacl (dkimpy's private key format:
base64 of the 32-byte seed; p= the raw public key, RFC 8463).  For each
algorithm and each canonicalisation (simple/simple, relaxed/relaxed,
simple/relaxed, relaxed/simple) dkimpy signs a few messages and the test
tool tests/unit/dkim-verify-tool ($DKIM_VERIFY_TOOL, or next to
$AMP_BIN's build: BUILD/tests/unit/dkim-verify-tool) must say pass; then
one byte of the body or of a signed header changed must make it fail.
With length=True (l=) the signature passes as it is, and with a part
appended (which dkimpy itself still accepts) our result is neutral, "l=
does not cover the whole body" (D3).  A key record answered as a lookup
failure gives temperror, a missing one permerror.
"""
import base64
import os
import subprocess
from pathlib import Path

import pytest

from conftest import AMP_BIN

dkim = pytest.importorskip("dkim")
nacl_signing = pytest.importorskip("nacl.signing")

TOOL = os.environ.get("DKIM_VERIFY_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "unit" / "dkim-verify-tool"))
DOMAIN = b"example.org"
SELECTOR = b"oracle"
QUERY = "oracle._domainkey.example.org"
HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]

MESSAGES = [
    (b"From: Alice <alice@example.org>\r\n"
     b"To: Bob <bob@example.net>\r\n"
     b"Subject: oracle trial\r\n"
     b"Date: Sat, 22 Nov 2025 12:00:00 +0000\r\n"
     b"Message-ID: <trial-1@example.org>\r\n"
     b"\r\n"
     b"Hello Bob.\r\n"
     b".leading dot line\r\n"),
    (b"From: alice@example.org\r\n"
     b"To:  bob@example.net ,\r\n\tcarol@example.net\r\n"
     b"Subject:   spaced    out  \r\n"
     b"\r\n"
     b"  indented  \t line  \r\n"
     b"\r\n"
     b"tail\r\n\r\n\r\n"),
    (b"From: alice@example.org\r\n"
     b"Subject: empty body\r\n"
     b"\r\n"),
    (b"From: alice@example.org\r\n"
     b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
     b"\r\n"
     b"no final line end"),
]
CANONS = [(b"simple", b"simple"), (b"relaxed", b"relaxed"),
          (b"simple", b"relaxed"), (b"relaxed", b"simple")]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"dkim-verify-tool not found at {TOOL}; build first")
    d = tmp_path_factory.mktemp("dkimkeys")
    pem = d / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pem), "2048"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    seed = os.urandom(32)
    sk = nacl_signing.SigningKey(seed)
    return {
        "rsa": (pem.read_bytes(), b"rsa-sha256",
                "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()),
        "ed25519": (base64.b64encode(seed), b"ed25519-sha256",
                    "v=DKIM1; k=ed25519; p=" +
                    base64.b64encode(bytes(sk.verify_key)).decode()),
    }


def sign(keys, alg, msg, canon, length=False):
    priv, a, _ = keys[alg]
    sig = dkim.sign(msg, SELECTOR, DOMAIN, priv, signature_algorithm=a,
                    canonicalize=canon, include_headers=HEADERS,
                    length=length)
    return sig + msg


def run(msg, *args):
    p = subprocess.run([TOOL, *args], input=msg, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, lines
    f = lines[0].split(" ", 3)
    assert f[0] == "d=example.org" and f[1] == "s=oracle", lines
    return f[2], f[3]


def verify(keys, alg, msg):
    return run(msg, "--key", f"{QUERY}={keys[alg][2]}")


def dkimpy_ok(keys, alg, msg):
    def dnsfunc(name, timeout=5):
        return keys[alg][2].encode()
    return dkim.verify(msg, dnsfunc=dnsfunc)


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("canon", CANONS, ids=lambda c: b"/".join(c).decode())
def test_dkimpy_signed_passes(keys, alg, canon):
    for i, msg in enumerate(MESSAGES):
        signed = sign(keys, alg, msg, canon)
        assert dkimpy_ok(keys, alg, signed)  # the oracle agrees
        assert verify(keys, alg, signed) == ("pass", "ok"), (i, signed)


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("canon", CANONS, ids=lambda c: b"/".join(c).decode())
def test_tamper_fails(keys, alg, canon):
    signed = sign(keys, alg, MESSAGES[0], canon)
    body = signed.replace(b"Hello Bob.", b"Hello Bob!")
    assert verify(keys, alg, body) == ("fail", "body hash mismatch")
    hdr = signed.replace(b"Subject: oracle", b"Subject: Oracle")
    assert verify(keys, alg, hdr) == ("fail", "bad signature")
    # a second From on top: dkimpy (which adds 'from' to h=) and we fail
    evil = b"From: Mallory <ceo@example.org>\r\n" + signed
    st, why = verify(keys, alg, evil)
    assert st == "fail" and why == "multiple From"
    # an unsigned field added on top changes nothing
    assert verify(keys, alg, b"Received: from x by y\r\n" + signed) == \
        ("pass", "ok")


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
@pytest.mark.parametrize("canon", CANONS, ids=lambda c: b"/".join(c).decode())
def test_body_length(keys, alg, canon):
    signed = sign(keys, alg, MESSAGES[0], canon, length=True)
    assert b" l=" in signed or b";l=" in signed
    assert verify(keys, alg, signed) == ("pass", "ok")
    appended = signed + b"APPENDED PHISHING LINK http://evil.example/\r\n"
    assert dkimpy_ok(keys, alg, appended)  # the attack dkimpy accepts
    assert verify(keys, alg, appended) == \
        ("neutral", "l= does not cover the whole body")


def test_dns_outcomes(keys):
    signed = sign(keys, "rsa", MESSAGES[0], (b"relaxed", b"relaxed"))
    assert run(signed) == ("permerror", "no key record")
    assert run(signed, "--tempfail", QUERY) == \
        ("temperror", "key lookup failed")
    # the other algorithm's key
    assert verify(keys, "ed25519", signed) == \
        ("permerror", "key type k= does not match a=")
    # rsa-sha1 from dkimpy (which would accept it): fail (RFC 8301)
    sha1 = dkim.sign(MESSAGES[0], SELECTOR, DOMAIN, keys["rsa"][0],
                     signature_algorithm=b"rsa-sha1",
                     include_headers=HEADERS) + MESSAGES[0]
    assert verify(keys, "rsa", sha1) == \
        ("fail", "rsa-sha1 not accepted (RFC 8301)")
