"""`amp bridge run` for end-to-end tests and benchmarks (issue 6).

    from bridgefixture import Bridge, two_users, wait_messages, fetch_body

    br = Bridge(user)          # started on free ports; br.imap_port, br.smtp_port
    m = br.imap()              # an imaplib.IMAP4 to it
    br.stop()                  # SIGTERM; fails on a sanitizer report or exit != 0
"""
import imaplib
import re
import select
import signal
import subprocess
import time

from nodes import AMP_BIN, SANITIZER_MARKS, User


class Bridge:
    """`amp bridge run` of one user, on free ports; stopped by the test."""

    def __init__(self, user: User, *args):
        self.user = user
        self.log = user.home / "bridge.log"
        self.logf = self.log.open("ab")
        self.proc = subprocess.Popen(
            [AMP_BIN, "bridge", "run", "--imap-port", "0", "--smtp-port", "0",
             "--poll-wait", "5", *args],
            env=user.env(), stdout=subprocess.PIPE, stderr=self.logf)
        line = self._ready_line(30)
        m = re.fullmatch(rb"bridge ready imap=127\.0\.0\.1:(\d+) smtp=127\.0\.0\.1:(\d+)\n",
                         line)
        assert m, f"no ready line: {line!r}\n{self.log_text()}"
        self.imap_port, self.smtp_port = int(m.group(1)), int(m.group(2))

    def _ready_line(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n") and time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                ch = self.proc.stdout.read1(1)
                if not ch:
                    break
                buf += ch
            elif self.proc.poll() is not None:
                break
        return buf

    def log_text(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern, timeout=20, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log_text())) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the bridge log:\n{self.log_text()[-3000:]}")

    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the bridge did not stop on SIGTERM")
        finally:
            self.proc.stdout.close()
            self.logf.close()
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, text[text.index(mark) - 200:][:3000]
        assert rc == 0, f"bridge exited {rc}:\n{text[-3000:]}"
        assert 'msg="bridge stopped"' in text


def two_users(alpha, before_password=None):
    """alice and bob registered at alpha, bob with a fresh bridge
    password (before_password(alice, bob) runs first)."""
    b, node = alpha
    alice, bob = User(b, "alice", node), User(b, "bob", node)
    alice.register()
    bob.register()
    if before_password is not None:
        before_password(alice, bob)
    pw = bob.run("bridge", "password").stdout.decode().strip()
    assert re.fullmatch(r"[a-z2-9]{5}(-[a-z2-9]{5}){3}", pw)
    mode = (bob.home / "bridge" / "password").stat().st_mode & 0o777
    assert mode == 0o600
    return alice, bob, pw


def wait_messages(br, user, pw, mailbox, n, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        m = br.imap()
        m.login(user, pw)
        typ, data = m.select(mailbox, readonly=True)
        assert typ == "OK", data
        if int(data[0]) >= n or time.monotonic() > deadline:
            return m, int(data[0])
        m.logout()
        time.sleep(0.3)


def fetch_body(m, seq):
    typ, data = m.fetch(str(seq), "(BODY.PEEK[])")
    assert typ == "OK", data
    return data[0][1]
