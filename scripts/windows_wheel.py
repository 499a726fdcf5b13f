"""Packs the Windows build of pyiocp (make windows-extension's WIN_PKG: the
package with its cross-compiled .pyd, and the .dist-info setup.py wrote for
it) into a wheel:

    python3 scripts/windows_wheel.py PKG_DIR OUT_DIR

Its tag is the extension's: _pyiocp.cp311-win_amd64.pyd gives
cp311-cp311-win_amd64.

setup.py cannot build this wheel itself: its build_ext compiles for the
interpreter that runs it, and the one that could (the Windows CPython under
Wine) has no Go, no MinGW and no `wheel` package. What a wheel adds to the
installed layout is its WHEEL file and a RECORD of hashes: written here, then
`python3 -m wheel pack` (Debian's python3-wheel) checks the layout and zips it.
Prints the wheel's path.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(pkg: Path, out: Path) -> None:
    infos = list(pkg.glob("pyiocp-*.dist-info"))
    pyds = [re.fullmatch(r"_pyiocp\.(cp3\d+)-(win_amd64)\.pyd", p.name) for p in pkg.glob("pyiocp/_pyiocp*.pyd")]
    if len(infos) != 1 or len(pyds) != 1 or not pyds[0]:
        sys.exit(f"windows_wheel: {pkg} must hold pyiocp/ with one _pyiocp.cp3XY-win_amd64.pyd and one "
                 "pyiocp-*.dist-info (make windows-extension)")
    python, platform = pyds[0].groups()
    tag = f"{python}-{python}-{platform}"
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp, infos[0].name.removesuffix(".dist-info"))
        shutil.copytree(pkg, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.h"))
        info = tree / infos[0].name
        (info / "RECORD").unlink(missing_ok=True)
        (info / "WHEEL").write_text(
            "Wheel-Version: 1.0\n"
            "Generator: pyiocp scripts/windows_wheel.py\n"
            "Root-Is-Purelib: false\n"
            f"Tag: {tag}\n")
        out.mkdir(parents=True, exist_ok=True)
        before = set(out.glob("*.whl"))
        subprocess.run([sys.executable, "-m", "wheel", "pack", "--dest-dir", str(out), str(tree)],
                       check=True, stdout=subprocess.DEVNULL)
        made = set(out.glob("*.whl")) - before or {p for p in out.glob(f"*-{tag}.whl")}
        print(*sorted(made), sep="\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
