PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Every install takes its versions from constraints.txt (`make constraints` refreshes it).
PIP_INSTALL := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: run test bench lint clean constraints

# The venv is (re)installed when pyproject.toml or constraints.txt changes; the stamp files record it.
# An older Python is named before anything is made; a venv one made (a first run on a python3 of
# 3.10, as Ubuntu 22.04's) is made again with PYTHON, or every later run failed on it the same way.
$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "UGC Market needs Python 3.11 or later; $(PYTHON) is " + sys.version.split()[0] + ": make run PYTHON=python3.11")'
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(PIP_INSTALL) -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/ugc serve --host $(HOST) --port $(PORT)

# Two pytest-xdist workers (CI has two cores; most tests wait on servers and the database), each
# taking a module (or its half on one backend) at a time, the slowest first (tests/conftest.py);
# `make test PYTEST_WORKERS=0` runs in one process. The 30 slowest tests are listed at the end: where
# the suite's time goes (CI's aim is 10 minutes), and what SLOW_FIRST should start with.
PYTEST_WORKERS ?= 2
test: $(BIN)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

$(BIN)/.installed-lint: $(BIN)/.installed-test
	$(PIP_INSTALL) -e '.[lint]'
	touch $@

# What CI runs before the tests (.ci/run). mypy takes its files from pyproject.toml: the packages, the
# tests and bench (it imports what the tests import, so the test extras come first).
lint: $(BIN)/.installed-lint
	$(BIN)/ruff check ugc commands projections readmodels api tests bench
	$(BIN)/ruff format --check ugc commands projections readmodels api tests
	$(BIN)/mypy

bench: $(BIN)/.installed-test
	$(BIN)/python bench/run_auth.py

# Resolve pyproject.toml's ranges afresh in a scratch venv and pin the result; review the diff.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet '.[test,lint]'
	.venv-constraints/bin/python -m pip freeze --exclude ugc-market > constraints.txt.new
	{ echo "# Versions every install uses (make run, make test, the Dockerfile). Refresh: make constraints"; \
	  cat constraints.txt.new; } > constraints.txt
	rm -rf .venv-constraints constraints.txt.new

clean:
	rm -rf $(VENV) var
