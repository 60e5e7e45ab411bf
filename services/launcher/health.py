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
# The first checks hit a port nobody listens on yet; gRPC's default reconnect backoff (1s,
# growing to minutes) would then delay noticing the server by seconds.
_FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


class NotHealthy(TimeoutError):
    """A process did not become healthy in time."""


async def wait_grpc_serving(port: int, deadline: float, *, name: str) -> None:
    """Until 127.0.0.1:`port` answers SERVING for the whole server ("")."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=_FAST_RECONNECT) as channel:
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


async def wait_envoy_ready(
    admin_port: int, clusters: dict[str, int], deadline: float, *, jwks: bool = True
) -> None:
    """Until Envoy is LIVE, sees `clusters[name]` healthy endpoints in each cluster and (with
    `jwks`) has fetched the JWKS.

    Envoy's first JWKS fetch runs before its own listeners accept connections, and the JWKS
    is served through one of them, so that fetch fails and is retried a moment later; until
    then every bearer request would get 401.
    """
    while True:
        try:
            stats = await asyncio.to_thread(
                _admin_get, admin_port, "/stats?filter=membership_healthy%7Cjwks_fetch_success"
            )
            healthy = {
                m["cluster"]: int(m["count"])
                for m in re.finditer(
                    r"cluster\.(?P<cluster>[\w-]+)\.membership_healthy: (?P<count>\d+)", stats
                )
            }
            fetched = re.search(r"jwt_authn\.jwks_fetch_success: [1-9]", stats) is not None
            if (fetched or not jwks) and all(
                healthy.get(name, 0) >= count for name, count in clusters.items()
            ):
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
