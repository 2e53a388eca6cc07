# Lookalike: `make run` serves the app, `make test` runs lint, types and the whole suite.
# Both set up .venv on first use (`make install`, idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5050
# torch and torchvision are pinned here (not in pyproject) because these exact builds
# install from local disk on our machines; users may run any version pyproject allows.
# torchao (int8) is released in step with torch: this one is the release for torch 2.14.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1 torchao==0.18.0

.PHONY: install run test lint types unit suite fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/lookalike serve --port $(PORT)

# Style, then the shape of the code: the import contracts in pyproject.toml and no cycles.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_cycles.py

types: install
	$(BIN)/mypy api/ cli/ common/ embedder/ store/ engine/ migrations/

# The fast loop: no browser, no model compile, no subprocess servers, no benchmark runs;
# two workers (under a minute on 2 cores).
unit: install
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not browser and not bench" tests/unit tests/congruence

# Everything: the browser tests, real servers, crash tests and the benchmarks' smoke runs.
suite: install
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q

test: lint types suite

# Schemathesis against a live server for longer than `make test` does (its test runs 20
# examples an operation): every check, four phases, fixed seed. Prints a JSON summary.
FUZZ_EXAMPLES ?= 200
fuzz: install
	$(BIN)/python -m tests.fuzz.live_run --max-examples $(FUZZ_EXAMPLES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
