"""Consuming the event streams the outbox relays fill: consumer groups, at-least-once, no loss.

A `StreamConsumer` reads one or more streams as a member of a consumer group (each group
gets every event once; its members share the work). For each entry it decodes the
`EventEnvelope` and awaits the handler, which must commit its own transaction and be
idempotent on `envelope.id`; only then is the entry acknowledged (XACK). So:

- a consumer that dies between receiving and acknowledging leaves the entry pending; a
  restarted consumer of the same name re-reads its own pending entries first, and every
  consumer periodically claims entries other (dead) consumers left pending for longer
  than `claim_min_idle` (XAUTOCLAIM) and processes them again;
- a handler that raises leaves the entry pending too, so it is retried after
  `claim_min_idle`; after `max_deliveries` attempts it is copied to `<stream>.dead` and
  acknowledged, so one poison event cannot block a consumer forever;
- a Redis outage makes the loop back off and reconnect; the group and the stream survive
  in Redis (append-only file), and a group lost with its stream is created again.

The blocking XREADGROUP needs a client whose socket timeout is longer than `block`:
build it with `create_redis(url, socket_timeout=None)` or a value above `block`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from google.protobuf.message import DecodeError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from mesh.events.v1 import envelope_pb2
from services.platform.outbox import FIELD_PAYLOAD
from services.platform.tasks import join

_log = logging.getLogger(__name__)

EventEnvelope = envelope_pb2.EventEnvelope
Handler = Callable[[EventEnvelope], Awaitable[None]]

DEAD_LETTER_SUFFIX: Final = ".dead"


def default_consumer_name() -> str:
    """host-pid-random: unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class StreamConsumer:
    """Reads `streams` in consumer group `group` and feeds each event to `handler`."""

    def __init__(
        self,
        redis: Redis,
        streams: Sequence[str],
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        batch_size: int = 50,
        block: float = 1.0,
        claim_min_idle: float = 30.0,
        claim_interval: float | None = None,
        max_deliveries: int = 10,
        max_backoff: float = 5.0,
    ) -> None:
        if not streams:
            raise ValueError("at least one stream is required")
        self._redis = redis
        self._streams = list(streams)
        self._group = group
        self._handler = handler
        self.consumer = consumer or default_consumer_name()
        self._batch_size = batch_size
        self._block_ms = max(1, int(block * 1000))
        self._claim_min_idle_ms = max(1, int(claim_min_idle * 1000))
        self._claim_interval = claim_interval if claim_interval is not None else claim_min_idle / 2
        self._max_deliveries = max_deliveries
        self._max_backoff = max_backoff
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._groups_ready = False

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"consumer-{self.consumer}")
        return self._task

    async def stop(self) -> None:
        """Finish the entry in hand, then stop (at most one `block` later)."""
        self._stopping.set()
        task, self._task = self._task, None
        await join(task)

    async def run(self) -> None:
        """Consume until `stop()`; Redis failures are logged and retried, never raised."""
        failures = 0
        loop = asyncio.get_running_loop()
        next_claim = 0.0  # claim at once: a restarted replica picks up its predecessors' work
        own_pending_done = False
        while not self._stopping.is_set():
            try:
                await self._ensure_groups()
                if not own_pending_done:
                    await self._reprocess_own_pending()
                    own_pending_done = True
                if loop.time() >= next_claim:
                    await self.claim_abandoned()
                    next_claim = loop.time() + self._claim_interval
                await self._read(start_id=">")
            except (RedisError, OSError) as error:
                # Entries this consumer had read but not acknowledged when the connection
                # failed (the rest of a batch, an XACK that never arrived) are pending under
                # its name: take them up first on recovery instead of waiting to claim them.
                own_pending_done = False
                if _is_nogroup(error):
                    self._groups_ready = False
                    continue
                failures += 1
                delay = min(self._max_backoff, 0.05 * 2**failures) * random.uniform(0.5, 1.0)
                _log.warning(
                    "event consumer failed, backing off: %s",
                    type(error).__name__,
                    extra={"group": self._group, "failures": failures},
                )
                await self._sleep(delay)
                continue
            failures = 0

    # --- reading ---------------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        for stream in self._streams:
            try:
                # id "0": a new group starts at the beginning, so events written before the
                # first consumer ever started (sign-ups during a deploy) are not skipped.
                await self._redis.xgroup_create(stream, self._group, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._groups_ready = True

    async def _reprocess_own_pending(self) -> None:
        """Process once each entry already delivered to this consumer name and not acked.

        Those are left by a crash and restart under the same name, or by a connection lost
        mid-batch. The read position moves past each entry, so an entry whose handler fails
        again is not re-read in a tight loop (claiming retries it later, after a pause).
        """
        cursors: dict[Any, Any] = dict.fromkeys(self._streams, "0")
        while cursors and not self._stopping.is_set():
            response = await self._redis.xreadgroup(
                self._group, self.consumer, dict(cursors), count=self._batch_size
            )
            returned = {_text(stream): entries for stream, entries in _as_pairs(response)}
            for stream in list(cursors):
                entries = returned.get(stream)
                if not entries:
                    del cursors[stream]
                    continue
                for entry_id, fields in entries:
                    if self._stopping.is_set():
                        return
                    if fields:
                        await self._process(stream, entry_id, fields)
                    else:  # pending entry whose data was trimmed away
                        await self._redis.xack(stream, self._group, entry_id)
                    cursors[stream] = _text(entry_id)

    async def _read(self, *, start_id: str) -> int:
        """One XREADGROUP over every stream; returns how many entries were handled."""
        block = None if start_id != ">" else self._block_ms
        response = await self._redis.xreadgroup(
            self._group,
            self.consumer,
            dict.fromkeys(self._streams, start_id),
            count=self._batch_size,
            block=block,
        )
        handled = 0
        for stream, entries in _as_pairs(response):
            for entry_id, fields in entries:
                if self._stopping.is_set():
                    return handled
                if not fields:  # pending entry whose data was trimmed away
                    await self._redis.xack(stream, self._group, entry_id)
                    continue
                await self._process(_text(stream), entry_id, fields)
                handled += 1
        return handled

    async def claim_abandoned(self) -> int:
        """Take over entries pending longer than `claim_min_idle` and process them."""
        handled = 0
        for stream in self._streams:
            cursor = "0-0"
            while not self._stopping.is_set():
                result = await self._redis.xautoclaim(
                    stream,
                    self._group,
                    self.consumer,
                    min_idle_time=self._claim_min_idle_ms,
                    start_id=cursor,
                    count=self._batch_size,
                )
                cursor, entries = _text(result[0]), result[1]
                for entry_id, fields in entries:
                    if fields:
                        await self._process(stream, entry_id, fields)
                        handled += 1
                if cursor == "0-0":
                    break
        if handled:
            _log.info("claimed abandoned events", extra={"group": self._group, "count": handled})
        return handled

    async def _process(self, stream: str, entry_id: Any, fields: dict[Any, Any]) -> None:
        payload = fields.get(FIELD_PAYLOAD.encode()) or fields.get(FIELD_PAYLOAD)
        try:
            envelope = EventEnvelope.FromString(payload if isinstance(payload, bytes) else b"")
            if not envelope.id:
                raise DecodeError("envelope without id")
        except DecodeError:
            _log.error("undecodable event dead-lettered", extra={"stream": stream})
            await self._dead_letter(stream, entry_id, fields)
            return
        try:
            await self._handler(envelope)
        except Exception:
            _log.exception(
                "event handler failed; the event stays pending",
                extra={"stream": stream, "event_id": envelope.id, "event_type": envelope.type},
            )
            if await self._delivery_count(stream, entry_id) >= self._max_deliveries:
                await self._dead_letter(stream, entry_id, fields)
            return
        await self.acknowledge(stream, entry_id)

    async def acknowledge(self, stream: str, entry_id: Any) -> None:
        """XACK, after the handler committed. Tests override it to die right before."""
        await self._redis.xack(stream, self._group, entry_id)

    async def _delivery_count(self, stream: str, entry_id: Any) -> int:
        pending = await self._redis.xpending_range(
            stream, self._group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _dead_letter(self, stream: str, entry_id: Any, fields: dict[Any, Any]) -> None:
        await self._redis.xadd(stream + DEAD_LETTER_SUFFIX, fields)
        await self._redis.xack(stream, self._group, entry_id)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _as_pairs(response: Any) -> list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]]:
    # RESP2 (the client default): [[stream, [(id, fields), ...]], ...]
    return [(stream, entries) for stream, entries in response or ()]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_nogroup(error: Exception) -> bool:
    return isinstance(error, ResponseError) and "NOGROUP" in str(error)


__all__ = [
    "DEAD_LETTER_SUFFIX",
    "EventEnvelope",
    "Handler",
    "StreamConsumer",
    "default_consumer_name",
]
