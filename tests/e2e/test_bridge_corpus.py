"""500 messages of the shared corpus through the whole path (issue 6):
SMTP ingress of a real node (sealed for bob, stored), bob's `amp bridge`
(fetched, verified, opened, stored sealed at rest, acked), and IMAP
(imaplib): every message comes back byte for byte as it was sent, after
the two trace fields the node adds at the top (Received:,
Authentication-Results:), with RFC822.SIZE its length; and the node's
inbox is empty once the bridge has them.

The 500 are every other file of the corpus in name order (ham and spam,
LF line ends, 8-bit content), sent as test_smtp_corpus.py sends them:
each LF as CRLF, a last line without a line end given one, BODY=8BITMIME.
"""
import re
import smtplib
import time
from pathlib import Path

import pytest

from bridgefixture import Bridge
from nodes import Node, User, free_port, split_trace

CORPUS = Path("/work/shared/corpus")
N = 500


def corpus_messages():
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is not on this machine")
    files = sorted(p for sub in ("ham", "spam") for p in (CORPUS / sub).glob("*.eml"))
    assert len(files) >= 2 * N, len(files)
    out = []
    for p in files[::2][:N]:
        b = p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not b.endswith(b"\r\n"):
            b += b"\r\n"
        out.append((p.name, b))
    return out


def test_500_corpus_messages_byte_identical_over_imap(base):
    msgs = corpus_messages()
    b, nodes = base
    # dmarc_policy = report: this test is about the bytes (some corpus
    # messages fail DMARC; test_mailauth_node.py covers the policy)
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             dmarc_policy="report", log_level="info")
    nodes.append(n)
    n.start()
    bob = User(b, "bob", n)
    bob.register()
    pw = bob.run("bridge", "password").stdout.decode().strip()
    with smtplib.SMTP("127.0.0.1", int(n.conf["smtp_port"]), timeout=60) as s:
        for name, m in msgs:
            # raises unless every recipient was taken and the end of
            # DATA answered 2xx ("sealed and stored")
            assert s.sendmail("corpus@example.net", ["bob@alpha.test"], m,
                              mail_options=["BODY=8BITMIME"]) == {}, name
    br = Bridge(bob)
    try:
        deadline = time.monotonic() + 300
        while True:
            m = br.imap()
            m.login("bob@alpha.test", pw)
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK", data
            if int(data[0]) >= N or time.monotonic() > deadline:
                break
            m.logout()
            time.sleep(0.5)
        assert int(data[0]) == N, f"{data[0]} of {N} messages synced"
        typ, data = m.uid("FETCH", "1:*", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        got = [d for d in data if isinstance(d, tuple)]
        assert len(got) == N
        differ = []
        for (name, sent), (meta, body) in zip(msgs, got):
            size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))
            assert size == len(body), (name, size, len(body))
            received, authres, rest = split_trace(body)
            assert received.startswith(b"Received: from ") and b"for <bob@alpha.test>" in received
            assert authres.startswith(b"Authentication-Results: alpha.test;")
            if rest != sent:
                differ.append(name)
        assert differ == [], f"{len(differ)} of {N} differ, e.g. {differ[:5]}"
        # the same answer again, and structure for all of them: no NO/BAD
        typ, data = m.fetch("1:*", "(FLAGS ENVELOPE BODYSTRUCTURE)")
        assert typ == "OK" and len([d for d in data if d]) >= N
        m.logout()
        br.wait_log(r'msg="bridge sync: verified"', count=N, timeout=60)
        deadline = time.monotonic() + 30
        while bob.run("inbox").stdout != b"" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert bob.run("inbox").stdout == b"", "the node still holds messages"
    finally:
        br.stop()
