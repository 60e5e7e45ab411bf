"""start_runtime(): what every service's __main__ does, against the real database and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import grpc.aio
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.platform.runtime import start_runtime
from tests.platform.servicer_fixture import SigningKey, UserServicer, make_settings, user_service

VERSIONS = Path(__file__).parent / "migrations" / "versions"


async def test_runtime_migrates_serves_and_closes_in_reverse_order(
    database_url: str, redis_url: str, unique_schema: str, restores_instrumentation: None
) -> None:
    settings = make_settings(
        DATABASE_URL=database_url, REDIS_URL=redis_url, SHUTDOWN_GRACE_SECONDS="1"
    )
    runtime = await start_runtime(settings, unique_schema, VERSIONS)
    async with runtime.database.uow() as uow:
        tables = await uow.session.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": unique_schema},
        )
        assert "widgets" in {row[0] for row in tables}
    redis = runtime.redis()
    assert await redis.ping()

    closed: list[str] = []

    async def first() -> None:
        closed.append("first")

    async def second() -> None:
        closed.append("second")

    runtime.on_stop(first)
    runtime.on_stop(second)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        runtime.serve(
            [user_service(UserServicer())],
            key_source=SigningKey().key_source(),
            on_started=started.set_result,
        )
    )
    port = await asyncio.wait_for(started, 5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)
    # Hooks run in reverse order of registration (the Redis client, registered first, last).
    assert closed == ["second", "first"]
