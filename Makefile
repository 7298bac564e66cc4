# The two commands that matter: `make demo` (no broker needed) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test unit integration lint bench rabbitmq clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

rabbitmq:
	scripts/rabbitmq-up

test: install rabbitmq
	$(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install rabbitmq
	$(BIN)/python -m pytest -q tests/integration

lint: install
	$(BIN)/ruff check topology bus_runtime tests benchmarks examples
	$(BIN)/ruff format --check topology bus_runtime tests benchmarks examples
	$(BIN)/mypy

bench: install rabbitmq
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
