#!/usr/bin/env bash
# The wheel on a machine with neither Go nor a C compiler, in a fresh Debian
# 12 root (../shared/tools/fresh-machine), from the project root:
#
#   ../shared/tools/fresh-machine/run.sh . 'bash scripts/wheel_fresh_check.sh'
#
# Inside that throwaway root: make wheel-linux and make sdist (with the Go
# and gcc a new machine has), then Go and gcc are removed from the root, and
# - the wheel is pip-installed into a clean venv and scripts/wheel_smoke.py
#   runs there (echo round trip, the pytest plugin through its entry point);
# - a source install of the sdist stops with pyiocp's one-line reason (no
#   Go), not a traceback.
# It removes Go and gcc: never run it outside such a root (it refuses).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -n "${FRESH_CHECK_FORCE:-}" ] || [ "$(pwd)" = /build/"$(basename "$(pwd)")" ] ||
	{ echo "wheel_fresh_check: run it through fresh-machine/run.sh (it removes Go and gcc)" >&2; exit 2; }

export PATH="$PATH:/usr/local/go/bin"
make --no-print-directory wheel-linux sdist </dev/null
wheel=$(ls dist/pyiocp-*-manylinux*.whl)
sdist=$(ls dist/pyiocp-*.tar.gz)

echo "== removing Go and the C compiler"
rm -rf /usr/local/go /root/go /root/.cache/go-build
dpkg --purge --force-depends build-essential g++ g++-12 gcc gcc-12 cpp cpp-12 >/dev/null
for tool in go gcc cc c++ cpp; do
	! command -v "$tool" >/dev/null || { echo "wheel_fresh_check: $tool is still on PATH" >&2; exit 1; }
done

echo "== the wheel into a clean venv"
work=$(mktemp -d)
/usr/bin/python3 -m venv --system-site-packages "$work/venv"  # Debian's pytest; no pyiocp there
"$work/venv/bin/pip" install -q --no-index --no-deps "$wheel"
(cd "$work" && "$work/venv/bin/python" "$OLDPWD/scripts/wheel_smoke.py" --no-toolchain)
"$work/venv/bin/pyiocp" --help | sed -n 1p

echo "== the sdist without Go"
/usr/bin/python3 -m venv --system-site-packages "$work/venv2"
if "$work/venv2/bin/pip" install --no-build-isolation --no-index --no-deps "$sdist" >"$work/sdist.log" 2>&1; then
	echo "wheel_fresh_check: the sdist installed without Go" >&2; exit 1
fi
grep -m1 "pyiocp: the Go toolchain is needed" "$work/sdist.log" ||
	{ cat "$work/sdist.log"; echo "wheel_fresh_check: no clear reason given" >&2; exit 1; }
echo "wheel_fresh_check: ok"
