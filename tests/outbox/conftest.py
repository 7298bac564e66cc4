"""Real databases for the outbox tests: a SQLite file, and a fresh database per test on the
project's private PostgreSQL (scripts/postgres-up, 127.0.0.1:5433)."""

from __future__ import annotations

import gc
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")

import psycopg
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The private cluster's URL (started by scripts/postgres-up when it is not running)."""
    result = subprocess.run([str(ROOT / "scripts" / "postgres-up")], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"scripts/postgres-up failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh database owned by `rabbitform`, dropped afterwards."""
    name = f"rf_{uuid.uuid4().hex[:12]}"
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    with psycopg.connect(ADMIN.format(port=port), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER rabbitform')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        close_engines(name)
        with psycopg.connect(ADMIN.format(port=port), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def close_engines(database: str) -> None:
    """Close the pooled connections of the test's engines before its database is dropped (a
    connection the server cut would otherwise be closed, noisily, whenever it is collected)."""
    gc.collect()
    for engine in [o for o in gc.get_objects() if isinstance(o, Engine) and o.url.database == database]:
        engine.dispose()


def restart_postgres(postgres_url: str) -> None:
    """Restart the private cluster (fast shutdown: every connection is cut)."""
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    data = Path(f"/tmp/rabbitform-postgres-{port}/data")
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    log = data.parent / "server.log"
    command = [str(pg_ctl), "-D", str(data), "-l", str(log), "-m", "fast", "-w", "-t", "60", "restart"]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test on a SQLite file and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))
