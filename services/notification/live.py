"""Live fan-out of new notifications to open streams, across replicas, via Redis pub/sub.

The replica that processes an event publishes the committed notification on the channel
`<prefix>:<user_id>`. Every replica holds one pattern subscription (`<prefix>:*`) and hands
each message to the streams its own clients opened for that user. Pub/sub is fire and forget:
a stream that was not open misses the message, which is fine because the notification is
already stored and listed; the stream is only the "new since you looked" push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Final

from google.protobuf.message import DecodeError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mesh.notification.v1 import notification_pb2

_log = logging.getLogger(__name__)

CLOSED: Final = None  # queued to a stream to tell it the server is draining
Item = notification_pb2.Notification | None


class LiveHub:
    def __init__(self, publisher: Redis, subscriber: Redis, *, prefix: str) -> None:
        self._publisher = publisher
        # Its own client: a subscribed connection can do nothing but listen.
        self._subscriber = subscriber
        self._prefix = prefix
        self._streams: dict[str, set[asyncio.Queue[Item]]] = defaultdict(set)
        self.ready = asyncio.Event()
        self.draining = False
        self._task: asyncio.Task[None] | None = None

    def channel(self, user_id: str) -> str:
        return f"{self._prefix}:{user_id}"

    async def publish(self, notification: notification_pb2.Notification) -> None:
        """Best effort: a Redis failure only costs the live push, never the notification."""
        try:
            await self._publisher.publish(
                self.channel(notification.user_id), notification.SerializeToString()
            )
        except RedisError as error:
            _log.warning("live publish failed: %s", type(error).__name__)

    @contextlib.contextmanager
    def listen(self, user_id: str) -> Iterator[asyncio.Queue[Item]]:
        queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=1000)
        self._streams[user_id].add(queue)
        try:
            yield queue
        finally:
            listeners = self._streams.get(user_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._streams[user_id]

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="live-hub")

    async def drain(self) -> None:
        """End every open stream cleanly (the server is shutting down)."""
        self.draining = True
        for listeners in self._streams.values():
            for queue in listeners:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(CLOSED)

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{self._prefix}:*")
                self.ready.set()
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as error:
                self.ready.clear()
                failures += 1
                _log.warning("live subscription lost, reconnecting: %s", type(error).__name__)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _dispatch(self, message: dict[str, object]) -> None:
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        user_id = channel.decode().rpartition(":")[2]
        listeners = self._streams.get(user_id)
        if not listeners:
            return
        try:
            notification = notification_pb2.Notification.FromString(data)
        except DecodeError:
            # Whatever else lands on the channel must not end the subscription loop.
            _log.warning("undecodable live message ignored")
            return
        for queue in listeners:
            try:
                queue.put_nowait(notification)
            except asyncio.QueueFull:
                _log.warning("slow notification stream dropped a message")
