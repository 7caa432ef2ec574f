PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint clean

# The venv is (re)installed when pyproject.toml changes; the stamp files record it.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/ugc serve --host 127.0.0.1 --port 8000

test: $(BIN)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	$(BIN)/ruff check ugc commands projections readmodels api tests bench
	$(BIN)/mypy

bench: $(BIN)/.installed-test
	$(BIN)/python bench/run_auth.py

clean:
	rm -rf $(VENV) var
