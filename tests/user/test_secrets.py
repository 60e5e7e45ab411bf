"""No response, log line, database column or cache entry holds a password or refresh token.

Signs up, logs in, refreshes (and fails a few times on purpose) through the real services,
then scans everything they produced for the plaintext secrets, in clear and hex-encoded.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message
from psycopg import sql
from redis.asyncio import Redis

from mesh.auth.v1 import auth_service_pb2
from mesh.user.v1 import user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from services.platform.logging import JsonFormatter
from tests.auth.helpers import bearer, rpc_error
from tests.user.harness import RunningUsers, unique_email


class _Capture(logging.Handler):
    """Keeps every record, raw (message, arguments, extras) and as the JSON line it becomes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._json = JsonFormatter("test")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self._json.format(record))
        self.lines.append(f"{record.msg!r} {record.args!r} {vars(record)!r}")


@pytest.fixture
def captured_logs() -> Iterator[_Capture]:
    root = logging.getLogger()
    handler, level = _Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _dump(database_url: str, schemas: list[str]) -> str:
    """Every row of every table of `schemas`, as text (bytea columns come out as hex)."""
    out: list[str] = []
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
            (schemas,),
        ).fetchall()
        assert len(tables) >= 5  # users, outbox, credentials, login_throttle, refresh_tokens
        for schema, table in tables:
            query = sql.SQL("SELECT t::text FROM {}.{} AS t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            out.extend(row[0] for row in connection.execute(query))
    return "\n".join(out)


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else str(value).encode().hex()


def _forms(secret: str) -> list[str]:
    return [secret, secret.encode().hex()]


async def test_no_plaintext_password_or_refresh_token_anywhere(
    users: RunningUsers,
    auth_schema: str,
    database_url: str,
    redis_url: str,
    captured_logs: _Capture,
) -> None:
    password = f"Pw-{secrets.token_urlsafe(18)}"
    wrong = f"Wrong-{secrets.token_urlsafe(18)}"
    email = unique_email("secret")
    local = email.split("@")[0]
    responses: list[Message] = []
    errors: list[str] = []

    created = await users.stub.CreateUser(
        pb.CreateUserRequest(email=email, password=password, display_name="Ada"), timeout=10
    )
    responses.append(created)
    weak = f"{local}-{secrets.token_hex(4)}"  # refused: contains the email
    refused = await rpc_error(
        users.stub.CreateUser(
            pb.CreateUserRequest(email=f"{local}@example.org", password=weak, display_name="X"),
            timeout=10,
        )
    )
    errors.append(f"{refused.details()} {refused.trailing_metadata()!r}")
    bad_login = await rpc_error(users.auth.login(email, wrong))
    assert bad_login.code() == grpc.StatusCode.UNAUTHENTICATED
    errors.append(f"{bad_login.details()} {bad_login.trailing_metadata()!r}")

    login = await users.auth.login(email, password)
    refreshed = await users.auth.stub.RefreshToken(
        auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
    )
    reused = await rpc_error(
        users.auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
        )
    )
    errors.append(f"{reused.details()} {reused.trailing_metadata()!r}")
    auth = bearer(refreshed.access_token)
    responses.append(await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth))
    responses.append(
        await users.stub.UpdateUser(
            pb.UpdateUserRequest(
                user=user_pb2.User(id="me", display_name="Countess"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=auth,
        )
    )
    responses.append(await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth))
    await users.app.relay.relay_once()  # the user.created event, relayed to the stream

    secrets_to_find = {
        "password": password,
        "wrong password": wrong,
        "refused password": weak,
        "refresh token": login.refresh_token,
        "rotated refresh token": refreshed.refresh_token,
    }
    redis = Redis.from_url(redis_url)
    try:
        cached = [
            await redis.get(key) or b""
            async for key in redis.scan_iter(match=f"{users.schema}:user:*")
        ]
        stream = await redis.xrange(f"{users.schema}:events.user")
    finally:
        await redis.aclose()
    assert cached
    assert stream
    places = {
        "responses": "\n".join(f"{m} {m.SerializeToString().hex()}" for m in responses),
        "errors": "\n".join(errors),
        "logs": "\n".join(captured_logs.lines),
        "database": _dump(database_url, [users.schema, auth_schema]),
        "redis": "\n".join(
            [_hex(value) for value in cached]
            + [f"{fields!r} {[_hex(v) for v in fields.values()]}" for _, fields in stream if fields]
        ),
    }
    # Controls: the scans see real content (non-secret values that are meant to be there).
    assert email in places["database"]
    assert email.encode().hex() in places["redis"]
    assert created.user.id in places["logs"]
    for place, text in places.items():
        for what, secret in secrets_to_find.items():
            for form in _forms(secret):
                assert form not in text, f"{what} found in {place}"
