"""A real auth server (grpc.aio on 127.0.0.1:0) over real PostgreSQL, for auth and user tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import psycopg
from psycopg import sql

from mesh.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from services.auth.bootstrap import AuthApp, bootstrap
from services.auth.settings import AuthSettings
from services.auth.store import connect
from services.platform.migrations import run_migrations
from services.platform.server import create_server, shutdown

AUTH_MIGRATIONS = Path("services/auth/migrations/versions").resolve()
PAGE_TOKEN_SECRET = "test-page-token-secret-0123456789abcdef"


def auth_settings(keys_dir: Path, **env: str) -> AuthSettings:
    base = {
        "PAGE_TOKEN_SECRET": PAGE_TOKEN_SECRET,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        "AUTH_KEYS_DIR": str(keys_dir),
        "PASSWORD_HASHING": "insecure-fast",
        "LOGIN_MAX_FAILURES": "3",
    }
    return AuthSettings.from_env({**base, **env})


def create_schema(database_url: str, schema: str, versions: Path) -> None:
    run_migrations(database_url, schema, versions)


def drop_schema(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@dataclass
class RunningAuth:
    app: AuthApp
    port: int
    channel: grpc.aio.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stub(self) -> auth_service_pb2_grpc.AuthServiceAsyncStub:
        return auth_service_pb2_grpc.AuthServiceStub(self.channel)

    async def login(self, email: str, password: str) -> auth_service_pb2.LoginResponse:
        return await self.stub.Login(
            auth_service_pb2.LoginRequest(email=email, password=password), timeout=10
        )


@asynccontextmanager
async def running_auth(
    database_url: str,
    schema: str,
    keys_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    **env: str,
) -> AsyncIterator[RunningAuth]:
    settings = auth_settings(keys_dir, **env)
    app = bootstrap(settings, connect(database_url, schema=schema), clock=clock)
    server, port = await create_server(
        settings.platform, [app.grpc_service()], key_source=app.key_source()
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield RunningAuth(app, port, channel)
    finally:
        await channel.close(None)
        await shutdown(server, 0)
        await app.close()
