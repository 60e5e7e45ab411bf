from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, MetaData, Table, Text, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateSchema

from services.platform.db import Database, UnitOfWork, create_engine, to_psycopg_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ],
)
def test_postgres_urls_get_the_psycopg_driver(url: str) -> None:
    parsed = to_psycopg_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.database) == ("127.0.0.1", 5432, "test")


def test_unix_socket_url_keeps_its_socket_directory() -> None:
    parsed = to_psycopg_url("postgresql://postgres:@/postgres?host=/srv/pg data")
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.host is None
    assert parsed.query["host"] == "/srv/pg data"
    assert parsed.username == "postgres"


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "postgresql+asyncpg://u@h/db"])
def test_other_drivers_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database driver"):
        to_psycopg_url(url)


async def test_engine_reaches_the_database(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0, application_name="db-test")
    try:
        async with engine.connect() as connection:
            name = await connection.scalar(text("SELECT current_setting('application_name')"))
        assert name == "db-test"
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.fixture
async def notes(database: Database, unique_schema: str) -> Table:
    """A fresh table `<schema>.notes` for unit-of-work tests."""
    table = Table("notes", MetaData(schema=unique_schema), Column("body", Text, primary_key=True))
    async with database.engine.begin() as connection:
        await connection.execute(CreateSchema(unique_schema))
        await connection.run_sync(table.metadata.create_all)
    return table


async def _bodies(database: Database, notes: Table) -> list[str]:
    async with database.uow() as tx:
        rows = await tx.session.scalars(select(notes.c.body).order_by(notes.c.body))
        return list(rows)


async def test_unit_of_work_commits_on_success(database: Database, notes: Table) -> None:
    async with database.uow() as tx:
        await tx.session.execute(insert(notes).values(body="kept"))
    assert await _bodies(database, notes) == ["kept"]


async def test_unit_of_work_rolls_back_on_exception(database: Database, notes: Table) -> None:
    async def write_then_fail() -> None:
        async with database.uow() as tx:
            await tx.session.execute(insert(notes).values(body="lost"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await _bodies(database, notes) == []


async def test_unit_of_work_rolls_back_on_cancellation(database: Database, notes: Table) -> None:
    inserted = asyncio.Event()

    async def write_then_hang() -> None:
        async with database.uow() as tx:
            await tx.session.execute(insert(notes).values(body="cancelled"))
            inserted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(write_then_hang())
    await asyncio.wait_for(inserted.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _bodies(database, notes) == []


async def test_failed_commit_propagates_and_releases_the_connection(
    database: Database, notes: Table
) -> None:
    async def write(body: str) -> None:
        async with database.uow() as tx:
            await tx.session.execute(insert(notes).values(body=body))

    await write("dup")
    for _ in range(6):  # more attempts than the pool has connections: none may leak
        with pytest.raises(IntegrityError, match="duplicate key"):
            await write("dup")
    assert await _bodies(database, notes) == ["dup"]


def test_sessions_do_not_expire_objects_on_commit(database: Database) -> None:
    # Rows loaded in a unit of work are used to build the response after the commit.
    assert database.sessions.kw["expire_on_commit"] is False


def test_session_is_only_available_inside_the_block(database: Database) -> None:
    uow = database.uow()
    assert isinstance(uow, UnitOfWork)
    with pytest.raises(RuntimeError, match="async with"):
        _ = uow.session
