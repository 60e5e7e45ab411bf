"""Events are never lost and never doubled: dead consumers, a Redis outage, parallel replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.platform import outbox
from services.platform.cache import create_redis
from services.platform.embedded import EmbeddedRedis
from services.platform.events import DEAD_LETTER_SUFFIX, EventEnvelope, Handler, StreamConsumer
from tests.notification.conftest import Env, eventually
from tests.notification.helpers import all_acknowledged, arrived, listed

_log = logging.getLogger(__name__)
GROUP = "notification"  # the replicas' consumer group (conftest default)
CLAIM_MIN_IDLE = 0.3  # seconds before a pending entry counts as abandoned


class DyingConsumer(StreamConsumer):
    """A consumer that stops dead at `die_at` for the first event it receives.

    It then hangs until its task is cancelled, which is the test's kill: the entry was read
    (XREADGROUP) and, at "after_commit", its notification committed, but never acknowledged.
    """

    def __init__(
        self,
        redis: Redis,
        env: Env,
        handler: Handler,
        die_at: Literal["before_commit", "after_commit"],
    ) -> None:
        super().__init__(
            redis,
            [env.user_stream, env.content_stream],
            GROUP,
            self._handle,
            consumer="victim",
            claim_min_idle=CLAIM_MIN_IDLE,
        )
        self._real_handler = handler
        self._die_at = die_at
        self.dying = asyncio.Event()

    async def _handle(self, envelope: EventEnvelope) -> None:
        if self._die_at == "before_commit":
            await self._die()
        await self._real_handler(envelope)

    async def acknowledge(self, stream: str, entry_id: object) -> None:
        await self._die()

    async def _die(self) -> None:
        self.dying.set()
        await asyncio.Event().wait()  # until cancelled


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[Redis]:
    client = create_redis(url, socket_timeout=None)
    try:
        yield client
    finally:
        await client.aclose()


async def unsent(env: Env) -> int:
    async with env.database.uow() as tx:
        result = await tx.session.execute(
            sa.text(f'SELECT count(*) FROM "{env.user_schema}".outbox WHERE sent_at IS NULL')  # noqa: S608
        )
        return int(result.scalar_one())


@pytest.mark.parametrize(
    ("die_at", "restart_as"),
    [
        ("after_commit", "another replica"),
        ("before_commit", "another replica"),
        ("after_commit", "the same consumer"),
    ],
)
async def test_a_consumer_killed_before_ack_is_replaced_and_notifies_once(
    env: Env,
    relay: outbox.OutboxRelay,
    die_at: Literal["before_commit", "after_commit"],
    restart_as: str,
) -> None:
    async with env.replica(consume=False) as serving, redis_client(env.redis_url) as redis:
        victim = DyingConsumer(redis, env, serving.app.core.handle_event, die_at)
        task = victim.start()
        user = await env.sign_up()
        await asyncio.wait_for(victim.dying.wait(), 10)
        task.cancel()  # killed between XREADGROUP and XACK
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await env.count() == (1 if die_at == "after_commit" else 0)
        pending = await redis.xpending_range(env.user_stream, GROUP, min="-", max="+", count=10)
        assert [(p["consumer"], p["times_delivered"]) for p in pending] == [(b"victim", 1)]

        name = "victim" if restart_as == "the same consumer" else None
        async with env.replica(claim_min_idle=CLAIM_MIN_IDLE, consumer_name=name) as restarted:
            await arrived(restarted, env, user)

            await eventually(lambda: all_acknowledged(redis, env.user_stream))
            assert len(await listed(restarted, env, user)) == 1
        assert await env.count() == 1


async def test_sign_ups_during_a_redis_outage_are_all_welcomed(
    env: Env, stoppable_redis: EmbeddedRedis
) -> None:
    url = stoppable_redis.url
    users: list[str] = []
    signing_up = asyncio.Event()

    async def keep_signing_up() -> None:  # users keep coming, whatever Redis does
        while signing_up.is_set():
            users.append(await env.sign_up())
            await asyncio.sleep(0.01)

    async def signed_up(count: int) -> None:
        await eventually(lambda: _at_least(users, count))

    async with redis_client(url) as redis:
        user_relay = env.relay(redis)
        user_relay.start()
        try:
            # Claiming is far off: what the consumer had in hand must not wait for it.
            async with env.replica(redis_url=url, claim_min_idle=60) as replica:
                signing_up.set()
                writer = asyncio.create_task(keep_signing_up())
                try:
                    await signed_up(5)
                    await arrived(replica, env, users[0])  # the pipeline works
                    stoppable_redis.stop()
                    await signed_up(len(users) + 15)
                    # A relay pass fails now and rolls back: rows stay unsent, none is lost.
                    with pytest.raises((RedisError, OSError)):
                        await env.relay(redis).relay_once()
                    assert await unsent(env) >= 15
                    await asyncio.to_thread(stoppable_redis.start)
                    await signed_up(len(users) + 5)
                finally:
                    signing_up.clear()
                    await writer
                await eventually(lambda: _count_is(env, len(users)), within=20)
                for user in users:
                    assert len(await listed(replica, env, user)) == 1
        finally:
            await user_relay.stop()
    assert await unsent(env) == 0
    _log.info("%d sign-ups across the outage, each welcomed once", len(users))


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def test_two_relays_and_two_consumers_make_exactly_500_notifications(env: Env) -> None:
    async with (
        redis_client(env.redis_url) as redis_a,
        redis_client(env.redis_url) as redis_b,
        env.replica() as one,
        env.replica() as two,
    ):
        # Small batches so both relays keep taking turns on the rows (SKIP LOCKED).
        relays = [env.relay(redis_a, batch_size=20), env.relay(redis_b, batch_size=20)]
        for each in relays:
            each.start()
        try:
            for _ in range(10):  # written while the relays run
                await env.sign_up_many(50)
            await eventually(lambda: _count_is(env, 500), within=30)
        finally:
            for each in relays:
                await each.stop()
        # Each row went to the stream once, and each event made one notification.
        assert await redis_a.xlen(env.user_stream) == 500
        assert await env.count() == 500
        async with env.database.uow() as tx:
            distinct = (
                await tx.session.execute(
                    sa.text(f'SELECT count(DISTINCT user_id) FROM "{env.schema}".notifications')  # noqa: S608
                )
            ).scalar_one()
        assert distinct == 500
        # Acknowledged too (each XACK follows its commit by a moment).
        await eventually(lambda: all_acknowledged(redis_a, env.user_stream))
        # Both consumers joined the group; how the work split between them is luck.
        consumers = await redis_a.xinfo_consumers(env.user_stream, GROUP)
        names = {_text(c["name"]) for c in consumers}
        assert {one.app.consumer.consumer, two.app.consumer.consumer} <= names
        _log.info("consumers of the 500 events: %s", sorted(names))


async def _count_is(env: Env, expected: int) -> bool:
    return await env.count() == expected


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_a_failing_handler_is_retried_later_not_dead_lettered_in_a_burst(
    env: Env, relay: outbox.OutboxRelay
) -> None:
    attempts: list[str] = []

    async def database_down(envelope: EventEnvelope) -> None:
        attempts.append(envelope.id)
        raise RuntimeError("the database is unreachable")

    async with redis_client(env.redis_url) as redis:

        def consumer() -> StreamConsumer:
            return StreamConsumer(
                redis,
                [env.user_stream],
                GROUP,
                database_down,
                consumer="steady",
                block=0.2,
                claim_min_idle=60,
            )

        first = consumer()
        first.start()
        await env.sign_up()
        await eventually(lambda: _at_least(attempts, 1))
        await first.stop()
        # Restarted under the same name: its pending entry is retried once, not ten times
        # in a row until it lands in the dead-letter stream.
        second = consumer()
        second.start()
        await eventually(lambda: _at_least(attempts, 2))
        await second.stop()
        (entry,) = await redis.xpending_range(env.user_stream, GROUP, min="-", max="+", count=5)
        assert entry["times_delivered"] == 2
        assert len(attempts) == 2
        assert await redis.xlen(env.user_stream + DEAD_LETTER_SUFFIX) == 0
