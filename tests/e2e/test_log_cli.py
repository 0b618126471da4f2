"""`amp log` and `amp receipt` against real nodes (issue 8, PROTOCOL.md §11).

A real aftersmtpd on loopback signs a tree head every second
(log_head_interval = 1s); users register and mail each other with `amp`,
which fills its log with register leaves and receipts.  Everything the
commands print as JSON is checked again with tests/e2e/rfc9162.py, a
verifier written from RFC 9162 and PROTOCOL §11 independently of the C
code, so a wrong proof cannot pass because both sides share a bug.  What
is shown:
- `amp log head` (text and JSON: the signature re-verified), --witness
  with a real cosigning witness, and a head not cosigned refused;
- `amp log verify`: OK on registrations and receipts; after the node's
  database is altered (one leaf's bytes, same length), the root mismatch
  and the changed leaf's index; a leaf the node signed that breaks its
  identity's key history named as such;
- `amp log proof --json` and `amp log consistency --json` re-verified;
- receipts: `amp receipt get` for the digest `amp send` printed, `amp
  receipt verify` offline, and one flipped byte in the file's path, root,
  signature or leaf fails it; "not yet in a signed tree head" before the
  node signs;
- `amp log monitor --once`: the initial state, nothing on a quiet round,
  a rotation and a revocation (`amp key rotate|revoke`), and a rotation
  the node hides from lookups still reported.
"""
import base64
import hashlib
import json
import re
import sqlite3
import time

import pytest

import rfc9162
from nodes import Node, User, make_base, remove_base, stop_all

LOG_NODE = "did:aftersmtp:alpha.test:node"


@pytest.fixture
def nodes():
    base = make_base()
    started = []
    yield base, started
    try:
        stop_all(started)
    finally:
        remove_base(base)


def node(nodes, domain="alpha.test", **conf):
    base, started = nodes
    conf.setdefault("log_head_interval", "1s")
    n = Node(base, domain, **conf)
    started.append(n)
    return n


def user(nodes, name, n):
    u = User(nodes[0], name, n)
    u.register()
    return u


def db(n):
    return sqlite3.connect(str(n.dir / "data" / "node.db"), timeout=10)


def db_leaves(n):
    with db(n) as c:
        return [bytes(r[0]) for r in c.execute("SELECT leaf FROM log_leaf ORDER BY idx")]


def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def head_json(u, *args, check=True):
    p = u.run("log", "head", "--json", *args, check=check)
    return json.loads(p.stdout) if p.returncode == 0 else p


def wait_size(u, size, timeout=15):
    """The node's latest signed head, once it covers `size` leaves."""
    deadline = time.monotonic() + timeout
    while True:
        h = head_json(u)
        if h["size"] >= size:
            return h
        if time.monotonic() > deadline:
            raise AssertionError(f"no signed head of size {size}: {h}")
        time.sleep(0.2)


def send(frm, to, text):
    """Mail from one user to another; the envelope digest `amp send` printed."""
    p = frm.run("send", to.did, input=f"Subject: t\r\n\r\n{text}\r\n".encode())
    m = re.search(rb"^receipt ([0-9a-f]{64})$", p.stdout, re.M)
    assert m, p.stdout
    return m.group(1).decode()


def key_ids(u):
    out = u.run("did", "show").stdout.decode()
    return (re.search(r"#sig-([0-9a-f]{16})", out).group(1),
            re.search(r"#enc-([0-9a-f]{16})", out).group(1))


def has_command(u, *cmd):
    return u.run(*cmd, "--help", check=False).returncode == 0


# ------------------------------------------------------------------ head

def test_log_head_after_registrations(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    user(nodes, "bob", a)
    h = wait_size(alice, 2)
    assert h["log"] == LOG_NODE and h["cosignatures"] == []
    # the head is the node's, and the root is that of its leaves
    assert h["node_key"] == b64u(a.key).hex()
    assert rfc9162.verify_head(h, h["node_key"])
    leaves = db_leaves(a)
    assert bytes.fromhex(h["root"]) == rfc9162.mth(leaves[:h["size"]])
    assert [rfc9162.decode_leaf(x)["type_name"] for x in leaves] == ["register"] * 2

    p = alice.run("log", "head")
    out = p.stdout.decode()
    assert f"log   {LOG_NODE}\n" in out and f"size  {h['size']}\n" in out, out
    assert f"root  {h['root']}\n" in out
    assert f"signature verified with the node key {a.key}" in out
    assert "no cosignatures" in out
    # the client remembered it: a later head must be consistent with it
    seen = (alice.home / "heads" / LOG_NODE).read_text()
    assert f"size {h['size']}\nroot {h['root']}\n" in seen

    # a witness that did not cosign: refused (alpha's own node DID is
    # resolvable, it just never cosigns its own log)
    p = alice.run("log", "head", "--witness", LOG_NODE, check=False)
    assert p.returncode == 1
    assert f"is not cosigned by {LOG_NODE}".encode() in p.stderr, p.stderr
    p = alice.run("log", "head", "--witness", "did:aftersmtp:alpha.test:bob", check=False)
    assert p.returncode == 2 and b"a witness is a node" in p.stderr
    p = alice.run("log", "head", "--progress", check=False)
    assert p.returncode == 2 and b"does not apply" in p.stderr


def test_log_head_with_a_cosigning_witness(nodes):
    a = node(nodes, log_witnesses="beta.test")
    b = node(nodes, "beta.test", log_witness_of="alpha.test", log_witness_interval="1s")
    a.route_to(b)
    b.route_to(a)
    a.start()
    b.start()
    alice = user(nodes, "alice", a)
    a.wait_log(r'msg="tree head cosigned" witness=did:aftersmtp:beta\.test:node size=1')
    h = head_json(alice, "--witness", "did:aftersmtp:beta.test:node")
    assert h["size"] == 1
    cs = [c for c in h["cosignatures"] if c["witness"] == "did:aftersmtp:beta.test:node"]
    assert cs and cs[0]["verified"] is True
    # the cosignature checked independently, with beta's own key
    assert rfc9162.verify_cosig(h, cs[0]["witness"], cs[0]["time"], b64u(b.key), cs[0]["sig"])
    out = alice.run("log", "head", "--witness", "did:aftersmtp:beta.test:node").stdout.decode()
    assert re.search(r"cosigned by did:aftersmtp:beta\.test:node at \S+ \(verified\)", out), out
    # the witness's key was learnt once and is kept (trust on first use)
    assert (alice.home / "known" / "did:aftersmtp:beta.test:node.json").exists()
    # `amp log verify` demands it too
    p = alice.run("log", "verify", "--witness", "did:aftersmtp:beta.test:node")
    assert b"OK: " in p.stdout


# ---------------------------------------------------------------- verify

def fill(nodes, a):
    """alice and bob registered, four messages (receipts) between them;
    returns the users, the digests and the log size."""
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    digests = [send(alice, bob, f"hello {i}") for i in range(3)]
    digests.append(send(bob, alice, "reply"))
    wait_size(alice, 6)
    return alice, bob, digests


def test_log_verify_ok_then_a_changed_leaf(nodes):
    a = node(nodes).start()
    alice, bob, digests = fill(nodes, a)
    p = alice.run("log", "verify")
    out = p.stdout.decode()
    assert "leaves: register 2, rotate 0, revoke 0, receipt 4" in out, out
    assert "identities: 2 (0 revoked)" in out
    assert "OK: 6 leaves, root matches the signed head" in out
    # the receipts are those of the envelopes sent
    leaves = [rfc9162.decode_leaf(x) for x in db_leaves(a)]
    assert sorted(d["subject"].hex() for d in leaves if d["type"] == 4) == sorted(digests)

    # The operator changes leaf 3 (a receipt's time, same length) while
    # the node is down; the tree it signed still holds the old leaf.
    a.stop()
    with db(a) as c:
        leaf = bytearray(c.execute("SELECT leaf FROM log_leaf WHERE idx=3").fetchone()[0])
        leaf[9] ^= 0x01
        c.execute("UPDATE log_leaf SET leaf=? WHERE idx=3", (bytes(leaf),))
    a.start()
    for who in (alice, bob):
        p = who.run("log", "verify", check=False)
        out = p.stdout.decode()
        assert p.returncode == 1, out
        assert "FAIL: the root of the 6 leaves served is" in out, out
        assert "OK:" not in out
        assert "FAIL: leaf 3 is the first that differs" in out, out


def test_log_verify_names_a_leaf_that_breaks_a_key_history(nodes):
    a = node(nodes).start()
    alice, bob, _ = fill(nodes, a)
    a.stop()
    # bob's register leaf (index 1) with a swapped signing key: its
    # self-signature no longer verifies
    with db(a) as c:
        leaf = bytearray(c.execute("SELECT leaf FROM log_leaf WHERE idx=1").fetchone()[0])
        leaf[46] ^= 0xff
        c.execute("UPDATE log_leaf SET leaf=? WHERE idx=1", (bytes(leaf),))
    a.start()
    p = alice.run("log", "verify", check=False)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert "FAIL: leaf 1: its identity's key history breaks (AMP-R-060)" in out, out
    assert "self_sig" in out
    assert "FAIL: leaf 1 is the first that differs" in out


# ------------------------------------------------------- proofs as JSON

def check_proof(j, node_key):
    head = j["head"]
    assert head["size"] == j["tree_size"]
    assert rfc9162.verify_head(head, node_key), head
    assert rfc9162.leaf_hash(j["leaf"]).hex() == j["leaf_hash"]
    assert rfc9162.verify_inclusion(j["index"], head["size"], j["leaf_hash"], j["path"],
                                    head["root"])
    d = rfc9162.decode_leaf(j["leaf"])
    assert d["type_name"] == j["type"] and d["subject"].hex() == j["subject"]
    return d


def test_proof_and_consistency_json_reverified(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    first = wait_size(alice, 2)
    digest = send(alice, bob, "one")
    send(bob, alice, "two")
    carol = user(nodes, "carol", a)
    second = wait_size(alice, 5)
    key = b64u(a.key)
    leaves = db_leaves(a)

    for i in range(second["size"]):
        j = json.loads(alice.run("log", "proof", str(i), "--json").stdout)
        assert j["index"] == i and bytes.fromhex(j["leaf"]) == leaves[i]
        assert j["node_key"] == key.hex() and j["log"] == LOG_NODE
        check_proof(j, key)
        # the independent verifier is not vacuous: a flipped path byte fails
        if j["path"]:
            bad = list(j["path"])
            bad[0] = ("0" if bad[0][0] != "0" else "1") + bad[0][1:]
            assert not rfc9162.verify_inclusion(i, j["tree_size"], j["leaf_hash"], bad,
                                                j["head"]["root"])

    # by DID (its latest leaf), by subject (a receipt), against an older head
    j = json.loads(alice.run("log", "proof", "--did", carol.did, "--json").stdout)
    d = check_proof(j, key)
    assert d["type"] == rfc9162.REGISTER and d["subject"] == rfc9162.did_hash(carol.did)
    j = json.loads(alice.run("log", "proof", "--subject", digest, "--json").stdout)
    d = check_proof(j, key)
    assert d["type"] == rfc9162.RECEIPT and d["node"] == LOG_NODE
    j = json.loads(alice.run("log", "proof", "0", "--size", str(first["size"]),
                             "--json").stdout)
    assert j["tree_size"] == first["size"] and j["head"]["root"] == first["root"]
    check_proof(j, key)
    out = alice.run("log", "proof", "1").stdout.decode()
    assert f"leaf 1 of the log of {LOG_NODE}" in out and "type     register" in out, out
    assert "verified against the signed tree head" in out

    # consistency: from the first head to the latest, and between two sizes
    for args in ([str(first["size"])], [str(first["size"]), str(second["size"])]):
        j = json.loads(alice.run("log", "consistency", *args, "--json").stdout)
        h1, h2 = j["first"], j["second"]
        assert h1["size"] == first["size"] and h1["root"] == first["root"]
        assert h2["size"] >= second["size"]
        assert rfc9162.verify_head(h1, key) and rfc9162.verify_head(h2, key)
        assert rfc9162.verify_consistency(h1["size"], h2["size"], h1["root"], h2["root"],
                                          j["path"])
        assert bytes.fromhex(h2["root"]) == rfc9162.mth(db_leaves(a)[:h2["size"]])
        if j["path"]:
            assert not rfc9162.verify_consistency(h1["size"], h2["size"], h1["root"],
                                                  h2["root"], j["path"][::-1] + ["00" * 32])
    out = alice.run("log", "consistency", str(first["size"])).stdout.decode()
    assert re.search(rf"consistency proof from size {first['size']} to size \d+ "
                     r"\(\d+ hash(es)?\) verified", out), out

    # refusals: no head of that size, bad arguments
    p = alice.run("log", "proof", "0", "--size", "999", check=False)
    assert p.returncode == 1 and b"NOT_FOUND" in p.stderr, p.stderr
    p = alice.run("log", "proof", "999", check=False)
    assert p.returncode == 1 and b"no leaf with that index" in p.stderr, p.stderr
    p = alice.run("log", "consistency", "3", "2", check=False)
    assert p.returncode == 2
    p = alice.run("log", "proof", "1", "--did", carol.did, check=False)
    assert p.returncode == 2


# --------------------------------------------------------------- receipts

def receipt_get(u, digest, out, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        p = u.run("receipt", "get", digest, "-o", str(out), check=False)
        if p.returncode == 0 or b"try again in a second" not in p.stderr:
            return p
        assert time.monotonic() < deadline, p.stderr
        time.sleep(0.3)


def test_receipt_get_and_verify(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    digest = send(alice, bob, "please sign here")
    # the digest is the SHA-256 of the envelope bob's node accepted
    saved = nodes[0] / "saved"
    bob.run("inbox", "--save", str(saved))
    (env_file,) = saved.iterdir()
    assert hashlib.sha256(env_file.read_bytes()).hexdigest() == digest

    rf = nodes[0] / "r.json"
    p = receipt_get(alice, digest, rf)
    assert p.returncode == 0, p.stderr
    m = re.match(rf"accepted by {LOG_NODE} at (\S+) \(log index (\d+), tree size (\d+)\)\n",
                 p.stdout.decode())
    assert m, p.stdout
    r = json.loads(rf.read_text())
    assert r["format"] == "aftersmtp-receipt-1" and r["log"] == LOG_NODE
    assert r["node_key"] == a.key and r["digest"] == digest
    assert r["index"] == int(m.group(2)) and r["head"]["size"] == int(m.group(3))
    # the file alone proves it, to an independent verifier
    head = dict(r["head"], log=r["log"])
    assert rfc9162.verify_head(head, b64u(r["node_key"]))
    d = rfc9162.decode_leaf(r["leaf"])
    assert d["type"] == rfc9162.RECEIPT and d["subject"].hex() == digest
    assert d["node"] == LOG_NODE
    assert rfc9162.verify_inclusion(r["index"], head["size"], rfc9162.leaf_hash(r["leaf"]),
                                    r["path"], head["root"])

    # `amp receipt verify` needs no network and no home: anyone can run it
    stranger = User(nodes[0], "stranger", a)
    p = stranger.run("receipt", "verify", str(rf))
    assert p.stdout.decode() == m.group(0)
    stranger.run("receipt", "verify", str(rf), "--node-key", a.key)
    other = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    p = stranger.run("receipt", "verify", str(rf), "--node-key", other, check=False)
    assert p.returncode == 1 and b"another node key" in p.stderr

    def flipped(field, mutate, why):
        bad = json.loads(rf.read_text())
        mutate(bad)
        bf = nodes[0] / f"bad-{field}.json"
        bf.write_text(json.dumps(bad))
        p = stranger.run("receipt", "verify", str(bf), check=False)
        assert p.returncode == 1, (field, p.stdout)
        assert why.encode() in p.stderr, (field, p.stderr)
        assert b"accepted by" not in p.stdout

    def flip_hex(s, at=10):
        return s[:at] + ("0" if s[at] != "0" else "1") + s[at + 1:]

    if r["path"]:
        flipped("path", lambda x: x["path"].__setitem__(0, flip_hex(x["path"][0])),
                "the inclusion proof does not verify")
    flipped("root", lambda x: x["head"].__setitem__("root", flip_hex(x["head"]["root"])),
            "signature does not verify")
    flipped("sig", lambda x: x["head"].__setitem__("sig", flip_hex(x["head"]["sig"])),
            "signature does not verify")
    flipped("size", lambda x: x["head"].__setitem__("size", x["head"]["size"] + 1),
            "signature does not verify")
    # the leaf's time byte: still a receipt of this digest, not the one logged
    flipped("leaf", lambda x: x.__setitem__("leaf", flip_hex(x["leaf"], 18)),
            "the inclusion proof does not verify")
    flipped("digest", lambda x: x.__setitem__("digest", flip_hex(x["digest"])),
            "the receipt of another envelope")
    flipped("format", lambda x: x.pop("path"), "not a receipt file")

    # an envelope the node never accepted
    p = alice.run("receipt", "get", "ab" * 32, check=False)
    assert p.returncode == 1 and b"has no receipt for that envelope" in p.stderr, p.stderr
    p = alice.run("receipt", "get", "xyz", check=False)
    assert p.returncode == 2


def test_receipt_not_yet_in_a_signed_head(nodes):
    """A node that signs heads rarely: the receipt exists, the client says
    to try again; once the operator signs (`amp log sign`), it is there."""
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    wait_size(alice, 2)
    a.stop()
    a.conf["log_head_interval"] = "86400s"
    a.write_conf()
    a.start()
    digest = send(alice, bob, "slow node")
    p = alice.run("receipt", "get", digest, check=False)
    assert p.returncode == 1
    assert b"is not yet in a signed tree head: try again in a second" in p.stderr, p.stderr
    alice.run("log", "sign", "--data-dir", str(a.dir / "data"))
    p = receipt_get(alice, digest, "-")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["digest"] == digest
    assert re.search(rb"accepted by did:aftersmtp:alpha\.test:node at .*tree size 3\)",
                     p.stderr), p.stderr


# ---------------------------------------------------------------- monitor

def monitor(u, did):
    return u.run("log", "monitor", did, "--once").stdout.decode()


def test_monitor_reports_key_changes(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    wait_size(bob, 2)
    sig0, enc0 = key_ids(alice)
    out = monitor(bob, alice.did)
    assert re.fullmatch(rf"{alice.did} key version 0: sig key id {sig0}, enc key id {enc0}, "
                        r"since \S+Z, log index 0\n", out), out
    state = (bob.home / "monitor" / alice.did).read_text()
    assert "size 2\n" in state and "version 0\n" in state
    assert monitor(bob, alice.did) == ""          # nothing new
    send(bob, alice, "receipts are not key changes")
    wait_size(bob, 3)
    assert monitor(bob, alice.did) == ""

    if not has_command(alice, "key", "rotate"):
        pytest.skip("`amp key rotate` is not there yet")
    alice.run("key", "rotate", "--kdf", "min")
    sig1, enc1 = key_ids(alice)
    assert sig1 != sig0
    h = wait_size(bob, 4)
    out = monitor(bob, alice.did)
    assert re.fullmatch(rf"{alice.did} key rotated to version 1: sig key id {sig1}, "
                        rf"enc key id {enc1}, at \S+Z, log index 3\n", out), out
    assert monitor(bob, alice.did) == ""
    assert f"size {h['size']}\n" in (bob.home / "monitor" / alice.did).read_text()

    # carol starts monitoring only now: she is told the current state
    carol = user(nodes, "carol", a)
    wait_size(carol, 5)
    out = monitor(carol, alice.did)
    assert f"{alice.did} key version 1: sig key id {sig1}" in out, out

    alice.run("key", "revoke", "--yes")
    wait_size(bob, 6)
    out = monitor(bob, alice.did)
    assert re.fullmatch(rf"{alice.did} REVOKED at \S+Z, log index 5\n", out), out
    # a DID the log never saw
    out = monitor(bob, "did:aftersmtp:alpha.test:nobody")
    assert out == f"did:aftersmtp:alpha.test:nobody is not in the transparency log of " \
                  f"{LOG_NODE} (tree size 6)\n"
    p = bob.run("log", "monitor", "did:aftersmtp:beta.test:x", "--once", check=False)
    assert p.returncode == 1 and b"is not an identity of" in p.stderr
    # a damaged state file is not trusted (nor silently replaced)
    sf = bob.home / "monitor" / alice.did
    sf.write_text(sf.read_text().replace("version 1\n", "version 7\nversion 1\n"))
    p = bob.run("log", "monitor", alice.did, "--once", check=False)
    assert p.returncode == 1 and b"is damaged: remove it" in p.stderr, p.stderr


def test_monitor_sees_a_rotation_hidden_from_lookups(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    wait_size(bob, 2)
    if not has_command(alice, "key", "rotate"):
        pytest.skip("`amp key rotate` is not there yet")
    monitor(bob, alice.did)
    # identity rows are keyed by a keyed hash of the DID and sealed; the
    # row that the rotation rewrites is alice's
    with db(a) as c:
        before = dict(c.execute("SELECT did, doc FROM identity").fetchall())
    sig0, _ = key_ids(alice)
    alice.run("key", "rotate", "--kdf", "min")
    sig1, _ = key_ids(alice)
    # the node now answers lookups with the old document, as if nothing
    # had changed (a node hiding a key swap it logged)
    with db(a) as c:
        after = dict(c.execute("SELECT did, doc FROM identity").fetchall())
        (row,) = [k for k in before if after.get(k) != before[k]]
        c.execute("UPDATE identity SET doc=? WHERE did=?", (before[row], row))
    p = bob.run("lookup", alice.did)
    assert f"#sig-{sig0}".encode() in p.stdout
    wait_size(bob, 3)
    out = monitor(bob, alice.did)
    assert f"{alice.did} key rotated to version 1: sig key id {sig1}" in out, out


def test_monitor_alarm_on_leaves_that_do_not_match_the_head(nodes):
    a = node(nodes).start()
    alice = user(nodes, "alice", a)
    bob = user(nodes, "bob", a)
    wait_size(bob, 2)
    monitor(bob, alice.did)
    send(alice, bob, "grow")
    wait_size(bob, 3)
    a.stop()
    with db(a) as c:
        leaf = bytearray(c.execute("SELECT leaf FROM log_leaf WHERE idx=2").fetchone()[0])
        leaf[9] ^= 0x01
        c.execute("UPDATE log_leaf SET leaf=? WHERE idx=2", (bytes(leaf),))
    a.start()
    p = bob.run("log", "monitor", alice.did, "--once", check=False)
    assert p.returncode == 1
    assert b"ALARM: the leaves" in p.stderr and b"do not hash to" in p.stderr, p.stderr
    # the state did not move past what was proven
    assert "size 2\n" in (bob.home / "monitor" / alice.did).read_text()
