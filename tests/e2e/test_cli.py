"""End-to-end tests of the `amp` command as a user runs it: real binary,
real files, real keystores.  Protocol-level rejections are covered in the
unit tests; here we check what a person sees: exit codes, messages that
name the file and the reason, file modes, atomic output, --help."""
import json
import os
import stat
import subprocess

import pytest

from conftest import AMP_BIN, PASS, Amp

MSG = b"From: a@example.org\r\nSubject: e2e\r\n\r\nHello \xc3\xa9t\xc3\xa9.\r\n"

COMMANDS = [["keygen"], ["did"], ["seal"], ["open"], ["verify"], ["pow"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c[0])
def test_every_command_has_help(amp_bin, cmd):
    p = subprocess.run([amp_bin, *cmd, "--help"], capture_output=True)
    assert p.returncode == 0
    out = p.stdout.decode()
    assert out.startswith("Usage: amp " + cmd[0])
    assert "Example" in out and "--help" in out
    # `amp help CMD` is the same text
    q = subprocess.run([amp_bin, "help", *cmd], capture_output=True)
    assert q.returncode == 0 and q.stdout == p.stdout


def test_top_level_help_and_errors(amp_bin):
    p = subprocess.run([amp_bin, "--help"], capture_output=True)
    assert p.returncode == 0 and b"Commands:" in p.stdout
    p = subprocess.run([amp_bin], capture_output=True)
    assert p.returncode == 2 and b"Usage" in p.stderr
    p = subprocess.run([amp_bin, "frobnicate"], capture_output=True)
    assert p.returncode == 2 and b"unknown command" in p.stderr
    p = subprocess.run([amp_bin, "version"], capture_output=True)
    assert p.returncode == 0 and b"protocol version 1" in p.stdout
    p = subprocess.run([amp_bin, "seal", "--bogus"], capture_output=True)
    assert p.returncode == 2


def test_keygen_keystore_is_private_and_not_overwritten(amp_bin, make_identity):
    a = make_identity("alice")
    ks = a.home / "keystore.json"
    assert stat.S_IMODE(ks.stat().st_mode) == 0o600
    assert stat.S_IMODE(a.home.stat().st_mode) == 0o700
    data = json.loads(ks.read_text())
    assert data["type"] == "amp-keystore" and data["did"] == a.did
    assert data["kdf"]["alg"] == "argon2id13"
    before = ks.read_bytes()
    p = a.run("keygen", "--did", a.did, "--kdf", "min", check=False)
    assert p.returncode == 1 and b"already exists" in p.stderr
    assert ks.read_bytes() == before
    a.run("keygen", "--did", a.did, "--kdf", "min", "--force")
    assert ks.read_bytes() != before
    assert [f.name for f in a.home.iterdir() if ".tmp." in f.name] == []


def test_keygen_lowercases_and_rejects_bad_did(amp_bin, tmp_path):
    a = Amp(tmp_path / "x")
    p = a.run("keygen", "--did", "did:aftersmtp:Example.ORG:Alice", "--kdf", "min")
    assert b"created did:aftersmtp:example.org:alice" in p.stdout
    b = Amp(tmp_path / "y")
    p = b.run("keygen", "--did", "did:aftersmtp:example.org:a..b", "--kdf", "min", check=False)
    assert p.returncode == 1
    assert b"AMP_E_BAD_DID" in p.stderr and b"consecutive dots" in p.stderr
    assert not (tmp_path / "y" / "keystore.json").exists()


def test_passphrase_sources(amp_bin, make_identity, tmp_path):
    a = make_identity("alice")
    # wrong passphrase from the environment
    env = a.env(AMP_PASSPHRASE="wrong")
    p = a.run("seal", "--to", a.did, input=MSG, env=env, check=False)
    assert p.returncode == 1 and b"AMP_E_PASSPHRASE" in p.stderr
    assert b"keystore.json" in p.stderr
    # from a file descriptor (no environment variable)
    r, w = os.pipe()
    os.write(w, (PASS + "\n").encode())
    os.close(w)
    env = a.env(AMP_PASSPHRASE=None)
    p = subprocess.run([AMP_BIN, "seal", "--passphrase-fd", str(r), "--to", a.did],
                       input=MSG, capture_output=True, env=env, pass_fds=(r,))
    os.close(r)
    assert p.returncode == 0, p.stderr
    # neither, and no terminal: a clear error, not a hang
    p = subprocess.run(["setsid", AMP_BIN, "seal", "--to", a.did], input=MSG,
                       capture_output=True, env=env, timeout=30)
    assert p.returncode == 1 and b"no passphrase" in p.stderr
    # there is no way to pass it as an argument
    p = a.run("seal", "--passphrase", PASS, "--to", a.did, input=MSG, check=False)
    assert p.returncode == 2


def test_seal_open_two_recipients(pair, tmp_path):
    alice, bob = pair
    src = tmp_path / "m.eml"
    src.write_bytes(MSG)
    out = tmp_path / "m.amp"
    alice.run("seal", "--to", f"{bob.did},{alice.did}", "-i", str(src), "-o", str(out))
    assert out.read_bytes()[:1] == b"\x0a"          # binary protobuf
    assert bob.run("open", "-i", str(out)).stdout == MSG
    assert alice.run("open", "-i", str(out)).stdout == MSG
    # --to given twice works like a list
    p = alice.run("seal", "--to", bob.did, "--to", alice.did, input=MSG)
    assert bob.run("open", input=p.stdout).stdout == MSG


def test_armor_and_stdin(pair):
    alice, bob = pair
    env = alice.run("seal", "--armor", "--to", bob.did, input=MSG).stdout
    assert env.startswith(b"-----BEGIN AMP ENVELOPE-----\n")
    assert env.endswith(b"-----END AMP ENVELOPE-----\n")
    assert all(len(line) <= 64 for line in env.splitlines())
    assert bob.run("open", input=env).stdout == MSG
    crlf = env.replace(b"\n", b"\r\n")
    assert bob.run("open", input=crlf).stdout == MSG


def test_verify_prints_header(pair, tmp_path):
    alice, bob = pair
    env = alice.run("seal", "--to", bob.did, "--lane", "critical",
                    "--content-type", "text/plain", "--expires", "+1d", input=MSG).stdout
    out = bob.run("verify", input=env).stdout.decode()
    assert f"sender       {alice.did}" in out
    assert f"recipient    {bob.did}" in out
    assert "lane         critical" in out and "content-type text/plain" in out
    assert "signature    good" in out
    # a third party with only Alice's document can verify too
    doc = tmp_path / "alice.json"
    alice.run("did", "document", "-o", str(doc))
    third = Amp(tmp_path / "nobody")
    assert third.run("verify", "--doc", str(doc), input=env).returncode == 0


def test_refusals_name_the_reason(pair, make_identity, tmp_path):
    alice, bob = pair
    carol = make_identity("carol")
    env = tmp_path / "m.amp"
    alice.run("seal", "--to", bob.did, "-i", "-", "-o", str(env), input=MSG)
    # carol does not know alice
    p = carol.run("open", "-i", str(env), check=False)
    assert p.returncode == 1 and b"unknown identity" in p.stderr
    doc = tmp_path / "alice.json"
    alice.run("did", "document", "-o", str(doc))
    carol.run("did", "import", str(doc))
    p = carol.run("open", "-i", str(env), check=False)
    assert p.returncode == 1 and b"AMP_E_NOT_RECIPIENT" in p.stderr
    assert str(env).encode() in p.stderr
    # one flipped byte anywhere is caught, and nothing reaches stdout
    raw = bytearray(env.read_bytes())
    for at in range(0, len(raw), 7):
        bad = bytearray(raw)
        bad[at] ^= 0x01
        p = bob.run("open", input=bytes(bad), check=False)
        assert p.returncode == 1, at
        # a flip inside the sender's DID names another (unknown) identity
        assert b"AMP_E_" in p.stderr or b"unknown identity" in p.stderr, p.stderr
        assert p.stdout == b""
    # truncated
    p = bob.run("open", input=bytes(raw[:-10]), check=False)
    assert p.returncode == 1 and b"AMP_E_TRUNCATED" in p.stderr
    # not an envelope at all
    p = bob.run("open", input=b"hello\n", check=False)
    assert p.returncode == 1 and b"AMP_E_" in p.stderr


def test_expired(pair):
    import time
    alice, bob = pair
    env = alice.run("seal", "--to", bob.did, "--expires", "+1s", input=MSG).stdout
    time.sleep(1.2)
    p = bob.run("open", input=env, check=False)
    assert p.returncode == 1 and b"AMP_E_EXPIRED" in p.stderr
    p = alice.run("seal", "--to", bob.did, "--expires", "1000", input=MSG, check=False)
    assert p.returncode == 2 and b"--expires" in p.stderr


def test_failed_open_leaves_output_untouched(pair, tmp_path):
    alice, bob = pair
    out = tmp_path / "plain.eml"
    out.write_bytes(b"previous content")
    env = bytearray(alice.run("seal", "--to", bob.did, input=MSG).stdout)
    env[-1] ^= 1
    p = bob.run("open", "-o", str(out), input=bytes(env), check=False)
    assert p.returncode == 1
    assert out.read_bytes() == b"previous content"
    assert sorted(f.name for f in tmp_path.iterdir() if ".tmp." in f.name) == []
    # success replaces it whole, with mode 0600 (it is plaintext)
    bob.run("open", "-o", str(out), input=bytes(alice.run("seal", "--to", bob.did, input=MSG).stdout))
    assert out.read_bytes() == MSG
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_did_commands(pair, tmp_path):
    alice, bob = pair
    out = alice.run("did", "show").stdout.decode()
    assert out.startswith(f"did         {alice.did}\n")
    assert "#sig-" in out and "#enc-" in out
    doc = json.loads(alice.run("did", "document").stdout)
    assert doc["id"] == alice.did
    assert {m["publicKeyJwk"]["crv"] for m in doc["verificationMethod"]} == {"Ed25519", "X25519"}
    assert alice.run("did", "list").stdout.decode().split() == [bob.did]
    assert alice.run("did", "check", "did:aftersmtp:EXAMPLE.org:X").stdout == b"did:aftersmtp:example.org:x\n"
    p = alice.run("did", "check", "did:aftersmtp:example.org:-x", check=False)
    assert p.returncode == 1 and b"AMP_E_BAD_DID" in p.stderr


def test_import_refuses_changed_keys(pair, make_identity, tmp_path):
    alice, bob = pair
    # someone else claims to be bob with other keys
    impostor = Amp(tmp_path / "impostor")
    impostor.run("keygen", "--did", bob.did, "--kdf", "min")
    doc = tmp_path / "fake-bob.json"
    impostor.run("did", "document", "-o", str(doc))
    p = alice.run("did", "import", str(doc), check=False)
    assert p.returncode == 1 and b"DIFFERENT keys" in p.stderr
    # mail sealed by alice still goes to the real bob
    env = alice.run("seal", "--to", bob.did, input=MSG).stdout
    assert bob.run("open", input=env).stdout == MSG
    alice.run("did", "import", "--force", str(doc))
    # a corrupted document is refused with the file named
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "did:aftersmtp:x.org:y"}')
    p = alice.run("did", "import", str(bad), check=False)
    assert p.returncode == 1 and str(bad).encode() in p.stderr


def test_pow(pair, tmp_path):
    alice, bob = pair
    stamp = alice.run("pow", "mint", "--bits", "12").stdout.decode().strip()
    assert stamp.startswith("amp-pow-v1:12:")
    assert alice.run("pow", "check", "--bits", "12", stamp).returncode == 0
    assert alice.run("pow", "check", "--bits", "8", stamp).returncode == 0
    p = alice.run("pow", "check", "--bits", "13", stamp, check=False)
    assert p.returncode == 1 and b"AMP_E_POW_INSUFFICIENT" in p.stderr
    # bound to the identity: bob's document does not fit alice's stamp
    doc = tmp_path / "bob.json"
    bob.run("did", "document", "-o", str(doc))
    p = alice.run("pow", "check", "--bits", "12", "--doc", str(doc), stamp, check=False)
    assert p.returncode == 1 and b"AMP_E_POW_INSUFFICIENT" in p.stderr
    p = alice.run("pow", "check", "amp-pow-v1:nonsense", check=False)
    assert p.returncode == 1 and b"AMP_E_MALFORMED" in p.stderr
    p = alice.run("pow", "mint", "--bits", "40", "--max-tries", "100", check=False)
    assert p.returncode == 1
    p = alice.run("pow", "mint", "--bits", "99", check=False)
    assert p.returncode == 2


def test_input_limits(pair, tmp_path):
    alice, bob = pair
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(32 * 1024 * 1024 + 1)
    p = alice.run("seal", "--to", bob.did, "-i", str(big), check=False)
    assert p.returncode == 1 and b"larger than 32 MiB" in p.stderr
    p = alice.run("seal", "--to", bob.did, "-i", str(tmp_path / "missing"), check=False)
    assert p.returncode == 1 and b"No such file" in p.stderr
    # exactly 32 MiB is accepted
    with open(big, "wb") as f:
        f.truncate(32 * 1024 * 1024)
    env = alice.run("seal", "--to", bob.did, "-i", str(big)).stdout
    assert len(env) < 64 * 1024  # zeros compress
    assert len(bob.run("open", input=env).stdout) == 32 * 1024 * 1024


def test_no_keystore_message(tmp_path):
    a = Amp(tmp_path / "empty")
    p = a.run("did", "show", check=False)
    assert p.returncode == 1 and b"no keystore" in p.stderr and b"amp keygen" in p.stderr


def _on_terminal(args, env, answers, timeout=30, check_echo=None):
    """Run amp with a pseudo-terminal as its controlling terminal, answering
    each prompt as a person would: wait for it, then type the line."""
    import pty
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(AMP_BIN, [AMP_BIN, *args], env)
    out = b""
    answered_at = 0          # only output after our last answer can prompt
    deadline = time.monotonic() + timeout
    pending = list(answers)
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            raise AssertionError(f"amp {args} hung; output so far: {out!r}")
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
            if pending and out[answered_at:].rstrip().endswith(b"passphrase:"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                answered_at = len(out)
    _, status = os.waitpid(pid, 0)
    if check_echo is not None:
        import termios
        check_echo.append(bool(termios.tcgetattr(fd)[3] & termios.ECHO))
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_passphrase_prompt_on_terminal(amp_bin, tmp_path):
    a = Amp(tmp_path / "t")
    env = a.env(AMP_PASSPHRASE=None)
    did = "did:aftersmtp:example.org:tty"
    rc, out = _on_terminal(["keygen", "--did", did, "--kdf", "min"], env,
                           ["tty secret", "tty secret"])
    assert rc == 0, out
    assert b"Keystore passphrase:" in out and b"Repeat passphrase:" in out
    assert b"tty secret" not in out          # not echoed
    # the passphrase typed on the terminal is the one that opens it
    p = a.run("seal", "--to", did, input=MSG, env=a.env(AMP_PASSPHRASE="tty secret"))
    assert p.returncode == 0
    # a mistyped confirmation creates nothing
    b = Amp(tmp_path / "u")
    rc, out = _on_terminal(["keygen", "--did", did, "--kdf", "min"], b.env(AMP_PASSPHRASE=None),
                           ["one", "two"])
    assert rc == 1 and b"passphrases differ" in out
    assert not (tmp_path / "u" / "keystore.json").exists()


def test_ctrl_c_at_prompt_restores_echo(amp_bin, tmp_path):
    a = Amp(tmp_path / "c")
    echo = []
    # "\x03" is typed as the answer: the terminal turns it into SIGINT
    rc, out = _on_terminal(["keygen", "--did", "did:aftersmtp:example.org:c", "--kdf", "min"],
                           a.env(AMP_PASSPHRASE=None), ["\x03"], check_echo=echo)
    assert rc == -2, out                      # killed by SIGINT, as it should
    assert echo == [True]                     # and the terminal echoes again
    assert not (tmp_path / "c" / "keystore.json").exists()


def test_known_document_must_match_its_name(pair, make_identity, tmp_path):
    alice, bob = pair
    carol_did = "did:aftersmtp:example.org:carol"
    known = alice.home / "known"
    (known / f"{carol_did}.json").write_bytes((known / f"{bob.did}.json").read_bytes())
    p = alice.run("seal", "--to", carol_did, input=MSG, check=False)
    assert p.returncode == 1 and b"not of " + carol_did.encode() in p.stderr
