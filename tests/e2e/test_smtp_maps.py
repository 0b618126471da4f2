"""The Legacy Bridge, inbound: the lookup tables in the SMTP path of the
real daemon (docs/bridge.md "What is accepted"): alias fan-out to several
DIDs sealed once, canonical address -> DID, access_map actions, relay
domains and relay networks, and a table reloaded with SIGHUP."""
import re
import signal
import smtplib
import subprocess

import pytest

from nodes import AMP_BIN, Node, User, free_port


@pytest.fixture
def mapped(base):
    b, nodes = base
    d = b / "tables"
    d.mkdir()
    (d / "virtual").write_text(
        "# the team: two addresses and a DID\n"
        "team@alpha.test   bob@alpha.test, carol@alpha.test,\n"
        "                  did:aftersmtp:alpha.test:dave\n"
        "loop1@alpha.test  loop2@alpha.test\n"
        "loop2@alpha.test  loop1@alpha.test\n"
        "ghost@alpha.test  nobody-registered@alpha.test\n"
        "out@alpha.test    someone@elsewhere.example\n")
    (d / "canonical").write_text(
        "helpdesk@alpha.test   did:aftersmtp:alpha.test:support-team\n")
    (d / "access").write_text(
        "spammer@bad.example     REJECT no mail from you\n"
        "later@slow.example      DEFER\n"
        "blackhole@alpha.test    DISCARD\n"
        "127.0.0.9               550 5.7.1 your network is blocked\n"
        "held@alpha.test         HOLD\n")
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             virtual_alias_maps=str(d / "virtual"), canonical_maps=str(d / "canonical"),
             access_map=str(d / "access"), relay_domains="relay.example",
             smtp_relay_networks="127.0.0.8/32",
             smtp_postmaster="did:aftersmtp:alpha.test:carol")
    nodes.append(n)
    n.start()
    n.smtp_port = int(n.conf["smtp_port"])
    users = {}
    for name in ("bob", "carol", "dave", "support-team", "blackhole"):
        users[name] = User(b, name, n)
        users[name].register()
    return b, n, users, d


def smtp(n, source=None):
    s = smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30,
                     source_address=(source, 0) if source else None)
    s.ehlo("client.example.net")
    return s


def test_alias_fans_out_to_three_dids_in_one_sealed_envelope(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.sendmail("a@example.net", ["team@alpha.test"],
                          b"Subject: to the team\r\n\r\nhello all\r\n") == {}
    ids = set()
    for name in ("bob", "carol", "dave"):
        out = users[name].run("fetch", "--wait", "10").stdout
        assert b"hello all" in out, name
        save = b / f"env-{name}"
        lines = users[name].run("inbox", "--save", str(save)).stdout.decode().split("\n")
        ids.add(lines[0].split()[-1])
    assert len(ids) == 1, "one sealed envelope for every recipient"
    env = next((b / "env-bob").iterdir())
    p = subprocess.run([AMP_BIN, "open", "--info", "-i", str(env)],
                       capture_output=True, text=True, env=users["bob"].env())
    info = p.stdout + p.stderr
    rcpts = re.findall(r"^recipient\s+(\S+)", info, re.M)
    assert sorted(rcpts) == ["did:aftersmtp:alpha.test:bob", "did:aftersmtp:alpha.test:carol",
                             "did:aftersmtp:alpha.test:dave"], info


def test_canonical_address_to_did(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.sendmail("a@example.net", ["HelpDesk@alpha.test"],
                          b"Subject: help\r\n\r\nplease\r\n") == {}
    assert b"please" in users["support-team"].run("fetch", "--wait", "10").stdout


def test_alias_errors_are_temporary_and_nothing_is_half_delivered(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.mail("a@example.net")[0] == 250
        for rcpt in ("loop1@alpha.test", "ghost@alpha.test"):
            code, text = s.rcpt(rcpt)
            assert code == 451 and text[:1] == b"4", (rcpt, code, text)
        # an alias that forwards elsewhere: the mail queue takes it
        assert s.rcpt("out@alpha.test")[0] == 250
        assert s.rcpt("nobody@alpha.test")[0] == 550
    n.wait_log(r"virtual_alias_maps.*loop")


def test_access_map_actions(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        s.mail("spammer@bad.example")
        code, text = s.rcpt("bob@alpha.test")
        assert code == 554 and b"no mail from you" in text
        s.rset()
        s.mail("later@slow.example")
        assert s.rcpt("bob@alpha.test")[0] == 450
        s.rset()
        s.mail("x@example.net")
        assert s.rcpt("held@alpha.test")[0] == 450
        s.rset()
        # DISCARD: accepted, and never stored
        assert s.sendmail("x@example.net", ["blackhole@alpha.test"],
                          b"Subject: gone\r\n\r\ninto the void\r\n") == {}
    n.wait_log(r"discarded by access_map")
    assert users["blackhole"].run("inbox").stdout.strip() == b""
    with smtp(n, source="127.0.0.9") as s:
        s.mail("x@example.net")
        code, text = s.rcpt("bob@alpha.test")
        assert (code, text) == (550, b"5.7.1 your network is blocked")


def test_relay_domains_and_relay_networks(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        s.mail("x@example.net")
        # a relay domain: accepted for the mail queue (docs/outbound.md)
        assert s.rcpt("u@relay.example")[0] == 250
        assert s.rcpt("u@elsewhere.example")[0] == 554
        # the % hack is the relay domain's business: it goes there
        assert s.rcpt("u%elsewhere.example@relay.example")[0] == 250
    with smtp(n, source="127.0.0.8") as s:
        s.mail("x@example.net")
        assert s.rcpt("u@elsewhere.example")[0] == 250   # a trusted network
    with smtp(n, source="127.0.0.7") as s:
        s.mail("x@example.net")
        assert s.rcpt("u@elsewhere.example")[0] == 554   # any other


def test_a_table_reloaded_with_sighup(mapped):
    b, n, users, d = mapped
    with (d / "virtual").open("a") as f:
        f.write("newlist@alpha.test  carol@alpha.test\n")
    n.proc.send_signal(signal.SIGHUP)
    n.wait_log(r'msg="maps reloaded"')
    with smtp(n) as s:
        assert s.sendmail("a@example.net", ["newlist@alpha.test"],
                          b"Subject: new\r\n\r\nnew list\r\n") == {}
    assert b"new list" in users["carol"].run("fetch", "--wait", "10").stdout
    # a bad line: refused, the old table stays
    with (d / "virtual").open("a") as f:
        f.write("broken-line-without-value\n")
    n.proc.send_signal(signal.SIGHUP)
    n.wait_log(r"virtual, line 9:")
    with smtp(n) as s:
        assert s.sendmail("a@example.net", ["newlist@alpha.test"],
                          b"Subject: still\r\n\r\nstill works\r\n") == {}
    assert b"still works" in users["carol"].run("fetch", "--wait", "10").stdout


def test_dsn_parameters_are_kept_per_recipient(mapped):
    """ENVID/RET of MAIL and NOTIFY/ORCPT of each RCPT are kept with each
    recipient's own copy (the node's delivery note, sealed at rest), so a
    recipient never learns another's address (Bcc); `amp fetch
    --delivery-headers` shows them as X-Original-To / Original-Recipient."""
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.docmd("MAIL FROM:<a@example.net> RET=HDRS ENVID=QQ+2B314159")[0] == 250
        assert s.docmd("RCPT TO:<team@alpha.test> NOTIFY=SUCCESS,FAILURE "
                       "ORCPT=rfc822;Team@alpha.test")[0] == 250
        assert s.docmd("RCPT TO:<bob@alpha.test>")[0] == 250   # bob is in team too
        assert s.data(b"Subject: dsn\r\n\r\nkept\r\n")[0] == 250
    out = users["bob"].run("fetch", "--delivery-headers").stdout
    # bob got it through team first: one copy, the first RCPT's note
    assert out.count(b"Subject: dsn") == 1
    head = out.split(b"\n", 1)[1]
    assert head.startswith(b"X-Original-To: team@alpha.test\r\n"
                           b"Original-Recipient: rfc822;Team@alpha.test\r\nReceived: ")
    plain = users["carol"].run("fetch").stdout
    assert b"X-Original-To" not in plain and b"kept" in plain
    out = users["dave"].run("fetch", "--delivery-headers").stdout
    assert b"X-Original-To: team@alpha.test\r\n" in out


def test_discard_does_not_swallow_the_next_message_of_the_session(mapped):
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.sendmail("x@example.net", ["blackhole@alpha.test"],
                          b"Subject: gone\r\n\r\nvoid\r\n") == {}
        assert s.sendmail("x@example.net", ["bob@alpha.test"],
                          b"Subject: next\r\n\r\nstill delivered\r\n") == {}
    assert b"still delivered" in users["bob"].run("fetch", "--wait", "10").stdout
    assert users["blackhole"].run("inbox").stdout.strip() == b""


def test_postmaster_is_always_accepted(mapped):
    """RFC 5321 §4.5.1: <Postmaster> and postmaster@ each of our domains
    reach smtp_postmaster (here carol's DID)."""
    b, n, users, d = mapped
    with smtp(n) as s:
        assert s.sendmail("x@example.net", ["Postmaster"],
                          b"Subject: bare\r\n\r\nto the bare postmaster\r\n") == {}
        assert s.sendmail("x@example.net", ["PostMaster@alpha.test"],
                          b"Subject: domain\r\n\r\nto postmaster at the domain\r\n") == {}
    out = users["carol"].run("fetch", "--wait", "10").stdout
    assert b"to the bare postmaster" in out and b"to postmaster at the domain" in out
