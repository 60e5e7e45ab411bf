"""Decides whether a request is within its budgets (no gRPC, no Redis details).

Envoy sends one descriptor per (class, client IP) and, for signed-in callers, one per
(class, user). Each is counted in a fixed window of its budget's unit. A descriptor with an
unknown class or without a budget for its kind is allowed and not counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from services.ratelimit.budgets import Budget, Limit

logger = logging.getLogger(__name__)

CLASS_KEY: Final = "class"
IP_KEY: Final = "remote_address"
USER_KEY: Final = "user"
_ERROR_LOG_INTERVAL: Final = 10.0


class Counter(Protocol):
    async def increment(self, keys: Sequence[tuple[str, int]], hits: int) -> list[int]: ...


class OnStoreError(Enum):
    """What to answer when the counters cannot be reached."""

    ALLOW = "allow"  # fail open: availability over strictness (logged)
    DENY = "deny"  # fail closed: every limited request is refused


@dataclass(frozen=True, slots=True)
class Decision:
    over_limit: bool
    limit: Limit | None = None  # None: this descriptor is not limited
    remaining: int = 0
    reset_seconds: int = 0


class RateLimiter:
    def __init__(
        self,
        counter: Counter,
        budgets: Mapping[str, Budget],
        *,
        on_store_error: OnStoreError = OnStoreError.ALLOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counter = counter
        self._budgets = budgets
        self._on_store_error = on_store_error
        self._clock = clock
        self._last_error_log = float("-inf")

    async def check(
        self, domain: str, descriptors: Sequence[Sequence[tuple[str, str]]], hits: int = 1
    ) -> list[Decision]:
        """One decision per descriptor, in order."""
        now = self._clock()
        limits = [self._limit_for(entries) for entries in descriptors]
        keyed = [
            (index, limit, self._key(domain, descriptors[index], limit, now))
            for index, limit in enumerate(limits)
            if limit is not None
        ]
        decisions = [Decision(over_limit=False) for _ in descriptors]
        if not keyed:
            return decisions
        try:
            counts = await self._counter.increment(
                [(key, limit.window_seconds) for _, limit, key in keyed], max(hits, 0)
            )
        except Exception:
            return self._store_failed(decisions, keyed)
        for (index, limit, _), count in zip(keyed, counts, strict=True):
            window = limit.window_seconds
            decisions[index] = Decision(
                over_limit=count > limit.requests_per_unit,
                limit=limit,
                remaining=max(limit.requests_per_unit - count, 0),
                reset_seconds=max(int(window - now % window), 1),
            )
        return decisions

    def _limit_for(self, entries: Sequence[tuple[str, str]]) -> Limit | None:
        values = dict(entries)
        budget = self._budgets.get(values.get(CLASS_KEY, ""))
        if budget is None:
            return None
        if values.get(USER_KEY):
            return budget.per_user
        if values.get(IP_KEY):
            return budget.per_ip
        return None

    @staticmethod
    def _key(domain: str, entries: Sequence[tuple[str, str]], limit: Limit, now: float) -> str:
        window_index = int(now // limit.window_seconds)
        parts = ":".join(f"{key}={value}" for key, value in entries)
        return f"{domain}:{parts}:{limit.window_seconds}:{window_index}"

    def _store_failed(
        self, decisions: list[Decision], keyed: list[tuple[int, Limit, str]]
    ) -> list[Decision]:
        deny = self._on_store_error is OnStoreError.DENY
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            logger.warning(
                "rate-limit counters unavailable; %s requests",
                "denying" if deny else "allowing",
                exc_info=True,
            )
        for index, limit, _ in keyed:
            decisions[index] = Decision(over_limit=deny, limit=limit if deny else None)
        return decisions


__all__ = ["CLASS_KEY", "IP_KEY", "USER_KEY", "Decision", "OnStoreError", "RateLimiter"]
