# Every target installs what it needs: a fresh clone needs only Python 3.11+, Node 20+ and npm.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
SHARDS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install test lint synth local loadtest bench clean

install: $(VENV)/.installed node_modules/.installed .build/.layer-deps

# The Lambda layer's arm64 wheels, fetched once: afterwards `cdk synth` needs no network.
.build/.layer-deps: $(VENV)/.installed
	$(PY) -m pipeline.infrastructure.packaging
	mkdir -p .build && touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy pipeline loadtest consumers app.py

# The consumers' settings are checked first, so a bad settings.json is one line, not cdk's output.
synth: install
	@$(PY) -m pipeline.registry >/dev/null
	npx cdk synth --quiet -c stage=$(STAGE) -c shards=$(SHARDS)

local: install
	$(PY) -m pipeline local --stage $(STAGE)

loadtest: install
	$(PY) -m loadtest

bench: install
	$(PY) -m loadtest.bench

clean:
	rm -rf cdk.out .build .pytest_cache .mypy_cache .ruff_cache
