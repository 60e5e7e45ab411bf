"""Sign-up over gRPC: validation, uniqueness, the credential at the real auth service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import grpc.aio
import jwt
import pytest
import sqlalchemy as sa

from mesh.auth.v1 import auth_service_pb2
from mesh.events.v1 import envelope_pb2
from mesh.user.v1 import events_pb2, user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from services.platform.outbox import outbox_table
from services.user.store import UserRepository, UserTables
from tests.auth.helpers import bad_fields, bearer, error_reason, rpc_error
from tests.user.harness import PASSWORD, RunningUsers, running_users, unique_email


async def test_sign_up_returns_the_user_and_allows_login(users: RunningUsers) -> None:
    email = unique_email("Ada")
    user = await users.sign_up(email=email.upper(), name=" Ada Lovelace ")

    assert user.email == email.lower()
    assert user.display_name == "Ada Lovelace"
    assert user.role == user_pb2.ROLE_USER
    assert uuid.UUID(user.id)
    assert user.create_time.seconds > 0
    login = await users.auth.login(email.upper(), PASSWORD)
    me = await users.stub.GetUser(
        pb.GetUserRequest(id="me"), metadata=bearer(login.access_token), timeout=5
    )
    assert me.user == user


async def test_duplicate_email_is_already_exists(users: RunningUsers) -> None:
    user = await users.sign_up()
    error = await rpc_error(users.sign_up(email=user.email.upper()))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error) == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("email", "password", "name", "field"),
    [
        ("not-an-email", PASSWORD, "Ada", "email"),
        ("", PASSWORD, "Ada", "email"),
        ("{email}", "short", "Ada", "password"),
        ("{email}", "aaaaaaaaaaaaaaaa", "Ada", "password"),
        ("{email}", "Password1234!", "Ada", "password"),
        ("{email}", "abcdefghijklmnop", "Ada", "password"),
        ("{email}", "{local}-rocks-99", "Ada", "password"),
        ("{email}", PASSWORD, "", "display_name"),
        ("{email}", PASSWORD, "x" * 65, "display_name"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    users: RunningUsers, email: str, password: str, name: str, field: str
) -> None:
    address = unique_email("grace")
    local = address.split("@")[0]
    request = pb.CreateUserRequest(
        email=email.format(email=address),
        password=password.format(local=local),
        display_name=name,
    )
    error = await rpc_error(users.stub.CreateUser(request, timeout=10))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(error) == {field}
    assert password.format(local=local) not in (error.details() or "")
    async with users.database.uow() as tx:
        count = await tx.session.scalar(sa.select(sa.func.count()).select_from(_users(users)))
    assert count == 0  # no partial write


async def test_user_created_event_is_written_with_the_user(users: RunningUsers) -> None:
    user = await users.sign_up(name="Ada")

    outbox = outbox_table(users.schema)
    async with users.database.uow() as tx:
        rows = (await tx.session.execute(sa.select(outbox, _xmin(outbox)))).all()
        live = (
            await tx.session.execute(sa.select(_xmin(_users(users))).select_from(_users(users)))
        ).one()
    assert len(rows) == 1
    assert rows[0].type == "user.created"
    assert rows[0].xmin == live.xmin  # written by the same transaction
    envelope = envelope_pb2.EventEnvelope.FromString(rows[0].payload)
    event = events_pb2.UserCreatedEvent()
    assert envelope.payload.Unpack(event)
    assert envelope.source == "user"
    assert (event.user_id, event.email, event.display_name) == (user.id, user.email, "Ada")


async def test_relay_publishes_user_created_to_the_stream(users: RunningUsers) -> None:
    await users.sign_up()
    sent = await users.app.relay.relay_once()
    assert sent == 1


async def test_request_id_makes_sign_up_idempotent(users: RunningUsers) -> None:
    request = pb.CreateUserRequest(
        email=unique_email(), password=PASSWORD, display_name="Ada", request_id=str(uuid.uuid4())
    )
    first = await users.stub.CreateUser(request, timeout=10)
    again = await users.stub.CreateUser(request, timeout=10)
    assert again.user == first.user


async def test_auth_unreachable_leaves_no_account(
    database_url: str, redis_url: str, users: RunningUsers
) -> None:
    email = unique_email()
    # A second replica on the same schema whose auth service cannot be reached.
    async with running_users(
        database_url,
        redis_url,
        users.schema,
        users.auth,
        auth_target="127.0.0.1:1",
        auth_timeout=0.5,
    ) as broken:
        error = await rpc_error(broken.sign_up(email=email))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    async with users.database.uow() as tx:
        rows = (await tx.session.execute(sa.select(_users(users)))).all()
        events = (await tx.session.execute(sa.select(outbox_table(users.schema)))).all()
    assert [row.pending for row in rows] == [True]  # nothing anyone can read or log in to
    assert events == []
    login = await rpc_error(users.auth.login(email, PASSWORD))
    assert login.code() == grpc.StatusCode.UNAUTHENTICATED
    # Once auth is back, the same email signs up at once (the leftover is cleaned up).
    user = await users.sign_up(email=email)
    assert (await users.auth.login(email, PASSWORD)).access_token
    async with users.database.uow() as tx:
        rows = (await tx.session.execute(sa.select(_users(users)))).all()
    assert [(str(row.id), row.pending) for row in rows] == [(user.id, False)]


def _users(users: RunningUsers) -> sa.Table:
    return UserTables(users.schema).users


def _xmin(table: sa.Table) -> sa.Label[str]:
    """The id of the transaction that wrote the row (a PostgreSQL system column)."""
    return sa.literal_column(f"{table.name}.xmin::text").label("xmin")


async def _crashed_signup(users: RunningUsers, email: str, *, age: timedelta) -> str:
    """What a replica that died after setting the credential leaves behind."""
    async with users.database.uow() as tx:
        row = await UserRepository(tx.session, UserTables(users.schema)).insert_pending(
            email=email, display_name="Ghost", request_id=None, now=datetime.now(UTC) - age
        )
    assert row is not None
    await users.auth.stub.SetCredential(
        auth_service_pb2.SetCredentialRequest(
            user_id=str(row.id), email=email, password=f"{PASSWORD}-old", roles=["user"]
        ),
        timeout=10,
    )
    return str(row.id)


async def test_a_sign_up_that_died_half_way_is_cleaned_up_by_the_next(
    users: RunningUsers,
) -> None:
    email = unique_email()
    ghost = await _crashed_signup(users, email, age=timedelta(minutes=5))

    user = await users.sign_up(email=email)

    assert user.id != ghost
    login = await users.auth.login(email, PASSWORD)
    assert jwt.decode(login.access_token, options={"verify_signature": False})["sub"] == user.id
    stale = await rpc_error(users.auth.login(email, f"{PASSWORD}-old"))
    assert stale.code() == grpc.StatusCode.UNAUTHENTICATED
    async with users.database.uow() as tx:
        rows = (await tx.session.execute(sa.select(_users(users)))).all()
    assert [str(row.id) for row in rows] == [user.id]


async def test_a_sign_up_in_flight_holds_its_email(users: RunningUsers) -> None:
    email = unique_email()
    await _crashed_signup(users, email, age=timedelta(0))
    error = await rpc_error(users.sign_up(email=email))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_concurrent_sign_ups_for_one_email_create_one_account(users: RunningUsers) -> None:
    email = unique_email()
    results = await asyncio.gather(
        *(users.sign_up(email=email) for _ in range(4)), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, user_pb2.User)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert [e.code() for e in refused] == [grpc.StatusCode.ALREADY_EXISTS] * 3
    login = await users.auth.login(email, PASSWORD)
    assert jwt.decode(login.access_token, options={"verify_signature": False})["sub"] == (
        created[0].id
    )
