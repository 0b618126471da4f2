"""Our DKIM signer and verifier against two more independent verifiers
(issue 7; TESTING.md D1, D2, D4, D7, D8): Mail::DKIM (libmail-dkim-perl,
driven by tests/tools/maildkim.pl) and python3-authheaders.

Every key record is served by the dns_server fixture (tests/e2e/
dnsfixture.py, dnslib on 127.0.0.1): Mail::DKIM asks it through Net::DNS,
authheaders through a dnsfunc that asks it with dnspython (bytes for the
DKIM lookups, str for DMARC, as authheaders wants), pyspf through
dnspython's default resolver pointed at it.  Our verifier is the test
tool dkim-verify-tool (key records given on its command line: the same
TXT text the zone serves).

What is shown:
  D1  our dkim-sign-tool's rsa-sha256 signatures pass in Mail::DKIM (and
      authheaders) on edge-case messages, and fail after a body byte or a
      signed header byte changes.  Mail::DKIM 1.20230212 (bookworm) has no
      ed25519: it answers "invalid (unsupported algorithm
      ed25519-sha256)", never pass; with a dual rsa+ed25519 signature its
      overall verdict is the rsa one.
  D2  Mail::DKIM::Signer (rsa-sha256; c=simple, relaxed [= relaxed/simple],
      simple/relaxed, relaxed/relaxed) signs the same messages: our
      verifier says pass, and fail after tampering.
  D7  for each signer and each edge case, changes that the canonicalisation
      ignores (WSP runs and refolding in a signed header, header name case,
      WSP runs in the body, blank lines added at the end) pass exactly when
      the c= algorithm says so, and a dot-stuffed body fails, in all three
      verifiers alike.
  D4  a From prepended: our verifier says fail always ("bad signature"
      when From was over-signed, else "multiple From").
      Mail::DKIM fails it when From is over-signed (our signer does that;
      maildkim.pl can with "from+"), but PASSES a Mail::DKIM signature with
      From signed once: DKIM alone does not catch it (RFC 6376 §8.15),
      recorded here.  authheaders (dkimpy inside, which adds 'from' to h=
      when verifying) fails it; its DMARC says fail.
  D8  key lookups that fail: NXDOMAIN is permerror in ours and "invalid
      (public key: not available)" in Mail::DKIM; SERVFAIL and a timeout
      are temperror in ours and authheaders, but Mail::DKIM says "invalid
      (public key: DNS error: ...)": its documented temperror result is
      not used for key lookups in this version (recorded).

authheaders verifies DKIM with dkimpy (dkim.DKIM(msg).verify(), the top
signature only), so its DKIM verdict is dkimpy's, not a third
implementation; its SPF (pyspf) and DMARC code are its own.  The SPF
client address used here is outside the zone's SPF record, so its DMARC
verdict rests on DKIM alone and must follow it.  authheaders 0.15.2 raises
IndexError for a message with two From fields when SPF passes (recorded
in test_d4_prepended_from).

A missing tool (Mail::DKIM, Net::DNS, authheaders, pyspf, our test tools)
makes the tests fail, not skip: scripts/bootstrap.sh installs them.
"""
import base64
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import dns_server  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(AMP_BIN).parents[2]
MAILDKIM = ROOT / "tests" / "tools" / "maildkim.pl"
SIGN_TOOL = os.environ.get("DKIM_SIGN_TOOL", str(
    BUILD / "tests" / "tools" / "dkim-sign-tool"))
VERIFY_TOOL = os.environ.get("DKIM_VERIFY_TOOL", str(
    BUILD / "tests" / "unit" / "dkim-verify-tool"))
DOMAIN = "example.org"
SPF_PASS_IP = "192.0.2.10"     # inside the zone's SPF record
SPF_FAIL_IP = "198.51.100.7"   # outside it: DMARC rests on DKIM alone
AUTHSERV = "mx.example.org"

# Edge cases of TESTING.md D7; every one has a Subject with an inner
# space and a From aligned with d=.
HEAD = (b"From: Alice <alice@example.org>\r\n"
        b"To: Bob <bob@example.net>\r\n"
        b"Date: Sun, 23 Nov 2025 12:00:00 +0000\r\n"
        b"Message-ID: <maildkim-1@example.org>\r\n")
MESSAGES = {
    "plain": HEAD + b"Subject: oracle trial\r\n\r\n"
    b"Hello Bob.\r\n.leading dot line\r\n",
    "trailing-blank-lines": HEAD + b"Subject: blank lines\r\n\r\n"
    b"text\r\n\r\n\r\n\r\n",
    "empty-body": HEAD + b"Subject: empty body\r\n\r\n",
    "wsp-runs": HEAD + b"Subject:   spaced \t  out  \r\n\r\n"
    b"  indented  \t line  \r\n\t \r\nend \r\n",
    "folded": b"From: alice@example.org\r\n"
    b"To: bob@example.net,\r\n\tcarol@example.net,\r\n    dave@example.net\r\n"
    b"Subject: a folded\r\n   subject\tline\r\n\r\n"
    b"body of a folded message\r\n",
    "8bit-header": HEAD + b"Subject: caf\xc3\xa9 cr\xc3\xa8me\r\n\r\n"
    b"8-bit body caf\xc3\xa9\r\n",
    "no-final-crlf": HEAD + b"Subject: no final line end\r\n\r\n"
    b"last line without CRLF",
}
# Mail::DKIM Method values and the (header, body) canonicalisation each
# gives: c=relaxed means relaxed/simple (RFC 6376 §3.5).
PERL_METHODS = {"simple": ("simple", "simple"),
                "relaxed": ("relaxed", "simple"),
                "simple/relaxed": ("simple", "relaxed"),
                "relaxed/relaxed": ("relaxed", "relaxed")}
# signer name -> (selector, canonicalisation); "amp-*" is dkim-sign-tool
# (relaxed/relaxed), "perl-*" Mail::DKIM::Signer.
SIGNERS = {"amp-rsa": ("amp", ("relaxed", "relaxed")),
           "amp-ed25519": ("amped", ("relaxed", "relaxed"))}
SIGNERS.update({f"perl-{m}": ("perl", c) for m, c in PERL_METHODS.items()})


def cases_for(signer):
    """The edge-case names a signer's signatures are compared on: all but
    one.  Mail::DKIM with a simple body canonicalisation hashes a body
    without a final CRLF as it is, where RFC 6376 §3.4.3 adds the CRLF
    (ours and dkimpy do): test_no_final_crlf_simple_body records it."""
    _, (_, bc) = SIGNERS[signer]
    if signer.startswith("perl-") and bc == "simple":
        return [n for n in MESSAGES if n != "no-final-crlf"]
    return list(MESSAGES)


def _need_perl():
    perl = shutil.which("perl")
    if perl is None:
        pytest.fail("perl not found (scripts/bootstrap.sh)")
    p = subprocess.run([perl, "-MMail::DKIM::Verifier", "-MMail::DKIM::Signer",
                        "-MNet::DNS::Resolver", "-MCrypt::OpenSSL::RSA", "-e1"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail("Mail::DKIM or Net::DNS missing (scripts/bootstrap.sh "
                    "installs libmail-dkim-perl libnet-dns-perl): " + p.stderr)
    return perl


def _need_authheaders():
    try:
        import authheaders
        import authres
        import dns.resolver
        import spf  # noqa: F401 - authheaders needs it for spf=True
    except ImportError as e:
        pytest.fail(f"{e} (scripts/bootstrap.sh installs python3-authheaders "
                    "python3-spf python3-authres python3-dnspython)")
    return authheaders, authres, dns.resolver


def _txt_zone(value: str) -> str:
    """value as TXT rdata: strings of at most 200 bytes."""
    parts = [value[i:i + 200] for i in range(0, len(value), 200)]
    return " ".join(f'"{p}"' for p in parts)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    for tool in (SIGN_TOOL, VERIFY_TOOL):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} not found; build first")
    d = tmp_path_factory.mktemp("maildkim-keys")
    out = {}
    for alg, sel in (("rsa", "amp"), ("ed25519", "amped")):
        path = d / f"{sel}.pem"
        p = subprocess.run([SIGN_TOOL, "keygen", alg, str(path)],
                           capture_output=True, check=True)
        out[sel] = (path, p.stdout.decode().strip())
    # Mail::DKIM's own key, made by openssl (PKCS#8 PEM)
    pem = d / "perl.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pem), "2048"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    out["perl"] = (pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
    return out


def sign(keys, signer, msg, selector=None, headers=None):
    sel, _ = SIGNERS[signer]
    path = keys[sel][0]
    sel = selector or sel
    if signer.startswith("amp-"):
        cmd = [SIGN_TOOL, "sign", str(path), DOMAIN, sel, str(int(time.time()))]
    else:
        cmd = [_need_perl(), str(MAILDKIM), "sign", "--key", str(path),
               "--domain", DOMAIN, "--selector", sel,
               "--method", signer[len("perl-"):], "--time", str(int(time.time()))]
        if headers is not None:
            cmd += ["--headers", headers]
    p = subprocess.run(cmd, input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, (cmd, p.stderr)
    assert p.stdout.startswith(b"DKIM-Signature:")
    return p.stdout


@pytest.fixture(scope="module")
def signed(keys):
    """Every edge-case message signed once by every signer."""
    return {(s, m): sign(keys, s, msg)
            for s in SIGNERS for m, msg in MESSAGES.items()}


class Oracles:
    """The three verifiers over one loopback zone."""

    def __init__(self, keys, server, tmp_path, monkeypatch):
        self.keys = keys
        self.server = server
        self.tmp = tmp_path
        self.n = 0
        self.authheaders, self.authres, resolver = _need_authheaders()
        r = resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = server.port
        r.lifetime = 3
        self.resolver = r
        self.resolver_mod = resolver
        # pyspf asks dnspython's default resolver
        monkeypatch.setattr(resolver, "default_resolver", r)

    # ours: one (result, reason) per signature, top first
    def ours(self, msg):
        cmd = [VERIFY_TOOL, "--tempfail", f"broken._domainkey.{DOMAIN}",
               "--tempfail", f"slow._domainkey.{DOMAIN}"]
        for sel, (_, txt) in self.keys.items():
            cmd += ["--key", f"{sel}._domainkey.{DOMAIN}={txt}"]
        p = subprocess.run(cmd, input=msg, capture_output=True, timeout=60)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        out = []
        for line in p.stdout.decode().splitlines():
            d, s, st, why = line.split(" ", 3)
            assert d == f"d={DOMAIN}", line
            out.append((st, why))
        return out

    # Mail::DKIM: per message, [(selector, result, detail)] per signature
    # and the overall (result, detail); one perl run for all messages
    def maildkim(self, msgs):
        files = []
        for m in msgs:
            self.n += 1
            f = self.tmp / f"m{self.n}.eml"
            f.write_bytes(m)
            files.append(str(f))
        p = subprocess.run([_need_perl(), str(MAILDKIM), "verify", "--dns",
                            f"127.0.0.1:{self.server.port}", *files],
                           capture_output=True, timeout=300)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        res, cur = [], None
        for line in p.stdout.decode().splitlines():
            word, _, rest = line.partition(" ")
            if word == "message":
                cur = {"sigs": [], "result": None}
                res.append(cur)
            elif word == "sig":
                d, s, a, result, detail = rest.split(" ", 4)
                assert d == f"d={DOMAIN}", line
                cur["sigs"].append((s[2:], a[2:], result, detail))
            elif word == "result":
                cur["result"] = tuple(rest.split(" ", 1))
            else:
                raise AssertionError(line)
        assert len(res) == len(msgs), p.stdout
        return res

    def dnsfunc(self, name, timeout=5):
        """authheaders' dnsfunc: bytes for DKIM (dkimpy passes a bytes
        name), str for DMARC.  A failed lookup raises dnspython's error,
        which authheaders turns into temperror."""
        as_bytes = isinstance(name, bytes)
        if as_bytes:
            name = name.decode()
        try:
            a = self.resolver.resolve(name, "TXT", lifetime=3)
        except (self.resolver_mod.NXDOMAIN, self.resolver_mod.NoAnswer):
            return None
        txt = b"".join(list(a)[0].strings)
        return txt if as_bytes else txt.decode()

    # authheaders: {method: result} from its Authentication-Results field
    def authheaders_ar(self, msg, ip=SPF_FAIL_IP):
        ar = self.authheaders.authenticate_message(
            msg, AUTHSERV, spf=True, dkim=True, dmarc=True, ip=ip,
            mail_from="alice@example.org", helo="mx.example.org",
            dnsfunc=self.dnsfunc)
        h = self.authres.AuthenticationResultsHeader.parse(ar)
        assert h.authserv_id == AUTHSERV, ar
        got = {r.method: r.result for r in h.results}
        assert set(got) == {"spf", "dkim", "dmarc"}, ar
        return got

    def verdicts(self, msgs):
        """(ours, Mail::DKIM, authheaders) pass-or-not of the top
        signature of each message, with the details for messages."""
        md = self.maildkim(msgs)
        out = []
        for m, mres in zip(msgs, md):
            o = self.ours(m)
            ah = self.authheaders_ar(m)
            # DMARC follows DKIM here (SPF fails, From aligned with d=)
            assert ah["dmarc"] == ("pass" if ah["dkim"] == "pass" else "fail"), ah
            out.append(((o[0][0] == "pass", mres["sigs"][0][2] == "pass",
                         ah["dkim"] == "pass"), (o, mres, ah)))
        return out


@pytest.fixture
def oracles(keys, dns_server, tmp_path, monkeypatch):  # noqa: F811
    zone = [f"$ORIGIN {DOMAIN}.", "$TTL 300"]
    for sel, (_, txt) in keys.items():
        zone.append(f"{sel}._domainkey.{DOMAIN}. IN TXT {_txt_zone(txt)}")
    zone += [f'_dmarc.{DOMAIN}. IN TXT "v=DMARC1; p=reject"',
             f'{DOMAIN}. IN TXT "v=spf1 ip4:192.0.2.0/24 -all"',
             f"broken._domainkey.{DOMAIN}. SERVFAIL",
             f"slow._domainkey.{DOMAIN}. TIMEOUT"]
    server = dns_server("\n".join(zone) + "\n")
    return Oracles(keys, server, tmp_path, monkeypatch)


def split(msg):
    head, sep, body = msg.partition(b"\r\n\r\n")
    assert sep, msg
    return head, body


def tamper_body(msg):
    head, body = split(msg)
    for i, c in enumerate(body):
        if chr(c).isalnum():
            return head + b"\r\n\r\n" + body[:i] + \
                (b"Q" if body[i:i + 1] != b"Q" else b"R") + body[i + 1:]
    return head + b"\r\n\r\n" + body + b"added\r\n"


def tamper_header(msg):
    i = msg.index(b"\r\nSubject:") + len(b"\r\nSubject:")
    while msg[i:i + 1] in (b" ", b"\t"):
        i += 1
    return msg[:i] + b"X" + msg[i + 1:]


# ---------------------------------------------------------------- D1, D2

@pytest.mark.parametrize("signer", ["amp-rsa", *[f"perl-{m}" for m in PERL_METHODS]])
def test_signed_passes_and_tamper_fails(oracles, signed, signer):
    """D1 (our rsa-sha256 in Mail::DKIM and authheaders) and D2 (Mail::DKIM
    as the signer, our verifier): pass as signed, fail after a body byte
    or a signed header byte changes, in all three verifiers."""
    names = cases_for(signer)
    msgs = [signed[(signer, n)] for n in names]
    body = [tamper_body(m) for m in msgs]
    hdr = [tamper_header(m) for m in msgs]
    res = oracles.verdicts(msgs + body + hdr)
    k = len(names)
    for i, n in enumerate(names):
        (v, (o, md, ah)) = res[i]
        assert v == (True, True, True), (signer, n, o, md, ah)
        assert o == [("pass", "ok")]
        assert md["sigs"][0][1] == "rsa-sha256" and md["result"] == ("pass", "pass")
        (v, (o, md, ah)) = res[k + i]
        assert v == (False, False, False), ("body", signer, n, o, md, ah)
        assert o == [("fail", "body hash mismatch")], (n, o)
        assert md["sigs"][0][3] == "fail (body has been altered)", (n, md)
        (v, (o, md, ah)) = res[2 * k + i]
        assert v == (False, False, False), ("header", signer, n, o, md, ah)
        assert o == [("fail", "bad signature")], (n, o)
        assert md["sigs"][0][3] == "fail (message has been altered)", (n, md)


def test_ed25519_unsupported_in_maildkim(oracles, signed, keys):
    """D1, ed25519-sha256: Mail::DKIM (bookworm) cannot check it and says
    so ("invalid (unsupported algorithm ...)"), never pass; ours and
    authheaders (dkimpy with python3-nacl) pass it.  Signed twice (rsa,
    then ed25519 on top, as RFC 8463 §4 suggests) Mail::DKIM's overall
    verdict is the rsa signature's pass."""
    msgs = [signed[("amp-ed25519", n)] for n in MESSAGES]
    dual = sign(keys, "amp-ed25519", signed[("amp-rsa", "plain")])
    md = oracles.maildkim(msgs + [dual, tamper_body(msgs[0])])
    for n, m, r in zip(MESSAGES, msgs, md):
        assert r["sigs"] == [("amped", "ed25519-sha256", "invalid",
                              "invalid (unsupported algorithm ed25519-sha256)")], (n, r)
        assert r["result"][0] == "invalid", (n, r)
        assert oracles.ours(m) == [("pass", "ok")], n
        assert oracles.authheaders_ar(m)["dkim"] == "pass", n
    r = md[len(msgs)]
    assert [(s, res) for s, _, res, _ in r["sigs"]] == \
        [("amped", "invalid"), ("amp", "pass")], r
    assert r["result"] == ("pass", "pass"), r
    assert oracles.ours(dual) == [("pass", "ok"), ("pass", "ok")]
    # a tampered ed25519 message: still only "unsupported" in Mail::DKIM,
    # fail in ours and authheaders
    assert md[-1]["sigs"][0][2] == "invalid", md[-1]
    assert oracles.ours(tamper_body(msgs[0])) == [("fail", "body hash mismatch")]
    assert oracles.authheaders_ar(tamper_body(msgs[0]))["dkim"] == "fail"


# -------------------------------------------------------------------- D7

def _variants(msg, canon):
    """(what, changed message, expected to pass under canon (h, b)).
    Only variants that change the message are returned."""
    hc, bc = canon
    head, body = split(msg)
    out = []
    i = head.index(b"\r\nSubject:") + len(b"\r\nSubject:")
    j = head.index(b" ", i + 1)     # a space inside the Subject value
    out.append(("header WSP run", head[:j] + b" \t  " + head[j:], hc == "relaxed"))
    out.append(("header refolded", head[:j] + b"\r\n\t" + head[j + 1:], hc == "relaxed"))
    out.append(("header name case", head.replace(b"\r\nSubject:", b"\r\nSUBJECT:"),
                hc == "relaxed"))
    out = [(w, h + b"\r\n\r\n" + body, ok) for w, h, ok in out]
    if b" " in body.strip():
        k = body.index(b" ", len(body) - len(body.lstrip()))
        out.append(("body WSP run", head + b"\r\n\r\n" + body[:k] + b" \t " + body[k:],
                    bc == "relaxed"))
    if body.endswith(b"\r\n"):
        out.append(("body line trailing WSP",
                    head + b"\r\n\r\n" + body[:-2] + b" \t\r\n", bc == "relaxed"))
    out.append(("blank lines added", msg + b"\r\n\r\n", True))
    if b"\r\n." in b"\r\n" + body:
        stuffed = (b"\r\n" + body).replace(b"\r\n.", b"\r\n..")[2:]
        out.append(("dot-stuffed body", head + b"\r\n\r\n" + stuffed, False))
    return out


@pytest.mark.parametrize("signer", list(SIGNERS))
def test_canonicalisation_agrees(oracles, signed, signer):
    """D7: for every edge case, the changes a canonicalisation ignores pass
    and the others fail, identically in ours, Mail::DKIM and authheaders
    (for amp-ed25519: ours and authheaders; Mail::DKIM cannot check it)."""
    _, canon = SIGNERS[signer]
    cases = []
    for n in cases_for(signer):
        m = signed[(signer, n)]
        cases.append((n, "as signed", m, True))
        cases += [(n, w, v, ok) for w, v, ok in _variants(m, canon)]
    res = oracles.verdicts([c[2] for c in cases])
    bad = []
    for (n, what, _, ok), (v, detail) in zip(cases, res):
        want = (ok, ok, ok)
        if signer == "amp-ed25519":
            want = (ok, False, ok)
            assert detail[1]["sigs"][0][2] == "invalid", detail
        if v != want:
            bad.append((n, what, want, v, detail))
    assert not bad, bad
    assert len(cases) >= 6 * len(cases_for(signer))


def test_no_final_crlf_simple_body(oracles, keys, signed):
    """Recorded disagreement (D7): a body whose last line has no CRLF,
    c=.../simple.  RFC 6376 §3.4.3: "If there is no body or no CRLF at the
    end of the body, a CRLF is added."  Mail::DKIM signs and verifies the
    body hash without that CRLF, so its own signature fails in ours and in
    authheaders (dkimpy), and dkimpy's signature (RFC) fails in Mail::DKIM.
    Relaxed body canonicalisation agrees everywhere (test above).  Mail
    received over SMTP always ends in CRLF, so this only bites messages
    signed from a file."""
    import dkim
    msg = MESSAGES["no-final-crlf"]
    body = split(msg)[1]
    assert not body.endswith(b"\r\n")
    rfc_bh = base64.b64encode(hashlib.sha256(body + b"\r\n").digest())
    raw_bh = base64.b64encode(hashlib.sha256(body).digest())
    perl_sig = {m: signed[(f"perl-{m}", "no-final-crlf")]
                for m in ("simple", "relaxed")}
    dkimpy_sig = dkim.sign(msg, b"perl", DOMAIN.encode(),
                           keys["perl"][0].read_bytes(),
                           canonicalize=(b"simple", b"simple"),
                           include_headers=[b"from", b"subject"]) + msg
    assert b"bh=" + rfc_bh in dkimpy_sig.replace(b"\r\n ", b"")
    md = oracles.maildkim([*perl_sig.values(), dkimpy_sig])
    for (m, sm), r in zip(perl_sig.items(), md):
        assert b"bh=" + raw_bh + b";" in sm.replace(b"\r\n ", b""), m
        assert r["sigs"][0][2] == "pass", (m, r)
        assert oracles.ours(sm) == [("fail", "body hash mismatch")], m
        assert oracles.authheaders_ar(sm)["dkim"] == "fail", m
    assert md[2]["sigs"][0][2:] == ("fail", "fail (body has been altered)"), md[2]
    assert oracles.ours(dkimpy_sig) == [("pass", "ok")]
    assert oracles.authheaders_ar(dkimpy_sig)["dkim"] == "pass"


# -------------------------------------------------------------------- D4

def test_d4_prepended_from(oracles, signed, keys):
    """D4: a From added above the signed one."""
    evil = b"From: Mallory <ceo@example.org>\r\n"
    ours_signed = evil + signed[("amp-rsa", "plain")]           # h=from:from:...
    perl_once = evil + signed[("perl-relaxed", "plain")]       # h=from:...
    perl_over = evil + sign(keys, "perl-relaxed", MESSAGES["plain"],
                            headers="from+:to:subject:date:message-id")
    assert b":from:from:" in perl_over.replace(b"\r\n", b"")  # h= sorted
    md = oracles.maildkim([ours_signed, perl_once, perl_over])
    # ours: fail always; over-signed, the signature itself no longer
    # verifies (checked first); signed once, it does and the second From
    # makes it fail
    assert oracles.ours(ours_signed) == [("fail", "bad signature")]
    assert oracles.ours(perl_over) == [("fail", "bad signature")]
    assert oracles.ours(perl_once) == [("fail", "multiple From")]
    for m in (ours_signed, perl_once, perl_over):
        ah = oracles.authheaders_ar(m)
        assert ah["dkim"] == "fail" and ah["dmarc"] == "fail", ah
    assert md[0]["sigs"][0][2:] == ("fail", "fail (message has been altered)"), md[0]
    assert md[2]["sigs"][0][2:] == ("fail", "fail (message has been altered)"), md[2]
    # recorded: Mail::DKIM passes the prepended From when From was signed
    # once (RFC 6376 §5.4.2 picks the bottom-most instance); DMARC's
    # multiple-From rule (RFC 7489 §6.6.1) is what must catch it
    assert md[1]["sigs"][0][2:] == ("pass", "pass"), md[1]
    # recorded: authheaders 0.15.2 with SPF pass and two From fields
    # raises (the SPF result's smtp.mailfrom is a bare domain, which its
    # DMARC code splits at '@')
    with pytest.raises(IndexError):
        oracles.authheaders_ar(perl_once, ip=SPF_PASS_IP)
    # a single From with SPF pass is fine: spf=pass, and DMARC passes
    ah = oracles.authheaders_ar(signed[("perl-relaxed", "plain")], ip=SPF_PASS_IP)
    assert ah == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}, ah


# -------------------------------------------------------------------- D8

def test_d8_key_lookup_failures(oracles, keys):
    """Key record missing (NXDOMAIN), SERVFAIL, no answer at all."""
    msgs = {sel: sign(keys, "amp-rsa", MESSAGES["plain"], selector=sel)
            for sel in ("gone", "broken", "slow")}
    md = oracles.maildkim(list(msgs.values()))
    assert oracles.ours(msgs["gone"]) == [("permerror", "no key record")]
    assert oracles.ours(msgs["broken"]) == [("temperror", "key lookup failed")]
    assert oracles.ours(msgs["slow"]) == [("temperror", "key lookup failed")]
    assert md[0]["sigs"][0][2:] == ("invalid", "invalid (public key: not available)")
    assert md[1]["sigs"][0][2:] == ("invalid", "invalid (public key: DNS error: SERVFAIL)")
    assert md[2]["sigs"][0][2:] == ("invalid",
                                    "invalid (public key: DNS error: query timed out)")
    assert oracles.authheaders_ar(msgs["gone"])["dkim"] == "fail"
    assert oracles.authheaders_ar(msgs["broken"])["dkim"] == "temperror"
    assert oracles.authheaders_ar(msgs["slow"])["dkim"] == "temperror"
    log = oracles.server.log()
    for sel in msgs:
        assert f"{sel}._domainkey.{DOMAIN}. TXT" in log, log
