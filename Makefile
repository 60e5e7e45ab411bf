# The two commands a newcomer needs: `make run` and `make test`.
# Each creates .venv with the pinned dependencies when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-fast gen check-gen lint fmt breaking bench bench-smoke lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@touch $@

venv: $(STAMP)  ## Create .venv with the pinned dependencies

run: $(STAMP)  ## Start the whole mesh behind Envoy on https://localhost:8443
	$(PY) -m services.launcher

test: $(STAMP)  ## Run every test (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set)
	$(PY) -m pytest

gen: $(STAMP)  ## Regenerate generated/ from proto/ (and the container edge config in deploy/)
	$(PY) -m tools.protogen gen
	$(PY) -m deploy.render_envoy

check-gen: gen  ## Fail when generated/ is not what `make gen` produces
	@git diff --exit-code --stat -- generated || (echo "generated/ is stale: run make gen"; exit 1)

lint: $(STAMP)  ## ruff, mypy and buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) -m tools.protogen lint

fmt: $(STAMP)  ## Format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

breaking: $(STAMP)  ## Check the contracts for breaking changes against the last commit on main
	$(PY) -m tools.protogen breaking main

bench: $(STAMP)  ## Benchmarks: ratios against baselines measured in the same run
	$(PY) -m tests.bench

lock: $(STAMP)  ## Re-resolve constraints.txt from requirements.txt
	$(PY) -m pip freeze --exclude-editable | sed '1i # Full resolved dependency set (pip freeze). Regenerate with: make lock' > constraints.txt

clean:  ## Remove local state (.venv, embedded databases, build files)
	rm -rf $(VENV) .data .build .pytest_cache .mypy_cache .ruff_cache
