#!/usr/bin/python3
"""imap-bench.py — the bridge's IMAP side by side with Dovecot (issue 6).

What it does, in one run:
  1. starts a real node (alpha.test, SMTP ingress on loopback) with a
     registered user bob, and delivers N messages (default 10,000: the
     shared corpus, ham and spam, cycled, each made unique by a first
     line "X-Bench-Seq: i") over one SMTP connection: the node seals each
     for bob and stores it;
  2. starts bob's `amp bridge run` and times the initial sync until
     INBOX holds all N (STATUS polled), with the bridge's peak resident
     memory (VmHWM) at the end;
  3. reads every message back over IMAP (BODY.PEEK[]) and checks it is
     the message sent, after the trace fields the node adds at the top
     (Received:, Authentication-Results:);
  4. puts exactly those N files into a private Dovecot's Maildir
     (tests/e2e/dovecotfixture.py), so both servers serve the same bytes;
  5. times `FETCH 1:* (FLAGS ENVELOPE)` on both, over TCP on loopback,
     logged in and INBOX selected, reading the whole answer: the first
     run (Dovecot builds its cache then; the bridge's cache is made at
     sync time) and the median of ROUNDS more, alternating servers.

Prints a Markdown section on stdout (bench/run.sh adds it to
bench/RESULTS.md); progress on stderr.  Target: the bridge's warm FETCH
within 1.5x of Dovecot's.

Usage: bench/imap-bench.py [--messages N] [--rounds R] [--quick]
                           [--results FILE]
--results FILE also writes the section into FILE (bench/RESULTS.md),
replacing an earlier "### imap-bench" section or appending one; bench/
run.sh instead collects the section from standard output.
Environment: BUILD_DIR (default <repo>/build).  Needs dovecot-imapd
(scripts/bootstrap.sh).
"""
import argparse
import os
import re
import smtplib
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("BUILD_DIR", ROOT / "build"))
os.environ.setdefault("AMP_BIN", str(BUILD / "src" / "cli" / "amp"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from bridgefixture import Bridge  # noqa: E402
from dovecotfixture import Dovecot  # noqa: E402
from nodes import Node, User, free_port, make_base, remove_base, split_trace, stop_all  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


def say(*a):
    print("imap-bench:", *a, file=sys.stderr, flush=True)


def messages(n):
    files = sorted((CORPUS / "ham").iterdir()) + sorted((CORPUS / "spam").iterdir())
    raw = []
    for p in files:
        b = p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not b.endswith(b"\r\n"):
            b += b"\r\n"       # SMTP ends the last line (RFC 5321 4.1.1.4)
        if b"\x00" in b or len(b) > 1024 * 1024:
            continue
        raw.append(b)
    for i in range(n):
        yield b"X-Bench-Seq: %d\r\n" % i + raw[i % len(raw)]


class Imap:
    """A minimal IMAP client that reads whole answers fast (imaplib
    parses each line in Python, which would be what we measure)."""

    def __init__(self, port, user, password):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = b""
        self.n = 0
        self._until(b"* ")
        self.cmd(f"LOGIN {user} {password}")
        self.cmd("SELECT INBOX")

    def _until(self, marker):
        """Up to and including the line that starts with marker.  Each
        byte is searched once and appended once (searching a growing
        answer from its start would make the client what is timed)."""
        buf, scan = bytearray(self.buf), 0
        while True:
            i = 0 if buf.startswith(marker) else buf.find(b"\r\n" + marker, scan)
            if i > 0:
                i += 2
            j = buf.find(b"\r\n", i) if i >= 0 else -1
            if j >= 0:
                out, self.buf = bytes(buf[:j + 2]), bytes(buf[j + 2:])
                return out, out[i:]
            scan = max(0, len(buf) - len(marker) - 2)
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise AssertionError("server closed the connection")
            buf += chunk

    def cmd(self, text):
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        out, last = self._until(tag + b" ")
        if not last.startswith(tag + b" OK"):
            raise AssertionError(f"{text}: {last!r}")
        return out

    def close(self):
        self.s.close()


def fetch_time(port, user, password):
    c = Imap(port, user, password)
    t = time.perf_counter()
    out = c.cmd("FETCH 1:* (FLAGS ENVELOPE)")
    dt = time.perf_counter() - t
    c.close()
    return dt, out.count(b" FETCH (")


def vm_hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def put_section(path, section):
    """Replace the "### imap-bench" section of path (up to the next
    heading of level 2 or 3), or append it."""
    text = path.read_text() if path.exists() else ""
    m = re.search(r"^### imap-bench .*?(?=^##)|^### imap-bench .*\Z", text, re.S | re.M)
    text = (text[:m.start()] + section + "\n" + text[m.end():] if m
            else text.rstrip("\n") + "\n\n" + section)
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="500 messages, 2 rounds")
    ap.add_argument("--results", help="also put the section into this file")
    a = ap.parse_args()
    if a.quick:
        a.messages, a.rounds = 500, 2
    n = a.messages
    base = make_base()
    nodes, br, dv = [], None, None
    try:
        # dmarc_policy = report: a few corpus messages fail DMARC and
        # would be refused (test_smtp_corpus.py says which)
        node = Node(base, "alpha.test", smtp_listen="127.0.0.1", smtp_port=free_port(),
                    dmarc_policy="report", log_level="warning")
        nodes.append(node)
        node.start()
        bob = User(base, "bob", node)
        bob.register()
        password = bob.run("bridge", "password").stdout.decode().strip()
        sent = list(messages(n))
        say(f"delivering {n} messages to the node over SMTP")
        t = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", int(node.conf["smtp_port"]), timeout=120) as s:
            for m in sent:
                s.sendmail("sender@example.org", ["bob@alpha.test"], m,
                           mail_options=["BODY=8BITMIME"])
        t_smtp = time.perf_counter() - t
        say(f"delivered in {t_smtp:.1f} s; starting the bridge")
        t = time.perf_counter()
        br = Bridge(bob)
        c = Imap(br.imap_port, "bob@alpha.test", password)
        while True:
            st = c.cmd("STATUS INBOX (MESSAGES)")
            have = int(re.search(rb"MESSAGES (\d+)", st).group(1))
            if have >= n:
                break
            if time.perf_counter() - t > 3600:
                raise AssertionError(f"sync stalled at {have} of {n}")
            time.sleep(0.2)
        t_sync = time.perf_counter() - t
        hwm = vm_hwm_kb(br.proc.pid)
        say(f"synced {n} in {t_sync:.1f} s, peak RSS {hwm / 1024:.1f} MiB; checking bytes")
        c.close()
        c = Imap(br.imap_port, "bob@alpha.test", password)
        stored = []
        bad = 0
        for lo in range(1, n + 1, 500):
            out = c.cmd(f"FETCH {lo}:{min(n, lo + 499)} (BODY.PEEK[])")
            pos = 0
            while True:
                m = re.compile(rb"\* \d+ FETCH \(BODY\[\] \{(\d+)\}\r\n").search(out, pos)
                if not m:
                    break
                body = out[m.end():m.end() + int(m.group(1))]
                stored.append(body)
                pos = m.end() + int(m.group(1))
        c.close()
        for i, body in enumerate(stored):
            rest = split_trace(body)[2]
            if rest != sent[i]:
                bad += 1
                k = next((j for j in range(min(len(rest), len(sent[i])))
                          if rest[j] != sent[i][j]), min(len(rest), len(sent[i])))
                say(f"message {i} differs at byte {k}: sent {sent[i][k - 40:k + 40]!r}, "
                    f"read {rest[k - 40:k + 40]!r}")
        if len(stored) != n or bad:
            raise AssertionError(f"{len(stored)} read back, {bad} differ from what was sent")
        dv = Dovecot({"bob": "secret"})
        for body in stored:
            dv.deliver("bob", body)
        say("timing FETCH 1:* (FLAGS ENVELOPE)")
        cold_b, nb = fetch_time(br.imap_port, "bob@alpha.test", password)
        cold_d, nd = fetch_time(dv.port, "bob", "secret")
        assert nb == n and nd == n, (nb, nd)
        wb, wd = [], []
        for _ in range(a.rounds):
            wb.append(fetch_time(br.imap_port, "bob@alpha.test", password)[0])
            wd.append(fetch_time(dv.port, "bob", "secret")[0])
        mb, md = statistics.median(wb), statistics.median(wd)
        ratio = mb / md
        verdict = "PASS" if ratio <= 1.5 else "MISS"
        out = []
        emit = out.append
        emit("### imap-bench (amp bridge vs Dovecot over IMAP)\n")
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), "unknown CPU")
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
        emit(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; machine: "
             f"{os.cpu_count()} CPUs, {cpu}; build: {BUILD}, source {rev}")
        emit(f"- messages: {n} (corpus ham+spam cycled, {sum(map(len, stored)) / n / 1024:.1f} KB "
              f"average as stored); both servers serve the same bytes")
        emit(f"- command: `bench/imap-bench.py --messages {n} --rounds {a.rounds}`; "
              f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")
        emit(f"- SMTP ingress of the {n} messages into the node (one connection): "
              f"{t_smtp:.1f} s ({n / t_smtp:.0f} msg/s)")
        emit(f"- **initial sync** by the bridge (fetch, verify, open, store sealed, ack): "
              f"**{t_sync:.1f} s** ({n / t_sync:.0f} msg/s); bridge peak RSS "
              f"**{hwm / 1024:.1f} MiB**")
        emit(f"- every message read back over IMAP equals the message sent "
              f"(after the node's trace fields): {n}/{n}\n")
        emit("| FETCH 1:* (FLAGS ENVELOPE) | amp bridge | Dovecot 2.3 | bridge/Dovecot |")
        emit("|---|---:|---:|---:|")
        emit(f"| first run | {cold_b * 1000:.0f} ms | {cold_d * 1000:.0f} ms "
              f"| {cold_b / cold_d:.2f}x |")
        emit(f"| median of {a.rounds} more | {mb * 1000:.0f} ms | {md * 1000:.0f} ms "
              f"| **{ratio:.2f}x** (target <= 1.5x: **{verdict}**) |")
        emit("")
        section = "\n".join(out) + "\n"
        sys.stdout.write(section)
        if a.results:
            put_section(Path(a.results), section)
    finally:
        if br is not None:
            br.stop()
        if dv is not None:
            dv.stop()
        stop_all(nodes)
        remove_base(base)


if __name__ == "__main__":
    main()
