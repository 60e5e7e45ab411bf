"""Composition root of the auth service: settings → database, hasher, keys → servicer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mesh.auth.v1 import auth_service_pb2_grpc
from services.auth.keys import KeyRing, KeyRingKeySource, TokenIssuer
from services.auth.service import AuthService, LoginPolicy
from services.auth.servicer import AuthServicer
from services.auth.settings import AuthSettings
from services.platform.db import Database
from services.platform.passwords import PasswordHasher
from services.platform.server import Service

SERVICE_NAME = "mesh.auth.v1.AuthService"
# Tokens are accepted this long after `exp` by verifiers (TokenVerifier's default leeway), so
# a retired key stays published for the token lifetime plus this margin.
CLOCK_LEEWAY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class AuthApp:
    service: AuthService
    keys: KeyRing
    hasher: PasswordHasher
    database: Database

    def grpc_service(self) -> Service:
        return Service(
            AuthServicer(self.service),
            auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
            SERVICE_NAME,
        )

    def key_source(self) -> KeyRingKeySource:
        """Bearer methods (Logout) are verified against the service's own published keys."""
        return KeyRingKeySource(self.keys)

    async def close(self) -> None:
        self.hasher.shutdown()
        await self.database.dispose()


def bootstrap(
    settings: AuthSettings, database: Database, *, clock: Callable[[], float] = time.time
) -> AuthApp:
    keys = KeyRing(
        settings.keys_dir,
        retention=settings.access_ttl_seconds + CLOCK_LEEWAY_SECONDS,
        clock=clock,
    )
    issuer = TokenIssuer(
        keys,
        issuer=settings.platform.jwt_issuer,
        audience=settings.platform.jwt_audience,
        ttl_seconds=settings.access_ttl_seconds,
        clock=clock,
    )
    hasher = PasswordHasher(settings.hash_params)
    policy = LoginPolicy(
        max_failures=settings.max_failed_logins,
        lock_seconds=settings.lock_seconds,
        refresh_ttl_seconds=settings.refresh_ttl_seconds,
    )
    service = AuthService(database, hasher, keys, issuer, policy, clock=clock)
    return AuthApp(service=service, keys=keys, hasher=hasher, database=database)
