# rsmiss — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT ?= rsmiss-data

.PHONY: install test lint format clean

# Virtual environment + editable install; re-runs only when pyproject.toml changes.
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check rsmiss tests
	$(BIN)/ruff format --check rsmiss tests

format: $(STAMP)
	$(BIN)/ruff format rsmiss tests
	$(BIN)/ruff check --fix rsmiss tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
