"""Waiting until processes answer: gRPC health checks and Envoy's admin endpoint."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

_POLL_SECONDS = 0.2


class NotHealthy(TimeoutError):
    """A process did not become healthy in time."""


async def wait_grpc_serving(port: int, deadline: float, *, name: str) -> None:
    """Until 127.0.0.1:`port` answers SERVING for the whole server ("")."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise NotHealthy(f"{name} (port {port}) is not serving")
            await asyncio.sleep(_POLL_SECONDS)


async def wait_envoy_ready(admin_port: int, clusters: dict[str, int], deadline: float) -> None:
    """Until Envoy is LIVE and sees `clusters[name]` healthy endpoints in each cluster."""
    while True:
        try:
            stats = await asyncio.to_thread(
                _admin_get, admin_port, "/stats?filter=membership_healthy"
            )
            healthy = {
                m["cluster"]: int(m["count"])
                for m in re.finditer(
                    r"cluster\.(?P<cluster>[\w-]+)\.membership_healthy: (?P<count>\d+)", stats
                )
            }
            if all(healthy.get(name, 0) >= count for name, count in clusters.items()):
                ready = await asyncio.to_thread(_admin_get, admin_port, "/ready")
                if ready.strip() == "LIVE":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NotHealthy("envoy did not become ready with healthy clusters")
        await asyncio.sleep(_POLL_SECONDS)


def _admin_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return str(response.read().decode())


__all__ = ["NotHealthy", "wait_envoy_ready", "wait_grpc_serving"]
