"""Build pyiocp: the Python package and its one extension module.

The extension ``pyiocp._pyiocp`` is the Go package ./gomod/pybind (hand-written
CPython C glue plus //export'ed Go functions) built by
``go build -buildmode=c-shared`` (DESIGN.md section 2, "One extension module"):

    python setup.py build_ext --inplace      # pyiocp/_pyiocp*.so in the source tree
    pip install --no-build-isolation .       # build a wheel and install it

The shared object does not link libpython: the CPython C API symbols (Py*,
_Py*) stay undefined and the interpreter that imports the module provides them
(see cgo_env).

``python setup.py --print-cgo-env NAME`` prints the value this build gives the
environment variable NAME (CGO_ENABLED, CGO_CFLAGS, CGO_LDFLAGS, GOFLAGS); the
Makefile exports them so that ``go vet`` and ``go test`` compile gomod/pybind
exactly as the extension build does.
"""

import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GO_PACKAGE = "./gomod/pybind"
# Everything under these that can change what `go build` produces.
GO_SOURCE_DIR = "gomod"
GO_SOURCE_SUFFIXES = {".go", ".c", ".h", ".s", ".S", ".syso"}
GO_MODULE_FILES = ("go.mod", "go.sum")


def _join(args):
    # cmd/go splits CGO_* on spaces and honours '...' or "..." quoting
    # (no escapes): quote what holds a space (Windows install paths do).
    out = []
    for arg in args:
        if " " in arg:
            arg = f"'{arg}'" if '"' in arg else f'"{arg}"'
        out.append(arg)
    return " ".join(out)


def _add(base, extra):
    """base (a flags string from the environment, or the default) + the
    flags of extra it lacks."""
    args = base.split()
    args += [a for a in extra if a not in args]
    return _join(args)


def cgo_env(environ=os.environ):
    """The environment variables `go build` needs to build gomod/pybind as a
    CPython extension for the running interpreter.

    CGO_CFLAGS: the interpreter's include directories, so module.c finds
    Python.h; implicit function declarations are errors, because an
    undeclared (e.g. misspelled) C API call would otherwise compile, link
    (undefined symbols are allowed, see below) and fail only at import.

    CGO_LDFLAGS: no -lpython. On ELF platforms the final c-shared link
    (gcc -shared) leaves the Py* symbols undefined anyway, to be bound by the
    dynamic loader against the interpreter that dlopen()s the module.
    -Wl,--unresolved-symbols=ignore-all is for the other links of this
    package, which make executables: cgo's trial link of _cgo_.o, done to
    read the package's dynamic imports (cmd/go tolerates its failure, see
    golang/go#52863, but then marks the package as needing external linking),
    and the test binary of `go test ./gomod/pybind`, which fails to link
    without it. In that test binary the Py* symbols resolve to address 0, so
    Go tests must not call C glue that uses the Python C API. macOS spells it
    -undefined dynamic_lookup. A Windows DLL cannot leave symbols unresolved:
    MinGW links against python3XY.dll itself (ld reads a DLL directly), and
    pyconfig.h needs MS_WIN64 under gcc.
    """
    paths = sysconfig.get_paths()
    includes = dict.fromkeys(paths[k] for k in ("include", "platinclude"))
    cflags = ["-Werror=implicit-function-declaration"]
    cflags += ["-I" + d for d in includes]
    if sys.platform == "win32":
        if sys.maxsize > 2**32:
            cflags.append("-DMS_WIN64")
        ldflags = [
            "-L" + sys.base_prefix,
            "-lpython%d%d" % sys.version_info[:2],
        ]
    elif sys.platform == "darwin":
        ldflags = ["-Wl,-undefined,dynamic_lookup"]
    else:
        ldflags = ["-Wl,--unresolved-symbols=ignore-all"]
    goflags = environ.get("GOFLAGS", "")
    if "-buildvcs" not in goflags:
        # No VCS stamping: builds from an sdist, a copy or a checkout owned by
        # another user would fail on `git status` otherwise.
        goflags = (goflags + " -buildvcs=false").strip()
    if "-tags" not in goflags:
        # These flags are the ones: gomod/pybind/pyflags.go, which asks
        # pkg-config for some Python's headers when they are absent (a plain
        # `go vet ./...`), stays out.
        goflags = (goflags + " -tags=pyiocp_setup").strip()
    return {
        "CGO_ENABLED": "1",
        "CGO_CFLAGS": _add(environ.get("CGO_CFLAGS", "-O2 -g"), cflags),
        "CGO_LDFLAGS": _add(environ.get("CGO_LDFLAGS", "-O2 -g"), ldflags),
        "GOFLAGS": goflags,
    }


if sys.argv[1:2] == ["--print-cgo-env"]:
    # Answered before setuptools is imported: the Makefile asks at every run.
    env = cgo_env()
    if len(sys.argv) != 3 or sys.argv[2] not in env:
        sys.exit("usage: setup.py --print-cgo-env " + "|".join(env))
    print(env[sys.argv[2]])
    sys.exit(0)

if "bdist_wheel" in sys.argv[1:]:
    # pip builds a wheel even to install from source; without the wheel
    # package setuptools would only say "invalid command 'bdist_wheel'".
    try:
        import wheel  # noqa: F401
    except ImportError:
        raise SystemExit("pyiocp: building needs the 'wheel' package: on Debian `apt-get install "
                         "python3-wheel` (then pip install --no-build-isolation), or `pip install wheel`.")

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402
from setuptools.errors import ExecError, PlatformError  # noqa: E402


def find_go():
    """The go command: $GO, else `go` on PATH, else $GOROOT/bin or
    /usr/local/go/bin (where the official tarball installs it)."""
    exe = "go.exe" if os.name == "nt" else "go"
    candidates = [os.environ.get("GO"), shutil.which("go")]
    if os.environ.get("GOROOT"):
        candidates.append(os.path.join(os.environ["GOROOT"], "bin", exe))
    candidates.append(os.path.join("/usr/local/go/bin", exe))
    for go in candidates:
        if go and os.path.isfile(go) and os.access(go, os.X_OK):
            return go
    raise PlatformError(
        "pyiocp: the Go toolchain is needed to build the extension "
        "pyiocp._pyiocp, but `go` is neither on PATH nor at "
        "/usr/local/go/bin/go. Install Go 1.26 or newer (and a C compiler "
        "for cgo), or set GO=/path/to/go."
    )


# The oldest Go the engine builds with (go.mod's go line).
MIN_GO = (1, 26)


def check_go_version(go):
    """A clear error, not a compiler's, when go is not Go or too old."""
    try:
        r = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=120)
        out = r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        r, out = None, str(exc)
    m = re.match(r"go(\d+)\.(\d+)", out)
    if r is None or r.returncode != 0 or not m:
        raise PlatformError(f"pyiocp: `{go} env GOVERSION` did not give a Go version ({out or r.stderr.strip()}); "
                            "set GO=/path/to/go")
    if (int(m[1]), int(m[2])) < MIN_GO:
        raise PlatformError(f"pyiocp: building the extension needs Go {MIN_GO[0]}.{MIN_GO[1]} or newer, "
                            f"and {go} is {out}. Install a newer Go (https://go.dev/dl/), or set GO=/path/to/go.")


def go_source_files():
    """The files the extension is built from, relative to ROOT."""
    files = [Path(f) for f in GO_MODULE_FILES if (ROOT / f).is_file()]
    for dirpath, dirnames, filenames in os.walk(ROOT / GO_SOURCE_DIR):
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1] in GO_SOURCE_SUFFIXES:
                files.append(Path(dirpath, name).relative_to(ROOT))
    return files


def go_sources_mtime():
    """Newest modification time of the Go sources; directories count too,
    so that deleting or renaming a file also triggers a rebuild."""
    times = [(ROOT / f).stat().st_mtime for f in go_source_files()]
    times += [
        os.stat(dirpath).st_mtime
        for dirpath, _, _ in os.walk(ROOT / GO_SOURCE_DIR)
    ]
    return max(times, default=0.0)


class GoExtension(Extension):
    """An extension module built with `go build -buildmode=c-shared` from
    the Go package go_package; setuptools compiles no C for it."""

    def __init__(self, name, go_package):
        super().__init__(name, sources=[])
        self.go_package = go_package


class build_go_ext(build_ext):
    """build_ext that builds GoExtensions with the go command."""

    def get_source_files(self):
        # What sdist ships so that the extension can be built from it.
        files = super().get_source_files()
        if any(isinstance(e, GoExtension) for e in self.extensions):
            files += [f.as_posix() for f in go_source_files()]
        return files

    def build_extension(self, ext):
        if not isinstance(ext, GoExtension):
            return super().build_extension(ext)
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        if (
            not self.force
            and target.exists()
            and target.stat().st_mtime >= go_sources_mtime()
        ):
            self.announce(f"skipping {ext.name!r} Go extension (up-to-date)",
                          logging.INFO)
            return
        go = find_go()
        check_go_version(go)
        env = cgo_env()
        cmd = [go, "build", "-buildmode=c-shared", "-trimpath",
               "-o", str(target), ext.go_package]
        self.announce(
            " ".join(f"{k}={v!r}" for k, v in env.items() if k != "CGO_ENABLED")
            + " " + " ".join(cmd), logging.INFO)
        if self.dry_run:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env})
        if result.returncode != 0:
            raise ExecError(
                f"go build of {ext.go_package} failed "
                f"(exit status {result.returncode})")
        # c-shared also writes the C header of the //export'ed functions
        # next to the library; nothing installs or includes it.
        target.with_suffix(".h").unlink(missing_ok=True)

    def copy_extensions_to_source(self):
        # --inplace: replace the module rather than write into it, since a
        # running interpreter may have the old one mapped (writing into a
        # mapped shared object crashes that process).
        for ext in self.extensions:
            inplace_file = self.get_ext_fullpath(ext.name)
            if os.path.exists(inplace_file) and not self.dry_run:
                os.unlink(inplace_file)
        super().copy_extensions_to_source()


def package_version():
    """pyiocp.__version__, read from its source (importing the package
    would need the extension this builds): the version's one place."""
    text = (ROOT / "pyiocp" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not found:
        raise SystemExit("setup.py: pyiocp/__init__.py has no __version__ = \"...\" line")
    return found.group(1)


setup(
    version=package_version(),
    packages=["pyiocp", "pyiocp._cli", "pyiocp._serve", "pyiocp.aio", "pyiocp.testing"],
    package_data={"pyiocp": ["_pyiocp.pyi", "py.typed"]},
    ext_modules=[GoExtension("pyiocp._pyiocp", GO_PACKAGE)],
    cmdclass={"build_ext": build_go_ext},
    zip_safe=False,
)
