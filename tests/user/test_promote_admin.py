"""The first admin: `python -m services.user promote-admin <email>`, never a public call."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from mesh.user.v1 import user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from services.platform.errors import NotFound
from services.user.__main__ import promote_admin
from tests.auth.harness import PAGE_TOKEN_SECRET
from tests.auth.helpers import bearer, rpc_error
from tests.user.harness import RunningUsers, unique_email


def _env(users: RunningUsers, database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "PAGE_TOKEN_SECRET": PAGE_TOKEN_SECRET,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_SERVICE_TARGET": users.auth.target,
    }


async def test_promote_admin_makes_an_administrator(
    users: RunningUsers, database_url: str, redis_url: str
) -> None:
    user, auth = await users.member("Ada")
    await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)  # cached
    denied = await rpc_error(users.stub.ListUsers(pb.ListUsersRequest(), metadata=auth))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    promoted = await promote_admin(
        user.email.upper(), _env(users, database_url, redis_url), schema=users.schema
    )

    assert promoted.role == user_pb2.ROLE_ADMIN
    read = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)
    assert read.user.role == user_pb2.ROLE_ADMIN  # the cached copy was invalidated
    admin = bearer(await users.token(user.email))  # the new role is in the next token
    listed = await users.stub.ListUsers(pb.ListUsersRequest(), metadata=admin, timeout=5)
    assert [u.id for u in listed.users] == [user.id]


async def test_promote_admin_of_an_unknown_email_is_not_found(
    users: RunningUsers, database_url: str, redis_url: str
) -> None:
    with pytest.raises(NotFound):
        await promote_admin(
            unique_email(), _env(users, database_url, redis_url), schema=users.schema
        )


def test_the_command_is_documented() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.user", "promote-admin", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(["generated", "."])},
    )
    assert result.returncode == 0, result.stderr
    assert "email" in result.stdout
