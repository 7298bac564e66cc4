"""The management-API connection options and the client built from them."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from topology.urls import MANAGEMENT_URL_ENV as URL_ENV

if TYPE_CHECKING:  # the HTTP client (requests) is imported by the commands that connect, not by `plan --offline`
    from topology.broker.management import ManagementClient


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--management-url",
        metavar="URL",
        help=f"the management API (default: ${URL_ENV} or http://localhost:15672); several nodes "
        "comma-separated; a path is the management path prefix; credentials from the URL or "
        "$RABBITMQ_USER / $RABBITMQ_PASSWORD (default guest/guest)",
    )
    parser.add_argument("--ca-cert", metavar="FILE", help="verify the broker's HTTPS certificate with this CA bundle")
    parser.add_argument("--insecure", action="store_true", help="do not verify the broker's HTTPS certificate")


def client_from_args(args: argparse.Namespace, fallback_url: str | None = None) -> ManagementClient:
    """Flag, then environment, then `fallback_url` (a saved plan's broker), then localhost.

    Every URL is validated (topology.urls) before any request: a malformed one is an error
    naming where it came from, with its password masked.
    """
    if args.management_url is not None:
        url, source = args.management_url, "--management-url"
    elif os.environ.get(URL_ENV):
        url, source = os.environ[URL_ENV], URL_ENV
    elif fallback_url:
        url, source = fallback_url, "the saved plan's management_url"
    else:
        url, source = None, None
    from topology.broker.management import ManagementClient

    return ManagementClient.from_env(url, source=source, ca_cert=args.ca_cert, insecure=args.insecure)
