"""Interoperability: the C `amp` command against ampy, in both directions.

The amp binary is $AMP_BIN (default build/src/cli/amp).  Without it these
tests skip, except under CI (env CI set), where they fail.

Run: /usr/bin/python3 -m pytest -q tests/interop/test_interop.py
"""

import glob
import os
import re
import subprocess
import sys
import time

import pytest
import zstandard

import ampy

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
AMP_BIN = os.environ.get("AMP_BIN", os.path.join(REPO, "build", "src", "cli", "amp"))
CORPUS = os.path.normpath(os.path.join(REPO, "..", "shared", "corpus"))
AMPY = os.path.join(HERE, "ampy.py")

AMP_DID = "did:aftersmtp:c.example.org:amp"
AMPY_DID = "did:aftersmtp:py.example.org:ampy"
OTHER_DID = "did:aftersmtp:py.example.org:other"

BODIES = {
    "empty": b"",
    "text": b"Subject: hi\r\n\r\nHello from the interop test.\r\n",
    "binary": bytes(range(256)) * 4 + os.urandom(3000),
    "100KB": os.urandom(100 * 1024),
}


@pytest.fixture(scope="session")
def amp_bin():
    if not os.access(AMP_BIN, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"amp binary missing at {AMP_BIN}")
        pytest.skip(f"amp binary missing at {AMP_BIN}")
    return AMP_BIN


def error_code(stderr):
    """The first AMP_E_* name in a command's stderr, or None."""
    m = re.search(rb"AMP_E_[A-Z_]+", stderr)
    return m.group(0).decode() if m else None


class Amp:
    """One C `amp` user: its own AMP_HOME with a keystore."""

    def __init__(self, binary, home, did):
        self.binary, self.home, self.did = binary, home, did
        os.makedirs(home)
        self.run("keygen", "--did", did, "--kdf", "min")
        self.doc_path = os.path.join(home, "did-document.json")
        self.run("did", "document", "-o", self.doc_path)
        with open(self.doc_path, "rb") as f:
            self.doc = ampy.DidDocument.parse(f.read())  # AMP-R-006 checks of amp's output

    def run(self, *args, stdin=b"", check=True):
        env = dict(os.environ, AMP_HOME=self.home, AMP_PASSPHRASE="interop passphrase")
        proc = subprocess.run([self.binary, *map(str, args)], input=stdin, env=env,
                              capture_output=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"amp {' '.join(map(str, args))} exited {proc.returncode}: "
                        f"{proc.stderr.decode(errors='replace')}")
        return proc


class Ampy:
    """One ampy user: an identity file and its DID document, driven through ampy's CLI."""

    def __init__(self, directory, did):
        os.makedirs(directory)
        self.did = did
        self.key_path = os.path.join(directory, "identity.json")
        self.doc_path = os.path.join(directory, "did-document.json")
        self.run("keygen", "--did", did, "-o", self.key_path)
        with open(self.doc_path, "wb") as f:
            f.write(self.run("document", self.key_path).stdout)
        with open(self.key_path, "rb") as f:
            self.identity = ampy.Identity.from_json(f.read())
        self.doc = self.identity.document()

    def run(self, *args, stdin=b"", check=True):
        proc = subprocess.run([sys.executable, AMPY, *map(str, args)], input=stdin,
                              capture_output=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"ampy {' '.join(map(str, args))} exited {proc.returncode}: "
                        f"{proc.stderr.decode(errors='replace')}")
        return proc


@pytest.fixture
def amp(amp_bin, tmp_path):
    return Amp(amp_bin, str(tmp_path / "amp-home"), AMP_DID)


@pytest.fixture
def py(amp, tmp_path):
    """An ampy user that amp knows, and that knows amp."""
    user = Ampy(str(tmp_path / "ampy"), AMPY_DID)
    amp.run("did", "import", user.doc_path)
    return user


def amp_open(amp, envelope):
    """(code or None, plaintext) of `amp open` on envelope bytes."""
    proc = amp.run("open", stdin=envelope, check=False)
    return (None, proc.stdout) if proc.returncode == 0 else (error_code(proc.stderr) or
                                                            f"exit {proc.returncode}", None)


def ampy_open(identity, sender_doc, envelope):
    """(code or None, plaintext) of ampy opening envelope bytes (binary or armoured)."""
    try:
        body = ampy.open_envelope(ampy.read_envelope_bytes(envelope), identity, sender_doc).body
    except ampy.AmpError as exc:
        return exc.code, None
    return None, body


# ---- documents ----

def test_documents_cross_parse(amp, py):
    assert amp.doc.did == AMP_DID
    assert ampy.DidDocument.parse(amp.run("did", "document").stdout) == amp.doc


# ---- ampy seals, amp opens ----

@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("name", list(BODIES))
def test_ampy_to_amp(amp, py, tmp_path, name, armor):
    body = BODIES[name]
    sealed = py.run("seal", "--key", py.key_path, "--to-doc", amp.doc_path,
                    *(["--armor"] if armor else []), stdin=body).stdout
    assert sealed.startswith(b"-----BEGIN AMP ENVELOPE-----") == armor
    out = tmp_path / "plain"
    amp.run("open", "-o", out, stdin=sealed)
    assert out.read_bytes() == body
    assert amp.run("open", stdin=sealed).stdout == body
    amp.run("verify", stdin=sealed)


def test_ampy_to_amp_and_another(amp, py, tmp_path):
    other = Ampy(str(tmp_path / "other"), OTHER_DID)
    body = BODIES["text"]
    sealed = py.run("seal", "--key", py.key_path, "--to-doc", other.doc_path,
                    "--to-doc", amp.doc_path, "--to-doc", py.doc_path, stdin=body).stdout
    assert amp_open(amp, sealed) == (None, body)
    assert other.run("open", "--key", other.key_path, "--sender-doc", py.doc_path,
                     stdin=sealed).stdout == body


# ---- amp seals, ampy opens ----

@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("name", list(BODIES))
def test_amp_to_ampy(amp, py, tmp_path, name, armor):
    body = BODIES[name]
    src = tmp_path / "body"
    src.write_bytes(body)
    sealed = amp.run("seal", "--to", py.did, "-i", src, *(["--armor"] if armor else [])).stdout
    assert sealed.startswith(b"-----BEGIN AMP ENVELOPE-----") == armor
    opened = py.run("open", "--key", py.key_path, "--sender-doc", amp.doc_path, stdin=sealed)
    assert opened.stdout == body
    envelope = tmp_path / "envelope"
    envelope.write_bytes(sealed)
    py.run("verify", "--sender-doc", amp.doc_path, "-i", envelope)


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_amp_to_itself_and_ampy(amp, py, armor):
    body = BODIES["binary"]
    sealed = amp.run("seal", "--to", f"{amp.did},{py.did}", *(["--armor"] if armor else []),
                     stdin=body).stdout
    env = ampy.verify_envelope(ampy.read_envelope_bytes(sealed), amp.doc)
    assert [r.did for r in env.header.recipients] == [amp.did, py.did]
    assert ampy_open(py.identity, amp.doc, sealed) == (None, body)
    assert amp_open(amp, sealed) == (None, body)


def test_amp_header_fields(amp, py):
    expires = int(time.time()) + 3600
    sealed = amp.run("seal", "--to", py.did, "--content-type", "message/rfc822",
                     "--expires", expires, stdin=b"fields").stdout
    opened = ampy.open_envelope(sealed, py.identity, amp.doc)
    assert (opened.content_type, opened.expires, opened.sender, opened.body) == \
        ("message/rfc822", expires, amp.did, b"fields")
    assert abs(opened.created - time.time()) < 60


def decrypted_z(envelope, identity, sender_doc):
    """The compressed frame inside an envelope, by the §5.2/§5.3 steps done by hand."""
    h = ampy.decode_envelope(envelope).header
    env = ampy.pb.Envelope.FromString(envelope)
    entry = next(r for r in h.recipients if r.did == identity.did)
    ctx = ampy.wrap_context(h.envelope_id, h.sender, identity.did, sender_doc.enc_pk,
                            identity.enc_pk)
    kek = ampy.key_encryption_key(ampy.x25519(identity.enc_sk, sender_doc.enc_pk), ctx)
    key = ampy.unwrap_key(entry.wrapped_key, kek, ctx)
    padded = ampy.aead_decrypt(key, h.payload_nonce, env.ciphertext,
                               ampy.payload_ad(h.envelope_id, h.sender, h.content_type))
    return ampy.unpad(padded, h.padded_size), h.padded_size


@pytest.mark.parametrize("name", ["text", "100KB"])
def test_amp_padding_is_padme(amp, py, name):
    sealed = amp.run("seal", "--to", py.did, stdin=BODIES[name]).stdout
    z, padded_size = decrypted_z(sealed, py.identity, amp.doc)
    assert padded_size == ampy.padded_size_for(len(z))
    assert ampy.decompress_one_frame(z) == BODIES[name]


# ---- real mail, both ways ----

def corpus_messages():
    files = []
    for kind in ("ham", "spam"):
        files += sorted(glob.glob(os.path.join(CORPUS, kind, "*.eml")))[:3]
    return files


@pytest.mark.parametrize("path", corpus_messages() or ["missing"],
                         ids=lambda p: os.path.basename(os.path.dirname(p)) + "/"
                         + os.path.basename(p))
def test_corpus_both_ways(amp, py, path):
    if not os.path.exists(path):
        pytest.skip(f"no mail corpus under {CORPUS}")
    with open(path, "rb") as f:
        body = f.read()
    from_ampy = py.run("seal", "--key", py.key_path, "--to-doc", amp.doc_path,
                       "--content-type", "message/rfc822", stdin=body).stdout
    assert amp_open(amp, from_ampy) == (None, body)
    from_amp = amp.run("seal", "--to", py.did, "--content-type", "message/rfc822",
                       "--armor", stdin=body).stdout
    assert ampy_open(py.identity, amp.doc, from_amp) == (None, body)


# ---- tampering: both implementations refuse with the same code ----

def _flip(data, at):
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _reordered(data):
    env = ampy.pb.Envelope.FromString(data)

    def ld(number, payload):
        out, n = bytearray([number << 3 | 2]), len(payload)
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + payload

    return ld(1, env.header.SerializeToString()) + ld(3, env.signature) + ld(2, env.ciphertext)


def _mutated(data, mutate):
    env = ampy.pb.Envelope.FromString(data)
    mutate(env)
    return env.SerializeToString()


# Changes anyone can make to an envelope: name -> (function of the bytes, expected code).
UNSIGNED_TAMPERING = {
    "ciphertext-byte": (lambda d: _flip(d, len(d) - 100), "AMP_E_BAD_SIGNATURE"),
    "envelope-id-byte": (lambda d: _flip(d, d.index(
        ampy.pb.Envelope.FromString(d).header.envelope_id) + 3), "AMP_E_BAD_SIGNATURE"),
    "wrapped-key-byte": (lambda d: _flip(d, d.index(
        ampy.pb.Envelope.FromString(d).header.recipients[0].wrapped_key) + 30),
        "AMP_E_BAD_SIGNATURE"),
    "truncated": (lambda d: d[:-7], "AMP_E_TRUNCATED"),
    "unknown-field": (lambda d: d + b"\x78\x01", "AMP_E_NONCANONICAL"),
    "reordered-fields": (_reordered, "AMP_E_NONCANONICAL"),
    "version-2": (lambda d: _mutated(d, lambda e: setattr(e.header, "version", 2)),
                  "AMP_E_VERSION"),
    "sealed-sender": (lambda d: _mutated(d, lambda e: setattr(e.header, "sealed_sender", b"x")),
                      "AMP_E_UNSUPPORTED"),
    "uppercase-sender": (lambda d: _mutated(d, lambda e: setattr(
        e.header, "sender", e.header.sender.replace("example", "Example"))), "AMP_E_BAD_DID"),
    "duplicate-recipient": (lambda d: _mutated(d, lambda e: e.header.recipients.add().CopyFrom(
        e.header.recipients[0])), "AMP_E_DUPLICATE_RECIPIENT"),
    "lane-3": (lambda d: _mutated(d, lambda e: setattr(e.header, "lane", 3)), "AMP_E_MALFORMED"),
    "short-signature": (lambda d: _mutated(d, lambda e: setattr(e, "signature", e.signature[:-1])),
                        "AMP_E_MALFORMED"),
}


def _check_same_code(amp, py, sender_doc, tampered, expected):
    amp_code, amp_body = amp_open(amp, tampered)
    ampy_code, _ = ampy_open(py.identity, sender_doc, tampered)
    assert amp_body is None, "amp released plaintext from a tampered envelope"
    assert (amp_code, ampy_code) == (expected, expected)


@pytest.mark.parametrize("mutation", list(UNSIGNED_TAMPERING))
def test_tampered_from_ampy(amp, py, mutation):
    mutate, expected = UNSIGNED_TAMPERING[mutation]
    sealed = ampy.seal(py.identity, [amp.doc, py.doc], b"tamper with me")
    _check_same_code(amp, py, py.doc, mutate(sealed), expected)


@pytest.mark.parametrize("mutation", list(UNSIGNED_TAMPERING))
def test_tampered_from_amp(amp, py, mutation):
    mutate, expected = UNSIGNED_TAMPERING[mutation]
    sealed = amp.run("seal", "--to", f"{amp.did},{py.did}", stdin=b"tamper with me").stdout
    _check_same_code(amp, py, amp.doc, mutate(sealed), expected)


def test_tampered_verify_both(amp, py, tmp_path):
    sealed = amp.run("seal", "--to", py.did, stdin=b"verify me").stdout
    tampered = _flip(sealed, len(sealed) - 100)
    proc = amp.run("verify", stdin=tampered, check=False)
    assert proc.returncode != 0 and error_code(proc.stderr) == "AMP_E_BAD_SIGNATURE"
    path = tmp_path / "tampered.env"
    path.write_bytes(tampered)
    proc = py.run("verify", "--sender-doc", amp.doc_path, "-i", path, check=False)
    assert proc.returncode == 1 and error_code(proc.stderr) == "AMP_E_BAD_SIGNATURE"


def _resealed(py, amp, **seal_args):
    """An envelope ampy signs properly but with deliberately wrong contents."""
    return ampy.seal(py.identity, [amp.doc, py.doc], b"signed but wrong", **seal_args)


def _resign(py, data, mutate):
    env = ampy.pb.Envelope.FromString(data)
    mutate(env)
    env.signature = ampy.sign(py.identity.sign_sk, ampy.signature_input(env.header,
                                                                       env.ciphertext))
    return env.SerializeToString()


def _swap_wrapped_keys(env):
    first, second = env.header.recipients
    first.wrapped_key, second.wrapped_key = second.wrapped_key, first.wrapped_key


def _bad_padding(py, amp):
    key = os.urandom(32)
    sealed = _resealed(py, amp, content_key=key)

    def mutate(env):
        h = env.header
        padded = ampy.pad(b"")[:-1] + b"\x01"
        env.ciphertext = ampy.aead_encrypt(key, h.payload_nonce, padded,
                                           ampy.payload_ad(h.envelope_id, h.sender,
                                                           h.content_type))
    return _resign(py, sealed, mutate)


# Envelopes that only the sender's key can make: name -> (builder, expected code).
NOW = int(time.time())
SIGNED_TAMPERING = {
    "expired": (lambda py, amp: _resealed(py, amp, created=NOW - 1000, expires=NOW - 10),
                "AMP_E_EXPIRED"),
    "future": (lambda py, amp: _resealed(py, amp, created=NOW + 3600), "AMP_E_FUTURE"),
    "ciphertext-resigned": (lambda py, amp: _resign(py, _resealed(py, amp), lambda e: setattr(
        e, "ciphertext", _flip(e.ciphertext, 5))), "AMP_E_DECRYPT"),
    "wrapped-keys-swapped": (lambda py, amp: _resign(py, _resealed(py, amp), _swap_wrapped_keys),
                             "AMP_E_KEY_UNWRAP"),
    "padding": (_bad_padding, "AMP_E_PADDING"),
    "not-zstd": (lambda py, amp: _resealed(py, amp, z=b"not a zstd frame"), "AMP_E_DECOMPRESS"),
    "two-frames": (lambda py, amp: _resealed(py, amp, z=zstandard.ZstdCompressor().compress(
        b"x") * 2), "AMP_E_DECOMPRESS"),
    "skippable-frame": (lambda py, amp: _resealed(py, amp, z=bytes.fromhex("502a4d1800000000")
                                                  + zstandard.ZstdCompressor().compress(b"x")),
                        "AMP_E_DECOMPRESS"),
    "bomb": (lambda py, amp: _resealed(py, amp, z=zstandard.ZstdCompressor().compress(
        bytes(ampy.MAX_BODY + 1))), "AMP_E_TOO_LARGE"),
}


@pytest.mark.parametrize("case", list(SIGNED_TAMPERING))
def test_signed_but_wrong(amp, py, case):
    build, expected = SIGNED_TAMPERING[case]
    _check_same_code(amp, py, py.doc, build(py, amp), expected)


def test_not_recipient_both(amp, py, tmp_path):
    other = Ampy(str(tmp_path / "other"), OTHER_DID)
    from_ampy = ampy.seal(py.identity, [other.doc], b"not for amp")
    assert amp_open(amp, from_ampy)[0] == "AMP_E_NOT_RECIPIENT"
    assert ampy_open(py.identity, py.doc, from_ampy)[0] == "AMP_E_NOT_RECIPIENT"
    amp.run("did", "import", other.doc_path)
    from_amp = amp.run("seal", "--to", other.did, stdin=b"not for ampy").stdout
    assert ampy_open(py.identity, amp.doc, from_amp)[0] == "AMP_E_NOT_RECIPIENT"
    assert amp_open(amp, from_amp)[0] == "AMP_E_NOT_RECIPIENT"


def test_low_order_key_both(amp, py, tmp_path):
    """A DID document whose X25519 key is a low-order point (AMP-R-005)."""
    low = ampy.Identity.generate("did:aftersmtp:py.example.org:low")
    low_doc = ampy.DidDocument(low.did, low.sign_pk, bytes(32))
    path = tmp_path / "low.json"
    path.write_text(low_doc.to_json())
    amp.run("did", "import", path)
    proc = amp.run("seal", "--to", low.did, stdin=b"x", check=False)
    assert proc.returncode != 0 and error_code(proc.stderr) == "AMP_E_BAD_KEY"
    with pytest.raises(ampy.AmpError) as info:
        ampy.seal(py.identity, [low_doc], b"x")
    assert info.value.code == "AMP_E_BAD_KEY"
    from_low = ampy.seal(low, [amp.doc, py.doc], b"x")  # signed properly, bad published key
    _check_same_code(amp, py, low_doc, from_low, "AMP_E_BAD_KEY")


# ---- proof of work ----

def test_pow_ampy_to_amp(amp, py):
    stamp = py.run("pow-mint", "--key", py.key_path, "--bits", 10).stdout.decode().strip()
    assert re.fullmatch(r"amp-pow-v1:10:[0-9]+:[0-9a-f]{16}", stamp)
    amp.run("pow", "check", "--bits", 10, "--doc", py.doc_path, stamp)
    proc = amp.run("pow", "check", "--bits", 11, "--doc", py.doc_path, stamp, check=False)
    assert proc.returncode != 0 and error_code(proc.stderr) == "AMP_E_POW_INSUFFICIENT"
    stale = ampy.pow_mint(py.doc, 6, timestamp=int(time.time()) - 90000).to_text()
    proc = amp.run("pow", "check", "--bits", 6, "--doc", py.doc_path, stale, check=False)
    assert proc.returncode != 0 and error_code(proc.stderr) == "AMP_E_POW_STALE"
    future = ampy.pow_mint(py.doc, 6, timestamp=int(time.time()) + 3600).to_text()
    proc = amp.run("pow", "check", "--bits", 6, "--doc", py.doc_path, future, check=False)
    assert proc.returncode != 0 and error_code(proc.stderr) == "AMP_E_FUTURE"


def test_pow_amp_to_ampy(amp, py):
    stamp = amp.run("pow", "mint", "--bits", 10).stdout.decode().strip()
    assert re.fullmatch(r"amp-pow-v1:10:[0-9]+:[0-9a-f]{16}", stamp), stamp
    py.run("pow-check", "--doc", amp.doc_path, "--bits", 10, stamp)
    proc = py.run("pow-check", "--doc", amp.doc_path, "--bits", 11, stamp, check=False)
    assert proc.returncode == 1 and error_code(proc.stderr) == "AMP_E_POW_INSUFFICIENT"
    amp.run("pow", "check", "--bits", 10, "--doc", amp.doc_path, stamp)
