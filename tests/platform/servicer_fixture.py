"""Small real servicers, signing keys and a server runner for the platform tests.

The servicers implement the generated UserService and NotificationService just enough to
exercise the platform: they read `current_caller()`, raise domain errors, fail unexpectedly on
request, block until released (for graceful-shutdown tests) and stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from mesh.notification.v1 import (
    notification_pb2,
    notification_service_pb2,
    notification_service_pb2_grpc,
)
from mesh.user.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from services.platform.errors import AlreadyExists, FailedPrecondition, Unavailable
from services.platform.identity import KeySource, StaticKeySource, require_caller
from services.platform.server import Service, create_server, shutdown
from services.platform.settings import Settings

ISSUER = "https://auth.test.mesh"
AUDIENCE = "test.mesh"
USER_SERVICE = "mesh.user.v1.UserService"
NOTIFICATION_SERVICE = "mesh.notification.v1.NotificationService"
# GetUser with this id blocks until the servicer's `release` event is set.
SLOW_USER_ID = "00000000-0000-4000-8000-000000000001"
# CreateUser with an email starting with this fails with an unexpected exception whose text
# contains this secret (which must never reach the client or the logs).
BOOM_EMAIL = "boom@example.com"
LEAKED_SECRET = "s3cr3t-db-passw0rd"

logger = logging.getLogger("tests.servicer")


def make_settings(**env: str) -> Settings:
    base = {
        "PAGE_TOKEN_SECRET": "test-page-token-secret-0123456789abcdef",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
    }
    return Settings.from_env("user", {**base, **env})


@dataclass
class SigningKey:
    """A real Ed25519 key pair issuing access tokens the way the auth service does."""

    kid: str = field(default_factory=lambda: f"kid-{uuid.uuid4().hex[:8]}")
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def public_jwk_dict(self) -> dict[str, Any]:
        """The public key as a JWKS entry, as the auth service publishes it."""
        data = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def public_jwk(self) -> jwt.PyJWK:
        return jwt.PyJWK(self.public_jwk_dict())

    def key_source(self) -> KeySource:
        return StaticKeySource({self.kid: self.public_jwk()})

    def token(
        self,
        subject: str = "11111111-1111-4111-8111-111111111111",
        roles: Sequence[str] = ("user",),
        *,
        expires_in: float = 300,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        kid: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "roles": list(roles),
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "exp": now + int(expires_in),
        }
        return jwt.encode(
            claims, self.private_key, algorithm="EdDSA", headers={"kid": kid or self.kid}
        )


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def CreateUser(
        self, request: user_service_pb2.CreateUserRequest, context: Any
    ) -> user_service_pb2.CreateUserResponse:
        # Deliberately careless: the formatter must redact what a handler should never log.
        logger.info(
            "creating user", extra={"email_domain": "example.com", "password": request.password}
        )
        if request.email == BOOM_EMAIL:
            raise RuntimeError(f"database refused connection: password={LEAKED_SECRET}")
        if request.email.startswith("taken@"):
            raise AlreadyExists(
                "email already registered", reason="EMAIL_TAKEN", metadata={"field": "email"}
            )
        user = user_pb2.User(
            id=str(uuid.uuid4()), email=request.email, display_name=request.display_name
        )
        return user_service_pb2.CreateUserResponse(user=user)

    async def GetUser(
        self, request: user_service_pb2.GetUserRequest, context: Any
    ) -> user_service_pb2.GetUserResponse:
        caller = require_caller()
        if request.id == SLOW_USER_ID:
            self.started.set()
            await self.release.wait()
        user_id = caller.user_id if request.id == "me" else request.id
        return user_service_pb2.GetUserResponse(user=user_pb2.User(id=user_id))

    async def UpdateUser(
        self, request: user_service_pb2.UpdateUserRequest, context: Any
    ) -> user_service_pb2.UpdateUserResponse:
        return user_service_pb2.UpdateUserResponse(user=request.user)

    async def DeleteUser(
        self, request: user_service_pb2.DeleteUserRequest, context: Any
    ) -> user_service_pb2.DeleteUserResponse:
        return user_service_pb2.DeleteUserResponse()

    async def ListUsers(
        self, request: user_service_pb2.ListUsersRequest, context: Any
    ) -> user_service_pb2.ListUsersResponse:
        return user_service_pb2.ListUsersResponse(
            users=[user_pb2.User(id=require_caller().user_id)]
        )


def _notification(
    user_id: str, title: str
) -> notification_service_pb2.SubscribeNotificationsResponse:
    return notification_service_pb2.SubscribeNotificationsResponse(
        notification=notification_pb2.Notification(user_id=user_id, title=title)
    )


class NotificationServicer(notification_service_pb2_grpc.NotificationServiceServicer):
    """SubscribeNotifications as an async generator: two messages, then a domain error."""

    async def SubscribeNotifications(
        self, request: notification_service_pb2.SubscribeNotificationsRequest, context: Any
    ) -> AsyncIterator[notification_service_pb2.SubscribeNotificationsResponse]:
        caller = require_caller()
        yield notification_service_pb2.SubscribeNotificationsResponse(
            heartbeat=notification_service_pb2.Heartbeat()
        )
        yield _notification(caller.user_id, "welcome")
        raise Unavailable("the server is draining, reconnect", reason="SERVER_DRAINING")

    async def ListNotifications(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")

    async def MarkNotificationRead(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")

    async def MarkAllNotificationsRead(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")

    async def GetUnreadCount(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")

    async def GetNotificationSettings(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")

    async def UpdateNotificationSettings(self, request: Any, context: Any) -> Any:
        raise FailedPrecondition("not part of the test double")


class WritingNotificationServicer(NotificationServicer):
    """SubscribeNotifications as a coroutine calling context.write, then a clean end."""

    async def SubscribeNotifications(  # type: ignore[override]
        self, request: notification_service_pb2.SubscribeNotificationsRequest, context: Any
    ) -> None:
        caller = require_caller()
        await context.write(_notification(caller.user_id, "one"))
        await context.write(_notification(caller.user_id, "two"))


def user_service(servicer: UserServicer) -> Service:
    return Service(servicer, user_service_pb2_grpc.add_UserServiceServicer_to_server, USER_SERVICE)


def notification_service(servicer: NotificationServicer) -> Service:
    return Service(
        servicer,
        notification_service_pb2_grpc.add_NotificationServiceServicer_to_server,
        NOTIFICATION_SERVICE,
    )


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    channel: grpc.aio.Channel

    @property
    def users(self) -> user_service_pb2_grpc.UserServiceAsyncStub:
        return user_service_pb2_grpc.UserServiceStub(self.channel)

    @property
    def notifications(self) -> notification_service_pb2_grpc.NotificationServiceAsyncStub:
        return notification_service_pb2_grpc.NotificationServiceStub(self.channel)


@asynccontextmanager
async def running_server(
    services: Sequence[Service],
    *,
    key_source: KeySource,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Running]:
    """A started server on 127.0.0.1:<free port> and a channel to it; stopped on exit."""
    settings = settings or make_settings(**(env or {}))
    server, port = await create_server(settings, services, key_source=key_source)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(server, port, channel)
    finally:
        await channel.close(None)
        await shutdown(server, 0)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
