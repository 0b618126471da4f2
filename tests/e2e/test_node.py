"""The AMP node end to end, as users and operators meet it: two real
aftersmtpd nodes (alpha.test, beta.test) on loopback, users registering,
sending, fetching and replying with the real `amp`, the node's refusals of
bad input checked with an independent Python client (ssl + protobuf from
proto/amp.proto + tests/interop/ampy.py for sealing), and the faults of
issue 3 (a peer down, kill -9 during relay, drain, reload)."""
import re
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nodes import AMP_BIN, AMPD, Node, User

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
import ampy  # noqa: E402

pb = ampy.pb
TRANSPORTS = os.environ.get("AMP_TEST_TRANSPORTS", "tls quic").split()


def maildir_files(d: Path):
    return sorted((d / "new").iterdir()) if (d / "new").exists() else []


# ------------------------------------------------------------- raw client

class Raw:
    """A bare TLS 1.3 client speaking frames (PROTOCOL.md §8.2) with
    Python's ssl and the protobuf schema; it cannot authenticate (Python
    has no TLS exporter), which is what the refusal tests need."""

    def __init__(self, node: Node):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["amp/1"])
        raw = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        self.s = ctx.wrap_socket(raw)
        self.rid = 0

    def send_bytes(self, data: bytes):
        self.s.sendall(data)

    def send_frame(self, payload: bytes):
        self.s.sendall(struct.pack(">I", len(payload)) + payload)

    def recv_frame(self):
        hdr = self._recv_exact(4)
        if hdr is None:
            return None
        n = struct.unpack(">I", hdr)[0]
        f = pb.Frame()
        f.ParseFromString(self._recv_exact(n))
        return f

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def call(self, **body):
        self.rid += 1
        f = pb.Frame(request_id=self.rid, **body)
        self.send_frame(f.SerializeToString())
        r = self.recv_frame()
        assert r is not None, "the node closed the connection"
        assert r.request_id == self.rid
        return r.response

    def close(self):
        self.s.close()


# ------------------------------------------------------------ happy paths

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_nodes_register_send_fetch_reply(two, transport):
    b, alpha, beta = two
    alice = User(b, "alice", alpha)
    bob = User(b, "bob", beta)
    alice.register(transport)                              # by stamp
    # the operator's invite, through `amp admin invite` (runs aftersmtpd)
    invite = bob.run("admin", "invite", "--config", str(beta.conf_path),
                     "--valid", "1h").stdout.decode().strip()
    assert invite.startswith("amp-invite-v1:")
    bob.register(transport, invite=invite)                 # by invite
    # an invite is single-use
    carol = User(b, "carol", beta)
    p = carol.register(transport, invite=invite, check=False)
    assert p.returncode == 1 and b"used already" in p.stderr

    msg = (b"From: alice\r\nTo: bob\r\nSubject: over " + transport.encode() +
           b"\r\n\r\nHello Bob,\r\nthis is end to end.\r\n\xe2\x9c\x93\r\n")
    p = alice.run("send", bob.did, input=msg)
    assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"
    # the envelope's digest, under which bob's node logs its receipt
    assert re.fullmatch(r"receipt [0-9a-f]{64}", p.stdout.decode().splitlines()[1])
    md = b / "bob-mail"
    bob.run("fetch", "--maildir", str(md), "--wait", "20", "--ack")
    files = maildir_files(md)
    assert len(files) == 1 and files[0].read_bytes() == msg   # byte-identical
    # the signature was verified by `amp fetch` (it refuses otherwise)
    alpha.wait_log(r'msg="relayed" .*domain=beta.test attempts=1 refused=0')
    # acked: the inbox is empty now
    assert bob.run("inbox").stdout == b""

    reply = b"Subject: Re: hi\r\n\r\nThanks Alice!\r\n"
    p = bob.run("send", alice.did, input=reply)
    assert p.stdout.decode().splitlines()[0] == f"{alice.did} OK"
    out = alice.run("fetch", "--wait", "20").stdout
    assert out.startswith(f"From {bob.did} ".encode())
    assert b"Thanks Alice!" in out


def test_long_poll_returns_when_mail_arrives(two):
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", alpha)
    alice.register()
    bob.register()
    md = b / "bob-mail"
    t0 = time.monotonic()
    fetch = subprocess.Popen([AMP_BIN, "fetch", "--maildir", str(md), "--wait", "30"],
                             env=bob.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    assert fetch.poll() is None          # waiting, not polling out
    alice.run("send", bob.did, input=b"ping\n")
    fetch.wait(timeout=20)
    assert fetch.returncode == 0
    assert time.monotonic() - t0 < 15
    assert [f.read_bytes() for f in maildir_files(md)] == [b"ping\n"]


# ------------------------------------------------------------------ faults

def test_peer_down_then_delivered_when_it_returns(two):
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
    alice.register()
    bob.register()
    beta.stop()
    # beta is down: alice's node cannot look bob up, so alice uses bob's
    # document directly (as if exchanged before)
    doc = b / "bob.json"
    bob.run("did", "document", "-o", str(doc))
    p = alice.run("send", "--doc", str(doc), bob.did, input=b"while you were out\n")
    assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"          # queued
    alpha.wait_log(r'msg="relay deferred" .*domain=beta.test', count=2)
    beta.start()
    md = b / "bob-mail"
    bob.run("fetch", "--maildir", str(md), "--wait", "30")
    assert [f.read_bytes() for f in maildir_files(md)] == [b"while you were out\n"]


def test_kill9_alpha_during_relay_delivers_exactly_once(two):
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
    alice.register()
    bob.register()
    doc = b / "bob.json"
    bob.run("did", "document", "-o", str(doc))
    beta.stop()
    n = 5
    for i in range(n):
        alice.run("send", "--doc", str(doc), bob.did, input=f"message {i}\n".encode())
    alpha.kill9()                       # queue entries acknowledged, then crash
    beta.start()
    alpha.start()
    # kill alpha again in the middle of relaying, at several moments
    for delay in (0.05, 0.2):
        time.sleep(delay)
        alpha.kill9()
        alpha.start()
    md = b / "bob-mail"
    deadline = time.monotonic() + 60
    while len(maildir_files(md)) < n and time.monotonic() < deadline:
        bob.run("fetch", "--maildir", str(md), "--wait", "2")
    time.sleep(3)                       # any duplicate would arrive now
    bob.run("fetch", "--maildir", str(md))
    got = sorted(f.read_bytes() for f in maildir_files(md))
    assert got == sorted(f"message {i}\n".encode() for i in range(n))


def test_refusals_and_the_node_keeps_serving(two):
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", alpha)
    alice.register()
    bob.register()

    # a garbage frame: answered BAD_REQUEST, the connection stays usable
    r = Raw(alpha)
    r.send_frame(b"\xff\xfe not protobuf \x00\x01")
    f = r.recv_frame()
    assert f.response.status == pb.STATUS_BAD_REQUEST
    assert r.call(hello=pb.HelloRequest()).status == pb.STATUS_OK
    # an unauthenticated fetch
    resp = r.call(fetch=pb.FetchRequest(limit=10))
    assert resp.status == pb.STATUS_UNAUTHENTICATED
    # an oversized frame (before auth the maximum is 64 KiB): closed from
    # the header alone
    r.send_bytes(struct.pack(">I", 10 * 1024 * 1024))
    assert r.recv_frame() is None
    r.close()

    # a weak stamp
    carol = User(b, "carol", alpha)
    while True:
        stamp = carol.run("pow", "mint", "--bits", "2").stdout.decode().strip()
        if carol.run("pow", "check", "--bits", "8", stamp, check=False).returncode != 0:
            break
    p = carol.run("register", "--node", f"127.0.0.1:{alpha.port}", "--transport", "tls",
                  "--stamp", stamp, check=False)
    assert p.returncode == 1 and b"AMP_E_POW_INSUFFICIENT" in p.stderr

    # an envelope from alice to bob, sealed by `amp seal`
    adoc, bdoc = b / "a.json", b / "b.json"
    alice.run("did", "document", "-o", str(adoc))
    bob.run("did", "document", "-o", str(bdoc))
    env = alice.run("seal", "--doc", str(bdoc), "--to", bob.did, input=b"original\n").stdout
    assert ampy.verify_envelope(env, ampy.DidDocument.parse(adoc.read_bytes())) is not None

    # a forged sender signature
    forged = bytearray(env)
    forged[-5] ^= 0x01
    r = Raw(alpha)
    resp = r.call(deliver=pb.DeliverRequest(envelope=bytes(forged)))
    assert resp.status == pb.STATUS_BAD_REQUEST and resp.error == "AMP_E_BAD_SIGNATURE"
    # the genuine envelope, delivered unauthenticated to a local user: OK
    resp = r.call(deliver=pb.DeliverRequest(envelope=env))
    assert resp.status == pb.STATUS_OK and not resp.deliver.duplicate
    # ... and replayed: refused as a replay, nothing stored twice
    resp = r.call(deliver=pb.DeliverRequest(envelope=env))
    assert resp.status == pb.STATUS_OK and resp.deliver.duplicate
    assert resp.error == "AMP_E_REPLAY"
    r.close()
    lines = bob.run("inbox").stdout.decode().splitlines()
    assert len(lines) == 1

    # the node still serves everyone
    p = alice.run("send", bob.did, input=b"still here\n")
    assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"
    assert len(bob.run("inbox").stdout.decode().splitlines()) == 2


def test_unauthenticated_relay_is_forbidden(two):
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
    alice.register()
    bob.register()
    bdoc = b / "b.json"
    bob.run("did", "document", "-o", str(bdoc))
    env = alice.run("seal", "--doc", str(bdoc), "--to", bob.did, input=b"x\n").stdout
    r = Raw(alpha)
    resp = r.call(deliver=pb.DeliverRequest(envelope=env))
    assert resp.status == pb.STATUS_FORBIDDEN
    assert resp.deliver.recipients[0].error.startswith("relaying denied")
    r.close()


def test_rate_limit_per_ip(base):
    b, nodes = base
    n = Node(b, "alpha.test", rate_per_ip=5)
    nodes.append(n)
    n.start()
    r = Raw(n)
    statuses = [r.call(hello=pb.HelloRequest()).status for _ in range(30)]
    assert statuses[:10] == [pb.STATUS_OK] * 10          # burst 2 x rate
    limited = [s for s in statuses if s == pb.STATUS_RATE_LIMITED]
    assert len(limited) >= 15
    r.close()


def test_non_delivery_notice_for_unknown_remote_user(two):
    b, alpha, beta = two
    alice = User(b, "alice", alpha)
    alice.register()
    ghost = User(b, "ghost", beta)       # keys exist, never registered at beta
    gdoc = b / "g.json"
    ghost.run("did", "document", "-o", str(gdoc))
    p = alice.run("send", "--doc", str(gdoc), ghost.did, input=b"anyone there?\n")
    assert p.returncode == 0              # accepted for relay by alpha
    out = alice.run("fetch", "--wait", "20").stdout.decode()
    assert out.startswith("From did:aftersmtp:alpha.test:node ")
    assert "Undelivered AMP message" in out
    assert ghost.did in out and "no such recipient here" in out


def test_expired_relay_gives_a_notice_after_a_clock_jump(two):
    """Q7: lifetimes use the wall clock, so a forward jump expires queued
    mail and produces the notice; timers use the monotonic clock."""
    b, alpha, beta = two
    alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
    alice.register()
    bob.register()
    doc = b / "b.json"
    bob.run("did", "document", "-o", str(doc))
    beta.stop()
    alice.run("send", "--doc", str(doc), bob.did, input=b"late\n")
    alpha.stop()
    # restart alpha six days in the future (relay_lifetime is 5 days)
    faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    if not os.path.exists(faketime):
        pytest.fail("libfaketime is missing: run scripts/bootstrap.sh")
    # (an ASan build must not insist on coming first in the preload list)
    env = dict(os.environ, LD_PRELOAD=faketime, FAKETIME="+6d",
               FAKETIME_DONT_FAKE_MONOTONIC="1",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    alpha.logf = alpha.log.open("ab")
    alpha.proc = subprocess.Popen([AMPD, "-c", str(alpha.conf_path), "run"],
                                  stdout=alpha.logf, stderr=alpha.logf, env=env)
    alpha.wait_log(r'msg="relay gave up; notice sent to the sender"')


def test_sighup_reload_and_sigterm_drain(base):
    b, nodes = base
    n = Node(b, "alpha.test")
    nodes.append(n)
    n.start()
    bob = User(b, "bob", n)
    bob.register()
    r = Raw(n)
    assert r.call(hello=pb.HelloRequest()).hello.pow_bits == 8
    n.conf["pow_bits"] = "12"
    n.write_conf()
    n.proc.send_signal(signal.SIGHUP)
    n.wait_log('msg="configuration reloaded"')
    assert r.call(hello=pb.HelloRequest()).hello.pow_bits == 12
    # a key that needs a restart: refused, the old configuration stays
    n.conf["max_streams"] = "7"
    n.write_conf()
    n.proc.send_signal(signal.SIGHUP)
    n.wait_log(r'msg="reload refused: needs a restart" key=".*max_streams')
    r.close()

    # SIGTERM with a long poll in progress: answered, then a clean exit
    fetch = subprocess.Popen([AMP_BIN, "fetch", "--wait", "60"], env=bob.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    assert fetch.poll() is None
    t0 = time.monotonic()
    assert n.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    assert fetch.wait(timeout=10) == 0
    log = n.log_text()
    assert 'msg="stopping: draining requests"' in log and 'msg="stopped"' in log


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_privileges_dropped_after_binding(base):
    b, nodes = base
    n = Node(b, "alpha.test")
    nodes.append(n)
    n.start()
    status = Path(f"/proc/{n.proc.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {"65534"}
    # and a root node with an empty `user` refuses to start
    n.conf["user"] = ""
    n.write_conf()
    p = n.ampd("run", check=False)
    assert p.returncode == 1 and "refusing to run as root" in p.stderr


def test_full_worker_pool_answers_retry_later(base):
    """AMP-R-031: with max_jobs=1, requests pipelined on one connection
    find the pool full and are answered RETRY_LATER with a retry time,
    not queued without bound; the node then serves normally."""
    b, nodes = base
    n = Node(b, "alpha.test", max_jobs=1, workers=1)
    nodes.append(n)
    n.start()
    alice, bob = User(b, "alice", n), User(b, "bob", n)
    alice.register()
    bob.register()
    adoc, bdoc = b / "a.json", b / "b.json"
    alice.run("did", "document", "-o", str(adoc))
    bob.run("did", "document", "-o", str(bdoc))
    envs = [alice.run("seal", "--doc", str(bdoc), "--to", bob.did,
                      input=f"n{i}\n".encode()).stdout for i in range(20)]
    r = Raw(n)
    for i, env in enumerate(envs):
        f = pb.Frame(request_id=i + 1, deliver=pb.DeliverRequest(envelope=env))
        r.send_frame(f.SerializeToString())
    answers = {}
    for _ in envs:
        f = r.recv_frame()
        answers[f.request_id] = f.response
    r.close()
    assert sorted(answers) == list(range(1, 21))
    busy = [a for a in answers.values() if a.status == pb.STATUS_RETRY_LATER]
    ok = [a for a in answers.values() if a.status == pb.STATUS_OK]
    assert busy and ok and len(busy) + len(ok) == 20
    assert all(a.retry_after_ms > 0 for a in busy)
    assert len(bob.run("inbox").stdout.splitlines()) == len(ok)


class SrvResponder(threading.Thread):
    """A tiny authoritative DNS server on 127.0.0.1:53 (UDP) answering SRV
    queries from a table, NXDOMAIN otherwise (RFC 1035 wire format,
    RFC 2782 SRV)."""

    def __init__(self, records):
        super().__init__(daemon=True)
        self.records = records          # name -> (priority, weight, port, target)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.sock.settimeout(0.2)
        self.running = True
        self.queries = []

    @staticmethod
    def encode_name(name):
        return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"

    def run(self):
        while self.running:
            try:
                q, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            qid, flags = struct.unpack(">HH", q[:4])
            labels, i = [], 12
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += q[i] + 1
            qname, question = ".".join(labels).lower(), q[12:i + 5]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            self.queries.append((qname, qtype))
            rec = self.records.get(qname) if qtype == 33 else None
            rcode = 0 if rec else 3
            hdr = struct.pack(">HHHHHH", qid, 0x8400 | rcode, 1, 1 if rec else 0, 0, 0)
            ans = b""
            if rec:
                prio, weight, port, target = rec
                rdata = struct.pack(">HHH", prio, weight, port) + self.encode_name(target)
                ans = b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(rdata)) + rdata
            self.sock.sendto(hdr + question + ans, addr)

    def stop(self):
        self.running = False
        self.join()
        self.sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: DNS on port 53 and a mount namespace")
@pytest.mark.parametrize("srv", ["_amp._tcp", "_amp._udp"])
def test_peer_found_through_dns_srv(base, srv):
    """No transport map entry: alpha finds beta's node through the SRV
    record (_amp._udp: QUIC, _amp._tcp: TLS) served by a local DNS
    server; alpha runs in a mount namespace whose /etc/resolv.conf points
    at it."""
    b, nodes = base
    alpha, beta = Node(b, "alpha.test"), Node(b, "beta.test")
    nodes += [alpha, beta]
    beta.route_to(alpha)
    dns = SrvResponder({f"{srv}.beta.test": (10, 10, beta.port, "localhost.")})
    dns.start()
    try:
        resolv = b / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        resolv.chmod(0o644)
        alpha.start(wrapper=["unshare", "--mount", "--", "sh", "-c",
                             f"mount --bind {resolv} /etc/resolv.conf && exec \"$0\" \"$@\""])
        beta.start()
        alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
        alice.register()
        bob.register()
        p = alice.run("send", bob.did, input=b"found you\n")   # lookup via SRV too
        assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"
        assert b"found you" in bob.run("fetch", "--wait", "20").stdout
        assert (f"{srv}.beta.test", 33) in dns.queries
        alpha.wait_log(r'msg="relayed" .*domain=beta.test')
    finally:
        dns.stop()


def test_unpinned_peers_authenticate_through_the_registry(base):
    """No key= in either transport map: the relaying node authenticates
    with its node key, which the receiving node checks against the node's
    own DID document (a lookup at its home node), so big messages (over
    the 64 KiB pre-authentication frame limit) relay too.  A message to a
    remote and a local recipient gives no notice for the local one."""
    b, nodes = base
    alpha, beta = Node(b, "alpha.test"), Node(b, "beta.test")
    alpha.route_to(beta, pin=False)
    beta.route_to(alpha, pin=False)
    nodes += [alpha, beta]
    alpha.start()
    beta.start()
    alice, bob = User(b, "alice", alpha), User(b, "bob", beta)
    alice.register()
    bob.register()
    big = b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 16384)   # 256 KiB
    p = alice.run("send", bob.did, alice.did, input=big)
    assert sorted(p.stdout.decode().split("\n")[:2]) == sorted(
        [f"{bob.did} OK", f"{alice.did} OK"])
    md = b / "bob-mail"
    bob.run("fetch", "--maildir", str(md), "--wait", "20")
    assert [f.read_bytes() for f in maildir_files(md)] == [big]
    beta.wait_log(r'msg="authenticated" as=peer-node')
    time.sleep(1.5)
    out = alice.run("fetch").stdout
    assert out.count(b"Subject: big") == 1 and b"Undelivered" not in out


def test_anonymous_delivery_from_a_remote_sender_is_refused(two):
    """An unauthenticated client cannot make the node fetch a remote
    sender's keys: mail from remote senders comes from authenticated
    nodes."""
    b, alpha, beta = two
    bob = User(b, "bob", alpha)
    bob.register()
    carol = User(b, "carol", beta)
    carol.register()
    bdoc = b / "b.json"
    bob.run("did", "document", "-o", str(bdoc))
    env = carol.run("seal", "--doc", str(bdoc), "--to", bob.did, input=b"hi\n").stdout
    r = Raw(alpha)
    resp = r.call(deliver=pb.DeliverRequest(envelope=env))
    r.close()
    assert resp.status == pb.STATUS_UNAUTHENTICATED
    assert "authenticated node" in resp.error
    # the same message through carol's node arrives
    p = carol.run("send", bob.did, input=b"hi\n")
    assert p.stdout.decode().splitlines()[0] == f"{bob.did} OK"
    assert b"hi" in bob.run("fetch", "--wait", "20").stdout
