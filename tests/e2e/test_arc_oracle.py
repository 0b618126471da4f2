"""Our ARC (src/mime/arc.c) against independent implementations
(issue 7; TESTING.md D9, D2): python3-dkim (dkimpy) `arc_sign` /
`arc_verify`, and Mail::DKIM::ARC::Verifier (libmail-dkim-perl, a few
lines of Perl below, after /work/shared/oracles/perl_arc_verify.pl) with
its key records served by the dns_server fixture (tests/e2e/
dnsfixture.py).  A missing dkimpy skips; a missing Mail::DKIM fails
(scripts/bootstrap.sh installs it).

Our side is the test tool tests/unit/arc-tool ($ARC_TOOL, or next to
$AMP_BIN's build): `arc-tool verify --key NAME=TXT ...` and `arc-tool seal
--key-file PEM ...`.  Keys: two RSA 2048 keys made with openssl (ARC is
rsa-sha256 only in dkimpy and Mail::DKIM; our ed25519 seals are covered by
tests/unit/test-arc.c).

What is shown:
  - dkimpy chains of 1 and 2 sets validate pass in ours, and fail after a
    body or a signed header is changed;
  - our seal (i=1 on a plain message, i=2 after a dkimpy i=1) passes
    dkimpy's arc_verify (cv=pass), and Mail::DKIM's;
  - a chain dkimpy i=1, ours i=2, dkimpy i=3 passes in both dkimpy and
    ours (and Mail::DKIM);
  - our cv=fail seal after a tamper: dkimpy and ours both say fail;
  - Mail::DKIM says pass for our i=1, our i=2 after dkimpy's i=1, and
    dkimpy's i=3 after those, and fail after a tamper.
"""
import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import dns_server  # noqa: F401 - the fixture

dkim = pytest.importorskip("dkim")

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("ARC_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "unit" / "arc-tool"))
# Mail::DKIM's ARC verifier on one file, key lookups through Net::DNS to
# 127.0.0.1:PORT only; prints "result (detail)".
PERL_ARC = r"""
use strict; use warnings;
use Mail::DKIM::ARC::Verifier; use Net::DNS::Resolver;
my ($file, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1,
    udp_timeout => 2, retry => 1, searchlist => [], defnames => 0,
    dnsrch => 0));
open my $fh, '<', $file or die "$file: $!"; local $/; my $m = <$fh>;
my $v = Mail::DKIM::ARC::Verifier->new(); $v->PRINT($m); $v->CLOSE;
print $v->result, " (", ($v->result_detail // ''), ")\n";
"""
T = "1763900000"

MSG = (b"Authentication-Results: mx1.example.org; spf=pass "
       b"smtp.mailfrom=alice@example.org\r\n"
       b"From: Alice <alice@example.org>\r\n"
       b"To: Bob <bob@example.net>, carol@example.com\r\n"
       b"Subject: ARC  oracle\r\n   trial\r\n"
       b"Date: Sun, 23 Nov 2025 12:00:00 +0000\r\n"
       b"Message-ID: <arc-oracle-1@example.org>\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"\r\n"
       b"Hello Bob.\r\n"
       b"  indented \t line\r\n"
       b"\r\n\r\n")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"arc-tool not found at {TOOL}; build first")
    d = tmp_path_factory.mktemp("arckeys")
    out = {}
    for sel, dom in (("dk1", "example.org"), ("amp", "example.net"),
                     ("dk3", "example.com")):
        pem = d / f"{sel}.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(pem), "2048"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
        out[sel] = {"pem": pem, "domain": dom, "txt": txt,
                    "query": f"{sel}._domainkey.{dom}"}
    return out


def dnsfunc(keys):
    zone = {(k["query"] + ".").encode(): k["txt"].encode()
            for k in keys.values()}
    return lambda name, timeout=5: zone.get(name)


def ours(keys, msg):
    args = [TOOL, "verify"]
    for k in keys.values():
        args += ["--key", f"{k['query']}={k['txt']}"]
    p = subprocess.run(args, input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    first = p.stdout.decode().splitlines()[0]
    cv = first.split(" ", 1)[0].split("=", 1)[1]
    return cv, first


def dkimpy_verify(keys, msg):
    cv, _, why = dkim.arc_verify(msg, dnsfunc=dnsfunc(keys))
    return cv, why


def dkimpy_seal(keys, sel, msg, srv_id):
    k = keys[sel]
    fields = dkim.arc_sign(msg, sel.encode(), k["domain"].encode(),
                           k["pem"].read_bytes(), srv_id.encode(),
                           timestamp=T)
    assert fields, "dkimpy made no ARC set"
    return b"".join(fields) + msg


def our_seal(keys, sel, msg, cv, authres):
    k = keys[sel]
    p = subprocess.run([TOOL, "seal", "--key-file", str(k["pem"]),
                        "--domain", k["domain"], "--selector", sel,
                        "--cv", cv, "--authres", authres, "--t", T],
                       input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr)
    return p.stdout


def with_ar(msg, authserv, results):
    return (f"Authentication-Results: {authserv}; {results}\r\n".encode()
            + msg)


def test_dkimpy_chains_pass_in_ours(keys):
    m1 = dkimpy_seal(keys, "dk1", MSG, "mx1.example.org")
    assert dkimpy_verify(keys, m1)[0] == b"pass"
    cv, line = ours(keys, m1)
    assert cv == "pass" and "instances=1" in line, line
    m2 = dkimpy_seal(keys, "dk3", with_ar(m1, "mx3.example.com", "arc=pass"),
                     "mx3.example.com")
    assert dkimpy_verify(keys, m2)[0] == b"pass"
    cv, line = ours(keys, m2)
    assert cv == "pass" and "instances=2" in line, line
    # tamper after the last seal: body, then a signed header
    bad = m2.replace(b"Hello Bob.", b"Hello Bob!")
    assert dkimpy_verify(keys, bad)[0] == b"fail"
    cv, line = ours(keys, bad)
    assert cv == "fail" and "body hash mismatch" in line, line
    bad = m2.replace(b"Subject: ARC  oracle", b"Subject: ARC  Oracle")
    assert dkimpy_verify(keys, bad)[0] == b"fail"
    cv, line = ours(keys, bad)
    assert cv == "fail" and "AMS of instance 2 does not verify" in line, line
    # the first set dropped: both say fail
    lines = m2.split(b"\r\n")
    out, skip = [], False
    for ln in lines:
        if ln[:1] in (b" ", b"\t"):
            if not skip:
                out.append(ln)
            continue
        skip = ln.lower().startswith((b"arc-seal: i=1", b"arc-message-"
                                      b"signature: i=1", b"arc-authentication"
                                      b"-results: i=1"))
        if not skip:
            out.append(ln)
    drop = b"\r\n".join(out)
    assert dkimpy_verify(keys, drop)[0] == b"fail"
    cv, line = ours(keys, drop)
    assert cv == "fail" and "instance 1 missing" in line, line


def test_our_seal_passes_dkimpy(keys):
    m1 = our_seal(keys, "amp", MSG, "none",
                  "mx2.example.net; spf=pass smtp.mailfrom=alice@example.org")
    assert m1.startswith(b"ARC-Seal: i=1;")
    assert dkimpy_verify(keys, m1) == (b"pass", "success")
    assert ours(keys, m1)[0] == "pass"
    # after a dkimpy i=1
    d1 = dkimpy_seal(keys, "dk1", MSG, "mx1.example.org")
    cv, _ = ours(keys, d1)
    m2 = our_seal(keys, "amp", d1, cv, "mx2.example.net; arc=pass")
    assert dkimpy_verify(keys, m2) == (b"pass", "success")
    assert ours(keys, m2)[0] == "pass"
    assert m2.endswith(d1)
    for line in m2[:len(m2) - len(d1)].split(b"\r\n"):
        assert len(line) <= 78, line  # our three fields


def test_mixed_chain(keys):
    d1 = dkimpy_seal(keys, "dk1", MSG, "mx1.example.org")
    m2 = our_seal(keys, "amp", d1, ours(keys, d1)[0],
                  "mx2.example.net; arc=pass")
    m3 = dkimpy_seal(keys, "dk3", with_ar(m2, "mx3.example.com", "arc=pass"),
                     "mx3.example.com")
    assert dkimpy_verify(keys, m3) == (b"pass", "success")
    cv, line = ours(keys, m3)
    assert cv == "pass" and "instances=3" in line, line
    # and we seal a fourth
    m4 = our_seal(keys, "amp", m3, "pass", "mx4.example.net; arc=pass")
    assert dkimpy_verify(keys, m4) == (b"pass", "success")
    assert ours(keys, m4)[0] == "pass"


def test_fail_seal_after_tamper(keys):
    d1 = dkimpy_seal(keys, "dk1", MSG, "mx1.example.org")
    bad = d1.replace(b"Hello Bob.", b"Hello Bog.")
    cv, line = ours(keys, bad)
    assert cv == "fail", line
    p = subprocess.run([TOOL, "seal", "--key-file", str(keys["amp"]["pem"]),
                        "--domain", "example.net", "--selector", "amp",
                        "--cv", "pass", "--authres", "mx2.example.net; "
                        "arc=fail", "--t", T], input=bad,
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"seal with cv=fail" in p.stderr
    m2 = our_seal(keys, "amp", bad, "fail", "mx2.example.net; arc=fail")
    assert dkimpy_verify(keys, m2)[0] in (b"fail", None)
    cv, line = ours(keys, m2)
    assert cv == "fail" and "says cv=fail" in line, line


def _txt_zone(value):
    parts = [value[i:i + 200] for i in range(0, len(value), 200)]
    return " ".join(f'"{p}"' for p in parts)


def test_maildkim_verifies_our_seals(keys, dns_server):  # noqa: F811
    perl = shutil.which("perl")
    p = subprocess.run([perl or "perl", "-MMail::DKIM::ARC::Verifier",
                        "-MNet::DNS::Resolver", "-e1"], capture_output=True)
    if perl is None or p.returncode != 0:
        pytest.fail("Mail::DKIM missing (scripts/bootstrap.sh installs "
                    "libmail-dkim-perl libnet-dns-perl)")
    zone = "\n".join(f"{k['query']}. 300 IN TXT {_txt_zone(k['txt'])}"
                     for k in keys.values())
    srv = dns_server(zone + "\n")
    d1 = dkimpy_seal(keys, "dk1", MSG, "mx1.example.org")
    cases = {
        "ours-i1": (our_seal(keys, "amp", MSG, "none",
                             "mx2.example.net; spf=pass"), "pass"),
        "ours-i2": (our_seal(keys, "amp", d1, "pass",
                             "mx2.example.net; arc=pass"), "pass"),
    }
    cases["dkimpy-ours-dkimpy"] = (dkimpy_seal(
        keys, "dk3", with_ar(cases["ours-i2"][0], "mx3.example.com",
                             "arc=pass"), "mx3.example.com"), "pass")
    cases["ours-i2-tampered"] = (
        cases["ours-i2"][0].replace(b"Hello Bob.", b"Hello Bog."), "fail")
    for name, (msg, want) in cases.items():
        f = srv.dir / f"{name}.eml"
        f.write_bytes(msg)
        r = subprocess.run([perl, "-e", PERL_ARC, str(f), str(srv.port)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == want, (name, r.stdout)
