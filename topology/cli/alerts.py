"""`rabbitform alerts SPEC`: Prometheus alerting rules for the spec's bus. No network."""

from __future__ import annotations

import argparse
from typing import Any

from topology.alerts import BROKER_METRICS, Thresholds, alert_rules, render_rules
from topology.cli.common import EXIT_OK, add_spec_arguments, add_vhost_argument, read_spec, write_output
from topology.errors import RabbitformError

_DEFAULTS = Thresholds()


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "alerts",
        help="write Prometheus alerting rules for the spec's bus",
        description="Rules from the broker's per-queue metrics (rabbitmq_prometheus) and the runtime's metrics. "
        "Check them with `promtool check rules FILE`.",
    )
    add_spec_arguments(parser)
    add_vhost_argument(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--broker-metrics",
        choices=sorted(BROKER_METRICS),
        default="detailed",
        help="per-queue broker metrics from /metrics/detailed (rabbitmq_detailed_queue_*, default) "
        "or /metrics/per-object (rabbitmq_queue_*)",
    )
    threshold = parser.add_argument_group("thresholds (durations like 30s, 5m, 1h)")
    for name, kind, text in (
        ("dead_letters", int, "dead letters allowed per queue"),
        ("dead_letters_for", str, "for how long before alerting"),
        ("growth_window", str, "window over which growing dead letters alert"),
        ("oldest_age", str, "age of the oldest dead letter that alerts"),
        ("no_consumer_for", str, "how long a subscriber queue may have no consumer"),
        ("retry_rate", float, "retries per second per subscriber that alert"),
        ("circuit_open_for", str, "how long a circuit breaker may stay open"),
        ("reconnects", int, "reconnects allowed per window"),
        ("reconnect_window", str, "the reconnect window"),
    ):
        threshold.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=getattr(_DEFAULTS, name),
            help=f"{text} (default %(default)s)",
        )
    parser.set_defaults(handler=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    spec = read_spec(args)
    try:
        thresholds = Thresholds(**{name: getattr(args, name) for name in Thresholds.__dataclass_fields__})
    except ValueError as exc:
        raise RabbitformError(f"--{str(exc).replace('_', '-')}") from None
    header = f"# Prometheus alerting rules for {args.spec} (vhost {spec.vhost}), written by `rabbitform alerts`.\n"
    write_output(render_rules(alert_rules(spec, thresholds, args.broker_metrics), header), args.output)
    return EXIT_OK
