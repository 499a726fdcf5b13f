"""The Linux wheel, as `make wheel` builds it: a manylinux tag that
auditwheel confirms, and an install that needs neither Go nor a C compiler
(pip into a clean venv, then scripts/wheel_smoke.py with nothing but the
venv on PATH). The fresh-root form of the same check, with Go and gcc
removed from the machine, is scripts/wheel_fresh_check.sh."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from iocp_helpers import REPO
from test_install import SYSTEM_PYTHON, _copy_sources, _go_env

# Linux: the wheel is Linux's (the Windows one is checked under Wine by
# make test-windows-wheel).
pytestmark = pytest.mark.linux

# The Makefile's WHEEL_PLAT: the oldest glibc the Go runtime's cgo symbols
# allow when built with Debian 12's (pthread_* at GLIBC_2.34).
WHEEL_PLAT = "manylinux_2_34_x86_64"


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    _copy_sources(src)
    dist = tmp_path / "dist"
    r = subprocess.run([SYSTEM_PYTHON, "setup.py", "-q", "bdist_wheel", "--plat-name", WHEEL_PLAT,
                        "--dist-dir", str(dist)], cwd=src, env=_go_env(), capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    # The tag of the interpreter that built it (Debian's, whichever runs the tests).
    ver = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    tag = f"cp{ver}-cp{ver}-{WHEEL_PLAT}"
    assert wheels[0].name.endswith(f"-{tag}.whl"), wheels[0].name
    return wheels[0]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_wheel_is_manylinux_and_runs_without_go_or_a_compiler(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)

    r = subprocess.run([str(REPO / "scripts" / "auditwheel"), "show", str(wheel)], capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    shown = " ".join(r.stdout.split())
    assert f'consistent with the following platform tag: "{WHEEL_PLAT}"' in shown, r.stdout
    # Nothing but libc: no shared library of the build machine to graft.
    libs = re.search(r"system-provided shared libraries: (.*?) with versions", shown)
    assert libs and libs.group(1) == "libc.so.6", r.stdout

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # --system-site-packages: pytest, from Debian; pyiocp is not there.
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True, env=env,
                   timeout=60)
    env["PATH"] = str(venv / "bin")  # no Go, no gcc
    py = str(venv / "bin" / "python")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([py, str(REPO / "scripts" / "wheel_smoke.py"), "--no-toolchain"], cwd=work,
                       capture_output=True, text=True, env=env, timeout=360)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": ok") == 6, r.stdout
