"""Loopback DNS servers for end-to-end tests (issue 5), for any test
module to import:

    from dnsfixture import dns_server, dnssec_zone, dns_query  # noqa: F401

Fixtures (each a factory; every server it starts is stopped at the end
of the test):

  dns_server(zone_text) -> DnsServer
      tests/tools/dnsserver.py (dnslib) on a free 127.0.0.1 port, serving
      zone_text (zone-file lines, plus the pseudo records `name SERVFAIL`
      and `name TIMEOUT`).  .forwarder is "127.0.0.1@PORT" for
      dns_settings.forwarder / dns-query-tool --forwarder; .log() is the
      server's query log ("udp NAME TYPE RCODE[ TC]" lines).

  dnssec_zone(origin, zone_text, variant="signed") -> SignedZone
      the zone signed with ldns-signzone (one ED25519 key, NSEC3) and
      served by a private unbound (`unbound -d`, auth-zone, 127.0.0.1 on a
      free port, no chroot, no user switch, no remote control);
      .forwarder as above and .trust_anchor, a file with the key's DS
      record for dns_settings.trust_anchor / --ta.  libunbound validates
      its answers: `secure` for every record of the zone.  Variants, all
      served under the same trust anchor:
        "signed"    as generated;
        "tampered"  the signed zone with every A record's address changed
                    after signing (A answers are BOGUS, the rest secure);
        "unsigned"  the zone served unsigned (everything BOGUS: no DNSKEY
                    for the anchor);
        "expired"   signed with signatures that expired 5 days ago (BOGUS;
                    libunbound tolerates up to a day of clock skew).

Helpers:

  txt_rdata(text) -> str
      text as a TXT rdata in zone-file form (quoted strings of at most
      250 characters), for key records longer than one string;
  rsa_key() -> (pem bytes, p= value)
      a fresh 2048-bit RSA key made with openssl (PKCS#1 PEM, what dkimpy
      signs with) and its public key as a DKIM key record's p=;

  dns_query(kind, name, forwarder=..., ta=None, timeout=3000, args=())
      runs tests/tools/dns-query-tool and returns a DnsAnswer: .status,
      .secure, .why, .null_mx, .mx [(pref, host)], .addr [ip], .tlsa
      [(u, s, m, HEX)], .txt [str], .elapsed (ms), .lines (everything
      else it printed), .rc, .stderr.

The tool is $DNS_QUERY_TOOL, or build/tests/tools/dns-query-tool next to
$AMP_BIN (so the sanitizer build is tested when AMP_BIN points into it).
"""
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import AMP_BIN
from nodes import free_port

ROOT = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
SERVER = ROOT / "tests" / "tools" / "dnsserver.py"
TOOL = os.environ.get("DNS_QUERY_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "tools" / "dns-query-tool"))
UNBOUND = shutil.which("unbound", path="/usr/sbin:/usr/bin:/sbin:/bin")
LDNS_KEYGEN = shutil.which("ldns-keygen")
LDNS_SIGNZONE = shutil.which("ldns-signzone")


def _wait_dns(port: int, name: str, deadline: float, proc: subprocess.Popen):
    """Wait until 127.0.0.1:port answers a UDP query for name."""
    from dnslib import DNSRecord
    q = DNSRecord.question(name, "SOA").pack()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", port))
            s.recvfrom(4096)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def _stop(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DnsServer:
    def __init__(self, zone_text: str, workdir: Path):
        self.dir = workdir
        self.zone = workdir / "zone.txt"
        self.zone.write_text(zone_text)
        self.errlog = workdir / "server.log"
        self.port = free_port()
        self.forwarder = f"127.0.0.1@{self.port}"
        self.proc = subprocess.Popen(
            [PY, str(SERVER), "--port", str(self.port), "--zone", str(self.zone)],
            stdout=subprocess.PIPE, stderr=open(self.errlog, "wb"), text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise AssertionError(f"dnsserver.py did not start: {self.errlog.read_text()}")

    def log(self) -> str:
        return self.errlog.read_text()

    def stop(self):
        _stop(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        assert self.proc.returncode == 0, f"dnsserver.py exited {self.proc.returncode}"


class SignedZone:
    VARIANTS = ("signed", "tampered", "unsigned", "expired")

    def __init__(self, origin: str, zone_text: str, variant: str, workdir: Path):
        if variant not in self.VARIANTS:
            raise ValueError(variant)
        for tool, name in ((UNBOUND, "unbound"), (LDNS_KEYGEN, "ldns-keygen"),
                           (LDNS_SIGNZONE, "ldns-signzone")):
            if tool is None:
                pytest.fail(f"{name} not installed (scripts/bootstrap.sh installs it)")
        self.origin = origin.rstrip(".") + "."
        self.dir = workdir
        zone = workdir / "zone"
        zone.write_text(f"$ORIGIN {self.origin}\n$TTL 300\n{zone_text}\n")
        key = subprocess.run([LDNS_KEYGEN, "-a", "ED25519", "-k", self.origin],
                             cwd=workdir, capture_output=True, text=True, check=True)
        base = key.stdout.strip()
        self.trust_anchor = workdir / f"{base}.ds"
        assert self.trust_anchor.exists(), key.stdout + key.stderr
        now = datetime.datetime.now(datetime.timezone.utc)
        if variant == "expired":
            inception, expiration = now - datetime.timedelta(days=30), now - datetime.timedelta(days=5)
        else:
            inception, expiration = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7)
        fmt = "%Y%m%d%H%M%S"
        subprocess.run([LDNS_SIGNZONE, "-n", "-i", inception.strftime(fmt),
                        "-e", expiration.strftime(fmt), "-f", str(workdir / "zone.signed"),
                        str(zone), str(workdir / base)],
                       capture_output=True, text=True, check=True)
        served = workdir / "zone.signed"
        if variant == "unsigned":
            served = zone
        elif variant == "tampered":
            out = []
            for line in served.read_text().splitlines():
                f = line.split()
                if len(f) == 5 and f[3] == "A":
                    octets = f[4].split(".")
                    octets[-1] = str((int(octets[-1]) + 1) % 256)
                    line = "\t".join(f[:4] + [".".join(octets)])
                out.append(line)
            served = workdir / "zone.tampered"
            served.write_text("\n".join(out) + "\n")
        self.served = served
        self.port = free_port()
        self.forwarder = f"127.0.0.1@{self.port}"
        conf = workdir / "unbound.conf"
        conf.write_text(f"""server:
    interface: 127.0.0.1
    port: {self.port}
    do-ip6: no
    chroot: ""
    username: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    do-not-query-localhost: no
remote-control:
    control-enable: no
auth-zone:
    name: "{self.origin}"
    zonefile: "{served}"
    for-downstream: yes
    for-upstream: no
    fallback-enabled: no
""")
        self.errlog = workdir / "unbound.log"
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.errlog, "wb"))
        if not _wait_dns(self.port, self.origin, time.monotonic() + 10, self.proc):
            self.stop()
            raise AssertionError(f"unbound did not start: {self.errlog.read_text()}")

    def stop(self):
        _stop(self.proc)


@pytest.fixture
def dns_server():
    servers, dirs = [], []

    def make(zone_text: str) -> DnsServer:
        d = Path(tempfile.mkdtemp(prefix="amp-dns-"))
        dirs.append(d)
        s = DnsServer(zone_text, d)
        servers.append(s)
        return s
    yield make
    try:
        for s in servers:
            s.stop()
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dnssec_zone():
    zones, dirs = [], []

    def make(origin: str, zone_text: str, variant: str = "signed") -> SignedZone:
        d = Path(tempfile.mkdtemp(prefix="amp-dnssec-"))
        dirs.append(d)
        z = SignedZone(origin, zone_text, variant, d)
        zones.append(z)
        return z
    yield make
    try:
        for z in zones:
            z.stop()
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


class DnsAnswer:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.status = self.why = None
        self.secure = self.null_mx = False
        self.mx, self.addr, self.tlsa, self.txt, self.lines = [], [], [], [], []
        self.elapsed = None
        for line in proc.stdout.splitlines():
            key, _, rest = line.partition(" ")
            if key == "status":
                self.status = rest
            elif key == "secure":
                self.secure = rest == "yes"
            elif key == "why":
                self.why = None if rest == "-" else rest
            elif key == "null_mx":
                self.null_mx = rest == "yes"
            elif key == "mx":
                pref, host = rest.split(" ", 1)
                self.mx.append((int(pref), host))
            elif key == "addr":
                self.addr.append(rest)
            elif key == "tlsa":
                u, s, m, data = rest.split(" ")
                self.tlsa.append((int(u), int(s), int(m), data))
            elif key == "txt":
                self.txt.append(_unescape(rest))
            elif key == "elapsed":
                self.elapsed = int(rest)
            else:
                self.lines.append(line)

    def __repr__(self):
        return f"<DnsAnswer rc={self.rc} {self.stdout!r} {self.stderr!r}>"


def _unescape(quoted: str) -> str:
    assert quoted.startswith('"') and quoted.endswith('"'), quoted
    s, out, i = quoted[1:-1], [], 0
    while i < len(s):
        if s[i] == "\\":
            if s[i + 1] in '"\\':
                out.append(s[i + 1])
                i += 2
            else:
                out.append(chr(int(s[i + 1:i + 4])))
                i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def dns_query(kind: str, name: str, forwarder: str, ta=None, timeout: int = 3000,
              args=(), port=None, wall: float = 60) -> DnsAnswer:
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"dns-query-tool not found at {TOOL}; build first")
    cmd = [TOOL, "--forwarder", forwarder, "--timeout", str(timeout), *args]
    if ta is not None:
        cmd += ["--ta", str(ta)]
    cmd += [kind, name]
    if port is not None:
        cmd.append(str(port))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=wall)
    return DnsAnswer(p)


def txt_rdata(text: str) -> str:
    parts = [text[i:i + 250] for i in range(0, len(text), 250)] or [""]
    return " ".join('"' + p.replace('"', '\\"') + '"' for p in parts)


def rsa_key():
    import base64
    d = Path(tempfile.mkdtemp(prefix="amp-rsa-key-"))
    try:
        subprocess.run(["openssl", "genrsa", "-traditional", "-out",
                        str(d / "k.pem"), "2048"], check=True,
                       capture_output=True)
        pub = subprocess.run(["openssl", "rsa", "-in", str(d / "k.pem"),
                              "-pubout", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        return (d / "k.pem").read_bytes(), base64.b64encode(pub).decode()
    finally:
        shutil.rmtree(d, ignore_errors=True)
