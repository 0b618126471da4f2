"""A private rspamd (Debian's `rspamd` 3.4) for end-to-end tests
(issue 7): the second independent verifier of DKIM (rsa-sha256 and
ed25519-sha256), ARC, SPF and DMARC next to dkimpy / Mail::DKIM / pyspf
/ authheaders (TESTING.md D1, D9, D10, D12 and §4.3).

    from rspamdfixture import Rspamd

    r = Rspamd(dns_port)          # starts it; AssertionError if it cannot
    syms = r.symbols(msg, ip="192.0.2.10", mail_from="a@example.org",
                     helo="mx.example.org")   # {"R_DKIM_ALLOW": [...], ...}
    r.stop()                      # SIGTERM, waits; a test must call it

One instance is meant to serve a whole test module (it takes ~2 s to
start).  Everything lives in a fresh temporary directory: the stock
/etc/rspamd/rspamd.conf is read with LOCAL_CONFDIR, DBDIR, RUNDIR and
LOGDIR pointed there, and local.d files written there:
  - the normal worker on 127.0.0.1:<a free port> (one process); the
    controller, proxy and fuzzy workers are not started;
  - DNS only at 127.0.0.1:<dns_port> (the test's loopback server);
  - url_tld (the public suffix list, used for DMARC's organizational
    domain and for URLs) is a three-line file "org net com": the full
    list takes ~17 s to compile at start-up, and the tests only use
    names under those suffixes;
  - the modules that fetch remote maps, need Redis or score content
    (fuzzy_check, multimap, rbl, phishing, whitelist, ...) are disabled;
    spf, dkim, arc and dmarc stay on.
When run as root, rspamd is started with -u/-g _rspamd and the directory
is given to that account.

The client IP given to a scan must not be local (127/8, 10/8, 192.168/16,
::1 ...): rspamd skips SPF, DKIM, ARC and DMARC for local senders.  The
IP is only a label (the IP header of rspamd's HTTP protocol, what
`rspamc -i` sends): no packet goes there.

Scans use rspamd's HTTP protocol directly (POST /checkv2 with the IP,
From, Helo and Pass headers, as rspamc does), from Python, so many
messages cost one connection each and no process.
"""
import grp
import http.client
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from nodes import free_port

RSPAMD = shutil.which("rspamd", path="/usr/bin:/usr/sbin:/bin:/sbin")
RSPAMD_CONF = Path("/etc/rspamd/rspamd.conf")
START_TIMEOUT = 60.0

# Modules that are not wanted here: remote maps (maps.rspamd.com),
# Redis, DNS block lists, content scoring.  spf, dkim, arc and dmarc are
# the ones under test.
DISABLED = """
antivirus asn bimi chartable dcc emails external_services forged_recipients
fuzzy_check greylist hfilter history_redis maillist metric_exporter
milter_headers mid mime_types multimap neural once_received p0f phishing
ratelimit rbl regexp replies reputation spamassassin surbl trie
url_redirector whitelist
""".split()


class Rspamd:
    def __init__(self, dns_port: int, workdir: Path | None = None):
        if RSPAMD is None or not RSPAMD_CONF.exists():
            raise AssertionError(
                "rspamd is not installed (Debian package `rspamd`; "
                "scripts/bootstrap.sh installs it)")
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="amp-rspamd-"))
        self.port = free_port()
        self.proc = None
        self.stderr = None
        local = self.dir / "local.d"
        for sub in ("local.d", "db", "run", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        tld = self.dir / "tld.dat"
        tld.write_text("org\nnet\ncom\n")
        (local / "options.inc").write_text(
            f'dns {{ nameserver = ["127.0.0.1:{dns_port}"]; timeout = 1s; '
            f'retransmits = 1; }}\n'
            f'url_tld = "{tld}";\n')
        (local / "worker-normal.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.port}";\ncount = 1;\n')
        for w in ("worker-controller.inc", "worker-proxy.inc"):
            # count = -1: not spawned (as the stock fuzzy worker)
            (local / w).write_text(
                f'bind_socket = "127.0.0.1:{free_port()}";\ncount = -1;\n')
        for m in DISABLED:
            (local / f"{m}.conf").write_text("enabled = false;\n")
        self.log = self.dir / "log" / "rspamd.log"
        cmd = [RSPAMD, "-f", "-c", str(RSPAMD_CONF),
               "--var", f"LOCAL_CONFDIR={self.dir}",
               "--var", f"DBDIR={self.dir / 'db'}",
               "--var", f"RUNDIR={self.dir / 'run'}",
               "--var", f"LOGDIR={self.dir / 'log'}"]
        if os.geteuid() == 0:
            uid = pwd.getpwnam("_rspamd").pw_uid
            gid = grp.getgrnam("_rspamd").gr_gid
            os.chmod(self.dir, 0o755)
            for root, dirs, files in os.walk(self.dir):
                for n in [root, *(os.path.join(root, x)
                                  for x in dirs + files)]:
                    os.chown(n, uid, gid)
            cmd += ["-u", "_rspamd", "-g", "_rspamd"]
        self.stderr = open(self.dir / "stderr.txt", "wb")
        # its own process group: stop() signals the main process, which
        # stops its workers; the group is the fallback
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True)
        if not self._wait_ready(time.monotonic() + START_TIMEOUT):
            why = self.tail()
            self.stop()
            raise AssertionError(f"rspamd did not start on 127.0.0.1:"
                                 f"{self.port}:\n{why}")

    def tail(self, n: int = 40) -> str:
        out = []
        for f in (self.dir / "stderr.txt", self.log):
            try:
                out += f.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                pass
        return "\n".join(out)

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=2)
                c.request("GET", "/ping")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status == 200 and body.strip() == b"pong":
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def scan(self, msg: bytes, ip: str = "192.0.2.10", mail_from: str = "",
             helo: str = "mx.example.org", timeout: float = 30) -> dict:
        """rspamd's whole JSON answer for one message."""
        headers = {"IP": ip, "Helo": helo, "Pass": "all",
                   "Content-Length": str(len(msg))}
        if mail_from:
            headers["From"] = mail_from
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        try:
            c.request("POST", "/checkv2", body=msg, headers=headers)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        assert r.status == 200, (r.status, body[:500])
        return json.loads(body)

    def symbols(self, msg: bytes, **kw) -> dict:
        """{symbol: [options]} for one message."""
        res = self.scan(msg, **kw)
        return {name: s.get("options", [])
                for name, s in res.get("symbols", {}).items()}

    def stop(self):
        """SIGTERM to the main process (it stops its workers), then
        SIGKILL to the group if it takes more than 20 s; removes the
        directory."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            # workers left behind by a crashed main process
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc = None
        if self.stderr is not None and not self.stderr.closed:
            self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
