"""Notifications, settings and email deliveries in PostgreSQL (schema `notification`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.notification.v1 import notification_pb2
from services.platform.db import keyset_page


class NotificationTables:
    def __init__(self, schema: str) -> None:
        self.schema = schema
        metadata = sa.MetaData(schema=schema)
        self.notifications = sa.Table(
            "notifications",
            metadata,
            sa.Column("id", sa.Uuid, primary_key=True),
            sa.Column("user_id", sa.Uuid, nullable=False),
            sa.Column("kind", sa.SmallInteger, nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("read", sa.Boolean, nullable=False),
            sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("event_id", sa.Uuid, nullable=False),
            sa.Column("post_id", sa.Uuid),
            sa.Column("comment_id", sa.Uuid),
        )
        self.settings = sa.Table(
            "notification_settings",
            metadata,
            sa.Column("user_id", sa.Uuid, primary_key=True),
            sa.Column("email", sa.Text),
            sa.Column("email_enabled", sa.Boolean, nullable=False),
            sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        )
        self.emails = sa.Table(
            "email_deliveries",
            metadata,
            sa.Column("notification_id", sa.Uuid, primary_key=True),
            sa.Column("to_address", sa.Text, nullable=False),
            sa.Column("subject", sa.Text, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("sent_at", sa.DateTime(timezone=True)),
            sa.Column("last_error", sa.Text),
        )


def notification_from_row(row: Any) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        id=str(row.id),
        user_id=str(row.user_id),
        kind=row.kind,
        title=row.title,
        body=row.body,
        read=row.read,
        event_id=str(row.event_id),
        post_id=str(row.post_id) if row.post_id else "",
        comment_id=str(row.comment_id) if row.comment_id else "",
    )
    message.create_time.FromDatetime(row.create_time)
    return message


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: uuid.UUID
    kind: int
    title: str
    body: str
    event_id: uuid.UUID
    post_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class EmailJob:
    notification_id: uuid.UUID
    to_address: str
    subject: str
    body: str
    attempts: int


class NotificationRepository:
    def __init__(self, session: AsyncSession, tables: NotificationTables) -> None:
        self._session = session
        self._t = tables

    async def insert(self, new: NewNotification, now: datetime) -> Any | None:
        """The new row, or None when this event already notified this user."""
        table = self._t.notifications
        statement = (
            pg_insert(table)
            .values(
                id=uuid.uuid4(),
                user_id=new.user_id,
                kind=new.kind,
                title=new.title,
                body=new.body,
                read=False,
                create_time=now,
                event_id=new.event_id,
                post_id=new.post_id,
                comment_id=new.comment_id,
            )
            .on_conflict_do_nothing(index_elements=["event_id", "user_id"])
            .returning(*table.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def list_for_user(
        self,
        user_id: uuid.UUID,
        *,
        unread_only: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Any]:
        table = self._t.notifications
        statement = sa.select(table).where(table.c.user_id == user_id)
        if unread_only:
            statement = statement.where(table.c.read.is_(False))
        statement = keyset_page(
            statement,
            table.c.create_time,
            table.c.id,
            after=after,
            limit=limit,
            newest_first=True,
        )
        return list((await self._session.execute(statement)).all())

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Any | None:
        table = self._t.notifications
        statement = (
            sa.update(table)
            .where(table.c.id == notification_id, table.c.user_id == user_id)
            .values(read=True)
            .returning(*table.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        table = self._t.notifications
        result = await self._session.execute(
            sa.update(table)
            .where(table.c.user_id == user_id, table.c.read.is_(False))
            .values(read=True)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def unread_count(self, user_id: uuid.UUID) -> int:
        table = self._t.notifications
        statement = sa.select(sa.func.count()).where(
            table.c.user_id == user_id, table.c.read.is_(False)
        )
        return int((await self._session.execute(statement)).scalar_one())

    # --- settings ------------------------------------------------------------------------

    async def settings(self, user_id: uuid.UUID) -> Any | None:
        table = self._t.settings
        statement = sa.select(table).where(table.c.user_id == user_id)
        return (await self._session.execute(statement)).one_or_none()

    async def remember_email(self, user_id: uuid.UUID, email: str, now: datetime) -> None:
        table = self._t.settings
        statement = pg_insert(table).values(
            user_id=user_id, email=email, email_enabled=False, update_time=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["user_id"], set_={"email": statement.excluded.email}
        )
        await self._session.execute(statement)

    async def set_email_enabled(self, user_id: uuid.UUID, enabled: bool, now: datetime) -> Any:
        table = self._t.settings
        statement = pg_insert(table).values(
            user_id=user_id, email=None, email_enabled=enabled, update_time=now
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"email_enabled": enabled, "update_time": now},
        ).returning(*table.c)
        return (await self._session.execute(upsert)).one()

    # --- email deliveries ----------------------------------------------------------------

    async def queue_email(
        self, notification_id: uuid.UUID, to_address: str, subject: str, body: str, now: datetime
    ) -> None:
        await self._session.execute(
            sa.insert(self._t.emails).values(
                notification_id=notification_id,
                to_address=to_address,
                subject=subject,
                body=body,
                attempts=0,
                next_attempt_at=now,
            )
        )

    async def lease_due_emails(self, now: datetime, lease: timedelta, limit: int) -> list[EmailJob]:
        """Claim due deliveries for `lease` (other replicas skip them meanwhile)."""
        table = self._t.emails
        due = (
            sa.select(table.c.notification_id)
            .where(table.c.sent_at.is_(None), table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            sa.update(table)
            .where(table.c.notification_id.in_(due))
            .values(next_attempt_at=now + lease, attempts=table.c.attempts + 1)
            .returning(
                table.c.notification_id,
                table.c.to_address,
                table.c.subject,
                table.c.body,
                table.c.attempts,
            )
        )
        rows = (await self._session.execute(statement)).all()
        return [
            EmailJob(r.notification_id, r.to_address, r.subject, r.body, r.attempts) for r in rows
        ]

    async def email_sent(self, notification_id: uuid.UUID, now: datetime) -> None:
        table = self._t.emails
        await self._session.execute(
            sa.update(table)
            .where(table.c.notification_id == notification_id)
            .values(sent_at=now, last_error=None)
        )

    async def email_failed(
        self, notification_id: uuid.UUID, error: str, retry_at: datetime
    ) -> None:
        """Record the failure and schedule the next attempt (far future = given up)."""
        table = self._t.emails
        await self._session.execute(
            sa.update(table)
            .where(table.c.notification_id == notification_id)
            .values(last_error=error[:500], next_attempt_at=retry_at)
        )
