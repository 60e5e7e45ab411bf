"""The user service, as the content service sees it: "is this author a live account?".

Calls `mesh.user.v1.UserService.GetUser` through its typed stub with a short deadline,
forwarding the caller's own bearer token so the user service authorises the read as the
caller (no service-wide superuser credential exists to leak).
"""

from __future__ import annotations

import grpc
import grpc.aio

from mesh.user.v1 import user_service_pb2, user_service_pb2_grpc
from services.platform.errors import PermissionDenied, Unauthenticated, Unavailable
from services.platform.jwks import internal_channel

_UNREACHABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


class GrpcUserDirectory:
    """`AuthorDirectory` over gRPC (USER_SERVICE_TARGET, round robin over its addresses)."""

    def __init__(self, target: str, *, timeout: float = 1.5) -> None:
        self._target = target
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> user_service_pb2_grpc.UserServiceAsyncStub:
        # Opened lazily, inside the running event loop that will use it.
        if self._channel is None:
            self._channel = internal_channel(self._target)
        return user_service_pb2_grpc.UserServiceStub(self._channel)

    async def ensure_active(self, user_id: str, credentials: str | None) -> None:
        metadata = (("authorization", f"Bearer {credentials}"),) if credentials else ()
        try:
            await self._stub().GetUser(
                user_service_pb2.GetUserRequest(id=user_id),
                timeout=self._timeout,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in _UNREACHABLE:
                raise Unavailable(
                    "the user service cannot confirm the author; retry later",
                    reason="USER_SERVICE_UNAVAILABLE",
                ) from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(
                    "the user service rejected the token", reason="TOKEN_INVALID"
                ) from None
            # NOT_FOUND (deleted account) or PERMISSION_DENIED: this caller may not author.
            raise PermissionDenied(
                "the caller's account is not active", reason="AUTHOR_NOT_ACTIVE"
            ) from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
