"""Settings of the ratelimit service, from environment variables only.

| variable | default | meaning |
|---|---|---|
| GRPC_HOST | 127.0.0.1 | interface to listen on |
| GRPC_PORT | 0 | port (Envoy's `ratelimit` cluster points at it) |
| REDIS_URL | unset | Redis holding the counters; unset means the embedded server |
| DATA_DIR | .data | local state (embedded Redis) |
| LOG_LEVEL | INFO | DEBUG, INFO, WARNING, ERROR, CRITICAL |
| SHUTDOWN_GRACE_SECONDS | 5 | how long in-flight checks may run after SIGTERM |
| RATELIMIT_ON_REDIS_ERROR | allow | allow (fail open, logged) or deny when Redis is unreachable |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.platform.settings import ConfigError
from services.ratelimit.service import OnStoreError

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    host: str = "127.0.0.1"
    port: int = 0
    redis_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".data")
    log_level: str = "INFO"
    grace_seconds: float = 5.0
    on_redis_error: OnStoreError = OnStoreError.ALLOW

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RateLimitSettings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        port = get("GRPC_PORT", "0")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            problems.append("GRPC_PORT: must be a port number between 0 and 65535")
        redis_url = get("REDIS_URL", "") or None
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("REDIS_URL: must be a redis://, rediss:// or unix:// URL")
        level = get("LOG_LEVEL", "INFO").upper()
        if level not in _LOG_LEVELS:
            problems.append(f"LOG_LEVEL: must be one of {', '.join(_LOG_LEVELS)}")
        grace = get("SHUTDOWN_GRACE_SECONDS", "5")
        try:
            grace_seconds = float(grace)
            if not 0 <= grace_seconds < float("inf"):
                raise ValueError
        except ValueError:
            problems.append("SHUTDOWN_GRACE_SECONDS: must be a finite number >= 0")
            grace_seconds = 5.0
        on_error = get("RATELIMIT_ON_REDIS_ERROR", "allow").lower()
        if on_error not in {mode.value for mode in OnStoreError}:
            problems.append("RATELIMIT_ON_REDIS_ERROR: must be allow or deny")
            on_error = "allow"
        if problems:
            raise ConfigError("ratelimit", problems)
        return cls(
            host=get("GRPC_HOST", "127.0.0.1"),
            port=int(port),
            redis_url=redis_url,
            data_dir=Path(get("DATA_DIR", ".data")),
            log_level=level,
            grace_seconds=grace_seconds,
            on_redis_error=OnStoreError(on_error),
        )


__all__ = ["RateLimitSettings"]
