#!/usr/bin/python3
"""ampy — a second, independent implementation of AMP v1 in Python.

Written from docs/PROTOCOL.md and proto/amp.proto alone, as an interoperability
oracle for the C implementation.  Section numbers (§) and requirement numbers
(AMP-R-nnn) below refer to docs/PROTOCOL.md.

Run with Debian's Python (/usr/bin/python3): it needs PyNaCl, protobuf and
zstandard.  The protobuf module is generated with `protoc` into a temporary
directory on import; nothing generated is kept.

Identities are kept in a small JSON file private to ampy:
    {"did": "...", "sign_seed": "<hex 32 bytes>", "enc_sk": "<hex 32 bytes>"}
"""

import argparse
import atexit
import base64
import binascii
import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
import zstandard

PROTO_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))


def _load_protobuf_module():
    """Generate amp_pb2.py from proto/amp.proto into a temp dir and import it."""
    out = tempfile.mkdtemp(prefix="ampy-pb-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(["protoc", f"--python_out={out}", f"--proto_path={PROTO_DIR}",
                    "amp.proto"], check=True)
    spec = importlib.util.spec_from_file_location("amp_pb2", os.path.join(out, "amp_pb2.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pb = _load_protobuf_module()

# §2 Limits.
MAX_DID = 332
MAX_CONTENT_TYPE = 255
MAX_RECIPIENTS = 1000
MAX_BODY = 32 * 1024 * 1024
MAX_PADDED = 40 * 1024 * 1024
MAX_ENVELOPE = 48 * 1024 * 1024
MAX_DOCUMENT = 64 * 1024
ENVELOPE_SKEW = 600
STAMP_SKEW = 300
MAX_POW_BITS = 64
# §6.2 A stamp older than this is stale.
STAMP_MAX_AGE = 86400
# §5.1 Fixed sizes and bounds.
VERSION = 1
ENVELOPE_ID_LEN = 16
NONCE_LEN = 24
KEY_LEN = 32
WRAPPED_KEY_LEN = 72
SIGNATURE_LEN = 64
TAG_LEN = 16
MIN_PADDED = 256
LANES = (0, 1, 2)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class AmpError(Exception):
    """A protocol failure carrying one of libamp's error code names (§5.6)."""

    def __init__(self, code, message=""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------
# §1 Notation and primitives

def u8(n):
    return struct.pack(">B", n)


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def lp(x):
    """Length-prefixed byte string: u32(len(x)) ‖ x.  Strings become ASCII/UTF-8."""
    if isinstance(x, str):
        x = x.encode("utf-8")
    return u32(len(x)) + x


def H(x, n):
    return hashlib.blake2b(x, digest_size=n).digest()


def KH(k, x, n):
    return hashlib.blake2b(x, key=k, digest_size=n).digest()


def x25519(sk, pk):
    """X25519(sk, pk); a low-order `pk` (all-zero shared secret) is AMP_E_BAD_KEY (AMP-R-005)."""
    try:
        shared = sodium.crypto_scalarmult(sk, pk)
    except nacl.exceptions.RuntimeError as exc:
        raise AmpError("AMP_E_BAD_KEY", "X25519 with a low-order public key") from exc
    if shared == bytes(32):
        raise AmpError("AMP_E_BAD_KEY", "X25519 shared secret is all zero")
    return shared


def aead_encrypt(k, n, m, ad):
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(m, ad, n, k)


def aead_decrypt(k, n, c, ad):
    """Returns the plaintext, or None when authentication fails."""
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(c, ad, n, k)
    except nacl.exceptions.CryptoError:
        return None


def b64u_encode(x):
    return base64.urlsafe_b64encode(x).rstrip(b"=").decode("ascii")


def b64u_decode(s):
    """Strict base64url without padding: only the alphabet, canonical trailing bits."""
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise ValueError("not base64url without padding")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64u_encode(raw) != s:
        raise ValueError("non-canonical base64url")
    return raw


# --------------------------------------------------------------------------
# §3.1 DID syntax

_LET_DIG = "[a-z0-9]"
_LABEL = rf"{_LET_DIG}(?:[a-z0-9-]*{_LET_DIG})?"
_LOCAL = rf"{_LET_DIG}(?:[a-z0-9._-]*{_LET_DIG})?"
_DID_RE = re.compile(rf"did:aftersmtp:({_LABEL}(?:\.{_LABEL})*):({_LOCAL})")


def is_valid_did(did):
    """True when `did` (str) is a canonical DID (§3.1, AMP-R-003, AMP-R-004)."""
    if not isinstance(did, str) or len(did.encode("utf-8")) > MAX_DID:
        return False
    m = _DID_RE.fullmatch(did)
    if not m:
        return False
    domain, local = m.groups()
    return (len(domain) <= 253
            and all(len(label) <= 63 for label in domain.split("."))
            and len(local) <= 64
            and ".." not in local)


def check_did(did):
    """Raise AMP_E_BAD_DID for an invalid DID; its length is part of its
    syntax, so an over-long DID is bad syntax too (§2)."""
    if len(did.encode("utf-8")) > MAX_DID:
        raise AmpError("AMP_E_BAD_DID", f"DID longer than {MAX_DID} bytes")
    if not is_valid_did(did):
        raise AmpError("AMP_E_BAD_DID", f"not a canonical DID: {did!r}")


# --------------------------------------------------------------------------
# §3.2 Keys, identities and key ids

def key_id(pk):
    return H(pk, 8).hex()


@dataclass(frozen=True)
class Identity:
    """A private identity: DID, Ed25519 seed and X25519 secret key."""
    did: str
    sign_seed: bytes
    enc_sk: bytes

    @property
    def sign_pk(self):
        return sodium.crypto_sign_seed_keypair(self.sign_seed)[0]

    @property
    def sign_sk(self):
        return sodium.crypto_sign_seed_keypair(self.sign_seed)[1]

    @property
    def enc_pk(self):
        return sodium.crypto_scalarmult_base(self.enc_sk)

    @classmethod
    def generate(cls, did):
        check_did(did)
        return cls(did, os.urandom(32), os.urandom(32))

    def document(self):
        return DidDocument(self.did, self.sign_pk, self.enc_pk)

    def to_json(self):
        return json.dumps({"did": self.did, "sign_seed": self.sign_seed.hex(),
                           "enc_sk": self.enc_sk.hex()}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text):
        obj = json.loads(text)
        return cls(obj["did"], bytes.fromhex(obj["sign_seed"]), bytes.fromhex(obj["enc_sk"]))


# --------------------------------------------------------------------------
# §3.3 DID document

@dataclass(frozen=True)
class DidDocument:
    """The public half of an identity, as read from or written to a DID document."""
    did: str
    sign_pk: bytes
    enc_pk: bytes

    @property
    def sig_method_id(self):
        return f"{self.did}#sig-{key_id(self.sign_pk)}"

    @property
    def enc_method_id(self):
        return f"{self.did}#enc-{key_id(self.enc_pk)}"

    def to_dict(self):
        def method(method_id, crv, pk):
            return {"id": method_id, "type": "JsonWebKey2020", "controller": self.did,
                    "publicKeyJwk": {"kty": "OKP", "crv": crv, "x": b64u_encode(pk)}}
        return {
            "@context": ["https://www.w3.org/ns/did/v1",
                         "https://w3id.org/security/suites/jws-2020/v1"],
            "id": self.did,
            "verificationMethod": [method(self.sig_method_id, "Ed25519", self.sign_pk),
                                   method(self.enc_method_id, "X25519", self.enc_pk)],
            "authentication": [self.sig_method_id],
            "assertionMethod": [self.sig_method_id],
            "keyAgreement": [self.enc_method_id],
        }

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def parse(cls, data):
        """Parse a DID document (str or bytes) with every AMP-R-006 check."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if len(data) > MAX_DOCUMENT:
            raise AmpError("AMP_E_TOO_LARGE", "DID document over 64 KiB")
        def no_duplicates(pairs):
            names = [k for k, _ in pairs]
            if len(names) != len(set(names)):
                raise ValueError("a member name is repeated")
            return dict(pairs)

        try:
            doc = json.loads(data, object_pairs_hook=no_duplicates)
        except ValueError as exc:
            raise AmpError("AMP_E_MALFORMED", f"DID document is not JSON: {exc}") from exc

        def require(cond, why):
            if not cond:
                raise AmpError("AMP_E_MALFORMED", f"DID document: {why}")

        require(isinstance(doc, dict), "not a JSON object")
        did = doc.get("id")
        require(isinstance(did, str), "`id` is not a string")
        check_did(did)
        methods = doc.get("verificationMethod")
        require(isinstance(methods, list), "`verificationMethod` is not a list")
        # Version 1 documents carry only JsonWebKey2020 OKP Ed25519/X25519 keys.
        for m in methods:
            require(isinstance(m, dict) and m.get("type") == "JsonWebKey2020"
                    and isinstance(m.get("publicKeyJwk"), dict)
                    and m["publicKeyJwk"].get("kty") == "OKP"
                    and m["publicKeyJwk"].get("crv") in ("Ed25519", "X25519"),
                    "a verification method is not a JsonWebKey2020 OKP "
                    "Ed25519 or X25519 key")

        def the_method(crv):
            found = [m for m in methods if m["publicKeyJwk"].get("crv") == crv]
            require(len(found) == 1, f"{len(found)} verification methods with crv {crv}")
            return found[0]

        def method_key(method, prefix):
            try:
                pk = b64u_decode(method["publicKeyJwk"].get("x"))
            except (ValueError, TypeError):
                pk = b""
            if len(pk) != 32:
                raise AmpError("AMP_E_BAD_KEY",
                               f"DID document: {prefix} key `x` is not 32 bytes of base64url")
            require(method.get("id") == f"{did}#{prefix}-{key_id(pk)}",
                    f"{prefix} method id is not <did>#{prefix}-<keyid>")
            require(method.get("controller") == did, f"{prefix} method controller is not `id`")
            return pk

        result = cls(did, method_key(the_method("Ed25519"), "sig"),
                     method_key(the_method("X25519"), "enc"))
        for relation, method_id in (("authentication", result.sig_method_id),
                                    ("keyAgreement", result.enc_method_id)):
            names = doc.get(relation)
            require(isinstance(names, list) and method_id in names,
                    f"`{relation}` does not name {method_id}")
        return result


# --------------------------------------------------------------------------
# §5.2 Key wrapping

def wrap_context(envelope_id, sdid, rdid, s_enc_pk, r_enc_pk):
    return (b"AMPv1-wrap" + lp(envelope_id) + lp(sdid) + lp(rdid) + s_enc_pk + r_enc_pk)


def key_encryption_key(dh, wrap_ctx):
    return KH(dh, wrap_ctx, 32)


def wrap_key(content_key, kek, wrap_ctx, wnonce):
    return wnonce + aead_encrypt(kek, wnonce, content_key, wrap_ctx)


def unwrap_key(wrapped_key, kek, wrap_ctx):
    """Returns the content key, or None when authentication fails."""
    return aead_decrypt(kek, wrapped_key[:NONCE_LEN], wrapped_key[NONCE_LEN:], wrap_ctx)


# --------------------------------------------------------------------------
# §5.3 Payload

def padme(length):
    """Padmé rounding of `length` (>= 2)."""
    e = length.bit_length() - 1            # floor(log2(L))
    s = e.bit_length()                     # floor(log2(E)) + 1
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def padded_size_for(z_len):
    return max(MIN_PADDED, padme(4 + z_len))


def pad(z):
    size = padded_size_for(len(z))
    return (u32(len(z)) + z).ljust(size, b"\0")


def payload_ad(envelope_id, sdid, content_type):
    return b"AMPv1-payload" + lp(envelope_id) + lp(sdid) + lp(content_type)


def unpad(padded, padded_size):
    """AMP-R-016 padding checks; returns z."""
    if len(padded) != padded_size:
        raise AmpError("AMP_E_PADDING", "decrypted length differs from padded_size")
    z_len = struct.unpack(">I", padded[:4])[0]
    if z_len > padded_size - 4:
        raise AmpError("AMP_E_PADDING", "compressed length exceeds padded_size - 4")
    if any(padded[4 + z_len:]):
        raise AmpError("AMP_E_PADDING", "non-zero padding byte")
    return padded[4:4 + z_len]


# Each input chunk fed to the decompressor is small enough that its output is
# bounded (a zstd block of a few bytes yields at most 128 KiB), so a
# compression bomb is stopped within a few MiB of the 32 MiB limit.
_DECOMPRESS_CHUNK = 256


# RFC 8878 §3.1.1: a Zstandard frame starts with this magic number (a
# skippable frame has another, and is not "a zstd frame" here).
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decompress_one_frame(z):
    """AMP-R-016: `z` is exactly one complete zstd frame of at most 32 MiB of output."""
    if not z.startswith(ZSTD_MAGIC):
        raise AmpError("AMP_E_DECOMPRESS", "not a Zstandard frame")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    parts, total = [], 0
    try:
        for i in range(0, len(z), _DECOMPRESS_CHUNK):
            part = dobj.decompress(z[i:i + _DECOMPRESS_CHUNK])
            total += len(part)
            if total > MAX_BODY:
                raise AmpError("AMP_E_TOO_LARGE", "body decompresses to more than 32 MiB")
            parts.append(part)
            if dobj.eof:
                if dobj.unused_data or i + _DECOMPRESS_CHUNK < len(z):
                    raise AmpError("AMP_E_DECOMPRESS", "bytes after the zstd frame")
                break
    except zstandard.ZstdError as exc:
        raise AmpError("AMP_E_DECOMPRESS", f"zstd: {exc}") from exc
    if not dobj.eof:
        raise AmpError("AMP_E_DECOMPRESS", "incomplete zstd frame")
    return b"".join(parts)


# --------------------------------------------------------------------------
# §5.5 Signature

def signature_input(header, ciphertext):
    """sig_input for a decoded (or about to be encoded) EnvelopeHeader."""
    parts = [b"AMPv1-sig", u32(header.version), lp(header.envelope_id), lp(header.sender),
             lp(header.sealed_sender), u64(header.created), u64(header.expires),
             u32(header.lane), lp(header.content_type), u64(header.padded_size),
             lp(header.payload_nonce), u32(len(header.recipients))]
    for r in header.recipients:
        parts += [lp(r.did), lp(r.wrapped_key)]
    parts.append(H(ciphertext, 32))
    return b"".join(parts)


def sign(sign_sk, message):
    return sodium.crypto_sign(message, sign_sk)[:SIGNATURE_LEN]


def signature_ok(sign_pk, signature, message):
    try:
        sodium.crypto_sign_open(signature + message, sign_pk)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False


# --------------------------------------------------------------------------
# §5 Sealing

def _check_content_type(content_type):
    raw = content_type.encode("utf-8")
    if len(raw) > MAX_CONTENT_TYPE:
        raise AmpError("AMP_E_MALFORMED", "content type longer than 255 bytes")
    if not raw or any(not (0x20 <= b <= 0x7e) for b in raw):
        raise AmpError("AMP_E_MALFORMED", "content type is not 1..255 printable ASCII bytes")


def seal(sender, recipients, body, content_type=DEFAULT_CONTENT_TYPE, *, created=None,
         expires=0, lane=0, envelope_id=None, content_key=None, payload_nonce=None,
         wrap_nonces=None, z=None):
    """Seal `body` from `sender` (Identity) to `recipients` (DidDocuments); returns bytes.

    The random values (envelope_id, content_key, payload_nonce, one wrap nonce
    per recipient) and the compressed frame `z` are drawn/computed here unless
    given, which the test vectors do.
    """
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise AmpError("AMP_E_TOO_LARGE" if recipients else "AMP_E_MALFORMED",
                       "an envelope has 1..1000 recipients")
    dids = [r.did for r in recipients]
    if len(set(dids)) != len(dids):
        raise AmpError("AMP_E_DUPLICATE_RECIPIENT", "a recipient is named twice")
    if len(body) > MAX_BODY:
        raise AmpError("AMP_E_TOO_LARGE", "body over 32 MiB")
    _check_content_type(content_type)
    created = int(time.time()) if created is None else created
    if expires and expires <= created:
        raise AmpError("AMP_E_MALFORMED", "expires must be after created")
    if lane not in LANES:
        raise AmpError("AMP_E_MALFORMED", f"unknown lane {lane}")

    envelope_id = envelope_id or os.urandom(ENVELOPE_ID_LEN)
    content_key = content_key or os.urandom(KEY_LEN)
    payload_nonce = payload_nonce or os.urandom(NONCE_LEN)
    wrap_nonces = wrap_nonces or [os.urandom(NONCE_LEN) for _ in recipients]
    if z is None:
        z = zstandard.ZstdCompressor(level=3).compress(body)

    env = pb.Envelope()
    h = env.header
    h.version = VERSION
    h.envelope_id = envelope_id
    h.sender = sender.did
    for recipient, wnonce in zip(recipients, wrap_nonces):
        ctx = wrap_context(envelope_id, sender.did, recipient.did, sender.enc_pk,
                           recipient.enc_pk)
        kek = key_encryption_key(x25519(sender.enc_sk, recipient.enc_pk), ctx)
        h.recipients.add(did=recipient.did, wrapped_key=wrap_key(content_key, kek, ctx, wnonce))
    h.created = created
    h.expires = expires
    h.lane = lane
    h.content_type = content_type
    padded = pad(z)
    h.padded_size = len(padded)
    h.payload_nonce = payload_nonce
    env.ciphertext = aead_encrypt(content_key, payload_nonce, padded,
                                  payload_ad(envelope_id, sender.did, content_type))
    env.signature = sign(sender.sign_sk, signature_input(h, env.ciphertext))
    return env.SerializeToString()


# --------------------------------------------------------------------------
# §5.6 Opening: steps 1–3, decoding

# The wire type of every field of the schema (0 varint, 2 length-delimited),
# and which fields are nested messages.
_WIRE_TYPES = {
    "Envelope": {1: 2, 2: 2, 3: 2},
    "EnvelopeHeader": {1: 0, 2: 2, 3: 2, 4: 2, 5: 2, 6: 0, 7: 0, 8: 0, 9: 2, 10: 0, 11: 2},
    "Recipient": {1: 2, 2: 2},
}
_MESSAGE_FIELDS = {"Envelope": {1: "EnvelopeHeader"}, "EnvelopeHeader": {5: "Recipient"},
                   "Recipient": {}}


def _read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise AmpError("AMP_E_TRUNCATED", "input ends inside a varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise AmpError("AMP_E_MALFORMED", "varint longer than 10 bytes")


def _scan_wire(buf, message):
    """Walk the protobuf wire format: input that ends inside a field (at any
    nesting level) is AMP_E_TRUNCATED; a known field with the wrong wire type
    is AMP_E_MALFORMED (the protobuf runtime would keep it as an unknown field).
    Other wire-format errors are left to the runtime's parser (AMP_E_MALFORMED);
    unknown fields are left to the canonical check (AMP_E_NONCANONICAL)."""
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        expected = _WIRE_TYPES[message].get(number)
        if expected is not None and wire_type != expected:
            raise AmpError("AMP_E_MALFORMED", f"{message} field {number} has wire type "
                                              f"{wire_type}, not {expected}")
        if wire_type == 0:
            _, pos = _read_varint(buf, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > len(buf):
                raise AmpError("AMP_E_TRUNCATED", "input ends inside a fixed-size field")
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            if length > len(buf) - pos:
                raise AmpError("AMP_E_TRUNCATED", "input ends inside a length-delimited field")
            sub = _MESSAGE_FIELDS[message].get(number)
            if sub:
                _scan_wire(buf[pos:pos + length], sub)
            pos += length
        else:
            raise AmpError("AMP_E_MALFORMED", f"unsupported wire type {wire_type}")


def decode_envelope(data):
    """Steps 1–3 of §5.6: size, decoding, canonical form, version and structure."""
    # 1. Size.
    if len(data) > MAX_ENVELOPE:
        raise AmpError("AMP_E_TOO_LARGE", "encoded envelope over 48 MiB")
    # 2. Decode, canonical (AMP-R-010), version, sealed_sender.
    _scan_wire(data, "Envelope")
    env = pb.Envelope()
    try:
        env.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise AmpError("AMP_E_MALFORMED", f"not a valid Envelope: {exc}") from exc
    canonical = pb.Envelope()
    canonical.CopyFrom(env)
    canonical.DiscardUnknownFields()
    if canonical.SerializeToString() != data:
        raise AmpError("AMP_E_NONCANONICAL", "envelope is not in the canonical encoding")
    h = env.header
    if h.version != VERSION:
        raise AmpError("AMP_E_VERSION", f"version {h.version}")
    if h.sealed_sender:
        raise AmpError("AMP_E_UNSUPPORTED", "sealed_sender is not supported in version 1")

    # 3. Structure (§5.1), in field order.
    def malformed(cond, why):
        if cond:
            raise AmpError("AMP_E_MALFORMED", why)

    malformed(len(h.envelope_id) != ENVELOPE_ID_LEN, "envelope_id is not 16 bytes")
    check_did(h.sender)
    malformed(not h.recipients, "no recipients")
    if len(h.recipients) > MAX_RECIPIENTS:
        raise AmpError("AMP_E_TOO_LARGE", "more than 1000 recipients")
    for r in h.recipients:
        check_did(r.did)
        malformed(len(r.wrapped_key) != WRAPPED_KEY_LEN, "wrapped_key is not 72 bytes")
    if len({r.did for r in h.recipients}) != len(h.recipients):
        raise AmpError("AMP_E_DUPLICATE_RECIPIENT", "a recipient DID appears twice")
    malformed(h.expires != 0 and h.expires <= h.created, "expires is not after created")
    malformed(h.lane not in LANES, f"unknown lane {h.lane}")
    _check_content_type(h.content_type)
    malformed(h.padded_size < MIN_PADDED, "padded_size below 256")
    if h.padded_size > MAX_PADDED:
        raise AmpError("AMP_E_TOO_LARGE", "padded_size over 40 MiB")
    malformed(len(h.payload_nonce) != NONCE_LEN, "payload_nonce is not 24 bytes")
    malformed(len(env.ciphertext) != h.padded_size + TAG_LEN,
              "ciphertext is not padded_size + 16 bytes")
    malformed(len(env.signature) != SIGNATURE_LEN, "signature is not 64 bytes")
    return env


def verify_envelope(data, sender_doc, now=None):
    """Steps 1–5 of §5.6 (what a routing node does); returns the decoded Envelope."""
    env = decode_envelope(data)
    h = env.header
    # 4. Signature.
    if sender_doc.did != h.sender:
        raise AmpError("AMP_E_SENDER_MISMATCH",
                       f"document is for {sender_doc.did}, envelope is from {h.sender}")
    if not signature_ok(sender_doc.sign_pk, env.signature, signature_input(h, env.ciphertext)):
        raise AmpError("AMP_E_BAD_SIGNATURE", "signature does not verify")
    # 5. Time.
    now = int(time.time()) if now is None else now
    if h.created > now + ENVELOPE_SKEW:
        raise AmpError("AMP_E_FUTURE", "created too far in the future")
    if h.expires != 0 and not now < h.expires:
        raise AmpError("AMP_E_EXPIRED", "envelope has expired")
    return env


@dataclass(frozen=True)
class Opened:
    """What a recipient learns from an envelope it opened."""
    envelope_id: bytes
    sender: str
    created: int
    expires: int
    lane: int
    content_type: str
    body: bytes


def open_envelope(data, identity, sender_doc, now=None):
    """All steps of §5.6; returns Opened.  No plaintext leaves before every check passed."""
    env = verify_envelope(data, sender_doc, now)
    h = env.header
    # 6. Our entry.
    entry = next((r for r in h.recipients if r.did == identity.did), None)
    if entry is None:
        raise AmpError("AMP_E_NOT_RECIPIENT", f"{identity.did} is not a recipient")
    # 7. Unwrap K.
    ctx = wrap_context(h.envelope_id, h.sender, identity.did, sender_doc.enc_pk, identity.enc_pk)
    kek = key_encryption_key(x25519(identity.enc_sk, sender_doc.enc_pk), ctx)
    content_key = unwrap_key(entry.wrapped_key, kek, ctx)
    if content_key is None:
        raise AmpError("AMP_E_KEY_UNWRAP", "wrapped key does not authenticate")
    # 8. Decrypt and check the padding.
    padded = aead_decrypt(content_key, h.payload_nonce, env.ciphertext,
                          payload_ad(h.envelope_id, h.sender, h.content_type))
    if padded is None:
        raise AmpError("AMP_E_DECRYPT", "payload does not authenticate")
    z = unpad(padded, h.padded_size)
    # 9. Decompress.
    body = decompress_one_frame(z)
    return Opened(h.envelope_id, h.sender, h.created, h.expires, h.lane, h.content_type, body)


# --------------------------------------------------------------------------
# §5.8 Text armour

ARMOR_BEGIN = "-----BEGIN AMP ENVELOPE-----"
ARMOR_END = "-----END AMP ENVELOPE-----"


def armor(data):
    b64 = base64.b64encode(data).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"


def dearmor(text):
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AmpError("AMP_E_MALFORMED", "armour is not ASCII") from exc
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != ARMOR_BEGIN:
        raise AmpError("AMP_E_MALFORMED", "armour does not start with its BEGIN line")
    if ARMOR_END not in lines[1:]:
        raise AmpError("AMP_E_TRUNCATED", "armour has no END line")    # §5.8
    if lines[-1] != ARMOR_END:
        raise AmpError("AMP_E_MALFORMED", "text after the armour END line")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise AmpError("AMP_E_MALFORMED", f"armour base64: {exc}") from exc


def read_envelope_bytes(data):
    """Accept a binary envelope or its text armour (detected by the BEGIN line)."""
    if data.lstrip().startswith(ARMOR_BEGIN.encode("ascii")):
        return dearmor(data)
    return data


# --------------------------------------------------------------------------
# §6 Registration proof of work

@dataclass(frozen=True)
class PowStamp:
    bits: int
    timestamp: int
    counter: int

    def to_text(self):
        return f"amp-pow-v1:{self.bits}:{self.timestamp}:{self.counter:016x}"

    @classmethod
    def from_text(cls, text):
        m = re.fullmatch(r"amp-pow-v1:(0|[1-9][0-9]*):(0|[1-9][0-9]*):([0-9a-f]{16})", text)
        if not m or int(m.group(2)) >= 1 << 64:
            raise AmpError("AMP_E_MALFORMED", f"not a text stamp: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3), 16))


def pow_prefix(did, sign_pk, enc_pk, timestamp, bits):
    """pow_input(counter) without its final u64(counter)."""
    return b"AMPv1-pow" + lp(did) + sign_pk + enc_pk + u64(timestamp) + u8(bits)


def pow_digest(did, sign_pk, enc_pk, stamp):
    return H(pow_prefix(did, sign_pk, enc_pk, stamp.timestamp, stamp.bits)
             + u64(stamp.counter), 32)


def has_leading_zero_bits(digest, bits):
    return int.from_bytes(digest, "big") >> (8 * len(digest) - bits) == 0


def pow_mint(doc, bits, timestamp=None):
    if not 1 <= bits <= MAX_POW_BITS:
        raise AmpError("AMP_E_MALFORMED", "bits is 1..64")
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = hashlib.blake2b(pow_prefix(doc.did, doc.sign_pk, doc.enc_pk, timestamp, bits),
                           digest_size=32)
    counter = 0
    while True:
        h = base.copy()
        h.update(u64(counter))
        if has_leading_zero_bits(h.digest(), bits):
            return PowStamp(bits, timestamp, counter)
        counter += 1


def pow_check(doc, stamp, required_bits, now=None):
    """AMP-R-020, checks in the order the requirement lists them."""
    if not 1 <= stamp.bits <= MAX_POW_BITS:
        raise AmpError("AMP_E_MALFORMED", "stamp bits outside 1..64")
    if stamp.bits < required_bits or not has_leading_zero_bits(
            pow_digest(doc.did, doc.sign_pk, doc.enc_pk, stamp), stamp.bits):
        raise AmpError("AMP_E_POW_INSUFFICIENT", "not enough proof of work")
    now = int(time.time()) if now is None else now
    if stamp.timestamp > now + STAMP_SKEW:
        raise AmpError("AMP_E_FUTURE", "stamp timestamp in the future")
    if now - stamp.timestamp > STAMP_MAX_AGE:
        raise AmpError("AMP_E_POW_STALE", "stamp older than a day")


# --------------------------------------------------------------------------
# Command line

def _read(path):
    if path in (None, "-"):
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    if path in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        with open(path, "wb") as f:
            f.write(data)


def _load_identity(path):
    return Identity.from_json(_read(path))


def _load_document(path):
    return DidDocument.parse(_read(path))


def cmd_keygen(args):
    ident = Identity.generate(args.did)
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(ident.to_json())


def cmd_document(args):
    _write(None, _load_identity(args.keyfile).document().to_json().encode())


def cmd_seal(args):
    sender = _load_identity(args.key)
    recipients = [_load_document(p) for p in args.to_doc]
    envelope = seal(sender, recipients, _read(args.input), args.content_type,
                    expires=args.expires)
    _write(args.output, armor(envelope).encode() if args.armor else envelope)


def cmd_open(args):
    opened = open_envelope(read_envelope_bytes(_read(args.input)), _load_identity(args.key),
                           _load_document(args.sender_doc))
    _write(args.output, opened.body)


def cmd_verify(args):
    env = verify_envelope(read_envelope_bytes(_read(args.input)), _load_document(args.sender_doc))
    print(f"OK sender={env.header.sender} envelope_id={env.header.envelope_id.hex()}")


def cmd_pow_mint(args):
    print(pow_mint(_load_identity(args.key).document(), args.bits).to_text())


def cmd_pow_check(args):
    pow_check(_load_document(args.doc), PowStamp.from_text(args.stamp), args.bits)
    print("OK")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ampy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="create an identity file")
    p.add_argument("--did", required=True)
    p.add_argument("-o", "--output", required=True, metavar="KEYFILE")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("document", help="print the DID document of an identity")
    p.add_argument("keyfile")
    p.set_defaults(func=cmd_document)

    p = sub.add_parser("seal", help="seal a body to one or more recipients")
    p.add_argument("--key", required=True, metavar="KEYFILE")
    p.add_argument("--to-doc", required=True, action="append", metavar="DOC.json")
    p.add_argument("-i", "--input")
    p.add_argument("-o", "--output")
    p.add_argument("--armor", action="store_true")
    p.add_argument("--content-type", default=DEFAULT_CONTENT_TYPE)
    p.add_argument("--expires", type=int, default=0, metavar="UNIXTIME")
    p.set_defaults(func=cmd_seal)

    p = sub.add_parser("open", help="open an envelope (binary or armoured)")
    p.add_argument("--key", required=True, metavar="KEYFILE")
    p.add_argument("--sender-doc", required=True, metavar="DOC.json")
    p.add_argument("-i", "--input")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("verify", help="check an envelope's structure, signature and times")
    p.add_argument("--sender-doc", required=True, metavar="DOC.json")
    p.add_argument("-i", "--input")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("pow-mint", help="mint a registration stamp")
    p.add_argument("--key", required=True, metavar="KEYFILE")
    p.add_argument("--bits", required=True, type=int)
    p.set_defaults(func=cmd_pow_mint)

    p = sub.add_parser("pow-check", help="check a registration stamp")
    p.add_argument("--doc", required=True, metavar="DOC.json")
    p.add_argument("--bits", required=True, type=int)
    p.add_argument("stamp")
    p.set_defaults(func=cmd_pow_check)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except AmpError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
