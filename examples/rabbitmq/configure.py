"""Create alice.petisco's exchanges and queues: `python examples/rabbitmq/configure.py`.

Uses RABBITMQ_URL (default amqp://guest:guest@localhost:5672/%2F) and RABBITMQ_MANAGEMENT_URL
(default http://localhost:15672). Creates what is missing, deletes nothing; the same topology
as `rabbitform apply specs/alice.yaml`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: `examples` importable

from bus_runtime import RabbitMqConnector, RabbitMqEventConfigurer
from examples.rabbitmq.handlers import ORGANIZATION, SERVICE, SUBSCRIBERS


def main() -> int:
    connector = RabbitMqConnector()
    configurer = RabbitMqEventConfigurer(connector, ORGANIZATION, SERVICE, retry_ttl=5000)
    result = configurer.configure_subscribers(SUBSCRIBERS, store=True)
    print(f"{result.summary_line} (vhost {connector.vhost!r}, management {configurer.management_url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
