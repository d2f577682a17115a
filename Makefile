# Every target installs what it needs: a fresh clone needs only Python 3.11+, Node 20+ and npm.
# Python distributions come from uv.lock only (exact versions, hashes checked): `make lock`
# re-resolves it within pyproject.toml's ranges.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
SHARDS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

UV_DIR := .build/uv
UV := $(UV_DIR)/bin/uv
# uv never downloads an interpreter: the venv is made from $(PYTHON).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: install venv test lint lock synth local loadtest bench clean

install: venv node_modules/.installed .build/.layer-deps

# The Lambda layer's arm64 wheels, fetched once: afterwards `cdk synth` needs no network.
.build/.layer-deps: uv.lock pyproject.toml | venv
	$(PY) -m pipeline.infrastructure.packaging
	mkdir -p .build && touch $@

# uv itself, at the version and hashes uv.lock records (pip checks them), outside the venv.
$(UV): uv.lock
	mkdir -p .build
	$(PYTHON) -m pipeline.lockfile requirements uv > .build/uv-requirements.txt
	rm -rf $(UV_DIR)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		--target $(UV_DIR) -r .build/uv-requirements.txt
	touch $@

# Exactly the lock: the project (editable) and its dev extras; anything else is removed. Run
# every time (a no-op of ~0.7 s when .venv matches), so a library changed by hand is put back.
# The libraries' bytecode is compiled once here (~30 s on 2 cores): with PYTHONDONTWRITEBYTECODE
# set, as on CI, every process (each synth, twin and worker) compiled aws_cdk, moto, botocore...
# from source again, and a synth took ~14 s instead of ~8.
venv: $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet --compile-bytecode

# Re-resolve every dependency to the newest release pyproject.toml's ranges allow.
lock: $(UV)
	$(UV) lock --upgrade
	@echo "uv.lock re-resolved (git diff uv.lock shows what moved). Before committing it:"
	@echo "  make install && make lint && make test    # the suite on the new versions"
	@echo "  CI=true bash .ci/run                     # on a clean clone, as CI runs it"

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy pipeline loadtest consumers app.py
	$(VENV)/bin/lint-imports

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
