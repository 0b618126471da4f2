"""Postfix (Debian's, /usr/sbin/postfix) as a real MTA in front of the
bridge: a private instance of its own (config and queue directories in a
temporary directory, 127.0.0.1 and a free high port, only the services
it needs, chroot off, its log in a file) relays mail for alpha.test to
aftersmtpd's SMTP port through transport_maps.  A message submitted to
Postfix must reach bob's AMP inbox carrying Postfix's Received: header
and ours, and Postfix must log status=sent with our 250 text; a message
for an unknown user must bounce at Postfix with our 550 5.1.1.

Postfix's master runs as root and drops to the `postfix` user, so these
tests need root (they are skipped, with the reason, otherwise).  Postfix
is always stopped (`postfix -c DIR stop`, then its master is waited for)
even when a test fails.
"""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from nodes import Node, User, free_port, make_base, remove_base, stop_all

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
flush     unix  n       -       n       1000?   0       flush
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {dir}/etc
queue_directory = {dir}/spool
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pfx.test
mydomain = pfx.test
myorigin = pfx.test
mydestination = pfx.test
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:pfx-local
default_transport = discard:pfx-default
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains = alpha.test
transport_maps = texthash:{dir}/etc/transport
smtp_tls_security_level = none
maillog_file = {dir}/postfix.log
maillog_file_prefixes = /tmp, {dir}
syslog_name = pfx-e2e
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


class Postfix:
    def __init__(self, node_port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="amp-pfx-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        etc = self.dir / "etc"
        etc.mkdir()
        (self.dir / "spool").mkdir()
        data = self.dir / "data"
        data.mkdir()
        shutil.chown(data, "postfix", "postfix")
        (etc / "main.cf").write_text(MAIN_CF.format(dir=self.dir))
        (etc / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        (etc / "transport").write_text(f"alpha.test smtp:[127.0.0.1]:{node_port}\n")
        self.log = self.dir / "postfix.log"
        self.started = False

    def cmd(self, *args, check=True):
        p = subprocess.run([POSTFIX, "-c", str(self.dir / "etc"), *args],
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"postfix {args}: {p.returncode}\n{p.stdout}{p.stderr}\n"
                                 f"{self.log_text()[-3000:]}")
        return p

    def start(self):
        self.started = True             # (start creates the queue directories)
        self.cmd("start")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                smtplib.SMTP("127.0.0.1", self.port, timeout=2).quit()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix does not answer on {self.port}:\n{self.log_text()}")

    def master_pid(self):
        try:
            return int((self.dir / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        self.cmd("stop", check=False)
        deadline = time.monotonic() + 20
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if pid is not None:
                self.cmd("abort", check=False)
        self.started = False

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_text(), re.M)
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the postfix log:\n{self.log_text()[-4000:]}")

    def submit(self, sender, rcpts, msg: bytes) -> str:
        """Submit over SMTP; returns Postfix's queue id."""
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example.net",
                          timeout=30) as s:
            s.ehlo("client.example.net")
            s.mail(sender)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (r, code, text)
            code, text = s.data(msg)
            assert code == 250, (code, text)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        assert m, text
        return m.group(1).decode()


@pytest.fixture(scope="module")
def relay():
    """One node and one Postfix for the module (starting Postfix takes
    ~4 s); both are stopped at its end, whatever happened."""
    if not os.path.exists(POSTFIX):
        pytest.skip("postfix is not installed (scripts/bootstrap.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root (its master drops to `postfix`)")
    b = make_base()
    nodes = []
    pf = None
    try:
        port = free_port()
        n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=port)
        nodes.append(n)
        n.start()
        n.smtp_port = port
        bob = User(b, "bob", n)
        bob.register()
        pf = Postfix(port)
        pf.start()
        yield n, bob, pf
    finally:
        try:
            if pf is not None:
                pf.stop()
                shutil.rmtree(pf.dir, ignore_errors=True)
        finally:
            try:
                stop_all(nodes)
            finally:
                remove_base(b)


def test_postfix_relays_to_the_bridge(relay):
    n, bob, pf = relay
    body = (b"From: alice@pfx.test\r\nTo: bob@alpha.test\r\nSubject: via Postfix\r\n"
            b"Message-ID: <pfx-1@pfx.test>\r\n\r\nHello Bob, through a real MTA.\r\n"
            b".a line starting with a dot\r\n")
    qid = pf.submit("alice@pfx.test", ["bob@alpha.test"], body)
    m = pf.wait_log(rf"{qid}: to=<bob@alpha\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{n.smtp_port}"
                    rf".*status=sent \((250 2\.0\.0 Ok: sealed and stored as ([0-9a-f]{{32}}))\)")
    envelope = m.group(2)
    md = bob.home / "Maildir-relayed"
    bob.run("fetch", "--maildir", str(md), "--wait", "10", "--ack")
    files = list((md / "new").iterdir())
    assert [f.name.split(".")[1] for f in files] == [envelope]
    got = files[0].read_bytes()
    # ours first (the last hop: Received:, then our
    # Authentication-Results:), then Postfix's, then the message
    ours = re.match(rb"Received: from pfx\.test \(\[127\.0\.0\.1\]\)\r\n"
                    rb"\tby alpha\.test \(AfterSMTP\) with ESMTP\r\n"
                    rb"\tfor <bob@alpha\.test>; [^\r\n]+\r\n"
                    rb"(Authentication-Results: alpha\.test; [^\r\n]*\r\n"
                    rb"(?:[ \t][^\r\n]*\r\n)*)", got)
    assert ours, got[:400]
    results = b" ".join(ours.group(1).split())
    for r in (b"spf=none smtp.mailfrom=pfx.test", b"dkim=none",
              b"dmarc=none header.from=pfx.test", b"arc=none"):
        assert r in results, results
    rest = got[ours.end():]
    theirs = re.match(rb"Received: from client\.example\.net \(localhost \[127\.0\.0\.1\]\)\r\n"
                      rb"\tby pfx\.test \(Postfix\) with E?SMTP id " + qid.encode() +
                      rb"\r\n\tfor <bob@alpha\.test>; [^\r\n]+\r\n", rest)
    assert theirs, rest[:400]
    after = rest[theirs.end():]
    # Postfix may add header fields of its own (e.g. Date); the sender's
    # header fields and body arrive unchanged
    headers, _, text = after.partition(b"\r\n\r\n")
    for line in body.split(b"\r\n\r\n")[0].split(b"\r\n"):
        assert line in headers.split(b"\r\n"), line
    assert text == body.split(b"\r\n\r\n", 1)[1]
    assert re.search(rf'msg="smtp: message stored" .*peer=127\.0\.0\.1 envelope={envelope} '
                     r'recipients=1 ', n.log_text())


def test_postfix_bounces_an_unknown_user_with_our_550(relay):
    n, bob, pf = relay
    stored = n.log_text().count('msg="smtp: message stored"')
    inbox = bob.run("inbox").stdout
    qid = pf.submit("alice@pfx.test", ["nobody@alpha.test"],
                    b"Subject: to nobody\r\n\r\nno such user\r\n")
    pf.wait_log(rf"{qid}: to=<nobody@alpha\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                rf"{n.smtp_port}.*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                r"said: 550 5\.1\.1 No such user here \(in reply to RCPT TO command\)\)")
    # the non-delivery notice went back to the sender (discarded here)
    pf.wait_log(rf"{qid}: sender non-delivery notification: ")
    assert n.log_text().count('msg="smtp: message stored"') == stored
    assert bob.run("inbox").stdout == inbox
