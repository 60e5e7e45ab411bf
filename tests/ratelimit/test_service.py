"""The limiter against real Redis: fixed windows, per IP and per user, failure modes."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from mesh.options.v1 import policy_pb2
from services.platform.cache import create_redis
from services.platform.embedded import EmbeddedRedis
from services.ratelimit.budgets import Budget, Limit
from services.ratelimit.service import OnStoreError, RateLimiter
from services.ratelimit.store import RedisWindowCounter

MINUTE = policy_pb2.RATE_LIMIT_UNIT_MINUTE
BUDGETS = {
    "login": Budget(per_ip=Limit(3, MINUTE)),
    "read": Budget(Limit(5, MINUTE), Limit(2, MINUTE)),
}


def ip(limit_class: str, address: str) -> list[tuple[str, str]]:
    return [("class", limit_class), ("remote_address", address)]


def user(limit_class: str, user_id: str) -> list[tuple[str, str]]:
    return [("class", limit_class), ("user", user_id)]


async def test_requests_over_the_budget_are_refused(redis: Redis, unique_name: str) -> None:
    limiter = RateLimiter(RedisWindowCounter(redis, prefix=unique_name), BUDGETS)
    decisions = [(await limiter.check("mesh", [ip("login", "10.0.0.1")]))[0] for _ in range(4)]
    assert [d.over_limit for d in decisions] == [False, False, False, True]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].limit == Limit(3, MINUTE)
    assert 1 <= decisions[0].reset_seconds <= 60
    # Another client address has its own budget.
    (other,) = await limiter.check("mesh", [ip("login", "10.0.0.2")])
    assert not other.over_limit


async def test_user_and_ip_budgets_are_counted_separately(redis: Redis, unique_name: str) -> None:
    limiter = RateLimiter(RedisWindowCounter(redis, prefix=unique_name), BUDGETS)
    request = [ip("read", "10.0.0.1"), user("read", "alice")]
    first, second, third = [await limiter.check("mesh", request) for _ in range(3)]
    assert [d.over_limit for d in first] == [False, False]
    assert [d.over_limit for d in second] == [False, False]
    assert [d.over_limit for d in third] == [False, True]  # user budget 2, IP budget 5
    assert third[1].limit == Limit(2, MINUTE)


async def test_unknown_classes_and_kinds_are_not_limited(redis: Redis, unique_name: str) -> None:
    limiter = RateLimiter(RedisWindowCounter(redis, prefix=unique_name), BUDGETS)
    decisions = await limiter.check(
        "mesh", [ip("nonsense", "10.0.0.1"), user("login", "alice"), [("class", "read")]]
    )
    assert all(not d.over_limit and d.limit is None for d in decisions)


async def test_counters_expire_with_their_window(redis: Redis, unique_name: str) -> None:
    limiter = RateLimiter(RedisWindowCounter(redis, prefix=unique_name), BUDGETS)
    await limiter.check("mesh", [ip("login", "10.0.0.9")])
    keys = [key async for key in redis.scan_iter(match=f"{unique_name}:*")]
    assert len(keys) == 1
    assert 0 < await redis.ttl(keys[0]) <= 60


async def test_a_new_window_starts_a_new_count(redis: Redis, unique_name: str) -> None:
    now = [1_000_000.0 * 60]
    limiter = RateLimiter(
        RedisWindowCounter(redis, prefix=unique_name), BUDGETS, clock=lambda: now[0]
    )
    for _ in range(3):
        await limiter.check("mesh", [ip("login", "10.0.0.3")])
    assert (await limiter.check("mesh", [ip("login", "10.0.0.3")]))[0].over_limit
    now[0] += 60
    assert not (await limiter.check("mesh", [ip("login", "10.0.0.3")]))[0].over_limit


@pytest.mark.parametrize(
    ("mode", "denied"), [(OnStoreError.ALLOW, False), (OnStoreError.DENY, True)]
)
async def test_redis_down_follows_the_configured_failure_mode(
    stoppable_redis: EmbeddedRedis,
    unique_name: str,
    mode: OnStoreError,
    denied: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = create_redis(stoppable_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    limiter = RateLimiter(
        RedisWindowCounter(client, prefix=unique_name), BUDGETS, on_store_error=mode
    )
    try:
        assert not (await limiter.check("mesh", [ip("login", "10.0.0.4")]))[0].over_limit
        stoppable_redis.stop()
        (decision,) = await limiter.check("mesh", [ip("login", "10.0.0.4")])
        assert decision.over_limit is denied
        assert "rate-limit counters unavailable" in caplog.text
        stoppable_redis.start()
        # Counting resumes where Redis left off once it is back.
        (decision,) = await limiter.check("mesh", [ip("login", "10.0.0.4")])
        assert not decision.over_limit
        assert decision.limit is not None
    finally:
        await client.aclose()
