"""Verification keys fetched from the auth service's GetJwks over gRPC.

Services verify access tokens themselves (defence in depth behind Envoy). Inside the mesh
they ask the auth service for its JWKS over the internal gRPC channel:

    key_source = JwksKeySource(grpc_jwks_fetch(settings_auth_target))
    server, port = await create_server(settings, services, key_source=key_source)

`JwksKeySource` caches the keys and refetches on an unknown `kid`, so a rotation at the auth
service is picked up by the first token signed with the new key.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import grpc
import grpc.aio

from mesh.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, token_pb2

# Several replicas ("ipv4:127.0.0.1:50061,127.0.0.1:50062") are balanced call by call.
ROUND_ROBIN: Final = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
_JWK_FIELDS: Final = ("kty", "crv", "x", "n", "e", "kid", "alg", "use")


def internal_channel(target: str) -> grpc.aio.Channel:
    """An insecure channel inside the mesh, round robin over every address of `target`."""
    return grpc.aio.insecure_channel(target, options=[("grpc.service_config", ROUND_ROBIN)])


def jwk_to_dict(jwk: token_pb2.Jwk) -> dict[str, str]:
    """A JWKS entry (RFC 7517) from its proto form, without the fields left empty."""
    return {name: value for name in _JWK_FIELDS if (value := getattr(jwk, name))}


def grpc_jwks_fetch(
    target: str, *, timeout: float = 5.0
) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    """A JWKS fetcher for `JwksKeySource` calling AuthService.GetJwks on `target`.

    The channel is opened on first use (inside the running event loop) and reused.
    """
    stubs: list[auth_service_pb2_grpc.AuthServiceAsyncStub] = []

    async def fetch() -> Mapping[str, Any]:
        if not stubs:
            stubs.append(auth_service_pb2_grpc.AuthServiceStub(internal_channel(target)))
        response = await stubs[0].GetJwks(auth_service_pb2.GetJwksRequest(), timeout=timeout)
        return {"keys": [jwk_to_dict(key) for key in response.keys]}

    return fetch


__all__ = ["ROUND_ROBIN", "grpc_jwks_fetch", "internal_channel", "jwk_to_dict"]
