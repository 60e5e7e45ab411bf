"""Redis client construction and a cache-aside helper for protobuf messages.

PostgreSQL is the source of truth; Redis only makes reads cheaper. So `ProtoCache` never lets
a Redis failure reach the caller: a get that fails is a miss, a set or delete that fails is
a no-op, and the failure is logged (throttled, so a Redis outage does not flood the logs).
Short socket timeouts keep a dead or hung Redis from stalling requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Generic, TypeVar, cast

from google.protobuf.message import DecodeError, Message
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

_log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


def create_redis(
    url: str,
    *,
    max_connections: int = 32,
    pool_timeout: float = 1.0,
    socket_timeout: float | None = 0.5,
    socket_connect_timeout: float = 0.5,
) -> Redis:
    """A `redis.asyncio.Redis` over a bounded, blocking pool.

    Accepts `redis://`, `rediss://` and `unix://` URLs. When all `max_connections` are busy
    a caller waits at most `pool_timeout` for one, then gets a ConnectionError instead of
    opening unbounded connections. A command is retried once, immediately, only on a
    connection error: that hides the stale pooled connections left by a Redis restart
    without doubling the wait on a Redis that is merely slow.

    `socket_timeout` bounds every reply, blocking commands included: a client that runs
    BLPOP / XREADGROUP BLOCK needs its own `create_redis(url, socket_timeout=...)` above
    the block time (or None), not the request-path client.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return Redis(connection_pool=pool)


class ProtoCache(Generic[M]):
    """Cache-aside storage of one protobuf message type under a key prefix, with a TTL.

    Keys are `<prefix>:<key>`; values are the message's wire bytes. Writers delete the key
    after committing to PostgreSQL; the TTL bounds how long a stale value can survive the
    read/write race that cache-aside always has.
    """

    # Seconds between two warnings about Redis failures; the rest go to debug.
    WARN_INTERVAL = 10.0

    def __init__(
        self,
        redis: Redis,
        message_type: type[M],
        *,
        prefix: str,
        ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        if redis.get_connection_kwargs().get("decode_responses"):
            raise ValueError("ProtoCache stores wire bytes: use a client without decode_responses")
        self._redis = redis
        self._message_type = message_type
        self._prefix = prefix
        self._ttl_ms = int(ttl.total_seconds() * 1000)
        self._last_warning = float("-inf")

    def key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def get(self, key: str) -> M | None:
        """The cached message, or None on a miss, on a Redis failure or on bad bytes."""
        try:
            data = await self._redis.get(self.key(key))
        except RedisError as error:
            self._report("get", error)
            return None
        if data is None:
            return None
        try:
            # bytes: the constructor refused clients that decode responses to str.
            return self._message_type.FromString(cast(bytes, data))
        except DecodeError:
            # Written by an incompatible version or corrupted: drop it and read through.
            _log.warning("discarding undecodable cache entry", extra={"cache_key": self.key(key)})
            await self.delete(key)
            return None

    async def set(self, key: str, message: M, *, if_absent: bool = False) -> bool:
        """Stores `message`; True when Redis took it.

        `if_absent=True` (SET NX) is for readers filling a miss: a writer's fresher value,
        stored meanwhile, must not be overwritten by what the reader loaded before it.
        """
        try:
            stored = await self._redis.set(
                self.key(key), message.SerializeToString(), px=self._ttl_ms, nx=if_absent
            )
        except RedisError as error:
            self._report("set", error)
            return False
        return bool(stored)

    async def delete(self, *keys: str) -> bool:
        """Invalidates `keys`; False when Redis could not be told (the entries may survive)."""
        if not keys:
            return True
        try:
            await self._redis.delete(*(self.key(k) for k in keys))
        except RedisError as error:
            self._report("delete", error)
            return False
        return True

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[M | None]]) -> M | None:
        """Cache-aside read: the cached message, else `load()` (cached when not None)."""
        cached = await self.get(key)
        if cached is not None:
            return cached
        loaded = await load()
        if loaded is not None:
            await self.set(key, loaded)
        return loaded

    def _report(self, operation: str, error: RedisError) -> None:
        now = time.monotonic()
        level = logging.DEBUG
        if now - self._last_warning >= self.WARN_INTERVAL:
            self._last_warning = now
            level = logging.WARNING
        _log.log(
            level,
            "redis unavailable, cache %s skipped: %s",
            operation,
            type(error).__name__,
            extra={"cache_prefix": self._prefix},
        )
