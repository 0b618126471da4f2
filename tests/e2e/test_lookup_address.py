"""Looking identities up by mail address (PROTOCOL.md §10.3.1, issue 6):
what the local bridge does with a recipient a mail client typed.

Two real nodes, alpha.test and beta.test, routed to each other; alpha
has a canonical_maps table.  Each answer is checked against the DID
document the identity registered (`amp lookup DID` at its home node).
"""
import json

import pytest

from nodes import Node, User, free_port, make_base, remove_base, stop_all


@pytest.fixture(scope="module")
def net():
    b = make_base()
    nodes = []
    try:
        alpha = Node(b, "alpha.test")
        beta = Node(b, "beta.test")
        nodes += [alpha, beta]
        cmap = b / "canonical"
        cmap.write_text("alice.smith@alpha.test did:aftersmtp:alpha.test:alice\n"
                        "sales@alpha.test carol@alpha.test\n"
                        "elsewhere@alpha.test someone@example.net\n")
        cmap.chmod(0o644)
        alpha.conf["canonical_maps"] = str(cmap)
        alpha.write_conf()
        alpha.route_to(beta)
        beta.route_to(alpha)
        with alpha.map.open("a") as f:   # a route to a node that is down
            f.write(f"gamma.test 127.0.0.1:{free_port()} tls\n")
        alpha.start()
        beta.start()
        alice, carol, bob = User(b, "alice", alpha), User(b, "carol", alpha), User(b, "bob", beta)
        for u in (alice, carol, bob):
            u.register()
        yield alpha, beta, alice, carol, bob
    finally:
        try:
            stop_all(nodes)
        finally:
            remove_base(b)


def lookup(user, what, check=True):
    p = user.run("lookup", what, check=check)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def first_line(out):
    did, addr = out.splitlines()[0].split(" ")
    doc = json.loads(out.split("\n", 1)[1])
    return did, addr, doc


def test_local_address_names_the_did(net):
    alpha, beta, alice, carol, bob = net
    rc, out, _ = lookup(carol, "alice@alpha.test")
    did, addr, doc = first_line(out)
    assert did == alice.did and doc["id"] == alice.did
    # alice has a canonical_maps reverse entry: that is her address
    assert addr == "alice.smith@alpha.test"
    # case does not matter
    rc, out, _ = lookup(carol, "Alice@ALPHA.test")
    assert first_line(out)[0] == alice.did


def test_canonical_maps_forward(net):
    alpha, beta, alice, carol, bob = net
    did, addr, _ = first_line(lookup(bob, "alice.smith@alpha.test")[1])
    assert did == alice.did and addr == "alice.smith@alpha.test"
    did, addr, _ = first_line(lookup(alice, "sales@alpha.test")[1])
    assert did == carol.did and addr == "carol@alpha.test"


def test_not_an_identity_is_not_found(net):
    alpha, beta, alice, carol, bob = net
    for what in ("nobody@alpha.test", "elsewhere@alpha.test", "node@alpha.test",
                 "gateway@alpha.test"):
        rc, out, err = lookup(carol, what, check=False)
        assert rc == 1 and out == "", (what, out)
        assert "NOT_FOUND" in err, err


def test_remote_address_through_its_home_node(net):
    alpha, beta, alice, carol, bob = net
    # bob is on beta: alice's node asks beta (a route exists)
    did, addr, doc = first_line(lookup(alice, "bob@beta.test")[1])
    assert did == bob.did and addr == "bob@beta.test"
    assert doc == json.loads(bob.run("lookup", bob.did).stdout)
    # and the other way, through alpha's canonical_maps
    did, addr, _ = first_line(lookup(bob, "alice.smith@alpha.test")[1])
    assert did == alice.did and addr == "alice.smith@alpha.test"
    rc, _, err = lookup(alice, "nobody@beta.test", check=False)
    assert rc == 1 and "unknown identity" in err


def test_domain_without_a_node_is_legacy(net):
    """No route and no SRV record: not an AfterSMTP domain, answered at
    once without connecting anywhere."""
    alpha, beta, alice, carol, bob = net
    rc, out, err = lookup(alice, "someone@example.net", check=False)
    assert rc == 1 and "no AfterSMTP node is known for that domain" in err, err


def test_known_node_unreachable_is_not_legacy(net):
    """A domain with a route whose node is down: try again later (the
    bridge must not send such mail as legacy mail)."""
    alpha, beta, alice, carol, bob = net
    rc, out, err = lookup(alice, "someone@gamma.test", check=False)
    assert rc == 1 and out == "" and "cannot be reached" in err, err


def test_did_lookup_and_malformed_addresses(net):
    """A DID lookup still prints only the document (scripts parse it);
    malformed addresses are refused."""
    alpha, beta, alice, carol, bob = net
    out = bob.run("lookup", alice.did).stdout
    assert json.loads(out)["id"] == alice.did
    for bad in ("@alpha.test", "alice@", "x" * 250 + "@alpha.test"):
        rc, out, err = lookup(alice, bad, check=False)
        assert rc == 1 and out == "", bad
