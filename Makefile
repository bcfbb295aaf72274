# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make demo   create .venv, install, run the bundled example on the default ledger
#   make test   create .venv (and .venv-phoenix for the trace backend), install, run the test suite
#               (and install Debian's chromium when missing, for the HTML report's browser tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Arize Phoenix brings many packages of its own, so it lives in a virtual environment of its own.
PHOENIX_VENV := .venv-phoenix
PHOENIX_SPEC ?= arize-phoenix==20.26.1
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-stamp

.PHONY: demo test bench e2e-deps browser clean

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

# The HTML report's tests read it in Debian's chromium, never in a browser that playwright would
# download. Installed when missing (CI runs as root, with no stdin); when that fails, the tests
# skip and say why, and the rest of the suite runs.
browser:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium) || \
		echo "chromium could not be installed: the report's browser tests will skip"

demo: $(STAMP)
	$(BIN)/execaudit demo

# The checkpoints the tests (and doctests) take go to a witness state file of their own, never
# to the user's.
test: e2e-deps browser
	EXECAUDIT_STATE="$$(mktemp -d)/checkpoints.json" $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .execaudit .pytest_cache
