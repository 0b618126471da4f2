"""A private Dovecot IMAP server (Debian's dovecot-imapd 2.3) for the
bridge's tests and benchmark (issue 6, TESTING.md I1-I12): the oracle
our IMAP answers are compared with, on the same mailbox and the same
command scripts.

    from dovecotfixture import Dovecot, imap_script, normalize

    d = Dovecot({"alice": "secret"})   # starts it; AssertionError if not
    d.deliver("alice", msg_bytes)        # into the Maildir INBOX (new/)
    lines = imap_script(d.port, "alice", "secret", ["a SELECT INBOX", ...])
    d.stop()                             # a test must call it

The configuration is /work/shared/oracles/dovecot-oracle.conf's, written
into a fresh temporary directory (base_dir, state, log, users, mail) with
a free port on 127.0.0.1; plaintext LOGIN and PLAIN, no TLS, Maildir.
When run as root, mail is owned by nobody (Dovecot refuses root).
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from nodes import free_port

DOVECOT = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")

CONF = """protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/run/state
instance_name = dovecot-test-{port}
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
mail_uid = {user}
mail_gid = {group}
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    def __init__(self, users: dict, timeout=20.0):
        if DOVECOT is None:
            raise AssertionError("dovecot is not installed (scripts/bootstrap.sh: dovecot-imapd)")
        self.dir = Path(tempfile.mkdtemp(prefix="amp-dovecot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        root = os.geteuid() == 0
        self.owner = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.geteuid())
        user, group = (("nobody", "nogroup") if root
                       else (self.owner.pw_name, self.owner.pw_name))
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(CONF.format(d=self.dir, port=self.port, user=user, group=group))
        (self.dir / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users.items()))
        for u in users:
            for sub in ("cur", "new", "tmp"):
                (self.dir / "mail" / u / sub).mkdir(parents=True)
        self._chown()
        self.proc = subprocess.Popen([DOVECOT, "-c", str(self.conf), "-F"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"dovecot exited: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)
        self.stop()
        raise AssertionError("dovecot did not start listening")

    def _chown(self):
        if os.geteuid() == 0:
            for p in [self.dir / "mail", *(self.dir / "mail").rglob("*")]:
                os.chown(p, self.owner.pw_uid, self.owner.pw_gid)

    def maildir(self, user) -> Path:
        # mail_location = maildir:DIR/mail/%u with home = DIR/mail/%u:
        # Dovecot uses ~/Maildir when the location is the home itself
        # only for "maildir:~/Maildir"; here it is the path given.
        return self.dir / "mail" / user

    def deliver(self, user, msg: bytes, name=None, flags=""):
        """Put one message into user's INBOX (cur/ with flags, as an
        already-seen Maildir file, so the UIDs follow the file order)."""
        md = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        self._n = getattr(self, "_n", 0) + 1
        name = name or f"{1700000000 + self._n}.M{self._n}P1.test"
        p = md / "cur" / f"{name}:2,{flags}"
        p.write_bytes(msg)
        os.utime(p, (1700000000 + self._n, 1700000000 + self._n))
        if os.geteuid() == 0:
            for q in (md, md / "cur", md / "new", md / "tmp", p):
                os.chown(q, self.owner.pw_uid, self.owner.pw_gid)
        return p

    def stop(self):
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            subprocess.run([DOVECOT, "-c", str(self.conf), "stop"],
                           capture_output=True, timeout=20)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def imap_script(port, user, password, commands, timeout=20.0):
    """Log in with LOGIN, run the commands (each "TAG CMD ..."; a literal
    "{n}" at a line's end is followed by its data in the next item), and
    return every line the server sent after the login, as bytes with the
    CRLF removed, literals inline.  The connection is closed after the
    last tagged answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = s.makefile("rb")
    out = []

    def read_answer(tag):
        while True:
            line = f.readline()
            if not line:
                raise AssertionError(f"server closed; got {out[-5:]}")
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            while m:
                line += f.read(int(m.group(1)))
                more = f.readline()
                line += more
                m = re.search(rb"\{(\d+)\}\r\n$", more)
            out.append(line.rstrip(b"\r\n"))
            if tag is not None and line.startswith(tag + b" "):
                return
            if tag is None:
                return

    read_answer(None)                     # greeting
    s.sendall(f"l LOGIN {user} {password}\r\n".encode())
    read_answer(b"l")
    out.clear()
    for c in commands:
        c = c.encode() if isinstance(c, str) else c
        s.sendall(c + b"\r\n")
        read_answer(c.split(b" ", 1)[0])
    s.close()
    return out


# What differs between two correct servers and is not a behaviour:
# timings, UIDVALIDITY values, capability lists, server names; and
# \Recent, which the bridge does not keep (RFC 9051 dropped it;
# docs/amp-bridge.md): Dovecot's RECENT counts and \Recent flags.
_NORMALIZE = [
    (rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.", b"."),
    (rb"\[UIDVALIDITY \d+\]", b"[UIDVALIDITY N]"),
    (rb"UIDVALIDITY \d+", b"UIDVALIDITY N"),
    (rb"\[APPENDUID \d+ ", b"[APPENDUID N "),
    (rb"\[COPYUID \d+ ", b"[COPYUID N "),
    (rb"\[CAPABILITY [^\]]*\]", b"[CAPABILITY ...]"),
    (rb"^\* CAPABILITY .*", b"* CAPABILITY ..."),
    (rb"^\* \d+ RECENT$", b"* N RECENT"),
    (rb"RECENT \d+", b"RECENT N"),
    (rb" \\Recent\)", b")"),
    (rb"\(\\Recent\)", b"()"),
    (rb"\(\\Recent ", b"("),
    (rb" \\Recent ", b" "),
]


def normalize(lines):
    out = []
    for line in lines:
        for pat, rep in _NORMALIZE:
            line = re.sub(pat, rep, line)
        out.append(line)
    return out
