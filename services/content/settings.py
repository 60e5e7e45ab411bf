"""Content-specific settings, from the environment (beside the platform `Settings`).

| variable | default | meaning |
|---|---|---|
| USER_SERVICE_TARGET | required | gRPC target of the user service ("ipv4:h:p,h:p" for replicas) |
| USER_SERVICE_TIMEOUT_SECONDS | 1.5 | deadline of the author check |
| AUTH_SERVICE_TARGET | unset | gRPC target of the auth service (JWKS), when no JWKS_URL/PATH |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.platform.settings import ConfigError


@dataclass(frozen=True, slots=True)
class ContentSettings:
    user_service_target: str
    user_service_timeout: float = 1.5
    auth_service_target: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ContentSettings:
        env = os.environ if env is None else env
        problems: list[str] = []
        target = env.get("USER_SERVICE_TARGET", "")
        if not target:
            problems.append("USER_SERVICE_TARGET: required (gRPC target of the user service)")
        timeout = 1.5
        try:
            timeout = float(env.get("USER_SERVICE_TIMEOUT_SECONDS", "1.5"))
            if timeout <= 0:
                raise ValueError
        except ValueError:
            problems.append("USER_SERVICE_TIMEOUT_SECONDS: must be a positive number")
        if problems:
            raise ConfigError("content", problems)
        return cls(target, timeout, env.get("AUTH_SERVICE_TARGET") or None)
