"""Free-threaded CPython (3.13t): pyiocp keeps the GIL off, and its
invariants hold with callbacks of different connections truly running at
once. The stress tests run on every build (with the GIL they check the
same invariants, taking turns); only on a free-threaded one can they
catch state the GIL used to protect."""

from __future__ import annotations

import subprocess
import sys
import sysconfig

import pytest

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (3.13t)")
def test_import_leaves_the_gil_off() -> None:
    # In a fresh interpreter: an extension that does not declare Py_mod_gil
    # turns the GIL back on at its import, with a RuntimeWarning.
    code = "import sys, pyiocp; print(sys._is_gil_enabled())"
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert r.stderr == ""
