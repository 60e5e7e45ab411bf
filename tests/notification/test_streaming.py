"""SubscribeNotifications: live push, across replicas, heartbeats, clean end on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
import grpc.aio

from mesh.notification.v1 import notification_service_pb2 as pb
from mesh.notification.v1 import notification_service_pb2_grpc
from services.platform import outbox
from services.platform.cache import create_redis
from services.platform.server import shutdown
from tests.content.conftest import ContentMesh, new_user
from tests.content.test_comments import comment
from tests.content.test_posts import create
from tests.notification.conftest import Env, Replica

_log = logging.getLogger(__name__)
Stream = grpc.aio.UnaryStreamCall[
    pb.SubscribeNotificationsRequest, pb.SubscribeNotificationsResponse
]
TIMEOUT = 10.0  # generous: a bound on a hang, not a performance target


@asynccontextmanager
async def subscribed(replica: Replica, env: Env, user_id: str) -> AsyncIterator[Stream]:
    """An open stream, returned once its first heartbeat says the subscription is in place."""
    call: Stream = replica.stub.SubscribeNotifications(
        pb.SubscribeNotificationsRequest(), metadata=env.auth(user_id)
    )
    try:
        first = await read(call)
        assert first is not None
        assert first.WhichOneof("event") == "heartbeat"
        yield call
    finally:
        call.cancel()


async def read(call: Stream) -> pb.SubscribeNotificationsResponse | None:
    """The next message, or None once the stream has ended (grpc.aio's EOF)."""
    message = await asyncio.wait_for(call.read(), TIMEOUT)
    return message if isinstance(message, pb.SubscribeNotificationsResponse) else None


async def next_notification(call: Stream) -> pb.SubscribeNotificationsResponse:
    """The next notification on the stream, skipping heartbeats (which never stop)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await read(call)
            assert message is not None, "the stream ended"
            if message.WhichOneof("event") == "notification":
                return message


async def test_a_comment_is_pushed_to_the_authors_open_stream(
    env: Env, content: ContentMesh, record_property: Callable[[str, object], None]
) -> None:
    author, reader = new_user(), new_user()
    async with env.replica() as replica:
        post = await create(content, author)
        async with subscribed(replica, env, author) as stream:
            started = time.monotonic()
            created = await comment(content, post.id, reader)
            pushed = await next_notification(stream)
            latency = time.monotonic() - started
    # Comment RPC → outbox → relay → stream → consumer → commit → pub/sub → this stream.
    _log.info("comment to live notification: %.0f ms", latency * 1000)
    record_property("comment_to_push_ms", round(latency * 1000))
    assert pushed.notification.comment_id == created.id
    assert pushed.notification.user_id == author


async def test_a_subscriber_on_one_replica_gets_what_another_processed(
    env: Env, relay: outbox.OutboxRelay
) -> None:
    user = str(uuid.uuid4())
    # `serving` consumes no events at all: whatever reaches its stream was processed elsewhere.
    async with (
        env.replica(consume=False) as serving,
        env.replica() as processing,
        subscribed(serving, env, user) as far,
        subscribed(processing, env, user) as near,
        subscribed(serving, env, str(uuid.uuid4())) as someone_else,
    ):
        await env.sign_up(user)
        on_far, on_near = await asyncio.gather(next_notification(far), next_notification(near))
        assert on_far.notification == on_near.notification
        assert on_far.notification.user_id == user
        # Another user's stream on the same replica got heartbeats only.
        other = await read(someone_else)
        assert other is not None
        assert other.WhichOneof("event") == "heartbeat"


async def test_idle_streams_get_heartbeats(env: Env) -> None:
    async with (
        env.replica(consume=False) as replica,
        subscribed(replica, env, new_user()) as stream,
    ):
        # The replicas of these tests beat every 0.5 s; three beats prove it repeats.
        for _ in range(3):
            message = await read(stream)
            assert message is not None
            assert message.WhichOneof("event") == "heartbeat"


async def test_streams_end_cleanly_when_the_server_shuts_down(env: Env) -> None:
    # A channel of the test's own: the replica's is closed before its server stops.
    async with (
        env.replica(consume=False) as replica,
        grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as channel,
    ):
        stub = notification_service_pb2_grpc.NotificationServiceStub(channel)
        call: Stream = stub.SubscribeNotifications(
            pb.SubscribeNotificationsRequest(), metadata=env.auth(new_user())
        )
        first = await read(call)
        assert first is not None
        assert first.HasField("heartbeat")
        stopping = asyncio.create_task(
            shutdown(replica.server, 5.0, draining=[replica.app.hub.drain])
        )
        rest = []
        async with asyncio.timeout(TIMEOUT):
            while (message := await read(call)) is not None:
                rest.append(message)
        assert all(m.HasField("heartbeat") for m in rest)
        assert await call.code() == grpc.StatusCode.OK  # ended, not cancelled or failed
        await asyncio.wait_for(stopping, TIMEOUT)


async def test_a_stray_message_on_the_live_channel_does_not_stop_the_push(
    env: Env, relay: outbox.OutboxRelay
) -> None:
    user = str(uuid.uuid4())
    redis = create_redis(env.redis_url)
    try:
        async with env.replica() as replica, subscribed(replica, env, user) as stream:
            await redis.publish(replica.app.hub.channel(user), b"\xff\x00 not a notification")
            await env.sign_up(user)
            pushed = await next_notification(stream)
            assert pushed.notification.user_id == user
    finally:
        await redis.aclose()
