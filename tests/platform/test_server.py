"""The server factory on a real grpc.aio server: health, reflection, draining, fail-fast."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mesh.user.v1 import user_service_pb2, user_service_pb2_grpc
from services.platform.server import create_server, serve, shutdown
from tests.platform.servicer_fixture import (
    SLOW_USER_ID,
    USER_SERVICE,
    SigningKey,
    UserServicer,
    bearer,
    make_settings,
    running_server,
    user_service,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _health(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


async def test_health_serving_then_not_serving_while_in_flight_call_completes() -> None:
    key = SigningKey()
    servicer = UserServicer()
    settings = make_settings()
    server, port = await create_server(
        settings, [user_service(servicer)], key_source=key.key_source()
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert await _health(channel) == SERVING
        assert await _health(channel, USER_SERVICE) == SERVING

        stub = user_service_pb2_grpc.UserServiceStub(channel)
        slow_call = stub.GetUser(
            user_service_pb2.GetUserRequest(id=SLOW_USER_ID),
            metadata=bearer(key.token()),
            timeout=10,
        )
        await asyncio.wait_for(servicer.started.wait(), 5)

        seen_while_draining: list[int] = []

        async def observe_draining() -> None:
            # Runs after NOT_SERVING is set and before stop(): what a load balancer sees.
            seen_while_draining.append(await _health(channel))
            seen_while_draining.append(await _health(channel, USER_SERVICE))
            # Release the in-flight call only once stop() has begun refusing new RPCs.
            asyncio.get_running_loop().call_soon(servicer.release.set)

        grace = 5.0
        started = time.monotonic()
        await shutdown(server, grace, draining=[observe_draining])
        elapsed = time.monotonic() - started

        assert seen_while_draining == [NOT_SERVING, NOT_SERVING]
        response = await slow_call  # the in-flight call finished successfully during the grace
        assert response.user.id == SLOW_USER_ID
        assert elapsed < grace  # stop() returned as soon as the call finished

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _health(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_reflection_lists_and_describes_the_service() -> None:
    async with running_server(
        [user_service(UserServicer())], key_source=SigningKey().key_source()
    ) as running:
        stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=USER_SERVICE),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests), timeout=5)]

    names = {s.name for s in responses[0].list_services_response.service}
    assert {USER_SERVICE, "grpc.health.v1.Health"} <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto  # grpcurl describe works


async def test_bearer_methods_without_a_key_source_refuse_to_start() -> None:
    with pytest.raises(ValueError, match="JWKS_URL or JWKS_PATH"):
        await create_server(make_settings(), [user_service(UserServicer())])


async def test_jwks_path_from_settings_is_a_key_source(tmp_path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    server, port = await create_server(
        make_settings(JWKS_PATH=str(jwks)), [user_service(UserServicer())]
    )
    assert port > 0
    await shutdown(server, 0)


async def test_serve_drains_on_sigterm() -> None:
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stopped = asyncio.Event()

    async def on_stopped() -> None:
        stopped.set()

    task = asyncio.create_task(
        serve(
            make_settings(SHUTDOWN_GRACE_SECONDS="1"),
            [user_service(UserServicer())],
            key_source=SigningKey().key_source(),
            on_started=started.set_result,
            stopped=[on_stopped],
        )
    )
    port = await asyncio.wait_for(started, 5)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert await _health(channel) == SERVING
    os.kill(os.getpid(), signal.SIGTERM)  # handled by serve(), not the default action
    await asyncio.wait_for(task, 5)
    assert stopped.is_set()
