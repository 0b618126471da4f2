"""Outbound TLS end to end (issue 5; TESTING.md T5, T6, T7, E5): a real
node delivers gateway mail to receivers on loopback, and we check what
the receivers saw and what the node logged for each attempt
(`msg="outbound: attempt" ... delivered= deferred= bounced= reason=`).

The world, built once for the module:
  - certificates made with `openssl req` / `openssl x509` (faketime for
    the expired and not-yet-valid ones): self-signed end-entity
    certificates, a "public" CA that the node trusts and a private CA
    for DANE-TA that it does not;
  - one DNSSEC-signed zone example.net (dnsfixture.SignedZone: ldns +
    unbound) with one subdomain per case: `<case>.example.net MX 10
    mx.<case>.example.net`, `mx.<case> A 127.0.0.N` and, for the DANE
    cases, `_PORT._tcp.mx.<case> TLSA ...` (the node dials every MX on
    smtp_out_port = PORT, so each case has its own receiver on
    127.0.0.N:PORT);
  - one node (smtp_out_tls = may) with the zone's trust anchor (DANE),
    smtp_out_must_tls for the pkix-* cases, transport_maps and
    smtp_out_auth_file for the smarthost cases.  It runs in a private
    mount namespace where /etc/ssl/certs/ca-certificates.crt is our
    public CA (the system store itself is untouched), so the positive
    PKIX case can be tested too (root only; skipped otherwise).
Nodes with smtp_out_tls = none and = encrypt are started by their tests.

Receivers: aiosmtpd (STARTTLS with an ssl context, AUTH with an
authenticator; it records whether TLS was on at MAIL and DATA), and for
T5 and the no-STARTTLS check the raw tests/e2e/smtpfake.py server, which
records every command line and whether it came in clear or over TLS.
Deferred rows are retried only after 20 s, so each case sees one
attempt while the module runs.

What is asserted (the first attempt's outcome and what the receiver saw):
  may + STARTTLS offered                 delivered over TLS, any certificate
  none                                   delivered in clear, no STARTTLS sent
  none + DANE TLSA                       delivered over TLS (DANE wins)
  T5 bytes after the 220 (one segment)   discarded; EHLO again over TLS; delivered
  T5 bytes after the 220 (0.3 s later)   read as TLS: handshake fails, deferred
  DANE-EE match (3 1 1, 3 0 1, 3 1 2, 3 0 0)              delivered over TLS
  DANE, no STARTTLS / other key          deferred, nothing sent in clear
  DANE-EE, wrong name / expired / not yet valid           delivered
  DANE-TA match                          delivered
  DANE-TA, wrong name / CA not sent      deferred
  only usages 0 and 1 (unusable)         TLS without authentication (RFC 7672
                                         §2.2): delivered; no STARTTLS deferred
  must_tls: self-signed, no STARTTLS, wrong name, expired, not yet valid
                                         deferred (the reason says which)
  must_tls: valid chain                  delivered (root: private CA store)
  encrypt: no STARTTLS / self-signed     deferred / delivered
  smarthost AUTH over STARTTLS           delivered, authenticated
  smarthost 535                          deferred (not bounced), no DSN
  smarthost without STARTTLS             deferred, AUTH never sent
  MX = smtp_hostname                     bounced 5.4.6, DSN in the inbox
  MX that is an IP address               never dialled, deferred
"""
import base64
import hashlib
import glob
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dnsfixture import SignedZone
from nodes import Node, User, free_port, make_base, remove_base, stop_all
from smtpfake import FakeSMTP

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

HELO = "mx.alpha.test"
SENDER = "bob@alpha.test"
AUTH_USER, AUTH_PASS = "relay-user", "s3cret-Pa55"
ROOT_ONLY = os.geteuid() == 0 and shutil.which("unshare") is not None


# ------------------------------------------------------------ certificates

def _libfaketime():
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return libs[0] if libs else None


def _openssl(cwd, *args, shift=None):
    cmd = ["openssl", *args]
    env = None
    if shift is not None:  # the clock as openssl sees it, e.g. "-10d"
        # libfaketime preloaded directly: the `faketime` wrapper keeps a
        # named semaphore per pid in /dev/shm, and one left by a killed
        # process makes a later wrapper with the same pid fail
        lib = _libfaketime()
        assert lib is not None, "libfaketime is not installed"
        env = dict(os.environ, LD_PRELOAD=lib, FAKETIME=shift,
                   FAKETIME_DONT_FAKE_MONOTONIC="1")
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, f"{cmd} (FAKETIME={shift}): {p.stderr}"


class Cert:
    """A key, its certificate and the chain a server sends (the
    certificate, then its CA's when it has one)."""

    def __init__(self, d: Path, name: str, san: str, ca=None, days=30, shift=None,
                 is_ca=False):
        self.key, self.crt = d / f"{name}.key", d / f"{name}.crt"
        self.chain = d / f"{name}.chain"
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", str(self.key)]
        if ca is None:
            ext = ["-addext", f"subjectAltName=DNS:{san}"]
            if is_ca:
                ext += ["-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
            _openssl(d, "req", "-x509", *newkey, "-out", str(self.crt), "-days", str(days),
                     "-subj", f"/CN={san}", *ext, shift=shift)
            self.chain.write_bytes(self.crt.read_bytes())
        else:
            csr, extfile = d / f"{name}.csr", d / f"{name}.ext"
            extfile.write_text(f"subjectAltName=DNS:{san}\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\n"
                               "extendedKeyUsage=serverAuth\n")
            _openssl(d, "req", "-new", *newkey, "-out", str(csr), "-subj", f"/CN={san}")
            serial = str(int.from_bytes(os.urandom(8), "big"))
            _openssl(d, "x509", "-req", "-in", str(csr), "-CA", str(ca.crt),
                     "-CAkey", str(ca.key), "-set_serial", serial,
                     "-days", str(days), "-extfile", str(extfile), "-out", str(self.crt),
                     shift=shift)
            self.chain.write_bytes(self.crt.read_bytes() + ca.crt.read_bytes())
        os.chmod(self.key, 0o644)  # receivers run in this process; the node never reads it

    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.crt.read_text())

    def spki(self) -> bytes:
        p = subprocess.run(["openssl", "x509", "-in", str(self.crt), "-noout", "-pubkey"],
                           capture_output=True, text=True, check=True)
        b64 = "".join(line for line in p.stdout.splitlines() if not line.startswith("-----"))
        return base64.b64decode(b64)

    def tlsa(self, usage, selector, mtype) -> str:
        data = self.der() if selector == 0 else self.spki()
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
        return f"{usage} {selector} {mtype} {data.hex().upper()}"

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.chain), str(self.key))
        return ctx


def mx(case):
    return f"mx.{case}.example.net"


def make_certs(d: Path):
    c = {}
    # CAs made "30 days ago" so that the leaves below may start before now
    c["public_ca"] = Cert(d, "public-ca", "Test Public CA", days=3650, shift="-30d", is_ca=True)
    c["dane_ca"] = Cert(d, "dane-ca", "Test DANE CA", days=3650, shift="-30d", is_ca=True)
    c["ee"] = Cert(d, "ee", "mx.ee.example.net")         # the DANE-EE receiver's
    c["other"] = Cert(d, "other", "mx.other.example.net")  # a different key
    c["wrongname"] = Cert(d, "wrongname", "somewhere.else.example.org")
    c["expired"] = Cert(d, "expired", mx("dane-expired"), days=2, shift="-10d")
    c["future"] = Cert(d, "future", mx("dane-future"), days=30, shift="+10d")
    c["ta_leaf"] = Cert(d, "ta-leaf", mx("dane-ta"), ca=c["dane_ca"])
    c["ta_leaf_badname"] = Cert(d, "ta-leaf-badname", "not-the-mx.example.org", ca=c["dane_ca"])
    c["pkix_ok"] = Cert(d, "pkix-ok", mx("pkix-ok"), ca=c["public_ca"])
    c["pkix_wrongname"] = Cert(d, "pkix-wrongname", "not-the-mx.example.org", ca=c["public_ca"])
    c["pkix_expired"] = Cert(d, "pkix-expired", mx("pkix-expired"), ca=c["public_ca"], days=2,
                             shift="-10d")
    c["pkix_future"] = Cert(d, "pkix-future", mx("pkix-future"), ca=c["public_ca"],
                            shift="+10d")
    # the DANE-TA leaf without its CA in the chain (RFC 7672 §3.1.2: the
    # server must send the trust anchor)
    c["ta_leaf_only"] = Cert(d, "ta-leaf-only", mx("dane-ta-leafonly"), ca=c["dane_ca"])
    c["ta_leaf_only"].chain.write_bytes(c["ta_leaf_only"].crt.read_bytes())
    return c


# ------------------------------------------------------------------ zone

# case -> TLSA records (functions of the certificates); every case gets an
# MX host with its own loopback address
def dane_cases(c):
    return {
        "plain": [], "t5": [], "t5size": [], "t5split": [], "plain-none": [], "enc-notls": [],
        "enc-tls": [],
        "dane-ok": [c["ee"].tlsa(3, 1, 1)],
        "dane-none": [c["ee"].tlsa(3, 1, 1)],
        "dane-301": [c["ee"].tlsa(3, 0, 1)],
        "dane-312": [c["ee"].tlsa(3, 1, 2)],
        "dane-300": [c["ee"].tlsa(3, 0, 0)],
        "dane-notls": [c["ee"].tlsa(3, 1, 1)],
        "dane-badcert": [c["ee"].tlsa(3, 1, 1)],
        "dane-wrongname": [c["wrongname"].tlsa(3, 1, 1)],
        "dane-expired": [c["expired"].tlsa(3, 1, 1)],
        "dane-future": [c["future"].tlsa(3, 1, 1)],
        "dane-ta": [c["dane_ca"].tlsa(2, 1, 1)],
        "dane-ta-badname": [c["dane_ca"].tlsa(2, 1, 1)],
        "dane-ta-leafonly": [c["dane_ca"].tlsa(2, 1, 1)],
        # only PKIX-TA(0) / PKIX-EE(1): unusable for SMTP (RFC 7672 §3.1.3)
        "dane-pkixonly": [c["public_ca"].tlsa(0, 0, 1), c["ee"].tlsa(1, 1, 1)],
        "dane-pkixonly-notls": [c["public_ca"].tlsa(0, 0, 1), c["ee"].tlsa(1, 1, 1)],
        "pkix-ok": [], "pkix-self": [], "pkix-notls": [], "pkix-wrongname": [],
        "pkix-expired": [], "pkix-future": [],
        "iplit-target": [],
    }


PKIX_CASES = ["pkix-ok", "pkix-self", "pkix-notls", "pkix-wrongname", "pkix-expired",
              "pkix-future"]


def zone_text(cases, port):
    lines = ["@ IN SOA ns hostmaster 1 3600 600 86400 300", "@ IN NS ns",
             "ns IN A 127.0.0.1"]
    ips = {}
    for i, (case, tlsa) in enumerate(cases.items()):
        ips[case] = f"127.0.0.{10 + i}"
        lines += [f"{case} IN MX 10 mx.{case}", f"mx.{case} IN A {ips[case]}"]
        lines += [f"_{port}._tcp.mx.{case} IN TLSA {r}" for r in tlsa]
    # E5: an MX that names this node, an MX that is an IP address (of a
    # live receiver, which must never be contacted)
    lines += ["loop IN MX 10 mx.alpha.test.",
              f"iplit IN MX 10 {ips['iplit-target']}."]
    return "\n".join(lines) + "\n", ips


# ----------------------------------------------------------------- world

class World:
    pass


def write_private(path: Path, text: str, mode: int):
    path.write_text(text)
    path.chmod(mode)


@pytest.fixture(scope="module")
def world():
    if _libfaketime() is None:
        pytest.fail("libfaketime is not installed (scripts/bootstrap.sh installs faketime)")
    w = World()
    w.base = make_base()
    w.nodes = []
    w.zones = []
    try:
        certs_dir = w.base / "certs"
        certs_dir.mkdir(mode=0o755)
        w.certs = make_certs(certs_dir)
        w.port = free_port()
        w.cases = dane_cases(w.certs)
        text, w.ips = zone_text(w.cases, w.port)
        zdir = w.base / "zone"
        zdir.mkdir()
        w.zone = SignedZone("example.net", text, "signed", zdir)
        w.zones.append(w.zone)
        w.smart = {name: f"127.0.0.{200 + i}"
                   for i, name in enumerate(("smart-ok", "smart-bad", "smart-notls"))}
        n = Node(w.base, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port())
        w.nodes.append(n)
        ta = n.dir / "trust-anchor.ds"
        write_private(ta, w.zone.trust_anchor.read_text(), 0o644)
        transport = n.dir / "transport"
        write_private(transport, "".join(
            f"{name}.test smtp:[{ip}]:{w.port}\n" for name, ip in w.smart.items()), 0o644)
        auth = n.dir / "smtp-auth"
        write_private(auth, "# smarthost credentials\n"
                      f"[{w.smart['smart-ok']}]:{w.port} {AUTH_USER} {AUTH_PASS}\n"
                      f"[{w.smart['smart-bad']}]:{w.port} {AUTH_USER} wrong-password\n"
                      f"[{w.smart['smart-notls']}]:{w.port} {AUTH_USER} {AUTH_PASS}\n", 0o600)
        n.conf.update({
            "dns_forwarder": w.zone.forwarder, "dns_trust_anchor": str(ta),
            "smtp_out_port": str(w.port), "smtp_hostname": HELO,
            "smtp_out_retry_min": "20s", "smtp_out_retry_max": "20s",
            "smtp_out_command_timeout": "5s", "smtp_out_connect_timeout": "3s",
            "smtp_out_must_tls": " ".join(f"{c}.example.net" for c in PKIX_CASES),
            "transport_maps": str(transport), "smtp_out_auth_file": str(auth),
        })
        n.write_conf()
        wrapper = ()
        if ROOT_ONLY:
            # the node's view of the system CA list is our public CA only
            store = n.dir / "ca-certificates.crt"
            write_private(store, w.certs["public_ca"].crt.read_text(), 0o644)
            wrapper = ("unshare", "--mount", "--", "sh", "-c",
                       f"mount --bind {store} /etc/ssl/certs/ca-certificates.crt && "
                       "exec \"$0\" \"$@\"")
        n.start(wrapper=wrapper)
        n.smtp_port = int(n.conf["smtp_port"])
        w.node = n
        w.user = User(w.base, "bob", n)
        w.user.register()
        yield w
        stop_all(w.nodes)
    finally:
        for z in w.zones:
            z.stop()
        for n in w.nodes:  # stopped already unless setup failed
            if n.proc is not None:
                n.kill9()
        remove_base(w.base)


# -------------------------------------------------------------- receivers

class Receiver:
    """aiosmtpd on host:port.  cert: offer STARTTLS with that chain.
    auth: (user, password) it accepts (AUTH needs TLS unless
    auth_in_clear).  Records every MAIL (with TLS and AUTH state), every
    AUTH try and every message."""

    def __init__(self, host, port, cert=None, auth=None, auth_in_clear=False):
        self.mails, self.messages, self.auth_tries = [], [], []
        self.auth = auth
        self.lock = threading.Lock()
        kw = {}
        if cert is not None:
            kw["tls_context"] = cert.context()
        if auth is not None:
            kw.update(authenticator=self._authenticate, auth_required=True,
                      auth_require_tls=not auth_in_clear)
        self.controller = aiosmtpd_controller.Controller(self, hostname=host, port=port, **kw)
        self.controller.start()

    def _authenticate(self, server, session, envelope, mechanism, data):
        ok = isinstance(data, aiosmtpd_smtp.LoginPassword) and \
            (data.login.decode(), data.password.decode()) == self.auth
        with self.lock:
            self.auth_tries.append((mechanism, session.ssl is not None, ok))
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mails.append({"from": address, "tls": session.ssl is not None,
                               "authenticated": bool(session.authenticated)})
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                                  "data": envelope.original_content,
                                  "tls": session.ssl is not None,
                                  "authenticated": bool(session.authenticated)})
        return "250 2.0.0 queued"

    def stop(self):
        self.controller.stop()


@pytest.fixture
def servers():
    """Start receivers with servers(kind, ...); all stop at the end."""
    started = []

    def make(kind, *args, **kw):
        s = (Receiver if kind == "aiosmtpd" else FakeSMTP)(*args, **kw)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()


# ---------------------------------------------------------------- helpers

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def first_attempt(node, domain, timeout=20):
    """The node's first `outbound: attempt` line for domain, as a dict of
    its fields (counts as ints, quotes taken off)."""
    pat = rf'(?m)^.*msg="outbound: attempt" .*\bdomain={re.escape(domain)} .*$'
    line = re.search(pat, node.wait_log(pat, timeout=timeout)).group(0)
    d = {}
    for k, v in FIELD.findall(line.split('msg="outbound: attempt"', 1)[1]):
        d[k] = v[1:-1] if v.startswith('"') else v
    for k in ("attempt", "delivered", "deferred", "bounced"):
        d[k] = int(d[k])
    return d


def send(user, rcpt, subject):
    body = (f"From: Bob <did:aftersmtp:alpha.test:bob>\r\nTo: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n\r\nHello over TLS?\r\n").encode()
    p = user.run("send", rcpt, input=body)
    assert b"did:aftersmtp:alpha.test:gateway OK" in p.stdout, p.stdout


def deliver(w, case, subject=None):
    """Send one message to x@<case>.example.net; the first attempt."""
    domain = f"{case}.example.net"
    send(w.user, f"x@{domain}", subject or case)
    return first_attempt(w.node, domain)


def assert_delivered(a, relay):
    assert (a["delivered"], a["deferred"], a["bounced"], a["reason"], a["relay"]) == \
        (1, 0, 0, "", relay), a


def assert_deferred(a, *needles):
    assert (a["delivered"], a["deferred"], a["bounced"], a["dsn"]) == (0, 1, 0, "none"), a
    for n in needles:
        assert n in a["reason"], (n, a)


def one_tls_message(r, case):
    """The receiver got exactly our message, over TLS."""
    deadline = time.monotonic() + 5
    while not r.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(r.messages) == 1, r.messages
    m = r.messages[0]
    assert (m["from"], m["rcpts"], m["tls"]) == (SENDER, [f"x@{case}.example.net"], True), m
    assert f"Subject: {case}".encode() in m["data"]
    return m


# ------------------------------------------------ 1. opportunistic STARTTLS

def test_opportunistic_starttls_is_used_when_offered(world, servers):
    r = servers("aiosmtpd", world.ips["plain"], world.port, cert=world.certs["other"])
    a = deliver(world, "plain")
    # smtp_out_tls=may, no TLSA (secure NXDOMAIN) and not must-tls: a
    # self-signed certificate for another name is fine
    assert_delivered(a, mx("plain"))
    one_tls_message(r, "plain")
    assert r.mails == [{"from": SENDER, "tls": True, "authenticated": False}]


def test_smtp_out_tls_none_never_starts_tls_but_dane_still_does(world, base, servers):
    """smtp_out_tls = none: STARTTLS offered and never used.  DANE takes
    precedence (docs/outbound.md): with the trust anchor, a domain with
    TLSA records still gets TLS and the certificate check."""
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             dns_forwarder=world.zone.forwarder, smtp_out_port=world.port,
             smtp_hostname=HELO, smtp_out_tls="none", smtp_out_retry_min="20s",
             smtp_out_retry_max="20s", smtp_out_command_timeout="5s")
    ta = n.dir / "trust-anchor.ds"
    write_private(ta, world.zone.trust_anchor.read_text(), 0o644)
    n.conf["dns_trust_anchor"] = str(ta)
    n.write_conf()
    nodes.append(n)
    n.start()
    u = User(b, "bob", n)
    u.register()
    f = servers("fake", world.ips["plain-none"], world.port, cert=world.certs["ee"].chain,
                key=world.certs["ee"].key)
    r = servers("aiosmtpd", world.ips["dane-none"], world.port, cert=world.certs["ee"])
    send(u, "x@plain-none.example.net", "none")
    send(u, "x@dane-none.example.net", "dane-none")
    a = first_attempt(n, "plain-none.example.net")
    assert_delivered(a, mx("plain-none"))
    # STARTTLS was offered (the fake's EHLO lists it) and never used
    cmds = f.wait_commands(lambda c: any(x[1] == "DATA" for x in c))
    verbs = [(phase, line.split(" ")[0].split(":")[0]) for phase, line in cmds]
    assert verbs[:4] == [("plain", "EHLO"), ("plain", "MAIL"), ("plain", "RCPT"),
                         ("plain", "DATA")], cmds
    assert all(phase == "plain" and not line.upper().startswith("STARTTLS")
               for phase, line in cmds), cmds
    assert len(f.messages) == 1 and f.messages[0][0] is False
    assert_delivered(first_attempt(n, "dane-none.example.net"), mx("dane-none"))
    one_tls_message(r, "dane-none")


# --------------------------------------------- 2. T5: STARTTLS injection

@pytest.mark.parametrize("injected", [
    b"250 fake-EHLO\r\n",
    # had the client taken this for its EHLO reply, SIZE=10 would make it
    # refuse the message (552 5.3.4, a bounce) instead of delivering it
    b"250-fake-EHLO\r\n250 SIZE 10\r\n",
], ids=["250", "250-SIZE-10"])
def test_t5_starttls_response_injection_is_discarded(world, servers, injected):
    """The fake answers STARTTLS with `220 go ahead\\r\\n` and the injected
    reply in one send(); the client must discard what followed the 220, do
    the handshake and send EHLO again over TLS.  A client that kept the
    injected bytes would take them as a reply (to the EHLO it sends after
    TLS, or to MAIL if it skipped that EHLO) and fall one reply behind:
    the command sequence, the outcome or both would differ."""
    case = "t5" if injected == b"250 fake-EHLO\r\n" else "t5size"
    f = servers("fake", world.ips[case], world.port, cert=world.certs["ee"].chain,
                key=world.certs["ee"].key,
                starttls_reply=[b"220 2.0.0 go ahead\r\n" + injected])
    a = deliver(world, case)
    assert_delivered(a, mx(case))
    cmds = f.wait_commands(lambda c: any(x[1] == "DATA" for x in c))
    assert cmds[:2] == [("plain", f"EHLO {HELO}"), ("plain", "STARTTLS")], cmds
    assert cmds[2] == ("tls", f"EHLO {HELO}"), cmds
    assert cmds[3][0] == "tls" and cmds[3][1].startswith(f"MAIL FROM:<{SENDER}>"), cmds
    assert cmds[4][0] == "tls" and cmds[4][1].startswith(f"RCPT TO:<x@{case}.example.net>"), cmds
    assert cmds[5] == ("tls", "DATA"), cmds
    assert cmds[6:] in ([], [("tls", "QUIT")]), cmds
    assert "handshake ok" in f.events
    assert not any(e.startswith("bytes after STARTTLS") for e in f.events), f.events
    (tls, data), = f.messages
    assert tls is True and f"Subject: {case}\r\n".encode() in data


def test_t5_injection_after_the_220_breaks_the_handshake(world, servers):
    """The same bytes, but the 250 comes 0.3 s after the 220: by then the
    client has sent its ClientHello and reads the 250 as TLS.  The
    handshake fails; the injected bytes are never parsed as SMTP and that
    connection is never continued in clear.  With smtp_out_tls = may the
    driver then connects once more without TLS (Postfix's `may` level does
    the same), where the server's real answers are used."""
    f = servers("fake", world.ips["t5split"], world.port, cert=world.certs["ee"].chain,
                key=world.certs["ee"].key,
                starttls_reply=[b"220 2.0.0 go ahead\r\n", b"250 fake-EHLO\r\n"], gap=0.3)
    a = deliver(world, "t5split")
    assert_delivered(a, mx("t5split"))
    assert f.commands[:2] == [("plain", f"EHLO {HELO}"), ("plain", "STARTTLS")], f.commands
    # the second connection: no STARTTLS, nothing over TLS
    assert "STARTTLS" not in [c for _, c in f.commands[2:]], f.commands
    assert all(mode == "plain" for mode, _ in f.commands), f.commands
    assert [tls for tls, _ in f.messages] == [False]
    assert 'msg="outbound: TLS handshake failed; trying again without TLS"' in \
        world.node.log_text()


# ------------------------------------------------------- 3. T6 downgrade

def test_t6_dane_ee_match_delivers_over_tls(world, servers):
    r = servers("aiosmtpd", world.ips["dane-ok"], world.port, cert=world.certs["ee"])
    a = deliver(world, "dane-ok")
    assert_delivered(a, mx("dane-ok"))
    one_tls_message(r, "dane-ok")


@pytest.mark.parametrize("case", ["dane-301", "dane-312", "dane-300"])
def test_t6_dane_ee_selectors_and_matching_types(world, servers, case):
    """3 0 1 (certificate, SHA-256), 3 1 2 (key, SHA-512), 3 0 0 (the
    whole certificate) all match the same certificate."""
    r = servers("aiosmtpd", world.ips[case], world.port, cert=world.certs["ee"])
    assert_delivered(deliver(world, case), mx(case))
    one_tls_message(r, case)


def test_t6_dane_without_starttls_defers_never_cleartext(world, servers):
    r = servers("aiosmtpd", world.ips["dane-notls"], world.port)  # no STARTTLS
    a = deliver(world, "dane-notls")
    assert_deferred(a, "TLS is required but the server does not offer STARTTLS")
    assert r.mails == [] and r.messages == []


def test_t6_dane_certificate_mismatch_defers(world, servers):
    r = servers("aiosmtpd", world.ips["dane-badcert"], world.port, cert=world.certs["other"])
    a = deliver(world, "dane-badcert")
    assert_deferred(a, "DANE certificate check failed",
                    "no TLSA record matches the server's certificate")
    assert r.mails == [] and r.messages == []
    world.node.wait_log(r'msg="outbound: TLS refused" host=mx.dane-badcert.example.net ')


def test_t6_must_tls_self_signed_defers(world, servers):
    r = servers("aiosmtpd", world.ips["pkix-self"], world.port, cert=world.certs["other"])
    a = deliver(world, "pkix-self")
    assert_deferred(a, "PKIX certificate check failed",
                    "not signed by a trusted authority")
    assert r.mails == [] and r.messages == []


def test_t6_must_tls_without_starttls_defers(world, servers):
    r = servers("aiosmtpd", world.ips["pkix-notls"], world.port)
    a = deliver(world, "pkix-notls")
    assert_deferred(a, "TLS is required but the server does not offer STARTTLS")
    assert r.mails == [] and r.messages == []


def encrypt_node(world, base):
    b, nodes = base
    n = Node(b, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             dns_forwarder=world.zone.forwarder, smtp_out_port=world.port,
             smtp_hostname=HELO, smtp_out_tls="encrypt", smtp_out_retry_min="20s",
             smtp_out_retry_max="20s", smtp_out_command_timeout="5s")
    nodes.append(n)
    n.start()
    u = User(b, "bob", n)
    u.register()
    return n, u


def test_t6_smtp_out_tls_encrypt(world, base, servers):
    """encrypt: no STARTTLS defers; any certificate will do (no PKIX)."""
    n, u = encrypt_node(world, base)
    plain = servers("aiosmtpd", world.ips["enc-notls"], world.port)
    tls = servers("aiosmtpd", world.ips["enc-tls"], world.port, cert=world.certs["other"])
    send(u, "x@enc-notls.example.net", "enc-notls")
    send(u, "x@enc-tls.example.net", "enc-tls")
    a = first_attempt(n, "enc-notls.example.net")
    assert_deferred(a, "TLS is required but the server does not offer STARTTLS")
    assert plain.mails == [] and plain.messages == []
    assert_delivered(first_attempt(n, "enc-tls.example.net"), mx("enc-tls"))
    one_tls_message(tls, "enc-tls")


# --------------------------------------------- 4. T7 certificate edge cases

@pytest.mark.parametrize("case,cert", [("dane-wrongname", "wrongname"),
                                       ("dane-expired", "expired"),
                                       ("dane-future", "future")])
def test_t7_dane_ee_ignores_names_and_dates(world, servers, case, cert):
    """RFC 7672 §3.1.1: DANE-EE(3) binds the key; no name check, no
    validity period check."""
    r = servers("aiosmtpd", world.ips[case], world.port, cert=world.certs[cert])
    assert_delivered(deliver(world, case), mx(case))
    one_tls_message(r, case)


@pytest.mark.skipif(not ROOT_ONLY, reason="the node's CA list is replaced in a mount "
                    "namespace (needs root and unshare)")
def test_t7_pkix_valid_certificate_delivers(world, servers):
    r = servers("aiosmtpd", world.ips["pkix-ok"], world.port, cert=world.certs["pkix_ok"])
    assert_delivered(deliver(world, "pkix-ok"), mx("pkix-ok"))
    one_tls_message(r, "pkix-ok")


@pytest.mark.skipif(not ROOT_ONLY, reason="the node's CA list is replaced in a mount "
                    "namespace (needs root and unshare)")
@pytest.mark.parametrize("case,cert,why", [
    ("pkix-wrongname", "pkix_wrongname", "the certificate is for another name"),
    ("pkix-expired", "pkix_expired", "the certificate has expired"),
    ("pkix-future", "pkix_future", "the certificate is not valid yet"),
])
def test_t7_pkix_name_and_dates_are_checked(world, servers, case, cert, why):
    """Signed by a CA the node trusts, but for another name, expired, or
    not valid yet: deferred, with that reason."""
    r = servers("aiosmtpd", world.ips[case], world.port, cert=world.certs[cert])
    a = deliver(world, case)
    assert_deferred(a, "PKIX certificate check failed", why)
    assert r.mails == [] and r.messages == []


def test_t7_dane_ta_match_delivers(world, servers):
    """2 1 1 of a private CA (not in any trust store) that issued the
    server's certificate for the MX name; the server sends the CA."""
    r = servers("aiosmtpd", world.ips["dane-ta"], world.port, cert=world.certs["ta_leaf"])
    assert_delivered(deliver(world, "dane-ta"), mx("dane-ta"))
    one_tls_message(r, "dane-ta")


@pytest.mark.parametrize("case,cert,why", [
    # RFC 7672 §3.2.2: with DANE-TA the name is checked
    ("dane-ta-badname", "ta_leaf_badname",
     "a DANE-TA record matches, but the chain does not lead from it to a valid "
     "certificate for the host name"),
    # §3.1.2: the trust anchor must be in the chain the server sends
    ("dane-ta-leafonly", "ta_leaf_only", "no TLSA record matches the server's certificate"),
])
def test_t7_dane_ta_failures_defer(world, servers, case, cert, why):
    r = servers("aiosmtpd", world.ips[case], world.port, cert=world.certs[cert])
    a = deliver(world, case)
    assert_deferred(a, "DANE certificate check failed", why)
    assert r.mails == [] and r.messages == []


def test_t7_only_unusable_tlsa_records_mean_tls_without_authentication(world, servers):
    """RFC 7672 §2.2: "A secure non-empty TLSA RRset where all the records
    are unusable: A connection to the MTA MUST be made via TLS, but
    authentication is not required.  Failure to establish an encrypted
    TLS connection MUST result in falling back to the next SMTP server or
    delayed delivery."  Usages 0 and 1 are unusable for SMTP (§3.1.3).
    So: any certificate over TLS delivers; no STARTTLS defers."""
    tls = servers("aiosmtpd", world.ips["dane-pkixonly"], world.port,
                  cert=world.certs["other"])
    plain = servers("aiosmtpd", world.ips["dane-pkixonly-notls"], world.port)
    assert_delivered(deliver(world, "dane-pkixonly"), mx("dane-pkixonly"))
    one_tls_message(tls, "dane-pkixonly")
    a = deliver(world, "dane-pkixonly-notls")
    assert_deferred(a, "TLS is required but the server does not offer STARTTLS")
    assert plain.mails == [] and plain.messages == []


# ------------------------------------------------------- 5. smarthost AUTH

def test_smarthost_auth_over_starttls(world, servers):
    r = servers("aiosmtpd", world.smart["smart-ok"], world.port, cert=world.certs["other"],
                auth=(AUTH_USER, AUTH_PASS))
    send(world.user, "x@smart-ok.test", "smart-ok")
    a = first_attempt(world.node, "smart-ok.test")
    assert_delivered(a, world.smart["smart-ok"])
    assert r.auth_tries == [("PLAIN", True, True)], r.auth_tries
    (m,) = r.messages
    assert (m["from"], m["rcpts"], m["tls"], m["authenticated"]) == \
        (SENDER, ["x@smart-ok.test"], True, True), m


def test_smarthost_wrong_password_defers(world, servers):
    """The relay answers 535 5.7.8.  smtp-client.h calls a 5xx to AUTH
    permanent, but the driver treats every failure before MAIL FROM as
    this host's problem (outbound.c on_tcp_closed -> next host ->
    451 4.4.1): the message is deferred, not bounced, and no DSN is sent.
    That is what Postfix does by default (smtp_sasl_auth_soft_bounce = yes):
    a wrong password is the sending side's configuration error, and
    bouncing would throw away every user's mail until it is fixed."""
    r = servers("aiosmtpd", world.smart["smart-bad"], world.port, cert=world.certs["other"],
                auth=(AUTH_USER, AUTH_PASS))
    send(world.user, "x@smart-bad.test", "smart-bad")
    a = first_attempt(world.node, "smart-bad.test")
    assert_deferred(a, "AUTH failed", "535")
    assert r.auth_tries == [("PLAIN", True, False)], r.auth_tries
    assert r.mails == [] and r.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smarthost_never_authenticates_in_clear(world, servers):
    """The relay offers AUTH without STARTTLS: no credentials go out."""
    r = servers("aiosmtpd", world.smart["smart-notls"], world.port,
                auth=(AUTH_USER, AUTH_PASS), auth_in_clear=True)
    send(world.user, "x@smart-notls.test", "smart-notls")
    a = first_attempt(world.node, "smart-notls.test")
    assert_deferred(a, "AUTH needs TLS")
    assert r.auth_tries == [] and r.mails == [] and r.messages == []


# ---------------------------------------------------------- 6. E5 cases

def test_e5_mx_pointing_at_ourselves_bounces_5_4_6(world):
    a = deliver(world, "loop")
    assert (a["delivered"], a["deferred"], a["bounced"], a["dsn"]) == (0, 0, 1, "inbox"), a
    assert "loops back to myself" in a["reason"], a
    out = world.user.run("fetch", "--wait", "1").stdout
    assert b"Status: 5.4.6" in out and b"Final-Recipient: rfc822; x@loop.example.net" in out


def test_e5_ip_literal_mx_is_not_used(world, servers):
    """`iplit MX 10 127.0.0.N.`: a host name made of digits is not an
    address (RFC 5321 §5.1); the receiver listening at that address is
    never contacted, and with no other MX the message is deferred."""
    r = servers("aiosmtpd", world.ips["iplit-target"], world.port, cert=world.certs["ee"])
    a = deliver(world, "iplit")
    assert_deferred(a, f"MX host {world.ips['iplit-target']} is an IP address")
    time.sleep(0.5)
    assert r.mails == [] and r.messages == []
