"""Delivery status notifications (src/mime/dsn.c) read by an independent
parser: Python's email package (policy=email.policy.default).

The test tool tests/tools/dsn-tool (built next to amp, not installed)
builds a DSN from its arguments and a message file with dsn_build and
writes it to stdout.  Each DSN must parse as multipart/report
(report-type=delivery-status) with three parts and no defect on any part:
text/plain, message/delivery-status whose blocks carry the per-message
and per-recipient fields we asked for (Action, Status, Final-Recipient,
...), and the original as message/rfc822 (its Subject read back) or
text/rfc822-headers.  Cases: each action, mixed recipients, the size
cut-off, RET=HDRS, an original without an empty line, an 8-bit original,
injection attempts in the remote reply, host name and envelope id, 1000
recipients, the null sender refused, and the first messages of the shared
ham corpus as originals.
"""
import email
import email.policy
import os
import subprocess
from pathlib import Path

import pytest

from conftest import AMP_BIN

TOOL = os.environ.get("DSN_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "tools" / "dsn-tool"))
CORPUS = Path(os.environ.get("AMP_TEST_CORPUS", "/work/shared/corpus")) / "ham"
RND = "00112233445566778899aabbccddeeff"
NOW = 1767225600  # Thu, 01 Jan 2026 00:00:00 +0000

ORIGINAL = (b"From: alice@example.org\r\n"
            b"To: bob@example.net\r\n"
            b"Subject: hello there\r\n"
            b"Message-ID: <1@example.org>\r\n"
            b"\r\n"
            b"Hi Bob,\r\nhow are you?\r\n")

SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
    "expanded": "Successful Mail Delivery Report",
}


@pytest.fixture(scope="module")
def tool():
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"dsn-tool not found at {TOOL}; build first")
    return TOOL


def rcpt(addr, action="failed", status="5.1.1", **kw):
    args = ["--rcpt", addr, "--action", action, "--status", status]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def build(tool, tmp_path, rcpts, original=ORIGINAL, full=True, extra=(),
          check=True):
    path = tmp_path / "original.eml"
    path.write_bytes(original)
    args = [tool, "--reporting-mta", "mx.example.org",
            "--from", "MAILER-DAEMON@mx.example.org",
            "--to", "alice@example.org", "--msgid-domain", "mx.example.org",
            "--random", RND, "--now", str(NOW), "--arrival", str(NOW - 3600),
            *(["--full"] if full else []), *extra, *rcpts, str(path)]
    p = subprocess.run(args, capture_output=True, timeout=60)
    if not check:
        return p
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def parse(raw, deep=True):
    """The DSN parsed, after the checks every DSN must pass: CRLF only,
    lines within 998 octets, multipart/report with three parts, no defect
    on any part (deep: inside the attached original too)."""
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.is_multipart()
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    parts = msg.get_payload()
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() in ("message/rfc822",
                                           "text/rfc822-headers")
    ours = [msg, *parts, *parts[1].get_payload()]
    if parts[2].get_content_type() == "message/rfc822":
        ours.append(parts[2].get_payload(0))
    for p in (msg.walk() if deep else ours):
        assert p.defects == [], (p.get_content_type(), p.defects)
    for p in ours:
        assert p.defects == [], (p.get_content_type(), p.defects)
    return msg


def blocks(msg):
    """The delivery-status part: (per-message fields, [per-recipient])."""
    bl = msg.get_payload()[1].get_payload()
    assert len(bl) >= 2
    return bl[0], bl[1:]


def test_failed_full(tool, tmp_path):
    raw = build(tool, tmp_path, rcpt(
        "bob@example.net", remote_mta="mx.example.net",
        diag="550 5.1.1 <bob@example.net>: Recipient address rejected",
        orcpt="rfc822;Bob@Example.net", last_attempt=NOW - 60),
        extra=["--envid", "QQ314159"])
    msg = parse(raw)
    assert msg["Subject"] == SUBJECTS["failed"]
    assert msg["To"] == "alice@example.org"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.org"
    assert msg["Message-ID"] == f"<{RND}@mx.example.org>"
    assert msg["Date"].datetime.timestamp() == NOW
    per_msg, per_rcpt = blocks(msg)
    assert per_msg["Reporting-MTA"] == "dns; mx.example.org"
    assert per_msg["Original-Envelope-Id"] == "QQ314159"
    assert per_msg["Arrival-Date"] == "Wed, 31 Dec 2025 23:00:00 +0000"
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; bob@example.net"
    assert r["Original-Recipient"] == "rfc822; Bob@Example.net"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx.example.net"
    assert r["Diagnostic-Code"] == \
        "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected"
    assert r["Last-Attempt-Date"] == "Wed, 31 Dec 2025 23:59:00 +0000"
    assert r["Will-Retry-Until"] is None
    human = msg.get_payload()[0].get_content()
    assert "<bob@example.net>" in human
    assert "mx.example.net said: 550 5.1.1" in human
    orig = msg.get_payload()[2]
    assert orig.get_content_type() == "message/rfc822"
    inner = orig.get_payload(0)
    assert inner["Subject"] == "hello there"
    assert inner.get_content() == "Hi Bob,\r\nhow are you?\r\n"


@pytest.mark.parametrize("action,status", [
    ("failed", "5.4.4"), ("delayed", "4.4.1"), ("delivered", "2.0.0"),
    ("relayed", "2.0.0"), ("expanded", "2.0.0")])
def test_each_action(tool, tmp_path, action, status):
    raw = build(tool, tmp_path, rcpt("dave@example.net", action, status,
                                     retry_until=NOW + 86400))
    msg = parse(raw)
    assert msg["Subject"] == SUBJECTS[action]
    _, per_rcpt = blocks(msg)
    assert per_rcpt[0]["Action"] == action
    assert per_rcpt[0]["Status"] == status
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; dave@example.net"
    if action == "delayed":
        assert per_rcpt[0]["Will-Retry-Until"] == \
            "Fri, 02 Jan 2026 00:00:00 +0000"
        assert "until Fri, 02 Jan 2026" in msg.get_payload()[0].get_content()
    else:
        assert per_rcpt[0]["Will-Retry-Until"] is None


def test_mixed(tool, tmp_path):
    raw = build(tool, tmp_path,
                rcpt("a@example.net", "delivered", "2.0.0",
                     remote_mta="mx.example.net", diag="250 2.0.0 Ok") +
                rcpt("b@example.net", "delayed", "4.2.2",
                     retry_until=NOW + 86400) +
                rcpt("c@example.net", "failed", "5.2.2",
                     remote_mta="mx.example.net", diag="552 5.2.2 full"))
    msg = parse(raw)
    assert msg["Subject"] == SUBJECTS["failed"]
    _, per_rcpt = blocks(msg)
    assert [(r["Final-Recipient"], r["Action"], r["Status"])
            for r in per_rcpt] == [
        ("rfc822; a@example.net", "delivered", "2.0.0"),
        ("rfc822; b@example.net", "delayed", "4.2.2"),
        ("rfc822; c@example.net", "failed", "5.2.2")]


def test_size_cutoff_and_ret_hdrs(tool, tmp_path):
    n = len(ORIGINAL)
    msg = parse(build(tool, tmp_path, rcpt("b@example.net"),
                      extra=["--max-original", str(n)]))
    assert msg.get_payload()[2].get_content_type() == "message/rfc822"
    for full, limit in ((True, n - 1), (False, n)):
        msg = parse(build(tool, tmp_path, rcpt("b@example.net"), full=full,
                          extra=["--max-original", str(limit)]))
        part = msg.get_payload()[2]
        assert part.get_content_type() == "text/rfc822-headers"
        text = part.get_content()
        assert "Subject: hello there" in text
        assert "how are you" not in text


def test_no_blank_line(tool, tmp_path):
    original = b"From: a@example.org\r\nSubject: only a header"
    for full in (True, False):
        msg = parse(build(tool, tmp_path, rcpt("b@example.net"),
                          original=original, full=full))
        part = msg.get_payload()[2]
        if full:
            assert part.get_payload(0)["Subject"] == "only a header"
        else:
            assert part.get_content() == \
                "From: a@example.org\r\nSubject: only a header\r\n"


def test_8bit_original(tool, tmp_path):
    original = ("From: a@example.org\r\nSubject: caf\u00e9\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n"
                "d\u00e9j\u00e0 vu\r\n").encode()
    msg = parse(build(tool, tmp_path, rcpt("b@example.net"),
                      original=original))
    part = msg.get_payload()[2]
    assert part["Content-Transfer-Encoding"] == "8bit"
    inner = part.get_payload(0)
    assert inner["Subject"] == "caf\u00e9"
    assert inner.get_content() == "d\u00e9j\u00e0 vu\r\n"
    # headers only: still 8bit, still no defect
    msg = parse(build(tool, tmp_path, rcpt("b@example.net"),
                      original=original, full=False))
    assert msg.get_payload()[2]["Content-Transfer-Encoding"] == "8bit"


def test_injection(tool, tmp_path):
    evil = (r"550 no\r\nContent-Type: text/html\r\n\r\n--dsn_" + RND +
            r"--\r\nX-Injected: 1\r\n.\r\n\x01\xff end")
    original = (b"Subject: x\r\n\r\n--dsn_" + RND.encode() + b"\r\n"
                b"Content-Type: text/plain\r\n\r\nfake part\r\n")
    raw = build(tool, tmp_path,
                rcpt(r"bob@example.net\r\nX-Injected: 1",
                     remote_mta=r"mx.example.net\r\nX-Injected: 1",
                     diag=evil) +
                rcpt("c@example.net"),
                original=original,
                extra=["--envid", r"E1\r\nX-Injected: 1"])
    msg = parse(raw)
    assert b"\r\nX-Injected" not in raw
    per_msg, per_rcpt = blocks(msg)
    assert len(per_rcpt) == 2
    assert per_msg["Original-Envelope-Id"] == "E1??X-Injected: 1"
    r = per_rcpt[0]
    assert r["Diagnostic-Code"] == (
        "smtp; 550 no Content-Type: text/html --dsn_" + RND +
        "-- X-Injected: 1 . ?? end")
    assert r["Remote-MTA"] == "dns; mx.example.net??X-Injected:?1"
    assert r["Final-Recipient"] == \
        r"utf-8; bob@example.net\x{D}\x{A}X-Injected:\x{20}1"
    for block in (per_msg, *per_rcpt):
        assert block["X-Injected"] is None
    # the original, with a line that is our default boundary, is one part
    inner = msg.get_payload()[2].get_payload(0)
    assert "fake part" in inner.get_content()
    assert msg.get_boundary() != "dsn_" + RND


def test_1000_recipients(tool, tmp_path):
    args = []
    for i in range(1000):
        args += rcpt(f"u{i}@example.net", "delayed" if i % 2 else "failed",
                     "4.4.1" if i % 2 else "5.1.1",
                     remote_mta="mx.example.net",
                     diag="451 4.4.1 try again later")
    msg = parse(build(tool, tmp_path, args))
    _, per_rcpt = blocks(msg)
    assert len(per_rcpt) == 1000
    assert per_rcpt[999]["Final-Recipient"] == "rfc822; u999@example.net"
    assert per_rcpt[999]["Action"] == "delayed"
    p = build(tool, tmp_path, args + rcpt("one-more@example.net"),
              check=False)
    assert p.returncode == 2  # the tool refuses a 1001st --rcpt


def test_null_sender_refused(tool, tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(ORIGINAL)
    p = subprocess.run([tool, "--reporting-mta", "mx.example.org",
                        "--from", "MAILER-DAEMON@mx.example.org", "--to", "",
                        "--msgid-domain", "mx.example.org", "--random", RND,
                        "--now", str(NOW), *rcpt("b@example.net"),
                        str(path)], capture_output=True, timeout=60)
    assert p.returncode == 1
    assert b"null sender" in p.stderr
    assert p.stdout == b""


def corpus(n):
    files = sorted(CORPUS.glob("*.eml"))[:n]
    assert len(files) == n, f"need {n} messages in {CORPUS}"
    return files


@pytest.mark.parametrize("full", [True, False])
def test_corpus_originals(tool, tmp_path, full):
    """Real messages (LF line ends, mbox "From " lines, 8-bit, long lines)
    as originals: our parts never have a defect, and the original is
    recognised."""
    kinds = set()
    for f in corpus(40):
        raw_in = f.read_bytes()
        raw = build(tool, tmp_path, rcpt("b@example.net",
                                         remote_mta="mx.example.net",
                                         diag="550 5.1.1 unknown"),
                    original=raw_in, full=full)
        msg = parse(raw, deep=False)
        part = msg.get_payload()[2]
        kinds.add(part.get_content_type())
        src = email.message_from_bytes(raw_in, policy=email.policy.compat32)
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0)
            if src["Subject"] is not None:
                assert inner["Subject"] is not None, f.name
        else:
            text = part.get_payload(decode=True)
            assert b"\r\n\r\n" not in text, f.name  # no body
            if src["Message-ID"] is not None:
                assert b"message-id:" in text.lower(), f.name
    if full:
        assert "message/rfc822" in kinds
    else:
        assert kinds == {"text/rfc822-headers"}
