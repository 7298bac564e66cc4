"""The listings read path and the definitions export give the same snapshot of a real vhost."""

from __future__ import annotations

from decimal import Decimal

import pika

from benchmarks.generated import generated_spec
from benchmarks.scratch import delete_vhost
from tests.integration.live_support import client
from topology.apply.live import plan_live
from topology.broker.snapshot import read_snapshot
from topology.compile.compiler import compile_spec
from topology.compile.definitions import to_definitions


def test_both_read_paths_give_the_same_snapshot(management_url: str, vhost: str, amqp_url: str) -> None:
    spec = generated_spec(300, vhost)  # 2,110 objects
    broker = client(management_url)  # waits as long as the broker is alive: a busy one is slow at this size
    try:
        broker.post("definitions", vhost, body=to_definitions(compile_spec(spec), include_vhost=False))
        policy = {"pattern": "^transient$", "apply-to": "queues", "priority": 7, "definition": {"message-ttl": 5000}}
        broker.put("policies", vhost, "hand-made", body=policy)
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            channel = connection.channel()  # what a spec never makes, but a vhost may hold
            channel.exchange_declare("other", "headers", durable=False, arguments={"n": 5, "s": "5"})
            exclusive = channel.queue_declare("", exclusive=True).method.queue
            channel.queue_declare("transient", durable=False, auto_delete=True, arguments={"x-max-length": 10})
            channel.queue_bind(exclusive, "other", "k")
            arguments = {"a": 1, "b": "1", "c": True, "d": Decimal("1.5")}
            channel.queue_bind("transient", "other", "k", arguments=arguments)
            channel.queue_bind("bench.service0.1.event.thing0.happened.handler_0", "amq.topic", "#")
            channel.exchange_bind("amq.fanout", "other", "z")
            listed = read_snapshot(broker, vhost, path="listings")
            exported = read_snapshot(broker, vhost, path="definitions")
            unchanged = not plan_live(spec, broker).has_changes
        finally:
            connection.close()
        assert listed == exported
        assert listed.topology is not None and listed.topology.object_count > 2110
        assert exclusive not in {q.name for q in listed.topology.queues}
        assert [p.name for p in listed.topology.policies] == ["hand-made"]
        assert unchanged
    finally:
        delete_vhost(broker, vhost)  # here, without the fixture's fixed timeout: 2,000 objects are slow to go
        broker.close()
