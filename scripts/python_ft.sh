#!/usr/bin/env bash
# CPython 3.13, built once from Debian trixie's python3.13 source package
# into a cache outside the tree, reused afterwards; prints the
# interpreter's path as its last line:
#
#   scripts/python_ft.sh          the free-threaded build (--disable-gil): .../bin/python3.13t
#   scripts/python_ft.sh --gil    the standard build of the same source:   .../bin/python3.13
#   scripts/python_ft.sh --tsan   free-threaded, under ThreadSanitizer:     .../bin/python3.13t
#
# Debian 12 has no Python 3.13. The source comes with apt, from an apt
# state of its own (a trixie deb-src line; the system's sources are not
# touched): apt checks the archive's signature and each file's hash, and
# the upstream tarball is built as it is (Debian's patches are for
# Debian's own layout). The cache is ${PYIOCP_CACHE:-~/.cache/pyiocp};
# the build's log is kept beside it. About 8 minutes on two cores.
set -euo pipefail
kind=ft
case "${1:-}" in
	"") ;;
	--gil) kind=gil ;;
	--tsan) kind=tsan ;;
	*) echo "usage: $0 [--gil|--tsan]" >&2; exit 2 ;;
esac
cache="${PYIOCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyiocp}"
prefix="$cache/python3.13-$kind"
exe="$prefix/bin/python3.13"
configure=(--prefix="$prefix" --without-ensurepip)
if [ "$kind" != gil ]; then
	exe="$prefix/bin/python3.13t"
	configure+=(--disable-gil)
fi
if [ "$kind" = tsan ]; then
	# TSan sees a race only between instrumented accesses, and a lock only
	# if its atomics are instrumented: the interpreter must be built with it.
	configure+=(--with-thread-sanitizer)
fi
src="$cache/src"

# The tsan build keeps CPython's own list of the reports known in its
# free-threaded build (Tools/tsan, from the same source) beside it, for
# scripts/tsan.sh: $prefix/tsan-suppressions.txt.
tsan_suppressions() {
	if [ "$kind" = tsan ] && [ ! -f "$prefix/tsan-suppressions.txt" ]; then
		tar -xJOf "$(ls "$src"/python3.13_*.orig.tar.xz | head -1)" --wildcards \
			'*/Tools/tsan/suppressions_free_threading.txt' >"$prefix/tsan-suppressions.txt.part"
		mv "$prefix/tsan-suppressions.txt.part" "$prefix/tsan-suppressions.txt"
	fi
}

if [ -x "$exe" ] && [ -f "$prefix/.pyiocp-built" ]; then
	tsan_suppressions
	echo "$exe"
	exit 0
fi

# What the build needs (the modules pyiocp and pytest use: ssl, zlib,
# ctypes, bz2, lzma, sqlite3 for hypothesis's database).
packages=(gcc make dpkg-dev xz-utils libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev)
missing=()
for p in "${packages[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "python-ft: installing ${missing[*]}" >&2
	sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

if ! ls "$src"/python3.13_*.orig.tar.xz >/dev/null 2>&1; then
	echo "python-ft: fetching python3.13's source from Debian trixie into $src" >&2
	rm -rf "$src" && mkdir -p "$src/apt/lists/partial" "$src/apt/cache/archives/partial"
	echo "deb-src http://deb.debian.org/debian trixie main" >"$src/apt/sources.list"
	apt=(-q -o Dir::Etc::SourceList="$src/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$src/apt/lists" -o Dir::Cache="$src/apt/cache"
		-o APT::Sandbox::User="$(id -un)" -o Debug::NoLocking=1)
	apt-get "${apt[@]}" update >&2
	(cd "$src" && apt-get "${apt[@]}" source --download-only python3.13 >&2)
	rm -rf "$src/apt"
fi

work="$cache/build-$kind"
log="$cache/build-$kind.log"
rm -rf "$work" "$prefix" && mkdir -p "$work"
tar -xJf "$(ls "$src"/python3.13_*.orig.tar.xz | head -1)" -C "$work" --strip-components=1
echo "python-ft: building CPython 3.13 ($kind) into $prefix; log: $log" >&2
if ! (cd "$work" && ./configure "${configure[@]}" && make -j"$(nproc)" && make install) >"$log" 2>&1; then
	tail -30 "$log" >&2
	echo "python-ft: the build failed; the whole log is $log" >&2
	exit 1
fi
rm -rf "$work"
"$exe" -c 'import ssl, zlib, ctypes, sys; print(sys.version)' >&2
tsan_suppressions
touch "$prefix/.pyiocp-built"
echo "$exe"
