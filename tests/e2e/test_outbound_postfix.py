"""A real Postfix receives our outbound mail (issue 5, TESTING.md E3).

node (gateway) -> private Postfix with smtpd_forbid_bare_newline = reject
(it refuses any bare LF we might emit) -> aiosmtpd sink (exact bytes).

The user's message carries bare LF line ends, lines that start with a dot
(also right after a bare LF) and a line of 990 octets.  A message with a
bare CR is refused by the gateway with a clear reason (there is no safe
guess of what it meant); the dot-stuffer's bare-CR rule is covered by the
unit tests and the fuzz target of src/smtp/dotstuff.c.  Postfix must
accept it (status=sent in its log, no bare-newline refusal) and the sink
must get the message with every line ending in CRLF and every dot line
intact: our client normalised and dot-stuffed it, Postfix un-stuffed and
re-stuffed it, aiosmtpd un-stuffed it.
"""
import os
import re
import shutil

import pytest

from nodes import free_port, smtp_node
from test_outbound import Receiver, message  # noqa: F401
from test_smtp_postfix import POSTFIX, Postfix

pytest.importorskip("aiosmtpd.controller")


@pytest.fixture
def postfix_chain():
    if not os.path.exists(POSTFIX):
        pytest.skip("postfix is not installed (scripts/bootstrap.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root (its master drops to `postfix`)")
    sink = Receiver()
    pf = Postfix(node_port=0)
    try:
        etc = pf.dir / "etc"
        (etc / "transport").write_text(f"example.net smtp:[127.0.0.1]:{sink.port}\n")
        main = (etc / "main.cf").read_text()
        main = main.replace("relay_domains = alpha.test", "relay_domains = example.net")
        main += "smtpd_forbid_bare_newline = reject\nsmtpd_forbid_bare_newline_exclusions =\n"
        (etc / "main.cf").write_text(main)
        pf.start()
        yield pf, sink
    finally:
        pf.stop()
        shutil.rmtree(pf.dir, ignore_errors=True)
        sink.stop()


def test_postfix_accepts_what_we_send(base, postfix_chain):
    pf, sink = postfix_chain
    b, n, u = smtp_node(base, smtp_hostname="mx.alpha.test", smtp_out_retry_min="1s",
                        smtp_out_retry_max="1s")
    tmap = n.dir / "transport"
    tmap.write_text(f"example.net smtp:[127.0.0.1]:{pf.port}\n")
    n.stop()
    n.conf["transport_maps"] = str(tmap)
    n.write_conf()
    n.start()
    bad = message().replace(b"Hi Carol,\r\n", b"Hi\rCarol,\r\n")
    p = u.run("send", "carol@example.net", input=bad, check=False)
    assert p.returncode == 1
    assert b"gateway BAD_REQUEST the message has a bare CR" in p.stdout, p.stdout
    long_line = b"x" * 990  # under 998: Postfix folds longer lines itself (smtp_line_length_limit)
    body = (b"From: Bob <did:aftersmtp:alpha.test:bob>\n"
            b"To: carol@example.net\n"
            b"Subject: line discipline\n"
            b"\n"
            b"bare LF line\n"
            b".dot after a bare LF\n"
            b"mixed line ends\r\n.dot after a CRLF\r\n"
            b"..two dots\r\n"
            b".\r\n"
            + long_line + b"\r\n"
            b"end\n")
    p = u.run("send", "carol@example.net", input=body, check=False)
    assert b"gateway OK" in p.stdout, p.stdout
    pf.wait_log(r"status=sent")
    log = pf.log_text()
    assert "bare" not in log.lower() or "status=sent" in log
    assert not re.search(r"reject: .*bare", log, re.I), log[-2000:]
    (mail_from, rcpts, data), = sink.wait(1)
    assert mail_from == "bob@alpha.test" and rcpts == ["carol@example.net"]
    text = data.split(b"\r\n\r\n", 1)[1]
    # no bare CR or LF anywhere
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert text == (b"bare LF line\r\n"
                    b".dot after a bare LF\r\n"
                    b"mixed line ends\r\n.dot after a CRLF\r\n"
                    b"..two dots\r\n"
                    b".\r\n"
                    + long_line + b"\r\n"
                    b"end\r\n")
