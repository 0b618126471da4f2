"""The Legacy Bridge, inbound: durability faults (TESTING.md rows Q1-Q4)
against the real daemon over SMTP: the 250 after DATA follows the fsync;
kill -9 at random moments loses nothing acknowledged; a failing fsync or
a full disk is a 4xx, never a 250."""
import base64
import os
import random
import re
import smtplib
import subprocess
import threading
import time

import pytest

from nodes import AMPD
from nodes import smtp_node as nodes_smtp_node
from test_node_faults import start_under_strace, strace_available


def smtp_node(base, **conf):
    return nodes_smtp_node(base, transports="tls", **conf)


def message(i: int) -> bytes:
    return (b"From: a@example.net\r\nTo: bob@alpha.test\r\nSubject: q %d\r\n"
            b"Message-ID: <q%d@example.net>\r\n\r\nbody %d\r\n" % (i, i, i))


def stored_ids(bob) -> list:
    out = bob.run("fetch").stdout
    return [int(x) for x in re.findall(rb"Message-ID: <q(\d+)@example.net>", out)]


def test_q1_250_follows_the_fsync(base):
    if not strace_available():
        pytest.fail("strace is missing: run scripts/bootstrap.sh")
    b, n, bob = smtp_node(base, log_level="notice", workers=1)
    n.stop()
    trace = b / "q1.trace"
    start_under_strace(n, ["-f", "-ttt", "-s", "40", "-o", str(trace), "-e",
                           "trace=accept4,read,write,writev,fsync,fdatasync"])
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30) as s:
        s.ehlo("c.example")
        assert s.sendmail("a@example.net", ["bob@alpha.test"], message(1)) == {}
    n.stop()
    events = []
    for line in trace.read_text().splitlines():
        m = re.match(r"\d+\s+([\d.]+) (\w+)\((\d+)?", line)
        if m:
            events.append((float(m.group(1)), m.group(2), m.group(3), line))
    events.sort()
    ok = [i for i, e in enumerate(events)
          if e[1] in ("write", "writev") and "250 2.0.0 Ok: sealed" in e[3]]
    assert len(ok) == 1, "no 250 for the message in the trace"
    fd = events[ok[0]][2]
    # the read that carried the end of the message, then the 250
    dot = max(i for i, e in enumerate(events[:ok[0]]) if e[1] == "read" and e[2] == fd
              and "= -1" not in e[3])
    syncs = [i for i, e in enumerate(events) if e[1] in ("fsync", "fdatasync")
             and "= 0" in e[3]]
    assert any(dot < i < ok[0] for i in syncs), "250 sent without an fsync after DATA"


def test_q3_fsync_failure_is_451_never_250(base):
    if not strace_available():
        pytest.fail("strace is missing: run scripts/bootstrap.sh")
    b, n, bob = smtp_node(base, log_level="info")
    n.stop()
    wal = str(n.dir / "data" / "node.db-wal")
    start_under_strace(n, ["-f", "-o", "/dev/null", "-P", wal, "-e",
                           "trace=fsync,fdatasync", "-e", "inject=fsync:error=EIO",
                           "-e", "inject=fdatasync:error=EIO"])
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30) as s:
        s.ehlo("c.example")
        s.mail("a@example.net")
        assert s.rcpt("bob@alpha.test")[0] == 250
        code, text = s.data(message(1))
        assert (code, text[:5]) == (451, b"4.3.0")
        assert s.noop()[0] == 250                     # the session goes on
    assert n.proc.poll() is None
    n.stop()
    n.start()
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30) as s:
        assert s.sendmail("a@example.net", ["bob@alpha.test"], message(2)) == {}
    assert 2 in stored_ids(bob)


def test_q4_disk_full_is_4xx_and_recovers(base):
    b, n, bob = smtp_node(base, log_level="info")
    n.stop()
    # The node's data directory on a 3 MB tmpfs seen only by the daemon
    # (a private mount namespace); a filler file takes most of it.
    src = n.dir / "data"
    small = n.dir / "small"
    small.mkdir(mode=0o755)
    n.conf["data_dir"] = str(small)
    n.write_conf()
    script = (f"mount -t tmpfs -o size=3m,mode=0755 tmpfs {small} && "
              f"cp -a {src}/. {small}/ && "
              f"dd if=/dev/zero of={small}/filler bs=64k count=30 status=none && "
              f"exec \"$0\" -c {n.conf_path} run")
    n.start(wrapper=("unshare", "--mount", "--propagation", "private", "sh", "-c",
                     script))
    pid = n.proc.pid
    acked, failed = [], []
    # incompressible (the message is compressed before sealing), in lines
    big = base64.encodebytes(os.urandom(150000)).replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=60) as s:
        s.ehlo("c.example")
        for i in range(20):
            s.mail("a@example.net")
            s.rcpt("bob@alpha.test")
            code, text = s.data(message(i) + big)
            (acked if code == 250 else failed).append((i, code, text))
            if code != 250:
                assert (code, text[:5]) == (452, b"4.3.1"), (code, text)
                break
    assert failed, "the disk never filled"
    assert n.proc.poll() is None
    # space comes back: the next message is accepted
    subprocess.run(["nsenter", "-t", str(pid), "-m", "rm", "-f", str(small / "filler")],
                   check=True)
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=60) as s:
        assert s.sendmail("a@example.net", ["bob@alpha.test"], message(99)) == {}
    got = set(stored_ids(bob))
    assert {i for i, _, _ in acked} | {99} <= got


def test_q2_kill9_during_smtp_loses_nothing_acknowledged(base):
    """Messages stream in over several SMTP sessions while the daemon is
    killed with SIGKILL at random moments and restarted; the client
    resends what was not acknowledged.  Every message that got its 250 is
    in the inbox afterwards (duplicates are allowed, loss is not)."""
    b, n, bob = smtp_node(base, log_level="notice")
    total = 600
    acked = set()
    rng = random.Random(4321)
    lock = threading.Lock()

    def sender(ids):
        try:
            with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=10) as s:
                s.ehlo("c.example")
                for i in ids:
                    s.mail("a@example.net")
                    s.rcpt("bob@alpha.test")
                    code, _ = s.data(message(i))
                    if code == 250:
                        with lock:
                            acked.add(i)
        except (smtplib.SMTPException, OSError):
            return

    kills_mid_stream = 0
    for round_ in range(8):
        todo = [i for i in range(total) if i not in acked]
        if not todo:
            break
        chunks = [todo[k::3] for k in range(3)]
        threads = [threading.Thread(target=sender, args=(c,), daemon=True) for c in chunks]
        for t in threads:
            t.start()
        # kill once a random share of this round's messages is answered
        base_acks, target = len(acked), rng.randint(1, max(1, len(todo) - 1))
        deadline = time.monotonic() + 20
        while len(acked) - base_acks < target and time.monotonic() < deadline:
            time.sleep(0.0005)
        with lock:
            before = set(acked)
        streaming = any(t.is_alive() for t in threads)
        n.kill9()
        if 0 < len(before) < total and streaming:
            kills_mid_stream += 1
        for t in threads:
            t.join(timeout=20)
        n.start()
        with lock:
            snapshot = set(acked)
        missing = snapshot - set(stored_ids(bob))
        assert not missing, f"round {round_}: acknowledged but lost: {sorted(missing)[:10]}"
    sender([i for i in range(total) if i not in acked])
    got = stored_ids(bob)
    assert set(got) == set(range(total))
    assert kills_mid_stream >= 2, "the kills never hit a stream in flight"


def test_q5_corrupt_stored_message_is_quarantined_and_the_rest_served(base):
    """Q5 for the inbound path: mail taken over SMTP lives in the inbox
    rows of the store (there is no separate spool).  One row corrupted on
    disk is detected at fetch, moved to the quarantine table and logged;
    the other messages are served and new mail is accepted.  A wrong
    storage key is refused at start instead of making every row look
    corrupt."""
    import sqlite3
    b, n, bob = smtp_node(base, log_level="info")
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30) as s:
        for i in range(3):
            assert s.sendmail("a@example.net", ["bob@alpha.test"], message(i)) == {}
    n.stop()
    db = sqlite3.connect(n.dir / "data" / "node.db")
    seqs = [r[0] for r in db.execute("SELECT seq FROM inbox ORDER BY seq")]
    assert len(seqs) == 3
    box = bytearray(db.execute("SELECT box FROM inbox WHERE seq=?", (seqs[1],)).fetchone()[0])
    box[len(box) // 2] ^= 0x20
    db.execute("UPDATE inbox SET box=? WHERE seq=?", (bytes(box), seqs[1]))
    db.commit()
    db.close()
    n.start()
    assert sorted(stored_ids(bob)) == [0, 2]
    n.wait_log(r'msg="corrupt inbox entries quarantined" count=1')
    db = sqlite3.connect(n.dir / "data" / "node.db")
    assert db.execute("SELECT count(*) FROM quarantine WHERE next_attempt=-1").fetchone()[0] == 1
    db.close()
    with smtplib.SMTP("127.0.0.1", n.smtp_port, timeout=30) as s:
        assert s.sendmail("a@example.net", ["bob@alpha.test"], message(7)) == {}
    assert 7 in stored_ids(bob)
    # another storage key: refused at start, nothing touched
    n.stop()
    key = n.dir / "data" / "storage.key"
    good = key.read_bytes()
    key.write_bytes(os.urandom(len(good)))
    p = subprocess.run([AMPD, "-c", str(n.conf_path), "run"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0
    assert "storage key does not open this database" in p.stdout + p.stderr + n.log_text()
    key.write_bytes(good)
    n.start()
    assert 7 in stored_ids(bob)
