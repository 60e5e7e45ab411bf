"""Schema migrations at start-up: one PostgreSQL schema per service, Alembic without an ini.

Every replica calls `run_migrations(database_url, schema, versions_dir)` before it serves.
The first one to take the schema's advisory lock applies the pending revisions; the others
wait on the lock, then find the schema at head and do nothing. Each service only holds
`services/<name>/migrations/versions/*.py`; the environment (`alembic/env.py`) and the
revision template are shared and live next to this file.

New revision (numbered 0001, 0002, ...):
    python -m services.platform.migrations revision services/<name>/migrations/versions -m "..."
Apply by hand:
    python -m services.platform.migrations upgrade <versions dir> --schema <name> --database-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from services.platform.db import to_psycopg_url

_log = logging.getLogger(__name__)

ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Alembic installs `alembic.context` and `alembic.op` as process-wide proxies while a
# command runs, so two threads migrating at once would trample each other's context.
# Threads of one process take turns here; processes take turns on the advisory lock.
_ALEMBIC_IN_PROCESS = threading.Lock()


class MigrationLockTimeout(RuntimeError):
    """Another replica held the schema's migration lock for longer than we would wait."""


def advisory_lock_key(schema: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, derived from the schema name."""
    digest = hashlib.sha256(f"mesh.migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def alembic_config(versions_dir: Path, schema: str | None = None) -> Config:
    """An in-memory Alembic config: the shared env/template, the service's versions."""
    if not versions_dir.is_dir():
        raise FileNotFoundError(f"migrations directory not found: {versions_dir}")
    config = Config()
    # set_main_option goes through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(ALEMBIC_DIR).replace("%", "%%"))
    config.set_main_option("version_locations", str(versions_dir.resolve()).replace("%", "%%"))
    config.set_main_option("path_separator", "newline")
    if schema is not None:
        config.attributes["schema"] = schema
    return config


def run_migrations(
    database_url: str | URL,
    schema: str,
    versions_dir: Path,
    *,
    lock_timeout_seconds: float = 120.0,
) -> tuple[str, ...]:
    """Create `schema` if missing and upgrade it to head; return the heads now applied.

    Blocking by design. Alembic's API and env.py are synchronous, so this uses a sync
    psycopg engine rather than bridging an async engine with run_sync: it runs once at
    start-up, before the server accepts calls, so there is no event loop to starve.
    From async code, call `run_migrations_async`, which runs it in a worker thread.
    """
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower_snake_case, max 63 chars")
    config = alembic_config(versions_dir, schema)
    # NullPool: the connection (and with it the session-level advisory lock) is really
    # closed when we are done, even if a migration failed half way.
    engine = create_engine(to_psycopg_url(database_url), poolclass=NullPool)
    try:
        with _ALEMBIC_IN_PROCESS, engine.connect() as connection:
            _lock_schema(connection, schema, lock_timeout_seconds)
            before = _current_heads(connection, schema)
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            # Unqualified names in revisions resolve to the service's schema; public stays
            # reachable for extension functions installed there.
            connection.execute(text(f'SET search_path TO "{schema}", public'))
            connection.commit()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = _current_heads(connection, schema)
            # The advisory lock is released when the connection closes at the end of
            # this block, on success and on failure alike.
    finally:
        engine.dispose()
    if before != after:
        _log.info(
            "migrated schema",
            extra={"schema": schema, "from_revision": list(before), "to_revision": list(after)},
        )
    return after


async def run_migrations_async(
    database_url: str | URL,
    schema: str,
    versions_dir: Path,
    *,
    lock_timeout_seconds: float = 120.0,
) -> tuple[str, ...]:
    """`run_migrations` off the event loop, for async start-up code."""
    return await asyncio.to_thread(
        run_migrations,
        database_url,
        schema,
        versions_dir,
        lock_timeout_seconds=lock_timeout_seconds,
    )


def _lock_schema(connection: Connection, schema: str, timeout_seconds: float) -> None:
    """Take the session-level advisory lock for `schema`, waiting at most `timeout_seconds`.

    Session level (not transaction level) so the lock also covers revisions that step
    out of the transaction with Alembic's autocommit_block (CREATE INDEX CONCURRENTLY).
    lock_timeout applies to advisory locks too; it is reset so migrations do not inherit it.
    """
    timeout_ms = max(1, int(timeout_seconds * 1000))
    connection.execute(text(f"SET lock_timeout = {timeout_ms}"))
    try:
        connection.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": advisory_lock_key(schema)}
        )
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise MigrationLockTimeout(
                f"schema {schema!r} is being migrated by another process; "
                f"gave up after {timeout_seconds:g}s"
            ) from None
        raise
    connection.execute(text("RESET lock_timeout"))
    connection.commit()


def _current_heads(connection: Connection, schema: str) -> tuple[str, ...]:
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    heads = context.get_current_heads()
    # Reading the version table autobegins a transaction; end it so Alembic starts its own.
    connection.commit()
    return tuple(sorted(heads))


def _next_revision_id(versions_dir: Path) -> str:
    """Sequential, readable revision ids (0001, 0002, ...) in file-name order."""
    numbers = [int(p.name[:4]) for p in versions_dir.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.platform.migrations")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="create an empty revision file")
    revision.add_argument("versions_dir", type=Path)
    revision.add_argument("-m", "--message", required=True)
    upgrade = commands.add_parser("upgrade", help="apply pending revisions to a schema")
    upgrade.add_argument("versions_dir", type=Path)
    upgrade.add_argument("--schema", required=True)
    upgrade.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)

    if args.command == "revision":
        config = alembic_config(args.versions_dir)
        config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        command.revision(config, message=args.message, rev_id=_next_revision_id(args.versions_dir))
    else:
        heads = run_migrations(args.database_url, args.schema, args.versions_dir)
        print(f"{args.schema}: at {', '.join(heads) or 'base'}")


if __name__ == "__main__":
    main()
