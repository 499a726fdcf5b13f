"""The version number has one place, pyiocp.__version__: the installed
package's metadata says the same, and pyproject.toml names none."""

from __future__ import annotations

import importlib.metadata
import re

import pyiocp
from iocp_helpers import REPO


def test_one_version_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", pyiocp.__version__)
    assert importlib.metadata.version("pyiocp") == pyiocp.__version__
    pyproject = (REPO / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=", pyproject, re.M)
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.M)
