"""Fixed-window counters in Redis, shared by every ratelimit replica and every Envoy.

One Lua script increments all of a request's counters atomically in one round trip and gives
each new window its expiry, so counters never outlive their window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis

_INCREMENT: Final = """
local counts = {}
for index, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, ARGV[1])
  if redis.call('TTL', key) < 0 then
    redis.call('EXPIRE', key, ARGV[index + 1])
  end
  counts[index] = count
end
return counts
"""


class RedisWindowCounter:
    """`increment` adds `hits` to each key and returns the new counts."""

    def __init__(self, redis: Redis, *, prefix: str = "ratelimit") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_INCREMENT)

    async def increment(self, keys: Sequence[tuple[str, int]], hits: int) -> list[int]:
        """`keys` are (key, ttl_seconds); the key is namespaced under this counter's prefix."""
        if not keys:
            return []
        names = [f"{self._prefix}:{key}" for key, _ in keys]
        ttls = [str(ttl) for _, ttl in keys]
        counts = await self._script(keys=names, args=[str(hits), *ttls])
        return [int(count) for count in counts]


__all__ = ["RedisWindowCounter"]
