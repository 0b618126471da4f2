"""Real mail clients against `amp bridge run` (issue 6, TESTING.md I12).

* isync/mbsync 1.4 syncs every folder of the bridge to a local Maildir:
  ~30 messages of mixed kinds (corpus ham and spam through the node's
  SMTP ingress, AMP mail from another user: RFC 5322 with 8-bit text,
  MIME with an attachment, a long line, text/plain that the bridge
  wraps, a large message; one DMARC-quarantined message in Junk; one
  submission in Sent).  Every local file is byte for byte what the
  bridge serves (BODY.PEEK[]) and what was sent (after the node's trace
  fields, nodes.split_trace).  Then I12: flags set and a message deleted
  locally reach the bridge (FETCH FLAGS, the message expunged), flags
  changed on the bridge with imaplib reach the local file names, and a
  sync with nothing to do changes nothing.
* mutt in batch mode sends through the bridge's submission port one
  message to an AMP user of another node (routed both ways; sealed end
  to end: that node's files never hold the text) and to a legacy address
  behind alpha's gateway (aiosmtpd; From is the sender's address, DKIM
  signed by the node and verified with python3-dkim).
* mutt's IMAP client, on a pseudo-terminal and driven by `push`, pipes a
  message raw, flags it, deletes another and syncs: the bridge shows the
  flag and the expunge.
"""
import email
import email.policy
import os
import pty
import re
import select
import shutil
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from bridgefixture import Bridge, fetch_body, wait_messages
from dnsfixture import dns_server  # noqa: F401
from nodes import Node, User, free_port, split_trace
from test_outbound import SELECTOR, Receiver, dkim_key, zone
from test_smtp_corpus import Item, load_corpus

dkim = pytest.importorskip("dkim")
MBSYNC = shutil.which("mbsync")
MUTT = shutil.which("mutt")

# quar.example.org fails DMARC (SPF -all, no DKIM) and asks for quarantine
ZONE = zone('quar.example.org. 60 IN TXT "v=spf1 -all"\n'
            '_dmarc.quar.example.org. 60 IN TXT "v=DMARC1; p=quarantine"\n')


def imap_all(br, user, pw):
    """{mailbox: [(uid, flags, bytes)]} of every mailbox the bridge has."""
    m = br.imap()
    m.login(user, pw)
    typ, data = m.list()
    assert typ == "OK", data
    out = {}
    for line in data:
        name = re.search(rb' "?([^" ]+)"?$', line).group(1).decode()
        typ, sel = m.select(f'"{name}"', readonly=True)
        assert typ == "OK", (name, sel)
        msgs = []
        if int(sel[0]):
            typ, resp = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert typ == "OK", resp
            for item in resp:
                if isinstance(item, tuple):
                    uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                    flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
                    msgs.append((uid, sorted(flags), item[1]))
        out[name] = msgs
    m.logout()
    return out


def maildir(root: Path):
    """{folder: {file name: bytes}} of an mbsync Maildir tree (cur and new)."""
    out = {}
    for d in sorted(root.rglob("cur")):
        folder = str(d.parent.relative_to(root))
        files = {}
        for sub in ("cur", "new"):
            for p in sorted((d.parent / sub).iterdir()):
                files[f"{sub}/{p.name}"] = p.read_bytes()
        out[folder] = files
    return out


def as_mbsync_stores(served: bytes) -> bytes:
    """mbsync writes Maildir files with LF line ends and one X-TUID field
    (its transaction id) added at the end of the header."""
    return served.replace(b"\r\n", b"\n")


def without_tuid(local: bytes) -> bytes:
    head, sep, body = local.partition(b"\n\n")
    lines = head.split(b"\n")
    tuid = [x for x in lines if x.startswith(b"X-TUID: ")]
    assert len(tuid) == 1 and re.fullmatch(rb"X-TUID: [A-Za-z0-9+/]{12}", tuid[0]), head[-300:]
    lines.remove(tuid[0])
    return b"\n".join(lines) + sep + body


def maildir_flags(name: str) -> str:
    return name.rpartition(":2,")[2] if ":2," in name else ""


def mbsync(rc: Path, home: Path, tls=False):
    p = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, timeout=300,
                       env={"HOME": str(home), "PATH": os.environ["PATH"]})
    assert p.returncode == 0, (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    # no client-side complaint of any kind (I12) but the one SSLType None
    # asks for
    err = p.stderr
    if not tls:
        err = err.replace(b"*** IMAP Warning *** Password is being sent in the clear\n", b"")
    assert err == b"", p.stderr[-3000:]
    return p


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def smtp_send(port, mail_from, rcpt, text, eightbit):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        return s.sendmail(mail_from, [rcpt], text,
                          mail_options=["BODY=8BITMIME"] if eightbit else [])


@pytest.mark.skipif(MBSYNC is None, reason="isync (mbsync) is not installed")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_mbsync_full_sync_flags_expunge_resync(base, dns_server, tmp_path, tls):  # noqa: F811
    dns = dns_server(ZONE)
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             dns_forwarder=dns.forwarder)
    nodes.append(n)
    n.start()
    port = int(n.conf["smtp_port"])
    alice, bob = User(b, "alice", n), User(b, "bob", n)
    alice.register()
    bob.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    user = "bob@alpha.test"

    # corpus mail through the node's SMTP ingress: the first 12 ham and
    # 12 spam files the node takes (a few fail DMARC under the default
    # policy and are refused: skipped, counted)
    msgs = load_corpus()
    smtp_expected = []
    for kind in ("ham", "spam"):
        taken = 0
        for path in (p for p in msgs if p.parent.name == kind):
            it = Item(path.name, path.read_bytes())
            if it.bare_cr or it.nul:
                continue
            try:
                smtp_send(port, "corpus@example.net", user, it.text, it.eightbit)
            except smtplib.SMTPDataError:
                continue
            smtp_expected.append(it.expected)
            taken += 1
            if taken == 12:
                break
        assert taken == 12, kind
    # one DMARC failure under p=quarantine: Junk
    junk = (b"From: a@quar.example.org\r\nTo: bob@alpha.test\r\nSubject: dubious\r\n"
            b"Message-ID: <dubious@quar.example.org>\r\n\r\nquarantine me\r\n")
    smtp_send(port, "a@quar.example.org", user, junk, False)

    # AMP mail from alice of several kinds
    amp_msgs = [
        b"From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: utf-8\r\n"
        b"Message-ID: <a1@alpha.test>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe \xe2\x9c\x93\r\n.dot\r\n",
        b"From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: attachment\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=\"x.bin\"\r\n\r\n"
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n--b1--\r\n",
        b"Subject: long line\r\n\r\n" + b"x" * 5000 + b"\r\n",
        b"Subject: big\r\n\r\n" + b"".join(b"%06d " % i + b"y" * 70 + b"\r\n"
                                          for i in range(20000)),
        b"From: alice@alpha.test\r\nSubject: no final line end\r\n\r\nlast",
    ]
    wrapped_text = b"just a plain line\nand another\n"
    for msg in amp_msgs:
        alice.run("send", bob.did, input=msg)
    alice.run("send", bob.did, input=wrapped_text)

    br = Bridge(bob)
    try:
        # a submission: its copy in Sent
        sent = (b"From: bob@alpha.test\r\nTo: alice@alpha.test\r\nSubject: sent by bob\r\n"
                b"Message-ID: <s1@alpha.test>\r\n\r\nkept in Sent\r\n")
        with smtplib.SMTP("127.0.0.1", br.smtp_port, timeout=60) as s:
            s.login(user, pw)
            s.sendmail(user, ["alice@alpha.test"], sent)
        total_inbox = len(smtp_expected) + len(amp_msgs) + 1
        m, k = wait_messages(br, user, pw, "INBOX", total_inbox, timeout=120)
        assert k == total_inbox
        m.logout()
        m, k = wait_messages(br, user, pw, "Junk", 1)
        assert k == 1
        m.logout()
        m, k = wait_messages(br, user, pw, "Sent", 1)
        assert k == 1
        m.logout()

        served = imap_all(br, user, pw)
        assert sorted(served) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash",
                                  "Unverified"], sorted(served)

        # what the bridge serves is what was sent
        inbox = [body for _, _, body in served["INBOX"]]
        want_smtp = sorted(smtp_expected)
        got_smtp = sorted(split_trace(x)[2] for x in inbox if x.startswith(b"Received: "))
        assert got_smtp == want_smtp
        got_amp = [x for x in inbox if not x.startswith(b"Received: ")]
        wrapped = [x for x in got_amp if x not in amp_msgs]
        assert sorted(x for x in got_amp if x in amp_msgs) == sorted(amp_msgs)
        assert len(wrapped) == 1
        assert wrapped[0].endswith(b"\r\n\r\n" + wrapped_text.replace(b"\n", b"\r\n"))
        (_, _, junk_got), = served["Junk"]
        assert split_trace(junk_got)[2] == junk
        (_, sent_flags, sent_got), = served["Sent"]
        assert sent_got == sent and "\\Seen" in sent_flags

        # 1. full sync
        md = tmp_path / "Mail"
        rc = tmp_path / "mbsyncrc"
        # STARTTLS: the bridge's own certificate (for "localhost"; mbsync
        # takes a certificate of CertificateFile as it is, whatever its name)
        tls_conf = (f"SSLType STARTTLS\nCertificateFile {bob.home}/bridge/tls.pem" if tls
                    else "SSLType None")
        rc.write_text(f"""IMAPAccount bridge
Host 127.0.0.1
Port {br.imap_port}
User {user}
Pass {pw}
{tls_conf}
AuthMechs LOGIN
Timeout 120

IMAPStore bridge-far
Account bridge

MaildirStore local
Path {md}/
Inbox {md}/INBOX
SubFolders Verbatim

Channel bridge
Far :bridge-far:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
        md.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        mbsync(rc, home, tls)
        local = maildir(md)
        assert sorted(local) == sorted(served)
        for box, msgs_ in served.items():
            assert sorted(without_tuid(x) for x in local[box].values()) == \
                sorted(as_mbsync_stores(body) for _, _, body in msgs_), box
        # \Seen of the Sent copy came along
        (name,), = [list(local["Sent"])]
        assert maildir_flags(name) == "S"

        # 2. local changes: Seen on three, Flagged on two of them, one
        # deleted
        inbox_dir = md / "INBOX"
        names = sorted(local["INBOX"])
        seen_n, flag_n, del_n = names[0:3], names[0:2], names[5]
        for nm in seen_n:
            new = "S" if nm not in flag_n else "FS"
            src = inbox_dir / nm
            base_name = src.name.split(":2,")[0]
            src.rename(inbox_dir / "cur" / f"{base_name}:2,{new}")
        deleted_body = without_tuid(local["INBOX"][del_n])
        (inbox_dir / del_n).unlink()
        mbsync(rc, home, tls)
        after = imap_all(br, user, pw)
        by_body = {as_mbsync_stores(body): flags for _, flags, body in after["INBOX"]}
        assert len(after["INBOX"]) == total_inbox - 1
        assert deleted_body not in by_body
        for nm in names:
            if nm == del_n:
                continue
            want = (["\\Flagged", "\\Seen"] if nm in flag_n else
                    ["\\Seen"] if nm in seen_n else [])
            assert by_body[without_tuid(local["INBOX"][nm])] == want, nm

        # 3. changes on the bridge: \Answered on one, \Seen off another,
        # \Flagged on a third
        body_of = {uid: as_mbsync_stores(body) for uid, _, body in after["INBOX"]}
        uids = sorted(body_of)
        flagged_uid = [u for u, f, _ in after["INBOX"] if "\\Flagged" in f][0]
        plain_uids = [u for u, f, _ in after["INBOX"] if not f]
        m = br.imap()
        m.login(user, pw)
        m.select("INBOX")
        assert m.uid("STORE", str(flagged_uid), "-FLAGS", "(\\Seen)")[0] == "OK"
        assert m.uid("STORE", str(plain_uids[0]), "+FLAGS", "(\\Answered)")[0] == "OK"
        assert m.uid("STORE", str(plain_uids[1]), "+FLAGS", "(\\Flagged)")[0] == "OK"
        m.logout()
        mbsync(rc, home, tls)
        local2 = maildir(md)
        flags_by_body = {without_tuid(body): maildir_flags(nm)
                         for nm, body in local2["INBOX"].items()}
        assert len(flags_by_body) == total_inbox - 1
        assert flags_by_body[body_of[flagged_uid]] == "F"
        assert flags_by_body[body_of[plain_uids[0]]] == "R"
        assert flags_by_body[body_of[plain_uids[1]]] == "F"
        final = imap_all(br, user, pw)
        want_local = {as_mbsync_stores(body): "".join(sorted({"\\Answered": "R", "\\Flagged": "F",
                                            "\\Seen": "S", "\\Draft": "D"}[f] for f in fl))
                      for _, fl, body in final["INBOX"]}
        assert flags_by_body == want_local
        assert len(uids) == total_inbox - 1

        # 4. a draft written locally is uploaded (APPEND) to Drafts, flags
        # and all, as it was written (CRLF on the wire) plus mbsync's X-TUID
        # (Dovecot 2.3 gets the same through mbsync)
        draft = (b"From: bob@alpha.test\nTo: alice@alpha.test\nSubject: draft\n"
                 b"\nnot finished \xe2\x9c\x93\n")
        (md / "Drafts" / "cur" / "1700000000.1_1.host:2,DS").write_bytes(draft)
        mbsync(rc, home, tls)
        drafts = imap_all(br, user, pw)["Drafts"]
        assert [(fl, without_tuid(as_mbsync_stores(body))) for _, fl, body in drafts] == \
            [(["\\Draft", "\\Seen"], draft)], drafts
        final = imap_all(br, user, pw)
        local2 = maildir(md)

        # 5. nothing to do: nothing changes, on either side
        mbsync(rc, home, tls)
        assert maildir(md) == local2
        assert imap_all(br, user, pw) == final
    finally:
        br.stop()


@pytest.mark.skipif(MUTT is None, reason="mutt is not installed")
def test_mutt_sends_to_a_remote_amp_user_and_a_legacy_address(
        base, dns_server, receiver, tmp_path):  # noqa: F811
    dns = dns_server(ZONE)
    b, nodes = base
    alpha = Node(b, "alpha.test", dns_forwarder=dns.forwarder, smtp_out_port=receiver.port,
                 smtp_hostname="mx.alpha.test", smtp_out_retry_min="1s",
                 smtp_out_retry_max="1s", smtp_out_command_timeout="5s",
                 smtp_out_connect_timeout="3s")
    beta = Node(b, "beta.test")
    nodes += [alpha, beta]
    bob, carol = User(b, "bob", alpha), User(b, "carol", beta)
    key, txt = dkim_key(tmp_path, bob)
    alpha.conf["dkim_keys"] = f"alpha.test:{SELECTOR}:{key}"
    alpha.write_conf()
    alpha.route_to(beta)
    beta.route_to(alpha)
    alpha.start()
    beta.start()
    bob.register()
    carol.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    br = Bridge(bob)
    try:
        home = tmp_path / "mutthome"
        home.mkdir()
        rc = home / "muttrc"
        rc.write_text(f"""set smtp_url = "smtp://bob%40alpha.test@127.0.0.1:{br.smtp_port}/"
set smtp_pass = "{pw}"
set from = "bob@alpha.test"
set realname = "Bob"
set use_from = yes
set hostname = "alpha.test"
set ssl_starttls = no
set ssl_force_tls = no
set record = ""
set copy = no
set charset = "utf-8"
set send_charset = "utf-8"
""")
        token = "mutt-token-" + os.urandom(8).hex()
        body = f"Hello Carol and Dave,\n{token}\n.a dot line\nGr\u00fc\u00dfe \u2713\n"
        subject = f"from mutt {token[-6:]}"
        p = subprocess.run([MUTT, "-n", "-F", str(rc), "-s", subject, "--",
                            "carol@beta.test", "dave@example.net"],
                           input=body.encode(), capture_output=True, timeout=120,
                           env={"HOME": str(home), "PATH": os.environ["PATH"],
                                "LANG": "C.UTF-8", "TERM": "dumb"})
        assert p.returncode == 0, (p.stdout, p.stderr)

        # what mutt wrote, as the bridge's Sent folder kept it
        m, k = wait_messages(br, "bob@alpha.test", pw, "Sent", 1)
        assert k == 1
        wrote = fetch_body(m, 1)
        m.logout()
        parsed = email.message_from_bytes(wrote, policy=email.policy.default)
        assert parsed["Subject"] == subject
        assert parsed["From"] == "Bob <bob@alpha.test>"
        # the text as given, 8-bit, CRLF on the wire
        assert wrote.split(b"\r\n\r\n", 1)[1] == body.replace("\n", "\r\n").encode()
        assert parsed["Content-Transfer-Encoding"] == "8bit"
        # mutt's own Message-ID (hostname alpha.test)
        assert re.fullmatch(r"<\S+@alpha\.test>", parsed["Message-ID"])

        # (a) carol at beta: sealed to her, the node holds no plaintext
        saved = tmp_path / "saved"
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            out = carol.run("inbox", "--save", str(saved)).stdout
            if out:
                break
            time.sleep(0.3)
        (env_file,) = saved.iterdir()
        sealed = env_file.read_bytes()
        assert token.encode() not in sealed and subject.encode() not in sealed
        # (--info prints the envelope's claims, then fails to verify: carol
        # has not imported bob's document; her `amp fetch` below does)
        info = carol.run("open", "--info", "-i", str(env_file), check=False)
        info = (info.stdout + info.stderr).decode()
        assert re.findall(r"^recipient\s+(\S+)", info, re.M) == [carol.did], info
        assert re.search(rf"^sender\s+{re.escape(bob.did)}$", info, re.M), info
        # nothing under beta's directory (database, WAL, queue) has the text
        for f in beta.dir.rglob("*"):
            if f.is_file():
                assert token.encode() not in f.read_bytes(), f
        md = carol.home / "md"
        carol.run("fetch", "--maildir", str(md), "--wait", "20", "--ack")
        (got,) = sorted((md / "new").iterdir())
        assert got.read_bytes() == wrote

        # routed back: carol answers, bob's bridge shows it
        reply = (f"From: carol@beta.test\r\nTo: bob@alpha.test\r\nSubject: Re: {subject}\r\n"
                 f"\r\nthanks\r\n").encode()
        carol.run("send", bob.did, input=reply)
        m, k = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
        assert k == 1 and fetch_body(m, 1) == reply
        m.logout()

        # (b) dave behind alpha's gateway: plain SMTP, From bob's address,
        # DKIM signed by alpha.test
        (mail_from, rcpts, data), = receiver.wait(1)
        assert mail_from == "bob@alpha.test" and rcpts == ["dave@example.net"]
        legacy = email.message_from_bytes(data, policy=email.policy.default)
        assert legacy["From"] == "Bob <bob@alpha.test>"
        assert legacy["Subject"] == subject
        assert data.split(b"\r\n\r\n", 1)[1] == body.replace("\n", "\r\n").encode()
        assert data.startswith(b"DKIM-Signature:")

        def dnsfunc(name, timeout=5):
            assert name == f"{SELECTOR}._domainkey.alpha.test.".encode()
            return txt
        assert dkim.verify(data, dnsfunc=dnsfunc)
    finally:
        br.stop()


def run_mutt_tty(argv, env, timeout=60):
    """mutt on a pseudo-terminal (it needs one to open a mailbox); what it
    drew, once it exits."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    d = os.read(fd, 4096)
                except OSError:            # EIO: mutt has exited
                    break
                if not d:
                    break
                screen += d
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, screen[-2000:])
    return screen


@pytest.mark.skipif(MUTT is None, reason="mutt is not installed")
def test_mutt_reads_flags_and_deletes_over_imap(base, tmp_path):
    """mutt's IMAP client (on a pseudo-terminal, driven by `push`): it
    lists INBOX, pipes the first message raw (what the bridge serves),
    flags it, deletes the second and syncs: the bridge shows \\Flagged on
    the first (not \\Seen: piping is not reading) and the second
    expunged."""
    b, nodes = base
    n = Node(b, "alpha.test")
    nodes.append(n)
    n.start()
    alice, bob = User(b, "alice", n), User(b, "bob", n)
    alice.register()
    bob.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    br = Bridge(bob)
    try:
        first = (b"From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: read me\r\n"
                 b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <r1@alpha.test>\r\n"
                 b"\r\nline one\r\n.dot\r\n\xe2\x9c\x93\r\n")
        second = (b"From: alice@alpha.test\r\nTo: bob@alpha.test\r\nSubject: delete me\r\n"
                  b"Date: Mon, 23 Nov 2026 11:00:00 +0000\r\nMessage-ID: <r2@alpha.test>\r\n"
                  b"\r\ngone soon\r\n")
        alice.run("send", bob.did, input=first)
        m, k = wait_messages(br, "bob@alpha.test", pw, "INBOX", 1)
        m.logout()
        alice.run("send", bob.did, input=second)
        m, k = wait_messages(br, "bob@alpha.test", pw, "INBOX", 2)
        assert k == 2
        m.logout()
        home = tmp_path / "mutthome"
        home.mkdir()
        out = home / "piped"
        rc = home / "muttrc"
        rc.write_text(f"""set folder = "imap://bob%40alpha.test@127.0.0.1:{br.imap_port}/"
set imap_pass = "{pw}"
set spoolfile = "+INBOX"
set ssl_starttls = no
set ssl_force_tls = no
set pipe_decode = no
set wait_key = no
set quit = yes
set delete = yes
set move = no
set mark_old = no
set sort = date
set header_cache = ""
""")
        screen = run_mutt_tty(
            [MUTT, "-n", "-F", str(rc), "-f", "+INBOX", "-e",
             f'push "<first-entry><pipe-message>cat > {out}<enter><flag-message>'
             f'<next-undeleted><delete-message><sync-mailbox><quit>"'],
            {"HOME": str(home), "PATH": os.environ["PATH"], "TERM": "vt100",
             "LANG": "C.UTF-8"})
        # mutt had both (0/2 headers), and after its sync one, flagged
        assert b"Fetching message headers... 0/2" in screen, screen[-2000:]
        assert b"read me" in screen and b"[Msgs:1 New:1 Flag:1 " in screen, screen[-2000:]
        # mutt pipes the raw message with LF line ends
        assert out.read_bytes() == first.replace(b"\r\n", b"\n")
        m = br.imap()
        m.login("bob@alpha.test", pw)
        typ, data = m.select("INBOX", readonly=True)
        assert data == [b"1"]
        assert fetch_body(m, 1) == first
        typ, data = m.fetch("1", "(FLAGS)")
        assert data == [b"1 (FLAGS (\\Flagged))"], data
        m.logout()
    finally:
        br.stop()
