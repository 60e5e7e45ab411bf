"""The transactional outbox: events are written with the state change, then relayed to Redis.

A use case that changes state adds its event in the same unit of work, so the event exists
if and only if the change committed:

    async with database.uow() as tx:
        tx.session.add(user_row)
        await add_event(tx.session, new_envelope("user.created", "user", event), schema="users")

Each service's first migration creates its outbox table (`create_table_op()` inside the
revision's `upgrade()`). `OutboxRelay` (one per replica, any number of replicas) moves unsent
rows to the Redis Stream `events.<source>` and marks them sent. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, so replicas never relay the same row at the same time; a row is
marked sent only after Redis accepted it, so a crash or a Redis outage re-sends instead of
losing (delivery is at least once; consumers deduplicate on the envelope id).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from google.protobuf.message import Message
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.events.v1 import envelope_pb2
from services.platform.db import Database
from services.platform.tasks import join

_log = logging.getLogger(__name__)

EventEnvelope = envelope_pb2.EventEnvelope

OUTBOX_TABLE: Final = "outbox"
# Stream entry fields; consumers (services.platform.events) read the same names.
FIELD_ID: Final = "id"
FIELD_TYPE: Final = "type"
FIELD_PAYLOAD: Final = "payload"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def stream_name(source: str) -> str:
    """The Redis Stream a service's events go to: `events.<source>` (e.g. events.user)."""
    return f"events.{source}"


def outbox_table(schema: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The outbox table of `schema` as SQLAlchemy Core metadata."""
    _check_schema(schema)
    if metadata is None:
        return _shared_table(schema)
    return _define_table(schema, metadata)


@functools.lru_cache(maxsize=64)
def _shared_table(schema: str) -> sa.Table:
    # One Table object per schema: SQLAlchemy caches compiled statements per Table, so a
    # fresh Table for every add_event would recompile the INSERT on every event written.
    return _define_table(schema, sa.MetaData())


def _define_table(schema: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        OUTBOX_TABLE,
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        # The serialized EventEnvelope, relayed byte for byte.
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        schema=schema,
    )


def create_table_op() -> None:
    """Create the outbox table; call from a migration's `upgrade()`.

    Unqualified: the migration runner points search_path at the service's schema.
    """
    from alembic import op  # only importable while Alembic runs a migration

    op.create_table(
        OUTBOX_TABLE,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The relay only ever scans unsent rows: a partial index keeps that scan tiny however
    # many sent rows are waiting to be purged.
    op.create_index(
        "outbox_unsent_idx",
        OUTBOX_TABLE,
        ["created_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_index("outbox_sent_at_idx", OUTBOX_TABLE, ["sent_at"])


def drop_table_op() -> None:
    """Drop the outbox table; call from a migration's `downgrade()`."""
    from alembic import op

    op.drop_table(OUTBOX_TABLE)


def new_envelope(
    event_type: str,
    source: str,
    payload: Message,
    *,
    traceparent: str = "",
    event_id: str | None = None,
    occur_time: datetime | None = None,
) -> EventEnvelope:
    """An envelope with a fresh UUID, now as occur_time and `payload` packed in an Any."""
    envelope = EventEnvelope(
        id=event_id or str(uuid.uuid4()), type=event_type, source=source, traceparent=traceparent
    )
    envelope.occur_time.FromDatetime(occur_time or datetime.now(UTC))
    envelope.payload.Pack(payload)
    return envelope


# The relays of this process, by schema: a commit that wrote an event wakes them at once
# instead of leaving the row for their next poll (the poll stays, for other processes' rows).
_relay_wakeups: dict[str, set[asyncio.Event]] = {}


async def add_event(session: AsyncSession, envelope: EventEnvelope, schema: str) -> None:
    """Insert `envelope` into `<schema>.outbox` within the session's current transaction."""
    if not envelope.id or not envelope.type:
        raise ValueError("an outbox event needs an id and a type")
    table = outbox_table(schema)
    await session.execute(
        sa.insert(table).values(
            id=uuid.UUID(envelope.id), type=envelope.type, payload=envelope.SerializeToString()
        )
    )
    flag = ("outbox.wakes_relays", schema)
    if _relay_wakeups.get(schema) and flag not in session.info:
        session.info[flag] = True
        wake = functools.partial(_wake_relays, schema)
        sa.event.listen(session.sync_session, "after_commit", wake)


def _wake_relays(schema: str, _session: object) -> None:
    # Runs on the event loop's thread (SQLAlchemy's async bridge), so setting is safe.
    for wakeup in _relay_wakeups.get(schema, ()):
        wakeup.set()


class OutboxRelay:
    """Moves unsent outbox rows of one schema to one Redis Stream, forever, safely in parallel.

    Each pass claims up to `batch_size` of the oldest unsent rows (`SKIP LOCKED`, so other
    replicas take other rows), XADDs them in one pipeline, marks them sent and commits. A
    full batch is followed at once by the next; otherwise the relay sleeps `poll_interval`.
    When Redis or PostgreSQL fails, it backs off exponentially (with jitter) up to
    `max_backoff` and rolls back, leaving the rows for the next attempt.
    """

    def __init__(
        self,
        database: Database,
        redis: Redis,
        schema: str,
        stream: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=1),
        stream_maxlen: int | None = None,
    ) -> None:
        _check_schema(schema)
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._database = database
        self._redis = redis
        self._schema = schema
        self._stream = stream
        self._table = outbox_table(schema)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._retention = retention
        # None: never trim. A trimmed entry a lagging consumer group had not read is lost,
        # so trimming is opt-in and should be far above any expected backlog.
        self._stream_maxlen = stream_maxlen
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()  # set by stop() and by commits that wrote an event
        self._task: asyncio.Task[None] | None = None

    async def relay_once(self) -> int:
        """One pass: relay up to `batch_size` rows; return how many were sent."""
        table = self._table
        self._wakeup.clear()  # a commit from now on is seen by this pass or wakes the next
        async with self._database.uow() as tx:
            rows = (
                await tx.session.execute(
                    sa.select(table.c.id, table.c.type, table.c.payload)
                    .where(table.c.sent_at.is_(None))
                    .order_by(table.c.created_at, table.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self._publish(rows)
            await tx.session.execute(
                sa.update(table)
                .where(table.c.id.in_([row.id for row in rows]))
                .values(sent_at=sa.func.now())
            )
        return len(rows)

    async def purge_sent(self) -> int:
        """Delete rows sent longer than `retention` ago; return how many."""
        cutoff = datetime.now(UTC) - self._retention
        async with self._database.uow() as tx:
            result = await tx.session.execute(
                sa.delete(self._table).where(self._table.c.sent_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _publish(self, rows: Sequence[sa.Row[Any]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for row in rows:
            fields: dict[Any, Any] = {
                FIELD_ID: str(row.id),
                FIELD_TYPE: row.type,
                FIELD_PAYLOAD: row.payload,
            }
            if self._stream_maxlen is None:
                pipe.xadd(self._stream, fields)
            else:
                pipe.xadd(self._stream, fields, maxlen=self._stream_maxlen, approximate=True)
        await pipe.execute()

    async def run(self) -> None:
        """Relay until `stop()`; failures are logged and retried, never raised."""
        failures = 0
        purge_every = 600.0
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + purge_every
        while not self._stopping.is_set():
            try:
                sent = await self.relay_once()
                if loop.time() >= next_purge:
                    next_purge = loop.time() + purge_every
                    await self.purge_sent()
            except (RedisError, OSError, OperationalError, DBAPIError) as error:
                failures += 1
                delay = min(self._max_backoff, self._poll_interval * 2**failures)
                delay *= random.uniform(0.5, 1.0)
                level = logging.WARNING if failures in (1, 10) or failures % 100 == 0 else 10
                _log.log(
                    level,
                    "outbox relay failed, backing off: %s",
                    type(error).__name__,
                    extra={"schema": self._schema, "stream": self._stream, "failures": failures},
                )
                await self._sleep(delay)
                continue
            if failures:
                _log.info("outbox relay recovered", extra={"schema": self._schema})
                failures = 0
            if sent < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval)

    def start(self) -> asyncio.Task[None]:
        """Run the relay in a background task (call `stop()` to end it)."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            _relay_wakeups.setdefault(self._schema, set()).add(self._wakeup)
            self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._schema}")
        return self._task

    async def stop(self) -> None:
        """End the loop after the current pass (its transaction commits or rolls back)."""
        self._stopping.set()
        self._wakeup.set()
        _relay_wakeups.get(self._schema, set()).discard(self._wakeup)
        task, self._task = self._task, None
        await join(task)

    async def _sleep(self, seconds: float) -> None:
        """A back-off: only stop() ends it early (commits must not hasten retries)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _check_schema(schema: str) -> None:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}")


__all__ = [
    "FIELD_ID",
    "FIELD_PAYLOAD",
    "FIELD_TYPE",
    "OUTBOX_TABLE",
    "EventEnvelope",
    "OutboxRelay",
    "add_event",
    "create_table_op",
    "drop_table_op",
    "new_envelope",
    "outbox_table",
    "stream_name",
]
