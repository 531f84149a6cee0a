# nodekeeper: `make run` starts a local cluster and the agent; `make test` runs what CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help venv lint format crds check-crds unit component integration test docker run clean

help:
	@echo "make run          local control plane + agent for this node (see README)"
	@echo "make test         everything CI runs: lint, crds check, unit, component, integration"
	@echo "make lint         ruff, mypy --strict, import-linter layer contracts"
	@echo "make crds         regenerate crds/ from operator/nodekeeper/api/"
	@echo "make unit | component | integration    one test layer"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format operator tests
	$(BIN)/ruff check --fix operator tests

crds: venv
	$(BIN)/nodekeeper crds --out crds

unit: venv
	$(PYTEST) tests/unit

component: venv docker
	$(PYTEST) tests/component

docker:
	scripts/docker-up.sh

integration: venv docker
	$(PYTEST) tests/integration

test: lint unit component integration

run:
	@echo "make run: the local control plane lands with issue 3 (e2e/cluster.sh); until then run"
	@echo "  .venv/bin/nodekeeper run --node-name NODE --kubeconfig FILE   against a cluster of yours"
	@exit 2

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
