"""rfc9162.py — an independent Python check of the transparency log
(docs/PROTOCOL.md §11), written from RFC 9162 §2.1 and PROTOCOL §11, not
from src/lib/amp-log.c.  End-to-end tests import it to check what a node
serves: proofs, leaves, signed heads and cosignatures.

Hashes, keys and signatures are bytes; wherever one is taken as input a
hex string is accepted too.  Every verify_* returns a bool and never
raises on malformed input; decode_leaf raises ValueError.

    leaf_hash(data)                  SHA-256(0x00 || data)
    node_hash(left, right)           SHA-256(0x01 || left || right)
    mth(leaves) / mth_hashes(hashes) Merkle tree hash (RFC 9162 §2.1.1)
    verify_inclusion(index, size, leaf_hash, path, root)       §2.1.3.2
    verify_consistency(m, n, root_m, root_n, proof)            §2.1.4.2
    did_hash(did), envelope_digest(env)
    decode_leaf(data) -> dict, encode_leaf(dict) -> bytes      §11.2
    key_input(...), revoke_input(...), verify_key_history(leaves)
    head_input(head), verify_head(head, pk)                    §11.3
    cosign_input(head, witness, cotime), verify_cosig(head, witness,
        cotime, pk, sig)
"""
import hashlib
import re
import struct

import nacl.exceptions
import nacl.signing

PROOF_MAX = 65        # hashes in any proof (§11.1)
LEAF_MAX = 512        # bytes of an encoded leaf (§11.2)
DID_MAX = 332

REGISTER, ROTATE, REVOKE, RECEIPT = 1, 2, 3, 4
TYPE_NAMES = {REGISTER: "register", ROTATE: "rotate", REVOKE: "revoke",
              RECEIPT: "receipt"}

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DID_RE = re.compile(
    r"did:aftersmtp:(" + _LABEL + r"(?:\." + _LABEL + r")*)"
    r":([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)\Z")


def _b(x, n=None):
    """bytes from bytes or a hex string; n: the exact length wanted."""
    if isinstance(x, str):
        x = bytes.fromhex(x)
    x = bytes(x)
    if n is not None and len(x) != n:
        raise ValueError(f"expected {n} bytes, got {len(x)}")
    return x


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data) -> bytes:
    return sha256(b"\x00" + _b(data))


def node_hash(left, right) -> bytes:
    return sha256(b"\x01" + _b(left, 32) + _b(right, 32))


def _largest_pow2_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth_hashes(hashes) -> bytes:
    """MTH of a list of leaf hashes (the recursion of §2.1.1)."""
    hashes = [_b(h, 32) for h in hashes]

    def rec(lo, hi):
        n = hi - lo
        if n == 1:
            return hashes[lo]
        k = _largest_pow2_below(n)
        return node_hash(rec(lo, lo + k), rec(lo + k, hi))

    if not hashes:
        return sha256(b"")
    return rec(0, len(hashes))


def mth(leaves) -> bytes:
    """MTH of a list of leaf data (bytes)."""
    return mth_hashes([leaf_hash(d) for d in leaves])


def verify_inclusion(index, size, leaf_hash_, path, root) -> bool:
    """RFC 9162 §2.1.3.2."""
    try:
        index, size = int(index), int(size)
        r = _b(leaf_hash_, 32)
        root = _b(root, 32)
        path = [_b(p, 32) for p in path]
    except (TypeError, ValueError):
        return False
    if index < 0 or size < 0 or index >= size or len(path) > PROOF_MAX:
        return False
    fn, sn = index, size - 1
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, root_m, root_n, proof) -> bool:
    """RFC 9162 §2.1.4.2; m == n proves equal roots with an empty proof;
    m == 0 is not a valid request."""
    try:
        m, n = int(m), int(n)
        root_m, root_n = _b(root_m, 32), _b(root_n, 32)
        proof = [_b(p, 32) for p in proof]
    except (TypeError, ValueError):
        return False
    if m <= 0 or m > n or len(proof) > PROOF_MAX:
        return False
    if m == n:
        return not proof and root_m == root_n
    if not proof:
        return False
    if m & (m - 1) == 0:
        proof = [root_m] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root_m and sr == root_n and sn == 0


# ----------------------------------------------------------------- §11.2

def is_did(s) -> bool:
    """A canonical did:aftersmtp DID (PROTOCOL §3.1)."""
    if not isinstance(s, str) or len(s) > DID_MAX:
        return False
    m = _DID_RE.match(s)
    if not m:
        return False
    domain, local = m.group(1), m.group(2)
    return len(domain) <= 253 and len(local) <= 64 and ".." not in local


def did_hash(did: str) -> bytes:
    return sha256(b"AMPv1-log-did" + did.encode())


def envelope_digest(env) -> bytes:
    return sha256(_b(env))


def _u32(v):
    return struct.pack(">I", v)


def _u64(v):
    return struct.pack(">Q", v)


def _lp(b):
    return _u32(len(b)) + b


def decode_leaf(data) -> dict:
    """A leaf's fields: type (int), type_name, time, subject, and per
    type version, sign_pk, enc_pk, self_sig, prev_sig, sig, node.
    ValueError for anything that is not a canonical leaf."""
    data = _b(data)
    if len(data) > LEAF_MAX:
        raise ValueError("leaf longer than 512 bytes")
    if len(data) < 2:
        raise ValueError("leaf truncated")
    if data[0] != 1:
        raise ValueError("leaf version is not 1")
    t = data[1]
    want = {REGISTER: 174, ROTATE: 238, REVOKE: 110, RECEIPT: 46}.get(t)
    if want is None:
        raise ValueError("unknown leaf type")
    if len(data) < want:
        raise ValueError("leaf truncated")
    d = {"type": t, "type_name": TYPE_NAMES[t],
         "time": struct.unpack(">Q", data[2:10])[0], "subject": data[10:42]}
    body = data[42:]
    if t == RECEIPT:
        (n,) = struct.unpack(">I", body[:4])
        if n > DID_MAX:
            raise ValueError("receipt node DID too long")
        if len(body) - 4 != n:
            raise ValueError("leaf length does not match its DID length")
        try:
            node = body[4:].decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("receipt node is not a DID") from None
        if not is_did(node):
            raise ValueError("receipt node is not a canonical DID")
        d["node"] = node
        return d
    if len(data) != want:
        raise ValueError("bytes after the leaf")
    (v,) = struct.unpack(">I", body[:4])
    d["version"] = v
    if t == REGISTER and v != 0:
        raise ValueError("register leaf with version != 0")
    if t == ROTATE and v == 0:
        raise ValueError("rotate leaf with version 0")
    if t == REVOKE:
        d["sig"] = body[4:68]
        return d
    d["sign_pk"], d["enc_pk"] = body[4:36], body[36:68]
    d["self_sig"] = body[68:132]
    if t == ROTATE:
        d["prev_sig"] = body[132:196]
    return d


def encode_leaf(d: dict) -> bytes:
    t = d["type"]
    out = bytes([1, t]) + _u64(d["time"]) + _b(d["subject"], 32)
    if t in (REGISTER, ROTATE):
        out += (_u32(d["version"]) + _b(d["sign_pk"], 32)
                + _b(d["enc_pk"], 32) + _b(d["self_sig"], 64))
        if t == ROTATE:
            out += _b(d["prev_sig"], 64)
    elif t == REVOKE:
        out += _u32(d["version"]) + _b(d["sig"], 64)
    elif t == RECEIPT:
        out += _lp(d["node"].encode())
    else:
        raise ValueError("unknown leaf type")
    return out


def key_input(dh, version, sign_pk, enc_pk) -> bytes:
    return (b"AMPv1-log-key" + _b(dh, 32) + _u32(version)
            + _b(sign_pk, 32) + _b(enc_pk, 32))


def revoke_input(dh, version) -> bytes:
    return b"AMPv1-log-revoke" + _b(dh, 32) + _u32(version)


def verify_sig(pk, msg: bytes, sig) -> bool:
    try:
        nacl.signing.VerifyKey(_b(pk, 32)).verify(msg, _b(sig, 64))
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError,
            nacl.exceptions.CryptoError):
        return False


def verify_key_history(leaves) -> dict:
    """Fold one DID's identity leaves (dicts from decode_leaf) by AMP-R-060;
    returns {version, sign_pk, enc_pk, revoked, since}; ValueError with the
    reason when the history is not valid."""
    st = None
    for d in leaves:
        t = d["type"]
        if t not in (REGISTER, ROTATE, REVOKE):
            raise ValueError("not an identity leaf")
        if st is not None and d["subject"] != st["subject"]:
            raise ValueError("another DID's leaf")
        if st is not None and st["revoked"]:
            raise ValueError("a leaf after a revoke")
        if t == REGISTER:
            if st is not None:
                raise ValueError("second register")
            if not verify_sig(d["sign_pk"], key_input(d["subject"], 0,
                              d["sign_pk"], d["enc_pk"]), d["self_sig"]):
                raise ValueError("register self_sig does not verify")
            st = {"subject": d["subject"], "version": 0, "revoked": False}
        elif st is None:
            raise ValueError("history does not start with a register")
        elif t == ROTATE:
            v = d["version"]
            if v != st["version"] + 1:
                raise ValueError("rotate version is not current + 1")
            ki = key_input(d["subject"], v, d["sign_pk"], d["enc_pk"])
            if not verify_sig(d["sign_pk"], ki, d["self_sig"]):
                raise ValueError("rotate self_sig does not verify")
            if not verify_sig(st["sign_pk"], ki, d["prev_sig"]):
                raise ValueError("rotate prev_sig does not verify")
            st["version"] = v
        else:
            if d["version"] != st["version"]:
                raise ValueError("revoke does not name the current version")
            if not verify_sig(st["sign_pk"],
                              revoke_input(d["subject"], d["version"]),
                              d["sig"]):
                raise ValueError("revoke sig does not verify")
            st["revoked"] = True
            continue
        st["sign_pk"], st["enc_pk"] = d["sign_pk"], d["enc_pk"]
        st["since"] = d["time"]
    if st is None:
        raise ValueError("empty key history")
    return st


# ----------------------------------------------------------------- §11.3

def head_input(head: dict) -> bytes:
    """head: {log, size, root, time[, sig]}."""
    log = head["log"]
    if not is_did(log):
        raise ValueError("log is not a DID")
    return (b"AMPv1-tree-head" + _lp(log.encode()) + _u64(int(head["size"]))
            + _b(head["root"], 32) + _u64(int(head["time"])))


def cosign_input(head: dict, witness: str, cotime: int) -> bytes:
    if not is_did(witness):
        raise ValueError("witness is not a DID")
    return (b"AMPv1-cosign" + _lp(witness.encode()) + head_input(head)
            + _u64(int(cotime)))


def verify_head(head: dict, pk) -> bool:
    try:
        msg = head_input(head)
    except (KeyError, ValueError, TypeError, struct.error):
        return False
    return verify_sig(pk, msg, head.get("sig", b""))


def verify_cosig(head: dict, witness: str, cotime: int, pk, sig) -> bool:
    try:
        msg = cosign_input(head, witness, cotime)
    except (KeyError, ValueError, TypeError, struct.error):
        return False
    return verify_sig(pk, msg, sig)
