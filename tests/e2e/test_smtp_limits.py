"""The Legacy Bridge, inbound: limits that need time, many connections or
a whole message (TESTING.md rows S12, S13, S15, S17, S19, S20) against the
real daemon."""
import os
import smtplib
import socket
import time

import pytest

from nodes import Node, free_port, read_reply, smtp_node as start


def connect(port, host="127.0.0.1", source=None):
    s = socket.create_connection((host, port), timeout=15,
                                 source_address=(source, 0) if source else None)
    return s, s.makefile("rb")


def closed_within(s, seconds):
    """The server closes the connection within `seconds`; returns what it
    sent last."""
    s.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return got
            got += chunk
    except (socket.timeout, TimeoutError):
        pytest.fail(f"still open after {seconds} s; got {got!r}")
    except ConnectionResetError:
        return got


# ------------------------------------------------------------------ S13

def test_s13_idle_half_command_and_stalled_data_time_out(base):
    b, n, bob = start(base, smtp_timeout="2s")
    # idle after the greeting
    s1, f1 = connect(n.smtp_port)
    assert read_reply(f1)[0] == 220
    # a command held half-sent
    s2, f2 = connect(n.smtp_port)
    read_reply(f2)
    s2.sendall(b"EHLO slow")
    # one byte per 0.5 s: each byte is progress, the deadline is per command
    s3, f3 = connect(n.smtp_port)
    read_reply(f3)
    # stalled in the middle of DATA
    s4, f4 = connect(n.smtp_port)
    read_reply(f4)
    s4.sendall(b"EHLO c\r\n")
    read_reply(f4)
    s4.sendall(b"MAIL FROM:<a@example.net>\r\n")
    read_reply(f4)
    s4.sendall(b"RCPT TO:<bob@alpha.test>\r\n")
    assert read_reply(f4)[0] == 250
    s4.sendall(b"DATA\r\n")
    assert read_reply(f4)[0] == 354
    s4.sendall(b"Subject: stalled\r\n\r\nhalf a message")
    t0 = time.monotonic()
    for ch in b"EHLO dribble\r\n"[:5]:
        s3.sendall(bytes([ch]))
        time.sleep(0.5)
    for s in (s1, s2, s3, s4):
        last = closed_within(s, 6)
        assert b"421 4.4.2" in last, last
    assert time.monotonic() - t0 < 8
    n.wait_log(r'msg="smtp: timeout"', count=4)
    # nothing of the stalled message was stored
    assert bob.run("inbox").stdout.strip() == b""


def test_s13_session_duration_is_capped(base):
    b, n, bob = start(base, smtp_session_max="3s")
    s, f = connect(n.smtp_port)
    read_reply(f)
    t0 = time.monotonic()
    # busy all the time, never idle: NOOP every 0.5 s
    last = b""
    while time.monotonic() - t0 < 8:
        try:
            s.sendall(b"NOOP\r\n")
        except OSError:
            break
        code, text = read_reply(f)
        if code != 250:
            last = text
            break
        time.sleep(0.5)
    assert last.startswith(b"421 4.4.2"), last
    assert 2.5 < time.monotonic() - t0 < 6


# ------------------------------------------------------------------ S15

def test_s15_per_ip_connection_limit_and_others_are_served(base):
    b, n, bob = start(base, smtp_max_connections_per_ip=5)
    held = []
    for _ in range(5):
        s, f = connect(n.smtp_port)
        assert read_reply(f)[0] == 220
        held.append(s)
    s, f = connect(n.smtp_port)
    code, text = read_reply(f)
    assert (code, text[4:9]) == (421, b"4.7.0")
    closed_within(s, 5)
    # another address (127.0.0.2 is loopback too) is served
    s2, f2 = connect(n.smtp_port, source="127.0.0.2")
    assert read_reply(f2)[0] == 220
    s2.close()
    # a freed slot is usable again
    held.pop().close()
    time.sleep(0.3)
    s3, f3 = connect(n.smtp_port)
    assert read_reply(f3)[0] == 220
    for x in held + [s3]:
        x.close()


def test_s15_connection_and_message_rates(base):
    b, n, bob = start(base, smtp_connection_rate_per_ip=10, smtp_message_rate_per_ip=3,
                      smtp_recipient_rate_per_ip=5)
    codes = []
    for _ in range(14):
        s, f = connect(n.smtp_port)
        codes.append(read_reply(f)[0])
        s.close()
    assert codes[:10] == [220] * 10 and 421 in codes[10:]
    s, f = connect(n.smtp_port, source="127.0.0.3")
    assert read_reply(f)[0] == 220
    s.close()
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20,
                      source_address=("127.0.0.4", 0)) as c:
        c.ehlo("c.example")
        got = []
        for i in range(5):
            got.append(c.docmd("MAIL FROM:<a@example.net>")[0])
            c.rset()
        assert got[:3] == [250, 250, 250] and got[3:] == [450, 450]
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20,
                      source_address=("127.0.0.5", 0)) as c:
        c.ehlo("c.example")
        c.mail("a@example.net")
        codes = [c.rcpt("bob@alpha.test")[0] for _ in range(7)]
        assert codes == [250] * 5 + [450] * 2


def test_s15_descriptor_exhaustion_recovers_without_spinning(base):
    """The daemon runs with 64 descriptors; 150 clients connect.  The
    excess ones are dropped, the daemon does not spin on accept(), and
    once the clients leave it serves again."""
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             transports="tls", max_connections=40)
    nodes.append(n)
    n.start(wrapper=("prlimit", "--nofile=64:64", "--"))
    port = int(n.conf["smtp_port"])
    socks = []
    for _ in range(150):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            pass
    time.sleep(1.0)
    with open(f"/proc/{n.proc.pid}/stat") as fh:
        f = fh.read().split()
    cpu0 = int(f[13]) + int(f[14])
    time.sleep(2.0)
    with open(f"/proc/{n.proc.pid}/stat") as fh:
        f = fh.read().split()
    cpu1 = int(f[13]) + int(f[14])
    ticks = os.sysconf("SC_CLK_TCK")
    assert (cpu1 - cpu0) / ticks < 0.5, "the daemon spins while out of descriptors"
    for s in socks:
        s.close()
    time.sleep(1.0)
    s, fr = connect(port)
    assert read_reply(fr)[0] == 220
    s.close()
    assert n.proc.poll() is None


# ------------------------------------------------------------- S12 / S17

def send_raw_message(port, body: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.net")[0] == 250
        assert s.rcpt("bob@alpha.test")[0] == 250
        code, text = s.data(body)
        # the session stays usable
        assert s.noop()[0] == 250
        return code, text


def test_s12_header_bombs_are_refused_and_bounded(base):
    b, n, bob = start(base)
    pid = n.proc.pid
    code, text = send_raw_message(
        n.smtp_port, b"".join(b"To: a%d@example.net\r\n" % i for i in range(100000))
        + b"\r\nbody\r\n")
    assert (code, text[:5]) == (552, b"5.3.4")
    code, text = send_raw_message(
        n.smtp_port, b"X-Big: " + b"a" * 200 + b"\r\n" + (b" " + b"b" * 900 + b"\r\n") * 11000
        + b"\r\nbody\r\n")
    assert (code, text[:5]) == (552, b"5.3.4")
    # deep MIME nesting and a NUL in a header name are opaque content
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(2000))
    code, _ = send_raw_message(n.smtp_port, b"Subject: deep\r\nX-N\x00ul: v\r\n" + deep)
    assert code == 250
    with open(f"/proc/{pid}/status") as fh:
        rss = int(next(l for l in fh if l.startswith("VmRSS")).split()[1])
    assert rss < 400 * 1024, f"{rss} KB resident after the header bombs"
    assert bob.run("inbox").stdout.count(b"\n") == 1


def test_s17_hop_count_limit(base):
    b, n, bob = start(base)
    hops = lambda k: b"".join(b"Received: from h%d by h%d; Sun, 22 Nov 2026 10:00:00 +0000\r\n"
                              % (i, i + 1) for i in range(k))
    code, text = send_raw_message(n.smtp_port, hops(51) + b"Subject: loop\r\n\r\nx\r\n")
    assert (code, text[:5]) == (554, b"5.4.6")
    code, _ = send_raw_message(n.smtp_port, hops(50) + b"Subject: fine\r\n\r\nx\r\n")
    assert code == 250           # 50 is the limit (smtp_hopcount_limit)
    out = bob.run("fetch", "--wait", "10").stdout
    assert b"Subject: fine" in out and b"Subject: loop" not in out


# ------------------------------------------------------------- S19 / S20

def test_s19_no_auth_on_the_mx_port(base):
    b, n, bob = start(base)
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=20) as s:
        s.ehlo("c.example")
        assert not s.has_extn("auth")
        code, _ = s.docmd("AUTH", "PLAIN " + "A" * 8000)
        assert code in (500, 502, 503)
        assert s.noop()[0] in (250, 421)


def test_s20_forged_authentication_results_are_removed(base):
    b, n, bob = start(base)
    msg = (b"Authentication-Results: alpha.test; dkim=pass header.d=bank.example\r\n"
           b"Authentication-Results: ALPHA.TEST 1;\r\n spf=pass smtp.mailfrom=bank.example\r\n"
           b"Authentication-Results: mx.other.example; dkim=fail\r\n"
           b"From: ceo@bank.example\r\nSubject: forged\r\n\r\npay now\r\n")
    code, _ = send_raw_message(n.smtp_port, msg)
    assert code == 250
    out = bob.run("fetch", "--wait", "10").stdout
    assert b"header.d=bank.example" not in out and b"smtp.mailfrom=bank.example" not in out
    assert b"Authentication-Results: mx.other.example; dkim=fail" in out
    assert b"pay now" in out
    n.wait_log(r'removed Authentication-Results naming us.* count=2')
    # exactly one field names us: ours, which python3-authres parses, and
    # it says what the node found (no signature), not what was forged
    import email
    import authres
    fields = email.message_from_bytes(out.split(b"\n", 1)[1]).get_all(
        "Authentication-Results")
    ours = [f for f in fields if f.strip().lower().startswith("alpha.test")]
    assert len(ours) == 1, fields
    parsed = authres.AuthenticationResultsHeader.parse(
        "Authentication-Results: " + " ".join(ours[0].split()))
    assert parsed.authserv_id == "alpha.test"
    got = {r.method: r.result for r in parsed.results}
    assert got == {"spf": "none", "dkim": "none", "arc": "none",
                   "dmarc": "none"}, got


def test_half_close_after_the_last_command_still_gets_every_answer(base):
    b, n, bob = start(base)
    s, f = connect(n.smtp_port)
    read_reply(f)
    s.sendall(b"EHLO c.example\r\n")
    read_reply(f)
    s.sendall(b"MAIL FROM:<a@example.net>\r\n")
    read_reply(f)
    s.sendall(b"RCPT TO:<bob@alpha.test>\r\n")
    read_reply(f)
    s.sendall(b"DATA\r\n")
    assert read_reply(f)[0] == 354
    s.sendall(b"Subject: half\r\n\r\nclose\r\n.\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    assert read_reply(f)[0] == 250
    assert read_reply(f)[0] == 221
    s.close()
    assert bob.run("fetch").stdout.count(b"Subject: half") == 1


def test_memory_limit_defers_instead_of_exhausting(base):
    b, n, bob = start(base, smtp_memory_limit="1m")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000
    code, text = send_raw_message(n.smtp_port, big)
    assert (code, text[:5]) == (452, b"4.3.1")
    code, _ = send_raw_message(n.smtp_port, b"Subject: small\r\n\r\nfits\r\n")
    assert code == 250
    out = bob.run("fetch").stdout
    assert b"fits" in out and b"Subject: big" not in out
