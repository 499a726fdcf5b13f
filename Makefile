# pyiocp: build, test and demo on Debian 12 (the CI and developer machines).
#
#   make deps    install the Debian packages the build and tests need (only the missing ones)
#   make build   go vet + build pyiocp/_pyiocp*.so in place, into the project's .venv
#   make test    deps + build, then the Go tests (-race) and the Python tests
#   make run     echo server + `python -m pyiocp bench` against it, on a free port
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

APT_PACKAGES := gcc python3-dev python3-venv python3-pip python3-setuptools \
	python3-wheel python3-pytest python3-pytest-timeout python3-uvloop \
	python3-hypothesis

# The cgo environment of the extension build, from setup.py (one source of
# truth), so that `go vet` and `go test` compile gomod/pybind the same way:
# Python's include directory in CGO_CFLAGS, unresolved Py* symbols allowed in
# CGO_LDFLAGS (no libpython link), GOFLAGS=-buildvcs=false.
cgo_env = $(shell $(SYSTEM_PYTHON) setup.py --print-cgo-env $(1))
export CGO_ENABLED := 1
export CGO_CFLAGS := $(call cgo_env,CGO_CFLAGS)
export CGO_LDFLAGS := $(call cgo_env,CGO_LDFLAGS)
export GOFLAGS := $(call cgo_env,GOFLAGS)

# Installed into .venv once (again when the packaging changes): editable, so
# the source tree is what runs, with the `pyiocp` script and the pytest11
# plugin registered as a user's install registers them.
VENV_STAMP := $(VENV)/.pyiocp-editable

.PHONY: deps build test run clean distclean $(VENV)

deps:
	@command -v $(GO) >/dev/null || { echo "deps: no Go toolchain (go on PATH or /usr/local/go/bin/go); install Go >= 1.26" >&2; exit 1; }
	@missing=; \
	for p in $(APT_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: installing$$missing"; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

$(VENV): $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml setup.py | deps
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --no-build-isolation --no-deps --no-index -e .
	touch $@

build: $(VENV_STAMP)
	$(GO) vet ./...
	$(PY) setup.py build_ext --inplace

test: deps build
	$(GO) test -race -count=1 ./...
	$(PY) -m pytest tests_py -p no:cacheprovider \
		--timeout=$(PYTEST_TIMEOUT) --timeout-method=thread $(PYTEST_ARGS)

run: build
	PY=$(PY) bash scripts/run_demo.sh

clean:
	rm -rf build *.egg-info .pytest_cache pyiocp/_pyiocp*.so pyiocp/_pyiocp*.pyd pyiocp/_pyiocp*.h
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
