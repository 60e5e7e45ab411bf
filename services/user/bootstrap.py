"""Composition root: wires the database, Redis, the auth client and the outbox relay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from redis.asyncio import Redis

from mesh.user.v1 import user_pb2, user_service_pb2_grpc
from services.platform.cache import ProtoCache
from services.platform.db import Database
from services.platform.outbox import OutboxRelay, stream_name
from services.platform.server import Service

from .service import SOURCE, CredentialStore, UserService
from .servicer import UserServicer
from .store import UserTables

SCHEMA: Final = "users"
SERVICE_NAME: Final = "mesh.user.v1.UserService"
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations" / "versions"


@dataclass
class UserApp:
    users: UserService
    service: Service
    relay: OutboxRelay


def bootstrap(
    *,
    database: Database,
    redis: Redis,
    credentials: CredentialStore,
    page_token_secret: bytes,
    cache_ttl: timedelta = timedelta(minutes=5),
    auth_timeout_seconds: float = 5.0,
    schema: str = SCHEMA,
    relay_poll_interval: float = 0.2,
    relay_max_backoff: float = 5.0,
    stream: str | None = None,
) -> UserApp:
    cache = ProtoCache(redis, user_pb2.User, prefix=f"{schema}:user", ttl=cache_ttl)
    users = UserService(
        database,
        UserTables(schema),
        credentials,
        cache,
        page_token_secret,
        # Well past the longest a live sign-up can take (one auth call plus two commits), so
        # only sign-ups whose process died are ever cleaned up as stale.
        stale_signup_after=timedelta(seconds=max(30.0, 3 * auth_timeout_seconds)),
    )
    relay = OutboxRelay(
        database,
        redis,
        schema,
        stream or stream_name(SOURCE),
        poll_interval=relay_poll_interval,
        max_backoff=relay_max_backoff,
    )
    service = Service(
        UserServicer(users), user_service_pb2_grpc.add_UserServiceServicer_to_server, SERVICE_NAME
    )
    return UserApp(users=users, service=service, relay=relay)
