"""Publish `UserCreated` events: `python examples/rabbitmq/publish.py [--count N]`.

Every event is persistent and confirmed by the broker before `publish` returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere: `examples` importable

from bus_runtime import InfoId, RabbitMqConnector, RabbitMqEventBus
from examples.rabbitmq.handlers import ORGANIZATION, SERVICE, UserCreated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1, help="events to publish as one batch (default 1)")
    args = parser.parse_args(argv)

    with RabbitMqEventBus(RabbitMqConnector(), ORGANIZATION, SERVICE) as bus:
        event = UserCreated(user_id="42").add_info_id(InfoId(user_id="42", correlation_id="c-1"))
        bus.publish(event)  # returns once the broker confirmed it
        print(f"published {event.message_type} {event.id} for user 42")
        if args.count > 1:
            batch = [UserCreated(user_id=str(n)) for n in range(args.count - 1)]
            start = time.perf_counter()
            bus.publish(batch)  # one batch, many in flight, every one confirmed
            elapsed = time.perf_counter() - start
            print(f"published {len(batch)} more in {elapsed:.2f} s ({len(batch) / elapsed:,.0f} events/s, confirmed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
