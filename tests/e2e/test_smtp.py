"""The Legacy Bridge, inbound (issue 4, first slice): Internet mail over
SMTP to a real node, sealed into AMP and fetched with `amp fetch`, checked
with independent clients (Python's smtplib, swaks)."""
import shutil
import smtplib
import subprocess

import pytest

from nodes import Node, User, free_port, split_trace


@pytest.fixture
def bridge(base):
    b, nodes = base
    port = free_port()
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=port)
    nodes.append(n)
    n.start()
    n.smtp_port = port
    bob = User(b, "bob", n)
    bob.register()
    return b, n, bob


def after_received(fetched: bytes) -> bytes:
    """The message as fetched from the mbox output, without the trace
    fields the bridge prepends (Received:, Authentication-Results:)."""
    return split_trace(fetched.split(b"\n", 1)[1])[2]   # no mbox From_ line


def test_smtplib_mail_arrives_sealed_and_byte_identical(bridge):
    b, n, bob = bridge
    msg = (b"From: someone@example.net\r\nTo: bob@alpha.test\r\nSubject: hello\r\n"
           b"Message-ID: <1@example.net>\r\n\r\nHello Bob,\r\n.leading dot\r\n\r\nbye\r\n")
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        code, _ = s.ehlo("client.example.net")
        assert code == 250 and s.has_extn("pipelining") and s.has_extn("size")
        refused = s.sendmail("someone@example.net", ["bob@alpha.test"], msg)
        assert refused == {}
    out = bob.run("fetch", "--wait", "10").stdout
    assert out.startswith(b"From did:aftersmtp:alpha.test:node ")
    body = after_received(out)
    # mboxrd quoting and the final blank line of the mbox form
    assert body.rstrip(b"\n") == msg.rstrip(b"\n")
    n.wait_log(r'msg="smtp: message stored"')


def test_relay_and_unknown_users_are_refused(bridge):
    b, n, bob = bridge
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.mail("a@example.net")[0] == 250
        code, text = s.rcpt("victim@elsewhere.example")
        assert (code, text[:5]) == (554, b"5.7.1")
        for trick in ("victim%elsewhere.example@alpha.test", "elsewhere.example!victim@alpha.test"):
            code, text = s.rcpt(trick)
            assert code == 550, trick          # never routed: unknown user
        code, text = s.rcpt("nobody@alpha.test")
        assert (code, text[:5]) == (550, b"5.1.1")
        assert s.rcpt("BOB@alpha.test")[0] == 250
        code, _ = s.data(b"Subject: x\r\n\r\nonly bob\r\n")
        assert code == 250
    assert b"only bob" in bob.run("fetch", "--wait", "10").stdout


def test_swaks_and_a_smuggling_attempt(bridge):
    b, n, bob = bridge
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.fail("swaks is missing: run scripts/bootstrap.sh")
    p = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(n.smtp_port),
                        "--from", "a@example.net", "--to", "bob@alpha.test",
                        "--header", "Subject: via swaks", "--body", "swaks body"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "250 2.0.0 Ok: sealed and stored" in p.stdout
    # S3: "\n.\n" then a smuggled transaction: one answer, nothing smuggled
    import socket
    s = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")

    def cmd(line):
        s.sendall(line)
        reply = f.readline()
        while reply[3:4] == b"-":
            reply = f.readline()
        return reply

    assert cmd(b"EHLO x.example\r\n").startswith(b"250 ")
    assert cmd(b"MAIL FROM:<a@example.net>\r\n").startswith(b"250")
    assert cmd(b"RCPT TO:<bob@alpha.test>\r\n").startswith(b"250")
    assert cmd(b"DATA\r\n").startswith(b"354")
    r = cmd(b"Subject: s\r\n\r\nreal\n.\nMAIL FROM:<evil@x.example>\r\n"
            b"RCPT TO:<bob@alpha.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
    assert r.startswith(b"550 5.5.2")
    assert cmd(b"QUIT\r\n").startswith(b"221")
    s.close()
    out = bob.run("fetch", "--wait", "10").stdout
    assert b"via swaks" in out and b"smuggled" not in out and b"real" not in out


def test_postmaster_without_a_route_is_refused_clearly(bridge):
    b, n, bob = bridge
    n.wait_log(r"no smtp_postmaster")
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        s.mail("a@example.net")
        code, text = s.rcpt("postmaster@alpha.test")
        assert code == 550 and b"smtp_postmaster" in text
