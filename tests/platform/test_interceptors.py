"""The interceptor chain on a real server: validation, error mapping, identity, streaming."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import code_pb2, error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status

from mesh.notification.v1 import notification_service_pb2
from mesh.user.v1 import user_pb2, user_service_pb2
from services.platform.identity import JwksKeySource, StaticKeySource, UnknownKey
from tests.platform.servicer_fixture import (
    AUDIENCE,
    BOOM_EMAIL,
    ISSUER,
    LEAKED_SECRET,
    NotificationServicer,
    Running,
    SigningKey,
    UserServicer,
    WritingNotificationServicer,
    bearer,
    notification_service,
    running_server,
    user_service,
)

VALID_SIGNUP = {
    "email": "ada@example.com",
    "password": "correct-horse-battery",
    "display_name": "Ada",
}


@pytest.fixture
def key() -> SigningKey:
    return SigningKey()


@pytest.fixture
async def running(key: SigningKey) -> AsyncIterator[Running]:
    services = [user_service(UserServicer()), notification_service(NotificationServicer())]
    async with running_server(services, key_source=key.key_source()) as running:
        yield running


def details(error: grpc.aio.AioRpcError) -> tuple[Any, dict[str, Any]]:
    """The decoded google.rpc.Status and its details by type name."""
    # AioRpcError offers the synchronous accessors from_call reads.
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, "no grpc-status-details-bin trailer"
    by_type: dict[str, Any] = {}
    for packed in status.details:
        for message in (error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()):
            if packed.Is(message.DESCRIPTOR):
                packed.Unpack(message)
                by_type[type(message).__name__] = message
    return status, by_type


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


# --- validation -----------------------------------------------------------------------------


async def test_invalid_request_names_each_field(running: Running) -> None:
    request = user_service_pb2.CreateUserRequest(
        **{**VALID_SIGNUP, "email": "not-an-email", "password": "short"}
    )
    error = await rpc_error(running.users.CreateUser(request, timeout=5))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, found = details(error)
    assert status.code == code_pb2.INVALID_ARGUMENT
    fields = {v.field: v.description for v in found["BadRequest"].field_violations}
    assert set(fields) == {"email", "password"}
    assert "email" in fields["email"]
    assert found["ErrorInfo"].reason == "INVALID_REQUEST"
    assert found["ErrorInfo"].domain == "user.mesh.dev"
    assert "short" not in (error.details() or "")  # the rejected value is not echoed


async def test_nested_field_path(running: Running, key: SigningKey) -> None:
    request = user_service_pb2.UpdateUserRequest(
        user=user_pb2.User(id="me", display_name="x" * 65),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )
    error = await rpc_error(
        running.users.UpdateUser(request, metadata=bearer(key.token()), timeout=5)
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, found = details(error)
    assert [v.field for v in found["BadRequest"].field_violations] == ["user.display_name"]


async def test_valid_request_reaches_the_handler(running: Running) -> None:
    response = await running.users.CreateUser(
        user_service_pb2.CreateUserRequest(**VALID_SIGNUP), timeout=5
    )
    assert response.user.email == VALID_SIGNUP["email"]


# --- error mapping --------------------------------------------------------------------------


async def test_domain_error_becomes_rich_status(running: Running) -> None:
    request = user_service_pb2.CreateUserRequest(**{**VALID_SIGNUP, "email": "taken@example.com"})
    error = await rpc_error(running.users.CreateUser(request, timeout=5))

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    _, found = details(error)
    info = found["ErrorInfo"]
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "EMAIL_TAKEN",
        "user.mesh.dev",
        {"field": "email"},
    )


async def test_unexpected_exception_is_internal_without_details(running: Running) -> None:
    request = user_service_pb2.CreateUserRequest(**{**VALID_SIGNUP, "email": BOOM_EMAIL})
    error = await rpc_error(
        running.users.CreateUser(
            request, metadata=(("traceparent", f"00-{'ab' * 16}-{'cd' * 8}-01"),), timeout=5
        )
    )

    assert error.code() == grpc.StatusCode.INTERNAL
    assert (error.details() or "") == f"internal error (trace_id={'ab' * 16})"
    everything = (error.details() or "") + repr(error.trailing_metadata())
    for leak in (LEAKED_SECRET, "Traceback", "RuntimeError", "database", VALID_SIGNUP["password"]):
        assert leak not in everything
    _, found = details(error)
    assert found["ErrorInfo"].reason == "INTERNAL_ERROR"
    assert found["ErrorInfo"].metadata["trace_id"] == "ab" * 16


# --- identity -------------------------------------------------------------------------------


async def test_valid_token_sets_the_caller(running: Running, key: SigningKey) -> None:
    token = key.token(subject="22222222-2222-4222-8222-222222222222")
    response = await running.users.GetUser(
        user_service_pb2.GetUserRequest(id="me"), metadata=bearer(token), timeout=5
    )
    assert response.user.id == "22222222-2222-4222-8222-222222222222"


def _segment(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "x", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE, "iat": now}
    return {**claims, "exp": now + 60, **overrides}


def _unsigned_token(key: SigningKey) -> str:
    header = {"alg": "none", "kid": key.kid, "typ": "JWT"}
    return f"{_segment(header)}.{_segment(_claims())}."


def _hs256_with_public_key(key: SigningKey) -> str:
    # Algorithm confusion: an HMAC "signature" keyed with the public key anyone can fetch.
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = f"{_segment(header)}.{_segment(_claims())}"
    public_key = base64.urlsafe_b64decode(key.public_jwk_dict()["x"] + "==")
    signature = hmac.new(public_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_segment(signature)}"


BAD_TOKENS = {
    "forged": lambda key: SigningKey(kid=key.kid).token(),  # same kid, another private key
    "expired": lambda key: key.token(expires_in=-3600),
    "alg-none": _unsigned_token,
    "alg-hs256": _hs256_with_public_key,
    "wrong-audience": lambda key: key.token(audience="someone-else"),
    "wrong-issuer": lambda key: key.token(issuer="https://evil.example"),
    "unknown-kid": lambda key: key.token(kid="rotated-away"),
    "garbage": lambda key: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_are_unauthenticated(running: Running, key: SigningKey, case: str) -> None:
    token = BAD_TOKENS[case](key)
    error = await rpc_error(
        running.users.GetUser(
            user_service_pb2.GetUserRequest(id="me"), metadata=bearer(token), timeout=5
        )
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    _, found = details(error)
    expected = "TOKEN_EXPIRED" if case == "expired" else "TOKEN_INVALID"
    assert found["ErrorInfo"].reason == expected
    assert token not in (error.details() or "")


async def test_missing_token_is_unauthenticated_before_validation(running: Running) -> None:
    # An anonymous caller learns nothing about a protected method's request rules.
    error = await rpc_error(
        running.users.GetUser(user_service_pb2.GetUserRequest(id="not-a-uuid"), timeout=5)
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert details(error)[1]["ErrorInfo"].reason == "TOKEN_MISSING"


async def test_admin_method_with_user_role_is_permission_denied(
    running: Running, key: SigningKey
) -> None:
    request = user_service_pb2.ListUsersRequest()
    error = await rpc_error(
        running.users.ListUsers(request, metadata=bearer(key.token(roles=["user"])), timeout=5)
    )

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    info = details(error)[1]["ErrorInfo"]
    assert (info.reason, dict(info.metadata)) == ("ROLE_REQUIRED", {"required_role": "admin"})

    admin = key.token(subject="33333333-3333-4333-8333-333333333333", roles=["admin"])
    response = await running.users.ListUsers(request, metadata=bearer(admin), timeout=5)
    assert [u.id for u in response.users] == ["33333333-3333-4333-8333-333333333333"]


async def test_public_method_ignores_a_stale_token(running: Running, key: SigningKey) -> None:
    stale = key.token(expires_in=-3600)
    request = user_service_pb2.CreateUserRequest(**VALID_SIGNUP)
    response = await running.users.CreateUser(request, metadata=bearer(stale), timeout=5)
    assert response.user.display_name == "Ada"


async def test_jwks_key_source_refreshes_on_unknown_kid_at_most_once_per_interval() -> None:
    old, new = SigningKey(), SigningKey()
    published = {"keys": [old.public_jwk_dict()]}
    fetches = 0
    now = 1000.0

    async def fetch() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        return published

    source = JwksKeySource(fetch, min_refresh_interval=10, max_age=300, clock=lambda: now)
    assert (await source.get_key(old.kid)).key_id == old.kid
    with pytest.raises(UnknownKey):
        await source.get_key(new.kid)  # refresh just happened: no refetch, unknown
    assert fetches == 1

    published = {"keys": [old.public_jwk_dict(), new.public_jwk_dict()]}  # rotation
    now += 11
    assert (await source.get_key(new.kid)).key_id == new.kid
    with pytest.raises(UnknownKey):
        await source.get_key("forged-kid")  # rate limited: no third fetch
    assert fetches == 2


async def test_static_key_source_from_jwks(key: SigningKey) -> None:
    source = StaticKeySource.from_jwks(
        {"keys": [key.public_jwk_dict(), {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}
    )
    assert (await source.get_key(key.kid)).key_id == key.kid
    with pytest.raises(UnknownKey):
        await source.get_key("hmac")  # symmetric keys are never accepted


# --- server streaming -----------------------------------------------------------------------


async def test_streaming_async_generator_gets_identity_and_error_mapping(
    running: Running, key: SigningKey
) -> None:
    request = notification_service_pb2.SubscribeNotificationsRequest()
    error = await rpc_error(
        _collect(running.notifications.SubscribeNotifications(request, timeout=5))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    received: list[Any] = []
    call = running.notifications.SubscribeNotifications(
        request, metadata=bearer(key.token(subject="u-1")), timeout=5
    )

    async def consume() -> None:
        async for message in call:
            received.append(message)

    error = await rpc_error(consume())
    assert [m.WhichOneof("event") for m in received] == ["heartbeat", "notification"]
    assert received[1].notification.user_id == "u-1"
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert details(error)[1]["ErrorInfo"].reason == "SERVER_DRAINING"


async def test_streaming_coroutine_writer(key: SigningKey) -> None:
    services = [notification_service(WritingNotificationServicer())]
    async with running_server(services, key_source=key.key_source()) as running:
        call = running.notifications.SubscribeNotifications(
            notification_service_pb2.SubscribeNotificationsRequest(),
            metadata=bearer(key.token(subject="u-2")),
            timeout=5,
        )
        titles = [m.notification.title async for m in call]
        assert titles == ["one", "two"]
        assert await call.code() == grpc.StatusCode.OK


async def _collect(call: Any) -> list[Any]:
    return [message async for message in call]
