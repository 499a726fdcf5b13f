"""What a user does first with an installed pyiocp, as a check of a wheel:

    python scripts/wheel_smoke.py [--no-toolchain] [--installed-in DIR]

run by the interpreter the wheel was installed into, from a directory
outside the source tree. It checks that pyiocp is imported from that
install (under DIR, by default the interpreter's prefix: not from a source
tree), does an echo round trip over loopback,
finds the pytest plugin through the installed entry point and runs a test
with its fixtures in a fresh directory. --no-toolchain: also fail if Go or
a C compiler is on PATH (the wheel must need neither). Prints one line
per check; exits non-zero at the first that fails.
"""

import importlib.metadata as md
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PLUGIN_TEST = textwrap.dedent("""
    import pyiocp

    class Echo(pyiocp.Handler):
        def on_recv(self, conn, data):
            conn.send(data)

    def test_echo_through_the_plugin(iocp_server, iocp_client):
        server = iocp_server(Echo)
        client = iocp_client(server.address)
        client.send(b"plugin")
        assert client.recv_exactly(6) == b"plugin"
""")


def check(what: str, ok: bool, detail: object = "") -> None:
    print(f"wheel smoke: {what}: {'ok' if ok else 'FAILED'} {detail}".rstrip(), flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    if "--no-toolchain" in sys.argv[1:]:
        found = {t: shutil.which(t) for t in ("go", "gcc", "cc")}
        check("no Go and no C compiler on PATH", not any(found.values()), {k: v for k, v in found.items() if v})

    import pyiocp

    args = sys.argv[1:]
    home = Path(args[args.index("--installed-in") + 1] if "--installed-in" in args else sys.prefix)
    where = Path(pyiocp.__file__).resolve()
    check("imported from the install", where.is_relative_to(home.resolve()), where)
    check("version", pyiocp.__version__ == md.version("pyiocp"), pyiocp.__version__)

    class Echo(pyiocp.Handler):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            conn.send(data)

    with pyiocp.SocketManager(Echo()) as mgr:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()
        with socket.create_connection(lst.address, timeout=10) as s:
            s.sendall(b"installed")
            got = b""
            while len(got) < 9:
                chunk = s.recv(9 - len(got))
                if not chunk:
                    break
                got += chunk
        backend = mgr.stats()["backend"]
    check("echo round trip", got == b"installed", f"on {backend}")

    plugins = [e.value for e in md.entry_points(group="pytest11") if e.name == "pyiocp"]
    check("pytest11 entry point", plugins == ["pyiocp.testing.plugin"], plugins)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_installed.py").write_text(PLUGIN_TEST)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp],
                           cwd=tmp, capture_output=True, text=True, timeout=300)
        check("pytest with the plugin's fixtures", r.returncode == 0 and "1 passed" in r.stdout,
              "" if r.returncode == 0 else r.stdout[-2000:] + r.stderr[-2000:])


if __name__ == "__main__":
    main()
