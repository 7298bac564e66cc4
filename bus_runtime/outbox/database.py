"""One engine per database URL, with the settings the outbox and the inbox rely on.

`postgresql://` picks psycopg 3 (`topology.urls.database_url`); SQLite in memory (`sqlite://`)
shares one connection across threads so a test's service, relay and consumer see one database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from bus_runtime.errors import BusError
from topology.errors import RabbitformError
from topology.urls import database_url, mask, mask_text

UrlOrEngine = str | Engine


def engine_of(url_or_engine: UrlOrEngine, source: str = "the database URL") -> Engine:
    """An engine for a URL (validated, driver chosen), or the caller's own engine as it is."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    url = database_url(url_or_engine, source)
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif url.startswith("sqlite"):
        # a connection may serve an async handler's transaction from more than one thread
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    else:
        # pre-ping: a connection the server cut (a restart) is replaced on checkout, so the
        # service's next transaction does not fail for it (a round trip per checkout)
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_settings)
    return engine


def _sqlite_settings(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA busy_timeout = 30000")  # wait for the relay's or a handler's write
    cursor.close()


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database; None in memory (or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return None if not database or database == ":memory:" else Path(database)


def shown(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return mask(engine.url.render_as_string(hide_password=False))


def require_sqlalchemy() -> None:
    """A clear error when the extra is missing (the CLI checks before loading this package)."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:  # pragma: no cover - exercised where the extra is absent
        raise BusError("the outbox needs SQLAlchemy: pip install 'rabbitform[outbox]'") from None


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database that does not answer, or lacks the tables, as one line naming the URL (masked)."""
    try:
        yield
    except DBAPIError as exc:
        origin = str(exc.orig).strip()
        detail = mask_text(origin.splitlines()[0] if origin else type(exc.orig).__name__)
        if "rabbitform_outbox" in detail or "rabbitform_inbox" in detail:  # the table is missing
            raise RabbitformError(
                f"{mask(url)}: {detail}; create the tables with `rabbitform outbox init --database-url URL`"
            ) from None
        raise RabbitformError(
            f"cannot use the database {mask(url)}: {detail}; check the URL and that it runs"
        ) from None
