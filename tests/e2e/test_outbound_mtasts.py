"""MTA-STS (RFC 8461) enforced in outbound delivery, end to end (issue 5):
a real node (src/daemon/outbound.c with src/daemon/mtasts-fetch.c)
delivers gateway mail to aiosmtpd receivers on loopback, and we check
what each receiver saw and what the node logged for each attempt
(`msg="outbound: attempt" ... delivered= deferred= reason=`).

The world, built once for the module:
  - a private CA (openssl) that the node trusts for both the policy
    servers (mta_sts_ca_file) and the SMTP servers (smtp_out_ca_file);
    the policy server's certificate names mta-sts.DOMAIN for every
    DOMAIN below, the main receiver's names mx.example.net;
  - a DNS server on 127.0.0.1 whose zone example.net the tests replace
    while the node runs (tests/tools/dnsserver.py reads its zone once,
    so its Zone and respond() are served from this process); TTL 1 s;
  - the policy server: test_mtasts.HttpsServer (http.server over ssl),
    one policy per domain, answering for mta-sts.DOMAIN;
  - receivers (test_outbound_tls.Receiver: aiosmtpd, records whether TLS
    was on at MAIL and DATA), all on smtp_out_port, one loopback
    address each:
        mx.example.net        127.0.0.1  STARTTLS, CA-signed for mx.example.net
        mx-plain.example.net  127.0.0.2  no STARTTLS
        mx-wrong.example.net  127.0.0.3  STARTTLS, CA-signed for mx.example.net
        mx-self.example.net   127.0.0.4  STARTTLS, self-signed for its name
        mx-clear.example.net  127.0.0.5  no STARTTLS
        mx-any.example.net    127.0.0.6  STARTTLS, self-signed for another name
  - one node (smtp_out_tls = may, retries after 1 s).

Cases (domain: policy, MX -> outcome):
  1. sts-ok:         enforce mx.example.net, MX mx          delivered over TLS
  2. sts-change:     enforce mail.example.org, MX mx        deferred 4.7.5, nothing
                     sent; then id=2 `*.example.net`      -> delivered on a retry
  3. sts-notls:      enforce, MX mx-plain (no STARTTLS)     deferred, never cleartext
  4. sts-badname:    enforce, MX mx-wrong (cert for mx)     deferred, MTA-STS (PKIX)
     sts-selfsigned: enforce, MX mx-self (self-signed)      deferred, MTA-STS (PKIX)
  5. sts-testing:    testing mail.example.org, MX mx        delivered, logged mode=testing
  6. nosts (no TXT), MX mx-any (self-signed, other name)    delivered over TLS
     nosts-clear (no TXT), MX mx-clear (no STARTTLS)        delivered in clear
  7. sts-restart:    enforce mx.example.net: delivered; the node restarted with
                     the policy server gone and the MX now mx-plain: deferred
                     (the policy from <data_dir>/mtasts.db), nothing sent.
"""
import importlib.util
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from nodes import Node, User, free_port, make_base, remove_base, stop_all
from test_mtasts import HttpsServer, openssl
from test_outbound_tls import FIELD, HELO, SENDER, Cert, Receiver, send

ROOT = Path(__file__).resolve().parents[2]

POLICY = "version: STSv1\nmode: {mode}\n{mx}max_age: 86400\n"

# domain label -> (mode, [mx patterns]) served at mta-sts.<label>.example.net
POLICIES = {
    "sts-ok": ("enforce", ["mx.example.net"]),
    "sts-change": ("enforce", ["mail.example.org"]),
    "sts-notls": ("enforce", ["mx-plain.example.net"]),
    "sts-badname": ("enforce", ["mx-wrong.example.net"]),
    "sts-selfsigned": ("enforce", ["mx-self.example.net"]),
    "sts-testing": ("testing", ["mail.example.org"]),
    "sts-restart": ("enforce", ["mx.example.net"]),
}

# domain label -> its MX host (label under example.net)
MX = {
    "sts-ok": "mx", "sts-change": "mx", "sts-notls": "mx-plain",
    "sts-badname": "mx-wrong", "sts-selfsigned": "mx-self", "sts-testing": "mx",
    "sts-restart": "mx", "nosts": "mx-any", "nosts-clear": "mx-clear",
}

HOSTS = {"mx": "127.0.0.1", "mx-plain": "127.0.0.2", "mx-wrong": "127.0.0.3",
         "mx-self": "127.0.0.4", "mx-clear": "127.0.0.5", "mx-any": "127.0.0.6"}


def policy(mode, mx):
    return POLICY.format(mode=mode, mx="".join(f"mx: {m}\n" for m in mx))


def dom(label):
    return f"{label}.example.net"


# --------------------------------------------------------------- DNS

def _dnsserver():
    spec = importlib.util.spec_from_file_location(
        "amp_dnsserver", ROOT / "tests" / "tools" / "dnsserver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class LiveDns:
    """tests/tools/dnsserver.py's Zone and respond() on 127.0.0.1 (UDP and
    TCP, a free port), served from this process so that set() can replace
    the zone while the node runs.  .forwarder as in dnsfixture."""

    def __init__(self, text):
        self.ds = _dnsserver()
        self.zone = self.ds.Zone(text)
        self.port = free_port()
        self.forwarder = f"127.0.0.1@{self.port}"
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def set(self, text):
        self.zone = self.ds.Zone(text)  # one reference swap: atomic

    def answer(self, q):                # what respond() asks of a zone
        return self.zone.answer(q)

    def _serve(self):
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.udp, self.tcp], [], [], 0.1)
            if self.udp in ready:
                data, peer = self.udp.recvfrom(65535)
                wire = self.ds.respond(self, data, "udp", True)
                if wire is not None:
                    self.udp.sendto(wire, peer)
            if self.tcp in ready:
                conn, _ = self.tcp.accept()
                threading.Thread(target=self.ds.serve_tcp_conn, args=(self, conn),
                                 daemon=True).start()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.udp.close()
        self.tcp.close()


def zone_text(txt, mx):
    """example.net: every MX host's address, `label MX 10 host` for each
    label in mx, `_mta-sts.label TXT id` and `mta-sts.label A 127.0.0.1`
    for each label in txt.  TTL 1 s, so a change is seen at once."""
    lines = ["$ORIGIN example.net.", "$TTL 1",
             "@ IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 1"]
    lines += [f"{h} IN A {ip}" for h, ip in HOSTS.items()]
    lines += [f"{label} IN MX 10 {host}" for label, host in mx.items()]
    for label, txt_id in txt.items():
        lines += [f'_mta-sts.{label} IN TXT "v=STSv1; id={txt_id};"',
                  f"mta-sts.{label} IN A 127.0.0.1"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ the world

class World:
    def set_zone(self):
        self.dns.set(zone_text(self.txt, self.mx))


def https_cert(d, ca):
    """The policy server's key and certificate (signed by ca) for
    mta-sts.DOMAIN, every DOMAIN of POLICIES."""
    sans = ",".join(f"DNS:mta-sts.{dom(label)}" for label in POLICIES)
    (d / "https.ext").write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\n"
                                 "extendedKeyUsage=serverAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "https.key", "-out", "https.csr",
            "-subj", f"/CN=mta-sts.{dom('sts-ok')}", cwd=d)
    openssl("x509", "-req", "-in", "https.csr", "-CA", str(ca.crt), "-CAkey", str(ca.key),
            "-set_serial", "4242", "-days", "2", "-extfile", "https.ext",
            "-out", "https.crt", cwd=d)
    return d / "https.crt", d / "https.key"


def node_for(base, w, https_port, **conf):
    n = Node(base, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
             dns_forwarder=w.dns.forwarder, smtp_out_port=w.port, smtp_hostname=HELO,
             smtp_out_retry_min="1s", smtp_out_retry_max="1s",
             smtp_out_command_timeout="5s", smtp_out_connect_timeout="3s",
             mta_sts_port=https_port, mta_sts_ca_file=w.ca.crt,
             smtp_out_ca_file=w.ca.crt, mta_sts_timeout="3s", **conf)
    return n


@pytest.fixture(scope="module")
def world():
    w = World()
    w.base = make_base()
    w.nodes, w.receivers, w.https = [], [], []
    w.dns = None
    try:
        d = w.base / "pki"
        d.mkdir(mode=0o755)
        w.ca = Cert(d, "ca", "mtasts-ca.example.net", days=2, is_ca=True)
        w.cert_mx = Cert(d, "mx", "mx.example.net", ca=w.ca, days=2)
        w.cert_self = Cert(d, "mx-self", "mx-self.example.net", days=2)
        w.cert_any = Cert(d, "mx-any", "somewhere.example.org", days=2)
        w.https_crt, w.https_key = https_cert(d, w.ca)
        for f in d.iterdir():
            f.chmod(0o644)      # the node drops to nobody when run as root
        w.txt = {label: "1" for label in POLICIES}
        w.mx = dict(MX)
        w.dns = LiveDns(zone_text(w.txt, w.mx))
        w.port = free_port()
        w.r = {}
        for host, cert in (("mx", w.cert_mx), ("mx-plain", None), ("mx-wrong", w.cert_mx),
                           ("mx-self", w.cert_self), ("mx-clear", None),
                           ("mx-any", w.cert_any)):
            w.r[host] = Receiver(HOSTS[host], w.port, cert=cert)
            w.receivers.append(w.r[host])
        w.srv = HttpsServer(w.https_crt, w.https_key)
        w.https.append(w.srv)
        for label, (mode, mx) in POLICIES.items():
            w.srv.route(label, body=policy(mode, mx))
        w.node = node_for(w.base, w, w.srv.port)
        w.nodes.append(w.node)
        w.node.start()
        w.user = User(w.base, "bob", w.node)
        w.user.register()
        yield w
        stop_all(w.nodes)
    finally:
        for n in w.nodes:       # stopped already unless something failed
            if n.proc is not None:
                n.kill9()
        for r in w.receivers:
            r.stop()
        for s in w.https:
            s.stop()
        if w.dns is not None:
            w.dns.stop()
        remove_base(w.base)


# ------------------------------------------------------------- helpers

def attempts(node, domain, since=0):
    """Every `outbound: attempt` line for domain in node's log from
    offset since, as dicts (counts as ints, quotes taken off)."""
    pat = rf'(?m)^.*msg="outbound: attempt" .*\bdomain={re.escape(domain)} .*$'
    out = []
    for m in re.finditer(pat, node.log_text()[since:]):
        d = {}
        for k, v in FIELD.findall(m.group(0).split('msg="outbound: attempt"', 1)[1]):
            d[k] = v[1:-1] if v.startswith('"') else v
        for k in ("attempt", "delivered", "deferred", "bounced"):
            d[k] = int(d[k])
        out.append(d)
    return out


def wait_attempts(node, domain, n=1, since=0, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = attempts(node, domain, since)
        if len(a) >= n:
            return a
        if node.proc is not None and node.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{len(attempts(node, domain, since))} attempts for {domain}, "
                         f"wanted {n}:\n{node.log_text()[-3000:]}")


def for_rcpt(r, rcpt):
    with r.lock:
        return [m for m in r.messages if m["rcpts"] == [rcpt]]


def wait_message(r, rcpt, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = for_rcpt(r, rcpt)
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"nothing for {rcpt} at the receiver: {r.messages}")


def delivered(a, relay):
    assert (a["delivered"], a["deferred"], a["bounced"], a["reason"], a["relay"]) == \
        (1, 0, 0, "", relay), a


def deferred(a, *needles):
    assert (a["delivered"], a["deferred"], a["bounced"], a["dsn"]) == (0, 1, 0, "none"), a
    for n in needles:
        assert n in a["reason"], (n, a)


def one_message(r, label, tls):
    """The receiver got exactly one message for x@<label>, ours, with TLS
    on (or off) at DATA."""
    rcpt = f"x@{dom(label)}"
    got = wait_message(r, rcpt)
    assert len(got) == 1, got
    m = got[0]
    assert (m["from"], m["tls"]) == (SENDER, tls), m
    assert f"Subject: {label}\r\n".encode() in m["data"]
    return m


def nothing_sent(r):
    """No MAIL FROM reached the receiver (so no message, in clear or not)."""
    with r.lock:
        assert r.mails == [] and r.messages == [], (r.mails, r.messages)


# -------------------------------------------------------------- cases

def test_enforce_matching_mx_delivers_over_tls(world):
    """Case 1: the MX is in the policy and its certificate chains to the
    CA in smtp_out_ca_file and names it: delivered, over TLS."""
    send(world.user, f"x@{dom('sts-ok')}", "sts-ok")
    (a, *_) = wait_attempts(world.node, dom("sts-ok"))
    delivered(a, "mx.example.net")
    one_message(world.r["mx"], "sts-ok", tls=True)
    log = world.node.log_text()
    assert re.search(r'msg="mta-sts: policy fetched" domain=sts-ok\.example\.net id=1 '
                     r'mode=enforce ', log), log[-3000:]
    assert "MX not in the MTA-STS policy\" domain=sts-ok." not in log
    assert 'msg="outbound: TLS refused" host=mx.example.net ' not in log


def test_enforce_mx_outside_policy_defers_until_new_policy(world):
    """Case 2: policy id=1 names mail.example.org only: the MX
    mx.example.net is skipped, the mail deferred (4.7.5) and nothing goes
    to the receiver.  The domain publishes id=2 naming *.example.net: a
    later attempt fetches it and delivers."""
    label, rcpt = "sts-change", f"x@{dom('sts-change')}"
    send(world.user, rcpt, label)
    deferred(wait_attempts(world.node, dom(label))[0])
    a = wait_attempts(world.node, dom(label), n=2)
    for x in a:
        deferred(x, f"MTA-STS: no MX host of {dom(label)} matches its policy")
        assert x["relay"] == "none", x
    world.node.wait_log(r'msg="outbound: MX not in the MTA-STS policy" '
                        r'domain=sts-change\.example\.net mx=mx\.example\.net mode=enforce')
    assert for_rcpt(world.r["mx"], rcpt) == []
    # the new policy first (its id is not published yet: not fetched), then the id
    world.srv.route(label, body=policy("enforce", ["*.example.net"]))
    world.txt[label] = "2"
    world.set_zone()
    before = len(attempts(world.node, dom(label)))
    world.node.wait_log(r'msg="outbound: attempt" .*domain=sts-change\.example\.net '
                        r'.*delivered=1', timeout=20)
    a = attempts(world.node, dom(label))
    assert len(a) > before
    delivered(a[-1], "mx.example.net")
    assert all(x["delivered"] == 0 for x in a[:-1]), a
    one_message(world.r["mx"], label, tls=True)
    assert re.search(r'msg="mta-sts: policy fetched" domain=sts-change\.example\.net id=2 ',
                     world.node.log_text())
    assert world.srv.count(label) == 2


def test_enforce_without_starttls_defers_never_cleartext(world):
    """Case 3: the policy's MX offers no STARTTLS: deferred; not even MAIL
    FROM is sent in clear (two attempts, 1 s apart)."""
    send(world.user, f"x@{dom('sts-notls')}", "sts-notls")
    deferred(wait_attempts(world.node, dom("sts-notls"))[0])
    a = wait_attempts(world.node, dom("sts-notls"), n=2)
    for x in a:
        deferred(x, "TLS is required but the server does not offer STARTTLS")
    nothing_sent(world.r["mx-plain"])


@pytest.mark.parametrize("label,host,why", [
    ("sts-badname", "mx-wrong", "the certificate is for another name"),
    ("sts-selfsigned", "mx-self", "not signed by a trusted authority"),
])
def test_enforce_certificate_not_valid_for_the_mx_defers(world, label, host, why):
    """Case 4: the MX is in the policy and offers STARTTLS, but its
    certificate is the CA's for mx.example.net (the MX is
    mx-wrong.example.net), or self-signed for the MX's name: deferred,
    the reason says MTA-STS (PKIX) and why; nothing sent."""
    send(world.user, f"x@{dom(label)}", label)
    (a, *_) = wait_attempts(world.node, dom(label))
    deferred(a, "MTA-STS (PKIX) certificate check failed", why)
    world.node.wait_log(rf'msg="outbound: TLS refused" host={host}\.example\.net '
                        r'why="MTA-STS \(PKIX\) certificate check failed')
    nothing_sent(world.r[host])


def test_testing_mode_delivers_and_logs(world):
    """Case 5: testing mode, the MX outside the policy: delivered (TLS
    when offered, as always), and the mismatch is logged."""
    send(world.user, f"x@{dom('sts-testing')}", "sts-testing")
    (a, *_) = wait_attempts(world.node, dom("sts-testing"))
    delivered(a, "mx.example.net")
    one_message(world.r["mx"], "sts-testing", tls=True)
    assert re.search(r'msg="outbound: MX not in the MTA-STS policy" '
                     r'domain=sts-testing\.example\.net mx=mx\.example\.net mode=testing',
                     world.node.log_text())


def test_no_policy_is_opportunistic(world):
    """Case 6: no _mta-sts TXT record: opportunistic delivery as usual.
    A self-signed certificate for another name is fine over STARTTLS, and
    a server without STARTTLS gets the mail in clear; no policy fetch."""
    send(world.user, f"x@{dom('nosts')}", "nosts")
    send(world.user, f"x@{dom('nosts-clear')}", "nosts-clear")
    (a, *_) = wait_attempts(world.node, dom("nosts"))
    delivered(a, "mx-any.example.net")
    one_message(world.r["mx-any"], "nosts", tls=True)
    (a, *_) = wait_attempts(world.node, dom("nosts-clear"))
    delivered(a, "mx-clear.example.net")
    one_message(world.r["mx-clear"], "nosts-clear", tls=False)
    assert world.srv.count("nosts") == world.srv.count("nosts-clear") == 0


def test_cached_policy_survives_restart_without_policy_server(world, base):
    """Case 7: a node fetches sts-restart's enforce policy and delivers.
    It is stopped; the policy server goes away and the domain's MX now
    names mx-plain (no STARTTLS, not in the policy: a node without the
    policy would deliver there in clear, as nosts-clear shows).  After the
    restart the policy from <data_dir>/mtasts.db is still enforced: the
    MX is refused, deferred, nothing sent."""
    b, nodes = base
    srv = HttpsServer(world.https_crt, world.https_key)
    try:
        srv.route("sts-restart", body=policy(*POLICIES["sts-restart"]))
        n = node_for(b, world, srv.port)
        nodes.append(n)
        n.start()
        u = User(b, "bob", n)
        u.register()
        rcpt = f"x@{dom('sts-restart')}"
        send(u, rcpt, "sts-restart")
        (a, *_) = wait_attempts(n, dom("sts-restart"))
        delivered(a, "mx.example.net")
        one_message(world.r["mx"], "sts-restart", tls=True)
        assert srv.count("sts-restart") == 1
        n.stop()
    finally:
        srv.stop()
    assert (Path(n.conf["data_dir"]) / "mtasts.db").exists()
    world.mx["sts-restart"] = "mx-plain"
    world.set_zone()
    try:
        since = len(n.log_text())
        n.start()
        send(u, rcpt, "sts-restart again")
        deferred(wait_attempts(n, dom("sts-restart"), since=since)[0])
        a = wait_attempts(n, dom("sts-restart"), n=2, since=since)
        for x in a:
            deferred(x, f"MTA-STS: no MX host of {dom('sts-restart')} matches its policy")
        after = n.log_text()[since:]
        assert re.search(r'msg="outbound: MX not in the MTA-STS policy" '
                         r'domain=sts-restart\.example\.net mx=mx-plain\.example\.net '
                         r'mode=enforce', after), after[-3000:]
        # the cached policy, not a fetch (the server is gone; the TXT id is 1)
        assert "mta-sts: policy fetch" not in after, after[-3000:]
        nothing_sent(world.r["mx-plain"])
        assert len(for_rcpt(world.r["mx"], rcpt)) == 1
    finally:
        world.mx["sts-restart"] = MX["sts-restart"]
        world.set_zone()
