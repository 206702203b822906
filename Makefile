# Developer entry points; `make help` lists them. `make test` is the command CI runs (.ci/run) and
# must pass on a fresh clone with no manual step, so every target sets up what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter .venv is created from (needs >= 3.11): make setup PYTHON=python3.12
PYTHON ?= python3
export PYTHON
VENV := .venv
PY := $(VENV)/bin/python
# Extra pytest arguments for `make test`, e.g. make test PYTEST_ARGS="-x -k ingest". `make test` sets
# REQUIRE_POSTGRES=1, so a selection without PostgreSQL tests fails; run .venv/bin/pytest for those.
PYTEST_ARGS ?=

.PHONY: help deps dev-deps setup run demo test lint typecheck bench clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z_-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Create .venv (python3 -m venv) with the runtime requirements.txt only (what the daemon imports)
	@bash scripts/bootstrap.sh python-env

dev-deps: deps ## deps plus requirements-dev.txt (pytest, ruff, mypy, benchmark tools)
	@bash scripts/bootstrap.sh dev-env

setup: deps ## deps, then create the dropoff folders and the database tables (idempotent)
	$(PY) setup_directories.py
	$(PY) -m backend init-db

run: setup ## Run the daemon in the foreground on the embedded SQLite default (Ctrl-C stops)
	$(PY) -m backend run

demo: setup ## Drop examples/*.csv into the fullload folder, load them once, print the status
	mkdir -p dropoff/reference_data_table/fullload
	cp examples/*.csv examples/*.tsv dropoff/reference_data_table/fullload/
	# Short checks so the demo does not wait the production 6 x 15 s stability window.
	MONITOR_INTERVAL=0.5 STABILITY_CHECKS=2 HEALTH_ENABLED=false $(PY) -m backend run --until-idle
	$(PY) -m backend status
	$(PY) -m backend export countries | head -5

test: setup dev-deps ## All tests (a throwaway PostgreSQL, installed with apt-get if missing and root), then lint and types
	@bash scripts/bootstrap.sh system-packages
	REQUIRE_POSTGRES=1 $(VENV)/bin/pytest $(PYTEST_ARGS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

lint: dev-deps ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: dev-deps ## mypy, strict on backend/
	$(VENV)/bin/mypy

bench: dev-deps ## Run the load benchmarks (bench/run); ours runs in bench/.venv-runtime (runtime requirements only)
	bench/setup_runtime.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bench/run

clean: ## Remove caches and build output (keeps .venv, data/ and dropoff/)
	rm -rf .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info bench/out
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
