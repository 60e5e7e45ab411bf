"""Password hashing with Argon2id, off the event loop.

Argon2id at the OWASP parameters (m=19 MiB, t=2, p=1) costs tens of milliseconds of CPU and
19 MiB of memory per hash. Run on the event loop it would stall every other RPC of the
process, so hashing and verification run in a small, bounded thread pool (argon2-cffi releases
the GIL while it hashes). The bound also caps the memory a burst of logins can take.

    hasher = PasswordHasher(OWASP_PARAMS)
    encoded = await hasher.hash(password)
    ok = await hasher.verify(encoded, password)
    if ok and hasher.needs_rehash(encoded): ...   # parameters changed since it was stored

`verify_unknown(password)` spends the same time as a real verification against a dummy hash,
so a login for an unknown email cannot be told apart by its latency.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class HashParams:
    """Argon2id cost parameters (memory in KiB)."""

    memory_kib: int
    time_cost: int
    parallelism: int


# OWASP Password Storage Cheat Sheet, Argon2id option 1.
OWASP_PARAMS: Final = HashParams(memory_kib=19 * 1024, time_cost=2, parallelism=1)
# The cheapest parameters argon2 accepts: for tests that are not about hashing. Never in
# production: settings only select it when explicitly asked to.
TEST_PARAMS: Final = HashParams(memory_kib=8, time_cost=1, parallelism=1)


def default_workers() -> int:
    """One hashing thread per CPU this process may run on.

    More threads than CPUs do not hash faster: they only take the CPU from the event loop,
    which then answers every other RPC late (measured: GetJwks p99 rose to over 0.3 s with
    4 threads on 2 cores while logins ran).
    """
    return max(1, len(os.sched_getaffinity(0)))


_T = TypeVar("_T")


class PasswordHasher:
    """Argon2id hashing and verification in a bounded worker pool."""

    def __init__(self, params: HashParams = OWASP_PARAMS, *, max_workers: int = 0) -> None:
        self.params = params
        self._argon2 = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or default_workers(), thread_name_prefix="argon2"
        )
        # Hash of a random secret nobody knows: verifying against it fails, in normal time.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, password)

    async def verify(self, encoded: str, password: str) -> bool:
        """True when `password` matches `encoded`; False on mismatch or an unreadable hash."""
        return await self._run(self._verify_blocking, encoded, password)

    async def verify_unknown(self, password: str) -> None:
        """Spends the time of a failed verification (the unknown-account path)."""
        await self._run(self._verify_blocking, self._dummy_hash, password)

    def needs_rehash(self, encoded: str) -> bool:
        """True when `encoded` was made with other parameters than this hasher's."""
        try:
            return self._argon2.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _verify_blocking(self, encoded: str, password: str) -> bool:
        try:
            return self._argon2.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)


__all__ = ["OWASP_PARAMS", "TEST_PARAMS", "HashParams", "PasswordHasher"]
