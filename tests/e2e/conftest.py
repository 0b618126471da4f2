"""Shared fixtures for end-to-end tests of the `amp` command.

The binary is $AMP_BIN (default build/src/cli/amp).  Each test gets fresh
AMP_HOME directories under pytest's tmp_path; keystores use --kdf min so
tests stay fast (the KDF level itself is covered by unit tests).
"""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AMP_BIN = os.environ.get("AMP_BIN", str(ROOT / "build" / "src" / "cli" / "amp"))
PASS = "e2e passphrase"


class Amp:
    """One identity's view: runs `amp` with its own AMP_HOME."""

    def __init__(self, home: Path, did: str | None = None):
        self.home = home
        self.did = did

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMP_")}
        env["AMP_HOME"] = str(self.home)
        env["AMP_PASSPHRASE"] = PASS
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def run(self, *args, input=None, check=True, env=None, **kw):
        p = subprocess.run([AMP_BIN, *args], input=input, capture_output=True,
                           env=env if env is not None else self.env(), timeout=120, **kw)
        if check and p.returncode != 0:
            raise AssertionError(
                f"amp {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
        return p


@pytest.fixture
def make_identity(tmp_path):
    def make(name: str, domain: str = "example.org") -> Amp:
        did = f"did:aftersmtp:{domain}:{name}"
        a = Amp(tmp_path / name, did)
        a.run("keygen", "--did", did, "--kdf", "min")
        return a
    return make


@pytest.fixture
def pair(make_identity, tmp_path):
    """Alice and Bob who have imported each other's DID documents."""
    alice, bob = make_identity("alice"), make_identity("bob", "example.net")
    for x, y in ((alice, bob), (bob, alice)):
        doc = tmp_path / f"{x.home.name}.json"
        x.run("did", "document", "-o", str(doc))
        y.run("did", "import", str(doc))
    return alice, bob


@pytest.fixture
def amp_bin():
    if not os.access(AMP_BIN, os.X_OK):
        pytest.fail(f"amp binary not found at {AMP_BIN}; build first (make check)")
    return AMP_BIN


@pytest.fixture
def base():
    """A world-traversable directory for real nodes (tests/e2e/nodes.py)
    and the list of nodes a test starts: each is stopped with SIGTERM at
    the end, and any sanitizer report in a node's log fails the test."""
    from nodes import make_base, remove_base, stop_all
    b = make_base()
    nodes = []
    yield b, nodes
    try:
        stop_all(nodes)
    finally:
        remove_base(b)


@pytest.fixture
def two(base):
    """alpha.test and beta.test, each routing to the other with pinned keys."""
    from nodes import Node
    b, nodes = base
    alpha, beta = Node(b, "alpha.test"), Node(b, "beta.test")
    alpha.route_to(beta)
    beta.route_to(alpha)
    nodes += [alpha, beta]
    alpha.start()
    beta.start()
    return b, alpha, beta
