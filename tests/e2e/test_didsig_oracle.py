"""The AMP-DID-Signature field (src/mime/didsig.c, PROTOCOL.md §12)
against an independent implementation written here from the spec: the
relaxed canonicalisations from RFC 6376 §3.4.2 and §3.4.4, the tag list of
§3.2, SHA-256 from hashlib and Ed25519 from python3-nacl; nothing of our C
code is called by the oracle.

The test tool tests/unit/didsig-tool ($DIDSIG_TOOL, or next to $AMP_BIN's
build: BUILD/tests/unit/didsig-tool) signs (`sign --seed --did --node --t`)
and verifies (`verify --pk --now`, printing "RESULT REASON").

 - the spec's test vector: the tool writes it byte for byte, the oracle
   verifies it;
 - what the tool signs (several messages, CRLF and bare LF) the oracle
   verifies, and stops verifying after a body byte, a signed header, a
   prepended From, an added over-signed field or a swapped d= changes;
 - what the oracle signs (chosen tag order, folding, unknown tags, its own
   h=) the tool verifies, and fails or refuses it after tampering, for a
   d= of another domain, a t= in the future, a wrong key, syntax errors;
   an unresolved node gives temperror, no field none.
"""
import base64
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import AMP_BIN

nacl_signing = pytest.importorskip("nacl.signing")
nacl_exc = pytest.importorskip("nacl.exceptions")

TOOL = os.environ.get("DIDSIG_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "unit" / "didsig-tool"))
ALICE = "did:aftersmtp:example.org:alice"
BOB = "did:aftersmtp:example.org:bob"
NODE = "did:aftersmtp:example.org:node"
T0 = 1767225600
SEED = bytes(range(32))
SIGNED = ["from", "to", "cc", "subject", "date", "message-id", "reply-to",
          "mime-version", "content-type"]

VECTOR_MSG = (b"From: Alice <alice@example.org>\r\n"
              b"To: Bob <bob@example.net>\r\n"
              b"Subject: DID signature test vector\r\n"
              b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
              b"Message-ID: <vector-1@example.org>\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\n"
              b"\r\n"
              b"Hello Bob.\r\n")
VECTOR_FIELD = (
    b"AMP-DID-Signature: v=1; a=ed25519-sha256; d=did:aftersmtp:example.org:alice;\r\n"
    b" n=did:aftersmtp:example.org:node; t=1767225600; h=from:from:to:to:cc:subject:\r\n"
    b" subject:date:date:message-id:message-id:reply-to:mime-version:mime-version:\r\n"
    b" content-type:content-type; bh=DD3L33E64/RV0CUJdfGTtPGKU7OPJpo/2LxOdf3k0RI=;\r\n"
    b" b=V3ramZJieja1ICOZ/KnkGtLDw+jcetAEsXZzjmwChImURAjuZ9+Xp0DCG4QdQP/SIAvl9cx9nwX\r\n"
    b" K8nXs3rgyDw==\r\n")

MESSAGES = [
    VECTOR_MSG,
    (b"From: alice@example.org\r\n"
     b"To:  bob@example.net ,\r\n\tcarol@example.net\r\n"
     b"To: dave@example.net\r\n"
     b"Subject:   spaced    out  \r\n"
     b"X-Unsigned: whatever\r\n"
     b"\r\n"
     b"  indented  \t line  \r\n"
     b"\r\n"
     b"tail\r\n\r\n\r\n"),
    (b"From: alice@example.org\r\n"
     b"Subject: empty body\r\n"
     b"\r\n"),
    (b"From: alice@example.org\n"
     b"Cc: x@example.net\n"
     b"Subject: bare LF\n"
     b"\n"
     b"no final line end"),
]


# ---- the oracle, from the spec ----

WSP = re.compile(rb"[ \t]+")


def split_message(msg):
    """[(name, raw_field_without_final_line_end)], body."""
    fields, pos = [], 0
    while pos < len(msg):
        nl = msg.find(b"\n", pos)
        line_end = len(msg) if nl < 0 else nl + 1
        line = msg[pos:line_end]
        bare = line.rstrip(b"\n").rstrip(b"\r")
        if bare == b"":
            pos = line_end
            break
        if line[:1] in (b" ", b"\t"):
            assert fields, "continuation without a field"
            fields[-1][1] += line
        else:
            assert b":" in bare, "not a field"
            fields.append([bare.split(b":", 1)[0], line])
        pos = line_end
    body = msg[pos:]
    out = []
    for name, raw in fields:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        out.append((name.strip().lower(), raw))
    return out, body


def canon_header(raw):
    """RFC 6376 §3.4.2, without the CRLF."""
    name, value = raw.split(b":", 1)
    value = re.sub(rb"\r?\n", b"", value)
    value = WSP.sub(b" ", value).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value


def canon_body(body):
    """RFC 6376 §3.4.4."""
    lines = body.split(b"\n")
    for i in range(len(lines) - 1):
        if lines[i].endswith(b"\r"):
            lines[i] = lines[i][:-1]
    lines = [WSP.sub(b" ", l).rstrip(b" ") for l in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(l + b"\r\n" for l in lines)


def parse_tags(value):
    """RFC 6376 §3.2: {name: value}; raises ValueError."""
    tags = {}
    specs = value.split(b";")
    if specs and specs[-1].strip(b" \t\r\n") == b"":
        specs.pop()
    for spec in specs:
        if b"=" not in spec:
            raise ValueError("no =")
        n, v = spec.split(b"=", 1)
        n = n.strip(b" \t\r\n").decode()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n):
            raise ValueError("bad tag name")
        if n in tags:
            raise ValueError("duplicate tag")
        tags[n] = v.strip(b" \t\r\n")
    return tags


def without_b(raw):
    """The field with b='s value removed (blanks after it kept)."""
    name, value = raw.split(b":", 1)
    specs = value.split(b";")
    for i, spec in enumerate(specs):
        n, eq, v = spec.partition(b"=")
        if eq and n.strip(b" \t\r\n") == b"b":
            tail = v[len(v.rstrip(b" \t\r\n")):]
            specs[i] = n + b"=" + tail
    return name + b":" + b";".join(specs)


def signed_hash(fields, hnames, sigraw):
    data = b"AMPv1-didsig\x00"
    used = {}
    for h in hnames:
        inst = [raw for name, raw in fields if name == h]
        k = used.get(h, 0)
        used[h] = k + 1
        if k < len(inst):
            data += canon_header(inst[len(inst) - 1 - k]) + b"\r\n"
    data += canon_header(without_b(sigraw))
    return hashlib.sha256(data).digest()


DID_RE = re.compile(
    r"did:aftersmtp:"
    r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)"
    r":([a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?)")


def did_domain(s):
    m = DID_RE.fullmatch(s)
    if not m or len(m.group(1)) > 253 or ".." in m.group(2):
        return None
    return m.group(1)


def oracle_verify(msg, pk, now=T0):
    """(result, reason) of the first AMP-DID-Signature field."""
    fields, body = split_message(msg)
    sigs = [raw for name, raw in fields if name == b"amp-did-signature"]
    if not sigs:
        return "none", ""
    raw = sigs[0]
    try:
        tags = parse_tags(raw.split(b":", 1)[1])
    except ValueError as e:
        return "permerror", str(e)
    for t in ("v", "a", "d", "n", "t", "h", "bh", "b"):
        if t not in tags:
            return "permerror", f"no {t}="
    if tags["v"] != b"1" or tags["a"] != b"ed25519-sha256":
        return "permerror", "v or a"
    d, n = tags["d"].decode(), tags["n"].decode()
    if did_domain(d) is None or did_domain(n) is None:
        return "permerror", "DID"
    if not re.fullmatch(rb"[0-9]{1,18}", tags["t"]):
        return "permerror", "t"
    hnames = [x.strip(b" \t\r\n").lower() for x in tags["h"].split(b":")]
    if b"from" not in hnames or b"" in hnames:
        return "permerror", "h"
    try:
        bh = base64.b64decode(WSP.sub(b"", re.sub(rb"\r?\n", b"",
                                                  tags["bh"])),
                              validate=True)
        b = base64.b64decode(WSP.sub(b"", re.sub(rb"\r?\n", b"",
                                                 tags["b"])),
                             validate=True)
    except ValueError:
        return "permerror", "base64"
    if len(bh) != 32 or len(b) != 64:
        return "permerror", "base64 length"
    if did_domain(d) != did_domain(n):
        return "fail", "domain"
    if hashlib.sha256(canon_body(body)).digest() != bh:
        return "fail", "body hash mismatch"
    digest = signed_hash(fields, hnames, raw)
    try:
        nacl_signing.VerifyKey(pk).verify(digest, b)
    except nacl_exc.BadSignatureError:
        return "fail", "bad signature"
    if sum(1 for name, _ in fields if name == b"from") != 1:
        return "fail", "From count"
    if now and int(tags["t"]) > now + 300:
        return "fail", "future"
    return "pass", "ok"


def oracle_sign(msg, seed, tags, hnames):
    """A field with the given tag text (without b=), signed over hnames."""
    fields, _ = split_message(msg)
    text = b"AMP-DID-Signature: " + tags + b" b="
    digest = signed_hash(fields, hnames, text)
    sig = nacl_signing.SigningKey(seed).sign(digest).signature
    return text + base64.b64encode(sig) + b"\r\n" + msg


def body_hash(msg):
    _, body = split_message(msg)
    return base64.b64encode(hashlib.sha256(canon_body(body)).digest())


# ---- driving the tool ----

def tool(args, msg):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"didsig-tool not found at {TOOL}; build first")
    p = subprocess.run([TOOL, *args], input=msg, capture_output=True,
                       timeout=30)
    assert p.returncode in (0, 1), p.stderr
    return p


def tool_sign(msg, seed=SEED, did=ALICE, node=NODE, t=T0):
    p = tool(["sign", "--seed", seed.hex(), "--did", did, "--node", node,
              "--t", str(t)], msg)
    assert p.returncode == 0, p.stdout
    assert p.stdout.endswith(msg)
    return p.stdout


def tool_verify(msg, pk=None, now=T0):
    args = ["verify", "--now", str(now)]
    if pk is not None:
        args += ["--pk", pk.hex()]
    p = tool(args, msg)
    assert p.returncode == 0, p.stdout
    result, _, reason = p.stdout.decode().rstrip("\n").partition(" ")
    return result, reason


@pytest.fixture(scope="module")
def keys():
    sk = nacl_signing.SigningKey(SEED)
    seed2 = os.urandom(32)
    other = nacl_signing.SigningKey(seed2)
    return bytes(sk.verify_key), bytes(other.verify_key), seed2


def test_vector(keys):
    pk, _, _ = keys
    assert tool_sign(VECTOR_MSG) == VECTOR_FIELD + VECTOR_MSG
    assert oracle_verify(VECTOR_FIELD + VECTOR_MSG, pk) == ("pass", "ok")
    for line in VECTOR_FIELD.split(b"\r\n"):
        assert len(line) <= 78


@pytest.mark.parametrize("i", range(len(MESSAGES)))
def test_tool_signs_oracle_verifies(keys, i):
    pk, pk2, _ = keys
    msg = MESSAGES[i]
    signed = tool_sign(msg)
    assert oracle_verify(signed, pk) == ("pass", "ok")
    assert tool_verify(signed, pk) == ("pass", "ok")
    assert oracle_verify(signed, pk2) == ("fail", "bad signature")
    # tampering
    field_end = len(signed) - len(msg)
    fields, body = split_message(msg)
    if body.strip():
        pos = len(signed) - len(body) + body.index(body.strip()[:1])
        t = signed[:pos] + b"X" + signed[pos + 1:]
        assert oracle_verify(t, pk)[0] == "fail"
        assert tool_verify(t, pk)[0] == "fail"
    t = signed[:field_end] + signed[field_end:].replace(
        b"alice@example.org", b"alice@example.com", 1)
    assert oracle_verify(t, pk) == ("fail", "bad signature")
    assert tool_verify(t, pk) == ("fail", "bad signature")
    t = b"From: mallory@example.org\r\n" + signed
    assert oracle_verify(t, pk)[0] == "fail"
    assert tool_verify(t, pk)[0] == "fail"
    eol = b"\n" if b"\r\n" not in msg else b"\r\n"
    for added in (b"Cc: eve@example.net", b"Reply-To: eve@example.net",
                  b"Subject: other"):
        t = signed[:field_end] + added + eol + signed[field_end:]
        assert oracle_verify(t, pk) == ("fail", "bad signature")
        assert tool_verify(t, pk) == ("fail", "bad signature")
    t = signed.replace(b"d=" + ALICE.encode(), b"d=" + BOB.encode(), 1)
    assert oracle_verify(t, pk) == ("fail", "bad signature")
    assert tool_verify(t, pk) == ("fail", "bad signature")


def std_tags(msg, d=ALICE, n=NODE, t=T0, h=b"from:from:to:to:subject:subject"):
    return (b"v=1; a=ed25519-sha256; d=" + d.encode() + b"; n=" +
            n.encode() + b"; t=" + str(t).encode() + b";\r\n h=" + h +
            b"; bh=" + body_hash(msg) + b";")


def hlist(h):
    return [x.strip() for x in h.split(b":")]


@pytest.mark.parametrize("i", range(len(MESSAGES)))
def test_oracle_signs_tool_verifies(keys, i):
    pk, pk2, seed2 = keys
    msg = MESSAGES[i]
    h = b"from:from:to:to:subject:subject:cc"
    signed = oracle_sign(msg, SEED, std_tags(msg, h=h), hlist(h))
    assert oracle_verify(signed, pk) == ("pass", "ok")
    assert tool_verify(signed, pk) == ("pass", "ok")
    assert tool_verify(signed, pk2) == ("fail", "bad signature")
    assert tool_verify(signed, None) == ("temperror",
                                         "node DID not resolved")
    # another tag order, unknown tags, folding inside bh= and around h=
    bh = body_hash(msg)
    tags = (b"zz=unknown; h = from : from:\r\n\tsubject ; t=5;\r\n bh=" +
            bh[:10] + b"\r\n " + bh[10:] + b"; n=" + NODE.encode() +
            b"; d=" + ALICE.encode() + b"; a=ed25519-sha256; v=1;")
    signed = oracle_sign(msg, SEED, tags, [b"from", b"from", b"subject"])
    assert oracle_verify(signed, pk) == ("pass", "ok")
    assert tool_verify(signed, pk) == ("pass", "ok")
    # the same signed as another node key: only that key verifies it
    o = oracle_sign(msg, seed2, std_tags(msg), hlist(
        b"from:from:to:to:subject:subject"))
    assert tool_verify(o, pk2) == ("pass", "ok")
    assert tool_verify(o, pk) == ("fail", "bad signature")


def test_oracle_rules(keys):
    pk, _, _ = keys
    msg = MESSAGES[0]
    h = hlist(b"from:from:to:to:subject:subject")
    # d= of another domain, correctly signed
    s = oracle_sign(msg, SEED, std_tags(
        msg, d="did:aftersmtp:example.net:alice"), h)
    assert oracle_verify(s, pk)[0] == "fail"
    assert tool_verify(s, pk) == ("fail",
                                  "d= is not of the signing node's domain")
    # t= in the future: 300 s is fine, 301 is not; now 0 does not check
    s = oracle_sign(msg, SEED, std_tags(msg, t=T0 + 300), h)
    assert tool_verify(s, pk) == ("pass", "ok")
    s = oracle_sign(msg, SEED, std_tags(msg, t=T0 + 301), h)
    assert oracle_verify(s, pk) == ("fail", "future")
    assert tool_verify(s, pk) == ("fail", "t= is in the future")
    assert tool_verify(s, pk, now=0) == ("pass", "ok")
    # h=from without over-signing, then a From prepended: multiple From
    s = oracle_sign(msg, SEED, std_tags(msg, h=b"from:subject"),
                    [b"from", b"subject"])
    assert tool_verify(s, pk) == ("pass", "ok")
    s2 = b"From: mallory@example.org\r\n" + s
    assert oracle_verify(s2, pk) == ("fail", "From count")
    assert tool_verify(s2, pk) == ("fail", "multiple From")
    # syntax: permerror in both
    bad = [
        std_tags(msg) + b" v=1;",                       # duplicate tag
        std_tags(msg).replace(b"v=1; ", b""),          # no v=
        std_tags(msg).replace(b"v=1", b"v=2"),
        std_tags(msg).replace(b"ed25519-sha256", b"rsa-sha256"),
        std_tags(msg).replace(b"d=did:aftersmtp:example.org",
                              b"d=did:aftersmtp:Example.org"),
        std_tags(msg).replace(b"t=" + str(T0).encode(), b"t=x"),
        std_tags(msg).replace(b"h=from:from:", b"h="),  # no from in h=
        std_tags(msg).replace(b"bh=", b"bh=!"),
    ]
    for tags in bad:
        s = oracle_sign(msg, SEED, tags, h)
        assert oracle_verify(s, pk)[0] == "permerror", tags
        assert tool_verify(s, pk)[0] == "permerror", tags
    s = tool_sign(msg)
    s2 = re.sub(rb" b=[A-Za-z0-9+/]", b" b=!", s, count=1)
    assert oracle_verify(s2, pk)[0] == "permerror"
    assert tool_verify(s2, pk) == ("permerror", "bad b= value")
    # no field: none
    assert tool_verify(msg, pk) == ("none", "no AMP-DID-Signature field")
    assert oracle_verify(msg, pk) == ("none", "")
