"""Quorum queues on the broker we ship (RabbitMQ 3.10, which refuses `if-empty` for them):
empty ones are destroyed and replaced without --allow-data-loss, messages move out of them
as well as into them, and emptiness is read from the broker, not from its lagging statistics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.live_support import client
from tests.integration.support import depth
from tests.integration.test_queue_settings import EXCHANGE, MAIN, ROUTING_KEY, drain_ids, make, publish, spec_text
from topology.apply.executor import ApplyError
from topology.apply.live import converge, plan_live
from topology.cli.main import main


def test_an_empty_quorum_bus_is_destroyed_and_replaced_without_allow_data_loss(
    management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(vhost, settings="arguments", queue_type="quorum"), encoding="utf-8")
    url = ["--management-url", management_url, "--auto-approve"]
    assert main(["apply", str(spec), *url]) == 0
    spec.write_text(spec_text(vhost, settings="arguments", queue_type="classic"), encoding="utf-8")
    assert main(["apply", str(spec), *url]) == 0  # quorum -> classic: an empty queue is replaced
    spec.write_text(spec_text(vhost, settings="arguments", queue_type="quorum"), encoding="utf-8")
    assert main(["apply", str(spec), *url]) == 0  # and back
    assert main(["destroy", str(spec), *url]) == 0
    assert "Destroy complete: 10 destroyed" in capsys.readouterr().out


@pytest.mark.parametrize(("before", "after"), [("quorum", "classic"), ("classic", "quorum")])
def test_messages_move_in_both_directions(
    management_url: str, vhost: str, amqp_url: str, before: str, after: str
) -> None:
    c = client(management_url, timeout=60)
    try:
        converge(make(vhost, settings="policies", queue_type=before), c)
        ids = [f"m{i}" for i in range(50)]
        publish(amqp_url, EXCHANGE, ROUTING_KEY, ids)
        spec = make(vhost, settings="policies", queue_type=after)
        plan = plan_live(spec, c, move_messages=True)
        assert any(ch.move for ch in plan.changes)
        converge(spec, c, plan)
        assert Counter(drain_ids(amqp_url, MAIN)) == Counter(ids)
        assert str(c.get("queues", vhost, MAIN)["arguments"].get("x-queue-type", "classic")) == after
    finally:
        c.close()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_stale_empty_count_does_not_start_a_destroy(
    management_url: str, vhost: str, amqp_url: str, queue_type: str
) -> None:
    """The plan saw 0 messages; a message arriving before apply stops it before its first deletion."""
    c = client(management_url, timeout=60)
    try:
        spec = make(vhost, settings="arguments", queue_type=queue_type)
        converge(spec, c)
        from topology.apply.live import plan_destroy
        from topology.state.lifecycle import destroy_owned

        plan = plan_destroy(spec, c)
        assert not plan.errors
        publish(amqp_url, EXCHANGE, ROUTING_KEY, ["late"])
        with pytest.raises(ApplyError, match=r"now holds messages .* nothing was changed"):
            destroy_owned(spec, c, plan)
        assert depth(amqp_url, MAIN) == 1
        assert not plan_live(spec, c).changes  # every object is still there
    finally:
        c.close()
