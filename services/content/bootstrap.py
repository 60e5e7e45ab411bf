"""Composition root: wires settings, the database, Redis, the user client and the relay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from redis.asyncio import Redis

from mesh.content.v1 import content_service_pb2_grpc, post_pb2
from services.platform.cache import ProtoCache
from services.platform.db import Database
from services.platform.outbox import OutboxRelay, stream_name
from services.platform.server import Service

from .service import SOURCE, AuthorDirectory, ContentService
from .servicer import ContentServicer
from .store import ContentTables

SCHEMA: Final = "content"
SERVICE_NAME: Final = "mesh.content.v1.ContentService"
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations" / "versions"


@dataclass
class ContentApp:
    service: Service
    relay: OutboxRelay


def bootstrap(
    *,
    database: Database,
    redis: Redis,
    authors: AuthorDirectory,
    page_token_secret: bytes,
    schema: str = SCHEMA,
    relay_poll_interval: float = 0.2,
    relay_max_backoff: float = 5.0,
    stream: str | None = None,
) -> ContentApp:
    cache = ProtoCache(redis, post_pb2.Post, prefix=f"{schema}:post", ttl=timedelta(minutes=5))
    service = ContentService(database, ContentTables(schema), authors, cache, page_token_secret)
    servicer = ContentServicer(service)
    relay = OutboxRelay(
        database,
        redis,
        schema,
        stream or stream_name(SOURCE),
        poll_interval=relay_poll_interval,
        max_backoff=relay_max_backoff,
    )
    grpc_service = Service(
        servicer, content_service_pb2_grpc.add_ContentServiceServicer_to_server, SERVICE_NAME
    )
    return ContentApp(service=grpc_service, relay=relay)
