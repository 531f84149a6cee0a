# nodekeeper: `make run` starts a local cluster and the agent; `make test` runs what CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help venv lock lint format crds chart chart-schema image unit fuzz component integration binaries e2e cluster cluster-down kind-e2e test docker run clean bench-logs rules dashboards observability

help:
	@echo "make run          local control plane + agent for this node (see README)"
	@echo "make test         everything CI runs: lint, unit, component, integration, e2e"
	@echo "make lint         ruff, mypy --strict, import-linter layer contracts"
	@echo "make crds         regenerate crds/ from operator/nodekeeper/api/ (and the chart's copy)"
	@echo "make chart        helm lint and rendering tests of charts/nodekeeper"
	@echo "make image        the agent image nodekeeper:dev (images/, no registry needed)"
	@echo "make unit | component | integration | e2e    one test layer"
	@echo "make fuzz         the property tests with many fresh random examples (long; not in make test)"
	@echo "make rules        promtool check + unit tests of the chart's alert rules"
	@echo "make dashboards   regenerate charts/nodekeeper/dashboards/ from observability/"
	@echo "make observability  the rules, dashboards and PromQL unit tests"
	@echo "make cluster | cluster-down               the local control plane (e2e/cluster.sh)"
	@echo "make binaries     kube-apiserver, etcd, kube-controller-manager, kubectl, helm (e2e/build.sh)"
	@echo "make bench-logs   log throughput against rsyslog (a benchmark, not part of make test)"
	@echo "make venv         .venv/ from requirements.lock (exact versions, hashes checked)"
	@echo "make lock         refresh requirements.lock from pyproject.toml (UPGRADE=1: newest of all)"

# requirements.lock: the exact version and hashes of every package .venv/ holds (runtime, the dev
# extra, pip and the build backend setuptools), for CI's Python 3.11 on Linux. Made by uv, itself
# pinned here; an existing pin is kept unless pyproject.toml rules it out, or UPGRADE=1 is given.
UV_VERSION ?= 0.13.9
LOCK_PYTHON ?= 3.11

lock:
	$(PYTHON) -m venv $(VENV)
	$(VENV_PIP) uv==$(UV_VERSION)
	{ $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'; echo pip; } \
	  | $(BIN)/uv pip compile pyproject.toml - --extra dev --generate-hashes $(if $(filter 1,$(UPGRADE)),--upgrade) \
	      --python-version $(LOCK_PYTHON) --python-platform linux --custom-compile-command 'make lock' --quiet \
	      -o requirements.lock

# The lock's pip first, from its own entry, hash-checked (from scratch, make venv takes 30 s with
# it, 45 s with the venv's bundled pip 23.2), then everything in the lock; then nodekeeper itself,
# editable, built by the lock's setuptools (no build isolation: no unpinned setuptools is fetched)
# with no index: pip can take nothing the lock lacks, and fails when pyproject.toml asks for more.
VENV_PIP := $(PY) -m pip install -q --disable-pip-version-check

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	awk '/^pip==/ { p = 1 } p { print } p && !/\\$$/ { exit }' requirements.lock \
	  | $(VENV_PIP) --require-hashes -r /dev/stdin
	$(VENV_PIP) --require-hashes -r requirements.lock
	$(VENV_PIP) --no-index --no-build-isolation --check-build-dependencies -e '.[dev]' \
	  || { echo "make venv: pyproject.toml asks for what requirements.lock lacks: run make lock" >&2; exit 1; }
	touch $@

lint: venv
	$(BIN)/ruff check operator tests e2e bench observability
	$(BIN)/ruff format --check operator tests e2e bench observability
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format operator tests e2e bench observability
	$(BIN)/ruff check --fix operator tests e2e bench observability

crds: venv
	rm -f crds/*.yaml
	$(BIN)/nodekeeper crds --out crds
	rm -f charts/nodekeeper/crds/*.yaml
	cp crds/*.yaml charts/nodekeeper/crds/

# The chart's values.schema.json takes the agent's settings from config.py.
chart-schema: venv
	$(PY) scripts/chart-schema.py

chart: venv binaries
	$(PYTEST) tests/chart

# The agent image nodekeeper:dev on a local Debian base (no registry), then its tests.
image: venv docker
	images/agent/build.sh nodekeeper:dev
	$(PYTEST) tests/image

unit: venv
	$(PYTEST) tests/unit

# The property tests (hypothesis; profiles in tests/unit/conftest.py): make unit runs a fixed,
# small set of examples; this draws fresh ones, 10,000 per property, with no per-test timeout.
# A failure prints the @reproduce_failure line that replays it.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(PYTEST) --timeout=0 -m hypothesis -p no:logging tests/unit

# The chart's alerts, dashboards and every PromQL expression in them (promtool from Debian's
# prometheus package). observability/ is build tooling: linted with ruff, not under mypy --strict.
rules: venv
	promtool check rules charts/nodekeeper/rules/nodekeeper.rules.yaml
	$(PYTEST) tests/observability/test_rules.py

dashboards: venv
	$(PY) -m observability.dashboards

observability: venv
	$(PYTEST) tests/observability

component: venv docker
	$(PYTEST) tests/component

docker:
	scripts/docker-up.sh

integration: venv docker
	$(PYTEST) tests/integration

# The control plane's binaries and helm, built into $NODEKEEPER_CACHE once (about 280 s on a cold
# 2-core machine, 0 s cached). Its own step, never inside a test: pytest's 120 s timeout per test
# would cut a cold build short. The tests' fixtures call build.sh too; cached, that is a no-op.
binaries:
	e2e/build.sh

cluster: binaries
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

# Against the local control plane (started when needed), or the cluster in KUBECONFIG when set.
e2e: venv docker binaries
	$(PYTEST) e2e/tests

# For users with an image registry: a kind cluster whose API the same suite runs against, the
# agent running on this machine for a kind node and this machine's Docker (cannot run here).
kind-e2e: venv docker binaries
	kind create cluster --name nodekeeper-e2e --wait 120s
	kind export kubeconfig --name nodekeeper-e2e --kubeconfig $(CURDIR)/.kind-kubeconfig
	KUBECONFIG=$(CURDIR)/.kind-kubeconfig E2E_NODE=nodekeeper-e2e-control-plane $(PYTEST) e2e/tests

test: lint unit observability chart component integration image e2e

# A benchmark, not a test: figures to read, never pass/fail (rsyslog: apt-get install rsyslog).
bench-logs: venv
	$(PY) bench/logs_throughput.py

run: venv binaries
	scripts/run-local.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
