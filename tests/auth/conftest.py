"""Auth tests: one migrated schema per session, one real auth server per test."""

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


@pytest.fixture(scope="session")
def auth_schema(database_url: str) -> Iterator[str]:
    schema = f"auth_{uuid.uuid4().hex[:10]}"
    create_schema(database_url, schema, AUTH_MIGRATIONS)
    yield schema
    drop_schema(database_url, schema)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
async def auth(database_url: str, auth_schema: str, keys_dir: Path) -> AsyncIterator[RunningAuth]:
    async with running_auth(database_url, auth_schema, keys_dir) as running:
        yield running
