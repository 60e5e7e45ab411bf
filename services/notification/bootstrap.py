"""Composition root: the service, its consumer, live hub and email sender, from URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mesh.notification.v1 import notification_service_pb2_grpc
from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.events import StreamConsumer
from services.platform.outbox import stream_name
from services.platform.server import Service

from .email import EmailSender, SmtpConfig
from .live import LiveHub
from .service import NotificationService
from .servicer import NotificationServicer
from .store import NotificationTables

SCHEMA: Final = "notification"
SERVICE_NAME: Final = "mesh.notification.v1.NotificationService"
MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations" / "versions"
STREAMS: Final = (stream_name("user"), stream_name("content"))
CONSUMER_GROUP: Final = "notification"
_BLOCK_SECONDS: Final = 1.0


@dataclass
class NotificationApp:
    service: Service
    core: NotificationService
    consumer: StreamConsumer
    hub: LiveHub
    email: EmailSender | None
    _redis: list = field(default_factory=list)

    def start(self) -> None:
        """Start the background work: live hub, event consumer, email sender."""
        self.hub.start()
        self.consumer.start()
        if self.email is not None:
            self.email.start()

    async def close(self) -> None:
        await self.consumer.stop()
        if self.email is not None:
            await self.email.stop()
        await self.hub.stop()
        for client in self._redis:
            await client.aclose()


def bootstrap(
    *,
    database: Database,
    redis_url: str,
    page_token_secret: bytes,
    schema: str = SCHEMA,
    smtp: SmtpConfig | None = None,
    heartbeat_interval: float = 15.0,
    claim_min_idle: float = 30.0,
    consumer_name: str | None = None,
    channel_prefix: str | None = None,
    streams: tuple[str, ...] = STREAMS,
    group: str = CONSUMER_GROUP,
    email_poll_interval: float = 1.0,
    email_base_backoff: float = 2.0,
    consumer_block: float = _BLOCK_SECONDS,
    consumer_max_backoff: float = 5.0,
) -> NotificationApp:
    """`consumer_block` bounds how long stopping waits for an idle XREADGROUP to return;
    `consumer_max_backoff` how long the consumer waits between retries while Redis is down.
    """
    requests = create_redis(redis_url)
    # XREADGROUP BLOCK and pub/sub wait on the socket: no short read timeout for them.
    blocking = create_redis(redis_url, socket_timeout=consumer_block + 5.0)
    listening = create_redis(redis_url, socket_timeout=None, max_connections=2)
    tables = NotificationTables(schema)
    hub = LiveHub(requests, listening, prefix=channel_prefix or f"{schema}:live")
    core = NotificationService(
        database,
        tables,
        hub,
        page_token_secret,
        email_enabled=smtp is not None,
        heartbeat_interval=heartbeat_interval,
    )
    consumer = StreamConsumer(
        blocking,
        list(streams),
        group,
        core.handle_event,
        consumer=consumer_name,
        block=consumer_block,
        claim_min_idle=claim_min_idle,
        max_backoff=consumer_max_backoff,
    )
    email = (
        EmailSender(
            database,
            tables,
            smtp,
            poll_interval=email_poll_interval,
            base_backoff=email_base_backoff,
        )
        if smtp is not None
        else None
    )
    service = Service(
        NotificationServicer(core),
        notification_service_pb2_grpc.add_NotificationServiceServicer_to_server,
        SERVICE_NAME,
    )
    return NotificationApp(service, core, consumer, hub, email, [requests, blocking, listening])
