"""The embedded servers themselves: always exercised, whatever DATABASE_URL / REDIS_URL say."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from services.platform.embedded import (
    EmbeddedRedis,
    ensure_postgres,
    ensure_redis,
    resolve_urls,
    stop_postgres,
)
from tests.conftest import embedded_postgres_root

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_in_parallel(code: str, copies: int) -> list[str]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        outputs.append(stdout.strip().splitlines()[-1])
    return outputs


@pytest.fixture
def postgres_root() -> Iterator[Path]:
    with embedded_postgres_root() as root:
        yield root


@pytest.fixture
def postgres_dir(postgres_root: Path) -> Path:
    return postgres_root / "pg"


def test_postgres_starts_with_a_usable_database(postgres_dir: Path) -> None:
    url = ensure_postgres(postgres_dir)
    assert url.startswith("postgresql://postgres:@/mesh?host=")
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE probe (id int)")
        assert connection.execute("SELECT current_database()").fetchone() == ("mesh",)
    # Asking again reuses the running server.
    assert ensure_postgres(postgres_dir) == url


def test_postgres_stops_and_starts_again_with_its_data(postgres_dir: Path) -> None:
    url = ensure_postgres(postgres_dir)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (id int)")
    stop_postgres(postgres_dir)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    stop_postgres(postgres_dir)  # already stopped: nothing to do
    assert ensure_postgres(postgres_dir) == url
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)


def test_postgres_survives_its_starter_and_keeps_data(postgres_dir: Path) -> None:
    code = (
        "import os; from pathlib import Path; import psycopg\n"
        "from services.platform.embedded import ensure_postgres\n"
        f"url = ensure_postgres(Path({str(postgres_dir)!r}))\n"
        "psycopg.connect(url, autocommit=True).execute(f'CREATE TABLE kept_{os.getpid()} ()')\n"
        "print(url)\n"
    )
    # Three processes start it at once on a fresh data directory, then exit.
    urls = _run_in_parallel(code, copies=3)
    assert len(set(urls)) == 1
    # The server outlived the processes that started it, with what each of them wrote.
    with psycopg.connect(urls[0]) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'kept\\_%'"
        ).fetchone()
    assert tables == (3,)


def test_redis_serves_a_unix_socket(tmp_path: Path) -> None:
    server = ensure_redis(tmp_path)
    try:
        assert server.url == f"unix://{tmp_path.resolve()}/redis.sock?db=0"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    finally:
        server.stop()
    assert not server.is_running()


def test_redis_restarts_at_the_same_address_with_its_data(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=0).start()
    try:
        url = server.url
        assert url.startswith("redis://127.0.0.1:")
        redis.Redis.from_url(url).xadd("events", {"n": "1"})
        server.stop()
        assert not server.is_running()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        server.start()
        assert server.url == url
        assert redis.Redis.from_url(url).xlen("events") == 1
    finally:
        server.stop()


def test_redis_restarts_after_a_crash(tmp_path: Path) -> None:
    server = ensure_redis(tmp_path)
    try:
        server.stop(graceful=False)
        assert not server.is_running()
        server.start()
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


def test_start_and_stop_are_idempotent(tmp_path: Path) -> None:
    server = ensure_redis(tmp_path)
    try:
        pid = redis.Redis.from_url(server.url).info("server")["process_id"]
        server.start()
        assert redis.Redis.from_url(server.url).info("server")["process_id"] == pid
    finally:
        server.stop()
    server.stop()


def test_concurrent_processes_share_one_redis(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; import redis\n"
        "from services.platform.embedded import ensure_redis\n"
        f"server = ensure_redis(Path({str(tmp_path)!r}))\n"
        "print(server.url, redis.Redis.from_url(server.url).info('server')['process_id'])\n"
    )
    try:
        outputs = _run_in_parallel(code, copies=3)
        assert len(set(outputs)) == 1, outputs
    finally:
        EmbeddedRedis(tmp_path).stop()


def test_adopting_a_server_on_another_port_is_refused(tmp_path: Path) -> None:
    server = ensure_redis(tmp_path)  # unix socket only
    try:
        with pytest.raises(RuntimeError, match="already running"):
            ensure_redis(tmp_path, port=0)
    finally:
        server.stop()


def test_resolve_urls_prefers_the_environment(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://db.example/app", "REDIS_URL": "redis://cache.example/0"}
    assert resolve_urls(env, tmp_path / "data") == (env["DATABASE_URL"], env["REDIS_URL"])
    assert not (tmp_path / "data").exists()  # nothing was started


def test_resolve_urls_starts_embedded_servers_when_unset(postgres_root: Path) -> None:
    data_dir = postgres_root / "data"
    try:
        database_url, redis_url = resolve_urls({"DATABASE_URL": "", "REDIS_URL": ""}, data_dir)
        with psycopg.connect(database_url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(redis_url).ping()
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert (data_dir / "redis" / "redis.conf").exists()
    finally:
        EmbeddedRedis(data_dir / "redis").stop()
        stop_postgres(data_dir / "postgres")
