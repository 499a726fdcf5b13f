#!/usr/bin/env bash
# .venv-ft: a virtual environment on the free-threaded CPython 3.13 of
# scripts/python_ft.sh (built first if it is not in the cache), with pyiocp
# installed editable, as .venv has it: .venv-ft/bin/python runs the tests,
# the examples and `-m pyiocp`, and .venv-ft/bin/pyiocp is the command.
#
# No package index is needed, and pip is not used: Debian 12's pip (23.0)
# fails on Python 3.12+ (its vendored pkg_resources needs the removed
# pkgutil.ImpImporter). So the install is what pip's editable one writes:
#   - the extension built in place for this interpreter
#     (pyiocp/_pyiocp.cpython-313t-*.so, beside .venv's cpython-311 one);
#   - a .pth putting the source tree on sys.path;
#   - the package's metadata (setup.py dist_info: the version, the pytest11
#     plugin's entry point) and the `pyiocp` script.
# pytest, pytest-timeout, hypothesis and the rest come from Debian's
# /usr/lib/python3/dist-packages, appended to sys.path by another .pth
# (after the venv's own site-packages): they are pure Python and run on
# 3.13 too; the compiled modules there are for 3.11 only, and a
# free-threaded interpreter never tries to load them (their tag is
# cpython-311, or abi3, which a free-threaded build does not take).
# Run again, it only rebuilds the extension if the Go or C sources changed.
#
# With --gil after the directory: the same on the standard (GIL) build of
# that 3.13 (make venv-313), the second interpreter of the version matrix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${1:-.venv-ft}"
gil="${2:-}"
case "$gil" in
	"") want_gil=False ;;
	--gil) want_gil=True ;;
	*) echo "usage: $0 [VENV [--gil]]" >&2; exit 2 ;;
esac
py="$(bash scripts/python_ft.sh $gil | tail -1)"
. scripts/venv_lib.sh
venv_init "$py" "$venv"
echo "$PWD" >"$site/pyiocp-editable.pth"
# Not the cgo flags make exports (those of Debian's python3, whose headers
# would come first): setup.py gives this interpreter's.
env -u CGO_CFLAGS -u CGO_LDFLAGS -u GOFLAGS "$vpy" setup.py -q build_ext --inplace
venv_finish "$venv"
"$vpy" -W error::RuntimeWarning -c "import sys, pyiocp; assert sys._is_gil_enabled() is $want_gil, 'the GIL is not as the build says'"
echo "$vpy"
