"""A real user server (grpc.aio on 127.0.0.1:0) beside a real auth server, for user tests.

The user server verifies tokens against the auth server's JWKS fetched over gRPC and sets
credentials through the auth server's SetCredential, exactly as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import grpc
import grpc.aio

from mesh.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.identity import JwksKeySource
from services.platform.jwks import grpc_jwks_fetch
from services.platform.migrations import run_migrations_async
from services.platform.server import create_server, shutdown
from services.platform.settings import Settings
from services.user.bootstrap import MIGRATIONS, UserApp, bootstrap
from services.user.credentials import GrpcCredentials
from tests.auth.harness import PAGE_TOKEN_SECRET, RunningAuth
from tests.auth.helpers import bearer

PASSWORD = "violet-tangerine-harbour-42"


def unique_email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class RunningUsers:
    app: UserApp
    port: int
    channel: grpc.aio.Channel
    auth: RunningAuth
    schema: str
    database: Database

    @property
    def stub(self) -> user_service_pb2_grpc.UserServiceAsyncStub:
        return user_service_pb2_grpc.UserServiceStub(self.channel)

    async def sign_up(
        self, email: str | None = None, password: str = PASSWORD, name: str = "Ada"
    ) -> user_pb2.User:
        response = await self.stub.CreateUser(
            user_service_pb2.CreateUserRequest(
                email=email or unique_email(), password=password, display_name=name
            ),
            timeout=10,
        )
        return response.user

    async def token(self, email: str, password: str = PASSWORD) -> str:
        return (await self.auth.login(email, password)).access_token

    async def member(self, name: str = "Ada") -> tuple[user_pb2.User, tuple[tuple[str, str]]]:
        """A signed-up, logged-in user and the metadata that authenticates as it."""
        user = await self.sign_up(name=name)
        return user, bearer(await self.token(user.email))  # type: ignore[return-value]

    async def admin(self) -> tuple[user_pb2.User, tuple[tuple[str, str]]]:
        """A user promoted through the operator path, logged in afterwards."""
        user = await self.sign_up(name="Root")
        await self.app.users.set_role_by_email(user.email, user_pb2.ROLE_ADMIN)
        return user, bearer(await self.token(user.email))  # type: ignore[return-value]


def user_settings() -> Settings:
    return Settings.from_env(
        "user", {"PAGE_TOKEN_SECRET": PAGE_TOKEN_SECRET, "GRPC_HOST": "127.0.0.1"}
    )


@asynccontextmanager
async def running_users(
    database_url: str,
    redis_url: str,
    schema: str,
    auth: RunningAuth,
    *,
    auth_target: str | None = None,
    auth_timeout: float = 5.0,
) -> AsyncIterator[RunningUsers]:
    await run_migrations_async(database_url, schema, MIGRATIONS)
    database = Database.connect(database_url, pool_size=4)
    redis = create_redis(redis_url)
    credentials = GrpcCredentials(auth_target or auth.target, timeout=auth_timeout)
    app = bootstrap(
        database=database,
        redis=redis,
        credentials=credentials,
        page_token_secret=PAGE_TOKEN_SECRET.encode(),
        cache_ttl=timedelta(minutes=5),
        auth_timeout_seconds=auth_timeout,
        schema=schema,
        relay_poll_interval=0.05,
        stream=f"{schema}:events.user",
    )
    server, port = await create_server(
        user_settings(), [app.service], key_source=JwksKeySource(grpc_jwks_fetch(auth.target))
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield RunningUsers(app, port, channel, auth, schema, database)
    finally:
        await channel.close(None)
        await shutdown(server, 0)
        await app.relay.stop()
        await credentials.close()
        await redis.aclose()
        await database.dispose()
