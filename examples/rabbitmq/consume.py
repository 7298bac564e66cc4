"""Consume alice.petisco's events: `python examples/rabbitmq/consume.py` (Ctrl-C stops it).

`send_mail_handler` gets every `UserCreated`; `event_store` gets every event. A failing
handler's event is retried after the retry queue's TTL, up to max_retries, then dead-lettered.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: `examples` importable

from bus_runtime import RabbitMqConnector, RabbitMqEventConsumer
from examples.rabbitmq.handlers import ORGANIZATION, SERVICE, SUBSCRIBERS, event_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)

    consumer = RabbitMqEventConsumer(RabbitMqConnector(), ORGANIZATION, SERVICE, max_retries=5)
    consumer.consume(SUBSCRIBERS)
    consumer.consume_store(event_store)
    if args.seconds is None:
        consumer.run_forever()  # until SIGINT/SIGTERM, then finishes what it holds
        return 0
    consumer.start()
    time.sleep(args.seconds)
    consumer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
