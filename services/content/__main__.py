"""`python -m services.content`: one content replica, configured from the environment."""

from __future__ import annotations

from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.embedded import resolve_urls
from services.platform.identity import JwksKeySource, KeySource
from services.platform.logging import configure_logging
from services.platform.migrations import run_migrations_async
from services.platform.server import run, serve
from services.platform.settings import Settings
from services.platform.telemetry import instrument_sqlalchemy, setup_telemetry

from .bootstrap import MIGRATIONS, SCHEMA, bootstrap
from .settings import ContentSettings
from .users import GrpcUserDirectory


def key_source(settings: Settings, auth_target: str | None) -> KeySource | None:
    """JWKS_URL / JWKS_PATH (handled by the platform) first, else GetJwks from auth."""
    if settings.jwks_url or settings.jwks_path or not auth_target:
        return None
    from services.platform.jwks import grpc_jwks_fetch

    return JwksKeySource(grpc_jwks_fetch(auth_target))


async def main() -> None:
    settings = Settings.from_env("content")
    extra = ContentSettings.from_env()
    configure_logging(settings.log_level, service_name=settings.service_name)
    telemetry = setup_telemetry(settings)
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url or not redis_url:
        database_url, redis_url = resolve_urls()
    await run_migrations_async(database_url, SCHEMA, MIGRATIONS)
    database = Database.connect(database_url, application_name="content")
    instrument_sqlalchemy(database.engine)
    redis = create_redis(redis_url)
    authors = GrpcUserDirectory(extra.user_service_target, timeout=extra.user_service_timeout)
    app = bootstrap(
        database=database,
        redis=redis,
        authors=authors,
        page_token_secret=settings.page_token_secret,
    )
    app.relay.start()

    async def close() -> None:
        await app.relay.stop()
        await authors.close()
        await redis.aclose()
        await database.dispose()
        telemetry.shutdown()

    await serve(
        settings,
        [app.service],
        key_source=key_source(settings, extra.auth_service_target),
        stopped=[close],
    )


if __name__ == "__main__":
    run(main())
