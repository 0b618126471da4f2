"""MTA-STS policy discovery (RFC 8461; src/daemon/mtasts-fetch.c, issue 5)
through tests/tools/mtasts-tool, against a loopback DNS server
(dnsfixture.dns_server) and a loopback HTTPS server (Python's http.server
with ssl) whose certificate a private CA made with openssl signed.

Cases: a valid enforce policy (and testing, none, max_age capped); no
_mta-sts TXT record, two STS records, an invalid one; the fetch refused
for a certificate from an unknown CA or for another name, a redirect, a
policy over 64 KiB (with and without Content-Length), a Content-Type
other than text/plain, HTTP 404, an invalid policy, no address, a server
that does not answer in time; the cache: a second request answered from
memory without a fetch, requests at once share one fetch, a restart keeps
the policy (SQLite) even with the HTTPS server gone, a new TXT id
refetches, a failed refetch keeps the cached policy, the TXT record gone
keeps it until max_age, an expired policy is not used, a database row
that no longer parses is deleted, a database that cannot be opened stops
the start, the domain limit evicts; the fetcher freed with a transfer or
DNS queries in flight; a bad domain refused.
"""
import http.server
import os
import re
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import AMP_BIN
from dnsfixture import dns_server  # noqa: F401

TOOL = os.environ.get("MTASTS_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "tools" / "mtasts-tool"))

POLICY = ("version: STSv1\nmode: enforce\nmx: mail.example.net\n"
          "mx: *.mx.example.net\nmax_age: 86400\n")

# Names the HTTPS server's certificate is valid for (mta-sts.NAME).
CERT_NAMES = ["good", "again", "cache", "idchange", "refetch", "gone",
              "restart", "expire", "testing", "none", "cap", "redirect",
              "big", "bigchunk", "html", "missing", "invalid", "slow",
              "twotxt", "badtxt", "noaddr", "together", "free"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA, a server certificate for mta-sts.<name>.example.net
    (every CERT_NAMES entry) and a self-signed one for the same names."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=AfterSMTP test CA", cwd=d)
    sans = ",".join(f"DNS:mta-sts.{n}.example.net" for n in CERT_NAMES)
    (d / "ext.cnf").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr",
            "-subj", "/CN=mta-sts.good.example.net", cwd=d)
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", "srv.crt", "-days", "2",
            "-extfile", "ext.cnf", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "self.key", "-out", "self.crt",
            "-days", "2", "-subj", "/CN=mta-sts.good.example.net",
            "-addext", f"subjectAltName={sans}", cwd=d)
    return d


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        srv = self.server
        with srv.lock:
            srv.requests.append((host, self.path))
            spec = dict(srv.routes.get(host, {"status": 404}))
        if spec.get("delay"):
            time.sleep(spec["delay"])
        body = spec.get("body", "").encode() if isinstance(
            spec.get("body", ""), str) else spec["body"]
        self.send_response(spec.get("status", 200))
        self.send_header("Content-Type", spec.get("ctype", "text/plain"))
        for k, v in spec.get("headers", {}).items():
            self.send_header(k, v)
        if spec.get("length", True):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class HttpsServer:
    """HTTPS on 127.0.0.1 (a free port), answering per Host from routes:
    host -> {status, body, ctype, headers, length (send Content-Length),
    delay (seconds before answering)}; .requests lists (host, path)."""

    def __init__(self, cert, key):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                            do_handshake_on_connect=False)
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.routes = {}
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05})
        self.thread.start()
        self.stopped = False

    def route(self, name, **spec):
        with self.httpd.lock:
            self.httpd.routes[f"mta-sts.{name}.example.net"] = spec

    def count(self, name):
        with self.httpd.lock:
            return sum(1 for h, _ in self.httpd.requests
                       if h == f"mta-sts.{name}.example.net")

    def paths(self):
        with self.httpd.lock:
            return [p for _, p in self.httpd.requests]

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=10)


@pytest.fixture
def https(pki):
    servers = []

    def make(self_signed=False):
        s = HttpsServer(pki / ("self.crt" if self_signed else "srv.crt"),
                        pki / ("self.key" if self_signed else "srv.key"))
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


def zone(txt: dict, addr=None) -> str:
    """example.net with _mta-sts.NAME TXT records (a str or a list of
    them; None: no record) and mta-sts.NAME A 127.0.0.1 for every NAME in
    addr (default: every CERT_NAMES entry)."""
    lines = ["$ORIGIN example.net.", "$TTL 300",
             "@ IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 300",
             "mail IN A 127.0.0.1"]
    for name, recs in txt.items():
        if recs is None:
            continue
        for r in [recs] if isinstance(recs, str) else recs:
            lines.append(f'_mta-sts.{name} IN TXT "{r}"')
    for name in (CERT_NAMES if addr is None else addr):
        lines.append(f"mta-sts.{name} IN A 127.0.0.1")
    return "\n".join(lines) + "\n"


LINE = re.compile(r'^(\S+) (policy|nopolicy|refused)(.*?)(?: why="(.*)")?$')


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.answers = []       # (domain, kind, fields dict, why)
        self.stats = {}
        for line in proc.stdout.splitlines():
            if line.startswith("stats "):
                self.stats = dict(kv.split("=") for kv in line.split()[1:])
                continue
            m = LINE.match(line)
            if not m:
                continue
            fields = dict(kv.split("=", 1) for kv in m.group(3).split())
            self.answers.append((m.group(1), m.group(2), fields,
                                 (m.group(4) or "").replace('\\"', '"')))

    def one(self, i=0):
        return self.answers[i]


def run(dns, srv, *domains, ca=None, data_dir=None, timeout=5000, retry=0,
        args=(), port=None):
    cmd = [TOOL, "--forwarder", dns.forwarder, "--port",
           str(port if port is not None else srv.port),
           "--timeout", str(timeout), "--retry", str(retry)]
    if ca is not None:
        cmd += ["--ca", str(ca)]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    cmd += list(args) + list(domains)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    r = Result(p)
    # the sanitizer build: ASan, LeakSanitizer and UBSan findings
    assert "Sanitizer" not in p.stderr, p.stderr
    assert "runtime error" not in p.stderr, p.stderr
    return r


def d(name):
    return f"{name}.example.net"


# ---------------------------------------------------------------- policies

def test_valid_enforce_policy(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("good", body=POLICY)
    dns = dns_server(zone({"good": "v=STSv1; id=20160831085700Z;"}))
    r = run(dns, srv, d("good"), ca=pki / "ca.crt")
    assert r.rc == 0, r.stdout + r.stderr
    dom, kind, f, why = r.one()
    assert (dom, kind) == (d("good"), "policy")
    assert f["mode"] == "enforce" and f["id"] == "20160831085700Z"
    assert f["max_age"] == "86400" and 86390 <= int(f["ttl"]) <= 86400
    assert f["mx"] == "mail.example.net,*.mx.example.net"
    assert why == "policy fetched"
    assert srv.paths() == ["/.well-known/mta-sts.txt"]
    assert r.stats["fetches"] == "1"


def test_policy_modes_and_cap(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("testing", body=POLICY.replace("enforce", "testing"))
    srv.route("none", body="version: STSv1\r\nmode: none\r\nmax_age: 60\r\n")
    srv.route("cap", body=POLICY.replace("86400", "9999999999"),
              ctype="text/plain; charset=utf-8")
    dns = dns_server(zone({"testing": "v=STSv1; id=t1", "none": "v=STSv1; id=n1",
                           "cap": "v=STSv1; id=c1; ext=x"}))
    r = run(dns, srv, d("testing"), d("none"), d("cap"), ca=pki / "ca.crt")
    assert r.rc == 0, r.stderr
    got = {a[0]: a for a in r.answers}
    assert got[d("testing")][2]["mode"] == "testing"
    assert got[d("none")][1] == "policy" and got[d("none")][2]["mode"] == "none"
    assert got[d("none")][2]["mx"] == ""
    assert got[d("cap")][2]["max_age"] == "31557600"


def test_no_txt_record(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("good", body=POLICY)      # never asked: no TXT record
    dns = dns_server(zone({"good": None}))
    r = run(dns, srv, d("good"), d("nosuch"), ca=pki / "ca.crt")
    assert r.rc == 0
    assert [(a[1], a[3]) for a in r.answers] == [
        ("nopolicy", "no _mta-sts TXT record")] * 2
    assert srv.count("good") == 0


def test_txt_records_refused(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("twotxt", body=POLICY)
    srv.route("badtxt", body=POLICY)
    dns = dns_server(zone({"twotxt": ["v=STSv1; id=1", "v=STSv1; id=2"],
                           "badtxt": ["v=STSv1; id=not-alnum", "v=spf1 -all"]}))
    r = run(dns, srv, d("twotxt"), d("badtxt"), ca=pki / "ca.crt")
    a, b = r.answers
    assert a[1] == "nopolicy" and "more than one" in a[3]
    assert b[1] == "nopolicy" and "invalid _mta-sts TXT record" in b[3]
    assert srv.count("twotxt") == srv.count("badtxt") == 0


# ------------------------------------------------------- refused fetches

def test_certificate_refused(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("good", body=POLICY)
    dns = dns_server(zone({"good": "v=STSv1; id=1", "wrongname": "v=STSv1; id=1"},
                          addr=CERT_NAMES + ["wrongname"]))
    srv.route("wrongname", body=POLICY)
    # our CA, but the certificate does not name mta-sts.wrongname...
    r = run(dns, srv, d("wrongname"), ca=pki / "ca.crt")
    dom, kind, _, why = r.one()
    assert kind == "nopolicy" and why.startswith("policy fetch failed:"), why
    assert "certificate" in why.lower() or "ssl" in why.lower(), why
    # ...the system CAs do not know ours...
    r = run(dns, srv, d("good"))
    assert r.one()[1] == "nopolicy" and "policy fetch failed" in r.one()[3]
    # ...and a self-signed certificate for the right name
    bad = https(self_signed=True)
    bad.route("good", body=POLICY)
    r = run(dns, bad, d("good"), ca=pki / "ca.crt")
    assert r.one()[1] == "nopolicy", r.stdout
    assert "certificate" in r.one()[3].lower() or "ssl" in r.one()[3].lower()
    assert srv.count("good") == 0 and bad.count("good") == 0


def test_redirect_refused(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("good", body=POLICY)
    srv.route("redirect", status=301, headers={
        "Location": f"https://mta-sts.good.example.net:{srv.port}/.well-known/mta-sts.txt"})
    dns = dns_server(zone({"redirect": "v=STSv1; id=1", "good": "v=STSv1; id=1"}))
    r = run(dns, srv, d("redirect"), ca=pki / "ca.crt")
    _, kind, _, why = r.one()
    assert kind == "nopolicy"
    assert "HTTP 301 redirect to https://mta-sts.good.example.net" in why, why
    assert "refused" in why
    assert srv.count("good") == 0      # not followed


def test_oversized_and_wrong_type(dns_server, https, pki):  # noqa: F811
    srv = https()
    big = POLICY + ("x-pad: " + "p" * 70 + "\n") * 1000      # ~78 KB
    assert len(big) > 65536
    srv.route("big", body=big)                              # Content-Length
    srv.route("bigchunk", body=big, length=False)           # to the close
    srv.route("html", body=POLICY, ctype="text/html")
    srv.route("missing", status=404, body="no")
    srv.route("invalid", body="version: STSv1\nmode: enforce\nmx: a.example.net\n")
    names = ["big", "bigchunk", "html", "missing", "invalid"]
    dns = dns_server(zone({n: "v=STSv1; id=1" for n in names}))
    r = run(dns, srv, *[d(n) for n in names], ca=pki / "ca.crt")
    why = {a[0]: a[3] for a in r.answers if a[1] == "nopolicy"}
    assert len(why) == 5, r.stdout
    assert "larger than 65536 bytes" in why[d("big")]
    assert "larger than 65536 bytes" in why[d("bigchunk")]
    assert "Content-Type text/html is not text/plain" in why[d("html")]
    assert why[d("missing")].endswith("HTTP 404")
    assert "invalid policy: the policy has no max_age field" in why[d("invalid")]
    # a 64 KiB policy exactly is fine
    exact = POLICY + "x-pad: " + "p" * (65536 - len(POLICY) - 8) + "\n"
    assert len(exact) == 65536
    srv.route("big", body=exact)
    r = run(dns, srv, d("big"), ca=pki / "ca.crt")
    assert r.one()[1] == "policy", r.stdout


def test_no_address_and_timeout(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("slow", body=POLICY, delay=4)
    dns = dns_server(zone({"noaddr": "v=STSv1; id=1", "slow": "v=STSv1; id=1"},
                          addr=["slow"]))
    t0 = time.monotonic()
    r = run(dns, srv, d("noaddr"), d("slow"), ca=pki / "ca.crt", timeout=1000)
    elapsed = time.monotonic() - t0
    a, b = r.answers
    assert a[1] == "nopolicy" and "no address for mta-sts.noaddr.example.net" in a[3]
    assert b[1] == "nopolicy" and "timed out" in b[3].lower(), b[3]
    assert elapsed < 4, elapsed


# ------------------------------------------------------------------ cache

def test_cache_hit_without_refetch(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("cache", body=POLICY)
    dns = dns_server(zone({"cache": "v=STSv1; id=1"}))
    r = run(dns, srv, d("cache"), d("cache"), d("cache"), ca=pki / "ca.crt")
    whys = [a[3] for a in r.answers]
    assert whys == ["policy fetched", "cached policy (TXT id unchanged)",
                    "cached policy (TXT id unchanged)"]
    assert srv.count("cache") == 1
    assert r.stats["cache_hits"] == "2" and r.stats["fetches"] == "1"


def test_requests_at_once_share_one_fetch(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("together", body=POLICY, delay=0.3)
    dns = dns_server(zone({"together": "v=STSv1; id=1"}))
    r = run(dns, srv, *[d("together")] * 5, ca=pki / "ca.crt",
            args=["--together"])
    assert [a[1] for a in r.answers] == ["policy"] * 5
    assert {a[3] for a in r.answers} == {"policy fetched"}
    assert srv.count("together") == 1


def test_restart_keeps_policy(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    srv.route("restart", body=POLICY)
    dns = dns_server(zone({"restart": "v=STSv1; id=1"}))
    r = run(dns, srv, d("restart"), ca=pki / "ca.crt", data_dir=tmp_path)
    assert r.one()[3] == "policy fetched"
    assert (tmp_path / "mtasts.db").exists()
    srv.stop()                          # the HTTPS server is gone
    r = run(dns, srv, d("restart"), ca=pki / "ca.crt", data_dir=tmp_path)
    dom, kind, f, why = r.one()
    assert kind == "policy" and why == "cached policy (TXT id unchanged)"
    assert f["id"] == "1" and f["mx"] == "mail.example.net,*.mx.example.net"
    assert r.stats["fetches"] == "0"


def test_new_id_refetches(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    srv.route("idchange", body=POLICY)
    dns1 = dns_server(zone({"idchange": "v=STSv1; id=1"}))
    run(dns1, srv, d("idchange"), ca=pki / "ca.crt", data_dir=tmp_path)
    srv.route("idchange", body=POLICY.replace("enforce", "testing"))
    dns2 = dns_server(zone({"idchange": "v=STSv1; id=2"}))
    r = run(dns2, srv, d("idchange"), d("idchange"), ca=pki / "ca.crt",
            data_dir=tmp_path)
    (_, _, f, why), (_, _, f2, why2) = r.answers
    assert why == "policy fetched" and f["id"] == "2" and f["mode"] == "testing"
    assert why2 == "cached policy (TXT id unchanged)" and f2["id"] == "2"
    assert srv.count("idchange") == 2
    # and the new one is what a restart finds
    r = run(dns2, srv, d("idchange"), ca=pki / "ca.crt", data_dir=tmp_path)
    assert r.one()[2]["id"] == "2" and r.stats["fetches"] == "0"


def test_failed_refetch_keeps_cached_policy(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    srv.route("refetch", body=POLICY)
    dns1 = dns_server(zone({"refetch": "v=STSv1; id=1"}))
    run(dns1, srv, d("refetch"), ca=pki / "ca.crt", data_dir=tmp_path)
    srv.route("refetch", status=500, body="oops")
    dns2 = dns_server(zone({"refetch": "v=STSv1; id=2"}))
    r = run(dns2, srv, d("refetch"), ca=pki / "ca.crt", data_dir=tmp_path,
            retry=300, args=[])
    dom, kind, f, why = r.one()
    assert kind == "policy" and f["id"] == "1" and f["mode"] == "enforce"
    assert why.startswith("policy fetch failed: ") and "HTTP 500" in why
    assert why.endswith("cached policy (id 1) used until it expires"), why
    # within retry_s the same process does not ask again
    r = run(dns2, srv, d("refetch"), d("refetch"), ca=pki / "ca.crt",
            data_dir=tmp_path, retry=300)
    assert [a[1] for a in r.answers] == ["policy", "policy"]
    assert "policy fetch failed" in r.answers[1][3] and "s ago" in r.answers[1][3]
    assert srv.count("refetch") == 3    # 1 + one per process


def test_unreadable_cache_row_dropped(dns_server, https, pki, tmp_path):  # noqa: F811
    import sqlite3
    srv = https()
    srv.route("again", body=POLICY)
    dns = dns_server(zone({"again": "v=STSv1; id=1"}))
    run(dns, srv, d("again"), ca=pki / "ca.crt", data_dir=tmp_path)
    db = sqlite3.connect(tmp_path / "mtasts.db")
    db.execute("UPDATE mtasts_policy SET policy = ? WHERE domain = ?",
               (b"version: STSv1\nmode: enforce\n", d("again")))
    db.commit()
    db.close()
    r = run(dns, srv, d("again"), ca=pki / "ca.crt", data_dir=tmp_path)
    assert r.one()[3] == "policy fetched" and srv.count("again") == 2
    assert "unreadable cached policies deleted" in r.stderr
    db = sqlite3.connect(tmp_path / "mtasts.db")
    rows = db.execute("SELECT domain, id, policy FROM mtasts_policy").fetchall()
    db.close()
    assert rows == [(d("again"), "1", POLICY.encode())]


def test_cache_file_cannot_open(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    dns = dns_server(zone({}))
    r = run(dns, srv, d("good"), ca=pki / "ca.crt",
            data_dir=tmp_path / "missing")
    assert r.rc == 1 and "MTA-STS cache" in r.stderr and r.answers == []


def test_txt_gone_keeps_cached_policy(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    srv.route("gone", body=POLICY)
    run(dns_server(zone({"gone": "v=STSv1; id=1"})), srv, d("gone"),
        ca=pki / "ca.crt", data_dir=tmp_path)
    r = run(dns_server(zone({"gone": None})), srv, d("gone"),
            ca=pki / "ca.crt", data_dir=tmp_path)
    dom, kind, f, why = r.one()
    assert kind == "policy" and f["id"] == "1"
    assert why == ("no _mta-sts TXT record; cached policy (id 1) used until "
                   "it expires")
    assert srv.count("gone") == 1


def test_expired_policy_not_used(dns_server, https, pki, tmp_path):  # noqa: F811
    srv = https()
    srv.route("expire", body=POLICY.replace("86400", "1"))
    dns = dns_server(zone({"expire": "v=STSv1; id=1"}))
    r = run(dns, srv, d("expire"), ca=pki / "ca.crt", data_dir=tmp_path)
    assert r.one()[1] == "policy" and r.one()[2]["max_age"] == "1"
    time.sleep(2.1)
    srv.route("expire", status=404)
    r = run(dns, srv, d("expire"), ca=pki / "ca.crt", data_dir=tmp_path)
    assert r.one()[1] == "nopolicy" and "HTTP 404" in r.one()[3]
    assert srv.count("expire") == 2


# ------------------------------------------------------------- lifetimes

def test_free_with_transfer_in_flight(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("free", body=POLICY, delay=1.5)
    dns = dns_server(zone({"free": "v=STSv1; id=1"}))
    r = run(dns, srv, d("free"), d("good"), ca=pki / "ca.crt", timeout=5000,
            args=["--together", "--free-after", "500"])
    assert r.rc == 0, r.stderr
    assert "freed 2 outstanding" in r.stdout or "freed 1 outstanding" in r.stdout, r.stdout
    assert " policy " not in r.stdout.split("freed")[1]
    # freed at once: the TXT queries are still out
    r = run(dns, srv, d("free"), d("good"), ca=pki / "ca.crt",
            args=["--together", "--free-after", "0"])
    assert r.rc == 0 and "freed 2 outstanding" in r.stdout, r.stdout + r.stderr


def test_cache_limit_evicts(dns_server, https, pki):  # noqa: F811
    srv = https()
    srv.route("good", body=POLICY)
    srv.route("again", body=POLICY)
    dns = dns_server(zone({"good": "v=STSv1; id=1", "again": "v=STSv1; id=1"}))
    r = run(dns, srv, d("good"), d("again"), d("good"), d("again"), d("again"),
            ca=pki / "ca.crt", args=["--cache-max", "1"])
    assert [a[3] for a in r.answers] == ["policy fetched"] * 4 + [
        "cached policy (TXT id unchanged)"]
    assert srv.count("good") == 2 and srv.count("again") == 2
    assert r.stats["cached"] == "1"


def test_bad_domain_refused(dns_server, https, pki):  # noqa: F811
    srv = https()
    dns = dns_server(zone({}))
    r = run(dns, srv, "bad..example.net", ca=pki / "ca.crt")
    assert r.rc == 1 and "bad..example.net refused" in r.stdout
    r = run(dns, srv, "a" * 245, ca=pki / "ca.crt")
    assert r.rc == 1
