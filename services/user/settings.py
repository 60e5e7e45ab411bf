"""User-service settings on top of the platform's, from environment variables only.

| variable | default | meaning |
|---|---|---|
| AUTH_SERVICE_TARGET | required | gRPC target of the auth service (SetCredential, JWKS) |
| AUTH_CALL_TIMEOUT_SECONDS | 5 | deadline of each call to the auth service |
| USER_CACHE_TTL_SECONDS | 300 | lifetime of a cached user in Redis |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.platform.settings import ConfigError, Settings


@dataclass(frozen=True, slots=True)
class UserSettings:
    platform: Settings
    auth_target: str
    auth_timeout_seconds: float = 5.0
    cache_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UserSettings:
        env = os.environ if env is None else env
        platform = Settings.from_env("user", env)
        problems: list[str] = []
        auth_target = env.get("AUTH_SERVICE_TARGET", "").strip()
        if not auth_target:
            problems.append("AUTH_SERVICE_TARGET is required but not set")
        timeout = _number(env, "AUTH_CALL_TIMEOUT_SECONDS", 5.0, problems)
        ttl = _number(env, "USER_CACHE_TTL_SECONDS", 300.0, problems)
        if problems:
            raise ConfigError("user", problems)
        return cls(platform, auth_target, timeout, int(ttl))


def _number(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        problems.append(f"{name}: must be a positive number")
        return default
    return value
