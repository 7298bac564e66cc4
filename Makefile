# The two commands that matter: `make demo` (no broker needed) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test unit integration lint bench rabbitmq postgres test-tools cluster cluster-down cluster-test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

# `make run ARGS="plan specs/alice.yaml --offline"`: rabbitform lives in .venv/bin/.
run: install
	$(BIN)/rabbitform $(ARGS)

rabbitmq:
	scripts/rabbitmq-up

# A private PostgreSQL on 127.0.0.1:5433 for the outbox and inbox tests (data under /tmp).
postgres:
	scripts/postgres-up

# Chromium and chromedriver (the console's browser tests) and promtool (the alert rules' tests),
# from Debian's packages when missing.
test-tools:
	scripts/test-tools-up

# Everything, the fault tests on the three-node cluster included (`make cluster` starts it, or
# completes it; it stays up afterwards, `make cluster-down` stops it).
test: install rabbitmq postgres test-tools cluster
	HYPOTHESIS_PROFILE=repeatable $(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install rabbitmq postgres test-tools
	$(BIN)/python -m pytest -q tests/integration

lint: install
	$(BIN)/ruff check topology bus_runtime tests benchmarks examples
	$(BIN)/ruff format --check topology bus_runtime tests benchmarks examples
	$(BIN)/mypy

# A local three-node cluster (rf1-rf3@localhost, AMQP 5681-5683, management 15681-15683).
cluster:
	scripts/rabbitmq-cluster up

cluster-down:
	scripts/rabbitmq-cluster down

cluster-test: install cluster
	$(BIN)/python -m pytest -q -m cluster tests/cluster

bench: install rabbitmq postgres
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
