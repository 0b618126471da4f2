#!/usr/bin/python3
"""make-log-vectors.py — writes tests/vectors/log.json, the transparency
log's test vectors (docs/PROTOCOL.md §11), from an implementation of its
own: RFC 9162 §2.1's recursive definitions of MTH, PATH and PROOF, written
from the RFC's text, and §11.2/§11.3's byte strings, signed with PyNaCl.
tests/unit/test-merkle.c checks that src/lib/amp-log.c reproduces every
value; tests/e2e/rfc9162.py (the verifiers) is run over every proof here.

    /usr/bin/python3 tests/vectors/make-log-vectors.py [OUT]

Only hashlib and nacl (python3-nacl).  Deterministic: Ed25519 signatures
are, and every key comes from a fixed 32-byte seed.
"""
import hashlib
import json
import struct
import sys
from pathlib import Path

import nacl.public
import nacl.signing

HERE = Path(__file__).resolve().parent


def H(b):
    return hashlib.sha256(b).digest()


# ------------------------------------------------------------ RFC 9162 §2.1
def leaf_hash(d):
    return H(b"\x00" + d)


def k_of(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k < n:
        k <<= 1
    return k >> 1


def MTH(D):
    if len(D) == 0:
        return H(b"")
    if len(D) == 1:
        return leaf_hash(D[0])
    k = k_of(len(D))
    return H(b"\x01" + MTH(D[:k]) + MTH(D[k:]))


def PATH(m, D):
    if len(D) == 1:
        return []
    k = k_of(len(D))
    if m < k:
        return PATH(m, D[:k]) + [MTH(D[k:])]
    return PATH(m - k, D[k:]) + [MTH(D[:k])]


def SUBPROOF(m, D, b):
    n = len(D)
    if m == n:
        return [] if b else [MTH(D)]
    k = k_of(n)
    if m <= k:
        return SUBPROOF(m, D[:k], b) + [MTH(D[k:])]
    return SUBPROOF(m - k, D[k:], False) + [MTH(D[:k])]


def PROOF(m, D):
    return SUBPROOF(m, D, True)


# ---------------------------------------------------------- PROTOCOL §11.2
def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def lp(b):
    return u32(len(b)) + b


def did_hash(did):
    return H(b"AMPv1-log-did" + did.encode("ascii"))


def key_input(h, v, spk, epk):
    return b"AMPv1-log-key" + h + u32(v) + spk + epk


def revoke_input(h, v):
    return b"AMPv1-log-revoke" + h + u32(v)


def leaf(t, time, subject, body):
    return bytes([1, t]) + u64(time) + subject + body


def head_input(log, size, root, time):
    return b"AMPv1-tree-head" + lp(log.encode()) + u64(size) + root + u64(time)


def cosign_input(witness, hi, cotime):
    return b"AMPv1-cosign" + lp(witness.encode()) + hi + u64(cotime)


def sign(sk, msg):
    return sk.sign(msg).signature


def hx(b):
    return b.hex()


# ------------------------------------------------------------------ vectors
# 40 leaves of lengths 0..39: leaf i = bytes 0, 1, ..., i - 1.
LEAVES = [bytes(range(i)) for i in range(40)]
INCLUSION_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40]
CONSISTENCY = sorted({(m, n) for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 40)
                      for m in range(1, n + 1)}
                     | {(1, 33), (12, 33), (16, 32), (31, 32), (32, 40),
                        (33, 40), (39, 40), (6, 8), (6, 31), (13, 29)})


def merkle():
    out = {"leaves": [hx(d) for d in LEAVES],
           "leaf_hashes": [hx(leaf_hash(d)) for d in LEAVES],
           "roots": [hx(MTH(LEAVES[:n])) for n in range(41)]}
    out["inclusion"] = [
        {"index": m, "size": n, "path": [hx(p) for p in PATH(m, LEAVES[:n])]}
        for n in INCLUSION_SIZES for m in range(n)]
    out["consistency"] = [
        {"first": m, "second": n,
         "proof": [hx(p) for p in PROOF(m, LEAVES[:n])]}
        for (m, n) in CONSISTENCY]
    return out


def rfc_example():
    """RFC 9162 §2.1.5: the tree of seven leaves d0..d6 (here LEAVES[:7])
    with its named nodes, and the proofs the RFC lists, checked against
    PATH and PROOF above."""
    D = LEAVES[:7]
    a, b, c, d, e, f = (leaf_hash(x) for x in D[:6])
    j = leaf_hash(D[6])
    g = H(b"\x01" + a + b)
    h = H(b"\x01" + c + d)
    i = H(b"\x01" + e + f)
    k = H(b"\x01" + g + h)
    l_ = H(b"\x01" + i + j)
    root = H(b"\x01" + k + l_)
    names = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g,
             "h": h, "i": i, "j": j, "k": k, "l": l_, "root": root}
    assert root == MTH(D)
    incl = {0: [b, h, l_], 3: [c, g, l_], 4: [f, j, k], 6: [i, k]}
    for m, p in incl.items():
        assert PATH(m, D) == p, m
    hash0, hash1, hash2 = MTH(D[:3]), MTH(D[:4]), MTH(D[:6])
    cons = {3: [c, d, g, l_], 4: [l_], 6: [i, j, k]}
    for m, p in cons.items():
        assert PROOF(m, D) == p, m
    assert hash1 == k and hash2 == H(b"\x01" + k + i)
    return {"nodes": {n: hx(v) for n, v in names.items()},
            "inclusion": [{"index": m, "size": 7, "path": [hx(x) for x in p]}
                          for m, p in incl.items()],
            "consistency": [{"first": m, "second": 7, "first_root":
                             hx(MTH(D[:m])), "proof": [hx(x) for x in p]}
                            for m, p in cons.items()]}


def seed(tag):
    return H(b"amp log vector seed " + tag.encode())


def identity(tag):
    s = seed(tag + "/sign")
    e = seed(tag + "/enc")
    sk = nacl.signing.SigningKey(s)
    epk = bytes(nacl.public.PrivateKey(e).public_key)
    return {"sign_seed": s, "enc_seed": e, "sk": sk,
            "spk": bytes(sk.verify_key), "epk": epk}


def leaves_and_heads(root40):
    did = "did:aftersmtp:example.org:alice"
    node = "did:aftersmtp:example.org:node"
    witness = "did:aftersmtp:example.net:node"
    dh = did_hash(did)
    k0, k1, k2 = identity("alice/0"), identity("alice/1"), identity("alice/2")
    t0 = 1767225600

    ki0 = key_input(dh, 0, k0["spk"], k0["epk"])
    reg_sig = sign(k0["sk"], ki0)
    reg = leaf(1, t0, dh, u32(0) + k0["spk"] + k0["epk"] + reg_sig)

    ki1 = key_input(dh, 1, k1["spk"], k1["epk"])
    rot1_self, rot1_prev = sign(k1["sk"], ki1), sign(k0["sk"], ki1)
    rot1 = leaf(2, t0 + 60, dh, u32(1) + k1["spk"] + k1["epk"] + rot1_self
                + rot1_prev)

    ki2 = key_input(dh, 2, k2["spk"], k2["epk"])
    rot2_self, rot2_prev = sign(k2["sk"], ki2), sign(k1["sk"], ki2)
    rot2 = leaf(2, t0 + 120, dh, u32(2) + k2["spk"] + k2["epk"] + rot2_self
                + rot2_prev)

    ri2 = revoke_input(dh, 2)
    rev_sig = sign(k2["sk"], ri2)
    rev = leaf(3, t0 + 180, dh, u32(2) + rev_sig)

    env = b"an envelope's canonical bytes"
    digest = H(env)
    rcpt = leaf(4, t0 + 240, digest, lp(node.encode()))

    keys = {}
    for name, k in (("alice/0", k0), ("alice/1", k1), ("alice/2", k2)):
        keys[name] = {"sign_seed": hx(k["sign_seed"]),
                      "enc_seed": hx(k["enc_seed"]),
                      "sign_pk": hx(k["spk"]), "enc_pk": hx(k["epk"])}

    def lv(kind, data, **kw):
        d = {"type": kind, "leaf": hx(data), "leaf_hash": hx(leaf_hash(data))}
        d.update(kw)
        return d

    leaves = [
        lv("register", reg, time=t0, version=0, key="alice/0",
           key_input=hx(ki0), self_sig=hx(reg_sig)),
        lv("rotate", rot1, time=t0 + 60, version=1, key="alice/1",
           prev_key="alice/0", key_input=hx(ki1), self_sig=hx(rot1_self),
           prev_sig=hx(rot1_prev)),
        lv("rotate", rot2, time=t0 + 120, version=2, key="alice/2",
           prev_key="alice/1", key_input=hx(ki2), self_sig=hx(rot2_self),
           prev_sig=hx(rot2_prev)),
        lv("revoke", rev, time=t0 + 180, version=2, key="alice/2",
           revoke_input=hx(ri2), sig=hx(rev_sig)),
        lv("receipt", rcpt, time=t0 + 240, envelope=hx(env),
           digest=hx(digest), node=node),
    ]
    assert [len(x) for x in (reg, rot1, rev)] == [174, 238, 110]

    nk = identity("node")
    wk = identity("witness")
    keys["node"] = {"sign_seed": hx(nk["sign_seed"]), "sign_pk": hx(nk["spk"])}
    keys["witness"] = {"sign_seed": hx(wk["sign_seed"]),
                       "sign_pk": hx(wk["spk"])}
    size, time, cotime = 40, t0 + 300, t0 + 310
    hi = head_input(node, size, root40, time)
    head_sig = sign(nk["sk"], hi)
    ci = cosign_input(witness, hi, cotime)
    cosig = sign(wk["sk"], ci)
    head = {"log": node, "size": size, "root": hx(root40), "time": time,
            "key": "node", "head_input": hx(hi), "sig": hx(head_sig)}
    cos = {"witness": witness, "cotime": cotime, "key": "witness",
           "cosign_input": hx(ci), "sig": hx(cosig)}
    return {"did": did, "did_hash": hx(dh), "keys": keys, "log_leaves": leaves,
            "head": head, "cosignature": cos}


def bad_leaves(good):
    """Leaves a strict decoder refuses, with the error it gives."""
    reg = bytes.fromhex(good[0]["leaf"])
    rot = bytes.fromhex(good[1]["leaf"])
    rcpt = bytes.fromhex(good[4]["leaf"])
    bad = [
        ("empty", b"", "AMP_E_TRUNCATED"),
        ("version 2", b"\x02" + reg[1:], "AMP_E_VERSION"),
        ("version 0", b"\x00" + reg[1:], "AMP_E_VERSION"),
        ("type 0", reg[:1] + b"\x00" + reg[2:], "AMP_E_MALFORMED"),
        ("type 5", reg[:1] + b"\x05" + reg[2:], "AMP_E_MALFORMED"),
        ("register truncated", reg[:-1], "AMP_E_TRUNCATED"),
        ("register trailing byte", reg + b"\x00", "AMP_E_MALFORMED"),
        ("register version 1", reg[:42] + u32(1) + reg[46:], "AMP_E_MALFORMED"),
        ("rotate version 0", rot[:42] + u32(0) + rot[46:], "AMP_E_MALFORMED"),
        ("register as rotate", reg[:1] + b"\x02" + reg[2:], "AMP_E_TRUNCATED"),
        ("rotate as register", rot[:1] + b"\x01" + rot[2:], "AMP_E_MALFORMED"),
        ("receipt truncated", rcpt[:-1], "AMP_E_TRUNCATED"),
        ("receipt trailing byte", rcpt + b"x", "AMP_E_MALFORMED"),
        ("receipt uppercase DID", rcpt[:46] + rcpt[46:].upper(),
         "AMP_E_BAD_DID"),
        ("receipt DID too long", rcpt[:42] + u32(333) + b"a" * 333,
         "AMP_E_BAD_DID"),
        ("receipt empty DID", rcpt[:42] + u32(0), "AMP_E_BAD_DID"),
        ("too long", reg[:2] + b"\x00" * 511, "AMP_E_TOO_LARGE"),
    ]
    return [{"name": n, "leaf": hx(b), "error": e} for n, b, e in bad]


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "log.json"
    m = merkle()
    v = {"description": "transparency log vectors (PROTOCOL.md §11, RFC 9162"
         " §2.1), written by tests/vectors/make-log-vectors.py",
         **m, "rfc9162_example": rfc_example()}
    v.update(leaves_and_heads(MTH(LEAVES)))
    v["bad_leaves"] = bad_leaves(v["log_leaves"])
    # The verifiers of tests/e2e/rfc9162.py accept all of it.
    sys.path.insert(0, str(HERE.parent / "e2e"))
    import rfc9162
    roots = [bytes.fromhex(r) for r in m["roots"]]
    for p in m["inclusion"]:
        assert rfc9162.verify_inclusion(p["index"], p["size"],
                                        leaf_hash(LEAVES[p["index"]]),
                                        p["path"], roots[p["size"]])
    for p in m["consistency"]:
        assert rfc9162.verify_consistency(p["first"], p["second"],
                                          roots[p["first"]],
                                          roots[p["second"]], p["proof"])
    for x in v["log_leaves"]:
        assert rfc9162.encode_leaf(rfc9162.decode_leaf(x["leaf"])) == \
            bytes.fromhex(x["leaf"])
    hist = [rfc9162.decode_leaf(x["leaf"]) for x in v["log_leaves"][:4]]
    st = rfc9162.verify_key_history(hist)
    assert st["revoked"] and st["version"] == 2
    assert rfc9162.verify_head(v["head"],
                               v["keys"]["node"]["sign_pk"])
    c = v["cosignature"]
    assert rfc9162.verify_cosig(v["head"], c["witness"], c["cotime"],
                                v["keys"]["witness"]["sign_pk"], c["sig"])
    for x in v["bad_leaves"]:
        try:
            rfc9162.decode_leaf(x["leaf"])
        except ValueError:
            continue
        raise AssertionError(x["name"])
    out.write_text(json.dumps(v, indent=1) + "\n")


if __name__ == "__main__":
    main()
