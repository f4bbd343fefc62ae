# The only entry point: every developer task and CI run goes through these targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
BUF := $(TOOLS)/bin/buf
PROTO_FILES = $(shell find protos -name '*.proto' | sort)
PYTEST_WORKERS ?= 2
# `make run` is a platform on a developer's machine: its webhook endpoints may reach local
# receivers (127.0.0.1, localhost). `remit serve` alone refuses internal addresses unless told.
REMIT_DEVELOPMENT ?= 1

.PHONY: help install compile-sources generate check-generate lint format test test-unit run bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed $(BUF) ## Install Python (locked, into .venv) and buf (into .tools)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installed packages are compiled to bytecode once, here: where PYTHONDONTWRITEBYTECODE is set
# (common in containers), every process would otherwise compile its imports from source at each
# start, about a second of CPU per process.
$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	UV_PYTHON=$(PYTHON) UV_COMPILE_BYTECODE=1 $(UV) sync --frozen --quiet
	touch $@

# remit's own modules, compiled before the processes that import them start (tests, run, bench);
# a module changed since is compiled again in memory, as without this step.
compile-sources: $(VENV)/.installed
	@$(PY) -m compileall -q -j 0 src gen versions >/dev/null

# buf's npm platform package, fetched from the npm registry and checked against its pinned
# sha512 by a standard-library script: no Node.js needed. Reinstalled when the pin changes.
$(BUF): src/remit/devtools/install_buf.py
	$(PYTHON) src/remit/devtools/install_buf.py
	touch $@

generate: install ## Regenerate Python code and type stubs from protos/
	$(PY) -m remit.devtools.generate gen

check-generate: install ## Fail if the committed generated code is stale
	$(PY) -m remit.devtools.generate --check gen

lint: install ## ruff, mypy --strict, buf lint and buf breaking against main
	$(VENV)/bin/ruff check src tests versions bench
	$(VENV)/bin/ruff format --check src tests versions bench
	$(VENV)/bin/mypy src tests versions bench
	$(BUF) lint
	@if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then \
		echo "buf breaking --against main"; $(BUF) breaking --against '.git#branch=main'; \
	else echo "buf breaking: no main branch with protos to compare against yet"; fi

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix src tests versions bench
	$(VENV)/bin/ruff format src tests versions bench

test: install lint check-generate compile-sources ## Lint, check generated code, then run every test
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-unit: install ## Only the unit tests (no I/O)
	$(PY) -m pytest tests/unit

run: $(VENV)/.installed compile-sources ## Start the whole platform on an embedded PostgreSQL and print the test keys
	REMIT_DEVELOPMENT=$(REMIT_DEVELOPMENT) $(VENV)/bin/remit serve

bench: $(VENV)/.installed compile-sources ## Run the benchmarks and print their figures
	$(PY) -m bench

clean: ## Remove installed tools and caches (keeps .remit data)
	rm -rf $(TOOLS) $(VENV) .mypy_cache .ruff_cache
