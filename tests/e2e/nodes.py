"""Real aftersmtpd nodes for end-to-end tests.

A Node is a daemon process with its own directory, configuration, log
file and free port (TCP and UDP alike), listening on 127.0.0.1 only.
When the tests run as root the node drops to `nobody`, so its directory
is created world-traversable under /tmp (pytest's tmp_path is 0700).
Every node started is stopped by the fixture that made it.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AMP_BIN = os.environ.get("AMP_BIN", str(ROOT / "build" / "src" / "cli" / "amp"))
AMPD = os.environ.get("AMPD_BIN", str(Path(AMP_BIN).parents[1] / "daemon" / "aftersmtpd"))
PASS = "e2e passphrase"


_QUIET_DNS = None


def quiet_dns_forwarder() -> str:
    """"127.0.0.1@PORT" of a loopback DNS server that knows no names
    (NXDOMAIN for every question: tests/tools/dnsserver.py with an empty
    zone), started once per test process and stopped when it exits.  It
    is every node's default dns_forwarder, so the checks of inbound mail
    (SPF, DKIM, DMARC, issue 7) run in every test without asking outside
    this machine and without waiting: SPF none, DMARC none, DKIM without
    a key.  Tests that need records start their own server
    (dnsfixture.py) and pass its forwarder."""
    global _QUIET_DNS
    if _QUIET_DNS is None:
        import atexit
        d = Path(tempfile.mkdtemp(prefix="amp-quiet-dns-"))
        zone = d / "zone.txt"
        zone.write_text("$ORIGIN invalid.\n$TTL 300\n"
                        "@ IN SOA ns.invalid. h.invalid. 1 3600 600 86400 300\n")
        port = free_port()
        proc = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "tests" / "tools" / "dnsserver.py"),
             "--port", str(port), "--zone", str(zone)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise RuntimeError("the quiet DNS server did not start")

        def stop():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(d, ignore_errors=True)
        atexit.register(stop)
        _QUIET_DNS = f"127.0.0.1@{port}"
    return _QUIET_DNS


def split_trace(stored: bytes):
    """A message as a node stored it from SMTP: (its Received: field, its
    one Authentication-Results: field, the message as the client sent
    it).  The node adds both at the top, Received: first (three lines,
    the last `\\tfor <...>;`), then Authentication-Results: (folded
    lines and all)."""
    assert stored.startswith(b"Received: from "), stored[:80]
    i = stored.index(b"\r\n", stored.index(b"\r\n\tfor <") + 2) + 2
    rest = stored[i:]
    assert rest.startswith(b"Authentication-Results: "), rest[:200]
    j = rest.index(b"\r\n")
    while rest[j + 2:j + 3] in (b" ", b"\t"):
        j = rest.index(b"\r\n", j + 2)
    return stored[:i], rest[:j + 2], rest[j + 2:]


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        return port
    raise RuntimeError("no free port")


class Node:
    def __init__(self, base: Path, domain: str, **conf):
        self.domain = domain
        self.dir = base / domain
        self.dir.mkdir(mode=0o755)
        self.port = free_port()
        self.proc = None
        self.log = self.dir / "node.log"
        self.map = self.dir / "transport.map"
        self.map.write_text("")
        self.conf = {
            "domains": domain,
            "data_dir": str(self.dir / "data"),
            "port": str(self.port),
            "pow_bits": "8",
            "transport_map": str(self.map),
            "relay_retry_min": "1s",
            "relay_retry_max": "2s",
            "peer_timeout": "3s",
            "log_level": "debug",
            "dns_forwarder": quiet_dns_forwarder(),
        }
        if os.geteuid() == 0:
            self.conf["user"] = "nobody"
        self.conf.update({k: str(v) for k, v in conf.items()})
        self.write_conf()
        self.ampd("init")
        self.key = re.search(r"p=([A-Za-z0-9_-]+);", self.ampd("show-node").stdout).group(1)

    @property
    def conf_path(self):
        return self.dir / "aftersmtpd.conf"

    def write_conf(self):
        self.conf_path.write_text("".join(f"{k} = {v}\n" for k, v in self.conf.items()))

    def ampd(self, *args, check=True):
        p = subprocess.run([AMPD, "-c", str(self.conf_path), *args], capture_output=True,
                           text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"aftersmtpd {args}: {p.returncode}: {p.stderr}")
        return p

    def route_to(self, other: "Node", transport="tls", pin=True):
        line = f"{other.domain} 127.0.0.1:{other.port} {transport}"
        if pin:
            line += f" key={other.key}"
        with self.map.open("a") as f:
            f.write(line + "\n")

    def start(self, wait=True, wrapper=()):
        """wrapper: a command that execs the daemon given after it, e.g.
        unshare (the pid stays the daemon's)."""
        assert self.proc is None
        ready_before = self.log_text().count('msg="node ready"')
        self.logf = self.log.open("ab")
        self.proc = subprocess.Popen([*wrapper, AMPD, "-c", str(self.conf_path), "run"],
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            self.wait_log('msg="node ready"', count=ready_before + 1)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern: str, timeout=20.0, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.domain} exited {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{self.domain}: no {pattern!r} in the log:\n{self.log_text()[-3000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # under strace (or another wrapper) signal the daemon itself:
            # its pid is in its "node ready" line
            pids = re.findall(r'msg="node ready" .*pid=(\d+)', self.log_text())
            if getattr(self, "wrapped", False) and pids:
                try:
                    os.kill(int(pids[-1]), sig)
                except ProcessLookupError:
                    pass
            else:
                self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"{self.domain} did not stop on {sig}")
        finally:
            self.proc = None
            self.wrapped = False
            self.logf.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)


class User:
    """One identity with its own AMP_HOME, talking to its home node."""

    def __init__(self, base: Path, name: str, node: Node):
        self.node = node
        self.did = f"did:aftersmtp:{node.domain}:{name}"
        self.home = base / f"{name}@{node.domain}"
        self.run("keygen", "--did", self.did, "--kdf", "min")

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMP_")}
        env["AMP_HOME"] = str(self.home)
        env["AMP_PASSPHRASE"] = PASS
        return env

    def run(self, *args, input=None, check=True, timeout=60):
        p = subprocess.run([AMP_BIN, *args], input=input, capture_output=True,
                           env=self.env(), timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"amp {' '.join(args)} exited {p.returncode}: "
                                 f"{p.stderr.decode(errors='replace')}")
        return p

    def register(self, transport="tls", invite=None, check=True):
        args = ["register", "--node", f"127.0.0.1:{self.node.port}", "--transport", transport]
        if invite:
            args += ["--invite", invite]
        return self.run(*args, check=check)


def make_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="amp-e2e-"))
    base.chmod(0o755)
    return base


def remove_base(base: Path):
    shutil.rmtree(base, ignore_errors=True)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Sanitizer has encountered a fatal error")


def stop_all(nodes):
    """Stop every node the way an operator does (SIGTERM, drain) and fail
    if a sanitizer reported anything in any node's log (ASan builds)."""
    problems = []
    for n in nodes:
        try:
            rc = n.stop(signal.SIGTERM)
            if rc not in (None, 0):
                problems.append(f"{n.domain} exited {rc}")
        except Exception as e:  # a node that would not stop is killed
            problems.append(str(e))
        text = n.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                problems.append(f"{n.domain}: {text[max(0, i - 200):i + 3000]}")
    if problems:
        raise AssertionError("\n".join(problems))


# ------------------------------------------------------------ SMTP helpers

def smtp_node(base, domain="alpha.test", user="bob", **conf):
    """A started node of `base` (the conftest fixture) with an SMTP
    listener on a free port (n.smtp_port) and one registered user."""
    b, nodes = base
    n = Node(b, domain, smtp_listen="127.0.0.1", smtp_port=free_port(), **conf)
    nodes.append(n)
    n.start()
    n.smtp_port = int(n.conf["smtp_port"])
    u = User(b, user, n)
    u.register()
    return b, n, u


def read_reply(f):
    """One (possibly multi-line) SMTP reply from a file-like object:
    (code, all its lines), or (None, what came) when the server closed."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            return None, b"".join(lines)
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)
