"""What IMAP shows of a message (src/imap/imap-msg.c) against Dovecot.

300 messages of /work/shared/corpus (200 ham, 100 spam, every n-th file of
each, line ends made CRLF) go into a Maildir; Dovecot's imap binary
(Debian's dovecot-imapd 2.3) runs pre-authenticated over stdin/stdout on
it and FETCHes ENVELOPE, BODY, BODYSTRUCTURE and a set of BODY[section]s
of every message; tests/tools/imap-msg-tool prints the same for the same
file, and the two are compared byte for byte.

Line ends are made CRLF first because that is what the bridge stores (SMTP
delivers CRLF) and because Dovecot reports sizes and line counts of the
CRLF form of a bare-LF file (its "virtual size"), while imap-msg counts the
bytes it is given.

Every difference that remains is pinned below (KNOWN) with its reason: the
test fails if an unpinned difference appears, and also if a pinned one
disappears (then the pin is stale).  test_agreement prints the figures.

The tool is $IMAP_MSG_TOOL, else tests/tools/imap-msg-tool in the build
directory of $AMP_BIN (like tests/e2e/test_mailauth.py).
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import AMP_BIN

TOOL = os.environ.get("IMAP_MSG_TOOL", str(
    Path(AMP_BIN).parents[2] / "tests" / "tools" / "imap-msg-tool"))
IMAP = "/usr/lib/dovecot/imap"
# Dovecot's imap binary alone, pre-authenticated over stdin/stdout: the
# configuration it needs ({d}: the test's directory).  It drops to nobody.
CONF = """mail_location = maildir:{d}/mail:INDEX=MEMORY
base_dir = {d}/run
log_path = {d}/log
ssl = no
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 0
first_valid_gid = 0
"""
CORPUS = Path(os.environ.get("AMP_TEST_CORPUS", "/work/shared/corpus"))
N_HAM, N_SPAM = 200, 100

STRUCT = ["ENVELOPE", "BODY", "BODYSTRUCTURE"]
SECTIONS = ["", "HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "1.1", "1.2",
            "2.1", "1.1.MIME", "2.HEADER", "2.TEXT", "1.TEXT",
            "HEADER.FIELDS (From Subject)",
            "HEADER.FIELDS.NOT (Received Subject)",
            "HEADER.FIELDS (Content-Type Message-ID To)"]

# (corpus file, item) -> why Dovecot and imap-msg differ there.  Filled from
# the differences actually seen; each is a documented choice or a Dovecot
# quirk, never a silent skip.
COLLISION = (
    "boundary collision: the inner multipart's boundary is the outer one "
    "plus 'AA'.  src/mime/mime.h (RFC 2046 5.1.1: a boundary must not "
    "occur in the encapsulated parts) keeps such a multipart as a leaf and "
    "gives its delimiter lines to the outer multipart; Dovecot tries the "
    "innermost boundary first and splits it.  So the structure and the "
    "part numbers below the outer multipart differ.")
KNOWN: dict[tuple[str, str], str] = {
    ("spam/spam-1-00311.eml", item): COLLISION
    for item in ("BODY", "BODYSTRUCTURE", "1", "2", "2.MIME", "1.1", "2.1",
                 "1.1.MIME")
}

pytestmark = pytest.mark.skipif(
    not os.access(IMAP, os.X_OK),
    reason="Dovecot's imap binary is missing (scripts/bootstrap.sh installs "
           "dovecot-imapd)")


def pick():
    out = []
    for kind, n in (("ham", N_HAM), ("spam", N_SPAM)):
        files = sorted((CORPUS / kind).iterdir())
        step = max(1, len(files) // n)
        out += files[::step][:n]
    return out


def crlf(b: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", b)


# ---- a reader of Dovecot's FETCH responses ----

def skip_value(b: bytes, i: int) -> int:
    """The end of the IMAP value at b[i]: list, string, literal, atom."""
    c = b[i:i + 1]
    if c == b"(":
        i += 1
        while b[i:i + 1] != b")":
            if b[i:i + 1] == b" ":
                i += 1
                continue
            i = skip_value(b, i)
        return i + 1
    if c == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            i += 2 if b[i:i + 1] == b"\\" else 1
        return i + 1
    if c == b"{":
        j = b.index(b"}\r\n", i)
        return j + 3 + int(b[i + 1:j])
    while b[i:i + 1] not in (b" ", b")", b""):
        i += 1
    return i


def string_value(v: bytes) -> bytes:
    """The bytes of an nstring value (NIL: empty)."""
    if v == b"NIL":
        return b""
    if v.startswith(b"{"):
        return v[v.index(b"}\r\n") + 3:]
    assert v.startswith(b'"'), v[:40]
    return re.sub(rb"\\(.)", rb"\1", v[1:-1])


def parse_fetches(out: bytes) -> dict[int, dict[str, bytes]]:
    res = {}
    i = 0
    while True:
        m = re.compile(rb"\* (\d+) FETCH \(").search(out, i)
        if m is None:
            return res
        items = res.setdefault(int(m.group(1)), {})
        i = m.end()
        while out[i:i + 1] != b")":
            if out[i:i + 1] == b" ":
                i += 1
                continue
            j = i
            depth = 0
            while depth > 0 or out[j:j + 1] not in (b" ",):
                if out[j:j + 1] == b"[":
                    depth += 1
                elif out[j:j + 1] == b"]":
                    depth -= 1
                j += 1
            key = out[i:j].decode()
            e = skip_value(out, j + 1)
            items[key] = out[j + 1:e]
            i = e


def dovecot_session(tmp: Path, n: int, items: str) -> dict[int, dict[str, bytes]]:
    """One pre-authenticated session: FETCH items of messages 1..n."""
    cmds = [b"a SELECT INBOX"]
    for k in range(1, n + 1):
        cmds.append(f"f{k} FETCH {k} ({items})".encode())
    cmds.append(b"z LOGOUT")
    # stdin stays open until the LOGOUT is answered: at end of input
    # Dovecot drops the output it has not written yet.
    p = subprocess.Popen([IMAP, "-c", str(tmp / "conf")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         env={"USER": "imapmsg", "HOME": str(tmp),
                              "PATH": "/usr/bin:/bin"})
    writer = threading.Thread(target=lambda: (
        p.stdin.write(b"\r\n".join(cmds) + b"\r\n"), p.stdin.flush()))
    writer.start()
    out = b""
    try:
        while b"\r\nz OK" not in out[-4096:]:
            chunk = p.stdout.read1(1 << 16)
            if not chunk:
                break
            out += chunk
    finally:
        writer.join()
        p.stdin.close()
        p.wait(timeout=60)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
    assert b"\r\nz OK" in out, (out[-2000:], err[-2000:])
    return parse_fetches(out)


def dovecot_fetch(tmp: Path, msgs: list[bytes]) -> dict[int, dict[str, bytes]]:
    md = tmp / "mail"
    for s in ("cur", "new", "tmp"):
        (md / s).mkdir(parents=True)
    for n, m in enumerate(msgs, 1):
        (md / "cur" / f"{n:05d}.imapmsg:2,S").write_bytes(m)
    # INDEX=MEMORY: nothing Dovecot learns in one session is reused in the
    # next.  That matters: once Dovecot has parsed a message for one item,
    # it shows a single text/plain; charset=us-ascii 7bit part as its
    # default ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" ...)
    # whatever the case the fields were written in; parsed for the item
    # itself, as written, like imap-msg.  So BODYSTRUCTURE is fetched in a
    # session of its own, and BODY first in the other.
    (tmp / "conf").write_text(CONF.format(d=tmp))
    (tmp / "run").mkdir()
    # Dovecot drops to user nobody (mail_uid): it must read the Maildir.
    for root, dirs, files in os.walk(tmp):
        os.chmod(root, 0o777)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666)
    secs = " ".join(f"BODY.PEEK[{s}]" for s in SECTIONS)
    res = dovecot_session(tmp, len(msgs), "BODYSTRUCTURE")
    rest = dovecot_session(tmp, len(msgs), f"BODY ENVELOPE {secs}")
    for k, items in rest.items():
        res.setdefault(k, {}).update(items)
    return res


def tool_struct(path: Path) -> dict[str, bytes]:
    p = subprocess.run([TOOL, str(path)], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out, res, i = p.stdout, {}, 0
    for name in STRUCT:
        nl = out.index(b"\n", i)
        k, n = out[i:nl].split(b" ")
        assert k.decode() == name
        res[name] = out[nl + 1:nl + 1 + int(n)]
        i = nl + 1 + int(n) + 1
    return res


def tool_section(path: Path, s: str) -> bytes:
    p = subprocess.run([TOOL, "--section", s, str(path)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"imap-msg-tool not found at {TOOL}; build first")
    tmp = tmp_path_factory.mktemp("imapmsg")
    files = pick()
    assert len(files) == N_HAM + N_SPAM
    msgs = [crlf(f.read_bytes()) for f in files]
    # pytest's directory is private to its user; Dovecot runs as nobody
    dvdir = Path(tempfile.mkdtemp(prefix="imapmsg-dovecot-"))
    try:
        dv = dovecot_fetch(dvdir, msgs)
    finally:
        shutil.rmtree(dvdir)
    ours_dir = tmp / "ours"
    ours_dir.mkdir()
    diffs = {}   # (file, item) -> (dovecot, ours)
    same = {}    # item -> count identical
    for n, (f, m) in enumerate(zip(files, msgs), 1):
        path = ours_dir / f.name
        path.write_bytes(m)
        d = dv[n]
        ours = tool_struct(path)
        name = f"{f.parent.name}/{f.name}"
        for item in STRUCT:
            if d[item] == ours[item]:
                same[item] = same.get(item, 0) + 1
            else:
                diffs[(name, item)] = (d[item], ours[item])
        for s in SECTIONS:
            key = next(k for k in d if k.upper() == f"BODY[{s.upper()}]")
            want = string_value(d[key])
            got = tool_section(path, s)
            if want == got:
                same[s] = same.get(s, 0) + 1
            else:
                diffs[(name, s)] = (want, got)
    shutil.rmtree(ours_dir)
    return len(files), same, diffs


def test_agreement(compared):
    total, same, diffs = compared
    for item in STRUCT + SECTIONS:
        label = item if item in STRUCT else f"BODY[{item}]"
        print(f"{label}: identical on {same.get(item, 0)}/{total}")
    unexpected = {k: v for k, v in diffs.items() if k not in KNOWN}
    for (name, item), (d, o) in sorted(unexpected.items())[:20]:
        print(f"--- {name} {item}\n dovecot: {d[:600]!r}\n ours:    {o[:600]!r}")
    assert not unexpected, f"{len(unexpected)} unpinned differences"


def test_pins_are_current(compared):
    _, _, diffs = compared
    stale = [k for k in KNOWN if k not in diffs]
    assert not stale, f"pinned differences that no longer occur: {stale}"
