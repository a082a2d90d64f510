# The two commands of the README:
#   make run   - set everything up, start Azurite and the receiver on http://localhost:7071
#   make test  - set everything up and run the whole suite (lint, types, tests, infra checks)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .stamps

.PHONY: run test check lint typecheck audit pytest setup bench clean

run: setup
	./scripts/run-local.sh

test: setup check

check: lint typecheck audit pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

# pip-audit over what runs in Azure; fails on a known vulnerability and on any package it could not
# check. azure-functions 1.26.0 is the newest for Python 3.11 but not the latest release (2.x needs
# Python 3.13), and PyPI's per-release vulnerability data
# cannot be had from every network: accepted as unchecked, and printed as such (README, Reliability).
audit:
	$(BIN)/python -m devtools.audit requirements.txt --unauditable azure-functions

pytest:
	$(BIN)/python -m pytest

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/checkov

$(STAMPS)/python: requirements.txt requirements-tools.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-tools.txt -r requirements-dev.txt
	@mkdir -p $(STAMPS) && touch $@

# checkov has its own venv: its dependency pins would fight the app's.
$(STAMPS)/checkov: requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/node: package.json package-lock.json
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

# The ingest benchmark (README, Performance): about 6 minutes on 2 cores.
bench: setup
	$(BIN)/python -m devtools.bench

clean:
	rm -rf $(VENV) $(STAMPS) node_modules .azurite .mypy_cache .ruff_cache .pytest_cache
