"""The sign-up's two-store ordering, driven through the use case with a scripted auth service.

The credential store is a fake so each test can decide exactly when "the auth service" fails:
after writing (a timed-out call that did land) or before. PostgreSQL and Redis are real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from mesh.user.v1 import user_pb2
from services.platform.cache import ProtoCache, create_redis
from services.platform.db import Database
from services.platform.errors import Unavailable
from services.platform.migrations import run_migrations_async
from services.platform.outbox import outbox_table
from services.user.bootstrap import MIGRATIONS
from services.user.service import UserService
from services.user.store import UserTables
from tests.user.harness import PASSWORD, unique_email


@dataclass
class ScriptedAuth:
    """Credentials by user id; `fail_after_write` makes the next set land, then time out."""

    credentials: dict[str, dict[str, object]] = field(default_factory=dict)
    fail_after_write: int = 0
    down: bool = False

    async def set_credential(
        self,
        user_id: str,
        email: str,
        roles: Sequence[str],
        *,
        password: str = "",
        disabled: bool = False,
    ) -> None:
        if self.down:
            raise Unavailable("auth down")
        self.credentials[user_id] = {"email": email, "disabled": disabled}
        if self.fail_after_write:
            self.fail_after_write -= 1
            raise Unavailable("deadline exceeded after the write")


@dataclass
class Harness:
    service: UserService
    auth: ScriptedAuth
    database: Database
    tables: UserTables


@pytest.fixture
async def saga(database_url: str, redis_url: str, unique_schema: str) -> AsyncIterator[Harness]:
    await run_migrations_async(database_url, unique_schema, MIGRATIONS)
    database = Database.connect(database_url, pool_size=2)
    redis: Redis = create_redis(redis_url)
    auth = ScriptedAuth()
    tables = UserTables(unique_schema)
    cache = ProtoCache(redis, user_pb2.User, prefix=f"{unique_schema}:user")
    service = UserService(database, tables, auth, cache, b"0123456789abcdef0123456789abcdef")
    yield Harness(service, auth, database, tables)
    await redis.aclose()
    await database.dispose()


async def _rows(saga: Harness) -> tuple[list[sa.Row[tuple[object, ...]]], int]:
    async with saga.database.uow() as tx:
        users = (await tx.session.execute(sa.select(saga.tables.users))).all()
        events = await tx.session.scalar(
            sa.select(sa.func.count()).select_from(outbox_table(saga.tables.schema))
        )
    return list(users), int(events or 0)


async def test_a_credential_that_landed_before_a_timeout_is_disabled(saga: Harness) -> None:
    saga.auth.fail_after_write = 1
    with pytest.raises(Unavailable):
        await saga.service.create_user(
            email=unique_email(), password=PASSWORD, display_name="Ada", request_id=""
        )
    [credential] = saga.auth.credentials.values()
    assert credential["disabled"] is True
    assert await _rows(saga) == ([], 0)


async def test_when_auth_stays_down_the_leftover_is_cleaned_up_once_it_is_back(
    saga: Harness,
) -> None:
    email = unique_email()
    saga.auth.fail_after_write = 1
    # The write lands, the call times out, and the clean-up cannot reach auth either.
    original = saga.auth.set_credential

    async def land_then_go_down(*args: object, **kwargs: object) -> None:
        try:
            await original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            saga.auth.down = True

    saga.auth.set_credential = land_then_go_down  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await saga.service.create_user(
            email=email, password=PASSWORD, display_name="Ada", request_id=""
        )
    [(ghost_id, credential)] = saga.auth.credentials.items()
    assert credential["disabled"] is False  # still enabled: auth was unreachable
    users, events = await _rows(saga)
    assert [(str(u.id), u.pending) for u in users] == [(ghost_id, True)]
    assert events == 0

    saga.auth.set_credential = original  # type: ignore[method-assign]
    saga.auth.down = False
    user = await saga.service.create_user(
        email=email, password=PASSWORD, display_name="Ada", request_id=""
    )
    assert saga.auth.credentials[ghost_id]["disabled"] is True
    assert saga.auth.credentials[user.id]["disabled"] is False
    users, events = await _rows(saga)
    assert [(str(u.id), u.pending) for u in users] == [(user.id, False)]
    assert events == 1
