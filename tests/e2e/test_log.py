"""The transparency log seen from users and witnesses (issue 8, PROTOCOL.md §11).

Real nodes on loopback; users drive them with `amp`.  What is shown:
- `amp register` does not take the node's word: it waits for its leaf in a
  signed tree head and checks the proof; a node that leaves the
  registration out of its log (a trigger in its database) makes it fail;
- key rotation signed by the old key, the new key used at once by
  correspondents who check the history, old mail still opened; revocation;
- witnesses: a peer node cosigns our heads; a node that rewrites its
  history (its database altered, the tree recomputed so that it is
  self-consistent) is caught by the witness and by a client that saw a
  head before; a head shown to one client and not cosigned is refused by
  a client that demands the witness.
"""
import re
import sqlite3
import subprocess
import time

import pytest

import rfc9162
from nodes import AMP_BIN, Node, User, make_base, remove_base, stop_all


@pytest.fixture
def nodes():
    base = make_base()
    started = []
    yield base, started
    try:
        stop_all(started)
    finally:
        remove_base(base)


def node(nodes, domain, **conf):
    base, started = nodes
    conf.setdefault("log_head_interval", "1s")
    n = Node(base, domain, **conf)
    started.append(n)
    return n


def user(nodes, name, n):
    u = User(nodes[0], name, n)
    p = u.register()
    return u, p


def db(n):
    return sqlite3.connect(str(n.dir / "data" / "node.db"), timeout=10)


def latest_head(n):
    with db(n) as c:
        return c.execute("SELECT size, root FROM log_head ORDER BY size DESC "
                         "LIMIT 1").fetchone()


def wait_head(n, size, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = latest_head(n)
        if h is not None and h[0] >= size:
            return h
        time.sleep(0.1)
    raise AssertionError(f"{n.domain}: no signed head of size {size}")


def test_register_waits_for_its_leaf_in_a_signed_head(nodes):
    a = node(nodes, "alpha.example.net").start()
    alice, p = user(nodes, "alice", a)
    out = p.stdout.decode()
    assert re.search(r"in the transparency log of did:aftersmtp:alpha\.example\.net:node: "
                     r"entry 0, proven in the signed tree head of size 1", out), out
    bob, p = user(nodes, "bob", a)
    assert "entry 1," in p.stdout.decode()
    # The leaf really is alice's key, self-signed (checked independently).
    with db(a) as c:
        leaf = c.execute("SELECT leaf FROM log_leaf WHERE idx=0").fetchone()[0]
    d = rfc9162.decode_leaf(leaf)
    assert d["type"] == 1 and d["subject"] == rfc9162.did_hash(alice.did)
    # the client remembered the head it saw
    assert (alice.home / "heads" / "did:aftersmtp:alpha.example.net:node").exists()


def test_registration_left_out_of_the_log_fails_on_the_client(nodes):
    a = node(nodes, "alpha.example.net").start()
    user(nodes, "alice", a)
    # The node now "forgets" to log: every log insert is silently dropped,
    # the registration itself still commits.
    with db(a) as c:
        c.execute("CREATE TRIGGER omit_leaf BEFORE INSERT ON log_leaf "
                  "BEGIN SELECT RAISE(IGNORE); END")
        c.execute("CREATE TRIGGER omit_node BEFORE INSERT ON log_node "
                  "BEGIN SELECT RAISE(IGNORE); END")
    mallory = User(nodes[0], "carol", a)
    p = mallory.run("register", "--node", f"127.0.0.1:{a.port}", "--transport", "tls",
                    "--log-wait", "3", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    err = p.stderr.decode()
    assert "did not show this change in its transparency log" in err, err
    assert "do not trust this node" in err
    # the node did register it: only the client's check caught the omission
    assert b"registered did:aftersmtp:alpha.example.net:carol" in p.stdout


def test_rotate_resolve_and_keep_reading(nodes):
    a = node(nodes, "alpha.example.net").start()
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", a)
    # bob learns alice's key (TOFU) and alice learns bob's, by mailing
    bob.run("send", alice.did, input=b"Subject: before\r\n\r\nold key\r\n")
    alice.run("fetch", "--ack")
    alice.run("send", bob.did, input=b"Subject: hi\r\n\r\nfrom the old key\r\n")
    bob.run("fetch", "--ack")
    # mail sealed to alice's current key, waiting while she rotates
    bob.run("send", alice.did, input=b"Subject: in flight\r\n\r\nsealed to v0\r\n")

    p = alice.run("key", "rotate", "--kdf", "min")
    out = p.stdout.decode()
    assert "rotated did:aftersmtp:alpha.example.net:alice to key version 1" in out, out
    assert re.search(r"proven in the signed tree head of size \d+", out), out
    assert (alice.home / "keystore.json.v0").exists()

    p = bob.run("did", "resolve", alice.did)
    out = p.stdout.decode()
    assert "key version 1" in out
    assert re.search(r"entry 0 .* registered +version 0", out), out
    assert re.search(r"entry \d+ .* rotated +version 1", out), out

    # the mail sealed to the old key still opens (the kept keystore)
    p = alice.run("fetch")
    assert b"sealed to v0" in p.stdout
    # bob still holds alice's old key: her new signature makes him check
    # the log, which proves the rotation from the key he knows
    alice.run("send", bob.did, input=b"Subject: new\r\n\r\nfrom the new key\r\n")
    p = bob.run("fetch")
    assert b"from the new key" in p.stdout
    assert b"rotated its key to version 1" in p.stderr, p.stderr

    # a rotation signed with a key that is not the current one is refused:
    # alice's old keystore tries again
    env_ks = str(alice.home / "keystore.json.v0")
    p = alice.run("key", "rotate", "--kdf", "min", "--keystore", env_ks, check=False)
    assert p.returncode == 1
    assert b"other keys" in p.stderr or b"stale" in p.stderr, p.stderr


def test_revoke(nodes):
    a = node(nodes, "alpha.example.net").start()
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", a)
    p = alice.run("key", "revoke", check=False)
    assert p.returncode == 2 and b"--yes" in p.stderr
    p = alice.run("key", "revoke", "--yes")
    assert b"revoked did:aftersmtp:alpha.example.net:alice" in p.stdout
    assert b"in the transparency log" in p.stdout
    p = bob.run("lookup", alice.did, check=False)
    assert p.returncode == 1 and b"revoked" in p.stderr, p.stderr
    p = bob.run("send", alice.did, input=b"hello?\n", check=False)
    assert p.returncode == 1
    # the DID cannot be taken again
    again = User(nodes[0], "alice2", a)
    again.did = alice.did
    again.run("keygen", "--did", alice.did, "--kdf", "min", "--force")
    p = again.register(check=False)
    assert p.returncode == 1 and b"registered already" in p.stderr, p.stderr


def node_pos(level, index):
    """The store's row for the complete subtree at (level, index): its
    rank in the post-order in which appends create subtrees
    (src/store/store-log.c)."""
    last = ((index + 1) << level) - 1
    return 2 * last - bin(last).count("1") + level


def rewrite_history(n, index, new_leaf):
    """Rewrite leaf `index` in n's database and recompute every subtree
    hash from the leaves, as a node that wants to hide the change would:
    the tree stays self-consistent, only its history changed."""
    with db(n) as c:
        c.execute("DROP TRIGGER IF EXISTS omit_leaf")
        c.execute("UPDATE log_leaf SET leaf=? WHERE idx=?", (new_leaf, index))
        leaves = [row[0] for row in c.execute("SELECT leaf FROM log_leaf ORDER BY idx")]
        level = [rfc9162.leaf_hash(x) for x in leaves]
        lv = 0
        while level:
            for i, h in enumerate(level):
                c.execute("INSERT OR REPLACE INTO log_node(pos, hash) VALUES(?,?)",
                          (node_pos(lv, i), h))
            level = [rfc9162.node_hash(level[i], level[i + 1])
                     for i in range(0, len(level) - 1, 2)]
            lv += 1


def two_with_witness(nodes, **conf):
    """alpha's log witnessed by beta (every second)."""
    a = node(nodes, "alpha.example.net", log_witnesses="beta.example.net", **conf)
    b = node(nodes, "beta.example.net", log_witness_of="alpha.example.net",
             log_witness_interval="1s")
    a.route_to(b)
    b.route_to(a)
    a.start()
    b.start()
    return a, b


def test_witness_cosigns_and_catches_a_rewritten_history(nodes):
    a, b = two_with_witness(nodes)
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", a)
    b.wait_log(r'msg="witness: cosigned" log=did:aftersmtp:alpha\.example\.net:node size=2')
    a.wait_log(r'msg="tree head cosigned" witness=did:aftersmtp:beta\.example\.net:node size=2')
    with db(a) as c:
        n, = c.execute("SELECT count(*) FROM log_cosig").fetchone()
    assert n >= 1

    # alpha rewrites bob's registration: a key of its choosing (swap)
    with db(a) as c:
        leaf = bytearray(c.execute("SELECT leaf FROM log_leaf WHERE idx=1").fetchone()[0])
    leaf[46] ^= 0xff              # inside bob's signing key
    rewrite_history(a, 1, bytes(leaf))
    user(nodes, "carol", a)       # the log grows: a new head is signed
    b.wait_log(r'transparency log inconsistency: not cosigning this log any more" '
               r'log=did:aftersmtp:alpha\.example\.net:node', timeout=20)
    with db(b) as c:
        reason, = c.execute("SELECT reason FROM log_alarm").fetchone()
    assert "consistent" in reason, reason
    # and it cosigns nothing more of alpha
    cosigned = len(re.findall(r'witness: cosigned" log=did:aftersmtp:alpha', b.log_text()))
    user(nodes, "dave", a)
    time.sleep(2.5)
    assert len(re.findall(r'witness: cosigned" log=did:aftersmtp:alpha',
                          b.log_text())) == cosigned
    # alice saw only the head of size 1, which the rewrite left true
    alice.run("did", "resolve", alice.did)
    # bob saw the head of size 2: his client proves the lie too
    p = bob.run("did", "resolve", alice.did, check=False)
    assert p.returncode == 1, p.stdout
    assert b"INCONSISTENT" in p.stderr, p.stderr
    assert (bob.home / "heads" / "did:aftersmtp:alpha.example.net:node.evidence").exists()


def test_split_view_is_caught_by_witness_cosigning(nodes):
    """alpha shows one client a head and then, to another, a different
    history of the same log.  Only one can carry the witness's
    cosignature; a client that demands it refuses the other."""
    a, b = two_with_witness(nodes)
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", a)
    b.wait_log(r'msg="witness: cosigned" log=did:aftersmtp:alpha\.example\.net:node size=2')
    # a second view: same size, another root (bob's key swapped)
    with db(a) as c:
        leaf = bytearray(c.execute("SELECT leaf FROM log_leaf WHERE idx=1").fetchone()[0])
        c.execute("DELETE FROM log_head")          # forget the heads it signed
        c.execute("DELETE FROM log_cosig")
    leaf[46] ^= 0xff
    rewrite_history(a, 1, bytes(leaf))
    # the node signs a head of the rewritten log at its next tick
    deadline = time.monotonic() + 10
    while latest_head(a) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    b.wait_log(r"two signed heads of one size differ", timeout=20)
    # dave has never seen alpha's log: he registers into the rewritten
    # view, and only the witness can warn him
    dave, _ = user(nodes, "dave", a)
    p = dave.run("log", "head", "--witness", "did:aftersmtp:beta.example.net:node",
                 check=False)
    assert p.returncode == 1, p.stdout
    assert b"not cosigned" in p.stderr, p.stderr
    # bob saw the other view: his client proves the split
    p = bob.run("did", "resolve", alice.did, check=False)
    assert p.returncode == 1 and b"INCONSISTENT" in p.stderr, p.stderr


# ------------------------------------------------- the wire, independently

def head_dict(h):
    return {"log": h.log, "size": h.size, "root": h.root, "time": h.time, "sig": h.signature}


def test_log_operations_checked_by_an_independent_verifier(nodes):
    """The log operations spoken by a Python client (ssl + protobuf from
    proto/amp.proto), every head, proof and leaf checked with
    tests/e2e/rfc9162.py (hashlib, PyNaCl): nothing of ours in the loop."""
    from test_node import Raw, pb
    import ampy
    a = node(nodes, "alpha.example.net").start()
    node_pk = ampy.b64u_decode(a.key)
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", a)
    # grow the log one receipt at a time, so that many sizes get a head
    sizes = {2}
    for i in range(10):
        alice.run("send", bob.did, input=f"Subject: {i}\r\n\r\nreceipt {i}\r\n".encode())
        sizes.add(wait_head(a, 3 + i)[0])
    r = Raw(a)
    assert r.call(hello=pb.HelloRequest()).status == pb.STATUS_OK
    resp = r.call(log_head=pb.LogHeadRequest())
    assert resp.status == pb.STATUS_OK, resp.error
    head = head_dict(resp.log_head)
    assert head["log"] == "did:aftersmtp:alpha.example.net:node" and head["size"] == 12
    assert rfc9162.verify_head(head, node_pk)
    bad = dict(head, root=bytes(32))
    assert not rfc9162.verify_head(bad, node_pk)

    # every leaf, and the root recomputed from them
    resp = r.call(log_entries=pb.LogEntriesRequest(start=0, count=1000))
    leaves = list(resp.log_entries.leaves)
    assert len(leaves) == 12 and rfc9162.mth(leaves) == head["root"]
    kinds = [rfc9162.decode_leaf(x)["type"] for x in leaves]
    assert kinds == [1, 1] + [4] * 10
    hist = rfc9162.verify_key_history([rfc9162.decode_leaf(leaves[0])])
    assert hist["version"] == 0
    # a receipt names this node and the digest amp send printed
    p = alice.run("send", bob.did, input=b"one more\n")
    digest = bytes.fromhex(p.stdout.decode().splitlines()[1].split()[1])
    wait_head(a, 13)
    resp = r.call(log_proof=pb.LogProofRequest(subject=digest))
    assert resp.status == pb.STATUS_OK, resp.error
    d = rfc9162.decode_leaf(resp.log_proof.proof.leaf)
    assert d["type"] == 4 and d["subject"] == digest and d["node"] == head["log"]
    h13 = head_dict(resp.log_proof.head)
    assert rfc9162.verify_head(h13, node_pk)
    assert rfc9162.verify_inclusion(resp.log_proof.proof.index, h13["size"],
                                    rfc9162.leaf_hash(resp.log_proof.proof.leaf),
                                    list(resp.log_proof.proof.path), h13["root"])

    # inclusion of every leaf in every signed head; consistency between
    # every pair of signed heads
    roots = {}
    for n in sorted(sizes):
        resp = r.call(log_consistency=pb.LogConsistencyRequest(first=n, second=n))
        assert resp.status == pb.STATUS_OK, (n, resp.error)
        h = head_dict(resp.log_consistency.second)
        assert rfc9162.verify_head(h, node_pk) and h["size"] == n
        assert h["root"] == rfc9162.mth(leaves[:n])
        roots[n] = h["root"]
        for i in range(n):
            resp = r.call(log_proof=pb.LogProofRequest(index=i, tree_size=n))
            assert resp.status == pb.STATUS_OK, (i, n, resp.error)
            pr = resp.log_proof.proof
            assert pr.leaf == leaves[i]
            assert rfc9162.verify_inclusion(i, n, rfc9162.leaf_hash(pr.leaf),
                                            list(pr.path), roots[n])
    checked = 0
    for m in sorted(sizes):
        for n in sorted(sizes):
            if m > n:
                continue
            resp = r.call(log_consistency=pb.LogConsistencyRequest(first=m, second=n))
            assert resp.status == pb.STATUS_OK, (m, n, resp.error)
            proof = list(resp.log_consistency.path)
            assert rfc9162.verify_consistency(m, n, roots[m], roots[n], proof)
            if m < n:
                assert not rfc9162.verify_consistency(m, n, roots[m], bytes(32), proof)
            checked += 1
    assert checked >= 50

    # bad input: a clear refusal, and the connection goes on
    cases = [
        (dict(log_proof=pb.LogProofRequest(subject=b"x" * 31)), pb.STATUS_BAD_REQUEST),
        (dict(log_proof=pb.LogProofRequest(index=10 ** 9)), pb.STATUS_NOT_FOUND),
        (dict(log_proof=pb.LogProofRequest(index=0, tree_size=7777)), pb.STATUS_NOT_FOUND),
        (dict(log_proof=pb.LogProofRequest(subject=bytes(32))), pb.STATUS_NOT_FOUND),
        (dict(log_consistency=pb.LogConsistencyRequest(first=0, second=3)),
         pb.STATUS_BAD_REQUEST),
        (dict(log_consistency=pb.LogConsistencyRequest(first=5, second=3)),
         pb.STATUS_BAD_REQUEST),
        (dict(log_consistency=pb.LogConsistencyRequest(first=10 ** 12)), pb.STATUS_BAD_REQUEST),
        (dict(log_entries=pb.LogEntriesRequest(start=0, count=0)), pb.STATUS_BAD_REQUEST),
        (dict(log_cosign=pb.LogCosignRequest(head=resp.log_consistency.second)),
         pb.STATUS_FORBIDDEN),
        (dict(rotate=pb.RotateRequest(did_document="{}", version=1)), pb.STATUS_BAD_REQUEST),
        (dict(revoke=pb.RevokeRequest(did=alice.did, version=0, signature=bytes(64))),
         pb.STATUS_BAD_REQUEST),
        (dict(revoke=pb.RevokeRequest(did=alice.did, version=5, signature=bytes(64))),
         pb.STATUS_CONFLICT),
        (dict(revoke=pb.RevokeRequest(did="did:aftersmtp:alpha.example.net:nobody",
                                      version=0, signature=bytes(64))), pb.STATUS_NOT_FOUND),
    ]
    for body, want in cases:
        resp = r.call(**body)
        assert resp.status == want, (body, resp.status, resp.error)
        assert resp.error != ""
    resp = r.call(log_entries=pb.LogEntriesRequest(start=10 ** 9, count=5))
    assert resp.status == pb.STATUS_OK and len(resp.log_entries.leaves) == 0
    r.close()
    # alice was not revoked by the forged requests
    alice.run("did", "resolve", alice.did)


def test_correspondent_on_another_node_follows_a_rotation(nodes):
    """bob (beta) knows alice's (alpha) old key; after she rotates, her
    new signature makes his client fetch her history from alpha's log
    through beta, checked with alpha's node key."""
    a = node(nodes, "alpha.example.net")
    b = node(nodes, "beta.example.net")
    a.route_to(b)
    b.route_to(a)
    a.start()
    b.start()
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", b)
    alice.run("send", bob.did, input=b"Subject: one\r\n\r\nold key\r\n")
    p = bob.run("fetch", "--wait", "20", "--ack")
    assert b"old key" in p.stdout
    alice.run("key", "rotate", "--kdf", "min")
    p = bob.run("did", "resolve", alice.did)
    out = p.stdout.decode()
    assert "key version 1" in out and "of did:aftersmtp:alpha.example.net:node" in out, out
    alice.run("send", bob.did, input=b"Subject: two\r\n\r\nnew key\r\n")
    p = bob.run("fetch", "--wait", "20", "--ack")
    assert b"new key" in p.stdout, p.stderr
    assert b"rotated its key to version 1" in p.stderr, p.stderr


def test_receipt_from_the_recipients_node(nodes):
    """alice (alpha) mails bob (beta): beta logs the receipt; alice gets it
    through alpha (authenticated), checked with beta's node key, and it
    verifies offline."""
    a = node(nodes, "alpha.example.net")
    b = node(nodes, "beta.example.net")
    a.route_to(b)
    b.route_to(a)
    a.start()
    b.start()
    alice, _ = user(nodes, "alice", a)
    bob, _ = user(nodes, "bob", b)
    p = alice.run("send", bob.did, input=b"Subject: proof\r\n\r\nof transit\r\n")
    digest = p.stdout.decode().splitlines()[1].split()[1]
    out = alice.home / "bob.receipt"
    deadline = time.monotonic() + 20
    while True:
        p = alice.run("receipt", "get", digest, "--did", bob.did, "-o", str(out),
                      check=False)
        if p.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert p.returncode == 0, p.stderr
    assert b"accepted by did:aftersmtp:beta.example.net:node" in p.stdout, p.stdout
    # offline, from an empty home
    stranger = nodes[0] / "stranger"
    stranger.mkdir()
    q = subprocess.run([AMP_BIN, "receipt", "verify", "--home", str(stranger), str(out),
                        "--node-key", b.key], capture_output=True)
    assert q.returncode == 0, q.stderr
    assert b"accepted by did:aftersmtp:beta.example.net:node" in q.stdout
    # alpha's own log has no such receipt: the proof really came from beta
    p = alice.run("receipt", "get", digest, check=False)
    assert p.returncode == 1 and b"no receipt" in p.stderr, p.stderr
    # only a user of alpha may make it ask beta
    from test_node import Raw, pb
    r = Raw(a)
    r.call(hello=pb.HelloRequest())
    resp = r.call(log_proof=pb.LogProofRequest(subject=bytes.fromhex(digest),
                                               log="did:aftersmtp:beta.example.net:node"))
    assert resp.status == pb.STATUS_FORBIDDEN, resp
    r.close()
