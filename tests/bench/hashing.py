"""The hashing ceiling of R4: logins per second if every core did nothing but verify passwords."""

from __future__ import annotations

import os
import time
from statistics import median

from argon2 import PasswordHasher as Argon2

from services.platform.passwords import OWASP_PARAMS


def verify_seconds(samples: int = 5) -> float:
    """Median wall time of one Argon2id verify with the parameters the auth service uses."""
    hasher = Argon2(
        time_cost=OWASP_PARAMS.time_cost,
        memory_cost=OWASP_PARAMS.memory_kib,
        parallelism=OWASP_PARAMS.parallelism,
    )
    encoded = hasher.hash("bench-correct-horse-battery")
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        hasher.verify(encoded, "bench-correct-horse-battery")
        times.append(time.perf_counter() - start)
    return median(times)


def ceiling() -> tuple[float, float]:
    """(logins/s ceiling, seconds per verify): cores ÷ one verify."""
    seconds = verify_seconds()
    return (os.cpu_count() or 1) / seconds, seconds
