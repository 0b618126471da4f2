"""The bridge's send path (src/bridge/bsend.c, issue 6) end to end: a mail
client submits one message over `amp bridge run`'s submission port to an
AMP user of the same node and to two legacy addresses (one of them only
Bcc'd).  The AMP recipient gets it as AMP mail without the Bcc field and
without the legacy recipients' AMP-Egress-To list; the legacy receiver
(aiosmtpd behind the node's gateway) gets one SMTP transaction for both
legacy addresses, again without Bcc; an AMP-Egress-To field the client
wrote itself is dropped, not obeyed."""
import re
import smtplib

import pytest

from dnsfixture import dns_server  # noqa: F401
from nodes import Node, User, free_port
from bridgefixture import Bridge
from test_outbound import Receiver, outbound_node, zone  # noqa: F401

pytest.importorskip("aiosmtpd.controller")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_mixed_amp_and_legacy_recipients_with_bcc(base, dns_server, receiver,  # noqa: F811
                                                  tmp_path):
    dns = dns_server(zone())
    (b, n, bob), _ = outbound_node(base, dns, receiver, tmp_path)
    alice = User(b, "alice", n)
    alice.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    br = Bridge(bob)
    try:
        msg = (b"AMP-Egress-To: evil@example.net\r\n"
               b"From: Bob <bob@alpha.test>\r\n"
               b"To: alice@alpha.test\r\n"
               b"Cc: carol@example.net\r\n"
               b"Bcc: dave@example.net\r\n"
               b"Subject: mixed\r\n"
               b"Message-ID: <mixed1@alpha.test>\r\n"
               b"\r\nHello all,\r\n.dot line\r\n")
        clean = re.sub(rb"(AMP-Egress-To|Bcc): [^\r]*\r\n", b"", msg)
        with smtplib.SMTP("127.0.0.1", br.smtp_port, timeout=60) as s:
            s.login("bob@alpha.test", pw)
            refused = s.sendmail("bob@alpha.test",
                                 ["alice@alpha.test", "carol@example.net",
                                  "dave@example.net"], msg)
            assert refused == {}
        # the legacy copy: both legacy addresses, one transaction, no Bcc
        (mail_from, rcpts, data), = receiver.wait(1)
        assert mail_from == "bob@alpha.test"
        assert sorted(rcpts) == ["carol@example.net", "dave@example.net"]
        assert b"Bcc" not in data and b"AMP-Egress-To" not in data
        assert b"evil" not in data
        assert b"Subject: mixed\r\n" in data and b"\r\n.dot line\r\n" in data
        # the AMP copy: what the client wrote, less Bcc and AMP- fields
        md = alice.home / "md"
        alice.run("fetch", "--maildir", str(md), "--wait", "20", "--ack")
        files = sorted((md / "new").iterdir())
        assert len(files) == 1
        assert files[0].read_bytes() == clean
        br.wait_log(r'msg="submission: message sent"')
    finally:
        br.stop()
    assert len(receiver.messages) == 1


@pytest.fixture
def two_nodes(base):
    """alpha.test (bob, whose bridge runs) and beta.test (carol), routed
    to each other; alpha also has a route to gamma.test, whose node is
    down."""
    b, nodes = base
    alpha, beta = Node(b, "alpha.test"), Node(b, "beta.test")
    nodes += [alpha, beta]
    alpha.route_to(beta)
    beta.route_to(alpha)
    with alpha.map.open("a") as f:
        f.write(f"gamma.test 127.0.0.1:{free_port()} tls\n")
    alpha.start()
    beta.start()
    bob, carol = User(b, "bob", alpha), User(b, "carol", beta)
    bob.register()
    carol.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    br = Bridge(bob)
    try:
        yield bob, carol, br, pw
    finally:
        br.stop()


def test_remote_amp_user_by_address_and_unreachable_node(two_nodes):
    bob, carol, br, pw = two_nodes
    msg = (b"From: bob@alpha.test\r\nTo: carol@beta.test\r\nSubject: remote\r\n"
           b"\r\nHi Carol\r\n")
    with smtplib.SMTP("127.0.0.1", br.smtp_port, timeout=60) as s:
        s.login("bob@alpha.test", pw)
        # carol@beta.test is an AMP identity on another node: sealed to her
        s.sendmail("bob@alpha.test", ["carol@beta.test"], msg)
        # gamma.test runs AfterSMTP but cannot be reached: never legacy
        # mail (AMP-R-074), the client is told to try again
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("bob@alpha.test", ["someone@gamma.test"], msg)
        assert e.value.smtp_code == 451
        assert b"someone@gamma.test: lookup: RETRY_LATER" in e.value.smtp_error
    md = carol.home / "md"
    carol.run("fetch", "--maildir", str(md), "--wait", "20", "--ack")
    files = sorted((md / "new").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == msg
