"""rspamd as the second independent verifier (issue 7, "Trust at the
border"; TESTING.md D1, D9, D10, D12 and §4.3): Debian's rspamd 3.4 and
our own checks judge the same messages against the same loopback zone.

One rspamd (tests/e2e/rspamdfixture.py: a private instance, normal
worker on a free 127.0.0.1 port, DNS only at the zone's server) and one
tests/tools/dnsserver.py (tests/e2e/dnsfixture.py DnsServer) serve the
whole module.  Our side:
  - the signer: tests/tools/dkim-sign-tool ($DKIM_SIGN_TOOL) with keys
    from `amp dkim keygen` (rsa and ed25519; the zone lines it prints go
    into the zone as they are);
  - the ARC sealer: tests/unit/arc-tool seal ($ARC_TOOL), rsa-sha256,
    with an `amp dkim keygen --alg rsa` key;
  - the inbound verdict: tests/tools/mailauth-tool ($MAILAUTH_TOOL,
    src/daemon/mailauth.c, what smtpd runs), its spf / dkim / arc / dmarc
    lines.
Both are given the same client IP, 192.0.2.10 (or another 192.0.2.x,
or 2001:db8:...): rspamd skips the checks for a local client such as
127.0.0.1, so the zone's SPF records name those addresses.  The
domains are under .org/.net/.com, not .test (libunbound answers .test
itself).

What is shown:
  D1  our rsa-sha256 and ed25519-sha256 signatures on edge-case messages
      and on corpus messages: R_DKIM_ALLOW in rspamd and dkim=pass in
      ours; a line appended to the body or the Subject changed:
      R_DKIM_REJECT and dkim=fail;
  D9  our ARC seal (i=1, then i=2 over it): ARC_ALLOW and arc=pass; the
      same change after the last seal: ARC_REJECT and arc=fail;
  D10 SPF pass / fail / softfail / neutral / none / permerror /
      temperror cases: R_SPF_ALLOW / R_SPF_FAIL / R_SPF_SOFTFAIL /
      R_SPF_NEUTRAL / R_SPF_NA / R_SPF_PERMFAIL / R_SPF_DNSFAIL agree
      with our spf line.  rspamd gives R_SPF_PERMFAIL only for a redirect
      to nothing or a redirect loop: for the other RFC 7208 permerrors
      (two records, bad syntax, an unknown mechanism, include of nothing,
      include loops, more than 10 lookups or 2 void lookups), a
      mechanism after "all" and a "v=spf10" record it departs from the
      RFC; those rows pin both answers (ours the RFC's);
  D12 DMARC pass (by DKIM, ed25519 too, and by SPF; relaxed alignment of
      a subdomain), reject (p=reject; strict alignment; a tampered
      signature), quarantine (p=quarantine; sp=quarantine; an unaligned
      signature) and p=none: DMARC_POLICY_ALLOW / _REJECT / _QUARANTINE /
      _SOFTFAIL agree with our dmarc line and its disposition.
rspamd missing is a failure (scripts/bootstrap.sh installs it), not a
skip.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import DnsServer
from rspamdfixture import Rspamd

BUILD = Path(AMP_BIN).parents[2]
SIGN_TOOL = os.environ.get("DKIM_SIGN_TOOL",
                           str(BUILD / "tests" / "tools" / "dkim-sign-tool"))
ARC_TOOL = os.environ.get("ARC_TOOL",
                          str(BUILD / "tests" / "unit" / "arc-tool"))
MAILAUTH_TOOL = os.environ.get(
    "MAILAUTH_TOOL", str(BUILD / "tests" / "tools" / "mailauth-tool"))
CORPUS = Path(os.environ.get("AMP_TEST_CORPUS", "/work/shared/corpus")) / "ham"
IP = "192.0.2.10"        # allowed by the zone's SPF records
BAD_IP = "192.0.2.66"    # allowed by none
HELO = "mx.sender.example.com"

# (selector, domain, alg): keys made by `amp dkim keygen`
KEYS = [("rsa", "example.org", "rsa"), ("ed", "example.org", "ed25519"),
        ("arc", "example.net", "rsa"), ("arc2", "example.com", "rsa")]

ZONE = """$ORIGIN example.org.
$TTL 300
@              IN SOA ns.example.org. h.example.org. 1 3600 600 86400 300
@              IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc         IN TXT "v=DMARC1; p=reject; sp=quarantine"
_dmarc.strict  IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
; ---- SPF (D10): client 192.0.2.10 unless the case says otherwise
spf-pass       IN TXT "v=spf1 ip4:192.0.2.10 -all"
spf-fail       IN TXT "v=spf1 ip4:192.0.2.20 -all"
spf-soft       IN TXT "v=spf1 ip4:192.0.2.20 ~all"
spf-neutral    IN TXT "v=spf1 ip4:192.0.2.20 ?all"
spf-text       IN TXT "some other text"
spf-net        IN TXT "v=spf1 ip4:192.0.2.0/28 -all"
spf-a          IN TXT "v=spf1 a:host.example.org -all"
host           IN A 192.0.2.10
spf-mx         IN TXT "v=spf1 mx -all"
spf-mx         IN MX 10 host.example.org.
spf-incl       IN TXT "v=spf1 include:spf-pass.example.org -all"
spf-redir      IN TXT "v=spf1 redirect=spf-soft.example.org"
spf-ip6        IN TXT "v=spf1 ip6:2001:db8:1::/48 -all"
spf-two        IN TXT "v=spf1 ip4:192.0.2.10 -all"
spf-two        IN TXT "v=spf1 -all"
spf-syntax     IN TXT "v=spf1 ip4:192.0.2.10/33 -all"
spf-unknown    IN TXT "v=spf1 foo:bar.example.org ip4:192.0.2.10 -all"
spf-redirnone  IN TXT "v=spf1 redirect=nothing.example.org"
spf-inclnone   IN TXT "v=spf1 include:nothing.example.org -all"
spf-loop1      IN TXT "v=spf1 include:spf-loop2.example.org -all"
spf-loop2      IN TXT "v=spf1 include:spf-loop1.example.org -all"
spf-rloop1     IN TXT "v=spf1 redirect=spf-rloop2.example.org"
spf-rloop2     IN TXT "v=spf1 redirect=spf-rloop1.example.org"
spf-servfail   IN TXT "v=spf1 include:sf.example.org -all"
sf             SERVFAIL
spf-badip      IN TXT "v=spf1 ip4:300.0.2.10 -all"
spf-macro      IN TXT "v=spf1 exists:%{z}.example.org -all"
spf-void       IN TXT "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org ip4:192.0.2.10 -all"
spf-allfirst   IN TXT "v=spf1 -all ip4:192.0.2.10"
spf-v10        IN TXT "v=spf10 ip4:192.0.2.10 -all"
spf-deep0      IN TXT "v=spf1 include:spf-deep1.example.org -all"
spf-deep1      IN TXT "v=spf1 include:spf-deep2.example.org -all"
spf-deep2      IN TXT "v=spf1 include:spf-deep3.example.org -all"
spf-deep3      IN TXT "v=spf1 include:spf-deep4.example.org -all"
spf-deep4      IN TXT "v=spf1 include:spf-deep5.example.org -all"
spf-deep5      IN TXT "v=spf1 include:spf-deep6.example.org -all"
spf-deep6      IN TXT "v=spf1 include:spf-deep7.example.org -all"
spf-deep7      IN TXT "v=spf1 include:spf-deep8.example.org -all"
spf-deep8      IN TXT "v=spf1 include:spf-deep9.example.org -all"
spf-deep9      IN TXT "v=spf1 include:spf-deep10.example.org -all"
spf-deep10     IN TXT "v=spf1 include:spf-deep11.example.org -all"
spf-deep11     IN TXT "v=spf1 include:spf-deep12.example.org -all"
spf-deep12     IN TXT "v=spf1 ip4:192.0.2.10 -all"
spf-many       IN TXT "v=spf1 a:h1.example.org a:h2.example.org a:h3.example.org a:h4.example.org a:h5.example.org a:h6.example.org a:h7.example.org a:h8.example.org a:h9.example.org a:h10.example.org a:h11.example.org ip4:192.0.2.10 -all"
h1             IN A 192.0.2.1
h2             IN A 192.0.2.1
h3             IN A 192.0.2.1
h4             IN A 192.0.2.1
h5             IN A 192.0.2.1
h6             IN A 192.0.2.1
h7             IN A 192.0.2.1
h8             IN A 192.0.2.1
h9             IN A 192.0.2.1
h10            IN A 192.0.2.1
h11            IN A 192.0.2.1
$ORIGIN example.net.
@              IN SOA ns.example.net. h.example.net. 1 3600 600 86400 300
@              IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc         IN TXT "v=DMARC1; p=quarantine"
$ORIGIN example.com.
@              IN SOA ns.example.com. h.example.com. 1 3600 600 86400 300
@              IN TXT "v=spf1 ip4:192.0.2.10 -all"
_dmarc         IN TXT "v=DMARC1; p=none"
"""


def _need(path: str, what: str):
    if not os.access(path, os.X_OK):
        pytest.fail(f"{what} not found at {path}; build first")


@pytest.fixture(scope="module")
def world():
    """The keys, the zone's server and one rspamd, for the module."""
    for path, what in ((AMP_BIN, "amp"), (SIGN_TOOL, "dkim-sign-tool"),
                       (ARC_TOOL, "arc-tool"),
                       (MAILAUTH_TOOL, "mailauth-tool")):
        _need(path, what)
    d = Path(tempfile.mkdtemp(prefix="amp-rspamd-oracle-"))
    server = rspamd = None
    try:
        keys, lines = {}, []
        for sel, dom, alg in KEYS:
            pem = d / f"{sel}.pem"
            p = subprocess.run([AMP_BIN, "dkim", "keygen", "--domain", dom,
                                "--selector", sel, "--alg", alg,
                                "--out", str(pem)],
                               capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr.decode()
            line = p.stdout.decode().strip()
            assert line.startswith(f"{sel}._domainkey.{dom}. IN TXT "), line
            lines.append(line)
            keys[sel] = (pem, dom)
        dns_dir = d / "dns"
        dns_dir.mkdir()
        server = DnsServer(ZONE + "\n".join(lines) + "\n", dns_dir)
        rspamd = Rspamd(server.port)
        yield {"keys": keys, "dns": server, "rspamd": rspamd}
    finally:
        try:
            if rspamd is not None:
                rspamd.stop()
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------- helpers

def ours(world, msg: bytes, ip=IP, mail_from="", helo=HELO, extra=()):
    """mailauth-tool's lines: {"spf": str, "dkim": [str], "arc": str,
    "dmarc": str, "authres": str, ...}."""
    p = subprocess.run(
        [MAILAUTH_TOOL, "--forwarder", world["dns"].forwarder, "--ip", ip,
         "--helo", helo, "--mail-from", mail_from, "--timeout", "4000",
         "--no-did", *extra],
        input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    out = {"dkim": []}
    for line in p.stdout.decode().splitlines():
        key, _, rest = line.partition(" ")
        if key == "dkim":
            out["dkim"].append(rest)
        else:
            out[key] = rest
    return out


def theirs(world, msg: bytes, ip=IP, mail_from="", helo=HELO) -> dict:
    return world["rspamd"].symbols(msg, ip=ip, mail_from=mail_from,
                                   helo=helo)


def only(syms: dict, prefix: str, names) -> set:
    """The verdict symbols of one family (R_DKIM_, ARC_, R_SPF_,
    DMARC_) among those rspamd gave."""
    return {s for s in syms if s.startswith(prefix) and s in names}


def sign(world, sel: str, msg: bytes) -> bytes:
    pem, dom = world["keys"][sel]
    p = subprocess.run([SIGN_TOOL, "sign", str(pem), dom, sel,
                        str(int(time.time()))],
                       input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def seal(world, sel: str, msg: bytes, cv: str, authres: str) -> bytes:
    pem, dom = world["keys"][sel]
    p = subprocess.run([ARC_TOOL, "seal", "--key-file", str(pem),
                        "--domain", dom, "--selector", sel, "--cv", cv,
                        "--authres", authres, "--t", str(int(time.time()))],
                       input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def message(frm="Alice <alice@example.org>", subject="hello",
            body=b"Hello Bob.\r\n", extra=b""):
    return (f"From: {frm}\r\nTo: Bob <bob@example.net>\r\n"
            f"Subject: {subject}\r\n"
            "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <rspamd-oracle@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n").encode() + \
        extra + b"\r\n" + body


def tamper_body(msg: bytes) -> bytes:
    head, sep, body = msg.partition(b"\r\n\r\n")
    assert sep
    return head + sep + body + b"one more line\r\n"


def tamper_subject(msg: bytes) -> bytes:
    out = re.sub(rb"\r\nSubject: [^\r]*", b"\r\nSubject: changed", msg,
                 count=1)
    assert out != msg
    return out


# --------------------------------------------------------------- D1: DKIM

DKIM_SYMS = ("R_DKIM_ALLOW", "R_DKIM_REJECT", "R_DKIM_TEMPFAIL",
             "R_DKIM_PERMFAIL", "R_DKIM_NA")

EDGE = [
    message(),
    # folded and spaced header fields, WSP runs, trailing blank lines
    message(subject="folded \r\n\tsubject   with  spaces",
            body=b"  indented \t line  \r\n\r\n.dot line\r\n\r\n\r\n"),
    # empty body
    message(subject="empty", body=b""),
    # 8-bit header and body
    message(subject="caf\u00e9",
            body="na\u00efve caf\u00e9\r\n".encode()),
    # no final line end
    message(subject="no final CRLF", body=b"last line"),
]


def corpus(n: int):
    files = sorted(CORPUS.glob("*.eml"))[:n]
    assert len(files) == n, f"need {n} messages in {CORPUS}"
    out = []
    for f in files:
        raw = f.read_bytes()
        if raw.startswith(b"From "):  # mbox separator, not a header field
            raw = raw.split(b"\n", 1)[1]
        out.append(raw)
    return out


@pytest.mark.parametrize("sel", ["rsa", "ed"])
def test_d1_our_signatures_pass_rspamd(world, sel):
    alg = "rsa-sha256" if sel == "rsa" else "ed25519-sha256"
    for i, msg in enumerate(EDGE + corpus(6)):
        signed = sign(world, sel, msg)
        assert f"a={alg};".encode() in signed.split(b"\r\n\r\n")[0]
        syms = theirs(world, signed)
        assert only(syms, "R_DKIM_", DKIM_SYMS) == {"R_DKIM_ALLOW"}, (i, syms)
        out = ours(world, signed, extra=("--no-spf", "--no-dmarc",
                                         "--no-arc"))
        assert len(out["dkim"]) == 1 and out["dkim"][0].startswith(
            f"pass d=example.org s={sel} a={alg}"), (i, out)


@pytest.mark.parametrize("sel", ["rsa", "ed"])
@pytest.mark.parametrize("tamper", [tamper_body, tamper_subject],
                         ids=["body", "subject"])
def test_d1_tampered_is_rejected_by_both(world, sel, tamper):
    for i, msg in enumerate(EDGE[:2] + corpus(2)):
        bad = tamper(sign(world, sel, msg))
        syms = theirs(world, bad)
        assert only(syms, "R_DKIM_", DKIM_SYMS) == {"R_DKIM_REJECT"}, (i, syms)
        out = ours(world, bad, extra=("--no-spf", "--no-dmarc", "--no-arc"))
        assert len(out["dkim"]) == 1 and out["dkim"][0].startswith("fail "), \
            (i, out)


# ---------------------------------------------------------------- D9: ARC

ARC_SYMS = ("ARC_ALLOW", "ARC_REJECT", "ARC_INVALID", "ARC_DNSFAIL",
            "ARC_NA")


def test_d9_our_arc_seals_pass_rspamd(world):
    msg = sign(world, "rsa", message())
    one = seal(world, "arc", msg, "none",
               "mx.example.net; spf=pass smtp.mailfrom=example.org; "
               "dkim=pass header.d=example.org")
    two = seal(world, "arc2", one, "pass",
               "mx.example.com; arc=pass; dkim=pass header.d=example.org")
    for n, m in ((1, one), (2, two)):
        syms = theirs(world, m)
        assert only(syms, "ARC_", ARC_SYMS) == {"ARC_ALLOW"}, (n, syms)
        out = ours(world, m, extra=("--no-spf", "--no-dkim", "--no-dmarc"))
        assert out["arc"].startswith(f"pass instances={n} "), (n, out)


@pytest.mark.parametrize("tamper", [tamper_body, tamper_subject],
                         ids=["body", "subject"])
def test_d9_tampered_arc_is_rejected_by_both(world, tamper):
    one = seal(world, "arc", message(), "none",
               "mx.example.net; spf=pass smtp.mailfrom=example.org")
    two = seal(world, "arc2", one, "pass", "mx.example.com; arc=pass")
    for n, m in ((1, one), (2, two)):
        bad = tamper(m)
        syms = theirs(world, bad)
        assert only(syms, "ARC_", ARC_SYMS) == {"ARC_REJECT"}, (n, syms)
        out = ours(world, bad, extra=("--no-spf", "--no-dkim", "--no-dmarc"))
        assert out["arc"].startswith("fail "), (n, out)


# ---------------------------------------------------------------- D10: SPF

SPF_SYMBOL = {"pass": "R_SPF_ALLOW", "fail": "R_SPF_FAIL",
              "softfail": "R_SPF_SOFTFAIL", "neutral": "R_SPF_NEUTRAL",
              "none": "R_SPF_NA", "permerror": "R_SPF_PERMFAIL",
              "temperror": "R_SPF_DNSFAIL"}
SPF_SYMS = tuple(SPF_SYMBOL.values())

SPF_CASES = [
    # (MAIL FROM, client IP, result in both)
    ("u@spf-pass.example.org", IP, "pass"),
    ("u@spf-pass.example.org", "192.0.2.11", "fail"),
    ("u@spf-fail.example.org", IP, "fail"),
    ("u@spf-soft.example.org", IP, "softfail"),
    ("u@spf-neutral.example.org", IP, "neutral"),
    ("u@spf-text.example.org", IP, "none"),
    ("u@nothing.example.org", IP, "none"),
    ("u@spf-net.example.org", "192.0.2.15", "pass"),
    ("u@spf-net.example.org", "192.0.2.16", "fail"),
    ("u@spf-a.example.org", IP, "pass"),
    ("u@spf-a.example.org", "192.0.2.12", "fail"),
    ("u@spf-mx.example.org", IP, "pass"),
    ("u@spf-mx.example.org", "192.0.2.12", "fail"),
    ("u@spf-incl.example.org", IP, "pass"),
    ("u@spf-incl.example.org", "192.0.2.12", "fail"),
    ("u@spf-redir.example.org", IP, "softfail"),
    ("u@spf-ip6.example.org", "2001:db8:1::25", "pass"),
    ("u@spf-ip6.example.org", "2001:db8:2::25", "fail"),
    ("u@spf-redirnone.example.org", IP, "permerror"),   # RFC 7208 §6.1
    ("u@spf-rloop1.example.org", IP, "permerror"),      # redirect loop
    ("u@spf-servfail.example.org", IP, "temperror"),
]


@pytest.mark.parametrize("sender,ip,expected", SPF_CASES,
                         ids=[f"{c[0][2:].split('.')[0]}-{c[1]}"
                              for c in SPF_CASES])
def test_d10_spf_agrees_with_rspamd(world, sender, ip, expected):
    msg = message()
    out = ours(world, msg, ip=ip, mail_from=sender,
               extra=("--no-dkim", "--no-dmarc", "--no-arc"))
    syms = theirs(world, msg, ip=ip, mail_from=sender)
    assert out["spf"].split()[0] == expected, out
    assert only(syms, "R_SPF_", SPF_SYMS) == {SPF_SYMBOL[expected]}, syms


# Where rspamd 3.4 does not follow RFC 7208 and we do: the permerror
# cases other than a redirect to nothing or a redirect loop (rspamd
# skips what it cannot parse, picks one of two records, counts lookups
# more loosely, and treats an include that has no record as no match),
# a mechanism after "all" (RFC 7208 §5.1: never tested; rspamd still
# matches it) and a "v=spf10" record (§4.5: not an SPF record).  Each
# row pins rspamd's answer, so a change in either side shows up.
SPF_RSPAMD_LENIENT = [
    # (MAIL FROM, ours (RFC 7208), rspamd's symbol)
    ("u@spf-two.example.org", "permerror", "R_SPF_ALLOW"),      # §4.5
    ("u@spf-syntax.example.org", "permerror", "R_SPF_FAIL"),    # ip4:/33
    ("u@spf-badip.example.org", "permerror", "R_SPF_FAIL"),     # 300.0.2.10
    ("u@spf-unknown.example.org", "permerror", "R_SPF_ALLOW"),  # foo:
    ("u@spf-macro.example.org", "permerror", "R_SPF_FAIL"),     # %{z}
    ("u@spf-inclnone.example.org", "permerror", "R_SPF_FAIL"),  # §5.2
    ("u@spf-loop1.example.org", "permerror", "R_SPF_FAIL"),     # include loop
    ("u@spf-many.example.org", "permerror", "R_SPF_ALLOW"),     # 11 a:
    ("u@spf-deep0.example.org", "permerror", "R_SPF_ALLOW"),    # 12 includes
    ("u@spf-void.example.org", "permerror", "R_SPF_ALLOW"),     # 3 void
    ("u@spf-allfirst.example.org", "fail", "R_SPF_ALLOW"),      # §5.1
    ("u@spf-v10.example.org", "none", "R_SPF_ALLOW"),           # §4.5
]


@pytest.mark.parametrize("sender,expected,rspamd_sym", SPF_RSPAMD_LENIENT,
                         ids=[c[0][2:].split(".")[0]
                              for c in SPF_RSPAMD_LENIENT])
def test_d10_spf_where_rspamd_departs_from_rfc7208(world, sender, expected,
                                                    rspamd_sym):
    msg = message()
    out = ours(world, msg, mail_from=sender,
               extra=("--no-dkim", "--no-dmarc", "--no-arc"))
    assert out["spf"].split()[0] == expected, out
    syms = theirs(world, msg, mail_from=sender)
    assert only(syms, "R_SPF_", SPF_SYMS) == {rspamd_sym}, syms


# -------------------------------------------------------------- D12: DMARC

DMARC_SYMS = ("DMARC_POLICY_ALLOW", "DMARC_POLICY_REJECT",
              "DMARC_POLICY_QUARANTINE", "DMARC_POLICY_SOFTFAIL",
              "DMARC_NA", "DMARC_BAD_POLICY", "DMARC_DNSFAIL")
# our (result, disposition) -> rspamd's symbol
DMARC_SYMBOL = {("pass", "none"): "DMARC_POLICY_ALLOW",
                ("fail", "reject"): "DMARC_POLICY_REJECT",
                ("fail", "quarantine"): "DMARC_POLICY_QUARANTINE",
                ("fail", "none"): "DMARC_POLICY_SOFTFAIL"}

DMARC_CASES = [
    # (id, From, MAIL FROM, IP, sign with, tamper?, (result, disposition))
    ("dkim-rsa", "alice@example.org", "a@example.org", BAD_IP, "rsa", False,
     ("pass", "none")),
    ("dkim-ed25519", "alice@example.org", "a@example.org", BAD_IP, "ed",
     False, ("pass", "none")),
    ("spf", "alice@example.org", "a@example.org", IP, None, False,
     ("pass", "none")),
    ("spf-relaxed", "alice@example.org", "a@spf-pass.example.org", IP, None,
     False, ("pass", "none")),
    ("dkim-relaxed-subdomain", "alice@sub.example.org", "a@sub.example.org",
     BAD_IP, "rsa", False, ("pass", "none")),
    ("reject", "alice@example.org", "a@example.org", BAD_IP, None, False,
     ("fail", "reject")),
    ("reject-tampered", "alice@example.org", "a@example.org", BAD_IP, "rsa",
     True, ("fail", "reject")),
    ("reject-strict", "alice@strict.example.org", "a@strict.example.org",
     BAD_IP, "rsa", False, ("fail", "reject")),
    ("reject-strict-spf", "alice@strict.example.org", "a@spf-pass.example.org",
     IP, None, False, ("fail", "reject")),
    ("quarantine", "alice@example.net", "a@example.net", BAD_IP, None, False,
     ("fail", "quarantine")),
    ("quarantine-unaligned", "alice@example.net", "a@example.net", BAD_IP,
     "rsa", False, ("fail", "quarantine")),
    ("quarantine-sp", "alice@sub.example.org", "a@sub.example.org", BAD_IP,
     None, False, ("fail", "quarantine")),
    ("none", "alice@example.com", "a@example.com", BAD_IP, None, False,
     ("fail", "none")),
    ("none-pass", "alice@example.com", "a@example.com", IP, None, False,
     ("pass", "none")),
]


@pytest.mark.parametrize("frm,mfrom,ip,sel,tampered,expected",
                         [c[1:] for c in DMARC_CASES],
                         ids=[c[0] for c in DMARC_CASES])
def test_d12_dmarc_agrees_with_rspamd(world, frm, mfrom, ip, sel, tampered,
                                      expected):
    msg = message(frm=f"Alice <{frm}>")
    if sel is not None:
        msg = sign(world, sel, msg)
    if tampered:
        msg = tamper_body(msg)
    out = ours(world, msg, ip=ip, mail_from=mfrom, extra=("--no-arc",))
    f = out["dmarc"].split()
    disp = re.search(r"disposition=(\w+)", out["dmarc"])
    assert (f[0], disp and disp.group(1)) == expected, out
    syms = theirs(world, msg, ip=ip, mail_from=mfrom)
    assert only(syms, "DMARC_", DMARC_SYMS) == {DMARC_SYMBOL[expected]}, syms
