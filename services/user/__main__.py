"""`python -m services.user` serves one replica; `... promote-admin <email>` makes an admin.

Start-up: settings from env (fail fast), embedded PostgreSQL/Redis when DATABASE_URL /
REDIS_URL are unset, migrations of schema `users`, then serve until SIGTERM with a graceful
drain while the outbox relay moves `user.created` events to the `events.user` stream.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta

from mesh.user.v1 import user_pb2
from services.platform.errors import DomainError
from services.platform.logging import configure_logging
from services.platform.runtime import Runtime, start_runtime
from services.platform.server import run

from .bootstrap import MIGRATIONS, SCHEMA, UserApp, bootstrap
from .credentials import GrpcCredentials
from .settings import UserSettings


def wire(runtime: Runtime, settings: UserSettings, *, schema: str = SCHEMA) -> UserApp:
    """The user application on the runtime's storage; its auth channel closes with it."""
    credentials = GrpcCredentials(settings.auth_target, timeout=settings.auth_timeout_seconds)
    runtime.on_stop(credentials.close)
    return bootstrap(
        database=runtime.database,
        redis=runtime.redis(),
        credentials=credentials,
        page_token_secret=settings.platform.page_token_secret,
        cache_ttl=timedelta(seconds=settings.cache_ttl_seconds),
        auth_timeout_seconds=settings.auth_timeout_seconds,
        schema=schema,
    )


async def main() -> None:
    settings = UserSettings.from_env()
    runtime = await start_runtime(settings.platform, SCHEMA, MIGRATIONS)
    app = wire(runtime, settings)
    app.relay.start()
    runtime.on_stop(app.relay.stop)
    await runtime.serve([app.service], auth_target=settings.auth_target)


async def promote_admin(
    email: str, env: Mapping[str, str] | None = None, *, schema: str = SCHEMA
) -> user_pb2.User:
    """Makes the live user with `email` an administrator (database, cache and credential)."""
    settings = UserSettings.from_env(env)
    runtime = await start_runtime(settings.platform, schema, MIGRATIONS, trace=False)
    try:
        return await wire(runtime, settings, schema=schema).users.set_role_by_email(
            email, user_pb2.ROLE_ADMIN
        )
    finally:
        await runtime.close()


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
