"""libamp installs as a library other programs can use: `meson install`
into a staging directory gives the header, static and shared libraries,
a pkg-config file and the amp binary, and a program outside the tree
builds against them with pkg-config alone and runs."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AMP_BUILD_DIR", ROOT / "build"))


def run(*cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{cmd}: {p.stdout}\n{p.stderr}"
    return p.stdout


def test_install_and_build_a_consumer(tmp_path):
    dest = tmp_path / "stage"
    run("meson", "install", "-C", str(BUILD), "--destdir", str(dest), "--quiet")
    files = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink()}
    assert any(f.endswith("include/amp/amp.h") for f in files)
    assert any(f.endswith("libamp.a") for f in files)
    assert any(f.endswith("libamp.so.0") for f in files)
    assert any(f.endswith("bin/amp") for f in files)
    pcs = [dest / f for f in files if f.endswith("pkgconfig/libamp.pc")]
    assert len(pcs) == 1
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    cflags = run("pkg-config", "--cflags", "libamp", env=env).split()
    libs = run("pkg-config", "--libs", "libamp", env=env).split()
    exe = tmp_path / "consumer"
    run("cc", "-Wall", "-Werror", *cflags, str(Path(__file__).with_name("consumer.c")),
        "-o", str(exe), *libs)
    libdir = [a[2:] for a in libs if a.startswith("-L")][0]
    out = run(str(exe), env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    assert out == "installed libamp works\n"
    # and statically, with the private dependencies pkg-config lists
    static = run("pkg-config", "--static", "--libs", "libamp", env=env).split()
    exe2 = tmp_path / "consumer-static"
    run("cc", *cflags, str(Path(__file__).with_name("consumer.c")), "-o", str(exe2),
        f"{libdir}/libamp.a", *[a for a in static if a != "-lamp"])
    assert run(str(exe2)) == "installed libamp works\n"
