"""User tests: one migrated auth schema per session; a real auth and user server per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.auth.harness import (
    AUTH_MIGRATIONS,
    RunningAuth,
    create_schema,
    drop_schema,
    running_auth,
)
from tests.user.harness import RunningUsers, running_users


@pytest.fixture(scope="session")
def user_auth_schema(database_url: str) -> Iterator[str]:
    schema = f"auth_{uuid.uuid4().hex[:10]}"
    create_schema(database_url, schema, AUTH_MIGRATIONS)
    yield schema
    drop_schema(database_url, schema)


@pytest.fixture
async def auth(
    database_url: str, user_auth_schema: str, tmp_path: Path
) -> AsyncIterator[RunningAuth]:
    async with running_auth(database_url, user_auth_schema, tmp_path / "keys") as running:
        yield running


@pytest.fixture
async def users(
    database_url: str, redis_url: str, unique_schema: str, auth: RunningAuth
) -> AsyncIterator[RunningUsers]:
    async with running_users(database_url, redis_url, unique_schema, auth) as running:
        yield running
