"""Shared fixtures: real PostgreSQL and Redis for every test.

With DATABASE_URL / REDIS_URL set (CI services, a local install) the tests use those; unset,
the session starts an embedded PostgreSQL and Redis in its temporary directory and stops
them at the end. Tests isolate themselves with a fresh schema (`unique_schema`) or a
unique key prefix (`unique_name`), so runs against a shared server never collide.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.platform.db import Database
from services.platform.embedded import EmbeddedRedis, ensure_postgres, ensure_redis, stop_postgres


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL URL (plain `postgresql://`, psycopg/libpq syntax)."""
    from_env = os.environ.get("DATABASE_URL")
    if from_env:
        yield from_env
        return
    # A directory of our own, not pytest's basetemp: see `embedded_postgres_root`.
    with embedded_postgres_root() as root:
        yield ensure_postgres(root / "postgres")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from_env = os.environ.get("REDIS_URL")
    if from_env:
        yield from_env
        return
    server = ensure_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@contextlib.contextmanager
def embedded_postgres_root() -> Iterator[Path]:
    """A fresh directory for an embedded PostgreSQL, whose server is stopped and data removed.

    Not under pytest's tmp_path: as root, PostgreSQL runs as a separate user, and each new
    pytest session (another terminal, a concurrent run) resets /tmp/pytest-of-<user> to
    0700, which would lock that user out of its own data directory mid-run.
    """
    root = Path(tempfile.mkdtemp(prefix="mesh-test-"))
    try:
        yield root
    finally:
        for data_dir in root.iterdir():
            if (data_dir / "PG_VERSION").exists():
                stop_postgres(data_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def unique_name() -> str:
    """A short lower_snake name no other test (or test run) uses: schemas, key prefixes."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_schema(database_url: str, unique_name: str) -> Iterator[str]:
    """The name of a schema that does not exist yet; dropped (if created) after the test."""
    yield unique_name
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(unique_name))
        )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """An async engine + unit-of-work factory on the test database, disposed after the test."""
    db = Database.connect(database_url, pool_size=2, max_overflow=2)
    yield db
    await db.dispose()


@pytest.fixture
def stoppable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own on a TCP port, for fault tests that stop and restart it.

    Always embedded (even when REDIS_URL is set): stopping a shared server would break
    every other test.
    """
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-fault"), port=0).start()
    yield server
    server.stop()
