"""The Alembic environment every service shares.

It is only ever run by `services.platform.migrations`, which opens the connection, takes
the per-schema advisory lock, creates the schema and points search_path at it before
handing the connection over through `config.attributes`. This file therefore does nothing
but configure Alembic on that connection: no alembic.ini, no URL, no engine here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations_online() -> None:
    connection: Connection = context.config.attributes["connection"]
    schema: str = context.config.attributes["schema"]
    context.configure(
        connection=connection,
        target_metadata=None,
        # Each service keeps its own alembic_version table inside its own schema, so
        # services migrate independently and never see each other's history.
        version_table_schema=schema,
    )
    # PostgreSQL has transactional DDL: every pending revision runs in one transaction,
    # so a failing migration leaves the schema exactly as it was.
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
