"""The outbox's command-line boundaries: database URLs and handlers that take a session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topology.cli.main import main
from topology.urls import UrlError, database_url

SPEC = """
organization: shop
services:
  orders:
    events:
      OrderPlaced:
        subscribers:
          bill_order_handler:
            handler: examples.outbox.billing:bill_order_handler
"""


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("postgresql://u:p@127.0.0.1:5433/db", "postgresql+psycopg://u:p@127.0.0.1:5433/db"),
        ("postgres://u:p@localhost/db", "postgresql+psycopg://u:p@localhost/db"),
        ("sqlite:///orders.db", "sqlite:///orders.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_database_urls_pick_the_driver(given_url: str, expected: str) -> None:
    assert database_url(given_url) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="@/:#?%", min_codepoint=33, max_codepoint=126), min_size=6))
def test_a_bad_database_url_never_shows_its_password(password: str) -> None:
    for url in (f"mysql://user:{password}@host/db", f"postgresql://user:{password}@host:99999/db"):
        with pytest.raises(UrlError) as caught:
            database_url(url)
        assert password not in str(caught.value)


def test_consume_refuses_a_session_handler_without_an_inbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "shop.yaml"
    spec.write_text(SPEC)
    assert main(["consume", str(spec), "--url", "amqp://guest:guest@127.0.0.1:1/"]) == 1
    error = capsys.readouterr().err
    assert "bill_order_handler take a `session`: pass --inbox-database-url" in error


def test_relay_needs_the_outbox_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["relay", "--database-url", url]) == 1
    assert "no such table: rabbitform_outbox; create the tables with `rabbitform outbox init" in capsys.readouterr().err
    assert main(["outbox", "init", "--database-url", url]) == 0
    assert "outbox and inbox tables ready" in capsys.readouterr().out


def test_neither_the_runtime_nor_the_cli_loads_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bus_runtime\n"
        "from topology.cli.main import build_parser\n"
        "build_parser()\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
