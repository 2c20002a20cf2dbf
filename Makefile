# Two commands on a fresh machine: `make run` (the local demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Python 3.9 is what the box runs (Debian 11 / RobustOS Pro): `make test-py39` checks the code on it and
# `make deb` downloads the wheels with it. Found on PATH or in pyenv; PYTHON39=/path/to/python3.9 otherwise.
PYTHON39 ?= $(firstword $(foreach p,python3.9 $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9),\
	$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1 && echo $(p))))
VENV39 := .venv39
STAMP39 := $(VENV39)/.installed
# The .deb's architecture: amd64 or arm64 (a Robustel EG5120).
ARCH ?= amd64

.PHONY: run test lint typecheck pytest test-py39 typecheck-py39 deb test-debian screenshots bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gatewayd demo $(ARGS)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

$(STAMP39): pyproject.toml
	@test -n "$(PYTHON39)" || { echo "no Python 3.9 found: make $@ PYTHON39=/path/to/python3.9" >&2; exit 2; }
	$(PYTHON39) -m venv $(VENV39)
	$(VENV39)/bin/python -m pip install --quiet --upgrade pip
	$(VENV39)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP39)

# mypy and the whole suite on Python 3.9, with the dependency releases pip picks there.
test-py39: typecheck-py39
	$(VENV39)/bin/python -m pytest -q $(PYTEST_ARGS)

typecheck-py39: $(STAMP39)
	$(VENV39)/bin/mypy

# dist/gatewayd_<version>_$(ARCH).deb for Debian 11 / RobustOS Pro (packaging/deb/build.sh).
deb:
	ARCH=$(ARCH) PYTHON39="$(PYTHON39)" packaging/deb/build.sh

# Builds the .deb and proves it in a Debian 11 root (debootstrap; root needed): install, check, demo,
# the suite on the box's Python 3.9, an upgrade that keeps pending points. ARCH=arm64 runs under qemu.
test-debian:
	ARCH=$(ARCH) PYTHON39="$(PYTHON39)" tests/debian/run.sh

# docs/console.png and docs/status.png, the README's pictures: the demo in headless Chromium (Debian's
# chromium package), the console with a chart open and the HTTPS gateway's status page, at 1400x900.
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) $(VENV39) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
