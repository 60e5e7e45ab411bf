"""`python -m services.user` serves one replica; `... promote-admin <email>` makes an admin.

Start-up: settings from env (fail fast), embedded PostgreSQL/Redis when DATABASE_URL /
REDIS_URL are unset, migrations of schema `users`, then serve until SIGTERM with a graceful
drain while the outbox relay moves `user.created` events to the `events.user` stream.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from mesh.user.v1 import user_pb2
from services.platform.cache import create_redis
from services.platform.db import Database
from services.platform.embedded import resolve_urls
from services.platform.errors import DomainError
from services.platform.identity import JwksKeySource, KeySource
from services.platform.jwks import grpc_jwks_fetch
from services.platform.logging import configure_logging
from services.platform.migrations import run_migrations_async
from services.platform.server import run, serve
from services.platform.telemetry import instrument_sqlalchemy, setup_telemetry

from .bootstrap import MIGRATIONS, SCHEMA, UserApp, bootstrap
from .credentials import GrpcCredentials
from .settings import UserSettings


def key_source(settings: UserSettings) -> KeySource | None:
    """JWKS_URL / JWKS_PATH (handled by the platform) first, else GetJwks from auth."""
    platform = settings.platform
    if platform.jwks_url or platform.jwks_path:
        return None
    return JwksKeySource(grpc_jwks_fetch(settings.auth_target))


@asynccontextmanager
async def opened(settings: UserSettings, *, schema: str = SCHEMA) -> AsyncIterator[UserApp]:
    """The wired application on migrated storage; every connection closed on exit."""
    database_url, redis_url = settings.platform.database_url, settings.platform.redis_url
    if not database_url or not redis_url:
        embedded_database, embedded_redis = resolve_urls()
        database_url, redis_url = database_url or embedded_database, redis_url or embedded_redis
    await run_migrations_async(database_url, schema, MIGRATIONS)
    database = Database.connect(database_url, application_name="user")
    instrument_sqlalchemy(database.engine)
    redis = create_redis(redis_url)
    credentials = GrpcCredentials(settings.auth_target, timeout=settings.auth_timeout_seconds)
    try:
        yield bootstrap(
            database=database,
            redis=redis,
            credentials=credentials,
            page_token_secret=settings.platform.page_token_secret,
            cache_ttl=timedelta(seconds=settings.cache_ttl_seconds),
            auth_timeout_seconds=settings.auth_timeout_seconds,
            schema=schema,
        )
    finally:
        await credentials.close()
        await redis.aclose()
        await database.dispose()


async def main() -> None:
    settings = UserSettings.from_env()
    configure_logging(settings.platform.log_level, service_name="user")
    telemetry = setup_telemetry(settings.platform)
    async with opened(settings) as app:
        app.relay.start()

        async def stop_relay() -> None:
            await app.relay.stop()

        await serve(
            settings.platform,
            [app.service],
            key_source=key_source(settings),
            stopped=[stop_relay],
        )
    telemetry.shutdown()


async def promote_admin(
    email: str, env: Mapping[str, str] | None = None, *, schema: str = SCHEMA
) -> user_pb2.User:
    """Makes the live user with `email` an administrator (database, cache and credential)."""
    settings = UserSettings.from_env(env)
    async with opened(settings, schema=schema) as app:
        return await app.users.set_role_by_email(email, user_pb2.ROLE_ADMIN)


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.user")
    commands = parser.add_subparsers(dest="command")
    promote = commands.add_parser(
        "promote-admin",
        help="make an existing account an administrator (the first admin's bootstrap)",
    )
    promote.add_argument("email", help="the sign-in email of a live account")
    args = parser.parse_args(argv)
    if args.command == "promote-admin":
        configure_logging("WARNING", service_name="user")
        try:
            user = asyncio.run(promote_admin(args.email))
        except DomainError as error:
            print(f"promote-admin: {error.message}", file=sys.stderr)
            return 1
        print(f"{user.email} ({user.id}) is now an administrator")
        print("it takes effect at the account's next login or token refresh")
        return 0
    settings = UserSettings.from_env()
    run(main(), use_uvloop=settings.platform.use_uvloop)
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
