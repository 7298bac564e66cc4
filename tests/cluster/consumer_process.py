"""A consumer in a process of its own, for a test to kill -9 mid-batch.

`python -m tests.cluster.consumer_process URLS FILE PREFETCH` consumes the fault tests' quorum
queue and appends each handled id to FILE (flushed before the handler returns, so the file
holds every id handled before the kill)."""

from __future__ import annotations

import sys
import time
from typing import Any

from meiga import isSuccess

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.subscriber import EventSubscriber
from tests.cluster.faults import ORG, SERVICE, OrderPlaced


def main(urls: str, path: str, prefetch: int) -> None:
    with open(path, "a", buffering=1) as seen:

        def record_handler(event: OrderPlaced) -> Any:
            seen.write(f"{event.user_id}\n")
            seen.flush()
            time.sleep(0.002)  # keep a batch in hand when the kill comes
            return isSuccess

        consumer = RabbitMqEventConsumer(RabbitMqConnector(urls), ORG, SERVICE, prefetch=prefetch, workers=4)
        consumer.consume([EventSubscriber(OrderPlaced, [record_handler])])
        consumer.run_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
