"""What the compiled quorum settings do on the cluster: three replicas, at-least-once
dead-lettering, and a delivery limit that dead-letters a message redelivered too often with a
reason the runtime reads as `delivery_limit`."""

from __future__ import annotations

import pika
import pytest

from bus_runtime.retry import REASON_DELIVERY_LIMIT, dead_letter_reason
from tests.cluster.faults import DEAD_QUEUE, EXCHANGE, QUEUE, ROUTING_KEY, create_topology
from tests.cluster.support import Cluster, queue_info, quorum_members, wait_until
from tests.integration.support import get_messages

pytestmark = pytest.mark.cluster

LIMIT = 3


def test_a_message_past_its_delivery_limit_is_dead_lettered_as_delivery_limit(
    cluster: Cluster, cluster_vhost: str
) -> None:
    create_topology(cluster, cluster_vhost, delivery_limit=LIMIT)
    info = queue_info(cluster_vhost, QUEUE)
    assert info["arguments"]["x-delivery-limit"] == LIMIT
    assert info["arguments"]["x-dead-letter-strategy"] == "at-least-once"
    assert quorum_members(cluster_vhost, DEAD_QUEUE) == sorted(cluster.node_names)

    connection = pika.BlockingConnection(pika.URLParameters(cluster.amqp_urls[1](cluster_vhost)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(EXCHANGE, ROUTING_KEY, b"{}", pika.BasicProperties(delivery_mode=2), mandatory=True)
        # a consumer that keeps giving the message back (a requeue loop) runs out of deliveries
        for _ in range(LIMIT + 1):
            method, _properties, _body = wait_until(
                lambda: (got := channel.basic_get(QUEUE))[0] and got, 10, "the message back in its queue"
            )
            channel.basic_nack(method.delivery_tag, requeue=True)
    finally:
        connection.close()

    message = wait_until(
        lambda: get_messages(cluster.management_urls[0], cluster_vhost, DEAD_QUEUE, count=1),
        30,
        "the message in the dead-letter queue",
    )[0]
    assert dead_letter_reason(message["properties"]["headers"]) == REASON_DELIVERY_LIMIT
