"""DKIM signatures (src/mime/dkim-sign.c) checked by an independent
verifier: python3-dkim (dkimpy).

The test tool tests/tools/dkim-sign-tool (built next to amp, not
installed) generates keys with dkim_keygen and signs messages with
dkim_sign.  For each algorithm (rsa-sha256, ed25519-sha256) it signs the
first 50 messages of the shared ham corpus (/work/shared/corpus/ham: LF
line ends, turned into CRLF by the tool; the mbox "From " line dropped) and
dkim.verify() must accept every one, with a DNS function that answers our
TXT record for SELECTOR._domainkey.DOMAIN.  Then one byte changed in a
signed header, in the body, or a second From added must each make verify
fail, and a Received field added on top (not signed) must not.
"""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import AMP_BIN

dkim = pytest.importorskip("dkim")

TOOL = os.environ.get("DKIM_SIGN_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "tools" / "dkim-sign-tool"))
CORPUS = Path(os.environ.get("AMP_TEST_CORPUS", "/work/shared/corpus")) / "ham"
DOMAIN = "example.org"
SELECTOR = "s2026"
N = 50


def corpus(n):
    files = sorted(CORPUS.glob("*.eml"))[:n]
    assert len(files) == n, f"need {n} messages in {CORPUS}"
    out = []
    for f in files:
        raw = f.read_bytes()
        if raw.startswith(b"From "):  # mbox separator, not a header field
            raw = raw.split(b"\n", 1)[1]
        out.append((f.name, raw))
    return out


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request, tmp_path_factory):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"dkim-sign-tool not found at {TOOL}; build first")
    path = tmp_path_factory.mktemp("dkim") / f"{request.param}.pem"
    p = subprocess.run([TOOL, "keygen", request.param, str(path)],
                       capture_output=True, check=True)
    txt = p.stdout.decode().strip()
    assert txt.startswith(f"v=DKIM1; k={request.param}; p=")
    assert (path.stat().st_mode & 0o777) == 0o600
    return request.param, path, txt


def sign(path, msg, t=1767225600):
    p = subprocess.run([TOOL, "sign", str(path), DOMAIN, SELECTOR, str(t)],
                       input=msg, capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def verify(signed, txt):
    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        if name.rstrip(".") == f"{SELECTOR}._domainkey.{DOMAIN}":
            return txt.encode()
        return None
    return dkim.verify(signed, dnsfunc=dnsfunc)


def test_corpus_verifies(key):
    alg, path, txt = key
    failed = []
    for name, raw in corpus(N):
        signed = sign(path, raw)
        assert signed.startswith(b"DKIM-Signature: v=1; a=" +
                                 (b"rsa-sha256;" if alg == "rsa"
                                  else b"ed25519-sha256;"))
        lines = signed.split(b"\r\n")
        sig = [lines[0]]  # our field comes first, then its continuations
        for line in lines[1:]:
            if line[:1] != b" ":
                break
            sig.append(line)
        assert all(len(line) <= 78 for line in sig), sig
        if not verify(signed, txt):
            failed.append(name)
    assert failed == [], f"{alg}: {len(failed)} of {N} failed: {failed[:5]}"


def tamper_cases(signed):
    """(what, message) pairs that must not verify."""
    head, body = signed.split(b"\r\n\r\n", 1)
    cases = []
    i = head.find(b"\r\nSubject:")
    if i >= 0:
        j = i + len(b"\r\nSubject: ")
        c = head[j:j + 1]
        cases.append(("subject byte", head[:j] + (b"X" if c != b"X" else b"Y")
                      + head[j + 1:] + b"\r\n\r\n" + body))
    k = body.find(b"a")
    assert k >= 0
    cases.append(("body byte", head + b"\r\n\r\n" + body[:k] + b"b" +
                  body[k + 1:]))
    cases.append(("added From", head + b"\r\nFrom: evil@example.net"
                  + b"\r\n\r\n" + body))
    cases.append(("body appended", head + b"\r\n\r\n" + body + b"more\r\n"))
    return cases


def test_tamper_fails(key):
    alg, path, txt = key
    checked = 0
    for name, raw in corpus(5):
        signed = sign(path, raw)
        assert verify(signed, txt), name
        # a field added on top is not signed: still valid
        assert verify(b"Received: from x by y\r\n" + signed, txt), name
        for what, bad in tamper_cases(signed):
            assert not verify(bad, txt), f"{alg} {name}: {what} verified"
            checked += 1
    assert checked >= 15


def test_edge_messages(key):
    alg, path, txt = key
    msgs = [
        b"From: a@example.org\r\nTo: b@example.net\r\n\r\n",   # empty body
        b"From: a@example.org\r\n\r\nno final line end",
        b"From: a@example.org\r\nSubject: one\r\nSubject: two\r\n"
        b"To: b@example.net\r\n\r\nrepeated\r\n\r\n\r\n",
        b"From: a@example.org\r\nSubject: " + b"folded word " * 40 +
        b"\r\n\t continued\r\n\r\n  spaced \t body \r\n",
    ]
    for m in msgs:
        assert verify(sign(path, m), txt), m[:60]


def test_refused(key):
    alg, path, txt = key
    p = subprocess.run([TOOL, "sign", str(path), DOMAIN, SELECTOR, "0"],
                       input=b"To: b@example.net\r\n\r\nx\r\n",
                       capture_output=True)
    assert p.returncode == 1
    assert b"no From" in p.stderr


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_amp_dkim_keygen(alg, tmp_path):
    """`amp dkim keygen`: a 0600 key file and a zone-file TXT line whose
    strings (at most 255 bytes each), joined, verify our signatures."""
    import re
    out = tmp_path / "k.pem"
    p = subprocess.run([AMP_BIN, "dkim", "keygen", "--domain", DOMAIN,
                        "--selector", SELECTOR, "--alg", alg,
                        "--out", str(out)], capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    assert (out.stat().st_mode & 0o077) == 0
    line = p.stdout.decode().strip()
    prefix = f"{SELECTOR}._domainkey.{DOMAIN}. IN TXT "
    assert line.startswith(prefix), line
    strings = re.findall(r'"([^"]*)"', line[len(prefix):])
    assert strings and all(len(s) <= 255 for s in strings)
    txt = "".join(strings)
    assert txt.startswith(f"v=DKIM1; k={alg}; p=")
    name, raw = corpus(1)[0]
    assert verify(sign(out, raw), txt), name
    # never replaces a key; bad names and --alg are usage errors
    again = subprocess.run([AMP_BIN, "dkim", "keygen", "--domain", DOMAIN,
                            "--selector", SELECTOR, "--out", str(out)],
                           capture_output=True)
    assert again.returncode == 1 and b"already exists" in again.stderr
    for bad in (["--domain", "a b"], ["--selector", "x;y"],
                ["--alg", "dsa"]):
        args = {"--domain": DOMAIN, "--selector": SELECTOR}
        args[bad[0]] = bad[1]
        flat = [x for kv in args.items() for x in kv]
        r = subprocess.run([AMP_BIN, "dkim", "keygen", *flat, "--out",
                            str(tmp_path / "n.pem")], capture_output=True)
        assert r.returncode == 2, bad
