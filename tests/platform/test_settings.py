"""Settings come from the environment only and fail fast, naming every bad variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from services.platform.settings import ConfigError, Settings

SECRET = "a-page-token-secret-of-at-least-32-chars"


def test_defaults_with_only_the_required_secret() -> None:
    settings = Settings.from_env("user", {"PAGE_TOKEN_SECRET": SECRET})
    assert settings.service_name == "user"
    assert (settings.host, settings.port, settings.address) == ("127.0.0.1", 0, "127.0.0.1:0")
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.error_domain == "user.mesh.dev"
    assert settings.log_level == "INFO"
    assert settings.grace_seconds == 10.0
    assert settings.page_token_secret == SECRET.encode()


def test_every_variable_is_read() -> None:
    env = {
        "PAGE_TOKEN_SECRET": SECRET,
        "GRPC_HOST": "::",
        "GRPC_PORT": "50051",
        "DATABASE_URL": "postgresql+psycopg://app:pw@db:5432/mesh",
        "REDIS_URL": "redis://cache:6379/0",
        "DATA_DIR": "/var/lib/mesh",
        "LOG_LEVEL": "debug",
        "SHUTDOWN_GRACE_SECONDS": "2.5",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "JWT_ISSUER": "https://auth.example",
        "JWT_AUDIENCE": "example",
        "JWKS_URL": "http://auth:8080/v1/auth/jwks",
        "JWKS_PATH": "/etc/mesh/jwks.json",
        "ERROR_DOMAIN": "users.example.com",
        "USE_UVLOOP": "false",
    }
    settings = Settings.from_env("user", env)
    assert settings.address == "[::]:50051"
    assert settings.database_url == env["DATABASE_URL"]
    assert settings.data_dir == Path("/var/lib/mesh")
    assert settings.log_level == "DEBUG"
    assert settings.grace_seconds == 2.5
    assert settings.otel_endpoint == "http://collector:4317"
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://auth.example", "example")
    assert settings.jwks_path == Path("/etc/mesh/jwks.json")
    assert settings.error_domain == "users.example.com"
    assert settings.use_uvloop is False


def test_malformed_values_fail_fast_all_at_once_without_echoing_them() -> None:
    env = {
        "PAGE_TOKEN_SECRET": "too-short-secret",
        "GRPC_PORT": "70000",
        "DATABASE_URL": "mysql://root:hunter2@db/x",
        "LOG_LEVEL": "LOUD",
        "SHUTDOWN_GRACE_SECONDS": "-1",
        "USE_UVLOOP": "maybe",
    }
    with pytest.raises(ConfigError) as raised:
        Settings.from_env("user", env)
    problems = "\n".join(raised.value.problems)
    for name in env:
        assert name in problems
    assert "hunter2" not in str(raised.value)
    assert "too-short-secret" not in str(raised.value)


def test_missing_required_secret() -> None:
    with pytest.raises(ConfigError, match="PAGE_TOKEN_SECRET is required"):
        Settings.from_env("user", {})


def test_secrets_never_in_repr_and_settings_are_frozen() -> None:
    settings = Settings.from_env(
        "user",
        {"PAGE_TOKEN_SECRET": SECRET, "DATABASE_URL": "postgresql://u:hunter2@db/x"},
    )
    assert SECRET not in repr(settings)
    assert "hunter2" not in repr(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
