"""amp bridge end to end (issue 6): a real aftersmtpd node, users who
register and send AMP mail with the real `amp`, and the recipient's
`amp bridge run` read with Python's imaplib, as a mail client does:
verified mail in INBOX byte for byte, IDLE woken by a new delivery,
text/plain AMP mail wrapped as RFC 5322, a message whose signature does
not verify shown in "Unverified" with the reason, wrong passwords refused
ever more slowly, and a clean stop on SIGTERM."""
import imaplib
import os
import re
import smtplib
import ssl
import time

import pytest

from bridgefixture import Bridge, fetch_body, two_users, wait_messages
from nodes import Node, User


@pytest.fixture
def alpha(base):
    b, nodes = base
    n = Node(b, "alpha.test")
    nodes.append(n)
    n.start()
    return b, n


@pytest.fixture
def bridged(alpha):
    """two_users, and bob's bridge running."""
    alice, bob, pw = two_users(alpha)
    br = Bridge(bob)
    try:
        yield alice, bob, br, pw
    finally:
        br.stop()


def test_verified_mail_in_inbox_byte_identical(bridged):
    alice, bob, br, pw = bridged
    msg = (b"From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: through the bridge\r\n"
           b"Message-ID: <one@alpha.test>\r\n\r\nHello Bob,\r\nend to end.\r\n\xe2\x9c\x93\r\n")
    p = alice.run("send", bob.did, input=msg)
    assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"
    m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
    assert n == 1
    assert fetch_body(m, 1) == msg
    typ, data = m.fetch("1", "(ENVELOPE RFC822.SIZE)")
    assert typ == "OK" and b'"through the bridge"' in data[0]
    assert f"RFC822.SIZE {len(msg)}".encode() in data[0]
    m.logout()
    # the DID is a user name too, in any case for the address
    m = br.imap()
    m.login(bob.did, pw)
    m.logout()
    m = br.imap()
    m.login("Bob@Alpha.Test", pw)
    m.logout()
    # stored, then acked: the node's inbox is empty
    br.wait_log(r'msg="bridge sync: verified" seq=\d+ sender=did:aftersmtp:alpha.test:alice')
    deadline = time.monotonic() + 10
    while bob.run("inbox").stdout != b"" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bob.run("inbox").stdout == b""


def test_starttls_and_a_large_message(bridged):
    """STARTTLS with the bridge's own certificate (made on first run), and
    a message of several MiB fetched whole through TLS: the answer is
    produced in pieces as the client reads (write back-pressure)."""
    alice, bob, br, pw = bridged
    cert = bob.home / "bridge" / "tls.pem"
    assert (bob.home / "bridge" / "tls.key").stat().st_mode & 0o777 == 0o600
    big = (b"Subject: big\r\n\r\n" +
           b"".join(os.urandom(57).hex().encode() + b"\r\n" for _ in range(60000)))
    alice.run("send", bob.did, input=big)
    m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1, timeout=60)
    assert n == 1
    m.logout()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False          # the certificate names "localhost"
    m = br.imap()
    assert "STARTTLS" in m.capabilities
    m.starttls(ssl_context=ctx)
    m.login("bob@alpha.test", pw)
    m.select("INBOX", readonly=True)
    assert fetch_body(m, 1) == big
    m.logout()
    # a client that leaves in the middle of that answer (EPIPE, reset)
    # does not take the bridge with it
    for _ in range(3):
        m = br.imap()
        m.login("bob@alpha.test", pw)
        m.select("INBOX", readonly=True)
        m.send(b"x FETCH 1 BODY.PEEK[]\r\n")
        m.sock.close()
    m = br.imap()
    m.login("bob@alpha.test", pw)
    m.logout()


def test_idle_wakes_on_a_new_delivery(bridged):
    alice, bob, br, pw = bridged
    first = b"Subject: one\r\n\r\nfirst\r\n"
    alice.run("send", bob.did, input=first)
    m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
    assert n == 1
    m.logout()
    m = br.imap()
    m.login("bob@alpha.test", pw)
    assert m.select("INBOX")[0] == "OK"
    m.send(b"i1 IDLE\r\n")
    assert m.readline().startswith(b"+")
    second = b"Subject: two\r\n\r\nsecond\r\n"
    t0 = time.monotonic()
    alice.run("send", bob.did, input=second)
    m.sock.settimeout(30)
    seen = b""
    while b"* 2 EXISTS" not in seen:
        line = m.readline()
        assert line, "the bridge closed the IDLE connection"
        seen += line
    assert time.monotonic() - t0 < 25
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        assert line
        if line.startswith(b"i1 "):
            assert line.startswith(b"i1 OK"), line
            break
    assert fetch_body(m, 2) == second
    m.logout()


def read_until(m, what, timeout=5):
    """Lines from an imaplib connection until one contains what."""
    m.sock.settimeout(timeout)
    seen = b""
    while what not in seen:
        line = m.readline()
        assert line, f"the bridge closed the connection; got {seen!r}"
        seen += line
    return seen


def test_idle_sees_what_another_session_does(bridged):
    """Thunderbird's way: one connection IDLEs on INBOX while another
    flags, appends and expunges; the IDLE one is told at once (RFC 2177),
    not at its next command."""
    alice, bob, br, pw = bridged
    alice.run("send", bob.did, input=b"Subject: one\r\n\r\nfirst\r\n")
    m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
    m.logout()
    idle = br.imap()
    idle.login("bob@alpha.test", pw)
    assert idle.select("INBOX")[0] == "OK"
    idle.send(b"i1 IDLE\r\n")
    assert idle.readline().startswith(b"+")
    other = br.imap()
    other.login("bob@alpha.test", pw)
    other.select("INBOX")
    assert other.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    assert re.search(rb"\* 1 FETCH \(FLAGS \([^)]*\\Flagged", read_until(idle, b"FETCH"))
    assert other.append("INBOX", None, None, b"Subject: two\r\n\r\nsecond\r\n")[0] == "OK"
    read_until(idle, b"* 2 EXISTS")
    other.store("1", "+FLAGS", "(\\Deleted)")
    read_until(idle, b"FETCH")
    assert other.expunge()[0] == "OK"
    read_until(idle, b"* 1 EXPUNGE")
    other.logout()
    idle.send(b"DONE\r\n")
    assert b"\r\ni1 OK" in b"\r\n" + read_until(idle, b"i1 ")
    idle.logout()


def test_text_plain_mail_is_wrapped(bridged):
    alice, bob, br, pw = bridged
    alice.run("send", bob.did, input=b"just a line\n")
    m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
    assert n == 1
    body = fetch_body(m, 1)
    head, _, text = body.partition(b"\r\n\r\n")
    assert b"From: <alice@alpha.test>" in head
    assert b"To: <bob@alpha.test>" in head
    assert b"Subject: (no subject)" in head
    assert re.search(rb"Message-ID: <[0-9a-f]{32}@amp\.invalid>", head)
    assert re.search(rb"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000", head)
    assert text == b"just a line\r\n"
    m.logout()


def test_unverifiable_mail_goes_to_unverified_with_the_reason(alpha):
    b, node = alpha

    def pin_an_impostor(alice, bob):
        # bob believes alice has other keys (an impostor's document pinned
        # in HOME/known): her real signature cannot verify, and her node's
        # log does not prove a rotation to it
        other = User.__new__(User)
        other.node, other.did, other.home = node, alice.did, b / "fake-alice"
        other.run("keygen", "--did", alice.did, "--kdf", "min")
        doc = other.run("did", "document").stdout
        known = bob.home / "known"
        known.mkdir(exist_ok=True)
        (known / f"{alice.did}.json").write_bytes(doc)

    alice, bob, pw = two_users(alpha, pin_an_impostor)
    br = Bridge(bob)
    try:
        msg = b"Subject: forged?\r\n\r\nbody\r\n"
        alice.run("send", bob.did, input=msg)
        m, n = wait_messages(br, "bob@alpha.test", pw, "Unverified", 1)
        assert n == 1
        body = fetch_body(m, 1)
        assert re.search(rb"X-AMP-Verification: failed \(AMP_E_BAD_SIGNATURE", body), body[:800]
        assert f"X-AMP-Sender-DID: {alice.did}".encode() in body
        assert re.search(rb"X-AMP-Envelope-ID: [0-9a-f]{32}", body)
        assert b"Content-Type: application/octet-stream" in body
        assert b"body\r\n" not in body          # never shown opened
        m.logout()
        m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 0, timeout=0)
        assert n == 0
        m.logout()
    finally:
        br.stop()


def test_wrong_password_refused_with_back_off(bridged):
    alice, bob, br, pw = bridged
    times = []
    for _ in range(2):
        m = br.imap()
        t0 = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error):
            m.login("bob@alpha.test", "not-the-password")
        times.append(time.monotonic() - t0)
        m.shutdown()
    assert times[0] >= 0.9 and times[1] >= 1.9 and times[1] > times[0], times
    # another user's name with the right password: refused too
    m = br.imap()
    with pytest.raises(imaplib.IMAP4.error):
        m.login("alice@alpha.test", pw)
    m.shutdown()
    # the right one still works, and resets the back-off
    m = br.imap()
    m.login("bob@alpha.test", pw)
    m.logout()
    br.wait_log(r'msg="bridge: wrong user or password" via=imap failures=3')


def test_submission_sends_as_amp_and_keeps_a_sent_copy(bridged):
    alice, bob, br, pw = bridged
    msg = (b"From: bob@alpha.test\r\nTo: alice@alpha.test\r\nSubject: via submission\r\n"
           b"Message-ID: <sub1@alpha.test>\r\n\r\nHello Alice,\r\nfrom mutt.\r\n")
    with smtplib.SMTP("127.0.0.1", br.smtp_port, timeout=60) as s:
        s.login("bob@alpha.test", pw)
        # B2: a MAIL FROM that is not ours
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("alice@alpha.test", ["alice@alpha.test"], msg)
        assert e.value.smtp_code == 553
        s.rset()
        s.sendmail("bob@alpha.test", ["alice@alpha.test"], msg)
    md = alice.home / "md"
    alice.run("fetch", "--maildir", str(md), "--wait", "20", "--ack")
    files = sorted((md / "new").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == msg
    m, n = wait_messages(br, "bob@alpha.test", pw, "Sent", 1)
    assert n == 1 and fetch_body(m, 1) == msg
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    m.logout()


def test_restart_keeps_uids_and_stores_nothing_twice(alpha):
    alice, bob, pw = two_users(alpha)
    msg = b"Subject: kept\r\n\r\nacross restarts\r\n"
    br = Bridge(bob)
    try:
        alice.run("send", bob.did, input=msg)
        m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
        before = m.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)")[1][0]
        m.logout()
    finally:
        br.stop()
    # started again: the same UIDVALIDITY, UIDNEXT grows by the one new
    # message, the first is still there (the cursor and acks held)
    br = Bridge(bob)
    try:
        alice.run("send", bob.did, input=b"Subject: second\r\n\r\nafter\r\n")
        m, n = wait_messages(br, "bob@alpha.test", pw, "INBOX", 2)
        assert n == 2
        after = m.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)")[1][0]
        vb = re.search(rb"UIDVALIDITY (\d+)", before).group(1)
        assert re.search(rb"UIDVALIDITY (\d+)", after).group(1) == vb
        nb = int(re.search(rb"UIDNEXT (\d+)", before).group(1))
        assert int(re.search(rb"UIDNEXT (\d+)", after).group(1)) == nb + 1
        assert fetch_body(m, 1) == msg
        m.logout()
    finally:
        br.stop()
    # sealed at rest: no plaintext in the database file
    store = (bob.home / "bridge" / "store.db").read_bytes()
    assert b"across restarts" not in store


def test_canonical_address_is_a_user_name(base):
    """The home node's canonical_maps give bob another address: the bridge
    learns it from the node and takes it as a user name and as To:."""
    b, nodes = base
    node = Node(b, "alpha.test")
    cmap = b / "canonical"
    cmap.write_text("bob.builder@alpha.test did:aftersmtp:alpha.test:bob\n")
    cmap.chmod(0o644)
    node.conf["canonical_maps"] = str(cmap)
    node.write_conf()
    nodes.append(node)
    node.start()
    alice, bob, pw = two_users((b, node))
    br = Bridge(bob)
    try:
        br.wait_log(r'msg="bridge sync: our address" address=bob.builder@alpha.test')
        alice.run("send", bob.did, input=b"plain words\n")
        m, n = wait_messages(br, "Bob.Builder@alpha.test", pw, "INBOX", 1)
        assert n == 1
        assert b"To: <bob.builder@alpha.test>\r\n" in fetch_body(m, 1)
        m.logout()
    finally:
        br.stop()


def test_help_and_status(alpha):
    b, node = alpha
    bob = User(b, "bob", node)
    out = bob.run("bridge", "--help").stdout.decode()
    assert "amp bridge run" in out and "amp bridge password" in out
    p = bob.run("bridge", "status", check=False)
    assert p.returncode == 1 and b"next: amp bridge password" in p.stdout
    p = bob.run("bridge", "frobnicate", check=False)
    assert p.returncode == 2
