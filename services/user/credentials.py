"""The auth service, as the user service sees it: where credentials are set and disabled.

Calls the INTERNAL `mesh.auth.v1.AuthService.SetCredential` through its typed stub, with a
deadline on every call. The method is never routed by the edge, so it needs no token; the
password only ever travels inside the request message (never in metadata or logs).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import grpc.aio

from mesh.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from services.platform.errors import AlreadyExists, InvalidArgument, Unavailable
from services.platform.jwks import internal_channel


class GrpcCredentials:
    """`CredentialStore` over gRPC (AUTH_SERVICE_TARGET, round robin over its addresses)."""

    def __init__(self, target: str, *, timeout: float = 5.0) -> None:
        self._target = target
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> auth_service_pb2_grpc.AuthServiceAsyncStub:
        # Opened lazily, inside the running event loop that will use it.
        if self._channel is None:
            self._channel = internal_channel(self._target)
        return auth_service_pb2_grpc.AuthServiceStub(self._channel)

    async def set_credential(
        self,
        user_id: str,
        email: str,
        roles: Sequence[str],
        *,
        password: str = "",
        disabled: bool = False,
    ) -> None:
        request = auth_service_pb2.SetCredentialRequest(
            user_id=user_id, email=email, password=password, roles=list(roles), disabled=disabled
        )
        try:
            await self._stub().SetCredential(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise _domain_error(error.code()) from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None


def _domain_error(code: grpc.StatusCode) -> Exception:
    # The auth service's own message is not forwarded: it is about its request, not ours.
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(
            "the email is already registered", reason="EMAIL_TAKEN", metadata={"field": "email"}
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument("the auth service refused the credential", reason="BAD_CREDENTIAL")
    # Anything else (unreachable, deadline exceeded, ...) leaves the outcome uncertain: the
    # caller must assume the credential may have been written.
    return Unavailable(
        "the auth service is unavailable; retry later", reason="AUTH_SERVICE_UNAVAILABLE"
    )
