"""The outbox relay against real PostgreSQL and Redis: a commit wakes the relay of its process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import StringValue
from redis.asyncio import Redis

from services.platform import outbox
from services.platform.cache import create_redis
from services.platform.db import Database

SLOW_POLL = 30.0  # far longer than any wait below: only the wake-up can explain a quick relay


async def _outbox_in(database: Database, schema: str) -> None:
    metadata = sa.MetaData()
    outbox.outbox_table(schema, metadata)
    async with database.engine.begin() as connection:
        await connection.execute(sa.schema.CreateSchema(schema))
        await connection.run_sync(metadata.create_all)


async def _write_event(database: Database, schema: str, text: str) -> str:
    envelope = outbox.new_envelope("test.happened", "test", StringValue(value=text))
    async with database.uow() as tx:
        await outbox.add_event(tx.session, envelope, schema=schema)
    return envelope.id


async def _entries(redis: Redis, stream: str, within: float) -> list[Any]:
    """The stream's entries once it has any (XREAD blocks server-side), or [] after `within`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found: Any = await redis.xread({stream: "0"}, block=300)
        if found:
            return list(found[0][1])
    return []


async def test_a_committed_event_wakes_the_relay_before_its_next_poll(
    database: Database, redis_url: str, unique_schema: str
) -> None:
    await _outbox_in(database, unique_schema)
    redis = create_redis(redis_url)
    stream = f"{unique_schema}.events"
    relay = outbox.OutboxRelay(database, redis, unique_schema, stream, poll_interval=SLOW_POLL)
    relay.start()
    try:
        await asyncio.sleep(0.2)  # the relay's first pass found nothing: it now sleeps 30 s
        started = time.monotonic()
        event_id = await _write_event(database, unique_schema, "hello")
        entries = await _entries(redis, stream, within=SLOW_POLL / 3)
        assert entries, "the relay was not woken by the commit"
        assert time.monotonic() - started < SLOW_POLL / 3
        ((_, fields),) = entries
        assert fields[outbox.FIELD_ID.encode()].decode() == event_id
    finally:
        await relay.stop()
        await redis.delete(stream)
        await redis.aclose()


async def test_a_rolled_back_event_is_never_relayed(
    database: Database, redis_url: str, unique_schema: str
) -> None:
    await _outbox_in(database, unique_schema)
    redis = create_redis(redis_url)
    stream = f"{unique_schema}.events"
    relay = outbox.OutboxRelay(database, redis, unique_schema, stream, poll_interval=0.05)
    relay.start()
    try:
        envelope = outbox.new_envelope("test.happened", "test", StringValue(value="no"))
        try:
            async with database.uow() as tx:
                await outbox.add_event(tx.session, envelope, schema=unique_schema)
                raise RuntimeError("the use case failed after writing its event")
        except RuntimeError:
            pass
        kept = await _write_event(database, unique_schema, "yes")
        assert await _entries(redis, stream, within=10)
        await asyncio.sleep(0.2)  # a few more polls: nothing else arrives
        entries: Any = await redis.xrange(stream)
        assert [fields[outbox.FIELD_ID.encode()].decode() for _, fields in entries] == [kept]
    finally:
        await relay.stop()
        await redis.delete(stream)
        await redis.aclose()
