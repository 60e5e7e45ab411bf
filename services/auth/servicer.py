"""AuthService over gRPC: proto messages in, use-case arguments out, and back. No SQL here."""

from __future__ import annotations

from typing import Any

from mesh.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, token_pb2
from services.auth.service import AuthService, TokenPair
from services.platform.identity import require_caller


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def Login(
        self, request: auth_service_pb2.LoginRequest, context: Any
    ) -> auth_service_pb2.LoginResponse:
        pair = await self._service.login(request.email, request.password)
        return auth_service_pb2.LoginResponse(**_token_fields(pair))

    async def RefreshToken(
        self, request: auth_service_pb2.RefreshTokenRequest, context: Any
    ) -> auth_service_pb2.RefreshTokenResponse:
        pair = await self._service.refresh(request.refresh_token)
        return auth_service_pb2.RefreshTokenResponse(**_token_fields(pair))

    async def Logout(
        self, request: auth_service_pb2.LogoutRequest, context: Any
    ) -> auth_service_pb2.LogoutResponse:
        await self._service.logout(require_caller(), request.refresh_token)
        return auth_service_pb2.LogoutResponse()

    async def GetJwks(
        self, request: auth_service_pb2.GetJwksRequest, context: Any
    ) -> auth_service_pb2.GetJwksResponse:
        keys = [token_pb2.Jwk(**jwk) for jwk in self._service.jwks()]
        return auth_service_pb2.GetJwksResponse(keys=keys)

    async def SetCredential(
        self, request: auth_service_pb2.SetCredentialRequest, context: Any
    ) -> auth_service_pb2.SetCredentialResponse:
        await self._service.set_credential(
            request.user_id,
            request.email,
            request.password,
            list(request.roles),
            disabled=request.disabled,
        )
        return auth_service_pb2.SetCredentialResponse()


def _token_fields(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }
