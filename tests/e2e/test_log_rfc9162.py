"""test_log_rfc9162.py — the transparency log library (src/lib/amp-log.c)
checked by an independent implementation (rfc9162.py) over every root
and every proof of a log of 300 leaves, printed by the test tool
tests/unit/merkle-dump ($MERKLE_DUMP, or next to $AMP_BIN's build:
BUILD/tests/unit/merkle-dump); and the vectors of tests/vectors/log.json
checked by rfc9162.py, so that the checker itself is shown to refuse
what it must.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

import rfc9162
from conftest import AMP_BIN, ROOT

MERKLE_DUMP = os.environ.get(
    "MERKLE_DUMP", str(Path(AMP_BIN).parents[2] / "tests" / "unit" / "merkle-dump"))
N = 300


@pytest.fixture(scope="module")
def dump():
    if not os.access(MERKLE_DUMP, os.X_OK):
        pytest.fail(f"merkle-dump not found at {MERKLE_DUMP}; build first")
    p = subprocess.run([MERKLE_DUMP, str(N)], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    lines = p.stdout.decode().splitlines()
    assert lines[0] == f"size {N}" and lines[-1] == "end"
    d = {"leaf": {}, "root": {}, "incl": {}, "cons": {}}
    for line in lines[1:-1]:
        f = line.split(" ")
        kind = f[0]
        if kind in ("leaf", "root"):
            assert len(f) == 3
            d[kind][int(f[1])] = bytes.fromhex(f[2])
        else:
            assert kind in ("incl", "cons"), line
            d[kind][(int(f[1]), int(f[2]))] = [bytes.fromhex(x) for x in f[3:]]
    return d


def test_dump_is_complete(dump):
    assert sorted(dump["leaf"]) == list(range(N))
    assert sorted(dump["root"]) == list(range(N + 1))
    assert len(dump["incl"]) == N * (N + 1) // 2
    assert len(dump["cons"]) == N * (N + 1) // 2


def test_leaves_and_roots(dump):
    leaves = [f"leaf-{i}".encode() for i in range(N)]
    for i, d in enumerate(leaves):
        assert dump["leaf"][i] == rfc9162.leaf_hash(d)
    # MTH of every prefix, by the RFC's recursion
    hashes = [rfc9162.leaf_hash(d) for d in leaves]
    for s in range(N + 1):
        assert dump["root"][s] == rfc9162.mth_hashes(hashes[:s]), s
    assert dump["root"][N] == rfc9162.mth(leaves)


def test_every_inclusion_proof(dump):
    bad = [(i, s) for (i, s), path in dump["incl"].items()
           if not rfc9162.verify_inclusion(i, s, dump["leaf"][i], path,
                                           dump["root"][s])]
    assert not bad, bad[:10]


def test_every_consistency_proof(dump):
    bad = [(m, s) for (m, s), proof in dump["cons"].items()
           if not rfc9162.verify_consistency(m, s, dump["root"][m],
                                             dump["root"][s], proof)]
    assert not bad, bad[:10]


def flips(path):
    """Every proof one bit away (one bit of each byte, a different bit each
    time), every proof one hash shorter or longer."""
    for i, h in enumerate(path):
        for j in range(32):
            b = bytearray(h)
            b[j] ^= 1 << ((i + j) % 8)
            yield path[:i] + [bytes(b)] + path[i + 1:]
    if path:
        yield path[:-1]
        yield path[1:]
    yield path + [bytes(32)]
    yield [bytes(32)] + path


def test_checker_refuses_mutated_proofs(dump):
    """The checker can fail: a sample of proofs, each mutated every way."""
    roots, leaf = dump["root"], dump["leaf"]
    for (i, s), path in dump["incl"].items():
        if (i * 7 + s) % 97:
            continue
        for p in flips(path):
            assert not rfc9162.verify_inclusion(i, s, leaf[i], p, roots[s])
        for j in range(s):
            if j != i:
                assert not rfc9162.verify_inclusion(j, s, leaf[i], path,
                                                    roots[s])
        assert not rfc9162.verify_inclusion(i, s, leaf[(i + 1) % N], path,
                                            roots[s])
        assert not rfc9162.verify_inclusion(i, s, leaf[i], path,
                                            roots[s - 1])
        if s < N:
            assert not rfc9162.verify_inclusion(i, s + 1, leaf[i], path,
                                                roots[s + 1])
        assert not rfc9162.verify_inclusion(s, s, leaf[i], path, roots[s])
    for (m, s), proof in dump["cons"].items():
        if (m * 5 + s) % 89:
            continue
        for p in flips(proof):
            ok = rfc9162.verify_consistency(m, s, roots[m], roots[s], p)
            assert not ok, (m, s)
        for m2 in range(1, s + 1):
            if m2 != m:
                assert not rfc9162.verify_consistency(m2, s, roots[m2],
                                                      roots[s], proof)
        if s < N:
            assert not rfc9162.verify_consistency(m, s + 1, roots[m],
                                                  roots[s + 1], proof)
        assert not rfc9162.verify_consistency(m, s, roots[s], roots[m],
                                              proof) or m == s
        assert not rfc9162.verify_consistency(0, s, roots[0], roots[s], proof)
        assert not rfc9162.verify_consistency(s + 1, s, roots[m], roots[s],
                                              proof)


def test_checker_bounds():
    h = bytes(32)
    assert not rfc9162.verify_inclusion(0, 0, h, [], h)
    assert rfc9162.verify_inclusion(0, 1, h, [], h)
    assert not rfc9162.verify_inclusion(-1, 1, h, [], h)
    assert not rfc9162.verify_inclusion(0, 2**64, h, [h] * 66, h)
    assert not rfc9162.verify_inclusion(0, 2, h, ["zz"], h)
    assert not rfc9162.verify_inclusion(0, 2, h, [b"short"], h)
    assert rfc9162.verify_consistency(5, 5, h, h, [])
    assert not rfc9162.verify_consistency(5, 5, h, h, [h])
    assert not rfc9162.verify_consistency(5, 5, h, b"\x01" * 32, [])
    assert not rfc9162.verify_consistency(4, 8, h, h, [])
    assert not rfc9162.verify_consistency(0, 0, h, h, [])
    assert not rfc9162.verify_consistency(1, 2**64, h, h, [h] * 66)


@pytest.fixture(scope="module")
def vectors():
    return json.loads((ROOT / "tests" / "vectors" / "log.json").read_text())


def test_vectors(vectors):
    """log.json (the generator's PATH/PROOF recursion) against the
    verifiers; the RFC 9162 §2.1.5 example by name."""
    roots = [bytes.fromhex(r) for r in vectors["roots"]]
    lh = vectors["leaf_hashes"]
    for p in vectors["inclusion"]:
        assert rfc9162.verify_inclusion(p["index"], p["size"], lh[p["index"]],
                                        p["path"], roots[p["size"]])
    for p in vectors["consistency"]:
        assert rfc9162.verify_consistency(p["first"], p["second"],
                                          roots[p["first"]],
                                          roots[p["second"]], p["proof"])
    ex = vectors["rfc9162_example"]
    nd = ex["nodes"]
    assert nd["root"] == vectors["roots"][7]
    assert ex["consistency"][1]["proof"] == [nd["l"]]


def test_leaves_heads_history(vectors):
    keys = vectors["keys"]
    leaves = [rfc9162.decode_leaf(x["leaf"]) for x in vectors["log_leaves"]]
    for x, d in zip(vectors["log_leaves"], leaves):
        assert d["type_name"] == x["type"]
        assert rfc9162.encode_leaf(d).hex() == x["leaf"]
        assert rfc9162.leaf_hash(bytes.fromhex(x["leaf"])).hex() == x["leaf_hash"]
    assert leaves[0]["subject"] == rfc9162.did_hash(vectors["did"])
    assert leaves[4]["subject"] == rfc9162.envelope_digest(
        vectors["log_leaves"][4]["envelope"])
    st = rfc9162.verify_key_history(leaves[:4])
    assert st["revoked"] and st["version"] == 2
    assert st["sign_pk"].hex() == keys["alice/2"]["sign_pk"]
    st = rfc9162.verify_key_history(leaves[:3])
    assert not st["revoked"] and st["since"] == leaves[2]["time"]
    # out of order, a gap, a swapped prev_sig, a second register
    for bad in ([leaves[1]], leaves[:1] + leaves[2:3],
                leaves[:4] + [leaves[1]], leaves[:1] + leaves[:1],
                leaves[:2] + [dict(leaves[2], prev_sig=leaves[1]["prev_sig"])],
                leaves[:1] + [dict(leaves[3], version=0)], leaves[4:]):
        with pytest.raises(ValueError):
            rfc9162.verify_key_history(bad)
    head, cos = vectors["head"], vectors["cosignature"]
    npk, wpk = keys["node"]["sign_pk"], keys["witness"]["sign_pk"]
    assert rfc9162.head_input(head).hex() == head["head_input"]
    assert rfc9162.verify_head(head, npk)
    assert not rfc9162.verify_head(head, wpk)
    assert not rfc9162.verify_head(dict(head, size=head["size"] + 1), npk)
    assert not rfc9162.verify_head(dict(head, time=head["time"] + 1), npk)
    assert not rfc9162.verify_head(dict(head, log="not a did"), npk)
    assert rfc9162.verify_cosig(head, cos["witness"], cos["cotime"], wpk,
                                cos["sig"])
    assert not rfc9162.verify_cosig(head, cos["witness"], cos["cotime"] + 1,
                                    wpk, cos["sig"])
    assert not rfc9162.verify_cosig(dict(head, root=vectors["roots"][39]),
                                    cos["witness"], cos["cotime"], wpk,
                                    cos["sig"])
    for x in vectors["bad_leaves"]:
        with pytest.raises(ValueError):
            rfc9162.decode_leaf(x["leaf"])
