# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make demo   create .venv, install, run the bundled example on the default ledger
#   make test   create .venv (and .venv-phoenix for the trace backend), install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Arize Phoenix brings many packages of its own, so it lives in a virtual environment of its own.
PHOENIX_VENV := .venv-phoenix
PHOENIX_SPEC ?= arize-phoenix==20.26.1
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-stamp

.PHONY: demo test bench e2e-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "otel-execaudit needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(PHOENIX_SPEC)'
	@touch $@

e2e-deps: $(STAMP) $(PHOENIX_STAMP)

demo: $(STAMP)
	$(BIN)/execaudit demo

test: e2e-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .execaudit .pytest_cache
