"""The management-API connection options and the client built from them."""

from __future__ import annotations

import argparse
import os

from topology.broker.management import URL_ENV, ManagementClient


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help=f"the management API (default: ${URL_ENV} or http://localhost:15672); "
        "credentials from the URL or $RABBITMQ_USER / $RABBITMQ_PASSWORD (default guest/guest)",
    )
    parser.add_argument("--ca-cert", metavar="FILE", help="verify the broker's HTTPS certificate with this CA bundle")
    parser.add_argument("--insecure", action="store_true", help="do not verify the broker's HTTPS certificate")


def client_from_args(args: argparse.Namespace, fallback_url: str | None = None) -> ManagementClient:
    """Flag, then environment, then `fallback_url` (a saved plan's broker), then localhost."""
    url = args.management_url or os.environ.get(URL_ENV) or fallback_url
    return ManagementClient.from_env(url, ca_cert=args.ca_cert, insecure=args.insecure)
