"""The node's lookup tables at run time, end to end: a real aftersmtpd
(SMTP off) and `amp map` talking to it through <data_dir>/admin.sock.

- add / list / test / del round trip, entries kept across a restart;
- a key of the table file cannot be added again, an entry of the file
  cannot be deleted;
- a table file with a bad line + SIGHUP: the log names the file and the
  line, the old table still answers; fixed + SIGHUP: the new entry answers;
  `amp map reload` refuses the same way;
- the socket is 0600 and the node's user's; junk, over-long lines and
  unknown commands get `error` and the node keeps serving; the 17th
  connection is turned away; a user who is neither root nor the node's
  cannot connect; no node running: a clear message; the socket is gone
  after the node stops.
"""
import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from nodes import AMP_BIN, Node


def amp_map(node, *args, check=None, user=None):
    kw = {}
    if user is not None:
        kw["preexec_fn"] = lambda: os.setuid(user)
    p = subprocess.run([AMP_BIN, "map", *args, "--config", str(node.conf_path)],
                       capture_output=True, text=True, timeout=60, **kw)
    if check is not None and p.returncode != check:
        raise AssertionError(f"amp map {' '.join(args)}: exit {p.returncode}, want {check}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def sock_path(node):
    return node.dir / "data" / "admin.sock"


def talk(node, data: bytes, lines_wanted: int, timeout=10.0) -> list[str]:
    """Send raw bytes on the admin socket; read until lines_wanted final
    (ok/error) lines came back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock_path(node)))
    s.sendall(data)
    buf = b""
    finals = 0
    deadline = time.monotonic() + timeout
    while finals < lines_wanted and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        finals = sum(1 for ln in buf.split(b"\n") if ln.startswith((b"ok", b"error")))
    s.close()
    return buf.decode(errors="replace").splitlines()


@pytest.fixture
def node(base):
    b, nodes = base
    d = b / "alpha.test"
    access = b / "access"
    access.write_text("# access table\nexample.com      OK\n192.0.2.0/24     REJECT\n")
    virtual = b / "virtual"
    virtual.write_text("info@alpha.test  did:aftersmtp:alpha.test:ann\n")
    for f in (access, virtual):
        f.chmod(0o644)
    n = Node(b, "alpha.test", access_map=access, virtual_alias_maps=virtual,
             relay_domains="relay.example, .relay.example")
    nodes.append(n)
    n.start()
    n.access, n.virtual = access, virtual
    assert d == n.dir
    return n


def test_add_list_test_del_round_trip(node):
    out = amp_map(node, "list", "access", check=0).stdout
    assert "line 2" in out and "example.com" in out and "192.0.2.0/24" in out
    assert f"2 entries: 2 from {node.access}, 0 run-time" in out

    p = amp_map(node, "add", "access", "198.51.100.7", "REJECT", "5.7.1", "spam", "source",
                check=0)
    assert "added to access_map" in p.stdout
    p = amp_map(node, "test", "access", "198.51.100.7", check=0)
    assert "result  REJECT 554 5.7.1 spam source" in p.stdout
    assert "run-time entry" in p.stdout
    p = amp_map(node, "test", "access", "someone@mx.example.com", check=0)
    assert "result  OK" in p.stdout and f"{node.access}, line 2" in p.stdout

    out = amp_map(node, "list", "access", check=0).stdout.splitlines()
    assert out[0].split()[:3] == ["line", "2", "example.com"]
    assert out[2].split()[:2] == ["run-time", "198.51.100.7"]
    assert out[-1] == f"# access_map: 3 entries: 2 from {node.access}, 1 run-time"

    # short and long table names; aliases expand through run-time entries
    amp_map(node, "add", "virtual_alias_maps", "sales@alpha.test", "info@alpha.test,",
            "did:aftersmtp:alpha.test:bob", check=0)
    p = amp_map(node, "test", "virtual", "Sales@Alpha.Test", check=0)
    assert ("result  did:aftersmtp:alpha.test:ann, did:aftersmtp:alpha.test:bob"
            in p.stdout), p.stdout
    amp_map(node, "add", "relay", "other.example", check=0)
    assert "item 1" in amp_map(node, "list", "relay", check=0).stdout
    amp_map(node, "test", "relay", "a.other.example", check=0)

    # kept across a restart (maps.db)
    node.stop()
    node.start()
    p = amp_map(node, "test", "access", "198.51.100.7", check=0)
    assert "REJECT 554 5.7.1 spam source" in p.stdout

    amp_map(node, "del", "access", "198.51.100.7", check=0)
    p = amp_map(node, "test", "access", "198.51.100.7", check=3)
    assert "result  not found" in p.stdout
    p = amp_map(node, "del", "access", "198.51.100.7", check=1)
    assert "no run-time entry 198.51.100.7" in p.stderr
    text = node.log_text()
    assert 'msg="map entry added" table=access_map key="198.51.100.7" uid=' in text
    assert 'msg="map entry deleted" table=access_map' in text


def test_file_keys_are_refused(node):
    p = amp_map(node, "add", "access", "Example.COM", "REJECT", check=1)
    assert (f"amp: map: access_map: example.com is already in {node.access}, line 2 "
            "(edit the file, then reload)") in p.stderr
    p = amp_map(node, "del", "access", "example.com", check=1)
    assert "is not a run-time entry" in p.stderr
    # the same network written another way
    p = amp_map(node, "add", "access", "192.0.2", "OK", check=1)
    assert "run-time entry 192.0.2" in p.stderr and "the same network" in p.stderr
    amp_map(node, "add", "access", "203.0.113.9", "OK", check=0)
    p = amp_map(node, "add", "access", "203.0.113.9", "REJECT", check=1)
    assert "already a run-time entry (delete it first)" in p.stderr
    p = amp_map(node, "add", "access", "bad.example", "MAYBE", check=1)
    assert "access_map: " in p.stderr
    p = amp_map(node, "add", "virtual", "x@alpha.test", check=1)
    assert "missing value" in p.stderr
    p = amp_map(node, "add", "relay", "relay.example", check=1)
    assert "in the relay_domains setting" in p.stderr
    p = amp_map(node, "add", "nosuchtable", "a", "b", check=1)
    assert "unknown table 'nosuchtable'" in p.stderr
    assert amp_map(node, "frobnicate").returncode == 2


def test_sighup_bad_line_keeps_old_table(node):
    amp_map(node, "test", "access", "a@example.com", check=0)
    node.access.write_text("# access table\nexample.com      OK\n"
                           "192.0.2.1/24     REJECT\nnew.example OK\n")
    node.proc.send_signal(signal.SIGHUP)
    text = node.wait_log('msg="map reload refused; the old tables stay"')
    assert f'error="{node.access}, line 3: 192.0.2.1/24: the address has bits set' in text
    # the rest of the configuration was applied; the old table answers
    node.wait_log('msg="configuration reloaded"')
    p = amp_map(node, "test", "access", "a@example.com", check=0)
    assert "result  OK" in p.stdout and f"{node.access}, line 2" in p.stdout
    amp_map(node, "test", "access", "new.example", check=3)
    amp_map(node, "test", "access", "192.0.2.200", check=0)
    # `amp map reload` refuses the same way
    p = amp_map(node, "reload", check=1)
    assert f"{node.access}, line 3: " in p.stderr

    node.access.write_text("# access table\nexample.com      OK\n"
                           "192.0.2.0/24     REJECT\nnew.example OK\n")
    reloaded = node.log_text().count('msg="maps reloaded"')
    node.proc.send_signal(signal.SIGHUP)
    node.wait_log('msg="maps reloaded"', count=reloaded + 1)
    p = amp_map(node, "test", "access", "host.new.example", check=0)
    assert "result  OK" in p.stdout and f"{node.access}, line 4" in p.stdout

    node.access.write_text("example.com REJECT\n")
    assert "tables reloaded" in amp_map(node, "reload", check=0).stdout
    assert "REJECT" in amp_map(node, "test", "access", "a@example.com", check=0).stdout


def test_socket_mode_and_bad_requests(node):
    st = os.stat(sock_path(node))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    st_db = os.stat(node.dir / "data" / "maps.db")
    assert stat.S_IMODE(st_db.st_mode) == 0o600
    if os.geteuid() == 0:
        nobody = os.stat(node.dir / "data").st_uid
        assert st.st_uid == nobody != 0

    lines = talk(node, b"\x01\x02junk\n", 1)
    assert lines == ["error a control character in the request"]
    lines = talk(node, b"\xff\xfe\n\n\tmap\nbogus\nmap\tfly\n", 5)
    assert lines == ["error invalid UTF-8 in the request", "error empty request",
                     "error empty command", "error unknown command 'bogus' (try help)",
                     "error unknown command 'fly' (try help)"]
    # an over-long line is refused once, and the next line is answered
    lines = talk(node, b"map\tadd\taccess\t" + b"a" * 20000 + b"\nmap\ttest\taccess\t192.0.2.1\n", 2)
    assert lines[0] == "error request line longer than 8192 bytes"
    assert lines[-1] == "ok REJECT 554 5.7.1"
    lines = talk(node, b"map\tadd\taccess\n", 1)
    assert lines == ["error usage: map add TABLE KEY [VALUE]"]
    lines = talk(node, b"help\r\n", 1)
    assert lines[0] == "* help" and lines[-1].startswith("ok ")
    # pipelined requests are answered in order
    lines = talk(node, b"map\ttest\taccess\ta@example.com\nmap\tlist\tvirtual\n", 2)
    assert lines[0].startswith("* match\texample.com\t") and lines[1] == "ok OK"
    assert lines[2].startswith("* file\t1\tinfo@alpha.test\t")
    # still serving
    amp_map(node, "list", "access", check=0)
    assert node.proc.poll() is None


def test_connection_limit(node):
    held = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(sock_path(node)))
            held.append(s)
        # all 16 are served
        held[0].sendall(b"help\n")
        held[0].settimeout(5)
        assert held[0].recv(4096).startswith(b"* help")
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(str(sock_path(node)))
        assert extra.recv(4096) == b"error too many admin connections\n"
        assert extra.recv(4096) == b""  # closed
        extra.close()
    finally:
        for s in held:
            s.close()
    # the slots come back
    deadline = time.monotonic() + 5
    while True:
        p = amp_map(node, "list", "access")
        if p.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert p.returncode == 0, p.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run amp as another user")
def test_other_users_cannot_connect(node):
    p = amp_map(node, "list", "access", user=1)  # daemon, not the node's user (nobody)
    assert p.returncode == 1
    assert "permission denied" in p.stderr


def test_not_running_and_socket_removed(node):
    node.stop()
    assert not sock_path(node).exists()
    p = amp_map(node, "list", "access", check=1)
    assert (f"amp: map: cannot connect to {sock_path(node)}: is aftersmtpd running?"
            in p.stderr)
    # a stale socket file (a node killed with SIGKILL) is replaced at start
    node.start()
    node.kill9()
    assert sock_path(node).exists()
    amp_map(node, "list", "access", check=1)
    node.start()
    amp_map(node, "list", "access", check=0)


def test_help():
    p = subprocess.run([AMP_BIN, "map", "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for word in ("Usage: amp map add TABLE KEY", "Commands:", "Tables", "access_map",
                 "Examples:", "Exit status:", "Files:", "admin.sock", "maps.db"):
        assert word in p.stdout
    p = subprocess.run([AMP_BIN, "help", "map"], capture_output=True, text=True)
    assert p.returncode == 0 and "amp map" in p.stdout
