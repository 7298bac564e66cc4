"""What every command shares: exit codes, the spec arguments, reading the spec, writing output."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from topology.errors import RabbitformError
from topology.spec.loader import load_spec, load_variables
from topology.spec.model import Spec

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def add_spec_arguments(
    parser: argparse.ArgumentParser, metavar: str = "SPEC", help: str = "the spec file (YAML, rendered with jinja2)"
) -> None:
    parser.add_argument("spec", metavar=metavar, help=help)
    parser.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="a template variable (repeatable)"
    )
    parser.add_argument(
        "--var-file", action="append", default=[], metavar="FILE", help="a YAML file of template variables"
    )


def read_spec(args: argparse.Namespace) -> Spec:
    return load_spec(args.spec, load_variables(args.var, args.var_file))


def write_output(text: str, path: str | None) -> None:
    if path and path != "-":
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RabbitformError(f"{path}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


def use_color(args: argparse.Namespace) -> bool:
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()
