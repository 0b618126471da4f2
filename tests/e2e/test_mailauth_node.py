"""The node's verdict on legacy mail (issue 7), end to end: a real
aftersmtpd with its dns_forwarder on a loopback zone (SPF, DKIM and DMARC
records), mail sent with smtplib, fetched with `amp fetch`:

  - an aligned dkimpy signature: stored, our Authentication-Results says
    spf, dkim and dmarc pass, and python3-authres parses it;
  - DMARC p=reject failing: 550 5.7.1 at the end of DATA, nothing stored;
    with dmarc_policy = quarantine: stored into the Junk folder; with
    dmarc_policy = report: stored with dmarc=fail recorded;
  - p=quarantine failing: stored, `amp fetch --maildir` puts it in .Junk;
  - spf_fail_reject: 550 5.7.23;
  - local_from_policy = require-auth: From one of our domains without our
    DKIM signature refused, with it accepted;
  - DNS that never answers: the message is accepted after auth_timeout
    with temperror recorded, never a pass;
  - relay clients (smtp_relay_networks) are not judged.
"""
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

import authres
import dkim
import pytest

from dnsfixture import DnsServer, rsa_key, txt_rdata
from nodes import Node, User, free_port, split_trace

NODE = "alpha.example.net"


KEY_PEM, KEY_P = rsa_key()


ZONE = f"""$ORIGIN example.org.
$TTL 300
@              IN SOA ns.example.org. h.example.org. 1 3600 600 86400 300
@              IN TXT "v=spf1 ip4:192.0.2.1 -all"
sel._domainkey IN TXT {txt_rdata("v=DKIM1; k=rsa; p=" + KEY_P)}
_dmarc         IN TXT "v=DMARC1; p=reject"
quar           IN TXT "v=spf1 -all"
_dmarc.quar    IN TXT "v=DMARC1; p=quarantine"
good           IN TXT "v=spf1 ip4:127.0.0.1 -all"
slow           TIMEOUT
$ORIGIN example.net.
@              IN SOA ns.example.net. h.example.net. 1 3600 600 86400 300
sel._domainkey.alpha IN TXT {txt_rdata("v=DKIM1; k=rsa; p=" + KEY_P)}
"""

MSG = ("From: {frm}\r\nTo: bob@" + NODE + "\r\nSubject: {subj}\r\n"
       "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subj}@x>\r\n"
       "\r\nbody of {subj}\r\n")


def message(frm, subj, sign_domain=None):
    m = MSG.format(frm=frm, subj=subj).encode()
    if sign_domain:
        m = dkim.sign(m, b"sel", sign_domain.encode(), KEY_PEM,
                      include_headers=[b"from", b"to", b"subject", b"date",
                                       b"message-id"]) + m
    return m


@pytest.fixture
def world(base):
    b, nodes = base
    d = Path(tempfile.mkdtemp(prefix="amp-man-dns-"))
    dns = DnsServer(ZONE, d)

    def node(**conf):
        port = free_port()
        n = Node(b, NODE, smtp_listen="127.0.0.1", smtp_port=port,
                 dns_forwarder=dns.forwarder, **conf)
        nodes.append(n)
        n.start()
        n.smtp_port = port
        bob = User(b, "bob", n)
        bob.register()
        return n, bob
    yield node
    dns.stop()
    shutil.rmtree(d, ignore_errors=True)


def send(n, mail_from, msg):
    """(code, text) of the end of DATA."""
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=60) as s:
        s.ehlo("client.example.org")
        assert s.mail(mail_from)[0] == 250
        assert s.rcpt("bob@" + NODE)[0] == 250
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
    return code, text.decode()


def fetch(bob, md):
    bob.run("fetch", "--maildir", str(md), "--ack", "--wait", "10")
    inbox = sorted((md / "new").glob("*")) if (md / "new").exists() else []
    junk = sorted((md / ".Junk" / "new").glob("*")) \
        if (md / ".Junk" / "new").exists() else []
    return [p.read_bytes() for p in inbox], [p.read_bytes() for p in junk]


def ours(stored: bytes):
    """Our Authentication-Results field, parsed by python3-authres:
    {method: result}."""
    _, field, _ = split_trace(stored)
    parsed = authres.AuthenticationResultsHeader.parse(
        " ".join(field.decode().split()))
    assert parsed.authserv_id == NODE
    return {r.method: r.result for r in parsed.results}


def test_aligned_dkim_passes_dmarc_under_p_reject(world):
    n, bob = world()
    # SPF fails (127.0.0.1 is not 192.0.2.1), the aligned DKIM signature
    # passes: DMARC passes (TESTING.md D12)
    code, text = send(n, "a@example.org", message("a@example.org", "signed",
                                                  "example.org"))
    assert code == 250, text
    inbox, junk = fetch(bob, bob.home / "Maildir")
    assert len(inbox) == 1 and junk == []
    assert ours(inbox[0]) == {"spf": "fail", "dkim": "pass", "arc": "none",
                              "dmarc": "pass"}
    assert b"body of signed" in inbox[0]
    n.wait_log(r'smtp: authentication.*results="spf=fail '
               r'dkim=pass:example.org arc=none dmarc=pass" action=accept')


def test_dmarc_reject_refuses_at_the_end_of_data(world):
    n, bob = world()
    code, text = send(n, "a@example.org", message("a@example.org", "forged"))
    assert code == 550 and text.startswith("5.7.1 "), (code, text)
    assert "DMARC" in text and "example.org" in text
    inbox, junk = fetch(bob, bob.home / "Maildir")
    assert inbox == [] and junk == []
    n.wait_log(r'smtp: authentication.*dmarc=fail" action=reject')


def test_dmarc_quarantine_goes_to_junk(world):
    n, bob = world()
    code, text = send(n, "a@quar.example.org",
                      message("a@quar.example.org", "dubious"))
    assert code == 250, text
    inbox, junk = fetch(bob, bob.home / "Maildir")
    assert inbox == [] and len(junk) == 1
    assert ours(junk[0]) == {"spf": "fail", "dkim": "none", "arc": "none",
                              "dmarc": "fail"}


@pytest.mark.parametrize("mode,folder", [("quarantine", "junk"),
                                         ("report", "inbox")])
def test_dmarc_policy_modes(world, mode, folder):
    n, bob = world(dmarc_policy=mode)
    code, text = send(n, "a@example.org", message("a@example.org", "forged"))
    assert code == 250, text
    inbox, junk = fetch(bob, bob.home / "Maildir")
    got = junk if folder == "junk" else inbox
    assert len(got) == 1 and len(inbox) + len(junk) == 1
    assert ours(got[0])["dmarc"] == "fail"


def test_spf_fail_reject(world):
    n, bob = world(spf_fail_reject="yes", dmarc_policy="report")
    code, text = send(n, "a@quar.example.org",
                      message("x@elsewhere.example.com", "spf"))
    assert code == 550 and text.startswith("5.7.23 "), (code, text)
    code, text = send(n, "a@good.example.org",
                      message("x@elsewhere.example.com", "spfok"))
    assert code == 250, text


def test_local_from_needs_our_signature(world):
    n, bob = world(local_from_policy="require-auth")
    code, text = send(n, "boss@" + NODE, message("boss@" + NODE, "unsigned"))
    assert code == 550 and text.startswith("5.7.1 "), (code, text)
    assert NODE in text
    code, text = send(n, "boss@" + NODE,
                      message("boss@" + NODE, "ours", NODE))
    assert code == 250, text
    inbox, _ = fetch(bob, bob.home / "Maildir")
    assert len(inbox) == 1 and ours(inbox[0])["dkim"] == "pass"


def test_dns_that_never_answers_is_temperror_not_pass(world):
    n, bob = world(auth_timeout="2s", dns_timeout="1s")
    t0 = time.monotonic()
    code, text = send(n, "a@slow.example.org",
                      message("a@slow.example.org", "slow"))
    took = time.monotonic() - t0
    assert code == 250, text
    assert took < 15, took
    inbox, _ = fetch(bob, bob.home / "Maildir")
    res = ours(inbox[0])
    assert res["spf"] == "temperror" and res["dmarc"] == "temperror", res


def test_relay_clients_are_not_judged(world):
    n, bob = world(smtp_relay_networks="127.0.0.0/8")
    code, text = send(n, "a@example.org", message("a@example.org", "relayed"))
    assert code == 250, text
    inbox, _ = fetch(bob, bob.home / "Maildir")
    assert len(inbox) == 1
    assert b"Authentication-Results:" not in inbox[0].split(b"\r\n\r\n")[0]


def list_copy(frm, subj):
    """What a mailing list at lists.example.org hands on: the author's
    message (From of a p=reject domain, not signed by it), checked by
    the list (its Authentication-Results) and ARC-sealed by dkimpy with
    the list's key (d=example.org, selector sel)."""
    m = (b"Authentication-Results: lists.example.org; dkim=pass "
         b"header.d=example.org; dmarc=pass header.from=example.org\r\n" +
         message(frm, subj))
    return b"".join(dkim.arc_sign(m, b"sel", b"example.org", KEY_PEM,
                                  b"lists.example.org")) + m


@pytest.mark.parametrize("trusted", [True, False])
def test_trusted_arc_sealer_overrides_dmarc_reject(world, trusted):
    conf = {"arc_trusted_sealers": "example.org"} if trusted else {}
    n, bob = world(**conf)
    code, text = send(n, "list-bounces@lists.example.com",
                      list_copy("a@example.org", "via-list"))
    if not trusted:
        assert code == 550 and "DMARC" in text, (code, text)
        return
    assert code == 250, text
    inbox, junk = fetch(bob, bob.home / "Maildir")
    assert len(inbox) == 1 and junk == []
    assert ours(inbox[0]) == {"spf": "none", "dkim": "none", "arc": "pass",
                              "dmarc": "fail"}
    n.wait_log(r"action=accept arc_override=example\.org")
