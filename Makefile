# pyiocp: build, test and demo on Debian 12 (the CI and developer machines).
#
#   make deps    install the Debian packages the build and tests need (only the missing ones)
#   make build   go vet + build pyiocp/_pyiocp*.so in place, into the project's .venv
#   make test    deps + windows-deps + build + typecheck, the Go tests (-race; the allocation
#                tests once more without it), each fuzz target
#                for FUZZTIME (make fuzz); then side by side (make -j2): the Python tests and
#                those once more under PYTHONMALLOC=debug, -X dev and a cgocheck2 build
#                (make test-python), and the Windows tests under Wine (make test-windows)
#   make typecheck  mypy --strict over pyiocp/, examples/, docs/ and tests_py/ ([tool.mypy] in pyproject.toml),
#                then pyiocp/, examples/ and docs/ again as for Windows (--platform win32)
#   make soak    the long forms of the fault suite (minutes), the fuzz targets for SOAK_FUZZTIME,
#                the debug-Python run; docs/reliability.md written from that run
#   make run     echo server + `python -m pyiocp bench` against it, on a free port
#   make bench   the benchmark suite (bench/suite, about an hour): bench/RESULTS.md, its plot and
#                a JSON record in bench/results/; make bench-quick: about 2 minutes, into bench/results/quick/
#   make test-windows  under Wine, on the iocp backend: the Go tests built for Windows
#                (make test-windows-go), then the Python tests on a Windows CPython against the
#                extension cross-built for it (make test-windows-python, make windows-extension)
#   make windows-deps  Wine, MinGW-w64 and a Windows CPython (.ci/wine/setup, .ci/wine/python-setup)
#   make wheel   dist/: the Linux wheel (manylinux_2_34, checked by auditwheel), the win_amd64
#                wheel (cross-built with MinGW-w64) and the sdist; no Go or C compiler is needed
#                to install a wheel (tests_py/test_wheel.py, make test-windows-wheel,
#                scripts/wheel_fresh_check.sh on a fresh root without them)
#   make python-ft  CPython 3.13 built free-threaded (--disable-gil) from Debian trixie's source, once,
#                into ~/.cache/pyiocp (make python-313: the standard build); prints the interpreter's path
#   make venv-ft  .venv-ft: that free-threaded interpreter with pyiocp installed (editable) and pytest
#   make test-ft  the Python tests on .venv-ft, the GIL off
#   make test-313  the same on .venv-313, the standard (GIL) build of that 3.13 (make venv-313)
#   make tsan    the free-threading stress tests under ThreadSanitizer: a TSan build of that 3.13t
#                (once, into the cache) and the extension's C built with -fsanitize=thread
#                (scripts/tsan.sh; TSAN_TESTS picks other tests); not part of make test
#   make clean   remove build outputs (make distclean: also .venv)
#
# Go and Python build against Debian's /usr/bin/python3, never a pyenv one.

SHELL := /bin/bash
.DEFAULT_GOAL := build

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
PYTEST_TIMEOUT ?= 60
PYTEST_ARGS ?=

APT_PACKAGES := gcc pkg-config python3-dev python3-venv python3-pip python3-setuptools \
	python3-wheel python3-pytest python3-pytest-timeout python3-uvloop python3-prometheus-client \
	python3-hypothesis mypy curl wrk openssl python3-pyelftools haproxy iproute2

# The cgo environment of the extension build, from setup.py (one source of
# truth), so that `go vet` and `go test` compile gomod/pybind the same way:
# Python's include directory in CGO_CFLAGS, unresolved Py* symbols allowed in
# CGO_LDFLAGS (no libpython link), GOFLAGS=-buildvcs=false -tags=pyiocp_setup
# (the tag keeps out the pkg-config fallback a plain `go vet ./...` uses).
cgo_env = $(shell $(SYSTEM_PYTHON) setup.py --print-cgo-env $(1))
export CGO_ENABLED := 1
export CGO_CFLAGS := $(call cgo_env,CGO_CFLAGS)
export CGO_LDFLAGS := $(call cgo_env,CGO_LDFLAGS)
export GOFLAGS := $(call cgo_env,GOFLAGS)

# Installed into .venv once (again when the packaging changes): editable, so
# the source tree is what runs, with the `pyiocp` script and the pytest11
# plugin registered as a user's install registers them.
VENV_STAMP := $(VENV)/.pyiocp-editable

.PHONY: deps build test test-python test-windows test-windows-go windows-deps windows-extension \
	test-windows-python test-windows-wheel wheel wheel-linux wheel-windows sdist python-ft python-313 venv-ft test-ft test-ft-run venv-313 test-313 test-313-run test-matrix-run tsan typecheck fuzz debug-python soak run bench bench-quick bench-deps bench-ft clean distclean $(VENV)

# Installs the Debian packages among $(1) that are missing.
define apt_install
@missing=; \
for p in $(1); do \
  [ "$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
done; \
if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
echo "deps: installing$$missing"; \
sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing
endef

deps:
	@command -v $(GO) >/dev/null || { echo "deps: no Go toolchain (go on PATH or /usr/local/go/bin/go); install Go >= 1.26" >&2; exit 1; }
	$(call apt_install,$(APT_PACKAGES))

$(VENV): $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml setup.py pyiocp/__init__.py | deps
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --no-build-isolation --no-deps --no-index -e .
	touch $@

# go vet runs twice: with the extension's cgo flags, and plain, as a Go
# developer's first command runs it (see gomod/pybind/pyflags.go).
build: $(VENV_STAMP)
	$(GO) vet ./...
	env -u CGO_CFLAGS -u CGO_LDFLAGS -u GOFLAGS $(GO) vet ./...
	@unformatted=$$($(dir $(GO))gofmt -l gomod tests_go bench); \
	  [ -z "$$unformatted" ] || { echo "gofmt -w these files: $$unformatted" >&2; exit 1; }
	$(PY) setup.py build_ext --inplace

# The package, the examples and the docs' code once more as on Windows:
# nothing of theirs may need what only POSIX has (os.sysconf, fcntl, ...).
typecheck: $(VENV_STAMP)
	$(PY) -m mypy
	$(PY) -m mypy --platform win32 --cache-dir build/mypy_cache_win32 pyiocp examples docs

# The allocation tests run once more without -race: under it sync.Pool
# drops a quarter of what is put back, on purpose, so "no allocation per
# message" can only be checked loosely there.
# The Python runs and the Windows runs go side by side: the Wine runs
# mostly wait (each I/O is a round trip to the wineserver), and one after
# the other they would not fit CI's ten minutes. Each one's output is shown
# whole when it ends (--output-sync). TEST_SUITES is what runs side by
# side: CI adds test-matrix-run, the suite on CPython 3.13t and 3.13, once
# make venv-ft venv-313 built them (.ci/run). Measured: the runs used 0.84
# of the two cores on average, and with the free-threaded run beside them
# make test took the same 12 minutes.
TEST_SUITES ?= test-python test-windows

test: deps windows-deps build typecheck
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'NoAllocation|TestTimerMemory' ./gomod/...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory -j$(words $(TEST_SUITES)) --output-sync=recurse $(TEST_SUITES)

test-python: $(VENV_STAMP)
	$(PY) -m pytest tests_py -p no:cacheprovider \
		--timeout=$(PYTEST_TIMEOUT) --timeout-method=thread $(PYTEST_ARGS)
	$(MAKE) --no-print-directory debug-python

# Every parser of the engine has a go test -fuzz target with a committed seed
# corpus (testdata/fuzz/); -fuzz takes one target at a time. With
# FUZZ_LOG_DIR set each one's output is kept there, for the report.
# Go 1.26's fuzz coordinator can end a clean run with "context deadline
# exceeded" as -fuzztime expires (go.dev/issue/75804, fixed in Go 1.27): that
# alone, with no failing input written, is not a failure.
FUZZ_TARGETS := gomod/engine:FuzzParseAddr gomod/engine:FuzzLines gomod/engine:FuzzLengthPrefixed gomod/internal/poller:FuzzFromRaw \
	gomod/internal/tlsio:FuzzServerHandshakeInput gomod/engine:FuzzProxyHeader
FUZZTIME ?= 10s
FUZZ_LOG_DIR ?=

fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=./$${t%%:*} name=$${t##*:}; \
	  echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
	  log=$$(mktemp); \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg >$$log 2>&1; rc=$$?; \
	  cat $$log; [ -z "$(FUZZ_LOG_DIR)" ] || cp $$log $(FUZZ_LOG_DIR)/fuzz-$$name.log; \
	  if [ $$rc -ne 0 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	    echo "fuzz: $$name: the deadline race of go.dev/issue/75804, no failing input: passed"; rc=0; \
	  fi; \
	  rm -f $$log; [ $$rc -eq 0 ] || exit 1; \
	done

# The Python tests once more, under PYTHONMALLOC=debug and python -X dev,
# against the extension built with GOEXPERIMENT=cgocheck2 (the strictest cgo
# pointer checks) into a copy of the package in DEBUG_PY_DIR, which
# PYTHONPATH puts first (PYTHONSAFEPATH: not the in-tree one from the
# current directory); test_faults_harness.py checks that it is the one used.
# The benchmark suite's run is left out: its servers are subprocesses that
# load the in-tree extension, so it would only repeat the first pass.
DEBUG_PY_DIR := build/cgocheck2
DEBUG_PY_SKIP := --deselect tests_py/test_bench_suite.py::test_every_kind_of_scenario_runs_against_pyiocp_and_uvloop
EXT_SUFFIX := $(shell $(SYSTEM_PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

debug-python: $(VENV_STAMP)
	rm -rf $(DEBUG_PY_DIR) && mkdir -p $(DEBUG_PY_DIR)
	cp -r pyiocp $(DEBUG_PY_DIR)/
	rm -f $(DEBUG_PY_DIR)/pyiocp/_pyiocp*.so $(DEBUG_PY_DIR)/pyiocp/_pyiocp*.h
	GOEXPERIMENT=cgocheck2 $(GO) build -buildmode=c-shared -trimpath \
		-o $(DEBUG_PY_DIR)/pyiocp/_pyiocp$(EXT_SUFFIX) ./gomod/pybind
	rm -f $(DEBUG_PY_DIR)/pyiocp/_pyiocp*.h
	PYIOCP_DEBUG_RUN=1 PYTHONMALLOC=debug PYTHONSAFEPATH=1 PYTHONPATH=$(CURDIR)/$(DEBUG_PY_DIR) \
		$(PY) -X dev -m pytest tests_py -p no:cacheprovider $(DEBUG_PY_SKIP) \
		--timeout=$(PYTEST_TIMEOUT) --timeout-method=thread $(PYTEST_ARGS)

# The long forms of the fault suite (PYIOCP_SOAK=1): Go (without the race
# detector, which make test runs the short forms under: at the long sizes
# it takes hours on two cores, and it hides RSS), Python; the fuzz targets for
# SOAK_FUZZTIME each; the debug-Python run. Every step runs even when one
# fails; then scripts/reliability_report.py writes docs/reliability.md from
# the run's records and fails if a scenario failed or did not run.
REPORT_DIR := build/reliability
SOAK_FUZZTIME ?= 60s
SOAK_ENV = PYIOCP_SOAK=1 PYIOCP_REPORT_DIR=$(CURDIR)/$(REPORT_DIR)

soak: build
	rm -rf $(REPORT_DIR) && mkdir -p $(REPORT_DIR)
	-$(SOAK_ENV) $(GO) test -count=1 -timeout=60m -run='^TestFault' ./tests_go
	-$(SOAK_ENV) $(PY) -m pytest tests_py/test_faults_*.py -p no:cacheprovider \
		--timeout=1800 --timeout-method=thread
	-$(MAKE) --no-print-directory fuzz FUZZTIME=$(SOAK_FUZZTIME) FUZZ_LOG_DIR=$(CURDIR)/$(REPORT_DIR)
	-set -o pipefail; $(MAKE) --no-print-directory debug-python 2>&1 | tee $(REPORT_DIR)/debugpy.log
	$(SYSTEM_PYTHON) scripts/reliability_report.py $(REPORT_DIR) docs/reliability.md

# The Go tests for Windows under Wine, in the prefix build/wine: the
# poller's contract tests against iocp first, then the engine's, then the
# black-box matrix; one package at a time (Wine is slow, and the fault
# tests time what they see). No cgo: nothing tested here uses it.
WINDOWS_GO_PACKAGES := ./gomod/internal/poller ./gomod/engine ./tests_go

windows-deps:
	.ci/wine/setup
	.ci/wine/python-setup

test-windows:
	$(MAKE) --no-print-directory test-windows-go
	$(MAKE) --no-print-directory test-windows-python
	$(MAKE) --no-print-directory test-windows-wheel

test-windows-go: windows-deps
	GOOS=windows CGO_ENABLED=0 $(GO) vet ./gomod/internal/... ./gomod/engine ./tests_go
	GOOS=windows CGO_ENABLED=0 $(GO) test -count=1 -p 1 -exec $(CURDIR)/.ci/wine/exec $(WINDOWS_GO_PACKAGES)

# pyiocp's extension for Windows, cross-compiled with MinGW-w64 into a copy
# of the package in WIN_PKG, with the metadata an install writes beside it
# (its entry points: the pytest plugin). setup.py, run by the Windows CPython
# under Wine, gives the cgo flags of its Windows branch (that interpreter's
# headers and python3XY.dll): .ci/wine/cgo-env asks it, checks each answer
# and makes its Z:\ paths Linux ones.
WIN_PKG := build/windows/pkg

windows-extension: $(VENV_STAMP) windows-deps
	rm -rf $(WIN_PKG) && mkdir -p $(WIN_PKG)
	cp -r pyiocp $(WIN_PKG)/
	find $(WIN_PKG) -name __pycache__ -prune -exec rm -rf {} +
	rm -f $(WIN_PKG)/pyiocp/_pyiocp*.so $(WIN_PKG)/pyiocp/_pyiocp*.h
	$(PY) setup.py -q dist_info --output-dir $(WIN_PKG)
	@set -e; q=.ci/wine/cgo-env; \
	  ext=$$($$q EXT_SUFFIX); cflags=$$($$q CGO_CFLAGS); ldflags=$$($$q CGO_LDFLAGS); goflags=$$($$q GOFLAGS); \
	  echo "CGO_CFLAGS='$$cflags' CGO_LDFLAGS='$$ldflags' GOFLAGS='$$goflags'"; \
	  GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc \
	  CGO_CFLAGS="$$cflags" CGO_LDFLAGS="$$ldflags" GOFLAGS="$$goflags" \
	  $(GO) build -buildmode=c-shared -trimpath -o $(WIN_PKG)/pyiocp/_pyiocp$$ext ./gomod/pybind
	rm -f $(WIN_PKG)/pyiocp/_pyiocp*.h

# The Python tests against that build, on the Windows CPython under Wine,
# on the iocp backend: every test but those marked `linux` (each says why)
# and the two files that need Linux to import (tests_py/conftest.py). The
# reference-count soak is left out too: its million messages take a quarter
# of an hour under Wine. The plugin's leak check waits 8 s, not 2, for a
# server to drop its connections: each close is a round trip to the
# wineserver (a user's own tests under Wine would set the same).
WINDOWS_PY_SKIP := --deselect tests_py/test_faults_callbacks.py::test_fault_reference_counts_stay_flat

# The TLS tests' certificates are made here, with Linux's openssl command
# (tests_py/tls_pki.py), which the Windows side does not have.
test-windows-python: windows-extension
	rm -rf build/windows/pki && $(PY) tests_py/tls_pki.py build/windows/pki
	PYIOCP_TEST_PKI=build/windows/pki .ci/wine/python -m pytest tests_py -p no:cacheprovider -m "not linux" \
		$(WINDOWS_PY_SKIP) -o iocp_settle_timeout=8 --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS)

# The Windows wheel as a user gets it: unpacked (RECORD's hashes checked)
# into a directory of its own and run from there by the Windows CPython,
# with scripts/wheel_smoke.py (an echo round trip, the pytest plugin found
# through the wheel's entry points). Unpacked, not pip-installed: Debian's
# pip has no Windows script launchers to write the `pyiocp` command with.
WIN_WHEEL_CHECK := build/windows/wheel-check

test-windows-wheel: wheel-windows
	rm -rf $(WIN_WHEEL_CHECK) && mkdir -p $(WIN_WHEEL_CHECK)/unpacked $(WIN_WHEEL_CHECK)/work
	$(SYSTEM_PYTHON) -m wheel unpack --dest $(WIN_WHEEL_CHECK)/unpacked $(DIST)/pyiocp-*-win_amd64.whl
	d=$$(echo $(CURDIR)/$(WIN_WHEEL_CHECK)/unpacked/pyiocp-*); cd $(WIN_WHEEL_CHECK)/work && \
	  WIN_PYIOCP=$$d $(CURDIR)/.ci/wine/python $(CURDIR)/scripts/wheel_smoke.py --installed-in "Z:$$d"

# Wheels and the sdist, into dist/. The Linux wheel is built from scratch
# in a build directory of its own, tagged WHEEL_PLAT, and auditwheel must
# agree: Debian 12's gcc and glibc give the Go runtime's cgo pthread_*
# symbols version GLIBC_2.34, which is the floor (scripts/auditwheel).
DIST := dist
WHEEL_PLAT := manylinux_2_34_x86_64

wheel: wheel-linux wheel-windows sdist
	@ls -l $(DIST)

wheel-linux: $(VENV_STAMP)
	rm -rf build/wheel $(DIST)/pyiocp-*-linux*.whl $(DIST)/pyiocp-*-manylinux*.whl
	$(PY) setup.py -q build --build-base build/wheel bdist_wheel --plat-name $(WHEEL_PLAT) --dist-dir $(DIST)
	scripts/auditwheel show $(DIST)/pyiocp-*-$(WHEEL_PLAT).whl | tee build/wheel/auditwheel.txt
	tr -s ' \n' ' ' <build/wheel/auditwheel.txt | grep -q 'consistent with the following platform tag: "$(WHEEL_PLAT)"'

wheel-windows: windows-extension
	rm -f $(DIST)/pyiocp-*-win_amd64.whl
	$(SYSTEM_PYTHON) scripts/windows_wheel.py $(WIN_PKG) $(DIST)

sdist: $(VENV_STAMP)
	rm -f $(DIST)/pyiocp-*.tar.gz
	$(PY) setup.py -q sdist --dist-dir $(DIST)

# CPython 3.13 for the free-threading work: scripts/python_ft.sh builds it
# once into the cache (about 8 minutes on two cores) and prints its path.
python-ft:
	@bash scripts/python_ft.sh

python-313:
	@bash scripts/python_ft.sh --gil

# .venv-ft: that interpreter with pyiocp installed editable (scripts/venv_ft.sh
# says how, without pip or a package index); its extension is rebuilt when
# the sources changed. make test-ft: the Python tests on it, the GIL off.
VENV_FT := .venv-ft

venv-ft:
	@bash scripts/venv_ft.sh $(VENV_FT) >/dev/null

# Debian's pytest (7.2) rewrites asserts with ast names 3.12 deprecated: its
# thousands of DeprecationWarnings are left out.
test-ft: venv-ft
	$(MAKE) --no-print-directory test-ft-run

# The same, on the .venv-ft there is (make test runs it beside the others).
test-ft-run:
	$(VENV_FT)/bin/python -m pytest tests_py -p no:cacheprovider \
		-W "ignore::DeprecationWarning:_pytest.assertion.rewrite" \
		--timeout=$(PYTEST_TIMEOUT) --timeout-method=thread $(PYTEST_ARGS)

# .venv-313 and make test-313: the same on the standard (GIL) build of that
# 3.13 (make python-313), the version matrix's third interpreter.
VENV_313 := .venv-313

venv-313:
	@bash scripts/venv_ft.sh $(VENV_313) --gil >/dev/null

test-313: venv-313
	$(MAKE) --no-print-directory test-313-run

test-313-run:
	$(VENV_313)/bin/python -m pytest tests_py -p no:cacheprovider \
		-W "ignore::DeprecationWarning:_pytest.assertion.rewrite" \
		--timeout=$(PYTEST_TIMEOUT) --timeout-method=thread $(PYTEST_ARGS)

# Both 3.13 runs, one after the other: what CI runs beside make test's
# Linux and Windows runs (.ci/run), once make venv-ft venv-313 built them.
test-matrix-run:
	$(MAKE) --no-print-directory test-ft-run
	$(MAKE) --no-print-directory test-313-run

# ThreadSanitizer over the C glue, on a TSan build of 3.13t (scripts/tsan.sh
# says what is instrumented). Slow (the interpreter runs 5-15x slower), so
# it is its own target, run by hand after changes to the C glue.
TSAN_TESTS ?=

tsan:
	bash scripts/tsan.sh $(TSAN_TESTS)

run: build
	PY=$(PY) bash scripts/run_demo.sh

# The benchmark suite also wants matplotlib (the plot) and perf (system
# calls per message); it runs without them, leaving those out.
BENCH_APT_PACKAGES := python3-matplotlib linux-perf
BENCH_ARGS ?=

bench-deps: deps
	$(call apt_install,$(BENCH_APT_PACKAGES))

# The suite's 3.13t rows run on .venv-ft where there is one: its extension
# is brought up to date first (venv_ft.sh rebuilds it only if the sources
# changed), or those rows would measure an older engine.
bench-ft:
	@if [ -x $(VENV_FT)/bin/python ]; then bash scripts/venv_ft.sh $(VENV_FT) >/dev/null; fi

bench: bench-deps build bench-ft
	$(PY) -m bench.suite $(BENCH_ARGS)

bench-quick: bench-deps build
	$(PY) -m bench.suite --quick $(BENCH_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache pyiocp/_pyiocp*.so pyiocp/_pyiocp*.pyd pyiocp/_pyiocp*.h
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(VENV_FT) $(VENV_313)
