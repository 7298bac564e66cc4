"""What every command shares: exit codes, the spec arguments, reading the spec, writing output."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
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


def add_vhost_argument(parser: argparse.ArgumentParser) -> None:
    """--vhost, which `read_spec` applies (checked by `vhost_override`)."""
    parser.add_argument("--vhost", help="override the spec's vhost")


def read_spec(args: argparse.Namespace) -> Spec:
    """The spec, on the vhost --vhost names when the command has that option.

    A saved plan given where a spec is expected is named as such (never "invalid YAML").
    """
    _refuse_saved_plan(args.spec)
    spec = load_spec(args.spec, load_variables(args.var, args.var_file))
    vhost = vhost_override(args)
    return spec.model_copy(update={"vhost": vhost}) if vhost is not None else spec


def _refuse_saved_plan(path: str) -> None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the spec loader says why
    if not text.lstrip().startswith("{"):
        return  # a saved plan is a JSON object: its model is loaded only for one (validate starts faster)
    from topology.plan.saved import looks_like_saved_plan, parse_saved_plan

    if looks_like_saved_plan(text, path):
        parse_saved_plan(text, path)  # a broken plan: say what is wrong with it
        raise RabbitformError(f"{path} is a saved plan, not a spec: apply it with `rabbitform apply {path}`")


def vhost_override(args: argparse.Namespace) -> str | None:
    """--vhost, None when not given; an empty value is an error, never "the spec's vhost"
    (`--vhost "$UNSET"` must not apply to another vhost)."""
    vhost: str | None = getattr(args, "vhost", None)
    if vhost is None:
        return None
    if not vhost.strip():
        raise RabbitformError(f"--vhost is empty ({vhost!r}); name a vhost, or leave the option out to use the spec's")
    if vhost != vhost.strip() or any(ord(c) < 32 for c in vhost):
        raise RabbitformError(f"--vhost {vhost!r}: a vhost name has no leading/trailing spaces or control characters")
    return vhost


def confirm(verb: str, question: str | Callable[[], str], approved: bool) -> None:
    """Every command that changes the broker asks the same way: only 'yes' typed on a terminal goes
    ahead, or `approved` (--auto-approve). A callable `question` (a preview that reads the broker)
    is built only once a terminal can answer."""
    if approved:
        return
    if not sys.stdin.isatty():
        raise RabbitformError(f"refusing to {verb} without confirmation: stdin is not a terminal; pass --auto-approve")
    sys.stderr.write(question() if callable(question) else question)
    sys.stderr.write("Only 'yes' will be accepted to approve.\n\nEnter a value: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "yes":
        raise RabbitformError(f"{verb} cancelled: nothing was changed")


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
