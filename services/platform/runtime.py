"""What every service's `__main__` does before and after serving, written once.

A replica's start-up is the same everywhere: logging and telemetry first, then the database
and Redis URLs (embedded servers when DATABASE_URL / REDIS_URL are unset), the service's
Alembic migrations, a pooled and instrumented engine, the JWKS key source, and finally
`serve()` with a graceful drain. Each `__main__` keeps only what is its own:

    async def main() -> None:
        runtime = await start_runtime(Settings.from_env("content"), SCHEMA, MIGRATIONS)
        app = bootstrap(database=runtime.database, redis=runtime.redis(), ...)
        await runtime.serve([app.service], auth_target=extra.auth_service_target)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.embedded import resolve_urls
from services.platform.identity import JwksKeySource, KeySource
from services.platform.logging import configure_logging
from services.platform.migrations import run_migrations_async
from services.platform.server import Hook, Service, serve
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry, instrument_sqlalchemy, setup_telemetry


@dataclass
class Runtime:
    """One replica's shared resources; `serve()` closes them all after the drain."""

    settings: Settings
    database_url: str
    redis_url: str
    database: Database
    telemetry: Telemetry | None  # None for one-shot commands, which serve no RPC
    _closers: list[Hook] = field(default_factory=list)

    def redis(self, *, max_connections: int = 32) -> Redis:
        """A pooled Redis client, closed when the replica stops."""
        client = create_redis(self.redis_url, max_connections=max_connections)
        self.on_stop(client.aclose)
        return client

    def on_stop(self, hook: Hook) -> None:
        """Runs `hook` after the server stopped; hooks run in reverse order of registration."""
        self._closers.append(hook)

    def key_source(self, auth_target: str | None) -> KeySource | None:
        """JWKS_URL / JWKS_PATH (handled by the platform) first, else GetJwks from auth."""
        if self.settings.jwks_url or self.settings.jwks_path or not auth_target:
            return None
        from services.platform.jwks import grpc_jwks_fetch

        return JwksKeySource(grpc_jwks_fetch(auth_target))

    async def serve(
        self,
        services: Sequence[Service],
        *,
        key_source: KeySource | None = None,
        auth_target: str | None = None,
        draining: Iterable[Hook] = (),
        on_started: Callable[[int], None] | None = None,
    ) -> None:
        """Serves until SIGTERM/SIGINT, drains, then closes everything this runtime opened."""
        await serve(
            self.settings,
            services,
            key_source=key_source or self.key_source(auth_target),
            draining=draining,
            stopped=[self.close],
            on_started=on_started,
        )

    async def close(self) -> None:
        """Runs the stop hooks, then releases the pool and flushes telemetry (`serve` calls it)."""
        for hook in reversed(self._closers):
            await hook()
        await self.database.dispose()
        if self.telemetry is not None:
            self.telemetry.shutdown()


async def start_runtime(
    settings: Settings, schema: str, migrations: Path, *, pool_size: int = 5, trace: bool = True
) -> Runtime:
    """Logging, telemetry, URLs, migrations of `schema`, then a lazily connecting pool.

    `trace=False` is for one-shot management commands (promote-admin): tracing instruments
    gRPC, Redis and SQLAlchemy process-wide, which a command serving no RPC has no use for.
    """
    configure_logging(settings.log_level, service_name=settings.service_name)
    telemetry = setup_telemetry(settings) if trace else None
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url or not redis_url:
        embedded_database, embedded_redis = resolve_urls(data_dir=settings.data_dir)
        database_url = database_url or embedded_database
        redis_url = redis_url or embedded_redis
    await run_migrations_async(database_url, schema, migrations)
    database = Database.connect(
        database_url, pool_size=pool_size, application_name=settings.service_name
    )
    if trace:
        instrument_sqlalchemy(database.engine)
    return Runtime(settings, database_url, redis_url, database, telemetry)


__all__ = ["Runtime", "start_runtime"]
