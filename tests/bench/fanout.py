"""R5: notification fan-out to 100 open streams, and the latency from comment to stream.

The post's author opens `streams` SubscribeNotifications streams on the notification service;
another user comments on the post with `in_flight` CreateComment calls at a time for
`duration` seconds (the delivery rate), then at half that comment rate, paced (the
latency). Each comment becomes one event (content outbox → Redis stream →
notification service → live hub) delivered once per open stream. The comment body carries the
send time, so each delivery's latency is receive time - send time (same clock, same host).
The streams are read by this process: at high rates the reader itself can become the limit,
which the delivered-vs-expected count makes visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import grpc
import grpc.aio

from mesh.content.v1 import content_service_pb2, content_service_pb2_grpc, post_pb2
from mesh.notification.v1 import notification_service_pb2, notification_service_pb2_grpc
from tests.bench.stack import Stack

STREAMS_PER_CHANNEL = 25  # HTTP/2 streams share a connection, as browsers behind Envoy would


@dataclass
class FanoutRep:
    comments: int = 0
    delivered: int = 0
    expected: int = 0
    seconds: float = 0.0
    events_per_second: float = 0.0  # closed loop: deliveries per second until drained
    latencies_ms: list[float] = field(default_factory=list)  # open loop at half that rate

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

        return {
            "comments": self.comments,
            "delivered": self.delivered,
            "expected": self.expected,
            "events_per_second": self.events_per_second,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
        }


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def run_fanout(stack: Stack, *, streams: int, duration: float, in_flight: int) -> FanoutRep:
    rep = FanoutRep()
    channels = [
        grpc.aio.insecure_channel(stack.notification_grpc)
        for _ in range(max(1, -(-streams // STREAMS_PER_CHANNEL)))
    ]
    content = grpc.aio.insecure_channel(stack.content_grpc)
    calls: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    try:
        posts = content_service_pb2_grpc.ContentServiceStub(content)
        post = await posts.CreatePost(
            content_service_pb2.CreatePostRequest(
                post=post_pb2.Post(
                    title="Fan-out", body="bench", state=post_pb2.POST_STATE_PUBLISHED
                )
            ),
            metadata=_auth(stack.token),
            timeout=10,
        )
        all_delivered = asyncio.Event()

        async def read(call: Any) -> None:
            async for message in call:
                if message.HasField("notification"):
                    sent = int(message.notification.body.split(":", 1)[1])
                    rep.latencies_ms.append((time.time_ns() - sent) / 1e6)
                    rep.delivered += 1
                    if rep.expected and rep.delivered >= rep.expected:
                        all_delivered.set()

        for index in range(streams):
            stub = notification_service_pb2_grpc.NotificationServiceStub(
                channels[index // STREAMS_PER_CHANNEL]
            )
            call = stub.SubscribeNotifications(
                notification_service_pb2.SubscribeNotificationsRequest(),
                metadata=_auth(stack.token),
            )
            await call.wait_for_connection()
            calls.append(call)
            readers.append(asyncio.create_task(read(call)))
        await asyncio.sleep(0.5)  # the streams' subscriptions reach the live hub

        async def comment() -> None:
            await posts.CreateComment(
                content_service_pb2.CreateCommentRequest(
                    post_id=post.post.id, comment=post_pb2.Comment(body=f"t:{time.time_ns()}")
                ),
                metadata=_auth(stack.admin_token),
                timeout=10,
            )
            rep.comments += 1

        async def drained() -> None:
            """Waits (at most 5 s) until every event so far reached every stream."""
            rep.expected = rep.comments * streams
            all_delivered.clear()
            if rep.delivered >= rep.expected:
                all_delivered.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_delivered.wait(), timeout=5)

        # Closed loop: `in_flight` commenters as fast as comments are accepted; the delivery
        # rate counts until the last event reached every stream.
        stop_at = time.monotonic() + duration

        async def commenter() -> None:
            while time.monotonic() < stop_at:
                await comment()

        started = time.monotonic()
        await asyncio.gather(*(commenter() for _ in range(in_flight)))
        await drained()
        rep.seconds = time.monotonic() - started
        rep.events_per_second = rep.delivered / rep.seconds if rep.seconds else 0.0
        # Open loop at half that rate: the comment-to-stream latency without the queueing.
        rate = max(1.0, rep.comments / rep.seconds / 2)
        rep.latencies_ms.clear()
        paced_start = time.monotonic()
        pending = []
        for index in range(max(1, int(rate * duration))):
            await asyncio.sleep(max(0.0, paced_start + index / rate - time.monotonic()))
            pending.append(asyncio.create_task(comment()))
        await asyncio.gather(*pending)
        await drained()
    finally:
        for call in calls:
            call.cancel()
        for task in readers:
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        for channel in [*channels, content]:
            await channel.close(grace=None)
    return rep


def summarise_fanout(reps: list[FanoutRep]) -> dict[str, Any]:
    summaries = [rep.summary() for rep in reps]

    def med(key: str) -> float | None:
        values = [s[key] for s in summaries if s[key] is not None]
        return median(values) if values else None

    return {
        "events_per_second": med("events_per_second"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "delivered": sum(s["delivered"] for s in summaries),
        "expected": sum(s["expected"] for s in summaries),
        "reps": summaries,
    }
