"""JSON log lines: one per RPC, trace id from traceparent, never a password or token."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from mesh.user.v1 import user_service_pb2
from services.platform.logging import (
    REDACTED,
    JsonFormatter,
    configure_logging,
    log_context,
    redact,
    redact_text,
)
from tests.platform.servicer_fixture import (
    BOOM_EMAIL,
    LEAKED_SECRET,
    SLOW_USER_ID,
    Running,
    SigningKey,
    UserServicer,
    bearer,
    running_server,
    user_service,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PASSWORD = "Tr0ub4dor&3-horse-staple"


class LogCapture:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def rpc_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["message"] == "rpc finished"]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    level = root.level
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter("user"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture
async def running(key: SigningKey) -> AsyncIterator[Running]:
    async with running_server(
        [user_service(UserServicer())], key_source=key.key_source()
    ) as running:
        yield running


async def test_one_json_line_per_rpc_with_propagated_trace_id_and_no_secrets(
    running: Running, key: SigningKey, logs: LogCapture
) -> None:
    token = key.token()
    request = user_service_pb2.CreateUserRequest(
        email="ada@example.com", password=PASSWORD, display_name="Ada"
    )
    metadata = (*bearer(token), ("traceparent", TRACEPARENT), ("x-request-id", "req-42"))
    await running.users.CreateUser(request, metadata=metadata, timeout=5)

    lines = logs.lines()  # every line parses as JSON
    [rpc] = logs.rpc_lines()
    assert rpc["trace_id"] == TRACE_ID
    assert rpc["request_id"] == "req-42"
    assert rpc["rpc_method"] == "/mesh.user.v1.UserService/CreateUser"
    assert rpc["grpc_code"] == "OK"
    assert rpc["duration_ms"] >= 0
    assert rpc["peer"].startswith("ipv")
    assert rpc["level"] == "info"
    assert rpc["service"] == "user"
    # The handler's own line carries the request's trace id too, its password field masked.
    [handler_line] = [line for line in lines if line["message"] == "creating user"]
    assert handler_line["trace_id"] == TRACE_ID
    assert handler_line["password"] == REDACTED
    # Neither the password nor the token, nor any part of the token, appears anywhere.
    for secret in (PASSWORD, token, *token.split(".")):
        assert secret not in logs.text


async def test_trace_id_is_generated_without_traceparent(
    running: Running, key: SigningKey, logs: LogCapture
) -> None:
    request = user_service_pb2.GetUserRequest(id="me")
    await running.users.GetUser(request, metadata=bearer(key.token()), timeout=5)
    await running.users.GetUser(request, metadata=bearer(key.token()), timeout=5)

    first, second = logs.rpc_lines()
    assert len(first["trace_id"]) == 32
    assert first["trace_id"] != second["trace_id"]
    assert first["user_id"] == "11111111-1111-4111-8111-111111111111"


async def test_failed_rpc_is_logged_with_status_and_traceback_but_no_secret(
    running: Running, logs: LogCapture
) -> None:
    request = user_service_pb2.CreateUserRequest(
        email=BOOM_EMAIL, password=PASSWORD, display_name="Ada"
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await running.users.CreateUser(request, metadata=(("traceparent", TRACEPARENT),), timeout=5)

    [rpc] = logs.rpc_lines()
    assert (rpc["grpc_code"], rpc["level"], rpc["trace_id"]) == ("INTERNAL", "error", TRACE_ID)
    [failure] = [line for line in logs.lines() if "exception" in line]
    assert failure["trace_id"] == TRACE_ID
    assert "RuntimeError" in failure["exception"]  # the full traceback stays server side
    assert LEAKED_SECRET not in logs.text
    assert PASSWORD not in logs.text


async def test_client_errors_are_info_not_error(running: Running, logs: LogCapture) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await running.users.GetUser(user_service_pb2.GetUserRequest(id="me"), timeout=5)
    [rpc] = logs.rpc_lines()
    assert (rpc["grpc_code"], rpc["level"]) == ("UNAUTHENTICATED", "info")


async def test_deadline_exceeded_is_logged_as_such(
    running: Running, key: SigningKey, logs: LogCapture
) -> None:
    request = user_service_pb2.GetUserRequest(id=SLOW_USER_ID)  # blocks until released
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.users.GetUser(request, metadata=bearer(key.token()), timeout=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):  # the server notices the deadline on its own schedule
        if logs.rpc_lines():
            break
        await asyncio.sleep(0.02)
    [rpc] = logs.rpc_lines()
    assert (rpc["grpc_code"], rpc["level"]) == ("DEADLINE_EXCEEDED", "warning")


def test_redaction_of_keys_values_and_free_text() -> None:
    jwt_like = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert redact(
        {
            "Authorization": "Bearer abc",
            "refresh_token": "r",
            "nested": {"new_password": "p", "items": [{"cookie": "c"}, "Bearer xyz"]},
            "note": f"token is {jwt_like}",
            "count": 3,
        }
    ) == {
        "Authorization": REDACTED,
        "refresh_token": REDACTED,
        "nested": {"new_password": REDACTED, "items": [{"cookie": REDACTED}, REDACTED]},
        "note": f"token is {REDACTED}",
        "count": 3,
    }
    text = redact_text('login failed password="hunter2" access_token=abc.def; api ok')
    assert "hunter2" not in text
    assert "abc.def" not in text
    assert text.endswith("api ok")


def test_formatter_redacts_extras_and_message(logs: LogCapture) -> None:
    log = logging.getLogger("tests.redaction")
    with log_context(trace_id="t" * 32):
        log.info("got header Bearer sekrit-token", extra={"client_secret": "xyz", "user": "u1"})
    [line] = logs.lines()
    assert line["trace_id"] == "t" * 32
    assert line["client_secret"] == REDACTED
    assert line["user"] == "u1"
    assert "sekrit-token" not in logs.text


def test_configure_logging_is_idempotent() -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("INFO", service_name="user", stream=io.StringIO())
        configure_logging("INFO", service_name="user", stream=stream)
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1
        logging.getLogger("tests.configure").info("hello")
        assert json.loads(stream.getvalue())["message"] == "hello"
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
