"""Users in PostgreSQL (schema `users`) and the user cache in Redis.

Rows become the contract's `User` message right here: the proto is the domain model. A row
is *live* when it is neither deleted (`delete_time`) nor `pending` (a sign-up still waiting
for its credential); only live rows are ever read back to clients.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.user.v1 import user_pb2
from services.platform.db import keyset_page

ROLE_NAMES: Final[dict[int, str]] = {user_pb2.ROLE_USER: "user", user_pb2.ROLE_ADMIN: "admin"}
ROLES_BY_NAME: Final[dict[str, user_pb2.Role.ValueType]] = {
    "user": user_pb2.ROLE_USER,
    "admin": user_pb2.ROLE_ADMIN,
}


class UserTables:
    """The tables of one schema (`users` in production, a throwaway one in tests)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.users = sa.Table(
            "users",
            sa.MetaData(schema=schema),
            sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
            sa.Column("email", sa.Text, nullable=False),
            sa.Column("display_name", sa.Text, nullable=False),
            sa.Column("role", sa.Text, nullable=False),
            sa.Column("request_id", pg.UUID(as_uuid=False)),
            sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("delete_time", sa.DateTime(timezone=True)),
            sa.Column("pending", sa.Boolean, nullable=False),
        )


def user_from_row(row: Any) -> user_pb2.User:
    user = user_pb2.User(
        id=str(row.id),
        email=row.email,
        display_name=row.display_name,
        role=ROLES_BY_NAME.get(row.role, user_pb2.ROLE_UNSPECIFIED),
    )
    user.create_time.FromDatetime(row.create_time)
    user.update_time.FromDatetime(row.update_time)
    return user


class UserRepository:
    """Queries of one unit of work (one session, one transaction)."""

    def __init__(self, session: AsyncSession, tables: UserTables) -> None:
        self._session = session
        self._t = tables

    def _live(self) -> sa.ColumnElement[bool]:
        users = self._t.users
        return sa.and_(users.c.delete_time.is_(None), users.c.pending.is_(False))

    async def insert_pending(
        self,
        *,
        email: str,
        display_name: str,
        request_id: str | None,
        now: datetime,
    ) -> Any | None:
        """Reserves the email with a pending row; None when a non-deleted row holds it."""
        users = self._t.users
        statement = (
            pg_insert(users)
            .values(
                id=str(uuid.uuid4()),
                email=email,
                display_name=display_name,
                role="user",
                request_id=request_id,
                create_time=now,
                update_time=now,
                pending=True,
            )
            .on_conflict_do_nothing(
                index_elements=["email"], index_where=users.c.delete_time.is_(None)
            )
            .returning(*users.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def activate(self, user_id: str, now: datetime) -> Any | None:
        """Turns a pending row live; None when it is no longer pending (or gone)."""
        users = self._t.users
        statement = (
            sa.update(users)
            .where(users.c.id == user_id, users.c.pending.is_(True))
            .values(pending=False, create_time=now, update_time=now)
            .returning(*users.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def lock_pending(self, user_id: str) -> bool:
        """Locks the row of an unfinished sign-up; False when there is none."""
        users = self._t.users
        statement = (
            sa.select(users.c.id)
            .where(users.c.id == user_id, users.c.pending.is_(True))
            .with_for_update()
        )
        return (await self._session.execute(statement)).first() is not None

    async def backdate_pending(self, user_id: str, when: datetime) -> None:
        """Makes an abandoned sign-up look stale, so the next sign-up cleans it up."""
        users = self._t.users
        await self._session.execute(
            sa.update(users)
            .where(users.c.id == user_id, users.c.pending.is_(True))
            .values(create_time=when)
        )

    async def delete_pending(self, user_id: str) -> None:
        """Drops a sign-up that never finished (it was never visible to anyone)."""
        users = self._t.users
        await self._session.execute(
            sa.delete(users).where(users.c.id == user_id, users.c.pending.is_(True))
        )

    async def by_request(self, request_id: str) -> Any | None:
        users = self._t.users
        statement = sa.select(users).where(users.c.request_id == request_id)
        return (await self._session.execute(statement)).one_or_none()

    async def holder_of_email(self, email: str) -> Any | None:
        """The non-deleted row (live or pending) holding `email`, locked."""
        users = self._t.users
        statement = (
            sa.select(users)
            .where(users.c.email == email, users.c.delete_time.is_(None))
            .with_for_update()
        )
        return (await self._session.execute(statement)).one_or_none()

    async def lock_live_admins(self) -> list[str]:
        """Ids of every live admin, locked in id order, so that changes which could remove
        an admin take turns (two admins demoting each other at once would leave none)."""
        users = self._t.users
        statement = (
            sa.select(users.c.id)
            .where(users.c.role == "admin", self._live())
            .order_by(users.c.id)
            .with_for_update()
        )
        return [str(user_id) for user_id in (await self._session.execute(statement)).scalars()]

    async def get(self, user_id: str, *, for_update: bool = False) -> Any | None:
        """The live user, optionally locked for the rest of the transaction."""
        users = self._t.users
        statement = sa.select(users).where(users.c.id == user_id, self._live())
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.execute(statement)).one_or_none()

    async def get_by_email(self, email: str, *, for_update: bool = False) -> Any | None:
        users = self._t.users
        statement = sa.select(users).where(users.c.email == email, self._live())
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.execute(statement)).one_or_none()

    async def email_taken(self, email: str, user_id: str) -> bool:
        """True when another non-deleted row (live or pending) holds `email`."""
        users = self._t.users
        statement = sa.select(sa.literal(1)).where(
            users.c.email == email, users.c.delete_time.is_(None), users.c.id != user_id
        )
        return (await self._session.execute(statement)).first() is not None

    async def update(self, user_id: str, values: dict[str, Any], now: datetime) -> Any:
        users = self._t.users
        statement = (
            sa.update(users)
            .where(users.c.id == user_id)
            .values(**values, update_time=now)
            .returning(*users.c)
        )
        return (await self._session.execute(statement)).one()

    async def list(
        self,
        *,
        role: str | None,
        email_prefix: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Any]:
        """Live users, oldest first, keyset-paginated on (create_time, id)."""
        users = self._t.users
        statement = sa.select(users).where(self._live())
        if role is not None:
            statement = statement.where(users.c.role == role)
        if email_prefix:
            statement = statement.where(users.c.email.startswith(email_prefix, autoescape=True))
        statement = keyset_page(
            statement,
            users.c.create_time,
            users.c.id,
            after=after,
            limit=limit,
            newest_first=False,
        )
        return list((await self._session.execute(statement)).all())
