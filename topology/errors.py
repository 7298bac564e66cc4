"""User-facing errors: the CLI prints their message (one clear line) and exits 1, no traceback."""

from __future__ import annotations


class RabbitformError(Exception):
    """A failure the user can act on; its message says what happened and what to check."""
