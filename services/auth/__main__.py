"""`python -m services.auth` serves one replica; `... rotate-keys` adds a new signing key.

Start-up: settings from env (fail fast), embedded PostgreSQL/Redis when DATABASE_URL /
REDIS_URL are unset, migrations of schema `auth`, signing keys loaded (or generated on first
start), then serve until SIGTERM with a graceful drain.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from services.auth.bootstrap import bootstrap
from services.auth.keys import rotate_keys
from services.auth.settings import AuthSettings
from services.auth.store import SCHEMA
from services.platform.runtime import start_runtime
from services.platform.server import run

MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"


async def main() -> None:
    settings = AuthSettings.from_env()
    runtime = await start_runtime(settings.platform, SCHEMA, MIGRATIONS)
    app = bootstrap(settings, runtime.database)
    runtime.on_stop(app.close)
    await runtime.serve([app.grpc_service()], key_source=app.key_source())


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.auth")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("rotate-keys", help="add a new signing key (old keys stay published)")
    args = parser.parse_args(argv)
    if args.command == "rotate-keys":
        kid = rotate_keys(AuthSettings.from_env().keys_dir)
        print(f"new signing key: {kid}")
        return
    settings = AuthSettings.from_env()
    run(main(), use_uvloop=settings.platform.use_uvloop)


if __name__ == "__main__":
    cli(sys.argv[1:])
