"""`python -m services.notification`: one notification replica, configured from the environment."""

from __future__ import annotations

from services.platform.db import Database
from services.platform.embedded import resolve_urls
from services.platform.identity import JwksKeySource, KeySource
from services.platform.logging import configure_logging
from services.platform.migrations import run_migrations_async
from services.platform.server import run, serve
from services.platform.settings import Settings
from services.platform.telemetry import instrument_sqlalchemy, setup_telemetry

from .bootstrap import MIGRATIONS, SCHEMA, bootstrap
from .email import SmtpConfig
from .settings import NotificationSettings


def key_source(settings: Settings, auth_target: str | None) -> KeySource | None:
    """JWKS_URL / JWKS_PATH (handled by the platform) first, else GetJwks from auth."""
    if settings.jwks_url or settings.jwks_path or not auth_target:
        return None
    from services.platform.jwks import grpc_jwks_fetch

    return JwksKeySource(grpc_jwks_fetch(auth_target))


async def main() -> None:
    settings = Settings.from_env("notification")
    extra = NotificationSettings.from_env()
    configure_logging(settings.log_level, service_name=settings.service_name)
    telemetry = setup_telemetry(settings)
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url or not redis_url:
        database_url, redis_url = resolve_urls()
    await run_migrations_async(database_url, SCHEMA, MIGRATIONS)
    database = Database.connect(database_url, application_name="notification")
    instrument_sqlalchemy(database.engine)
    smtp = (
        SmtpConfig(extra.smtp_host, extra.smtp_port, extra.smtp_from) if extra.smtp_host else None
    )
    app = bootstrap(
        database=database,
        redis_url=redis_url,
        page_token_secret=settings.page_token_secret,
        smtp=smtp,
        heartbeat_interval=extra.heartbeat_seconds,
        claim_min_idle=extra.claim_min_idle_seconds,
    )
    app.start()

    async def close() -> None:
        await app.close()
        await database.dispose()
        telemetry.shutdown()

    await serve(
        settings,
        [app.service],
        key_source=key_source(settings, extra.auth_service_target),
        draining=[app.hub.drain],
        stopped=[close],
    )


if __name__ == "__main__":
    run(main())
