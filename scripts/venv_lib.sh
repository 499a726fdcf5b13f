# Sourced by scripts/venv_ft.sh and scripts/tsan.sh: a venv on one of
# scripts/python_ft.sh's interpreters, without pip (Debian 12's pip fails on
# Python 3.12+), set up as pip's install would leave it.

# venv_init PYTHON VENV: makes VENV once, with Debian's
# /usr/lib/python3/dist-packages on its path (pytest and the rest: pure
# Python, appended after the venv's own site-packages). Sets vpy (its
# python, an absolute path) and site (its site-packages).
venv_init() {
	[ -x "$2/bin/python" ] || "$1" -m venv --without-pip "$2"
	vpy="$(cd "$2" && pwd)/bin/python"
	site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	echo /usr/lib/python3/dist-packages >"$site/debian-dist-packages.pth"
}

# venv_finish VENV [FLAGS]: pyiocp's metadata in the venv (setup.py
# dist_info: the version, the pytest11 plugin's entry point) and the
# `pyiocp` command, its interpreter run with FLAGS. After venv_init.
venv_finish() {
	rm -rf "$site"/pyiocp-*.dist-info
	"$vpy" setup.py -q dist_info --output-dir "$site"
	cat >"$1/bin/pyiocp" <<SCRIPT
#!$vpy${2:+ $2}
import sys
from pyiocp.__main__ import main
if __name__ == "__main__":
    sys.exit(main())
SCRIPT
	chmod +x "$1/bin/pyiocp"
}
