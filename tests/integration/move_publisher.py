"""A publisher in a process of its own, for the move tests: publishes with confirms and
`mandatory` until a stop file appears, and writes one line per message: `<id> confirmed` or
`<id> unroutable` (returned by the broker).

`python -m tests.integration.move_publisher AMQP_URL EXCHANGE ROUTING_KEY OUT_FILE STOP_FILE`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pika
import pika.exceptions


def main(amqp_url: str, exchange: str, routing_key: str, out: str, stop: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    with open(out, "w", encoding="utf-8") as log:
        n = 0
        while not Path(stop).exists():
            message_id = f"live-{n}"
            properties = pika.BasicProperties(message_id=message_id, delivery_mode=2)
            try:
                channel.basic_publish(exchange, routing_key, b"{}", properties, mandatory=True)
                log.write(f"{message_id} confirmed\n")
            except pika.exceptions.UnroutableError:
                log.write(f"{message_id} unroutable\n")
            log.flush()
            n += 1
            time.sleep(0.002)
    connection.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
