"""Building, serving and draining a grpc.aio server the same way in every service.

`create_server` is separate from `serve` so tests start real servers on port 0:

    user_service = Service(servicer, add_UserServiceServicer_to_server, "mesh.user.v1.UserService")
    server, port = await create_server(settings, [user_service])
    await server.start()
    ...
    await shutdown(server, grace=1)

Every server gets the library health servicer (SERVING per service, NOT_SERVING while
draining), server reflection for the contract services, and the standard interceptor chain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mesh.options.v1 import policy_pb2
from services.platform.identity import (
    JwksKeySource,
    KeySource,
    TokenVerifier,
    jwks_from_file,
    jwks_from_url,
)
from services.platform.interceptors.errors import ErrorsInterceptor
from services.platform.interceptors.identity import IdentityInterceptor
from services.platform.interceptors.logging import LoggingInterceptor
from services.platform.interceptors.validation import ValidationInterceptor
from services.platform.policy import method_policy, missing_policies
from services.platform.settings import Settings

logger = logging.getLogger(__name__)

HealthServicer = health.aio.HealthServicer  # type: ignore[attr-defined]

_SERVER_OPTIONS: Final = (
    # A fixed port already taken must fail loudly instead of being silently shared.
    ("grpc.so_reuseport", 0),
    # Accept Envoy's keepalive pings on idle upstream connections and long-lived streams.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
)

# The health servicer of each server, so `shutdown(server)` can flip it to NOT_SERVING.
_health_by_server: weakref.WeakKeyDictionary[grpc.aio.Server, Any] = weakref.WeakKeyDictionary()

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Service:
    """A servicer, the generated function that registers it, and its full proto name."""

    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    name: str  # e.g. "mesh.user.v1.UserService"


def token_verifier(settings: Settings, key_source: KeySource | None = None) -> TokenVerifier | None:
    """The verifier for access tokens: `key_source`, else JWKS_URL, else JWKS_PATH, else None."""
    if key_source is None:
        if settings.jwks_url:
            key_source = JwksKeySource(jwks_from_url(settings.jwks_url))
        elif settings.jwks_path:
            key_source = JwksKeySource(jwks_from_file(settings.jwks_path))
        else:
            return None
    return TokenVerifier(key_source, issuer=settings.jwt_issuer, audience=settings.jwt_audience)


def standard_interceptors(
    settings: Settings, verifier: TokenVerifier | None
) -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: logging/trace → errors → identity → validation.

    Logging is outermost so it times and reports the final status; errors wraps identity and
    validation so their domain errors become rich statuses; identity runs before validation so
    anonymous callers learn nothing about a protected method's request rules.
    """
    return [
        LoggingInterceptor(),
        ErrorsInterceptor(settings.error_domain),
        IdentityInterceptor(verifier),
        ValidationInterceptor(),
    ]


async def create_server(
    settings: Settings,
    services: Sequence[Service],
    *,
    key_source: KeySource | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A configured, bound, not yet started server and the port it is bound to.

    Fails fast (ValueError) when a service is not in the descriptor pool, a method has no
    access policy, or bearer methods exist but no key source is configured.
    """
    names = [service.name for service in services]
    missing = missing_policies(names)
    if missing:
        raise ValueError(f"methods without a (mesh.options.v1.policy) access: {missing}")
    verifier = token_verifier(settings, key_source)
    if verifier is None and _has_bearer_methods(names):
        raise ValueError(
            "bearer-protected methods need a key source: set JWKS_URL or JWKS_PATH "
            "(or pass key_source)"
        )
    if interceptors is None:
        interceptors = standard_interceptors(settings, verifier)

    server = grpc.aio.server(interceptors=list(interceptors), options=_SERVER_OPTIONS)
    for service in services:
        service.add_to_server(service.servicer, server)

    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *names]:  # "" is the whole server, what Envoy's health check asks for
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _health_by_server[server] = health_servicer

    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )

    port = server.add_insecure_port(settings.address)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.address}")
    return server, port


def health_servicer(server: grpc.aio.Server) -> Any:
    """The health servicer `create_server` attached to `server`."""
    return _health_by_server[server]


async def shutdown(
    server: grpc.aio.Server, grace: float | None, *, draining: Iterable[Hook] = ()
) -> None:
    """Graceful stop: NOT_SERVING for every service, `draining` hooks, then stop(grace).

    New RPCs are refused once stop() begins; in-flight ones get `grace` seconds to finish
    before they are cancelled. `draining` hooks let servicers end long-lived streams cleanly.
    """
    servicer = _health_by_server.get(server)
    if servicer is not None:
        await servicer.enter_graceful_shutdown()
    for hook in draining:
        try:
            await hook()
        except Exception:
            logger.exception("draining hook failed")
    await server.stop(grace)


async def serve(
    settings: Settings,
    services: Sequence[Service],
    *,
    key_source: KeySource | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
    draining: Iterable[Hook] = (),
    stopped: Iterable[Hook] = (),
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
) -> None:
    """Serves until SIGTERM/SIGINT (or `stop` is set), then drains gracefully.

    `on_started` receives the bound port (useful with GRPC_PORT=0); `draining` hooks run
    while health says NOT_SERVING, before in-flight RPCs are waited for; `stopped` hooks run
    after the server has stopped (close pools, flush telemetry).
    """
    server, port = await create_server(
        settings, services, key_source=key_source, interceptors=interceptors
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        logger.info(
            "serving",
            extra={"services": [s.name for s in services], "host": settings.host, "port": port},
        )
        if on_started is not None:
            on_started(port)
        await stop.wait()
        logger.info("shutting down", extra={"grace_seconds": settings.grace_seconds})
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await shutdown(server, settings.grace_seconds, draining=draining)
        for hook in stopped:
            try:
                await hook()
            except Exception:
                logger.exception("shutdown hook failed")
        logger.info("stopped")


def run(main: Coroutine[Any, Any, None], *, use_uvloop: bool = True) -> None:
    """Runs a service's async main on uvloop when available, else the default loop."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)


def _has_bearer_methods(service_names: Iterable[str]) -> bool:
    pool = descriptor_pool.Default()
    return any(
        method_policy(method.full_name).access == policy_pb2.ACCESS_BEARER
        for name in service_names
        for method in pool.FindServiceByName(name).methods
    )


__all__ = [
    "HealthServicer",
    "Service",
    "create_server",
    "health_servicer",
    "run",
    "serve",
    "shutdown",
    "standard_interceptors",
    "token_verifier",
]
