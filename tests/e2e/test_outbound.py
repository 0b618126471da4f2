"""Outbound mail (issue 5): an AMP user writes to someone@example.net; the
node's gateway opens the envelope, rewrites it, signs it with DKIM, queues
it, finds the MX through a loopback DNS server (tests/tools/dnsserver.py)
and delivers it over SMTP to an aiosmtpd receiver on loopback.  Failures
come back to the sender's inbox as RFC 3464 DSNs (AMP mail from the node).

Independent peers: python3-aiosmtpd (the receiving MTA, scripted to answer
451 or 550 on demand), python3-dkim (dkim.verify of what arrived, with the
TXT record `amp dkim keygen` printed), Python's email package (the DSN's
structure).
"""
import email
import email.policy
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import AMP_BIN
from dnsfixture import dns_server  # noqa: F401
from nodes import free_port, smtp_node

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
dkim = pytest.importorskip("dkim")

SELECTOR = "s1"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class Receiver:
    """An aiosmtpd server on 127.0.0.1 that records every transaction and
    answers RCPT and DATA from scripts: lists of replies used in turn
    (None: accept)."""

    def __init__(self, port=None):
        self.messages = []          # (mail_from, rcpt_tos, bytes)
        self.rcpt_script = []       # replies for RCPT TO, in turn
        self.data_script = []       # replies for the end of DATA, in turn
        self.attempts = 0
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.controller = aiosmtpd_controller.Controller(
            self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            reply = self.rcpt_script.pop(0) if self.rcpt_script else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.attempts += 1
            reply = self.data_script.pop(0) if self.data_script else None
            if reply:
                return reply
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
        return "250 2.0.0 queued"

    def wait(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} messages arrived, wanted {n}")

    def stop(self):
        self.controller.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def zone(extra=""):
    return (
        "example.net. 60 IN MX 10 mx.example.net.\n"
        "mx.example.net. 60 IN A 127.0.0.1\n"
        "nomx.example.net. 60 IN A 127.0.0.1\n"
        "nullmx.example.net. 60 IN MX 0 .\n"
        "broken.example.net. SERVFAIL\n" + extra)


def dkim_key(tmp, user, alg="ed25519"):
    key = tmp / "dkim.pem"
    p = user.run("dkim", "keygen", "--domain", "alpha.test", "--selector", SELECTOR,
                 "--alg", alg, "--out", str(key))
    txt = "".join(re.findall(r'"([^"]*)"', p.stdout.decode()))
    assert txt.startswith("v=DKIM1"), p.stdout
    return key, txt.encode()


def outbound_node(base, dns, receiver, tmp_path, **conf):
    settings = {
        "dns_forwarder": dns.forwarder, "smtp_out_port": receiver.port,
        "smtp_hostname": "mx.alpha.test",
        "smtp_out_retry_min": "1s", "smtp_out_retry_max": "1s",
        "smtp_out_command_timeout": "5s", "smtp_out_connect_timeout": "3s",
    }
    settings.update(conf)
    return smtp_node(base, **settings), None


def message(to="carol@example.net", subject="Hello", sender="did:aftersmtp:alpha.test:bob"):
    return (f"From: Bob <{sender}>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: {subject}\r\n"
            "\r\n"
            "Hi Carol,\r\n.leading dot line\r\nbye\r\n").encode()


@pytest.mark.parametrize("alg", ["ed25519", "rsa"])
def test_gateway_delivers_signed_mail(base, dns_server, receiver, tmp_path, alg):  # noqa: F811
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    key, txt = dkim_key(tmp_path, u, alg)
    # keys are read at start: restart with the key configured
    n.stop()
    n.conf["dkim_keys"] = f"alpha.test:{SELECTOR}:{key}"
    n.write_conf()
    n.start()
    p = u.run("send", "carol@example.net", input=message())
    assert b"did:aftersmtp:alpha.test:gateway OK" in p.stdout, p.stdout
    (mail_from, rcpts, data), = receiver.wait(1)
    assert mail_from == "bob@alpha.test"
    assert rcpts == ["carol@example.net"]
    assert b"AMP-Egress-To" not in data
    # no DID is left in the message, except in the gateway's own
    # AMP-DID-Signature (issue 7), which names the sender's DID on purpose
    import email
    head = email.message_from_bytes(data)
    sigs = head.get_all("AMP-DID-Signature") or []
    assert len(sigs) == 1 and "d=did:aftersmtp:alpha.test:bob" in \
        "".join(sigs[0].split()), sigs
    for name, value in head.items():
        assert name == "AMP-DID-Signature" or "did:aftersmtp" not in value, name
    assert b"did:aftersmtp" not in data.split(b"\r\n\r\n", 1)[1]
    assert b"From: Bob <bob@alpha.test>" in data
    assert b"Message-ID: <" in data and b"Date: " in data
    assert b"\r\n.leading dot line\r\n" in data  # un-stuffed by the receiver
    assert data.startswith(b"DKIM-Signature:")
    assert f"a={'ed25519' if alg == 'ed25519' else 'rsa'}-sha256;".encode() in data

    def dnsfunc(name, timeout=5):
        assert name == f"{SELECTOR}._domainkey.alpha.test.".encode()
        return txt
    assert dkim.verify(data, dnsfunc=dnsfunc), "python3-dkim refused our signature"
    n.wait_log(r'msg="outbound: attempt" .*domain=example.net .*delivered=1')


def test_retry_after_451_twice(base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    receiver.data_script = ["451 4.3.0 try later", "451 4.3.0 try later again"]
    u.run("send", "carol@example.net", input=message())
    (mail_from, rcpts, data), = receiver.wait(1, timeout=40)
    assert receiver.attempts == 3
    log = n.wait_log(r'delivered=1')
    assert len(re.findall(r'msg="outbound: attempt" .*deferred=1', log)) == 2


def fetch_all(u, faketime=None):
    """Every message of u's inbox, in mbox form (under faketime's offset
    when the node runs under it: the node dates what it seals)."""
    if faketime is None:
        return u.run("fetch", "--wait", "1").stdout
    env = dict(u.env(), LD_PRELOAD=LIBFAKETIME, FAKETIME=faketime,
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    p = subprocess.run([AMP_BIN, "fetch", "--wait", "1"], env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def test_permanent_failure_returns_a_dsn(base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    receiver.rcpt_script = ["550 5.1.1 <nobody@example.net>: no such user"]
    u.run("send", "nobody@example.net", input=message(to="nobody@example.net"))
    n.wait_log(r'msg="outbound: attempt" .*bounced=1 dsn=inbox')
    out = fetch_all(u)
    msg = email.message_from_bytes(out.split(b"\n", 1)[1], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    parts = list(msg.iter_parts())
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    text = status.as_bytes()
    assert b"Action: failed" in text and b"Status: 5.1.1" in text
    assert b"Final-Recipient: rfc822; nobody@example.net" in text
    assert b"no such user" in text
    assert receiver.messages == []


def test_null_mx_and_nxdomain_bounce_at_once(base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    u.run("send", "x@nullmx.example.net", input=message(to="x@nullmx.example.net"))
    n.wait_log(r'domain=nullmx.example.net .*bounced=1')
    u.run("send", "x@nowhere.example.net", input=message(to="x@nowhere.example.net"))
    n.wait_log(r'domain=nowhere.example.net .*bounced=1')
    out = fetch_all(u)
    assert out.count(b"Action: failed") == 2
    assert b"5.1.10" in out and b"5.1.2" in out


def test_no_mx_falls_back_to_a_and_servfail_defers(base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    u.run("send", "y@nomx.example.net", input=message(to="y@nomx.example.net"))
    (_, rcpts, _), = receiver.wait(1)
    assert rcpts == ["y@nomx.example.net"]
    u.run("send", "z@broken.example.net", input=message(to="z@broken.example.net"))
    n.wait_log(r'domain=broken.example.net .*deferred=1')


def test_unreachable_mx_bounces_at_lifetime_end(base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(zone())
    closed = free_port()  # nothing listens there
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path,
                                 smtp_out_port=closed, maximal_queue_lifetime="4s")
    u.run("send", "carol@example.net", input=message())
    log = n.wait_log(r'domain=example.net .*bounced=1 dsn=inbox', timeout=30)
    assert len(re.findall(r'domain=example.net .*deferred=1', log)) >= 1
    out = fetch_all(u)
    assert b"Action: failed" in out and b"Status: 4.4.7" in out


def test_null_sender_never_gets_a_dsn(base, dns_server, receiver, tmp_path):  # noqa: F811
    """Q9: a DSN that itself fails is dropped, never bounced back."""
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path,
                                 smtp_relay_networks="127.0.0.0/8")
    receiver.rcpt_script = ["550 5.1.1 no such user"]
    s = socket.create_connection(("127.0.0.1", n.smtp_port))
    f = s.makefile("rb")
    f.readline()
    for cmd in (b"EHLO client.test", b"MAIL FROM:<>", b"RCPT TO:<bounce@example.net>",
                b"DATA"):
        s.sendall(cmd + b"\r\n")
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                break
    s.sendall(b"From: <>\r\nSubject: a bounce\r\n\r\nbody\r\n.\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"QUIT\r\n")
    s.close()
    log = n.wait_log(r'domain=example.net .*bounced=1')
    assert re.search(r'domain=example.net .*bounced=1 dsn=none', log)


def smtp_send(port, mail_from, rcpts, data):
    """One transaction with Python's smtplib; returns the DATA reply."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, local_hostname="app.alpha.test") as s:
        return s.sendmail(mail_from, rcpts, data)


def test_relay_networks_mail_is_signed_on_the_way_out(base, dns_server, receiver, tmp_path):  # noqa: F811
    """Mail from smtp_relay_networks (an app server) without a signature is
    DKIM-signed for its From domain; an alias of ours that points
    elsewhere is forwarded through the queue too."""
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path,
                                 smtp_relay_networks="127.0.0.0/8")
    key, txt = dkim_key(tmp_path, u)
    aliases = n.dir / "virtual"  # readable by the node's user
    aliases.write_text("fwd@alpha.test carol@example.net\n")
    n.stop()
    n.conf["dkim_keys"] = f"alpha.test:{SELECTOR}:{key}"
    n.conf["virtual_alias_maps"] = str(aliases)
    n.write_conf()
    n.start()
    body = (b"From: App <app@alpha.test>\r\nTo: dave@example.net\r\n"
            b"Subject: invoice\r\nPrecedence: bulk\r\n\r\nYour invoice.\r\n")
    assert smtp_send(n.smtp_port, "app@alpha.test", ["dave@example.net"], body) == {}
    assert smtp_send(n.smtp_port, "app@alpha.test", ["fwd@alpha.test"], body) == {}
    got = receiver.wait(2)
    by_rcpt = {tuple(r): d for _, r, d in got}
    signed = by_rcpt[("dave@example.net",)]
    assert signed.startswith(b"DKIM-Signature:")

    def dnsfunc(name, timeout=5):
        return txt
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert ("carol@example.net",) in by_rcpt
    log = n.log_text()
    assert re.search(r'msg="smtp: message stored" .*queued=1 dkim=signed', log)


def test_amp_queue_commands(base, dns_server, tmp_path):  # noqa: F811
    """amp queue against a running node: a message for a host that is
    down waits as deferred (long retry); hold keeps it, release and
    flush make it due, and once the receiver is up flush delivers it at
    once; delete removes another one without a DSN."""
    dns = dns_server(zone())
    port = free_port()
    b, n, u = smtp_node(base, dns_forwarder=dns.forwarder, smtp_out_port=port,
                        smtp_hostname="mx.alpha.test", smtp_out_retry_min="1h",
                        smtp_out_retry_max="1h", smtp_out_connect_timeout="2s")

    def q(*args):
        p = u.run("queue", *args, "--config", str(n.conf_path))
        return p.stdout.decode()

    u.run("send", "carol@example.net", input=message(subject="keep"))
    u.run("send", "dave@nomx.example.net", input=message(to="dave@nomx.example.net",
                                                          subject="drop"))
    n.wait_log(r'domain=example.net .*deferred=1')
    n.wait_log(r'domain=nomx.example.net .*deferred=1')
    listing = q("list")
    rows = [l for l in listing.splitlines() if re.match(r"[0-9a-f]{16} ", l)]
    assert len(rows) == 2, listing
    ids = {l.split()[5]: l.split()[0] for l in rows}
    assert all(" deferred " in l and "bob@alpha.test" in l for l in rows), listing
    shown = q("show", ids["example.net"])
    assert "carol@example.net" in shown and "Subject: keep" in shown
    assert "Hi Carol" not in shown  # the header section only, never the body
    q("hold", ids["example.net"])
    assert " hold " in q("list", "--state", "hold")
    q("delete", ids["nomx.example.net"])
    assert ids["nomx.example.net"] not in q("list")
    q("release", ids["example.net"])     # due now: tried, still down
    n.wait_log(r'domain=example.net .*attempt=2 .*deferred=1')
    r = Receiver(port)                   # the MX comes up
    try:
        q("flush")                       # no waiting for the 1 h retry
        (_, rcpts, _), = r.wait(1, timeout=20)
        assert rcpts == ["carol@example.net"]
    finally:
        r.stop()
    stats = q("stats")
    assert "normal" in stats
    assert "# 0 entries" in q("list") or not re.search(r"^[0-9a-f]{16} ", q("list"), re.M)
    out = fetch_all(u)
    assert b"Action: failed" not in out  # delete sends no DSN


def test_destination_rate_limit(base, dns_server, receiver, tmp_path):  # noqa: F811
    """smtp_out_dest_rate = 120: attempts to one domain start at least
    0.5 s apart, however many are queued."""
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path, smtp_out_dest_rate=120,
                                 smtp_relay_networks="127.0.0.0/8")
    times = []
    orig = receiver.handle_DATA

    async def stamped(server, session, envelope):
        times.append(time.monotonic())
        return await orig(server, session, envelope)
    receiver.handle_DATA = stamped
    import smtplib
    with smtplib.SMTP("127.0.0.1", n.smtp_port, local_hostname="app.test") as s:
        for i in range(4):  # queued within milliseconds of each other
            s.sendmail("app@alpha.test", ["carol@example.net"],
                       f"From: app@alpha.test\r\nSubject: r{i}\r\n\r\nx\r\n")
    receiver.wait(4, timeout=30)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.4, gaps


def test_delay_warning_then_expiry_after_a_clock_jump(base, dns_server, receiver, tmp_path):  # noqa: F811
    """Q7: a message for a host that is down gets one delay warning
    (delay_warning_time) and keeps waiting; the node is restarted under
    faketime six days later: the message is past maximal_queue_lifetime
    (5 days), is tried once more and returned with status 4.4.7."""
    dns = dns_server(zone())
    closed = free_port()
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path, smtp_out_port=closed,
                                 delay_warning_time="2s", smtp_out_retry_min="1s",
                                 smtp_out_retry_max="1s")
    u.run("send", "carol@example.net", input=message())
    n.wait_log(r'domain=example.net .*deferred=1 bounced=0 dsn=inbox', timeout=30)
    out = fetch_all(u)
    assert b"Action: delayed" in out and b"Will-Retry-Until:" in out
    assert out.count(b"Action: delayed") == 1
    n.stop()
    n.conf["smtp_out_retry_min"] = n.conf["smtp_out_retry_max"] = "1h"
    n.write_conf()
    # libfaketime preloaded through env(1), which execs: the pid stays the
    # daemon's (an ASan build must not insist on coming first)
    n.start(wrapper=("env", f"LD_PRELOAD={LIBFAKETIME}", "FAKETIME=+6d",
                     "FAKETIME_DONT_FAKE_MONOTONIC=1",
                     "ASAN_OPTIONS=" + os.environ.get("ASAN_OPTIONS", "") +
                     ":verify_asan_link_order=0"))
    n.wait_log(r'domain=example.net .*bounced=1 dsn=inbox', timeout=30)
    out = fetch_all(u, faketime="+6d")
    assert b"Action: failed" in out and b"Status: 4.4.7" in out


def test_canonical_maps_give_the_sender_address(base, dns_server, receiver, tmp_path):  # noqa: F811
    """A canonical_maps entry naming bob's DID is his address outbound:
    From and MAIL FROM become helpdesk@alpha.test."""
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path)
    cmap = n.dir / "canonical"
    cmap.write_text("helpdesk@alpha.test did:aftersmtp:alpha.test:bob\n")
    n.stop()
    n.conf["canonical_maps"] = str(cmap)
    n.write_conf()
    n.start()
    u.run("send", "carol@example.net", input=message())
    (mail_from, _, data), = receiver.wait(1)
    assert mail_from == "helpdesk@alpha.test"
    assert b"From: Bob <helpdesk@alpha.test>" in data
    # the user may write the mapped address too, but not someone else's
    u.run("send", "carol@example.net",
          input=message(sender="helpdesk@alpha.test", subject="as mapped"))
    receiver.wait(2)
    p = u.run("send", "carol@example.net", input=message(sender="alice@alpha.test"),
              check=False)
    assert p.returncode == 1 and b"gateway BAD_REQUEST" in p.stdout


def test_lanes_by_configured_sender(base, dns_server, receiver, tmp_path):  # noqa: F811
    """smtp_out_critical_senders / smtp_out_bulk_senders decide the lane
    before headers: an urgent-looking newsletter is still bulk, a plain
    alert is critical (seen in `amp queue list` while the MX is down)."""
    dns = dns_server(zone())
    (b, n, u), _ = outbound_node(base, dns, receiver, tmp_path, smtp_out_port=free_port(),
                                 smtp_relay_networks="127.0.0.0/8",
                                 smtp_out_retry_min="1h", smtp_out_retry_max="1h",
                                 smtp_out_critical_senders="alert@alpha.test",
                                 smtp_out_bulk_senders="@news.alpha.test")
    import smtplib
    with smtplib.SMTP("127.0.0.1", n.smtp_port, local_hostname="app.test") as s:
        s.sendmail("alert@alpha.test", ["a@example.net"],
                   "From: alert@alpha.test\r\nSubject: a\r\n\r\nx\r\n")
        s.sendmail("weekly@news.alpha.test", ["b@nomx.example.net"],
                   "From: weekly@news.alpha.test\r\nPriority: urgent\r\n"
                   "Subject: b\r\n\r\nx\r\n")
    n.wait_log(r'domain=example.net .*deferred=1')
    n.wait_log(r'domain=nomx.example.net .*deferred=1')
    listing = u.run("queue", "list", "--config", str(n.conf_path)).stdout.decode()
    lanes = {l.split()[5]: l.split()[1] for l in listing.splitlines()
             if re.match(r"[0-9a-f]{16} ", l)}
    assert lanes == {"example.net": "critical", "nomx.example.net": "bulk"}, listing
