from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.platform.cache import ProtoCache, create_redis
from services.platform.embedded import EmbeddedRedis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def cache(redis: Redis, unique_name: str) -> ProtoCache[StringValue]:
    return ProtoCache(redis, StringValue, prefix=unique_name, ttl=timedelta(seconds=30))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def test_create_redis_accepts_the_url(redis: Redis) -> None:
    assert await redis.ping()


async def test_unix_socket_urls_work(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    try:
        assert server.url.startswith("unix://")
        client = create_redis(server.url)
        assert await client.ping()
        await client.aclose()
    finally:
        server.stop()


async def test_set_then_get_round_trips(cache: ProtoCache[StringValue]) -> None:
    await cache.set("u1", StringValue(value="alice"))
    assert await cache.get("u1") == StringValue(value="alice")


async def test_miss_is_none(cache: ProtoCache[StringValue]) -> None:
    assert await cache.get("absent") is None


async def test_entries_expire_and_live_under_the_prefix(
    cache: ProtoCache[StringValue], redis: Redis, unique_name: str
) -> None:
    await cache.set("u1", StringValue(value="alice"))
    ttl_ms = await redis.pttl(f"{unique_name}:u1")
    assert 0 < ttl_ms <= 30_000
    assert await redis.get(f"{unique_name}:u1") == StringValue(value="alice").SerializeToString()


async def test_delete_invalidates(cache: ProtoCache[StringValue]) -> None:
    await cache.set("u1", StringValue(value="alice"))
    await cache.set("u2", StringValue(value="bob"))
    await cache.delete("u1", "u2")
    assert await cache.get("u1") is None
    assert await cache.get("u2") is None
    await cache.delete()  # nothing to do, no error


async def test_get_or_load_reads_through_once(cache: ProtoCache[StringValue]) -> None:
    loads = 0

    async def load() -> StringValue:
        nonlocal loads
        loads += 1
        return StringValue(value="from-postgres")

    assert await cache.get_or_load("u1", load) == StringValue(value="from-postgres")
    assert await cache.get_or_load("u1", load) == StringValue(value="from-postgres")
    assert loads == 1


async def test_get_or_load_does_not_cache_absence(cache: ProtoCache[StringValue]) -> None:
    async def load() -> StringValue | None:
        return None

    assert await cache.get_or_load("ghost", load) is None
    assert await cache.get("ghost") is None


async def test_undecodable_entry_is_a_miss_and_is_dropped(
    cache: ProtoCache[StringValue], redis: Redis, unique_name: str
) -> None:
    await redis.set(f"{unique_name}:bad", b"\xff\xff\xff")
    assert await cache.get("bad") is None
    assert await redis.exists(f"{unique_name}:bad") == 0


def test_refuses_clients_that_decode_responses(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        ProtoCache(client, StringValue, prefix="x")


async def test_redis_down_degrades_to_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = create_redis(f"unix://{tmp_path / 'nobody-listens.sock'}")
    cache = ProtoCache(client, StringValue, prefix="down")
    with caplog.at_level(logging.DEBUG, logger="services.platform.cache"):
        started = time.monotonic()
        assert await cache.get("u1") is None
        await cache.set("u1", StringValue(value="alice"))
        await cache.delete("u1")
        assert await cache.get_or_load("u1", _load_alice) == StringValue(value="alice")
        elapsed = time.monotonic() - started
    await client.aclose()
    assert elapsed < 1.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # Throttled: one warning for the burst, the rest at debug level.
    assert len(warnings) == 1
    assert "redis unavailable" in warnings[0].getMessage()
    assert len(caplog.records) >= 4


async def test_hung_redis_times_out_quickly(silent_server: str) -> None:
    client = create_redis(silent_server, socket_timeout=0.2, socket_connect_timeout=0.2)
    cache = ProtoCache(client, StringValue, prefix="hung")
    started = time.monotonic()
    assert await cache.get("u1") is None
    await cache.set("u1", StringValue(value="alice"))
    assert time.monotonic() - started < 2.0
    await client.aclose()


async def test_pool_is_bounded_and_callers_wait_briefly(redis_url: str, unique_name: str) -> None:
    client = create_redis(redis_url, max_connections=1, pool_timeout=0.1)

    # The only connection is busy with a blocking pop for 0.3s (under the socket timeout)...
    async def pop() -> object:
        return await client.blpop([f"{unique_name}:never"], timeout=0.3)

    blocked = asyncio.create_task(pop())
    await asyncio.sleep(0.05)
    # ...so a second caller gives up after pool_timeout instead of opening another one.
    with pytest.raises(RedisConnectionError):
        await client.get(f"{unique_name}:x")
    cache = ProtoCache(client, StringValue, prefix=unique_name)
    assert await cache.get("x") is None
    assert await blocked is None
    assert await client.ping()
    await client.aclose()


async def test_cache_recovers_when_redis_comes_back(stoppable_redis: EmbeddedRedis) -> None:
    client = create_redis(stoppable_redis.url)
    idle = create_redis(stoppable_redis.url)  # keeps a pooled connection through the outage
    assert await idle.ping()
    cache = ProtoCache(client, StringValue, prefix="restart")
    await cache.set("u1", StringValue(value="alice"))
    assert await cache.get("u1") == StringValue(value="alice")

    stoppable_redis.stop()
    assert await cache.get("u1") is None
    await cache.set("u2", StringValue(value="bob"))  # no error while it is down

    stoppable_redis.start()
    await cache.set("u3", StringValue(value="carol"))
    assert await cache.get("u3") == StringValue(value="carol")
    # The idle client's pooled connection died with the old server; the one immediate
    # retry on a connection error reconnects without surfacing an error.
    assert await idle.ping()
    await client.aclose()
    await idle.aclose()


async def _load_alice() -> StringValue:
    return StringValue(value="alice")
