"""A user's install: pip install of the sdist (made from a copy of the
source tree) into a fresh venv (Debian's /usr/bin/python3, --system-site-packages for setuptools and
wheel, no index), then pyiocp works from outside the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from iocp_helpers import REPO

# Linux: the install builds the extension with Go and Debian's Python
# headers; a Windows install needs Go and a C compiler for Windows.
pytestmark = pytest.mark.linux

SYSTEM_PYTHON = "/usr/bin/python3"
# What a build needs: the packaging files, the Go module and the package.
SOURCES = ["setup.py", "pyproject.toml", "go.mod", "go.sum", "README.md", "gomod", "pyiocp"]


def _go_env() -> Dict[str, str]:
    env = dict(os.environ)
    go = shutil.which("go") or "/usr/local/go/bin/go"
    env["PATH"] = env.get("PATH", "") + os.pathsep + str(Path(go).parent)
    if "GOCACHE" not in env:  # reuse the developer's build cache
        r = subprocess.run([go, "env", "GOCACHE"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            env["GOCACHE"] = r.stdout.strip()
    for var in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(var, None)
    return env


def _copy_sources(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "_pyiocp*.h", "*_test.go")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dst / name)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="needs Debian's /usr/bin/python3")
def test_pip_install_into_a_fresh_venv(tmp_path: Path) -> None:
    env = _go_env()
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(src)
    venv = tmp_path / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True, env=env,
                   timeout=60)
    py = venv / "bin" / "python"
    # Installed from the sdist (make sdist's): it must hold all the build needs.
    r = subprocess.run([SYSTEM_PYTHON, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")], cwd=src,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (sdist,) = (tmp_path / "dist").glob("pyiocp-*.tar.gz")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--no-index",
                        str(sdist)], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr

    work = tmp_path / "elsewhere"  # outside both the source tree and its copy
    work.mkdir()
    # Imported from the venv, an echo round trip, the pytest plugin found
    # through the installed entry point and used.
    r = subprocess.run([str(py), str(REPO / "scripts" / "wheel_smoke.py")], cwd=work, capture_output=True,
                       text=True, env=env, timeout=360)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": ok") == 5, r.stdout
    import_check = "import pathlib, pyiocp; p = pathlib.Path(pyiocp.__file__).parent; " \
                   "print((p / 'py.typed').exists() and (p / '_pyiocp.pyi').exists())"
    r = subprocess.run([str(py), "-c", import_check], cwd=work, capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.strip() == "True", r.stdout + r.stderr  # typed: py.typed and the stub installed

    r = subprocess.run([str(venv / "bin" / "pyiocp"), "--help"], cwd=work, capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: pyiocp" in r.stdout


@pytest.mark.parametrize("fake", ["echo go1.21.5", "echo not a go; exit 3"], ids=["too old", "not go"])
def test_a_build_without_a_usable_go_says_why(tmp_path: Path, fake: str) -> None:
    """GO pointing at an old Go (or at something else): setup.py stops with
    one clear line, not a traceback nor a compiler's error."""
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(src)
    go = tmp_path / "go"
    go.write_text(f"#!/bin/sh\n{fake}\n")
    go.chmod(0o755)
    env = {**_go_env(), "GO": str(go)}
    r = subprocess.run([SYSTEM_PYTHON, "setup.py", "build_ext", "--inplace"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    want = "needs Go 1.26 or newer" if "1.21" in fake else "did not give a Go version"
    assert want in r.stderr, r.stderr


def test_a_wheel_build_without_the_wheel_package_says_why(tmp_path: Path) -> None:
    """pip builds a wheel to install from source: without the wheel
    package, one clear line says what to install."""
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(src)
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['wheel'] = None  # as if not installed\n")
    env = {**_go_env(), "PYTHONPATH": str(hide)}
    r = subprocess.run([SYSTEM_PYTHON, "setup.py", "bdist_wheel"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    assert "needs the 'wheel' package" in r.stderr, r.stderr
