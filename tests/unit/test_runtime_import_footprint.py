"""What `import bus_runtime` costs a service: the runtime and the shared foundations (naming,
URL parsing, TLS, errors), never the planner's apply/broker/plan/CLI machinery, requests,
jinja2 or PyYAML. Each import runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROJECT = ("bus_runtime", "topology")
HEAVY = ("requests", "jinja2", "yaml")
PLANNER = ("topology.apply", "topology.broker", "topology.plan", "topology.cli", "topology.state", "bus_runtime.cli")

# The whole list, pinned: a new module here is a decision, not an accident.
PLAIN_IMPORT = [
    "bus_runtime",
    "bus_runtime.async_handlers",
    "bus_runtime.batched",
    "bus_runtime.breaker",
    "bus_runtime.breaker_gate",
    "bus_runtime.bus",
    "bus_runtime.connector",
    "bus_runtime.consumer",
    "bus_runtime.consumer_connection",
    "bus_runtime.dispatch",
    "bus_runtime.errors",
    "bus_runtime.iothread",
    "bus_runtime.limits",
    "bus_runtime.message",
    "bus_runtime.publisher",
    "bus_runtime.republisher",
    "bus_runtime.retry",
    "bus_runtime.settlement",
    "bus_runtime.subscriber",
    "bus_runtime.telemetry",
    "bus_runtime.telemetry.hooks",
    "bus_runtime.wire",
    "topology",
    "topology.amqp",
    "topology.amqp.ledgers",
    "topology.errors",
    "topology.failures",
    "topology.ladder",
    "topology.naming",
    "topology.tls",
    "topology.urls",
]


def loaded_after(statement: str) -> list[str]:
    code = (
        f"import sys, json\n{statement}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {PROJECT + HEAVY!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def heavy_or_planner(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY or any(m == p or m.startswith(p + ".") for p in PLANNER)]


def test_a_plain_import_loads_the_pinned_modules_only() -> None:
    assert loaded_after("import bus_runtime") == PLAIN_IMPORT


@pytest.mark.parametrize(
    "statement",
    [
        "from bus_runtime import Event, Command, EventSubscriber, CommandSubscriber, InfoId, RabbitMqConnector, "
        "RabbitMqEventBus, RabbitMqCommandBus, RabbitMqEventConsumer, PublishError, retry",
        "from bus_runtime.aio import AsyncRabbitMqEventBus, AsyncRabbitMqEventConsumer",
        "from bus_runtime.deadletters import DeadLetterQueues",
        "from bus_runtime.telemetry.metrics import enable_metrics, serve_metrics",
        "from bus_runtime.telemetry.tracing import enable_tracing",
        "import topology.naming, topology.urls, topology.tls, topology.errors, topology.amqp",
    ],
)
def test_what_the_readme_imports_loads_no_planner_and_no_heavy_library(statement: str) -> None:
    assert heavy_or_planner(loaded_after(statement)) == []


def test_the_configurer_loads_the_planner_when_it_is_used() -> None:
    loaded = loaded_after("from bus_runtime import RabbitMqEventConfigurer")
    assert "topology.apply.live" in loaded and "requests" in loaded
