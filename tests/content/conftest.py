"""A real content server on port 0 over a fresh schema, with a real user service beside it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import grpc.aio
import pytest

from mesh.content.v1 import content_service_pb2_grpc
from services.content.bootstrap import MIGRATIONS, ContentApp, bootstrap
from services.content.users import GrpcUserDirectory
from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.migrations import run_migrations_async
from services.platform.server import create_server, shutdown
from services.platform.settings import Settings
from tests.platform.servicer_fixture import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    UserServicer,
    running_server,
    user_service,
)

PAGE_SECRET = "test-page-token-secret-0123456789abcdef"


def content_settings() -> Settings:
    return Settings.from_env(
        "content",
        {
            "PAGE_TOKEN_SECRET": PAGE_SECRET,
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "GRPC_PORT": "0",
        },
    )


@dataclass
class ContentMesh:
    stub: content_service_pb2_grpc.ContentServiceAsyncStub
    keys: SigningKey
    app: ContentApp
    schema: str
    database: Database
    user_port: int

    def auth(self, user_id: str, *roles: str) -> tuple[tuple[str, str], ...]:
        token = self.keys.token(user_id, roles=roles or ("user",))
        return (("authorization", f"Bearer {token}"),)


def new_user() -> str:
    return str(uuid.uuid4())


@asynccontextmanager
async def running_content(
    database_url: str,
    redis_url: str,
    schema: str,
    *,
    stream: str | None = None,
    keys: SigningKey | None = None,
) -> AsyncIterator[ContentMesh]:
    """A content server over `schema` (migrated here), beside a real user service.

    Its events go to `stream` (default: a stream named after the schema, so tests sharing
    one Redis never mix their events); the relay is not started here.
    """
    await run_migrations_async(database_url, schema, MIGRATIONS)
    keys = keys or SigningKey()
    database = Database.connect(database_url, pool_size=4)
    redis = create_redis(redis_url)
    try:
        async with running_server(
            [user_service(UserServicer())], key_source=keys.key_source()
        ) as users:
            authors = GrpcUserDirectory(f"127.0.0.1:{users.port}", timeout=1.5)
            app = bootstrap(
                database=database,
                redis=redis,
                authors=authors,
                page_token_secret=PAGE_SECRET.encode(),
                schema=schema,
                stream=stream or f"{schema}.events.content",
                relay_poll_interval=0.05,
            )
            server, port = await create_server(
                content_settings(), [app.service], key_source=keys.key_source()
            )
            await server.start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            try:
                yield ContentMesh(
                    content_service_pb2_grpc.ContentServiceStub(channel),
                    keys,
                    app,
                    schema,
                    database,
                    users.port,
                )
            finally:
                await channel.close(None)
                await shutdown(server, 0)
                await authors.close()
    finally:
        await redis.aclose()
        await database.dispose()


@pytest.fixture
async def content(
    database_url: str, redis_url: str, unique_schema: str
) -> AsyncIterator[ContentMesh]:
    async with running_content(database_url, redis_url, unique_schema) as mesh:
        yield mesh
