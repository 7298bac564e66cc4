"""The `rabbitform` pytest plugin: a service's tests get an in-memory broker in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus_runtime import retry
from bus_runtime.pytest_plugin import MakeMemoryBroker
from tests.unit import memory_handlers

SPEC = """
organization: alice
defaults: {retry: {delay_ms: 100, max_retries: 1}}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {handler: "tests.unit.memory_handlers:send_mail_handler"}
          audit_handler: {handler: "tests.unit.memory_handlers:always_fails"}
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "alice.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_a_handler_tested_in_three_lines(make_memory_broker: MakeMemoryBroker, spec_path: Path) -> None:
    broker = make_memory_broker(spec_path)
    broker.event_bus("petisco").publish(memory_handlers.UserCreated(user_id="42"))
    broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 1
    assert broker.calls("audit_handler") == 2
    [dead] = broker.messages("dead_letter.alice.petisco.1.event.user.created.audit_handler")
    assert dead.headers[retry.DEAD_LETTER_REASON] == "retries_exhausted"


def test_the_spec_can_come_from_the_environment(
    make_memory_broker: MakeMemoryBroker, spec_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITFORM_SPEC", str(spec_path))
    broker = make_memory_broker(consume=False)
    broker.event_bus("petisco").publish(memory_handlers.UserCreated(user_id="42"))
    broker.run_until_idle()
    assert broker.depth("alice.petisco.1.event.user.created.send_mail_handler") == 1


def test_without_a_spec_the_fixture_says_how_to_give_one(
    make_memory_broker: MakeMemoryBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RABBITFORM_SPEC", raising=False)
    with pytest.raises(pytest.fail.Exception, match="rabbitform_spec"):
        make_memory_broker()


def test_the_seed_spec_runs_the_seed_handlers(make_memory_broker: MakeMemoryBroker) -> None:
    from examples.rabbitmq.handlers import UserCreated

    broker = make_memory_broker("specs/alice.yaml")
    broker.event_bus("petisco").publish(UserCreated(user_id="42"))
    broker.run_until_idle()
    assert (broker.calls("send_mail_handler"), broker.calls("event_store")) == (1, 1)
