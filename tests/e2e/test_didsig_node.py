"""The AMP-DID-Signature in real nodes (issue 7, "authenticated routing";
PROTOCOL.md §12): two aftersmtpd nodes, alpha.example.net and
beta.example.net, peered over AMP (routes with pinned keys, so beta can
look alpha's gateway DID up at alpha), both with an SMTP listener, and a
loopback DNS server (dnsfixture.py) as their dns_forwarder.  alpha's
transport_maps sends mail for beta.example.net to beta's SMTP port, as
if beta were any MX, and mail for legacy.example.org to a plain SMTP
receiver (smtpfake.py).

  - alice@alpha sends (`amp send`, through alpha's gateway) to
    bob@beta.example.net: the copy bob fetches from beta carries
    `amp-did=pass header.d="did:aftersmtp:alpha.example.net:alice"` in
    beta's Authentication-Results (read with python3-authres), and beta
    logs the result;
  - the copy the plain receiver captured verifies with the independent
    verifier of test_didsig_oracle.py under alpha's gateway key (from
    `amp lookup`), not under another key, and has exactly one field, on
    top, above nothing else of alpha's;
  - that copy sent on to beta with one body byte changed (a relay that
    alters the message): amp-did=fail;
  - signatures naming a DID of a domain the signer does not serve: d= of
    beta with n= alpha's gateway (the domains differ), n= beta's gateway
    with a key that is not beta's, n= a user DID instead of a node's:
    fail;
  - a signature whose node (gamma.example.net) cannot be reached: the
    message is accepted with amp-did=temperror, never pass;
  - with didsig_verify = no nothing is recorded; with didsig_sign = no on
    alpha its mail leaves without the field;
  - the driver alone (tests/tools/mailauth-tool, keys on its command
    line): a known key passes, a node that does not exist fails, one that
    cannot be resolved, or answers after the deadline, is temperror.
"""
import json
import re
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import DnsServer
from nodes import Node, User, free_port, make_base, remove_base, split_trace, stop_all
from smtpfake import FakeSMTP
import test_didsig_oracle as oracle

authres = pytest.importorskip("authres")
nacl_signing = pytest.importorskip("nacl.signing")

ALPHA, BETA = "alpha.example.net", "beta.example.net"
ALICE = f"did:aftersmtp:{ALPHA}:alice"
ALPHA_GW = f"did:aftersmtp:{ALPHA}:gateway"
BETA_GW = f"did:aftersmtp:{BETA}:gateway"
GAMMA_GW = "did:aftersmtp:gamma.example.net:gateway"

ZONE = """$ORIGIN example.net.
$TTL 300
@       IN SOA ns.example.net. h.example.net. 1 3600 600 86400 300
alpha   IN TXT "v=spf1 ip4:127.0.0.1 -all"
"""


def mail(to, subject):
    return (f"From: Alice <{ALICE}>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: {subject}\r\n"
            "\r\n"
            f"Hello, this is {subject}.\r\n"
            ".a line with a leading dot\r\n").encode()


class World:
    pass


@pytest.fixture(scope="module")
def world():
    w = World()
    w.base = make_base()
    w.nodes = []
    w.tmp = Path(tempfile.mkdtemp(prefix="amp-didsig-dns-"))
    w.dns = DnsServer(ZONE, w.tmp)
    w.legacy = FakeSMTP("127.0.0.1", free_port())
    try:
        common = {"smtp_listen": "127.0.0.1", "dns_forwarder": w.dns.forwarder,
                  "smtp_out_retry_min": "1s", "smtp_out_retry_max": "1s",
                  "smtp_out_connect_timeout": "3s"}
        w.alpha = Node(w.base, ALPHA, smtp_port=free_port(),
                       smtp_hostname="mx." + ALPHA, **common)
        w.beta = Node(w.base, BETA, smtp_port=free_port(),
                      smtp_hostname="mx." + BETA, **common)
        w.nodes += [w.alpha, w.beta]
        w.alpha.route_to(w.beta)
        w.beta.route_to(w.alpha)
        # gamma's node is down: a route to a port nobody listens on
        with w.beta.map.open("a") as f:
            f.write(f"gamma.example.net 127.0.0.1:{free_port()} tls\n")
        tmap = w.alpha.dir / "transport"
        tmap.write_text(f"{BETA} smtp:[127.0.0.1]:{w.beta.conf['smtp_port']}\n"
                        f"legacy.example.org smtp:[127.0.0.1]:{w.legacy.port}\n")
        w.alpha.conf["transport_maps"] = str(tmap)
        w.alpha.write_conf()
        for n in w.nodes:
            n.start()
            n.smtp_port = int(n.conf["smtp_port"])
        w.alice = User(w.base, "alice", w.alpha)
        w.alice.register()
        w.bob = User(w.base, "bob", w.beta)
        w.bob.register()
        w.maildir = 0
        yield w
    finally:
        try:
            stop_all(w.nodes)
        finally:
            w.legacy.stop()
            w.dns.stop()
            shutil.rmtree(w.tmp, ignore_errors=True)
            remove_base(w.base)


def fetch_one(w):
    """The one new message bob has on beta."""
    w.maildir += 1
    md = w.bob.home / f"Maildir{w.maildir}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        w.bob.run("fetch", "--maildir", str(md), "--ack", "--wait", "5")
        got = sorted((md / "new").glob("*")) if (md / "new").exists() else []
        if got:
            assert len(got) == 1, got
            return got[0].read_bytes()
    raise AssertionError("nothing arrived for bob on beta:\n" +
                         w.beta.log_text()[-3000:])


def results(stored):
    """beta's Authentication-Results parsed by python3-authres:
    {method: (result, {ptype.property: value})}."""
    _, field, _ = split_trace(stored)
    parsed = authres.AuthenticationResultsHeader.parse(" ".join(field.decode().split()))
    assert parsed.authserv_id == "mx." + BETA
    return {r.method: (r.result, {f"{p.type}.{p.name}": p.value for p in r.properties})
            for r in parsed.results}


def relay_to_beta(w, msg):
    """A legacy relay hands msg to beta, as any MTA would."""
    with smtplib.SMTP("127.0.0.1", w.beta.smtp_port, timeout=60) as s:
        s.ehlo("relay.example.org")
        assert s.mail(f"alice@{ALPHA}")[0] == 250
        assert s.rcpt(f"bob@{BETA}")[0] == 250
        code, text = s.data(msg)
    assert code == 250, text


def gateway_pk(w):
    """alpha's gateway Ed25519 key, as its DID document gives it."""
    p = w.alice.run("lookup", ALPHA_GW)
    out = p.stdout.decode()
    doc = json.loads(out[out.index("{"):out.rindex("}") + 1])
    for m in doc["verificationMethod"]:
        if m["publicKeyJwk"]["crv"] == "Ed25519":
            x = m["publicKeyJwk"]["x"]
            import base64
            return base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    raise AssertionError(out)


def unstuff(data):
    return re.sub(rb"(?m)^\.\.", b".", data)


@pytest.fixture(scope="module")
def captured(world):
    """What alpha sent to the plain legacy receiver."""
    w = world
    p = w.alice.run("send", "carol@legacy.example.org", input=mail("carol@legacy.example.org",
                                                                 "to a legacy MX"))
    assert f"{ALPHA_GW} OK".encode() in p.stdout, p.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not w.legacy.messages:
        time.sleep(0.05)
    assert w.legacy.messages, w.alpha.log_text()[-3000:]
    return unstuff(w.legacy.messages[0][1])


def test_beta_verifies_alphas_mail(world):
    w = world
    p = w.alice.run("send", f"bob@{BETA}", input=mail(f"bob@{BETA}", "through the gateway"))
    assert f"{ALPHA_GW} OK".encode() in p.stdout, p.stdout
    stored = fetch_one(w)
    assert b"Hello, this is through the gateway." in stored
    r = results(stored)
    assert r["amp-did"] == ("pass", {"header.d": ALICE}), r
    assert r["spf"][0] == "pass"
    w.beta.wait_log(r'smtp: authentication.*amp-did=pass:' + re.escape(ALICE) +
                    r'" action=accept')


def test_legacy_copy_verifies_in_the_oracle(world, captured):
    w = world
    msg = captured
    assert msg.startswith(b"AMP-DID-Signature: "), msg[:200]
    fields, _ = oracle.split_message(msg)
    sigs = [raw for name, raw in fields if name == b"amp-did-signature"]
    assert len(sigs) == 1
    tags = oracle.parse_tags(sigs[0].split(b":", 1)[1])
    assert tags["d"] == ALICE.encode() and tags["n"] == ALPHA_GW.encode()
    assert abs(int(tags["t"]) - time.time()) < 300
    pk = gateway_pk(w)
    assert oracle.oracle_verify(msg, pk, now=int(time.time())) == ("pass", "ok")
    other = bytes(nacl_signing.SigningKey.generate().verify_key)
    assert oracle.oracle_verify(msg, other, now=int(time.time()))[0] == "fail"
    # what the oracle sees changed, it refuses too
    bad = msg.replace(b"Subject: to a legacy MX", b"Subject: to a legacy MX!")
    assert oracle.oracle_verify(bad, pk, now=int(time.time()))[0] == "fail"


def test_tampered_in_transit_fails_at_beta(world, captured):
    w = world
    i = captured.index(b"Hello, this is")
    tampered = captured[:i] + b"J" + captured[i + 1:]
    relay_to_beta(w, tampered)
    r = results(fetch_one(w))
    assert r["amp-did"] == ("fail", {"header.d": ALICE}), r
    w.beta.wait_log(r'amp-did=fail:' + re.escape(ALICE))
    # the untouched copy relayed the same way passes: the change did it
    relay_to_beta(w, captured)
    assert results(fetch_one(w))["amp-did"] == ("pass", {"header.d": ALICE})


def strip_sig(msg):
    fields, _ = oracle.split_message(msg)
    raw = [raw for name, raw in fields if name == b"amp-did-signature"][0]
    assert msg.startswith(raw)
    return msg[len(raw) + 2:]


def resign(msg, seed, d, n):
    plain = strip_sig(msg)
    tags = (f"v=1; a=ed25519-sha256; d={d}; n={n}; t={int(time.time())}; "
            "h=from:from:to:to:subject:subject; bh=").encode() + \
        oracle.body_hash(plain) + b";"
    return oracle.oracle_sign(plain, seed, tags,
                              [b"from", b"from", b"to", b"to", b"subject", b"subject"])


@pytest.mark.parametrize("d,n", [
    # d= of a domain alpha does not serve, n= alpha's gateway (DS-2)
    (f"did:aftersmtp:{BETA}:bob", ALPHA_GW),
    # both of beta, signed by a key that is not beta's gateway's
    (f"did:aftersmtp:{BETA}:bob", BETA_GW),
    # n= is a user, not a node: no user signs for its domain
    (ALICE, ALICE),
], ids=["other-domain", "not-that-node", "user-as-node"])
def test_signer_not_of_that_domain_fails(world, captured, d, n):
    w = world
    relay_to_beta(w, resign(captured, bytes(range(32)), d, n))
    r = results(fetch_one(w))
    assert r["amp-did"] == ("fail", {"header.d": d}), r


def test_unreachable_signer_is_temperror(world, captured):
    w = world
    d = "did:aftersmtp:gamma.example.net:carol"
    t0 = time.monotonic()
    relay_to_beta(w, resign(captured, bytes(range(32)), d, GAMMA_GW))
    assert time.monotonic() - t0 < 30
    r = results(fetch_one(w))
    assert r["amp-did"] == ("temperror", {"header.d": d}), r
    w.beta.wait_log(r'DID signature: the signing node was not resolved.*gamma')


def test_settings_off(world, captured):
    w = world
    # beta with didsig_verify = no: the signed copy relayed, nothing
    # recorded
    w.beta.stop()
    w.beta.conf["didsig_verify"] = "no"
    w.beta.write_conf()
    w.beta.start()
    # alpha with didsig_sign = no: its mail leaves without the field
    w.alpha.stop()
    w.alpha.conf["didsig_sign"] = "no"
    w.alpha.write_conf()
    w.alpha.start()
    try:
        relay_to_beta(w, captured)
        stored = fetch_one(w)
        assert b"AMP-DID-Signature: " in stored
        assert "amp-did" not in results(stored)
        assert not re.search(r"amp-did=", w.beta.log_text().split(
            'msg="node ready"')[-1])
        n_before = len(w.legacy.messages)
        p = w.alice.run("send", "carol@legacy.example.org",
                        input=mail("carol@legacy.example.org", "unsigned legacy"))
        assert f"{ALPHA_GW} OK".encode() in p.stdout, p.stdout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(w.legacy.messages) == n_before:
            time.sleep(0.05)
        assert len(w.legacy.messages) == n_before + 1
        assert b"AMP-DID-Signature" not in w.legacy.messages[-1][1]
        assert b"unsigned legacy" in w.legacy.messages[-1][1]
    finally:
        for n, k in ((w.beta, "didsig_verify"), (w.alpha, "didsig_sign")):
            n.stop()
            del n.conf[k]
            n.write_conf()
            n.start()


MAILAUTH_TOOL = str(Path(AMP_BIN).parents[2] / "tests" / "tools" / "mailauth-tool")


@pytest.mark.parametrize("args,want", [
    (["--did-key", f"{ALPHA_GW}=KEY"], "pass"),
    (["--did-unknown", ALPHA_GW], "fail"),
    ([], "temperror"),
    (["--did-key", f"{ALPHA_GW}=KEY", "--did-delay", "2500", "--timeout", "1000"],
     "temperror"),
], ids=["known", "unknown", "unresolved", "too-late"])
def test_mailauth_tool_resolver(captured, args, want):
    import subprocess
    seed = bytes(range(32))
    pk = bytes(nacl_signing.SigningKey(seed).verify_key).hex()
    msg = resign(captured, seed, ALICE, ALPHA_GW)
    p = subprocess.run([MAILAUTH_TOOL, "--ip", "127.0.0.1", "--helo", "x",
                        "--no-spf", "--no-dkim", "--no-dmarc", "--no-arc",
                        *[a.replace("=KEY", "=" + pk) for a in args]],
                       input=msg, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert re.search(rf"^amp-did {want} found=1 d={re.escape(ALICE)} "
                     rf"n={re.escape(ALPHA_GW)} ", out, re.M), out
    assert f'amp-did={want} header.d="{ALICE}"' in out
    assert ("timed-out yes" in out) == ("--did-delay" in args)


def test_local_from_policy_accepts_our_own_did_signature(world, captured):
    """local_from_policy = require-auth on alpha: mail From one of
    alpha's addresses that comes back from outside must carry alpha's
    DKIM signature or a valid AMP-DID-Signature of alpha's own node.
    alpha has no DKIM key here, so the gateway's signature decides."""
    w = world
    w.alpha.stop()
    w.alpha.conf["local_from_policy"] = "require-auth"
    w.alpha.write_conf()
    w.alpha.start()

    def inject(msg):
        with smtplib.SMTP("127.0.0.1", w.alpha.smtp_port, timeout=60) as s:
            s.ehlo("relay.example.org")
            assert s.mail(f"alice@{ALPHA}")[0] == 250
            assert s.rcpt(f"alice@{ALPHA}")[0] == 250
            try:
                return s.data(msg)
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error
    code, text = inject(captured)
    assert code == 250, text
    w.alpha.wait_log(r"amp-did=pass:" + re.escape(ALICE) + r'" action=accept')
    code, text = inject(strip_sig(captured))
    assert code == 550 and text.startswith(b"5.7.1"), (code, text)
    assert b"AMP-DID-Signature" in text
