"""Notification replicas on port 0 over a fresh schema, fed through real outboxes and relays.

Sign-ups are user.created rows written with the platform's outbox API to a user outbox of
the test's own, as the user service writes them, and moved by a real `OutboxRelay` (the
`relay` fixture). Comments come from a real content service and its relay (`content`).
Streams and pub/sub channels carry the test's schema name as a prefix, so tests sharing a
Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from mesh.notification.v1 import notification_service_pb2_grpc
from mesh.user.v1 import events_pb2 as user_events
from services.notification.bootstrap import MIGRATIONS, NotificationApp, bootstrap
from services.notification.email import SmtpConfig
from services.platform import outbox
from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.events import DEAD_LETTER_SUFFIX
from services.platform.migrations import run_migrations_async
from services.platform.server import create_server, shutdown
from services.platform.settings import Settings
from tests.content.conftest import ContentMesh, running_content
from tests.platform.servicer_fixture import AUDIENCE, ISSUER, SigningKey

PAGE_SECRET = "test-page-token-secret-0123456789abcdef"


@dataclass
class Replica:
    app: NotificationApp
    stub: notification_service_pb2_grpc.NotificationServiceAsyncStub
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    port: int


@dataclass
class Env:
    database: Database
    database_url: str
    redis_url: str
    schema: str
    user_schema: str
    keys: SigningKey
    prefix: str

    @property
    def user_stream(self) -> str:
        return f"{self.prefix}.events.user"

    @property
    def content_stream(self) -> str:
        return f"{self.prefix}.events.content"

    def auth(self, user_id: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys.token(user_id)}"),)

    def relay(self, redis: Redis, *, batch_size: int = 100) -> outbox.OutboxRelay:
        """A relay of the user outbox, as each user-service replica runs one."""
        return outbox.OutboxRelay(
            self.database,
            redis,
            self.user_schema,
            self.user_stream,
            batch_size=batch_size,
            poll_interval=0.05,
            max_backoff=0.3,
        )

    async def sign_up(self, user_id: str | None = None, email: str = "", name: str = "Ada") -> str:
        """A user signs up: user.created written to the user outbox, as the user service does."""
        return (await self.user_created(user_id, email, name)).user_id

    async def user_created(
        self, user_id: str | None = None, email: str = "", name: str = "Ada"
    ) -> user_events.UserCreatedEvent:
        user_id = user_id or str(uuid.uuid4())
        event = user_events.UserCreatedEvent(
            user_id=user_id, email=email or f"{user_id[:8]}@example.com", display_name=name
        )
        async with self.database.uow() as tx:
            await outbox.add_event(
                tx.session, outbox.new_envelope("user.created", "user", event), self.user_schema
            )
        return event

    async def sign_up_many(self, count: int) -> list[str]:
        """`count` sign-ups committed together (one transaction, as a bulk import would)."""
        users = [str(uuid.uuid4()) for _ in range(count)]
        async with self.database.uow() as tx:
            for user_id in users:
                event = user_events.UserCreatedEvent(
                    user_id=user_id, email=f"{user_id[:8]}@example.com", display_name="Bo"
                )
                envelope = outbox.new_envelope("user.created", "user", event)
                await outbox.add_event(tx.session, envelope, self.user_schema)
        return users

    async def count(self, where: str = "true") -> int:
        async with self.database.uow() as tx:
            result = await tx.session.execute(
                sa.text(f'SELECT count(*) FROM "{self.schema}".notifications WHERE {where}')  # noqa: S608
            )
            return int(result.scalar_one())

    @asynccontextmanager
    async def replica(
        self,
        *,
        consume: bool = True,
        smtp_port: int | None = None,
        claim_min_idle: float = 5.0,
        redis_url: str | None = None,
        group: str = "notification",
        consumer_name: str | None = None,
    ) -> AsyncIterator[Replica]:
        app = bootstrap(
            database=self.database,
            redis_url=redis_url or self.redis_url,
            page_token_secret=PAGE_SECRET.encode(),
            schema=self.schema,
            smtp=SmtpConfig("127.0.0.1", smtp_port) if smtp_port else None,
            heartbeat_interval=0.5,
            claim_min_idle=claim_min_idle,
            channel_prefix=f"{self.prefix}:live",
            streams=(self.user_stream, self.content_stream),
            group=group,
            consumer_name=consumer_name,
            email_poll_interval=0.05,
            email_base_backoff=0.1,
            consumer_block=0.2,  # stopping a replica waits at most this for its idle read
            consumer_max_backoff=0.5,  # back within half a second of Redis returning
        )
        app.hub.start()
        if consume:
            app.consumer.start()
        if app.email is not None:
            app.email.start()
        settings = Settings.from_env(
            "notification",
            {"PAGE_TOKEN_SECRET": PAGE_SECRET, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE},
        )
        server, port = await create_server(
            settings, [app.service], key_source=self.keys.key_source()
        )
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield Replica(
                app,
                notification_service_pb2_grpc.NotificationServiceStub(channel),
                server,
                channel,
                port,
            )
        finally:
            await channel.close(None)
            await shutdown(server, 0.5, draining=[app.hub.drain])
            await app.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def create_user_outbox(database_url: str, schema: str) -> None:
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            metadata = sa.MetaData()
            outbox.outbox_table(schema, metadata)
            metadata.create_all(connection)
    finally:
        engine.dispose()


@pytest.fixture
async def env(database_url: str, redis_url: str, unique_schema: str) -> AsyncIterator[Env]:
    user_schema = f"{unique_schema}_u"
    await run_migrations_async(database_url, unique_schema, MIGRATIONS)
    await asyncio.to_thread(create_user_outbox, database_url, user_schema)
    database = Database.connect(database_url, pool_size=8, max_overflow=8)
    environment = Env(
        database, database_url, redis_url, unique_schema, user_schema, SigningKey(), unique_schema
    )
    try:
        yield environment
    finally:
        async with database.uow() as tx:
            await tx.session.execute(sa.text(f'DROP SCHEMA IF EXISTS "{user_schema}" CASCADE'))
        await database.dispose()
        redis = create_redis(redis_url)
        try:  # the test's streams (and dead letters) in the shared Redis
            streams = (environment.user_stream, environment.content_stream)
            await redis.delete(*streams, *(s + DEAD_LETTER_SUFFIX for s in streams))
        finally:
            await redis.aclose()


@pytest.fixture
async def relay(env: Env) -> AsyncIterator[outbox.OutboxRelay]:
    """The user outbox relay, running: sign-ups reach the user stream."""
    redis = create_redis(env.redis_url)
    user_relay = env.relay(redis)
    user_relay.start()
    try:
        yield user_relay
    finally:
        await user_relay.stop()
        await redis.aclose()


@pytest.fixture
async def content(env: Env, relay: outbox.OutboxRelay) -> AsyncIterator[ContentMesh]:
    """A real content service whose relay feeds this test's content stream.

    Its token keys are the notification replicas' too, so one user id works on both.
    """
    async with running_content(
        env.database_url, env.redis_url, f"{env.schema}_c", stream=env.content_stream, keys=env.keys
    ) as mesh:
        mesh.app.relay.start()
        try:
            yield mesh
        finally:
            await mesh.app.relay.stop()
            async with env.database.uow() as tx:
                await tx.session.execute(sa.text(f'DROP SCHEMA IF EXISTS "{mesh.schema}" CASCADE'))
