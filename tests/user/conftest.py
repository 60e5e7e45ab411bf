"""User tests: one migrated auth schema per session; a real auth and user server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

# The auth service's own fixtures (a migrated schema per session, a real server per test).
from tests.auth.conftest import auth, auth_schema, keys_dir  # noqa: F401
from tests.auth.harness import RunningAuth
from tests.user.harness import RunningUsers, running_users


@pytest.fixture
async def users(
    database_url: str,
    redis_url: str,
    unique_schema: str,
    auth: RunningAuth,  # noqa: F811
) -> AsyncIterator[RunningUsers]:
    async with running_users(database_url, redis_url, unique_schema, auth) as running:
        yield running
