"""Notification use cases: turn events into notifications; list, mark read, stream, settings.

Transport-free (no grpc import). `handle_event` is the stream consumer's handler: it commits
its own transaction and is idempotent on the event id (unique event_id + user_id), so the
consumer may acknowledge right after it returns and may safely deliver an event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from mesh.content.v1 import events_pb2 as content_events
from mesh.events.v1 import envelope_pb2
from mesh.notification.v1 import notification_pb2
from mesh.user.v1 import events_pb2 as user_events
from services.platform.db import Database
from services.platform.errors import InvalidArgument, NotFound
from services.platform.identity import Caller
from services.platform.pagination import PageTokenCodec, clamp_page_size

from .store import (
    NewNotification,
    NotificationRepository,
    NotificationTables,
    notification_from_row,
)

_log = logging.getLogger(__name__)

USER_CREATED: Final = "user.created"
COMMENT_CREATED: Final = "comment.created"
WELCOME = notification_pb2.NOTIFICATION_KIND_WELCOME
COMMENT = notification_pb2.NOTIFICATION_KIND_COMMENT
SETTINGS_FIELDS: Final = frozenset({"email_enabled"})


class LivePush(Protocol):
    """Where committed notifications go for open streams (LiveHub)."""

    ready: asyncio.Event
    draining: bool

    async def publish(self, notification: notification_pb2.Notification) -> None: ...

    def listen(
        self, user_id: str
    ) -> contextlib.AbstractContextManager[asyncio.Queue[notification_pb2.Notification | None]]: ...


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.for_field(field, "must be a UUID") from None


class NotificationService:
    def __init__(
        self,
        database: Database,
        tables: NotificationTables,
        live: LivePush,
        page_token_secret: bytes,
        *,
        email_enabled: bool = False,
        heartbeat_interval: float = 15.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._tables = tables
        self._live = live
        self._pages = PageTokenCodec(page_token_secret, scope="notification.ListNotifications")
        # False when no SMTP server is configured: no delivery rows are queued at all.
        self._email_enabled = email_enabled
        self._heartbeat_interval = heartbeat_interval
        self._clock = clock

    # --- events ----------------------------------------------------------------------

    async def handle_event(self, envelope: envelope_pb2.EventEnvelope) -> None:
        """Create the notification an event calls for (at most once per event and user)."""
        new, email = self._notification_for(envelope)
        now = self._clock()
        created = None
        async with self._database.uow() as tx:
            repo = NotificationRepository(tx.session, self._tables)
            if email is not None and new is not None:
                await repo.remember_email(new.user_id, email, now)
            if new is not None:
                row = await repo.insert(new, now)
                if row is not None:
                    created = notification_from_row(row)
                    await self._maybe_queue_email(repo, row, now)
        if created is not None:
            await self._live.publish(created)

    def _notification_for(
        self, envelope: envelope_pb2.EventEnvelope
    ) -> tuple[NewNotification | None, str | None]:
        event_id = uuid.UUID(envelope.id)
        if envelope.type == USER_CREATED:
            user = user_events.UserCreatedEvent()
            if not envelope.payload.Unpack(user):
                raise ValueError(f"{envelope.type} event with payload {envelope.payload.type_url}")
            name = user.display_name or "there"
            welcome = NewNotification(
                user_id=uuid.UUID(user.user_id),
                kind=WELCOME,
                title="Welcome to mesh!",
                body=f"Hi {name}, your account is ready.",
                event_id=event_id,
            )
            return welcome, user.email or None
        if envelope.type == COMMENT_CREATED:
            comment = content_events.CommentCreatedEvent()
            if not envelope.payload.Unpack(comment):
                raise ValueError(f"{envelope.type} event with payload {envelope.payload.type_url}")
            if comment.post_author_id == comment.comment_author_id:
                return None, None  # authors are not notified of their own comments
            return (
                NewNotification(
                    user_id=uuid.UUID(comment.post_author_id),
                    kind=COMMENT,
                    title=f"New comment on “{comment.post_title}”",
                    body=comment.body_preview,
                    event_id=event_id,
                    post_id=uuid.UUID(comment.post_id),
                    comment_id=uuid.UUID(comment.comment_id),
                ),
                None,
            )
        return None, None  # other events (post.published, ...) notify nobody yet

    async def _maybe_queue_email(
        self, repo: NotificationRepository, row: Any, now: datetime
    ) -> None:
        if not self._email_enabled:
            return
        settings = await repo.settings(row.user_id)
        if settings is None or not settings.email_enabled or not settings.email:
            return
        await repo.queue_email(row.id, settings.email, row.title, row.body, now)

    # --- reads and writes of the caller's notifications -----------------------------

    async def list_notifications(
        self, caller: Caller, *, page_size: int, page_token: str, unread_only: bool
    ) -> tuple[list[notification_pb2.Notification], str]:
        limit = clamp_page_size(page_size, default=50, maximum=100)
        arguments = {"user": caller.user_id, "unread_only": unread_only}
        cursor = self._pages.decode(page_token, arguments)
        after = None
        if cursor is not None:
            try:
                after = datetime.fromisoformat(str(cursor["t"])), uuid.UUID(str(cursor["id"]))
            except (KeyError, ValueError):
                raise InvalidArgument.for_field("page_token", "is malformed") from None
        async with self._database.uow() as tx:
            rows = await NotificationRepository(tx.session, self._tables).list_for_user(
                _uuid(caller.user_id, "caller"),
                unread_only=unread_only,
                after=after,
                limit=limit + 1,
            )
        token = ""
        if len(rows) > limit:
            last = rows[limit - 1]
            token = self._pages.encode(
                {"t": last.create_time.isoformat(), "id": str(last.id)}, arguments
            )
        return [notification_from_row(row) for row in rows[:limit]], token

    async def mark_read(
        self, caller: Caller, notification_id: str
    ) -> notification_pb2.Notification:
        key = _uuid(notification_id, "id")
        async with self._database.uow() as tx:
            row = await NotificationRepository(tx.session, self._tables).mark_read(
                _uuid(caller.user_id, "caller"), key
            )
        if row is None:
            raise NotFound("notification not found", reason="NOTIFICATION_NOT_FOUND")
        return notification_from_row(row)

    async def mark_all_read(self, caller: Caller) -> int:
        async with self._database.uow() as tx:
            return await NotificationRepository(tx.session, self._tables).mark_all_read(
                _uuid(caller.user_id, "caller")
            )

    async def unread_count(self, caller: Caller) -> int:
        async with self._database.uow() as tx:
            return await NotificationRepository(tx.session, self._tables).unread_count(
                _uuid(caller.user_id, "caller")
            )

    async def get_settings(self, caller: Caller) -> notification_pb2.NotificationSettings:
        async with self._database.uow() as tx:
            row = await NotificationRepository(tx.session, self._tables).settings(
                _uuid(caller.user_id, "caller")
            )
        return notification_pb2.NotificationSettings(email_enabled=bool(row and row.email_enabled))

    async def update_settings(
        self,
        caller: Caller,
        settings: notification_pb2.NotificationSettings,
        update_mask: Sequence[str],
    ) -> notification_pb2.NotificationSettings:
        unknown = sorted(set(update_mask) - SETTINGS_FIELDS)
        if unknown:
            raise InvalidArgument.for_field("update_mask", f"cannot update {', '.join(unknown)}")
        if update_mask and "email_enabled" not in update_mask:
            return await self.get_settings(caller)
        async with self._database.uow() as tx:
            row = await NotificationRepository(tx.session, self._tables).set_email_enabled(
                _uuid(caller.user_id, "caller"), settings.email_enabled, self._clock()
            )
        return notification_pb2.NotificationSettings(email_enabled=row.email_enabled)

    # --- live stream -----------------------------------------------------------------

    async def subscribe(
        self, caller: Caller
    ) -> AsyncIterator[notification_pb2.Notification | None]:
        """New notifications of the caller as they are committed; None is a heartbeat.

        The first item is a heartbeat sent once the subscription is in place, so a client
        knows from then on it misses nothing. Ends when the server drains.
        """
        if self._live.draining:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._live.ready.wait(), timeout=2.0)
        with self._live.listen(caller.user_id) as queue:
            yield None
            while not self._live.draining:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self._heartbeat_interval)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    return
                yield item
