"""Async PostgreSQL access: one engine per process, one unit of work per use case.

Services build a `Database` in their composition root and write

    async with database.uow() as tx:
        tx.session.add(row)

The block commits when it exits normally and rolls back when anything (including
cancellation) escapes it, so a failed request never leaves a half write behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

ASYNC_DRIVER = "postgresql+psycopg"
# Driver names we accept and rewrite to psycopg 3. psycopg2/asyncpg are refused rather than
# silently swapped, because their URL options do not all mean the same thing.
_POSTGRES_DRIVERS = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


def to_psycopg_url(url: str | URL) -> URL:
    """Return `url` with the psycopg 3 driver, whatever PostgreSQL spelling it came in.

    Accepts `postgresql://`, `postgres://` and `postgresql+psycopg://`, including the
    unix-socket form `postgresql://postgres:@/postgres?host=/path/to/socket-dir`.
    psycopg picks its sync or async flavour from the engine type, so the same URL
    serves the async engine here and the sync one used for migrations.
    """
    parsed = make_url(url)
    if parsed.drivername not in _POSTGRES_DRIVERS:
        raise ValueError(
            f"unsupported database driver {parsed.drivername!r}: expected a postgresql:// URL"
        )
    return parsed.set(drivername=ASYNC_DRIVER)


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 10.0,
    connect_timeout: int = 5,
    application_name: str | None = None,
) -> AsyncEngine:
    """An async engine on psycopg 3 with a bounded pool.

    `pool_pre_ping` costs one round trip per checkout but turns a PostgreSQL restart into
    a transparent reconnect instead of one failed request per pooled connection.
    """
    connect_args: dict[str, object] = {"connect_timeout": connect_timeout}
    if application_name:
        connect_args["application_name"] = application_name
    return create_async_engine(
        to_psycopg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: rows read inside a unit of work stay usable after the commit
    # (to build the response) without an implicit, async-unsafe lazy reload.
    return async_sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """One transaction: commit on success, rollback on any exception, always close."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork.session is only available inside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("a UnitOfWork cannot be entered twice")
        self._session = self._sessions()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            if exc_type is None:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
            self._session = None


UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True, slots=True)
class Database:
    """The engine and the session factory of one process, and its unit-of-work factory."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(
        cls,
        url: str | URL,
        *,
        pool_size: int = 5,
        max_overflow: int = 5,
        application_name: str | None = None,
    ) -> Database:
        """Build the pool lazily: no connection is opened until the first query."""
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            application_name=application_name,
        )
        return cls(engine=engine, sessions=create_session_factory(engine))

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    async def dispose(self) -> None:
        await self.engine.dispose()


def keyset_page(
    statement: sa.Select[Any],
    time_column: sa.ColumnElement[datetime],
    id_column: sa.ColumnElement[Any],
    *,
    after: tuple[datetime, Any] | None,
    limit: int,
    newest_first: bool,
) -> sa.Select[Any]:
    """`statement` narrowed to the page after `after` on (time, id), ordered and limited.

    Keyset pagination (the cursor an AIP-158 page token carries): a page costs the same at
    any depth, and rows inserted meanwhile neither repeat nor skip a row.
    """
    if after is not None:
        key = sa.tuple_(time_column, id_column)
        cursor = sa.tuple_(
            sa.literal(after[0], time_column.type), sa.literal(after[1], id_column.type)
        )
        statement = statement.where(key < cursor if newest_first else key > cursor)
    if newest_first:
        return statement.order_by(time_column.desc(), id_column.desc()).limit(limit)
    return statement.order_by(time_column, id_column).limit(limit)
