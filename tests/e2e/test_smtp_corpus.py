"""Every message of the shared mail corpus (/work/shared/corpus: the
SpamAssassin public corpus, ham and spam, LF line ends, 8-bit content)
sent over SMTP to one node, four sessions at once (each to its own
registered user, so that the four inboxes can be fetched in parallel:
`amp fetch` syncs every Maildir file, one user alone takes ~20 s), then
fetched with `amp fetch --maildir` and compared byte for byte.

How a file becomes an SMTP message (RFC 5321), and what must come back:

* LF line ends are sent as CRLF (§2.3.8); the stored message is the file
  with every LF turned into CRLF.
* A last line without a line end gets CRLF (the "." line must follow a
  CRLF, §4.1.1.4); the stored message has it too.
* Lines starting with "." are dot-stuffed on the wire (§4.5.2) and must
  come back unstuffed.  One session in four uses Python's smtplib (its
  own stuffing); the others write raw bytes with real pipelining:
  MAIL, RCPT and DATA in one write (RFC 2920), then the text.
* 8-bit files are sent with BODY=8BITMIME (offered in EHLO).
* Files that cannot be sent as they are, and the rule for each (counted,
  never skipped):
  - a bare CR (a CR not followed by LF): sent as it is (its LFs made
    CRLF); the daemon's bare CR/LF policy (smtp_bare_newline = reject)
    must refuse it with 550 5.5.2 after the end of the message, and
    nothing is stored;
  - NUL: sent as it is; the daemon keeps NUL as message text (it is
    not a line end), so it must be stored byte for byte;
  - lines over 998 octets (§4.5.3.1.6): sent as they are; the daemon has
    no text line limit (S2 policy: accept), so they must be stored byte
    for byte, not split.
The corpus itself has no bare CR and no NUL, so two copies of its first
message with one of each added to the body are sent too (the corpus is
read-only: the copies exist only in memory), and both rules must run.
The corpus directory must hold exactly the messages plus README.md and
NOTICE: a new kind of file fails the test instead of being ignored.
"""
import re
import smtplib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nodes import Node, User, free_port

CORPUS = Path("/work/shared/corpus")
SESSIONS = 4
RECEIVED = re.compile(
    rb"\AReceived: from sender\d\.example\.net \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby alpha\.test \(AfterSMTP\) with ESMTP\r\n"
    rb"\tfor <user\d@alpha\.test>; [A-Z][a-z]{2}, \d\d? [A-Z][a-z]{2} \d{4} "
    rb"\d\d:\d\d:\d\d \+0000( \(UTC\))?\r\n"
    # then our one Authentication-Results field (issue 7), maybe folded
    rb"Authentication-Results: alpha\.test; [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def load_corpus():
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is not on this machine")
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    msgs = [p for p in files if p.suffix == ".eml" and p.parent.name in ("ham", "spam")]
    others = sorted(str(p.relative_to(CORPUS)) for p in files if p not in msgs)
    assert others == ["NOTICE", "README.md"], others
    return msgs


def derived(msgs):
    """The corpus has no file with a bare CR or a NUL: two copies of its
    first message with one added to the body, so that both rules run."""
    raw = msgs[0].read_bytes()
    i = raw.index(b"\n\n") + 2
    name = msgs[0].relative_to(CORPUS)
    return [Item(f"derived/bare-cr/{name}", raw[:i] + b"a bare\rCR\n" + raw[i:]),
            Item(f"derived/nul/{name}", raw[:i] + b"a NUL \0 byte\n" + raw[i:])]


class Item:
    """One message: its wire form and what the node must store."""

    def __init__(self, name: str, raw: bytes):
        self.path = name
        self.bare_cr = re.search(rb"\r(?!\n)", raw) is not None
        self.nul = b"\0" in raw
        text = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
        self.no_eol = not text.endswith(b"\r\n")
        if self.no_eol:
            text += b"\r\n"
        self.long = any(len(l) > 998 for l in text.split(b"\r\n"))
        self.eightbit = re.search(rb"[\x80-\xff]", raw) is not None
        self.dots = re.search(rb"(?m)^\.", text) is not None
        self.expected = text                      # what must be stored
        self.text = text                          # unstuffed, CRLF
        self.reply = None                         # (code, enh, text)
        self.envelope = None


def pipelined_session(port, items, helo, rcpt):
    """Raw SMTP with PIPELINING: MAIL+RCPT+DATA in one write."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            assert line.endswith(b"\r\n"), (lines, line)
            lines.append(line[:-2])
            if line[3:4] != b"-":
                return lines

    try:
        assert reply()[-1].startswith(b"220 ")
        s.sendall(b"EHLO " + helo + b"\r\n")
        ehlo = reply()
        assert b"250-PIPELINING" in ehlo and b"250-8BITMIME" in ehlo, ehlo
        for it in items:
            body = b" BODY=8BITMIME" if it.eightbit else b""
            s.sendall(b"MAIL FROM:<corpus@example.net>" + body + b"\r\n"
                      b"RCPT TO:<" + rcpt + b">\r\nDATA\r\n")
            r = [reply()[-1] for _ in range(3)]
            assert [x[:3] for x in r] == [b"250", b"250", b"354"], (it.path, r)
            s.sendall(re.sub(rb"(?m)^\.", b"..", it.text) + b".\r\n")
            it.reply = reply()[-1]
            if not it.reply.startswith(b"250"):
                s.sendall(b"RSET\r\n")
                assert reply()[-1].startswith(b"250")
        s.sendall(b"QUIT\r\n")
        assert reply()[-1].startswith(b"221")
    finally:
        f.close()
        s.close()


class KeepReplySMTP(smtplib.SMTP):
    """smtplib.SMTP that keeps the reply to the end of DATA (sendmail()
    drops its text, which names the envelope)."""

    def data(self, msg):
        self.last_data = super().data(msg)
        return self.last_data


def smtplib_session(port, items, helo, rcpt):
    with KeepReplySMTP("127.0.0.1", port, local_hostname=helo.decode(), timeout=60) as s:
        s.ehlo(helo.decode())
        assert s.has_extn("pipelining") and s.has_extn("8bitmime")
        for it in items:
            opts = ["BODY=8BITMIME"] if it.eightbit else []
            try:
                # bytes: smtplib dot-stuffs but changes no line end
                s.sendmail("corpus@example.net", [rcpt.decode()], it.text,
                           mail_options=opts)
            except smtplib.SMTPDataError:
                pass                            # sendmail sent RSET
            code, text = s.last_data
            it.reply = b"%d " % code + text


def test_corpus_round_trip_over_smtp(base):
    t0 = time.monotonic()
    msgs = load_corpus()
    items = [Item(str(p.relative_to(CORPUS)), p.read_bytes()) for p in msgs] + derived(msgs)
    b, nodes = base
    port = free_port()
    # dmarc_policy = report: this test is about the bytes; a few corpus
    # messages fail DMARC (a From of several addresses) and would be
    # refused under the default policy (test_mailauth_node.py tests that)
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=port, log_level="info",
             dmarc_policy="report")
    nodes.append(n)
    n.start()
    users = [User(b, f"user{i}", n) for i in range(SESSIONS)]
    for u in users:
        u.register()

    # round robin over the sessions; session 0 is smtplib
    shares = [items[i::SESSIONS] for i in range(SESSIONS)]
    t_send = time.monotonic()
    with ThreadPoolExecutor(SESSIONS) as ex:
        futs = [ex.submit(smtplib_session if i == 0 else pipelined_session,
                          port, share, b"sender%d.example.net" % i,
                          b"user%d@alpha.test" % i)
                for i, share in enumerate(shares)]
        errors = []
        for fu in futs:
            try:
                fu.result()
            except Exception as e:           # noqa: BLE001 (reported below)
                errors.append(repr(e)[:300])
    rc = n.proc.poll()
    assert rc is None, (f"aftersmtpd died with status {rc} while taking the corpus "
                        f"(sessions: {errors}; log tail: {n.log_text()[-600:]})")
    assert errors == []
    send_s = time.monotonic() - t_send

    refused, stored = [], {}
    for i, share in enumerate(shares):
        for it in share:
            assert it.reply is not None, it.path
            if it.bare_cr:
                assert it.reply.startswith(b"550 5.5.2 "), (it.path, it.reply)
                refused.append(it)
                continue
            m = re.match(rb"250 2\.0\.0 Ok: sealed and stored as ([0-9a-f]{32})$", it.reply)
            assert m, (it.path, it.reply)
            it.envelope = m.group(1).decode()
            assert it.envelope not in stored
            stored[it.envelope] = (i, it)

    t_fetch = time.monotonic()

    def fetch(i):
        md = b / f"maildir{i}"
        users[i].run("fetch", "--maildir", str(md), timeout=600)
        return {p.name.split(".")[1]: p for p in (md / "new").iterdir()}
    with ThreadPoolExecutor(SESSIONS) as ex:
        boxes = list(ex.map(fetch, range(SESSIONS)))
    fetch_s = time.monotonic() - t_fetch
    mismatched = []
    for i, box in enumerate(boxes):
        mine = {e for e, (j, _) in stored.items() if j == i}
        assert set(box) == mine, (i, len(box), len(mine))
        for env, p in box.items():
            it = stored[env][1]
            got = p.read_bytes()
            head = RECEIVED.match(got)
            assert head and b"\tfor <user%d@alpha.test>;" % i in got[:head.end()], \
                (it.path, got[:300])
            if got[head.end():] != it.expected:
                mismatched.append(it.path)
    assert mismatched == [], f"{len(mismatched)} differ: {mismatched[:10]}"

    counts = {k: sum(getattr(it, k) for it in items)
              for k in ("bare_cr", "nul", "long", "no_eol", "eightbit", "dots")}
    assert len(refused) == counts["bare_cr"] >= 1 and counts["nul"] >= 1
    assert len(stored) + len(refused) == len(items)
    # the corpus does exercise the interesting cases
    assert counts["dots"] > 0 and counts["eightbit"] > 0 and counts["long"] > 0
    total = time.monotonic() - t0
    print(f"\ncorpus: {len(msgs)} files + {len(items) - len(msgs)} derived, {len(stored)} stored byte-identical, "
          f"{len(refused)} refused by rule; {counts}; "
          f"send {send_s:.1f}s, fetch {fetch_s:.1f}s, total {total:.1f}s")
