"""Notification-specific settings, from the environment (beside the platform `Settings`).

| variable | default | meaning |
|---|---|---|
| SMTP_HOST | unset | SMTP server for the email channel; unset disables email |
| SMTP_PORT | 25 | its port |
| SMTP_FROM | notifications@mesh.dev | sender address |
| HEARTBEAT_SECONDS | 15 | idle interval before a stream heartbeat |
| CLAIM_MIN_IDLE_SECONDS | 30 | pending events older than this are taken from dead consumers |
| AUTH_SERVICE_TARGET | unset | gRPC target of the auth service (JWKS), when no JWKS_URL/PATH |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.platform.settings import ConfigError


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "notifications@mesh.dev"
    heartbeat_seconds: float = 15.0
    claim_min_idle_seconds: float = 30.0
    auth_service_target: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotificationSettings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def number(name: str, default: float) -> float:
            try:
                value = float(env.get(name, str(default)))
            except ValueError:
                value = -1
            if value <= 0:
                problems.append(f"{name}: must be a positive number")
                return default
            return value

        port = int(number("SMTP_PORT", 25))
        if not 0 < port < 65536:
            problems.append("SMTP_PORT: must be a port number")
        settings = cls(
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=port,
            smtp_from=env.get("SMTP_FROM") or "notifications@mesh.dev",
            heartbeat_seconds=number("HEARTBEAT_SECONDS", 15.0),
            claim_min_idle_seconds=number("CLAIM_MIN_IDLE_SECONDS", 30.0),
            auth_service_target=env.get("AUTH_SERVICE_TARGET") or None,
        )
        if problems:
            raise ConfigError("notification", problems)
        return settings
