"""The ratelimit gRPC server: RateLimitService, health and reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import grpc.aio
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis

from services.platform.cache import create_redis
from services.platform.interceptors.logging import DEFAULT_QUIET_METHODS, LoggingInterceptor
from services.ratelimit.budgets import budgets_from_contract
from services.ratelimit.service import RateLimiter
from services.ratelimit.servicer import RateLimitServicer
from services.ratelimit.settings import RateLimitSettings
from services.ratelimit.store import RedisWindowCounter

logger = logging.getLogger(__name__)

SERVICE_NAME = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
# Called on every request through the edge: logged at DEBUG unless it fails.
_QUIET = DEFAULT_QUIET_METHODS | {f"/{SERVICE_NAME}/ShouldRateLimit"}


async def create_ratelimit_server(
    settings: RateLimitSettings, redis: Redis
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:  # type: ignore[name-defined]
    """A bound, not yet started server; the health servicer is returned for draining."""
    limiter = RateLimiter(
        RedisWindowCounter(redis), budgets_from_contract(), on_store_error=settings.on_redis_error
    )
    server = grpc.aio.server(interceptors=[LoggingInterceptor(quiet_methods=frozenset(_QUIET))])
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(limiter), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(settings.address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.address}")
    return server, port, health_servicer


async def serve(
    settings: RateLimitSettings,
    redis_url: str,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
) -> None:
    """Serves until SIGTERM/SIGINT (or `stop`), then drains: NOT_SERVING, then stop(grace)."""
    redis = create_redis(redis_url, socket_timeout=0.1, socket_connect_timeout=0.1)
    server, port, health_servicer = await create_ratelimit_server(settings, redis)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        logger.info("serving", extra={"host": settings.host, "port": port})
        if on_started is not None:
            on_started(port)
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.grace_seconds)
        await redis.aclose()
        logger.info("stopped")


__all__ = ["SERVICE_NAME", "create_ratelimit_server", "serve"]
