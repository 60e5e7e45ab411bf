"""Process settings, read from environment variables only (12-factor).

One frozen `Settings` per process, built once at start-up by `Settings.from_env(...)`. Every
malformed value is reported at once in a single `ConfigError`, so a misconfigured replica
dies immediately with a message naming each variable instead of failing on first use.

| variable | default | meaning |
|---|---|---|
| GRPC_HOST | 127.0.0.1 | interface to listen on (0.0.0.0 / [::] in containers) |
| GRPC_PORT | 0 | port; 0 picks a free one (tests, local replicas) |
| DATABASE_URL | unset | PostgreSQL URL; unset means the embedded server |
| REDIS_URL | unset | Redis URL; unset means the embedded server |
| DATA_DIR | .data | local state (embedded databases) |
| LOG_LEVEL | INFO | DEBUG, INFO, WARNING, ERROR, CRITICAL |
| SHUTDOWN_GRACE_SECONDS | 10 | how long in-flight RPCs may run after SIGTERM |
| OTEL_EXPORTER_OTLP_ENDPOINT | unset | OTLP/gRPC collector; unset means no export |
| JWT_ISSUER | https://auth.mesh.dev | required `iss` of access tokens |
| JWT_AUDIENCE | mesh.dev | required `aud` of access tokens |
| JWKS_URL | unset | http(s) URL of the JWKS access tokens are verified with |
| JWKS_PATH | unset | file holding that JWKS (alternative to JWKS_URL) |
| PAGE_TOKEN_SECRET | required | >= 32 characters; signs page tokens, shared by all replicas |
| ERROR_DOMAIN | <service>.mesh.dev | the ErrorInfo domain of this service's errors |
| USE_UVLOOP | true | run on uvloop when it is installed |
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

_T = TypeVar("_T")
_D = TypeVar("_D")

_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
MIN_PAGE_TOKEN_SECRET_LENGTH: Final = 32


class ConfigError(ValueError):
    """The environment does not describe a runnable process; `problems` lists each variable."""

    def __init__(self, service_name: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n  - ".join(problems)
        super().__init__(f"invalid configuration for service {service_name!r}:\n  - {lines}")


@dataclass(frozen=True, slots=True)
class Settings:
    service_name: str
    page_token_secret: bytes = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    # URLs may embed credentials (postgresql://user:pass@host/db): never in repr or logs.
    database_url: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".data")
    log_level: str = "INFO"
    grace_seconds: float = 10.0
    otel_endpoint: str | None = None
    jwt_issuer: str = "https://auth.mesh.dev"
    jwt_audience: str = "mesh.dev"
    jwks_url: str | None = None
    jwks_path: Path | None = None
    error_domain: str = ""
    use_uvloop: bool = True

    def __post_init__(self) -> None:
        if not self.error_domain:
            object.__setattr__(self, "error_domain", f"{self.service_name}.mesh.dev")

    @property
    def address(self) -> str:
        """The `host:port` to bind, IPv6 hosts bracketed."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @classmethod
    def from_env(cls, service_name: str, env: Mapping[str, str] | None = None) -> Settings:
        """Builds the settings of `service_name` from `env` (default: `os.environ`).

        Raises `ConfigError` naming every malformed or missing variable.
        """
        reader = _EnvReader(os.environ if env is None else env)
        secret = reader.required("PAGE_TOKEN_SECRET", _page_token_secret)
        settings = cls(
            service_name=service_name,
            page_token_secret=secret if secret is not None else b"",
            host=reader.optional("GRPC_HOST", str, "127.0.0.1"),
            port=reader.optional("GRPC_PORT", _port, 0),
            database_url=reader.optional("DATABASE_URL", _url("postgresql", "postgres"), None),
            redis_url=reader.optional("REDIS_URL", _url("redis", "rediss", "unix"), None),
            data_dir=reader.optional("DATA_DIR", Path, Path(".data")),
            log_level=reader.optional("LOG_LEVEL", _log_level, "INFO"),
            grace_seconds=reader.optional("SHUTDOWN_GRACE_SECONDS", _non_negative_float, 10.0),
            otel_endpoint=reader.optional(
                "OTEL_EXPORTER_OTLP_ENDPOINT", _url("http", "https"), None
            ),
            jwt_issuer=reader.optional("JWT_ISSUER", _non_empty, "https://auth.mesh.dev"),
            jwt_audience=reader.optional("JWT_AUDIENCE", _non_empty, "mesh.dev"),
            jwks_url=reader.optional("JWKS_URL", _url("http", "https"), None),
            jwks_path=reader.optional("JWKS_PATH", Path, None),
            error_domain=reader.optional("ERROR_DOMAIN", _non_empty, f"{service_name}.mesh.dev"),
            use_uvloop=reader.optional("USE_UVLOOP", _bool, True),
        )
        if not service_name or not service_name.replace("-", "").replace("_", "").isalnum():
            reader.problems.append(f"service name {service_name!r} must be a simple identifier")
        if reader.problems:
            raise ConfigError(service_name, reader.problems)
        return settings


class _EnvReader:
    """Parses variables, collecting problems instead of stopping at the first one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def optional(self, name: str, parse: Callable[[str], _T], default: _T) -> _T:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        return self._parse(name, raw, parse, default)

    def required(self, name: str, parse: Callable[[str], _T]) -> _T | None:
        raw = self._env.get(name, "").strip()
        if not raw:
            self.problems.append(f"{name} is required but not set")
            return None
        return self._parse(name, raw, parse, None)

    def _parse(self, name: str, raw: str, parse: Callable[[str], _T], default: _D) -> _T | _D:
        try:
            return parse(raw)
        except ValueError as exc:
            # The raw value is not echoed: it may be a secret.
            self.problems.append(f"{name}: {exc}")
            return default


def _port(raw: str) -> int:
    port = _int(raw)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number between 0 and 65535")
    return port


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be one of true/false, 1/0, yes/no, on/off")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in _LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
    return level


def _non_empty(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _page_token_secret(raw: str) -> bytes:
    if len(raw) < MIN_PAGE_TOKEN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_PAGE_TOKEN_SECRET_LENGTH} characters "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return raw.encode()


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        try:
            parts = urlsplit(raw)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        scheme = parts.scheme.split("+", 1)[0].lower()
        if scheme not in schemes:
            raise ValueError(f"must be a URL with scheme {' or '.join(schemes)}")
        if scheme != "unix" and not parts.hostname and not parts.path.strip("/"):
            raise ValueError("must name a host")
        return raw

    return parse


__all__ = ["MIN_PAGE_TOKEN_SECRET_LENGTH", "ConfigError", "Settings"]
