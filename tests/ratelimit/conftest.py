"""A real ratelimit server on port 0 over real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest
from envoy.service.ratelimit.v3 import rls_pb2_grpc
from redis.asyncio import Redis

from services.platform.cache import create_redis
from services.ratelimit.server import create_ratelimit_server
from services.ratelimit.settings import RateLimitSettings


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def ratelimit_channel(redis: Redis) -> AsyncIterator[grpc.aio.Channel]:
    server, port, _ = await create_ratelimit_server(RateLimitSettings(port=0), redis)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(0)


@pytest.fixture
def ratelimit_stub(ratelimit_channel: grpc.aio.Channel) -> rls_pb2_grpc.RateLimitServiceStub:
    return rls_pb2_grpc.RateLimitServiceStub(ratelimit_channel)
