"""The Legacy Bridge, inbound: STARTTLS and implicit TLS against the real
daemon (TESTING.md rows T1-T4), with Python's ssl module, swaks and
openssl s_client as independent TLS clients."""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from nodes import Node, free_port, read_reply, smtp_node


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


@pytest.fixture
def tlsnode(base):
    b, n, bob = smtp_node(base, smtps_listen="127.0.0.1", smtps_port=free_port(),
                          smtp_tls_timeout="2s")
    n.smtps_port = int(n.conf["smtps_port"])
    return b, n, bob


def test_starttls_then_mail_arrives_with_tls_in_received(tlsnode):
    b, n, bob = tlsnode
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=ctx())
        assert code == 220
        s.ehlo("client.example.net")
        assert not s.has_extn("starttls")          # T2: not offered again
        assert s.sendmail("a@example.net", ["bob@alpha.test"],
                          b"Subject: over tls\r\n\r\nsecret\r\n") == {}
    out = bob.run("fetch", "--wait", "10").stdout
    assert b"with ESMTPS (TLS1." in out and b"secret" in out


def test_implicit_tls_port_465(tlsnode):
    b, n, bob = tlsnode
    with smtplib.SMTP_SSL("127.0.0.1", n.smtps_port, timeout=20, context=ctx()) as s:
        code, _ = s.ehlo("client.example.net")
        assert code == 250 and not s.has_extn("starttls")
        # T3: STARTTLS when TLS is already active
        assert s.docmd("STARTTLS")[0] == 503
        assert s.sendmail("a@example.net", ["bob@alpha.test"],
                          b"Subject: smtps\r\n\r\nimplicit\r\n") == {}
    out = bob.run("fetch", "--wait", "10").stdout
    assert b"with ESMTPS" in out and b"implicit" in out


def test_t1_commands_pipelined_after_starttls_are_discarded(tlsnode):
    """T1 (CVE-2011-0411): STARTTLS and NOOP in one segment; after the
    handshake no reply to the NOOP may arrive, and the next reply is the
    one to our EHLO."""
    b, n, bob = tlsnode
    raw = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f = raw.makefile("rb")
    assert read_reply(f)[0] == 220
    raw.sendall(b"EHLO c.example\r\n")
    assert read_reply(f)[0] == 250
    raw.sendall(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<x@example.net>\r\n")
    code, text = read_reply(f)
    # STARTTLS must end a pipelined group (RFC 3207): 554 and close
    assert (code, text[4:9]) == (554, b"5.5.0")
    assert f.read() == b""                       # closed, nothing else said
    raw.close()
    # Plaintext commands sent after the 220 instead of a ClientHello are
    # never executed: the handshake fails and the connection closes.
    raw = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f = raw.makefile("rb")
    assert read_reply(f)[0] == 220
    raw.sendall(b"EHLO c.example\r\n")
    assert read_reply(f)[0] == 250
    raw.sendall(b"STARTTLS\r\n")
    assert read_reply(f)[0] == 220
    raw.sendall(b"NOOP\r\nNOOP\r\n")
    rest = f.read()
    assert b"250" not in rest
    raw.close()
    # A clean STARTTLS: nothing arrives inside TLS before our EHLO.
    raw = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f = raw.makefile("rb")
    assert read_reply(f)[0] == 220
    raw.sendall(b"EHLO c.example\r\n")
    assert read_reply(f)[0] == 250
    raw.sendall(b"MAIL FROM:<x@example.net>\r\n")
    assert read_reply(f)[0] == 250
    raw.sendall(b"STARTTLS\r\n")
    assert read_reply(f)[0] == 220
    t = ctx().wrap_socket(raw, server_hostname="alpha.test")
    t.settimeout(1.0)
    with pytest.raises((socket.timeout, TimeoutError)):
        stray = t.recv(100)
        pytest.fail(f"a reply to an injected command arrived inside TLS: {stray!r}")
    t.settimeout(10)
    t.sendall(b"EHLO c.example\r\n")
    tf = t.makefile("rb")
    code, text = read_reply(tf)
    assert code == 250 and text.startswith(b"250-alpha.test")
    # T2: the transaction begun before TLS is forgotten: RCPT needs a MAIL
    t.sendall(b"RCPT TO:<bob@alpha.test>\r\n")
    assert read_reply(tf)[0] == 503
    t.close()


def test_t2_t3_state_and_starttls_misuse(tlsnode):
    b, n, bob = tlsnode
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        assert s.docmd("STARTTLS", "now")[0] == 501     # T3: argument
        assert s.docmd("MAIL FROM:<a@example.net>")[0] == 250
        assert s.starttls(context=ctx())[0] == 220
        # T2: a new EHLO is needed after TLS; the old transaction is gone
        assert s.docmd("MAIL FROM:<a@example.net>")[0] == 503
        s.ehlo("c.example")
        assert s.docmd("STARTTLS")[0] == 503             # T3: twice


def test_t3_starttls_not_offered(base):
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             smtp_starttls="no")
    nodes.append(n)
    n.start()
    with smtplib.SMTP("127.0.0.1", int(n.conf["smtp_port"]), timeout=20) as s:
        s.ehlo("c.example")
        assert not s.has_extn("starttls")
        code, text = s.docmd("STARTTLS")
        assert (code, text[:5]) == (454, b"4.7.0")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_t4_garbage_plaintext_and_stalled_handshakes_are_closed(tlsnode):
    b, n, bob = tlsnode
    pid = n.proc.pid
    time.sleep(0.3)
    before = open_fds(pid)
    # garbage instead of a ClientHello, after STARTTLS
    s1 = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f1 = s1.makefile("rb")
    read_reply(f1)
    s1.sendall(b"STARTTLS\r\n")
    assert read_reply(f1)[0] == 220
    s1.sendall(os.urandom(300))
    # plaintext SMTP on the implicit-TLS port
    s2 = socket.create_connection(("127.0.0.1", n.smtps_port), timeout=10)
    s2.sendall(b"EHLO plain.example\r\n")
    # a handshake that never starts, on both ports
    s3 = socket.create_connection(("127.0.0.1", n.smtps_port), timeout=10)
    s4 = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f4 = s4.makefile("rb")
    read_reply(f4)
    s4.sendall(b"STARTTLS\r\n")
    assert read_reply(f4)[0] == 220
    t0 = time.monotonic()
    for s in (s1, s2, s3, s4):
        s.settimeout(6)
        while True:                      # the server closes: recv gives b""
            try:
                if s.recv(4096) == b"":
                    break
            except ConnectionResetError:
                break
    # smtp_tls_timeout is 2 s
    assert time.monotonic() - t0 < 5.0
    for s in (s1, s2, s3, s4):
        s.close()
    time.sleep(0.5)
    assert open_fds(pid) <= before, "descriptors leaked"
    # and the server still works
    with smtplib.SMTP_SSL("127.0.0.1", n.smtps_port, timeout=20, context=ctx()) as s:
        assert s.noop()[0] == 250


def test_swaks_and_openssl_speak_starttls(tlsnode):
    b, n, bob = tlsnode
    if shutil.which("swaks") is None:
        pytest.fail("swaks is missing: run scripts/bootstrap.sh")
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{n.smtp_port}", "--tls",
                        "--from", "a@example.net", "--to", "bob@alpha.test",
                        "--body", "via swaks tls"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TLS started" in p.stdout
    # TLS 1.2 too (many Internet MTAs): openssl s_client
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-tls1_2",
                        "-connect", f"127.0.0.1:{n.smtp_port}", "-brief"],
                       input="QUIT\n", capture_output=True, text=True, timeout=30)
    assert "Protocol version: TLSv1.2" in p.stderr + p.stdout, p.stderr
    assert b"via swaks tls" in bob.run("fetch", "--wait", "10").stdout


def test_t1_starttls_as_the_last_line_of_a_full_input_buffer(tlsnode):
    """T1 at the session's 64 KiB input boundary: STARTTLS is the last
    whole line of one buffer-full and an EHLO follows in the same read.
    The EHLO must never be answered inside TLS."""
    b, n, bob = tlsnode
    raw = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = raw.makefile("rb")
    assert read_reply(f)[0] == 220
    raw.sendall(b"EHLO c.example\r\n")
    read_reply(f)
    pre = b"HELP " + b"x" * 900            # a partial line left in the buffer
    raw.sendall(pre)
    time.sleep(0.3)
    room = 65536 - len(pre)
    starttls = b"STARTTLS\r\n"
    n_rset = (room - 2 - len(starttls)) // 6
    pad = room - 2 - len(starttls) - 6 * n_rset
    chunk = b"y" * pad + b"\r\n" + b"RSET\r\n" * n_rset + starttls
    assert len(chunk) == room
    raw.sendall(chunk + b"EHLO injected.example\r\n")
    while True:
        code, text = read_reply(f)
        if code is None or code == 220 or code >= 500:
            break
    if code is None or code >= 500:        # refused outright: also safe
        return
    t = ctx().wrap_socket(raw, server_hostname="alpha.test")
    t.settimeout(1.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        stray = t.recv(200)
        pytest.fail(f"an injected command was answered inside TLS: {stray!r}")
    t.close()


def test_starttls_after_a_pending_decision_starts_tls(tlsnode):
    """STARTTLS pipelined behind a RCPT (answered later, from a worker
    thread): the 220 comes after the RCPT's reply and TLS does start."""
    b, n, bob = tlsnode
    raw = socket.create_connection(("127.0.0.1", n.smtp_port), timeout=10)
    f = raw.makefile("rb")
    read_reply(f)
    raw.sendall(b"EHLO c.example\r\n")
    read_reply(f)
    raw.sendall(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@alpha.test>\r\nSTARTTLS\r\n")
    assert [read_reply(f)[0] for _ in range(3)] == [250, 250, 220]
    t = ctx().wrap_socket(raw, server_hostname="alpha.test")
    t.sendall(b"EHLO c.example\r\n")
    code, text = read_reply(t.makefile("rb"))
    assert code == 250
    t.close()


def test_a_stalled_handshake_near_the_session_cap_does_not_stall_the_node(base):
    """A STARTTLS without a ClientHello shortly before smtp_session_max:
    the connection is closed at the cap, and other clients are served
    meanwhile (the loop never spins on the timer)."""
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             smtp_session_max="3s", smtp_tls_timeout="5s")
    nodes.append(n)
    n.start()
    port = int(n.conf["smtp_port"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    read_reply(f)
    raw.sendall(b"EHLO c.example\r\n")
    read_reply(f)
    time.sleep(1.5)
    raw.sendall(b"STARTTLS\r\n")
    assert read_reply(f)[0] == 220
    time.sleep(2.5)                        # past the session cap
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        assert s.noop()[0] == 250
    assert time.monotonic() - t0 < 2
    raw.settimeout(5)
    assert raw.recv(100) == b""            # closed
    raw.close()
