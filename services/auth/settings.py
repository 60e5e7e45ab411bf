"""Auth-service settings on top of the platform's, from environment variables only.

| variable | default | meaning |
|---|---|---|
| AUTH_KEYS_DIR | <DATA_DIR>/auth-keys | signing keys (generated there on first start) |
| ACCESS_TOKEN_TTL_SECONDS | 900 | access-token lifetime |
| REFRESH_TOKEN_TTL_SECONDS | 2592000 | refresh-token lifetime (30 days) |
| LOGIN_MAX_FAILURES | 5 | failed logins in a row before the account locks |
| LOGIN_LOCK_SECONDS | 900 | how long a locked account stays locked |
| PASSWORD_HASHING | owasp | `owasp` (Argon2id m=19 MiB t=2 p=1); `insecure-fast` for tests only |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.platform.passwords import OWASP_PARAMS, TEST_PARAMS, HashParams
from services.platform.settings import ConfigError, Settings

_HASHING: Final = {"owasp": OWASP_PARAMS, "insecure-fast": TEST_PARAMS}


@dataclass(frozen=True, slots=True)
class AuthSettings:
    platform: Settings
    keys_dir: Path
    access_ttl_seconds: int = 900
    refresh_ttl_seconds: int = 30 * 24 * 3600
    max_failed_logins: int = 5
    lock_seconds: int = 900
    hash_params: HashParams = OWASP_PARAMS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        env = os.environ if env is None else env
        platform = Settings.from_env("auth", env)
        problems: list[str] = []

        def positive(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) <= 0:
                problems.append(f"{name}: must be a positive integer")
                return default
            return int(raw)

        hashing = env.get("PASSWORD_HASHING", "owasp").strip() or "owasp"
        if hashing not in _HASHING:
            problems.append(f"PASSWORD_HASHING: must be one of {', '.join(_HASHING)}")
        keys_dir = env.get("AUTH_KEYS_DIR", "").strip()
        settings = cls(
            platform=platform,
            keys_dir=Path(keys_dir) if keys_dir else platform.data_dir / "auth-keys",
            access_ttl_seconds=positive("ACCESS_TOKEN_TTL_SECONDS", 900),
            refresh_ttl_seconds=positive("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600),
            max_failed_logins=positive("LOGIN_MAX_FAILURES", 5),
            lock_seconds=positive("LOGIN_LOCK_SECONDS", 900),
            hash_params=_HASHING.get(hashing, OWASP_PARAMS),
        )
        if problems:
            raise ConfigError("auth", problems)
        return settings
