"""Cache-aside reads in Redis: filled on read, invalidated on write, PostgreSQL when Redis dies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.protobuf import field_mask_pb2
from redis.asyncio import Redis

from mesh.user.v1 import user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from services.platform.embedded import EmbeddedRedis
from tests.auth.harness import RunningAuth
from tests.user.harness import RunningUsers, running_users


def _rename(name: str) -> pb.UpdateUserRequest:
    return pb.UpdateUserRequest(
        user=user_pb2.User(id="me", display_name=name),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )


async def test_reads_fill_the_cache_with_proto_bytes_and_writes_clear_it(
    users: RunningUsers, redis_url: str
) -> None:
    user, auth = await users.member("Ada")
    key = f"{users.schema}:user:{user.id}"
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.get(key) is None
        await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)
        cached = await redis.get(key)
        assert isinstance(cached, bytes)
        assert user_pb2.User.FromString(cached) == user
        assert 0 < await redis.pttl(key) <= 5 * 60 * 1000

        await users.stub.UpdateUser(_rename("Countess"), metadata=auth, timeout=5)
        assert await redis.get(key) is None
        read = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)
        assert read.user.display_name == "Countess"
        refreshed = await redis.get(key)
        assert isinstance(refreshed, bytes)
        assert user_pb2.User.FromString(refreshed).display_name == "Countess"
    finally:
        await redis.aclose()


@pytest.fixture
async def users_on_stoppable_redis(
    database_url: str, unique_schema: str, auth: RunningAuth, stoppable_redis: EmbeddedRedis
) -> AsyncIterator[RunningUsers]:
    async with running_users(database_url, stoppable_redis.url, unique_schema, auth) as running:
        yield running


async def test_reads_and_writes_keep_working_while_redis_is_down(
    users_on_stoppable_redis: RunningUsers, stoppable_redis: EmbeddedRedis
) -> None:
    users = users_on_stoppable_redis
    user, auth = await users.member("Ada")
    get = pb.GetUserRequest(id="me")
    await users.stub.GetUser(get, metadata=auth, timeout=5)  # cached in Redis

    stoppable_redis.stop(graceful=False)
    served = await users.stub.GetUser(get, metadata=auth, timeout=5)
    assert served.user == user
    await users.stub.UpdateUser(_rename("Offline"), metadata=auth, timeout=5)
    read = await users.stub.GetUser(get, metadata=auth, timeout=5)
    assert read.user.display_name == "Offline"  # from PostgreSQL
    other = await users.sign_up(name="Grace")  # sign-up needs no Redis either
    assert other.id

    # Redis comes back with its data, still holding the pre-outage entry: the invalidation
    # the update owed is delivered before the cache is trusted again.
    stoppable_redis.start()
    read = await users.stub.GetUser(get, metadata=auth, timeout=5)
    assert read.user.display_name == "Offline"
    cached = await users.app.users._cache.get(user.id)
    assert cached is not None
    assert cached.display_name == "Offline"
