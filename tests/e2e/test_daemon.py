"""aftersmtpd as an operator uses it today: quickstart, init, the config
commands, and the generated configuration reference kept in step with the
schema.  (The AMP listeners are issue 3 work in progress.)"""
import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AMPD = os.environ.get("AMPD_BIN", str(Path(os.environ.get(
    "AMP_BIN", ROOT / "build" / "src" / "cli" / "amp")).parents[1] / "daemon" / "aftersmtpd"))


def ampd(*args, cwd=None, check=True):
    p = subprocess.run([AMPD, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"aftersmtpd {args}: {p.returncode}: {p.stderr}")
    return p


@pytest.fixture
def node(tmp_path):
    p = ampd("quickstart", "Alpha.Test", "--host", "mx.alpha.test", cwd=tmp_path)
    return tmp_path / "aftersmtp-alpha.test", p.stdout


def test_help_and_usage():
    p = ampd("--help")
    assert p.stdout.startswith("Usage: aftersmtpd") and "quickstart DOMAIN" in p.stdout
    assert "Example" in p.stdout
    assert ampd(check=False).returncode == 2
    assert ampd("frobnicate", check=False).returncode == 2


def test_quickstart_writes_config_keys_and_dns(node):
    d, out = node
    conf = (d / "aftersmtpd.conf").read_text()
    assert "domains = alpha.test\n" in conf
    data = d / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("node.key", "node.pass", "storage.key", "tls.key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert len((data / "storage.key").read_bytes()) == 32
    assert "BEGIN CERTIFICATE" in (data / "tls.crt").read_text()
    # the DNS records name the host and carry the node key
    assert "_amp._udp.alpha.test.  3600 IN SRV 10 10 4434 mx.alpha.test." in out
    assert "_amp._tcp.alpha.test.  3600 IN SRV 10 10 4434 mx.alpha.test." in out
    assert "alpha.test.            3600 IN MX  10 mx.alpha.test." in out
    txt = [l for l in out.splitlines() if l.startswith("_amp-node.alpha.test.")][0]
    shown = ampd("-c", str(d / "aftersmtpd.conf"), "show-node").stdout
    assert "node        did:aftersmtp:alpha.test:node" in shown
    key = txt.split('"')[1]
    assert key in shown   # the same key as the node identity holds


def test_init_is_idempotent_and_never_replaces(node, tmp_path):
    d, _ = node
    before = {f.name: f.read_bytes() for f in (d / "data").iterdir()}
    p = ampd("-c", str(d / "aftersmtpd.conf"), "init")
    assert "created" not in p.stdout and "is ready" in p.stdout
    after = {f.name: f.read_bytes() for f in (d / "data").iterdir()}
    assert before == after
    p = ampd("quickstart", "alpha.test", cwd=tmp_path, check=False)
    assert p.returncode == 1 and "not replaced" in p.stderr


def test_check_and_show_config(node, tmp_path):
    d, _ = node
    conf = str(d / "aftersmtpd.conf")
    assert "configuration is valid" in ampd("-c", conf, "check-config").stdout
    assert ampd("--config", conf, "--check-config").returncode == 0
    nondefault = ampd("-c", conf, "show-config", "-n").stdout.splitlines()
    assert sorted(l.split(" = ")[0] for l in nondefault) == ["data_dir", "domains", "listen"]
    full = ampd("-c", conf, "show-config").stdout
    assert "tls_cert_days = 3650" in full
    bad = tmp_path / "bad.conf"
    bad.write_text("domains = a.test\nbogus = 1\ntls_cert_days = 0\n  continued\n")
    p = ampd("-c", str(bad), "check-config", check=False)
    assert p.returncode == 1
    assert f"{bad}:2: unknown key 'bogus'" in p.stderr
    assert f"{bad}:3: tls_cert_days: '0 continued' is not a valid integer" in p.stderr
    assert f"{bad}: 2 errors" in p.stderr
    p = ampd("-c", str(tmp_path / "missing.conf"), "check-config", check=False)
    assert p.returncode == 1 and "No such file" in p.stderr
    p = ampd("quickstart", "not_a domain", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "not a domain name" in p.stderr


def test_config_reference_is_in_docs():
    ref = ampd("config-reference").stdout
    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    assert ref in doc, "docs/CONFIG.md is stale: regenerate it from `aftersmtpd config-reference`"
    for line in ref.splitlines()[2:]:
        assert line.count("|") == 7 and len(line.split("|")[6].strip()) > 10
