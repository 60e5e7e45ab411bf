from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.platform.migrations import (
    MigrationLockTimeout,
    advisory_lock_key,
    main,
    run_migrations,
    run_migrations_async,
)

VERSIONS = Path(__file__).parent / "migrations" / "versions"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _tables(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


def _versions(database_url: str, schema: str) -> list[str]:
    with psycopg.connect(database_url) as connection:
        query = sql.SQL("SELECT version_num FROM {}.alembic_version").format(sql.Identifier(schema))
        rows = connection.execute(query).fetchall()
    return [row[0] for row in rows]


def test_applies_every_revision_to_an_empty_schema(database_url: str, unique_schema: str) -> None:
    assert run_migrations(database_url, unique_schema, VERSIONS) == ("0002",)
    # The version table lives in the service's schema, next to its tables, not in public.
    assert _tables(database_url, unique_schema) == {"alembic_version", "widgets"}
    assert _versions(database_url, unique_schema) == ["0002"]
    with psycopg.connect(database_url) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'widgets' ORDER BY column_name",
            (unique_schema,),
        ).fetchall()
    assert [c[0] for c in columns] == ["colour", "id", "name"]


def test_rerun_is_a_no_op(database_url: str, unique_schema: str) -> None:
    run_migrations(database_url, unique_schema, VERSIONS)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("INSERT INTO {}.widgets (name) VALUES ('kept')").format(
                sql.Identifier(unique_schema)
            )
        )
    assert run_migrations(database_url, unique_schema, VERSIONS) == ("0002",)
    assert _versions(database_url, unique_schema) == ["0002"]
    with psycopg.connect(database_url) as connection:
        query = sql.SQL("SELECT count(*) FROM {}.widgets").format(sql.Identifier(unique_schema))
        count = connection.execute(query).fetchone()
    assert count == (1,)


def test_accepts_a_url_with_the_psycopg_driver(database_url: str, unique_schema: str) -> None:
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    assert run_migrations(url, unique_schema, VERSIONS) == ("0002",)


async def test_concurrent_runs_in_one_process_all_succeed(
    database_url: str, unique_schema: str
) -> None:
    results = await asyncio.gather(
        *(run_migrations_async(database_url, unique_schema, VERSIONS) for _ in range(3))
    )
    assert results == [("0002",)] * 3
    assert _versions(database_url, unique_schema) == ["0002"]


def test_concurrent_replicas_all_start(database_url: str, unique_schema: str) -> None:
    """Three processes migrate the same empty schema at once, as replicas starting together."""
    command = [
        sys.executable,
        "-m",
        "services.platform.migrations",
        "upgrade",
        str(VERSIONS),
        "--schema",
        unique_schema,
        "--database-url",
        database_url,
    ]
    replicas = [
        subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outcomes = [replica.communicate(timeout=60) for replica in replicas]
    for replica, (stdout, stderr) in zip(replicas, outcomes, strict=True):
        assert replica.returncode == 0, stderr
        assert stdout.strip() == f"{unique_schema}: at 0002"
    assert _versions(database_url, unique_schema) == ["0002"]


def test_waits_for_the_schema_lock_held_by_another_replica(
    database_url: str, unique_schema: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (advisory_lock_key(unique_schema),))
        with pytest.raises(MigrationLockTimeout):
            run_migrations(database_url, unique_schema, VERSIONS, lock_timeout_seconds=0.2)
        assert _tables(database_url, unique_schema) == set()
    # The holder disconnected, which released its lock.
    assert run_migrations(database_url, unique_schema, VERSIONS) == ("0002",)


def test_lock_is_per_schema(database_url: str, unique_schema: str) -> None:
    assert advisory_lock_key(unique_schema) != advisory_lock_key(unique_schema + "x")
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (advisory_lock_key("some_other_schema"),))
        assert run_migrations(database_url, unique_schema, VERSIONS, lock_timeout_seconds=5) == (
            "0002",
        )


def test_failing_revision_leaves_the_schema_untouched(
    database_url: str, unique_schema: str, tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    shutil.copytree(VERSIONS, versions)
    run_migrations(database_url, unique_schema, versions)
    (versions / "0003_broken.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
        'revision = "0003"\n'
        'down_revision = "0002"\n'
        "def upgrade():\n"
        '    op.create_table("gadgets", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.execute("SELECT no_such_function()")\n'
        "def downgrade():\n"
        "    pass\n"
    )
    with pytest.raises(Exception, match="no_such_function"):
        run_migrations(database_url, unique_schema, versions)
    assert _tables(database_url, unique_schema) == {"alembic_version", "widgets"}
    assert _versions(database_url, unique_schema) == ["0002"]


@pytest.mark.parametrize("schema", ["", "Users", "a-b", "x;drop", "1abc", "a" * 64])
def test_invalid_schema_names_are_refused(database_url: str, schema: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        run_migrations(database_url, schema, VERSIONS)


def test_missing_versions_directory_is_an_error(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_migrations(database_url, "whatever", tmp_path / "nope")


def test_revision_command_writes_the_next_numbered_revision(
    database_url: str, unique_schema: str, tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    shutil.copytree(VERSIONS, versions)
    main(["revision", str(versions), "-m", "add gadgets"])
    [created] = versions.glob("0003_*.py")
    assert created.name == "0003_add_gadgets.py"
    source = created.read_text()
    assert 'revision: str = "0003"' in source
    assert 'down_revision: str | Sequence[str] | None = "0002"' in source
    compile(source, str(created), "exec")
    # The empty revision applies on top of the others.
    assert run_migrations(database_url, unique_schema, versions) == ("0003",)
