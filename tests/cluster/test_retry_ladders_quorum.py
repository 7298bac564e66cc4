"""A retry ladder of quorum queues on the three-node cluster: every tier is replicated on all
three nodes with at-least-once dead-lettering and the subscriber's delivery limit, the spec
plans no changes once applied, and a failing message climbs the ladder on time and ends in its
dead-letter queue."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from bus_runtime import retry
from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from tests.cluster.support import Cluster, queue_info, quorum_members, wait_until
from tests.integration import ladder_handlers
from tests.integration.live_support import client
from tests.integration.runtime_support import UserCreated
from tests.integration.support import get_messages
from topology import naming
from topology.apply.live import converge, plan_live
from topology.spec.loader import load_spec

pytestmark = pytest.mark.cluster

QUEUE = "alice.petisco.1.event.user.created.audit_handler"


def applied(vhost: str, queue: str, settings: str) -> dict[str, Any] | None:
    """The queue's details once its settings apply (a policy reaches every node a moment later)."""
    info = queue_info(vhost, queue)
    return info if settings == "arguments" or info.get("policy") else None


@pytest.mark.parametrize("settings", ["arguments", "policies"])
def test_a_quorum_ladder_is_replicated_plans_no_changes_and_runs_on_time(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path, settings: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"organization: alice\nvhost: {json.dumps(cluster_vhost)}\nqueue_settings: {settings}\n"
        "defaults: {queue_type: quorum}\n"
        "services:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n"
        "          audit_handler:\n"
        '            handler: "tests.integration.ladder_handlers:always_fails"\n'
        "            retry: {delays_ms: [300, 900], max_retries: 2, delivery_limit: 4}\n",
        encoding="utf-8",
    )
    spec = load_spec(path)
    c = client(cluster.management_urls[0], timeout=60)
    try:
        converge(spec, c)
        assert plan_live(spec, c).changes == ()
    finally:
        c.close()
    for tier in naming.retry_tier_queues(QUEUE, 2):
        assert quorum_members(cluster_vhost, tier) == sorted(cluster.node_names)
        info = wait_until(lambda t=tier: applied(cluster_vhost, t, settings), 30, f"the policy applied to {tier}")
        effective = info.get("effective_policy_definition") or {}
        strategy = info["arguments"].get("x-dead-letter-strategy") or effective.get("dead-letter-strategy")
        assert strategy == "at-least-once"
        limit = info["arguments"].get("x-delivery-limit") or effective.get("delivery-limit")
        assert limit == 4  # the subscriber's delivery limit, on every tier

    ladder_handlers.calls.clear()
    connector = RabbitMqConnector(cluster.amqp_urls[1](cluster_vhost))
    consumer = RabbitMqEventConsumer.from_spec(path, connector=connector)
    consumer.start()
    bus = RabbitMqEventBus(RabbitMqConnector(cluster.amqp_urls[2](cluster_vhost)), "alice", "petisco")
    try:
        bus.publish(UserCreated(user_id="1"))
        dead = naming.dead_letter_queue(QUEUE)
        [message] = wait_until(
            lambda: get_messages(cluster.management_urls[0], cluster_vhost, dead, ackmode="ack_requeue_true"),
            30,
            "the message at the end of its ladder",
        )
    finally:
        bus.close()
        consumer.stop()
    headers = message["properties"]["headers"]
    assert (headers[retry.DEAD_LETTER_REASON], headers[retry.RETRY_COUNT]) == (retry.REASON_RETRIES_EXHAUSTED, 2)
    times = ladder_handlers.calls["always_fails"]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 3
    for waited, delay in zip(waits, (0.3, 0.9), strict=True):
        assert delay - 0.05 <= waited < delay + 2.0, waits
