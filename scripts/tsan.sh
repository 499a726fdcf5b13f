#!/usr/bin/env bash
# The free-threading stress tests under ThreadSanitizer (make tsan):
#
#   scripts/tsan.sh [PYTEST ARGS...]   (default: tests_py/test_freethreading.py)
#
# The whole suite (scripts/tsan.sh tests_py) takes about 40 minutes here;
# tests that count on throughput within a few seconds (4,000 posts in 10 s,
# a 1-byte receive buffer) time out under TSan's slowdown, and one checks
# which extension the debug run imports: those fail without a report.
#
# TSan sees only what is instrumented, so both sides are: the interpreter
# is the free-threaded 3.13 built with --with-thread-sanitizer
# (scripts/python_ft.sh --tsan; its atomics and PyMutex are then visible as
# synchronisation), and the extension's C is compiled with
# -fsanitize=thread. The Go side is not instrumented (Go's own race
# detector is a second TSan runtime, which cannot share a process with
# this one); `make test` runs the Go tests under -race instead.
#
# The extension is built into .venv-tsan/pyiocp-tsan, not into the source
# tree (its file name is the same as .venv-ft's), and the package is copied
# beside it; python -P keeps the tree's own pyiocp off sys.path.
# The run fails on any report not suppressed: CPython's own list for its
# free-threaded build (Tools/tsan in the same source), then tsan.supp,
# pyiocp's, each entry with why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
venv="$root/.venv-tsan"
py="$(bash scripts/python_ft.sh --tsan | tail -1)"
. scripts/venv_lib.sh
venv_init "$py" "$venv"
pkg="$venv/pyiocp-tsan"
echo "$pkg" >"$site/pyiocp-tsan.pth"

# The package: the sources as they are, and the extension built for this
# interpreter with the C glue instrumented.
rm -rf "$pkg/pyiocp" && mkdir -p "$pkg"
cp -r pyiocp "$pkg/pyiocp"
rm -f "$pkg"/pyiocp/_pyiocp.*.so
find "$pkg" -name __pycache__ -prune -exec rm -rf {} +
so="$pkg/pyiocp/$("$vpy" -c 'import sysconfig; print("_pyiocp" + sysconfig.get_config_var("EXT_SUFFIX"))')"
env_of() { env -u CGO_CFLAGS -u CGO_LDFLAGS -u GOFLAGS "$vpy" setup.py --print-cgo-env "$1"; }
echo "tsan: building the extension with -fsanitize=thread into $so" >&2
CGO_ENABLED=1 GOFLAGS="$(env_of GOFLAGS)" \
	CGO_CFLAGS="$(env_of CGO_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=thread" \
	CGO_LDFLAGS="$(env_of CGO_LDFLAGS) -fsanitize=thread" \
	"${GO:-/usr/local/go/bin/go}" build -buildmode=c-shared -trimpath -o "$so" ./gomod/pybind
rm -f "${so%.so}.h"
# Instrumented, or the run would prove nothing.
nm -D "$so" | grep "U __tsan_func_entry" >/dev/null || { echo "tsan: $so is not instrumented" >&2; exit 1; }
venv_finish "$venv" -P # -P: not the tree's own pyiocp

[ $# -gt 0 ] || set -- tests_py/test_freethreading.py
# Reports go to files (pytest captures a passing test's stderr), one per
# process, printed at the end.
reports="$venv/reports"
rm -rf "$reports" && mkdir -p "$reports"
# The interpreter's own known reports (CPython's list for its free-threaded
# build, which python_ft.sh keeps beside it), then pyiocp's.
cat "$(dirname "$py")/../tsan-suppressions.txt" scripts/tsan.supp >"$venv/tsan.supp"
export TSAN_OPTIONS="suppressions=$venv/tsan.supp halt_on_error=0 second_deadlock_stack=1 log_path=$reports/tsan ${TSAN_OPTIONS:-}"
"$vpy" -P -c 'import sys, pyiocp; assert not sys._is_gil_enabled(); print("tsan: pyiocp from", pyiocp.__file__, file=sys.stderr)'
rc=0
"$vpy" -P -m pytest -p no:cacheprovider -W "ignore::DeprecationWarning:_pytest.assertion.rewrite" \
	--timeout=600 --timeout-method=thread "$@" || rc=$?
if compgen -G "$reports/tsan.*" >/dev/null; then
	cat "$reports"/tsan.*
	echo "tsan: $(cat "$reports"/tsan.* | grep -c '^WARNING: ThreadSanitizer') report(s), above" >&2
	[ $rc -ne 0 ] || rc=66
else
	echo "tsan: no reports" >&2
fi
exit $rc
