"""Reading notifications over the real channel, and waiting for them (and their acks)."""

from __future__ import annotations

from redis.asyncio import Redis

from mesh.notification.v1 import notification_pb2
from mesh.notification.v1 import notification_service_pb2 as pb
from tests.notification.conftest import Env, Replica, eventually

Notification = notification_pb2.Notification


async def listed(
    replica: Replica, env: Env, user_id: str, **request: int | bool
) -> list[Notification]:
    """Every notification of `user_id`, page by page, newest first."""
    found: list[Notification] = []
    token = ""
    while True:
        page = await replica.stub.ListNotifications(
            pb.ListNotificationsRequest(page_token=token, **request),  # type: ignore[arg-type]
            metadata=env.auth(user_id),
        )
        found += page.notifications
        token = page.next_page_token
        if not token:
            return found


async def arrived(
    replica: Replica, env: Env, user_id: str, count: int = 1, within: float = 10.0
) -> list[Notification]:
    """Wait until `user_id` has (at least) `count` notifications; return them."""
    seen: list[Notification] = []

    async def enough() -> bool:
        nonlocal seen
        seen = await listed(replica, env, user_id)
        return len(seen) >= count

    await eventually(enough, within)
    return seen


async def all_acknowledged(redis: Redis, stream: str, group: str = "notification") -> bool:
    """No entry of `stream` is pending (read but not acknowledged) in the replicas' group."""
    summary = await redis.xpending(stream, group)
    return int(summary["pending"]) == 0
