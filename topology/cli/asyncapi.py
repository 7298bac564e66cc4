"""`rabbitform asyncapi SPEC`: the spec as an AsyncAPI 3.0 document (YAML or JSON)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from topology.cli.common import EXIT_OK, add_spec_arguments, read_spec, write_output
from topology.compile.asyncapi import asyncapi_document
from topology.errors import RabbitformError
from topology.urls import mask, parse_url


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "asyncapi",
        help="write the spec's events, commands and subscribers as an AsyncAPI 3.0 document",
        description="Channels per routing key and per subscriber queue, send/receive operations, AMQP bindings.",
    )
    add_spec_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format (default: yaml)")
    parser.add_argument(
        "--server", default="localhost:5672", metavar="HOST:PORT", help="the broker's address in the document"
    )
    parser.set_defaults(handler=cmd_asyncapi)


def cmd_asyncapi(args: argparse.Namespace) -> int:
    document = asyncapi_document(read_spec(args), server_host=server_address(args.server))
    if args.format == "json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    write_output(text, args.output)
    return EXIT_OK


def server_address(text: str) -> str:
    """`--server` as HOST:PORT only: the document is published, so credentials (or a URL that
    carries them) are refused, never written into it."""
    if "://" in text or "@" in text or "/" in text:
        raise RabbitformError(
            f"--server {mask(text)!r}: give HOST:PORT only (e.g. rabbit.internal:5672); "
            "the document is shared, so it never holds a user, password, scheme or vhost"
        )
    endpoint = parse_url(f"amqp://{text}", "amqp", "--server")
    return endpoint.netloc
