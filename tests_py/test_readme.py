"""The README's quick start runs as written; the documentation's links
lead somewhere; the library logs, never prints."""

from __future__ import annotations

import ast
import re
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

import pyiocp
from example_procs import running
from iocp_helpers import PYTHON, REPO, unexpected_stderr
from pyiocp.testing import Client, faults, start_server

README = REPO / "README.md"


def code_blocks(text: str) -> Dict[str, str]:
    """The README's Python blocks that start with a ``# <file name>`` line."""
    out = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        m = re.match(r"# (\w+\.py)\b", block)
        if m:
            out[m.group(1)] = block
    return out


def shell_lines(text: str, prefix: str) -> List[str]:
    """The README's command lines that start with prefix, without comments."""
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line.startswith(prefix)]


@pytest.mark.linux  # runs the README's shell commands and stops its server with SIGINT
def test_quick_start(tmp_path: Path) -> None:
    """The two files of the quick start, in a directory of their own: the
    server runs (on a free port given as its argument rather than 7000),
    the bench command of the README passes against it, Ctrl-C stops it
    with exit code 0, so does SIGTERM (closing an open connection
    cleanly), and the test file passes under pytest."""
    text = README.read_text()
    blocks = code_blocks(text)
    assert set(blocks) == {"echo_server.py", "test_echo_server.py"}
    for name, source in blocks.items():
        (tmp_path / name).write_text(source)
    assert shell_lines(text, ".venv/bin/python echo_server.py") == [".venv/bin/python echo_server.py"]
    (bench,) = shell_lines(text, ".venv/bin/python -m pyiocp bench")
    (run_tests,) = shell_lines(text, ".venv/bin/python -m pytest")

    with running([str(tmp_path / "echo_server.py"), "0"]) as server:
        assert server.lines[0].startswith("listening on 127.0.0.1:")
        with Client(server.address) as c:
            c.send(b"quick start")
            assert c.recv_exactly(11) == b"quick start"
        argv = bench.replace(".venv/bin/python", PYTHON).replace("--port 7000", f"--port {server.port}").split()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"mismatches\s+0", r.stdout), r.stdout
        assert server.stop(signal.SIGINT) == 0
        assert unexpected_stderr(server.stderr()) == ""
    with running([str(tmp_path / "echo_server.py"), "0"]) as server:
        with Client(server.address) as c:
            c.send(b"systemd")
            assert c.recv_exactly(7) == b"systemd"
            assert server.stop(signal.SIGTERM) == 0
            assert c.recv_until_eof() == b""
        assert unexpected_stderr(server.stderr()) == ""

    argv = run_tests.replace(".venv/bin/python", PYTHON).split() + ["-p", "no:cacheprovider"]
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_the_quick_start_commands_are_make_targets() -> None:
    text = README.read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"^\s*make ([\w-]+)", text, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_documentation_links() -> None:
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    assert {p.name for p in pages} >= {"README.md", "api.md", "testing.md", "coming-from-asyncio.md", "design.md",
                                       "tuning.md"}
    for page in pages:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_the_library_logs_and_never_prints() -> None:
    """Only the command line writes to stdout and stderr; everything else
    goes through logging.getLogger("pyiocp") (or a child of it)."""
    for path in sorted((REPO / "pyiocp").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                assert path.name == "__main__.py" or "_cli" in path.parts, f"{path}:{node.lineno}: print()"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "getLogger"):
                assert node.args and isinstance(node.args[0], ast.Constant), f"{path}:{node.lineno}"
                name = node.args[0].value
                assert name == "pyiocp" or str(name).startswith("pyiocp."), f"{path}:{node.lineno}: {name}"


def python_blocks(page: Path) -> List[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_every_python_block_of_the_docs_parses() -> None:
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for block in python_blocks(page):
            ast.parse(block, f"{page.name}: {block[:40]!r}")


def test_the_asyncio_pages_flow_controlled_handler_works() -> None:
    """The pyiocp side of "A protocol with state, and flow control", run
    against a peer that writes far ahead of its reading."""
    (source,) = [b for b in python_blocks(REPO / "docs" / "coming-from-asyncio.md")
                 if "class Lines(pyiocp.Handler)" in b]
    namespace: Dict[str, Any] = {"pyiocp": pyiocp}
    exec(source, namespace)
    server = start_server(namespace["Lines"], send_buffer_limit=64 << 10)
    try:
        reply = faults.slow_reader(server, b"ab\n" * 300_000, expect=900_000, chunk=1 << 16, pause=0)
        assert reply == b"AB\n" * 300_000
        assert server.manager.stats()["connections"] <= 1
    finally:
        server.close()
